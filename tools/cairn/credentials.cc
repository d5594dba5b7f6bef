#include "tools/cairn/credentials.h"

#include "cairn/errors.h"
#include "layers/grpc/grpc_store.h"
#include "tools/flags.h"

namespace cairn::tools {

Credentials& cli_credentials() {
  static Credentials c;
  return c;
}

std::shared_ptr<grpc::Channel> channel_to(const std::string& address) {
  const Credentials& c = cli_credentials();
  const bool tls = !c.tls_ca.empty() || !c.tls_cert.empty();
  if (!c.token.empty() && !tls && !internal::loopback_target(address)) {
    throw UsageError("CAIRN_TOKEN would cross the network to " + address +
                     " in the clear: give --tls-ca (and --tls-cert/--tls-key)");
  }
  if (!tls) return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions ssl;
  if (!c.tls_ca.empty()) ssl.pem_root_certs = internal::read_tls_file(c.tls_ca, "CA");
  if (!c.tls_cert.empty()) {
    ssl.pem_cert_chain = internal::read_tls_file(c.tls_cert, "certificate");
    ssl.pem_private_key = internal::read_tls_file(c.tls_key, "key");
  }
  return grpc::CreateChannel(address, grpc::SslCredentials(ssl));
}

void authorize(grpc::ClientContext* ctx) {
  const Credentials& c = cli_credentials();
  if (!c.token.empty()) ctx->AddMetadata("authorization", "Bearer " + c.token);
}

void apply(GrpcOptions* o) {
  const Credentials& c = cli_credentials();
  if (o->tls_ca.empty()) o->tls_ca = c.tls_ca;
  if (o->tls_cert.empty()) {
    o->tls_cert = c.tls_cert;
    o->tls_key = c.tls_key;
  }
  if (o->token.empty()) o->token = c.token;
}

}  // namespace cairn::tools

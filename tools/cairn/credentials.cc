#include "tools/cairn/credentials.h"

#include <fstream>
#include <sstream>

#include "cairn/errors.h"
#include "tools/flags.h"

namespace cairn::tools {

namespace {

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(std::string("cannot read the TLS ") + what + " " + path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool loopback(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
}

}  // namespace

Credentials& cli_credentials() {
  static Credentials c;
  return c;
}

std::shared_ptr<grpc::Channel> channel_to(const std::string& address) {
  const Credentials& c = cli_credentials();
  const bool tls = !c.tls_ca.empty() || !c.tls_cert.empty();
  if (!c.token.empty() && !tls && !loopback(address)) {
    throw UsageError("CAIRN_TOKEN would cross the network to " + address +
                     " in the clear: give --tls-ca (and --tls-cert/--tls-key)");
  }
  if (!tls) return grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::SslCredentialsOptions ssl;
  if (!c.tls_ca.empty()) ssl.pem_root_certs = read_file(c.tls_ca, "CA");
  if (!c.tls_cert.empty()) {
    ssl.pem_cert_chain = read_file(c.tls_cert, "certificate");
    ssl.pem_private_key = read_file(c.tls_key, "key");
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

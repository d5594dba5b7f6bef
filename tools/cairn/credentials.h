// What the CLI presents to servers with a security policy
// (docs/security.md): TLS files from --tls-ca, --tls-cert and --tls-key,
// and a token from CAIRN_TOKEN. Every call the CLI makes goes through
// them: a store's (the grpc engine), and the admin's.

#ifndef CAIRN_TOOLS_CAIRN_CREDENTIALS_H_
#define CAIRN_TOOLS_CAIRN_CREDENTIALS_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "cairn/grpc_store.h"

namespace cairn::tools {

struct Credentials {
  std::string tls_ca, tls_cert, tls_key;
  std::string token;
};

// The CLI's, set once from its flags and environment before any call.
Credentials& cli_credentials();

// A channel to a server at `address`: TLS when any TLS file is given.
// Throws UsageError for a token that would cross a network in the clear,
// IoError for a TLS file that cannot be read.
std::shared_ptr<grpc::Channel> channel_to(const std::string& address);
// Adds the token (if any) to a call.
void authorize(grpc::ClientContext* ctx);
// Gives a grpc engine's options the credentials.
void apply(GrpcOptions* options);

}  // namespace cairn::tools

#endif  // CAIRN_TOOLS_CAIRN_CREDENTIALS_H_

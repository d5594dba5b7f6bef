// TLS for the Asio fronts (HTTP and the Redis protocol), from the same PEM
// files as the gRPC server's: one context per front, built at start.

#ifndef CAIRN_SERVER_TLS_CONTEXT_H_
#define CAIRN_SERVER_TLS_CONTEXT_H_

#include <boost/asio/ssl/context.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::internal {

// A TLS 1.2+ server context serving `cert` (a PEM chain) with `key`; with a
// `ca`, clients must present a certificate it signed (mutual TLS), as the
// gRPC server requires. Throws InvalidArgument naming `front` ("HTTP",
// "RESP") and the file that cannot be used.
boost::asio::ssl::context server_tls_context(std::string_view front, const std::string& cert,
                                             const std::string& key, const std::string& ca);

// The names on the client certificate a finished handshake verified
// (server::certificate_names), or none if it presented none or it did not
// verify.
std::vector<std::string> verified_peer_names(SSL* ssl);

}  // namespace cairn::internal

#endif  // CAIRN_SERVER_TLS_CONTEXT_H_

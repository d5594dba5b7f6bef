#include "server/tls_context.h"

#include <openssl/ssl.h>

#include "cairn/errors.h"
#include "server/access.h"

namespace cairn::internal {

namespace asio = boost::asio;

asio::ssl::context server_tls_context(std::string_view front, const std::string& cert,
                                      const std::string& key, const std::string& ca) {
  asio::ssl::context ctx(asio::ssl::context::tls_server);
  ctx.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                  asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                  asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
  auto load = [&](const char* what, const std::string& file, auto&& fn) {
    boost::system::error_code ec;
    fn(ec);
    if (ec) {
      std::string message(front);
      message += " TLS: cannot use ";
      message += what;
      message += " " + file + ": " + ec.message();
      throw InvalidArgument(message);
    }
  };
  load("certificate", cert, [&](auto& ec) { ctx.use_certificate_chain_file(cert, ec); });
  load("key", key, [&](auto& ec) { ctx.use_private_key_file(key, asio::ssl::context::pem, ec); });
  if (!ca.empty()) {
    load("CA", ca, [&](auto& ec) { ctx.load_verify_file(ca, ec); });
    ctx.set_verify_mode(asio::ssl::verify_peer | asio::ssl::verify_fail_if_no_peer_cert);
    // With client certificates verified, OpenSSL refuses (fatally) a
    // client that resumes a session unless the context names its
    // sessions: name them by the front.
    const std::string id = "cairn " + std::string(front);
    SSL_CTX_set_session_id_context(ctx.native_handle(),
                                   reinterpret_cast<const unsigned char*>(id.data()),
                                   static_cast<unsigned int>(id.size()));
  }
  return ctx;
}

std::vector<std::string> verified_peer_names(SSL* ssl) {
  if (SSL_get_verify_result(ssl) != X509_V_OK) return {};
  return server::certificate_names(SSL_get0_peer_certificate(ssl));
}

}  // namespace cairn::internal

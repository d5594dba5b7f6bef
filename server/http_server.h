// HttpServer: an HTTP/1.1 front on a set of stores (Boost.Beast), for curl,
// scripts and monitoring; gRPC is the protocol for throughput.
//
//   GET    /stores/{store}/keys/{key}   200 the value, 300 siblings, 404 absent
//   PUT    /stores/{store}/keys/{key}   204, or 409 if the write is stale
//   DELETE /stores/{store}/keys/{key}   204, 404 absent, 409 stale
//   GET    /stores                      the stores served (JSON)
//   GET    /metrics                     Prometheus text: stats layers, HTTP codes
//   GET    /health                      200 SERVING, 503 while shutting down
//   HEAD   any of the GETs                  the headers alone
//
// Keys and store names are percent-encoded path segments, read with the
// store's key serializer's text form (so an int64 store takes /keys/42);
// bodies are the value serializer's text form (JSON for json stores, the
// raw bytes for identity). The `X-Cairn-Clock` header carries the vector
// clock: a GET returns the clock of what it read (with siblings, their
// merge), and a PUT or DELETE that sends it back applies only if nothing
// was written since: read-modify-write over HTTP. A PUT without it
// supersedes every stored version.
//
// Connections are kept alive and served by a few threads (asio), never a
// thread each. Store calls run on those threads. With a certificate and key
// the front speaks HTTPS only, and with a CA as well it requires a client
// certificate the CA signed, as the gRPC and Redis-protocol fronts do; the
// names on that certificate identify the caller as a token would.

#ifndef CAIRN_SERVER_HTTP_SERVER_H_
#define CAIRN_SERVER_HTTP_SERVER_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "cairn/versioned.h"
#include "server/access.h"
#include "server/serving.h"

namespace cairn {

struct HttpOptions {
  // host:port to listen on; port 0 lets the OS choose (see port()).
  std::string listen = "127.0.0.1:0";
  // Threads serving connections (and running the store calls).
  int threads = 2;
  // The node id PUTs increment in a key's vector clock: writes through one
  // front with the same id conflict instead of leaving siblings, which is
  // what makes a conditional PUT exact.
  NodeId node_id = 0;
  // Largest request body, in bytes (413 beyond it).
  size_t max_body = 64 << 20;
  // A connection idle (or sending its request) for this long is closed.
  std::chrono::milliseconds idle_timeout{60000};
  // Connections beyond this many are closed as they are accepted.
  size_t max_connections = 1024;
  // More Prometheus text for /metrics (e.g. the gRPC server's counters).
  std::function<std::string()> extra_metrics;
  // The cluster's state as JSON (metadata/move_record.h), for /cluster.json
  // and the /ui page that draws it; may throw (503). Unset: both are 404.
  std::function<std::string()> cluster_json;
  // TLS: PEM files of the server's certificate chain and private key (both
  // or neither), and a CA whose client certificates it requires. Empty:
  // plaintext.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // Who may do what (server/access.h): a request's `Authorization: Bearer`
  // token, or the connection's client certificate, names its caller.
  // Null: anyone may do anything.
  std::shared_ptr<server::Access> access;
};

class HttpServer {
 public:
  // Starts serving. Throws Unavailable if the address cannot be bound,
  // InvalidArgument if it is not HOST:PORT or a TLS file cannot be used.
  HttpServer(HttpOptions options, ServedStores stores);
  // shutdown() with a one-second grace.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // The port the server listens on (the chosen one if the options said 0).
  int port() const;
  // Stops accepting connections, lets requests in progress finish for up to
  // `grace` (closing idle connections at once), then stops. The stores stay
  // open: their owner closes them. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_HTTP_SERVER_H_

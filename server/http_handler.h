// HttpHandler: what the HTTP front does with a request, apart from the
// connection carrying it (see http_server.h for the resources). Kept free of
// Beast so it is cheap to compile and to test.
//
// Thread-safe: requests may be handled concurrently.

#ifndef CAIRN_SERVER_HTTP_HANDLER_H_
#define CAIRN_SERVER_HTTP_HANDLER_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cairn/client.h"
#include "cairn/versioned.h"
#include "server/access.h"
#include "server/serving.h"

namespace cairn::internal {

struct HttpRequest {
  std::string method;  // "GET", "PUT", ...
  std::string target;  // path and query, percent-encoded
  std::string clock;   // the X-Cairn-Clock header; empty if absent
  std::string authorization;  // the Authorization header; empty if absent
  // The names on the connection's verified client certificate (HTTPS with
  // a CA); the connection's, which outlives the request. Null: none.
  const std::vector<std::string>* cert_names = nullptr;
  std::string body;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::vector<std::pair<std::string, std::string>> headers;  // beyond the content type
  std::string body;
};

// The header that carries vector clocks, both ways.
inline constexpr char kClockHeader[] = "X-Cairn-Clock";
// On an error response: the cairn error kind ("InvalidArgument", ...).
inline constexpr char kErrorHeader[] = "X-Cairn-Error";

class HttpHandler {
 public:
  // `node_id`: what PUTs increment. `extra_metrics`: appended to /metrics;
  // may be empty.
  // `cluster_json`: /cluster.json's body (and /ui's source); may be empty.
  // `access`: who may do what (server/access.h); null: anyone anything.
  HttpHandler(const ServedStores& stores, NodeId node_id,
              std::function<std::string()> extra_metrics,
              std::function<std::string()> cluster_json = nullptr,
              std::shared_ptr<server::Access> access = nullptr);

  HttpResponse handle(const HttpRequest& request);

  // Counts a response for /metrics; handle() counts its own, the server
  // counts those it makes itself (a request it could not parse).
  void count(int status);
  // From now on /health says 503.
  void set_draining() { draining_.store(true, std::memory_order_relaxed); }

 private:
  // A store with a byte-level client for writes that succeed what is
  // stored (as the CLI's).
  struct Served {
    ServedStore store;
    mutable Client<std::string, std::string> bytes;
  };

  HttpResponse route(const HttpRequest& request);
  // Refuses a request its caller may not make (401 or 403, naming the
  // caller, operation and store); nullopt lets it in. `store` empty: a
  // request of no store (/stores, /metrics, the cluster page), which
  // any caller the policy knows may make.
  std::optional<HttpResponse> refused(const HttpRequest& request, std::string_view store,
                                      uint8_t need, std::string_view op) const;
  HttpResponse get_key(const Served& s, const std::string& key);
  HttpResponse put_key(const Served& s, const std::string& key, const HttpRequest& request);
  HttpResponse delete_key(const Served& s, const std::string& key, const HttpRequest& request);
  HttpResponse list_stores() const;
  HttpResponse metrics() const;

  std::map<std::string, Served> stores_;
  std::function<std::string()> extra_metrics_;
  std::function<std::string()> cluster_json_;
  std::shared_ptr<server::Access> access_;
  std::atomic<bool> draining_{false};
  std::array<std::atomic<uint64_t>, 600> responses_{};  // by status code
};

// "a%2Fb" -> "a/b". Throws InvalidArgument for a '%' not followed by two
// hex digits.
std::string percent_decode(std::string_view text);

}  // namespace cairn::internal

#endif  // CAIRN_SERVER_HTTP_HANDLER_H_

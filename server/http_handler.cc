#include "server/http_handler.h"

#include <chrono>
#include <cstdio>
#include <optional>

#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "cairn/json.h"
#include "cairn/stats_store.h"
#include "server/ui_page.h"

namespace cairn::internal {

namespace {

int http_status(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return 400;
    case ErrorCode::kNotFound: return 404;
    case ErrorCode::kFailedPrecondition: return 412;
    case ErrorCode::kObsoleteVersion: return 409;
    case ErrorCode::kStaleMetadata: return 503;
    case ErrorCode::kPermissionDenied: return 403;
    case ErrorCode::kUnauthenticated: return 401;
    case ErrorCode::kUnsupported: return 501;
    case ErrorCode::kUnavailable:
    case ErrorCode::kInsufficientReplicas: return 503;
    case ErrorCode::kTimeout: return 504;
    case ErrorCode::kCorruption:
    case ErrorCode::kIoError:
    case ErrorCode::kInternal: return 500;
  }
  return 500;
}

HttpResponse text(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  if (!r.body.empty() && r.body.back() != '\n') r.body += '\n';
  return r;
}

HttpResponse error(const Error& e) {
  HttpResponse r = text(http_status(e.code()), std::string(to_string(e.code())) + ": " + e.what());
  r.headers.emplace_back(kErrorHeader, to_string(e.code()));
  return r;
}

// How a value serializer's text form travels.
std::string media_type(const AnySerializer& s) {
  const std::string d = s.describe();
  if (d.starts_with("json")) return "application/json";
  if (d.starts_with("identity")) return "application/octet-stream";
  return "text/plain; charset=utf-8";
}

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> parts;
  size_t start = 1;  // past the leading '/'
  while (start <= path.size()) {
    const size_t end = std::min(path.find('/', start), path.size());
    parts.push_back(percent_decode(path.substr(start, end - start)));
    start = end + 1;
  }
  return parts;
}

VectorClock request_clock(const HttpRequest& request) {
  try {
    return VectorClock::parse(request.clock);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument(std::string(kClockHeader) + " header: " + e.what());
  }
}

// A label value in Prometheus' text format.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

std::string seconds(uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9f", static_cast<double>(ns) / 1e9);
  return buf;
}

}  // namespace

std::string percent_decode(std::string_view text) {
  auto hex = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out += text[i];
      continue;
    }
    const int h = i + 1 < text.size() ? hex(text[i + 1]) : -1;
    const int l = i + 2 < text.size() ? hex(text[i + 2]) : -1;
    if (h < 0 || l < 0) {
      throw InvalidArgument("malformed percent-encoding at byte " + std::to_string(i) + " of '" +
                            std::string(text) + "'");
    }
    out += static_cast<char>(h * 16 + l);
    i += 2;
  }
  return out;
}

HttpHandler::HttpHandler(const ServedStores& stores, NodeId node_id,
                         std::function<std::string()> extra_metrics,
                         std::function<std::string()> cluster_json,
                         std::shared_ptr<server::Access> access)
    : extra_metrics_(std::move(extra_metrics)),
      cluster_json_(std::move(cluster_json)),
      access_(std::move(access)) {
  ClientOptions options;
  options.node_id = node_id;
  for (const auto& [name, s] : stores) {
    stores_.emplace(name, Served{s, Client<std::string, std::string>(
                                        s.store, identity_serializer(), identity_serializer(),
                                        options)});
  }
}

void HttpHandler::count(int status) {
  if (status >= 0 && static_cast<size_t>(status) < responses_.size()) {
    responses_[static_cast<size_t>(status)].fetch_add(1, std::memory_order_relaxed);
  }
}

HttpResponse HttpHandler::handle(const HttpRequest& request) {
  HttpResponse r;
  try {
    r = route(request);
  } catch (const Error& e) {
    r = error(e);
  } catch (const std::exception& e) {
    r = error(Internal(e.what()));
  }
  count(r.status);
  return r;
}

std::optional<HttpResponse> HttpHandler::refused(const HttpRequest& request, std::string_view store,
                                                 uint8_t need, std::string_view op) const {
  if (access_ == nullptr || (request.authorization.empty() && access_->open())) return std::nullopt;
  const std::shared_ptr<const server::AccessPolicy> policy = access_->policy();
  const std::string_view token = server::bearer_token(request.authorization);
  if (policy->open() && token.empty()) return std::nullopt;
  // A token, or the connection's client certificate (HTTPS).
  static const std::vector<std::string> kNoNames;
  const server::Caller caller =
      policy->identify(token, request.cert_names != nullptr ? *request.cert_names : kNoNames);
  server::Decision d;
  if (store.empty()) {
    d = policy->check_known(caller, op);
  } else {
    d = policy->check(caller, store, need, op);
  }
  if (d.allowed()) return std::nullopt;
  access_->refused("http", d);
  const bool denied = d.kind == server::Decision::Kind::kDenied;
  HttpResponse r = text(denied ? 403 : 401, d.reason);
  r.headers.emplace_back(kErrorHeader, denied ? "PermissionDenied" : "Unauthenticated");
  if (!denied) {
    // RFC 6750: what the client should send.
    r.headers.emplace_back("WWW-Authenticate", caller.bad_token
                                                   ? "Bearer realm=\"cairn\", error=\"invalid_token\""
                                                   : "Bearer realm=\"cairn\"");
  }
  return r;
}

HttpResponse HttpHandler::route(const HttpRequest& request) {
  const std::string_view target = request.target;
  const std::string_view path = target.substr(0, target.find('?'));
  if (path.empty() || path[0] != '/') throw InvalidArgument("the request target is not a path");
  const std::vector<std::string> parts = split_path(path);
  const bool get = request.method == "GET";

  auto only_get = [&]() {
    if (get) return std::optional<HttpResponse>();
    HttpResponse r = text(405, request.method + " is not allowed here; use GET");
    r.headers.emplace_back("Allow", "GET");
    return std::optional<HttpResponse>(std::move(r));
  };
  if (parts.size() == 1 && parts[0] == "health") {
    if (auto r = only_get()) return *r;
    return draining_.load(std::memory_order_relaxed) ? text(503, "SHUTTING_DOWN")
                                                     : text(200, "SERVING");
  }
  if (parts.size() == 1 && parts[0] == "metrics") {
    if (auto r = only_get()) return *r;
    if (auto r = refused(request, "", internal::kRead, "read the metrics")) return *r;
    return metrics();
  }
  if (parts.size() == 1 && parts[0] == "stores") {
    if (auto r = only_get()) return *r;
    if (auto r = refused(request, "", internal::kRead, "list the stores")) return *r;
    return list_stores();
  }
  if (parts.size() == 1 && (parts[0] == "ui" || parts[0] == "cluster.json")) {
    if (auto r = only_get()) return *r;
    if (auto r = refused(request, "", internal::kRead, "read the cluster page")) return *r;
    if (!cluster_json_) {
      return text(404, "this node's cluster is not kept in etcd: no cluster page (see "
                       "docs/clusters.md, \"Metadata in etcd\")");
    }
    HttpResponse r;
    r.status = 200;
    if (parts[0] == "ui") {
      r.content_type = "text/html; charset=utf-8";
      r.body = kUiPage;
    } else {
      r.content_type = "application/json";
      r.body = cluster_json_();  // Unavailable (503) when etcd is away
    }
    r.headers.emplace_back("Cache-Control", "no-store");
    return r;
  }
  if (parts.size() == 4 && parts[0] == "stores" && parts[2] == "keys") {
    auto it = stores_.find(parts[1]);
    if (it == stores_.end()) {
      std::string known;
      for (const auto& [n, s] : stores_) known += (known.empty() ? "" : ", ") + n;
      throw NotFound("no store '" + parts[1] + "' on this server (it serves: " + known + ")");
    }
    const Served& s = it->second;
    const bool write = request.method == "PUT" || request.method == "DELETE";
    if (auto r = refused(request, parts[1], write ? internal::kWrite : internal::kRead,
                         get ? "get" : write ? (request.method == "PUT" ? "put" : "delete")
                                             : "read")) {
      return *r;
    }
    if (parts[3].empty()) throw InvalidArgument("the key is empty");
    const std::string key = s.store.key->parse_text(parts[3]);
    if (get) return get_key(s, key);
    if (request.method == "PUT") return put_key(s, key, request);
    if (request.method == "DELETE") return delete_key(s, key, request);
    HttpResponse r = text(405, request.method + " is not allowed on a key; use GET, PUT or DELETE");
    r.headers.emplace_back("Allow", "GET, PUT, DELETE");
    return r;
  }
  return text(404, "no resource " + std::string(path) +
                       " (try /stores/{store}/keys/{key}, /stores, /metrics, /health, /ui)");
}

HttpResponse HttpHandler::get_key(const Served& served, const std::string& key) {
  const ServedStore& s = served.store;
  const std::vector<Versioned> versions = s.store->get(key);
  if (versions.empty()) return text(404, "no such key");
  HttpResponse r;
  if (versions.size() == 1) {
    r.content_type = media_type(*s.value);
    r.body = s.value->format_text(versions[0].value);
    r.headers.emplace_back(kClockHeader, versions[0].clock.to_string());
    return r;
  }
  // Siblings: 300 Multiple Choices, one part per version with its own
  // clock (Riak's answer), and their merge in the header: a PUT with it
  // resolves them.
  std::vector<std::string> bodies;
  VectorClock merged;
  for (const Versioned& v : versions) {
    bodies.push_back(s.value->format_text(v.value));
    merged = merged.merged(v.clock);
  }
  std::string boundary = "cairn-siblings";
  for (int n = 0;; ++n) {
    bool clash = false;
    for (const std::string& b : bodies) clash = clash || b.find(boundary) != std::string::npos;
    if (!clash) break;
    boundary = "cairn-siblings-" + std::to_string(n);
  }
  r.status = 300;
  r.content_type = "multipart/mixed; boundary=" + boundary;
  r.headers.emplace_back(kClockHeader, merged.to_string());
  for (size_t i = 0; i < versions.size(); ++i) {
    r.body += "--" + boundary + "\r\nContent-Type: " + media_type(*s.value) + "\r\n" +
              kClockHeader + ": " + versions[i].clock.to_string() + "\r\n\r\n" + bodies[i] +
              "\r\n";
  }
  r.body += "--" + boundary + "--\r\n";
  return r;
}

HttpResponse HttpHandler::put_key(const Served& s, const std::string& key,
                                  const HttpRequest& request) {
  const std::string value = s.store.value->parse_text(request.body);
  // ?ttl=SECONDS: the version expires that long after the write (a store
  // with a `ttl` layer; docs/ttl.md). 0: the store's default; -1: never.
  std::chrono::milliseconds ttl(0);
  const std::string_view target = request.target;
  if (const size_t q = target.find('?'); q != std::string_view::npos) {
    for (std::string_view rest = target.substr(q + 1); !rest.empty();) {
      const size_t amp = rest.find('&');
      const std::string_view param = rest.substr(0, amp);
      rest = amp == std::string_view::npos ? std::string_view() : rest.substr(amp + 1);
      if (param.substr(0, 4) != "ttl=") {
        throw InvalidArgument("unknown parameter '" + std::string(param.substr(0, 64)) +
                              "' (a PUT takes ?ttl=SECONDS)");
      }
      const std::string n(param.substr(4));
      const bool digits = !n.empty() && n.size() <= 10 &&
                          n.find_first_not_of("0123456789") == std::string::npos;
      if (n == "-1") {
        ttl = std::chrono::milliseconds(-1);
      } else if (digits) {
        ttl = std::chrono::seconds(std::stoll(n));
      } else {
        throw InvalidArgument("ttl must be whole seconds (0: the store's default, -1: never), "
                              "not '" + n.substr(0, 64) + "'");
      }
    }
  }
  VectorClock written;
  if (request.clock.empty()) {
    // Supersedes every stored version; a racing write through this front
    // (same node id) is retried.
    written = s.bytes.put(key, value, ttl);
  } else {
    std::optional<VectorClock> w = s.bytes.put_if(key, value, request_clock(request), ttl);
    if (!w) {
      throw ObsoleteVersion("stale write: the key has a version the " + std::string(kClockHeader) +
                            " sent does not include (written since it was read); GET it again");
    }
    written = std::move(*w);
  }
  HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  r.headers.emplace_back(kClockHeader, written.to_string());
  return r;
}

HttpResponse HttpHandler::delete_key(const Served& s, const std::string& key,
                                     const HttpRequest& request) {
  bool deleted = false;
  if (request.clock.empty()) {
    deleted = s.bytes.remove(key);
  } else {
    // As a conditional PUT: only if every stored version is at or before
    // the clock sent, i.e. nothing was written since it was read.
    const VectorClock upto = request_clock(request);
    for (const VectorClock& c : s.store.store->versions(key)) {
      const Occurred o = compare(c, upto);
      if (o != Occurred::kBefore && o != Occurred::kEqual) {
        throw ObsoleteVersion("stale delete: the key has a version the " +
                              std::string(kClockHeader) +
                              " sent does not include (written since it was read); GET it again");
      }
    }
    deleted = s.store.store->remove(key, upto);
  }
  if (!deleted) return text(404, "no such key");
  HttpResponse r;
  r.status = 204;
  r.content_type.clear();
  return r;
}

HttpResponse HttpHandler::list_stores() const {
  Json::Array stores;
  for (const auto& [name, served] : stores_) {
    const ServedStore& s = served.store;
    stores.push_back(Json::object({{"name", name},
                                   {"key", s.key->describe()},
                                   {"value", s.value->describe()},
                                   {"stack", s.store->describe()}}));
  }
  HttpResponse r;
  r.content_type = "application/json";
  r.body = Json(std::move(stores)).dump() + "\n";
  return r;
}

HttpResponse HttpHandler::metrics() const {
  std::string out;
  out += "# HELP cairn_http_responses_total HTTP responses sent, by status code.\n";
  out += "# TYPE cairn_http_responses_total counter\n";
  for (size_t code = 0; code < responses_.size(); ++code) {
    const uint64_t n = responses_[code].load(std::memory_order_relaxed);
    if (n > 0) {
      out += "cairn_http_responses_total{code=\"" + std::to_string(code) + "\"} " +
             std::to_string(n) + "\n";
    }
  }
  // One family at a time, as the format requires: every store's stats
  // layer, snapshotted once.
  std::vector<std::pair<std::string, StatsStore::Snapshot>> snaps;
  for (const auto& [name, s] : stores_) {
    if (auto* stats = stats_of(s.store)) snaps.emplace_back(name, stats->snapshot());
  }
  auto family = [&](const char* name, const char* type, const char* help, auto&& line) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [store, snap] : snaps) {
      for (int i = 0; i < StatsStore::kOps; ++i) {
        const auto op = static_cast<StatsStore::Op>(i);
        if (snap[op].count == 0) continue;
        const std::string labels =
            "store=\"" + label(store) + "\",op=\"" + StatsStore::op_name(op) + "\"";
        line(labels, snap[op]);
      }
    }
  };
  family("cairn_store_operations_total", "counter",
         "Operations through a store's stats layer, failed ones included.",
         [&](const std::string& l, const StatsStore::OpStats& s) {
           out += "cairn_store_operations_total{" + l + "} " + std::to_string(s.count) + "\n";
         });
  family("cairn_store_errors_total", "counter", "Operations that failed.",
         [&](const std::string& l, const StatsStore::OpStats& s) {
           out += "cairn_store_errors_total{" + l + "} " + std::to_string(s.errors) + "\n";
         });
  family("cairn_store_latency_seconds", "summary", "Operation latency through the stats layer.",
         [&](const std::string& l, const StatsStore::OpStats& s) {
           const std::string m = "cairn_store_latency_seconds";
           out += m + "{" + l + ",quantile=\"0.5\"} " + seconds(s.latency.p50_ns) + "\n";
           out += m + "{" + l + ",quantile=\"0.99\"} " + seconds(s.latency.p99_ns) + "\n";
           out += m + "{" + l + ",quantile=\"0.999\"} " + seconds(s.latency.p999_ns) + "\n";
           out += m + "_sum{" + l + "} " + seconds(s.latency.sum_ns) + "\n";
           out += m + "_count{" + l + "} " + std::to_string(s.latency.count) + "\n";
         });
  if (extra_metrics_) out += extra_metrics_();
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = std::move(out);
  return r;
}

}  // namespace cairn::internal

// cairn-server: serves every store of a config over gRPC, each with the
// node's `node:` stack (or its `stack:`).

#include <signal.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <condition_variable>
#include <cstring>
#include <fstream>
#include <iostream>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <absl/synchronization/mutex.h>

#include "cairn/cache_store.h"
#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "cairn/log.h"
#include "cairn/memory_store.h"
#include "cairn/readonly_store.h"
#include "cairn/ring.h"
#include "cairn/ttl_store.h"
#include "cairn/version.h"
#include "core/config_internal.h"
#include "core/security_config.h"
#include "core/metadata_tag.h"
#include "metadata/follower.h"
#include "server/listen_address.h"
#include "metadata/liveness.h"
#include "metadata/move_record.h"
#include "server/grpc_server.h"
#include "server/http_server.h"
#include "server/metrics_text.h"
#include "server/resp_server.h"
#include "routing/hinted_handoff.h"
#include "routing/reaper.h"
#include "routing/routed_store.h"
#include "tools/flags.h"

namespace {

using namespace cairn;

// /metrics for the caches: the node's directory (which caches hold which
// keys here), and each `cache` layer in a store's stack.
std::string coherence_metrics(const internal::Directory& directory, const ServedStores& stores) {
  using internal::metric;
  const internal::Directory::Stats d = directory.stats();
  std::string out;
  out += metric("cairn_directory_subscriptions", "gauge", "Caches subscribed to this node.",
                d.subscriptions);
  out += metric("cairn_directory_tracked_keys", "gauge", "Keys some cache holds, tracked here.",
                d.tracked_keys);
  out += metric("cairn_directory_tracks_total", "counter", "Tracks accepted.", d.tracks);
  out += metric("cairn_directory_refused_tracks_total", "counter",
                "Tracks refused (directory full, or a store this node does not track).",
                d.refused_tracks);
  out += metric("cairn_directory_invalidations_total", "counter", "Invalidations sent to caches.",
                d.invalidations);
  out += metric("cairn_directory_dropped_total", "counter",
                "Strict caches dropped for not acknowledging an invalidation.", d.dropped);
  std::vector<std::pair<std::string, CacheStats>> caches;
  for (const auto& [name, s] : stores) {
    if (auto* c = find_layer<CacheStore>(*s.store)) caches.emplace_back(name, c->stats());
  }
  if (caches.empty()) return out;
  auto family = [&](const char* name, const char* type, const char* help, auto field) {
    std::string samples;
    for (const auto& [store, st] : caches) {
      samples += std::string(name) + "{store=\"" + store + "\"} " + std::to_string(field(st)) + "\n";
    }
    out += internal::metric_family(name, type, help, samples);
  };
  family("cairn_cache_hits_total", "counter", "Gets answered from the cache.",
         [](const CacheStats& s) { return s.hits; });
  family("cairn_cache_misses_total", "counter", "Gets read through.",
         [](const CacheStats& s) { return s.misses; });
  family("cairn_cache_uncached_total", "counter", "Misses whose value was not kept.",
         [](const CacheStats& s) { return s.uncached; });
  family("cairn_cache_invalidations_total", "counter", "Invalidations received.",
         [](const CacheStats& s) { return s.invalidations; });
  family("cairn_cache_evictions_total", "counter", "Entries evicted.",
         [](const CacheStats& s) { return s.evictions; });
  family("cairn_cache_flushes_total", "counter", "Times a home's entries (or all) were dropped.",
         [](const CacheStats& s) { return s.flushes; });
  family("cairn_cache_entries", "gauge", "Entries held.",
         [](const CacheStats& s) { return s.entries; });
  family("cairn_cache_bytes", "gauge", "Bytes the entries cost.",
         [](const CacheStats& s) { return s.bytes; });
  return out;
}

// The lifecycles of data (issue 18): expiry, reaping, read-only versions.
std::string lifecycle_metrics(const ServedStores& stores, const HintedHandoff* hints) {
  std::string out;
  // One family, a sample per store that has what `get` finds.
  auto family = [&](const char* name, const char* type, const char* help, auto get) {
    std::string samples;
    for (const auto& [store, s] : stores) {
      if (const std::optional<uint64_t> v = get(s)) {
        samples += std::string(name) + "{store=\"" + store + "\"} " + std::to_string(*v) + "\n";
      }
    }
    if (!samples.empty()) out += internal::metric_family(name, type, help, samples);
  };
  auto ttl = [](const ServedStore& s) -> std::optional<TtlStats> {
    if (auto* t = find_layer<TtlStore>(*s.store)) return t->stats();
    return std::nullopt;
  };
  auto reaped = [](const ServedStore& s) -> std::optional<ReapStats> {
    auto* r = find_layer<RoutedStore>(*s.store);
    if (r == nullptr || r->reaper() == nullptr) return std::nullopt;
    return r->reaper()->stats();
  };
  family("cairn_ttl_expired_hidden_total", "counter", "Expired versions reads left out.",
         [&](const ServedStore& s) { auto t = ttl(s); return t ? std::optional(t->expired_hidden) : std::nullopt; });
  family("cairn_ttl_swept_total", "counter", "Expired versions the ttl layer's sweeper deleted.",
         [&](const ServedStore& s) { auto t = ttl(s); return t ? std::optional(t->swept) : std::nullopt; });
  family("cairn_reaper_passes_total", "counter", "Reaping passes over this node's replica.",
         [&](const ServedStore& s) { auto r = reaped(s); return r ? std::optional(r->passes) : std::nullopt; });
  family("cairn_reaper_keys_reaped_total", "counter",
         "Deleted or expired keys removed from every replica.",
         [&](const ServedStore& s) { auto r = reaped(s); return r ? std::optional(r->keys_reaped) : std::nullopt; });
  family("cairn_reaper_held_unreachable_total", "counter",
         "Keys not reaped because a replica did not answer.",
         [&](const ServedStore& s) { auto r = reaped(s); return r ? std::optional(r->held_unreachable) : std::nullopt; });
  family("cairn_reaper_repaired_total", "counter",
         "Tombstones (or expired versions) sent to a replica that lacked them.",
         [&](const ServedStore& s) { auto r = reaped(s); return r ? std::optional(r->repaired) : std::nullopt; });
  family("cairn_readonly_live_version", "gauge", "The read-only version served (0: none).",
         [](const ServedStore& s) -> std::optional<uint64_t> {
           Store& own = s.replica != nullptr ? *s.replica : *s.store;
           if (auto* ro = find_layer<ReadOnlyStore>(own)) return ro->live_version();
           return std::nullopt;
         });
  if (hints != nullptr) {
    out += internal::metric("cairn_hints_dropped_too_old_total", "counter",
                            "Hints dropped because their write is older than the store's "
                            "reaping grace.",
                            hints->dropped_too_old());
  }
  return out;
}

constexpr char kHelp[] = R"(usage: cairn-server --config FILE [--node ID] [--listen ADDR:PORT] [--http ADDR:PORT]
                    [options]

Serves every store of the config over gRPC (the Store and Admin services of
layers/grpc/cairn.proto, plus gRPC health and reflection), each store with
the node's `node:` stack, or its `stack:`. "{node}" in the config's
parameters expands to the node id, so one config describes every node.

  --config FILE          the config (required)
  --node ID              this node's id in the config's cluster (default 0)
  --listen ADDR:PORT     where to listen; default: the node's address in the
                         config. Port 0 picks a free port (see --port-file).
                         Binds only the address given: 127.0.0.1 unless told
  --port-file FILE       write the port listened on to FILE once serving
  --http ADDR:PORT       also serve HTTP/1.1 there: GET/PUT/DELETE
                         /stores/STORE/keys/KEY, /stores, /metrics, /health
                         (see docs/network.md), HTTPS with the --tls
                         settings as gRPC's. Off by default
  --http-port-file FILE  write the HTTP port to FILE once serving
  --http-threads N       threads serving HTTP connections (default 2)
  --resp ADDR:PORT       also serve the Redis protocol (RESP2/RESP3) there,
                         for redis-cli and any Redis client: GET, SET, DEL,
                         EXISTS, MGET, MSET, SELECT STORE, CAIRN.VERSIONS,
                         ... (see docs/network.md), with the --tls
                         settings as gRPC's. Off by default
  --resp-port-file FILE  write the RESP port to FILE once serving
  --resp-threads N       I/O threads of the RESP front (default 2)
  --workers N            threads for engine work that may block (default 4)
  --route-threads N      threads for scans of stores the node routes, which
                         wait on other nodes (default 4); their gets, puts
                         and deletes, unary or streamed, need no thread
                         while they wait
  --max-message-size B   largest request or response in bytes (default 64 MiB)
  --request-timeout-ms N a call still queued for a worker N ms after it
                         arrived, or past the client's deadline if sooner,
                         fails with DEADLINE_EXCEEDED unrun (default 30000)
  --tls-cert FILE        serve TLS on every front with this certificate (PEM) ...
  --tls-key FILE         ... and this private key (PEM)
  --tls-ca FILE          require clients to present a certificate this CA
                         signed (mutual TLS), on every front. The --tls flags replace the
                         config's `cluster: tls: {cert, key, ca}`
  --grace-ms N           on SIGTERM or SIGINT, let in-flight calls finish for
                         up to N ms before cancelling them (default 5000)
  --version              print cairn's version and exit

A node of a cluster keeps hints for the other nodes (writes they missed)
in its `cluster: hints:` stack (in memory if the config has none, which
a restart loses) and delivers them once a second.

With a cluster kept in etcd (a config file of only `cluster: {etcd: ...}`),
the node holds a lease there while it serves, follows the config as
`cairn admin` changes it (partitions moving, nodes joining and leaving)
without a restart, and serves on its last version while etcd is away. A
node that joins the cluster starts with --node and --listen before the
config names it (`cairn admin rebalance --add ID=ADDR:PORT`).

On SIGTERM or SIGINT the server stops accepting calls (HTTP first, then
RESP, then gRPC), drains in-flight ones,
and closes its engines cleanly (LMDB flushed), then exits 0. Exit status: 2
for bad usage or config, 1 for a failure to serve.
)";

using tools::UsageError;

struct Args {
  std::string config;
  NodeId node = 0;
  std::string listen;
  std::string port_file;
  std::string http;
  std::string http_port_file;
  int http_threads = 2;
  std::string resp;
  std::string resp_port_file;
  int resp_threads = 2;
  ServerOptions server;
  int grace_ms = 5000;
};

// An integer flag value in [min, max].
std::optional<Args> parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kHelp;
      return std::nullopt;
    } else if (arg == "--version") {
      std::cout << "cairn-server " << cairn::version() << "\n";
      return std::nullopt;
    } else if (arg == "--config") {
      a.config = value();
    } else if (arg == "--node") {
      a.node = static_cast<NodeId>(tools::flag_number(arg, value(), 0, 65535));
    } else if (arg == "--listen") {
      a.listen = value();
    } else if (arg == "--port-file") {
      a.port_file = value();
    } else if (arg == "--http") {
      a.http = value();
    } else if (arg == "--http-port-file") {
      a.http_port_file = value();
    } else if (arg == "--http-threads") {
      a.http_threads = static_cast<int>(tools::flag_number(arg, value(), 1, 256));
    } else if (arg == "--resp") {
      a.resp = value();
    } else if (arg == "--resp-port-file") {
      a.resp_port_file = value();
    } else if (arg == "--resp-threads") {
      a.resp_threads = static_cast<int>(tools::flag_number(arg, value(), 1, 256));
    } else if (arg == "--workers") {
      a.server.worker_threads = static_cast<int>(tools::flag_number(arg, value(), 1, 1024));
    } else if (arg == "--route-threads") {
      a.server.route_threads = static_cast<int>(tools::flag_number(arg, value(), 1, 4096));
    } else if (arg == "--request-timeout-ms") {
      a.server.request_timeout =
          std::chrono::milliseconds(tools::flag_number(arg, value(), 1, 86400000));
    } else if (arg == "--max-message-size") {
      a.server.max_message_size = tools::flag_number(arg, value(), 1024, 2147483647);
    } else if (arg == "--tls-cert") {
      a.server.tls_cert = value();
    } else if (arg == "--tls-key") {
      a.server.tls_key = value();
    } else if (arg == "--tls-ca") {
      a.server.tls_ca = value();
    } else if (arg == "--grace-ms") {
      a.grace_ms = static_cast<int>(tools::flag_number(arg, value(), 0, 3600000));
    } else {
      throw UsageError("unknown argument " + arg + " (see --help)");
    }
  }
  if (a.config.empty()) throw UsageError("--config is required (see --help)");
  if (!a.http_port_file.empty() && a.http.empty()) {
    throw UsageError("--http-port-file needs --http");
  }
  if (!a.resp_port_file.empty() && a.resp.empty()) {
    throw UsageError("--resp-port-file needs --resp");
  }
  return a;
}

// Written whole under a temporary name, then renamed: a reader never sees a
// partial port.
void write_port(const std::string& file, int port) {
  const std::string tmp = file + ".tmp";
  std::ofstream(tmp) << port << "\n";
  if (std::rename(tmp.c_str(), file.c_str()) != 0) {
    throw IoError("cannot write the port to " + file + ": " + std::strerror(errno));
  }
}

// The cluster metadata a node follows, as of its last version.
class CurrentMetadata {
 public:
  CurrentMetadata(Config config, NodeId self) : config_(std::move(config)), self_(self) {}
  void set(const Config& c) {
    std::lock_guard lock(mu_);
    config_ = c;
  }
  bool moving() const {
    std::lock_guard lock(mu_);
    return !config_.cluster().moving_to.empty();
  }
  // Whether this node replicates partition `p` of `store` (of a ring of
  // `q` partitions) now or after the move in progress; true for anything
  // it cannot vouch for (another Q, an unknown store).
  bool replicates(const std::string& store, uint32_t q, uint32_t p) const {
    Config c = [&] {
      std::lock_guard lock(mu_);
      return config_;
    }();
    const ClusterInfo& cluster = c.cluster();
    if (q != cluster.partitions || p >= q) return true;
    int n = 0;
    try {
      n = c.replication(store).n;
    } catch (const NotFound&) {
      return true;
    }
    auto holds = [&](const Ring& r) {
      const std::vector<NodeId> list = r.preference_list(p, n);
      return std::find(list.begin(), list.end(), self_) != list.end();
    };
    if (holds(Ring(cluster))) return true;
    return !cluster.moving_to.empty() && holds(Ring(ClusterInfo{q, cluster.moving_to, {}}));
  }

 private:
  mutable std::mutex mu_;
  Config config_;  // guarded by mu_
  const NodeId self_;
};

// Reports in the node's liveness key the metadata version it routes by,
// once no write it routed by an older version is in flight: what `cairn
// admin rebalance` waits for. A thread of its own, so that the metadata's
// watch never waits on writes.
class VersionReporter {
 public:
  VersionReporter(std::string me, std::vector<RoutedStore*> stores,
                  internal::EtcdLiveness* liveness)
      : me_(std::move(me)), stores_(std::move(stores)), liveness_(liveness),
        thread_([this] { run(); }) {}
  ~VersionReporter() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void report(int64_t version) {
    std::lock_guard lock(mu_);
    target_ = version;
    cv_.notify_all();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    int64_t reported = 0;
    while (!stopping_) {
      cv_.wait(lock, [&] { return stopping_ || target_ != reported; });
      if (stopping_) break;
      const int64_t version = target_;
      lock.unlock();
      const auto start = std::chrono::steady_clock::now();
      bool said = false;
      for (;;) {
        bool done = true;
        for (RoutedStore* r : stores_) done &= r->older_writes_done();
        if (done) break;
        if (!said && std::chrono::steady_clock::now() - start > std::chrono::seconds(5)) {
          log(LogLevel::kWarn, me_ + ": writes routed by older metadata still in flight after "
                                     "5 s; version " + std::to_string(version) +
                                     " is reported once they end");
          said = true;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
        std::lock_guard check(mu_);
        if (stopping_) return;
      }
      if (liveness_ != nullptr) liveness_->report(version);
      log(LogLevel::kInfo, me_ + ": routing by metadata version " + std::to_string(version));
      reported = version;
      lock.lock();
    }
  }

  const std::string me_;
  const std::vector<RoutedStore*> stores_;
  internal::EtcdLiveness* const liveness_;
  std::mutex mu_;
  std::condition_variable cv_;
  int64_t target_ = 0;     // guarded by mu_
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;     // last: starts once the rest is set
};

// A new version of the cluster's metadata: every routed store switches to
// it (calls in flight finish on the old), and this node refuses calls
// routed by older metadata from now on. A version some store cannot take
// is not reported: the rebalance waiting for it says which node lags.
void follow_metadata(const std::string& me, const std::vector<RoutedStore*>& stores,
                     HintedHandoff* hints, VersionReporter& reporter,
                     const ClusterInfo& cluster, int64_t version) {
  if (hints != nullptr) hints->learn(cluster);
  for (RoutedStore* r : stores) {
    try {
      r->update(cluster, version);
    } catch (const std::exception& e) {
      log(LogLevel::kError, me + ": metadata version " + std::to_string(version) +
                                " not applied to a store, so not reported: " + e.what());
      return;
    }
  }
  internal::process_metadata_version().store(version);
  reporter.report(version);
}

int serve(const Args& a) {
  // Signals go to the waiting thread below, not to gRPC's threads: block
  // them before any thread starts, so every thread inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);  // reloads the security policy
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  const Config config = Config::load(a.config);
  // Metadata kept in etcd: replica calls routed by older metadata than
  // this node's are refused from now on (core/metadata_tag.h).
  const bool follows_etcd = !config.origin().etcd_endpoints.empty();
  if (follows_etcd) {
    internal::process_metadata_version().store(config.origin().version);
    internal::process_metadata_source() =
        internal::metadata_source_note(config.origin().etcd_endpoints, config.origin().prefix);
  }
  ServerOptions options = a.server;
  if (options.tls_cert.empty() && options.tls_key.empty() && options.tls_ca.empty()) {
    const ServerTls tls = config.server_tls(a.node);  // the config's, unless flags say
    options.tls_cert = tls.cert;
    options.tls_key = tls.key;
    options.tls_ca = tls.ca;
  }
  if (options.tls_cert.empty() != options.tls_key.empty()) {
    throw UsageError("--tls-cert and --tls-key go together");
  }
  if (!options.tls_ca.empty() && options.tls_cert.empty()) {
    throw UsageError("--tls-ca needs --tls-cert and --tls-key: mutual TLS is TLS first");
  }
  // The node's address in the cluster (empty if it is not in one).
  std::string address;
  for (const NodeInfo& n : config.nodes()) {
    if (n.id == a.node) address = n.address;
  }
  options.listen = a.listen.empty() ? address : a.listen;
  if (options.listen.empty()) {
    throw UsageError("no --listen, and node " + std::to_string(a.node) + " has no address in " +
                     a.config + "'s cluster section");
  }
  // A node not in a cluster kept in etcd joins it: the admin's move puts
  // it on the ring at the address it listens on.
  const bool joining = address.empty() && follows_etcd && !config.nodes().empty();
  if (joining) {
    address = options.listen;
    log(LogLevel::kInfo, "cairn-server node " + std::to_string(a.node) + " is not in the cluster's "
                         "metadata yet: it serves its own replicas and joins when `cairn admin "
                         "rebalance` adds it at " + address);
  }
  // Who may do what (server/access.h), on every front. Without a
  // `security:` section a server is open on loopback only; reachable
  // beyond it, it must check callers or say in words that it accepts
  // anyone.
  bool loopback_only = true;
  for (const auto& [l, front] : {std::pair<const std::string*, const char*>{&options.listen, "gRPC"},
                                 {&a.http, "HTTP"}, {&a.resp, "RESP"}}) {
    if (l->empty()) continue;
    const std::string host = l->substr(0, l->rfind(':'));
    bool loopback = host == "localhost";
    if (!loopback) {
      if (std::string_view(front) == "gRPC") {
        try {
          loopback = internal::parse_listen_address(*l, front).address().is_loopback();
        } catch (const Error&) {
          loopback = false;  // gRPC takes a host name: taken as reachable
        }
      } else {
        // The HTTP and RESP fronts take IP addresses only: a bad one is
        // its front's error.
        loopback = internal::parse_listen_address(*l, front).address().is_loopback();
      }
    }
    loopback_only &= loopback;
  }
  auto access = std::make_shared<server::Access>(
      std::make_shared<server::AccessPolicy>(config, loopback_only));
  if (const std::string no = access->policy()->startup_refusal(!options.tls_cert.empty(),
                                                                !options.tls_ca.empty());
      !no.empty()) {
    throw UsageError("cairn-server refuses to start: " + no);
  }
  if (ConfigInternal::security(config).open) {
    log(LogLevel::kWarn, "cairn-server node " + std::to_string(a.node) +
                             ": `security: {open: true}`: anyone who reaches this server may read, "
                             "write and administer every store");
  } else if (access->policy()->open()) {
    log(LogLevel::kInfo, "cairn-server node " + std::to_string(a.node) +
                             ": no `security:` section; open to anyone on loopback (docs/security.md)");
  }
  options.access = access;
  // A node of the cluster keeps hints for the others.
  std::shared_ptr<HintedHandoff> hints;
  const bool in_cluster = !address.empty();
  if (in_cluster && config.nodes().size() > 1) {
    std::unique_ptr<Store> hint_store = config.open_hints(a.node);
    if (!hint_store) {
      log(LogLevel::kWarn, "cairn-server node " + std::to_string(a.node) +
                               ": the config has no `cluster: hints:`; hints are kept in memory "
                               "and lost if this node restarts");
      hint_store = std::make_unique<MemoryStore>(MemoryOptions{.name = "hints", .max_key_size = 1024});
    }
    hints = std::make_shared<HintedHandoff>(std::move(hint_store), config.cluster(), a.node,
                                            config.server_tls(a.node));
    options.keep_hint = [hints](const Hint& h) { hints->keep(h); };
    options.pending_hints = [hints] { return hints->pending(); };
  }
  // The metadata this node follows (from etcd), for the partitions it may
  // drop once a move is over.
  auto metadata = std::make_shared<CurrentMetadata>(config, a.node);
  if (follows_etcd) {
    options.replicates = [metadata](const std::string& store, uint32_t q, uint32_t p) {
      return metadata->replicates(store, q, p);
    };
  }
  // Which caches hold which keys of this node's stores (layers/cache):
  // every write to the node's own copies invalidates them.
  auto directory = std::make_shared<internal::Directory>();
  options.directory = directory;
  std::map<std::string, ServedStore> stores;
  std::vector<RoutedStore*> routed_stores;  // what follows the metadata
  std::string served;
  for (const std::string& name : config.store_names()) {
    const StoreSerializers s = config.serializers(name);
    ServedStore store{std::shared_ptr<Store>(ConfigInternal::open_node(
                          config, name, a.node, hints, default_registry(), directory)), s.key,
                      s.value};
    if (auto* routed = find_layer<RoutedStore>(*store.store)) {
      store.replica = routed->local_replica();
      routed_stores.push_back(routed);
    } else {
      // A store spread over nodes this one does not route to: its stack
      // here is one replica, which an atomic update must not write alone.
      store.atomic = !ConfigInternal::partitioned(config, name);
    }
    // The stack on one line: "stats > lmdb 'users' at ...".
    std::string stack;
    for (const char c : store.store->describe()) {
      if (c == '\n') {
        stack += " > ";
      } else if (c != ' ' || !stack.ends_with("> ")) {
        stack += c;
      }
    }
    served += (served.empty() ? "" : "; ") + name + " (" + stack + ")";
    stores.emplace(name, std::move(store));
  }
  const ServedStores front_stores = stores;
  StoreServer server(options, std::move(stores));
  // A node of a cluster kept in etcd says there that it lives, and which
  // metadata it routes by.
  std::optional<internal::EtcdLiveness> liveness;
  if (in_cluster && follows_etcd) {
    liveness.emplace(config.origin(), a.node, address,
                     std::chrono::seconds(config.origin().lease_seconds));
  }
  std::unique_ptr<VersionReporter> reporter;
  // A policy loaded while serving (SIGHUP, the metadata in etcd): refused,
  // the one before staying, if the server could not have started with it
  // (say, principals beyond loopback without TLS: tokens in the clear).
  auto reloaded_policy = [tls = !options.tls_cert.empty(), ca = !options.tls_ca.empty(),
                          loopback_only](const Config& c) {
    auto policy = std::make_shared<server::AccessPolicy>(c, loopback_only);
    if (const std::string no = policy->startup_refusal(tls, ca); !no.empty()) {
      throw InvalidArgument("the server could not start with it: " + no);
    }
    return policy;
  };
  std::unique_ptr<internal::MetadataFollower> follower;
  if (follows_etcd) {
    const std::string me = "cairn-server node " + std::to_string(a.node);
    reporter = std::make_unique<VersionReporter>(me, routed_stores,
                                                 liveness ? &*liveness : nullptr);
    follower = std::make_unique<internal::MetadataFollower>(
        config.origin(), me,
        [&routed_stores, &hints, &reporter, metadata, me, access, reloaded_policy](
            const Config& c, int64_t version) {
          metadata->set(c);
          // The security policy follows the metadata too.
          try {
            access->replace(reloaded_policy(c));
          } catch (const Error& e) {
            log(LogLevel::kError, me + ": the metadata's security section is refused, the "
                                       "policy before it stays: " + std::string(e.what()));
          }
          follow_metadata(me, routed_stores, hints.get(), *reporter, c.cluster(), version);
        });
    for (RoutedStore* r : routed_stores) {
      r->set_refresh([f = follower.get()] { f->refresh(); });
    }
  }
  std::optional<RespServer> resp;
  if (!a.resp.empty()) {
    // The node's TLS, as its gRPC front's: a client certificate the CA
    // signed, if it asks for one.
    resp.emplace(RespServerOptions{.listen = a.resp,
                                   .threads = a.resp_threads,
                                   .workers = options.worker_threads,
                                   .node_id = a.node,
                                   .max_command = options.max_message_size,
                                   .tls_cert = options.tls_cert,
                                   .tls_key = options.tls_key,
                                   .tls_ca = options.tls_ca,
                                   .access = access},
                 front_stores);
  }
  std::optional<HttpServer> http;
  if (!a.http.empty()) {
    HttpOptions h;
    h.listen = a.http;
    h.threads = a.http_threads;
    h.node_id = a.node;
    h.max_body = options.max_message_size;
    h.tls_cert = options.tls_cert;
    h.tls_key = options.tls_key;
    h.tls_ca = options.tls_ca;
    h.access = access;
    h.extra_metrics = [&server, &liveness, &resp, metadata, directory, &front_stores, hints, access] {
      std::string out = resp ? resp->metrics() : "";
      out += coherence_metrics(*directory, front_stores);
      out += lifecycle_metrics(front_stores, hints.get());
      out += "# HELP cairn_security_refused_total Requests refused by the security policy, by "
             "front and reason.\n# TYPE cairn_security_refused_total counter\n";
      for (const auto& [front, r] : access->refusals()) {
        out += "cairn_security_refused_total{front=\"" + front + "\",reason=\"unauthenticated\"} " +
               std::to_string(r.unauthenticated) + "\n";
        out += "cairn_security_refused_total{front=\"" + front + "\",reason=\"permission_denied\"} " +
               std::to_string(r.denied) + "\n";
      }
      const StoreServer::Atomics atomics = server.atomics();
      out += internal::metric("cairn_atomic_updates_total", "counter",
                              "Atomic updates run here as a key's home.", atomics.updates);
      out += internal::metric("cairn_atomic_writes_total", "counter",
                              "Writes that carried them (updates queued on one key share one).",
                              atomics.writes);
      out +=
          "# HELP cairn_grpc_calls_total gRPC calls served, by store.\n"
          "# TYPE cairn_grpc_calls_total counter\n";
      for (const auto& [name, n] : server.calls()) {
        out += "cairn_grpc_calls_total{store=\"" + name + "\"} " + std::to_string(n) + "\n";
      }
      if (liveness) {
        // A node of a cluster kept in etcd: moves can happen.
        const StoreServer::Pulls pulls = server.pulls();
        out += "# HELP cairn_rebalance_pulls Partition pulls running on this node (a move).\n"
               "# TYPE cairn_rebalance_pulls gauge\n"
               "cairn_rebalance_pulls " + std::to_string(pulls.active) + "\n"
               "# HELP cairn_rebalance_pulled_keys_total Keys this node copied in moves.\n"
               "# TYPE cairn_rebalance_pulled_keys_total counter\n"
               "cairn_rebalance_pulled_keys_total " + std::to_string(pulls.keys) + "\n"
               "# HELP cairn_rebalance_pulled_bytes_total Bytes this node copied in moves.\n"
               "# TYPE cairn_rebalance_pulled_bytes_total counter\n"
               "cairn_rebalance_pulled_bytes_total " + std::to_string(pulls.bytes) + "\n";
        out += "# HELP cairn_metadata_moving Whether the metadata holds a move in progress.\n"
               "# TYPE cairn_metadata_moving gauge\n"
               "cairn_metadata_moving " + std::string(metadata->moving() ? "1" : "0") + "\n";
        out += "# HELP cairn_metadata_version The cluster config's version in etcd the node routes by.\n"
               "# TYPE cairn_metadata_version gauge\n"
               "cairn_metadata_version " +
               std::to_string(internal::process_metadata_version().load()) + "\n"
               "# HELP cairn_metadata_etcd_up Whether the node's last lease renewal reached etcd.\n"
               "# TYPE cairn_metadata_etcd_up gauge\n"
               "cairn_metadata_etcd_up " + std::string(liveness->connected() ? "1" : "0") + "\n";
      }
      return out;
    };
    if (follows_etcd) {
      // The cluster page's JSON, read from etcd at each request (a page
      // polls once a second).
      auto etcd = std::make_shared<internal::EtcdClient>(
          internal::EtcdClient::Options{.endpoints = config.origin().etcd_endpoints});
      h.cluster_json = [etcd, prefix = config.origin().prefix] {
        return internal::cluster_status_json(*etcd, prefix);
      };
    }
    http.emplace(std::move(h), front_stores);
  }
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  std::string http_note =
      http ? ", HTTP on " + a.http.substr(0, a.http.rfind(':')) + ":" + std::to_string(http->port()) +
                 (options.tls_cert.empty() ? "" : " (TLS)")
           : "";
  if (resp) {
    http_note += ", RESP on " + a.resp.substr(0, a.resp.rfind(':')) + ":" +
                 std::to_string(resp->port()) + (options.tls_cert.empty() ? "" : " (TLS)");
  }
  log(LogLevel::kInfo, "cairn-server node " + std::to_string(a.node) + " listening on " + host +
                           ":" + std::to_string(server.port()) +
                           (options.tls_cert.empty() ? "" : " (TLS)") + http_note + ", serving " +
                           served);
  if (!a.port_file.empty()) write_port(a.port_file, server.port());
  if (http && !a.http_port_file.empty()) write_port(a.http_port_file, http->port());
  if (resp && !a.resp_port_file.empty()) write_port(a.resp_port_file, resp->port());
  if (hints) hints->start();
  std::exception_ptr stop_error;
  std::thread stopper([&] {
    int sig = 0;
    for (;;) {
      sigwait(&signals, &sig);
      if (sig != SIGHUP) break;
      // SIGHUP: the config file's `security:` again (a cluster kept in
      // etcd follows it from there). A policy that does not parse keeps
      // the one before it.
      if (follows_etcd) {
        log(LogLevel::kInfo, "cairn-server node " + std::to_string(a.node) +
                                 ": SIGHUP: the security policy follows the metadata in etcd");
        continue;
      }
      try {
        access->replace(reloaded_policy(Config::load(a.config)));
        log(LogLevel::kInfo, "cairn-server node " + std::to_string(a.node) +
                                 ": SIGHUP: security policy reloaded from " + a.config);
      } catch (const std::exception& e) {
        log(LogLevel::kError, "cairn-server node " + std::to_string(a.node) +
                                  ": SIGHUP: cannot reload " + a.config +
                                  "; the policy before stays: " + e.what());
      }
    }
    log(LogLevel::kInfo, std::string("cairn-server node ") + std::to_string(a.node) + ": " +
                             (sig == SIGTERM ? "SIGTERM" : "SIGINT") + ", draining");
    // One grace for both fronts: HTTP drains first, gRPC gets the rest.
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(a.grace_ms);
    // No metadata applied to stores that close (the follower itself lives
    // on until they have: their retries may still ask it to refresh).
    if (follower) follower->stop();
    try {
      if (http) http->shutdown(std::chrono::milliseconds(a.grace_ms));
      if (resp) {
        resp->shutdown(std::max(std::chrono::milliseconds(0),
                                std::chrono::duration_cast<std::chrono::milliseconds>(
                                    until - std::chrono::steady_clock::now())));
      }
      server.shutdown(std::max(std::chrono::milliseconds(0),
                               std::chrono::duration_cast<std::chrono::milliseconds>(
                                   until - std::chrono::steady_clock::now())));
    } catch (...) {
      stop_error = std::current_exception();  // a store failed to close
    }
  });
  server.wait();
  stopper.join();
  follower.reset();
  reporter.reset();
  liveness.reset();  // its key goes now, not when the lease runs out
  if (hints) hints->close();
  if (stop_error) std::rethrow_exception(stop_error);
  log(LogLevel::kInfo, "cairn-server node " + std::to_string(a.node) + " stopped; stores closed");
  // Every store and file is closed. Leave without gRPC's global teardown:
  // in 1.51 it joins an executor thread that may sit in a 10-second
  // epoll_wait, so a clean stop would sometimes take 10 s longer.
  std::fflush(nullptr);
  std::_Exit(0);
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil tracks lock order on every Mutex (deadlock detection),
  // and gRPC takes many: measured, it cost a few percent of a node's CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  try {
    const std::optional<Args> a = parse(argc, argv);
    return a ? serve(*a) : 0;
  } catch (const UsageError& e) {
    std::cerr << "cairn-server: " << e.what() << "\n";
    return 2;
  } catch (const cairn::InvalidArgument& e) {
    std::cerr << "cairn-server: " << e.what() << "\n";
    return 2;
  } catch (const cairn::NotFound& e) {
    std::cerr << "cairn-server: " << e.what() << "\n";
    return 2;
  } catch (const cairn::Error& e) {
    std::cerr << "cairn-server: " << cairn::to_string(e.code()) << ": " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "cairn-server: " << e.what() << "\n";
    return 1;
  }
}

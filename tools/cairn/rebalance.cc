#include "tools/cairn/rebalance.h"

#include <grpcpp/grpcpp.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <thread>

#include "cairn/errors.h"
#include "cairn/ring.h"
#include "core/config_internal.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/wire.h"
#include "metadata/etcd_client.h"
#include "metadata/liveness.h"
#include "metadata/move_record.h"
#include "routing/rebalance.h"
#include "tools/cairn/credentials.h"
#include "tools/flags.h"

namespace cairn::tools {

namespace {

using internal::EtcdClient;
using internal::EtcdLiveness;
using Clock = std::chrono::steady_clock;

// ---- The config and the record, as etcd keeps them ---------------------------

// The config text `text` with its cluster's nodes replaced by `nodes` and
// `moving_to` set (or removed, if empty). The rest is kept as YAML reads it
// (comments go).
std::string with_cluster(const std::string& text, const std::vector<NodeInfo>& nodes,
                         const std::vector<NodeInfo>& moving_to) {
  YAML::Node root = YAML::Load(text);
  YAML::Node cluster = root["cluster"];
  cluster["nodes"] = internal::nodes_yaml(nodes);
  if (moving_to.empty()) {
    cluster.remove("moving_to");
  } else {
    cluster["moving_to"] = internal::nodes_yaml(moving_to);
  }
  YAML::Emitter out;
  out << root;
  return std::string(out.c_str()) + "\n";
}

// ---- Talking to etcd and the nodes --------------------------------------------

// Runs `fn` against etcd, waiting while etcd is unreachable (and saying
// so every few seconds) until `deadline`.
template <typename Fn>
auto with_etcd(const char* what, Clock::time_point deadline, Fn&& fn) -> decltype(fn()) {
  auto said = Clock::time_point();
  for (;;) {
    try {
      return fn();
    } catch (const Unavailable& e) {
      if (Clock::now() > deadline) {
        throw Unavailable(std::string(what) + ": etcd stayed unreachable: " + e.what());
      }
      if (Clock::now() - said > std::chrono::seconds(5)) {
        std::cerr << "etcd unreachable; the rebalance waits (" << what << "): " << e.what()
                  << "\n";
        said = Clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

struct Metadata {
  std::string text;
  int64_t version = 0;
  std::optional<Config> config;
};

Metadata read_metadata(EtcdClient& etcd, const std::string& key) {
  std::optional<EtcdClient::Entry> e = etcd.get(key);
  if (!e) throw NotFound("etcd has no cluster config at '" + key + "'");
  Metadata m;
  m.text = e->value;
  m.version = e->mod_revision;
  m.config = Config::parse(m.text, "etcd:" + key + "@" + std::to_string(m.version));
  return m;
}

// Writes the config of `m` with its cluster's nodes and `moving_to`
// replaced, and `record`, in one transaction guarded by m's version; the
// metadata etcd then holds. Throws FailedPrecondition saying `changed` if
// the config changed since `m` was read (nothing is written then).
Metadata commit_layout(EtcdClient& etcd, const std::string& config_key,
                       const std::string& record_key, const Metadata& m,
                       const std::vector<NodeInfo>& nodes, const std::vector<NodeInfo>& moving_to,
                       const internal::MoveRecord& record, const char* what,
                       const std::string& changed, Clock::time_point deadline) {
  Metadata out;
  out.text = with_cluster(m.text, nodes, moving_to);
  // What the nodes will read must read.
  out.config = Config::parse(out.text, std::string("the config ") + what);
  const std::vector<EtcdClient::Write> writes = {{.key = config_key, .value = out.text},
                                                 {.key = record_key, .value = record.encode()}};
  const bool committed = with_etcd(what, deadline, [&] {
    return etcd.commit_if(config_key, m.version, writes, &out.version);
  });
  if (!committed) throw FailedPrecondition(changed);
  return out;
}

// Waits until every node of `nodes` that holds a lease routes by `version`
// or later. A node without a lease is down: it routes nothing, and reads
// the config anew when it starts.
void wait_for_nodes(EtcdClient& etcd, const std::string& prefix, const std::set<NodeId>& nodes,
                    int64_t version, Clock::time_point deadline) {
  auto said = Clock::now();
  std::set<NodeId> told_down;
  for (;;) {
    const auto alive = with_etcd("reading the nodes' leases", deadline,
                                 [&] { return EtcdLiveness::read_all(etcd, prefix); });
    std::string lagging;
    for (NodeId id : nodes) {
      auto it = alive.find(id);
      if (it == alive.end()) {
        if (told_down.insert(id).second) {
          std::cerr << "node " << id << " holds no lease (down?): not waited for\n";
        }
        continue;
      }
      if (it->second.version < version) {
        lagging += (lagging.empty() ? "" : ", ") + std::string("node ") + std::to_string(id) +
                   " (at version " + std::to_string(it->second.version) + ")";
      }
    }
    if (lagging.empty()) return;
    if (Clock::now() > deadline) {
      throw Timeout("nodes did not come to metadata version " + std::to_string(version) +
                    " in time: " + lagging + "; run the rebalance again to resume");
    }
    if (Clock::now() - said > std::chrono::seconds(3)) {
      std::cerr << "waiting for " << lagging << " to route by version " << version << "\n";
      said = Clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::unique_ptr<rpc::Admin::Stub> admin_stub(const std::string& address) {
  return rpc::Admin::NewStub(channel_to(address));
}

// Waits until no node holds a hint for a live node (one with a lease): a
// replica that missed a write before the move gets it before it is copied
// from, or copied to and read by the new layout. Hints for a node that is
// down wait for it, not for the move.
void wait_for_hints(EtcdClient& etcd, const std::string& prefix, const Ring& before,
                    const Ring& after, Clock::time_point deadline) {
  auto said = Clock::now();
  for (;;) {
    const auto alive = with_etcd("reading the nodes' leases", deadline,
                                 [&] { return EtcdLiveness::read_all(etcd, prefix); });
    std::map<NodeId, uint64_t> pending;  // by the node the hints are for
    for (const auto& [id, a] : alive) {
      if (!before.has_node(id) && !after.has_node(id)) continue;
      grpc::ClientContext ctx;
      authorize(&ctx);
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
      rpc::PendingHintsResponse resp;
      const grpc::Status st = admin_stub(a.address)->PendingHints(&ctx, rpc::PendingHintsRequest(), &resp);
      if (!st.ok()) continue;  // keeps none, or just went down
      for (const auto& [node, n] : resp.by_node()) {
        if (alive.contains(static_cast<NodeId>(node))) pending[static_cast<NodeId>(node)] += n;
      }
    }
    if (pending.empty()) return;
    std::string which;
    for (const auto& [node, n] : pending) {
      which += (which.empty() ? "" : ", ") + std::to_string(n) + " for node " + std::to_string(node);
    }
    if (Clock::now() > deadline) {
      throw Timeout("hints still wait to be delivered (" + which + "); run the rebalance again");
    }
    if (Clock::now() - said > std::chrono::seconds(3)) {
      std::cerr << "waiting for hints to be delivered: " << which << "\n";
      said = Clock::now();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) {
    b /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", b, units[u]);
  return buf;
}

// The progress line: partition copies done of all, bytes, rate, ETA.
class Progress {
 public:
  Progress(size_t total, size_t done) : total_(total), done_(done), start_done_(done) {}
  void copied(size_t n) { done_ += n; }
  void bytes(uint64_t b) { bytes_ = b; }
  void show(bool force = false) {
    const auto now = Clock::now();
    if (!force && now - shown_ < std::chrono::milliseconds(200)) return;
    shown_ = now;
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double rate = secs > 0 ? double(bytes_) / secs : 0;
    std::string eta = "-";
    if (done_ > start_done_ && done_ < total_) {
      eta = std::to_string(static_cast<long>(secs / double(done_ - start_done_) *
                                             double(total_ - done_))) + " s";
    }
    const int width = 30;
    const int filled = total_ == 0 ? width : static_cast<int>(width * done_ / total_);
    char line[200];
    std::snprintf(line, sizeof line, "[%s%s] %zu/%zu partition copies, %s, %s/s, ETA %s",
                  std::string(static_cast<size_t>(filled), '=').c_str(),
                  std::string(static_cast<size_t>(width - filled), ' ').c_str(), done_, total_,
                  human_bytes(double(bytes_)).c_str(), human_bytes(rate).c_str(), eta.c_str());
    if (tty_) {
      std::cerr << "\r" << line << "\x1b[K" << std::flush;
    } else if (force) {
      std::cerr << line << "\n";
    }
  }
  void end() {
    show(true);
    if (tty_) std::cerr << "\n";
  }

 private:
  const size_t total_;
  size_t done_;
  const size_t start_done_;
  uint64_t bytes_ = 0;
  const Clock::time_point start_ = Clock::now();
  Clock::time_point shown_;
  const bool tty_ = isatty(2) != 0;
};

// The stores spread over the partitions, with their N.
std::vector<std::pair<std::string, int>> partitioned_stores(const Config& c) {
  std::vector<std::pair<std::string, int>> out;
  for (const std::string& name : c.store_names()) {
    if (ConfigInternal::partitioned(c, name)) out.emplace_back(name, c.replication(name).n);
  }
  return out;
}

std::set<NodeId> node_ids(const Ring& a, const Ring& b) {
  std::set<NodeId> out;
  for (const Ring* r : {&a, &b}) {
    for (const NodeInfo& n : r->nodes()) out.insert(n.id);
  }
  return out;
}

// ---- The steps ---------------------------------------------------------------

// Step 3: each partition copy a new replica lacks, pulled from a current
// replica that holds a lease, a few partitions per call; the record notes
// each batch once it is in.
void copy_partitions(EtcdClient& etcd, const std::string& prefix, const Metadata& m,
                     const Ring& before, const Ring& after, internal::MoveRecord* record,
                     const RebalanceOptions& o, Clock::time_point deadline) {
  struct Batch {
    std::string store;
    NodeId to = 0;
    NodeId from = 0;
    std::vector<uint32_t> partitions;
  };
  const auto alive = with_etcd("reading the nodes' leases", deadline,
                               [&] { return EtcdLiveness::read_all(etcd, prefix); });
  std::vector<Batch> batches;
  size_t total = 0, done = 0;
  for (const auto& [store, n] : partitioned_stores(*m.config)) {
    const internal::RebalancePlan plan = internal::plan_rebalance(before, after, n);
    std::map<std::pair<NodeId, NodeId>, std::vector<uint32_t>> by_pair;
    for (const internal::ReplicaMove& move : plan.moves) {
      ++total;
      if (record->copied.contains(internal::MoveRecord::copy_key(store, move.to, move.partition))) {
        ++done;
        continue;
      }
      auto donor = std::find_if(move.from.begin(), move.from.end(),
                                [&](NodeId id) { return alive.contains(id); });
      if (donor == move.from.end()) {
        throw Unavailable("store '" + store + "': no node that holds partition " +
                          std::to_string(move.partition) + " holds a lease (down?); start one "
                          "of them and run the rebalance again");
      }
      by_pair[{move.to, *donor}].push_back(move.partition);
    }
    for (auto& [pair, partitions] : by_pair) {
      // A few partitions per pull: what a second run redoes, at most.
      for (size_t i = 0; i < partitions.size(); i += 4) {
        Batch b{store, pair.first, pair.second, {}};
        b.partitions.assign(partitions.begin() + static_cast<std::ptrdiff_t>(i),
                            partitions.begin() + static_cast<std::ptrdiff_t>(
                                                     std::min(i + 4, partitions.size())));
        batches.push_back(std::move(b));
      }
    }
  }
  if (done > 0) std::cerr << "resuming: " << done << " of " << total << " copies done before\n";
  Progress progress(total, done);
  const uint64_t bytes_before = record->bytes;
  uint64_t bytes = 0;
  const std::string record_key = prefix + "rebalance";
  for (const Batch& b : batches) {
    const Ring& layout = after.has_node(b.to) ? after : before;
    rpc::PullPartitionsRequest req;
    req.set_store(b.store);
    req.set_from(before.node(b.from).address);
    req.set_ring_partitions(before.partitions());
    for (uint32_t p : b.partitions) req.add_partition_ids(p);
    req.set_max_bytes_per_second(o.max_bytes_per_second);
    auto stub = admin_stub(layout.node(b.to).address);
    grpc::ClientContext ctx;
    authorize(&ctx);
    auto reader = stub->PullPartitions(&ctx, req);
    rpc::PullProgress msg;
    uint64_t keys = 0, got = 0;
    bool finished = false;
    while (reader->Read(&msg)) {
      keys = msg.keys();
      got = msg.bytes();
      finished = msg.done();
      progress.bytes(bytes + got);
      progress.show();
    }
    const grpc::Status st = reader->Finish();
    if (!st.ok() || !finished) {
      progress.end();
      const std::string where = "node " + std::to_string(b.to) + " pulling store '" + b.store +
                                "' from node " + std::to_string(b.from);
      if (!st.ok()) internal::throw_status(st, where);
      throw Unavailable(where + ": the stream ended before the copy was done");
    }
    bytes += got;
    for (uint32_t p : b.partitions) record->copied.insert(internal::MoveRecord::copy_key(b.store, b.to, p));
    record->keys += keys;
    record->bytes = bytes_before + bytes;
    with_etcd("noting progress", deadline, [&] { return etcd.put(record_key, record->encode()); });
    progress.copied(b.partitions.size());
    progress.show(true);
  }
  progress.end();
}

// Step 5: the copies the old replicas no longer hold go.
void drop_partitions(EtcdClient& etcd, const std::string& prefix, const Config& config,
                     const Ring& before, const Ring& after, internal::MoveRecord* record,
                     Clock::time_point deadline) {
  const auto alive = with_etcd("reading the nodes' leases", deadline,
                               [&] { return EtcdLiveness::read_all(etcd, prefix); });
  const std::string record_key = prefix + "rebalance";
  for (const auto& [store, n] : partitioned_stores(config)) {
    std::map<NodeId, std::vector<uint32_t>> by_node;
    for (const internal::ReplicaDrop& d : internal::plan_rebalance(before, after, n).drops) {
      by_node[d.node].push_back(d.partition);
    }
    for (const auto& [node, partitions] : by_node) {
      const std::string key = store + "/" + std::to_string(node);
      if (record->dropped.contains(key)) continue;
      if (!alive.contains(node)) {
        std::cout << "node " << node << " holds no lease: its " << partitions.size()
                  << " old copies of store '" << store << "' stay until it is emptied (no read "
                  << "reaches them)\n";
      } else {
        rpc::DropPartitionsRequest req;
        req.set_store(store);
        req.set_ring_partitions(before.partitions());
        for (uint32_t p : partitions) req.add_partition_ids(p);
        rpc::DropPartitionsResponse resp;
        grpc::ClientContext ctx;
        authorize(&ctx);
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
        const grpc::Status st = admin_stub(before.node(node).address)->DropPartitions(&ctx, req, &resp);
        if (!st.ok()) {
          internal::throw_status(st, "node " + std::to_string(node) + " dropping store '" +
                                         store + "'");
        }
        std::cout << "node " << node << " dropped " << resp.keys() << " keys of " << partitions.size()
                  << " partitions of store '" << store << "'\n";
      }
      record->dropped.insert(key);
      with_etcd("noting progress", deadline, [&] { return etcd.put(record_key, record->encode()); });
    }
  }
}

}  // namespace

int rebalance(const RebalanceOptions& o) {
  // The file names etcd; loading it reads etcd, which may be away.
  const Config file = with_etcd("reading the config", Clock::now() + o.wait,
                                [&] { return Config::load(o.config); });
  const MetadataOrigin& origin = file.origin();
  if (origin.etcd_endpoints.empty()) {
    throw UsageError("admin rebalance moves partitions of a cluster kept in etcd; " + o.config +
                     " lists its cluster itself (see cairn admin init)");
  }
  EtcdClient etcd({.endpoints = origin.etcd_endpoints});
  const std::string config_key = origin.prefix + "config";
  const std::string record_key = origin.prefix + "rebalance";
  const auto started = Clock::now();
  auto deadline = [&] { return Clock::now() + o.wait; };

  Metadata m = with_etcd("reading the config", deadline(), [&] { return read_metadata(etcd, config_key); });
  auto held = with_etcd("reading the record", deadline(), [&] { return etcd.get(record_key); });
  const bool changes = !o.add.empty() || !o.remove.empty();
  if (held && changes) {
    throw FailedPrecondition("a rebalance is in progress (see cairn admin status); run "
                             "`cairn admin rebalance` without --add or --remove to finish it first");
  }
  internal::MoveRecord record;
  if (held) {
    record = internal::MoveRecord::decode(held->value);
    std::cerr << "resuming the rebalance that began at metadata version " << record.from_version
              << "\n";
  } else if (!changes) {
    if (!m.config->cluster().moving_to.empty()) {
      throw FailedPrecondition("the config in etcd holds `moving_to` but no rebalance record: "
                               "it was written by hand; remove `moving_to` with cairn admin init "
                               "of a fixed config");
    }
    std::cout << "no rebalance in progress; nothing to do (give --add or --remove)\n";
    return 0;
  } else {
    // Step 1: the plan, into etcd with the config in one transaction.
    const Ring before(m.config->cluster());
    Ring after = before;
    try {
      for (const NodeInfo& n : o.add) after = after.with_node(n);
      for (NodeId id : o.remove) after = after.without_node(id);
    } catch (const InvalidArgument& e) {
      throw UsageError(e.what());
    }
    for (const auto& [store, n] : partitioned_stores(*m.config)) {
      if (static_cast<int>(after.nodes().size()) < n) {
        throw UsageError("store '" + store + "' has N = " + std::to_string(n) + ", and the "
                         "cluster would have " + std::to_string(after.nodes().size()) + " nodes");
      }
      // The summary of the plan (`cairn admin plan` lists every copy).
      const std::string plan =
          internal::describe(internal::plan_rebalance(before, after, n), before, after);
      std::cout << "store '" << store << "': ";
      for (size_t at = 0; at < plan.size();) {
        const size_t end = plan.find('\n', at);
        const std::string line = plan.substr(at, end - at);
        if (!line.starts_with("  ")) std::cout << line << "\n";
        at = end == std::string::npos ? plan.size() : end + 1;
      }
    }
    record.from_version = m.version;
    record.before = before.to_cluster().nodes;
    m = commit_layout(etcd, config_key, record_key, m, before.to_cluster().nodes,
                      after.to_cluster().nodes, record, "starting the move",
                      "the config in etcd changed while the move was planned (it was version " +
                          std::to_string(m.version) + "); nothing changed, run again",
                      deadline());
    std::cerr << "metadata version " << m.version << ": writes of moving partitions go to their "
              << "old and new replicas\n";
  }

  const Ring before(ClusterInfo{m.config->cluster().partitions, record.before, {}});
  if (!record.switched) {
    const ClusterInfo& c = m.config->cluster();
    if (c.moving_to.empty()) {
      throw FailedPrecondition("the rebalance record says partitions move, but the config in etcd "
                               "holds no `moving_to` (changed by hand?); delete '" + record_key +
                               "' only if you know the move is over");
    }
    const Ring after(ClusterInfo{c.partitions, c.moving_to, {}});
    // Step 2: every node routes writes to both layouts; writes the
    // sources missed before are delivered to them.
    wait_for_nodes(etcd, origin.prefix, node_ids(before, after), m.version, deadline());
    wait_for_hints(etcd, origin.prefix, before, after, deadline());
    // Step 3.
    copy_partitions(etcd, origin.prefix, m, before, after, &record, o, deadline());
    // Writes the new replicas missed during the copy reach them first.
    wait_for_hints(etcd, origin.prefix, before, after, deadline());
    // Step 4: the new layout.
    record.switched = true;
    const std::vector<NodeInfo> new_nodes = c.moving_to;  // `c` is m's, replaced below
    m = commit_layout(etcd, config_key, record_key, m, new_nodes, {}, record,
                      "switching to the new layout",
                      "the config in etcd changed during the move (it was version " +
                          std::to_string(m.version) + "); run the rebalance again",
                      deadline());
    std::cerr << "metadata version " << m.version << ": the new layout serves\n";
  }
  // Step 5: everyone on the new layout, then the old copies go.
  const Ring after(m.config->cluster());
  wait_for_nodes(etcd, origin.prefix, node_ids(before, after), m.version, deadline());
  drop_partitions(etcd, origin.prefix, *m.config, before, after, &record, deadline());
  const bool ended = with_etcd("ending the move", deadline(), [&] {
    const std::vector<EtcdClient::Write> end = {{.key = record_key, .value = std::nullopt}};
    return etcd.commit_if(config_key, m.version, end);
  });
  if (!ended) {
    throw FailedPrecondition("the config in etcd changed as the move ended (it was version " +
                             std::to_string(m.version) + "); the move is done, but its record "
                             "stays at '" + record_key + "': run the rebalance again to clear it");
  }
  const double secs = std::chrono::duration<double>(Clock::now() - started).count();
  char took[32];
  std::snprintf(took, sizeof took, "%.1f", secs);
  std::cout << "rebalanced: " << after.nodes().size() << " nodes at metadata version " << m.version
            << "; copied " << record.keys << " keys, " << record.bytes << " bytes ("
            << human_bytes(double(record.bytes)) << ") in " << took << " s\n";
  return 0;
}

int rebalance_status(const std::string& config, bool json) {
  const Config file = Config::load(config);
  const MetadataOrigin& origin = file.origin();
  if (origin.etcd_endpoints.empty()) {
    throw UsageError("admin status reads a cluster kept in etcd; " + config +
                     " lists its cluster itself");
  }
  EtcdClient etcd({.endpoints = origin.etcd_endpoints});
  if (json) {
    std::cout << internal::cluster_status_json(etcd, origin.prefix) << "\n";
    return 0;
  }
  const Metadata m = read_metadata(etcd, origin.prefix + "config");
  const auto held = etcd.get(origin.prefix + "rebalance");
  const auto alive = EtcdLiveness::read_all(etcd, origin.prefix);
  std::cout << "metadata version " << m.version << ": " << m.config->nodes().size() << " nodes";
  if (!held) {
    std::cout << ", no rebalance in progress\n";
  } else {
    const internal::MoveRecord r = internal::MoveRecord::decode(held->value);
    const Ring before(ClusterInfo{m.config->cluster().partitions, r.before, {}});
    const ClusterInfo& c = m.config->cluster();
    const Ring after = c.moving_to.empty() ? Ring(c) : Ring(ClusterInfo{c.partitions, c.moving_to, {}});
    size_t total = 0;
    for (const auto& [store, n] : partitioned_stores(*m.config)) {
      total += internal::plan_rebalance(before, after, n).moves.size();
    }
    std::cout << ", rebalancing " << before.nodes().size() << " -> " << after.nodes().size()
              << " nodes (began at version " << r.from_version << ")\n"
              << "  " << (r.switched ? "switched to the new layout; dropping old copies"
                                     : "copying partitions; writes go to old and new replicas")
              << "\n  copied " << r.copied.size() << " of " << total << " partition copies, "
              << r.keys << " keys, " << r.bytes << " bytes\n";
  }
  std::set<NodeId> ids;
  for (const NodeInfo& n : m.config->nodes()) ids.insert(n.id);
  for (const NodeInfo& n : m.config->cluster().moving_to) ids.insert(n.id);
  for (NodeId id : ids) {
    auto it = alive.find(id);
    std::cout << "node " << id << ": ";
    if (it == alive.end()) {
      std::cout << "no lease\n";
    } else {
      std::cout << it->second.address << ", routes by version " << it->second.version << "\n";
    }
  }
  return 0;
}

}  // namespace cairn::tools

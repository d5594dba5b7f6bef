// RoutedStore, the `route` layer (cairn/routed_store.h says what it does):
// each key goes to its N replicas on the ring, concurrently, without a
// thread per replica. Built from configs (make_routed_layer), with a node's
// own replica and hint keeper when it runs in a node, or from C++ through
// open_routed_store().
//
// Thread-safe.

#ifndef CAIRN_ROUTING_ROUTED_STORE_H_
#define CAIRN_ROUTING_ROUTED_STORE_H_

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cairn/config.h"
#include "cairn/registry.h"
#include "cairn/ring.h"
#include "cairn/routed_store.h"
#include "cairn/store.h"

namespace cairn {

class HintedHandoff;
class Reaper;
struct ReapOptions;

// Whether a clock is a routed delete's tombstone (its kTombstoneEntry odd).
bool is_tombstone(const VectorClock& c);

class RoutedStore final : public Store {
 public:
  // `replicas` has one stack per node of `ring`, in ring.nodes() order.
  // `self` is the node this layer runs on when it runs in a node (its
  // replica is then its own engine, and `hints` keeps its hints); a client
  // has none and leaves hints on the key's home node.
  // Builds the replica stack of a node that joins the ring later.
  using ReplicaFactory = std::function<std::shared_ptr<Store>(const NodeInfo&)>;

  // `open_replica` may be null when the nodes never change. A node not on
  // the ring yet (it joins in a move) gives its own replica as
  // `self_replica`.
  RoutedStore(RouteOptions options, Ring ring, std::vector<std::shared_ptr<Store>> replicas,
              std::optional<NodeId> self, std::shared_ptr<HintedHandoff> hints,
              ReplicaFactory open_replica = nullptr, std::shared_ptr<Store> self_replica = nullptr);
  ~RoutedStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  // Non-blocking reads: the replicas' answers and the timers drive them.
  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  // The async calls never wait: replicas answer on their own threads, and
  // replica calls that would run a disk inline go to a background thread.
  bool async_calls_block() const override { return false; }
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;
  bool reads_may_block() const override { return true; }

  // Routes by the cluster metadata `cluster` at `version` from now on:
  // operations that start later use it, those in flight finish on the
  // metadata they began with. While `cluster.moving_to` names the layout
  // after a move, the nodes that gain a partition get its writes too
  // (counted toward no quorum) and none of its reads. A version at or
  // below the current one is ignored. Throws InvalidArgument for metadata
  // the quorums do not fit, or a new node without a way to reach it.
  void update(const ClusterInfo& cluster, int64_t version);
  // The metadata version it routes by (0: the config's own).
  int64_t version() const;
  // Whether every write that began on an older version has finished
  // (with each of its replica calls): after that, no write routed by old
  // metadata reaches any node from here.
  bool older_writes_done() const;
  // How to read the metadata again when a node refuses a call as routed by
  // stale metadata (blocking; it calls update()). Without it, such calls
  // fail with StaleMetadata.
  void set_refresh(std::function<void()> refresh);
  // Follows the cluster config kept in etcd at `origin` (a smart client's
  // route layer): update() with each new version, and refresh from it.
  void follow(const MetadataOrigin& origin);

  Ring ring() const;
  // N, R and W.
  Replication replication() const;
  // The node this layer runs on; none in a client.
  std::optional<NodeId> self() const;
  // The key's home now: the first node of its preference list that the
  // failure detector does not ban (none if all are).
  std::optional<NodeId> home(std::string_view key) const;
  // The node's own replica when it runs in a node (what requests marked
  // `replica` reach); nullptr in a client.
  std::shared_ptr<Store> local_replica() const;
  // Whether node `id` is banned by the failure detector now.
  bool banned(NodeId id) const;
  // The stack below this layer that reaches node `id` (in a node, for
  // itself, its own replica), sharing this store's lifetime; nullptr for a
  // node not on the ring. For tests and tools.
  std::shared_ptr<Store> replica(NodeId id) const;

  // Starts reaping tombstones (and, once a ttl layer says how to tell
  // them, expired versions) from the replicas of the keys this node holds
  // (routing/reaper.h). A node's route only; once. Stopped by close().
  void start_reaper(const ReapOptions& options);
  // The reaper, or nullptr.
  Reaper* reaper() const;

  struct Shared;

 private:
  // Starts a quorum read; `finish` gets the answers by replica (or the
  // error) once R are in. Throws FailedPrecondition if closed.
  void start_get(std::string_view key,
                 std::function<void(std::vector<std::pair<size_t, std::vector<Versioned>>>,
                                    std::exception_ptr)> finish);
  void start_versions(std::string_view key,
                      std::function<void(std::vector<std::pair<size_t, std::vector<VectorClock>>>,
                                         std::exception_ptr)> finish);
  // One attempt of each (the above run them again when a node says the
  // metadata is stale).
  void start_get_once(std::string_view key,
                      std::function<void(std::vector<std::pair<size_t, std::vector<Versioned>>>,
                                         std::exception_ptr)> finish);
  void start_versions_once(
      std::string_view key,
      std::function<void(std::vector<std::pair<size_t, std::vector<VectorClock>>>,
                         std::exception_ptr)> finish);
  // Starts a write through the home. Throws FailedPrecondition if closed.
  void start_write(std::string_view key, const Versioned& value, Callback<PutReply> done);
  // A put through the home, then the other replicas (put_stamped's and
  // remove's tombstone's path).
  PutResult write(std::string_view key, const Versioned& value, PutReply* stored);

  std::shared_ptr<Shared> s_;
  std::shared_ptr<void> follower_;  // an internal::MetadataFollower, if it follows etcd
  std::shared_ptr<Reaper> reaper_;  // in a node, once started
};


}  // namespace cairn

#endif  // CAIRN_ROUTING_ROUTED_STORE_H_

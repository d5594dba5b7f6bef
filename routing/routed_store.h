// RoutedStore, the `route` layer: each key goes to its N replicas on the
// ring (routing/ring.h), concurrently, without a thread per replica.
//
//   reads    go to every live replica of the key and answer once R have,
//            with the versions none of them has superseded (siblings if
//            concurrent). When all replicas have answered, those that miss
//            a version get it in the background (read repair).
//   writes   go first to the key's home, the first live node of its
//            preference list, which stamps the clock with its own entry
//            (kStampBase + its id, and the time) and serializes racing
//            writers: a write
//            obsolete at the home is obsolete. Then the stamped version
//            goes to the other live replicas at once; the put answers when
//            W replicas (the home included) hold it. A replica that is
//            down, or fails the write, gets a hint on a live node, which
//            delivers it later (hinted handoff); hints never count toward W.
//   deletes  are tombstones: a delete of the versions at or before clock c
//            writes, like a put, a version with an empty value whose clock
//            is c with the reserved entry kTombstoneEntry made odd. It
//            supersedes what it deletes on every replica it reaches, and
//            read repair and hints spread it like any version, so a replica
//            that missed the delete cannot bring the value back. Reads drop
//            tombstones; versions() keeps their clocks, so that a write
//            based on it supersedes them (its entry made even again).
//            Tombstones are not reaped yet.
//
// Failing R or W within the timeout is InsufficientReplicas, saying how
// many answered and why each other failed. A replica that is unreachable
// or times out is banned by the failure detector and skipped until a probe
// answers. get_all sends one request per node for all the keys it holds.
// A scan reads each key from the first live node of its preference list.
//
// Thread-safe.

#ifndef CAIRN_ROUTING_ROUTED_STORE_H_
#define CAIRN_ROUTING_ROUTED_STORE_H_

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cairn/config.h"
#include "cairn/registry.h"
#include "cairn/store.h"
#include "routing/ring.h"

namespace cairn {

class HintedHandoff;

// The clock entry that marks tombstones (odd counter) in routed stores:
// the last of the nodes' stamps (kStampBase, versioned.h), "@2147483647"
// in text, which no node id reaches (they stop at 65535).
inline constexpr NodeId kTombstoneEntry = 0xFFFFFFFF;

struct RouteOptions {
  std::string store;  // the store's name on the nodes
  Replication replication;
  // Deadline of a whole operation, across its replicas.
  std::chrono::milliseconds timeout{5000};
  // How long a node that failed stays banned at least, and how often it is
  // probed after that.
  std::chrono::milliseconds ban{1000};
  std::chrono::milliseconds probe_interval{1000};
  bool read_repair = true;
};

class RoutedStore final : public Store {
 public:
  // `replicas` has one stack per node of `ring`, in ring.nodes() order.
  // `self` is the node this layer runs on when it runs in a node (its
  // replica is then its own engine, and `hints` keeps its hints); a client
  // has none and leaves hints on the key's home node.
  RoutedStore(RouteOptions options, Ring ring, std::vector<std::shared_ptr<Store>> replicas,
              std::optional<NodeId> self, std::shared_ptr<HintedHandoff> hints);
  ~RoutedStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        VectorClock* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;
  bool reads_may_block() const override { return true; }

  const Ring& ring() const;
  // The node's own replica when it runs in a node (what requests marked
  // `replica` reach); nullptr in a client.
  std::shared_ptr<Store> local_replica() const;
  // Whether node `id` is banned by the failure detector now.
  bool banned(NodeId id) const;

  struct Shared;

 private:
  // A put through the home, then the other replicas (put_stamped's and
  // remove's tombstone's path).
  PutResult write(std::string_view key, const Versioned& value, VectorClock* stored);

  std::shared_ptr<Shared> s_;
};

// The `route` layer of config files:
//   route: {timeout_ms: 5000, ban_ms: 1000, probe_interval_ms: 1000, read_repair: true}
std::unique_ptr<Store> make_routed_layer(const RouteContext& ctx);

}  // namespace cairn

#endif  // CAIRN_ROUTING_ROUTED_STORE_H_

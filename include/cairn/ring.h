// The ring: where a key lives in a cluster.
//
// A cluster has Q partitions, fixed for its life, each owned by one node.
// A key hashes to one partition:
//
//   partition(key) = fmix64(fnv1a64(key)) mod Q
//
// (FNV-1a, 64-bit, over the key's bytes, then MurmurHash3's 64-bit
// finaliser so that the low bits the modulo keeps depend on every byte).
// Its preference list is the first N distinct nodes met walking the
// partitions clockwise from it (partition p, p+1, ... mod Q). When nodes
// have zones, the walk skips a node whose zone is already in the list while
// the remaining places are needed to cover zones not in it yet, so the list
// spans min(N, zones) zones. The first live node of the list is the key's
// home.
//
// A Ring is immutable and safe to share between threads.

#ifndef CAIRN_RING_H_
#define CAIRN_RING_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/config.h"
#include "cairn/export.h"

CAIRN_API_BEGIN
namespace cairn {

class Ring {
 public:
  // The ring of a config's cluster: the partitions its nodes list, or, if
  // none lists any, `partitions` dealt round-robin in the nodes' file order.
  // Throws InvalidArgument for an inconsistent assignment.
  explicit Ring(const ClusterInfo& cluster);

  // The stable hash keys are placed by.
  static uint64_t hash(std::string_view key);

  uint32_t partitions() const { return static_cast<uint32_t>(owners_.size()); }
  const std::vector<NodeInfo>& nodes() const { return nodes_; }
  // The node owning each partition, by partition.
  const std::vector<NodeId>& owners() const { return owners_; }
  // The node with id `id`. REQUIRES: it is on the ring.
  const NodeInfo& node(NodeId id) const;
  bool has_node(NodeId id) const;

  uint32_t partition(std::string_view key) const {
    return static_cast<uint32_t>(hash(key) % owners_.size());
  }
  // The first `n` distinct nodes from partition `p` clockwise (zone-aware);
  // fewer if the ring has fewer nodes.
  std::vector<NodeId> preference_list(uint32_t p, int n) const;
  std::vector<NodeId> preference_list(std::string_view key, int n) const {
    return preference_list(partition(key), n);
  }

  // This ring with `node` added, taking about Q/(S+1) partitions from the
  // nodes that own the most, spread around the ring. Every other partition
  // keeps its owner. Throws InvalidArgument if the id or address is taken.
  Ring with_node(NodeInfo node) const;
  // This ring without node `id`: each of its partitions goes to the node
  // that then owns the fewest (the first such clockwise from it), so the
  // others stay within one partition of each other. Every other partition
  // keeps its owner. Throws InvalidArgument for an unknown id or the last
  // node.
  Ring without_node(NodeId id) const;

  // The ring as a `cluster:` section gives it: every node listing the
  // partitions it owns.
  ClusterInfo to_cluster() const;

  // The assignment as text: each node with its partitions, and the spread.
  std::string describe() const;

 private:
  Ring(std::vector<NodeInfo> nodes, std::vector<NodeId> owners);
  // Checks the assignment and numbers the zones.
  void check_and_index();
  int index_of(NodeId id) const;  // in nodes_, or -1

  std::vector<NodeInfo> nodes_;
  std::vector<NodeId> owners_;
  std::vector<int> zone_of_;  // by index in nodes_: zone number (0 without zones)
  int zones_ = 1;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_RING_H_

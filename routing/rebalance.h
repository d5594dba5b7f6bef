// What a change of ring moves: for each partition, the replicas it gains
// and loses when the ring goes from `before` to `after`, with N replicas
// per key. A key's replicas are the first N nodes of its preference list
// (cairn/ring.h), so a partition that changes owner changes the replica
// sets of the partitions just before it too: a plan counts replica
// copies, not owners.

#ifndef CAIRN_ROUTING_REBALANCE_H_
#define CAIRN_ROUTING_REBALANCE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cairn/ring.h"

namespace cairn::internal {

// Node `to` gains a copy of `partition`, fetched from one of `from` (its
// replicas before the change that are replicas after it too, else all of
// its replicas before).
struct ReplicaMove {
  uint32_t partition = 0;
  NodeId to = 0;
  std::vector<NodeId> from;
};

// Node `node` holds `partition` no longer, once the moves are done.
struct ReplicaDrop {
  uint32_t partition = 0;
  NodeId node = 0;
};

struct RebalancePlan {
  int n = 1;
  std::vector<ReplicaMove> moves;  // by partition
  std::vector<ReplicaDrop> drops;  // by partition
  size_t replicas = 0;             // Q x min(N, nodes) before the change
};

// REQUIRES: both rings have the same number of partitions; n >= 1.
RebalancePlan plan_rebalance(const Ring& before, const Ring& after, int n);

// The plan as an operator reads it: a summary (copies moved against an
// even share for the change of node count), then each move and drop.
std::string describe(const RebalancePlan& plan, const Ring& before, const Ring& after);

}  // namespace cairn::internal

#endif  // CAIRN_ROUTING_REBALANCE_H_

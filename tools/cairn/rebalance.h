// `cairn admin rebalance` and `cairn admin status`: moving partitions
// between the nodes of a cluster kept in etcd while it serves.
//
// The move, step by step (docs/clusters.md, "Moving partitions"):
//   1. plan: the ring after the change (Ring::with_node / without_node);
//      the config in etcd gains `cluster: moving_to:` (the new layout) in
//      one transaction guarded by the config's version, with a record of
//      the move at PREFIX + "rebalance";
//   2. every node with a lease routes by that version: writes of a moving
//      partition go to its old and its new replicas, reads to the old;
//   3. each new replica pulls the partition from a current one (Admin
//      PullPartitions, throttled), and the record notes each one copied,
//      so that a second run resumes;
//   4. the config switches to the new layout (guarded again);
//   5. every node with a lease routes by it; then each old replica drops
//      the partitions it no longer holds (Admin DropPartitions), and the
//      record goes.

#ifndef CAIRN_TOOLS_CAIRN_REBALANCE_H_
#define CAIRN_TOOLS_CAIRN_REBALANCE_H_

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cairn/config.h"

namespace cairn::tools {

struct RebalanceOptions {
  std::string config;  // a file naming the etcd that keeps the cluster
  std::vector<NodeInfo> add;
  std::vector<NodeId> remove;
  uint64_t max_bytes_per_second = 0;  // per pull; 0: no limit
  // How long to wait for the nodes (or etcd) at each step before giving up.
  std::chrono::seconds wait{300};
};

// Starts a move (with add/remove), or resumes the one in progress
// (without). Progress goes to stderr, the outcome to stdout. Returns the
// exit status; throws cairn::Error for what stops it.
int rebalance(const RebalanceOptions& options);

// Prints the move in progress, if any, and what each node routes by; with
// `json`, the document a node's /cluster.json serves instead.
int rebalance_status(const std::string& config, bool json);

}  // namespace cairn::tools

#endif  // CAIRN_TOOLS_CAIRN_REBALANCE_H_

// What `cairn admin rebalance` keeps in etcd about a move in progress, at
// PREFIX + "rebalance", so that a second run resumes it and `cairn admin
// status`, a node's /ui page and /cluster.json can show it; and the
// cluster's state as one JSON document for both.

#ifndef CAIRN_METADATA_MOVE_RECORD_H_
#define CAIRN_METADATA_MOVE_RECORD_H_

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "cairn/config.h"

namespace YAML {
class Node;
}  // namespace YAML

namespace cairn::internal {

class EtcdClient;

struct MoveRecord {
  int64_t from_version = 0;        // the config's version before the move
  std::vector<NodeInfo> before;    // the layout before, each node with its partitions
  std::set<std::string> copied;    // copy_key(): a new replica has the partition
  bool switched = false;           // the config holds the new layout
  std::set<std::string> dropped;   // "STORE/NODE": its old copies are gone
  uint64_t keys = 0, bytes = 0;    // copied so far

  static std::string copy_key(const std::string& store, NodeId node, uint32_t p) {
    return store + "/" + std::to_string(node) + "/" + std::to_string(p);
  }
  std::string encode() const;
  // Throws Corruption for a malformed record.
  static MoveRecord decode(const std::string& text);
};

// A node list as the config's `cluster:` gives it, each node listing its
// partitions (flow style), and back.
YAML::Node nodes_yaml(const std::vector<NodeInfo>& nodes);
std::vector<NodeInfo> nodes_from(const YAML::Node& list);

// The cluster kept in etcd under `prefix`, as JSON: the metadata version,
// the partitions, each node (id, address, zone, partitions, whether it
// holds its lease, the version it routes by), the layout a move leads to
// (`moving_to`, or null) and the move's progress (`rebalance`, or null):
//
//   {"version": 18, "partitions": 24, "nodes": [{"id": 1, ...}, ...],
//    "moving_to": null, "rebalance": {"copied": 5, "total": 17, ...}}
//
// Throws what the etcd client throws (Unavailable when etcd is away).
std::string cluster_status_json(EtcdClient& etcd, const std::string& prefix);

}  // namespace cairn::internal

#endif  // CAIRN_METADATA_MOVE_RECORD_H_

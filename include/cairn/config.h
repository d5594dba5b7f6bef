// A cairn config file: the stores and, for each, its key and value
// serializers and its stack of layers from top to bottom, ending with an
// engine:
//
//   stores:
//     users:
//       key: string
//       value: {type: json, schema: {name: string, id: int32}}
//       stack:
//         - stats
//         - logging: {slow_ms: 5}
//         - engine: {lmdb: {path: data/users, durability: sync}}
//
// A Config is immutable once loaded and safe to share between threads.

#ifndef CAIRN_CONFIG_H_
#define CAIRN_CONFIG_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/export.h"
#include "cairn/registry.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

namespace internal {
struct CAIRN_INTERNAL ConfigData;
}  // namespace internal

// A node of the cluster a config describes.
struct NodeInfo {
  NodeId id = 0;
  std::string address;  // host:port
  std::string zone;     // empty: the cluster has no zones
  // The partitions it owns, as listed in the config; empty when the
  // cluster deals them out evenly (see cairn/ring.h).
  std::vector<uint32_t> partitions;
};

// The `cluster:` section: its nodes and its number of partitions (Q).
struct ClusterInfo {
  uint32_t partitions = 0;  // 0 without a cluster
  std::vector<NodeInfo> nodes;
  // While partitions move between nodes (`cairn admin rebalance`): the
  // nodes as they will be after the move, each listing its partitions.
  // Empty otherwise.
  std::vector<NodeInfo> moving_to = {};
};

// A store's `replication: {n, r, w}`: each key on N nodes; a read answers
// once R replicas have, a write once W have stored it.
struct Replication {
  int n = 1;
  int r = 1;
  int w = 1;
};

// TLS for the servers of a cluster (`cluster: tls: {cert, key, ca}`): PEM
// files; with a CA, servers require clients to present a certificate it
// signed (mutual TLS). All empty: plaintext.
struct ServerTls {
  std::string cert;
  std::string key;
  std::string ca;
};

// Where a config came from: its file, or cluster metadata kept in etcd
// (`cluster: {etcd: {endpoints, prefix}}` in the file names them), with
// the version there: etcd's revision of the config (0 for a file).
struct MetadataOrigin {
  std::vector<std::string> etcd_endpoints = {};  // empty: a file
  std::string prefix = {};  // the config is at PREFIX + "config"
  int64_t version = 0;
  int lease_seconds = 10;  // a node's liveness lease (`lease_seconds`)
};

// A store's serializers: how its keys and values become bytes. Both default
// to identity (bytes as they are).
struct StoreSerializers {
  std::shared_ptr<const AnySerializer> key;
  std::shared_ptr<const AnySerializer> value;
};

class Config {
 public:
  // Reads and checks the structure of a config file. Throws IoError if it
  // cannot be read and ConfigError (FILE:LINE:COLUMN: what was expected) if
  // it is malformed. A file that is only `cluster: {etcd: {endpoints:
  // [HOST:PORT, ...], prefix: P}}` reads the config (cluster and stores)
  // from etcd's key P + "config" instead: Unavailable if no endpoint
  // answers, NotFound if the key is not there (see `cairn admin init`),
  // ConfigError if it is malformed.
  static Config load(const std::string& path);
  // The same for YAML text; `source` names it in errors.
  static Config parse(std::string_view yaml, std::string source = "<config>");

  // The file name or source the config came from.
  const std::string& source() const;
  // Where it came from: a file, or etcd, and its version there.
  const MetadataOrigin& origin() const;
  // The stores it defines, in file order.
  std::vector<std::string> store_names() const;

  // Builds the stack a client of `store` runs — its `client:` stack, or its
  // `stack:` for an embedded store — bottom-up: the engine first, then each
  // layer over it. The caller owns the result. Throws NotFound for an
  // unknown store, ConfigError for an unknown layer or a bad parameter, and
  // whatever an engine throws when it opens.
  std::unique_ptr<Store> open(std::string_view store,
                              const LayerRegistry& registry = default_registry()) const;
  // The stack node `node` serves for `store`: its `node:` stack, or its
  // `stack:`. "{node}" in parameters expands to the node's id.
  std::unique_ptr<Store> open_node(std::string_view store, NodeId node,
                                   const LayerRegistry& registry = default_registry()) const;

  // The `cluster: nodes:` entries, in file order (empty without a cluster).
  const std::vector<NodeInfo>& nodes() const;
  // The whole `cluster:` section.
  const ClusterInfo& cluster() const;
  // The store's `replication:` ({1, 1, 1} when it has none). Throws
  // NotFound for an unknown store.
  Replication replication(std::string_view store) const;
  // The `cluster: hints:` stack, where a node keeps the writes other nodes
  // missed; nullptr when the config has none. "{node}" expands as in a
  // node's stack.
  std::unique_ptr<Store> open_hints(NodeId node,
                                    const LayerRegistry& registry = default_registry()) const;
  bool has_hints() const;
  // The cluster's TLS files for node `node` ("{node}" in them expands to
  // its id: one certificate per node); all empty without `cluster: tls:`.
  ServerTls server_tls(NodeId node) const;

  // The serializers named by the store's `key:` and `value:` entries, e.g.
  //   key: string
  //   value: {type: json, schema: {name: string, id: int32}}
  // Throws NotFound for an unknown store and ConfigError for a bad entry.
  StoreSerializers serializers(std::string_view store,
                               const LayerRegistry& registry = default_registry()) const;

 private:
  friend class ConfigInternal;  // the library's own access, for cairn-server
  explicit Config(std::shared_ptr<const internal::ConfigData> data);
  std::shared_ptr<const internal::ConfigData> d_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_CONFIG_H_

// What the library's own parts need of a Config and a LayerRegistry besides
// the public API (LevelDB's WriteBatchInternal pattern): the stack a node
// serves, wired to the node's keeper of hints (cairn-server), the `route`
// layer's factory (catalogue/, routing/), and Params (the builder).
// Internal: HintedHandoff and RouteContext are not public types.

#ifndef CAIRN_CORE_CONFIG_INTERNAL_H_
#define CAIRN_CORE_CONFIG_INTERNAL_H_

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cairn/config.h"

namespace cairn {

class HintedHandoff;
namespace internal {
class Directory;
struct SecurityConfig;
}  // namespace internal

// What the `route` layer is built from (cairn/routed_store.h). Unlike
// other layers it wraps not one store but one per node: the part of the
// stack below it, built once for each node it sends to.
struct RouteContext {
  const Params* params = nullptr;  // route's own parameters
  const ClusterInfo* cluster = nullptr;
  const Replication* replication = nullptr;
  // Set in a node's stack (served by cairn-server): the node it runs on,
  // whose replica is the stack below `route`, its TLS files for calls to
  // the other nodes, and where it keeps hints.
  const NodeId* self = nullptr;
  // Where the config came from: a version above 0 is metadata kept in etcd.
  const MetadataOrigin* origin = nullptr;
  const ServerTls* tls = nullptr;
  std::shared_ptr<HintedHandoff> hints;
  // Builds the stack below `route` for `node`. In a client's stack that is
  // how the client reaches the node (a grpc engine whose targets default
  // to the node's address); in a node's stack it is called for `self`.
  std::function<std::unique_ptr<Store>(const NodeInfo& node)> open_below;
  // The same, callable after the config is gone (it keeps what it needs):
  // for a node that joins the ring later. Set in a client's stack.
  std::function<std::unique_ptr<Store>(const NodeInfo& node)> open_later;
};
using RouteFactory = std::function<std::unique_ptr<Store>(const RouteContext&)>;


class ConfigInternal {
 public:
  // The parameters a factory gets (Params' constructor is private).
  static Params make_params(std::shared_ptr<internal::ParamsData> data);

  // Config::open_node(), for a node that keeps hints for the other nodes:
  // a `route` in the stack parks the writes a replica missed in `hints`
  // (nullptr: the route layer keeps none).
  // With a `directory`, the node's own copy of the store (the stack below
  // `route`, or the whole stack without one) is wrapped in a TrackingStore
  // (layers/cache/directory.h): its writes invalidate the caches that hold
  // their keys.
  static std::unique_ptr<Store> open_node(const Config& config, std::string_view store,
                                          NodeId node, std::shared_ptr<HintedHandoff> hints,
                                          const LayerRegistry& registry = default_registry(),
                                          std::shared_ptr<internal::Directory> directory = nullptr);

  // The part of a store's stack a node keeps its own copy in: below
  // `route` in `node:` (or all of `node:`, or `stack:` for an embedded
  // store), built as for the cluster's first node. What a read-only build
  // passes its records through (tools/cairn/readonly.cc), with `registry`'s
  // engine standing in for the store's.
  static std::unique_ptr<Store> open_replica(const Config& config, std::string_view store,
                                             const LayerRegistry& registry);
  // Registers `factory` as engine `name`, replacing one of that name.
  static void replace_engine(LayerRegistry& registry, const std::string& name,
                             EngineFactory factory);

  // Whether a store is spread over the cluster's partitions: one of its
  // stacks (a node's or a client's) routes. Throws NotFound for an unknown
  // store.
  static bool partitioned(const Config& config, std::string_view store);

  // `pattern` with every "{node}" replaced by `node` (TLS files, the
  // name a node's certificate carries).
  static std::string with_node(std::string pattern, NodeId node);

  // The config's `security:` section (present == false without one).
  static const internal::SecurityConfig& security(const Config& config);

  // The factory of `registry`'s `route` layer (one per registry; lists as
  // "route" among its layers), or nullptr when it has none.
  static void set_router(LayerRegistry& registry, RouteFactory factory, std::string summary);
  static const RouteFactory* router(const LayerRegistry& registry);
};

}  // namespace cairn

#endif  // CAIRN_CORE_CONFIG_INTERNAL_H_

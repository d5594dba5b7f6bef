// What cairn-server needs of a Config besides the public API: the stack a
// node serves, wired to the node's keeper of hints. Internal (LevelDB's
// WriteBatchInternal pattern): HintedHandoff is not a public type.

#ifndef CAIRN_CORE_CONFIG_INTERNAL_H_
#define CAIRN_CORE_CONFIG_INTERNAL_H_

#include <memory>
#include <string_view>

#include "cairn/config.h"

namespace cairn {

class ConfigInternal {
 public:
  // The parameters a factory gets (Params' constructor is private).
  static Params make_params(std::shared_ptr<internal::ParamsData> data);

  // Config::open_node(), for a node that keeps hints for the other nodes:
  // a `route` in the stack parks the writes a replica missed in `hints`
  // (nullptr: the route layer keeps none).
  static std::unique_ptr<Store> open_node(const Config& config, std::string_view store,
                                          NodeId node, std::shared_ptr<HintedHandoff> hints,
                                          const LayerRegistry& registry = default_registry());
};

}  // namespace cairn

#endif  // CAIRN_CORE_CONFIG_INTERNAL_H_

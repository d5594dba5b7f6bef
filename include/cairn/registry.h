// The layer registry: names used in config files, mapped to the factories
// that build each layer and engine. Adding a layer is one file with its
// factory plus one add_layer() call.
//
// A registry is not synchronized: register everything before building
// stacks from several threads.

#ifndef CAIRN_REGISTRY_H_
#define CAIRN_REGISTRY_H_

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/export.h"
#include "cairn/json.h"
#include "cairn/serializer.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

namespace internal {
struct CAIRN_INTERNAL ParamsData;
}  // namespace internal

struct NodeInfo;
class CAIRN_INTERNAL ConfigInternal;
struct CAIRN_INTERNAL RouteContext;

// The parameters of one layer or engine as written in a config file, e.g.
// `{path: data/users, durability: nosync}`, or a lone scalar as in
// `compress: zstd`. Every getter that finds a bad value throws ConfigError
// pointing at the value's file, line and column. After the factory returns,
// the builder rejects any parameter the factory never asked for, so a
// misspelt name is an error, not a silently ignored setting.
class Params {
 public:
  // The store and the layer these parameters configure.
  const std::string& store() const;
  const std::string& layer() const;

  // In the stack below a `route` layer of a client: the node this copy of
  // it reaches. nullptr elsewhere.
  const NodeInfo* routed_node() const;

  bool has(std::string_view key) const;
  // The lone scalar of `layer: value`, if the layer was written that way.
  std::optional<std::string> scalar() const;

  // Strings expand "{store}" to the store's name.
  std::string get_string(std::string_view key) const;  // required
  std::string get_string(std::string_view key, std::string_view fallback) const;
  int64_t get_int(std::string_view key, int64_t fallback, int64_t min,
                  int64_t max) const;
  double get_double(std::string_view key, double fallback, double min, double max) const;
  bool get_bool(std::string_view key, bool fallback) const;
  // A size in bytes: an integer, or a number with KiB, MiB, GiB or TiB.
  uint64_t get_bytes(std::string_view key, uint64_t fallback, uint64_t min,
                     uint64_t max) const;
  // A parameter's YAML as a JSON value (maps become objects, lists arrays,
  // scalars strings); throws ConfigError if it is absent.
  Json get_json(std::string_view key) const;
  // One of `choices`, compared exactly.
  std::string get_choice(std::string_view key,
                         std::initializer_list<std::string_view> choices,
                         std::string_view fallback) const;

  // Throws ConfigError at `key` (or at the layer if `key` is absent).
  [[noreturn]] void fail(std::string_view key, const std::string& what) const;

  // Throws ConfigError for the first parameter no getter asked for.
  // Called by the stack builder after the factory returns.
  void check_all_used() const;

 private:
  friend class ConfigInternal;  // the config builder makes them
  explicit Params(std::shared_ptr<internal::ParamsData> data);

  std::shared_ptr<internal::ParamsData> d_;
};

// Builds a layer over `inner`, which it takes ownership of.
using LayerFactory =
    std::function<std::unique_ptr<Store>(std::unique_ptr<Store> inner, const Params&)>;
// Builds an engine: the bottom of a stack.
using EngineFactory = std::function<std::unique_ptr<Store>(const Params&)>;
// Builds the serializer named by a store's `key:` or `value:`.
using SerializerFactory = std::function<std::shared_ptr<const AnySerializer>(const Params&)>;

class LayerRegistry {
 public:
  LayerRegistry() = default;
  LayerRegistry(const LayerRegistry&) = delete;
  LayerRegistry& operator=(const LayerRegistry&) = delete;

  // Registers a factory under `name`; `summary` is one line for --help.
  // Throws InvalidArgument if `name` is taken: by a layer or an engine
  // (or it is "route"), or for add_serializer() by a serializer.
  void add_layer(std::string name, LayerFactory factory, std::string summary);
  void add_engine(std::string name, EngineFactory factory, std::string summary);
  void add_serializer(std::string name, SerializerFactory factory, std::string summary);

  // nullptr when no such name is registered. Borrowed from the registry.
  const LayerFactory* layer(std::string_view name) const;
  const EngineFactory* engine(std::string_view name) const;
  const SerializerFactory* serializer(std::string_view name) const;

  // Names with their summaries, sorted by name.
  std::vector<std::pair<std::string, std::string>> layers() const;
  std::vector<std::pair<std::string, std::string>> engines() const;
  std::vector<std::pair<std::string, std::string>> serializers() const;

 private:
  // The `route` layer is the library's own (default_registry() has it):
  // it is built from the whole cluster, not from Params alone.
  friend class ConfigInternal;

  std::map<std::string, std::pair<LayerFactory, std::string>, std::less<>> layers_;
  std::map<std::string, std::pair<EngineFactory, std::string>, std::less<>> engines_;
  std::map<std::string, std::pair<SerializerFactory, std::string>, std::less<>> serializers_;
  std::function<std::unique_ptr<Store>(const RouteContext&)> router_;
  std::string router_summary_;
};

// The registry with every built-in layer and engine. Add your own to it
// before opening stacks that name them.
LayerRegistry& default_registry();

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_REGISTRY_H_

// NamespaceStore: a layer of this project's own, written against cairn's
// public API. It keeps one application's keys apart from others that share
// a store: every key is stored under a prefix ("shop/"), and a scan sees
// only the keys under the prefix, without it.
//
// In a config, once register_namespace_layer() has run:
//   stack:
//     - namespace: {prefix: shop/}
//     - compress: zstd
//     - engine: {lmdb: {path: data/inventory}}
//
// Thread-safe: it adds no state to the store it wraps.

#ifndef CONSUMER_NAMESPACE_STORE_H_
#define CONSUMER_NAMESPACE_STORE_H_

#include <cairn/forwarding_store.h>
#include <cairn/registry.h>

#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace consumer {

class NamespaceStore final : public cairn::ForwardingStore {
 public:
  // REQUIRES: `prefix` is not empty.
  NamespaceStore(std::unique_ptr<cairn::Store> inner, std::string prefix);

  void get_into(std::string_view key, std::vector<cairn::Versioned>* out) override;
  std::map<std::string, std::vector<cairn::Versioned>> get_all(
      std::span<const std::string> keys) override;
  cairn::PutResult put_stamped(std::string_view key, const cairn::Versioned& value,
                               cairn::PutReply* stored) override;
  bool remove(std::string_view key, const cairn::VectorClock& version) override;
  std::vector<cairn::VectorClock> versions(std::string_view key) override;
  std::unique_ptr<cairn::StoreIterator> scan() override;
  std::string describe() const override;

 private:
  std::string stored_key(std::string_view key) const;

  const std::string prefix_;
};

// Adds the `namespace` layer to `registry` (usually cairn::default_registry()).
void register_namespace_layer(cairn::LayerRegistry& registry);

}  // namespace consumer

#endif  // CONSUMER_NAMESPACE_STORE_H_

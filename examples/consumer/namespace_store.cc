#include "namespace_store.h"

#include <cairn/errors.h>

#include <utility>

namespace consumer {

namespace {

// The inner store's iterator, less the keys outside the namespace and the
// prefix of those inside it.
class NamespaceIterator final : public cairn::StoreIterator {
 public:
  NamespaceIterator(std::unique_ptr<cairn::StoreIterator> inner, std::string_view prefix)
      : inner_(std::move(inner)), prefix_(prefix) {}

  bool next() override {
    while (inner_->next()) {
      if (inner_->key().starts_with(prefix_)) return true;
    }
    return false;
  }
  std::string_view key() const override { return inner_->key().substr(prefix_.size()); }
  const std::vector<cairn::Versioned>& versions() const override { return inner_->versions(); }

 private:
  std::unique_ptr<cairn::StoreIterator> inner_;
  const std::string prefix_;  // a copy: the iterator may outlive the store
};

}  // namespace

NamespaceStore::NamespaceStore(std::unique_ptr<cairn::Store> inner, std::string prefix)
    : ForwardingStore(std::move(inner)), prefix_(std::move(prefix)) {
  if (prefix_.empty()) throw cairn::InvalidArgument("namespace: the prefix is empty");
}

std::string NamespaceStore::stored_key(std::string_view key) const {
  std::string k;
  k.reserve(prefix_.size() + key.size());
  k.append(prefix_).append(key);
  return k;
}

void NamespaceStore::get_into(std::string_view key, std::vector<cairn::Versioned>* out) {
  ForwardingStore::get_into(stored_key(key), out);
}

std::map<std::string, std::vector<cairn::Versioned>> NamespaceStore::get_all(
    std::span<const std::string> keys) {
  std::vector<std::string> stored;
  stored.reserve(keys.size());
  for (const std::string& k : keys) stored.push_back(stored_key(k));
  std::map<std::string, std::vector<cairn::Versioned>> out;
  for (auto& [k, versions] : ForwardingStore::get_all(stored)) {
    out.emplace(k.substr(prefix_.size()), std::move(versions));
  }
  return out;
}

cairn::PutResult NamespaceStore::put_stamped(std::string_view key, const cairn::Versioned& value,
                                             cairn::PutReply* stored) {
  return ForwardingStore::put_stamped(stored_key(key), value, stored);
}

bool NamespaceStore::remove(std::string_view key, const cairn::VectorClock& version) {
  return ForwardingStore::remove(stored_key(key), version);
}

std::vector<cairn::VectorClock> NamespaceStore::versions(std::string_view key) {
  return ForwardingStore::versions(stored_key(key));
}

std::unique_ptr<cairn::StoreIterator> NamespaceStore::scan() {
  return std::make_unique<NamespaceIterator>(ForwardingStore::scan(), prefix_);
}

std::string NamespaceStore::describe() const {
  return describe_as("namespace '" + prefix_ + "'");
}

void register_namespace_layer(cairn::LayerRegistry& registry) {
  registry.add_layer(
      "namespace",
      [](std::unique_ptr<cairn::Store> inner, const cairn::Params& params) {
        std::string prefix = params.get_string("prefix");
        if (prefix.empty()) params.fail("prefix", "must not be empty");
        return std::make_unique<NamespaceStore>(std::move(inner), std::move(prefix));
      },
      "keeps an application's keys under a prefix");
}

}  // namespace consumer

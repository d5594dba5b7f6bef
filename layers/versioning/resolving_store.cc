#include "cairn/resolving_store.h"

#include <algorithm>
#include <map>
#include <mutex>

#include "cairn/errors.h"
#include "catalogue/builtin.h"
#include "core/async.h"

namespace cairn {

namespace {

struct MergeRegistry {
  std::mutex mu;
  std::map<std::string, MergeFunction, std::less<>> merges;
};
MergeRegistry& merges() {
  static MergeRegistry* r = new MergeRegistry;
  return *r;
}

// Removes the versions another version dominates.
void drop_dominated(std::vector<Versioned>* versions) {
  if (versions->size() < 2) return;
  std::vector<char> dominated(versions->size(), 0);
  for (size_t i = 0; i < versions->size(); ++i) {
    for (size_t j = 0; j < versions->size() && !dominated[i]; ++j) {
      if (i == j || dominated[j]) continue;
      const Occurred o = compare((*versions)[i].clock, (*versions)[j].clock);
      // Equal clocks: keep the first of them.
      if (o == Occurred::kBefore || (o == Occurred::kEqual && j < i)) dominated[i] = 1;
    }
  }
  size_t kept = 0;
  for (size_t i = 0; i < versions->size(); ++i) {
    if (dominated[i]) continue;
    // Never move an element onto itself: a self-moved string is emptied.
    if (kept != i) (*versions)[kept] = std::move((*versions)[i]);
    ++kept;
  }
  versions->resize(kept);
}

VectorClock merged_clock(const std::vector<Versioned>& versions) {
  VectorClock all;
  for (const Versioned& v : versions) all = all.merged(v.clock);
  return all;
}

// The later write by timestamp; ties by clock bytes, then value bytes.
bool later(const Versioned& a, const Versioned& b) {
  if (a.clock.timestamp_ms() != b.clock.timestamp_ms()) {
    return a.clock.timestamp_ms() > b.clock.timestamp_ms();
  }
  const std::string ca = a.clock.encode(), cb = b.clock.encode();
  if (ca != cb) return ca > cb;
  return a.value > b.value;
}

}  // namespace

void register_merge(std::string name, MergeFunction merge) {
  MergeRegistry& r = merges();
  std::lock_guard lock(r.mu);
  r.merges[std::move(name)] = std::move(merge);
}

ResolvingStore::ResolvingStore(std::unique_ptr<Store> inner, Strategy strategy,
                               std::string merge_name, MergeFunction merge)
    : ForwardingStore(std::move(inner)),
      strategy_(strategy),
      merge_name_(std::move(merge_name)),
      merge_(std::move(merge)) {}

void ResolvingStore::resolve(std::string_view key, std::vector<Versioned>* versions) const {
  drop_dominated(versions);
  if (versions->size() < 2 || strategy_ == Strategy::kVectorClock) return;
  VectorClock clock = merged_clock(*versions);
  Versioned result;
  if (strategy_ == Strategy::kTimestamp) {
    auto winner = std::min_element(versions->begin(), versions->end(), later);
    result.value = std::move(winner->value);
    clock.set_timestamp_ms(winner->clock.timestamp_ms());
  } else {
    try {
      result.value = merge_(*versions);
    } catch (const std::exception& e) {
      // The merge met values it cannot read: a data problem, not the
      // caller's. Say which key and which merge.
      throw Corruption("resolve: merge '" + merge_name_ + "' failed on the siblings of key " +
                       printable_key(key) + ": " + e.what());
    }
  }
  result.clock = std::move(clock);
  versions->assign(1, std::move(result));
}

void ResolvingStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  ForwardingStore::get_into(key, out);
  resolve(key, out);
}

std::map<std::string, std::vector<Versioned>> ResolvingStore::get_all(
    std::span<const std::string> keys) {
  auto found = ForwardingStore::get_all(keys);
  for (auto& [key, versions] : found) resolve(key, &versions);
  return found;
}

void ResolvingStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  inner().async_get(key, internal::transformed(std::move(done),
                                               [this, k = std::string(key)](auto& versions) {
                                                 resolve(k, &versions);
                                               }));
}

void ResolvingStore::async_get_all(
    std::vector<std::string> keys, Callback<std::map<std::string, std::vector<Versioned>>> done) {
  inner().async_get_all(std::move(keys),
                        internal::transformed(std::move(done), [this](auto& found) {
                          for (auto& [key, versions] : found) resolve(key, &versions);
                        }));
}

void ResolvingStore::async_put(std::string_view key, const Versioned& value,
                               Callback<PutReply> done) {
  inner().async_put(key, value, std::move(done));
}

void ResolvingStore::async_remove(std::string_view key, const VectorClock& version,
                                  Callback<bool> done) {
  inner().async_remove(key, version, std::move(done));
}

void ResolvingStore::async_versions(std::string_view key,
                                    Callback<std::vector<VectorClock>> done) {
  inner().async_versions(key, std::move(done));
}

namespace {

class ResolvingIterator final : public StoreIterator {
 public:
  ResolvingIterator(std::unique_ptr<StoreIterator> inner, const ResolvingStore* owner)
      : inner_(std::move(inner)), owner_(owner) {}
  bool next() override {
    if (!inner_->next()) return false;
    versions_ = inner_->versions();
    owner_->resolve(inner_->key(), &versions_);
    return true;
  }
  std::string_view key() const override { return inner_->key(); }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  std::unique_ptr<StoreIterator> inner_;
  // The strategy's owner. Safe to hold past close(): a closed store's
  // iterators throw in inner_->next() before this is used.
  const ResolvingStore* owner_;
  std::vector<Versioned> versions_;
};

}  // namespace

std::unique_ptr<StoreIterator> ResolvingStore::scan() {
  return std::make_unique<ResolvingIterator>(ForwardingStore::scan(), this);
}

std::string ResolvingStore::describe() const {
  switch (strategy_) {
    case Strategy::kVectorClock: return describe_as("resolve (vector-clock)");
    case Strategy::kTimestamp: return describe_as("resolve (timestamp: last write wins)");
    case Strategy::kCustom: return describe_as("resolve (custom: " + merge_name_ + ")");
  }
  return describe_as("resolve");
}

std::unique_ptr<Store> make_resolving_layer(std::unique_ptr<Store> inner, const Params& p) {
  if (const std::optional<std::string> lone = p.scalar()) {
    if (*lone == "vector-clock") {
      return std::make_unique<ResolvingStore>(std::move(inner), ResolvingStore::Strategy::kVectorClock);
    }
    if (*lone == "timestamp") {
      return std::make_unique<ResolvingStore>(std::move(inner), ResolvingStore::Strategy::kTimestamp);
    }
    p.fail("", "unknown strategy '" + *lone +
                   "' (expected vector-clock, timestamp or {custom: NAME})");
  }
  if (!p.has("custom")) {
    p.fail("", "resolve needs a strategy: `resolve: vector-clock`, `resolve: timestamp` or "
               "`resolve: {custom: NAME}`");
  }
  const std::string name = p.get_string("custom");
  MergeFunction merge;
  {
    MergeRegistry& r = merges();
    std::lock_guard lock(r.mu);
    auto it = r.merges.find(name);
    if (it == r.merges.end()) {
      std::string known;
      for (const auto& [n, f] : r.merges) known += (known.empty() ? "" : ", ") + n;
      p.fail("custom", "no merge function registered as '" + name + "' (registered: " +
                           (known.empty() ? "none" : known) + "; see cairn::register_merge)");
    }
    merge = it->second;
  }
  return std::make_unique<ResolvingStore>(std::move(inner), ResolvingStore::Strategy::kCustom, name,
                                          std::move(merge));
}

}  // namespace cairn

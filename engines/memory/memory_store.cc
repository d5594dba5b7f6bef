#include "engines/memory/memory_store.h"

#include <absl/container/flat_hash_set.h>
#include <absl/hash/hash.h>

#include <bit>
#include <cstring>
#include <mutex>
#include <new>
#include <shared_mutex>

#include "cairn/errors.h"
#include "core/version_list.h"

namespace cairn {

namespace {

// One key and its encoded versions in a single allocation, so that a lookup
// touches the table's control bytes and then one block of memory.
struct Record {
  size_t hash;
  uint32_t key_size;
  uint32_t data_size;

  std::string_view key() const {
    return {reinterpret_cast<const char*>(this + 1), key_size};
  }
  std::string_view data() const {
    return {reinterpret_cast<const char*>(this + 1) + key_size, data_size};
  }

  static Record* make(size_t hash, std::string_view key, std::string_view data) {
    void* mem = ::operator new(sizeof(Record) + key.size() + data.size());
    auto* r = new (mem) Record{hash, static_cast<uint32_t>(key.size()),
                               static_cast<uint32_t>(data.size())};
    char* bytes = reinterpret_cast<char*>(r + 1);
    std::memcpy(bytes, key.data(), key.size());
    if (!data.empty()) std::memcpy(bytes + key.size(), data.data(), data.size());
    return r;
  }
  static void destroy(Record* r) { ::operator delete(r); }
};

// A key with its hash computed once: the hash picks the shard and is reused
// by the table, and a Record keeps it so growing the table never rehashes.
struct HashedKey {
  std::string_view key;
  size_t hash;
};

struct RecordHash {
  using is_transparent = void;
  size_t operator()(const Record* r) const { return r->hash; }
  size_t operator()(const HashedKey& k) const { return k.hash; }
};

struct RecordEq {
  using is_transparent = void;
  bool operator()(const Record* a, const Record* b) const {
    return a->key() == b->key();
  }
  bool operator()(const Record* a, const HashedKey& b) const {
    return a->key() == b.key;
  }
  bool operator()(const HashedKey& a, const Record* b) const {
    return a.key == b->key();
  }
};

using RecordSet = absl::flat_hash_set<Record*, RecordHash, RecordEq>;

struct alignas(64) Shard {
  mutable std::shared_mutex mu;
  RecordSet records;  // owns the Records

  void clear() {
    for (Record* r : records) Record::destroy(r);
    records.clear();
  }
  ~Shard() { clear(); }
};

// Replaces the record an iterator points at with one for the same key. The
// set's elements are const only to protect the hash and key, which stay the
// same; swapping in place avoids an erase (a tombstone) and a reinsert.
void replace_record(RecordSet::iterator it, Record* fresh) {
  Record*& slot = const_cast<Record*&>(*it);
  Record::destroy(slot);
  slot = fresh;
}

[[noreturn]] void rethrow_corruption(std::string_view store, std::string_view key,
                                     const Corruption& e) {
  throw Corruption("store '" + std::string(store) + "' key " + printable_key(key) +
                   ": " + e.what());
}

HashedKey hashed(std::string_view key) {
  return {key, absl::Hash<std::string_view>{}(key)};
}

}  // namespace

namespace internal {

struct MemoryState {
  MemoryState(std::string name, size_t shards)
      : name(std::move(name)),
        shards(new Shard[shards]),
        shard_count(shards),
        shift(64 - std::countr_zero(shards)) {}

  // Shards are picked from the hash's top bits: SwissTable uses the low 7
  // bits (H2) and the bits above them (H1) for probing, so the top bits are
  // the ones left independent of a key's position inside its shard.
  Shard& shard_for(size_t hash) const {
    return shards[shift == 64 ? 0 : hash >> shift];
  }

  const std::string name;
  const std::unique_ptr<Shard[]> shards;
  const size_t shard_count;
  const int shift;
  std::atomic<bool> closed{false};
};

}  // namespace internal

namespace {

// Walks the shards in order, copying one shard at a time under its shared
// lock: each shard is seen at one instant, and writers wait at most for the
// copy of one shard.
class MemoryIterator final : public StoreIterator {
 public:
  explicit MemoryIterator(std::shared_ptr<internal::MemoryState> state)
      : state_(std::move(state)) {}

  bool next() override {
    while (pos_ >= batch_.size()) {
      if (shard_ == state_->shard_count) return false;
      load(state_->shards[shard_++]);
    }
    const auto& [key, data] = batch_[pos_++];
    key_ = key;
    versions_.clear();
    try {
      internal::decode_versions(data, &versions_);
    } catch (const Corruption& e) {
      rethrow_corruption(state_->name, key, e);
    }
    return true;
  }
  std::string_view key() const override { return key_; }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  void load(const Shard& shard) {
    batch_.clear();
    pos_ = 0;
    std::shared_lock lock(shard.mu);
    if (state_->closed.load(std::memory_order_relaxed)) {
      throw FailedPrecondition("store '" + state_->name + "' is closed");
    }
    batch_.reserve(shard.records.size());
    for (const Record* r : shard.records) batch_.emplace_back(r->key(), r->data());
  }

  std::shared_ptr<internal::MemoryState> state_;
  size_t shard_ = 0;
  std::vector<std::pair<std::string, std::string>> batch_;
  size_t pos_ = 0;
  std::string key_;
  std::vector<Versioned> versions_;
};

}  // namespace

MemoryStore::MemoryStore(MemoryOptions options)
    : options_(std::move(options)),
      state_(std::make_shared<internal::MemoryState>(
          options_.name, std::bit_ceil(std::max<size_t>(options_.shards, 1)))) {
  options_.shards = state_->shard_count;
}

MemoryStore::~MemoryStore() { close(); }

void MemoryStore::check_open() const {
  if (state_->closed.load(std::memory_order_relaxed)) {
    throw FailedPrecondition("store '" + options_.name + "' is closed");
  }
}

std::vector<Versioned> MemoryStore::get(std::string_view key) {
  check_open();
  check_key(options_.name, key, options_.max_key_size);
  const HashedKey hk = hashed(key);
  Shard& shard = state_->shard_for(hk.hash);
  std::vector<Versioned> out;
  std::shared_lock lock(shard.mu);
  auto it = shard.records.find(hk);
  if (it == shard.records.end()) return out;
  try {
    internal::decode_versions((*it)->data(), &out);
  } catch (const Corruption& e) {
    rethrow_corruption(options_.name, key, e);
  }
  return out;
}

PutResult MemoryStore::put(std::string_view key, const Versioned& value) {
  check_open();
  check_key(options_.name, key, options_.max_key_size);
  check_value(options_.name, key, value.value, options_.max_value_size);
  const HashedKey hk = hashed(key);
  Shard& shard = state_->shard_for(hk.hash);
  std::string encoded;
  std::unique_lock lock(shard.mu);
  auto it = shard.records.find(hk);
  if (it == shard.records.end()) {
    internal::encode_versions(std::span(&value, 1), &encoded);
    shard.records.insert(Record::make(hk.hash, key, encoded));
    return PutResult::kStored;
  }
  std::vector<Versioned> versions = internal::decode_versions((*it)->data());
  if (internal::apply_put(&versions, value) == PutResult::kObsolete) {
    return PutResult::kObsolete;
  }
  internal::encode_versions(versions, &encoded);
  replace_record(it, Record::make(hk.hash, key, encoded));
  return PutResult::kStored;
}

bool MemoryStore::remove(std::string_view key, const VectorClock& version) {
  check_open();
  check_key(options_.name, key, options_.max_key_size);
  const HashedKey hk = hashed(key);
  Shard& shard = state_->shard_for(hk.hash);
  std::unique_lock lock(shard.mu);
  auto it = shard.records.find(hk);
  if (it == shard.records.end()) return false;
  std::vector<Versioned> versions = internal::decode_versions((*it)->data());
  if (!internal::apply_remove(&versions, version)) return false;
  if (versions.empty()) {
    Record* r = *it;
    shard.records.erase(it);
    Record::destroy(r);
  } else {
    replace_record(it, Record::make(hk.hash, key, internal::encode_versions(versions)));
  }
  return true;
}

std::unique_ptr<StoreIterator> MemoryStore::scan() {
  check_open();
  return std::make_unique<MemoryIterator>(state_);
}

void MemoryStore::close() {
  if (state_->closed.exchange(true)) return;
  for (size_t i = 0; i < state_->shard_count; ++i) {
    std::unique_lock lock(state_->shards[i].mu);
    state_->shards[i].clear();
  }
}

size_t MemoryStore::size() const {
  size_t n = 0;
  for (size_t i = 0; i < state_->shard_count; ++i) {
    std::shared_lock lock(state_->shards[i].mu);
    n += state_->shards[i].records.size();
  }
  return n;
}

std::string MemoryStore::describe() const {
  return "memory '" + options_.name + "' (" + std::to_string(options_.shards) +
         " shards, max key " + std::to_string(options_.max_key_size) +
         " B, max value " + std::to_string(options_.max_value_size) + " B)";
}

}  // namespace cairn

namespace cairn {

std::unique_ptr<Store> make_memory_engine(const Params& p) {
  MemoryOptions o;
  o.name = p.store();
  o.max_key_size = p.get_bytes("max_key_size", o.max_key_size, 1, 64 << 10);
  o.max_value_size = p.get_bytes("max_value_size", o.max_value_size, 0, 1 << 30);
  o.shards = p.get_int("shards", static_cast<int64_t>(o.shards), 1, 1 << 16);
  return std::make_unique<MemoryStore>(std::move(o));
}

}  // namespace cairn

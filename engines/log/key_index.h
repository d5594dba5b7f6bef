// KeyIndex: the log engine's in-memory index, every key -> where its
// newest record is. Built for memory and for few cache misses:
//
// - Slots: one 8-byte word each (a 32-bit hash and a 32-bit reference),
//   open addressing with linear probing, grown at 80% full. A lookup
//   reads a slot, and, when the hash matches, the entry it references.
// - Entries, in a pool of 2 MiB chunks: the location (24 bytes), the key's
//   size (2 bytes), the key, padded to 8 bytes. An entry never moves, so a
//   Loc* stays valid until its key is erased. Erased entries are reused by
//   keys of the same padded size.
//
// Slots and chunks are asked to be backed by transparent huge pages
// (madvise), which spares a page walk on most lookups of a large index.
//
// For 16-byte keys that is about 48 bytes of entry and 10-20 bytes of
// slots a key (HaloDB reports ~44 for 8-byte keys in its pooled index;
// absl::flat_hash_map<std::string, Loc> cost 136 here).
//
// Not thread-safe: the engine guards it with its index lock. Erase does
// not move entries, and find() never writes.

#ifndef CAIRN_ENGINES_LOG_KEY_INDEX_H_
#define CAIRN_ENGINES_LOG_KEY_INDEX_H_

#include <cstdint>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace cairn::internal {

// Where a key's newest record is.
struct Loc {
  uint32_t file = 0;
  uint32_t size = 0;
  uint64_t offset = 0;
  uint64_t sequence = 0;
};

class KeyIndex {
 public:
  // Keys up to this size (the record format's limit).
  static constexpr size_t kMaxKey = 65535;
  // The pool holds at most this many bytes of entries (32-bit references
  // to 8-byte units): about 700 million 16-byte keys.
  static constexpr uint64_t kMaxPool = uint64_t{1} << 35;

  KeyIndex();
  ~KeyIndex();
  KeyIndex(const KeyIndex&) = delete;
  KeyIndex& operator=(const KeyIndex&) = delete;

  // The key's hash, as find and insert take it.
  static uint32_t hash(std::string_view key);
  // Starts loading the slot where a key of hash `h` begins its probe, for
  // a caller that knows its next keys ahead (open).
  void prefetch(uint32_t h) const { __builtin_prefetch(&slots_[h & mask_]); }

  // The key's location, or nullptr. `h`: hash(key).
  Loc* find(std::string_view key) const { return find(key, hash(key)); }
  Loc* find(std::string_view key, uint32_t h) const;
  // Adds `key` (absent: REQUIRES find(key) == nullptr) and returns its
  // location, set to `loc`. Throws FailedPrecondition when the pool is full.
  Loc* insert(std::string_view key, const Loc& loc) { return insert(key, hash(key), loc); }
  Loc* insert(std::string_view key, uint32_t h, const Loc& loc);
  // Whether a key of this size can be inserted (the pool has room).
  bool has_room(size_t key_size) const;
  // Removes `key`; false if it was absent. The entry's Loc::file is set to
  // 0 (no file has that id), so that a caller who kept the Loc* sees it is
  // gone until another key takes the entry over.
  bool erase(std::string_view key);

  // Sizes the table for `n` keys (no growth until then).
  void reserve(size_t n);

  size_t size() const { return size_; }
  // Bytes held: slots, and pool chunks (used or free).
  uint64_t memory_bytes() const;

  // Calls fn(key, loc) for every key, in no order.
  template <typename Fn>
  void for_each(Fn&& fn) const {
    for (uint64_t i = 0; i <= mask_; ++i) {
      if (slots_[i] != 0) fn(key_of(ref(slots_[i])), *loc_of(ref(slots_[i])));
    }
  }

 private:
  static constexpr uint64_t kChunk = 2 << 20;
  static constexpr size_t kHeader = sizeof(Loc) + 2;  // then the key

  static uint32_t ref(uint64_t slot) { return static_cast<uint32_t>(slot); }
  static uint32_t hash_of(uint64_t slot) { return static_cast<uint32_t>(slot >> 32); }
  static size_t entry_size(size_t key_size) { return (kHeader + key_size + 7) & ~size_t{7}; }

  char* entry(uint32_t r) const {  // r: 1 + offset / 8
    const uint64_t at = uint64_t{r - 1} * 8;
    return chunks_[at / kChunk] + at % kChunk;
  }
  Loc* loc_of(uint32_t r) const { return reinterpret_cast<Loc*>(entry(r)); }
  std::string_view key_of(uint32_t r) const;
  // The slot holding `key`, or the empty slot where it would go.
  size_t probe(std::string_view key, uint32_t h) const;
  uint32_t allocate(size_t size);
  void grow() { rehash((mask_ + 1) * 2); }
  void rehash(uint64_t slots);  // a power of two

  uint64_t* slots_ = nullptr;  // mask_ + 1 of them; 0: empty
  uint64_t mask_ = 0;
  size_t size_ = 0;
  std::vector<char*> chunks_;
  uint64_t pool_end_ = 0;  // bytes of the pool handed out
  std::unordered_map<size_t, std::vector<uint32_t>> free_;  // entry size -> erased entries
};

}  // namespace cairn::internal

#endif  // CAIRN_ENGINES_LOG_KEY_INDEX_H_

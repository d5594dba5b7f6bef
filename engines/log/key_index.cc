#include "engines/log/key_index.h"

#include <absl/hash/hash.h>
#include <absl/strings/string_view.h>

#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "cairn/errors.h"
#include "engines/log/huge_pages.h"

namespace cairn::internal {

KeyIndex::KeyIndex() : slots_(static_cast<uint64_t*>(acquire_huge(1024 * sizeof(uint64_t), true))), mask_(1023) {}

KeyIndex::~KeyIndex() {
  release_huge(slots_);
  for (char* c : chunks_) release_huge(c);
}

uint32_t KeyIndex::hash(std::string_view key) {
  const uint64_t h = absl::Hash<absl::string_view>{}(absl::string_view(key.data(), key.size()));
  return static_cast<uint32_t>(h ^ (h >> 32));
}

std::string_view KeyIndex::key_of(uint32_t r) const {
  const char* e = entry(r);
  uint16_t n;
  std::memcpy(&n, e + sizeof(Loc), 2);
  return std::string_view(e + kHeader, n);
}

size_t KeyIndex::probe(std::string_view key, uint32_t h) const {
  for (uint64_t pos = h & mask_;; pos = (pos + 1) & mask_) {
    const uint64_t slot = slots_[pos];
    if (slot == 0 || (hash_of(slot) == h && key_of(ref(slot)) == key)) return pos;
  }
}

Loc* KeyIndex::find(std::string_view key, uint32_t h) const {
  const uint64_t slot = slots_[probe(key, h)];
  return slot == 0 ? nullptr : loc_of(ref(slot));
}

uint32_t KeyIndex::allocate(size_t size) {
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) {
    const uint32_t r = it->second.back();
    it->second.pop_back();
    return r;
  }
  if (pool_end_ % kChunk + size > kChunk || pool_end_ % kChunk == 0) {
    // A new chunk (an entry never straddles two).
    if (pool_end_ % kChunk != 0) pool_end_ += kChunk - pool_end_ % kChunk;
    if (pool_end_ + kChunk >= kMaxPool) {
      throw FailedPrecondition("log index: its key pool is full (" + std::to_string(kMaxPool >> 30) +
                               " GiB of keys and locations)");
    }
    if (pool_end_ / kChunk == chunks_.size()) chunks_.push_back(static_cast<char*>(acquire_huge(kChunk, true)));
  }
  const uint32_t r = static_cast<uint32_t>(pool_end_ / 8 + 1);
  pool_end_ += size;
  return r;
}

bool KeyIndex::has_room(size_t key_size) const {
  const size_t size = entry_size(key_size);
  auto it = free_.find(size);
  if (it != free_.end() && !it->second.empty()) return true;
  uint64_t at = pool_end_;
  if (at % kChunk != 0 && at % kChunk + size <= kChunk) return true;  // room in the last chunk
  if (at % kChunk != 0) at += kChunk - at % kChunk;
  return at + kChunk < kMaxPool;  // as allocate() decides
}

Loc* KeyIndex::insert(std::string_view key, uint32_t h, const Loc& loc) {
  if ((size_ + 1) * 5 > (mask_ + 1) * 4) grow();
  const size_t pos = probe(key, h);
  const uint32_t r = allocate(entry_size(key.size()));
  char* e = entry(r);
  std::memcpy(e, &loc, sizeof loc);
  const uint16_t n = static_cast<uint16_t>(key.size());
  std::memcpy(e + sizeof(Loc), &n, 2);
  std::memcpy(e + kHeader, key.data(), key.size());
  slots_[pos] = (uint64_t{h} << 32) | r;
  ++size_;
  return reinterpret_cast<Loc*>(e);
}

bool KeyIndex::erase(std::string_view key) {
  size_t pos = probe(key, hash(key));
  const uint64_t slot = slots_[pos];
  if (slot == 0) return false;
  loc_of(ref(slot))->file = 0;  // no file has id 0: a kept Loc* sees the entry is gone
  free_[entry_size(key.size())].push_back(ref(slot));
  --size_;
  // Backward shift: pull later slots of the cluster into the hole when
  // their home is not between the hole and them.
  slots_[pos] = 0;
  for (uint64_t next = (pos + 1) & mask_;; next = (next + 1) & mask_) {
    const uint64_t s = slots_[next];
    if (s == 0) break;
    const uint64_t home = hash_of(s) & mask_;
    const bool stays = pos <= next ? (pos < home && home <= next) : (pos < home || home <= next);
    if (!stays) {
      slots_[pos] = s;
      slots_[next] = 0;
      pos = next;
    }
  }
  return true;
}

void KeyIndex::reserve(size_t n) {
  uint64_t slots = mask_ + 1;
  while (n * 5 > slots * 4) slots *= 2;
  if (slots > mask_ + 1) rehash(slots);
}

void KeyIndex::rehash(uint64_t count) {
  const uint64_t old_count = mask_ + 1;
  uint64_t* old = slots_;
  slots_ = static_cast<uint64_t*>(acquire_huge(count * sizeof(uint64_t), true));
  mask_ = count - 1;
  for (uint64_t i = 0; i < old_count; ++i) {
    const uint64_t s = old[i];
    if (s == 0) continue;
    uint64_t pos = hash_of(s) & mask_;
    while (slots_[pos] != 0) pos = (pos + 1) & mask_;
    slots_[pos] = s;
  }
  release_huge(old);
}

uint64_t KeyIndex::memory_bytes() const {
  return (mask_ + 1) * sizeof(uint64_t) + chunks_.size() * kChunk;
}

}  // namespace cairn::internal

// The in-process hash of a key, for hash tables (the memory engine's, the
// near cache's): not stable across builds, unlike Ring::hash.

#ifndef CAIRN_CORE_KEY_HASH_H_
#define CAIRN_CORE_KEY_HASH_H_

#include <absl/hash/hash.h>

#include <cstdint>
#include <string_view>

namespace cairn::internal {

// Debian builds Abseil with its own string_view type, and absl::Hash of a
// std::string_view falls back to std::hash (murmur, ~3x slower for short
// keys): hash the absl type.
inline uint64_t hash_key(std::string_view key) {
  return absl::Hash<absl::string_view>{}(absl::string_view(key.data(), key.size()));
}

}  // namespace cairn::internal

#endif  // CAIRN_CORE_KEY_HASH_H_

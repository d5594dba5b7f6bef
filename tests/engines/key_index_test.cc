// KeyIndex (engines/log/key_index.h): the log engine's index, checked
// against std::unordered_map under random inserts, updates and erases.

#include "engines/log/key_index.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <unordered_map>

namespace cairn::internal {
namespace {

TEST(KeyIndexTest, AgreesWithAMapThroughInsertsUpdatesAndErases) {
  KeyIndex index;
  std::unordered_map<std::string, Loc> model;
  std::mt19937_64 rng(5);
  auto random_key = [&] {
    // Sizes from 1 to 40 bytes, from a small space so that keys recur.
    const size_t n = 1 + rng() % 40;
    std::string k(n, '\0');
    const uint64_t id = rng() % 20000;
    for (size_t i = 0; i < n; ++i) k[i] = static_cast<char>((id >> (i % 8 * 2)) + i);
    return k;
  };
  for (int step = 0; step < 300000; ++step) {
    const std::string key = random_key();
    const uint64_t r = rng();
    Loc* found = index.find(key);
    auto it = model.find(key);
    ASSERT_EQ(found != nullptr, it != model.end()) << "step " << step;
    if (found != nullptr) {
      ASSERT_EQ(found->offset, it->second.offset);
      ASSERT_EQ(found->sequence, it->second.sequence);
    }
    const Loc loc{static_cast<uint32_t>(r), static_cast<uint32_t>(r >> 8), r, r * 3};
    switch (r % 3) {
      case 0:  // erase
        ASSERT_EQ(index.erase(key), it != model.end());
        if (it != model.end()) model.erase(it);
        break;
      default:  // put: insert or update in place
        if (found == nullptr) {
          Loc* put = index.insert(key, loc);
          ASSERT_EQ(put->offset, loc.offset);
        } else {
          *found = loc;
        }
        model[key] = loc;
    }
    ASSERT_EQ(index.size(), model.size());
  }
  size_t seen = 0;
  index.for_each([&](std::string_view key, const Loc& loc) {
    ++seen;
    auto it = model.find(std::string(key));
    ASSERT_NE(it, model.end());
    EXPECT_EQ(loc.sequence, it->second.sequence);
  });
  EXPECT_EQ(seen, model.size());
  EXPECT_FALSE(index.erase("absent key"));
}

TEST(KeyIndexTest, EntriesStayPutAsTheTableGrowsAndCostFewBytesAKey) {
  KeyIndex index;
  std::vector<Loc*> slots;
  constexpr uint64_t kKeys = 200000;
  for (uint64_t i = 0; i < kKeys; ++i) {
    std::string key(16, '\0');
    std::memcpy(key.data(), &i, 8);
    std::memcpy(key.data() + 8, &i, 8);
    slots.push_back(index.insert(key, Loc{1, 2, i, i}));
  }
  for (uint64_t i = 0; i < kKeys; ++i) {
    std::string key(16, '\0');
    std::memcpy(key.data(), &i, 8);
    std::memcpy(key.data() + 8, &i, 8);
    ASSERT_EQ(index.find(key), slots[i]) << "an entry moved";
    ASSERT_EQ(slots[i]->offset, i);
  }
  // 48-byte entries, 8-byte slots at most 80% full, 2 MiB pool chunks.
  const double per_key = double(index.memory_bytes()) / double(kKeys);
  EXPECT_LT(per_key, 48 + 8 / 0.35 + 8);
  EXPECT_GT(per_key, 48.0);
  // Erased entries are reused by keys of the same size.
  const uint64_t before = index.memory_bytes();
  for (uint64_t i = 0; i < kKeys; ++i) {
    std::string key(16, '\0');
    std::memcpy(key.data(), &i, 8);
    std::memcpy(key.data() + 8, &i, 8);
    ASSERT_TRUE(index.erase(key));
    ASSERT_EQ(slots[i]->file, 0u) << "an erased entry says so to whoever kept it";
    key[0] ^= 0x55;
    key[15] ^= 0x55;
    index.insert(key, Loc{});
  }
  EXPECT_EQ(index.memory_bytes(), before);
  EXPECT_EQ(index.size(), kKeys);
}

}  // namespace
}  // namespace cairn::internal

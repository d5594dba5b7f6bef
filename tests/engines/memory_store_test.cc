#include "cairn/memory_store.h"

#include <absl/strings/str_cat.h>
#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>

#include "cairn/errors.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

TEST(MemoryStoreTest, ShardCountRoundsUpToAPowerOfTwo) {
  MemoryOptions o;
  o.shards = 3;
  MemoryStore store(o);
  EXPECT_NE(store.describe().find("(4 shards"), std::string::npos) << store.describe();
}

TEST(MemoryStoreTest, SizeCountsKeysNotVersions) {
  MemoryStore store;
  ASSERT_EQ(store.put("a", versioned("1", {{1, 1}})), PutResult::kStored);
  ASSERT_EQ(store.put("a", versioned("2", {{2, 1}})), PutResult::kStored);
  ASSERT_EQ(store.put("b", versioned("3", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(store.size(), 2u);
  ASSERT_TRUE(store.remove("b", clock({{1, 1}})));
  EXPECT_EQ(store.size(), 1u);
  store.close();
  EXPECT_EQ(store.size(), 0u) << "close releases the data";
}

TEST(MemoryStoreTest, ParallelWritersAndReadersSeeConsistentValues) {
  MemoryStore store;
  constexpr int kThreads = 4, kKeys = 5000;
  std::atomic<int> bad_reads{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = absl::StrCat("t", t, "-", i);
        EXPECT_EQ(store.put(key, versioned(key, {{1, 1}})), PutResult::kStored);
        // Read a key of another thread: absent or exactly its value.
        const std::string other = absl::StrCat("t", (t + 1) % kThreads, "-", i);
        const auto got = store.get(other);
        if (!got.empty() && (got.size() != 1 || got[0].value != other)) ++bad_reads;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad_reads.load(), 0);
  EXPECT_EQ(store.size(), static_cast<size_t>(kThreads * kKeys));
}

TEST(MemoryStoreTest, ScanDuringWritesSeesEveryKeyPresentThroughout) {
  MemoryStore store;
  std::set<std::string> stable;
  for (int i = 0; i < 3000; ++i) {
    const std::string key = absl::StrCat("stable-", i);
    ASSERT_EQ(store.put(key, versioned("v", {{1, 1}})), PutResult::kStored);
    stable.insert(key);
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      const std::string key = absl::StrCat("churn-", i % 500);
      store.put(key, versioned("x", {{1, static_cast<uint64_t>(i + 1)}}));
      store.remove(key, clock({{1, static_cast<uint64_t>(i + 1)}}));
    }
  });
  std::set<std::string> seen;
  auto it = store.scan();
  while (it->next()) {
    if (it->key().starts_with("stable-")) {
      EXPECT_TRUE(seen.insert(std::string(it->key())).second);
      EXPECT_EQ(it->versions().size(), 1u);
    }
  }
  stop = true;
  writer.join();
  EXPECT_EQ(seen, stable);
}

TEST(MemoryStoreTest, LockFreeReadersNeverSeeATornOrFreedRecord) {
  // Writers overwrite, remove and re-insert a small key set (so records are
  // retired and tables grow and shed tombstones) while readers check that
  // every version they see is whole: its value names its own clock and key.
  MemoryOptions o;
  o.shards = 2;
  MemoryStore store(o);
  constexpr int kKeys = 64;
  auto key_of = [](uint64_t i) { return absl::StrCat("key-", i % kKeys); };
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, bad{0};
  auto writer = [&](NodeId node) {
    for (uint64_t i = 1; !stop; ++i) {
      const std::string key = key_of(i * 7 + node);
      const VectorClock c({{node, i}}, 1);
      store.put(key, Versioned{absl::StrCat(node, ":", i, ":", key), c});
      if (i % 5 == 0) store.remove(key, c);
      if (i % 97 == 0) {
        for (int k = 0; k < kKeys; ++k) store.remove(key_of(k), VectorClock({{1, i}, {2, i}}, 1));
      }
    }
  };
  auto reader = [&] {
    std::vector<Versioned> versions;
    for (uint64_t i = 0; !stop; ++i) {
      const std::string key = key_of(i);
      store.get_into(key, &versions);
      ++reads;
      for (const Versioned& v : versions) {
        if (v.clock.entries().size() != 1) {
          ++bad;
          continue;
        }
        const ClockEntry e = v.clock.entries()[0];
        if (v.value != absl::StrCat(e.node, ":", e.counter, ":", key)) {
          if (bad++ == 0) ADD_FAILURE() << "get(" << key << ") saw " << v.value << " at " << v.clock.to_string();
        }
      }
    }
  };
  std::vector<std::thread> threads;
  threads.emplace_back(writer, 1);
  threads.emplace_back(writer, 2);
  threads.emplace_back(reader);
  threads.emplace_back(reader);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  stop = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(bad.load(), 0u);
  EXPECT_GT(reads.load(), 1000u);
}

TEST(MemoryStoreTest, ScanCopiesEveryRecordOfAGrownTable) {
  MemoryOptions o;
  o.shards = 1;
  MemoryStore store(o);
  for (int i = 0; i < 10000; ++i) {
    ASSERT_EQ(store.put(absl::StrCat("k", i), versioned(std::to_string(i), {{1, 1}})),
              PutResult::kStored);
  }
  for (int i = 0; i < 10000; i += 2) ASSERT_TRUE(store.remove(absl::StrCat("k", i), clock({{1, 1}})));
  size_t n = 0;
  auto it = store.scan();
  while (it->next()) {
    ++n;
    EXPECT_EQ("k" + it->versions().at(0).value, it->key());
  }
  EXPECT_EQ(n, 5000u);
  EXPECT_EQ(store.size(), 5000u);
}

}  // namespace
}  // namespace cairn::testing

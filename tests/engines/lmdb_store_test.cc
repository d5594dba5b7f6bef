#include "cairn/lmdb_store.h"

#include <absl/strings/str_cat.h>
#include <gtest/gtest.h>
#include <lmdb.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <thread>

#include "cairn/errors.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

class LmdbStoreTest : public ::testing::Test {
 protected:
  LmdbOptions options(const std::string& sub = "db") {
    LmdbOptions o;
    o.name = "t";
    o.path = dir_.sub(sub);
    o.durability = LmdbOptions::Durability::kNoSync;
    return o;
  }

  // Runs `body` on a raw LMDB write transaction over `path`'s environment,
  // as another program (or a bug) might.
  template <typename Body>
  void raw_write(const std::string& path, Body&& body) {
    MDB_env* env;
    ASSERT_EQ(mdb_env_create(&env), 0);
    mdb_env_set_maxdbs(env, 4);
    ASSERT_EQ(mdb_env_open(env, path.c_str(), 0, 0644), 0);
    MDB_txn* txn;
    ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
    body(txn);
    ASSERT_EQ(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
  }

  static MDB_val val(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }

  TempDir dir_;
};

TEST_F(LmdbStoreTest, MapGrowsWhenFull) {
  LmdbOptions o = options();
  o.map_size = 1 << 20;
  LmdbStore store(o);
  const std::string value(100 << 10, 'v');
  for (int i = 0; i < 200; ++i) {  // ~20 MiB through a 1 MiB map
    ASSERT_EQ(store.put(absl::StrCat("k", i), Versioned{value, clock({{1, 1}})}),
              PutResult::kStored);
  }
  EXPECT_GE(store.map_size(), size_t{16} << 20);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(store.get(absl::StrCat("k", i)).at(0).value, value);
}

TEST_F(LmdbStoreTest, MapGrowthWhileReadersRun) {
  LmdbOptions o = options();
  o.map_size = 1 << 20;
  LmdbStore store(o);
  ASSERT_EQ(store.put("fixed", versioned("here", {{1, 1}})), PutResult::kStored);
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&] {
      while (!stop) {
        const auto got = store.get("fixed");
        if (got.size() != 1 || got[0].value != "here") ++bad;
      }
    });
  }
  const std::string value(64 << 10, 'v');
  for (int i = 0; i < 300; ++i) {
    ASSERT_EQ(store.put(absl::StrCat("k", i), Versioned{value, clock({{1, 1}})}),
              PutResult::kStored);
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_GT(store.map_size(), size_t{1} << 20);
}

TEST_F(LmdbStoreTest, FullAtMaxMapSizeIsAClearErrorAndLosesNothing) {
  LmdbOptions o = options();
  o.map_size = 1 << 20;
  o.max_map_size = 2 << 20;
  LmdbStore store(o);
  const std::string value(200 << 10, 'v');
  int stored = 0;
  try {
    for (; stored < 100; ++stored) {
      store.put(absl::StrCat("k", stored), Versioned{value, clock({{1, 1}})});
    }
    FAIL() << "a 2 MiB map cannot hold 20 MiB";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("max_map_size"), std::string::npos) << e.what();
  }
  ASSERT_GT(stored, 0);
  for (int i = 0; i < stored; ++i) EXPECT_EQ(store.get(absl::StrCat("k", i)).size(), 1u);
  EXPECT_TRUE(store.remove("k0", clock({{1, 1}}))) << "still writable once space is freed";
}

TEST_F(LmdbStoreTest, OneProcessOpensADirectoryOnce) {
  auto first = std::make_unique<LmdbStore>(options());
  EXPECT_THROW(LmdbStore second(options()), FailedPrecondition);
  first->close();
  EXPECT_NO_THROW(LmdbStore again(options()));
}

TEST_F(LmdbStoreTest, RefusesAnLmdbEnvironmentThatIsNotCairns) {
  const std::string path = dir_.sub("foreign");
  std::filesystem::create_directories(path);
  raw_write(path, [&](MDB_txn* txn) {
    MDB_dbi dbi;
    ASSERT_EQ(mdb_dbi_open(txn, nullptr, 0, &dbi), 0);
    MDB_val k = val("theirs"), v = val("data");
    ASSERT_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
  });
  try {
    LmdbStore store(options("foreign"));
    FAIL();
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("not a cairn environment"), std::string::npos) << e.what();
  }
}

TEST_F(LmdbStoreTest, RefusesAnUnknownFormat) {
  { LmdbStore store(options()); }
  raw_write(options().path, [&](MDB_txn* txn) {
    MDB_dbi meta;
    ASSERT_EQ(mdb_dbi_open(txn, "cairn.meta", 0, &meta), 0);
    MDB_val k = val("format"), v = val("cairn-lmdb-99");
    ASSERT_EQ(mdb_put(txn, meta, &k, &v, 0), 0);
  });
  try {
    LmdbStore store(options());
    FAIL();
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("unknown format 'cairn-lmdb-99'"), std::string::npos);
  }
}

TEST_F(LmdbStoreTest, GarbageDataFileIsCorruptionNotACrash) {
  const std::string path = dir_.sub("garbage");
  std::filesystem::create_directories(path);
  std::ofstream(path + "/data.mdb") << std::string(64 << 10, '\x5a');
  EXPECT_THROW(LmdbStore store(options("garbage")), Corruption);
}

TEST_F(LmdbStoreTest, TruncatedDataFileIsCorruptionNotACrash) {
  {
    LmdbStore store(options());
    for (int i = 0; i < 2000; ++i) {
      store.put(absl::StrCat("key", i), Versioned{std::string(500, 'x'), clock({{1, 1}})});
    }
  }
  const std::string file = options().path + "/data.mdb";
  std::filesystem::resize_file(file, std::filesystem::file_size(file) / 2);
  try {
    LmdbStore store(options());
    FAIL();
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
}

TEST_F(LmdbStoreTest, CorruptRecordIsCorruptionNamingTheKey) {
  { LmdbStore store(options()); }
  raw_write(options().path, [&](MDB_txn* txn) {
    MDB_dbi data;
    ASSERT_EQ(mdb_dbi_open(txn, "cairn.data", 0, &data), 0);
    MDB_val k = val("bad"), v = val("\x01\x09garbage");
    ASSERT_EQ(mdb_put(txn, data, &k, &v, 0), 0);
  });
  LmdbStore store(options());
  try {
    store.get("bad");
    FAIL();
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("key \"bad\""), std::string::npos) << e.what();
  }
  EXPECT_THROW(store.put("bad", versioned("v", {{1, 1}})), Corruption) << "never overwritten blindly";
  auto it = store.scan();
  EXPECT_THROW(it->next(), Corruption);
}

TEST_F(LmdbStoreTest, RejectsBadOptions) {
  LmdbOptions o = options();
  o.max_key_size = 600;
  EXPECT_THROW(LmdbStore{o}, InvalidArgument);
  o = options();
  o.path = "";
  EXPECT_THROW(LmdbStore{o}, InvalidArgument);
  o = options();
  std::ofstream(dir_.sub("file")) << "x";
  o.path = dir_.sub("file");
  EXPECT_THROW(LmdbStore{o}, IoError);
}

TEST_F(LmdbStoreTest, ShortLivedThreadsGiveTheirReaderSlotsBack) {
  LmdbOptions o = options();
  o.max_readers = 8;
  LmdbStore store(o);
  ASSERT_EQ(store.put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  for (int i = 0; i < 100; ++i) {
    std::thread([&] { EXPECT_EQ(store.get("k").size(), 1u); }).join();
  }
}

TEST_F(LmdbStoreTest, TooManyConcurrentReadersIsUnavailable) {
  LmdbOptions o = options();
  o.max_readers = 2;
  LmdbStore store(o);
  ASSERT_EQ(store.put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  // Each live thread that has read holds a slot until it exits.
  std::atomic<int> ready{0}, unavailable{0};
  std::atomic<bool> release{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      try {
        store.get("k");
      } catch (const Unavailable& e) {
        EXPECT_NE(std::string(e.what()).find("max_readers"), std::string::npos);
        ++unavailable;
      }
      ++ready;
      while (!release) std::this_thread::yield();
    });
  }
  while (ready < 4) std::this_thread::yield();
  release = true;
  for (auto& t : threads) t.join();
  EXPECT_EQ(unavailable.load(), 2);
}

TEST_F(LmdbStoreTest, ReadsWhileHoldingAScan) {
  LmdbStore store(options());
  for (int i = 0; i < 1200; ++i) store.put(absl::StrCat("k", i), versioned("v", {{1, 1}}));
  auto it = store.scan();
  int n = 0;
  while (it->next()) {
    ++n;
    if (n % 100 == 0) {
      EXPECT_EQ(store.get(it->key()).size(), 1u);
      store.put(absl::StrCat("new", n), versioned("w", {{1, 1}}));
    }
  }
  EXPECT_GE(n, 1200);
}

// What a power cut would lose cannot be tested in-process (the page cache
// survives); this checks that nosync mode flushes and reopens cleanly.
TEST_F(LmdbStoreTest, NoSyncFlushesAndReopensWithItsData) {
  {
    LmdbOptions o = options();
    o.sync_interval_ms = 10;
    LmdbStore store(o);
    ASSERT_EQ(store.put("k", versioned("v", {{1, 1}})), PutResult::kStored);
    store.sync();
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // let the flusher run
  }
  LmdbStore store(options());
  EXPECT_EQ(store.get("k").at(0).value, "v");
}

TEST_F(LmdbStoreTest, DescribeNamesPathAndMode) {
  LmdbOptions o = options();
  o.write_map = true;
  LmdbStore store(o);
  EXPECT_EQ(store.describe(), "lmdb 't' at " + o.path +
                                  " (durability nosync, writemap, max key 511 B, max value "
                                  "16777216 B)");
}

}  // namespace
}  // namespace cairn::testing

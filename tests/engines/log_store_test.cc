// The log engine beyond the conformance suite: files, recovery, damage.

#include "engines/log/log_store.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cairn/errors.h"
#include "core/version_list.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
using testing::TempDir;
using testing::versioned;

LogOptions options(const TempDir& dir, uint64_t max_file_size = 64 << 10) {
  LogOptions o;
  o.name = "t";
  o.path = dir.sub("log");
  o.max_file_size = max_file_size;
  return o;
}

std::vector<fs::path> files(const TempDir& dir, const std::string& ext) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir.sub("log"))) {
    if (e.path().extension() == ext) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

void write_file(const fs::path& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary | std::ios::trunc) << bytes;
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(LogStoreTest, RollsFilesAndReopensWithEveryKeyAndDelete) {
  TempDir dir;
  {
    LogStore s(options(dir));
    for (int i = 0; i < 500; ++i) {
      ASSERT_EQ(s.put("k" + std::to_string(i), versioned(std::string(500, 'a' + i % 26), {{1, 1}})),
                PutResult::kStored);
    }
    for (int i = 0; i < 500; i += 5) ASSERT_TRUE(s.remove("k" + std::to_string(i), testing::clock({{1, 1}})));
    ASSERT_EQ(s.put("k1", versioned("newer", {{1, 2}})), PutResult::kStored);
  }
  EXPECT_GT(files(dir, ".data").size(), 2u) << "files roll at max_file_size";
  EXPECT_FALSE(files(dir, ".tomb").empty());
  LogStore s(options(dir));
  for (int i = 0; i < 500; ++i) {
    const auto got = s.get("k" + std::to_string(i));
    if (i % 5 == 0) {
      EXPECT_TRUE(got.empty()) << i << " was deleted";
    } else {
      ASSERT_EQ(got.size(), 1u) << i;
      EXPECT_EQ(got[0].value, i == 1 ? "newer" : std::string(500, 'a' + i % 26));
    }
  }
  EXPECT_EQ(s.put("k1", versioned("stale", {{1, 1}})), PutResult::kObsolete)
      << "the newest version survived the reopen, not an older record of the key";
}

TEST(LogStoreTest, ATornTailIsCutAndEverythingBeforeItKept) {
  TempDir dir;
  {
    LogStore s(options(dir, 1 << 20));
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(s.put("k" + std::to_string(i), versioned("v" + std::to_string(i), {{1, 1}})),
                PutResult::kStored);
    }
  }
  const fs::path last = files(dir, ".data").back();
  const std::string bytes = read_file(last);
  write_file(last, bytes.substr(0, bytes.size() - 7));  // the last record torn
  {
    LogStore s(options(dir, 1 << 20));
    for (int i = 0; i < 99; ++i) EXPECT_EQ(s.get("k" + std::to_string(i)).at(0).value, "v" + std::to_string(i));
    EXPECT_TRUE(s.get("k99").empty()) << "the torn record is dropped";
    EXPECT_LT(fs::file_size(last), bytes.size() - 7) << "the torn record's bytes were cut";
    ASSERT_EQ(s.put("k99", versioned("again", {{1, 1}})), PutResult::kStored);
  }
  LogStore s(options(dir, 1 << 20));
  EXPECT_EQ(s.get("k99").at(0).value, "again") << "appends after the cut read back";
}

TEST(LogStoreTest, ADamagedRecordIsCorruptionNeverWrongBytes) {
  TempDir dir;
  {
    LogStore s(options(dir, 1 << 20));
    ASSERT_EQ(s.put("a", versioned(std::string(100, 'x'), {{1, 1}})), PutResult::kStored);
    ASSERT_EQ(s.put("b", versioned(std::string(100, 'y'), {{1, 1}})), PutResult::kStored);
  }
  const fs::path f = files(dir, ".data").back();
  std::string bytes = read_file(f);
  // Flip a byte inside a's value: a's record is damaged, b's is not.
  const size_t at = bytes.find(std::string(100, 'x')) + 50;
  bytes[at] = 'z';
  write_file(f, bytes);
  // On open the scan stops at a's record: in the file being written that is
  // a torn tail, so a and everything after it are dropped, with a log line.
  LogStore s(options(dir, 1 << 20));
  EXPECT_TRUE(s.get("a").empty());
  // And damage under a running store is caught on read.
  ASSERT_EQ(s.put("c", versioned(std::string(100, 'w'), {{1, 1}})), PutResult::kStored);
  bytes = read_file(f);
  bytes[bytes.find(std::string(100, 'w')) + 10] = 'q';
  write_file(f, bytes);
  EXPECT_THROW(s.get("c"), Corruption);
}

TEST(LogStoreTest, StatsCountKeysStaleBytesAndIndexMemory) {
  TempDir dir;
  auto record_size = [](const std::string& key, const Versioned& v) {
    // A record: the 20-byte header, the key, the key's encoded versions.
    return 20 + key.size() + internal::encode_versions(std::span<const Versioned>(&v, 1)).size();
  };
  uint64_t expected_stale = 0;
  {
    LogStore s(options(dir, 4 << 10));
    for (int i = 0; i < 100; ++i) {
      ASSERT_EQ(s.put("k" + std::to_string(i), versioned(std::string(100, 'v'), {{1, 1}})),
                PutResult::kStored);
    }
    for (int i = 0; i < 50; ++i) {
      const std::string key = "k" + std::to_string(i);
      expected_stale += record_size(key, versioned(std::string(100, 'v'), {{1, 1}}));
      ASSERT_EQ(s.put(key, versioned("w", {{1, 2}})), PutResult::kStored);
    }
    for (int i = 90; i < 100; ++i) {
      const std::string key = "k" + std::to_string(i);
      expected_stale += record_size(key, versioned(std::string(100, 'v'), {{1, 1}}));
      ASSERT_TRUE(s.remove(key, testing::clock({{1, 1}})));
    }
    const LogStats st = s.stats();
    EXPECT_EQ(st.keys, 90u);
    EXPECT_EQ(st.stale_bytes, expected_stale);
    EXPECT_GT(st.data_files, 1u);
    uint64_t sum = 0;
    for (const auto& [id, size_stale] : st.files) sum += size_stale.first;
    EXPECT_EQ(sum, st.data_bytes);
    EXPECT_GT(st.appended_bytes, st.data_bytes) << "tombstones are appended too";
    EXPECT_GT(st.index_bytes_per_key(), 40.0);
    EXPECT_LT(st.index_bytes_per_key(), 200.0);
  }
  // Rebuilt at open from the records alone.
  LogStore s(options(dir, 4 << 10));
  EXPECT_EQ(s.stats().keys, 90u);
  EXPECT_EQ(s.stats().stale_bytes, expected_stale);
  EXPECT_EQ(s.stats().appended_bytes, 0u);
}

TEST(LogStoreTest, OpenTakesClosedFilesFromTheirIndexFiles) {
  TempDir dir;
  auto fill = [&] {
    LogStore s(options(dir, 4 << 10));
    for (int i = 0; i < 300; ++i) {
      ASSERT_EQ(s.put("k" + std::to_string(i), versioned(std::string(60, 'a' + i % 26), {{1, 1}})),
                PutResult::kStored);
    }
    for (int i = 0; i < 300; i += 3) {
      ASSERT_EQ(s.put("k" + std::to_string(i), versioned("new", {{1, 2}})), PutResult::kStored);
    }
  };
  auto check = [&](LogStore& s) {
    for (int i = 0; i < 300; ++i) {
      const auto got = s.get("k" + std::to_string(i));
      ASSERT_EQ(got.size(), 1u) << i;
      EXPECT_EQ(got[0].value, i % 3 == 0 ? "new" : std::string(60, 'a' + i % 26)) << i;
    }
  };
  fill();
  ASSERT_GT(files(dir, ".index").size(), 3u);
  {
    LogStore s(options(dir, 4 << 10));
    const LogStats st = s.stats();
    EXPECT_GT(st.opened_from_index, 300u) << "closed files come from their index files";
    EXPECT_LT(st.opened_by_scan, 100u) << "only the file being written is read";
    EXPECT_EQ(st.opened_from_index + st.opened_by_scan, 400u);
    check(s);
  }
  // Loading the files in parallel builds the same index as one by one.
  uint64_t stale_one_by_one = 0;
  for (int threads : {1, 4}) {
    LogOptions o = options(dir, 4 << 10);
    o.build_index_threads = threads;
    LogStore s(o);
    EXPECT_EQ(s.stats().keys, 300u) << threads << " threads";
    if (threads == 1) stale_one_by_one = s.stats().stale_bytes;
    EXPECT_EQ(s.stats().stale_bytes, stale_one_by_one) << threads << " threads";
    check(s);
  }
  {
    LogStore s(options(dir, 4 << 10));
    EXPECT_THROW(LogStore(options(dir, 4 << 10)), FailedPrecondition)
        << "a directory is one store's at a time";
  }
  // A damaged entry in an index file: the rest of that file is read from
  // its data file instead. A missing index file: the whole data file.
  const std::vector<fs::path> indexes = files(dir, ".index");
  std::string bytes = read_file(indexes[1]);
  bytes[bytes.size() / 2] ^= 0x20;
  write_file(indexes[1], bytes);
  fs::remove(indexes[2]);
  LogStore s(options(dir, 4 << 10));
  EXPECT_GT(s.stats().opened_by_scan, 0u);
  EXPECT_EQ(s.stats().opened_from_index + s.stats().opened_by_scan, 400u);
  check(s);
}

TEST(LogStoreTest, BadOptionsAreClearErrors) {
  TempDir dir;
  LogOptions o = options(dir);
  o.max_key_size = 70000;
  EXPECT_THROW(LogStore{o}, InvalidArgument);
  o = options(dir);
  o.path = "";
  EXPECT_THROW(LogStore{o}, InvalidArgument);
  write_file(dir.sub("afile"), "x");
  o = options(dir);
  o.path = dir.sub("afile/log");
  EXPECT_THROW(LogStore{o}, IoError);
}

}  // namespace
}  // namespace cairn

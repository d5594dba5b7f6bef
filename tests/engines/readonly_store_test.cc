// The read-only engine (engines/readonly): the builder's external sort,
// the mapped lookups, versions swapped under readers, and fetches that
// refuse damaged files.

#include "cairn/readonly_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "cairn/errors.h"
#include "cairn/ring.h"
#include "core/varint.h"
#include "engines/log/crc32c.h"
#include "engines/readonly/format.h"
#include "engines/readonly/receiver.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

namespace fs = std::filesystem;
namespace ro = internal::readonly;
using testing::TempDir;

std::string key_of(int i) { return absl::StrCat("key-", i); }
std::string value_of(int version, int i) { return absl::StrCat("v", version, "-value-", i); }

// Builds version `version` of keys [0, n) (and only even keys if `evens`)
// into `dir`.
ReadOnlyBuildResult build(const std::string& dir, int version, int n, uint32_t q = 1,
                          size_t memory = size_t{64} << 20, bool evens = false) {
  ReadOnlyBuildOptions o;
  o.dir = dir;
  o.ring_partitions = q;
  o.memory_bytes = memory;
  ReadOnlyBuilder b(o);
  // Added in a scrambled order: the builder sorts.
  for (int j = 0; j < n; ++j) {
    const int i = static_cast<int>((static_cast<int64_t>(j) * 7919) % n);
    if (evens && i % 2 == 1) continue;
    b.add(key_of(i), value_of(version, i));
  }
  return b.finish();
}

// Copies a built directory in as version `version` of the store at `root`
// (only `partitions`, if given, as a node that replicates those).
void fetch(const std::string& built, const std::string& root, uint64_t version,
           const std::vector<uint32_t>& partitions = {}) {
  std::ifstream m(built + "/metadata.json");
  std::stringstream text;
  text << m.rdbuf();
  std::string meta = text.str();
  if (!partitions.empty()) {
    meta = ro::VersionMeta::parse(meta, "metadata.json").subset(partitions).to_json();
  }
  internal::ReadOnlyReceiver in(root, version, meta);
  for (const ro::ChunkMeta& c : in.meta().chunks) {
    for (const ro::FileMeta* f : {&c.index, &c.data}) {
      std::ifstream src(built + "/" + f->file, std::ios::binary);
      std::string buf(4096, '\0');
      while (src.read(buf.data(), static_cast<std::streamsize>(buf.size())) || src.gcount() > 0) {
        in.write(f->file, std::string_view(buf.data(), static_cast<size_t>(src.gcount())));
      }
    }
  }
  in.finish();
}

std::optional<std::string> get(Store& s, std::string_view key) {
  const std::vector<Versioned> v = s.get(key);
  if (v.empty()) return std::nullopt;
  EXPECT_EQ(v.size(), 1u);
  EXPECT_TRUE(v[0].clock.empty());
  return v[0].value;
}

void flip_byte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  f.read(&c, 1);
  c = static_cast<char>(c ^ 0x5a);
  f.seekp(static_cast<std::streamoff>(offset));
  f.write(&c, 1);
}

TEST(ReadOnlyBuild, AMillionRecordsSpilledAndMergedMatchOneSortInMemory) {
  TempDir dir;
  constexpr int kN = 1'000'000;
  // 4 MiB runs: about 20 runs merged; 256 MiB: one sort in memory.
  const ReadOnlyBuildResult spilled = build(dir.sub("spilled"), 1, kN, 8, size_t{4} << 20);
  const ReadOnlyBuildResult in_memory = build(dir.sub("memory"), 1, kN, 8, size_t{256} << 20);
  EXPECT_GT(spilled.runs, 5u);
  EXPECT_EQ(in_memory.runs, 0u);
  EXPECT_EQ(spilled.records, static_cast<uint64_t>(kN));
  for (uint32_t p = 0; p < 8; ++p) {
    for (const std::string& f : {ro::index_file(p), ro::data_file(p)}) {
      uint64_t a = 0, b = 0;
      EXPECT_EQ(ro::file_crc32c(dir.sub("spilled/" + f), &a),
                ro::file_crc32c(dir.sub("memory/" + f), &b)) << f;
      EXPECT_EQ(a, b);
    }
  }
  // No run files or half-built directories are left beside it.
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.insert(e.path().filename());
  EXPECT_EQ(names, (std::set<std::string>{"memory", "spilled"}));

  fetch(dir.sub("spilled"), dir.sub("store"), 1);
  ReadOnlyStore s({.name = "t", .path = dir.sub("store")});
  s.swap(1);
  for (int i = 0; i < kN; ++i) ASSERT_EQ(get(s, key_of(i)), value_of(1, i)) << i;
  for (int i = kN; i < kN + 1000; ++i) ASSERT_EQ(get(s, key_of(i)), std::nullopt);
  uint64_t scanned = 0;
  for (auto it = s.scan(); it->next();) {
    ASSERT_EQ(it->versions().size(), 1u);
    ++scanned;
  }
  EXPECT_EQ(scanned, static_cast<uint64_t>(kN));
}

TEST(ReadOnlyBuild, RefusesADuplicateKeyAndLeavesNothing) {
  TempDir dir;
  ReadOnlyBuildOptions o;
  o.dir = dir.sub("out");
  o.memory_bytes = 1 << 20;
  {
    ReadOnlyBuilder b(o);
    for (int i = 0; i < 100'000; ++i) b.add(key_of(i), "x");
    b.add(key_of(31337), "again");
    try {
      b.finish();
      FAIL() << "a key added twice was built";
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find("key-31337"), std::string::npos) << e.what();
    }
  }
  EXPECT_TRUE(fs::is_empty(dir.path()));
}

TEST(ReadOnlyBuild, RefusesBadKeysAndValuesAndAnExistingDirectory) {
  TempDir dir;
  ReadOnlyBuildOptions o;
  o.dir = dir.sub("out");
  o.max_value_size = 10;
  ReadOnlyBuilder b(o);
  EXPECT_THROW(b.add("", "v"), InvalidArgument);
  EXPECT_THROW(b.add(std::string(512, 'k'), "v"), InvalidArgument);
  EXPECT_THROW(b.add("k", std::string(11, 'v')), InvalidArgument);
  b.add("k", "v");
  b.finish();
  EXPECT_THROW(ReadOnlyBuilder({.dir = dir.sub("out")}), FailedPrecondition);
}

TEST(ReadOnlyStore, EmptyUntilAVersionIsSwappedInAndWritesAreRefused) {
  TempDir dir;
  ReadOnlyStore s({.name = "t", .path = dir.sub("store")});
  EXPECT_EQ(s.live_version(), 0u);
  EXPECT_EQ(get(s, "k"), std::nullopt);
  try {
    s.put("k", Versioned{"v", VectorClock()});
    FAIL();
  } catch (const Unsupported& e) {
    EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos);
  }
  EXPECT_THROW(s.remove("k", VectorClock()), Unsupported);
  EXPECT_THROW(s.atomic("k", "increment", "1"), Unsupported);
  EXPECT_THROW(s.get(""), InvalidArgument);
  EXPECT_THROW(s.swap(1), NotFound);
  EXPECT_THROW(s.commit(1), FailedPrecondition);
}

TEST(ReadOnlyStore, KeysOfEqualHashAreToldApartByTheKey) {
  // Two records whose index entries carry the hash of "wanted": the first
  // holds another key, as a hash collision would. The lookup reads past it.
  TempDir dir;
  const std::string v = dir.sub("store/version-1");
  fs::create_directories(v);
  const uint64_t h = Ring::hash("wanted");
  std::string data = ro::header(ro::kDataMagic, 0, 1);
  std::string index = ro::header(ro::kIndexMagic, 0, 1);
  for (const auto& [k, val] : std::vector<std::pair<std::string, std::string>>{
           {"impostor", "wrong"}, {"wanted", "right"}}) {
    internal::put_fixed64(&index, h);
    internal::put_fixed64(&index, data.size());
    internal::put_varint(&data, k.size());
    internal::put_varint(&data, val.size());
    data += k + val;
  }
  std::ofstream(v + "/0.index", std::ios::binary) << index;
  std::ofstream(v + "/0.data", std::ios::binary) << data;
  ro::VersionMeta m;
  m.records = 2;
  m.chunks.push_back({0, 2, {"0.index", index.size(), internal::crc32c(index)},
                      {"0.data", data.size(), internal::crc32c(data)}});
  std::ofstream(v + "/metadata.json") << m.to_json();
  ReadOnlyStore s({.name = "t", .path = dir.sub("store")});
  s.swap(1);
  EXPECT_EQ(get(s, "wanted"), "right");
  EXPECT_EQ(get(s, "impostor"), std::nullopt);  // its own hash finds no entry
}

TEST(ReadOnlyStore, SwapsUnderReadersWhoSeeOneWholeVersionAtATime) {
  TempDir dir;
  constexpr int kN = 50'000;
  build(dir.sub("b1"), 1, kN, 4);
  build(dir.sub("b2"), 2, kN, 4, size_t{64} << 20, /*evens=*/true);
  fetch(dir.sub("b1"), dir.sub("store"), 1);
  fetch(dir.sub("b2"), dir.sub("store"), 2);
  ReadOnlyStore s({.name = "t", .path = dir.sub("store"), .keep = 2});
  s.swap(1);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, from1{0}, from2{0}, bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 3; ++t) {
    readers.emplace_back([&, t] {
      auto rng = testing::seeded_rng(static_cast<uint64_t>(t));
      std::vector<Versioned> out;
      while (!stop.load()) {
        const int i = static_cast<int>(rng() % kN);
        s.get_into(key_of(i), &out);
        ++reads;
        if (out.size() == 1 && out[0].value == value_of(1, i)) {
          ++from1;
        } else if (i % 2 == 0 && out.size() == 1 && out[0].value == value_of(2, i)) {
          ++from2;
        } else if (i % 2 == 1 && out.empty()) {
          ++from2;  // odd keys are not in version 2
        } else {
          ++bad;
        }
      }
    });
  }
  // Reads go on between swaps (bounded in time, so a slow machine only
  // makes fewer of them).
  auto reads_go_on = [&](uint64_t n) {
    const uint64_t from = reads.load();
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    while (reads.load() < from + n && std::chrono::steady_clock::now() < until) {
      std::this_thread::yield();
    }
  };
  reads_go_on(3000);
  // A scan that begins on version 1 keeps reading version 1 across swaps.
  auto scan = s.scan();
  for (int round = 0; round < 40; ++round) {
    EXPECT_EQ(s.swap(round % 2 == 0 ? 2 : 1), round % 2 == 0 ? 1u : 2u);
    reads_go_on(200);
  }
  // Two more versions (the same contents again): with keep=2 the swaps
  // delete versions 2 and then 1, the scan's, from the disk while it
  // still reads it.
  fetch(dir.sub("b2"), dir.sub("store"), 3);
  fetch(dir.sub("b1"), dir.sub("store"), 4);
  EXPECT_EQ(s.swap(3), 1u);
  reads_go_on(200);
  EXPECT_EQ(s.swap(4), 3u);
  reads_go_on(200);
  EXPECT_FALSE(fs::exists(dir.sub("store/version-1"))) << "keep=2 left version 1";
  EXPECT_FALSE(fs::exists(dir.sub("store/version-2")));
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(bad.load(), 0u) << reads.load() << " reads";
  EXPECT_GT(from1.load(), 0u);
  EXPECT_GT(from2.load(), 0u);
  int scanned = 0;
  while (scan->next()) {
    const int i = std::stoi(std::string(scan->key().substr(4)));
    ASSERT_EQ(scan->versions()[0].value, value_of(1, i));
    ++scanned;
  }
  EXPECT_EQ(scanned, kN);
  EXPECT_EQ(s.live_version(), 4u);
  EXPECT_EQ(s.previous_version(), 3u);
}

TEST(ReadOnlyStore, TheVersionNewerThanTheLiveOneIsNotPreviousAndIsKept) {
  TempDir dir;
  build(dir.sub("b1"), 1, 100);
  build(dir.sub("b2"), 2, 100);
  fetch(dir.sub("b1"), dir.sub("store"), 1);
  fetch(dir.sub("b2"), dir.sub("store"), 2);
  ReadOnlyStore s({.name = "t", .path = dir.sub("store")});
  s.swap(2);
  EXPECT_EQ(s.swap(1), 2u);
  EXPECT_EQ(s.previous_version(), 0u);  // version 2 is newer, not previous
  EXPECT_TRUE(fs::exists(dir.sub("store/version-2")));
}

TEST(ReadOnlyStore, KeepsTheConfiguredNumberOfVersionsAndReopensTheLatest) {
  TempDir dir;
  for (int v = 1; v <= 4; ++v) {
    build(dir.sub("b" + std::to_string(v)), v, 1000);
    fetch(dir.sub("b" + std::to_string(v)), dir.sub("store"), static_cast<uint64_t>(v));
  }
  {
    ReadOnlyStore s({.name = "t", .path = dir.sub("store"), .keep = 2});
    s.swap(3);
    std::vector<uint64_t> on_disk;
    for (const ReadOnlyVersionInfo& v : s.status()) on_disk.push_back(v.version);
    // Live, the newer one fetched for later, and the newest older one.
    EXPECT_EQ(on_disk, (std::vector<uint64_t>{2, 3, 4}));
    s.swap(4);
    on_disk.clear();
    for (const ReadOnlyVersionInfo& v : s.status()) on_disk.push_back(v.version);
    EXPECT_EQ(on_disk, (std::vector<uint64_t>{3, 4}));  // live, and the one live before
    EXPECT_EQ(s.previous_version(), 3u);
    EXPECT_EQ(s.swap(3), 4u);  // a rollback is a swap to an older version
    EXPECT_THROW(s.discard(3), FailedPrecondition);  // live
    s.prepare(4);
    s.discard(4);
    EXPECT_THROW(s.commit(4), FailedPrecondition);  // forgotten with its files
    EXPECT_FALSE(fs::exists(dir.sub("store/version-4")));
  }
  ReadOnlyStore again({.name = "t", .path = dir.sub("store")});
  EXPECT_EQ(again.live_version(), 3u);
  EXPECT_EQ(get(again, key_of(7)), value_of(3, 7));
  EXPECT_EQ(fs::read_symlink(dir.sub("store/latest")), "version-3");
}

TEST(ReadOnlyStore, ADamagedVersionIsRefusedAtPrepareAndTheLiveOneStays) {
  TempDir dir;
  build(dir.sub("b1"), 1, 1000);
  build(dir.sub("b2"), 2, 1000);
  fetch(dir.sub("b1"), dir.sub("store"), 1);
  fetch(dir.sub("b2"), dir.sub("store"), 2);
  flip_byte(dir.sub("store/version-2/0.data"), 500);
  ReadOnlyStore s({.name = "t", .path = dir.sub("store")});
  s.swap(1);
  EXPECT_THROW(s.prepare(2), Corruption);
  EXPECT_EQ(s.live_version(), 1u);
  EXPECT_EQ(get(s, key_of(1)), value_of(1, 1));
  // A truncated file is refused even without checksums.
  fs::resize_file(dir.sub("store/version-2/0.index"), 100);
  ReadOnlyStore lax({.name = "t2", .path = dir.sub("store"), .verify_on_swap = false});
  EXPECT_THROW(lax.prepare(2), Corruption);
}

TEST(ReadOnlyStore, ClosedStoresAndTheirScansRefuseCalls) {
  TempDir dir;
  build(dir.sub("b1"), 1, 10);
  fetch(dir.sub("b1"), dir.sub("store"), 1);
  ReadOnlyStore s({.name = "t", .path = dir.sub("store")});
  s.swap(1);
  auto it = s.scan();
  s.close();
  EXPECT_THROW(s.get("k"), FailedPrecondition);
  EXPECT_THROW(it->next(), FailedPrecondition);
}

TEST(ReadOnlyStore, AKeyOfAPartitionTheNodeDoesNotHoldIsUnavailableNotAbsent) {
  TempDir dir;
  build(dir.sub("b1"), 1, 2000, /*q=*/4);
  fetch(dir.sub("b1"), dir.sub("store"), 1, {0, 2});
  ReadOnlyStore s({.name = "t", .path = dir.sub("store")});
  s.swap(1);
  int held = 0, elsewhere = 0;
  for (int i = 0; i < 2000; ++i) {
    const uint32_t p = static_cast<uint32_t>(Ring::hash(key_of(i)) % 4);
    if (p == 0 || p == 2) {
      ++held;
      EXPECT_EQ(get(s, key_of(i)), value_of(1, i));
    } else {
      ++elsewhere;
      EXPECT_THROW(s.get(key_of(i)), Unavailable) << key_of(i) << " of partition " << p;
    }
  }
  EXPECT_GT(held, 0);
  EXPECT_GT(elsewhere, 0);
}

TEST(ReadOnlyReceiver, OneFetchIntoAStoreAtATime) {
  TempDir dir;
  build(dir.sub("b1"), 1, 100);
  std::ifstream m(dir.sub("b1") + "/metadata.json");
  std::stringstream text;
  text << m.rdbuf();
  {
    internal::ReadOnlyReceiver first(dir.sub("store"), 1, text.str());
    EXPECT_THROW(internal::ReadOnlyReceiver(dir.sub("store"), 1, text.str()), Unavailable);
    EXPECT_TRUE(fs::is_directory(dir.sub("store/.incoming-1"))) << "the second took the first's files";
  }
  // The first gone (unfinished, so nothing kept), a fetch may start again.
  EXPECT_FALSE(fs::exists(dir.sub("store/.incoming-1")));
  fetch(dir.sub("b1"), dir.sub("store"), 1);
  EXPECT_TRUE(fs::is_directory(dir.sub("store/version-1")));
}

TEST(ReadOnlyReceiver, RefusesADamagedFileAndKeepsNothing) {
  TempDir dir;
  build(dir.sub("b1"), 1, 10'000, 2);
  flip_byte(dir.sub("b1/1.data"), 1000);
  try {
    fetch(dir.sub("b1"), dir.sub("store"), 1);
    FAIL() << "a damaged file was taken in";
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("1.data"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(ro::list_versions(dir.sub("store")).empty());
  EXPECT_FALSE(fs::exists(dir.sub("store/.incoming-1")));
}

TEST(ReadOnlyReceiver, RefusesFilesOutOfOrderTooLongOrMissing) {
  TempDir dir;
  build(dir.sub("b1"), 1, 100, 2);
  std::ifstream m(dir.sub("b1/metadata.json"));
  std::stringstream text;
  text << m.rdbuf();
  {
    internal::ReadOnlyReceiver in(dir.sub("store"), 1, text.str());
    EXPECT_THROW(in.write("0.data", "x"), InvalidArgument);  // 0.index comes first
  }
  {
    internal::ReadOnlyReceiver in(dir.sub("store"), 1, text.str());
    EXPECT_THROW(in.write("0.index", std::string(1 << 20, 'x')), InvalidArgument);
  }
  {
    internal::ReadOnlyReceiver in(dir.sub("store"), 1, text.str());
    EXPECT_THROW(in.finish(), Corruption);  // nothing came
  }
  EXPECT_THROW(internal::ReadOnlyReceiver(dir.sub("store"), 1, "{\"format\": \"other\"}"),
               Corruption);
  EXPECT_THROW(internal::ReadOnlyReceiver(dir.sub("store"), 0, text.str()), InvalidArgument);
  fetch(dir.sub("b1"), dir.sub("store"), 1);
  EXPECT_THROW(internal::ReadOnlyReceiver(dir.sub("store"), 1, text.str()), FailedPrecondition);
}

}  // namespace
}  // namespace cairn

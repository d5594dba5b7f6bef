// LogFile: the log engine's append-only files (engines/log/log_file.h).

#include "engines/log/log_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>
#include <vector>

#include "cairn/errors.h"
#include "tests/testing/test_util.h"

namespace cairn::internal {
namespace {

using testing::TempDir;

// A record to lie at `offset` (its CRC covers where it is).
std::string record(uint64_t seq, const std::string& key, const std::string& value, uint64_t offset = 0) {
  std::string out;
  logrec::append(&out, logrec::Kind::kPut, seq, key, value, offset);
  return out;
}

TEST(LogFileTest, ReadsSeeBufferedAndWrittenBytesAlike) {
  TempDir dir;
  LogFile f(dir.sub("1.data"));
  EXPECT_EQ(f.size(), 0u);
  std::vector<std::pair<uint64_t, std::string>> written;
  auto rng = testing::seeded_rng(3);
  // Enough to cross the 64 KiB buffer several times, and one record bigger
  // than the buffer, which goes to the file whole.
  for (int i = 0; i < 300; ++i) {
    const std::string bytes =
        testing::random_bytes(rng, i == 150 ? LogFile::kBufferSize + 10 : 1 + rng() % 2000);
    written.emplace_back(f.append(bytes), bytes);
  }
  std::string got;
  for (const auto& [offset, bytes] : written) {
    f.read(offset, bytes.size(), &got);
    ASSERT_TRUE(got == bytes) << "at " << offset;
  }
  EXPECT_THROW(f.read(f.size() - 1, 2, &got), Corruption) << "past the end";
}

TEST(LogFileTest, ReopenFindsWhatWasFlushedAndAppendsAfterIt) {
  TempDir dir;
  const std::string path = dir.sub("1.data");
  uint64_t second = 0;
  {
    LogFile f(path);
    f.append(record(1, "a", "1", 0));
    f.sync();
    second = f.append(record(2, "b", "22", f.size()));
  }  // the destructor flushes
  LogFile f(path);
  EXPECT_EQ(f.size(), second + record(2, "b", "22").size());
  const uint64_t third = f.append(record(3, "c", "333", f.size()));
  EXPECT_EQ(third, f.size() - record(3, "c", "333").size());
  std::vector<std::string> keys;
  const uint64_t good = f.scan([&](const logrec::Record& r, uint64_t) { keys.emplace_back(r.key); },
                               1 << 20);
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(good, f.size());
}

TEST(LogFileTest, ScanStopsAtATornOrDamagedTailAndTruncateDropsIt) {
  TempDir dir;
  const std::string path = dir.sub("1.data");
  std::string all;
  std::vector<size_t> starts;  // where each record begins
  for (int i = 0; i < 2000; ++i) {
    starts.push_back(all.size());
    all += record(static_cast<uint64_t>(i), "key" + std::to_string(i), std::string(700, 'v'), all.size());
  }
  // Where the good records of a file cut at `cut` end: the start of the
  // last record that begins by the cut (it is the one torn).
  auto good_end = [&](size_t cut) {
    size_t k = 0;
    while (k + 1 < starts.size() && starts[k + 1] <= cut) ++k;
    return starts[k];
  };
  for (const size_t cut : {all.size() - 1, starts[1500] + 100, size_t{5}}) {
    {
      std::ofstream(path, std::ios::binary | std::ios::trunc) << all.substr(0, cut);
    }
    LogFile f(path);
    size_t n = 0;
    const uint64_t good = f.scan([&](const logrec::Record&, uint64_t) { ++n; }, 1 << 20);
    EXPECT_EQ(good, good_end(cut)) << "cut at " << cut << ": only the torn record is lost";
    f.truncate(good);
    EXPECT_EQ(f.size(), good);
    size_t again = 0;
    EXPECT_EQ(f.scan([&](const logrec::Record&, uint64_t) { ++again; }, 1 << 20), good);
    EXPECT_EQ(again, n);
  }
  // A flipped byte in the middle: the scan stops before that record.
  std::string damaged = all;
  damaged[starts[1000] + 30] ^= 0x40;
  {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << damaged;
  }
  LogFile f(path);
  size_t n = 0;
  EXPECT_EQ(f.scan([&](const logrec::Record&, uint64_t) { ++n; }, 1 << 20), starts[1000]);
  EXPECT_EQ(n, 1000u);
  // Stepping over damage instead: only that record is lost.
  n = 0;
  uint64_t skipped = 0;
  EXPECT_EQ(f.scan([&](const logrec::Record&, uint64_t) { ++n; }, 1 << 20, 0, &skipped), all.size());
  EXPECT_EQ(n, 1999u);
  EXPECT_EQ(skipped, starts[1001] - starts[1000]);
}

// Inside its mapping a file grows ahead of the appends in whole steps;
// trim() gives the unused part back, and the bytes stay readable.
TEST(LogFileTest, MappedFilesGrowAheadAndTrimBack) {
  TempDir dir;
  const std::string path = dir.sub("1.data");
  LogFile f(path, 8 << 20);
  const std::string bytes(1500, 'b');
  for (int i = 0; i < 1000; ++i) f.append(bytes);  // 1.5 MB
  const uint64_t on_disk = std::filesystem::file_size(path);
  EXPECT_GT(on_disk, f.size()) << "grown ahead";
  EXPECT_EQ(on_disk % LogFile::kGrowStep, 0u);
  f.trim();
  EXPECT_EQ(std::filesystem::file_size(path), f.size());
  std::string got;
  f.read(f.size() - bytes.size(), bytes.size(), &got);
  EXPECT_EQ(got, bytes);
  std::string_view view;
  ASSERT_TRUE(f.view(0, bytes.size(), &view));
  EXPECT_EQ(view, bytes);
  // Appends after a trim still land (past the shrunk mapping: pwrite).
  const uint64_t at = f.append("tail");
  f.read(at, 4, &got);
  EXPECT_EQ(got, "tail");
}

// A record's image inside another record's value is not a good record
// where it lies: stepping over damage cannot take it for one.
TEST(LogFileTest, StepsOverDamageButNotIntoARecordImageInAValue) {
  TempDir dir;
  const std::string path = dir.sub("1.data");
  const std::string inner = record(99, "planted", "a value that was never put", 0);
  std::string all = record(1, "a", "x" + inner + "y", 0);
  all += record(2, "b", "2", all.size());
  all[10] ^= 0x01;  // a's value size: a is damaged, and the image lies bare
  {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << all;
  }
  LogFile f(path);
  std::vector<std::string> keys;
  uint64_t skipped = 0;
  EXPECT_EQ(f.scan([&](const logrec::Record& r, uint64_t) { keys.emplace_back(r.key); }, 1 << 20, 0, &skipped),
            all.size());
  EXPECT_EQ(keys, std::vector<std::string>{"b"});
  EXPECT_EQ(skipped, all.size() - record(2, "b", "2").size());
}

// Mapped files: appends are copies into the page cache, reads views; the
// space grown ahead is trimmed, and a file past the mapping is written
// with pwrite and read with pread.
TEST(LogFileTest, MappedAppendsReadsTrimAndReopen) {
  TempDir dir;
  const std::string path = dir.sub("1.data");
  std::vector<std::pair<uint64_t, std::string>> written;
  auto rng = testing::seeded_rng(9);
  {
    LogFile f(path, 3 << 20);  // mapped for 3 MiB; the rest past the mapping
    for (int i = 0; i < 600; ++i) {
      const std::string bytes = testing::random_bytes(rng, 1 + rng() % 12000);
      written.emplace_back(f.append(bytes), bytes);
    }
    EXPECT_GT(f.size(), uint64_t{3} << 20);
    std::string got;
    std::string_view view;
    for (const auto& [offset, bytes] : written) {
      f.read(offset, bytes.size(), &got);
      ASSERT_TRUE(got == bytes) << "at " << offset;
      if (offset + bytes.size() <= (3u << 20)) {
        ASSERT_TRUE(f.view(offset, bytes.size(), &view));
        ASSERT_TRUE(view == bytes);
      } else {
        EXPECT_FALSE(f.view(offset, bytes.size(), &view)) << "past the mapping";
      }
    }
    EXPECT_THROW(f.read(f.size() - 1, 2, &got), Corruption) << "past the end";
    f.sync();
  }
  LogFile f(path, 1);
  EXPECT_EQ(f.size(), written.back().first + written.back().second.size());
  std::string got;
  for (const auto& [offset, bytes] : written) {
    f.read(offset, bytes.size(), &got);
    ASSERT_TRUE(got == bytes) << "at " << offset;
  }
}

// Whether the page holding `p` is mapped in this process's page table
// (/proc/self/pagemap: bit 63 of the page's 8-byte entry).
bool page_present(const char* p) {
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  const int fd = ::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw std::runtime_error("cannot open /proc/self/pagemap");
  uint64_t entry = 0;
  const ssize_t n = ::pread(fd, &entry, sizeof entry,
                            static_cast<off_t>(reinterpret_cast<uintptr_t>(p) / page * sizeof entry));
  ::close(fd);
  if (n != sizeof entry) throw std::runtime_error("cannot read /proc/self/pagemap");
  return (entry >> 63) != 0;
}

// Whether this kernel maps pages back with MADV_POPULATE_READ (Linux 5.14).
bool kernel_populates() {
#ifdef MADV_POPULATE_READ
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  void* p = ::mmap(nullptr, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  const bool ok = ::madvise(p, page, MADV_POPULATE_READ) == 0;
  ::munmap(p, page);
  return ok;
#else
  return false;
#endif
}

// A sync first maps the pages wholly appended again, read-only (sparing
// writeback a TLB flush per page, and the reads of them a fault each);
// their bytes stay, in views taken before, in reads after, on disk, and
// appends go on in the partial page.
TEST(LogFileTest, SyncRemapsWrittenPagesAndKeepsTheirBytes) {
  if (!kernel_populates()) GTEST_SKIP() << "MADV_POPULATE_READ is Linux 5.14 or later: reads fault the pages in";
  TempDir dir;
  const std::string path = dir.sub("1.data");
  const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  auto rng = testing::seeded_rng(21);
  std::string all;  // every byte appended
  {
    LogFile f(path, 1 << 20);
    auto append_until = [&](uint64_t end) {
      while (f.size() < end) {
        const std::string bytes = testing::random_bytes(rng, 1 + rng() % 700);
        ASSERT_EQ(f.append(bytes), all.size());
        all += bytes;
      }
    };
    append_until(5 * page + page / 2);
    std::string_view before;
    ASSERT_TRUE(f.view(0, all.size(), &before));
    const char* base = before.data();
    EXPECT_TRUE(page_present(base)) << "appended pages are mapped";
    f.sync();
    const uint64_t whole = f.size() / page;
    for (uint64_t i = 0; i < whole; ++i) EXPECT_TRUE(page_present(base + i * page)) << "page " << i;
    EXPECT_TRUE(page_present(base + whole * page)) << "the partial page is still appended to";
    ASSERT_TRUE(before == std::string_view(all).substr(0, before.size())) << "a view taken before the sync";
    append_until(9 * page + 100);
    f.sync();
    std::string got;
    f.read(0, all.size(), &got);
    ASSERT_TRUE(got == all);
  }
  // On disk: read through a new descriptor after the page cache let the
  // file's (clean) pages go, so what is read is what writeback wrote.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  std::string disk(all.size() + 1, '\0');
  const ssize_t n = ::pread(fd, disk.data(), disk.size(), 0);
  ::close(fd);
  ASSERT_EQ(n, static_cast<ssize_t>(all.size()));
  disk.resize(all.size());
  EXPECT_TRUE(disk == all);
}

TEST(LogFileTest, ConcurrentReadersWhileAppending) {
  // Buffered; then mapped, and past the mapping.
  for (const uint64_t map_bytes : {uint64_t{0}, uint64_t{2} << 20}) {
    TempDir dir;
    LogFile f(dir.sub("1.data"), map_bytes);
    const std::string rec = record(1, "k", std::string(1000, 'x'));
    std::atomic<uint64_t> published{0};  // bytes readers may read
    std::atomic<bool> done{false};
    std::thread writer([&] {
      for (int i = 0; i < 3000; ++i) {
        f.append(rec);
        published.store(f.size(), std::memory_order_release);
      }
      done = true;
    });
    std::vector<std::thread> readers;
    for (int t = 0; t < 2; ++t) {
      readers.emplace_back([&] {
        std::string got;
        while (!done) {
          const uint64_t upto = published.load(std::memory_order_acquire);
          if (upto < rec.size()) continue;
          const uint64_t at = (upto / rec.size() - 1) * rec.size();
          f.read(at, rec.size(), &got);
          ASSERT_TRUE(got == rec) << "at " << at;
        }
      });
    }
    writer.join();
    for (std::thread& r : readers) r.join();
  }
}

TEST(LogFileTest, WritersWaitingTogetherShareOneSync) {
  TempDir dir;
  LogFile f(dir.sub("1.data"));
  const std::string rec = record(1, "k", std::string(100, 'x'));
  constexpr int kThreads = 8, kEach = 50;
  std::mutex append_mu;  // appends are serialized by the engine's write lock
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&] {
      for (int i = 0; i < kEach; ++i) {
        uint64_t end = 0;
        {
          std::lock_guard lock(append_mu);
          end = f.append(rec) + rec.size();
        }
        f.sync_through(end);
      }
    });
  }
  for (std::thread& w : writers) w.join();
  EXPECT_EQ(f.size(), kThreads * kEach * rec.size());
  // Eight writers each waiting on an fdatasync (hundreds of µs) always
  // find others queued behind them: far fewer syncs than writes.
  EXPECT_LT(f.syncs(), static_cast<uint64_t>(kThreads * kEach));
  EXPECT_GT(f.syncs(), 0u);
  std::string got;
  for (int i = 0; i < kThreads * kEach; ++i) {
    f.read(static_cast<uint64_t>(i) * rec.size(), rec.size(), &got);
    ASSERT_TRUE(got == rec);
  }
}

TEST(LogFileTest, OpenFailsWithTheReason) {
  TempDir dir;
  try {
    LogFile f(dir.sub("missing/1.data"));
    FAIL() << "opened a file in a missing directory";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("No such file or directory"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cairn::internal

// LogFile: one append-only file of the log engine. Two ways to append:
//
// - Buffered (index and tombstone files): appends go through a 64 KiB
//   user-space buffer (one write(2) per 64 KiB rather than per record:
//   about 0.16 µs a record here instead of 0.95); flush() hands them to the
//   page cache.
// - Mapped (data files; LogFile(path, map_bytes)): the file is mapped
//   shared, and an append is a memcpy into the mapping, so it is in the
//   page cache when append() returns (a killed process loses nothing) with
//   no system call. The file grows ahead of the appends in 1 MiB steps
//   with fallocate(2), so a full disk is an IoError at append, not a
//   SIGBUS at the memcpy; trim() cuts the unused part (close does). A
//   crash leaves that part as zeros, which recovery cuts. Appends past the
//   mapping are written with pwrite(2). Reads of mapped bytes are memcpys,
//   or views with no copy.
//
// In both, sync() makes everything appended so far durable (fdatasync),
// and reads see every appended byte. A mapped file's sync first unmaps the
// pages wholly appended (they are never written again; the page cache
// keeps them) and maps them again read-only, so that writeback need not
// flush a TLB entry per page.
//
// Appends are serialized by the caller (the engine's write lock); reads
// may run concurrently with each other and with appends.

#ifndef CAIRN_ENGINES_LOG_LOG_FILE_H_
#define CAIRN_ENGINES_LOG_LOG_FILE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <string_view>

#include "engines/log/record.h"

namespace cairn::internal {

class LogFile {
 public:
  static constexpr size_t kBufferSize = 64 << 10;

  static constexpr uint64_t kGrowStep = 1 << 20;

  // Opens `path`, creating it if absent, for appending after its current
  // end. map_bytes > 0: mapped, the mapping max(map_bytes, file size)
  // long. Throws IoError saying what failed.
  explicit LogFile(std::string path, uint64_t map_bytes = 0);
  ~LogFile();  // flushes and trims (errors are logged), closes
  LogFile(const LogFile&) = delete;
  LogFile& operator=(const LogFile&) = delete;

  const std::string& path() const { return path_; }
  // Bytes appended to the file (buffered ones included, space grown ahead
  // of the appends not).
  uint64_t size() const;

  // Appends `bytes`; returns the offset they start at. Throws IoError.
  uint64_t append(std::string_view bytes);
  // Writes the buffer to the file (page cache); returns how many bytes
  // the file proper then holds. Throws IoError.
  uint64_t flush();
  // Makes the first `end` bytes durable (flush, then fdatasync). Callers
  // that arrive while a sync runs wait for it and, if it did not cover
  // them, one of them runs the next for all: group commit, one fdatasync
  // for every writer waiting. Throws IoError.
  void sync_through(uint64_t end);
  // sync_through(size()): all appended so far.
  void sync();
  // How many fdatasyncs this file has run.
  uint64_t syncs() const { return syncs_.load(std::memory_order_relaxed); }

  // Reads `size` bytes at `offset` into `*out`. Throws IoError, or
  // Corruption if the file is shorter than that.
  void read(uint64_t offset, size_t size, std::string* out) const;
  // The same bytes in place, when they are mapped: a view valid while this
  // LogFile lives. False (and nothing read) otherwise.
  bool view(uint64_t offset, size_t size, std::string_view* out) const;

  // Mapped files: cuts the space grown ahead of the appends.
  void trim();

  // Reads the records from `from`, calling fn(record, offset) for each
  // good one, and stops at the end or at the first truncated or damaged
  // record. Given `skipped`, it steps over damage instead: it looks for the
  // next good record byte by byte (header sane, CRC matching) and adds the
  // bytes stepped over between good records to *skipped. Returns the
  // offset where the last good record ends. For recovery.
  uint64_t scan(const std::function<void(const logrec::Record&, uint64_t)>& fn,
                size_t max_record_size, uint64_t from = 0, uint64_t* skipped = nullptr) const;
  // The same over an index file's entries: stops at the first bad one, or
  // when fn returns false. Returns where the entries it took end.
  uint64_t scan_index(const std::function<bool(const logrec::IndexEntry&)>& fn) const;
  // Cuts the file at `size` (dropping a torn tail) and syncs. Throws
  // IoError. REQUIRES: nothing buffered, and no sync running (recovery).
  void truncate(uint64_t size);

 private:
  void write_all(std::string_view bytes, uint64_t offset);
  void grow(uint64_t end);  // REQUIRES: mu_ held
  void release_pages(uint64_t end);  // REQUIRES: the sync leader

  std::string path_;
  int fd_ = -1;
  mutable std::mutex mu_;  // guards buffer_, flushed_, allocated_
  std::string buffer_;     // appended, not yet written
  uint64_t flushed_ = 0;   // bytes in the file proper

  // Mapped files: the mapping (fixed once made), the bytes appended (set
  // after they are copied in, so a reader that sees the size sees them),
  // and the file's length on disk.
  char* map_ = nullptr;
  std::atomic<uint64_t> map_len_{0};  // shrunk by trim()
  std::atomic<uint64_t> mapped_size_{0};
  uint64_t allocated_ = 0;
  // Pages below this were unmapped before a sync: set by the sync leader
  // (one at a time) and by truncate.
  std::atomic<uint64_t> released_{0};

  std::mutex sync_mu_;  // guards what follows
  std::condition_variable sync_cv_;
  bool syncing_ = false;
  uint64_t synced_ = 0;  // bytes known durable
  std::atomic<uint64_t> syncs_{0};
};

// fsyncs a directory, making the files created or removed in it durable.
// Throws IoError.
void sync_dir(const std::string& dir);

}  // namespace cairn::internal

#endif  // CAIRN_ENGINES_LOG_LOG_FILE_H_

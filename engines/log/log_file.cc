#include "engines/log/log_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "cairn/errors.h"
#include "cairn/log.h"

namespace cairn::internal {

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int err) {
  throw IoError(what + " " + path + ": " + std::strerror(err));
}

uint64_t page_size() {
  static const uint64_t page = static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  return page;
}

}  // namespace

LogFile::LogFile(std::string path, uint64_t map_bytes) : path_(std::move(path)) {
  fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot open", path_, errno);
  struct stat st;
  if (::fstat(fd_, &st) != 0) {
    const int err = errno;
    ::close(fd_);
    fail("cannot stat", path_, err);
  }
  flushed_ = static_cast<uint64_t>(st.st_size);
  if (map_bytes == 0) {
    buffer_.reserve(kBufferSize);
    return;
  }
  const uint64_t page = page_size();
  map_len_ = (std::max(map_bytes, flushed_) + page - 1) / page * page;
  void* m = ::mmap(nullptr, map_len_.load(), PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
  if (m == MAP_FAILED) {
    const int err = errno;
    ::close(fd_);
    fail("cannot map", path_, err);
  }
  map_ = static_cast<char*>(m);
  mapped_size_ = flushed_;
  allocated_ = flushed_;
}

LogFile::~LogFile() {
  try {
    flush();
    trim();
  } catch (const std::exception& e) {
    log(LogLevel::kError, std::string("log file: ") + e.what());
  }
  if (map_ != nullptr) ::munmap(map_, map_len_.load());
  ::close(fd_);
}

uint64_t LogFile::size() const {
  if (map_ != nullptr) return mapped_size_.load(std::memory_order_acquire);
  std::lock_guard lock(mu_);
  return flushed_ + buffer_.size();
}

void LogFile::write_all(std::string_view bytes, uint64_t offset) {
  while (!bytes.empty()) {
    const ssize_t n = ::pwrite(fd_, bytes.data(), bytes.size(), static_cast<off_t>(offset));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", path_, errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
    offset += static_cast<uint64_t>(n);
  }
}

void LogFile::grow(uint64_t end) {
  if (end <= allocated_) return;
  const uint64_t to = (end + kGrowStep - 1) / kGrowStep * kGrowStep;
  // Blocks reserved now: a full disk fails here, not as a SIGBUS when the
  // memcpy first touches the page.
  const int rc = ::fallocate(fd_, 0, static_cast<off_t>(allocated_), static_cast<off_t>(to - allocated_));
  if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS)) {
    // A file system without fallocate: zeros written reserve the blocks
    // as well (a sparse ftruncate would not).
    static const std::string zeros(64 << 10, '\0');
    for (uint64_t at = allocated_; at < to; at += zeros.size()) {
      write_all(std::string_view(zeros).substr(0, static_cast<size_t>(std::min<uint64_t>(zeros.size(), to - at))), at);
    }
  } else if (rc != 0) {
    fail("cannot grow", path_, errno);
  }
#ifdef MADV_POPULATE_WRITE
  // Map the new pages writable now, in one call, rather than by a page
  // fault at each page's first append. Only an optimization: errors (an
  // older kernel) are ignored.
  const uint64_t page = page_size();
  const uint64_t from = allocated_ / page * page;
  const uint64_t until = std::min(to, map_len_.load(std::memory_order_relaxed));
  if (until > from) ::madvise(map_ + from, until - from, MADV_POPULATE_WRITE);
#endif
  allocated_ = to;
}

uint64_t LogFile::append(std::string_view bytes) {
  std::lock_guard lock(mu_);
  if (map_ != nullptr) {
    const uint64_t at = mapped_size_.load(std::memory_order_relaxed);
    const uint64_t end = at + bytes.size();
    if (end <= map_len_.load(std::memory_order_relaxed)) {
      grow(end);
      std::memcpy(map_ + at, bytes.data(), bytes.size());
    } else {
      write_all(bytes, at);  // past the mapping
      allocated_ = std::max(allocated_, end);
    }
    flushed_ = end;
    mapped_size_.store(end, std::memory_order_release);
    return at;
  }
  const uint64_t at = flushed_ + buffer_.size();
  if (buffer_.size() + bytes.size() > kBufferSize && !buffer_.empty()) {
    write_all(buffer_, flushed_);
    flushed_ += buffer_.size();
    buffer_.clear();
  }
  if (bytes.size() >= kBufferSize) {
    // Too big to buffer: straight to the file, whole.
    write_all(bytes, flushed_);
    flushed_ += bytes.size();
  } else {
    buffer_.append(bytes);
  }
  return at;
}

uint64_t LogFile::flush() {
  std::lock_guard lock(mu_);
  if (!buffer_.empty()) {
    write_all(buffer_, flushed_);
    flushed_ += buffer_.size();
    buffer_.clear();
  }
  return flushed_;
}

void LogFile::trim() {
  if (map_ == nullptr) return;
  std::lock_guard lock(mu_);
  if (allocated_ > flushed_) {
    if (::ftruncate(fd_, static_cast<off_t>(flushed_)) != 0) fail("cannot trim", path_, errno);
    allocated_ = flushed_;
  }
  // Give back the address space reserved for appends (a closed file keeps
  // only its length mapped). Shrinking never moves the mapping, so views
  // of the bytes kept stay valid; no reader looks past the size.
  const uint64_t page = page_size();
  const uint64_t keep = std::max<uint64_t>(page, (flushed_ + page - 1) / page * page);
  const uint64_t len = map_len_.load(std::memory_order_relaxed);
  if (keep < len && ::mremap(map_, len, keep, 0) != MAP_FAILED) {
    map_len_.store(keep, std::memory_order_release);
  }
}

void LogFile::sync_through(uint64_t end) {
  std::unique_lock lock(sync_mu_);
  for (;;) {
    if (synced_ >= end) return;
    if (!syncing_) break;
    sync_cv_.wait(lock);
  }
  // The leader: one flush and one fdatasync for everything appended by now,
  // which covers every writer waiting.
  syncing_ = true;
  lock.unlock();
  uint64_t covered = 0;
  std::exception_ptr error;
  try {
    covered = flush();
    if (map_ != nullptr) release_pages(covered);
    if (::fdatasync(fd_) != 0) fail("cannot sync", path_, errno);
    syncs_.fetch_add(1, std::memory_order_relaxed);
  } catch (...) {
    error = std::current_exception();
  }
  lock.lock();
  syncing_ = false;
  if (!error) synced_ = std::max(synced_, covered);
  sync_cv_.notify_all();
  if (error) std::rethrow_exception(error);
}

void LogFile::release_pages(uint64_t end) {
  // Writeback write-protects every mapped dirty page, flushing each one's
  // TLB entry on every CPU that runs this process: an IPI per page, dear
  // under a hypervisor. Pages wholly appended are never written again, so
  // their mappings are dropped first, in one call and one flush; their
  // dirty bits pass to the page cache (MADV_DONTNEED on a shared file
  // mapping keeps the data). Then they are mapped again read-only, in one
  // call: writeback has nothing to write-protect, and the puts and gets
  // that read them (a put reads the record it supersedes) take no fault
  // each. MADV_POPULATE_READ is Linux 5.14; without it, reads fault them in.
  const uint64_t page = page_size();
  const uint64_t until = std::min(end / page * page, map_len_.load(std::memory_order_relaxed));
  uint64_t from = released_.load(std::memory_order_relaxed);
  if (until <= from) return;
  ::madvise(map_ + from, until - from, MADV_DONTNEED);  // only an optimization: errors are ignored
#ifdef MADV_POPULATE_READ
  ::madvise(map_ + from, until - from, MADV_POPULATE_READ);  // errors ignored too
#endif
  released_.store(until, std::memory_order_relaxed);
}

void LogFile::sync() { sync_through(size()); }

bool LogFile::view(uint64_t offset, size_t size, std::string_view* out) const {
  if (map_ == nullptr) return false;
  const uint64_t end =
      std::min(mapped_size_.load(std::memory_order_acquire), map_len_.load(std::memory_order_acquire));
  if (offset > end || size > end - offset) return false;
  *out = std::string_view(map_ + offset, size);
  return true;
}

void LogFile::read(uint64_t offset, size_t size, std::string* out) const {
  std::string_view mapped;
  if (view(offset, size, &mapped)) {
    out->assign(mapped);
    return;
  }
  out->resize(size);
  uint64_t file_part_end = offset + size;
  {
    std::lock_guard lock(mu_);
    if (offset + size > flushed_ + buffer_.size()) {
      throw Corruption("log file " + path_ + ": a read of " + std::to_string(size) +
                       " bytes at " + std::to_string(offset) + " passes its end (" +
                       std::to_string(flushed_ + buffer_.size()) + " bytes)");
    }
    // The part still in the buffer is copied under the lock; the part in
    // the file is read after (bytes below flushed_ never change).
    if (offset + size > flushed_) {
      const uint64_t from = std::max(offset, flushed_);
      std::memcpy(out->data() + (from - offset), buffer_.data() + (from - flushed_),
                  static_cast<size_t>(offset + size - from));
      file_part_end = from;
    }
  }
  char* dst = out->data();
  for (uint64_t at = offset; at < file_part_end;) {
    const ssize_t n = ::pread(fd_, dst + (at - offset), static_cast<size_t>(file_part_end - at),
                              static_cast<off_t>(at));
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot read", path_, errno);
    }
    if (n == 0) throw Corruption("log file " + path_ + ": shorter than expected at " + std::to_string(at));
    at += static_cast<uint64_t>(n);
  }
}

namespace {

// Walks the file's bytes from `from` in chunks, handing each parsed item to
// `take`, which returns false to stop. `parse` is one of the record.h
// parsers. Returns where the last item taken ends. At a damaged or torn
// item it stops, or, given `skipped`, looks for the next good item byte by
// byte (a header must parse and the CRC match) and adds the bytes it
// stepped over between good items to *skipped.
template <typename Item, typename ParseFn, typename Take>
uint64_t walk(const LogFile& f, uint64_t from, uint64_t* skipped, ParseFn&& parse, Take&& take) {
  const uint64_t end = f.size();
  constexpr size_t kChunk = 1 << 20;
  std::string window;  // bytes from `base` on
  uint64_t base = from;
  size_t pos = 0;
  uint64_t good_end = from;  // where the last item taken ends
  std::string chunk;
  for (;;) {
    Item item;
    const logrec::Parse p = parse(std::string_view(window).substr(pos), &item, base + pos);
    if (p == logrec::Parse::kOk) {
      if (skipped != nullptr) *skipped += base + pos - good_end;
      if (!take(item, base + pos)) return base + pos;
      pos += item.size;
      good_end = base + pos;
      continue;
    }
    const uint64_t have = base + window.size();
    if (p == logrec::Parse::kTruncated && have < end) {
      window.erase(0, pos);
      base += pos;
      pos = 0;
      f.read(have, static_cast<size_t>(std::min<uint64_t>(kChunk, end - have)), &chunk);
      window += chunk;
      continue;
    }
    // Damaged, or cut short by the end of the file.
    if (skipped == nullptr || pos >= window.size()) return good_end;
    ++pos;
  }
}

}  // namespace

uint64_t LogFile::scan(const std::function<void(const logrec::Record&, uint64_t)>& fn,
                       size_t max_record_size, uint64_t from, uint64_t* skipped) const {
  return walk<logrec::Record>(
      *this, from, skipped,
      [&](std::string_view bytes, logrec::Record* r, uint64_t offset) {
        return logrec::parse(bytes, r, max_record_size, offset);
      },
      [&](const logrec::Record& r, uint64_t offset) {
        fn(r, offset);
        return true;
      });
}

uint64_t LogFile::scan_index(const std::function<bool(const logrec::IndexEntry&)>& fn) const {
  return walk<logrec::IndexEntry>(
      *this, 0, nullptr,
      [](std::string_view bytes, logrec::IndexEntry* e, uint64_t) { return logrec::parse_index(bytes, e); },
      [&](const logrec::IndexEntry& e, uint64_t) { return fn(e); });
}

void LogFile::truncate(uint64_t new_size) {
  std::lock_guard lock(mu_);
  if (::ftruncate(fd_, static_cast<off_t>(new_size)) != 0) fail("cannot truncate", path_, errno);
  if (::fdatasync(fd_) != 0) fail("cannot sync", path_, errno);
  flushed_ = new_size;
  allocated_ = new_size;
  mapped_size_.store(new_size, std::memory_order_release);
  buffer_.clear();
  std::lock_guard sync_lock(sync_mu_);
  synced_ = std::min(synced_, new_size);  // bytes appended after this are not durable yet
  const uint64_t page = page_size();
  released_.store(std::min(released_.load(std::memory_order_relaxed), new_size / page * page),
                  std::memory_order_relaxed);
}

void sync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail("cannot sync directory", dir, err);
}

}  // namespace cairn::internal

#include "cairn/log_store.h"

#include <absl/container/flat_hash_map.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "catalogue/builtin.h"
#include "core/version_list.h"
#include "engines/log/huge_pages.h"
#include "engines/log/key_index.h"
#include "engines/log/log_file.h"
#include "engines/log/record.h"

namespace cairn {

namespace fs = std::filesystem;
using internal::KeyIndex;
using internal::Loc;
using internal::LogFile;
namespace logrec = internal::logrec;

namespace {

// A shared_mutex that tries for a few microseconds before it sleeps. The
// index lock's holders keep it briefly (a lookup, an index update, a
// compaction batch's compares), far shorter than a futex sleep and wake-up
// (several microseconds each side here): a writer that meets the compactor
// in its batch waits it out on the CPU, and the compactor's unlock has no
// sleeper to wake.
class SpinSharedMutex {
 public:
  void lock() {
    if (!spin([this] { return mu_.try_lock(); })) mu_.lock();
  }
  bool try_lock() { return mu_.try_lock(); }
  void unlock() { mu_.unlock(); }
  void lock_shared() {
    if (!spin([this] { return mu_.try_lock_shared(); })) mu_.lock_shared();
  }
  bool try_lock_shared() { return mu_.try_lock_shared(); }
  void unlock_shared() { mu_.unlock_shared(); }

 private:
  // Calls try_fn up to kSpins times, pausing between; whether it succeeded.
  template <typename TryFn>
  static bool spin(TryFn try_fn) {
    for (int i = 0; i < kSpins; ++i) {
      if (try_fn()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#else
      std::this_thread::yield();
#endif
    }
    return false;
  }
  static constexpr int kSpins = 100;  // a few microseconds of pauses; 400 did no better
  std::shared_mutex mu_;
};

// One put record of a data file, as its index file (or a scan) gives it.
struct Entry {
  std::string key;
  uint32_t size = 0;
  uint64_t offset = 0;
  uint64_t sequence = 0;
};

// Debian's Abseil looks std::string_view keys up through std::hash (or not
// at all): it is given absl::string_view.
absl::string_view as_absl(std::string_view s) { return absl::string_view(s.data(), s.size()); }

std::string file_name(uint32_t id, const char* ext) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%08u.%s", id, ext);
  return buf;
}

bool is_tmp(const std::string& name) {
  return name.size() > 4 && name.compare(name.size() - 4, 4, ".tmp") == 0;
}

// Takes the entries of index file `idx` of a data file of `data_size` bytes
// while they are whole and plausible (each past the last, inside the data
// file), handing each to fn. Returns where the records they cover end and
// sets *whole if they are all of the index file and cover the data file to
// its end.
uint64_t index_entries(const LogFile& idx, uint64_t data_size, bool* whole,
                       const std::function<void(const logrec::IndexEntry&)>& fn) {
  uint64_t end = 0;
  const uint64_t taken = idx.scan_index([&](const logrec::IndexEntry& e) {
    if (e.record_offset < end || e.record_offset + e.record_size > data_size) return false;
    fn(e);
    end = e.record_offset + e.record_size;
    return true;
  });
  *whole = taken == idx.size() && end == data_size;
  return end;
}

}  // namespace

struct LogStore::State {
  LogOptions options;
  std::atomic<bool> closed{false};
  std::mutex close_mu;
  int lock_fd = -1;  // flock'ed <path>/LOCK: one store per directory

  ~State() {
    if (lock_fd >= 0) ::close(lock_fd);  // an open that failed half-way
  }

  std::string path(uint32_t id, const char* ext) const {
    return (fs::path(options.path) / file_name(id, ext)).string();
  }

  // How much of a data file to map: a closed one as it is; one appended to
  // up to max_file_size and then a whole record of the largest value (a
  // record past the mapping is written with pwrite).
  uint64_t map_bytes(bool appended_to) const {
    return appended_to ? options.max_file_size + options.max_value_size + (64 << 10) : 1;
  }

  // Guards the index, the stale bytes and the data files: a reader holds
  // it shared from the lookup to the end of its read, so a file the index
  // points at cannot be deleted under it.
  mutable SpinSharedMutex index_mu;
  KeyIndex index;
  std::map<uint32_t, uint64_t> stale;  // data file -> bytes of dead records
  std::map<uint32_t, std::shared_ptr<LogFile>> data;  // .data and .datac

  std::atomic<uint32_t> next_id{1};   // the next file's id
  std::atomic<uint32_t> current{0};   // the data file writers append to (set under write_mu)
  std::atomic<uint64_t> appended{0};  // record bytes written by put and remove since open

  mutable std::mutex write_mu;  // one writer at a time; guards what follows
  std::shared_ptr<LogFile> writing;      // data file `current`
  std::shared_ptr<LogFile> tombstones;   // the tombstone file appended to
  std::shared_ptr<LogFile> index_file;   // the current data file's index entries
  std::set<uint32_t> tomb_ids;           // every tombstone file
  uint64_t next_sequence = 1;
  uint64_t unsynced = 0;                 // sync: none: bytes appended since the last sync
  uint64_t opened_from_index = 0;        // records the open took from index files
  uint64_t opened_by_scan = 0;           // and by reading data files
  std::string index_scratch;
  std::string scratch;   // a record being built
  std::string stored;    // a key's versions, read back
  std::string updated;   // and after the put or remove
  std::atomic<uint64_t> retired_syncs{0};  // fdatasyncs of files no longer appended to

  // Compaction. compact_mu guards the flags; the thread alone touches the
  // output file and `damaged`.
  std::mutex compact_mu;
  std::condition_variable compact_cv;
  bool stop = false;
  int paused = 0;
  bool busy = false;     // a pass is running
  bool wake = false;     // compact() asked for a pass
  uint64_t passes_started = 0, passes_done = 0;
  std::atomic<bool> hold{false};  // stop or paused: the pass stops at its next record
  std::thread compactor;
  std::shared_ptr<LogFile> out, out_index;  // the .datac being written, and its index
  uint32_t out_id = 0;
  std::set<uint32_t> damaged;   // files with a live record failing its CRC: never compacted
  bool tombs_may_drop = true;   // data files were deleted since the last tombstone pass
  std::atomic<uint64_t> runs{0}, records_copied{0}, bytes_copied{0}, tombs_dropped{0};

  std::string where(std::string_view op, std::string_view key) const {
    return "log '" + options.name + "' at " + options.path + ": " + std::string(op) + " key " +
           printable_key(key);
  }

  void check_open() const {
    if (closed.load(std::memory_order_acquire)) {
      throw FailedPrecondition("log '" + options.name + "' at " + options.path + ": store is closed");
    }
  }

  // The largest record a header may claim (a key's versions are bounded
  // only by the 32-bit value size). A damaged length past the file's end
  // stops a scan there anyway.
  static size_t max_record() { return logrec::record_size(logrec::kMaxKeySize, UINT32_MAX); }

  std::shared_ptr<LogFile> file(uint32_t id) const {
    std::shared_lock lock(index_mu);
    auto it = data.find(id);
    return it == data.end() ? nullptr : it->second;
  }

  // The encoded versions of `key` into *out; false if the key is absent.
  // *slot (if given) is set to the key's index entry, which stays valid
  // while the caller holds write_mu (only writers erase).
  bool read(std::string_view key, std::string* out, Loc** slot = nullptr) const {
    // Held to the end: compaction moves the key's entry (exclusively)
    // before it deletes the file, so the file outlives this read.
    std::shared_lock lock(index_mu);
    Loc* found = index.find(key);
    if (slot != nullptr) *slot = found;
    if (found == nullptr) return false;
    const Loc loc = *found;
    auto file_it = data.find(loc.file);
    if (file_it == data.end()) {
      throw Corruption(where("get", key) + ": its data file " + std::to_string(loc.file) + " is gone");
    }
    const LogFile& f = *file_it->second;
    std::string_view bytes;
    thread_local std::string copy;
    if (!f.view(loc.offset, loc.size, &bytes)) {
      f.read(loc.offset, loc.size, &copy);
      bytes = copy;
    }
    logrec::Record r;
    if (logrec::parse(bytes, &r, loc.size, loc.offset) != logrec::Parse::kOk || r.kind != logrec::Kind::kPut ||
        r.key != key || r.sequence != loc.sequence) {
      throw Corruption(where("get", key) + ": the record at " + f.path() + ":" +
                       std::to_string(loc.offset) + " fails its checksum or is not this key's");
    }
    out->assign(r.value);
    return true;
  }

  // What a write must still make durable once the write lock is released.
  struct Pending {
    std::shared_ptr<LogFile> file, file2;  // null: nothing
    uint64_t end = 0, end2 = 0;
    void wait() const {
      if (file) file->sync_through(end);
      if (file2) file2->sync_through(end2);
    }
  };

  // Appends a record for `key` to the current data file and points the
  // index at it: at `slot`, the key's entry (from read()), or a new one if
  // null. REQUIRES: write_mu held since `slot` was found.
  Pending append_put(std::string_view key, std::string_view versions, Loc* slot) {
    std::shared_ptr<LogFile> f = writing;
    if (f->size() >= options.max_file_size) f = roll();
    scratch.clear();
    const uint64_t seq = next_sequence++;
    logrec::append(&scratch, logrec::Kind::kPut, seq, key, versions, f->size());
    const uint64_t offset = f->append(scratch);
    Pending pending = durable(f, offset + scratch.size());
    // Its index entry stays buffered: a crash loses only entries of the
    // file being written, which open reads whole anyway.
    index_scratch.clear();
    logrec::append_index(&index_scratch, key, static_cast<uint32_t>(scratch.size()), offset, seq);
    index_file->append(index_scratch);
    appended.fetch_add(scratch.size(), std::memory_order_relaxed);
    const Loc loc{current, static_cast<uint32_t>(scratch.size()), offset, seq};
    std::unique_lock lock(index_mu);
    if (slot == nullptr) {
      index.insert(key, loc);
    } else {
      stale[slot->file] += slot->size;  // the record this one supersedes (or its copy)
      *slot = loc;
    }
    return pending;
  }

  // Appends a tombstone for `key` and drops it from the index.
  // REQUIRES: write_mu held.
  Pending append_tombstone(std::string_view key) {
    if (tombstones == nullptr) {
      const uint32_t id = current;
      tombstones = std::make_shared<LogFile>(path(id, "tomb"));
      if (tomb_ids.insert(id).second) internal::sync_dir(options.path);
    }
    scratch.clear();
    logrec::append(&scratch, logrec::Kind::kTombstone, next_sequence++, key, "", tombstones->size());
    const uint64_t offset = tombstones->append(scratch);
    Pending pending = durable(tombstones, offset + scratch.size());
    appended.fetch_add(scratch.size(), std::memory_order_relaxed);
    std::unique_lock lock(index_mu);
    if (const Loc* loc = index.find(key)) {
      stale[loc->file] += loc->size;
      index.erase(key);
    }
    return pending;
  }

  // sync: always leaves the fdatasync to the writer after it releases the
  // write lock, so that writers waiting together share one (group commit).
  // sync: none writes the record to the page cache now, and every
  // flush_bytes has the writer sync both files the same way.
  Pending durable(const std::shared_ptr<LogFile>& f, uint64_t end) {
    if (options.sync == LogOptions::Sync::kAlways) return Pending{f, nullptr, end, 0};
    f->flush();
    unsynced += scratch.size();  // the record just appended
    if (options.flush_bytes == 0 || unsynced < options.flush_bytes) return Pending{};
    unsynced = 0;
    Pending p;
    p.file = writing;
    p.end = writing->size();
    if (tombstones) {
      p.file2 = tombstones;
      p.end2 = tombstones->size();
    }
    return p;
  }

  // Closes the current data file (synced) and starts the next, with a
  // tombstone file of its own. REQUIRES: write_mu held.
  std::shared_ptr<LogFile> roll() {
    writing->trim();  // the space grown ahead of the appends
    writing->sync();
    retired_syncs += writing->syncs();
    if (tombstones) {
      tombstones->sync();
      retired_syncs += tombstones->syncs();
    }
    index_file->sync();  // a closed file's index is what the next open trusts
    const uint32_t id = next_id.fetch_add(1);
    auto f = std::make_shared<LogFile>(path(id, "data"), map_bytes(true));
    index_file = std::make_shared<LogFile>(path(id, "index"));
    internal::sync_dir(options.path);
    {
      std::unique_lock lock(index_mu);
      data.emplace(id, f);
      current = id;
    }
    writing = f;
    tombstones.reset();
    unsynced = 0;
    {
      std::lock_guard lock(compact_mu);  // a closed file: compaction may want it
      wake = wake || options.compaction;
    }
    compact_cv.notify_all();
    return f;
  }

  // Each good put record of data file `id`: from its index file, and from
  // the data file past what the index covers.
  void entries_of(uint32_t id, const LogFile& f, std::vector<Entry>* out) const;

  void open();
  static bool zeros_from(const LogFile& f, uint64_t from);
  void write_index(uint32_t id, const std::string& entries) const;

  // The compaction thread and its parts.
  void compact_loop();
  void compact_pass(bool requested);
  enum class Outcome { kDone, kStopped, kSkipped };
  Outcome compact_file(uint32_t victim);
  void roll_output();
  void finish_output();
  void compact_tombstones();
  // Waits while `done` bytes since `start` run ahead of compaction_rate.
  void throttle(uint64_t done, std::chrono::steady_clock::time_point start);
  void stop_compactor();
};

void LogStore::State::entries_of(uint32_t id, const LogFile& f, std::vector<Entry>* out) const {
  out->clear();
  const uint64_t size = f.size();
  auto take = [&](const logrec::IndexEntry& e) {
    out->push_back(Entry{std::string(e.key), e.record_size, e.record_offset, e.sequence});
  };
  uint64_t end = 0;
  bool whole = false;
  const std::string index_path = path(id, "index");
  if (out_index != nullptr && id == out_id) {
    end = index_entries(*out_index, size, &whole, take);
  } else if (fs::exists(index_path)) {
    end = index_entries(LogFile(index_path), size, &whole, take);
  }
  if (end == size) return;
  // Records the index lacks (none, normally). Damaged bytes are stepped
  // over: open counted them stale, and the index points at none of them.
  uint64_t skipped = 0;
  f.scan(
      [&](const logrec::Record& r, uint64_t offset) {
        if (r.kind != logrec::Kind::kPut) return;
        out->push_back(Entry{std::string(r.key), static_cast<uint32_t>(r.size), offset, r.sequence});
      },
      max_record(), end, &skipped);
}

bool LogStore::State::zeros_from(const LogFile& f, uint64_t from) {
  std::string chunk;
  for (uint64_t at = from, end = f.size(); at < end;) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(1 << 20, end - at));
    f.read(at, n, &chunk);
    if (chunk.find_first_not_of('\0') != std::string::npos) return false;
    at += n;
  }
  return true;
}

void LogStore::State::write_index(uint32_t id, const std::string& entries) const {
  LogFile idx(path(id, "index"));
  idx.truncate(0);
  idx.append(entries);
  idx.sync();
}

void LogStore::State::open() {
  std::error_code ec;
  if (fs::create_directories(options.path, ec)) {
    const fs::path parent = fs::absolute(options.path).parent_path();
    internal::sync_dir(parent.string());  // the new directory's own entry
  }
  if (ec) throw IoError("log '" + options.name + "': cannot create " + options.path + ": " + ec.message());
  const std::string lock_path = (fs::path(options.path) / "LOCK").string();
  lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd < 0) {
    throw IoError("log '" + options.name + "': cannot open " + lock_path + ": " + std::strerror(errno));
  }
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    lock_fd = -1;
    throw FailedPrecondition("log '" + options.name + "': " + options.path +
                             " is open in another store (its LOCK is held)");
  }
  std::map<uint32_t, bool> ids;  // data file id -> written by compaction (.datac)
  uint32_t max_id = 0;
  for (const auto& entry : fs::directory_iterator(options.path, ec)) {
    const std::string name = entry.path().filename().string();
    if (is_tmp(name)) {  // a tombstone file half rewritten: the original stands
      fs::remove(entry.path(), ec);
      continue;
    }
    unsigned id = 0;
    char ext[8] = {0};
    if (std::sscanf(name.c_str(), "%8u.%5s", &id, ext) != 2 || id == 0) continue;  // 0 is no file's id
    const std::string e(ext);
    if (e == "data" || e == "datac") ids.emplace(id, e == "datac");
    if (e == "tomb") tomb_ids.insert(id);
    if (e == "data" || e == "datac" || e == "tomb" || e == "index") max_id = std::max<uint32_t>(max_id, id);
  }
  if (ec) throw IoError("log '" + options.name + "': cannot list " + options.path + ": " + ec.message());
  // The files being written at a crash: the last of writers' and of
  // compaction's. A store with no writers' file gets a new one.
  uint32_t last = 0, last_compacted = 0;
  for (const auto& [id, compacted] : ids) (compacted ? last_compacted : last) = id;
  if (last == 0) {
    last = max_id + 1;
    ids.emplace(last, false);
    max_id = last;
  }
  uint64_t max_seq = 0;
  // What one data file holds: its put records' keys and locations, in file
  // order. Loading touches nothing shared, so files load in parallel.
  struct Loaded {
    std::shared_ptr<LogFile> file;
    // Keys end to end in one string (no allocation per key), and per put
    // record where its key is and the record's location.
    std::basic_string<char, std::char_traits<char>, internal::HugePageAllocator<char>> keys;
    struct Put {
      uint64_t key_at;
      uint32_t key_size;
      uint32_t hash;  // KeyIndex::hash, computed here, on the loading threads
      Loc loc;
    };
    std::vector<Put, internal::HugePageAllocator<Put>> puts;
    void add(std::string_view key, const Loc& loc) {
      puts.push_back(Put{keys.size(), static_cast<uint32_t>(key.size()), KeyIndex::hash(key), loc});
      keys.append(key);
    }
    std::string_view key(const Put& p) const { return std::string_view(keys).substr(p.key_at, p.key_size); }
    uint64_t from_index = 0, by_scan = 0;
    uint64_t good = 0;          // where its good records end
    uint64_t skipped = 0;       // damaged bytes between good records
    bool index_whole = false;   // its index file has every record, nothing else
    std::string fresh_index;    // else the index, rebuilt
  };
  auto load = [&](uint32_t id, bool compacted) {
    Loaded l;
    l.file = std::make_shared<LogFile>(path(id, compacted ? "datac" : "data"), map_bytes(id == last));
    const std::string index_path = path(id, "index");
    const bool tail = id == last || id == last_compacted;
    // A closed file: its index entries, as far as they are whole, agree
    // with the data file and follow one another; the records after them
    // (none, normally) are read. A file being written is read whole.
    uint64_t indexed_end = 0;
    std::error_code size_ec;
    const uint64_t index_size = tail ? 0 : fs::file_size(index_path, size_ec);
    if (!tail && !size_ec) {
      // Room for every entry the index file can hold, so that neither
      // grows by copying (pages reserved and never touched cost nothing);
      // no more than the data file's records could need, whatever a
      // damaged index file's size.
      const uint64_t bound = std::min(index_size, l.file->size());
      l.puts.reserve(static_cast<size_t>(bound / (logrec::kIndexHeaderSize + 1)));
      l.keys.reserve(static_cast<size_t>(bound));
      indexed_end = index_entries(LogFile(index_path), l.file->size(), &l.index_whole,
                                  [&](const logrec::IndexEntry& e) {
                                    l.add(e.key, Loc{id, e.record_size, e.record_offset, e.sequence});
                                    ++l.from_index;
                                  });
    }
    // Damage is stepped over: every good record after it is kept.
    l.good = l.file->scan(
        [&](const logrec::Record& r, uint64_t offset) {
          if (r.kind != logrec::Kind::kPut) return;
          l.add(r.key, Loc{id, static_cast<uint32_t>(r.size), offset, r.sequence});
          ++l.by_scan;
        },
        max_record(), indexed_end, &l.skipped);
    if (!l.index_whole) {
      for (const Loaded::Put& p : l.puts) {
        logrec::append_index(&l.fresh_index, l.key(p), p.loc.size, p.loc.offset, p.loc.sequence);
      }
    }
    return l;
  };
  std::vector<std::pair<uint32_t, bool>> order(ids.begin(), ids.end());
  std::vector<Loaded> loaded(order.size());
  std::vector<std::exception_ptr> errors(order.size());
  {
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t k; (k = next.fetch_add(1)) < order.size();) {
        try {
          loaded[k] = load(order[k].first, order[k].second);
        } catch (...) {
          errors[k] = std::current_exception();
        }
      }
    };
    const size_t threads = std::min<size_t>(std::max(options.build_index_threads, 1), order.size());
    std::vector<std::thread> pool;
    for (size_t t = 1; t < threads; ++t) pool.emplace_back(worker);
    worker();
    for (std::thread& t : pool) t.join();
  }
  {
    size_t records = 0;
    for (const Loaded& l : loaded) records += l.puts.size();
    index.reserve(records);  // one table for them all, not a doubling per power of two
  }
  // Applied in file order: the newest sequence number wins. (A record and
  // its compacted copy, both left by a crash mid-compaction, tie: the
  // first is kept, the other counted stale.)
  for (size_t k = 0; k < order.size(); ++k) {
    if (errors[k]) std::rethrow_exception(errors[k]);
    const uint32_t id = order[k].first;
    Loaded& l = loaded[k];
    // A slot is a cache miss (the table is far larger than the cache), so
    // the slots of the keys a few records ahead are loaded meanwhile.
    constexpr size_t kAhead = 16;
    for (size_t i = 0; i < std::min(kAhead, l.puts.size()); ++i) index.prefetch(l.puts[i].hash);
    for (size_t i = 0; i < l.puts.size(); ++i) {
      if (i + kAhead < l.puts.size()) index.prefetch(l.puts[i + kAhead].hash);
      const Loaded::Put& p = l.puts[i];
      const std::string_view key = l.key(p);
      const Loc& loc = p.loc;
      max_seq = std::max(max_seq, loc.sequence);
      Loc* have = index.find(key, p.hash);
      if (have == nullptr) {
        index.insert(key, p.hash, loc);
      } else if (have->sequence < loc.sequence) {
        stale[have->file] += have->size;
        *have = loc;
      } else {
        stale[id] += loc.size;  // an older record met after a newer one
      }
    }
    // Freed now, before the next file's keys take pool chunks (`= {}`
    // would only clear them, keeping their memory).
    decltype(l.puts)().swap(l.puts);
    decltype(l.keys)().swap(l.keys);
    opened_from_index += l.from_index;
    opened_by_scan += l.by_scan;
    LogFile& f = *l.file;
    const bool tail = id == last || id == last_compacted;
    if (l.skipped > 0) {
      log(LogLevel::kError, "log '" + options.name + "': " + f.path() + ": " + std::to_string(l.skipped) +
                                " bytes of damaged records dropped; the good records around them are kept");
      stale[id] += l.skipped;  // compaction frees them
    }
    if (l.good < f.size() && zeros_from(f, l.good)) {
      // Space grown ahead of the appends and not trimmed (a crash): no
      // records, only zeros.
      log(LogLevel::kInfo, "log '" + options.name + "': " + f.path() + ": cut " +
                               std::to_string(f.size() - l.good) + " bytes of unused space at its end");
      f.truncate(l.good);
    }
    if (l.good < f.size()) {
      // Only a file written at a crash may end torn: cut it there. An
      // older file is left as it is.
      const uint64_t lost = f.size() - l.good;
      if (tail) {
        log(LogLevel::kWarn, "log '" + options.name + "': " + f.path() + ": dropped " +
                                 std::to_string(lost) + " bytes of torn or damaged records at its end");
        f.truncate(l.good);
      } else {
        log(LogLevel::kError, "log '" + options.name + "': " + f.path() + ": " +
                                  std::to_string(lost) + " bytes unreadable from offset " +
                                  std::to_string(l.good) + "; the records there are lost");
        stale[id] += lost;
      }
    }
    if (id == last) {
      // The writers' file: its index is appended to from here on.
      index_file = std::make_shared<LogFile>(path(id, "index"));
      index_file->truncate(0);
      index_file->append(l.fresh_index);
    } else if (!l.index_whole) {
      // Closed from now on: compaction and the next open trust its index.
      write_index(id, l.fresh_index);
    }
    data.emplace(id, std::move(l.file));
  }
  for (uint32_t id : tomb_ids) {
    LogFile f(path(id, "tomb"));
    uint64_t skipped = 0;
    const uint64_t good = f.scan(
        [&](const logrec::Record& r, uint64_t) {
          max_seq = std::max(max_seq, r.sequence);
          if (r.kind != logrec::Kind::kTombstone) return;
          const Loc* have = index.find(r.key);
          if (have != nullptr && have->sequence < r.sequence) {
            stale[have->file] += have->size;
            index.erase(r.key);
          }
        },
        max_record(), 0, &skipped);
    if (skipped > 0) {
      log(LogLevel::kError, "log '" + options.name + "': " + f.path() + ": " + std::to_string(skipped) +
                                " bytes of damaged tombstones dropped; the good ones around them are kept");
    }
    if (good < f.size()) {
      const uint64_t lost = f.size() - good;
      if (id == last) {
        log(LogLevel::kWarn, "log '" + options.name + "': " + f.path() + ": dropped " +
                                 std::to_string(lost) + " bytes of torn or damaged tombstones");
        f.truncate(good);
      } else {
        log(LogLevel::kError, "log '" + options.name + "': " + f.path() + ": " +
                                  std::to_string(lost) + " bytes unreadable from offset " +
                                  std::to_string(good) + "; the tombstones there are lost");
      }
    }
  }
  current = last;
  writing = data.at(last);
  next_id = max_id + 1;
  internal::sync_dir(options.path);  // files open created (the first data file, index files)
  next_sequence = max_seq + 1;
}

// ---- compaction ----

void LogStore::State::compact_loop() {
  std::unique_lock lock(compact_mu);
  uint64_t seen = ~uint64_t{0};  // `appended` when the last pass began
  for (;;) {
    // Woken by a roll or compact(), or every so often while writes come.
    compact_cv.wait_for(lock, std::chrono::milliseconds(250),
                        [&] { return stop || (wake && paused == 0); });
    if (stop) break;
    if (paused > 0) continue;
    const uint64_t now = appended.load(std::memory_order_relaxed);
    if (!wake && now == seen) continue;
    const bool requested = wake;
    wake = false;
    seen = now;
    busy = true;
    const uint64_t pass = ++passes_started;
    lock.unlock();
    try {
      compact_pass(requested);
    } catch (const std::exception& e) {
      log(LogLevel::kError, "log '" + options.name + "': compaction: " + e.what());
    }
    lock.lock();
    busy = false;
    passes_done = pass;
    compact_cv.notify_all();
  }
  lock.unlock();
  try {
    finish_output();
  } catch (const std::exception& e) {
    log(LogLevel::kError, "log '" + options.name + "': compaction: " + e.what());
  }
}

void LogStore::State::compact_pass(bool requested) {
  // The victims: closed files past the threshold, the stalest first.
  std::vector<std::pair<uint32_t, uint64_t>> sizes;
  uint32_t writing = 0;
  std::vector<std::pair<double, uint32_t>> victims;
  {
    // `current` changes with the file table, under this lock: a file just
    // rolled to is never taken for a closed one.
    std::shared_lock lock(index_mu);
    writing = current.load();
    for (const auto& [id, f] : data) {
      if (id != writing && id != out_id && damaged.count(id) == 0) sizes.emplace_back(id, f->size());
    }
    for (const auto& [id, size] : sizes) {
      auto it = stale.find(id);
      const uint64_t dead = it == stale.end() ? 0 : it->second;
      if (size == 0 || double(dead) >= options.compaction_threshold * double(size)) {
        victims.emplace_back(size == 0 ? 1.0 : double(dead) / double(size), id);
      }
    }
  }
  std::sort(victims.begin(), victims.end(), std::greater<>());
  for (const auto& victim : victims) {
    if (hold.load(std::memory_order_relaxed)) return;
    if (compact_file(victim.second) == Outcome::kStopped) return;
  }
  if (tombs_may_drop && !hold.load(std::memory_order_relaxed)) {
    // Finding which tombstones are needed reads every index file: worth it
    // when asked, or once the tombstones are 1% of the data.
    uint64_t data_bytes = 0, tomb_bytes = 0;
    for (const auto& [id, size] : sizes) data_bytes += size;
    {
      std::lock_guard lock(write_mu);
      for (uint32_t id : tomb_ids) {
        std::error_code ec;
        if (id < writing) tomb_bytes += fs::file_size(path(id, "tomb"), ec);
      }
    }
    if (requested || tomb_bytes * 100 >= data_bytes) compact_tombstones();
  }
}

LogStore::State::Outcome LogStore::State::compact_file(uint32_t victim) {
  std::shared_ptr<LogFile> vf = file(victim);
  if (vf == nullptr) return Outcome::kSkipped;
  std::vector<Entry> entries;
  entries_of(victim, *vf, &entries);
  const auto start = std::chrono::steady_clock::now();
  uint64_t copied = 0;  // bytes, for the throttle
  std::string record, entry;
  // In batches (up to 256 records or 1 MiB): one shared lock finds which
  // are live, one exclusive lock points the index at their copies, so that
  // compaction takes the index lock twice per batch, not per record.
  constexpr size_t kBatch = 256;
  std::vector<uint64_t> copies;  // per entry of the batch: its copy's offset, or ~0 if dead
  std::vector<Loc*> slots;       // and the index entry of each live one
  std::vector<uint32_t> hashes;  // and its key's hash
  for (size_t begin = 0; begin < entries.size();) {
    if (hold.load(std::memory_order_relaxed)) return Outcome::kStopped;
    size_t end = begin;
    for (uint64_t bytes = 0; end < entries.size() && end - begin < kBatch && bytes < (1 << 20); ++end) {
      bytes += entries[end].size;
    }
    // The output is chosen before the records are found live: a copy of a
    // record is then never in a file younger than a tombstone that
    // superseded it (compact_tombstones relies on that).
    if (out == nullptr || out->size() >= options.max_file_size) roll_output();
    copies.assign(end - begin, ~uint64_t{0});
    slots.assign(end - begin, nullptr);
    hashes.resize(end - begin);
    for (size_t k = begin; k < end; ++k) hashes[k - begin] = KeyIndex::hash(entries[k].key);
    {
      // Hashed before, slots loaded ahead: the lock is held for about one
      // cache miss per record, not three, so a writer waits less on it.
      std::shared_lock lock(index_mu);
      constexpr size_t kAhead = 16;
      for (size_t k = begin; k < std::min(end, begin + kAhead); ++k) index.prefetch(hashes[k - begin]);
      for (size_t k = begin; k < end; ++k) {
        if (k + kAhead < end) index.prefetch(hashes[k + kAhead - begin]);
        Loc* loc = index.find(entries[k].key, hashes[k - begin]);
        if (loc != nullptr && loc->file == victim && loc->offset == entries[k].offset) {
          copies[k - begin] = 0;  // live: copy it
          slots[k - begin] = loc;
        }
      }
    }
    for (size_t k = begin; k < end; ++k) {
      if (copies[k - begin] != 0) continue;
      const Entry& e = entries[k];
      vf->read(e.offset, e.size, &record);
      logrec::Record r;
      if (logrec::parse(record, &r, e.size, e.offset) != logrec::Parse::kOk || r.key != e.key ||
          r.sequence != e.sequence) {
        // Stop here: the copies made so far are not in the index, and are
        // counted dead.
        std::unique_lock lock(index_mu);
        for (size_t j = begin; j < k; ++j) {
          if (copies[j - begin] != ~uint64_t{0}) stale[out_id] += entries[j].size;
        }
        damaged.insert(victim);
        log(LogLevel::kError, "log '" + options.name + "': " + vf->path() + ":" + std::to_string(e.offset) +
                                  ": the record of key " + printable_key(e.key) +
                                  " fails its checksum; the file is not compacted, and a get of the key is Corruption");
        return Outcome::kSkipped;
      }
      logrec::reseal(&record, out->size());  // its CRC binds it to where it now lies
      copies[k - begin] = out->append(record);
      entry.clear();
      logrec::append_index(&entry, e.key, e.size, copies[k - begin], e.sequence);
      out_index->append(entry);
      records_copied.fetch_add(1, std::memory_order_relaxed);
      bytes_copied.fetch_add(e.size, std::memory_order_relaxed);
      copied += e.size;
    }
    {
      // A write that raced the copy has moved the key on: the copy is dead.
      // The entries found above are checked in place, with no lookup: an
      // entry never moves; if a writer erased it since, its file reads 0;
      // if another key took it over, it points at a writers' file, never
      // at this one. So the exclusive section is a few compares per record.
      std::unique_lock lock(index_mu);
      for (size_t k = begin; k < end; ++k) {
        const uint64_t at = copies[k - begin];
        if (at == ~uint64_t{0}) continue;
        const Entry& e = entries[k];
        Loc* loc = slots[k - begin];
        if (loc->file == victim && loc->offset == e.offset) {
          *loc = Loc{out_id, e.size, at, e.sequence};
          stale[victim] += e.size;
        } else {
          stale[out_id] += e.size;
        }
      }
    }
    throttle(copied, start);
    begin = end;
  }
  // Every byte of the file is now accounted dead; if not, a live record
  // was missed (or the accounting is wrong), and the file stays.
  {
    std::shared_lock lock(index_mu);
    auto it = stale.find(victim);
    const uint64_t dead = it == stale.end() ? 0 : it->second;
    if (dead != vf->size()) {
      damaged.insert(victim);
      log(LogLevel::kError, "log '" + options.name + "': compaction: " + vf->path() + " has " +
                                std::to_string(vf->size()) + " bytes but only " + std::to_string(dead) +
                                " are known dead after its live records were copied; it is kept");
      return Outcome::kSkipped;
    }
  }
  // What replaces the file's records is durable before the file is gone:
  // the copies, and the writes that superseded the rest (in the files
  // writers append to; older ones were synced when they closed).
  if (out != nullptr) {
    out->sync();
    out_index->sync();
  }
  std::shared_ptr<LogFile> writer_file, tomb_file;
  {
    std::lock_guard lock(write_mu);
    writer_file = writing;
    tomb_file = tombstones;
  }
  writer_file->sync();
  if (tomb_file) tomb_file->sync();
  const std::string victim_path = vf->path();
  std::error_code ec;
  if (!fs::remove(victim_path, ec) || ec) {
    // It stays, all dead, and its records keep their tombstones.
    damaged.insert(victim);
    log(LogLevel::kError, "log '" + options.name + "': compaction: cannot remove " + victim_path + ": " +
                              (ec ? ec.message() : std::string("it is gone")));
    return Outcome::kSkipped;
  }
  fs::remove(path(victim, "index"), ec);  // a stray index file is ignored by open
  internal::sync_dir(options.path);
  {
    std::unique_lock lock(index_mu);
    data.erase(victim);
    stale.erase(victim);
  }
  retired_syncs += vf->syncs();
  vf.reset();  // unmapped and closed here, outside the lock
  runs.fetch_add(1, std::memory_order_relaxed);
  tombs_may_drop = true;
  return Outcome::kDone;
}

void LogStore::State::roll_output() {
  finish_output();
  const uint32_t id = next_id.fetch_add(1);
  auto f = std::make_shared<LogFile>(path(id, "datac"), map_bytes(true));
  out_index = std::make_shared<LogFile>(path(id, "index"));
  internal::sync_dir(options.path);
  {
    std::unique_lock lock(index_mu);
    data.emplace(id, f);
  }
  out = std::move(f);
  out_id = id;
}

void LogStore::State::finish_output() {
  if (out == nullptr) return;
  out->trim();
  out->sync();
  out_index->sync();
  retired_syncs += out->syncs();
  out.reset();
  out_index.reset();
  out_id = 0;
}

void LogStore::State::throttle(uint64_t done, std::chrono::steady_clock::time_point start) {
  if (options.compaction_rate == 0) return;
  const auto due = start + std::chrono::microseconds(
                               static_cast<int64_t>(double(done) * 1e6 / double(options.compaction_rate)));
  // Sleep only once ahead by 5 ms or more: a sleep per record would cost
  // more than the copy.
  if (due - std::chrono::steady_clock::now() < std::chrono::milliseconds(5)) return;
  std::unique_lock lock(compact_mu);
  compact_cv.wait_until(lock, due, [&] { return stop || paused > 0; });
}

// Drops the tombstones that no longer hide anything. A tombstone must stay
// while a data file holds an older record of its key (the next open would
// bring that record back). Every such record is in a file older than the
// one writers appended to when the tombstone file closed: writers append
// only to their current file, and compaction picks its output before it
// finds a record live. So, for the closed tombstone files (those of files
// before `current`), the index files of the data files before `current`
// say which tombstones are still needed; the others are dropped by
// rewriting each tombstone file (a temporary file renamed over it).
void LogStore::State::compact_tombstones() {
  // tombs_may_drop is cleared only once a pass is through: one stopped or
  // failed half-way is done again by the next.
  const uint32_t bound = current.load();
  std::vector<uint32_t> closed;
  {
    std::lock_guard lock(write_mu);
    for (uint32_t id : tomb_ids) {
      if (id < bound) closed.push_back(id);
    }
  }
  if (closed.empty()) {
    tombs_may_drop = false;
    return;
  }
  struct Tomb {
    uint64_t sequence = 0;
    bool needed = false;
  };
  absl::flat_hash_map<std::string, Tomb> newest;  // per key, its newest closed tombstone
  for (uint32_t id : closed) {
    LogFile f(path(id, "tomb"));
    uint64_t skipped = 0;
    f.scan(
        [&](const logrec::Record& r, uint64_t) {
          if (r.kind != logrec::Kind::kTombstone) return;
          Tomb& t = newest[as_absl(r.key)];
          t.sequence = std::max(t.sequence, r.sequence);
        },
        max_record(), 0, &skipped);
  }
  std::vector<std::pair<uint32_t, std::shared_ptr<LogFile>>> older;
  {
    std::shared_lock lock(index_mu);
    for (const auto& [id, f] : data) {
      if (id < bound) older.emplace_back(id, f);
    }
  }
  if (out_index) out_index->flush();
  std::vector<Entry> entries;
  const auto start = std::chrono::steady_clock::now();
  uint64_t read = 0;
  for (const auto& [id, f] : older) {
    if (hold.load(std::memory_order_relaxed)) return;  // the next pass does it
    entries_of(id, *f, &entries);
    for (const Entry& e : entries) {
      auto it = newest.find(as_absl(e.key));
      if (it != newest.end() && e.sequence < it->second.sequence) it->second.needed = true;
      read += logrec::kIndexHeaderSize + e.key.size();
    }
    throttle(read, start);
  }
  for (uint32_t id : closed) {
    const std::string tomb_path = path(id, "tomb");
    std::string kept;
    uint64_t total = 0, dropped = 0;
    LogFile f(tomb_path);
    uint64_t skipped = 0;
    const uint64_t good = f.scan(
        [&](const logrec::Record& r, uint64_t) {
          ++total;
          auto it = newest.find(as_absl(r.key));
          if (r.kind == logrec::Kind::kTombstone && it != newest.end() && it->second.needed &&
              it->second.sequence == r.sequence) {
            logrec::append(&kept, r.kind, r.sequence, r.key, r.value, kept.size());
          } else {
            ++dropped;
          }
        },
        max_record(), 0, &skipped);
    if (dropped == 0 && skipped == 0 && good == f.size()) continue;
    if (kept.empty()) {
      {
        std::lock_guard lock(write_mu);
        tomb_ids.erase(id);
      }
      retired_syncs += f.syncs();
      std::error_code ec;
      fs::remove(tomb_path, ec);
      if (ec) throw IoError("cannot remove " + tomb_path + ": " + ec.message());
    } else {
      const std::string tmp = tomb_path + ".tmp";
      {
        LogFile t(tmp);
        t.truncate(0);
        t.append(kept);
        t.sync();
        retired_syncs += t.syncs();
      }
      std::error_code ec;
      fs::rename(tmp, tomb_path, ec);
      if (ec) throw IoError("cannot rename " + tmp + " to " + tomb_path + ": " + ec.message());
    }
    internal::sync_dir(options.path);
    tombs_dropped.fetch_add(dropped, std::memory_order_relaxed);
  }
  tombs_may_drop = false;
}

void LogStore::State::stop_compactor() {
  {
    std::lock_guard lock(compact_mu);
    stop = true;
    hold = true;
  }
  compact_cv.notify_all();
  if (compactor.joinable()) compactor.join();
}

LogStore::LogStore(LogOptions options) : s_(std::make_shared<State>()) {
  if (options.path.empty()) throw InvalidArgument("log: a path is required");
  if (options.max_key_size < 1 || options.max_key_size > logrec::kMaxKeySize) {
    throw InvalidArgument("log '" + options.name + "': max_key_size must be from 1 to 65535");
  }
  if (options.max_value_size >= (uint64_t{1} << 31)) {
    throw InvalidArgument("log '" + options.name + "': max_value_size must be below 2 GiB");
  }
  if (!(options.compaction_threshold > 0 && options.compaction_threshold <= 1)) {
    throw InvalidArgument("log '" + options.name + "': compaction_threshold must be above 0 and at most 1");
  }
  s_->options = std::move(options);
  s_->open();
  if (s_->options.compaction) {
    State* s = s_.get();
    s_->compactor = std::thread([s] { s->compact_loop(); });
  }
}

LogStore::~LogStore() {
  try {
    close();
  } catch (const std::exception& e) {
    log(LogLevel::kError, std::string("log: closing: ") + e.what());
  }
}

void LogStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  State& s = *s_;
  s.check_open();
  check_key(s.options.name, key, s.options.max_key_size);
  thread_local std::string bytes;
  if (!s.read(key, &bytes)) {
    out->clear();
    return;
  }
  try {
    internal::decode_versions(bytes, out);
  } catch (const Corruption& e) {
    throw Corruption(s.where("get", key) + ": " + e.what());
  }
}

PutResult LogStore::put_stamped(std::string_view key, const Versioned& value,
                                PutReply* stored) {
  State& s = *s_;
  check_key(s.options.name, key, s.options.max_key_size);
  check_value(s.options.name, key, value.value, s.options.max_value_size);
  check_no_ttl(s.options.name, value);
  State::Pending pending;
  {
    std::lock_guard lock(s.write_mu);
    s.check_open();
    Loc* slot = nullptr;
    const bool exists = s.read(key, &s.stored, &slot);
    if (internal::apply_put_encoded(exists ? std::string_view(s.stored) : std::string_view(),
                                    value, &s.updated, stored) == PutResult::kObsolete) {
      return PutResult::kObsolete;
    }
    if (s.updated.empty()) {
      // Stored already (a copy of a write this store holds): answered once
      // the record it holds is as durable as this put's would have been,
      // since the original's writer may still be waiting for its sync.
      if (s.options.sync == LogOptions::Sync::kAlways) {
        pending = State::Pending{s.writing, nullptr, s.writing->size(), 0};
      }
    } else {
      if (logrec::record_size(key.size(), s.updated.size()) > UINT32_MAX) {
        throw InvalidArgument(s.where("put", key) + ": its versions would total " +
                              std::to_string(s.updated.size()) + " bytes; a record holds at most 4 GiB");
      }
      if (slot == nullptr && !s.index.has_room(key.size())) {
        // Refused before anything is appended: a record the index cannot
        // hold must not reach the file.
        throw FailedPrecondition(s.where("put", key) + ": the index's key pool is full");
      }
      pending = s.append_put(key, s.updated, slot);
    }
  }
  pending.wait();
  return PutResult::kStored;
}

bool LogStore::remove(std::string_view key, const VectorClock& version) {
  State& s = *s_;
  check_key(s.options.name, key, s.options.max_key_size);
  State::Pending pending;
  {
    std::lock_guard lock(s.write_mu);
    s.check_open();
    Loc* slot = nullptr;
    if (!s.read(key, &s.stored, &slot)) return false;
    if (!internal::apply_remove_encoded(s.stored, version, &s.updated)) return false;
    pending = s.updated.empty() ? s.append_tombstone(key) : s.append_put(key, s.updated, slot);
  }
  pending.wait();
  return true;
}

namespace {

// Every key present when the scan began (a snapshot of the index), read
// one at a time; keys removed since are skipped.
class LogIterator final : public StoreIterator {
 public:
  LogIterator(std::shared_ptr<LogStore::State> s, std::vector<std::string> keys)
      : s_(std::move(s)), keys_(std::move(keys)) {}

  bool next() override {
    for (;;) {
      s_->check_open();
      if (at_ == keys_.size()) return false;
      key_ = std::move(keys_[at_++]);
      if (!s_->read(key_, &bytes_)) continue;  // removed since
      internal::decode_versions(bytes_, &versions_);
      return true;
    }
  }
  std::string_view key() const override { return key_; }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  std::shared_ptr<LogStore::State> s_;
  std::vector<std::string> keys_;
  size_t at_ = 0;
  std::string key_;
  std::string bytes_;
  std::vector<Versioned> versions_;
};

}  // namespace

std::unique_ptr<StoreIterator> LogStore::scan() {
  s_->check_open();
  std::vector<std::string> keys;
  {
    std::shared_lock lock(s_->index_mu);
    keys.reserve(s_->index.size());
    s_->index.for_each([&](std::string_view key, const Loc&) { keys.emplace_back(key); });
  }
  return std::make_unique<LogIterator>(s_, std::move(keys));
}

void LogStore::close() {
  State& s = *s_;
  std::lock_guard close_lock(s.close_mu);  // one close at a time
  if (s.closed.load(std::memory_order_acquire)) return;
  // The compactor first (it syncs its output): it takes write_mu itself.
  s.stop_compactor();
  std::lock_guard lock(s.write_mu);
  if (s.closed.exchange(true, std::memory_order_acq_rel)) return;
  std::exception_ptr first;
  auto sync = [&](LogFile& f) {
    try {
      f.sync();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  };
  if (auto f = s.writing) {
    try {
      f->trim();  // the space grown ahead of the appends
    } catch (...) {
      first = std::current_exception();
    }
    sync(*f);
  }
  if (s.tombstones) sync(*s.tombstones);
  if (s.index_file) sync(*s.index_file);
  if (s.lock_fd >= 0) {
    ::close(s.lock_fd);  // releases the flock: the directory may be opened again
    s.lock_fd = -1;
  }
  if (first) std::rethrow_exception(first);
}

void LogStore::sync() {
  State& s = *s_;
  std::shared_ptr<LogFile> data, tombstones, index;
  {
    std::lock_guard lock(s.write_mu);
    s.check_open();
    data = s.writing;
    tombstones = s.tombstones;
    index = s.index_file;
    s.unsynced = 0;
  }
  data->sync();
  if (tombstones) tombstones->sync();
  index->sync();
}

void LogStore::pause_compaction() {
  State& s = *s_;
  std::unique_lock lock(s.compact_mu);
  ++s.paused;
  s.hold = true;
  s.compact_cv.notify_all();
  s.compact_cv.wait(lock, [&] { return !s.busy; });
}

void LogStore::resume_compaction() {
  State& s = *s_;
  {
    std::lock_guard lock(s.compact_mu);
    if (s.paused == 0) {
      throw FailedPrecondition("log '" + s.options.name + "': resume_compaction() without a pause");
    }
    if (--s.paused == 0) {
      s.hold = s.stop;
      s.wake = true;
    }
  }
  s.compact_cv.notify_all();
}

void LogStore::compact() {
  State& s = *s_;
  s.check_open();
  std::unique_lock lock(s.compact_mu);
  auto refuse = [&](const char* why) {
    throw FailedPrecondition("log '" + s.options.name + "': cannot compact: " + why);
  };
  if (!s.options.compaction) refuse("compaction is off");
  if (s.paused > 0) refuse("compaction is paused");
  const uint64_t pass = s.passes_started + 1;  // the first to start from now
  s.wake = true;
  s.compact_cv.notify_all();
  s.compact_cv.wait(lock, [&] { return s.passes_done >= pass || s.stop || s.paused > 0; });
  if (s.passes_done < pass) refuse(s.stop ? "the store closed" : "compaction was paused");
}

std::string LogStore::describe() const {
  const State& s = *s_;
  size_t keys = 0;
  {
    std::shared_lock lock(s.index_mu);
    keys = s.index.size();
  }
  return "log '" + s.options.name + "' at " + s.options.path + " (sync " +
         (s.options.sync == LogOptions::Sync::kAlways ? "always" : "none") + ", files up to " +
         std::to_string(s.options.max_file_size) + " B, " + std::to_string(keys) + " keys)";
}

LogStats LogStore::stats() const {
  const State& s = *s_;
  LogStats out;
  std::map<uint32_t, uint64_t> sizes;
  {
    std::shared_lock lock(s.index_mu);
    for (const auto& [id, f] : s.data) {
      sizes[id] = f->size();
      out.syncs += f->syncs();
    }
    out.keys = s.index.size();
    out.index_bytes = s.index.memory_bytes();
    for (const auto& [id, size] : sizes) {
      auto st = s.stale.find(id);
      const uint64_t stale = st == s.stale.end() ? 0 : st->second;
      out.files[id] = {size, stale};
      out.data_bytes += size;
      out.stale_bytes += stale;
    }
  }
  out.data_files = out.files.size();
  {
    std::lock_guard lock(s.write_mu);
    out.opened_from_index = s.opened_from_index;
    out.opened_by_scan = s.opened_by_scan;
    out.tombstone_files = s.tomb_ids.size();
    for (uint32_t id : s.tomb_ids) {
      std::error_code ec;
      const uint64_t size = fs::file_size(s.path(id, "tomb"), ec);
      if (!ec) out.tombstone_bytes += size;
    }
    if (s.tombstones) out.syncs += s.tombstones->syncs();
  }
  out.appended_bytes = s.appended.load(std::memory_order_relaxed);
  out.syncs += s.retired_syncs.load(std::memory_order_relaxed);
  out.compaction_runs = s.runs.load(std::memory_order_relaxed);
  out.compaction_records_copied = s.records_copied.load(std::memory_order_relaxed);
  out.compaction_bytes_copied = s.bytes_copied.load(std::memory_order_relaxed);
  out.tombstones_dropped = s.tombs_dropped.load(std::memory_order_relaxed);
  return out;
}

std::unique_ptr<Store> make_log_engine(const Params& p) {
  LogOptions o;
  o.name = p.store();
  o.path = p.get_string("path");
  o.sync = p.get_choice("sync", {"none", "always"}, "none") == "always" ? LogOptions::Sync::kAlways
                                                                         : LogOptions::Sync::kNone;
  o.max_file_size = p.get_bytes("max_file_size", o.max_file_size, 4096, uint64_t{1} << 40);
  o.max_key_size = p.get_bytes("max_key_size", o.max_key_size, 1, logrec::kMaxKeySize);
  o.max_value_size = p.get_bytes("max_value_size", o.max_value_size, 0, (uint64_t{1} << 31) - 1);
  o.build_index_threads =
      static_cast<int>(p.get_int("build_index_threads", o.build_index_threads, 1, 256));
  o.flush_bytes = p.get_bytes("flush_bytes", o.flush_bytes, 0, uint64_t{1} << 40);
  o.compaction = p.get_bool("compaction", o.compaction);
  o.compaction_threshold = p.get_double("compaction_threshold", o.compaction_threshold, 0.01, 1.0);
  o.compaction_rate = p.get_bytes("compaction_rate", o.compaction_rate, 0, uint64_t{1} << 40);
  return std::make_unique<LogStore>(std::move(o));
}

}  // namespace cairn

#include "engines/log/log_store.h"

#include <absl/container/flat_hash_map.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <thread>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "core/version_list.h"
#include "engines/log/log_file.h"
#include "engines/log/record.h"

namespace cairn {

namespace fs = std::filesystem;
using internal::LogFile;
namespace logrec = internal::logrec;

namespace {

// Where a key's newest record is.
struct Loc {
  uint32_t file = 0;
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

}  // namespace

struct LogStore::State {
  LogOptions options;
  std::atomic<bool> closed{false};
  int lock_fd = -1;  // flock'ed <path>/LOCK: one store per directory

  ~State() {
    if (lock_fd >= 0) ::close(lock_fd);  // an open that failed half-way
  }

  mutable std::shared_mutex index_mu;
  absl::flat_hash_map<std::string, Loc> index;  // guarded by index_mu

  mutable std::shared_mutex files_mu;
  std::map<uint32_t, std::shared_ptr<LogFile>> data;  // guarded by files_mu

  mutable std::mutex write_mu;  // one writer at a time; guards what follows
  uint32_t current = 0;                  // the data file appended to
  std::shared_ptr<LogFile> tombstones;   // the tombstone file appended to
  std::shared_ptr<LogFile> index_file;   // the current data file's index entries
  uint64_t next_sequence = 1;
  std::map<uint32_t, uint64_t> stale;  // data file -> bytes of dead records
  uint64_t appended = 0;               // record bytes written since open
  uint64_t opened_from_index = 0;      // records the open took from index files
  uint64_t opened_by_scan = 0;         // and by reading data files
  std::string index_scratch;
  std::string scratch;   // a record being built
  std::string stored;    // a key's versions, read back
  std::string updated;   // and after the put or remove

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
    std::shared_lock lock(files_mu);
    auto it = data.find(id);
    return it == data.end() ? nullptr : it->second;
  }

  // The encoded versions of `key` into *out; false if the key is absent.
  bool read(std::string_view key, std::string* out) const {
    Loc loc;
    {
      std::shared_lock lock(index_mu);
      auto it = index.find(as_absl(key));
      if (it == index.end()) return false;
      loc = it->second;
    }
    std::shared_ptr<LogFile> f = file(loc.file);
    if (f == nullptr) throw Corruption(where("get", key) + ": its data file is gone");
    thread_local std::string bytes;
    f->read(loc.offset, loc.size, &bytes);
    logrec::Record r;
    if (logrec::parse(bytes, &r, loc.size) != logrec::Parse::kOk || r.kind != logrec::Kind::kPut ||
        r.key != key || r.sequence != loc.sequence) {
      throw Corruption(where("get", key) + ": the record at " + f->path() + ":" +
                       std::to_string(loc.offset) + " fails its checksum or is not this key's");
    }
    out->assign(r.value);
    return true;
  }

  // What a write must still make durable once the write lock is released.
  struct Pending {
    std::shared_ptr<LogFile> file;  // null: nothing (sync: none)
    uint64_t end = 0;
    void wait() const {
      if (file) file->sync_through(end);
    }
  };

  // Appends a record for `key` to the current data file and points the
  // index at it. REQUIRES: write_mu held.
  Pending append_put(std::string_view key, std::string_view versions) {
    std::shared_ptr<LogFile> f = file(current);
    if (f->size() >= options.max_file_size) f = roll();
    scratch.clear();
    const uint64_t seq = next_sequence++;
    logrec::append(&scratch, logrec::Kind::kPut, seq, key, versions);
    const uint64_t offset = f->append(scratch);
    Pending pending = durable(f, offset + scratch.size());
    // Its index entry stays buffered: a crash loses only entries of the
    // file being written, which open reads whole anyway.
    index_scratch.clear();
    logrec::append_index(&index_scratch, key, static_cast<uint32_t>(scratch.size()), offset, seq);
    index_file->append(index_scratch);
    appended += scratch.size();
    const Loc loc{current, static_cast<uint32_t>(scratch.size()), offset, seq};
    std::unique_lock lock(index_mu);
    auto [it, fresh] = index.try_emplace(std::string(key), loc);
    if (!fresh) {
      stale[it->second.file] += it->second.size;  // the record this one supersedes
      it->second = loc;
    }
    return pending;
  }

  // Appends a tombstone for `key` and drops it from the index.
  // REQUIRES: write_mu held.
  Pending append_tombstone(std::string_view key) {
    if (tombstones == nullptr) {
      tombstones = std::make_shared<LogFile>((fs::path(options.path) / file_name(current, "tomb")).string());
    }
    scratch.clear();
    logrec::append(&scratch, logrec::Kind::kTombstone, next_sequence++, key, "");
    const uint64_t offset = tombstones->append(scratch);
    Pending pending = durable(tombstones, offset + scratch.size());
    appended += scratch.size();
    std::unique_lock lock(index_mu);
    auto it = index.find(as_absl(key));
    if (it != index.end()) {
      stale[it->second.file] += it->second.size;
      index.erase(it);
    }
    return pending;
  }

  // sync: none writes the record to the page cache now; sync: always
  // leaves the fdatasync to the writer after it releases the write lock,
  // so that writers waiting together share one (group commit).
  Pending durable(const std::shared_ptr<LogFile>& f, uint64_t end) {
    if (options.sync == LogOptions::Sync::kAlways) return Pending{f, end};
    f->flush();
    return Pending{};
  }

  // Closes the current data file (synced) and starts the next, with a
  // tombstone file of its own. REQUIRES: write_mu held.
  std::shared_ptr<LogFile> roll() {
    file(current)->sync();
    if (tombstones) tombstones->sync();
    index_file->sync();  // a closed file's index is what the next open trusts
    const uint32_t id = current + 1;
    auto f = std::make_shared<LogFile>((fs::path(options.path) / file_name(id, "data")).string());
    index_file = std::make_shared<LogFile>((fs::path(options.path) / file_name(id, "index")).string());
    {
      std::unique_lock lock(files_mu);
      data.emplace(id, f);
    }
    current = id;
    tombstones.reset();
    return f;
  }

  void open();
};

void LogStore::State::open() {
  std::error_code ec;
  fs::create_directories(options.path, ec);
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
  std::map<uint32_t, bool> ids;  // the data files' ids
  std::vector<uint32_t> tomb_ids;
  for (const auto& entry : fs::directory_iterator(options.path, ec)) {
    const std::string name = entry.path().filename().string();
    unsigned id = 0;
    char ext[8] = {0};
    if (std::sscanf(name.c_str(), "%8u.%5s", &id, ext) != 2) continue;
    if (std::string(ext) == "data") ids.emplace(id, false);
    if (std::string(ext) == "tomb") tomb_ids.push_back(id);
  }
  if (ec) throw IoError("log '" + options.name + "': cannot list " + options.path + ": " + ec.message());
  if (ids.empty()) ids.emplace(1, false);
  uint64_t max_seq = 0;
  const uint32_t last = ids.rbegin()->first;
  // What one data file holds: its put records' keys and locations, in file
  // order. Loading touches nothing shared, so files load in parallel.
  struct Loaded {
    std::shared_ptr<LogFile> file;
    std::vector<std::pair<std::string, Loc>> puts;
    uint64_t from_index = 0, by_scan = 0;
    uint64_t good = 0;          // where its good records end
    std::string fresh_index;    // the last file's index, rebuilt
  };
  auto load = [&](uint32_t id) {
    Loaded l;
    l.file = std::make_shared<LogFile>((fs::path(options.path) / file_name(id, "data")).string());
    const fs::path index_path = fs::path(options.path) / file_name(id, "index");
    // A closed file: its index entries, as far as they are whole, agree
    // with the data file and follow one another; the records after them
    // (none, normally) are read.
    uint64_t indexed_end = 0;
    if (id != last && fs::exists(index_path)) {
      const uint64_t data_size = l.file->size();
      LogFile idx(index_path.string());
      idx.scan_index([&](const logrec::IndexEntry& e) {
        if (e.record_offset != indexed_end || e.record_offset + e.record_size > data_size) return false;
        l.puts.emplace_back(std::string(e.key), Loc{id, e.record_size, e.record_offset, e.sequence});
        indexed_end += e.record_size;
        ++l.from_index;
        return true;
      });
    }
    // The file being written (and what a closed file's index lacks) is
    // read record by record; the last file's index is written anew from it.
    l.good = l.file->scan(
        [&](const logrec::Record& r, uint64_t offset) {
          if (r.kind != logrec::Kind::kPut) return;
          l.puts.emplace_back(std::string(r.key),
                              Loc{id, static_cast<uint32_t>(r.size), offset, r.sequence});
          ++l.by_scan;
          if (id == last) {
            logrec::append_index(&l.fresh_index, r.key, static_cast<uint32_t>(r.size), offset,
                                 r.sequence);
          }
        },
        max_record(), indexed_end);
    return l;
  };
  std::vector<uint32_t> order;
  for (const auto& entry : ids) order.push_back(entry.first);
  std::vector<Loaded> loaded(order.size());
  std::vector<std::exception_ptr> errors(order.size());
  {
    std::atomic<size_t> next{0};
    auto worker = [&] {
      for (size_t k; (k = next.fetch_add(1)) < order.size();) {
        try {
          loaded[k] = load(order[k]);
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
  // Applied in file order: the newest sequence number wins.
  for (size_t k = 0; k < order.size(); ++k) {
    if (errors[k]) std::rethrow_exception(errors[k]);
    const uint32_t id = order[k];
    Loaded& l = loaded[k];
    for (auto& [key, loc] : l.puts) {
      max_seq = std::max(max_seq, loc.sequence);
      auto [it, fresh] = index.try_emplace(std::move(key));
      if (fresh || it->second.sequence < loc.sequence) {
        if (!fresh) stale[it->second.file] += it->second.size;
        it->second = loc;
      } else {
        stale[id] += loc.size;  // an older record met after a newer one
      }
    }
    l.puts = {};
    opened_from_index += l.from_index;
    opened_by_scan += l.by_scan;
    LogFile& f = *l.file;
    if (l.good < f.size()) {
      // Only the file written at a crash may end torn: cut it there. An
      // older file is left as it is, its damaged records lost.
      const uint64_t lost = f.size() - l.good;
      if (id == last) {
        log(LogLevel::kWarn, "log '" + options.name + "': " + f.path() + ": dropped " +
                                 std::to_string(lost) + " bytes of torn or damaged records at its end");
        f.truncate(l.good);
      } else {
        log(LogLevel::kError, "log '" + options.name + "': " + f.path() + ": " +
                                  std::to_string(lost) + " bytes unreadable from offset " +
                                  std::to_string(l.good) + "; the records there are lost");
      }
    }
    if (id == last) {
      index_file = std::make_shared<LogFile>(
          (fs::path(options.path) / file_name(id, "index")).string());
      index_file->truncate(0);
      index_file->append(l.fresh_index);
    }
    data.emplace(id, std::move(l.file));
  }
  std::sort(tomb_ids.begin(), tomb_ids.end());
  for (uint32_t id : tomb_ids) {
    LogFile f((fs::path(options.path) / file_name(id, "tomb")).string());
    const uint64_t good = f.scan(
        [&](const logrec::Record& r, uint64_t) {
          max_seq = std::max(max_seq, r.sequence);
          if (r.kind != logrec::Kind::kTombstone) return;
          auto it = index.find(as_absl(r.key));
          if (it != index.end() && it->second.sequence < r.sequence) {
            stale[it->second.file] += it->second.size;
            index.erase(it);
          }
        },
        max_record());
    if (good < f.size()) {
      const uint64_t lost = f.size() - good;
      if (id == tomb_ids.back()) {
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
  next_sequence = max_seq + 1;
}

LogStore::LogStore(LogOptions options) : s_(std::make_shared<State>()) {
  if (options.path.empty()) throw InvalidArgument("log: a path is required");
  if (options.max_key_size < 1 || options.max_key_size > logrec::kMaxKeySize) {
    throw InvalidArgument("log '" + options.name + "': max_key_size must be from 1 to 65535");
  }
  if (options.max_value_size >= (uint64_t{1} << 31)) {
    throw InvalidArgument("log '" + options.name + "': max_value_size must be below 2 GiB");
  }
  s_->options = std::move(options);
  s_->open();
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

PutResult LogStore::put_stamped(std::string_view key, const Versioned& value, VectorClock*) {
  State& s = *s_;
  check_key(s.options.name, key, s.options.max_key_size);
  check_value(s.options.name, key, value.value, s.options.max_value_size);
  State::Pending pending;
  {
    std::lock_guard lock(s.write_mu);
    s.check_open();
    const bool exists = s.read(key, &s.stored);
    if (internal::apply_put_encoded(exists ? std::string_view(s.stored) : std::string_view(),
                                    value, &s.updated) == PutResult::kObsolete) {
      return PutResult::kObsolete;
    }
    if (s.updated.size() > UINT32_MAX - 4096) {
      throw InvalidArgument(s.where("put", key) + ": its versions would total " +
                            std::to_string(s.updated.size()) + " bytes; a record holds at most 4 GiB");
    }
    pending = s.append_put(key, s.updated);
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
    if (!s.read(key, &s.stored)) return false;
    if (!internal::apply_remove_encoded(s.stored, version, &s.updated)) return false;
    pending = s.updated.empty() ? s.append_tombstone(key) : s.append_put(key, s.updated);
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
    for (const auto& [key, loc] : s_->index) keys.push_back(key);
  }
  return std::make_unique<LogIterator>(s_, std::move(keys));
}

void LogStore::close() {
  State& s = *s_;
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
  if (auto f = s.file(s.current)) sync(*f);
  if (s.tombstones) sync(*s.tombstones);
  if (s.index_file) sync(*s.index_file);
  if (s.lock_fd >= 0) {
    ::close(s.lock_fd);  // releases the flock: the directory may be opened again
    s.lock_fd = -1;
  }
  if (first) std::rethrow_exception(first);
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
  std::lock_guard write_lock(s.write_mu);
  {
    std::shared_lock lock(s.index_mu);
    out.keys = s.index.size();
    // A slot holds the key string and its location; a control byte per slot.
    out.index_bytes = s.index.capacity() * (sizeof(std::string) + sizeof(Loc) + 1);
    for (const auto& [key, loc] : s.index) {
      if (key.capacity() > 15) out.index_bytes += key.capacity() + 1;  // beyond the inline buffer
    }
  }
  std::shared_lock lock(s.files_mu);
  for (const auto& [id, f] : s.data) {
    auto st = s.stale.find(id);
    const uint64_t stale = st == s.stale.end() ? 0 : st->second;
    out.files[id] = {f->size(), stale};
    out.data_bytes += f->size();
    out.stale_bytes += stale;
  }
  out.data_files = out.files.size();
  out.appended_bytes = s.appended;
  out.opened_from_index = s.opened_from_index;
  out.opened_by_scan = s.opened_by_scan;
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
  return std::make_unique<LogStore>(std::move(o));
}

}  // namespace cairn

#include "cairn/lmdb_store.h"

#include <lmdb.h>
#include <sys/stat.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <thread>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "catalogue/builtin.h"
#include "core/shared_spin_lock.h"
#include "core/version_list.h"

namespace cairn {

namespace {

constexpr char kMetaDb[] = "cairn.meta";
constexpr char kDataDb[] = "cairn.data";
constexpr std::string_view kFormatKey = "format";
constexpr std::string_view kFormat = "cairn-lmdb-1";
// Keys copied per scan batch; a batch holds a read transaction only while
// it copies, so long scans never pin old pages.
constexpr size_t kScanBatchKeys = 512;
constexpr size_t kScanBatchBytes = size_t{4} << 20;

MDB_val as_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
std::string_view as_view(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

[[noreturn]] void throw_lmdb(int rc, const std::string& what) {
  const std::string msg = what + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_BAD_DBI:
    case MDB_INCOMPATIBLE:
      throw Corruption(msg);
    case MDB_READERS_FULL:
      throw Unavailable(msg + " (raise max_readers)");
    case MDB_BAD_VALSIZE:
      throw InvalidArgument(msg);
    default:
      throw IoError(msg);
  }
}

// LMDB forbids opening one environment twice in a process (its locks would
// be released by the second close): track what is open. Never destroyed, so
// a store closed during static destruction still finds it.
struct OpenPaths {
  std::mutex mu;
  std::set<std::string> paths;
};
OpenPaths& open_paths() {
  static OpenPaths* p = new OpenPaths;
  return *p;
}

std::atomic<uint64_t> g_next_env_id{1};

}  // namespace

namespace internal {

// The open environment, shared by the store, its iterators and the
// per-thread caches of read transactions.
class LmdbEnv : public std::enable_shared_from_this<LmdbEnv> {
 public:
  LmdbEnv(const LmdbOptions& options);
  ~LmdbEnv();

  // Runs `body` in a reused read transaction of this thread.
  // body(MDB_txn*) -> void. Throws FailedPrecondition once closed.
  template <typename Body>
  void read(Body&& body);

  // Runs `body` in a write transaction: body(MDB_txn*) -> int, returning 0 to
  // commit, kNoChange to abort (nothing to write) or an LMDB error code.
  // Grows the map and retries on MDB_MAP_FULL.
  static constexpr int kNoChange = 1;
  template <typename Body>
  void write(std::string_view what, std::string_view key, Body&& body);

  void sync();
  // Throws IoError if the final flush fails; the environment is closed
  // either way.
  void close();
  size_t map_size() const;
  bool closed() const { return closed_.load(std::memory_order_acquire); }
  MDB_dbi dbi() const { return dbi_; }
  const std::string& name() const { return name_; }
  std::string context(std::string_view op, std::string_view key) const {
    std::string s = "lmdb '" + name_ + "' at " + path_ + ": " + std::string(op);
    if (!key.empty()) s += " key " + printable_key(key);
    return s;
  }

  // Called by a thread's reader cache when the thread exits.
  void release_reader(MDB_txn* txn);

 private:
  void open_databases();
  void check_open() const {
    if (closed()) throw FailedPrecondition("store '" + name_ + "' is closed");
  }
  // This thread's read transaction, reset; nullptr if another process grew
  // the map (adopt it and retry). REQUIRES: gate_ held shared.
  MDB_txn* thread_reader();
  // REQUIRES: gate_ held (either way).
  size_t map_size_locked() const;
  // Doubles the map unless it changed since `seen_generation`.
  void grow(uint64_t seen_generation);
  void adopt_map_size();
  void sync_loop(int interval_ms);

  const std::string name_;
  const std::string path_;
  std::string canonical_path_;  // the key in open_paths()
  const size_t max_map_size_;
  const uint64_t id_ = g_next_env_id.fetch_add(1);
  MDB_env* env_ = nullptr;
  MDB_dbi dbi_ = 0;
  // Shared by every transaction; exclusive to resize the map and to close.
  // Writers announce themselves, so a stream of reads cannot starve growth.
  mutable SharedSpinLock gate_;
  // Bumped whenever the map is resized, so that writers that all found it
  // full grow it once between them.
  std::atomic<uint64_t> map_generation_{0};
  // Set under gate_ exclusively and readers_mu_; read anywhere.
  std::atomic<bool> closed_{false};

  std::mutex readers_mu_;
  std::vector<MDB_txn*> idle_readers_;  // reset, owned by no thread
  std::vector<MDB_txn*> all_readers_;   // every read txn, for close()

  std::mutex sync_mu_;
  std::condition_variable sync_cv_;
  bool stop_sync_ = false;
  std::thread sync_thread_;
};

namespace {

// Each thread keeps one reset read transaction per environment it has read
// from: renewing it costs no lock-table search. The env ids are never
// reused, so an entry of a destroyed environment is never matched again.
struct CachedReader {
  uint64_t env_id;
  MDB_txn* txn;
  std::weak_ptr<LmdbEnv> owner;
};

struct ReaderCache {
  std::vector<CachedReader> readers;
  ~ReaderCache() {
    for (CachedReader& r : readers) {
      if (auto env = r.owner.lock()) env->release_reader(r.txn);
    }
  }
};

thread_local ReaderCache t_reader_cache;

}  // namespace

LmdbEnv::LmdbEnv(const LmdbOptions& o)
    : name_(o.name), path_(o.path), max_map_size_(o.max_map_size) {
  std::error_code ec;
  std::filesystem::create_directories(path_, ec);
  if (ec) throw IoError(context("create directory", {}) + ": " + ec.message());
  // Kept for close(): recomputing it then could give another answer (a
  // relative path after chdir, a moved directory).
  canonical_path_ = std::filesystem::canonical(path_, ec).string();
  if (ec) throw IoError(context("resolve path", {}) + ": " + ec.message());
  {
    OpenPaths& open = open_paths();
    std::lock_guard lock(open.mu);
    if (!open.paths.insert(canonical_path_).second) {
      throw FailedPrecondition(context("open", {}) +
                               ": this process has the environment open already");
    }
  }
  try {
    int rc = mdb_env_create(&env_);
    if (rc != 0) throw_lmdb(rc, context("create environment", {}));
    if ((rc = mdb_env_set_maxreaders(env_, o.max_readers)) != 0 ||
        (rc = mdb_env_set_maxdbs(env_, 4)) != 0 ||
        (rc = mdb_env_set_mapsize(env_, o.map_size)) != 0) {
      throw_lmdb(rc, context("configure environment", {}));
    }
    // NOTLS ties reader slots to transactions rather than threads, so that a
    // thread's cached read transaction can pass to another thread when the
    // first exits.
    unsigned flags = MDB_NOTLS;
    if (o.durability == LmdbOptions::Durability::kNoSync) flags |= MDB_NOSYNC;
    if (o.write_map) flags |= MDB_WRITEMAP;
    rc = mdb_env_open(env_, path_.c_str(), flags, 0644);
    if (rc != 0) throw_lmdb(rc, context("open", {}));
    if (o.max_key_size > static_cast<size_t>(mdb_env_get_maxkeysize(env_))) {
      throw InvalidArgument(context("open", {}) + ": max_key_size " +
                            std::to_string(o.max_key_size) + " exceeds LMDB's limit of " +
                            std::to_string(mdb_env_get_maxkeysize(env_)));
    }
    int dead = 0;
    mdb_reader_check(env_, &dead);  // slots left by crashed processes
    open_databases();
  } catch (...) {
    if (env_ != nullptr) mdb_env_close(env_);
    env_ = nullptr;
    closed_ = true;
    OpenPaths& open = open_paths();
    std::lock_guard lock(open.mu);
    open.paths.erase(canonical_path_);
    throw;
  }
  if (o.durability == LmdbOptions::Durability::kNoSync && o.sync_interval_ms > 0) {
    sync_thread_ = std::thread([this, ms = o.sync_interval_ms] { sync_loop(ms); });
  }
}

void LmdbEnv::open_databases() {
  // A file shorter than the pages the meta page claims would fault (SIGBUS)
  // on first touch of a missing page: check before any read.
  MDB_envinfo info;
  MDB_stat stat;
  int rc = mdb_env_info(env_, &info);
  if (rc == 0) rc = mdb_env_stat(env_, &stat);
  if (rc != 0) throw_lmdb(rc, context("read environment info", {}));
  struct stat st;
  const std::string file = path_ + "/data.mdb";
  if (::stat(file.c_str(), &st) == 0) {
    const uint64_t needed = (uint64_t{info.me_last_pgno} + 1) * stat.ms_psize;
    if (static_cast<uint64_t>(st.st_size) < needed) {
      throw Corruption(context("open", {}) + ": data.mdb is " + std::to_string(st.st_size) +
                       " bytes but its pages need " + std::to_string(needed) +
                       " (truncated file)");
    }
  }

  MDB_txn* txn = nullptr;
  rc = mdb_txn_begin(env_, nullptr, 0, &txn);
  if (rc != 0) throw_lmdb(rc, context("begin", {}));
  auto fail = [&](int code, const std::string& what) {
    mdb_txn_abort(txn);
    throw_lmdb(code, context(what, {}));
  };
  MDB_dbi meta;
  rc = mdb_dbi_open(txn, kMetaDb, 0, &meta);
  if (rc == MDB_NOTFOUND) {
    // New environment, or one written by something else: refuse the latter
    // rather than mix our records into it.
    MDB_dbi main_db;
    if ((rc = mdb_dbi_open(txn, nullptr, 0, &main_db)) != 0) fail(rc, "open main db");
    MDB_stat main_stat;
    if ((rc = mdb_stat(txn, main_db, &main_stat)) != 0) fail(rc, "stat main db");
    if (main_stat.ms_entries != 0) {
      mdb_txn_abort(txn);
      throw Corruption(context("open", {}) +
                       ": not a cairn environment (it holds other data)");
    }
    if ((rc = mdb_dbi_open(txn, kMetaDb, MDB_CREATE, &meta)) != 0) fail(rc, "create meta db");
    MDB_val k = as_val(kFormatKey), v = as_val(kFormat);
    if ((rc = mdb_put(txn, meta, &k, &v, 0)) != 0) fail(rc, "write format");
  } else if (rc != 0) {
    fail(rc, "open meta db");
  } else {
    MDB_val k = as_val(kFormatKey), v;
    rc = mdb_get(txn, meta, &k, &v);
    if (rc != 0 && rc != MDB_NOTFOUND) fail(rc, "read format");
    if (rc != 0 || as_view(v) != kFormat) {
      const std::string found = rc == 0 ? std::string(as_view(v)) : "none";
      mdb_txn_abort(txn);
      throw Corruption(context("open", {}) + ": unknown format '" + found +
                       "' (expected " + std::string(kFormat) + ")");
    }
  }
  if ((rc = mdb_dbi_open(txn, kDataDb, MDB_CREATE, &dbi_)) != 0) fail(rc, "open data db");
  if ((rc = mdb_txn_commit(txn)) != 0) throw_lmdb(rc, context("commit", {}));
}

MDB_txn* LmdbEnv::thread_reader() {
  auto& cache = t_reader_cache.readers;
  for (const CachedReader& r : cache) {
    if (r.env_id == id_) return r.txn;
  }
  std::erase_if(cache, [](const CachedReader& r) { return r.owner.expired(); });
  MDB_txn* txn = nullptr;
  {
    std::lock_guard lock(readers_mu_);
    if (!idle_readers_.empty()) {
      txn = idle_readers_.back();
      idle_readers_.pop_back();
    }
  }
  if (txn == nullptr) {
    const int rc = mdb_txn_begin(env_, nullptr, MDB_RDONLY, &txn);
    if (rc == MDB_MAP_RESIZED) return nullptr;
    if (rc != 0) throw_lmdb(rc, context("begin read", {}));
    mdb_txn_reset(txn);
    std::lock_guard lock(readers_mu_);
    all_readers_.push_back(txn);
  }
  cache.push_back({id_, txn, weak_from_this()});
  return txn;
}

void LmdbEnv::release_reader(MDB_txn* txn) {
  std::lock_guard lock(readers_mu_);
  // After close() every reader was aborted; the pointer is dangling then.
  if (!closed_) idle_readers_.push_back(txn);
}

template <typename Body>
void LmdbEnv::read(Body&& body) {
  for (;;) {
    std::shared_lock gate(gate_);
    check_open();
    MDB_txn* txn = thread_reader();
    const int rc = txn == nullptr ? MDB_MAP_RESIZED : mdb_txn_renew(txn);
    if (rc == MDB_MAP_RESIZED) {  // another process grew the map
      gate.unlock();
      adopt_map_size();
      continue;
    }
    if (rc != 0) throw_lmdb(rc, context("renew read", {}));
    struct Reset {
      MDB_txn* txn;
      ~Reset() { mdb_txn_reset(txn); }
    } reset{txn};
    body(txn);
    return;
  }
}

template <typename Body>
void LmdbEnv::write(std::string_view what, std::string_view key, Body&& body) {
  for (;;) {
    std::shared_lock gate(gate_);
    check_open();
    const uint64_t seen = map_generation_.load(std::memory_order_relaxed);
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env_, nullptr, 0, &txn);
    if (rc == MDB_MAP_RESIZED) {
      gate.unlock();
      adopt_map_size();
      continue;
    }
    if (rc != 0) throw_lmdb(rc, context(what, key));
    try {
      rc = body(txn);
    } catch (...) {
      mdb_txn_abort(txn);
      throw;
    }
    if (rc == kNoChange) {
      mdb_txn_abort(txn);
      return;
    }
    if (rc == 0) {
      rc = mdb_txn_commit(txn);  // frees txn whatever the outcome
    } else {
      mdb_txn_abort(txn);
    }
    if (rc == 0) return;
    if (rc != MDB_MAP_FULL) throw_lmdb(rc, context(what, key));
    gate.unlock();
    grow(seen);
  }
}

size_t LmdbEnv::map_size() const {
  std::shared_lock gate(gate_);
  check_open();
  return map_size_locked();
}

size_t LmdbEnv::map_size_locked() const {
  MDB_envinfo info;
  const int rc = mdb_env_info(env_, &info);
  if (rc != 0) throw_lmdb(rc, context("read map size", {}));
  return info.me_mapsize;
}

void LmdbEnv::grow(uint64_t seen_generation) {
  std::unique_lock gate(gate_);
  check_open();
  if (map_generation_.load() != seen_generation) return;  // another writer grew it
  const size_t current = map_size_locked();
  if (current >= max_map_size_) {
    throw IoError(context("grow", {}) + ": the database filled its map of " +
                  std::to_string(current) + " bytes, which is max_map_size; raise it");
  }
  const size_t next = std::min(current * 2, max_map_size_);
  const int rc = mdb_env_set_mapsize(env_, next);
  if (rc != 0) throw_lmdb(rc, context("grow map to " + std::to_string(next), {}));
  map_generation_.fetch_add(1);
}

void LmdbEnv::adopt_map_size() {
  std::unique_lock gate(gate_);
  check_open();
  const int rc = mdb_env_set_mapsize(env_, 0);
  if (rc != 0) throw_lmdb(rc, context("adopt map size", {}));
  map_generation_.fetch_add(1);
}

void LmdbEnv::sync() {
  std::shared_lock gate(gate_);
  check_open();
  const int rc = mdb_env_sync(env_, 1);
  if (rc != 0) throw_lmdb(rc, context("sync", {}));
}

void LmdbEnv::sync_loop(int interval_ms) {
  std::unique_lock lock(sync_mu_);
  while (!sync_cv_.wait_for(lock, std::chrono::milliseconds(interval_ms),
                            [this] { return stop_sync_; })) {
    lock.unlock();
    try {
      sync();
    } catch (const FailedPrecondition&) {
      return;  // closed under us
    } catch (const Error& e) {
      // Nobody waits on this thread: say so, and keep trying. close()
      // flushes once more and reports its own outcome.
      log(LogLevel::kError, std::string("background sync failed: ") + e.what());
    }
    lock.lock();
  }
}

void LmdbEnv::close() {
  if (sync_thread_.joinable()) {
    {
      std::lock_guard lock(sync_mu_);
      stop_sync_ = true;
    }
    sync_cv_.notify_all();
    sync_thread_.join();
  }
  std::unique_lock gate(gate_);
  if (closed()) return;
  {
    std::lock_guard lock(readers_mu_);
    closed_ = true;
    for (MDB_txn* txn : all_readers_) mdb_txn_abort(txn);
    all_readers_.clear();
    idle_readers_.clear();
  }
  // Flushes what nosync mode left in the page cache. A failure is reported
  // after the environment is closed: there is nothing left to retry with.
  const int rc = mdb_env_sync(env_, 1);
  mdb_dbi_close(env_, dbi_);
  mdb_env_close(env_);
  env_ = nullptr;
  {
    OpenPaths& open = open_paths();
    std::lock_guard lock(open.mu);
    open.paths.erase(canonical_path_);
  }
  if (rc != 0) throw_lmdb(rc, context("final sync", {}));
}

LmdbEnv::~LmdbEnv() {
  try {
    close();
  } catch (const Error& e) {
    log(LogLevel::kError, e.what());
  }
}

}  // namespace internal

namespace {

// Copies keys in batches, each under a short read transaction, resuming
// after the last key seen.
class LmdbIterator final : public StoreIterator {
 public:
  explicit LmdbIterator(std::shared_ptr<internal::LmdbEnv> env) : env_(std::move(env)) {}

  bool next() override {
    if (env_->closed()) throw FailedPrecondition("store '" + env_->name() + "' is closed");
    if (pos_ >= batch_.size()) {
      if (done_) return false;
      load();
      if (batch_.empty()) return false;
    }
    const auto& [key, data] = batch_[pos_++];
    try {
      internal::decode_versions(data, &versions_);
    } catch (const Corruption& e) {
      throw Corruption(env_->context("scan", key) + ": " + e.what());
    }
    key_ = key;
    return true;
  }
  std::string_view key() const override { return key_; }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  void load() {
    batch_.clear();
    pos_ = 0;
    env_->read([&](MDB_txn* txn) {
      MDB_cursor* cursor = nullptr;
      int rc = mdb_cursor_open(txn, env_->dbi(), &cursor);
      if (rc != 0) throw_lmdb(rc, env_->context("scan", {}));
      struct Close {
        MDB_cursor* c;
        ~Close() { mdb_cursor_close(c); }
      } closer{cursor};
      MDB_val k, v;
      if (!started_) {
        rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST);
      } else {
        k = as_val(resume_after_);
        rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_RANGE);
        if (rc == 0 && as_view(k) == resume_after_) rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
      }
      size_t bytes = 0;
      while (rc == 0 && batch_.size() < kScanBatchKeys && bytes < kScanBatchBytes) {
        batch_.emplace_back(as_view(k), as_view(v));
        bytes += k.mv_size + v.mv_size;
        rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT);
      }
      if (rc == MDB_NOTFOUND) {
        done_ = true;
      } else if (rc != 0) {
        throw_lmdb(rc, env_->context("scan", {}));
      }
    });
    started_ = true;
    if (!batch_.empty()) resume_after_ = batch_.back().first;
  }

  std::shared_ptr<internal::LmdbEnv> env_;
  std::vector<std::pair<std::string, std::string>> batch_;
  size_t pos_ = 0;
  bool started_ = false;
  bool done_ = false;
  std::string resume_after_;
  std::string key_;
  std::vector<Versioned> versions_;
};

}  // namespace

const char* to_string(LmdbOptions::Durability d) {
  return d == LmdbOptions::Durability::kSync ? "sync" : "nosync";
}

LmdbStore::LmdbStore(LmdbOptions options) : options_(std::move(options)) {
  if (options_.path.empty()) throw InvalidArgument("lmdb '" + options_.name + "': empty path");
  if (options_.map_size == 0 || options_.max_map_size < options_.map_size) {
    throw InvalidArgument("lmdb '" + options_.name +
                          "': need 0 < map_size <= max_map_size");
  }
  if (options_.max_readers == 0) {
    throw InvalidArgument("lmdb '" + options_.name + "': max_readers must be > 0");
  }
  env_ = std::make_shared<internal::LmdbEnv>(options_);
}

LmdbStore::~LmdbStore() {
  try {
    close();
  } catch (const Error& e) {
    log(LogLevel::kError, e.what());  // a destructor cannot throw; say it
  }
}

void LmdbStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  check_key(options_.name, key, options_.max_key_size);
  env_->read([&](MDB_txn* txn) {
    MDB_val k = as_val(key), v;
    const int rc = mdb_get(txn, env_->dbi(), &k, &v);
    if (rc == MDB_NOTFOUND) {
      out->clear();
      return;
    }
    if (rc != 0) throw_lmdb(rc, env_->context("get", key));
    try {
      internal::decode_versions(as_view(v), out);
    } catch (const Corruption& e) {
      throw Corruption(env_->context("get", key) + ": " + e.what());
    }
  });
}

PutResult LmdbStore::put_stamped(std::string_view key, const Versioned& value,
                                 PutReply* stored) {
  check_key(options_.name, key, options_.max_key_size);
  check_value(options_.name, key, value.value, options_.max_value_size);
  check_no_ttl(options_.name, value);
  PutResult result = PutResult::kStored;
  thread_local std::string encoded;
  env_->write("put", key, [&](MDB_txn* txn) {
    // One cursor finds the stored versions and, for an existing key, writes
    // in place: a single B-tree search per put, as a raw mdb_put costs.
    MDB_cursor* cursor = nullptr;
    int rc = mdb_cursor_open(txn, env_->dbi(), &cursor);
    if (rc != 0) return rc;
    struct Close {
      MDB_cursor* c;
      ~Close() { mdb_cursor_close(c); }
    } closer{cursor};
    MDB_val k = as_val(key), v;
    rc = mdb_cursor_get(cursor, &k, &v, MDB_SET_KEY);
    if (rc != 0 && rc != MDB_NOTFOUND) return rc;
    const bool exists = rc == 0;
    try {
      result = internal::apply_put_encoded(exists ? as_view(v) : std::string_view(), value,
                                           &encoded, stored);
    } catch (const Corruption& e) {
      throw Corruption(env_->context("put", key) + ": " + e.what());
    }
    if (result == PutResult::kObsolete || encoded.empty()) return internal::LmdbEnv::kNoChange;
    k = as_val(key);
    v = as_val(encoded);
    return mdb_cursor_put(cursor, &k, &v, exists ? MDB_CURRENT : 0);
  });
  return result;
}

bool LmdbStore::remove(std::string_view key, const VectorClock& version) {
  check_key(options_.name, key, options_.max_key_size);
  bool removed = false;
  thread_local std::string encoded;
  env_->write("remove", key, [&](MDB_txn* txn) {
    MDB_val k = as_val(key), v;
    const int rc = mdb_get(txn, env_->dbi(), &k, &v);
    if (rc == MDB_NOTFOUND) return internal::LmdbEnv::kNoChange;
    if (rc != 0) return rc;
    try {
      removed = internal::apply_remove_encoded(as_view(v), version, &encoded);
    } catch (const Corruption& e) {
      throw Corruption(env_->context("remove", key) + ": " + e.what());
    }
    if (!removed) return internal::LmdbEnv::kNoChange;
    if (encoded.empty()) return mdb_del(txn, env_->dbi(), &k, nullptr);
    v = as_val(encoded);
    return mdb_put(txn, env_->dbi(), &k, &v, 0);
  });
  return removed;
}

std::unique_ptr<StoreIterator> LmdbStore::scan() {
  env_->read([](MDB_txn*) {});  // fails now if closed, not at the first next()
  return std::make_unique<LmdbIterator>(env_);
}

void LmdbStore::close() { env_->close(); }

void LmdbStore::sync() { env_->sync(); }

size_t LmdbStore::map_size() const { return env_->map_size(); }

std::string LmdbStore::describe() const {
  return "lmdb '" + options_.name + "' at " + options_.path + " (durability " +
         to_string(options_.durability) + (options_.write_map ? ", writemap" : "") +
         ", max key " + std::to_string(options_.max_key_size) + " B, max value " +
         std::to_string(options_.max_value_size) + " B)";
}

}  // namespace cairn

namespace cairn {

std::unique_ptr<Store> make_lmdb_engine(const Params& p) {
  LmdbOptions o;
  o.name = p.store();
  o.path = p.get_string("path");
  o.durability = p.get_choice("durability", {"sync", "nosync"}, "sync") == "sync"
                     ? LmdbOptions::Durability::kSync
                     : LmdbOptions::Durability::kNoSync;
  o.max_key_size = p.get_bytes("max_key_size", o.max_key_size, 1, 511);
  o.max_value_size = p.get_bytes("max_value_size", o.max_value_size, 0, uint64_t{1} << 30);
  o.map_size = p.get_bytes("map_size", o.map_size, 1 << 20, uint64_t{1} << 50);
  o.max_map_size = p.get_bytes("max_map_size", std::max(o.max_map_size, o.map_size), o.map_size,
                               uint64_t{1} << 50);
  o.max_readers = static_cast<unsigned>(p.get_int("max_readers", o.max_readers, 1, 1 << 16));
  o.write_map = p.get_bool("write_map", o.write_map);
  o.sync_interval_ms = static_cast<int>(
      p.get_int("sync_interval_ms", o.sync_interval_ms, 0, 24 * 3600 * 1000));
  return std::make_unique<LmdbStore>(std::move(o));
}

}  // namespace cairn

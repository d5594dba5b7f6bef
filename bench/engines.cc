// Engine micro-benchmarks, each beside the bare structure it is built on:
// MemoryStore beside absl::flat_hash_map, LmdbStore beside the raw LMDB C API
// with the same environment flags and the same transaction pattern (one read
// transaction reset/renewed per get, one write transaction per put); and
// LogStore beside RocksDB, the engine it is an alternative to (default
// options, WAL on, no sync per write: the durability of the log engine's
// `sync: none`). bench/engine-compare measures the log engine's phases
// (fill, open, percentiles) at scale; here are its gets on 1 and 2 threads.
//
// Data: 1M keys of 16 bytes (an 8-byte hash prefix and an 8-byte index),
// values of 100 bytes, read and overwritten in a shuffled order. Run each
// benchmark in its own process (bench/run-engines does) so that one's memory
// does not disturb another's, and compare ratios, not absolute times.

#include <absl/container/flat_hash_map.h>
#include <benchmark/benchmark.h>
#include <lmdb.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cairn/cache_store.h"
#include "cairn/client.h"
#include "cairn/config.h"
#include "cairn/json.h"
#include "cairn/lmdb_store.h"
#include "cairn/log_store.h"
#include "cairn/memory_store.h"
#include "cairn/readonly_store.h"
#include "core/version_list.h"

namespace {

using namespace cairn;

// CAIRN_BENCH_KEYS overrides the key count (for quick or profiled runs).
const size_t kKeys = [] {
  const char* env = std::getenv("CAIRN_BENCH_KEYS");
  return env ? std::strtoull(env, nullptr, 10) : 1'000'000;
}();
constexpr size_t kValueSize = 100;

struct Dataset {
  std::vector<std::string> keys;  // sorted
  std::vector<uint32_t> order;    // a shuffled permutation of key indexes
  std::string value;
};

const Dataset& dataset() {
  static const Dataset* d = [] {
    auto* data = new Dataset;
    std::mt19937_64 rng(42);
    data->keys.reserve(kKeys);
    for (uint64_t i = 0; i < kKeys; ++i) {
      char key[16];
      const uint64_t prefix = rng();
      std::memcpy(key, &prefix, 8);
      std::memcpy(key + 8, &i, 8);
      data->keys.emplace_back(key, 16);
    }
    std::sort(data->keys.begin(), data->keys.end());
    data->order.resize(kKeys);
    for (uint32_t i = 0; i < kKeys; ++i) data->order[i] = i;
    std::shuffle(data->order.begin(), data->order.end(), rng);
    data->value.assign(kValueSize, 'v');
    return data;
  }();
  return *d;
}

// The next key of a thread's walk through the shuffled order.
struct KeyWalk {
  explicit KeyWalk(int thread) : pos(static_cast<size_t>(thread) * 7919) {}
  const std::string& next() {
    const Dataset& d = dataset();
    return d.keys[d.order[pos++ % kKeys]];
  }
  // next(), but the choice of key waits for `dep`, a value the previous get
  // produced (always 0 in fact): each get then starts when the last one has
  // finished, and the loop measures the latency of one get rather than the
  // throughput of gets whose cache misses overlap.
  const std::string& next_after(size_t dep) {
    pos += dep;
    return next();
  }
  size_t pos;
};

// Every stored clock starts at {1:1}; each put takes a larger counter than
// any before it in this process, so every put is newer than what it
// replaces, however often the benchmark library reruns a loop.
uint64_t next_counter() {
  static std::atomic<uint64_t> counter{2};
  return counter.fetch_add(1, std::memory_order_relaxed);
}

MDB_val as_val(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }

void check(int rc, const char* what) {
  if (rc != 0) throw std::runtime_error(std::string(what) + ": " + mdb_strerror(rc));
}

std::string fresh_dir(const std::string& name) {
  const char* base = std::getenv("CAIRN_BENCH_DIR");
  const std::string dir = std::string(base ? base : "/tmp") + "/cairn-bench-" + name + "-" +
                          std::to_string(::getpid());
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

unsigned env_flags(bool write_map) { return MDB_NOSYNC | MDB_NOTLS | (write_map ? MDB_WRITEMAP : 0); }

// Fills `dbi` of `env` with every key in one sorted, appending transaction;
// `encode` turns the value into the stored bytes.
template <typename Encode>
void bulk_load(MDB_env* env, const char* db_name, Encode&& encode) {
  const Dataset& d = dataset();
  MDB_txn* txn;
  check(mdb_txn_begin(env, nullptr, 0, &txn), "begin");
  MDB_dbi dbi;
  check(mdb_dbi_open(txn, db_name, MDB_CREATE, &dbi), "dbi");
  for (const std::string& key : d.keys) {
    const std::string bytes = encode(d.value);
    MDB_val k = as_val(key), v = as_val(bytes);
    check(mdb_put(txn, dbi, &k, &v, MDB_APPEND), "put");
  }
  check(mdb_txn_commit(txn), "commit");
}

// ---- absl::flat_hash_map and MemoryStore -----------------------------------

absl::flat_hash_map<std::string, std::string>& flat_map() {
  static auto* map = [] {
    auto* m = new absl::flat_hash_map<std::string, std::string>;
    m->reserve(kKeys);
    for (const std::string& k : dataset().keys) m->emplace(k, dataset().value);
    return m;
  }();
  return *map;
}

// What every cairn store's benchmarks share: its load, its get loop
// (get_into reusing one vector, as the peers' loops reuse one string) and
// its put loop. Templates, so that each store is called as its own type.
template <typename S>
S* filled(S* store) {
  const Versioned v{dataset().value, VectorClock({{1, 1}}, 1)};
  for (const std::string& k : dataset().keys) store->put(k, v);
  return store;
}

template <typename S>
void store_gets(benchmark::State& state, S& store) {
  KeyWalk walk(state.thread_index());
  std::vector<Versioned> versions;
  for (auto _ : state) {
    store.get_into(walk.next(), &versions);
    benchmark::DoNotOptimize(versions);
  }
}

template <typename S>
void store_puts(benchmark::State& state, S& store) {
  KeyWalk walk(0);
  for (auto _ : state) {
    const Versioned v{dataset().value, VectorClock({{1, next_counter()}}, 1)};
    if (store.put(walk.next(), v) != PutResult::kStored) state.SkipWithError("put not stored");
  }
}

MemoryStore& memory_store() {
  static auto* store = filled(new MemoryStore);
  return *store;
}

void BM_FlatHashMapGet(benchmark::State& state) {
  auto& map = flat_map();
  KeyWalk walk(state.thread_index());
  std::string out;
  for (auto _ : state) {
    auto it = map.find(walk.next());
    out.assign(it->second);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_FlatHashMapGet)->Threads(1)->Threads(2);

// Latency: one lookup at a time (see KeyWalk::next_after).
void BM_FlatHashMapGetLatency(benchmark::State& state) {
  auto& map = flat_map();
  KeyWalk walk(0);
  std::string out(kValueSize, 'v');
  for (auto _ : state) {
    auto it = map.find(walk.next_after(out.size() - kValueSize));
    out.assign(it->second);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_FlatHashMapGetLatency);

void BM_MemoryStoreGetLatency(benchmark::State& state) {
  auto& store = memory_store();
  KeyWalk walk(0);
  std::vector<Versioned> versions(1, Versioned{std::string(kValueSize, 'v'), {}});
  for (auto _ : state) {
    store.get_into(walk.next_after(versions[0].value.size() - kValueSize), &versions);
    benchmark::DoNotOptimize(versions);
  }
}
BENCHMARK(BM_MemoryStoreGetLatency);

void BM_MemoryStoreGet(benchmark::State& state) { store_gets(state, memory_store()); }
BENCHMARK(BM_MemoryStoreGet)->Threads(1)->Threads(2);

// get() returning a fresh vector: what the convenience costs.
void BM_MemoryStoreGetFresh(benchmark::State& state) {
  auto& store = memory_store();
  KeyWalk walk(state.thread_index());
  for (auto _ : state) {
    auto versions = store.get(walk.next());
    benchmark::DoNotOptimize(versions);
  }
}
BENCHMARK(BM_MemoryStoreGetFresh);

// ---- the cache layer: hits --------------------------------------------------

// Every key cached (an embedded cache over the memory engine, each key read
// once), so each get is a hit: the table, its lock and the copy out.
CacheStore& cache_store() {
  static auto* store = [] {
    CacheOptions o;
    o.store = "bench";
    o.max_entries = kKeys * 2;
    o.max_bytes = kKeys * 1024;
    auto* c = filled(new CacheStore(std::make_unique<MemoryStore>(), o));
    std::vector<Versioned> v;
    for (const std::string& k : dataset().keys) c->get_into(k, &v);
    if (c->stats().entries != kKeys) throw std::runtime_error("cache: not every key was kept");
    return c;
  }();
  return *store;
}

void BM_CacheGet(benchmark::State& state) {
  CacheStore& c = cache_store();
  const uint64_t hits = c.stats().hits;
  store_gets(state, c);
  if (state.thread_index() == 0 &&
      c.stats().hits - hits < static_cast<uint64_t>(state.iterations())) {
    state.SkipWithError("a get missed the cache");
  }
}
BENCHMARK(BM_CacheGet)->Threads(1)->Threads(2);

// The typed client reading a JSON value: over the memory engine, and over a
// cache over it. Both decode the value; the cache saves the engine's part.
const char* kJsonStores = R"(
stores:
  plain:
    value: {type: json, schema: {name: string, id: int64, emails: [string]}}
    stack: [{engine: memory}]
  cached:
    value: {type: json, schema: {name: string, id: int64, emails: [string]}}
    stack: [{cache: {max_bytes: 1GiB, max_entries: 4000000}}, {engine: memory}]
)";

Client<std::string, Json>& json_client(const char* store) {
  auto load = [](const char* name) {
    auto* c = new Client<std::string, Json>(
        open_client<std::string, Json>(Config::parse(kJsonStores), name));
    const Json user = Json::parse(
        R"({"name": "Ada Lovelace", "id": 1815, "emails": ["ada@example.org"]})");
    for (const std::string& k : dataset().keys) c->put(k, user);
    for (const std::string& k : dataset().keys) c->get(k);
    return c;
  };
  static auto* plain = load("plain");
  static auto* cached = load("cached");
  return std::string_view(store) == "plain" ? *plain : *cached;
}

void json_gets(benchmark::State& state, const char* store) {
  Client<std::string, Json>& c = json_client(store);
  KeyWalk walk(state.thread_index());
  for (auto _ : state) {
    std::optional<Json> v = c.get(std::string(walk.next()));
    if (!v) state.SkipWithError("absent");
    benchmark::DoNotOptimize(v);
  }
}
void BM_JsonClientGet(benchmark::State& state) { json_gets(state, "plain"); }
void BM_JsonClientCachedGet(benchmark::State& state) { json_gets(state, "cached"); }
BENCHMARK(BM_JsonClientGet);
BENCHMARK(BM_JsonClientCachedGet);

void BM_FlatHashMapPut(benchmark::State& state) {
  auto& map = flat_map();
  KeyWalk walk(0);
  std::string value = dataset().value;
  for (auto _ : state) {
    value[0] = static_cast<char>(walk.pos);
    map[walk.next()] = value;
  }
}
BENCHMARK(BM_FlatHashMapPut);

void BM_MemoryStorePut(benchmark::State& state) { store_puts(state, memory_store()); }
BENCHMARK(BM_MemoryStorePut);

// ---- the read-only engine ----------------------------------------------------

// Builds the data set (in its shuffled order: the builder sorts) into a
// version of `root` under `memory` bytes per sorted run.
ReadOnlyBuildResult build_readonly(const std::string& root, size_t memory) {
  const Dataset& d = dataset();
  ReadOnlyBuildOptions o;
  o.dir = root + "/version-1";
  o.memory_bytes = memory;
  ReadOnlyBuilder b(o);
  for (uint32_t i : d.order) b.add(d.keys[i], d.value);
  return b.finish();
}

ReadOnlyStore& readonly_store() {
  static auto* store = [] {
    const std::string root = fresh_dir("readonly");
    build_readonly(root, size_t{256} << 20);
    auto* s = new ReadOnlyStore({.name = "bench", .path = root});
    s->swap(1);
    return s;
  }();
  return *store;
}

void BM_ReadOnlyGet(benchmark::State& state) { store_gets(state, readonly_store()); }
BENCHMARK(BM_ReadOnlyGet)->Threads(1)->Threads(2);

// One build of the whole data set per iteration, in runs of 64 MiB (about
// 8 spilled at 1M keys), files synced: bytes/s is keys and values built.
void BM_ReadOnlyBuild(benchmark::State& state) {
  dataset();
  uint64_t bytes = 0;
  for (auto _ : state) {
    const std::string root = fresh_dir("readonly-build");
    bytes += build_readonly(root, size_t{64} << 20).input_bytes;
    state.PauseTiming();
    std::filesystem::remove_all(root);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_ReadOnlyBuild)->Unit(benchmark::kMillisecond)->Iterations(1);

// The peer of a build: raw LMDB taking the same data sorted, in one
// appending transaction (its fastest load), then synced.
void BM_RawLmdbBulkLoad(benchmark::State& state) {
  dataset();
  uint64_t bytes = 0;
  for (auto _ : state) {
    const std::string dir = fresh_dir("raw-bulk");
    MDB_env* env;
    check(mdb_env_create(&env), "create");
    mdb_env_set_mapsize(env, size_t{16} << 30);
    mdb_env_set_maxdbs(env, 4);
    check(mdb_env_open(env, dir.c_str(), MDB_NOSYNC, 0644), "open");
    bulk_load(env, "data", [](const std::string& v) { return v; });
    check(mdb_env_sync(env, 1), "sync");
    mdb_env_close(env);
    for (const std::string& k : dataset().keys) bytes += k.size() + kValueSize;
    state.PauseTiming();
    std::filesystem::remove_all(dir);
    state.ResumeTiming();
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes));
}
BENCHMARK(BM_RawLmdbBulkLoad)->Unit(benchmark::kMillisecond)->Iterations(1);

// ---- raw LMDB and LmdbStore -------------------------------------------------

struct RawLmdb {
  MDB_env* env = nullptr;
  MDB_dbi dbi = 0;
  explicit RawLmdb(bool write_map) {
    const std::string dir = fresh_dir(write_map ? "raw-wm" : "raw");
    check(mdb_env_create(&env), "create");
    mdb_env_set_mapsize(env, size_t{4} << 30);
    mdb_env_set_maxdbs(env, 4);
    check(mdb_env_open(env, dir.c_str(), env_flags(write_map), 0644), "open");
    bulk_load(env, "data", [](const std::string& v) { return v; });
    MDB_txn* txn;
    check(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn), "begin");
    check(mdb_dbi_open(txn, "data", 0, &dbi), "dbi");
    mdb_txn_abort(txn);
  }
};

// Function-local statics: benchmark threads may race to the first call.
RawLmdb& raw_lmdb(bool write_map) {
  if (write_map) {
    static auto* wm = new RawLmdb(true);
    return *wm;
  }
  static auto* plain = new RawLmdb(false);
  return *plain;
}

LmdbStore* open_lmdb_store(bool write_map);

LmdbStore& lmdb_store(bool write_map) {
  if (write_map) {
    static LmdbStore* wm = open_lmdb_store(true);
    return *wm;
  }
  static LmdbStore* plain = open_lmdb_store(false);
  return *plain;
}

LmdbStore* open_lmdb_store(bool write_map) {
  LmdbOptions o;
  o.path = fresh_dir(write_map ? "engine-wm" : "engine");
  o.durability = LmdbOptions::Durability::kNoSync;
  o.write_map = write_map;
  o.sync_interval_ms = 0;  // the raw side never syncs either
  o.map_size = size_t{4} << 30;
  // Create the environment, then load it as fast as the raw one: the same
  // sorted append, with each value in the engine's version-list encoding.
  LmdbStore(o).close();
  MDB_env* env;
  check(mdb_env_create(&env), "create");
  mdb_env_set_mapsize(env, o.map_size);
  mdb_env_set_maxdbs(env, 4);
  check(mdb_env_open(env, o.path.c_str(), env_flags(write_map), 0644), "open");
  const VectorClock clock({{1, 1}}, 1);
  bulk_load(env, "cairn.data", [&](const std::string& v) {
    const Versioned one{v, clock};
    return internal::encode_versions(std::span(&one, 1));
  });
  mdb_env_close(env);
  return new LmdbStore(o);
}

void RawLmdbGet(benchmark::State& state, bool write_map) {
  RawLmdb& raw = raw_lmdb(write_map);
  KeyWalk walk(state.thread_index());
  MDB_txn* txn;
  check(mdb_txn_begin(raw.env, nullptr, MDB_RDONLY, &txn), "begin");
  mdb_txn_reset(txn);
  std::string out;
  for (auto _ : state) {
    check(mdb_txn_renew(txn), "renew");
    MDB_val k = as_val(walk.next()), v;
    check(mdb_get(txn, raw.dbi, &k, &v), "get");
    out.assign(static_cast<const char*>(v.mv_data), v.mv_size);
    mdb_txn_reset(txn);
    benchmark::DoNotOptimize(out);
  }
  mdb_txn_abort(txn);
}

void LmdbStoreGet(benchmark::State& state, bool write_map) { store_gets(state, lmdb_store(write_map)); }

void RawLmdbPut(benchmark::State& state, bool write_map) {
  RawLmdb& raw = raw_lmdb(write_map);
  KeyWalk walk(0);
  std::string value = dataset().value;
  for (auto _ : state) {
    value[0] = static_cast<char>(walk.pos);
    MDB_txn* txn;
    check(mdb_txn_begin(raw.env, nullptr, 0, &txn), "begin");
    MDB_val k = as_val(walk.next()), v = as_val(value);
    check(mdb_put(txn, raw.dbi, &k, &v, 0), "put");
    check(mdb_txn_commit(txn), "commit");
  }
}

void LmdbStorePut(benchmark::State& state, bool write_map) { store_puts(state, lmdb_store(write_map)); }

BENCHMARK_CAPTURE(RawLmdbGet, nosync, false)->Threads(1)->Threads(2);
BENCHMARK_CAPTURE(LmdbStoreGet, nosync, false)->Threads(1)->Threads(2);
BENCHMARK_CAPTURE(RawLmdbPut, nosync, false);
BENCHMARK_CAPTURE(LmdbStorePut, nosync, false);
BENCHMARK_CAPTURE(RawLmdbPut, nosync_writemap, true);
BENCHMARK_CAPTURE(LmdbStorePut, nosync_writemap, true);

// ---- RocksDB and LogStore ---------------------------------------------------

void check(const rocksdb::Status& s, const char* what) {
  if (!s.ok()) throw std::runtime_error(std::string(what) + ": " + s.ToString());
}

// The stores below are closed and their directories removed at exit,
// before static destructors run: RocksDB's background threads must not
// outlive its globals.
template <typename T>
T* close_at_exit(T* store, std::string dir) {
  static T* kept = nullptr;
  static std::string kept_dir;
  kept = store;
  kept_dir = std::move(dir);
  std::atexit([] {
    delete kept;
    std::filesystem::remove_all(kept_dir);
  });
  return store;
}

// Loaded in sorted batches, then compacted into its last level: the
// steady state a RocksDB read sees at its best (no memtable, no L0 files).
rocksdb::DB& rocks() {
  static rocksdb::DB* db = [] {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* d = nullptr;
    const std::string dir = fresh_dir("rocksdb");
    check(rocksdb::DB::Open(o, dir, &d), "rocksdb open");
    close_at_exit(d, dir);
    const Dataset& data = dataset();
    rocksdb::WriteBatch batch;
    for (size_t i = 0; i < data.keys.size(); ++i) {
      batch.Put(data.keys[i], data.value);
      if (batch.Count() == 1000 || i + 1 == data.keys.size()) {
        check(d->Write(rocksdb::WriteOptions(), &batch), "rocksdb write");
        batch.Clear();
      }
    }
    check(d->CompactRange(rocksdb::CompactRangeOptions(), nullptr, nullptr), "rocksdb compact");
    return d;
  }();
  return *db;
}

LogStore& log_store() {
  static auto* store = [] {
    LogOptions o;
    o.name = "bench";
    o.path = fresh_dir("log");
    return filled(close_at_exit(new LogStore(o), o.path));
  }();
  return *store;
}

void BM_RocksDbGet(benchmark::State& state) {
  rocksdb::DB& db = rocks();
  KeyWalk walk(state.thread_index());
  std::string out;
  for (auto _ : state) {
    check(db.Get(rocksdb::ReadOptions(), walk.next(), &out), "rocksdb get");
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_RocksDbGet)->Threads(1)->Threads(2);

void BM_LogStoreGet(benchmark::State& state) { store_gets(state, log_store()); }
BENCHMARK(BM_LogStoreGet)->Threads(1)->Threads(2);

void BM_RocksDbPut(benchmark::State& state) {
  rocksdb::DB& db = rocks();
  KeyWalk walk(0);
  std::string value = dataset().value;
  for (auto _ : state) {
    value[0] = static_cast<char>(walk.pos);
    check(db.Put(rocksdb::WriteOptions(), walk.next(), value), "rocksdb put");
  }
}
BENCHMARK(BM_RocksDbPut);

void BM_LogStorePut(benchmark::State& state) { store_puts(state, log_store()); }
BENCHMARK(BM_LogStorePut);

}  // namespace

BENCHMARK_MAIN();

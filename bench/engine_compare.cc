// The log engine beside RocksDB and LMDB (issue 6): one engine, one key
// count, one process per run (bench/run-log runs them and prints the
// table). Keys are 16 bytes (an 8-byte mix of the index, then the index),
// values 100 random bytes; one thread; every operation picks a key at
// random.
//
// Phases, each timed:
//   fill      every key put once, in a random order, into an empty store
//   put       --ops overwrites of random keys
//   rmw       --ops overwrites that read the key first: what a cairn put
//             does anyway (it merges versions), a Get before each Put for
//             RocksDB, so the two do the same work
//   get       --ops reads of random keys (after a warm-up of --ops / 4),
//             each timed for the percentiles
//   mix       --ops operations, half gets and half puts
//   open      close, then open again (the log engine rebuilds its index)
//   durable   --durable-ops puts that are each on disk when they return
//
// Durability of the first phases is the same for all: a write is in the
// page cache when it returns (a killed process loses nothing, a power
// loss may): the log engine with `sync: none` (and its fdatasync every
// 8 MiB), RocksDB with its defaults (WAL on, WriteOptions::sync false),
// LMDB with MDB_NOSYNC. The durable phase: `sync: always`,
// WriteOptions::sync true, LMDB's default sync commit.
//
// The log engine and LMDB are used through cairn's Store interface (a
// value is stored with its vector clock, and a put reads the key's
// versions first, as every cairn engine does); RocksDB through its own
// API, with rocksdb::Options() defaults but create_if_missing.
//
// usage: engine-compare --engine log|rocksdb|lmdb --keys N [--ops M]
//                       [--durable-ops K] [--dir DIR] [--compaction on|off]
// Prints one JSON object. --compaction off runs the log engine without its
// compaction thread: what compaction costs the writes beside it.

#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cairn/lmdb_store.h"
#include "cairn/log_store.h"
#include "cairn/versioned.h"

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// One engine behind the few calls the phases make.
class Engine {
 public:
  virtual ~Engine() = default;
  virtual void open(bool durable) = 0;
  virtual void close() = 0;
  virtual void put(const std::string& key, const std::string& value, uint64_t n) = 0;
  virtual bool get(const std::string& key) = 0;
  // A put that reads the key's value first.
  virtual void read_modify_write(const std::string& key, const std::string& value, uint64_t n) {
    put(key, value, n);  // cairn's engines read the key's versions in put
  }
  // Extra fields for the JSON, after the run.
  virtual std::string report() { return ""; }
};

class LogEngine final : public Engine {
 public:
  LogEngine(std::string dir, bool compaction) : dir_(std::move(dir)), compaction_(compaction) {}
  void open(bool durable) override {
    cairn::LogOptions o;
    o.name = "bench";
    o.path = dir_;
    o.sync = durable ? cairn::LogOptions::Sync::kAlways : cairn::LogOptions::Sync::kNone;
    o.max_key_size = 64;
    o.compaction = compaction_;
    store_ = std::make_unique<cairn::LogStore>(o);
  }
  void close() override {
    if (!reported_) last_ = store_->stats();  // the first session's: fill, put, get, mix
    reported_ = true;
    store_.reset();
  }
  void put(const std::string& key, const std::string& value, uint64_t n) override {
    store_->put(key, cairn::Versioned{value, cairn::VectorClock({{1, n}})});
  }
  bool get(const std::string& key) override {
    store_->get_into(key, &got_);
    return !got_.empty();
  }
  std::string report() override {
    char buf[400];
    std::snprintf(buf, sizeof buf,
                  ", \"index_bytes_per_key\": %.1f, \"write_amplification\": %.2f, "
                  "\"compaction_runs\": %llu, \"stale_bytes\": %llu, \"data_files\": %llu",
                  last_.index_bytes_per_key(), last_.write_amplification(),
                  static_cast<unsigned long long>(last_.compaction_runs),
                  static_cast<unsigned long long>(last_.stale_bytes),
                  static_cast<unsigned long long>(last_.data_files));
    return buf;
  }

 private:
  std::string dir_;
  bool compaction_;
  std::unique_ptr<cairn::LogStore> store_;
  std::vector<cairn::Versioned> got_;
  cairn::LogStats last_;
  bool reported_ = false;
};

class LmdbEngine final : public Engine {
 public:
  explicit LmdbEngine(std::string dir) : dir_(std::move(dir)) {}
  void open(bool durable) override {
    cairn::LmdbOptions o;
    o.name = "bench";
    o.path = dir_;
    o.durability = durable ? cairn::LmdbOptions::Durability::kSync : cairn::LmdbOptions::Durability::kNoSync;
    o.map_size = size_t{4} << 30;
    o.max_map_size = size_t{64} << 30;
    store_ = std::make_unique<cairn::LmdbStore>(o);
  }
  void close() override { store_.reset(); }
  void put(const std::string& key, const std::string& value, uint64_t n) override {
    store_->put(key, cairn::Versioned{value, cairn::VectorClock({{1, n}})});
  }
  bool get(const std::string& key) override {
    store_->get_into(key, &got_);
    return !got_.empty();
  }

 private:
  std::string dir_;
  std::unique_ptr<cairn::LmdbStore> store_;
  std::vector<cairn::Versioned> got_;
};

class RocksEngine final : public Engine {
 public:
  explicit RocksEngine(std::string dir) : dir_(std::move(dir)) {}
  void open(bool durable) override {
    rocksdb::Options o;
    o.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    const rocksdb::Status s = rocksdb::DB::Open(o, dir_, &db);
    if (!s.ok()) throw std::runtime_error("rocksdb open: " + s.ToString());
    db_.reset(db);
    write_.sync = durable;
  }
  void close() override {
    if (db_) {
      const rocksdb::Status s = db_->Close();
      if (!s.ok()) throw std::runtime_error("rocksdb close: " + s.ToString());
    }
    db_.reset();
  }
  void put(const std::string& key, const std::string& value, uint64_t) override {
    const rocksdb::Status s = db_->Put(write_, key, value);
    if (!s.ok()) throw std::runtime_error("rocksdb put: " + s.ToString());
  }
  void read_modify_write(const std::string& key, const std::string& value, uint64_t n) override {
    get(key);
    put(key, value, n);
  }
  bool get(const std::string& key) override {
    const rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), key, &got_);
    if (!s.ok() && !s.IsNotFound()) throw std::runtime_error("rocksdb get: " + s.ToString());
    return s.ok();
  }

 private:
  std::string dir_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_;
  std::string got_;
};

uint64_t disk_bytes(const std::string& dir) {
  uint64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) total += e.file_size();
  }
  return total;
}

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr,
               "engine-compare: %s\n"
               "usage: engine-compare --engine log|rocksdb|lmdb --keys N [--ops M] "
               "[--durable-ops K] [--dir DIR] [--compaction on|off]\n",
               why.c_str());
  std::exit(2);
}

uint64_t number(const char* flag, const char* text) {
  char* end = nullptr;
  const unsigned long long n = std::strtoull(text, &end, 10);
  if (end == text || *end != '\0') usage(std::string(flag) + " needs a number, found '" + text + "'");
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string engine_name, dir = "/tmp";
  bool compaction = true;
  uint64_t keys = 0, ops = 1'000'000, durable_ops = 2000;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("the log engine beside RocksDB and LMDB");
    if (i + 1 >= argc) usage(flag + " needs a value");
    const char* v = argv[++i];
    if (flag == "--engine") {
      engine_name = v;
    } else if (flag == "--keys") {
      keys = number("--keys", v);
    } else if (flag == "--ops") {
      ops = number("--ops", v);
    } else if (flag == "--durable-ops") {
      durable_ops = number("--durable-ops", v);
    } else if (flag == "--dir") {
      dir = v;
    } else if (flag == "--compaction") {
      if (std::string(v) != "on" && std::string(v) != "off") usage("--compaction must be on or off");
      compaction = std::string(v) == "on";
    } else {
      usage("unknown flag " + flag);
    }
  }
  if (keys == 0) usage("--keys is required and above 0");
  const std::string path = dir + "/engine-compare-" + engine_name + "-" + std::to_string(::getpid());
  std::unique_ptr<Engine> engine;
  if (engine_name == "log") {
    engine = std::make_unique<LogEngine>(path, compaction);
  } else if (engine_name == "rocksdb") {
    engine = std::make_unique<RocksEngine>(path);
  } else if (engine_name == "lmdb") {
    engine = std::make_unique<LmdbEngine>(path);
  } else {
    usage("--engine must be log, rocksdb or lmdb");
  }
  fs::remove_all(path);
  fs::create_directories(path);

  // The keys, and a random order to fill them in.
  std::mt19937_64 rng(42);
  // Key i: an 8-byte random-looking prefix (a mix of i) and i itself, made
  // when it is used, so that the harness touches no memory of its own per
  // operation (a table of 16-byte std::strings costs two cache misses a
  // key: they are one byte too long to be held inline). The reference
  // returned is one buffer, rewritten by the next call: use the key before
  // asking for another.
  const uint64_t key_seed = rng();
  std::string key_buffer(16, '\0');
  auto key_at = [&](uint64_t i) -> const std::string& {
    uint64_t z = i + key_seed + 0x9e3779b97f4a7c15ULL;  // splitmix64
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    std::memcpy(key_buffer.data(), &z, 8);
    std::memcpy(key_buffer.data() + 8, &i, 8);
    return key_buffer;
  };
  std::vector<uint32_t> order(keys);
  for (uint32_t i = 0; i < keys; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  // Values: 100 random bytes (so that RocksDB's Snappy finds nothing to
  // compress), one of 4096 per put.
  std::vector<std::string> values(4096, std::string(100, '\0'));
  for (std::string& v : values) {
    for (char& c : v) c = static_cast<char>(rng());
  }
  size_t value_at = 0;
  auto next_value = [&]() -> const std::string& { return values[value_at++ % values.size()]; };
  uint64_t n = 1;  // clocks: every put newer than the last
  auto random_key = [&]() -> const std::string& { return key_at(rng() % keys); };
  // Progress on stderr, with the page faults and context switches of the
  // phase before.
  rusage last_usage{};
  auto progress = [&](const char* phase) {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    std::fprintf(stderr, "engine-compare %s %llu keys: %s (%ld faults, %ld switches before)\n",
                 engine_name.c_str(), static_cast<unsigned long long>(keys), phase,
                 u.ru_minflt - last_usage.ru_minflt,
                 (u.ru_nvcsw + u.ru_nivcsw) - (last_usage.ru_nvcsw + last_usage.ru_nivcsw));
    last_usage = u;
  };

  engine->open(false);
  progress("fill");
  auto t = Clock::now();
  for (uint32_t i : order) engine->put(key_at(i), next_value(), n++);
  const double fill_s = seconds_since(t);

  progress("put");
  t = Clock::now();
  for (uint64_t i = 0; i < ops; ++i) engine->put(random_key(), next_value(), n++);
  const double put_s = seconds_since(t);

  progress("rmw");
  t = Clock::now();
  for (uint64_t i = 0; i < ops; ++i) engine->read_modify_write(random_key(), next_value(), n++);
  const double rmw_s = seconds_since(t);

  progress("get");
  uint64_t missing = 0;
  for (uint64_t i = 0; i < ops / 4; ++i) missing += !engine->get(random_key());
  std::vector<uint32_t> latency(ops);
  t = Clock::now();
  for (uint64_t i = 0; i < ops; ++i) {
    const std::string& k = random_key();
    const auto a = Clock::now();
    missing += !engine->get(k);
    latency[i] = static_cast<uint32_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - a).count());
  }
  const double get_s = seconds_since(t);
  std::sort(latency.begin(), latency.end());
  auto pct = [&](double p) { return latency[std::min<size_t>(latency.size() - 1, size_t(p * double(latency.size())))]; };

  progress("mix");
  t = Clock::now();
  for (uint64_t i = 0; i < ops; ++i) {
    if (rng() & 1) {
      missing += !engine->get(random_key());
    } else {
      engine->put(random_key(), next_value(), n++);
    }
  }
  const double mix_s = seconds_since(t);
  if (missing != 0) {
    std::fprintf(stderr, "engine-compare: %llu gets found nothing\n", static_cast<unsigned long long>(missing));
    return 1;
  }

  progress("open");
  engine->close();
  const uint64_t disk = disk_bytes(path);
  t = Clock::now();
  engine->open(false);
  const double open_s = seconds_since(t);
  for (int i = 0; i < 1000; ++i) {
    if (!engine->get(random_key())) {
      std::fprintf(stderr, "engine-compare: a key is missing after reopening\n");
      return 1;
    }
  }
  engine->close();

  progress("durable");
  engine->open(true);
  t = Clock::now();
  for (uint64_t i = 0; i < durable_ops; ++i) engine->put(random_key(), next_value(), n++);
  const double durable_s = seconds_since(t);
  engine->close();
  fs::remove_all(path);
  progress("done");

  auto rate = [](uint64_t count, double s) { return s > 0 ? double(count) / s : 0.0; };
  std::printf(
      "{\"engine\": \"%s\", \"keys\": %llu, \"ops\": %llu, \"fill_ops\": %.0f, \"put_ops\": %.0f, "
      "\"rmw_ops\": %.0f, "
      "\"get_ops\": %.0f, \"get_p50_ns\": %u, \"get_p99_ns\": %u, \"get_p999_ns\": %u, "
      "\"mix_ops\": %.0f, \"open_s\": %.3f, \"durable_put_ops\": %.0f, \"disk_bytes\": %llu%s}\n",
      engine_name.c_str(), static_cast<unsigned long long>(keys), static_cast<unsigned long long>(ops),
      rate(keys, fill_s), rate(ops, put_s), rate(ops, rmw_s), rate(ops, get_s), pct(0.5), pct(0.99), pct(0.999),
      rate(ops, mix_s), open_s, rate(durable_ops, durable_s), static_cast<unsigned long long>(disk),
      engine->report().c_str());
  return 0;
}

// Runs the conformance suite over every in-process store: each engine, and
// each layer stacked over the memory engine, plus stacks built from YAML.

#include "cairn/config.h"
#include "cairn/compression_store.h"
#include "cairn/fault_store.h"
#include "cairn/lmdb_store.h"
#include "cairn/log_store.h"
#include "cairn/logging_store.h"
#include "cairn/memory_store.h"
#include "cairn/resolving_store.h"
#include "cairn/stats_store.h"
#include "cairn/ttl_store.h"
#include "layers/compression/codecs.h"
#include "tests/conformance/conformance.h"

namespace cairn::testing {
namespace {

std::unique_ptr<Store> memory(const std::string&) {
  return std::make_unique<MemoryStore>();
}

std::unique_ptr<Store> lmdb(const std::string& dir, LmdbOptions::Durability d, bool write_map) {
  LmdbOptions o;
  o.path = dir + "/lmdb";
  o.durability = d;
  o.write_map = write_map;
  o.map_size = 8 << 20;  // small, so that the 16 MiB value forces the map to grow
  return std::make_unique<LmdbStore>(o);
}

// Builds the store `s` of a YAML config whose paths are relative to `dir`.
std::unique_ptr<Store> from_yaml(const std::string& dir, std::string yaml) {
  for (size_t at; (at = yaml.find("$DIR")) != std::string::npos;) yaml.replace(at, 4, dir);
  return Config::parse(yaml, "conformance.yaml").open("s");
}

// A cluster for routed stores in-process (the addresses are never dialled:
// each node's replica is an engine below `route`).
constexpr char kThreeNodes[] = R"(
cluster:
  partitions: 16
  nodes:
    - {id: 1, address: 127.0.0.1:1}
    - {id: 2, address: 127.0.0.1:2}
    - {id: 3, address: 127.0.0.1:3}
)";

constexpr size_t kCompressedLimit = CompressionOptions().max_value_size;

std::unique_ptr<Store> compressed(const std::string& dir, internal::Codec codec) {
  CompressionOptions o;
  o.name = "s";
  o.codec = codec;
  o.level = internal::default_level(codec);
  return std::make_unique<CompressionStore>(memory(dir), o);
}

std::unique_ptr<Store> resolving(const std::string& dir, ResolvingStore::Strategy strategy) {
  // A merge that keeps one of the siblings (the greatest value): what the
  // conformance checks of a resolving store can recognise.
  static const bool registered = [] {
    register_merge("conformance-max", [](std::span<const Versioned> siblings) {
      std::string best;
      for (const Versioned& v : siblings) best = std::max(best, v.value);
      return best;
    });
    return true;
  }();
  (void)registered;
  if (strategy != ResolvingStore::Strategy::kCustom) {
    return std::make_unique<ResolvingStore>(memory(dir), strategy);
  }
  return from_yaml(dir, "stores:\n  s:\n    stack: [{resolve: {custom: conformance-max}}, "
                        "{engine: memory}]\n");
}

const StoreFactory kStores[] = {
    {"memory", memory, false},
    {"memory_one_shard",
     [](const std::string&) {
       MemoryOptions o;
       o.shards = 1;
       return std::make_unique<MemoryStore>(o);
     },
     false},
    {"lmdb_sync", [](const std::string& d) { return lmdb(d, LmdbOptions::Durability::kSync, false); },
     true},
    {"lmdb_nosync",
     [](const std::string& d) { return lmdb(d, LmdbOptions::Durability::kNoSync, false); }, true},
    {"lmdb_nosync_writemap",
     [](const std::string& d) { return lmdb(d, LmdbOptions::Durability::kNoSync, true); }, true},
    {"stats_over_memory",
     [](const std::string& d) { return std::make_unique<StatsStore>(memory(d), "s"); }, false},
    {"faults_over_memory",  // no faults set: a pure pass-through
     [](const std::string& d) {
       return std::make_unique<FaultStore>(memory(d), FaultStore::kAll, std::chrono::milliseconds(0),
                                           FaultStore::Failure::kNone);
     },
     false},
    {"logging_over_memory",
     [](const std::string& d) {
       // Logs at debug, below the default threshold: the layer's work runs,
       // the test output stays readable.
       return std::make_unique<LoggingStore>(memory(d), LoggingOptions{"s", LogLevel::kDebug, {}});
     },
     false},
    {"yaml_stats_logging_lmdb",
     [](const std::string& d) {
       return from_yaml(d, R"(
stores:
  s:
    stack:
      - stats
      - logging: {level: debug}
      - engine: {lmdb: {path: "$DIR/{store}", durability: nosync, map_size: 8MiB}}
)");
     },
     true},
    {"yaml_memory_small_limits",
     [](const std::string& d) {
       return from_yaml(d, R"(
stores:
  s:
    stack:
      - engine: {memory: {max_key_size: 64, max_value_size: 2MiB, shards: 4}}
)");
     },
     false, 64, 2 << 20},
    // The compress layer's value limit leaves room for its header under the
    // engine's.
    {"compress_zstd_over_memory",
     [](const std::string& d) { return compressed(d, internal::Codec::kZstd); }, false, 511,
     kCompressedLimit},
    {"compress_lz4_over_memory",
     [](const std::string& d) { return compressed(d, internal::Codec::kLz4); }, false, 511,
     kCompressedLimit},
    {"compress_snappy_over_memory",
     [](const std::string& d) { return compressed(d, internal::Codec::kSnappy); }, false, 511,
     kCompressedLimit},
    {"compress_gzip_over_memory",
     [](const std::string& d) { return compressed(d, internal::Codec::kGzip); }, false, 511,
     kCompressedLimit},
    {"resolve_vector_clock_over_memory",
     [](const std::string& d) { return resolving(d, ResolvingStore::Strategy::kVectorClock); },
     false},
    {"resolve_timestamp_over_memory",
     [](const std::string& d) { return resolving(d, ResolvingStore::Strategy::kTimestamp); },
     false, 511, 16 << 20, /*resolves=*/true},
    {"resolve_custom_over_memory",
     [](const std::string& d) { return resolving(d, ResolvingStore::Strategy::kCustom); }, false,
     511, 16 << 20, /*resolves=*/true},
    {"yaml_client_stack_lmdb",
     [](const std::string& d) {
       // What a client's stack of issue 3 looks like: resolution over
       // compression (every value compressed) over a persistent engine.
       return from_yaml(d, R"(
stores:
  s:
    key: identity
    value: identity
    stack:
      - resolve: vector-clock
      - compress: {codec: lz4, level: 9, min_size: 0}
      - stats
      - engine: {lmdb: {path: "$DIR/{store}", durability: nosync, map_size: 8MiB}}
)");
     },
     true, 511, kCompressedLimit},
    {"log_none",
     [](const std::string& d) {
       LogOptions o;
       o.name = "s";
       o.path = d + "/log";
       o.max_file_size = 1 << 20;  // small, so that the suite crosses files
       return std::make_unique<LogStore>(o);
     },
     true},
    {"yaml_log_always",
     [](const std::string& d) {
       return from_yaml(d, "stores:\n  s:\n    stack: [{engine: {log: {path: \"$DIR/log\", "
                           "sync: always, max_file_size: 64KiB, compaction_threshold: 0.3, "
                           "compaction_rate: 64MiB, flush_bytes: 1MiB}}}]\n");
     },
     true},
    // The routing layer in-process: three nodes whose replicas are engines
    // of their own ("{node}" below `route` is the node a copy is for).
    {"route_n3r2w2_over_memory",
     [](const std::string& d) {
       return from_yaml(d, std::string(kThreeNodes) + R"(
stores:
  s:
    replication: {n: 3, r: 2, w: 2}
    stack: [route, {engine: memory}]
)");
     },
     false, 511, 16 << 20, false, /*stamps=*/true, /*tombstones=*/true},
    {"route_n3r1w3_over_lmdb",
     [](const std::string& d) {
       return from_yaml(d, std::string(kThreeNodes) + R"(
stores:
  s:
    replication: {n: 3, r: 1, w: 3}
    stack:
      - route: {timeout_ms: 20000}
      - engine: {lmdb: {path: "$DIR/node-{node}", durability: nosync, map_size: 8MiB}}
)");
     },
     true, 511, 16 << 20, false, /*stamps=*/true, /*tombstones=*/true},
    // Issue 18: keys that expire. The ttl layer's header leaves room under
    // the engine's value limit as compression's does.
    {"ttl_over_memory",
     [](const std::string&) -> std::unique_ptr<Store> {
       return std::make_unique<TtlStore>(memory(""), TtlOptions{.name = "s", .sweep_interval_ms = 0});
     },
     false, 511, kCompressedLimit, false, false, false, /*ttl=*/true},
    {"yaml_ttl_over_log",
     [](const std::string& d) {
       return from_yaml(d, "stores:\n  s:\n    stack: [{ttl: {sweep_interval_ms: 0}}, "
                           "{engine: {log: {path: \"$DIR/log\", max_file_size: 1MiB}}}]\n");
     },
     true, 511, kCompressedLimit, false, false, false, /*ttl=*/true},
    {"ttl_over_route_n3r2w2_over_memory",
     [](const std::string& d) {
       return from_yaml(d, std::string(kThreeNodes) + R"(
stores:
  s:
    replication: {n: 3, r: 2, w: 2}
    stack: [ttl, route, {engine: memory}]
)");
     },
     false, 511, kCompressedLimit, false, /*stamps=*/true, /*tombstones=*/true, /*ttl=*/true},
};

INSTANTIATE_TEST_SUITE_P(Local, Conformance, ::testing::ValuesIn(kStores), factory_name);

}  // namespace
}  // namespace cairn::testing

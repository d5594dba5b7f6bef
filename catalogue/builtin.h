// The factories behind the names a config file may use: each builds one
// engine, layer or serializer from its parameters. default_registry()
// (catalogue/builtin.cc) registers them all; each is defined beside the
// class it builds. Internal: users reach these through config files, or
// build the classes of <cairn/...> directly.

#ifndef CAIRN_CATALOGUE_BUILTIN_H_
#define CAIRN_CATALOGUE_BUILTIN_H_

#include <memory>

#include "cairn/registry.h"
#include "cairn/serializer.h"
#include "cairn/store.h"

namespace cairn {

// Registers every built-in name in `registry` (default_registry() is one
// registry so filled).
void add_builtins(LayerRegistry& registry);

// Engines: the bottom of a stack.

// engine: {memory: {shards: 64, max_key_size: 511, max_value_size: 16MiB}}
std::unique_ptr<Store> make_memory_engine(const Params& params);
// Every LmdbOptions field has a parameter of the same name (durability:
// sync | nosync; sizes take KiB/MiB/GiB):
//   engine: {lmdb: {path: data/{store}, durability: nosync, map_size: 1GiB}}
std::unique_ptr<Store> make_lmdb_engine(const Params& params);
// engine: {log: {path: DIR, sync: none|always, max_file_size: 64MiB, ...}}
std::unique_ptr<Store> make_log_engine(const Params& params);
// A read-only store's versions, served mapped (cairn/readonly_store.h):
//   engine: {readonly: {path: DIR, keep: 2, verify_on_swap: true}}
std::unique_ptr<Store> make_readonly_engine(const Params& params);
// The network leaf of a client's stack:
//   grpc: {targets: [127.0.0.1:7070], timeout_ms: 5000, retries: 2}
std::unique_ptr<Store> make_grpc_engine(const Params& params);

// Layers.

// ttl: {seconds: 3600, sweep_interval_ms: 60000, sweep_rate: 10000}
std::unique_ptr<Store> make_ttl_layer(std::unique_ptr<Store> inner, const Params& params);
// stats (no parameters)
std::unique_ptr<Store> make_stats_layer(std::unique_ptr<Store> inner, const Params& params);
// faults: {delay_ms: 300, ops: "put,remove", fail: none}
std::unique_ptr<Store> make_faults_layer(std::unique_ptr<Store> inner, const Params& params);
// logging: {level: debug | info, slow_ms: 0}
std::unique_ptr<Store> make_logging_layer(std::unique_ptr<Store> inner, const Params& params);
// resolve: vector-clock | timestamp
// resolve: {custom: NAME}      (NAME registered with register_merge)
std::unique_ptr<Store> make_resolving_layer(std::unique_ptr<Store> inner, const Params& params);
// compress: zstd
// compress: {codec: zstd | lz4 | snappy | gzip, level: N, min_size: 64, max_value_size: 16MiB}
std::unique_ptr<Store> make_compression_layer(std::unique_ptr<Store> inner, const Params& params);
// route: {timeout_ms: 5000, ban_ms: 1000, probe_interval_ms: 1000, read_hedge_ms: 50,
//         read_repair: true, read_repair_chance: 0.1}
// (RouteContext: core/config_internal.h)
std::unique_ptr<Store> make_cache_layer(std::unique_ptr<Store> inner, const Params& params);
std::unique_ptr<Store> make_routed_layer(const RouteContext& ctx);

// Serializers, named by a store's `key:` and `value:`.
std::shared_ptr<const AnySerializer> make_identity_serializer(const Params& params);
std::shared_ptr<const AnySerializer> make_string_serializer(const Params& params);
std::shared_ptr<const AnySerializer> make_int_serializer(const Params& params);
std::shared_ptr<const AnySerializer> make_json_serializer(const Params& params);
std::shared_ptr<const AnySerializer> make_protobuf_serializer(const Params& params);

}  // namespace cairn

#endif  // CAIRN_CATALOGUE_BUILTIN_H_

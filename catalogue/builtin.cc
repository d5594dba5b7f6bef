// default_registry(): every built-in name a config file may use. It lives
// above core/ so that the registry itself knows no engine or layer.

#include "catalogue/builtin.h"

#include "core/config_internal.h"

namespace cairn {

void add_builtins(LayerRegistry& registry) {
  LayerRegistry* r = &registry;
  // Engines: the bottom of a stack.
  r->add_engine("memory", make_memory_engine, "in-memory sharded hash table");
  r->add_engine("lmdb", make_lmdb_engine, "LMDB environment on disk");
  r->add_engine("log", make_log_engine,
                "append-only data files and an in-memory index (HaloDB's design)");
  r->add_engine("readonly", make_readonly_engine,
                "versions built offline (cairn build-readonly), served mapped, swapped whole");
  r->add_engine("grpc", make_grpc_engine, "a cairn server over the network (the client's leaf)");
  // Layers, in the order a stack usually lists them.
  r->add_layer("ttl", make_ttl_layer, "versions expire a time after their write (swept, reaped)");
  r->add_layer("resolve", make_resolving_layer, "settles concurrent versions on read");
  r->add_layer("cache", make_cache_layer,
               "keeps what it reads, invalidated by the key's replicas (strict or lazy)");
  r->add_layer("stats", make_stats_layer, "op counts, errors and latency percentiles");
  r->add_layer("logging", make_logging_layer, "one log line per operation (or per slow one)");
  r->add_layer("compress", make_compression_layer, "compresses values (zstd, lz4, snappy, gzip)");
  r->add_layer("faults", make_faults_layer, "injects delays and failures (for tests)");
  ConfigInternal::set_router(
      *r, make_routed_layer,
      "sends each key to its N replicas on the ring; R/W quorums, read repair, hints");
  // Serializers, named by a store's `key:` and `value:`.
  r->add_serializer("identity", make_identity_serializer, "bytes as they are");
  r->add_serializer("string", make_string_serializer, "UTF-8 text");
  for (const char* name : {"int8", "int16", "int32", "int64"}) {
    r->add_serializer(name, make_int_serializer, "big-endian fixed-width integer");
  }
  r->add_serializer("json", make_json_serializer, "schema'd binary JSON (Voldemort's format)");
  r->add_serializer("protobuf", make_protobuf_serializer, "a protobuf message, wire-encoded");
}

LayerRegistry& default_registry() {
  static LayerRegistry* registry = [] {
    auto* r = new LayerRegistry;
    add_builtins(*r);
    return r;
  }();
  return *registry;
}

}  // namespace cairn

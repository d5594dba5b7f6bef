#include "cairn/registry.h"

#include <algorithm>
#include <cassert>

#include "engines/lmdb/lmdb_store.h"
#include "engines/log/log_store.h"
#include "engines/memory/memory_store.h"
#include "layers/compression/compression_store.h"
#include "layers/faults/fault_store.h"
#include "layers/grpc/grpc_store.h"
#include "layers/logging/logging_store.h"
#include "layers/stats/stats_store.h"
#include "layers/versioning/resolving_store.h"
#include "routing/routed_store.h"

namespace cairn {

void LayerRegistry::add_layer(std::string name, LayerFactory factory, std::string summary) {
  assert(!layers_.contains(name) && !engines_.contains(name));
  layers_.emplace(std::move(name), std::pair(std::move(factory), std::move(summary)));
}

void LayerRegistry::add_engine(std::string name, EngineFactory factory, std::string summary) {
  assert(!layers_.contains(name) && !engines_.contains(name));
  engines_.emplace(std::move(name), std::pair(std::move(factory), std::move(summary)));
}

void LayerRegistry::add_serializer(std::string name, SerializerFactory factory,
                                   std::string summary) {
  assert(!serializers_.contains(name));
  serializers_.emplace(std::move(name), std::pair(std::move(factory), std::move(summary)));
}

void LayerRegistry::set_router(RouteFactory factory, std::string summary) {
  router_ = std::move(factory);
  router_summary_ = std::move(summary);
}

const SerializerFactory* LayerRegistry::serializer(std::string_view name) const {
  auto it = serializers_.find(name);
  return it == serializers_.end() ? nullptr : &it->second.first;
}

std::vector<std::pair<std::string, std::string>> LayerRegistry::serializers() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, entry] : serializers_) out.emplace_back(name, entry.second);
  return out;
}

const LayerFactory* LayerRegistry::layer(std::string_view name) const {
  auto it = layers_.find(name);
  return it == layers_.end() ? nullptr : &it->second.first;
}

const EngineFactory* LayerRegistry::engine(std::string_view name) const {
  auto it = engines_.find(name);
  return it == engines_.end() ? nullptr : &it->second.first;
}

std::vector<std::pair<std::string, std::string>> LayerRegistry::layers() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, entry] : layers_) out.emplace_back(name, entry.second);
  if (router_) out.emplace_back("route", router_summary_);
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::pair<std::string, std::string>> LayerRegistry::engines() const {
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [name, entry] : engines_) out.emplace_back(name, entry.second);
  return out;
}

LayerRegistry& default_registry() {
  static LayerRegistry* registry = [] {
    auto* r = new LayerRegistry;
    // Engines: the bottom of a stack.
    r->add_engine("memory", make_memory_engine, "in-memory sharded hash table");
    r->add_engine("lmdb", make_lmdb_engine, "LMDB environment on disk");
    r->add_engine("log", make_log_engine,
                  "append-only data files and an in-memory index (HaloDB's design; first cut)");
    r->add_engine("grpc", make_grpc_engine, "a cairn server over the network (the client's leaf)");
    // Layers, in the order a stack usually lists them.
    r->add_layer("resolve", make_resolving_layer, "settles concurrent versions on read");
    r->add_layer("stats", make_stats_layer, "op counts, errors and latency percentiles");
    r->add_layer("logging", make_logging_layer, "one log line per operation (or per slow one)");
    r->add_layer("compress", make_compression_layer, "compresses values (zstd, lz4, snappy, gzip)");
    r->add_layer("faults", make_faults_layer, "injects delays and failures (for tests)");
    r->set_router(make_routed_layer,
                  "sends each key to its N replicas on the ring; R/W quorums, read repair, hints");
    // Serializers, named by a store's `key:` and `value:`.
    r->add_serializer("identity", make_identity_serializer, "bytes as they are");
    r->add_serializer("string", make_string_serializer, "UTF-8 text");
    for (const char* name : {"int8", "int16", "int32", "int64"}) {
      r->add_serializer(name, make_int_serializer, "big-endian fixed-width integer");
    }
    r->add_serializer("json", make_json_serializer, "schema'd binary JSON (Voldemort's format)");
    r->add_serializer("protobuf", make_protobuf_serializer, "a protobuf message, wire-encoded");
    return r;
  }();
  return *registry;
}

}  // namespace cairn

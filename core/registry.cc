#include "cairn/registry.h"

#include <algorithm>

#include "cairn/errors.h"
#include "core/config_internal.h"

namespace cairn {

namespace {

// A name used twice would silently keep one factory: refuse it.
void check_free(bool taken, const std::string& kind, const std::string& name) {
  if (taken) throw InvalidArgument("registry: " + kind + " '" + name + "' is already registered");
}

}  // namespace

void LayerRegistry::add_layer(std::string name, LayerFactory factory, std::string summary) {
  check_free(layers_.contains(name) || engines_.contains(name) || name == "route", "layer", name);
  layers_.emplace(std::move(name), std::pair(std::move(factory), std::move(summary)));
}

void LayerRegistry::add_engine(std::string name, EngineFactory factory, std::string summary) {
  check_free(layers_.contains(name) || engines_.contains(name) || name == "route", "engine", name);
  engines_.emplace(std::move(name), std::pair(std::move(factory), std::move(summary)));
}

void LayerRegistry::add_serializer(std::string name, SerializerFactory factory,
                                   std::string summary) {
  check_free(serializers_.contains(name), "serializer", name);
  serializers_.emplace(std::move(name), std::pair(std::move(factory), std::move(summary)));
}

void ConfigInternal::set_router(LayerRegistry& registry, RouteFactory factory,
                                std::string summary) {
  registry.router_ = std::move(factory);
  registry.router_summary_ = std::move(summary);
}

const RouteFactory* ConfigInternal::router(const LayerRegistry& registry) {
  return registry.router_ ? &registry.router_ : nullptr;
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

}  // namespace cairn

#include "metadata/move_record.h"

#include <yaml-cpp/yaml.h>

#include <map>

#include "cairn/errors.h"
#include "cairn/json.h"
#include "cairn/ring.h"
#include "core/config_internal.h"
#include "metadata/etcd_client.h"
#include "metadata/liveness.h"
#include "routing/rebalance.h"

namespace cairn::internal {

YAML::Node nodes_yaml(const std::vector<NodeInfo>& nodes) {
  YAML::Node list(YAML::NodeType::Sequence);
  for (const NodeInfo& n : nodes) {
    YAML::Node node;
    node["id"] = n.id;
    node["address"] = n.address;
    if (!n.zone.empty()) node["zone"] = n.zone;
    YAML::Node partitions(YAML::NodeType::Sequence);
    partitions.SetStyle(YAML::EmitterStyle::Flow);
    for (uint32_t p : n.partitions) partitions.push_back(p);
    node["partitions"] = partitions;
    list.push_back(node);
  }
  return list;
}

std::vector<NodeInfo> nodes_from(const YAML::Node& list) {
  std::vector<NodeInfo> out;
  for (const auto& n : list) {
    NodeInfo info;
    info.id = n["id"].as<NodeId>();
    info.address = n["address"].as<std::string>();
    if (n["zone"]) info.zone = n["zone"].as<std::string>();
    for (const auto& p : n["partitions"]) info.partitions.push_back(p.as<uint32_t>());
    out.push_back(std::move(info));
  }
  return out;
}

std::string MoveRecord::encode() const {
  YAML::Node r;
  r["from_version"] = from_version;
  r["before"] = nodes_yaml(before);
  r["copied"] = YAML::Node(YAML::NodeType::Sequence);
  for (const std::string& c : copied) r["copied"].push_back(c);
  r["switched"] = switched;
  r["dropped"] = YAML::Node(YAML::NodeType::Sequence);
  for (const std::string& d : dropped) r["dropped"].push_back(d);
  r["keys"] = keys;
  r["bytes"] = bytes;
  YAML::Emitter out;
  out << r;
  return out.c_str();
}

MoveRecord MoveRecord::decode(const std::string& text) {
  try {
    const YAML::Node r = YAML::Load(text);
    MoveRecord out;
    out.from_version = r["from_version"].as<int64_t>();
    out.before = nodes_from(r["before"]);
    for (const auto& c : r["copied"]) out.copied.insert(c.as<std::string>());
    out.switched = r["switched"].as<bool>();
    for (const auto& d : r["dropped"]) out.dropped.insert(d.as<std::string>());
    out.keys = r["keys"].as<uint64_t>();
    out.bytes = r["bytes"].as<uint64_t>();
    return out;
  } catch (const YAML::Exception& e) {
    throw Corruption(std::string("the rebalance record in etcd is malformed: ") + e.what());
  }
}

namespace {

Json nodes_json(const std::vector<NodeInfo>& nodes, const std::map<NodeId, EtcdLiveness::Alive>* alive) {
  Json::Array out;
  for (const NodeInfo& n : nodes) {
    Json::Array partitions;
    for (uint32_t p : n.partitions) partitions.emplace_back(p);
    Json node = Json::object({{"id", n.id}, {"address", n.address}, {"zone", n.zone},
                              {"partitions", Json(std::move(partitions))}});
    if (alive != nullptr) {
      auto it = alive->find(n.id);
      node["lease"] = it != alive->end();
      node["routes_by"] = it != alive->end() ? Json(it->second.version) : Json();
    }
    out.push_back(std::move(node));
  }
  return Json(std::move(out));
}

}  // namespace

std::string cluster_status_json(EtcdClient& etcd, const std::string& prefix) {
  const std::string key = prefix + "config";
  const std::optional<EtcdClient::Entry> entry = etcd.get(key);
  if (!entry) throw NotFound("etcd has no cluster config at '" + key + "'");
  const Config config = Config::parse(entry->value, "etcd:" + key);
  const std::map<NodeId, EtcdLiveness::Alive> alive = EtcdLiveness::read_all(etcd, prefix);
  const ClusterInfo& c = config.cluster();
  // The nodes as the ring has them (partitions listed even when the config
  // deals them out); a node joining shows in `moving_to`.
  const Ring ring(c);
  std::vector<NodeInfo> nodes = ring.to_cluster().nodes;
  Json out = Json::object({{"version", entry->mod_revision},
                           {"partitions", c.partitions},
                           {"nodes", nodes_json(nodes, &alive)},
                           {"moving_to", c.moving_to.empty() ? Json() : nodes_json(c.moving_to, &alive)},
                           {"rebalance", Json()}});
  if (const auto held = etcd.get(prefix + "rebalance")) {
    const MoveRecord r = MoveRecord::decode(held->value);
    const Ring before(ClusterInfo{c.partitions, r.before, {}});
    const Ring after = c.moving_to.empty() ? ring : Ring(ClusterInfo{c.partitions, c.moving_to, {}});
    size_t total = 0;
    for (const std::string& store : config.store_names()) {
      if (!ConfigInternal::partitioned(config, store)) continue;
      total += plan_rebalance(before, after, config.replication(store).n).moves.size();
    }
    out["rebalance"] = Json::object({{"from_version", r.from_version},
                                     {"switched", r.switched},
                                     {"copied", r.copied.size()},
                                     {"total", total},
                                     {"keys", r.keys},
                                     {"bytes", r.bytes}});
  }
  return out.dump();
}

}  // namespace cairn::internal

#include "cairn/config.h"

#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstring>
#include <cstdio>
#include <optional>
#include <set>

#include "cairn/errors.h"
#include "core/config_internal.h"
#include "core/security_config.h"
#include "layers/cache/directory.h"
#include "metadata/etcd_client.h"

namespace cairn {

namespace internal {

struct ParamsData {
  std::string file;
  std::string store;
  std::string node_id;  // the node a node stack is built for; empty otherwise
  const NodeInfo* routed_node = nullptr;  // below a client's route: the node reached
  std::string layer;
  YAML::Node node;   // a map, a scalar, or null when the layer has no value
  YAML::Mark where;  // the layer's entry in the stack
  mutable std::set<std::string, std::less<>> used;
  mutable bool scalar_used = false;
};

struct LayerEntry {
  std::string name;
  bool engine = false;
  YAML::Node params;
  YAML::Mark where;
};

// A store's `key:` or `value:` serializer: a name, or a map with `type:`.
struct SerializerSpec {
  std::string type = "identity";
  YAML::Node params;  // the map form's node ("type" excluded when read)
  YAML::Mark where;
};

// A stack, top to bottom; the last entry is the engine.
using Stack = std::vector<LayerEntry>;

struct StoreDef {
  std::string name;
  Stack stack;   // embedded: `stack:`
  Stack node;    // what each node of a cluster runs: `node:`
  Stack client;  // what a client runs to reach the cluster: `client:`
  SerializerSpec key, value;
  Replication replication;
  YAML::Mark where;
};

struct ConfigData : std::enable_shared_from_this<ConfigData> {
  std::string source;
  MetadataOrigin origin;
  ClusterInfo cluster;
  YAML::Mark cluster_where;
  ServerTls tls;  // `cluster: tls:`, {node} not yet expanded
  StoreDef hints;  // `cluster: hints:` (its stack), named "hints"
  std::vector<StoreDef> stores;
  SecurityConfig security;  // `security:`
};

}  // namespace internal

namespace {

using internal::ConfigData;
using internal::LayerEntry;
using internal::ParamsData;
using internal::SerializerSpec;
using internal::Stack;
using internal::StoreDef;
using internal::PrincipalDef;
using internal::SecurityConfig;

[[noreturn]] void fail_at(const std::string& file, const YAML::Mark& mark,
                          const std::string& what) {
  // yaml-cpp marks are 0-based; editors count from 1.
  const int line = mark.is_null() ? 0 : mark.line + 1;
  const int column = mark.is_null() ? 0 : mark.column + 1;
  throw ConfigError(file, line, column, what);
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "none" : out;
}

const char* kind_of(const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: return "a map";
    case YAML::NodeType::Sequence: return "a list";
    case YAML::NodeType::Scalar: return "a scalar";
    case YAML::NodeType::Null: return "nothing";
    default: return "an undefined node";
  }
}

// Rejects duplicate keys, which yaml-cpp accepts silently, and keys that are
// not plain names (a list or map used as a key).
void check_unique_keys(const std::string& file, const YAML::Node& map) {
  std::set<std::string> seen;
  for (const auto& kv : map) {
    if (!kv.first.IsScalar()) {
      fail_at(file, kv.first.Mark(), std::string("expected a name as key, found ") + kind_of(kv.first));
    }
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) {
      fail_at(file, kv.first.Mark(), "duplicate key '" + key + "'");
    }
  }
}

std::string layer_names(const LayerRegistry& r, bool engines) {
  std::vector<std::string> names;
  for (const auto& [name, summary] : engines ? r.engines() : r.layers()) names.push_back(name);
  return join(names);
}

LayerEntry parse_entry(const std::string& file, const std::string& store,
                       const YAML::Node& entry) {
  LayerEntry e;
  e.where = entry.Mark();
  const std::string shape =
      "expected a layer name or a one-key map `name: {params}` in the stack of store '" +
      store + "'";
  if (entry.IsScalar()) {
    e.name = entry.Scalar();
  } else if (entry.IsMap() && entry.size() == 1) {
    const auto kv = *entry.begin();
    if (!kv.first.IsScalar()) fail_at(file, kv.first.Mark(), shape);
    e.name = kv.first.Scalar();
    e.params = kv.second;
    e.where = kv.first.Mark();
  } else {
    fail_at(file, entry.Mark(), shape + ", found " + kind_of(entry) +
                                    (entry.IsMap() ? " with several keys" : ""));
  }
  if (e.name != "engine") return e;

  e.engine = true;
  const std::string engine_shape =
      "store '" + store +
      "': an engine is written `engine: memory` or `engine: {lmdb: {path: ...}}`";
  if (e.params.IsScalar()) {
    e.name = e.params.Scalar();
    e.params = YAML::Node();
  } else if (e.params.IsMap() && e.params.size() == 1) {
    const auto kv = *e.params.begin();
    e.where = kv.first.Mark();
    e.name = kv.first.Scalar();
    e.params = kv.second;
  } else {
    fail_at(file, e.params.IsNull() ? e.where : e.params.Mark(), engine_shape);
  }
  return e;
}

SerializerSpec parse_serializer(const std::string& file, const std::string& store,
                                const std::string& which, const YAML::Node& key,
                                const YAML::Node& spec) {
  SerializerSpec s;
  s.where = key.Mark();
  if (spec.IsScalar()) {
    s.type = spec.Scalar();
    s.where = spec.Mark();
    return s;
  }
  if (spec.IsMap()) {
    check_unique_keys(file, spec);
    const YAML::Node type = spec["type"];
    if (!type || !type.IsScalar()) {
      fail_at(file, spec.Mark(),
              "store '" + store + "': `" + which + "` needs `type:` (e.g. `type: json`)");
    }
    s.type = type.Scalar();
    s.where = type.Mark();
    s.params = spec;
    return s;
  }
  fail_at(file, spec.IsNull() ? key.Mark() : spec.Mark(),
          "store '" + store + "': `" + which +
              "` is a serializer name (identity, string, int64, ...) or a map with `type:`");
}

Stack parse_stack(const std::string& file, const std::string& name, const std::string& which,
                  const YAML::Node& stack) {
  if (!stack.IsSequence() || stack.size() == 0) {
    fail_at(file, stack.Mark(),
            "store '" + name + "': `" + which + "` must be a non-empty list of layers ending "
            "with an engine, found " + kind_of(stack));
  }
  Stack out;
  for (size_t i = 0; i < stack.size(); ++i) {
    LayerEntry e = parse_entry(file, name, stack[i]);
    const bool last = i + 1 == stack.size();
    if (e.engine && !last) {
      fail_at(file, e.where,
              "store '" + name + "': the engine must be the last entry of the stack (it is entry " +
                  std::to_string(i + 1) + " of " + std::to_string(stack.size()) + ")");
    }
    if (!e.engine && last) {
      fail_at(file, e.where,
              "store '" + name + "': the stack ends with layer '" + e.name +
                  "'; the last entry must be an engine, e.g. `- engine: memory`");
    }
    out.push_back(std::move(e));
  }
  return out;
}

// A non-negative integer scalar in [min, max], or a ConfigError saying `what`.
int64_t int_at(const std::string& file, const YAML::Node& n, int64_t min, int64_t max,
               const std::string& what) {
  int64_t v = -1;
  const std::string text = n.IsScalar() ? n.Scalar() : "";
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || p != text.data() + text.size() || text.empty() || v < min || v > max) {
    fail_at(file, n.Mark(), what);
  }
  return v;
}

// `replication: {n: 3, r: 2, w: 2}`: r and w default to a majority of n.
Replication parse_replication(const std::string& file, const std::string& store,
                              const YAML::Node& node) {
  const std::string shape = "store '" + store + "': `replication` is a map {n, r, w}";
  if (!node.IsMap()) fail_at(file, node.Mark(), shape + ", found " + kind_of(node));
  check_unique_keys(file, node);
  Replication out;
  bool has_n = false, has_r = false, has_w = false;
  for (const auto& kv : node) {
    const std::string k = kv.first.Scalar();
    const std::string what = "store '" + store + "': replication `" + k +
                             "` is an integer from 1 to 64";
    if (k == "n") {
      out.n = static_cast<int>(int_at(file, kv.second, 1, 64, what));
      has_n = true;
    } else if (k == "r") {
      out.r = static_cast<int>(int_at(file, kv.second, 1, 64, what));
      has_r = true;
    } else if (k == "w") {
      out.w = static_cast<int>(int_at(file, kv.second, 1, 64, what));
      has_w = true;
    } else {
      fail_at(file, kv.first.Mark(), shape + "; unknown key '" + k + "'");
    }
  }
  if (!has_n) fail_at(file, node.Mark(), shape + ": `n` is required");
  if (!has_r) out.r = out.n / 2 + 1;
  if (!has_w) out.w = out.n / 2 + 1;
  if (out.r > out.n || out.w > out.n) {
    fail_at(file, node.Mark(),
            "store '" + store + "': replication needs r <= n and w <= n (n=" +
                std::to_string(out.n) + ", r=" + std::to_string(out.r) + ", w=" +
                std::to_string(out.w) + ")");
  }
  return out;
}

StoreDef parse_store(const std::string& file, const std::string& name,
                     const YAML::Node& key, const YAML::Node& def) {
  if (!def.IsMap()) {
    fail_at(file, def.IsNull() ? key.Mark() : def.Mark(),
            "store '" + name + "': expected a map with a `stack` list, found " + kind_of(def));
  }
  check_unique_keys(file, def);
  StoreDef store;
  store.name = name;
  store.where = key.Mark();
  for (const auto& kv : def) {
    const std::string k = kv.first.Scalar();
    if (k == "stack") {
      store.stack = parse_stack(file, name, k, kv.second);
    } else if (k == "node") {
      store.node = parse_stack(file, name, k, kv.second);
    } else if (k == "client") {
      store.client = parse_stack(file, name, k, kv.second);
    } else if (k == "key" || k == "value") {
      (k == "key" ? store.key : store.value) = parse_serializer(file, name, k, kv.first, kv.second);
    } else if (k == "replication") {
      store.replication = parse_replication(file, name, kv.second);
    } else {
      fail_at(file, kv.first.Mark(),
              "store '" + name + "': unknown key '" + k +
                  "' (expected: key, value, replication, stack, node, client)");
    }
  }
  if (store.stack.empty() && store.node.empty() && store.client.empty()) {
    fail_at(file, key.Mark(),
            "store '" + name + "': missing `stack` list (or `node:` and `client:` stacks)");
  }
  return store;
}

// `tls: {cert: FILE, key: FILE, ca: FILE}`: cert and key together; ca
// optional (it makes the TLS mutual).
ServerTls parse_tls(const std::string& file, const YAML::Node& tls) {
  if (!tls.IsMap()) {
    fail_at(file, tls.Mark(), std::string("cluster: `tls` must be a map {cert, key, ca}, found ") +
                                  kind_of(tls));
  }
  check_unique_keys(file, tls);
  ServerTls out;
  for (const auto& kv : tls) {
    const std::string k = kv.first.Scalar();
    if (!kv.second.IsScalar() || kv.second.Scalar().empty()) {
      fail_at(file, kv.second.Mark(), "cluster: tls `" + k + "` must be a file name");
    }
    if (k == "cert") {
      out.cert = kv.second.Scalar();
    } else if (k == "key") {
      out.key = kv.second.Scalar();
    } else if (k == "ca") {
      out.ca = kv.second.Scalar();
    } else {
      fail_at(file, kv.first.Mark(), "cluster: unknown tls key '" + k + "' (expected: cert, key, ca)");
    }
  }
  if (out.cert.empty() != out.key.empty() || out.cert.empty()) {
    fail_at(file, tls.Mark(), "cluster: tls needs both `cert` and `key` (and optionally `ca`)");
  }
  return out;
}

// `security:` (core/security_config.h).
uint8_t parse_permissions(const std::string& file, const std::string& who, const YAML::Node& n) {
  std::vector<YAML::Node> items;
  if (n.IsScalar()) {
    items.push_back(n);
  } else if (n.IsSequence()) {
    for (const auto& item : n) items.push_back(item);
  } else {
    fail_at(file, n.Mark(), "security: " + who + ": permissions are a list of read, write, admin");
  }
  uint8_t out = internal::kNoPermission;
  for (const YAML::Node& item : items) {
    const std::string p = item.IsScalar() ? item.Scalar() : std::string();
    if (p == "read") {
      out |= internal::kRead;
    } else if (p == "write") {
      out |= internal::kWrite;
    } else if (p == "admin") {
      out |= internal::kAdmin;
    } else {
      fail_at(file, item.Mark(), "security: " + who + ": unknown permission '" + p +
                                     "' (expected: read, write, admin)");
    }
  }
  return out;
}

std::vector<std::string> scalar_list(const std::string& file, const std::string& what,
                                     const YAML::Node& n) {
  std::vector<std::string> out;
  if (n.IsScalar()) {
    out.push_back(n.Scalar());
  } else if (n.IsSequence()) {
    for (const auto& item : n) {
      if (!item.IsScalar() || item.Scalar().empty()) {
        fail_at(file, item.Mark(), "security: " + what + " must be a list of strings");
      }
      out.push_back(item.Scalar());
    }
  } else {
    fail_at(file, n.Mark(), "security: " + what + " must be a list of strings");
  }
  return out;
}

// "sha256:" and 64 hex digits, as `cairn admin token` prints it: the
// digest's 32 bytes. A token itself is refused: the config never holds one.
std::string parse_token_digest(const std::string& file, const std::string& who,
                               const YAML::Node& n, const std::string& text) {
  constexpr std::string_view kPrefix = "sha256:";
  auto hex = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  std::string digest;
  if (text.size() == kPrefix.size() + 64 && text.compare(0, kPrefix.size(), kPrefix) == 0) {
    for (size_t i = kPrefix.size(); i < text.size(); i += 2) {
      const int hi = hex(text[i]), lo = hex(text[i + 1]);
      if (hi < 0 || lo < 0) break;
      digest.push_back(static_cast<char>(hi * 16 + lo));
    }
  }
  if (digest.size() != 32) {
    fail_at(file, n.Mark(), "security: " + who + ": a token is given as its digest, \"sha256:\" "
                            "and 64 hex digits (`cairn admin token NAME` prints one), never as "
                            "the token itself");
  }
  return digest;
}

SecurityConfig parse_security(const std::string& file, const YAML::Node& sec) {
  if (!sec.IsMap()) {
    fail_at(file, sec.Mark(), std::string("`security` must be a map {open, node_name, "
                                          "principals}, found ") + kind_of(sec));
  }
  check_unique_keys(file, sec);
  SecurityConfig out;
  out.present = true;
  std::optional<YAML::Node> principals;  // (a copy shares the node; assignment would not)
  for (const auto& kv : sec) {
    const std::string k = kv.first.Scalar();
    if (k == "open") {
      if (!kv.second.IsScalar() || (kv.second.Scalar() != "true" && kv.second.Scalar() != "false")) {
        fail_at(file, kv.second.Mark(), "security: `open` must be true or false");
      }
      out.open = kv.second.Scalar() == "true";
    } else if (k == "node_name") {
      if (!kv.second.IsScalar() || kv.second.Scalar().find("{node}") == std::string::npos) {
        fail_at(file, kv.second.Mark(),
                "security: `node_name` must be a name with {node} in it (e.g. \"node{node}\")");
      }
      out.node_name = kv.second.Scalar();
    } else if (k == "principals") {
      principals.emplace(kv.second);
    } else {
      fail_at(file, kv.first.Mark(),
              "security: unknown key '" + k + "' (expected: open, node_name, principals)");
    }
  }
  if (principals) {
    if (!principals->IsMap()) {
      fail_at(file, principals->Mark(), "security: `principals` must map names to {tokens, certs, stores}");
    }
    check_unique_keys(file, *principals);
    for (const auto& kv : *principals) {
      PrincipalDef p;
      p.name = kv.first.Scalar();
      const std::string who = "principal '" + p.name + "'";
      if (p.name.empty()) fail_at(file, kv.first.Mark(), "security: a principal needs a name");
      if (!kv.second.IsMap()) {
        fail_at(file, kv.second.Mark(), "security: " + who + " must be a map {tokens, certs, stores}");
      }
      check_unique_keys(file, kv.second);
      for (const auto& field : kv.second) {
        const std::string f = field.first.Scalar();
        if (f == "tokens") {
          for (const std::string& t : scalar_list(file, who + " `tokens`", field.second)) {
            p.token_sha256.push_back(parse_token_digest(file, who, field.second, t));
          }
        } else if (f == "certs") {
          p.certs = scalar_list(file, who + " `certs`", field.second);
        } else if (f == "stores") {
          if (!field.second.IsMap()) {
            fail_at(file, field.second.Mark(),
                    "security: " + who + ": `stores` must map store names (or \"*\") to permissions");
          }
          check_unique_keys(file, field.second);
          for (const auto& grant : field.second) {
            p.stores.emplace_back(grant.first.Scalar(),
                                  parse_permissions(file, who, grant.second));
          }
        } else {
          fail_at(file, field.first.Mark(),
                  "security: " + who + ": unknown key '" + f + "' (expected: tokens, certs, stores)");
        }
      }
      if (p.token_sha256.empty() && p.certs.empty()) {
        fail_at(file, kv.second.Mark(), "security: " + who +
                                            " has neither `tokens` nor `certs`: nothing could prove it");
      }
      out.principals.push_back(std::move(p));
    }
  }
  if (out.open && !out.principals.empty()) {
    fail_at(file, sec.Mark(), "security: `open: true` lets anyone do anything; it cannot go with "
                              "`principals` (choose one)");
  }
  return out;
}

NodeInfo parse_node(const std::string& file, const YAML::Node& n) {
  if (!n.IsMap()) fail_at(file, n.Mark(), "cluster: a node is a map {id: N, address: host:port}");
  check_unique_keys(file, n);
  NodeInfo info;
  bool has_id = false, has_address = false;
  for (const auto& f : n) {
    const std::string fk = f.first.Scalar();
    if (fk == "id") {
      info.id = static_cast<NodeId>(
          int_at(file, f.second, 0, 65535, "cluster: a node id is an integer from 0 to 65535"));
      has_id = true;
    } else if (fk == "address") {
      info.address = f.second.IsScalar() ? f.second.Scalar() : "";
      if (info.address.rfind(':') == std::string::npos) {
        fail_at(file, f.second.Mark(), "cluster: a node address is host:port");
      }
      has_address = true;
    } else if (fk == "zone") {
      if (!f.second.IsScalar() || f.second.Scalar().empty()) {
        fail_at(file, f.second.Mark(), "cluster: a node's zone is a name");
      }
      info.zone = f.second.Scalar();
    } else if (fk == "partitions") {
      if (!f.second.IsSequence() || f.second.size() == 0) {
        fail_at(file, f.second.Mark(), "cluster: a node's `partitions` is a non-empty list of partition numbers");
      }
      for (const auto& p : f.second) {
        info.partitions.push_back(static_cast<uint32_t>(
            int_at(file, p, 0, 65535, "cluster: a partition number is an integer from 0 to 65535")));
      }
    } else {
      fail_at(file, f.first.Mark(),
              "cluster: unknown node key '" + fk + "' (expected: id, address, zone, partitions)");
    }
  }
  if (!has_id || !has_address) fail_at(file, n.Mark(), "cluster: a node needs `id` and `address`");
  return info;
}

// Partitions are listed by every node or by none; listed, they must be
// 0..Q-1, each owned once. Zones are set on every node or on none.
void check_cluster(const std::string& file, const YAML::Node& cluster, bool has_q,
                   ClusterInfo* c) {
  size_t listing = 0, zoned = 0, listed = 0;
  for (const NodeInfo& n : c->nodes) {
    listing += n.partitions.empty() ? 0 : 1;
    zoned += n.zone.empty() ? 0 : 1;
    listed += n.partitions.size();
  }
  if (zoned != 0 && zoned != c->nodes.size()) {
    fail_at(file, cluster.Mark(), "cluster: give every node a `zone`, or none");
  }
  if (listing == 0) {
    if (!has_q) c->partitions = 64;
    if (c->partitions < c->nodes.size()) {
      fail_at(file, cluster.Mark(),
              "cluster: " + std::to_string(c->nodes.size()) + " nodes need at least as many "
              "partitions (`partitions: " + std::to_string(c->partitions) + "`)");
    }
    return;
  }
  if (listing != c->nodes.size()) {
    fail_at(file, cluster.Mark(),
            "cluster: list `partitions` on every node, or on none (then they are dealt out evenly)");
  }
  if (!has_q) c->partitions = static_cast<uint32_t>(listed);
  std::vector<int> owner(c->partitions, -1);
  for (const NodeInfo& n : c->nodes) {
    for (uint32_t p : n.partitions) {
      if (p >= c->partitions) {
        fail_at(file, cluster.Mark(),
                "cluster: node " + std::to_string(n.id) + " lists partition " + std::to_string(p) +
                    ", but partitions are numbered 0 to " + std::to_string(c->partitions - 1));
      }
      if (owner[p] >= 0) {
        fail_at(file, cluster.Mark(),
                "cluster: partition " + std::to_string(p) + " is listed by node " +
                    std::to_string(owner[p]) + " and node " + std::to_string(n.id));
      }
      owner[p] = static_cast<int>(n.id);
    }
  }
  for (uint32_t p = 0; p < c->partitions; ++p) {
    if (owner[p] < 0) {
      fail_at(file, cluster.Mark(), "cluster: no node lists partition " + std::to_string(p));
    }
  }
}

void parse_cluster(const std::string& file, const YAML::Node& cluster, ConfigData* data) {
  if (!cluster.IsMap()) {
    fail_at(file, cluster.Mark(), std::string("`cluster` must be a map with `nodes`, found ") +
                                      kind_of(cluster));
  }
  check_unique_keys(file, cluster);
  data->cluster_where = cluster.Mark();
  std::vector<NodeInfo>& nodes = data->cluster.nodes;
  bool has_q = false, has_nodes = false;
  // Reads a list of nodes: ids and addresses distinct.
  auto parse_nodes = [&](const YAML::Node& list, const char* key, std::vector<NodeInfo>* out) {
    if (!list.IsSequence() || list.size() == 0) {
      fail_at(file, list.Mark(), std::string("cluster: `") + key + "` must be a non-empty list of {id, address}");
    }
    for (const auto& n : list) {
      NodeInfo info = parse_node(file, n);
      for (const NodeInfo& other : *out) {
        if (other.id == info.id) fail_at(file, n.Mark(), "cluster: node id " + std::to_string(info.id) + " appears twice");
        if (other.address == info.address) fail_at(file, n.Mark(), "cluster: address " + info.address + " appears twice");
      }
      out->push_back(std::move(info));
    }
  };
  YAML::Node moving;
  for (const auto& kv : cluster) {
    const std::string k = kv.first.Scalar();
    if (k == "tls") {
      data->tls = parse_tls(file, kv.second);
    } else if (k == "partitions") {
      data->cluster.partitions = static_cast<uint32_t>(int_at(
          file, kv.second, 1, 65536, "cluster: `partitions` is an integer from 1 to 65536"));
      has_q = true;
    } else if (k == "hints") {
      data->hints.name = "hints";
      data->hints.where = kv.first.Mark();
      data->hints.stack = parse_stack(file, "hints", "hints", kv.second);
    } else if (k == "nodes") {
      parse_nodes(kv.second, "nodes", &nodes);
      has_nodes = true;
    } else if (k == "moving_to") {
      parse_nodes(kv.second, "moving_to", &data->cluster.moving_to);
      moving = kv.second;
    } else {
      fail_at(file, kv.first.Mark(),
              "cluster: unknown key '" + k + "' (expected: nodes, partitions, hints, tls, moving_to)");
    }
  }
  if (!has_nodes) fail_at(file, cluster.Mark(), "cluster: missing `nodes` list");
  check_cluster(file, cluster, has_q, &data->cluster);
  if (moving) {
    // The layout a move in progress leads to (`cairn admin rebalance`
    // writes it): every node lists its partitions, Q unchanged, and a node
    // in both lists keeps its address.
    ClusterInfo after{data->cluster.partitions, data->cluster.moving_to, {}};
    for (const NodeInfo& n : after.nodes) {
      if (n.partitions.empty()) {
        fail_at(file, moving.Mark(), "cluster: every node of `moving_to` lists its `partitions`");
      }
      for (const NodeInfo& m : nodes) {
        if (m.id == n.id && m.address != n.address) {
          fail_at(file, moving.Mark(), "cluster: node " + std::to_string(n.id) + " has address " +
                                           m.address + " in `nodes` and " + n.address +
                                           " in `moving_to`");
        }
      }
    }
    check_cluster(file, moving, true, &after);
  }
}

// `cluster: {etcd: {endpoints: [...], prefix: P}}`, alone in a file: the
// metadata's place, or nothing if the file is a config itself.
std::optional<MetadataOrigin> etcd_origin(const std::string& file, const YAML::Node& root) {
  if (!root.IsMap() || !root["cluster"] || !root["cluster"].IsMap() || !root["cluster"]["etcd"]) {
    return std::nullopt;
  }
  const YAML::Node cluster = root["cluster"];
  if (root.size() != 1 || cluster.size() != 1) {
    fail_at(file, cluster.Mark(),
            "cluster: a config whose cluster is kept in etcd holds only `cluster: {etcd: "
            "{endpoints, prefix}}`; its nodes and stores are in etcd");
  }
  const YAML::Node etcd = cluster["etcd"];
  if (!etcd.IsMap()) fail_at(file, etcd.Mark(), "cluster: `etcd` must be a map {endpoints, prefix}");
  MetadataOrigin o;
  for (const auto& kv : etcd) {
    const std::string k = kv.first.Scalar();
    if (k == "endpoints") {
      if (!kv.second.IsSequence() || kv.second.size() == 0) {
        fail_at(file, kv.second.Mark(), "cluster: etcd `endpoints` is a non-empty list of host:port");
      }
      for (const auto& e : kv.second) {
        if (!e.IsScalar() || e.Scalar().find(':') == std::string::npos) {
          fail_at(file, e.Mark(), "cluster: an etcd endpoint is host:port");
        }
        o.etcd_endpoints.push_back(e.Scalar());
      }
    } else if (k == "prefix") {
      if (!kv.second.IsScalar() || kv.second.Scalar().empty()) {
        fail_at(file, kv.second.Mark(), "cluster: etcd `prefix` is a non-empty key prefix");
      }
      o.prefix = kv.second.Scalar();
    } else if (k == "lease_seconds") {
      o.lease_seconds = static_cast<int>(
          int_at(file, kv.second, 2, 3600, "cluster: etcd `lease_seconds` is an integer from 2 to 3600"));
    } else {
      fail_at(file, kv.first.Mark(),
              "cluster: unknown etcd key '" + k + "' (expected: endpoints, prefix, lease_seconds)");
    }
  }
  if (o.etcd_endpoints.empty() || o.prefix.empty()) {
    fail_at(file, etcd.Mark(), "cluster: etcd needs `endpoints` and `prefix`");
  }
  return o;
}

std::shared_ptr<ConfigData> parse_config(const std::string& source, const std::string& text,
                                         bool from_etcd = false) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::ParserException& e) {
    fail_at(source, e.mark, "YAML syntax error: " + e.msg);
  }
  if (std::optional<MetadataOrigin> origin = etcd_origin(source, root)) {
    if (from_etcd) fail_at(source, root.Mark(), "the config in etcd points at etcd again");
    internal::EtcdClient etcd({.endpoints = origin->etcd_endpoints});
    const std::string key = origin->prefix + "config";
    std::optional<internal::EtcdClient::Entry> entry;
    try {
      entry = etcd.get(key);
    } catch (const Unavailable& e) {
      throw Unavailable(source + ": cannot read the cluster's config from etcd: " + e.what());
    }
    if (!entry) {
      throw NotFound(source + ": etcd has no cluster config at key '" + key +
                     "' (cairn admin init puts one there)");
    }
    origin->version = entry->mod_revision;
    auto data = parse_config("etcd:" + key + "@" + std::to_string(entry->mod_revision) + " (from " +
                                 source + ")",
                             entry->value, true);
    data->origin = std::move(*origin);
    return data;
  }
  if (!root.IsMap()) {
    fail_at(source, root.Mark(), std::string("expected a map with a `stores` key, found ") +
                                     kind_of(root));
  }
  check_unique_keys(source, root);
  auto data = std::make_shared<ConfigData>();
  data->source = source;
  YAML::Node stores;
  bool has_stores = false;
  for (const auto& kv : root) {
    const std::string k = kv.first.Scalar();
    if (k == "cluster") {
      parse_cluster(source, kv.second, data.get());
      continue;
    }
    if (k == "security") {
      data->security = parse_security(source, kv.second);
      continue;
    }
    if (k != "stores") {
      fail_at(source, kv.first.Mark(), "unknown key '" + k + "' (expected: cluster, security, stores)");
    }
    stores = kv.second;
    has_stores = true;
  }
  if (!has_stores) fail_at(source, root.Mark(), "missing `stores` map");
  if (!stores.IsMap() || stores.size() == 0) {
    fail_at(source, stores.Mark(),
            std::string("`stores` must map store names to stores, found ") + kind_of(stores));
  }
  check_unique_keys(source, stores);
  for (const auto& kv : stores) {
    data->stores.push_back(parse_store(source, kv.first.Scalar(), kv.first, kv.second));
  }
  return data;
}

}  // namespace

// ---- Params -----------------------------------------------------------------

Params::Params(std::shared_ptr<internal::ParamsData> data) : d_(std::move(data)) {}

Params ConfigInternal::make_params(std::shared_ptr<internal::ParamsData> data) {
  return Params(std::move(data));
}

const std::string& Params::store() const { return d_->store; }
const std::string& Params::layer() const { return d_->layer; }

namespace {

YAML::Node lookup(const ParamsData& d, std::string_view key) {
  if (!d.node.IsMap()) return YAML::Node(YAML::NodeType::Undefined);
  for (const auto& kv : d.node) {
    if (kv.first.Scalar() == key) return kv.second;
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

std::string expand(std::string s, const ParamsData& d) {
  for (size_t at; (at = s.find("{store}")) != std::string::npos;) s.replace(at, 7, d.store);
  for (size_t at; (at = s.find("{node}")) != std::string::npos;) {
    if (d.node_id.empty()) {
      throw InvalidArgument("'{node}' is only known in a node's stack (`node:`), served by cairn-server");
    }
    s.replace(at, 6, d.node_id);
  }
  return s;
}

}  // namespace

const NodeInfo* Params::routed_node() const { return d_->routed_node; }

bool Params::has(std::string_view key) const {
  d_->used.emplace(key);
  return lookup(*d_, key).IsDefined();
}

std::optional<std::string> Params::scalar() const {
  d_->scalar_used = true;
  if (!d_->node.IsScalar()) return std::nullopt;
  return expand(d_->node.Scalar(), *d_);
}

void Params::fail(std::string_view key, const std::string& what) const {
  // Point at the value, or at the key when the value is missing (yaml-cpp
  // marks an implicit null at whatever token follows it).
  YAML::Mark where = d_->where;
  if (d_->node.IsMap()) {
    for (const auto& kv : d_->node) {
      if (kv.first.Scalar() != key) continue;
      where = kv.second.IsNull() ? kv.first.Mark() : kv.second.Mark();
    }
  }
  const std::string prefix = "store '" + d_->store + "', " +
                             (d_->layer.empty() ? "" : "'" + d_->layer + "'") +
                             (key.empty() ? "" : " parameter '" + std::string(key) + "'") +
                             ": ";
  fail_at(d_->file, where, prefix + what);
}

namespace {

// The scalar text of `key`, or nullopt if absent; a non-scalar is an error.
std::optional<std::string> scalar_param(const Params& p, const ParamsData& d,
                                        std::string_view key, const char* expected) {
  d.used.emplace(key);
  const YAML::Node n = lookup(d, key);
  if (!n.IsDefined()) return std::nullopt;
  // `key:` with nothing after it is a mistake, not a request for the
  // default: say so rather than guess.
  if (!n.IsScalar()) p.fail(key, std::string("expected ") + expected + ", found " + kind_of(n));
  return n.Scalar();
}

}  // namespace

std::string Params::get_string(std::string_view key) const {
  auto v = scalar_param(*this, *d_, key, "a string");
  if (!v) fail("", "missing required parameter '" + std::string(key) + "'");
  return expand(*v, *d_);
}

std::string Params::get_string(std::string_view key, std::string_view fallback) const {
  auto v = scalar_param(*this, *d_, key, "a string");
  return expand(v ? *v : std::string(fallback), *d_);
}

int64_t Params::get_int(std::string_view key, int64_t fallback, int64_t min,
                        int64_t max) const {
  auto v = scalar_param(*this, *d_, key, "an integer");
  if (!v) return fallback;
  int64_t n = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), n);
  if (ec != std::errc() || p != v->data() + v->size() || n < min || n > max) {
    fail(key, "expected an integer from " + std::to_string(min) + " to " +
                  std::to_string(max) + ", found '" + *v + "'");
  }
  return n;
}

double Params::get_double(std::string_view key, double fallback, double min, double max) const {
  auto v = scalar_param(*this, *d_, key, "a number");
  if (!v) return fallback;
  double x = 0;
  auto [p, ec] = std::from_chars(v->data(), v->data() + v->size(), x);
  if (ec != std::errc() || p != v->data() + v->size() || !(x >= min && x <= max)) {
    char range[64];
    std::snprintf(range, sizeof range, "%g to %g", min, max);
    fail(key, std::string("expected a number from ") + range + ", found '" + *v + "'");
  }
  return x;
}

bool Params::get_bool(std::string_view key, bool fallback) const {
  auto v = scalar_param(*this, *d_, key, "true or false");
  if (!v) return fallback;
  if (*v == "true") return true;
  if (*v == "false") return false;
  fail(key, "expected true or false, found '" + *v + "'");
}

uint64_t Params::get_bytes(std::string_view key, uint64_t fallback, uint64_t min,
                           uint64_t max) const {
  auto v = scalar_param(*this, *d_, key, "a size");
  if (!v) return fallback;
  const std::string& s = *v;
  uint64_t n = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
  std::string_view unit(p, static_cast<size_t>(s.data() + s.size() - p));
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  int shift = -1;
  if (unit.empty() || unit == "B") shift = 0;
  if (unit == "KiB") shift = 10;
  if (unit == "MiB") shift = 20;
  if (unit == "GiB") shift = 30;
  if (unit == "TiB") shift = 40;
  const bool overflow = shift > 0 && n > (~uint64_t{0} >> shift);
  if (ec != std::errc() || p == s.data() || shift < 0 || overflow ||
      (n << std::max(shift, 0)) < min || (n << std::max(shift, 0)) > max) {
    fail(key, "expected a size from " + std::to_string(min) + " to " + std::to_string(max) +
                  " bytes (a number, optionally with KiB, MiB, GiB or TiB), found '" + s + "'");
  }
  return n << shift;
}

namespace {

// Converts YAML to JSON, with the checks JSON text would get: duplicate
// keys and keys that are not names are errors, not silently dropped.
Json yaml_to_json(const std::string& file, const YAML::Node& n) {
  switch (n.Type()) {
    case YAML::NodeType::Map: {
      check_unique_keys(file, n);
      Json::Object o;
      for (const auto& kv : n) o.emplace(kv.first.Scalar(), yaml_to_json(file, kv.second));
      return Json(std::move(o));
    }
    case YAML::NodeType::Sequence: {
      Json::Array a;
      for (const auto& e : n) a.push_back(yaml_to_json(file, e));
      return Json(std::move(a));
    }
    case YAML::NodeType::Scalar: return Json(n.Scalar());
    default: return Json();
  }
}

}  // namespace

Json Params::get_json(std::string_view key) const {
  d_->used.emplace(key);
  const YAML::Node n = lookup(*d_, key);
  if (!n.IsDefined() || n.IsNull()) fail("", "missing required parameter '" + std::string(key) + "'");
  return yaml_to_json(d_->file, n);
}

std::string Params::get_choice(std::string_view key,
                               std::initializer_list<std::string_view> choices,
                               std::string_view fallback) const {
  auto v = scalar_param(*this, *d_, key, "a name");
  if (!v) return std::string(fallback);
  std::string all;
  for (std::string_view c : choices) {
    if (*v == c) return *v;
    all += (all.empty() ? "" : ", ") + std::string(c);
  }
  fail(key, "expected one of " + all + ", found '" + *v + "'");
}

void Params::check_all_used() const {
  if (d_->node.IsScalar() && !d_->scalar_used) {
    fail_at(d_->file, d_->node.Mark(),
            "store '" + d_->store + "', '" + d_->layer + "': takes no lone value; write `" +
                d_->layer + ": {param: value}`");
  }
  if (!d_->node.IsDefined() || d_->node.IsNull() || d_->node.IsScalar()) return;
  if (!d_->node.IsMap()) {
    fail_at(d_->file, d_->node.Mark(),
            "store '" + d_->store + "', '" + d_->layer + "': parameters must be a map, found " +
                kind_of(d_->node));
  }
  check_unique_keys(d_->file, d_->node);
  for (const auto& kv : d_->node) {
    const std::string k = kv.first.Scalar();
    if (d_->used.contains(k)) continue;
    std::vector<std::string> known(d_->used.begin(), d_->used.end());
    fail_at(d_->file, kv.first.Mark(),
            "store '" + d_->store + "', '" + d_->layer + "': unknown parameter '" + k +
                "' (known: " + join(known) + ")");
  }
}

// ---- Config -----------------------------------------------------------------

Config::Config(std::shared_ptr<const ConfigData> data) : d_(std::move(data)) {}

Config Config::parse(std::string_view yaml, std::string source) {
  return Config(parse_config(source, std::string(yaml)));
}

Config Config::load(const std::string& path) {
  // stdio rather than ifstream: fopen's errno says why it failed.
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) throw IoError("cannot read config " + path + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw IoError("cannot read config " + path + ": read error");
  return Config(parse_config(path, text));
}

const std::string& Config::source() const { return d_->source; }

const MetadataOrigin& Config::origin() const { return d_->origin; }

std::vector<std::string> Config::store_names() const {
  std::vector<std::string> names;
  for (const StoreDef& s : d_->stores) names.push_back(s.name);
  return names;
}

namespace {

// Runs one factory; its InvalidArgument becomes a ConfigError at the layer.
template <typename Fn>
std::unique_ptr<Store> build_one(const std::string& file, const LayerEntry& e,
                                 const std::shared_ptr<ParamsData>& data, Fn&& fn) {
  Params params = ConfigInternal::make_params(data);
  std::unique_ptr<Store> built;
  try {
    built = fn(params);
  } catch (const ConfigError&) {
    throw;
  } catch (const InvalidArgument& err) {
    fail_at(file, e.where, err.what());
  }
  params.check_all_used();
  return built;
}

}  // namespace

namespace {

const StoreDef& find_store(const ConfigData& d, std::string_view store) {
  for (const StoreDef& s : d.stores) {
    if (s.name == store) return s;
  }
  std::vector<std::string> names;
  for (const StoreDef& s : d.stores) names.push_back(s.name);
  throw NotFound("no store '" + std::string(store) + "' in " + d.source + " (it defines: " +
                 join(names) + ")");
}

std::shared_ptr<const AnySerializer> build_serializer(const ConfigData& d, const StoreDef& def,
                                                      const char* which,
                                                      const SerializerSpec& spec,
                                                      const LayerRegistry& registry) {
  const SerializerFactory* f = registry.serializer(spec.type);
  if (f == nullptr) {
    std::vector<std::string> known;
    for (const auto& [name, summary] : registry.serializers()) known.push_back(name);
    fail_at(d.source, spec.where,
            "store '" + def.name + "': unknown " + which + " serializer '" + spec.type +
                "' (known: " + join(known) + ")");
  }
  auto data = std::make_shared<ParamsData>();
  data->file = d.source;
  data->store = def.name;
  data->layer = spec.type;
  data->node = spec.params;
  data->where = spec.where;
  data->used.insert("type");
  Params params = ConfigInternal::make_params(data);
  std::shared_ptr<const AnySerializer> built;
  try {
    built = (*f)(params);
  } catch (const ConfigError&) {
    throw;
  } catch (const InvalidArgument& err) {
    fail_at(d.source, spec.where, err.what());
  }
  params.check_all_used();
  return built;
}

}  // namespace

StoreSerializers Config::serializers(std::string_view store, const LayerRegistry& registry) const {
  const StoreDef& def = find_store(*d_, store);
  return {build_serializer(*d_, def, "key", def.key, registry),
          build_serializer(*d_, def, "value", def.value, registry)};
}

namespace {

// Builds entries [begin, end) of `stack` bottom-up over `top` (null when
// the range holds the engine).
std::unique_ptr<Store> build_range(const ConfigData& d, const StoreDef& def, const Stack& stack,
                                   size_t begin, size_t end, std::unique_ptr<Store> top,
                                   const std::string& node, const NodeInfo* routed_node,
                                   const LayerRegistry& registry) {
  for (size_t i = end; i-- > begin;) {
    const LayerEntry& e = stack[i];
    auto data = std::make_shared<ParamsData>();
    data->file = d.source;
    data->store = def.name;
    data->node_id = node;
    data->routed_node = routed_node;
    data->layer = e.name;
    data->node = e.params;
    data->where = e.where;
    if (e.engine) {
      const EngineFactory* f = registry.engine(e.name);
      if (f == nullptr) {
        fail_at(d.source, e.where,
                "store '" + def.name + "': unknown engine '" + e.name +
                    "' (known engines: " + layer_names(registry, true) + ")");
      }
      top = build_one(d.source, e, data, [&](const Params& p) { return (*f)(p); });
      continue;
    }
    const LayerFactory* f = registry.layer(e.name);
    if (f == nullptr) {
      fail_at(d.source, e.where,
              "store '" + def.name + "': unknown layer '" + e.name +
                  "' (known layers: " + layer_names(registry, false) + ")");
    }
    top = build_one(d.source, e, data, [&](const Params& p) { return (*f)(std::move(top), p); });
  }
  return top;
}

// A stack, with a `route` entry if it has one: the stack below it is built
// once per node the route sends to.
std::unique_ptr<Store> build_stack(const ConfigData& d, const StoreDef& def, const Stack& stack,
                                   const std::string& node, const LayerRegistry& registry,
                                   std::shared_ptr<HintedHandoff> hints = nullptr,
                                   std::shared_ptr<internal::Directory> directory = nullptr) {
  // A node's own copy of the store tells its directory of each write.
  auto tracked = [&](std::unique_ptr<Store> replica) -> std::unique_ptr<Store> {
    if (directory == nullptr || node.empty()) return replica;
    return std::make_unique<internal::TrackingStore>(std::move(replica), def.name, directory);
  };
  size_t route = stack.size();
  for (size_t i = 0; i < stack.size(); ++i) {
    if (stack[i].engine || stack[i].name != "route") continue;
    if (route != stack.size()) {
      fail_at(d.source, stack[i].where, "store '" + def.name + "': a stack routes once");
    }
    route = i;
  }
  // A ttl layer keeps each version's TTL in its stored bytes, which every
  // replica must hold alike, and hides expired versions from every reader:
  // nothing that routes or keeps copies may sit above it.
  for (size_t i = 0; i < stack.size(); ++i) {
    if (stack[i].engine || stack[i].name != "ttl") continue;
    for (size_t j = 0; j < i; ++j) {
      if (!stack[j].engine && (stack[j].name == "route" || stack[j].name == "cache")) {
        fail_at(d.source, stack[i].where,
                "store '" + def.name + "': `ttl` goes above `" + stack[j].name +
                    "` (every replica must store the TTL alike, and no copy may outlive it)");
      }
    }
  }
  if (route == stack.size()) {
    return tracked(build_range(d, def, stack, 0, stack.size(), nullptr, node, nullptr, registry));
  }
  const LayerEntry& e = stack[route];
  if (d.cluster.nodes.empty()) {
    fail_at(d.source, e.where,
            "store '" + def.name + "': `route` needs a `cluster:` with its nodes");
  }
  if (def.replication.n > static_cast<int>(d.cluster.nodes.size())) {
    fail_at(d.source, def.where,
            "store '" + def.name + "': replication n=" + std::to_string(def.replication.n) +
                " needs at least as many nodes; the cluster has " +
                std::to_string(d.cluster.nodes.size()));
  }
  const RouteFactory* factory = ConfigInternal::router(registry);
  if (factory == nullptr) fail_at(d.source, e.where, "this registry has no `route` layer");
  auto data = std::make_shared<ParamsData>();
  data->file = d.source;
  data->store = def.name;
  data->node_id = node;
  data->layer = e.name;
  data->node = e.params;
  data->where = e.where;
  NodeId self = 0;
  ServerTls tls;
  RouteContext ctx;
  ctx.cluster = &d.cluster;
  ctx.origin = &d.origin;
  ctx.replication = &def.replication;
  if (!node.empty()) {
    self = static_cast<NodeId>(std::stoul(node));
    ctx.self = &self;
    tls = ServerTls{ConfigInternal::with_node(d.tls.cert, self),
                    ConfigInternal::with_node(d.tls.key, self),
                    ConfigInternal::with_node(d.tls.ca, self)};
    ctx.tls = &tls;
    ctx.hints = std::move(hints);
  }
  ctx.open_below = [&](const NodeInfo& target) {
    // A node's own replica is built as its stack ({node} = itself); a
    // client's way to a node sees {node} as that node.
    const bool in_node = !node.empty();
    return tracked(build_range(d, def, stack, route + 1, stack.size(), nullptr,
                               in_node ? node : std::to_string(target.id),
                               in_node ? nullptr : &target, registry));
  };
  if (node.empty()) {
    // A client's way to a node that joins later: the same build, keeping
    // the config's data alive (`def` and `stack` live in it). The registry
    // must outlive the store, as for every layer it built.
    ctx.open_later = [keep = d.shared_from_this(), def = &def, stack = &stack, route,
                      registry = &registry](const NodeInfo& target) {
      return build_range(*keep, *def, *stack, route + 1, stack->size(), nullptr,
                         std::to_string(target.id), &target, *registry);
    };
  }
  std::unique_ptr<Store> routed =
      build_one(d.source, e, data, [&](const Params& p) {
        ctx.params = &p;
        return (*factory)(ctx);
      });
  return build_range(d, def, stack, 0, route, std::move(routed), node, nullptr, registry);
}

}  // namespace

std::unique_ptr<Store> Config::open(std::string_view store,
                                    const LayerRegistry& registry) const {
  const StoreDef& def = find_store(*d_, store);
  const Stack& stack = !def.client.empty() ? def.client : def.stack;
  if (stack.empty()) {
    fail_at(d_->source, def.where,
            "store '" + def.name + "' has only a `node:` stack: clients need `client:` (or "
            "`stack:` for an embedded store), or reach a server with cairn --server");
  }
  return build_stack(*d_, def, stack, "", registry);
}

std::unique_ptr<Store> Config::open_node(std::string_view store, NodeId node,
                                         const LayerRegistry& registry) const {
  return ConfigInternal::open_node(*this, store, node, nullptr, registry);
}

std::unique_ptr<Store> ConfigInternal::open_replica(const Config& config, std::string_view store,
                                                   const LayerRegistry& registry) {
  const ConfigData& d = *config.d_;
  const StoreDef& def = find_store(d, store);
  const Stack& stack = !def.node.empty() ? def.node : def.stack;
  if (stack.empty()) {
    fail_at(d.source, def.where, "store '" + def.name + "' has neither `node:` nor `stack:`");
  }
  size_t begin = 0;
  for (size_t i = 0; i < stack.size(); ++i) {
    if (!stack[i].engine && stack[i].name == "route") begin = i + 1;
  }
  const std::string node = d.cluster.nodes.empty() ? "" : std::to_string(d.cluster.nodes[0].id);
  return build_range(d, def, stack, begin, stack.size(), nullptr, node, nullptr, registry);
}

void ConfigInternal::replace_engine(LayerRegistry& registry, const std::string& name,
                                    EngineFactory factory) {
  registry.engines_[name] = {std::move(factory), "stands in for '" + name + "'"};
}

const internal::SecurityConfig& ConfigInternal::security(const Config& config) {
  return config.d_->security;
}

namespace internal {
std::string permission_names(uint8_t permissions) {
  std::string out;
  for (auto [bit, name] : {std::pair{kRead, "read"}, std::pair{kWrite, "write"},
                           std::pair{kAdmin, "admin"}}) {
    if ((permissions & bit) == 0) continue;
    if (!out.empty()) out += ',';
    out += name;
  }
  return out.empty() ? "nothing" : out;
}
}  // namespace internal

bool ConfigInternal::partitioned(const Config& config, std::string_view store) {
  const StoreDef& def = find_store(*config.d_, store);
  for (const Stack* stack : {&def.stack, &def.node, &def.client}) {
    for (const LayerEntry& e : *stack) {
      if (!e.engine && e.name == "route") return true;
    }
  }
  return false;
}

std::unique_ptr<Store> ConfigInternal::open_node(const Config& config, std::string_view store,
                                                 NodeId node, std::shared_ptr<HintedHandoff> hints,
                                                 const LayerRegistry& registry,
                                                 std::shared_ptr<internal::Directory> directory) {
  const internal::ConfigData* d_ = config.d_.get();
  const StoreDef& def = find_store(*d_, store);
  const Stack& stack = !def.node.empty() ? def.node : def.stack;
  if (stack.empty()) {
    fail_at(d_->source, def.where,
            "store '" + def.name + "' has no `node:` (or `stack:`) for a server to run");
  }
  return build_stack(*d_, def, stack, std::to_string(node), registry, std::move(hints),
                     std::move(directory));
}

const std::vector<NodeInfo>& Config::nodes() const { return d_->cluster.nodes; }

const ClusterInfo& Config::cluster() const { return d_->cluster; }

Replication Config::replication(std::string_view store) const {
  return find_store(*d_, store).replication;
}

bool Config::has_hints() const { return !d_->hints.stack.empty(); }

std::unique_ptr<Store> Config::open_hints(NodeId node, const LayerRegistry& registry) const {
  if (d_->hints.stack.empty()) return nullptr;
  return build_stack(*d_, d_->hints, d_->hints.stack, std::to_string(node), registry);
}

ServerTls Config::server_tls(NodeId node) const {
  return ServerTls{ConfigInternal::with_node(d_->tls.cert, node),
                   ConfigInternal::with_node(d_->tls.key, node),
                   ConfigInternal::with_node(d_->tls.ca, node)};
}

std::string ConfigInternal::with_node(std::string pattern, NodeId node) {
  const std::string id = std::to_string(node);
  for (size_t at; (at = pattern.find("{node}")) != std::string::npos;) pattern.replace(at, 6, id);
  return pattern;
}

}  // namespace cairn

#include "cairn/config.h"

#include <gtest/gtest.h>

#include <fstream>

#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "cairn/memory_store.h"
#include "cairn/stats_store.h"
#include "core/config_internal.h"
#include "core/security_config.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

// Parses `yaml`, opens store `store` and returns the ConfigError it throws.
ConfigError config_error(const std::string& yaml, const std::string& store = "s") {
  try {
    Config::parse(yaml, "test.yaml").open(store);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return ConfigError("", 0, 0, "");
}

void expect_error(const std::string& yaml, int line, int column, const std::string& fragment) {
  const ConfigError e = config_error(yaml);
  EXPECT_EQ(e.file(), "test.yaml");
  EXPECT_EQ(e.line(), line) << e.what();
  EXPECT_EQ(e.column(), column) << e.what();
  EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
      << "message: " << e.what() << "\nexpected to contain: " << fragment;
  EXPECT_EQ(std::string(e.what()).rfind("test.yaml:" + std::to_string(line) + ":" +
                                            std::to_string(column) + ": ", 0),
            0u)
      << e.what();
}

TEST(ConfigTest, BuildsTheStackTopToBottom) {
  TempDir dir;
  const Config config = Config::parse(R"(
stores:
  users:
    stack:
      - stats
      - logging: {slow_ms: 5}
      - engine: {lmdb: {path: ")" + dir.path() + R"(/{store}", durability: nosync}}
  cache:
    stack:
      - engine: memory
)",
                                      "two.yaml");
  EXPECT_EQ(config.store_names(), (std::vector<std::string>{"users", "cache"}));
  auto users = config.open("users");
  const std::string d = users->describe();
  EXPECT_EQ(d.find("stats"), 0u) << d;
  EXPECT_NE(d.find("\n  logging (level info, ops slower than 5 ms)"), std::string::npos) << d;
  EXPECT_NE(d.find("\n    lmdb 'users' at " + dir.path() + "/users (durability nosync"),
            std::string::npos)
      << d;
  ASSERT_NE(find_layer<StatsStore>(*users), nullptr);
  ASSERT_EQ(users->put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(find_layer<StatsStore>(*users)->snapshot()[StatsStore::Op::kPut].count, 1u);
  auto cache = config.open("cache");
  EXPECT_NE(find_layer<MemoryStore>(*cache), nullptr);
}

TEST(ConfigTest, UnknownStoreIsNotFoundAndListsTheStores) {
  const Config config = Config::parse("stores:\n  a:\n    stack: [{engine: memory}]\n");
  try {
    config.open("b");
    FAIL();
  } catch (const NotFound& e) {
    EXPECT_NE(std::string(e.what()).find("it defines: a"), std::string::npos) << e.what();
  }
}

TEST(ConfigTest, UnknownLayerNamesThePositionAndTheKnownLayers) {
  expect_error("stores:\n  s:\n    stack:\n      - statz\n      - engine: memory\n", 4, 9,
               "unknown layer 'statz' (known layers: cache, compress, faults, logging, resolve, route, stats");
}

TEST(ConfigTest, UnknownEngine) {
  expect_error("stores:\n  s:\n    stack:\n      - engine: {rocks: {}}\n", 4, 18,
               "unknown engine 'rocks' (known engines: grpc, lmdb, log, memory");
}

TEST(ConfigTest, MissingRequiredParameter) {
  expect_error("stores:\n  s:\n    stack:\n      - engine: {lmdb: {durability: sync}}\n", 4, 18,
               "missing required parameter 'path'");
}

TEST(ConfigTest, WrongTypeForAParameter) {
  expect_error("stores:\n  s:\n    stack:\n      - engine: {memory: {shards: lots}}\n", 4, 35,
               "parameter 'shards': expected an integer from 1 to 65536, found 'lots'");
  expect_error("stores:\n  s:\n    stack:\n      - engine: {memory: {shards: [1, 2]}}\n", 4, 35,
               "expected an integer, found a list");
}

TEST(ConfigTest, BadChoice) {
  expect_error(
      "stores:\n  s:\n    stack:\n      - engine: {lmdb: {path: /tmp/x, durability: fast}}\n", 4,
      51, "expected one of sync, nosync, found 'fast'");
}

TEST(ConfigTest, MisspeltParameterIsAnError) {
  expect_error("stores:\n  s:\n    stack:\n      - logging: {levl: debug}\n      - engine: memory\n",
               4, 19, "unknown parameter 'levl' (known: level, slow_ms)");
}

TEST(ConfigTest, EngineMustBeLast) {
  expect_error("stores:\n  s:\n    stack:\n      - engine: memory\n      - stats\n", 4, 9,
               "the engine must be the last entry of the stack (it is entry 1 of 2)");
  expect_error("stores:\n  s:\n    stack:\n      - stats\n", 4, 9,
               "the stack ends with layer 'stats'; the last entry must be an engine");
}

TEST(ConfigTest, StructuralErrors) {
  expect_error("stores: [", 1, 1, "YAML syntax error: end of sequence flow not found");
  expect_error("- a\n- b\n", 1, 1, "expected a map with a `stores` key, found a list");
  expect_error("store:\n  s: {}\n", 1, 1, "unknown key 'store' (expected: cluster, security, stores)");
  expect_error("stores: {}\n", 1, 9, "`stores` must map store names to stores");
  expect_error("stores:\n  s:\n    stak: []\n", 3, 5, "unknown key 'stak' (expected: key, value, replication, stack, node, client)");
  expect_error("stores:\n  s:\n    stack: []\n", 3, 12, "`stack` must be a non-empty list");
  expect_error("stores:\n  s:\n    stack:\n      - {a: 1, b: 2}\n", 4, 9, "with several keys");
  expect_error("stores:\n  s:\n    stack:\n      - engine\n", 4, 9,
               "an engine is written `engine: memory` or `engine: {lmdb: {path: ...}}`");
  expect_error("stores:\n  s:\n    stack: [{engine: memory}]\n  s:\n    stack: [{engine: memory}]\n",
               4, 3, "duplicate key 's'");
  expect_error("stores:\n  s:\n    stack:\n      - stats: fast\n      - engine: memory\n", 4, 16,
               "takes no lone value");
}

TEST(ConfigTest, SizesTakeBinaryUnits) {
  auto open = [](const std::string& size) {
    return Config::parse("stores:\n  s:\n    stack:\n      - engine: {memory: {max_value_size: " +
                             size + "}}\n",
                         "test.yaml")
        .open("s");
  };
  auto store = open("2 KiB");
  EXPECT_NO_THROW(store->put("k", Versioned{std::string(2048, 'x'), {}}));
  EXPECT_THROW(store->put("k", Versioned{std::string(2049, 'x'), {}}), InvalidArgument);
  EXPECT_NO_THROW(open("1MiB"));
  EXPECT_NO_THROW(open("1048576"));
  EXPECT_THROW(open("12 XB"), ConfigError);
  EXPECT_THROW(open("2GiB"), ConfigError) << "above the 1 GiB cap";
  EXPECT_THROW(open("-1"), ConfigError);
}

TEST(ConfigTest, NumbersAreCheckedAgainstTheirRange) {
  // "stores:\n  s:\n    stack:\n      - engine: {log: {compaction_threshold: " puts the value at column 54.
  const std::string head = "stores:\n  s:\n    stack:\n      - engine: {log: {path: /tmp/x, compaction_threshold: ";
  expect_error(head + "0}}\n", 4, 60, "parameter 'compaction_threshold': expected a number from 0.01 to 1, found '0'");
  expect_error(head + "half}}\n", 4, 60, "expected a number from 0.01 to 1, found 'half'");
  expect_error(head + "0.5x}}\n", 4, 60, "found '0.5x'");
  expect_error(head + "nan}}\n", 4, 60, "found 'nan'");
}

TEST(ConfigTest, RangeChecksSeeEarlierParameters) {
  // max_map_size's lower bound is the map_size given before it.
  expect_error(
      "stores:\n  s:\n    stack:\n      - engine: {lmdb: {path: /tmp/x, map_size: 1GiB, "
      "max_map_size: 2MiB}}\n",
      4, 69, "expected a size from 1073741824");
}

TEST(ConfigTest, EngineErrorsBecomeConfigErrorsAtTheLayer) {
  // The empty path passes the parser; LmdbStore's constructor rejects it
  // with InvalidArgument, which the builder places at the engine's entry.
  expect_error("stores:\n  s:\n    stack:\n      - engine: {lmdb: {path: \"\"}}\n", 4, 18,
               "lmdb 's': empty path");
}

TEST(ConfigTest, MissingPiecesPointAtTheirParent) {
  expect_error("stores:\n  s: {}\n", 2, 3, "store 's': missing `stack` list");
  expect_error("{}\n", 1, 1, "missing `stores` map");
  expect_error("stores:\n  s:\n    stack:\n      - engine: {memory: {shards: }}\n", 4, 27,
               "parameter 'shards': expected an integer, found nothing");
  expect_error("stores:\n  [a]: {stack: [{engine: memory}]}\n", 2, 3,
               "expected a name as key, found a list");
}

TEST(ConfigTest, LoadReportsAnUnreadableFile) {
  EXPECT_THROW(Config::load("/nonexistent/cairn.yaml"), IoError);
  TempDir dir;
  const std::string path = dir.sub("c.yaml");
  std::ofstream(path) << "stores:\n  s:\n    stack:\n      - engine: {memory: {shard: 2}}\n";
  try {
    Config::load(path).open("s");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.file(), path);
    EXPECT_EQ(e.line(), 4);
  }
}

// The ConfigError that building the serializers of store "s" throws.
ConfigError serializer_error(const std::string& yaml) {
  try {
    Config::parse(yaml, "test.yaml").serializers("s");
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no ConfigError for:\n" << yaml;
  return ConfigError("", 0, 0, "");
}

void expect_serializer_error(const std::string& yaml, int line, int column,
                             const std::string& fragment) {
  const ConfigError e = serializer_error(yaml);
  EXPECT_EQ(e.line(), line) << e.what();
  EXPECT_EQ(e.column(), column) << e.what();
  EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
}

TEST(ConfigTest, KeyAndValueSerializers) {
  const Config config = Config::parse(R"(
stores:
  s:
    key: int32
    value:
      type: json
      schemas:
        - {name: string}
        - '{"name": "string", "id": "int32"}'
    stack: [{engine: memory}]
  t:
    stack: [{engine: memory}]
)",
                                      "ser.yaml");
  const StoreSerializers s = config.serializers("s");
  EXPECT_EQ(s.key->describe(), "int32 (big-endian, 4 bytes)");
  EXPECT_EQ(s.value->describe(), R"(json {"id":"int32","name":"string"} (version 1 of 2))");
  EXPECT_EQ(config.serializers("t").value->describe(), "identity (raw bytes)");
  EXPECT_THROW(config.serializers("u"), NotFound);
}

TEST(ConfigTest, SerializerErrorsPointAtTheEntry) {
  const std::string head = "stores:\n  s:\n    stack: [{engine: memory}]\n";
  expect_serializer_error(head + "    value: jsn\n", 4, 12, "unknown value serializer 'jsn' (known: identity, int16");
  expect_serializer_error(head + "    key: {schema: int8}\n", 4, 10, "`key` needs `type:`");
  expect_serializer_error(head + "    key: [string]\n", 4, 10, "`key` is a serializer name");
  expect_serializer_error(head + "    value: {type: json}\n", 4, 19,
                          "takes `schema: S` or `schemas: [S0, S1, ...]`");
  expect_serializer_error(head + "    value: {type: json, schema: {id: int33}}\n", 4, 33,
                          "unknown type 'int33'");
  expect_serializer_error(head + "    value: {type: json, schema: {id: int32, id: string}}\n", 4,
                          45, "duplicate key 'id'");
  expect_serializer_error(head + "    value: {type: string, charset: latin1}\n", 4, 27,
                          "unknown parameter 'charset'");
  expect_serializer_error(head + "    value: {type: json, schemas: ['{\"a\": 1']}\n", 4, 34,
                          "JSON at offset");
}

TEST(ConfigTest, ClusterNodesAndNodeStacks) {
  TempDir dir;
  const Config config = Config::parse(R"(
cluster:
  nodes:
    - {id: 0, address: 127.0.0.1:7071}
    - {id: 1, address: 127.0.0.1:7072}
stores:
  users:
    node:
      - stats
      - engine: {lmdb: {path: ")" + dir.path() + R"(/{node}/{store}", durability: nosync}}
    client:
      - engine: {memory: {shards: 2}}
)",
                                      "cluster.yaml");
  ASSERT_EQ(config.nodes().size(), 2u);
  EXPECT_EQ(config.nodes()[1].id, 1u);
  EXPECT_EQ(config.nodes()[1].address, "127.0.0.1:7072");
  auto node1 = config.open_node("users", 1);
  EXPECT_NE(node1->describe().find(dir.path() + "/1/users"), std::string::npos) << node1->describe();
  EXPECT_NE(config.open("users")->describe().find("memory 'users' (2 shards"), std::string::npos)
      << "clients get the client stack";
}

TEST(ConfigTest, ClusterTlsExpandsTheNodeId) {
  const Config c = Config::parse(
      "cluster:\n"
      "  nodes: [{id: 3, address: 127.0.0.1:7073}]\n"
      "  tls: {cert: \"certs/node{node}.pem\", key: \"certs/node{node}.key\", ca: certs/ca.pem}\n"
      "stores:\n  s: {stack: [{engine: memory}]}\n");
  const ServerTls tls = c.server_tls(3);
  EXPECT_EQ(tls.cert, "certs/node3.pem");
  EXPECT_EQ(tls.key, "certs/node3.key");
  EXPECT_EQ(tls.ca, "certs/ca.pem");
  const ServerTls none = Config::parse("stores:\n  s: {stack: [{engine: memory}]}\n").server_tls(0);
  EXPECT_TRUE(none.cert.empty() && none.key.empty() && none.ca.empty());
}

// `moving_to`: the layout a move in progress leads to (cairn admin
// rebalance writes it into a config kept in etcd).
TEST(ConfigTest, AMoveInProgressNamesTheLayoutAfterIt) {
  const std::string s = "stores:\n  s: {stack: [{engine: memory}]}\n";
  const std::string nodes =
      "cluster:\n  nodes:\n    - {id: 1, address: a:1, partitions: [0, 1]}\n"
      "    - {id: 2, address: b:1, partitions: [2, 3]}\n";
  const Config c = Config::parse(nodes +
                                 "  moving_to:\n    - {id: 1, address: a:1, partitions: [0]}\n"
                                 "    - {id: 2, address: b:1, partitions: [2, 3]}\n"
                                 "    - {id: 3, address: c:1, partitions: [1]}\n" + s);
  ASSERT_EQ(c.cluster().moving_to.size(), 3u);
  EXPECT_EQ(c.cluster().moving_to[2].address, "c:1");
  EXPECT_EQ(c.cluster().moving_to[2].partitions, std::vector<uint32_t>{1});
  expect_error(nodes + "  moving_to:\n    - {id: 1, address: a:1}\n" + s, 6, 5,
               "every node of `moving_to` lists its `partitions`");
  expect_error(nodes + "  moving_to:\n    - {id: 1, address: z:1, partitions: [0, 1, 2, 3]}\n" + s,
               6, 5, "node 1 has address a:1 in `nodes` and z:1 in `moving_to`");
  expect_error(nodes + "  moving_to:\n    - {id: 1, address: a:1, partitions: [0, 1, 2]}\n" + s,
               6, 5, "no node lists partition 3");
}

TEST(ConfigTest, ClusterAndStackErrors) {
  expect_error("cluster:\n  nodes:\n    - {id: 0, address: a:1}\n    - {id: 0, address: b:1}\n"
               "stores:\n  s: {stack: [{engine: memory}]}\n",
               4, 7, "node id 0 appears twice");
  expect_error("cluster:\n  nodes: [{id: x, address: a:1}]\nstores:\n  s: {stack: [{engine: memory}]}\n",
               2, 16, "a node id is an integer");
  expect_error("cluster:\n  nodes: [{id: 1, address: nowhere}]\nstores:\n  s: {stack: [{engine: memory}]}\n",
               2, 28, "a node address is host:port");
  expect_error("stores:\n  s:\n    node: [{engine: memory}]\n", 2, 3,
               "has only a `node:` stack");
  const std::string s = "stores:\n  s: {stack: [{engine: memory}]}\n";
  expect_error("cluster:\n  tls: {cert: c.pem}\n" + s, 2, 8, "tls needs both `cert` and `key`");
  expect_error("cluster:\n  tls: {cert: c.pem, key: k.pem, cafile: x}\n" + s, 2, 34,
               "unknown tls key 'cafile' (expected: cert, key, ca)");
  expect_error("cluster:\n  tls: yes\n" + s, 2, 8, "`tls` must be a map");
  expect_error("cluster:\n  peers: []\n" + s, 2, 3, "unknown key 'peers' (expected: nodes, partitions, hints, tls, moving_to)");
  expect_error("stores:\n  s:\n    stack: [{engine: {lmdb: {path: \"d/{node}\"}}}]\n", 3, 23,
               "'{node}' is only known in a node's stack");
}

// A layer defined by a user, registered in their own registry.
class UppercaseKeys final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  void get_into(std::string_view key, std::vector<Versioned>* out) override {
    ForwardingStore::get_into(upper(key), out);
  }
  PutResult put_stamped(std::string_view key, const Versioned& v, PutReply* c) override {
    return ForwardingStore::put_stamped(upper(key), v, c);
  }
  std::string describe() const override { return describe_as("uppercase"); }

 private:
  static std::string upper(std::string_view k) {
    std::string s(k);
    for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return s;
  }
};

TEST(ConfigTest, UserLayersRegisterInARegistry) {
  LayerRegistry registry;
  registry.add_engine(
      "memory", [](const Params&) { return std::make_unique<MemoryStore>(); }, "memory");
  registry.add_layer(
      "uppercase",
      [](std::unique_ptr<Store> inner, const Params&) {
        return std::make_unique<UppercaseKeys>(std::move(inner));
      },
      "upper-cases keys");
  const Config config =
      Config::parse("stores:\n  s:\n    stack: [uppercase, {engine: memory}]\n", "u.yaml");
  auto store = config.open("s", registry);
  ASSERT_EQ(store->put("abc", versioned("v", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(store->get("ABC").size(), 1u);
  EXPECT_EQ(find_layer<MemoryStore>(*store)->get("ABC").size(), 1u);
  EXPECT_TRUE(find_layer<MemoryStore>(*store)->get("abc").empty());
  EXPECT_THROW(config.open("s"), ConfigError) << "the default registry has no 'uppercase'";
}

TEST(ConfigTest, ANameRegisteredTwiceIsRefused) {
  LayerRegistry registry;
  auto memory = [](const Params&) { return std::make_unique<MemoryStore>(); };
  registry.add_engine("memory", memory, "memory");
  EXPECT_THROW(registry.add_engine("memory", memory, "again"), InvalidArgument);
  EXPECT_THROW(registry.add_layer(
                   "memory", [](std::unique_ptr<Store> inner, const Params&) { return inner; }, "x"),
               InvalidArgument);
  EXPECT_THROW(registry.add_engine("route", memory, "x"), InvalidArgument);
  registry.add_serializer("memory", [](const Params&) { return string_serializer(); }, "ok");
  EXPECT_THROW(
      registry.add_serializer("memory", [](const Params&) { return string_serializer(); }, "x"),
      InvalidArgument);
  EXPECT_EQ(registry.engines().size(), 1u);
}

// Issue 19: the `security:` section, parsed with the config.
constexpr char kStores[] = "stores:\n  s:\n    stack: [{engine: memory}]\n";
const std::string kDigest = "sha256:" + std::string(64, 'a');

TEST(ConfigTest, SecurityPrincipalsTheirProofsAndPermissions) {
  const Config c = Config::parse(std::string(kStores) +
                                     "security:\n"
                                     "  node_name: \"cairn-{node}\"\n"
                                     "  principals:\n"
                                     "    alice:\n"
                                     "      tokens: [\"" + kDigest + "\"]\n"
                                     "      stores: {s: [read, write], \"*\": read}\n"
                                     "    reports:\n"
                                     "      certs: reports\n"
                                     "      stores: {\"*\": [read, admin]}\n",
                                 "test.yaml");
  const internal::SecurityConfig& sec = ConfigInternal::security(c);
  EXPECT_TRUE(sec.present);
  EXPECT_FALSE(sec.open);
  EXPECT_EQ(sec.node_name, "cairn-{node}");
  ASSERT_EQ(sec.principals.size(), 2u);
  EXPECT_EQ(sec.principals[0].name, "alice");
  ASSERT_EQ(sec.principals[0].token_sha256.size(), 1u);
  EXPECT_EQ(sec.principals[0].token_sha256[0], std::string(32, '\xaa'));
  ASSERT_EQ(sec.principals[0].stores.size(), 2u);
  EXPECT_EQ(sec.principals[0].stores[0],
            (std::pair<std::string, uint8_t>{"s", internal::kRead | internal::kWrite}));
  EXPECT_EQ(sec.principals[0].stores[1], (std::pair<std::string, uint8_t>{"*", internal::kRead}));
  EXPECT_EQ(sec.principals[1].certs, std::vector<std::string>{"reports"});
  EXPECT_EQ(internal::permission_names(sec.principals[1].stores[0].second), "read,admin");
  EXPECT_FALSE(ConfigInternal::security(Config::parse(kStores, "test.yaml")).present);
}

TEST(ConfigTest, SecurityMistakesAreErrorsAtTheirLine) {
  const std::string head = std::string(kStores) + "security:\n  principals:\n    alice:\n";
  expect_error(head + "      tokens: [s3cret]\n      stores: {s: read}\n", 7, 15,
               "never as the token itself");
  expect_error(head + "      tokens: [\"" + kDigest + "\"]\n      stores: {s: [read, delete]}\n", 8,
               26, "unknown permission 'delete' (expected: read, write, admin)");
  expect_error(head + "      stores: {s: read}\n", 7, 7, "has neither `tokens` nor `certs`");
  expect_error(head + "      tokens: [\"" + kDigest + "\"]\n      pasword: x\n", 8, 7,
               "unknown key 'pasword' (expected: tokens, certs, stores)");
  expect_error(std::string(kStores) + "security: {open: yes}\n", 4, 18, "`open` must be true or false");
  expect_error(std::string(kStores) + "security: {node_name: n1}\n", 4, 23, "{node}");
  expect_error(std::string(kStores) + "security:\n  open: true\n  principals:\n    a: {certs: a}\n",
               5, 3, "cannot go with `principals`");
  expect_error(std::string(kStores) + "securty: {open: true}\n", 4, 1,
               "unknown key 'securty' (expected: cluster, security, stores)");
}

}  // namespace
}  // namespace cairn::testing

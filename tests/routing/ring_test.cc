#include "cairn/ring.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include "cairn/config.h"
#include "cairn/errors.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

ClusterInfo cluster(int nodes, uint32_t partitions, const std::vector<std::string>& zones = {}) {
  return testing::test_cluster(nodes, partitions, zones);
}

std::string key(int i) { return "user:" + std::to_string(i); }

// The hash is part of the on-disk contract of a cluster: a key's partition
// must never change between versions. These are FNV-1a 64 + fmix64 values
// worked out by hand from the documented definition.
TEST(RingTest, HashIsTheDocumentedOne) {
  auto fmix64 = [](uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    return k ^ (k >> 33);
  };
  // FNV-1a of "" is its offset basis; of "a", one round.
  EXPECT_EQ(Ring::hash(""), fmix64(0xcbf29ce484222325ull));
  EXPECT_EQ(Ring::hash("a"), fmix64((0xcbf29ce484222325ull ^ 'a') * 0x100000001b3ull));
  // A value computed outside C++ (Python, from the same definition): the
  // partition of "user:42" among 64 is 8, forever.
  EXPECT_EQ(Ring::hash("user:42"), 0x998817bee6718248ull);
  EXPECT_EQ(Ring(cluster(1, 64)).partition("user:42"), 8u);
}

TEST(RingTest, OneMillionKeysSpreadEvenly) {
  const Ring ring(cluster(3, 64));
  std::vector<int> per_partition(64, 0);
  std::map<NodeId, int> per_node;
  constexpr int kKeys = 1000000;
  for (int i = 0; i < kKeys; ++i) {
    const uint32_t p = ring.partition(key(i));
    ++per_partition[p];
    ++per_node[ring.owners()[p]];
  }
  const double even_partition = kKeys / 64.0;
  for (int n : per_partition) {
    EXPECT_NEAR(n, even_partition, even_partition * 0.03) << "a partition off by more than 3%";
  }
  // Nodes hold 22, 21 and 21 partitions: each gets its share of keys.
  for (const auto& [node, n] : per_node) {
    const double share = kKeys * static_cast<double>(ring.node(node).partitions.size()) / 64.0;
    EXPECT_NEAR(n, share, share * 0.01) << "node " << node;
  }
}

TEST(RingTest, EvenAssignmentDealsPartitionsRoundRobin) {
  const Ring ring(cluster(3, 8));
  EXPECT_EQ(ring.owners(), (std::vector<NodeId>{0, 1, 2, 0, 1, 2, 0, 1}));
  EXPECT_EQ(ring.node(0).partitions, (std::vector<uint32_t>{0, 3, 6}));
  EXPECT_EQ(ring.node(2).partitions, (std::vector<uint32_t>{2, 5}));
}

TEST(RingTest, PreferenceListIsTheFirstNDistinctNodesClockwise) {
  ClusterInfo c = cluster(3, 6);
  // Owners by partition: 0 0 1 0 2 2 (listed explicitly).
  c.nodes[0].partitions = {0, 1, 3};
  c.nodes[1].partitions = {2};
  c.nodes[2].partitions = {4, 5};
  const Ring ring(c);
  EXPECT_EQ(ring.preference_list(0u, 2), (std::vector<NodeId>{0, 1}));
  EXPECT_EQ(ring.preference_list(3u, 3), (std::vector<NodeId>{0, 2, 1})) << "wraps around";
  EXPECT_EQ(ring.preference_list(5u, 3), (std::vector<NodeId>{2, 0, 1}));
  EXPECT_EQ(ring.preference_list(4u, 1), (std::vector<NodeId>{2}));
  EXPECT_EQ(ring.preference_list(4u, 9).size(), 3u) << "never more than the nodes";
}

TEST(RingTest, ZonesMakeTheListSpanThem) {
  // Six nodes dealt in order a a a b b b: without zones, lists of two would
  // often stay in one zone.
  ClusterInfo c = cluster(6, 60);
  for (int i = 0; i < 6; ++i) c.nodes[static_cast<size_t>(i)].zone = i < 3 ? "a" : "b";
  const Ring ring(c);
  for (uint32_t p = 0; p < 60; ++p) {
    const std::vector<NodeId> list = ring.preference_list(p, 2);
    ASSERT_EQ(list.size(), 2u);
    EXPECT_NE(ring.node(list[0]).zone, ring.node(list[1]).zone) << "partition " << p;
    EXPECT_EQ(list[0], ring.owners()[p]) << "the owner still comes first";
    const std::vector<NodeId> three = ring.preference_list(p, 3);
    std::set<std::string> zones;
    for (NodeId n : three) zones.insert(ring.node(n).zone);
    EXPECT_EQ(zones.size(), 2u);
  }
}

TEST(RingTest, AddingANodeMovesAboutOneInSPlusOneKeysAndNoOthers) {
  const Ring before(cluster(4, 64));
  NodeInfo fresh;
  fresh.id = 9;
  fresh.address = "10.0.0.9:7070";
  const Ring after = before.with_node(fresh);
  // Partitions: the new node took 64/5 = 12, evenly from the others.
  EXPECT_EQ(after.node(9).partitions.size(), 12u);
  for (NodeId n = 0; n < 4; ++n) {
    EXPECT_GE(after.node(n).partitions.size(), 12u);
    EXPECT_LE(after.node(n).partitions.size(), 13u);
  }
  constexpr int kKeys = 200000;
  int moved = 0;
  for (int i = 0; i < kKeys; ++i) {
    const uint32_t p = before.partition(key(i));
    ASSERT_EQ(p, after.partition(key(i))) << "partitions are fixed";
    const NodeId was = before.owners()[p], is = after.owners()[p];
    if (was != is) {
      ++moved;
      EXPECT_EQ(is, 9u) << "a key only ever moves to the new node";
    }
  }
  EXPECT_NEAR(moved, kKeys / 5.0, kKeys / 5.0 * 0.1) << moved << " of " << kKeys << " moved";
}

TEST(RingTest, RejectsBadAssignments) {
  ClusterInfo c = cluster(2, 4);
  c.nodes[0].partitions = {0, 1};
  c.nodes[1].partitions = {1, 2, 3};
  EXPECT_THROW(Ring{c}, InvalidArgument) << "partition 1 twice";
  c.nodes[1].partitions = {2};
  EXPECT_THROW(Ring{c}, InvalidArgument) << "partition 3 unowned";
  ClusterInfo zoned = cluster(2, 4);
  zoned.nodes[0].zone = "a";
  EXPECT_THROW(Ring{zoned}, InvalidArgument) << "zones on some nodes only";
  NodeInfo dup;
  dup.id = 1;
  dup.address = "x:1";
  EXPECT_THROW(Ring(cluster(2, 4)).with_node(dup), InvalidArgument);
}

TEST(RingTest, DescribeListsEachNodesPartitions) {
  const std::string d = Ring(cluster(2, 4)).describe();
  EXPECT_NE(d.find("4 partitions on 2 nodes"), std::string::npos) << d;
  EXPECT_NE(d.find("node 0 (10.0.0.0:7070): 2 partitions: 0 2"), std::string::npos) << d;
}

// ---- The cluster section of a config ---------------------------------------

void expect_config_error(const std::string& yaml, const std::string& fragment) {
  try {
    const Config c = Config::parse(yaml, "c.yaml");
    c.open("s");
    FAIL() << "expected an error containing: " << fragment;
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
        << "message: " << e.what() << "\nexpected to contain: " << fragment;
  }
}

constexpr char kStore[] =
    "stores:\n  s:\n    replication: {n: 2}\n    stack: [route, {engine: memory}]\n";

TEST(RingConfigTest, PartitionsAndZonesFromTheConfig) {
  const Config c = Config::parse(std::string(R"(
cluster:
  partitions: 12
  nodes:
    - {id: 4, address: 127.0.0.1:1, zone: east}
    - {id: 7, address: 127.0.0.1:2, zone: west}
)") + kStore, "c.yaml");
  EXPECT_EQ(c.cluster().partitions, 12u);
  EXPECT_EQ(c.cluster().nodes[1].zone, "west");
  const Replication r = c.replication("s");
  EXPECT_EQ(r.n, 2);
  EXPECT_EQ(r.r, 2) << "r and w default to a majority of n";
  EXPECT_EQ(r.w, 2);
  const Ring ring(c.cluster());
  EXPECT_EQ(ring.node(4).partitions.size(), 6u);
}

TEST(RingConfigTest, ClusterErrors) {
  const std::string nodes = "cluster:\n  nodes:\n    - {id: 0, address: a:1}\n    - {id: 1, address: b:1}\n";
  expect_config_error(nodes + "stores:\n  s:\n    replication: {n: 3}\n    stack: [route, {engine: memory}]\n",
                      "replication n=3 needs at least as many nodes; the cluster has 2");
  expect_config_error(nodes + "stores:\n  s:\n    replication: {n: 2, r: 3}\n    stack: [{engine: memory}]\n",
                      "replication needs r <= n and w <= n");
  expect_config_error(nodes + "stores:\n  s:\n    replication: {n: 0}\n    stack: [{engine: memory}]\n",
                      "replication `n` is an integer from 1 to 64");
  expect_config_error(std::string("stores:\n  s:\n    stack: [route, {engine: memory}]\n"),
                      "`route` needs a `cluster:` with its nodes");
  expect_config_error(nodes + "stores:\n  s:\n    stack: [route, route, {engine: memory}]\n",
                      "a stack routes once");
  expect_config_error("cluster:\n  nodes:\n    - {id: 0, address: a:1, partitions: [0, 1]}\n"
                      "    - {id: 1, address: b:1}\n" + std::string(kStore),
                      "list `partitions` on every node, or on none");
  expect_config_error("cluster:\n  nodes:\n    - {id: 0, address: a:1, partitions: [0, 1]}\n"
                      "    - {id: 1, address: b:1, partitions: [1, 2]}\n" + std::string(kStore),
                      "partition 1 is listed by node 0 and node 1");
  expect_config_error("cluster:\n  partitions: 4\n  nodes:\n    - {id: 0, address: a:1, partitions: [0, 1]}\n"
                      "    - {id: 1, address: b:1, partitions: [2]}\n" + std::string(kStore),
                      "no node lists partition 3");
  expect_config_error("cluster:\n  partitions: 1\n" + nodes.substr(9) + kStore,
                      "2 nodes need at least as many partitions");
  expect_config_error("cluster:\n  nodes:\n    - {id: 0, address: a:1, zone: x}\n"
                      "    - {id: 1, address: b:1}\n" + std::string(kStore),
                      "give every node a `zone`, or none");
  expect_config_error(nodes + "stores:\n  s:\n    replication: {n: 2}\n"
                      "    stack: [route, {engine: {grpc: {targets: 'x:1'}}}]\n",
                      "below `route` the targets are the cluster's nodes");
}

TEST(RingConfigTest, ListedPartitionsSetTheirCount) {
  const Config c = Config::parse(
      "cluster:\n  nodes:\n    - {id: 0, address: a:1, partitions: [0, 2]}\n"
      "    - {id: 1, address: b:1, partitions: [1]}\n" + std::string(kStore), "c.yaml");
  EXPECT_EQ(c.cluster().partitions, 3u);
  EXPECT_EQ(Ring(c.cluster()).owners(), (std::vector<NodeId>{0, 1, 0}));
}

}  // namespace
}  // namespace cairn

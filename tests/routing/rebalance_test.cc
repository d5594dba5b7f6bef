// What a change of ring moves, counted in partition copies (N per
// partition), against the least any placement could move.

#include "routing/rebalance.h"

#include <gtest/gtest.h>

#include <map>

#include "cairn/errors.h"
#include "tests/testing/test_util.h"

namespace cairn::internal {
namespace {

ClusterInfo cluster(int nodes, uint32_t partitions, const std::vector<std::string>& zones = {}) {
  return testing::test_cluster(nodes, partitions, zones);
}

NodeInfo node(NodeId id, std::string zone = "") {
  NodeInfo n;
  n.id = id;
  n.address = "10.0.0." + std::to_string(id) + ":7070";
  n.zone = std::move(zone);
  return n;
}

// Copies each node holds: the partitions whose first N include it.
std::map<NodeId, size_t> copies(const Ring& ring, int n) {
  std::map<NodeId, size_t> out;
  for (uint32_t p = 0; p < ring.partitions(); ++p) {
    for (NodeId id : ring.preference_list(p, n)) ++out[id];
  }
  return out;
}

TEST(RingRemoveTest, ANodesPartitionsGoToTheLeastLoadedAndNoOtherMoves) {
  const Ring before(cluster(5, 64));
  const Ring after = before.without_node(2);
  EXPECT_FALSE(after.has_node(2));
  size_t least = SIZE_MAX, most = 0;
  for (const NodeInfo& n : after.nodes()) {
    least = std::min(least, n.partitions.size());
    most = std::max(most, n.partitions.size());
  }
  EXPECT_LE(most - least, 1u) << after.describe();
  for (uint32_t p = 0; p < 64; ++p) {
    if (before.owners()[p] != 2) {
      EXPECT_EQ(after.owners()[p], before.owners()[p]) << p;
    }
  }
  EXPECT_THROW(before.without_node(9), InvalidArgument);
  EXPECT_THROW(Ring(cluster(1, 8)).without_node(0), InvalidArgument);
}

// The bound: adding one node to S moves about 1/(S+1) of the
// copies, within 1.1x, and only to the new node.
TEST(RebalancePlanTest, AddingANodeMovesCopiesOnlyToItNearTheLeast) {
  for (const auto& [s, q, n] : {std::tuple{3, 64, 3}, std::tuple{4, 64, 3}, std::tuple{3, 128, 2},
                                std::tuple{8, 256, 3}, std::tuple{3, 64, 1}}) {
    SCOPED_TRACE(::testing::Message() << s << " nodes, Q " << q << ", N " << n);
    const Ring before(cluster(s, static_cast<uint32_t>(q)));
    const Ring after = before.with_node(node(static_cast<NodeId>(s)));
    const RebalancePlan plan = plan_rebalance(before, after, n);
    EXPECT_EQ(plan.replicas, static_cast<size_t>(q * std::min(n, s)));
    for (const ReplicaMove& m : plan.moves) {
      EXPECT_EQ(m.to, static_cast<NodeId>(s)) << "partition " << m.partition;
      EXPECT_FALSE(m.from.empty());
    }
    EXPECT_EQ(plan.moves.size(), copies(after, n)[static_cast<NodeId>(s)]);
    const double ideal = double(q) * std::min(n, s + 1) / (s + 1);
    EXPECT_LE(double(plan.moves.size()), 1.1 * ideal) << describe(plan, before, after);
    EXPECT_EQ(plan.drops.size(), plan.moves.size()) << "each copy gained takes one's place";
  }
}

// Growing one node at a time from 3 to 8: each step still moves copies
// only to its new node, near the least possible.
TEST(RebalancePlanTest, GrowingStepByStepStaysNearTheLeast) {
  Ring ring(cluster(3, 256));
  for (NodeId fresh = 3; fresh < 8; ++fresh) {
    SCOPED_TRACE(::testing::Message() << "adding node " << fresh);
    const Ring after = ring.with_node(node(fresh));
    const RebalancePlan plan = plan_rebalance(ring, after, 3);
    size_t elsewhere = 0;
    for (const ReplicaMove& m : plan.moves) elsewhere += m.to != fresh ? 1 : 0;
    EXPECT_EQ(elsewhere, 0u) << describe(plan, ring, after);
    const double ideal = 256.0 * 3 / (fresh + 1);
    EXPECT_LE(double(plan.moves.size()), 1.1 * ideal);
    ring = after;
  }
}

TEST(RebalancePlanTest, RemovingANodeMovesItsCopiesToTheOthers) {
  const Ring before(cluster(4, 64));
  const Ring after = before.without_node(1);
  const RebalancePlan plan = plan_rebalance(before, after, 3);
  for (const ReplicaDrop& d : plan.drops) EXPECT_EQ(d.node, 1u) << "partition " << d.partition;
  EXPECT_EQ(plan.drops.size(), copies(before, 3)[1]) << "node 1 drops every copy it held";
  EXPECT_EQ(plan.moves.size(), plan.drops.size());
  const double ideal = 64.0 * 3 / 4;
  EXPECT_LE(double(plan.moves.size()), 1.1 * ideal) << describe(plan, before, after);
  for (const ReplicaMove& m : plan.moves) {
    EXPECT_NE(m.to, 1u);
    for (NodeId from : m.from) EXPECT_NE(from, 1u) << "a staying replica is the source";
  }
}

TEST(RebalancePlanTest, AnUnchangedRingMovesNothingAndMismatchedRingsAreRefused) {
  const Ring ring(cluster(3, 32));
  const RebalancePlan plan = plan_rebalance(ring, ring, 2);
  EXPECT_TRUE(plan.moves.empty());
  EXPECT_TRUE(plan.drops.empty());
  EXPECT_THROW(plan_rebalance(ring, Ring(cluster(3, 16)), 2), InvalidArgument);
  EXPECT_THROW(plan_rebalance(ring, ring, 0), InvalidArgument);
  EXPECT_NE(describe(plan, ring, ring).find("moves 0 of 64"), std::string::npos);
}

}  // namespace
}  // namespace cairn::internal

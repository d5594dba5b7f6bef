#include "routing/rebalance.h"

#include <algorithm>
#include <cstdio>

#include "cairn/errors.h"

namespace cairn::internal {

namespace {

bool contains(const std::vector<NodeId>& v, NodeId id) {
  return std::find(v.begin(), v.end(), id) != v.end();
}

std::string list(const std::vector<NodeId>& ids) {
  std::string out;
  for (NodeId id : ids) {
    if (!out.empty()) out += ',';
    out += std::to_string(id);
  }
  return out;
}

std::string percent(double x) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * x);
  return buf;
}

}  // namespace

RebalancePlan plan_rebalance(const Ring& before, const Ring& after, int n) {
  if (before.partitions() != after.partitions()) {
    throw InvalidArgument("rebalance: a cluster keeps its partitions (" +
                          std::to_string(before.partitions()) + " before, " +
                          std::to_string(after.partitions()) + " after)");
  }
  if (n < 1) throw InvalidArgument("rebalance: N must be at least 1");
  RebalancePlan plan;
  plan.n = n;
  for (uint32_t p = 0; p < before.partitions(); ++p) {
    const std::vector<NodeId> was = before.preference_list(p, n);
    const std::vector<NodeId> is = after.preference_list(p, n);
    plan.replicas += was.size();
    std::vector<NodeId> staying;
    for (NodeId id : was) {
      if (contains(is, id)) staying.push_back(id);
    }
    for (NodeId id : is) {
      if (!contains(was, id)) plan.moves.push_back({p, id, staying.empty() ? was : staying});
    }
    for (NodeId id : was) {
      if (!contains(is, id)) plan.drops.push_back({p, id});
    }
  }
  return plan;
}

std::string describe(const RebalancePlan& plan, const Ring& before, const Ring& after) {
  const size_t s0 = before.nodes().size(), s1 = after.nodes().size();
  std::string out = std::to_string(s0) + " -> " + std::to_string(s1) + " nodes, " +
                    std::to_string(before.partitions()) + " partitions, N = " +
                    std::to_string(plan.n) + "\n";
  for (const NodeInfo& node : after.nodes()) {
    if (!before.has_node(node.id)) {
      out += "adds node " + std::to_string(node.id) + " (" + node.address + "): owns " +
             std::to_string(node.partitions.size()) + " partitions\n";
    }
  }
  for (const NodeInfo& node : before.nodes()) {
    if (!after.has_node(node.id)) {
      out += "removes node " + std::to_string(node.id) + " (" + node.address + "): its " +
             std::to_string(node.partitions.size()) + " partitions go to the others\n";
    }
  }
  const double moved = plan.replicas == 0 ? 0 : double(plan.moves.size()) / double(plan.replicas);
  // An even share of the change: a node added to S takes 1/(S+1) of the
  // copies; a node removed from S hands on its 1/S.
  const double ideal = s1 > s0 ? double(s1 - s0) / double(s1)
                               : (s0 > s1 ? double(s0 - s1) / double(s0) : 0.0);
  out += "moves " + std::to_string(plan.moves.size()) + " of " + std::to_string(plan.replicas) +
         " partition copies (" + percent(moved) + "; an even share: " + percent(ideal) +
         "), drops " + std::to_string(plan.drops.size()) + "\n";
  size_t d = 0;
  for (const ReplicaMove& m : plan.moves) {
    out += "  partition " + std::to_string(m.partition) + ": node " + std::to_string(m.to) +
           " fetches it from " + (m.from.size() == 1 ? "node " : "one of nodes ") + list(m.from) +
           "\n";
    for (; d < plan.drops.size() && plan.drops[d].partition <= m.partition; ++d) {
      out += "  partition " + std::to_string(plan.drops[d].partition) + ": node " +
             std::to_string(plan.drops[d].node) + " drops it\n";
    }
  }
  for (; d < plan.drops.size(); ++d) {
    out += "  partition " + std::to_string(plan.drops[d].partition) + ": node " +
           std::to_string(plan.drops[d].node) + " drops it\n";
  }
  return out;
}

}  // namespace cairn::internal

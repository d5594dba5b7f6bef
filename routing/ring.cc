#include "cairn/ring.h"

#include <algorithm>
#include <cstdint>
#include <map>

#include "cairn/errors.h"

namespace cairn {

namespace {

uint64_t fnv1a64(std::string_view key) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  return h;
}

// MurmurHash3's 64-bit finaliser: every input bit reaches every output bit.
uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

}  // namespace

uint64_t Ring::hash(std::string_view key) { return fmix64(fnv1a64(key)); }

Ring::Ring(const ClusterInfo& cluster) : nodes_(cluster.nodes) {
  if (nodes_.empty()) throw InvalidArgument("ring: the cluster has no nodes");
  if (cluster.partitions == 0) throw InvalidArgument("ring: the cluster has no partitions");
  owners_.assign(cluster.partitions, 0);
  bool listed = false;
  for (const NodeInfo& n : nodes_) listed |= !n.partitions.empty();
  if (listed) {
    std::vector<bool> seen(cluster.partitions, false);
    for (const NodeInfo& n : nodes_) {
      for (uint32_t p : n.partitions) {
        if (p >= cluster.partitions || seen[p]) {
          throw InvalidArgument("ring: partition " + std::to_string(p) +
                                " is out of range or owned twice");
        }
        seen[p] = true;
        owners_[p] = n.id;
      }
    }
    if (std::find(seen.begin(), seen.end(), false) != seen.end()) {
      throw InvalidArgument("ring: some partition has no owner");
    }
  } else {
    for (uint32_t p = 0; p < cluster.partitions; ++p) owners_[p] = nodes_[p % nodes_.size()].id;
  }
  check_and_index();
}

Ring::Ring(std::vector<NodeInfo> nodes, std::vector<NodeId> owners)
    : nodes_(std::move(nodes)), owners_(std::move(owners)) {
  check_and_index();
}

void Ring::check_and_index() {
  std::map<std::string, int> zones;
  size_t zoned = 0;
  for (size_t i = 0; i < nodes_.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      if (nodes_[j].id == nodes_[i].id) {
        throw InvalidArgument("ring: node id " + std::to_string(nodes_[i].id) + " appears twice");
      }
    }
    if (!nodes_[i].zone.empty()) {
      ++zoned;
      zones.emplace(nodes_[i].zone, static_cast<int>(zones.size()));
    }
  }
  if (zoned != 0 && zoned != nodes_.size()) {
    throw InvalidArgument("ring: give every node a zone, or none");
  }
  zones_ = zones.empty() ? 1 : static_cast<int>(zones.size());
  zone_of_.assign(nodes_.size(), 0);
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (!nodes_[i].zone.empty()) zone_of_[i] = zones.at(nodes_[i].zone);
  }
  // Partitions as owned now: the listing each node carries matches owners_.
  for (NodeInfo& n : nodes_) n.partitions.clear();
  for (uint32_t p = 0; p < owners_.size(); ++p) {
    const int i = index_of(owners_[p]);
    if (i < 0) throw InvalidArgument("ring: partition " + std::to_string(p) + " has no node");
    nodes_[static_cast<size_t>(i)].partitions.push_back(p);
  }
}

int Ring::index_of(NodeId id) const {
  for (size_t i = 0; i < nodes_.size(); ++i) {
    if (nodes_[i].id == id) return static_cast<int>(i);
  }
  return -1;
}

bool Ring::has_node(NodeId id) const { return index_of(id) >= 0; }

const NodeInfo& Ring::node(NodeId id) const {
  const int i = index_of(id);
  if (i < 0) throw InvalidArgument("ring: no node " + std::to_string(id));
  return nodes_[static_cast<size_t>(i)];
}

std::vector<NodeId> Ring::preference_list(uint32_t p, int n) const {
  const size_t want = std::min(static_cast<size_t>(std::max(n, 0)), nodes_.size());
  // The distinct owners clockwise from p, in order.
  std::vector<int> order;
  std::vector<bool> taken(nodes_.size(), false);
  for (size_t step = 0; step < owners_.size() && order.size() < nodes_.size(); ++step) {
    const int i = index_of(owners_[(p + step) % owners_.size()]);
    if (!taken[static_cast<size_t>(i)]) {
      taken[static_cast<size_t>(i)] = true;
      order.push_back(i);
    }
  }
  // Take them in order, passing over a node of a zone already in the list
  // while the places left are needed for zones not yet in it.
  const size_t zones_wanted = std::min(want, static_cast<size_t>(zones_));
  std::vector<NodeId> out;
  std::vector<bool> zone_in(static_cast<size_t>(zones_), false);
  size_t zones_in = 0;
  std::vector<bool> used(order.size(), false);
  while (out.size() < want) {
    bool took = false;
    for (size_t k = 0; k < order.size() && out.size() < want; ++k) {
      if (used[k]) continue;
      const size_t zone = static_cast<size_t>(zone_of_[static_cast<size_t>(order[k])]);
      const size_t places_left = want - out.size();
      const size_t zones_missing = zones_wanted - zones_in;
      if (zone_in[zone] && places_left <= zones_missing) continue;
      used[k] = true;
      took = true;
      out.push_back(nodes_[static_cast<size_t>(order[k])].id);
      if (!zone_in[zone]) {
        zone_in[zone] = true;
        ++zones_in;
      }
    }
    if (!took) break;
  }
  return out;
}

Ring Ring::with_node(NodeInfo node) const {
  for (const NodeInfo& n : nodes_) {
    if (n.id == node.id) throw InvalidArgument("ring: node id " + std::to_string(node.id) + " is taken");
    if (n.address == node.address) throw InvalidArgument("ring: address " + node.address + " is taken");
  }
  const size_t q = owners_.size();
  const size_t take = q / (nodes_.size() + 1);
  std::vector<NodeInfo> nodes = nodes_;
  nodes.push_back(node);
  std::vector<NodeId> owners = owners_;
  std::map<NodeId, size_t> count;
  for (NodeId o : owners) ++count[o];
  // Take from whichever node owns the most, each time the partition
  // farthest from those the new node has (nearest its even share of the
  // ring on a tie): a key's replicas are the first N distinct owners
  // clockwise, so two of the new node's partitions close together would
  // push a key's list on to an old node, and copies would move between old
  // nodes too.
  std::vector<size_t> mine;
  const auto gap = [&](size_t p) {
    size_t nearest = q;
    for (size_t m : mine) {
      const size_t d = p > m ? p - m : m - p;
      nearest = std::min(nearest, std::min(d, q - d));
    }
    return nearest;
  };
  for (size_t i = 0; i < take; ++i) {
    size_t most = 0;
    for (const auto& [id, c] : count) most = std::max(most, c);
    const size_t start = i * q / take;
    size_t best = q, best_gap = 0;
    for (size_t step = 0; step < q; ++step) {
      const size_t p = (start + step) % q;
      if (owners[p] == node.id || count[owners[p]] != most) continue;
      const size_t g = gap(p);
      if (best == q || g > best_gap) {
        best = p;
        best_gap = g;
      }
    }
    --count[owners[best]];
    owners[best] = node.id;
    mine.push_back(best);
  }
  return Ring(std::move(nodes), std::move(owners));
}

Ring Ring::without_node(NodeId id) const {
  if (!has_node(id)) throw InvalidArgument("ring: no node " + std::to_string(id) + " to remove");
  if (nodes_.size() == 1) throw InvalidArgument("ring: node " + std::to_string(id) + " is the last one");
  std::vector<NodeInfo> nodes;
  std::map<NodeId, size_t> count;
  for (const NodeInfo& n : nodes_) {
    if (n.id == id) continue;
    nodes.push_back(n);
    count[n.id] = n.partitions.size();
  }
  std::vector<NodeId> owners = owners_;
  const size_t q = owners.size();
  for (size_t p = 0; p < q; ++p) {
    if (owners[p] != id) continue;
    size_t fewest = SIZE_MAX;
    for (const auto& [node, c] : count) fewest = std::min(fewest, c);
    // The first least-loaded owner clockwise from p: neighbours' partitions
    // spread over different nodes.
    for (size_t step = 1; step <= q; ++step) {
      const NodeId o = owners[(p + step) % q];
      if (o != id && count[o] == fewest) {
        owners[p] = o;
        ++count[o];
        break;
      }
    }
    if (owners[p] == id) {
      // No node of the least load owns any other partition (it holds
      // none): the lowest such node takes it.
      for (auto& [node, c] : count) {
        if (c == fewest) {
          owners[p] = node;
          ++c;
          break;
        }
      }
    }
  }
  return Ring(std::move(nodes), std::move(owners));
}

ClusterInfo Ring::to_cluster() const {
  ClusterInfo c{partitions(), nodes_, {}};
  for (NodeInfo& n : c.nodes) {
    n.partitions.clear();
    for (uint32_t p = 0; p < partitions(); ++p) {
      if (owners_[p] == n.id) n.partitions.push_back(p);
    }
  }
  return c;
}

std::string Ring::describe() const {
  std::string out = std::to_string(owners_.size()) + " partitions on " +
                    std::to_string(nodes_.size()) + " nodes";
  if (zones_ > 1) out += " in " + std::to_string(zones_) + " zones";
  out += "\n";
  for (const NodeInfo& n : nodes_) {
    out += "node " + std::to_string(n.id) + " (" + n.address +
           (n.zone.empty() ? "" : ", zone " + n.zone) + "): " +
           std::to_string(n.partitions.size()) + " partitions:";
    for (uint32_t p : n.partitions) out.append(" ").append(std::to_string(p));
    out += "\n";
  }
  return out;
}

}  // namespace cairn

#include "routing/hinted_handoff.h"

#include <algorithm>
#include <set>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "cairn/ring.h"
#include "routing/replica.h"

namespace cairn {

HintedHandoff::HintedHandoff(std::unique_ptr<Store> hints, ClusterInfo cluster, NodeId self,
                             ServerTls tls, HintedHandoffOptions options)
    : hints_(std::move(hints)),
      cluster_(std::move(cluster)),
      self_(self),
      tls_(std::move(tls)),
      options_(options) {}

HintedHandoff::~HintedHandoff() {
  try {
    close();
  } catch (const std::exception& e) {
    log(LogLevel::kError, std::string("closing the hint store: ") + e.what());
  }
}

void HintedHandoff::close() {
  stop();
  hints_->close();
}

std::string HintedHandoff::encode_key(const Hint& hint) {
  if (hint.store.empty() || hint.store.size() > 255) {
    throw InvalidArgument("hint: a store name of 1 to 255 bytes, not " +
                          std::to_string(hint.store.size()));
  }
  std::string out;
  out.reserve(7 + hint.store.size() + std::min(hint.key.size(), kInlineKey));
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(hint.node >> shift));
  out.push_back(hint.remove ? 'D' : 'P');
  out.push_back(static_cast<char>(hint.store.size()));
  out += hint.store;
  if (hint.key.size() <= kInlineKey) {
    out.push_back('\0');
    out += hint.key;
  } else {
    out.push_back('\1');
    const uint64_t h = Ring::hash(hint.key);
    for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>(h >> shift));
  }
  return out;
}

std::string HintedHandoff::encode_value(const Hint& hint) {
  std::string out;
  const uint32_t n = static_cast<uint32_t>(hint.key.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(n >> shift));
  out += hint.key;
  if (!hint.remove) out += hint.version.value;
  return out;
}

Hint HintedHandoff::decode(std::string_view key, const Versioned& stored) {
  if (key.size() < 8) throw Corruption("hint key of " + std::to_string(key.size()) + " bytes");
  Hint h;
  for (int i = 0; i < 4; ++i) h.node = (h.node << 8) | static_cast<unsigned char>(key[i]);
  if (key[4] != 'P' && key[4] != 'D') {
    throw Corruption("hint key with operation byte " +
                     std::to_string(static_cast<unsigned char>(key[4])));
  }
  h.remove = key[4] == 'D';
  const size_t len = static_cast<unsigned char>(key[5]);
  if (len == 0 || 6 + len >= key.size()) throw Corruption("hint key with a bad store name length");
  h.store = std::string(key.substr(6, len));
  const std::string_view v = stored.value;
  if (v.size() < 4) throw Corruption("hint value of " + std::to_string(v.size()) + " bytes");
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n = (n << 8) | static_cast<unsigned char>(v[static_cast<size_t>(i)]);
  if (v.size() - 4 < n) throw Corruption("hint value shorter than its key");
  h.key = std::string(v.substr(4, n));
  h.version = Versioned{h.remove ? std::string() : std::string(v.substr(4 + n)), stored.clock,
                        stored.write_id, 0, stored.replaces};
  // The key of the entry must be the one the value names.
  if (encode_key(h) != key) throw Corruption("hint value names another key than its entry");
  return h;
}

void HintedHandoff::keep(const Hint& hint) {
  if (hint.node == self_) throw InvalidArgument("a hint for node " + std::to_string(self_) + " kept on itself");
  bool known = false;
  {
    std::lock_guard lock(replicas_mu_);
    for (const NodeInfo& n : cluster_.nodes) known |= n.id == hint.node;
  }
  if (!known) throw InvalidArgument("a hint for node " + std::to_string(hint.node) + ", which is not in the cluster");
  hints_->put(encode_key(hint), Versioned{encode_value(hint), hint.version.clock,
                                          hint.version.write_id, 0, hint.version.replaces});
  // (obsolete: an equal or newer hint is kept already)
}

void HintedHandoff::learn(const ClusterInfo& cluster) {
  std::lock_guard lock(replicas_mu_);
  for (const auto* list : {&cluster.nodes, &cluster.moving_to}) {
    for (const NodeInfo& n : *list) {
      auto known = std::find_if(cluster_.nodes.begin(), cluster_.nodes.end(),
                                [&](const NodeInfo& k) { return k.id == n.id; });
      // (A node keeps its address: the routing layer refuses metadata
      // that moves one.)
      if (known == cluster_.nodes.end()) cluster_.nodes.push_back(n);
    }
  }
}

Store& HintedHandoff::replica(NodeId node, const std::string& store) {
  std::lock_guard lock(replicas_mu_);
  auto& slot = replicas_[{node, store}];
  if (!slot) {
    std::string address;
    for (const NodeInfo& n : cluster_.nodes) {
      if (n.id == node) address = n.address;
    }
    if (address.empty()) {
      throw InvalidArgument("a hint for node " + std::to_string(node) + ", which is not in the cluster");
    }
    slot = open_node_replica(address, store, options_.timeout, tls_);
  }
  return *slot;
}

void HintedHandoff::set_max_age(const std::string& store, std::chrono::milliseconds max_age) {
  std::lock_guard lock(age_mu_);
  max_age_[store] = max_age;
}

uint64_t HintedHandoff::dropped_too_old() const {
  return dropped_too_old_.load(std::memory_order_relaxed);
}

HintedHandoff::Round HintedHandoff::push() {
  std::lock_guard push_lock(push_mu_);
  Round round;
  std::set<NodeId> unreachable;
  std::map<NodeId, size_t> delivered;
  // Collect first: deleting while a scan runs is allowed, but a scan that
  // sees its own deletions is harder to reason about.
  struct Pending {
    std::string hint_key;
    Hint hint;
  };
  std::vector<Pending> pending;
  for (auto it = hints_->scan(); it->next();) {
    for (const Versioned& v : it->versions()) {
      try {
        pending.push_back({std::string(it->key()), decode(it->key(), v)});
      } catch (const Corruption& e) {
        log(LogLevel::kError, std::string("hint store: skipping an entry: ") + e.what());
      }
    }
  }
  std::map<std::string, std::chrono::milliseconds> max_age;
  {
    std::lock_guard lock(age_mu_);
    max_age = max_age_;
  }
  for (const Pending& p : pending) {
    const Hint& h = p.hint;
    // Judged just before each delivery: a round may take long.
    const int64_t now = now_ms();
    if (auto age = max_age.find(h.store); age != max_age.end() && age->second.count() > 0 &&
                                          h.version.clock.timestamp_ms() < now - age->second.count()) {
      log(LogLevel::kWarn, "dropping a hint for node " + std::to_string(h.node) + ", key " +
                               printable_key(h.key) + " of store '" + h.store +
                               "': its write is older than " +
                               std::to_string(age->second.count()) +
                               " ms (three quarters of the store's reaping grace); the replicas "
                               "that took it keep it");
      try {
        hints_->remove(p.hint_key, h.version.clock);
        ++round.too_old;
        dropped_too_old_.fetch_add(1, std::memory_order_relaxed);
      } catch (const std::exception& drop) {
        log(LogLevel::kError, std::string("hint store: ") + drop.what());
      }
      continue;
    }
    if (unreachable.contains(h.node)) {
      ++round.failed;
      continue;
    }
    try {
      Store& to = replica(h.node, h.store);
      if (h.remove) {
        to.remove(h.key, h.version.clock);
      } else {
        to.put(h.key, h.version);  // obsolete: the replica has it or newer
      }
      hints_->remove(p.hint_key, h.version.clock);
      ++round.delivered;
      ++delivered[h.node];
    } catch (const Error& e) {
      ++round.failed;
      if (e.code() == ErrorCode::kUnavailable || e.code() == ErrorCode::kTimeout) {
        // The node is still away: its other hints wait for the next round.
        unreachable.insert(h.node);
        log(LogLevel::kDebug, "hint for node " + std::to_string(h.node) + " not delivered: " + e.what());
        continue;
      }
      // The node answered and refused it (a store it does not serve, a
      // value over its limit): it never will take it. Drop it, loudly,
      // rather than let it stand before the node's other hints forever.
      log(LogLevel::kError, "dropping a hint node " + std::to_string(h.node) + " refuses, for key " +
                                printable_key(h.key) + " of store '" + h.store + "': " + e.what());
      try {
        hints_->remove(p.hint_key, h.version.clock);
      } catch (const std::exception& drop) {
        log(LogLevel::kError, std::string("hint store: ") + drop.what());
      }
    }
  }
  for (const auto& [node, n] : delivered) {
    log(LogLevel::kInfo, "delivered " + std::to_string(n) + " hint" + (n == 1 ? "" : "s") +
                             " to node " + std::to_string(node));
  }
  return round;
}

void HintedHandoff::start() {
  std::lock_guard lock(mu_);
  if (thread_.joinable() || stopping_) return;
  thread_ = std::thread([this] { run(); });
}

void HintedHandoff::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
}

void HintedHandoff::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    cv_.wait_for(lock, options_.push_interval, [this] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    try {
      push();
    } catch (const std::exception& e) {
      log(LogLevel::kError, std::string("hinted handoff: ") + e.what());
    }
    lock.lock();
  }
}

std::map<NodeId, uint64_t> HintedHandoff::pending() {
  std::map<NodeId, uint64_t> out;
  for (auto it = hints_->scan(); it->next();) {
    const std::string_view key = it->key();
    if (key.size() < 4) throw Corruption("hint key of " + std::to_string(key.size()) + " bytes");
    NodeId node = 0;
    for (int i = 0; i < 4; ++i) node = (node << 8) | static_cast<unsigned char>(key[static_cast<size_t>(i)]);
    out[node] += it->versions().size();
  }
  return out;
}

std::vector<Hint> HintedHandoff::list() {
  std::vector<Hint> out;
  for (auto it = hints_->scan(); it->next();) {
    for (const Versioned& v : it->versions()) out.push_back(decode(it->key(), v));
  }
  return out;
}

}  // namespace cairn

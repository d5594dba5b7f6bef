#include "routing/hinted_handoff.h"

#include <set>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "layers/grpc/grpc_store.h"

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
  out.reserve(6 + hint.store.size() + hint.key.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>(hint.node >> shift));
  out.push_back(hint.remove ? 'D' : 'P');
  out.push_back(static_cast<char>(hint.store.size()));
  out += hint.store;
  out += hint.key;
  return out;
}

Hint HintedHandoff::decode_key(std::string_view bytes) {
  if (bytes.size() < 7) throw Corruption("hint key of " + std::to_string(bytes.size()) + " bytes");
  Hint h;
  for (int i = 0; i < 4; ++i) h.node = (h.node << 8) | static_cast<unsigned char>(bytes[i]);
  if (bytes[4] != 'P' && bytes[4] != 'D') throw Corruption("hint key with operation byte " + std::to_string(static_cast<unsigned char>(bytes[4])));
  h.remove = bytes[4] == 'D';
  const size_t len = static_cast<unsigned char>(bytes[5]);
  if (len == 0 || 6 + len >= bytes.size()) throw Corruption("hint key with a bad store name length");
  h.store = std::string(bytes.substr(6, len));
  h.key = std::string(bytes.substr(6 + len));
  return h;
}

void HintedHandoff::keep(const Hint& hint) {
  if (hint.node == self_) throw InvalidArgument("a hint for node " + std::to_string(self_) + " kept on itself");
  bool known = false;
  for (const NodeInfo& n : cluster_.nodes) known |= n.id == hint.node;
  if (!known) throw InvalidArgument("a hint for node " + std::to_string(hint.node) + ", which is not in the cluster");
  Versioned v{hint.remove ? std::string() : hint.version.value, hint.version.clock};
  hints_->put(encode_key(hint), v);  // obsolete: an equal or newer hint is kept already
}

Store& HintedHandoff::replica(NodeId node, const std::string& store) {
  std::lock_guard lock(replicas_mu_);
  auto& slot = replicas_[{node, store}];
  if (!slot) {
    GrpcOptions o;
    o.store = store;
    o.replica = true;
    o.timeout = options_.timeout;
    o.retries = 0;
    for (const NodeInfo& n : cluster_.nodes) {
      if (n.id == node) o.targets.push_back(n.address);
    }
    o.tls_ca = tls_.ca;
    o.tls_cert = tls_.cert;
    o.tls_key = tls_.key;
    slot = std::make_unique<GrpcStore>(std::move(o));
  }
  return *slot;
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
    Hint h;
    try {
      h = decode_key(it->key());
    } catch (const Corruption& e) {
      log(LogLevel::kError, std::string("hint store: skipping a key: ") + e.what());
      continue;
    }
    for (const Versioned& v : it->versions()) {
      Hint one = h;
      one.version = v;
      pending.push_back({std::string(it->key()), std::move(one)});
    }
  }
  for (const Pending& p : pending) {
    const Hint& h = p.hint;
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
    } catch (const std::exception& e) {
      ++round.failed;
      unreachable.insert(h.node);
      log(LogLevel::kDebug, "hint for node " + std::to_string(h.node) + " not delivered: " + e.what());
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

std::vector<Hint> HintedHandoff::list() {
  std::vector<Hint> out;
  for (auto it = hints_->scan(); it->next();) {
    const Hint h = decode_key(it->key());
    for (const Versioned& v : it->versions()) {
      Hint one = h;
      one.version = v;
      out.push_back(std::move(one));
    }
  }
  return out;
}

}  // namespace cairn

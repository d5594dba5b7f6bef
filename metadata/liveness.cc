#include "metadata/liveness.h"

#include "cairn/errors.h"
#include "cairn/log.h"

namespace cairn::internal {

std::string alive_key(const std::string& prefix, NodeId id) {
  return prefix + "alive/" + std::to_string(id);
}

EtcdLiveness::EtcdLiveness(const MetadataOrigin& origin, NodeId id, std::string address,
                           std::chrono::seconds ttl)
    : key_(alive_key(origin.prefix, id)),
      address_(std::move(address)),
      ttl_(ttl),
      version_(origin.version),
      etcd_({.endpoints = origin.etcd_endpoints,
             .timeout = std::chrono::duration_cast<std::chrono::milliseconds>(ttl) / 3}),
      thread_([this] { run(); }) {}

EtcdLiveness::~EtcdLiveness() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool EtcdLiveness::renew() {
  try {
    if (lease_ != 0) {
      try {
        etcd_.keep_alive(lease_);
      } catch (const NotFound&) {
        lease_ = 0;  // expired while etcd was away: a new one
      }
    }
    if (lease_ == 0) {
      lease_ = etcd_.grant_lease(ttl_);
      written_ = -1;
    }
    const int64_t version = version_.load();
    if (written_ != version) {
      etcd_.put(key_, encode({address_, version}), lease_);
      written_ = version;
    }
    return true;
  } catch (const Error& e) {
    if (connected_.load() || !tried_) {
      log(LogLevel::kWarn, "etcd unreachable, serving on the metadata this node has (" + key_ +
                               " not renewed): " + std::string(e.what()));
    }
    return false;
  }
}

void EtcdLiveness::report(int64_t version) {
  version_.store(version);
  std::lock_guard lock(mu_);
  cv_.notify_all();
}

std::string EtcdLiveness::encode(const Alive& a) {
  return "{\"address\": \"" + a.address + "\", \"version\": " + std::to_string(a.version) + "}";
}

std::optional<EtcdLiveness::Alive> EtcdLiveness::decode(const std::string& value) {
  // A node from before versions were reported puts its address alone: it
  // routes by no version a move can wait for.
  if (!value.empty() && value[0] != '{') return Alive{value, 0};
  // Exactly what encode() writes (addresses hold no quotes).
  const std::string a = "{\"address\": \"", v = "\", \"version\": ";
  if (!value.starts_with(a) || !value.ends_with("}")) return std::nullopt;
  const size_t at = value.find(v, a.size());
  if (at == std::string::npos) return std::nullopt;
  Alive out;
  out.address = value.substr(a.size(), at - a.size());
  const std::string n = value.substr(at + v.size(), value.size() - 1 - at - v.size());
  if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  out.version = std::stoll(n);
  return out;
}

std::map<NodeId, EtcdLiveness::Alive> EtcdLiveness::read_all(EtcdClient& etcd,
                                                              const std::string& prefix) {
  std::map<NodeId, Alive> out;
  const std::string under = prefix + "alive/";
  for (const auto& e : etcd.get_prefix(under)) {
    const auto a = decode(e.value);
    if (!a) continue;
    try {
      out[static_cast<NodeId>(std::stoul(e.key.substr(under.size())))] = *a;
    } catch (const std::exception&) {
      // not a node's key
    }
  }
  return out;
}

void EtcdLiveness::run() {
  for (;;) {
    const bool ok = renew();
    tried_ = true;
    if (ok && !connected_.load()) log(LogLevel::kInfo, "etcd reached: " + key_ + " is on a lease");
    connected_.store(ok);
    std::unique_lock lock(mu_);
    const int64_t seen = ok ? written_ : version_.load();
    // Wake for the next renewal, or at once for a version to report.
    if (cv_.wait_for(lock, ttl_ / 3, [&] { return stopping_ || version_.load() != seen; })) {
      if (stopping_) break;
    }
  }
  if (lease_ == 0) return;
  try {
    etcd_.revoke(lease_);
  } catch (const Error&) {
    // etcd away: the lease runs out by itself.
  }
}

}  // namespace cairn::internal

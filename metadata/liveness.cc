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
        return true;
      } catch (const NotFound&) {
        lease_ = 0;  // expired while etcd was away: a new one
      }
    }
    lease_ = etcd_.grant_lease(ttl_);
    etcd_.put(key_, address_, lease_);
    return true;
  } catch (const Error& e) {
    if (connected_.load() || !tried_) {
      log(LogLevel::kWarn, "etcd unreachable, serving on the config read at start (" + key_ +
                               " not renewed): " + std::string(e.what()));
    }
    return false;
  }
}

void EtcdLiveness::run() {
  for (;;) {
    const bool ok = renew();
    tried_ = true;
    if (ok && !connected_.load()) log(LogLevel::kInfo, "etcd reached: " + key_ + " is on a lease");
    connected_.store(ok);
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, ttl_ / 3, [&] { return stopping_; })) break;
  }
  if (lease_ == 0) return;
  try {
    etcd_.revoke(lease_);
  } catch (const Error&) {
    // etcd away: the lease runs out by itself.
  }
}

}  // namespace cairn::internal

#include "metadata/follower.h"

#include "cairn/errors.h"
#include "cairn/log.h"

namespace cairn::internal {

MetadataFollower::MetadataFollower(MetadataOrigin origin, std::string what, Apply apply)
    : origin_(std::move(origin)),
      key_(origin_.prefix + "config"),
      what_(std::move(what)),
      apply_(std::move(apply)),
      etcd_({.endpoints = origin_.etcd_endpoints}),
      version_(origin_.version) {
  // The watch covers exactly the config key: the prefix "config" would
  // also match keys that start with it.
  watch_ = etcd_.watch_prefix(
      key_, origin_.version,
      [this](const EtcdClient::Update& u) {
        if (!connected_.exchange(true)) {
          log(LogLevel::kInfo, what_ + ": etcd reached again; following " + key_);
        }
        auto take = [&](const EtcdClient::Entry& e) {
          if (e.key == key_) offer(e.value, e.mod_revision);
        };
        if (u.reset) {
          for (const auto& e : u.snapshot) take(e);
        } else {
          for (const auto& ev : u.events) {
            if (!ev.deleted) take(ev.entry);
          }
        }
      },
      [this](const std::string& why) {
        if (connected_.exchange(false)) {
          log(LogLevel::kWarn, what_ + ": etcd unreachable, routing on metadata version " +
                                   std::to_string(version_.load()) + " until it is back (" + why +
                                   ")");
        }
      });
}

MetadataFollower::~MetadataFollower() { stop(); }

void MetadataFollower::stop() {
  watch_.reset();  // waits for a callback in progress
  std::lock_guard lock(apply_mu_);
  stopped_ = true;
}

void MetadataFollower::refresh() {
  std::optional<EtcdClient::Entry> e = etcd_.get(key_);
  if (!e) throw NotFound(what_ + ": etcd has no cluster config at key '" + key_ + "'");
  offer(e->value, e->mod_revision);
}

void MetadataFollower::offer(const std::string& value, int64_t version) {
  // Under the lock even when the version is seen: a refresh that finds the
  // watch applying this version returns once it is applied (an apply is
  // quick: it switches views, it waits for nothing).
  std::lock_guard lock(apply_mu_);
  if (stopped_ || version <= version_.load()) return;
  version_.store(version);
  try {
    const Config config = Config::parse(value, "etcd:" + key_ + "@" + std::to_string(version));
    apply_(config, version);
  } catch (const std::exception& e) {
    log(LogLevel::kError, what_ + ": metadata version " + std::to_string(version) +
                              " not applied: " + e.what());
  }
}

}  // namespace cairn::internal

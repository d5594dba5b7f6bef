// Follows a cluster's config kept in etcd: watches its key and hands each
// newer version to whoever routes by it (a node's stores, a smart
// client's `route` layer), and reads it again on demand when a node says
// the caller's metadata is stale. While etcd is away it keeps the last
// version it saw, says so once in the log, and goes on when etcd is back
// (the watch resumes where it left off).

#ifndef CAIRN_METADATA_FOLLOWER_H_
#define CAIRN_METADATA_FOLLOWER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "cairn/config.h"
#include "metadata/etcd_client.h"

namespace cairn::internal {

class MetadataFollower {
 public:
  // Gets each config newer than the last one applied, with its version,
  // one at a time; it must not wait for long (a refresh waits for it).
  // What it throws is logged; the version still counts as seen.
  using Apply = std::function<void(const Config& config, int64_t version)>;

  // Starts watching `origin`'s config key after `origin.version` (the
  // version the caller loaded). `what` names the follower in logs.
  MetadataFollower(MetadataOrigin origin, std::string what, Apply apply);
  // Stops the watch; no apply runs after it returns.
  ~MetadataFollower();
  MetadataFollower(const MetadataFollower&) = delete;
  MetadataFollower& operator=(const MetadataFollower&) = delete;

  // Reads the config now and applies it if it is newer. Throws Unavailable
  // when etcd cannot be reached.
  void refresh();
  // Stops following: the watch ends, and neither it nor refresh() applies
  // anything after this returns.
  void stop();
  // The last version applied.
  int64_t version() const { return version_.load(); }
  // Whether the watch is connected to etcd now.
  bool connected() const { return connected_.load(); }

 private:
  // Applies `value` at `version` unless an equal or newer one was.
  void offer(const std::string& value, int64_t version);

  const MetadataOrigin origin_;
  const std::string key_;
  const std::string what_;
  const Apply apply_;
  EtcdClient etcd_;
  std::mutex apply_mu_;  // one apply at a time, in version order
  std::atomic<int64_t> version_;
  std::atomic<bool> connected_{true};
  bool stopped_ = false;  // guarded by apply_mu_
  std::unique_ptr<EtcdClient::Watch> watch_;  // last: it calls back into the rest
};

}  // namespace cairn::internal

#endif  // CAIRN_METADATA_FOLLOWER_H_

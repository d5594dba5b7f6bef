// A node's liveness in etcd: key PREFIX + "alive/" + ID holds
// {"address": A, "version": V} on a lease the node keeps alive, so that
// the key goes when the node does (or loses etcd for longer than the
// lease). V is the metadata version the node routes by, reported once no
// write routed by an older one is in flight from it: what `cairn admin
// rebalance` waits for between its steps. What `cairn admin describe`
// shows; the routing layer's failure detector stays the authority on whom
// to call.

#ifndef CAIRN_METADATA_LIVENESS_H_
#define CAIRN_METADATA_LIVENESS_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "cairn/config.h"
#include "metadata/etcd_client.h"

namespace cairn::internal {

// The key of node `id`'s liveness under `prefix`.
std::string alive_key(const std::string& prefix, NodeId id);

class EtcdLiveness {
 public:
  // Starts keeping node `id` alive at `origin`'s etcd, renewing the lease
  // every third of `ttl`. Never throws for etcd being away: it logs, and
  // tries again each renewal.
  EtcdLiveness(const MetadataOrigin& origin, NodeId id, std::string address,
               std::chrono::seconds ttl);
  // Revokes the lease (a third of the TTL at most) and stops.
  ~EtcdLiveness();
  EtcdLiveness(const EtcdLiveness&) = delete;
  EtcdLiveness& operator=(const EtcdLiveness&) = delete;

  // Whether the last renewal reached etcd.
  bool connected() const { return connected_.load(); }
  // Reports metadata version `version` (at once if etcd answers, else at
  // the next renewal that does).
  void report(int64_t version);

  // The value of a liveness key, and back (nullopt if malformed).
  struct Alive {
    std::string address;
    int64_t version = 0;
  };
  static std::string encode(const Alive& a);
  static std::optional<Alive> decode(const std::string& value);
  // Every node's liveness key under `prefix`, by node id (a node without
  // one holds no lease). Throws what the etcd client throws.
  static std::map<NodeId, Alive> read_all(EtcdClient& etcd, const std::string& prefix);

 private:
  void run();
  bool renew();  // true if the key is on a live lease

  const std::string key_;
  const std::string address_;
  const std::chrono::seconds ttl_;
  std::atomic<int64_t> version_;  // to report
  EtcdClient etcd_;
  int64_t lease_ = 0;   // the thread's own
  int64_t written_ = -1;  // the thread's own: the version the key holds
  bool tried_ = false;  // the thread's own: a renewal was tried
  std::atomic<bool> connected_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;     // last: starts once the rest is set
};

}  // namespace cairn::internal

#endif  // CAIRN_METADATA_LIVENESS_H_

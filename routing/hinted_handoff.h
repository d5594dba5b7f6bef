// HintedHandoff: a node's keeper of the writes other nodes missed.
//
// When a replica is down, the routing layer that wrote around it leaves a
// hint (routing/hint.h) on a live node: the coordinating node itself when
// the nodes route, or the key's home node when a smart client routes (via
// the Admin PutHint call). Hints live in the node's hint store, the
// `cluster: hints:` stack of its config (an LMDB engine keeps them across
// restarts), one entry per (replica, store, operation, key), so a newer hint
// for the same key supersedes an older one by the usual version rules.
//
// A pusher thread scans the hints every `push_interval` and delivers each
// to its replica (a put, or a versioned delete, to the replica's own copy
// of the store); a delivered hint, or one the replica already has (its put
// comes back obsolete), is deleted. A replica that fails a delivery is not
// tried again until the next round.
//
// Thread-safe.

#ifndef CAIRN_ROUTING_HINTED_HANDOFF_H_
#define CAIRN_ROUTING_HINTED_HANDOFF_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cairn/config.h"
#include "cairn/store.h"
#include "routing/hint.h"

namespace cairn {

struct HintedHandoffOptions {
  std::chrono::milliseconds push_interval{1000};
  // Deadline of each delivery call.
  std::chrono::milliseconds timeout{5000};
};

class HintedHandoff {
 public:
  // Keeps hints in `hints` (owned) for delivery to the nodes of `cluster`;
  // `tls` holds this node's files for calls to the others (all empty:
  // plaintext).
  HintedHandoff(std::unique_ptr<Store> hints, ClusterInfo cluster, NodeId self, ServerTls tls,
                HintedHandoffOptions options = {});
  // stop(), then closes the hint store.
  ~HintedHandoff();
  // Learns the nodes of newer cluster metadata (those a move brings in
  // too): hints for them are kept and delivered. Nodes it knew stay known,
  // so that hints for a node that left still reach it.
  void learn(const ClusterInfo& cluster);
  HintedHandoff(const HintedHandoff&) = delete;
  HintedHandoff& operator=(const HintedHandoff&) = delete;

  // Keeps `hint` until it is delivered. Throws InvalidArgument for a hint
  // for this node or an unknown one, and what the hint store throws.
  void keep(const Hint& hint);

  struct Round {
    size_t delivered = 0;  // handed over (or already there) and deleted
    size_t failed = 0;     // kept for a later round
    size_t too_old = 0;    // older than their store's reaping grace: dropped
  };
  // Hints of `store` whose write is older than `max_age` are dropped, not
  // delivered: once a tombstone that succeeds such a write may have been
  // reaped (routing/reaper.h), delivering the write could bring the value
  // back. The replicas that took the write keep it. 0: no limit.
  void set_max_age(const std::string& store, std::chrono::milliseconds max_age);
  // One pass over every hint. Runs on the pusher; tests call it directly.
  Round push();
  // Starts the pusher thread. Idempotent.
  void start();
  // Stops the pusher thread. Idempotent.
  void stop();
  // stop(), then closes the hint store; keep() fails after it. Idempotent.
  void close();

  // Hints dropped as too old since the start.
  uint64_t dropped_too_old() const;

  // The hints kept now, in no particular order.
  std::vector<Hint> list();
  // How many hints are kept, by the node each is for (read from the keys).
  std::map<NodeId, uint64_t> pending();

  // The hint store's key for a hint: node (4 bytes, big-endian), 'P' or
  // 'D', the store name's length (1 byte) and the store name, then 0x00 and
  // the key, or, for a key longer than kInlineKey, 0x01 and its 8-byte hash
  // (so hint keys stay within every engine's key limit).
  static std::string encode_key(const Hint& hint);
  // The hint store's value: the key's length (4 bytes, big-endian), the
  // key, then the value written (empty for a delete).
  static std::string encode_value(const Hint& hint);
  // The hint from a hint store entry (the value carries the key). Throws
  // Corruption for bytes the encoders did not make.
  static Hint decode(std::string_view key, const Versioned& stored);
  static constexpr size_t kInlineKey = 256;

 private:
  Store& replica(NodeId node, const std::string& store);
  void run();

  std::unique_ptr<Store> hints_;
  ClusterInfo cluster_;  // guarded by replicas_mu_
  NodeId self_;
  ServerTls tls_;
  HintedHandoffOptions options_;
  std::mutex replicas_mu_;  // guards replicas_
  std::map<std::pair<NodeId, std::string>, std::unique_ptr<Store>> replicas_;
  std::mutex push_mu_;  // one push() at a time
  std::mutex age_mu_;   // guards max_age_
  std::map<std::string, std::chrono::milliseconds> max_age_;
  std::atomic<uint64_t> dropped_too_old_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread thread_;
};

}  // namespace cairn

#endif  // CAIRN_ROUTING_HINTED_HANDOFF_H_

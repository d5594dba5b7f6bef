// Reaper: removes what a routed store no longer needs from a node's
// replicas: delete tombstones, and versions a `ttl` layer above the route
// says have expired (docs/ttl.md, "Tombstones").
//
// A version is *dead* once it is a tombstone, or has expired, and `grace`
// has passed since (the delete's time, or the expiry). A node reaps the
// dead versions of a key of its own replica only when every replica of
// the key answers and none holds a live version they succeed:
//   - one holding a live version that a dead one succeeds is sent that
//     dead version (as read repair would), and the key waits for the next
//     pass;
//   - a live version concurrent with every dead one (a sibling another
//     writer made) stays; the dead ones go from beside it;
//   - a version dead but within its grace anywhere defers the key;
//   - a replica that does not answer (down, partitioned) stops the reap:
//     its copy might be older than the tombstone, and would come back if
//     the tombstone were gone. So a node down longer than the grace still
//     finds the tombstones when it returns; hints older than three
//     quarters of the grace are dropped rather than delivered (HintedHandoff::set_max_age), so that
//     no write older than a reaped tombstone arrives after it.
// Then it removes the dead versions from every replica (their engines
// delete them for good). Each replica of a key may do this; it is
// idempotent.
//
// A pass scans the node's own replica at a bounded rate; passes run on a
// thread of the reaper's own. Thread-safe.

#ifndef CAIRN_ROUTING_REAPER_H_
#define CAIRN_ROUTING_REAPER_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "cairn/store.h"

namespace cairn {

class RoutedStore;

struct ReapOptions {
  // How long after a delete (or an expiry) its version may be reaped.
  std::chrono::milliseconds grace{std::chrono::hours(1)};
  // A pass over the node's replica this often (0: no thread; pass() only).
  std::chrono::milliseconds interval{std::chrono::minutes(1)};
  // Keys examined per second at most.
  uint64_t rate = 1000;
  // Now, in ms since the Unix epoch (tests move it).
  std::function<int64_t()> now;
};

struct ReapStats {
  uint64_t passes = 0;
  uint64_t keys_examined = 0;
  uint64_t keys_reaped = 0;      // removed from every replica
  uint64_t versions_removed = 0; // replica removes that deleted something
  uint64_t held_unreachable = 0; // keys kept: a replica did not answer
  uint64_t repaired = 0;         // dead versions sent to a replica lacking them
};

class Reaper {
 public:
  // Reaps from `route`'s replicas, `route` being a node's (it has self()).
  // REQUIRES: `route` outlives the reaper (it stops the reaper on close).
  Reaper(RoutedStore& route, ReapOptions options);
  ~Reaper();
  Reaper(const Reaper&) = delete;
  Reaper& operator=(const Reaper&) = delete;

  // How to tell an expired version: what a ttl layer above the route says
  // of a version as stored (its value carries the TTL), at a time. Unset:
  // only tombstones die.
  void set_expired(std::function<bool(const Versioned&, int64_t now_ms)> expired);

  // One pass now (at the configured rate); what it did.
  ReapStats pass();
  // Totals since the start.
  ReapStats stats() const;
  // Stops the thread (a pass in progress ends at its next key).
  void stop();

 private:
  bool dead(const Versioned& v, int64_t at) const;
  void reap_key(std::string_view key, int64_t now, ReapStats* out);
  void run();

  RoutedStore& route_;
  ReapOptions options_;
  mutable std::mutex mu_;
  std::function<bool(const Versioned&, int64_t)> expired_;  // guarded by mu_
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  ReapStats total_;        // guarded by mu_
  std::mutex pass_mu_;     // one pass at a time
  std::thread thread_;
};

}  // namespace cairn

#endif  // CAIRN_ROUTING_REAPER_H_

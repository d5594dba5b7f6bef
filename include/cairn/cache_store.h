// CacheStore, the `cache` layer: keeps the versions it reads, so that a
// hot key is answered in-process, kept exact by invalidations from each
// key's home node (H2O's DKV; docs/cache.md has the whole story).
//
// Over a `route` layer (a smart client, or a node's stack above its
// route), the cache opens one coherence stream to each node. A miss asks
// the key's home (the first node of its preference list) to track the key
// while it reads through the stack below; the value is kept only if no
// invalidation of the key arrived meanwhile and it is at least as new as
// what the home held when it began tracking. A write to a key's home then
// invalidates it here:
//
//   strict  before the write is acknowledged to its writer. Once a put has
//           returned, no cache answers with an older version. A cache
//           that stops acknowledging is dropped, and the write waits for
//           the cache's lease to end (`lease`, 2 s by default): a cache
//           that hears nothing from a home for its lease stops answering
//           from memory.
//   lazy    right after the write is acknowledged. A cached read may be
//           older than a write that has returned, for about one message's
//           time; never for longer than the lease when streams fail.
//
// Whatever it cannot vouch for it drops: everything a home's keys when its
// stream ends, a sequence number is missed, or the lease runs out;
// everything when the cluster's metadata changes (a rebalance).
//
// The cache's own puts and deletes drop the key here before they go to the
// home, so a read after a write reads through (and sees the write when
// R + W > N). Without a route below (an embedded stack), every write
// passes through the cache, which stays exact without any stream.
//
// Memory is bounded by bytes and entries. Eviction is CLOCK with a small
// frequency count per entry (up to 3): a hit costs one relaxed store at
// most and no lock is written; a hot key of a skewed workload keeps a
// count the sweeping hand wears down slowly, while keys read once go on
// the first sweep.
//
// Thread-safe.

#ifndef CAIRN_CACHE_STORE_H_
#define CAIRN_CACHE_STORE_H_

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "cairn/export.h"
#include "cairn/forwarding_store.h"

CAIRN_API_BEGIN
namespace cairn {

struct CacheOptions {
  std::string store;  // the store's name on the nodes
  // Bounds on what is kept: bytes of keys and values, and keys.
  uint64_t max_bytes = 64 << 20;
  uint64_t max_entries = 1 << 20;
  // Strict: invalidated before a write is acknowledged. Lazy: right after.
  bool strict = true;
  // How long the cache answers from memory for a home it has not heard
  // from (100 ms to 60 s; nodes refuse more). Renewed every quarter of it.
  std::chrono::milliseconds lease{2000};
};

struct CacheStats {
  uint64_t hits = 0;
  uint64_t misses = 0;
  // Misses read through without caching: no stream to the key's home, a
  // track refused, or a value that raced a write.
  uint64_t uncached = 0;
  uint64_t invalidations = 0;  // received
  uint64_t evictions = 0;
  // Times a home's keys (or all keys) were dropped: a stream ended, a
  // sequence number was missed, a lease ran out, the metadata changed.
  uint64_t flushes = 0;
  uint64_t entries = 0;  // now
  uint64_t bytes = 0;    // now
};

class CacheStore final : public ForwardingStore {
 public:
  // Throws InvalidArgument if `inner` reaches nodes without a `route`
  // layer (a server-routed client: the cache would not know the homes).
  CacheStore(std::unique_ptr<Store> inner, CacheOptions options);
  ~CacheStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  // Passed down, the key dropped here before and after (as for a put).
  AtomicResult atomic(std::string_view key, std::string_view function,
                      std::string_view argument) override;
  void close() override;
  std::string describe() const override;

  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  bool async_calls_block() const override { return inner().async_calls_block(); }

  CacheStats stats() const;
  // A report of the figures, one per line ("hits 12").
  std::string report() const;
  // Drops everything (the next reads read through).
  void clear();

  struct Shared;

 private:
  std::shared_ptr<Shared> s_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_CACHE_STORE_H_

// The home side of cache coherence (H2O's DKV, docs/cache.md): a node keeps
// a Directory of which caches hold which keys of its stores, and every
// write to its own copy of a store (through a TrackingStore, which the
// config builder puts around a node's replica) invalidates those keys at
// those caches, before the write is acknowledged for a strict cache, right
// after for a lazy one.
//
//   track       a cache that fetches a key asks its home to track it; the
//               answer carries the clocks the home holds then, so a value
//               the cache read elsewhere that is older is never cached.
//   invalidate  one-shot: a write sends the key to each cache that tracks
//               it and forgets them; they track it again on their next
//               fetch. Events are numbered per subscription, so a cache
//               sees a gap.
//   lease       a strict cache pings; each pong renews its lease, counted
//               by the cache from when it sent the ping. A strict cache
//               that does not acknowledge an invalidation in time is
//               dropped, and the write waits until its lease has run out:
//               by then the cache has stopped answering from memory, even
//               if it never heard that it was dropped.
//
// Thread-safe.

#ifndef CAIRN_LAYERS_CACHE_DIRECTORY_H_
#define CAIRN_LAYERS_CACHE_DIRECTORY_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/forwarding_store.h"
#include "cairn/store.h"

namespace cairn::internal {

enum class Coherence : uint8_t { kStrict, kLazy };

// One event a home sends a cache, in order, numbered by `seq` (1, 2, ...).
struct CoherenceEvent {
  enum class Kind : uint8_t { kTracked, kInvalidate, kPong };
  Kind kind = Kind::kPong;
  uint64_t seq = 0;
  uint64_t id = 0;       // kTracked, kPong: the request's
  bool tracked = false;  // kTracked
  std::string why;       // kTracked when not tracked
  std::vector<VectorClock> clocks;  // kTracked: the home's versions then
  std::string store;     // kInvalidate
  std::string key;       // kInvalidate
};

// Where a subscription's events go: a gRPC Watch stream, or a cache in the
// same process. Implementations must not block and must not call back into
// the Directory.
class EventSink {
 public:
  virtual ~EventSink() = default;
  // Queues `event` to go after those queued before. False if the sink is
  // closed or cannot take more: the directory then drops the subscription.
  virtual bool send(CoherenceEvent event) = 0;
  // Ends the subscription from the home's side: the cache sees its stream
  // end (and drops what it holds from here).
  virtual void close(const std::string& why) = 0;
};

class Directory {
 public:
  struct Options {
    // Keys tracked at once, all subscriptions together. A track beyond it
    // is refused (the cache then serves the key without caching it).
    size_t max_keys = size_t{1} << 20;
    // How long a strict cache has to acknowledge an invalidation.
    std::chrono::milliseconds ack_timeout{1000};
    // The longest lease a cache may ask for (its hello names its own).
    std::chrono::milliseconds max_lease{60000};
  };

  struct Stats {
    uint64_t subscriptions = 0;   // open now
    uint64_t tracked_keys = 0;    // now
    uint64_t tracks = 0;          // accepted since start
    uint64_t refused_tracks = 0;  // since start
    uint64_t invalidations = 0;   // sent since start
    uint64_t dropped = 0;         // subscriptions dropped for not acknowledging
  };

  class Subscription;
  struct Impl;

  explicit Directory(Options options);
  Directory() : Directory(Options{}) {}
  ~Directory();
  Directory(const Directory&) = delete;
  Directory& operator=(const Directory&) = delete;

  const Options& options() const;

  // A new subscription sending to `sink`, for a cache whose lease is
  // `lease` (how long it answers from memory after a ping). Throws
  // InvalidArgument for a lease above max_lease. The caller calls end()
  // when its stream ends.
  std::shared_ptr<Subscription> subscribe(Coherence mode, std::chrono::milliseconds lease,
                                          std::shared_ptr<EventSink> sink);

  // The node's own copy of `store`, whose versions a track reports. Set
  // by TrackingStore; the replica must outlive the directory's use of it
  // (detach before it goes).
  void attach(const std::string& store, Store* replica);
  void detach(const std::string& store);

  // After a write of `key` to the node's copy of `store`: sends its
  // invalidation to each subscription tracking it and forgets them. `done`
  // runs once every strict one has acknowledged (or was dropped and its
  // lease ran out): inline when none tracks the key.
  void written(std::string_view store, std::string_view key, std::function<void()> done);

  Stats stats() const;

 private:
  std::shared_ptr<Impl> impl_;
};

class Directory::Subscription {
 public:
  // What the cache sends (see cairn.proto, WatchRequest).
  void track(uint64_t id, std::string_view store, std::string_view key);
  void untrack(std::string_view store, std::string_view key);
  void ack(uint64_t seq);
  void ping(uint64_t id);
  // The stream ended. Idempotent.
  void end();

  struct State;
  explicit Subscription(std::shared_ptr<State> state) : s_(std::move(state)) {}
  ~Subscription();

 private:
  std::shared_ptr<State> s_;
};

// Wraps a node's own copy of a store: each write that changes it tells the
// directory, and answers once the directory says the caches have heard.
class TrackingStore final : public ForwardingStore {
 public:
  TrackingStore(std::unique_ptr<Store> inner, std::string store,
                std::shared_ptr<Directory> directory);
  ~TrackingStore() override;

  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
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
  // A blocking write may wait for strict caches to acknowledge, over the
  // network: servers must not run it on their network threads (which read
  // those acknowledgements). The async calls never wait.
  bool writes_may_block() const override { return true; }

  const std::shared_ptr<Directory>& directory() const { return directory_; }
  const std::string& store_name() const { return store_; }

 private:
  const std::string store_;
  const std::shared_ptr<Directory> directory_;
};

}  // namespace cairn::internal

#endif  // CAIRN_LAYERS_CACHE_DIRECTORY_H_

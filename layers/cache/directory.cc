#include "layers/cache/directory.h"

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "cairn/errors.h"
#include "core/timer.h"

namespace cairn::internal {

namespace {

using Clock = std::chrono::steady_clock;

// Runs `done` once `left` arrivals have been made.
struct Countdown {
  Countdown(int n, std::function<void()> d) : left(n), done(std::move(d)) {}
  void arrive() {
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) done();
  }
  std::atomic<int> left;
  std::function<void()> done;
};

// Directory keys: the store's name, a NUL, the key.
std::string entry_key(std::string_view store, std::string_view key) {
  std::string k;
  k.reserve(store.size() + 1 + key.size());
  k.append(store).push_back('\0');
  k.append(key);
  return k;
}

constexpr size_t kShards = 64;

}  // namespace

struct Directory::Subscription::State : std::enable_shared_from_this<State> {
  State(std::weak_ptr<Directory::Impl> d, Coherence m, std::chrono::milliseconds l,
        std::shared_ptr<EventSink> s)
      : dir(std::move(d)), mode(m), lease(l), sink(std::move(s)) {}

  // Sends `e` numbered next. REQUIRES: mu held. False if the sink refused.
  bool send_locked(CoherenceEvent e) {
    e.seq = ++next_seq;
    return sink->send(std::move(e));
  }
  // Sends `key`'s invalidation; a strict subscription makes `wait` wait for
  // its acknowledgement.
  void invalidate(std::string_view store, std::string_view key,
                  const std::shared_ptr<Countdown>& wait);
  // Ends the subscription: closes the sink, forgets its keys, and lets the
  // writes waiting on it go once its lease has run out.
  void drop(const std::string& why, bool timed_out);

  const std::weak_ptr<Directory::Impl> dir;
  const Coherence mode;
  const std::chrono::milliseconds lease;
  const std::shared_ptr<EventSink> sink;

  std::mutex mu;
  bool alive = true;                // guarded by mu
  uint64_t next_seq = 0;            // guarded by mu
  uint64_t acked = 0;               // guarded by mu
  Clock::time_point last_pong{};    // guarded by mu
  Clock::time_point lease_end{};    // guarded by mu: once dropped
  // Strict writes waiting, by the sequence number of their invalidation.
  std::map<uint64_t, std::vector<std::shared_ptr<Countdown>>> waits;  // guarded by mu
};

using State = Directory::Subscription::State;

struct Directory::Impl {
  explicit Impl(Options o) : options(o) {}

  struct alignas(64) Shard {
    std::mutex mu;
    absl::flat_hash_map<std::string, std::vector<std::shared_ptr<State>>> keys;  // guarded by mu
  };
  Shard& shard_of(std::string_view k) {
    return shards[std::hash<std::string_view>{}(k) % kShards];
  }

  Store* replica_of(std::string_view store) {
    std::lock_guard lock(stores_mu);
    auto it = stores.find(store);
    return it == stores.end() ? nullptr : it->second;
  }

  // Removes `s` from every key it tracks.
  void forget(const State* s) {
    for (Shard& shard : shards) {
      std::lock_guard lock(shard.mu);
      for (auto it = shard.keys.begin(); it != shard.keys.end();) {
        auto& subs = it->second;
        std::erase_if(subs, [&](const std::shared_ptr<State>& p) { return p.get() == s; });
        if (subs.empty()) {
          shard.keys.erase(it++);
          tracked_keys.fetch_sub(1, std::memory_order_relaxed);
        } else {
          ++it;
        }
      }
    }
  }

  const Options options;
  Shard shards[kShards];
  std::atomic<uint64_t> tracked_keys{0};
  std::atomic<uint64_t> tracks{0};
  std::atomic<uint64_t> refused{0};
  std::atomic<uint64_t> invalidations{0};
  std::atomic<uint64_t> dropped{0};

  std::mutex stores_mu;
  std::map<std::string, Store*, std::less<>> stores;  // guarded by stores_mu

  std::mutex subs_mu;
  std::set<const State*> subs;  // open subscriptions; guarded by subs_mu
};

void State::invalidate(std::string_view store, std::string_view key,
                       const std::shared_ptr<Countdown>& wait) {
  auto d = dir.lock();
  bool refused = false;
  uint64_t seq = 0;
  {
    std::lock_guard lock(mu);
    if (!alive) {
      // Dropped, but it may still answer from memory until its lease
      // ends: a strict write of a key it held waits until then.
      if (mode == Coherence::kStrict && Clock::now() < lease_end) {
        wait->left.fetch_add(1, std::memory_order_relaxed);
        Timer::shared().at(lease_end, [wait] { wait->arrive(); });
      }
      return;
    }
    CoherenceEvent e;
    e.kind = CoherenceEvent::Kind::kInvalidate;
    e.store = std::string(store);
    e.key = std::string(key);
    refused = !send_locked(std::move(e));
    seq = next_seq;
    // Registered even if the sink refused it: drop() below then makes the
    // write wait out the lease.
    if (mode == Coherence::kStrict) {
      wait->left.fetch_add(1, std::memory_order_relaxed);
      waits[seq].push_back(wait);
    }
  }
  if (d) d->invalidations.fetch_add(1, std::memory_order_relaxed);
  if (refused) {
    drop("the cache's stream cannot take more invalidations", false);
    return;
  }
  if (mode == Coherence::kStrict && d) {
    Timer::shared().after(d->options.ack_timeout, [w = weak_from_this(), seq, t = d->options.ack_timeout] {
      auto self = w.lock();
      if (!self) return;
      bool late;
      {
        std::lock_guard lock(self->mu);
        late = self->alive && self->acked < seq;
      }
      if (late) {
        self->drop("the cache did not acknowledge invalidation " + std::to_string(seq) +
                       " within " + std::to_string(t.count()) + " ms",
                   true);
      }
    });
  }
}

void State::drop(const std::string& why, bool timed_out) {
  std::map<uint64_t, std::vector<std::shared_ptr<Countdown>>> waiting;
  auto d = dir.lock();
  {
    std::lock_guard lock(mu);
    if (!alive) return;
    alive = false;
    waiting.swap(waits);
    lease_end = last_pong + lease;
  }
  sink->close(why);
  if (d) {
    {
      std::lock_guard lock(d->subs_mu);
      d->subs.erase(this);
    }
    if (timed_out) d->dropped.fetch_add(1, std::memory_order_relaxed);
    // A strict cache's keys stay registered until its lease ends, so that
    // writes of them wait until it has stopped answering (invalidate());
    // then they go.
    if (mode == Coherence::kStrict && Clock::now() < lease_end) {
      Timer::shared().at(lease_end, [w = std::weak_ptr<Directory::Impl>(d), self = shared_from_this()] {
        if (auto dd = w.lock()) {
          // Off the timer's thread: the sweep may be long.
          std::thread([dd, self] { dd->forget(self.get()); }).detach();
        }
      });
    } else {
      d->forget(this);
    }
  }
  // The cache may still answer from memory until its lease runs out: the
  // writes it holds up wait until then.
  const bool now = Clock::now() >= lease_end;
  for (auto& [seq, list] : waiting) {
    for (auto& c : list) {
      if (now) {
        c->arrive();
      } else {
        Timer::shared().at(lease_end, [c] { c->arrive(); });
      }
    }
  }
}

Directory::Directory(Options options) : impl_(std::make_shared<Impl>(options)) {}

Directory::~Directory() {
  std::vector<std::shared_ptr<State>> all;
  for (Impl::Shard& shard : impl_->shards) {
    std::lock_guard lock(shard.mu);
    for (auto& [k, subs] : shard.keys) all.insert(all.end(), subs.begin(), subs.end());
    shard.keys.clear();
  }
}

const Directory::Options& Directory::options() const { return impl_->options; }

std::shared_ptr<Directory::Subscription> Directory::subscribe(Coherence mode,
                                                              std::chrono::milliseconds lease,
                                                              std::shared_ptr<EventSink> sink) {
  if (lease <= std::chrono::milliseconds(0) || lease > impl_->options.max_lease) {
    // Never shortened behind the cache's back: it would answer from
    // memory longer than a write waits for it.
    throw InvalidArgument("a cache's lease of " + std::to_string(lease.count()) +
                          " ms; this node takes 1 to " +
                          std::to_string(impl_->options.max_lease.count()) + " ms");
  }
  auto state = std::make_shared<State>(impl_, mode, lease, std::move(sink));
  state->last_pong = Clock::now();
  {
    std::lock_guard lock(impl_->subs_mu);
    impl_->subs.insert(state.get());
  }
  return std::make_shared<Subscription>(std::move(state));
}

void Directory::attach(const std::string& store, Store* replica) {
  std::lock_guard lock(impl_->stores_mu);
  impl_->stores[store] = replica;
}

void Directory::detach(const std::string& store) {
  std::lock_guard lock(impl_->stores_mu);
  impl_->stores.erase(store);
}

void Directory::written(std::string_view store, std::string_view key,
                        std::function<void()> done) {
  // Always under the shard's lock, never a lock-free "anyone tracking?"
  // check: a track registers under this lock before it reads the replica,
  // so either it reads this write or this finds it registered.
  const std::string k = entry_key(store, key);
  Impl::Shard& shard = impl_->shard_of(k);
  std::vector<std::shared_ptr<State>> subs;
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.keys.find(k);
    if (it != shard.keys.end()) {
      subs = std::move(it->second);
      shard.keys.erase(it);
      impl_->tracked_keys.fetch_sub(1, std::memory_order_relaxed);
    }
  }
  if (subs.empty()) {
    done();
    return;
  }
  auto wait = std::make_shared<Countdown>(1, std::move(done));
  for (const auto& s : subs) s->invalidate(store, key, wait);
  wait->arrive();
}

Directory::Stats Directory::stats() const {
  Stats s;
  {
    std::lock_guard lock(impl_->subs_mu);
    s.subscriptions = impl_->subs.size();
  }
  s.tracked_keys = impl_->tracked_keys.load(std::memory_order_relaxed);
  s.tracks = impl_->tracks.load(std::memory_order_relaxed);
  s.refused_tracks = impl_->refused.load(std::memory_order_relaxed);
  s.invalidations = impl_->invalidations.load(std::memory_order_relaxed);
  s.dropped = impl_->dropped.load(std::memory_order_relaxed);
  return s;
}

// ---- Subscription -----------------------------------------------------------

Directory::Subscription::~Subscription() { end(); }

void Directory::Subscription::end() { s_->drop("the stream ended", false); }

void Directory::Subscription::track(uint64_t id, std::string_view store, std::string_view key) {
  auto d = s_->dir.lock();
  auto answer = [&](bool tracked, std::string why, std::vector<VectorClock> clocks) {
    CoherenceEvent e;
    e.kind = CoherenceEvent::Kind::kTracked;
    e.id = id;
    e.tracked = tracked;
    e.why = std::move(why);
    e.clocks = std::move(clocks);
    bool refused;
    {
      std::lock_guard lock(s_->mu);
      if (!s_->alive) return;
      refused = !s_->send_locked(std::move(e));
    }
    if (refused) s_->drop("the cache's stream cannot take more events", false);
  };
  if (!d) return answer(false, "the node is stopping", {});
  {
    std::lock_guard lock(s_->mu);
    if (!s_->alive) return;
  }
  Store* replica = d->replica_of(store);
  if (replica == nullptr) {
    d->refused.fetch_add(1, std::memory_order_relaxed);
    return answer(false, "this node keeps no tracked copy of store '" + std::string(store) + "'",
                  {});
  }
  const std::string k = entry_key(store, key);
  Impl::Shard& shard = d->shard_of(k);
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.keys.find(k);
    if (it == shard.keys.end()) {
      if (d->tracked_keys.load(std::memory_order_relaxed) >= d->options.max_keys) {
        d->refused.fetch_add(1, std::memory_order_relaxed);
        return answer(false,
                      "the node tracks " + std::to_string(d->options.max_keys) +
                          " keys already",
                      {});
      }
      it = shard.keys.try_emplace(k).first;
      d->tracked_keys.fetch_add(1, std::memory_order_relaxed);
    }
    auto& subs = it->second;
    if (std::find(subs.begin(), subs.end(), s_) == subs.end()) subs.push_back(s_);
  }
  d->tracks.fetch_add(1, std::memory_order_relaxed);
  // Read after registering (see written()).
  std::vector<VectorClock> clocks;
  try {
    clocks = replica->versions(key);
  } catch (const std::exception& e) {
    untrack(store, key);
    return answer(false, e.what(), {});
  }
  answer(true, "", std::move(clocks));
}

void Directory::Subscription::untrack(std::string_view store, std::string_view key) {
  auto d = s_->dir.lock();
  if (!d) return;
  const std::string k = entry_key(store, key);
  Impl::Shard& shard = d->shard_of(k);
  std::lock_guard lock(shard.mu);
  auto it = shard.keys.find(k);
  if (it == shard.keys.end()) return;
  std::erase(it->second, s_);
  if (it->second.empty()) {
    shard.keys.erase(it);
    d->tracked_keys.fetch_sub(1, std::memory_order_relaxed);
  }
}

void Directory::Subscription::ack(uint64_t seq) {
  std::vector<std::shared_ptr<Countdown>> ready;
  {
    std::lock_guard lock(s_->mu);
    if (seq <= s_->acked) return;
    s_->acked = std::min(seq, s_->next_seq);
    auto end = s_->waits.upper_bound(s_->acked);
    for (auto it = s_->waits.begin(); it != end; ++it) {
      ready.insert(ready.end(), it->second.begin(), it->second.end());
    }
    s_->waits.erase(s_->waits.begin(), end);
  }
  for (auto& c : ready) c->arrive();
}

void Directory::Subscription::ping(uint64_t id) {
  bool refused;
  {
    std::lock_guard lock(s_->mu);
    if (!s_->alive) return;
    s_->last_pong = Clock::now();
    CoherenceEvent e;
    e.kind = CoherenceEvent::Kind::kPong;
    e.id = id;
    refused = !s_->send_locked(std::move(e));
  }
  if (refused) s_->drop("the cache's stream cannot take more events", false);
}

// ---- TrackingStore ------------------------------------------------------------

namespace {

// Waits for written() to call back (at once, when no cache tracks the key).
void wait_written(Directory& d, std::string_view store, std::string_view key) {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  d.written(store, key, [&] {
    std::lock_guard lock(mu);
    done = true;
    cv.notify_all();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return done; });
}

}  // namespace

TrackingStore::TrackingStore(std::unique_ptr<Store> inner, std::string store,
                             std::shared_ptr<Directory> directory)
    : ForwardingStore(std::move(inner)), store_(std::move(store)),
      directory_(std::move(directory)) {
  directory_->attach(store_, &this->inner());
}

TrackingStore::~TrackingStore() { directory_->detach(store_); }

PutResult TrackingStore::put_stamped(std::string_view key, const Versioned& value,
                                     PutReply* stored) {
  const PutResult r = inner().put_stamped(key, value, stored);
  if (r == PutResult::kStored) wait_written(*directory_, store_, key);
  return r;
}

bool TrackingStore::remove(std::string_view key, const VectorClock& version) {
  const bool removed = inner().remove(key, version);
  if (removed) wait_written(*directory_, store_, key);
  return removed;
}

void TrackingStore::close() {
  directory_->detach(store_);
  ForwardingStore::close();
}

std::string TrackingStore::describe() const {
  return describe_as("track (invalidates caches)");
}

void TrackingStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  inner().async_get(key, std::move(done));
}

void TrackingStore::async_get_all(std::vector<std::string> keys,
                                  Callback<std::map<std::string, std::vector<Versioned>>> done) {
  inner().async_get_all(std::move(keys), std::move(done));
}

void TrackingStore::async_versions(std::string_view key,
                                   Callback<std::vector<VectorClock>> done) {
  inner().async_versions(key, std::move(done));
}

void TrackingStore::async_put(std::string_view key, const Versioned& value,
                              Callback<PutReply> done) {
  inner().async_put(key, value,
                    [d = directory_, store = store_, k = std::string(key),
                     done = std::move(done)](PutReply r, std::exception_ptr e) mutable {
                      if (e || r.result != PutResult::kStored) return done(std::move(r), e);
                      auto reply = std::make_shared<PutReply>(std::move(r));
                      d->written(store, k, [reply, done = std::move(done)] {
                        done(std::move(*reply), nullptr);
                      });
                    });
}

void TrackingStore::async_remove(std::string_view key, const VectorClock& version,
                                 Callback<bool> done) {
  inner().async_remove(key, version,
                       [d = directory_, store = store_, k = std::string(key),
                        done = std::move(done)](bool removed, std::exception_ptr e) mutable {
                         if (e || !removed) return done(removed, e);
                         d->written(store, k, [done = std::move(done)] { done(true, nullptr); });
                       });
}

}  // namespace cairn::internal

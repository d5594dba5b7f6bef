#include "cairn/cache_store.h"

#include <absl/container/flat_hash_map.h>

#include <array>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <sstream>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "catalogue/builtin.h"
#include "core/clock_codec.h"
#include "core/key_hash.h"
#include "core/shared_spin_lock.h"
#include "core/timer.h"
#include "layers/cache/directory.h"
#include "layers/cache/watch_link.h"
#include "layers/grpc/grpc_store.h"
#include "routing/routed_store.h"

namespace cairn {

namespace {

using Clock = std::chrono::steady_clock;
using internal::CoherenceEvent;
using internal::WatchLink;
using internal::WatchOp;

constexpr size_t kShards = 64;
// Homes (nodes) a cache can tell apart; one more is a cluster of a size
// no config here comes near.
constexpr size_t kMaxHomes = 4096;
// Replicas a key is tracked at, at most.
constexpr size_t kMaxTrackers = 8;

using internal::hash_key;

// A key with its hash, computed once per call: the table looks it up (and
// picks its shard) with the same hash.
struct Prehashed {
  std::string_view key;
  size_t hash;
};
struct KeyHash {
  using is_transparent = void;
  size_t operator()(const std::string& k) const { return hash_key(k); }
  size_t operator()(const Prehashed& p) const { return p.hash; }
};
struct KeyEq {
  using is_transparent = void;
  bool operator()(const std::string& a, const std::string& b) const { return a == b; }
  bool operator()(const std::string& a, const Prehashed& b) const { return a == b.key; }
  bool operator()(const Prehashed& a, const std::string& b) const { return a.key == b; }
};
template <typename V>
using KeyMap = absl::flat_hash_map<std::string, V, KeyHash, KeyEq>;

// What an entry costs, roughly: its key, values and clocks, and the
// bookkeeping around them.
uint64_t cost_of(std::string_view key, const std::vector<Versioned>& versions) {
  uint64_t bytes = 96 + key.size();
  for (const Versioned& v : versions) {
    bytes += sizeof(Versioned) + v.value.size() + v.clock.entries().size() * sizeof(ClockEntry) +
             v.replaces.size() * sizeof(uint64_t);
  }
  return bytes;
}

// The replicas (their slots) that vouch for an entry: it counts while none
// of their generations has moved. Generations only grow, so their sum
// moves when any of them does.
struct Trackers {
  std::array<uint16_t, kMaxTrackers> slots{};
  uint8_t n = 0;
  uint64_t gen_sum = 0;
};

// One cached key in one allocation: this header, the key, then the
// versions laid out to be copied, not parsed (as the memory engine keeps
// them): a hit touches the table's slot and this block, and copies.
//
//   u32 count
//   count x { u32 entries; u32 value_size; u32 replaced; u32 pad;
//             i64 timestamp; u64 write_id; entries x ClockEntry;
//             replaced x u64; value bytes }
struct Entry {
  Trackers trackers;
  uint64_t hash = 0;
  uint64_t bytes = 0;   // cost_of(): what counts against max_bytes
  uint32_t slot = 0;    // in the shard's slab
  uint32_t key_size = 0;
  uint32_t data_size = 0;
  uint8_t freq = 0;     // CLOCK's count, 0..3; readers raise it (atomic_ref)

  std::string_view key() const { return {reinterpret_cast<const char*>(this + 1), key_size}; }
  const char* data() const { return reinterpret_cast<const char*>(this + 1) + key_size; }

  static Entry* make(std::string_view key, const std::vector<Versioned>& versions);
  static void destroy(Entry* e) {
    e->~Entry();
    ::operator delete(e);
  }
};

struct VersionHead {
  uint32_t entries;
  uint32_t value_size;
  uint32_t replaced;
  uint32_t pad;
  int64_t timestamp;
  uint64_t write_id;
};
static_assert(sizeof(VersionHead) == 32 && sizeof(ClockEntry) == 16);

Entry* Entry::make(std::string_view key, const std::vector<Versioned>& versions) {
  size_t size = 4;
  for (const Versioned& v : versions) {
    size += sizeof(VersionHead) + v.clock.entries().size() * sizeof(ClockEntry) +
            v.replaces.size() * sizeof(uint64_t) + v.value.size();
  }
  void* mem = ::operator new(sizeof(Entry) + key.size() + size);
  auto* e = new (mem) Entry;
  e->key_size = static_cast<uint32_t>(key.size());
  e->data_size = static_cast<uint32_t>(size);
  char* p = reinterpret_cast<char*>(e + 1);
  std::memcpy(p, key.data(), key.size());
  p += key.size();
  const auto count = static_cast<uint32_t>(versions.size());
  std::memcpy(p, &count, 4);
  p += 4;
  for (const Versioned& v : versions) {
    const VersionHead h{static_cast<uint32_t>(v.clock.entries().size()),
                        static_cast<uint32_t>(v.value.size()),
                        static_cast<uint32_t>(v.replaces.size()), 0, v.clock.timestamp_ms(),
                        v.write_id};
    std::memcpy(p, &h, sizeof h);
    p += sizeof h;
    const size_t clock_bytes = h.entries * sizeof(ClockEntry);
    if (clock_bytes != 0) std::memcpy(p, v.clock.entries().data(), clock_bytes);
    p += clock_bytes;
    if (h.replaced != 0) std::memcpy(p, v.replaces.data(), h.replaced * sizeof(uint64_t));
    p += h.replaced * sizeof(uint64_t);
    if (h.value_size != 0) std::memcpy(p, v.value.data(), h.value_size);
    p += h.value_size;
  }
  return e;
}

// The entry's versions into `*out`, reusing its capacity.
void decode(const Entry& e, std::vector<Versioned>* out) {
  const char* p = e.data();
  uint32_t n;
  std::memcpy(&n, p, 4);
  p += 4;
  if (out->size() != n) out->resize(n);
  for (Versioned& v : *out) {
    VersionHead h;
    std::memcpy(&h, p, sizeof h);
    p += sizeof h;
    internal::ClockCodec::assign(&v.clock, p, h.entries, h.timestamp);
    p += h.entries * sizeof(ClockEntry);
    v.replaces.resize(h.replaced);
    if (h.replaced != 0) std::memcpy(v.replaces.data(), p, h.replaced * sizeof(uint64_t));
    p += h.replaced * sizeof(uint64_t);
    v.write_id = h.write_id;
    v.stamp = 0;
    v.value.resize(h.value_size);
    if (h.value_size != 0) std::memcpy(v.value.data(), p, h.value_size);
    p += h.value_size;
  }
}

uint8_t load_freq(Entry& e) { return std::atomic_ref<uint8_t>(e.freq).load(std::memory_order_relaxed); }
void store_freq(Entry& e, uint8_t f) {
  std::atomic_ref<uint8_t>(e.freq).store(f, std::memory_order_relaxed);
}

// Reads of a key in progress: each invalidation (or local write) of the key
// bumps `epoch`, and a read that saw it change keeps nothing.
struct Fetching {
  int refs = 0;
  uint64_t epoch = 0;
};

struct alignas(64) Shard {
  internal::SharedSpinLock lock;
  KeyMap<Entry*> index;      // owns the entries
  std::vector<Entry*> slab;  // the same, for the CLOCK hand; null: free
  std::vector<uint32_t> free;
  size_t hand = 0;
  uint64_t bytes = 0;
  uint64_t entries = 0;
  KeyMap<Fetching> fetching;

  Shard() = default;
  Shard(const Shard&) = delete;
  Shard& operator=(const Shard&) = delete;
  ~Shard() {
    for (Entry* e : slab) {
      if (e != nullptr) Entry::destroy(e);
    }
  }
};

// Whether `read` is at least as new as every version the home held when it
// began tracking the key: each home clock is before or equal to a clock
// read (or the home held nothing).
bool covers(const std::vector<Versioned>& read, const std::vector<VectorClock>& home) {
  for (const VectorClock& h : home) {
    bool covered = false;
    for (const Versioned& v : read) {
      const Occurred o = compare(h, v.clock);
      if (o == Occurred::kBefore || o == Occurred::kEqual) {
        covered = true;
        break;
      }
    }
    if (!covered) return false;
  }
  return true;
}

}  // namespace

// One miss: the read through the stack below and, beside it, the track at
// the key's home. The value is kept once both are in, if nothing changed
// the key meanwhile.
struct FetchOp {
  std::string key;
  uint64_t hash = 0;
  Trackers trackers;  // asked to track it
  uint64_t epoch = 0;
  bool local = false;  // no replica to ask: an embedded stack
  int need = 0;        // trackers that must accept: N - W + 1

  std::mutex mu;
  int pending = 1;
  bool read_ok = false;
  std::vector<Versioned> read;
  int tracked = 0;  // trackers that accepted
  std::vector<VectorClock> clocks;  // theirs, together
};

// A home node: the link to it and what is in flight on it.
struct Home {
  NodeId node = 0;
  uint32_t slot = 0;

  std::mutex mu;
  std::shared_ptr<WatchLink> link;  // guarded by mu; null: not connected
  uint64_t link_id = 0;             // guarded by mu: which link events come from
  uint64_t last_seq = 0;            // guarded by mu
  bool up = false;                  // guarded by mu: connected and leased
  Clock::time_point lease_until{};  // guarded by mu
  Clock::time_point last_ping{};    // guarded by mu
  Clock::time_point retry_at{};     // guarded by mu
  Clock::time_point connected_at{}; // guarded by mu
  bool connecting = false;          // guarded by mu
  bool ended_early = false;         // guarded by mu: the link opening now ended
  int failures = 0;                 // guarded by mu
  uint64_t next_id = 1;             // guarded by mu
  std::map<uint64_t, std::shared_ptr<FetchOp>> tracks;  // guarded by mu
  std::map<uint64_t, Clock::time_point> pings;          // guarded by mu
  std::vector<std::string> untracks;                    // guarded by mu
  std::string why_down = "not connected yet";           // guarded by mu
};

// The layout the cache routes tracks by: the ring and a Home per node.
struct Topology {
  std::optional<Ring> ring;  // none: an embedded stack
  int64_t version = 0;
  std::map<NodeId, std::shared_ptr<Home>> homes;
};

struct CacheStore::Shared : std::enable_shared_from_this<CacheStore::Shared> {
  CacheOptions options;
  RoutedStore* routed = nullptr;  // borrowed from the stack below; null: embedded

  std::unique_ptr<Shard[]> shards{new Shard[kShards]};
  std::unique_ptr<std::atomic<uint64_t>[]> gens{new std::atomic<uint64_t>[kMaxHomes]};
  // Until when each home vouches for its entries (steady clock, ns; 0:
  // not now), checked on every hit: a cache whose threads run on while its
  // timer does not (a stopped process, resumed) stops at the lease anyway.
  std::unique_ptr<std::atomic<int64_t>[]> vouched{new std::atomic<int64_t>[kMaxHomes]};
  uint64_t shard_bytes = 0;
  uint64_t shard_entries = 0;

  std::mutex topo_mu;
  std::shared_ptr<Topology> topo;  // guarded by topo_mu
  uint32_t next_slot = 1;          // guarded by topo_mu; slot 0 is the embedded one

  std::atomic<bool> closed{false};
  std::mutex tick_mu;  // held by a tick
  std::atomic<uint64_t> hits{0}, misses{0}, uncached{0}, invalidations{0}, evictions{0},
      flushes{0};
  std::atomic<uint64_t> link_ids{1};

  Shard& shard_of(uint64_t h) { return shards[h >> 58]; }  // 64 shards

  static int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
        .count();
  }
  // What a home vouches for until: its lease less a margin of two ticks.
  void vouch(uint32_t slot, Clock::time_point lease_until) {
    vouched[slot].store(
        std::chrono::duration_cast<std::chrono::nanoseconds>(
            (lease_until - 2 * tick_period()).time_since_epoch())
            .count(),
        std::memory_order_release);
  }

  std::shared_ptr<Topology> topology() {
    std::lock_guard lock(topo_mu);
    return topo;
  }

  // ---- the table ----------------------------------------------------------

  uint64_t gen_sum(const Trackers& t) const {
    uint64_t sum = 0;
    for (uint8_t i = 0; i < t.n; ++i) sum += gens[t.slots[i]].load(std::memory_order_acquire);
    return sum;
  }

  bool lookup(std::string_view key, uint64_t h, std::vector<Versioned>* out) {
    Shard& sh = shard_of(h);
    std::shared_lock lock(sh.lock);
    auto it = sh.index.find(Prehashed{key, h});
    if (it == sh.index.end()) return false;
    Entry& e = *it->second;
    if (e.trackers.gen_sum != gen_sum(e.trackers)) return false;
    if (e.trackers.slots[0] != 0) {  // tracked at nodes, not embedded
      const int64_t now = steady_ns();
      for (uint8_t i = 0; i < e.trackers.n; ++i) {
        if (now >= vouched[e.trackers.slots[i]].load(std::memory_order_acquire)) return false;
      }
    }
    decode(e, out);
    const uint8_t f = load_freq(e);
    if (f < 3) store_freq(e, static_cast<uint8_t>(f + 1));
    return true;
  }

  // Removes an entry and frees it. REQUIRES: the shard's lock held
  // exclusively (no reader holds the entry).
  void erase_locked(Shard& sh, Entry* e) {
    sh.index.erase(Prehashed{e->key(), e->hash});
    sh.bytes -= e->bytes;
    --sh.entries;
    sh.slab[e->slot] = nullptr;
    sh.free.push_back(e->slot);
    Entry::destroy(e);
  }

  // The key changed (an invalidation, or a write through this cache):
  // drops its entry, and reads in flight keep nothing.
  void drop_key(std::string_view key) {
    const uint64_t h = hash_key(key);
    Shard& sh = shard_of(h);
    std::lock_guard lock(sh.lock);
    auto f = sh.fetching.find(Prehashed{key, h});
    if (f != sh.fetching.end()) ++f->second.epoch;
    auto it = sh.index.find(Prehashed{key, h});
    if (it != sh.index.end()) erase_locked(sh, it->second);
  }

  uint64_t begin_fetch(std::string_view key, uint64_t h) {
    Shard& sh = shard_of(h);
    std::lock_guard lock(sh.lock);
    auto it = sh.fetching.find(Prehashed{key, h});
    if (it == sh.fetching.end()) it = sh.fetching.emplace(std::string(key), Fetching{}).first;
    Fetching& f = it->second;
    ++f.refs;
    return f.epoch;
  }

  // Ends a fetch, keeping its value if `keep` and nothing changed the key
  // or its home meanwhile.
  void end_fetch(FetchOp& op, bool keep) {
    Shard& sh = shard_of(op.hash);
    std::vector<std::pair<uint32_t, std::string>> untrack;
    bool kept = false;
    {
      std::lock_guard lock(sh.lock);
      auto f = sh.fetching.find(Prehashed{op.key, op.hash});
      const bool same = f != sh.fetching.end() && f->second.epoch == op.epoch;
      if (f != sh.fetching.end() && --f->second.refs == 0) sh.fetching.erase(f);
      if (keep && same && gen_sum(op.trackers) == op.trackers.gen_sum &&
          !closed.load(std::memory_order_relaxed)) {
        kept = install_locked(sh, op, &untrack);
      }
    }
    if (!kept) uncached.fetch_add(1, std::memory_order_relaxed);
    send_untracks(untrack);
  }

  // REQUIRES: the shard's lock held exclusively.
  bool install_locked(Shard& sh, FetchOp& op,
                      std::vector<std::pair<uint32_t, std::string>>* untrack) {
    const uint64_t bytes = cost_of(op.key, op.read);
    if (bytes > shard_bytes || op.read.empty()) return false;
    Entry* e = Entry::make(op.key, op.read);
    e->trackers = op.trackers;
    e->hash = op.hash;
    e->bytes = bytes;
    auto it = sh.index.find(Prehashed{op.key, op.hash});
    if (it != sh.index.end()) erase_locked(sh, it->second);
    if (!sh.free.empty()) {
      e->slot = sh.free.back();
      sh.free.pop_back();
      sh.slab[e->slot] = e;
    } else {
      e->slot = static_cast<uint32_t>(sh.slab.size());
      sh.slab.push_back(e);
    }
    sh.index.emplace(op.key, e);
    ++sh.entries;
    sh.bytes += bytes;
    evict_locked(sh, e, untrack);
    return true;
  }

  // CLOCK: the hand passes over entries, wearing down their counts, and
  // takes the first at zero (or one whose trackers' generations moved).
  void evict_locked(Shard& sh, const Entry* keep,
                    std::vector<std::pair<uint32_t, std::string>>* untrack) {
    size_t budget = sh.slab.size() * 4 + 4;
    while ((sh.bytes > shard_bytes || sh.entries > shard_entries) && budget-- > 0) {
      if (sh.hand >= sh.slab.size()) sh.hand = 0;
      Entry* e = sh.slab[sh.hand++];
      if (e == nullptr || e == keep) continue;
      const bool stale = e->trackers.gen_sum != gen_sum(e->trackers);
      const uint8_t f = load_freq(*e);
      if (!stale && f > 0) {
        store_freq(*e, static_cast<uint8_t>(f - 1));
        continue;
      }
      if (!stale) {
        for (uint8_t i = 0; i < e->trackers.n; ++i) {
          if (e->trackers.slots[i] != 0) untrack->emplace_back(e->trackers.slots[i], e->key());
        }
      }
      erase_locked(sh, e);
      evictions.fetch_add(1, std::memory_order_relaxed);
    }
  }

  // Every entry of home `slot` (every entry, for all homes) stops counting.
  void flush_home(uint32_t slot) {
    if (slot != 0) vouched[slot].store(0, std::memory_order_release);
    gens[slot].fetch_add(1, std::memory_order_acq_rel);
    flushes.fetch_add(1, std::memory_order_relaxed);
  }
  void flush_all() {
    for (size_t i = 0; i < kMaxHomes; ++i) gens[i].fetch_add(1, std::memory_order_acq_rel);
    flushes.fetch_add(1, std::memory_order_relaxed);
  }

  // ---- homes ----------------------------------------------------------------

  void send_untracks(std::vector<std::pair<uint32_t, std::string>>& untrack) {
    if (untrack.empty()) return;
    auto t = topology();
    for (auto& [slot, key] : untrack) {
      for (auto& [id, home] : t->homes) {
        if (home->slot != slot) continue;
        std::lock_guard lock(home->mu);
        home->untracks.push_back(std::move(key));
      }
    }
  }

  // Opens the link to `home`, unless one is open or opening. Opened
  // outside the home's lock: a stream's reactions may run on this thread.
  void connect(const std::shared_ptr<Home>& home) {
    const uint64_t id = link_ids.fetch_add(1);
    std::shared_ptr<Store> replica;
    {
      std::lock_guard lock(home->mu);
      if (home->link != nullptr || home->connecting) return;
      home->connecting = true;
      home->link_id = id;
    }
    replica = routed->replica(home->node);
    WatchLink::Handler handler;
    std::weak_ptr<Shared> self = weak_from_this();
    std::weak_ptr<Home> weak_home = home;
    handler.events = [self, weak_home, id](std::vector<CoherenceEvent>& events) {
      auto s = self.lock();
      auto h = weak_home.lock();
      if (s && h) s->on_events(*h, id, events);
    };
    handler.closed = [self, weak_home, id](const std::string& why) {
      auto s = self.lock();
      auto h = weak_home.lock();
      if (s && h) s->disconnect(*h, id, why);
    };
    const internal::Coherence mode =
        options.strict ? internal::Coherence::kStrict : internal::Coherence::kLazy;
    std::shared_ptr<WatchLink> link;
    std::string failed;
    try {
      if (replica == nullptr) {
        throw Unavailable("node " + std::to_string(home->node) + " is not on the ring");
      }
      if (auto* grpc = find_layer<GrpcStore>(*replica)) {
        link = grpc->open_watch(mode, options.lease, std::move(handler));
      } else if (auto* tracking = find_layer<internal::TrackingStore>(*replica)) {
        link = internal::open_local_watch(tracking->directory(), options.store, mode,
                                          options.lease, std::move(handler));
      } else {
        throw Unsupported("node " + std::to_string(home->node) +
                          ": the stack below `route` reaches it neither by grpc nor in this "
                          "node's process");
      }
    } catch (const std::exception& e) {
      failed = e.what();
    }
    bool ended = false;  // opened, then ended at once (a node down): not worth a warning
    const uint64_t ping = [&] {
      std::lock_guard lock(home->mu);
      home->connecting = false;
      if (home->ended_early) {
        home->ended_early = false;
        ended = true;
        failed = home->why_down;
        link.reset();
      }
      if (link == nullptr) {
        home->why_down = failed;
        home->retry_at = Clock::now() + std::chrono::seconds(1);
        return uint64_t{0};
      }
      home->link = link;
      home->last_seq = 0;
      home->up = false;
      home->pings.clear();
      home->connected_at = home->last_ping = Clock::now();
      // The first pong makes the link usable.
      const uint64_t p = home->next_id++;
      home->pings[p] = home->last_ping;
      return p;
    }();
    if (link == nullptr) {
      // As disconnect() logs a stream that ends: a node down is routine.
      log(ended ? LogLevel::kDebug : LogLevel::kWarn,
          "cache '" + options.store + "': no coherence stream to node " +
              std::to_string(home->node) + ": " + failed);
      return;
    }
    if (closed.load()) return disconnect(*home, id, "the cache closed");
    link->send({WatchOp{WatchOp::Kind::kPing, ping, {}}});
  }

  // The link broke (or is to be dropped): nothing of this home's counts
  // any more, and tracks in flight fail.
  void disconnect(Home& home, uint64_t link_id, const std::string& why) {
    std::map<uint64_t, std::shared_ptr<FetchOp>> tracks;
    std::shared_ptr<WatchLink> link;
    {
      std::lock_guard lock(home.mu);
      if (home.link_id == link_id && home.connecting) {
        // It ended before connect() could install it: connect() sees this.
        home.ended_early = true;
        home.why_down = why;
        return;
      }
      if (home.link_id != link_id || home.link == nullptr) return;
      link = std::move(home.link);
      home.link = nullptr;
      home.up = false;
      home.why_down = why;
      tracks.swap(home.tracks);
      home.pings.clear();
      home.untracks.clear();
      ++home.failures;
      home.retry_at =
          Clock::now() + std::min(std::chrono::milliseconds(100) * (1 << std::min(home.failures, 4)),
                                  std::chrono::milliseconds(1600));
    }
    flush_home(home.slot);
    log(LogLevel::kDebug, "cache '" + options.store + "': node " + std::to_string(home.node) +
                              ": entries dropped: " + why);
    link->close();
    for (auto& [id, op] : tracks) tracked(op, false, {});
  }

  void on_events(Home& home, uint64_t link_id, std::vector<CoherenceEvent>& events) {
    // Under the home's lock: the sequence, the lease, which tracks are
    // answered. The invalidations and answers then run in order outside it.
    struct Action {
      const CoherenceEvent* event;
      std::shared_ptr<FetchOp> op;
    };
    std::vector<Action> actions;
    std::shared_ptr<WatchLink> link;
    uint64_t ack = 0;
    bool gap = false;
    std::string gap_why;
    {
      std::lock_guard lock(home.mu);
      if (home.link_id != link_id || home.link == nullptr) return;
      link = home.link;
      for (const CoherenceEvent& e : events) {
        if (e.seq != home.last_seq + 1) {
          gap = true;
          gap_why = "event " + std::to_string(e.seq) + " came after " +
                    std::to_string(home.last_seq) + ": one was lost";
          break;
        }
        home.last_seq = e.seq;
        switch (e.kind) {
          case CoherenceEvent::Kind::kPong: {
            auto it = home.pings.find(e.id);
            if (it != home.pings.end()) {
              // Counted from when the ping left: the home's lease began
              // later than that.
              home.lease_until = std::max(home.lease_until, it->second + options.lease);
              vouch(home.slot, home.lease_until);
              home.pings.erase(home.pings.begin(), std::next(it));
              home.up = true;
              home.failures = 0;
            }
            break;
          }
          case CoherenceEvent::Kind::kTracked: {
            auto it = home.tracks.find(e.id);
            if (it != home.tracks.end()) {
              actions.push_back({&e, std::move(it->second)});
              home.tracks.erase(it);
            }
            break;
          }
          case CoherenceEvent::Kind::kInvalidate:
            actions.push_back({&e, nullptr});
            ack = e.seq;
            break;
        }
      }
    }
    if (gap) {
      disconnect(home, link_id, gap_why);
      return;
    }
    for (Action& a : actions) {
      if (a.event->kind == CoherenceEvent::Kind::kInvalidate) {
        invalidations.fetch_add(1, std::memory_order_relaxed);
        if (a.event->store == options.store) drop_key(a.event->key);
      } else {
        tracked(a.op, a.event->tracked, a.event->clocks);
      }
    }
    // Applied: a strict write waiting on these may go.
    if (ack != 0) link->send({WatchOp{WatchOp::Kind::kAck, ack, {}}});
  }

  // ---- fetches ------------------------------------------------------------

  void arrive(const std::shared_ptr<FetchOp>& op) {
    bool last;
    {
      std::lock_guard lock(op->mu);
      last = --op->pending == 0;
    }
    if (!last) return;
    const bool keep = op->read_ok && (op->local || (op->tracked >= op->need &&
                                                    covers(op->read, op->clocks)));
    end_fetch(*op, keep);
  }

  void tracked(const std::shared_ptr<FetchOp>& op, bool ok, const std::vector<VectorClock>& clocks) {
    if (ok) {
      std::lock_guard lock(op->mu);
      ++op->tracked;
      op->clocks.insert(op->clocks.end(), clocks.begin(), clocks.end());
    }
    arrive(op);
  }

  void read_done(const std::shared_ptr<FetchOp>& op, const std::vector<Versioned>* read) {
    {
      std::lock_guard lock(op->mu);
      if (read != nullptr) {
        op->read_ok = true;
        op->read = *read;
      }
    }
    arrive(op);
  }

  // Starts a miss's fetch: tracks at the key's replicas; the caller reads
  // and calls read_done(). Null when the value will not be kept whatever
  // the read says: too few replicas reachable to vouch for it.
  //
  // Why every replica and not only the home: a write is acknowledged once
  // W replicas hold it, whichever node coordinated it (the home, or the
  // next one when a writer cannot reach the home). With more than N - W
  // replicas tracking the key, any W of them include one that invalidates
  // this cache before it acknowledges (strict).
  std::shared_ptr<FetchOp> start_fetch(std::string_view key, uint64_t h) {
    misses.fetch_add(1, std::memory_order_relaxed);
    if (closed.load(std::memory_order_relaxed)) return nullptr;
    auto t = topology();
    auto op = std::make_shared<FetchOp>();
    op->key = std::string(key);
    op->hash = h;
    if (!t->ring.has_value()) {
      op->local = true;
      op->trackers.n = 1;  // slot 0
      op->trackers.gen_sum = gen_sum(op->trackers);
      op->epoch = begin_fetch(key, h);
      return op;
    }
    const Replication r = routed->replication();
    op->need = std::max(1, r.n - r.w + 1);
    std::vector<std::shared_ptr<Home>> homes;
    for (NodeId node : t->ring->preference_list(key, r.n)) {
      auto it = t->homes.find(node);
      if (it == t->homes.end() || homes.size() == kMaxTrackers) continue;
      std::lock_guard lock(it->second->mu);
      if (it->second->link != nullptr && it->second->up) homes.push_back(it->second);
    }
    if (static_cast<int>(homes.size()) < op->need) {
      uncached.fetch_add(1, std::memory_order_relaxed);
      return nullptr;
    }
    for (const auto& home : homes) op->trackers.slots[op->trackers.n++] = static_cast<uint16_t>(home->slot);
    // Before the tracks go: a stream lost from here on moves the sum.
    op->trackers.gen_sum = gen_sum(op->trackers);
    op->epoch = begin_fetch(key, h);
    op->pending = 1 + static_cast<int>(homes.size());
    int unsent = 0;
    for (const auto& home : homes) {
      // Sent under the home's lock, as the tick sends untracks: an untrack
      // of this key queued before must not reach the node after the track
      // (it would undo it), so it is dropped here. (send() never blocks.)
      std::lock_guard lock(home->mu);
      if (home->link == nullptr || !home->up) {
        ++unsent;
        continue;
      }
      std::erase(home->untracks, op->key);
      const uint64_t id = home->next_id++;
      home->tracks[id] = op;
      home->link->send({WatchOp{WatchOp::Kind::kTrack, id, op->key}});
    }
    for (int i = 0; i < unsent; ++i) tracked(op, false, {});
    return op;
  }

  // ---- the clock ----------------------------------------------------------

  std::chrono::milliseconds tick_period() const {
    return std::max(std::chrono::milliseconds(10), options.lease / 8);
  }

  void tick() {
    std::lock_guard one(tick_mu);  // shut() waits for a tick running now
    if (closed.load()) return;
    if (routed != nullptr && routed->version() != topology()->version) retopologize();
    const Clock::time_point now = Clock::now();
    auto t = topology();
    for (auto& [node, home] : t->homes) {
      std::vector<WatchOp> ops;
      std::shared_ptr<WatchLink> link;
      bool lapsed = false, reconnect = false, silent = false;
      uint64_t link_id = 0;
      {
        std::lock_guard lock(home->mu);
        link_id = home->link_id;
        if (home->link == nullptr) {
          reconnect = !home->connecting && now >= home->retry_at;
        } else if (!home->up && now - home->connected_at > options.lease &&
                   now - home->lease_until > options.lease) {
          // No pong for a whole lease: the stream is as good as gone.
          silent = true;
        }
        link = home->link;
      }
      if (reconnect) {
        connect(home);
        continue;
      }
      if (silent) {
        disconnect(*home, link_id, "no answer from the node for " +
                                       std::to_string(options.lease.count()) + " ms");
        continue;
      }
      if (link == nullptr) continue;
      {
        std::lock_guard lock(home->mu);
        if (home->link != link) continue;
        // Stop answering for this home before its lease can run out: a
        // tick and a margin of one more ahead.
        if (home->up && now + 2 * tick_period() >= home->lease_until) {
          home->up = false;
          home->why_down = "no answer from the node within its lease";
          lapsed = true;
        }
        if (now - home->last_ping >= options.lease / 4) {
          const uint64_t ping = home->next_id++;
          home->last_ping = now;
          home->pings[ping] = now;
          ops.push_back(WatchOp{WatchOp::Kind::kPing, ping, {}});
        }
        for (std::string& k : home->untracks) {
          ops.push_back(WatchOp{WatchOp::Kind::kUntrack, 0, std::move(k)});
        }
        home->untracks.clear();
        // Under the lock, in order with tracks (start_fetch).
        if (!ops.empty()) link->send(std::move(ops));
      }
      if (lapsed) flush_home(home->slot);
    }
  }

  // The metadata changed (a node joined or left, partitions moved): every
  // entry goes, and the links follow the new layout.
  void retopologize() {
    auto fresh = std::make_shared<Topology>();
    fresh->ring = routed->ring();
    fresh->version = routed->version();
    std::shared_ptr<Topology> old;
    {
      std::lock_guard lock(topo_mu);
      old = topo;
      for (const NodeInfo& n : fresh->ring->nodes()) {
        auto it = old->homes.find(n.id);
        if (it != old->homes.end()) {
          fresh->homes[n.id] = it->second;
        } else if (next_slot < kMaxHomes) {
          auto h = std::make_shared<Home>();
          h->node = n.id;
          h->slot = next_slot++;
          fresh->homes[n.id] = h;
        }
      }
      topo = fresh;
    }
    flush_all();
    for (auto& [node, home] : old->homes) {
      if (!fresh->homes.contains(node)) {
        uint64_t id;
        {
          std::lock_guard lock(home->mu);
          id = home->link_id;
        }
        disconnect(*home, id, "the node left the cluster");
      }
    }
  }

  void arm() {
    internal::Timer::shared().after(tick_period(), [w = weak_from_this()] {
      auto s = w.lock();
      if (!s || s->closed.load()) return;
      s->tick();
      s->arm();
    });
  }

  void shut() {
    if (closed.exchange(true)) return;
    { std::lock_guard wait_for_tick(tick_mu); }
    auto t = topology();
    for (auto& [node, home] : t->homes) {
      uint64_t id;
      {
        std::lock_guard lock(home->mu);
        id = home->link_id;
      }
      disconnect(*home, id, "the cache closed");
    }
    flush_all();
  }
};

CacheStore::CacheStore(std::unique_ptr<Store> inner, CacheOptions options)
    : ForwardingStore(std::move(inner)), s_(std::make_shared<Shared>()) {
  if (options.max_bytes == 0 || options.max_entries == 0) {
    throw InvalidArgument("cache '" + options.store + "': max_bytes and max_entries must be above 0");
  }
  if (options.lease < std::chrono::milliseconds(100) || options.lease > std::chrono::seconds(60)) {
    throw InvalidArgument("cache '" + options.store + "': the lease must be 100 ms to 60 s");
  }
  s_->options = std::move(options);
  s_->shard_bytes = std::max<uint64_t>(1, s_->options.max_bytes / kShards);
  s_->shard_entries = std::max<uint64_t>(1, s_->options.max_entries / kShards);
  for (size_t i = 0; i < kMaxHomes; ++i) {
    s_->gens[i].store(1, std::memory_order_relaxed);
    s_->vouched[i].store(0, std::memory_order_relaxed);
  }
  s_->routed = find_layer<RoutedStore>(this->inner());
  auto topo = std::make_shared<Topology>();
  if (s_->routed == nullptr) {
    if (find_layer<GrpcStore>(this->inner()) != nullptr) {
      throw InvalidArgument(
          "cache '" + s_->options.store +
          "': the stack below reaches nodes without a `route` layer, so the cache cannot "
          "tell which node is a key's home: put `cache` above `route` (a smart client), or "
          "in the nodes' stack");
    }
  } else {
    topo->ring = s_->routed->ring();
    topo->version = s_->routed->version();
    for (const NodeInfo& n : topo->ring->nodes()) {
      auto h = std::make_shared<Home>();
      h->node = n.id;
      h->slot = s_->next_slot++;
      topo->homes[n.id] = h;
    }
  }
  s_->topo = topo;
  if (s_->routed != nullptr) {
    for (auto& [node, home] : topo->homes) s_->connect(home);
    s_->arm();
  }
}

CacheStore::~CacheStore() { s_->shut(); }

void CacheStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  const uint64_t h = hash_key(key);
  if (s_->lookup(key, h, out)) {
    s_->hits.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  std::shared_ptr<FetchOp> op = s_->start_fetch(key, h);
  try {
    inner().get_into(key, out);
  } catch (...) {
    if (op) s_->read_done(op, nullptr);
    throw;
  }
  if (op) s_->read_done(op, out);
}

void CacheStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  const uint64_t h = hash_key(key);
  std::vector<Versioned> out;
  if (s_->lookup(key, h, &out)) {
    s_->hits.fetch_add(1, std::memory_order_relaxed);
    done(std::move(out), nullptr);
    return;
  }
  std::shared_ptr<FetchOp> op = s_->start_fetch(key, h);
  try {
    inner().async_get(key, [s = s_, op, done = std::move(done)](std::vector<Versioned> versions,
                                                                std::exception_ptr e) {
      if (op) s->read_done(op, e ? nullptr : &versions);
      done(std::move(versions), e);
    });
  } catch (...) {
    if (op) s_->read_done(op, nullptr);
    throw;
  }
}

std::map<std::string, std::vector<Versioned>> CacheStore::get_all(
    std::span<const std::string> keys) {
  std::map<std::string, std::vector<Versioned>> found;
  std::vector<std::string> missed;
  std::vector<Versioned> out;
  for (const std::string& k : keys) {
    if (s_->lookup(k, hash_key(k), &out)) {
      s_->hits.fetch_add(1, std::memory_order_relaxed);
      found[k] = std::move(out);
      out.clear();
    } else {
      missed.push_back(k);
    }
  }
  if (missed.empty()) return found;
  s_->misses.fetch_add(missed.size(), std::memory_order_relaxed);
  s_->uncached.fetch_add(missed.size(), std::memory_order_relaxed);
  found.merge(inner().get_all(missed));
  return found;
}

void CacheStore::async_get_all(std::vector<std::string> keys,
                               Callback<std::map<std::string, std::vector<Versioned>>> done) {
  std::map<std::string, std::vector<Versioned>> found;
  std::vector<std::string> missed;
  std::vector<Versioned> out;
  for (std::string& k : keys) {
    if (s_->lookup(k, hash_key(k), &out)) {
      s_->hits.fetch_add(1, std::memory_order_relaxed);
      found[k] = std::move(out);
      out.clear();
    } else {
      missed.push_back(std::move(k));
    }
  }
  if (missed.empty()) return done(std::move(found), nullptr);
  s_->misses.fetch_add(missed.size(), std::memory_order_relaxed);
  s_->uncached.fetch_add(missed.size(), std::memory_order_relaxed);
  inner().async_get_all(
      std::move(missed),
      [found = std::move(found), done = std::move(done)](
          std::map<std::string, std::vector<Versioned>> rest, std::exception_ptr e) mutable {
        if (e) return done({}, e);
        found.merge(rest);
        done(std::move(found), nullptr);
      });
}

void CacheStore::async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) {
  inner().async_versions(key, std::move(done));
}

// A write through the cache drops the key before it goes (reads that begin
// after it read through) and again once it is done (a read that overlapped
// it keeps nothing: without a home to invalidate, nothing else would).
namespace {

// Runs `write`, with `key` dropped from the cache before it and after it
// (however it ends).
template <typename Write>
auto around_write(CacheStore::Shared& s, std::string_view key, Write&& write) {
  s.drop_key(key);
  struct After {
    CacheStore::Shared& s;
    std::string_view key;
    ~After() { s.drop_key(key); }
  } after{s, key};
  return write();
}

}  // namespace

PutResult CacheStore::put_stamped(std::string_view key, const Versioned& value,
                                  PutReply* stored) {
  return around_write(*s_, key, [&] { return inner().put_stamped(key, value, stored); });
}

bool CacheStore::remove(std::string_view key, const VectorClock& version) {
  return around_write(*s_, key, [&] { return inner().remove(key, version); });
}

AtomicResult CacheStore::atomic(std::string_view key, std::string_view function,
                                std::string_view argument) {
  return around_write(*s_, key, [&] { return inner().atomic(key, function, argument); });
}

void CacheStore::async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) {
  s_->drop_key(key);
  inner().async_put(key, value,
                    [s = s_, k = std::string(key), done = std::move(done)](PutReply r,
                                                                           std::exception_ptr e) {
                      s->drop_key(k);
                      done(std::move(r), e);
                    });
}

void CacheStore::async_remove(std::string_view key, const VectorClock& version,
                              Callback<bool> done) {
  s_->drop_key(key);
  inner().async_remove(key, version,
                       [s = s_, k = std::string(key), done = std::move(done)](
                           bool removed, std::exception_ptr e) {
                         s->drop_key(k);
                         done(removed, e);
                       });
}

void CacheStore::close() {
  s_->shut();
  ForwardingStore::close();
}

std::string CacheStore::describe() const {
  const CacheOptions& o = s_->options;
  std::string line = "cache (" + std::string(o.strict ? "strict" : "lazy") + ", " +
                     std::to_string(o.max_bytes) + " bytes, " + std::to_string(o.max_entries) +
                     " entries";
  line += s_->routed != nullptr ? ", invalidated by each key's replicas)"
                                : ", embedded: exact through its own writes)";
  return describe_as(line);
}

CacheStats CacheStore::stats() const {
  CacheStats st;
  st.hits = s_->hits.load(std::memory_order_relaxed);
  st.misses = s_->misses.load(std::memory_order_relaxed);
  st.uncached = s_->uncached.load(std::memory_order_relaxed);
  st.invalidations = s_->invalidations.load(std::memory_order_relaxed);
  st.evictions = s_->evictions.load(std::memory_order_relaxed);
  st.flushes = s_->flushes.load(std::memory_order_relaxed);
  for (size_t i = 0; i < kShards; ++i) {
    Shard& sh = s_->shards[i];
    std::shared_lock lock(sh.lock);
    st.entries += sh.entries;
    st.bytes += sh.bytes;
  }
  return st;
}

std::string CacheStore::report() const {
  const CacheStats st = stats();
  std::ostringstream out;
  out << "hits " << st.hits << "\nmisses " << st.misses << "\nuncached " << st.uncached
      << "\ninvalidations " << st.invalidations << "\nevictions " << st.evictions
      << "\nflushes " << st.flushes << "\nentries " << st.entries << "\nbytes " << st.bytes
      << "\n";
  return out.str();
}

void CacheStore::clear() { s_->flush_all(); }

// ---- the `cache` layer ------------------------------------------------------

std::unique_ptr<Store> make_cache_layer(std::unique_ptr<Store> inner, const Params& p) {
  CacheOptions o;
  o.store = p.store();
  o.max_bytes = p.get_bytes("max_bytes", o.max_bytes, 1 << 16, uint64_t{1} << 40);
  o.max_entries = static_cast<uint64_t>(
      p.get_int("max_entries", static_cast<int64_t>(o.max_entries), 64, int64_t{1} << 32));
  o.strict = p.get_choice("coherence", {"strict", "lazy"}, "strict") == "strict";
  o.lease = std::chrono::milliseconds(p.get_int("lease_ms", o.lease.count(), 100, 60000));
  try {
    return std::make_unique<CacheStore>(std::move(inner), std::move(o));
  } catch (const InvalidArgument& e) {
    p.fail("", e.what());
  }
}

}  // namespace cairn

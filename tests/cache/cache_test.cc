// The `cache` layer and its home side (layers/cache): the table and its
// eviction, embedded exactness, the directory's protocol, and coherence
// over real gRPC with in-process servers, including scripted homes that
// lose an event or race a track with a write.

#include <absl/strings/str_cat.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <utility>

#include "cairn/cache_store.h"
#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/memory_store.h"
#include "cairn/routed_store.h"
#include "layers/cache/directory.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/grpc_store.h"
#include "layers/grpc/wire.h"
#include "routing/routed_store.h"
#include "server/grpc_server.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

using namespace std::chrono_literals;
using internal::CoherenceEvent;
using internal::Directory;

Versioned at(std::string value, uint64_t counter) {
  return Versioned{std::move(value), VectorClock({{1, counter}}, 1)};
}

std::string value_of(Store& s, std::string_view key) {
  std::vector<Versioned> v = s.get(key);
  if (v.empty()) return "<absent>";
  return v.front().value;
}

// A put that supersedes what `s` holds for `key` (as a client's put does).
void overwrite(Store& s, const std::string& key, const std::string& value) {
  VectorClock next;
  for (const VectorClock& c : s.versions(key)) next = next.merged(c);
  s.put(key, Versioned{value, next.incremented(1, 1)});
}

// Polls `pred` for up to `limit`.
template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 5000ms) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

CacheOptions cache_options(bool strict = true) {
  CacheOptions o;
  o.store = "s";
  o.strict = strict;
  o.lease = 1000ms;
  return o;
}

// ---- embedded: no homes, every write passes through ------------------------

TEST(CacheEmbedded, AMissReadsThroughAndAHitDoesNot) {
  auto mem = std::make_unique<MemoryStore>();
  MemoryStore* below = mem.get();
  CacheStore cache(std::move(mem), cache_options());
  below->put("k", at("v1", 1));
  EXPECT_EQ(value_of(cache, "k"), "v1");
  EXPECT_EQ(cache.stats().misses, 1u);
  // Changed below the cache's back: an embedded cache does not see it.
  // That is what "every write passes through the cache" means.
  below->put("k", at("v2", 2));
  EXPECT_EQ(value_of(cache, "k"), "v1");
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().entries, 1u);
  // A write through the cache is read back at once.
  cache.put("k", at("v3", 3));
  EXPECT_EQ(value_of(cache, "k"), "v3");
  EXPECT_TRUE(cache.remove("k", VectorClock({{1, 3}}, 1)));
  EXPECT_EQ(value_of(cache, "k"), "<absent>");
  // Absent keys are not cached: each read reads through.
  EXPECT_EQ(value_of(cache, "k"), "<absent>");
  EXPECT_EQ(cache.stats().hits, 1u);
}

TEST(CacheEmbedded, AsyncGetsHitAndMiss) {
  CacheStore cache(std::make_unique<MemoryStore>(), cache_options());
  cache.put("k", at("v", 1));
  for (int i = 0; i < 2; ++i) {
    std::promise<std::string> p;
    cache.async_get("k", [&](std::vector<Versioned> v, std::exception_ptr e) {
      p.set_value(e ? "error" : v.at(0).value);
    });
    EXPECT_EQ(p.get_future().get(), "v");
  }
  EXPECT_EQ(cache.stats().hits, 1u);
  EXPECT_EQ(cache.stats().misses, 1u);
}

TEST(CacheEmbedded, EntriesAndBytesStayWithinTheirBounds) {
  CacheOptions o = cache_options();
  o.max_entries = 640;  // 10 a shard
  CacheStore cache(std::make_unique<MemoryStore>(), o);
  for (int i = 0; i < 5000; ++i) cache.put(absl::StrCat("k", i), at(std::string(100, 'v'), 1));
  for (int i = 0; i < 5000; ++i) value_of(cache, absl::StrCat("k", i));
  CacheStats st = cache.stats();
  EXPECT_LE(st.entries, 640u);
  EXPECT_GT(st.entries, 320u);
  EXPECT_GE(st.evictions, 5000u - 640u);

  CacheOptions b = cache_options();
  b.max_bytes = 1 << 16;  // 1 KiB a shard
  CacheStore small(std::make_unique<MemoryStore>(), b);
  for (int i = 0; i < 2000; ++i) {
    small.put(absl::StrCat("k", i), at(std::string(200, 'v'), 1));
    value_of(small, absl::StrCat("k", i));
  }
  st = small.stats();
  EXPECT_LE(st.bytes, uint64_t{1} << 16);
  EXPECT_GT(st.entries, 0u);
  // A value bigger than a shard's share is served, never kept.
  small.put("huge", at(std::string(4096, 'h'), 1));
  EXPECT_EQ(value_of(small, "huge").size(), 4096u);
  const uint64_t hits = small.stats().hits;
  EXPECT_EQ(value_of(small, "huge").size(), 4096u);
  EXPECT_EQ(small.stats().hits, hits);
}

// CLOCK with counts: keys read often outlive a stream of keys read once.
TEST(CacheEmbedded, HotKeysSurviveAScanOfColdOnes) {
  CacheOptions o = cache_options();
  o.max_entries = 6400;  // 100 a shard
  CacheStore cache(std::make_unique<MemoryStore>(), o);
  const int hot = 1000, cold = 50000;
  for (int i = 0; i < hot; ++i) cache.put(absl::StrCat("hot", i), at("h", 1));
  for (int i = 0; i < cold; ++i) cache.put(absl::StrCat("cold", i), at("c", 1));
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < hot; ++i) value_of(cache, absl::StrCat("hot", i));
  }
  // The scan, 50 times the cache's size, with the hot keys read now and
  // then as a skewed load would.
  for (int i = 0; i < cold; ++i) {
    value_of(cache, absl::StrCat("cold", i));
    if (i % 1000 == 999) {
      for (int h = 0; h < hot; ++h) value_of(cache, absl::StrCat("hot", h));
    }
  }
  const uint64_t before = cache.stats().hits;
  for (int i = 0; i < hot; ++i) value_of(cache, absl::StrCat("hot", i));
  const uint64_t hot_hits = cache.stats().hits - before;
  EXPECT_GE(hot_hits, static_cast<uint64_t>(hot * 9 / 10)) << cache.report();
}

// Writers and readers of the same keys through one embedded cache: once the
// writers stop, every key reads as its last write, from the cache too.
TEST(CacheEmbedded, RacingReadsNeverKeepAnOverwrittenValue) {
  CacheStore cache(std::make_unique<MemoryStore>(), cache_options());
  const int keys = 16, writes = 2000;
  std::atomic<bool> stop{false};
  std::vector<std::thread> readers;
  for (int r = 0; r < 3; ++r) {
    readers.emplace_back([&] {
      while (!stop.load()) {
        for (int k = 0; k < keys; ++k) value_of(cache, absl::StrCat("k", k));
      }
    });
  }
  std::thread writer([&] {
    for (int i = 1; i <= writes; ++i) {
      cache.put(absl::StrCat("k", i % keys), at(absl::StrCat(i), static_cast<uint64_t>(i)));
    }
  });
  writer.join();
  stop = true;
  for (auto& t : readers) t.join();
  for (int k = 0; k < keys; ++k) {
    const int last = writes - ((writes - k) % keys + keys) % keys;
    for (int again = 0; again < 2; ++again) {
      EXPECT_EQ(value_of(cache, absl::StrCat("k", k)), absl::StrCat(last)) << "key k" << k;
    }
  }
}

TEST(CacheEmbedded, TheLayerFromAConfig) {
  const Config c = Config::parse(R"(
stores:
  s:
    stack:
      - cache: {max_bytes: 1MiB, max_entries: 1000, coherence: lazy}
      - engine: memory
)");
  auto s = c.open("s");
  EXPECT_NE(s->describe().find("cache (lazy, 1048576 bytes, 1000 entries, embedded"),
            std::string::npos)
      << s->describe();
  s->put("k", at("v", 1));
  EXPECT_EQ(value_of(*s, "k"), "v");
  EXPECT_EQ(value_of(*s, "k"), "v");
  EXPECT_EQ(find_layer<CacheStore>(*s)->stats().hits, 1u);
  EXPECT_THROW(Config::parse(R"(
stores:
  s:
    stack: [{cache: {coherence: eventually}}, {engine: memory}]
)").open("s"),
               ConfigError);
}

// Over a server-routed client, the cache would not know the homes. (Here,
// not above: opening a grpc engine starts gRPC's threads, which TSan
// cannot follow.)
TEST(CacheWireConfig, ACacheOverGrpcWithoutRouteIsRefused) {
  try {
    Config::parse(R"(
stores:
  s:
    client: [cache, {engine: {grpc: {targets: ["127.0.0.1:1"]}}}]
)")
        .open("s");
    FAIL() << "a cache over grpc without route opened";
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("above `route`"), std::string::npos) << e.what();
  }
}

// ---- the directory ---------------------------------------------------------

// A sink that records what it is sent.
struct RecordingSink : internal::EventSink {
  std::mutex mu;
  std::vector<CoherenceEvent> events;
  std::string closed;
  bool refuse = false;
  bool send(CoherenceEvent e) override {
    std::lock_guard lock(mu);
    if (refuse) return false;
    events.push_back(std::move(e));
    return true;
  }
  void close(const std::string& why) override {
    std::lock_guard lock(mu);
    closed = why;
  }
  std::vector<CoherenceEvent> taken() {
    std::lock_guard lock(mu);
    return events;
  }
  // The events sent since the last drain.
  std::vector<CoherenceEvent> drain() {
    std::lock_guard lock(mu);
    return std::exchange(events, {});
  }
};

struct TrackedNode {
  explicit TrackedNode(Directory::Options o = {})
      : directory(std::make_shared<Directory>(o)),
        store(std::make_unique<MemoryStore>(), "s", directory) {}
  std::shared_ptr<Directory> directory;
  internal::TrackingStore store;
};

TEST(CacheDirectory, ATrackAnswersWithTheHomesClocksAndAWriteInvalidatesOnce) {
  TrackedNode node;
  node.store.put("k", at("v", 4));
  auto sink = std::make_shared<RecordingSink>();
  auto sub = node.directory->subscribe(internal::Coherence::kLazy, 1000ms, sink);
  sub->track(7, "s", "k");
  auto ev = sink->taken();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].seq, 1u);
  EXPECT_EQ(ev[0].kind, CoherenceEvent::Kind::kTracked);
  EXPECT_EQ(ev[0].id, 7u);
  EXPECT_TRUE(ev[0].tracked);
  ASSERT_EQ(ev[0].clocks.size(), 1u);
  EXPECT_EQ(ev[0].clocks[0], VectorClock({{1, 4}}, 1));
  EXPECT_EQ(node.directory->stats().tracked_keys, 1u);

  node.store.put("k", at("v5", 5));  // lazy: returns without an ack
  node.store.put("k", at("v6", 6));  // tracking was one-shot: no second event
  ev = sink->taken();
  ASSERT_EQ(ev.size(), 2u);
  EXPECT_EQ(ev[1].seq, 2u);
  EXPECT_EQ(ev[1].kind, CoherenceEvent::Kind::kInvalidate);
  EXPECT_EQ(ev[1].store, "s");
  EXPECT_EQ(ev[1].key, "k");
  EXPECT_EQ(node.directory->stats().tracked_keys, 0u);
  // An obsolete write changes nothing and tells no one.
  sub->track(8, "s", "k");
  EXPECT_EQ(node.store.put("k", at("old", 1)), PutResult::kObsolete);
  EXPECT_EQ(sink->taken().size(), 3u);
  // A store the node does not track, and untrack.
  sub->track(9, "other", "k");
  ev = sink->taken();
  EXPECT_FALSE(ev.back().tracked);
  EXPECT_NE(ev.back().why.find("'other'"), std::string::npos);
  sub->untrack("s", "k");
  EXPECT_EQ(node.directory->stats().tracked_keys, 0u);
}

TEST(CacheDirectory, AFullDirectoryRefusesNewKeys) {
  Directory::Options o;
  o.max_keys = 2;
  TrackedNode node(o);
  auto sink = std::make_shared<RecordingSink>();
  auto sub = node.directory->subscribe(internal::Coherence::kLazy, 1000ms, sink);
  sub->track(1, "s", "a");
  sub->track(2, "s", "b");
  sub->track(3, "s", "c");
  auto ev = sink->taken();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_TRUE(ev[0].tracked && ev[1].tracked);
  EXPECT_FALSE(ev[2].tracked);
  EXPECT_NE(ev[2].why.find("tracks 2 keys"), std::string::npos) << ev[2].why;
  EXPECT_EQ(node.directory->stats().refused_tracks, 1u);
  sub->untrack("s", "a");
  sub->track(4, "s", "c");
  EXPECT_TRUE(sink->taken().back().tracked);
}

// Strict: the write waits for the cache's acknowledgement; a cache that never
// acknowledges is dropped, and the write still waits out its lease.
TEST(CacheDirectory, AStrictWriteWaitsForTheAckOrTheLease) {
  Directory::Options o;
  o.ack_timeout = 100ms;
  TrackedNode node(o);
  auto sink = std::make_shared<RecordingSink>();
  auto sub = node.directory->subscribe(internal::Coherence::kStrict, 300ms, sink);
  sub->ping(1);
  sub->track(2, "s", "k");
  std::promise<void> written;
  std::thread writer([&] {
    node.store.put("k", at("v", 1));
    written.set_value();
  });
  auto f = written.get_future();
  ASSERT_TRUE(eventually([&] { return sink->taken().size() == 3; }));
  EXPECT_EQ(f.wait_for(50ms), std::future_status::timeout);  // not before the ack
  sub->ack(3);
  EXPECT_EQ(f.wait_for(5s), std::future_status::ready);
  writer.join();

  // Now one that never acknowledges, holding two keys.
  const auto pinged = std::chrono::steady_clock::now();
  sub->ping(3);
  sub->track(4, "s", "k");
  sub->track(5, "s", "k2");
  std::thread first([&] { node.store.put("k", at("v2", 2)); });
  // Dropped after the ack timeout (100 ms)...
  ASSERT_TRUE(eventually([&] {
    std::lock_guard lock(sink->mu);
    return !sink->closed.empty();
  }));
  // ...a write of its other key, made now, waits for the lease as well:
  // the cache may still be answering it from memory.
  node.store.put("k2", at("w", 1));
  EXPECT_GE(std::chrono::steady_clock::now() - pinged, 300ms);
  first.join();
  const auto waited = std::chrono::steady_clock::now() - pinged;
  // It waited for the lease counted from the last pong: 300 ms.
  EXPECT_GE(waited, 300ms);
  {
    std::lock_guard lock(sink->mu);
    EXPECT_NE(sink->closed.find("did not acknowledge"), std::string::npos) << sink->closed;
  }
  EXPECT_EQ(node.directory->stats().dropped, 1u);
  EXPECT_EQ(node.directory->stats().subscriptions, 0u);
  // Dropped: it tracks nothing and is sent nothing more.
  const size_t n = sink->taken().size();
  sub->track(6, "s", "k");
  node.store.put("k", at("v3", 3));
  EXPECT_EQ(sink->taken().size(), n);
}

// A track registers before it reads: a write racing it is either in the
// clocks it answers with or invalidates it.
TEST(CacheDirectory, ATrackRacingWritesNeverMissesOne) {
  TrackedNode node;
  auto sink = std::make_shared<RecordingSink>();
  auto sub = node.directory->subscribe(internal::Coherence::kLazy, 1000ms, sink);
  std::atomic<uint64_t> last{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    for (uint64_t i = 1; !stop.load() && i < 100'000'000; ++i) {
      node.store.put("k", at("v", i));
      last = i;
    }
  });
  // Tracks until 50 of them raced a write (how many do depends on how the
  // threads are scheduled), within bounds of count and time.
  int checked = 0;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (uint64_t id = 1; id <= 1'000'000 && checked < 50 &&
                        std::chrono::steady_clock::now() < deadline;
       ++id) {
    sink->drain();
    sub->track(id, "s", "k");
    // Every write up to `returned` has returned, so each has told the
    // directory; a lazy invalidation is sent before the write returns.
    const uint64_t returned = last.load();
    const auto ev = sink->drain();
    size_t at_answer = ev.size();
    for (size_t i = 0; i < ev.size(); ++i) {
      if (ev[i].kind == CoherenceEvent::Kind::kTracked && ev[i].id == id) at_answer = i;
    }
    ASSERT_LT(at_answer, ev.size());
    const uint64_t seen = ev[at_answer].clocks.empty() ? 0 : ev[at_answer].clocks[0].counter(1);
    if (seen >= returned) continue;
    // A write the track's read did not see has returned: it came after the
    // track registered, so it invalidated the key, before or after the
    // answer (a cache treats both alike: its fetch is in flight until the
    // answer comes).
    bool invalidated = false;
    for (const CoherenceEvent& e : ev) invalidated |= e.kind == CoherenceEvent::Kind::kInvalidate;
    EXPECT_TRUE(invalidated) << "track " << id << " saw write " << seen << " but write "
                             << returned << " had returned and sent nothing";
    ++checked;
  }
  stop = true;
  writer.join();
  EXPECT_GT(checked, 0);
}

// ---- over gRPC: in-process nodes with directories ---------------------------

class Node {
 public:
  explicit Node(Directory::Options d = {}) : directory_(std::make_shared<Directory>(d)) {
    ServerOptions o;
    o.directory = directory_;
    std::map<std::string, ServedStore> served;
    MemoryOptions m;
    m.name = "s";
    served["s"] = {std::make_shared<internal::TrackingStore>(std::make_unique<MemoryStore>(m), "s",
                                                             directory_),
                   nullptr, nullptr};
    server_ = std::make_unique<StoreServer>(o, std::move(served));
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", server_->port()); }
  void stop() { server_->shutdown(0ms); }
  Directory& directory() { return *directory_; }

 private:
  std::shared_ptr<Directory> directory_;
  std::unique_ptr<StoreServer> server_;
};

// A smart client's stack over `nodes`: route over one grpc store each.
std::unique_ptr<Store> routed_client(const std::vector<std::string>& addresses, Replication r) {
  ClusterInfo cluster = test_cluster(static_cast<int>(addresses.size()), 12);
  for (size_t i = 0; i < addresses.size(); ++i) cluster.nodes[i].address = addresses[i];
  std::vector<std::shared_ptr<Store>> replicas;
  for (const std::string& a : addresses) {
    GrpcOptions g;
    g.store = "s";
    g.targets = {a};
    g.retries = 0;
    g.timeout = 2000ms;
    replicas.push_back(std::make_shared<GrpcStore>(g));
  }
  RouteOptions ro;
  ro.store = "s";
  ro.replication = r;
  ro.timeout = 2000ms;
  ro.ban = 200ms;
  ro.probe_interval = 200ms;
  ro.read_repair_chance = 0;
  return open_routed_store(ro, Ring(cluster), std::move(replicas));
}

class CacheCluster : public ::testing::Test {
 protected:
  void start(int n) {
    for (int i = 0; i < n; ++i) nodes_.push_back(std::make_unique<Node>());
    for (auto& node : nodes_) addresses_.push_back(node->address());
  }
  std::unique_ptr<CacheStore> cache(bool strict) {
    return std::make_unique<CacheStore>(routed_client(addresses_, {3, 2, 2}),
                                        cache_options(strict));
  }
  std::vector<std::unique_ptr<Node>> nodes_;
  std::vector<std::string> addresses_;
};

// Reads a key through `c` until it is a hit (its home's link is up).
void warm(CacheStore& c, const std::string& key) {
  ASSERT_TRUE(eventually([&] {
    const uint64_t hits = c.stats().hits;
    value_of(c, key);
    value_of(c, key);
    return c.stats().hits > hits;
  })) << c.report();
}

TEST_F(CacheCluster, StrictCachesNeverAnswerOlderThanAReturnedPut) {
  start(3);
  auto reader = cache(true);
  auto writer = routed_client(addresses_, {3, 2, 2});
  const int keys = 20;
  for (int k = 0; k < keys; ++k) writer->put(absl::StrCat("k", k), at("0", 1));
  for (int k = 0; k < keys; ++k) warm(*reader, absl::StrCat("k", k));
  for (int round = 1; round <= 30; ++round) {
    for (int k = 0; k < keys; ++k) {
      const std::string key = absl::StrCat("k", k);
      overwrite(*writer, key, absl::StrCat(round));
      // The put has returned: the cache must not answer the old value,
      // on any read until the key is cached again (a hit).
      const uint64_t hits = reader->stats().hits;
      for (int read = 0; read < 1000 && reader->stats().hits == hits; ++read) {
        ASSERT_EQ(value_of(*reader, key), absl::StrCat(round))
            << key << " read " << read << "\n" << reader->report();
      }
      ASSERT_GT(reader->stats().hits, hits) << reader->report();
    }
  }
  // Each round ended with the key cached, and each write invalidated it.
  const CacheStats st = reader->stats();
  EXPECT_GE(st.hits, 30u * keys) << reader->report();
  EXPECT_GE(st.invalidations, 30u * keys);
  uint64_t sent = 0;
  for (auto& n : nodes_) sent += n->directory().stats().invalidations;
  EXPECT_GE(sent, 30u * keys);
}

TEST_F(CacheCluster, LazyCachesCatchUp) {
  start(3);
  auto reader = cache(false);
  auto writer = routed_client(addresses_, {3, 2, 2});
  writer->put("k", at("old", 1));
  warm(*reader, "k");
  overwrite(*writer, "k", "new");
  EXPECT_TRUE(eventually([&] { return value_of(*reader, "k") == "new"; }));
  EXPECT_GE(reader->stats().invalidations, 1u);
}

TEST_F(CacheCluster, WritesThroughTheCacheAreReadBack) {
  start(3);
  auto c = cache(true);
  c->put("k", at("a", 1));
  warm(*c, "k");
  for (uint64_t i = 2; i < 50; ++i) {
    overwrite(*c, "k", absl::StrCat(i));
    EXPECT_EQ(value_of(*c, "k"), absl::StrCat(i));
  }
}

TEST_F(CacheCluster, AHomeThatGoesAwayTakesItsEntriesWithIt) {
  start(3);
  auto c = cache(true);
  auto writer = routed_client(addresses_, {3, 2, 2});
  for (int k = 0; k < 30; ++k) writer->put(absl::StrCat("k", k), at("v", 1));
  for (int k = 0; k < 30; ++k) warm(*c, absl::StrCat("k", k));
  const uint64_t entries = c->stats().entries;
  EXPECT_GE(entries, 30u);
  nodes_[0]->stop();
  // Node 0's keys are dropped; the rest stay.
  ASSERT_TRUE(eventually([&] { return c->stats().flushes >= 1; })) << c->report();
  // Every key has node 0 among its three replicas: nothing counts now.
  const uint64_t hits = c->stats().hits;
  for (int k = 0; k < 30; ++k) EXPECT_EQ(value_of(*c, absl::StrCat("k", k)), "v");
  EXPECT_EQ(c->stats().hits, hits);
  // Two replicas of three still vouch for a key (more than N - W = 1):
  // the cache keeps working without node 0.
  for (int k = 0; k < 30; ++k) warm(*c, absl::StrCat("k", k));
}

// A change of the cluster's metadata (a rebalance moving partitions) drops
// everything: keys may have new replicas, which track nothing yet.
TEST_F(CacheCluster, AMetadataChangeDropsEverything) {
  start(3);
  auto c = cache(true);
  for (int k = 0; k < 10; ++k) c->put(absl::StrCat("k", k), at("v", 1));
  for (int k = 0; k < 10; ++k) warm(*c, absl::StrCat("k", k));
  const uint64_t flushes = c->stats().flushes;
  auto* routed = find_layer<RoutedStore>(*c);
  ASSERT_NE(routed, nullptr);
  // The same nodes, the partitions dealt the other way round: version 2.
  ClusterInfo moved = routed->ring().to_cluster();
  std::vector<std::vector<uint32_t>> parts;
  for (const NodeInfo& n : moved.nodes) parts.push_back(n.partitions);
  for (size_t i = 0; i < moved.nodes.size(); ++i) {
    moved.nodes[i].partitions = parts[parts.size() - 1 - i];
  }
  routed->update(moved, 2);
  ASSERT_TRUE(eventually([&] { return c->stats().flushes > flushes; })) << c->report();
  const uint64_t hits = c->stats().hits;
  for (int k = 0; k < 10; ++k) EXPECT_EQ(value_of(*c, absl::StrCat("k", k)), "v");
  EXPECT_EQ(c->stats().hits, hits);
  // It caches again under the new layout.
  for (int k = 0; k < 10; ++k) warm(*c, absl::StrCat("k", k));
}

// ---- scripted homes: a gap, and a track that races a write ------------------

// A node whose Get answers from a memory store and whose Watch stream is
// scripted by the test.
class ScriptedNode final : public rpc::Store::CallbackService {
 public:
  enum class Mode { kNormal, kSkipASequenceNumber, kInvalidateBeforeTracked, kHomeIsNewer };

  ScriptedNode() {
    grpc::ServerBuilder b;
    b.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    b.RegisterService(this);
    server_ = b.BuildAndStart();
  }
  ~ScriptedNode() override { server_->Shutdown(std::chrono::system_clock::now()); }

  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  MemoryStore& data() { return data_; }
  std::atomic<Mode> mode{Mode::kNormal};
  std::atomic<int> watches{0};
  std::atomic<int> gets{0};

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const rpc::GetRequest* req,
                                rpc::GetResponse* resp) override {
    ++gets;
    for (const Versioned& v : data_.get(req->key())) internal::to_wire(v, resp->add_versions());
    auto* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

  grpc::ServerBidiReactor<rpc::WatchRequests, rpc::WatchEvents>* Watch(
      grpc::CallbackServerContext*) override {
    ++watches;
    return new Stream(this);
  }

 private:
  class Stream final : public grpc::ServerBidiReactor<rpc::WatchRequests, rpc::WatchEvents> {
   public:
    explicit Stream(ScriptedNode* node) : node_(node) { StartRead(&in_); }
    void OnReadDone(bool ok) override {
      if (!ok) return finish();
      for (const rpc::WatchRequest& r : in_.requests()) {
        if (r.has_ping()) push()->set_pong(r.ping());
        if (r.has_track()) track(r.track());
      }
      in_.Clear();
      StartRead(&in_);
      flush();
    }
    void OnWriteDone(bool ok) override {
      std::unique_lock lock(mu_);
      writing_ = false;
      if (!ok) return;
      lock.unlock();
      flush();
    }
    void OnCancel() override { finish(); }
    void OnDone() override { delete this; }

   private:
    rpc::WatchEvent* push() {
      std::lock_guard lock(mu_);
      rpc::WatchEvent e;
      e.set_seq(++seq_);
      queue_.push_back(e);
      return &queue_.back();
    }
    void track(const rpc::TrackRequest& t) {
      const Mode m = node_->mode.load();
      if (m == Mode::kSkipASequenceNumber) {
        std::lock_guard lock(mu_);
        ++seq_;  // an event lost on the way
      }
      if (m == Mode::kInvalidateBeforeTracked) {
        auto* inv = push()->mutable_invalidate();
        inv->set_store(t.store());
        inv->set_key(t.key());
      }
      rpc::WatchEvent* e = push();
      auto* tr = e->mutable_tracked();
      tr->set_id(t.id());
      tr->set_tracked(true);
      std::vector<VectorClock> clocks = node_->data_.versions(t.key());
      if (m == Mode::kHomeIsNewer) clocks = {VectorClock({{1, 1000}}, 1)};
      for (const VectorClock& c : clocks) internal::to_wire(c, tr->add_clocks());
    }
    void flush() {
      std::unique_lock lock(mu_);
      if (writing_ || queue_.empty() || done_) return;
      out_.Clear();
      for (auto& e : queue_) *out_.add_events() = e;
      queue_.clear();
      writing_ = true;
      lock.unlock();
      StartWrite(&out_);
    }
    void finish() {
      std::unique_lock lock(mu_);
      if (done_) return;
      done_ = true;
      lock.unlock();
      Finish(grpc::Status::OK);
    }
    ScriptedNode* node_;
    rpc::WatchRequests in_;
    rpc::WatchEvents out_;
    std::mutex mu_;
    std::deque<rpc::WatchEvent> queue_;
    uint64_t seq_ = 0;
    bool writing_ = false;
    bool done_ = false;
  };

  MemoryStore data_;
  int port_ = 0;
  std::unique_ptr<grpc::Server> server_;
};

// One scripted node holding every key (N = R = W = 1), reached without the
// stream pipeline (it serves unary Get only).
std::unique_ptr<CacheStore> cache_over(ScriptedNode& node) {
  ClusterInfo cluster = test_cluster(1, 4);
  cluster.nodes[0].address = node.address();
  GrpcOptions g;
  g.store = "s";
  g.targets = {node.address()};
  g.pipeline = false;
  g.retries = 0;
  RouteOptions ro;
  ro.store = "s";
  ro.replication = {1, 1, 1};
  ro.read_repair = false;
  auto routed = open_routed_store(ro, Ring(cluster), {std::make_shared<GrpcStore>(g)});
  return std::make_unique<CacheStore>(std::move(routed), cache_options());
}

TEST(CacheScripted, ANormalHomeLetsTheCacheKeepWhatItReads) {
  ScriptedNode node;
  node.data().put("k", at("v", 1));
  auto c = cache_over(node);
  warm(*c, "k");
  const int gets = node.gets.load();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(value_of(*c, "k"), "v");
  EXPECT_EQ(node.gets.load(), gets);
}

TEST(CacheScripted, AMissedSequenceNumberDropsTheHomesEntriesAndReconnects) {
  ScriptedNode node;
  node.data().put("a", at("v", 1));
  node.data().put("b", at("v", 1));
  auto c = cache_over(node);
  warm(*c, "a");
  EXPECT_EQ(node.watches.load(), 1);
  node.mode = ScriptedNode::Mode::kSkipASequenceNumber;
  value_of(*c, "b");  // its track's answer comes after a gap
  ASSERT_TRUE(eventually([&] { return c->stats().flushes >= 1; })) << c->report();
  // "a" was cached: it is dropped with the rest of the home's entries.
  const int gets = node.gets.load();
  EXPECT_EQ(value_of(*c, "a"), "v");
  EXPECT_EQ(node.gets.load(), gets + 1);
  // A new stream, which keeps working once the home behaves.
  node.mode = ScriptedNode::Mode::kNormal;
  EXPECT_TRUE(eventually([&] { return node.watches.load() >= 2; }));
  warm(*c, "a");
}

TEST(CacheScripted, AnInvalidationRacingTheFetchKeepsItsValueOut) {
  ScriptedNode node;
  node.data().put("k", at("v", 1));
  auto c = cache_over(node);
  node.data().put("w", at("w", 1));
  warm(*c, "w");  // the stream is up
  node.mode = ScriptedNode::Mode::kInvalidateBeforeTracked;
  const uint64_t hits = c->stats().hits;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(value_of(*c, "k"), "v");
  EXPECT_EQ(c->stats().hits, hits) << c->report();
  EXPECT_TRUE(eventually([&] { return c->stats().invalidations >= 20u; })) << c->report();
}

TEST(CacheScripted, AReadOlderThanTheHomesClocksIsNotKept) {
  ScriptedNode node;
  node.data().put("k", at("v", 1));
  auto c = cache_over(node);
  node.mode = ScriptedNode::Mode::kHomeIsNewer;
  for (int i = 0; i < 20; ++i) EXPECT_EQ(value_of(*c, "k"), "v");
  EXPECT_EQ(c->stats().hits, 0u) << c->report();
  // The last track's answer may still be on its way.
  EXPECT_TRUE(eventually([&] { return c->stats().uncached >= 20u; })) << c->report();
}

}  // namespace
}  // namespace cairn::testing

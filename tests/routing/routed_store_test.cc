// The routing layer in-process: three or five nodes whose replicas are
// memory engines behind fault injectors, so that quorums, homes, repair and
// the failure detector can be driven exactly. tests/cluster/ runs the same
// layer over real servers.

#include "routing/routed_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <future>
#include <thread>

#include "cairn/errors.h"
#include "cairn/fault_store.h"
#include "cairn/forwarding_store.h"
#include "cairn/memory_store.h"
#include "cairn/stats_store.h"
#include "routing/hinted_handoff.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

using testing::clock;
using testing::versioned;

// Counts the calls that reach a replica.
class Counting final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  void get_into(std::string_view key, std::vector<Versioned>* out) override {
    ++gets;
    ForwardingStore::get_into(key, out);
  }
  std::map<std::string, std::vector<Versioned>> get_all(std::span<const std::string> keys) override {
    ++get_alls;
    return ForwardingStore::get_all(keys);
  }
  std::atomic<int> gets{0};
  std::atomic<int> get_alls{0};
};

ClusterInfo cluster(int nodes) {
  ClusterInfo c;
  c.partitions = 32;
  for (int i = 0; i < nodes; ++i) {
    c.nodes.push_back(NodeInfo{static_cast<NodeId>(10 + i), "127.0.0.1:" + std::to_string(1 + i), "", {}});
  }
  return c;
}

// Nodes 10, 11, 12...: each a memory engine behind a fault injector behind
// a call counter. The routed stores share the stacks; the test reads the
// engines directly.
class RoutedTest : public ::testing::Test {
 protected:
  void make_nodes(int n) {
    cluster_ = cluster(n);
    for (int i = 0; i < n; ++i) {
      auto engine = std::make_unique<MemoryStore>();
      engines_.push_back(engine.get());
      auto fault = std::make_unique<FaultStore>(std::move(engine), FaultStore::kAll,
                                                std::chrono::milliseconds(0),
                                                FaultStore::Failure::kNone);
      faults_.push_back(fault.get());
      auto counting = std::make_shared<Counting>(std::move(fault));
      counters_.push_back(counting.get());
      stacks_.push_back(counting);
    }
  }

  std::unique_ptr<RoutedStore> route(Replication r, RouteOptions o = {},
                                     std::optional<NodeId> self = std::nullopt,
                                     std::shared_ptr<HintedHandoff> hints = nullptr) {
    o.store = "s";
    o.replication = r;
    return std::make_unique<RoutedStore>(o, Ring(cluster_), stacks_, self, std::move(hints));
  }

  // The engine of node `id` (ids start at 10).
  MemoryStore& engine(NodeId id) { return *engines_[id - 10]; }
  FaultStore& fault(NodeId id) { return *faults_[id - 10]; }
  Counting& counter(NodeId id) { return *counters_[id - 10]; }
  std::vector<NodeId> replicas_of(std::string_view key, int n) {
    return Ring(cluster_).preference_list(key, n);
  }

  // Waits up to 5 s for `done`.
  template <typename Fn>
  static bool eventually(Fn&& done) {
    for (int i = 0; i < 500; ++i) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return done();
  }

  ClusterInfo cluster_;
  std::vector<MemoryStore*> engines_;
  std::vector<FaultStore*> faults_;
  std::vector<Counting*> counters_;
  std::vector<std::shared_ptr<Store>> stacks_;
};

TEST_F(RoutedTest, WritesReachEveryReplicaWithTheHomeStampOnTheClock) {
  make_nodes(5);
  auto r = route({3, 2, 2});
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  VectorClock stored;
  ASSERT_EQ(r->put("k", versioned("v", {{1, 4}}), &stored), PutResult::kStored);
  EXPECT_EQ(stored.counter(1), 4u) << "the writer's entries stay";
  EXPECT_EQ(stored.counter(kStampBase + replicas[0]), 1u) << "the home adds its own";
  EXPECT_EQ(stored.entries().size(), 2u);
  // Every replica gets it (the third may land just after the put returns),
  // and no other node does.
  for (NodeId id = 10; id < 15; ++id) {
    const bool replica = std::find(replicas.begin(), replicas.end(), id) != replicas.end();
    EXPECT_TRUE(eventually([&] { return engine(id).get("k").size() == (replica ? 1u : 0u); }))
        << "node " << id;
  }
  EXPECT_EQ(engine(replicas[2]).get("k").at(0).clock, stored);
  const auto got = r->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].clock, stored);
}

TEST_F(RoutedTest, ObsoleteAtTheHomeIsObsoleteAndGoesNoFurther) {
  make_nodes(3);
  auto r = route({3, 2, 2});
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  ASSERT_EQ(engine(replicas[0]).put("k", versioned("newer", {{1, 5}, {kStampBase + replicas[0], 9}})),
            PutResult::kStored);
  EXPECT_EQ(r->put("k", versioned("older", {{1, 5}})), PutResult::kObsolete);
  EXPECT_TRUE(engine(replicas[1]).get("k").empty());
  EXPECT_TRUE(engine(replicas[2]).get("k").empty());
}

TEST_F(RoutedTest, AHomeThatIsDownHandsTheWriteToTheNextAndGetsAHint) {
  make_nodes(3);
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  // The router runs in the node that is last on this key's list, keeping
  // hints for the others.
  const NodeId self = replicas[2];
  auto hints = std::make_shared<HintedHandoff>(std::make_unique<MemoryStore>(), cluster_, self,
                                               ServerTls{});
  auto r = route({3, 2, 2}, {}, self, hints);
  fault(replicas[0]).set_failure(FaultStore::Failure::kUnavailable);
  VectorClock stored;
  ASSERT_EQ(r->put("k", versioned("v", {{1, 1}}), &stored), PutResult::kStored);
  EXPECT_EQ(stored.counter(kStampBase + replicas[0]), 0u);
  EXPECT_EQ(stored.counter(kStampBase + replicas[1]), 1u) << "the next live node is the home";
  EXPECT_TRUE(r->banned(replicas[0]));
  ASSERT_TRUE(eventually([&] { return hints->list().size() == 1; }));
  const Hint h = hints->list().at(0);
  EXPECT_EQ(h.node, replicas[0]);
  EXPECT_EQ(h.store, "s");
  EXPECT_EQ(h.key, "k");
  EXPECT_FALSE(h.remove);
  EXPECT_EQ(h.version.value, "v");
  EXPECT_EQ(h.version.clock, stored);
  // A delete while it is still banned is a tombstone, which supersedes the
  // hint of the put it deletes.
  EXPECT_TRUE(r->remove("k", stored));
  EXPECT_TRUE(r->get("k").empty());
  EXPECT_TRUE(eventually([&] {
    const auto list = hints->list();
    return list.size() == 1 && list[0].version.clock.counter(kTombstoneEntry) == 1 &&
           list[0].version.value.empty();
  }));
}

TEST_F(RoutedTest, MissingTheQuorumIsInsufficientReplicasSayingWhy) {
  make_nodes(3);
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  auto writer = route({3, 2, 2});
  ASSERT_EQ(writer->put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  fault(replicas[1]).set_failure(FaultStore::Failure::kUnavailable);
  fault(replicas[2]).set_failure(FaultStore::Failure::kIoError);
  try {
    writer->put("k", versioned("w", {{1, 2}}));
    FAIL() << "a put with one replica of three took it, W=2";
  } catch (const InsufficientReplicas& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("1 of the 2 replicas required answered"), std::string::npos) << m;
    EXPECT_NE(m.find("node " + std::to_string(replicas[0]) + " (127.0.0.1:"), std::string::npos) << m;
    EXPECT_NE(m.find("IoError"), std::string::npos) << m;
  }
  EXPECT_THROW(writer->get("k"), InsufficientReplicas) << "R=2 with one replica up";
  // R=1 still reads.
  auto reader = route({3, 1, 2});
  EXPECT_EQ(reader->get("k").size(), 1u);
  // A bad request is its own error, not a quorum failure.
  EXPECT_THROW(writer->get(std::string(600, 'x')), InvalidArgument);
}

// Every read sampled for repair: it reaches all three replicas.
RouteOptions every_read_repairs() {
  RouteOptions o;
  o.read_repair_chance = 1;
  return o;
}

TEST_F(RoutedTest, ReadRepairBringsStaleReplicasUpToDate) {
  make_nodes(3);
  auto r = route({3, 2, 2}, every_read_repairs());
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  ASSERT_EQ(r->put("k", versioned("old", {{1, 1}})), PutResult::kStored);
  ASSERT_TRUE(eventually([&] { return engine(replicas[2]).get("k").size() == 1; }));
  // One replica alone gets a newer write, and another a concurrent one.
  const Versioned newer = versioned("new", {{1, 2}, {kStampBase + replicas[0], 1}});
  const Versioned sibling = versioned("sib", {{2, 1}});
  ASSERT_EQ(engine(replicas[0]).put("k", newer), PutResult::kStored);
  ASSERT_EQ(engine(replicas[2]).put("k", sibling), PutResult::kStored);
  // The read answers with what its first R replicas held (the newer
  // version at least); every replica answers, and repair evens them out.
  EXPECT_FALSE(r->get("k").empty());
  for (NodeId id : replicas) {
    EXPECT_TRUE(eventually([&] {
      std::vector<std::string> values;
      for (const Versioned& v : engine(id).get("k")) values.push_back(v.value);
      std::sort(values.begin(), values.end());
      return values == std::vector<std::string>{"new", "sib"};
    })) << "node " << id;
  }
  EXPECT_EQ(r->get("k").size(), 2u) << "the newer version and the sibling";
}

// A split write (node replicas[0] stored one copy, replicas[1] another
// that names the write) and a replacement of the second copy that never
// reached replicas[0]: a read that meets the first copy beside the
// replacement returns the replacement alone, and repair puts it in the
// first copy's place.
TEST_F(RoutedTest, AReadNeverReturnsACopyOfAWriteThatWasReplaced) {
  make_nodes(3);
  auto r = route({3, 2, 2}, every_read_repairs());
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  Versioned first = versioned("w", {{1, 1}, {kStampBase + replicas[0], 1}});
  first.write_id = 42;
  Versioned replacement = versioned("x", {{1, 1}, {2, 1}, {kStampBase + replicas[1], 2}});
  replacement.write_id = 43;
  replacement.replaces = {42};
  ASSERT_EQ(compare(first.clock, replacement.clock), Occurred::kConcurrent);
  ASSERT_EQ(engine(replicas[0]).put("k", first), PutResult::kStored);
  ASSERT_EQ(engine(replicas[1]).put("k", replacement), PutResult::kStored);
  ASSERT_EQ(engine(replicas[2]).put("k", replacement), PutResult::kStored);
  const std::vector<Versioned> got = r->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "x");
  EXPECT_TRUE(got[0].replaces.empty()) << "the list stays inside the cluster";
  EXPECT_EQ(got[0].write_id, 0u);
  EXPECT_TRUE(eventually([&] {
    const std::vector<Versioned> held = engine(replicas[0]).get("k");
    return held.size() == 1 && held[0].value == "x";
  }));
}

// The second home's copy V of a split write, replaced by W whose home held
// neither copy (so W names nothing); the first copy X, alone or joined with
// V, on another replica. W was written by a reader of V: it supersedes
// every copy of V's write, whatever order the answers come in, and repair
// leaves W alone everywhere.
TEST_F(RoutedTest, AReadWeighsEveryAnswerAgainstEveryOther) {
  make_nodes(3);
  auto r = route({3, 3, 2}, every_read_repairs());  // R = 3: every answer in each read
  int round = 0;
  for (const bool joined : {false, true}) {
    for (int order = 0; order < 3; ++order) {
      const std::string key = "k" + std::to_string(round++);
      SCOPED_TRACE(::testing::Message() << key << (joined ? ": joined" : ": alone"));
      const std::vector<NodeId> replicas = replicas_of(key, 3);
      Versioned first = versioned("x", {{1, 1}, {kStampBase + replicas[0], 1}});
      first.write_id = 42;
      Versioned second = versioned("x", {{1, 1}, {kStampBase + replicas[1], 1}});
      second.write_id = 42;
      second.replaces = {42};
      Versioned next = versioned(
          "w", {{1, 1}, {2, 1}, {kStampBase + replicas[1], 1}, {kStampBase + replicas[2], 1}});
      next.write_id = 43;
      // Which replica holds which rotates, so that the answers come in
      // every order.
      const NodeId holds_first = replicas[order % 3];
      const NodeId holds_second = replicas[(order + 1) % 3];
      const NodeId holds_next = replicas[(order + 2) % 3];
      ASSERT_EQ(engine(holds_first).put(key, first), PutResult::kStored);
      if (joined) {
        ASSERT_EQ(engine(holds_first).put(key, second), PutResult::kStored);
      }
      ASSERT_EQ(engine(holds_second).put(key, second), PutResult::kStored);
      ASSERT_EQ(engine(holds_next).put(key, next), PutResult::kStored);
      const std::vector<Versioned> got = r->get(key);
      ASSERT_EQ(got.size(), 1u);
      EXPECT_EQ(got[0].value, "w");
      for (NodeId id : replicas) {
        EXPECT_TRUE(eventually([&] {
          const std::vector<Versioned> held = engine(id).get(key);
          return held.size() == 1 && held[0].value == "w";
        })) << "node " << id << " holds " << engine(id).get(key).size() << " versions";
      }
    }
  }
}

// A retry of a write whose home failed after passing it on: the next home
// holds the first home's copy, and answers with its clock (stamped by the
// first home, not by itself). That is a stored write, not a node that
// ignores stamps.
TEST_F(RoutedTest, ARetryAtAHomeHoldingAnotherHomesCopyIsStored) {
  make_nodes(3);
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  Versioned copy = versioned("v", {{1, 1}, {kStampBase + replicas[0], 1}});
  copy.write_id = 7;
  ASSERT_EQ(engine(replicas[1]).put("k", copy), PutResult::kStored);
  ASSERT_EQ(engine(replicas[2]).put("k", copy), PutResult::kStored);
  fault(replicas[0]).set_failure(FaultStore::Failure::kUnavailable);
  auto r = route({3, 2, 2});
  Versioned retry = versioned("v", {{1, 1}});
  retry.write_id = 7;
  VectorClock stored;
  ASSERT_EQ(r->put("k", retry, &stored), PutResult::kStored);
  EXPECT_EQ(stored, copy.clock);
  EXPECT_EQ(engine(replicas[1]).get("k").size(), 1u);
}

// A node older than write ids ignores the stamp its home must add: the
// coordinator refuses its answer and takes the next home.
TEST_F(RoutedTest, AHomeThatDoesNotStampIsRefused) {
  make_nodes(3);
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  class Unstamping final : public ForwardingStore {
   public:
    using ForwardingStore::ForwardingStore;
    PutResult put_stamped(std::string_view key, const Versioned& value,
                          PutReply* stored) override {
      Versioned plain = value;
      plain.stamp = 0;
      return ForwardingStore::put_stamped(key, plain, stored);
    }
  };
  stacks_[replicas[0] - 10] = std::make_shared<Unstamping>(std::make_unique<MemoryStore>());
  auto r = route({3, 2, 2});
  VectorClock stored;
  ASSERT_EQ(r->put("k", versioned("v", {{1, 1}}), &stored), PutResult::kStored);
  EXPECT_EQ(stored.counter(kStampBase + replicas[1]), 1u) << "the next node stamped it";
  const std::vector<Versioned> got = r->get("k");
  ASSERT_EQ(got.size(), 1u) << "the unstamped copy is below the stamped one";
  EXPECT_EQ(got[0].clock, stored);
}

TEST_F(RoutedTest, ADeleteAReplicaMissedDoesNotComeBack) {
  make_nodes(3);
  auto r = route({3, 2, 2}, every_read_repairs());
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  VectorClock stored;
  ASSERT_EQ(r->put("k", versioned("v", {{1, 1}}), &stored), PutResult::kStored);
  ASSERT_TRUE(eventually([&] { return engine(replicas[2]).get("k").size() == 1; }));
  // The third replica misses the delete (it fails with IoError: no ban,
  // and its hint has nowhere to go in-process).
  fault(replicas[2]).set_failure(FaultStore::Failure::kIoError);
  ASSERT_TRUE(r->remove("k", stored));
  fault(replicas[2]).set_failure(FaultStore::Failure::kNone);
  EXPECT_EQ(engine(replicas[2]).get("k").at(0).value, "v") << "it still has the value";
  // Reads see the tombstone win, and repair the stale replica with it.
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(r->get("k").empty());
  EXPECT_TRUE(eventually([&] {
    const auto v = engine(replicas[2]).get("k");
    return v.size() == 1 && v[0].clock.counter(kTombstoneEntry) == 1;
  })) << "read repair carries the tombstone";
  EXPECT_TRUE(r->get("k").empty());
  EXPECT_FALSE(r->remove("k", stored)) << "nothing left to delete";
  EXPECT_EQ(r->scan()->next(), false) << "scans skip tombstones";
  // A write that read the tombstone's clock is live again.
  VectorClock base;
  for (const VectorClock& c : r->versions("k")) base = base.merged(c);
  base.increment(1, 2);
  VectorClock again;
  ASSERT_EQ(r->put("k", Versioned{"again", base}, &again), PutResult::kStored);
  EXPECT_EQ(again.counter(kTombstoneEntry) % 2, 0u);
  EXPECT_EQ(r->get("k").at(0).value, "again");
}

TEST_F(RoutedTest, BannedNodesAreSkippedUntilAProbeAnswers) {
  make_nodes(3);
  RouteOptions slow_probes = every_read_repairs();
  slow_probes.probe_interval = std::chrono::hours(1);
  auto r = route({3, 1, 1}, slow_probes);
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  fault(replicas[1]).set_failure(FaultStore::Failure::kTimeout);
  r->get("k");
  ASSERT_TRUE(eventually([&] { return r->banned(replicas[1]); }));
  const int before = counter(replicas[1]).gets.load();
  for (int i = 0; i < 5; ++i) r->get("k");
  EXPECT_EQ(counter(replicas[1]).gets.load(), before) << "a banned node is not asked";
  // With probes every 20 ms the ban lifts once the node answers.
  RouteOptions fast = every_read_repairs();
  fast.ban = std::chrono::milliseconds(20);
  fast.probe_interval = std::chrono::milliseconds(20);
  auto r2 = route({3, 1, 1}, fast);
  r2->get("k");
  ASSERT_TRUE(eventually([&] { return r2->banned(replicas[1]); }));
  fault(replicas[1]).set_failure(FaultStore::Failure::kNone);
  EXPECT_TRUE(eventually([&] { return !r2->banned(replicas[1]); }));
}

TEST_F(RoutedTest, AReadGoesToRReplicasHomeFirst) {
  make_nodes(3);
  RouteOptions o;
  o.read_repair_chance = 0;
  auto r = route({3, 2, 2}, o);
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  ASSERT_EQ(r->put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  for (Counting* c : counters_) c->gets = 0;
  for (int i = 0; i < 50; ++i) ASSERT_EQ(r->get("k").at(0).value, "v");
  EXPECT_EQ(counter(replicas[0]).gets.load(), 50) << "the home";
  EXPECT_EQ(counter(replicas[1]).gets.load(), 50);
  EXPECT_EQ(counter(replicas[2]).gets.load(), 0) << "R=2: the third is not asked";
  // A replica that fails brings in the next: still R answers.
  fault(replicas[0]).set_failure(FaultStore::Failure::kIoError);
  EXPECT_EQ(r->get("k").at(0).value, "v");
  EXPECT_EQ(counter(replicas[2]).gets.load(), 1);
}

TEST_F(RoutedTest, ASampledFractionOfReadsRepairsTheReplicaOutsideR) {
  // Node X misses every write (an I/O error: not banned, and in-process
  // replicas keep no hints); reads must bring it up to date. Where X is
  // among a key's first R, the first read repairs it; where it is third,
  // only the reads sampled for repair (10%) reach it.
  make_nodes(3);
  auto r = route({3, 2, 2});
  const NodeId x = 10;
  fault(x).set_failure(FaultStore::Failure::kIoError);
  std::vector<std::string> in_r, third;
  for (int i = 0; in_r.size() < 300 || third.size() < 300; ++i) {
    const std::string key = "k" + std::to_string(i);
    const std::vector<NodeId> list = replicas_of(key, 3);
    std::vector<std::string>& group = list[2] == x ? third : in_r;
    if (group.size() == 300) continue;
    ASSERT_EQ(r->put(key, versioned("v", {{1, 1}})), PutResult::kStored);
    group.push_back(key);
  }
  fault(x).set_failure(FaultStore::Failure::kNone);
  auto repaired = [&](const std::vector<std::string>& keys) {
    size_t n = 0;
    for (const std::string& k : keys) n += engine(x).get(k).size();
    return n;
  };
  for (const std::string& k : in_r) r->get(k);
  for (const std::string& k : third) r->get(k);
  EXPECT_TRUE(eventually([&] { return repaired(in_r) == in_r.size(); }));
  // Binomial(300, 0.1): 30 expected, with a standard deviation of 5.2.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // repairs in flight land
  const size_t once = repaired(third);
  EXPECT_GE(once, 6u);
  EXPECT_LE(once, 75u);
  for (int round = 0; round < 29; ++round) {
    for (const std::string& k : third) r->get(k);
  }
  // After 30 reads each, 1 - 0.9^30 = 96% expected.
  EXPECT_TRUE(eventually([&] { return repaired(third) >= 240; })) << repaired(third);
  std::printf("read repair of a replica outside R (chance 0.1): %zu of 300 keys after one read, "
              "%zu after 30\n", once, repaired(third));
}

TEST_F(RoutedTest, AStalledReplicaIsHedged) {
  // Replicas whose async calls never block (faults over memory, counted
  // above the delay), the key's home stalled for 3 s.
  cluster_ = cluster(3);
  std::vector<std::shared_ptr<Store>> stacks;
  std::vector<StatsStore*> stats;
  std::vector<FaultStore*> faults;
  for (int i = 0; i < 3; ++i) {
    auto f = std::make_unique<FaultStore>(std::make_unique<MemoryStore>(), FaultStore::kGet,
                                          std::chrono::milliseconds(0), FaultStore::Failure::kNone);
    faults.push_back(f.get());
    auto s = std::make_shared<StatsStore>(std::move(f), "node");
    stats.push_back(s.get());
    stacks.push_back(s);
  }
  RouteOptions o;
  o.store = "s";
  o.replication = {3, 2, 2};
  o.read_repair_chance = 0;
  o.read_hedge = std::chrono::milliseconds(20);
  o.timeout = std::chrono::seconds(30);
  RoutedStore r(o, Ring(cluster_), stacks, std::nullopt, nullptr);
  const std::vector<NodeId> replicas = replicas_of("k", 3);
  ASSERT_EQ(r.put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  faults[replicas[0] - 10]->set_delay(std::chrono::seconds(3));
  for (int i = 0; i < 5; ++i) ASSERT_EQ(r.get("k").at(0).value, "v");
  // The reads were answered by the other two while the home's gets still
  // wait out their delay.
  EXPECT_EQ(stats[replicas[0] - 10]->snapshot()[StatsStore::Op::kGet].count, 0u);
  EXPECT_EQ(stats[replicas[2] - 10]->snapshot()[StatsStore::Op::kGet].count, 5u) << "hedged";
  r.close();
}

TEST_F(RoutedTest, GetAllSendsOneRequestPerNode) {
  make_nodes(5);
  auto r = route({3, 2, 2});
  std::vector<std::string> keys;
  for (int i = 0; i < 40; ++i) {
    keys.push_back("key" + std::to_string(i));
    ASSERT_EQ(r->put(keys.back(), versioned(keys.back(), {{1, 1}})), PutResult::kStored);
  }
  keys.push_back("absent");
  for (Counting* c : counters_) c->get_alls = 0;
  const auto got = r->get_all(keys);
  EXPECT_EQ(got.size(), 40u);
  for (int i = 0; i < 40; ++i) EXPECT_EQ(got.at(keys[static_cast<size_t>(i)]).at(0).value, keys[static_cast<size_t>(i)]);
  for (NodeId id = 10; id < 15; ++id) EXPECT_EQ(counter(id).get_alls.load(), 1) << "node " << id;
}

TEST_F(RoutedTest, ConcurrentWritersNeverLoseAnAcknowledgedWriteSilently) {
  // Two clients, each its own router over the same nodes, race
  // read-modify-writes on one key. Each acknowledged write must survive as a
  // version or be superseded by one that survives.
  make_nodes(3);
  auto a = route({3, 2, 2});
  auto b = route({3, 2, 2});
  std::vector<VectorClock> last(2);
  auto writer = [&](RoutedStore* r, NodeId id, VectorClock* acked) {
    for (int i = 0; i < 200; ++i) {
      VectorClock c;
      for (const VectorClock& seen : r->versions("hot")) c = c.merged(seen);
      c.increment(id, i);
      VectorClock stored;
      if (r->put("hot", Versioned{std::to_string(id), c}, &stored) == PutResult::kStored) {
        *acked = stored;
      }
    }
  };
  std::thread ta(writer, a.get(), 1, &last[0]), tb(writer, b.get(), 2, &last[1]);
  ta.join();
  tb.join();
  const auto final_versions = a->get("hot");
  ASSERT_FALSE(final_versions.empty());
  for (const VectorClock& acked : last) {
    ASSERT_FALSE(acked.empty());
    bool kept = false;
    for (const Versioned& v : final_versions) {
      const Occurred o = compare(acked, v.clock);
      kept |= o == Occurred::kBefore || o == Occurred::kEqual;
    }
    EXPECT_TRUE(kept) << "acknowledged write " << acked.to_string() << " was lost";
  }
}

TEST_F(RoutedTest, ScanSeesEachKeyOnce) {
  make_nodes(4);
  auto r = route({3, 2, 2});
  for (int i = 0; i < 100; ++i) {
    ASSERT_EQ(r->put("k" + std::to_string(i), versioned("v", {{1, 1}})), PutResult::kStored);
  }
  std::set<std::string> seen;
  for (auto it = r->scan(); it->next();) {
    EXPECT_TRUE(seen.insert(std::string(it->key())).second) << "twice: " << it->key();
  }
  EXPECT_EQ(seen.size(), 100u);
}

TEST_F(RoutedTest, DescribeNamesTheQuorumsAndEveryNode) {
  make_nodes(3);
  auto r = route({3, 2, 1});
  const std::string d = r->describe();
  EXPECT_NE(d.find("route: store 's', n=3 r=2 w=1, 32 partitions on 3 nodes"), std::string::npos) << d;
  EXPECT_NE(d.find("node 12 (127.0.0.1:3):"), std::string::npos) << d;
}

TEST_F(RoutedTest, RejectsImpossibleQuorums) {
  make_nodes(3);
  EXPECT_THROW(route({4, 2, 2}), InvalidArgument);
  EXPECT_THROW(route({3, 4, 2}), InvalidArgument);
  EXPECT_THROW(route({3, 2, 0}), InvalidArgument);
}

TEST(HintEncodingTest, RoundTripsShortAndLongKeysAndRejectsGarbage) {
  Hint h;
  h.node = 70000;
  h.store = "users";
  h.key = std::string("a\0b", 3);
  h.version = Versioned{"value", clock({{1, 2}})};
  auto round_trip = [](const Hint& in) {
    return HintedHandoff::decode(HintedHandoff::encode_key(in),
                                 Versioned{HintedHandoff::encode_value(in), in.version.clock});
  };
  Hint back = round_trip(h);
  EXPECT_EQ(back.node, 70000u);
  EXPECT_EQ(back.store, "users");
  EXPECT_EQ(back.key, h.key);
  EXPECT_FALSE(back.remove);
  EXPECT_EQ(back.version, h.version);
  // A key too long to inline is hashed in the entry's key and kept whole
  // in its value: the hint store's keys stay short.
  h.key = std::string(5000, 'k');
  h.remove = true;
  EXPECT_LE(HintedHandoff::encode_key(h).size(), 7 + h.store.size() + 8);
  back = round_trip(h);
  EXPECT_EQ(back.key, h.key);
  EXPECT_TRUE(back.remove);
  EXPECT_TRUE(back.version.value.empty());
  const Versioned v{HintedHandoff::encode_value(h), clock({{1, 1}})};
  EXPECT_THROW(HintedHandoff::decode("short", v), Corruption);
  EXPECT_THROW(HintedHandoff::decode(std::string("\0\0\0\1X\5users\0k", 13), v), Corruption);
  EXPECT_THROW(HintedHandoff::decode(std::string("\0\0\0\1P\x50users\0k", 13), v), Corruption);
  EXPECT_THROW(HintedHandoff::decode(HintedHandoff::encode_key(h), Versioned{"\0\0", {}}),
               Corruption);
  Hint other = h;
  other.key = "another";
  EXPECT_THROW(HintedHandoff::decode(HintedHandoff::encode_key(other), v), Corruption)
      << "an entry whose value names another key";
}

// ---- Changes of metadata while serving ------------------------------------

// Nodes 10..13 exist; the store starts on a ring of the first three and
// reaches node 13 through its factory once the metadata names it.
class MovingTest : public RoutedTest {
 protected:
  void SetUp() override {
    make_nodes(4);
    ClusterInfo three = cluster_;
    three.nodes.pop_back();
    before_ = std::make_unique<Ring>(three);
    after_ = std::make_unique<Ring>(before_->with_node(cluster_.nodes[3]));
    opened_ = 0;
  }

  std::unique_ptr<RoutedStore> route3(Replication r, RouteOptions o = {}) {
    o.store = "s";
    o.replication = r;
    std::vector<std::shared_ptr<Store>> three(stacks_.begin(), stacks_.begin() + 3);
    return std::make_unique<RoutedStore>(o, *before_, three, std::nullopt, nullptr,
                                         [this](const NodeInfo& n) {
                                           ++opened_;
                                           return stacks_[n.id - 10];
                                         });
  }
  // The metadata of a move from three nodes to four.
  ClusterInfo moving() const {
    ClusterInfo c = before_->to_cluster();
    c.moving_to = after_->to_cluster().nodes;
    return c;
  }
  bool holds(NodeId id, const std::string& key) { return !engine(id).get(key).empty(); }

  std::unique_ptr<Ring> before_, after_;
  std::atomic<int> opened_{0};
};

TEST_F(MovingTest, DuringAMoveWritesAlsoReachTheJoiningNodeAndReadsDoNot) {
  auto r = route3({3, 2, 2});
  r->update(moving(), 1);
  EXPECT_EQ(r->version(), 1);
  EXPECT_EQ(opened_, 1) << "node 13's stack is built once, when the metadata names it";
  int joined = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i);
    ASSERT_EQ(r->put(key, versioned("v", {})), PutResult::kStored);
    const std::vector<NodeId> prefs = after_->preference_list(key, 3);
    const bool joins = std::find(prefs.begin(), prefs.end(), 13) != prefs.end();
    joined += joins ? 1 : 0;
    // The third replica's write is not awaited (W=2): give it a moment.
    EXPECT_TRUE(eventually([&] { return holds(13, key) == joins; })) << key;
    for (NodeId id : before_->preference_list(key, 3)) {
      EXPECT_TRUE(eventually([&] { return holds(id, key); })) << key << " on node " << id;
    }
  }
  EXPECT_GT(joined, 0);
  EXPECT_LT(joined, 200);
  counter(13).gets = 0;
  for (int i = 0; i < 200; ++i) ASSERT_EQ(r->get("k" + std::to_string(i)).size(), 1u);
  EXPECT_EQ(counter(13).gets, 0) << "reads stay with the replicas before the move";

  // The move is done: reads and writes follow the new ring alone.
  r->update(after_->to_cluster(), 2);
  EXPECT_EQ(r->version(), 2);
  for (int i = 0; i < 200; ++i) {
    const std::string key = "k" + std::to_string(i);
    ASSERT_EQ(r->get(key).size(), 1u) << key << " reads back from the new layout";
  }
  for (int i = 0; i < 50; ++i) {
    const std::string key = "n" + std::to_string(i);
    ASSERT_EQ(r->put(key, versioned("w", {})), PutResult::kStored);
    const std::vector<NodeId> prefs = after_->preference_list(key, 3);
    for (NodeId id : {10, 11, 12, 13}) {
      const bool replica = std::find(prefs.begin(), prefs.end(), id) != prefs.end();
      if (!replica) {
        EXPECT_FALSE(holds(id, key)) << key << " on node " << id;
      }
    }
  }
  EXPECT_EQ(opened_, 1);
}

TEST_F(MovingTest, WritesInFlightFinishOnTheMetadataTheyBeganWith) {
  auto r = route3({3, 2, 3});
  // A key node 13 will replicate, and a slow replica of it before the move.
  std::string key;
  for (int i = 0; key.empty(); ++i) {
    const std::string k = "k" + std::to_string(i);
    const auto prefs = after_->preference_list(k, 3);
    if (std::find(prefs.begin(), prefs.end(), 13) != prefs.end()) key = k;
  }
  const NodeId slow = before_->preference_list(key, 3)[2];
  fault(slow).set_delay(std::chrono::milliseconds(300));
  std::promise<PutReply> acked;
  r->async_put(key, versioned("v", {}), [&](PutReply reply, std::exception_ptr e) {
    if (e) return acked.set_exception(e);
    acked.set_value(reply);
  });
  EXPECT_TRUE(r->older_writes_done()) << "no older metadata yet";
  r->update(moving(), 1);
  EXPECT_FALSE(r->older_writes_done()) << "the write to the slow replica is in flight";
  EXPECT_EQ(acked.get_future().get().result, PutResult::kStored);
  EXPECT_TRUE(eventually([&] { return r->older_writes_done(); }));
  EXPECT_FALSE(holds(13, key)) << "a write routed before the move does not reach node 13";
  fault(slow).set_delay(std::chrono::milliseconds(0));
}

TEST_F(MovingTest, MetadataThatDoesNotFitIsRefusedAndTheOldKeepsServing) {
  auto r = route3({3, 2, 2});
  ClusterInfo two = before_->without_node(12).to_cluster();
  EXPECT_THROW(r->update(two, 1), InvalidArgument) << "n=3 on two nodes";
  ClusterInfo moved = before_->to_cluster();
  moved.nodes[0].address = "127.0.0.1:9";
  EXPECT_THROW(r->update(moved, 1), InvalidArgument) << "a node that changed address";
  EXPECT_EQ(r->version(), 0);
  EXPECT_EQ(r->put("k", versioned("v", {})), PutResult::kStored);
  r->update(moving(), 3);
  r->update(before_->to_cluster(), 2);
  EXPECT_EQ(r->version(), 3) << "an older version changes nothing";
}

TEST_F(RoutedTest, AStoreWithoutAFactoryCannotReachANewNode) {
  make_nodes(4);
  ClusterInfo three = cluster_;
  three.nodes.pop_back();
  std::vector<std::shared_ptr<Store>> stacks(stacks_.begin(), stacks_.begin() + 3);
  RouteOptions o;
  o.store = "s";
  o.replication = {2, 1, 1};
  RoutedStore r(o, Ring(three), stacks, std::nullopt, nullptr);
  const Ring four = Ring(three).with_node(cluster_.nodes[3]);
  EXPECT_THROW(r.update(four.to_cluster(), 1), InvalidArgument);
}

}  // namespace
}  // namespace cairn

// The reaper in-process: node 10's route over three memory engines behind
// fault injectors (N=3, so every node replicates every key), with the
// reaper's clock moved by the test. The grace, a replica that does not
// answer, a replica holding an older live copy and an expired sibling are
// driven exactly; tests/cluster/lifecycle_test.cc runs the same over real
// processes.

#include "routing/reaper.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

#include "cairn/errors.h"
#include "cairn/fault_store.h"
#include "cairn/memory_store.h"
#include "cairn/ttl_store.h"
#include "routing/routed_store.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

using testing::clock;

constexpr int64_t kGraceMs = 1000;

class ReaperTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (int i = 0; i < 3; ++i) {
      cluster_.nodes.push_back(
          NodeInfo{static_cast<NodeId>(10 + i), "127.0.0.1:" + std::to_string(1 + i), "", {}});
      auto engine = std::make_unique<MemoryStore>();
      engines_.push_back(engine.get());
      auto fault = std::make_shared<FaultStore>(std::move(engine), FaultStore::kAll,
                                                std::chrono::milliseconds(0),
                                                FaultStore::Failure::kNone);
      faults_.push_back(fault.get());
      stacks_.push_back(std::move(fault));
    }
    cluster_.partitions = 8;
    RouteOptions o;
    o.store = "s";
    o.replication = {3, 2, 2};
    route_ = std::make_unique<RoutedStore>(o, Ring(cluster_), stacks_, std::optional<NodeId>(10),
                                           nullptr);
    ReapOptions reap;
    reap.grace = std::chrono::milliseconds(kGraceMs);
    reap.interval = std::chrono::milliseconds(0);  // passes only when the test asks
    reap.rate = 1'000'000;
    reap.now = [this] { return now_ms() + shift_.load(); };
    route_->start_reaper(reap);
  }
  void TearDown() override {
    if (route_ != nullptr) route_->close();
  }

  Reaper& reaper() { return *route_->reaper(); }
  // What node `id`'s engine holds for `key` (ids start at 10).
  std::vector<Versioned> held(NodeId id, std::string_view key) {
    return engines_[id - 10]->get(key);
  }
  void fail(NodeId id, bool on) {
    faults_[id - 10]->set_failure(on ? FaultStore::Failure::kUnavailable
                                     : FaultStore::Failure::kNone);
  }
  // Waits for a write's third copy (W=2 answers before it lands).
  void settle(std::string_view key, size_t versions) {
    for (int i = 0; i < 500; ++i) {
      if (held(10, key).size() == versions && held(11, key).size() == versions &&
          held(12, key).size() == versions) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    FAIL() << "the write did not reach every replica";
  }

  ClusterInfo cluster_;
  std::vector<MemoryStore*> engines_;
  std::vector<FaultStore*> faults_;
  std::vector<std::shared_ptr<Store>> stacks_;
  std::unique_ptr<RoutedStore> route_;
  std::atomic<int64_t> shift_{0};  // the reaper's clock, ahead of the wall clock
};

TEST_F(ReaperTest, ATombstoneGoesAfterTheGraceAndOnlyWhileEveryReplicaAnswers) {
  VectorClock written;
  ASSERT_EQ(route_->put("k", Versioned{"v", clock({{1, 1}}, now_ms())}, &written),
            PutResult::kStored);
  settle("k", 1);
  ASSERT_TRUE(route_->remove("k", written));
  settle("k", 1);
  for (NodeId id : {10, 11, 12}) ASSERT_TRUE(is_tombstone(held(id, "k")[0].clock));

  // Within the grace: kept.
  ReapStats s = reaper().pass();
  EXPECT_EQ(s.keys_reaped, 0u);
  EXPECT_EQ(held(11, "k").size(), 1u);

  // Past it, with node 12 not answering: kept, and counted.
  shift_ = 2 * kGraceMs;
  fail(12, true);
  s = reaper().pass();
  EXPECT_EQ(s.keys_reaped, 0u);
  EXPECT_EQ(s.held_unreachable, 1u);
  for (NodeId id : {10, 11, 12}) EXPECT_EQ(held(id, "k").size(), 1u) << "node " << id;

  // Every replica answers: gone from all three.
  fail(12, false);
  s = reaper().pass();
  EXPECT_EQ(s.keys_reaped, 1u);
  EXPECT_EQ(s.versions_removed, 3u);
  for (NodeId id : {10, 11, 12}) EXPECT_TRUE(held(id, "k").empty()) << "node " << id;
  EXPECT_TRUE(route_->get("k").empty());
}

TEST_F(ReaperTest, AReplicaThatMissedTheDeleteGetsTheTombstoneBeforeAnythingIsReaped) {
  VectorClock written;
  ASSERT_EQ(route_->put("k", Versioned{"old", clock({{1, 1}}, now_ms())}, &written),
            PutResult::kStored);
  settle("k", 1);
  fail(12, true);  // misses the delete (no hints here)
  ASSERT_TRUE(route_->remove("k", written));
  fail(12, false);
  ASSERT_EQ(held(12, "k").size(), 1u);
  ASSERT_EQ(held(12, "k")[0].value, "old");

  shift_ = 2 * kGraceMs;
  ReapStats s = reaper().pass();
  EXPECT_EQ(s.keys_reaped, 0u) << "reaped while node 12 held a live copy the tombstone succeeds";
  EXPECT_EQ(s.repaired, 1u);
  ASSERT_EQ(held(12, "k").size(), 1u);
  EXPECT_TRUE(is_tombstone(held(12, "k")[0].clock)) << "node 12 was not sent the tombstone";
  EXPECT_EQ(held(10, "k").size(), 1u);

  s = reaper().pass();
  EXPECT_EQ(s.keys_reaped, 1u);
  for (NodeId id : {10, 11, 12}) EXPECT_TRUE(held(id, "k").empty()) << "node " << id;
  EXPECT_TRUE(route_->get("k").empty()) << "the old value came back";
}

TEST_F(ReaperTest, AnExpiredSiblingGoesFromBesideTheLiveOne) {
  TtlOptions t;
  t.name = "s";
  t.now = [this] { return now_ms() + shift_.load(); };
  // The ttl layer over the node's route tells its reaper which versions
  // expired.
  auto ttl = std::make_unique<TtlStore>(std::move(route_), t);
  Versioned expiring{"a", clock({{1, 1}}, now_ms())};
  expiring.ttl_ms = 500;
  Versioned lasting{"b", clock({{2, 1}}, now_ms())};  // another writer: a sibling
  ASSERT_EQ(ttl->put("k", expiring), PutResult::kStored);
  ASSERT_EQ(ttl->put("k", lasting), PutResult::kStored);
  settle("k", 2);

  shift_ = 500 + 2 * kGraceMs;
  std::vector<Versioned> read = ttl->get("k");
  ASSERT_EQ(read.size(), 1u);
  EXPECT_EQ(read[0].value, "b");
  RoutedStore* route = find_layer<RoutedStore>(*ttl);
  ASSERT_NE(route, nullptr);
  const ReapStats s = route->reaper()->pass();
  EXPECT_EQ(s.keys_reaped, 0u) << "the key lives";
  EXPECT_EQ(s.versions_removed, 3u);
  for (NodeId id : {10, 11, 12}) {
    ASSERT_EQ(held(id, "k").size(), 1u) << "node " << id;
    EXPECT_EQ(held(id, "k")[0].clock.counter(2), 1u) << "node " << id << " lost the live sibling";
  }
  EXPECT_EQ(ttl->get("k").size(), 1u);
  ttl->close();
}

}  // namespace
}  // namespace cairn

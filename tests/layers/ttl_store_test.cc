// The ttl layer over a memory engine, its clock moved by the test: what a
// write beside an expired version does, and the timestamps expiry counts
// from. The conformance suite's TTL case runs over every engine and a
// route; tests/routing/reaper_test.cc and tests/cluster/lifecycle_test.cc
// cover reaping.

#include "cairn/ttl_store.h"

#include <gtest/gtest.h>

#include <atomic>
#include <limits>
#include <memory>

#include "cairn/errors.h"
#include "cairn/memory_store.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

using testing::clock;

class TtlTest : public ::testing::Test {
 protected:
  TtlTest() {
    TtlOptions o;
    o.name = "t";
    o.sweep_interval_ms = 0;
    o.now = [this] { return now_ms() + shift_.load(); };
    ttl_ = std::make_unique<TtlStore>(std::make_unique<MemoryStore>(), o);
  }
  std::atomic<int64_t> shift_{0};
  std::unique_ptr<TtlStore> ttl_;
};

Versioned with_ttl(std::string value, VectorClock c, int64_t ttl_ms) {
  Versioned v{std::move(value), std::move(c)};
  v.ttl_ms = ttl_ms;
  return v;
}

TEST_F(TtlTest, AStaleWriteBesideAnExpiredVersionIsStillObsolete) {
  const int64_t t = now_ms();
  ASSERT_EQ(ttl_->put("k", with_ttl("live", clock({{1, 5}}, t), -1)), PutResult::kStored);
  ASSERT_EQ(ttl_->put("k", with_ttl("expiring", clock({{2, 3}}, t), 100)), PutResult::kStored);
  shift_ = 1000;
  // Older than the live version: obsolete, even though an expired sibling
  // would let a retry succeed it.
  EXPECT_EQ(ttl_->put("k", with_ttl("stale", clock({{1, 4}}, t), -1)), PutResult::kObsolete);
  std::vector<Versioned> got = ttl_->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "live");
  // A write after the live one stands; the expired sibling, concurrent
  // with it, stays below until the sweeper removes it alone.
  EXPECT_EQ(ttl_->put("k", with_ttl("next", clock({{1, 6}}, now_ms()), -1)), PutResult::kStored);
  EXPECT_EQ(ttl_->inner().get("k").size(), 2u);
  EXPECT_EQ(ttl_->sweep(), 1u);
  got = ttl_->inner().get("k");
  ASSERT_EQ(got.size(), 1u) << "the sweeper left the expired sibling";
  EXPECT_EQ(ttl_->get("k")[0].value, "next");
}

TEST_F(TtlTest, AClockWithoutATimestampCountsFromTheWrite) {
  // A clock parsed from text carries no timestamp (0): expiry counts from
  // the put, not from 1970.
  ASSERT_EQ(ttl_->put("k", with_ttl("v", clock({{1, 1}}, 0), 60'000)), PutResult::kStored);
  std::vector<Versioned> got = ttl_->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].ttl_ms, 60'000);
  shift_ = 61'000;
  EXPECT_TRUE(ttl_->get("k").empty());
}

TEST_F(TtlTest, TheLongestTtlNeverWrapsIntoThePast) {
  const int64_t forever = std::numeric_limits<int64_t>::max();
  ASSERT_EQ(ttl_->put("k", with_ttl("v", clock({{1, 1}}, now_ms()), forever)), PutResult::kStored);
  shift_ = int64_t{100} * 365 * 86'400'000;  // a century on
  ASSERT_EQ(ttl_->get("k").size(), 1u);
  EXPECT_EQ(ttl_->get("k")[0].ttl_ms, forever);
  // A clock from the far future (skewed, or damaged) does not expire.
  ASSERT_EQ(ttl_->put("f", with_ttl("v", clock({{1, 1}}, forever - 5), 1)), PutResult::kStored);
  EXPECT_EQ(ttl_->get("f").size(), 1u);
}

TEST_F(TtlTest, AValueNoTtlLayerWroteIsCorruptionNamingTheKey) {
  ASSERT_EQ(ttl_->inner().put("raw", Versioned{"plain", clock({{1, 1}}, now_ms())}),
            PutResult::kStored);
  try {
    ttl_->get("raw");
    FAIL() << "read a value without a TTL header";
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("\"raw\""), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace cairn

#include "cairn/stats_store.h"

#include <absl/strings/str_cat.h>
#include <gtest/gtest.h>

#include "cairn/errors.h"
#include "cairn/memory_store.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

class StatsStoreTest : public ::testing::Test {
 protected:
  StatsStore stats_{std::make_unique<MemoryStore>(), "users"};
};

TEST_F(StatsStoreTest, CountsOperationsAndOutcomes) {
  ASSERT_EQ(stats_.put("a", versioned("1", {{1, 2}})), PutResult::kStored);
  ASSERT_EQ(stats_.put("a", versioned("0", {{1, 1}})), PutResult::kObsolete);
  stats_.get("a");
  stats_.get("missing");
  const std::vector<std::string> keys = {"a", "b"};
  stats_.get_all(keys);
  stats_.versions("a");
  EXPECT_TRUE(stats_.remove("a", clock({{1, 2}})));
  EXPECT_FALSE(stats_.remove("a", clock({{1, 2}})));
  stats_.scan();

  const StatsStore::Snapshot s = stats_.snapshot();
  using Op = StatsStore::Op;
  EXPECT_EQ(s[Op::kPut].count, 2u);
  EXPECT_EQ(s[Op::kPut].outcome, 1u) << "one obsolete put";
  EXPECT_EQ(s[Op::kGet].count, 2u);
  EXPECT_EQ(s[Op::kGet].outcome, 1u) << "one key found";
  EXPECT_EQ(s[Op::kGetAll].count, 1u);
  EXPECT_EQ(s[Op::kGetAll].outcome, 1u);
  EXPECT_EQ(s[Op::kVersions].count, 1u);
  EXPECT_EQ(s[Op::kRemove].count, 2u);
  EXPECT_EQ(s[Op::kRemove].outcome, 1u);
  EXPECT_EQ(s[Op::kScan].count, 1u);
  EXPECT_EQ(s[Op::kGet].latency.count, 2u);
  EXPECT_GT(s[Op::kGet].latency.max_ns, 0u);
  EXPECT_LE(s[Op::kGet].latency.p50_ns, s[Op::kGet].latency.max_ns);
}

TEST_F(StatsStoreTest, CountsErrorsAndRethrowsThem) {
  EXPECT_THROW(stats_.put("", versioned("v", {{1, 1}})), InvalidArgument);
  EXPECT_THROW(stats_.get(std::string(1000, 'k')), InvalidArgument);
  const auto s = stats_.snapshot();
  EXPECT_EQ(s[StatsStore::Op::kPut].count, 1u);
  EXPECT_EQ(s[StatsStore::Op::kPut].errors, 1u);
  EXPECT_EQ(s[StatsStore::Op::kGet].errors, 1u);
}

TEST_F(StatsStoreTest, CountsAsyncCallsWhenTheyAnswer) {
  // The memory engine answers inline, so each callback has run when the
  // call returns.
  int answered = 0;
  stats_.async_put("a", versioned("1", {{1, 2}}), [&](PutReply, std::exception_ptr) { ++answered; });
  stats_.async_put("a", versioned("0", {{1, 1}}), [&](PutReply r, std::exception_ptr) {
    EXPECT_EQ(r.result, PutResult::kObsolete);
    ++answered;
  });
  stats_.async_get("a", [&](std::vector<Versioned>, std::exception_ptr) { ++answered; });
  stats_.async_get("", [&](std::vector<Versioned>, std::exception_ptr e) {
    EXPECT_TRUE(e != nullptr);
    ++answered;
  });
  stats_.async_remove("a", clock({{1, 2}}), [&](bool, std::exception_ptr) { ++answered; });
  ASSERT_EQ(answered, 5);
  const auto s = stats_.snapshot();
  using Op = StatsStore::Op;
  EXPECT_EQ(s[Op::kPut].count, 2u);
  EXPECT_EQ(s[Op::kPut].outcome, 1u) << "one obsolete put";
  EXPECT_EQ(s[Op::kGet].count, 2u);
  EXPECT_EQ(s[Op::kGet].errors, 1u);
  EXPECT_EQ(s[Op::kGet].outcome, 1u);
  EXPECT_EQ(s[Op::kRemove].outcome, 1u);
  EXPECT_EQ(s[Op::kGet].latency.count, 2u);
}

TEST_F(StatsStoreTest, ReportHasALinePerOperationThatRan) {
  for (int i = 0; i < 10; ++i) stats_.put(absl::StrCat("k", i), versioned("v", {{1, 1}}));
  stats_.get("k1");
  const std::string report = stats_.report();
  EXPECT_EQ(report.rfind("stats for 'users'\n", 0), 0u) << report;
  EXPECT_NE(report.find("\nop           count   errors  outcome     mean      p50"), std::string::npos)
      << report;
  EXPECT_NE(report.find("\nput             10        0        0"), std::string::npos) << report;
  EXPECT_NE(report.find("\nget              1        0        1"), std::string::npos) << report;
  EXPECT_EQ(report.find("\nremove"), std::string::npos) << "ops that never ran are omitted";
}

TEST_F(StatsStoreTest, DescribeShowsTheWrappedStoreIndented) {
  EXPECT_EQ(stats_.describe(), "stats\n  " + MemoryStore().describe());
}

}  // namespace
}  // namespace cairn::testing

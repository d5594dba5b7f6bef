#include "cairn/logging_store.h"

#include <gtest/gtest.h>

#include <mutex>

#include "cairn/errors.h"
#include "cairn/memory_store.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

// Captures cairn's log for the duration of a test.
class LoggingStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    set_log_level(LogLevel::kDebug);
    set_log_sink([this](LogLevel level, std::string_view line) {
      lines_.push_back(std::string(to_string(level)) + " " + std::string(line));
    });
  }
  void TearDown() override {
    set_log_sink(nullptr);
    set_log_level(LogLevel::kInfo);
  }
  LoggingStore make(LoggingOptions o) { return LoggingStore(std::make_unique<MemoryStore>(), o); }

  std::vector<std::string> lines_;
};

TEST_F(LoggingStoreTest, LogsEveryOperationWithKeyAndOutcome) {
  LoggingStore store = make({"users", LogLevel::kInfo, {}});
  store.put("alice", versioned("v", {{1, 1}}));
  store.put("alice", versioned("v", {{1, 1}}));
  store.get("alice");
  store.get("bob");
  store.remove("alice", clock({{1, 1}}));
  ASSERT_EQ(lines_.size(), 5u);
  EXPECT_EQ(lines_[0].rfind("info store 'users' put \"alice\" -> stored (1 B at {1:1}) in ", 0), 0u)
      << lines_[0];
  EXPECT_NE(lines_[1].find("-> obsolete"), std::string::npos) << lines_[1];
  EXPECT_NE(lines_[2].find("get \"alice\" -> 1 version(s)"), std::string::npos) << lines_[2];
  EXPECT_NE(lines_[3].find("get \"bob\" -> absent"), std::string::npos) << lines_[3];
  EXPECT_NE(lines_[4].find("remove \"alice\" -> removed (at {1:1})"), std::string::npos) << lines_[4];
}

TEST_F(LoggingStoreTest, SlowThresholdSilencesFastOperations) {
  LoggingStore store = make({"users", LogLevel::kInfo, std::chrono::seconds(10)});
  store.put("k", versioned("v", {{1, 1}}));
  store.get("k");
  EXPECT_TRUE(lines_.empty());
}

TEST_F(LoggingStoreTest, FailuresAreLoggedAtWarnAndRethrown) {
  LoggingStore store = make({"users", LogLevel::kDebug, std::chrono::seconds(10)});
  EXPECT_THROW(store.get(""), InvalidArgument);
  ASSERT_EQ(lines_.size(), 1u);
  EXPECT_EQ(lines_[0].rfind("warn store 'users' get failed: InvalidArgument: ", 0), 0u) << lines_[0];
}

TEST_F(LoggingStoreTest, LinesBelowTheThresholdAreDropped) {
  set_log_level(LogLevel::kInfo);
  LoggingStore store = make({"users", LogLevel::kDebug, {}});
  store.get("k");
  EXPECT_TRUE(lines_.empty());
}

}  // namespace
}  // namespace cairn::testing

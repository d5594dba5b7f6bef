#include "cairn/fault_store.h"

#include <gtest/gtest.h>

#include <chrono>

#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/memory_store.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

TEST(FaultStoreTest, FailsOnlyTheNamedOperations) {
  FaultStore store(std::make_unique<MemoryStore>(), FaultStore::kPut | FaultStore::kRemove,
                   std::chrono::milliseconds(0), FaultStore::Failure::kUnavailable);
  EXPECT_THROW(store.put("k", versioned("v", {{1, 1}})), Unavailable);
  EXPECT_THROW(store.remove("k", clock({{1, 1}})), Unavailable);
  EXPECT_TRUE(store.get("k").empty()) << "reads pass, and the failed put stored nothing";
  store.set_failure(FaultStore::Failure::kIoError);
  EXPECT_THROW(store.put("k", versioned("v", {{1, 1}})), IoError);
  store.set_failure(FaultStore::Failure::kNone);
  EXPECT_EQ(store.put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(store.get("k").at(0).value, "v");
}

TEST(FaultStoreTest, DelaysAndSaysItsWritesMayBlock) {
  FaultStore store(std::make_unique<MemoryStore>(), FaultStore::kGet, std::chrono::milliseconds(0),
                   FaultStore::Failure::kNone);
  EXPECT_FALSE(store.writes_may_block()) << "memory, and only reads affected";
  EXPECT_TRUE(FaultStore(std::make_unique<MemoryStore>(), FaultStore::kPut,
                         std::chrono::milliseconds(0), FaultStore::Failure::kNone)
                  .writes_may_block())
      << "a put's delay may be raised later";
  store.set_delay(std::chrono::milliseconds(30));
  const auto start = std::chrono::steady_clock::now();
  store.get("k");
  EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(30));
}

TEST(FaultStoreTest, FromAConfig) {
  const Config c = Config::parse(
      "stores:\n  s:\n    stack:\n"
      "      - faults: {delay_ms: 5, ops: \"put,scan\", fail: timeout}\n"
      "      - engine: memory\n");
  auto store = c.open("s");
  EXPECT_THROW(store->put("k", versioned("v", {{1, 1}})), Timeout);
  EXPECT_THROW(store->scan(), Timeout);
  EXPECT_TRUE(store->get("k").empty());
  EXPECT_EQ(store->describe().rfind("faults (delay 5 ms, fail timeout, on put,scan)\n  memory", 0),
            0u)
      << store->describe();
  EXPECT_THROW(Config::parse("stores:\n  s:\n    stack:\n"
                             "      - faults: {ops: \"put,poke\"}\n"
                             "      - engine: memory\n")
                   .open("s"),
               ConfigError);
}

}  // namespace
}  // namespace cairn::testing

#include "cairn/fault_store.h"

#include <absl/strings/str_cat.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <string>
#include <vector>

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

// `after`: the call is carried out, then its answer is lost: a write that
// landed and was never acknowledged, blocking or not.
TEST(FaultStoreTest, AFailureAfterTheCallLosesOnlyTheAnswer) {
  auto inner = std::make_unique<MemoryStore>();
  MemoryStore* memory = inner.get();
  FaultStore store(std::move(inner), FaultStore::kPut, std::chrono::milliseconds(0),
                   FaultStore::Failure::kUnavailable);
  store.set_fail_after(true);
  EXPECT_THROW(store.put("k", versioned("v", {{1, 1}})), Unavailable);
  ASSERT_EQ(memory->get("k").size(), 1u) << "the put landed below, though it failed";
  std::promise<std::exception_ptr> answer;
  store.async_put("a", versioned("w", {{1, 1}}),
                  [&](PutReply, std::exception_ptr e) { answer.set_value(e); });
  std::exception_ptr e = answer.get_future().get();
  ASSERT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(e), Unavailable);
  EXPECT_EQ(memory->get("a").at(0).value, "w");
  EXPECT_NE(store.describe().find("after the call"), std::string::npos) << store.describe();
  // From a config; `after` without a failure is refused.
  auto from_yaml = Config::parse(
      "stores:\n  s:\n    stack: [{faults: {ops: put, fail: timeout, after: true}}, {engine: memory}]\n",
      "after.yaml").open("s");
  EXPECT_THROW(from_yaml->put("k", versioned("v", {{1, 1}})), Timeout);
  EXPECT_EQ(from_yaml->get("k").size(), 1u);
  try {
    Config::parse("stores:\n  s:\n    stack: [{faults: {after: true}}, {engine: memory}]\n",
                  "bad.yaml")
        .open("s");
    ADD_FAILURE() << "after without fail was accepted";
  } catch (const InvalidArgument& err) {
    EXPECT_NE(std::string(err.what()).find("needs a `fail`"), std::string::npos) << err.what();
  }
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

TEST(FaultStoreTest, AnAsyncCallWaitsOutItsDelayOffTheCallersThread) {
  FaultStore store(std::make_unique<MemoryStore>(), FaultStore::kAll, std::chrono::milliseconds(1000),
                   FaultStore::Failure::kNone);
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> answered;  // in the order the callbacks ran
  auto note = [&](std::string what) {
    std::lock_guard lock(mu);
    answered.push_back(std::move(what));
    cv.notify_all();
  };
  store.async_put("k", versioned("v", {{1, 1}}),
                  [&](PutReply r, std::exception_ptr e) { note(e ? "error" : to_string(r.result)); });
  // The call returned long before its delay is over: nothing answered yet.
  {
    std::lock_guard lock(mu);
    EXPECT_TRUE(answered.empty());
  }
  store.set_delay(std::chrono::milliseconds(0));
  store.set_failure(FaultStore::Failure::kUnavailable);
  // Undelayed now, and failing: it answers at once, before the first one.
  store.async_get("k", [&](std::vector<Versioned>, std::exception_ptr e) {
    try {
      std::rethrow_exception(e);
    } catch (const Unavailable&) {
      note("unavailable");
    } catch (...) {
      note("something else");
    }
  });
  std::unique_lock lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return answered.size() == 2; }));
  // The failure is sampled when the delay ends: the put failed too.
  EXPECT_EQ(answered, (std::vector<std::string>{"unavailable", "error"}));
  lock.unlock();
  store.close();
}

TEST(FaultStoreTest, CloseWaitsForTheAsyncCallsStillDelayed) {
  auto store = std::make_unique<FaultStore>(std::make_unique<MemoryStore>(), FaultStore::kPut,
                                            std::chrono::milliseconds(300),
                                            FaultStore::Failure::kNone);
  std::atomic<int> answered{0};
  for (int i = 0; i < 5; ++i) {
    store->async_put(absl::StrCat("k", i), versioned("v", {{1, 1}}),
                     [&](PutReply, std::exception_ptr) { ++answered; });
  }
  store->close();
  EXPECT_EQ(answered.load(), 5) << "close() returned before every callback ran";
}

TEST(FaultStoreTest, NodesNeedsTheLayerBelowAClientsRoute) {
  EXPECT_THROW(Config::parse("stores:\n  s:\n    stack:\n"
                             "      - faults: {delay_ms: 5, nodes: [1]}\n"
                             "      - engine: memory\n")
                   .open("s"),
               ConfigError);
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

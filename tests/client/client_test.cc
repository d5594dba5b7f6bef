#include "cairn/client.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include "cairn/fault_store.h"
#include "cairn/forwarding_store.h"
#include "cairn/json.h"
#include "cairn/json_serializer.h"
#include "cairn/memory_store.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

Config users_config(const std::string& engine) {
  return Config::parse(R"(
stores:
  users:
    key: string
    value:
      type: json
      schema: {name: string, id: int32, emails: [string]}
    stack:
      - compress: {codec: zstd, min_size: 0}
      - engine: )" + engine + R"(
  counters:
    key: string
    value: int64
    stack: [{engine: )" + engine + R"(}]
  plain:
    stack: [{engine: memory}]
)",
                       "client.yaml");
}

class ClientTest : public ::testing::Test {
 protected:
  Config config_ = users_config("memory");
};

TEST_F(ClientTest, PutGetRemoveThroughTheStoresSerializers) {
  auto users = open_client<std::string, Json>(config_, "users");
  EXPECT_EQ(users.get("alice"), std::nullopt);
  const Json alice = Json::parse(R"({"name": "Alice", "id": 7, "emails": ["a@x.org"]})");
  const VectorClock c1 = users.put("alice", alice);
  EXPECT_EQ(users.get("alice"), alice);
  const VectorClock c2 = users.put("alice", Json::parse(R"({"name": "Alice", "id": 8, "emails": []})"));
  EXPECT_EQ(compare(c1, c2), Occurred::kBefore) << "put writes a successor";
  ASSERT_EQ(users.get_versions("alice").size(), 1u);
  EXPECT_EQ(users.get("alice")->find("id")->as_int(), 8);
  EXPECT_TRUE(users.remove("alice"));
  EXPECT_FALSE(users.remove("alice"));
  EXPECT_EQ(users.get("alice"), std::nullopt);
}

TEST_F(ClientTest, ValuesThatBreakTheSchemaAreRefusedAndNothingIsWritten) {
  auto users = open_client<std::string, Json>(config_, "users");
  try {
    users.put("bob", Json::parse(R"({"name": "Bob", "id": "seven", "emails": []})"));
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("field id: expected int32, found string"),
              std::string::npos);
  }
  EXPECT_EQ(users.get("bob"), std::nullopt);
  EXPECT_THROW(users.put("bad key \xff", Json()), InvalidArgument) << "keys are UTF-8 strings";
}

TEST_F(ClientTest, OpeningWithTheWrongTypesSaysWhich) {
  try {
    open_client<std::string, std::string>(config_, "users");
    FAIL();
  } catch (const InvalidArgument& e) {
    EXPECT_NE(std::string(e.what()).find("its value serializer is json"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW((open_client<int64_t, Json>(config_, "users")), InvalidArgument);
  EXPECT_NO_THROW((open_client<std::string, std::string>(config_, "plain")))
      << "identity by default";
}

TEST_F(ClientTest, PutIfRefusesAStaleVersion) {
  auto counters = open_client<std::string, int64_t>(config_, "counters");
  counters.put("c", 1);
  const VectorClock read = counters.get_versions("c").at(0).clock;
  EXPECT_TRUE(counters.put_if("c", 2, read));
  EXPECT_FALSE(counters.put_if("c", 3, read)) << "someone (we) wrote after `read`";
  EXPECT_EQ(counters.get("c"), 2);
  const VectorClock latest = counters.get_versions("c").at(0).clock;
  EXPECT_TRUE(counters.put_if("c", 4, latest));
  EXPECT_EQ(counters.get("c"), 4);
  EXPECT_TRUE(counters.put_if("new", 1, VectorClock())) << "an absent key: nothing is newer";
}

TEST_F(ClientTest, SiblingsNeedAResolverOrGetVersions) {
  auto counters = open_client<std::string, int64_t>(config_, "counters");
  auto& store = counters.store();
  const auto& ints = counters.value_serializer();
  // Two writers with different node ids, neither having seen the other.
  store.put("k", Versioned{ints.to_bytes(1), clock({{1, 1}})});
  store.put("k", Versioned{ints.to_bytes(2), clock({{2, 1}})});
  EXPECT_THROW(counters.get("k"), FailedPrecondition);
  EXPECT_THROW(counters.update("k", [](std::optional<int64_t> v) { return *v + 1; }),
               FailedPrecondition);
  const auto versions = counters.get_versions("k");
  ASSERT_EQ(versions.size(), 2u);
  // Merge by hand, write back as the successor of both.
  VectorClock both = versions[0].clock.merged(versions[1].clock);
  EXPECT_TRUE(counters.put_if("k", versions[0].value + versions[1].value, both));
  EXPECT_EQ(counters.get("k"), 3);
}

void race_counter(Client<std::string, int64_t> counter, int threads, int increments) {
  std::vector<std::thread> pool;
  std::atomic<int> calls{0};
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&] {
      for (int i = 0; i < increments; ++i) {
        counter.update("n", [&](const std::optional<int64_t>& v) {
          ++calls;
          return v.value_or(0) + 1;
        });
      }
    });
  }
  for (auto& t : pool) t.join();
  EXPECT_EQ(counter.get("n"), int64_t{threads} * increments) << "no lost update";
  EXPECT_EQ(counter.get_versions("n").size(), 1u) << "no siblings: racers conflicted";
  // How many writes lost a race and were retried: how hard the test pushed.
  ::testing::Test::RecordProperty("retried_updates", calls.load() - threads * increments);
}

TEST_F(ClientTest, EightThreadsIncrementingOneCounterFindTheExactTotal) {
  ClientOptions o;
  o.max_tries = 1000;  // 8 threads on 2 cores: a write can lose many races
  race_counter(open_client<std::string, int64_t>(config_, "counters", o), 8, 500);
}

TEST_F(ClientTest, EightThreadsOnLmdbToo) {
  TempDir dir;
  ClientOptions o;
  o.max_tries = 1000;
  const Config lmdb = users_config("{lmdb: {path: \"" + dir.path() +
                                   "/{store}\", durability: nosync}}");
  race_counter(open_client<std::string, int64_t>(lmdb, "counters", o), 8, 100);
}

// Makes every put obsolete, as a writer that always loses a race would see.
class AlwaysObsolete final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  PutResult put_stamped(std::string_view, const Versioned&, PutReply*) override {
    ++puts;
    return PutResult::kObsolete;
  }
  int puts = 0;
};

TEST_F(ClientTest, UpdateGivesUpAfterMaxTries) {
  auto store = std::make_shared<AlwaysObsolete>(std::make_unique<MemoryStore>());
  ClientOptions o;
  o.max_tries = 5;
  Client<std::string, std::string> c(store, string_serializer(), string_serializer(), o);
  EXPECT_THROW(c.update("k", [](auto) { return std::string("v"); }), ObsoleteVersion);
  EXPECT_EQ(store->puts, 5);
  EXPECT_THROW(c.put("k", "v"), ObsoleteVersion);
  EXPECT_EQ(store->puts, 10);
}

// ---- named updates (cairn/update.h) ------------------------------------------

TEST_F(ClientTest, NamedUpdatesOnAnEmbeddedStoreRunInTheClientsLoop) {
  auto counters = open_client<std::string, int64_t>(config_, "counters");
  EXPECT_EQ(counters.increment("hits"), 1);  // absent counts as 0
  EXPECT_EQ(counters.increment("hits", 41), 42);
  EXPECT_EQ(counters.increment("hits", -2), 40);
  EXPECT_EQ(counters.get("hits"), 40);
  EXPECT_TRUE(counters.compare_and_set("hits", 40, 7));
  EXPECT_FALSE(counters.compare_and_set("hits", 40, 9));
  EXPECT_EQ(counters.get("hits"), 7);
  EXPECT_TRUE(counters.compare_and_set("new", std::nullopt, 1));
  EXPECT_FALSE(counters.compare_and_set("new", std::nullopt, 2));
  EXPECT_TRUE(counters.set_if_absent("once", 5));
  EXPECT_FALSE(counters.set_if_absent("once", 6));
  EXPECT_EQ(counters.get("once"), 5);
  // A result says what the key holds when nothing was written.
  const UpdateResult<int64_t> r = counters.update("once", Update{"set_if_absent", "x"});
  EXPECT_FALSE(r.applied);
  EXPECT_EQ(r.value, 5);

  auto plain = open_client<std::string, std::string>(config_, "plain");
  plain.update("log", Update::append("a"));
  plain.update("log", Update::append("bc"));
  EXPECT_EQ(plain.get("log"), "abc");
  // The same function on a string store reads its text as the integer.
  plain.put("n", "41");
  EXPECT_EQ(plain.increment("n"), "42");
  EXPECT_THROW(plain.increment("log"), InvalidArgument);
  EXPECT_EQ(plain.get("log"), "abc");  // nothing written
  EXPECT_THROW(plain.update("log", Update{"no-such-function", ""}), NotFound);
  // Through a compress layer (the users store): the client's loop too.
  auto users = open_client<std::string, Json>(config_, "users");
  EXPECT_TRUE(users.set_if_absent("ada", Json::parse(R"({"name": "Ada", "id": 1, "emails": []})")));
  EXPECT_FALSE(users.set_if_absent("ada", Json::parse(R"({"name": "Eve", "id": 2, "emails": []})")));
}

TEST_F(ClientTest, NamedIncrementsFromEightThreadsReachTheExactTotal) {
  ClientOptions o;
  o.max_tries = 1000;
  auto counters = open_client<std::string, int64_t>(config_, "counters", o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 200; ++i) counters.increment("c");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(counters.get("c"), 1600);
}

TEST(UpdateRegistryTest, OwnFunctionsRegisterOnceByName) {
  register_update("test-max", [](const UpdateInput& in) {
    const std::string cur(in.current.value_or(""));
    return UpdateOutput{in.argument > cur, std::string(in.argument)};
  });
  EXPECT_THROW(register_update("test-max", [](const UpdateInput&) { return UpdateOutput{}; }),
               InvalidArgument);
  EXPECT_THROW(register_update("increment", [](const UpdateInput&) { return UpdateOutput{}; }),
               InvalidArgument);
  EXPECT_NE(find_update("test-max"), nullptr);
  EXPECT_EQ(find_update("nope"), nullptr);
  auto store = std::make_shared<MemoryStore>();
  Client<std::string, std::string> c(store, string_serializer(), string_serializer());
  EXPECT_TRUE(c.update("k", Update{"test-max", "m"}).applied);
  EXPECT_FALSE(c.update("k", Update{"test-max", "a"}).applied);
  EXPECT_TRUE(c.update("k", Update{"test-max", "z"}).applied);
  EXPECT_EQ(c.get("k"), "z");
  // An engine runs none itself: Unsupported, which the client catches.
  EXPECT_THROW(store->atomic("k", "test-max", "zz"), Unsupported);
}

TEST_F(ClientTest, UpdateSeesNulloptForAnAbsentKey) {
  auto counters = open_client<std::string, int64_t>(config_, "counters");
  bool saw_absent = false;
  counters.update("fresh", [&](const std::optional<int64_t>& v) {
    saw_absent = !v.has_value();
    return int64_t{41};
  });
  EXPECT_TRUE(saw_absent);
  EXPECT_EQ(counters.update("fresh", [](const std::optional<int64_t>& v) { return *v + 1; }), 42);
}


// Counts the puts in flight, per key and in all, through the non-blocking
// path; below it a FaultStore makes each put and version read wait on a
// timer, as a network would.
class InFlight final : public ForwardingStore {
 public:
  explicit InFlight(std::chrono::milliseconds delay)
      : ForwardingStore(std::make_unique<FaultStore>(std::make_unique<MemoryStore>(),
                                                     FaultStore::kPut | FaultStore::kVersions,
                                                     delay, FaultStore::Failure::kNone)) {}
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override {
    {
      std::lock_guard lock(mu_);
      max_key_ = std::max(max_key_, ++by_key_[std::string(key)]);
      max_all_ = std::max(max_all_, ++all_);
    }
    inner().async_put(key, value, [this, k = std::string(key), done = std::move(done)](
                                      PutReply r, std::exception_ptr e) {
      {
        std::lock_guard lock(mu_);
        --by_key_[k];
        --all_;
      }
      done(std::move(r), e);
    });
  }
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override {
    inner().async_versions(key, std::move(done));
  }
  bool async_calls_block() const override { return false; }
  FaultStore& faults() { return static_cast<FaultStore&>(inner()); }
  int max_per_key() {
    std::lock_guard lock(mu_);
    return max_key_;
  }
  int max_in_flight() {
    std::lock_guard lock(mu_);
    return max_all_;
  }

 private:
  std::mutex mu_;
  std::map<std::string, int> by_key_;
  int all_ = 0;
  int max_key_ = 0;
  int max_all_ = 0;
};

TEST(PutAsyncTest, OneKeysWritesApplyInOrderWhileOtherKeysOverlap) {
  auto store = std::make_shared<InFlight>(std::chrono::milliseconds(2));
  Client<std::string, std::string> c(store, string_serializer(), string_serializer());
  std::vector<std::future<VectorClock>> hot;
  for (int i = 0; i < 50; ++i) {
    hot.push_back(c.put_async("hot", std::to_string(i)));
    c.put_async("k" + std::to_string(i), "v");
  }
  EXPECT_TRUE(c.flush().empty());
  EXPECT_EQ(c.get("hot"), "49") << "the last write made is the one that stands";
  EXPECT_EQ(c.get_versions("hot").size(), 1u);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(c.get("k" + std::to_string(i)), "v");
  EXPECT_EQ(store->max_per_key(), 1) << "one write of a key in flight at a time";
  EXPECT_GT(store->max_in_flight(), 10) << "writes of different keys overlapped";
  // Each future holds the clock its write was stored under: they count up.
  EXPECT_EQ(hot.front().get().to_string().substr(0, 4), "{0:1");
  EXPECT_EQ(hot.back().get().to_string().substr(0, 5), "{0:50");
}

TEST(PutAsyncTest, FlushReportsEachFailureAndTheFuturesThrowIt) {
  auto store = std::make_shared<InFlight>(std::chrono::milliseconds(1));
  Client<std::string, std::string> c(store, string_serializer(), string_serializer());
  store->faults().set_failure(FaultStore::Failure::kUnavailable);
  auto a = c.put_async("a", "1");
  auto b = c.put_async("b", "1");
  auto a2 = c.put_async("a", "2");
  std::vector<Client<std::string, std::string>::PutFailure> failed = c.flush();
  ASSERT_EQ(failed.size(), 3u);
  std::vector<std::string> keys;
  for (const auto& f : failed) {
    keys.push_back(f.key);
    EXPECT_THROW(std::rethrow_exception(f.error), Unavailable);
  }
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(keys, (std::vector<std::string>{"a", "a", "b"}));
  EXPECT_THROW(a.get(), Unavailable);
  EXPECT_THROW(a2.get(), Unavailable);
  EXPECT_TRUE(c.flush().empty()) << "reported once";
  store->faults().set_failure(FaultStore::Failure::kNone);
  c.put_async("a", "3");
  EXPECT_TRUE(c.flush().empty());
  EXPECT_EQ(c.get("a"), "3");
}

TEST(PutAsyncTest, WritersSharingAnIdRetryInsteadOfLosing) {
  // Two clients with one node id write one key at once: each write that
  // loses a race is read and written again, and no sibling is left.
  auto store = std::make_shared<InFlight>(std::chrono::milliseconds(1));
  ClientOptions o;
  o.max_tries = 1000;
  Client<std::string, std::string> a(store, string_serializer(), string_serializer(), o);
  Client<std::string, std::string> b(store, string_serializer(), string_serializer(), o);
  std::thread t([&] {
    for (int i = 0; i < 30; ++i) b.put_async("k", "b" + std::to_string(i));
  });
  for (int i = 0; i < 30; ++i) a.put_async("k", "a" + std::to_string(i));
  t.join();
  EXPECT_TRUE(a.flush().empty());
  EXPECT_TRUE(b.flush().empty());
  EXPECT_EQ(a.get_versions("k").size(), 1u);
}

TEST(PutAsyncTest, OverAStoreThatAnswersAtOnceTheWriteIsDoneOnReturn) {
  auto c = open_client<std::string, std::string>(
      Config::parse("stores:\n  plain:\n    stack: [{engine: memory}]\n", "t.yaml"), "plain");
  auto stored = c.put_async("k", "v");
  EXPECT_EQ(stored.wait_for(std::chrono::seconds(0)), std::future_status::ready);
  EXPECT_EQ(c.get("k"), "v");
  // A long line of one key's writes answered at once does not recurse.
  for (int i = 0; i < 100000; ++i) c.put_async("k", std::to_string(i));
  EXPECT_TRUE(c.flush().empty());
  EXPECT_EQ(c.get("k"), "99999");
}

}  // namespace
}  // namespace cairn::testing

#include "cairn/client.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

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

}  // namespace
}  // namespace cairn::testing

#include "cairn/resolving_store.h"

#include <gtest/gtest.h>

#include <set>

#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/json.h"
#include "cairn/memory_store.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

// A store that returns exactly the versions it is given, dominated ones
// included, as replicas read through a router can.
class Canned final : public Store {
 public:
  explicit Canned(std::vector<Versioned> v) : v_(std::move(v)) {}
  void get_into(std::string_view, std::vector<Versioned>* out) override { *out = v_; }
  PutResult put_stamped(std::string_view, const Versioned&, PutReply*) override {
    return PutResult::kStored;
  }
  bool remove(std::string_view, const VectorClock&) override { return false; }
  std::unique_ptr<StoreIterator> scan() override { throw Unsupported("canned"); }
  void close() override {}
  std::string describe() const override { return "canned"; }

 private:
  std::vector<Versioned> v_;
};

std::vector<Versioned> resolve(ResolvingStore::Strategy s, std::vector<Versioned> versions,
                               std::string merge_name = "", MergeFunction merge = nullptr) {
  ResolvingStore store(std::make_unique<Canned>(std::move(versions)), s, std::move(merge_name),
                       std::move(merge));
  return store.get("k");
}

TEST(ResolvingStoreTest, VectorClockDropsDominatedAndKeepsConcurrent) {
  const auto got = resolve(ResolvingStore::Strategy::kVectorClock,
                           {versioned("old", {{1, 1}}), versioned("a", {{1, 2}}),
                            versioned("b", {{2, 1}}), versioned("a-again", {{1, 2}})});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].value, "a");
  EXPECT_EQ(got[1].value, "b");
}

TEST(ResolvingStoreTest, TimestampPicksTheLatestWriteAndMergesClocks) {
  const auto got = resolve(ResolvingStore::Strategy::kTimestamp,
                           {Versioned{"early", clock({{1, 1}}, 100)},
                            Versioned{"late", clock({{2, 1}}, 200)},
                            Versioned{"middle", clock({{3, 1}}, 150)}});
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "late");
  EXPECT_EQ(got[0].clock, clock({{1, 1}, {2, 1}, {3, 1}}));
  EXPECT_EQ(got[0].clock.timestamp_ms(), 200);
}

TEST(ResolvingStoreTest, TimestampTiesBreakTheSameWayEverywhere) {
  const Versioned a{"a", clock({{1, 1}}, 100)}, b{"b", clock({{2, 1}}, 100)};
  const auto ab = resolve(ResolvingStore::Strategy::kTimestamp, {a, b});
  const auto ba = resolve(ResolvingStore::Strategy::kTimestamp, {b, a});
  ASSERT_EQ(ab.size(), 1u);
  EXPECT_EQ(ab[0].value, ba[0].value) << "order of arrival does not matter";
  EXPECT_EQ(ab[0].value, "b") << "larger clock bytes win a tie";
}

TEST(ResolvingStoreTest, CustomMergeSeesOnlyConcurrentSiblings) {
  std::vector<std::string> seen;
  const auto got = resolve(
      ResolvingStore::Strategy::kCustom,
      {versioned("x", {{1, 1}}), versioned("y", {{1, 1}, {2, 1}}), versioned("z", {{3, 1}})},
      "collect", [&](std::span<const Versioned> siblings) {
        std::string all;
        for (const Versioned& v : siblings) {
          seen.push_back(v.value);
          all += v.value;
        }
        return all;
      });
  EXPECT_EQ(seen, (std::vector<std::string>{"y", "z"})) << "x is dominated by y";
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "yz");
  EXPECT_EQ(got[0].clock, clock({{1, 1}, {2, 1}, {3, 1}}));
}

TEST(ResolvingStoreTest, SetUnionMergeFromConfig) {
  // The example merge: values are JSON arrays of strings; their union.
  register_merge("test-set-union", [](std::span<const Versioned> siblings) {
    std::set<std::string> all;
    for (const Versioned& v : siblings) {
      const Json items = Json::parse(v.value);
      for (const Json& item : items.as_array()) all.insert(item.as_string());
    }
    Json::Array out(all.begin(), all.end());
    return Json(out).dump();
  });
  auto store = Config::parse(
                   "stores:\n  carts:\n    stack: [{resolve: {custom: test-set-union}}, "
                   "{engine: memory}]\n")
                   .open("carts");
  store->put("cart", versioned(R"(["book","pen"])", {{1, 1}}));
  store->put("cart", versioned(R"(["book","lamp"])", {{2, 1}}));
  const auto got = store->get("cart");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, R"(["book","lamp","pen"])");
  EXPECT_EQ(store->versions("cart").size(), 2u) << "versions() is not resolved";
  // Writing the merge back with the merged clock settles the key.
  ASSERT_EQ(store->put("cart", Versioned{got[0].value, got[0].clock.incremented(1, 2)}),
            PutResult::kStored);
  EXPECT_EQ(store->versions("cart").size(), 1u);
}

TEST(ResolvingStoreTest, AFailingMergeIsCorruptionNamingKeyAndMerge) {
  try {
    resolve(ResolvingStore::Strategy::kCustom, {versioned("x", {{1, 1}}), versioned("y", {{2, 1}})},
            "strict", [](std::span<const Versioned>) -> std::string {
              throw InvalidArgument("not JSON");
            });
    FAIL();
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("merge 'strict' failed on the siblings of key \"k\": not JSON"),
              std::string::npos)
        << e.what();
  }
}

TEST(ResolvingStoreTest, ConfigErrors) {
  try {
    Config::parse("stores:\n  s:\n    stack: [resolve, {engine: memory}]\n", "r.yaml").open("s");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("resolve needs a strategy"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Config::parse("stores:\n  s:\n    stack: [{resolve: newest}, {engine: memory}]\n")
                   .open("s"),
               ConfigError);
  try {
    Config::parse("stores:\n  s:\n    stack: [{resolve: {custom: nope}}, {engine: memory}]\n",
                  "r.yaml")
        .open("s");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("no merge function registered as 'nope'"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace cairn::testing

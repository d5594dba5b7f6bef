// The cases of the conformance suite. Which stores run them is decided by the
// INSTANTIATE_TEST_SUITE_P lines of the binaries that link this file.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <future>
#include <iterator>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <stdexcept>
#include <thread>

#include <absl/strings/str_cat.h>

#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "cairn/ttl_store.h"
#include "tests/conformance/conformance.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {

void Conformance::SetUp() { store_ = GetParam().open(dir_.path()); }

void Conformance::TearDown() {
  if (store_) store_->close();
}

void Conformance::reopen() {
  store_->close();
  store_.reset();
  store_ = GetParam().open(dir_.path());
}

std::vector<std::string> Conformance::values(std::string_view key) {
  std::vector<std::string> out;
  for (const Versioned& v : store_->get(key)) out.push_back(v.value);
  std::sort(out.begin(), out.end());
  return out;
}

std::map<std::string, std::vector<std::string>> Conformance::scan_all() {
  std::map<std::string, std::vector<std::string>> out;
  auto it = store_->scan();
  while (it->next()) {
    auto [pos, fresh] = out.try_emplace(std::string(it->key()));
    EXPECT_TRUE(fresh) << "scan returned key " << printable_key(it->key()) << " twice";
    for (const Versioned& v : it->versions()) pos->second.push_back(v.value);
    std::sort(pos->second.begin(), pos->second.end());
  }
  return out;
}

void Conformance::expect_siblings(std::string_view key, const std::vector<std::string>& expected) {
  if (!GetParam().resolves) {
    EXPECT_EQ(values(key), expected) << "key " << printable_key(key);
    return;
  }
  const std::vector<Versioned> got = store_->get(key);
  ASSERT_EQ(got.size(), expected.empty() ? 0u : 1u) << "key " << printable_key(key);
  if (expected.empty()) return;
  EXPECT_NE(std::find(expected.begin(), expected.end(), got[0].value), expected.end())
      << "resolved to '" << got[0].value << "', not one of the siblings";
  VectorClock all;
  for (const VectorClock& c : store_->versions(key)) all = all.merged(c);
  EXPECT_EQ(got[0].clock, all) << "the resolved version carries every sibling's clock";
  EXPECT_EQ(store_->versions(key).size(), expected.size()) << "versions() is not resolved";
}

void Conformance::expect_scan(const std::map<std::string, std::vector<std::string>>& expected) {
  const auto got = scan_all();
  if (!GetParam().resolves) {
    EXPECT_TRUE(got == expected) << "scan saw " << got.size() << " keys, expected " << expected.size();
    return;
  }
  ASSERT_EQ(got.size(), expected.size());
  for (const auto& [key, values] : expected) {
    auto it = got.find(key);
    ASSERT_NE(it, got.end()) << "scan missed " << printable_key(key);
    ASSERT_EQ(it->second.size(), 1u);
    EXPECT_NE(std::find(values.begin(), values.end(), it->second[0]), values.end());
  }
}

using Values = std::vector<std::string>;

// What an async call answered, and how many times its callback ran.
template <typename T>
struct Answer {
  T result{};
  std::exception_ptr error;
};

// Starts an async call with `start(callback)` and waits (up to 30 s) for
// its answer. The callback's state outlives this frame, so a second call
// of it (a bug) is counted, not a crash; `calls` says how many ran so far.
template <typename T, typename Start>
Answer<T> await_call(Start&& start, std::shared_ptr<std::atomic<int>> calls = nullptr) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    std::optional<Answer<T>> answer;
  };
  auto state = std::make_shared<State>();
  if (calls == nullptr) calls = std::make_shared<std::atomic<int>>(0);
  start(Callback<T>([state, calls](T result, std::exception_ptr error) {
    ++*calls;
    std::lock_guard lock(state->mu);
    if (!state->answer) state->answer = Answer<T>{std::move(result), std::move(error)};
    state->cv.notify_all();
  }));
  std::unique_lock lock(state->mu);
  if (!state->cv.wait_for(lock, std::chrono::seconds(30), [&] { return state->answer.has_value(); })) {
    throw std::runtime_error("an async call never answered");
  }
  return *state->answer;
}

std::string error_kind(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return to_string(err.code());
  } catch (const std::exception& err) {
    return err.what();
  }
}

TEST_P(Conformance, AbsentKeyIsEmptyNotAnError) {
  EXPECT_TRUE(store_->get("nope").empty());
  EXPECT_TRUE(store_->versions("nope").empty());
  EXPECT_FALSE(store_->remove("nope", clock({{1, 1}})));
  const std::vector<std::string> keys = {"nope", "nada"};
  EXPECT_TRUE(store_->get_all(keys).empty());
}

// Stores keep a version under the clock put() reports: the one it was
// given, or for a routed store that one with the key's home node's entry
// stamped on it. The cases below compare with the reported clock.
TEST_P(Conformance, PutThenGetReturnsValueAndTheClockStored) {
  const Versioned v = versioned("hello", {{1, 1}});
  VectorClock stored;
  ASSERT_EQ(store_->put("k", v, &stored), PutResult::kStored);
  EXPECT_NE(compare(v.clock, stored), Occurred::kAfter) << "the stored clock includes the given one";
  EXPECT_NE(compare(v.clock, stored), Occurred::kConcurrent);
  if (!GetParam().stamps) {
    EXPECT_EQ(stored, v.clock);
  }
  const auto got = store_->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "hello");
  EXPECT_EQ(got[0].clock, stored);
  EXPECT_EQ(store_->versions("k"), std::vector<VectorClock>{stored});
}

TEST_P(Conformance, KeepsTheClockTimestamp) {
  Versioned v{"t", clock({{1, 1}}, 1700000000123)};
  VectorClock stored;
  ASSERT_EQ(store_->put("k", v, &stored), PutResult::kStored);
  if (!GetParam().stamps) {
    EXPECT_EQ(stored.timestamp_ms(), 1700000000123);
  }
  EXPECT_EQ(store_->get("k").at(0).clock.timestamp_ms(), stored.timestamp_ms());
}

TEST_P(Conformance, NewerClockReplacesOlder) {
  ASSERT_EQ(store_->put("k", versioned("v1", {{1, 1}})), PutResult::kStored);
  ASSERT_EQ(store_->put("k", versioned("v2", {{1, 2}})), PutResult::kStored);
  VectorClock stored;
  ASSERT_EQ(store_->put("k", versioned("v3", {{1, 2}, {2, 1}}), &stored), PutResult::kStored);
  const auto got = store_->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "v3");
  EXPECT_EQ(got[0].clock, stored);
}

TEST_P(Conformance, OlderClockIsObsoleteAndChangesNothing) {
  ASSERT_EQ(store_->put("k", versioned("new", {{1, 3}})), PutResult::kStored);
  EXPECT_EQ(store_->put("k", versioned("old", {{1, 2}})), PutResult::kObsolete);
  EXPECT_EQ(store_->put("k", versioned("empty-clock", {})), PutResult::kObsolete);
  EXPECT_EQ(values("k"), Values{"new"});
}

TEST_P(Conformance, IdenticalClockIsObsolete) {
  ASSERT_EQ(store_->put("k", versioned("first", {{1, 1}, {2, 4}})), PutResult::kStored);
  EXPECT_EQ(store_->put("k", versioned("second", {{2, 4}, {1, 1}})), PutResult::kObsolete);
  EXPECT_EQ(values("k"), Values{"first"});
}

TEST_P(Conformance, ConcurrentPutsAreKeptAsSiblingsThenSuperseded) {
  ASSERT_EQ(store_->put("k", versioned("a", {{1, 1}})), PutResult::kStored);
  ASSERT_EQ(store_->put("k", versioned("b", {{2, 1}})), PutResult::kStored);
  expect_siblings("k", {"a", "b"});
  EXPECT_EQ(store_->versions("k").size(), 2u);
  // Equal to one sibling: obsolete, both stay.
  EXPECT_EQ(store_->put("k", versioned("c", {{2, 1}})), PutResult::kObsolete);
  // After one sibling, concurrent with the other: replaces only the first.
  ASSERT_EQ(store_->put("k", versioned("a2", {{1, 2}})), PutResult::kStored);
  expect_siblings("k", {"a2", "b"});
  // A successor of both replaces both.
  ASSERT_EQ(store_->put("k", versioned("merged", {{1, 2}, {2, 1}, {3, 1}})), PutResult::kStored);
  const auto got = store_->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "merged");
}

// A stamp (what a cluster's home applies): the clock is checked as given,
// then the entry gets one more. A racer with the same clock is obsolete;
// a retry of the same write (its write id) is stored once. A routed store
// stamps with its key's home whatever the put asks; the rest holds alike.
TEST_P(Conformance, AStampIsGivenAfterTheClockIsChecked) {
  constexpr NodeId kStamp = kStampBase + 9;
  Versioned v = versioned("x", {{1, 1}});
  v.stamp = kStamp;
  v.write_id = 0x1234567890abcdefULL;
  VectorClock stored;
  ASSERT_EQ(store_->put("k", v, &stored), PutResult::kStored);
  EXPECT_EQ(compare(v.clock, stored), Occurred::kBefore) << stored.to_string();
  if (!GetParam().stamps) {
    EXPECT_EQ(stored, v.clock.incremented(kStamp, 0));
  }
  VectorClock again;
  EXPECT_EQ(store_->put("k", v, &again), PutResult::kStored) << "a retry of the same write";
  EXPECT_EQ(again, stored);
  EXPECT_EQ(values("k"), Values{"x"});
  Versioned racer = versioned("y", {{1, 1}});
  racer.stamp = kStamp;
  racer.write_id = 77;
  EXPECT_EQ(store_->put("k", racer), PutResult::kObsolete) << "it read what the first did";
  EXPECT_EQ(values("k"), Values{"x"});
  const auto got = store_->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].stamp, 0u) << "a stamp is never stored";
}

// Copies of one write (one write id, one value) stamped at two homes are
// one version where they meet, their clocks joined; the same id on
// another value is not a copy, and goes by its clock alone.
TEST_P(Conformance, CopiesOfOneWriteAreOneVersion) {
  Versioned first = versioned("x", {{1, 1}, {kStampBase + 0, 1}});
  first.write_id = 42;
  Versioned second = versioned("x", {{1, 1}, {kStampBase + 1, 1}});
  second.write_id = 42;
  ASSERT_EQ(store_->put("k", first), PutResult::kStored);
  ASSERT_EQ(store_->put("k", second), PutResult::kStored);
  EXPECT_EQ(values("k"), Values{"x"});
  EXPECT_EQ(store_->versions("k").size(), 1u);
  if (!GetParam().stamps) {
    EXPECT_EQ(store_->get("k").at(0).clock, first.clock.merged(second.clock));
    EXPECT_EQ(store_->get("k").at(0).write_id, 42u) << "kept, for the copies yet to meet";
  } else {
    EXPECT_EQ(store_->get("k").at(0).write_id, 0u) << "a routed store keeps write ids inside";
  }
  EXPECT_EQ(store_->put("k", first), PutResult::kStored) << "a copy it holds already";
  EXPECT_EQ(store_->versions("k").size(), 1u);
  Versioned other = versioned("y", {{1, 1}, {5, 1}});
  other.write_id = 42;
  ASSERT_EQ(store_->put("k", other), PutResult::kStored);
  expect_siblings("k", {"x", "y"});
}

// A version that replaced one copy of a split write (one a second home
// stored, naming its write id) supersedes the write's other copies
// wherever they meet, whatever their clocks, and hands the id on; a
// writer that did not read it still stands beside it. Routing layers set
// these lists themselves: a program's is not taken.
TEST_P(Conformance, AVersionSupersedesCopiesOfTheWritesItReplaced) {
  constexpr uint64_t kSplit = 42;
  Versioned first = versioned("x", {{1, 1}, {kStampBase + 0, 1}});
  first.write_id = kSplit;
  if (GetParam().stamps) {
    Versioned v = versioned("y", {{1, 1}, {2, 1}});
    v.replaces = {kSplit};
    ASSERT_EQ(store_->put("k", v), PutResult::kStored);
    Versioned other = versioned("x", {{3, 1}});
    other.write_id = kSplit;
    ASSERT_EQ(store_->put("k", other), PutResult::kStored);
    expect_siblings("k", {"x", "y"});
    for (const Versioned& got : store_->get("k")) EXPECT_TRUE(got.replaces.empty());
    return;
  }
  Versioned second = versioned("x", {{1, 1}, {kStampBase + 1, 1}});
  second.write_id = kSplit;
  second.replaces = {kSplit};
  Versioned next = versioned("y", {{1, 1}, {2, 1}, {kStampBase + 1, 1}});
  next.write_id = 43;
  ASSERT_EQ(store_->put("k", second), PutResult::kStored);
  PutReply reply{.stored = next.clock};
  ASSERT_EQ(store_->put_stamped("k", next, &reply), PutResult::kStored);
  EXPECT_EQ(reply.replaces, std::vector<uint64_t>{kSplit}) << "handed on, and said";
  EXPECT_EQ(store_->put("k", first), PutResult::kObsolete) << "the late copy";
  EXPECT_EQ(values("k"), Values{"y"});
  ASSERT_EQ(store_->get("k").size(), 1u);
  EXPECT_EQ(store_->get("k")[0].replaces, std::vector<uint64_t>{kSplit});

  // The late copy held first: the replacement takes its place.
  ASSERT_EQ(store_->put("k2", first), PutResult::kStored);
  Versioned replacement = store_->get("k").at(0);
  ASSERT_EQ(store_->put("k2", replacement), PutResult::kStored);
  EXPECT_EQ(store_->get("k2"), std::vector<Versioned>{replacement});

  // A writer that read neither stays beside it.
  Versioned racer = versioned("z", {{3, 1}});
  racer.write_id = 44;
  ASSERT_EQ(store_->put("k", racer), PutResult::kStored);
  expect_siblings("k", {"y", "z"});
}

TEST_P(Conformance, RemoveDeletesOnlyVersionsAtOrBeforeTheClock) {
  VectorClock a, b;
  ASSERT_EQ(store_->put("k", versioned("a", {{1, 2}}), &a), PutResult::kStored);
  ASSERT_EQ(store_->put("k", versioned("b", {{2, 1}}), &b), PutResult::kStored);
  EXPECT_FALSE(store_->remove("k", clock({{1, 1}}))) << "older than every version";
  EXPECT_FALSE(store_->remove("k", clock({{3, 1}}))) << "concurrent with every version";
  expect_siblings("k", {"a", "b"});
  EXPECT_TRUE(store_->remove("k", a)) << "equal to one version";
  expect_siblings("k", {"b"});
  const VectorClock after = b.merged(clock({{2, 5}, {7, 1}}));
  EXPECT_TRUE(store_->remove("k", after)) << "after the last version";
  EXPECT_TRUE(store_->get("k").empty());
  EXPECT_FALSE(store_->remove("k", after)) << "nothing left";
}

TEST_P(Conformance, RemoveForgetsTheKey) {
  VectorClock stored;
  ASSERT_EQ(store_->put("k", versioned("v", {{1, 5}}), &stored), PutResult::kStored);
  ASSERT_TRUE(store_->remove("k", stored));
  EXPECT_TRUE(store_->get("k").empty());
  if (GetParam().tombstones) {
    // The delete's tombstone supersedes a put at an older clock.
    EXPECT_EQ(store_->put("k", versioned("again", {{1, 1}})), PutResult::kObsolete);
    EXPECT_TRUE(store_->get("k").empty());
    return;
  }
  // No tombstone is kept: a put at an older clock is a fresh write.
  EXPECT_EQ(store_->put("k", versioned("again", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(values("k"), Values{"again"});
}

TEST_P(Conformance, GetAllReturnsOnlyFoundKeys) {
  ASSERT_EQ(store_->put("a", versioned("1", {{1, 1}})), PutResult::kStored);
  ASSERT_EQ(store_->put("c", versioned("3", {{1, 1}})), PutResult::kStored);
  ASSERT_EQ(store_->put("c", versioned("3b", {{2, 1}})), PutResult::kStored);
  const std::vector<std::string> keys = {"a", "b", "c", "a", "d"};
  const auto got = store_->get_all(keys);
  ASSERT_EQ(got.size(), 2u);
  ASSERT_EQ(got.at("a").size(), 1u);
  EXPECT_EQ(got.at("a")[0].value, "1");
  EXPECT_EQ(got.at("c").size(), GetParam().resolves ? 1u : 2u);
  EXPECT_FALSE(got.contains("b"));
  EXPECT_TRUE(store_->get_all({}).empty());
}

TEST_P(Conformance, EmptyValueRoundTrips) {
  ASSERT_EQ(store_->put("k", versioned("", {{1, 1}})), PutResult::kStored);
  const auto got = store_->get("k");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].value, "");
}

TEST_P(Conformance, BinaryKeysWithNulAndFF) {
  const std::string k1("\x00", 1), k2("\xff\xff", 2), k3("a\x00b\xff", 4), k4("a\x00c", 3);
  for (const std::string& k : {k1, k2, k3, k4}) {
    ASSERT_EQ(store_->put(k, versioned("v" + k, {{1, 1}})), PutResult::kStored);
  }
  for (const std::string& k : {k1, k2, k3, k4}) EXPECT_EQ(values(k), Values{"v" + k});
  EXPECT_TRUE(store_->get(std::string("a", 1)).empty());
  EXPECT_TRUE(store_->get(std::string("a\x00", 2)).empty()) << "a prefix is another key";
}

TEST_P(Conformance, OneMiBValue) {
  auto rng = seeded_rng(1);
  const std::string big = random_bytes(rng, 1 << 20);
  ASSERT_EQ(store_->put("big", Versioned{big, clock({{1, 1}})}), PutResult::kStored);
  const auto got = store_->get("big");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_TRUE(got[0].value == big);
  const std::vector<std::string> keys = {"big"};
  EXPECT_TRUE(store_->get_all(keys).at("big").at(0).value == big);
}

TEST_P(Conformance, KeyAndValueSizeLimits) {
  const StoreFactory& f = GetParam();
  const std::string max_key(f.max_key_size, 'k'), long_key(f.max_key_size + 1, 'k');
  EXPECT_EQ(store_->put(max_key, versioned("v", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(values(max_key), Values{"v"});
  EXPECT_THROW(store_->put(long_key, versioned("v", {{1, 1}})), InvalidArgument);
  EXPECT_THROW(store_->get(long_key), InvalidArgument);
  EXPECT_THROW(store_->remove(long_key, clock({{1, 1}})), InvalidArgument);
  EXPECT_THROW(store_->put("", versioned("v", {{1, 1}})), InvalidArgument);
  EXPECT_THROW(store_->get(""), InvalidArgument);

  const Versioned too_big{std::string(f.max_value_size + 1, 'v'), clock({{1, 1}})};
  EXPECT_THROW(store_->put("k", too_big), InvalidArgument);
  EXPECT_TRUE(store_->get("k").empty()) << "a rejected put stores nothing";
  // Random bytes: a value at the limit that no layer can shrink.
  auto rng = seeded_rng(3);
  const Versioned at_limit{random_bytes(rng, f.max_value_size), clock({{1, 1}})};
  EXPECT_EQ(store_->put("k", at_limit), PutResult::kStored);
  EXPECT_TRUE(store_->get("k").at(0).value == at_limit.value);
}

TEST_P(Conformance, EveryByteValueInKeysAndValues) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  for (int b = 0; b < 256; ++b) {
    const std::string key(1, static_cast<char>(b));
    ASSERT_EQ(store_->put(key, versioned(key + all, {{1, 1}})), PutResult::kStored);
  }
  // Every byte value in one key too, as far as the key limit allows.
  const std::string long_key = all.substr(0, std::min<size_t>(256, GetParam().max_key_size));
  ASSERT_EQ(store_->put(long_key, versioned(all, {{1, 1}})), PutResult::kStored);
  for (int b = 0; b < 256; ++b) {
    const std::string key(1, static_cast<char>(b));
    ASSERT_EQ(values(key), Values{key + all}) << "byte " << b;
  }
  EXPECT_EQ(values(long_key), Values{all});
  EXPECT_EQ(scan_all().size(), 257u);
}

TEST_P(Conformance, CloseIsIdempotentAndLaterCallsFail) {
  ASSERT_EQ(store_->put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  store_->close();
  store_->close();
  EXPECT_THROW(store_->get("k"), FailedPrecondition);
  EXPECT_THROW(store_->put("k", versioned("v", {{1, 2}})), FailedPrecondition);
  EXPECT_THROW(store_->remove("k", clock({{1, 1}})), FailedPrecondition);
  EXPECT_THROW(store_->scan(), FailedPrecondition);
}

TEST_P(Conformance, ScanOfEmptyStoreEndsAtOnce) {
  auto it = store_->scan();
  EXPECT_FALSE(it->next());
  EXPECT_FALSE(it->next());
}

TEST_P(Conformance, ScanSeesExactlyWhatWasPut) {
  auto rng = seeded_rng(2);
  std::map<std::string, std::vector<std::string>> expected;
  std::map<std::string, VectorClock> clocks;
  // Enough keys to cross the scan batches of the engines (512 keys); a
  // fixed-width number keeps the random suffixes from making duplicates.
  for (int i = 0; i < 1500; ++i) {
    char prefix[16];
    std::snprintf(prefix, sizeof prefix, "key-%05d", i);
    const std::string key = prefix + random_bytes(rng, i % 7);
    const std::string value = random_bytes(rng, static_cast<size_t>(rng() % 200));
    ASSERT_EQ(store_->put(key, Versioned{value, clock({{1, 1}})}, &clocks[key]), PutResult::kStored);
    expected[key] = {value};
  }
  // A sibling, a replaced version and removed keys.
  auto it = expected.begin();
  ASSERT_EQ(store_->put(it->first, versioned("sib", {{2, 1}})), PutResult::kStored);
  it->second.push_back("sib");
  std::sort(it->second.begin(), it->second.end());
  ++it;
  ASSERT_EQ(store_->put(it->first, versioned("newer", {{1, 2}})), PutResult::kStored);
  it->second = {"newer"};
  for (int i = 0; i < 10; ++i) {
    ++it;
    ASSERT_TRUE(store_->remove(it->first, clocks[it->first]));
    it = std::prev(expected.erase(it));
  }
  expect_scan(expected);
}

TEST_P(Conformance, ScanIteratorOutlivingCloseFailsCleanly) {
  ASSERT_EQ(store_->put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  auto it = store_->scan();
  store_->close();
  EXPECT_THROW(it->next(), FailedPrecondition);
}

TEST_P(Conformance, ScanStopsAtCloseEvenWithKeysBuffered) {
  for (int i = 0; i < 10; ++i) {
    ASSERT_EQ(store_->put(absl::StrCat("k", i), versioned("v", {{1, 1}})), PutResult::kStored);
  }
  auto it = store_->scan();
  ASSERT_TRUE(it->next());
  store_->close();
  EXPECT_THROW(it->next(), FailedPrecondition) << "no key is served after close";
}

TEST_P(Conformance, RacingWritersLeaveOnlyNonDominatedVersions) {
  // Each writer advances its own clock entry; writer t's latest version
  // dominates all its earlier ones and is concurrent with the other's.
  constexpr int kRounds = 300;
  auto writer = [&](NodeId node) {
    for (uint64_t i = 1; i <= kRounds; ++i) {
      const Versioned v{absl::StrCat("w", node, "-", i),
                        VectorClock({{node, i}}, static_cast<int64_t>(i))};
      EXPECT_EQ(store_->put("hot", v), PutResult::kStored);
    }
  };
  std::thread a(writer, 101), b(writer, 102);
  a.join();
  b.join();
  const std::vector<VectorClock> clocks = store_->versions("hot");
  ASSERT_EQ(clocks.size(), 2u);
  EXPECT_EQ(compare(clocks[0], clocks[1]), Occurred::kConcurrent);
  expect_siblings("hot", {"w101-300", "w102-300"});
}

TEST_P(Conformance, RacingReadModifyWritesNeverLoseAVersionSilently) {
  // Two threads each read the versions, merge them and write a successor.
  // A write that lost the race is obsolete or becomes a sibling; in the end
  // no surviving version is dominated by another.
  constexpr int kRounds = 200;
  std::atomic<int> stored{0};
  auto writer = [&](NodeId node) {
    for (int i = 0; i < kRounds; ++i) {
      VectorClock c;
      for (const VectorClock& seen : store_->versions("rmw")) c = c.merged(seen);
      c.increment(node, i);
      if (store_->put("rmw", Versioned{std::to_string(node), c}) == PutResult::kStored) ++stored;
    }
  };
  // Writer ids apart from the node ids of the routed stores under test,
  // whose homes stamp their own entries.
  std::thread a(writer, 101), b(writer, 102);
  a.join();
  b.join();
  const auto got = store_->get("rmw");
  ASSERT_FALSE(got.empty());
  EXPECT_LE(got.size(), 2u);
  for (size_t i = 0; i < got.size(); ++i) {
    for (size_t j = i + 1; j < got.size(); ++j) {
      EXPECT_EQ(compare(got[i].clock, got[j].clock), Occurred::kConcurrent);
    }
  }
  // Only writer n increments entry n, and it always starts from a clock that
  // includes its own last stored write, so no put of either is obsolete.
  EXPECT_EQ(stored.load(), 2 * kRounds);
}

TEST_P(Conformance, AsyncCallsAnswerWhatTheBlockingCallsWould) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  using Versions = std::vector<Versioned>;
  EXPECT_TRUE(await_call<Versions>([&](auto done) { store_->async_get("k", done); }, calls)
                  .result.empty());

  const Versioned v = versioned("hello", {{1, 1}});
  const auto put = await_call<PutReply>([&](auto done) { store_->async_put("k", v, done); }, calls);
  ASSERT_FALSE(put.error) << error_kind(put.error);
  ASSERT_EQ(put.result.result, PutResult::kStored);
  if (!GetParam().stamps) {
    EXPECT_EQ(put.result.stored, v.clock);
  }
  const auto got = await_call<Versions>([&](auto done) { store_->async_get("k", done); }, calls);
  ASSERT_FALSE(got.error) << error_kind(got.error);
  ASSERT_EQ(got.result.size(), 1u);
  EXPECT_EQ(got.result[0].value, "hello");
  EXPECT_EQ(got.result[0].clock, put.result.stored) << "the clock the async put reported";
  EXPECT_EQ(store_->get("k").at(0).value, "hello") << "and the blocking calls see it";

  const auto obsolete =
      await_call<PutReply>([&](auto done) { store_->async_put("k", v, done); }, calls);
  EXPECT_EQ(obsolete.result.result, PutResult::kObsolete);
  const auto clocks = await_call<std::vector<VectorClock>>(
      [&](auto done) { store_->async_versions("k", done); }, calls);
  EXPECT_EQ(clocks.result, std::vector<VectorClock>{put.result.stored});

  ASSERT_EQ(store_->put("j", versioned("j", {{1, 1}})), PutResult::kStored);
  const auto all = await_call<std::map<std::string, Versions>>(
      [&](auto done) { store_->async_get_all({"k", "j", "absent", "k"}, done); }, calls);
  ASSERT_FALSE(all.error) << error_kind(all.error);
  EXPECT_EQ(all.result.size(), 2u);
  EXPECT_EQ(all.result.at("j").at(0).value, "j");

  const auto removed = await_call<bool>(
      [&](auto done) { store_->async_remove("k", put.result.stored, done); }, calls);
  EXPECT_TRUE(removed.result);
  EXPECT_TRUE(store_->get("k").empty());
  EXPECT_FALSE(await_call<bool>([&](auto done) { store_->async_remove("k", put.result.stored, done); },
                                calls)
                   .result);
  EXPECT_EQ(calls->load(), 8) << "every callback ran exactly once";
}

TEST_P(Conformance, AsyncCallsReportFailuresThroughTheirCallback) {
  const std::string long_key(GetParam().max_key_size + 1, 'k');
  auto calls = std::make_shared<std::atomic<int>>(0);
  // Nothing is thrown at the caller: the error arrives as the blocking
  // call would have thrown it.
  const auto put = await_call<PutReply>(
      [&](auto done) { store_->async_put(long_key, versioned("v", {{1, 1}}), done); }, calls);
  EXPECT_EQ(error_kind(put.error), "InvalidArgument");
  const auto get = await_call<std::vector<Versioned>>(
      [&](auto done) { store_->async_get("", done); }, calls);
  EXPECT_EQ(error_kind(get.error), "InvalidArgument");
  const Versioned too_big{std::string(GetParam().max_value_size + 1, 'v'), clock({{1, 1}})};
  const auto big = await_call<PutReply>([&](auto done) { store_->async_put("k", too_big, done); },
                                        calls);
  EXPECT_EQ(error_kind(big.error), "InvalidArgument");
  EXPECT_TRUE(store_->get("k").empty()) << "a refused put stores nothing";
  EXPECT_EQ(calls->load(), 3);
}

TEST_P(Conformance, AsyncCallsFromManyThreadsAllAnswer) {
  constexpr int kThreads = 4, kKeys = 100;
  std::atomic<int> answered{0}, wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kKeys; ++i) {
        const std::string key = absl::StrCat("t", t, "-", i);
        const auto put = await_call<PutReply>(
            [&](auto done) { store_->async_put(key, versioned(key, {{1, 1}}), done); });
        if (put.error || put.result.result != PutResult::kStored) ++wrong;
        const auto got = await_call<std::vector<Versioned>>(
            [&](auto done) { store_->async_get(key, done); });
        if (got.error || got.result.size() != 1 || got.result[0].value != key) ++wrong;
        answered += 2;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_EQ(answered.load(), 2 * kThreads * kKeys);
  EXPECT_EQ(scan_all().size(), static_cast<size_t>(kThreads * kKeys));
}

// Issue 18: a store with a ttl layer never returns a version whose TTL has
// passed since its write, by any read, and a write after the expiry
// succeeds it; its sweeper deletes it below. A store without one refuses
// a put that asks for a TTL, rather than keep the value for ever.
TEST_P(Conformance, TtlHidesExpiredVersionsFromEveryReadAndWritesSucceedThem) {
  Versioned asks{"v", clock({{1, 1}}, now_ms())};
  asks.ttl_ms = 1000;
  if (!GetParam().ttl) {
    EXPECT_THROW(store_->put("k", asks), InvalidArgument);
    EXPECT_TRUE(store_->get("k").empty());
    return;
  }
  auto put = [&](const std::string& key, const std::string& value, int64_t ttl_ms) {
    VectorClock c;
    for (const VectorClock& v : store_->versions(key)) c = c.merged(v);
    Versioned v{value, c.incremented(1, now_ms())};
    v.ttl_ms = ttl_ms;
    return store_->put(key, v);
  };
  ASSERT_EQ(put("short", "gone soon", 1), PutResult::kStored);  // 1 ms
  ASSERT_EQ(put("long", "an hour", 3'600'000), PutResult::kStored);
  ASSERT_EQ(put("never", "kept", -1), PutResult::kStored);
  // The longest TTL there is: its expiry lies past any clock, not wrapped
  // round into the past.
  ASSERT_EQ(put("ages", "kept too", std::numeric_limits<int64_t>::max()), PutResult::kStored);
  // 20 ms after its write, a 1 ms TTL has passed whatever the scheduler did.
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_TRUE(store_->get("short").empty());
  EXPECT_TRUE(store_->versions("short").empty());
  const std::vector<std::string> keys = {"short", "long", "never", "ages"};
  const auto all = store_->get_all(keys);
  EXPECT_FALSE(all.contains("short"));
  EXPECT_TRUE(all.contains("long") && all.contains("never") && all.contains("ages"));
  expect_scan({{"ages", {"kept too"}}, {"long", {"an hour"}}, {"never", {"kept"}}});
  const std::vector<Versioned> long_versions = store_->get("long");
  ASSERT_EQ(long_versions.size(), 1u);
  EXPECT_EQ(long_versions[0].ttl_ms, 3'600'000);
  std::promise<std::vector<Versioned>> async;
  store_->async_get("short", [&](std::vector<Versioned> v, std::exception_ptr e) {
    if (e) return async.set_exception(e);
    async.set_value(std::move(v));
  });
  EXPECT_TRUE(async.get_future().get().empty());
  // The expired version, unseen, does not make the next write obsolete.
  ASSERT_EQ(put("short", "again", 0), PutResult::kStored);
  EXPECT_EQ(values("short"), std::vector<std::string>{"again"});
  // Swept below (a store that routes has its nodes reap instead).
  if (auto* ttl = find_layer<TtlStore>(*store_); ttl != nullptr && !GetParam().stamps) {
    ASSERT_EQ(put("other", "x", 1), PutResult::kStored);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    EXPECT_EQ(ttl->sweep(), 1u);
    EXPECT_TRUE(ttl->inner().get("other").empty()) << "the sweeper left the expired version";
    EXPECT_EQ(ttl->inner().get("short").size(), 1u);
  }
}

TEST_P(Conformance, ReopenKeepsDataIfPersistentOtherwiseStartsEmpty) {
  ASSERT_EQ(store_->put("k", versioned("a", {{1, 1}})), PutResult::kStored);
  ASSERT_EQ(store_->put("k", versioned("b", {{2, 1}})), PutResult::kStored);
  VectorClock gone;
  ASSERT_EQ(store_->put("gone", versioned("x", {{1, 1}}), &gone), PutResult::kStored);
  ASSERT_TRUE(store_->remove("gone", gone));
  reopen();
  if (GetParam().persistent) {
    expect_siblings("k", {"a", "b"});
    EXPECT_TRUE(store_->get("gone").empty());
    EXPECT_EQ(scan_all().size(), 1u);
  } else {
    EXPECT_TRUE(store_->get("k").empty());
    EXPECT_TRUE(scan_all().empty());
  }
}

}  // namespace cairn::testing

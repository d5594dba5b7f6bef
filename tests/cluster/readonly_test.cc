// Read-only stores on a server-routed cluster of real cairn-server
// processes: versions built by `cairn build-readonly` from JSON Lines,
// fetched to the nodes and swapped under a read load (no failed read, and
// every answer one version's or the other's), rolled back, refused when a
// chunk is damaged, and not swapped anywhere when a node cannot take it.

#include <signal.h>

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <thread>

#include <absl/strings/str_cat.h>

#include "cairn/errors.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr int kKeys = 1'000'000;
constexpr int kNewInV2 = 100'000;  // keys kKeys.. kKeys+kNewInV2 only in version 2

std::string key_of(int i) { return absl::StrCat("key-", i); }
// Version 1 holds every key below kKeys; version 2 the even ones and the
// new ones above, with other values.
std::optional<std::string> expected(int version, int i) {
  if (version == 1) return i < kKeys ? std::optional(absl::StrCat("one-", i)) : std::nullopt;
  if (i < kKeys && i % 2 == 1) return std::nullopt;
  return absl::StrCat("two-", i);
}

class ReadOnlyClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions o;
    o.deployment = Deployment::kServerRouted;
    o.replication = {2, 1, 1};
    o.engine = "{readonly: {path: \"{dir}/node-{node}/{store}\"}}";
    cluster_ = std::make_unique<LocalCluster>(dir_.path(), o);
  }

  // Writes version `version`'s records as JSON Lines and builds them.
  void build(int version, const std::string& out) {
    const std::string input = dir_.sub("v" + std::to_string(version) + ".jsonl");
    {
      std::ofstream f(input);
      for (int i = 0; i < kKeys + kNewInV2; ++i) {
        if (auto v = expected(version, i)) {
          f << "{\"key\": \"" << key_of(i) << "\", \"value\": \"" << *v << "\"}\n";
        }
      }
    }
    std::string output;
    ASSERT_EQ(cluster_->cli({"build-readonly", input, "--out", out}, &output), 0) << output;
    EXPECT_NE(output.find("in 16 partitions"), std::string::npos) << output;
  }

  int admin(const std::vector<std::string>& args, std::string* output) {
    std::vector<std::string> with = {"readonly"};
    with.insert(with.end(), args.begin(), args.end());
    return cluster_->admin(with, output);
  }

  // Reads `n` keys drawn at random; how many answered version `version`'s
  // values (absent where it has none).
  int matching(Store& s, int version, int n, uint64_t salt) {
    auto rng = seeded_rng(salt);
    int ok = 0;
    for (int j = 0; j < n; ++j) {
      const int i = static_cast<int>(rng() % (kKeys + kNewInV2));
      const std::vector<Versioned> got = s.get(key_of(i));
      const auto want = expected(version, i);
      if (want ? (got.size() == 1 && got[0].value == *want) : got.empty()) ++ok;
    }
    return ok;
  }

  TempDir dir_;
  std::unique_ptr<LocalCluster> cluster_;
};

TEST_F(ReadOnlyClusterTest, SwapsUnderLoadRollsBackAndRefusesDamageAndPartialSwaps) {
  build(1, dir_.sub("built-1"));
  build(2, dir_.sub("built-2"));
  std::string out;
  ASSERT_EQ(admin({"fetch", dir_.sub("built-1")}, &out), 0) << out;
  EXPECT_NE(out.find("node 2 (" + cluster_->address(2) + "): fetched version 1"), std::string::npos)
      << out;
  ASSERT_EQ(admin({"swap", "1"}, &out), 0) << out;
  std::unique_ptr<Store> client = cluster_->client();
  EXPECT_EQ(matching(*client, 1, 2000, 1), 2000);

  ASSERT_EQ(admin({"fetch", dir_.sub("built-2")}, &out), 0) << out;
  EXPECT_NE(out.find("fetched version 2"), std::string::npos) << out;
  EXPECT_EQ(matching(*client, 1, 500, 2), 500) << "a fetch alone changed what is served";

  // Readers, each with its own client, while version 2 is swapped in.
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> reads{0}, from1{0}, from2{0}, failed{0}, mixed{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 2; ++t) {
    readers.emplace_back([&, t] {
      std::unique_ptr<Store> c = cluster_->client();
      auto rng = seeded_rng(100 + static_cast<uint64_t>(t));
      const auto deadline = Clock::now() + std::chrono::seconds(120);
      for (int n = 0; n < 5'000'000 && !stop.load() && Clock::now() < deadline; ++n) {
        const int i = static_cast<int>(rng() % (kKeys + kNewInV2));
        std::vector<Versioned> got;
        try {
          got = c->get(key_of(i));
        } catch (const Error& e) {
          ++failed;
          ADD_FAILURE() << "read of " << key_of(i) << " failed: " << e.what();
          continue;
        }
        ++reads;
        auto is = [&](int v) {
          const auto want = expected(v, i);
          return want ? (got.size() == 1 && got[0].value == *want) : got.empty();
        };
        // A key whose two versions agree (absent in both) counts for neither.
        if (is(1) && is(2)) continue;
        if (is(1)) {
          ++from1;
        } else if (is(2)) {
          ++from2;
        } else {
          ++mixed;
          ADD_FAILURE() << key_of(i) << ": " << got.size() << " versions, first "
                        << (got.empty() ? "-" : got[0].value);
        }
      }
    });
  }
  while (reads.load() < 2000 && failed.load() == 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  const uint64_t before_swap = from1.load();
  ASSERT_EQ(admin({"swap", "2"}, &out), 0) << out;
  EXPECT_NE(out.find("serving version 2 (was 1)"), std::string::npos) << out;
  const uint64_t at_swap = reads.load();
  while (reads.load() < at_swap + 2000 && failed.load() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  stop = true;
  for (std::thread& t : readers) t.join();
  EXPECT_EQ(failed.load(), 0u);
  EXPECT_EQ(mixed.load(), 0u);
  EXPECT_GT(before_swap, 0u);
  EXPECT_GT(from2.load(), 0u);
  std::printf("%llu reads across the swap: %llu answered from version 1, %llu from version 2\n",
              static_cast<unsigned long long>(reads.load()),
              static_cast<unsigned long long>(from1.load()),
              static_cast<unsigned long long>(from2.load()));
  EXPECT_EQ(matching(*client, 2, 2000, 3), 2000);

  // Rollback: version 1's answers again.
  ASSERT_EQ(admin({"rollback"}, &out), 0) << out;
  EXPECT_NE(out.find("serving version 1 (was 2)"), std::string::npos) << out;
  EXPECT_EQ(matching(*client, 1, 2000, 4), 2000);

  // Writes are refused, saying why.
  try {
    client->put("key-1", Versioned{"x", VectorClock()});
    ADD_FAILURE() << "a put to a read-only store succeeded";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("read-only"), std::string::npos) << e.what();
  }

  // A damaged chunk is refused at fetch, on the nodes that hold it, and
  // leaves no version 3 anywhere.
  fs::copy(dir_.sub("built-2"), dir_.sub("built-3"), fs::copy_options::recursive);
  {
    std::fstream f(dir_.sub("built-3/5.data"), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(4096);
    f.put('\x7f');
  }
  EXPECT_EQ(admin({"fetch", dir_.sub("built-3")}, &out), 4) << out;
  EXPECT_NE(out.find("5.data does not match its checksum"), std::string::npos) << out;
  EXPECT_NE(out.find("version 3 is kept by no target"), std::string::npos) << out;
  ASSERT_EQ(admin({"status"}, &out), 0) << out;
  EXPECT_EQ(out.find("version 3"), std::string::npos) << out;
  for (int node = 0; node < 3; ++node) {
    EXPECT_FALSE(fs::exists(dir_.sub("node-" + std::to_string(node) + "/default/version-3")));
  }

  // A node that cannot take part: nothing is swapped anywhere.
  ASSERT_EQ(cluster_->stop(2, SIGKILL), 128 + SIGKILL);
  EXPECT_EQ(admin({"swap", "2"}, &out), 4) << out;
  EXPECT_NE(out.find("cannot prepare"), std::string::npos) << out;
  EXPECT_NE(out.find("every target keeps the version it serves"), std::string::npos) << out;
  EXPECT_EQ(matching(*client, 1, 2000, 5), 2000);
}

}  // namespace
}  // namespace cairn::testing

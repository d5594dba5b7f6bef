// Data that ages, on a server-routed cluster of real cairn-server
// processes (docs/ttl.md): keys written with a TTL disappear for readers
// when it passes and then from every node's replica; deleted keys' tombstones
// are reaped from every replica once the grace has passed, but not while a
// replica is down: a node that comes back after longer than the grace,
// holding the old values, does not bring them back.

#include <signal.h>

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <absl/strings/str_cat.h>

#include "cairn/client.h"
#include "cairn/errors.h"
#include "cairn/routed_store.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

using Clock = std::chrono::steady_clock;
using Strings = Client<std::string, std::string>;

constexpr int kGraceMs = 1500;

bool is_tombstone(const Versioned& v) { return v.clock.counter(kTombstoneEntry) % 2 == 1; }

class LifecycleClusterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ClusterOptions o;
    o.deployment = Deployment::kServerRouted;
    o.replication = {3, 2, 2};
    o.probe_interval_ms = 200;
    o.top_layers = {"{ttl: {sweep_interval_ms: 0}}"};
    o.route_params = {"reap_grace_ms: " + std::to_string(kGraceMs), "reap_interval_ms: 200",
                      "reap_rate: 100000"};
    cluster_ = std::make_unique<LocalCluster>(dir_.path(), o);
  }

  Strings client() const {
    ClientOptions o;
    o.max_tries = 100;
    return open_client<std::string, std::string>(cluster_->config(), "default", o);
  }

  // What node `node` holds of `key`, below its routing: tombstones and
  // the ttl layer's bytes included.
  std::vector<Versioned> held(int node, const std::string& key) const {
    return cluster_->replica(node)->get(key);
  }

  // Waits until `done()` (30 s at most); whether it came.
  template <typename Fn>
  bool eventually(Fn done) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (Clock::now() < deadline) {
      if (done()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return done();
  }

  TempDir dir_;
  std::unique_ptr<LocalCluster> cluster_;
};

TEST_F(LifecycleClusterTest, KeysWithATtlDisappearForReadersThenFromEveryNode) {
  Strings c = client();
  for (int i = 0; i < 50; ++i) {
    c.put(absl::StrCat("session:", i), "token", std::chrono::seconds(1));
    c.put(absl::StrCat("user:", i), "kept");
  }
  // Stored on every node (W=2 returned; the third copy follows).
  ASSERT_TRUE(eventually([&] {
    for (int node = 0; node < 3; ++node) {
      if (held(node, "session:7").size() != 1) return false;
    }
    return true;
  }));
  // The write's own timestamp plus 1 s: gone for readers everywhere.
  ASSERT_TRUE(eventually([&] {
    for (int i = 0; i < 50; ++i) {
      if (c.get(absl::StrCat("session:", i))) return false;
    }
    return true;
  }));
  // Then, past the grace, from every replica.
  EXPECT_TRUE(eventually([&] {
    for (int node = 0; node < 3; ++node) {
      for (int i = 0; i < 50; ++i) {
        if (!held(node, absl::StrCat("session:", i)).empty()) return false;
      }
    }
    return true;
  })) << "an expired key is still held by a replica";
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(c.get(absl::StrCat("user:", i)), "kept");
    for (int node = 0; node < 3; ++node) EXPECT_EQ(held(node, absl::StrCat("user:", i)).size(), 1u);
  }
}

TEST_F(LifecycleClusterTest, TombstonesAreReapedButNotWhileAReplicaIsDown) {
  Strings c = client();
  auto key = [](int i) { return absl::StrCat("k", i); };
  for (int i = 0; i < 50; ++i) c.put(key(i), "v");
  ASSERT_TRUE(eventually([&] {
    for (int node = 0; node < 3; ++node) {
      for (int i = 0; i < 50; ++i) {
        if (held(node, key(i)).size() != 1) return false;
      }
    }
    return true;
  }));

  // Deleted with every replica up: tombstones, then nothing.
  for (int i = 0; i < 25; ++i) ASSERT_TRUE(c.remove(key(i)));
  const std::vector<Versioned> right_after = held(0, key(3));
  ASSERT_EQ(right_after.size(), 1u);
  EXPECT_TRUE(is_tombstone(right_after[0])) << "a delete leaves a tombstone first";
  EXPECT_TRUE(eventually([&] {
    for (int node = 0; node < 3; ++node) {
      for (int i = 0; i < 25; ++i) {
        if (!held(node, key(i)).empty()) return false;
      }
    }
    return true;
  })) << "a tombstone outlived its grace on a replica";
  for (int i = 25; i < 50; ++i) EXPECT_EQ(c.get(key(i)), "v");

  // Node 2 goes down; the rest are deleted without it, and it stays down
  // for three graces.
  ASSERT_EQ(cluster_->stop(2, SIGKILL), 128 + SIGKILL);
  for (int i = 25; i < 50; ++i) ASSERT_TRUE(c.remove(key(i)));
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * kGraceMs));
  for (int i = 25; i < 50; ++i) {
    for (int node = 0; node < 2; ++node) {
      const std::vector<Versioned> v = held(node, key(i));
      ASSERT_EQ(v.size(), 1u) << key(i) << " on node " << node << ": reaped with a replica down";
      EXPECT_TRUE(is_tombstone(v[0]));
    }
  }

  // It comes back holding the old values. Readers never see them, and the
  // tombstones reach it and are then reaped everywhere.
  cluster_->start(2);
  // Node 2 holds its old copy, or (if a reaper pass reached it first) the
  // tombstone sent over it; never nothing, while the others keep theirs.
  const std::vector<Versioned> back_all = held(2, key(30));
  ASSERT_EQ(back_all.size(), 1u);
  const Versioned& back = back_all[0];
  EXPECT_TRUE(back.value == std::string("\x01\x00v", 3) || is_tombstone(back))
      << "node 2 holds neither its copy nor the tombstone";
  const auto until = Clock::now() + std::chrono::seconds(3);
  int reads = 0;
  while (Clock::now() < until && reads < 20'000) {
    for (int i = 25; i < 50; ++i, ++reads) {
      const std::optional<std::string> got = c.get(key(i));
      ASSERT_FALSE(got.has_value()) << key(i) << " came back as '" << *got << "'";
    }
  }
  EXPECT_TRUE(eventually([&] {
    for (int node = 0; node < 3; ++node) {
      for (int i = 25; i < 50; ++i) {
        if (!held(node, key(i)).empty()) return false;
      }
    }
    return true;
  })) << "the tombstones were not reaped once node 2 was back";
  for (int i = 0; i < 50; ++i) EXPECT_FALSE(c.get(key(i)).has_value());
}

}  // namespace
}  // namespace cairn::testing

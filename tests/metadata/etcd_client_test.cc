// The etcd client against Debian's etcd, a real process on loopback:
// reads of a prefix, guarded commits, leases, and a watch that loses
// nothing across an etcd killed and restarted, or a compacted history.

#include "metadata/etcd_client.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "cairn/errors.h"
#include "tests/testing/etcd_process.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/test_util.h"

namespace cairn::internal {
namespace {

using testing::EtcdProcess;
using testing::TempDir;

EtcdClient::Options options_for(const EtcdProcess& etcd) {
  return {.endpoints = {etcd.endpoint()}, .timeout = std::chrono::milliseconds(2000)};
}

EtcdClient::Write put(std::string key, std::string value) {
  return {.key = std::move(key), .value = std::move(value)};
}

// A real etcd per test, and a client of it.
class EtcdClientTest : public ::testing::Test {
 protected:
  TempDir dir;
  EtcdProcess etcd{dir.path()};
  EtcdClient client{options_for(etcd)};
};

TEST(EtcdPrefixTest, EndIsThePrefixWithItsLastByteRaised) {
  EXPECT_EQ(EtcdClient::prefix_end("a/"), "a0");
  EXPECT_EQ(EtcdClient::prefix_end("a\xff"), "b");
  EXPECT_EQ(EtcdClient::prefix_end("\xff\xff"), std::string(1, '\0'));
  EXPECT_EQ(EtcdClient::prefix_end(""), std::string(1, '\0'));
}

TEST(EtcdClientErrorsTest, NoEndpointIsInvalid) {
  EXPECT_THROW(EtcdClient(EtcdClient::Options{}), InvalidArgument);
}

TEST(EtcdClientErrorsTest, AnEndpointThatDoesNotAnswerIsUnavailableNamingIt) {
  const std::string dead = "127.0.0.1:" + std::to_string(testing::free_port());
  EtcdClient client({.endpoints = {dead}, .timeout = std::chrono::milliseconds(300)});
  try {
    client.get("k");
    FAIL() << "no etcd answered, yet the call returned";
  } catch (const Unavailable& e) {
    EXPECT_NE(std::string(e.what()).find(dead), std::string::npos) << e.what();
  }
}

TEST_F(EtcdClientTest, PrefixReadsAndCommitsGuardedByARevision) {
  const std::vector<EtcdClient::Write> first = {put("c/nodes/1", "a"), put("c/nodes/0", "b"),
                                                put("c/version", "1")};
  int64_t rev = 0;
  ASSERT_TRUE(client.commit_if("c/version", 0, first, &rev)) << "absent, as expected";
  EXPECT_GT(rev, 0);
  EXPECT_FALSE(client.commit_if("c/version", 0, std::vector{put("c/version", "x")}))
      << "no longer absent";
  ASSERT_TRUE(client.commit_if("other", 0, std::vector{put("cx", "outside the prefix")}));

  int64_t read_at = 0;
  const std::vector<EtcdClient::Entry> got = client.get_prefix("c/", &read_at);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].key, "c/nodes/0") << "in key order";
  EXPECT_EQ(got[1].key, "c/nodes/1");
  EXPECT_EQ(got[2].key, "c/version");
  EXPECT_EQ(got[2].value, "1");
  EXPECT_EQ(got[2].mod_revision, rev);
  EXPECT_GE(read_at, rev);

  // Two admins with the same version in hand: one wins, the other writes
  // nothing at all.
  const std::vector<EtcdClient::Write> a = {put("c/version", "2"), put("c/nodes/2", "a")};
  const std::vector<EtcdClient::Write> b = {put("c/version", "2"), put("c/nodes/3", "b")};
  EXPECT_TRUE(client.commit_if("c/version", rev, a));
  EXPECT_FALSE(client.commit_if("c/version", rev, b));
  EXPECT_TRUE(client.get("c/nodes/2").has_value());
  EXPECT_FALSE(client.get("c/nodes/3").has_value());
  EXPECT_EQ(client.get("c/version")->value, "2");

  // A delete in a commit.
  const auto version = client.get("c/version");
  const std::vector<EtcdClient::Write> drop = {{.key = "c/nodes/2"}, put("c/version", "3")};
  EXPECT_TRUE(client.commit_if("c/version", version->mod_revision, drop));
  EXPECT_FALSE(client.get("c/nodes/2").has_value());
}

TEST_F(EtcdClientTest, AKeyOnALeaseLivesWhileItIsKeptAlive) {
  const int64_t lease = client.grant_lease(std::chrono::seconds(5));
  const int64_t rev = client.put("alive/0", "x", lease);
  EXPECT_EQ(client.get("alive/0")->mod_revision, rev);
  EXPECT_EQ(client.get("alive/0")->lease, lease);
  EXPECT_GT(client.keep_alive(lease).count(), 0);
  client.revoke(lease);
  EXPECT_FALSE(client.get("alive/0").has_value()) << "revoking the lease deletes its keys";
  EXPECT_THROW(client.keep_alive(lease), NotFound);
}

// Collects what a watch reports.
struct Seen {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> keys;  // put events' keys, in order
  int resets = 0;
  int errors = 0;

  void update(const EtcdClient::Update& u) {
    std::lock_guard lock(mu);
    if (u.reset) {
      ++resets;
      keys.clear();
      for (const auto& e : u.snapshot) keys.push_back(e.key);
    } else {
      for (const auto& e : u.events) {
        if (!e.deleted) keys.push_back(e.entry.key);
      }
    }
    cv.notify_all();
  }
  void error(const std::string&) {
    std::lock_guard lock(mu);
    ++errors;
  }
  bool wait_for(size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, std::chrono::seconds(20), [&] { return keys.size() >= n; });
  }
  // Watches `prefix` after revision `after` into this.
  std::unique_ptr<EtcdClient::Watch> watch(EtcdClient& client, const std::string& prefix,
                                           int64_t after) {
    return client.watch_prefix(
        prefix, after, [this](const EtcdClient::Update& u) { update(u); },
        [this](const std::string& why) { error(why); });
  }
};

TEST_F(EtcdClientTest, AWatchMissesNothingAcrossAKilledEtcd) {
  int64_t start = 0;
  client.get_prefix("w/", &start);
  Seen seen;
  auto watch = seen.watch(client, "w/", start);
  std::vector<std::string> expected;
  for (int i = 0; i < 5; ++i) {
    expected.push_back("w/" + std::to_string(i));
    ASSERT_TRUE(client.commit_if(expected.back(), 0, std::vector{put(expected.back(), "v")}));
  }
  ASSERT_TRUE(client.commit_if("elsewhere", 0, std::vector{put("elsewhere", "v")}));
  ASSERT_TRUE(seen.wait_for(5));

  etcd.stop(SIGKILL);
  EXPECT_THROW(client.get("w/0"), Unavailable);
  etcd.start();
  for (int i = 5; i < 10; ++i) {
    expected.push_back("w/" + std::to_string(i));
    ASSERT_TRUE(client.commit_if(expected.back(), 0, std::vector{put(expected.back(), "v")}));
  }
  ASSERT_TRUE(seen.wait_for(10));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // nothing more comes
  std::lock_guard lock(seen.mu);
  EXPECT_EQ(seen.keys, expected) << "each change once, in order";
  EXPECT_GE(seen.errors, 1) << "the broken stream was reported";
  EXPECT_EQ(seen.resets, 0);
}

TEST_F(EtcdClientTest, AWatchFromACompactedRevisionStartsFromTheWholePrefix) {
  int64_t start = 0;
  client.get_prefix("w/", &start);
  int64_t rev = 0;
  ASSERT_TRUE(client.commit_if("w/a", 0, std::vector{put("w/a", "1")}));
  ASSERT_TRUE(client.commit_if("w/b", 0, std::vector{put("w/b", "1")}, &rev));
  client.compact(rev);
  Seen seen;
  auto watch = seen.watch(client, "w/", start);
  ASSERT_TRUE(seen.wait_for(2));
  ASSERT_TRUE(client.commit_if("w/c", 0, std::vector{put("w/c", "1")}));
  ASSERT_TRUE(seen.wait_for(3));
  std::lock_guard lock(seen.mu);
  EXPECT_EQ(seen.resets, 1);
  EXPECT_EQ(seen.keys, (std::vector<std::string>{"w/a", "w/b", "w/c"}));
}

}  // namespace
}  // namespace cairn::internal

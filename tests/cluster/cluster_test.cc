// Issue 5's cluster scenarios, each for both deployments: real cairn-server
// processes on loopback (tests/testing/local_cluster.h), killed and
// restarted with real signals. Scenario 1 (the conformance suite through a
// cluster) is in tests/conformance/grpc_stores_test.cc.

#include <signal.h>

#include <gtest/gtest.h>

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <iostream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <thread>

#include <absl/strings/str_cat.h>

#include "cairn/cache_store.h"
#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "cairn/ring.h"
#include "cairn/stats_store.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/grpc_store.h"
#include "routing/routed_store.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

// Everything a replica holds: key -> its versions' "value@clock", sorted.
using Contents = std::map<std::string, std::vector<std::string>>;

Contents contents(Store& replica) {
  Contents out;
  for (auto it = replica.scan(); it->next();) {
    auto& versions = out[std::string(it->key())];
    for (const Versioned& v : it->versions()) versions.push_back(v.value + "@" + v.clock.to_string());
    std::sort(versions.begin(), versions.end());
  }
  return out;
}

template <typename Fn>
bool eventually(Fn&& done, std::chrono::seconds limit = std::chrono::seconds(30)) {
  const auto until = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return done();
}

// The value a read returns for `key`: one version expected.
std::string value_of(Store& s, const std::string& key) {
  const auto got = s.get(key);
  if (got.size() != 1) return absl::StrCat("<", got.size(), " versions>");
  return got[0].value;
}

// The count of `op` calls the stats layer of store `default` on `address`
// has seen, asked from outside, as an operator would (Admin.Stats).
uint64_t served(const std::string& address, const std::string& op) {
  const rpc::StatsResponse resp = admin_stats(address);
  if (!resp.reports().contains("default")) return 0;
  std::istringstream report(resp.reports().at("default"));
  for (std::string line; std::getline(report, line);) {
    if (line.rfind(op + " ", 0) == 0) return std::stoull(line.substr(op.size()));
  }
  return 0;  // no such call yet: the report leaves it out
}

// The kill -9 nemesis of the history tests: `cycles` times, node
// c % size is killed with SIGKILL and restarted, `pause` before and after
// the kill; then `*done` is set.
void kill_nemesis(LocalCluster& cluster, int cycles, std::chrono::milliseconds pause,
                  std::atomic<bool>* done) {
  for (int c = 0; c < cycles; ++c) {
    const int victim = c % cluster.size();
    std::this_thread::sleep_for(pause);
    EXPECT_EQ(cluster.stop(victim, SIGKILL), 128 + SIGKILL);
    std::this_thread::sleep_for(pause);
    cluster.start(victim);
  }
  *done = true;
}

// `key`'s versions through `store`, asked again while a node is still
// coming back; nullopt if it never answered (within eventually's limit).
std::optional<std::vector<Versioned>> get_when_up(Store& store, const std::string& key) {
  std::optional<std::vector<Versioned>> got;
  eventually([&] {
    try {
      got = store.get(key);
      return true;
    } catch (const Error&) {
      return false;
    }
  });
  return got;
}

}  // namespace

void PrintTo(Deployment d, std::ostream* os) { *os << to_string(d); }

namespace {

class ClusterTest : public ::testing::TestWithParam<Deployment> {
 protected:
  ClusterOptions options(int nodes = 3) {
    ClusterOptions o;
    o.nodes = nodes;
    o.deployment = GetParam();
    return o;
  }
  TempDir dir_;
};

// Scenario 2: kill one node during a write load. Every acknowledged write
// is readable afterwards; after the node restarts, hints and read repair
// bring the three replicas to identical contents.
TEST_P(ClusterTest, KillOneNodeDuringWritesThenHeal) {
  LocalCluster cluster(dir_.path(), options());
  auto client = cluster.client();
  // Per key, the last acknowledged value, and the values of writes that
  // failed after it: a failed write may still have landed (on its home),
  // so a read may see one of those instead, never anything older.
  std::map<std::string, std::string> acked;
  std::map<std::string, std::set<std::string>> maybe;
  std::set<std::string> attempted;
  std::atomic<bool> killed{false};
  std::thread killer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    EXPECT_EQ(cluster.stop(2, SIGKILL), 128 + SIGKILL);
    killed = true;
  });
  int failures = 0;
  for (int i = 0; i < 600 || !killed; ++i) {
    const std::string key = absl::StrCat("key-", i % 400);
    const std::string value = absl::StrCat("v", i);
    attempted.insert(key);
    try {
      VectorClock c;
      for (const VectorClock& seen : client->versions(key)) c = c.merged(seen);
      c.increment(1000, now_ms());
      if (client->put(key, Versioned{value, c}) == PutResult::kStored) {
        acked[key] = value;
        maybe[key].clear();
      }
    } catch (const Error& e) {
      maybe[key].insert(value);
      // Around the kill a write may fail or time out; that is allowed.
      ++failures;
      EXPECT_TRUE(e.code() == ErrorCode::kInsufficientReplicas || e.code() == ErrorCode::kUnavailable ||
                  e.code() == ErrorCode::kTimeout)
          << e.what();
    }
  }
  killer.join();
  EXPECT_LT(failures, 50) << "writes kept failing with one node of three down";
  // Every acknowledged write reads back, with one node still down.
  auto where = [&](const std::string& key) {
    std::string out;
    for (int n = 0; n < cluster.size(); ++n) {
      if (!cluster.running(n)) continue;
      out += absl::StrCat("\n  node ", n, ":");
      for (const Versioned& v : cluster.replica(n)->get(key)) out += " " + v.value + "@" + v.clock.to_string();
    }
    return out;
  };
  auto check = [&](const std::string& key, const std::string& value) {
    const std::string got = value_of(*client, key);
    EXPECT_TRUE(got == value || maybe[key].contains(got))
        << key << ": read " << got << ", acknowledged " << value << where(key);
  };
  for (const auto& [key, value] : acked) check(key, value);

  cluster.start(2);
  // Hints drain to the restarted node; then a read of every key repairs
  // what hints could not cover (writes in flight at the kill).
  auto first = cluster.replica(0);
  auto restarted = cluster.replica(2);
  EXPECT_TRUE(eventually([&] { return contents(*restarted).size() >= acked.size() * 9 / 10; }))
      << "the hints did not reach the restarted node:\n" << cluster.log(0);
  ASSERT_TRUE(eventually([&] {
    for (const std::string& key : attempted) {
      try {
        client->get(key);
      } catch (const Error&) {
        return false;  // the node is still banned somewhere; try again
      }
    }
    const Contents c0 = contents(*first);
    return c0 == contents(*cluster.replica(1)) && c0 == contents(*restarted);
  })) << "replicas still differ after hints and read repair";
  for (const auto& [key, value] : acked) check(key, value);
  const Contents c0 = contents(*first);
  for (const auto& [key, value] : acked) {
    ASSERT_TRUE(c0.contains(key)) << key;
  }
}

// Hints survive a restart of the node that keeps them: they live in its
// `cluster: hints:` LMDB store, and its pusher delivers them once the node
// they are for is back.
TEST_P(ClusterTest, HintsSurviveARestartOfTheirKeeper) {
  LocalCluster cluster(dir_.path(), options());
  auto client = cluster.client();
  EXPECT_EQ(cluster.stop(2, SIGKILL), 128 + SIGKILL);
  std::map<std::string, std::string> written;
  for (int i = 0; i < 30; ++i) {
    const std::string key = absl::StrCat("h", i);
    ASSERT_EQ(client->put(key, testing::versioned(absl::StrCat("v", i), {{1000, 1}})),
              PutResult::kStored);
    written[key] = absl::StrCat("v", i);
  }
  // A smart client hands its hints to a keeper after the write is
  // acknowledged; closing it waits for them, so that the restart below
  // tests the keepers' files and not a hint still on the wire.
  client.reset();
  // The keepers (nodes 0 and 1) restart before node 2 is back: a clean
  // stop, then a start over the same files.
  for (int n : {0, 1}) {
    EXPECT_EQ(cluster.stop(n, SIGTERM), 0);
    cluster.start(n);
  }
  cluster.start(2);
  auto restarted = cluster.replica(2);
  EXPECT_TRUE(eventually([&] {
    const Contents c = contents(*restarted);
    for (const auto& [key, value] : written) {
      auto it = c.find(key);
      if (it == c.end() || it->second.size() != 1 || !it->second[0].starts_with(value + "@")) {
        return false;
      }
    }
    return true;
  })) << "node 2 did not get the writes it missed:\n" << cluster.log(0) << cluster.log(1);
}

// Scenario 3: with two of three nodes down, writes fail with
// InsufficientReplicas and none is reported stored; reads with R=1 still
// answer.
TEST_P(ClusterTest, KillTwoNodesWritesFailReadsWithROneAnswer) {
  ClusterOptions o = options();
  o.more_stores = {{"r1", Replication{3, 1, 2}}};
  o.timeout_ms = 1000;
  LocalCluster cluster(dir_.path(), o);
  auto client = cluster.client();
  auto r1 = cluster.client("r1");
  for (int i = 0; i < 20; ++i) {
    const std::string key = absl::StrCat("k", i);
    ASSERT_EQ(client->put(key, testing::versioned("before", {{1000, 1}})), PutResult::kStored);
    ASSERT_EQ(r1->put(key, testing::versioned("before", {{1000, 1}})), PutResult::kStored);
  }
  // The third replica of the last write may land after its put returned.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(cluster.stop(1, SIGKILL), 128 + SIGKILL);
  EXPECT_EQ(cluster.stop(2, SIGKILL), 128 + SIGKILL);
  // Reads with R=1 answer. (Through a load-balanced entry point, a read
  // that hits a dead node's connection is retried on the live one, and the
  // balancer learns which nodes are gone.)
  for (int i = 0; i < 20; ++i) {
    const std::string key = absl::StrCat("k", i);
    const auto got = r1->get(key);
    ASSERT_EQ(got.size(), 1u) << key;
    EXPECT_EQ(got[0].value, "before");
  }
  for (int i = 0; i < 20; ++i) {
    const std::string key = absl::StrCat("k", i);
    try {
      const PutResult r = client->put(key, testing::versioned("after", {{1000, 2}}));
      ADD_FAILURE() << "a put with one node of three reported " << to_string(r);
    } catch (const InsufficientReplicas& e) {
      // The first writes find the dead nodes dead; later ones find them
      // banned and do not start.
      const std::string m = e.what();
      EXPECT_TRUE(m.find("of the 2 replicas required answered") != std::string::npos ||
                  m.find("of its replicas are up, and 2 must take a write") != std::string::npos)
          << m;
    } catch (const Error& e) {
      ADD_FAILURE() << "expected InsufficientReplicas, got " << to_string(e.code()) << ": " << e.what();
    }
    EXPECT_THROW(client->get(key), InsufficientReplicas) << "R=2 with one node";
  }
}

// Many concurrent writes through nodes with one engine thread and two
// routing threads: a node's routed calls wait on replica calls to the
// other nodes, which must not queue behind those waiting calls (they have
// pools of their own), or every write would time out.
TEST_P(ClusterTest, ConcurrentWritesNeedFewThreads) {
  ClusterOptions o = options();
  o.server_args = {"--workers", "1", "--route-threads", "2"};
  LocalCluster cluster(dir_.path(), o);
  std::atomic<int> stored{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < 12; ++t) {
    writers.emplace_back([&, t] {
      auto client = cluster.client();
      for (int i = 0; i < 25; ++i) {
        const std::string key = absl::StrCat("t", t, "-", i);
        try {
          if (client->put(key, testing::versioned("v", {{1000, 1}})) == PutResult::kStored) ++stored;
        } catch (const Error& e) {
          ADD_FAILURE() << key << ": " << e.what();
        }
      }
    });
  }
  for (std::thread& w : writers) w.join();
  EXPECT_EQ(stored.load(), 12 * 25);
}

// A read asks R replicas, not N: home first, the others only when one fails
// or is slow (a hedge after read_hedge_ms), or for the sampled fraction
// (read_repair_chance, 0.1) that keeps read repair working. Counted from
// outside, at the nodes' own stats layers, below their routing.
TEST_P(ClusterTest, AReadReachesAboutRReplicas) {
  ClusterOptions o = options();
  o.node_layers = {"stats"};
  LocalCluster cluster(dir_.path(), o);
  auto client = cluster.client();
  constexpr int kKeys = 300;
  for (int i = 0; i < kKeys; ++i) {
    ASSERT_EQ(client->put(absl::StrCat("k", i), versioned("v", {{1000, 1}})), PutResult::kStored);
  }
  uint64_t before = 0;
  for (int n = 0; n < 3; ++n) before += served(cluster.address(n), "get");
  for (int i = 0; i < kKeys; ++i) ASSERT_EQ(value_of(*client, absl::StrCat("k", i)), "v");
  uint64_t after = 0;
  for (int n = 0; n < 3; ++n) after += served(cluster.address(n), "get");
  const double per_read = static_cast<double>(after - before) / kKeys;
  // R = 2 at least; the sample adds about 0.1 (one more replica for one
  // read in ten) and hedges a little more: 1.2 R is the bound.
  EXPECT_GE(per_read, 2.0);
  EXPECT_LE(per_read, 2.4);
  RecordProperty("replicas_per_read", absl::StrCat(per_read));
  std::cout << "replicas reached per read (R=2, N=3): " << per_read << "\n";
}

// A Stream's requests to a store the node routes start on gRPC's thread and
// are answered from the routing layer's callbacks, many at once, yet the
// requests on one key apply in the order sent (each waits for the stream's
// earlier ones on its keys). In one batch, for each key: a put, a put that
// succeeds it, and a get: the second put is never obsolete (it would be,
// had it overtaken the first) and the get sees it. One routing thread
// (--route-threads 1): the stream needs none.
TEST(ClusterStreamTest, RoutedRequestsOfAStreamKeepTheirOrderPerKey) {
  TempDir dir;
  ClusterOptions o;
  o.deployment = Deployment::kServerRouted;
  o.server_args = {"--route-threads", "1"};
  LocalCluster cluster(dir.path(), o);
  auto stub = rpc::Store::NewStub(
      grpc::CreateChannel(cluster.address(0), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto stream = stub->Stream(&ctx);
  constexpr int kKeys = 100;
  rpc::StreamRequests batch;
  uint64_t next_id = 0;
  auto put = [&](const std::string& key, const std::string& value, uint64_t counter) {
    rpc::StreamRequest* req = batch.add_requests();
    req->set_id(next_id++);
    rpc::PutRequest* p = req->mutable_put();
    p->set_store("default");
    p->set_key(key);
    p->mutable_version()->set_value(value);
    rpc::ClockEntry* e = p->mutable_version()->mutable_clock()->add_entries();
    e->set_node(1);
    e->set_counter(counter);
  };
  for (int i = 0; i < kKeys; ++i) {
    const std::string key = absl::StrCat("k", i);
    put(key, "first", 1);
    put(key, "second", 2);
    rpc::StreamRequest* get = batch.add_requests();
    get->set_id(next_id++);
    get->mutable_get()->set_store("default");
    get->mutable_get()->set_key(key);
  }
  rpc::StreamRequest* all = batch.add_requests();
  all->set_id(next_id++);
  all->mutable_get_all()->set_store("default");
  for (int i = 0; i < kKeys; ++i) all->mutable_get_all()->add_keys(absl::StrCat("k", i));
  ASSERT_TRUE(stream->Write(batch));
  stream->WritesDone();
  std::map<uint64_t, rpc::StreamResponse> responses;
  rpc::StreamResponses got;
  while (stream->Read(&got)) {
    for (const rpc::StreamResponse& r : got.responses()) {
      EXPECT_TRUE(responses.emplace(r.id(), r).second) << "answered twice: " << r.id();
    }
  }
  const grpc::Status st = stream->Finish();
  ASSERT_TRUE(st.ok()) << st.error_message();
  ASSERT_EQ(responses.size(), next_id);
  for (int i = 0; i < kKeys; ++i) {
    const uint64_t first = 3 * static_cast<uint64_t>(i);
    for (uint64_t id : {first, first + 1}) {
      const rpc::StreamResponse& r = responses[id];
      ASSERT_TRUE(r.has_put()) << "k" << i << ": " << r.error().message();
      EXPECT_FALSE(r.put().obsolete()) << "k" << i << ": put " << id - first + 1
                                       << " overtaken by a later one";
    }
    const rpc::StreamResponse& g = responses[first + 2];
    ASSERT_TRUE(g.has_get()) << "k" << i << ": " << g.error().message();
    ASSERT_EQ(g.get().versions_size(), 1) << "k" << i;
    EXPECT_EQ(g.get().versions(0).value(), "second") << "k" << i;
  }
  const rpc::StreamResponse& a = responses[next_id - 1];
  ASSERT_TRUE(a.has_get_all()) << a.error().message();
  ASSERT_EQ(a.get_all().found_size(), kKeys);
  for (const rpc::KeyVersions& kv : a.get_all().found()) {
    ASSERT_EQ(kv.versions_size(), 1) << kv.key();
    EXPECT_EQ(kv.versions(0).value(), "second") << kv.key();
  }
}

// A Jepsen-style history under a kill -9 nemesis: writers that each write
// keys no one else writes, while one node at a time is killed with SIGKILL
// and restarted. Afterwards every acknowledged key is read through every
// node (each node coordinates the read when the cluster routes on its
// nodes; the smart client routes itself): each must come back with the
// value written, nothing lost. Bounded: 5 kill cycles, 600 keys a writer.
//
// And each comes back as one version: when a home fails after it may have
// applied a write, the next home stamps it too, and the two copies, which
// share the write's id, are one version wherever they meet.
TEST_P(ClusterTest, UniqueKeyWritersUnderAKillNemesisLoseNothing) {
  ClusterOptions o = options();
  o.timeout_ms = 2000;
  LocalCluster cluster(dir_.path(), o);
  constexpr int kWriters = 4;
  constexpr int kKeysPerWriter = 600;
  constexpr int kCycles = 5;
  std::atomic<bool> nemesis_done{false};
  std::vector<std::vector<std::string>> acked(kWriters);
  std::atomic<int> failed{0};
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      auto client = cluster.client();
      for (int i = 0; i < kKeysPerWriter; ++i) {
        const std::string key = absl::StrCat("w", t, "-", i);
        try {
          if (client->put(key, versioned("v-" + key, {{static_cast<NodeId>(1000 + t), 1}})) ==
              PutResult::kStored) {
            acked[static_cast<size_t>(t)].push_back(key);
          } else {
            ADD_FAILURE() << key << ": obsolete, though no one else writes it";
          }
        } catch (const Error& e) {
          // Around a kill a write may fail; it may still have landed.
          ++failed;
        }
        // Spread the writes over the nemesis's cycles.
        if (!nemesis_done) std::this_thread::sleep_for(std::chrono::milliseconds(8));
      }
    });
  }
  std::thread nemesis(kill_nemesis, std::ref(cluster), kCycles, std::chrono::milliseconds(700),
                      &nemesis_done);
  nemesis.join();
  for (std::thread& w : writers) w.join();
  size_t total = 0;
  for (const auto& keys : acked) total += keys.size();
  EXPECT_GT(total, static_cast<size_t>(kWriters * kKeysPerWriter / 2))
      << "most writes should succeed with one node of three down at a time";

  // Read every acknowledged key through every node.
  size_t split = 0;
  for (int n = 0; n < cluster.size(); ++n) {
    std::unique_ptr<Store> through;
    if (GetParam() == Deployment::kServerRouted) {
      GrpcOptions g;
      g.store = "default";
      g.targets = {cluster.address(n)};
      g.timeout = std::chrono::seconds(10);
      through = std::make_unique<GrpcStore>(std::move(g));
    } else {
      through = cluster.client();
    }
    for (const auto& keys : acked) {
      for (const std::string& key : keys) {
        const std::optional<std::vector<Versioned>> answer = get_when_up(*through, key);
        ASSERT_TRUE(answer) << key;
        const std::vector<Versioned>& got = *answer;
        ASSERT_FALSE(got.empty()) << key << " acknowledged, and lost (read through node " << n << ")";
        for (const Versioned& v : got) {
          EXPECT_EQ(v.value, "v-" + key) << key << " at " << v.clock.to_string();
        }
        if (got.size() > 1) {
          ++split;
          ADD_FAILURE() << key << " written once, read through node " << n << " as " << got.size()
                        << " versions";
        }
      }
    }
  }
  std::cout << total << " keys acknowledged, " << failed.load() << " writes failed; " << split
            << " reads of a key written once returned more than one version\n";
  RecordProperty("acknowledged", static_cast<int>(total));
  RecordProperty("split_writes", static_cast<int>(split));
}

// Writers sharing keys under the kill -9 nemesis: three clients, each with
// its own writer id, read each key's versions, write a successor of all
// of them, and remember the clock each acknowledged write was stored
// under. Afterwards every acknowledged write is present or superseded by
// a write whose writer read it (a final version's clock is at or after
// its clock), and each key holds no more siblings than writers that could
// have written it unseen: the three, and any write of it that failed
// (it may have landed). Bounded: 5 kill cycles, 300 writes a writer.
TEST_P(ClusterTest, SharedKeyWritersUnderAKillNemesisKeepEveryWrite) {
  ClusterOptions o = options();
  o.timeout_ms = 2000;
  LocalCluster cluster(dir_.path(), o);
  constexpr int kWriters = 3;
  constexpr int kKeys = 10;
  constexpr int kWrites = 300;
  constexpr int kCycles = 5;
  std::atomic<bool> nemesis_done{false};
  std::mutex mu;
  std::map<std::string, std::vector<VectorClock>> acked;  // guarded by mu
  std::map<std::string, int> unknown;                     // failed writes; guarded by mu
  std::atomic<size_t> most_seen{0};  // the most versions a writer's read met
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&, t] {
      auto client = cluster.client();
      const NodeId me = static_cast<NodeId>(2000 + t);
      for (int i = 0; i < kWrites; ++i) {
        const std::string key = absl::StrCat("hot", (i + t) % kKeys);
        try {
          VectorClock c;
          const std::vector<VectorClock> seen = client->versions(key);
          for (const VectorClock& v : seen) c = c.merged(v);
          size_t before = most_seen.load();
          while (seen.size() > before && !most_seen.compare_exchange_weak(before, seen.size())) {
          }
          c.increment(me, now_ms());
          VectorClock stored;
          const PutResult r = client->put(key, Versioned{absl::StrCat(me, "-", i), c}, &stored);
          if (r == PutResult::kStored) {
            std::lock_guard lock(mu);
            acked[key].push_back(stored);
          }
        } catch (const Error&) {
          std::lock_guard lock(mu);
          ++unknown[key];  // a failed write may still have landed
        }
        if (!nemesis_done) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
  }
  std::thread nemesis(kill_nemesis, std::ref(cluster), kCycles, std::chrono::milliseconds(600),
                      &nemesis_done);
  nemesis.join();
  for (std::thread& w : writers) w.join();

  auto client = cluster.client();
  size_t most = 0, total_acked = 0;
  for (int k = 0; k < kKeys; ++k) {
    const std::string key = absl::StrCat("hot", k);
    const std::optional<std::vector<Versioned>> answer = get_when_up(*client, key);
    ASSERT_TRUE(answer) << key;
    const std::vector<Versioned>& final_versions = *answer;
    ASSERT_FALSE(final_versions.empty()) << key;
    most = std::max(most, final_versions.size());
    EXPECT_LE(final_versions.size(), static_cast<size_t>(kWriters + unknown[key]))
        << key << ": more siblings than writers that could have written it unseen";
    total_acked += acked[key].size();
    for (const VectorClock& clock : acked[key]) {
      bool kept = false;
      for (const Versioned& v : final_versions) {
        const Occurred rel = compare(clock, v.clock);
        kept |= rel == Occurred::kBefore || rel == Occurred::kEqual;
      }
      EXPECT_TRUE(kept) << key << ": acknowledged write at " << clock.to_string() << " was lost";
    }
  }
  EXPECT_GT(total_acked, static_cast<size_t>(kWriters * kWrites / 2));
  int failed = 0;
  for (const auto& [key, n] : unknown) failed += n;
  EXPECT_LE(most_seen.load(), static_cast<size_t>(kWriters + failed))
      << "a read met more siblings than writers that could have written unseen";
  std::cout << total_acked << " writes acknowledged on " << kKeys << " shared keys, " << failed
            << " failed; at most " << most_seen.load() << " siblings met by a read, " << most
            << " at the end\n";
  RecordProperty("most_siblings", static_cast<int>(most));
}

// Scenario 4: two clients write one key concurrently. Each acknowledged
// write survives as a version or is superseded by one that does: siblings
// or a dominating version, never a silent loss.
TEST_P(ClusterTest, ConcurrentWritersOnOneKeyNeverLoseAWrite) {
  LocalCluster cluster(dir_.path(), options());
  auto a = cluster.client();
  auto b = cluster.client();
  std::vector<std::vector<VectorClock>> acked(2);
  auto writer = [&](Store* s, NodeId id, std::vector<VectorClock>* out) {
    for (int i = 0; i < 150; ++i) {
      VectorClock c;
      for (const VectorClock& seen : s->versions("hot")) c = c.merged(seen);
      c.increment(id, now_ms());
      VectorClock stored;
      if (s->put("hot", Versioned{absl::StrCat(id, "-", i), c}, &stored) ==
          PutResult::kStored) {
        out->push_back(stored);
      }
    }
  };
  std::thread ta(writer, a.get(), 1001, &acked[0]), tb(writer, b.get(), 1002, &acked[1]);
  ta.join();
  tb.join();
  const auto final_versions = a->get("hot");
  ASSERT_FALSE(final_versions.empty());
  for (const auto& list : acked) {
    ASSERT_FALSE(list.empty());
    for (const VectorClock& clock : list) {
      bool kept = false;
      for (const Versioned& v : final_versions) {
        const Occurred o = compare(clock, v.clock);
        kept |= o == Occurred::kBefore || o == Occurred::kEqual;
      }
      EXPECT_TRUE(kept) << "acknowledged write " << clock.to_string() << " was lost";
    }
  }
}

// Scenario 5: five nodes, N=3: every key is on exactly the three nodes the
// ring names, and on no other.
TEST_P(ClusterTest, KeysLandWhereTheRingSays) {
  LocalCluster cluster(dir_.path(), options(5));
  auto client = cluster.client();
  std::set<std::string> keys;
  for (int i = 0; i < 200; ++i) {
    keys.insert(absl::StrCat("user:", i));
    ASSERT_EQ(client->put(absl::StrCat("user:", i), testing::versioned("x", {{1000, 1}})),
              PutResult::kStored);
  }
  const Ring ring(cluster.config().cluster());
  std::map<std::string, std::set<NodeId>> expected;
  for (const std::string& k : keys) {
    for (NodeId n : ring.preference_list(k, 3)) expected[k].insert(n);
  }
  EXPECT_TRUE(eventually([&] {
    std::map<std::string, std::set<NodeId>> where;
    for (int n = 0; n < 5; ++n) {
      for (const auto& [key, versions] : contents(*cluster.replica(n))) {
        where[key].insert(static_cast<NodeId>(n));
      }
    }
    return where == expected;
  })) << "keys are not where the ring puts them";
}

INSTANTIATE_TEST_SUITE_P(Deployments, ClusterTest,
                         ::testing::Values(Deployment::kSmartClient, Deployment::kServerRouted),
                         [](const auto& p) { return std::string(to_string(p.param)); });

// The `cluster:` section of `info`, for a client config of a test's own.
std::string cluster_section(const ClusterInfo& info) {
  std::string yaml = absl::StrCat("cluster:\n  partitions: ", info.partitions, "\n  nodes:\n");
  for (const NodeInfo& n : info.nodes) {
    absl::StrAppend(&yaml, "    - {id: ", n.id, ", address: ", n.address, "}\n");
  }
  return yaml;
}

// The first `n` of keys k0, k1, ... whose home (the first of 3 replicas)
// is node `home`, or (`homed_there` false) is not.
std::vector<std::string> keys_homed(const Ring& ring, NodeId home, bool homed_there, size_t n) {
  std::vector<std::string> keys;
  for (int i = 0; keys.size() < n; ++i) {
    const std::string key = absl::StrCat("k", i);
    if ((ring.preference_list(key, 3).front() == home) == homed_there) keys.push_back(key);
  }
  return keys;
}

// Layers between a smart client's `route` and its `grpc` engines keep the
// fan-out non-blocking: with one node made slow by the faults layer in its
// copy of the stack, reads and writes answer from the two fast replicas.
// Before the layers had non-blocking calls, each call to the slow node
// held up the calls after it.
TEST(ClusterLayersTest, ALayerBetweenRouteAndGrpcLeavesTheFanOutNonBlocking) {
  TempDir dir;
  ClusterOptions o;
  o.timeout_ms = 20000;
  LocalCluster cluster(dir.path(), o);
  constexpr NodeId kSlow = 2;
  constexpr int kDelayMs = 4000;
  const ClusterInfo info = cluster.config().cluster();
  std::string yaml = cluster_section(info);
  absl::StrAppend(&yaml,
                  "stores:\n  default:\n    replication: {n: 3, r: 2, w: 2}\n    client:\n"
                  "      - route: {timeout_ms: 20000}\n"
                  "      - compress: {codec: zstd, min_size: 0}\n"
                  "      - stats\n"
                  "      - faults: {delay_ms: ", kDelayMs, ", nodes: [", kSlow, "]}\n"
                  "      - engine: {grpc: {timeout_ms: 30000, retries: 0}}\n");
  std::unique_ptr<Store> client = Config::parse(yaml, "slow-node.yaml").open("default");
  auto* routed = dynamic_cast<RoutedStore*>(client.get());
  ASSERT_NE(routed, nullptr);
  auto stats = [&](NodeId n) { return find_layer<StatsStore>(*routed->replica(n))->snapshot(); };

  // Keys whose home is a fast node (a write goes to its home first, and a
  // slow home is slow whatever the layers do).
  const std::vector<std::string> keys = keys_homed(Ring(info), kSlow, false, 20);
  for (const std::string& key : keys) {
    ASSERT_EQ(client->put(key, versioned("v-" + key, {{1000, 1}})), PutResult::kStored);
    ASSERT_EQ(value_of(*client, key), "v-" + key);
  }
  // Every answer came from the fast nodes while each call to the slow one
  // was still waiting out its delay: it has answered nothing yet. (Its
  // stats layer sits above the faults layer, and counts a call when it
  // answers.)
  for (NodeId n : {NodeId{0}, NodeId{1}}) {
    EXPECT_EQ(stats(n)[StatsStore::Op::kPut].count, keys.size()) << "node " << n;
  }
  EXPECT_EQ(stats(kSlow)[StatsStore::Op::kPut].count, 0u) << "a write waited for the slow node";
  EXPECT_EQ(stats(kSlow)[StatsStore::Op::kGet].count, 0u) << "a read waited for the slow node";
  // The slow node still took every write, once its delay was over.
  EXPECT_TRUE(eventually([&] { return stats(kSlow)[StatsStore::Op::kPut].count == keys.size(); }));
  client->close();
  const Contents slow = contents(*cluster.replica(static_cast<int>(kSlow)));
  EXPECT_EQ(slow.size(), keys.size());
}


// A home that applies a write and loses its answer (faults after the call,
// in the client's copy of the stack that reaches node 0): the client takes
// the next node for home, which stamps the write too. The two copies share
// the write's id: every read returns one version, and no replica holds two.
// (Before write ids, 7 keys of 10 read back as two siblings of one value.)
TEST(ClusterLayersTest, AHomeThatLosesItsAnswerLeavesOneVersion) {
  TempDir dir;
  ClusterOptions o;
  LocalCluster cluster(dir.path(), o);
  const ClusterInfo info = cluster.config().cluster();
  std::string yaml = cluster_section(info);
  absl::StrAppend(&yaml,
                  "stores:\n  default:\n    replication: {n: 3, r: 2, w: 2}\n    client:\n"
                  "      - route: {timeout_ms: 5000, ban_ms: 50, probe_interval_ms: 50}\n"
                  "      - faults: {nodes: [0], ops: put, fail: unavailable, after: true}\n"
                  "      - engine: {grpc: {timeout_ms: 5000, retries: 0}}\n");
  std::unique_ptr<Store> lossy = Config::parse(yaml, "lossy.yaml").open("default");
  const std::vector<std::string> keys = keys_homed(Ring(info), 0, true, 20);
  for (const std::string& key : keys) {
    ASSERT_EQ(lossy->put(key, versioned("v-" + key, {{1000, 1}})), PutResult::kStored) << key;
  }
  lossy->close();
  auto client = cluster.client();
  for (const std::string& key : keys) {
    const std::vector<Versioned> got = client->get(key);
    ASSERT_EQ(got.size(), 1u) << key << ": " << got.size() << " versions of one write";
    EXPECT_EQ(got[0].value, "v-" + key);
  }
  for (int n = 0; n < cluster.size(); ++n) {
    auto replica = cluster.replica(n);
    int held = 0;
    for (const std::string& key : keys) {
      const std::vector<Versioned> versions = replica->get(key);
      EXPECT_LE(versions.size(), 1u) << key << " on node " << n;
      held += versions.empty() ? 0 : 1;
    }
    EXPECT_GT(held, 0) << "node " << n << " took none of the writes";
  }
}

// The write above, split between node 0 and the next home; then a writer
// that read only the next home's copy replaces it while node 0 is out of
// its reach (its stack fails every call to node 0 before sending), so
// that the replacement's home is a node holding that copy. Node 0's copy
// and its clock are concurrent with the replacement's; the replacement
// carries the split write's id, and reaches node 0 by a hint, where it
// takes the copy's place. (Before the ids a version replaced, node 0 kept
// both.)
TEST(ClusterLayersTest, ALateCopyOfAReplacedWriteStaysBelowItsReplacement) {
  TempDir dir;
  ClusterOptions o;
  LocalCluster cluster(dir.path(), o);
  const ClusterInfo info = cluster.config().cluster();
  const auto client_with_faults = [&](const std::string& faults) {
    const std::string yaml = absl::StrCat(
        cluster_section(info),
        "stores:\n  default:\n    replication: {n: 3, r: 2, w: 2}\n    client:\n"
        "      - route: {timeout_ms: 5000, ban_ms: 50, probe_interval_ms: 50}\n"
        "      - faults: {nodes: [0], ", faults, "}\n"
        "      - engine: {grpc: {timeout_ms: 5000, retries: 0}}\n");
    return Config::parse(yaml, "faulty.yaml").open("default");
  };
  const Ring ring(info);
  std::vector<std::string> keys = keys_homed(ring, 0, true, 10);
  std::unique_ptr<Store> lossy = client_with_faults("ops: put, fail: unavailable, after: true");
  for (const std::string& key : keys) {
    ASSERT_EQ(lossy->put(key, versioned("w-" + key, {{1000, 1}})), PutResult::kStored) << key;
    // Past the ban, so that node 0 is the next key's first home again
    // (a write that skipped it is not split).
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  lossy->close();
  std::unique_ptr<Store> cut_off = client_with_faults("fail: unavailable");
  std::vector<std::string> split;
  for (const std::string& key : keys) {
    const NodeId second = ring.preference_list(key, 3).at(1);
    const std::vector<Versioned> read = cluster.replica(static_cast<int>(second))->get(key);
    ASSERT_EQ(read.size(), 1u) << key;
    if (read[0].replaces.empty()) continue;  // node 0 was banned: not tried
    EXPECT_EQ(read[0].replaces, std::vector<uint64_t>{read[0].write_id})
        << key << ": the second home's copy names its own write";
    split.push_back(key);
    const Versioned next{"x-" + key, read[0].clock.incremented(1001, 0)};
    ASSERT_EQ(cut_off->put(key, next), PutResult::kStored) << key;
  }
  cut_off->close();
  ASSERT_GE(split.size(), keys.size() / 2) << "too few writes were split to test";
  keys = split;
  auto node0 = cluster.replica(0);
  for (const std::string& key : keys) {
    ASSERT_TRUE(eventually([&] {
      for (const Versioned& v : node0->get(key)) {
        if (v.value == "x-" + key) return true;
      }
      return false;
    })) << key << ": the replacement never reached node 0";
  }
  auto client = cluster.client();
  size_t two_on_node0 = 0, two_read = 0;
  for (const std::string& key : keys) {
    two_on_node0 += node0->get(key).size() > 1 ? 1 : 0;
    const std::vector<Versioned> got = client->get(key);
    two_read += got.size() > 1 ? 1 : 0;
    for (const Versioned& v : got) EXPECT_EQ(v.value, "x-" + key);
  }
  EXPECT_EQ(two_on_node0, 0u) << "of " << keys.size()
                              << " keys, node 0 kept the late copy beside its replacement";
  EXPECT_EQ(two_read, 0u) << "of " << keys.size() << " keys read back as two siblings";
}

// Strict caches in smart clients, against real nodes: a writer puts
// increasing values while readers with their own caches read, and a node
// is killed (SIGKILL, then restarted) and another stopped (SIGSTOP, then
// continued). No read may return a value older than a put that had
// returned before the read began.
TEST(ClusterCacheTest, StrictCachesNeverReadOlderThanAReturnedPutThroughAKillAndAStop) {
  TempDir dir;
  LocalCluster cluster(dir.path(), ClusterOptions{});
  const ClusterInfo info = cluster.config().cluster();
  std::string yaml = cluster_section(info);
  absl::StrAppend(&yaml,
                  "stores:\n  default:\n    replication: {n: 3, r: 2, w: 2}\n    client:\n"
                  "      - cache: {coherence: strict, lease_ms: 1000}\n"
                  "      - route: {timeout_ms: 3000, ban_ms: 100, probe_interval_ms: 100}\n"
                  "      - engine: {grpc: {timeout_ms: 5000, retries: 0}}\n");
  const Config config = Config::parse(yaml, "cached.yaml");
  std::unique_ptr<Store> writer = config.open("default");
  std::vector<std::unique_ptr<Store>> readers;
  for (int i = 0; i < 2; ++i) readers.push_back(config.open("default"));

  constexpr int kKeys = 16;
  std::vector<std::atomic<int64_t>> acked(kKeys);
  auto key = [](int k) { return absl::StrCat("hot", k); };
  for (int k = 0; k < kKeys; ++k) {
    writer->put(key(k), versioned("0", {{1, 1}}));
    acked[static_cast<size_t>(k)] = 0;
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> writes{0}, reads{0}, violations{0};
  std::mutex mu;
  std::string first_violation;
  std::thread w([&] {
    int64_t n = 0;
    for (int round = 0; !stop.load() && round < 1000000; ++round) {
      const int k = round % kKeys;
      ++n;
      try {
        VectorClock next;
        for (const VectorClock& c : writer->versions(key(k))) next = next.merged(c);
        writer->put(key(k), Versioned{std::to_string(n), next.incremented(1, 1)});
        acked[static_cast<size_t>(k)].store(n);
        ++writes;
      } catch (const Error&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
  });
  std::vector<std::thread> rs;
  for (auto& reader : readers) {
    rs.emplace_back([&, r = reader.get()] {
      for (int64_t i = 0; !stop.load() && i < int64_t{1} << 40; ++i) {
        const int k = i % kKeys;
        const int64_t before = acked[static_cast<size_t>(k)].load();
        try {
          int64_t newest = -1;
          for (const Versioned& v : r->get(key(k))) newest = std::max<int64_t>(newest, std::stoll(v.value));
          ++reads;
          if (newest < before) {
            ++violations;
            std::lock_guard lock(mu);
            if (first_violation.empty()) {
              first_violation = absl::StrCat(key(k), " read ", newest, " after a put of ", before,
                                             " had returned");
            }
          }
        } catch (const Error&) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
      }
    });
  }
  auto run_for = [](int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); };
  run_for(1500);
  cluster.stop(1, SIGKILL);
  run_for(2500);
  cluster.start(1);
  run_for(2500);
  ASSERT_EQ(::kill(cluster.pid(2), SIGSTOP), 0);
  run_for(3000);
  ASSERT_EQ(::kill(cluster.pid(2), SIGCONT), 0);
  run_for(2500);
  stop = true;
  w.join();
  for (auto& t : rs) t.join();

  EXPECT_EQ(violations.load(), 0) << first_violation;
  EXPECT_GT(writes.load(), 100);
  EXPECT_GT(reads.load(), 1000);
  for (auto& reader : readers) {
    const CacheStats st = find_layer<CacheStore>(*reader)->stats();
    std::cout << "reader cache:\n" << find_layer<CacheStore>(*reader)->report();
    EXPECT_GT(st.hits, 0u);
    EXPECT_GT(st.invalidations, 0u);
    EXPECT_GE(st.flushes, 2u);  // the kill and the stop
  }
}

}  // namespace
}  // namespace cairn::testing

// The network layer beyond the conformance suite: errors crossing the wire,
// limits, the callback path, the Stream RPC, round-robin over several
// servers with one killed, a graceful stop under load, and TLS.

#include <signal.h>

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <future>
#include <mutex>
#include <thread>

#include <absl/strings/str_cat.h>

#include "cairn/errors.h"
#include "cairn/memory_store.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/grpc_store.h"
#include "server/grpc_server.h"
#include "layers/grpc/wire.h"
#include "tests/testing/server_process.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

// An in-process server over loopback TCP, serving memory stores.
class InProcess {
 public:
  explicit InProcess(ServerOptions o = {}, std::vector<std::string> stores = {"s"}) {
    std::map<std::string, ServedStore> served;
    for (const std::string& name : stores) {
      MemoryOptions m;
      m.name = name;
      served[name] = {std::make_shared<MemoryStore>(m), nullptr, nullptr};
    }
    server_ = std::make_unique<StoreServer>(o, std::move(served));
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", server_->port()); }
  StoreServer& server() { return *server_; }

  std::unique_ptr<GrpcStore> client(const std::string& store = "s") const {
    GrpcOptions o;
    o.store = store;
    o.targets = {address()};
    return std::make_unique<GrpcStore>(o);
  }

 private:
  std::unique_ptr<StoreServer> server_;
};

TEST(GrpcTest, ErrorsSurfaceAsTheSameType) {
  InProcess server;
  auto c = server.client();
  EXPECT_THROW(c->get(std::string(600, 'k')), InvalidArgument) << "the engine's limit, from afar";
  EXPECT_THROW(c->put("", versioned("v", {{1, 1}})), InvalidArgument);
  try {
    server.client("nope")->get("k");
    FAIL();
  } catch (const NotFound& e) {
    EXPECT_NE(std::string(e.what()).find("no store 'nope' on this server (it serves: s)"),
              std::string::npos)
        << e.what();
  }
  c->close();
  EXPECT_THROW(c->get("k"), FailedPrecondition);
}

TEST(GrpcTest, AnUnreachableServerIsUnavailableAfterRetries) {
  GrpcOptions o;
  o.targets = {"127.0.0.1:1"};  // nothing listens there
  o.retries = 2;
  o.backoff = std::chrono::milliseconds(10);
  GrpcStore c(o);
  const auto start = std::chrono::steady_clock::now();
  EXPECT_THROW(c.get("k"), Unavailable);
  EXPECT_THROW(c.put("k", versioned("v", {{1, 1}})), Unavailable) << "writes are not retried";
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(10));
}

TEST(GrpcTest, MessagesOverTheLimitAreInvalidArgument) {
  ServerOptions so;
  so.max_message_size = 1 << 20;
  InProcess server(so);
  auto c = server.client();
  EXPECT_THROW(c->put("big", Versioned{std::string(2 << 20, 'x'), clock({{1, 1}})}),
               InvalidArgument);
  EXPECT_TRUE(c->get("big").empty()) << "nothing was stored";
  EXPECT_EQ(c->put("ok", Versioned{std::string(512 << 10, 'x'), clock({{1, 1}})}), PutResult::kStored);
}

TEST(GrpcTest, ScanStreamsEveryKey) {
  InProcess server;
  auto c = server.client();
  for (int i = 0; i < 2000; ++i) c->put(absl::StrCat("k", i), versioned("v", {{1, 1}}));
  size_t n = 0;
  auto it = c->scan();
  while (it->next()) {
    ++n;
    EXPECT_EQ(it->versions().size(), 1u);
  }
  EXPECT_EQ(n, 2000u);
  auto early = c->scan();
  ASSERT_TRUE(early->next());
  early.reset();  // abandoning a scan cancels the server's stream
  EXPECT_EQ(c->get("k1").size(), 1u);
}

TEST(GrpcTest, CallbackCallsFanOutWithoutAThreadEach) {
  InProcess server;
  auto c = server.client();
  constexpr int kCalls = 500;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, failures = 0;
  auto finished = [&](bool ok) {
    std::lock_guard lock(mu);
    if (!ok) ++failures;
    if (++done == kCalls) cv.notify_all();
  };
  for (int i = 0; i < kCalls; ++i) {
    c->async_put(absl::StrCat("k", i), versioned(absl::StrCat("v", i), {{1, 1}}),
                 [&](PutReply r, std::exception_ptr e) {
                   finished(!e && r.result == PutResult::kStored && r.stored.counter(1) == 1);
                 });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done == kCalls; });
  }
  EXPECT_EQ(failures, 0);
  done = 0;
  std::atomic<int> right{0};
  for (int i = 0; i < kCalls; ++i) {
    c->async_get(absl::StrCat("k", i), [&, i](std::vector<Versioned> v, std::exception_ptr e) {
      if (!e && v.size() == 1 && v[0].value == absl::StrCat("v", i)) ++right;
      finished(!e);
    });
  }
  {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return done == kCalls; });
  }
  EXPECT_EQ(right.load(), kCalls);
  // Errors arrive as exceptions of the same types.
  std::exception_ptr error;
  std::atomic<bool> got{false};
  c->async_get("", [&](std::vector<Versioned>, std::exception_ptr e) {
    error = e;
    got = true;
  });
  c.reset();  // waits for the call in flight
  ASSERT_TRUE(got.load());
  EXPECT_THROW(std::rethrow_exception(error), InvalidArgument);
}

// A store may be dropped by the callback of its own call, on a gRPC thread
// (a routing layer's last call ending after its store closed does just
// that). Were its destructor to wait there for its stream to end, gRPC's
// few callback threads would soon all be waiting, and nothing in the
// process would be answered again.
TEST(GrpcTest, StoresDroppedInTheirOwnCallbacksStopNothing) {
  InProcess server;
  constexpr int kStores = 16;
  std::mutex mu;
  std::condition_variable cv;
  int dropped = 0, answered = 0;
  std::vector<std::shared_ptr<std::shared_ptr<GrpcStore>>> holders;
  for (int i = 0; i < kStores; ++i) {
    auto store = std::make_shared<std::shared_ptr<GrpcStore>>(server.client());
    (*store)->put(absl::StrCat("k", i), versioned("v", {{1, 1}}));
    holders.push_back(store);
  }
  // Every store's stream up first, so that each drop has one to end.
  for (auto& h : holders) {
    (*h)->async_get("k", [&](std::vector<Versioned>, std::exception_ptr) {
      std::lock_guard lock(mu);
      ++answered;
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return answered == kStores; }));
  }
  for (int i = 0; i < kStores; ++i) {
    std::shared_ptr<std::shared_ptr<GrpcStore>> h = std::move(holders[i]);
    GrpcStore* raw = h->get();
    raw->async_get(absl::StrCat("k", i), [&, h](std::vector<Versioned> v, std::exception_ptr e) {
      EXPECT_FALSE(e);
      EXPECT_EQ(v.size(), 1u);
      h->reset();  // the last reference: the store goes here, on a gRPC thread
      std::lock_guard lock(mu);
      ++dropped;
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return dropped == kStores; }))
        << dropped << " of " << kStores << " callbacks returned";
  }
  // And the process's gRPC threads still answer a fresh client.
  GrpcOptions o;
  o.store = "s";
  o.targets = {server.address()};
  o.timeout = std::chrono::milliseconds(5000);
  GrpcStore fresh(o);
  std::promise<size_t> got;
  fresh.async_get("k0", [&](std::vector<Versioned> v, std::exception_ptr e) {
    got.set_value(e ? 0 : v.size());
  });
  std::future<size_t> f = got.get_future();
  ASSERT_EQ(f.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  EXPECT_EQ(f.get(), 1u);
}

// With retry_writes a put carries a write id, the same on every attempt:
// an attempt that landed and a retry of it are one write wherever they
// meet (docs/clusters.md). Without retries, none is added.
TEST(GrpcTest, RetriedWritesCarryOneWriteId) {
  InProcess server;
  GrpcOptions o;
  o.store = "s";
  o.targets = {server.address()};
  o.retry_writes = true;
  GrpcStore retrying(o);
  ASSERT_EQ(retrying.put("r", versioned("v", {{1, 1}})), PutResult::kStored);
  const std::vector<Versioned> got = retrying.get("r");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_NE(got[0].write_id, 0u);
  // The same write again (what a retry sends): stored once, answered stored.
  Versioned again = versioned("v", {{1, 1}});
  again.write_id = got[0].write_id;
  VectorClock stored;
  EXPECT_EQ(retrying.put("r", again, &stored), PutResult::kStored);
  EXPECT_EQ(stored, got[0].clock);
  EXPECT_EQ(retrying.get("r").size(), 1u);
  auto plain = server.client();
  ASSERT_EQ(plain->put("p", versioned("v", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(plain->get("p").at(0).write_id, 0u);
}

// Closed from the callback of its own call, on a gRPC thread: close()
// must not wait there for the stream to end either.
TEST(GrpcTest, StoresClosedInTheirOwnCallbacksStopNothing) {
  InProcess server;
  constexpr int kStores = 16;
  std::vector<std::unique_ptr<GrpcStore>> stores;
  for (int i = 0; i < kStores; ++i) {
    stores.push_back(server.client());
    stores.back()->put(absl::StrCat("k", i), versioned("v", {{1, 1}}));
  }
  std::mutex mu;
  std::condition_variable cv;
  int closed = 0;
  for (int i = 0; i < kStores; ++i) {
    GrpcStore* raw = stores[static_cast<size_t>(i)].get();
    raw->async_get(absl::StrCat("k", i), [&, raw](std::vector<Versioned>, std::exception_ptr) {
      raw->close();
      std::lock_guard lock(mu);
      ++closed;
      cv.notify_all();
    });
  }
  {
    std::unique_lock lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(30), [&] { return closed == kStores; }))
        << closed << " of " << kStores << " callbacks returned";
  }
  for (auto& s : stores) EXPECT_THROW(s->get("k0"), FailedPrecondition) << "closed";
  stores.clear();
  auto fresh = server.client();
  EXPECT_EQ(fresh->get("k0").size(), 1u) << "gRPC's threads still answer";
}

TEST(GrpcTest, StreamPipelinesTaggedRequests) {
  InProcess server;
  auto channel = grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials());
  auto stub = rpc::Store::NewStub(channel);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  auto stream = stub->Stream(&ctx);
  constexpr int kRequests = 1000;
  // In batches of 1, 2, 3, ... requests.
  rpc::StreamRequests batch;
  for (int i = 0, size = 1; i < kRequests; ++i) {
    rpc::StreamRequest* req = batch.add_requests();
    req->set_id(static_cast<uint64_t>(i));
    if (i % 2 == 0) {
      rpc::PutRequest* put = req->mutable_put();
      put->set_store(i % 10 == 0 ? "missing" : "s");
      put->set_key(absl::StrCat("k", i));
      put->mutable_version()->set_value("v");
      put->mutable_version()->mutable_clock()->add_entries()->set_counter(1);
    } else {
      req->mutable_get()->set_store("s");
      req->mutable_get()->set_key(absl::StrCat("k", i - 1));
    }
    if (batch.requests_size() == size || i == kRequests - 1) {
      ASSERT_TRUE(stream->Write(batch, grpc::WriteOptions().set_buffer_hint()));
      batch.Clear();
      ++size;
    }
  }
  stream->WritesDone();
  std::vector<bool> answered(kRequests, false);
  int errors = 0;
  rpc::StreamResponses resps;
  while (stream->Read(&resps)) {
    for (const rpc::StreamResponse& resp : resps.responses()) {
      ASSERT_LT(resp.id(), static_cast<uint64_t>(kRequests));
      EXPECT_FALSE(answered[resp.id()]) << "answered twice";
      answered[resp.id()] = true;
      if (resp.has_error()) {
        ++errors;
        EXPECT_EQ(resp.error().code(), rpc::NOT_FOUND);
        EXPECT_EQ(resp.id() % 10, 0u) << "only the puts to the missing store fail";
      }
    }
  }
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_EQ(std::count(answered.begin(), answered.end(), true), kRequests);
  EXPECT_EQ(errors, kRequests / 10);
}

TEST(GrpcTest, ShutdownWithIdleClientsIsPrompt) {
  InProcess server;
  auto c = server.client();
  c->put("k", versioned("v", {{1, 1}}));
  // An open Stream with nothing in flight, as a pipelining client keeps.
  auto stub = rpc::Store::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  auto stream = stub->Stream(&ctx);
  rpc::StreamRequests batch;
  batch.add_requests()->mutable_get()->set_store("s");
  ASSERT_TRUE(stream->Write(batch));
  rpc::StreamResponses answered;
  ASSERT_TRUE(stream->Read(&answered));
  const auto start = std::chrono::steady_clock::now();
  server.server().shutdown(std::chrono::seconds(5));
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2))
      << "idle connections and an idle stream do not hold a stop for the whole grace";
  EXPECT_FALSE(stream->Read(&answered));
  EXPECT_FALSE(stream->Finish().ok()) << "the idle stream was cancelled";
}

TEST(GrpcTest, ClocksFromTheWireAreCheckedInLinearTime) {
  rpc::Clock big;
  for (uint32_t n = 0; n < 65536; ++n) {
    rpc::ClockEntry* e = big.add_entries();
    e->set_node(n);
    e->set_counter(n + 1);
  }
  const VectorClock c = internal::from_wire(big);  // quadratic, this took minutes
  EXPECT_EQ(c.entries().size(), 65536u);
  EXPECT_EQ(c.counter(65535), 65536u);
  big.add_entries()->set_node(70000);
  big.mutable_entries(65536)->set_counter(1);
  EXPECT_THROW(internal::from_wire(big), InvalidArgument) << "more entries than nodes can be";
  rpc::Clock unsorted;
  unsorted.add_entries()->set_node(2);
  unsorted.mutable_entries(0)->set_counter(1);
  unsorted.add_entries()->set_node(1);
  unsorted.mutable_entries(1)->set_counter(1);
  EXPECT_THROW(internal::from_wire(unsorted), InvalidArgument);
}

TEST(GrpcTest, StreamLimits) {
  ServerOptions so;
  so.max_message_size = 256 << 10;
  InProcess server(so);
  auto c = server.client();
  ASSERT_EQ(c->put("a", Versioned{std::string(150 << 10, 'a'), clock({{1, 1}})}), PutResult::kStored);
  ASSERT_EQ(c->put("b", Versioned{std::string(150 << 10, 'b'), clock({{1, 1}})}), PutResult::kStored);
  auto stub = rpc::Store::NewStub(
      grpc::CreateChannel(server.address(), grpc::InsecureChannelCredentials()));
  {
    // A get_all whose answer would not fit in a message fails alone; the
    // stream and its other requests carry on.
    grpc::ClientContext ctx;
    auto stream = stub->Stream(&ctx);
    rpc::StreamRequests batch;
    rpc::StreamRequest* both = batch.add_requests();
    both->set_id(1);
    both->mutable_get_all()->set_store("s");
    both->mutable_get_all()->add_keys("a");
    both->mutable_get_all()->add_keys("b");
    rpc::StreamRequest* one = batch.add_requests();
    one->set_id(2);
    one->mutable_get()->set_store("s");
    one->mutable_get()->set_key("a");
    ASSERT_TRUE(stream->Write(batch));
    stream->WritesDone();
    std::map<uint64_t, rpc::StreamResponse> got;
    rpc::StreamResponses r;
    while (stream->Read(&r)) {
      for (const rpc::StreamResponse& x : r.responses()) got[x.id()] = x;
    }
    EXPECT_TRUE(stream->Finish().ok());
    ASSERT_EQ(got.size(), 2u);
    EXPECT_EQ(got[1].error().code(), rpc::INVALID_ARGUMENT);
    EXPECT_NE(got[1].error().message().find("more than a message may hold"), std::string::npos);
    EXPECT_EQ(got[2].get().versions(0).value().size(), 150u << 10);
  }
  {
    // Too many requests in one batch end the stream, saying why.
    grpc::ClientContext ctx;
    auto stream = stub->Stream(&ctx);
    rpc::StreamRequests batch;
    for (int i = 0; i < 10001; ++i) batch.add_requests()->set_id(static_cast<uint64_t>(i));
    stream->Write(batch);
    stream->WritesDone();
    rpc::StreamResponses r;
    while (stream->Read(&r)) {
    }
    const grpc::Status st = stream->Finish();
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_NE(st.error_message().find("the limit is 10000"), std::string::npos) << st.error_message();
  }
}

// gRPC binds with SO_REUSEPORT unless told not to: a second server on a
// port in use would start and take a share of the first one's clients.
TEST(GrpcTest, ASecondServerOnAPortInUseIsRefused) {
  ServerOptions so;
  StoreServer first(so, {});
  so.listen = "127.0.0.1:" + std::to_string(first.port());
  EXPECT_THROW(StoreServer(so, {}), Unavailable);
}

TEST(GrpcTest, BadOptionsAreRefusedUpFront) {
  ServerOptions so;
  so.max_message_size = 1ull << 32;
  EXPECT_THROW(StoreServer(so, {}), InvalidArgument);
  so = ServerOptions();
  so.tls_cert = "cert.pem";
  EXPECT_THROW(StoreServer(so, {}), InvalidArgument) << "a certificate without its key";

  GrpcOptions o;
  o.targets = {"127.0.0.1:1", "localhost:2"};
  EXPECT_THROW(GrpcStore{o}, InvalidArgument) << "several targets must be IPv4 literals";
  o.targets = {"127.0.0.1:1"};
  o.tls_cert = "client.pem";
  EXPECT_THROW(GrpcStore{o}, InvalidArgument) << "tls_cert without tls_key";
}

// ---- Real processes -----------------------------------------------------------

// Writes a config serving store `s` from `engine`, returns its path.
std::string write_config(const TempDir& dir, const std::string& name, const std::string& engine) {
  const std::string path = dir.sub(name);
  std::ofstream(path) << "stores:\n  s:\n    node: [stats, {engine: " << engine << "}]\n";
  return path;
}

int64_t calls_served(const std::string& address) {
  return static_cast<int64_t>(admin_stats(address).calls().at("s"));
}

TEST(GrpcProcessTest, RoundRobinSpreadsReadsAndSurvivesAKilledServer) {
  TempDir dir;
  const std::string config = write_config(dir, "rr.yaml", "memory");
  std::vector<std::unique_ptr<ServerProcess>> servers;
  GrpcOptions o;
  o.store = "s";
  o.retries = 5;
  o.backoff = std::chrono::milliseconds(20);
  for (int i = 0; i < 3; ++i) {
    servers.push_back(std::make_unique<ServerProcess>(config));
    o.targets.push_back(servers.back()->address());
    // Each server has its own memory store: give every one the key.
    GrpcOptions one = o;
    one.targets = {servers.back()->address()};
    GrpcStore(one).put("k", versioned("v", {{1, 1}}));
  }
  GrpcStore rr(o);
  // Round-robin spreads reads over the servers whose connections are
  // ready; under a loaded (sanitized) run one may connect late, so the test
  // reads in rounds until each has served 50 (at most 3000 reads): a
  // policy that sticks to one server never gets there.
  auto least_served = [&] {
    int64_t least = INT64_MAX;
    for (auto& s : servers) least = std::min(least, calls_served(s->address()));
    return least;
  };
  for (int round = 0; round < 10 && least_served() <= 50; ++round) {
    for (int i = 0; i < 300; ++i) ASSERT_EQ(rr.get("k").at(0).value, "v");
  }
  for (auto& s : servers) {
    EXPECT_GT(calls_served(s->address()), 50) << "round-robin reached " << s->address();
    EXPECT_NE(admin_stats(s->address()).reports().at("s").find("\nget"), std::string::npos)
        << "the stats layer's report";
  }
  EXPECT_EQ(servers[1]->stop(SIGKILL), 128 + SIGKILL);
  int failures = 0;
  for (int i = 0; i < 300; ++i) {
    try {
      EXPECT_EQ(rr.get("k").at(0).value, "v");
    } catch (const Unavailable&) {
      ++failures;
    }
  }
  EXPECT_EQ(failures, 0) << "reads keep being served by the two left";
}

TEST(GrpcProcessTest, SigtermDrainsAndLmdbSurvivesARestart) {
  TempDir dir;
  const std::string config =
      write_config(dir, "lmdb.yaml", "{lmdb: {path: \"" + dir.sub("data") + "\", durability: nosync}}");
  auto server = std::make_unique<ServerProcess>(config);
  GrpcOptions o;
  o.store = "s";
  o.targets = {server->address()};
  o.retries = 0;
  GrpcStore c(o);
  std::atomic<bool> stop{false};
  std::atomic<int> acknowledged{0};
  std::thread writer([&] {
    for (int i = 0; !stop; ++i) {
      try {
        c.put(absl::StrCat("k", i), versioned(absl::StrCat("v", i), {{1, 1}}));
        acknowledged = i + 1;
      } catch (const Error&) {
        return;  // the server went away: later writes were never acknowledged
      }
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(server->stop(SIGTERM), 0) << server->log();
  stop = true;
  writer.join();
  ASSERT_GT(acknowledged.load(), 10);
  ServerProcess again(config);
  o.targets = {again.address()};
  GrpcStore after(o);
  for (int i = 0; i < acknowledged.load(); ++i) {
    ASSERT_EQ(after.get(absl::StrCat("k", i)).at(0).value, absl::StrCat("v", i))
        << "acknowledged write " << i << " of " << acknowledged.load();
  }
}

TEST(GrpcProcessTest, WritesQueuedPastTheirDeadlineAreNotRun) {
  TempDir dir;
  // One worker, and puts that take 400 ms: a second put waits in the queue.
  // (Over LMDB with durability sync, whose writes block: over the memory
  // engine, or LMDB without sync, the faults layer would wait out its delay
  // on a timer, and the server would not queue the call at all.)
  const std::string config = dir.sub("slow.yaml");
  std::ofstream(config) << "stores:\n  s:\n    node:\n"
                           "      - faults: {delay_ms: 400, ops: put}\n"
                           "      - engine: {lmdb: {path: \"" << dir.sub("lmdb") << "\", durability: sync}}\n";
  ServerProcess server(config, 0, 0, {"--workers", "1"});
  GrpcOptions o;
  o.store = "s";
  o.targets = {server.address()};
  o.retries = 0;
  GrpcStore patient(o);
  o.timeout = std::chrono::milliseconds(150);
  GrpcStore hasty(o);
  patient.get("warm-up");
  hasty.get("warm-up");

  std::thread first([&] { EXPECT_EQ(patient.put("a", versioned("1", {{1, 1}})), PutResult::kStored); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));  // "a" holds the worker
  EXPECT_THROW(hasty.put("b", versioned("2", {{1, 1}})), Timeout);
  first.join();
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // time for "b" to run, if it would
  EXPECT_EQ(patient.get("a").size(), 1u);
  EXPECT_TRUE(patient.get("b").empty()) << "the server dropped the write its caller gave up on";
}

// ---- TLS ------------------------------------------------------------------------

void run(const std::string& command) {
  ASSERT_EQ(std::system((command + " >/dev/null 2>&1").c_str()), 0) << command;
}

// A CA, a server certificate for 127.0.0.1 and localhost, and a client
// certificate, made with the openssl command.
void make_certificates(const TempDir& dir) {
  const std::string d = dir.path();
  run("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=cairn-test-ca -keyout " + d +
      "/ca.key -out " + d + "/ca.pem");
  std::ofstream(d + "/san.ext") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
  for (const std::string who : {"server", "client"}) {
    run("openssl req -newkey rsa:2048 -nodes -subj /CN=" + who + " -keyout " + d + "/" + who +
        ".key -out " + d + "/" + who + ".csr");
    run("openssl x509 -req -days 2 -in " + d + "/" + who + ".csr -CA " + d + "/ca.pem -CAkey " + d +
        "/ca.key -CAcreateserial -extfile " + d + "/san.ext -out " + d + "/" + who + ".pem");
  }
}

TEST(GrpcProcessTest, MutualTlsRefusesClientsWithoutTheRightCertificate) {
  TempDir dir;
  make_certificates(dir);
  const std::string d = dir.path();
  // The TLS files come from the config ({node} expands to the node id).
  std::ofstream(d + "/tls.yaml") << "cluster:\n"
                                    "  nodes: [{id: 0, address: 127.0.0.1:0}]\n"
                                    "  tls:\n"
                                    "    cert: " << d << "/server.pem\n"
                                    "    key: " << d << "/server.key\n"
                                    "    ca: " << d << "/ca.pem\n"
                                    "stores:\n  s:\n    node: [{engine: memory}]\n";
  ServerProcess server(d + "/tls.yaml");
  GrpcOptions o;
  o.store = "s";
  o.targets = {server.address()};
  o.retries = 0;
  o.timeout = std::chrono::seconds(5);
  o.tls_ca = d + "/ca.pem";
  o.tls_cert = d + "/client.pem";
  o.tls_key = d + "/client.key";
  GrpcStore trusted(o);
  ASSERT_EQ(trusted.put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(trusted.get("k").at(0).value, "v");

  GrpcOptions no_cert = o;
  no_cert.tls_cert.clear();
  no_cert.tls_key.clear();
  EXPECT_THROW(GrpcStore(no_cert).get("k"), Unavailable) << "no client certificate";

  GrpcOptions plaintext = o;
  plaintext.tls_ca.clear();
  plaintext.tls_cert.clear();
  plaintext.tls_key.clear();
  EXPECT_THROW(GrpcStore(plaintext).get("k"), Unavailable) << "plaintext to a TLS server";

  // A certificate from another CA is refused too.
  TempDir other;
  make_certificates(other);
  GrpcOptions stranger = o;
  stranger.tls_cert = other.path() + "/client.pem";
  stranger.tls_key = other.path() + "/client.key";
  EXPECT_THROW(GrpcStore(stranger).get("k"), Unavailable);
}

TEST(GrpcProcessTest, OneWayTlsFromFlags) {
  TempDir dir;
  make_certificates(dir);
  const std::string d = dir.path();
  ServerProcess server(write_config(dir, "c.yaml", "memory"), 0, 0,
                       {"--tls-cert", d + "/server.pem", "--tls-key", d + "/server.key"});
  GrpcOptions o;
  o.store = "s";
  o.targets = {server.address()};
  o.retries = 0;
  o.tls_ca = d + "/ca.pem";  // checks the server; presents nothing
  GrpcStore client(o);
  ASSERT_EQ(client.put("k", versioned("v", {{1, 1}})), PutResult::kStored);
  GrpcOptions wrong_ca = o;
  TempDir other;
  make_certificates(other);
  wrong_ca.tls_ca = other.path() + "/ca.pem";
  EXPECT_THROW(GrpcStore(wrong_ca).get("k"), Unavailable) << "a server the client cannot verify";
}

}  // namespace
}  // namespace cairn::testing

// The HTTP front, driven by the real curl over loopback: keys in URLs,
// read-modify-write with the clock header, siblings, JSON stores, errors,
// limits, /metrics, /health and shutdown with idle connections open.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "cairn/json.h"
#include "cairn/json_serializer.h"
#include "cairn/lmdb_store.h"
#include "cairn/memory_store.h"
#include "cairn/stats_store.h"
#include "server/http_handler.h"
#include "server/http_server.h"
#include "tests/testing/curl.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

// An HttpServer over three stores: `default` (identity, LMDB, with a stats
// layer), `users` (string keys, json values) and `counts` (int64 keys).
class HttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LmdbOptions lmdb;
    lmdb.name = "default";
    lmdb.path = dir_.sub("default");
    lmdb.durability = LmdbOptions::Durability::kNoSync;
    stores_["default"] = {std::make_shared<StatsStore>(std::make_unique<LmdbStore>(lmdb), "default"),
                          identity_serializer(), identity_serializer()};
    stores_["users"] = {std::make_shared<MemoryStore>(),
                        string_serializer(),
                        JsonSerializer::make({Json::parse(R"({"name":"string","id":"int32"})")})};
    stores_["counts"] = {std::make_shared<MemoryStore>(), int_serializer(64), string_serializer()};
    HttpOptions o;
    o.node_id = 7;
    o.max_body = 1 << 20;
    server_ = std::make_unique<HttpServer>(o, stores_);
  }
  void TearDown() override {
    server_.reset();
    for (auto& [name, s] : stores_) s.store->close();
  }

  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + path;
  }
  Store& store(const std::string& name) { return *stores_.at(name).store; }

  TempDir dir_;
  ServedStores stores_;
  std::unique_ptr<HttpServer> server_;
};

TEST_F(HttpTest, PutGetDeleteWithPercentEncodedKeys) {
  // '/', a space, a NUL and a non-UTF-8 byte in the key.
  const std::string key("a/b c\0\xff", 7);
  const std::string path = "/stores/default/keys/a%2Fb%20c%00%FF";

  CurlResult put = curl({"-X", "PUT", "--data-binary", "hello world", url(path)});
  EXPECT_EQ(put.status, 204) << put.body;
  EXPECT_EQ(put.header("x-cairn-clock"), "{7:1}") << "the front's node id was incremented";

  const std::vector<Versioned> stored = store("default").get(key);
  ASSERT_EQ(stored.size(), 1u) << "the key reached the store decoded, byte for byte";
  EXPECT_EQ(stored[0].value, "hello world");

  CurlResult get = curl({url(path)});
  EXPECT_EQ(get.status, 200);
  EXPECT_EQ(get.body, "hello world");
  EXPECT_EQ(get.header("content-type"), "application/octet-stream");
  EXPECT_EQ(get.header("x-cairn-clock"), "{7:1}");

  CurlResult del = curl({"-X", "DELETE", url(path)});
  EXPECT_EQ(del.status, 204);
  EXPECT_TRUE(store("default").get(key).empty());
  EXPECT_EQ(curl({url(path)}).status, 404);
  EXPECT_EQ(curl({"-X", "DELETE", url(path)}).status, 404) << "nothing left to delete";
}

TEST_F(HttpTest, PutWithoutAClockSupersedesEveryVersion) {
  store("default").put("k", versioned("a", {{1, 1}}));
  store("default").put("k", versioned("b", {{2, 1}}));
  CurlResult put = curl({"-X", "PUT", "--data-binary", "c", url("/stores/default/keys/k")});
  EXPECT_EQ(put.status, 204);
  EXPECT_EQ(put.header("x-cairn-clock"), "{1:1, 2:1, 7:1}");
  const std::vector<Versioned> stored = store("default").get("k");
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].value, "c");
}

TEST_F(HttpTest, ReadModifyWriteWithTheClockHeader) {
  const std::string u = url("/stores/default/keys/k");
  ASSERT_EQ(curl({"-X", "PUT", "--data-binary", "v1", u}).status, 204);
  const std::string read = curl({u}).header("x-cairn-clock");

  CurlResult put = curl({"-X", "PUT", "-H", "X-Cairn-Clock: " + read, "--data-binary", "v2", u});
  EXPECT_EQ(put.status, 204);
  EXPECT_EQ(put.header("x-cairn-clock"), "{7:2}");

  // The same read clock again: someone (we) wrote since.
  CurlResult stale = curl({"-X", "PUT", "-H", "X-Cairn-Clock: " + read, "--data-binary", "v3", u});
  EXPECT_EQ(stale.status, 409) << stale.body;
  EXPECT_EQ(stale.header("x-cairn-error"), "ObsoleteVersion");
  EXPECT_EQ(curl({u}).body, "v2") << "a stale write changes nothing";

  CurlResult stale_delete = curl({"-X", "DELETE", "-H", "X-Cairn-Clock: " + read, u});
  EXPECT_EQ(stale_delete.status, 409);
  EXPECT_EQ(curl({u}).body, "v2");
  EXPECT_EQ(curl({"-X", "DELETE", "-H", "X-Cairn-Clock: {7:2}", u}).status, 204);
  EXPECT_EQ(curl({u}).status, 404);

  // An absent key: the empty clock is at or after nothing stored.
  EXPECT_EQ(curl({"-X", "PUT", "-H", "X-Cairn-Clock: {}", "--data-binary", "n", u}).status, 204);
}

TEST_F(HttpTest, AConditionalDeleteRefusesWhenASiblingAppeared) {
  const std::string u = url("/stores/default/keys/d");
  ASSERT_EQ(curl({"-X", "PUT", "--data-binary", "mine", u}).status, 204);
  const std::string read = curl({u}).header("x-cairn-clock");
  store("default").put("d", versioned("theirs", {{1, 1}}));  // a concurrent writer
  CurlResult del = curl({"-X", "DELETE", "-H", "X-Cairn-Clock: " + read, u});
  EXPECT_EQ(del.status, 409) << del.body;
  EXPECT_EQ(store("default").get("d").size(), 2u) << "both versions survive a refused delete";
}

TEST_F(HttpTest, ConcurrentIncrementsOverHttpLoseNothing) {
  const std::string u = url("/stores/counts/keys/42");
  constexpr int kThreads = 4;
  constexpr int kEach = 8;
  std::atomic<int> conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kEach;) {
        CurlResult got = curl({u});
        const int n = got.status == 404 ? 0 : std::stoi(got.body);
        std::vector<std::string> args = {"-X", "PUT", "--data-binary", std::to_string(n + 1), u};
        if (got.status == 200) {
          args.insert(args.begin(), {"-H", "X-Cairn-Clock: " + got.header("x-cairn-clock")});
        } else {
          args.insert(args.begin(), {"-H", "X-Cairn-Clock: {}"});
        }
        const int status = curl(args).status;
        if (status == 204) {
          ++i;
        } else {
          ASSERT_EQ(status, 409);
          ++conflicts;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  CurlResult final = curl({u});
  EXPECT_EQ(final.body, std::to_string(kThreads * kEach))
      << "every increment counted once (" << conflicts << " retried after a 409)";
  ASSERT_EQ(store("counts").get(std::string("\0\0\0\0\0\0\0\x2a", 8)).size(), 1u)
      << "key 42 went through the int64 key serializer";
}

TEST_F(HttpTest, SiblingsComeBackAsMultipleChoices) {
  store("default").put("s", versioned("left", {{1, 1}}));
  store("default").put("s", versioned("right", {{2, 1}}));
  CurlResult got = curl({url("/stores/default/keys/s")});
  EXPECT_EQ(got.status, 300);
  const std::string type = got.header("content-type");
  ASSERT_TRUE(type.starts_with("multipart/mixed; boundary=")) << type;
  const std::string boundary = type.substr(type.find('=') + 1);
  EXPECT_NE(got.body.find("X-Cairn-Clock: {1:1}\r\n\r\nleft\r\n"), std::string::npos) << got.body;
  EXPECT_NE(got.body.find("X-Cairn-Clock: {2:1}\r\n\r\nright\r\n"), std::string::npos) << got.body;
  EXPECT_TRUE(got.body.ends_with("--" + boundary + "--\r\n"));
  EXPECT_EQ(got.header("x-cairn-clock"), "{1:1, 2:1}") << "the merge";

  // Writing with the merged clock resolves them.
  const std::string merged = got.header("x-cairn-clock");
  EXPECT_EQ(curl({"-X", "PUT", "-H", "X-Cairn-Clock: " + merged, "--data-binary", "both",
                  url("/stores/default/keys/s")})
                .status,
            204);
  CurlResult after = curl({url("/stores/default/keys/s")});
  EXPECT_EQ(after.status, 200);
  EXPECT_EQ(after.body, "both");
}

TEST_F(HttpTest, JsonStoresTakeAndGiveJson) {
  const std::string u = url("/stores/users/keys/alice");
  EXPECT_EQ(curl({"-X", "PUT", "--data-binary", R"({"name": "Alice", "id": 7})", u}).status, 204);
  CurlResult got = curl({u});
  EXPECT_EQ(got.status, 200);
  EXPECT_EQ(got.header("content-type"), "application/json");
  EXPECT_EQ(Json::parse(got.body), Json::object({{"name", "Alice"}, {"id", 7}}));

  CurlResult bad = curl({"-X", "PUT", "--data-binary", R"({"name": "Alice", "id": "seven"})", u});
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.header("x-cairn-error"), "InvalidArgument");
  EXPECT_NE(bad.body.find("id"), std::string::npos) << "names the field: " << bad.body;
  EXPECT_EQ(Json::parse(curl({u}).body)["id"], Json(7)) << "the bad write stored nothing";
}

TEST_F(HttpTest, BadRequestsGetClearErrors) {
  struct Case {
    std::vector<std::string> args;
    int status;
    std::string says;
  };
  const std::vector<Case> cases = {
      {{url("/stores/nope/keys/k")}, 404, "no store 'nope'"},
      {{url("/stores/default/keys/a%zz")}, 400, "percent-encoding"},
      {{url("/stores/default/keys/")}, 400, "the key is empty"},
      {{url("/stores/default/keys/" + std::string(600, 'k'))}, 400, "511"},
      {{url("/stores/counts/keys/forty-two")}, 400, "int64"},
      {{"-X", "PUT", "-H", "X-Cairn-Clock: banana", "--data-binary", "v",
        url("/stores/default/keys/k")},
       400,
       "X-Cairn-Clock"},
      {{"-X", "POST", "--data-binary", "v", url("/stores/default/keys/k")}, 405, "use GET, PUT"},
      {{"-X", "PUT", url("/health")}, 405, "use GET"},
      {{url("/nothing/here")}, 404, "no resource /nothing/here"},
  };
  for (const Case& c : cases) {
    CurlResult r = curl(c.args);
    EXPECT_EQ(r.status, c.status) << c.args.back() << ": " << r.body;
    EXPECT_NE(r.body.find(c.says), std::string::npos) << c.args.back() << ": " << r.body;
  }
  EXPECT_EQ(curl({"-X", "POST", url("/stores/default/keys/k")}).header("allow"),
            "GET, PUT, DELETE");
  EXPECT_TRUE(store("default").get("k").empty()) << "no bad request wrote anything";
}

TEST_F(HttpTest, LargeValuesRoundTripAndOversizedBodiesAreRefused) {
  std::mt19937_64 rng = seeded_rng();
  const std::string value = random_bytes(rng, 300 << 10);  // curl sends Expect: 100-continue
  const std::string file = dir_.sub("value");
  std::ofstream(file, std::ios::binary) << value;
  const std::string u = url("/stores/default/keys/big");
  EXPECT_EQ(curl({"-X", "PUT", "--data-binary", "@" + file, u}).status, 204);
  EXPECT_EQ(curl({u}).body, value);

  const std::string huge = dir_.sub("huge");
  std::ofstream(huge, std::ios::binary) << std::string((1 << 20) + 1, 'x');
  CurlResult refused = curl({"-X", "PUT", "--data-binary", "@" + huge, u});
  EXPECT_EQ(refused.status, 413);
  EXPECT_NE(refused.body.find("1048576"), std::string::npos) << refused.body;
  EXPECT_EQ(curl({u}).body, value) << "the refused body changed nothing";
}

TEST_F(HttpTest, MalformedHttpGetsA400) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string garbage = "GET / HTTP/9\x01\r\n\r\n";
  ASSERT_EQ(::write(fd, garbage.data(), garbage.size()), static_cast<ssize_t>(garbage.size()));
  std::string reply;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) reply.append(buf, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_TRUE(reply.starts_with("HTTP/1.1 400 Bad Request\r\n")) << reply;
  EXPECT_NE(reply.find("malformed HTTP request"), std::string::npos) << reply;
  EXPECT_EQ(curl({url("/health")}).status, 200) << "the server carries on";
}

TEST_F(HttpTest, MetricsStoresAndHealth) {
  for (int i = 0; i < 3; ++i) {
    curl({"-X", "PUT", "--data-binary", "v", url("/stores/default/keys/m" + std::to_string(i))});
  }
  curl({url("/stores/default/keys/m0")});
  curl({url("/stores/default/keys/absent")});

  CurlResult m = curl({url("/metrics")});
  EXPECT_EQ(m.status, 200);
  EXPECT_TRUE(m.header("content-type").starts_with("text/plain; version=0.0.4"));
  EXPECT_NE(m.body.find("cairn_store_operations_total{store=\"default\",op=\"put\"} 3\n"),
            std::string::npos)
      << m.body;
  EXPECT_NE(m.body.find("cairn_store_operations_total{store=\"default\",op=\"get\"} 2\n"),
            std::string::npos);
  EXPECT_NE(m.body.find("cairn_http_responses_total{code=\"204\"} 3\n"), std::string::npos);
  EXPECT_NE(m.body.find("cairn_http_responses_total{code=\"404\"} 1\n"), std::string::npos);
  EXPECT_NE(m.body.find("cairn_store_latency_seconds_count{store=\"default\",op=\"put\"} 3\n"),
            std::string::npos);
  EXPECT_NE(m.body.find("# TYPE cairn_store_latency_seconds summary\n"), std::string::npos);
  EXPECT_EQ(m.body.find("store=\"users\""), std::string::npos) << "users has no stats layer";

  CurlResult s = curl({url("/stores")});
  EXPECT_EQ(s.header("content-type"), "application/json");
  Json stores = Json::parse(s.body);
  ASSERT_EQ(stores.as_array().size(), 3u);
  EXPECT_EQ(stores.as_array()[1]["name"], Json("default"));
  EXPECT_EQ(stores.as_array()[2]["value"].as_string().substr(0, 4), "json");

  EXPECT_EQ(curl({url("/health")}).body, "SERVING\n");

  CurlResult head = curl({"-I", url("/stores/default/keys/m0")});
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.header("content-length"), "1") << "the GET's length, without the body";
  EXPECT_EQ(head.header("x-cairn-clock"), "{7:1}");
  EXPECT_TRUE(head.body.empty());
}

TEST_F(HttpTest, ShutdownClosesIdleConnectionsAndStopsListening) {
  // A keep-alive connection, idle after one request, must not hold shutdown
  // for its idle timeout.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(server_->port()));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string request = "GET /health HTTP/1.1\r\nHost: test\r\n\r\n";
  ASSERT_EQ(::write(fd, request.data(), request.size()), static_cast<ssize_t>(request.size()));
  std::string reply;
  char buf[4096];
  while (!reply.ends_with("SERVING\n")) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    ASSERT_GT(n, 0) << reply;
    reply.append(buf, static_cast<size_t>(n));
  }
  const std::string u = url("/health");
  server_->shutdown(std::chrono::seconds(30));
  EXPECT_EQ(::read(fd, buf, 1), 0) << "the idle connection was closed";
  ::close(fd);
  EXPECT_THROW(curl({u}), std::runtime_error) << "nothing listens any more";
}

TEST(HttpHandlerTest, HealthSaysWhenShuttingDown) {
  internal::HttpHandler h({}, 0, nullptr);
  EXPECT_EQ(h.handle({"GET", "/health", "", ""}).status, 200);
  h.set_draining();
  internal::HttpResponse r = h.handle({"GET", "/health", "", ""});
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, "SHUTTING_DOWN\n");
}

// /ui and /cluster.json: only for a node whose cluster is kept in etcd
// (given the JSON's source); etcd away is 503, not an empty page.
TEST(HttpHandlerTest, TheClusterPageNeedsClusterMetadata) {
  internal::HttpHandler without({}, 0, nullptr);
  internal::HttpResponse r = without.handle({"GET", "/ui", "", ""});
  EXPECT_EQ(r.status, 404);
  EXPECT_NE(r.body.find("not kept in etcd"), std::string::npos) << r.body;
  EXPECT_EQ(without.handle({"GET", "/cluster.json", "", ""}).status, 404);

  bool etcd_up = true;
  internal::HttpHandler with({}, 0, nullptr, [&] {
    if (!etcd_up) throw Unavailable("no endpoint answered");
    return std::string("{\"version\": 7}");
  });
  r = with.handle({"GET", "/cluster.json", "", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "application/json");
  EXPECT_EQ(r.body, "{\"version\": 7}");
  r = with.handle({"GET", "/ui", "", ""});
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.content_type, "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("fetch(\"/cluster.json\""), std::string::npos);
  EXPECT_EQ(with.handle({"PUT", "/ui", "", ""}).status, 405);
  etcd_up = false;
  EXPECT_EQ(with.handle({"GET", "/cluster.json", "", ""}).status, 503);
}

TEST(HttpHandlerTest, PercentDecoding) {
  EXPECT_EQ(internal::percent_decode("a%2Fb%2fc+d"), "a/b/c+d") << "'+' is not a space in paths";
  EXPECT_EQ(internal::percent_decode("%00"), std::string(1, '\0'));
  EXPECT_THROW(internal::percent_decode("%"), InvalidArgument);
  EXPECT_THROW(internal::percent_decode("%4"), InvalidArgument);
  EXPECT_THROW(internal::percent_decode("%g0"), InvalidArgument);
}

}  // namespace
}  // namespace cairn::testing

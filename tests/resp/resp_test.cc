// The Redis-protocol front in-process: the parser alone (pipelines split at
// every byte, inline commands, malformed input), then a RespServer over a
// memory store, an LMDB store (writes on the worker pool), a JSON store and
// a store that answers later from a timer (the path a routed store takes),
// driven over loopback sockets by a small RESP client written here. Real
// clients (redis-cli, redis-benchmark, Python's redis) are in
// tests/tools/resp_test.py.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <charconv>
#include <chrono>
#include <thread>

#include "cairn/fault_store.h"
#include "cairn/json.h"
#include "cairn/json_serializer.h"
#include "cairn/lmdb_store.h"
#include "cairn/memory_store.h"
#include "cairn/stats_store.h"
#include "server/resp_protocol.h"
#include "server/resp_server.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

using internal::RespLimits;
using internal::RespParser;

// ---- The parser -------------------------------------------------------------

// Every command in `stream`, fed to the parser `step` bytes at a time (as
// a socket may deliver them); the error text if it fails.
std::vector<std::vector<std::string>> parse_all(const std::string& stream, size_t step,
                                                std::string* error = nullptr,
                                                RespLimits limits = {}) {
  RespParser parser(limits);
  std::vector<std::vector<std::string>> commands;
  size_t start = 0;
  size_t have = 0;
  while (true) {
    const std::string_view data(stream.data() + start, have - start);
    const RespParser::Status s = parser.parse(data);
    if (s == RespParser::Status::kError) {
      if (error != nullptr) *error = parser.error();
      return commands;
    }
    if (s == RespParser::Status::kCommand) {
      commands.emplace_back(parser.args().begin(), parser.args().end());
      start += parser.consumed();
      continue;
    }
    start += parser.consumed();  // skipped: empty lines, "*0"
    if (have == stream.size()) return commands;
    have = std::min(stream.size(), have + step);
  }
}

TEST(RespParserTest, PipelinedCommandsSplitAtEveryByte) {
  const std::string value("bin\0ary\r\nvalue", 14);
  const std::string stream = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$14\r\n" + value +
                             "\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*0\r\n*1\r\n$4\r\nPING\r\n";
  for (size_t step : {1, 2, 3, 7, 1000}) {
    const auto commands = parse_all(stream, step);
    ASSERT_EQ(commands.size(), 3u) << "step " << step << " (*0 is skipped, as in Redis)";
    EXPECT_EQ(commands[0], (std::vector<std::string>{"SET", "k", value}));
    EXPECT_EQ(commands[1], (std::vector<std::string>{"GET", "k"}));
    EXPECT_EQ(commands[2], (std::vector<std::string>{"PING"}));
  }
}

TEST(RespParserTest, InlineCommandsWithQuotes) {
  const auto commands =
      parse_all("PING\r\n\r\nset k \"a b\\x41\\n\"\nECHO 'x\\'y'\n", 1);
  ASSERT_EQ(commands.size(), 3u);
  EXPECT_EQ(commands[0], (std::vector<std::string>{"PING"}));
  EXPECT_EQ(commands[1], (std::vector<std::string>{"set", "k", "a bA\n"}));
  std::string error;
  parse_all("get 'it''s'\r\n", 100, &error);
  EXPECT_EQ(error, "Protocol error: unbalanced quotes in request");
  EXPECT_EQ(commands[2], (std::vector<std::string>{"ECHO", "x'y"}));
}

TEST(RespParserTest, MalformedInputIsAnErrorNotACrash) {
  const std::pair<std::string, std::string> cases[] = {
      {"*1\r\n$x\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n:3\r\n", "Protocol error: expected '$', got ':'"},
      {"*1\r\n\x01", "Protocol error: expected '$', got '\\x01'"},
      {"*1\r\n$3\r\nabcd\r\n", "Protocol error: a bulk string is not followed by CRLF"},
      {"*2x\r\n", "Protocol error: invalid multibulk length"},
      {"*99999999999\r\n", "Protocol error: invalid multibulk length"},
      {"*1\r\n$-5\r\n", "Protocol error: invalid bulk length"},
      {"*1\r\n$" + std::string(40, '9'), "Protocol error: too big bulk count string"},
      {"*1\r\n$3\rx", "Protocol error: a length line does not end in CRLF"},
  };
  for (const auto& [input, want] : cases) {
    std::string error;
    EXPECT_TRUE(parse_all(input, 1, &error).empty()) << input;
    EXPECT_EQ(error, want) << input;
  }
}

TEST(RespParserTest, SkippedBytesAreConsumedNotKept) {
  // Empty lines and empty arrays run nothing; the caller may drop them at
  // once, so a client sending only those costs no memory.
  RespParser parser;
  const std::string skipped = "\r\n\n*0\r\n*-1\r\n";
  EXPECT_EQ(parser.parse(skipped), RespParser::Status::kIncomplete);
  EXPECT_EQ(parser.consumed(), skipped.size());
  // Skipped bytes before half a command: dropped, and the half kept.
  const std::string half = "\r\n*2\r\n$3\r\nGET\r\n$1";
  EXPECT_EQ(parser.parse(half), RespParser::Status::kIncomplete);
  EXPECT_EQ(parser.consumed(), 2u);
  const std::string rest = half.substr(2) + "\r\nk\r\n";
  ASSERT_EQ(parser.parse(rest), RespParser::Status::kCommand);
  EXPECT_EQ(parser.consumed(), rest.size());
  EXPECT_EQ(parser.args()[1], "k");
}

TEST(RespParserTest, LimitsBoundWhatACommandMayTake) {
  RespLimits limits{.max_bulk = 100, .max_args = 3, .max_inline = 50, .max_command = 150};
  std::string error;
  parse_all("*1\r\n$101\r\n", 1, &error, limits);
  EXPECT_EQ(error, "Protocol error: invalid bulk length");
  parse_all("*4\r\n", 1, &error, limits);
  EXPECT_EQ(error, "Protocol error: invalid multibulk length");
  parse_all(std::string(51, 'a'), 7, &error, limits);
  EXPECT_EQ(error, "Protocol error: too big inline request");
  // Two bulks within the limit each, over it together: refused as soon as
  // the second's length is read, before its bytes arrive.
  parse_all("*2\r\n$90\r\n" + std::string(90, 'x') + "\r\n$90\r\n", 1, &error, limits);
  EXPECT_EQ(error, "Protocol error: the command is larger than the limit of 150 bytes");
}

// ---- A client ---------------------------------------------------------------

// A reply as read: its type byte and its text, number or elements.
struct Reply {
  char type = 0;  // '+', '-', ':', '$', '*', '%', '_'; 0: the connection closed
  std::string text;
  int64_t n = 0;
  bool null = false;
  std::vector<Reply> items;
};

// One connection, speaking RESP by hand.
class Client {
 public:
  explicit Client(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ADD_FAILURE() << "cannot connect to port " << port;
    }
    timeval tv{.tv_sec = 20, .tv_usec = 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~Client() { ::close(fd_); }

  static std::string encode(const std::vector<std::string>& args) {
    std::string out = "*" + std::to_string(args.size()) + "\r\n";
    for (const std::string& a : args) out += "$" + std::to_string(a.size()) + "\r\n" + a + "\r\n";
    return out;
  }
  void send(const std::string& bytes) {
    size_t sent = 0;
    while (sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return;
      sent += static_cast<size_t>(n);
    }
  }
  Reply call(const std::vector<std::string>& args) {
    send(encode(args));
    return read();
  }
  void shutdown_writes() { ::shutdown(fd_, SHUT_WR); }

  Reply read() {
    Reply r;
    std::string line;
    if (!read_line(&line)) return r;  // closed
    r.type = line[0];
    const std::string rest = line.substr(1);
    switch (r.type) {
      case '+':
      case '-': r.text = rest; break;
      case ':': r.n = std::stoll(rest); break;
      case '_': r.null = true; break;
      case '$': {
        const int64_t len = std::stoll(rest);
        if (len < 0) {
          r.null = true;
          break;
        }
        r.text = read_bytes(static_cast<size_t>(len) + 2).substr(0, static_cast<size_t>(len));
        break;
      }
      case '*':
      case '%': {
        const int64_t n = std::stoll(rest);
        if (n < 0) {
          r.null = true;
          break;
        }
        for (int64_t i = 0; i < n * (r.type == '%' ? 2 : 1); ++i) r.items.push_back(read());
        break;
      }
      default: ADD_FAILURE() << "unknown reply type " << line;
    }
    return r;
  }

  // Whether the server closed the connection (reads EOF within a while).
  bool closed_by_server() {
    char c;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  bool fill() {
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buf_.append(buf, static_cast<size_t>(n));
    return true;
  }
  bool read_line(std::string* line) {
    size_t at;
    while ((at = buf_.find("\r\n")) == std::string::npos) {
      if (!fill()) return false;
    }
    *line = buf_.substr(0, at);
    buf_.erase(0, at + 2);
    return !line->empty();
  }
  std::string read_bytes(size_t n) {
    while (buf_.size() < n && fill()) {
    }
    std::string out = buf_.substr(0, n);
    buf_.erase(0, std::min(n, buf_.size()));
    return out;
  }

  int fd_ = -1;
  std::string buf_;
};

// A store that answers later, from a timer, and says its reads may wait:
// the front takes the path it takes for a store that routes (non-blocking
// calls answered from their callbacks).
class Remote final : public ForwardingStore {
 public:
  explicit Remote(std::chrono::milliseconds delay)
      : ForwardingStore(std::make_unique<FaultStore>(std::make_unique<MemoryStore>(),
                                                     FaultStore::kAll, delay,
                                                     FaultStore::Failure::kNone)) {}
  bool reads_may_block() const override { return true; }
  FaultStore& faults() { return static_cast<FaultStore&>(inner()); }
  std::string describe() const override { return "remote\n" + inner().describe(); }
  // The non-blocking calls pass down (a ForwardingStore's would run the
  // blocking ones inline), answered from the FaultStore's timer.
  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override {
    inner().async_get(key, std::move(done));
  }
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override {
    inner().async_get_all(std::move(keys), std::move(done));
  }
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override {
    inner().async_put(key, value, std::move(done));
  }
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override {
    inner().async_remove(key, version, std::move(done));
  }
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override {
    inner().async_versions(key, std::move(done));
  }
  bool async_calls_block() const override { return false; }
};

// A RespServer over `default` (memory), `disk` (LMDB: writes on the pool,
// with a stats layer), `users` (string keys, json values), `counts` (int64
// keys) and `remote` (answers later).
class RespServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    stores_["default"] = {std::make_shared<MemoryStore>(), identity_serializer(),
                          identity_serializer()};
    LmdbOptions lmdb;
    lmdb.name = "disk";
    lmdb.path = dir_.sub("disk");
    lmdb.durability = LmdbOptions::Durability::kNoSync;
    stores_["disk"] = {std::make_shared<StatsStore>(std::make_unique<LmdbStore>(lmdb), "disk"),
                       identity_serializer(), identity_serializer()};
    stores_["users"] = {std::make_shared<MemoryStore>(), string_serializer(),
                        JsonSerializer::make({Json::parse(R"({"name":"string","id":"int32"})")})};
    stores_["counts"] = {std::make_shared<MemoryStore>(), int_serializer(64), string_serializer()};
    remote_ = std::make_shared<Remote>(std::chrono::milliseconds(5));
    stores_["remote"] = {remote_, identity_serializer(), identity_serializer()};
    start({});
  }
  void start(RespServerOptions o) {
    o.node_id = 7;
    if (o.max_command == RespServerOptions{}.max_command) o.max_command = 1 << 20;
    server_ = std::make_unique<RespServer>(o, stores_);
  }
  void TearDown() override {
    server_.reset();
    for (auto& [name, s] : stores_) s.store->close();
  }
  int port() const { return server_->port(); }
  Store& store(const std::string& name) { return *stores_.at(name).store; }

  TempDir dir_;
  ServedStores stores_;
  std::shared_ptr<Remote> remote_;
  std::unique_ptr<RespServer> server_;
};

TEST_F(RespServerTest, SetGetDelExistsOnTheDefaultStore) {
  Client c(port());
  const std::string key("k\0\r\n\xff", 5);
  const std::string value("v\0\r\nalue", 8);
  EXPECT_EQ(c.call({"SET", key, value}).text, "OK");
  Reply got = c.call({"get", key});
  EXPECT_EQ(got.type, '$');
  EXPECT_EQ(got.text, value) << "keys and values are binary-safe";
  const std::vector<Versioned> stored = store("default").get(key);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].clock.to_string(), "{7:1}") << "the front's node id was incremented";
  // A second SET supersedes the first: one version.
  EXPECT_EQ(c.call({"SET", key, "second"}).text, "OK");
  ASSERT_EQ(store("default").get(key).size(), 1u);
  EXPECT_EQ(store("default").get(key)[0].clock.to_string(), "{7:2}");

  EXPECT_EQ(c.call({"EXISTS", key, "absent", key}).n, 2) << "a key named twice counts twice";
  EXPECT_TRUE(c.call({"GET", "absent"}).null);
  EXPECT_EQ(c.call({"MSET", "a", "1", "b", "2"}).text, "OK");
  Reply m = c.call({"MGET", "a", "absent", "b"});
  ASSERT_EQ(m.items.size(), 3u);
  EXPECT_EQ(m.items[0].text, "1");
  EXPECT_TRUE(m.items[1].null);
  EXPECT_EQ(m.items[2].text, "2");
  EXPECT_EQ(c.call({"DEL", "a", "b", "absent"}).n, 2);
  EXPECT_TRUE(c.call({"GET", "a"}).null);
  EXPECT_EQ(c.call({"PING"}).text, "PONG");
  EXPECT_EQ(c.call({"PING", "hi"}).text, "hi");
  EXPECT_EQ(c.call({"ECHO", "x y"}).text, "x y");
}

TEST_F(RespServerTest, ErrorsLeaveTheConnectionUsable) {
  Client c(port());
  Reply r = c.call({"FLUSHALL"});
  EXPECT_EQ(r.type, '-');
  EXPECT_TRUE(r.text.starts_with("ERR unknown command 'FLUSHALL'")) << r.text;
  EXPECT_EQ(c.call({"GET"}).text, "ERR wrong number of arguments for 'get' command");
  EXPECT_TRUE(c.call({"SET", "k", "v", "NX"}).text.starts_with("ERR syntax error")) ;
  EXPECT_EQ(store("default").get("k").size(), 0u) << "a refused SET writes nothing";
  // An oversized key: the engine's limit, as a clear error.
  r = c.call({"SET", std::string(5000, 'k'), "v"});
  EXPECT_EQ(r.type, '-');
  EXPECT_NE(r.text.find("key"), std::string::npos) << r.text;
  EXPECT_EQ(c.call({"PING"}).text, "PONG");
}

TEST_F(RespServerTest, SelectPicksAStoreByName) {
  Client c(port());
  EXPECT_EQ(c.call({"SELECT", "users"}).text, "OK");
  EXPECT_EQ(c.call({"SET", "alice", R"({"name":"Alice","id":7})"}).text, "OK");
  EXPECT_EQ(c.call({"GET", "alice"}).text, R"({"id":7,"name":"Alice"})") << "JSON's text form";
  // The value serializer checks what a SET sends: nothing is written.
  Reply bad = c.call({"SET", "bob", R"({"name":"Bob","id":"seven"})"});
  EXPECT_EQ(bad.type, '-');
  EXPECT_TRUE(bad.text.starts_with("ERR ")) << bad.text;
  EXPECT_TRUE(store("users").get("bob").empty());
  // Keys in the key serializer's text form.
  EXPECT_EQ(c.call({"SELECT", "counts"}).text, "OK");
  EXPECT_EQ(c.call({"SET", "42", "forty-two"}).text, "OK");
  EXPECT_EQ(store("counts").get(std::string("\0\0\0\0\0\0\0\x2a", 8)).size(), 1u);
  EXPECT_EQ(c.call({"GET", "x"}).type, '-') << "not an int64";
  Reply missing = c.call({"SELECT", "nope"});
  EXPECT_TRUE(missing.text.starts_with("ERR no store 'nope'")) << missing.text;
  Reply stores = c.call({"CAIRN.STORES"});
  ASSERT_EQ(stores.items.size(), 5u);
  EXPECT_EQ(stores.items[0].text, "counts");
  // SELECT 0, as clients send for database 0: the default store.
  EXPECT_EQ(c.call({"SELECT", "0"}).text, "OK");
  EXPECT_EQ(c.call({"INFO"}).text.find("selected_store:default") != std::string::npos, true);
}

TEST_F(RespServerTest, SiblingsAreAnErrorOnGetAndReadableWithTheirClocks) {
  Store& s = store("default");
  ASSERT_EQ(s.put("cart", Versioned{"apples", VectorClock({{1, 1}})}), PutResult::kStored);
  ASSERT_EQ(s.put("cart", Versioned{"pears", VectorClock({{2, 1}})}), PutResult::kStored);
  Client c(port());
  Reply got = c.call({"GET", "cart"});
  EXPECT_EQ(got.type, '-');
  EXPECT_TRUE(got.text.starts_with("CONFLICT")) << got.text;
  EXPECT_NE(got.text.find("CAIRN.VERSIONS"), std::string::npos) << got.text;
  EXPECT_EQ(c.call({"MGET", "cart"}).type, '-');
  Reply versions = c.call({"CAIRN.VERSIONS", "cart"});
  ASSERT_EQ(versions.items.size(), 2u);
  std::vector<std::string> clocks;
  for (const Reply& v : versions.items) {
    ASSERT_EQ(v.items.size(), 4u);  // "value", the value, "clock", the clock
    clocks.push_back(v.items[3].text);
  }
  EXPECT_EQ(clocks, (std::vector<std::string>{"{1:1}", "{2:1}"}));
  // A write at a clock after both resolves them (the store's own put).
  Reply put = c.call({"CAIRN.PUT", "cart", "apples+pears", "{1:1, 2:1, 7:1}"});
  EXPECT_EQ(put.text, "{1:1, 2:1, 7:1}");
  EXPECT_EQ(c.call({"GET", "cart"}).text, "apples+pears");
  // A write at a clock the stored version is after: refused, nothing
  // written.
  Reply stale = c.call({"CAIRN.PUT", "cart", "old", "{1:1}"});
  EXPECT_TRUE(stale.text.starts_with("OBSOLETE")) << stale.text;
  EXPECT_EQ(c.call({"GET", "cart"}).text, "apples+pears");
  EXPECT_TRUE(c.call({"CAIRN.PUT", "cart", "x", "{bad"}).text.starts_with("ERR the clock"));
  // A delete at an older clock leaves the newer version; at its clock, it goes.
  EXPECT_EQ(c.call({"CAIRN.DEL", "cart", "{1:1}"}).n, 0);
  EXPECT_EQ(c.call({"GET", "cart"}).text, "apples+pears");
  EXPECT_EQ(c.call({"CAIRN.DEL", "cart", "{1:1, 2:1, 7:1}"}).n, 1);
  EXPECT_TRUE(c.call({"GET", "cart"}).null);
}

TEST_F(RespServerTest, Hello3SwitchesToResp3) {
  Client c(port());
  Reply hello = c.call({"HELLO", "3", "SETNAME", "tester"});
  ASSERT_EQ(hello.type, '%');
  ASSERT_EQ(hello.items.size(), 14u);
  EXPECT_EQ(hello.items[0].text, "server");
  EXPECT_EQ(hello.items[1].text, "cairn");
  EXPECT_EQ(hello.items[5].n, 3) << "proto";
  Reply missing = c.call({"GET", "absent"});
  EXPECT_EQ(missing.type, '_') << "RESP3's null";
  EXPECT_EQ(c.call({"CLIENT", "GETNAME"}).text, "tester");
  EXPECT_TRUE(c.call({"HELLO", "4"}).text.starts_with("NOPROTO"));
  Reply two = c.call({"HELLO", "2"});
  EXPECT_EQ(two.type, '*');
  EXPECT_EQ(c.call({"GET", "absent"}).type, '$');
}

TEST_F(RespServerTest, CommandDescribesTheCommands) {
  Client c(port());
  const int64_t n = c.call({"COMMAND", "COUNT"}).n;
  Reply all = c.call({"COMMAND"});
  EXPECT_EQ(static_cast<int64_t>(all.items.size()), n);
  Reply info = c.call({"COMMAND", "INFO", "mset", "nope"});
  ASSERT_EQ(info.items.size(), 2u);
  EXPECT_EQ(info.items[0].items[0].text, "mset");
  EXPECT_EQ(info.items[0].items[1].n, -3) << "arity";
  EXPECT_EQ(info.items[0].items[5].n, 2) << "keys every second argument";
  EXPECT_TRUE(info.items[1].null);
}

TEST_F(RespServerTest, MalformedInputClosesOnlyItsOwnConnection) {
  Client other(port());
  EXPECT_EQ(other.call({"SET", "k", "v"}).text, "OK");
  {
    Client bad(port());
    bad.send("*1\r\n$x\r\n");
    Reply r = bad.read();
    EXPECT_EQ(r.text, "ERR Protocol error: invalid bulk length");
    EXPECT_TRUE(bad.closed_by_server());
  }
  {
    // A bulk over --max-message-size (1 MiB here), refused on its header.
    Client big(port());
    big.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2000000\r\n");
    EXPECT_EQ(big.read().text, "ERR Protocol error: invalid bulk length");
    EXPECT_TRUE(big.closed_by_server());
  }
  {
    // Half a command, then the client leaves.
    Client half(port());
    half.send("*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$10\r\nabc");
  }
  EXPECT_EQ(other.call({"GET", "k"}).text, "v");
  EXPECT_EQ(store("default").get("k")[0].value, "v") << "the half-sent SET wrote nothing";
}

TEST_F(RespServerTest, QuitAndAHalfClosedClientGetTheirReplies) {
  Client c(port());
  c.send(Client::encode({"SET", "q", "1"}) + Client::encode({"QUIT"}) +
         Client::encode({"GET", "q"}));
  EXPECT_EQ(c.read().text, "OK");
  EXPECT_EQ(c.read().text, "OK");
  EXPECT_TRUE(c.closed_by_server()) << "nothing after QUIT runs";
  // `printf ... | nc`: the commands, then EOF; every reply still comes.
  Client piped(port());
  piped.send(Client::encode({"SET", "p", "1"}) + Client::encode({"SELECT", "disk"}) +
             Client::encode({"SET", "p", "2"}) + Client::encode({"GET", "p"}));
  piped.shutdown_writes();
  EXPECT_EQ(piped.read().text, "OK");
  EXPECT_EQ(piped.read().text, "OK");
  EXPECT_EQ(piped.read().text, "OK");
  EXPECT_EQ(piped.read().text, "2");
  EXPECT_TRUE(piped.closed_by_server());
}

TEST_F(RespServerTest, WritesThatMayBlockRunOnThePoolInOrder) {
  Client c(port());
  ASSERT_EQ(c.call({"SELECT", "disk"}).text, "OK");
  // A pipeline mixing pooled writes (LMDB) and inline reads of one key:
  // each read sees the write before it.
  std::string batch;
  for (int i = 0; i < 200; ++i) {
    batch += Client::encode({"SET", "k", std::to_string(i)}) + Client::encode({"GET", "k"});
  }
  c.send(batch);
  for (int i = 0; i < 200; ++i) {
    ASSERT_EQ(c.read().text, "OK");
    ASSERT_EQ(c.read().text, std::to_string(i));
  }
  const std::string info = c.call({"INFO"}).text;
  EXPECT_NE(info.find("store_disk:get=200"), std::string::npos) << info;
}

TEST_F(RespServerTest, AStoreThatAnswersLaterKeepsOrderPerKeyAndOverlapsTheRest) {
  Client c(port());
  ASSERT_EQ(c.call({"SELECT", "remote"}).text, "OK");
  // Reads of different keys, 5 ms each, pipelined: they overlap.
  std::string reads;
  for (int i = 0; i < 100; ++i) reads += Client::encode({"GET", "r" + std::to_string(i)});
  const auto start = std::chrono::steady_clock::now();
  c.send(reads);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(c.read().null);
  const auto took = std::chrono::steady_clock::now() - start;
  // Not a timing assertion on speed: one at a time would take 500 ms at
  // least, which is a matter of order, not of machine speed.
  EXPECT_LT(took, std::chrono::milliseconds(450)) << "the reads did not overlap";
  // One key, written and read in turn: every read sees the write before
  // it, and replies come in order.
  std::string batch;
  for (int i = 0; i < 50; ++i) {
    batch += Client::encode({"SET", "k", std::to_string(i)}) + Client::encode({"GET", "k"}) +
             Client::encode({"GET", "other" + std::to_string(i)});
  }
  batch += Client::encode({"MSET", "m1", "a", "m2", "b"}) + Client::encode({"MGET", "m1", "m2"}) +
           Client::encode({"DEL", "m1", "m2", "k"}) + Client::encode({"EXISTS", "m1", "k"});
  c.send(batch);
  for (int i = 0; i < 50; ++i) {
    ASSERT_EQ(c.read().text, "OK");
    ASSERT_EQ(c.read().text, std::to_string(i));
    ASSERT_TRUE(c.read().null);
  }
  EXPECT_EQ(c.read().text, "OK");
  Reply m = c.read();
  ASSERT_EQ(m.items.size(), 2u);
  EXPECT_EQ(m.items[0].text, "a");
  EXPECT_EQ(c.read().n, 3);
  EXPECT_EQ(c.read().n, 0);
  // A failing store: an error reply naming the error, and on we go.
  remote_->faults().set_failure(FaultStore::Failure::kUnavailable);
  Reply failed = c.call({"GET", "k"});
  EXPECT_TRUE(failed.text.starts_with("UNAVAILABLE")) << failed.text;
  remote_->faults().set_failure(FaultStore::Failure::kNone);
  EXPECT_EQ(c.call({"SET", "k", "back"}).text, "OK");
}

TEST_F(RespServerTest, ManyClientsSettingOneKeyAllSucceed) {
  // Every SET through the front supersedes what is stored; racing SETs of
  // one key take turns rather than losing to each other.
  for (const char* name : {"default", "remote"}) {
    const int sets = std::string(name) == "remote" ? 20 : 500;  // remote: 10 ms each, in turn
    std::vector<std::thread> threads;
    std::atomic<int> failed{0};
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        Client c(port());
        if (c.call({"SELECT", name}).text != "OK") ++failed;
        std::string batch;
        for (int i = 0; i < sets; ++i) batch += Client::encode({"SET", "hot", std::to_string(t)});
        c.send(batch);
        for (int i = 0; i < sets; ++i) {
          if (c.read().text != "OK") ++failed;
        }
      });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(failed.load(), 0) << name;
    EXPECT_EQ(store(name).get("hot").size(), 1u) << name << ": no siblings";
  }
}

TEST_F(RespServerTest, AClientThatDoesNotReadIsHeldBackNotLost) {
  // 20 KB values, 2000 GETs (40 MB of replies) sent without reading: the
  // connection stops reading at its output limit; another client is
  // served meanwhile; every reply then arrives, in order.
  const std::string value(20000, 'v');
  Client setter(port());
  ASSERT_EQ(setter.call({"SET", "big", value}).text, "OK");
  Client flood(port());
  std::thread sender([&] {
    std::string batch;
    for (int i = 0; i < 2000; ++i) batch += Client::encode({"GET", "big"});
    batch += Client::encode({"ECHO", "end"});
    flood.send(batch);  // blocks once both sides' buffers are full
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(setter.call({"PING"}).text, "PONG") << "others are still served";
  for (int i = 0; i < 2000; ++i) {
    Reply r = flood.read();
    ASSERT_EQ(r.text.size(), value.size()) << "reply " << i;
  }
  EXPECT_EQ(flood.read().text, "end");
  sender.join();
}

TEST_F(RespServerTest, ShutdownAnswersWhatIsInFlightThenCloses) {
  remote_->faults().set_delay(std::chrono::milliseconds(300));
  Client idle(port());
  EXPECT_EQ(idle.call({"PING"}).text, "PONG");
  Client busy(port());
  ASSERT_EQ(busy.call({"SELECT", "remote"}).text, "OK");
  busy.send(Client::encode({"SET", "k", "v"}));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::thread stopper([&] { server_->shutdown(std::chrono::seconds(5)); });
  EXPECT_TRUE(idle.closed_by_server());
  EXPECT_EQ(busy.read().text, "OK") << "the SET in flight was answered";
  EXPECT_TRUE(busy.closed_by_server());
  stopper.join();
  EXPECT_EQ(store("remote").get("k").size(), 1u);
}

}  // namespace
}  // namespace cairn::testing

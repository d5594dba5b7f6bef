// RespCommands: what the Redis-protocol front does with a command, apart
// from the connection that carries it (resp_server.h). The commands and
// their replies are listed in docs/network.md, "The Redis protocol".
//
// A command on a store whose calls never wait (the memory engine, a read
// of LMDB or the log engine) is answered at once, on the caller's thread.
// One that may wait is deferred: a store that routes answers from its
// non-blocking calls' callbacks; a write to an engine that syncs runs on a
// worker pool. Either way the session gets the reply through deliver().
//
// Thread-safe: sessions may run commands concurrently.

#ifndef CAIRN_SERVER_RESP_COMMANDS_H_
#define CAIRN_SERVER_RESP_COMMANDS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/versioned.h"
#include "server/access.h"
#include "server/serving.h"

namespace cairn::internal {

class Executor;
struct KeyLocks;

// The front's counters, for INFO and /metrics. Relaxed atomics.
struct RespStats {
  std::atomic<uint64_t> connections_received{0};
  std::atomic<uint64_t> connected{0};
  std::atomic<uint64_t> rejected{0};   // over the connection limit
  std::atomic<uint64_t> commands{0};
  std::atomic<uint64_t> errors{0};     // error replies
  std::atomic<uint64_t> protocol_errors{0};
};

// One connection's state, as the commands see it. The connection derives
// from it.
class RespSession {
 public:
  RespSession() = default;
  RespSession(const RespSession&) = delete;
  RespSession& operator=(const RespSession&) = delete;
  virtual ~RespSession() = default;

  // The reply to deferred command `ticket`: called once per deferred
  // command, from any thread.
  virtual void deliver(uint64_t ticket, std::string reply) = 0;
  // Keeps the session alive while a deferred command runs: a command
  // calls it exactly once when it defers, before it starts the work whose
  // end calls deliver().
  virtual std::shared_ptr<RespSession> keep() = 0;

  bool resp3 = false;       // HELLO 3 was sent
  const void* store = nullptr;  // the selected store; RespCommands' own type
  std::string store_name;
  std::string client_name;  // CLIENT SETNAME
  bool quit = false;        // QUIT: close once the replies so far are sent
  uint64_t id = 0;
  // Who the connection is (AUTH, HELLO ... AUTH; server/access.h), and
  // the names on its verified client certificate (TLS).
  // `caller` is who the token and certificate prove under `policy`; a
  // reloaded policy (a new pointer) identifies the connection again, so a
  // revoked token stops working on connections already open.
  std::string token;
  std::vector<std::string> cert_names;
  std::shared_ptr<const server::AccessPolicy> policy;
  uint64_t policy_generation = 0;  // server::Access::generation() when `policy` was taken
  server::Caller caller;
  // What `caller` may do on `granted_store` under `policy`, while
  // `granted_valid`: a command on the store then costs one test.
  const void* granted_store = nullptr;
  bool granted_valid = false;
  uint8_t granted = 0;
};

struct RespOptions {
  // What SETs and DELs increment in a key's vector clock (as the HTTP
  // front's PUT): writes through one front conflict instead of leaving
  // siblings.
  NodeId node_id = 0;
  // The port served, for INFO.
  int port = 0;
  // Who may do what (server/access.h). Null: anyone anything.
  std::shared_ptr<server::Access> access;
};

class RespCommands {
 public:
  // `executor` runs the writes that may block; borrowed, must outlive this.
  RespCommands(const ServedStores& stores, RespOptions options, Executor* executor);
  ~RespCommands();
  RespCommands(const RespCommands&) = delete;
  RespCommands& operator=(const RespCommands&) = delete;

  // Selects the default store for a new session: the only one, or the one
  // named "default".
  void open(RespSession& session) const;

  // The keys a command reads or writes (views into `args`), so a
  // connection can keep a key's commands in order while others overlap.
  // Empty for commands that touch no key.
  struct Access {
    std::vector<std::string_view> keys;
    bool write = false;
  };
  Access access(std::span<const std::string_view> args) const;

  // Runs a command: appends its reply to `*out` and returns true, or
  // returns false and later calls session.deliver(ticket, reply).
  // REQUIRES: !args.empty().
  bool run(RespSession& session, std::span<const std::string_view> args, uint64_t ticket,
           std::string* out);

  RespStats& stats() { return stats_; }
  // The port served, for INFO (known once the server is bound).
  void set_port(int port) { options_.port = port; }

  struct Served;

 private:
  bool dispatch(RespSession& session, std::span<const std::string_view> args, uint64_t ticket,
                std::string* out);
  // INFO's text.
  std::string info(const RespSession& session) const;
  // "a, b, c": the stores served, for error messages.
  std::string store_names() const;

  std::map<std::string, std::unique_ptr<Served>> stores_;
  // Whether the session's caller may run command `c` (else the refusal
  // is in `out`). Out of line, so that a profile shows what the checks
  // cost (bench/run-security --instructions).
  [[gnu::noinline]] bool admitted(RespSession& session, std::string_view c, std::string* out) const;
  // AUTH and HELLO ... AUTH: sets the session's token if it proves a
  // principal (named `user`, unless empty or "default"); else WRONGPASS.
  bool authenticate(RespSession& session, std::string_view user, std::string_view token,
                    std::string* out) const;

  RespOptions options_;
  Executor* executor_;
  std::unique_ptr<KeyLocks> locks_;  // turns for writes of one key
  RespStats stats_;
  std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  mutable std::atomic<uint64_t> next_client_id_{1};
};

}  // namespace cairn::internal

#endif  // CAIRN_SERVER_RESP_COMMANDS_H_

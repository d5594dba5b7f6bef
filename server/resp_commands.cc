#include "server/resp_commands.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <exception>
#include <mutex>
#include <utility>

#include "cairn/errors.h"
#include "cairn/ordered_puts.h"
#include "cairn/version.h"
#include "core/executor.h"
#include "server/resp_protocol.h"

namespace cairn::internal {

// How a store's calls run: here and now, from a non-blocking call's
// callback, or on the worker pool.
enum class Mode { kInline, kAsync, kPool };

// Turns for the blocking writes of one key through this front (the
// non-blocking ones take theirs in Served::ordered).
struct KeyLocks {
  std::mutex& of(std::string_view key) {
    return stripes[std::hash<std::string_view>()(key) % stripes.size()];
  }

  std::array<std::mutex, 256> stripes;
};

struct RespCommands::Served {
  std::string name;
  ServedStore s;
  // Identity values need no text form: GET sends the stored bytes.
  bool raw_keys = false;
  bool raw_values = false;
  Mode reads = Mode::kInline;
  Mode writes = Mode::kInline;
  // SETs through the store's non-blocking calls, one of a key in flight at
  // a time: two at once would merge the same clocks and one would come back
  // obsolete. Set only when writes == kAsync.
  std::unique_ptr<OrderedPuts> ordered;

  std::string key(std::string_view text) const {
    return raw_keys ? std::string(text) : s.key->parse_text(text);
  }
  std::string value(std::string_view text) const {
    return raw_values ? std::string(text) : s.value->parse_text(text);
  }
};

namespace {

using Args = std::span<const std::string_view>;
using Served = RespCommands::Served;

constexpr int kMaxTries = 16;  // as the typed client's put

bool is(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    // ASCII only, as Redis compares command names: no locale, no call.
    char c = a[i];
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (c != b[i]) return false;
  }
  return true;
}

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

Mode mode_of(const Store& store, bool write) {
  if (write ? !store.writes_may_block() : !store.reads_may_block()) return Mode::kInline;
  return store.async_calls_block() ? Mode::kPool : Mode::kAsync;
}

// A failed call as an error reply: Redis' "ERR" for bad input, the cairn
// error's kind otherwise ("-UNAVAILABLE ...", "-OBSOLETEVERSION ...").
void error_reply(std::string* out, std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const InvalidArgument& x) {
    resp::error(out, std::string("ERR ") + x.what());
  } catch (const ObsoleteVersion& x) {
    resp::error(out, std::string("OBSOLETE ") + x.what());
  } catch (const Error& x) {
    resp::error(out, upper(to_string(x.code())) + " " + x.what());
  } catch (const std::exception& x) {
    resp::error(out, std::string("ERR internal error: ") + x.what());
  }
}

void wrong_args(std::string* out, std::string_view command) {
  resp::error(out, "ERR wrong number of arguments for '" + lower(command) + "' command");
}

// GET's reply from what the store returned.
void get_reply(const Served& s, std::string_view key, const std::vector<Versioned>& versions,
               bool resp3, std::string* out) {
  if (versions.empty()) return resp::null(out, resp3);
  if (versions.size() > 1) {
    return resp::error(out, "CONFLICT key " + printable_key(key) + " has " +
                                std::to_string(versions.size()) +
                                " concurrent versions: read them with CAIRN.VERSIONS and write "
                                "their resolution with CAIRN.PUT, or give the store a `resolve` "
                                "layer");
  }
  if (s.raw_values) return resp::bulk(out, versions[0].value);
  resp::bulk(out, s.s.value->format_text(versions[0].value));
}

VectorClock merged(const std::vector<VectorClock>& clocks) {
  VectorClock all;
  for (const VectorClock& c : clocks) all = all.merged(c);
  return all;
}

// The clock of a write that supersedes every version in `clocks`.
VectorClock successor(const std::vector<VectorClock>& clocks, NodeId node) {
  VectorClock clock = merged(clocks);
  clock.increment(node, now_ms());
  return clock;
}

// The reply of a deferred command: the error it failed with, or what
// `fill` writes (the error it throws, if it does).
std::string reply_of(std::exception_ptr error, const std::function<void(std::string*)>& fill) {
  std::string reply;
  if (!error) {
    try {
      fill(&reply);
      return reply;
    } catch (...) {
      error = std::current_exception();
      reply.clear();
    }
  }
  error_reply(&reply, error);
  return reply;
}

VectorClock parse_clock(std::string_view text) {
  try {
    return VectorClock::parse(text);
  } catch (const InvalidArgument& e) {
    throw InvalidArgument("the clock '" + std::string(text) + "': " + e.what());
  }
}

// Blocking forms of the data commands, for stores whose calls never wait
// (run inline) and for the worker pool.

void set_sync(Store& store, std::string_view key, std::string value, NodeId node,
              KeyLocks& locks, int64_t ttl_ms = 0) {
  // Two SETs of one key through this front read the same clocks and write
  // the same successor, so one would come back obsolete and retry (and
  // under a pipelined load on one key, as redis-benchmark's, lose again
  // and again): they take turns instead.
  std::lock_guard lock(locks.of(key));
  Versioned v{std::move(value), {}};
  v.ttl_ms = ttl_ms;
  for (int attempt = 0; attempt < kMaxTries; ++attempt) {
    v.clock = successor(store.versions(key), node);
    if (store.put(key, v) == PutResult::kStored) return;
  }
  throw ObsoleteVersion("SET lost " + std::to_string(kMaxTries) + " races in a row for the key");
}

bool del_sync(Store& store, const std::string& key) {
  const std::vector<VectorClock> clocks = store.versions(key);
  if (clocks.empty()) return false;
  return store.remove(key, merged(clocks));
}

// Counts down the parts of a command that runs as several non-blocking
// calls (MSET, DEL of many keys), and delivers once the last answers.
struct Join {
  Join(std::shared_ptr<RespSession> session, uint64_t ticket, size_t parts)
      : session(std::move(session)), ticket(ticket), left(parts) {}

  void done(int64_t n, std::exception_ptr e) {
    std::unique_lock lock(mu);
    count += n;
    if (e && !error) error = e;
    if (--left > 0) return;
    lock.unlock();
    std::string out;
    if (error) {
      error_reply(&out, error);
    } else if (ok_reply) {
      resp::simple(&out, "OK");
    } else {
      resp::integer(&out, count);
    }
    session->deliver(ticket, std::move(out));
  }

  std::shared_ptr<RespSession> session;
  uint64_t ticket;
  bool ok_reply = false;
  std::mutex mu;
  size_t left;            // guarded by mu
  int64_t count = 0;      // guarded by mu
  std::exception_ptr error;  // guarded by mu
};

void del_async(std::shared_ptr<Store> store, std::string key,
               std::function<void(int64_t, std::exception_ptr)> done) {
  Store& s = *store;
  const std::string k = key;
  s.async_versions(k, [store = std::move(store), key = std::move(key), done = std::move(done)](
                          std::vector<VectorClock> clocks, std::exception_ptr e) mutable {
    if (e) return done(0, e);
    if (clocks.empty()) return done(0, nullptr);
    Store& s2 = *store;
    s2.async_remove(key, merged(clocks), [store = std::move(store), done = std::move(done)](
                                             bool removed, std::exception_ptr e2) {
      done(removed ? 1 : 0, e2);
    });
  });
}

// ---- Commands that touch no store ----------------------------------------

struct CommandInfo {
  const char* name;
  int arity;  // Redis' convention: -N means at least N
  const char* flags;
  int first_key, last_key, step;
};

// What COMMAND describes (enough for redis-cli's hints and for clients
// that ask which arguments are keys).
constexpr CommandInfo kCommands[] = {
    {"get", 2, "readonly fast", 1, 1, 1},
    {"set", 3, "write denyoom", 1, 1, 1},
    {"del", -2, "write", 1, -1, 1},
    {"exists", -2, "readonly fast", 1, -1, 1},
    {"mget", -2, "readonly fast", 1, -1, 1},
    {"mset", -3, "write denyoom", 1, -1, 2},
    {"ping", -1, "fast", 0, 0, 0},
    {"echo", 2, "fast", 0, 0, 0},
    {"hello", -1, "noscript loading stale fast no_auth", 0, 0, 0},
    {"info", -1, "loading stale", 0, 0, 0},
    {"command", -1, "loading stale", 0, 0, 0},
    {"select", 2, "loading stale fast", 0, 0, 0},
    {"client", -2, "loading stale", 0, 0, 0},
    {"config", -2, "admin loading stale", 0, 0, 0},
    {"quit", -1, "loading stale fast no_auth", 0, 0, 0},
    {"cairn.stores", 1, "loading stale fast", 0, 0, 0},
    {"cairn.versions", 2, "readonly", 1, 1, 1},
    {"cairn.put", 4, "write denyoom", 1, 1, 1},
    {"cairn.del", 3, "write", 1, 1, 1},
};

void command_info(std::string* out, const CommandInfo& c) {
  resp::array(out, 10);
  resp::bulk(out, c.name);
  resp::integer(out, c.arity);
  std::vector<std::string_view> flags;
  std::string_view f = c.flags;
  while (!f.empty()) {
    const size_t sp = f.find(' ');
    flags.push_back(f.substr(0, sp));
    f = sp == std::string_view::npos ? std::string_view() : f.substr(sp + 1);
  }
  resp::array(out, flags.size());
  for (std::string_view x : flags) resp::simple(out, x);
  resp::integer(out, c.first_key);
  resp::integer(out, c.last_key);
  resp::integer(out, c.step);
  for (int i = 0; i < 4; ++i) resp::array(out, 0);  // ACL categories, tips, key specs, subcommands
}

const CommandInfo* find_command(std::string_view name) {
  for (const CommandInfo& c : kCommands) {
    if (is(name, c.name)) return &c;
  }
  return nullptr;
}

void command(Args args, std::string* out, bool resp3) {
  if (args.size() == 1) {
    resp::array(out, std::size(kCommands));
    for (const CommandInfo& c : kCommands) command_info(out, c);
    return;
  }
  const std::string_view sub = args[1];
  if (is(sub, "count")) return resp::integer(out, std::size(kCommands));
  if (is(sub, "list")) {
    resp::array(out, std::size(kCommands));
    for (const CommandInfo& c : kCommands) resp::bulk(out, c.name);
    return;
  }
  if (is(sub, "info")) {
    resp::array(out, args.size() - 2);
    for (size_t i = 2; i < args.size(); ++i) {
      const CommandInfo* c = find_command(args[i]);
      if (c == nullptr) {
        resp::null(out, resp3);
      } else {
        command_info(out, *c);
      }
    }
    return;
  }
  if (is(sub, "docs")) return resp::map(out, 0, resp3);  // none: redis-cli then shows no hints
  resp::error(out, "ERR unknown subcommand '" + std::string(sub) +
                       "' of COMMAND; try COMMAND, COMMAND COUNT, COMMAND LIST, COMMAND INFO, "
                       "COMMAND DOCS");
}

}  // namespace

RespCommands::RespCommands(const ServedStores& stores, RespOptions options, Executor* executor)
    : options_(options), executor_(executor), locks_(std::make_unique<KeyLocks>()) {
  for (const auto& [name, s] : stores) {
    auto served = std::make_unique<Served>();
    served->name = name;
    served->s = s;
    served->raw_keys = s.key->describe().starts_with("identity");
    served->raw_values = s.value->describe().starts_with("identity");
    served->reads = mode_of(*s.store, false);
    served->writes = mode_of(*s.store, true);
    if (served->writes == Mode::kAsync) {
      served->ordered = std::make_unique<OrderedPuts>(s.store, options_.node_id, kMaxTries);
    }
    stores_.emplace(name, std::move(served));
  }
}

RespCommands::~RespCommands() = default;

void RespCommands::open(RespSession& session) const {
  session.id = next_client_id_.fetch_add(1);
  const Served* chosen = nullptr;
  if (stores_.size() == 1) chosen = stores_.begin()->second.get();
  if (auto it = stores_.find("default"); it != stores_.end()) chosen = it->second.get();
  session.store = chosen;
  session.store_name = chosen != nullptr ? chosen->name : "";
}

RespCommands::Access RespCommands::access(Args args) const {
  Access a;
  const std::string_view c = args[0];
  if (is(c, "get") || is(c, "cairn.versions")) {
    if (args.size() >= 2) a.keys.push_back(args[1]);
  } else if (is(c, "set") || is(c, "setex") || is(c, "cairn.put") || is(c, "cairn.del")) {
    if (args.size() >= 2) a.keys.push_back(args[1]);
    a.write = true;
  } else if (is(c, "mget") || is(c, "exists")) {
    a.keys.assign(args.begin() + 1, args.end());
  } else if (is(c, "del")) {
    a.keys.assign(args.begin() + 1, args.end());
    a.write = true;
  } else if (is(c, "mset")) {
    for (size_t i = 1; i < args.size(); i += 2) a.keys.push_back(args[i]);
    a.write = true;
  }
  return a;
}

std::string RespCommands::store_names() const {
  std::string names;
  for (const auto& [name, unused] : stores_) names += (names.empty() ? "" : ", ") + name;
  return names;
}

bool RespCommands::run(RespSession& session, Args args, uint64_t ticket, std::string* out) {
  stats_.commands.fetch_add(1, std::memory_order_relaxed);
  const size_t before = out->size();
  bool answered = true;
  try {
    answered = dispatch(session, args, ticket, out);
  } catch (...) {
    out->resize(before);
    error_reply(out, std::current_exception());
    answered = true;
  }
  if (answered && out->size() > before && (*out)[before] == '-') {
    stats_.errors.fetch_add(1, std::memory_order_relaxed);
  }
  return answered;
}

namespace {

// What a command needs of its caller: nothing (the connection's own
// commands), to be known to the policy, or read or write on the selected
// store.
enum class Needs { kNothing, kKnown, kRead, kWrite };

Needs needs_of(std::string_view c) {
  using std::literals::operator""sv;
  // Names as string_views (their lengths known), so most are passed over
  // on a length test.
  static constexpr std::pair<std::string_view, Needs> kNeeds[] = {
      {"get"sv, Needs::kRead},          {"set"sv, Needs::kWrite},
      {"mget"sv, Needs::kRead},         {"exists"sv, Needs::kRead},
      {"cairn.versions"sv, Needs::kRead}, {"setex"sv, Needs::kWrite},
      {"mset"sv, Needs::kWrite},        {"del"sv, Needs::kWrite},
      {"cairn.put"sv, Needs::kWrite},   {"cairn.del"sv, Needs::kWrite},
      {"select"sv, Needs::kKnown},      {"cairn.stores"sv, Needs::kKnown},
      {"info"sv, Needs::kKnown},        {"client"sv, Needs::kKnown},
      {"config"sv, Needs::kKnown}};
  for (const auto& [name, needs] : kNeeds) {
    if (c.size() == name.size() && is(c, name)) return needs;
  }
  return Needs::kNothing;  // auth, hello, ping, echo, quit, command, and unknown ones
}

// The policy again, after a reload: the connection's caller is identified
// again if it changed.
[[gnu::noinline]] void retake_policy(server::Access& access, RespSession& session) {
  session.policy_generation = access.generation();  // before the policy: see Access
  std::shared_ptr<const server::AccessPolicy> policy = access.policy();
  if (session.policy != policy) {
    session.caller = policy->identify(session.token, session.cert_names);
    session.policy = std::move(policy);
    session.granted_valid = false;
  }
}

// admitted() past its fast path: the command is refused (its refusal goes
// to `out`), or is one the fast path does not decide.
[[gnu::noinline]] bool admitted_slowly(server::Access& access, const RespSession& session,
                                       std::string_view c, Needs needs, std::string* out) {
  const server::AccessPolicy& p = *session.policy;
  const server::Caller& who = session.caller;
  // The command's name goes into a refusal only: lower-cased then. With no
  // store selected, a store's command fails on that, but only for a caller
  // the policy knows: anyone else learns nothing before proving itself.
  auto decide = [&](std::string_view op) {
    if (needs == Needs::kKnown || session.store == nullptr) return p.check_known(who, op);
    return p.check(who, session.store_name,
                   needs == Needs::kRead ? internal::kRead : internal::kWrite, op);
  };
  if (decide(c).allowed()) return true;
  const server::Decision d = decide(lower(c));
  access.refused("resp", d);
  if (d.kind == server::Decision::Kind::kDenied) {
    resp::error(out, "NOPERM " + d.reason);
  } else {
    resp::error(out, "NOAUTH Authentication required: " + d.reason +
                         " (AUTH [user] token, or HELLO 3 AUTH user token)");
  }
  return false;
}

}  // namespace

bool RespCommands::admitted(RespSession& session, std::string_view c, std::string* out) const {
  server::Access& access = *options_.access;
  if (session.token.empty() && access.open()) return true;
  const Needs needs = needs_of(c);
  if (needs == Needs::kNothing) return true;
  // The policy is looked up (under Access's lock) only when it was
  // replaced since the connection last took it.
  if (session.policy == nullptr || session.policy_generation != access.generation()) {
    retake_policy(access, session);
  }
  if (session.policy->open() && session.token.empty()) return true;
  if (needs != Needs::kKnown && session.store != nullptr) {
    if (!session.granted_valid || session.granted_store != session.store) {
      session.granted = session.policy->granted(session.caller, session.store_name);
      session.granted_store = session.store;
      session.granted_valid = true;
    }
    const uint8_t need = needs == Needs::kRead ? internal::kRead : internal::kWrite;
    if ((session.granted & need) == need) return true;
  }
  return admitted_slowly(access, session, c, needs, out);
}

bool RespCommands::authenticate(RespSession& session, std::string_view user, std::string_view token,
                                std::string* out) const {
  auto wrongpass = [&](const std::string& why) {
    if (options_.access) {
      options_.access->refused("resp", server::Decision{server::Decision::Kind::kUnauthenticated, why});
    }
    resp::error(out, "WRONGPASS invalid username-password pair or user is disabled.");
    return false;
  };
  if (options_.access == nullptr) return wrongpass("AUTH on a server with no security policy");
  std::shared_ptr<const server::AccessPolicy> policy = options_.access->policy();
  server::Caller who = policy->identify(token, session.cert_names);
  if (who.bad_token || who.kind != server::Caller::Kind::kPrincipal) {
    return wrongpass("AUTH with a token that matches no principal");
  }
  if (!user.empty() && !is(user, "default") && user != who.name) {
    return wrongpass("AUTH as '" + std::string(user) + "' with the token of '" + who.name + "'");
  }
  session.token = std::string(token);
  session.caller = std::move(who);
  session.policy = std::move(policy);
  session.granted_valid = false;
  return true;
}

bool RespCommands::dispatch(RespSession& session, Args args, uint64_t ticket, std::string* out) {
  bool answered = true;
  if (options_.access != nullptr && !admitted(session, args[0], out)) return true;
  {
    const std::string_view c = args[0];
    const auto* s = static_cast<const Served*>(session.store);
    const bool resp3 = session.resp3;
    auto need_store = [&] {
      if (s != nullptr) return true;
      resp::error(out, "ERR no store selected: this server serves " +
                           std::to_string(stores_.size()) + " stores (" + store_names() +
                           ") and none is named 'default'; SELECT one first");
      return false;
    };
    // Defers `work` (which returns the reply) to the worker pool.
    auto pooled = [&](std::function<void(std::string*)> work) {
      executor_->submit([keep = session.keep(), ticket, work = std::move(work)] {
        keep->deliver(ticket, reply_of(nullptr, work));
      });
      answered = false;
    };
    // Runs `work` here if `mode` says the store will not wait, else on
    // the pool (the clock-aware commands have no non-blocking form).
    auto here_or_pooled = [&](Mode mode, std::function<void(std::string*)> work) {
      if (mode == Mode::kInline) return work(out);
      pooled(std::move(work));
    };

    if (is(c, "get")) {
      if (args.size() != 2) return wrong_args(out, c), true;
      if (!need_store()) return true;
      if (s->reads == Mode::kInline) {
        // The fast path: no copy of a raw key; the vector's capacity kept.
        thread_local std::vector<Versioned> versions;
        const std::string parsed = s->raw_keys ? std::string() : s->key(args[1]);
        const std::string_view key = s->raw_keys ? args[1] : std::string_view(parsed);
        s->s.store->get_into(key, &versions);
        get_reply(*s, key, versions, resp3, out);
        return true;
      }
      std::string key = s->key(args[1]);
      if (s->reads == Mode::kAsync) {
        const std::string k = key;
        s->s.store->async_get(k, [keep = session.keep(), ticket, s, resp3, key = std::move(key)](
                                     std::vector<Versioned> v, std::exception_ptr e) {
          keep->deliver(ticket, reply_of(e, [&](std::string* o) { get_reply(*s, key, v, resp3, o); }));
        });
        answered = false;
      } else {
        pooled([s, resp3, key = std::move(key)](std::string* o) {
          get_reply(*s, key, s->s.store->get(key), resp3, o);
        });
      }
    } else if ((is(c, "set") && (args.size() == 5)) || is(c, "setex")) {
      // A time to live: SET key value EX seconds | PX ms, or SETEX key
      // seconds value. The store's `ttl` layer keeps it (docs/ttl.md);
      // a store without one refuses. Written on a worker: it is rare.
      if (is(c, "setex") && args.size() != 4) return wrong_args(out, c), true;
      const bool setex = is(c, "setex");
      const std::string_view unit = setex ? std::string_view("ex") : args[3];
      const std::string_view amount = setex ? args[2] : args[4];
      int64_t n = 0;
      const bool number = !amount.empty() && amount.size() <= 12 &&
                          std::all_of(amount.begin(), amount.end(),
                                      [](char ch) { return ch >= '0' && ch <= '9'; });
      if (number) n = std::stoll(std::string(amount));
      if (!is(unit, "ex") && !is(unit, "px")) {
        resp::error(out, "ERR syntax error: cairn's SET takes a key, a value and at most EX "
                         "seconds or PX milliseconds (NX, XX, GET, KEEPTTL are not supported)");
        return true;
      }
      if (!number || n <= 0) {
        resp::error(out, "ERR invalid expire time in '" + std::string(c) + "' command");
        return true;
      }
      if (!need_store()) return true;
      const int64_t ttl_ms = is(unit, "ex") ? n * 1000 : n;
      pooled([s, node = options_.node_id, locks = locks_.get(), key = s->key(args[1]),
              value = s->value(setex ? args[3] : args[2]), ttl_ms](std::string* o) {
        set_sync(*s->s.store, key, value, node, *locks, ttl_ms);
        resp::simple(o, "OK");
      });
    } else if (is(c, "set")) {
      if (args.size() != 3) {
        if (args.size() > 3) {
          resp::error(out, "ERR syntax error: cairn's SET takes a key, a value and at most EX "
                           "seconds or PX milliseconds (NX, XX, GET, KEEPTTL are not supported)");
          return true;
        }
        return wrong_args(out, c), true;
      }
      if (!need_store()) return true;
      if (s->writes == Mode::kInline && s->raw_keys) {  // the fast path: no key copy
        set_sync(*s->s.store, args[1], s->value(args[2]), options_.node_id, *locks_);
        resp::simple(out, "OK");
        return true;
      }
      std::string key = s->key(args[1]);
      std::string value = s->value(args[2]);
      if (s->writes == Mode::kInline) {
        set_sync(*s->s.store, key, std::move(value), options_.node_id, *locks_);
        resp::simple(out, "OK");
      } else if (s->writes == Mode::kAsync) {
        s->ordered->put(std::move(key), std::move(value),
                        [keep = session.keep(), ticket](VectorClock, std::exception_ptr e) {
                          keep->deliver(ticket,
                                        reply_of(e, [](std::string* o) { resp::simple(o, "OK"); }));
                        });
        answered = false;
      } else {
        pooled([s, node = options_.node_id, locks = locks_.get(), key = std::move(key),
                value = std::move(value)](std::string* o) {
          set_sync(*s->s.store, key, value, node, *locks);
          resp::simple(o, "OK");
        });
      }
    } else if (is(c, "mset")) {
      if (args.size() < 3 || args.size() % 2 == 0) return wrong_args(out, c), true;
      if (!need_store()) return true;
      std::vector<std::pair<std::string, std::string>> pairs;
      for (size_t i = 1; i < args.size(); i += 2) pairs.emplace_back(s->key(args[i]), s->value(args[i + 1]));
      if (s->writes == Mode::kInline) {
        for (const auto& [k, v] : pairs) set_sync(*s->s.store, k, v, options_.node_id, *locks_);
        resp::simple(out, "OK");
      } else if (s->writes == Mode::kAsync) {
        auto join = std::make_shared<Join>(session.keep(), ticket, pairs.size());
        join->ok_reply = true;
        for (auto& [k, v] : pairs) {
          s->ordered->put(std::move(k), std::move(v),
                          [join](VectorClock, std::exception_ptr e) { join->done(0, e); });
        }
        answered = false;
      } else {
        pooled([s, node = options_.node_id, locks = locks_.get(), pairs = std::move(pairs)](
                   std::string* o) {
          for (const auto& [k, v] : pairs) set_sync(*s->s.store, k, v, node, *locks);
          resp::simple(o, "OK");
        });
      }
    } else if (is(c, "del")) {
      if (args.size() < 2) return wrong_args(out, c), true;
      if (!need_store()) return true;
      std::vector<std::string> keys;
      for (size_t i = 1; i < args.size(); ++i) keys.push_back(s->key(args[i]));
      if (s->writes == Mode::kInline) {
        int64_t n = 0;
        for (const std::string& k : keys) n += del_sync(*s->s.store, k) ? 1 : 0;
        resp::integer(out, n);
      } else if (s->writes == Mode::kAsync) {
        auto join = std::make_shared<Join>(session.keep(), ticket, keys.size());
        for (std::string& k : keys) {
          del_async(s->s.store, std::move(k),
                    [join](int64_t n, std::exception_ptr e) { join->done(n, e); });
        }
        answered = false;
      } else {
        pooled([s, keys = std::move(keys)](std::string* o) {
          int64_t n = 0;
          for (const std::string& k : keys) n += del_sync(*s->s.store, k) ? 1 : 0;
          resp::integer(o, n);
        });
      }
    } else if (is(c, "mget") || is(c, "exists")) {
      if (args.size() < 2) return wrong_args(out, c), true;
      if (!need_store()) return true;
      const bool exists = is(c, "exists");
      std::vector<std::string> keys;
      for (size_t i = 1; i < args.size(); ++i) keys.push_back(s->key(args[i]));
      auto reply = [s, exists, resp3](const std::vector<std::string>& ks,
                                      const std::map<std::string, std::vector<Versioned>>& found,
                                      std::string* o) {
        if (exists) {
          int64_t n = 0;
          for (const std::string& k : ks) n += found.contains(k) ? 1 : 0;
          return resp::integer(o, n);
        }
        std::string items;
        for (const std::string& k : ks) {
          auto it = found.find(k);
          if (it == found.end()) {
            resp::null(&items, resp3);
            continue;
          }
          const size_t mark = items.size();
          get_reply(*s, k, it->second, resp3, &items);
          if (items[mark] == '-') {  // siblings: the whole reply is that error
            o->append(items, mark);
            return;
          }
        }
        resp::array(o, ks.size());
        o->append(items);
      };
      if (s->reads == Mode::kInline) {
        reply(keys, s->s.store->get_all(keys), out);
      } else if (s->reads == Mode::kAsync) {
        std::vector<std::string> copy = keys;
        s->s.store->async_get_all(
            std::move(copy), [keep = session.keep(), ticket, keys = std::move(keys), reply](
                                 std::map<std::string, std::vector<Versioned>> found,
                                 std::exception_ptr e) {
              keep->deliver(ticket, reply_of(e, [&](std::string* o) { reply(keys, found, o); }));
            });
        answered = false;
      } else {
        pooled([s, keys = std::move(keys), reply](std::string* o) {
          reply(keys, s->s.store->get_all(keys), o);
        });
      }
    } else if (is(c, "cairn.versions")) {
      if (args.size() != 2) return wrong_args(out, c), true;
      if (!need_store()) return true;
      auto work = [s, resp3, key = s->key(args[1])](std::string* o) {
        const std::vector<Versioned> versions = s->s.store->get(key);
        resp::array(o, versions.size());
        for (const Versioned& v : versions) {
          resp::map(o, 2, resp3);
          resp::bulk(o, "value");
          resp::bulk(o, s->raw_values ? v.value : s->s.value->format_text(v.value));
          resp::bulk(o, "clock");
          resp::bulk(o, v.clock.to_string());
        }
      };
      here_or_pooled(s->reads, std::move(work));
    } else if (is(c, "cairn.put")) {
      // The store's own put, at the clock given (as `cairn put --clock`):
      // it replaces the versions the clock dominates, stands beside the
      // concurrent ones, and is refused if a stored version is newer.
      if (args.size() != 4) return wrong_args(out, c), true;
      if (!need_store()) return true;
      VectorClock clock = parse_clock(args[3]);
      clock.set_timestamp_ms(now_ms());  // the write's time, as the CLI's --clock
      auto work = [s, key = s->key(args[1]), value = s->value(args[2]),
                   clock = std::move(clock)](std::string* o) {
        VectorClock written;
        if (s->s.store->put(key, Versioned{value, clock}, &written) != PutResult::kStored) {
          return resp::error(o, "OBSOLETE the key has a version at or after " + clock.to_string() +
                                    "; nothing was written");
        }
        resp::bulk(o, written.to_string());
      };
      here_or_pooled(s->writes, std::move(work));
    } else if (is(c, "cairn.del")) {
      // The store's own delete: the versions at or before the clock go,
      // newer and concurrent ones stay.
      if (args.size() != 3) return wrong_args(out, c), true;
      if (!need_store()) return true;
      auto work = [s, key = s->key(args[1]), clock = parse_clock(args[2])](std::string* o) {
        resp::integer(o, s->s.store->remove(key, clock) ? 1 : 0);
      };
      here_or_pooled(s->writes, std::move(work));
    } else if (is(c, "ping")) {
      if (args.size() > 2) return wrong_args(out, c), true;
      if (args.size() == 2) {
        resp::bulk(out, args[1]);
      } else {
        resp::simple(out, "PONG");
      }
    } else if (is(c, "echo")) {
      if (args.size() != 2) return wrong_args(out, c), true;
      resp::bulk(out, args[1]);
    } else if (is(c, "quit")) {
      session.quit = true;
      resp::simple(out, "OK");
    } else if (is(c, "select")) {
      if (args.size() != 2) return wrong_args(out, c), true;
      auto it = stores_.find(std::string(args[1]));
      if (it == stores_.end() && args[1] == "0") {
        // Clients select database 0 by default: the default store.
        if (auto d = stores_.find("default"); d != stores_.end()) it = d;
        if (stores_.size() == 1) it = stores_.begin();
      }
      if (it == stores_.end()) {
        resp::error(out, "ERR no store '" + std::string(args[1]) +
                             "': SELECT takes a store's name; this server serves " + store_names());
        return true;
      }
      session.store = it->second.get();
      session.store_name = it->first;
      resp::simple(out, "OK");
    } else if (is(c, "cairn.stores")) {
      resp::array(out, stores_.size());
      for (const auto& [name, unused] : stores_) resp::bulk(out, name);
    } else if (is(c, "hello")) {
      size_t i = 1;
      int proto = session.resp3 ? 3 : 2;
      if (args.size() > 1) {
        const std::string_view v = args[1];
        if (v != "2" && v != "3") {
          resp::error(out, "NOPROTO unsupported protocol version " + std::string(v) +
                               ": cairn speaks RESP2 and RESP3");
          return true;
        }
        proto = v == "2" ? 2 : 3;
        i = 2;
      }
      std::string name = session.client_name;
      for (; i < args.size(); ++i) {
        if (is(args[i], "auth") && i + 2 < args.size()) {
          if (!authenticate(session, args[i + 1], args[i + 2], out)) return true;
          i += 2;
          continue;
        }
        if (is(args[i], "setname") && i + 1 < args.size()) {
          name = std::string(args[++i]);
          continue;
        }
        resp::error(out, "ERR syntax error in HELLO option '" + std::string(args[i]) + "'");
        return true;
      }
      session.resp3 = proto == 3;
      session.client_name = name;
      resp::map(out, 7, session.resp3);
      resp::bulk(out, "server");
      resp::bulk(out, "cairn");
      resp::bulk(out, "version");
      resp::bulk(out, version());
      resp::bulk(out, "proto");
      resp::integer(out, proto);
      resp::bulk(out, "id");
      resp::integer(out, static_cast<int64_t>(session.id));
      resp::bulk(out, "mode");
      resp::bulk(out, "standalone");
      resp::bulk(out, "role");
      resp::bulk(out, "master");
      resp::bulk(out, "modules");
      resp::array(out, 0);
    } else if (is(c, "auth")) {
      // AUTH token, or AUTH user token (Redis 6's form; the user must be
      // the token's principal, or "default").
      if (args.size() != 2 && args.size() != 3) return wrong_args(out, c), true;
      const std::string_view user = args.size() == 3 ? args[1] : std::string_view();
      if (authenticate(session, user, args.back(), out)) resp::simple(out, "OK");
    } else if (is(c, "command")) {
      command(args, out, resp3);
    } else if (is(c, "client")) {
      const std::string_view sub = args.size() > 1 ? args[1] : "";
      if (is(sub, "setname") && args.size() == 3) {
        session.client_name = std::string(args[2]);
        resp::simple(out, "OK");
      } else if (is(sub, "getname") && args.size() == 2) {
        if (session.client_name.empty()) {
          resp::null(out, resp3);
        } else {
          resp::bulk(out, session.client_name);
        }
      } else if (is(sub, "id") && args.size() == 2) {
        resp::integer(out, static_cast<int64_t>(session.id));
      } else if (is(sub, "setinfo") && args.size() == 4) {
        resp::simple(out, "OK");  // library name and version: nothing to keep
      } else {
        resp::error(out, "ERR unknown or malformed CLIENT subcommand '" + std::string(sub) +
                             "'; cairn knows CLIENT SETNAME, GETNAME, ID, SETINFO");
      }
    } else if (is(c, "config")) {
      // redis-benchmark asks for `save` and `appendonly`; nothing here is
      // a Redis setting.
      if (args.size() >= 3 && is(args[1], "get")) {
        resp::map(out, 0, resp3);
      } else {
        resp::error(out, "ERR cairn has no Redis settings to change; its config is YAML");
      }
    } else if (is(c, "info")) {
      resp::bulk(out, info(session));
    } else {
      std::string shown(args[0].substr(0, 128));
      for (char& ch : shown) ch = (ch >= 32 && ch < 127) ? ch : '?';
      resp::error(out, "ERR unknown command '" + shown + "' (cairn speaks GET, SET, SETEX, DEL, EXISTS, "
                       "MGET, MSET, PING, ECHO, HELLO, INFO, COMMAND, SELECT, CLIENT, QUIT and "
                       "CAIRN.STORES, CAIRN.VERSIONS, CAIRN.PUT, CAIRN.DEL)");
    }
  }
  return answered;
}

std::string RespCommands::info(const RespSession& session) const {
  const auto uptime = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::steady_clock::now() - started_)
                          .count();
  std::string out = "# Server\r\n";
  out += "cairn_version:" + std::string(version()) + "\r\n";
  out += "resp_protocols:2,3\r\n";
  out += "process_id:" + std::to_string(::getpid()) + "\r\n";
  out += "tcp_port:" + std::to_string(options_.port) + "\r\n";
  out += "uptime_in_seconds:" + std::to_string(uptime) + "\r\n";
  out += "\r\n# Clients\r\n";
  out += "connected_clients:" + std::to_string(stats_.connected.load()) + "\r\n";
  out += "selected_store:" + session.store_name + "\r\n";
  out += "\r\n# Stats\r\n";
  out += "total_connections_received:" + std::to_string(stats_.connections_received.load()) + "\r\n";
  out += "rejected_connections:" + std::to_string(stats_.rejected.load()) + "\r\n";
  out += "total_commands_processed:" + std::to_string(stats_.commands.load()) + "\r\n";
  out += "total_error_replies:" + std::to_string(stats_.errors.load()) + "\r\n";
  out += "protocol_errors:" + std::to_string(stats_.protocol_errors.load()) + "\r\n";
  // Each store's stats layer, as /metrics shows it: one line per store.
  out += "\r\n# Stores\r\n";
  for (const auto& [name, served] : stores_) {
    out += "store_" + name + ":";
    StatsStore* stats = stats_of(served->s);
    if (stats == nullptr) {
      out += "stats=none\r\n";
      continue;
    }
    const StatsStore::Snapshot snap = stats->snapshot();
    std::string fields;
    for (int i = 0; i < StatsStore::kOps; ++i) {
      const auto op = static_cast<StatsStore::Op>(i);
      const StatsStore::OpStats& o = snap[op];
      if (o.count == 0) continue;
      const std::string n = StatsStore::op_name(op);
      fields += (fields.empty() ? "" : ",") + n + "=" + std::to_string(o.count) + "," + n +
                "_errors=" + std::to_string(o.errors) + "," + n +
                "_p99_usec=" + std::to_string(o.latency.p99_ns / 1000);
    }
    out += (fields.empty() ? "calls=0" : fields) + "\r\n";
  }
  return out;
}

}  // namespace cairn::internal

#include "routing/routed_store.h"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "cairn/log.h"
#include "catalogue/builtin.h"
#include "core/config_internal.h"
#include "core/executor.h"
#include "routing/failure_detector.h"
#include "routing/hinted_handoff.h"
#include "routing/hint.h"
#include "routing/replica.h"

namespace cairn {

namespace {

using Clock = std::chrono::steady_clock;

// What the replicas sent one call answered: results by node index, and
// failures. The caller waits for enough results; the last answer may
// trigger background work (read repair).
template <typename T>
struct Gather {
  std::mutex mu;
  std::condition_variable cv;
  size_t sent = 0;  // set before the first call goes out
  size_t answered = 0;
  std::vector<std::pair<size_t, T>> ok;
  std::vector<std::pair<size_t, std::exception_ptr>> failed;

  // Records one answer; true if it was the last.
  bool answer(size_t i, T result, std::exception_ptr error) {
    std::lock_guard lock(mu);
    if (error) {
      failed.emplace_back(i, std::move(error));
    } else {
      ok.emplace_back(i, std::move(result));
    }
    ++answered;
    cv.notify_all();
    return answered == sent;
  }

  // Waits until `need` results are in, every replica answered, or the
  // deadline; returns the results in so far.
  size_t wait(size_t need, Clock::time_point deadline) {
    std::unique_lock lock(mu);
    cv.wait_until(lock, deadline, [&] { return ok.size() >= need || answered == sent; });
    return ok.size();
  }
};

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& ex) {
    return std::string(to_string(ex.code())) + ": " + ex.what();
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown error";
  }
}

// What the failure detector reads to see whether a banned node answers:
// any key does (an absent one is an answer); this one is short, valid for
// every engine, and unlikely to be a user's.
constexpr std::string_view kProbeKey("\0cairn-probe", 12);

bool is_tombstone(const VectorClock& c) { return c.counter(kTombstoneEntry) % 2 == 1; }

// Drops the tombstones from what a read returns.
void drop_tombstones(std::vector<Versioned>* versions) {
  std::erase_if(*versions, [](const Versioned& v) { return is_tombstone(v.clock); });
}

const VectorClock& clock_of(const Versioned& v) { return v.clock; }
const VectorClock& clock_of(const VectorClock& c) { return c; }

// Adds `item` (a version or a clock) to the items no other supersedes:
// dropped if one is at or after it, and replacing those it is after.
template <typename T>
void add_non_dominated(std::vector<T>* out, const T& item) {
  for (auto it = out->begin(); it != out->end();) {
    const Occurred o = compare(clock_of(item), clock_of(*it));
    if (o == Occurred::kBefore || o == Occurred::kEqual) return;
    if (o == Occurred::kAfter) {
      it = out->erase(it);
    } else {
      ++it;
    }
  }
  out->push_back(item);
}

// A request every replica would refuse alike (an oversized key): reported
// as itself, not as a replica's failure.
bool is_bad_request(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err.code() == ErrorCode::kInvalidArgument;
  } catch (...) {
    return false;
  }
}

}  // namespace

struct RoutedStore::Shared {
  RouteOptions options;
  Ring ring;
  std::vector<std::shared_ptr<Store>> replicas;    // by node index
  // The replica stack's way to leave a hint with its node (the grpc engine
  // at its bottom), or nullptr: by node index.
  std::vector<HintKeeper*> keepers;
  std::vector<std::vector<size_t>> prefs;          // by partition: node indexes
  std::optional<size_t> self;                      // index of the node we run on
  std::shared_ptr<HintedHandoff> hints;
  std::unique_ptr<FailureDetector> detector;
  // Local work started from callbacks (repairs and hints that write to this
  // node's disk), so that no gRPC thread waits on a disk.
  std::unique_ptr<internal::Executor> background;

  std::mutex mu;
  std::condition_variable cv;
  int inflight = 0;     // replica calls and background tasks; guarded by mu
  bool closed = false;  // guarded by mu

  std::string name(size_t i) const {
    const NodeInfo& n = ring.nodes()[i];
    return "node " + std::to_string(n.id) + " (" + n.address + ")";
  }
  const std::vector<size_t>& prefs_of(std::string_view key) const {
    return prefs[ring.partition(key)];
  }
  void check_open() {
    std::lock_guard lock(mu);
    if (closed) throw FailedPrecondition("route '" + options.store + "': store is closed");
  }
  void begin() {
    std::lock_guard lock(mu);
    ++inflight;
  }
  void end() {
    std::lock_guard lock(mu);
    if (--inflight == 0) cv.notify_all();
  }

  // Runs `task` on the background thread, counted as in flight.
  void in_background(std::function<void()> task) {
    begin();
    background->submit([this, task = std::move(task)] {
      try {
        task();
      } catch (const std::exception& e) {
        log(LogLevel::kError, "route '" + options.store + "': " + e.what());
      }
      end();
    });
  }

  // Live and banned replicas of a key, in preference order.
  void split(std::string_view key, std::vector<size_t>* live, std::vector<size_t>* down) const {
    for (size_t i : prefs_of(key)) (detector->available(i) ? live : down)->push_back(i);
  }

  // Leaves a hint that node `i` missed a write: with this node's handoff
  // when we run in a node, else on node `keeper` (a live replica that took
  // the write). Never blocks.
  void leave_hint(size_t i, Hint hint, std::optional<size_t> keeper) {
    hint.node = ring.nodes()[i].id;
    hint.store = options.store;
    if (hints != nullptr) {
      in_background([this, hint = std::move(hint)] { hints->keep(hint); });
      return;
    }
    if (!keeper || keepers[*keeper] == nullptr) {
      // In-process replicas (an embedded routed store) have no node to keep
      // hints: read repair is their only mender.
      log(keeper ? LogLevel::kDebug : LogLevel::kError,
          "route '" + options.store + "': no node to keep the hint for " + name(i) + " of key " +
              printable_key(hint.key));
      return;
    }
    begin();
    const size_t k = *keeper;
    keepers[k]->async_put_hint(hint, [this, i, k](std::exception_ptr error) {
      if (error) {
        log(LogLevel::kError, "route '" + options.store + "': " + name(k) +
                                  " did not keep the hint for " + name(i) + ": " +
                                  what_of(error));
      }
      end();
    });
  }

  // Read repair: pushes to each replica that answered the versions it
  // lacks. Called once every replica of a read has answered.
  void repair(const std::string& key, const std::vector<std::pair<size_t, std::vector<Versioned>>>& ok) {
    if (ok.size() < 2) return;
    std::vector<Versioned> merged;
    for (const auto& [i, versions] : ok) {
      for (const Versioned& v : versions) add_non_dominated(&merged, v);
    }
    for (const auto& [i, versions] : ok) {
      for (const Versioned& m : merged) {
        const bool has = std::any_of(versions.begin(), versions.end(),
                                     [&](const Versioned& v) { return v.clock == m.clock; });
        if (has) continue;
        auto push = [this, i = i, key, m] {
          begin();
          replicas[i]->async_put(key, m, [this, i, key](PutReply, std::exception_ptr error) {
            if (error) {
              log(LogLevel::kDebug, "read repair of key " + printable_key(key) + " on " +
                                        name(i) + " failed: " + what_of(error));
            }
            end();
          });
        };
        // A replica whose calls would run its disk inline is repaired from
        // the background thread, not from a network library's.
        if (replicas[i]->async_calls_block()) {
          in_background(push);
        } else {
          push();
        }
      }
    }
  }

  // The error for an operation that missed its quorum: the first error
  // that is not a node failure (a bad request fails alike everywhere),
  // else InsufficientReplicas saying who answered and why the rest did not.
  [[noreturn]] void fail(const char* op, std::string_view key, size_t need, size_t got,
                         const std::vector<size_t>& answered,
                         const std::vector<std::pair<size_t, std::exception_ptr>>& failed,
                         const std::vector<size_t>& down, const std::vector<size_t>& silent,
                         const std::vector<size_t>& late = {}) {
    for (const auto& [i, e] : failed) {
      if (is_bad_request(e)) std::rethrow_exception(e);
    }
    std::string why;
    auto add = [&](const std::string& s) { why += (why.empty() ? "" : "; ") + s; };
    for (size_t i : answered) add(name(i) + " answered");
    for (const auto& [i, e] : failed) add(name(i) + ": " + what_of(e));
    for (size_t i : down) add(name(i) + ": " + detector->why(i));
    for (size_t i : silent) {
      add(name(i) + ": no answer within " + std::to_string(options.timeout.count()) + " ms");
    }
    for (size_t i : late) add(name(i) + " answered after the deadline");
    throw InsufficientReplicas(std::string(op) + " of key " + printable_key(key) + " in store '" +
                               options.store + "': " + std::to_string(got) + " of the " +
                               std::to_string(need) + " replicas required answered (" + why + ")");
  }

  // fail() for a Gather sent to `live`, whose wait() counted `in_time`
  // answers (those after them came too late); `answered_too` and
  // `failed_too` are replicas heard from before it (a put's home).
  template <typename T>
  [[noreturn]] void fail_gather(const char* op, std::string_view key, size_t need, Gather<T>& g,
                                size_t in_time, const std::vector<size_t>& live,
                                const std::vector<size_t>& down,
                                std::vector<size_t> answered_too = {},
                                std::vector<std::pair<size_t, std::exception_ptr>> failed_too = {}) {
    std::vector<size_t> answered = std::move(answered_too);
    std::vector<size_t> late;
    std::vector<std::pair<size_t, std::exception_ptr>> failed = std::move(failed_too);
    {
      std::lock_guard lock(g.mu);
      for (size_t k = 0; k < g.ok.size(); ++k) (k < in_time ? answered : late).push_back(g.ok[k].first);
      failed.insert(failed.end(), g.failed.begin(), g.failed.end());
    }
    std::vector<size_t> silent;
    for (size_t i : live) {
      const bool heard = std::find(answered.begin(), answered.end(), i) != answered.end() ||
                         std::find(late.begin(), late.end(), i) != late.end() ||
                         std::any_of(failed.begin(), failed.end(),
                                     [&](const auto& f) { return f.first == i; });
      if (!heard) silent.push_back(i);
    }
    fail(op, key, need, answered.size(), answered, failed, down, silent, late);
  }

  Shared(RouteOptions o, Ring r) : options(std::move(o)), ring(std::move(r)) {}
};

RoutedStore::RoutedStore(RouteOptions options, Ring ring,
                         std::vector<std::shared_ptr<Store>> replicas,
                         std::optional<NodeId> self, std::shared_ptr<HintedHandoff> hints)
    : s_(std::make_shared<Shared>(std::move(options), std::move(ring))) {
  Shared& s = *s_;
  const Replication& rep = s.options.replication;
  if (replicas.size() != s.ring.nodes().size()) {
    throw InvalidArgument("route: " + std::to_string(replicas.size()) + " replica stacks for " +
                          std::to_string(s.ring.nodes().size()) + " nodes");
  }
  if (rep.n < 1 || rep.r < 1 || rep.w < 1 || rep.r > rep.n || rep.w > rep.n ||
      rep.n > static_cast<int>(s.ring.nodes().size())) {
    throw InvalidArgument("route: replication n=" + std::to_string(rep.n) + " r=" +
                          std::to_string(rep.r) + " w=" + std::to_string(rep.w) + " on " +
                          std::to_string(s.ring.nodes().size()) + " nodes");
  }
  if (s.options.timeout.count() < 1) throw InvalidArgument("route: timeout must be positive");
  for (auto& r : replicas) {
    if (r == nullptr) throw InvalidArgument("route: a replica stack is null");
    s.keepers.push_back(find_layer<HintKeeper>(*r));
    s.replicas.push_back(std::move(r));
  }
  auto index_of = [&](NodeId id) {
    for (size_t i = 0; i < s.ring.nodes().size(); ++i) {
      if (s.ring.nodes()[i].id == id) return i;
    }
    throw InvalidArgument("route: no node " + std::to_string(id) + " on the ring");
  };
  if (self) s.self = index_of(*self);
  for (uint32_t p = 0; p < s.ring.partitions(); ++p) {
    std::vector<size_t> list;
    for (NodeId id : s.ring.preference_list(p, rep.n)) list.push_back(index_of(id));
    s.prefs.push_back(std::move(list));
  }
  s.hints = std::move(hints);
  s.background = std::make_unique<internal::Executor>(1);
  Shared* sp = s_.get();
  s.detector = std::make_unique<FailureDetector>(
      s.replicas.size(), s.options.ban, s.options.probe_interval,
      [sp](size_t i, std::function<void(std::exception_ptr)> done) {
        // A probe is a read through the whole stack below `route`: what
        // answers it answers real calls.
        sp->replicas[i]->async_versions(kProbeKey, [done = std::move(done)](
                                                       std::vector<VectorClock>,
                                                       std::exception_ptr e) { done(e); });
      },
      [sp](size_t i) { return "route '" + sp->options.store + "': " + sp->name(i); });
}

RoutedStore::~RoutedStore() {
  try {
    close();
  } catch (const std::exception& e) {
    log(LogLevel::kError, std::string("route: closing: ") + e.what());
  }
}

const Ring& RoutedStore::ring() const { return s_->ring; }

bool RoutedStore::banned(NodeId id) const {
  for (size_t i = 0; i < s_->ring.nodes().size(); ++i) {
    if (s_->ring.nodes()[i].id == id) return !s_->detector->available(i);
  }
  return false;
}

std::shared_ptr<Store> RoutedStore::replica(NodeId id) const {
  for (size_t i = 0; i < s_->ring.nodes().size(); ++i) {
    if (s_->ring.nodes()[i].id == id) return std::shared_ptr<Store>(s_, s_->replicas[i].get());
  }
  return nullptr;
}

std::shared_ptr<Store> RoutedStore::local_replica() const {
  if (!s_->self) return nullptr;
  // The replica owns the stack; hand out an alias that keeps all of the
  // shared state alive.
  return std::shared_ptr<Store>(s_, s_->replicas[*s_->self].get());
}

namespace {

// A read of one key from every live replica: `call(replica, done)` starts
// one; `last(ok)` runs when the last replica has answered (read repair).
// Returns, under its lock, the answers once R are in; throws if R are not
// in by the deadline.
template <typename T, typename Call, typename Last>
std::shared_ptr<Gather<T>> read_quorum(RoutedStore::Shared& s, const char* op,
                                       std::string_view key, Call&& call, Last last) {
  s.check_open();
  const auto deadline = Clock::now() + s.options.timeout;
  const size_t need = static_cast<size_t>(s.options.replication.r);
  std::vector<size_t> live, down;
  s.split(key, &live, &down);
  auto g = std::make_shared<Gather<T>>();
  g->sent = live.size();
  for (size_t i : live) {
    s.begin();
    call(*s.replicas[i], [sp = &s, g, i, last](T v, std::exception_ptr e) {
      if (e) sp->detector->record_failure(i, e);
      if (g->answer(i, std::move(v), e)) {
        std::vector<std::pair<size_t, T>> ok;
        {
          std::lock_guard lock(g->mu);
          ok = g->ok;
        }
        last(ok);
      }
      sp->end();
    });
  }
  if (const size_t got = g->wait(need, deadline); got < need) {
    s.fail_gather(op, key, need, *g, got, live, down);
  }
  return g;
}

}  // namespace

void RoutedStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  Shared& s = *s_;
  using Versions = std::vector<Versioned>;
  auto g = read_quorum<Versions>(
      s, "get", key,
      [&](Store& r, Callback<Versions> done) { r.async_get(key, std::move(done)); },
      [sp = &s, k = std::string(key)](const std::vector<std::pair<size_t, Versions>>& ok) {
        if (sp->options.read_repair) sp->repair(k, ok);
      });
  out->clear();
  std::lock_guard lock(g->mu);
  for (const auto& [i, versions] : g->ok) {
    for (const Versioned& v : versions) add_non_dominated(out, v);
  }
  drop_tombstones(out);
}

std::vector<VectorClock> RoutedStore::versions(std::string_view key) {
  using Clocks = std::vector<VectorClock>;
  auto g = read_quorum<Clocks>(
      *s_, "versions", key,
      [&](Store& r, Callback<Clocks> done) { r.async_versions(key, std::move(done)); },
      [](const std::vector<std::pair<size_t, Clocks>>&) {});
  std::vector<VectorClock> out;
  std::lock_guard lock(g->mu);
  for (const auto& [i, clocks] : g->ok) {
    for (const VectorClock& c : clocks) add_non_dominated(&out, c);
  }
  return out;
}

std::map<std::string, std::vector<Versioned>> RoutedStore::get_all(
    std::span<const std::string> keys) {
  Shared& s = *s_;
  s.check_open();
  const auto deadline = Clock::now() + s.options.timeout;
  const size_t need = static_cast<size_t>(s.options.replication.r);
  struct KeyState {
    size_t sent = 0;
    size_t answered = 0;
    std::vector<std::pair<size_t, std::vector<Versioned>>> ok;
    std::vector<std::pair<size_t, std::exception_ptr>> failed;
    std::vector<size_t> live, down;
  };
  struct Op {
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::string, KeyState, std::less<>> keys;
    size_t pending = 0;  // keys still short of R with replicas yet to answer
    size_t nodes_sent = 0, nodes_answered = 0;
  };
  auto op = std::make_shared<Op>();
  std::map<size_t, std::vector<std::string>> by_node;
  for (const std::string& key : keys) {
    auto [it, fresh] = op->keys.try_emplace(key);
    if (!fresh) continue;
    KeyState& k = it->second;
    s.split(key, &k.live, &k.down);
    k.sent = k.live.size();
    for (size_t i : k.live) by_node[i].push_back(key);
    if (k.sent > 0 && need > 0) ++op->pending;
  }
  op->nodes_sent = by_node.size();
  for (auto& [node, node_keys] : by_node) {
    const size_t i = node;  // clang 14 cannot capture a structured binding
    s.begin();
    std::vector<std::string> asked = node_keys;
    s.replicas[i]->async_get_all(
        std::move(node_keys),
        [sp = &s, op, i, need, asked = std::move(asked)](
            std::map<std::string, std::vector<Versioned>> found, std::exception_ptr e) {
          if (e) sp->detector->record_failure(i, e);
          bool last = false;
          {
            std::lock_guard lock(op->mu);
            for (const std::string& key : asked) {
              KeyState& k = op->keys.find(key)->second;
              const bool was_pending = k.ok.size() < need && k.answered < k.sent;
              if (e) {
                k.failed.emplace_back(i, e);
              } else {
                auto f = found.find(key);
                k.ok.emplace_back(i, f == found.end() ? std::vector<Versioned>() : f->second);
              }
              ++k.answered;
              const bool now_pending = k.ok.size() < need && k.answered < k.sent;
              if (was_pending && !now_pending) --op->pending;
            }
            last = ++op->nodes_answered == op->nodes_sent;
            op->cv.notify_all();
          }
          if (last && sp->options.read_repair) {
            std::map<std::string, std::vector<std::pair<size_t, std::vector<Versioned>>>> oks;
            {
              std::lock_guard lock(op->mu);
              for (const auto& [key, k] : op->keys) oks.emplace(key, k.ok);
            }
            for (const auto& [key, ok] : oks) sp->repair(key, ok);
          }
          sp->end();
        });
  }
  std::unique_lock lock(op->mu);
  op->cv.wait_until(lock, deadline, [&] { return op->pending == 0; });
  std::map<std::string, std::vector<Versioned>> out;
  for (const auto& [key, k] : op->keys) {
    if (k.ok.size() < need) {
      std::vector<size_t> answered, silent;
      for (const auto& [i, v] : k.ok) answered.push_back(i);
      for (size_t i : k.live) {
        bool heard = std::find(answered.begin(), answered.end(), i) != answered.end();
        for (const auto& f : k.failed) heard |= f.first == i;
        if (!heard) silent.push_back(i);
      }
      const auto failed = k.failed;
      const auto down = k.down;
      const size_t got = k.ok.size();
      lock.unlock();
      s.fail("get_all", key, need, got, answered, failed, down, silent);
    }
    std::vector<Versioned> merged;
    for (const auto& [i, versions] : k.ok) {
      for (const Versioned& v : versions) add_non_dominated(&merged, v);
    }
    drop_tombstones(&merged);
    if (!merged.empty()) out.emplace(key, std::move(merged));
  }
  return out;
}

PutResult RoutedStore::put_stamped(std::string_view key, const Versioned& value,
                                   VectorClock* stored) {
  if (!is_tombstone(value.clock)) return write(key, value, stored);
  // The writer read a tombstone's clock: its write succeeds the tombstone
  // and is live, so the tombstone entry becomes even again.
  Versioned live{value.value, value.clock.incremented(kTombstoneEntry, value.clock.timestamp_ms())};
  return write(key, live, stored);
}

PutResult RoutedStore::write(std::string_view key, const Versioned& value, VectorClock* stored) {
  Shared& s = *s_;
  s.check_open();
  const auto deadline = Clock::now() + s.options.timeout;
  const size_t need = static_cast<size_t>(s.options.replication.w);
  std::vector<size_t> live, down;
  s.split(key, &live, &down);
  std::vector<size_t> missed = down;  // replicas that get a hint
  std::vector<std::pair<size_t, std::exception_ptr>> failed;
  // Too few replicas up for W: fail before writing anything anywhere.
  if (live.size() < need) {
    std::string why;
    for (size_t i : down) why += "; " + s.name(i) + ": " + s.detector->why(i);
    throw InsufficientReplicas("put of key " + printable_key(key) + " in store '" +
                               s.options.store + "': " + std::to_string(live.size()) +
                               " of its replicas are up, and " + std::to_string(need) +
                               " must take a write (not written" + why + ")");
  }

  // The home: the first live replica that takes the write. It stamps the
  // clock, and its version rules decide a race between writers.
  Versioned stamped{value.value, VectorClock()};
  std::optional<size_t> home;
  size_t h = 0;
  for (; h < live.size(); ++h) {
    const size_t i = live[h];
    stamped.clock = value.clock.incremented(kStampBase + s.ring.nodes()[i].id, now_ms());
    auto g = std::make_shared<Gather<PutResult>>();
    g->sent = 1;
    s.begin();
    s.replicas[i]->async_put(key, stamped, [sp = &s, g, i](PutReply r, std::exception_ptr e) {
      if (e) sp->detector->record_failure(i, e);
      g->answer(i, r.result, e);
      sp->end();
    });
    if (g->wait(1, deadline) == 0) {
      std::lock_guard lock(g->mu);
      if (g->failed.empty()) {
        // No answer by the deadline: the write may yet land there.
        s.fail("put", key, need, 0, {}, failed, down, {i});
      }
      const std::exception_ptr e = g->failed.front().second;
      if (is_bad_request(e)) std::rethrow_exception(e);
      failed.emplace_back(i, e);
      missed.push_back(i);
      continue;
    }
    if (g->ok.front().second == PutResult::kObsolete) return PutResult::kObsolete;
    home = i;
    break;
  }
  if (!home) s.fail("put", key, need, 0, {}, failed, down, {});

  // The other live replicas, at once. One that fails later, after we have
  // answered, still gets a hint.
  const std::vector<size_t> rest(live.begin() + static_cast<std::ptrdiff_t>(h) + 1, live.end());
  auto g = std::make_shared<Gather<PutResult>>();
  g->sent = rest.size();
  Hint hint{.key = std::string(key), .version = stamped};
  for (size_t i : rest) {
    s.begin();
    s.replicas[i]->async_put(key, stamped, [sp = &s, g, i, hint, home](PutReply r,
                                                                       std::exception_ptr e) {
      if (e) {
        sp->detector->record_failure(i, e);
        if (!is_bad_request(e)) sp->leave_hint(i, hint, home);
      }
      g->answer(i, r.result, e);  // obsolete: the replica has this write or a newer one
      sp->end();
    });
  }
  for (size_t i : missed) s.leave_hint(i, hint, home);
  const size_t others = g->wait(need - 1, deadline);
  if (1 + others < need) s.fail_gather("put", key, need, *g, others, rest, down, {*home}, failed);
  if (stored != nullptr) *stored = stamped.clock;
  return PutResult::kStored;
}

bool RoutedStore::remove(std::string_view key, const VectorClock& version) {
  // A delete is a tombstone written like any version: it supersedes the
  // versions at or before `version` on every replica it reaches, and read
  // repair and hints carry it to the others, so a replica that missed the
  // delete cannot bring the value back. First, whether there is anything
  // to delete (at R, like a read).
  bool found = false;
  for (const VectorClock& c : versions(key)) {
    const Occurred o = compare(c, version);
    found |= !is_tombstone(c) && (o == Occurred::kBefore || o == Occurred::kEqual);
  }
  if (!found) return false;
  Versioned tombstone{"", version};
  do {
    tombstone.clock.increment(kTombstoneEntry, now_ms());
  } while (!is_tombstone(tombstone.clock));
  return write(key, tombstone, nullptr) == PutResult::kStored;
}

namespace {

// Every key once: from each node, the keys whose first live replica (when
// the scan began) is that node.
class RoutedIterator final : public StoreIterator {
 public:
  RoutedIterator(std::shared_ptr<RoutedStore::Shared> s, std::vector<bool> live)
      : s_(std::move(s)), live_(std::move(live)) {}

  bool next() override;
  std::string_view key() const override { return cur_->key(); }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  std::shared_ptr<RoutedStore::Shared> s_;
  std::vector<bool> live_;
  size_t node_ = 0;
  std::unique_ptr<StoreIterator> cur_;
  std::vector<Versioned> versions_;  // the current key's, tombstones dropped
};

}  // namespace

bool RoutedIterator::next() {
  for (;;) {
    if (!cur_) {
      while (node_ < live_.size() && !live_[node_]) ++node_;
      if (node_ == live_.size()) return false;
      cur_ = s_->replicas[node_]->scan();
    }
    if (!cur_->next()) {
      cur_.reset();
      ++node_;
      continue;
    }
    bool ours = false;
    for (size_t i : s_->prefs_of(cur_->key())) {
      if (!live_[i]) continue;
      ours = i == node_;
      break;
    }
    if (!ours) continue;
    versions_ = cur_->versions();
    drop_tombstones(&versions_);
    if (!versions_.empty()) return true;
  }
}

std::unique_ptr<StoreIterator> RoutedStore::scan() {
  s_->check_open();
  std::vector<bool> live(s_->replicas.size());
  for (size_t i = 0; i < live.size(); ++i) live[i] = s_->detector->available(i);
  return std::make_unique<RoutedIterator>(s_, std::move(live));
}

void RoutedStore::close() {
  Shared& s = *s_;
  {
    std::lock_guard lock(s.mu);
    if (s.closed) return;
    s.closed = true;
  }
  s.detector->stop();
  {
    std::unique_lock lock(s.mu);
    s.cv.wait(lock, [&] { return s.inflight == 0; });
  }
  s.background.reset();
  std::exception_ptr first;
  for (auto& r : s.replicas) {
    try {
      r->close();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

std::string RoutedStore::describe() const {
  const Shared& s = *s_;
  const Replication& r = s.options.replication;
  std::string out = "route: store '" + s.options.store + "', n=" + std::to_string(r.n) +
                    " r=" + std::to_string(r.r) + " w=" + std::to_string(r.w) + ", " +
                    std::to_string(s.ring.partitions()) + " partitions on " +
                    std::to_string(s.ring.nodes().size()) + " nodes, timeout " +
                    std::to_string(s.options.timeout.count()) + " ms" +
                    (s.options.read_repair ? ", read repair" : "") +
                    (s.self ? ", in " + s.name(*s.self) : "");
  for (size_t i = 0; i < s.replicas.size(); ++i) {
    std::string below = s.replicas[i]->describe();
    for (size_t at = 0; (at = below.find('\n', at)) != std::string::npos; at += 5) {
      below.replace(at, 1, "\n    ");
    }
    out += "\n  " + s.name(i) + (s.self == i ? ", this node" : "") + ":\n    " + below;
  }
  return out;
}

std::unique_ptr<Store> make_routed_layer(const RouteContext& ctx) {
  const Params& p = *ctx.params;
  RouteOptions o;
  o.store = p.store();
  o.replication = *ctx.replication;
  o.timeout = std::chrono::milliseconds(p.get_int("timeout_ms", o.timeout.count(), 1, 3600000));
  o.ban = std::chrono::milliseconds(p.get_int("ban_ms", o.ban.count(), 0, 3600000));
  o.probe_interval = std::chrono::milliseconds(
      p.get_int("probe_interval_ms", o.probe_interval.count(), 10, 3600000));
  o.read_repair = p.get_bool("read_repair", o.read_repair);
  Ring ring(*ctx.cluster);
  std::vector<std::shared_ptr<Store>> replicas;
  for (const NodeInfo& n : ring.nodes()) {
    if (ctx.self != nullptr && n.id != *ctx.self) {
      // Another node, from a node: its replica over the network.
      replicas.push_back(open_node_replica(n.address, o.store, o.timeout,
                                           ctx.tls != nullptr ? *ctx.tls : ServerTls{}));
    } else {
      replicas.push_back(std::shared_ptr<Store>(ctx.open_below(n)));
    }
  }
  std::optional<NodeId> self;
  if (ctx.self != nullptr) self = *ctx.self;
  return std::make_unique<RoutedStore>(std::move(o), std::move(ring), std::move(replicas), self,
                                       ctx.hints);
}

std::unique_ptr<Store> open_routed_store(RouteOptions options, Ring ring,
                                         std::vector<std::shared_ptr<Store>> replicas) {
  return std::make_unique<RoutedStore>(std::move(options), std::move(ring), std::move(replicas),
                                       std::nullopt, nullptr);
}

}  // namespace cairn

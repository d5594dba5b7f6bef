#include "routing/routed_store.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>

#include "cairn/errors.h"
#include "cairn/forwarding_store.h"
#include "cairn/log.h"
#include "catalogue/builtin.h"
#include "core/async.h"
#include "core/config_internal.h"
#include "core/executor.h"
#include "core/timer.h"
#include "core/version_list.h"
#include "routing/failure_detector.h"
#include "routing/hinted_handoff.h"
#include "routing/hint.h"
#include "routing/replica.h"

namespace cairn {

namespace {

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

// Threads for the calls to replicas that would block (a node's own
// engine): LMDB reads run in parallel, its writes one at a time anyway.
constexpr int kLocalThreads = 4;

bool is_tombstone(const VectorClock& c) { return c.counter(kTombstoneEntry) % 2 == 1; }

// The clock a write that read `value.clock` goes out with: a writer that
// read a tombstone's clock succeeds the tombstone and is live, so the
// tombstone entry becomes even again.
Versioned live_successor(const Versioned& value) {
  if (!is_tombstone(value.clock)) return value;
  return Versioned{value.value,
                   value.clock.incremented(kTombstoneEntry, value.clock.timestamp_ms()),
                   value.write_id};
}

// Drops the tombstones from what a read returns.
void drop_tombstones(std::vector<Versioned>* versions) {
  std::erase_if(*versions, [](const Versioned& v) { return is_tombstone(v.clock); });
}

// Whether `v` took the place of a copy of write `id` (Versioned::replaces).
bool replaces_write(const Versioned& v, uint64_t id) {
  return internal::replaces_write({&v.clock, v.write_id, v.replaces}, id);
}

// Adds `clock` to the clocks none is at or after, dropping those it is
// after.
void add_non_dominated(std::vector<VectorClock>* out, const VectorClock& clock) {
  for (auto it = out->begin(); it != out->end();) {
    const Occurred o = compare(clock, *it);
    if (o == Occurred::kBefore || o == Occurred::kEqual) return;
    it = o == Occurred::kAfter ? out->erase(it) : it + 1;
  }
  out->push_back(clock);
}

// Whether `a` and `b` are copies of one write (two homes may have stamped
// it): one write id, one value.
bool same_write(const Versioned& a, const Versioned& b) {
  return a.write_id != 0 && a.write_id == b.write_id && a.value == b.value;
}

// The versions that replicas' answers leave standing. A version falls if
// another is after it by clock, or replaces its write (Versioned::replaces),
// or is after another copy of its write: the copies of one write are one
// event, whichever copy a writer read. Whatever a fallen version replaced,
// the versions that took its place replace too (as engines keep it), and
// the copies of one write left standing are one version, their clocks
// joined. Every answer is weighed against every other, so the result does
// not depend on the order the answers came in.
std::vector<Versioned> standing_versions(
    const std::vector<std::pair<size_t, std::vector<Versioned>>>& answers) {
  std::vector<Versioned> v;  // distinct clocks
  for (const auto& [i, versions] : answers) {
    for (const Versioned& a : versions) {
      auto same = std::find_if(v.begin(), v.end(), [&](const Versioned& b) { return b.clock == a.clock; });
      if (same == v.end()) {
        v.push_back(a);
      } else {
        internal::add_replaced(&same->replaces, a.replaces);
      }
    }
  }
  const size_t n = v.size();
  // supersedes(i, j): v[i] takes v[j]'s place.
  const auto supersedes = [&](size_t i, size_t j) {
    if (i == j || same_write(v[i], v[j])) return false;
    if (replaces_write(v[i], v[j].write_id)) return true;
    for (size_t k = 0; k < n; ++k) {
      if ((k == j || same_write(v[k], v[j])) && compare(v[i].clock, v[k].clock) == Occurred::kAfter) {
        return true;
      }
    }
    return false;
  };
  std::vector<char> stands(n, 1);
  for (size_t j = 0; j < n; ++j) {
    for (size_t i = 0; i < n && stands[j]; ++i) stands[j] = !supersedes(i, j);
  }
  std::vector<Versioned> out;
  for (size_t i = 0; i < n; ++i) {
    if (!stands[i]) continue;
    Versioned s = v[i];
    for (size_t j = 0; j < n; ++j) {
      if (!stands[j] && supersedes(i, j)) internal::add_replaced(&s.replaces, v[j].replaces);
    }
    auto copy = std::find_if(out.begin(), out.end(), [&](const Versioned& o) { return same_write(o, s); });
    if (copy == out.end()) {
      out.push_back(std::move(s));
    } else {
      copy->clock = copy->clock.merged(s.clock);
      internal::add_replaced(&copy->replaces, s.replaces);
    }
  }
  return out;
}

// Whether some home's entry of `stored` is past `sent`'s: the stamp a home
// added (its own, or, for a copy of the write it held already, the stamp
// of the home that stored that copy).
bool has_a_stamp_beyond(const VectorClock& stored, const VectorClock& sent) {
  for (const ClockEntry& e : stored.entries()) {
    if (e.node >= kStampBase && e.counter > sent.counter(e.node)) return true;
  }
  return false;
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
  // Whether a replica's async calls would run their work inline (a node's
  // own engine on disk): by node index. Calls to those go to `local`, so
  // that no caller, network thread or timer waits on a disk.
  std::vector<bool> blocking;
  std::unique_ptr<internal::Executor> local;  // only if some replica blocks
  std::atomic<bool> warned_unstamped{false};  // a node that ignores stamps was logged

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

  // Makes a call to replica `i` with `call(store)`, from a thread of
  // `local` if its calls would block. The caller has counted it in flight.
  template <typename Call>
  void call_replica(size_t i, Call&& call) {
    if (!blocking[i]) return call(*replicas[i]);
    local->submit([this, i, call = std::forward<Call>(call)]() mutable { call(*replicas[i]); });
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

  // Whether this read goes to every live replica (read repair's sample).
  bool sample_for_repair() const {
    if (!options.read_repair || options.read_repair_chance <= 0) return false;
    if (options.read_repair_chance >= 1) return true;
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0, 1)(rng) < options.read_repair_chance;
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
    const std::vector<Versioned> merged = standing_versions(ok);
    for (const auto& [i, versions] : ok) {
      for (const Versioned& m : merged) {
        // A replica lacks `m` if no version it answered has m's clock, or
        // if it also holds a copy of a write m replaced.
        const bool has = std::any_of(versions.begin(), versions.end(),
                                     [&](const Versioned& v) { return v.clock == m.clock; });
        const bool stale = std::any_of(versions.begin(), versions.end(), [&](const Versioned& v) {
          return replaces_write(m, v.write_id);
        });
        if (has && !stale) continue;
        // A replica whose calls would run its disk inline is repaired from
        // a thread of `local`, not from a network library's.
        begin();
        call_replica(i, [this, i = i, key, m](Store& r) {
          r.async_put(key, m, [this, i, key](PutReply, std::exception_ptr error) {
            if (error) {
              log(LogLevel::kDebug, "read repair of key " + printable_key(key) + " on " +
                                        name(i) + " failed: " + what_of(error));
            }
            end();
          });
        });
      }
    }
  }

  // The error for an operation that missed its quorum: the first error
  // that is not a node failure (a bad request fails alike everywhere),
  // else InsufficientReplicas saying who answered and why the rest did not.
  std::exception_ptr insufficient(const char* op, std::string_view key, size_t need, size_t got,
                                  const std::vector<size_t>& answered,
                                  const std::vector<std::pair<size_t, std::exception_ptr>>& failed,
                                  const std::vector<size_t>& down,
                                  const std::vector<size_t>& silent,
                                  const std::vector<size_t>& late = {}) {
    for (const auto& [i, e] : failed) {
      if (is_bad_request(e)) return e;
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
    return std::make_exception_ptr(InsufficientReplicas(
        std::string(op) + " of key " + printable_key(key) + " in store '" + options.store +
        "': " + std::to_string(got) + " of the " + std::to_string(need) +
        " replicas required answered (" + why + ")"));
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
    s.blocking.push_back(r->async_calls_block());
    s.replicas.push_back(std::move(r));
  }
  if (std::find(s.blocking.begin(), s.blocking.end(), true) != s.blocking.end()) {
    s.local = std::make_unique<internal::Executor>(kLocalThreads);
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

// One quorum read of one key (a get, or versions): to the first R live
// replicas in preference order (to every live one for a sampled read),
// bringing in the next when one fails or when `read_hedge` passes without
// R answers. `finish` gets the answers once R are in, or the error: at
// once when too few replicas are left, or at the deadline. Once every
// replica asked has answered, `last` gets all their answers (read repair).
// Never blocks: replicas answer on their own threads, timers on the
// shared timer's.
template <typename T>
class ReadOp : public std::enable_shared_from_this<ReadOp<T>> {
 public:
  using Answers = std::vector<std::pair<size_t, T>>;
  using Call = std::function<void(Store&, Callback<T>)>;
  using Finish = std::function<void(Answers, std::exception_ptr)>;
  using Last = std::function<void(const Answers&)>;

  ReadOp(std::shared_ptr<RoutedStore::Shared> s, const char* op, std::string key, Call call,
         Finish finish, Last last)
      : s_(std::move(s)),
        op_(op),
        key_(std::move(key)),
        need_(static_cast<size_t>(s_->options.replication.r)),
        call_(std::move(call)),
        finish_(std::move(finish)),
        last_(std::move(last)) {}

  void start() {
    RoutedStore::Shared& s = *s_;
    s.split(key_, &live_, &down_);
    if (live_.size() < need_) {
      std::exception_ptr e =
          s.insufficient(op_, key_, need_, 0, {}, {}, down_, {});
      return complete(Answers{}, std::move(e));
    }
    const bool all = s.sample_for_repair();
    auto self = this->shared_from_this();
    deadline_ = internal::Timer::shared().after(s.options.timeout, [self] { self->expire(); });
    if (!all && need_ < live_.size()) {
      hedge_ = internal::Timer::shared().after(s.options.read_hedge, [self] { self->hedge(); });
    }
    send(all ? live_.size() : need_);
  }

 private:
  // Sends the call to the next `n` live replicas not asked yet.
  void send(size_t n) {
    std::vector<size_t> targets;
    {
      std::lock_guard lock(mu_);
      while (n-- > 0 && sent_ < live_.size()) targets.push_back(live_[sent_++]);
    }
    for (size_t i : targets) {
      s_->begin();
      s_->call_replica(i, [self = this->shared_from_this(), i](Store& r) {
        self->call_(r, [self, i](T result, std::exception_ptr e) {
          self->answer(i, std::move(result), std::move(e));
        });
      });
    }
  }

  void answer(size_t i, T result, std::exception_ptr error) {
    RoutedStore::Shared& s = *s_;
    if (error) s.detector->record_failure(i, error);
    bool finish_now = false, replace = false, all_in = false;
    std::exception_ptr failure;
    Answers finished_with, everything;
    {
      std::lock_guard lock(mu_);
      ++answered_;
      if (error) {
        failed_.emplace_back(i, std::move(error));
      } else {
        ok_.emplace_back(i, std::move(result));
      }
      if (!finished_) {
        if (ok_.size() >= need_) {
          finished_ = finish_now = true;
          finished_with = ok_;
        } else if (!failed_.empty() && failed_.back().first == i && sent_ < live_.size()) {
          replace = true;  // a failed replica: ask the next
        } else if (answered_ == sent_ && sent_ == live_.size()) {
          finished_ = finish_now = true;  // every live replica answered, too few of them well
          failure = error_locked();
        }
      }
      // Nothing is sent once the read has finished: the last answer to
      // come in is the last of all.
      all_in = finished_ && answered_ == sent_;
      if (all_in && last_) everything = ok_;
    }
    if (replace) send(1);
    if (finish_now) complete(std::move(finished_with), std::move(failure));
    if (all_in && last_) last_(everything);
    s.end();
  }

  // The read has not heard from R replicas in `read_hedge`: ask the rest.
  void hedge() {
    size_t rest;
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      rest = live_.size() - sent_;
    }
    send(rest);
  }

  // The deadline passed without R answers.
  void expire() {
    std::exception_ptr e;
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      finished_ = true;
      e = error_locked();
    }
    complete(Answers{}, std::move(e));
  }

  // InsufficientReplicas (or a bad request's own error) for what came in.
  std::exception_ptr error_locked() const {
    std::vector<size_t> answered, silent;
    for (const auto& [i, v] : ok_) answered.push_back(i);
    for (size_t k = 0; k < sent_; ++k) {
      const size_t i = live_[k];
      const bool heard = std::find(answered.begin(), answered.end(), i) != answered.end() ||
                         std::any_of(failed_.begin(), failed_.end(),
                                     [&](const auto& f) { return f.first == i; });
      if (!heard) silent.push_back(i);
    }
    return s_->insufficient(op_, key_, need_, ok_.size(), answered, failed_, down_, silent);
  }

  void complete(Answers answers, std::exception_ptr error) {
    if (hedge_ != 0) internal::Timer::shared().cancel(hedge_);
    if (deadline_ != 0) internal::Timer::shared().cancel(deadline_);
    finish_(std::move(answers), std::move(error));
  }

  const std::shared_ptr<RoutedStore::Shared> s_;
  const char* const op_;
  const std::string key_;
  const size_t need_;
  const Call call_;
  const Finish finish_;
  const Last last_;
  std::vector<size_t> live_, down_;  // set by start(), then read-only
  internal::Timer::Id hedge_ = 0, deadline_ = 0;

  mutable std::mutex mu_;
  size_t sent_ = 0;      // live_[0, sent_) were asked; guarded by mu_
  size_t answered_ = 0;  // guarded by mu_
  Answers ok_;           // guarded by mu_
  std::vector<std::pair<size_t, std::exception_ptr>> failed_;  // guarded by mu_
  bool finished_ = false;                                      // guarded by mu_
};

// Waits for a read started with `start(finish)` and returns its answers,
// or throws its error.
template <typename T, typename Start>
std::vector<std::pair<size_t, T>> await_read(Start&& start) {
  using Answers = std::vector<std::pair<size_t, T>>;
  auto result = std::make_shared<std::promise<Answers>>();
  auto future = result->get_future();
  start([result](Answers answers, std::exception_ptr e) {
    if (e) {
      result->set_exception(std::move(e));
    } else {
      result->set_value(std::move(answers));
    }
  });
  return future.get();
}

// The versions none of the answers supersedes, tombstones dropped.
std::vector<Versioned> merge_versions(
    const std::vector<std::pair<size_t, std::vector<Versioned>>>& answers) {
  std::vector<Versioned> out = standing_versions(answers);
  drop_tombstones(&out);
  // Write ids stay inside the cluster: a program that changes a version it
  // read and writes it back makes a new write.
  for (Versioned& v : out) {
    v.write_id = 0;
    v.replaces.clear();
  }
  return out;
}

std::vector<VectorClock> merge_clocks(
    const std::vector<std::pair<size_t, std::vector<VectorClock>>>& answers) {
  std::vector<VectorClock> out;
  for (const auto& [i, clocks] : answers) {
    for (const VectorClock& c : clocks) add_non_dominated(&out, c);
  }
  return out;
}

}  // namespace

void RoutedStore::start_get(std::string_view key,
                            std::function<void(std::vector<std::pair<size_t, std::vector<Versioned>>>,
                                               std::exception_ptr)> finish) {
  using Versions = std::vector<Versioned>;
  s_->check_open();
  auto last = [s = s_, k = std::string(key)](const std::vector<std::pair<size_t, Versions>>& ok) {
    if (s->options.read_repair) s->repair(k, ok);
  };
  std::make_shared<ReadOp<Versions>>(
      s_, "get", std::string(key),
      [k = std::string(key)](Store& r, Callback<Versions> done) { r.async_get(k, std::move(done)); },
      std::move(finish), std::move(last))
      ->start();
}

void RoutedStore::start_versions(
    std::string_view key,
    std::function<void(std::vector<std::pair<size_t, std::vector<VectorClock>>>, std::exception_ptr)>
        finish) {
  using Clocks = std::vector<VectorClock>;
  s_->check_open();
  std::make_shared<ReadOp<Clocks>>(
      s_, "versions", std::string(key),
      [k = std::string(key)](Store& r, Callback<Clocks> done) { r.async_versions(k, std::move(done)); },
      std::move(finish), nullptr)
      ->start();
}

void RoutedStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  *out = merge_versions(await_read<std::vector<Versioned>>(
      [&](auto finish) { start_get(key, std::move(finish)); }));
}

std::vector<VectorClock> RoutedStore::versions(std::string_view key) {
  return merge_clocks(await_read<std::vector<VectorClock>>(
      [&](auto finish) { start_versions(key, std::move(finish)); }));
}

void RoutedStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  try {
    start_get(key, [done](auto answers, std::exception_ptr e) {
      if (e) return internal::fail(done, std::move(e));
      done(merge_versions(answers), nullptr);
    });
  } catch (...) {
    internal::fail(done, std::current_exception());
  }
}

void RoutedStore::async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) {
  try {
    start_versions(key, [done](auto answers, std::exception_ptr e) {
      if (e) return internal::fail(done, std::move(e));
      done(merge_clocks(answers), nullptr);
    });
  } catch (...) {
    internal::fail(done, std::current_exception());
  }
}

namespace {

// A quorum read of many keys (get_all): each key to its first R live
// replicas (every live one for a sampled key), one request per node for
// all the keys it is asked; a key whose replica fails goes to its next
// one, and keys short of R after `read_hedge` go to all their others. The
// call answers once every key has R answers (or can have no more), and
// fails with the first key that fell short, as get() would for it.
class MultiReadOp : public std::enable_shared_from_this<MultiReadOp> {
 public:
  using Found = std::map<std::string, std::vector<Versioned>>;

  MultiReadOp(std::shared_ptr<RoutedStore::Shared> s, Callback<Found> done)
      : s_(std::move(s)),
        need_(static_cast<size_t>(s_->options.replication.r)),
        done_(std::move(done)) {}

  void start(std::span<const std::string> keys) {
    RoutedStore::Shared& s = *s_;
    std::map<size_t, std::vector<std::string>> batches;
    {
      std::lock_guard lock(mu_);
      for (const std::string& key : keys) {
        auto [it, fresh] = keys_.try_emplace(key);
        if (!fresh) continue;
        Key& k = it->second;
        s.split(key, &k.live, &k.down);
        const size_t first = s.sample_for_repair() ? k.live.size() : std::min(need_, k.live.size());
        take(key, k, first, &batches);
        if (k.live.size() < need_) {
          k.finished = true;  // it can never have R
        } else {
          ++open_;
        }
      }
      if (open_ == 0) finished_ = true;
      batches_sent_ = batches.size();
    }
    auto self = shared_from_this();
    if (open_ == 0) return finish();
    deadline_ = internal::Timer::shared().after(s.options.timeout, [self] { self->expire(); });
    hedge_ = internal::Timer::shared().after(s.options.read_hedge, [self] { self->hedge(); });
    send(std::move(batches));
  }

 private:
  struct Key {
    std::vector<size_t> live, down;  // in preference order
    size_t sent = 0;                 // live[0, sent) were asked
    size_t answered = 0;
    std::vector<std::pair<size_t, std::vector<Versioned>>> ok;
    std::vector<std::pair<size_t, std::exception_ptr>> failed;
    bool finished = false;  // has R, or can have no more
  };

  // Adds the next `n` replicas of `key` to the batches. Needs mu_.
  static void take(const std::string& key, Key& k, size_t n,
                   std::map<size_t, std::vector<std::string>>* batches) {
    while (n-- > 0 && k.sent < k.live.size()) (*batches)[k.live[k.sent++]].push_back(key);
  }

  void send(std::map<size_t, std::vector<std::string>> batches) {
    for (auto& [node, keys] : batches) {
      const size_t i = node;  // clang 14 cannot capture a structured binding
      s_->begin();
      s_->call_replica(i, [self = shared_from_this(), i, keys = std::move(keys)](Store& r) {
        r.async_get_all(keys, [self, i, keys](Found found, std::exception_ptr e) {
          self->answer(i, keys, std::move(found), std::move(e));
        });
      });
    }
  }

  void answer(size_t i, const std::vector<std::string>& asked, Found found,
              std::exception_ptr error) {
    RoutedStore::Shared& s = *s_;
    if (error) s.detector->record_failure(i, error);
    std::map<size_t, std::vector<std::string>> more;
    bool finish_now = false, all_in = false;
    {
      std::lock_guard lock(mu_);
      ++batches_answered_;
      for (const std::string& key : asked) {
        Key& k = keys_.find(key)->second;
        ++k.answered;
        if (error) {
          k.failed.emplace_back(i, error);
        } else {
          auto f = found.find(key);
          k.ok.emplace_back(i, f == found.end() ? std::vector<Versioned>() : std::move(f->second));
        }
        if (k.finished || finished_) continue;
        if (k.ok.size() >= need_) {
          k.finished = true;
        } else if (error && k.sent < k.live.size()) {
          take(key, k, 1, &more);  // a failed replica: ask the key's next
        } else if (k.answered == k.sent && k.sent == k.live.size()) {
          k.finished = true;  // every live replica answered, too few of them well
        }
        if (k.finished && --open_ == 0) finished_ = finish_now = true;
      }
      batches_sent_ += more.size();
      all_in = finished_ && batches_answered_ == batches_sent_;
    }
    send(std::move(more));
    if (finish_now) finish();
    if (all_in && s.options.read_repair) {
      std::map<std::string, std::vector<std::pair<size_t, std::vector<Versioned>>>> oks;
      {
        std::lock_guard lock(mu_);
        for (const auto& [key, k] : keys_) oks.emplace(key, k.ok);
      }
      for (const auto& [key, ok] : oks) s.repair(key, ok);
    }
    s.end();
  }

  void hedge() {
    std::map<size_t, std::vector<std::string>> more;
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      for (auto& [key, k] : keys_) {
        if (!k.finished) take(key, k, k.live.size(), &more);
      }
      batches_sent_ += more.size();
    }
    send(std::move(more));
  }

  void expire() {
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      finished_ = true;
    }
    finish();
  }

  // Answers the caller: every key's merged versions, or the first key's
  // failure.
  void finish() {
    if (hedge_ != 0) internal::Timer::shared().cancel(hedge_);
    if (deadline_ != 0) internal::Timer::shared().cancel(deadline_);
    Found out;
    std::exception_ptr error;
    {
      std::lock_guard lock(mu_);
      for (const auto& [key, k] : keys_) {
        if (k.ok.size() < need_) {
          std::vector<size_t> answered, silent;
          for (const auto& [i, v] : k.ok) answered.push_back(i);
          for (size_t n = 0; n < k.sent; ++n) {
            const size_t i = k.live[n];
            bool heard = std::find(answered.begin(), answered.end(), i) != answered.end();
            for (const auto& f : k.failed) heard |= f.first == i;
            if (!heard) silent.push_back(i);
          }
          error = s_->insufficient("get_all", key, need_, k.ok.size(), answered, k.failed,
                                   k.down, silent);
          break;
        }
        std::vector<Versioned> merged = merge_versions(k.ok);
        if (!merged.empty()) out.emplace(key, std::move(merged));
      }
    }
    if (error) return internal::fail(done_, std::move(error));
    done_(std::move(out), nullptr);
  }

  const std::shared_ptr<RoutedStore::Shared> s_;
  const size_t need_;
  const Callback<Found> done_;
  internal::Timer::Id hedge_ = 0, deadline_ = 0;

  std::mutex mu_;
  std::map<std::string, Key, std::less<>> keys_;  // guarded by mu_
  size_t open_ = 0;              // keys not finished; guarded by mu_
  size_t batches_sent_ = 0;      // follow-up batches; guarded by mu_
  size_t batches_answered_ = 0;  // guarded by mu_
  bool finished_ = false;        // guarded by mu_
};

}  // namespace

void RoutedStore::async_get_all(std::vector<std::string> keys,
                                Callback<std::map<std::string, std::vector<Versioned>>> done) {
  try {
    s_->check_open();
  } catch (...) {
    return internal::fail(done, std::current_exception());
  }
  std::make_shared<MultiReadOp>(s_, std::move(done))->start(keys);
}

std::map<std::string, std::vector<Versioned>> RoutedStore::get_all(
    std::span<const std::string> keys) {
  using Found = std::map<std::string, std::vector<Versioned>>;
  s_->check_open();
  auto result = std::make_shared<std::promise<Found>>();
  auto future = result->get_future();
  std::make_shared<MultiReadOp>(s_, [result](Found found, std::exception_ptr e) {
    if (e) {
      result->set_exception(std::move(e));
    } else {
      result->set_value(std::move(found));
    }
  })->start(keys);
  return future.get();
}

PutResult RoutedStore::put_stamped(std::string_view key, const Versioned& value,
                                   PutReply* stored) {
  return write(key, live_successor(value), stored);
}

namespace {

// One quorum write of one key: to the key's home first, the first live
// replica that takes it (it stamps the clock with its own entry, and its
// version rules decide a race between writers: obsolete there is obsolete),
// then to the other live replicas at once; answers once W replicas (the
// home included) hold it. Replicas that are down or fail get hints; hints
// never count toward W. Never blocks.
class WriteOp : public std::enable_shared_from_this<WriteOp> {
 public:
  WriteOp(std::shared_ptr<RoutedStore::Shared> s, std::string key, Versioned value,
          Callback<PutReply> done)
      : s_(std::move(s)),
        key_(std::move(key)),
        value_(std::move(value)),
        need_(static_cast<size_t>(s_->options.replication.w)),
        done_(std::move(done)),
        write_id_(value_.write_id != 0 ? value_.write_id : internal::new_write_id()) {}

  void start() {
    RoutedStore::Shared& s = *s_;
    s.split(key_, &live_, &down_);
    missed_ = down_;
    // Too few replicas up for W: fail before writing anything anywhere.
    if (live_.size() < need_) {
      std::string why;
      for (size_t i : down_) why += "; " + s.name(i) + ": " + s.detector->why(i);
      return complete(std::make_exception_ptr(InsufficientReplicas(
          "put of key " + printable_key(key_) + " in store '" + s.options.store + "': " +
          std::to_string(live_.size()) + " of its replicas are up, and " +
          std::to_string(need_) + " must take a write (not written" + why + ")")),
          PutReply{});
    }
    auto self = shared_from_this();
    deadline_ = internal::Timer::shared().after(s.options.timeout, [self] { self->expire(); });
    try_home(0);
  }

 private:
  // Asks live_[h] to be the home: to check the writer's clock against what
  // it holds and stamp its own entry, in one step under the key's lock.
  // Every home asked gets the same write id, so that two copies (a home
  // that failed after it may have applied the write, and the next) are
  // known for one write wherever they meet.
  //
  // A write that comes to a second home may have been stored by the first
  // under another stamp: the copy this home stores names its own write id
  // among those it replaces, and every version that takes its place later
  // inherits the id, so that the first home's copy, wherever it turns up
  // later, stands below them and not beside them.
  void try_home(size_t h) {
    const size_t i = live_[h];
    Versioned request{value_.value, value_.clock, write_id_, kStampBase + s_->ring.nodes()[i].id};
    request.clock.set_timestamp_ms(now_ms());
    if (h > 0) request.replaces = {write_id_};
    {
      std::lock_guard lock(mu_);
      trying_ = h;
    }
    s_->begin();
    s_->call_replica(i, [self = shared_from_this(), h, request](Store& r) {
      r.async_put(self->key_, request, [self, h, sent = request.clock](PutReply reply,
                                                                        std::exception_ptr e) {
        // A node older than write ids ignores the stamp: its copy would
        // stand as a sibling of every other writer's. The next node is
        // the home instead (the unstamped copy is before its stamped one).
        if (!e && reply.result == PutResult::kStored && !has_a_stamp_beyond(reply.stored, sent)) {
          const std::string why = self->s_->name(self->live_[h]) +
                                  " stored a write without the stamp its home must add: it runs "
                                  "a cairn older than write ids; upgrade every node before its "
                                  "clients";
          if (!self->s_->warned_unstamped.exchange(true)) {
            log(LogLevel::kWarn, "route '" + self->s_->options.store + "': " + why +
                                     " (said once; each such write takes the next home)");
          }
          e = std::make_exception_ptr(FailedPrecondition(why));
        }
        self->home_answered(h, std::move(reply), std::move(e));
      });
    });
  }

  void home_answered(size_t h, PutReply answer, std::exception_ptr error) {
    RoutedStore::Shared& s = *s_;
    const size_t i = live_[h];
    if (error) s.detector->record_failure(i, error);
    enum { kNone, kNextHome, kRest, kDone } next = kNone;
    std::exception_ptr failure;
    PutReply reply;
    {
      std::lock_guard lock(mu_);
      if (finished_) {
        // The deadline passed while the home was silent: the write may
        // have landed there, and the caller was told it failed.
      } else if (error) {
        if (is_bad_request(error)) {
          finished_ = true;
          failure = error;
          next = kDone;
        } else {
          failed_.emplace_back(i, error);
          missed_.push_back(i);
          if (h + 1 < live_.size()) {
            next = kNextHome;
          } else {
            finished_ = true;
            failure = s.insufficient("put", key_, need_, 0, {}, failed_, down_, {});
            next = kDone;
          }
        }
      } else if (answer.result == PutResult::kObsolete) {
        finished_ = true;
        reply.result = PutResult::kObsolete;
        next = kDone;
      } else {
        home_ = h;
        stamped_ = Versioned{value_.value, std::move(answer.stored), write_id_, 0,
                             std::move(answer.replaces)};
        answered_ok_ = 1;
        next = kRest;
        if (answered_ok_ >= need_) {
          finished_ = true;
          reply.stored = stamped_.clock;
        }
      }
    }
    if (next == kNextHome) {
      try_home(h + 1);
    } else if (next == kRest) {
      send_rest(h);
      if (need_ <= 1) complete(nullptr, reply);
    } else if (next == kDone) {
      complete(std::move(failure), reply);
    }
    s.end();
  }

  // The other live replicas, at once; hints for those that missed it. One
  // that fails later, after the caller has its answer, still gets a hint.
  void send_rest(size_t h) {
    RoutedStore::Shared& s = *s_;
    std::vector<size_t> rest(live_.begin() + static_cast<std::ptrdiff_t>(h) + 1, live_.end());
    Hint hint{.key = key_, .version = stamped_};
    const std::optional<size_t> home = live_[h];
    {
      std::lock_guard lock(mu_);
      rest_ = rest;
    }
    for (size_t i : rest) {
      s.begin();
      s.call_replica(i, [self = shared_from_this(), i, hint, home](Store& r) {
        r.async_put(self->key_, hint.version, [self, i, hint, home](PutReply,
                                                                   std::exception_ptr e) {
          self->rest_answered(i, std::move(e), hint, home);
        });
      });
    }
    for (size_t i : missed_) s.leave_hint(i, hint, home);
  }

  void rest_answered(size_t i, std::exception_ptr error, const Hint& hint,
                     std::optional<size_t> home) {
    RoutedStore::Shared& s = *s_;
    if (error) {
      s.detector->record_failure(i, error);
      if (!is_bad_request(error)) s.leave_hint(i, hint, home);
    }
    bool finish_now = false;
    std::exception_ptr failure;
    PutReply reply;
    {
      std::lock_guard lock(mu_);
      ++rest_answered_;
      if (error) {
        rest_failed_.emplace_back(i, std::move(error));
      } else {
        ++answered_ok_;  // obsolete too: the replica has this write or a newer one
        rest_ok_.push_back(i);
      }
      if (!finished_) {
        if (answered_ok_ >= need_) {
          finished_ = finish_now = true;
          reply.stored = stamped_.clock;
        } else if (rest_answered_ == rest_.size()) {
          finished_ = finish_now = true;
          failure = error_locked();
        }
      }
    }
    if (finish_now) complete(std::move(failure), reply);
    s.end();
  }

  void expire() {
    std::exception_ptr failure;
    {
      std::lock_guard lock(mu_);
      if (finished_) return;
      finished_ = true;
      failure = error_locked();
    }
    complete(std::move(failure), PutReply{});
  }

  // InsufficientReplicas for what answered so far.
  std::exception_ptr error_locked() const {
    if (!home_) {
      // No home by the deadline: the write may yet land on the one asked.
      return s_->insufficient("put", key_, need_, 0, {}, failed_, down_, {live_[trying_]});
    }
    std::vector<size_t> answered = {live_[*home_]};
    answered.insert(answered.end(), rest_ok_.begin(), rest_ok_.end());
    std::vector<std::pair<size_t, std::exception_ptr>> failed = failed_;
    failed.insert(failed.end(), rest_failed_.begin(), rest_failed_.end());
    std::vector<size_t> silent;
    for (size_t i : rest_) {
      const bool heard = std::find(rest_ok_.begin(), rest_ok_.end(), i) != rest_ok_.end() ||
                         std::any_of(rest_failed_.begin(), rest_failed_.end(),
                                     [&](const auto& f) { return f.first == i; });
      if (!heard) silent.push_back(i);
    }
    return s_->insufficient("put", key_, need_, answered.size(), answered, failed, down_, silent);
  }

  void complete(std::exception_ptr error, PutReply reply) {
    if (deadline_ != 0) internal::Timer::shared().cancel(deadline_);
    if (error) return internal::fail(done_, std::move(error));
    done_(std::move(reply), nullptr);
  }

  const std::shared_ptr<RoutedStore::Shared> s_;
  const std::string key_;
  const Versioned value_;
  const size_t need_;
  const Callback<PutReply> done_;
  const uint64_t write_id_;
  std::vector<size_t> live_, down_;  // set by start(), then read-only
  internal::Timer::Id deadline_ = 0;

  mutable std::mutex mu_;
  size_t trying_ = 0;                 // the home being asked; guarded by mu_
  std::optional<size_t> home_;        // index in live_; guarded by mu_
  Versioned stamped_;                 // as the home stamped it; guarded by mu_
  std::vector<size_t> missed_;        // replicas that get a hint; guarded by mu_
  std::vector<std::pair<size_t, std::exception_ptr>> failed_;  // homes that failed
  std::vector<size_t> rest_;          // guarded by mu_
  std::vector<size_t> rest_ok_;       // guarded by mu_
  std::vector<std::pair<size_t, std::exception_ptr>> rest_failed_;  // guarded by mu_
  size_t rest_answered_ = 0;          // guarded by mu_
  size_t answered_ok_ = 0;            // the home and the rest that took it
  bool finished_ = false;             // guarded by mu_
};

}  // namespace

void RoutedStore::start_write(std::string_view key, const Versioned& value,
                              Callback<PutReply> done) {
  s_->check_open();
  std::make_shared<WriteOp>(s_, std::string(key), value, std::move(done))->start();
}

PutResult RoutedStore::write(std::string_view key, const Versioned& value, PutReply* stored) {
  auto result = std::make_shared<std::promise<PutReply>>();
  auto future = result->get_future();
  start_write(key, value, [result](PutReply reply, std::exception_ptr e) {
    if (e) {
      result->set_exception(std::move(e));
    } else {
      result->set_value(std::move(reply));
    }
  });
  const PutReply reply = future.get();
  if (reply.result == PutResult::kStored && stored != nullptr) stored->stored = reply.stored;
  return reply.result;
}

void RoutedStore::async_put(std::string_view key, const Versioned& value,
                            Callback<PutReply> done) {
  try {
    start_write(key, live_successor(value), done);
  } catch (...) {
    internal::fail(done, std::current_exception());
  }
}

namespace {

// A delete is a tombstone written like any version: it supersedes the
// versions at or before `version` on every replica it reaches, and read
// repair and hints carry it to the others, so a replica that missed the
// delete cannot bring the value back. It is written only if a read (at R)
// finds something to delete.
bool deletes_something(const std::vector<VectorClock>& clocks, const VectorClock& version) {
  bool found = false;
  for (const VectorClock& c : clocks) {
    const Occurred o = compare(c, version);
    found |= !is_tombstone(c) && (o == Occurred::kBefore || o == Occurred::kEqual);
  }
  return found;
}

Versioned tombstone_for(const VectorClock& version) {
  Versioned tombstone{"", version};
  do {
    tombstone.clock.increment(kTombstoneEntry, now_ms());
  } while (!is_tombstone(tombstone.clock));
  return tombstone;
}

}  // namespace

bool RoutedStore::remove(std::string_view key, const VectorClock& version) {
  if (!deletes_something(versions(key), version)) return false;
  return write(key, tombstone_for(version), nullptr) == PutResult::kStored;
}

void RoutedStore::async_remove(std::string_view key, const VectorClock& version,
                               Callback<bool> done) {
  try {
    start_versions(key, [s = s_, self = this, k = std::string(key), version, done](
                            auto answers, std::exception_ptr e) {
      if (e) return internal::fail(done, std::move(e));
      if (!deletes_something(merge_clocks(answers), version)) return done(false, nullptr);
      try {
        self->start_write(k, tombstone_for(version), [done](PutReply r, std::exception_ptr we) {
          if (we) return internal::fail(done, std::move(we));
          done(r.result == PutResult::kStored, nullptr);
        });
      } catch (...) {
        internal::fail(done, std::current_exception());
      }
    });
  } catch (...) {
    internal::fail(done, std::current_exception());
  }
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
    for (Versioned& v : versions_) {  // as a read returns them
      v.write_id = 0;
      v.replaces.clear();
    }
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
  s.local.reset();
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
  o.read_hedge =
      std::chrono::milliseconds(p.get_int("read_hedge_ms", o.read_hedge.count(), 0, 3600000));
  o.read_repair = p.get_bool("read_repair", o.read_repair);
  o.read_repair_chance = p.get_double("read_repair_chance", o.read_repair_chance, 0, 1);
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

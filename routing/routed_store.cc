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
#include "core/metadata_tag.h"
#include "core/timer.h"
#include "core/version_list.h"
#include "metadata/follower.h"
#include "routing/failure_detector.h"
#include "routing/hinted_handoff.h"
#include "routing/hint.h"
#include "routing/reaper.h"
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

}  // namespace

bool is_tombstone(const VectorClock& c) { return c.counter(kTombstoneEntry) % 2 == 1; }

namespace {

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

// Whether `e` is a cairn Error of kind `code`.
bool has_code(const std::exception_ptr& e, ErrorCode code) {
  try {
    std::rethrow_exception(e);
  } catch (const Error& err) {
    return err.code() == code;
  } catch (...) {
    return false;
  }
}

// A node refused the call as routed by older metadata than its own.
bool is_stale(const std::exception_ptr& e) { return has_code(e, ErrorCode::kStaleMetadata); }

// How many times an operation refused for stale metadata is run again,
// each after a refresh that brought newer metadata.
constexpr int kStaleRetries = 3;

// A request every replica would refuse alike (an oversized key): reported
// as itself, not as a replica's failure.
bool is_bad_request(const std::exception_ptr& e) { return has_code(e, ErrorCode::kInvalidArgument); }

// A node the layer sends to: its replica stack, for as long as the store
// lives. Slots are numbered in the order the nodes first appear; a node
// that leaves the ring keeps its slot (and its number), unused.
struct Slot {
  NodeInfo node;
  std::shared_ptr<Store> replica;
  // The replica stack's way to leave a hint with its node (the grpc engine
  // at its bottom), or nullptr.
  HintKeeper* keeper = nullptr;
  // Whether its async calls would run their work inline (a node's own
  // engine on disk): calls to it go to `local`, so that no caller, network
  // thread or timer waits on a disk.
  bool blocking = false;

  std::string name() const {
    return "node " + std::to_string(node.id) + " (" + node.address + ")";
  }
};

// One version of the cluster's metadata, as the layer routes by it. An
// operation takes the view current when it starts and keeps it to the
// end, whatever update() does meanwhile.
struct View {
  int64_t version = 0;
  Ring ring;
  std::vector<std::shared_ptr<const Slot>> slots;  // every slot so far, by number
  std::vector<std::vector<size_t>> prefs;          // by partition: slots, in preference order
  // While partitions move (ClusterInfo::moving_to): by partition, the
  // slots that will be replicas after the move and are not yet. They get
  // every write, counted toward no quorum, and no reads. Empty otherwise.
  std::vector<std::vector<size_t>> joining;
  std::optional<Ring> target;
  // The writes routing by this view, counted from the moment one takes
  // the view (under view_mu, see Shared::take_for_write) to its last
  // replica call: at 0 on a retired view, none of its writes is in flight.
  mutable std::atomic<int> writes{0};

  explicit View(Ring r) : ring(std::move(r)) {}
  const std::vector<size_t>& prefs_of(std::string_view key) const {
    return prefs[ring.partition(key)];
  }
  const std::vector<size_t>& joining_of(std::string_view key) const {
    static const std::vector<size_t> kNone;
    return joining.empty() ? kNone : joining[ring.partition(key)];
  }
  Store& replica(size_t i) const { return *slots[i]->replica; }
};

// How many slots a store may use over its life (nodes that ever joined).
constexpr size_t kMaxSlots = 1024;

}  // namespace

struct RoutedStore::Shared {
  RouteOptions options;
  // Builds the replica stack of a node that joins the ring (nullptr: the
  // store's nodes are fixed).
  ReplicaFactory open_replica;
  std::optional<NodeId> self_id;  // the node we run on
  std::optional<size_t> self;     // its slot
  std::shared_ptr<HintedHandoff> hints;
  std::unique_ptr<FailureDetector> detector;
  // Local work started from callbacks (repairs and hints that write to this
  // node's disk), so that no gRPC thread waits on a disk.
  std::unique_ptr<internal::Executor> background;
  std::unique_ptr<internal::Executor> local;  // only if some replica blocks
  std::atomic<bool> warned_unstamped{false};  // a node that ignores stamps was logged
  // Starts following the metadata kept in etcd (RoutedStore::follow);
  // `following` once it does.
  std::function<void(const MetadataOrigin&)> follow_hook;
  std::atomic<bool> following{false};

  mutable std::mutex view_mu;
  std::shared_ptr<const View> view;  // guarded by view_mu
  // Reads the cluster metadata again (blocking), when a node said ours is
  // stale; null: nothing to read it from. Guarded by view_mu.
  std::function<void()> refresh;
  // The views before `view` whose writes may still be in flight
  // (View::writes); guarded by view_mu.
  std::vector<std::shared_ptr<const View>> retired;
  std::mutex update_mu;              // one update() at a time

  std::mutex mu;
  std::condition_variable cv;
  int inflight = 0;     // replica calls and background tasks; guarded by mu
  bool closed = false;  // guarded by mu

  std::shared_ptr<const View> current() const {
    std::lock_guard lock(view_mu);
    return view;
  }
  // The current view for a write, counted in its View::writes in the same
  // step, so that older_writes_done() cannot miss a write that took a
  // view just before update() retired it.
  std::shared_ptr<const View> take_for_write() const {
    std::lock_guard lock(view_mu);
    ++view->writes;
    return view;
  }
  // Slot `i`'s name; every view has every slot made before it.
  std::string name(size_t i) const { return current()->slots[i]->name(); }
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

  // Makes a call to slot `i` of `v` with `call(store)`, from a thread of
  // `local` if its calls would block. The caller has counted it in flight.
  template <typename Call>
  void call_replica(const View& v, size_t i, Call&& call) {
    const std::shared_ptr<const Slot>& slot = v.slots[i];
    if (!slot->blocking) {
      internal::MetadataTag tag(v.version);  // sent with the call (core/metadata_tag.h)
      return call(*slot->replica);
    }
    local->submit([slot, version = v.version, call = std::forward<Call>(call)]() mutable {
      internal::MetadataTag tag(version);
      call(*slot->replica);
    });
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

  // Runs `attempt(done')`, and again when it fails with StaleMetadata (a
  // node routes by newer metadata) if refreshing the metadata brings a
  // newer version, up to kStaleRetries times; `done` gets the last
  // outcome. The first attempt's throw propagates; the retries run on the
  // background thread (a refresh blocks).
  template <typename T>
  void with_refresh(std::function<void(Callback<T>)> attempt, Callback<T> done, int tries = 0) {
    // The version the attempt routes by (or an older one, if an update
    // lands in between: then one retry too many, never one too few).
    const int64_t before = current()->version;
    auto retry = [this, attempt, done, tries, before](T result, std::exception_ptr e) {
      if (!e || !is_stale(e) || tries >= kStaleRetries) return done(std::move(result), std::move(e));
      std::function<void()> read_again;
      {
        std::lock_guard lock(view_mu);
        read_again = refresh;
      }
      if (!read_again && !follows_where(e)) return done(std::move(result), std::move(e));
      in_background([this, attempt, done, tries, e, before, read_again] {
        try {
          // A store started from a file follows the etcd the node named.
          std::function<void()> again = read_again;
          if (!again) {
            follow_named(e);
            std::lock_guard lock(view_mu);
            again = refresh;
          }
          if (again) again();
        } catch (const std::exception& ex) {
          log(LogLevel::kWarn, "route '" + options.store + "': cannot refresh stale metadata: " +
                                   ex.what());
        }
        if (current()->version <= before) return done(T{}, e);
        try {
          with_refresh<T>(attempt, done, tries + 1);
        } catch (...) {
          done(T{}, std::current_exception());
        }
      });
    };
    attempt(std::move(retry));
  }

  // A stamped version that a replica refused for stale metadata, after its
  // home took it: once this layer routes by newer metadata than `seen`
  // (refreshed if need be), it goes to every replica of the key by that
  // layout, as read repair would. In the background.
  void rewrite(const std::string& key, const Versioned& stamped, int64_t seen) {
    in_background([this, key, stamped, seen] {
      std::function<void()> read_again;
      {
        std::lock_guard lock(view_mu);
        read_again = refresh;
      }
      if (current()->version <= seen && read_again) {
        try {
          read_again();
        } catch (const std::exception& e) {
          log(LogLevel::kWarn, "route '" + options.store + "': cannot refresh stale metadata: " +
                                   e.what());
        }
      }
      const std::shared_ptr<const View> v = take_for_write();
      // Counted as a write of the view until its last call answers.
      const std::shared_ptr<void> counted(nullptr, [v](void*) { --v->writes; });
      if (v->version <= seen) {
        log(LogLevel::kError, "route '" + options.store + "': a replica refused key " +
                                  printable_key(key) + " as routed by stale metadata, and no "
                                  "newer metadata came: that copy is missing until read repair");
        return;
      }
      std::vector<size_t> targets = v->prefs_of(key);
      const auto& joining = v->joining_of(key);
      targets.insert(targets.end(), joining.begin(), joining.end());
      for (size_t i : targets) {
        // A replica that fails gets a hint, kept by another live one.
        std::optional<size_t> keeper;
        for (size_t k : targets) {
          if (k != i && detector->available(k)) {
            keeper = k;
            break;
          }
        }
        begin();
        call_replica(*v, i, [this, v, i, key, stamped, keeper, counted](Store& r) {
          r.async_put(key, stamped, [this, v, i, key, stamped, keeper, counted](
                                        PutReply, std::exception_ptr e) {
            if (e && is_stale(e)) {
              log(LogLevel::kWarn, "route '" + options.store + "': " + v->slots[i]->name() +
                                       " refused key " + printable_key(key) + " again as routed "
                                       "by stale metadata; read repair carries it on");
            } else if (e) {
              detector->record_failure(i, e);
              if (!is_bad_request(e)) leave_hint(*v, i, Hint{.key = key, .version = stamped}, keeper);
            }
            end();
          });
        });
      }
    });
  }

  // Whether a refusal names where the metadata lives and this layer (a
  // client's, started from a file) could follow it there.
  bool follows_where(const std::exception_ptr& e) const {
    if (self || !follow_hook || following.load()) return false;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::vector<std::string> endpoints;
      std::string prefix;
      return internal::parse_metadata_source(ex.what(), &endpoints, &prefix);
    }
  }
  // Starts following the etcd a refusal names (once).
  void follow_named(const std::exception_ptr& e) {
    if (!follows_where(e) || following.exchange(true)) return;
    MetadataOrigin origin;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      internal::parse_metadata_source(ex.what(), &origin.etcd_endpoints, &origin.prefix);
    }
    log(LogLevel::kInfo, "route '" + options.store + "': a node routes by newer metadata, kept "
                         "in etcd at " + origin.etcd_endpoints.front() + " under '" +
                         origin.prefix + "': following it");
    follow_hook(origin);
  }

  // Whether this read goes to every live replica (read repair's sample).
  bool sample_for_repair() const {
    if (!options.read_repair || options.read_repair_chance <= 0) return false;
    if (options.read_repair_chance >= 1) return true;
    thread_local std::mt19937_64 rng{std::random_device{}()};
    return std::uniform_real_distribution<double>(0, 1)(rng) < options.read_repair_chance;
  }

  // Live and banned replicas of a key, in preference order.
  void split(const View& v, std::string_view key, std::vector<size_t>* live,
             std::vector<size_t>* down) const {
    for (size_t i : v.prefs_of(key)) (detector->available(i) ? live : down)->push_back(i);
  }

  // Leaves a hint that slot `i` missed a write: with this node's handoff
  // when we run in a node, else on slot `keeper` (a live replica that took
  // the write). Never blocks.
  void leave_hint(const View& v, size_t i, Hint hint, std::optional<size_t> keeper) {
    hint.node = v.slots[i]->node.id;
    hint.store = options.store;
    if (hints != nullptr) {
      in_background([this, hint = std::move(hint)] { hints->keep(hint); });
      return;
    }
    HintKeeper* k = keeper ? v.slots[*keeper]->keeper : nullptr;
    if (k == nullptr) {
      // In-process replicas (an embedded routed store) have no node to keep
      // hints: read repair is their only mender.
      log(keeper ? LogLevel::kDebug : LogLevel::kError,
          "route '" + options.store + "': no node to keep the hint for " + v.slots[i]->name() +
              " of key " + printable_key(hint.key));
      return;
    }
    begin();
    k->async_put_hint(hint, [this, missed = v.slots[i], by = v.slots[*keeper]](
                                std::exception_ptr error) {
      if (error) {
        log(LogLevel::kError, "route '" + options.store + "': " + by->name() +
                                  " did not keep the hint for " + missed->name() + ": " +
                                  what_of(error));
      }
      end();
    });
  }

  // Read repair: pushes to each replica that answered the versions it
  // lacks. Called once every replica of a read has answered.
  void repair(const std::shared_ptr<const View>& v, const std::string& key,
              const std::vector<std::pair<size_t, std::vector<Versioned>>>& ok) {
    if (ok.size() < 2) return;
    const std::vector<Versioned> merged = standing_versions(ok);
    for (const auto& [i, versions] : ok) {
      for (const Versioned& m : merged) {
        // A replica lacks `m` if no version it answered has m's clock, or
        // if it also holds a copy of a write m replaced.
        const bool has = std::any_of(versions.begin(), versions.end(),
                                     [&](const Versioned& x) { return x.clock == m.clock; });
        const bool stale = std::any_of(versions.begin(), versions.end(), [&](const Versioned& x) {
          return replaces_write(m, x.write_id);
        });
        if (has && !stale) continue;
        // A replica whose calls would run its disk inline is repaired from
        // a thread of `local`, not from a network library's.
        begin();
        call_replica(*v, i, [this, slot = v->slots[i], key, m](Store& r) {
          r.async_put(key, m, [this, slot, key](PutReply, std::exception_ptr error) {
            if (error) {
              log(LogLevel::kDebug, "read repair of key " + printable_key(key) + " on " +
                                        slot->name() + " failed: " + what_of(error));
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
      if (is_bad_request(e) || is_stale(e)) return e;
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

  // The slot of node `id` in `slots`, if it has one.
  static std::optional<size_t> slot_of(const std::vector<std::shared_ptr<const Slot>>& slots,
                                       NodeId id) {
    for (size_t i = 0; i < slots.size(); ++i) {
      if (slots[i]->node.id == id) return i;
    }
    return std::nullopt;
  }

  // A view of `cluster` at `version` over `slots`, adding a slot (from
  // `open`) for each node not in them. Throws InvalidArgument for a ring
  // the quorums do not fit, or a node that cannot be reached.
  std::shared_ptr<const View> make_view(const ClusterInfo& cluster, int64_t version,
                                        std::vector<std::shared_ptr<const Slot>> slots,
                                        const std::function<std::shared_ptr<Store>(const NodeInfo&)>& open) {
    const Replication& rep = options.replication;
    auto v = std::make_shared<View>(Ring(cluster));
    v->version = version;
    if (!cluster.moving_to.empty()) {
      v->target.emplace(ClusterInfo{cluster.partitions, cluster.moving_to, {}});
      if (v->target->partitions() != v->ring.partitions()) {
        throw InvalidArgument("route: a move must keep the number of partitions");
      }
    }
    for (const Ring* r : {&v->ring, v->target ? &*v->target : nullptr}) {
      if (r == nullptr) continue;
      if (rep.n > static_cast<int>(r->nodes().size())) {
        throw InvalidArgument("route: replication n=" + std::to_string(rep.n) + " r=" +
                              std::to_string(rep.r) + " w=" + std::to_string(rep.w) + " on " +
                              std::to_string(r->nodes().size()) + " nodes");
      }
      for (const NodeInfo& n : r->nodes()) {
        if (auto i = slot_of(slots, n.id)) {
          if (slots[*i]->node.address.empty()) {
            // This node, joining: the metadata gives its address.
            auto named = std::make_shared<Slot>(*slots[*i]);
            named->node = n;
            slots[*i] = std::move(named);
          } else if (slots[*i]->node.address != n.address) {
            throw InvalidArgument("route: node " + std::to_string(n.id) + " moved from " +
                                  slots[*i]->node.address + " to " + n.address +
                                  "; a node keeps its address (remove it and add it anew)");
          }
          continue;
        }
        if (!open) {
          throw InvalidArgument("route: node " + std::to_string(n.id) +
                                " is not one of this store's replicas");
        }
        if (slots.size() == kMaxSlots) {
          throw InvalidArgument("route: more than " + std::to_string(kMaxSlots) +
                                " nodes over the store's life; reopen it");
        }
        auto slot = std::make_shared<Slot>();
        slot->node = n;
        slot->replica = open(n);
        if (slot->replica == nullptr) throw InvalidArgument("route: a replica stack is null");
        slot->keeper = find_layer<HintKeeper>(*slot->replica);
        slot->blocking = slot->replica->async_calls_block();
        slots.push_back(std::move(slot));
      }
    }
    v->slots = std::move(slots);
    for (uint32_t p = 0; p < v->ring.partitions(); ++p) {
      std::vector<size_t> list;
      for (NodeId id : v->ring.preference_list(p, rep.n)) list.push_back(*slot_of(v->slots, id));
      if (v->target) {
        std::vector<size_t> joining;
        for (NodeId id : v->target->preference_list(p, rep.n)) {
          const size_t i = *slot_of(v->slots, id);
          if (std::find(list.begin(), list.end(), i) == list.end()) joining.push_back(i);
        }
        v->joining.push_back(std::move(joining));
      }
      v->prefs.push_back(std::move(list));
    }
    return v;
  }

  explicit Shared(RouteOptions o) : options(std::move(o)) {}
};

RoutedStore::RoutedStore(RouteOptions options, Ring ring,
                         std::vector<std::shared_ptr<Store>> replicas,
                         std::optional<NodeId> self, std::shared_ptr<HintedHandoff> hints,
                         ReplicaFactory open_replica, std::shared_ptr<Store> self_replica)
    : s_(std::make_shared<Shared>(std::move(options))) {
  Shared& s = *s_;
  const Replication& rep = s.options.replication;
  if (replicas.size() != ring.nodes().size()) {
    throw InvalidArgument("route: " + std::to_string(replicas.size()) + " replica stacks for " +
                          std::to_string(ring.nodes().size()) + " nodes");
  }
  if (rep.n < 1 || rep.r < 1 || rep.w < 1 || rep.r > rep.n || rep.w > rep.n ||
      rep.n > static_cast<int>(ring.nodes().size())) {
    throw InvalidArgument("route: replication n=" + std::to_string(rep.n) + " r=" +
                          std::to_string(rep.r) + " w=" + std::to_string(rep.w) + " on " +
                          std::to_string(ring.nodes().size()) + " nodes");
  }
  if (s.options.timeout.count() < 1) throw InvalidArgument("route: timeout must be positive");
  for (const auto& r : replicas) {
    if (r == nullptr) throw InvalidArgument("route: a replica stack is null");
  }
  // The first view's slots are the ring's nodes, in its order, with the
  // stacks given.
  // A node not on the ring yet (it joins in a move) has a slot of its own
  // from the start, addressed once the metadata names it.
  std::vector<std::shared_ptr<const Slot>> slots;
  if (self && !ring.has_node(*self)) {
    if (self_replica == nullptr) {
      throw InvalidArgument("route: no node " + std::to_string(*self) + " on the ring");
    }
    auto slot = std::make_shared<Slot>();
    slot->node.id = *self;
    slot->replica = std::move(self_replica);
    slot->keeper = find_layer<HintKeeper>(*slot->replica);
    slot->blocking = slot->replica->async_calls_block();
    slots.push_back(std::move(slot));
  }
  size_t next = 0;
  auto first = s.make_view(ring.to_cluster(), 0, std::move(slots),
                           [&](const NodeInfo&) { return replicas[next++]; });
  if (self) {
    s.self_id = self;
    s.self = Shared::slot_of(first->slots, *self);
  }
  s.open_replica = std::move(open_replica);
  if (s.open_replica) s.follow_hook = [this](const MetadataOrigin& o) { follow(o); };
  s.hints = std::move(hints);
  s.background = std::make_unique<internal::Executor>(1);
  if (std::any_of(first->slots.begin(), first->slots.end(),
                  [](const auto& slot) { return slot->blocking; })) {
    s.local = std::make_unique<internal::Executor>(kLocalThreads);
  }
  s.view = std::move(first);
  Shared* sp = s_.get();
  s.detector = std::make_unique<FailureDetector>(
      s.view->slots.size(), kMaxSlots, s.options.ban, s.options.probe_interval,
      [sp](size_t i, std::function<void(std::exception_ptr)> done) {
        // A probe is a read through the whole stack below `route`: what
        // answers it answers real calls.
        // Not a routed call: whatever metadata the node has, it answers.
        internal::MetadataTag any(INT64_MAX);
        sp->current()->replica(i).async_versions(
            kProbeKey, [done = std::move(done)](std::vector<VectorClock>, std::exception_ptr e) {
              done(e);
            });
      },
      [sp](size_t i) { return "route '" + sp->options.store + "': " + sp->name(i); });
}

void RoutedStore::update(const ClusterInfo& cluster, int64_t version) {
  Shared& s = *s_;
  std::lock_guard one(s.update_mu);
  const std::shared_ptr<const View> old = s.current();
  if (version <= old->version) return;
  auto v = s.make_view(cluster, version, old->slots, s.open_replica);
  if (s.local == nullptr && std::any_of(v->slots.begin(), v->slots.end(),
                                        [](const auto& slot) { return slot->blocking; })) {
    throw InvalidArgument("route '" + s.options.store + "': a joining node's replica would block");
  }
  s.detector->grow(v->slots.size());
  {
    std::lock_guard lock(s.view_mu);
    s.retired.push_back(old);
    s.view = v;
  }
  log(LogLevel::kInfo, "route '" + s.options.store + "': metadata version " +
                           std::to_string(version) + ", " + std::to_string(v->ring.nodes().size()) +
                           " nodes" +
                           (v->target ? ", moving partitions to " +
                                            std::to_string(v->target->nodes().size()) + " nodes"
                                      : std::string()));
}

int64_t RoutedStore::version() const { return s_->current()->version; }

void RoutedStore::set_refresh(std::function<void()> refresh) {
  std::lock_guard lock(s_->view_mu);
  s_->refresh = std::move(refresh);
}

void RoutedStore::follow(const MetadataOrigin& origin) {
  s_->following = true;
  auto follower = std::make_shared<internal::MetadataFollower>(
      origin, "route '" + s_->options.store + "'",
      [this](const Config& config, int64_t version) { update(config.cluster(), version); });
  set_refresh([f = follower.get()] { f->refresh(); });
  follower_ = std::move(follower);
}

bool RoutedStore::older_writes_done() const {
  std::lock_guard lock(s_->view_mu);
  std::erase_if(s_->retired, [](const std::shared_ptr<const View>& v) { return v->writes == 0; });
  return s_->retired.empty();
}

RoutedStore::~RoutedStore() {
  try {
    close();
  } catch (const std::exception& e) {
    log(LogLevel::kError, std::string("route: closing: ") + e.what());
  }
}

Ring RoutedStore::ring() const { return s_->current()->ring; }

Replication RoutedStore::replication() const { return s_->options.replication; }

std::optional<NodeId> RoutedStore::self() const { return s_->self_id; }

std::optional<NodeId> RoutedStore::home(std::string_view key) const {
  const auto v = s_->current();
  for (NodeId id : v->ring.preference_list(key, s_->options.replication.n)) {
    if (!banned(id)) return id;
  }
  return std::nullopt;
}


bool RoutedStore::banned(NodeId id) const {
  auto i = Shared::slot_of(s_->current()->slots, id);
  return i && !s_->detector->available(*i);
}

std::shared_ptr<Store> RoutedStore::replica(NodeId id) const {
  const auto v = s_->current();
  auto i = Shared::slot_of(v->slots, id);
  if (!i) return nullptr;
  // The slot owns the stack; hand out an alias that keeps all of the
  // shared state alive.
  return std::shared_ptr<Store>(s_, v->slots[*i]->replica.get());
}

std::shared_ptr<Store> RoutedStore::local_replica() const {
  if (!s_->self) return nullptr;
  return std::shared_ptr<Store>(s_, s_->current()->slots[*s_->self]->replica.get());
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
  using Last = std::function<void(const std::shared_ptr<const View>&, const Answers&)>;

  ReadOp(std::shared_ptr<RoutedStore::Shared> s, const char* op, std::string key, Call call,
         Finish finish, Last last)
      : s_(std::move(s)),
        v_(s_->current()),
        op_(op),
        key_(std::move(key)),
        need_(static_cast<size_t>(s_->options.replication.r)),
        call_(std::move(call)),
        finish_(std::move(finish)),
        last_(std::move(last)) {}

  void start() {
    RoutedStore::Shared& s = *s_;
    s.split(*v_, key_, &live_, &down_);
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
      s_->call_replica(*v_, i, [self = this->shared_from_this(), i](Store& r) {
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
    if (all_in && last_) last_(v_, everything);
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
  const std::shared_ptr<const View> v_;
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
  using Answers = std::vector<std::pair<size_t, std::vector<Versioned>>>;
  s_->with_refresh<Answers>(
      [this, k = std::string(key)](Callback<Answers> done) { start_get_once(k, std::move(done)); },
      std::move(finish));
}

void RoutedStore::start_get_once(
    std::string_view key,
    std::function<void(std::vector<std::pair<size_t, std::vector<Versioned>>>, std::exception_ptr)>
        finish) {
  using Versions = std::vector<Versioned>;
  s_->check_open();
  auto last = [s = s_, k = std::string(key)](const std::shared_ptr<const View>& v,
                                             const std::vector<std::pair<size_t, Versions>>& ok) {
    if (s->options.read_repair) s->repair(v, k, ok);
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
  using Answers = std::vector<std::pair<size_t, std::vector<VectorClock>>>;
  s_->with_refresh<Answers>(
      [this, k = std::string(key)](Callback<Answers> done) {
        start_versions_once(k, std::move(done));
      },
      std::move(finish));
}

void RoutedStore::start_versions_once(
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
        v_(s_->current()),
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
        s.split(*v_, key, &k.live, &k.down);
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
      s_->call_replica(*v_, i, [self = shared_from_this(), i, keys = std::move(keys)](Store& r) {
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
      for (const auto& [key, ok] : oks) s.repair(v_, key, ok);
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
  const std::shared_ptr<const View> v_;
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
  using Found = std::map<std::string, std::vector<Versioned>>;
  try {
    s_->check_open();
    s_->with_refresh<Found>(
        [s = s_, keys = std::move(keys)](Callback<Found> d) {
          s->check_open();
          std::make_shared<MultiReadOp>(s, std::move(d))->start(keys);
        },
        std::move(done));
  } catch (...) {
    internal::fail(done, std::current_exception());
  }
}

std::map<std::string, std::vector<Versioned>> RoutedStore::get_all(
    std::span<const std::string> keys) {
  using Found = std::map<std::string, std::vector<Versioned>>;
  auto result = std::make_shared<std::promise<Found>>();
  auto future = result->get_future();
  async_get_all(std::vector<std::string>(keys.begin(), keys.end()),
                [result](Found found, std::exception_ptr e) {
                  if (e) {
                    result->set_exception(std::move(e));
                  } else {
                    result->set_value(std::move(found));
                  }
                });
  return future.get();
}

PutResult RoutedStore::put_stamped(std::string_view key, const Versioned& value,
                                   PutReply* stored) {
  check_no_ttl(s_->options.store, value);
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
        v_(s_->take_for_write()),
        key_(std::move(key)),
        value_(std::move(value)),
        need_(static_cast<size_t>(s_->options.replication.w)),
        done_(std::move(done)),
        write_id_(value_.write_id != 0 ? value_.write_id : internal::new_write_id()) {}
  // The last replica call of the write has answered (each holds the op).
  ~WriteOp() { --v_->writes; }

  void start() {
    RoutedStore::Shared& s = *s_;
    s.split(*v_, key_, &live_, &down_);
    missed_ = down_;
    // Nodes that take the key's partition in a move get the write too, and
    // count toward nothing; one that is down gets a hint.
    for (size_t i : v_->joining_of(key_)) {
      (s.detector->available(i) ? joining_ : missed_).push_back(i);
    }
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
    Versioned request{value_.value, value_.clock, write_id_, kStampBase + v_->slots[i]->node.id};
    request.clock.set_timestamp_ms(now_ms());
    if (h > 0) request.replaces = {write_id_};
    {
      std::lock_guard lock(mu_);
      trying_ = h;
    }
    s_->begin();
    s_->call_replica(*v_, i, [self = shared_from_this(), h, request](Store& r) {
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
        // A bad request fails alike everywhere; a home whose metadata is
        // newer refused the write unwritten: it runs again by the newer
        // layout (with_refresh), the same write.
        if (is_bad_request(error) || is_stale(error)) {
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
      s.call_replica(*v_, i, [self = shared_from_this(), i, hint, home](Store& r) {
        r.async_put(self->key_, hint.version, [self, i, hint, home](PutReply,
                                                                   std::exception_ptr e) {
          self->rest_answered(i, std::move(e), hint, home);
        });
      });
    }
    for (size_t i : joining_) {
      s.begin();
      s.call_replica(*v_, i, [self = shared_from_this(), i, hint, home](Store& r) {
        r.async_put(self->key_, hint.version, [self, i, hint, home](PutReply,
                                                                   std::exception_ptr e) {
          RoutedStore::Shared& sh = *self->s_;
          if (e && is_stale(e)) {
            sh.rewrite(self->key_, hint.version, self->v_->version);
          } else if (e) {
            sh.detector->record_failure(i, e);
            if (!is_bad_request(e)) sh.leave_hint(*self->v_, i, hint, home);
          }
          sh.end();
        });
      });
    }
    for (size_t i : missed_) s.leave_hint(*v_, i, hint, home);
  }

  void rest_answered(size_t i, std::exception_ptr error, const Hint& hint,
                     std::optional<size_t> home) {
    RoutedStore::Shared& s = *s_;
    if (error && is_stale(error)) {
      // The replica's metadata is newer: the write goes to the key's
      // replicas by that (a hint would put it where the key may no longer
      // live).
      s.rewrite(key_, hint.version, v_->version);
    } else if (error) {
      s.detector->record_failure(i, error);
      if (!is_bad_request(error)) s.leave_hint(*v_, i, hint, home);
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
  const std::shared_ptr<const View> v_;
  const std::string key_;
  const Versioned value_;
  const size_t need_;
  const Callback<PutReply> done_;
  const uint64_t write_id_;
  std::vector<size_t> live_, down_;  // set by start(), then read-only
  std::vector<size_t> joining_;      // live joining replicas; set by start()
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
  // A write run again after a refresh keeps its id: it is the same write,
  // wherever it landed the first time.
  Versioned v = value;
  if (v.write_id == 0) v.write_id = internal::new_write_id();
  s_->with_refresh<PutReply>(
      [s = s_, k = std::string(key), v = std::move(v)](Callback<PutReply> d) {
        s->check_open();
        std::make_shared<WriteOp>(s, k, v, std::move(d))->start();
      },
      std::move(done));
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
    check_no_ttl(s_->options.store, value);
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
  RoutedIterator(std::shared_ptr<const View> v, std::vector<bool> live)
      : v_(std::move(v)), live_(std::move(live)) {}

  bool next() override;
  std::string_view key() const override { return cur_->key(); }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  std::shared_ptr<const View> v_;
  std::vector<bool> live_;  // by slot: on the ring and up
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
      internal::MetadataTag tag(v_->version);
      cur_ = v_->replica(node_).scan();
    }
    if (!cur_->next()) {
      cur_.reset();
      ++node_;
      continue;
    }
    bool ours = false;
    for (size_t i : v_->prefs_of(cur_->key())) {
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
  auto v = s_->current();
  std::vector<bool> live(v->slots.size());
  for (size_t i = 0; i < live.size(); ++i) {
    live[i] = v->ring.has_node(v->slots[i]->node.id) && s_->detector->available(i);
  }
  return std::make_unique<RoutedIterator>(std::move(v), std::move(live));
}

void RoutedStore::start_reaper(const ReapOptions& options) {
  if (!s_->self_id) throw FailedPrecondition("route: only a node's route reaps");
  if (reaper_ != nullptr) throw FailedPrecondition("route: the reaper runs already");
  reaper_ = std::make_shared<Reaper>(*this, options);
}

Reaper* RoutedStore::reaper() const { return reaper_.get(); }

void RoutedStore::close() {
  Shared& s = *s_;
  {
    std::lock_guard lock(s.mu);
    if (s.closed) return;
    s.closed = true;
  }
  // The reaper calls the replicas: it stops before they close.
  if (reaper_ != nullptr) reaper_->stop();
  set_refresh(nullptr);
  s.detector->stop();
  {
    std::unique_lock lock(s.mu);
    s.cv.wait(lock, [&] { return s.inflight == 0; });
  }
  // No retry holds the follower now (they ran on the background thread,
  // counted in flight); no update() after this.
  follower_.reset();
  s.background.reset();
  s.local.reset();
  std::exception_ptr first;
  for (auto& slot : s.current()->slots) {
    try {
      slot->replica->close();
    } catch (...) {
      if (!first) first = std::current_exception();
    }
  }
  if (first) std::rethrow_exception(first);
}

std::string RoutedStore::describe() const {
  const Shared& s = *s_;
  const auto v = s.current();
  const Replication& r = s.options.replication;
  std::string out = "route: store '" + s.options.store + "', n=" + std::to_string(r.n) +
                    " r=" + std::to_string(r.r) + " w=" + std::to_string(r.w) + ", " +
                    std::to_string(v->ring.partitions()) + " partitions on " +
                    std::to_string(v->ring.nodes().size()) + " nodes, timeout " +
                    std::to_string(s.options.timeout.count()) + " ms" +
                    (s.options.read_repair ? ", read repair" : "") +
                    (s.self ? ", in " + v->slots[*s.self]->name() : "") +
                    (v->version != 0 ? ", metadata version " + std::to_string(v->version) : "") +
                    (v->target ? ", moving partitions" : "");
  for (size_t i = 0; i < v->slots.size(); ++i) {
    if (!v->ring.has_node(v->slots[i]->node.id) && !(v->target && v->target->has_node(v->slots[i]->node.id))) {
      continue;  // left the ring
    }
    std::string below = v->replica(i).describe();
    for (size_t at = 0; (at = below.find('\n', at)) != std::string::npos; at += 5) {
      below.replace(at, 1, "\n    ");
    }
    out += "\n  " + v->slots[i]->name() + (s.self == i ? ", this node" : "") + ":\n    " + below;
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
  // How a node that joins the ring later is reached: from a node, its
  // replica over the network; from a client, the stack below `route` (the
  // factory keeps what it needs).
  RoutedStore::ReplicaFactory open_replica;
  if (ctx.self != nullptr) {
    open_replica = [store = o.store, timeout = o.timeout,
                    tls = ctx.tls != nullptr ? *ctx.tls : ServerTls{}](const NodeInfo& n) {
      return std::shared_ptr<Store>(open_node_replica(n.address, store, timeout, tls));
    };
  } else if (ctx.open_later) {
    open_replica = [open = ctx.open_later](const NodeInfo& n) {
      return std::shared_ptr<Store>(open(n));
    };
  }
  for (const NodeInfo& n : ring.nodes()) {
    if (ctx.self != nullptr && n.id != *ctx.self) {
      replicas.push_back(open_replica(n));
    } else {
      replicas.push_back(std::shared_ptr<Store>(ctx.open_below(n)));
    }
  }
  // A node that joins the cluster serves its own replica before the
  // metadata puts it on the ring.
  std::shared_ptr<Store> self_replica;
  if (ctx.self != nullptr && !ring.has_node(*ctx.self)) {
    NodeInfo me;
    me.id = *ctx.self;
    self_replica = std::shared_ptr<Store>(ctx.open_below(me));
  }
  std::optional<NodeId> self;
  if (ctx.self != nullptr) self = *ctx.self;
  // Reaping (routing/reaper.h): tombstones and expired versions go this
  // long after their time, once every replica agrees.
  ReapOptions reap;
  reap.grace = std::chrono::milliseconds(
      p.get_int("reap_grace_ms", reap.grace.count(), 1000, int64_t{365} * 86400 * 1000));
  reap.interval = std::chrono::milliseconds(
      p.get_int("reap_interval_ms", reap.interval.count(), 0, int64_t{7} * 86400 * 1000));
  reap.rate = static_cast<uint64_t>(
      p.get_int("reap_rate", static_cast<int64_t>(reap.rate), 1, 100'000'000));
  const std::string store = o.store;
  auto routed = std::make_unique<RoutedStore>(std::move(o), std::move(ring), std::move(replicas),
                                              self, ctx.hints, std::move(open_replica),
                                              std::move(self_replica));
  if (self) {
    routed->start_reaper(reap);
    // Hints are dropped well before the grace ends: a hint delivered
    // after a reaper removed the tombstone that superseded it would bring
    // the value back. The quarter left covers a delivery's own time and
    // the skew between this node's clock and the reapers'.
    if (ctx.hints != nullptr) ctx.hints->set_max_age(store, reap.grace * 3 / 4);
  }
  if (ctx.origin != nullptr && ctx.origin->version > 0) {
    // Metadata kept in etcd: route by its version (what replica calls
    // carry), and in a client follow it (a node's server follows it for
    // all of its stores).
    routed->update(*ctx.cluster, ctx.origin->version);
    if (ctx.self == nullptr) routed->follow(*ctx.origin);
  }
  return routed;
}

std::unique_ptr<Store> open_routed_store(RouteOptions options, Ring ring,
                                         std::vector<std::shared_ptr<Store>> replicas) {
  return std::make_unique<RoutedStore>(std::move(options), std::move(ring), std::move(replicas),
                                       std::nullopt, nullptr);
}

}  // namespace cairn

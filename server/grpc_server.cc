#include "server/grpc_server.h"

#include <grpc/grpc_security_constants.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "cairn/log.h"
#include "cairn/readonly_store.h"
#include "cairn/ring.h"
#include "cairn/stats_store.h"
#include "cairn/update.h"
#include "core/executor.h"
#include "core/metadata_tag.h"
#include "core/security_config.h"
#include "core/timer.h"
#include "engines/readonly/receiver.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/grpc_store.h"
#include "layers/grpc/wire.h"
#include "routing/routed_store.h"
#include "server/access.h"

namespace cairn {

namespace {

using internal::status_of;

// A reactor's own thread, once its call is done: OnDone may run on that
// thread itself (its last act was Finish), which cannot join itself.
void join_or_detach(std::thread& t) {
  if (t.get_id() == std::this_thread::get_id()) {
    t.detach();
  } else {
    t.join();
  }
}

struct Served {
  ServedStore store;
  bool inline_writes = false;          // the stack's writes never block: no pool hop
  bool inline_replica_writes = false;  // the same for its replica stack
  bool blocking_reads = false;         // its reads wait on other nodes: pool
  bool blocking_replica_reads = false;
  // Its async calls only start the work (a routing layer's): a call to it
  // starts on gRPC's thread and finishes in the store's callback, with no
  // thread waiting for the replicas.
  bool async = false;
  bool async_replica = false;
  bool answers_async(bool replica) const {
    return replica && store.replica ? async_replica : async;
  }
  std::atomic<uint64_t> calls{0};
  bool writes_inline(bool replica) const {
    return replica && store.replica ? inline_replica_writes : inline_writes;
  }
  bool reads_inline(bool replica) const {
    return !(replica && store.replica ? blocking_replica_reads : blocking_reads);
  }
  // The stack a request reaches: the node's own replica when it asks for
  // it and the store is routed by this node, else the whole stack.
  Store& target(bool replica) const {
    return replica && store.replica ? *store.replica : *store.store;
  }
};

using StoreMap = std::map<std::string, std::unique_ptr<Served>, std::less<>>;

// Counts the calls in flight, and refuses new ones once draining. gRPC's own
// Shutdown(deadline) waits for every client connection to go away, idle
// ones included, until the deadline: draining ourselves lets a server with
// idle clients stop as soon as its last call has finished.
class Drain {
 public:
  // False (and the call must be refused) once draining.
  bool enter() {
    std::lock_guard lock(mu_);
    if (draining_) return false;
    ++inflight_;
    return true;
  }
  // Counts work that must finish even while draining (a stream already
  // accepted that has requests to answer); leave() ends it.
  void hold() {
    std::lock_guard lock(mu_);
    ++inflight_;
  }
  bool draining() {
    std::lock_guard lock(mu_);
    return draining_;
  }
  void leave() {
    std::lock_guard lock(mu_);
    if (--inflight_ == 0) cv_.notify_all();
  }
  // Refuses new calls, then waits up to `grace` for those in flight.
  void drain(std::chrono::milliseconds grace) {
    std::unique_lock lock(mu_);
    draining_ = true;
    cv_.wait_for(lock, grace, [this] { return inflight_ == 0; });
  }
  static grpc::Status refused() {
    return internal::to_status(Unavailable("the server is shutting down"));
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int inflight_ = 0;
  bool draining_ = false;
};

// The store a request names; NotFound (NOT_FOUND on the wire) if none.
// A replica call routed by cluster metadata older than this node's is
// refused: after a move began, a write routed by the old layout must not
// land (core/metadata_tag.h).
Store& lookup(const StoreMap& stores, const std::string& name, bool replica = false,
              uint64_t routed_by = 0) {
  const int64_t ours = internal::process_metadata_version().load(std::memory_order_relaxed);
  if (replica && ours > 0 && routed_by < static_cast<uint64_t>(ours)) {
    throw StaleMetadata("store '" + name + "': this node routes by cluster metadata version " +
                        std::to_string(ours) + ", and the call was routed by version " +
                        std::to_string(routed_by) + ": refresh the metadata and retry" +
                        internal::process_metadata_source());
  }
  auto it = stores.find(name);
  if (it == stores.end()) {
    std::string known;
    for (const auto& [n, s] : stores) known += (known.empty() ? "" : ", ") + n;
    throw NotFound("no store '" + name + "' on this server (it serves: " + known + ")");
  }
  it->second->calls.fetch_add(1, std::memory_order_relaxed);
  return it->second->target(replica);
}

// A store's own replica on this node, for the admin's calls (not routed:
// no metadata version to check).
Store& own_replica(const StoreMap& stores, const std::string& name) {
  return lookup(stores, name, true, UINT64_MAX);
}

// ---- The operations, shared by the unary methods and the Stream -------------

void do_get(const StoreMap& stores, const rpc::GetRequest& req, rpc::GetResponse* resp) {
  Store& store = lookup(stores, req.store(), req.replica(), req.metadata_version());
  for (const Versioned& v : store.get(req.key())) internal::to_wire(v, resp->add_versions());
}

void do_get_all(const StoreMap& stores, const rpc::GetAllRequest& req, rpc::GetAllResponse* resp) {
  Store& store = lookup(stores, req.store(), req.replica(), req.metadata_version());
  const std::vector<std::string> keys(req.keys().begin(), req.keys().end());
  for (const auto& [key, versions] : store.get_all(keys)) {
    rpc::KeyVersions* kv = resp->add_found();
    kv->set_key(key);
    for (const Versioned& v : versions) internal::to_wire(v, kv->add_versions());
  }
}

void answer_put(const PutReply& reply, rpc::PutResponse* resp) {
  if (reply.result == PutResult::kObsolete) {
    resp->set_obsolete(true);
    return;
  }
  internal::to_wire(reply.stored, resp->mutable_clock());
  for (uint64_t w : reply.replaces) resp->add_replaces(w);
}

void do_put(const StoreMap& stores, const rpc::PutRequest& req, rpc::PutResponse* resp) {
  Store& store = lookup(stores, req.store(), req.replica(), req.metadata_version());
  if (!req.has_version()) throw InvalidArgument("put without a version");
  const Versioned value = internal::from_wire(req.version());
  PutReply reply{.stored = value.clock};
  reply.result = store.put_stamped(req.key(), value, &reply);
  answer_put(reply, resp);
}

void do_delete(const StoreMap& stores, const rpc::DeleteRequest& req, rpc::DeleteResponse* resp) {
  Store& store = lookup(stores, req.store(), req.replica(), req.metadata_version());
  resp->set_deleted(store.remove(req.key(), internal::from_wire(req.clock())));
}

void do_get_versions(const StoreMap& stores, const rpc::GetRequest& req,
                     rpc::GetVersionsResponse* resp) {
  Store& store = lookup(stores, req.store(), req.replica(), req.metadata_version());
  for (const VectorClock& c : store.versions(req.key())) internal::to_wire(c, resp->add_clocks());
}

// Atomic: at the key's home, one update of a key at a time (cairn/update.h).
// A node that routes the store and is not the key's home forwards the call
// to the home; the home runs the loop through its own routing layer, which
// reads a quorum and writes the result to the replicas by the W rule.
class AtomicRunner {
 public:
  void run(const StoreMap& stores, const rpc::AtomicRequest& req, rpc::AtomicResponse* resp) {
    auto it = stores.find(req.store());
    if (it == stores.end()) lookup(stores, req.store());  // throws NotFound
    Served& served = *it->second;
    served.calls.fetch_add(1, std::memory_order_relaxed);
    if (!served.store.atomic) {
      throw FailedPrecondition(
          "store '" + req.store() +
          "': this node holds one replica and does not route the store (a smart client's "
          "cluster), so it cannot run an atomic update; the client runs it itself");
    }
    if (req.key().empty()) throw InvalidArgument("atomic: an empty key");
    AtomicResult r;
    auto* routed = find_layer<RoutedStore>(*served.store.store);
    std::optional<NodeId> home = routed != nullptr ? routed->home(req.key()) : std::nullopt;
    if (routed != nullptr && !req.at_home() && home && home != routed->self()) {
      std::shared_ptr<Store> replica = routed->replica(*home);
      auto* grpc = replica != nullptr ? find_layer<GrpcStore>(*replica) : nullptr;
      if (grpc == nullptr) throw Internal("atomic: no way to reach node " + std::to_string(*home));
      r = grpc->atomic(req.key(), req.function(), req.argument());
    } else {
      r = combine(served, req);
    }
    resp->set_applied(r.applied);
    resp->set_has_value(r.value.has_value());
    if (r.value) resp->set_value(*r.value);
    internal::to_wire(r.clock, resp->mutable_clock());
  }

  // Updates run here (not forwarded), and the writes that carried them.
  std::pair<uint64_t, uint64_t> counts() const {
    return {combined_.load(std::memory_order_relaxed), batches_.load(std::memory_order_relaxed)};
  }

 private:
  // Updates of one key wait in line here. The first to arrive runs what
  // has queued, all of it as one write (run_updates), until none is left;
  // the others wait for their results. Under contention each write then
  // serves many updates, and none of them retries.
  struct Waiter {
    internal::UpdateRequest update;
    bool done = false;
  };
  struct KeyLine {
    bool running = false;
    std::vector<Waiter*> queue;
  };
  struct Line {
    std::mutex mu;
    std::condition_variable cv;
    std::map<std::string, KeyLine> keys;  // guarded by mu
  };

  AtomicResult combine(Served& served, const rpc::AtomicRequest& req) {
    const std::string k = req.store() + '\0' + req.key();
    Line& line = lines_[std::hash<std::string>{}(k) % kLines];
    Waiter me{{req.function(), req.argument(), {}, nullptr}};
    std::unique_lock lock(line.mu);
    KeyLine& kl = line.keys[k];
    kl.queue.push_back(&me);
    // Wait for a result, or for the line to need a runner.
    line.cv.wait(lock, [&] { return me.done || !kl.running; });
    if (!me.done) {
      kl.running = true;
      // Runs batches until its own is done; then a waiter takes over, so
      // that no caller serves the line for ever.
      while (!me.done) {
        std::vector<Waiter*> batch;
        batch.swap(kl.queue);
        lock.unlock();
        std::vector<internal::UpdateRequest> updates;
        for (Waiter* w : batch) updates.push_back(w->update);
        batches_.fetch_add(1, std::memory_order_relaxed);
        combined_.fetch_add(batch.size(), std::memory_order_relaxed);
        try {
          internal::run_updates(*served.store.store, req.key(), updates,
                                served.store.value.get(), 0);
        } catch (...) {
          for (auto& u : updates) u.error = std::current_exception();
        }
        lock.lock();
        for (size_t i = 0; i < batch.size(); ++i) {
          batch[i]->update = std::move(updates[i]);
          batch[i]->done = true;
        }
      }
      kl.running = false;
      if (kl.queue.empty()) line.keys.erase(k);
      line.cv.notify_all();
    }
    lock.unlock();
    if (me.update.error) std::rethrow_exception(me.update.error);
    return std::move(me.update.result);
  }

  static constexpr size_t kLines = 64;
  Line lines_[kLines];
  std::atomic<uint64_t> batches_{0}, combined_{0};
};

// ---- Who may call (server/access.h) ------------------------------------------

// The access policy at the door of every call. A call is let in, or
// answered PERMISSION_DENIED (the caller is known and may not) or
// UNAUTHENTICATED (it proved nothing the policy accepts), naming the
// caller, the operation and the store; each refusal is counted and
// logged (rate-limited) by server::Access.
class Gate {
 public:
  Gate(std::shared_ptr<server::Access> access, bool verified_certs)
      : access_(std::move(access)), verified_certs_(verified_certs) {}

  // Who a call is from. `open` when no check is needed at all (the policy
  // is open and no token came): what every call of an open server costs.
  struct Who {
    bool open = true;
    std::shared_ptr<const server::AccessPolicy> policy;
    server::Caller caller;
    uint64_t generation = 0;  // server::Access::generation() when decided
  };
  Who who(grpc::ServerContextBase* ctx) const {
    Who w;
    if (access_ == nullptr) return w;
    w.generation = access_->generation();  // before the policy: see Access
    std::string token = bearer(*ctx);
    if (token.empty() && access_->open()) return w;
    w.policy = access_->policy();
    if (w.policy->open() && token.empty()) return w;
    w.open = false;
    w.caller = w.policy->identify(token, verified_certs_ ? cert_names(*ctx) : std::vector<std::string>{});
    return w;
  }

  // A call on `store`: `need` of it, or with `replica` a node's call (an
  // admin may read a replica, never write one).
  grpc::Status store_call(const Who& w, std::string_view store, bool replica, uint8_t need,
                          std::string_view op) const {
    if (w.open) return grpc::Status::OK;
    const server::Decision d =
        replica ? w.policy->check_node(w.caller, "replica " + std::string(op), need != internal::kWrite)
                : w.policy->check(w.caller, store, need, op);
    return verdict(d);
  }
  // Whether a policy was loaded since `w` was decided: a long-lived call
  // (a Stream) then decides again, so a revoked token stops working on it.
  bool stale(const Who& w) const {
    return access_ != nullptr && access_->generation() != w.generation;
  }
  // Whether store_call would allow the call, without building its answer
  // (a stream's fast path; false sends it the long way, which says why).
  static bool permits(const Who& w, std::string_view store, bool replica, uint8_t need) {
    if (w.open) return true;
    if (w.caller.bad_token) return false;
    if (replica) return w.caller.kind == server::Caller::Kind::kNode;  // a node's own traffic
    return (w.policy->granted(w.caller, store) & need) == need;
  }
  grpc::Status store_call(grpc::ServerContextBase* ctx, std::string_view store, bool replica,
                          uint8_t need, std::string_view op) const {
    if (access_ == nullptr) return grpc::Status::OK;
    return store_call(who(ctx), store, replica, need, op);
  }
  // A node's call; with `admins_too`, also an admin's (admin on "*").
  grpc::Status node_call(grpc::ServerContextBase* ctx, std::string_view op, bool admins_too) const {
    if (access_ == nullptr) return grpc::Status::OK;
    const Who w = who(ctx);
    if (w.open) return grpc::Status::OK;
    return verdict(w.policy->check_node(w.caller, op, admins_too));
  }
  // A call any caller the policy knows may make (a node, or a principal).
  grpc::Status known_call(grpc::ServerContextBase* ctx, std::string_view op) const {
    if (access_ == nullptr) return grpc::Status::OK;
    const Who w = who(ctx);
    if (w.open) return grpc::Status::OK;
    return verdict(w.policy->check_known(w.caller, op));
  }

  grpc::Status verdict(const server::Decision& d) const {
    if (d.allowed()) return grpc::Status::OK;
    access_->refused("grpc", d);
    const bool denied = d.kind == server::Decision::Kind::kDenied;
    const ErrorCode code = denied ? ErrorCode::kPermissionDenied : ErrorCode::kUnauthenticated;
    return grpc::Status(denied ? grpc::StatusCode::PERMISSION_DENIED : grpc::StatusCode::UNAUTHENTICATED,
                        d.reason, std::to_string(static_cast<int>(code)));
  }

 private:
  // The token of the call's `authorization` metadata (empty: none).
  static std::string bearer(const grpc::ServerContextBase& ctx) {
    const auto& md = ctx.client_metadata();
    const auto it = md.find("authorization");
    if (it == md.end()) return {};
    return std::string(server::bearer_token(std::string_view(it->second.data(), it->second.size())));
  }
  // The names on the verified client certificate: its subject alternative
  // names, or its common name if it has none.
  static std::vector<std::string> cert_names(const grpc::ServerContextBase& ctx) {
    std::vector<std::string> out;
    const std::shared_ptr<const grpc::AuthContext> auth = ctx.auth_context();
    if (auth == nullptr || !auth->IsPeerAuthenticated()) return out;
    for (const grpc::string_ref& v : auth->FindPropertyValues(GRPC_X509_SAN_PROPERTY_NAME)) {
      out.emplace_back(v.data(), v.size());
    }
    if (out.empty()) {
      for (const grpc::string_ref& v : auth->FindPropertyValues(GRPC_X509_CN_PROPERTY_NAME)) {
        out.emplace_back(v.data(), v.size());
      }
    }
    return out;
  }

  const std::shared_ptr<server::Access> access_;
  const bool verified_certs_;  // the server requires client certificates its CA signed
};

// A unary call refused at the gate: finished at once.
grpc::ServerUnaryReactor* refused_call(grpc::CallbackServerContext* ctx, const grpc::Status& st) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  reactor->Finish(st);
  return reactor;
}

// A streaming call answered `st` at once: refused at the gate, while
// draining, or for want of what it needs.
template <typename Reactor>
struct RefusedStream final : Reactor {
  explicit RefusedStream(const grpc::Status& st) { this->Finish(st); }
  void OnDone() override { delete this; }
};

// ---- Scan: a server-streaming reactor ----------------------------------------

// Pulls keys from the store's iterator on the worker pool and writes them
// one at a time (gRPC allows one write in flight).
class ScanReactor final : public grpc::ServerWriteReactor<rpc::KeyVersions> {
 public:
  // REQUIRES: drain.enter() succeeded for this call; OnDone leaves.
  ScanReactor(const StoreMap& stores, internal::Executor& executor, Drain& drain,
              const rpc::ScanRequest& req)
      : executor_(executor),
        drain_(drain),
        limit_(req.limit()),
        ring_partitions_(req.ring_partitions()),
        partitions_(req.partition_ids().begin(), req.partition_ids().end()),
        rate_(req.max_bytes_per_second()),
        start_(std::chrono::steady_clock::now()) {
    executor_.submit([this, &stores, store = req.store(), replica = req.replica(),
                      version = req.metadata_version()] {
      const grpc::Status st =
          status_of([&] { it_ = lookup(stores, store, replica, version).scan(); });
      if (!st.ok()) return finish(st);
      next();
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    // Throttled: past the rate, the next key waits on the timer, holding
    // no thread.
    resume();
  }
  void OnCancel() override { cancelled_ = true; }
  void OnDone() override {
    drain_.leave();
    delete this;
  }

 private:
  // Runs on the worker pool.
  void next() {
    bool more = false;
    const grpc::Status st = status_of([&] {
      if (limit_ != 0 && sent_ >= limit_) return;
      while ((more = it_->next()) && !wanted(it_->key())) {
      }
      if (!more) return;
      msg_.Clear();
      msg_.set_key(std::string(it_->key()));
      for (const Versioned& v : it_->versions()) internal::to_wire(v, msg_.add_versions());
    });
    if (!st.ok() || !more) return finish(st);
    ++sent_;
    bytes_ += msg_.key().size();
    for (const rpc::Version& v : msg_.versions()) bytes_ += v.value().size();
    StartWrite(&msg_);
  }

  // Sends the next key, once the rate allows: a wait of at most 100 ms at
  // a time on the timer (holding no thread), so that a cancelled call ends
  // within it.
  void resume() {
    if (cancelled_) return finish(grpc::Status(grpc::StatusCode::CANCELLED, "cancelled"));
    if (rate_ > 0) {
      const long double seconds = static_cast<long double>(bytes_) / static_cast<long double>(rate_);
      const auto due = start_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                    std::chrono::duration<long double>(seconds));
      const auto now = std::chrono::steady_clock::now();
      if (due > now) {
        const auto wait = std::min<std::chrono::steady_clock::duration>(
            due - now, std::chrono::milliseconds(100));
        internal::Timer::shared().after(
            std::chrono::duration_cast<std::chrono::milliseconds>(wait) +
                std::chrono::milliseconds(1),
            [this] { resume(); });
        return;
      }
    }
    executor_.submit([this] { next(); });
  }

  // Whether a key is in the partitions asked for (all, if none were).
  bool wanted(std::string_view key) const {
    if (ring_partitions_ == 0) return true;
    return partitions_.contains(static_cast<uint32_t>(Ring::hash(key) % ring_partitions_));
  }

  void finish(const grpc::Status& st) {
    if (finished_.exchange(true)) return;
    Finish(st);
  }

  internal::Executor& executor_;
  Drain& drain_;
  const uint64_t limit_;
  const uint32_t ring_partitions_;  // 0: every key
  const std::set<uint32_t> partitions_;
  const uint64_t rate_;  // bytes per second; 0: no limit
  const std::chrono::steady_clock::time_point start_;
  uint64_t sent_ = 0;
  uint64_t bytes_ = 0;
  std::atomic<bool> cancelled_{false};
  std::unique_ptr<StoreIterator> it_;
  rpc::KeyVersions msg_;
  std::atomic<bool> finished_{false};
};

// ---- Stream: pipelined requests on one bidi call -----------------------------

// Reads batches of requests one at a time (one read in flight), runs each
// request — reads inline, writes inline too when the store's writes never
// block; requests to a store the node routes start on gRPC's thread and
// are answered from the routing layer's callback, with no thread waiting;
// the rest on the worker pool, one batch at a time per stream — and writes
// responses as they are ready: one write in flight, and the responses that
// pile up meanwhile go out together in the next. Finishes once the client
// has half-closed and every request has been answered.
//
// A stream's requests on one key apply in the order sent: a routed request
// waits for the stream's earlier routed requests on any of its keys (its
// "lines", one per key), and a pooled batch waits for the one before.
//
// Bounded: a batch of more than kMaxBatch requests ends the stream
// (INVALID_ARGUMENT); one batch's inline responses past the message size
// are errors; a response larger than a message is an error; and while the
// responses waiting to be sent pass kMaxQueuedBytes (a client that sends
// but does not read) the next read waits.
//
// Counts as busy for the drain only while it has work: an idle stream does
// not hold a shutdown back (it is cancelled when the server stops).
class StreamReactor final
    : public grpc::ServerBidiReactor<rpc::StreamRequests, rpc::StreamResponses> {
 public:
  static constexpr int kMaxBatch = 10000;
  static constexpr size_t kMaxQueuedBytes = 8 << 20;
  static constexpr int kMaxPending = kMaxBatch;

  StreamReactor(const StoreMap& stores, internal::Executor& executor,
                internal::Executor& routed_executor, Drain& drain,
                std::chrono::milliseconds request_timeout, size_t max_message_size,
                const Gate& gate, grpc::CallbackServerContext* ctx)
      : gate_(gate),
        ctx_(ctx),
        who_(gate.who(ctx)),
        stores_(stores),
        executor_(executor),
        routed_executor_(routed_executor),
        drain_(drain),
        request_timeout_(request_timeout),
        max_response_bytes_(max_message_size > 4096 ? max_message_size - 4096 : max_message_size) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    rpc::StreamRequests batch = std::move(request_);
    {
      std::unique_lock lock(mu_);
      // `reading_` stays set until this batch's routed requests are in
      // their lines (below): a read started meanwhile (an answer's
      // maybe_read) could put the next batch's requests ahead of them.
      if (!ok || failed_) {
        reading_ = false;
        reads_done_ = true;
        return finish_if_done(lock);
      }
      if (batch.requests_size() > kMaxBatch) {
        reading_ = false;
        reads_done_ = true;  // read no more
        fail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "a Stream batch of " + std::to_string(batch.requests_size()) +
                              " requests; the limit is " + std::to_string(kMaxBatch)));
        return finish_if_done(lock);
      }
      pending_ += batch.requests_size();
      update_busy();
    }
    std::vector<rpc::StreamResponse> answered;
    auto pooled = std::make_shared<PoolBatch>();
    std::vector<rpc::StreamRequest> routed_async;
    size_t bytes = 0;
    // A reloaded policy decides again who the stream is from (the call's
    // token and certificate stay what they were).
    if (gate_.stale(who_)) who_ = gate_.who(ctx_);
    for (rpc::StreamRequest& req : *batch.mutable_requests()) {
      if (!who_.open && !admitted(req)) {
        if (grpc::Status no = refusal(req); !no.ok()) {
          answered.push_back(error(req.id(), static_cast<rpc::ErrorCode>(std::stoi(no.error_details())),
                                   no.error_message()));
          continue;
        }
      }
      if (answers_async(req)) {
        routed_async.push_back(std::move(req));
        continue;
      }
      if (!runs_inline(req)) {
        pooled->routed |= routed(req);
        pooled->requests.push_back(std::move(req));
        continue;
      }
      if (bytes > max_response_bytes_) {
        answered.push_back(error(req.id(), rpc::INVALID_ARGUMENT,
                                 "the batch's responses passed " +
                                     std::to_string(max_response_bytes_) +
                                     " bytes before this request; send fewer per batch"));
        continue;
      }
      answered.push_back(answer(req));
      bytes += answered.back().ByteSizeLong();
    }
    std::unique_lock lock(mu_);
    if (!pooled->requests.empty()) {
      pooled->deadline = std::chrono::steady_clock::now() + request_timeout_;
      // One runner per stream keeps its pooled requests in order; it runs
      // on the routed pool if the batch that starts it routes.
      internal::Executor& pool = pooled->routed ? routed_executor_ : executor_;
      pool_batches_.push_back(std::move(pooled));
      if (!pool_running_) {
        pool_running_ = true;
        pool.submit([this] { run_pool_batches(); });
      }
    }
    for (rpc::StreamRequest& req : routed_async) admit(std::move(req));
    reading_ = false;
    // Responses first, then the next read: gRPC then sends the flow
    // control update the read announces in the same write as them, one
    // sendmsg instead of two.
    enqueue(std::move(answered));
    maybe_read();
    start_admitted(lock);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    writing_ = false;
    if (!ok) {
      fail(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    } else if (!queue_.empty()) {
      start_write();
    }
    maybe_read();
    update_busy();
    finish_if_done(lock);
  }

  void OnCancel() override {
    std::unique_lock lock(mu_);
    fail(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
    finish_if_done(lock);
  }

  void OnDone() override {
    {
      std::lock_guard lock(mu_);
      if (busy_) drain_.leave();
    }
    delete this;
  }

 private:
  struct PoolBatch {
    std::vector<rpc::StreamRequest> requests;
    std::chrono::steady_clock::time_point deadline;
    bool routed = false;  // some request waits on other nodes
  };

  // A request to a store the node routes, answered from its callback.
  struct Routed {
    rpc::StreamRequest request;
    std::vector<std::string> lines;  // "store\0key" of each of its keys, once
    bool started = false;
  };
  using RoutedPtr = std::shared_ptr<Routed>;

  // Whether the stream's caller may make `req` (server/access.h) on the
  // fast path; false leaves it to refusal(), which says why (or lets a
  // replica read by an admin through). Out of line, so that a profile
  // shows what the checks cost (bench/run-security --instructions).
  [[gnu::noinline]] bool admitted(const rpc::StreamRequest& req) const {
    const Needs n = needs(req);
    // A malformed request is answered as such, by the store's code.
    return n.need == internal::kNoPermission || Gate::permits(who_, n.store, n.replica, n.need);
  }
  grpc::Status refusal(const rpc::StreamRequest& req) const {
    const Needs n = needs(req);
    return gate_.store_call(who_, n.store, n.replica, n.need, n.op);
  }

  // The store a request names, whether on a replica, what it needs of it,
  // and the operation's name for a refusal.
  struct Needs {
    std::string_view store;
    bool replica = false;
    uint8_t need = internal::kNoPermission;
    std::string_view op;
  };
  static Needs needs(const rpc::StreamRequest& req) {
    switch (req.op_case()) {
      case rpc::StreamRequest::kGet:
        return {req.get().store(), req.get().replica(), internal::kRead, "get"};
      case rpc::StreamRequest::kGetVersions:
        return {req.get_versions().store(), req.get_versions().replica(), internal::kRead,
                "get versions"};
      case rpc::StreamRequest::kGetAll:
        return {req.get_all().store(), req.get_all().replica(), internal::kRead, "get_all"};
      case rpc::StreamRequest::kPut:
        return {req.put().store(), req.put().replica(), internal::kWrite, "put"};
      case rpc::StreamRequest::kDelete:
        return {req.delete_().store(), req.delete_().replica(), internal::kWrite, "delete"};
      default:
        return {};
    }
  }

  // Whether a request goes to a store that routes and answers from its
  // callback (a put without a version is answered inline: an error).
  bool answers_async(const rpc::StreamRequest& req) const {
    const auto [s, replica] = target(req);
    if (s == nullptr || !s->answers_async(replica)) return false;
    if (req.has_put() && !req.put().has_version()) return false;
    // Reads of stores that wait on other nodes, and writes that may wait
    // (a node's tracked copy waits for strict caches) where the store's
    // async calls only start them.
    const bool write = req.has_put() || req.has_delete_();
    return !s->reads_inline(replica) || (write && !s->writes_inline(replica));
  }

  // REQUIRES: mu_ held. Puts a routed request at the back of its keys'
  // lines; it starts once it is at the front of every one.
  void admit(rpc::StreamRequest req) {
    auto r = std::make_shared<Routed>();
    auto line_of = [](const std::string& store, const std::string& key) {
      std::string l = store;
      l += '\0';
      l += key;
      return l;
    };
    switch (req.op_case()) {
      case rpc::StreamRequest::kGet: r->lines.push_back(line_of(req.get().store(), req.get().key())); break;
      case rpc::StreamRequest::kGetVersions:
        r->lines.push_back(line_of(req.get_versions().store(), req.get_versions().key()));
        break;
      case rpc::StreamRequest::kPut: r->lines.push_back(line_of(req.put().store(), req.put().key())); break;
      case rpc::StreamRequest::kDelete:
        r->lines.push_back(line_of(req.delete_().store(), req.delete_().key()));
        break;
      case rpc::StreamRequest::kGetAll:
        for (const std::string& key : req.get_all().keys()) {
          r->lines.push_back(line_of(req.get_all().store(), key));
        }
        std::sort(r->lines.begin(), r->lines.end());
        r->lines.erase(std::unique(r->lines.begin(), r->lines.end()), r->lines.end());
        break;
      default: break;
    }
    r->request = std::move(req);
    for (const std::string& l : r->lines) lines_[l].push_back(r);
    if (at_front(*r)) {
      r->started = true;
      to_start_.push_back(std::move(r));
    }
  }

  // REQUIRES: mu_ held.
  bool at_front(const Routed& r) const {
    for (const std::string& l : r.lines) {
      if (lines_.at(l).front().get() != &r) return false;
    }
    return true;
  }

  // REQUIRES: mu_ held. Takes an answered request off its lines, and
  // queues the ones it was holding back that may start now.
  void release(const Routed& r) {
    for (const std::string& l : r.lines) {
      auto it = lines_.find(l);
      std::deque<RoutedPtr>& line = it->second;
      line.pop_front();
      if (line.empty()) {
        lines_.erase(it);
        continue;
      }
      const RoutedPtr& next = line.front();
      if (!next->started && at_front(*next)) {
        next->started = true;
        to_start_.push_back(next);
      }
    }
  }

  // REQUIRES: `lock` holds mu_. Starts what admit() and release() queued,
  // outside the lock (a store may answer inline), then finishes if done.
  // One thread starts at a time, in a loop: an answer that comes inline
  // queues the next request of its line rather than starting it from
  // inside this one, so a long line never deepens the stack; and the
  // stream cannot finish (and be deleted) while a thread is in the loop.
  void start_admitted(std::unique_lock<std::mutex>& lock) {
    if (!starting_) {
      starting_ = true;
      while (!to_start_.empty()) {
        std::vector<RoutedPtr> batch;
        batch.swap(to_start_);
        if (failed_) {  // the stream is over: nothing more is run
          for (const RoutedPtr& r : batch) release(*r);
          pending_ -= static_cast<int>(batch.size());
          update_busy();
          continue;
        }
        lock.unlock();
        for (RoutedPtr& r : batch) start(std::move(r));
        lock.lock();
      }
      starting_ = false;
    }
    finish_if_done(lock);
  }

  // Starts one routed request; its callback answers it.
  void start(RoutedPtr r) {
    const rpc::StreamRequest& req = r->request;
    auto answer_with = [this, r](std::exception_ptr e, auto&& fill) {
      rpc::StreamResponse resp;
      resp.set_id(r->request.id());
      const grpc::Status st = status_of([&] {
        if (e) std::rethrow_exception(e);
        fill(&resp);
      });
      if (!st.ok()) {
        resp = error(r->request.id(), static_cast<rpc::ErrorCode>(std::stoi(st.error_details())),
                     st.error_message());
      } else if (resp.ByteSizeLong() > max_response_bytes_) {
        resp = error(r->request.id(), rpc::INVALID_ARGUMENT,
                     "the response is " + std::to_string(resp.ByteSizeLong()) +
                         " bytes, more than a message may hold (--max-message-size)");
      }
      answered(*r, std::move(resp));
    };
    try {
      switch (req.op_case()) {
        case rpc::StreamRequest::kGet:
          lookup(stores_, req.get().store(), req.get().replica(), req.get().metadata_version())
              .async_get(req.get().key(), [answer_with](std::vector<Versioned> versions,
                                                       std::exception_ptr e) {
                answer_with(e, [&](rpc::StreamResponse* resp) {
                  for (const Versioned& v : versions) internal::to_wire(v, resp->mutable_get()->add_versions());
                });
              });
          break;
        case rpc::StreamRequest::kGetVersions:
          lookup(stores_, req.get_versions().store(), req.get_versions().replica(), req.get_versions().metadata_version())
              .async_versions(req.get_versions().key(), [answer_with](std::vector<VectorClock> clocks,
                                                                      std::exception_ptr e) {
                answer_with(e, [&](rpc::StreamResponse* resp) {
                  for (const VectorClock& c : clocks) {
                    internal::to_wire(c, resp->mutable_get_versions()->add_clocks());
                  }
                });
              });
          break;
        case rpc::StreamRequest::kGetAll: {
          using Found = std::map<std::string, std::vector<Versioned>>;
          lookup(stores_, req.get_all().store(), req.get_all().replica(), req.get_all().metadata_version())
              .async_get_all(std::vector<std::string>(req.get_all().keys().begin(),
                                                      req.get_all().keys().end()),
                             [answer_with](Found found, std::exception_ptr e) {
                               answer_with(e, [&](rpc::StreamResponse* resp) {
                                 for (const auto& [key, versions] : found) {
                                   rpc::KeyVersions* kv = resp->mutable_get_all()->add_found();
                                   kv->set_key(key);
                                   for (const Versioned& v : versions) {
                                     internal::to_wire(v, kv->add_versions());
                                   }
                                 }
                               });
                             });
          break;
        }
        case rpc::StreamRequest::kPut:
          lookup(stores_, req.put().store(), req.put().replica(), req.put().metadata_version())
              .async_put(req.put().key(), internal::from_wire(req.put().version()),
                         [answer_with](PutReply reply, std::exception_ptr e) {
                           answer_with(e, [&](rpc::StreamResponse* resp) {
                             answer_put(reply, resp->mutable_put());
                           });
                         });
          break;
        case rpc::StreamRequest::kDelete:
          lookup(stores_, req.delete_().store(), req.delete_().replica(), req.delete_().metadata_version())
              .async_remove(req.delete_().key(), internal::from_wire(req.delete_().clock()),
                            [answer_with](bool deleted, std::exception_ptr e) {
                              answer_with(e, [&](rpc::StreamResponse* resp) {
                                resp->mutable_delete_()->set_deleted(deleted);
                              });
                            });
          break;
        default: throw Internal("a routed stream request without an operation");
      }
    } catch (...) {
      // Nothing started (the store closed, a clock that does not decode).
      answer_with(std::current_exception(), [](rpc::StreamResponse*) {});
    }
  }

  // A routed request's answer: queued for the next write, and the
  // requests its lines held back may start.
  void answered(const Routed& r, rpc::StreamResponse resp) {
    std::unique_lock lock(mu_);
    release(r);
    std::vector<rpc::StreamResponse> one;
    one.push_back(std::move(resp));
    enqueue(std::move(one));
    maybe_read();
    start_admitted(lock);
  }

  static rpc::StreamResponse error(uint64_t id, rpc::ErrorCode code, const std::string& message) {
    rpc::StreamResponse r;
    r.set_id(id);
    r.mutable_error()->set_code(code);
    r.mutable_error()->set_message(message);
    return r;
  }

  rpc::StreamResponse answer(const rpc::StreamRequest& req) {
    rpc::StreamResponse resp;
    resp.set_id(req.id());
    const grpc::Status st = status_of([&] {
      switch (req.op_case()) {
        case rpc::StreamRequest::kGet: do_get(stores_, req.get(), resp.mutable_get()); break;
        case rpc::StreamRequest::kGetAll: do_get_all(stores_, req.get_all(), resp.mutable_get_all()); break;
        case rpc::StreamRequest::kPut: do_put(stores_, req.put(), resp.mutable_put()); break;
        case rpc::StreamRequest::kDelete: do_delete(stores_, req.delete_(), resp.mutable_delete_()); break;
        case rpc::StreamRequest::kGetVersions:
          do_get_versions(stores_, req.get_versions(), resp.mutable_get_versions());
          break;
        default: throw InvalidArgument("stream request " + std::to_string(req.id()) + " has no operation");
      }
    });
    if (!st.ok()) {
      return error(req.id(), static_cast<rpc::ErrorCode>(std::stoi(st.error_details())),
                   st.error_message());
    }
    if (resp.ByteSizeLong() > max_response_bytes_) {
      return error(req.id(), rpc::INVALID_ARGUMENT,
                   "the response is " + std::to_string(resp.ByteSizeLong()) +
                       " bytes, more than a message may hold (--max-message-size)");
    }
    return resp;
  }

  // On the worker pool: this stream's write batches, one after another.
  // The store a request of the stream names (null if none is served by
  // that name), and whether it asks for the node's replica.
  std::pair<const Served*, bool> target(const rpc::StreamRequest& req) const {
    auto served = [&](const std::string& store) -> const Served* {
      auto it = stores_.find(store);
      return it == stores_.end() ? nullptr : it->second.get();
    };
    switch (req.op_case()) {
      case rpc::StreamRequest::kPut: return {served(req.put().store()), req.put().replica()};
      case rpc::StreamRequest::kDelete:
        return {served(req.delete_().store()), req.delete_().replica()};
      case rpc::StreamRequest::kGet: return {served(req.get().store()), req.get().replica()};
      case rpc::StreamRequest::kGetVersions:
        return {served(req.get_versions().store()), req.get_versions().replica()};
      case rpc::StreamRequest::kGetAll:
        return {served(req.get_all().store()), req.get_all().replica()};
      default: return {nullptr, false};
    }
  }

  // Whether a request of the stream is answered on gRPC's thread: reads
  // that never wait on another node, and writes of stores whose writes
  // never block. The rest go to a pool. (An unknown store's NOT_FOUND is
  // answered at once.)
  bool runs_inline(const rpc::StreamRequest& req) const {
    const auto [s, replica] = target(req);
    if (s == nullptr) return true;
    const bool write = req.has_put() || req.has_delete_();
    return s->reads_inline(replica) && (!write || s->writes_inline(replica));
  }

  // Whether it waits on other nodes (the store routes): the routed pool's.
  bool routed(const rpc::StreamRequest& req) const {
    const auto [s, replica] = target(req);
    return s != nullptr && !s->reads_inline(replica);
  }

  void run_pool_batches() {
    for (;;) {
      std::shared_ptr<PoolBatch> batch;
      {
        std::unique_lock lock(mu_);
        if (pool_batches_.empty()) {
          pool_running_ = false;
          return finish_if_done(lock);  // the last use of `this` here
        }
        batch = std::move(pool_batches_.front());
        pool_batches_.pop_front();
      }
      // As for unary writes: too long in the queue, answered unrun.
      const bool late = std::chrono::steady_clock::now() > batch->deadline;
      std::vector<rpc::StreamResponse> done;
      done.reserve(batch->requests.size());
      for (const rpc::StreamRequest& req : batch->requests) {
        done.push_back(late ? error(req.id(), rpc::TIMEOUT,
                                    "the request waited for a worker past the server's request "
                                    "timeout; it was not run")
                            : answer(req));
      }
      std::lock_guard lock(mu_);
      enqueue(std::move(done));
      maybe_read();
    }
  }

  // REQUIRES: mu_ held.
  void enqueue(std::vector<rpc::StreamResponse> responses) {
    pending_ -= static_cast<int>(responses.size());
    if (failed_) {
      update_busy();
      return;
    }
    for (rpc::StreamResponse& r : responses) {
      queued_bytes_ += r.ByteSizeLong();
      queue_.push_back(std::move(r));
    }
    if (!writing_ && !queue_.empty()) start_write();
    update_busy();
  }

  // REQUIRES: mu_ held, !writing_, !queue_.empty(). Sends what is queued,
  // up to about kBatchBytes and never more than a message may hold (at
  // least one response: answer() keeps each under the limit).
  void start_write() {
    static constexpr size_t kBatchBytes = 1 << 20;
    current_.Clear();
    size_t bytes = 0;
    while (!queue_.empty()) {
      const size_t size = queue_.front().ByteSizeLong();
      if (current_.responses_size() > 0 &&
          (bytes >= kBatchBytes || bytes + size + 16 > max_response_bytes_)) {
        break;
      }
      bytes += size;
      queued_bytes_ -= size;
      *current_.add_responses() = std::move(queue_.front());
      queue_.pop_front();
    }
    writing_ = true;
    StartWrite(&current_);
  }

  // REQUIRES: mu_ held. Starts the next read unless one is in flight, the
  // client is done, or too much waits to be sent.
  void maybe_read() {
    if (reading_ || reads_done_ || failed_ || queued_bytes_ > kMaxQueuedBytes) return;
    // Requests read and not yet answered: routed ones run many at once, so
    // a client that keeps sending must wait for answers past this.
    if (pending_ >= kMaxPending) return;
    reading_ = true;
    StartRead(&request_);
  }

  // REQUIRES: mu_ held. Stops answering; the stream ends with `st` once
  // the work in flight is done.
  void fail(grpc::Status st) {
    if (failed_) return;
    failed_ = true;
    status_ = std::move(st);
    queue_.clear();
    queued_bytes_ = 0;
  }

  // REQUIRES: mu_ held. Tells the drain whether this stream has work.
  void update_busy() {
    const bool busy = pending_ > 0 || writing_ || !queue_.empty() || pool_running_;
    if (busy == busy_) return;
    busy_ = busy;
    if (busy) {
      drain_.hold();
    } else {
      drain_.leave();
    }
  }

  // Ends the call once nothing is left to do. Finish() is called after the
  // lock is released, and nothing of `this` is touched after it: gRPC may
  // run OnDone (which deletes the reactor) on another thread at once.
  void finish_if_done(std::unique_lock<std::mutex>& lock) {
    if (finished_ || pending_ > 0 || writing_ || pool_running_ || starting_) return;
    if (!failed_ && !(reads_done_ && queue_.empty())) return;
    finished_ = true;
    const grpc::Status st = failed_ ? status_ : grpc::Status::OK;
    lock.unlock();
    Finish(st);
  }

  // The read in flight: filled by gRPC, read only in OnReadDone.
  rpc::StreamRequests request_;
  const Gate& gate_;
  grpc::CallbackServerContext* const ctx_;  // the call's: its metadata and certificate
  Gate::Who who_;  // the stream's caller; decided again after a reload (on reads only)
  const StoreMap& stores_;
  internal::Executor& executor_;
  internal::Executor& routed_executor_;
  Drain& drain_;
  const std::chrono::milliseconds request_timeout_;
  const size_t max_response_bytes_;

  std::mutex mu_;  // guards everything below
  std::deque<rpc::StreamResponse> queue_;
  size_t queued_bytes_ = 0;
  rpc::StreamResponses current_;  // the write in flight
  std::deque<std::shared_ptr<PoolBatch>> pool_batches_;
  bool pool_running_ = false;  // a worker is running pool_batches_
  // Routed requests by "store\0key": the first of each line is running.
  std::unordered_map<std::string, std::deque<RoutedPtr>> lines_;
  std::vector<RoutedPtr> to_start_;  // may start, not started yet
  bool starting_ = false;            // a thread is in start_admitted's loop
  int pending_ = 0;            // requests read and not yet answered
  bool reading_ = true;        // the constructor's read
  bool writing_ = false;
  bool reads_done_ = false;
  bool failed_ = false;
  grpc::Status status_;
  bool busy_ = false;
  bool finished_ = false;
};

// A cache's Watch stream (layers/cache/directory.h): its requests go to a
// subscription of the node's directory, whose events go back in batches.
// It does not hold a draining server up: shutdown cancels it, and the
// cache drops what this node vouched for.
class WatchReactor final : public grpc::ServerBidiReactor<rpc::WatchRequests, rpc::WatchEvents> {
 public:
  // Events queued and unsent beyond this end the stream: a cache that
  // does not read is dropped rather than buffered without bound.
  static constexpr size_t kMaxQueued = 1 << 16;
  static constexpr size_t kMaxKey = 1 << 20;

  explicit WatchReactor(std::shared_ptr<internal::Directory> directory)
      : directory_(std::move(directory)), sink_(std::make_shared<Sink>()) {
    sink_->reactor = this;
    StartRead(&in_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      {
        std::lock_guard lock(mu_);
        reads_done_ = true;
      }
      if (sub_) sub_->end();
      std::unique_lock lock(mu_);
      return finish_if_done(lock);
    }
    for (rpc::WatchRequest& r : *in_.mutable_requests()) {
      if (!sub_) {
        if (r.op_case() != rpc::WatchRequest::kHello) {
          return refuse("a Watch stream begins with a hello");
        }
        const uint32_t lease_ms = r.hello().lease_ms() == 0 ? 2000 : r.hello().lease_ms();
        try {
          sub_ = directory_->subscribe(
              r.hello().strict() ? internal::Coherence::kStrict : internal::Coherence::kLazy,
              std::chrono::milliseconds(lease_ms), sink_);
        } catch (const Error& e) {
          return refuse(e.what());
        }
        continue;
      }
      switch (r.op_case()) {
        case rpc::WatchRequest::kTrack:
          if (r.track().key().empty() || r.track().key().size() > kMaxKey) {
            return refuse("a track of an empty key or one over " + std::to_string(kMaxKey) +
                          " bytes");
          }
          sub_->track(r.track().id(), r.track().store(), r.track().key());
          break;
        case rpc::WatchRequest::kUntrack:
          for (const std::string& k : r.untrack().keys()) sub_->untrack(r.untrack().store(), k);
          break;
        case rpc::WatchRequest::kAck: sub_->ack(r.ack()); break;
        case rpc::WatchRequest::kPing: sub_->ping(r.ping()); break;
        case rpc::WatchRequest::kHello: return refuse("a second hello on one Watch stream");
        case rpc::WatchRequest::OP_NOT_SET: return refuse("a Watch request without an op");
      }
    }
    in_.Clear();
    // Under the lock: no read starts once the stream is finishing.
    std::unique_lock lock(mu_);
    if (failed_ || finished_) {
      reads_done_ = true;
      return finish_if_done(lock);
    }
    StartRead(&in_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock lock(mu_);
    writing_ = false;
    if (!ok) {
      fail(grpc::Status(grpc::StatusCode::CANCELLED, "the cache went away"));
    } else if (!queue_.empty() && !failed_) {
      start_write();
    }
    finish_if_done(lock);
  }

  void OnCancel() override {
    std::unique_lock lock(mu_);
    fail(grpc::Status(grpc::StatusCode::CANCELLED, "watch stream cancelled"));
    finish_if_done(lock);
  }

  void OnDone() override {
    if (sub_) sub_->end();
    {
      std::lock_guard lock(sink_->mu);
      sink_->reactor = nullptr;
    }
    delete this;
  }

 private:
  // What the directory sends to: outlives the reactor, and goes quiet when
  // it is done.
  struct Sink final : internal::EventSink {
    std::mutex mu;
    WatchReactor* reactor = nullptr;  // guarded by mu
    bool send(internal::CoherenceEvent e) override {
      std::lock_guard lock(mu);
      return reactor != nullptr && reactor->enqueue(std::move(e));
    }
    void close(const std::string& why) override {
      std::lock_guard lock(mu);
      if (reactor != nullptr) reactor->end(why);
    }
  };

  bool enqueue(internal::CoherenceEvent e) {
    std::unique_lock lock(mu_);
    if (failed_ || queue_.size() >= kMaxQueued) return false;
    rpc::WatchEvent w;
    w.set_seq(e.seq);
    switch (e.kind) {
      case internal::CoherenceEvent::Kind::kTracked: {
        auto* t = w.mutable_tracked();
        t->set_id(e.id);
        t->set_tracked(e.tracked);
        t->set_why(std::move(e.why));
        for (const VectorClock& c : e.clocks) internal::to_wire(c, t->add_clocks());
        break;
      }
      case internal::CoherenceEvent::Kind::kInvalidate:
        w.mutable_invalidate()->set_store(std::move(e.store));
        w.mutable_invalidate()->set_key(std::move(e.key));
        break;
      case internal::CoherenceEvent::Kind::kPong: w.set_pong(e.id); break;
    }
    queue_.push_back(std::move(w));
    if (!writing_) start_write();
    return true;
  }

  void end(const std::string& why) {
    std::unique_lock lock(mu_);
    fail(grpc::Status(grpc::StatusCode::UNAVAILABLE, why));
    finish_if_done(lock);
  }

  void refuse(const std::string& why) {
    std::unique_lock lock(mu_);
    reads_done_ = true;
    fail(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, why));
    finish_if_done(lock);
  }

  // REQUIRES: mu_ held, !writing_.
  void start_write() {
    if (queue_.empty()) return;
    current_.Clear();
    while (!queue_.empty() && current_.events_size() < 4096) {
      *current_.add_events() = std::move(queue_.front());
      queue_.pop_front();
    }
    writing_ = true;
    StartWrite(&current_);
  }

  void fail(grpc::Status st) {
    if (failed_) return;
    failed_ = true;
    status_ = std::move(st);
    queue_.clear();
  }

  // Finish() once no write is in flight, after the lock is released.
  void finish_if_done(std::unique_lock<std::mutex>& lock) {
    if (finished_ || writing_) return;
    if (!failed_ && !reads_done_) return;
    finished_ = true;
    const grpc::Status st = failed_ ? status_ : grpc::Status::OK;
    lock.unlock();
    Finish(st);
  }

  const std::shared_ptr<internal::Directory> directory_;
  const std::shared_ptr<Sink> sink_;
  std::shared_ptr<internal::Directory::Subscription> sub_;  // gRPC's read thread only
  rpc::WatchRequests in_;
  std::mutex mu_;  // guards what is below
  std::deque<rpc::WatchEvent> queue_;
  rpc::WatchEvents current_;
  bool writing_ = false;
  bool reads_done_ = false;
  bool failed_ = false;
  bool finished_ = false;
  grpc::Status status_;
};

// ---- The services ------------------------------------------------------------

class StoreService final : public rpc::Store::CallbackService {
 public:
  StoreService(const StoreMap& stores, internal::Executor& executor,
               internal::Executor& routed_executor, Drain& drain,
               std::chrono::milliseconds request_timeout, size_t max_message_size,
               std::shared_ptr<internal::Directory> directory, const Gate& gate)
      : gate_(gate),
        directory_(std::move(directory)),
        stores_(stores),
        executor_(executor),
        routed_executor_(routed_executor),
        drain_(drain),
        request_timeout_(request_timeout),
        max_message_size_(max_message_size) {}

  // Reads run on gRPC's thread unless the store waits on other nodes (it
  // routes): then on a worker, so gRPC's threads never wait on the network.
  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const rpc::GetRequest* req,
                                rpc::GetResponse* resp) override {
    if (grpc::Status no = gate_.store_call(ctx, req->store(), req->replica(), internal::kRead, "get");
        !no.ok()) {
      return refused_call(ctx, no);
    }
    if (!reads_inline(req->store(), req->replica()) && async(req->store(), req->replica())) {
      return async_call<std::vector<Versioned>>(
          ctx, [&](Store& s, auto done) { s.async_get(req->key(), std::move(done)); },
          req->store(), req->replica(), req->metadata_version(), [resp](const std::vector<Versioned>& versions) {
            for (const Versioned& v : versions) internal::to_wire(v, resp->add_versions());
          });
    }
    if (reads_inline(req->store(), req->replica())) {
      return inline_call(ctx, [&] { do_get(stores_, *req, resp); });
    }
    return worker_call(ctx, pool(req->store(), req->replica()),
                       [this, req, resp] { do_get(stores_, *req, resp); });
  }
  grpc::ServerUnaryReactor* GetAll(grpc::CallbackServerContext* ctx, const rpc::GetAllRequest* req,
                                   rpc::GetAllResponse* resp) override {
    if (grpc::Status no =
            gate_.store_call(ctx, req->store(), req->replica(), internal::kRead, "get_all");
        !no.ok()) {
      return refused_call(ctx, no);
    }
    if (!reads_inline(req->store(), req->replica()) && async(req->store(), req->replica())) {
      using Found = std::map<std::string, std::vector<Versioned>>;
      return async_call<Found>(
          ctx,
          [&](Store& s, auto done) {
            s.async_get_all(std::vector<std::string>(req->keys().begin(), req->keys().end()),
                            std::move(done));
          },
          req->store(), req->replica(), req->metadata_version(), [resp](const Found& found) {
            for (const auto& [key, versions] : found) {
              rpc::KeyVersions* kv = resp->add_found();
              kv->set_key(key);
              for (const Versioned& v : versions) internal::to_wire(v, kv->add_versions());
            }
          });
    }
    if (reads_inline(req->store(), req->replica())) {
      return inline_call(ctx, [&] { do_get_all(stores_, *req, resp); });
    }
    return worker_call(ctx, pool(req->store(), req->replica()),
                       [this, req, resp] { do_get_all(stores_, *req, resp); });
  }
  grpc::ServerUnaryReactor* GetVersions(grpc::CallbackServerContext* ctx,
                                        const rpc::GetRequest* req,
                                        rpc::GetVersionsResponse* resp) override {
    if (grpc::Status no =
            gate_.store_call(ctx, req->store(), req->replica(), internal::kRead, "get versions");
        !no.ok()) {
      return refused_call(ctx, no);
    }
    if (!reads_inline(req->store(), req->replica()) && async(req->store(), req->replica())) {
      return async_call<std::vector<VectorClock>>(
          ctx, [&](Store& s, auto done) { s.async_versions(req->key(), std::move(done)); },
          req->store(), req->replica(), req->metadata_version(), [resp](const std::vector<VectorClock>& clocks) {
            for (const VectorClock& c : clocks) internal::to_wire(c, resp->add_clocks());
          });
    }
    if (reads_inline(req->store(), req->replica())) {
      return inline_call(ctx, [&] { do_get_versions(stores_, *req, resp); });
    }
    return worker_call(ctx, pool(req->store(), req->replica()),
                       [this, req, resp] { do_get_versions(stores_, *req, resp); });
  }
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const rpc::PutRequest* req,
                                rpc::PutResponse* resp) override {
    if (grpc::Status no = gate_.store_call(ctx, req->store(), req->replica(), internal::kWrite, "put");
        !no.ok()) {
      return refused_call(ctx, no);
    }
    if (!inline_writes(req->store(), req->replica()) && async(req->store(), req->replica()) &&
        req->has_version()) {
      return async_call<PutReply>(
          ctx,
          [&](Store& s, auto done) {
            s.async_put(req->key(), internal::from_wire(req->version()), std::move(done));
          },
          req->store(), req->replica(), req->metadata_version(), [resp](const PutReply& r) { answer_put(r, resp); });
    }
    if (inline_writes(req->store(), req->replica())) {
      return inline_call(ctx, [&] { do_put(stores_, *req, resp); });
    }
    return worker_call(ctx, pool(req->store(), req->replica()),
                       [this, req, resp] { do_put(stores_, *req, resp); });
  }
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx, const rpc::DeleteRequest* req,
                                   rpc::DeleteResponse* resp) override {
    if (grpc::Status no =
            gate_.store_call(ctx, req->store(), req->replica(), internal::kWrite, "delete");
        !no.ok()) {
      return refused_call(ctx, no);
    }
    if (!inline_writes(req->store(), req->replica()) && async(req->store(), req->replica())) {
      return async_call<bool>(
          ctx,
          [&](Store& s, auto done) {
            s.async_remove(req->key(), internal::from_wire(req->clock()), std::move(done));
          },
          req->store(), req->replica(), req->metadata_version(), [resp](bool deleted) { resp->set_deleted(deleted); });
    }
    if (inline_writes(req->store(), req->replica())) {
      return inline_call(ctx, [&] { do_delete(stores_, *req, resp); });
    }
    return worker_call(ctx, pool(req->store(), req->replica()),
                       [this, req, resp] { do_delete(stores_, *req, resp); });
  }
  grpc::ServerWriteReactor<rpc::KeyVersions>* Scan(grpc::CallbackServerContext* ctx,
                                                   const rpc::ScanRequest* req) override {
    // A scan reads every key: an admin's (or a node's, of a replica).
    if (grpc::Status no =
            gate_.store_call(ctx, req->store(), req->replica(), internal::kAdmin, "scan");
        !no.ok()) {
      return new RefusedStream<grpc::ServerWriteReactor<rpc::KeyVersions>>(no);
    }
    if (!drain_.enter()) {
      return new RefusedStream<grpc::ServerWriteReactor<rpc::KeyVersions>>(Drain::refused());
    }
    return new ScanReactor(stores_, pool(req->store(), req->replica()), drain_, *req);
  }
  grpc::ServerBidiReactor<rpc::StreamRequests, rpc::StreamResponses>* Stream(
      grpc::CallbackServerContext* ctx) override {
    if (drain_.draining()) {
      return new RefusedStream<grpc::ServerBidiReactor<rpc::StreamRequests, rpc::StreamResponses>>(
          Drain::refused());
    }
    // Who the stream is from, once (and again after a reload); each
    // request is checked as it comes.
    return new StreamReactor(stores_, executor_, routed_executor_, drain_, request_timeout_,
                             max_message_size_, gate_, ctx);
  }
  // On the pool: the loop waits on the engine and, when the store routes,
  // on other nodes.
  grpc::ServerUnaryReactor* Atomic(grpc::CallbackServerContext* ctx, const rpc::AtomicRequest* req,
                                   rpc::AtomicResponse* resp) override {
    if (grpc::Status no = gate_.store_call(ctx, req->store(), false, internal::kWrite, "atomic update");
        !no.ok()) {
      return refused_call(ctx, no);
    }
    return worker_call(ctx, pool(req->store(), false),
                       [this, req, resp] { atomic_.run(stores_, *req, resp); });
  }
  grpc::ServerBidiReactor<rpc::WatchRequests, rpc::WatchEvents>* Watch(
      grpc::CallbackServerContext* ctx) override {
    using Reactor = grpc::ServerBidiReactor<rpc::WatchRequests, rpc::WatchEvents>;
    if (drain_.draining()) return new RefusedStream<Reactor>(Drain::refused());
    // A near cache's invalidations: any caller the policy knows.
    if (grpc::Status no = gate_.known_call(ctx, "watch"); !no.ok()) {
      return new RefusedStream<Reactor>(no);
    }
    if (directory_ == nullptr) {
      return new RefusedStream<Reactor>(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION,
                                                     "this server keeps no cache directory"));
    }
    return new WatchReactor(directory_);
  }

 private:
  bool async(const std::string& store, bool replica) const {
    auto it = stores_.find(store);
    return it != stores_.end() && it->second->answers_async(replica);
  }
  bool inline_writes(const std::string& store, bool replica) const {
    auto it = stores_.find(store);
    return it != stores_.end() && it->second->writes_inline(replica);
  }
  bool reads_inline(const std::string& store, bool replica) const {
    auto it = stores_.find(store);
    return it == stores_.end() || it->second->reads_inline(replica);
  }
  // The pool a call that leaves gRPC's thread runs on: calls a node
  // routes (they wait on other nodes) have one of their own, so that they
  // never hold up the replica calls other nodes' routing layers make here,
  // which wait on nothing but the engine.
  internal::Executor& pool(const std::string& store, bool replica) const {
    return reads_inline(store, replica) ? executor_ : routed_executor_;
  }

  template <typename Fn>
  grpc::ServerUnaryReactor* inline_call(grpc::CallbackServerContext* ctx, Fn&& fn) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!drain_.enter()) {
      reactor->Finish(Drain::refused());
      return reactor;
    }
    reactor->Finish(status_of(fn));
    drain_.leave();
    return reactor;
  }

  // A call to a store whose async calls never block: `start(store, done)`
  // starts it on gRPC's thread; the store's callback fills the response
  // with `fill(result)` and finishes the call. No thread waits meanwhile.
  // Request and response outlive the call until Finish.
  template <typename T, typename Start, typename Fill>
  grpc::ServerUnaryReactor* async_call(grpc::CallbackServerContext* ctx, Start&& start,
                                       const std::string& store, bool replica,
                                       uint64_t routed_by, Fill fill) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!drain_.enter()) {
      reactor->Finish(Drain::refused());
      return reactor;
    }
    Callback<T> done = [this, reactor, fill = std::move(fill)](T result, std::exception_ptr e) {
      reactor->Finish(status_of([&] {
        if (e) std::rethrow_exception(e);
        fill(result);
      }));
      drain_.leave();
    };
    try {
      start(lookup(stores_, store, replica, routed_by), done);
    } catch (...) {
      // Nothing started (a store to look up that is not there): answer.
      done(T{}, std::current_exception());
    }
    return reactor;
  }

  // Request and response outlive the call until Finish, so the task may
  // use them.
  template <typename Fn>
  grpc::ServerUnaryReactor* worker_call(grpc::CallbackServerContext* ctx,
                                        internal::Executor& executor, Fn fn) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!drain_.enter()) {
      reactor->Finish(Drain::refused());
      return reactor;
    }
    // A call still waiting for a worker past its deadline (the client's,
    // or request_timeout after it arrived if that is sooner) is answered
    // DEADLINE_EXCEEDED and not run: under overload the pool does not
    // spend itself on calls whose callers have given up.
    const auto arrived = std::chrono::system_clock::now();
    const auto deadline = std::min(ctx->deadline(), arrived + request_timeout_);
    executor.submit([this, reactor, arrived, deadline, fn = std::move(fn)] {
      const auto now = std::chrono::system_clock::now();
      if (now > deadline) {
        const auto waited =
            std::chrono::duration_cast<std::chrono::milliseconds>(now - arrived).count();
        reactor->Finish(internal::to_status(
            Timeout("the call waited " + std::to_string(waited) +
                    " ms for a worker, past its deadline; it was not run")));
      } else {
        reactor->Finish(status_of(fn));
      }
      drain_.leave();
    });
    return reactor;
  }

  const Gate& gate_;
  const std::shared_ptr<internal::Directory> directory_;

 public:
  AtomicRunner atomic_;

 private:
  const StoreMap& stores_;
  internal::Executor& executor_;
  internal::Executor& routed_executor_;
  Drain& drain_;
  const std::chrono::milliseconds request_timeout_;
  const size_t max_message_size_;
};

// ---- Moving partitions: a pull from another node, with progress ---------------

// What the pulls of a server have done (StoreServer::pulls()).
struct PullCounters {
  std::atomic<uint64_t> active{0}, keys{0}, bytes{0};
};

// Copies the partitions a PullPartitions call names from the node `from`
// into `target` (this node's own replica), on a thread of its own (a move
// is rare, long and throttled: it should hold none of the pools), and
// writes progress every quarter second and at the end.
class PullReactor final : public grpc::ServerWriteReactor<rpc::PullProgress> {
 public:
  // REQUIRES: drain.enter() succeeded for this call; OnDone leaves.
  PullReactor(Store& target, const rpc::PullPartitionsRequest& req, const ServerOptions& o,
              Drain& drain, PullCounters& counters)
      : target_(target), req_(req), drain_(drain), counters_(counters) {
    ++counters_.active;
    donor_.store = req.store();
    donor_.targets = {req.from()};
    donor_.replica = true;
    donor_.retries = 0;
    donor_.pipeline = false;
    donor_.tls_cert = o.tls_cert;
    donor_.tls_key = o.tls_key;
    donor_.tls_ca = o.tls_ca;
    donor_.scan_timeout = std::chrono::hours(24);
    thread_ = std::thread([this] { run(); });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) cancelled_ = true;
    cv_.notify_all();
  }
  void OnCancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    // A donor that stopped answering must not hold the call (and a
    // server shutting down) until its scan's deadline.
    if (scan_ != nullptr) scan_->cancel();
    cv_.notify_all();
  }
  void OnDone() override {
    // run() calls Finish last: what is left of it touches nothing here.
    join_or_detach(thread_);
    --counters_.active;
    drain_.leave();
    delete this;
  }

 private:
  void run() {
    grpc::Status st = status_of([&] {
      if (req_.from().empty() || req_.ring_partitions() == 0 || req_.partition_ids().empty()) {
        throw InvalidArgument("PullPartitions needs `from`, `ring_partitions` and partition ids");
      }
      GrpcStore donor(donor_);
      PartitionFilter only;
      only.ring_partitions = req_.ring_partitions();
      only.partitions.assign(req_.partition_ids().begin(), req_.partition_ids().end());
      only.max_bytes_per_second = req_.max_bytes_per_second();
      auto it = donor.scan_partitions(only);
      {
        std::lock_guard lock(mu_);
        if (cancelled_) it->cancel();
        scan_ = it.get();
      }
      // OnCancel reaches the scan only while it lives, however this ends.
      struct Forget {
        PullReactor* r;
        ~Forget() {
          std::lock_guard lock(r->mu_);
          r->scan_ = nullptr;
        }
      } forget{this};
      auto last = std::chrono::steady_clock::now();
      while (it->next()) {
        if (stopped()) throw Unavailable("the pull was cancelled");
        uint64_t bytes = it->key().size();
        for (const Versioned& v : it->versions()) {
          target_.put(it->key(), v);  // obsolete: this node has it, or newer
          bytes += v.value.size();
        }
        progress_.set_keys(progress_.keys() + 1);
        progress_.set_bytes(progress_.bytes() + bytes);
        ++counters_.keys;
        counters_.bytes += bytes;
        const auto now = std::chrono::steady_clock::now();
        if (now - last >= std::chrono::milliseconds(250)) {
          last = now;
          send(false);
        }
      }
      donor.close();
      progress_.set_done(true);
      if (!send(true)) throw Unavailable("the caller went away");
    });
    Finish(st);
  }

  bool stopped() {
    std::lock_guard lock(mu_);
    return cancelled_;
  }

  // Writes the progress so far: skipped if a write is in flight, unless
  // `wait` (then it waits for it, and for this one). False if cancelled.
  bool send(bool wait) {
    std::unique_lock lock(mu_);
    if (wait) cv_.wait(lock, [&] { return !writing_ || cancelled_; });
    if (cancelled_) return false;
    if (writing_) return true;
    writing_ = true;
    msg_ = progress_;
    lock.unlock();
    StartWrite(&msg_);
    if (!wait) return true;
    lock.lock();
    cv_.wait(lock, [&] { return !writing_ || cancelled_; });
    return !cancelled_;
  }

  Store& target_;
  const rpc::PullPartitionsRequest req_;
  Drain& drain_;
  PullCounters& counters_;
  GrpcOptions donor_;
  rpc::PullProgress progress_;  // the thread's own
  rpc::PullProgress msg_;       // in flight
  std::mutex mu_;
  std::condition_variable cv_;
  bool writing_ = false;    // guarded by mu_
  bool cancelled_ = false;  // guarded by mu_
  CancellableIterator* scan_ = nullptr;  // the donor's scan while it runs; guarded by mu_
  std::thread thread_;      // last: starts once the rest is set
};

// The read-only engine at the bottom of a store's own replica on this node.
ReadOnlyStore& readonly_of(const StoreMap& stores, const std::string& name) {
  Store& replica = own_replica(stores, name);
  ReadOnlyStore* ro = find_layer<ReadOnlyStore>(replica);
  if (ro == nullptr) {
    throw FailedPrecondition("store '" + name + "' is not a read-only store on this node (its "
                             "engine is not `readonly`)");
  }
  return *ro;
}

// Takes in a ReadOnlyFetch on a thread of its own (a fetch is rare, long
// and writes files: it should hold none of the pools): reads a message,
// writes it down, reads the next.
class FetchReactor final : public grpc::ServerReadReactor<rpc::ReadOnlyFetchRequest> {
 public:
  // REQUIRES: drain.enter() succeeded for this call; OnDone leaves.
  FetchReactor(const StoreMap& stores, rpc::ReadOnlyFetchResponse* resp, Drain& drain)
      : stores_(stores), resp_(resp), drain_(drain) {
    thread_ = std::thread([this] { run(); });
  }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    reading_ = false;
    read_ok_ = ok;
    cv_.notify_all();
  }
  void OnCancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
    cv_.notify_all();
  }
  void OnDone() override {
    join_or_detach(thread_);
    drain_.leave();
    delete this;
  }

 private:
  // The next message into msg_; false at the end of the stream.
  bool read() {
    std::unique_lock lock(mu_);
    reading_ = true;
    lock.unlock();
    StartRead(&msg_);
    lock.lock();
    cv_.wait(lock, [&] { return !reading_ || cancelled_; });
    if (cancelled_) {
      // The read may still complete; wait for it so that msg_ is not
      // written after this thread is gone.
      cv_.wait(lock, [&] { return !reading_; });
      throw Unavailable("the fetch was cancelled");
    }
    return read_ok_;
  }

  void run() {
    const grpc::Status st = status_of([&] {
      if (!read()) throw InvalidArgument("ReadOnlyFetch: the stream is empty");
      if (msg_.store().empty() || msg_.version() == 0 || msg_.metadata().empty()) {
        throw InvalidArgument("ReadOnlyFetch: the first message must name the store, the "
                              "version (from 1) and carry the metadata");
      }
      ReadOnlyStore& ro = readonly_of(stores_, msg_.store());
      internal::ReadOnlyReceiver in(ro.path(), msg_.version(), msg_.metadata());
      const std::string store = msg_.store();
      const uint64_t version = msg_.version();
      while (read()) {
        if (!msg_.store().empty() || !msg_.metadata().empty() || msg_.file().empty()) {
          throw InvalidArgument("ReadOnlyFetch: after the first message, each carries a file's "
                                "name and a piece of it");
        }
        in.write(msg_.file(), msg_.data());
      }
      in.finish();
      resp_->set_bytes(in.bytes_received());
      log(LogLevel::kInfo, "store '" + store + "': fetched read-only version " +
                               std::to_string(version) + ": " +
                               std::to_string(in.meta().records) + " records, " +
                               std::to_string(in.bytes_received()) + " bytes");
    });
    Finish(st);
  }

  const StoreMap& stores_;
  rpc::ReadOnlyFetchResponse* resp_;
  Drain& drain_;
  rpc::ReadOnlyFetchRequest msg_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool reading_ = false;    // guarded by mu_
  bool read_ok_ = false;    // guarded by mu_
  bool cancelled_ = false;  // guarded by mu_
  std::thread thread_;      // last: starts once the rest is set
};

class AdminService final : public rpc::Admin::CallbackService {
 public:
  AdminService(const StoreMap& stores, internal::Executor& executor, Drain& drain,
               const ServerOptions& options, const Gate& gate)
      : gate_(gate),
        stores_(stores),
        executor_(executor),
        drain_(drain),
        options_(options),
        keep_hint_(options.keep_hint),
        pending_hints_(options.pending_hints) {}

  grpc::ServerWriteReactor<rpc::PullProgress>* PullPartitions(
      grpc::CallbackServerContext* ctx, const rpc::PullPartitionsRequest* req) override {
    Store* target = nullptr;
    grpc::Status st = gate_.node_call(ctx, "PullPartitions", /*admins_too=*/true);
    if (st.ok()) st = status_of([&] { target = &own_replica(stores_, req->store()); });
    if (!st.ok() || !drain_.enter()) {
      return new RefusedStream<grpc::ServerWriteReactor<rpc::PullProgress>>(
          st.ok() ? Drain::refused() : st);
    }
    return new PullReactor(*target, *req, options_, drain_, pulls_);
  }

  grpc::ServerReadReactor<rpc::ReadOnlyFetchRequest>* ReadOnlyFetch(
      grpc::CallbackServerContext* ctx, rpc::ReadOnlyFetchResponse* resp) override {
    // The store is named in the stream's first message: a node's or an
    // admin's (of every store) call.
    if (grpc::Status no = gate_.node_call(ctx, "ReadOnlyFetch", true); !no.ok()) {
      return new RefusedStream<grpc::ServerReadReactor<rpc::ReadOnlyFetchRequest>>(no);
    }
    if (!drain_.enter()) {
      return new RefusedStream<grpc::ServerReadReactor<rpc::ReadOnlyFetchRequest>>(Drain::refused());
    }
    return new FetchReactor(stores_, resp, drain_);
  }

  grpc::ServerUnaryReactor* ReadOnlySwap(grpc::CallbackServerContext* ctx,
                                         const rpc::ReadOnlySwapRequest* req,
                                         rpc::ReadOnlySwapResponse* resp) override {
    if (grpc::Status no = gate_.store_call(ctx, req->store(), false, internal::kAdmin, "swap");
        !no.ok()) {
      return refused_call(ctx, no);
    }
    // A prepare maps and checksums whole files: a worker's job.
    return on_worker(ctx, [this, req, resp] {
      ReadOnlyStore& ro = readonly_of(stores_, req->store());
      switch (req->step()) {
        case rpc::ReadOnlySwapRequest::PREPARE:
          ro.prepare(req->version());
          break;
        case rpc::ReadOnlySwapRequest::COMMIT:
          resp->set_previous(ro.commit(req->version()));
          log(LogLevel::kInfo, "store '" + req->store() + "': serving read-only version " +
                                   std::to_string(req->version()) + " (was " +
                                   std::to_string(resp->previous()) + ")");
          break;
        case rpc::ReadOnlySwapRequest::ABORT:
          ro.abort();
          break;
        case rpc::ReadOnlySwapRequest::DISCARD:
          ro.discard(req->version());
          break;
        default:
          throw InvalidArgument("ReadOnlySwap: unknown step");
      }
    });
  }

  grpc::ServerUnaryReactor* ReadOnlyStatus(grpc::CallbackServerContext* ctx,
                                           const rpc::ReadOnlyStatusRequest* req,
                                           rpc::ReadOnlyStatusResponse* resp) override {
    if (grpc::Status no =
            gate_.store_call(ctx, req->store(), false, internal::kAdmin, "read-only status");
        !no.ok()) {
      return refused_call(ctx, no);
    }
    return on_worker(ctx, [this, req, resp] {
      ReadOnlyStore& ro = readonly_of(stores_, req->store());
      resp->set_live(ro.live_version());
      for (const ReadOnlyVersionInfo& v : ro.status()) {
        rpc::ReadOnlyVersion* out = resp->add_versions();
        out->set_version(v.version);
        out->set_records(v.records);
        out->set_bytes(v.bytes);
        out->set_ring_partitions(v.ring_partitions);
        for (uint32_t p : v.partitions) out->add_partitions(p);
        out->set_live(v.live);
      }
    });
  }

  grpc::ServerUnaryReactor* DropPartitions(grpc::CallbackServerContext* ctx,
                                           const rpc::DropPartitionsRequest* req,
                                           rpc::DropPartitionsResponse* resp) override {
    if (grpc::Status no = gate_.node_call(ctx, "DropPartitions", true); !no.ok()) {
      return refused_call(ctx, no);
    }
    // A scan and deletes of the node's own replica: a worker's job.
    return on_worker(ctx, [this, req, resp] { drop_partitions(*req, resp); });
  }

  grpc::ServerUnaryReactor* PendingHints(grpc::CallbackServerContext* ctx,
                                         const rpc::PendingHintsRequest*,
                                         rpc::PendingHintsResponse* resp) override {
    if (grpc::Status no = gate_.node_call(ctx, "PendingHints", true); !no.ok()) {
      return refused_call(ctx, no);
    }
    if (!pending_hints_) {
      grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
      reactor->Finish(internal::to_status(FailedPrecondition(
          "this node keeps no hints (it is not a node of a cluster)")));
      return reactor;
    }
    // A scan of the node's hint store: a worker's job.
    return on_worker(ctx, [this, resp] {
      for (const auto& [node, n] : pending_hints_()) (*resp->mutable_by_node())[node] = n;
    });
  }

  grpc::ServerUnaryReactor* PutHint(grpc::CallbackServerContext* ctx, const rpc::Hint* req,
                                    rpc::PutHintResponse*) override {
    // A write another node missed, kept here for it: nodes only.
    if (grpc::Status no = gate_.node_call(ctx, "PutHint", false); !no.ok()) {
      return refused_call(ctx, no);
    }
    if (!keep_hint_) {
      grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
      reactor->Finish(internal::to_status(FailedPrecondition(
          "this node keeps no hints (its config has no `cluster: hints:`, or it is not a "
          "cluster node)")));
      return reactor;
    }
    // Keeping a hint writes to the node's hint store: a worker's job.
    return on_worker(ctx, [this, req] { keep_hint_(internal::from_wire(*req)); });
  }

  grpc::ServerUnaryReactor* ListStores(grpc::CallbackServerContext* ctx,
                                       const rpc::ListStoresRequest*,
                                       rpc::ListStoresResponse* resp) override {
    if (grpc::Status no = gate_.known_call(ctx, "list stores"); !no.ok()) return refused_call(ctx, no);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(status_of([&] {
      for (const auto& [name, s] : stores_) {
        rpc::StoreInfo* info = resp->add_stores();
        info->set_name(name);
        info->set_stack(s->store.store->describe());
        if (s->store.key) info->set_key_serializer(s->store.key->describe());
        if (s->store.value) info->set_value_serializer(s->store.value->describe());
      }
    }));
    return reactor;
  }

  grpc::ServerUnaryReactor* Stats(grpc::CallbackServerContext* ctx, const rpc::StatsRequest* req,
                                  rpc::StatsResponse* resp) override {
    if (grpc::Status no = gate_.known_call(ctx, "stats"); !no.ok()) return refused_call(ctx, no);
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(status_of([&] {
      for (const auto& [name, s] : stores_) {
        if (!req->store().empty() && req->store() != name) continue;
        (*resp->mutable_calls())[name] = s->calls.load(std::memory_order_relaxed);
        if (auto* stats = stats_of(s->store)) {
          (*resp->mutable_reports())[name] = stats->report();
        }
      }
      if (!req->store().empty() && resp->calls().empty()) lookup(stores_, req->store());
    }));
    return reactor;
  }

 private:
  // Runs `fn` on a worker and answers with what it threw (OK if nothing),
  // unless the server is draining.
  template <typename Fn>
  grpc::ServerUnaryReactor* on_worker(grpc::CallbackServerContext* ctx, Fn fn) {
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    if (!drain_.enter()) {
      reactor->Finish(Drain::refused());
      return reactor;
    }
    executor_.submit([this, reactor, fn = std::move(fn)] {
      reactor->Finish(status_of(fn));
      drain_.leave();
    });
    return reactor;
  }

  // Deletes the keys of the partitions asked for from the node's replica,
  // once the node's metadata says it no longer replicates any of them.
  void drop_partitions(const rpc::DropPartitionsRequest& req, rpc::DropPartitionsResponse* resp) {
    Store& replica = own_replica(stores_, req.store());
    if (!options_.replicates) {
      throw FailedPrecondition("this node does not follow cluster metadata kept in etcd: it "
                               "drops no partitions");
    }
    const uint32_t q = req.ring_partitions();
    std::set<uint32_t> drop;
    for (uint32_t p : req.partition_ids()) {
      if (options_.replicates(req.store(), q, p)) {
        throw FailedPrecondition("store '" + req.store() + "': this node still replicates "
                                 "partition " + std::to_string(p) + " of " + std::to_string(q) +
                                 " by its metadata (version " +
                                 std::to_string(internal::process_metadata_version().load()) +
                                 "); nothing dropped");
      }
      drop.insert(p);
    }
    uint64_t keys = 0;
    for (auto it = replica.scan(); it->next();) {
      if (!drop.contains(static_cast<uint32_t>(Ring::hash(it->key()) % q))) continue;
      const std::string key(it->key());
      for (const Versioned& v : it->versions()) replica.remove(key, v.clock);
      ++keys;
    }
    resp->set_keys(keys);
  }

  const Gate& gate_;
  const StoreMap& stores_;
  internal::Executor& executor_;
  Drain& drain_;
  const ServerOptions& options_;

 public:
  PullCounters pulls_;

 private:
  std::function<void(const Hint&)> keep_hint_;
  std::function<std::map<NodeId, uint64_t>()> pending_hints_;
};

std::shared_ptr<grpc::ServerCredentials> credentials(const ServerOptions& o) {
  if (o.tls_cert.empty() && o.tls_key.empty()) return grpc::InsecureServerCredentials();
  if (o.tls_cert.empty() || o.tls_key.empty()) {
    throw InvalidArgument("TLS needs both a certificate and a key");
  }
  grpc::SslServerCredentialsOptions ssl(
      o.tls_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                       : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!o.tls_ca.empty()) ssl.pem_root_certs = internal::read_tls_file(o.tls_ca, "CA");
  ssl.pem_key_cert_pairs.push_back(
      {internal::read_tls_file(o.tls_key, "key"), internal::read_tls_file(o.tls_cert, "certificate")});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

struct StoreServer::Impl {
  ServerOptions options;
  StoreMap stores;
  std::unique_ptr<internal::Executor> executor;
  std::unique_ptr<internal::Executor> routed_executor;  // only if a store routes
  Drain drain;
  std::unique_ptr<Gate> gate;  // before the services, which hold it
  std::unique_ptr<StoreService> store_service;
  std::unique_ptr<AdminService> admin_service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;

  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;  // guarded by mu
  bool stopped = false;   // guarded by mu: everything is closed
};

StoreServer::StoreServer(ServerOptions options, std::map<std::string, ServedStore> stores)
    : impl_(std::make_unique<Impl>()) {
  impl_->options = std::move(options);
  const ServerOptions& o = impl_->options;
  if (o.max_message_size < 1024 || o.max_message_size > static_cast<size_t>(INT_MAX)) {
    throw InvalidArgument("max_message_size must be from 1 KiB to 2 GiB - 1, not " +
                          std::to_string(o.max_message_size));
  }
  if (o.request_timeout <= std::chrono::milliseconds(0) ||
      o.request_timeout > std::chrono::hours(24)) {
    throw InvalidArgument("request_timeout must be from 1 ms to 24 h");
  }
  if (o.worker_threads < 1 || o.route_threads < 1) {
    throw InvalidArgument("worker_threads and route_threads must be at least 1");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    throw InvalidArgument("TLS needs both a certificate and its key (one is missing)");
  }
  if (!o.tls_ca.empty() && o.tls_cert.empty()) {
    throw InvalidArgument("mutual TLS (a client CA) needs the server's certificate and key too");
  }
  for (auto& [name, s] : stores) {
    auto served = std::make_unique<Served>();
    served->store = std::move(s);
    served->inline_writes = !served->store.store->writes_may_block();
    served->inline_replica_writes =
        served->store.replica ? !served->store.replica->writes_may_block() : served->inline_writes;
    served->async = !served->store.store->async_calls_block();
    served->async_replica =
        served->store.replica ? !served->store.replica->async_calls_block() : served->async;
    served->blocking_reads = served->store.store->reads_may_block();
    served->blocking_replica_reads =
        served->store.replica ? served->store.replica->reads_may_block() : served->blocking_reads;
    impl_->stores.emplace(name, std::move(served));
  }
  impl_->executor = std::make_unique<internal::Executor>(impl_->options.worker_threads);
  bool routes = false;
  for (const auto& [name, served] : impl_->stores) routes |= served->blocking_reads;
  if (routes) {
    impl_->routed_executor = std::make_unique<internal::Executor>(impl_->options.route_threads);
  }
  impl_->gate = std::make_unique<Gate>(impl_->options.access, !impl_->options.tls_ca.empty());
  impl_->store_service = std::make_unique<StoreService>(
      impl_->stores, *impl_->executor,
      routes ? *impl_->routed_executor : *impl_->executor, impl_->drain,
      impl_->options.request_timeout, impl_->options.max_message_size, impl_->options.directory,
      *impl_->gate);
  impl_->admin_service = std::make_unique<AdminService>(impl_->stores, *impl_->executor,
                                                         impl_->drain, impl_->options, *impl_->gate);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl_->options.listen, credentials(impl_->options), &impl_->port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(impl_->options.max_message_size));
  builder.SetMaxSendMessageSize(static_cast<int>(impl_->options.max_message_size));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  // gRPC binds with SO_REUSEPORT by default: a second server on a port in
  // use would start and take a share of its connections. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.RegisterService(impl_->store_service.get());
  builder.RegisterService(impl_->admin_service.get());
  impl_->server = builder.BuildAndStart();
  if (impl_->server == nullptr || impl_->port == 0) {
    throw Unavailable("cannot listen on " + impl_->options.listen +
                      (impl_->options.tls_cert.empty()
                           ? " (address in use, or not an address of this host?)"
                           : " (address in use, not an address of this host, or the TLS "
                             "certificate and key were rejected: gRPC's log above says which)"));
  }
}

StoreServer::~StoreServer() {
  try {
    shutdown(std::chrono::seconds(1));
  } catch (const Error& e) {
    log(LogLevel::kError, std::string("server shutdown: ") + e.what());
  }
}

int StoreServer::port() const { return impl_->port; }

void StoreServer::shutdown(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(impl_->mu);
    if (impl_->stopping) return;
    impl_->stopping = true;
  }
  // New calls are refused (UNAVAILABLE: clients retry elsewhere) while
  // those in flight get `grace` to finish; then gRPC stops, cancelling what
  // is left and dropping idle connections. Work already queued on the pool
  // runs to completion (destroying the executor joins it) before the stores
  // close underneath it.
  // Load balancers watching gRPC health stop sending calls here first.
  if (auto* health = impl_->server->GetHealthCheckService()) health->SetServingStatus(false);
  impl_->drain.drain(grace);
  impl_->server->Shutdown(std::chrono::system_clock::now());
  impl_->server->Wait();
  impl_->routed_executor.reset();  // routed calls first: they may use the engine pool's stores
  impl_->executor.reset();
  // Every store is closed even if one fails to (its error is rethrown
  // after): one bad disk does not keep the others from being flushed.
  std::exception_ptr first_error;
  for (auto& [name, s] : impl_->stores) {
    try {
      s->store.store->close();
    } catch (...) {
      if (!first_error) first_error = std::current_exception();
    }
  }
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopped = true;
  }
  impl_->cv.notify_all();
  if (first_error) std::rethrow_exception(first_error);
}

StoreServer::Pulls StoreServer::pulls() const {
  const PullCounters& c = impl_->admin_service->pulls_;
  return {c.active.load(), c.keys.load(), c.bytes.load()};
}

std::map<std::string, uint64_t> StoreServer::calls() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [name, s] : impl_->stores) out[name] = s->calls.load(std::memory_order_relaxed);
  return out;
}

StoreServer::Atomics StoreServer::atomics() const {
  const auto [updates, writes] = impl_->store_service->atomic_.counts();
  return Atomics{updates, writes};
}

void StoreServer::wait() {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [this] { return impl_->stopped; });
}

}  // namespace cairn

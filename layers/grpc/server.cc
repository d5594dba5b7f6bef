#include "layers/grpc/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <mutex>
#include <sstream>

#include "cairn/log.h"
#include "core/executor.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/wire.h"
#include "layers/stats/stats_store.h"

namespace cairn {

namespace {

using internal::status_of;

struct Served {
  ServedStore store;
  bool inline_writes = false;  // the stack's writes never block: no pool hop
  std::atomic<uint64_t> calls{0};
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
Store& lookup(const StoreMap& stores, const std::string& name) {
  auto it = stores.find(name);
  if (it == stores.end()) {
    std::string known;
    for (const auto& [n, s] : stores) known += (known.empty() ? "" : ", ") + n;
    throw NotFound("no store '" + name + "' on this server (it serves: " + known + ")");
  }
  it->second->calls.fetch_add(1, std::memory_order_relaxed);
  return *it->second->store.store;
}

// ---- The operations, shared by the unary methods and the Stream -------------

void do_get(const StoreMap& stores, const rpc::GetRequest& req, rpc::GetResponse* resp) {
  Store& store = lookup(stores, req.store());
  for (const Versioned& v : store.get(req.key())) internal::to_wire(v, resp->add_versions());
}

void do_get_all(const StoreMap& stores, const rpc::GetAllRequest& req, rpc::GetAllResponse* resp) {
  Store& store = lookup(stores, req.store());
  const std::vector<std::string> keys(req.keys().begin(), req.keys().end());
  for (const auto& [key, versions] : store.get_all(keys)) {
    rpc::KeyVersions* kv = resp->add_found();
    kv->set_key(key);
    for (const Versioned& v : versions) internal::to_wire(v, kv->add_versions());
  }
}

void do_put(const StoreMap& stores, const rpc::PutRequest& req, rpc::PutResponse* resp) {
  Store& store = lookup(stores, req.store());
  if (!req.has_version()) throw InvalidArgument("put without a version");
  resp->set_obsolete(store.put(req.key(), internal::from_wire(req.version())) ==
                     PutResult::kObsolete);
}

void do_delete(const StoreMap& stores, const rpc::DeleteRequest& req, rpc::DeleteResponse* resp) {
  Store& store = lookup(stores, req.store());
  resp->set_deleted(store.remove(req.key(), internal::from_wire(req.clock())));
}

void do_get_versions(const StoreMap& stores, const rpc::GetRequest& req,
                     rpc::GetVersionsResponse* resp) {
  Store& store = lookup(stores, req.store());
  for (const VectorClock& c : store.versions(req.key())) internal::to_wire(c, resp->add_clocks());
}

// ---- Scan: a server-streaming reactor ----------------------------------------

// Pulls keys from the store's iterator on the worker pool and writes them
// one at a time (gRPC allows one write in flight).
class ScanReactor final : public grpc::ServerWriteReactor<rpc::KeyVersions> {
 public:
  // REQUIRES: drain.enter() succeeded for this call; OnDone leaves.
  ScanReactor(const StoreMap& stores, internal::Executor& executor, Drain& drain,
              const rpc::ScanRequest& req)
      : executor_(executor), drain_(drain), limit_(req.limit()) {
    executor_.submit([this, &stores, store = req.store()] {
      const grpc::Status st = status_of([&] { it_ = lookup(stores, store).scan(); });
      if (!st.ok()) return finish(st);
      next();
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    executor_.submit([this] { next(); });
  }
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
      more = it_->next();
      if (!more) return;
      msg_.Clear();
      msg_.set_key(std::string(it_->key()));
      for (const Versioned& v : it_->versions()) internal::to_wire(v, msg_.add_versions());
    });
    if (!st.ok() || !more) return finish(st);
    ++sent_;
    StartWrite(&msg_);
  }

  void finish(const grpc::Status& st) {
    if (finished_.exchange(true)) return;
    Finish(st);
  }

  internal::Executor& executor_;
  Drain& drain_;
  const uint64_t limit_;
  uint64_t sent_ = 0;
  std::unique_ptr<StoreIterator> it_;
  rpc::KeyVersions msg_;
  std::atomic<bool> finished_{false};
};

// ---- Stream: pipelined requests on one bidi call -----------------------------

// Reads batches of requests one at a time (one read in flight), runs each
// request — reads inline, a batch's writes together on the worker pool
// (inline too when the store's writes never block) —
// and writes responses as they are ready: one write in flight, and the
// responses that pile up meanwhile go out together in the next. Finishes
// once the client has half-closed and every request has been answered.
class StreamReactor final
    : public grpc::ServerBidiReactor<rpc::StreamRequests, rpc::StreamResponses> {
 public:
  // REQUIRES: drain.enter() succeeded for this call; OnDone leaves.
  StreamReactor(const StoreMap& stores, internal::Executor& executor, Drain& drain,
                std::chrono::milliseconds request_timeout)
      : stores_(stores), executor_(executor), drain_(drain), request_timeout_(request_timeout) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {
      std::lock_guard lock(mu_);
      reads_done_ = true;
      maybe_finish();
      return;
    }
    rpc::StreamRequests batch = std::move(request_);
    {
      std::lock_guard lock(mu_);
      pending_ += batch.requests_size();
    }
    std::vector<rpc::StreamResponse> answered;
    auto writes = std::make_shared<std::vector<rpc::StreamRequest>>();
    for (rpc::StreamRequest& req : *batch.mutable_requests()) {
      if (req.has_put() || req.has_delete_()) {
        const std::string& store = req.has_put() ? req.put().store() : req.delete_().store();
        auto it = stores_.find(store);
        if (it == stores_.end() || !it->second->inline_writes) {
          writes->push_back(std::move(req));
          continue;
        }
      }
      answered.push_back(answer(req));
    }
    if (!answered.empty()) respond(std::move(answered));
    // The next read starts after the responses: gRPC then sends the flow
    // control update the read announces in the same write as them, one
    // sendmsg instead of two.
    StartRead(&request_);
    if (!writes->empty()) {
      const auto deadline = std::chrono::steady_clock::now() + request_timeout_;
      executor_.submit([this, writes, deadline] {
        // As for unary writes: too long in the queue, answered unrun.
        const bool late = std::chrono::steady_clock::now() > deadline;
        std::vector<rpc::StreamResponse> done;
        done.reserve(writes->size());
        for (const rpc::StreamRequest& req : *writes) {
          if (!late) {
            done.push_back(answer(req));
            continue;
          }
          rpc::StreamResponse& r = done.emplace_back();
          r.set_id(req.id());
          r.mutable_error()->set_code(rpc::TIMEOUT);
          r.mutable_error()->set_message("the write waited for a worker past the server's "
                                         "request timeout; it was not run");
        }
        respond(std::move(done));
      });
    }
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) {
      cancelled_ = true;
      queue_.clear();
    } else if (!queue_.empty()) {
      start_write();
    }
    maybe_finish();
  }

  void OnCancel() override {
    std::lock_guard lock(mu_);
    cancelled_ = true;
  }

  void OnDone() override {
    drain_.leave();
    delete this;
  }

 private:
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
      rpc::Error* e = resp.mutable_error();
      e->set_code(static_cast<rpc::ErrorCode>(std::stoi(st.error_details())));
      e->set_message(st.error_message());
    }
    return resp;
  }

  void respond(std::vector<rpc::StreamResponse> responses) {
    std::lock_guard lock(mu_);
    pending_ -= static_cast<int>(responses.size());
    if (!cancelled_) {
      for (rpc::StreamResponse& r : responses) queue_.push_back(std::move(r));
      if (!writing_) start_write();
    }
    maybe_finish();
  }

  // REQUIRES: mu_ held, !writing_, !queue_.empty(). Sends what is queued,
  // up to kBatchBytes (at least one response, whatever its size).
  void start_write() {
    static constexpr size_t kBatchBytes = 1 << 20;
    current_.Clear();
    size_t bytes = 0;
    while (!queue_.empty() && (current_.responses_size() == 0 || bytes < kBatchBytes)) {
      bytes += queue_.front().ByteSizeLong();
      *current_.add_responses() = std::move(queue_.front());
      queue_.pop_front();
    }
    writing_ = true;
    StartWrite(&current_);
  }

  // REQUIRES: mu_ held.
  void maybe_finish() {
    if (finished_ || pending_ > 0 || writing_) return;
    if (cancelled_) {
      finished_ = true;
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled"));
    } else if (reads_done_ && queue_.empty()) {
      finished_ = true;
      Finish(grpc::Status::OK);
    }
  }

  const StoreMap& stores_;
  internal::Executor& executor_;
  Drain& drain_;
  const std::chrono::milliseconds request_timeout_;
  rpc::StreamRequests request_;  // the read in flight

  std::mutex mu_;
  std::deque<rpc::StreamResponse> queue_;  // guarded by mu_
  rpc::StreamResponses current_;           // the write in flight; guarded by mu_
  int pending_ = 0;                        // requests being answered
  bool writing_ = false;
  bool reads_done_ = false;
  bool cancelled_ = false;
  bool finished_ = false;
};

// ---- The services ------------------------------------------------------------

class StoreService final : public rpc::Store::CallbackService {
 public:
  StoreService(const StoreMap& stores, internal::Executor& executor, Drain& drain,
               std::chrono::milliseconds request_timeout)
      : stores_(stores), executor_(executor), drain_(drain), request_timeout_(request_timeout) {}

  grpc::ServerUnaryReactor* Get(grpc::CallbackServerContext* ctx, const rpc::GetRequest* req,
                                rpc::GetResponse* resp) override {
    return inline_call(ctx, [&] { do_get(stores_, *req, resp); });
  }
  grpc::ServerUnaryReactor* GetAll(grpc::CallbackServerContext* ctx, const rpc::GetAllRequest* req,
                                   rpc::GetAllResponse* resp) override {
    return inline_call(ctx, [&] { do_get_all(stores_, *req, resp); });
  }
  grpc::ServerUnaryReactor* GetVersions(grpc::CallbackServerContext* ctx,
                                        const rpc::GetRequest* req,
                                        rpc::GetVersionsResponse* resp) override {
    return inline_call(ctx, [&] { do_get_versions(stores_, *req, resp); });
  }
  grpc::ServerUnaryReactor* Put(grpc::CallbackServerContext* ctx, const rpc::PutRequest* req,
                                rpc::PutResponse* resp) override {
    if (inline_writes(req->store())) return inline_call(ctx, [&] { do_put(stores_, *req, resp); });
    return worker_call(ctx, [this, req, resp] { do_put(stores_, *req, resp); });
  }
  grpc::ServerUnaryReactor* Delete(grpc::CallbackServerContext* ctx, const rpc::DeleteRequest* req,
                                   rpc::DeleteResponse* resp) override {
    if (inline_writes(req->store())) {
      return inline_call(ctx, [&] { do_delete(stores_, *req, resp); });
    }
    return worker_call(ctx, [this, req, resp] { do_delete(stores_, *req, resp); });
  }
  grpc::ServerWriteReactor<rpc::KeyVersions>* Scan(grpc::CallbackServerContext*,
                                                   const rpc::ScanRequest* req) override {
    if (!drain_.enter()) return new Refused<grpc::ServerWriteReactor<rpc::KeyVersions>>();
    return new ScanReactor(stores_, executor_, drain_, *req);
  }
  grpc::ServerBidiReactor<rpc::StreamRequests, rpc::StreamResponses>* Stream(
      grpc::CallbackServerContext*) override {
    if (!drain_.enter()) {
      return new Refused<grpc::ServerBidiReactor<rpc::StreamRequests, rpc::StreamResponses>>();
    }
    return new StreamReactor(stores_, executor_, drain_, request_timeout_);
  }

 private:
  bool inline_writes(const std::string& store) const {
    auto it = stores_.find(store);
    return it != stores_.end() && it->second->inline_writes;
  }

  // A streaming call refused while draining: finishes at once.
  template <typename Reactor>
  struct Refused final : Reactor {
    Refused() { this->Finish(Drain::refused()); }
    void OnDone() override { delete this; }
  };

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

  // Request and response outlive the call until Finish, so the task may
  // use them.
  template <typename Fn>
  grpc::ServerUnaryReactor* worker_call(grpc::CallbackServerContext* ctx, Fn fn) {
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
    executor_.submit([this, reactor, arrived, deadline, fn = std::move(fn)] {
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

  const StoreMap& stores_;
  internal::Executor& executor_;
  Drain& drain_;
  const std::chrono::milliseconds request_timeout_;
};

class AdminService final : public rpc::Admin::CallbackService {
 public:
  explicit AdminService(const StoreMap& stores) : stores_(stores) {}

  grpc::ServerUnaryReactor* ListStores(grpc::CallbackServerContext* ctx,
                                       const rpc::ListStoresRequest*,
                                       rpc::ListStoresResponse* resp) override {
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
    grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
    reactor->Finish(status_of([&] {
      for (const auto& [name, s] : stores_) {
        if (!req->store().empty() && req->store() != name) continue;
        (*resp->mutable_calls())[name] = s->calls.load(std::memory_order_relaxed);
        if (auto* stats = find_layer<StatsStore>(*s->store.store)) {
          (*resp->mutable_reports())[name] = stats->report();
        }
      }
      if (!req->store().empty() && resp->calls().empty()) lookup(stores_, req->store());
    }));
    return reactor;
  }

 private:
  const StoreMap& stores_;
};

std::string read_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(std::string("cannot read the TLS ") + what + " " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::shared_ptr<grpc::ServerCredentials> credentials(const ServerOptions& o) {
  if (o.tls_cert.empty() && o.tls_key.empty()) return grpc::InsecureServerCredentials();
  if (o.tls_cert.empty() || o.tls_key.empty()) {
    throw InvalidArgument("TLS needs both a certificate and a key");
  }
  grpc::SslServerCredentialsOptions ssl(
      o.tls_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                       : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  if (!o.tls_ca.empty()) ssl.pem_root_certs = read_file(o.tls_ca, "CA");
  ssl.pem_key_cert_pairs.push_back({read_file(o.tls_key, "key"), read_file(o.tls_cert, "certificate")});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

struct StoreServer::Impl {
  ServerOptions options;
  StoreMap stores;
  std::unique_ptr<internal::Executor> executor;
  Drain drain;
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
  for (auto& [name, s] : stores) {
    auto served = std::make_unique<Served>();
    served->store = std::move(s);
    served->inline_writes = !served->store.store->writes_may_block();
    impl_->stores.emplace(name, std::move(served));
  }
  impl_->executor = std::make_unique<internal::Executor>(impl_->options.worker_threads);
  impl_->store_service = std::make_unique<StoreService>(impl_->stores, *impl_->executor, impl_->drain,
                                                         impl_->options.request_timeout);
  impl_->admin_service = std::make_unique<AdminService>(impl_->stores);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(impl_->options.listen, credentials(impl_->options), &impl_->port);
  builder.SetMaxReceiveMessageSize(static_cast<int>(impl_->options.max_message_size));
  builder.SetMaxSendMessageSize(static_cast<int>(impl_->options.max_message_size));
  builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  builder.RegisterService(impl_->store_service.get());
  builder.RegisterService(impl_->admin_service.get());
  impl_->server = builder.BuildAndStart();
  if (impl_->server == nullptr || impl_->port == 0) {
    throw Unavailable("cannot listen on " + impl_->options.listen +
                      " (address in use, or not an address of this host?)");
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
  impl_->drain.drain(grace);
  impl_->server->Shutdown(std::chrono::system_clock::now());
  impl_->server->Wait();
  impl_->executor.reset();
  for (auto& [name, s] : impl_->stores) s->store.store->close();
  {
    std::lock_guard lock(impl_->mu);
    impl_->stopped = true;
  }
  impl_->cv.notify_all();
}

std::map<std::string, uint64_t> StoreServer::calls() const {
  std::map<std::string, uint64_t> out;
  for (const auto& [name, s] : impl_->stores) out[name] = s->calls.load(std::memory_order_relaxed);
  return out;
}

void StoreServer::wait() {
  std::unique_lock lock(impl_->mu);
  impl_->cv.wait(lock, [this] { return impl_->stopped; });
}

}  // namespace cairn

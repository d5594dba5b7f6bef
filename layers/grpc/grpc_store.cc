#include "layers/grpc/grpc_store.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <sstream>
#include <thread>

#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/log.h"
#include "catalogue/builtin.h"
#include "core/async.h"
#include "core/executor.h"
#include "core/metadata_tag.h"
#include "core/version_list.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/pipeline.h"
#include "layers/grpc/watch_call.h"
#include "layers/grpc/wire.h"

namespace cairn {

namespace {

// The write ids a put's answer says the stored version replaces, as a
// version may hold them (at most kMaxReplaces, never 0): what a peer says
// beyond that is not passed on to other replicas.
std::vector<uint64_t> replaces_of(const rpc::PutResponse& resp) {
  std::vector<uint64_t> out;
  for (uint64_t w : resp.replaces()) {
    if (w != 0 && out.size() < kMaxReplaces) out.push_back(w);
  }
  return out;
}


std::string join(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const std::string& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

// Runs a user's callback on a gRPC thread: what it throws is logged, never
// let loose in gRPC (which would terminate the process).
template <typename Done, typename... Args>
void run_callback(const std::string& where, Done& done, Args&&... args) {
  try {
    done(std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    log(LogLevel::kError, where + ": an async callback threw: " + e.what());
  } catch (...) {
    log(LogLevel::kError, where + ": an async callback threw");
  }
}

// Retries back off exponentially up to this.
constexpr std::chrono::milliseconds kMaxBackoff{2000};

// Several targets travel as one "ipv4:a:p,b:p" URI: each must be a.b.c.d:port.
void check_ipv4_target(const std::string& t) {
  const size_t colon = t.rfind(':');
  int dots = 0;
  bool ok = colon != std::string::npos && colon > 0 && colon + 1 < t.size();
  for (size_t i = 0; ok && i < t.size(); ++i) {
    if (i == colon) continue;
    if (t[i] == '.' && i < colon) {
      ++dots;
    } else if (t[i] < '0' || t[i] > '9') {
      ok = false;
    }
  }
  if (!ok || dots != 3) {
    throw InvalidArgument("grpc: target '" + t +
                          "': several targets must each be an IPv4 address and port "
                          "(a.b.c.d:port); for host names, give one name that resolves to all");
  }
}

}  // namespace

struct GrpcStore::Impl {
  GrpcOptions options;
  std::string where;  // for messages: "grpc 127.0.0.1:7070 store 'default'"
  std::string authorization;  // "Bearer TOKEN", or empty
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<rpc::Store::Stub> stub;
  std::unique_ptr<rpc::Admin::Stub> admin;
  // The async calls' stream (options.pipeline, one target); null: a unary
  // call each.
  std::unique_ptr<internal::Pipeline> pipeline;
  std::atomic<bool> closed{false};

  // Callback calls in flight. The store waits for them before it goes, so
  // a callback never drops the last reference to the channel (a gRPC
  // deadlock, #37198) and never touches a destroyed store.
  std::mutex inflight_mu;
  std::condition_variable inflight_cv;
  int inflight = 0;  // guarded by inflight_mu
  // Caches' Watch streams, closed with the store.
  std::vector<std::weak_ptr<internal::WatchLink>> watches;  // guarded by inflight_mu

  void start_async() {
    std::lock_guard lock(inflight_mu);
    ++inflight;
  }
  // The last thing a callback does: notifying under the lock means the
  // waiter cannot destroy the condition variable before we are done.
  void end_async() {
    std::lock_guard lock(inflight_mu);
    --inflight;
    inflight_cv.notify_all();
  }
  void wait_async() {
    std::unique_lock lock(inflight_mu);
    inflight_cv.wait(lock, [this] { return inflight == 0; });
  }

  void close() {
    closed.store(true);
    if (pipeline) pipeline->close();
    std::vector<std::weak_ptr<internal::WatchLink>> open;
    {
      std::lock_guard lock(inflight_mu);
      open.swap(watches);
    }
    for (auto& w : open) {
      if (auto link = w.lock()) link->close();
    }
  }

  void check_open() const {
    if (closed.load(std::memory_order_relaxed)) {
      throw FailedPrecondition(where + ": store is closed");
    }
  }
  // check_open() for an async call: false, with the error handed to
  // `done`, when the store is closed.
  template <typename T>
  bool open_for(const Callback<T>& done) const {
    if (!closed.load(std::memory_order_relaxed)) return true;
    done(T{}, std::make_exception_ptr(FailedPrecondition(where + ": store is closed")));
    return false;
  }

  void prepare(grpc::ClientContext* ctx, std::chrono::milliseconds timeout) const {
    ctx->set_deadline(std::chrono::system_clock::now() + timeout);
    if (!authorization.empty()) ctx->AddMetadata("authorization", authorization);
  }

  // Runs a blocking call with retries on UNAVAILABLE (if `retry`), and
  // rethrows a failure as the cairn error it carries.
  template <typename Call>
  void call(const char* what, bool retry, Call&& attempt) const {
    check_open();
    std::chrono::milliseconds backoff = options.backoff;
    for (int i = 0;; ++i) {
      grpc::ClientContext ctx;
      prepare(&ctx, options.timeout);
      const grpc::Status status = attempt(&ctx);
      if (status.ok()) return;
      if (retry && status.error_code() == grpc::StatusCode::UNAVAILABLE && i < options.retries) {
        std::this_thread::sleep_for(backoff);
        backoff = std::min(backoff * 2, kMaxBackoff);
        continue;
      }
      internal::throw_status(status, where + ": " + what);
    }
  }
};

GrpcStore::GrpcStore(GrpcOptions options) : impl_(std::make_shared<Impl>()) {
  impl_->options = std::move(options);
  const GrpcOptions& o = impl_->options;
  if (o.targets.empty()) throw InvalidArgument("grpc: no targets");
  impl_->where = "grpc " + join(o.targets, ",") + " store '" + o.store + "'" +
                 (o.replica ? " (replica)" : "");

  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(static_cast<int>(o.max_message_size));
  args.SetMaxSendMessageSize(static_cast<int>(o.max_message_size));
  // Keep idle connections warm, so the first call after a pause does not
  // pay for a reconnect.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  // Each GrpcStore has connections of its own: gRPC would otherwise share
  // one TCP connection among every channel of the process to a server.
  args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  // round_robin also spreads calls over the addresses one DNS name
  // resolves to (pick_first, gRPC's default, would use only the first).
  args.SetLoadBalancingPolicyName("round_robin");
  // Reconnect to a server that went away within a second of its return:
  // gRPC's default backoff grows to two minutes, during which calls (and
  // the routing layer's probes) fail at once although the server is back.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
  std::string target = o.targets.front();
  if (o.targets.size() > 1) {
    for (const std::string& t : o.targets) check_ipv4_target(t);
    target = "ipv4:" + join(o.targets, ",");
  }
  if (!o.tls_server_name.empty()) args.SetSslTargetNameOverride(o.tls_server_name);

  if (o.max_message_size < 1024 || o.max_message_size > static_cast<size_t>(INT_MAX)) {
    throw InvalidArgument(impl_->where + ": max_message_size must be from 1 KiB to 2 GiB - 1");
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    throw InvalidArgument(impl_->where + ": TLS: tls_cert and tls_key go together (" +
                          (o.tls_cert.empty() ? "tls_cert" : "tls_key") + " is missing)");
  }
  // Any TLS setting means TLS: never a silent fall back to plaintext.
  const bool tls = !o.tls_ca.empty() || !o.tls_cert.empty() || !o.tls_server_name.empty();
  if (!o.token.empty()) {
    // A token is a secret: in the clear only to this machine.
    for (const std::string& t : o.targets) {
      if (!tls && !internal::loopback_target(t)) {
        throw InvalidArgument(impl_->where + ": a token goes only over TLS (or to a loopback "
                              "address); give the engine tls_ca, or reach " + t + " over TLS");
      }
    }
    impl_->authorization = "Bearer " + o.token;
  }
  std::shared_ptr<grpc::ChannelCredentials> creds;
  if (!tls) {
    creds = grpc::InsecureChannelCredentials();
  } else {
    grpc::SslCredentialsOptions ssl;
    if (!o.tls_ca.empty()) ssl.pem_root_certs = internal::read_tls_file(o.tls_ca, "CA");
    if (!o.tls_cert.empty()) {
      ssl.pem_cert_chain = internal::read_tls_file(o.tls_cert, "certificate");
      ssl.pem_private_key = internal::read_tls_file(o.tls_key, "key");
    }
    creds = grpc::SslCredentials(ssl);
  }
  impl_->channel = grpc::CreateCustomChannel(target, creds, args);
  impl_->stub = rpc::Store::NewStub(impl_->channel);
  impl_->admin = rpc::Admin::NewStub(impl_->channel);
  // One stream goes to one server: with several targets the async calls
  // stay unary, so round-robin still spreads them.
  if (o.pipeline && o.targets.size() == 1) {
    internal::Pipeline::Options p;
    p.where = impl_->where;
    p.timeout = o.timeout;
    p.max_batch_bytes = o.max_message_size / 2;
    Impl* impl = impl_.get();
    p.stream_started = [impl] { impl->start_async(); };
    p.stream_ended = [impl] { impl->end_async(); };
    p.authorization = impl_->authorization;
    impl_->pipeline = std::make_unique<internal::Pipeline>(impl_->stub.get(), std::move(p));
  }
}

// The last reference to a store may go on a gRPC thread (a routing
// layer's call finishing after its store closed): close() does not wait
// there.
GrpcStore::~GrpcStore() { close(); }

void GrpcStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  rpc::GetRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  req.set_key(std::string(key));
  rpc::GetResponse resp;
  impl_->call("get", true, [&](grpc::ClientContext* ctx) {
    resp.Clear();
    return impl_->stub->Get(ctx, req, &resp);
  });
  out->clear();
  for (const rpc::Version& v : resp.versions()) out->push_back(internal::from_wire(v));
}

std::map<std::string, std::vector<Versioned>> GrpcStore::get_all(
    std::span<const std::string> keys) {
  rpc::GetAllRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  for (const std::string& k : keys) req.add_keys(k);
  rpc::GetAllResponse resp;
  impl_->call("get_all", true, [&](grpc::ClientContext* ctx) {
    resp.Clear();
    return impl_->stub->GetAll(ctx, req, &resp);
  });
  std::map<std::string, std::vector<Versioned>> out;
  for (const rpc::KeyVersions& kv : resp.found()) {
    std::vector<Versioned>& versions = out[kv.key()];
    for (const rpc::Version& v : kv.versions()) versions.push_back(internal::from_wire(v));
  }
  return out;
}

PutResult GrpcStore::put_stamped(std::string_view key, const Versioned& value,
                                 PutReply* stored) {
  rpc::PutRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  req.set_key(std::string(key));
  internal::to_wire(value, req.mutable_version());
  // Retried, a write keeps one id: if the first attempt landed, the retry
  // is known for a copy of it (stored once, answered stored) wherever the
  // two meet, even when they took different homes.
  if (impl_->options.retry_writes && value.write_id == 0) {
    req.mutable_version()->set_write_id(internal::new_write_id());
  }
  rpc::PutResponse resp;
  impl_->call("put", impl_->options.retry_writes, [&](grpc::ClientContext* ctx) {
    return impl_->stub->Put(ctx, req, &resp);
  });
  if (resp.obsolete()) return PutResult::kObsolete;
  if (stored != nullptr && resp.has_clock()) {
    stored->stored = internal::from_wire(resp.clock());
    stored->replaces = replaces_of(resp);
  }
  return PutResult::kStored;
}

bool GrpcStore::remove(std::string_view key, const VectorClock& version) {
  rpc::DeleteRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  req.set_key(std::string(key));
  internal::to_wire(version, req.mutable_clock());
  rpc::DeleteResponse resp;
  impl_->call("delete", impl_->options.retry_writes, [&](grpc::ClientContext* ctx) {
    return impl_->stub->Delete(ctx, req, &resp);
  });
  return resp.deleted();
}

std::vector<VectorClock> GrpcStore::versions(std::string_view key) {
  rpc::GetRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  req.set_key(std::string(key));
  rpc::GetVersionsResponse resp;
  impl_->call("get_versions", true, [&](grpc::ClientContext* ctx) {
    resp.Clear();
    return impl_->stub->GetVersions(ctx, req, &resp);
  });
  std::vector<VectorClock> out;
  for (const rpc::Clock& c : resp.clocks()) out.push_back(internal::from_wire(c));
  return out;
}

namespace {

// Reads a server's Scan stream. Holds the store's state, so it may outlive
// the store; after close() it fails like every iterator.
class GrpcIterator final : public CancellableIterator {
 public:
  explicit GrpcIterator(std::shared_ptr<GrpcStore::Impl> impl, const PartitionFilter* only = nullptr)
      : impl_(std::move(impl)) {
    rpc::ScanRequest req;
    req.set_store(impl_->options.store);
    if (only != nullptr) {
      req.set_ring_partitions(only->ring_partitions);
      for (uint32_t p : only->partitions) req.add_partition_ids(p);
      req.set_max_bytes_per_second(only->max_bytes_per_second);
    }
    req.set_replica(impl_->options.replica);
    if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
    impl_->prepare(&ctx_, impl_->options.scan_timeout);
    reader_ = impl_->stub->Scan(&ctx_, req);
  }
  ~GrpcIterator() override {
    if (!done_) ctx_.TryCancel();  // stop the server's stream early
    if (reader_) reader_->Finish();
  }

  bool next() override {
    impl_->check_open();
    if (done_) return false;
    if (!reader_->Read(&msg_)) {
      done_ = true;
      const grpc::Status status = reader_->Finish();
      reader_.reset();
      if (!status.ok()) internal::throw_status(status, impl_->where + ": scan");
      return false;
    }
    versions_.clear();
    for (const rpc::Version& v : msg_.versions()) versions_.push_back(internal::from_wire(v));
    return true;
  }
  std::string_view key() const override { return msg_.key(); }
  const std::vector<Versioned>& versions() const override { return versions_; }
  void cancel() override { ctx_.TryCancel(); }

 private:
  std::shared_ptr<GrpcStore::Impl> impl_;
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<rpc::KeyVersions>> reader_;
  rpc::KeyVersions msg_;
  std::vector<Versioned> versions_;
  bool done_ = false;
};

// One callback call in flight: owns its context, request and response, and
// deletes itself after the user's callback — the last thing it touches.
template <typename Req, typename Resp>
struct AsyncCall {
  grpc::ClientContext ctx;
  Req req;
  Resp resp;
};

// Starts a callback call: `start(ctx, req, resp, on_status)` issues it on a
// stub; when it completes, `read(resp)` makes the result (or throws) and
// `done(result, error)` gets it. Result is void-like when Read returns
// nothing: done then takes only the error.
template <typename Req, typename Resp, typename Start, typename Read, typename Done>
void start_async(GrpcStore::Impl* impl, const char* what, Req req, Start&& start, Read read,
                 Done done) {
  auto* call = new AsyncCall<Req, Resp>;
  call->req = std::move(req);
  impl->prepare(&call->ctx, impl->options.timeout);
  impl->start_async();
  start(&call->ctx, &call->req, &call->resp,
        [call, impl, what, read = std::move(read), done = std::move(done)](grpc::Status status) {
          internal::mark_completion_thread();
          using Result = std::invoke_result_t<Read, Resp&>;
          std::exception_ptr error;
          if constexpr (std::is_void_v<Result>) {
            try {
              if (!status.ok()) internal::throw_status(status, impl->where + ": " + what);
              read(call->resp);
            } catch (...) {
              error = std::current_exception();
            }
            delete call;
            run_callback(impl->where, done, error);
          } else {
            Result result{};
            try {
              if (!status.ok()) internal::throw_status(status, impl->where + ": " + what);
              result = read(call->resp);
            } catch (...) {
              error = std::current_exception();
            }
            delete call;
            run_callback(impl->where, done, std::move(result), error);
          }
          impl->end_async();
        });
}

// Sends `request` on the engine's pipeline; `read(response)` makes the
// result from the response of `kind`.
template <typename T, typename Read>
void pipelined(GrpcStore::Impl* impl, rpc::StreamRequest request,
               rpc::StreamResponse::ResultCase kind, Read read, Callback<T> done) {
  impl->pipeline->send(std::move(request), [impl, kind, read = std::move(read), done = std::move(
                                                                                     done)](
                                               rpc::StreamResponse* response, std::exception_ptr e) {
    if (e) return internal::fail(done, std::move(e));
    T result{};
    try {
      if (response->result_case() != kind) {
        throw Internal(impl->where + ": the server answered a request with another kind of response");
      }
      result = read(*response);
    } catch (...) {
      return internal::fail(done, std::current_exception());
    }
    done(std::move(result), nullptr);
  });
}

std::vector<Versioned> versions_of(const rpc::GetResponse& resp) {
  std::vector<Versioned> out;
  for (const rpc::Version& v : resp.versions()) out.push_back(internal::from_wire(v));
  return out;
}

std::map<std::string, std::vector<Versioned>> found_of(const rpc::GetAllResponse& resp) {
  std::map<std::string, std::vector<Versioned>> out;
  for (const rpc::KeyVersions& kv : resp.found()) {
    std::vector<Versioned>& versions = out[kv.key()];
    for (const rpc::Version& v : kv.versions()) versions.push_back(internal::from_wire(v));
  }
  return out;
}

std::vector<VectorClock> clocks_of(const rpc::GetVersionsResponse& resp) {
  std::vector<VectorClock> out;
  for (const rpc::Clock& c : resp.clocks()) out.push_back(internal::from_wire(c));
  return out;
}

PutReply reply_of(const rpc::PutResponse& resp, const VectorClock& sent) {
  PutReply reply;
  if (resp.obsolete()) {
    reply.result = PutResult::kObsolete;
  } else {
    reply.stored = resp.has_clock() ? internal::from_wire(resp.clock()) : sent;
    reply.replaces = replaces_of(resp);
  }
  return reply;
}

}  // namespace

std::unique_ptr<StoreIterator> GrpcStore::scan() {
  impl_->check_open();
  return std::make_unique<GrpcIterator>(impl_);
}

std::unique_ptr<CancellableIterator> GrpcStore::scan_partitions(const PartitionFilter& only) {
  impl_->check_open();
  return std::make_unique<GrpcIterator>(impl_, &only);
}

// The stub's callback method `method` as a start function.
#define CAIRN_ASYNC(stub, method)                                  \
  [impl = impl_.get()](auto* c, auto* rq, auto* rs, auto cb) {    \
    impl->stub->async()->method(c, rq, rs, std::move(cb));          \
  }

void GrpcStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  if (!impl_->open_for(done)) return;
  rpc::GetRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  req.set_key(std::string(key));
  if (impl_->pipeline) {
    rpc::StreamRequest sr;
    *sr.mutable_get() = std::move(req);
    return pipelined<std::vector<Versioned>>(
        impl_.get(), std::move(sr), rpc::StreamResponse::kGet,
        [](rpc::StreamResponse& r) { return versions_of(r.get()); }, std::move(done));
  }
  start_async<rpc::GetRequest, rpc::GetResponse>(
      impl_.get(), "get", std::move(req), CAIRN_ASYNC(stub, Get),
      [](rpc::GetResponse& resp) { return versions_of(resp); }, std::move(done));
}

void GrpcStore::async_get_all(std::vector<std::string> keys,
                              Callback<std::map<std::string, std::vector<Versioned>>> done) {
  if (!impl_->open_for(done)) return;
  rpc::GetAllRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  for (std::string& k : keys) req.add_keys(std::move(k));
  if (impl_->pipeline) {
    rpc::StreamRequest sr;
    *sr.mutable_get_all() = std::move(req);
    return pipelined<std::map<std::string, std::vector<Versioned>>>(
        impl_.get(), std::move(sr), rpc::StreamResponse::kGetAll,
        [](rpc::StreamResponse& r) { return found_of(r.get_all()); }, std::move(done));
  }
  start_async<rpc::GetAllRequest, rpc::GetAllResponse>(
      impl_.get(), "get_all", std::move(req), CAIRN_ASYNC(stub, GetAll),
      [](rpc::GetAllResponse& resp) { return found_of(resp); }, std::move(done));
}

void GrpcStore::async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) {
  if (!impl_->open_for(done)) return;
  rpc::GetRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  req.set_key(std::string(key));
  if (impl_->pipeline) {
    rpc::StreamRequest sr;
    *sr.mutable_get_versions() = std::move(req);
    return pipelined<std::vector<VectorClock>>(
        impl_.get(), std::move(sr), rpc::StreamResponse::kGetVersions,
        [](rpc::StreamResponse& r) { return clocks_of(r.get_versions()); }, std::move(done));
  }
  start_async<rpc::GetRequest, rpc::GetVersionsResponse>(
      impl_.get(), "get_versions", std::move(req), CAIRN_ASYNC(stub, GetVersions),
      [](rpc::GetVersionsResponse& resp) { return clocks_of(resp); }, std::move(done));
}

void GrpcStore::async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) {
  if (!impl_->open_for(done)) return;
  rpc::PutRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  req.set_key(std::string(key));
  internal::to_wire(value, req.mutable_version());
  if (impl_->pipeline) {
    rpc::StreamRequest sr;
    *sr.mutable_put() = std::move(req);
    return pipelined<PutReply>(
        impl_.get(), std::move(sr), rpc::StreamResponse::kPut,
        [clock = value.clock](rpc::StreamResponse& r) { return reply_of(r.put(), clock); },
        std::move(done));
  }
  start_async<rpc::PutRequest, rpc::PutResponse>(
      impl_.get(), "put", std::move(req), CAIRN_ASYNC(stub, Put),
      [clock = value.clock](rpc::PutResponse& resp) { return reply_of(resp, clock); },
      std::move(done));
}

void GrpcStore::async_remove(std::string_view key, const VectorClock& version,
                             Callback<bool> done) {
  if (!impl_->open_for(done)) return;
  rpc::DeleteRequest req;
  req.set_store(impl_->options.store);
  req.set_replica(impl_->options.replica);
  if (impl_->options.replica) req.set_metadata_version(static_cast<uint64_t>(internal::metadata_tag()));
  req.set_key(std::string(key));
  internal::to_wire(version, req.mutable_clock());
  if (impl_->pipeline) {
    rpc::StreamRequest sr;
    *sr.mutable_delete_() = std::move(req);
    return pipelined<bool>(
        impl_.get(), std::move(sr), rpc::StreamResponse::kDelete,
        [](rpc::StreamResponse& r) { return r.delete_().deleted(); }, std::move(done));
  }
  start_async<rpc::DeleteRequest, rpc::DeleteResponse>(
      impl_.get(), "delete", std::move(req), CAIRN_ASYNC(stub, Delete),
      [](rpc::DeleteResponse& resp) { return resp.deleted(); }, std::move(done));
}

void GrpcStore::async_put_hint(const Hint& hint, std::function<void(std::exception_ptr)> done) {
  if (impl_->closed.load(std::memory_order_relaxed)) {
    return done(std::make_exception_ptr(FailedPrecondition(impl_->where + ": store is closed")));
  }
  rpc::Hint req;
  internal::to_wire(hint, &req);
  start_async<rpc::Hint, rpc::PutHintResponse>(
      impl_.get(), "put_hint", std::move(req), CAIRN_ASYNC(admin, PutHint),
      [](rpc::PutHintResponse&) {}, std::move(done));
}

#undef CAIRN_ASYNC

AtomicResult GrpcStore::atomic(std::string_view key, std::string_view function,
                              std::string_view argument) {
  rpc::AtomicRequest req;
  req.set_store(impl_->options.store);
  req.set_key(std::string(key));
  req.set_function(std::string(function));
  req.set_argument(std::string(argument));
  req.set_at_home(impl_->options.replica);
  rpc::AtomicResponse resp;
  impl_->call("atomic", false, [&](grpc::ClientContext* ctx) {
    resp.Clear();
    return impl_->stub->Atomic(ctx, req, &resp);
  });
  AtomicResult r;
  r.applied = resp.applied();
  if (resp.has_value()) r.value = resp.value();
  r.clock = internal::from_wire(resp.clock());
  return r;
}

std::shared_ptr<internal::WatchLink> GrpcStore::open_watch(internal::Coherence mode,
                                                          std::chrono::milliseconds lease,
                                                          internal::WatchLink::Handler handler) {
  if (impl_->options.targets.size() != 1) {
    throw InvalidArgument(impl_->where + ": a cache's stream goes to one node, not " +
                          std::to_string(impl_->options.targets.size()));
  }
  impl_->check_open();
  Impl* impl = impl_.get();
  auto link = internal::open_grpc_watch(
      impl_->stub.get(), impl_->where, impl_->options.store, mode, lease, std::move(handler),
      [impl] { impl->start_async(); }, [impl] { impl->end_async(); }, impl_->authorization);
  bool closed_meanwhile;
  {
    std::lock_guard lock(impl_->inflight_mu);
    std::erase_if(impl_->watches, [](const auto& w) { return w.expired(); });
    impl_->watches.push_back(link);
    closed_meanwhile = impl_->closed.load();
  }
  if (closed_meanwhile) link->close();
  return link;
}

void GrpcStore::close() {
  // New calls are refused at once. Then the calls and streams in flight
  // end, waited for here, or, on a completion thread (a store closed or
  // dropped in a callback, such as a routing layer's on a gRPC thread),
  // on a thread that may wait: they may need this very thread to end.
  impl_->closed.store(true);
  internal::run_where_waiting_is_safe([impl = impl_] {
    impl->close();
    impl->wait_async();
  });
}

std::string GrpcStore::describe() const {
  return impl_->where + " (timeout " + std::to_string(impl_->options.timeout.count()) +
         " ms, " + std::to_string(impl_->options.retries) + " retries" +
         (impl_->options.targets.size() > 1 ? ", round-robin" : "") +
         (impl_->options.tls_ca.empty() ? "" : ", TLS") + ")";
}

std::unique_ptr<Store> open_grpc_store(GrpcOptions options) {
  return std::make_unique<GrpcStore>(std::move(options));
}

namespace internal {

std::string read_tls_file(const std::string& path, const char* what) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(std::string("cannot read the TLS ") + what + " " + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

bool loopback_target(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]";
}

}  // namespace internal

std::unique_ptr<Store> make_grpc_engine(const Params& p) {
  GrpcOptions o;
  o.store = p.get_string("store", p.store());
  // Below a client's `route`, each copy of this layer reaches one node:
  // its targets default to that node's address, and it talks to the
  // node's replica, never to a routing layer of the node's own.
  const NodeInfo* routed = p.routed_node();
  if (routed != nullptr) {
    o.replica = true;
    if (p.has("targets")) {
      p.fail("targets", "below `route` the targets are the cluster's nodes; leave them out");
    }
    o.targets.push_back(routed->address);
  } else {
    const Json targets = p.get_json("targets");
    if (targets.is_string()) {
      o.targets.push_back(targets.as_string());
    } else if (targets.is_array()) {
      for (const Json& t : targets.as_array()) {
        if (!t.is_string()) p.fail("targets", "expected host:port strings");
        o.targets.push_back(t.as_string());
      }
    }
    if (o.targets.empty()) p.fail("targets", "expected host:port or a list of them");
  }
  o.timeout = std::chrono::milliseconds(p.get_int("timeout_ms", o.timeout.count(), 1, 3600000));
  o.retries = static_cast<int>(p.get_int("retries", o.retries, 0, 100));
  o.backoff = std::chrono::milliseconds(p.get_int("backoff_ms", o.backoff.count(), 0, 60000));
  o.retry_writes = p.get_bool("retry_writes", o.retry_writes);
  o.pipeline = p.get_bool("pipeline", o.pipeline);
  o.max_message_size = p.get_bytes("max_message_size", o.max_message_size, 1 << 20, 1u << 31);
  o.tls_ca = p.get_string("tls_ca", "");
  o.tls_cert = p.get_string("tls_cert", "");
  o.tls_key = p.get_string("tls_key", "");
  o.tls_server_name = p.get_string("tls_server_name", "");
  // The token: from the config, from a file it names, or from the
  // environment's CAIRN_TOKEN (for the CLI and scripts).
  o.token = p.get_string("token", "");
  if (const std::string file = p.get_string("token_file", ""); !file.empty()) {
    if (!o.token.empty()) p.fail("token_file", "give `token` or `token_file`, not both");
    std::ifstream in(file);
    if (!in) p.fail("token_file", "cannot read " + file);
    std::getline(in, o.token);
    if (o.token.empty()) p.fail("token_file", file + " holds no token on its first line");
  }
  if (o.token.empty()) {
    if (const char* env = std::getenv("CAIRN_TOKEN"); env != nullptr) o.token = env;
  }
  return std::make_unique<GrpcStore>(std::move(o));
}

}  // namespace cairn

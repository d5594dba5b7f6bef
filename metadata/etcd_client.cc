#include "metadata/etcd_client.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "cairn/errors.h"
#include "metadata/etcd_rpc.grpc.pb.h"

namespace cairn::internal {

namespace {

namespace pb = etcdserverpb;

EtcdClient::Entry entry_of(const mvccpb::KeyValue& kv) {
  return {kv.key(), kv.value(), kv.create_revision(), kv.mod_revision(), kv.lease()};
}

bool worth_another_endpoint(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED;
}

}  // namespace

struct EtcdClient::Impl {
  Options options;
  std::vector<std::shared_ptr<grpc::Channel>> channels;  // by endpoint
  std::vector<std::unique_ptr<pb::KV::Stub>> kv;
  std::vector<std::unique_ptr<pb::Lease::Stub>> lease;
  std::atomic<size_t> current{0};  // the endpoint that answered last

  std::vector<Entry> range(std::string_view prefix, int64_t* revision) {
    pb::RangeRequest req;
    req.set_key(std::string(prefix));
    req.set_range_end(prefix_end(prefix));
    pb::RangeResponse resp;
    call("range", [&](size_t i, grpc::ClientContext* ctx) { return kv[i]->Range(ctx, req, &resp); });
    std::vector<Entry> out;
    out.reserve(static_cast<size_t>(resp.kvs_size()));
    for (const mvccpb::KeyValue& e : resp.kvs()) out.push_back(entry_of(e));
    if (revision != nullptr) *revision = resp.header().revision();
    return out;
  }

  // Runs `call(endpoint, ctx)` against the endpoints in turn, starting with
  // the one that answered last, until one answers; throws what failed.
  template <typename Call>
  void call(const char* what, Call&& call) {
    std::string failures;
    const size_t n = channels.size();
    const size_t first = current.load();
    for (size_t k = 0; k < n; ++k) {
      const size_t i = (first + k) % n;
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + options.timeout);
      // Waits out a reconnection (up to the deadline) instead of failing
      // at once while the channel backs off.
      ctx.set_wait_for_ready(true);
      const grpc::Status st = call(i, &ctx);
      if (st.ok()) {
        current.store(i);
        return;
      }
      const std::string why =
          "etcd " + std::string(what) + " at " + options.endpoints[i] + ": " + st.error_message();
      if (!worth_another_endpoint(st.error_code())) {
        if (st.error_code() == grpc::StatusCode::NOT_FOUND) throw NotFound(why);
        if (st.error_code() == grpc::StatusCode::INVALID_ARGUMENT) throw InvalidArgument(why);
        throw Unavailable(why);
      }
      failures += (failures.empty() ? "" : "; ") + options.endpoints[i] + ": " +
                  (st.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED
                       ? "no answer in " + std::to_string(options.timeout.count()) + " ms"
                       : st.error_message());
    }
    throw Unavailable("etcd " + std::string(what) + ": no endpoint answered (" + failures + ")");
  }
};

EtcdClient::EtcdClient(Options options) : impl_(std::make_shared<Impl>()) {
  if (options.endpoints.empty()) throw InvalidArgument("etcd: no endpoints");
  impl_->options = std::move(options);
  for (const std::string& e : impl_->options.endpoints) {
    // Reconnect within 2 s of etcd coming back (gRPC's default backoff
    // grows to 2 minutes), so that a watch resumes and a node sees etcd
    // again soon. A starting etcd accepts connections before it serves
    // them: a connection attempt that gets no answer is given up after
    // 1 s (gRPC's default: 20 s), and tried again.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
    auto channel = grpc::CreateCustomChannel(e, grpc::InsecureChannelCredentials(), args);
    impl_->kv.push_back(pb::KV::NewStub(channel));
    impl_->lease.push_back(pb::Lease::NewStub(channel));
    impl_->channels.push_back(std::move(channel));
  }
}

EtcdClient::~EtcdClient() = default;

std::string EtcdClient::prefix_end(std::string_view prefix) {
  std::string end(prefix);
  while (!end.empty()) {
    auto& last = reinterpret_cast<unsigned char&>(end.back());
    if (last < 0xff) {
      ++last;
      return end;
    }
    end.pop_back();
  }
  return std::string(1, '\0');  // every key (etcd's "\0" range_end)
}

std::vector<EtcdClient::Entry> EtcdClient::get_prefix(std::string_view prefix,
                                                      int64_t* revision) {
  return impl_->range(prefix, revision);
}

std::optional<EtcdClient::Entry> EtcdClient::get(std::string_view key) {
  pb::RangeRequest req;
  req.set_key(std::string(key));
  pb::RangeResponse resp;
  impl_->call("range", [&](size_t i, grpc::ClientContext* ctx) {
    return impl_->kv[i]->Range(ctx, req, &resp);
  });
  if (resp.kvs_size() == 0) return std::nullopt;
  return entry_of(resp.kvs(0));
}

bool EtcdClient::commit_if(std::string_view guard, int64_t expected,
                           std::span<const Write> writes, int64_t* revision) {
  pb::TxnRequest req;
  pb::Compare* cmp = req.add_compare();
  cmp->set_key(std::string(guard));
  cmp->set_target(pb::Compare::MOD);
  cmp->set_result(pb::Compare::EQUAL);
  cmp->set_mod_revision(expected);
  for (const Write& w : writes) {
    pb::RequestOp* op = req.add_success();
    if (w.value) {
      pb::PutRequest* put = op->mutable_request_put();
      put->set_key(w.key);
      put->set_value(*w.value);
      put->set_lease(w.lease);
    } else {
      op->mutable_request_delete_range()->set_key(w.key);
    }
  }
  pb::TxnResponse resp;
  impl_->call("txn", [&](size_t i, grpc::ClientContext* ctx) {
    return impl_->kv[i]->Txn(ctx, req, &resp);
  });
  if (revision != nullptr) *revision = resp.header().revision();
  return resp.succeeded();
}

int64_t EtcdClient::put(std::string_view key, std::string_view value, int64_t lease) {
  pb::PutRequest req;
  req.set_key(std::string(key));
  req.set_value(std::string(value));
  req.set_lease(lease);
  pb::PutResponse resp;
  impl_->call("put", [&](size_t i, grpc::ClientContext* ctx) {
    return impl_->kv[i]->Put(ctx, req, &resp);
  });
  return resp.header().revision();
}

void EtcdClient::compact(int64_t revision) {
  pb::CompactionRequest req;
  req.set_revision(revision);
  req.set_physical(true);
  pb::CompactionResponse resp;
  impl_->call("compact", [&](size_t i, grpc::ClientContext* ctx) {
    return impl_->kv[i]->Compact(ctx, req, &resp);
  });
}

int64_t EtcdClient::grant_lease(std::chrono::seconds ttl) {
  pb::LeaseGrantRequest req;
  req.set_ttl(ttl.count());
  pb::LeaseGrantResponse resp;
  impl_->call("lease grant", [&](size_t i, grpc::ClientContext* ctx) {
    return impl_->lease[i]->LeaseGrant(ctx, req, &resp);
  });
  if (!resp.error().empty()) throw Unavailable("etcd lease grant: " + resp.error());
  return resp.id();
}

std::chrono::seconds EtcdClient::keep_alive(int64_t lease) {
  pb::LeaseKeepAliveResponse resp;
  impl_->call("lease keep-alive", [&](size_t i, grpc::ClientContext* ctx) {
    auto stream = impl_->lease[i]->LeaseKeepAlive(ctx);
    pb::LeaseKeepAliveRequest req;
    req.set_id(lease);
    if (stream->Write(req)) {
      stream->WritesDone();
      stream->Read(&resp);
    }
    return stream->Finish();
  });
  if (resp.ttl() <= 0) throw NotFound("etcd lease " + std::to_string(lease) + " has expired");
  return std::chrono::seconds(resp.ttl());
}

void EtcdClient::revoke(int64_t lease) {
  pb::LeaseRevokeRequest req;
  req.set_id(lease);
  pb::LeaseRevokeResponse resp;
  impl_->call("lease revoke", [&](size_t i, grpc::ClientContext* ctx) {
    return impl_->lease[i]->LeaseRevoke(ctx, req, &resp);
  });
}

namespace {

// A watch's thread: one Watch stream at a time, reopened after a failure
// from the revision after the last one reported.
class WatchThread final : public EtcdClient::Watch {
 public:
  WatchThread(std::shared_ptr<EtcdClient::Impl> client, std::string prefix, int64_t after,
              std::function<void(const EtcdClient::Update&)> on_update,
              std::function<void(const std::string&)> on_error)
      : client_(std::move(client)),
        prefix_(std::move(prefix)),
        next_(after + 1),
        on_update_(std::move(on_update)),
        on_error_(std::move(on_error)),
        thread_([this] { run(); }) {}

  ~WatchThread() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      if (ctx_ != nullptr) ctx_->TryCancel();
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void run() {
    std::chrono::milliseconds backoff(100);
    size_t endpoint = 0;
    for (;;) {
      grpc::ClientContext ctx;
      {
        std::lock_guard lock(mu_);
        if (stopping_) return;
        ctx_ = &ctx;
      }
      const std::string why = stream_once(client_->channels[endpoint], &ctx, &backoff);
      {
        std::lock_guard lock(mu_);
        ctx_ = nullptr;
        if (stopping_) return;
      }
      on_error_("etcd watch of '" + prefix_ + "' at " + client_->options.endpoints[endpoint] +
                ": " + why + "; reconnecting");
      endpoint = (endpoint + 1) % client_->channels.size();
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, backoff, [&] { return stopping_; });
      if (stopping_) return;
      backoff = std::min(backoff * 2, std::chrono::milliseconds(2000));
    }
  }

  // One stream until it breaks; returns why it did.
  std::string stream_once(const std::shared_ptr<grpc::Channel>& channel,
                          grpc::ClientContext* ctx, std::chrono::milliseconds* backoff) {
    auto stream = pb::Watch::NewStub(channel)->Watch(ctx);
    pb::WatchRequest req;
    pb::WatchCreateRequest* create = req.mutable_create_request();
    create->set_key(prefix_);
    create->set_range_end(EtcdClient::prefix_end(prefix_));
    create->set_start_revision(next_);
    if (!stream->Write(req)) return "the stream closed before the watch was created";
    pb::WatchResponse resp;
    while (stream->Read(&resp)) {
      if (resp.created()) {
        *backoff = std::chrono::milliseconds(100);  // connected again
        continue;
      }
      if (resp.compact_revision() > 0) {
        // The revisions after next_ - 1 are gone: start again from what
        // is there now.
        stream->WritesDone();
        ctx->TryCancel();
        stream->Finish();
        return reset() ? "compacted past revision " + std::to_string(next_ - 1) +
                             "; reloaded the prefix"
                       : "compacted, and the prefix could not be reloaded";
      }
      if (resp.canceled()) {
        stream->WritesDone();
        stream->Finish();
        return "canceled by etcd: " + resp.cancel_reason();
      }
      if (resp.events_size() == 0) continue;
      EtcdClient::Update update;
      for (const mvccpb::Event& e : resp.events()) {
        update.events.push_back({e.type() == mvccpb::Event::DELETE, entry_of(e.kv())});
      }
      update.revision = resp.header().revision();
      for (const EtcdClient::Event& e : update.events) {
        next_ = std::max(next_, e.entry.mod_revision + 1);
      }
      on_update_(update);
    }
    const grpc::Status st = stream->Finish();
    return st.ok() ? "the stream ended" : st.error_message();
  }

  bool reset() {
    try {
      EtcdClient::Update update;
      update.reset = true;
      update.snapshot = client_->range(prefix_, &update.revision);
      next_ = update.revision + 1;
      on_update_(update);
      return true;
    } catch (const Error&) {
      return false;
    }
  }

  const std::shared_ptr<EtcdClient::Impl> client_;
  const std::string prefix_;
  int64_t next_;  // the first revision not yet reported; the thread's own
  const std::function<void(const EtcdClient::Update&)> on_update_;
  const std::function<void(const std::string&)> on_error_;

  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;                  // guarded by mu_
  grpc::ClientContext* ctx_ = nullptr;     // the open stream's; guarded by mu_
  std::thread thread_;                     // last: starts once the rest is set
};

}  // namespace

std::unique_ptr<EtcdClient::Watch> EtcdClient::watch_prefix(
    std::string prefix, int64_t after, std::function<void(const Update&)> on_update,
    std::function<void(const std::string&)> on_error) {
  return std::make_unique<WatchThread>(impl_, std::move(prefix), after, std::move(on_update),
                                       std::move(on_error));
}

}  // namespace cairn::internal

#include "layers/grpc/watch_call.h"

#include <deque>
#include <mutex>

#include "core/executor.h"
#include "layers/grpc/wire.h"

namespace cairn::internal {

namespace {

constexpr int kMaxBatch = 1024;

// One Watch stream. Like the pipeline's stream (pipeline.cc), it holds
// itself (AddHold) while writes may still start, and lives until OnDone.
class WatchCall final : public grpc::ClientBidiReactor<rpc::WatchRequests, rpc::WatchEvents>,
                        public WatchLink,
                        public std::enable_shared_from_this<WatchCall> {
 public:
  WatchCall(std::string where, std::string store, WatchLink::Handler handler,
            std::function<void()> ended)
      : where_(std::move(where)), store_(std::move(store)), handler_(std::move(handler)),
        ended_(std::move(ended)) {}

  void authorize(const std::string& value) { ctx_.AddMetadata("authorization", value); }

  void start(rpc::Store::Stub* stub, Coherence mode, std::chrono::milliseconds lease) {
    self_ = shared_from_this();
    rpc::WatchRequest hello;
    hello.mutable_hello()->set_strict(mode == Coherence::kStrict);
    hello.mutable_hello()->set_lease_ms(static_cast<uint32_t>(lease.count()));
    stub->async()->Watch(&ctx_, this);
    AddHold();
    StartRead(&in_);
    StartCall();
    {
      std::lock_guard lock(mu_);
      queued_.push_front(std::move(hello));
      started_ = true;
      if (writing_ || broken_) return;
      take_batch_locked();
    }
    StartWrite(&out_);
  }

  void send(std::vector<WatchOp> ops) override {
    {
      std::lock_guard lock(mu_);
      if (broken_ || closing_) return;
      for (WatchOp& op : ops) {
        rpc::WatchRequest r;
        switch (op.kind) {
          case WatchOp::Kind::kTrack: {
            auto* t = r.mutable_track();
            t->set_id(op.id);
            t->set_store(store_);
            t->set_key(std::move(op.key));
            break;
          }
          case WatchOp::Kind::kUntrack: {
            auto* u = r.mutable_untrack();
            u->set_store(store_);
            u->add_keys(std::move(op.key));
            break;
          }
          case WatchOp::Kind::kAck: r.set_ack(op.id); break;
          case WatchOp::Kind::kPing: r.set_ping(op.id); break;
        }
        queued_.push_back(std::move(r));
      }
      if (!started_ || writing_) return;
      take_batch_locked();
    }
    StartWrite(&out_);
  }

  void close() override {
    {
      std::lock_guard lock(mu_);
      if (closing_) return;
      closing_ = true;
    }
    ctx_.TryCancel();
  }

  void OnWriteDone(bool ok) override {
    mark_completion_thread();
    bool write = false, release = false;
    {
      std::lock_guard lock(mu_);
      writing_ = false;
      if (!ok) broken_ = true;
      if (!broken_ && !queued_.empty()) {
        take_batch_locked();
        write = true;
      } else if (broken_ && !released_) {
        released_ = release = true;
      }
    }
    if (write) StartWrite(&out_);
    if (release) RemoveHold();
  }

  void OnReadDone(bool ok) override {
    mark_completion_thread();
    if (!ok) return fail();
    std::vector<CoherenceEvent> events;
    events.reserve(static_cast<size_t>(in_.events_size()));
    for (rpc::WatchEvent& w : *in_.mutable_events()) {
      CoherenceEvent e;
      e.seq = w.seq();
      switch (w.event_case()) {
        case rpc::WatchEvent::kTracked:
          e.kind = CoherenceEvent::Kind::kTracked;
          e.id = w.tracked().id();
          e.tracked = w.tracked().tracked();
          e.why = w.tracked().why();
          for (const rpc::Clock& c : w.tracked().clocks()) e.clocks.push_back(from_wire(c));
          break;
        case rpc::WatchEvent::kInvalidate:
          e.kind = CoherenceEvent::Kind::kInvalidate;
          e.store = std::move(*w.mutable_invalidate()->mutable_store());
          e.key = std::move(*w.mutable_invalidate()->mutable_key());
          break;
        case rpc::WatchEvent::kPong:
          e.kind = CoherenceEvent::Kind::kPong;
          e.id = w.pong();
          break;
        case rpc::WatchEvent::EVENT_NOT_SET:
          // An event this build does not know: the sequence still counts
          // it, so that the cache sees no gap. Acknowledged like any other.
          e.kind = CoherenceEvent::Kind::kPong;
          e.id = 0;
          break;
      }
      events.push_back(std::move(e));
    }
    in_.Clear();
    handler_.events(events);
    StartRead(&in_);
  }

  void OnDone(const grpc::Status& status) override {
    mark_completion_thread();
    std::string why = status.ok() ? where_ + ": the node ended the watch stream"
                                  : where_ + ": watch stream: " + status.error_message();
    handler_.closed(why);
    const std::function<void()> ended = ended_;
    self_.reset();  // this may go now; gRPC is done with it
    ended();        // the last touch of the engine
  }

 private:
  void take_batch_locked() {
    out_.Clear();
    while (!queued_.empty() && out_.requests_size() < kMaxBatch) {
      *out_.add_requests() = std::move(queued_.front());
      queued_.pop_front();
    }
    writing_ = true;
  }

  void fail() {
    bool release = false;
    {
      std::lock_guard lock(mu_);
      broken_ = true;
      if (!writing_ && !released_) released_ = release = true;
    }
    if (release) RemoveHold();
  }

  const std::string where_;
  const std::string store_;
  const WatchLink::Handler handler_;
  const std::function<void()> ended_;
  std::shared_ptr<WatchCall> self_;  // held until OnDone
  grpc::ClientContext ctx_;
  rpc::WatchRequests out_;
  rpc::WatchEvents in_;
  std::mutex mu_;
  std::deque<rpc::WatchRequest> queued_;  // guarded by mu_
  bool started_ = false;                  // guarded by mu_
  bool writing_ = false;                  // guarded by mu_
  bool broken_ = false;                   // guarded by mu_
  bool released_ = false;                 // guarded by mu_
  bool closing_ = false;                  // guarded by mu_
};

}  // namespace

std::shared_ptr<WatchLink> open_grpc_watch(rpc::Store::Stub* stub, std::string where,
                                           std::string store, Coherence mode,
                                           std::chrono::milliseconds lease,
                                           WatchLink::Handler handler,
                                           std::function<void()> started,
                                           std::function<void()> ended,
                                           const std::string& authorization) {
  started();
  auto call = std::make_shared<WatchCall>(std::move(where), std::move(store), std::move(handler),
                                          std::move(ended));
  if (!authorization.empty()) call->authorize(authorization);
  call->start(stub, mode, lease);
  return call;
}

}  // namespace cairn::internal

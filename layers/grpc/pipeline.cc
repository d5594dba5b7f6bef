#include "layers/grpc/pipeline.h"

#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "core/executor.h"
#include "core/timer.h"
#include "layers/grpc/wire.h"

namespace cairn::internal {

namespace {

using Clock = std::chrono::steady_clock;

// Requests per message at most: the server refuses batches over 10,000.
constexpr int kMaxBatch = 1000;

template <typename E>
std::exception_ptr error_of(E e) {
  return std::make_exception_ptr(std::move(e));
}

// The error a response carries, as the exception the blocking call throws.
std::exception_ptr error_of(const rpc::Error& e, const std::string& where) {
  try {
    throw_error(static_cast<ErrorCode>(e.code()), where + ": " + e.message());
  } catch (...) {
    return std::current_exception();
  }
}

std::exception_ptr error_of(const grpc::Status& status, const std::string& where) {
  if (status.ok()) return error_of(Unavailable(where + ": the stream ended"));
  try {
    throw_status(status, where);
  } catch (...) {
    return std::current_exception();
  }
}

// Runs a completion on a gRPC thread: what it throws is logged, never let
// loose in gRPC (which would terminate the process).
void run(const std::string& where, const Pipeline::Complete& complete,
         rpc::StreamResponse* response, std::exception_ptr error) {
  try {
    complete(response, std::move(error));
  } catch (const std::exception& e) {
    log(LogLevel::kError, where + ": an async callback threw: " + e.what());
  } catch (...) {
    log(LogLevel::kError, where + ": an async callback threw");
  }
}

}  // namespace

class StreamCall;

struct Pipeline::State {
  rpc::Store::Stub* stub;
  Options options;

  std::mutex mu;
  std::condition_variable drained;  // pending went empty
  std::shared_ptr<StreamCall> stream;  // the open stream, if any; guarded by mu
  uint64_t next_id = 1;          // guarded by mu
  uint64_t generation = 0;       // streams opened so far; guarded by mu
  struct Pending {
    Complete complete;
    uint64_t generation;  // the stream that carries it
  };
  std::unordered_map<uint64_t, Pending> pending;              // guarded by mu
  std::deque<std::pair<Clock::time_point, uint64_t>> deadlines;  // in send order; guarded by mu
  bool sweeping = false;  // a sweep is scheduled; guarded by mu
  bool closed = false;    // guarded by mu

  // Erases a pending call. Needs mu.
  void erase(std::unordered_map<uint64_t, Pending>::iterator it) {
    pending.erase(it);
    if (pending.empty()) drained.notify_all();
  }

  // Takes every call of stream `generation` out of `pending`. Needs mu.
  std::vector<Complete> take_generation(uint64_t g) {
    std::vector<Complete> out;
    for (auto it = pending.begin(); it != pending.end();) {
      if (it->second.generation == g) {
        out.push_back(std::move(it->second.complete));
        it = pending.erase(it);
      } else {
        ++it;
      }
    }
    if (pending.empty()) drained.notify_all();
    return out;
  }
};

namespace {

// Fails the calls past their deadline, and schedules the next sweep while
// calls are waiting. Deadlines are in send order (one timeout for all), so
// only the front of the queue is ever looked at.
void sweep(const std::weak_ptr<Pipeline::State>& weak) {
  std::shared_ptr<Pipeline::State> s = weak.lock();
  if (s == nullptr) return;
  std::vector<Pipeline::Complete> expired;
  {
    std::lock_guard lock(s->mu);
    const auto now = Clock::now();
    while (!s->deadlines.empty()) {
      const auto [when, id] = s->deadlines.front();
      auto it = s->pending.find(id);
      if (it == s->pending.end()) {  // answered already
        s->deadlines.pop_front();
        continue;
      }
      if (when > now) break;
      expired.push_back(std::move(it->second.complete));
      s->erase(it);
      s->deadlines.pop_front();
    }
    s->sweeping = !s->deadlines.empty();
    if (s->sweeping) {
      Timer::shared().at(s->deadlines.front().first, [weak] { sweep(weak); });
    }
  }
  for (const auto& complete : expired) {
    run(s->options.where, complete, nullptr,
        error_of(Timeout(s->options.where + ": no answer within " +
                         std::to_string(s->options.timeout.count()) + " ms")));
  }
}

}  // namespace

// One stream. It keeps a hold on itself (gRPC's AddHold) while it may
// still write, so that a write started from outside a reaction never races
// the end of the call; the hold goes once the stream has broken and no
// write is being started.
class StreamCall final : public grpc::ClientBidiReactor<rpc::StreamRequests, rpc::StreamResponses>,
                   public std::enable_shared_from_this<StreamCall> {
 public:
  StreamCall(std::shared_ptr<Pipeline::State> s, uint64_t generation)
      : s_(std::move(s)), generation_(generation) {}

  // Opens the stream, and writes what was queued meanwhile. Called once,
  // outside the state's lock.
  void start() {
    self_ = shared_from_this();
    s_->options.stream_started();
    if (!s_->options.authorization.empty()) ctx_.AddMetadata("authorization", s_->options.authorization);
    s_->stub->async()->Stream(&ctx_, this);
    AddHold();
    StartRead(&in_);
    StartCall();
    {
      std::lock_guard lock(s_->mu);
      started_ = true;
      if (queued_.empty() || writing_ || broken_) return;
      take_batch_locked();
    }
    StartWrite(&out_);
  }

  // Queues a request for the next write; starts one if none is in flight.
  void enqueue(rpc::StreamRequest request) {
    {
      std::lock_guard lock(s_->mu);
      queued_.push_back(std::move(request));
      if (!started_ || writing_ || broken_) return;
      take_batch_locked();
    }
    StartWrite(&out_);
  }

  bool broken() const { return broken_; }  // needs the state's lock

  // Cancels the stream (the engine is closing).
  void cancel() { ctx_.TryCancel(); }

  void OnWriteDone(bool ok) override {
    mark_completion_thread();
    bool write = false, release = false;
    {
      std::lock_guard lock(s_->mu);
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
    std::vector<std::pair<Pipeline::Complete, rpc::StreamResponse>> answered;
    {
      std::lock_guard lock(s_->mu);
      for (rpc::StreamResponse& r : *in_.mutable_responses()) {
        auto it = s_->pending.find(r.id());
        if (it == s_->pending.end()) continue;  // timed out already
        answered.emplace_back(std::move(it->second.complete), std::move(r));
        s_->erase(it);
      }
    }
    in_.Clear();
    StartRead(&in_);
    for (auto& [complete, response] : answered) {
      if (response.result_case() == rpc::StreamResponse::kError) {
        run(s_->options.where, complete, nullptr, error_of(response.error(), s_->options.where));
      } else {
        run(s_->options.where, complete, &response, nullptr);
      }
    }
  }

  void OnDone(const grpc::Status& status) override {
    mark_completion_thread();
    std::vector<Pipeline::Complete> failed;
    {
      std::lock_guard lock(s_->mu);
      failed = s_->take_generation(generation_);
      if (s_->stream.get() == this) s_->stream.reset();
    }
    const std::exception_ptr error = error_of(status, s_->options.where + ": stream");
    for (const auto& complete : failed) run(s_->options.where, complete, nullptr, error);
    const std::function<void()> ended = s_->options.stream_ended;
    self_.reset();  // this may go now; gRPC is done with it
    ended();        // the last touch of the engine
  }

 private:
  // Moves queued requests into the message to write, up to a batch.
  void take_batch_locked() {
    out_.Clear();
    size_t bytes = 0;
    while (!queued_.empty() && out_.requests_size() < kMaxBatch) {
      const size_t size = queued_.front().ByteSizeLong();
      if (out_.requests_size() > 0 && bytes + size > s_->options.max_batch_bytes) break;
      bytes += size;
      *out_.add_requests() = std::move(queued_.front());
      queued_.pop_front();
    }
    writing_ = true;
  }

  // The read failed: the stream is over. Let go of the hold unless a write
  // is being started (its OnWriteDone lets go then).
  void fail() {
    bool release = false;
    {
      std::lock_guard lock(s_->mu);
      broken_ = true;
      if (!writing_ && !released_) released_ = release = true;
    }
    if (release) RemoveHold();
  }

  const std::shared_ptr<Pipeline::State> s_;
  const uint64_t generation_;
  std::shared_ptr<StreamCall> self_;  // held until OnDone
  grpc::ClientContext ctx_;
  rpc::StreamRequests out_;
  rpc::StreamResponses in_;
  // Guarded by the state's lock:
  std::deque<rpc::StreamRequest> queued_;
  bool started_ = false;   // bound to its call: writes may start
  bool writing_ = false;   // a write is in flight or being started
  bool broken_ = false;    // no more writes
  bool released_ = false;  // the hold is gone
};

Pipeline::Pipeline(rpc::Store::Stub* stub, Options options) : s_(std::make_shared<State>()) {
  s_->stub = stub;
  s_->options = std::move(options);
}

Pipeline::~Pipeline() { close(); }

void Pipeline::send(rpc::StreamRequest request, Complete complete) {
  std::shared_ptr<StreamCall> call, fresh;
  {
    std::lock_guard lock(s_->mu);
    if (s_->closed) {
      // Below, outside the lock.
    } else {
      if (s_->stream == nullptr || s_->stream->broken()) {
        fresh = std::make_shared<StreamCall>(s_, ++s_->generation);
        s_->stream = fresh;
      }
      call = s_->stream;
      const uint64_t id = s_->next_id++;
      request.set_id(id);
      s_->pending.emplace(id, State::Pending{std::move(complete), s_->generation});
      s_->deadlines.emplace_back(Clock::now() + s_->options.timeout, id);
      if (!s_->sweeping) {
        s_->sweeping = true;
        std::weak_ptr<State> weak = s_;
        Timer::shared().at(s_->deadlines.front().first, [weak] { sweep(weak); });
      }
    }
  }
  if (call == nullptr) {
    return run(s_->options.where, complete, nullptr,
               error_of(FailedPrecondition(s_->options.where + ": store is closed")));
  }
  if (fresh != nullptr) fresh->start();
  call->enqueue(std::move(request));
}

void Pipeline::close() {
  std::shared_ptr<StreamCall> call;
  {
    std::unique_lock lock(s_->mu);
    if (s_->closed) return;
    s_->closed = true;
    // The calls in flight get their answers (or time out) first.
    s_->drained.wait(lock, [this] { return s_->pending.empty(); });
    call = s_->stream;
  }
  if (call != nullptr) call->cancel();
}

}  // namespace cairn::internal

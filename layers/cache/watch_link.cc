#include "layers/cache/watch_link.h"

#include <deque>
#include <mutex>

#include "core/timer.h"

namespace cairn::internal {

namespace {

// Events from the directory are queued and handed to the cache on the
// shared timer's thread: the directory calls its sink under its own locks,
// and the cache's answer (an ack) goes back into the directory.
class LocalLink final : public WatchLink, public std::enable_shared_from_this<LocalLink> {
 public:
  LocalLink(std::string store, Handler handler)
      : store_(std::move(store)), handler_(std::move(handler)) {}

  struct Sink final : EventSink {
    std::weak_ptr<LocalLink> link;
    bool send(CoherenceEvent event) override {
      auto l = link.lock();
      if (!l) return false;
      std::lock_guard lock(l->mu_);
      if (l->closed_) return false;
      l->queue_.push_back(std::move(event));
      l->schedule_locked();
      return true;
    }
    void close(const std::string& why) override {
      if (auto l = link.lock()) l->end(why);
    }
  };

  void start(const std::shared_ptr<Directory>& directory, Coherence mode,
             std::chrono::milliseconds lease) {
    auto sink = std::make_shared<Sink>();
    sink->link = weak_from_this();
    sub_ = directory->subscribe(mode, lease, std::move(sink));
  }

  void send(std::vector<WatchOp> ops) override {
    {
      std::lock_guard lock(mu_);
      if (closed_) return;
    }
    for (WatchOp& op : ops) {
      switch (op.kind) {
        case WatchOp::Kind::kTrack: sub_->track(op.id, store_, op.key); break;
        case WatchOp::Kind::kUntrack: sub_->untrack(store_, op.key); break;
        case WatchOp::Kind::kAck: sub_->ack(op.id); break;
        case WatchOp::Kind::kPing: sub_->ping(op.id); break;
      }
    }
  }

  void close() override {
    end("the cache closed its stream");
    sub_->end();
  }

 private:
  void end(const std::string& why) {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    why_ = why;
    schedule_locked();
  }

  void schedule_locked() {
    if (draining_) return;
    draining_ = true;
    Timer::shared().after(std::chrono::nanoseconds(0), [self = shared_from_this()] { self->drain(); });
  }

  void drain() {
    for (;;) {
      std::vector<CoherenceEvent> batch;
      bool finish = false;
      {
        std::lock_guard lock(mu_);
        if (queue_.empty()) {
          draining_ = false;
          if (closed_ && !finished_) finished_ = finish = true;
        } else {
          batch.assign(std::make_move_iterator(queue_.begin()),
                       std::make_move_iterator(queue_.end()));
          queue_.clear();
        }
      }
      if (!batch.empty()) {
        handler_.events(batch);
        continue;
      }
      if (finish) handler_.closed(why_);
      return;
    }
  }

  const std::string store_;
  const Handler handler_;
  std::shared_ptr<Directory::Subscription> sub_;
  std::mutex mu_;
  std::deque<CoherenceEvent> queue_;  // guarded by mu_
  bool draining_ = false;             // guarded by mu_
  bool closed_ = false;               // guarded by mu_
  bool finished_ = false;             // guarded by mu_
  std::string why_;                   // guarded by mu_ until closed_
};

}  // namespace

std::shared_ptr<WatchLink> open_local_watch(std::shared_ptr<Directory> directory,
                                            std::string store, Coherence mode,
                                            std::chrono::milliseconds lease,
                                            WatchLink::Handler handler) {
  auto link = std::make_shared<LocalLink>(std::move(store), std::move(handler));
  link->start(directory, mode, lease);
  return link;
}

}  // namespace cairn::internal

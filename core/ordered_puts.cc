#include "cairn/ordered_puts.h"

#include <optional>
#include <utility>
#include <vector>

#include "cairn/errors.h"

namespace cairn::internal {

namespace {

// Runs `f` now, unless this thread is running one already: then right after
// it. A store that answers at once calls back inside the call that starts a
// write, so a line of writes of one key would otherwise start each one from
// inside the last, a stack frame deeper every time.
void trampoline(std::function<void()> f) {
  thread_local std::deque<std::function<void()>>* queue = nullptr;
  if (queue != nullptr) {
    queue->push_back(std::move(f));
    return;
  }
  std::deque<std::function<void()>> q;
  queue = &q;
  f();
  while (!q.empty()) {
    std::function<void()> g = std::move(q.front());
    q.pop_front();
    g();
  }
  queue = nullptr;
}

}  // namespace

OrderedPuts::OrderedPuts(std::shared_ptr<Store> store, NodeId node, int max_tries)
    : store_(std::move(store)), node_(node), max_tries_(max_tries) {}

// The callbacks hold `this`, not a reference that owns it: whoever owns the
// writer owns the store, so the store is never destroyed from inside one of
// its own callbacks (a FaultStore or a grpc store waits there for its calls
// to end: for the very call it is in).
OrderedPuts::~OrderedPuts() { wait_idle(); }

void OrderedPuts::put(std::string key, std::string value, Done done) {
  {
    std::lock_guard lock(mu_);
    ++in_flight_;
    auto [line, fresh] = lines_.try_emplace(key);
    if (!fresh) {  // a write of the key is in flight: this one waits its turn
      line->second.push_back(Write{std::move(value), std::move(done)});
      return;
    }
  }
  trampoline([this, key = std::move(key),
              w = Write{std::move(value), std::move(done)}]() mutable {
    start(std::move(key), std::move(w), 0);
  });
}

void OrderedPuts::start(std::string key, Write w, int attempt) {
  const std::string k = key;
  store_->async_versions(k, [this, key = std::move(key), w = std::move(w),
                             attempt](std::vector<VectorClock> clocks,
                                      std::exception_ptr e) mutable {
    if (e) return answer(key, w.done, VectorClock(), e);
    VectorClock clock;
    for (const VectorClock& c : clocks) clock = clock.merged(c);
    clock.increment(node_, now_ms());
    const Versioned v{w.value, std::move(clock)};
    Store& store = *store_;
    const std::string k2 = key;
    store.async_put(k2, v, [this, key = std::move(key), w = std::move(w),
                            attempt](PutReply r, std::exception_ptr e2) mutable {
      if (e2) return answer(key, w.done, VectorClock(), e2);
      if (r.result == PutResult::kStored) return answer(key, w.done, std::move(r.stored), nullptr);
      if (attempt + 1 >= max_tries_) {
        return answer(key, w.done, VectorClock(),
                            std::make_exception_ptr(ObsoleteVersion(
                                "put lost " + std::to_string(max_tries_) +
                                " races in a row for the same key")));
      }
      // A writer with the same id got there first: read again, write again.
      trampoline([this, key = std::move(key), w = std::move(w), attempt]() mutable {
        start(std::move(key), std::move(w), attempt + 1);
      });
    });
  });
}

void OrderedPuts::answer(const std::string& key, const Done& done, VectorClock stored,
                         std::exception_ptr error) {
  done(std::move(stored), std::move(error));
  std::optional<Write> next;
  {
    std::lock_guard lock(mu_);
    auto line = lines_.find(key);
    if (line->second.empty()) {
      lines_.erase(line);
    } else {
      next = std::move(line->second.front());
      line->second.pop_front();
    }
    // After `done`: once wait_idle() returns, every callback has run, and
    // nothing below touches `this` when the count reaches 0 (no next).
    if (--in_flight_ == 0) idle_.notify_all();
  }
  if (next) {
    trampoline([this, key, w = std::move(*next)]() mutable {
      start(std::move(key), std::move(w), 0);
    });
  }
}

void OrderedPuts::wait_idle() {
  std::unique_lock lock(mu_);
  idle_.wait(lock, [this] { return in_flight_ == 0; });
}

}  // namespace cairn::internal

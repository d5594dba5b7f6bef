#include "core/executor.h"

#include "cairn/log.h"

namespace cairn::internal {

Executor::Executor(int threads) {
  for (int i = 0; i < std::max(threads, 1); ++i) threads_.emplace_back([this] { run(); });
}

Executor::~Executor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void Executor::submit(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void Executor::run() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stopping_ || !tasks_.empty(); });
      if (tasks_.empty()) return;  // stopping, and everything has run
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    try {
      task();
    } catch (const std::exception& e) {
      log(LogLevel::kError, std::string("executor: a task threw: ") + e.what());
    }
  }
}

namespace {
thread_local bool completion_thread = false;
}  // namespace

void mark_completion_thread() { completion_thread = true; }
bool on_completion_thread() { return completion_thread; }

void run_where_waiting_is_safe(std::function<void()> task) {
  if (!completion_thread) return task();
  // Leaked on purpose: a store may be dropped on a gRPC thread while the
  // process exits, after a static waiter would have been destroyed.
  static Executor* waiter = new Executor(1);
  waiter->submit(std::move(task));
}

}  // namespace cairn::internal

// A fixed pool of threads running submitted tasks in order of submission.
// The gRPC server runs engine work that may block (an fsync, a map growth)
// here rather than on gRPC's own small callback pool.
//
// Thread-safe.

#ifndef CAIRN_CORE_EXECUTOR_H_
#define CAIRN_CORE_EXECUTOR_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cairn::internal {

class Executor {
 public:
  explicit Executor(int threads);
  // Runs every task already submitted, then joins the threads.
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `task`. Tasks must not throw (catch inside); one that does is
  // logged and dropped.
  void submit(std::function<void()> task);

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;  // guarded by mu_
  bool stopping_ = false;                    // guarded by mu_
  std::vector<std::thread> threads_;
};

// Threads that run completions for others (gRPC's callback threads, the
// shared timer) must never wait for another completion: it may need the
// very thread. gRPC has two or so callback threads, so two such waits stop
// every call of the process. Those threads mark themselves; code that must
// wait (a store's destructor waiting for its calls and streams to end)
// asks, and hands the wait to a thread kept for it.
void mark_completion_thread();
bool on_completion_thread();

// Runs `task` here, or, on a completion thread, on a thread of its own
// (started on first use; what it was given runs before the process exits).
void run_where_waiting_is_safe(std::function<void()> task);

}  // namespace cairn::internal

#endif  // CAIRN_CORE_EXECUTOR_H_

// Timer: runs tasks after a delay, on one thread of its own, without a
// thread sleeping per task. The faults layer delays non-blocking calls with
// it; the routing layer bounds an operation by its deadline with it.
//
// Thread-safe. Tasks must be short and must not block: they run one after
// another on the timer's thread.

#ifndef CAIRN_CORE_TIMER_H_
#define CAIRN_CORE_TIMER_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace cairn::internal {

class Timer {
 public:
  using Clock = std::chrono::steady_clock;
  using Id = uint64_t;

  Timer();
  // Drops the tasks not yet due (without running them) and joins the thread.
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // Runs `task` at `when` (at once if it is past). Returns an id for cancel().
  Id at(Clock::time_point when, std::function<void()> task);
  Id after(std::chrono::nanoseconds delay, std::function<void()> task) {
    return at(Clock::now() + delay, std::move(task));
  }
  // Drops the task if it has not started; false if it has run or is running.
  bool cancel(Id id);

  // The process's shared timer (never destroyed).
  static Timer& shared();

 private:
  void run();

  std::mutex mu_;
  std::condition_variable cv_;
  // By due time, then id: the order tasks run in.
  std::map<std::pair<Clock::time_point, Id>, std::function<void()>> tasks_;  // guarded by mu_
  std::map<Id, Clock::time_point> due_;                                      // guarded by mu_
  Id next_id_ = 1;                                                           // guarded by mu_
  bool stopping_ = false;                                                    // guarded by mu_
  std::thread thread_;
};

}  // namespace cairn::internal

#endif  // CAIRN_CORE_TIMER_H_

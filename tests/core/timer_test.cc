#include "core/timer.h"

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <vector>

namespace cairn::internal {
namespace {

using std::chrono::milliseconds;

class TimerTest : public ::testing::Test {
 protected:
  void note(int what) {
    std::lock_guard lock(mu_);
    ran_.push_back(what);
    cv_.notify_all();
  }
  // Waits until `n` tasks have run (up to 30 s); what ran, in order.
  std::vector<int> wait_for(size_t n) {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(30), [&] { return ran_.size() >= n; });
    return ran_;
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> ran_;
};

TEST_F(TimerTest, RunsTasksInTheOrderTheyAreDueNotTheOrderGiven) {
  Timer timer;
  timer.after(milliseconds(400), [&] { note(3); });
  timer.after(milliseconds(200), [&] { note(2); });
  // Earlier than every task waiting: the timer thread must wake for it.
  timer.after(milliseconds(0), [&] { note(1); });
  EXPECT_EQ(wait_for(3), (std::vector<int>{1, 2, 3}));
}

TEST_F(TimerTest, ACancelledTaskNeverRuns) {
  Timer timer;
  const Timer::Id dropped = timer.after(milliseconds(100), [&] { note(1); });
  timer.after(milliseconds(300), [&] { note(2); });
  EXPECT_TRUE(timer.cancel(dropped));
  EXPECT_EQ(wait_for(1), std::vector<int>{2});
  EXPECT_FALSE(timer.cancel(dropped)) << "cancelled already";
}

TEST_F(TimerTest, ATaskThatThrowsDoesNotStopTheOthers) {
  Timer timer;
  timer.after(milliseconds(0), [] { throw std::runtime_error("boom"); });
  timer.after(milliseconds(10), [&] { note(1); });
  EXPECT_EQ(wait_for(1), std::vector<int>{1});
}

TEST_F(TimerTest, DestroyingItDropsTheTasksNotYetDue) {
  {
    Timer timer;
    timer.after(std::chrono::hours(1), [&] { note(1); });
  }  // joins at once, without running the task
  std::lock_guard lock(mu_);
  EXPECT_TRUE(ran_.empty());
}

}  // namespace
}  // namespace cairn::internal

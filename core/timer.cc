#include "core/timer.h"

#include <exception>
#include <string>

#include "cairn/log.h"
#include "core/executor.h"

namespace cairn::internal {

Timer::Timer() : thread_([this] { run(); }) {}

Timer::~Timer() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

Timer::Id Timer::at(Clock::time_point when, std::function<void()> task) {
  Id id;
  bool first;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    tasks_.emplace(std::pair(when, id), std::move(task));
    due_.emplace(id, when);
    first = tasks_.begin()->first.second == id;
  }
  // Only a new earliest task changes how long the thread must wait.
  if (first) cv_.notify_one();
  return id;
}

bool Timer::cancel(Id id) {
  std::lock_guard lock(mu_);
  auto it = due_.find(id);
  if (it == due_.end()) return false;
  tasks_.erase(std::pair(it->second, id));
  due_.erase(it);
  return true;
}

Timer& Timer::shared() {
  // Leaked on purpose: tasks may be scheduled from static destructors'
  // callers, and a timer destroyed at exit could not take them.
  static Timer* timer = new Timer;
  return *timer;
}

void Timer::run() {
  mark_completion_thread();
  std::unique_lock lock(mu_);
  while (!stopping_) {
    if (tasks_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto when = tasks_.begin()->first.first;
    if (Clock::now() < when) {
      cv_.wait_until(lock, when);
      continue;
    }
    auto node = tasks_.extract(tasks_.begin());
    due_.erase(node.key().second);
    lock.unlock();
    try {
      node.mapped()();
    } catch (const std::exception& e) {
      log(LogLevel::kError, std::string("timer: a task threw: ") + e.what());
    }
    lock.lock();
  }
}

}  // namespace cairn::internal

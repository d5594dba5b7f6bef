#include "routing/failure_detector.h"

#include <algorithm>

#include "cairn/errors.h"
#include "cairn/log.h"

namespace cairn {

FailureDetector::FailureDetector(size_t nodes, size_t capacity, std::chrono::milliseconds ban,
                                 std::chrono::milliseconds probe_interval, Probe probe,
                                 std::function<std::string(size_t)> name)
    : states_(std::make_unique<State[]>(std::max(nodes, capacity))),
      capacity_(std::max(nodes, capacity)),
      n_(nodes),
      ban_(ban),
      interval_(probe_interval),
      probe_(std::move(probe)),
      name_(std::move(name)) {
  thread_ = std::thread([this] { run(); });
}

FailureDetector::~FailureDetector() { stop(); }

void FailureDetector::grow(size_t n) {
  if (n > capacity_) {
    throw InvalidArgument("the failure detector watches at most " + std::to_string(capacity_) +
                          " nodes over a store's life; reopen the store");
  }
  size_t have = n_.load();
  while (have < n && !n_.compare_exchange_weak(have, n)) {
  }
}

void FailureDetector::stop() {
  {
    std::unique_lock lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    cv_.notify_all();
  }
  if (thread_.joinable()) thread_.join();
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return probes_ == 0; });
}

bool FailureDetector::is_node_failure(const std::exception_ptr& error) {
  try {
    std::rethrow_exception(error);
  } catch (const Error& e) {
    return e.code() == ErrorCode::kUnavailable || e.code() == ErrorCode::kTimeout;
  } catch (...) {
    return false;
  }
}

bool FailureDetector::record_failure(size_t i, const std::exception_ptr& error) {
  if (!is_node_failure(error)) return false;
  std::string what;
  try {
    std::rethrow_exception(error);
  } catch (const std::exception& e) {
    what = e.what();
  }
  std::lock_guard lock(mu_);
  if (!states_[i].banned.exchange(true, std::memory_order_relaxed)) {
    states_[i].why = what;
    states_[i].since = std::chrono::steady_clock::now();
    states_[i].next_probe = states_[i].since + ban_;
    log(LogLevel::kWarn, name_(i) + " is down, skipped until a probe answers: " + what);
  }
  return true;
}

std::string FailureDetector::why(size_t i) const {
  std::lock_guard lock(mu_);
  if (!states_[i].banned.load(std::memory_order_relaxed)) return "";
  const auto ago = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now() - states_[i].since)
                       .count();
  return "down since " + std::to_string(ago) + " ms ago (" + states_[i].why + ")";
}

void FailureDetector::run() {
  std::unique_lock lock(mu_);
  while (!stopping_) {
    // Wake often enough to probe a node when its ban ends, and every
    // interval after.
    const auto tick = ban_.count() > 0 ? std::min(interval_, ban_) : interval_;
    cv_.wait_for(lock, tick, [this] { return stopping_; });
    if (stopping_) break;
    const auto now = std::chrono::steady_clock::now();
    const size_t n = n_.load();
    for (size_t i = 0; i < n; ++i) {
      State& s = states_[i];
      if (!s.banned.load(std::memory_order_relaxed) || now < s.next_probe ||
          s.probing.exchange(true)) {
        continue;
      }
      s.next_probe = now + interval_;
      ++probes_;
      lock.unlock();
      probe_(i, [this, i](std::exception_ptr error) {
        std::lock_guard guard(mu_);
        State& st = states_[i];
        if (!error && st.banned.exchange(false, std::memory_order_relaxed)) {
          log(LogLevel::kInfo, name_(i) + " answers again");
        }
        st.probing.store(false);
        --probes_;
        cv_.notify_all();
      });
      lock.lock();
    }
  }
}

}  // namespace cairn

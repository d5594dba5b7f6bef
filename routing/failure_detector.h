// FailureDetector: which nodes the routing layer should not wait for.
//
// A node whose call fails because it could not be reached (Unavailable) or
// did not answer in time (Timeout) is banned: routed operations skip it at
// once, without waiting for another timeout, and write hints for it. The
// ban lasts at least `ban` (a flapping node is not retried at once); then a
// thread of the detector's own probes the node every `probe_interval`, and
// the first probe that succeeds lifts the ban. Nodes are numbered 0..n-1
// (the routing layer's indexes, not node ids); a cluster that grows adds
// numbers (add()), up to the capacity fixed at construction.
//
// Thread-safe; available() is a relaxed atomic load.

#ifndef CAIRN_ROUTING_FAILURE_DETECTOR_H_
#define CAIRN_ROUTING_FAILURE_DETECTOR_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace cairn {

class FailureDetector {
 public:
  // Starts a probe of node `i`; `done` gets nullptr once it answers, or the
  // error. It may answer on any thread.
  using Probe = std::function<void(size_t i, std::function<void(std::exception_ptr)> done)>;

  FailureDetector(size_t nodes, size_t capacity, std::chrono::milliseconds ban,
                  std::chrono::milliseconds probe_interval, Probe probe,
                  std::function<std::string(size_t)> name);
  // Stops the prober and waits for probes in flight.
  ~FailureDetector();
  FailureDetector(const FailureDetector&) = delete;
  FailureDetector& operator=(const FailureDetector&) = delete;

  // Watches `n` nodes in all (n >= the nodes it watches). Throws
  // InvalidArgument beyond the capacity.
  void grow(size_t n);

  bool available(size_t i) const { return !states_[i].banned.load(std::memory_order_relaxed); }
  // Bans the node if `error` says it is down (Unavailable, Timeout);
  // returns whether it did.
  bool record_failure(size_t i, const std::exception_ptr& error);
  // Why the node is banned ("" if it is not).
  std::string why(size_t i) const;
  // Stops the prober and waits for probes in flight. Idempotent.
  void stop();

  // Whether `error` says the node is down rather than that the call was bad.
  static bool is_node_failure(const std::exception_ptr& error);

 private:
  struct State {
    std::atomic<bool> banned{false};
    std::atomic<bool> probing{false};
    std::string why;  // guarded by mu_
    std::chrono::steady_clock::time_point since;       // guarded by mu_
    std::chrono::steady_clock::time_point next_probe;  // guarded by mu_
  };
  void run();

  std::unique_ptr<State[]> states_;
  const size_t capacity_;
  std::atomic<size_t> n_;
  std::chrono::milliseconds ban_;
  std::chrono::milliseconds interval_;
  Probe probe_;
  std::function<std::string(size_t)> name_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  int probes_ = 0;         // in flight; guarded by mu_
  std::thread thread_;
};

}  // namespace cairn

#endif  // CAIRN_ROUTING_FAILURE_DETECTOR_H_

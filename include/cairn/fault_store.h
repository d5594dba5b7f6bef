// FaultStore: injects delays and failures, for tests of what sits above a
// slow or failing store: an application's error path, a server's worker
// pool and deadlines, the routing layer's timeouts and failover. Not for
// production stacks.
//
//   - faults: {delay_ms: 300, ops: "put,remove", fail: none}
//   - faults: {delay_ms: 200, nodes: [3]}   (below a client's `route`: only
//                                           the copy reaching node 3)
//
// `ops` names the operations affected (get, get_all, put, remove, versions,
// scan; default all of them); each affected call sleeps `delay_ms`, then
// fails with `fail` (none, unavailable, io_error, timeout) or goes on. With
// `after: true` an affected call is carried out first and fails after: its
// answer is lost, as when a server applies a write and dies before it
// replies.
// Tests may change both at run time. The non-blocking calls wait out the
// delay on a timer, not on the caller's thread: a slow node stays slow
// without holding up the calls made after it. Thread-safe.

#ifndef CAIRN_FAULT_STORE_H_
#define CAIRN_FAULT_STORE_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

#include "cairn/errors.h"
#include "cairn/export.h"
#include "cairn/forwarding_store.h"

CAIRN_API_BEGIN
namespace cairn {

class FaultStore final : public ForwardingStore {
 public:
  enum Op : uint32_t {
    kGet = 1,
    kGetAll = 2,
    kPut = 4,
    kRemove = 8,
    kVersions = 16,
    kScan = 32,
    kAll = 63,
  };
  // What an affected call throws after its delay; kNone: nothing.
  enum class Failure { kNone, kUnavailable, kIoError, kTimeout };

  FaultStore(std::unique_ptr<Store> inner, uint32_t ops, std::chrono::milliseconds delay,
             Failure failure);
  // Waits for async calls still waiting out their delay.
  ~FaultStore() override;

  void set_delay(std::chrono::milliseconds delay) { delay_ms_.store(delay.count()); }
  void set_failure(Failure f) { failure_.store(f); }
  // Whether the failure comes after the call was carried out.
  void set_fail_after(bool after) { fail_after_.store(after); }

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  std::unique_ptr<StoreIterator> scan() override;
  // Waits for the async calls still waiting out their delay, then closes.
  void close() override;
  std::string describe() const override;

  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  bool async_calls_block() const override { return inner().async_calls_block(); }

  // True when writes are among the operations affected: their delay may
  // be raised at any time, and a server asks once.
  bool writes_may_block() const override {
    return (ops_ & (kPut | kRemove)) != 0 || ForwardingStore::writes_may_block();
  }

 private:
  void inject(Op op, const char* name) const;
  // `call()`, with the fault: the delay, then the failure before the call
  // or, with fail_after_, after it.
  template <typename Fn>
  auto injected_around(Op op, const char* name, Fn&& call) const;
  // The failure set now, as an error (nullptr for kNone).
  std::exception_ptr injected(const char* name) const;
  // An async call: after the delay (on the timer), fails it or runs
  // `forward(done)`, which passes it down.
  template <typename T, typename Forward>
  void delayed(Op op, const char* name, Callback<T> done, Forward forward);

  const uint32_t ops_;
  std::atomic<int64_t> delay_ms_;
  std::atomic<Failure> failure_;
  std::atomic<bool> fail_after_{false};
  std::mutex pending_mu_;
  std::condition_variable pending_cv_;
  int pending_ = 0;  // async calls waiting out a delay; guarded by pending_mu_
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_FAULT_STORE_H_

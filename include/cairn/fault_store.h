// FaultStore: injects delays and failures, for tests of what sits above a
// slow or failing store: an application's error path, a server's worker
// pool and deadlines, the routing layer's timeouts and failover. Not for
// production stacks.
//
//   - faults: {delay_ms: 300, ops: "put,remove", fail: none}
//
// `ops` names the operations affected (get, get_all, put, remove, versions,
// scan; default all of them); each affected call sleeps `delay_ms`, then
// fails with `fail` (none, unavailable, io_error, timeout) or goes on.
// Tests may change both at run time. Thread-safe.

#ifndef CAIRN_FAULT_STORE_H_
#define CAIRN_FAULT_STORE_H_

#include <atomic>
#include <chrono>
#include <cstdint>

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

  void set_delay(std::chrono::milliseconds delay) { delay_ms_.store(delay.count()); }
  void set_failure(Failure f) { failure_.store(f); }

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        VectorClock* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  std::unique_ptr<StoreIterator> scan() override;
  std::string describe() const override;
  // True when writes are among the operations affected: their delay may
  // be raised at any time, and a server asks once.
  bool writes_may_block() const override {
    return (ops_ & (kPut | kRemove)) != 0 || ForwardingStore::writes_may_block();
  }

 private:
  void inject(Op op, const char* name) const;

  const uint32_t ops_;
  std::atomic<int64_t> delay_ms_;
  std::atomic<Failure> failure_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_FAULT_STORE_H_

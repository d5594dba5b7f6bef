// StatsStore: counts every operation that passes through it, with errors and
// latency percentiles, and prints them. Put it at the top of a stack to see
// what callers experience, or above the engine to see what storage costs.
//
// Thread-safe and lock-free: counters are relaxed atomics.

#ifndef CAIRN_STATS_STORE_H_
#define CAIRN_STATS_STORE_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>

#include "cairn/export.h"
#include "cairn/forwarding_store.h"

CAIRN_API_BEGIN
namespace cairn {

// A latency distribution in nanoseconds. Percentiles come from log-linear
// buckets (8 per power of two), so each is within 6.25% of the true value;
// count, sum and max are exact.
struct LatencySummary {
  uint64_t count = 0;
  uint64_t sum_ns = 0;  // for rates (Prometheus' _sum)
  uint64_t mean_ns = 0;
  uint64_t p50_ns = 0;
  uint64_t p90_ns = 0;
  uint64_t p99_ns = 0;
  uint64_t p999_ns = 0;
  uint64_t max_ns = 0;
};

class StatsStore final : public ForwardingStore {
 public:
  enum class Op { kGet, kGetAll, kPut, kRemove, kVersions, kScan };
  static constexpr int kOps = 6;
  static const char* op_name(Op op);

  struct OpStats {
    uint64_t count = 0;   // calls, failed ones included
    uint64_t errors = 0;  // calls that threw
    // get: keys found; get_all: keys found; put: obsolete results;
    // remove: calls that deleted something. 0 for the others.
    uint64_t outcome = 0;
    LatencySummary latency;
  };
  struct Snapshot {
    std::array<OpStats, kOps> ops;
    const OpStats& operator[](Op op) const { return ops[static_cast<size_t>(op)]; }
  };

  // `name` labels the report (usually the store's name).
  StatsStore(std::unique_ptr<Store> inner, std::string name);
  ~StatsStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  std::unique_ptr<StoreIterator> scan() override;
  std::string describe() const override;

  // Non-blocking, counted like the blocking calls: the latency runs until
  // the callback.
  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  bool async_calls_block() const override { return inner().async_calls_block(); }

  // The counters now. Approximate while operations race it.
  Snapshot snapshot() const;
  // A table of the snapshot, one line per operation that has run:
  //   op        count  errors  outcome   mean    p50    p99   p999    max
  std::string report() const;

 private:
  struct CAIRN_INTERNAL Counters;  // one per Op: relaxed atomics and a latency histogram
  template <typename Fn>
  auto timed(Op op, Fn&& fn);
  // `done`, counting the call as `op` when it answers; `outcome(result)`
  // says whether it counts as the op's outcome.
  template <typename T, typename Outcome>
  Callback<T> counted(Op op, Callback<T> done, Outcome outcome);

  std::string name_;
  std::unique_ptr<Counters[]> counters_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_STATS_STORE_H_

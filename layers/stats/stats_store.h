// StatsStore: counts every operation that passes through it, with errors and
// latency percentiles, and prints them. Put it at the top of a stack to see
// what callers experience, or above the engine to see what storage costs.
//
// Thread-safe and lock-free: counters are relaxed atomics.

#ifndef CAIRN_LAYERS_STATS_STATS_STORE_H_
#define CAIRN_LAYERS_STATS_STATS_STORE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "cairn/forwarding_store.h"
#include "cairn/registry.h"
#include "core/latency_histogram.h"

namespace cairn {

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
    internal::LatencyHistogram::Summary latency;
  };
  struct Snapshot {
    std::array<OpStats, kOps> ops;
    const OpStats& operator[](Op op) const { return ops[static_cast<size_t>(op)]; }
  };

  // `name` labels the report (usually the store's name).
  StatsStore(std::unique_ptr<Store> inner, std::string name);

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        VectorClock* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  std::unique_ptr<StoreIterator> scan() override;
  std::string describe() const override;

  // The counters now. Approximate while operations race it.
  Snapshot snapshot() const;
  // A table of the snapshot, one line per operation that has run:
  //   op        count  errors  outcome   mean    p50    p99   p999    max
  std::string report() const;

 private:
  struct Counters {
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> errors{0};
    std::atomic<uint64_t> outcome{0};
    internal::LatencyHistogram latency;
  };
  template <typename Fn>
  auto timed(Op op, Fn&& fn);

  std::string name_;
  std::array<Counters, kOps> counters_;
};

// The `stats` layer of config files. No parameters.
std::unique_ptr<Store> make_stats_layer(std::unique_ptr<Store> inner, const Params& params);

}  // namespace cairn

#endif  // CAIRN_LAYERS_STATS_STATS_STORE_H_

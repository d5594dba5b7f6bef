// A lock-free latency histogram: log-linear buckets (8 per power of two, so
// a reported percentile is within 6.25% of the true value) over nanoseconds.
// record() is safe from any number of threads; snapshots are approximate
// while records race them.

#ifndef CAIRN_CORE_LATENCY_HISTOGRAM_H_
#define CAIRN_CORE_LATENCY_HISTOGRAM_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "cairn/stats_store.h"  // LatencySummary

namespace cairn::internal {

class LatencyHistogram {
 public:
  static constexpr int kBuckets = 496;

  void record(uint64_t nanos);
  // Adds every record of `other` (e.g. per-thread histograms into one).
  void merge_from(const LatencyHistogram& other);

  using Summary = LatencySummary;
  Summary summary() const;
  // The value below which a fraction `q` (0..1) of the records fall.
  uint64_t percentile(double q) const;

  static int bucket_of(uint64_t nanos);
  // The middle of a bucket's range, the value a percentile reports.
  static uint64_t bucket_mid(int bucket);

 private:
  std::array<std::atomic<uint64_t>, kBuckets> buckets_{};
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_{0};
  std::atomic<uint64_t> max_{0};
};

// "850ns", "12.3µs", "4.56ms", "1.20s".
std::string format_nanos(uint64_t nanos);

}  // namespace cairn::internal

#endif  // CAIRN_CORE_LATENCY_HISTOGRAM_H_

#include "core/latency_histogram.h"

#include <bit>
#include <cmath>
#include <cstdio>

namespace cairn::internal {

int LatencyHistogram::bucket_of(uint64_t v) {
  if (v < 8) return static_cast<int>(v);
  const int e = 63 - std::countl_zero(v);  // 3..63
  const int sub = static_cast<int>((v >> (e - 3)) & 7);
  return (e - 2) * 8 + sub;
}

uint64_t LatencyHistogram::bucket_mid(int bucket) {
  if (bucket < 8) return static_cast<uint64_t>(bucket);
  const int e = bucket / 8 + 2;
  const uint64_t sub = static_cast<uint64_t>(bucket % 8);
  const uint64_t lower = (8 + sub) << (e - 3);
  return lower + ((uint64_t{1} << (e - 3)) >> 1);
}

void LatencyHistogram::record(uint64_t nanos) {
  buckets_[static_cast<size_t>(bucket_of(nanos))].fetch_add(1, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(nanos, std::memory_order_relaxed);
  uint64_t prev = max_.load(std::memory_order_relaxed);
  while (nanos > prev && !max_.compare_exchange_weak(prev, nanos, std::memory_order_relaxed)) {
  }
}

void LatencyHistogram::merge_from(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) {
    buckets_[i].fetch_add(other.buckets_[i].load(std::memory_order_relaxed),
                          std::memory_order_relaxed);
  }
  count_.fetch_add(other.count_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  sum_.fetch_add(other.sum_.load(std::memory_order_relaxed), std::memory_order_relaxed);
  const uint64_t m = other.max_.load(std::memory_order_relaxed);
  uint64_t prev = max_.load(std::memory_order_relaxed);
  while (m > prev && !max_.compare_exchange_weak(prev, m, std::memory_order_relaxed)) {
  }
}

uint64_t LatencyHistogram::percentile(double q) const {
  uint64_t total = 0;
  for (const auto& b : buckets_) total += b.load(std::memory_order_relaxed);
  if (total == 0) return 0;
  const auto rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(total)));
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += buckets_[static_cast<size_t>(i)].load(std::memory_order_relaxed);
    if (seen >= std::max<uint64_t>(rank, 1)) {
      return std::min(bucket_mid(i), max_.load(std::memory_order_relaxed));
    }
  }
  return max_.load(std::memory_order_relaxed);
}

LatencyHistogram::Summary LatencyHistogram::summary() const {
  Summary s;
  s.count = count_.load(std::memory_order_relaxed);
  if (s.count == 0) return s;
  s.sum_ns = sum_.load(std::memory_order_relaxed);
  s.mean_ns = s.sum_ns / s.count;
  s.p50_ns = percentile(0.50);
  s.p90_ns = percentile(0.90);
  s.p99_ns = percentile(0.99);
  s.p999_ns = percentile(0.999);
  s.max_ns = max_.load(std::memory_order_relaxed);
  return s;
}

std::string format_nanos(uint64_t nanos) {
  char buf[32];
  const double v = static_cast<double>(nanos);
  if (nanos < 1000) {
    std::snprintf(buf, sizeof buf, "%lluns", static_cast<unsigned long long>(nanos));
  } else if (nanos < 1000000) {
    std::snprintf(buf, sizeof buf, "%.3gµs", v / 1e3);
  } else if (nanos < 1000000000) {
    std::snprintf(buf, sizeof buf, "%.3gms", v / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.3gs", v / 1e9);
  }
  return buf;
}

}  // namespace cairn::internal

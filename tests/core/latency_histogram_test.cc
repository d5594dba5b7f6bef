#include "core/latency_histogram.h"

#include <gtest/gtest.h>

#include <cmath>

namespace cairn::internal {
namespace {

TEST(LatencyHistogramTest, BucketsAreOrderedAndContainTheirValues) {
  int last = -1;
  for (uint64_t v : {0ull, 1ull, 7ull, 8ull, 9ull, 15ull, 16ull, 1000ull, 123456789ull,
                     ~0ull >> 1, ~0ull}) {
    const int b = LatencyHistogram::bucket_of(v);
    EXPECT_GE(b, last) << v;
    EXPECT_LT(b, LatencyHistogram::kBuckets) << v;
    last = b;
    const double mid = static_cast<double>(LatencyHistogram::bucket_mid(b));
    EXPECT_LE(std::abs(mid - static_cast<double>(v)), static_cast<double>(v) / 8 + 1) << v;
  }
}

TEST(LatencyHistogramTest, PercentilesAreWithinTheBucketError) {
  LatencyHistogram h;
  for (uint64_t v = 1; v <= 100000; ++v) h.record(v * 10);
  const auto s = h.summary();
  EXPECT_EQ(s.count, 100000u);
  EXPECT_EQ(s.max_ns, 1000000u);
  EXPECT_NEAR(static_cast<double>(s.mean_ns), 500005, 1);
  EXPECT_NEAR(static_cast<double>(s.p50_ns), 500000, 500000 * 0.0625);
  EXPECT_NEAR(static_cast<double>(s.p99_ns), 990000, 990000 * 0.0625);
  EXPECT_NEAR(static_cast<double>(s.p999_ns), 999000, 999000 * 0.0625);
}

TEST(LatencyHistogramTest, MergingEqualsRecordingInOne) {
  LatencyHistogram a, b, both;
  for (uint64_t v = 1; v <= 1000; ++v) {
    (v % 3 == 0 ? a : b).record(v * 100);
    both.record(v * 100);
  }
  a.merge_from(b);
  const auto merged = a.summary();
  const auto expected = both.summary();
  EXPECT_EQ(merged.count, expected.count);
  EXPECT_EQ(merged.mean_ns, expected.mean_ns);
  EXPECT_EQ(merged.p50_ns, expected.p50_ns);
  EXPECT_EQ(merged.p999_ns, expected.p999_ns);
  EXPECT_EQ(merged.max_ns, 100000u);
}

TEST(LatencyHistogramTest, EmptyIsAllZeros) {
  const auto s = LatencyHistogram().summary();
  EXPECT_EQ(s.count, 0u);
  EXPECT_EQ(s.p99_ns, 0u);
  EXPECT_EQ(s.max_ns, 0u);
}

TEST(LatencyHistogramTest, FormatsUnits) {
  EXPECT_EQ(format_nanos(850), "850ns");
  EXPECT_EQ(format_nanos(12300), "12.3µs");
  EXPECT_EQ(format_nanos(4560000), "4.56ms");
  EXPECT_EQ(format_nanos(1200000000), "1.2s");
}

}  // namespace
}  // namespace cairn::internal

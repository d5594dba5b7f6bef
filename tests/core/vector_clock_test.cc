#include <gtest/gtest.h>

#include <limits>

#include "cairn/errors.h"
#include "cairn/versioned.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

TEST(VectorClockTest, CompareCoversAllFourRelations) {
  EXPECT_EQ(compare(clock({}), clock({})), Occurred::kEqual);
  EXPECT_EQ(compare(clock({{1, 1}}, 5), clock({{1, 1}}, 9)), Occurred::kEqual)
      << "timestamps do not order clocks";
  EXPECT_EQ(compare(clock({}), clock({{1, 1}})), Occurred::kBefore);
  EXPECT_EQ(compare(clock({{1, 1}}), clock({{1, 2}})), Occurred::kBefore);
  EXPECT_EQ(compare(clock({{1, 1}}), clock({{1, 1}, {2, 1}})), Occurred::kBefore);
  EXPECT_EQ(compare(clock({{1, 2}, {2, 1}}), clock({{1, 1}})), Occurred::kAfter);
  EXPECT_EQ(compare(clock({{1, 1}}), clock({{2, 1}})), Occurred::kConcurrent);
  EXPECT_EQ(compare(clock({{1, 2}, {2, 1}}), clock({{1, 1}, {2, 2}})), Occurred::kConcurrent);
  EXPECT_EQ(compare(clock({{1, 2}, {3, 1}}), clock({{1, 2}, {2, 1}})), Occurred::kConcurrent);
}

TEST(VectorClockTest, CompareIsAntisymmetric) {
  auto rng = seeded_rng();
  for (int i = 0; i < 2000; ++i) {
    VectorClock a, b;
    for (int j = 0; j < 3; ++j) {
      if (rng() % 2) a.increment(static_cast<NodeId>(rng() % 4), 0);
      if (rng() % 2) b.increment(static_cast<NodeId>(rng() % 4), 0);
    }
    const Occurred ab = compare(a, b), ba = compare(b, a);
    switch (ab) {
      case Occurred::kBefore: EXPECT_EQ(ba, Occurred::kAfter); break;
      case Occurred::kAfter: EXPECT_EQ(ba, Occurred::kBefore); break;
      case Occurred::kEqual: EXPECT_EQ(ba, Occurred::kEqual); EXPECT_EQ(a, b); break;
      case Occurred::kConcurrent: EXPECT_EQ(ba, Occurred::kConcurrent); break;
    }
    // The merge of two clocks is after-or-equal to both.
    const VectorClock m = a.merged(b);
    EXPECT_NE(compare(m, a), Occurred::kBefore);
    EXPECT_NE(compare(m, a), Occurred::kConcurrent);
    EXPECT_NE(compare(m, b), Occurred::kBefore);
    EXPECT_NE(compare(m, b), Occurred::kConcurrent);
  }
}

TEST(VectorClockTest, IncrementAddsOrBumpsAnEntryAndStampsTime) {
  VectorClock c;
  c.increment(7, 100);
  c.increment(3, 200);
  c.increment(7, 300);
  EXPECT_EQ(c.counter(7), 2u);
  EXPECT_EQ(c.counter(3), 1u);
  EXPECT_EQ(c.counter(5), 0u);
  EXPECT_EQ(c.timestamp_ms(), 300);
  ASSERT_EQ(c.entries().size(), 2u);
  EXPECT_EQ(c.entries()[0].node, 3u) << "entries stay sorted by node";
  EXPECT_EQ(compare(c, c.incremented(3, 0)), Occurred::kBefore);
}

TEST(VectorClockTest, IncrementRefusesToOverflow) {
  VectorClock c({{1, std::numeric_limits<uint64_t>::max()}});
  EXPECT_THROW(c.increment(1, 0), InvalidArgument);
  EXPECT_EQ(c.counter(1), std::numeric_limits<uint64_t>::max());
}

TEST(VectorClockTest, ConstructorSortsAndKeepsTheLargerDuplicate) {
  const VectorClock c({{5, 1}, {2, 3}, {5, 4}});
  ASSERT_EQ(c.entries().size(), 2u);
  EXPECT_EQ(c.entries()[0], (ClockEntry{2, 3}));
  EXPECT_EQ(c.entries()[1], (ClockEntry{5, 4}));
  EXPECT_THROW(VectorClock({{1, 0}}), InvalidArgument);
}

TEST(VectorClockTest, MergedTakesPointwiseMaxAndLaterTimestamp) {
  const VectorClock m = clock({{1, 3}, {2, 1}}, 10).merged(clock({{2, 5}, {4, 1}}, 20));
  EXPECT_EQ(m, clock({{1, 3}, {2, 5}, {4, 1}}));
  EXPECT_EQ(m.timestamp_ms(), 20);
}

TEST(VectorClockTest, EncodingMatchesTheDocumentedBytes) {
  // {1:1, 5:300} at 0x0102 ms: count 2; node 1, counter 1; delta 4, counter
  // 300 (0xac 0x02 in LEB128); the timestamp in 8 little-endian bytes.
  const std::string bytes = clock({{1, 1}, {5, 300}}, 0x0102).encode();
  EXPECT_EQ(bytes, std::string("\x02\x01\x01\x04\xac\x02\x02\x01\0\0\0\0\0\0", 14));
  EXPECT_EQ(VectorClock().encode(), std::string(9, '\0'));
}

TEST(VectorClockTest, EncodingRoundTripsRandomClocks) {
  auto rng = seeded_rng();
  for (int i = 0; i < 5000; ++i) {
    VectorClock c;
    const int n = static_cast<int>(rng() % 6);
    for (int j = 0; j < n; ++j) {
      const auto node = static_cast<NodeId>(rng() % 3 == 0 ? rng() : rng() % 16);
      const uint64_t counter = rng() % 4 == 0 ? rng() >> (rng() % 64) : 1 + rng() % 1000;
      c = c.merged(VectorClock({{node, std::max<uint64_t>(counter, 1)}}));
    }
    c.set_timestamp_ms(static_cast<int64_t>(rng() >> 1));
    const std::string bytes = c.encode();
    const VectorClock back = VectorClock::decode(bytes);
    EXPECT_EQ(back, c);
    EXPECT_EQ(back.timestamp_ms(), c.timestamp_ms());
    EXPECT_EQ(back.encode(), bytes);
  }
}

TEST(VectorClockTest, DecodeRejectsEveryTruncation) {
  const std::string bytes = clock({{1, 1}, {70000, 1ull << 40}}, 1700000000000).encode();
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW(VectorClock::decode(bytes.substr(0, n)), Corruption) << "prefix " << n;
  }
  EXPECT_THROW(VectorClock::decode(bytes + "x"), Corruption) << "trailing byte";
}

TEST(VectorClockTest, DecodeRejectsMalformedEntries) {
  using S = std::string;
  const S ts(8, '\0');
  EXPECT_THROW(VectorClock::decode(S("\x01\x01\x00", 3) + ts), Corruption) << "zero counter";
  EXPECT_THROW(VectorClock::decode(S("\x02\x01\x01\x00\x01", 5) + ts), Corruption)
      << "repeated node (delta 0)";
  // Otherwise valid clocks whose second node id passes 2^32 - 1: by a small
  // delta, and by a delta that would wrap 64 bits back to node 2.
  EXPECT_THROW(VectorClock::decode(S("\x02\xff\xff\xff\xff\x0f\x01\x01\x01", 9) + ts), Corruption)
      << "node id past 2^32";
  EXPECT_THROW(VectorClock::decode(S("\x02\x05\x01\xfd\xff\xff\xff\xff\xff\xff\xff\xff\x01\x01", 14) + ts),
               Corruption)
      << "delta wrapping 64 bits";
  // The same shapes within range decode, so the throws above are the checks.
  EXPECT_EQ(VectorClock::decode(S("\x02\xfe\xff\xff\xff\x0f\x01\x01\x01", 9) + ts),
            clock({{0xfffffffe, 1}, {0xffffffff, 1}}));
  EXPECT_THROW(VectorClock::decode(S("\xff\xff\xff\xff\x0f", 5)), Corruption)
      << "count larger than the bytes";
  EXPECT_THROW(VectorClock::decode(S(11, '\xff')), Corruption) << "varint too long";
  EXPECT_THROW(VectorClock::decode(S("\x00", 1) + S(8, '\xff')), Corruption)
      << "timestamp past int64";
}

TEST(VectorClockTest, DecodeFromAdvancesPastOneClock) {
  std::string two = clock({{1, 1}}, 5).encode() + clock({{2, 9}}, 6).encode();
  std::string_view in = two;
  EXPECT_EQ(VectorClock::decode_from(&in), clock({{1, 1}}));
  EXPECT_EQ(VectorClock::decode_from(&in), clock({{2, 9}}));
  EXPECT_TRUE(in.empty());
}

TEST(VectorClockTest, TextFormRoundTrips) {
  const VectorClock c = clock({{0, 3}, {2, 1}});
  EXPECT_EQ(c.to_string(), "{0:3, 2:1}");
  EXPECT_EQ(VectorClock::parse(c.to_string()), c);
  EXPECT_EQ(VectorClock::parse("2:1,0:3"), c);
  EXPECT_EQ(VectorClock::parse(" { } "), VectorClock());
  EXPECT_EQ(VectorClock::parse(""), VectorClock());
}

TEST(VectorClockTest, NodesStampsAreWrittenWithAnAt) {
  const VectorClock c = clock({{0, 3}, {kStampBase + 2, 1}, {0xFFFFFFFF, 1}});
  EXPECT_EQ(c.to_string(), "{0:3, @2:1, @2147483647:1}");
  EXPECT_EQ(VectorClock::parse(c.to_string()), c);
  EXPECT_EQ(VectorClock::parse("@2:1").counter(kStampBase + 2), 1u);
  EXPECT_THROW(VectorClock::parse("2147483648:1"), InvalidArgument) << "a stamp without its @";
  EXPECT_THROW(VectorClock::parse("@2147483648:1"), InvalidArgument);
  EXPECT_THROW(VectorClock::parse("@:1"), InvalidArgument);
}

TEST(VectorClockTest, ParseRejectsBadText) {
  for (const char* bad : {"1", "1:", ":1", "1:0", "1:1,1:2", "{1:1", "1:1}", "a:1", "1:-1",
                          "1:1 2", "99999999999:1"}) {
    EXPECT_THROW(VectorClock::parse(bad), InvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace cairn::testing

// The log engine's checksum and record format (engines/log/).

#include <gtest/gtest.h>

#include <string>

#include "engines/log/crc32c.h"
#include "engines/log/record.h"
#include "tests/testing/test_util.h"

namespace cairn::internal {
namespace {

// Test vectors from RFC 3720 (iSCSI), appendix B.4, and the classic check
// value of "123456789".
TEST(Crc32cTest, KnownVectors) {
  EXPECT_EQ(crc32c(""), 0u);
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(ascending), 0x46DD794Eu);
  EXPECT_EQ(crc32c(descending), 0x113FDB5Cu);
}

TEST(Crc32cTest, HardwareAndTableAgreeAndExtend) {
  auto rng = testing::seeded_rng(7);
  for (size_t n : {0, 1, 7, 8, 9, 63, 64, 100, 1000, 4099}) {
    const std::string data = testing::random_bytes(rng, n);
    EXPECT_EQ(crc32c(data), crc32c_portable(data)) << n << " bytes";
    for (size_t cut : {size_t{0}, n / 3, n}) {
      const std::string_view v(data);
      EXPECT_EQ(crc32c(v.substr(cut), crc32c(v.substr(0, cut))), crc32c(data));
    }
  }
}

using logrec::Kind;
using logrec::Parse;
using logrec::Record;

TEST(LogRecordTest, RoundTripsWithTheDocumentedHeader) {
  std::string bytes;
  logrec::append(&bytes, Kind::kPut, 0x0102030405060708ull, "key", "value", bytes.size());
  ASSERT_EQ(bytes.size(), 20u + 3 + 5);
  EXPECT_EQ(bytes[4], 1) << "format version";
  EXPECT_EQ(bytes[5], 1) << "kind: put";
  EXPECT_EQ(bytes.substr(6, 2), std::string("\x03\x00", 2)) << "key size, little-endian";
  EXPECT_EQ(bytes.substr(8, 4), std::string("\x05\x00\x00\x00", 4));
  EXPECT_EQ(bytes.substr(12, 8), "\x08\x07\x06\x05\x04\x03\x02\x01");
  // The CRC: of the record's offset (8 bytes, here 0), then bytes 4 on.
  const uint32_t crc = crc32c(std::string_view(bytes).substr(4), crc32c(std::string(8, '\0')));
  EXPECT_EQ(static_cast<unsigned char>(bytes[0]), crc & 0xff);
  EXPECT_EQ(static_cast<unsigned char>(bytes[3]), crc >> 24);
  Record r;
  ASSERT_EQ(logrec::parse(bytes, &r, SIZE_MAX, 0), Parse::kOk);
  EXPECT_EQ(r.kind, Kind::kPut);
  EXPECT_EQ(r.sequence, 0x0102030405060708ull);
  EXPECT_EQ(r.key, "key");
  EXPECT_EQ(r.value, "value");
  EXPECT_EQ(r.size, bytes.size());
}

TEST(LogRecordTest, EmptyValuesLongKeysAndTombstones) {
  std::string bytes;
  const std::string long_key(logrec::kMaxKeySize, 'k');
  logrec::append(&bytes, Kind::kPut, 1, "k", "", bytes.size());
  logrec::append(&bytes, Kind::kPut, 2, long_key, "v", bytes.size());
  logrec::append(&bytes, Kind::kTombstone, 3, "gone", "", bytes.size());
  std::string_view rest = bytes;
  Record r;
  ASSERT_EQ(logrec::parse(rest, &r, SIZE_MAX, bytes.size() - rest.size()), Parse::kOk);
  EXPECT_EQ(r.value, "");
  rest.remove_prefix(r.size);
  ASSERT_EQ(logrec::parse(rest, &r, SIZE_MAX, bytes.size() - rest.size()), Parse::kOk);
  EXPECT_EQ(r.key, long_key);
  rest.remove_prefix(r.size);
  ASSERT_EQ(logrec::parse(rest, &r, SIZE_MAX, bytes.size() - rest.size()), Parse::kOk);
  EXPECT_EQ(r.kind, Kind::kTombstone);
  EXPECT_EQ(r.key, "gone");
  rest.remove_prefix(r.size);
  EXPECT_EQ(logrec::parse(rest, &r, SIZE_MAX, bytes.size() - rest.size()), Parse::kTruncated) << "the end of the bytes";
}

TEST(LogRecordTest, ARecordIsGoodOnlyWhereItWasWrittenUntilResealed) {
  std::string bytes;
  logrec::append(&bytes, Kind::kPut, 5, "key", "value", 4096);
  Record r;
  EXPECT_EQ(logrec::parse(bytes, &r, SIZE_MAX, 4096), Parse::kOk);
  for (uint64_t elsewhere : {uint64_t{0}, uint64_t{4095}, uint64_t{4097}, uint64_t{1} << 40}) {
    EXPECT_EQ(logrec::parse(bytes, &r, SIZE_MAX, elsewhere), Parse::kCorrupt) << elsewhere;
  }
  logrec::reseal(&bytes, 123);
  EXPECT_EQ(logrec::parse(bytes, &r, SIZE_MAX, 123), Parse::kOk);
  EXPECT_EQ(r.key, "key");
  EXPECT_EQ(r.value, "value");
  EXPECT_EQ(logrec::parse(bytes, &r, SIZE_MAX, 4096), Parse::kCorrupt);
}

TEST(LogRecordTest, EveryTruncationIsTruncatedAndEveryBitFlipIsCaught) {
  std::string bytes;
  logrec::append(&bytes, Kind::kPut, 42, "some key", "and its value, of a few bytes", bytes.size());
  Record r;
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(logrec::parse(std::string_view(bytes).substr(0, n), &r, SIZE_MAX, 0), Parse::kTruncated) << n;
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      const Parse p = logrec::parse(damaged, &r, SIZE_MAX, 0);
      // A flipped length may make the record look longer than the bytes:
      // truncated is then the honest answer; it is never kOk.
      EXPECT_NE(p, Parse::kOk) << "byte " << i << " bit " << bit;
    }
  }
}

TEST(LogRecordTest, ImpossibleHeadersAreCorruptNotBelieved) {
  std::string bytes;
  logrec::append(&bytes, Kind::kPut, 1, "k", "v", bytes.size());
  Record r;
  std::string bad = bytes;
  bad[4] = 9;  // an unknown format version
  EXPECT_EQ(logrec::parse(bad, &r, SIZE_MAX, 0), Parse::kCorrupt);
  bad = bytes;
  bad[5] = 7;  // an unknown kind
  EXPECT_EQ(logrec::parse(bad, &r, SIZE_MAX, 0), Parse::kCorrupt);
  bad = bytes;
  bad[6] = bad[7] = 0;  // an empty key
  EXPECT_EQ(logrec::parse(bad, &r, SIZE_MAX, 0), Parse::kCorrupt);
  // A value size past what the caller allows is corrupt, not a reason to
  // wait for 4 GiB of bytes.
  bad = bytes;
  bad[11] = '\x7f';
  EXPECT_EQ(logrec::parse(bad, &r, 1 << 20, 0), Parse::kCorrupt);
}

TEST(LogRecordTest, IndexEntriesRoundTripAndCatchEveryBitFlip) {
  std::string bytes;
  logrec::append_index(&bytes, "the key", 1234, 0x0102030405ull, 77);
  ASSERT_EQ(bytes.size(), logrec::kIndexHeaderSize + 7);
  logrec::IndexEntry e;
  ASSERT_EQ(logrec::parse_index(bytes, &e), Parse::kOk);
  EXPECT_EQ(e.key, "the key");
  EXPECT_EQ(e.record_size, 1234u);
  EXPECT_EQ(e.record_offset, 0x0102030405ull);
  EXPECT_EQ(e.sequence, 77u);
  EXPECT_EQ(e.size, bytes.size());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_EQ(logrec::parse_index(std::string_view(bytes).substr(0, n), &e), Parse::kTruncated);
  }
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (int bit = 0; bit < 8; ++bit) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ (1 << bit));
      EXPECT_NE(logrec::parse_index(damaged, &e), Parse::kOk) << "byte " << i << " bit " << bit;
    }
  }
}

}  // namespace
}  // namespace cairn::internal

#include "core/version_list.h"

#include <gtest/gtest.h>

#include "cairn/errors.h"
#include "tests/testing/test_util.h"

namespace cairn::internal {
namespace {

using cairn::testing::clock;
using cairn::testing::versioned;

TEST(VersionListTest, RoundTripsSiblingsAndEmptyValues) {
  const std::vector<Versioned> versions = {versioned("", {{1, 1}}), versioned("abc", {{2, 7}}),
                                           versioned(std::string("\0\xff", 2), {})};
  const std::string bytes = encode_versions(versions);
  EXPECT_EQ(bytes[0], '\x01') << "format byte";
  EXPECT_EQ(decode_versions(bytes), versions);
}

TEST(VersionListTest, DecodeRejectsEveryTruncationAndBadHeaders) {
  const std::string bytes =
      encode_versions(std::vector<Versioned>{versioned("value", {{1, 1}}), versioned("x", {{2, 1}})});
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW(decode_versions(bytes.substr(0, n)), Corruption) << "prefix " << n;
  }
  EXPECT_THROW(decode_versions(bytes + "!"), Corruption) << "trailing byte";
  std::string wrong_format = bytes;
  wrong_format[0] = '\x02';
  EXPECT_THROW(decode_versions(wrong_format), Corruption);
  EXPECT_THROW(decode_versions(std::string("\x01\x00", 2)), Corruption) << "zero versions";
  EXPECT_THROW(decode_versions(std::string("\x01\x05\x00\x00\x7f", 5)), Corruption)
      << "value length past the end";
}

TEST(VersionListTest, DecodeNeverOverReadsRandomBytes) {
  auto rng = cairn::testing::seeded_rng();
  int decoded = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string bytes = cairn::testing::random_bytes(rng, rng() % 40);
    if (!bytes.empty()) bytes[0] = '\x01';
    std::vector<Versioned> versions;
    try {
      versions = decode_versions(bytes);
    } catch (const Corruption&) {
      continue;
    }
    ++decoded;
    // Whatever decodes is a real version list: it survives a round trip.
    EXPECT_EQ(decode_versions(encode_versions(versions)), versions);
  }
  RecordProperty("valid_random_inputs", decoded);
}

TEST(VersionListTest, ApplyPutRejectsWithoutChangingAnything) {
  std::vector<Versioned> stored = {versioned("a", {{1, 2}}), versioned("b", {{2, 1}})};
  const auto before = stored;
  EXPECT_EQ(apply_put(&stored, versioned("old", {{1, 1}})), PutResult::kObsolete);
  EXPECT_EQ(apply_put(&stored, versioned("same", {{2, 1}})), PutResult::kObsolete);
  EXPECT_EQ(stored, before);
  EXPECT_EQ(apply_put(&stored, versioned("c", {{3, 1}})), PutResult::kStored);
  EXPECT_EQ(stored.size(), 3u);
  EXPECT_EQ(apply_put(&stored, versioned("all", {{1, 2}, {2, 1}, {3, 1}})), PutResult::kStored);
  EXPECT_EQ(stored, std::vector<Versioned>{versioned("all", {{1, 2}, {2, 1}, {3, 1}})});
}

TEST(VersionListTest, ApplyRemoveKeepsConcurrentAndNewer) {
  std::vector<Versioned> stored = {versioned("a", {{1, 2}}), versioned("b", {{2, 1}})};
  EXPECT_FALSE(apply_remove(&stored, clock({{1, 1}})));
  EXPECT_TRUE(apply_remove(&stored, clock({{1, 3}})));
  EXPECT_EQ(stored, std::vector<Versioned>{versioned("b", {{2, 1}})});
}

}  // namespace
}  // namespace cairn::internal

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
  // One version whose clock is fine but whose value length runs past the
  // end (the count check passes: 1 version, 11 bytes follow).
  const std::string clock_bytes = clock({}, 7).encode();
  EXPECT_THROW(decode_versions(std::string("\x01\x01", 2) + clock_bytes + "\x7f" + "x"), Corruption)
      << "value length past the end";
  EXPECT_EQ(decode_versions(std::string("\x01\x01", 2) + clock_bytes + "\x01" + "x").at(0).value, "x")
      << "the same record with a true length decodes";
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

// Applies a put to `stored` through the encoded path, as engines do.
PutResult put(std::vector<Versioned>* stored, const Versioned& v) {
  std::string out;
  const std::string in = stored->empty() ? std::string() : encode_versions(*stored);
  const PutResult r = apply_put_encoded(in, v, &out);
  // Stored with nothing to write: a copy held already.
  if (r == PutResult::kStored && !out.empty()) *stored = decode_versions(out);
  return r;
}

bool remove(std::vector<Versioned>* stored, const VectorClock& c) {
  std::string out;
  if (!apply_remove_encoded(encode_versions(*stored), c, &out)) return false;
  *stored = out.empty() ? std::vector<Versioned>{} : decode_versions(out);
  return true;
}

TEST(VersionListTest, ApplyPutRejectsOrReplacesWhatItDominates) {
  std::vector<Versioned> stored;
  EXPECT_EQ(put(&stored, versioned("a", {{1, 2}})), PutResult::kStored) << "into nothing";
  EXPECT_EQ(put(&stored, versioned("b", {{2, 1}})), PutResult::kStored);
  const auto before = stored;
  EXPECT_EQ(put(&stored, versioned("old", {{1, 1}})), PutResult::kObsolete);
  EXPECT_EQ(put(&stored, versioned("same", {{2, 1}})), PutResult::kObsolete);
  EXPECT_EQ(stored, before);
  EXPECT_EQ(put(&stored, versioned("c", {{3, 1}})), PutResult::kStored);
  EXPECT_EQ(stored.size(), 3u);
  EXPECT_EQ(put(&stored, versioned("all", {{1, 2}, {2, 1}, {3, 1}})), PutResult::kStored);
  EXPECT_EQ(stored, std::vector<Versioned>{versioned("all", {{1, 2}, {2, 1}, {3, 1}})});
}

TEST(VersionListTest, ApplyPutKeepsSiblingBytesExactly) {
  // Kept siblings are copied through as bytes: their timestamps survive.
  std::vector<Versioned> stored = {Versioned{"a", clock({{1, 1}}, 111)}};
  ASSERT_EQ(put(&stored, Versioned{"b", clock({{2, 1}}, 222)}), PutResult::kStored);
  ASSERT_EQ(stored.size(), 2u);
  EXPECT_EQ(stored[0].clock.timestamp_ms(), 111);
  EXPECT_EQ(stored[1].clock.timestamp_ms(), 222);
}

TEST(VersionListTest, ApplyRemoveKeepsConcurrentAndNewer) {
  std::vector<Versioned> stored = {versioned("a", {{1, 2}}), versioned("b", {{2, 1}})};
  EXPECT_FALSE(remove(&stored, clock({{1, 1}})));
  EXPECT_TRUE(remove(&stored, clock({{1, 3}})));
  EXPECT_EQ(stored, std::vector<Versioned>{versioned("b", {{2, 1}})});
  EXPECT_TRUE(remove(&stored, clock({{2, 1}})));
  EXPECT_TRUE(stored.empty());
}

// Lists without write ids keep format 0x01, byte for byte what older
// cairn wrote and reads; a write id brings format 0x02, whose flags say
// whether one follows.
TEST(VersionListTest, WriteIdsTakeTheSecondFormatOnlyWhenPresent) {
  const std::vector<Versioned> plain = {versioned("a", {{1, 1}})};
  EXPECT_EQ(encode_versions(plain)[0], '\x01');
  Versioned with_id = versioned("b", {{2, 1}});
  with_id.write_id = 0x0102030405060708ULL;
  const std::vector<Versioned> mixed = {plain[0], with_id};
  const std::string bytes = encode_versions(mixed);
  EXPECT_EQ(bytes[0], '\x02');
  EXPECT_EQ(decode_versions(bytes), mixed);
  // A stamp is a request, never encoded.
  Versioned stamped = plain[0];
  stamped.stamp = kStampBase + 1;
  EXPECT_EQ(decode_versions(encode_versions(std::vector<Versioned>{stamped})), plain);
  // Unknown flags, a zero id and a cut id are corrupt.
  std::string bad = encode_versions(mixed);
  const size_t flags = 1 + 1 + plain[0].clock.encode().size();  // format, count, clock
  bad[flags] = '\x04';
  EXPECT_THROW(decode_versions(bad), Corruption);
  std::string zero = encode_versions(std::vector<Versioned>{with_id});
  std::fill(zero.begin() + 2 + with_id.clock.encode().size() + 1,
            zero.begin() + 2 + with_id.clock.encode().size() + 9, '\0');
  EXPECT_THROW(decode_versions(zero), Corruption);
  EXPECT_THROW(decode_versions(bytes.substr(0, bytes.size() - 3)), Corruption);
}

TEST(VersionListTest, AStampIsCheckedThenGiven) {
  std::vector<Versioned> stored;
  Versioned v = versioned("x", {{1, 1}});
  v.stamp = kStampBase + 3;
  v.write_id = 5;
  ASSERT_EQ(put(&stored, v), PutResult::kStored);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].clock, clock({{1, 1}, {kStampBase + 3, 1}}));
  EXPECT_EQ(stored[0].write_id, 5u);
  EXPECT_EQ(put(&stored, v), PutResult::kStored) << "a retry: held already";
  EXPECT_EQ(stored.size(), 1u);
  Versioned racer = versioned("y", {{1, 1}});
  racer.stamp = kStampBase + 3;
  EXPECT_EQ(put(&stored, racer), PutResult::kObsolete) << "its clock is before the stored one";
  // The same write id and value on a newer clock is no retry: a copy to
  // join, stamped like any write.
  Versioned newer = versioned("x", {{1, 2}});
  newer.stamp = kStampBase + 3;
  newer.write_id = 5;
  ASSERT_EQ(put(&stored, newer), PutResult::kStored);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].clock, clock({{1, 2}, {kStampBase + 3, 1}}));
  Versioned later = versioned("z", {{1, 2}, {kStampBase + 3, 1}, {2, 1}});
  later.stamp = kStampBase + 3;
  ASSERT_EQ(put(&stored, later), PutResult::kStored);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].clock, clock({{1, 2}, {2, 1}, {kStampBase + 3, 2}}));
}

TEST(VersionListTest, CopiesOfOneWriteJoin) {
  Versioned a = versioned("x", {{1, 1}, {kStampBase + 0, 1}});
  Versioned b = versioned("x", {{1, 1}, {kStampBase + 1, 1}});
  a.write_id = b.write_id = 9;
  std::vector<Versioned> stored = {versioned("older", {{1, 1}}), versioned("other", {{4, 1}})};
  ASSERT_EQ(put(&stored, a), PutResult::kStored);
  ASSERT_EQ(put(&stored, b), PutResult::kStored);
  ASSERT_EQ(stored.size(), 2u) << "older replaced; other concurrent";
  EXPECT_EQ(stored[0].value, "other");
  EXPECT_EQ(stored[1].clock, a.clock.merged(b.clock));
  EXPECT_EQ(stored[1].write_id, 9u);
  EXPECT_EQ(put(&stored, a), PutResult::kStored);
  EXPECT_EQ(stored.size(), 2u);
  // The same id on another value: not a copy.
  Versioned c = versioned("y", {{1, 1}, {kStampBase + 2, 1}});
  c.write_id = 9;
  ASSERT_EQ(put(&stored, c), PutResult::kStored);
  EXPECT_EQ(stored.size(), 3u);
  EXPECT_EQ(stored[2].write_id, 0u) << "stored without the id it shares with another write";
}

TEST(VersionListTest, ReplacedWriteIdsRoundTripAndAreChecked) {
  Versioned v = versioned("a", {{1, 1}});
  v.replaces = {7, 8};
  const std::vector<Versioned> one = {v};
  const std::string bytes = encode_versions(one);
  EXPECT_EQ(bytes[0], '\x02') << "a list needs the second format, even without a write id";
  EXPECT_EQ(decode_versions(bytes), one);
  // flags, count, ids: a zero count, a count over the limit, a zero id and
  // a cut list are corrupt.
  const size_t at = 2 + v.clock.encode().size();
  ASSERT_EQ(bytes[at], '\x02');
  std::string bad = bytes;
  bad[at + 1] = '\x00';
  EXPECT_THROW(decode_versions(bad), Corruption);
  bad[at + 1] = static_cast<char>(kMaxReplaces + 1);
  EXPECT_THROW(decode_versions(bad), Corruption);
  bad = bytes;
  std::fill(bad.begin() + static_cast<std::ptrdiff_t>(at) + 2,
            bad.begin() + static_cast<std::ptrdiff_t>(at) + 10, '\0');
  EXPECT_THROW(decode_versions(bad), Corruption);
  EXPECT_THROW(decode_versions(bytes.substr(0, at + 6)), Corruption);
  // A longer list than the format holds keeps its newest ids.
  Versioned longer = versioned("b", {{1, 1}});
  for (uint64_t w = 1; w <= kMaxReplaces + 3; ++w) longer.replaces.push_back(w);
  const auto back = decode_versions(encode_versions(std::vector<Versioned>{longer}));
  EXPECT_EQ(back.at(0).replaces.size(), kMaxReplaces);
  EXPECT_EQ(back.at(0).replaces.front(), 1u);
}

// The split write: home 0 stored it and failed before it answered, home 1
// stored it again and named it among the writes its copy replaces. A
// writer read home 1's copy and replaced it; home 0's copy turns up later.
TEST(VersionListTest, AVersionSupersedesTheCopiesOfWritesItReplaced) {
  constexpr uint64_t kSplit = 42;
  Versioned first = versioned("x", {{1, 1}, {kStampBase + 0, 1}});
  first.write_id = kSplit;
  Versioned second = versioned("x", {{1, 1}, {kStampBase + 1, 1}});
  second.write_id = kSplit;
  second.replaces = {kSplit};
  Versioned next = versioned("y", {{1, 1}, {2, 1}, {kStampBase + 1, 1}});
  next.stamp = kStampBase + 1;
  next.write_id = 43;

  std::vector<Versioned> stored = {second};
  ASSERT_EQ(put(&stored, next), PutResult::kStored);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].value, "y");
  EXPECT_EQ(stored[0].replaces, std::vector<uint64_t>{kSplit}) << "handed on by what it replaced";
  const Versioned replacement = stored[0];
  EXPECT_EQ(compare(first.clock, replacement.clock), Occurred::kConcurrent)
      << "the clocks alone would keep the late copy beside it";
  EXPECT_EQ(put(&stored, first), PutResult::kObsolete) << "the late copy";
  EXPECT_EQ(stored, std::vector<Versioned>{replacement});

  // The other way round: the late copy held (alone, or joined with the
  // second), the replacement arriving.
  for (const std::vector<Versioned>& held :
       {std::vector<Versioned>{first}, std::vector<Versioned>{first, second}}) {
    std::vector<Versioned> there;
    for (const Versioned& v : held) ASSERT_EQ(put(&there, v), PutResult::kStored);
    ASSERT_EQ(there.size(), 1u);
    ASSERT_EQ(put(&there, replacement), PutResult::kStored);
    EXPECT_EQ(there, std::vector<Versioned>{replacement});
  }

  // A real concurrent writer stays beside it, and a successor of both
  // takes the list on.
  Versioned racer = versioned("z", {{3, 1}, {kStampBase + 0, 2}});
  racer.write_id = 44;
  ASSERT_EQ(put(&stored, racer), PutResult::kStored);
  ASSERT_EQ(stored.size(), 2u);
  const Versioned both{"w", replacement.clock.merged(racer.clock)};
  ASSERT_EQ(put(&stored, both), PutResult::kStored);
  ASSERT_EQ(stored.size(), 1u);
  EXPECT_EQ(stored[0].replaces, std::vector<uint64_t>{kSplit});
  EXPECT_EQ(put(&stored, first), PutResult::kObsolete);

  // Held copy and replacement both present (the replacement came without
  // its list): the replacement again, with the list, drops the copy.
  std::vector<Versioned> mixed = {first, versioned("y", {{1, 1}, {2, 1}, {kStampBase + 1, 2}})};
  mixed[1].write_id = 43;
  ASSERT_EQ(put(&mixed, replacement), PutResult::kStored);
  EXPECT_EQ(mixed, std::vector<Versioned>{replacement});
}

TEST(VersionListTest, ReplacedListsAreBounded) {
  std::vector<Versioned> stored;
  for (uint64_t i = 1; i <= kMaxReplaces + 4; ++i) {
    Versioned v = versioned("v" + std::to_string(i), {{1, i}});
    v.write_id = 100 + i;
    v.replaces = {100 + i};  // each a split write
    ASSERT_EQ(put(&stored, v), PutResult::kStored);
    ASSERT_EQ(stored.size(), 1u);
  }
  ASSERT_EQ(stored[0].replaces.size(), kMaxReplaces);
  EXPECT_EQ(stored[0].replaces.front(), 100 + kMaxReplaces + 4) << "the incoming write's own first";
}

TEST(VersionListTest, AReplacedIdOfZeroIsRefusedBeforeAnythingIsWritten) {
  std::vector<Versioned> stored;
  Versioned v = versioned("a", {{1, 1}});
  v.replaces = {0};
  EXPECT_THROW(put(&stored, v), InvalidArgument);
  EXPECT_TRUE(stored.empty());
}

TEST(VersionListTest, ApplyOnMalformedBytesIsCorruption) {
  std::string out;
  EXPECT_THROW(apply_put_encoded(std::string("\x01\x05", 2), versioned("v", {}), &out), Corruption);
  EXPECT_THROW(apply_remove_encoded(std::string("\x07", 1), clock({}), &out), Corruption);
}

}  // namespace
}  // namespace cairn::internal

#include "cairn/compression_store.h"

#include <gtest/gtest.h>

#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/memory_store.h"
#include "layers/compression/codecs.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {
namespace {

using internal::Codec;

class CompressionStoreTest : public ::testing::TestWithParam<Codec> {
 protected:
  // A compression layer over a memory engine we can read under it.
  void SetUp() override {
    auto memory = std::make_unique<MemoryStore>();
    raw_ = memory.get();
    CompressionOptions o;
    o.name = "c";
    o.codec = GetParam();
    o.level = internal::default_level(GetParam());
    o.min_size = 32;
    store_ = std::make_unique<CompressionStore>(std::move(memory), o);
  }

  MemoryStore* raw_;
  std::unique_ptr<CompressionStore> store_;
};

std::string compressible(size_t n) {
  std::string s;
  while (s.size() < n) s += R"({"name":"Ada Lovelace","email":"ada@example.org","id":1815},)";
  s.resize(n);
  return s;
}

TEST_P(CompressionStoreTest, CompressibleValuesShrinkAndReadBack) {
  const std::string value = compressible(4096);
  ASSERT_EQ(store_->put("k", Versioned{value, clock({{1, 1}})}), PutResult::kStored);
  const std::string stored = raw_->get("k").at(0).value;
  EXPECT_EQ(stored[0], static_cast<char>(GetParam())) << "the codec byte";
  EXPECT_LT(stored.size(), value.size() / 4) << "this text compresses well";
  EXPECT_EQ(store_->get("k").at(0).value, value);
  const std::vector<std::string> keys = {"k"};
  EXPECT_EQ(store_->get_all(keys).at("k").at(0).value, value);
  auto it = store_->scan();
  ASSERT_TRUE(it->next());
  EXPECT_EQ(it->versions().at(0).value, value);
}

TEST_P(CompressionStoreTest, SmallAndIncompressibleValuesAreStoredRaw) {
  ASSERT_EQ(store_->put("small", versioned("tiny", {{1, 1}})), PutResult::kStored);
  EXPECT_EQ(raw_->get("small").at(0).value, std::string("\0tiny", 5));
  auto rng = seeded_rng();
  const std::string noise = random_bytes(rng, 1000);
  ASSERT_EQ(store_->put("noise", Versioned{noise, clock({{1, 1}})}), PutResult::kStored);
  EXPECT_EQ(raw_->get("noise").at(0).value, std::string(1, '\0') + noise)
      << "compressing would not have saved a byte";
  EXPECT_EQ(store_->get("noise").at(0).value, noise);
}

TEST_P(CompressionStoreTest, DamagedValuesAreCorruptionNamingTheKey) {
  const std::string value = compressible(2000);
  ASSERT_EQ(store_->put("k", Versioned{value, clock({{1, 1}})}), PutResult::kStored);
  std::string stored = raw_->get("k").at(0).value;
  auto rng = seeded_rng(static_cast<uint64_t>(GetParam()));
  int detected = 0;
  for (int i = 0; i < 200; ++i) {
    std::string bad = stored;
    bad[3 + rng() % (bad.size() - 3)] ^= static_cast<char>(1 + rng() % 255);
    if (i % 3 == 0) bad.resize(3 + rng() % (bad.size() - 3));  // truncated too
    raw_->remove("k", clock({{1, 1000}}));
    raw_->put("k", Versioned{bad, clock({{1, 1}})});
    try {
      const std::string back = store_->get("k").at(0).value;
      // A flipped bit inside a literal can decode to other bytes of the
      // right length (snappy and lz4 carry no checksum); it never crashes.
      EXPECT_EQ(back.size(), value.size());
    } catch (const Corruption& e) {
      ++detected;
      EXPECT_NE(std::string(e.what()).find("store 'c' key \"k\""), std::string::npos) << e.what();
    }
  }
  EXPECT_GT(detected, 50);
}

INSTANTIATE_TEST_SUITE_P(Codecs, CompressionStoreTest,
                         ::testing::Values(Codec::kZstd, Codec::kLz4, Codec::kSnappy, Codec::kGzip),
                         [](const auto& p) { return std::string(internal::to_string(p.param)); });

TEST(CompressionFormatTest, LengthClaimsAreCheckedBeforeAllocating) {
  std::string out;
  // zstd, claiming 2^40 bytes.
  const std::string bomb = std::string("\x01\x80\x80\x80\x80\x80\x20", 7) + "junk";
  try {
    internal::decode_value(bomb, 16 << 20, &out);
    FAIL();
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("above the limit"), std::string::npos) << e.what();
  }
  EXPECT_THROW(internal::decode_value("", 100, &out), Corruption);
  EXPECT_THROW(internal::decode_value("\x09x", 100, &out), Corruption) << "unknown codec";
  EXPECT_THROW(internal::decode_value("\x02", 100, &out), Corruption) << "no length";
}

// Forwards to a store it does not own, so two layers can share one engine.
class Borrowed final : public Store {
 public:
  explicit Borrowed(Store* s) : s_(s) {}
  void get_into(std::string_view k, std::vector<Versioned>* out) override { s_->get_into(k, out); }
  PutResult put_stamped(std::string_view k, const Versioned& v, PutReply* c) override {
    return s_->put_stamped(k, v, c);
  }
  bool remove(std::string_view k, const VectorClock& c) override { return s_->remove(k, c); }
  std::unique_ptr<StoreIterator> scan() override { return s_->scan(); }
  void close() override {}
  std::string describe() const override { return "borrowed"; }

 private:
  Store* s_;
};

TEST(CompressionFormatTest, ValuesWrittenWithOneCodecReadUnderAnother) {
  MemoryStore shared;
  auto layer = [&](Codec c) {
    CompressionOptions o;
    o.codec = c;
    o.min_size = 0;
    return CompressionStore(std::make_unique<Borrowed>(&shared), o);
  };
  auto gzip = layer(Codec::kGzip);
  ASSERT_EQ(gzip.put("old", Versioned{compressible(500), clock({{1, 1}})}), PutResult::kStored);
  const std::string stored = shared.get("old").at(0).value;
  EXPECT_EQ(stored[0], static_cast<char>(Codec::kGzip));
  EXPECT_EQ(stored.substr(3, 2), "\x1f\x8b") << "a real gzip stream after the header";
  // The store switched to zstd: old gzip values still read, new ones are zstd.
  auto zstd = layer(Codec::kZstd);
  EXPECT_EQ(zstd.get("old").at(0).value, compressible(500));
  ASSERT_EQ(zstd.put("new", Versioned{compressible(600), clock({{1, 1}})}), PutResult::kStored);
  EXPECT_EQ(shared.get("new").at(0).value[0], static_cast<char>(Codec::kZstd));
  EXPECT_EQ(gzip.get("new").at(0).value, compressible(600));
}

TEST(CompressionFormatTest, RawValuesAreCheckedAgainstTheLimitToo) {
  std::string out;
  EXPECT_THROW(internal::decode_value(std::string(1, '\0') + std::string(101, 'x'), 100, &out),
               Corruption);
  internal::decode_value(std::string(1, '\0') + std::string(100, 'x'), 100, &out);
  EXPECT_EQ(out.size(), 100u);
}

TEST(CompressionConfigTest, LayerFromYaml) {
  auto store = Config::parse(R"(
stores:
  s:
    stack:
      - compress: {codec: zstd, level: 19, min_size: 0}
      - engine: memory
)",
                             "c.yaml")
                   .open("s");
  EXPECT_EQ(store->describe().substr(0, store->describe().find('\n')),
            "compress (zstd level 19, values from 0 B)");
  EXPECT_THROW(Config::parse("stores:\n  s:\n    stack: [{compress: brotli}, {engine: memory}]\n")
                   .open("s"),
               ConfigError);
  EXPECT_THROW(Config::parse("stores:\n  s:\n    stack: [{compress: {codec: gzip, level: 12}}, "
                             "{engine: memory}]\n")
                   .open("s"),
               ConfigError);
}

}  // namespace
}  // namespace cairn::testing

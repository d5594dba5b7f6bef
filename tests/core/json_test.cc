#include "cairn/json.h"

#include <gtest/gtest.h>

#include <cmath>

#include "cairn/errors.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

TEST(JsonTest, ParsesEveryKindOfValue) {
  const Json j = Json::parse(
      R"( {"n": null, "t": true, "f": false, "i": -42, "d": 2.5, "e": 1e3,
          "s": "a\"b\\c\n\u00e9\ud83d\ude00", "a": [1, [2], {}], "o": {"x": []}} )");
  EXPECT_TRUE(j.find("n")->is_null());
  EXPECT_EQ(j.find("t")->as_bool(), true);
  EXPECT_EQ(j.find("i")->as_int(), -42);
  EXPECT_EQ(j.find("d")->as_double(), 2.5);
  EXPECT_EQ(j.find("e")->type(), Json::Type::kDouble);
  EXPECT_EQ(j.find("s")->as_string(), "a\"b\\c\n\xc3\xa9\xf0\x9f\x98\x80");
  EXPECT_EQ(j.find("a")->as_array().size(), 3u);
  EXPECT_TRUE(j.find("o")->find("x")->as_array().empty());
  EXPECT_EQ(j.find("missing"), nullptr);
}

TEST(JsonTest, DumpAndParseRoundTrip) {
  const Json j = Json::object({{"name", "Ada"},
                               {"id", 7},
                               {"tags", Json::array({"a", 1, 2.5, nullptr, true})},
                               {"nested", Json::object({{"k", Json::array({})}})},
                               {"big", int64_t{-9223372036854775807 - 1}},
                               {"ctl", std::string("\x01\x1f\x7f", 3)}});
  const std::string text = j.dump();
  EXPECT_EQ(Json::parse(text), j) << text;
  EXPECT_EQ(Json(2.0).dump(), "2.0") << "a double stays a double when read back";
  EXPECT_EQ(Json::parse(Json(2.0).dump()).type(), Json::Type::kDouble);
  EXPECT_TRUE(std::isnan(Json::parse("NaN").as_double()));
  EXPECT_EQ(Json::parse("-Infinity").as_double(), -HUGE_VAL);
  EXPECT_EQ(Json(0.1).dump(), "0.1") << "shortest round-trip form";
}

TEST(JsonTest, IntegersTooLargeBecomeDoubles) {
  EXPECT_EQ(Json::parse("9223372036854775807").as_int(), INT64_MAX);
  EXPECT_EQ(Json::parse("9223372036854775808").type(), Json::Type::kDouble);
  EXPECT_EQ(Json::parse("9223372036854775808").as_double(), 9223372036854775808.0);
}

TEST(JsonTest, NumbersBeyondADoubleAreRefusedNotZeroed) {
  EXPECT_THROW(Json::parse("1e400"), InvalidArgument);
  EXPECT_THROW(Json::parse("-1e400"), InvalidArgument);
  EXPECT_THROW(Json::parse(std::string(400, '9')), InvalidArgument);
  EXPECT_EQ(Json::parse("1e-400").as_double(), 0.0) << "an underflow rounds to zero";
  EXPECT_GT(Json::parse("4e-320").as_double(), 0.0) << "denormals survive";
}

TEST(JsonTest, ErrorsNameTheOffset) {
  for (const auto& [text, fragment] : std::vector<std::pair<std::string, std::string>>{
           {"", "offset 0: expected a value"},
           {"{\"a\" 1}", "offset 5: expected ':'"},
           {"[1, 2", "offset 5: expected ',' or ']'"},
           {"\"abc", "unterminated string"},
           {"01", "leading zeros"},
           {"1.", "expected digits after '.'"},
           {"{\"a\":1,\"a\":2}", "duplicate member name"},
           {"\"\\ud800x\"", "high surrogate"},
           {"\"\\udc00\"", "lone low surrogate"},
           {"\"\xff\"", "invalid UTF-8"},
           {"\"a\nb\"", "control character"},
           {"[1] x", "unexpected text after the value"},
           {"nul", "unexpected character 'n'"},
       }) {
    try {
      Json::parse(text);
      ADD_FAILURE() << "parsed: " << text;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos)
          << text << " -> " << e.what();
    }
  }
}

TEST(JsonTest, DepthIsLimited) {
  EXPECT_NO_THROW(Json::parse(std::string(200, '[') + std::string(200, ']')));
  EXPECT_THROW(Json::parse(std::string(100000, '[')), InvalidArgument) << "no stack overflow";
}

TEST(JsonTest, AccessorsRejectOtherTypes) {
  EXPECT_THROW(Json("x").as_int(), InvalidArgument);
  EXPECT_THROW(Json(1).as_string(), InvalidArgument);
  EXPECT_EQ(Json(3).as_double(), 3.0) << "integers widen to double";
  Json j;
  j["a"] = 1;
  EXPECT_EQ(j.dump(), R"({"a":1})");
  EXPECT_NE(Json(1), Json(1.0));
}

TEST(JsonTest, RandomTreesRoundTrip) {
  auto rng = testing::seeded_rng();
  std::function<Json(int)> random = [&](int depth) -> Json {
    switch (rng() % (depth > 3 ? 5 : 7)) {
      case 0: return Json();
      case 1: return Json(rng() % 2 == 0);
      case 2: return Json(static_cast<int64_t>(rng()));
      case 3: return Json(static_cast<double>(static_cast<int64_t>(rng() % 100000)) / 64.0);
      case 4: {
        std::string s;
        for (size_t i = rng() % 8; i > 0; --i) s.push_back(static_cast<char>(0x20 + rng() % 0x5f));
        return Json(s);
      }
      case 5: {
        Json::Array a;
        for (size_t i = rng() % 4; i > 0; --i) a.push_back(random(depth + 1));
        return Json(a);
      }
      default: {
        Json::Object o;
        for (size_t i = rng() % 4; i > 0; --i) o["k" + std::to_string(rng() % 10)] = random(depth + 1);
        return Json(o);
      }
    }
  };
  for (int i = 0; i < 2000; ++i) {
    const Json j = random(0);
    EXPECT_EQ(Json::parse(j.dump()), j) << j.dump();
  }
}

}  // namespace
}  // namespace cairn

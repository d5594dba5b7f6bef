#include "cairn/json_serializer.h"

#include <absl/strings/str_cat.h>
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <limits>

#include "cairn/errors.h"
#include "tests/testing/test_util.h"

namespace cairn {
namespace {

std::shared_ptr<const JsonSerializer> serializer(std::string_view schema) {
  return JsonSerializer::make({Json::parse(schema)});
}

std::string bytes_of(std::initializer_list<int> b) {
  std::string s;
  for (int c : b) s.push_back(static_cast<char>(c));
  return s;
}

// The message of the InvalidArgument that writing `value` throws.
std::string write_error(const JsonSerializer& s, const Json& value) {
  try {
    s.to_bytes(value);
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  ADD_FAILURE() << "no error writing " << value.dump();
  return "";
}

TEST(JsonSerializerTest, EncodingMatchesTheDocumentedBytes) {
  // Version byte 0; object marker 1; fields in name order: id (int32), then
  // name (2-byte length, UTF-8).
  auto s = serializer(R"({"name": "string", "id": "int32"})");
  EXPECT_EQ(s->to_bytes(Json::object({{"name", "Al"}, {"id", 7}})),
            bytes_of({0, 1, 0, 0, 0, 7, 0, 2, 'A', 'l'}));
  EXPECT_EQ(serializer(R"(["int16"])")->to_bytes(Json::array({1, -2})),
            bytes_of({0, 0, 2, 0, 1, 0xff, 0xfe}));
  EXPECT_EQ(serializer(R"("boolean")")->to_bytes(Json()), bytes_of({0, 0xff})) << "null boolean";
  EXPECT_EQ(serializer(R"("string")")->to_bytes(Json()), bytes_of({0, 0xff, 0xff}));
  EXPECT_EQ(s->schema_text(0), R"({"id":"int32","name":"string"})");
}

TEST(JsonSerializerTest, BadSchemasSayWhatIsWrong) {
  for (const auto& [schema, fragment] : std::vector<std::pair<std::string, std::string>>{
           {R"("int33")", "unknown type 'int33'"},
           {R"([])", "exactly one element type"},
           {R"(["int8", "int8"])", "exactly one element type"},
           {R"({"a": {"b": 7}})", "at a.b: expected a type name"},
           {R"({"a": ["nope"]})", "at a[]: unknown type 'nope'"},
       }) {
    try {
      serializer(schema);
      ADD_FAILURE() << schema;
    } catch (const InvalidArgument& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  }
  std::string deep = R"("int8")";
  for (int i = 0; i < 40; ++i) deep = "[" + deep + "]";
  EXPECT_THROW(serializer(deep), InvalidArgument) << "nesting is bounded";
  EXPECT_THROW(JsonSerializer::make({}), InvalidArgument);
}

TEST(JsonSerializerTest, EveryTypeHasADistinctNull) {
  for (const char* type : {"boolean", "int8", "int16", "int32", "int64", "float32", "float64",
                           "date", "string", "bytes"}) {
    for (const std::string& schema :
         {absl::StrCat("\"", type, "\""), absl::StrCat("[\"", type, "\"]"),
          absl::StrCat("{\"f\": \"", type, "\"}")}) {
      auto s = serializer(schema);
      EXPECT_TRUE(s->read(s->to_bytes(Json())).is_null()) << schema;
    }
  }
  // A list holding nulls, and an object whose field is null.
  auto list = serializer(R"(["int32"])");
  const Json with_nulls = Json::array({1, nullptr, 3});
  EXPECT_EQ(list->read(list->to_bytes(with_nulls)), with_nulls);
}

TEST(JsonSerializerTest, NullSentinelsCannotBeWrittenAsValues) {
  EXPECT_NE(write_error(*serializer(R"("int8")"), Json(-128)).find("-128 is reserved for null"),
            std::string::npos);
  EXPECT_NE(write_error(*serializer(R"("int32")"), Json(int64_t{INT32_MIN})).find("reserved for null"),
            std::string::npos);
  EXPECT_NE(write_error(*serializer(R"("int64")"), Json(INT64_MIN)).find("reserved"), std::string::npos);
  EXPECT_NE(write_error(*serializer(R"("date")"), Json(INT64_MIN)).find("reserved"), std::string::npos);
  EXPECT_NE(write_error(*serializer(R"("float64")"),
                        Json(std::numeric_limits<double>::denorm_min()))
                .find("reserved for null"),
            std::string::npos);
  EXPECT_NE(write_error(*serializer(R"("float32")"),
                        Json(static_cast<double>(std::numeric_limits<float>::denorm_min())))
                .find("reserved for null"),
            std::string::npos);
  // The neighbours of each sentinel are ordinary values.
  auto i8 = serializer(R"("int8")");
  EXPECT_EQ(i8->read(i8->to_bytes(Json(-127))), Json(-127));
  auto f64 = serializer(R"("float64")");
  EXPECT_EQ(f64->read(f64->to_bytes(Json(0.0))), Json(0.0));
}

TEST(JsonSerializerTest, MismatchesNameTheFieldPath) {
  auto s = serializer(R"({"name": "string", "id": "int32", "emails": ["string"],
                          "address": {"city": "string", "zip": "int32"}})");
  const Json good = Json::parse(R"({"name": "Ada", "id": 7, "emails": ["a@x.org"],
                                    "address": {"city": "London", "zip": 1}})");
  EXPECT_EQ(s->read(s->to_bytes(good)), good);
  auto with = [&](const std::string& field, Json v) {
    Json j = good;
    j[field] = std::move(v);
    return j;
  };
  auto without = [&](const std::string& field) {
    Json j = good;
    j.as_object().erase(field);
    return j;
  };
  EXPECT_NE(write_error(*s, without("id")).find("field id: missing"), std::string::npos);
  Json misspelt = without("name");
  misspelt["nmae"] = "Ada";
  EXPECT_NE(write_error(*s, misspelt).find("field nmae: unknown field (the schema has: address, emails, id, name)"),
            std::string::npos)
      << write_error(*s, misspelt);
  EXPECT_NE(write_error(*s, with("id", "seven")).find("field id: expected int32, found string"),
            std::string::npos);
  EXPECT_NE(write_error(*s, with("id", int64_t{1} << 40)).find("field id: 1099511627776 is out of int32 range"),
            std::string::npos);
  EXPECT_NE(write_error(*s, with("emails", Json::array({"a", 5}))).find("field emails[1]: expected string, found integer"),
            std::string::npos);
  EXPECT_NE(write_error(*s, with("address", Json::parse(R"({"city": 1, "zip": 2})")))
                .find("field address.city: expected string"),
            std::string::npos);
  EXPECT_NE(write_error(*s, with("name", "\xff")).find("field name: not UTF-8"), std::string::npos);
  EXPECT_NE(write_error(*s, Json(3)).find("the value: expected object, found integer"), std::string::npos);
}

TEST(JsonSerializerTest, NumbersWidenButNeverTruncate) {
  auto f = serializer(R"({"f": "float32", "d": "float64"})");
  const Json in = Json::object({{"f", 3}, {"d", 2}});  // integers into float fields
  EXPECT_EQ(f->read(f->to_bytes(in)), Json::object({{"f", 3.0}, {"d", 2.0}}));
  EXPECT_THROW(f->to_bytes(Json::object({{"f", 1e300}, {"d", 0.0}})), InvalidArgument);
  EXPECT_THROW(serializer(R"("int16")")->to_bytes(Json(1.5)), InvalidArgument);
  auto inf = f->read(f->to_bytes(Json::object({{"f", HUGE_VAL}, {"d", std::nan("")}})));
  EXPECT_TRUE(std::isinf(inf.find("f")->as_double()));
  EXPECT_TRUE(std::isnan(inf.find("d")->as_double()));
}

TEST(JsonSerializerTest, LongStringsUseTheFourByteLength) {
  auto s = serializer(R"("bytes")");
  const std::string big(40000, '\xab');
  const std::string bytes = s->to_bytes(Json(big));
  EXPECT_EQ(bytes.substr(1, 4), bytes_of({0xc0, 0x00, 0x9c, 0x40}));
  EXPECT_EQ(s->read(bytes).as_string(), big);
}

TEST(JsonSerializerTest, OldValuesReadWithTheSchemaTheyWereWrittenWith) {
  auto v0 = JsonSerializer::make({Json::parse(R"({"name": "string"})")});
  auto v01 = JsonSerializer::make(
      {Json::parse(R"({"name": "string"})"), Json::parse(R"({"name": "string", "id": "int32"})")});
  const std::string old_bytes = v0->to_bytes(Json::object({{"name", "Ada"}}));
  EXPECT_EQ(old_bytes[0], 0) << "version 0";
  EXPECT_EQ(v01->read(old_bytes), Json::object({{"name", "Ada"}}));
  const std::string new_bytes = v01->to_bytes(Json::object({{"name", "Bo"}, {"id", 2}}));
  EXPECT_EQ(new_bytes[0], 1) << "writes use the newest schema";
  EXPECT_EQ(v01->read(new_bytes), Json::object({{"name", "Bo"}, {"id", 2}}));
  EXPECT_THROW(v01->to_bytes(Json::object({{"name", "Cy"}})), InvalidArgument)
      << "new writes follow the new schema";
  try {
    v0->read(new_bytes);
    FAIL();
  } catch (const Corruption& e) {
    EXPECT_NE(std::string(e.what()).find("schema version 1 is unknown"), std::string::npos);
  }
  EXPECT_NE(v01->describe().find("(version 1 of 2)"), std::string::npos);
}

TEST(JsonSerializerTest, MalformedBytesAreCorruptionNeverAnOverRead) {
  auto s = serializer(R"({"a": ["string"], "b": "float64", "c": {"d": "bytes"}})");
  const std::string bytes = s->to_bytes(Json::parse(
      R"({"a": ["x", "yz", null], "b": 1.5, "c": {"d": "raw"}})"));
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_THROW(s->read(bytes.substr(0, n)), Corruption) << "prefix " << n;
  }
  EXPECT_THROW(s->read(bytes + "!"), Corruption) << "trailing byte";
  std::string bad_marker = bytes;
  bad_marker[1] = 7;  // neither 1 (present) nor 0xff (null)
  EXPECT_THROW(s->read(bad_marker), Corruption);
  // A list claiming more elements than bytes: refused before allocating.
  auto list = serializer(R"(["int64"])");
  EXPECT_THROW(list->read(bytes_of({0, 0xff, 0xfe, 0xff, 0xff})), Corruption);
  auto rng = testing::seeded_rng();
  for (int i = 0; i < 20000; ++i) {
    std::string garbage = testing::random_bytes(rng, rng() % 48);
    if (!garbage.empty()) garbage[0] = 0;  // past the version check, into the body
    try {
      const Json v = s->read(garbage);
      EXPECT_EQ(s->read(s->to_bytes(v)), v) << "whatever decodes re-encodes";
    } catch (const Corruption&) {
    }
  }
}

TEST(JsonSerializerTest, TextFormUsesIsoDatesAndBase64Bytes) {
  auto s = serializer(R"({"at": "date", "blob": "bytes", "n": "int8"})");
  const std::string bytes =
      s->parse_text(R"({"at": "2026-11-22T10:00:00.250Z", "blob": "AP8=", "n": 3})");
  const Json v = s->read(bytes);
  EXPECT_EQ(v.find("at")->as_int(), 1795341600250);
  EXPECT_EQ(v.find("blob")->as_string(), std::string("\x00\xff", 2));
  EXPECT_EQ(s->format_text(bytes), R"({"at":"2026-11-22T10:00:00.250Z","blob":"AP8=","n":3})");
  EXPECT_EQ(s->read(s->parse_text(R"({"at": 0, "blob": "", "n": null})")).find("at")->as_int(), 0);
  EXPECT_THROW(s->parse_text(R"({"at": "yesterday", "blob": "", "n": 1})"), InvalidArgument);
  EXPECT_THROW(s->parse_text(R"({"at": "2026-02-31T00:00:00Z", "blob": "", "n": 1})"), InvalidArgument)
      << "no 31st of February";
  EXPECT_THROW(s->parse_text(R"({"at": "2025-02-29T00:00:00Z", "blob": "", "n": 1})"), InvalidArgument)
      << "2025 is not a leap year";
  EXPECT_NO_THROW(s->parse_text(R"({"at": "2024-02-29T23:59:59Z", "blob": "", "n": 1})"));
  EXPECT_THROW(s->parse_text(R"({"at": 0, "blob": "!!", "n": 1})"), InvalidArgument);
  EXPECT_THROW(s->parse_text(R"({"at": 0, "blob": "", "n": 1)"), InvalidArgument) << "bad JSON text";
}

// ---- Property: random schemas and values round-trip --------------------------

struct Generator {
  std::mt19937_64 rng;

  Json schema(int depth) {
    static const char* kTypes[] = {"boolean", "int8",   "int16", "int32",  "int64",
                                   "float32", "float64", "date", "string", "bytes"};
    const uint64_t pick = rng() % (depth > 2 ? 10 : 13);
    if (pick < 10) return Json(kTypes[pick]);
    if (pick == 10) return Json::array({schema(depth + 1)});
    Json::Object o;
    for (size_t i = 1 + rng() % 4; i > 0; --i) o["f" + std::to_string(rng() % 8)] = schema(depth + 1);
    return Json(o);
  }

  Json value(const Json& s) {
    if (rng() % 8 == 0) return Json();  // null, any type
    if (s.is_array()) {
      Json::Array a;
      for (size_t i = rng() % 4; i > 0; --i) a.push_back(value(s.as_array()[0]));
      return Json(a);
    }
    if (s.is_object()) {
      Json::Object o;
      for (const auto& [name, t] : s.as_object()) o[name] = value(t);
      return Json(o);
    }
    const std::string& t = s.as_string();
    auto in_range = [&](int bits) {
      const int64_t span = (bits == 64) ? INT64_MAX : (int64_t{1} << (bits - 1)) - 1;
      return static_cast<int64_t>(rng() % static_cast<uint64_t>(span)) *
             (rng() % 2 ? 1 : -1);  // never the MIN sentinel
    };
    if (t == "boolean") return Json(rng() % 2 == 0);
    if (t == "int8") return Json(in_range(8));
    if (t == "int16") return Json(in_range(16));
    if (t == "int32") return Json(in_range(32));
    if (t == "int64" || t == "date") return Json(in_range(64));
    // Doubles exactly representable in float32, so both widths round-trip.
    if (t == "float32" || t == "float64") {
      return Json(static_cast<double>(static_cast<int32_t>(rng() % 2000000) - 1000000) / 1024.0);
    }
    std::string str;
    for (size_t i = rng() % 12; i > 0; --i) {
      str.push_back(t == "bytes" ? static_cast<char>(rng()) : static_cast<char>('a' + rng() % 26));
    }
    return Json(str);
  }
};

TEST(JsonSerializerTest, RandomSchemasAndValuesRoundTrip) {
  Generator g{testing::seeded_rng()};
  for (int i = 0; i < 500; ++i) {
    const Json schema = g.schema(0);
    auto s = JsonSerializer::make({schema});
    for (int k = 0; k < 20; ++k) {
      const Json v = g.value(schema);
      const std::string bytes = s->to_bytes(v);
      ASSERT_EQ(s->read(bytes), v) << "schema " << schema.dump() << " value " << v.dump();
      // And every truncation of it is refused.
      if (k == 0) {
        for (size_t n = 0; n < bytes.size(); ++n) {
          EXPECT_THROW(s->read(bytes.substr(0, n)), Corruption)
              << "schema " << schema.dump() << " prefix " << n;
        }
      }
    }
  }
}

}  // namespace
}  // namespace cairn

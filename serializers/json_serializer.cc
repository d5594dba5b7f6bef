#include "cairn/json_serializer.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <limits>

#include "cairn/errors.h"
#include "cairn/registry.h"
#include "catalogue/builtin.h"
#include "core/utf8.h"
#include "core/varint.h"

namespace cairn {

namespace {

using internal::ByteReader;

// ---- Schemas -----------------------------------------------------------------

enum class Kind : uint8_t {
  kBoolean,
  kInt8,
  kInt16,
  kInt32,
  kInt64,
  kFloat32,
  kFloat64,
  kDate,
  kString,
  kBytes,
  kArray,
  kObject,
};

struct Primitive {
  const char* name;
  Kind kind;
};
constexpr Primitive kPrimitives[] = {
    {"boolean", Kind::kBoolean}, {"int8", Kind::kInt8},       {"int16", Kind::kInt16},
    {"int32", Kind::kInt32},     {"int64", Kind::kInt64},     {"float32", Kind::kFloat32},
    {"float64", Kind::kFloat64}, {"date", Kind::kDate},       {"string", Kind::kString},
    {"bytes", Kind::kBytes},
};

const char* kind_name(Kind k) {
  if (k == Kind::kArray) return "array";
  if (k == Kind::kObject) return "object";
  for (const Primitive& p : kPrimitives) {
    if (p.kind == k) return p.name;
  }
  return "?";
}

// A parsed schema. Object fields are kept in name order, the order they
// are written in.
struct Type {
  Kind kind = Kind::kBoolean;
  std::vector<Type> children;      // array: one element type; object: fields
  std::vector<std::string> names;  // object: field names, sorted
};

// Schemas nest no deeper than this, so reading and writing stay well clear
// of the stack's limits.
constexpr int kMaxSchemaDepth = 32;

Type parse_type(const Json& s, const std::string& path, int depth) {
  auto fail = [&](const std::string& what) -> Type {
    throw InvalidArgument("json schema" + (path.empty() ? "" : " at " + path) + ": " + what);
  };
  if (depth > kMaxSchemaDepth) {
    return fail("nested deeper than " + std::to_string(kMaxSchemaDepth) + " levels");
  }
  if (s.is_string()) {
    for (const Primitive& p : kPrimitives) {
      if (s.as_string() == p.name) return Type{p.kind, {}, {}};
    }
    return fail("unknown type '" + s.as_string() +
                "' (expected boolean, int8, int16, int32, int64, float32, float64, date, "
                "string, bytes, [T] or {field: T})");
  }
  if (s.is_array()) {
    if (s.as_array().size() != 1) return fail("a list schema has exactly one element type, [T]");
    Type t{Kind::kArray, {}, {}};
    t.children.push_back(parse_type(s.as_array()[0], path + "[]", depth + 1));
    return t;
  }
  if (s.is_object()) {
    Type t{Kind::kObject, {}, {}};
    for (const auto& [name, field] : s.as_object()) {  // sorted by name
      t.names.push_back(name);
      t.children.push_back(parse_type(field, path.empty() ? name : path + "." + name, depth + 1));
    }
    return t;
  }
  return fail(std::string("expected a type name, [T] or {field: T}, found ") +
              Json::type_name(s.type()));
}

Json type_to_json(const Type& t) {
  if (t.kind == Kind::kArray) return Json::array({type_to_json(t.children[0])});
  if (t.kind == Kind::kObject) {
    Json::Object o;
    for (size_t i = 0; i < t.names.size(); ++i) o.emplace(t.names[i], type_to_json(t.children[i]));
    return Json(std::move(o));
  }
  return Json(kind_name(t.kind));
}

// ---- Paths in messages -------------------------------------------------------

std::string field_path(const std::string& parent, const std::string& field) {
  return parent.empty() ? field : parent + "." + field;
}
std::string index_path(const std::string& parent, size_t i) {
  return (parent.empty() ? "(value)" : parent) + "[" + std::to_string(i) + "]";
}
std::string where(const std::string& path) { return path.empty() ? "the value" : "field " + path; }

// ---- Fixed-width big-endian integers and the null sentinels ------------------

template <typename U>
void put_be(std::string* out, U v) {
  char buf[sizeof(U)];
  for (int i = sizeof(U) - 1; i >= 0; --i) {
    buf[i] = static_cast<char>(v & 0xff);
    v = static_cast<U>(v >> 8);
  }
  out->append(buf, sizeof(U));
}

int kind_bits(Kind k) {
  switch (k) {
    case Kind::kInt8: return 8;
    case Kind::kInt16: return 16;
    case Kind::kInt32: return 32;
    default: return 64;  // int64, date
  }
}

// Null is the smallest value of an integer type (as in Voldemort), so that
// value itself cannot be stored.
int64_t int_min(int bits) {
  return bits == 64 ? std::numeric_limits<int64_t>::min() : -(int64_t{1} << (bits - 1));
}
int64_t int_max(int bits) {
  return bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (bits - 1)) - 1;
}

void put_int(std::string* out, int bits, int64_t v) {
  switch (bits) {
    case 8: out->push_back(static_cast<char>(v)); break;
    case 16: put_be(out, static_cast<uint16_t>(v)); break;
    case 32: put_be(out, static_cast<uint32_t>(v)); break;
    default: put_be(out, static_cast<uint64_t>(v)); break;
  }
}

// Float nulls are the smallest positive denormal (Java's MIN_VALUE), again
// as in Voldemort: a value no application writes on purpose.
constexpr uint32_t kFloat32Null = 1;
constexpr uint64_t kFloat64Null = 1;

// Lengths (of strings, bytes and lists): a 2-byte count below 0x7fff, else
// 4 bytes with the top two bits set; -1 (0xffff) is null. 4-byte counts stop
// below 0x3fff0000 so that their first two bytes never read as 0xffff.
constexpr uint32_t kMaxLength = 0x3ffeffff;

void put_length(std::string* out, size_t n, const std::string& path) {
  if (n > kMaxLength) {
    throw InvalidArgument("json: " + where(path) + " has length " + std::to_string(n) +
                          "; the format's limit is " + std::to_string(kMaxLength));
  }
  if (n < 0x7fff) {
    put_be(out, static_cast<uint16_t>(n));
  } else {
    put_be(out, static_cast<uint32_t>(n) | 0xc0000000u);
  }
}

// ---- Dates and base64 (text form only) ---------------------------------------

// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

// "YYYY-MM-DDTHH:MM:SS[.mmm]Z" -> ms since the epoch.
bool parse_iso_date(std::string_view s, int64_t* ms) {
  auto num = [&](size_t at, size_t len, int* out) {
    if (at + len > s.size()) return false;
    int v = 0;
    for (size_t i = at; i < at + len; ++i) {
      if (s[i] < '0' || s[i] > '9') return false;
      v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
  };
  int y, mo, d, h, mi, sec, milli = 0;
  if (!num(0, 4, &y) || s.size() < 20 || s[4] != '-' || !num(5, 2, &mo) || s[7] != '-' ||
      !num(8, 2, &d) || s[10] != 'T' || !num(11, 2, &h) || s[13] != ':' || !num(14, 2, &mi) ||
      s[16] != ':' || !num(17, 2, &sec)) {
    return false;
  }
  size_t at = 19;
  if (s[at] == '.') {
    if (!num(at + 1, 3, &milli)) return false;
    at += 4;
  }
  if (at + 1 != s.size() || s[at] != 'Z') return false;
  static constexpr int kDays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mo < 1 || mo > 12 || d < 1 || d > kDays[mo - 1] || h > 23 || mi > 59 || sec > 59) return false;
  const bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
  if (mo == 2 && d == 29 && !leap) return false;
  const int64_t days = days_from_civil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  *ms = ((days * 24 + h) * 60 + mi) * 60000 + int64_t{sec} * 1000 + milli;
  return true;
}

std::string format_iso_date(int64_t ms) {
  int64_t secs = ms / 1000, milli = ms % 1000;
  if (milli < 0) {
    milli += 1000;
    --secs;
  }
  const std::time_t t = static_cast<std::time_t>(secs);
  std::tm tm;
  if (gmtime_r(&t, &tm) == nullptr) return std::to_string(ms);
  char buf[48];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(milli));
  return buf;
}

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

std::string base64_encode(std::string_view in) {
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = (uint32_t{static_cast<unsigned char>(in[i])} << 16) |
                       (uint32_t{static_cast<unsigned char>(in[i + 1])} << 8) |
                       static_cast<unsigned char>(in[i + 2]);
    for (int k = 18; k >= 0; k -= 6) out.push_back(kBase64[(v >> k) & 63]);
  }
  const size_t rest = in.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{static_cast<unsigned char>(in[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<unsigned char>(in[i + 1])} << 8;
    out.push_back(kBase64[(v >> 18) & 63]);
    out.push_back(kBase64[(v >> 12) & 63]);
    out.push_back(rest == 2 ? kBase64[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

bool base64_decode(std::string_view in, std::string* out) {
  if (in.size() % 4 != 0) return false;
  out->clear();
  for (size_t i = 0; i < in.size(); i += 4) {
    uint32_t v = 0;
    int pad = 0;
    for (size_t k = 0; k < 4; ++k) {
      const char c = in[i + k];
      const char* p = c == '=' ? nullptr : std::strchr(kBase64, c);
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        ++pad;
        v <<= 6;
        continue;
      }
      if (p == nullptr || c == '\0' || pad > 0) return false;
      v = (v << 6) | static_cast<uint32_t>(p - kBase64);
    }
    out->push_back(static_cast<char>(v >> 16));
    if (pad < 2) out->push_back(static_cast<char>((v >> 8) & 0xff));
    if (pad < 1) out->push_back(static_cast<char>(v & 0xff));
  }
  return true;
}

// ---- Writing -----------------------------------------------------------------

[[noreturn]] void mismatch(const std::string& path, const std::string& what) {
  throw InvalidArgument("json: " + where(path) + ": " + what);
}

void write_value(const Type& t, const Json& v, const std::string& path, std::string* out);

void write_int(const Type& t, const Json& v, const std::string& path, std::string* out) {
  const int bits = kind_bits(t.kind);
  if (v.is_null()) {
    put_int(out, bits, int_min(bits));
    return;
  }
  if (!v.is_int()) mismatch(path, std::string("expected ") + kind_name(t.kind) + ", found " +
                                      Json::type_name(v.type()));
  const int64_t i = v.as_int();
  if (i <= int_min(bits) || i > int_max(bits)) {
    mismatch(path, std::to_string(i) + " is out of " + kind_name(t.kind) + " range [" +
                       std::to_string(int_min(bits) + 1) + ", " + std::to_string(int_max(bits)) +
                       "] (" + std::to_string(int_min(bits)) + " is reserved for null)");
  }
  put_int(out, bits, i);
}

void write_value(const Type& t, const Json& v, const std::string& path, std::string* out) {
  switch (t.kind) {
    case Kind::kBoolean:
      if (v.is_null()) {
        out->push_back(static_cast<char>(0xff));
      } else if (v.is_bool()) {
        out->push_back(v.as_bool() ? 1 : 0);
      } else {
        mismatch(path, std::string("expected boolean, found ") + Json::type_name(v.type()));
      }
      return;
    case Kind::kInt8:
    case Kind::kInt16:
    case Kind::kInt32:
    case Kind::kInt64:
      write_int(t, v, path, out);
      return;
    case Kind::kDate:
      if (v.is_string()) {
        int64_t ms = 0;
        if (!parse_iso_date(v.as_string(), &ms)) {
          mismatch(path, "'" + v.as_string() + "' is not a date (YYYY-MM-DDTHH:MM:SS[.mmm]Z)");
        }
        write_int(t, Json(ms), path, out);
      } else {
        write_int(t, v, path, out);
      }
      return;
    case Kind::kFloat32: {
      if (v.is_null()) {
        put_be(out, kFloat32Null);
        return;
      }
      if (!v.is_number()) {
        mismatch(path, std::string("expected float32, found ") + Json::type_name(v.type()));
      }
      const double d = v.as_double();
      if (std::isfinite(d) && std::fabs(d) > std::numeric_limits<float>::max()) {
        mismatch(path, std::to_string(d) + " is out of float32 range");
      }
      const uint32_t bits = std::bit_cast<uint32_t>(static_cast<float>(d));
      if (bits == kFloat32Null) mismatch(path, "the smallest float32 denormal is reserved for null");
      put_be(out, bits);
      return;
    }
    case Kind::kFloat64: {
      if (v.is_null()) {
        put_be(out, kFloat64Null);
        return;
      }
      if (!v.is_number()) {
        mismatch(path, std::string("expected float64, found ") + Json::type_name(v.type()));
      }
      const uint64_t bits = std::bit_cast<uint64_t>(v.as_double());
      if (bits == kFloat64Null) mismatch(path, "the smallest float64 denormal is reserved for null");
      put_be(out, bits);
      return;
    }
    case Kind::kString:
    case Kind::kBytes: {
      if (v.is_null()) {
        put_be(out, uint16_t{0xffff});
        return;
      }
      if (!v.is_string()) {
        mismatch(path, std::string("expected ") + kind_name(t.kind) + ", found " +
                           Json::type_name(v.type()));
      }
      const std::string& s = v.as_string();
      if (t.kind == Kind::kString) {
        const size_t valid = internal::valid_utf8_prefix(s);
        if (valid != s.size()) mismatch(path, "not UTF-8 at byte " + std::to_string(valid));
      }
      put_length(out, s.size(), path);
      out->append(s);
      return;
    }
    case Kind::kArray: {
      if (v.is_null()) {
        put_be(out, uint16_t{0xffff});
        return;
      }
      if (!v.is_array()) mismatch(path, std::string("expected array, found ") + Json::type_name(v.type()));
      const Json::Array& a = v.as_array();
      put_length(out, a.size(), path);
      for (size_t i = 0; i < a.size(); ++i) write_value(t.children[0], a[i], index_path(path, i), out);
      return;
    }
    case Kind::kObject: {
      if (v.is_null()) {
        out->push_back(static_cast<char>(0xff));
        return;
      }
      if (!v.is_object()) {
        mismatch(path, std::string("expected object, found ") + Json::type_name(v.type()));
      }
      const Json::Object& o = v.as_object();
      // Unknown fields first: a misspelt name is both unknown and missing,
      // and "unknown field 'nmae'" is the more useful message.
      for (const auto& [name, value] : o) {
        if (!std::binary_search(t.names.begin(), t.names.end(), name)) {
          std::string known;
          for (const std::string& n : t.names) known += (known.empty() ? "" : ", ") + n;
          mismatch(field_path(path, name), "unknown field (the schema has: " + known + ")");
        }
      }
      out->push_back(1);
      for (size_t i = 0; i < t.names.size(); ++i) {
        const Json* f = v.find(t.names[i]);
        if (f == nullptr) mismatch(field_path(path, t.names[i]), "missing (write null explicitly)");
        write_value(t.children[i], *f, field_path(path, t.names[i]), out);
      }
      return;
    }
  }
}

// ---- Reading -----------------------------------------------------------------

[[noreturn]] void corrupt(const std::string& path, const std::string& what) {
  throw Corruption("json: " + where(path) + ": " + what);
}

template <typename U>
U get_be(ByteReader* r, const std::string& path, const char* what) {
  std::string_view b;
  if (!r->bytes(sizeof(U), &b)) corrupt(path, std::string("truncated ") + what);
  U v = 0;
  for (char c : b) v = static_cast<U>((v << 8) | static_cast<unsigned char>(c));
  return v;
}

// Reads a length; returns false for null.
bool get_length(ByteReader* r, const std::string& path, size_t* n) {
  const uint16_t first = get_be<uint16_t>(r, path, "length");
  if (first == 0xffff) return false;
  if (first < 0x8000) {
    *n = first;
    return true;
  }
  if ((first & 0xc000) != 0xc000) corrupt(path, "bad length prefix");
  const uint16_t second = get_be<uint16_t>(r, path, "length");
  *n = (size_t{first & 0x3fffu} << 16) | second;
  return true;
}

Json read_value(const Type& t, ByteReader* r, const std::string& path) {
  switch (t.kind) {
    case Kind::kBoolean: {
      uint8_t b = 0;
      if (!r->byte(&b)) corrupt(path, "truncated boolean");
      if (b == 0xff) return Json();
      if (b > 1) corrupt(path, "boolean byte " + std::to_string(b));
      return Json(b == 1);
    }
    case Kind::kInt8:
    case Kind::kInt16:
    case Kind::kInt32:
    case Kind::kInt64:
    case Kind::kDate: {
      const int bits = kind_bits(t.kind);
      int64_t v;
      switch (bits) {
        case 8: v = static_cast<int8_t>(get_be<uint8_t>(r, path, "int8")); break;
        case 16: v = static_cast<int16_t>(get_be<uint16_t>(r, path, "int16")); break;
        case 32: v = static_cast<int32_t>(get_be<uint32_t>(r, path, "int32")); break;
        default: v = static_cast<int64_t>(get_be<uint64_t>(r, path, kind_name(t.kind))); break;
      }
      return v == int_min(bits) ? Json() : Json(v);
    }
    case Kind::kFloat32: {
      const uint32_t bits = get_be<uint32_t>(r, path, "float32");
      if (bits == kFloat32Null) return Json();
      return Json(static_cast<double>(std::bit_cast<float>(bits)));
    }
    case Kind::kFloat64: {
      const uint64_t bits = get_be<uint64_t>(r, path, "float64");
      if (bits == kFloat64Null) return Json();
      return Json(std::bit_cast<double>(bits));
    }
    case Kind::kString:
    case Kind::kBytes: {
      size_t n = 0;
      if (!get_length(r, path, &n)) return Json();
      std::string_view s;
      if (!r->bytes(n, &s)) corrupt(path, "truncated " + std::string(kind_name(t.kind)));
      if (t.kind == Kind::kString && !internal::is_utf8(s)) corrupt(path, "string is not UTF-8");
      return Json(s);
    }
    case Kind::kArray: {
      size_t n = 0;
      if (!get_length(r, path, &n)) return Json();
      // Every element takes at least one byte: refuse counts the bytes
      // cannot hold before allocating for them.
      if (n > r->remaining()) corrupt(path, "list of " + std::to_string(n) + " elements in " +
                                                std::to_string(r->remaining()) + " bytes");
      Json::Array a;
      a.reserve(n);
      for (size_t i = 0; i < n; ++i) a.push_back(read_value(t.children[0], r, index_path(path, i)));
      return Json(std::move(a));
    }
    case Kind::kObject: {
      uint8_t marker = 0;
      if (!r->byte(&marker)) corrupt(path, "truncated object");
      if (marker == 0xff) return Json();
      if (marker != 1) corrupt(path, "object marker " + std::to_string(marker));
      Json::Object o;
      for (size_t i = 0; i < t.names.size(); ++i) {
        o.emplace(t.names[i], read_value(t.children[i], r, field_path(path, t.names[i])));
      }
      return Json(std::move(o));
    }
  }
  corrupt(path, "unknown type");
}

// ---- Text form: dates and bytes in JSON text ---------------------------------

// Dates may be written as ISO strings (handled when writing); bytes fields
// arrive as base64 and become raw bytes.
Json from_text(const Type& t, Json v, const std::string& path) {
  if (v.is_null()) return v;
  switch (t.kind) {
    case Kind::kBytes: {
      if (!v.is_string()) return v;  // write() reports the mismatch
      std::string raw;
      if (!base64_decode(v.as_string(), &raw)) mismatch(path, "bytes must be written as base64");
      return Json(std::move(raw));
    }
    case Kind::kArray:
      if (v.is_array()) {
        Json::Array& a = v.as_array();
        for (size_t i = 0; i < a.size(); ++i) a[i] = from_text(t.children[0], std::move(a[i]), index_path(path, i));
      }
      return v;
    case Kind::kObject:
      if (v.is_object()) {
        for (size_t i = 0; i < t.names.size(); ++i) {
          auto it = v.as_object().find(t.names[i]);
          if (it != v.as_object().end()) {
            it->second = from_text(t.children[i], std::move(it->second), field_path(path, t.names[i]));
          }
        }
      }
      return v;
    default:
      return v;
  }
}

Json to_text(const Type& t, Json v) {
  if (v.is_null()) return v;
  switch (t.kind) {
    case Kind::kBytes: return Json(base64_encode(v.as_string()));
    case Kind::kDate: return Json(format_iso_date(v.as_int()));
    case Kind::kArray:
      for (Json& e : v.as_array()) e = to_text(t.children[0], std::move(e));
      return v;
    case Kind::kObject:
      for (size_t i = 0; i < t.names.size(); ++i) {
        Json& f = v.as_object().at(t.names[i]);
        f = to_text(t.children[i], std::move(f));
      }
      return v;
    default:
      return v;
  }
}

}  // namespace

struct JsonSerializer::Impl {
  std::vector<Type> schemas;
  std::vector<std::string> texts;
};

std::shared_ptr<const JsonSerializer> JsonSerializer::make(const std::vector<Json>& schemas) {
  if (schemas.empty()) throw InvalidArgument("json serializer: no schema given");
  if (schemas.size() > 256) {
    throw InvalidArgument("json serializer: " + std::to_string(schemas.size()) +
                          " schema versions; the version byte allows 256");
  }
  auto impl = std::make_unique<Impl>();
  for (size_t v = 0; v < schemas.size(); ++v) {
    const std::string version = schemas.size() > 1 ? " version " + std::to_string(v) : "";
    Json s = schemas[v];
    try {
      // Schema text given as a string: "{\"name\":\"string\"}".
      if (s.is_string() && !s.as_string().empty() &&
          (s.as_string()[0] == '{' || s.as_string()[0] == '[' || s.as_string()[0] == '"')) {
        s = Json::parse(s.as_string());
      }
      impl->schemas.push_back(parse_type(s, "", 0));
    } catch (const InvalidArgument& e) {
      throw InvalidArgument(std::string(e.what()) + version);
    }
    impl->texts.push_back(type_to_json(impl->schemas.back()).dump());
  }
  return std::shared_ptr<const JsonSerializer>(new JsonSerializer(std::move(impl)));
}

JsonSerializer::JsonSerializer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
JsonSerializer::~JsonSerializer() = default;

int JsonSerializer::versions() const { return static_cast<int>(impl_->schemas.size()); }
std::string JsonSerializer::schema_text(int v) const { return impl_->texts.at(static_cast<size_t>(v)); }

std::string JsonSerializer::describe() const {
  const int n = versions();
  return "json " + impl_->texts.back() +
         (n > 1 ? " (version " + std::to_string(n - 1) + " of " + std::to_string(n) + ")" : "");
}

void JsonSerializer::write(const Json& value, std::string* out) const {
  out->clear();
  out->push_back(static_cast<char>(impl_->schemas.size() - 1));
  write_value(impl_->schemas.back(), value, "", out);
}

Json JsonSerializer::read(std::string_view bytes) const {
  ByteReader r(bytes);
  uint8_t version = 0;
  if (!r.byte(&version)) throw Corruption("json: empty value (no schema version byte)");
  if (version >= impl_->schemas.size()) {
    throw Corruption("json: schema version " + std::to_string(version) +
                     " is unknown (this store has versions 0 to " +
                     std::to_string(impl_->schemas.size() - 1) + ")");
  }
  Json v = read_value(impl_->schemas[version], &r, "");
  if (!r.empty()) {
    throw Corruption("json: " + std::to_string(r.remaining()) + " bytes after the value");
  }
  return v;
}

std::string JsonSerializer::parse_text(std::string_view text) const {
  return to_bytes(from_text(impl_->schemas.back(), Json::parse(text), ""));
}

std::string JsonSerializer::format_text(std::string_view bytes) const {
  const Json v = read(bytes);
  return to_text(impl_->schemas[static_cast<uint8_t>(bytes[0])], v).dump();
}

std::shared_ptr<const AnySerializer> make_json_serializer(const Params& p) {
  const bool one = p.has("schema"), many = p.has("schemas");
  if (one == many) p.fail("", "a json serializer takes `schema: S` or `schemas: [S0, S1, ...]`");
  std::vector<Json> schemas;
  if (one) {
    schemas.push_back(p.get_json("schema"));
  } else {
    const Json list = p.get_json("schemas");
    if (!list.is_array() || list.as_array().empty()) {
      p.fail("schemas", "expected a non-empty list of schemas, oldest first");
    }
    schemas = list.as_array();
  }
  try {
    return JsonSerializer::make(schemas);
  } catch (const InvalidArgument& e) {
    p.fail(one ? "schema" : "schemas", e.what());
  }
}

}  // namespace cairn

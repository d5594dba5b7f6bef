#include "cairn/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "cairn/errors.h"
#include "core/utf8.h"

namespace cairn {

const char* Json::type_name(Type t) {
  switch (t) {
    case Type::kNull: return "null";
    case Type::kBool: return "boolean";
    case Type::kInt: return "integer";
    case Type::kDouble: return "number";
    case Type::kString: return "string";
    case Type::kArray: return "array";
    case Type::kObject: return "object";
  }
  return "?";
}

namespace {

[[noreturn]] void wrong_type(Json::Type actual, const char* wanted) {
  throw InvalidArgument(std::string("JSON value is ") + Json::type_name(actual) + ", not " + wanted);
}

}  // namespace

bool Json::as_bool() const {
  if (!is_bool()) wrong_type(type(), "boolean");
  return std::get<bool>(v_);
}

int64_t Json::as_int() const {
  if (!is_int()) wrong_type(type(), "integer");
  return std::get<int64_t>(v_);
}

double Json::as_double() const {
  if (is_int()) return static_cast<double>(std::get<int64_t>(v_));
  if (type() != Type::kDouble) wrong_type(type(), "number");
  return std::get<double>(v_);
}

const std::string& Json::as_string() const {
  if (!is_string()) wrong_type(type(), "string");
  return std::get<std::string>(v_);
}

const Json::Array& Json::as_array() const {
  if (!is_array()) wrong_type(type(), "array");
  return std::get<Array>(v_);
}

Json::Array& Json::as_array() {
  if (!is_array()) wrong_type(type(), "array");
  return std::get<Array>(v_);
}

const Json::Object& Json::as_object() const {
  if (!is_object()) wrong_type(type(), "object");
  return std::get<Object>(v_);
}

Json::Object& Json::as_object() {
  if (!is_object()) wrong_type(type(), "object");
  return std::get<Object>(v_);
}

const Json* Json::find(std::string_view key) const {
  if (!is_object()) return nullptr;
  const Object& o = std::get<Object>(v_);
  auto it = o.find(key);
  return it == o.end() ? nullptr : &it->second;
}

Json& Json::operator[](std::string_view key) {
  if (is_null()) v_ = Object();
  Object& o = as_object();
  auto it = o.find(key);
  if (it == o.end()) it = o.emplace(std::string(key), Json()).first;
  return it->second;
}

// ---- Printing ----------------------------------------------------------------

namespace {

void dump_string(std::string_view s, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->push_back('"');
  size_t i = 0;
  while (i < s.size()) {
    const size_t valid = internal::valid_utf8_prefix(s.substr(i));
    for (size_t k = i; k < i + valid; ++k) {
      const auto c = static_cast<unsigned char>(s[k]);
      switch (c) {
        case '"': out->append("\\\""); break;
        case '\\': out->append("\\\\"); break;
        case '\n': out->append("\\n"); break;
        case '\r': out->append("\\r"); break;
        case '\t': out->append("\\t"); break;
        default:
          if (c < 0x20 || c == 0x7f) {
            out->append("\\u00");
            out->push_back(kHex[c >> 4]);
            out->push_back(kHex[c & 0xf]);
          } else {
            out->push_back(static_cast<char>(c));
          }
      }
    }
    i += valid;
    if (i < s.size()) {  // a byte that is not UTF-8
      const auto c = static_cast<unsigned char>(s[i++]);
      out->append("\\u00");
      out->push_back(kHex[c >> 4]);
      out->push_back(kHex[c & 0xf]);
    }
  }
  out->push_back('"');
}

void dump_double(double d, std::string* out) {
  if (std::isnan(d)) {
    out->append("NaN");
  } else if (std::isinf(d)) {
    out->append(d > 0 ? "Infinity" : "-Infinity");
  } else {
    char buf[32];
    auto [p, ec] = std::to_chars(buf, buf + sizeof buf, d);
    std::string_view text(buf, static_cast<size_t>(p - buf));
    out->append(text);
    // Keep the value a double when read back: "2" would parse as integer.
    if (text.find_first_of(".eEn") == std::string_view::npos) out->append(".0");
  }
}

}  // namespace

void Json::dump_to(std::string* out) const {
  switch (type()) {
    case Type::kNull: out->append("null"); break;
    case Type::kBool: out->append(std::get<bool>(v_) ? "true" : "false"); break;
    case Type::kInt: out->append(std::to_string(std::get<int64_t>(v_))); break;
    case Type::kDouble: dump_double(std::get<double>(v_), out); break;
    case Type::kString: dump_string(std::get<std::string>(v_), out); break;
    case Type::kArray: {
      out->push_back('[');
      bool first = true;
      for (const Json& j : std::get<Array>(v_)) {
        if (!first) out->push_back(',');
        first = false;
        j.dump_to(out);
      }
      out->push_back(']');
      break;
    }
    case Type::kObject: {
      out->push_back('{');
      bool first = true;
      for (const auto& [k, j] : std::get<Object>(v_)) {
        if (!first) out->push_back(',');
        first = false;
        dump_string(k, out);
        out->push_back(':');
        j.dump_to(out);
      }
      out->push_back('}');
      break;
    }
  }
}

std::string Json::dump() const {
  std::string out;
  dump_to(&out);
  return out;
}

// ---- Parsing -----------------------------------------------------------------

namespace {

class Parser {
 public:
  explicit Parser(std::string_view text) : s_(text) {}

  Json parse_document() {
    Json v = value(0);
    skip_space();
    if (pos_ != s_.size()) fail("unexpected text after the value");
    return v;
  }

 private:
  // Deep enough for any document a store holds; shallow enough that a
  // hostile "[[[[..." cannot exhaust the stack.
  static constexpr int kMaxDepth = 256;

  [[noreturn]] void fail(const std::string& what) const {
    throw InvalidArgument("JSON at offset " + std::to_string(pos_) + ": " + what);
  }

  void skip_space() {
    while (pos_ < s_.size() &&
           (s_[pos_] == ' ' || s_[pos_] == '\t' || s_[pos_] == '\n' || s_[pos_] == '\r')) {
      ++pos_;
    }
  }

  bool consume(std::string_view word) {
    if (s_.substr(pos_, word.size()) != word) return false;
    pos_ += word.size();
    return true;
  }

  Json value(int depth) {
    if (depth > kMaxDepth) fail("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    skip_space();
    if (pos_ == s_.size()) fail("expected a value, found the end");
    const char c = s_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Json(string());
    if (consume("null")) return Json();
    if (consume("true")) return Json(true);
    if (consume("false")) return Json(false);
    if (consume("NaN")) return Json(std::nan(""));
    if (consume("Infinity")) return Json(HUGE_VAL);
    if (consume("-Infinity")) return Json(-HUGE_VAL);
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail(std::string("unexpected character '") + c + "'");
  }

  Json object(int depth) {
    ++pos_;  // {
    Json::Object o;
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == '}') {
      ++pos_;
      return Json(std::move(o));
    }
    for (;;) {
      skip_space();
      if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a member name in quotes");
      std::string key = string();
      skip_space();
      if (pos_ >= s_.size() || s_[pos_] != ':') fail("expected ':' after a member name");
      ++pos_;
      Json v = value(depth + 1);
      if (!o.emplace(std::move(key), std::move(v)).second) fail("duplicate member name");
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == '}') {
        ++pos_;
        return Json(std::move(o));
      }
      fail("expected ',' or '}' in an object");
    }
  }

  Json array(int depth) {
    ++pos_;  // [
    Json::Array a;
    skip_space();
    if (pos_ < s_.size() && s_[pos_] == ']') {
      ++pos_;
      return Json(std::move(a));
    }
    for (;;) {
      a.push_back(value(depth + 1));
      skip_space();
      if (pos_ < s_.size() && s_[pos_] == ',') {
        ++pos_;
        continue;
      }
      if (pos_ < s_.size() && s_[pos_] == ']') {
        ++pos_;
        return Json(std::move(a));
      }
      fail("expected ',' or ']' in an array");
    }
  }

  Json number() {
    const size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      const size_t from = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      return pos_ - from;
    };
    const size_t int_start = pos_;
    if (digits() == 0) fail("expected digits");
    if (s_[int_start] == '0' && pos_ - int_start > 1) fail("leading zeros are not allowed");
    bool is_double = false;
    if (pos_ < s_.size() && s_[pos_] == '.') {
      ++pos_;
      if (digits() == 0) fail("expected digits after '.'");
      is_double = true;
    }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      if (digits() == 0) fail("expected digits in the exponent");
      is_double = true;
    }
    const char* first = s_.data() + start;
    const char* last = s_.data() + pos_;
    if (!is_double) {
      int64_t i = 0;
      auto [p, ec] = std::from_chars(first, last, i);
      if (ec == std::errc() && p == last) return Json(i);
      // Too large for int64: keep it as a double, as JSON parsers do.
    }
    double d = 0;
    auto [p, ec] = std::from_chars(first, last, d);
    if (ec == std::errc::result_out_of_range) {
      // from_chars leaves `d` untouched here; strtod says which way it went.
      const std::string copy(first, last);
      d = std::strtod(copy.c_str(), nullptr);
      if (std::isinf(d)) fail("number out of the range of a double");
      // An underflow: the nearest double (a denormal, or zero) is right.
    } else if (ec != std::errc()) {
      fail("bad number");
    }
    return Json(d);
  }

  uint32_t hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) {
      const char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') {
        v |= static_cast<uint32_t>(c - '0');
      } else if (c >= 'a' && c <= 'f') {
        v |= static_cast<uint32_t>(c - 'a' + 10);
      } else if (c >= 'A' && c <= 'F') {
        v |= static_cast<uint32_t>(c - 'A' + 10);
      } else {
        fail("bad hex digit in \\u escape");
      }
    }
    return v;
  }

  static void put_utf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }

  std::string string() {
    ++pos_;  // "
    std::string out;
    for (;;) {
      if (pos_ >= s_.size()) fail("unterminated string");
      const auto c = static_cast<unsigned char>(s_[pos_]);
      if (c == '"') {
        ++pos_;
        return out;
      }
      if (c < 0x20) fail("control character in a string");
      if (c != '\\') {
        // Copy a run of plain UTF-8, rejecting invalid sequences.
        size_t end = pos_;
        while (end < s_.size() && s_[end] != '"' && s_[end] != '\\' &&
               static_cast<unsigned char>(s_[end]) >= 0x20) {
          ++end;
        }
        const std::string_view run = s_.substr(pos_, end - pos_);
        const size_t valid = internal::valid_utf8_prefix(run);
        if (valid != run.size()) {
          pos_ += valid;
          fail("invalid UTF-8 in a string");
        }
        out.append(run);
        pos_ = end;
        continue;
      }
      ++pos_;
      if (pos_ >= s_.size()) fail("unterminated escape");
      const char e = s_[pos_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xd800 && cp <= 0xdbff) {
            if (!consume("\\u")) fail("a high surrogate must be followed by a low one");
            const uint32_t lo = hex4();
            if (lo < 0xdc00 || lo > 0xdfff) fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
          } else if (cp >= 0xdc00 && cp <= 0xdfff) {
            fail("lone low surrogate");
          }
          put_utf8(cp, &out);
          break;
        }
        default: fail(std::string("bad escape \\") + e);
      }
    }
  }

  std::string_view s_;
  size_t pos_ = 0;
};

}  // namespace

Json Json::parse(std::string_view text) { return Parser(text).parse_document(); }

}  // namespace cairn

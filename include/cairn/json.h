// cairn::Json: a dynamic JSON value (null, boolean, integer, double, string,
// array, object), what json stores hold in C++. Strings hold bytes: text for
// a schema's `string` fields, raw bytes for its `bytes` fields.
//
// A Json is a value type: copies are deep; distinct objects may be used from
// different threads.

#ifndef CAIRN_JSON_H_
#define CAIRN_JSON_H_

#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "cairn/export.h"

CAIRN_API_BEGIN
namespace cairn {

class Json {
 public:
  enum class Type { kNull, kBool, kInt, kDouble, kString, kArray, kObject };
  using Array = std::vector<Json>;
  using Object = std::map<std::string, Json, std::less<>>;  // keys sorted

  Json() = default;  // null
  Json(std::nullptr_t) {}
  Json(bool b) : v_(b) {}
  // Any integer type. REQUIRES: the value fits int64_t.
  template <std::integral T>
    requires(!std::same_as<T, bool>)
  Json(T i) : v_(static_cast<int64_t>(i)) {}
  Json(double d) : v_(d) {}
  Json(std::string s) : v_(std::move(s)) {}
  Json(std::string_view s) : v_(std::string(s)) {}
  Json(const char* s) : v_(std::string(s)) {}
  Json(Array a) : v_(std::move(a)) {}
  Json(Object o) : v_(std::move(o)) {}
  static Json array(std::initializer_list<Json> items) { return Json(Array(items)); }
  static Json object(std::initializer_list<std::pair<const std::string, Json>> fields) {
    return Json(Object(fields));
  }

  Type type() const { return static_cast<Type>(v_.index()); }
  bool is_null() const { return type() == Type::kNull; }
  bool is_bool() const { return type() == Type::kBool; }
  bool is_int() const { return type() == Type::kInt; }
  bool is_number() const { return type() == Type::kInt || type() == Type::kDouble; }
  bool is_string() const { return type() == Type::kString; }
  bool is_array() const { return type() == Type::kArray; }
  bool is_object() const { return type() == Type::kObject; }

  // Accessors. Each throws InvalidArgument naming the actual type when the
  // value is of another type; as_double() also accepts an integer.
  bool as_bool() const;
  int64_t as_int() const;
  double as_double() const;
  const std::string& as_string() const;
  const Array& as_array() const;
  Array& as_array();
  const Object& as_object() const;
  Object& as_object();

  // An object's member, or nullptr if absent (or not an object).
  const Json* find(std::string_view key) const;
  // An object's member, inserted as null if absent; a null becomes an
  // empty object first. Throws InvalidArgument for other types.
  Json& operator[](std::string_view key);

  // Deep equality; an integer never equals a double.
  friend bool operator==(const Json& a, const Json& b) { return a.v_ == b.v_; }

  // Compact JSON text. Strings are written as UTF-8 with control characters
  // escaped; bytes that are not UTF-8 are written as \u00XX (lossy: such
  // strings belong in `bytes` fields, which serializers print as base64).
  // Non-finite doubles are written NaN, Infinity, -Infinity, which parse()
  // accepts back.
  std::string dump() const;
  void dump_to(std::string* out) const;

  // Parses JSON text (RFC 8259, plus NaN/Infinity/-Infinity). Integers that
  // fit int64 become kInt, other numbers kDouble. Throws InvalidArgument
  // with the byte offset of the problem.
  static Json parse(std::string_view text);

  // "null", "boolean", "integer", "number", "string", "array", "object".
  static const char* type_name(Type t);

 private:
  std::variant<std::monostate, bool, int64_t, double, std::string, Array, Object> v_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_JSON_H_

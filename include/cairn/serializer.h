// Serializers turn an application's keys and values into the bytes a Store
// keeps, and back. A store's key and value serializers are named in its
// config (`key: string`, `value: {type: json, schema: ...}`); the typed
// Client and the cairn tools use them, and the stack below sees bytes only.
//
// Serializers are immutable once built and safe to use from any thread.

#ifndef CAIRN_SERIALIZER_H_
#define CAIRN_SERIALIZER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <typeindex>

#include "cairn/export.h"

CAIRN_API_BEGIN
namespace cairn {

// What every serializer offers without knowing its C++ type: a name for
// messages, and a text form for tools (the CLI reads and prints values in
// it).
class AnySerializer {
 public:
  AnySerializer() = default;
  AnySerializer(const AnySerializer&) = delete;
  AnySerializer& operator=(const AnySerializer&) = delete;
  virtual ~AnySerializer() = default;

  // One line: the type and its schema, e.g. `json {"id":"int32"} (version 1 of 2)`.
  virtual std::string describe() const = 0;
  // The C++ type of the values (Serializer<T>'s T).
  virtual std::type_index type() const = 0;

  // Text a person typed -> bytes. Throws InvalidArgument saying what is
  // wrong (for json: which field, and why).
  virtual std::string parse_text(std::string_view text) const = 0;
  // Bytes -> text for a person. Throws Corruption if the bytes are not a
  // valid encoding.
  virtual std::string format_text(std::string_view bytes) const = 0;
};

// A serializer for values of type T.
template <typename T>
class Serializer : public AnySerializer {
 public:
  // Encodes `value` into `*out` (replacing its contents). Throws
  // InvalidArgument if the value cannot be encoded (out of range, not
  // matching a schema), naming the offending part.
  virtual void write(const T& value, std::string* out) const = 0;
  // Decodes `bytes`. Throws Corruption if they are not a valid encoding;
  // never reads outside them.
  virtual T read(std::string_view bytes) const = 0;

  std::string to_bytes(const T& value) const {
    std::string out;
    write(value, &out);
    return out;
  }
  std::type_index type() const final { return typeid(T); }
};

namespace internal {
// Selects the adapt_serializer customization point (see cairn/client.h).
struct SerializerTag {};
}  // namespace internal

// The built-in serializers, also reachable from configs by these names.
// `identity`: bytes as they are (std::string). Text form: the raw bytes.
std::shared_ptr<const Serializer<std::string>> identity_serializer();
// `string`: UTF-8 text (std::string), validated both ways.
std::shared_ptr<const Serializer<std::string>> string_serializer();
// `int8` ... `int64`: fixed-width two's complement, big-endian, so that
// byte order is numeric order for non-negative values. Values are int64_t;
// writing one out of the type's range is InvalidArgument.
std::shared_ptr<const Serializer<int64_t>> int_serializer(int bits);

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_SERIALIZER_H_

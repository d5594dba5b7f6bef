#include <charconv>
#include <limits>

#include "cairn/errors.h"
#include "cairn/registry.h"
#include "cairn/serializer.h"
#include "catalogue/builtin.h"
#include "core/utf8.h"

namespace cairn {

namespace {

class IdentitySerializer final : public Serializer<std::string> {
 public:
  std::string describe() const override { return "identity (raw bytes)"; }
  void write(const std::string& value, std::string* out) const override { *out = value; }
  std::string read(std::string_view bytes) const override { return std::string(bytes); }
  std::string parse_text(std::string_view text) const override { return std::string(text); }
  std::string format_text(std::string_view bytes) const override { return std::string(bytes); }
};

class StringSerializer final : public Serializer<std::string> {
 public:
  std::string describe() const override { return "string (UTF-8)"; }
  void write(const std::string& value, std::string* out) const override {
    const size_t valid = internal::valid_utf8_prefix(value);
    if (valid != value.size()) {
      throw InvalidArgument("string serializer: not UTF-8 at byte " + std::to_string(valid));
    }
    *out = value;
  }
  std::string read(std::string_view bytes) const override {
    const size_t valid = internal::valid_utf8_prefix(bytes);
    if (valid != bytes.size()) {
      throw Corruption("string serializer: stored bytes are not UTF-8 at byte " +
                       std::to_string(valid));
    }
    return std::string(bytes);
  }
  std::string parse_text(std::string_view text) const override {
    return to_bytes(std::string(text));
  }
  std::string format_text(std::string_view bytes) const override { return read(bytes); }
};

class IntSerializer final : public Serializer<int64_t> {
 public:
  explicit IntSerializer(int bits)
      : bits_(bits),
        min_(bits == 64 ? std::numeric_limits<int64_t>::min() : -(int64_t{1} << (bits - 1))),
        max_(bits == 64 ? std::numeric_limits<int64_t>::max() : (int64_t{1} << (bits - 1)) - 1) {}

  std::string describe() const override {
    return "int" + std::to_string(bits_) + " (big-endian, " + std::to_string(bits_ / 8) + " bytes)";
  }
  void write(const int64_t& value, std::string* out) const override {
    if (value < min_ || value > max_) {
      throw InvalidArgument("int" + std::to_string(bits_) + " serializer: " +
                            std::to_string(value) + " is out of range [" + std::to_string(min_) +
                            ", " + std::to_string(max_) + "]");
    }
    out->resize(static_cast<size_t>(bits_ / 8));
    auto u = static_cast<uint64_t>(value);
    for (int i = bits_ / 8 - 1; i >= 0; --i) {
      (*out)[static_cast<size_t>(i)] = static_cast<char>(u & 0xff);
      u >>= 8;
    }
  }
  int64_t read(std::string_view bytes) const override {
    if (bytes.size() != static_cast<size_t>(bits_ / 8)) {
      throw Corruption("int" + std::to_string(bits_) + " serializer: " +
                       std::to_string(bytes.size()) + " bytes, expected " +
                       std::to_string(bits_ / 8));
    }
    uint64_t u = 0;
    for (char c : bytes) u = (u << 8) | static_cast<unsigned char>(c);
    // Sign-extend from the type's width.
    const int shift = 64 - bits_;
    return static_cast<int64_t>(u << shift) >> shift;
  }
  std::string parse_text(std::string_view text) const override {
    int64_t v = 0;
    auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc() || p != text.data() + text.size()) {
      throw InvalidArgument("int" + std::to_string(bits_) + " serializer: '" + std::string(text) +
                            "' is not an integer");
    }
    return to_bytes(v);
  }
  std::string format_text(std::string_view bytes) const override {
    return std::to_string(read(bytes));
  }

 private:
  int bits_;
  int64_t min_, max_;
};

}  // namespace

std::shared_ptr<const Serializer<std::string>> identity_serializer() {
  static const auto s = std::make_shared<IdentitySerializer>();
  return s;
}

std::shared_ptr<const Serializer<std::string>> string_serializer() {
  static const auto s = std::make_shared<StringSerializer>();
  return s;
}

std::shared_ptr<const Serializer<int64_t>> int_serializer(int bits) {
  if (bits != 8 && bits != 16 && bits != 32 && bits != 64) {
    throw InvalidArgument("int serializer: " + std::to_string(bits) + " bits (8, 16, 32 or 64)");
  }
  return std::make_shared<IntSerializer>(bits);
}

std::shared_ptr<const AnySerializer> make_identity_serializer(const Params&) {
  return identity_serializer();
}
std::shared_ptr<const AnySerializer> make_string_serializer(const Params&) {
  return string_serializer();
}
std::shared_ptr<const AnySerializer> make_int_serializer(const Params& p) {
  return int_serializer(std::stoi(p.layer().substr(3)));  // "int32" -> 32
}

}  // namespace cairn

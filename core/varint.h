// LEB128 varints: the integer encoding of every cairn byte format.
// Plain functions over caller-owned buffers; thread-compatible.

#ifndef CAIRN_CORE_VARINT_H_
#define CAIRN_CORE_VARINT_H_

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace cairn::internal {

// Appends `v` in 1 to 10 bytes.
inline void put_varint(std::string* out, uint64_t v) {
  char buf[10];
  size_t n = 0;
  while (v >= 0x80) {
    buf[n++] = static_cast<char>(v | 0x80);
    v >>= 7;
  }
  buf[n++] = static_cast<char>(v);
  out->append(buf, n);
}

// Appends `v` as 8 little-endian bytes.
inline void put_fixed64(std::string* out, uint64_t v) {
  if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
  char buf[8];
  std::memcpy(buf, &v, 8);
  out->append(buf, 8);
}

// A cursor over bytes being decoded. Every read checks the bounds and
// returns false rather than read past the end; the caller turns that into
// Corruption. Reads are written for the common case (one-byte varints) to
// cost a handful of instructions: decoding sits on every get's path.
class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes)
      : p_(reinterpret_cast<const uint8_t*>(bytes.data())), end_(p_ + bytes.size()) {}

  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  bool empty() const { return p_ == end_; }
  const char* position() const { return reinterpret_cast<const char*>(p_); }
  std::string_view rest() const { return {position(), remaining()}; }

  bool byte(uint8_t* b) {
    if (p_ == end_) return false;
    *b = *p_++;
    return true;
  }

  // A LEB128 varint of at most 10 bytes that fits in 64 bits.
  bool varint(uint64_t* v) {
    if (p_ != end_ && *p_ < 0x80) {
      *v = *p_++;
      return true;
    }
    return varint_slow(v);
  }

  // A little-endian 64-bit integer.
  bool fixed64(uint64_t* v) {
    if (remaining() < 8) return false;
    uint64_t x;
    std::memcpy(&x, p_, 8);  // one load
    if constexpr (std::endian::native == std::endian::big) x = __builtin_bswap64(x);
    p_ += 8;
    *v = x;
    return true;
  }

  // The next `n` bytes, as a view into the input.
  bool bytes(uint64_t n, std::string_view* out) {
    if (n > remaining()) return false;
    *out = {position(), static_cast<size_t>(n)};
    p_ += n;
    return true;
  }

 private:
  // Out of line: multi-byte varints are rare on the read path, and inlining
  // this loop into every caller crowds the common case.
  [[gnu::noinline, gnu::cold]] bool varint_slow(uint64_t* v) {
    uint64_t result = 0;
    for (unsigned shift = 0; p_ != end_ && shift <= 63; shift += 7) {
      const uint64_t b = *p_++;
      if (shift == 63 && b > 1) return false;  // bits past 64
      result |= (b & 0x7f) << shift;
      if ((b & 0x80) == 0) {
        *v = result;
        return true;
      }
    }
    return false;  // ran out of bytes, or longer than 10 bytes
  }

  const uint8_t* p_;
  const uint8_t* end_;
};

}  // namespace cairn::internal

#endif  // CAIRN_CORE_VARINT_H_

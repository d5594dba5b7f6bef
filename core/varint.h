// LEB128 varints: the integer encoding of every cairn byte format.
// Plain functions over caller-owned buffers; thread-compatible.

#ifndef CAIRN_CORE_VARINT_H_
#define CAIRN_CORE_VARINT_H_

#include <cstdint>
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

// Reads a varint from the front of `*in` and advances past it. Returns false
// (leaving `*in` unspecified) if the bytes end early or the varint is longer
// than 10 bytes or overflows 64 bits. get_varint() is the one to call.
inline bool get_varint_slow(std::string_view* in, uint64_t* v) {
  uint64_t result = 0;
  for (unsigned shift = 0, i = 0; i < in->size() && shift <= 63; ++i, shift += 7) {
    const uint64_t byte = static_cast<unsigned char>((*in)[i]);
    if (shift == 63 && byte > 1) return false;  // bits past 64
    result |= (byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      in->remove_prefix(i + 1);
      *v = result;
      return true;
    }
  }
  return false;
}

inline bool get_varint(std::string_view* in, uint64_t* v) {
  // Most varints in clocks and lengths are one byte: keep that path inline.
  if (!in->empty() && static_cast<unsigned char>(in->front()) < 0x80) {
    *v = static_cast<unsigned char>(in->front());
    in->remove_prefix(1);
    return true;
  }
  return get_varint_slow(in, v);
}

}  // namespace cairn::internal

#endif  // CAIRN_CORE_VARINT_H_

// Decoding a vector clock in place from a ByteReader: the one
// implementation behind VectorClock::decode_from() and the engines' read
// path, kept free of exceptions so that it stays a few dozen instructions.

#ifndef CAIRN_CORE_CLOCK_CODEC_H_
#define CAIRN_CORE_CLOCK_CODEC_H_

#include <cstring>
#include <limits>
#include <type_traits>

#include "cairn/versioned.h"
#include "core/varint.h"

namespace cairn::internal {

struct ClockCodec {
  // Reads one clock (see VectorClock::encode_to) into `*out`, reusing its
  // capacity. Returns nullptr, or what is wrong (leaving `*out` and the
  // reader unspecified).
  static const char* read(ByteReader* r, VectorClock* out) {
    uint64_t n = 0;
    if (!r->varint(&n)) return "truncated entry count";
    // Each entry takes at least two bytes: reject absurd counts before
    // allocating for them.
    if (n > r->remaining() / 2) return "entry count exceeds the bytes present";
    std::vector<ClockEntry>& entries = out->entries_;
    if (entries.size() != n) entries.resize(n);
    uint64_t node = 0;
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t delta = 0, counter = 0;
      if (!r->varint(&delta) || !r->varint(&counter)) return "truncated entry";
      if (i > 0 && delta == 0) return "node ids not strictly increasing";
      // Checked before adding: a huge delta would wrap 64 bits and decode
      // to a smaller node id, out of order.
      if (delta > std::numeric_limits<NodeId>::max() - node) return "node id overflows";
      node += delta;
      if (counter == 0) return "zero counter";
      entries[i] = {static_cast<NodeId>(node), counter};
    }
    uint64_t ts = 0;
    if (!r->fixed64(&ts)) return "truncated timestamp";
    if (ts > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return "timestamp overflows";
    }
    out->timestamp_ms_ = static_cast<int64_t>(ts);
    return nullptr;
  }

  // Sets `*out` from `n` entries laid out as ClockEntry objects (e.g. copied
  // byte for byte into an engine's own record), reusing its capacity.
  // REQUIRES: the entries form a valid clock (sorted, counters >= 1).
  static void assign(VectorClock* out, const void* entries, size_t n, int64_t timestamp) {
    static_assert(std::is_trivially_copyable_v<ClockEntry>);
    if (out->entries_.size() != n) out->entries_.resize(n);
    if (n != 0) std::memcpy(out->entries_.data(), entries, n * sizeof(ClockEntry));
    out->timestamp_ms_ = timestamp;
  }
};

}  // namespace cairn::internal

#endif  // CAIRN_CORE_CLOCK_CODEC_H_

#include "core/version_list.h"

#include <algorithm>
#include <cstring>

#include "cairn/errors.h"
#include "core/clock_codec.h"
#include "core/varint.h"

namespace cairn::internal {

namespace {
constexpr char kVersionListFormat = 0x01;
}  // namespace

namespace {

[[noreturn]] void corrupt(std::string_view why) {
  throw Corruption("stored versions: " + std::string(why));
}

// Reads the header of a version list: the format byte and the count.
[[gnu::always_inline]] inline size_t read_header(ByteReader* r) {
  uint8_t format = 0;
  if (!r->byte(&format)) corrupt("empty record");
  if (format != kVersionListFormat) corrupt("unknown format byte " + std::to_string(format));
  uint64_t n = 0;
  if (!r->varint(&n) || n == 0) corrupt("bad version count");
  // A version takes at least ten bytes (an empty clock's count and
  // timestamp, and a value length).
  if (n > r->remaining() / 10) corrupt("version count exceeds the bytes present");
  return n;
}

// Reads one clock at the reader's position and moves past it.
[[gnu::always_inline]] inline void read_clock(ByteReader* r, VectorClock* clock) {
  if (const char* why = ClockCodec::read(r, clock)) {
    corrupt(std::string("vector clock: ") + why);
  }
}

[[gnu::always_inline]] inline std::string_view read_value(ByteReader* r) {
  uint64_t len = 0;
  std::string_view value;
  if (!r->varint(&len) || !r->bytes(len, &value)) corrupt("truncated value");
  return value;
}

// A parsed version list: each version's clock (to apply the rules) and its
// whole encoding (clock, length, value: copied through when kept). Reused
// per thread, so parsing allocates only while a thread warms up.
struct Parsed {
  std::vector<VectorClock> clocks;
  std::vector<std::string_view> encodings;
  std::vector<char> keep;
  size_t n = 0;

  void parse(std::string_view bytes) {
    n = 0;
    if (bytes.empty()) return;
    ByteReader r(bytes);
    n = read_header(&r);
    if (clocks.size() < n) clocks.resize(n);
    if (encodings.size() < n) encodings.resize(n);
    for (size_t i = 0; i < n; ++i) {
      const char* start = r.position();
      read_clock(&r, &clocks[i]);
      read_value(&r);
      encodings[i] = {start, static_cast<size_t>(r.position() - start)};
    }
    if (!r.empty()) corrupt("trailing bytes");
  }
  std::span<const VectorClock> stored() const { return {clocks.data(), n}; }

  // Writes the kept versions, then `extra` versions' worth of count.
  void write_kept(size_t kept, size_t extra, std::string* out) const {
    out->clear();
    out->push_back(kVersionListFormat);
    put_varint(out, kept + extra);
    for (size_t i = 0; i < n; ++i) {
      if (keep[i]) out->append(encodings[i]);
    }
  }
};

thread_local Parsed t_parsed;

}  // namespace

PutResult put_rule(std::span<const VectorClock> stored, const VectorClock& incoming,
                   std::vector<char>* keep) {
  keep->assign(stored.size(), 0);
  for (size_t i = 0; i < stored.size(); ++i) {
    const Occurred o = compare(incoming, stored[i]);
    if (o == Occurred::kBefore || o == Occurred::kEqual) return PutResult::kObsolete;
    (*keep)[i] = o == Occurred::kConcurrent;
  }
  return PutResult::kStored;
}

size_t remove_rule(std::span<const VectorClock> stored, const VectorClock& clock,
                   std::vector<char>* keep) {
  keep->assign(stored.size(), 1);
  size_t kept = stored.size();
  for (size_t i = 0; i < stored.size(); ++i) {
    const Occurred o = compare(stored[i], clock);
    if (o == Occurred::kBefore || o == Occurred::kEqual) {
      (*keep)[i] = 0;
      --kept;
    }
  }
  return kept;
}

PutResult apply_put_encoded(std::string_view stored, const Versioned& incoming,
                            std::string* out) {
  Parsed& p = t_parsed;
  p.parse(stored);
  if (put_rule(p.stored(), incoming.clock, &p.keep) == PutResult::kObsolete) {
    return PutResult::kObsolete;
  }
  p.write_kept(static_cast<size_t>(std::count(p.keep.begin(), p.keep.end(), 1)), 1, out);
  incoming.clock.encode_to(out);
  put_varint(out, incoming.value.size());
  out->append(incoming.value);
  return PutResult::kStored;
}

bool apply_remove_encoded(std::string_view stored, const VectorClock& clock,
                          std::string* out) {
  Parsed& p = t_parsed;
  p.parse(stored);
  const size_t kept = remove_rule(p.stored(), clock, &p.keep);
  if (kept == p.n) return false;
  out->clear();
  if (kept > 0) p.write_kept(kept, 0, out);
  return true;
}

void encode_versions(std::span<const Versioned> versions, std::string* out) {
  out->push_back(kVersionListFormat);
  put_varint(out, versions.size());
  for (const Versioned& v : versions) {
    v.clock.encode_to(out);
    put_varint(out, v.value.size());
    out->append(v.value);
  }
}

std::string encode_versions(std::span<const Versioned> versions) {
  std::string out;
  encode_versions(versions, &out);
  return out;
}

void decode_versions(std::string_view bytes, std::vector<Versioned>* out) {
  ByteReader r(bytes);
  const size_t n = read_header(&r);
  if (out->size() != n) out->resize(n);
  for (Versioned& v : *out) {
    read_clock(&r, &v.clock);
    const std::string_view value = read_value(&r);
    // resize + memcpy: a no-op resize when the size repeats, where assign()
    // always takes string's general replace path (~90 instructions).
    v.value.resize(value.size());
    if (!value.empty()) std::memcpy(v.value.data(), value.data(), value.size());
  }
  if (!r.empty()) corrupt("trailing bytes");
}

std::vector<Versioned> decode_versions(std::string_view bytes) {
  std::vector<Versioned> out;
  decode_versions(bytes, &out);
  return out;
}

}  // namespace cairn::internal

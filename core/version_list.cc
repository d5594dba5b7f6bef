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

// One stored version, parsed in place: its clock decoded (to compare), its
// clock's bytes and its value as views into the record (to copy through).
struct VersionRef {
  VectorClock clock;
  std::string_view clock_bytes;
  std::string_view value;
};

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

// Parses `bytes` into `*out` (reusing its capacity); returns the count.
size_t parse_versions(std::string_view bytes, std::vector<VersionRef>* out) {
  ByteReader r(bytes);
  const size_t n = read_header(&r);
  if (out->size() < n) out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    VersionRef& ref = (*out)[i];
    const char* clock_start = r.position();
    read_clock(&r, &ref.clock);
    ref.clock_bytes = {clock_start, static_cast<size_t>(r.position() - clock_start)};
    ref.value = read_value(&r);
  }
  if (!r.empty()) corrupt("trailing bytes");
  return n;
}

// Reused across calls: parsing allocates only while a thread warms up.
thread_local std::vector<VersionRef> t_refs;
thread_local std::vector<bool> t_keep;

void append_version(std::string* out, std::string_view clock_bytes, std::string_view value) {
  out->append(clock_bytes);
  put_varint(out, value.size());
  out->append(value);
}

}  // namespace

PutResult apply_put_encoded(std::string_view stored, const Versioned& incoming,
                            std::string* out) {
  const size_t n = stored.empty() ? 0 : parse_versions(stored, &t_refs);
  t_keep.assign(n, false);
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    const Occurred o = compare(incoming.clock, t_refs[i].clock);
    if (o == Occurred::kBefore || o == Occurred::kEqual) return PutResult::kObsolete;
    if (o == Occurred::kConcurrent) {
      t_keep[i] = true;
      ++kept;
    }
  }
  out->clear();
  out->push_back(kVersionListFormat);
  put_varint(out, kept + 1);
  for (size_t i = 0; i < n; ++i) {
    if (t_keep[i]) append_version(out, t_refs[i].clock_bytes, t_refs[i].value);
  }
  incoming.clock.encode_to(out);
  put_varint(out, incoming.value.size());
  out->append(incoming.value);
  return PutResult::kStored;
}

bool apply_remove_encoded(std::string_view stored, const VectorClock& clock,
                          std::string* out) {
  const size_t n = parse_versions(stored, &t_refs);
  t_keep.assign(n, true);
  size_t kept = n;
  for (size_t i = 0; i < n; ++i) {
    const Occurred o = compare(t_refs[i].clock, clock);
    if (o == Occurred::kBefore || o == Occurred::kEqual) {
      t_keep[i] = false;
      --kept;
    }
  }
  if (kept == n) return false;
  out->clear();
  if (kept == 0) return true;
  out->push_back(kVersionListFormat);
  put_varint(out, kept);
  for (size_t i = 0; i < n; ++i) {
    if (t_keep[i]) append_version(out, t_refs[i].clock_bytes, t_refs[i].value);
  }
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

#include "core/version_list.h"

#include <algorithm>
#include <cstring>

#include "cairn/errors.h"
#include "core/varint.h"

namespace cairn::internal {

namespace {
constexpr char kVersionListFormat = 0x01;
}  // namespace

PutResult apply_put(std::vector<Versioned>* stored, const Versioned& incoming) {
  // First pass decides; only then mutate, so an obsolete put changes nothing.
  for (const Versioned& v : *stored) {
    const Occurred o = compare(incoming.clock, v.clock);
    if (o == Occurred::kBefore || o == Occurred::kEqual) return PutResult::kObsolete;
  }
  std::erase_if(*stored, [&](const Versioned& v) {
    return compare(incoming.clock, v.clock) == Occurred::kAfter;
  });
  stored->push_back(incoming);
  return PutResult::kStored;
}

bool apply_remove(std::vector<Versioned>* stored, const VectorClock& clock) {
  return std::erase_if(*stored, [&](const Versioned& v) {
           const Occurred o = compare(v.clock, clock);
           return o == Occurred::kBefore || o == Occurred::kEqual;
         }) > 0;
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
  auto fail = [](std::string_view why) {
    throw Corruption("stored versions: " + std::string(why));
  };
  if (bytes.empty()) fail("empty record");
  if (bytes.front() != kVersionListFormat) {
    fail("unknown format byte " + std::to_string(static_cast<unsigned char>(bytes.front())));
  }
  bytes.remove_prefix(1);
  uint64_t n = 0;
  if (!get_varint(&bytes, &n) || n == 0) fail("bad version count");
  // A version takes at least three bytes (empty clock, timestamp, length).
  if (n > bytes.size() / 3) fail("version count exceeds the bytes present");
  out->resize(n);
  for (Versioned& v : *out) {
    try {
      VectorClock::decode_from(&bytes, &v.clock);
    } catch (const Corruption& e) {
      fail(e.what());
    }
    uint64_t len = 0;
    if (!get_varint(&bytes, &len) || len > bytes.size()) fail("truncated value");
    // resize + memcpy: a no-op resize when the size repeats, where assign()
    // always takes string's general replace path (~90 instructions).
    v.value.resize(len);
    if (len != 0) std::memcpy(v.value.data(), bytes.data(), len);
    bytes.remove_prefix(len);
  }
  if (!bytes.empty()) fail("trailing bytes");
}

std::vector<Versioned> decode_versions(std::string_view bytes) {
  std::vector<Versioned> out;
  decode_versions(bytes, &out);
  return out;
}

}  // namespace cairn::internal

#include "core/version_list.h"

#include <algorithm>
#include <cstring>
#include <random>

#include "cairn/errors.h"
#include "core/clock_codec.h"
#include "core/varint.h"

namespace cairn::internal {

namespace {

constexpr char kPlainFormat = 0x01;  // clocks and values
constexpr char kIdFormat = 0x02;     // and each version's write id

[[noreturn]] void corrupt(std::string_view why) {
  throw Corruption("stored versions: " + std::string(why));
}

// Reads the header of a version list: the format byte and the count.
[[gnu::always_inline]] inline size_t read_header(ByteReader* r, char* format) {
  uint8_t f = 0;
  if (!r->byte(&f)) corrupt("empty record");
  if (f != kPlainFormat && f != kIdFormat) corrupt("unknown format byte " + std::to_string(f));
  *format = static_cast<char>(f);
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

constexpr uint64_t kHasId = 1, kHasReplaces = 2;

// Reads a version's write id and the ids it replaces (format 0x02).
[[gnu::always_inline]] inline uint64_t read_ids(ByteReader* r, std::vector<uint64_t>* replaces) {
  uint64_t flags = 0, id = 0;
  replaces->clear();
  if (!r->varint(&flags)) corrupt("truncated write id");
  if (flags > (kHasId | kHasReplaces)) corrupt("unknown version flags " + std::to_string(flags));
  if ((flags & kHasId) != 0 && (!r->fixed64(&id) || id == 0)) {
    corrupt("truncated or zero write id");
  }
  if ((flags & kHasReplaces) != 0) {
    uint64_t m = 0;
    if (!r->varint(&m) || m == 0 || m > kMaxReplaces) corrupt("bad count of replaced writes");
    replaces->resize(m);
    for (uint64_t& w : *replaces) {
      if (!r->fixed64(&w) || w == 0) corrupt("truncated or zero replaced write id");
    }
  }
  return id;
}

[[gnu::always_inline]] inline std::string_view read_value(ByteReader* r) {
  uint64_t len = 0;
  std::string_view value;
  if (!r->varint(&len) || !r->bytes(len, &value)) corrupt("truncated value");
  return value;
}

void encode_version(const VectorClock& clock, uint64_t write_id,
                    std::span<const uint64_t> replaces, std::string_view value, char format,
                    std::string* out) {
  clock.encode_to(out);
  if (format == kIdFormat) {
    put_varint(out, (write_id != 0 ? kHasId : 0) | (!replaces.empty() ? kHasReplaces : 0));
    if (write_id != 0) put_fixed64(out, write_id);
    if (!replaces.empty()) {
      put_varint(out, replaces.size());
      for (uint64_t w : replaces) put_fixed64(out, w);
    }
  }
  put_varint(out, value.size());
  out->append(value);
}

// A parsed version list: each version's clock and ids (to apply the
// rules) and its bytes (copied through when kept): the clock, the ids
// (format 0x02 only), and the length and value. Reused per thread, so
// parsing allocates only while a thread warms up.
struct Parsed {
  struct Parts {
    std::string_view clock, id, rest;
  };
  std::vector<VectorClock> clocks;
  std::vector<std::vector<uint64_t>> replaces;
  std::vector<VersionMeta> metas;
  std::vector<std::string_view> values;
  std::vector<Parts> parts;
  std::vector<char> keep;
  size_t n = 0;
  bool ids = false;  // some version has a write id or replaces one

  void parse(std::string_view bytes) {
    n = 0;
    ids = false;
    if (bytes.empty()) return;
    ByteReader r(bytes);
    char format = 0;
    n = read_header(&r, &format);
    if (clocks.size() < n) clocks.resize(n);
    if (replaces.size() < n) replaces.resize(n);
    if (metas.size() < n) metas.resize(n);
    if (parts.size() < n) parts.resize(n);
    if (values.size() < n) values.resize(n);
    for (size_t i = 0; i < n; ++i) {
      Parts& p = parts[i];
      const char* start = r.position();
      read_clock(&r, &clocks[i]);
      p.clock = {start, static_cast<size_t>(r.position() - start)};
      uint64_t id = 0;
      const char* id_start = r.position();
      replaces[i].clear();
      if (format == kIdFormat) id = read_ids(&r, &replaces[i]);
      p.id = {id_start, static_cast<size_t>(r.position() - id_start)};
      ids |= id != 0 || !replaces[i].empty();
      const char* rest = r.position();
      values[i] = read_value(&r);
      p.rest = {rest, static_cast<size_t>(r.position() - rest)};
      metas[i] = {&clocks[i], id, replaces[i]};
    }
    if (!r.empty()) corrupt("trailing bytes");
  }
  std::span<const VersionMeta> stored() const { return {metas.data(), n}; }

  // Writes the kept versions, with room in the count for `extra` more, in
  // the write-id format if `with_ids`.
  void write_kept(size_t kept, size_t extra, bool with_ids, std::string* out) const {
    out->clear();
    out->push_back(with_ids ? kIdFormat : kPlainFormat);
    put_varint(out, kept + extra);
    for (size_t i = 0; i < n; ++i) {
      if (!keep[i]) continue;
      out->append(parts[i].clock);
      if (with_ids) {
        if (parts[i].id.empty()) {
          out->push_back(0);  // no write id
        } else {
          out->append(parts[i].id);
        }
      }
      out->append(parts[i].rest);
    }
  }
};

thread_local Parsed t_parsed;

bool before_or_equal(const VectorClock& a, const VectorClock& b) {
  const Occurred o = compare(a, b);
  return o == Occurred::kBefore || o == Occurred::kEqual;
}

}  // namespace

uint64_t new_write_id() {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  for (;;) {
    if (const uint64_t id = rng(); id != 0) return id;
  }
}

bool replaces_write(const VersionMeta& v, uint64_t id) {
  return id != 0 && id != v.write_id &&
         std::find(v.replaces.begin(), v.replaces.end(), id) != v.replaces.end();
}

void add_replaced(std::vector<uint64_t>* list, std::span<const uint64_t> more) {
  for (uint64_t w : more) {
    if (list->size() >= kMaxReplaces) return;
    if (std::find(list->begin(), list->end(), w) == list->end()) list->push_back(w);
  }
}

PutAction put_rule(std::span<const VersionMeta> stored, const VersionMeta& incoming,
                   std::vector<char>* keep, size_t* same) {
  keep->assign(stored.size(), 0);
  *same = stored.size();
  // A copy of a write a stored version replaced: whatever its clock, the
  // write was read and succeeded.
  for (const VersionMeta& s : stored) {
    if (replaces_write(s, incoming.write_id)) return PutAction::kObsolete;
  }
  const VectorClock* dominant = incoming.clock;  // what the put stores
  VectorClock joined;
  for (size_t i = 0; i < stored.size(); ++i) {
    if (incoming.write_id == 0 || stored[i].write_id != incoming.write_id) continue;
    // Another copy of this write: a clock it adds nothing to is a
    // duplicate, unless it supersedes a copy of a write it replaced;
    // else the copies join.
    *same = i;
    if (before_or_equal(*incoming.clock, *stored[i].clock)) {
      const bool replaces_some = std::any_of(stored.begin(), stored.end(), [&](const VersionMeta& s) {
        return replaces_write(incoming, s.write_id);
      });
      if (!replaces_some) return PutAction::kDuplicate;
    }
    joined = stored[i].clock->merged(*incoming.clock);
    dominant = &joined;
    break;
  }
  for (size_t i = 0; i < stored.size(); ++i) {
    if (i == *same || replaces_write(incoming, stored[i].write_id)) continue;
    const Occurred o = compare(*dominant, *stored[i].clock);
    if (o == Occurred::kBefore || o == Occurred::kEqual) return PutAction::kObsolete;
    (*keep)[i] = o == Occurred::kConcurrent;
  }
  return *same < stored.size() ? PutAction::kMerge : PutAction::kStore;
}

PutAction apply_stamp(std::span<const VersionMeta> stored, const StampRequest& incoming,
                      VectorClock* stamped, size_t* same) {
  for (size_t i = 0; i < stored.size(); ++i) {
    // A retry of a write this home stamped: its clock is the one the home
    // checked, before the stored stamp. (A newer clock on the same id is
    // a copy to join, below.)
    if (incoming.write_id != 0 && stored[i].write_id == incoming.write_id &&
        before_or_equal(incoming.clock, *stored[i].clock)) {
      *same = i;
      return PutAction::kDuplicate;
    }
  }
  for (const VersionMeta& s : stored) {
    if (before_or_equal(incoming.clock, *s.clock) || replaces_write(s, incoming.write_id)) {
      return PutAction::kObsolete;
    }
  }
  *stamped = incoming.clock.incremented(incoming.stamp, incoming.clock.timestamp_ms());
  return PutAction::kStore;
}

size_t remove_rule(std::span<const VersionMeta> stored, const VectorClock& clock,
                   std::vector<char>* keep) {
  keep->assign(stored.size(), 1);
  size_t kept = stored.size();
  for (size_t i = 0; i < stored.size(); ++i) {
    if (before_or_equal(*stored[i].clock, clock)) {
      (*keep)[i] = 0;
      --kept;
    }
  }
  return kept;
}

PutDecision decide_put(std::span<const VersionMeta> stored,
                       std::span<const std::string_view> values, const Versioned& incoming,
                       std::vector<char>* keep, PutScratch* scratch) {
  for (uint64_t w : incoming.replaces) {
    if (w == 0) throw InvalidArgument("a version that replaces write id 0 (ids are never 0)");
  }
  PutDecision d;
  d.write_id = incoming.write_id;
  for (size_t i = 0; i < stored.size() && d.write_id != 0; ++i) {
    if (stored[i].write_id == d.write_id && values[i] != incoming.value) d.write_id = 0;
  }
  d.written = &incoming.clock;
  if (incoming.stamp != 0) {
    d.action = apply_stamp(stored, {d.write_id, incoming.clock, incoming.stamp}, &scratch->clock,
                           &d.same);
    if (d.action != PutAction::kStore) return d;
    d.written = &scratch->clock;
  }
  d.action = put_rule(stored, {d.written, d.write_id, incoming.replaces}, keep, &d.same);
  if (d.action == PutAction::kMerge) {
    scratch->clock = stored[d.same].clock->merged(*d.written);
    d.written = &scratch->clock;
  }
  d.replaces = std::span<const uint64_t>(incoming.replaces)
                   .first(std::min(incoming.replaces.size(), kMaxReplaces));
  if (d.action != PutAction::kStore && d.action != PutAction::kMerge) return d;
  // The versions the new one takes the place of hand on what they
  // replaced (a plain overwrite of versions that replaced nothing copies
  // nothing).
  bool inherits = false;
  for (size_t i = 0; i < stored.size() && !inherits; ++i) {
    inherits = (*keep)[i] == 0 && !stored[i].replaces.empty();
  }
  if (!inherits) return d;
  std::vector<uint64_t>& list = scratch->replaces;
  list.assign(d.replaces.begin(), d.replaces.end());
  for (size_t i = 0; i < stored.size(); ++i) {
    if ((*keep)[i] == 0) add_replaced(&list, stored[i].replaces);
  }
  d.replaces = list;
  return d;
}

PutResult apply_put_encoded(std::string_view stored, const Versioned& incoming,
                            std::string* out, PutReply* reply) {
  Parsed& p = t_parsed;
  p.parse(stored);
  thread_local PutScratch scratch;
  const PutDecision d = decide_put(p.stored(), {p.values.data(), p.n}, incoming, &p.keep, &scratch);
  switch (d.action) {
    case PutAction::kObsolete: return PutResult::kObsolete;
    case PutAction::kDuplicate:
      if (reply != nullptr) {
        reply->stored = p.clocks[d.same];
        reply->replaces = p.replaces[d.same];
      }
      out->clear();
      return PutResult::kStored;
    case PutAction::kStore:
    case PutAction::kMerge: break;
  }
  const bool with_ids = p.ids || d.write_id != 0 || !d.replaces.empty();
  p.write_kept(static_cast<size_t>(std::count(p.keep.begin(), p.keep.begin() + p.n, 1)), 1,
               with_ids, out);
  encode_version(*d.written, d.write_id, d.replaces, incoming.value,
                 with_ids ? kIdFormat : kPlainFormat, out);
  if (reply != nullptr) {
    reply->stored = *d.written;
    reply->replaces.assign(d.replaces.begin(), d.replaces.end());
  }
  return PutResult::kStored;
}

bool apply_remove_encoded(std::string_view stored, const VectorClock& clock,
                          std::string* out) {
  Parsed& p = t_parsed;
  p.parse(stored);
  const size_t kept = remove_rule(p.stored(), clock, &p.keep);
  if (kept == p.n) return false;
  out->clear();
  if (kept > 0) p.write_kept(kept, 0, p.ids, out);
  return true;
}

void encode_versions(std::span<const Versioned> versions, std::string* out) {
  const bool with_ids = std::any_of(versions.begin(), versions.end(), [](const Versioned& v) {
    return v.write_id != 0 || !v.replaces.empty();
  });
  const char format = with_ids ? kIdFormat : kPlainFormat;
  out->push_back(format);
  put_varint(out, versions.size());
  for (const Versioned& v : versions) {
    // Longer lists than the format holds keep their newest ids.
    const std::span<const uint64_t> replaces(
        v.replaces.data(), std::min(v.replaces.size(), kMaxReplaces));
    encode_version(v.clock, v.write_id, replaces, v.value, format, out);
  }
}

std::string encode_versions(std::span<const Versioned> versions) {
  std::string out;
  encode_versions(versions, &out);
  return out;
}

void decode_versions(std::string_view bytes, std::vector<Versioned>* out) {
  ByteReader r(bytes);
  char format = 0;
  const size_t n = read_header(&r, &format);
  if (out->size() != n) out->resize(n);
  for (Versioned& v : *out) {
    read_clock(&r, &v.clock);
    v.replaces.clear();
    v.write_id = format == kIdFormat ? read_ids(&r, &v.replaces) : 0;
    v.stamp = 0;
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

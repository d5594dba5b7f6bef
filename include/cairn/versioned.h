// Vector clocks and versioned values: the versioning vocabulary of every Store.
//
// A VectorClock is a value type. Distinct objects may be used from different
// threads freely; one object needs external synchronization only if written.

#ifndef CAIRN_VERSIONED_H_
#define CAIRN_VERSIONED_H_

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/export.h"

CAIRN_API_BEGIN
namespace cairn {

namespace internal {
struct CAIRN_INTERNAL ClockCodec;
}  // namespace internal

// Identifies a node (or a client acting as one) in a vector clock.
using NodeId = uint32_t;

// Clock entries from kStampBase up belong to a cluster's nodes: the routing
// layer stamps a write with entry kStampBase + the home node's id, apart
// from the entries writers (clients) increment, so that a client's id can
// never be mistaken for a node's. Writers use ids below kStampBase. Text
// forms write these entries as "@ID" ("{0:3, @2:1}").
inline constexpr NodeId kStampBase = 0x80000000u;

// The most write ids a version keeps in Versioned::replaces.
inline constexpr size_t kMaxReplaces = 16;

// How one clock relates to another. See compare().
enum class Occurred {
  kBefore,      // every event of the first is in the second, which has more
  kAfter,       // the first has every event of the second, and more
  kEqual,       // the same events (timestamps are not compared)
  kConcurrent,  // each has an event the other lacks
};

// One node's counter in a vector clock.
struct ClockEntry {
  NodeId node = 0;
  uint64_t counter = 0;  // always >= 1 inside a VectorClock
  friend bool operator==(const ClockEntry&, const ClockEntry&) = default;
};

// A sparse vector clock (node -> counter) plus the wall-clock time, in ms
// since the Unix epoch, of the write that last incremented it. The timestamp
// does not take part in ordering; time-based resolvers use it.
class VectorClock {
 public:
  VectorClock() = default;
  // REQUIRES: counters >= 1. Entries may come in any order; a node listed
  // twice keeps its larger counter.
  VectorClock(std::initializer_list<ClockEntry> entries,
              int64_t timestamp_ms = 0);

  // The entries, sorted by node id, each counter >= 1.
  const std::vector<ClockEntry>& entries() const { return entries_; }
  bool empty() const { return entries_.empty(); }

  // The counter for `node`, 0 when the clock has no entry for it.
  uint64_t counter(NodeId node) const;
  int64_t timestamp_ms() const { return timestamp_ms_; }
  void set_timestamp_ms(int64_t ms) { timestamp_ms_ = ms; }

  // Records one more event on `node` at time `now_ms`.
  // Throws InvalidArgument if the counter would overflow.
  void increment(NodeId node, int64_t now_ms);
  VectorClock incremented(NodeId node, int64_t now_ms) const;

  // The pointwise maximum of both clocks; the later of the two timestamps.
  VectorClock merged(const VectorClock& other) const;

  // Equality ignores the timestamp, as ordering does.
  friend bool operator==(const VectorClock& a, const VectorClock& b) {
    return a.entries_ == b.entries_;
  }

  // Human-readable form, e.g. "{0:3, 2:1, @1:4}" (timestamp omitted; "@1"
  // is entry kStampBase + 1). parse() reads it back, with or without the
  // braces and spaces: "0:3,2:1,@1:4".
  std::string to_string() const;
  // Throws InvalidArgument naming the offending text.
  static VectorClock parse(std::string_view text);

  // Byte encoding (frozen: it is stored on disk and sent on the wire):
  //   varint  n               number of entries
  //   n x {   varint d        node id delta: the first entry's node id, then
  //                           (this node id - previous node id), always >= 1
  //           varint counter  >= 1 }
  //   fixed64 timestamp_ms    little-endian, < 2^63 (negative encodes as 0)
  // Varints are LEB128 (7 bits per byte, low bits first, at most 10 bytes).
  // The timestamp is fixed-width because it is always large: a 6-byte
  // varint costs a decode loop on every read, 8 fixed bytes one load.
  // Equal clocks with equal timestamps encode to equal bytes. A clock of one
  // entry with small numbers takes 11 bytes.
  void encode_to(std::string* out) const;
  std::string encode() const;
  // Decodes one clock from the front of `*in` and advances it past the clock.
  // Throws Corruption on truncated or malformed bytes.
  static VectorClock decode_from(std::string_view* in);
  // decode_from() into `*out`, reusing its capacity.
  static void decode_from(std::string_view* in, VectorClock* out);
  // Decodes exactly one clock; trailing bytes are Corruption.
  static VectorClock decode(std::string_view bytes);

 private:
  friend struct internal::ClockCodec;  // decodes in place on the read path
  std::vector<ClockEntry> entries_;
  int64_t timestamp_ms_ = 0;
};

// How `a` relates to `b`: kBefore means `b` has seen everything `a` has.
Occurred compare(const VectorClock& a, const VectorClock& b);

// Human-readable name of an Occurred value: "before", "after", ...
const char* to_string(Occurred o);

// A value together with the clock of the write that produced it.
struct Versioned {
  std::string value;
  VectorClock clock;
  // The write this version came from, when a routing layer wrote it: it
  // keeps its id through a home failover, so that the copies two homes
  // stamped are known for one write and become one version where they
  // meet (their clocks joined). 0: none. A routing layer returns versions
  // without it; copies of a version a program changes must not carry it.
  uint64_t write_id = 0;
  // Asks the store taking the put to stamp the clock, as the key's home
  // does in a cluster: it checks the clock as given (before or equal to a
  // stored version: obsolete), then adds one to entry `stamp`, in one step
  // under the key's lock. 0: no stamp. Never stored.
  NodeId stamp = 0;
  // The write ids whose copies this version supersedes wherever they meet
  // it, whatever their clocks: a write a home may have stored before it
  // failed over (its other copy has another home's stamp) names itself
  // here, and a version that replaces such a copy takes the list over, so
  // that a late copy of the replaced write cannot stand beside it. At most
  // kMaxReplaces (the version's own write first), never 0. Set by routing
  // layers and engines; a routing layer returns versions without it.
  std::vector<uint64_t> replaces = {};
  // How long the version lives, in ms after its clock's timestamp (the
  // write's time, which every replica holds the same): a put asks a `ttl`
  // layer (cairn/ttl_store.h) for it; 0 takes the layer's default, and a
  // negative value means never. A ttl layer keeps it in the stored value
  // and reports it on the versions it returns. A store with no ttl layer
  // above its routing or its engine refuses a put that carries one.
  int64_t ttl_ms = 0;
  friend bool operator==(const Versioned&, const Versioned&) = default;
};

// The current wall-clock time in ms since the Unix epoch, as stamped into
// clocks by increment().
int64_t now_ms();

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_VERSIONED_H_

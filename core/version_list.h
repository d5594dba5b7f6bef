// The version rules every engine applies, and the byte format in which
// engines store all versions (siblings) of one key together.
// Plain functions; thread-compatible.

#ifndef CAIRN_CORE_VERSION_LIST_H_
#define CAIRN_CORE_VERSION_LIST_H_

#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/store.h"
#include "cairn/versioned.h"

namespace cairn::internal {

// A fresh write id: random, never 0.
uint64_t new_write_id();

// A version as the rules see it: its clock, write id and the write ids it
// replaces (Versioned::replaces), no value.
struct VersionMeta {
  const VectorClock* clock = nullptr;
  uint64_t write_id = 0;
  std::span<const uint64_t> replaces = {};
};

// Whether `v` replaces the write `id` names: a copy of a write `v` took
// the place of, whatever its clock. (A version never replaces itself.)
bool replaces_write(const VersionMeta& v, uint64_t id);

// Adds to `*list` the ids of `more` it lacks, while it holds fewer than
// kMaxReplaces.
void add_replaced(std::vector<uint64_t>* list, std::span<const uint64_t> more);

// What a put does. put_rule decides it for a put that asks for no stamp
// (a stamp is checked and applied first: see apply_stamp); `*keep` says
// which stored versions stay (kStore, kMerge) and `*same` names the stored
// copy of the same write (kMerge, kDuplicate).
enum class PutAction {
  kObsolete,   // before or equal to a stored version, or a copy of a write
               // a stored version replaced: nothing changes
  kDuplicate,  // a copy of a stored write it adds nothing to: nothing
               // changes, and the put counts as stored
  kStore,      // stored beside the versions it neither dominates nor
               // replaces
  kMerge,      // another copy of a stored write (same write id, another
               // home's stamp): one version with both clocks joined
               // replaces that copy and what the join dominates
};
PutAction put_rule(std::span<const VersionMeta> stored, const VersionMeta& incoming,
                   std::vector<char>* keep, size_t* same);
// remove_rule: (*keep)[i] cleared for the versions at or before `clock`;
// returns how many are kept.
size_t remove_rule(std::span<const VersionMeta> stored, const VectorClock& clock,
                   std::vector<char>* keep);

// For a put that asks for a stamp (the key's home): a write this store
// already holds (same write id: a retry) is kDuplicate with `*same` set;
// a clock before or equal to a stored one, or a write a stored version
// replaced, is kObsolete; otherwise kStore,
// with `*stamped` the clock with one added to entry `stamp`.
struct StampRequest {
  uint64_t write_id = 0;
  const VectorClock& clock;
  NodeId stamp = 0;
};
PutAction apply_stamp(std::span<const VersionMeta> stored, const StampRequest& incoming,
                      VectorClock* stamped, size_t* same);

// The whole decision for a put, as each engine makes it under the key's
// lock: the write id checked against the stored values (a stored version
// with this id and another value is not a copy: a program reused a read
// version's id, and the put goes by its clock alone), the stamp if asked,
// then put_rule. `values` are the stored versions' values. A clock the
// decision makes (stamped, or joined) goes into `scratch->clock`, so that
// a plain put copies no clock: `written` points at it or at the incoming
// clock. The new version replaces what the incoming one does, and what
// each stored version it takes the place of replaced (the incoming ids
// first, at most kMaxReplaces): `replaces` points into `scratch` or at
// the incoming list. Throws InvalidArgument for a replaced id of 0.
struct PutScratch {
  VectorClock clock;
  std::vector<uint64_t> replaces;
};
struct PutDecision {
  PutAction action = PutAction::kObsolete;
  size_t same = 0;        // kDuplicate, kMerge: the stored copy
  uint64_t write_id = 0;  // the id the new version keeps (0: none)
  const VectorClock* written = nullptr;  // kStore, kMerge: the new version's clock
  std::span<const uint64_t> replaces;    // kStore, kMerge: the new version's list
};
PutDecision decide_put(std::span<const VersionMeta> stored,
                       std::span<const std::string_view> values, const Versioned& incoming,
                       std::vector<char>* keep, PutScratch* scratch);

// Applies a put of `incoming` to the encoded versions of one key, by the
// rules above: writes to `*out` what the key then holds and to `*reply`
// (if not null) the clock the put is stored under and the ids it
// replaces, and returns kStored; or returns kObsolete (leaving `*out`
// unspecified). A write already held (a duplicate copy, or a retry at its
// home) returns kStored with `*out` empty, nothing to write, and the held
// version's clock and list. Values
// pass through as bytes, never into Versioned objects: this is every
// engine's write path. `stored` may be empty (no versions). Throws
// Corruption if `stored` is malformed.
PutResult apply_put_encoded(std::string_view stored, const Versioned& incoming,
                            std::string* out, PutReply* reply = nullptr);
// Removes the versions whose clock is before or equal to `clock`. Returns
// false if nothing was removed (leaving `*out` unspecified); otherwise `*out`
// holds what remains, empty if nothing does.
bool apply_remove_encoded(std::string_view stored, const VectorClock& clock,
                          std::string* out);

// Version-list encoding (engines keep it on disk; both formats are read,
// and 0x01 is written while no version has a write id or replaces one):
//   byte    format          0x01, or 0x02
//   varint  n               number of versions, >= 1
//   n x {   clock           VectorClock encoding (see versioned.h)
//           [0x02 only:
//           varint flags    bit 0: a write id follows; bit 1: the ids
//                           it replaces follow
//           fixed64 id      the write id, if flagged
//           varint m        if flagged: 1..kMaxReplaces
//           m x fixed64     the ids it replaces, never 0]
//           varint len      value length
//           len bytes       value }
// REQUIRES: !versions.empty().
void encode_versions(std::span<const Versioned> versions, std::string* out);
std::string encode_versions(std::span<const Versioned> versions);

// Replaces `*out` with the decoded versions, reusing its capacity. Throws
// Corruption saying what is wrong on malformed or truncated bytes (leaving
// `*out` unspecified); callers add which store and key.
void decode_versions(std::string_view bytes, std::vector<Versioned>* out);
std::vector<Versioned> decode_versions(std::string_view bytes);

}  // namespace cairn::internal

#endif  // CAIRN_CORE_VERSION_LIST_H_

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

// The rules themselves, whatever the storage format. put_rule: kObsolete if
// `incoming` is before or equal to any stored clock; otherwise kStored,
// with (*keep)[i] set for the stored versions to keep (those concurrent with
// `incoming`; it replaces the ones it dominates).
PutResult put_rule(std::span<const VectorClock> stored, const VectorClock& incoming,
                   std::vector<char>* keep);
// remove_rule: (*keep)[i] cleared for the versions at or before `clock`;
// returns how many are kept.
size_t remove_rule(std::span<const VectorClock> stored, const VectorClock& clock,
                   std::vector<char>* keep);

// Applies a put of `incoming` to the encoded versions of one key, by
// Voldemort's rule: if any stored clock is after or equal to the incoming
// clock, returns kObsolete (leaving `*out` unspecified); otherwise writes to
// `*out` the versions the incoming clock does not dominate followed by
// `incoming`, and returns kStored. Values pass through as bytes, never into
// Versioned objects: this is every engine's write path. `stored` may be
// empty (no versions). Throws Corruption if `stored` is malformed.
PutResult apply_put_encoded(std::string_view stored, const Versioned& incoming,
                            std::string* out);
// Removes the versions whose clock is before or equal to `clock`. Returns
// false if nothing was removed (leaving `*out` unspecified); otherwise `*out`
// holds what remains, empty if nothing does.
bool apply_remove_encoded(std::string_view stored, const VectorClock& clock,
                          std::string* out);

// Version-list encoding (frozen: engines keep it on disk):
//   byte    format          0x01
//   varint  n               number of versions, >= 1
//   n x {   clock           VectorClock encoding (see versioned.h)
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

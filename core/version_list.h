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

// Applies a put of `incoming` to the versions of one key (Voldemort's rule):
// if any stored clock is after or equal to the incoming clock, returns
// kObsolete and leaves `stored` unchanged; otherwise drops the versions the
// incoming clock dominates, appends `incoming` and returns kStored.
PutResult apply_put(std::vector<Versioned>* stored, const Versioned& incoming);

// Removes the versions whose clock is before or equal to `clock`. Returns
// whether anything was removed.
bool apply_remove(std::vector<Versioned>* stored, const VectorClock& clock);

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

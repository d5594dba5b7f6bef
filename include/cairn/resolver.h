// Custom conflict resolution: an application-supplied merge of the
// concurrent versions (siblings) of a key, used by the `resolve` layer as
//   resolve: {custom: NAME}
//
// The registry is thread-safe; register before opening stacks that use it.

#ifndef CAIRN_RESOLVER_H_
#define CAIRN_RESOLVER_H_

#include <functional>
#include <span>
#include <string>

#include "cairn/export.h"
#include "cairn/versioned.h"

CAIRN_API_BEGIN
namespace cairn {

// Merges two or more siblings — none dominates another — into one value.
// The resolve layer gives the result the merge of the siblings' clocks, so a
// write that follows it supersedes them all. It must be deterministic and
// must not throw for well-formed values.
using MergeFunction = std::function<std::string(std::span<const Versioned> siblings)>;

// Makes `merge` available as `resolve: {custom: NAME}`. Registering a name
// again replaces the earlier function for stacks opened afterwards.
void register_merge(std::string name, MergeFunction merge);

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_RESOLVER_H_

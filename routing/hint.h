// A hint: a write that one replica missed, kept by another node until the
// replica can take it (hinted handoff; see routing/hinted_handoff.h).

#ifndef CAIRN_ROUTING_HINT_H_
#define CAIRN_ROUTING_HINT_H_

#include <string>

#include "cairn/versioned.h"

namespace cairn {

struct Hint {
  NodeId node = 0;     // the replica that missed the write
  std::string store;   // the store's name on the nodes
  std::string key;
  // A put of `version`, or (remove) a delete of the versions at or before
  // `version.clock`, whose value is then empty.
  bool remove = false;
  Versioned version;
};

}  // namespace cairn

#endif  // CAIRN_ROUTING_HINT_H_

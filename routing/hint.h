// A hint: a write that one replica missed, kept by another node until the
// replica can take it (hinted handoff; see routing/hinted_handoff.h).

#ifndef CAIRN_ROUTING_HINT_H_
#define CAIRN_ROUTING_HINT_H_

#include <exception>
#include <functional>
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

// A store that can leave a hint with the node it reaches, for delivery to
// another node later: the grpc engine (the node's Admin PutHint call). The
// routing layer of a smart client finds it at the bottom of a replica's
// stack, whatever layers sit above it.
class HintKeeper {
 public:
  virtual ~HintKeeper() = default;
  // `done` gets nullptr once the node keeps `hint`, or the error; it runs
  // exactly once, on any thread, and must not block.
  virtual void async_put_hint(const Hint& hint, std::function<void(std::exception_ptr)> done) = 0;
};

}  // namespace cairn

#endif  // CAIRN_ROUTING_HINT_H_

// What a server front serves: named stores with their serializers. The gRPC
// server and the HTTP front take the same map; the serializers tell them
// (and the clients they describe stores to) how keys and values are encoded.

#ifndef CAIRN_SERVER_SERVING_H_
#define CAIRN_SERVER_SERVING_H_

#include <map>
#include <memory>
#include <string>

#include "cairn/forwarding_store.h"
#include "cairn/serializer.h"
#include "cairn/stats_store.h"
#include "cairn/store.h"

namespace cairn {

struct ServedStore {
  std::shared_ptr<Store> store;
  std::shared_ptr<const AnySerializer> key;
  std::shared_ptr<const AnySerializer> value;
  // For a store the node routes (`route` in its `node:` stack): the stack
  // below the routing layer, the node's own replica, which requests from
  // other nodes' routing layers reach (they set `replica`). Null otherwise.
  // Part of `store`: closing `store` closes it.
  std::shared_ptr<Store> replica;
  // Whether this node may run atomic updates of the store (cairn/update.h):
  // not when the store is spread over nodes that this node does not route
  // to (a smart client's cluster): its stack reaches one replica only.
  bool atomic = true;
};

// The stats layer whose figures a front reports for `s`: the first in its
// stack, or, for a routed store with none above its `route`, the first in
// the node's own replica (where a node counts the calls it serves). Null:
// neither has one.
inline StatsStore* stats_of(const ServedStore& s) {
  if (StatsStore* top = find_layer<StatsStore>(*s.store)) return top;
  return s.replica != nullptr ? find_layer<StatsStore>(*s.replica) : nullptr;
}

using ServedStores = std::map<std::string, ServedStore>;

}  // namespace cairn

#endif  // CAIRN_SERVER_SERVING_H_

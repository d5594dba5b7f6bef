// How one node reaches another node's own copy of a store: the routing
// layer of a node for its replicas, the hint pusher for deliveries.

#ifndef CAIRN_ROUTING_REPLICA_H_
#define CAIRN_ROUTING_REPLICA_H_

#include <chrono>
#include <memory>
#include <string>

#include "cairn/config.h"
#include "cairn/store.h"

namespace cairn {

// A grpc engine aimed at `address`, marked `replica`, no retries (the
// caller decides), with this node's TLS files as its client credentials.
std::unique_ptr<Store> open_node_replica(const std::string& address, const std::string& store,
                                         std::chrono::milliseconds timeout, const ServerTls& tls);

}  // namespace cairn

#endif  // CAIRN_ROUTING_REPLICA_H_

// Replica: one node's copy of a store as the routing layer reaches it, with
// calls that answer through a callback, so that one thread can have a call
// out to every replica of a key at once.
//
// A replica over a grpc engine is non-blocking: calls go out on gRPC's
// callback API and answer on a gRPC thread. Any other stack (a node's own
// engine, or a client stack with layers between `route` and `grpc`) runs
// each call inline on the calling thread and answers before returning.
//
// Callbacks must not block and must not throw.

#ifndef CAIRN_ROUTING_REPLICA_H_
#define CAIRN_ROUTING_REPLICA_H_

#include <chrono>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/config.h"
#include "cairn/store.h"
#include "routing/hint.h"

namespace cairn {

class Replica {
 public:
  template <typename T>
  using Done = std::function<void(T, std::exception_ptr)>;
  using Map = std::map<std::string, std::vector<Versioned>>;

  virtual ~Replica() = default;

  virtual void get(std::string_view key, Done<std::vector<Versioned>> done) = 0;
  virtual void get_all(std::vector<std::string> keys, Done<Map> done) = 0;
  virtual void versions(std::string_view key, Done<std::vector<VectorClock>> done) = 0;
  virtual void put(std::string_view key, const Versioned& value, Done<PutResult> done) = 0;
  virtual void remove(std::string_view key, const VectorClock& version, Done<bool> done) = 0;
  // Whether the node answers (for the failure detector).
  virtual void probe(std::function<void(std::exception_ptr)> done) = 0;
  // Leaves a hint with the node. Unsupported unless the replica is remote.
  virtual void put_hint(const Hint& hint, std::function<void(std::exception_ptr)> done) = 0;
  // Whether calls answer on another thread (a network call) rather than
  // inline.
  virtual bool remote() const = 0;

  // The stack itself: scans, close(), describe().
  virtual Store& store() = 0;
};

// A replica over `stack`: non-blocking if the stack is a grpc engine,
// inline otherwise.
std::unique_ptr<Replica> make_replica(std::shared_ptr<Store> stack);

// What one node uses to reach another node's own replica of `store` (the
// routing layer of a node, the hint pusher): a grpc engine aimed at
// `address`, marked `replica`, no retries (the caller decides), with this
// node's TLS files as its client credentials.
std::unique_ptr<Store> open_node_replica(const std::string& address, const std::string& store,
                                         std::chrono::milliseconds timeout, const ServerTls& tls);

}  // namespace cairn

#endif  // CAIRN_ROUTING_REPLICA_H_

// WatchLink: a cache's end of one coherence subscription at one home node
// (layers/cache/directory.h has the home's end). Over gRPC it is a Watch
// stream (GrpcStore::open_watch); in the node's own process it subscribes
// to the node's Directory directly (open_local_watch).
//
// Thread-safe.

#ifndef CAIRN_LAYERS_CACHE_WATCH_LINK_H_
#define CAIRN_LAYERS_CACHE_WATCH_LINK_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "layers/cache/directory.h"

namespace cairn::internal {

// What a cache sends its home (cairn.proto, WatchRequest).
struct WatchOp {
  enum class Kind : uint8_t { kTrack, kUntrack, kAck, kPing };
  Kind kind = Kind::kPing;
  uint64_t id = 0;  // kTrack: the request's id; kAck: a sequence number; kPing: its id
  std::string key;  // kTrack, kUntrack
};

class WatchLink {
 public:
  struct Handler {
    // Events in order, one batch at a time. Must not block.
    std::function<void(std::vector<CoherenceEvent>& events)> events;
    // Once, after the last events: the subscription is over.
    std::function<void(const std::string& why)> closed;
  };

  WatchLink() = default;
  WatchLink(const WatchLink&) = delete;
  WatchLink& operator=(const WatchLink&) = delete;
  virtual ~WatchLink() = default;

  // Sends `ops` in order after those sent before. Never blocks; dropped
  // once the link is closed.
  virtual void send(std::vector<WatchOp> ops) = 0;
  // Ends the subscription; `closed` runs (perhaps later, on another
  // thread). Idempotent.
  virtual void close() = 0;
};

// A subscription to `directory` in this process, for the keys of `store`.
std::shared_ptr<WatchLink> open_local_watch(std::shared_ptr<Directory> directory,
                                            std::string store, Coherence mode,
                                            std::chrono::milliseconds lease,
                                            WatchLink::Handler handler);

}  // namespace cairn::internal

#endif  // CAIRN_LAYERS_CACHE_WATCH_LINK_H_

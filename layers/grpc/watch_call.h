// A cache's coherence subscription over gRPC: one Watch stream to a node
// (cairn.proto), behind the WatchLink interface (layers/cache/watch_link.h).
// GrpcStore::open_watch opens it on the store's channel.

#ifndef CAIRN_LAYERS_GRPC_WATCH_CALL_H_
#define CAIRN_LAYERS_GRPC_WATCH_CALL_H_

#include <functional>
#include <memory>
#include <string>

#include "layers/cache/watch_link.h"
#include "layers/grpc/cairn.grpc.pb.h"

namespace cairn::internal {

// Opens a Watch stream on `stub` for the keys of `store`. `started` runs
// now and `ended` once the stream is over (the store waits for its streams
// before its channel goes). The handler's `closed` says why it ended.
std::shared_ptr<WatchLink> open_grpc_watch(rpc::Store::Stub* stub, std::string where,
                                           std::string store, Coherence mode,
                                           std::chrono::milliseconds lease,
                                           WatchLink::Handler handler,
                                           std::function<void()> started,
                                           std::function<void()> ended,
                                           const std::string& authorization = "");

}  // namespace cairn::internal

#endif  // CAIRN_LAYERS_GRPC_WATCH_CALL_H_

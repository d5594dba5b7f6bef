// Pipeline: the grpc engine's non-blocking calls on one long-lived Stream
// to the server, instead of a unary call each. Calls made while a batch is
// being written wait, and go out together in the next message: the
// requests of many callers (a routing layer's replicas, many threads)
// share the HTTP/2 frames, the syscalls and the server's wake-ups that a
// unary call would pay for alone.
//
// One write and one read are in flight at a time; responses come back
// tagged, in any order, and each call's completion runs on the gRPC thread
// that read it. A call not answered within the timeout fails with Timeout;
// a stream that breaks fails the calls it carried with the status it ended
// with (Unavailable for a dead server), and the next call opens a new one.
// No retries: the caller decides.
//
// Thread-safe.

#ifndef CAIRN_LAYERS_GRPC_PIPELINE_H_
#define CAIRN_LAYERS_GRPC_PIPELINE_H_

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>

#include "layers/grpc/cairn.grpc.pb.h"

namespace cairn::internal {

class Pipeline {
 public:
  // Runs once per call: with the response (the call's own kind; the
  // completion may take it apart), or with the error.
  using Complete = std::function<void(rpc::StreamResponse* response, std::exception_ptr error)>;

  struct Options {
    std::string where;  // for messages: "grpc 127.0.0.1:7070 store 'default'"
    std::chrono::milliseconds timeout{5000};
    size_t max_batch_bytes = 4 << 20;  // a message of requests stays below this
    // Called when a stream starts and when it has ended for good, so the
    // engine can wait for its streams before it goes (a stream must not
    // outlive its channel).
    std::function<void()> stream_started, stream_ended;
    // The `authorization` metadata of each stream ("Bearer TOKEN"); empty:
    // none.
    std::string authorization;
  };

  Pipeline(rpc::Store::Stub* stub, Options options);
  // REQUIRES: close() ran and every stream has ended (stream_ended).
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Sends `request` (its id is set here), opening a stream if none is up.
  void send(rpc::StreamRequest request, Complete complete);

  // Refuses new calls, waits for the calls in flight to be answered or to
  // time out, then ends the stream. Idempotent.
  void close();

  struct State;

 private:
  std::shared_ptr<State> s_;
};

}  // namespace cairn::internal

#endif  // CAIRN_LAYERS_GRPC_PIPELINE_H_

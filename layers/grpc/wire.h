// Conversions between cairn's types and the wire messages of cairn.proto,
// and the one place where cairn errors and gRPC statuses map to each other
// (used by the server and the client, so an error raised on a server
// surfaces as the same type in the client).

#ifndef CAIRN_LAYERS_GRPC_WIRE_H_
#define CAIRN_LAYERS_GRPC_WIRE_H_

#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "cairn/errors.h"
#include "cairn/versioned.h"
#include "layers/grpc/cairn.pb.h"
#include "routing/hint.h"

namespace cairn::internal {

void to_wire(const VectorClock& clock, rpc::Clock* out);
void to_wire(const Versioned& v, rpc::Version* out);
// Throws InvalidArgument for a clock no VectorClock can hold (entries out
// of order, repeated nodes, zero counters): it came from a peer.
VectorClock from_wire(const rpc::Clock& clock);
Versioned from_wire(const rpc::Version& v);
void to_wire(const Hint& hint, rpc::Hint* out);
// Throws InvalidArgument for a hint with neither a put nor a delete.
Hint from_wire(const rpc::Hint& hint);

// The gRPC status a cairn error travels as: one code per kind, the kind's
// number in the status details (a trailer), the message as is.
grpc::Status to_status(const Error& e);
grpc::StatusCode to_status_code(ErrorCode code);
// Rethrows a non-OK status as the cairn error it carries; statuses that
// gRPC itself produced (a dead peer, a deadline) map by their code:
// UNAVAILABLE -> Unavailable, DEADLINE_EXCEEDED -> Timeout, ...
// `context` prefixes the message (e.g. the target and the call).
[[noreturn]] void throw_status(const grpc::Status& status, const std::string& context);

// Runs `fn`, turning what it throws into a status for the wire.
template <typename Fn>
grpc::Status status_of(Fn&& fn) {
  try {
    fn();
    return grpc::Status::OK;
  } catch (const Error& e) {
    return to_status(e);
  } catch (const std::exception& e) {
    return to_status(Internal(std::string("unexpected: ") + e.what()));
  }
}

}  // namespace cairn::internal

#endif  // CAIRN_LAYERS_GRPC_WIRE_H_

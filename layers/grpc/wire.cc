#include "layers/grpc/wire.h"

#include <charconv>
#include <vector>

#include "core/clock_codec.h"

namespace cairn::internal {

void to_wire(const VectorClock& clock, rpc::Clock* out) {
  out->Clear();
  for (const ClockEntry& e : clock.entries()) {
    rpc::ClockEntry* w = out->add_entries();
    w->set_node(e.node);
    w->set_counter(e.counter);
  }
  out->set_timestamp_ms(clock.timestamp_ms());
}

void to_wire(const Versioned& v, rpc::Version* out) {
  out->set_value(v.value);
  to_wire(v.clock, out->mutable_clock());
  if (v.write_id != 0) out->set_write_id(v.write_id);
  if (v.stamp != 0) out->set_stamp(v.stamp);
  for (uint64_t w : v.replaces) out->add_replaces(w);
  if (v.ttl_ms != 0) out->set_ttl_ms(v.ttl_ms);
}

VectorClock from_wire(const rpc::Clock& clock) {
  // Node ids are 0..65535 in a cluster: no honest clock has more entries.
  constexpr int kMaxEntries = 65536;
  if (clock.entries_size() > kMaxEntries) {
    throw InvalidArgument("a clock of " + std::to_string(clock.entries_size()) +
                          " entries; the limit is " + std::to_string(kMaxEntries));
  }
  std::vector<ClockEntry> entries;
  entries.reserve(static_cast<size_t>(clock.entries_size()));
  for (int i = 0; i < clock.entries_size(); ++i) {
    const rpc::ClockEntry& e = clock.entries(i);
    if (e.counter() == 0) throw InvalidArgument("clock entry for node " + std::to_string(e.node()) + " has counter 0");
    if (i > 0 && e.node() <= entries.back().node) throw InvalidArgument("clock entries are not in increasing node order");
    entries.push_back({e.node(), e.counter()});
  }
  if (clock.timestamp_ms() < 0) throw InvalidArgument("clock timestamp is negative");
  VectorClock out;
  ClockCodec::assign(&out, entries.data(), entries.size(), clock.timestamp_ms());
  return out;
}

Versioned from_wire(const rpc::Version& v) {
  if (v.stamp() != 0 && v.stamp() < kStampBase) {
    throw InvalidArgument("a stamp on entry " + std::to_string(v.stamp()) +
                          ", a writer's; stamps are nodes' entries (2^31 and up)");
  }
  if (v.replaces_size() > static_cast<int>(kMaxReplaces)) {
    throw InvalidArgument("a version replacing " + std::to_string(v.replaces_size()) +
                          " writes; the limit is " + std::to_string(kMaxReplaces));
  }
  for (uint64_t w : v.replaces()) {
    if (w == 0) throw InvalidArgument("a replaced write id of 0");
  }
  return Versioned{v.value(), from_wire(v.clock()), v.write_id(), v.stamp(),
                   {v.replaces().begin(), v.replaces().end()}, v.ttl_ms()};
}

void to_wire(const Hint& hint, rpc::Hint* out) {
  out->set_node(hint.node);
  out->set_store(hint.store);
  out->set_key(hint.key);
  if (hint.remove) {
    to_wire(hint.version.clock, out->mutable_delete_());
  } else {
    to_wire(hint.version, out->mutable_put());
  }
}

Hint from_wire(const rpc::Hint& hint) {
  Hint out;
  out.node = hint.node();
  out.store = hint.store();
  out.key = hint.key();
  if (hint.has_put()) {
    out.version = from_wire(hint.put());
  } else if (hint.has_delete_()) {
    out.remove = true;
    out.version.clock = from_wire(hint.delete_());
  } else {
    throw InvalidArgument("a hint with neither a put nor a delete");
  }
  return out;
}

grpc::StatusCode to_status_code(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return grpc::StatusCode::INVALID_ARGUMENT;
    case ErrorCode::kNotFound: return grpc::StatusCode::NOT_FOUND;
    case ErrorCode::kFailedPrecondition: return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorCode::kCorruption: return grpc::StatusCode::DATA_LOSS;
    case ErrorCode::kIoError: return grpc::StatusCode::UNKNOWN;
    case ErrorCode::kUnavailable: return grpc::StatusCode::UNAVAILABLE;
    case ErrorCode::kTimeout: return grpc::StatusCode::DEADLINE_EXCEEDED;
    case ErrorCode::kInsufficientReplicas: return grpc::StatusCode::RESOURCE_EXHAUSTED;
    case ErrorCode::kUnsupported: return grpc::StatusCode::UNIMPLEMENTED;
    case ErrorCode::kInternal: return grpc::StatusCode::INTERNAL;
    case ErrorCode::kObsoleteVersion: return grpc::StatusCode::ABORTED;
    case ErrorCode::kStaleMetadata: return grpc::StatusCode::FAILED_PRECONDITION;
    case ErrorCode::kPermissionDenied: return grpc::StatusCode::PERMISSION_DENIED;
    case ErrorCode::kUnauthenticated: return grpc::StatusCode::UNAUTHENTICATED;
  }
  return grpc::StatusCode::INTERNAL;
}

grpc::Status to_status(const Error& e) {
  // The message carries the code so that even a client that cannot read
  // trailing metadata (a proxy, curl) sees the kind.
  return grpc::Status(to_status_code(e.code()), e.what(),
                      std::to_string(static_cast<int>(e.code())));
}

namespace {

ErrorCode from_status_code(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::INVALID_ARGUMENT: return ErrorCode::kInvalidArgument;
    case grpc::StatusCode::NOT_FOUND: return ErrorCode::kNotFound;
    case grpc::StatusCode::FAILED_PRECONDITION: return ErrorCode::kFailedPrecondition;
    case grpc::StatusCode::DATA_LOSS: return ErrorCode::kCorruption;
    case grpc::StatusCode::UNKNOWN: return ErrorCode::kIoError;
    case grpc::StatusCode::UNAVAILABLE: return ErrorCode::kUnavailable;
    case grpc::StatusCode::CANCELLED: return ErrorCode::kUnavailable;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return ErrorCode::kTimeout;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return ErrorCode::kInsufficientReplicas;
    case grpc::StatusCode::UNIMPLEMENTED: return ErrorCode::kUnsupported;
    case grpc::StatusCode::ABORTED: return ErrorCode::kObsoleteVersion;
    case grpc::StatusCode::PERMISSION_DENIED: return ErrorCode::kPermissionDenied;
    case grpc::StatusCode::UNAUTHENTICATED: return ErrorCode::kUnauthenticated;
    default: return ErrorCode::kInternal;
  }
}

}  // namespace

void throw_status(const grpc::Status& status, const std::string& context) {
  // A cairn server puts the exact kind in the details; anything else (gRPC
  // itself, a proxy) is mapped from the status code.
  ErrorCode code = from_status_code(status.error_code());
  const std::string& details = status.error_details();
  int n = 0;
  auto [p, ec] = std::from_chars(details.data(), details.data() + details.size(), n);
  if (ec == std::errc() && p == details.data() + details.size() && n >= 1 &&
      n <= static_cast<int>(ErrorCode::kUnauthenticated)) {
    code = static_cast<ErrorCode>(n);
  } else if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED) {
    // gRPC's own RESOURCE_EXHAUSTED: a message over the size limit.
    code = ErrorCode::kInvalidArgument;
  }
  throw_error(code, context + ": " + status.error_message());
}

}  // namespace cairn::internal

#include "cairn/errors.h"

namespace cairn {

const char* to_string(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument: return "InvalidArgument";
    case ErrorCode::kNotFound: return "NotFound";
    case ErrorCode::kFailedPrecondition: return "FailedPrecondition";
    case ErrorCode::kCorruption: return "Corruption";
    case ErrorCode::kIoError: return "IoError";
    case ErrorCode::kUnavailable: return "Unavailable";
    case ErrorCode::kTimeout: return "Timeout";
    case ErrorCode::kInsufficientReplicas: return "InsufficientReplicas";
    case ErrorCode::kUnsupported: return "Unsupported";
    case ErrorCode::kInternal: return "Internal";
    case ErrorCode::kObsoleteVersion: return "ObsoleteVersion";
    case ErrorCode::kStaleMetadata: return "StaleMetadata";
    case ErrorCode::kPermissionDenied: return "PermissionDenied";
    case ErrorCode::kUnauthenticated: return "Unauthenticated";
  }
  return "Unknown";
}

ConfigError::ConfigError(const std::string& file, int line, int column,
                         const std::string& what)
    : InvalidArgument(file + ":" + std::to_string(line) + ":" +
                      std::to_string(column) + ": " + what),
      file_(file),
      line_(line),
      column_(column) {}

void throw_error(ErrorCode code, const std::string& message) {
  switch (code) {
    case ErrorCode::kInvalidArgument: throw InvalidArgument(message);
    case ErrorCode::kNotFound: throw NotFound(message);
    case ErrorCode::kFailedPrecondition: throw FailedPrecondition(message);
    case ErrorCode::kCorruption: throw Corruption(message);
    case ErrorCode::kIoError: throw IoError(message);
    case ErrorCode::kUnavailable: throw Unavailable(message);
    case ErrorCode::kTimeout: throw Timeout(message);
    case ErrorCode::kInsufficientReplicas: throw InsufficientReplicas(message);
    case ErrorCode::kUnsupported: throw Unsupported(message);
    case ErrorCode::kInternal: throw Internal(message);
    case ErrorCode::kObsoleteVersion: throw ObsoleteVersion(message);
    case ErrorCode::kStaleMetadata: throw StaleMetadata(message);
    case ErrorCode::kPermissionDenied: throw PermissionDenied(message);
    case ErrorCode::kUnauthenticated: throw Unauthenticated(message);
  }
  throw Internal("unknown error code " + std::to_string(static_cast<int>(code)) +
                 ": " + message);
}

}  // namespace cairn

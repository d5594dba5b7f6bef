// The failures a Store can report. Expected outcomes are not here: an absent
// key is an empty result and a put that is not newer than what is stored
// returns PutResult::kObsolete.
//
// Every cairn error is a cairn::Error carrying one ErrorCode; each code has
// one subclass so callers can catch what they handle. The network layer maps
// each code to exactly one gRPC status code and back, so an error raised on a
// server surfaces on the client with the same type.

#ifndef CAIRN_ERRORS_H_
#define CAIRN_ERRORS_H_

#include <stdexcept>
#include <string>

#include "cairn/export.h"

CAIRN_API_BEGIN
namespace cairn {

// Frozen: these values cross the wire.
enum class ErrorCode {
  kInvalidArgument = 1,     // bad input: oversized key, malformed config, ...
  kNotFound = 2,            // a named thing (a store, a layer) does not exist;
                            // never used for an absent key
  kFailedPrecondition = 3,  // the call is wrong in this state: store closed
  kCorruption = 4,          // stored or received bytes fail validation
  kIoError = 5,             // the operating system refused an operation
  kUnavailable = 6,         // a node or resource cannot be reached; retryable
  kTimeout = 7,             // a deadline passed before the work finished
  kInsufficientReplicas = 8,  // fewer replicas answered than the quorum needs
  kUnsupported = 9,         // the store cannot do this operation
  kInternal = 10,           // a bug in cairn; please report it
  kObsoleteVersion = 11,    // a write lost a race and was not applied, even
                            // after retrying (the typed client's update)
  kStaleMetadata = 12,      // a node refused a replica call routed by cluster
                            // metadata older than its own; refresh and retry
  kPermissionDenied = 13,   // the caller is known, and may not do this
  kUnauthenticated = 14,    // the caller proved nothing the server accepts
};

// "InvalidArgument", "Corruption", ...
const char* to_string(ErrorCode code);

class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  ErrorCode code() const { return code_; }

 private:
  ErrorCode code_;
};

#define CAIRN_DEFINE_ERROR(Name)                                    \
  class Name : public Error {                                       \
   public:                                                          \
    explicit Name(const std::string& message)                       \
        : Error(ErrorCode::k##Name, message) {}                     \
  }

CAIRN_DEFINE_ERROR(InvalidArgument);
CAIRN_DEFINE_ERROR(NotFound);
CAIRN_DEFINE_ERROR(FailedPrecondition);
CAIRN_DEFINE_ERROR(Corruption);
CAIRN_DEFINE_ERROR(IoError);
CAIRN_DEFINE_ERROR(Unavailable);
CAIRN_DEFINE_ERROR(Timeout);
CAIRN_DEFINE_ERROR(InsufficientReplicas);
CAIRN_DEFINE_ERROR(Unsupported);
CAIRN_DEFINE_ERROR(Internal);
CAIRN_DEFINE_ERROR(ObsoleteVersion);
CAIRN_DEFINE_ERROR(StaleMetadata);
CAIRN_DEFINE_ERROR(PermissionDenied);
CAIRN_DEFINE_ERROR(Unauthenticated);

#undef CAIRN_DEFINE_ERROR

// A configuration error: an InvalidArgument whose message starts with
// "FILE:LINE:COLUMN: " (1-based) and says what was expected there.
class ConfigError : public InvalidArgument {
 public:
  ConfigError(const std::string& file, int line, int column,
              const std::string& what);
  const std::string& file() const { return file_; }
  int line() const { return line_; }
  int column() const { return column_; }

 private:
  std::string file_;
  int line_;
  int column_;
};

// Throws the subclass of Error that matches `code`. Used where an error
// arrives as data (from the wire, from another thread).
[[noreturn]] void throw_error(ErrorCode code, const std::string& message);

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_ERRORS_H_

// Atomic updates by name: functions registered in the process that read a
// key's value and return its next one, run where the key lives.
//
// H2O runs a transaction at the key's home and retries it there; so does
// cairn. Store::atomic(key, function, argument) runs
//
//   loop: read the key -> function(current, argument) -> put the result as
//         the successor of what was read -> obsolete (another writer got
//         there first)? read again
//
// in the store that can do it closest to the data. A cairn-server node
// that routes runs the loop at the key's home, one update of a key at a
// time, so updates racing on one key wait in line there instead of
// crossing the network to retry. An engine runs it in-process under a
// per-key lock. Layers that change values on their way down (compress)
// and a smart client's `route` answer Unsupported, and Client::update()
// then runs the same function in its own read-modify-write loop.
//
// The built-in functions, registered before main():
//
//   increment      the value as an integer in the store's value format
//                  (int64, a decimal string, a JSON number...), absent as 0,
//                  plus the argument (decimal text)
//   append         the argument's bytes after the value's (absent: empty)
//   cas            the value replaced by `desired` if it is `expected`
//                  (cas_argument() encodes the pair; absent can be
//                  expected), otherwise nothing is written
//   set_if_absent  the argument, only if the key is absent
//
// Register your own on the servers (and in clients, for their fallback
// loop) with register_update(), as a layer is registered.

#ifndef CAIRN_UPDATE_H_
#define CAIRN_UPDATE_H_

#include <exception>
#include <functional>
#include <span>
#include <optional>
#include <string>
#include <string_view>

#include "cairn/export.h"
#include "cairn/serializer.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

// What an update function is given: the key's current value as stored (no
// value if the key is absent), the caller's argument, and the store's value
// serializer (for functions that read values as text: increment).
struct UpdateInput {
  std::optional<std::string_view> current;
  std::string_view argument;
  const AnySerializer* values = nullptr;  // never null: identity if unknown
};

// What it returns: the value to write, or no write (the update aborts and
// the key keeps its value).
struct UpdateOutput {
  bool write = true;
  std::string value;
};

// Must be a pure function of its input: it may run more than once (after a
// lost race) and on any node. Throws InvalidArgument for an input it cannot
// take (increment of a value that is not an integer); the update fails
// with it, writing nothing.
using UpdateFunction = std::function<UpdateOutput(const UpdateInput&)>;

// Registers `fn` under `name` for this process. Throws InvalidArgument if
// the name is taken or empty. Not synchronized with running updates:
// register at start-up.
void register_update(std::string name, UpdateFunction fn);
// The function registered under `name`, or nullptr.
const UpdateFunction* find_update(std::string_view name);

// The argument of `cas`: replace the value by `desired` if it is `expected`
// (nullopt: if the key is absent).
std::string cas_argument(const std::optional<std::string>& expected, std::string_view desired);

namespace internal {
// One update of a batch (run_updates).
struct CAIRN_INTERNAL UpdateRequest {
  std::string_view function;
  std::string_view argument;
  AtomicResult result;
  std::exception_ptr error;  // set instead of `result` if it failed
};

// Several updates of one key as one write (flat combining): one read,
// each function in turn on the value the one before left, then one
// conditional write of the last value; after a lost race, all again. Each
// request gets the value as its own function left it, and the clock
// written. A function that throws fails its request alone. What the
// key's home runs when updates queue up behind each other.
CAIRN_INTERNAL void run_updates(Store& store, std::string_view key,
                                std::span<UpdateRequest> batch, const AnySerializer* values,
                                NodeId writer, int max_tries = 64);

// The read -> apply -> conditional write loop over `store`, up to
// `max_tries` lost races (then ObsoleteVersion). `writer` is the clock entry
// the write increments. Throws NotFound for an unregistered function,
// FailedPrecondition for a key with siblings.
CAIRN_INTERNAL AtomicResult run_update(Store& store, std::string_view key,
                                       std::string_view function, std::string_view argument,
                                       const AnySerializer* values, NodeId writer,
                                       int max_tries = 64);
}  // namespace internal

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_UPDATE_H_

// The one interface of cairn: a Store maps byte-string keys to one or more
// versioned byte-string values. Engines implement it at the bottom of a
// stack; every layer implements it by wrapping another Store.
//
// A Store is safe for concurrent use by multiple threads without external
// locking, except close(), which must not race other calls.

#ifndef CAIRN_STORE_H_
#define CAIRN_STORE_H_

#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/export.h"
#include "cairn/versioned.h"

CAIRN_API_BEGIN
namespace cairn {

// The outcome of a put that did not fail.
enum class PutResult {
  kStored,    // the value was stored (as the only version or as a sibling)
  kObsolete,  // a stored version is equal to or newer than the value's clock;
              // nothing changed
};

const char* to_string(PutResult r);

// What a put that did not fail reports: its result, and the clock the value
// was stored under and the write ids it replaces (Versioned::replaces),
// meaningful when the result is kStored.
struct PutReply {
  PutResult result = PutResult::kStored;
  VectorClock stored;
  std::vector<uint64_t> replaces = {};
};

// The outcome of Store::atomic() (cairn/update.h).
struct AtomicResult {
  bool applied = false;              // the function's value was written
  std::optional<std::string> value;  // the key's value after (or, if not applied, now)
  VectorClock clock;                 // the clock of that value
};

// The answer to a non-blocking call: the result, or the error the blocking
// call would have thrown (then `result` is a default value). Called exactly
// once. It must not block and must not throw.
template <typename T>
using Callback = std::function<void(T result, std::exception_ptr error)>;

// A forward-only cursor over every key of a store and its versions.
// Not thread-safe: use one iterator from one thread at a time. A scan is
// weakly consistent: it sees every key that was present for the whole scan,
// and may or may not see keys written or removed while it runs.
class StoreIterator {
 public:
  StoreIterator() = default;
  StoreIterator(const StoreIterator&) = delete;
  StoreIterator& operator=(const StoreIterator&) = delete;
  virtual ~StoreIterator() = default;

  // Moves to the next key; false when there are no more. Call it once before
  // reading the first key.
  virtual bool next() = 0;
  // The current key and its versions. Valid until the next call to next().
  // REQUIRES: the last call to next() returned true.
  virtual std::string_view key() const = 0;
  virtual const std::vector<Versioned>& versions() const = 0;
};

class Store {
 public:
  Store() = default;
  Store(const Store&) = delete;
  Store& operator=(const Store&) = delete;
  virtual ~Store() = default;

  // Returns every concurrent version stored for `key`. An empty vector means
  // the key is absent; that is not an error. The caller owns the copies.
  std::vector<Versioned> get(std::string_view key);

  // get() into `*out`, replacing its contents but reusing the capacity of
  // the vector, its strings and its clocks: a loop that passes the same
  // vector allocates nothing once it has warmed up. Layers override this;
  // get() calls it.
  virtual void get_into(std::string_view key, std::vector<Versioned>* out) = 0;

  // get() for many keys at once. The map holds only the keys that were
  // found; a key asked for twice appears once.
  virtual std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys);

  // Stores `value` under `key` by Voldemort's rules. If the value's clock is
  // before or equal to the clock of any stored version, nothing changes and
  // the result is kObsolete (an expected outcome, not an error). Otherwise
  // the stored versions the new clock dominates are replaced, and those
  // concurrent with it stay beside it as siblings.
  PutResult put(std::string_view key, const Versioned& value) {
    return put_stamped(key, value, nullptr);
  }
  // put(), saying in `*stored` the clock the value was stored under: its
  // own, unless it asks for a stamp (Versioned::stamp: the routing layer
  // asks the key's home for its entry) or is a copy of a write stored
  // already (Versioned::write_id; see docs/store.md). Meaningful only when
  // the result is kStored.
  PutResult put(std::string_view key, const Versioned& value, VectorClock* stored) {
    PutReply reply;
    reply.stored = value.clock;
    const PutResult r = put_stamped(key, value, &reply);
    *stored = std::move(reply.stored);
    return r;
  }
  // What both put()s call; layers override it. `stored` is null, or holds
  // the clock stored so far (and `replaces` empty): a layer that forwards
  // the put passes it on, and an engine writes there the clock it stored
  // (stamped, or joined with a copy of the same write) and the write ids
  // the stored version replaces. `stored->result` is not used: the result
  // is returned.
  virtual PutResult put_stamped(std::string_view key, const Versioned& value,
                                PutReply* stored) = 0;

  // Deletes the versions of `key` whose clocks are before or equal to
  // `version`; concurrent and newer versions stay. Returns whether anything
  // was deleted (false for an absent key).
  virtual bool remove(std::string_view key, const VectorClock& version) = 0;

  // The clocks of the versions get() would return, in the same order.
  virtual std::vector<VectorClock> versions(std::string_view key);

  // A cursor over every key, in no particular order. The caller owns it; it
  // may outlive the store, but after close() its next() throws
  // FailedPrecondition. Throws Unsupported for stores that cannot scan.
  virtual std::unique_ptr<StoreIterator> scan() = 0;

  // Releases files, connections and threads. Idempotent. Every other call
  // after close() throws FailedPrecondition.
  // REQUIRES: no other call on this store is in flight.
  virtual void close() = 0;

  // This layer in one line and, indented below it, what it wraps.
  virtual std::string describe() const = 0;

  // Non-blocking calls. Each starts the blocking call of the same name and
  // returns; `done` gets its result or its error, exactly once, on any
  // thread: a network library's, or the caller's before the call returns.
  // Arguments are copied as needed: they need not outlive the call.
  //
  // The defaults run the blocking call inline, on the caller's thread: a
  // store that can only block still answers, just not sooner. The engines
  // that never wait (memory) and the network (grpc) answer without
  // blocking, and so do the built-in layers over them: they pass the calls
  // down, transforming values in the callback. A layer of your own that
  // overrides only blocking calls stays correct (its async calls run them).
  // REQUIRES: the store is not closed before every `done` has run.
  virtual void async_get(std::string_view key, Callback<std::vector<Versioned>> done);
  virtual void async_get_all(std::vector<std::string> keys,
                             Callback<std::map<std::string, std::vector<Versioned>>> done);
  virtual void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done);
  virtual void async_remove(std::string_view key, const VectorClock& version,
                            Callback<bool> done);
  virtual void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done);
  // Whether the async calls may block the caller: true for the defaults,
  // which run the blocking calls inline; false for stores whose async
  // calls only start the work (a caller on a network library's thread may
  // then call them there).
  virtual bool async_calls_block() const { return true; }

  // Runs the update function registered as `function` (cairn/update.h)
  // on `key`'s value with `argument`, and writes its result as the
  // successor of what it read, again after a lost race, as one atomic
  // step: where the store can, at the key's home. Throws Unsupported when
  // this store cannot run it (Client::update then runs the function in
  // its own loop), NotFound for a function not registered where it runs.
  // Engines run it under a lock per key; layers that do not change values
  // pass it down.
  virtual AtomicResult atomic(std::string_view key, std::string_view function,
                              std::string_view argument);

  // Whether a write (put, remove) may wait on something slow: a disk, a
  // lock held across I/O, the network. Servers run writes that may block
  // on a worker pool, and the others inline. True unless a store knows
  // better (the memory engine does).
  virtual bool writes_may_block() const { return true; }
  // Whether a read may wait on another node (a routing layer, a network
  // store): servers then run reads on their worker pool too, never on the
  // network library's own threads. False unless a store says so.
  virtual bool reads_may_block() const { return false; }
};

// Checks a key and a value against a store's size limits. Engines call these
// before touching storage. Throw InvalidArgument naming the store and key.
[[noreturn]] void reject_key(std::string_view store, std::string_view key,
                             size_t max_key_size);
inline void check_key(std::string_view store, std::string_view key,
                      size_t max_key_size) {
  if (key.empty() || key.size() > max_key_size) reject_key(store, key, max_key_size);
}
void check_value(std::string_view store, std::string_view key,
                 std::string_view value, size_t max_value_size);

// Engines and routing layers call this on each put: a TTL must have been
// taken up by a `ttl` layer above them (Versioned::ttl_ms). Throws
// InvalidArgument naming the store.
[[noreturn]] void reject_ttl(std::string_view store);
inline void check_no_ttl(std::string_view store, const Versioned& value) {
  if (value.ttl_ms != 0) reject_ttl(store);
}

// A printable rendering of a key for error messages: printable ASCII keys
// in quotes, anything else as hex; long keys are cut with "...".
std::string printable_key(std::string_view key);

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_STORE_H_

// OrderedPuts: writes that supersede every stored version of their key,
// started without waiting, at most one of a key in flight: the next write
// of a key starts once the one before it has answered, so one writer's
// writes of a key apply in the order made (H2O's rule for non-blocking
// puts), while writes of different keys run at once. What Client::put_async
// and the Redis-protocol front's SET are made of. Internal: use the Client.
//
// Thread-safe.

#ifndef CAIRN_ORDERED_PUTS_H_
#define CAIRN_ORDERED_PUTS_H_

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cairn/export.h"
#include "cairn/store.h"
#include "cairn/versioned.h"

CAIRN_API_BEGIN
namespace cairn::internal {

class OrderedPuts {
 public:
  // What a write's callback gets: the clock stored, or the error.
  using Done = std::function<void(VectorClock stored, std::exception_ptr error)>;

  // Writes go to `store` (through its non-blocking calls) and increment
  // `node` in the clock; one that comes back obsolete (a writer with the
  // same id got there first) is read and written again, up to `max_tries`.
  OrderedPuts(std::shared_ptr<Store> store, NodeId node, int max_tries);
  // Waits for the writes in flight (wait_idle()).
  ~OrderedPuts();
  OrderedPuts(const OrderedPuts&) = delete;
  OrderedPuts& operator=(const OrderedPuts&) = delete;

  // Writes `value` under `key` as a successor of every version stored when
  // its turn comes: now, or once the writes of `key` made before it have
  // answered. `done` runs once, on any thread (the caller's, if the store
  // answers at once). It must not block.
  void put(std::string key, std::string value, Done done);

  // Waits until every write made before this call has answered.
  void wait_idle();

 private:
  struct Write {
    std::string value;
    Done done;
  };
  void start(std::string key, Write w, int attempt);
  // Calls `done`, then starts `key`'s next write, if any.
  void answer(const std::string& key, const Done& done, VectorClock stored,
              std::exception_ptr error);

  std::shared_ptr<Store> store_;
  const NodeId node_;
  const int max_tries_;
  std::mutex mu_;
  std::condition_variable idle_;
  // Per key with a write in flight: the writes waiting their turn.
  std::unordered_map<std::string, std::deque<Write>> lines_;  // guarded by mu_
  uint64_t in_flight_ = 0;                                    // guarded by mu_
};

}  // namespace cairn::internal
CAIRN_API_END

#endif  // CAIRN_ORDERED_PUTS_H_

// Epoch-based reclamation: lets readers use memory without locks while
// writers unlink it, by deferring each free until no reader that could have
// seen the memory is still reading.
//
// A reader brackets its access with an EpochGuard: one atomic exchange to
// announce the current epoch and one plain store to leave. A writer unlinks
// memory (so no new reader can reach it) and then retires it; retired memory
// is freed once every reader active at the unlink has left.
//
// Thread-safe. One process-wide domain: every thread that reads gets a slot
// the first time and gives it back when it exits.

#ifndef CAIRN_ENGINES_MEMORY_EPOCH_H_
#define CAIRN_ENGINES_MEMORY_EPOCH_H_

#include <atomic>
#include <cstdint>
#include <vector>

namespace cairn::internal {

class EpochGuard {
 public:
  EpochGuard();
  ~EpochGuard();
  EpochGuard(const EpochGuard&) = delete;
  EpochGuard& operator=(const EpochGuard&) = delete;

 private:
  bool outermost_ = false;
};

// Waits until every reader that was inside an EpochGuard when this was
// called has left it. Readers that enter later do not delay it.
// REQUIRES: the caller is not inside an EpochGuard.
void wait_for_readers();

// Memory waiting to be freed, owned by one writer at a time (callers
// serialize access, e.g. under a shard's write mutex).
class RetireList {
 public:
  using Deleter = void (*)(void*);

  RetireList() = default;
  RetireList(const RetireList&) = delete;
  RetireList& operator=(const RetireList&) = delete;
  // Frees everything. REQUIRES: no reader can still reach any of it.
  ~RetireList() { free_all(); }

  // Makes room for one retire(), so that retire() cannot fail after the
  // caller has published a replacement.
  void reserve();
  // Frees `p` with `deleter` once the readers active now have left. `bytes`
  // is its size: the list reclaims once 64 items or 4 MiB wait, so large
  // values do not pile up. Does not throw after reserve().
  // REQUIRES: `p` is already unreachable for new readers.
  void retire(void* p, Deleter deleter, size_t bytes);
  // Frees what no active reader can hold. Called by retire() as the list
  // grows; call it to release memory sooner.
  void reclaim();
  // REQUIRES: no reader can still reach any of it.
  void free_all();
  size_t size() const { return items_.size(); }

 private:
  struct Item {
    uint64_t epoch;
    void* ptr;
    Deleter deleter;
  };
  static constexpr size_t kReclaimItems = 64;
  static constexpr size_t kReclaimBytes = size_t{4} << 20;
  std::vector<Item> items_;
  size_t bytes_ = 0;  // retired since the last reclaim
  size_t reclaim_items_ = kReclaimItems;
  size_t reclaim_bytes_ = kReclaimBytes;
};

}  // namespace cairn::internal

#endif  // CAIRN_ENGINES_MEMORY_EPOCH_H_

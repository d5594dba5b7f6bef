#include "engines/memory/epoch.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

namespace cairn::internal {

namespace {

// Epochs start at 1: a slot holding 0 is not reading.
std::atomic<uint64_t> g_epoch{1};

struct alignas(64) Slot {
  std::atomic<uint64_t> epoch{0};  // the epoch announced while reading
  std::atomic<bool> owned{false};  // held by a live thread
};

// Slots are never freed (a scan may be reading them); a thread that exits
// returns its slot for the next thread to reuse.
std::mutex g_slots_mu;
std::vector<std::unique_ptr<Slot>>* g_slots = new std::vector<std::unique_ptr<Slot>>;
std::atomic<size_t> g_slot_count{0};

Slot* claim_slot() {
  std::lock_guard lock(g_slots_mu);
  for (auto& s : *g_slots) {
    bool expected = false;
    if (s->owned.compare_exchange_strong(expected, true)) return s.get();
  }
  g_slots->push_back(std::make_unique<Slot>());
  g_slots->back()->owned = true;
  g_slot_count.store(g_slots->size(), std::memory_order_release);
  return g_slots->back().get();
}

// The hot path reads only these trivially constructed thread-locals, which
// cost no initialization check; the slot is claimed on a thread's first read
// and given back by t_slot_owner's destructor when the thread exits.
thread_local Slot* t_slot = nullptr;
thread_local int t_depth = 0;

struct SlotOwner {
  ~SlotOwner() {
    if (t_slot == nullptr) return;
    t_slot->epoch.store(0, std::memory_order_release);
    t_slot->owned.store(false, std::memory_order_release);
  }
};
thread_local SlotOwner t_slot_owner;

[[gnu::noinline]] Slot* first_slot() {
  t_slot = claim_slot();
  (void)&t_slot_owner;  // constructs it, so that it runs at thread exit
  return t_slot;
}

// The smallest epoch announced by an active reader; UINT64_MAX if none.
uint64_t min_active_epoch() {
  uint64_t min = UINT64_MAX;
  std::lock_guard lock(g_slots_mu);
  for (const auto& s : *g_slots) {
    const uint64_t e = s->epoch.load(std::memory_order_acquire);
    if (e != 0 && e < min) min = e;
  }
  return min;
}

}  // namespace

EpochGuard::EpochGuard() : outermost_(t_depth++ == 0) {
  if (!outermost_) return;
  Slot* slot = t_slot != nullptr ? t_slot : first_slot();
  // The exchange is a full fence: the announcement is visible to every
  // reclaimer before this thread loads any pointer it then protects.
  slot->epoch.exchange(g_epoch.load(std::memory_order_acquire), std::memory_order_seq_cst);
}

EpochGuard::~EpochGuard() {
  --t_depth;
  if (outermost_) t_slot->epoch.store(0, std::memory_order_release);
}

void wait_for_readers() {
  const uint64_t after = g_epoch.fetch_add(1, std::memory_order_seq_cst) + 1;
  while (min_active_epoch() < after) std::this_thread::yield();
}

void RetireList::retire(void* p, Deleter deleter) {
  // Tag with the epoch now: readers that announced it or an earlier one may
  // have loaded `p` before it was unlinked; later ones cannot.
  items_.push_back({g_epoch.load(std::memory_order_acquire), p, deleter});
  if (items_.size() >= reclaim_at_) reclaim();
}

void RetireList::reclaim() {
  // Advancing the epoch (a full fence) makes the unlinks before it visible
  // to readers that start after it, and lets the next reclaim free these.
  g_epoch.fetch_add(1, std::memory_order_seq_cst);
  const uint64_t min_active = min_active_epoch();
  size_t kept = 0;
  for (Item& item : items_) {
    if (item.epoch < min_active) {
      item.deleter(item.ptr);
    } else {
      items_[kept++] = item;
    }
  }
  items_.resize(kept);
  // Readers stuck in a long scan keep items alive: back off so that each
  // retire does not rescan, but reclaim again once the list doubles.
  reclaim_at_ = std::max<size_t>(64, kept * 2);
}

void RetireList::free_all() {
  for (Item& item : items_) item.deleter(item.ptr);
  items_.clear();
}

}  // namespace cairn::internal

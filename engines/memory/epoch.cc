#include "engines/memory/epoch.h"

#include <algorithm>
#include <memory>
#include <mutex>
#include <thread>

namespace cairn::internal {

// The protocol, and why each fence is where it is:
//
//   reader:  e = epoch; announce(e); FENCE; load pointers ...; announce(0)
//   writer:  unlink (store a new pointer); FENCE; tag = epoch; retire
//   reclaim: epoch += 1; FENCE; scan announcements; free tag < min(active)
//
// A reader that loads an unlinked pointer did so before the unlink was
// visible; the writer's fence orders its tag read after the unlink, so the
// tag is at least the epoch that reader announced, and the reader holds the
// item until it leaves. A reader whose announcement a reclaim's scan missed
// fenced after that scan, hence after the unlink, and cannot load the old
// pointer at all. (The writer-side fence was missing once: the tag could be
// read while the unlink sat in the store buffer; see the commit history.)

namespace {

// Epochs start at 1: a slot holding 0 is not reading.
std::atomic<uint64_t> g_epoch{1};

struct alignas(64) Slot {
  std::atomic<uint64_t> epoch{0};  // the epoch announced while reading
  std::atomic<bool> owned{false};  // held by a live thread
};

// Slots are never freed (a scan may be reading them) and the registry is
// never destroyed (threads exit after static destruction); a thread that
// exits returns its slot for the next thread to reuse.
struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<Slot>> slots;
};
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

Slot* claim_slot() {
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (auto& s : r.slots) {
    bool expected = false;
    if (s->owned.compare_exchange_strong(expected, true)) return s.get();
  }
  r.slots.push_back(std::make_unique<Slot>());
  r.slots.back()->owned = true;
  return r.slots.back().get();
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
    t_slot = nullptr;  // a later thread_local destructor claims afresh
  }
};
thread_local SlotOwner t_slot_owner;

[[gnu::noinline]] Slot* first_slot() {
  Slot* s = claim_slot();
  (void)&t_slot_owner;  // constructs it, so that it runs at thread exit
  t_slot = s;
  return s;
}

void full_fence() { std::atomic_thread_fence(std::memory_order_seq_cst); }

// The smallest epoch announced by an active reader; UINT64_MAX if none.
// REQUIRES: a full fence since the caller's last unlink or epoch advance.
uint64_t min_active_epoch() {
  uint64_t min = UINT64_MAX;
  Registry& r = registry();
  std::lock_guard lock(r.mu);
  for (const auto& s : r.slots) {
    const uint64_t e = s->epoch.load(std::memory_order_acquire);
    if (e != 0 && e < min) min = e;
  }
  return min;
}

}  // namespace

EpochGuard::EpochGuard() {
  // Claim the slot before counting this guard: if claiming throws, the
  // thread's depth stays right.
  Slot* slot = t_slot != nullptr ? t_slot : first_slot();
  outermost_ = t_depth++ == 0;
  if (!outermost_) return;
  slot->epoch.exchange(g_epoch.load(std::memory_order_acquire), std::memory_order_seq_cst);
#if !defined(__x86_64__) && !defined(__i386__)
  // On x86 the locked exchange is itself a full fence; elsewhere a later
  // load could pass the store half of the exchange.
  full_fence();
#endif
}

EpochGuard::~EpochGuard() {
  --t_depth;
  if (outermost_) t_slot->epoch.store(0, std::memory_order_release);
}

void wait_for_readers() {
  const uint64_t after = g_epoch.fetch_add(1, std::memory_order_seq_cst) + 1;
  full_fence();
  while (min_active_epoch() < after) std::this_thread::yield();
}

void RetireList::reserve() { items_.reserve(items_.size() + 1); }

void RetireList::retire(void* p, Deleter deleter, size_t bytes) {
  full_fence();  // the unlink is visible before the tag is read
  items_.push_back({g_epoch.load(std::memory_order_acquire), p, deleter});
  bytes_ += bytes;
  if (items_.size() >= reclaim_items_ || bytes_ >= reclaim_bytes_) reclaim();
}

void RetireList::reclaim() {
  // Advancing the epoch lets the next reclaim free what readers of the old
  // epoch hold now.
  g_epoch.fetch_add(1, std::memory_order_seq_cst);
  full_fence();
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
  // Kept items are held by readers still inside (a long scan): do not
  // rescan on every retire until the list has doubled. Bytes are not
  // tracked per item; start counting afresh.
  reclaim_items_ = std::max<size_t>(kReclaimItems, kept * 2);
  bytes_ = 0;
}

void RetireList::free_all() {
  for (Item& item : items_) item.deleter(item.ptr);
  items_.clear();
  bytes_ = 0;
}

}  // namespace cairn::internal

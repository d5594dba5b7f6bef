#include "engines/memory/epoch.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace cairn::internal {
namespace {

std::atomic<int> g_freed{0};
void count_free(void*) { ++g_freed; }

// A thread parked inside an EpochGuard until released.
class ParkedReader {
 public:
  ParkedReader() : thread_([this] {
    EpochGuard guard;
    inside_ = true;
    while (!release_) std::this_thread::yield();
  }) {
    while (!inside_) std::this_thread::yield();
  }
  ~ParkedReader() { leave(); }
  void leave() {
    release_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> inside_{false}, release_{false};
  std::thread thread_;
};

TEST(EpochTest, RetiredMemoryWaitsForReadersActiveAtTheUnlink) {
  g_freed = 0;
  RetireList list;
  ParkedReader reader;
  int item;
  list.retire(&item, count_free, sizeof item);
  list.reclaim();
  list.reclaim();
  EXPECT_EQ(g_freed.load(), 0) << "a reader that may hold it is still inside";
  reader.leave();
  list.reclaim();
  EXPECT_EQ(g_freed.load(), 1);
  EXPECT_EQ(list.size(), 0u);
}

TEST(EpochTest, ReadersArrivingLaterDoNotHoldOlderItems) {
  g_freed = 0;
  RetireList list;
  auto early = std::make_unique<ParkedReader>();
  int item;
  list.retire(&item, count_free, sizeof item);
  list.reclaim();  // advances the epoch; the early reader still holds it
  EXPECT_EQ(g_freed.load(), 0);
  ParkedReader late;  // announces the advanced epoch
  early.reset();
  list.reclaim();
  EXPECT_EQ(g_freed.load(), 1) << "the late reader cannot have seen it";
}

TEST(EpochTest, LargeItemsTriggerReclaimBeforeTheItemCount) {
  g_freed = 0;
  RetireList list;
  int a, b;
  list.retire(&a, count_free, 1 << 20);
  EXPECT_EQ(g_freed.load(), 0);
  list.retire(&b, count_free, 4 << 20);  // 5 MiB waiting: reclaim now
  EXPECT_EQ(g_freed.load(), 2);
  EXPECT_EQ(list.size(), 0u);
}

TEST(EpochTest, NestedGuardsLeaveOnlyAtTheOutermost) {
  g_freed = 0;
  RetireList list;
  std::atomic<bool> inner_done{false}, release{false};
  std::thread t([&] {
    EpochGuard outer;
    { EpochGuard inner; }
    inner_done = true;
    while (!release) std::this_thread::yield();
  });
  while (!inner_done) std::this_thread::yield();
  int item;
  list.retire(&item, count_free, sizeof item);
  list.reclaim();
  EXPECT_EQ(g_freed.load(), 0) << "the outer guard still protects";
  release = true;
  t.join();
  list.reclaim();
  EXPECT_EQ(g_freed.load(), 1);
}

TEST(EpochTest, WaitForReadersReturnsOnceEarlierReadersLeave) {
  auto reader = std::make_unique<ParkedReader>();
  std::atomic<bool> waited{false};
  std::thread waiter([&] {
    wait_for_readers();
    waited = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_FALSE(waited.load());
  reader.reset();
  waiter.join();
  EXPECT_TRUE(waited.load());
}

TEST(EpochTest, DestroyingTheListFreesEverything) {
  g_freed = 0;
  {
    RetireList list;
    int a, b;
    list.retire(&a, count_free, sizeof a);
    list.retire(&b, count_free, sizeof b);
  }
  EXPECT_EQ(g_freed.load(), 2);
}

}  // namespace
}  // namespace cairn::internal

// Unit tests of the consumer's own classes. The store under them is cairn's
// in-memory engine, given in one line; the `faults` layer makes it fail,
// to test Inventory's error path.

#include "inventory.h"

#include <cairn/errors.h>
#include <cairn/fault_store.h>
#include <cairn/memory_store.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "namespace_store.h"

namespace consumer {
namespace {

using cairn::FaultStore;

// The mock: a typed client over the in-memory engine.
Inventory::Stock memory_stock(std::shared_ptr<cairn::Store> store = nullptr) {
  if (store == nullptr) store = std::make_shared<cairn::MemoryStore>();
  return Inventory::Stock(std::move(store), cairn::string_serializer(), cairn::int_serializer(64));
}

TEST(InventoryTest, TakesOnlyWhatIsInStock) {
  Inventory inventory(memory_stock());
  EXPECT_EQ(inventory.count("apples"), 0);
  EXPECT_EQ(inventory.add("apples", 5), 5);
  EXPECT_TRUE(inventory.take("apples", 3));
  EXPECT_FALSE(inventory.take("apples", 3));
  EXPECT_FALSE(inventory.take("pears", 1));
  EXPECT_EQ(inventory.count("apples"), 2);
}

TEST(InventoryTest, NoUnitsIsNotAQuantity) {
  Inventory inventory(memory_stock());
  EXPECT_THROW(inventory.add("apples", 0), std::invalid_argument);
  EXPECT_THROW(inventory.take("apples", -1), std::invalid_argument);
}

TEST(InventoryTest, ConcurrentCountsAreRefusedNotLoopedOn) {
  auto store = std::make_shared<cairn::MemoryStore>();
  Inventory inventory(memory_stock(store));
  // Two writers with different node ids, each unaware of the other: siblings.
  ASSERT_EQ(store->put("apples", {cairn::int_serializer(64)->to_bytes(5), cairn::VectorClock({{1, 1}})}),
            cairn::PutResult::kStored);
  ASSERT_EQ(store->put("apples", {cairn::int_serializer(64)->to_bytes(7), cairn::VectorClock({{2, 1}})}),
            cairn::PutResult::kStored);
  EXPECT_THROW(inventory.take("apples", 1), cairn::FailedPrecondition);
}

TEST(InventoryTest, RacingTakersNeverOversell) {
  Inventory inventory(memory_stock());
  inventory.add("apples", 50);
  std::atomic<int> taken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i) taken += inventory.take("apples", 1) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(taken.load(), 50);
  EXPECT_EQ(inventory.count("apples"), 0);
}

class InventoryFaultTest : public ::testing::TestWithParam<FaultStore::Failure> {};

TEST_P(InventoryFaultTest, AStoreThatFailsWritesIsUnavailableAndNothingIsHalfDone) {
  auto faults = std::make_shared<FaultStore>(std::make_unique<cairn::MemoryStore>(),
                                             FaultStore::kPut, std::chrono::milliseconds(0),
                                             FaultStore::Failure::kNone);
  Inventory inventory(memory_stock(faults));
  inventory.add("apples", 5);

  faults->set_failure(GetParam());
  EXPECT_THROW(inventory.add("apples", 1), InventoryUnavailable);
  EXPECT_THROW(inventory.take("apples", 1), InventoryUnavailable);
  EXPECT_EQ(inventory.count("apples"), 5);  // reads still work; nothing changed

  faults->set_failure(FaultStore::Failure::kNone);
  EXPECT_TRUE(inventory.take("apples", 2));
  EXPECT_EQ(inventory.count("apples"), 3);
}

INSTANTIATE_TEST_SUITE_P(Failures, InventoryFaultTest,
                         ::testing::Values(FaultStore::Failure::kUnavailable,
                                           FaultStore::Failure::kTimeout));

TEST(InventoryTest, AnIoErrorIsNotTakenForAnOutage) {
  auto faults = std::make_shared<FaultStore>(std::make_unique<cairn::MemoryStore>(),
                                             FaultStore::kGet, std::chrono::milliseconds(0),
                                             FaultStore::Failure::kIoError);
  Inventory inventory(memory_stock(faults));
  EXPECT_THROW(inventory.count("apples"), cairn::IoError);
}

TEST(NamespaceStoreTest, KeysLiveUnderThePrefixAndScansSeeOnlyTheNamespace) {
  auto store = std::make_shared<NamespaceStore>(std::make_unique<cairn::MemoryStore>(), "shop/");
  Inventory inventory(memory_stock(store));
  inventory.add("apples", 3);

  cairn::Store& engine = store->inner();
  EXPECT_EQ(engine.get("shop/apples").size(), 1u);
  EXPECT_TRUE(engine.get("apples").empty());
  // A key of another namespace, written below the layer.
  ASSERT_EQ(engine.put("depot/pears", {"x", cairn::VectorClock({{1, 1}})}),
            cairn::PutResult::kStored);

  auto it = store->scan();
  ASSERT_TRUE(it->next());
  EXPECT_EQ(it->key(), "apples");
  EXPECT_FALSE(it->next());
}

TEST(NamespaceStoreTest, AnEmptyPrefixIsRefusedAtItsLine) {
  cairn::LayerRegistry registry;
  register_namespace_layer(registry);
  registry.add_engine(
      "memory", [](const cairn::Params&) { return std::make_unique<cairn::MemoryStore>(); },
      "in-memory");
  const cairn::Config config = cairn::Config::parse(
      "stores:\n  s:\n    stack: [{namespace: {prefix: ''}}, {engine: memory}]\n", "ns.yaml");
  try {
    config.open("s", registry);
    FAIL() << "an empty prefix was accepted";
  } catch (const cairn::ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("ns.yaml:3"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("must not be empty"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace consumer

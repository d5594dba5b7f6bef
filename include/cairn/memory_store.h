// MemoryStore: the in-memory engine. A sharded hash table holding, per key,
// one allocation with the key and its encoded versions. It is both the store
// for data that fits in RAM and the mock to put under a stack in unit tests.
//
// Thread-safe. Gets take no lock and never wait for writers; writers wait
// only for other writers of the same shard.

#ifndef CAIRN_MEMORY_STORE_H_
#define CAIRN_MEMORY_STORE_H_

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>

#include "cairn/export.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

namespace internal {
struct CAIRN_INTERNAL MemoryState;
}  // namespace internal

struct MemoryOptions {
  // Used in error messages and describe().
  std::string name = "memory";

  // Behaviour.
  // Largest key accepted, in bytes; larger keys are InvalidArgument.
  size_t max_key_size = 511;
  // Largest value accepted, in bytes.
  size_t max_value_size = 16 << 20;

  // Performance.
  // Number of independently locked shards, rounded up to a power of two.
  // More shards mean less lock contention between writers and a little more
  // fixed memory (one lock and one table each).
  size_t shards = 64;
};

class MemoryStore final : public Store {
 public:
  explicit MemoryStore(MemoryOptions options = {});
  ~MemoryStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;
  // Writes take a shard's lock for a copy, never for I/O.
  bool writes_may_block() const override { return false; }
  // The async calls run inline (Store's defaults), and never wait.
  bool async_calls_block() const override { return false; }

  // Number of keys stored. A snapshot: it may be stale as soon as it returns.
  size_t size() const;

 private:
  void check_open() const;

  MemoryOptions options_;
  // Shared with iterators so that one outliving the store fails cleanly.
  std::shared_ptr<internal::MemoryState> state_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_MEMORY_STORE_H_

// LmdbStore: the engine over a real LMDB environment on disk. All versions of
// a key live together in one LMDB record (the version-list encoding); a put is
// one read-modify-write transaction, so the version rules hold across threads
// and processes.
//
// Thread-safe. Reads run in parallel on every thread, each reusing its own
// read transaction; writes are serialized by LMDB's single writer lock.

#ifndef CAIRN_LMDB_STORE_H_
#define CAIRN_LMDB_STORE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "cairn/export.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

namespace internal {
class CAIRN_INTERNAL LmdbEnv;
}  // namespace internal

struct LmdbOptions {
  // Used in error messages and describe().
  std::string name = "lmdb";
  // The environment's directory (data.mdb and lock.mdb); created if missing.
  // One process may open a directory once at a time.
  std::string path;

  // Behaviour.
  enum class Durability {
    // Every put and remove is on disk when it returns (fsync per commit):
    // nothing acknowledged is lost to a crash or a power cut. The default.
    // Costs one or two fsyncs per write, hundreds of µs on common disks.
    kSync,
    // Commits reach the OS page cache, not the disk. A killed process loses
    // nothing; a power cut or kernel crash may lose the writes of the last
    // `sync_interval_ms` (the database stays consistent: it rolls back to an
    // earlier commit). About 20x cheaper per write than kSync.
    kNoSync,
  };
  Durability durability = Durability::kSync;
  // Largest key accepted, in bytes; at most LMDB's limit (511 in Debian).
  size_t max_key_size = 511;
  // Largest value accepted, in bytes.
  size_t max_value_size = 16 << 20;

  // Performance.
  // Initial size of the memory map, i.e. of the database before it must
  // grow. When a write finds the map full the map doubles, up to
  // max_map_size, and the write is retried: growing waits for in-flight
  // reads, so a generous start avoids pauses. Reserves address space only.
  size_t map_size = size_t{256} << 20;
  size_t max_map_size = size_t{1} << 40;
  // Reader slots in the lock table: one per live thread that has read from
  // the store (a thread gives its slot back when it exits). Raise it for
  // servers with many threads; reads beyond it fail with Unavailable.
  unsigned max_readers = 256;
  // Write through a writable memory map (MDB_WRITEMAP). With kNoSync this
  // about halves the cost of a small write (bench/engines: 1.8 µs against
  // 3.8 µs), but a power cut may then corrupt the database, not just roll it
  // back. Off by default; the file's size on disk becomes the map size
  // (sparse).
  bool write_map = false;
  // With kNoSync: how often a background thread flushes to disk, bounding
  // what a power cut can lose. 0 flushes only on sync() and close().
  int sync_interval_ms = 1000;
};

class LmdbStore final : public Store {
 public:
  // Opens (creating if needed) the environment at options.path. Throws
  // InvalidArgument for bad options, FailedPrecondition if this process has
  // the directory open already, Corruption if the files are not a cairn
  // LMDB environment or are damaged, IoError if the OS refuses.
  explicit LmdbStore(LmdbOptions options);
  ~LmdbStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::unique_ptr<StoreIterator> scan() override;
  // Flushes to disk (nothing left to flush in kSync mode), then closes the
  // environment. Throws IoError if that last flush fails; the store is
  // closed either way.
  void close() override;
  std::string describe() const override;
  // With kSync a write waits for the disk. With kNoSync a commit copies
  // pages into the page cache and waits for nothing slower than LMDB's
  // writer lock, except when the map must grow (rare, and brief while
  // reads are short): servers then run writes inline, on the network
  // library's thread, sparing a hop to a worker (measured: a 3-node
  // cluster's throughput rose by a third).
  bool writes_may_block() const override {
    return options_.durability == LmdbOptions::Durability::kSync;
  }
  // Likewise for the async calls, which run inline (Store's defaults).
  bool async_calls_block() const override { return writes_may_block(); }

  // Forces every committed write to disk, whatever the durability mode.
  void sync();
  // The current size of the memory map in bytes (grows on demand).
  size_t map_size() const;

 private:
  LmdbOptions options_;
  // Shared with iterators and per-thread reader caches, which may outlive
  // the store.
  std::shared_ptr<internal::LmdbEnv> env_;
};

// "sync" or "nosync".
const char* to_string(LmdbOptions::Durability d);

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_LMDB_STORE_H_

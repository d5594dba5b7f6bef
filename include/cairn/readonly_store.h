// Read-only stores: data computed offline, built into sorted files in bulk
// and served memory-mapped, one whole version at a time (Voldemort's
// read-only stores; docs/readonly.md).
//
// A store's directory holds its versions side by side:
//
//   PATH/version-1/   metadata.json, and per partition P: P.index, P.data
//   PATH/version-2/
//   PATH/latest       a symlink to the version served
//
// A version is built by ReadOnlyBuilder (or `cairn build-readonly`), copied
// in by a fetch (ReadOnlyReceiver; `cairn admin readonly fetch`), and made
// live by swap(): reads in flight finish on the version they began on, the
// next ones see the new one. rollback() returns to the previous version.
//
// ReadOnlyStore is thread-safe. Gets take no lock: one index search and one
// read of the mapped data file each. Writes throw Unsupported.

#ifndef CAIRN_READONLY_STORE_H_
#define CAIRN_READONLY_STORE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/export.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

namespace internal {
struct CAIRN_INTERNAL ReadOnlyVersion;
}  // namespace internal

struct ReadOnlyOptions {
  // Used in error messages and describe().
  std::string name = "readonly";
  // The directory of the versions; created if missing. A store with no
  // version yet serves every key as absent.
  std::string path;
  // Versions older than the live one kept on disk after a swap, the live
  // one included: the newest of them, and always the one live before the
  // swap (so a swap that fails on another node can come back to it).
  // Versions newer than the live one (fetched, not swapped in yet) are
  // never deleted by a swap. At least 2.
  int keep = 2;
  // Whether prepare() (and so swap and rollback) re-reads every file of a
  // version to check its checksums before serving it. A fetch checks them
  // as it copies; this also catches damage on the node's own disk since.
  bool verify_on_swap = true;
  // Largest key looked up; longer keys are InvalidArgument, as elsewhere.
  size_t max_key_size = 511;
};

// One version on disk, as status() reports it.
struct ReadOnlyVersionInfo {
  uint64_t version = 0;
  uint64_t records = 0;         // keys it holds (on this node)
  uint64_t bytes = 0;           // size of its files
  uint32_t ring_partitions = 0; // partitions of the ring it was built for
  std::vector<uint32_t> partitions;  // those whose files it holds
  bool live = false;
};

class ReadOnlyStore final : public Store {
 public:
  // Opens the directory and maps the version `latest` names. Throws
  // InvalidArgument for bad options, Corruption if `latest` names a version
  // that is missing or damaged, IoError if the OS refuses.
  explicit ReadOnlyStore(ReadOnlyOptions options);
  ~ReadOnlyStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  // Throw Unsupported: a read-only store changes only by a swap.
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  AtomicResult atomic(std::string_view key, std::string_view function,
                      std::string_view argument) override;
  // Every key of the live version, in index order; the iterator keeps
  // that version mapped while it lives, even across a swap.
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;
  bool writes_may_block() const override { return false; }
  bool async_calls_block() const override { return false; }

  // The version served (0: none yet).
  uint64_t live_version() const;
  // Every version on disk, oldest first.
  std::vector<ReadOnlyVersionInfo> status() const;

  // Maps version `version` (checking it, and with verify_on_swap its
  // checksums) and holds it ready for commit(): the half of a swap that
  // can fail. Replaces a version prepared earlier. Throws NotFound if it
  // is not on disk, Corruption if it is damaged.
  void prepare(uint64_t version);
  // Serves the prepared version from the next read on, points `latest` at
  // it, and deletes versions beyond `keep`. Returns the version served
  // before. Throws FailedPrecondition if `version` is not the one prepared.
  uint64_t commit(uint64_t version);
  // Forgets a prepared version (nothing if none is prepared).
  void abort();
  // Deletes version `version` from disk (a fetch that did not reach every
  // node is discarded where it did). Forgets it if it is prepared. Throws
  // FailedPrecondition for the live version; nothing for one not on disk.
  void discard(uint64_t version);
  // prepare() then commit().
  uint64_t swap(uint64_t version);
  // The newest version on disk older than the live one (0: none).
  uint64_t previous_version() const;

  // The directory of the versions.
  const std::string& path() const { return options_.path; }

 private:
  void check_open() const;

  ReadOnlyOptions options_;
  // The version gets read, published for readers that enter an epoch
  // (engines/memory/epoch.h); its owner is live_, which scans share.
  std::atomic<internal::ReadOnlyVersion*> current_{nullptr};
  // Shared with scans, which may outlive the store.
  std::shared_ptr<std::atomic<bool>> closed_ = std::make_shared<std::atomic<bool>>(false);
  mutable std::mutex mu_;  // serializes prepare/commit/abort/close
  std::shared_ptr<internal::ReadOnlyVersion> live_;      // guarded by mu_
  std::shared_ptr<internal::ReadOnlyVersion> prepared_;  // guarded by mu_
};

// Builds one version of a read-only store from records given in any order,
// in bounded memory: records are sorted in runs of `memory_bytes` spilled
// to temporary files, then merged into one index and one data file per
// partition of the ring (ring_partitions = 1 for an embedded store).
//
//   ReadOnlyBuilder b({.dir = "out/version-1", .ring_partitions = 24});
//   b.add(key, value);  // bytes, as the engine stores them
//   ReadOnlyBuildResult r = b.finish();
//
// Not thread-safe. A key added twice makes finish() throw InvalidArgument
// naming it. Nothing appears at `dir` unless finish() succeeds.
struct ReadOnlyBuildOptions {
  std::string dir;               // must not exist yet
  uint32_t ring_partitions = 1;  // the ring's Q (cairn/ring.h), or 1
  size_t memory_bytes = size_t{256} << 20;  // per sorted run
  std::string temp_dir;          // for runs; default: beside `dir`
  std::string store;             // recorded in metadata.json
  size_t max_key_size = 511;
  size_t max_value_size = 16 << 20;
  // Called now and then (about every 64 Ki records and at each phase's end)
  // with the phase ("sort" or "merge"), records and input bytes so far.
  std::function<void(std::string_view phase, uint64_t records, uint64_t bytes)> progress;
};

struct ReadOnlyBuildResult {
  uint64_t records = 0;
  uint64_t input_bytes = 0;   // of keys and values added
  uint64_t output_bytes = 0;  // of the files written
  uint32_t runs = 0;          // sorted runs spilled to disk (0: fit in memory)
};

class ReadOnlyBuilder {
 public:
  explicit ReadOnlyBuilder(ReadOnlyBuildOptions options);
  ~ReadOnlyBuilder();
  ReadOnlyBuilder(const ReadOnlyBuilder&) = delete;
  ReadOnlyBuilder& operator=(const ReadOnlyBuilder&) = delete;

  // Adds a record. Throws InvalidArgument for an empty or oversized key or
  // an oversized value, IoError if a run cannot be written.
  void add(std::string_view key, std::string_view value);
  // Merges the runs into the version's files, checksums them, writes
  // metadata.json and renames the whole into place.
  ReadOnlyBuildResult finish();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_READONLY_STORE_H_

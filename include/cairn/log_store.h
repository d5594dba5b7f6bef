// LogStore, the `log` engine (after Yahoo's HaloDB): every key in
// an in-memory index pointing at its record in append-only data files; a
// get is one index probe and one read, the record's CRC checked.
//
// Files, in the store's directory (<id> is 8 digits; one counter numbers
// them all, so a larger id is a younger file):
//   <id>.data   records appended by writers, rolled at max_file_size
//   <id>.datac  records copied out of older files by compaction
//   <id>.index  beside each: the key, place and sequence of its records,
//               so that open need not read values
//   <id>.tomb   tombstones written while <id>.data was the file appended to
//   LOCK        flock'ed while a store has the directory open
//
// Compaction: a background thread picks closed data files whose stale
// bytes reach compaction_threshold of their size, copies their live
// records (throttled to compaction_rate) into a .datac file, makes the
// copies durable, points the index at them (a compare-and-swap: a write
// that raced the copy wins) and deletes the old file. Readers never wait
// for it. Tombstones are rewritten away once no data file holds an older
// record of their key.
//
// Durability (what a power loss can lose):
//   sync: none    a write reaches the page cache before put() returns, so
//                 a crash of the process loses nothing. Data and tombstone
//                 files are fdatasync'ed every flush_bytes appended (and at
//                 roll, sync() and close): a power loss loses at most the
//                 writes after the last of those, which may include puts
//                 and deletes in either order (they live in separate files).
//   sync: always  each write is fdatasync'ed before put() or remove()
//                 returns: an acknowledged write survives a power loss.
//                 Writers waiting together share one fdatasync (group
//                 commit). A write is visible to readers from when it is
//                 appended, a moment before it is durable.
// Compaction syncs its copies before it deletes what they replace, in both
// modes. After any crash, open cuts the files that were being written (the
// last .data, .datac and .tomb) at their last whole record; nothing older
// is touched.
//
// Thread-safe: reads take a shared lock on the index only; writes are
// serialized.

#ifndef CAIRN_LOG_STORE_H_
#define CAIRN_LOG_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "cairn/export.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

struct LogOptions {
  std::string name = "log";  // for messages
  std::string path;          // the directory (created if absent)
  enum class Sync { kNone, kAlways };
  Sync sync = Sync::kNone;
  // A data file is closed and a new one started past this size.
  uint64_t max_file_size = 64 << 20;
  size_t max_key_size = 511;        // at most 65535
  size_t max_value_size = 16 << 20;
  // Threads that load data files (their index files) in parallel at open.
  int build_index_threads = 2;
  // sync: none: fdatasync the files written to after this many bytes have
  // been appended since the last sync. 0: only at roll, sync() and close.
  uint64_t flush_bytes = 8 << 20;
  // Compact a closed data file once this fraction of it is stale (0 < x <= 1).
  double compaction_threshold = 0.5;
  // Bytes compaction copies per second at most. 0: no limit.
  uint64_t compaction_rate = 256 << 20;
  // false: no compaction thread (files keep their stale records).
  bool compaction = true;
};

// What LogStore::stats() reports.
struct LogStats {
  uint64_t keys = 0;
  uint64_t data_files = 0;
  uint64_t data_bytes = 0;   // in data files
  uint64_t stale_bytes = 0;  // records superseded or deleted: what compaction frees
  // Per data file, by id: its size and its stale bytes.
  std::map<uint32_t, std::pair<uint64_t, uint64_t>> files;
  uint64_t appended_bytes = 0;  // records written since the store opened
  // How the last open found the records: from closed files' index files
  // (their values unread), or by reading data files.
  uint64_t opened_from_index = 0;
  uint64_t opened_by_scan = 0;
  // The index's memory: its slots and its pool of entries (locations and
  // keys), used or free.
  uint64_t index_bytes = 0;
  double index_bytes_per_key() const { return keys == 0 ? 0 : double(index_bytes) / double(keys); }
  uint64_t tombstone_files = 0;
  uint64_t tombstone_bytes = 0;
  uint64_t syncs = 0;  // fdatasyncs of data and tombstone files since open
  // Compaction since the store opened: data files compacted (their live
  // records copied, the file deleted), what it copied, tombstones dropped.
  uint64_t compaction_runs = 0;
  uint64_t compaction_records_copied = 0;
  uint64_t compaction_bytes_copied = 0;
  uint64_t tombstones_dropped = 0;
  // Bytes written to data files per byte of records written by put and
  // remove, since open: (appended + copied) / appended.
  double write_amplification() const {
    return appended_bytes == 0 ? 1.0
                               : double(appended_bytes + compaction_bytes_copied) / double(appended_bytes);
  }
};

class LogStore final : public Store {
 public:
  // Opens (or creates) the store, rebuilding the index from the files.
  // Throws InvalidArgument for bad options, IoError if the directory or a
  // file cannot be used.
  explicit LogStore(LogOptions options);
  ~LogStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;

  LogStats stats() const;

  // Makes every write so far durable (what sync: always does per write).
  void sync();
  // Stops the compaction thread at its next record (returns once it has
  // stopped) until as many resume_compaction() calls. Calls nest.
  void pause_compaction();
  void resume_compaction();
  // Runs a compaction pass now and returns when it is over: every file past
  // the threshold compacted, tombstones dropped. Throws FailedPrecondition
  // if compaction is paused or off.
  void compact();

  struct CAIRN_INTERNAL State;

 private:
  std::shared_ptr<State> s_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_LOG_STORE_H_

// LogStore, the `log` engine (issue 6, after Yahoo's HaloDB): every key in
// an in-memory index pointing at its record in append-only data files; a
// get is one index probe and one read, the record's CRC checked.
//
// In place: the record format (engines/log/record.h: CRC32C, 64 KiB keys,
// empty values), data files rolled at max_file_size with an index file
// beside each (open takes closed files from their index files, CRC-checked,
// and reads only the file being written), tombstone files, all versions of
// a key in one record, recovery on open that keeps every good record and
// cuts a torn tail off the files being written, two durability modes with
// group commit, stats; files load in parallel at open. Not yet:
// compaction (stale records stay).
//
// Durability:
//   sync: none    each write reaches the page cache before put() returns:
//                 a crash of the process loses nothing; a power loss loses
//                 what the kernel had not written back.
//   sync: always  each write is fdatasync'ed before put() returns: an
//                 acknowledged write survives a power loss. Writers waiting
//                 together share one fdatasync (group commit). A write is
//                 visible to readers from when it is appended, a moment
//                 before it is durable.
//
// Thread-safe: reads take a shared lock on the index only; writes are
// serialized.

#ifndef CAIRN_ENGINES_LOG_LOG_STORE_H_
#define CAIRN_ENGINES_LOG_LOG_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "cairn/registry.h"
#include "cairn/store.h"

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
  // The index's memory: table slots, and key bytes beyond the strings'
  // inline buffers. An estimate from the table's capacity.
  uint64_t index_bytes = 0;
  double index_bytes_per_key() const { return keys == 0 ? 0 : double(index_bytes) / double(keys); }
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
                        VectorClock* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;

  LogStats stats() const;

  struct State;

 private:
  std::shared_ptr<State> s_;
};

// engine: {log: {path: DIR, sync: none|always, max_file_size: 64MiB, ...}}
std::unique_ptr<Store> make_log_engine(const Params& params);

}  // namespace cairn

#endif  // CAIRN_ENGINES_LOG_LOG_STORE_H_

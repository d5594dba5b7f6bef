// ReadOnlyReceiver: takes in the files of one version of a read-only store
// (a fetch), checking each against the checksum and size its metadata
// says, and puts the version in place only when every file is whole:
// ROOT/.incoming-N while it arrives, ROOT/version-N once finish() returns.
// A receiver destroyed before finish() leaves nothing behind.
//
// Not thread-safe: one fetch, one thread.

#ifndef CAIRN_ENGINES_READONLY_RECEIVER_H_
#define CAIRN_ENGINES_READONLY_RECEIVER_H_

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "engines/readonly/format.h"

namespace cairn::internal {

class ReadOnlyReceiver {
 public:
  // Starts receiving version `version` under `root` with the metadata
  // `metadata_json` (the chunks this node holds). Throws Corruption for
  // malformed metadata, FailedPrecondition if version-N exists already,
  // InvalidArgument for version 0, Unavailable while another fetch into
  // `root` is in progress (`root`/.fetch.lock is locked for the
  // receiver's life, and unlocked by the kernel if the process dies).
  ReadOnlyReceiver(std::string root, uint64_t version, std::string_view metadata_json);
  ~ReadOnlyReceiver();
  ReadOnlyReceiver(const ReadOnlyReceiver&) = delete;
  ReadOnlyReceiver& operator=(const ReadOnlyReceiver&) = delete;

  // Appends `bytes` to `file`. Files arrive whole, one after another, in
  // the metadata's order (each chunk's index, then its data). Throws
  // InvalidArgument for a file out of order or too long, Corruption when
  // a file ends with the wrong checksum.
  void write(std::string_view file, std::string_view bytes);
  // Checks that every file arrived whole, syncs them, and renames the
  // version into place. Throws as write() does.
  void finish();

  const readonly::VersionMeta& meta() const { return meta_; }
  uint64_t bytes_received() const { return received_; }

 private:
  struct Open;
  void close_current();
  void release();  // the lock
  const readonly::FileMeta& expected(size_t i) const;

  std::string root_;
  uint64_t version_;
  readonly::VersionMeta meta_;
  std::string metadata_text_;
  std::string incoming_;
  int lock_fd_ = -1;
  size_t next_file_ = 0;  // files in metadata order: 2 per chunk
  std::unique_ptr<Open> open_;
  uint64_t received_ = 0;
  bool finished_ = false;
};

}  // namespace cairn::internal

#endif  // CAIRN_ENGINES_READONLY_RECEIVER_H_

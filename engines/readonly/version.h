// One version of a read-only store, mapped: what ReadOnlyStore serves and
// its scans iterate (include/cairn/readonly_store.h; the files are
// described in engines/readonly/format.h).

#ifndef CAIRN_ENGINES_READONLY_VERSION_H_
#define CAIRN_ENGINES_READONLY_VERSION_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engines/readonly/format.h"

namespace cairn::internal {

struct ReadOnlyVersion {
  struct Chunk {
    const char* index = nullptr;  // the first entry, past the header
    uint64_t entries = 0;
    const char* data = nullptr;   // the whole file, header included
    uint64_t data_size = 0;
  };

  // Maps the version in `dir`: checks metadata.json, each file's size and
  // header, and with `verify` each file's checksum. Throws Corruption
  // (naming the file) or IoError.
  ReadOnlyVersion(uint64_t number, std::string dir, bool verify);
  ~ReadOnlyVersion();
  ReadOnlyVersion(const ReadOnlyVersion&) = delete;
  ReadOnlyVersion& operator=(const ReadOnlyVersion&) = delete;

  // The value of `key` (whose ring hash is `hash`), or false. The view
  // points into the mapping. Throws Corruption for a damaged record.
  bool find(std::string_view key, uint64_t hash, std::string_view* value) const;

  // The record at `offset` of a chunk's data file. Throws Corruption.
  void record(const Chunk& c, uint64_t offset, std::string_view* key,
              std::string_view* value) const;
  static uint64_t entry_hash(const Chunk& c, uint64_t i);
  static uint64_t entry_offset(const Chunk& c, uint64_t i);

  const uint64_t number;
  const std::string dir;
  readonly::VersionMeta meta;
  std::vector<Chunk> chunks;  // by partition; entries 0 where none is held
  std::vector<std::pair<void*, size_t>> maps;
};

}  // namespace cairn::internal

#endif  // CAIRN_ENGINES_READONLY_VERSION_H_

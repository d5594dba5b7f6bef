// The files of a read-only store's version (docs/readonly.md, "Format").
//
//   metadata.json  what the version holds: the ring's partition count, and
//                  per partition its record count and its two files' sizes
//                  and CRC32C checksums
//   P.index        a 32-byte header ("CAIRNRI1", format, partition, Q),
//                  then one 16-byte entry per key: its 64-bit hash and the
//                  offset of its record in P.data, sorted by hash (keys of
//                  equal hash by key)
//   P.data         a 32-byte header ("CAIRNRD1", format, partition, Q),
//                  then records: varint key size, varint value size, key,
//                  value
//
// Integers are little-endian. The hash is the ring's (Ring::hash), so a
// key's partition is hash mod Q and, within a partition, hashes spread
// evenly over 64 bits: an interpolation search finds one in a few probes.

#ifndef CAIRN_ENGINES_READONLY_FORMAT_H_
#define CAIRN_ENGINES_READONLY_FORMAT_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::internal::readonly {

inline constexpr char kIndexMagic[] = "CAIRNRI1";
inline constexpr char kDataMagic[] = "CAIRNRD1";
inline constexpr uint32_t kFormat = 1;
inline constexpr size_t kHeaderSize = 32;
inline constexpr size_t kEntrySize = 16;
inline constexpr char kMetadataFile[] = "metadata.json";
inline constexpr char kFormatName[] = "cairn-readonly";

struct FileMeta {
  std::string file;  // name within the version's directory
  uint64_t bytes = 0;
  uint32_t crc32c = 0;
};

struct ChunkMeta {
  uint32_t partition = 0;
  uint64_t records = 0;
  FileMeta index, data;
};

struct VersionMeta {
  uint32_t ring_partitions = 1;
  uint64_t records = 0;
  std::string store;
  int64_t created_ms = 0;
  std::vector<ChunkMeta> chunks;  // by partition, ascending

  uint64_t bytes() const;
  // The chunks of `partitions` only (what one node of a cluster holds).
  VersionMeta subset(const std::vector<uint32_t>& partitions) const;
  std::string to_json() const;
  // Throws Corruption naming `where` for anything malformed: a missing or
  // mistyped field, a file name that is not P.index / P.data, a partition
  // out of range or listed twice.
  static VersionMeta parse(std::string_view json, const std::string& where);
};

// A file header: magic, format, partition, ring partitions, zero padding.
std::string header(const char* magic, uint32_t partition, uint32_t ring_partitions);
// Throws Corruption naming `where` if `bytes` does not start with it.
void check_header(std::string_view bytes, const char* magic, uint32_t partition,
                  uint32_t ring_partitions, const std::string& where);

// The CRC32C of a whole file; throws IoError if it cannot be read.
uint32_t file_crc32c(const std::string& path, uint64_t* size);

std::string index_file(uint32_t partition);
std::string data_file(uint32_t partition);
// "PATH/version-N".
std::string version_dir(const std::string& root, uint64_t version);
// The versions present under `root` (directories version-N), ascending.
std::vector<uint64_t> list_versions(const std::string& root);
// The version `root`/latest names (0: no `latest`). Throws Corruption if
// it names something that is not a version-N.
uint64_t latest_version(const std::string& root);
// Points `root`/latest at version-N, atomically (a new symlink renamed
// over the old), and syncs the directory.
void set_latest(const std::string& root, uint64_t version);
// fsync of a file or directory; throws IoError.
void sync_path(const std::string& path);

}  // namespace cairn::internal::readonly

#endif  // CAIRN_ENGINES_READONLY_FORMAT_H_

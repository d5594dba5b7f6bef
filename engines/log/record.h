// The log engine's record format (issue 6): what data files and tombstone
// files are made of. All integers little-endian.
//
//   offset  size  field
//   0       4     CRC32C of the record's offset in its file (8 bytes,
//                 little-endian) followed by bytes 4 .. end of the record
//   4       1     format version (1)
//   5       1     kind: 1 = put (the key's whole version list), 2 = tombstone
//   6       2     key size, 1 .. 65535
//   8       4     value size, 0 .. 2^32 - 1 (empty values are legal)
//   12      8     sequence number
//   20      key, then value
//
// Better than HaloDB's (18-byte header, CRC32 of zlib): keys up to 64 KiB
// (HaloDB's stop at 127 bytes), empty values legal, and the CRC is checked
// on every read, so damaged bytes are Corruption, never a wrong value.
// The CRC covers where the record is: a record's image stored inside a
// value (a backup of a log file, say) is not a good record where it lies,
// so recovery, stepping over damage byte by byte, cannot take it for one.
// A record copied elsewhere (compaction) is sealed again with reseal().

#ifndef CAIRN_ENGINES_LOG_RECORD_H_
#define CAIRN_ENGINES_LOG_RECORD_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace cairn::internal::logrec {

inline constexpr size_t kHeaderSize = 20;
inline constexpr uint8_t kFormatVersion = 1;
inline constexpr size_t kMaxKeySize = 65535;

enum class Kind : uint8_t { kPut = 1, kTombstone = 2 };

struct Record {
  Kind kind = Kind::kPut;
  uint64_t sequence = 0;
  std::string_view key;    // views into the bytes parsed
  std::string_view value;
  size_t size = 0;         // header + key + value
};

// Appends one record, to lie at `offset` in its file, to `*out`.
// REQUIRES: 1 <= key.size() <= kMaxKeySize, value.size() < 2^32.
void append(std::string* out, Kind kind, uint64_t sequence, std::string_view key,
            std::string_view value, uint64_t offset);

// Rewrites the CRC of the encoded record `record` (a good one) for a new
// offset.
void reseal(std::string* record, uint64_t offset);

// The size of a record with this key and value.
inline size_t record_size(size_t key_size, size_t value_size) {
  return kHeaderSize + key_size + value_size;
}

enum class Parse {
  kOk,         // *out holds the record at the front of the bytes
  kTruncated,  // the bytes end inside the record (or are empty)
  kCorrupt,    // a header field is impossible, or the CRC does not match
};

// Parses the record at the front of `bytes`, which lie at `offset` in their
// file. `max_size` bounds the sizes a header may claim (a damaged length
// must not be believed).
Parse parse(std::string_view bytes, Record* out, size_t max_size, uint64_t offset);

// Index entries, in an <id>.index file beside each data file: where each
// put record of the data file is, so that opening the store need not read
// the values. Little-endian:
//
//   0   4   CRC32C of bytes 4 .. end of the entry
//   4   2   key size, 1 .. 65535
//   6   4   record size
//   10  8   record offset in the data file
//   18  8   sequence number
//   26  key
inline constexpr size_t kIndexHeaderSize = 26;

struct IndexEntry {
  std::string_view key;
  uint32_t record_size = 0;
  uint64_t record_offset = 0;
  uint64_t sequence = 0;
  size_t size = 0;  // the entry's own size
};

void append_index(std::string* out, std::string_view key, uint32_t record_size,
                  uint64_t record_offset, uint64_t sequence);
Parse parse_index(std::string_view bytes, IndexEntry* out);

}  // namespace cairn::internal::logrec

#endif  // CAIRN_ENGINES_LOG_RECORD_H_

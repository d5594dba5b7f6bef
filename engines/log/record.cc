#include "engines/log/record.h"

#include <cassert>

#include "engines/log/crc32c.h"

namespace cairn::internal::logrec {

namespace {

void put_le(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

uint64_t get_le(std::string_view s, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) {
    v = (v << 8) | static_cast<unsigned char>(s[at + static_cast<size_t>(i)]);
  }
  return v;
}

}  // namespace

namespace {

// The CRC's starting point: the CRC32C of the offset's 8 bytes.
uint32_t seed(uint64_t offset) {
  char bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>(offset >> (8 * i));
  return crc32c(std::string_view(bytes, 8));
}

void seal(std::string* out, size_t start, size_t size, uint64_t offset) {
  const uint32_t crc = crc32c(std::string_view(*out).substr(start + 4, size - 4), seed(offset));
  for (int i = 0; i < 4; ++i) (*out)[start + static_cast<size_t>(i)] = static_cast<char>(crc >> (8 * i));
}

}  // namespace

void append(std::string* out, Kind kind, uint64_t sequence, std::string_view key,
            std::string_view value, uint64_t offset) {
  assert(!key.empty() && key.size() <= kMaxKeySize);
  assert(value.size() <= UINT32_MAX);
  const size_t start = out->size();
  out->reserve(start + record_size(key.size(), value.size()));
  put_le(out, 0, 4);  // the CRC, filled in below
  out->push_back(static_cast<char>(kFormatVersion));
  out->push_back(static_cast<char>(kind));
  put_le(out, key.size(), 2);
  put_le(out, value.size(), 4);
  put_le(out, sequence, 8);
  out->append(key);
  out->append(value);
  seal(out, start, out->size() - start, offset);
}

void reseal(std::string* record, uint64_t offset) { seal(record, 0, record->size(), offset); }

Parse parse(std::string_view bytes, Record* out, size_t max_size, uint64_t offset) {
  if (bytes.size() < kHeaderSize) return Parse::kTruncated;
  const uint8_t version = static_cast<uint8_t>(bytes[4]);
  const uint8_t kind = static_cast<uint8_t>(bytes[5]);
  const size_t key_size = get_le(bytes, 6, 2);
  const size_t value_size = get_le(bytes, 8, 4);
  if (version != kFormatVersion || (kind != 1 && kind != 2) || key_size == 0 ||
      (kind == 2 && value_size != 0)) {
    return Parse::kCorrupt;
  }
  const size_t size = record_size(key_size, value_size);
  if (size > max_size) return Parse::kCorrupt;
  if (bytes.size() < size) return Parse::kTruncated;
  const uint32_t stored = static_cast<uint32_t>(get_le(bytes, 0, 4));
  if (crc32c(bytes.substr(4, size - 4), seed(offset)) != stored) return Parse::kCorrupt;
  out->kind = static_cast<Kind>(kind);
  out->sequence = get_le(bytes, 12, 8);
  out->key = bytes.substr(kHeaderSize, key_size);
  out->value = bytes.substr(kHeaderSize + key_size, value_size);
  out->size = size;
  return Parse::kOk;
}

void append_index(std::string* out, std::string_view key, uint32_t record_size,
                  uint64_t record_offset, uint64_t sequence) {
  assert(!key.empty() && key.size() <= kMaxKeySize);
  const size_t start = out->size();
  put_le(out, 0, 4);
  put_le(out, key.size(), 2);
  put_le(out, record_size, 4);
  put_le(out, record_offset, 8);
  put_le(out, sequence, 8);
  out->append(key);
  const uint32_t crc = crc32c(std::string_view(*out).substr(start + 4));
  for (int i = 0; i < 4; ++i) (*out)[start + static_cast<size_t>(i)] = static_cast<char>(crc >> (8 * i));
}

Parse parse_index(std::string_view bytes, IndexEntry* out) {
  if (bytes.size() < kIndexHeaderSize) return Parse::kTruncated;
  const size_t key_size = get_le(bytes, 4, 2);
  if (key_size == 0) return Parse::kCorrupt;
  const size_t size = kIndexHeaderSize + key_size;
  if (bytes.size() < size) return Parse::kTruncated;
  if (crc32c(bytes.substr(4, size - 4)) != static_cast<uint32_t>(get_le(bytes, 0, 4))) {
    return Parse::kCorrupt;
  }
  out->record_size = static_cast<uint32_t>(get_le(bytes, 6, 4));
  out->record_offset = get_le(bytes, 10, 8);
  out->sequence = get_le(bytes, 18, 8);
  out->key = bytes.substr(kIndexHeaderSize, key_size);
  out->size = size;
  return Parse::kOk;
}

}  // namespace cairn::internal::logrec

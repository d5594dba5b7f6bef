// CompressionStore: compresses values on the way down and decompresses them
// on the way up (get, get_all, scan); clocks and keys pass through. Values
// below `min_size`, or that would not shrink, are stored raw behind a
// one-byte header, so both kinds read back — also after the codec or the
// threshold changes. It belongs under serialization and resolution and
// above the engine (or, in a cluster, above routing, so values cross the
// network compressed).
//
// Thread-safe: it keeps no state but its options.

#ifndef CAIRN_COMPRESSION_STORE_H_
#define CAIRN_COMPRESSION_STORE_H_

#include <cstdint>
#include <string>

#include "cairn/export.h"
#include "cairn/forwarding_store.h"

CAIRN_API_BEGIN
namespace cairn {

// How a value is compressed. Frozen: the number is the first byte of every
// stored value (kRaw marks one stored as it was).
enum class Codec : uint8_t { kRaw = 0, kZstd = 1, kLz4 = 2, kSnappy = 3, kGzip = 4 };

struct CompressionOptions {
  // Used in error messages.
  std::string name = "store";
  Codec codec = Codec::kZstd;
  // Codec-specific: zstd 1-22 (3), gzip 0-9 (6), lz4 0 fast or 1-12 HC (0);
  // snappy has none. Higher levels save more bytes and cost more time.
  // -1: the codec's default.
  int level = -1;
  // Values shorter than this are stored raw: below a few dozen bytes,
  // codecs rarely save enough to pay for the time.
  size_t min_size = 64;
  // The largest value (uncompressed) accepted on put and produced on get:
  // a corrupt header claiming more is Corruption, not an allocation. Keep it
  // at least 16 bytes under the value limit of the store below: a value that
  // does not shrink is stored with a header byte, a compressed one with a
  // header and its length. The default is the engines' 16 MiB less 16.
  size_t max_value_size = (16 << 20) - 16;
};

class CompressionStore final : public ForwardingStore {
 public:
  CompressionStore(std::unique_ptr<Store> inner, CompressionOptions options);

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  // Refused: an update function below would see compressed bytes.
  AtomicResult atomic(std::string_view key, std::string_view function,
                      std::string_view argument) override;
  std::unique_ptr<StoreIterator> scan() override;
  std::string describe() const override;

  // Non-blocking: values are compressed before the call goes down and
  // decompressed in its callback.
  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  bool async_calls_block() const override { return inner().async_calls_block(); }

 private:
  // The value as stored: a header byte, and the codec's output or the raw
  // bytes. Throws InvalidArgument for a value over max_value_size.
  Versioned encode(std::string_view key, const Versioned& value) const;
  void decode(std::string_view key, std::vector<Versioned>* versions) const;

  CompressionOptions options_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_COMPRESSION_STORE_H_

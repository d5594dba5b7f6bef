// CompressionStore: compresses values on the way down and decompresses them
// on the way up (get, get_all, scan); clocks and keys pass through. Values
// below `min_size`, or that would not shrink, are stored raw behind a
// one-byte header, so both kinds read back — also after the codec or the
// threshold changes. It belongs under serialization and resolution and
// above the engine (or, in a cluster, above routing, so values cross the
// network compressed).
//
// Thread-safe: it keeps no state but its options.

#ifndef CAIRN_LAYERS_COMPRESSION_COMPRESSION_STORE_H_
#define CAIRN_LAYERS_COMPRESSION_COMPRESSION_STORE_H_

#include <string>

#include "cairn/forwarding_store.h"
#include "cairn/registry.h"
#include "layers/compression/codecs.h"

namespace cairn {

struct CompressionOptions {
  // Used in error messages.
  std::string name = "store";
  internal::Codec codec = internal::Codec::kZstd;
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
                        VectorClock* stored) override;
  std::unique_ptr<StoreIterator> scan() override;
  std::string describe() const override;

 private:
  void decode(std::string_view key, std::vector<Versioned>* versions) const;

  CompressionOptions options_;
};

// The `compress` layer of config files:
//   compress: zstd
//   compress: {codec: zstd | lz4 | snappy | gzip, level: N, min_size: 64, max_value_size: 16MiB}
std::unique_ptr<Store> make_compression_layer(std::unique_ptr<Store> inner, const Params& params);

}  // namespace cairn

#endif  // CAIRN_LAYERS_COMPRESSION_COMPRESSION_STORE_H_

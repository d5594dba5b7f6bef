// The compression codecs and the compressed-value format the compression
// layer stores. Plain functions; thread-safe (per-thread codec contexts).
//
// Stored value (frozen: it is on disk):
//   byte    codec      0 raw, 1 zstd, 2 lz4, 3 snappy, 4 gzip
//   raw:        the value's bytes
//   otherwise:  varint raw length, then the codec's output
// Every value says how it was written, so a store can change codec (or
// min_size) and still read what it wrote before.

#ifndef CAIRN_LAYERS_COMPRESSION_CODECS_H_
#define CAIRN_LAYERS_COMPRESSION_CODECS_H_

#include <cstdint>
#include <string>
#include <string_view>

#include "cairn/compression_store.h"  // Codec

namespace cairn::internal {

using Codec = ::cairn::Codec;

const char* to_string(Codec c);
// The codec named `name` ("zstd", ...); false if none is.
bool codec_from_string(std::string_view name, Codec* out);
// The level each codec uses when none is given, and the range it accepts.
int default_level(Codec c);
int min_level(Codec c);
int max_level(Codec c);

// Encodes `value` with `codec` at `level` into `*out` (replacing it), or
// raw when it is shorter than `min_size` or compressing would not save a
// byte.
void encode_value(Codec codec, int level, size_t min_size, std::string_view value,
                  std::string* out);

// Decodes a stored value into `*out`. Throws Corruption (saying what is
// wrong; the caller adds the store and key) for an unknown codec, a length
// above `max_size`, or codec output that is damaged or of the wrong length.
// Never writes more than `max_size` bytes.
void decode_value(std::string_view stored, size_t max_size, std::string* out);

}  // namespace cairn::internal

#endif  // CAIRN_LAYERS_COMPRESSION_CODECS_H_

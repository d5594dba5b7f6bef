#include "layers/compression/codecs.h"

#include <lz4.h>
#include <lz4hc.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <limits>
#include <memory>

#include "cairn/errors.h"
#include "core/varint.h"

namespace cairn::internal {

const char* to_string(Codec c) {
  switch (c) {
    case Codec::kRaw: return "none";
    case Codec::kZstd: return "zstd";
    case Codec::kLz4: return "lz4";
    case Codec::kSnappy: return "snappy";
    case Codec::kGzip: return "gzip";
  }
  return "?";
}

bool codec_from_string(std::string_view name, Codec* out) {
  for (Codec c : {Codec::kRaw, Codec::kZstd, Codec::kLz4, Codec::kSnappy, Codec::kGzip}) {
    if (name == to_string(c)) {
      *out = c;
      return true;
    }
  }
  return false;
}

// lz4: 0 is the fast compressor, 1..12 the high-compression one (LZ4HC).
int default_level(Codec c) {
  switch (c) {
    case Codec::kZstd: return 3;
    case Codec::kGzip: return 6;
    default: return 0;
  }
}
int min_level(Codec c) { return c == Codec::kZstd ? 1 : 0; }
int max_level(Codec c) {
  switch (c) {
    case Codec::kZstd: return ZSTD_maxCLevel();
    case Codec::kLz4: return LZ4HC_CLEVEL_MAX;
    case Codec::kGzip: return 9;
    default: return 0;
  }
}

namespace {

[[noreturn]] void corrupt(Codec c, const std::string& what) {
  throw Corruption(std::string("compressed value (") + to_string(c) + "): " + what);
}

// Contexts are reused per thread: creating one costs more than compressing
// a small value.
struct ZstdContexts {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~ZstdContexts() {
    ZSTD_freeCCtx(c);
    ZSTD_freeDCtx(d);
  }
};
thread_local ZstdContexts t_zstd;

// Appends the compressed form of `in`; false if the codec failed.
bool compress(Codec c, int level, std::string_view in, std::string* out) {
  const size_t start = out->size();
  switch (c) {
    case Codec::kZstd: {
      out->resize(start + ZSTD_compressBound(in.size()));
      const size_t n = ZSTD_compressCCtx(t_zstd.c, out->data() + start, out->size() - start,
                                         in.data(), in.size(), level);
      if (ZSTD_isError(n)) return false;
      out->resize(start + n);
      return true;
    }
    case Codec::kLz4: {
      if (in.size() > static_cast<size_t>(LZ4_MAX_INPUT_SIZE)) return false;
      const int bound = LZ4_compressBound(static_cast<int>(in.size()));
      out->resize(start + static_cast<size_t>(bound));
      const int n = level == 0
                        ? LZ4_compress_default(in.data(), out->data() + start,
                                               static_cast<int>(in.size()), bound)
                        : LZ4_compress_HC(in.data(), out->data() + start,
                                          static_cast<int>(in.size()), bound, level);
      if (n <= 0) return false;
      out->resize(start + static_cast<size_t>(n));
      return true;
    }
    case Codec::kSnappy: {
      out->resize(start + snappy::MaxCompressedLength(in.size()));
      size_t n = 0;
      snappy::RawCompress(in.data(), in.size(), out->data() + start, &n);
      out->resize(start + n);
      return true;
    }
    case Codec::kGzip: {
      z_stream z{};
      // 15 + 16: a gzip wrapper (header and CRC32), so the bytes are what
      // `gzip -d` reads.
      if (deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) return false;
      out->resize(start + deflateBound(&z, in.size()));
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      z.avail_in = static_cast<uInt>(in.size());
      z.next_out = reinterpret_cast<Bytef*>(out->data() + start);
      z.avail_out = static_cast<uInt>(out->size() - start);
      const int rc = deflate(&z, Z_FINISH);
      const size_t n = z.total_out;
      deflateEnd(&z);
      if (rc != Z_STREAM_END) return false;
      out->resize(start + n);
      return true;
    }
    case Codec::kRaw: break;
  }
  return false;
}

// Decompresses `in` into exactly `raw_len` bytes at `dst`.
void decompress(Codec c, std::string_view in, char* dst, size_t raw_len) {
  switch (c) {
    case Codec::kZstd: {
      const size_t n = ZSTD_decompressDCtx(t_zstd.d, dst, raw_len, in.data(), in.size());
      if (ZSTD_isError(n)) corrupt(c, ZSTD_getErrorName(n));
      if (n != raw_len) corrupt(c, "decompressed to " + std::to_string(n) + " bytes, not " + std::to_string(raw_len));
      return;
    }
    case Codec::kLz4: {
      if (in.size() > static_cast<size_t>(std::numeric_limits<int>::max()) ||
          raw_len > static_cast<size_t>(std::numeric_limits<int>::max())) {
        corrupt(c, "too large for lz4");
      }
      const int n = LZ4_decompress_safe(in.data(), dst, static_cast<int>(in.size()),
                                        static_cast<int>(raw_len));
      if (n < 0) corrupt(c, "malformed input");
      if (static_cast<size_t>(n) != raw_len) {
        corrupt(c, "decompressed to " + std::to_string(n) + " bytes, not " + std::to_string(raw_len));
      }
      return;
    }
    case Codec::kSnappy: {
      size_t n = 0;
      if (!snappy::GetUncompressedLength(in.data(), in.size(), &n) || n != raw_len) {
        corrupt(c, "bad length header");
      }
      if (!snappy::RawUncompress(in.data(), in.size(), dst)) corrupt(c, "malformed input");
      return;
    }
    case Codec::kGzip: {
      z_stream z{};
      if (inflateInit2(&z, 15 + 16) != Z_OK) corrupt(c, "cannot start zlib");
      z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
      z.avail_in = static_cast<uInt>(in.size());
      z.next_out = reinterpret_cast<Bytef*>(dst);
      z.avail_out = static_cast<uInt>(raw_len);
      const int rc = inflate(&z, Z_FINISH);
      const size_t n = z.total_out;
      inflateEnd(&z);
      if (rc != Z_STREAM_END) corrupt(c, z.msg != nullptr ? z.msg : "malformed or truncated input");
      if (n != raw_len) corrupt(c, "decompressed to " + std::to_string(n) + " bytes, not " + std::to_string(raw_len));
      return;
    }
    case Codec::kRaw: break;
  }
}

}  // namespace

void encode_value(Codec codec, int level, size_t min_size, std::string_view value,
                  std::string* out) {
  out->clear();
  if (codec != Codec::kRaw && value.size() >= min_size) {
    out->push_back(static_cast<char>(codec));
    put_varint(out, value.size());
    // Keep the compressed form only if it saves a byte over the raw one.
    if (compress(codec, level, value, out) && out->size() < value.size() + 1) return;
    out->clear();
  }
  out->push_back(static_cast<char>(Codec::kRaw));
  out->append(value);
}

void decode_value(std::string_view stored, size_t max_size, std::string* out) {
  ByteReader r(stored);
  uint8_t tag = 0;
  if (!r.byte(&tag)) throw Corruption("compressed value: empty (no codec byte)");
  if (tag > static_cast<uint8_t>(Codec::kGzip)) {
    throw Corruption("compressed value: unknown codec byte " + std::to_string(tag));
  }
  const auto codec = static_cast<Codec>(tag);
  if (codec == Codec::kRaw) {
    if (r.remaining() > max_size) {
      throw Corruption("compressed value: " + std::to_string(r.remaining()) +
                       " raw bytes, above the limit of " + std::to_string(max_size));
    }
    out->assign(r.rest());
    return;
  }
  uint64_t raw_len = 0;
  if (!r.varint(&raw_len)) corrupt(codec, "truncated length");
  // The length is checked before anything is allocated: a damaged or
  // hostile header cannot make the reader allocate gigabytes.
  if (raw_len > max_size) {
    corrupt(codec, "claims " + std::to_string(raw_len) + " bytes, above the limit of " +
                       std::to_string(max_size));
  }
  out->resize(raw_len);
  decompress(codec, r.rest(), out->data(), raw_len);
}

}  // namespace cairn::internal

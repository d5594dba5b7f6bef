// libFuzzer target: the compression layer's stored-value header and codecs.
// Damaged input must be a Corruption (or decode to bytes within the limit),
// never a crash, an over-read or an allocation past the limit.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cairn/errors.h"
#include "layers/compression/codecs.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  constexpr size_t kLimit = 1 << 20;
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  std::string out;
  try {
    cairn::internal::decode_value(in, kLimit, &out);
    if (out.size() > kLimit) std::abort();
  } catch (const cairn::Corruption&) {
  }
  // And whatever we encode, we decode back.
  for (auto codec : {cairn::internal::Codec::kZstd, cairn::internal::Codec::kLz4,
                     cairn::internal::Codec::kSnappy, cairn::internal::Codec::kGzip}) {
    std::string stored, back;
    cairn::internal::encode_value(codec, cairn::internal::default_level(codec), 0, in, &stored);
    cairn::internal::decode_value(stored, size, &back);
    if (back != in) std::abort();
  }
  return 0;
}

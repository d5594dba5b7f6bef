// libFuzzer target: the vector clock decoder and the version-list decoder
// built on it. Valid input must round-trip; invalid input must be a
// Corruption, never a crash or an over-read.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cairn/errors.h"
#include "cairn/versioned.h"
#include "core/version_list.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  try {
    const cairn::VectorClock c = cairn::VectorClock::decode(in);
    const cairn::VectorClock back = cairn::VectorClock::decode(c.encode());
    if (!(back == c) || back.timestamp_ms() != c.timestamp_ms()) std::abort();
    // Entries must come out sorted and positive, whatever the input.
    for (size_t i = 0; i < c.entries().size(); ++i) {
      if (c.entries()[i].counter == 0) std::abort();
      if (i > 0 && c.entries()[i - 1].node >= c.entries()[i].node) std::abort();
    }
  } catch (const cairn::Corruption&) {
  }
  try {
    const auto versions = cairn::internal::decode_versions(in);
    if (cairn::internal::decode_versions(cairn::internal::encode_versions(versions)) != versions) {
      std::abort();
    }
  } catch (const cairn::Corruption&) {
  }
  return 0;
}

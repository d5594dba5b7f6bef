// libFuzzer target: the schema'd binary JSON decoder (and, for inputs that
// start with '{', '[' or '"', the JSON text parser). Whatever decodes must
// re-encode to something that decodes to the same value; anything else must
// be a Corruption or InvalidArgument, never a crash or an over-read.

#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "cairn/errors.h"
#include "cairn/json_serializer.h"

namespace {

using cairn::Json;

const std::vector<std::shared_ptr<const cairn::JsonSerializer>>& serializers() {
  static const auto* s = new std::vector<std::shared_ptr<const cairn::JsonSerializer>>{
      cairn::JsonSerializer::make({Json::parse(
          R"({"name":"string","id":"int32","emails":["string"],"at":"date","score":"float64",
              "ratio":"float32","tags":["int8"],"ok":"boolean","blob":"bytes",
              "nested":{"n":"int16","deep":[{"x":"int64"}]}})")}),
      cairn::JsonSerializer::make({Json::parse(R"(["string"])"), Json::parse(R"({"a":"int32"})"),
                                   Json::parse(R"([["bytes"]])")}),
  };
  return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  if (!in.empty() && (in[0] == '{' || in[0] == '[' || in[0] == '"')) {
    try {
      const Json v = Json::parse(in);
      if (Json::parse(v.dump()).dump() != v.dump()) std::abort();  // as text: NaN != NaN
    } catch (const cairn::InvalidArgument&) {
    }
    return 0;
  }
  for (const auto& s : serializers()) {
    try {
      const Json v = s->read(in);
      // Compared as text: NaN never equals itself.
      if (s->read(s->to_bytes(v)).dump() != v.dump()) std::abort();
    } catch (const cairn::Corruption&) {
    } catch (const cairn::InvalidArgument&) {
      // A value read with an old schema version is not writable with the
      // newest one: expected for the multi-version serializer.
    }
  }
  return 0;
}

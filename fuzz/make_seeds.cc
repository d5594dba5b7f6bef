// Writes the seed corpus of each fuzz target with cairn's own encoders, so
// the seeds are valid inputs the fuzzer mutates from. Run by scripts/fuzz
// --seeds; its output is checked in under fuzz/corpus/.

#include <filesystem>
#include <fstream>
#include <iostream>

#include "cairn/json_serializer.h"
#include "cairn/versioned.h"
#include "core/version_list.h"
#include "engines/log/record.h"
#include "layers/compression/codecs.h"

using cairn::Json;

namespace {

void write(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  std::filesystem::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

}  // namespace

int main(int argc, char** argv) {
  const std::filesystem::path root = argc > 1 ? argv[1] : "fuzz/corpus";
  auto user = cairn::JsonSerializer::make({Json::parse(
      R"({"name":"string","id":"int32","emails":["string"],"at":"date","score":"float64",
          "ratio":"float32","tags":["int8"],"ok":"boolean","blob":"bytes",
          "nested":{"n":"int16","deep":[{"x":"int64"}]}})")});
  write(root / "json_decoder_fuzz", "user",
        user->parse_text(R"({"name":"Ada","id":7,"emails":["a@x.org","b@y.org"],"at":0,
            "score":1.5,"ratio":0.25,"tags":[1,-2],"ok":true,"blob":"AP8=",
            "nested":{"n":3,"deep":[{"x":9},{"x":null}]}})"));
  write(root / "json_decoder_fuzz", "nulls",
        user->parse_text(R"({"name":null,"id":null,"emails":null,"at":null,"score":null,
            "ratio":null,"tags":[null],"ok":null,"blob":null,"nested":null})"));
  auto versions = cairn::JsonSerializer::make(
      {Json::parse(R"(["string"])"), Json::parse(R"({"a":"int32"})"), Json::parse(R"([["bytes"]])")});
  write(root / "json_decoder_fuzz", "v2", versions->to_bytes(Json::parse(R"([["x","yz"],[]])")));
  write(root / "json_decoder_fuzz", "text", R"({"k":[1,2.5,"s\u00e9",null,true,{"n":{}}]})");

  const cairn::VectorClock c({{0, 1}, {5, 300}, {70000, 1ull << 40}}, 1795341600250);
  write(root / "vector_clock_fuzz", "clock", c.encode());
  write(root / "vector_clock_fuzz", "empty", cairn::VectorClock().encode());
  write(root / "vector_clock_fuzz", "versions",
        cairn::internal::encode_versions(std::vector<cairn::Versioned>{
            {"value", c}, {"", cairn::VectorClock({{1, 1}}, 5)}}));

  const std::string text(2000, 'a');
  for (auto codec : {cairn::internal::Codec::kRaw, cairn::internal::Codec::kZstd,
                     cairn::internal::Codec::kLz4, cairn::internal::Codec::kSnappy,
                     cairn::internal::Codec::kGzip}) {
    std::string stored;
    cairn::internal::encode_value(codec, cairn::internal::default_level(codec), 0,
                                  text + "the quick brown fox", &stored);
    write(root / "compressed_value_fuzz", cairn::internal::to_string(codec), stored);
  }
  std::string records;
  namespace logrec = cairn::internal::logrec;
  logrec::append(&records, logrec::Kind::kPut, 1, "key", cairn::internal::encode_versions(
      std::vector<cairn::Versioned>{{"value", c}}), records.size());
  logrec::append(&records, logrec::Kind::kPut, 2, "empty", "", records.size());
  logrec::append(&records, logrec::Kind::kTombstone, 3, "key", "", records.size());
  write(root / "log_record_fuzz", "records", records);
  std::string entries;
  logrec::append_index(&entries, "key", 40, 0, 1);
  logrec::append_index(&entries, "other", 28, 40, 2);
  write(root / "log_record_fuzz", "index", entries);
  std::cout << "seeds written under " << root << "\n";
  return 0;
}

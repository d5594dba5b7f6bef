// Compression on a realistic JSON corpus: for each codec and level, the
// bytes saved and the time per value to compress and decompress, through
// the path the compress layer uses (encode_value/decode_value) beside the
// codec library's own one-shot call on the same values.
//
// The corpus is generated (deterministically): 20,000 user profiles — ids,
// names, e-mails, addresses, ISO timestamps, tags, and a short bio drawn
// from a vocabulary with a skewed (Zipf-like) distribution — as JSON text
// (what a string or identity store holds) and as cairn's binary JSON (what
// a json store holds). Each value is compressed on its own, as the layer
// does.
//
// usage: build/bench/compression [--values N] [--rounds N]

#include <lz4.h>
#include <lz4hc.h>
#include <snappy.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cairn/json.h"
#include "cairn/json_serializer.h"
#include "layers/compression/codecs.h"

namespace {

using cairn::Json;
using cairn::internal::Codec;

const char* kFirst[] = {"Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Ken", "Dennis",
                        "Margaret", "John", "Frances", "Leslie", "Radia", "Tim", "Linus", "Guido"};
const char* kLast[] = {"Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Thompson",
                       "Ritchie", "Hamilton", "Backus", "Allen", "Lamport", "Perlman", "Berners-Lee"};
const char* kCities[] = {"London", "Paris", "Berlin", "Zurich", "Boston", "Seattle", "Tokyo",
                         "Bangalore", "Toronto", "Sydney"};
const char* kTags[] = {"admin", "beta", "premium", "trial", "verified", "staff", "partner", "legacy"};
const char* kWords[] = {"the",     "and",      "of",      "data",     "systems",  "distributed",
                        "storage", "engineer", "loves",   "building", "reliable", "fast",
                        "open",    "source",   "coffee",  "hiking",   "music",    "research",
                        "team",    "lead",     "writes",  "about",    "latency",  "consensus"};

Json make_user(std::mt19937_64& rng, int64_t id) {
  auto pick = [&](const auto& arr) { return arr[rng() % std::size(arr)]; };
  // A skewed word choice: low indexes far more often.
  auto word = [&] {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return kWords[static_cast<size_t>(std::pow(u, 3) * std::size(kWords)) % std::size(kWords)];
  };
  const std::string first = pick(kFirst), last = pick(kLast);
  std::string bio;
  for (int i = 0, n = 8 + static_cast<int>(rng() % 24); i < n; ++i) {
    if (i) bio += ' ';
    bio += word();
  }
  Json::Array tags;
  for (size_t i = rng() % 4; i > 0; --i) tags.push_back(pick(kTags));
  Json::Array emails{Json(first + "." + last + "@example.org")};
  if (rng() % 3 == 0) emails.push_back(Json(first + std::to_string(id) + "@mail.example.com"));
  return Json::object({
      {"id", id},
      {"name", first + " " + last},
      {"emails", Json(emails)},
      {"address", Json::object({{"city", pick(kCities)},
                                {"street", std::to_string(rng() % 400) + " " + pick(kLast) + " Street"},
                                {"zip", static_cast<int64_t>(10000 + rng() % 90000)}})},
      {"created", static_cast<int64_t>(1600000000000 + rng() % 200000000000)},
      {"score", static_cast<double>(rng() % 10000) / 100.0},
      {"active", rng() % 5 != 0},
      {"tags", Json(tags)},
      {"bio", bio},
  });
}

constexpr char kSchema[] = R"({"id":"int64","name":"string","emails":["string"],
  "address":{"city":"string","street":"string","zip":"int32"},"created":"date",
  "score":"float64","active":"boolean","tags":["string"],"bio":"string"})";

// The codec library's simplest one-shot compression, for comparison.
size_t raw_compress(Codec c, int level, const std::string& in, std::string* out) {
  switch (c) {
    case Codec::kZstd:
      out->resize(ZSTD_compressBound(in.size()));
      return ZSTD_compress(out->data(), out->size(), in.data(), in.size(), level);
    case Codec::kLz4: {
      const int bound = LZ4_compressBound(static_cast<int>(in.size()));
      out->resize(static_cast<size_t>(bound));
      const int n = level == 0 ? LZ4_compress_default(in.data(), out->data(), static_cast<int>(in.size()), bound)
                               : LZ4_compress_HC(in.data(), out->data(), static_cast<int>(in.size()), bound, level);
      return static_cast<size_t>(n);
    }
    case Codec::kSnappy: {
      size_t n = 0;
      out->resize(snappy::MaxCompressedLength(in.size()));
      snappy::RawCompress(in.data(), in.size(), out->data(), &n);
      return n;
    }
    case Codec::kGzip: {
      uLongf n = compressBound(in.size());
      out->resize(n);
      compress2(reinterpret_cast<Bytef*>(out->data()), &n, reinterpret_cast<const Bytef*>(in.data()),
                in.size(), level);
      return n;
    }
    default:
      return 0;
  }
}

template <typename Fn>
double ns_per_value(size_t values, int rounds, Fn&& fn) {
  std::vector<double> times;
  for (int r = 0; r < rounds; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    times.push_back(std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count() /
                    static_cast<double>(values));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

void report(const char* corpus_name, const std::vector<std::string>& corpus, int rounds) {
  size_t raw_bytes = 0;
  for (const std::string& v : corpus) raw_bytes += v.size();
  std::printf("\n%s: %zu values, %.1f KiB, %zu bytes on average\n\n", corpus_name, corpus.size(),
              static_cast<double>(raw_bytes) / 1024, raw_bytes / corpus.size());
  std::printf("| codec | level | stored | saved | compress | decompress | library's one-shot compress | ratio |\n");
  std::printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
  struct Setting {
    Codec codec;
    int level;
  };
  const Setting settings[] = {{Codec::kZstd, 1}, {Codec::kZstd, 3},   {Codec::kZstd, 9},
                              {Codec::kLz4, 0},  {Codec::kLz4, 9},    {Codec::kSnappy, 0},
                              {Codec::kGzip, 1}, {Codec::kGzip, 6}};
  for (const Setting& s : settings) {
    std::vector<std::string> stored(corpus.size());
    size_t stored_bytes = 0;
    const double enc = ns_per_value(corpus.size(), rounds, [&] {
      stored_bytes = 0;
      for (size_t i = 0; i < corpus.size(); ++i) {
        cairn::internal::encode_value(s.codec, s.level, 0, corpus[i], &stored[i]);
        stored_bytes += stored[i].size();
      }
    });
    std::string back;
    const double dec = ns_per_value(corpus.size(), rounds, [&] {
      for (size_t i = 0; i < corpus.size(); ++i) {
        cairn::internal::decode_value(stored[i], 1 << 20, &back);
        if (back.size() != corpus[i].size()) std::abort();
      }
    });
    std::string scratch;
    const double lib = ns_per_value(corpus.size(), rounds, [&] {
      for (const std::string& v : corpus) raw_compress(s.codec, s.level, v, &scratch);
    });
    const bool has_level = s.codec != Codec::kSnappy;
    std::printf("| %s | %s | %.1f KiB | %.1f%% | %.0f ns | %.0f ns | %.0f ns | %.2fx |\n",
                cairn::internal::to_string(s.codec),
                has_level ? std::to_string(s.level).c_str() : "—",
                static_cast<double>(stored_bytes) / 1024,
                100.0 * (1.0 - static_cast<double>(stored_bytes) / static_cast<double>(raw_bytes)),
                enc, dec, lib, enc / lib);
  }
}

}  // namespace

int main(int argc, char** argv) {
  size_t values = 20000;
  int rounds = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--values") == 0) values = std::strtoull(argv[i + 1], nullptr, 10);
    if (std::strcmp(argv[i], "--rounds") == 0) rounds = std::atoi(argv[i + 1]);
  }
  std::mt19937_64 rng(7);
  auto serializer = cairn::JsonSerializer::make({Json::parse(kSchema)});
  std::vector<std::string> text, binary;
  for (size_t i = 0; i < values; ++i) {
    const Json user = make_user(rng, static_cast<int64_t>(i));
    text.push_back(user.dump());
    binary.push_back(serializer->to_bytes(user));
  }
  std::printf("Per value, median of %d rounds. 'ratio' is cairn's compress path over the "
              "library's one-shot call (zstd reuses a per-thread context; gzip writes a gzip "
              "wrapper where compress2 writes zlib's).\n",
              rounds);
  report("JSON text", text, rounds);
  report("binary JSON (json serializer)", binary, rounds);
  return 0;
}

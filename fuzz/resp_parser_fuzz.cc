// libFuzzer target: the Redis-protocol front's command parser
// (server/resp_protocol.h), with small limits so the fuzzer reaches them.
// The first byte picks a chunk size: the stream is fed that many bytes at a
// time, as a socket may deliver it, and must parse to the same commands as
// when fed whole. Every command has arguments and consumes some of the
// bytes read; what the caller keeps unconsumed stays within one command's
// limits; an error stops the stream and is a Protocol error.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

#include "server/resp_protocol.h"

namespace {

using cairn::internal::RespLimits;
using cairn::internal::RespParser;

constexpr RespLimits kLimits{.max_bulk = 4096, .max_args = 64, .max_inline = 512,
                             .max_command = 8192};

struct Outcome {
  std::vector<std::vector<std::string>> commands;
  std::string error;
};

Outcome parse(std::string_view stream, size_t step) {
  RespParser parser(kLimits);
  Outcome out;
  size_t start = 0;
  size_t have = 0;
  while (true) {
    const std::string_view data = stream.substr(start, have - start);
    const RespParser::Status s = parser.parse(data);
    if (s == RespParser::Status::kError) {
      out.error = parser.error();
      if (out.error.rfind("Protocol error: ", 0) != 0) std::abort();
      return out;
    }
    if (s == RespParser::Status::kCommand) {
      if (parser.args().empty() || parser.consumed() == 0 || parser.consumed() > data.size()) {
        std::abort();
      }
      std::vector<std::string> args;
      for (std::string_view a : parser.args()) args.emplace_back(a);  // ASan checks the reads
      out.commands.push_back(std::move(args));
      start += parser.consumed();
      continue;
    }
    start += parser.consumed();  // skipped: empty lines, "*0"
    // What the caller must keep is one command begun, never more: skipped
    // bytes do not pile up.
    if (have - start > kLimits.max_command + kLimits.max_inline + 64) std::abort();
    if (have == stream.size()) return out;
    have = std::min(stream.size(), have + step);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const size_t step = 1 + data[0] % 16;
  const std::string_view stream(reinterpret_cast<const char*>(data) + 1, size - 1);
  const Outcome whole = parse(stream, stream.size() + 1);
  const Outcome chunked = parse(stream, step);
  if (whole.commands != chunked.commands || whole.error != chunked.error) std::abort();
  return 0;
}

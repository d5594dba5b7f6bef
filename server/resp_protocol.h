// RESP, the Redis serialization protocol (versions 2 and 3): a parser for
// the commands clients send and writers for the replies they read. Free of
// sockets and of the stores, so a fuzz target and unit tests drive it alone.
//
// A client sends each command as an array of bulk strings
// ("*2\r\n$3\r\nGET\r\n$1\r\na\r\n"), or, typed by hand into telnet, as an
// inline line of words ("GET a\r\n"). See https://redis.io/docs/reference/protocol-spec/.
//
// Not thread-safe: one parser per connection.

#ifndef CAIRN_SERVER_RESP_PROTOCOL_H_
#define CAIRN_SERVER_RESP_PROTOCOL_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace cairn::internal {

struct RespLimits {
  // Longest bulk string (a key or a value) a command may carry.
  size_t max_bulk = 512u << 20;
  // Most arguments in one command (Redis' limit too).
  size_t max_args = 1u << 20;
  // Longest inline command, and longest header line ("*N", "$N").
  size_t max_inline = 64u << 10;
  // Most bytes one command may take, arguments and framing together.
  size_t max_command = 512u << 20;
};

class RespParser {
 public:
  enum class Status {
    kCommand,     // a whole command was read: see args()
    kIncomplete,  // more bytes are needed; call again with them appended
    kError,       // the bytes are not RESP: see error(); the stream is lost
  };

  explicit RespParser(RespLimits limits = {}) : limits_(limits) {}

  // Reads one command from the front of `data`, which starts where the last
  // call's consumed() bytes end (or where the stream began). kCommand: the
  // command took the first consumed() bytes of `data`; its arguments are
  // args(), views into `data` valid until it changes. kIncomplete: the
  // first consumed() bytes were skipped (empty inline lines, "*0"), and
  // the parser keeps what it read of the command after them: drop those
  // bytes and call again with the rest and more after it.
  Status parse(std::string_view data);

  // The arguments of the command parse() returned. At least one.
  const std::vector<std::string_view>& args() const { return args_; }
  // Bytes of `data` the last parse() is done with (see parse()).
  size_t consumed() const { return consumed_; }
  // What is wrong with the stream, in Redis' words ("Protocol error: ...").
  const std::string& error() const { return error_; }
  // Bytes the command being read will take at least (for a buffer to grow
  // to); 0 when unknown.
  size_t needed() const { return needed_; }

 private:
  Status fail(std::string message);
  // kIncomplete, with the skipped bytes reported and dropped from the
  // offsets kept.
  Status incomplete();
  // nullopt: an empty line, skipped.
  std::optional<Status> parse_inline(std::string_view data);
  // Reads a "<prefix><digits>\r\n" line at pos_. kCommand with *n set, or
  // kIncomplete, or kError.
  Status read_length(std::string_view data, char prefix, int64_t* n);

  RespLimits limits_;
  // Where the command being read stands, kept across kIncomplete.
  size_t base_ = 0;       // where the command starts in the data
  size_t pos_ = 0;        // next byte to read
  int64_t expected_ = -1; // arguments of the array read so far; -1: none
  std::vector<std::pair<size_t, size_t>> spans_;  // offset, length of each argument read
  std::vector<std::string_view> args_;
  size_t consumed_ = 0;
  size_t needed_ = 0;
  std::string error_;
  std::string words_;  // an inline command's quoted words, unescaped
};

// Reply writers: each appends one reply to `out`. `resp3` picks the RESP3
// form where the two versions differ (null, map, double-free forms).
namespace resp {

void simple(std::string* out, std::string_view s);  // +OK; `s` has no CR or LF
void error(std::string* out, std::string_view s);   // -ERR ...; CR/LF become spaces
void integer(std::string* out, int64_t n);
void bulk(std::string* out, std::string_view s);
void null(std::string* out, bool resp3);  // $-1 or _
void array(std::string* out, size_t n);   // header; the n elements follow
void map(std::string* out, size_t n, bool resp3);  // n pairs: %n, or *2n in RESP2

}  // namespace resp

}  // namespace cairn::internal

#endif  // CAIRN_SERVER_RESP_PROTOCOL_H_

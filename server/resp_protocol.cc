#include "server/resp_protocol.h"

#include <charconv>
#include <cstring>
#include <optional>

namespace cairn::internal {

RespParser::Status RespParser::fail(std::string message) {
  error_ = "Protocol error: " + std::move(message);
  return Status::kError;
}

RespParser::Status RespParser::read_length(std::string_view data, char prefix, int64_t* n) {
  if (pos_ >= data.size()) return Status::kIncomplete;
  if (data[pos_] != prefix) {
    static constexpr char kHex[] = "0123456789abcdef";
    const auto c = static_cast<unsigned char>(data[pos_]);
    std::string got = c >= 32 && c < 127 ? std::string(1, static_cast<char>(c))
                                         : std::string("\\x") + kHex[c >> 4] + kHex[c & 15];
    return fail(std::string("expected '") + prefix + "', got '" + got + "'");
  }
  // A length is at most 31 characters, found or not: the same error
  // however the bytes arrive.
  const size_t start = pos_ + 1;
  const size_t cr = data.find('\r', start);
  const size_t digits = (cr == std::string_view::npos ? data.size() : cr) - start;
  if (digits > 31) {
    return fail(prefix == '*' ? "too big mbulk count string" : "too big bulk count string");
  }
  if (cr == std::string_view::npos || cr + 1 >= data.size()) return Status::kIncomplete;
  if (data[cr + 1] != '\n') return fail("a length line does not end in CRLF");
  const char* first = data.data() + start;
  const char* last = data.data() + cr;
  auto [end, ec] = std::from_chars(first, last, *n);
  if (ec != std::errc() || end != last || first == last) {
    return fail(prefix == '*' ? "invalid multibulk length" : "invalid bulk length");
  }
  pos_ = cr + 2;
  return Status::kCommand;
}

RespParser::Status RespParser::incomplete() {
  // What was skipped ("*0", empty lines) is done with: the caller drops it,
  // and what the parser keeps of a command begun moves down as it does.
  consumed_ = base_;
  pos_ -= base_;
  for (auto& span : spans_) span.first -= base_;
  needed_ = needed_ > base_ ? needed_ - base_ : 0;
  base_ = 0;
  return Status::kIncomplete;
}

RespParser::Status RespParser::parse(std::string_view data) {
  if (expected_ < 0) base_ = 0;
  for (;;) {
    if (expected_ < 0) {
      pos_ = base_;
      if (base_ >= data.size()) return incomplete();
      if (data[base_] != '*') {
        const std::optional<Status> s = parse_inline(data);
        if (!s) continue;  // an empty line, skipped
        return *s == Status::kIncomplete ? incomplete() : *s;
      }
      int64_t n = 0;
      const Status s = read_length(data, '*', &n);
      if (s == Status::kIncomplete) return incomplete();
      if (s != Status::kCommand) return s;
      if (n > static_cast<int64_t>(limits_.max_args)) return fail("invalid multibulk length");
      if (n <= 0) {  // "*0" or "*-1": nothing to run (as Redis)
        base_ = pos_;
        continue;
      }
      expected_ = n;
      spans_.clear();
    }
    while (spans_.size() < static_cast<size_t>(expected_)) {
      const size_t line = pos_;
      int64_t len = 0;
      const Status s = read_length(data, '$', &len);
      if (s == Status::kIncomplete) return incomplete();
      if (s != Status::kCommand) return s;
      if (len < 0 || static_cast<uint64_t>(len) > limits_.max_bulk) return fail("invalid bulk length");
      const size_t end = pos_ + static_cast<size_t>(len) + 2;
      if (end - base_ > limits_.max_command) {
        return fail("the command is larger than the limit of " + std::to_string(limits_.max_command) +
                    " bytes");
      }
      if (end > data.size()) {
        pos_ = line;  // read the length again once the bulk is here
        needed_ = end;
        return incomplete();
      }
      if (data[end - 2] != '\r' || data[end - 1] != '\n') {
        return fail("a bulk string is not followed by CRLF");
      }
      spans_.emplace_back(pos_, static_cast<size_t>(len));
      pos_ = end;
    }
    args_.clear();
    for (const auto& [off, len] : spans_) args_.push_back(data.substr(off, len));
    consumed_ = pos_;
    expected_ = -1;
    needed_ = 0;
    return Status::kCommand;
  }
}

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

// An inline command: words split at spaces; a word may be quoted, "with
// \n, \xHH and the like" or 'as is', as redis-cli's own input.
std::optional<RespParser::Status> RespParser::parse_inline(std::string_view all) {
  const std::string_view data = all.substr(base_);
  const size_t nl = data.find('\n');
  if (nl == std::string_view::npos) {
    if (data.size() > limits_.max_inline) return fail("too big inline request");
    return Status::kIncomplete;
  }
  if (nl > limits_.max_inline) return fail("too big inline request");
  const std::string_view line = data.substr(0, nl);
  // Unquoted words are views into `data`; quoted ones are unescaped into
  // inline_ (reserved first, so its strings do not move).
  words_.clear();
  words_.reserve(line.size());
  std::vector<std::pair<bool, std::pair<size_t, size_t>>> parts;  // in words_?, span
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && is_space(line[i])) ++i;
    if (i == line.size()) break;
    if (line[i] != '"' && line[i] != '\'') {
      const size_t start = i;
      while (i < line.size() && !is_space(line[i])) ++i;
      parts.push_back({false, {start, i - start}});
      continue;
    }
    const char quote = line[i++];
    const size_t start = words_.size();
    bool closed = false;
    while (i < line.size()) {
      const char c = line[i];
      if (c == quote) {
        closed = true;
        ++i;
        break;
      }
      if (c == '\\' && i + 1 < line.size()) {
        const char e = line[i + 1];
        if (quote == '\'') {
          words_ += e == '\'' ? '\'' : '\\';
          i += e == '\'' ? 2 : 1;
          continue;
        }
        if (e == 'x' && i + 3 < line.size() && hex_digit(line[i + 2]) >= 0 &&
            hex_digit(line[i + 3]) >= 0) {
          words_ += static_cast<char>(hex_digit(line[i + 2]) * 16 + hex_digit(line[i + 3]));
          i += 4;
          continue;
        }
        words_ += e == 'n' ? '\n' : e == 'r' ? '\r' : e == 't' ? '\t' : e == 'b' ? '\b' : e == 'a' ? '\a' : e;
        i += 2;
        continue;
      }
      words_ += c;
      ++i;
    }
    if (!closed || (i < line.size() && !is_space(line[i]))) return fail("unbalanced quotes in request");
    parts.push_back({true, {start, words_.size() - start}});
  }
  if (parts.size() > limits_.max_args) return fail("invalid multibulk length");
  args_.clear();
  for (const auto& [quoted, span] : parts) {
    args_.push_back(quoted ? std::string_view(words_).substr(span.first, span.second)
                           : line.substr(span.first, span.second));
  }
  base_ += nl + 1;
  if (args_.empty()) return std::nullopt;  // an empty line: skipped
  consumed_ = base_;
  return Status::kCommand;
}

namespace resp {

namespace {

void line(std::string* out, char type, std::string_view s) {
  out->push_back(type);
  out->append(s);
  out->append("\r\n");
}

void number(std::string* out, char type, int64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  (void)ec;
  out->push_back(type);
  out->append(buf, end);
  out->append("\r\n");
}

}  // namespace

void simple(std::string* out, std::string_view s) { line(out, '+', s); }

void error(std::string* out, std::string_view s) {
  out->push_back('-');
  for (const char c : s) out->push_back(c == '\r' || c == '\n' ? ' ' : c);
  out->append("\r\n");
}

void integer(std::string* out, int64_t n) { number(out, ':', n); }

void bulk(std::string* out, std::string_view s) {
  number(out, '$', static_cast<int64_t>(s.size()));
  out->append(s);
  out->append("\r\n");
}

void null(std::string* out, bool resp3) { out->append(resp3 ? "_\r\n" : "$-1\r\n"); }

void array(std::string* out, size_t n) { number(out, '*', static_cast<int64_t>(n)); }

void map(std::string* out, size_t n, bool resp3) {
  number(out, resp3 ? '%' : '*', static_cast<int64_t>(resp3 ? n : 2 * n));
}

}  // namespace resp

}  // namespace cairn::internal

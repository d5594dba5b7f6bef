// What the command-line tools share for their flags: the error that means
// "bad usage" (exit status 2) and the parsing of an integer flag.

#ifndef CAIRN_TOOLS_FLAGS_H_
#define CAIRN_TOOLS_FLAGS_H_

#include <cstdint>
#include <stdexcept>
#include <string>

namespace cairn::tools {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The value of integer flag `flag`, written `text`, in [min, max]. Throws
// UsageError saying what was expected.
inline uint64_t flag_number(const std::string& flag, const std::string& text, uint64_t min = 0,
                            uint64_t max = UINT64_MAX) {
  uint64_t v = 0;
  bool parsed = false;
  try {
    size_t used = 0;
    v = std::stoull(text, &used);
    parsed = used == text.size() && !text.empty() && text[0] != '-';
  } catch (const std::invalid_argument&) {
  } catch (const std::out_of_range&) {
  }
  if (!parsed) throw UsageError(flag + " expects a non-negative integer, got '" + text + "'");
  if (v < min || v > max) {
    throw UsageError(flag + " must be from " + std::to_string(min) + " to " +
                     std::to_string(max) + ", got " + text);
  }
  return v;
}

}  // namespace cairn::tools

#endif  // CAIRN_TOOLS_FLAGS_H_

// UTF-8 validation, for string serializers and JSON text.

#ifndef CAIRN_CORE_UTF8_H_
#define CAIRN_CORE_UTF8_H_

#include <cstddef>
#include <string_view>

namespace cairn::internal {

// The length of the longest prefix of `s` that is valid UTF-8 (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF). Equal to s.size()
// when all of `s` is valid.
size_t valid_utf8_prefix(std::string_view s);
inline bool is_utf8(std::string_view s) { return valid_utf8_prefix(s) == s.size(); }

}  // namespace cairn::internal

#endif  // CAIRN_CORE_UTF8_H_

// libFuzzer target: the log engine's record and index-entry parsers. Any
// input is walked as a sequence of records (and, apart, of index entries)
// until the first that does not parse; each that does must re-encode to
// exactly its bytes (the formats are canonical), and none may read past
// the input.

#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "engines/log/record.h"

namespace logrec = cairn::internal::logrec;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  for (std::string_view rest = in;;) {
    logrec::Record r;
    const uint64_t offset = in.size() - rest.size();
    if (logrec::parse(rest, &r, 1 << 20, offset) != logrec::Parse::kOk) break;
    if (r.size > rest.size()) std::abort();
    std::string again;
    logrec::append(&again, r.kind, r.sequence, r.key, r.value, offset);
    if (again != rest.substr(0, r.size)) std::abort();
    rest.remove_prefix(r.size);
  }
  for (std::string_view rest = in;;) {
    logrec::IndexEntry e;
    if (logrec::parse_index(rest, &e) != logrec::Parse::kOk) break;
    if (e.size > rest.size()) std::abort();
    std::string again;
    logrec::append_index(&again, e.key, e.record_size, e.record_offset, e.sequence);
    if (again != rest.substr(0, e.size)) std::abort();
    rest.remove_prefix(e.size);
  }
  return 0;
}

// A child process for log_crash_test: writes to a log store until it is
// killed, printing the number of each write after it returned (so every
// number printed is an acknowledged write). Write i is to key "k<i % 293>"
// at clock {1: i + 1}, so each supersedes the key's last: a remove when
// i % 5 == 4, else a put of "v<i>". Files are small, so that compaction
// (on, as by default) runs all the time and is killed in every phase.
//
// usage: log_crash_writer DIR none|always START

#include <cstdio>
#include <cstdlib>
#include <string>

#include <absl/strings/str_cat.h>

#include "cairn/log_store.h"
#include "cairn/versioned.h"

// Not a multiple of 5: each key is put and removed in turn, so removes
// write tombstones.
constexpr unsigned long kKeys = 293;

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: log_crash_writer DIR none|always START\n");
    return 2;
  }
  cairn::LogOptions o;
  o.name = "crash";
  o.path = argv[1];
  o.sync = std::string(argv[2]) == "always" ? cairn::LogOptions::Sync::kAlways
                                             : cairn::LogOptions::Sync::kNone;
  o.max_file_size = 16 << 10;  // roll every round or so: crashes land on every kind of boundary
  o.compaction_rate = 0;
  cairn::LogStore store(o);
  for (unsigned long i = std::strtoul(argv[3], nullptr, 10);; ++i) {
    const cairn::Versioned v{absl::StrCat("v", i, std::string(i % 200, '.')),
                             cairn::VectorClock({{1, i + 1}})};
    if (i % 5 == 4) {
      store.remove(absl::StrCat("k", i % kKeys), v.clock);
    } else {
      store.put(absl::StrCat("k", i % kKeys), v);
    }
    std::printf("%lu\n", i);
    std::fflush(stdout);
  }
}

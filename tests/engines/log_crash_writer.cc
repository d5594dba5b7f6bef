// A child process for log_crash_test: writes to a log store until it is
// killed, printing the number of each write after put() returned (so every
// number printed is an acknowledged write). Write i puts "v<i>" under key
// "k<i % 300>" at clock {1: i + 1}, so each supersedes the key's last.
//
// usage: log_crash_writer DIR none|always START

#include <cstdio>
#include <cstdlib>
#include <string>

#include "cairn/versioned.h"
#include "engines/log/log_store.h"

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
  o.max_file_size = 256 << 10;  // roll often: crashes land on every kind of boundary
  cairn::LogStore store(o);
  for (unsigned long i = std::strtoul(argv[3], nullptr, 10);; ++i) {
    const cairn::Versioned v{"v" + std::to_string(i) + std::string(i % 200, '.'),
                             cairn::VectorClock({{1, i + 1}})};
    store.put("k" + std::to_string(i % 300), v);
    std::printf("%lu\n", i);
    std::fflush(stdout);
  }
}

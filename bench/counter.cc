// Many clients incrementing one counter through a config's client stack:
// with Client::increment (the Atomic call, run at the key's home) or with
// Client::update's read-modify-write loop. bench/run-counter runs both
// against a 3-node cluster and prints the ratio (issue 17's aim: >= 3x).
//
// usage: counter --config FILE --mode atomic|loop [--store S] [--key K]
//                [--threads N] [--duration S]
//
// Prints one JSON line: the increments made, the time, and whether the
// counter moved by exactly that many (exit 1 if not).

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "cairn/client.h"
#include "cairn/errors.h"

namespace {

using Clock = std::chrono::steady_clock;

int run(int argc, char** argv) {
  std::string config, mode, store = "default", key = "counter";
  int threads = 8;
  double duration = 5;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
      return argv[++i];
    };
    if (a == "--config") config = value();
    else if (a == "--mode") mode = value();
    else if (a == "--store") store = value();
    else if (a == "--key") key = value();
    else if (a == "--threads") threads = std::stoi(value());
    else if (a == "--duration") duration = std::stod(value());
    else throw std::invalid_argument("unknown argument " + a + " (see the comment at the top)");
  }
  if (config.empty() || (mode != "atomic" && mode != "loop")) {
    throw std::invalid_argument("--config FILE and --mode atomic|loop are required");
  }
  if (threads < 1 || threads > 256 || duration <= 0 || duration > 3600) {
    throw std::invalid_argument("--threads 1..256, --duration up to 3600 s");
  }
  cairn::ClientOptions o;
  o.max_tries = 100000;  // the loop loses many races on one key
  auto counter = cairn::open_client<std::string, std::string>(config, store, o);
  auto read = [&] { return std::stoll(counter.get(key).value_or("0")); };
  const int64_t before = read();
  std::atomic<int64_t> done{0}, failed{0};
  const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                        std::chrono::duration<double>(duration));
  const auto start = Clock::now();
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      auto c = cairn::open_client<std::string, std::string>(config, store, o);
      for (int64_t i = 0; i < (int64_t{1} << 40) && Clock::now() < until; ++i) {
        try {
          if (mode == "atomic") {
            c.increment(key);
          } else {
            c.update(key, [](const std::optional<std::string>& v) {
              return std::to_string(std::stoll(v.value_or("0")) + 1);
            });
          }
          ++done;
        } catch (const cairn::Error& e) {
          ++failed;
          std::cerr << "counter: " << e.what() << "\n";
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  const int64_t after = read();
  const bool exact = failed == 0 && after - before == done;
  std::printf(
      "{\"mode\": \"%s\", \"threads\": %d, \"increments\": %lld, \"failed\": %lld, "
      "\"seconds\": %.3f, \"ops_per_sec\": %.1f, \"moved_by\": %lld, \"exact\": %s}\n",
      mode.c_str(), threads, static_cast<long long>(done.load()),
      static_cast<long long>(failed.load()), secs, static_cast<double>(done) / secs,
      static_cast<long long>(after - before), exact ? "true" : "false");
  return exact ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "counter: " << e.what() << "\n";
    return 2;
  }
}

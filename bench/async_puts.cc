// One client thread writing N keys through a config's client stack, first
// with put() (each waits for its answer), then with put_async() (all in
// flight at once) and a flush(): ops/s of each, and their ratio. bench/
// run-async-puts runs it against a cairn-server.
//
// usage: async-puts --config FILE [--store NAME] [--count N] [--value-size B]

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include "cairn/client.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  std::string config;
  std::string store = "default";
  long count = 100000;
  long value_size = 100;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i + 1 >= argc) {
      std::cerr << "async-puts: " << arg << " needs a value (see the source's usage line)\n";
      return 2;
    }
    const std::string value = argv[++i];
    if (arg == "--config") {
      config = value;
    } else if (arg == "--store") {
      store = value;
    } else if (arg == "--count") {
      count = std::atol(value.c_str());
    } else if (arg == "--value-size") {
      value_size = std::atol(value.c_str());
    } else {
      std::cerr << "async-puts: unknown argument " << arg << "\n";
      return 2;
    }
  }
  if (config.empty() || count < 1 || value_size < 0) {
    std::cerr << "usage: async-puts --config FILE [--store NAME] [--count N] [--value-size B]\n";
    return 2;
  }
  try {
    auto client = cairn::open_client<std::string, std::string>(config, store);
    const std::string value(static_cast<size_t>(value_size), 'v');
    auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < count; ++i) client.put("blocking:" + std::to_string(i), value);
    const double blocking = seconds_since(start);
    start = std::chrono::steady_clock::now();
    for (long i = 0; i < count; ++i) client.put_async("async:" + std::to_string(i), value);
    const auto failed = client.flush();
    const double async = seconds_since(start);
    if (!failed.empty()) {
      std::cerr << "async-puts: " << failed.size() << " async puts failed\n";
      return 1;
    }
    std::printf("{\"count\": %ld, \"blocking_ops_per_sec\": %.0f, \"async_ops_per_sec\": %.0f, "
                "\"ratio\": %.2f}\n",
                count, count / blocking, count / async, blocking / async);
  } catch (const std::exception& e) {
    std::cerr << "async-puts: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

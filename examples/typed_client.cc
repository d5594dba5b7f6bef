// The typed client over a store with schema'd JSON values, compressed:
// reads, writes, a conditional write, and update() — the single-key
// transaction — raced by several threads without losing an increment.
//
// Run: build/examples/typed_client [DATA_DIR]   (a scratch directory)

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <thread>
#include <vector>

#include "cairn/client.h"
#include "cairn/json.h"

int main(int argc, char** argv) {
  const std::filesystem::path dir =
      argc > 1 ? argv[1] : std::filesystem::temp_directory_path() / "cairn-typed-client";
  std::filesystem::remove_all(dir);
  const cairn::Config config = cairn::Config::parse(R"(
stores:
  users:
    key: string
    value:
      type: json
      schema: {name: string, id: int32, emails: [string]}
    stack:
      - compress: zstd
      - engine: {lmdb: {path: ")" + (dir / "{store}").string() + R"(", durability: nosync}}
  visits:
    key: string
    value: int64
    stack: [{engine: memory}]
)",
                                                    "typed_client.yaml");

  auto users = cairn::open_client<std::string, cairn::Json>(config, "users");
  users.put("alice", cairn::Json::parse(R"({"name": "Alice", "id": 7, "emails": ["a@x.org"]})"));
  std::cout << "alice: " << users.get("alice")->dump() << "\n";

  // A value that breaks the schema is refused, naming the field.
  try {
    users.put("bob", cairn::Json::parse(R"({"name": "Bob", "id": "seven", "emails": []})"));
  } catch (const cairn::InvalidArgument& e) {
    std::cout << "refused: " << e.what() << "\n";
  }

  // A conditional write: succeeds only if nobody wrote since we read.
  const auto read = users.get_versions("alice").at(0);
  cairn::Json changed = read.value;
  changed["emails"].as_array().push_back("alice@example.org");
  const auto written = users.put_if("alice", changed, read.clock);
  std::cout << "put_if with the version read: "
            << (written ? "written at " + written->to_string() : "stale") << "\n";
  std::cout << "put_if with the same, now stale, version: "
            << (users.put_if("alice", changed, read.clock) ? "written" : "stale") << "\n";

  // update(): read, apply, write, retry when another writer got there first.
  cairn::ClientOptions options;
  options.max_tries = 1000;
  auto visits = cairn::open_client<std::string, int64_t>(config, "visits", options);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 250; ++i) {
        visits.update("home", [](const std::optional<int64_t>& n) { return n.value_or(0) + 1; });
      }
    });
  }
  for (auto& t : threads) t.join();
  const int64_t total = *visits.get("home");
  std::cout << "8 threads x 250 increments: " << total << "\n";
  return total == 2000 ? EXIT_SUCCESS : EXIT_FAILURE;
}

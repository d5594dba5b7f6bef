// An embedded cairn store, two ways: a stack assembled in C++ and the same
// stack read from YAML. Shows the version rules a caller lives with: a write
// carries a vector clock, concurrent writes become siblings, and a write
// that has seen both siblings replaces them.
//
// Build: part of the cairn build (build/examples/embedded_stack).
// Run:   build/examples/embedded_stack [DATA_DIR]   (default: a temp dir;
//        the directory is a scratch area, emptied at start)

#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "cairn/config.h"
#include "cairn/forwarding_store.h"
#include "cairn/memory_store.h"
#include "cairn/stats_store.h"

namespace {

// Writes `value` as a successor of every version stored under `key`, the
// way an application that read the key before writing does.
void write(cairn::Store& store, const std::string& key, const std::string& value,
           cairn::NodeId writer) {
  cairn::VectorClock clock;
  for (const cairn::VectorClock& c : store.versions(key)) clock = clock.merged(c);
  clock.increment(writer, cairn::now_ms());
  const cairn::PutResult r = store.put(key, cairn::Versioned{value, clock});
  std::cout << "put " << key << " = " << value << " at " << clock.to_string() << ": "
            << cairn::to_string(r) << "\n";
}

void show(cairn::Store& store, const std::string& key) {
  const std::vector<cairn::Versioned> versions = store.get(key);
  if (versions.empty()) std::cout << "get " << key << ": absent\n";
  for (const cairn::Versioned& v : versions) {
    std::cout << "get " << key << ": " << v.value << " at " << v.clock.to_string() << "\n";
  }
}

}  // namespace

int main(int argc, char** argv) {
  // 1. A stack assembled in C++: statistics over the in-memory engine.
  cairn::StatsStore store(std::make_unique<cairn::MemoryStore>(), "cart");
  write(store, "cart:7", "book", /*writer=*/1);
  show(store, "cart:7");

  // Two clients that have not seen each other's write: siblings.
  const cairn::VectorClock base = store.versions("cart:7").at(0);
  store.put("cart:7", {"book,lamp", base.incremented(1, cairn::now_ms())});
  store.put("cart:7", {"book,pen", base.incremented(2, cairn::now_ms())});
  show(store, "cart:7");

  // A stale write (a clock both siblings have seen) changes nothing.
  std::cout << "stale put: "
            << cairn::to_string(store.put("cart:7", {"book,mug", base})) << "\n";

  // A client that read both siblings merges them and supersedes both.
  write(store, "cart:7", "book,lamp,pen", /*writer=*/3);
  show(store, "cart:7");
  std::cout << store.describe() << "\n" << store.report();

  // 2. The same kind of stack from YAML, this time on LMDB.
  const std::filesystem::path dir =
      argc > 1 ? std::filesystem::path(argv[1])
               : std::filesystem::temp_directory_path() / "cairn-example";
  std::filesystem::remove_all(dir);
  const cairn::Config config = cairn::Config::parse(R"(
stores:
  users:
    stack:
      - stats
      - engine: {lmdb: {path: ")" + (dir / "{store}").string() + R"(", durability: sync}}
)",
                                                    "example.yaml");
  std::unique_ptr<cairn::Store> users = config.open("users");
  write(*users, "user:42", R"({"name": "Ada"})", /*writer=*/1);
  show(*users, "user:42");
  std::cout << users->describe() << "\n";
  // The stats layer is found by type anywhere in the stack.
  std::cout << cairn::find_layer<cairn::StatsStore>(*users)->report();
  users->close();
  return EXIT_SUCCESS;
}

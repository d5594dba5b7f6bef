// A program built against an installed cairn: the same stack twice, over
// the same LMDB files.
//   1. In C++: this project's own `namespace` layer over `compress` over
//      the LMDB engine, under the Inventory class.
//   2. From consumer.yaml, which names the `namespace` layer once it is
//      registered: it reads what the C++ stack wrote.
//
// Run: consumer CONFIG.yaml   (LMDB files go to ./consumer-data)

#include <cairn/client.h>
#include <cairn/compression_store.h>
#include <cairn/config.h>
#include <cairn/lmdb_store.h>
#include <cairn/version.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string_view>

#include "inventory.h"
#include "namespace_store.h"

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: consumer CONFIG.yaml\n";
    return 2;
  }
  std::cout << "cairn " << cairn::version() << " (headers " << CAIRN_VERSION_STRING << ")\n";
  if (std::string_view(cairn::version()) != CAIRN_VERSION_STRING) {
    std::cerr << "consumer: built against cairn " CAIRN_VERSION_STRING " but runs with "
              << cairn::version() << "\n";
    return EXIT_FAILURE;
  }
  std::filesystem::remove_all("consumer-data");
  consumer::register_namespace_layer(cairn::default_registry());

  // 1. The stack assembled in C++.
  cairn::LmdbOptions lmdb;
  lmdb.name = "inventory";
  lmdb.path = "consumer-data/inventory";
  cairn::CompressionOptions zstd;
  zstd.min_size = 0;  // compress even the 8-byte counts, to show it works
  auto stack = std::make_shared<consumer::NamespaceStore>(
      std::make_unique<cairn::CompressionStore>(std::make_unique<cairn::LmdbStore>(lmdb), zstd),
      "shop/");
  {
    consumer::Inventory inventory(
        consumer::Inventory::Stock(stack, cairn::string_serializer(), cairn::int_serializer(64)));
    inventory.add("apples", 12);
    inventory.add("pears", 5);
    const bool took = inventory.take("apples", 4);
    std::cout << "C++ stack:\n" << stack->describe() << "\n";
    std::cout << "took 4 apples: " << (took ? "yes" : "no")
              << ", apples: " << inventory.count("apples") << "\n";
  }
  stack->close();

  // 2. The same stack from YAML: it finds what the C++ stack wrote.
  const cairn::Config config = cairn::Config::load(argv[1]);
  auto client = cairn::open_client<std::string, int64_t>(config, "inventory");
  consumer::Inventory inventory(client);
  std::cout << "YAML stack:\n" << client.store().describe() << "\n";
  const int64_t apples = inventory.count("apples"), pears = inventory.count("pears");
  std::cout << "apples: " << apples << ", pears: " << pears << "\n";
  client.store().close();
  return apples == 8 && pears == 5 ? EXIT_SUCCESS : EXIT_FAILURE;
}

// A custom conflict resolver: two clients add to a shopping cart without
// seeing each other's write, leaving two siblings; a merge registered in C++
// (the union of the sets) settles them on read, and writing the merge back
// replaces both.
//
// Run: build/examples/set_union_resolver

#include <cstdlib>
#include <iostream>
#include <set>

#include "cairn/config.h"
#include "cairn/json.h"
#include "cairn/resolver.h"

int main() {
  // Values are JSON arrays of item names; the merge is their union.
  cairn::register_merge("set-union", [](std::span<const cairn::Versioned> siblings) {
    std::set<std::string> items;
    for (const cairn::Versioned& v : siblings) {
      const cairn::Json cart = cairn::Json::parse(v.value);
      for (const cairn::Json& item : cart.as_array()) items.insert(item.as_string());
    }
    return cairn::Json(cairn::Json::Array(items.begin(), items.end())).dump();
  });

  const cairn::Config config = cairn::Config::parse(R"(
stores:
  carts:
    stack:
      - resolve: {custom: set-union}
      - engine: memory
)",
                                                    "carts.yaml");
  auto carts = config.open("carts");

  // Both clients read the same cart, then write without seeing each other.
  const cairn::VectorClock base({{1, 1}}, cairn::now_ms());
  carts->put("cart:7", {R"(["book"])", base});
  carts->put("cart:7", {R"(["book","lamp"])", base.incremented(1, cairn::now_ms())});
  carts->put("cart:7", {R"(["book","pen"])", base.incremented(2, cairn::now_ms())});
  std::cout << "stored versions: " << carts->versions("cart:7").size() << "\n";

  // A read settles the siblings with the merge.
  const cairn::Versioned merged = carts->get("cart:7").at(0);
  std::cout << "read: " << merged.value << " at " << merged.clock.to_string() << "\n";

  // Writing the merge back, as its successor, replaces both siblings.
  carts->put("cart:7", {merged.value, merged.clock.incremented(1, cairn::now_ms())});
  std::cout << "stored versions after writing the merge: " << carts->versions("cart:7").size()
            << "\n";
  return merged.value == R"(["book","lamp","pen"])" && carts->versions("cart:7").size() == 1
             ? EXIT_SUCCESS
             : EXIT_FAILURE;
}

#include "inventory.h"

#include <cairn/errors.h>

#include <utility>

namespace consumer {

Inventory::Inventory(Stock stock) : stock_(std::move(stock)) {}

// Runs `fn`, turning the store's failures (down, slow, short of replicas)
// into this class's own error. Bad arguments and corruption stay as they
// are: they are bugs, not outages.
template <typename Fn>
auto Inventory::guarded(const char* what, const std::string& item, Fn&& fn) const {
  try {
    return fn();
  } catch (const cairn::Unavailable& e) {
    throw InventoryUnavailable(std::string(what) + " " + item + ": store unavailable: " + e.what());
  } catch (const cairn::Timeout& e) {
    throw InventoryUnavailable(std::string(what) + " " + item + ": store too slow: " + e.what());
  } catch (const cairn::InsufficientReplicas& e) {
    throw InventoryUnavailable(std::string(what) + " " + item + ": too few replicas: " + e.what());
  }
}

int64_t Inventory::add(const std::string& item, int64_t n) {
  return guarded("add", item, [&] {
    return stock_.update(item, [n](const std::optional<int64_t>& have) {
      return have.value_or(0) + n;
    });
  });
}

bool Inventory::take(const std::string& item, int64_t n) {
  return guarded("take", item, [&] {
    // Read, check, and write only if nobody wrote since the read; a racing
    // writer makes put_if stale, and the loop reads again.
    for (;;) {
      const auto versions = stock_.get_versions(item);
      if (versions.empty() || versions.at(0).value < n) return false;
      if (stock_.put_if(item, versions.at(0).value - n, versions.at(0).clock)) return true;
    }
  });
}

int64_t Inventory::count(const std::string& item) const {
  return guarded("count", item, [&] { return stock_.get(item).value_or(0); });
}

}  // namespace consumer

#include "inventory.h"

#include <cairn/errors.h>

#include <stdexcept>
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
  if (n <= 0) throw std::invalid_argument("add: the number of units must be positive");
  return guarded("add", item, [&] {
    return stock_.update(item, [n](const std::optional<int64_t>& have) {
      return have.value_or(0) + n;
    });
  });
}

bool Inventory::take(const std::string& item, int64_t n) {
  if (n <= 0) throw std::invalid_argument("take: the number of units must be positive");
  return guarded("take", item, [&] {
    // Read, check, and write only if nobody wrote since the read; a racing
    // writer makes put_if stale, and the loop reads again.
    for (int attempt = 0; attempt < kMaxTries; ++attempt) {
      const auto versions = stock_.get_versions(item);
      if (versions.empty()) return false;
      if (versions.size() > 1) {
        // A write based on one sibling would never supersede the other.
        throw cairn::FailedPrecondition("take " + item + ": concurrent versions of the count");
      }
      if (versions[0].value < n) return false;
      if (stock_.put_if(item, versions[0].value - n, versions[0].clock)) return true;
    }
    throw cairn::ObsoleteVersion("take " + item + ": lost " + std::to_string(kMaxTries) +
                                 " races in a row");
  });
}

int64_t Inventory::count(const std::string& item) const {
  return guarded("count", item, [&] { return stock_.get(item).value_or(0); });
}

}  // namespace consumer

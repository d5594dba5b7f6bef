// Inventory: stock counts per item, kept in a cairn store (item -> count).
// This is the consumer's own class: it takes the typed client of any stack,
// so production opens it from a config and unit tests hand it the
// in-memory engine (inventory_test.cc).
//
// Its error path: a store that is down, too slow or short of replicas
// becomes InventoryUnavailable, and nothing is half-done (each item is one
// key, changed by one conditional write).
//
// Thread-safe, as the client is.

#ifndef CONSUMER_INVENTORY_H_
#define CONSUMER_INVENTORY_H_

#include <cairn/client.h>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace consumer {

class InventoryUnavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Inventory {
 public:
  using Stock = cairn::Client<std::string, int64_t>;
  static constexpr int kMaxTries = 64;

  explicit Inventory(Stock stock);

  // Adds `n` units of `item` and returns how many there are now.
  // REQUIRES: n > 0 (std::invalid_argument otherwise).
  int64_t add(const std::string& item, int64_t n);
  // Takes `n` units of `item` if there are at least `n`, and returns true;
  // otherwise takes nothing and returns false. Racing takers never take
  // more than there is. Throws cairn::FailedPrecondition if the count has
  // concurrent versions (writers with different node ids), and
  // cairn::ObsoleteVersion after losing kMaxTries races in a row.
  // REQUIRES: n > 0 (std::invalid_argument otherwise).
  bool take(const std::string& item, int64_t n);
  // How many units of `item` there are (0 if it was never stocked).
  int64_t count(const std::string& item) const;

 private:
  template <typename Fn>
  auto guarded(const char* what, const std::string& item, Fn&& fn) const;

  Stock stock_;
};

}  // namespace consumer

#endif  // CONSUMER_INVENTORY_H_

// ForwardingStore: the base of every layer. It owns the Store it wraps and
// forwards every blocking call to it, so a layer overrides only what it
// changes. The non-blocking calls (async_*) are not forwarded: they run
// this layer's blocking calls inline (Store's defaults), so a layer that
// overrides only blocking calls stays correct. A layer whose async calls
// should not block overrides them too and passes them to inner(),
// transforming values in the callback (cairn's own layers all do).
// Thread-safety is that of the wrapped store plus whatever the subclass adds.

#ifndef CAIRN_FORWARDING_STORE_H_
#define CAIRN_FORWARDING_STORE_H_

#include <memory>
#include <string>
#include <string_view>

#include "cairn/export.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

class ForwardingStore : public Store {
 public:
  // REQUIRES: inner != nullptr.
  explicit ForwardingStore(std::unique_ptr<Store> inner);

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;
  bool writes_may_block() const override;
  bool reads_may_block() const override;
  // Passed down: a layer that changes values on their way (compression)
  // overrides it to refuse.
  AtomicResult atomic(std::string_view key, std::string_view function,
                      std::string_view argument) override;

  // The wrapped store. Owned by this layer; valid until it is destroyed.
  Store& inner() const { return *inner_; }

 protected:
  // "line" followed by the wrapped store's description indented two spaces:
  // what describe() of a layer returns.
  std::string describe_as(std::string_view line) const;

 private:
  std::unique_ptr<Store> inner_;
};

// The first layer of type T in the stack under (and including) `store`,
// found by walking ForwardingStore::inner(). nullptr if there is none.
// The pointer is borrowed from the stack.
template <typename T>
T* find_layer(Store& store) {
  for (Store* s = &store; s != nullptr;) {
    if (auto* t = dynamic_cast<T*>(s)) return t;
    auto* f = dynamic_cast<ForwardingStore*>(s);
    s = f ? &f->inner() : nullptr;
  }
  return nullptr;
}

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_FORWARDING_STORE_H_

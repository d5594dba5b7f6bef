#include "cairn/forwarding_store.h"

#include <cassert>

namespace cairn {

ForwardingStore::ForwardingStore(std::unique_ptr<Store> inner)
    : inner_(std::move(inner)) {
  assert(inner_ != nullptr);
}

void ForwardingStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  inner_->get_into(key, out);
}

std::map<std::string, std::vector<Versioned>> ForwardingStore::get_all(
    std::span<const std::string> keys) {
  return inner_->get_all(keys);
}

PutResult ForwardingStore::put_stamped(std::string_view key, const Versioned& value,
                                       PutReply* stored) {
  return inner_->put_stamped(key, value, stored);
}

bool ForwardingStore::remove(std::string_view key, const VectorClock& version) {
  return inner_->remove(key, version);
}

std::vector<VectorClock> ForwardingStore::versions(std::string_view key) {
  return inner_->versions(key);
}

std::unique_ptr<StoreIterator> ForwardingStore::scan() { return inner_->scan(); }

void ForwardingStore::close() { inner_->close(); }

std::string ForwardingStore::describe() const { return inner_->describe(); }

bool ForwardingStore::reads_may_block() const { return inner_->reads_may_block(); }

bool ForwardingStore::writes_may_block() const { return inner_->writes_may_block(); }

AtomicResult ForwardingStore::atomic(std::string_view key, std::string_view function,
                                     std::string_view argument) {
  return inner_->atomic(key, function, argument);
}

std::string ForwardingStore::describe_as(std::string_view line) const {
  std::string out(line);
  const std::string inner = inner_->describe();
  size_t start = 0;
  while (start < inner.size()) {
    size_t end = inner.find('\n', start);
    if (end == std::string::npos) end = inner.size();
    out += "\n  ";
    out.append(inner, start, end - start);
    start = end + 1;
  }
  return out;
}

}  // namespace cairn

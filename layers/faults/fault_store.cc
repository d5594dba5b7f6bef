#include "cairn/fault_store.h"

#include <sstream>
#include <thread>

#include "catalogue/builtin.h"

namespace cairn {

namespace {

constexpr std::pair<const char*, FaultStore::Op> kOpNames[] = {
    {"get", FaultStore::kGet},         {"get_all", FaultStore::kGetAll},
    {"put", FaultStore::kPut},         {"remove", FaultStore::kRemove},
    {"versions", FaultStore::kVersions}, {"scan", FaultStore::kScan},
};

const char* failure_name(FaultStore::Failure f) {
  switch (f) {
    case FaultStore::Failure::kNone: return "none";
    case FaultStore::Failure::kUnavailable: return "unavailable";
    case FaultStore::Failure::kIoError: return "io_error";
    case FaultStore::Failure::kTimeout: return "timeout";
  }
  return "?";
}

}  // namespace

FaultStore::FaultStore(std::unique_ptr<Store> inner, uint32_t ops,
                       std::chrono::milliseconds delay, Failure failure)
    : ForwardingStore(std::move(inner)), ops_(ops), delay_ms_(delay.count()), failure_(failure) {}

void FaultStore::inject(Op op, const char* name) const {
  if ((ops_ & op) == 0) return;
  const int64_t ms = delay_ms_.load();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  const std::string why = std::string("faults: injected failure of ") + name;
  switch (failure_.load()) {
    case Failure::kNone: return;
    case Failure::kUnavailable: throw Unavailable(why);
    case Failure::kIoError: throw IoError(why);
    case Failure::kTimeout: throw Timeout(why);
  }
}

void FaultStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  inject(kGet, "get");
  ForwardingStore::get_into(key, out);
}

std::map<std::string, std::vector<Versioned>> FaultStore::get_all(
    std::span<const std::string> keys) {
  inject(kGetAll, "get_all");
  return ForwardingStore::get_all(keys);
}

PutResult FaultStore::put_stamped(std::string_view key, const Versioned& value,
                                  VectorClock* stored) {
  inject(kPut, "put");
  return ForwardingStore::put_stamped(key, value, stored);
}

bool FaultStore::remove(std::string_view key, const VectorClock& version) {
  inject(kRemove, "remove");
  return ForwardingStore::remove(key, version);
}

std::vector<VectorClock> FaultStore::versions(std::string_view key) {
  inject(kVersions, "versions");
  return ForwardingStore::versions(key);
}

std::unique_ptr<StoreIterator> FaultStore::scan() {
  inject(kScan, "scan");
  return ForwardingStore::scan();
}

std::string FaultStore::describe() const {
  std::string ops;
  for (const auto& [name, op] : kOpNames) {
    if (!(ops_ & op)) continue;
    if (!ops.empty()) ops += ',';
    ops += name;
  }
  return describe_as("faults (delay " + std::to_string(delay_ms_.load()) + " ms, fail " +
                     failure_name(failure_.load()) + ", on " + ops + ")");
}

std::unique_ptr<Store> make_faults_layer(std::unique_ptr<Store> inner, const Params& params) {
  uint32_t ops = FaultStore::kAll;
  if (params.has("ops")) {
    ops = 0;
    std::stringstream list(params.get_string("ops"));
    for (std::string name; std::getline(list, name, ',');) {
      bool known = false;
      for (const auto& [n, op] : kOpNames) {
        if (name == n) {
          ops |= op;
          known = true;
        }
      }
      if (!known) {
        params.fail("ops", "unknown operation '" + name +
                               "' (known: get, get_all, put, remove, versions, scan)");
      }
    }
  }
  const auto delay = std::chrono::milliseconds(params.get_int("delay_ms", 0, 0, 3600 * 1000));
  const std::string fail =
      params.get_choice("fail", {"none", "unavailable", "io_error", "timeout"}, "none");
  const FaultStore::Failure failure = fail == "unavailable" ? FaultStore::Failure::kUnavailable
                                      : fail == "io_error"  ? FaultStore::Failure::kIoError
                                      : fail == "timeout"   ? FaultStore::Failure::kTimeout
                                                            : FaultStore::Failure::kNone;
  return std::make_unique<FaultStore>(std::move(inner), ops, delay, failure);
}

}  // namespace cairn

#include "cairn/fault_store.h"

#include <sstream>
#include <thread>

#include "cairn/config.h"
#include "cairn/json.h"
#include "catalogue/builtin.h"
#include "core/async.h"
#include "core/timer.h"

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

std::exception_ptr FaultStore::injected(const char* name) const {
  const std::string why = std::string("faults: injected failure of ") + name;
  switch (failure_.load()) {
    case Failure::kNone: return nullptr;
    case Failure::kUnavailable: return std::make_exception_ptr(Unavailable(why));
    case Failure::kIoError: return std::make_exception_ptr(IoError(why));
    case Failure::kTimeout: return std::make_exception_ptr(Timeout(why));
  }
  return nullptr;
}

void FaultStore::inject(Op op, const char* name) const {
  if ((ops_ & op) == 0) return;
  const int64_t ms = delay_ms_.load();
  if (ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  if (fail_after_.load()) return;
  if (std::exception_ptr e = injected(name)) std::rethrow_exception(e);
}

template <typename Fn>
auto FaultStore::injected_around(Op op, const char* name, Fn&& call) const {
  inject(op, name);
  auto after = [&] {
    if ((ops_ & op) == 0 || !fail_after_.load()) return;
    if (std::exception_ptr e = injected(name)) std::rethrow_exception(e);
  };
  if constexpr (std::is_void_v<decltype(call())>) {
    call();
    after();
  } else {
    auto result = call();
    after();
    return result;
  }
}

template <typename T, typename Forward>
void FaultStore::delayed(Op op, const char* name, Callback<T> done, Forward forward) {
  if ((ops_ & op) == 0) return forward(std::move(done));
  auto go = [this, name, done = std::move(done), forward = std::move(forward)]() mutable {
    if (!fail_after_.load()) {
      if (std::exception_ptr e = injected(name)) return internal::fail(done, std::move(e));
      return forward(std::move(done));
    }
    // Carried out, then its answer lost.
    forward(Callback<T>([this, name, done = std::move(done)](T result, std::exception_ptr e) {
      if (!e) e = injected(name);
      if (e) return internal::fail(done, std::move(e));
      done(std::move(result), nullptr);
    }));
  };
  const int64_t ms = delay_ms_.load();
  if (ms <= 0) return go();
  {
    std::lock_guard lock(pending_mu_);
    ++pending_;
  }
  internal::Timer::shared().after(std::chrono::milliseconds(ms), [this, go]() mutable {
    go();
    std::lock_guard lock(pending_mu_);
    if (--pending_ == 0) pending_cv_.notify_all();
  });
}

void FaultStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  delayed(kGet, "get", std::move(done), [this, key = std::string(key)](auto cb) {
    inner().async_get(key, std::move(cb));
  });
}

void FaultStore::async_get_all(std::vector<std::string> keys,
                               Callback<std::map<std::string, std::vector<Versioned>>> done) {
  delayed(kGetAll, "get_all", std::move(done), [this, keys = std::move(keys)](auto cb) {
    inner().async_get_all(keys, std::move(cb));
  });
}

void FaultStore::async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) {
  delayed(kPut, "put", std::move(done), [this, key = std::string(key), value](auto cb) {
    inner().async_put(key, value, std::move(cb));
  });
}

void FaultStore::async_remove(std::string_view key, const VectorClock& version,
                              Callback<bool> done) {
  delayed(kRemove, "remove", std::move(done), [this, key = std::string(key), version](auto cb) {
    inner().async_remove(key, version, std::move(cb));
  });
}

void FaultStore::async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) {
  delayed(kVersions, "versions", std::move(done), [this, key = std::string(key)](auto cb) {
    inner().async_versions(key, std::move(cb));
  });
}

void FaultStore::close() {
  {
    std::unique_lock lock(pending_mu_);
    pending_cv_.wait(lock, [this] { return pending_ == 0; });
  }
  ForwardingStore::close();
}

FaultStore::~FaultStore() {
  std::unique_lock lock(pending_mu_);
  pending_cv_.wait(lock, [this] { return pending_ == 0; });
}

void FaultStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  injected_around(kGet, "get", [&] { ForwardingStore::get_into(key, out); });
}

std::map<std::string, std::vector<Versioned>> FaultStore::get_all(
    std::span<const std::string> keys) {
  return injected_around(kGetAll, "get_all", [&] { return ForwardingStore::get_all(keys); });
}

PutResult FaultStore::put_stamped(std::string_view key, const Versioned& value,
                                  PutReply* stored) {
  return injected_around(kPut, "put",
                         [&] { return ForwardingStore::put_stamped(key, value, stored); });
}

bool FaultStore::remove(std::string_view key, const VectorClock& version) {
  return injected_around(kRemove, "remove", [&] { return ForwardingStore::remove(key, version); });
}

std::vector<VectorClock> FaultStore::versions(std::string_view key) {
  return injected_around(kVersions, "versions", [&] { return ForwardingStore::versions(key); });
}

std::unique_ptr<StoreIterator> FaultStore::scan() {
  return injected_around(kScan, "scan", [&] { return ForwardingStore::scan(); });
}

std::string FaultStore::describe() const {
  std::string ops;
  for (const auto& [name, op] : kOpNames) {
    if (!(ops_ & op)) continue;
    if (!ops.empty()) ops += ',';
    ops += name;
  }
  return describe_as("faults (delay " + std::to_string(delay_ms_.load()) + " ms, fail " +
                     failure_name(failure_.load()) + (fail_after_.load() ? " after the call" : "") +
                     ", on " + ops + ")");
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
  const bool after = params.get_bool("after", false);
  if (after && failure == FaultStore::Failure::kNone) {
    params.fail("after", "`after: true` needs a `fail` to come after the call");
  }
  if (params.has("nodes")) {
    // Below a client's `route`, one copy of the stack per node: only the
    // copies reaching these nodes get the faults.
    const NodeInfo* node = params.routed_node();
    if (node == nullptr) params.fail("nodes", "`nodes` needs the layer below a client's `route`");
    const Json nodes = params.get_json("nodes");
    bool listed = false;
    for (const Json& n : nodes.is_array() ? nodes.as_array() : Json::Array{nodes}) {
      if (!n.is_string() || n.as_string().empty() ||
          n.as_string().find_first_not_of("0123456789") != std::string::npos) {
        params.fail("nodes", "expected a list of node ids, like [1, 3]");
      }
      listed |= n.as_string() == std::to_string(node->id);
    }
    if (!listed) return inner;
  }
  auto store = std::make_unique<FaultStore>(std::move(inner), ops, delay, failure);
  store->set_fail_after(after);
  return store;
}

}  // namespace cairn

#include "cairn/logging_store.h"

#include "cairn/errors.h"
#include "catalogue/builtin.h"
#include "core/latency_histogram.h"

namespace cairn {

LoggingStore::LoggingStore(std::unique_ptr<Store> inner, LoggingOptions options)
    : ForwardingStore(std::move(inner)), options_(std::move(options)) {}

template <typename Fn, typename Describe>
auto LoggingStore::logged(std::string_view op, std::string_view key, Fn&& fn,
                          Describe&& outcome) {
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
        std::chrono::steady_clock::now() - start);
  };
  auto prefix = [&] {
    std::string s = "store '" + options_.name + "' " + std::string(op);
    if (!key.empty()) s.append(" ").append(printable_key(key));
    return s;
  };
  try {
    auto result = fn();
    const auto took = elapsed();
    if (took >= options_.slow && log_enabled(options_.level)) {
      log(options_.level, prefix() + " -> " + outcome(result) + " in " +
                              internal::format_nanos(static_cast<uint64_t>(took.count())));
    }
    return result;
  } catch (const Error& e) {
    log(LogLevel::kWarn, prefix() + " failed: " + to_string(e.code()) + ": " + e.what());
    throw;
  }
}

void LoggingStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  logged("get", key,
         [&] {
           ForwardingStore::get_into(key, out);
           return out->size();
         },
         [](size_t n) { return n == 0 ? std::string("absent") : std::to_string(n) + " version(s)"; });
}

std::map<std::string, std::vector<Versioned>> LoggingStore::get_all(
    std::span<const std::string> keys) {
  return logged("get_all", "", [&] { return ForwardingStore::get_all(keys); },
                [&](const auto& r) {
                  return std::to_string(r.size()) + " of " + std::to_string(keys.size()) +
                         " keys found";
                });
}

PutResult LoggingStore::put_stamped(std::string_view key, const Versioned& value,
                                    VectorClock* stored) {
  return logged("put", key, [&] { return ForwardingStore::put_stamped(key, value, stored); },
                [&](PutResult r) {
                  return std::string(to_string(r)) + " (" + std::to_string(value.value.size()) +
                         " B at " + value.clock.to_string() + ")";
                });
}

bool LoggingStore::remove(std::string_view key, const VectorClock& version) {
  return logged("remove", key, [&] { return ForwardingStore::remove(key, version); },
                [&](bool removed) {
                  return std::string(removed ? "removed" : "nothing removed") + " (at " +
                         version.to_string() + ")";
                });
}

std::vector<VectorClock> LoggingStore::versions(std::string_view key) {
  return logged("versions", key, [&] { return ForwardingStore::versions(key); },
                [](const std::vector<VectorClock>& r) { return std::to_string(r.size()) + " clock(s)"; });
}

std::unique_ptr<StoreIterator> LoggingStore::scan() {
  return logged("scan", "", [&] { return ForwardingStore::scan(); },
                [](const auto&) { return std::string("opened"); });
}

void LoggingStore::close() {
  log(options_.level, "store '" + options_.name + "' closing");
  ForwardingStore::close();
}

std::string LoggingStore::describe() const {
  std::string line = "logging (level " + std::string(to_string(options_.level));
  if (options_.slow.count() > 0) {
    line += ", ops slower than " + std::to_string(options_.slow.count() / 1000) + " ms";
  }
  return describe_as(line + ")");
}

std::unique_ptr<Store> make_logging_layer(std::unique_ptr<Store> inner, const Params& p) {
  LoggingOptions o;
  o.name = p.store();
  o.level = p.get_choice("level", {"debug", "info"}, "info") == "debug" ? LogLevel::kDebug
                                                                       : LogLevel::kInfo;
  o.slow = std::chrono::milliseconds(p.get_int("slow_ms", 0, 0, 3600 * 1000));
  return std::make_unique<LoggingStore>(std::move(inner), std::move(o));
}

}  // namespace cairn

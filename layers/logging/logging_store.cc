#include "cairn/logging_store.h"

#include "cairn/errors.h"
#include "catalogue/builtin.h"
#include "core/latency_histogram.h"

namespace cairn {

LoggingStore::LoggingStore(std::unique_ptr<Store> inner, LoggingOptions options)
    : ForwardingStore(std::move(inner)), options_(std::move(options)) {}

namespace {

std::chrono::nanoseconds since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() -
                                                              start);
}

}  // namespace

std::string LoggingStore::line_for(std::string_view op, std::string_view key) const {
  std::string s = "store '" + options_.name + "' " + std::string(op);
  if (!key.empty()) s.append(" ").append(printable_key(key));
  return s;
}

void LoggingStore::log_outcome(std::string_view op, std::string_view key,
                               std::chrono::nanoseconds took, const std::string& outcome) const {
  log(options_.level, line_for(op, key) + " -> " + outcome + " in " +
                          internal::format_nanos(static_cast<uint64_t>(took.count())));
}

void LoggingStore::log_failure(std::string_view op, std::string_view key, const Error& e) const {
  log(LogLevel::kWarn, line_for(op, key) + " failed: " + to_string(e.code()) + ": " + e.what());
}

template <typename Fn, typename Describe>
auto LoggingStore::logged(std::string_view op, std::string_view key, Fn&& fn,
                          Describe&& outcome) {
  const auto start = std::chrono::steady_clock::now();
  try {
    auto result = fn();
    const auto took = since(start);
    if (took >= options_.slow && log_enabled(options_.level)) {
      log_outcome(op, key, took, outcome(result));
    }
    return result;
  } catch (const Error& e) {
    log_failure(op, key, e);
    throw;
  }
}

template <typename T, typename Describe>
Callback<T> LoggingStore::logged_async(std::string_view op, std::string_view key,
                                       Callback<T> done, Describe outcome) {
  return [this, op = std::string(op), key = std::string(key),
          start = std::chrono::steady_clock::now(), done = std::move(done),
          outcome = std::move(outcome)](T result, std::exception_ptr error) {
    if (error) {
      try {
        std::rethrow_exception(error);
      } catch (const Error& e) {
        log_failure(op, key, e);
      } catch (...) {
      }
    } else if (const auto took = since(start); took >= options_.slow && log_enabled(options_.level)) {
      log_outcome(op, key, took, outcome(result));
    }
    done(std::move(result), std::move(error));
  };
}

void LoggingStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  inner().async_get(key, logged_async("get", key, std::move(done), [](const auto& versions) {
                      return versions.empty() ? std::string("absent")
                                              : std::to_string(versions.size()) + " version(s)";
                    }));
}

void LoggingStore::async_get_all(std::vector<std::string> keys,
                                 Callback<std::map<std::string, std::vector<Versioned>>> done) {
  const size_t asked = keys.size();
  inner().async_get_all(std::move(keys),
                        logged_async("get_all", "", std::move(done), [asked](const auto& r) {
                          return std::to_string(r.size()) + " of " + std::to_string(asked) +
                                 " keys found";
                        }));
}

void LoggingStore::async_put(std::string_view key, const Versioned& value,
                             Callback<PutReply> done) {
  inner().async_put(key, value,
                    logged_async("put", key, std::move(done),
                                 [size = value.value.size(), clock = value.clock](const PutReply& r) {
                                   return std::string(to_string(r.result)) + " (" +
                                          std::to_string(size) + " B at " + clock.to_string() +
                                          ")";
                                 }));
}

void LoggingStore::async_remove(std::string_view key, const VectorClock& version,
                                Callback<bool> done) {
  inner().async_remove(key, version,
                       logged_async("remove", key, std::move(done), [version](bool removed) {
                         return std::string(removed ? "removed" : "nothing removed") + " (at " +
                                version.to_string() + ")";
                       }));
}

void LoggingStore::async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) {
  inner().async_versions(key, logged_async("versions", key, std::move(done), [](const auto& r) {
                           return std::to_string(r.size()) + " clock(s)";
                         }));
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
                                    PutReply* stored) {
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

// LoggingStore: writes one log line per operation (key, clock, outcome,
// latency) through cairn's log, or only for operations slower than a
// threshold. Failures are logged at warn and rethrown unchanged.
//
// Thread-safe: it keeps no state of its own.

#ifndef CAIRN_LOGGING_STORE_H_
#define CAIRN_LOGGING_STORE_H_

#include <chrono>
#include <string>

#include "cairn/errors.h"
#include "cairn/export.h"
#include "cairn/forwarding_store.h"
#include "cairn/log.h"

CAIRN_API_BEGIN
namespace cairn {

struct LoggingOptions {
  // Labels every line.
  std::string name = "store";
  // The level of the per-operation lines (failures always log at warn).
  LogLevel level = LogLevel::kInfo;
  // Log only operations at least this slow; zero logs every operation.
  std::chrono::microseconds slow{0};
};

class LoggingStore final : public ForwardingStore {
 public:
  LoggingStore(std::unique_ptr<Store> inner, LoggingOptions options);

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

  // Non-blocking, logged like the blocking calls when their callback runs.
  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  bool async_calls_block() const override { return inner().async_calls_block(); }

 private:
  template <typename Fn, typename Describe>
  auto logged(std::string_view op, std::string_view key, Fn&& fn, Describe&& outcome);
  // `done`, logging the call when it answers, as logged() does.
  template <typename T, typename Describe>
  Callback<T> logged_async(std::string_view op, std::string_view key, Callback<T> done,
                           Describe outcome);
  // "store 'NAME' OP KEY", the start of every line.
  std::string line_for(std::string_view op, std::string_view key) const;
  void log_outcome(std::string_view op, std::string_view key, std::chrono::nanoseconds took,
                   const std::string& outcome) const;
  void log_failure(std::string_view op, std::string_view key, const Error& e) const;

  LoggingOptions options_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_LOGGING_STORE_H_

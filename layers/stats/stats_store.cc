#include "cairn/stats_store.h"

#include <atomic>
#include <chrono>

#include "catalogue/builtin.h"
#include "core/latency_histogram.h"

namespace cairn {

struct StatsStore::Counters {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> outcome{0};
  internal::LatencyHistogram latency;
};

const char* StatsStore::op_name(Op op) {
  static constexpr const char* kNames[kOps] = {"get",    "get_all",  "put",
                                               "remove", "versions", "scan"};
  return kNames[static_cast<size_t>(op)];
}

StatsStore::StatsStore(std::unique_ptr<Store> inner, std::string name)
    : ForwardingStore(std::move(inner)),
      name_(std::move(name)),
      counters_(std::make_unique<Counters[]>(kOps)) {}

StatsStore::~StatsStore() = default;

template <typename Fn>
auto StatsStore::timed(Op op, Fn&& fn) {
  Counters& c = counters_[static_cast<size_t>(op)];
  const auto start = std::chrono::steady_clock::now();
  auto record = [&] {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    c.count.fetch_add(1, std::memory_order_relaxed);
    c.latency.record(static_cast<uint64_t>(ns));
  };
  try {
    auto result = fn(c);
    record();
    return result;
  } catch (...) {
    record();
    c.errors.fetch_add(1, std::memory_order_relaxed);
    throw;
  }
}

void StatsStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  timed(Op::kGet, [&](Counters& c) {
    ForwardingStore::get_into(key, out);
    if (!out->empty()) c.outcome.fetch_add(1, std::memory_order_relaxed);
    return true;
  });
}

std::map<std::string, std::vector<Versioned>> StatsStore::get_all(
    std::span<const std::string> keys) {
  return timed(Op::kGetAll, [&](Counters& c) {
    auto r = ForwardingStore::get_all(keys);
    c.outcome.fetch_add(r.size(), std::memory_order_relaxed);
    return r;
  });
}

PutResult StatsStore::put_stamped(std::string_view key, const Versioned& value,
                                  PutReply* stored) {
  return timed(Op::kPut, [&](Counters& c) {
    const PutResult r = ForwardingStore::put_stamped(key, value, stored);
    if (r == PutResult::kObsolete) c.outcome.fetch_add(1, std::memory_order_relaxed);
    return r;
  });
}

bool StatsStore::remove(std::string_view key, const VectorClock& version) {
  return timed(Op::kRemove, [&](Counters& c) {
    const bool removed = ForwardingStore::remove(key, version);
    if (removed) c.outcome.fetch_add(1, std::memory_order_relaxed);
    return removed;
  });
}

std::vector<VectorClock> StatsStore::versions(std::string_view key) {
  return timed(Op::kVersions, [&](Counters&) { return ForwardingStore::versions(key); });
}

std::unique_ptr<StoreIterator> StatsStore::scan() {
  // Counts scans opened; the time is the time to open one.
  return timed(Op::kScan, [&](Counters&) { return ForwardingStore::scan(); });
}

template <typename T, typename Outcome>
Callback<T> StatsStore::counted(Op op, Callback<T> done, Outcome outcome) {
  Counters& c = counters_[static_cast<size_t>(op)];
  return [&c, start = std::chrono::steady_clock::now(), done = std::move(done), outcome](
             T result, std::exception_ptr error) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(
                        std::chrono::steady_clock::now() - start)
                        .count();
    c.count.fetch_add(1, std::memory_order_relaxed);
    c.latency.record(static_cast<uint64_t>(ns));
    if (error) {
      c.errors.fetch_add(1, std::memory_order_relaxed);
    } else {
      c.outcome.fetch_add(outcome(result), std::memory_order_relaxed);
    }
    done(std::move(result), std::move(error));
  };
}

void StatsStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  inner().async_get(key, counted(Op::kGet, std::move(done), [](const auto& versions) {
                      return uint64_t{!versions.empty()};
                    }));
}

void StatsStore::async_get_all(std::vector<std::string> keys,
                               Callback<std::map<std::string, std::vector<Versioned>>> done) {
  inner().async_get_all(std::move(keys), counted(Op::kGetAll, std::move(done),
                                                 [](const auto& found) { return found.size(); }));
}

void StatsStore::async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) {
  inner().async_put(key, value, counted(Op::kPut, std::move(done), [](const PutReply& r) {
                      return uint64_t{r.result == PutResult::kObsolete};
                    }));
}

void StatsStore::async_remove(std::string_view key, const VectorClock& version,
                              Callback<bool> done) {
  inner().async_remove(key, version, counted(Op::kRemove, std::move(done), [](bool removed) {
                         return uint64_t{removed};
                       }));
}

void StatsStore::async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) {
  inner().async_versions(key, counted(Op::kVersions, std::move(done),
                                      [](const auto&) { return uint64_t{0}; }));
}

std::string StatsStore::describe() const { return describe_as("stats"); }

StatsStore::Snapshot StatsStore::snapshot() const {
  Snapshot s;
  for (size_t i = 0; i < kOps; ++i) {
    s.ops[i].count = counters_[i].count.load(std::memory_order_relaxed);
    s.ops[i].errors = counters_[i].errors.load(std::memory_order_relaxed);
    s.ops[i].outcome = counters_[i].outcome.load(std::memory_order_relaxed);
    s.ops[i].latency = counters_[i].latency.summary();
  }
  return s;
}

namespace {

// Right-aligns `cell` in `width` columns, counting UTF-8 characters (the
// "µ" of µs is two bytes but one column).
void pad(std::string* out, const std::string& cell, size_t width) {
  size_t columns = 0;
  for (unsigned char c : cell) columns += (c & 0xc0) != 0x80;
  out->append(columns < width ? width - columns : 1, ' ');
  out->append(cell);
}

}  // namespace

std::string StatsStore::report() const {
  using internal::format_nanos;
  const Snapshot s = snapshot();
  std::string out = "stats for '" + name_ + "'\n";
  out += "op       ";
  for (const char* h : {"count", "errors", "outcome", "mean", "p50", "p99", "p999", "max"}) {
    pad(&out, h, 9);
  }
  out += "\n";
  for (int i = 0; i < kOps; ++i) {
    const OpStats& o = s.ops[static_cast<size_t>(i)];
    if (o.count == 0) continue;
    std::string name = op_name(static_cast<Op>(i));
    name.resize(9, ' ');
    out += name;
    pad(&out, std::to_string(o.count), 9);
    pad(&out, std::to_string(o.errors), 9);
    pad(&out, std::to_string(o.outcome), 9);
    for (uint64_t ns : {o.latency.mean_ns, o.latency.p50_ns, o.latency.p99_ns,
                        o.latency.p999_ns, o.latency.max_ns}) {
      pad(&out, format_nanos(ns), 9);
    }
    out += "\n";
  }
  out += "(outcome: get/get_all keys found, put obsolete, remove deleted)\n";
  return out;
}

std::unique_ptr<Store> make_stats_layer(std::unique_ptr<Store> inner, const Params& params) {
  return std::make_unique<StatsStore>(std::move(inner), params.store());
}

}  // namespace cairn

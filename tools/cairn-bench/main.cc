// cairn-bench: a YCSB-style load driver. Loads N records, then runs
// workloads A (50% read, 50% update), B (95/5) and C (read only) against a
// cairn server (unary calls or the Stream RPC), redis-server or memcached,
// and prints throughput and latency percentiles.

#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <absl/synchronization/mutex.h>

#include "cairn/version.h"
#include "core/latency_histogram.h"
#include "tools/cairn-bench/keys.h"
#include "tools/cairn-bench/targets.h"
#include "tools/flags.h"

namespace {

using namespace cairn::bench;
using cairn::internal::format_nanos;
using cairn::internal::LatencyHistogram;
using Clock = std::chrono::steady_clock;

constexpr char kHelp[] = R"(usage: cairn-bench (--target URL | --config FILE) [options]

A YCSB-style load driver. Loads --records records, then runs each workload
for --duration seconds with --threads threads, each with a connection of
its own and up to --depth operations in flight, and prints operations per
second and read and update latency percentiles (p50, p99, p99.9).

Targets:
  cairn://HOST:PORT         a cairn-server, through the grpc client store
                            (unary calls; the callback path when --depth > 1)
  cairn-stream://HOST:PORT  a cairn-server, through the Stream RPC (tagged
                            requests pipelined on one call per thread)
  redis://HOST:PORT         redis-server, or cairn-server's --resp front,
                            through hiredis (GET/SET; pipelined when
                            --depth > 1); with --store, SELECT STORE first
  memcached://HOST:PORT     memcached, through libmemcached (--depth 1)
  --config FILE             instead of --target: the client stack FILE's
                            store builds, e.g. a cluster through a routing
                            client or a load-balanced grpc engine (--depth 1)

Options:
  --target URL            what to drive (this or --config is required)
  --config FILE           drive the config's client stack of --store
  --store NAME            the cairn store (default "default"; for redis://,
                          none unless given)
  --records N             records loaded and read (default 100000)
  --value-size B          bytes per value (default 1000, as YCSB's records)
  --workloads LIST        of A, B, C, comma-separated (default A,B,C):
                          A 50% read 50% update, B 95/5, C read only
  --distribution D        zipfian (YCSB's, theta 0.99, scrambled; default)
                          or uniform
  --threads T             client threads (default 4)
  --depth D               operations in flight per thread (default 1)
  --duration S            seconds per workload (default 10)
  --warmup S              read (workload C's keys) for S seconds before the
                          workloads, unmeasured: fills near caches
                          (default 0)
  --no-load               skip the load phase (the records are there)
  --json                  also print one JSON object per phase on stdout
  --seed N                random seed (default 1)
  --version               print cairn's version and exit

An update writes a whole value: for cairn, with the clock {0: n} where n
counts up across the run, so each write supersedes the last; a write that
loses a race with another of the same key comes back obsolete: it wrote
nothing, so it is counted apart and left out of ops/s and the latencies.
Latencies are closed-loop: from sending a request to handling its
response, with no schedule of intended sends.
Progress goes to stderr once a second. Exit status: 2 for bad usage, 1 if
the target cannot be reached or an operation fails.
)";

using cairn::tools::UsageError;

struct Args {
  Target target;
  uint64_t records = 100000;
  size_t value_size = 1000;
  std::vector<char> workloads = {'A', 'B', 'C'};
  bool zipfian = true;
  int threads = 4;
  int depth = 1;
  double duration = 10;
  double warmup = 0;
  bool load = true;
  bool json = false;
  uint64_t seed = 1;
};

std::optional<Args> parse(int argc, char** argv) {
  Args a;
  bool have_target = false;
  std::string store;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::cout << kHelp;
      return std::nullopt;
    } else if (arg == "--version") {
      std::cout << "cairn-bench " << cairn::version() << "\n";
      return std::nullopt;
    } else if (arg == "--target") {
      if (have_target) throw UsageError("give --target or --config, not both");
      try {
        a.target = parse_target(value());
      } catch (const std::invalid_argument& e) {
        throw UsageError(e.what());
      }
      have_target = true;
    } else if (arg == "--config") {
      if (have_target) throw UsageError("give --target or --config, not both");
      a.target.kind = Target::Kind::kConfig;
      a.target.address = value();
      have_target = true;
    } else if (arg == "--store") {
      store = value();
    } else if (arg == "--records") {
      a.records = cairn::tools::flag_number(arg, value());
    } else if (arg == "--value-size") {
      a.value_size = cairn::tools::flag_number(arg, value());
    } else if (arg == "--workloads") {
      a.workloads.clear();
      std::stringstream list(value());
      for (std::string w; std::getline(list, w, ',');) {
        if (w != "A" && w != "B" && w != "C") {
          throw UsageError("--workloads: unknown workload '" + w + "' (A, B or C)");
        }
        a.workloads.push_back(w[0]);
      }
    } else if (arg == "--distribution") {
      const std::string d = value();
      if (d != "zipfian" && d != "uniform") {
        throw UsageError("--distribution: '" + d + "' is not zipfian or uniform");
      }
      a.zipfian = d == "zipfian";
    } else if (arg == "--threads") {
      a.threads = static_cast<int>(cairn::tools::flag_number(arg, value()));
    } else if (arg == "--depth") {
      a.depth = static_cast<int>(cairn::tools::flag_number(arg, value()));
    } else if (arg == "--warmup") {
      a.warmup = static_cast<double>(cairn::tools::flag_number(arg, value()));
    } else if (arg == "--duration") {
      a.duration = static_cast<double>(cairn::tools::flag_number(arg, value()));
    } else if (arg == "--no-load") {
      a.load = false;
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--seed") {
      a.seed = cairn::tools::flag_number(arg, value());
    } else {
      throw UsageError("unknown argument " + arg + " (see --help)");
    }
  }
  if (!have_target) throw UsageError("--target or --config is required (see --help)");
  if (!store.empty()) {
    a.target.store = store;
    a.target.select_store = a.target.kind == Target::Kind::kRedis;
  }
  if (a.records == 0) throw UsageError("--records must be at least 1");
  if (a.threads < 1 || a.depth < 1) throw UsageError("--threads and --depth must be at least 1");
  if (a.duration <= 0) throw UsageError("--duration must be at least 1");
  if (a.workloads.empty()) throw UsageError("--workloads is empty");
  if (a.target.kind == Target::Kind::kMemcached && a.depth != 1) {
    throw UsageError("memcached targets take --depth 1 only");
  }
  if (a.target.kind == Target::Kind::kConfig && a.depth != 1) {
    throw UsageError("--config takes --depth 1 only (the Store API blocks; use --threads)");
  }
  return a;
}

// What one phase measured, summed over threads.
struct Result {
  uint64_t ops = 0;
  uint64_t misses = 0;
  uint64_t obsolete = 0;
  double seconds = 0;
  LatencyHistogram reads;
  LatencyHistogram updates;
};

// Runs a phase on every thread: `next(rng, thread, &key, &is_read)` picks
// each operation (false: this thread is done); `more()` says whether to
// start another. Prints progress.
template <typename Next, typename More>
void run_phase(const Args& a, std::vector<std::unique_ptr<cairn::bench::Connection>>& conns,
               const std::string& label, Next next, More more, Result* result) {
  const std::string value(a.value_size, 'v');
  std::atomic<uint64_t> done{0};
  std::atomic<bool> failed{false};
  std::atomic<bool> finished{false};
  std::vector<std::unique_ptr<LatencyHistogram>> reads, updates;
  std::vector<std::string> errors(conns.size());
  std::vector<uint64_t> misses(conns.size()), obsolete(conns.size());
  for (size_t t = 0; t < conns.size(); ++t) {
    reads.push_back(std::make_unique<LatencyHistogram>());
    updates.push_back(std::make_unique<LatencyHistogram>());
  }
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (size_t t = 0; t < conns.size(); ++t) {
    threads.emplace_back([&, t] {
      cairn::bench::Connection& c = *conns[t];
      std::mt19937_64 rng(a.seed * 1000003 + t);
      struct Slot {
        Clock::time_point sent;
        bool read;
      };
      std::vector<Slot> slots(static_cast<size_t>(a.depth));
      std::vector<uint32_t> free;
      for (int s = a.depth - 1; s >= 0; --s) free.push_back(static_cast<uint32_t>(s));
      const uint64_t misses_before = c.misses;
      const uint64_t obsolete_before = c.obsolete;
      int inflight = 0;
      try {
        std::string key;
        for (;;) {
          while (!free.empty() && !failed.load(std::memory_order_relaxed) &&
                 more()) {
            bool read = true;
            if (!next(rng, t, &key, &read)) break;
            const uint32_t s = free.back();
            free.pop_back();
            slots[s] = {Clock::now(), read};
            if (read) {
              c.send_get(key, s);
            } else {
              c.send_put(key, value, s);
            }
            ++inflight;
          }
          if (inflight == 0) break;
          const uint64_t lost_before = c.obsolete;
          const uint32_t s = c.receive();
          const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() -
                                                                               slots[s].sent);
          free.push_back(s);
          --inflight;
          // An obsolete update wrote nothing: it is not counted as work
          // done (redis and memcached always write).
          if (c.obsolete != lost_before) continue;
          (slots[s].read ? reads[t] : updates[t])->record(static_cast<uint64_t>(ns.count()));
          done.fetch_add(1, std::memory_order_relaxed);
        }
      } catch (const std::exception& e) {
        errors[t] = e.what();
        failed = true;
      }
      misses[t] = c.misses - misses_before;
      obsolete[t] = c.obsolete - obsolete_before;
    });
  }
  // Progress, once a second, while the threads work.
  std::thread progress([&] {
    uint64_t last = 0;
    auto last_time = start;
    for (;;) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      if (finished.load()) return;
      const auto now = Clock::now();
      if (now - last_time < std::chrono::seconds(1)) continue;
      const uint64_t d = done.load();
      const double secs = std::chrono::duration<double>(now - last_time).count();
      std::fprintf(stderr, "  %s: %.0f s, %llu ops, %.0f ops/s\n", label.c_str(),
                   std::chrono::duration<double>(now - start).count(),
                   static_cast<unsigned long long>(d), static_cast<double>(d - last) / secs);
      last = d;
      last_time = now;
    }
  });
  for (std::thread& th : threads) th.join();
  result->seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result->ops = done.load();
  finished = true;
  progress.join();
  for (size_t t = 0; t < conns.size(); ++t) {
    if (!errors[t].empty()) throw std::runtime_error(label + ": " + errors[t]);
    result->reads.merge_from(*reads[t]);
    result->updates.merge_from(*updates[t]);
    result->misses += misses[t];
    result->obsolete += obsolete[t];
  }
}

std::string latency(const LatencyHistogram& h) {
  const auto s = h.summary();
  if (s.count == 0) return "-";
  return format_nanos(s.p50_ns) + " / " + format_nanos(s.p99_ns) + " / " +
         format_nanos(s.p999_ns);
}

std::string json_latency(const char* name, const LatencyHistogram& h) {
  const auto s = h.summary();
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "\"%s\":{\"count\":%llu,\"p50_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,"
                "\"mean_ns\":%llu}",
                name, static_cast<unsigned long long>(s.count),
                static_cast<unsigned long long>(s.p50_ns),
                static_cast<unsigned long long>(s.p99_ns),
                static_cast<unsigned long long>(s.p999_ns),
                static_cast<unsigned long long>(s.mean_ns));
  return buf;
}

void report(const Args& a, const std::string& phase, const Result& r) {
  const double rate = static_cast<double>(r.ops) / r.seconds;
  std::printf("%-6s %10.0f ops/s  %9llu ops in %5.1f s   read p50/p99/p999 %s   update %s",
              phase.c_str(), rate, static_cast<unsigned long long>(r.ops), r.seconds,
              latency(r.reads).c_str(), latency(r.updates).c_str());
  if (r.misses > 0) std::printf("   (%llu reads missed)", static_cast<unsigned long long>(r.misses));
  if (r.obsolete > 0) {
    std::printf("   (%llu updates obsolete, not counted)",
                static_cast<unsigned long long>(r.obsolete));
  }
  std::printf("\n");
  if (a.json) {
    std::printf(
        "{\"target\":\"%s\",\"phase\":\"%s\",\"threads\":%d,\"depth\":%d,\"records\":%llu,"
        "\"value_size\":%zu,\"distribution\":\"%s\",\"ops\":%llu,\"seconds\":%.3f,"
        "\"ops_per_sec\":%.1f,\"misses\":%llu,\"obsolete\":%llu,%s,%s}\n",
        kind_name(a.target.kind), phase.c_str(), a.threads, a.depth,
        static_cast<unsigned long long>(a.records), a.value_size,
        a.zipfian ? "zipfian" : "uniform", static_cast<unsigned long long>(r.ops), r.seconds,
        rate, static_cast<unsigned long long>(r.misses),
        static_cast<unsigned long long>(r.obsolete), json_latency("read", r.reads).c_str(),
        json_latency("update", r.updates).c_str());
  }
  std::fflush(stdout);
}

int run(const Args& a) {
  std::atomic<uint64_t> clock{static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(
          std::chrono::system_clock::now().time_since_epoch())
          .count())};
  std::vector<std::unique_ptr<cairn::bench::Connection>> conns;
  for (int t = 0; t < a.threads; ++t) conns.push_back(connect(a.target, a.depth, &clock));

  std::printf("%s at %s%s: %llu records of %zu B, %s keys, %d threads x depth %d\n",
              kind_name(a.target.kind), a.target.address.c_str(),
              a.target.kind == Target::Kind::kCairn || a.target.kind == Target::Kind::kCairnStream
                  ? (", store '" + a.target.store + "'").c_str()
                  : "",
              static_cast<unsigned long long>(a.records), a.value_size,
              a.zipfian ? "zipfian" : "uniform", a.threads, a.depth);

  if (a.load) {
    // Thread t loads records t, t+T, t+2T, ...
    std::vector<uint64_t> next_record(static_cast<size_t>(a.threads));
    for (int t = 0; t < a.threads; ++t) next_record[static_cast<size_t>(t)] = static_cast<uint64_t>(t);
    Result r;
    run_phase(
        a, conns, "load",
        [&](std::mt19937_64&, size_t t, std::string* key, bool* read) {
          uint64_t& i = next_record[t];
          if (i >= a.records) return false;
          *key = key_of(i);
          *read = false;
          i += static_cast<uint64_t>(a.threads);
          return true;
        },
        [] { return true; }, &r);
    report(a, "load", r);
  }

  std::optional<Zipfian> zipf;
  if (a.zipfian) zipf.emplace(a.records);
  if (a.warmup > 0) {
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(a.warmup));
    Result r;
    run_phase(
        a, conns, "warmup",
        [&](std::mt19937_64& rng, size_t, std::string* key, bool* read) {
          const uint64_t i = zipf ? zipf->next(rng)
                                  : std::uniform_int_distribution<uint64_t>(0, a.records - 1)(rng);
          *key = key_of(i);
          *read = true;
          return true;
        },
        [&] { return Clock::now() < until; }, &r);
  }
  for (char w : a.workloads) {
    const double read_share = w == 'A' ? 0.5 : w == 'B' ? 0.95 : 1.0;
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(a.duration));
    Result r;
    run_phase(
        a, conns, std::string(1, w),
        [&](std::mt19937_64& rng, size_t, std::string* key, bool* read) {
          const uint64_t i = zipf ? zipf->next(rng)
                                  : std::uniform_int_distribution<uint64_t>(0, a.records - 1)(rng);
          *key = key_of(i);
          *read = std::uniform_real_distribution<double>(0, 1)(rng) < read_share;
          return true;
        },
        [&] { return Clock::now() < until; }, &r);
    report(a, std::string(1, w), r);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil tracks lock order on every Mutex (deadlock detection),
  // and gRPC takes many: measured, it cost a few percent of a node's CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  try {
    const std::optional<Args> a = parse(argc, argv);
    return a ? run(*a) : 0;
  } catch (const UsageError& e) {
    std::cerr << "cairn-bench: " << e.what() << "\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "cairn-bench: " << e.what() << "\n";
    return 1;
  }
}

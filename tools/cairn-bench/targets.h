// What cairn-bench drives: a cairn server through the gRPC client store
// (unary calls) or the Stream RPC, redis-server through hiredis, memcached
// through libmemcached. Each benchmark thread has a connection of its own.

#ifndef CAIRN_TOOLS_CAIRN_BENCH_TARGETS_H_
#define CAIRN_TOOLS_CAIRN_BENCH_TARGETS_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace cairn::bench {

struct Target {
  enum class Kind { kCairn, kCairnStream, kRedis, kMemcached, kConfig };
  Kind kind = Kind::kCairn;
  std::string address;          // host:port; for kConfig, the config file
  std::string store = "default";  // cairn; redis: SELECTed if select_store
  bool select_store = false;
};

// "cairn://HOST:PORT", "cairn-stream://HOST:PORT", "redis://HOST:PORT",
// "memcached://HOST:PORT". Throws std::invalid_argument saying what is wrong.
Target parse_target(const std::string& url);
const char* kind_name(Target::Kind kind);

// One thread's connection, with up to `depth` operations in flight, each
// known by a slot number below depth.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual void send_get(const std::string& key, uint32_t slot) = 0;
  virtual void send_put(const std::string& key, const std::string& value, uint32_t slot) = 0;
  // Waits for an operation to finish and returns its slot. Throws
  // std::runtime_error if it failed.
  virtual uint32_t receive() = 0;

  uint64_t misses = 0;    // gets that found nothing
  uint64_t obsolete = 0;  // cairn puts that lost to a racing put of the key
};

// Connects (and checks the server answers). `clock` numbers cairn's writes:
// every put carries the clock {0: clock++}, so each supersedes the last
// (a put that loses a race is obsolete, as in Voldemort). Throws
// std::runtime_error if the server cannot be reached.
std::unique_ptr<Connection> connect(const Target& target, int depth,
                                    std::atomic<uint64_t>* clock);

}  // namespace cairn::bench

#endif  // CAIRN_TOOLS_CAIRN_BENCH_TARGETS_H_

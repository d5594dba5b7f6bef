// GrpcStore: a Store whose calls go to a cairn server. One channel per
// target list, shared by every thread; a deadline on every call; reads
// retried with backoff when the server is unavailable (writes only if told:
// a retried put may already have been applied). Several targets are
// balanced with gRPC's round_robin policy: the load-balanced entry point of
// a server-routed cluster.
//
// Its non-blocking Store calls are gRPC callback calls, so the routing
// layer fans out to many replicas without a thread each, through whatever
// layers sit between it and this engine.
//
// Thread-safe.

#ifndef CAIRN_LAYERS_GRPC_GRPC_STORE_H_
#define CAIRN_LAYERS_GRPC_GRPC_STORE_H_

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cairn/grpc_store.h"
#include "cairn/store.h"
#include "layers/cache/watch_link.h"
#include "routing/hint.h"

namespace cairn {

namespace internal {
// A PEM file's bytes (`what`: "CA", "certificate", "key", for the error).
// Throws IoError naming it.
std::string read_tls_file(const std::string& path, const char* what);
// Whether HOST:PORT names this machine (127.0.0.0/8, localhost, [::1]):
// where a token may travel without TLS.
bool loopback_target(const std::string& address);
}  // namespace internal

// Which keys a partition scan returns: those of `partitions` on a ring of
// `ring_partitions` (cairn/ring.h), sent at most `max_bytes_per_second`
// (0: no limit).
struct PartitionFilter {
  uint32_t ring_partitions = 0;
  std::vector<uint32_t> partitions;
  uint64_t max_bytes_per_second = 0;
};

// A server's scan that another thread may stop: next() then fails.
class CancellableIterator : public StoreIterator {
 public:
  // Thread-safe; idempotent.
  virtual void cancel() = 0;
};

class GrpcStore final : public Store, public HintKeeper {
 public:
  // Creates the channel; connects lazily. Throws InvalidArgument for bad
  // options, IoError for unreadable TLS files.
  explicit GrpcStore(GrpcOptions options);
  ~GrpcStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  // The server's Atomic call: run at the key's home (this node, for a
  // routing layer's replica store). Never retried: it may have run.
  AtomicResult atomic(std::string_view key, std::string_view function,
                      std::string_view argument) override;
  std::unique_ptr<StoreIterator> scan() override;
  // The server's scan of only the keys in some partitions, throttled by
  // the server: what a node copies when it takes partitions over.
  std::unique_ptr<CancellableIterator> scan_partitions(const PartitionFilter& only);
  void close() override;
  std::string describe() const override;
  bool reads_may_block() const override { return true; }

  // Non-blocking: each is one gRPC callback call, without retries (the
  // caller fans out and decides); `done` runs on a gRPC thread. What it
  // throws is logged and dropped. A closed store answers FailedPrecondition
  // through `done`.
  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  bool async_calls_block() const override { return false; }

  // A cache's coherence stream to this store's node (a Watch call; one
  // target only). It ends when the store closes, if not before.
  std::shared_ptr<internal::WatchLink> open_watch(internal::Coherence mode,
                                                  std::chrono::milliseconds lease,
                                                  internal::WatchLink::Handler handler);

  // Leaves `hint` with the server, which delivers it to hint.node later.
  void async_put_hint(const Hint& hint, std::function<void(std::exception_ptr)> done) override;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace cairn

#endif  // CAIRN_LAYERS_GRPC_GRPC_STORE_H_

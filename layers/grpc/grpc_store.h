// GrpcStore: a Store whose calls go to a cairn server. One channel per
// target list, shared by every thread; a deadline on every call; reads
// retried with backoff when the server is unavailable (writes only if told:
// a retried put may already have been applied). Several targets are
// balanced with gRPC's round_robin policy: the load-balanced entry point of
// a server-routed cluster.
//
// Besides the blocking Store calls it offers callback-based ones, so the
// routing layer can fan out to many replicas without a thread each.
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
#include "routing/hint.h"

namespace cairn {

class GrpcStore final : public Store {
 public:
  // Creates the channel; connects lazily. Throws InvalidArgument for bad
  // options, IoError for unreadable TLS files.
  explicit GrpcStore(GrpcOptions options);
  ~GrpcStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        VectorClock* stored) override;
  bool remove(std::string_view key, const VectorClock& version) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;
  bool reads_may_block() const override { return true; }

  // The non-blocking path: the callback runs once, on a gRPC thread, with
  // the result or the error (as an exception_ptr holding a cairn::Error).
  // It must not block, and must not destroy this store; what it throws is
  // logged and dropped. If the call cannot start (the store is closed) it
  // throws FailedPrecondition at once and the callback never runs. No
  // retries: the caller fans out and decides.
  void async_get(std::string_view key,
                 std::function<void(std::vector<Versioned>, std::exception_ptr)> done);
  void async_put(std::string_view key, const Versioned& value,
                 std::function<void(PutResult, std::exception_ptr)> done);
  void async_remove(std::string_view key, const VectorClock& version,
                    std::function<void(bool, std::exception_ptr)> done);
  void async_versions(std::string_view key,
                      std::function<void(std::vector<VectorClock>, std::exception_ptr)> done);
  void async_get_all(std::vector<std::string> keys,
                     std::function<void(std::map<std::string, std::vector<Versioned>>,
                                        std::exception_ptr)> done);
  // Whether the server answers and serves this store (its Admin Stats).
  void async_probe(std::function<void(std::exception_ptr)> done);
  // Leaves `hint` with the server, which delivers it to hint.node later.
  void async_put_hint(const Hint& hint, std::function<void(std::exception_ptr)> done);

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};


}  // namespace cairn

#endif  // CAIRN_LAYERS_GRPC_GRPC_STORE_H_

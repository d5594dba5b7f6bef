// StoreServer: serves stores over gRPC (the Store and Admin services of
// cairn.proto, gRPC's standard health service and server reflection) with
// gRPC's callback API. Engine work that may block — writes (an fsync),
// scans — runs on a pool of cairn's own threads, never on gRPC's; reads,
// and the writes of stores whose writes never block (the memory engine),
// run inline.
//
// Thread-safe. The server owns the stores it serves and closes them after
// it has stopped.

#ifndef CAIRN_SERVER_GRPC_SERVER_H_
#define CAIRN_SERVER_GRPC_SERVER_H_

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "layers/cache/directory.h"
#include "server/access.h"
#include "server/serving.h"
#include "routing/hint.h"

namespace cairn {

struct ServerOptions {
  // host:port to listen on; port 0 lets the OS choose (see port()).
  // Binds loopback unless told otherwise.
  std::string listen = "127.0.0.1:0";
  // Largest request or response, in bytes. Raise it with the stores' value
  // limits: a get_all of many large values travels as one message.
  size_t max_message_size = 64 << 20;
  // Threads for engine work that may block (writes, scans).
  int worker_threads = 4;
  // Threads for the scans of stores that wait on other nodes (they route),
  // apart from the engine work so that they never hold up the replica
  // calls other nodes make here. Their other calls, unary or streamed,
  // start on gRPC's thread and finish in the routing layer's callback.
  // Started only if a store routes.
  int route_threads = 4;
  // A write still waiting for a worker this long after it arrived (or
  // after the client's deadline, if sooner) fails with DEADLINE_EXCEEDED
  // instead of running.
  std::chrono::milliseconds request_timeout{30000};
  // TLS: a server certificate and key (PEM files); with a CA file as well,
  // clients must present a certificate that CA signed (mutual TLS). All
  // empty: plaintext.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // Keeps a hint another node's routing layer left here (Admin PutHint),
  // on a worker thread; unset, PutHint fails with FAILED_PRECONDITION.
  std::function<void(const Hint&)> keep_hint;
  // The hints kept, by the node each is for (Admin PendingHints), on a
  // worker thread; unset, PendingHints fails with FAILED_PRECONDITION.
  std::function<std::map<NodeId, uint64_t>()> pending_hints;
  // Whether this node replicates partition `p` of store `store` on a ring
  // of `partitions` partitions by its metadata (or will, after a move in
  // progress); true too for a ring of another size. Admin DropPartitions
  // refuses such a partition; unset, it refuses every one.
  std::function<bool(const std::string& store, uint32_t partitions, uint32_t p)> replicates;
  // The node's cache directory (layers/cache/directory.h), which the Watch
  // streams of caches subscribe to; the stores' own copies must be
  // TrackingStores over it (ConfigInternal::open_node). Null: Watch is
  // refused with FAILED_PRECONDITION.
  std::shared_ptr<internal::Directory> directory;
  // Who may make which call (server/access.h): every call is checked
  // against its policy. Null: anyone may make any call.
  std::shared_ptr<server::Access> access;
};

class StoreServer {
 public:
  // Starts serving. Throws Unavailable if the address cannot be bound,
  // IoError if a TLS file cannot be read.
  StoreServer(ServerOptions options, std::map<std::string, ServedStore> stores);
  // shutdown() with a one-second grace.
  ~StoreServer();
  StoreServer(const StoreServer&) = delete;
  StoreServer& operator=(const StoreServer&) = delete;

  // The port the server listens on (the chosen one if the options said 0).
  int port() const;
  // Stops accepting calls (gRPC health turns NOT_SERVING), lets in-flight
  // ones finish for up to `grace` (then cancels them, and idle streams),
  // runs the queued engine work, and closes the stores: all of them, then
  // rethrows the first close() that failed. Idempotent.
  void shutdown(std::chrono::milliseconds grace);
  // Blocks until shutdown() has run (from another thread or a signal).
  void wait();
  // Calls served per store since the server started (the Admin Stats
  // service reports the same).
  std::map<std::string, uint64_t> calls() const;
  // Partition pulls (Admin PullPartitions) running now, and what all of
  // them have copied since the server started.
  struct Pulls {
    uint64_t active = 0;
    uint64_t keys = 0;
    uint64_t bytes = 0;
  };
  Pulls pulls() const;
  // Atomic updates this node ran as a key's home, and the writes that
  // carried them (fewer when updates queued up and were combined).
  struct Atomics {
    uint64_t updates = 0;
    uint64_t writes = 0;
  };
  Atomics atomics() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_GRPC_SERVER_H_

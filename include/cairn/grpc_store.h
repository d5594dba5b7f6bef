// The grpc engine: a Store whose calls go to a cairn server (cairn-server)
// over gRPC. It is the leaf of a client's stack: layers above it run in the
// client, the server's stack runs on the server. One channel per target
// list, shared by every thread; a deadline on every call; reads retried
// with backoff when a server is unavailable (writes only if told: a
// retried put may already have been applied). Several targets are balanced
// with gRPC's round_robin policy: the load-balanced entry point of a
// server-routed cluster.
//
// The store it returns is thread-safe. Errors a server raises arrive as the
// same cairn exceptions (cairn/errors.h); a server that cannot be reached
// is Unavailable, a call past its deadline Timeout.

#ifndef CAIRN_GRPC_STORE_H_
#define CAIRN_GRPC_STORE_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "cairn/export.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

struct GrpcOptions {
  // The store's name on the servers.
  std::string store = "default";
  // host:port of each server. Several are balanced round-robin; they must
  // then be IPv4 literals (ipv4:a,b,c) or a single DNS name.
  std::vector<std::string> targets;
  // Deadline of each call (each attempt).
  std::chrono::milliseconds timeout{5000};
  // Attempts after the first for a call that fails with UNAVAILABLE, with
  // backoff doubling from `backoff`. Reads only, unless retry_writes.
  int retries = 2;
  std::chrono::milliseconds backoff{50};
  bool retry_writes = false;
  // Deadline of a whole scan.
  std::chrono::milliseconds scan_timeout{std::chrono::minutes(10)};
  // Largest message received; raise it with the values you store.
  size_t max_message_size = 64 << 20;
  // TLS: the CA that signed the servers' certificates; with a certificate
  // and key too, the client presents them (mutual TLS). Empty: plaintext.
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
  // The name to check servers' certificates against, when it is not the
  // target's host (e.g. tests with a certificate issued to "localhost").
  std::string tls_server_name;
  // A token that proves who the client is to servers with a security
  // policy (docs/security.md), sent as `authorization: Bearer TOKEN` with
  // every call. Sent only over TLS, or to a loopback target: never in the
  // clear across a network.
  std::string token;
  // Reach the servers' own replicas, below their routing layers (set by
  // the routing layer for its replicas, and by admin tools).
  bool replica = false;
  // The non-blocking calls (a routing layer's) ride one long-lived Stream
  // to the server, many callers' requests coalesced into one message,
  // instead of a unary call each: far fewer syscalls and wake-ups per call
  // on both sides. With several targets they stay unary, so round-robin
  // still spreads them. The blocking calls are unary either way.
  bool pipeline = true;
};

// Opens a store on the servers `options.targets` name. Connections are made
// lazily: a server that is down fails the first call, not the open.
// Throws InvalidArgument for bad options (no targets), IoError for TLS
// files that cannot be read.
std::unique_ptr<Store> open_grpc_store(GrpcOptions options);

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_GRPC_STORE_H_

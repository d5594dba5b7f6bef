// RespServer: a Redis-protocol front on a set of stores (RESP2 and RESP3,
// on Boost.Asio), so redis-cli, redis-benchmark and the Redis client of any
// language reach cairn. The commands are in resp_commands.h and
// docs/network.md.
//
// Each connection lives on one of a few I/O threads. A read's worth of
// pipelined commands is parsed and answered in one pass, and the replies go
// out in one write. Commands on stores that never wait are answered on the
// I/O thread itself; the others answer later (see RespCommands), and a
// connection keeps going meanwhile: replies stay in order, and a command
// waits only for earlier ones on the same key that write (or, if it writes,
// any earlier one on its key).
//
// Memory stays bounded: a command is at most max_command bytes, and a
// connection stops reading while max_pending commands await their replies
// or its unsent replies pass max_output bytes (a client that sends without
// reading is left to TCP's flow control, and others are served on).

#ifndef CAIRN_SERVER_RESP_SERVER_H_
#define CAIRN_SERVER_RESP_SERVER_H_

#include <chrono>
#include <memory>
#include <string>

#include "cairn/versioned.h"
#include "server/access.h"
#include "server/serving.h"

namespace cairn {

struct RespServerOptions {
  // host:port to listen on; port 0 lets the OS choose (see port()).
  std::string listen = "127.0.0.1:0";
  // I/O threads; each connection stays on one.
  int threads = 2;
  // Threads for writes that may block (an engine that syncs).
  int workers = 4;
  // What SET and DEL increment in a key's vector clock (see RespOptions).
  NodeId node_id = 0;
  // The largest command, in bytes (a longer one is a protocol error and
  // closes its connection, as in Redis).
  size_t max_command = 64 << 20;
  // Connections beyond this many are closed as they are accepted.
  size_t max_connections = 10000;
  // A connection stops reading while this many of its commands await
  // replies, or while this many bytes of its replies are unsent.
  size_t max_pending = 1024;
  size_t max_output = 4 << 20;

  // TLS: PEM files of the server's certificate chain and private key (both
  // or neither); with a CA as well, clients must present a certificate it
  // signed (mutual TLS). Empty: plaintext.
  std::string tls_cert;
  std::string tls_key;
  std::string tls_ca;
  // Who may do what (server/access.h): AUTH's token names a connection's
  // caller. Null: anyone anything.
  std::shared_ptr<server::Access> access;
};

class RespServer {
 public:
  // Starts serving. Throws Unavailable if the address cannot be bound,
  // InvalidArgument if it is not HOST:PORT or a TLS file cannot be read.
  RespServer(RespServerOptions options, ServedStores stores);
  // shutdown() with a one-second grace.
  ~RespServer();
  RespServer(const RespServer&) = delete;
  RespServer& operator=(const RespServer&) = delete;

  int port() const;
  // Stops accepting connections; a connection between commands closes at
  // once, one with commands in progress sends their replies first, for up
  // to `grace`. Then every connection is closed, and the call returns once
  // no command is left running on a store. The stores stay open: their
  // owner closes them. Idempotent.
  void shutdown(std::chrono::milliseconds grace);

  // Prometheus text: connections, commands, errors.
  std::string metrics() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace cairn

#endif  // CAIRN_SERVER_RESP_SERVER_H_

// A cairn-server process for tests: started with posix_spawn (never fork in
// a process that runs gRPC), on a free loopback port it reports through a
// port file, stopped with real signals.

#ifndef CAIRN_TESTS_TESTING_SERVER_PROCESS_H_
#define CAIRN_TESTS_TESTING_SERVER_PROCESS_H_

#include <sys/types.h>

#include <string>
#include <vector>

#include "layers/grpc/cairn.pb.h"

namespace cairn::testing {

// The cairn-server binary: $CAIRN_SERVER, set by the test runner.
std::string server_binary();

class ServerProcess {
 public:
  // Starts `cairn-server --config CONFIG --node NODE --listen 127.0.0.1:PORT`
  // (PORT 0: any free port) plus `extra` arguments, and waits until it
  // serves. Throws std::runtime_error if it exits or does not report a port
  // within 20 s; its stderr is kept in a file beside the config.
  ServerProcess(const std::string& config, int node = 0, int port = 0,
                std::vector<std::string> extra = {});
  // Stops it with SIGTERM (SIGKILL after 10 s) if still running.
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const { return port_; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  pid_t pid() const { return pid_; }

  // Sends `signal` and waits for the process to exit; returns its exit
  // status (or 128 + the signal that killed it).
  int stop(int signal);
  // What the server wrote to stderr.
  std::string log() const;

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  std::string log_path_;
};

// The server at `address`'s Admin.Stats answer (every store), asked as an
// operator would; a failed call is a test failure (and an empty answer).
rpc::StatsResponse admin_stats(const std::string& address);

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_SERVER_PROCESS_H_

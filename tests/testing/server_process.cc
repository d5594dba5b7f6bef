#include "tests/testing/server_process.h"

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

#include "layers/grpc/cairn.grpc.pb.h"
#include "tests/testing/process.h"

namespace cairn::testing {

std::string server_binary() {
  const char* path = std::getenv("CAIRN_SERVER");
  if (path == nullptr || *path == '\0') {
    throw std::runtime_error("CAIRN_SERVER is not set (the test runner sets it)");
  }
  return path;
}

ServerProcess::ServerProcess(const std::string& config, int node, int port,
                             std::vector<std::string> extra) {
  static int counter = 0;
  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(++counter);
  const std::string port_file = config + ".port-" + tag;
  log_path_ = config + ".log-" + tag;
  ::unlink(port_file.c_str());

  std::vector<std::string> args = {server_binary(), "--config", config, "--node",
                                   std::to_string(node), "--listen",
                                   "127.0.0.1:" + std::to_string(port), "--port-file", port_file,
                                   "--grace-ms", "2000"};
  args.insert(args.end(), extra.begin(), extra.end());
  ::unlink(log_path_.c_str());
  pid_ = spawn_logged(args, log_path_);

  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    std::ifstream in(port_file);
    if (in >> port_) break;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("cairn-server exited before serving:\n" + log());
    }
    if (std::chrono::steady_clock::now() > until) {
      stop(SIGKILL);
      throw std::runtime_error("cairn-server did not report a port in 20 s:\n" + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ::unlink(port_file.c_str());
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) stop(SIGTERM);
}

int ServerProcess::stop(int signal) {
  if (pid_ <= 0) return -1;
  const int status = stop_process(pid_, signal);
  pid_ = -1;
  return status;
}

std::string ServerProcess::log() const { return read_file(log_path_); }

rpc::StatsResponse admin_stats(const std::string& address) {
  auto stub = rpc::Admin::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  rpc::StatsResponse resp;
  const grpc::Status st = stub->Stats(&ctx, rpc::StatsRequest(), &resp);
  EXPECT_TRUE(st.ok()) << address << ": " << st.error_message();
  return st.ok() ? resp : rpc::StatsResponse();
}

}  // namespace cairn::testing

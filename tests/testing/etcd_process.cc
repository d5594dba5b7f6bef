#include "tests/testing/etcd_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <random>
#include <stdexcept>
#include <thread>

#include "cairn/errors.h"
#include "metadata/etcd_client.h"
#include "tests/testing/process.h"

namespace cairn::testing {

namespace {

// A free port below the kernel's ephemeral range (32768 and up): etcd
// restarts on its ports, and while it is down any outgoing connection on
// the machine (another test's, or a client's retry to that very port) may
// be given it as its local port, and etcd cannot bind it again. Seen here:
// "bind: address already in use" on a restart, with the cluster suite
// running beside.
int free_port_below_ephemeral() {
  static std::mt19937 rng(std::random_device{}());
  for (int attempt = 0; attempt < 1000; ++attempt) {
    const int port = std::uniform_int_distribution<int>(20000, 32000)(rng);
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) break;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const bool free = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    if (free) return port;
  }
  throw std::runtime_error("no free port from 20000 to 32000");
}

}  // namespace

EtcdProcess::EtcdProcess(const std::string& dir) : dir_(dir) {
  client_port_ = free_port_below_ephemeral();
  do {
    peer_port_ = free_port_below_ephemeral();
  } while (peer_port_ == client_port_);
  start();
}

// SIGKILL: with a client still connected, etcd 3.4 takes 10 s to stop on
// SIGTERM (measured here), and a test has nothing more to ask of it.
EtcdProcess::~EtcdProcess() {
  if (pid_ > 0) stop(SIGKILL);
}

std::string EtcdProcess::endpoint() const { return "127.0.0.1:" + std::to_string(client_port_); }

std::string EtcdProcess::log() const { return read_file(dir_ + "/etcd.log"); }

void EtcdProcess::stop(int signal) {
  if (pid_ <= 0) return;
  stop_process(pid_, signal);
  pid_ = -1;
}

void EtcdProcess::start() {
  if (pid_ > 0) return;
  const char* binary = std::getenv("CAIRN_ETCD");
  const std::string client = "http://" + endpoint();
  const std::string peer = "http://127.0.0.1:" + std::to_string(peer_port_);
  pid_ = spawn_logged({binary != nullptr && *binary != '\0' ? binary : "/usr/bin/etcd",
                       "--name", "cairn-test", "--data-dir", dir_ + "/etcd",
                       "--listen-client-urls", client, "--advertise-client-urls", client,
                       "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                       "--initial-cluster", "cairn-test=" + peer, "--logger", "zap",
                       "--log-outputs", "stderr", "--log-level", "warn"},
                      dir_ + "/etcd.log");
  internal::EtcdClient probe({.endpoints = {endpoint()}, .timeout = std::chrono::milliseconds(500)});
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  std::string last;
  for (;;) {
    try {
      probe.get("cairn-test-probe");
      return;
    } catch (const Error& e) {
      last = e.what();
    }
    if (wait_for_exit(pid_, std::chrono::milliseconds(0)) >= 0) {
      pid_ = -1;
      throw std::runtime_error("etcd exited before it answered:\n" + log());
    }
    if (std::chrono::steady_clock::now() > until) {
      stop(SIGKILL);
      throw std::runtime_error("etcd did not answer in 20 s (" + last + "):\n" + log());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

}  // namespace cairn::testing

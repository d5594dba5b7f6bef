#include "tests/testing/etcd_process.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <stdexcept>
#include <thread>

#include "cairn/errors.h"
#include "metadata/etcd_client.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/process.h"

namespace cairn::testing {

EtcdProcess::EtcdProcess(const std::string& dir) : dir_(dir) {
  const std::vector<int> ports = free_ports(2);
  client_port_ = ports.at(0);
  peer_port_ = ports.at(1);
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

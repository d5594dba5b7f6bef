// Debian's etcd (etcd-server) as a real process for tests: one member on
// free loopback ports, its data in a directory of the test's; stopped and
// started again with real signals, keeping its ports and data.

#ifndef CAIRN_TESTS_TESTING_ETCD_PROCESS_H_
#define CAIRN_TESTS_TESTING_ETCD_PROCESS_H_

#include <sys/types.h>

#include <string>

namespace cairn::testing {

class EtcdProcess {
 public:
  // Starts etcd ($CAIRN_ETCD, else /usr/bin/etcd) with its data under
  // `dir`, and waits until it answers (20 s at most; throws
  // std::runtime_error with its log if it does not).
  explicit EtcdProcess(const std::string& dir);
  // Stops it with SIGKILL if it runs.
  ~EtcdProcess();
  EtcdProcess(const EtcdProcess&) = delete;
  EtcdProcess& operator=(const EtcdProcess&) = delete;

  // host:port of its client API.
  std::string endpoint() const;
  // Sends `signal` and waits for it to exit.
  void stop(int signal);
  // Starts it again, on the same ports and data, and waits until it answers.
  void start();
  bool running() const { return pid_ > 0; }
  std::string log() const;

 private:
  std::string dir_;
  int client_port_ = 0;
  int peer_port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_ETCD_PROCESS_H_

#include "tests/testing/local_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <stdexcept>

#include "layers/grpc/grpc_store.h"

namespace cairn::testing {

const char* to_string(Deployment d) {
  return d == Deployment::kSmartClient ? "SmartClient" : "ServerRouted";
}

std::vector<int> free_ports(int n) {
  // Every socket stays bound until all ports are read: a port closed at
  // once can be handed out again by the next bind (a cluster config then
  // names one address twice, as a CI run once did).
  std::vector<int> fds, ports;
  auto close_all = [&] {
    for (int fd : fds) ::close(fd);
  };
  for (int i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
      close_all();
      throw std::runtime_error("socket() failed");
    }
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      close_all();
      throw std::runtime_error("cannot find a free port");
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  close_all();
  return ports;
}

int free_port() { return free_ports(1).at(0); }

LocalCluster::LocalCluster(std::string dir, ClusterOptions options)
    : dir_(std::move(dir)), options_(std::move(options)), config_path_(dir_ + "/cluster.yaml") {
  const int n = options_.nodes;
  std::string yaml = "cluster:\n  partitions: " + std::to_string(options_.partitions) +
                     "\n  hints: [{engine: {lmdb: {path: \"" + dir_ +
                     "/hints-{node}\", durability: nosync}}}]\n  nodes:\n";
  std::string targets;
  ports_ = free_ports(n);
  for (int i = 0; i < n; ++i) {
    yaml += "    - {id: " + std::to_string(i) + ", address: " + address(i) + "}\n";
    targets += (targets.empty() ? "" : ", ") + address(i);
  }
  const std::string route = "{route: {timeout_ms: " + std::to_string(options_.timeout_ms) +
                            ", ban_ms: " + std::to_string(options_.probe_interval_ms) +
                            ", probe_interval_ms: " + std::to_string(options_.probe_interval_ms) +
                            "}}";
  std::string stack =  // below the route, if any
      "{engine: {lmdb: {path: \"" + dir_ + "/node-{node}/{store}\", durability: nosync}}}";
  for (auto it = options_.node_layers.rbegin(); it != options_.node_layers.rend(); ++it) {
    stack = *it + ", " + stack;
  }
  const std::string grpc_timeout = "timeout_ms: " + std::to_string(options_.timeout_ms + 2000);
  std::vector<std::pair<std::string, Replication>> stores = {{"default", options_.replication}};
  for (const auto& s : options_.more_stores) stores.push_back(s);
  yaml += "stores:\n";
  for (const auto& [name, r] : stores) {
    yaml += "  " + name + ":\n    replication: {n: " + std::to_string(r.n) + ", r: " +
            std::to_string(r.r) + ", w: " + std::to_string(r.w) + "}\n";
    if (options_.deployment == Deployment::kSmartClient) {
      yaml += "    node: [" + stack + "]\n    client: [" + route + ", {engine: {grpc: {" +
              grpc_timeout + ", retries: 0}}}]\n";
    } else {
      yaml += "    node: [" + route + ", " + stack + "]\n    client: [{engine: {grpc: {targets: [" +
              targets + "], " + grpc_timeout + "}}}]\n";
    }
  }
  std::ofstream(config_path_) << yaml;
  servers_.resize(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) start(i);
}

LocalCluster::~LocalCluster() {
  for (int i = 0; i < options_.nodes; ++i) {
    if (running(i)) stop(i, SIGTERM);
  }
}

std::string LocalCluster::address(int node) const {
  return "127.0.0.1:" + std::to_string(ports_[static_cast<size_t>(node)]);
}

void LocalCluster::start(int node) {
  auto& slot = servers_[static_cast<size_t>(node)];
  if (slot) throw std::logic_error("node " + std::to_string(node) + " is running");
  slot = std::make_unique<ServerProcess>(config_path_, node, ports_[static_cast<size_t>(node)],
                                         options_.server_args);
}

int LocalCluster::stop(int node, int signal) {
  auto& slot = servers_[static_cast<size_t>(node)];
  if (!slot) return -1;
  const int status = slot->stop(signal);
  slot.reset();
  return status;
}

std::string LocalCluster::log(int node) const {
  const auto& slot = servers_[static_cast<size_t>(node)];
  return slot ? slot->log() : "(not running)";
}

std::unique_ptr<Store> LocalCluster::client(const std::string& store) const {
  return config().open(store);
}

std::unique_ptr<Store> LocalCluster::replica(int node, const std::string& store) const {
  GrpcOptions o;
  o.store = store;
  o.targets = {address(node)};
  o.replica = true;
  o.timeout = std::chrono::seconds(10);
  return std::make_unique<GrpcStore>(std::move(o));
}

}  // namespace cairn::testing

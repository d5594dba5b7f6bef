#include "tests/testing/local_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <stdexcept>

#include "cairn/forwarding_store.h"
#include "core/metadata_tag.h"
#include "layers/grpc/grpc_store.h"
#include "metadata/etcd_client.h"
#include "tests/testing/process.h"

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
  ports_ = free_ports(n + options_.spare);
  for (int i = 0; i < n; ++i) {
    yaml += "    - {id: " + std::to_string(i) + ", address: " + address(i) + "}\n";
    targets += (targets.empty() ? "" : ", ") + address(i);
  }
  std::string route = "{route: {timeout_ms: " + std::to_string(options_.timeout_ms) +
                      ", ban_ms: " + std::to_string(options_.probe_interval_ms) +
                      ", probe_interval_ms: " + std::to_string(options_.probe_interval_ms);
  for (const std::string& p : options_.route_params) route += ", " + p;
  route += "}}";
  for (auto it = options_.top_layers.rbegin(); it != options_.top_layers.rend(); ++it) {
    route = *it + ", " + route;
  }
  std::string stack =  // below the route, if any
      options_.engine.empty()
          ? "{engine: {lmdb: {path: \"" + dir_ + "/node-{node}/{store}\", durability: nosync}}}"
          : "{engine: " + options_.engine + "}";
  for (size_t at; (at = stack.find("{dir}")) != std::string::npos;) stack.replace(at, 5, dir_);
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
              targets + "], " + grpc_timeout +
              (options_.client_retry_writes ? ", retry_writes: true" : "") + "}}}]\n";
    }
  }
  if (options_.etcd.empty()) {
    std::ofstream(config_path_) << yaml;
  } else {
    // The whole config into etcd, as `cairn admin init` puts it; the file
    // only names etcd.
    std::ofstream(dir_ + "/cluster-in-etcd.yaml") << yaml;
    internal::EtcdClient etcd({.endpoints = {options_.etcd}});
    const std::string key = options_.etcd_prefix + "config";
    const std::vector<internal::EtcdClient::Write> put = {{.key = key, .value = yaml}};
    if (!etcd.commit_if(key, 0, put)) throw std::runtime_error("etcd holds a config at " + key);
    std::ofstream(config_path_) << "cluster:\n  etcd: {endpoints: [" << options_.etcd
                                << "], prefix: \"" << options_.etcd_prefix
                                << "\", lease_seconds: " << options_.lease_seconds << "}\n";
  }
  servers_.resize(static_cast<size_t>(n + options_.spare));
  for (int i = 0; i < n; ++i) start(i);
}

LocalCluster::~LocalCluster() {
  for (int i = 0; i < static_cast<int>(servers_.size()); ++i) {
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

pid_t LocalCluster::cli_async(const std::vector<std::string>& args,
                              const std::string& log) const {
  const char* cli = std::getenv("CAIRN_CLI");
  if (cli == nullptr) throw std::runtime_error("CAIRN_CLI is not set (meson sets it)");
  std::vector<std::string> argv = {cli, "--config", config_path_};
  argv.insert(argv.end(), args.begin(), args.end());
  return spawn_logged(argv, log);
}

pid_t LocalCluster::admin_async(const std::vector<std::string>& args,
                                const std::string& log) const {
  std::vector<std::string> with = {"admin"};
  with.insert(with.end(), args.begin(), args.end());
  return cli_async(with, log);
}

int LocalCluster::admin(const std::vector<std::string>& args, std::string* output,
                        std::chrono::milliseconds timeout) const {
  std::vector<std::string> with = {"admin"};
  with.insert(with.end(), args.begin(), args.end());
  return cli(with, output, timeout);
}

int LocalCluster::cli(const std::vector<std::string>& args, std::string* output,
                      std::chrono::milliseconds timeout) const {
  static std::atomic<int> runs{0};
  const std::string log = dir_ + "/cli-" + std::to_string(runs++) + ".log";
  const pid_t pid = cli_async(args, log);
  int status = wait_for_exit(pid, timeout);
  if (status < 0) {
    ::kill(pid, SIGKILL);
    status = wait_for_exit(pid, std::chrono::seconds(10));
  }
  if (output != nullptr) *output = read_file(log);
  return status;
}

namespace {

// A node's own copy read as it is: calls tagged as not routed, so that a
// node whose metadata moved on answers them (core/metadata_tag.h).
class DirectReplica final : public ForwardingStore {
 public:
  using ForwardingStore::ForwardingStore;
  void get_into(std::string_view key, std::vector<Versioned>* out) override {
    internal::MetadataTag direct(INT64_MAX);
    ForwardingStore::get_into(key, out);
  }
  std::map<std::string, std::vector<Versioned>> get_all(std::span<const std::string> keys) override {
    internal::MetadataTag direct(INT64_MAX);
    return ForwardingStore::get_all(keys);
  }
  PutResult put_stamped(std::string_view key, const Versioned& value, PutReply* stored) override {
    internal::MetadataTag direct(INT64_MAX);
    return ForwardingStore::put_stamped(key, value, stored);
  }
  bool remove(std::string_view key, const VectorClock& version) override {
    internal::MetadataTag direct(INT64_MAX);
    return ForwardingStore::remove(key, version);
  }
  std::vector<VectorClock> versions(std::string_view key) override {
    internal::MetadataTag direct(INT64_MAX);
    return ForwardingStore::versions(key);
  }
  std::unique_ptr<StoreIterator> scan() override {
    internal::MetadataTag direct(INT64_MAX);
    return ForwardingStore::scan();
  }
};

}  // namespace

std::unique_ptr<Store> LocalCluster::replica(int node, const std::string& store) const {
  GrpcOptions o;
  o.store = store;
  o.targets = {address(node)};
  o.replica = true;
  o.timeout = std::chrono::seconds(10);
  return std::make_unique<DirectReplica>(std::make_unique<GrpcStore>(std::move(o)));
}

}  // namespace cairn::testing

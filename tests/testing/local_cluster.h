// LocalCluster: S cairn-server processes on loopback for tests, from one
// generated config, in either deployment:
//
//   kSmartClient   nodes run their engine; the client's stack routes
//                  (`client: [route, grpc]`), one hop to each replica.
//   kServerRouted  nodes route (`node: [route, engine]`); the client talks
//                  to any node (`client: [grpc: {targets: every node}]`).
//
// Nodes have ids 0..S-1 and ports chosen free when the cluster is made;
// each keeps its data (LMDB, nosync) and its hints under the directory, so
// a node restarted, or a cluster made again over the same directory, finds
// them. Nodes are stopped and killed with real signals.

#ifndef CAIRN_TESTS_TESTING_LOCAL_CLUSTER_H_
#define CAIRN_TESTS_TESTING_LOCAL_CLUSTER_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cairn/config.h"
#include "cairn/store.h"
#include "tests/testing/server_process.h"

namespace cairn::testing {

enum class Deployment { kSmartClient, kServerRouted };

const char* to_string(Deployment d);

struct ClusterOptions {
  int nodes = 3;
  Deployment deployment = Deployment::kSmartClient;
  Replication replication{3, 2, 2};
  int partitions = 16;
  // The route layer's timeout and how often it probes banned nodes.
  int timeout_ms = 3000;
  int probe_interval_ms = 100;
  // More stores, as YAML lines under `stores:` (each with its own
  // replication); they get the same node and client stacks.
  std::vector<std::pair<std::string, Replication>> more_stores;
  // Layers (YAML flow items, e.g. "stats") every node runs above its
  // engine, below its `route` if it has one: they see each replica call.
  std::vector<std::string> node_layers;
  // Extra cairn-server arguments for every node.
  std::vector<std::string> server_args;
  // An etcd endpoint (host:port): the config goes into it, under
  // `etcd_prefix`, and nodes and clients start from a file naming it
  // (leases of `lease_seconds`). Empty: the config file lists the cluster.
  std::string etcd;
  std::string etcd_prefix = "/cairn/test/";
  int lease_seconds = 3;
  // Server-routed clients retry a write whose server went away (with one
  // write id, so a retry that lands twice is one write).
  bool client_retry_writes = false;
  // Layers (YAML flow items) above `route`: in the nodes' stacks when
  // they route, in the client's when it does (e.g. "{ttl: {seconds: 5}}").
  std::vector<std::string> top_layers;
  // More parameters of `route`, as YAML map entries ("reap_grace_ms: 500").
  std::vector<std::string> route_params;
  // The engine below the layers, as YAML flow ("{dir}" is the cluster's
  // directory), e.g. `{readonly: {path: "{dir}/node-{node}/{store}"}}`.
  // Empty: LMDB (nosync) under the directory.
  std::string engine;
  // Nodes beyond `nodes`, not in the config: their ids follow, each with a
  // port chosen now, started (start()) to join the cluster in a move.
  int spare = 0;
};

// A TCP port on 127.0.0.1 that was free a moment ago.
int free_port();
// `n` distinct such ports.
std::vector<int> free_ports(int n);

class LocalCluster {
 public:
  // Writes the config under `dir` and starts every node.
  LocalCluster(std::string dir, ClusterOptions options);
  // Stops the nodes still running with SIGTERM.
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  const std::string& config_path() const { return config_path_; }
  Config config() const { return Config::load(config_path_); }
  // The nodes of the config as made (spares not counted).
  int size() const { return options_.nodes; }
  std::string address(int node) const;

  void start(int node);
  // Sends `signal` and waits for the node to exit; its exit status.
  int stop(int node, int signal);
  bool running(int node) const { return servers_[static_cast<size_t>(node)] != nullptr; }
  // The node's process id, to signal it without waiting (SIGSTOP, SIGCONT).
  // REQUIRES: running(node).
  pid_t pid(int node) const { return servers_[static_cast<size_t>(node)]->pid(); }
  std::string log(int node) const;

  // A client's stack of store `store`, as the config builds it.
  std::unique_ptr<Store> client(const std::string& store = "default") const;
  // Node `node`'s own replica of the store (below any routing layer): what
  // an admin scans to see what that node holds, whatever metadata version
  // the node routes by.
  std::unique_ptr<Store> replica(int node, const std::string& store = "default") const;

  // Runs `cairn --config CONFIG admin ARGS...` ($CAIRN_CLI) to its end
  // (`timeout` at most, then SIGKILL); its exit status, and what it
  // printed (stdout and stderr) in `*output`.
  int admin(const std::vector<std::string>& args, std::string* output,
            std::chrono::milliseconds timeout = std::chrono::minutes(3)) const;
  // Starts the same without waiting: its pid; its output goes to `log`.
  pid_t admin_async(const std::vector<std::string>& args, const std::string& log) const;
  // `cairn --config CONFIG ARGS...`, as admin() runs it.
  int cli(const std::vector<std::string>& args, std::string* output,
          std::chrono::milliseconds timeout = std::chrono::minutes(3)) const;
  pid_t cli_async(const std::vector<std::string>& args, const std::string& log) const;

 private:
  std::string dir_;
  ClusterOptions options_;
  std::string config_path_;
  std::vector<int> ports_;
  std::vector<std::unique_ptr<ServerProcess>> servers_;
};

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_LOCAL_CLUSTER_H_

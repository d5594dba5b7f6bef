// Runs the conformance suite through the network: a GrpcStore talking to a
// real cairn-server process on loopback. Each test starts its own server
// over its own directory; closing the store stops the server with SIGTERM,
// so reopening a persistent store restarts the server on the same data.

#include <signal.h>

#include <fstream>

#include "cairn/forwarding_store.h"
#include "layers/grpc/grpc_store.h"
#include "tests/conformance/conformance.h"
#include "tests/testing/local_cluster.h"
#include "tests/testing/server_process.h"

namespace cairn::testing {
namespace {

// The client end of a store, owning the server it talks to.
class ServerBackedStore final : public ForwardingStore {
 public:
  ServerBackedStore(std::unique_ptr<ServerProcess> server, std::unique_ptr<GrpcStore> client)
      : ForwardingStore(std::move(client)), server_(std::move(server)) {}
  ~ServerBackedStore() override { close(); }

  void close() override {
    ForwardingStore::close();
    if (server_) {
      // A clean stop: the server drains and closes its engine.
      const int status = server_->stop(SIGTERM);
      EXPECT_EQ(status, 0) << "cairn-server did not stop cleanly:\n" << server_->log();
      server_.reset();
    }
  }

 private:
  std::unique_ptr<ServerProcess> server_;
};

std::unique_ptr<Store> served(const std::string& dir, const std::string& engine) {
  const std::string config = dir + "/server.yaml";
  std::ofstream(config) << "stores:\n  s:\n    node: [{engine: " << engine << "}]\n";
  auto server = std::make_unique<ServerProcess>(config);
  GrpcOptions o;
  o.store = "s";
  o.targets = {server->address()};
  o.timeout = std::chrono::seconds(20);
  return std::make_unique<ServerBackedStore>(std::move(server), std::make_unique<GrpcStore>(o));
}

// The client end of a 3-node cluster, owning its servers.
class ClusterBackedStore final : public ForwardingStore {
 public:
  ClusterBackedStore(std::unique_ptr<LocalCluster> cluster, std::unique_ptr<Store> client)
      : ForwardingStore(std::move(client)), cluster_(std::move(cluster)) {}
  ~ClusterBackedStore() override { close(); }

  void close() override {
    ForwardingStore::close();
    if (cluster_) {
      for (int i = 0; i < cluster_->size(); ++i) {
        const std::string log = cluster_->log(i);
        EXPECT_EQ(cluster_->stop(i, SIGTERM), 0) << "node " << i << " did not stop cleanly:\n" << log;
      }
      cluster_.reset();
    }
  }

 private:
  std::unique_ptr<LocalCluster> cluster_;
};

std::unique_ptr<Store> cluster(const std::string& dir, Deployment d) {
  ClusterOptions o;
  o.deployment = d;
  auto c = std::make_unique<LocalCluster>(dir, o);
  auto client = c->client();
  return std::make_unique<ClusterBackedStore>(std::move(c), std::move(client));
}

const StoreFactory kStores[] = {
    {"grpc_server_memory", [](const std::string& d) { return served(d, "memory"); }, false},
    {"grpc_server_lmdb",
     [](const std::string& d) {
       return served(d, "{lmdb: {path: \"" + d + "/data\", durability: nosync}}");
     },
     true},
    // Issue 5's scenario 1: the suite through 3 nodes, N=3 R=2 W=2, routed
    // by the client and by the nodes.
    {"cluster3_smart_client",
     [](const std::string& d) { return cluster(d, Deployment::kSmartClient); }, true, 511,
     16 << 20, false, /*stamps=*/true, /*tombstones=*/true},
    {"cluster3_server_routed",
     [](const std::string& d) { return cluster(d, Deployment::kServerRouted); }, true, 511,
     16 << 20, false, /*stamps=*/true, /*tombstones=*/true},
};

INSTANTIATE_TEST_SUITE_P(Network, Conformance, ::testing::ValuesIn(kStores), factory_name);

}  // namespace
}  // namespace cairn::testing

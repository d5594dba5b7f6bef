// Runs the conformance suite through the network: a GrpcStore talking to a
// real cairn-server process on loopback. Each test starts its own server
// over its own directory; closing the store stops the server with SIGTERM,
// so reopening a persistent store restarts the server on the same data.

#include <signal.h>

#include <fstream>

#include "cairn/forwarding_store.h"
#include "layers/grpc/grpc_store.h"
#include "tests/conformance/conformance.h"
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

const StoreFactory kStores[] = {
    {"grpc_server_memory", [](const std::string& d) { return served(d, "memory"); }, false},
    {"grpc_server_lmdb",
     [](const std::string& d) {
       return served(d, "{lmdb: {path: \"" + d + "/data\", durability: nosync}}");
     },
     true},
};

INSTANTIATE_TEST_SUITE_P(Network, Conformance, ::testing::ValuesIn(kStores), factory_name);

}  // namespace
}  // namespace cairn::testing

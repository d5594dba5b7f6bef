#include "routing/replica.h"

#include "layers/grpc/grpc_store.h"

namespace cairn {

std::unique_ptr<Store> open_node_replica(const std::string& address, const std::string& store,
                                         std::chrono::milliseconds timeout, const ServerTls& tls) {
  GrpcOptions o;
  o.store = store;
  o.targets = {address};
  o.replica = true;
  o.timeout = timeout;
  o.retries = 0;
  o.tls_ca = tls.ca;
  o.tls_cert = tls.cert;
  o.tls_key = tls.key;
  return std::make_unique<GrpcStore>(std::move(o));
}

}  // namespace cairn

// The `security:` section of a config (docs/security.md): who may use a
// cluster's servers and what each may do. Parsed with the rest of the
// config (core/config.cc); enforced by cairn-server's fronts
// (server/access.h). Internal: not an installed header.
//
//   security:
//     node_name: "node{node}"      # the name each node's certificate carries
//     principals:
//       alice:
//         tokens: ["sha256:9f86d0..."]   # `cairn admin token` makes one
//         certs: [alice]                  # client certificate names (SAN or CN)
//         stores: {carts: [read, write], "*": [read]}
//
// or `security: {open: true}`: anyone who reaches a port may do anything
// (what a server without the section allows on loopback only).

#ifndef CAIRN_CORE_SECURITY_CONFIG_H_
#define CAIRN_CORE_SECURITY_CONFIG_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace cairn::internal {

// What a principal may do with a store; a bit set.
enum Permission : uint8_t {
  kNoPermission = 0,
  kRead = 1,   // get, get_all, versions, watch (a near cache)
  kWrite = 2,  // put, delete, atomic updates
  kAdmin = 4,  // scan, and the admin's operations (read-only versions, rebalancing)
};

struct PrincipalDef {
  std::string name;
  // SHA-256 digests (32 raw bytes each) of the tokens that prove it.
  std::vector<std::string> token_sha256;
  // Names a client certificate signed by the cluster CA may carry (a
  // subject alternative name, or the common name) to prove it.
  std::vector<std::string> certs;
  // Per store ("*": every store), what it may do. The most specific entry
  // decides: a store's own entry, else "*", else nothing.
  std::vector<std::pair<std::string, uint8_t>> stores;
};

struct SecurityConfig {
  bool present = false;  // the config has a `security:` section
  bool open = false;     // `open: true`: no checks at all, said in words
  // The name a node's certificate carries; {node} expands to its id.
  std::string node_name = "node{node}";
  std::vector<PrincipalDef> principals;
};

// "read,write" and the like, for messages.
std::string permission_names(uint8_t permissions);

}  // namespace cairn::internal

#endif  // CAIRN_CORE_SECURITY_CONFIG_H_

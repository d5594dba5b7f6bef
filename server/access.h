// Who may do what on a server (docs/security.md): identifies a caller
// from what it proved — a token, or the names on a client certificate the
// cluster CA signed — and decides whether it may read, write or administer
// a store, or make a node's calls.
//
// A caller is one of:
//   - a node of the cluster: its certificate carries the name the config's
//     `security: node_name` gives a node of the cluster metadata
//     ("node{node}": node1, node2, ...). Nodes may make every call,
//     replica calls and hints among them.
//   - a principal of `security: principals`, proved by a token (its
//     SHA-256 digest is in the config) or by a certificate name it lists;
//     it may do what its `stores:` grant.
//   - anonymous: nothing proved. Allowed everything when the server is
//     open (no `security:` on loopback, or `security: {open: true}`),
//     otherwise nothing.
//
// An AccessPolicy is immutable; Access holds the current one and swaps in
// a new one when the config is reloaded (SIGHUP, or metadata in etcd
// changing), so calls in flight finish under the policy they began with.

#ifndef CAIRN_SERVER_ACCESS_H_
#define CAIRN_SERVER_ACCESS_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "cairn/config.h"
#include "core/security_config.h"

struct x509_st;  // OpenSSL's X509

namespace cairn::server {

using internal::Permission;

// The names a verified client certificate carries, as gRPC reports them:
// its subject alternative names (DNS and URI names as they are, IP
// addresses as text), or its common name if it has none.
std::vector<std::string> certificate_names(const x509_st* cert);

// A new random token (256 bits, base64url, prefixed "cairn_"), and the
// digest the config keeps of one ("sha256:" and 64 hex digits).
std::string new_token();
std::string token_digest(std::string_view token);
// The token an `Authorization` header (HTTP) or `authorization` metadata
// (gRPC) carries: what follows "Bearer ", or any other value whole (which
// then matches no principal).
inline std::string_view bearer_token(std::string_view header) {
  constexpr std::string_view kBearer = "Bearer ";
  return header.substr(0, kBearer.size()) == kBearer ? header.substr(kBearer.size()) : header;
}

struct Caller {
  enum class Kind : uint8_t { kAnonymous, kPrincipal, kNode };
  Kind kind = Kind::kAnonymous;
  int principal = -1;  // index into the policy's principals
  std::string name;    // principal name, or "node N", or "anonymous"
  // A token was given and matched nothing: the call is refused as
  // UNAUTHENTICATED however open the server is, so a typo never passes
  // for anonymous.
  bool bad_token = false;
};

// What a check decided: allowed, or refused with a reason that names the
// caller, the operation and the store.
struct Decision {
  enum class Kind : uint8_t { kAllowed, kUnauthenticated, kDenied };
  Kind kind = Kind::kAllowed;
  std::string reason;
  bool allowed() const { return kind == Kind::kAllowed; }
};

class AccessPolicy {
 public:
  // From the config's `security:` and cluster. `loopback_only` says
  // whether every front listens on loopback: without `security:`, such a
  // server is open (the demo), and one reachable beyond it is refused at
  // startup (check_startup).
  AccessPolicy(const Config& config, bool loopback_only);

  // Whether no check is made at all.
  bool open() const { return open_; }
  // Whether callers prove themselves by token (else only certificates).
  bool has_tokens() const { return !tokens_.empty(); }

  // The caller of a request that carried `token` (empty: none) over a
  // connection whose verified client certificate carries `cert_names`
  // (subject alternative names, or the common name when it has none).
  Caller identify(std::string_view token, const std::vector<std::string>& cert_names) const;

  // May `caller` do `need` on `store`? `op` names the operation in the
  // refusal ("put", "scan").
  Decision check(const Caller& caller, std::string_view store, uint8_t need,
                 std::string_view op) const;
  // What `caller` may do on `store` (kRead | kWrite | kAdmin bits): what
  // check() tests, for a connection that keeps it while its caller, store
  // and policy stay the same.
  uint8_t granted(const Caller& caller, std::string_view store) const;
  // May `caller` make a call of no store that any caller the policy
  // knows may make (list the stores, read metrics, watch for a cache)?
  Decision check_known(const Caller& caller, std::string_view op) const;
  // May `caller` make a node's call (`op`: "replica put", "PutHint")?
  // Nodes only; a principal with `admin` on every store ("*") also may
  // when `admins_too` (the admin's cluster operations: read-only
  // versions, moving partitions, reading a replica).
  Decision check_node(const Caller& caller, std::string_view op, bool admins_too) const;

  // Why a server with this policy must not start (empty: it may):
  // reachable beyond loopback with nothing to check callers by.
  std::string startup_refusal(bool tls, bool client_certs) const;

 private:
  Decision refuse(const Caller& caller, std::string_view what) const;

  bool open_ = false;
  bool present_ = false;
  bool loopback_only_ = true;
  std::vector<internal::PrincipalDef> principals_;
  std::map<std::string, int> tokens_;  // digest (32 bytes) -> principal
  std::map<std::string, int> certs_;   // certificate name -> principal
  std::map<std::string, NodeId> nodes_;  // a node's certificate name -> its id
};

// The current policy, replaced whole on reload, and the record of what
// it refused. Thread-safe.
class Access {
 public:
  explicit Access(std::shared_ptr<const AccessPolicy> policy)
      : open_(policy->open()), policy_(std::move(policy)) {}
  std::shared_ptr<const AccessPolicy> policy() const {
    std::lock_guard lock(mu_);
    return policy_;
  }
  void replace(std::shared_ptr<const AccessPolicy> policy) {
    std::lock_guard lock(mu_);
    open_.store(policy->open(), std::memory_order_relaxed);
    policy_ = std::move(policy);
    generation_.fetch_add(1, std::memory_order_release);
  }
  // Counts replace() calls: a connection that took the policy at
  // generation g may keep using it, without the lock, while this is g.
  // (Read it before policy(): a replacement in between is then seen on the
  // next look, never missed.)
  uint64_t generation() const { return generation_.load(std::memory_order_acquire); }
  // Whether the current policy is open: the fast path of a call that
  // carries no token (no lock, no reference count).
  bool open() const { return open_.load(std::memory_order_relaxed); }

  // Counts a refusal on `front` ("grpc", "http", "resp") and logs it: one
  // warning line per refusal, at most 10 a second; past that, one line a
  // second says how many went unlogged.
  void refused(std::string_view front, const Decision& d);
  struct Refusals {
    uint64_t unauthenticated = 0;
    uint64_t denied = 0;
  };
  // By front.
  std::map<std::string, Refusals> refusals() const;

 private:
  std::atomic<bool> open_;
  std::atomic<uint64_t> generation_{0};
  mutable std::mutex mu_;
  std::shared_ptr<const AccessPolicy> policy_;
  std::map<std::string, Refusals> refusals_;       // under mu_
  int64_t log_second_ = 0;                        // under mu_
  int logged_this_second_ = 0;                    // under mu_
  uint64_t unlogged_ = 0;                         // under mu_
};

}  // namespace cairn::server

#endif  // CAIRN_SERVER_ACCESS_H_

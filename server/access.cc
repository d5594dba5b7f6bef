#include "server/access.h"

#include <arpa/inet.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "cairn/versioned.h"
#include "core/config_internal.h"

namespace cairn::server {

namespace {

std::string sha256(std::string_view bytes) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), out, &size, EVP_sha256(), nullptr) != 1 || size != 32) {
    throw IoError("SHA-256 failed (OpenSSL)");
  }
  return std::string(reinterpret_cast<const char*>(out), size);
}

const char* need_name(uint8_t need) {
  switch (need) {
    case internal::kRead:
      return "read";
    case internal::kWrite:
      return "write";
    case internal::kAdmin:
      return "admin";
    default:
      return "access";
  }
}

}  // namespace

std::vector<std::string> certificate_names(const x509_st* cert) {
  std::vector<std::string> out;
  if (cert == nullptr) return out;
  auto* sans = static_cast<GENERAL_NAMES*>(
      X509_get_ext_d2i(const_cast<X509*>(cert), NID_subject_alt_name, nullptr, nullptr));
  if (sans != nullptr) {
    for (int i = 0; i < sk_GENERAL_NAME_num(sans); ++i) {
      const GENERAL_NAME* n = sk_GENERAL_NAME_value(sans, i);
      if (n->type == GEN_DNS || n->type == GEN_URI || n->type == GEN_EMAIL) {
        const ASN1_STRING* s = n->d.ia5;
        out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                         static_cast<size_t>(ASN1_STRING_length(s)));
      } else if (n->type == GEN_IPADD) {
        const ASN1_OCTET_STRING* ip = n->d.iPAddress;
        char text[INET6_ADDRSTRLEN] = {};
        const int len = ASN1_STRING_length(ip);
        if ((len == 4 || len == 16) &&
            inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(ip), text,
                      sizeof text) != nullptr) {
          out.emplace_back(text);
        }
      }
    }
    GENERAL_NAMES_free(sans);
  }
  if (out.empty()) {
    const X509_NAME* subject = X509_get_subject_name(cert);
    const int at = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
    if (at >= 0) {
      const ASN1_STRING* cn = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, at));
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(cn)),
                       static_cast<size_t>(ASN1_STRING_length(cn)));
    }
  }
  return out;
}

std::string new_token() {
  unsigned char raw[32];
  if (RAND_bytes(raw, sizeof raw) != 1) throw IoError("cannot draw a random token (OpenSSL RAND_bytes)");
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out = "cairn_";
  // base64url without padding: 6 bits at a time.
  uint32_t acc = 0;
  int bits = 0;
  for (unsigned char b : raw) {
    acc = (acc << 8) | b;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kAlphabet[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(kAlphabet[(acc << (6 - bits)) & 63]);
  OPENSSL_cleanse(raw, sizeof raw);
  return out;
}

std::string token_digest(std::string_view token) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned char c : sha256(token)) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

AccessPolicy::AccessPolicy(const Config& config, bool loopback_only)
    : loopback_only_(loopback_only) {
  const internal::SecurityConfig& sec = ConfigInternal::security(config);
  present_ = sec.present;
  open_ = sec.present ? sec.open : loopback_only;
  principals_ = sec.principals;
  for (size_t i = 0; i < principals_.size(); ++i) {
    for (const std::string& digest : principals_[i].token_sha256) {
      if (!tokens_.emplace(digest, static_cast<int>(i)).second) {
        throw InvalidArgument("security: principals '" + principals_[tokens_[digest]].name +
                              "' and '" + principals_[i].name + "' list the same token");
      }
    }
    for (const std::string& name : principals_[i].certs) {
      if (!certs_.emplace(name, static_cast<int>(i)).second) {
        throw InvalidArgument("security: principals '" + principals_[certs_[name]].name + "' and '" +
                              principals_[i].name + "' list the same certificate name '" + name +
                              "'");
      }
    }
  }
  const ClusterInfo& cluster = config.cluster();
  for (const auto* list : {&cluster.nodes, &cluster.moving_to}) {
    for (const NodeInfo& n : *list) nodes_.emplace(ConfigInternal::with_node(sec.node_name, n.id), n.id);
  }
  for (const auto& [name, id] : nodes_) {
    if (certs_.contains(name)) {
      throw InvalidArgument("security: certificate name '" + name + "' is node " +
                            std::to_string(id) + "'s; a principal cannot list it");
    }
  }
}

Caller AccessPolicy::identify(std::string_view token,
                              const std::vector<std::string>& cert_names) const {
  Caller c;
  // A certificate the CA signed with a node's name is that node: its
  // token, if any, does not make it less.
  for (const std::string& name : cert_names) {
    if (auto it = nodes_.find(name); it != nodes_.end()) {
      c.kind = Caller::Kind::kNode;
      c.name = "node " + std::to_string(it->second);
      return c;
    }
  }
  if (!token.empty()) {
    // A map lookup by the token's digest: what it compares is a SHA-256
    // of the secret, which reveals nothing of the stored digests' values.
    if (auto it = tokens_.find(sha256(token)); it != tokens_.end()) {
      c.kind = Caller::Kind::kPrincipal;
      c.principal = it->second;
      c.name = principals_[static_cast<size_t>(it->second)].name;
      return c;
    }
    c.bad_token = true;
    c.name = "anonymous";
    return c;
  }
  for (const std::string& name : cert_names) {
    if (auto it = certs_.find(name); it != certs_.end()) {
      c.kind = Caller::Kind::kPrincipal;
      c.principal = it->second;
      c.name = principals_[static_cast<size_t>(it->second)].name;
      return c;
    }
  }
  c.name = cert_names.empty() ? "anonymous" : "certificate '" + cert_names.front() + "'";
  return c;
}

Decision AccessPolicy::refuse(const Caller& caller, std::string_view what) const {
  Decision d;
  if (caller.bad_token) {
    d.kind = Decision::Kind::kUnauthenticated;
    d.reason = "the token matches no principal of this server's security config";
  } else if (caller.kind == Caller::Kind::kAnonymous) {
    d.kind = Decision::Kind::kUnauthenticated;
    d.reason = caller.name == "anonymous"
                   ? "this server needs a token or a client certificate to " + std::string(what)
                   : caller.name + " names no principal or node of this server's security config; "
                                   "it may not " + std::string(what);
  } else {
    d.kind = Decision::Kind::kDenied;
    d.reason = caller.name + " may not " + std::string(what);
  }
  return d;
}

uint8_t AccessPolicy::granted(const Caller& caller, std::string_view store) const {
  constexpr uint8_t kAll = internal::kRead | internal::kWrite | internal::kAdmin;
  if (caller.bad_token) return internal::kNoPermission;
  if (open_ || caller.kind == Caller::Kind::kNode) return kAll;
  if (caller.kind != Caller::Kind::kPrincipal) return internal::kNoPermission;
  const internal::PrincipalDef& p = principals_[static_cast<size_t>(caller.principal)];
  uint8_t granted = internal::kNoPermission;
  bool specific = false;
  for (const auto& [name, perms] : p.stores) {
    if (name == store) {
      granted = perms;
      specific = true;
    } else if (name == "*" && !specific) {
      granted = perms;
    }
  }
  return granted;
}

Decision AccessPolicy::check(const Caller& caller, std::string_view store, uint8_t need,
                             std::string_view op) const {
  if (caller.bad_token) return refuse(caller, op);
  if ((granted(caller, store) & need) == need) return {};
  return refuse(caller, std::string(op) + " in store '" + std::string(store) + "' (it needs " +
                            need_name(need) + ")");
}

Decision AccessPolicy::check_known(const Caller& caller, std::string_view op) const {
  if (caller.bad_token) return refuse(caller, op);
  if (open_ || caller.kind != Caller::Kind::kAnonymous) return {};
  return refuse(caller, op);
}

Decision AccessPolicy::check_node(const Caller& caller, std::string_view op,
                                  bool admins_too) const {
  if (caller.bad_token) return refuse(caller, op);
  if (open_ || caller.kind == Caller::Kind::kNode) return {};
  if (admins_too && caller.kind == Caller::Kind::kPrincipal) {
    const internal::PrincipalDef& p = principals_[static_cast<size_t>(caller.principal)];
    for (const auto& [name, perms] : p.stores) {
      if (name == "*" && (perms & internal::kAdmin) != 0) return {};
    }
  }
  return refuse(caller, std::string(op) + (admins_too
                                               ? " (a node's or an admin's call: it needs a node's "
                                                 "certificate, or admin on every store)"
                                               : " (a node's call: it needs a node's certificate)"));
}

std::string AccessPolicy::startup_refusal(bool tls, bool client_certs) const {
  if (loopback_only_ || open_) return {};
  if (!present_) {
    return "this server listens beyond loopback with no `security:` section: anyone who reaches "
           "it could read and write every store. Give it principals (docs/security.md), or say "
           "`security: {open: true}` to accept anyone";
  }
  if (!tls) {
    return "this server listens beyond loopback without TLS: tokens and node calls would cross "
           "the network in the clear. Give the cluster `tls: {cert, key, ca}` (docs/security.md)";
  }
  if (!client_certs) {
    return "this server listens beyond loopback with TLS but no `ca`: nodes could not prove "
           "who they are. Give the cluster's `tls:` a `ca` (docs/security.md)";
  }
  return {};
}

void Access::refused(std::string_view front, const Decision& d) {
  std::string line;
  {
    std::lock_guard lock(mu_);
    Refusals& r = refusals_[std::string(front)];
    if (d.kind == Decision::Kind::kDenied) {
      ++r.denied;
    } else {
      ++r.unauthenticated;
    }
    const int64_t second = now_ms() / 1000;
    if (second != log_second_) {
      if (unlogged_ > 0) {
        line = std::to_string(unlogged_) + " more refused requests were not logged (at most 10 "
               "lines a second); ";
      }
      log_second_ = second;
      logged_this_second_ = 0;
      unlogged_ = 0;
    }
    if (logged_this_second_ >= 10) {
      ++unlogged_;
      if (line.empty()) return;
    } else {
      ++logged_this_second_;
      line += std::string(front) + ": refused (" +
              (d.kind == Decision::Kind::kDenied ? "permission denied" : "unauthenticated") +
              "): " + d.reason;
    }
  }
  log(LogLevel::kWarn, line);
}

std::map<std::string, Access::Refusals> Access::refusals() const {
  std::lock_guard lock(mu_);
  return refusals_;
}

}  // namespace cairn::server

// Who may do what (server/access.h): callers identified by token or by
// certificate name, permissions per store, node-only calls, and the
// startup refusal of a server reachable beyond loopback with nothing to
// check callers by. The fronts' enforcement is tested over real sockets
// (tests/tools/security_test.py).

#include "server/access.h"

#include <gtest/gtest.h>

#include "cairn/errors.h"

namespace cairn::server {
namespace {

using Kind = Decision::Kind;

const std::string kAliceToken = "cairn_alice-token-for-tests";
const std::string kOpsToken = "cairn_ops-token-for-tests";

Config secured() {
  return Config::parse(
      "cluster:\n"
      "  nodes:\n"
      "    - {id: 1, address: 127.0.0.1:7071}\n"
      "    - {id: 2, address: 127.0.0.1:7072}\n"
      "stores:\n"
      "  carts: {replication: {n: 2}, node: [route, {engine: memory}], client: [{engine: grpc}]}\n"
      "  prices: {replication: {n: 2}, node: [route, {engine: memory}], client: [{engine: grpc}]}\n"
      "security:\n"
      "  principals:\n"
      "    alice:\n"
      "      tokens: [\"" + token_digest(kAliceToken) + "\"]\n"
      "      stores: {carts: [read, write], \"*\": read}\n"
      "    reports:\n"
      "      certs: [reports]\n"
      "      stores: {prices: read}\n"
      "    ops:\n"
      "      tokens: [\"" + token_digest(kOpsToken) + "\"]\n"
      "      stores: {\"*\": [read, write, admin]}\n",
      "test.yaml");
}

TEST(AccessTest, TokensAreRandomAndTheirDigestsStable) {
  const std::string a = new_token(), b = new_token();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.rfind("cairn_", 0), 0u);
  EXPECT_EQ(a.size(), 6u + 43u);  // 256 bits in base64url
  // SHA-256("abc"), from FIPS 180-2.
  EXPECT_EQ(token_digest("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(AccessTest, PrincipalsDoWhatTheirStoresGrant) {
  const AccessPolicy p(secured(), /*loopback_only=*/true);
  EXPECT_FALSE(p.open());
  const Caller alice = p.identify(kAliceToken, {});
  ASSERT_EQ(alice.kind, Caller::Kind::kPrincipal);
  EXPECT_EQ(alice.name, "alice");
  EXPECT_TRUE(p.check(alice, "carts", internal::kWrite, "put").allowed());
  EXPECT_TRUE(p.check(alice, "prices", internal::kRead, "get").allowed());  // "*"
  const Decision d = p.check(alice, "prices", internal::kWrite, "put");
  EXPECT_EQ(d.kind, Kind::kDenied);
  EXPECT_EQ(d.reason, "alice may not put in store 'prices' (it needs write)");
  EXPECT_EQ(p.check(alice, "carts", internal::kAdmin, "scan").kind, Kind::kDenied);

  // By certificate name; a store's own entry is all it gets.
  const Caller reports = p.identify("", {"reports"});
  EXPECT_EQ(reports.name, "reports");
  EXPECT_TRUE(p.check(reports, "prices", internal::kRead, "get").allowed());
  EXPECT_EQ(p.check(reports, "carts", internal::kRead, "get").kind, Kind::kDenied);
}

TEST(AccessTest, NodesAreProvedByTheirCertificateNameOnly) {
  const AccessPolicy p(secured(), true);
  const Caller node = p.identify("", {"127.0.0.1", "node2"});
  EXPECT_EQ(node.kind, Caller::Kind::kNode);
  EXPECT_EQ(node.name, "node 2");
  EXPECT_TRUE(p.check_node(node, "replica put", false).allowed());
  EXPECT_TRUE(p.check(node, "carts", internal::kWrite, "put").allowed());
  // A name of no node of the cluster (node 3 is not in it).
  EXPECT_EQ(p.identify("", {"node3"}).kind, Caller::Kind::kAnonymous);
  // A principal, however privileged, is not a node...
  const Caller ops = p.identify(kOpsToken, {});
  const Decision d = p.check_node(ops, "PutHint", false);
  EXPECT_EQ(d.kind, Kind::kDenied);
  EXPECT_NE(d.reason.find("a node's certificate"), std::string::npos) << d.reason;
  // ...but admin on every store may make the admin's cluster calls.
  EXPECT_TRUE(p.check_node(ops, "ReadOnlySwap", true).allowed());
  EXPECT_EQ(p.check_node(p.identify(kAliceToken, {}), "ReadOnlySwap", true).kind, Kind::kDenied);
}

TEST(AccessTest, NothingProvedIsUnauthenticatedAndABadTokenNeverPasses) {
  const AccessPolicy p(secured(), true);
  const Caller nobody = p.identify("", {});
  const Decision d = p.check(nobody, "carts", internal::kRead, "get");
  EXPECT_EQ(d.kind, Kind::kUnauthenticated);
  EXPECT_NE(d.reason.find("needs a token or a client certificate"), std::string::npos) << d.reason;
  const Caller stranger = p.identify("", {"mallory"});
  EXPECT_EQ(p.check(stranger, "carts", internal::kRead, "get").kind, Kind::kUnauthenticated);
  const Caller wrong = p.identify("cairn_guessed", {"reports"});
  EXPECT_TRUE(wrong.bad_token);
  EXPECT_EQ(p.check(wrong, "prices", internal::kRead, "get").kind, Kind::kUnauthenticated);

  // Open (no `security:`, on loopback): anyone, but a wrong token is still
  // refused, so a typo never passes for anonymous.
  const Config plain = Config::parse("stores: {s: {stack: [{engine: memory}]}}\n", "t.yaml");
  const AccessPolicy open(plain, true);
  EXPECT_TRUE(open.open());
  EXPECT_TRUE(open.check(open.identify("", {}), "s", internal::kAdmin, "scan").allowed());
  EXPECT_EQ(open.check(open.identify("cairn_x", {}), "s", internal::kRead, "get").kind,
            Kind::kUnauthenticated);
}

TEST(AccessTest, ReachableBeyondLoopbackNeedsSecurityTlsAndACa) {
  const Config plain = Config::parse("stores: {s: {stack: [{engine: memory}]}}\n", "t.yaml");
  EXPECT_EQ(AccessPolicy(plain, true).startup_refusal(false, false), "");
  const AccessPolicy wide(plain, false);
  EXPECT_FALSE(wide.open());
  EXPECT_NE(wide.startup_refusal(true, true).find("`security: {open: true}`"), std::string::npos);
  const Config open = Config::parse(
      "stores: {s: {stack: [{engine: memory}]}}\nsecurity: {open: true}\n", "t.yaml");
  EXPECT_EQ(AccessPolicy(open, false).startup_refusal(false, false), "");
  const AccessPolicy secure(secured(), false);
  EXPECT_NE(secure.startup_refusal(false, false).find("without TLS"), std::string::npos);
  EXPECT_NE(secure.startup_refusal(true, false).find("no `ca`"), std::string::npos);
  EXPECT_EQ(secure.startup_refusal(true, true), "");
}

TEST(AccessTest, AReplacedPolicyIsSeenThroughItsGeneration) {
  const Config plain = Config::parse("stores: {s: {stack: [{engine: memory}]}}\n", "t.yaml");
  Access access(std::make_shared<AccessPolicy>(plain, true));
  EXPECT_TRUE(access.open());
  const uint64_t before = access.generation();
  const auto first = access.policy();
  auto next = std::make_shared<const AccessPolicy>(secured(), true);
  access.replace(next);
  // A connection holding the first policy sees the generation move, and
  // the policy it then takes is the new one.
  EXPECT_NE(access.generation(), before);
  EXPECT_EQ(access.policy(), next);
  EXPECT_NE(access.policy(), first);
  EXPECT_FALSE(access.open());
}

TEST(AccessTest, AmbiguousProofsAreConfigErrors) {
  const std::string head =
      "cluster: {nodes: [{id: 1, address: 127.0.0.1:7071}]}\n"
      "stores: {s: {node: [route, {engine: memory}], client: [{engine: grpc}]}}\n"
      "security:\n  principals:\n";
  EXPECT_THROW(AccessPolicy(Config::parse(head + "    a: {certs: [x]}\n    b: {certs: [x]}\n", "t"),
                            true),
               InvalidArgument);
  EXPECT_THROW(AccessPolicy(Config::parse(head + "    a: {certs: [node1]}\n", "t"), true),
               InvalidArgument);
}

}  // namespace
}  // namespace cairn::server

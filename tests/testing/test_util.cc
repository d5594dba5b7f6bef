#include "tests/testing/test_util.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <stdexcept>

namespace cairn::testing {

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string templ = std::string(base && *base ? base : "/tmp") + "/cairn-test-XXXXXX";
  if (mkdtemp(templ.data()) == nullptr) throw std::runtime_error("mkdtemp failed for " + templ);
  path_ = templ;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::mt19937_64 seeded_rng(uint64_t salt) {
  const auto seed = static_cast<uint64_t>(::testing::UnitTest::GetInstance()->random_seed());
  return std::mt19937_64(seed * 0x9E3779B97F4A7C15ull + salt);
}

std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xff);
  return out;
}

ClusterInfo test_cluster(int nodes, uint32_t partitions, const std::vector<std::string>& zones) {
  ClusterInfo c;
  c.partitions = partitions;
  for (int i = 0; i < nodes; ++i) {
    NodeInfo n;
    n.id = static_cast<NodeId>(i);
    n.address = "10.0.0." + std::to_string(i) + ":7070";
    if (!zones.empty()) n.zone = zones[static_cast<size_t>(i) % zones.size()];
    c.nodes.push_back(n);
  }
  return c;
}

}  // namespace cairn::testing

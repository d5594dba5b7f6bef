// Shared test helpers: temporary directories, seeded random bytes and
// clock shorthand. Thread-compatible.

#ifndef CAIRN_TESTS_TESTING_TEST_UTIL_H_
#define CAIRN_TESTS_TESTING_TEST_UTIL_H_

#include <cstdint>
#include <ostream>
#include <random>
#include <string>

#include "cairn/config.h"
#include "cairn/store.h"
#include "cairn/versioned.h"

namespace cairn {

// gtest prints these by name instead of as bytes.
inline void PrintTo(PutResult r, std::ostream* os) { *os << to_string(r); }
inline void PrintTo(Occurred o, std::ostream* os) { *os << to_string(o); }
inline void PrintTo(const VectorClock& c, std::ostream* os) { *os << c.to_string(); }

}  // namespace cairn

namespace cairn::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents when
// the object is destroyed.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// A generator seeded from gtest's --gtest_random_seed (so a failing run can
// be replayed) plus `salt`.
std::mt19937_64 seeded_rng(uint64_t salt = 0);

// `n` bytes drawn uniformly from 0x00..0xFF.
std::string random_bytes(std::mt19937_64& rng, size_t n);

// A cluster of nodes 0..nodes-1 at 10.0.0.ID:7070 with `partitions` dealt
// round-robin, zones (if given) assigned to the nodes in turn.
ClusterInfo test_cluster(int nodes, uint32_t partitions,
                         const std::vector<std::string>& zones = {});

// Shorthand for a clock: clock({{1, 2}, {3, 1}}) is {1:2, 3:1}.
inline VectorClock clock(std::initializer_list<ClockEntry> entries, int64_t ts = 1) {
  return VectorClock(entries, ts);
}

inline Versioned versioned(std::string value, std::initializer_list<ClockEntry> entries) {
  return Versioned{std::move(value), VectorClock(entries, 1)};
}

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_TEST_UTIL_H_

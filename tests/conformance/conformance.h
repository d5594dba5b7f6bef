// The conformance suite: the behaviour every Store must show, whatever the
// engine and whatever layers sit on it. A new engine or layer joins it with
// one INSTANTIATE_TEST_SUITE_P naming a StoreFactory.

#ifndef CAIRN_TESTS_CONFORMANCE_CONFORMANCE_H_
#define CAIRN_TESTS_CONFORMANCE_CONFORMANCE_H_

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cairn/store.h"
#include "tests/testing/test_util.h"

namespace cairn::testing {

struct StoreFactory {
  std::string name;  // a gtest-safe identifier: letters, digits, '_'
  // Opens the store keeping its data under `dir`, a fresh directory for
  // each test. Opening again with the same `dir` after close() must find
  // the data a persistent store kept.
  std::function<std::unique_ptr<Store>(const std::string& dir)> open;
  bool persistent = false;
  size_t max_key_size = 511;
  size_t max_value_size = 16 << 20;
  // The store settles siblings on read (a `resolve` layer that returns one
  // version, the merge of their clocks, whose value is one of theirs).
  // Sibling cases then check that settling instead of the sibling set.
  bool resolves = false;
  // A layer stamps the clocks of writes (a routing layer adds the key's
  // home node's entry): cases compare with the clock put() reports.
  bool stamps = false;
  // Deletes leave tombstones (routed stores): a put at a clock older than
  // a delete's is obsolete, where a store without them takes it as new.
  bool tombstones = false;
  // A `ttl` layer is at the top (cairn/ttl_store.h): puts may carry a TTL.
  // Stores without one must refuse a put that does.
  bool ttl = false;
};

// gtest prints a parameter with this; the default dumps its bytes.
inline void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

inline std::string factory_name(const ::testing::TestParamInfo<StoreFactory>& info) {
  return info.param.name;
}

// The fixture: a fresh directory and the store opened in it.
class Conformance : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override;
  void TearDown() override;
  // Closes the store and opens it again over the same directory.
  void reopen();
  // The values of a get, sorted, to compare sibling sets.
  std::vector<std::string> values(std::string_view key);
  // Everything a scan returns: key -> sorted values.
  std::map<std::string, std::vector<std::string>> scan_all();
  // Checks that `key` holds exactly the versions with these values: as
  // siblings, or for a resolving store, as one of them (and versions() still
  // lists one clock each).
  void expect_siblings(std::string_view key, const std::vector<std::string>& sorted_values);
  // Checks a scan against key -> sorted sibling values, the same way.
  void expect_scan(const std::map<std::string, std::vector<std::string>>& expected);

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_CONFORMANCE_CONFORMANCE_H_

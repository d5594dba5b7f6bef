// `cairn build-readonly` and `cairn admin readonly`: read-only stores
// built offline and swapped in whole (docs/readonly.md).
//
// A build reads records (JSON Lines, CSV, or another store's scan), turns
// keys and values from their text forms into bytes with the store's
// serializers, passes them through the layers the store's engine sits
// under on a node (so a `compress` there is applied as a put would), and
// sorts them into one chunk per partition of the cluster's ring.
//
// The admin commands work on every node of the config's cluster (each
// gets the chunks of the partitions it replicates), on one server
// (--server), or, for an embedded store, on its directory.
//   fetch DIR: copies a built version in, checked, as version N+1;
//   swap N:    prepares N everywhere, then commits it everywhere; if a
//              prepare fails nothing changes, and if a commit fails the
//              nodes that committed go back to what they served;
//   rollback:  a swap to the newest version older than the live one;
//   status:    the versions each target holds.

#ifndef CAIRN_TOOLS_CAIRN_READONLY_H_
#define CAIRN_TOOLS_CAIRN_READONLY_H_

#include <cstdint>
#include <string>
#include <vector>

#include "cairn/config.h"

namespace cairn::tools {

struct ReadOnlyBuildFlags {
  std::string input;        // a file, or "-" for stdin; empty with from_store
  std::string format;       // "jsonl", "csv", or empty: from the input's name
  bool header = false;      // csv: the first row names the columns
  std::string from_store;   // scan this store instead (of from_config, or the config)
  std::string from_config;
  std::string out;          // the directory to build
  uint64_t memory = uint64_t{256} << 20;  // per sorted run
};

// Builds a version of `store`. Returns the exit status; throws UsageError
// or cairn::Error.
int build_readonly(const Config& config, const std::string& store, const ReadOnlyBuildFlags& f);

struct ReadOnlyAdminFlags {
  std::vector<std::string> args;  // after `admin readonly`: SUB [ARG]
  std::string server;             // HOST:PORT[,...]: these servers only
  uint64_t as_version = 0;        // fetch: the number to give (0: next free)
  uint64_t max_rate = 0;          // fetch: bytes per second per target (0: no limit)
};

int readonly_admin(const Config& config, const std::string& store, const ReadOnlyAdminFlags& f);

}  // namespace cairn::tools

#endif  // CAIRN_TOOLS_CAIRN_READONLY_H_

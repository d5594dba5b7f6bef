// cairn: the command-line client. Opens a store's stack from a config file
// (or the built-in default: LMDB under ./cairn-data) and runs one command.

#include <grpcpp/grpcpp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cairn/client.h"
#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/ring.h"
#include "cairn/store.h"
#include "cairn/version.h"
#include "layers/grpc/cairn.grpc.pb.h"
#include "layers/grpc/grpc_store.h"
#include "metadata/etcd_client.h"
#include "metadata/liveness.h"
#include "routing/rebalance.h"
#include "server/access.h"
#include "core/metadata_tag.h"
#include "tools/cairn/credentials.h"
#include "tools/cairn/readonly.h"
#include "tools/cairn/rebalance.h"
#include "tools/flags.h"

namespace {

using namespace cairn;

constexpr int kOk = 0;
constexpr int kNotFound = 1;
constexpr int kUsage = 2;
constexpr int kObsolete = 3;
constexpr int kFailed = 4;

constexpr char kDefaultConfig[] = R"(stores:
  default:
    stack:
      - engine: {lmdb: {path: ./cairn-data}}
)";
constexpr char kDefaultSource[] = "<built-in default: LMDB store 'default' under ./cairn-data>";

constexpr char kMainHelp[] = R"(usage: cairn [--config FILE] [--store NAME] COMMAND [ARGS]

Commands:
  put KEY VALUE     store VALUE under KEY
  get KEY           print the value(s) of KEY
  delete KEY        delete KEY's versions
  scan              print every key and value
  stack show        print the store's assembled stack of layers
  ring [KEY...]     print the cluster's partitions, or where keys live
  admin ...         a cluster's metadata: init (into etcd), describe, hints, plan,
                    rebalance, status; read-only versions: readonly fetch, swap,
                    rollback, status; token (a new client token)
  build-readonly INPUT --out DIR
                    build a version of a read-only store from JSON Lines or CSV
  layers            list the layers and engines a config may name
  help [COMMAND]    show help (also: COMMAND --help)

Options (before or after the command):
  --config FILE     the config file; without it, a built-in config with one
                    LMDB store 'default' under ./cairn-data
  --store NAME      the store to use; may be omitted when the config has one
                    store, or has one named 'default'
  --server ADDRS    reach a cairn-server at HOST:PORT (several, comma-
                    separated, are balanced round-robin) instead of opening
                    a stack; with --config too, its serializers apply
  --replica         with --server: the node's own replica of the store,
                    below its routing layer (what that node holds)
  --hex             read and print identity keys and values as hexadecimal
                    (without it, raw bytes)
  --tls-ca FILE     reach servers over TLS, checking them against this CA;
  --tls-cert FILE   with a client certificate and its key (mutual TLS)
  --tls-key FILE    (the token, if any, comes from CAIRN_TOKEN)
  --version         print cairn's version and exit

Keys and values are read and printed in the store's formats, named by its
`key:` and `value:` in the config: JSON text for json, text for string,
decimal for int8..int64, raw bytes (or hex) for identity, the default.

Exit status: 0 success; 1 key not found (get, delete); 2 bad usage, config
or argument; 3 put rejected as obsolete; 4 any other failure.
)";

constexpr char kPutHelp[] = R"(usage: cairn put KEY VALUE [--clock CLOCK] [--writer ID] [--ttl SECONDS]

Stores VALUE under KEY, both read in the store's formats: for a json
store VALUE is JSON text checked against the schema (a mismatch exits 2
naming the field). Without --clock, the new version succeeds every version
now stored: their clocks are merged and the writer's entry incremented, so
the put replaces them all. With --clock (e.g. "1:2,3:1"),
VALUE is written at exactly that clock: a clock concurrent with the stored
ones makes a sibling; one that is not newer is rejected as obsolete (exit 3).

  --clock CLOCK     write at this vector clock, NODE:COUNTER pairs
  --writer ID       the node id to increment without --clock (default 0)
  --ttl SECONDS     the version expires SECONDS after the write (a store
                    with a `ttl` layer; docs/ttl.md); 0 takes the store's
                    default, -1 never expires
)";

constexpr char kGetHelp[] = R"(usage: cairn get KEY [--clocks]

Prints KEY's value in the store's format (JSON text, text, a number, or
raw bytes — hex with --hex) followed by a newline. When KEY holds several
concurrent versions (siblings), prints one line per version: its clock, a
tab, and the value with control bytes escaped (\n, \t, \xNN). Exits 1 if
KEY is absent.

  --clocks          use the one-line-per-version form even for one version
)";

constexpr char kDeleteHelp[] = R"(usage: cairn delete KEY [--clock CLOCK]

Deletes every version of KEY, or with --clock only the versions at or before
CLOCK (concurrent ones stay). Exits 1 if nothing was deleted.
)";

constexpr char kScanHelp[] = R"(usage: cairn scan [--limit N] [--clocks]

Prints every key and value, one line per version: key, a tab, value (control
bytes escaped as in get), in no particular order. A summary goes to stderr.

  --limit N         stop after N keys
  --clocks          add a third column with each version's clock
)";

constexpr char kStackHelp[] = R"(usage: cairn stack show

Opens the store and prints its stack, top layer first, each layer's
settings on its line and what it wraps indented below it.
)";

constexpr char kRingHelp[] = R"(usage: cairn --config FILE ring [KEY...]

Without keys, prints the partitions of the config's cluster and the node
that owns each (as listed in the config, or dealt out evenly). With keys
(in the store's key format), prints each key's partition and preference
list: the first N nodes that hold it (N from the store's `replication:`),
home first. Opens no store and calls no node.
)";

constexpr char kAdminHelp[] = R"(usage: cairn --config FILE admin init --etcd HOST:PORT[,...] --prefix P
       cairn --config FILE admin describe
       cairn --config FILE admin hints
       cairn --config FILE admin plan [--add ID=HOST:PORT[@ZONE],...]
                                       [--remove ID,...] [--store NAME]
       cairn --config FILE admin rebalance [--add ID=HOST:PORT[@ZONE],...]
                                            [--remove ID,...] [--max-rate B]
                                            [--wait S]
       cairn --config FILE admin status [--json]
       cairn [--config FILE] [--store NAME] [--server ADDRS] admin readonly
             fetch DIR [--as-version N] [--max-rate B] | swap N | rollback | status
       cairn admin token NAME

token: makes a new random token for principal NAME (docs/security.md) and
prints it, then the line for the principal's `tokens:` in the config's
`security:` section (its SHA-256 digest: the config never holds a token).
Clients give the token as CAIRN_TOKEN, the grpc engine's `token` or
`token_file`, `Authorization: Bearer` over HTTP, or AUTH over the Redis
protocol. A server takes new tokens on SIGHUP (or from etcd). Calls no node.

init: puts the cluster config FILE (its `cluster:` and `stores:`) into etcd
at key P + "config", if no config is there yet. Nodes and clients then
start from a file holding only
    cluster: {etcd: {endpoints: [HOST:PORT, ...], prefix: P}}
and read the rest from etcd. Refuses (exit 4) if P holds a config already.

describe: where the config came from and its version (etcd's revision of
it, for a cluster kept in etcd), the nodes with their zones, partitions
and health (each asked over gRPC, 2 s at most) and, in etcd, whether each
holds its lease and the metadata version it routes by, and the stores
with their replication.

hints: the hints each node keeps (writes and deletes other nodes missed,
to hand on once they answer), by the node each is for; a node that does
not answer is said to be down (2 s at most).

plan: prints what a change of the config's cluster moves: the partitions
each added node takes (from the nodes that own the most, spread around the
ring) or each removed node hands on (to the nodes that own the fewest),
then every partition copy that moves, with the nodes it can be fetched
from, and every copy a node drops. Copies are counted with N from the
store's `replication:` (--store), or the largest N of the config's stores;
the summary sets them against an even share of the change (a node added to
S nodes takes 1/(S+1) of the copies). Changes nothing and calls no node.

rebalance: carries the plan out on a cluster kept in etcd while it serves
(docs/clusters.md, "Moving partitions"): writes the new layout into the
config as `moving_to`, waits until every node with a lease routes by it
(writes of moving partitions then reach old and new replicas), has each
new replica pull its partitions from a current one (--max-rate bytes per
second per pull; default no limit), switches the config to the new
layout, waits again, and has the old replicas drop what they no longer
hold. Shows a progress bar on a terminal. Interrupted (or a node lost),
it stops; run it again without --add or --remove to resume. A node that
joins must be running first: cairn-server --node ID --listen HOST:PORT.
Waits up to --wait seconds (default 300) for the nodes, or for etcd, at
each step, and says what it waits for. Exit 4 if it cannot go on.

status: the move in progress, if any (partition copies done, keys and
bytes copied), and the metadata version each node routes by. --json
prints the document a node's HTTP front serves at /cluster.json (and its
/ui page draws): version, partitions, nodes with their partitions,
leases and versions, `moving_to`, and the move's progress.

readonly: the versions of a read-only store (docs/readonly.md), on every
node of the config's cluster, on the servers --server names, or, for an
embedded store, in its directory.
  fetch DIR  copies a version built by build-readonly in, as version N
             (--as-version; default one past the newest any target holds):
             each node gets the partitions it replicates, every file is
             checked against its checksum as it arrives, and a version
             appears only when whole; if any target fails, the others
             discard it. --max-rate bytes per second per target.
  swap N     prepares N on every target (maps it; checks its checksums
             unless the engine says verify_on_swap: false),
             then makes it live on every one. If a prepare fails, every
             target keeps what it serves; if a commit fails, the targets
             that committed go back. Reads in flight finish on the version
             they began on.
  rollback   swaps back to the newest version older than the live one that
             every target holds.
  status     the versions each target holds, and the live one.

--add and --remove may be given several times, or take comma-separated
lists. A node added to a cluster with zones needs one: ID=HOST:PORT@ZONE.
)";

constexpr char kBuildHelp[] = R"(usage: cairn [--config FILE] [--store NAME] build-readonly INPUT --out DIR
             [--format jsonl|csv] [--header] [--memory BYTES]
       cairn [--config FILE] [--store NAME] build-readonly --from-store NAME
             [--from-config FILE] --out DIR

Builds a version of a read-only store (`engine: readonly`; docs/readonly.md)
into DIR, a new directory: per partition of the config's cluster (one for
an embedded store) a sorted index of key hashes and a data file, with
checksums in DIR/metadata.json. `cairn admin readonly fetch DIR` then
copies it to the nodes. Records are sorted in bounded memory: runs of
--memory bytes (default 256MiB) spill to disk and are merged. Progress goes
to stderr, a summary with the throughput to stdout.

INPUT is a file (or - for standard input):
  JSON Lines  one object per line, {"key": K, "value": V}: for a json
              store V is the value's JSON itself; for the other formats a
              string holds the text form (a number may be given bare)
  CSV         two columns, key and value, in their text forms (RFC 4180
              quoting); --header skips a first row of column names
The format comes from the name (.jsonl, .ndjson, .json, .csv) or --format.
--from-store scans another store (of --from-config, or of this config)
instead: its values are taken as they are (bytes in the store's formats).

Keys and values pass through the layers the engine sits under (a
`compress` below `route` compresses them, as a put would). A bad line exits
2 naming the file and line; a key given twice exits 2 naming the key.
Nothing appears at DIR unless the whole build succeeds.
)";

constexpr char kLayersHelp[] = R"(usage: cairn layers

Lists the layers and engines a config file may name, with a summary each.
)";

struct Args {
  std::string config;
  std::string store;
  std::string server;
  std::vector<std::string> positional;
  std::optional<std::string> clock;
  std::optional<std::string> writer;
  std::optional<std::string> ttl;  // put: seconds
  std::optional<std::string> limit;
  std::vector<std::string> add;     // admin plan: ID=HOST:PORT[@ZONE]
  std::vector<std::string> remove;  // admin plan: ID
  std::vector<std::string> etcd;    // admin init: HOST:PORT
  std::string prefix;               // admin init
  std::optional<std::string> max_rate;  // admin rebalance: bytes per second per pull
  std::optional<std::string> wait;      // admin rebalance: seconds
  std::string out;                      // build-readonly
  std::string format;                   // build-readonly
  std::string from_store;               // build-readonly
  std::string from_config;              // build-readonly
  std::optional<std::string> memory;    // build-readonly: bytes per run
  std::optional<std::string> as_version;  // admin readonly fetch
  bool header = false;                  // build-readonly: CSV header row
  bool clocks = false;
  bool json = false;  // admin status
  bool hex = false;
  bool replica = false;
  bool help = false;
  bool version = false;
};

using tools::UsageError;

// The entries of a comma-separated flag value; an empty one is bad usage.
std::vector<std::string> comma_list(const std::string& flag, const std::string& list) {
  std::vector<std::string> out;
  for (size_t start = 0;;) {
    const size_t comma = list.find(',', start);
    out.push_back(list.substr(start, comma - start));
    if (out.back().empty()) throw UsageError(flag + " has an empty entry in '" + list + "'");
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

Args parse_args(int argc, char** argv) {
  Args a;
  auto value = [&](int& i, const std::string& flag) {
    if (i + 1 >= argc) throw UsageError(flag + " needs a value");
    return std::string(argv[++i]);
  };
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    // A negative number is a value (an int64 key, say), not an option.
    const bool negative_number = arg.size() > 1 && arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9';
    if (options_done || arg.empty() || arg[0] != '-' || arg == "-" || negative_number) {
      a.positional.push_back(arg);
    } else if (arg == "--") {
      options_done = true;
    } else if (arg == "--help" || arg == "-h") {
      a.help = true;
    } else if (arg == "--version") {
      a.version = true;
    } else if (arg == "--config") {
      a.config = value(i, arg);
    } else if (arg == "--store") {
      a.store = value(i, arg);
    } else if (arg == "--server") {
      a.server = value(i, arg);
    } else if (arg == "--clock") {
      a.clock = value(i, arg);
    } else if (arg == "--ttl") {
      a.ttl = value(i, arg);
    } else if (arg == "--writer") {
      a.writer = value(i, arg);
    } else if (arg == "--limit") {
      a.limit = value(i, arg);
    } else if (arg == "--etcd") {
      a.etcd = comma_list(arg, value(i, arg));
    } else if (arg == "--prefix") {
      a.prefix = value(i, arg);
    } else if (arg == "--max-rate") {
      a.max_rate = value(i, arg);
    } else if (arg == "--wait") {
      a.wait = value(i, arg);
    } else if (arg == "--add" || arg == "--remove") {
      auto& into = arg == "--add" ? a.add : a.remove;
      for (std::string& item : comma_list(arg, value(i, arg))) into.push_back(std::move(item));
    } else if (arg == "--out") {
      a.out = value(i, arg);
    } else if (arg == "--format") {
      a.format = value(i, arg);
    } else if (arg == "--from-store") {
      a.from_store = value(i, arg);
    } else if (arg == "--from-config") {
      a.from_config = value(i, arg);
    } else if (arg == "--memory") {
      a.memory = value(i, arg);
    } else if (arg == "--as-version") {
      a.as_version = value(i, arg);
    } else if (arg == "--header") {
      a.header = true;
    } else if (arg == "--clocks") {
      a.clocks = true;
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--hex") {
      a.hex = true;
    } else if (arg == "--replica") {
      a.replica = true;
    } else if (arg == "--tls-ca") {
      tools::cli_credentials().tls_ca = value(i, arg);
    } else if (arg == "--tls-cert") {
      tools::cli_credentials().tls_cert = value(i, arg);
    } else if (arg == "--tls-key") {
      tools::cli_credentials().tls_key = value(i, arg);
    } else {
      throw UsageError("unknown option " + arg);
    }
  }
  return a;
}

const char* help_for(const std::string& command) {
  if (command == "put") return kPutHelp;
  if (command == "get") return kGetHelp;
  if (command == "delete") return kDeleteHelp;
  if (command == "scan") return kScanHelp;
  if (command == "stack") return kStackHelp;
  if (command == "layers") return kLayersHelp;
  if (command == "ring") return kRingHelp;
  if (command == "admin") return kAdminHelp;
  if (command == "build-readonly") return kBuildHelp;
  return nullptr;
}

// Escapes control bytes and backslashes so one version fits on one line.
std::string escaped(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (unsigned char c : bytes) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

void expect_positional(const Args& a, size_t n, const char* usage) {
  if (a.positional.size() != n) throw UsageError(std::string("expected: ") + usage);
}

std::string pick_store(const Config& config, const std::string& wanted) {
  if (!wanted.empty()) return wanted;
  const std::vector<std::string> names = config.store_names();
  if (names.size() == 1) return names.front();
  for (const std::string& n : names) {
    if (n == "default") return n;
  }
  throw UsageError(config.source() + " defines several stores and none is 'default': name one with --store");
}

// The store being worked on: its stack, its serializers, and a byte-level
// Client for writes that succeed what is stored.
struct Target {
  std::string name;
  std::shared_ptr<Store> store;
  StoreSerializers serializers;
  Client<std::string, std::string> bytes;
  bool hex;  // --hex: identity keys and values as hex, in and out
};

bool is_identity(const AnySerializer& s) { return &s == identity_serializer().get(); }

std::string to_hex(std::string_view bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

std::string from_hex(std::string_view text) {
  auto nibble = [&](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    throw InvalidArgument("--hex: '" + std::string(text) + "' is not hexadecimal");
  };
  if (text.size() % 2 != 0) throw InvalidArgument("--hex: odd number of hex digits");
  std::string out;
  for (size_t i = 0; i < text.size(); i += 2) {
    out.push_back(static_cast<char>(nibble(text[i]) * 16 + nibble(text[i + 1])));
  }
  return out;
}

// Text typed on the command line -> bytes, by the store's serializer.
std::string parse(bool hex, const AnySerializer& s, std::string_view text) {
  if (hex && is_identity(s)) return from_hex(text);
  return s.parse_text(text);
}
std::string parse(const Target& t, const AnySerializer& s, std::string_view text) {
  return parse(t.hex, s, text);
}

// Bytes -> text for the terminal, by the store's serializer.
std::string format(const Target& t, const AnySerializer& s, std::string_view bytes) {
  if (t.hex && is_identity(s)) return to_hex(bytes);
  return s.format_text(bytes);
}

int cmd_put(Target& t, const Args& a) {
  expect_positional(a, 3, "cairn put KEY VALUE");
  const std::string key = parse(t, *t.serializers.key, a.positional[1]);
  const std::string value = parse(t, *t.serializers.value, a.positional[2]);
  VectorClock clock;
  int64_t ttl_ms = 0;
  if (a.ttl) {
    // Seconds, -1 (never expires) included; fractions allowed.
    try {
      size_t used = 0;
      const double seconds = std::stod(*a.ttl, &used);
      // A positive TTL under a millisecond would round to 0, the store's
      // default: refused rather than changed.
      if (used != a.ttl->size() || !(seconds == -1 || seconds == 0 ||
                                     (seconds >= 0.001 && seconds <= 3.2e9))) {
        throw std::invalid_argument("range");
      }
      ttl_ms = seconds < 0 ? -1 : static_cast<int64_t>(seconds * 1000);
    } catch (const std::logic_error&) {
      throw UsageError("--ttl expects seconds (0 for the store's default, -1 for never), got '" +
                       *a.ttl + "'");
    }
  }
  if (a.clock) {
    VectorClock given = VectorClock::parse(*a.clock);
    given.set_timestamp_ms(now_ms());
    Versioned v{value, given};
    v.ttl_ms = ttl_ms;
    if (t.store->put(key, v, &clock) == PutResult::kObsolete) {
      clock = given;
      std::cerr << "cairn: put " << a.positional[1] << " in '" << t.name
                << "' is obsolete: a stored version is at or after " << clock.to_string()
                << "; nothing changed\n";
      return kObsolete;
    }
  } else {
    clock = t.bytes.put(key, value, std::chrono::milliseconds(ttl_ms));
  }
  std::cout << "stored " << printable_key(a.positional[1]) << " at " << clock.to_string() << "\n";
  return kOk;
}

int cmd_get(Target& t, const Args& a) {
  expect_positional(a, 2, "cairn get KEY");
  const std::string key = parse(t, *t.serializers.key, a.positional[1]);
  const std::vector<Versioned> versions = t.store->get(key);
  if (versions.empty()) {
    std::cerr << "cairn: key " << printable_key(a.positional[1]) << " not found in store '"
              << t.name << "'\n";
    return kNotFound;
  }
  if (versions.size() == 1 && !a.clocks) {
    std::cout << format(t, *t.serializers.value, versions[0].value) << "\n";
    return kOk;
  }
  for (const Versioned& v : versions) {
    std::cout << v.clock.to_string() << "\t" << escaped(format(t, *t.serializers.value, v.value))
              << "\n";
  }
  return kOk;
}

int cmd_delete(Target& t, const Args& a) {
  expect_positional(a, 2, "cairn delete KEY");
  const std::string key = parse(t, *t.serializers.key, a.positional[1]);
  const bool deleted = a.clock ? t.store->remove(key, VectorClock::parse(*a.clock))
                               : t.bytes.remove(key);
  if (!deleted) {
    std::cerr << "cairn: nothing deleted: key " << printable_key(a.positional[1])
              << (a.clock ? " has no version at or before " + VectorClock::parse(*a.clock).to_string()
                          : " not found")
              << " in store '" << t.name << "'\n";
    return kNotFound;
  }
  std::cout << "deleted " << printable_key(a.positional[1]) << "\n";
  return kOk;
}

int cmd_scan(Target& t, const Args& a) {
  expect_positional(a, 1, "cairn scan");
  const uint64_t limit = a.limit ? tools::flag_number("--limit", *a.limit) : UINT64_MAX;
  uint64_t keys = 0, versions = 0;
  auto it = t.store->scan();
  while (keys < limit && it->next()) {
    ++keys;
    const std::string key = escaped(format(t, *t.serializers.key, it->key()));
    for (const Versioned& v : it->versions()) {
      ++versions;
      std::cout << key << "\t" << escaped(format(t, *t.serializers.value, v.value));
      if (a.clocks) std::cout << "\t" << v.clock.to_string();
      std::cout << "\n";
    }
  }
  std::cout.flush();
  std::cerr << keys << (keys == 1 ? " key, " : " keys, ") << versions
            << (versions == 1 ? " version\n" : " versions\n");
  return kOk;
}

int cmd_stack_show(const Target& t, const Config& config) {
  std::cout << "store '" << t.name << "' from " << config.source() << ":\n"
            << "key:   " << t.serializers.key->describe() << "\n"
            << "value: " << t.serializers.value->describe() << "\n"
            << t.store->describe() << "\n";
  return kOk;
}

int cmd_ring(const Args& a) {
  if (a.config.empty()) throw UsageError("ring needs --config FILE with a `cluster:` section");
  const Config config = Config::load(a.config);
  if (config.nodes().empty()) throw UsageError(a.config + " has no `cluster:` section");
  const Ring ring(config.cluster());
  if (a.positional.size() == 1) {
    std::cout << ring.describe();
    return kOk;
  }
  const std::string name = pick_store(config, a.store);
  const StoreSerializers serializers = config.serializers(name);
  const int n = config.replication(name).n;
  for (size_t i = 1; i < a.positional.size(); ++i) {
    const std::string key = parse(a.hex, *serializers.key, a.positional[i]);
    std::cout << a.positional[i] << "\tpartition " << ring.partition(key) << "\tnodes";
    for (NodeId id : ring.preference_list(key, n)) std::cout << " " << id;
    std::cout << "\n";
  }
  return kOk;
}

// ID=HOST:PORT[@ZONE], as --add takes it.
NodeInfo node_to_add(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
    throw UsageError("--add expects ID=HOST:PORT[@ZONE], got '" + spec + "'");
  }
  NodeInfo node;
  node.id = static_cast<NodeId>(tools::flag_number("--add", spec.substr(0, eq), 0, 65535));
  const std::string rest = spec.substr(eq + 1);
  const size_t at = rest.find('@');
  node.address = rest.substr(0, at);
  if (at != std::string::npos) node.zone = rest.substr(at + 1);
  if (node.address.find(':') == std::string::npos || (at != std::string::npos && node.zone.empty())) {
    throw UsageError("--add expects ID=HOST:PORT[@ZONE], got '" + spec + "'");
  }
  return node;
}

int cmd_admin_init(const Args& a) {
  if (a.config.empty() || a.etcd.empty() || a.prefix.empty()) {
    throw UsageError("admin init needs --config FILE, --etcd HOST:PORT[,...] and --prefix P");
  }
  // Read once: what is checked is what is shared.
  std::FILE* f = std::fopen(a.config.c_str(), "rb");
  if (f == nullptr) throw IoError("cannot read config " + a.config + ": " + std::strerror(errno));
  std::string text;
  char buf[8192];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) text.append(buf, n);
  std::fclose(f);
  const Config config = Config::parse(text, a.config);
  if (!config.origin().etcd_endpoints.empty()) {
    throw UsageError(a.config + " points at etcd already; init takes a whole config file");
  }
  if (config.nodes().empty()) throw UsageError(a.config + " has no `cluster:` section");
  internal::EtcdClient etcd({.endpoints = a.etcd});
  const std::string key = a.prefix + "config";
  int64_t revision = 0;
  const std::vector<internal::EtcdClient::Write> writes = {{.key = key, .value = text}};
  if (!etcd.commit_if(key, 0, writes, &revision)) {
    const auto held = etcd.get(key);
    throw FailedPrecondition("etcd holds a cluster config at '" + key + "' already (version " +
                             std::to_string(held ? held->mod_revision : 0) + "); nothing changed");
  }
  std::cout << "put the config of " << config.nodes().size() << " nodes and "
            << config.store_names().size() << " stores into etcd at '" << key << "', version "
            << revision << "\n";
  return kOk;
}

// "up", or why a node does not answer: a read of a key no one writes from
// its own replica of `store`, 2 s at most.
std::string health_of(const NodeInfo& node, const std::string& store) {
  GrpcOptions o;
  o.store = store;
  o.targets = {node.address};
  o.timeout = std::chrono::milliseconds(2000);
  o.retries = 0;
  o.replica = true;
  tools::apply(&o);
  o.pipeline = false;
  try {
    internal::MetadataTag direct(INT64_MAX);  // a probe of the node, not a routed call
    open_grpc_store(o)->get(std::string_view("\0cairn-probe", 12));
    return "up";
  } catch (const Error& e) {
    return std::string("down (") + e.what() + ")";
  }
}

int cmd_admin_describe(const Args& a) {
  if (a.config.empty()) throw UsageError("admin describe needs --config FILE");
  const Config config = Config::load(a.config);
  if (config.nodes().empty()) throw UsageError(config.source() + " has no `cluster:` section");
  const MetadataOrigin& origin = config.origin();
  if (origin.etcd_endpoints.empty()) {
    std::cout << "metadata: file " << config.source() << "\n";
  } else {
    std::string endpoints;
    for (const std::string& e : origin.etcd_endpoints) endpoints += (endpoints.empty() ? "" : ",") + e;
    std::cout << "metadata: etcd " << endpoints << " key '" << origin.prefix << "config', version "
              << origin.version << "\n";
  }
  // The nodes holding a liveness lease in etcd, with the metadata version
  // each routes by (metadata/liveness.h).
  std::map<NodeId, internal::EtcdLiveness::Alive> alive;
  if (!origin.etcd_endpoints.empty()) {
    internal::EtcdClient etcd({.endpoints = origin.etcd_endpoints});
    alive = internal::EtcdLiveness::read_all(etcd, origin.prefix);
  }
  const Ring ring(config.cluster());
  const std::string probe_store = config.store_names().front();
  std::cout << ring.partitions() << " partitions on " << ring.nodes().size() << " nodes\n";
  for (const NodeInfo& n : ring.nodes()) {
    std::cout << "node " << n.id << " (" << n.address << (n.zone.empty() ? "" : ", zone " + n.zone)
              << "): " << n.partitions.size() << " partitions, " << health_of(n, probe_store);
    if (!origin.etcd_endpoints.empty()) {
      auto it = alive.find(n.id);
      if (it == alive.end()) {
        std::cout << ", no lease";
      } else {
        std::cout << ", lease held, routes by version " << it->second.version;
      }
    }
    std::cout << "\n";
  }
  std::cout << "stores:\n";
  for (const std::string& name : config.store_names()) {
    const Replication r = config.replication(name);
    std::cout << "  " << name << ": N=" << r.n << " R=" << r.r << " W=" << r.w << "\n";
  }
  return kOk;
}

int cmd_admin_hints(const Args& a) {
  if (a.config.empty()) throw UsageError("admin hints needs --config FILE");
  const Config config = Config::load(a.config);
  if (config.nodes().empty()) throw UsageError(config.source() + " has no `cluster:` section");
  for (const NodeInfo& n : config.nodes()) {
    std::cout << "node " << n.id << " (" << n.address << "): ";
    auto stub = rpc::Admin::NewStub(tools::channel_to(n.address));
    grpc::ClientContext ctx;
    tools::authorize(&ctx);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
    rpc::PendingHintsResponse resp;
    const grpc::Status st = stub->PendingHints(&ctx, rpc::PendingHintsRequest(), &resp);
    if (st.error_code() == grpc::StatusCode::PERMISSION_DENIED ||
        st.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      std::cout << "refused (" << st.error_message() << ")\n";
      continue;
    }
    if (!st.ok()) {
      std::cout << "down (" << st.error_message() << ")\n";
      continue;
    }
    uint64_t total = 0;
    std::map<uint32_t, uint64_t> by_node(resp.by_node().begin(), resp.by_node().end());
    for (const auto& [node, count] : by_node) total += count;
    if (total == 0) {
      std::cout << "keeps no hints\n";
      continue;
    }
    std::cout << "keeps " << total << (total == 1 ? " hint:" : " hints:");
    const char* sep = " ";
    for (const auto& [node, count] : by_node) {
      std::cout << sep << count << " for node " << node;
      sep = ", ";
    }
    std::cout << "\n";
  }
  return kOk;
}

int cmd_admin_rebalance(const Args& a) {
  if (a.config.empty()) throw UsageError("admin rebalance needs --config FILE naming the etcd");
  tools::RebalanceOptions o;
  o.config = a.config;
  for (const std::string& spec : a.add) o.add.push_back(node_to_add(spec));
  for (const std::string& id : a.remove) {
    o.remove.push_back(static_cast<NodeId>(tools::flag_number("--remove", id, 0, 65535)));
  }
  if (a.max_rate) o.max_bytes_per_second = tools::flag_number("--max-rate", *a.max_rate);
  if (a.wait) o.wait = std::chrono::seconds(tools::flag_number("--wait", *a.wait, 1, 86400));
  return tools::rebalance(o);
}

// The config the commands use: --config, or the built-in default.
Config load_config(const Args& a) {
  return a.config.empty() ? Config::parse(kDefaultConfig, kDefaultSource) : Config::load(a.config);
}

int cmd_admin_readonly(const Args& a) {
  const Config config = load_config(a);
  tools::ReadOnlyAdminFlags f;
  f.args.assign(a.positional.begin() + 2, a.positional.end());
  f.server = a.server;
  if (a.as_version) f.as_version = tools::flag_number("--as-version", *a.as_version, 1);
  if (a.max_rate) f.max_rate = tools::flag_number("--max-rate", *a.max_rate, 1);
  const std::string name = a.server.empty() ? pick_store(config, a.store)
                                            : (a.store.empty() ? "default" : a.store);
  return tools::readonly_admin(config, name, f);
}

int cmd_build_readonly(const Args& a) {
  const Config config = load_config(a);
  tools::ReadOnlyBuildFlags f;
  if (a.positional.size() > 2) throw UsageError("build-readonly takes one INPUT");
  if (a.positional.size() == 2) f.input = a.positional[1];
  f.format = a.format;
  f.header = a.header;
  f.from_store = a.from_store;
  f.from_config = a.from_config;
  f.out = a.out;
  if (a.memory) f.memory = tools::flag_number("--memory", *a.memory, 1 << 20);
  return tools::build_readonly(config, pick_store(config, a.store), f);
}

int cmd_admin(const Args& a) {
  const std::string sub = a.positional.size() >= 2 ? a.positional[1] : "";
  if (sub == "readonly") return cmd_admin_readonly(a);
  if (sub == "token") {
    if (a.positional.size() != 3 || a.positional[2].empty()) {
      throw UsageError("expected: admin token NAME (the principal the token is for)");
    }
    const std::string token = server::new_token();
    std::cout << token << "\n";
    std::cerr << "# for principal '" << a.positional[2] << "' in the config's security section:\n"
              << "#   " << a.positional[2] << ": {tokens: [\"" << server::token_digest(token)
              << "\"], stores: {...}}\n"
              << "# the token is shown once; keep it secret\n";
    std::cout << server::token_digest(token) << "\n";
    return kOk;
  }
  if (a.positional.size() != 2 ||
      (sub != "plan" && sub != "init" && sub != "describe" && sub != "hints" &&
       sub != "rebalance" && sub != "status")) {
    throw UsageError(
        "expected: admin init|describe|hints|plan|rebalance|status|readonly|token (see cairn "
        "admin --help)");
  }
  if (sub == "init") return cmd_admin_init(a);
  if (sub == "rebalance") return cmd_admin_rebalance(a);
  if (sub == "status") {
    if (a.config.empty()) throw UsageError("admin status needs --config FILE");
    return tools::rebalance_status(a.config, a.json);
  }
  if (sub == "hints") return cmd_admin_hints(a);
  if (sub == "describe") return cmd_admin_describe(a);
  if (a.config.empty()) throw UsageError("admin plan needs --config FILE with a `cluster:` section");
  if (a.add.empty() && a.remove.empty()) throw UsageError("admin plan needs --add or --remove");
  const Config config = Config::load(a.config);
  if (config.nodes().empty()) throw UsageError(a.config + " has no `cluster:` section");
  int n = 1;
  if (!a.store.empty()) {
    n = config.replication(a.store).n;
  } else {
    for (const std::string& name : config.store_names()) n = std::max(n, config.replication(name).n);
  }
  const Ring before(config.cluster());
  Ring after = before;
  try {
    for (const std::string& spec : a.add) after = after.with_node(node_to_add(spec));
    for (const std::string& id : a.remove) {
      after = after.without_node(static_cast<NodeId>(tools::flag_number("--remove", id, 0, 65535)));
    }
  } catch (const InvalidArgument& e) {
    throw UsageError(e.what());
  }
  if (static_cast<int>(after.nodes().size()) < n) {
    throw UsageError("the cluster would have " + std::to_string(after.nodes().size()) +
                     " nodes, fewer than N = " + std::to_string(n));
  }
  std::cout << internal::describe(internal::plan_rebalance(before, after, n), before, after);
  return kOk;
}

int cmd_layers() {
  const LayerRegistry& r = default_registry();
  std::cout << "engines (the last entry of a stack):\n";
  for (const auto& [name, summary] : r.engines()) std::printf("  %-10s %s\n", name.c_str(), summary.c_str());
  std::cout << "layers:\n";
  for (const auto& [name, summary] : r.layers()) std::printf("  %-10s %s\n", name.c_str(), summary.c_str());
  std::cout << "serializers (a store's key: and value:):\n";
  for (const auto& [name, summary] : r.serializers()) {
    std::printf("  %-10s %s\n", name.c_str(), summary.c_str());
  }
  return kOk;
}

int run(int argc, char** argv) {
  const Args a = parse_args(argc, argv);
  {
    tools::Credentials& c = tools::cli_credentials();
    if (c.tls_cert.empty() != c.tls_key.empty()) throw UsageError("--tls-cert and --tls-key go together");
    if (const char* token = std::getenv("CAIRN_TOKEN"); token != nullptr) c.token = token;
  }
  std::optional<internal::MetadataTag> direct;
  if (a.version) {
    std::cout << "cairn " << cairn::version() << "\n";
    return kOk;
  }
  const std::string command = a.positional.empty() ? "" : a.positional[0];
  if (command.empty() || command == "help") {
    const char* text = a.positional.size() > 1 ? help_for(a.positional[1]) : kMainHelp;
    if (text == nullptr) throw UsageError("no such command: " + a.positional[1]);
    std::cout << text;
    return command.empty() && !a.help ? kUsage : kOk;
  }
  const char* help = help_for(command);
  if (help == nullptr) throw UsageError("unknown command '" + command + "' (see cairn --help)");
  if (a.help) {
    std::cout << help;
    return kOk;
  }
  if (command == "layers") return cmd_layers();
  if (command == "ring") return cmd_ring(a);
  if (command == "admin") return cmd_admin(a);
  if (command == "build-readonly") return cmd_build_readonly(a);
  if (command == "stack" && (a.positional.size() != 2 || a.positional[1] != "show")) {
    throw UsageError("expected: cairn stack show");
  }

  ClientOptions options;
  options.node_id = a.writer ? static_cast<NodeId>(tools::flag_number("--writer", *a.writer)) : 0;
  if (!a.server.empty()) {
    // A server's store, in the formats the config (if any) gives it.
    const std::string name = a.store.empty() ? "default" : a.store;
    StoreSerializers serializers{identity_serializer(), identity_serializer()};
    if (!a.config.empty()) serializers = Config::load(a.config).serializers(name);
    GrpcOptions grpc;
    grpc.store = name;
    grpc.replica = a.replica;
    // A server with a security policy: the CLI's TLS files and token
    // (docs/security.md).
    tools::apply(&grpc);
    // A node's own copy, read as it is: not routed, so whatever metadata
    // version the node is at (core/metadata_tag.h).
    if (a.replica) direct.emplace(INT64_MAX);
    for (size_t start = 0; start <= a.server.size();) {
      size_t end = a.server.find(',', start);
      if (end == std::string::npos) end = a.server.size();
      if (end > start) grpc.targets.push_back(a.server.substr(start, end - start));
      start = end + 1;
    }
    std::shared_ptr<Store> store = std::make_shared<GrpcStore>(grpc);
    Target t{name, store, serializers,
             Client<std::string, std::string>(store, identity_serializer(), identity_serializer(),
                                              options),
             a.hex};
    if (command == "put") return cmd_put(t, a);
    if (command == "get") return cmd_get(t, a);
    if (command == "delete") return cmd_delete(t, a);
    if (command == "scan") return cmd_scan(t, a);
    std::cout << "store '" << name << "' on " << a.server << ":\n"
              << "key:   " << serializers.key->describe() << "\n"
              << "value: " << serializers.value->describe() << "\n"
              << store->describe() << "\n";
    return kOk;
  }

  if (a.replica) throw UsageError("--replica needs --server");
  const Config config = a.config.empty() ? Config::parse(kDefaultConfig, kDefaultSource)
                                         : Config::load(a.config);
  const std::string name = pick_store(config, a.store);
  // Serializers first: a bad `value:` entry is reported before any engine
  // opens (and creates its files).
  StoreSerializers serializers = config.serializers(name);
  std::shared_ptr<Store> store = config.open(name);
  Target t{name, store, serializers,
           Client<std::string, std::string>(store, identity_serializer(), identity_serializer(),
                                            options),
           a.hex};
  if (command == "put") return cmd_put(t, a);
  if (command == "get") return cmd_get(t, a);
  if (command == "delete") return cmd_delete(t, a);
  if (command == "scan") return cmd_scan(t, a);
  return cmd_stack_show(t, config);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(argc, argv);
  } catch (const UsageError& e) {
    std::cerr << "cairn: " << e.what() << "\n";
    return kUsage;
  } catch (const cairn::InvalidArgument& e) {
    std::cerr << "cairn: " << e.what() << "\n";
    return kUsage;
  } catch (const cairn::NotFound& e) {  // an unknown store name
    std::cerr << "cairn: " << e.what() << "\n";
    return kUsage;
  } catch (const cairn::ObsoleteVersion& e) {
    std::cerr << "cairn: " << e.what() << "\n";
    return kObsolete;
  } catch (const cairn::Error& e) {
    std::cerr << "cairn: " << cairn::to_string(e.code()) << ": " << e.what() << "\n";
    return kFailed;
  } catch (const std::exception& e) {
    std::cerr << "cairn: unexpected error: " << e.what() << "\n";
    return kFailed;
  }
}

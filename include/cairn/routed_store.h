// The `route` layer: each key goes to its N replicas on the ring
// (cairn/ring.h), concurrently, without a thread per replica.
//
//   reads    go to the first R live replicas of the key, home first, and
//            answer once R have, with the versions none of them has
//            superseded (siblings if concurrent). A replica that fails, or
//            has not answered after `read_hedge`, brings in the next one.
//            A sampled fraction of reads (`read_repair_chance`) goes to
//            every live replica. Once all the replicas asked have
//            answered, those that miss a version get it in the background
//            (read repair).
//   writes   go first to the key's home, the first live node of its
//            preference list, which stamps the clock with its own entry
//            (kStampBase + its id, and the time) and serializes racing
//            writers: a write obsolete at the home is obsolete. Then the
//            stamped version goes to the other live replicas at once; the
//            put answers when W replicas (the home included) hold it. A
//            replica that is down, or fails the write, gets a hint on a
//            live node, which delivers it later (hinted handoff); hints
//            never count toward W.
//   deletes  are tombstones: a delete of the versions at or before clock c
//            writes, like a put, a version with an empty value whose clock
//            is c with the reserved entry kTombstoneEntry made odd. It
//            supersedes what it deletes on every replica it reaches, and
//            read repair and hints spread it like any version, so a replica
//            that missed the delete cannot bring the value back. Reads drop
//            tombstones; versions() keeps their clocks, so that a write
//            based on it supersedes them (its entry made even again).
//            Tombstones are not reaped yet.
//
// Failing R or W within the timeout is InsufficientReplicas, saying how
// many answered and why each other failed. A replica that is unreachable
// or times out is banned by the failure detector and skipped until a probe
// answers. get_all sends one request per node for all the keys it holds.
// A scan reads each key from the first live node of its preference list.
//
// Configs build it (`route` in a client's or a node's stack, over a
// cluster); open_routed_store() builds one in C++ over replica stores of
// your own, e.g. three in-memory engines under `faults` layers to test an
// application against a replica that fails. Such in-process replicas keep
// no hints for each other: read repair is what mends one that missed a
// write.
//
// Thread-safe.

#ifndef CAIRN_ROUTED_STORE_H_
#define CAIRN_ROUTED_STORE_H_

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "cairn/config.h"
#include "cairn/export.h"
#include "cairn/ring.h"
#include "cairn/store.h"

CAIRN_API_BEGIN
namespace cairn {

// The clock entry that marks tombstones (odd counter) in routed stores:
// the last of the nodes' stamps (kStampBase, versioned.h), "@2147483647"
// in text, which no node id reaches (they stop at 65535).
inline constexpr NodeId kTombstoneEntry = 0xFFFFFFFF;

struct RouteOptions {
  std::string store;  // the store's name on the nodes
  Replication replication;
  // Deadline of a whole operation, across its replicas.
  std::chrono::milliseconds timeout{5000};
  // How long a node that failed stays banned at least, and how often it is
  // probed after that.
  std::chrono::milliseconds ban{1000};
  std::chrono::milliseconds probe_interval{1000};

  // Reads. A read goes to the first R live replicas of the key, home first,
  // and to the next when one fails or has not answered after `read_hedge`.
  // Lower hedging answers sooner when a replica stalls, at the cost of
  // more calls when replicas are merely busy.
  std::chrono::milliseconds read_hedge{50};
  // Read repair: replicas that answered a read with older versions get the
  // newer ones, in the background. Off: reads never write.
  bool read_repair = true;
  // The fraction of reads sent to every live replica rather than R, so
  // that a replica outside a key's first R still gets repaired by reads.
  // 0.1 costs 5% more replica calls at N=3, R=2.
  double read_repair_chance = 0.1;
};

// A routed store over `replicas`, one per node of `ring`, in ring.nodes()
// order, as a smart client routes: no node of its own, hints left with
// the key's home replica when it can keep them. Throws InvalidArgument if
// the replicas do not match the ring or the quorums are impossible
// (R or W above N, N above the ring's nodes).
std::unique_ptr<Store> open_routed_store(RouteOptions options, Ring ring,
                                         std::vector<std::shared_ptr<Store>> replicas);

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_ROUTED_STORE_H_

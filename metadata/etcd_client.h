// A client of etcd's v3 API over gRPC: the few calls cluster metadata
// needs (reads of a prefix, a write guarded by a key's revision, leases,
// and a watch that survives etcd restarts). Thread-safe.
//
// Why gRPC and not etcd's JSON gateway: a watch and a lease's keep-alive
// are streams, which gRPC carries natively and the gateway turns into
// chunked JSON with base64 keys; and every node links gRPC already.

#ifndef CAIRN_METADATA_ETCD_CLIENT_H_
#define CAIRN_METADATA_ETCD_CLIENT_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace cairn::internal {

class EtcdClient {
 public:
  struct Options {
    std::vector<std::string> endpoints;  // host:port, tried in turn
    std::chrono::milliseconds timeout{2000};  // per call, per endpoint
  };

  struct Entry {
    std::string key, value;
    int64_t create_revision = 0;
    int64_t mod_revision = 0;
    int64_t lease = 0;
  };

  // One write of commit_if(): a put (`value` set) or a delete.
  struct Write {
    std::string key;
    std::optional<std::string> value;  // nullopt: delete the key
    int64_t lease = 0;                 // puts only; 0: none
  };

  // Throws InvalidArgument without endpoints.
  explicit EtcdClient(Options options);
  ~EtcdClient();
  EtcdClient(const EtcdClient&) = delete;
  EtcdClient& operator=(const EtcdClient&) = delete;

  // The entries whose keys start with `prefix`, in key order, and in
  // `*revision` (if not null) etcd's revision they were read at. Calls
  // throw Unavailable naming every endpoint tried when none answers.
  std::vector<Entry> get_prefix(std::string_view prefix, int64_t* revision = nullptr);
  std::optional<Entry> get(std::string_view key);

  // Applies `writes` in one transaction if the mod revision of `guard` is
  // `expected` (0: `guard` is absent); returns false, writing nothing, if
  // it is not. The revision of the transaction goes to `*revision`.
  bool commit_if(std::string_view guard, int64_t expected, std::span<const Write> writes,
                 int64_t* revision = nullptr);

  // Puts `value` at `key`, attached to `lease` (0: none); returns the
  // revision of the write.
  int64_t put(std::string_view key, std::string_view value, int64_t lease = 0);

  // Drops the history before `revision` (etcd's compaction): a watch
  // that needs it gets a reset.
  void compact(int64_t revision);

  // A lease of `ttl`; keep_alive() renews it once and returns the TTL left
  // (throws NotFound once it has expired); revoke() ends it, deleting the
  // keys attached to it.
  int64_t grant_lease(std::chrono::seconds ttl);
  std::chrono::seconds keep_alive(int64_t lease);
  void revoke(int64_t lease);

  // What a watch reports: the events after the last report, or (`reset`)
  // every entry under the prefix, when etcd compacted the revisions the
  // watch needed and the events between are lost.
  struct Event {
    bool deleted = false;
    Entry entry;  // a delete carries only the key and mod_revision
  };
  struct Update {
    bool reset = false;
    std::vector<Event> events;     // !reset
    std::vector<Entry> snapshot;   // reset
    int64_t revision = 0;          // etcd's revision this update brings the watcher to
  };
  class Watch {
   public:
    virtual ~Watch() = default;  // stops the watch; no callback runs after it returns
  };
  // Watches the keys under `prefix` from revision `after` + 1, calling
  // `on_update` for each change from a thread of its own, in order. When
  // the stream breaks (etcd down, restarted, another endpoint), it calls
  // `on_error` with why, and reconnects (backing off up to 2 s) from where
  // it left off, so that no event is missed or repeated.
  std::unique_ptr<Watch> watch_prefix(std::string prefix, int64_t after,
                                      std::function<void(const Update&)> on_update,
                                      std::function<void(const std::string&)> on_error);

  // The end of the key range `prefix` starts (etcd's range_end).
  static std::string prefix_end(std::string_view prefix);

  struct Impl;  // the channels and stubs; shared with the watches

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace cairn::internal

#endif  // CAIRN_METADATA_ETCD_CLIENT_H_

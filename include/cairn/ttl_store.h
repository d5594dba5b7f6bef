// TtlStore: keys that expire. A version lives until its clock's timestamp
// (the write's own time, the same on every replica) plus its TTL: the
// store's default (`ttl: {seconds: N}`), or the one its put asked for
// (Versioned::ttl_ms; Client::put with a TTL, `cairn put --ttl`, HTTP
// `?ttl=`, RESP `SET ... EX`). An expired version is never returned, by
// any read. A background sweeper deletes expired versions, at a bounded
// rate; in a cluster, each node's routing layer reaps them from its
// replicas once every replica agrees (docs/ttl.md).
//
// The layer keeps each version's TTL in front of its value (a format byte
// and a varint), so it goes above the engine and above `route` (and above
// a `cache`): every replica stores the same bytes, and decides expiry by
// the same timestamp without coordination. Clock skew between nodes moves
// the moment a version disappears by that skew; docs/ttl.md explains.
//
// Thread-safe.

#ifndef CAIRN_TTL_STORE_H_
#define CAIRN_TTL_STORE_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "cairn/export.h"
#include "cairn/forwarding_store.h"

CAIRN_API_BEGIN
namespace cairn {

// The clock entry a ttl layer adds one to when a put's clock is not newer
// than a version that expired unseen ("@2147483646" in text): the write
// then succeeds it, as a write succeeds a delete's tombstone.
inline constexpr NodeId kExpiryEntry = 0xFFFFFFFE;

struct TtlOptions {
  // Used in error messages and describe().
  std::string name = "ttl";
  // The TTL of a version put without one; 0: such versions never expire.
  int64_t default_ttl_ms = 0;
  // The sweeper, for a stack that does not route (a routed store's nodes
  // reap expired versions instead): a pass over every key this often
  // (0: never), examining at most `sweep_rate` keys per second.
  int64_t sweep_interval_ms = 60'000;
  uint64_t sweep_rate = 10'000;
  // The largest value accepted on put: the TTL takes up to 11 bytes in
  // front of it, so keep it that much under the limit of the store below.
  // The default is the engines' 16 MiB less 16.
  size_t max_value_size = (16 << 20) - 16;
  // Now, in ms since the Unix epoch; default the wall clock (tests move it).
  std::function<int64_t()> now;
};

struct TtlStats {
  uint64_t expired_hidden = 0;  // expired versions reads left out
  uint64_t swept = 0;           // expired versions the sweeper deleted
  uint64_t sweep_passes = 0;    // passes over every key completed
  uint64_t sweep_keys = 0;      // keys the sweeper examined
};

class TtlStore final : public ForwardingStore {
 public:
  TtlStore(std::unique_ptr<Store> inner, TtlOptions options);
  ~TtlStore() override;

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  // Stores the TTL in front of the value. A put that is obsolete only
  // because of versions that expired is retried once as their successor
  // (one more on kExpiryEntry): an expired version no longer blocks writes.
  PutResult put_stamped(std::string_view key, const Versioned& value,
                        PutReply* stored) override;
  std::vector<VectorClock> versions(std::string_view key) override;
  // Refused: an update function below would see the TTL's bytes.
  AtomicResult atomic(std::string_view key, std::string_view function,
                      std::string_view argument) override;
  std::unique_ptr<StoreIterator> scan() override;
  void close() override;
  std::string describe() const override;

  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  bool async_calls_block() const override { return inner().async_calls_block(); }

  // One pass of the sweeper over every key of the store below, now
  // (at most `rate` keys per second; 0: unthrottled). Returns the expired
  // versions deleted.
  uint64_t sweep(uint64_t rate = 0);
  TtlStats stats() const;

  // Whether a version as stored below a ttl layer (its value starting with
  // the TTL) has expired at `now_ms`. Throws Corruption for a value that
  // no ttl layer wrote.
  static bool expired(const Versioned& stored, int64_t now_ms);

 private:
  int64_t now() const;
  // Throws InvalidArgument for a value over max_value_size.
  Versioned encode(std::string_view key, const Versioned& value) const;
  // Strips the TTLs and drops the versions expired at `now`.
  void decode(std::string_view key, std::vector<Versioned>* versions, int64_t now) const;
  // `value` made a successor of the expired versions among `stored`, or
  // false if none has expired.
  bool succeed_expired(const std::vector<Versioned>& stored, Versioned* value) const;
  void sweeper_loop();

  TtlOptions options_;
  mutable std::atomic<uint64_t> expired_hidden_{0};
  std::atomic<uint64_t> swept_{0}, passes_{0}, sweep_keys_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread sweeper_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_TTL_STORE_H_

// ResolvingStore: settles the concurrent versions a read returns (get,
// get_all, scan; versions() passes through untouched, as in Voldemort, so
// writers can still supersede every sibling). It belongs at the top of a
// client's stack, above compression, so a custom merge sees plain values.
//
//   vector-clock  drop versions another version dominates; keep concurrent
//                 siblings for the application (replicas can return both)
//   timestamp     last write wins by the clock's timestamp; ties go to the
//                 larger clock bytes, then the larger value, so every reader
//                 picks the same one
//   custom        an application's merge (cairn/resolver.h)
//
// timestamp and custom return one version whose clock is the merge of all
// the siblings' clocks: the resolved value has seen them all, so a write
// built on it replaces them all. With timestamp, writes that raced as
// siblings are settled by dropping all but the latest: last write wins, by
// design, so read-modify-writes (Client::update) by writers with different
// node ids can lose updates; writers sharing a node id conflict instead.
//
// Thread-safe: it keeps no state but its strategy.

#ifndef CAIRN_RESOLVING_STORE_H_
#define CAIRN_RESOLVING_STORE_H_

#include <string>

#include "cairn/export.h"
#include "cairn/forwarding_store.h"
#include "cairn/resolver.h"

CAIRN_API_BEGIN
namespace cairn {

class ResolvingStore final : public ForwardingStore {
 public:
  enum class Strategy { kVectorClock, kTimestamp, kCustom };

  // REQUIRES: `merge` is set for kCustom.
  ResolvingStore(std::unique_ptr<Store> inner, Strategy strategy, std::string merge_name = "",
                 MergeFunction merge = nullptr);

  void get_into(std::string_view key, std::vector<Versioned>* out) override;
  std::map<std::string, std::vector<Versioned>> get_all(
      std::span<const std::string> keys) override;
  std::unique_ptr<StoreIterator> scan() override;
  std::string describe() const override;

  // Non-blocking: reads are settled in their callback; the other calls
  // pass through.
  void async_get(std::string_view key, Callback<std::vector<Versioned>> done) override;
  void async_get_all(std::vector<std::string> keys,
                     Callback<std::map<std::string, std::vector<Versioned>>> done) override;
  void async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) override;
  void async_remove(std::string_view key, const VectorClock& version,
                    Callback<bool> done) override;
  void async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) override;
  bool async_calls_block() const override { return inner().async_calls_block(); }

  // Applies the strategy to one key's versions, in place. Throws
  // Corruption, naming the key, if a custom merge throws.
  void resolve(std::string_view key, std::vector<Versioned>* versions) const;

 private:
  Strategy strategy_;
  std::string merge_name_;
  MergeFunction merge_;
};

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_RESOLVING_STORE_H_

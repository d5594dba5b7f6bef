// cairn::Client<K, V>: the typed face of a store. It serializes keys and
// values with the store's serializers and adds what applications need on
// top of the byte-level Store: writes that succeed what they read, an
// optimistic conditional put, update(), the single-key transaction, and
// put_async(), a put that does not wait.
//
//   auto users = cairn::open_client<std::string, cairn::Json>("cairn.yaml", "users");
//   users.put("alice", cairn::Json::object({{"name", "Alice"}, {"id", 7}}));
//   auto visits = cairn::open_client<std::string, int64_t>("cairn.yaml", "visits");
//   visits.update("home", [](std::optional<int64_t> n) { return n.value_or(0) + 1; });
//   for (auto& [k, v] : batch) users.put_async(k, v);  // all in flight at once
//   for (auto& failed : users.flush()) ...;            // waits; the failures
//
// A Client is safe for concurrent use by multiple threads; copies share
// the same stack, which is closed when the last copy goes away.
//
// Exactness has one limit: engines keep no tombstones, so remove() resets a
// key's clock. A clock read before a remove can then look newer than a
// write made after it: put_if() with such a clock, or an update() racing a
// remove, may overwrite that write. Avoid removing keys that are updated
// concurrently (write a deleted marker as the value instead).

#ifndef CAIRN_CLIENT_H_
#define CAIRN_CLIENT_H_

#include <exception>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "cairn/config.h"
#include "cairn/errors.h"
#include "cairn/export.h"
#include "cairn/ordered_puts.h"
#include "cairn/serializer.h"
#include "cairn/store.h"
#include "cairn/update.h"

CAIRN_API_BEGIN
namespace cairn {

struct ClientOptions {
  // The node id this client's writes increment in a key's vector clock.
  // Writers sharing an id see each other's racing writes as conflicts (the
  // loser's write is obsolete, and update() retries it), which is what makes
  // update() and put_if() exact. Writers with different ids that race leave
  // siblings instead. Embedded stores use one id for every writer; in a
  // cluster the routing layer's home node also stamps an entry of its own
  // (kStampBase + its id). Below kStampBase.
  NodeId node_id = 0;
  // How many times put() and update() try a write that comes back obsolete
  // (another writer got there first) before giving up with ObsoleteVersion.
  int max_tries = 16;
};

// A named update (cairn/update.h): a function registered where it runs,
// and its argument. Client::update() runs it as one atomic step.
struct Update {
  std::string function;
  std::string argument;

  static Update increment(int64_t delta) { return {"increment", std::to_string(delta)}; }
  static Update append(std::string_view bytes) { return {"append", std::string(bytes)}; }
};

// What a named update did: whether it wrote, and the key's value and clock
// after it (or, if it did not write, now).
template <typename V>
struct UpdateResult {
  bool applied = false;
  std::optional<V> value;
  VectorClock clock;
};

// A value with the clock of the write that produced it.
template <typename V>
struct VersionedValue {
  V value;
  VectorClock clock;
};

template <typename K, typename V>
class Client {
 public:
  // REQUIRES: non-null arguments.
  Client(std::shared_ptr<Store> store, std::shared_ptr<const Serializer<K>> keys,
         std::shared_ptr<const Serializer<V>> values, ClientOptions options = {})
      : store_(std::move(store)),
        keys_(std::move(keys)),
        values_(std::move(values)),
        options_(options) {
    if (options_.node_id >= kStampBase) {
      throw InvalidArgument("client node_id " + std::to_string(options_.node_id) +
                            " is a cluster node's stamp entry; writers use ids below 2^31");
    }
    async_ = std::make_shared<AsyncPuts>(store_, options_.node_id, options_.max_tries);
  }

  // The value of `key`, or nullopt if absent. If the stack leaves several
  // concurrent versions (no resolver settles them), throws
  // FailedPrecondition saying so: read them with get_versions() and write a
  // merge with put_if().
  std::optional<V> get(const K& key) const {
    std::vector<VersionedValue<V>> versions = get_versions(key);
    if (versions.empty()) return std::nullopt;
    if (versions.size() > 1) {
      throw FailedPrecondition(std::to_string(versions.size()) +
                               " concurrent versions of the key: read them with get_versions() "
                               "or add a resolver to the stack (`resolve: ...`)");
    }
    return std::move(versions[0].value);
  }

  // Every version of `key` (siblings when writes were concurrent).
  std::vector<VersionedValue<V>> get_versions(const K& key) const {
    std::vector<VersionedValue<V>> out;
    for (Versioned& v : store_->get(keys_->to_bytes(key))) {
      out.push_back({values_->read(v.value), std::move(v.clock)});
    }
    return out;
  }

  // Writes `value` as a successor of every version stored now (so it
  // replaces them all) and returns the clock it was stored under (in a
  // cluster, with the home node's entry the routing layer adds). A racing writer with the same
  // node id makes the write obsolete; it is retried, up to max_tries.
  VectorClock put(const K& key, const V& value) { return put(key, value, std::chrono::milliseconds(0)); }

  // put(), with a time to live: the version expires `ttl` after the write
  // (cairn/ttl_store.h). Needs a `ttl` layer in the stack (InvalidArgument
  // otherwise); 0 takes the layer's default, a negative TTL never expires.
  VectorClock put(const K& key, const V& value, std::chrono::milliseconds ttl) {
    const std::string k = keys_->to_bytes(key);
    const std::string v = values_->to_bytes(value);
    for (int attempt = 0; attempt < options_.max_tries; ++attempt) {
      VectorClock stored;
      Versioned version{v, successor(k)};
      version.ttl_ms = ttl.count();
      if (store_->put(k, version, &stored) == PutResult::kStored) return stored;
    }
    throw ObsoleteVersion("put lost " + std::to_string(options_.max_tries) +
                          " races in a row for the same key");
  }

  // Writes `value` as the successor of `version` (a clock from get_versions,
  // or a merge of several) and returns the clock written. Returns nullopt,
  // writing nothing, unless every stored version is at or before `version`:
  // a write that came after the read, or a sibling `version` does not
  // include, makes it stale. `ttl` as for put().
  std::optional<VectorClock> put_if(const K& key, const V& value, const VectorClock& version,
                                    std::chrono::milliseconds ttl = std::chrono::milliseconds(0)) {
    const std::string k = keys_->to_bytes(key);
    for (const VectorClock& c : store_->versions(k)) {
      const Occurred o = compare(c, version);
      if (o != Occurred::kBefore && o != Occurred::kEqual) return std::nullopt;
    }
    Versioned v{values_->to_bytes(value), version.incremented(options_.node_id, now_ms())};
    v.ttl_ms = ttl.count();
    VectorClock stored;
    if (store_->put(k, v, &stored) != PutResult::kStored) return std::nullopt;
    return stored;
  }

  // Deletes every version stored now. Returns false if the key was absent.
  bool remove(const K& key) {
    const std::string k = keys_->to_bytes(key);
    const std::vector<VectorClock> clocks = store_->versions(k);
    if (clocks.empty()) return false;
    VectorClock all;
    for (const VectorClock& c : clocks) all = all.merged(c);
    return store_->remove(k, all);
  }

  // put() without waiting: starts the write and returns at once, with a
  // future of the clock stored (its get() throws what put() would have).
  // A client's writes of one key apply in the order it made them: the next
  // starts once the one before it has answered, at most one of a key in
  // flight (H2O's rule); writes of different keys are all in flight at
  // once, as many as are made. Over a store whose non-blocking calls block
  // (an embedded LMDB store), the write is done before this returns. The
  // last copy of the client, going away, waits for the writes in flight.
  std::future<VectorClock> put_async(const K& key, const V& value) {
    auto promise = std::make_shared<std::promise<VectorClock>>();
    std::future<VectorClock> stored = promise->get_future();
    // `state` outlives the callback: the last copy of the client waits for
    // the writes in flight before it lets state (and the store) go.
    async_->writes.put(keys_->to_bytes(key), values_->to_bytes(value),
                       [promise, state = async_.get(), key](VectorClock clock, std::exception_ptr e) {
                          if (!e) return promise->set_value(std::move(clock));
                          {
                            std::lock_guard lock(state->mu);
                            state->failures.push_back(PutFailure{key, e});
                          }
                          promise->set_exception(e);
                        });
    return stored;
  }

  // A put_async() that failed: its key and its error.
  struct PutFailure {
    K key;
    std::exception_ptr error;
  };
  // Waits until every put_async() made before it (through this client or a
  // copy) has answered, and returns the ones that failed since the last
  // flush(), in the order they failed.
  std::vector<PutFailure> flush() {
    async_->writes.wait_idle();
    std::lock_guard lock(async_->mu);
    return std::exchange(async_->failures, {});
  }

  // The single-key transaction: reads `key`, calls fn(current) with its value
  // (nullopt if absent) and writes what fn returns as the successor of what
  // it read. If another writer got there first the write is obsolete, and
  // update() reads again and calls fn again, up to max_tries, then throws
  // ObsoleteVersion. fn may run more than once, so it should only compute.
  // Siblings are a conflict fn cannot see: FailedPrecondition, as in get().
  template <typename Fn>
    requires std::is_invocable_v<Fn&, const std::optional<V>&>
  V update(const K& key, Fn&& fn) {
    const std::string k = keys_->to_bytes(key);
    for (int attempt = 0; attempt < options_.max_tries; ++attempt) {
      std::vector<Versioned> stored = store_->get(k);
      if (stored.size() > 1) {
        throw FailedPrecondition("update: " + std::to_string(stored.size()) +
                                 " concurrent versions of the key; resolve them first");
      }
      std::optional<V> current;
      VectorClock clock;
      if (!stored.empty()) {
        current = values_->read(stored[0].value);
        clock = std::move(stored[0].clock);
      }
      V next = fn(std::as_const(current));
      clock.increment(options_.node_id, now_ms());
      if (store_->put(k, Versioned{values_->to_bytes(next), clock}) == PutResult::kStored) {
        return next;
      }
    }
    throw ObsoleteVersion("update lost " + std::to_string(options_.max_tries) +
                          " races in a row for the same key");
  }

  // A named update, as one atomic step where the key lives: through a
  // server-routed cluster (or to a single node), the key's home node runs
  // it, one update of the key at a time, and retries it there after a
  // lost race; no round trip per conflict. Where the stack cannot
  // (Store::atomic is Unsupported: an embedded store, a smart client's
  // route, a compress layer), this client runs the same registered
  // function in update()'s read-modify-write loop.
  UpdateResult<V> update(const K& key, const Update& u) {
    const std::string k = keys_->to_bytes(key);
    AtomicResult r;
    try {
      r = store_->atomic(k, u.function, u.argument);
    } catch (const Unsupported&) {
      r = internal::run_update(*store_, k, u.function, u.argument, values_.get(),
                               options_.node_id, options_.max_tries);
    }
    UpdateResult<V> out;
    out.applied = r.applied;
    if (r.value) out.value = values_->read(*r.value);
    out.clock = std::move(r.clock);
    return out;
  }

  // The key's value as an integer (in the value's format: an int64, a
  // decimal string, a JSON number), absent as 0, plus `delta`: the new value.
  V increment(const K& key, int64_t delta = 1) {
    return *update(key, Update::increment(delta)).value;
  }
  // Writes `desired` if the value is `expected` (nullopt: if the key is
  // absent). Whether it wrote.
  bool compare_and_set(const K& key, const std::optional<V>& expected, const V& desired) {
    std::optional<std::string> e;
    if (expected) e = values_->to_bytes(*expected);
    return update(key, Update{"cas", cas_argument(e, values_->to_bytes(desired))}).applied;
  }
  // Writes `value` if the key is absent. Whether it wrote.
  bool set_if_absent(const K& key, const V& value) {
    return update(key, Update{"set_if_absent", values_->to_bytes(value)}).applied;
  }

  // The stack under this client. Borrowed; valid while any copy lives.
  Store& store() const { return *store_; }
  const Serializer<K>& key_serializer() const { return *keys_; }
  const Serializer<V>& value_serializer() const { return *values_; }

 private:
  // The clock a write that supersedes every stored version carries.
  VectorClock successor(const std::string& key) const {
    VectorClock clock;
    for (const VectorClock& c : store_->versions(key)) clock = clock.merged(c);
    clock.increment(options_.node_id, now_ms());
    return clock;
  }

  // What put_async() shares among copies of the client. Its writer's
  // destructor waits for the writes in flight.
  struct AsyncPuts {
    AsyncPuts(std::shared_ptr<Store> store, NodeId node, int max_tries)
        : writes(std::move(store), node, max_tries) {}
    std::mutex mu;
    std::vector<PutFailure> failures;  // guarded by mu
    internal::OrderedPuts writes;      // last: destroyed (waiting) first
  };

  std::shared_ptr<Store> store_;
  std::shared_ptr<const Serializer<K>> keys_;
  std::shared_ptr<const Serializer<V>> values_;
  ClientOptions options_;
  std::shared_ptr<AsyncPuts> async_;
};

namespace internal {

// The fallback of the adapt_serializer customization point: no adaptation.
// cairn/protobuf.h adds one for protobuf message types.
template <typename T>
std::shared_ptr<const Serializer<T>> adapt_serializer(SerializerTag, std::type_identity<T>,
                                                      const AnySerializer&) {
  return nullptr;
}

// A protobuf message type, recognised without protobuf's headers.
template <typename T>
concept LooksLikeProtobuf = requires {
  T::descriptor();
  T::default_instance();
};

template <typename T>
std::shared_ptr<const Serializer<T>> typed(std::shared_ptr<const AnySerializer> s,
                                           std::string_view store, const char* which) {
#ifndef CAIRN_PROTOBUF_H_
  // Without cairn/protobuf.h this would compile to a client that can never
  // open (and, next to a file that includes it, break the one-definition
  // rule): refuse at compile time instead.
  static_assert(!LooksLikeProtobuf<T>,
                "include cairn/protobuf.h before cairn/client.h to open a client of a protobuf "
                "message type");
#endif
  auto typed = std::dynamic_pointer_cast<const Serializer<T>>(s);
  if (typed == nullptr) typed = adapt_serializer(SerializerTag{}, std::type_identity<T>{}, *s);
  if (typed == nullptr) {
    throw InvalidArgument("store '" + std::string(store) + "': its " + which + " serializer is " +
                          s->describe() + ", which does not make the client's " + which +
                          " type (check Client<K, V> against the config)");
  }
  return typed;
}

}  // namespace internal

// Opens store `store` of `config` with its configured serializers. Throws
// InvalidArgument if they do not produce K and V (e.g. Client<std::string,
// std::string> over a json store), and whatever opening the stack throws.
template <typename K, typename V>
Client<K, V> open_client(const Config& config, std::string_view store,
                         ClientOptions options = {}) {
  StoreSerializers s = config.serializers(store);
  auto keys = internal::typed<K>(s.key, store, "key");
  auto values = internal::typed<V>(s.value, store, "value");
  return Client<K, V>(std::shared_ptr<Store>(config.open(store)), std::move(keys),
                      std::move(values), options);
}

template <typename K, typename V>
Client<K, V> open_client(const std::string& config_path, std::string_view store,
                         ClientOptions options = {}) {
  return open_client<K, V>(Config::load(config_path), store, options);
}

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_CLIENT_H_

#include "cairn/ttl_store.h"

#include <chrono>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "routing/reaper.h"
#include "routing/routed_store.h"
#include "catalogue/builtin.h"
#include "core/async.h"
#include "core/varint.h"

namespace cairn {

namespace {

// The first byte of every value a ttl layer stores; a varint TTL in ms
// follows (0: never expires), then the value.
constexpr char kFormat = 0x01;

// Splits a stored value into its TTL and the value. Throws Corruption.
int64_t split(std::string_view stored, std::string_view* value) {
  internal::ByteReader r(stored);
  uint8_t format = 0;
  uint64_t ttl = 0;
  if (!r.byte(&format) || format != static_cast<uint8_t>(kFormat) || !r.varint(&ttl) ||
      ttl > static_cast<uint64_t>(INT64_MAX)) {
    throw Corruption("a value that no ttl layer wrote (the `ttl` layer must be in the stack "
                     "from the store's first write)");
  }
  *value = r.rest();
  return static_cast<int64_t>(ttl);
}

// Expired once `ttl` ms have passed since the write's timestamp. Written
// as a difference so that no TTL, however long, and no timestamp a
// decoded clock may carry can overflow.
bool past(const VectorClock& clock, int64_t ttl, int64_t now) {
  const int64_t written = clock.timestamp_ms();
  return ttl > 0 && written <= now && static_cast<uint64_t>(now) - static_cast<uint64_t>(written) >=
                                          static_cast<uint64_t>(ttl);
}

}  // namespace

TtlStore::TtlStore(std::unique_ptr<Store> inner, TtlOptions options)
    : ForwardingStore(std::move(inner)), options_(std::move(options)) {
  if (options_.default_ttl_ms < 0) throw InvalidArgument("ttl: the default TTL is negative");
  // A routed store's nodes reap expired versions from their replicas (the
  // node's route learns here how to tell one); an unrouted one is swept
  // here.
  if (RoutedStore* route = find_layer<RoutedStore>(ForwardingStore::inner())) {
    if (Reaper* reaper = route->reaper()) reaper->set_expired(&TtlStore::expired);
  } else if (options_.sweep_interval_ms > 0) {
    sweeper_ = std::thread([this] { sweeper_loop(); });
  }
}

TtlStore::~TtlStore() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
}

int64_t TtlStore::now() const { return options_.now ? options_.now() : now_ms(); }

bool TtlStore::expired(const Versioned& stored, int64_t now_ms) {
  std::string_view value;
  return past(stored.clock, split(stored.value, &value), now_ms);
}

Versioned TtlStore::encode(std::string_view key, const Versioned& value) const {
  check_value(options_.name, key, value.value, options_.max_value_size);
  const int64_t ttl = value.ttl_ms > 0    ? value.ttl_ms
                      : value.ttl_ms == 0 ? options_.default_ttl_ms
                                          : 0;
  Versioned out{std::string(), value.clock, value.write_id, value.stamp, value.replaces};
  // Expiry counts from the write's timestamp: a clock that carries none
  // (parsed from text, built by hand) is stamped now, so that it does not
  // expire at once.
  if (out.clock.timestamp_ms() <= 0) out.clock.set_timestamp_ms(now());
  out.value.reserve(value.value.size() + 10);
  out.value.push_back(kFormat);
  internal::put_varint(&out.value, static_cast<uint64_t>(ttl));
  out.value.append(value.value);
  return out;
}

void TtlStore::decode(std::string_view key, std::vector<Versioned>* versions, int64_t t) const {
  size_t kept = 0;
  for (Versioned& v : *versions) {
    std::string_view value;
    int64_t ttl;
    try {
      ttl = split(v.value, &value);
    } catch (const Corruption& e) {
      throw Corruption("store '" + options_.name + "' key " + printable_key(key) + ": " + e.what());
    }
    if (past(v.clock, ttl, t)) {
      expired_hidden_.fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    v.value.erase(0, static_cast<size_t>(value.data() - v.value.data()));
    v.ttl_ms = ttl;
    if (&(*versions)[kept] != &v) (*versions)[kept] = std::move(v);
    ++kept;
  }
  versions->resize(kept);
}

void TtlStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  ForwardingStore::get_into(key, out);
  decode(key, out, now());
}

std::map<std::string, std::vector<Versioned>> TtlStore::get_all(std::span<const std::string> keys) {
  auto found = ForwardingStore::get_all(keys);
  const int64_t t = now();
  for (auto it = found.begin(); it != found.end();) {
    decode(it->first, &it->second, t);
    it = it->second.empty() ? found.erase(it) : std::next(it);
  }
  return found;
}

std::vector<VectorClock> TtlStore::versions(std::string_view key) {
  std::vector<Versioned> v;
  get_into(key, &v);
  std::vector<VectorClock> out;
  out.reserve(v.size());
  for (Versioned& x : v) out.push_back(std::move(x.clock));
  return out;
}

bool TtlStore::succeed_expired(const std::vector<Versioned>& stored, Versioned* value) const {
  const int64_t t = now();
  // A live version at or after the write makes it obsolete, whatever
  // expired beside it.
  for (const Versioned& s : stored) {
    if (expired(s, t)) continue;
    const Occurred o = compare(value->clock, s.clock);
    if (o == Occurred::kBefore || o == Occurred::kEqual) return false;
  }
  bool any = false;
  for (const Versioned& s : stored) {
    if (!expired(s, t)) continue;
    value->clock = value->clock.merged(s.clock);
    any = true;
  }
  if (any) value->clock.increment(kExpiryEntry, t);
  return any;
}

PutResult TtlStore::put_stamped(std::string_view key, const Versioned& value, PutReply* stored) {
  Versioned enc = encode(key, value);
  const std::optional<PutReply> before = stored ? std::optional(*stored) : std::nullopt;
  const PutResult r = ForwardingStore::put_stamped(key, enc, stored);
  if (r != PutResult::kObsolete) return r;
  // Obsolete: perhaps only because of versions nobody can read any more.
  std::vector<Versioned> current;
  ForwardingStore::get_into(key, &current);
  if (!succeed_expired(current, &enc)) return r;
  if (stored != nullptr) *stored = *before;
  return ForwardingStore::put_stamped(key, enc, stored);
}

AtomicResult TtlStore::atomic(std::string_view, std::string_view, std::string_view) {
  throw Unsupported("ttl: atomic updates run above the ttl layer (the function would see the "
                    "stored TTL); Client::update runs them itself");
}

namespace {

class TtlIterator final : public StoreIterator {
 public:
  TtlIterator(std::unique_ptr<StoreIterator> inner, std::function<void(std::string_view,
                                                                       std::vector<Versioned>*)> decode)
      : inner_(std::move(inner)), decode_(std::move(decode)) {}
  bool next() override {
    while (inner_->next()) {
      versions_ = inner_->versions();
      decode_(inner_->key(), &versions_);
      if (!versions_.empty()) return true;  // a key all of whose versions expired is skipped
    }
    return false;
  }
  std::string_view key() const override { return inner_->key(); }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  std::unique_ptr<StoreIterator> inner_;
  std::function<void(std::string_view, std::vector<Versioned>*)> decode_;
  std::vector<Versioned> versions_;
};

}  // namespace

std::unique_ptr<StoreIterator> TtlStore::scan() {
  return std::make_unique<TtlIterator>(ForwardingStore::scan(),
                                       [this](std::string_view k, std::vector<Versioned>* v) {
                                         decode(k, v, now());
                                       });
}

void TtlStore::close() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (sweeper_.joinable()) sweeper_.join();
  ForwardingStore::close();
}

std::string TtlStore::describe() const {
  std::string line = "ttl (";
  const int64_t d = options_.default_ttl_ms;
  line += d == 0          ? std::string("no default TTL")
          : d % 1000 == 0 ? "default " + std::to_string(d / 1000) + " s"
                          : "default " + std::to_string(d) + " ms";
  if (sweeper_.joinable()) {
    line += ", swept every " + std::to_string(options_.sweep_interval_ms) + " ms at " +
            std::to_string(options_.sweep_rate) + " keys/s";
  } else {
    RoutedStore* route = find_layer<RoutedStore>(inner());
    line += route == nullptr             ? ", not swept"
            : route->reaper() != nullptr ? ", reaped from the replicas by this node"
                                         : ", reaped by the nodes that route";
  }
  return describe_as(line + ")");
}

void TtlStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  inner().async_get(key, internal::transformed(std::move(done),
                                               [this, k = std::string(key)](auto& versions) {
                                                 decode(k, &versions, now());
                                               }));
}

void TtlStore::async_get_all(std::vector<std::string> keys,
                             Callback<std::map<std::string, std::vector<Versioned>>> done) {
  inner().async_get_all(std::move(keys), internal::transformed(std::move(done), [this](auto& found) {
                          const int64_t t = now();
                          for (auto it = found.begin(); it != found.end();) {
                            decode(it->first, &it->second, t);
                            it = it->second.empty() ? found.erase(it) : std::next(it);
                          }
                        }));
}

void TtlStore::async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) {
  Versioned enc;
  try {
    enc = encode(key, value);
  } catch (...) {
    return internal::fail(done, std::current_exception());
  }
  // Obsolete: read what is stored, and retry once as the successor of
  // what expired (all in callbacks: none of it blocks).
  auto retry = [this, k = std::string(key), enc, done](PutReply r, std::exception_ptr e) {
    if (e || r.result != PutResult::kObsolete) return done(std::move(r), std::move(e));
    inner().async_get(k, [this, k, enc, done, r](std::vector<Versioned> current,
                                                 std::exception_ptr ge) mutable {
      if (ge) return done(PutReply{}, std::move(ge));
      try {
        if (!succeed_expired(current, &enc)) return done(std::move(r), nullptr);
      } catch (...) {
        return done(PutReply{}, std::current_exception());
      }
      inner().async_put(k, enc, done);
    });
  };
  inner().async_put(key, enc, std::move(retry));
}

void TtlStore::async_remove(std::string_view key, const VectorClock& version, Callback<bool> done) {
  inner().async_remove(key, version, std::move(done));
}

void TtlStore::async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) {
  async_get(key, [done = std::move(done)](std::vector<Versioned> v, std::exception_ptr e) {
    std::vector<VectorClock> out;
    for (Versioned& x : v) out.push_back(std::move(x.clock));
    done(std::move(out), std::move(e));
  });
}

uint64_t TtlStore::sweep(uint64_t rate) {
  using Clock = std::chrono::steady_clock;
  const auto start = Clock::now();
  uint64_t removed = 0, keys = 0;
  for (auto it = inner().scan(); it->next();) {
    const int64_t t = now();
    for (const Versioned& v : it->versions()) {
      bool gone = false;
      try {
        gone = expired(v, t);
      } catch (const Corruption&) {
        continue;  // not ours to delete; reads report it
      }
      // Versions at or before an expired one go with it: there are none
      // but itself (stored versions are concurrent).
      if (gone && inner().remove(it->key(), v.clock)) ++removed;
    }
    ++keys;
    sweep_keys_.fetch_add(1, std::memory_order_relaxed);
    if (rate > 0 && keys % 64 == 0) {
      // Ahead of the rate: wait until these keys are due, or until close().
      const auto due = start + std::chrono::microseconds(keys * 1'000'000 / rate);
      std::unique_lock lock(mu_);
      if (cv_.wait_until(lock, due, [&] { return stopping_; })) break;
    }
  }
  swept_.fetch_add(removed, std::memory_order_relaxed);
  return removed;
}

void TtlStore::sweeper_loop() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(options_.sweep_interval_ms),
                       [&] { return stopping_; })) {
        return;
      }
    }
    try {
      sweep(options_.sweep_rate);
      passes_.fetch_add(1, std::memory_order_relaxed);
    } catch (const std::exception& e) {
      log(LogLevel::kWarn, "ttl '" + options_.name + "': sweep failed: " + e.what());
    }
  }
}

TtlStats TtlStore::stats() const {
  TtlStats s;
  s.expired_hidden = expired_hidden_.load(std::memory_order_relaxed);
  s.swept = swept_.load(std::memory_order_relaxed);
  s.sweep_passes = passes_.load(std::memory_order_relaxed);
  s.sweep_keys = sweep_keys_.load(std::memory_order_relaxed);
  return s;
}

std::unique_ptr<Store> make_ttl_layer(std::unique_ptr<Store> inner, const Params& p) {
  TtlOptions o;
  o.name = p.store();
  o.default_ttl_ms = p.get_int("seconds", 0, 0, int64_t{100} * 365 * 86400) * 1000;
  o.default_ttl_ms = p.get_int("ms", o.default_ttl_ms, 0, int64_t{100} * 365 * 86400 * 1000);
  o.sweep_interval_ms = p.get_int("sweep_interval_ms", o.sweep_interval_ms, 0, int64_t{7} * 86400 * 1000);
  o.max_value_size = p.get_bytes("max_value_size", o.max_value_size, 0, uint64_t{1} << 30);
  o.sweep_rate = static_cast<uint64_t>(p.get_int("sweep_rate", static_cast<int64_t>(o.sweep_rate), 1, 100'000'000));
  return std::make_unique<TtlStore>(std::move(inner), std::move(o));
}

}  // namespace cairn

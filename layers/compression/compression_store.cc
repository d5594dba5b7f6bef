#include "cairn/compression_store.h"

#include "cairn/errors.h"
#include "catalogue/builtin.h"
#include "core/async.h"
#include "layers/compression/codecs.h"

namespace cairn {

CompressionStore::CompressionStore(std::unique_ptr<Store> inner, CompressionOptions options)
    : ForwardingStore(std::move(inner)), options_(std::move(options)) {
  if (options_.level < 0) options_.level = internal::default_level(options_.codec);
}

void CompressionStore::decode(std::string_view key, std::vector<Versioned>* versions) const {
  thread_local std::string plain;
  for (Versioned& v : *versions) {
    try {
      internal::decode_value(v.value, options_.max_value_size, &plain);
    } catch (const Corruption& e) {
      throw Corruption("store '" + options_.name + "' key " + printable_key(key) + ": " + e.what());
    }
    v.value.swap(plain);
  }
}

void CompressionStore::get_into(std::string_view key, std::vector<Versioned>* out) {
  ForwardingStore::get_into(key, out);
  decode(key, out);
}

std::map<std::string, std::vector<Versioned>> CompressionStore::get_all(
    std::span<const std::string> keys) {
  auto found = ForwardingStore::get_all(keys);
  for (auto& [key, versions] : found) decode(key, &versions);
  return found;
}

Versioned CompressionStore::encode(std::string_view key, const Versioned& value) const {
  // The limit is on the value the caller sees: compression must not let a
  // value through that a get could not return.
  check_value(options_.name, key, value.value, options_.max_value_size);
  Versioned compressed{std::string(), value.clock, value.write_id, value.stamp, value.replaces,
                       value.ttl_ms};
  internal::encode_value(options_.codec, options_.level, options_.min_size, value.value,
                         &compressed.value);
  return compressed;
}

PutResult CompressionStore::put_stamped(std::string_view key, const Versioned& value,
                                        PutReply* stored) {
  return ForwardingStore::put_stamped(key, encode(key, value), stored);
}

void CompressionStore::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  inner().async_get(key, internal::transformed(std::move(done),
                                               [this, k = std::string(key)](auto& versions) {
                                                 decode(k, &versions);
                                               }));
}

void CompressionStore::async_get_all(
    std::vector<std::string> keys, Callback<std::map<std::string, std::vector<Versioned>>> done) {
  inner().async_get_all(std::move(keys),
                        internal::transformed(std::move(done), [this](auto& found) {
                          for (auto& [key, versions] : found) decode(key, &versions);
                        }));
}

void CompressionStore::async_put(std::string_view key, const Versioned& value,
                                 Callback<PutReply> done) {
  Versioned compressed;
  try {
    compressed = encode(key, value);
  } catch (...) {
    return internal::fail(done, std::current_exception());
  }
  inner().async_put(key, compressed, std::move(done));
}

void CompressionStore::async_remove(std::string_view key, const VectorClock& version,
                                    Callback<bool> done) {
  inner().async_remove(key, version, std::move(done));
}

void CompressionStore::async_versions(std::string_view key,
                                      Callback<std::vector<VectorClock>> done) {
  inner().async_versions(key, std::move(done));
}

namespace {

class DecompressingIterator final : public StoreIterator {
 public:
  DecompressingIterator(std::unique_ptr<StoreIterator> inner, std::string name, size_t max_size)
      : inner_(std::move(inner)), name_(std::move(name)), max_size_(max_size) {}
  bool next() override {
    if (!inner_->next()) return false;
    versions_ = inner_->versions();
    std::string plain;
    for (Versioned& v : versions_) {
      try {
        internal::decode_value(v.value, max_size_, &plain);
      } catch (const Corruption& e) {
        throw Corruption("store '" + name_ + "' key " + printable_key(inner_->key()) + ": " +
                         e.what());
      }
      v.value.swap(plain);
    }
    return true;
  }
  std::string_view key() const override { return inner_->key(); }
  const std::vector<Versioned>& versions() const override { return versions_; }

 private:
  std::unique_ptr<StoreIterator> inner_;
  std::string name_;
  size_t max_size_;
  std::vector<Versioned> versions_;
};

}  // namespace

std::unique_ptr<StoreIterator> CompressionStore::scan() {
  return std::make_unique<DecompressingIterator>(ForwardingStore::scan(), options_.name,
                                                 options_.max_value_size);
}

std::string CompressionStore::describe() const {
  std::string line = std::string("compress (") + internal::to_string(options_.codec);
  if (options_.codec != internal::Codec::kSnappy && options_.codec != internal::Codec::kRaw) {
    line += " level " + std::to_string(options_.level);
  }
  line += ", values from " + std::to_string(options_.min_size) + " B)";
  return describe_as(line);
}

std::unique_ptr<Store> make_compression_layer(std::unique_ptr<Store> inner, const Params& p) {
  CompressionOptions o;
  o.name = p.store();
  // `compress: zstd` names just the codec; the map form may say more.
  const std::optional<std::string> lone = p.scalar();
  const std::string name = lone ? *lone : p.get_choice("codec", {"zstd", "lz4", "snappy", "gzip"}, "zstd");
  if (!internal::codec_from_string(name, &o.codec) || o.codec == internal::Codec::kRaw) {
    p.fail("", "unknown codec '" + name + "' (expected zstd, lz4, snappy or gzip)");
  }
  o.level = static_cast<int>(p.get_int("level", internal::default_level(o.codec),
                                       internal::min_level(o.codec), internal::max_level(o.codec)));
  o.min_size = p.get_bytes("min_size", o.min_size, 0, uint64_t{1} << 30);
  o.max_value_size = p.get_bytes("max_value_size", o.max_value_size, 0, uint64_t{1} << 30);
  return std::make_unique<CompressionStore>(std::move(inner), std::move(o));
}

AtomicResult CompressionStore::atomic(std::string_view, std::string_view, std::string_view) {
  throw Unsupported("compress: atomic updates run above compression (the function would see "
                    "compressed bytes); Client::update runs them itself");
}

}  // namespace cairn

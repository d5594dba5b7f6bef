#include "cairn/store.h"

#include "cairn/errors.h"

namespace cairn {

const char* to_string(PutResult r) {
  return r == PutResult::kStored ? "stored" : "obsolete";
}

std::vector<Versioned> Store::get(std::string_view key) {
  std::vector<Versioned> out;
  get_into(key, &out);
  return out;
}

std::map<std::string, std::vector<Versioned>> Store::get_all(
    std::span<const std::string> keys) {
  std::map<std::string, std::vector<Versioned>> found;
  std::vector<Versioned> versions;
  for (const std::string& key : keys) {
    if (found.contains(key)) continue;
    get_into(key, &versions);
    if (!versions.empty()) found.emplace(key, std::move(versions));
  }
  return found;
}

std::vector<VectorClock> Store::versions(std::string_view key) {
  std::vector<VectorClock> clocks;
  for (Versioned& v : get(key)) clocks.push_back(std::move(v.clock));
  return clocks;
}

namespace {

// Runs a blocking call and hands its result, or what it threw, to `done`.
template <typename T, typename Call>
void answer_inline(const Callback<T>& done, Call&& call) {
  T result{};
  std::exception_ptr error;
  try {
    result = call();
  } catch (...) {
    error = std::current_exception();
  }
  done(std::move(result), std::move(error));
}

}  // namespace

void Store::async_get(std::string_view key, Callback<std::vector<Versioned>> done) {
  answer_inline(done, [&] { return get(key); });
}

void Store::async_get_all(std::vector<std::string> keys,
                          Callback<std::map<std::string, std::vector<Versioned>>> done) {
  answer_inline(done, [&] { return get_all(keys); });
}

void Store::async_put(std::string_view key, const Versioned& value, Callback<PutReply> done) {
  answer_inline(done, [&] {
    PutReply reply{.stored = value.clock};
    reply.result = put_stamped(key, value, &reply);
    return reply;
  });
}

void Store::async_remove(std::string_view key, const VectorClock& version, Callback<bool> done) {
  answer_inline(done, [&] { return remove(key, version); });
}

void Store::async_versions(std::string_view key, Callback<std::vector<VectorClock>> done) {
  answer_inline(done, [&] { return versions(key); });
}

std::string printable_key(std::string_view key) {
  constexpr size_t kMaxShown = 48;
  const std::string_view shown = key.substr(0, kMaxShown);
  bool printable = true;
  for (char c : shown) {
    if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') printable = false;
  }
  std::string out;
  if (printable) {
    out.append("\"").append(shown).append("\"");
  } else {
    static constexpr char kHex[] = "0123456789abcdef";
    out = "0x";
    for (char c : shown.substr(0, kMaxShown / 2)) {
      out += kHex[static_cast<unsigned char>(c) >> 4];
      out += kHex[static_cast<unsigned char>(c) & 0xf];
    }
    if (key.size() > kMaxShown / 2) out += "...";
    return out;
  }
  if (key.size() > kMaxShown) out += "...";
  return out;
}

void reject_ttl(std::string_view store) {
  throw InvalidArgument("store '" + std::string(store) +
                        "': a put with a TTL needs a `ttl` layer in the store's stack, above "
                        "`route` and the engine (docs/ttl.md)");
}

void reject_key(std::string_view store, std::string_view key,
                size_t max_key_size) {
  if (key.empty()) {
    throw InvalidArgument("store '" + std::string(store) + "': empty key");
  }
  throw InvalidArgument("store '" + std::string(store) + "': key " +
                        printable_key(key) + " is " +
                        std::to_string(key.size()) + " bytes; the limit is " +
                        std::to_string(max_key_size));
}

void check_value(std::string_view store, std::string_view key,
                 std::string_view value, size_t max_value_size) {
  if (value.size() > max_value_size) {
    throw InvalidArgument("store '" + std::string(store) + "': value for key " +
                          printable_key(key) + " is " +
                          std::to_string(value.size()) +
                          " bytes; the limit is " +
                          std::to_string(max_value_size));
  }
}

}  // namespace cairn

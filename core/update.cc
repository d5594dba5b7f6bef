#include "cairn/update.h"

#include <charconv>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>

#include "cairn/errors.h"

namespace cairn {

namespace {

// The bytes of values seen as text by a serializer that has none: raw.
class RawText final : public AnySerializer {
 public:
  std::string describe() const override { return "identity (raw bytes)"; }
  std::type_index type() const override { return typeid(std::string); }
  std::string parse_text(std::string_view text) const override { return std::string(text); }
  std::string format_text(std::string_view bytes) const override { return std::string(bytes); }
};

int64_t parse_integer(std::string_view text, const char* what) {
  std::string_view t = text;
  while (!t.empty() && (t.front() == ' ' || t.front() == '\n')) t.remove_prefix(1);
  while (!t.empty() && (t.back() == ' ' || t.back() == '\n')) t.remove_suffix(1);
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
  if (t.empty() || ec != std::errc() || end != t.data() + t.size()) {
    throw InvalidArgument(std::string("increment: ") + what + " '" + std::string(text) +
                          "' is not an integer");
  }
  return v;
}

UpdateOutput increment(const UpdateInput& in) {
  const int64_t delta = parse_integer(in.argument, "the argument");
  int64_t current = 0;
  if (in.current) current = parse_integer(in.values->format_text(*in.current), "the value");
  int64_t next;
  if (__builtin_add_overflow(current, delta, &next)) {
    throw InvalidArgument("increment: " + std::to_string(current) + " + " +
                          std::to_string(delta) + " overflows 64 bits");
  }
  return {true, in.values->parse_text(std::to_string(next))};
}

UpdateOutput append(const UpdateInput& in) {
  std::string v(in.current.value_or(std::string_view()));
  v.append(in.argument);
  return {true, std::move(v)};
}

// cas_argument(): a byte saying whether a value is expected, then, if one
// is, its length (4 bytes, little-endian) and bytes; then the new value.
UpdateOutput cas(const UpdateInput& in) {
  std::string_view a = in.argument;
  auto bad = [] { return InvalidArgument("cas: a malformed argument (make it with cas_argument())"); };
  if (a.empty()) throw bad();
  const bool expect_value = a[0] == 1;
  if (a[0] != 0 && a[0] != 1) throw bad();
  a.remove_prefix(1);
  std::optional<std::string_view> expected;
  if (expect_value) {
    if (a.size() < 4) throw bad();
    uint32_t n;
    std::memcpy(&n, a.data(), 4);
    a.remove_prefix(4);
    if (a.size() < n) throw bad();
    expected = a.substr(0, n);
    a.remove_prefix(n);
  }
  if (expected != in.current) return {false, {}};
  return {true, std::string(a)};
}

UpdateOutput set_if_absent(const UpdateInput& in) {
  if (in.current) return {false, {}};
  return {true, std::string(in.argument)};
}

std::map<std::string, UpdateFunction, std::less<>>& functions() {
  static auto* map = new std::map<std::string, UpdateFunction, std::less<>>{
      {"increment", increment},
      {"append", append},
      {"cas", cas},
      {"set_if_absent", set_if_absent},
  };
  return *map;
}

}  // namespace

void register_update(std::string name, UpdateFunction fn) {
  if (name.empty()) throw InvalidArgument("register_update: an empty name");
  if (!fn) throw InvalidArgument("register_update: '" + name + "' has no function");
  auto [it, added] = functions().emplace(name, std::move(fn));
  if (!added) throw InvalidArgument("register_update: '" + name + "' is registered already");
}

const UpdateFunction* find_update(std::string_view name) {
  auto& f = functions();
  auto it = f.find(name);
  return it == f.end() ? nullptr : &it->second;
}

std::string cas_argument(const std::optional<std::string>& expected, std::string_view desired) {
  std::string a;
  a.push_back(expected ? 1 : 0);
  if (expected) {
    if (expected->size() > std::numeric_limits<uint32_t>::max()) {
      throw InvalidArgument("cas: the expected value is over 4 GiB");
    }
    const auto n = static_cast<uint32_t>(expected->size());
    a.append(reinterpret_cast<const char*>(&n), 4);
    a.append(*expected);
  }
  a.append(desired);
  return a;
}

AtomicResult Store::atomic(std::string_view, std::string_view, std::string_view) {
  const std::string what = describe();
  throw Unsupported(what.substr(0, what.find('\n')) +
                    ": runs no atomic updates (Client::update runs them itself)");
}

namespace internal {

void run_updates(Store& store, std::string_view key, std::span<UpdateRequest> batch,
                 const AnySerializer* values, NodeId writer, int max_tries) {
  static const RawText raw;
  if (values == nullptr) values = &raw;
  std::vector<const UpdateFunction*> fns;
  for (UpdateRequest& u : batch) {
    fns.push_back(find_update(u.function));
    if (fns.back() == nullptr) {
      u.error = std::make_exception_ptr(
          NotFound("no update function '" + std::string(u.function) +
                   "' is registered here (built in: increment, append, cas, set_if_absent)"));
    }
  }
  for (int attempt = 0; attempt < max_tries; ++attempt) {
    std::vector<Versioned> stored = store.get(key);
    if (stored.size() > 1) {
      const auto e = std::make_exception_ptr(FailedPrecondition(
          "update: " + std::to_string(stored.size()) +
          " concurrent versions of the key; resolve them first"));
      for (UpdateRequest& u : batch) u.error = e;
      return;
    }
    std::optional<std::string> current;
    VectorClock clock;
    if (!stored.empty()) {
      current = std::move(stored[0].value);
      clock = std::move(stored[0].clock);
    }
    bool wrote = false;
    for (size_t i = 0; i < batch.size(); ++i) {
      UpdateRequest& u = batch[i];
      if (fns[i] == nullptr) continue;
      u.error = nullptr;
      u.result = AtomicResult{};
      try {
        std::optional<std::string_view> view;
        if (current) view = *current;
        UpdateOutput out = (*fns[i])(UpdateInput{view, u.argument, values});
        if (out.write) {
          current = std::move(out.value);
          u.result.applied = true;
          wrote = true;
        }
        u.result.value = current;
      } catch (...) {
        u.error = std::current_exception();
      }
    }
    if (!wrote) {
      for (UpdateRequest& u : batch) u.result.clock = clock;
      return;
    }
    clock.increment(writer, now_ms());
    VectorClock written;
    if (store.put(key, Versioned{*current, clock}, &written) == PutResult::kStored) {
      for (UpdateRequest& u : batch) u.result.clock = written;
      return;
    }
  }
  const auto e = std::make_exception_ptr(ObsoleteVersion(
      "update lost " + std::to_string(max_tries) + " races in a row for the same key"));
  for (UpdateRequest& u : batch) u.error = e;
}

AtomicResult run_update(Store& store, std::string_view key, std::string_view function,
                        std::string_view argument, const AnySerializer* values, NodeId writer,
                        int max_tries) {
  UpdateRequest one{function, argument, {}, nullptr};
  run_updates(store, key, std::span<UpdateRequest>(&one, 1), values, writer, max_tries);
  if (one.error) std::rethrow_exception(one.error);
  return std::move(one.result);
}

}  // namespace internal

}  // namespace cairn

#include <algorithm>
#include <charconv>
#include <chrono>
#include <limits>

#include "cairn/errors.h"
#include "cairn/versioned.h"
#include "core/clock_codec.h"
#include "core/varint.h"

namespace cairn {

VectorClock::VectorClock(std::initializer_list<ClockEntry> entries,
                         int64_t timestamp_ms)
    : timestamp_ms_(timestamp_ms) {
  for (const ClockEntry& e : entries) {
    if (e.counter == 0) {
      throw InvalidArgument("vector clock entry for node " +
                            std::to_string(e.node) + " has counter 0");
    }
    auto it = std::lower_bound(
        entries_.begin(), entries_.end(), e.node,
        [](const ClockEntry& x, NodeId n) { return x.node < n; });
    if (it != entries_.end() && it->node == e.node) {
      it->counter = std::max(it->counter, e.counter);
    } else {
      entries_.insert(it, e);
    }
  }
}

uint64_t VectorClock::counter(NodeId node) const {
  auto it = std::lower_bound(
      entries_.begin(), entries_.end(), node,
      [](const ClockEntry& x, NodeId n) { return x.node < n; });
  return (it != entries_.end() && it->node == node) ? it->counter : 0;
}

void VectorClock::increment(NodeId node, int64_t now) {
  auto it = std::lower_bound(
      entries_.begin(), entries_.end(), node,
      [](const ClockEntry& x, NodeId n) { return x.node < n; });
  if (it != entries_.end() && it->node == node) {
    if (it->counter == std::numeric_limits<uint64_t>::max()) {
      throw InvalidArgument("vector clock counter for node " +
                            std::to_string(node) + " would overflow");
    }
    ++it->counter;
  } else {
    entries_.insert(it, ClockEntry{node, 1});
  }
  timestamp_ms_ = now;
}

VectorClock VectorClock::incremented(NodeId node, int64_t now) const {
  VectorClock copy = *this;
  copy.increment(node, now);
  return copy;
}

VectorClock VectorClock::merged(const VectorClock& other) const {
  VectorClock out;
  out.timestamp_ms_ = std::max(timestamp_ms_, other.timestamp_ms_);
  out.entries_.reserve(entries_.size() + other.entries_.size());
  auto a = entries_.begin(), b = other.entries_.begin();
  while (a != entries_.end() || b != other.entries_.end()) {
    if (b == other.entries_.end() || (a != entries_.end() && a->node < b->node)) {
      out.entries_.push_back(*a++);
    } else if (a == entries_.end() || b->node < a->node) {
      out.entries_.push_back(*b++);
    } else {
      out.entries_.push_back({a->node, std::max(a->counter, b->counter)});
      ++a;
      ++b;
    }
  }
  return out;
}

Occurred compare(const VectorClock& a, const VectorClock& b) {
  // Walk both sorted entry lists once, noting whether each side has an
  // event the other lacks.
  bool a_bigger = false, b_bigger = false;
  auto x = a.entries().begin(), xe = a.entries().end();
  auto y = b.entries().begin(), ye = b.entries().end();
  while (x != xe && y != ye) {
    if (x->node == y->node) {
      if (x->counter > y->counter) a_bigger = true;
      if (y->counter > x->counter) b_bigger = true;
      ++x;
      ++y;
    } else if (x->node < y->node) {
      a_bigger = true;
      ++x;
    } else {
      b_bigger = true;
      ++y;
    }
    if (a_bigger && b_bigger) return Occurred::kConcurrent;
  }
  if (x != xe) a_bigger = true;
  if (y != ye) b_bigger = true;
  if (a_bigger && b_bigger) return Occurred::kConcurrent;
  if (a_bigger) return Occurred::kAfter;
  if (b_bigger) return Occurred::kBefore;
  return Occurred::kEqual;
}

const char* to_string(Occurred o) {
  switch (o) {
    case Occurred::kBefore: return "before";
    case Occurred::kAfter: return "after";
    case Occurred::kEqual: return "equal";
    case Occurred::kConcurrent: return "concurrent";
  }
  return "?";
}

std::string VectorClock::to_string() const {
  std::string s = "{";
  for (size_t i = 0; i < entries_.size(); ++i) {
    if (i > 0) s += ", ";
    if (entries_[i].node >= kStampBase) {
      s += '@';
      s += std::to_string(entries_[i].node - kStampBase);
    } else {
      s += std::to_string(entries_[i].node);
    }
    s += ':';
    s += std::to_string(entries_[i].counter);
  }
  s += '}';
  return s;
}

namespace {

[[noreturn]] void bad_clock_text(std::string_view text, std::string_view why) {
  throw InvalidArgument("bad vector clock \"" + std::string(text) +
                        "\": " + std::string(why) +
                        " (expected NODE:COUNTER pairs, e.g. \"0:3,2:1\")");
}

void skip_spaces(std::string_view* s) {
  while (!s->empty() && (s->front() == ' ' || s->front() == '\t')) {
    s->remove_prefix(1);
  }
}

template <typename T>
T parse_number(std::string_view text, std::string_view* s) {
  T v{};
  auto [p, ec] = std::from_chars(s->data(), s->data() + s->size(), v);
  if (ec != std::errc() || p == s->data()) bad_clock_text(text, "expected a number");
  s->remove_prefix(static_cast<size_t>(p - s->data()));
  return v;
}

}  // namespace

VectorClock VectorClock::parse(std::string_view text) {
  std::string_view s = text;
  skip_spaces(&s);
  const bool braced = !s.empty() && s.front() == '{';
  if (braced) s.remove_prefix(1);
  VectorClock clock;
  skip_spaces(&s);
  while (!s.empty() && s.front() != '}') {
    const bool stamp = !s.empty() && s.front() == '@';
    if (stamp) s.remove_prefix(1);
    auto node = parse_number<NodeId>(text, &s);
    if (stamp) {
      if (node >= kStampBase) bad_clock_text(text, "a node's stamp is @ID with ID below 2^31");
      node += kStampBase;
    } else if (node >= kStampBase) {
      bad_clock_text(text, "entries from 2^31 up are nodes' stamps: write them @ID");
    }
    skip_spaces(&s);
    if (s.empty() || s.front() != ':') bad_clock_text(text, "expected ':'");
    s.remove_prefix(1);
    skip_spaces(&s);
    const auto counter = parse_number<uint64_t>(text, &s);
    if (counter == 0) bad_clock_text(text, "counters start at 1");
    if (clock.counter(node) != 0) bad_clock_text(text, "node listed twice");
    clock.entries_.insert(
        std::lower_bound(clock.entries_.begin(), clock.entries_.end(), node,
                         [](const ClockEntry& x, NodeId n) { return x.node < n; }),
        ClockEntry{node, counter});
    skip_spaces(&s);
    if (!s.empty() && s.front() == ',') {
      s.remove_prefix(1);
      skip_spaces(&s);
    }
  }
  if (braced) {
    if (s.empty()) bad_clock_text(text, "missing '}'");
    s.remove_prefix(1);
    skip_spaces(&s);
  }
  if (!s.empty()) bad_clock_text(text, "unexpected trailing text");
  return clock;
}

void VectorClock::encode_to(std::string* out) const {
  internal::put_varint(out, entries_.size());
  NodeId prev = 0;
  for (const ClockEntry& e : entries_) {
    internal::put_varint(out, e.node - prev);
    internal::put_varint(out, e.counter);
    prev = e.node;
  }
  internal::put_fixed64(out, static_cast<uint64_t>(std::max<int64_t>(timestamp_ms_, 0)));
}

std::string VectorClock::encode() const {
  std::string out;
  encode_to(&out);
  return out;
}

VectorClock VectorClock::decode_from(std::string_view* in) {
  VectorClock clock;
  decode_from(in, &clock);
  return clock;
}

void VectorClock::decode_from(std::string_view* in, VectorClock* out) {
  internal::ByteReader r(*in);
  if (const char* why = internal::ClockCodec::read(&r, out)) {
    throw Corruption(std::string("vector clock: ") + why);
  }
  *in = r.rest();
}

VectorClock VectorClock::decode(std::string_view bytes) {
  VectorClock clock = decode_from(&bytes);
  if (!bytes.empty()) throw Corruption("vector clock: trailing bytes");
  return clock;
}

int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace cairn

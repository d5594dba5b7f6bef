#include "routing/reaper.h"

#include <algorithm>

#include "cairn/errors.h"
#include "cairn/log.h"
#include "cairn/ring.h"
#include "routing/routed_store.h"

namespace cairn {

Reaper::Reaper(RoutedStore& route, ReapOptions options)
    : route_(route), options_(std::move(options)) {
  if (options_.grace.count() < 0) throw InvalidArgument("route: reap_grace_ms is negative");
  if (options_.rate == 0) throw InvalidArgument("route: reap_rate must be at least 1");
  if (options_.interval.count() > 0) thread_ = std::thread([this] { run(); });
}

Reaper::~Reaper() { stop(); }

void Reaper::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void Reaper::set_expired(std::function<bool(const Versioned&, int64_t)> expired) {
  std::lock_guard lock(mu_);
  expired_ = std::move(expired);
}

ReapStats Reaper::stats() const {
  std::lock_guard lock(mu_);
  return total_;
}

bool Reaper::dead(const Versioned& v, int64_t at) const {
  if (is_tombstone(v.clock)) return v.clock.timestamp_ms() <= at;
  std::function<bool(const Versioned&, int64_t)> expired;
  {
    std::lock_guard lock(mu_);
    expired = expired_;
  }
  if (!expired) return false;
  try {
    return expired(v, at);
  } catch (const Corruption&) {
    return false;  // not a value the ttl layer wrote: not ours to judge
  }
}

void Reaper::reap_key(std::string_view key, int64_t now, ReapStats* out) {
  const int64_t settled = now - options_.grace.count();  // dead before this: past the grace
  const std::vector<NodeId> replicas =
      route_.ring().preference_list(key, route_.replication().n);
  std::vector<std::pair<std::shared_ptr<Store>, std::vector<Versioned>>> answers;
  for (NodeId id : replicas) {
    std::shared_ptr<Store> r = route_.replica(id);
    if (r == nullptr) return;
    try {
      answers.emplace_back(r, r->get(key));
    } catch (const Error& e) {
      // Down or unreachable: its copy may predate the tombstone.
      ++out->held_unreachable;
      log(LogLevel::kDebug, "reaper: key " + printable_key(key) + " kept: replica on node " +
                                std::to_string(id) + " did not answer: " + e.what());
      return;
    }
  }
  std::vector<Versioned> gone;  // every dead version, once each
  for (const auto& [r, versions] : answers) {
    for (const Versioned& v : versions) {
      if (!dead(v, settled)) continue;
      const bool known = std::any_of(gone.begin(), gone.end(),
                                     [&](const Versioned& g) { return g.clock == v.clock; });
      if (!known) gone.push_back(v);
    }
  }
  if (gone.empty()) return;
  bool reapable = true;
  bool lives = false;  // a live version stays beside what goes
  for (const auto& [r, versions] : answers) {
    for (const Versioned& v : versions) {
      if (dead(v, settled)) continue;
      if (dead(v, now)) return;  // dying, within its grace: later
      // Live: succeeded by a dead version (the replica missed a delete, or
      // a newer write that expired)? Then it gets that version first.
      auto succ = std::find_if(gone.begin(), gone.end(), [&](const Versioned& g) {
        return compare(v.clock, g.clock) == Occurred::kBefore;
      });
      if (succ == gone.end()) {
        // Concurrent with every dead version (a sibling written by another
        // writer): it stays, and removing the dead ones cannot touch it.
        lives = true;
        continue;
      }
      try {
        r->put(key, *succ);  // obsolete if it got there meanwhile
        ++out->repaired;
      } catch (const Error& e) {
        log(LogLevel::kDebug, "reaper: cannot send a tombstone of key " + printable_key(key) +
                                  ": " + e.what());
      }
      reapable = false;
    }
  }
  if (!reapable) return;
  for (const auto& [r, versions] : answers) {
    for (const Versioned& g : gone) {
      try {
        // Removes the dead version and anything before it; a write that
        // came since, newer or concurrent, stays.
        if (r->remove(key, g.clock)) ++out->versions_removed;
      } catch (const Error& e) {
        log(LogLevel::kDebug, "reaper: cannot remove key " + printable_key(key) + ": " + e.what());
        return;  // the next pass finishes it
      }
    }
  }
  if (!lives) ++out->keys_reaped;
}

ReapStats Reaper::pass() {
  std::lock_guard pass_lock(pass_mu_);
  ReapStats round;
  round.passes = 1;
  std::shared_ptr<Store> local = route_.local_replica();
  if (local != nullptr) {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();
    const auto now = [&] { return options_.now ? options_.now() : now_ms(); };
    for (auto it = local->scan(); it->next();) {
      ++round.keys_examined;
      const int64_t t = now();
      const auto& versions = it->versions();
      // A key with a version dead past the grace: a tombstone, or an
      // expired value (alone, or beside a sibling another writer made).
      const bool any_dead = std::any_of(versions.begin(), versions.end(), [&](const Versioned& v) {
        return dead(v, t - options_.grace.count());
      });
      if (any_dead) reap_key(it->key(), t, &round);
      if (round.keys_examined % 64 == 0) {
        const auto due = start + std::chrono::microseconds(round.keys_examined * 1'000'000 /
                                                           options_.rate);
        std::unique_lock lock(mu_);
        if (cv_.wait_until(lock, due, [&] { return stopping_; })) break;
      }
    }
  }
  std::lock_guard lock(mu_);
  total_.passes += round.passes;
  total_.keys_examined += round.keys_examined;
  total_.keys_reaped += round.keys_reaped;
  total_.versions_removed += round.versions_removed;
  total_.held_unreachable += round.held_unreachable;
  total_.repaired += round.repaired;
  return round;
}

void Reaper::run() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, options_.interval, [&] { return stopping_; })) return;
    }
    try {
      const ReapStats r = pass();
      if (r.keys_reaped > 0) {
        log(LogLevel::kInfo, "reaper: removed " + std::to_string(r.keys_reaped) +
                                 " deleted or expired keys from every replica");
      }
    } catch (const std::exception& e) {
      log(LogLevel::kWarn, std::string("reaper: pass failed: ") + e.what());
    }
  }
}

}  // namespace cairn

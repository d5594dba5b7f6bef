// The log engine under real crashes: a child process writes (with sync
// none and with sync always) and is SIGKILLed at a random moment, many
// times over the same directory; after each, the store opens cleanly and
// holds every write the child acknowledged (printed after put or remove
// returned), a removed key staying removed. Compaction runs in the child
// throughout, so kills land in every phase of it too.
// sync: none survives a process crash too: its writes are in the page
// cache before put returns (the test fails if put leaves a record in the
// user-space buffer). A power loss is another matter: only sync: always
// promises that. A SIGKILL does not tear a write(2) to a local file, so
// torn tails are tested apart, on files cut by hand (log_store_test.cc).

#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include <absl/strings/str_cat.h>

#include "cairn/log_store.h"
#include "tests/testing/test_util.h"

extern char** environ;

namespace cairn {
namespace {

// Runs the writer until it has acknowledged `acks` writes, lets it go on
// for `extra_us` more microseconds (so the kill lands anywhere: mid-write,
// mid-roll, mid-compaction), kills it, and returns the numbers of the
// writes it acknowledged. Counting writes rather than time makes each
// round do the same work on a loaded machine as on an idle one.
std::vector<unsigned long> run_and_kill(const std::string& dir, const char* sync,
                                        unsigned long start, size_t acks, int extra_us) {
  const char* writer = std::getenv("LOG_CRASH_WRITER");
  if (writer == nullptr) throw std::runtime_error("LOG_CRASH_WRITER is not set (the test runner sets it)");
  int out[2];
  if (pipe(out) != 0) throw std::runtime_error("pipe failed");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out[1], 1);
  posix_spawn_file_actions_addclose(&actions, out[0]);
  std::string start_text = std::to_string(start);
  std::string dir_copy = dir, sync_copy = sync, writer_copy = writer;
  char* argv[] = {writer_copy.data(), dir_copy.data(), sync_copy.data(), start_text.data(), nullptr};
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, writer, &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out[1]);
  if (rc != 0) throw std::runtime_error("cannot start the writer");
  // Read while it runs (a full pipe would stall it) until `acks` lines,
  // then give it `extra_us` more and kill it. A writer that stops
  // acknowledging for a minute fails the round (and is killed too).
  std::string text;
  char buf[4096];
  size_t lines = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (lines < acks) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    pollfd p{out[0], POLLIN, 0};
    if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) == 0) break;
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;  // the writer died (its status is checked below)
    lines += static_cast<size_t>(std::count(buf, buf + n, '\n'));
    text.append(buf, static_cast<size_t>(n));
  }
  EXPECT_GE(lines, acks) << "the writer stopped acknowledging (it died, or a minute passed)";
  std::this_thread::sleep_for(std::chrono::microseconds(extra_us));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) text.append(buf, static_cast<size_t>(n));
  ::close(out[0]);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "the writer died on its own";
  std::vector<unsigned long> acked;
  size_t at = 0;
  for (size_t nl; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
    acked.push_back(std::stoul(text.substr(at, nl - at)));
  }
  return acked;
}

constexpr unsigned long kKeys = 293;  // as log_crash_writer.cc

void crash_rounds(const char* sync, int rounds) {
  testing::TempDir dir;
  auto rng = testing::seeded_rng(11);
  std::map<std::string, unsigned long> last;  // key -> newest acknowledged write
  std::map<std::string, unsigned long> maybe_removed;  // key -> a remove that may have landed
  unsigned long next = 0;
  std::set<std::string> compaction_outputs;  // .datac files seen after the rounds
  uint64_t tombstones = 0;
  for (int round = 0; round < rounds; ++round) {
    const std::vector<unsigned long> acked = run_and_kill(
        dir.sub("log"), sync, next, 50 + rng() % 350, static_cast<int>(rng() % 3000));
    for (unsigned long i : acked) last[absl::StrCat("k", i % kKeys)] = i;
    // The write under way at the kill may have landed unacknowledged. If it
    // was a remove, its key may be gone although its last acknowledged
    // write was a put.
    const unsigned long in_flight = acked.empty() ? next : acked.back() + 1;
    if (in_flight % 5 == 4) maybe_removed[absl::StrCat("k", in_flight % kKeys)] = in_flight;
    if (!acked.empty()) next = acked.back() + 2;  // past a write that may have landed unacked
    LogOptions o;
    o.name = "crash";
    o.path = dir.sub("log");
    LogStore store(o);  // recovery: opens cleanly after every crash
    for (const auto& [key, i] : last) {
      const auto got = store.get(key);
      if (i % 5 == 4) {
        // Removed: absent, unless a later write landed before the kill.
        if (!got.empty()) {
          EXPECT_GT(got[0].clock.counter(1), i + 1) << "round " << round << ": " << key << " came back";
        }
        continue;
      }
      if (got.empty() && maybe_removed[key] > i) continue;  // that remove landed
      ASSERT_EQ(got.size(), 1u) << "round " << round << ": " << key << " lost";
      // The acknowledged write, or a later one that landed before the kill.
      EXPECT_GE(got[0].clock.counter(1), i + 1) << "round " << round << ": " << key;
    }
    tombstones += store.stats().tombstone_files;
    for (const auto& e : std::filesystem::directory_iterator(dir.sub("log"))) {
      if (e.path().extension() == ".datac") compaction_outputs.insert(e.path().stem().string());
    }
  }
  EXPECT_GT(last.size(), 0u) << "the writer acknowledged nothing";
  // The child compacted in many rounds, so kills landed while it did.
  EXPECT_GE(compaction_outputs.size(), 5u) << "compaction ran too little to be killed in it";
  EXPECT_GT(tombstones, 0u) << "no remove ever wrote a tombstone";
}

TEST(LogCrashTest, SyncNoneKeepsEveryAcknowledgedWriteAcrossSigkills) { crash_rounds("none", 25); }

TEST(LogCrashTest, SyncAlwaysKeepsEveryAcknowledgedWriteAcrossSigkills) { crash_rounds("always", 25); }

}  // namespace
}  // namespace cairn

// Child processes for tests: started with posix_spawn (never fork in a
// process that runs gRPC), stderr (and stdout) to a log file, stopped with
// real signals.

#ifndef CAIRN_TESTS_TESTING_PROCESS_H_
#define CAIRN_TESTS_TESTING_PROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace cairn::testing {

// Starts args[0] (a path) with `args`, its stdout and stderr appended to
// `log_path`. Throws std::runtime_error if it cannot start.
pid_t spawn_logged(const std::vector<std::string>& args, const std::string& log_path);

// Waits up to `timeout` for `pid` to exit; returns its exit status (or
// 128 + the signal that killed it), or -1 if it is still running.
int wait_for_exit(pid_t pid, std::chrono::milliseconds timeout);

// Sends `signal`, then SIGKILL if it has not exited after 10 s; returns
// its status as wait_for_exit does.
int stop_process(pid_t pid, int signal);

// The whole of a file, or "" if it cannot be read.
std::string read_file(const std::string& path);

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_PROCESS_H_

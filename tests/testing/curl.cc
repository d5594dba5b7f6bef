#include "tests/testing/curl.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace cairn::testing {

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Splits "HTTP/1.1 200 OK\r\nName: v\r\n\r\nbody" (after any 1xx blocks).
CurlResult parse(const std::string& out) {
  CurlResult r;
  size_t pos = 0;
  for (;;) {
    const size_t end = out.find("\r\n\r\n", pos);
    if (end == std::string::npos) throw std::runtime_error("curl printed no header:\n" + out);
    const std::string head = out.substr(pos, end - pos);
    pos = end + 4;
    const size_t sp = head.find(' ');
    if (sp == std::string::npos) throw std::runtime_error("bad status line: " + head);
    r.status = std::stoi(head.substr(sp + 1, 3));
    if (r.status >= 200) {
      std::istringstream lines(head);
      std::string line;
      std::getline(lines, line);  // the status line
      while (std::getline(lines, line)) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        const size_t colon = line.find(':');
        if (colon == std::string::npos) continue;
        std::string name = line.substr(0, colon);
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        size_t v = colon + 1;
        while (v < line.size() && line[v] == ' ') ++v;
        r.headers[name] = line.substr(v);
      }
      r.body = out.substr(pos);
      return r;
    }
  }
}

}  // namespace

CurlResult curl(const std::vector<std::string>& args) {
  static std::atomic<int> counter{0};
  const char* tmp = std::getenv("TMPDIR");
  const std::string base = std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") +
                           "/cairn-curl-" + std::to_string(::getpid()) + "-" +
                           std::to_string(counter.fetch_add(1));
  const std::string out_path = base + ".out";
  const std::string err_path = base + ".err";

  std::vector<std::string> argv_s = {"curl", "-sS", "--include", "--max-time", "30"};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (std::string& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&actions, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  pid_t pid = -1;
  const int rc = posix_spawnp(&pid, "curl", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error(std::string("cannot run curl: ") + std::strerror(rc));
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  const std::string out = slurp(out_path);
  const std::string err = slurp(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("curl failed (exit " +
                             std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : -1) +
                             "): " + err);
  }
  return parse(out);
}

}  // namespace cairn::testing

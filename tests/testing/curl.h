// Runs the real curl(1) for tests of the HTTP front, and parses what it got.

#ifndef CAIRN_TESTS_TESTING_CURL_H_
#define CAIRN_TESTS_TESTING_CURL_H_

#include <map>
#include <string>
#include <vector>

namespace cairn::testing {

struct CurlResult {
  int status = 0;                             // the final (non-1xx) status
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;

  std::string header(const std::string& lowercase_name) const {
    auto it = headers.find(lowercase_name);
    return it == headers.end() ? "" : it->second;
  }
};

// `curl -sS --include ARGS...`. Throws std::runtime_error, with curl's
// stderr, if curl fails (cannot connect, bad arguments): an HTTP error
// status is a result, not a failure.
CurlResult curl(const std::vector<std::string>& args);

}  // namespace cairn::testing

#endif  // CAIRN_TESTS_TESTING_CURL_H_

// Key choosers for cairn-bench, after YCSB: uniform, and scrambled zipfian
// (Gray et al., "Quickly generating billion-record synthetic databases",
// SIGMOD 1994, as YCSB's ZipfianGenerator; the rank is then hashed so the
// popular keys are spread over the key space, not bunched at its start).

#ifndef CAIRN_TOOLS_CAIRN_BENCH_KEYS_H_
#define CAIRN_TOOLS_CAIRN_BENCH_KEYS_H_

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

namespace cairn::bench {

// The key of record `i`: "user" and 12 digits, as YCSB's (16 bytes).
inline std::string key_of(uint64_t i) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "user%012llu", static_cast<unsigned long long>(i));
  return buf;
}

// Zipfian ranks over [0, n) with exponent `theta` (YCSB: 0.99). Building
// one costs O(n) (the zeta sum); share it between threads, it is immutable.
class Zipfian {
 public:
  explicit Zipfian(uint64_t n, double theta = 0.99) : n_(n), theta_(theta) {
    for (uint64_t i = 1; i <= n; ++i) zetan_ += 1.0 / std::pow(static_cast<double>(i), theta);
    const double zeta2 = 1.0 + 1.0 / std::pow(2.0, theta);
    alpha_ = 1.0 / (1.0 - theta);
    eta_ = (1.0 - std::pow(2.0 / static_cast<double>(n), 1.0 - theta)) / (1.0 - zeta2 / zetan_);
    half_pow_theta_ = 1.0 + std::pow(0.5, theta);
  }

  // A rank: 0 is the most popular.
  uint64_t rank(std::mt19937_64& rng) const {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    const double uz = u * zetan_;
    if (uz < 1.0) return 0;
    if (uz < half_pow_theta_) return 1;
    const auto r = static_cast<uint64_t>(static_cast<double>(n_) *
                                         std::pow(eta_ * u - eta_ + 1.0, alpha_));
    return r < n_ ? r : n_ - 1;
  }

  // A record number: the rank hashed (FNV-1a) over [0, n).
  uint64_t next(std::mt19937_64& rng) const {
    uint64_t r = rank(rng);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (int i = 0; i < 8; ++i) {
      h ^= r & 0xff;
      h *= 0x100000001b3ULL;
      r >>= 8;
    }
    return h % n_;
  }

 private:
  uint64_t n_;
  double theta_;
  double zetan_ = 0;
  double alpha_ = 0;
  double eta_ = 0;
  double half_pow_theta_ = 0;
};

}  // namespace cairn::bench

#endif  // CAIRN_TOOLS_CAIRN_BENCH_KEYS_H_

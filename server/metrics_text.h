// Prometheus' text format, for the fronts' /metrics: a family is its HELP
// and TYPE lines, then its samples.

#ifndef CAIRN_SERVER_METRICS_TEXT_H_
#define CAIRN_SERVER_METRICS_TEXT_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace cairn::internal {

// A family with `samples`: whole lines, each ending in a newline.
inline std::string metric_family(std::string_view name, std::string_view type,
                                 std::string_view help, std::string_view samples) {
  std::string out;
  out.append("# HELP ").append(name).append(" ").append(help).append("\n# TYPE ");
  out.append(name).append(" ").append(type).append("\n").append(samples);
  return out;
}

// A family of one sample without labels.
inline std::string metric(std::string_view name, std::string_view type, std::string_view help,
                          uint64_t value) {
  std::string sample(name);
  sample.append(" ").append(std::to_string(value)).append("\n");
  return metric_family(name, type, help, sample);
}

}  // namespace cairn::internal

#endif  // CAIRN_SERVER_METRICS_TEXT_H_

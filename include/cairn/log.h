// cairn's diagnostic log: one line per event, to stderr unless a sink is
// installed. Thread-safe: lines from different threads never interleave.

#ifndef CAIRN_LOG_H_
#define CAIRN_LOG_H_

#include <functional>
#include <string_view>

#include "cairn/export.h"

CAIRN_API_BEGIN
namespace cairn {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

// "debug", "info", "warn", "error".
const char* to_string(LogLevel level);

// Lines below the threshold are dropped. The default is kInfo, or the level
// named by the CAIRN_LOG environment variable ("debug", "warn", ...).
void set_log_level(LogLevel level);
bool log_enabled(LogLevel level);

// Writes one line. `message` carries no trailing newline.
void log(LogLevel level, std::string_view message);

// Receives every line that passes the threshold, instead of stderr. Pass
// nullptr to restore stderr. The sink is called under a lock: it must not
// log itself.
using LogSink = std::function<void(LogLevel, std::string_view)>;
void set_log_sink(LogSink sink);

}  // namespace cairn
CAIRN_API_END

#endif  // CAIRN_LOG_H_

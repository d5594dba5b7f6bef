#include "cairn/version.h"

namespace cairn {

const char* version() { return CAIRN_VERSION_STRING; }

}  // namespace cairn

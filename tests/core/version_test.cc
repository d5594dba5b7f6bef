#include "cairn/version.h"

#include <absl/strings/str_cat.h>
#include <gtest/gtest.h>

namespace cairn {
namespace {

TEST(VersionTest, TheHeadersAndTheLibrarySayTheSameVersion) {
  // version() is compiled into the library and the macros into this test,
  // from the same meson.build here; the installed-library test
  // (examples/consumer) compares a program's headers with the library it
  // loads.
  EXPECT_STREQ(version(), CAIRN_VERSION_STRING);
  EXPECT_EQ(absl::StrCat(CAIRN_VERSION_MAJOR, ".", CAIRN_VERSION_MINOR, ".", CAIRN_VERSION_PATCH),
            CAIRN_VERSION_STRING);
}

}  // namespace
}  // namespace cairn

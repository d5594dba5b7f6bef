#include "engines/log/huge_pages.h"

#include <sys/mman.h>

#include <cstdlib>
#include <cstring>

namespace cairn::internal {

namespace {
constexpr size_t kHugePage = 2 << 20;
}  // namespace

void* acquire_huge(size_t bytes, bool zeroed) {
  const bool huge = bytes >= kHugePage;
  const size_t rounded = (bytes + kHugePage - 1) / kHugePage * kHugePage;  // aligned_alloc's rule
  void* p = huge ? std::aligned_alloc(kHugePage, rounded) : std::malloc(bytes == 0 ? 1 : bytes);
  if (p == nullptr) throw std::bad_alloc();
  if (huge) ::madvise(p, rounded, MADV_HUGEPAGE);  // advice only
  if (zeroed) std::memset(p, 0, bytes);
  return p;
}

void release_huge(void* p) { std::free(p); }

}  // namespace cairn::internal

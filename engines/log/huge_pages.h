// Memory for the log engine's large tables (the index, and what open
// stages for it), asked to be backed by transparent huge pages: a table of
// hundreds of MB then costs a page fault per 2 MiB rather than per 4 KiB
// when first touched, and spares the TLB a page walk on most lookups.
// madvise(MADV_HUGEPAGE) is advice only; without it the memory is the same.

#ifndef CAIRN_ENGINES_LOG_HUGE_PAGES_H_
#define CAIRN_ENGINES_LOG_HUGE_PAGES_H_

#include <cstddef>
#include <new>

namespace cairn::internal {

// `bytes` of memory, zeroed if asked; huge-page aligned and advised when
// at least one huge page long. Throws std::bad_alloc. Freed by
// release_huge().
void* acquire_huge(size_t bytes, bool zeroed);
void release_huge(void* p);

// For std::vector and std::basic_string of plain data.
template <typename T>
struct HugePageAllocator {
  using value_type = T;
  HugePageAllocator() = default;
  template <typename U>
  HugePageAllocator(const HugePageAllocator<U>&) {}  // NOLINT: allocators convert implicitly
  static_assert(alignof(T) <= alignof(std::max_align_t), "malloc's alignment is all a small block gets");
  [[nodiscard]] T* allocate(size_t n) {
    if (n > size_t(-1) / sizeof(T)) throw std::bad_alloc();
    return static_cast<T*>(acquire_huge(n * sizeof(T), false));
  }
  void deallocate(T* p, size_t) { release_huge(p); }
  template <typename U>
  bool operator==(const HugePageAllocator<U>&) const { return true; }
};

}  // namespace cairn::internal

#endif  // CAIRN_ENGINES_LOG_HUGE_PAGES_H_

// What libcairn.so exports: the declarations of the installed headers, and
// nothing else. The library is built with hidden visibility; each public
// header wraps its declarations in CAIRN_API_BEGIN ... CAIRN_API_END, so
// whatever a header under include/cairn/ declares is part of the ABI and
// whatever the implementation files declare stays inside the library.
//
// 0.x releases may change the ABI at every minor version: the shared
// library's SONAME carries major.minor (libcairn.so.0.1).

#ifndef CAIRN_EXPORT_H_
#define CAIRN_EXPORT_H_

#if defined(__GNUC__) || defined(__clang__)
#define CAIRN_API_BEGIN _Pragma("GCC visibility push(default)")
#define CAIRN_API_END _Pragma("GCC visibility pop")
// For the library's own types that a public header only names (a pimpl's
// struct, a forward declaration): they stay hidden.
#define CAIRN_INTERNAL __attribute__((visibility("hidden")))
#else
#define CAIRN_API_BEGIN
#define CAIRN_API_END
#define CAIRN_INTERNAL
#endif

#endif  // CAIRN_EXPORT_H_

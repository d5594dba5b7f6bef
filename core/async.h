// Helpers for the non-blocking Store calls (cairn/store.h): every failure of
// an async call reaches its callback, never the caller as an exception, and
// a layer that transforms values does it in the callback.
//
// Header-only; thread-safe as the callbacks they wrap are.

#ifndef CAIRN_CORE_ASYNC_H_
#define CAIRN_CORE_ASYNC_H_

#include <exception>
#include <utility>

#include "cairn/store.h"

namespace cairn::internal {

// Hands `error` to `done` with a default result.
template <typename T>
void fail(const Callback<T>& done, std::exception_ptr error) {
  done(T{}, std::move(error));
}

// `done`, but with `fn(result)` applied first on success. What fn throws
// becomes the call's error: a layer's decoding failure reaches the caller
// as the blocking call would have thrown it.
template <typename T, typename Fn>
Callback<T> transformed(Callback<T> done, Fn fn) {
  return [done = std::move(done), fn = std::move(fn)](T result, std::exception_ptr error) {
    if (!error) {
      try {
        fn(result);
      } catch (...) {
        error = std::current_exception();
        result = T{};
      }
    }
    done(std::move(result), std::move(error));
  };
}

}  // namespace cairn::internal

#endif  // CAIRN_CORE_ASYNC_H_

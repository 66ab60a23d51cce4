// pods/policy/assert.hpp — PODS_ASSERT, for broken internal invariants
//
// Problem:       An internal invariant that no longer holds (a queue index past its end, a
//                log whose in-memory index disagrees with its files) means the program's
//                state is already wrong; continuing risks writing that wrong state to disk.
// Solution:      PODS_ASSERT(cond, message) checks the condition in every build type and,
//                when it fails, prints the file, line, condition and message to stderr and
//                aborts. It is for pods' own bugs, never for bad input (that throws).
// Guarantees:    Always evaluated (not compiled out by NDEBUG); the condition is evaluated once.
// Not provided:  Recovery: a failed assertion aborts the process; it is not an error to catch.
// Thread safety: thread-safe.
// Errors:        none are thrown; a failed check aborts after printing to stderr.
// Cost:          one predictable branch.
// Example:
//   PODS_ASSERT(next_ == last_ + 1, "log index out of step with its segments");
// Example context: std::uint64_t next_ = 2, last_ = 1;
#pragma once

#include <cstdio>
#include <cstdlib>

namespace pods::detail {
[[noreturn]] inline void assert_failed(const char* file, int line, const char* condition,
                                       const char* message) noexcept {
  std::fprintf(stderr, "pods: internal invariant broken at %s:%d: %s (%s)\n", file, line, condition,
               message);
  std::abort();
}
}  // namespace pods::detail

#define PODS_ASSERT(condition, message)                                       \
  do {                                                                        \
    if (!(condition)) [[unlikely]]                                            \
      ::pods::detail::assert_failed(__FILE__, __LINE__, #condition, message); \
  } while (false)

// pods/policy/clock.hpp — the PhysicalClock policy
//
// Problem:       Code that reads the system clock directly cannot be tested for timeouts,
//                leases or clock skew without sleeping, and sleeping tests are slow and flaky.
// Solution:      Every pods component takes its clock as a policy: a cheap value with
//                `now()`. Production passes SystemClock (wall time, for timestamps) or
//                SteadyClock (monotonic, for timeouts); tests pass a ManualClock whose time
//                moves only when the test says so.
// Guarantees:    SystemClock and SteadyClock read the std clocks at nanosecond resolution.
//                ManualClock copies share one time; it never moves unless advanced or set.
//                Including this header provides std::chrono's durations, time points,
//                clocks and literals (not the C++20 calendar: include <chrono> for that).
// Not provided:  Any monotonicity of SystemClock (the wall clock may step backwards).
// Thread safety: thread-safe: every clock here may be read and (ManualClock) set from any
//                thread concurrently.
// Errors:        ManualClock::advance throws std::invalid_argument for a negative step.
// Cost:          now(): one clock_gettime (vDSO, ~20 ns) or one atomic load (ManualClock).
// Example:
//   pods::ManualClock clock;                        // starts at the epoch
//   pods::RequestWaitingList<int, int, pods::ManualClock> waiting(1s, clock);
//   clock.advance(2s);                              // the component sees the same time
//   waiting.expire();                               // deterministic timeout, no sleeping
// Example context: #include <pods/messaging/request_waiting_list.hpp>
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>
#include <stdexcept>
#include <string>

#include <time.h>  // nanosleep

// std::chrono's durations, time points and clocks. With libstdc++, only the part that holds
// them: C++20's <chrono> adds the calendar, time zones and their stream I/O (it includes
// <sstream>), which no pods header uses and which would be most of what including a pods
// clock costs to compile. Elsewhere, <chrono>. pods headers get std::chrono through here.
#if defined(__GLIBCXX__) && __has_include(<bits/chrono.h>)
#include <bits/chrono.h>
#else
#include <chrono>
#endif

namespace pods {

// A PhysicalClock is a cheap, copyable value with `now()` returning its `time_point`.
// Semantic requirements the compiler cannot check:
//   - copies of one clock observe the same time (a test keeps one copy, the component another);
//   - `now()` may be called from any thread;
//   - `time_point::time_since_epoch()` is meaningful for wall clocks (SystemClock, ManualClock):
//     HybridClock reads it as nanoseconds since the Unix epoch.
// The std chrono clocks model it.
// clang-format off
template <class C>
concept PhysicalClock = std::copy_constructible<C> && requires(const C& c) {
  typename C::time_point;
  typename C::duration;
  { c.now() } -> std::same_as<typename C::time_point>;
};
// clang-format on

// SystemClock: the wall clock (std::chrono::system_clock) at nanosecond resolution.
// Use it for timestamps that other nodes compare; it may jump when NTP steps the clock.
struct SystemClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<std::chrono::system_clock, duration>;
  static constexpr bool is_steady = false;

  // Returns the current wall time. Never throws.
  static time_point now() noexcept {
    return std::chrono::time_point_cast<duration>(std::chrono::system_clock::now());
  }
};
static_assert(PhysicalClock<SystemClock>);
static_assert(PhysicalClock<std::chrono::system_clock>);

// SteadyClock: the monotonic clock (std::chrono::steady_clock) at nanosecond resolution.
// Use it for timeouts and intervals on one machine.
struct SteadyClock {
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<std::chrono::steady_clock, duration>;
  static constexpr bool is_steady = true;

  // Returns the current monotonic time. Never throws.
  static time_point now() noexcept {
    return std::chrono::time_point_cast<duration>(std::chrono::steady_clock::now());
  }
};
static_assert(PhysicalClock<SteadyClock>);
static_assert(PhysicalClock<std::chrono::steady_clock>);

namespace detail {
// The shared state of a ManualClock and its copies: the time and a count of the copies.
struct ManualTime {
  std::atomic<std::int64_t> now;
  std::atomic<std::uint64_t> copies{1};
};
}  // namespace detail

// ManualClock: the test double. Its time is nanoseconds since the Unix epoch held in one
// shared atomic, so every copy (the test's and the component's) sees the same time, and it
// moves only through advance() and set(). sleep_until() blocks until another thread moves
// the time far enough, which lets a test drive a blocking wait without real sleeping.
// Copies share the time through a reference count; a moved-from clock still reads it.
class ManualClock {
 public:
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<ManualClock, duration>;
  static constexpr bool is_steady = false;

  // Creates a clock reading `start` since the epoch. Allocates the shared state.
  explicit ManualClock(std::chrono::nanoseconds start = {})
      : now_(new detail::ManualTime{{start.count()}}) {}

  // Makes a copy that shares this clock's time. Never throws.
  ManualClock(const ManualClock& other) noexcept : now_(other.now_) {
    now_->copies.fetch_add(1, std::memory_order_relaxed);
  }

  // Makes this clock share `other`'s time. Never throws.
  ManualClock& operator=(const ManualClock& other) noexcept {
    other.now_->copies.fetch_add(1, std::memory_order_relaxed);
    release();
    now_ = other.now_;
    return *this;
  }

  ~ManualClock() { release(); }

  // Returns the current manual time. Never throws.
  time_point now() const noexcept { return time_point(duration(now_->now.load())); }

  // Moves the time forward by `step` and wakes sleepers. Throws std::invalid_argument
  // for a negative step (use set() to move backwards deliberately).
  void advance(std::chrono::nanoseconds step) {
    if (step.count() < 0) {
      throw std::invalid_argument("ManualClock::advance: step must not be negative, got " +
                                  std::to_string(step.count()) + " ns");
    }
    now_->now.fetch_add(step.count());
    now_->now.notify_all();
  }

  // Sets the time to `since_epoch`, forwards or backwards (a wall clock stepped by NTP),
  // and wakes sleepers.
  void set(std::chrono::nanoseconds since_epoch) noexcept {
    now_->now.store(since_epoch.count());
    now_->now.notify_all();
  }

  // Blocks until another thread has moved the time to `deadline` or later.
  void sleep_until(time_point deadline) const noexcept {
    for (auto seen = now_->now.load(); seen < deadline.time_since_epoch().count();
         seen = now_->now.load()) {
      now_->now.wait(seen);
    }
  }

 private:
  void release() noexcept {
    if (now_->copies.fetch_sub(1, std::memory_order_acq_rel) == 1) delete now_;
  }

  detail::ManualTime* now_;
};
static_assert(PhysicalClock<ManualClock>);

// Blocks the calling thread until `clock` reads `deadline` or later: ManualClock waits for the
// test to move its time; other clocks sleep on the OS and re-check, since a sleep may end early.
template <PhysicalClock Clock>
void sleep_until(const Clock& clock, typename Clock::time_point deadline) {
  if constexpr (requires { clock.sleep_until(deadline); }) {
    clock.sleep_until(deadline);
  } else {
    for (auto now = clock.now(); now < deadline; now = clock.now()) {
      const std::int64_t ns = std::chrono::ceil<std::chrono::nanoseconds>(deadline - now).count();
      timespec wait{static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
      nanosleep(&wait, nullptr);  // an early return (a signal) re-checks the clock
    }
  }
}

// Returns the nanoseconds since the clock's epoch of a time point (for wall clocks: since the
// Unix epoch).
template <class TimePoint>
constexpr std::int64_t to_nanoseconds(TimePoint t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace pods

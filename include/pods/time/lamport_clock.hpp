// pods/time/lamport_clock.hpp — Lamport Clock
//
// Problem:       Servers' wall clocks disagree, so "which write happened first?" cannot be
//                answered by comparing their times: a write that caused another may carry a
//                later wall time than the one it caused.
// Solution:      Each node keeps one integer. A local event (or a send) increments it; a
//                receive sets it to max(local, received) + 1. Every message carries the
//                sender's value, so a cause always has a smaller number than its effect.
// Guarantees:    If event a happened before event b (same node, or through messages), then
//                ts(a) < ts(b). Every value returned by tick() is unique per clock object and
//                larger than every value this object returned or observed before it; with
//                ThreadSafe this holds across threads (each tick is one atomic
//                read-modify-write, totally ordered in the counter's modification order).
// Not provided:  The converse: ts(a) < ts(b) does not mean a caused b (use VersionVector to
//                detect concurrency). No relation to wall time (use HybridClock). Timestamps
//                from different nodes may be equal; pair them with a node id for a total order.
//                The counter wraps after 2^64 ticks (never, in practice).
// Thread safety: thread-safe with ThreadSafe (tick and now from any thread; tick() is one
//                fetch_add, tick(received) a compare-exchange loop, both acq_rel; now() is an
//                acquire load). Thread-compatible with SingleThreaded.
// Errors:        none; every member is noexcept.
// Cost:          O(1), no allocation. ThreadSafe tick(): one lock-free atomic add.
// Example:
//   pods::LamportClock<> clock;
//   auto sent = clock.tick();                // stamp an outgoing message: 1
//   auto seen = clock.tick(41);              // a message stamped 41 arrives: 42
//   assert(clock.now() == 42 && sent < seen);
#pragma once

#include <pods/policy/threading.hpp>

#include <atomic>
#include <cstdint>

namespace pods {

// LamportClock: a logical clock that orders causally related events.
template <Threading T = ThreadSafe>
class LamportClock {
 public:
  // Creates a clock whose current value is `start` (for example, recovered from a log).
  explicit LamportClock(std::uint64_t start = 0) noexcept : time_(start) {}

  LamportClock(const LamportClock&) = delete;
  LamportClock& operator=(const LamportClock&) = delete;

  // Records a local event or a send: increments the clock and returns the new value.
  // Never allocates or throws.
  std::uint64_t tick() noexcept { return time_.fetch_add(1, std::memory_order_acq_rel) + 1; }

  // Records the receipt of a message stamped `received`: sets the clock to
  // max(current, received) + 1 and returns the new value. Never allocates or throws.
  std::uint64_t tick(std::uint64_t received) noexcept {
    std::uint64_t current = time_.load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t next = (current > received ? current : received) + 1;
      if (time_.compare_exchange_weak(current, next, std::memory_order_acq_rel,
                                      std::memory_order_relaxed)) {
        return next;
      }
    }
  }

  // Returns the current value without changing it. Never allocates or throws.
  std::uint64_t now() const noexcept { return time_.load(std::memory_order_acquire); }

 private:
  typename T::template atomic<std::uint64_t> time_;
};

}  // namespace pods

// pods/time/clock_bound_wait.hpp — Clock-Bound Wait
//
// Problem:       Clocks across a cluster differ by up to some ε. A value written at
//                timestamp ts on one node may be invisible to a read "at now" on a node whose
//                clock is behind, and then appear later: the read was not repeatable, and a
//                later transaction could be ordered before an earlier one.
// Solution:      Before a write becomes visible (or a transaction commits), wait until the
//                local clock reads past ts + ε. Then every node's clock, being at most ε
//                behind, is past ts, so any read stamped "now" anywhere includes the write.
//                (Spanner's commit wait; CockroachDB's uncertainty interval.)
// Guarantees:    remaining(ts) is zero exactly when now - ε > ts (strictly), and otherwise
//                the time until that holds: ts + ε + 1 ns - now. wait_until_safe(ts) returns
//                only once now - ε > ts (it re-checks the clock after waking). A
//                HybridTimestamp is compared by its wall part: once now - ε > wall_ns, every
//                clock is past every (wall_ns, logical).
// Not provided:  The bound ε itself: it is a promise of the cluster's clock synchronisation
//                (NTP, PTP, a time service) that this block trusts, not checks. The wait is
//                not cancellable (use remaining() with your own wait to combine it).
// Thread safety: thread-safe: const members from any thread (the clock policy is read only).
// Errors:        The constructor throws std::invalid_argument when max_offset < 0.
//                remaining() never throws; wait_until_safe() throws what the clock's sleep
//                throws (nothing, for the pods clocks).
// Cost:          remaining(): one clock read. wait_until_safe(): the wait itself (about ε
//                after the write was stamped), spent sleeping. No allocation.
// Example:
//   pods::HybridClock<> hlc;
//   pods::ClockBoundWait<pods::SystemClock> bound({}, 7ms);   // ε: the cluster's max offset
//   auto ts = hlc.now();                                       // stamp the write
//   store.put(key, value, ts);                                 // not visible yet
//   bound.wait_until_safe(ts);                                 // every clock is past ts now
//   acknowledge_and_make_visible(key, ts);
// Example context: pods::VersionedStore<std::string, std::string, pods::HybridTimestamp> store;
// Example context: std::string key = "k", value = "v";
// Example context: void acknowledge_and_make_visible(const std::string&, pods::HybridTimestamp) {}
// Example context: #include <pods/storage/versioned_value.hpp>
#pragma once

#include <pods/policy/clock.hpp>  // and std::chrono
#include <pods/time/hybrid_clock.hpp>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>

namespace pods {

// ClockBoundWait: waits out the clock uncertainty ε of a cluster.
template <PhysicalClock Clock>
class ClockBoundWait {
 public:
  // Creates a wait over `clock` for a cluster whose clocks differ by at most `max_offset`.
  // Retains a copy of `clock`. Throws std::invalid_argument when max_offset is negative.
  ClockBoundWait(Clock clock, std::chrono::nanoseconds max_offset)
      : clock_(std::move(clock)), max_offset_(max_offset) {
    if (max_offset.count() < 0) {
      throw std::invalid_argument("ClockBoundWait: max_offset must not be negative, got " +
                                  std::to_string(max_offset.count()) + " ns");
    }
  }

  // Returns how long until now - ε > ts (zero when that already holds). Never throws.
  std::chrono::nanoseconds remaining(const HybridTimestamp& ts) const noexcept {
    return remaining_ns(ts.wall_ns);
  }
  // Returns how long until now - ε > t (zero when that already holds). Never throws.
  std::chrono::nanoseconds remaining(const typename Clock::time_point& t) const noexcept {
    return remaining_ns(to_nanoseconds(t));
  }

  // Returns true when now - ε > ts: every clock in the cluster is past ts.
  bool is_safe(const HybridTimestamp& ts) const noexcept { return remaining(ts).count() == 0; }
  // Returns true when now - ε > t.
  bool is_safe(const typename Clock::time_point& t) const noexcept {
    return remaining(t).count() == 0;
  }

  // Blocks until now - ε > ts, through pods::sleep_until on the clock (a ManualClock waits for
  // the test to move its time). Returns at once when that already holds.
  void wait_until_safe(const HybridTimestamp& ts) const { wait_ns(ts.wall_ns); }
  // Blocks until now - ε > t.
  void wait_until_safe(const typename Clock::time_point& t) const { wait_ns(to_nanoseconds(t)); }

  // Returns ε.
  std::chrono::nanoseconds max_offset() const noexcept { return max_offset_; }

 private:
  // The first clock reading (ns) at which ts is safe: ts + ε + 1, saturated.
  std::int64_t safe_at(std::int64_t ts_ns) const noexcept {
    std::int64_t safe = 0;
    if (__builtin_add_overflow(ts_ns, max_offset_.count(), &safe) ||
        __builtin_add_overflow(safe, std::int64_t{1}, &safe)) {
      return std::numeric_limits<std::int64_t>::max();
    }
    return safe;
  }

  std::chrono::nanoseconds remaining_ns(std::int64_t ts_ns) const noexcept {
    const std::int64_t now = to_nanoseconds(clock_.now());
    const std::int64_t safe = safe_at(ts_ns);
    if (now >= safe) return std::chrono::nanoseconds(0);
    const std::uint64_t left = static_cast<std::uint64_t>(safe) - static_cast<std::uint64_t>(now);
    constexpr auto cap = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
    return std::chrono::nanoseconds(static_cast<std::int64_t>(left < cap ? left : cap));
  }

  void wait_ns(std::int64_t ts_ns) const {
    using time_point = typename Clock::time_point;
    using clock_duration = typename time_point::duration;
    // Round up to the clock's resolution so the wait never ends early.
    const auto deadline =
        std::chrono::ceil<clock_duration>(std::chrono::nanoseconds(safe_at(ts_ns)));
    // Re-check after waking: a wall clock may have stepped back meanwhile.
    do {
      sleep_until(clock_, time_point(deadline));
    } while (remaining_ns(ts_ns).count() > 0);
  }

  Clock clock_;
  std::chrono::nanoseconds max_offset_;
};

}  // namespace pods

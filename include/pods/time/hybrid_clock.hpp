// pods/time/hybrid_clock.hpp — Hybrid Clock (hybrid logical clock, Kulkarni et al. 2014)
//
// Problem:       A Lamport clock orders causally related events but its numbers mean nothing
//                to a human or to a "read as of 10:02" query; wall clocks are meaningful but
//                disagree between servers and step backwards, so a cause can carry a later
//                wall time than its effect.
// Solution:      A timestamp (wall_ns, logical): wall_ns follows the largest physical time
//                seen (local clock or received messages), and logical counts events that
//                happen while wall_ns stands still. With pt the physical clock in ns:
//                  send/local  l' = l; l = max(l', pt); c = (l == l') ? c + 1 : 0
//                  receive m   l' = l; l = max(l', lm, pt);
//                              c = max(c, cm) + 1 if l == l' == lm, c + 1 if only l == l',
//                                  cm + 1 if only l == lm, else 0
//                A fresh clock has l = 0, c = 0.
// Guarantees:    Every timestamp now() or update() returns is larger than every timestamp
//                this object returned or observed before it (hence unique per object);
//                with ThreadSafe this holds across threads. If a happened before b, then
//                ts(a) < ts(b). wall_ns is never behind the physical clock's reading taken
//                during the call, and never further ahead of it than the largest received
//                offset. The logical part never wraps: at its maximum the wall part moves
//                forward 1 ns and logical restarts at 0.
//                By default update() refuses a timestamp more than default_max_offset
//                (500 ms, CockroachDB's default) ahead of the physical clock, so one peer
//                with a broken clock (or one corrupt message) cannot move this clock, and
//                every clock it talks to, years ahead for good; max_offset = 0 turns the
//                check off.
// Not provided:  Detection of concurrent events (use VersionVector). Bounded skew between
//                nodes (that is the operator's NTP; max_offset only refuses timestamps too
//                far ahead). Wall times outside the int64 nanosecond range (years 1677-2262).
// Thread safety: thread-safe with ThreadSafe: now(), update() and last() from any thread.
//                Each now() or update() is one atomic read-modify-write of the whole
//                (wall_ns, logical) pair, so the issued timestamps follow that RMW order.
//                On x86-64 with CMPXCHG16B (every x86-64 CPU since about 2006; checked at
//                construction) the pair is one 16-byte word, {wall_ns: 64 bits,
//                logical: 64 bits, of which 32 are used}, updated with `lock cmpxchg16b`:
//                lock-free, with the full contract range (no precision is given up to pack
//                it). Elsewhere a mutex guards the pair; is_lock_free() says which.
//                Thread-compatible with SingleThreaded.
// Errors:        The constructor throws std::invalid_argument when max_offset < 0. update()
//                throws pods::ClockOffsetError, changing nothing, when max_offset is non-zero
//                (the default is 500 ms) and received.wall_ns - pt > max_offset. now() and update()
//                throw std::overflow_error, changing nothing, if the wall part would pass
//                INT64_MAX.
// Cost:          now(): one physical clock read plus one 16-byte compare-exchange (retried
//                only when another thread won the race, without reading the clock again):
//                the floor of a thread-safe hybrid clock, a clock read followed by one
//                contended read-modify-write. No allocation. When the clock offers
//                now_unordered() (TscClock does), that cheaper read is used: the
//                compare-exchange already orders the timestamps.
// Example:
//   pods::HybridClock<> clock(pods::SystemClock{}, 500ms);   // refuse peers 500 ms ahead
//   pods::HybridTimestamp sent = clock.now();                 // stamp an outgoing message
//   pods::HybridTimestamp mine = clock.update(message.ts);    // a message arrives
//   std::cout << to_string(mine);                             // "1700000000000000000.3"
// Example context: struct { pods::HybridTimestamp ts; } message;  // a message from a peer
#pragma once

#include <pods/policy/clock.hpp>  // and std::chrono
#include <pods/policy/errors.hpp>
#include <pods/policy/threading.hpp>

#include <compare>
#include <cstdint>
#include <iosfwd>
#include <limits>
#include <stdexcept>
#include <string>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#if defined(__SANITIZE_THREAD__)
#define PODS_DETAIL_HLC_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PODS_DETAIL_HLC_TSAN 1
#endif
#endif
#if defined(PODS_DETAIL_HLC_TSAN) && defined(__x86_64__)
#include <sanitizer/tsan_interface_atomic.h>
#endif

namespace pods {

// HybridTimestamp: a hybrid logical clock reading, ordered by (wall_ns, logical).
struct HybridTimestamp {
  std::int64_t wall_ns = 0;   // physical part: nanoseconds since the Unix epoch
  std::uint32_t logical = 0;  // logical part
  friend auto operator<=>(const HybridTimestamp&, const HybridTimestamp&) = default;
};

// Returns "wall_ns.logical", e.g. "1700000000000000000.3". Allocates the string.
inline std::string to_string(const HybridTimestamp& ts) {
  return std::to_string(ts.wall_ns) + "." + std::to_string(ts.logical);
}

// Writes to_string(ts) to `out`. (A template, so this header needs only <iosfwd>: the
// stream is complete wherever a caller writes to one.)
template <class Char, class Traits>
std::basic_ostream<Char, Traits>& operator<<(std::basic_ostream<Char, Traits>& out,
                                             const HybridTimestamp& ts) {
  return out << ts.wall_ns << out.widen('.') << ts.logical;
}

namespace detail {

inline constexpr std::uint32_t hlc_logical_max = std::numeric_limits<std::uint32_t>::max();

[[noreturn]] inline void hlc_overflow() {
  throw std::overflow_error("HybridClock: the wall part would pass INT64_MAX nanoseconds");
}

// Returns the clock after a send or local event at physical time `pt` (the paper's rule,
// with the logical part carried into the wall part at its maximum).
constexpr HybridTimestamp hlc_send(HybridTimestamp last, std::int64_t pt) {
  if (pt > last.wall_ns) return {pt, 0};
  if (last.logical < hlc_logical_max) return {last.wall_ns, last.logical + 1};
  if (last.wall_ns == std::numeric_limits<std::int64_t>::max()) hlc_overflow();
  return {last.wall_ns + 1, 0};
}

// Returns the clock after receiving `m` at physical time `pt`.
constexpr HybridTimestamp hlc_receive(HybridTimestamp last, HybridTimestamp m, std::int64_t pt) {
  std::int64_t l = last.wall_ns > m.wall_ns ? last.wall_ns : m.wall_ns;
  if (pt > l) l = pt;
  std::uint64_t c;
  if (l == last.wall_ns && l == m.wall_ns) {
    c = std::uint64_t{last.logical > m.logical ? last.logical : m.logical} + 1;
  } else if (l == last.wall_ns) {
    c = std::uint64_t{last.logical} + 1;
  } else if (l == m.wall_ns) {
    c = std::uint64_t{m.logical} + 1;
  } else {
    c = 0;
  }
  if (c <= hlc_logical_max) return {l, static_cast<std::uint32_t>(c)};
  if (l == std::numeric_limits<std::int64_t>::max()) hlc_overflow();
  return {l + 1, 0};
}

// A 16-byte word holding a HybridTimestamp: lo = wall_ns (two's complement), hi = logical.
struct alignas(16) HlcWord {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
};

constexpr HlcWord hlc_encode(HybridTimestamp ts) noexcept {
  return {static_cast<std::uint64_t>(ts.wall_ns), ts.logical};
}
constexpr HybridTimestamp hlc_decode(HlcWord w) noexcept {
  return {static_cast<std::int64_t>(w.lo), static_cast<std::uint32_t>(w.hi)};
}

#if defined(__x86_64__)
// Returns whether the CPU has CMPXCHG16B (CPUID.1:ECX bit 13). Cached after the first call.
inline bool cpu_has_cmpxchg16b() noexcept {
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
    return (c & (1u << 13)) != 0;
  }();
  return has;
}

// Compares *word with `expected` and, when equal, replaces it with `desired` (true);
// otherwise loads the current value into `expected` (false). One `lock cmpxchg16b`: a full
// barrier. Under ThreadSanitizer the sanitizer's own 16-byte CAS is used, so it sees it.
inline bool hlc_cas(HlcWord* word, HlcWord& expected, HlcWord desired) noexcept {
#if defined(PODS_DETAIL_HLC_TSAN)
  __extension__ typedef __int128 wide;
  __extension__ typedef unsigned __int128 uwide;
  wide e = static_cast<wide>((static_cast<uwide>(expected.hi) << 64) | expected.lo);
  const wide d = static_cast<wide>((static_cast<uwide>(desired.hi) << 64) | desired.lo);
  const bool ok = __tsan_atomic128_compare_exchange_strong(
      reinterpret_cast<volatile __tsan_atomic128*>(word), &e, d, __tsan_memory_order_acq_rel,
      __tsan_memory_order_acquire);
  expected.lo = static_cast<std::uint64_t>(e);
  expected.hi = static_cast<std::uint64_t>(static_cast<uwide>(e) >> 64);
  return ok;
#else
  bool ok;
  __asm__ __volatile__("lock cmpxchg16b %1"
                       : "=@ccz"(ok), "+m"(*word), "+a"(expected.lo), "+d"(expected.hi)
                       : "b"(desired.lo), "c"(desired.hi)
                       : "memory");
  return ok;
#endif
}
#endif

}  // namespace detail

// HybridClock: a hybrid logical clock over a PhysicalClock whose time_since_epoch() is wall
// time (SystemClock, TscClock, ManualClock).
template <PhysicalClock Clock = SystemClock, Threading T = ThreadSafe>
class HybridClock {
 public:
  // The maximum offset a clock constructed without one checks: CockroachDB's default.
  static constexpr std::chrono::nanoseconds default_max_offset{500'000'000};

  // Creates a fresh clock (l = 0, c = 0) reading `clock`. A non-zero `max_offset` makes
  // update() refuse timestamps more than max_offset ahead of the physical clock; zero turns
  // the check off. Retains a copy of `clock`. Throws std::invalid_argument when max_offset
  // is negative.
  explicit HybridClock(Clock clock = Clock(),
                       std::chrono::nanoseconds max_offset = default_max_offset)
      : clock_(std::move(clock)), max_offset_(max_offset) {
    if (max_offset.count() < 0) {
      throw std::invalid_argument("HybridClock: max_offset must not be negative, got " +
                                  std::to_string(max_offset.count()) + " ns");
    }
#if defined(__x86_64__)
    if constexpr (T::is_thread_safe) lock_free_ = detail::cpu_has_cmpxchg16b();
#endif
  }

  HybridClock(const HybridClock&) = delete;
  HybridClock& operator=(const HybridClock&) = delete;

  // Stamps a local event or a send: applies the send rule and returns the new timestamp.
  // Never allocates. Throws std::overflow_error only past the int64 nanosecond range.
  HybridTimestamp now() {
    const std::int64_t pt = physical_ns();
    return apply([pt](HybridTimestamp last) { return detail::hlc_send(last, pt); });
  }

  // Records the receipt of a message stamped `received`: applies the receive rule and returns
  // the new timestamp. Throws pods::ClockOffsetError (changing nothing) when max_offset is
  // non-zero and received.wall_ns is more than max_offset ahead of the physical clock.
  // Never allocates on success.
  HybridTimestamp update(const HybridTimestamp& received) {
    const std::int64_t pt = physical_ns();
    if (max_offset_.count() != 0 && received.wall_ns > pt) {
      const std::uint64_t ahead =
          static_cast<std::uint64_t>(received.wall_ns) - static_cast<std::uint64_t>(pt);
      if (ahead > static_cast<std::uint64_t>(max_offset_.count())) {
        constexpr auto cap = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        throw ClockOffsetError(static_cast<std::int64_t>(ahead < cap ? ahead : cap),
                               max_offset_.count());
      }
    }
    const HybridTimestamp m = received;
    return apply([m, pt](HybridTimestamp last) { return detail::hlc_receive(last, m, pt); });
  }

  // Returns the latest timestamp issued or observed, unchanged. Never allocates or throws.
  HybridTimestamp last() const noexcept {
#if defined(__x86_64__)
    if constexpr (T::is_thread_safe) {
      if (lock_free_) {
        // A compare-exchange of 0 with 0 returns the whole word atomically and never changes
        // a word that holds anything else (and 0 replaced by 0 is no change).
        detail::HlcWord seen{};
        detail::hlc_cas(&word_, seen, detail::HlcWord{});
        return detail::hlc_decode(seen);
      }
    }
#endif
    ScopedLock lock(mutex_);
    return detail::hlc_decode(word_);
  }

  // Returns the configured maximum offset (zero: no check).
  std::chrono::nanoseconds max_offset() const noexcept {
    return max_offset_;
  }

  // Returns true when now() and update() are lock-free (ThreadSafe on x86-64 with
  // CMPXCHG16B); false when they take a mutex (or, SingleThreaded, need none).
  bool is_lock_free() const noexcept {
    return lock_free_;
  }

  // Returns a copy of the physical clock.
  Clock clock() const {
    return clock_;
  }

 private:
  std::int64_t physical_ns() const {
    if constexpr (requires { clock_.now_unordered(); }) {
      return to_nanoseconds(clock_.now_unordered());
    } else {
      return to_nanoseconds(clock_.now());
    }
  }

  template <class Rule>
  HybridTimestamp apply(Rule rule) {
#if defined(__x86_64__)
    if constexpr (T::is_thread_safe) {
      if (lock_free_) {
        // A torn read is harmless: the compare-exchange fails and returns the whole word.
        detail::HlcWord expected{__atomic_load_n(&word_.lo, __ATOMIC_RELAXED),
                                 __atomic_load_n(&word_.hi, __ATOMIC_RELAXED)};
        for (;;) {
          const HybridTimestamp next = rule(detail::hlc_decode(expected));
          if (detail::hlc_cas(&word_, expected, detail::hlc_encode(next))) return next;
        }
      }
    }
#endif
    ScopedLock lock(mutex_);
    const HybridTimestamp next = rule(detail::hlc_decode(word_));
    word_ = detail::hlc_encode(next);
    return next;
  }

  Clock clock_;
  std::chrono::nanoseconds max_offset_;
  bool lock_free_ = false;
  mutable detail::HlcWord word_{};
  mutable typename T::mutex mutex_;
};

}  // namespace pods

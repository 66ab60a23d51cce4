// pods/time/tsc_clock.hpp — TscClock, a fast monotonic wall clock from the CPU's time-stamp counter
//
// Problem:       A hybrid clock reads the physical clock on every timestamp, and
//                clock_gettime(CLOCK_REALTIME) costs about 20-25 ns even through the vDSO;
//                the wall clock may also step backwards.
// Solution:      Read the CPU's time-stamp counter (rdtsc) and turn ticks into wall
//                nanoseconds with a linear map, ns = ns_base + (tsc - tsc_base) * mult / 2^32,
//                calibrated against SystemClock (over 1 ms on first use) and re-synchronised
//                every resync_interval (1 ms) of TSC time. The map is published with a
//                sequence lock; the reader that first finds it expired re-synchronises
//                (one clock_gettime) while the others keep reading. A map never serves a tick
//                past its interval, so the next map can start at or above the largest value
//                the previous one could return: readings never go back. When the system clock
//                is behind the map, the next interval runs slower (at least half speed) until
//                they meet; when it is ahead, the map jumps forward to it.
// Guarantees:    Monotonic: a reading is never less than a reading that happened before it,
//                in this thread or (through any synchronisation) in another. While SystemClock
//                runs without steps, |TscClock::now() - SystemClock::now()| stays under
//                max_drift (50 us); measured drift is well under 1 us. A forward step of the
//                system clock is followed within resync_interval; after a backward step of D,
//                TscClock runs at half speed and meets the system clock again after about 2D.
// Not provided:  The TSC is used only on x86-64 when the CPU reports an invariant TSC
//                (CPUID 0x80000007 EDX bit 8) and, on Linux, the kernel's clocksource is
//                "tsc" (so the kernel found the counters synchronised across cores);
//                otherwise TscClock reads SystemClock and keeps it monotonic with an atomic
//                maximum (uses_tsc() says which). The first reading in a process takes about
//                1 ms (calibration).
// Thread safety: thread-safe: now() from any thread. Calibration state is process-wide.
//                Readers take no lock; a reader that meets a re-synchronisation in progress
//                (a few hundred ns) spins briefly, then yields.
// Errors:        none; every member is noexcept.
// Cost:          now(): lfence + rdtsc, a few relaxed loads, one multiply (19 ns measured here);
//                now_unordered(): the same without the lfence (10 ns). No allocation.
// Example:
//   pods::HybridClock<pods::TscClock> clock;    // HLC at rdtsc speed
//   auto ts = clock.now();
//   auto wall = pods::TscClock{}.now();         // a SystemClock::time_point
// Example context: #include <pods/time/hybrid_clock.hpp>
#pragma once

#include <pods/policy/clock.hpp>  // and std::chrono

#include <atomic>
#include <cstdint>
#include <limits>

#if defined(__x86_64__)
#include <cpuid.h>
#include <fcntl.h>   // open
#include <sched.h>   // sched_yield
#include <unistd.h>  // read, close
#endif

namespace pods {

namespace detail {

// Process-wide calibration of the TSC. The map fields are written only by the thread that
// moved `seq` from even to odd, and published by storing the next even value (release);
// readers check `seq` before and after reading them (an acquire fence between), so they never
// use a half-written map. `seq == 0`: not calibrated yet.
struct TscState {
  std::atomic<std::uint64_t> seq{0};
  std::atomic<std::uint64_t> tsc_base{0};
  std::atomic<std::int64_t> ns_base{0};
  std::atomic<std::uint64_t> mult{0};   // ns per tick, 32.32 fixed point (slewed)
  std::atomic<std::uint64_t> limit{0};  // the map serves ticks tsc_base .. tsc_base + limit
  std::atomic<bool> use_tsc{false};
  std::atomic<std::int64_t> fallback_last{std::numeric_limits<std::int64_t>::min()};
  // Writer-only (guarded by seq being odd):
  std::uint64_t rate = 0;  // unslewed ns per tick, 32.32 fixed point
  std::uint64_t ref_tsc = 0;
  std::int64_t ref_ns = 0;
};

inline TscState tsc_state;  // constant-initialised: no static initialisation order issue

__extension__ typedef unsigned __int128 tsc_wide;

inline constexpr std::int64_t tsc_interval_ns = 1'000'000;  // resync_interval
inline constexpr std::int64_t tsc_calibration_ns = 1'000'000;

#if defined(__x86_64__)
// The compiler builtins behind <x86intrin.h>'s _mm_lfence, __rdtsc and _mm_pause, called
// directly: that header declares every vector intrinsic and costs more to compile than the
// rest of this header.
inline std::uint64_t rdtsc_ordered() noexcept {
  __builtin_ia32_lfence();  // waits for earlier instructions (and loads) to complete
  return __builtin_ia32_rdtsc();
}
inline std::uint64_t rdtsc_unordered() noexcept {
  return __builtin_ia32_rdtsc();
}
inline void cpu_pause() noexcept {
  __builtin_ia32_pause();
}

// Returns 1 when the first line of the file at `path` is `expected`, 0 when it is something
// else, and -1 when the file cannot be read (then the caller decides without it).
inline int first_line_is(const char* path, const char* expected) noexcept {
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  char buffer[64];
  const ssize_t got = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  if (got <= 0) return -1;
  const auto length = static_cast<std::size_t>(got);
  std::size_t n = 0;
  for (; expected[n] != '\0'; ++n) {
    if (n >= length || buffer[n] != expected[n]) return 0;
  }
  return n == length || buffer[n] == '\n' ? 1 : 0;
}

// Returns whether the TSC is usable as a synchronised, constant-rate counter.
inline bool tsc_usable() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(0x80000000u, &a, &b, &c, &d) == 0 || a < 0x80000007u) return false;
  __get_cpuid(0x80000007u, &a, &b, &c, &d);
  if ((d & (1u << 8)) == 0) return false;  // not invariant
#if defined(__linux__)
  const int tsc =
      first_line_is("/sys/devices/system/clocksource/clocksource0/current_clocksource", "tsc");
  if (tsc >= 0) return tsc == 1;
#endif
  return true;
}

// Reads (tsc, system ns) close together: the narrowest of a few bracketed attempts, so a
// preemption between the two reads does not skew the pair.
inline void tsc_sample(std::uint64_t& tsc, std::int64_t& ns) noexcept {
  std::uint64_t best = std::numeric_limits<std::uint64_t>::max();
  for (int attempt = 0; attempt < 5; ++attempt) {
    const std::uint64_t before = rdtsc_ordered();
    const std::int64_t system = to_nanoseconds(SystemClock::now());
    const std::uint64_t after = rdtsc_ordered();
    if (after - before < best) {
      best = after - before;
      tsc = before + (after - before) / 2;
      ns = system;
    }
  }
}

// Returns (a << 32) / b for a, b > 0, saturated to 64 bits.
inline std::uint64_t tsc_ratio(std::int64_t a, std::uint64_t b) noexcept {
  const tsc_wide r = (static_cast<tsc_wide>(static_cast<std::uint64_t>(a)) << 32) / b;
  return r > std::numeric_limits<std::uint64_t>::max() ? std::numeric_limits<std::uint64_t>::max()
                                                       : static_cast<std::uint64_t>(r);
}

// Publishes a map starting at (tsc, ns) with slope `mult`, serving tsc_interval_ns.
inline void tsc_publish(TscState& s, std::uint64_t seq, std::uint64_t tsc, std::int64_t ns,
                        std::uint64_t mult) noexcept {
  s.tsc_base.store(tsc, std::memory_order_relaxed);
  s.ns_base.store(ns, std::memory_order_relaxed);
  s.mult.store(mult, std::memory_order_relaxed);
  s.limit.store(tsc_ratio(tsc_interval_ns, s.rate), std::memory_order_relaxed);
  s.seq.store(seq, std::memory_order_release);
}

// First use: measures the TSC rate over tsc_calibration_ns, or selects the fallback.
inline void tsc_calibrate(TscState& s) {
  std::uint64_t expected = 0;
  if (!s.seq.compare_exchange_strong(expected, 1, std::memory_order_acquire)) return;
  std::atomic_thread_fence(std::memory_order_release);  // the odd seq before any map store
  std::uint64_t t0 = 0, t1 = 0;
  std::int64_t n0 = 0, n1 = 0;
  bool usable = tsc_usable();
  if (usable) {
    tsc_sample(t0, n0);
    const auto until = SteadyClock::now() + std::chrono::nanoseconds(tsc_calibration_ns);
    while (SteadyClock::now() < until)
      cpu_pause();
    tsc_sample(t1, n1);
    usable = t1 > t0 && n1 > n0;
  }
  s.use_tsc.store(usable, std::memory_order_relaxed);
  if (!usable) {
    s.seq.store(2, std::memory_order_release);
    return;
  }
  s.rate = tsc_ratio(n1 - n0, t1 - t0);
  s.ref_tsc = t0;
  s.ref_ns = n0;
  tsc_publish(s, 2, t1, n1, s.rate);
}

// Re-synchronises the map with SystemClock; `seq` is the even value the caller saw. Returns
// at once when another thread got there first.
inline void tsc_resync(TscState& s, std::uint64_t seq) noexcept {
  if (!s.seq.compare_exchange_strong(seq, seq + 1, std::memory_order_acquire)) return;
  std::atomic_thread_fence(std::memory_order_release);  // the odd seq before any map store
  const std::uint64_t old_base = s.tsc_base.load(std::memory_order_relaxed);
  const std::int64_t old_ns = s.ns_base.load(std::memory_order_relaxed);
  const std::uint64_t old_mult = s.mult.load(std::memory_order_relaxed);
  const std::uint64_t old_limit = s.limit.load(std::memory_order_relaxed);
  // The largest value the old map can have returned.
  const std::int64_t ceiling =
      old_ns + static_cast<std::int64_t>((static_cast<tsc_wide>(old_limit) * old_mult) >> 32);
  std::uint64_t tsc = 0;
  std::int64_t ns = 0;
  tsc_sample(tsc, ns);
  if (tsc < old_base) tsc = old_base;
  // Refine the rate from the long baseline; a rate more than ~0.1% off means the system
  // clock stepped: keep the rate and restart the baseline here.
  if (tsc > s.ref_tsc && ns > s.ref_ns) {
    const std::uint64_t measured = tsc_ratio(ns - s.ref_ns, tsc - s.ref_tsc);
    const std::uint64_t diff = measured > s.rate ? measured - s.rate : s.rate - measured;
    if (diff <= s.rate >> 10) {
      s.rate = measured;
    } else {
      s.ref_tsc = tsc;
      s.ref_ns = ns;
    }
  } else {
    s.ref_tsc = tsc;
    s.ref_ns = ns;
  }
  std::uint64_t mult = s.rate;
  std::int64_t start = ns;
  if (ceiling > ns) {
    // Ahead of the system clock: start at the ceiling and slow down to meet it.
    start = ceiling;
    const std::int64_t ahead = ceiling - ns;
    std::int64_t advance = tsc_interval_ns - ahead;
    if (advance < tsc_interval_ns / 2) advance = tsc_interval_ns / 2;
    const tsc_wide slowed = static_cast<tsc_wide>(s.rate) * static_cast<std::uint64_t>(advance) /
                            static_cast<std::uint64_t>(tsc_interval_ns);
    mult = static_cast<std::uint64_t>(slowed);
    if (mult == 0) mult = 1;
  }
  tsc_publish(s, seq + 2, tsc, start, mult);
}

template <bool Ordered>
inline std::int64_t tsc_now_ns() noexcept {
  TscState& s = tsc_state;
  for (int spins = 0;; ++spins) {
    const std::uint64_t seq = s.seq.load(std::memory_order_acquire);
    if (seq == 0) [[unlikely]] {
      tsc_calibrate(s);
      continue;
    }
    if (seq & 1) [[unlikely]] {
      if (spins < 64) {
        cpu_pause();
      } else {
        sched_yield();
      }
      continue;
    }
    if (!s.use_tsc.load(std::memory_order_relaxed)) [[unlikely]] {
      // Fallback: SystemClock, made monotonic by an atomic maximum.
      std::int64_t now = to_nanoseconds(SystemClock::now());
      std::int64_t last = s.fallback_last.load(std::memory_order_relaxed);
      while (last < now &&
             !s.fallback_last.compare_exchange_weak(last, now, std::memory_order_acq_rel)) {
      }
      return last > now ? last : now;
    }
    const std::uint64_t base = s.tsc_base.load(std::memory_order_relaxed);
    const std::int64_t ns = s.ns_base.load(std::memory_order_relaxed);
    const std::uint64_t mult = s.mult.load(std::memory_order_relaxed);
    const std::uint64_t limit = s.limit.load(std::memory_order_relaxed);
    const std::uint64_t tsc = Ordered ? rdtsc_ordered() : rdtsc_unordered();
    std::atomic_thread_fence(std::memory_order_acquire);
    if (s.seq.load(std::memory_order_relaxed) != seq) [[unlikely]]
      continue;
    const std::uint64_t delta = tsc > base ? tsc - base : 0;
    if (delta > limit) [[unlikely]] {
      tsc_resync(s, seq);
      continue;
    }
    return ns + static_cast<std::int64_t>((delta * mult) >> 32);
  }
}
#else
template <bool Ordered>
inline std::int64_t tsc_now_ns() noexcept {
  TscState& s = tsc_state;
  std::int64_t now = to_nanoseconds(SystemClock::now());
  std::int64_t last = s.fallback_last.load(std::memory_order_relaxed);
  while (last < now &&
         !s.fallback_last.compare_exchange_weak(last, now, std::memory_order_acq_rel)) {
  }
  return last > now ? last : now;
}
#endif

}  // namespace detail

// TscClock: a PhysicalClock reading wall time (nanoseconds since the Unix epoch, like
// SystemClock) from the time-stamp counter. An empty value type; copies share the
// process-wide calibration.
class TscClock {
 public:
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = SystemClock::time_point;
  static constexpr bool is_steady = false;

  // The period after which the map is re-synchronised with SystemClock (TSC time).
  static constexpr std::chrono::nanoseconds resync_interval{detail::tsc_interval_ns};
  // The stated bound on |now() - SystemClock::now()| while the system clock is not stepped.
  static constexpr std::chrono::nanoseconds max_drift{50'000};

  // Returns the current wall time, monotonic across threads (the counter is read after every
  // earlier instruction completed). Never allocates or throws; the first call in a process
  // calibrates (about 1 ms).
  static time_point now() noexcept { return time_point(duration(detail::tsc_now_ns<true>())); }

  // Returns the current wall time like now(), but the counter read may be executed before
  // earlier loads complete, so a reading taken just after synchronising with another thread
  // may be a few dozen ns older than that thread's. Monotonic within what the CPU orders;
  // meant for callers that order their readings themselves (HybridClock's compare-exchange).
  static time_point now_unordered() noexcept {
    return time_point(duration(detail::tsc_now_ns<false>()));
  }

  // Returns true when readings come from the TSC, false when from the SystemClock fallback.
  // Calibrates first when needed.
  static bool uses_tsc() noexcept {
    (void)now();
    return detail::tsc_state.use_tsc.load(std::memory_order_relaxed);
  }
};
static_assert(PhysicalClock<TscClock>);

}  // namespace pods

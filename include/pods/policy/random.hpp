// pods/policy/random.hpp — Random, a deterministic generator that replays on every platform
//
// Problem:       A simulation, an election timeout or a gossip round that draws from
//                std::random_device cannot be replayed, and one that draws through the std
//                distributions replays only on the standard library it ran on: libstdc++,
//                libc++ and MSVC's uniform_int_distribution give different numbers from the
//                same engine. A failing seed that does not replay elsewhere is worth little.
// Solution:      pods::Random is xoshiro256** (Blackman and Vigna, 2018): 256 bits of state,
//                a period of 2^256 - 1, four words of state updated with shifts, xors and
//                rotations. The state is filled from the 64-bit seed by SplitMix64 (Steele,
//                Lea and Flood, 2014), the seeding its authors recommend. Every draw is
//                computed here in integer arithmetic with a fixed number of steps, so the
//                same seed gives the same numbers on every compiler and standard library:
//                  - below(n): Lemire's multiply-and-reject method (2019): the high word of
//                    x * n, redrawing only when the low word falls in the 2^64 mod n biased
//                    zone; no modulo bias, no division on the common path;
//                  - uniform(): the top 53 bits as a double in [0, 1);
//                  - chance(p): the top 53 bits compared with p * 2^53 (exact, no rounding);
//                  - shuffle: Fisher-Yates with below();
//                  - fork(): a child stream seeded from the parent, for per-node streams.
// Guarantees:    The same seed (or state) gives the same sequence everywhere, pinned by a
//                test. Bounded draws are exactly uniform. The state is never all zero.
//                exponential() is the one draw that goes through the math library (std::log);
//                it replays wherever the libm does (glibc for g++ and clang++ alike).
// Not provided:  Cryptographic strength: the state is recoverable from a few outputs. Never
//                use it for keys, nonces or anything an adversary must not predict.
// Thread safety: thread-compatible: a value type; give each thread (each node) its own fork.
// Errors:        below(0), between(lo, hi) with lo > hi, chance(p) with p outside [0, 1],
//                exponential with a negative mean, and from_state with an all-zero state
//                throw std::invalid_argument naming the argument.
// Cost:          next(): about 1 ns, no allocation; below(): one multiply, rarely a redraw.
// Example:
//   pods::Random random(seed);
//   auto timeout = random.between(150ms, 300ms);      // election jitter
//   if (random.chance(0.01)) drop(message);           // one in a hundred
//   random.shuffle(peers);                            // gossip targets
//   pods::Random node_random = random.fork(node_id);  // one stream per node
// Example context: inline std::uint64_t seed = 42, node_id = 7;
// Example context: struct Message {};
// Example context: inline Message message;
// Example context: inline void drop(const Message&) {}
// Example context: inline std::vector<int> peers{1, 2, 3};
#pragma once

#include <array>
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <iterator>
#include <limits>
#include <ranges>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

namespace pods {

namespace detail {

// Returns a well-mixed, bijective 64-bit function of z: the SplitMix64 finaliser. Also used by
// the simulator's trace digest and the linearizability checker's hash tables.
constexpr std::uint64_t mix64(std::uint64_t z) noexcept {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Returns the next SplitMix64 output and advances `state` by the golden-ratio increment.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  return mix64(state += 0x9E3779B97F4A7C15ULL);
}

// Returns the 128-bit product of a and b as (high, low) words.
constexpr std::pair<std::uint64_t, std::uint64_t> multiply_wide(std::uint64_t a,
                                                                std::uint64_t b) noexcept {
#if defined(__SIZEOF_INT128__)
  __extension__ using u128 = unsigned __int128;
  const u128 product = static_cast<u128>(a) * b;
  return {static_cast<std::uint64_t>(product >> 64), static_cast<std::uint64_t>(product)};
#else
  const std::uint64_t a_lo = a & 0xFFFFFFFFu, a_hi = a >> 32;
  const std::uint64_t b_lo = b & 0xFFFFFFFFu, b_hi = b >> 32;
  const std::uint64_t lo_lo = a_lo * b_lo, lo_hi = a_lo * b_hi;
  const std::uint64_t hi_lo = a_hi * b_lo, hi_hi = a_hi * b_hi;
  const std::uint64_t middle = (lo_lo >> 32) + (lo_hi & 0xFFFFFFFFu) + (hi_lo & 0xFFFFFFFFu);
  return {hi_hi + (lo_hi >> 32) + (hi_lo >> 32) + (middle >> 32),
          (middle << 32) | (lo_lo & 0xFFFFFFFFu)};
#endif
}

}  // namespace detail

class Random {
 public:
  // The four words of xoshiro256** state; never all zero.
  using State = std::array<std::uint64_t, 4>;

  // The UniformRandomBitGenerator interface, for std algorithms that need one. (The std
  // distributions are not portable: use the draws of this class instead.)
  using result_type = std::uint64_t;
  static constexpr result_type min() noexcept { return 0; }
  static constexpr result_type max() noexcept { return std::numeric_limits<result_type>::max(); }

  // Creates the generator for `seed`: the four state words are the first four SplitMix64
  // outputs from `seed`. (SplitMix64 is a bijection of its counter, so the four words are
  // distinct and never all zero.)
  explicit constexpr Random(std::uint64_t seed = 0) noexcept {
    std::uint64_t s = seed;
    for (auto& word : state_)
      word = detail::splitmix64(s);
  }

  // Returns a generator with exactly `state` (as saved by state()). Throws
  // std::invalid_argument naming state when every word is zero (xoshiro's one fixed point).
  static Random from_state(const State& state) {
    if ((state[0] | state[1] | state[2] | state[3]) == 0) {
      throw std::invalid_argument("Random::from_state: state must not be all zero");
    }
    Random r;
    r.state_ = state;
    return r;
  }

  // Returns the current state; from_state(state()) continues the same sequence.
  constexpr const State& state() const noexcept { return state_; }

  // Returns the next 64 uniformly distributed bits and advances the state (xoshiro256**).
  constexpr std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(state_[1] * 5, 7) * 9;
    const std::uint64_t t = state_[1] << 17;
    state_[2] ^= state_[0];
    state_[3] ^= state_[1];
    state_[1] ^= state_[2];
    state_[0] ^= state_[3];
    state_[2] ^= t;
    state_[3] = rotl(state_[3], 45);
    return result;
  }

  // Same as next(), for the UniformRandomBitGenerator interface.
  constexpr result_type operator()() noexcept { return next(); }

  // Returns a uniformly distributed integer in [0, n). Throws std::invalid_argument naming n
  // when n is 0. Consumes one draw, and another for each rejection (probability < n / 2^64).
  constexpr std::uint64_t below(std::uint64_t n) {
    if (n == 0) throw std::invalid_argument("Random::below: n must be positive");
    auto [high, low] = detail::multiply_wide(next(), n);
    if (low < n) {
      const std::uint64_t threshold = (0 - n) % n;  // 2^64 mod n: the biased low words
      while (low < threshold) {
        std::tie(high, low) = detail::multiply_wide(next(), n);
      }
    }
    return high;
  }

  // Returns a uniformly distributed integer in [lo, hi], both included (any integral type up
  // to 64 bits; the full range is allowed). Throws std::invalid_argument naming lo and hi when
  // lo > hi.
  template <std::integral T>
  constexpr T between(T lo, T hi) {
    static_assert(sizeof(T) <= sizeof(std::uint64_t), "Random::between: at most 64-bit types");
    if (lo > hi) {
      throw std::invalid_argument("Random::between: lo " + std::to_string(lo) +
                                  " must not exceed hi " + std::to_string(hi));
    }
    // Two's-complement arithmetic in uint64_t: hi - lo is the span for signed types too.
    const std::uint64_t span = static_cast<std::uint64_t>(hi) - static_cast<std::uint64_t>(lo);
    const std::uint64_t offset = span == max() ? next() : below(span + 1);
    return static_cast<T>(static_cast<std::uint64_t>(lo) + offset);
  }

  // Returns a uniformly distributed duration in [lo, hi], both included, in lo's ticks.
  // Throws std::invalid_argument naming lo and hi when lo > hi.
  template <class Rep, class Period>
  constexpr std::chrono::duration<Rep, Period> between(std::chrono::duration<Rep, Period> lo,
                                                       std::chrono::duration<Rep, Period> hi) {
    return std::chrono::duration<Rep, Period>(between<Rep>(lo.count(), hi.count()));
  }

  // Returns a uniformly distributed double in [0, 1): one of the 2^53 multiples of 2^-53.
  constexpr double uniform() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  // Returns true with probability p (exactly p rounded down to a multiple of 2^-53). Throws
  // std::invalid_argument naming p when p is outside [0, 1] or NaN. Always consumes one draw,
  // so changing p never shifts the draws that follow.
  constexpr bool chance(double p) {
    if (!(p >= 0.0 && p <= 1.0)) {
      throw std::invalid_argument("Random::chance: p must be in [0, 1], got " + std::to_string(p));
    }
    // p * 2^53 is exact (a power-of-two scaling) and fits in 54 bits, so the comparison is
    // integer-exact: no platform's rounding enters.
    const auto threshold = static_cast<std::uint64_t>(p * 0x1.0p53);
    return (next() >> 11) < threshold;
  }

  // Returns an exponentially distributed double with the given mean (the waiting time of a
  // Poisson process): -mean * log(1 - uniform()). Finite: at most about 36.7 * mean. Throws
  // std::invalid_argument naming mean when it is negative or NaN. Uses std::log (see the
  // header comment on portability).
  double exponential(double mean) {
    if (!(mean >= 0.0)) {
      throw std::invalid_argument("Random::exponential: mean must not be negative, got " +
                                  std::to_string(mean));
    }
    return -mean * std::log(1.0 - uniform());
  }

  // Returns an exponentially distributed duration with the given mean, truncated to whole
  // ticks. Throws std::invalid_argument naming mean when it is negative.
  template <class Rep, class Period>
  std::chrono::duration<Rep, Period> exponential(std::chrono::duration<Rep, Period> mean) {
    return std::chrono::duration<Rep, Period>(
        static_cast<Rep>(exponential(static_cast<double>(mean.count()))));
  }

  // Shuffles a random-access range in place (Fisher-Yates, drawing below(i + 1) for i from
  // the last index down to 1): every permutation is equally likely. Does not allocate.
  template <std::ranges::random_access_range R>
  requires std::permutable<std::ranges::iterator_t<R>>
  constexpr void shuffle(R&& range) {
    auto first = std::ranges::begin(range);
    const auto n = static_cast<std::uint64_t>(std::ranges::distance(range));
    for (std::uint64_t i = n; i > 1; --i) {
      const std::uint64_t j = below(i);
      std::ranges::iter_swap(first + static_cast<std::ptrdiff_t>(i - 1),
                             first + static_cast<std::ptrdiff_t>(j));
    }
  }

  // Returns an independent child generator and advances this one by one draw: the child is
  // seeded (through SplitMix64) with this generator's next output.
  constexpr Random fork() noexcept { return Random(next()); }

  // Returns the child stream numbered `stream` without advancing this generator: the same
  // parent state and stream give the same child, and different streams give unrelated
  // children. Fork one stream per node (by NodeId) so that adding a node does not shift the
  // draws of the others.
  constexpr Random fork(std::uint64_t stream) const noexcept {
    std::uint64_t s = stream;
    std::uint64_t digest = detail::splitmix64(s);
    for (const std::uint64_t word : state_) {
      s = digest ^ word;
      digest = detail::splitmix64(s);
    }
    return Random(digest);
  }

  friend constexpr bool operator==(const Random&, const Random&) = default;

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }

  State state_{};
};

}  // namespace pods

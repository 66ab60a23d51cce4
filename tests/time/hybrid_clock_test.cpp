#include <pods/time/hybrid_clock.hpp>

#include <pods/time/tsc_clock.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using pods::HybridTimestamp;

namespace {
template <class C, class T = pods::ThreadSafe>
concept hybrid_accepts = requires {
  typename pods::HybridClock<C, T>;
};

struct NotAClock {};

constexpr std::uint32_t logical_max = std::numeric_limits<std::uint32_t>::max();

// The HLC paper's rules (Kulkarni et al. 2014, figure 5), transcribed as written, plus the
// contract's carry: a logical part past its maximum moves the wall part forward 1 ns.
struct PaperHlc {
  std::int64_t l = 0;
  std::uint64_t c = 0;

  void normalise() {
    if (c > logical_max) {
      l += 1;
      c = 0;
    }
  }
  HybridTimestamp send(std::int64_t pt) {
    const std::int64_t l_old = l;
    l = std::max(l_old, pt);
    c = (l == l_old) ? c + 1 : 0;
    normalise();
    return {l, static_cast<std::uint32_t>(c)};
  }
  HybridTimestamp receive(std::int64_t lm, std::uint64_t cm, std::int64_t pt) {
    const std::int64_t l_old = l;
    l = std::max({l_old, lm, pt});
    if (l == l_old && l == lm) {
      c = std::max(c, cm) + 1;
    } else if (l == l_old) {
      c = c + 1;
    } else if (l == lm) {
      c = cm + 1;
    } else {
      c = 0;
    }
    normalise();
    return {l, static_cast<std::uint32_t>(c)};
  }
};

// Brings a fresh clock to (l, c) through the public interface: a receive of (l, c - 1) at pt.
template <class Clock>
void prime(Clock& hlc, pods::ManualClock& manual, std::int64_t l, std::uint32_t c) {
  manual.set(std::chrono::nanoseconds(l));
  if (c == 0) {
    REQUIRE(hlc.now() == HybridTimestamp{l, 0});
  } else {
    REQUIRE(hlc.update({l, c - 1}) == HybridTimestamp{l, c});
  }
}
}  // namespace

TEST_CASE("HybridClock: the clock and threading policies", "[hybrid]") {
  STATIC_REQUIRE(hybrid_accepts<pods::SystemClock>);
  STATIC_REQUIRE(hybrid_accepts<pods::ManualClock, pods::SingleThreaded>);
  STATIC_REQUIRE(hybrid_accepts<pods::TscClock>);
  STATIC_REQUIRE_FALSE(hybrid_accepts<NotAClock>);
  STATIC_REQUIRE_FALSE(hybrid_accepts<int>);
  STATIC_REQUIRE_FALSE(hybrid_accepts<pods::SystemClock, int>);
  STATIC_REQUIRE(std::is_same_v<decltype(HybridTimestamp{}.wall_ns), std::int64_t>);
  STATIC_REQUIRE(std::is_same_v<decltype(HybridTimestamp{}.logical), std::uint32_t>);
}

TEST_CASE("HybridTimestamp: ordered by (wall_ns, logical), printed as wall_ns.logical",
          "[hybrid]") {
  CHECK(HybridTimestamp{5, 9} < HybridTimestamp{6, 0});
  CHECK(HybridTimestamp{5, 1} < HybridTimestamp{5, 2});
  CHECK(HybridTimestamp{5, 2} == HybridTimestamp{5, 2});
  CHECK(to_string(HybridTimestamp{1700000000000000000, 3}) == "1700000000000000000.3");
  CHECK(to_string(HybridTimestamp{}) == "0.0");
  CHECK(to_string(HybridTimestamp{-5, 4294967295u}) == "-5.4294967295");
  std::ostringstream out;
  out << HybridTimestamp{12, 7};
  CHECK(out.str() == "12.7");
}

TEMPLATE_TEST_CASE("HybridClock: the send and receive rules of the HLC paper", "[hybrid]",
                   pods::ThreadSafe, pods::SingleThreaded) {
  pods::ManualClock manual;
  pods::HybridClock<pods::ManualClock, TestType> hlc(manual);

  SECTION("a fresh clock has l = 0, c = 0") {
    CHECK(hlc.last() == HybridTimestamp{0, 0});
  }

  SECTION("send: the wall part follows the physical clock, logical counts while it stands still") {
    struct Step {
      std::int64_t pt;
      HybridTimestamp expected;
    };
    const Step steps[] = {
        {100, {100, 0}},                  // the physical clock moved ahead: l = pt, c = 0
        {100, {100, 1}},                  // it stood still: c + 1
        {100, {100, 2}}, {40, {100, 3}},  // it stepped backwards: l stays, c + 1
        {101, {101, 0}},                  // ahead again
    };
    for (const Step& s : steps) {
      manual.set(std::chrono::nanoseconds(s.pt));
      INFO("pt " << s.pt);
      CHECK(hlc.now() == s.expected);
      CHECK(hlc.last() == s.expected);
    }
  }

  SECTION("receive: the four cases of the logical part (table)") {
    struct Case {
      const char* rule;
      HybridTimestamp local;
      HybridTimestamp received;
      std::int64_t pt;
      HybridTimestamp expected;
    };
    const Case cases[] = {
        {"l == l' == lm: max(c, cm) + 1", {100, 4}, {100, 9}, 50, {100, 10}},
        {"l == l' == lm, local c larger", {100, 9}, {100, 4}, 50, {100, 10}},
        {"only l == l': c + 1", {100, 4}, {90, 9}, 50, {100, 5}},
        {"only l == lm: cm + 1", {100, 4}, {120, 9}, 50, {120, 10}},
        {"pt is largest: 0", {100, 4}, {90, 9}, 150, {150, 0}},
        {"pt ties l', message behind", {100, 4}, {90, 9}, 100, {100, 5}},
        {"pt ties lm, local behind", {100, 4}, {120, 9}, 120, {120, 10}},
    };
    for (const Case& c : cases) {
      pods::HybridClock<pods::ManualClock, TestType> clock(manual);
      prime(clock, manual, c.local.wall_ns, c.local.logical);
      manual.set(std::chrono::nanoseconds(c.pt));
      INFO(c.rule);
      CHECK(clock.update(c.received) == c.expected);
      CHECK(clock.last() == c.expected);
    }
  }

  SECTION("the logical part never wraps: at its maximum the wall part moves 1 ns") {
    prime(hlc, manual, 1000, logical_max);
    manual.set(500ns);
    CHECK(hlc.now() == HybridTimestamp{1001, 0});
    CHECK(hlc.update({1001, logical_max}) == HybridTimestamp{1002, 0});
    CHECK(hlc.update({5000, logical_max}) == HybridTimestamp{5001, 0});
    CHECK(hlc.now() == HybridTimestamp{5001, 1});
  }

  SECTION("every timestamp is larger than everything issued or observed before") {
    std::mt19937_64 rng(7);
    HybridTimestamp previous = hlc.last();
    for (int i = 0; i < 2000; ++i) {
      manual.set(std::chrono::nanoseconds(static_cast<std::int64_t>(rng() % 1000)));
      HybridTimestamp received{static_cast<std::int64_t>(rng() % 1200),
                               static_cast<std::uint32_t>(rng() % 4)};
      const HybridTimestamp ts = (i % 2) ? hlc.now() : hlc.update(received);
      REQUIRE(ts > previous);
      if (i % 2 == 0) REQUIRE(ts > received);
      previous = ts;
    }
  }
}

TEMPLATE_TEST_CASE("HybridClock: the maximum offset check", "[hybrid]", pods::ThreadSafe,
                   pods::SingleThreaded) {
  pods::ManualClock manual(1'000'000ns);

  SECTION("a timestamp more than max_offset ahead throws ClockOffsetError and changes nothing") {
    pods::HybridClock<pods::ManualClock, TestType> hlc(manual, 500ns);
    const HybridTimestamp before = hlc.now();
    try {
      hlc.update({1'000'501, 0});
      FAIL("update accepted a timestamp 501 ns ahead with max_offset 500 ns");
    } catch (const pods::ClockOffsetError& e) {
      CHECK(e.offset_ns() == 501);
      CHECK(e.max_offset_ns() == 500);
      CHECK_THAT(e.what(), Catch::Contains("501") && Catch::Contains("500"));
    }
    CHECK(hlc.last() == before);
  }
  SECTION("exactly max_offset ahead, behind, or far behind is accepted") {
    pods::HybridClock<pods::ManualClock, TestType> hlc(manual, 500ns);
    CHECK(hlc.update({1'000'500, 2}) == HybridTimestamp{1'000'500, 3});
    CHECK(hlc.update({0, 0}) == HybridTimestamp{1'000'500, 4});
    CHECK(hlc.update({std::numeric_limits<std::int64_t>::min(), 0}) ==
          HybridTimestamp{1'000'500, 5});
  }
  SECTION("a zero max_offset checks nothing") {
    pods::HybridClock<pods::ManualClock, TestType> hlc(manual, 0ns);
    CHECK(hlc.max_offset() == 0ns);
    CHECK(hlc.update({4'000'000'000'000'000'000, 1}) ==
          HybridTimestamp{4'000'000'000'000'000'000, 2});
  }
  SECTION("by default 500 ms: a timestamp years ahead is refused, 500 ms ahead accepted") {
    using Clock = pods::HybridClock<pods::ManualClock, TestType>;
    STATIC_REQUIRE(Clock::default_max_offset == 500ms);
    Clock hlc(manual);
    CHECK(hlc.max_offset() == 500ms);
    const HybridTimestamp before = hlc.now();
    // One bad message: a peer whose clock reads the year 2096.
    CHECK_THROWS_AS(hlc.update({4'000'000'000'000'000'000, 1}), pods::ClockOffsetError);
    CHECK_THROWS_AS(hlc.update({1'000'000 + 500'000'001, 0}), pods::ClockOffsetError);
    CHECK(hlc.last() == before);
    CHECK(hlc.update({1'000'000 + 500'000'000, 0}) == HybridTimestamp{501'000'000, 1});
    CHECK(pods::HybridClock<>{}.max_offset() == 500ms);
  }
  SECTION("a negative max_offset is refused, naming the argument") {
    using Clock = pods::HybridClock<pods::ManualClock, TestType>;
    CHECK_THROWS_AS(Clock(manual, -1ns), std::invalid_argument);
    CHECK_THROWS_WITH(Clock(manual, -1ns), Catch::Contains("max_offset"));
  }
  SECTION("the wall part cannot pass INT64_MAX: overflow_error, nothing changes") {
    pods::HybridClock<pods::ManualClock, TestType> hlc(manual, 0ns);
    constexpr auto top = std::numeric_limits<std::int64_t>::max();
    CHECK(hlc.update({top, logical_max - 1}) == HybridTimestamp{top, logical_max});
    CHECK_THROWS_AS(hlc.now(), std::overflow_error);
    CHECK(hlc.last() == HybridTimestamp{top, logical_max});
  }
}

TEMPLATE_TEST_CASE("HybridClock: differential test against the paper's rules", "[hybrid]",
                   pods::ThreadSafe, pods::SingleThreaded) {
  // Random physical clock advances and backward steps, and random received timestamps near,
  // behind and ahead of the local clock, some with a logical part near its maximum.
  for (std::uint64_t seed : {1u, 2u, 3u, 42u, 2024u}) {
    std::mt19937_64 rng(seed);
    pods::ManualClock manual(1'000'000ns);
    pods::HybridClock<pods::ManualClock, TestType> hlc(manual);
    PaperHlc model;
    for (int step = 0; step < 20'000; ++step) {
      switch (rng() % 4) {
        case 0:
          manual.advance(std::chrono::nanoseconds(rng() % 50));
          break;
        case 1:
          manual.set(manual.now().time_since_epoch() - std::chrono::nanoseconds(rng() % 100));
          break;
        default:
          break;
      }
      const std::int64_t pt = pods::to_nanoseconds(manual.now());
      HybridTimestamp got, expected;
      if (rng() % 2) {
        got = hlc.now();
        expected = model.send(pt);
      } else {
        const std::int64_t around = (rng() % 2) ? model.l : pt;
        HybridTimestamp m{around + static_cast<std::int64_t>(rng() % 21) - 10,
                          static_cast<std::uint32_t>(rng() % 5)};
        if (rng() % 50 == 0) m.logical = logical_max - static_cast<std::uint32_t>(rng() % 3);
        got = hlc.update(m);
        expected = model.receive(m.wall_ns, m.logical, pt);
      }
      INFO("seed " << seed << " step " << step);
      REQUIRE(got == expected);
      REQUIRE(got.wall_ns >= pt);
    }
    CHECK(hlc.last() == HybridTimestamp{model.l, static_cast<std::uint32_t>(model.c)});
  }
}

TEST_CASE("HybridClock<ThreadSafe> is lock-free on x86-64 with CMPXCHG16B", "[hybrid]") {
  pods::HybridClock<> hlc;
#if defined(__x86_64__)
  CHECK(hlc.is_lock_free() == pods::detail::cpu_has_cmpxchg16b());
#else
  CHECK_FALSE(hlc.is_lock_free());
#endif
  CHECK_FALSE((pods::HybridClock<pods::SystemClock, pods::SingleThreaded>{}.is_lock_free()));
}

namespace {
// Runs now() and update() from `threads` threads; every timestamp must be unique and each
// thread's sequence strictly increasing.
template <class Hlc>
void check_unique_and_increasing(Hlc& hlc, int threads, int per_thread) {
  std::vector<std::vector<HybridTimestamp>> seen(threads);
  std::atomic<int> ready{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) {
      }
      for (int i = 0; i < per_thread; ++i) {
        if (i % 8 == 0 && !seen[t].empty()) {
          seen[t].push_back(hlc.update(seen[t].back()));
        } else {
          seen[t].push_back(hlc.now());
        }
      }
    });
  }
  for (auto& w : workers)
    w.join();
  std::vector<HybridTimestamp> all;
  for (const auto& s : seen) {
    CHECK(std::adjacent_find(s.begin(), s.end(), [](auto& a, auto& b) { return !(a < b); }) ==
          s.end());
    all.insert(all.end(), s.begin(), s.end());
  }
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  CHECK(hlc.last() == all.back());
}
}  // namespace

TEST_CASE("HybridClock<ThreadSafe>: timestamps from several threads are unique and increasing",
          "[hybrid][threads]") {
  SECTION("SystemClock") {
    pods::HybridClock<> hlc;
    check_unique_and_increasing(hlc, 3, 20'000);
  }
  SECTION("TscClock") {
    pods::HybridClock<pods::TscClock> hlc;
    check_unique_and_increasing(hlc, 3, 20'000);
  }
  SECTION("a ManualClock that stands still: only the logical part moves") {
    pods::ManualClock manual(5s);
    pods::HybridClock<pods::ManualClock> hlc(manual);
    check_unique_and_increasing(hlc, 2, 20'000);
    CHECK(hlc.last().wall_ns == 5'000'000'000);
  }
}

#include <pods/time/tsc_clock.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

using namespace std::chrono_literals;

TEST_CASE("TscClock: models PhysicalClock with SystemClock's time_point", "[tsc]") {
  STATIC_REQUIRE(pods::PhysicalClock<pods::TscClock>);
  STATIC_REQUIRE(std::is_same_v<pods::TscClock::time_point, pods::SystemClock::time_point>);
  STATIC_REQUIRE(std::is_same_v<pods::TscClock::duration, std::chrono::nanoseconds>);
  STATIC_REQUIRE(noexcept(pods::TscClock::now()));
  STATIC_REQUIRE(pods::TscClock::max_drift >= pods::TscClock::resync_interval / 1000);
}

TEST_CASE("TscClock: stays within max_drift of SystemClock across re-synchronisations", "[tsc]") {
  if (!pods::TscClock::uses_tsc()) WARN("no invariant TSC here: TscClock reads SystemClock");
  const auto bound = pods::TscClock::max_drift;
  // Run past several re-synchronisation intervals (busy reading, no sleeping).
  const auto until = pods::SteadyClock::now() + 20 * pods::TscClock::resync_interval;
  int readings = 0, outside = 0;
  std::chrono::nanoseconds worst{0};
  while (readings < 10'000 || pods::SteadyClock::now() < until) {  // a minimum on slow machines
    const auto before = pods::SystemClock::now();
    const auto tsc = pods::TscClock::now();
    const auto after = pods::SystemClock::now();
    ++readings;
    if (tsc < before - bound || tsc > after + bound) ++outside;
    const auto off = tsc < before ? before - tsc : (tsc > after ? tsc - after : 0ns);
    if (off > worst) worst = off;
  }
  INFO(readings << " readings, worst distance outside [before, after]: " << worst.count() << " ns");
  CHECK(readings >= 10'000);
  CHECK(outside == 0);
}

TEST_CASE("TscClock: readings in one thread never go back", "[tsc]") {
  const auto until = pods::SteadyClock::now() + 10 * pods::TscClock::resync_interval;
  auto previous = pods::TscClock::now();
  int back = 0, readings = 0;
  // At least 100 000 readings however slow the machine (the first reading calibrates, and a
  // loaded machine under a sanitizer can pass `until` before the loop starts), and readings
  // across 10 re-synchronisation intervals.
  while (readings < 100'000 || pods::SteadyClock::now() < until) {
    const auto now = pods::TscClock::now();
    if (now < previous) ++back;
    previous = now;
    ++readings;
  }
  CHECK(readings >= 100'000);
  CHECK(back == 0);
}

TEST_CASE("TscClock: monotonic across threads (a reading after a hand-off is not earlier)",
          "[tsc][threads]") {
  // Two threads pass the latest reading back and forth through an atomic; each reads the clock
  // after receiving the other's reading and must not see an earlier time.
  constexpr int rounds = 20'000;
  std::atomic<std::int64_t> baton{0};
  std::atomic<int> turn{0};
  std::atomic<int> earlier{0};
  std::atomic<int> own_back{0};
  auto player = [&](int me) {
    std::int64_t mine = 0;
    for (int r = 0; r < rounds; ++r) {
      while (turn.load(std::memory_order_acquire) % 2 != me) {
        std::this_thread::yield();
      }
      const std::int64_t theirs = baton.load(std::memory_order_acquire);
      const std::int64_t now = pods::to_nanoseconds(pods::TscClock::now());
      if (now < theirs) earlier.fetch_add(1);
      if (now < mine) own_back.fetch_add(1);
      mine = now;
      baton.store(now, std::memory_order_release);
      turn.fetch_add(1, std::memory_order_acq_rel);
    }
  };
  std::thread a(player, 0);
  std::thread b(player, 1);
  a.join();
  b.join();
  CHECK(turn.load() == 2 * rounds);
  CHECK(earlier.load() == 0);
  CHECK(own_back.load() == 0);
}

TEST_CASE("TscClock: free-running readers in several threads each see a non-decreasing clock",
          "[tsc][threads]") {
  constexpr int threads = 3;
  std::atomic<int> back{0};
  std::atomic<int> ready{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      ready.fetch_add(1);
      while (ready.load() < threads) {
      }
      auto previous = pods::TscClock::now();
      for (int i = 0; i < 50'000; ++i) {
        const auto now = pods::TscClock::now();
        if (now < previous) back.fetch_add(1);
        previous = now;
      }
    });
  }
  for (auto& w : workers)
    w.join();
  CHECK(back.load() == 0);
}

#if defined(__x86_64__)
TEST_CASE("TscClock: the clocksource file is read by its first line", "[tsc]") {
  char path[] = "/tmp/pods_tsc_clock_test_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  struct Case {
    const char* content;
    int expected;
  };
  const Case cases[] = {
      {"tsc\n", 1},  {"tsc", 1},  {"tsc\nhpet\n", 1}, {"hpet\n", 0},
      {"tsc2\n", 0}, {"ts\n", 0}, {"xtsc\n", 0},      {"", -1},
  };
  for (const Case& c : cases) {
    std::ofstream(path, std::ios::trunc) << c.content;
    INFO("content '" << c.content << "'");
    CHECK(pods::detail::first_line_is(path, "tsc") == c.expected);
  }
  std::remove(path);
  CHECK(pods::detail::first_line_is(path, "tsc") == -1);  // missing: decide without it
}

TEST_CASE("TscClock: uses the TSC only when the kernel's clocksource is tsc", "[tsc]") {
  std::ifstream source("/sys/devices/system/clocksource/clocksource0/current_clocksource");
  std::string name;
  if (!(source >> name)) {
    WARN("no clocksource file to compare with");
    return;
  }
  if (name != "tsc") CHECK_FALSE(pods::TscClock::uses_tsc());
  CHECK(pods::detail::first_line_is(
            "/sys/devices/system/clocksource/clocksource0/current_clocksource", "tsc") ==
        (name == "tsc" ? 1 : 0));
}
#endif

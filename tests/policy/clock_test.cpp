#include <pods/policy/clock.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {
struct NoNow {
  using time_point = std::chrono::system_clock::time_point;
  using duration = std::chrono::system_clock::duration;
};
struct WrongNow {
  using time_point = std::chrono::system_clock::time_point;
  using duration = std::chrono::system_clock::duration;
  int now() const { return 0; }
};
}  // namespace

TEST_CASE("PhysicalClock: the models and the does-not-models", "[clock]") {
  STATIC_REQUIRE(pods::PhysicalClock<pods::SystemClock>);
  STATIC_REQUIRE(pods::PhysicalClock<pods::SteadyClock>);
  STATIC_REQUIRE(pods::PhysicalClock<pods::ManualClock>);
  STATIC_REQUIRE(pods::PhysicalClock<std::chrono::steady_clock>);
  STATIC_REQUIRE_FALSE(pods::PhysicalClock<NoNow>);
  STATIC_REQUIRE_FALSE(pods::PhysicalClock<WrongNow>);
  STATIC_REQUIRE_FALSE(pods::PhysicalClock<int>);
}

TEST_CASE("SystemClock and SteadyClock read the std clocks at nanosecond resolution", "[clock]") {
  STATIC_REQUIRE(std::is_same_v<pods::SystemClock::duration, std::chrono::nanoseconds>);
  const auto before = std::chrono::system_clock::now();
  const auto ours = pods::SystemClock::now();
  const auto after = std::chrono::system_clock::now();
  CHECK(ours.time_since_epoch() >= before.time_since_epoch());
  CHECK(ours.time_since_epoch() <= after.time_since_epoch());
  const auto s1 = pods::SteadyClock::now();
  const auto s2 = pods::SteadyClock::now();
  CHECK(s2 >= s1);
}

TEST_CASE("ManualClock: copies share one time that moves only when told", "[clock]") {
  pods::ManualClock clock(5s);
  pods::ManualClock copy = clock;
  CHECK(clock.now().time_since_epoch() == 5s);
  CHECK(clock.now() == clock.now());

  SECTION("advance moves every copy forward") {
    copy.advance(250ms);
    CHECK(clock.now().time_since_epoch() == 5250ms);
  }
  SECTION("set moves every copy, backwards too") {
    clock.set(1s);
    CHECK(copy.now().time_since_epoch() == 1s);
  }
  SECTION("a negative advance is refused, naming the argument") {
    CHECK_THROWS_WITH(clock.advance(-1ns), Catch::Contains("step") && Catch::Contains("negative"));
    CHECK(clock.now().time_since_epoch() == 5s);
  }
  SECTION("default start is the epoch") {
    CHECK(pods::ManualClock{}.now().time_since_epoch() == 0ns);
  }
}

TEST_CASE("ManualClock: the shared time lives as long as any copy", "[clock]") {
  pods::ManualClock survivor;
  {
    pods::ManualClock original(7s);
    survivor = original;  // the default-constructed clock's time is released here
    pods::ManualClock moved = std::move(original);
    moved.advance(1s);
    CHECK(original.now().time_since_epoch() == 8s);  // a moved-from clock still reads it
  }
  CHECK(survivor.now().time_since_epoch() == 8s);
  pods::ManualClock& self = survivor;
  survivor = self;  // self-assignment keeps the time
  survivor.set(3s);
  CHECK(survivor.now().time_since_epoch() == 3s);
  pods::ManualClock other(1s);
  other = survivor;
  other.advance(1s);
  CHECK(survivor.now().time_since_epoch() == 4s);
}

TEST_CASE("ManualClock: copies made and dropped on several threads", "[clock][threads]") {
  pods::ManualClock clock(1s);
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([clock] {  // each thread holds its own copy
      for (int i = 0; i < 10'000; ++i) {
        pods::ManualClock copy = clock;
        copy.advance(1ns);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(clock.now().time_since_epoch() == 1s + 20'000ns);
}

TEST_CASE("ManualClock: sleep_until returns once another thread moves the time",
          "[clock][threads]") {
  pods::ManualClock clock;
  std::atomic<bool> woke{false};
  std::thread sleeper([&] {
    pods::sleep_until(clock, pods::ManualClock::time_point(10s));
    woke = true;
  });
  clock.advance(4s);
  CHECK_FALSE(woke.load());  // 4 s < 10 s: the sleeper cannot have returned
  clock.advance(6s);
  sleeper.join();
  CHECK(woke.load());
  CHECK(clock.now().time_since_epoch() == 10s);
}

TEST_CASE("sleep_until on a real clock returns at or after the deadline", "[clock]") {
  const auto deadline = pods::SteadyClock::now() + 1ms;
  pods::sleep_until(pods::SteadyClock{}, deadline);
  CHECK(pods::SteadyClock::now() >= deadline);
}

TEST_CASE("to_nanoseconds converts any time point", "[clock]") {
  CHECK(pods::to_nanoseconds(pods::ManualClock(3s).now()) == 3'000'000'000);
  CHECK(pods::to_nanoseconds(std::chrono::sys_seconds(2s)) == 2'000'000'000);
}

#include <pods/time/clock_bound_wait.hpp>

#include <pods/storage/versioned_value.hpp>
#include <pods/time/hybrid_clock.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>

using namespace std::chrono_literals;
using pods::HybridTimestamp;

namespace {
template <class C>
concept bound_accepts = requires {
  typename pods::ClockBoundWait<C>;
};
}  // namespace

TEST_CASE("ClockBoundWait: the PhysicalClock policy", "[clock_bound_wait]") {
  STATIC_REQUIRE(bound_accepts<pods::ManualClock>);
  STATIC_REQUIRE(bound_accepts<pods::SystemClock>);
  STATIC_REQUIRE_FALSE(bound_accepts<int>);
}

TEST_CASE("ClockBoundWait: a negative max_offset is refused, naming the argument",
          "[clock_bound_wait]") {
  CHECK_THROWS_AS(pods::ClockBoundWait<pods::ManualClock>(pods::ManualClock{}, -1ns),
                  std::invalid_argument);
  CHECK_THROWS_WITH(pods::ClockBoundWait<pods::ManualClock>(pods::ManualClock{}, -1ns),
                    Catch::Contains("max_offset"));
  CHECK(pods::ClockBoundWait<pods::ManualClock>(pods::ManualClock{}, 0ns).max_offset() == 0ns);
}

TEST_CASE("ClockBoundWait: remaining(ts) is the time until now - max_offset > ts",
          "[clock_bound_wait]") {
  struct Case {
    std::int64_t now, epsilon, ts, remaining;
  };
  const Case cases[] = {
      {100, 10, 89, 0},  // 100 - 10 = 90 > 89: safe
      {100, 10, 90, 1},  // 90 is not > 90: one more ns
      {100, 10, 95, 6},  // safe at 106
      {100, 0, 99, 0},   // no uncertainty: safe once the clock is past ts
      {100, 0, 100, 1},
      {100, 10, 1000, 911},  // a timestamp from the future waits for it plus epsilon
      {100, 10, -500, 0},
  };
  for (const Case& c : cases) {
    pods::ManualClock clock(std::chrono::nanoseconds(c.now));
    pods::ClockBoundWait<pods::ManualClock> bound(clock, std::chrono::nanoseconds(c.epsilon));
    INFO("now " << c.now << " epsilon " << c.epsilon << " ts " << c.ts);
    CHECK(bound.remaining(HybridTimestamp{c.ts, 7}) == std::chrono::nanoseconds(c.remaining));
    CHECK(bound.remaining(pods::ManualClock::time_point(std::chrono::nanoseconds(c.ts))) ==
          std::chrono::nanoseconds(c.remaining));
    CHECK(bound.is_safe(HybridTimestamp{c.ts, 0}) == (c.remaining == 0));
  }
}

TEST_CASE("ClockBoundWait: remaining shrinks as the clock moves", "[clock_bound_wait]") {
  pods::ManualClock clock(1s);
  pods::ClockBoundWait<pods::ManualClock> bound(clock, 5ms);
  const HybridTimestamp ts{pods::to_nanoseconds(clock.now()), 3};
  CHECK(bound.remaining(ts) == 5ms + 1ns);
  clock.advance(2ms);
  CHECK(bound.remaining(ts) == 3ms + 1ns);
  clock.advance(3ms);
  CHECK(bound.remaining(ts) == 1ns);
  clock.advance(1ns);
  CHECK(bound.remaining(ts) == 0ns);
  CHECK(bound.is_safe(ts));
}

TEST_CASE("ClockBoundWait: wait_until_safe returns at once when already safe",
          "[clock_bound_wait]") {
  pods::ManualClock clock(1s);
  pods::ClockBoundWait<pods::ManualClock> bound(clock, 5ms);
  bound.wait_until_safe(HybridTimestamp{0, 0});  // would block forever if it waited
  bound.wait_until_safe(pods::ManualClock::time_point(1s - 5ms - 1ns));
  CHECK(clock.now().time_since_epoch() == 1s);
}

TEST_CASE("ClockBoundWait: wait_until_safe blocks until now - max_offset > ts",
          "[clock_bound_wait][threads]") {
  pods::ManualClock clock(1s);
  pods::ClockBoundWait<pods::ManualClock> bound(clock, 5ms);
  const HybridTimestamp ts{pods::to_nanoseconds(clock.now()), 0};
  std::atomic<bool> returned{false};
  std::thread writer([&] {
    bound.wait_until_safe(ts);
    returned = true;
  });
  clock.advance(5ms);  // now - epsilon == ts: not yet safe
  CHECK_FALSE(returned.load());
  clock.advance(1ns);
  writer.join();
  CHECK(returned.load());
  CHECK(bound.remaining(ts) == 0ns);
}

TEST_CASE("ClockBoundWait with HybridClock: a write becomes visible only after the wait",
          "[clock_bound_wait][threads]") {
  // A node stamps a write with its hybrid clock, waits out the uncertainty, then publishes it.
  // A reader on another node whose clock is up to epsilon behind reads at its own now and
  // must see the write once it is published.
  const auto epsilon = 2ms;
  pods::ManualClock writer_clock(10s);
  pods::ManualClock reader_clock(10s - epsilon);  // the reader's clock is epsilon behind
  pods::HybridClock<pods::ManualClock> hlc(writer_clock);
  pods::ClockBoundWait<pods::ManualClock> bound(writer_clock, epsilon);
  pods::VersionedStore<std::string, std::string, HybridTimestamp> store;

  const HybridTimestamp ts = hlc.now();
  store.put("k", "v", ts);
  std::atomic<bool> published{false};
  std::thread writer([&] {
    bound.wait_until_safe(ts);
    published = true;
  });
  writer_clock.advance(epsilon);
  reader_clock.advance(epsilon);
  CHECK_FALSE(published.load());
  writer_clock.advance(1ns);
  reader_clock.advance(1ns);
  writer.join();
  REQUIRE(published.load());
  // Any node's clock (at most epsilon behind the writer's) is now past ts.
  const HybridTimestamp read_at{pods::to_nanoseconds(reader_clock.now()), 0};
  CHECK(read_at > ts);
  REQUIRE(store.get("k", read_at).has_value());
  CHECK(store.get("k", read_at)->value == "v");
}

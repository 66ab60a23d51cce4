#include <pods/time/lamport_clock.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <random>
#include <thread>
#include <vector>

namespace {
template <class T>
concept lamport_accepts = requires {
  typename pods::LamportClock<T>;
};
}  // namespace

TEST_CASE("LamportClock: the Threading policy models and does-not-models", "[lamport]") {
  STATIC_REQUIRE(lamport_accepts<pods::ThreadSafe>);
  STATIC_REQUIRE(lamport_accepts<pods::SingleThreaded>);
  STATIC_REQUIRE_FALSE(lamport_accepts<int>);
  STATIC_REQUIRE(std::is_same_v<decltype(pods::LamportClock<>{}.tick()), std::uint64_t>);
  STATIC_REQUIRE(noexcept(pods::LamportClock<>{}.tick(1)));
}

TEMPLATE_TEST_CASE("LamportClock: tick, receive and now follow Lamport's rules", "[lamport]",
                   pods::ThreadSafe, pods::SingleThreaded) {
  SECTION("a fresh clock reads its start value") {
    CHECK(pods::LamportClock<TestType>{}.now() == 0);
    CHECK(pods::LamportClock<TestType>{41}.now() == 41);
  }
  SECTION("a local event increments by one and returns the new value") {
    pods::LamportClock<TestType> clock(7);
    CHECK(clock.tick() == 8);
    CHECK(clock.tick() == 9);
    CHECK(clock.now() == 9);
  }
  SECTION("now() does not change the clock") {
    pods::LamportClock<TestType> clock(3);
    CHECK(clock.now() == 3);
    CHECK(clock.now() == 3);
  }
  SECTION("receive: max(local, received) + 1 (table)") {
    struct Case {
      std::uint64_t local, received, expected;
    };
    const Case cases[] = {
        {0, 0, 1}, {5, 3, 6}, {5, 5, 6}, {5, 9, 10}, {0, 100, 101}, {100, 0, 101},
    };
    for (const Case& c : cases) {
      pods::LamportClock<TestType> clock(c.local);
      INFO("local " << c.local << " received " << c.received);
      CHECK(clock.tick(c.received) == c.expected);
      CHECK(clock.now() == c.expected);
    }
  }
}

TEST_CASE("LamportClock: a cause always has a smaller timestamp than its effect", "[lamport]") {
  // Three nodes exchanging messages in a seeded random order; every receive must be stamped
  // after its send and after every earlier event on the receiving node.
  std::mt19937_64 rng(20240601);
  pods::LamportClock<pods::SingleThreaded> nodes[3];
  std::uint64_t last[3] = {0, 0, 0};
  for (int step = 0; step < 10'000; ++step) {
    const auto from = rng() % 3;
    const auto to = rng() % 3;
    const std::uint64_t sent = nodes[from].tick();
    CHECK(sent > last[from]);
    last[from] = sent;
    const std::uint64_t received = nodes[to].tick(sent);
    REQUIRE(received > sent);
    REQUIRE(received > last[to]);
    last[to] = received;
  }
}

TEST_CASE("LamportClock<ThreadSafe>: ticks from several threads are unique and increasing",
          "[lamport][threads]") {
  pods::LamportClock<> clock;
  constexpr int threads = 3;
  constexpr int per_thread = 20'000;
  std::vector<std::vector<std::uint64_t>> seen(threads);
  std::atomic<int> ready{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      ready.fetch_add(1);
      while (ready.load() < threads) {
      }
      for (int i = 0; i < per_thread; ++i) {
        // Mix local events and receives of values from the past.
        seen[t].push_back(i % 4 == 0 ? clock.tick(static_cast<std::uint64_t>(i)) : clock.tick());
      }
    });
  }
  for (auto& w : workers)
    w.join();
  std::vector<std::uint64_t> all;
  for (const auto& s : seen) {
    CHECK(std::is_sorted(s.begin(), s.end()));
    CHECK(std::adjacent_find(s.begin(), s.end()) == s.end());
    all.insert(all.end(), s.begin(), s.end());
  }
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  CHECK(clock.now() == all.back());
}

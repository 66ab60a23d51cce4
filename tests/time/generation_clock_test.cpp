#include <pods/time/generation_clock.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

namespace {
template <class T>
concept generation_accepts = requires {
  typename pods::GenerationClock<T>;
};
}  // namespace

TEST_CASE("GenerationClock: the Threading policy models and does-not-models", "[generation]") {
  STATIC_REQUIRE(generation_accepts<pods::ThreadSafe>);
  STATIC_REQUIRE(generation_accepts<pods::SingleThreaded>);
  STATIC_REQUIRE_FALSE(generation_accepts<double>);
}

TEMPLATE_TEST_CASE("GenerationClock: current, next, observe and is_stale", "[generation]",
                   pods::ThreadSafe, pods::SingleThreaded) {
  SECTION("a fresh clock is at generation 0, or at the recovered value") {
    CHECK(pods::GenerationClock<TestType>{}.current() == 0);
    CHECK(pods::GenerationClock<TestType>{12}.current() == 12);
  }
  SECTION("next() starts a new generation, one above the current") {
    pods::GenerationClock<TestType> gen(4);
    CHECK(gen.next() == 5);
    CHECK(gen.next() == 6);
    CHECK(gen.current() == 6);
  }
  SECTION("observe adopts only a higher generation and says whether it changed (table)") {
    struct Case {
      std::uint64_t current, observed;
      bool changed;
      std::uint64_t after;
    };
    const Case cases[] = {{3, 7, true, 7}, {3, 3, false, 3}, {3, 1, false, 3}, {0, 1, true, 1}};
    for (const Case& c : cases) {
      pods::GenerationClock<TestType> gen(c.current);
      INFO("current " << c.current << " observed " << c.observed);
      CHECK(gen.observe(c.observed) == c.changed);
      CHECK(gen.current() == c.after);
    }
  }
  SECTION("is_stale: a lower generation is stale, the current or a higher one is not") {
    pods::GenerationClock<TestType> gen(5);
    CHECK(gen.is_stale(4));
    CHECK(gen.is_stale(0));
    CHECK_FALSE(gen.is_stale(5));
    CHECK_FALSE(gen.is_stale(6));
  }
  SECTION("next() after observe() is above the observed generation") {
    pods::GenerationClock<TestType> gen(1);
    gen.observe(9);
    CHECK(gen.next() == 10);
  }
  SECTION("a restart recovers the generation stored with the last WAL entry") {
    std::vector<std::uint64_t> wal;  // the generation written with each entry
    {
      pods::GenerationClock<TestType> before(0);
      before.next();
      wal.push_back(before.current());
      before.observe(7);
      wal.push_back(before.current());
    }
    pods::GenerationClock<TestType> after(*std::max_element(wal.begin(), wal.end()));
    CHECK(after.current() == 7);
    CHECK(after.is_stale(6));
    CHECK(after.next() == 8);
  }
}

TEST_CASE("GenerationClock<ThreadSafe>: concurrent next() never repeats a generation",
          "[generation][threads]") {
  pods::GenerationClock<> gen;
  constexpr int per_thread = 10'000;
  std::vector<std::uint64_t> a, b;
  std::thread t1([&] {
    for (int i = 0; i < per_thread; ++i)
      a.push_back(gen.next());
  });
  std::thread t2([&] {
    for (int i = 0; i < per_thread; ++i)
      b.push_back(gen.next());
  });
  t1.join();
  t2.join();
  CHECK(std::is_sorted(a.begin(), a.end()));
  CHECK(std::is_sorted(b.begin(), b.end()));
  std::vector<std::uint64_t> all = a;
  all.insert(all.end(), b.begin(), b.end());
  std::sort(all.begin(), all.end());
  CHECK(std::adjacent_find(all.begin(), all.end()) == all.end());
  CHECK(gen.current() == 2 * per_thread);
}

TEST_CASE("GenerationClock<ThreadSafe>: racing observe() calls end at the maximum, one winner each",
          "[generation][threads]") {
  pods::GenerationClock<> gen;
  constexpr std::uint64_t top = 20'000;
  std::atomic<std::uint64_t> changes{0};
  std::atomic<std::uint64_t> highest_change{0};
  std::atomic<int> left_below{0};
  auto observer = [&](std::uint64_t offset) {
    for (std::uint64_t g = offset; g <= top; g += 2) {
      if (gen.observe(g)) {
        changes.fetch_add(1);
        std::uint64_t h = highest_change.load();
        while (h < g && !highest_change.compare_exchange_weak(h, g)) {
        }
      }
      if (gen.current() < g) left_below.fetch_add(1);  // observe never leaves the clock below g
    }
  };
  std::thread t1(observer, 1);
  std::thread t2(observer, 2);
  t1.join();
  t2.join();
  CHECK(left_below.load() == 0);
  CHECK(gen.current() == top);
  CHECK(highest_change.load() == top);
  CHECK(changes.load() >= 1);
  CHECK(changes.load() <= top);
}

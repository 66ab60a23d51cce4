#include <pods/policy/threading.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <latch>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace {
struct NotThreading {};
struct MissingMutex {
  static constexpr bool is_thread_safe = true;
  template <class T>
  using atomic = std::atomic<T>;
};

template <pods::Threading T>
std::uint64_t count_to(int n) {
  typename T::template atomic<std::uint64_t> counter{0};
  typename T::mutex m;
  for (int i = 0; i < n; ++i) {
    std::lock_guard lock(m);
    counter.fetch_add(1, std::memory_order_relaxed);
  }
  return counter.load();
}
}  // namespace

TEST_CASE("Threading: the models and the does-not-models", "[threading]") {
  STATIC_REQUIRE(pods::Threading<pods::ThreadSafe>);
  STATIC_REQUIRE(pods::Threading<pods::SingleThreaded>);
  STATIC_REQUIRE_FALSE(pods::Threading<NotThreading>);
  STATIC_REQUIRE_FALSE(pods::Threading<MissingMutex>);
  STATIC_REQUIRE(pods::ThreadSafe::is_thread_safe);
  STATIC_REQUIRE_FALSE(pods::SingleThreaded::is_thread_safe);
}

TEST_CASE("Threading: one implementation runs on both models", "[threading]") {
  CHECK(count_to<pods::ThreadSafe>(100) == 100);
  CHECK(count_to<pods::SingleThreaded>(100) == 100);
}

TEST_CASE("SingleThreaded atomic behaves as std::atomic does on one thread", "[threading]") {
  pods::SingleThreaded::atomic<std::uint64_t> a{5};
  CHECK(a.fetch_add(2) == 5);
  CHECK(a.fetch_sub(1) == 7);
  CHECK(a.exchange(10) == 6);
  std::uint64_t expected = 3;
  CHECK_FALSE(a.compare_exchange_strong(expected, 4));
  CHECK(expected == 10);
  CHECK(a.compare_exchange_weak(expected, 4));
  CHECK(a.load() == 4);
  a.store(9);
  CHECK(static_cast<std::uint64_t>(a) == 9);
}

TEST_CASE("ThreadSafe atomic and mutex synchronise two threads", "[threading][threads]") {
  pods::ThreadSafe::atomic<std::uint64_t> counter{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i)
        counter.fetch_add(1, std::memory_order_relaxed);
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(counter.load() == 20000);
}

TEST_CASE("AtomicMutex: try_lock fails while held, succeeds once released", "[threading]") {
  STATIC_REQUIRE(std::is_same_v<pods::ThreadSafe::mutex, pods::AtomicMutex>);
  pods::AtomicMutex m;
  CHECK(m.try_lock());
  CHECK_FALSE(m.try_lock());
  m.unlock();
  {
    pods::ScopedLock lock(m);
    CHECK_FALSE(m.try_lock());
  }
  CHECK(m.try_lock());
  m.unlock();
  {
    std::lock_guard lock(m);  // a Lockable for the std guards too
    CHECK_FALSE(m.try_lock());
  }
  CHECK(m.try_lock());
  m.unlock();
}

TEST_CASE("AtomicMutex: mutual exclusion under contention", "[threading][threads]") {
  // A plain counter guarded by the lock: a lost update (or, under TSan, a data race) means
  // two threads were inside at once.
  pods::AtomicMutex m;
  std::uint64_t plain = 0;
  constexpr int threads = 4, per_thread = 50'000;
  std::latch start(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      start.arrive_and_wait();
      for (int i = 0; i < per_thread; ++i) {
        pods::ScopedLock lock(m);
        plain = plain + 1;
      }
    });
  }
  for (auto& w : workers)
    w.join();
  CHECK(plain == std::uint64_t{threads} * per_thread);
  CHECK(m.try_lock());
  m.unlock();
}

TEST_CASE("AtomicMutex: a thread blocked in lock() gets it when the holder unlocks",
          "[threading][threads]") {
  pods::AtomicMutex m;
  m.lock();
  int guarded = 0;
  std::latch waiting(1);
  std::thread waiter([&] {
    waiting.count_down();
    m.lock();
    guarded = guarded + 1;  // after the holder's write: the unlock released it
    m.unlock();
  });
  waiting.wait();
  guarded = 41;
  m.unlock();
  waiter.join();
  CHECK(guarded == 42);
}

#include <pods/messaging/mpsc_queue.hpp>
#include <pods/messaging/producer_ring_queue.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {
struct NoConsume {
  explicit NoConsume(std::size_t) {}
  pods::Outcome<void> push(int&&, bool) { return {}; }
  void close() {}
  std::size_t capacity() const { return 0; }
};

template <class Q, class T>
std::vector<T> drain(Q& q) {
  std::vector<T> got;
  q.consume([&](T& v) noexcept { got.push_back(std::move(v)); });
  return got;
}
}  // namespace

TEST_CASE("MpscQueue: the models and the does-not-models", "[mpsc_queue]") {
  STATIC_REQUIRE(pods::MpscQueue<pods::MutexQueue<int>, int>);
  STATIC_REQUIRE(pods::MpscQueue<pods::ProducerRingQueue<int>, int>);
  STATIC_REQUIRE(pods::MpscQueue<pods::ProducerRingQueue<std::string>, std::string>);
  STATIC_REQUIRE_FALSE(pods::MpscQueue<NoConsume, int>);
  STATIC_REQUIRE_FALSE(pods::MpscQueue<int, int>);
}

TEMPLATE_TEST_CASE("MpscQueue models: one producer's items in push order", "[mpsc_queue]",
                   pods::MutexQueue<std::string>, pods::ProducerRingQueue<std::string>) {
  TestType q(0);
  // More than one ring segment, so the ring grows and wraps.
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 300; ++i) {
      std::string s = std::to_string(i);
      REQUIRE(q.push(std::move(s), true));
    }
    std::vector<std::string> got;
    while (got.size() < 300) {
      auto batch = drain<TestType, std::string>(q);
      got.insert(got.end(), batch.begin(), batch.end());
    }
    for (int i = 0; i < 300; ++i)
      CHECK(got[static_cast<std::size_t>(i)] == std::to_string(i));
  }
}

TEMPLATE_TEST_CASE("MpscQueue models: a producer lapping a consumer parked at a segment end",
                   "[mpsc_queue]", pods::MutexQueue<int>, pods::ProducerRingQueue<int>) {
  TestType q(0);
  // Exactly one first segment (64 items), consumed to its very end, then far more items than
  // the segment holds: the producer must not reuse the segment whose link the consumer has
  // still to follow.
  int next = 0;
  int expected = 0;
  int bad = 0;
  auto check = [&](int& v) noexcept {
    if (v != expected) ++bad;
    ++expected;
  };
  for (int round = 0; round < 4; ++round) {
    for (int i = 0; i < 64; ++i) {
      int v = next++;
      REQUIRE(q.push(std::move(v), true));
    }
    while (expected < next)
      q.consume(check);
    for (int i = 0; i < 500; ++i) {
      int v = next++;
      REQUIRE(q.push(std::move(v), true));
    }
    while (expected < next)
      q.consume(check);
  }
  CHECK(bad == 0);
  CHECK(expected == next);
}

TEMPLATE_TEST_CASE("MpscQueue models: close refuses pushes, keeps accepted items", "[mpsc_queue]",
                   pods::MutexQueue<std::unique_ptr<int>>,
                   pods::ProducerRingQueue<std::unique_ptr<int>>) {
  TestType q(0);
  auto a = std::make_unique<int>(1);
  REQUIRE(q.push(std::move(a), true));
  q.close();
  q.close();  // idempotent
  auto b = std::make_unique<int>(2);
  CHECK(q.push(std::move(b), true) == pods::Errc::closed);
  REQUIRE(b != nullptr);  // a refused item is left untouched
  CHECK(*b == 2);
  auto got = drain<TestType, std::unique_ptr<int>>(q);
  REQUIRE(got.size() == 1);
  CHECK(*got[0] == 1);
  CHECK_FALSE(q.consume([](std::unique_ptr<int>&) noexcept {}));  // closed and drained
}

TEMPLATE_TEST_CASE("MpscQueue models: a bounded queue refuses a non-blocking push when full",
                   "[mpsc_queue]", pods::MutexQueue<std::unique_ptr<int>>,
                   pods::ProducerRingQueue<std::unique_ptr<int>>) {
  TestType q(2);
  CHECK(q.capacity() == 2);
  for (int i = 0; i < 2; ++i) {
    auto p = std::make_unique<int>(i);
    REQUIRE(q.push(std::move(p), false));
  }
  auto extra = std::make_unique<int>(9);
  CHECK(q.push(std::move(extra), false) == pods::Errc::full);
  REQUIRE(extra != nullptr);
  CHECK(drain<TestType, std::unique_ptr<int>>(q).size() == 2);
  CHECK(q.push(std::move(extra), false));
}

TEMPLATE_TEST_CASE("MpscQueue models: items pushed before a producer thread exits are consumed",
                   "[mpsc_queue][threads]", pods::MutexQueue<std::uint64_t>,
                   pods::ProducerRingQueue<std::uint64_t>) {
  TestType q(0);
  constexpr std::uint64_t kThreads = 6;
  constexpr std::uint64_t kEach = 500;
  std::vector<std::uint64_t> next(kThreads, 0);
  std::uint64_t bad = 0;
  std::uint64_t total = 0;
  std::atomic<int> refused{0};
  std::thread consumer([&] {
    while (q.consume([&](std::uint64_t& v) noexcept {
      const auto p = static_cast<std::size_t>(v >> 32);
      if (next[p] != (v & 0xffffffff)) ++bad;
      next[p] = (v & 0xffffffff) + 1;
      ++total;
    })) {
    }
  });
  // Short-lived producers, one after another and overlapping: rings are registered and
  // abandoned while the consumer runs.
  for (std::uint64_t wave = 0; wave < kThreads; wave += 2) {
    std::vector<std::thread> producers;
    for (std::uint64_t p = wave; p < wave + 2; ++p) {
      producers.emplace_back([&, p] {
        for (std::uint64_t i = 0; i < kEach; ++i) {
          std::uint64_t v = p << 32 | i;
          if (!q.push(std::move(v), true)) refused.fetch_add(1);  // Catch asserts on one thread
        }
      });
    }
    for (auto& t : producers)
      t.join();
  }
  q.close();
  consumer.join();
  CHECK(refused.load() == 0);
  CHECK(bad == 0);
  CHECK(total == kThreads * kEach);
}

TEST_CASE("ProducerRingQueue: a queue destroyed while its producer lives; the thread goes on",
          "[mpsc_queue][threads]") {
  std::atomic<int> step{0};
  std::atomic<int> consumed{0};
  auto first = std::make_unique<pods::ProducerRingQueue<int>>(0);
  std::atomic<int> refused{0};
  std::thread producer([&] {
    int v = 1;
    if (!first->push(std::move(v), true)) refused.fetch_add(1);
    step = 1;
    step.notify_all();
    step.wait(1);  // the main thread destroys `first`, then makes `second`
    pods::ProducerRingQueue<int> second(0);
    for (int i = 0; i < 100; ++i) {
      int w = i;
      if (!second.push(std::move(w), true)) refused.fetch_add(1);
    }
    int got = 0;
    while (got < 100)
      second.consume([&](int&) noexcept { ++got; });
    consumed = got;
  });
  step.wait(0);
  first->consume([&](int& v) noexcept { consumed += v; });
  CHECK(consumed.load() == 1);
  first.reset();
  step = 2;
  step.notify_all();
  producer.join();
  CHECK(refused.load() == 0);
  CHECK(consumed.load() == 100);
}

TEMPLATE_TEST_CASE("MpscQueue models: close wakes a consumer waiting on an empty queue",
                   "[mpsc_queue][threads]", pods::MutexQueue<int>, pods::ProducerRingQueue<int>) {
  TestType q(0);
  std::atomic<bool> returned{false};
  std::thread consumer([&] {
    while (q.consume([](int&) noexcept {})) {
    }
    returned = true;
  });
  q.close();
  consumer.join();
  CHECK(returned.load());
}

TEMPLATE_TEST_CASE("MpscQueue models: close wakes a producer blocked on a full queue",
                   "[mpsc_queue][threads]", pods::MutexQueue<int>, pods::ProducerRingQueue<int>) {
  TestType q(1);
  int a = 1;
  REQUIRE(q.push(std::move(a), true));
  pods::Outcome<void> blocked_result;
  std::thread blocked([&] {
    int b = 2;
    blocked_result = q.push(std::move(b), true);
  });
  q.close();
  blocked.join();
  CHECK(blocked_result == pods::Errc::closed);
}

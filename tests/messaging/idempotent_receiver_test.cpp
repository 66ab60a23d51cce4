#include <pods/messaging/idempotent_receiver.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <latch>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {
using Receiver = pods::IdempotentReceiver<std::string, std::uint64_t, int, pods::ManualClock>;
}  // namespace

TEST_CASE("IdempotentReceiver: runs fn once per (client, seq); retries get the cached response",
          "[idempotent_receiver]") {
  pods::ManualClock clock;
  Receiver receiver(10s, 8, clock);
  const auto c1 = receiver.register_client("c1");
  CHECK(c1.client == "c1");
  int runs = 0;
  auto fn = [&] { return ++runs * 100; };
  CHECK(receiver.execute(c1, 1, 0, fn) == pods::Outcome<int>(100));
  CHECK(receiver.execute(c1, 1, 0, fn) == pods::Outcome<int>(100));  // retry
  CHECK(receiver.execute(c1, 2, 0, fn) == pods::Outcome<int>(200));
  CHECK(receiver.execute(c1, 1, 0, fn) == pods::Outcome<int>(100));
  CHECK(runs == 2);
  CHECK(receiver.cached_responses("c1") == 2);
}

TEST_CASE("IdempotentReceiver: clients are independent", "[idempotent_receiver]") {
  Receiver receiver(10s, 8);
  const auto a = receiver.register_client("a");
  const auto b = receiver.register_client("b");
  CHECK(receiver.execute(a, 1, 0, [] { return 1; }) == pods::Outcome<int>(1));
  CHECK(receiver.execute(b, 1, 0, [] { return 2; }) == pods::Outcome<int>(2));
  CHECK(receiver.execute(a, 1, 0, [] { return 3; }) == pods::Outcome<int>(1));
  CHECK(receiver.clients() == 2);
  CHECK(receiver.cached_responses() == 2);
}

TEST_CASE("IdempotentReceiver: unknown clients are rejected", "[idempotent_receiver]") {
  Receiver receiver(10s, 8);
  bool ran = false;
  CHECK(receiver.execute(Receiver::Session{"nobody", 1}, 1, 0, [&] { return ran = true, 1; }) ==
        pods::Errc::unknown_client);
  CHECK_FALSE(ran);
  const auto c = receiver.register_client("c");
  CHECK(receiver.unregister_client("c"));
  CHECK_FALSE(receiver.unregister_client("c"));
  CHECK(receiver.execute(c, 1, 0, [] { return 1; }) == pods::Errc::unknown_client);
}

TEST_CASE("IdempotentReceiver: acknowledged responses are evicted", "[idempotent_receiver]") {
  Receiver receiver(10s, 8);
  const auto c = receiver.register_client("c");
  for (std::uint64_t s = 1; s <= 5; ++s)
    CHECK(receiver.execute(c, s, 1, [s] { return int(s); }));
  CHECK(receiver.cached_responses("c") == 5);
  // The client has responses 1..3: it sends seq 6 with lowest unacknowledged 4.
  CHECK(receiver.execute(c, 6, 4, [] { return 6; }) == pods::Outcome<int>(6));
  CHECK(receiver.cached_responses("c") == 3);  // 4, 5, 6
  CHECK(receiver.execute(c, 2, 4, [] { return -1; }) == pods::Errc::duplicate);
  CHECK(receiver.execute(c, 4, 4, [] { return -1; }) == pods::Outcome<int>(4));
  // The mark never moves back.
  CHECK(receiver.execute(c, 5, 1, [] { return -1; }) == pods::Outcome<int>(5));
  CHECK(receiver.execute(c, 3, 1, [] { return -1; }) == pods::Errc::duplicate);
}

TEST_CASE("IdempotentReceiver: memory is bounded by clients x window", "[idempotent_receiver]") {
  Receiver receiver(10s, 4);
  CHECK(receiver.max_window() == 4);
  std::vector<Receiver::Session> sessions;
  for (int c = 0; c < 3; ++c)
    sessions.push_back(receiver.register_client("c" + std::to_string(c)));
  for (int c = 0; c < 3; ++c) {
    const std::string client = "c" + std::to_string(c);
    const Receiver::Session& session = sessions[static_cast<std::size_t>(c)];
    std::uint64_t acked = 1;
    for (std::uint64_t s = 1; s <= 100; ++s) {
      auto r = receiver.execute(session, s, acked, [s] { return int(s); });
      if (r == pods::Errc::full) {
        CHECK(receiver.cached_responses(client) == 4);
        acked = s;  // the client acknowledges everything it has, then retries
        r = receiver.execute(session, s, acked, [s] { return int(s); });
      }
      CHECK(r == pods::Outcome<int>(int(s)));
      CHECK(receiver.cached_responses(client) <= 4);
    }
  }
  CHECK(receiver.cached_responses() <= 3 * 4);
}

TEST_CASE("IdempotentReceiver: idle sessions expire by the clock", "[idempotent_receiver]") {
  pods::ManualClock clock;
  Receiver receiver(10s, 8, clock);
  const auto idle = receiver.register_client("idle");
  const auto busy = receiver.register_client("busy");
  const auto swept = receiver.register_client("swept");
  CHECK(receiver.execute(busy, 1, 0, [] { return 1; }));
  clock.advance(6s);
  CHECK(receiver.execute(busy, 2, 0, [] { return 2; }));  // refreshes its session
  clock.advance(4s);                                      // idle: 10 s exactly
  CHECK(receiver.execute(idle, 1, 0, [] { return 1; }) == pods::Errc::session_expired);
  CHECK(receiver.execute(idle, 1, 0, [] { return 1; }) == pods::Errc::unknown_client);
  CHECK(receiver.execute(busy, 3, 0, [] { return 3; }));
  CHECK(receiver.expire_sessions() == 1);  // "swept"
  CHECK(receiver.execute(swept, 1, 0, [] { return 1; }) == pods::Errc::unknown_client);
  CHECK(receiver.clients() == 1);
}

TEST_CASE("IdempotentReceiver: re-registering starts a new session with an empty cache",
          "[idempotent_receiver]") {
  Receiver receiver(10s, 8);
  const auto first = receiver.register_client("c");
  CHECK(receiver.execute(first, 1, 0, [] { return 1; }) == pods::Outcome<int>(1));
  const auto second = receiver.register_client("c");
  CHECK(second.id > first.id);
  CHECK(receiver.cached_responses("c") == 0);
  CHECK(receiver.execute(second, 1, 0, [] { return 2; }) == pods::Outcome<int>(2));
}

TEST_CASE("IdempotentReceiver: a request of an older session is refused, not executed",
          "[idempotent_receiver]") {
  pods::ManualClock clock;
  Receiver receiver(10s, 8, clock);
  const auto old_session = receiver.register_client("c");
  CHECK(receiver.execute(old_session, 1, 0, [] { return 1; }) == pods::Outcome<int>(1));
  // The client re-registers (a restart) and starts numbering again: its seq 1 is a new
  // request. A retry of the old seq 1, delayed in the network, then arrives.
  const auto current = receiver.register_client("c");
  CHECK(receiver.execute(current, 1, 0, [] { return 10; }) == pods::Outcome<int>(10));
  int stale_runs = 0;
  CHECK(receiver.execute(old_session, 1, 0, [&] { return ++stale_runs; }) ==
        pods::Errc::session_expired);
  CHECK(receiver.execute(old_session, 2, 0, [&] { return ++stale_runs; }) ==
        pods::Errc::session_expired);
  CHECK(stale_runs == 0);
  // The current session keeps its cache and its life: the stale requests did not touch it,
  // nor refresh it.
  CHECK(receiver.cached_responses("c") == 1);
  CHECK(receiver.execute(current, 1, 0, [] { return -1; }) == pods::Outcome<int>(10));
  clock.advance(6s);
  CHECK(receiver.execute(old_session, 3, 0, [] { return -1; }) == pods::Errc::session_expired);
  clock.advance(4s);
  CHECK(receiver.execute(current, 2, 0, [] { return 2; }) == pods::Errc::session_expired);
  // A session id the receiver never gave this client is unknown.
  const auto renewed = receiver.register_client("c");
  CHECK(receiver.execute(Receiver::Session{"c", renewed.id + 1}, 1, 0, [] { return 1; }) ==
        pods::Errc::unknown_client);
  const auto other = receiver.register_client("d");
  CHECK(receiver.execute(Receiver::Session{"c", other.id}, 1, 0, [] { return 1; }) ==
        pods::Errc::unknown_client);
  CHECK(receiver.execute(renewed, 1, 0, [] { return 5; }) == pods::Outcome<int>(5));
}

TEST_CASE("IdempotentReceiver: a throwing fn is not run again", "[idempotent_receiver]") {
  Receiver receiver(10s, 8);
  const auto c = receiver.register_client("c");
  int runs = 0;
  auto fn = [&]() -> int {
    ++runs;
    throw std::runtime_error("apply failed");
  };
  CHECK_THROWS_WITH(receiver.execute(c, 1, 0, fn), "apply failed");
  CHECK(receiver.execute(c, 1, 0, fn) == pods::Errc::failed);
  CHECK(runs == 1);
}

TEST_CASE("IdempotentReceiver: bad arguments name themselves", "[idempotent_receiver]") {
  CHECK_THROWS_WITH(Receiver(0s, 1), Catch::Contains("session_timeout"));
  CHECK_THROWS_WITH(Receiver(1s, 0), Catch::Contains("max_window"));
  CHECK_THROWS_AS(Receiver(-1s, 1), std::invalid_argument);
}

TEST_CASE("IdempotentReceiver: at most once under concurrent retries",
          "[idempotent_receiver][threads]") {
  pods::ManualClock clock;
  Receiver receiver(10s, 256, clock);
  const auto c = receiver.register_client("c");
  constexpr int kThreads = 4;
  constexpr std::uint64_t kSeqs = 200;
  std::vector<std::atomic<int>> runs(kSeqs + 1);
  std::atomic<int> mismatches{0};
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      start.arrive_and_wait();
      for (std::uint64_t s = 1; s <= kSeqs; ++s) {
        // Every thread sends the same request: a client and its retries racing each other.
        auto r = receiver.execute(c, s, 0, [&, s] {
          runs[s].fetch_add(1);
          return int(s) * 3;
        });
        if (!r || *r != int(s) * 3) mismatches.fetch_add(1);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  CHECK(mismatches.load() == 0);
  for (std::uint64_t s = 1; s <= kSeqs; ++s)
    CHECK(runs[s].load() == 1);
  CHECK(receiver.cached_responses("c") == kSeqs);
}

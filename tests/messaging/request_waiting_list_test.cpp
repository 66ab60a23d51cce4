#include <pods/messaging/request_waiting_list.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {
using List = pods::RequestWaitingList<int, std::string, pods::ManualClock>;

struct Log {
  std::vector<std::pair<int, pods::Outcome<std::string>>> calls;
  List::Callback callback(int key) {
    return [this, key](pods::Outcome<std::string> r) { calls.emplace_back(key, std::move(r)); };
  }
};
}  // namespace

TEST_CASE("RequestWaitingList: complete calls the callback once with the response",
          "[request_waiting_list]") {
  pods::ManualClock clock;
  List list(1s, clock);
  Log log;
  list.add(1, log.callback(1));
  list.add(2, log.callback(2));
  CHECK(list.size() == 2);
  CHECK(list.contains(2));
  CHECK(list.complete(2, "two"));
  CHECK_FALSE(list.contains(2));
  CHECK(list.contains(1));
  CHECK_FALSE(list.complete(2, "again"));  // duplicate
  CHECK_FALSE(list.complete(9, "nine"));   // unknown
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0].first == 2);
  CHECK(*log.calls[0].second == "two");
  CHECK(list.size() == 1);
}

TEST_CASE("RequestWaitingList: fail delivers the error", "[request_waiting_list]") {
  List list(1s);
  Log log;
  list.add(1, log.callback(1));
  CHECK(list.fail(1, pods::Errc::not_leader));
  CHECK_FALSE(list.fail(1, pods::Errc::not_leader));
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0].second == pods::Errc::not_leader);
}

TEST_CASE("RequestWaitingList: complete_up_to completes every key <= key in key order",
          "[request_waiting_list]") {
  pods::ManualClock clock;
  List list(1s, clock);
  Log log;
  for (int k : {5, 1, 4, 2, 8})
    list.add(k, log.callback(k));
  std::vector<int> made;
  CHECK(list.complete_up_to(4, [&](int k) {
    made.push_back(k);
    return "r" + std::to_string(k);
  }) == 3);
  CHECK(made == std::vector<int>{1, 2, 4});
  REQUIRE(log.calls.size() == 3);
  CHECK(log.calls[0] == std::pair<int, pods::Outcome<std::string>>(1, std::string("r1")));
  CHECK(log.calls[1] == std::pair<int, pods::Outcome<std::string>>(2, std::string("r2")));
  CHECK(log.calls[2] == std::pair<int, pods::Outcome<std::string>>(4, std::string("r4")));
  CHECK(list.size() == 2);
  CHECK(list.complete_up_to(0, [](int) { return std::string(); }) == 0);
}

TEST_CASE("RequestWaitingList: expire times out entries with now - added >= timeout",
          "[request_waiting_list]") {
  pods::ManualClock clock;
  List list(100ms, clock);
  Log log;
  list.add(1, log.callback(1));
  clock.advance(40ms);
  list.add(2, log.callback(2));
  clock.advance(59ms);
  CHECK(list.expire() == 0);
  clock.advance(1ms);  // key 1 has waited exactly the timeout
  CHECK(list.expire() == 1);
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0] == std::pair<int, pods::Outcome<std::string>>(1, pods::Errc::timeout));
  CHECK(list.size() == 1);
  CHECK_FALSE(list.complete(1, "late"));
  clock.advance(40ms);
  CHECK(list.expire() == 1);
  CHECK(log.calls[1].first == 2);
  CHECK(list.size() == 0);
  CHECK(list.timeout() == 100ms);
}

TEST_CASE("RequestWaitingList: bad arguments name themselves", "[request_waiting_list]") {
  CHECK_THROWS_WITH(List(0s), Catch::Contains("timeout"));
  CHECK_THROWS_AS(List(-1s), std::invalid_argument);
  List list(1s);
  Log log;
  list.add(1, log.callback(1));
  CHECK_THROWS_WITH(list.add(1, log.callback(1)), Catch::Contains("key"));
  CHECK_THROWS_AS(list.add(1, log.callback(1)), std::invalid_argument);
  CHECK_THROWS_WITH(list.add(2, nullptr), Catch::Contains("done"));
  CHECK(list.size() == 1);
}

TEST_CASE("RequestWaitingList: callbacks run without the lock held", "[request_waiting_list]") {
  pods::ManualClock clock;
  List list(1s, clock);
  int reentered = 0;
  // Each callback re-enters the list; a held lock would deadlock.
  list.add(1, [&](pods::Outcome<std::string>) {
    list.add(100, [&](pods::Outcome<std::string>) { ++reentered; });
    reentered += static_cast<int>(list.size());
  });
  list.add(2, [&](pods::Outcome<std::string>) { list.fail(100, pods::Errc::cancelled); });
  CHECK(list.complete(1, "x"));
  CHECK(list.complete_up_to(2, [](int) { return std::string("y"); }) == 1);
  CHECK(reentered == 3);  // size 2 inside the first callback, then the fail
  list.add(3, [&](pods::Outcome<std::string>) { list.add(4, [](pods::Outcome<std::string>) {}); });
  clock.advance(1s);
  CHECK(list.expire() == 1);
  CHECK(list.size() == 1);
}

TEST_CASE("RequestWaitingList: a throwing callback does not stop the others",
          "[request_waiting_list]") {
  List list(1s);
  Log log;
  list.add(1, [](pods::Outcome<std::string>) { throw std::runtime_error("boom"); });
  list.add(2, log.callback(2));
  CHECK_THROWS_WITH(list.complete_up_to(2, [](int) { return std::string("r"); }), "boom");
  CHECK(log.calls.size() == 1);
  CHECK(list.size() == 0);
}

TEST_CASE("RequestWaitingList: each callback runs exactly once under concurrent completion",
          "[request_waiting_list][threads]") {
  pods::ManualClock clock;
  pods::RequestWaitingList<int, int, pods::ManualClock> list(1s, clock);
  constexpr int kKeys = 2000;
  std::vector<std::atomic<int>> calls(kKeys);
  for (int k = 0; k < kKeys; ++k)
    list.add(k, [&calls, k](pods::Outcome<int>) { calls[static_cast<std::size_t>(k)]++; });
  clock.advance(1s);
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    for (int k = 0; k < kKeys; ++k)
      list.complete(k, k);
  });
  threads.emplace_back([&] {
    for (int k = kKeys - 1; k >= 0; --k)
      list.fail(k, pods::Errc::cancelled);
  });
  threads.emplace_back([&] { list.complete_up_to(kKeys / 2, [](int k) { return k; }); });
  threads.emplace_back([&] { list.expire(); });
  for (auto& t : threads)
    t.join();
  CHECK(list.size() == 0);
  for (auto& c : calls)
    CHECK(c.load() == 1);
}

TEST_CASE("QuorumCallback: completes when a quorum succeeded", "[request_waiting_list]") {
  std::vector<pods::Outcome<std::vector<std::pair<std::string, int>>>> results;
  auto quorum = pods::QuorumCallback<std::string, int>::make(
      3, 2, [&](auto r) { results.push_back(std::move(r)); });
  CHECK_FALSE(quorum->on_response("a", 1));
  CHECK_FALSE(quorum->on_response("a", 1));  // counted once
  CHECK_FALSE(quorum->decided());
  CHECK(quorum->on_response("b", 2));
  CHECK(quorum->decided());
  CHECK_FALSE(quorum->on_response("c", 3));  // after the decision
  REQUIRE(results.size() == 1);
  REQUIRE(results[0]);
  CHECK(*results[0] == std::vector<std::pair<std::string, int>>{{"a", 1}, {"b", 2}});
}

TEST_CASE("QuorumCallback: fails with no_quorum once a quorum cannot be reached",
          "[request_waiting_list]") {
  std::vector<pods::Outcome<std::vector<std::pair<int, int>>>> results;
  auto quorum =
      pods::QuorumCallback<int, int>::make(5, 3, [&](auto r) { results.push_back(std::move(r)); });
  CHECK_FALSE(quorum->on_response(1, pods::Errc::timeout));
  CHECK_FALSE(quorum->on_response(1, pods::Errc::timeout));  // the same responder again
  CHECK_FALSE(quorum->on_response(2, 7));
  CHECK_FALSE(quorum->on_response(3, pods::Errc::failed));  // 2 failures: 3 of 5 still possible
  CHECK(results.empty());
  CHECK(quorum->on_response(4, pods::Errc::timeout));  // 3 failures: at most 2 successes left
  REQUIRE(results.size() == 1);
  CHECK(results[0] == pods::Errc::no_quorum);
  CHECK_FALSE(quorum->on_response(5, 1));
  CHECK(results.size() == 1);
}

TEST_CASE("QuorumCallback: decides as early as the outcome is certain", "[request_waiting_list]") {
  std::vector<bool> decided;  // true: quorum reached
  auto record = [&](auto r) { decided.push_back(r.has_value()); };
  auto all = pods::QuorumCallback<int, int>::make(2, 2, record);
  CHECK(all->on_response(1, pods::Errc::failed));  // 2 of 2 needed: one failure decides
  CHECK(decided == std::vector<bool>{false});
  auto any = pods::QuorumCallback<int, int>::make(2, 1, record);
  CHECK_FALSE(any->on_response(1, pods::Errc::failed));
  CHECK(any->on_response(2, pods::Errc::failed));
  CHECK(decided == std::vector<bool>{false, false});
  auto one = pods::QuorumCallback<int, int>::make(1, 1, record);
  CHECK(one->on_response(1, 5));
  CHECK(decided == std::vector<bool>{false, false, true});
}

TEST_CASE("QuorumCallback: majority and argument checks", "[request_waiting_list]") {
  using Q = pods::QuorumCallback<int, int>;
  CHECK(Q::majority(1) == 1);
  CHECK(Q::majority(3) == 2);
  CHECK(Q::majority(4) == 3);
  CHECK(Q::majority(5) == 3);
  auto noop = [](auto) {};
  CHECK_THROWS_WITH(Q::make(0, 1, noop), Catch::Contains("responders"));
  CHECK_THROWS_WITH(Q::make(3, 0, noop), Catch::Contains("quorum"));
  CHECK_THROWS_WITH(Q::make(3, 4, noop), Catch::Contains("quorum"));
  CHECK_THROWS_AS(Q::make(3, 4, noop), std::invalid_argument);
  CHECK_THROWS_WITH(Q::make(3, 2, nullptr), Catch::Contains("done"));
}

TEST_CASE("QuorumCallback: drives RequestWaitingList entries, timeouts count as failures",
          "[request_waiting_list]") {
  pods::ManualClock clock;
  pods::RequestWaitingList<int, std::string, pods::ManualClock> waiting(1s, clock);
  std::vector<pods::Outcome<std::vector<std::pair<std::string, std::string>>>> results;
  auto quorum = pods::QuorumCallback<std::string, std::string>::make(
      3, 2, [&](auto r) { results.push_back(std::move(r)); });
  waiting.add(10, quorum->for_responder("n1"));
  waiting.add(11, quorum->for_responder("n2"));
  waiting.add(12, quorum->for_responder("n3"));
  CHECK(waiting.complete(10, "ok1"));
  clock.advance(1s);
  CHECK(waiting.expire() == 2);  // n2 times out (1 failure), then n3 (2 failures: no quorum)
  REQUIRE(results.size() == 1);
  CHECK(results[0] == pods::Errc::no_quorum);

  auto q2 = pods::QuorumCallback<std::string, std::string>::make(
      3, 2, [&](auto r) { results.push_back(std::move(r)); });
  waiting.add(20, q2->for_responder("n1"));
  waiting.add(21, q2->for_responder("n2"));
  waiting.add(22, q2->for_responder("n3"));
  CHECK(waiting.complete_up_to(21, [](int k) { return "r" + std::to_string(k); }) == 2);
  REQUIRE(results.size() == 2);
  REQUIRE(results[1]);
  CHECK(results[1]->size() == 2);
  CHECK(waiting.complete(22, "late"));  // still answered once; ignored by the quorum
  CHECK(results.size() == 2);
}

TEST_CASE("QuorumCallback: decides exactly once under concurrent responses",
          "[request_waiting_list][threads]") {
  for (int round = 0; round < 50; ++round) {
    std::atomic<int> decided{0};
    auto quorum = pods::QuorumCallback<int, int>::make(8, 5, [&](auto) { ++decided; });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        for (int r = 0; r < 8; ++r) {
          if (r % 4 == t) (void)quorum->on_response(r, r);
        }
      });
    }
    for (auto& t : threads)
      t.join();
    CHECK(decided.load() == 1);
  }
}

TEST_CASE("RequestWaitingList and QuorumCallback: callbacks may be move-only",
          "[request_waiting_list]") {
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<List::Callback>);
  List list(1s);
  std::promise<std::string> promise;
  std::future<std::string> answer = promise.get_future();
  list.add(1, [p = std::move(promise)](pods::Outcome<std::string> r) mutable {
    p.set_value(r ? *r : std::string(pods::to_string(r.error())));
  });
  std::promise<std::string> failed;
  std::future<std::string> failure = failed.get_future();
  list.add(2, [p = std::move(failed)](pods::Outcome<std::string> r) mutable {
    p.set_value(r ? *r : std::string(pods::to_string(r.error())));
  });
  CHECK(list.complete(1, "one"));
  CHECK(answer.get() == "one");
  CHECK(list.fail(2, pods::Errc::not_leader));
  CHECK(failure.get() == "not_leader");

  // A std::function still converts, and an empty one is refused as empty.
  std::function<void(pods::Outcome<std::string>)> copyable = [](pods::Outcome<std::string>) {};
  list.add(3, copyable);
  CHECK_THROWS_AS(list.add(4, std::function<void(pods::Outcome<std::string>)>()),
                  std::invalid_argument);
  CHECK(list.size() == 1);

  using Quorum = pods::QuorumCallback<int, std::string>;
  std::promise<std::size_t> decided;
  std::future<std::size_t> votes = decided.get_future();
  auto quorum =
      Quorum::make(3, 2, [p = std::move(decided)](pods::Outcome<Quorum::Responses> r) mutable {
        p.set_value(r ? r->size() : 0);
      });
  quorum->for_responder(1)(std::string("a"));
  quorum->for_responder(2)(std::string("b"));
  CHECK(votes.get() == 2);
}

namespace {
// A key whose copy throws while `fail_copies` is set (the list keeps a copy in its expiry
// index).
struct FragileKey {
  static inline bool fail_copies = false;
  int v = 0;
  explicit FragileKey(int value) : v(value) {}
  FragileKey(const FragileKey& other) : v(other.v) {
    if (fail_copies) throw std::runtime_error("key copy failed");
  }
  FragileKey(FragileKey&&) noexcept = default;
  FragileKey& operator=(const FragileKey&) = default;
  FragileKey& operator=(FragileKey&&) noexcept = default;
  friend bool operator<(const FragileKey& a, const FragileKey& b) { return a.v < b.v; }
};
}  // namespace

TEST_CASE("RequestWaitingList: an add that throws leaves nothing behind",
          "[request_waiting_list]") {
  pods::ManualClock clock;
  pods::RequestWaitingList<FragileKey, int, pods::ManualClock> list(1s, clock);
  int calls = 0;
  auto count = [&calls](pods::Outcome<int>) { ++calls; };
  FragileKey::fail_copies = true;
  CHECK_THROWS_WITH(list.add(FragileKey(1), count), "key copy failed");
  FragileKey::fail_copies = false;
  CHECK(list.size() == 0);
  // The key is free again, and the list works: add, complete, expire.
  list.add(FragileKey(1), count);
  list.add(FragileKey(2), count);
  CHECK(list.complete(FragileKey(1), 10));
  clock.advance(1s);
  CHECK(list.expire() == 1);
  CHECK(calls == 2);
  CHECK(list.size() == 0);
}

TEST_CASE("RequestWaitingList: a throwing make(k) still answers every callback exactly once",
          "[request_waiting_list]") {
  List list(1s);
  Log log;
  for (int k : {1, 2, 3})
    list.add(k, log.callback(k));
  auto make = [](int k) {
    if (k == 2) throw std::runtime_error("cannot make 2");
    return std::to_string(k);
  };
  CHECK_THROWS_WITH(list.complete_up_to(3, make), "cannot make 2");
  REQUIRE(log.calls.size() == 3);
  CHECK(log.calls[0].first == 1);
  CHECK(*log.calls[0].second == "1");
  CHECK(log.calls[1].first == 2);
  CHECK(log.calls[1].second == pods::Errc::failed);  // its response could not be made
  CHECK(log.calls[2].first == 3);
  CHECK(*log.calls[2].second == "3");
  CHECK(list.size() == 0);
  CHECK_FALSE(list.complete(2, "late"));  // nothing left to call twice
}

TEST_CASE("RequestWaitingList: throwing callbacks in expire do not stop the others",
          "[request_waiting_list]") {
  pods::ManualClock clock;
  List list(1s, clock);
  Log log;
  list.add(1, [](pods::Outcome<std::string>) { throw std::runtime_error("first"); });
  list.add(2, log.callback(2));
  list.add(3, [](pods::Outcome<std::string>) { throw std::runtime_error("second"); });
  list.add(4, log.callback(4));
  clock.advance(1s);
  CHECK_THROWS_WITH(list.expire(), "first");
  REQUIRE(log.calls.size() == 2);
  CHECK(log.calls[0].second == pods::Errc::timeout);
  CHECK(log.calls[1].first == 4);
  CHECK(list.size() == 0);
}

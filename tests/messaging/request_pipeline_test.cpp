#include <pods/messaging/request_pipeline.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {
using Pipeline = pods::RequestPipeline<std::string, int, pods::ManualClock>;

// Records the order in which callbacks ran and what they got.
struct Log {
  std::vector<std::pair<int, pods::Outcome<int>>> calls;
  Pipeline::Callback callback(int tag) {
    return [this, tag](pods::Outcome<int> r) { calls.emplace_back(tag, r); };
  }
};
}  // namespace

TEST_CASE("RequestPipeline: ids in send order, requests handed out in order",
          "[request_pipeline]") {
  pods::ManualClock clock;
  Pipeline pipeline(4, 1s, clock);
  Log log;
  auto a = pipeline.try_send("a", log.callback(1));
  auto b = pipeline.try_send("b", log.callback(2));
  REQUIRE(a);
  REQUIRE(b);
  CHECK(*b == *a + 1);
  auto out = pipeline.take_outgoing();
  REQUIRE(out.size() == 2);
  CHECK(out[0] == std::pair<std::uint64_t, std::string>(*a, "a"));
  CHECK(out[1] == std::pair<std::uint64_t, std::string>(*b, "b"));
  CHECK(pipeline.take_outgoing().empty());
  CHECK(pipeline.in_flight() == 2);
}

TEST_CASE("RequestPipeline: try_send refuses when the window is full", "[request_pipeline]") {
  pods::ManualClock clock;
  Pipeline pipeline(2, 1s, clock);
  Log log;
  auto a = pipeline.try_send("a", log.callback(1));
  REQUIRE(pipeline.try_send("b", log.callback(2)));
  CHECK(pipeline.full());
  auto refused = pipeline.try_send("c", log.callback(3));
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == pods::Errc::full);
  CHECK(pipeline.take_outgoing().size() == 2);  // the refused one is not queued
  CHECK(pipeline.receive(*a, 10));
  CHECK_FALSE(pipeline.full());
  CHECK(pipeline.try_send("c", log.callback(3)));
  CHECK(pipeline.max_in_flight() == 2);
}

TEST_CASE("RequestPipeline: an early response is held until earlier requests complete",
          "[request_pipeline]") {
  pods::ManualClock clock;
  Pipeline pipeline(8, 1s, clock);
  Log log;
  auto a = *pipeline.try_send("a", log.callback(1));
  auto b = *pipeline.try_send("b", log.callback(2));
  auto c = *pipeline.try_send("c", log.callback(3));
  CHECK(pipeline.receive(c, 30));
  CHECK(pipeline.receive(b, 20));
  CHECK(log.calls.empty());  // held behind a
  CHECK(pipeline.in_flight() == 3);
  CHECK(pipeline.receive(a, 10));
  REQUIRE(log.calls.size() == 3);
  CHECK(log.calls[0] == std::pair<int, pods::Outcome<int>>(1, 10));
  CHECK(log.calls[1] == std::pair<int, pods::Outcome<int>>(2, 20));
  CHECK(log.calls[2] == std::pair<int, pods::Outcome<int>>(3, 30));
  CHECK(pipeline.in_flight() == 0);
}

TEST_CASE("RequestPipeline: unknown, duplicate and late responses are ignored",
          "[request_pipeline]") {
  pods::ManualClock clock;
  Pipeline pipeline(8, 1s, clock);
  Log log;
  auto a = *pipeline.try_send("a", log.callback(1));
  CHECK_FALSE(pipeline.receive(a + 5, 1));  // never sent
  CHECK_FALSE(pipeline.receive(0, 1));
  CHECK(pipeline.receive(a, 1));
  CHECK_FALSE(pipeline.receive(a, 2));  // duplicate
  auto b = *pipeline.try_send("b", log.callback(2));
  clock.advance(1s);
  CHECK(pipeline.expire() == 1);
  CHECK_FALSE(pipeline.receive(b, 3));  // late
  REQUIRE(log.calls.size() == 2);
  CHECK(log.calls[1].second == pods::Errc::timeout);
}

TEST_CASE("RequestPipeline: expire times out old requests and releases held responses",
          "[request_pipeline]") {
  pods::ManualClock clock;
  Pipeline pipeline(8, 100ms, clock);
  Log log;
  auto a = *pipeline.try_send("a", log.callback(1));
  clock.advance(50ms);
  auto b = *pipeline.try_send("b", log.callback(2));
  auto c = *pipeline.try_send("c", log.callback(3));
  (void)a;
  CHECK(pipeline.receive(b, 20));
  clock.advance(49ms);
  CHECK(pipeline.expire() == 0);
  CHECK(log.calls.empty());
  clock.advance(1ms);  // a: exactly the timeout
  CHECK(pipeline.expire() == 1);
  REQUIRE(log.calls.size() == 2);
  CHECK(log.calls[0] == std::pair<int, pods::Outcome<int>>(1, pods::Errc::timeout));
  CHECK(log.calls[1] == std::pair<int, pods::Outcome<int>>(2, 20));
  clock.advance(50ms);
  CHECK(pipeline.expire() == 1);
  CHECK(log.calls[2] == std::pair<int, pods::Outcome<int>>(3, pods::Errc::timeout));
  CHECK_FALSE(pipeline.receive(c, 1));
  CHECK(pipeline.in_flight() == 0);
}

TEST_CASE("RequestPipeline: fail_all fails everything in send order", "[request_pipeline]") {
  pods::ManualClock clock;
  Pipeline pipeline(8, 1s, clock);
  Log log;
  auto a = *pipeline.try_send("a", log.callback(1));
  auto b = *pipeline.try_send("b", log.callback(2));
  CHECK(pipeline.receive(b, 2));
  CHECK(pipeline.fail_all(pods::Errc::closed) == 2);
  REQUIRE(log.calls.size() == 2);
  CHECK(log.calls[0] == std::pair<int, pods::Outcome<int>>(1, pods::Errc::closed));
  CHECK(log.calls[1] == std::pair<int, pods::Outcome<int>>(2, pods::Errc::closed));
  CHECK(pipeline.take_outgoing().empty());
  CHECK_FALSE(pipeline.receive(a, 1));
  auto next = pipeline.try_send("c", log.callback(3));
  REQUIRE(next);
  CHECK(*next > b);  // ids are never reused
}

TEST_CASE("RequestPipeline: a callback may send the next request", "[request_pipeline]") {
  pods::ManualClock clock;
  Pipeline pipeline(1, 1s, clock);
  std::vector<int> got;
  std::function<void(pods::Outcome<int>)> chain = [&](pods::Outcome<int> r) {
    got.push_back(*r);
    if (got.size() < 3) REQUIRE(pipeline.try_send("next", chain));
  };
  auto id = *pipeline.try_send("first", chain);
  for (int i = 0; i < 3; ++i) {
    CHECK(pipeline.receive(id, i));
    ++id;
  }
  CHECK(got == std::vector<int>{0, 1, 2});
}

TEST_CASE("RequestPipeline: bad arguments name themselves", "[request_pipeline]") {
  CHECK_THROWS_WITH(Pipeline(0, 1s), Catch::Contains("max_in_flight"));
  CHECK_THROWS_WITH(Pipeline(1, 0s), Catch::Contains("timeout"));
  CHECK_THROWS_AS(Pipeline(1, -1s), std::invalid_argument);
  Pipeline pipeline(1, 1s);
  CHECK_THROWS_WITH(pipeline.try_send("x", nullptr), Catch::Contains("done"));
}

TEST_CASE("RequestPipeline: callbacks may be move-only", "[request_pipeline]") {
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<Pipeline::Callback>);
  Pipeline pipeline(4, 1s);
  std::promise<int> promise;
  std::future<int> answer = promise.get_future();
  auto id = pipeline.try_send(
      "a", [p = std::move(promise)](pods::Outcome<int> r) mutable { p.set_value(r ? *r : -1); });
  REQUIRE(id);
  CHECK(pipeline.receive(*id, 7));
  CHECK(answer.get() == 7);
  CHECK_THROWS_AS(pipeline.try_send("b", std::function<void(pods::Outcome<int>)>()),
                  std::invalid_argument);
}

TEST_CASE("RequestPipeline: fail_all calls every callback once though one throws",
          "[request_pipeline]") {
  Pipeline pipeline(4, 1s);
  Log log;
  REQUIRE(pipeline.try_send("a", [](pods::Outcome<int>) { throw std::runtime_error("a"); }));
  REQUIRE(pipeline.try_send("b", log.callback(2)));
  REQUIRE(pipeline.try_send("c", [](pods::Outcome<int>) { throw std::runtime_error("c"); }));
  REQUIRE(pipeline.try_send("d", log.callback(4)));
  CHECK_THROWS_WITH(pipeline.fail_all(pods::Errc::closed), "a");
  REQUIRE(log.calls.size() == 2);
  CHECK(log.calls[0].first == 2);
  CHECK(log.calls[0].second == pods::Errc::closed);
  CHECK(log.calls[1].first == 4);
  CHECK(pipeline.in_flight() == 0);
  CHECK(pipeline.fail_all(pods::Errc::closed) == 0);
  CHECK(log.calls.size() == 2);
}

TEST_CASE("RequestPipeline: a throwing callback does not hold back the ones it unblocked",
          "[request_pipeline]") {
  Pipeline pipeline(4, 1s);
  Log log;
  auto one = pipeline.try_send("a", [](pods::Outcome<int>) { throw std::runtime_error("a"); });
  auto two = pipeline.try_send("b", log.callback(2));
  auto three = pipeline.try_send("c", log.callback(3));
  CHECK(pipeline.receive(*three, 3));
  CHECK(pipeline.receive(*two, 2));
  CHECK(log.calls.empty());  // held behind the first
  CHECK_THROWS_WITH(pipeline.receive(*one, 1), "a");
  REQUIRE(log.calls.size() == 2);
  CHECK(*log.calls[0].second == 2);
  CHECK(*log.calls[1].second == 3);
  CHECK(pipeline.in_flight() == 0);
}

#include <pods/cluster/election_state.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using pods::NodeId;
using TimePoint = std::chrono::steady_clock::time_point;
using State = pods::ElectionState<TimePoint>;

TEST_CASE("election state: the members are sorted, distinct and contain self", "[election]") {
  const State s("Test", 2, {3, 1, 2});
  CHECK(s.members() == std::vector<NodeId>{1, 2, 3});
  CHECK(s.self() == 2);
  CHECK(s.is_member(3));
  CHECK_FALSE(s.is_member(4));
  CHECK_THROWS_WITH(State("Test", 1, {}), "Test: members must not be empty");
  CHECK_THROWS_WITH(State("Test", 1, {1, 2, 1}), "Test: members must not contain a duplicate id");
  CHECK_THROWS_WITH(State("Test", 5, {1, 2}), "Test: members must contain self");
  CHECK_THROWS_AS(State("Test", 5, {1, 2}), std::invalid_argument);
}

TEST_CASE("election state: require_positive names the protocol and the option", "[election]") {
  CHECK_NOTHROW(State::require_positive("Test", "timeout", 1ns));
  CHECK_THROWS_WITH(State::require_positive("Test", "timeout", 0ns),
                    "Test: timeout must be positive");
  CHECK_THROWS_WITH(State::require_positive("Test", "timeout", -1s),
                    "Test: timeout must be positive");
}

TEST_CASE("election state: epochs only grow; a new one is above every one seen", "[election]") {
  State s("Test", 1, {1, 2});
  s.observe(5);
  s.observe(3);
  CHECK(s.epoch() == 5);
  CHECK(s.next_epoch() == 6);
  CHECK(s.epoch() == 6);
  s.follow(2, 9);  // following raises the highest epoch seen too
  CHECK(s.epoch() == 9);
}

TEST_CASE("election state: claims compare as (epoch, id) against the leadership followed",
          "[election]") {
  State s("Test", 2, {1, 2, 3});
  s.follow(3, 4);
  CHECK(s.leader_id() == 3);
  CHECK(s.leader_epoch() == 4);
  CHECK(s.older(3, 9));  // an older epoch, whatever the id
  CHECK(s.older(4, 1));  // the same epoch, a lower id
  CHECK_FALSE(s.older(4, 3));
  CHECK(s.same(4, 3));
  CHECK_FALSE(s.older(5, 1));  // a newer epoch
  s.lead(6);
  CHECK(s.leader_id() == 2);
  CHECK(s.same(6, 2));
}

TEST_CASE("election state: a listener follows the greatest claim it heard, if higher and current",
          "[election]") {
  const TimePoint t0{};
  State s("Test", 2, {1, 2, 3});
  CHECK_FALSE(s.heard_higher().has_value());
  s.hear(4, 3, t0 + 1s);
  s.hear(3, 3, t0 + 2s);  // older: kept out
  REQUIRE(s.heard_higher().has_value());
  CHECK(s.heard_higher()->epoch == 4);
  CHECK(s.heard_higher()->at == t0 + 1s);
  s.observe(5);  // something newer was seen since: an election is due instead
  CHECK_FALSE(s.heard_higher().has_value());

  State lower("Test", 3, {1, 2, 3});
  lower.hear(7, 1, t0);  // a lower leader: it bullies it rather than follows
  CHECK_FALSE(lower.heard_higher().has_value());
}

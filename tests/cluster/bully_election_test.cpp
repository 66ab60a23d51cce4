#include <pods/cluster/bully_election.hpp>

#include "election_harness.hpp"

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/sim/node_clock.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;
using pods::NodeId;
using pods::bully::Answer;
using pods::bully::Coordinator;
using pods::bully::Election;
using Msg = pods::bully::Message;

namespace {

using Box = pods::Outbox<Msg>;
using Node = pods::BullyElection<Box, pods::ManualClock>;
using Role = Node::Role;
using Sent = Box::Sent;

// Builds node `self` of {1..n} and runs it past its quiet period (500 ms by default).
struct Single {
  explicit Single(NodeId self, std::size_t n = 5, pods::BullyOptions o = {})
      : node(self, election_test::ids(n), out, clock, o) {}
  void end_quiet_period() {
    clock.advance(500ms);
    node.tick();
  }
  Box out;
  pods::ManualClock clock;
  Node node;
};

std::vector<Sent> to_each(std::vector<NodeId> ids, Msg m) {
  std::vector<Sent> out;
  for (NodeId id : ids)
    out.push_back({id, m});
  return out;
}

}  // namespace

TEST_CASE("bully: a node starts listening, silent, for leader_timeout", "[bully]") {
  Single s(5);
  CHECK(s.node.role() == Role::listening);
  CHECK(s.node.next_deadline() == s.clock.now() + 500ms);
  s.clock.advance(499ms);
  s.node.tick();
  s.node.receive(2, Election{7});  // heard (its epoch), not answered
  CHECK(s.out.empty());
  CHECK(s.node.epoch() == 7);
  CHECK_FALSE(s.node.leader().has_value());
}

TEST_CASE("bully: the highest id declares itself at once when its quiet period ends", "[bully]") {
  Single s(5);
  s.end_quiet_period();
  CHECK(s.node.is_leader());
  CHECK(s.node.leader() == NodeId{5});
  CHECK(s.node.leader_epoch() == 1);
  CHECK(s.out.take() == to_each({1, 2, 3, 4}, Coordinator{1}));
  // and repeats it every heartbeat_interval
  CHECK(s.node.next_deadline() == s.clock.now() + 100ms);
  s.clock.advance(100ms);
  s.node.tick();
  CHECK(s.out.take() == to_each({1, 2, 3, 4}, Coordinator{1}));
}

TEST_CASE("bully: an election goes to the higher ids; with no answer the node declares itself",
          "[bully]") {
  Single s(3);
  s.end_quiet_period();
  CHECK(s.node.role() == Role::electing);
  CHECK(s.out.take() == to_each({4, 5}, Election{1}));
  s.clock.advance(199ms);
  s.node.tick();
  CHECK(s.node.role() == Role::electing);
  s.clock.advance(1ms);  // election_timeout
  s.node.tick();
  CHECK(s.node.is_leader());
  CHECK(s.out.take() == to_each({1, 2, 4, 5}, Coordinator{1}));
}

TEST_CASE("bully: an answer makes the node wait for the winner, and elect again if none comes",
          "[bully]") {
  Single s(3);
  s.end_quiet_period();
  s.out.clear();
  s.node.receive(4, Answer{1});
  CHECK(s.node.role() == Role::awaiting);
  s.clock.advance(499ms);
  s.node.tick();
  CHECK(s.out.empty());
  s.clock.advance(1ms);  // coordinator_timeout
  s.node.tick();
  CHECK(s.node.role() == Role::electing);
  CHECK(s.out.take() == to_each({4, 5}, Election{2}));

  SECTION("an answer to an earlier election is ignored") {
    s.node.receive(4, Answer{1});
    CHECK(s.node.role() == Role::electing);
  }
  SECTION("the winner's announcement ends the wait") {
    s.node.receive(5, Answer{2});
    s.node.receive(5, Coordinator{2});
    CHECK(s.node.role() == Role::follower);
    CHECK(s.node.leader() == NodeId{5});
    CHECK(s.node.leader_epoch() == 2);
  }
}

TEST_CASE("bully: an election from a lower id is answered, and the node elects itself", "[bully]") {
  Single s(4);
  s.end_quiet_period();
  s.node.receive(5, Coordinator{1});  // follows 5
  s.out.clear();
  s.node.receive(2, Election{3});
  CHECK(s.node.epoch() == 4);  // its own election runs above what it heard
  CHECK(s.out.take() == std::vector<Sent>{{2, Answer{3}}, {5, Election{4}}});
  CHECK(s.node.role() == Role::electing);
}

TEST_CASE("bully: a leader answers an election it already won with its announcement", "[bully]") {
  Single s(5);
  s.end_quiet_period();
  s.out.clear();
  s.node.receive(3, Election{1});
  CHECK(s.out.take() == std::vector<Sent>{{3, Answer{1}}, {3, Coordinator{1}}});
  CHECK(s.node.leader_epoch() == 1);
  // an election in a later epoch (the lower node missed this leadership) makes a new one
  s.node.receive(3, Election{4});
  CHECK(s.node.is_leader());
  CHECK(s.node.leader_epoch() == 5);
  CHECK(s.out.take() == std::vector<Sent>{{3, Answer{4}},
                                          {1, Coordinator{5}},
                                          {2, Coordinator{5}},
                                          {3, Coordinator{5}},
                                          {4, Coordinator{5}}});
}

TEST_CASE("bully: stale announcements are ignored; newer ones and higher ids are followed",
          "[bully]") {
  Single s(2);
  s.end_quiet_period();
  s.node.receive(4, Coordinator{3});
  CHECK(s.node.leader() == NodeId{4});
  s.node.receive(5, Coordinator{2});  // an older epoch: stale, though from a higher id
  CHECK(s.node.leader() == NodeId{4});
  CHECK(s.node.stale() == 1);
  s.node.receive(3, Coordinator{3});  // the same epoch, a lower id: stale
  CHECK(s.node.leader() == NodeId{4});
  CHECK(s.node.stale() == 2);
  s.node.receive(5, Coordinator{3});  // the same epoch, a higher id wins the tie
  CHECK(s.node.leader() == NodeId{5});
  s.node.receive(3, Coordinator{6});  // a newer epoch wins over a higher id
  CHECK(s.node.leader() == NodeId{3});
  CHECK(s.node.leader_epoch() == 6);
}

TEST_CASE("bully: a node hearing a lower id claim bullies it", "[bully]") {
  SECTION("a follower elects itself") {
    Single s(4);
    s.end_quiet_period();
    s.node.receive(5, Coordinator{1});
    s.out.clear();
    s.node.receive(2, Coordinator{3});
    CHECK(s.node.role() == Role::electing);
    CHECK(s.out.take() == to_each({5}, Election{4}));
  }
  SECTION("a leader takes a new epoch above the claimant's") {
    Single s(5);
    s.end_quiet_period();
    s.out.clear();
    s.node.receive(2, Coordinator{3});
    CHECK(s.node.is_leader());
    CHECK(s.node.leader_epoch() == 4);
    CHECK(s.out.take() == to_each({1, 2, 3, 4}, Coordinator{4}));
  }
  SECTION("a leader ignores an older claim, which its heartbeat will correct") {
    Single s(5);
    s.end_quiet_period();
    s.out.clear();
    s.node.receive(2, Coordinator{1});
    CHECK(s.node.stale() == 1);
    CHECK(s.out.empty());
    CHECK(s.node.leader_epoch() == 1);
  }
}

TEST_CASE("bully: a follower elects when its leader goes silent for leader_timeout", "[bully]") {
  Single s(3);
  s.end_quiet_period();
  s.node.receive(5, Coordinator{1});
  s.out.clear();
  s.clock.advance(400ms);
  s.node.receive(5, Coordinator{1});  // the heartbeat renews the timeout
  s.clock.advance(400ms);
  s.node.tick();
  CHECK(s.node.role() == Role::follower);
  s.clock.advance(100ms);
  s.node.tick();
  CHECK(s.node.role() == Role::electing);
  CHECK(s.out.take() == to_each({4, 5}, Election{2}));
}

TEST_CASE("bully: a node that heard a higher leader while listening follows it", "[bully]") {
  Single s(3);
  s.clock.advance(300ms);
  s.node.receive(5, Coordinator{4});
  s.clock.advance(200ms);
  s.node.tick();
  CHECK(s.node.role() == Role::follower);
  CHECK(s.node.leader() == NodeId{5});
  CHECK(s.node.leader_epoch() == 4);
  CHECK(s.out.empty());
  CHECK(s.node.next_deadline() == s.clock.now() + 300ms);  // heard 200 ms ago

  SECTION("one that heard only a lower leader bullies it instead") {
    Single t(4);
    t.clock.advance(300ms);
    t.node.receive(2, Coordinator{4});
    t.end_quiet_period();
    CHECK(t.node.role() == Role::electing);
    CHECK(t.out.take() == to_each({5}, Election{5}));
  }
}

TEST_CASE("bully: messages that break the protocol are dropped and counted", "[bully]") {
  Single s(3);
  s.end_quiet_period();
  s.out.clear();
  s.node.receive(9, Coordinator{9});  // not a member
  s.node.receive(3, Coordinator{9});  // itself
  s.node.receive(5, Election{9});     // elections go upwards only
  s.node.receive(1, Answer{1});       // only higher ids answer
  CHECK(s.node.dropped() == 4);
  CHECK(s.node.role() == Role::electing);
  CHECK(s.node.epoch() == 1);
  CHECK(s.out.empty());
}

TEST_CASE("bully: bad configurations throw naming the argument and the rule", "[bully]") {
  Box out;
  pods::ManualClock clock;
  auto make = [&](NodeId self, std::vector<NodeId> members, pods::BullyOptions o = {}) {
    Node node(self, std::move(members), out, clock, o);
  };
  CHECK_THROWS_WITH(make(1, {}), "BullyElection: members must not be empty");
  CHECK_THROWS_WITH(make(1, {1, 2, 2}), "BullyElection: members must not contain a duplicate id");
  CHECK_THROWS_WITH(make(4, {1, 2, 3}), "BullyElection: members must contain self");
  CHECK_THROWS_WITH(make(1, {1}, {.leader_timeout = 0ms}),
                    "BullyElection: leader_timeout must be positive");
  CHECK_THROWS_WITH(make(1, {1}, {.election_timeout = -1ms}),
                    "BullyElection: election_timeout must be positive");
  CHECK_THROWS_WITH(make(1, {1}, {.coordinator_timeout = 0ms}),
                    "BullyElection: coordinator_timeout must be positive");
  CHECK_THROWS_WITH(make(1, {1}, {.heartbeat_interval = 0ms}),
                    "BullyElection: heartbeat_interval must be positive");
  CHECK_THROWS_AS(make(1, {}), std::invalid_argument);
}

TEST_CASE("bully: the codec round-trips every message and pins its bytes", "[bully][codec]") {
  const pods::bully::MessageCodec codec;
  for (const Msg& m : {Msg(Election{0}), Msg(Answer{7}), Msg(Coordinator{~0ULL})}) {
    pods::Buffer out;
    codec.encode(m, out);
    CHECK(out.size() == 10);
    CHECK(codec.decode(out) == m);
  }
  pods::Buffer out;
  codec.encode(Coordinator{0x0102}, out);
  const pods::Buffer pinned{std::byte{1}, std::byte{2}, std::byte{2}, std::byte{1}, std::byte{0},
                            std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}};
  CHECK(out == pinned);
}

TEST_CASE("bully: the codec refuses bad bytes with a CorruptionError naming where",
          "[bully][codec]") {
  const pods::bully::MessageCodec codec;
  pods::Buffer good;
  codec.encode(Answer{5}, good);
  auto with = [&](std::size_t at, std::byte b) {
    pods::Buffer bad = good;
    bad[at] = b;
    return bad;
  };
  CHECK_THROWS_WITH(codec.decode(with(0, std::byte{2})),
                    "corrupt data in bully message at offset 0: unknown version 2");
  CHECK_THROWS_WITH(codec.decode(with(1, std::byte{3})),
                    "corrupt data in bully message at offset 1: unknown message kind 3");
  CHECK_THROWS_WITH(codec.decode(std::span(good).first(6)),
                    "corrupt data in bully message at offset 2: truncated: a u64 needs 8 bytes, "
                    "4 remain");
  pods::Buffer longer = good;
  longer.push_back(std::byte{0});
  CHECK_THROWS_WITH(codec.decode(longer),
                    "corrupt data in bully message at offset 10: 1 unexpected trailing bytes");
  CHECK_THROWS_AS(codec.decode({}), pods::CorruptionError);
}

// ---- on the simulator ----------------------------------------------------------------------

namespace {

using SimNode = pods::BullyElection<pods::sim::Network<Msg>::Endpoint, pods::sim::NodeClock>;
using World = election_test::World<SimNode, Msg>;

World::Cluster::Factory factory(std::size_t n, pods::BullyOptions o = {}) {
  return [n, o](const pods::sim::NodeContext<Msg>& ctx) {
    return std::make_unique<SimNode>(ctx.id, election_test::ids(n), ctx.endpoint, ctx.clock, o);
  };
}

// The settling bound after the faults stop: a restarted node's quiet period, then at worst two
// rounds of election and coordinator timeouts, plus message delays and tick slack.
constexpr auto settle_bound = 500ms + 2 * (200ms + 500ms) + 50ms;

}  // namespace

TEST_CASE(
    "bully on the simulator: with crashes, at most one leader per epoch at every step, then the "
    "highest id leads",
    "[bully][sim]") {
  const std::uint64_t seeds = election_test::seeds(30);
  const auto s = election_test::check_runs<SimNode, Msg>(
      seeds, factory(5), election_test::crash_faults(), true, settle_bound);
  CHECK(s.epochs_led > seeds);  // crashes did force takeovers: the check saw several epochs
  std::cout << "bully, crashes: " << seeds << " seeds, " << s.epochs_led
            << " epochs led, settled at worst " << s.worst / 1ms << " ms after the heal (bound "
            << settle_bound / 1ms << " ms)\n";
}

TEST_CASE(
    "bully on the simulator: with every fault, epochs never go back, and after the heal the "
    "highest id leads within the bound",
    "[bully][sim]") {
  const std::uint64_t seeds = election_test::seeds(30);
  const auto s = election_test::check_runs<SimNode, Msg>(
      seeds, factory(5), election_test::all_faults(), false, settle_bound);
  std::cout << "bully, every fault: " << seeds << " seeds, settled at worst " << s.worst / 1ms
            << " ms after the heal (bound " << settle_bound / 1ms << " ms)\n";
}

TEST_CASE("bully on the simulator: a partition elects one leader per side; the heal leaves one",
          "[bully][sim]") {
  World w(7, 5, factory(5));
  election_test::check_partition_sides(w, 2s, 2s, 1s);
}

TEST_CASE("bully on the simulator: the per-epoch check catches a node that ignores answers",
          "[bully][sim]") {
  // With unsafe_ignore_answers a lower node declares itself though a higher one answered: two
  // nodes then lead the same epoch, and the check must see it.
  const auto s = election_test::check_runs<SimNode, Msg>(
      10, factory(5, {.unsafe_ignore_answers = true}), election_test::crash_faults(), true,
      settle_bound, /*expect_violations=*/true);
  std::cout << "bully, answers ignored: two leaders of one epoch on " << s.violating
            << " of 10 seeds\n";
  CHECK(s.violating > 0);
}

TEST_CASE(
    "bully on the simulator: under every fault two nodes do lead one epoch (the documented "
    "limit)",
    "[bully][sim]") {
  // Partitions, loss and pauses break the timing the per-epoch guarantee rests on; the check
  // shows it rather than hiding it.
  const auto s = election_test::check_runs<SimNode, Msg>(
      10, factory(5), election_test::all_faults(), true, settle_bound, true);
  std::cout << "bully, every fault: two leaders of one epoch on " << s.violating
            << " of 10 seeds\n";
  CHECK(s.violating > 0);
}

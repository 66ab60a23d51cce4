#include <pods/cluster/ring_election.hpp>

#include "election_harness.hpp"

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/sim/node_clock.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using pods::NodeId;
using pods::ring::Ack;
using pods::ring::Elected;
using pods::ring::Election;
using pods::ring::Heartbeat;
using Msg = pods::ring::Message;

namespace {

using Box = pods::Outbox<Msg>;
using Node = pods::RingElection<Box, pods::ManualClock>;
using Role = Node::Role;
using Sent = Box::Sent;

// Node `self` of the ring {1..n}, with a helper to run it past its 1 s quiet period.
struct Single {
  explicit Single(NodeId self, std::size_t n = 5, pods::RingOptions o = {})
      : node(self, election_test::ids(n), out, clock, o) {}
  void end_quiet_period() {
    clock.advance(1s);
    node.tick();
  }
  // Takes what was sent and acknowledges every token as its receiver would.
  std::vector<Sent> take_acked() {
    std::vector<Sent> sent = out.take();
    for (const Sent& s : sent)
      if (pods::ring::hop_of(s.message) != 0)
        node.receive(s.to, Ack{pods::ring::hop_of(s.message)});
    return sent;
  }
  Box out;
  pods::ManualClock clock;
  Node node;
};

// Returns `sent` with every token's hop number zeroed (acknowledgements keep theirs), to
// compare contents.
std::vector<Sent> without_hops(std::vector<Sent> sent) {
  for (Sent& s : sent)
    std::visit(
        [](auto& x) {
          if constexpr (!std::is_same_v<std::decay_t<decltype(x)>, Ack>) {
            if constexpr (requires { x.hop; }) x.hop = 0;
          }
        },
        s.message);
  return sent;
}

std::vector<Sent> heartbeats(std::vector<NodeId> ids, std::uint64_t epoch) {
  std::vector<Sent> out;
  for (NodeId id : ids)
    out.push_back({id, Heartbeat{epoch}});
  return out;
}

}  // namespace

TEST_CASE("ring: a node starts listening: it neither acknowledges nor forwards", "[ring]") {
  Single s(2);
  CHECK(s.node.role() == Role::listening);
  s.node.receive(1, Election{4, 5, 9});
  CHECK(s.out.empty());
  CHECK(s.node.epoch() == 4);
  CHECK(s.node.next_deadline() == s.clock.now() + 1s);
}

TEST_CASE("ring: an election sends the node's own id to its successor", "[ring]") {
  Single s(2);
  s.end_quiet_period();
  CHECK(s.node.role() == Role::electing);
  CHECK(without_hops(s.take_acked()) == std::vector<Sent>{{3, Election{1, 2, 0}}});
  SECTION("the highest id wraps round to the lowest") {
    Single t(5);
    t.end_quiet_period();
    CHECK(without_hops(t.out.take()) == std::vector<Sent>{{1, Election{1, 5, 0}}});
  }
}

TEST_CASE("ring: the Chang-Roberts rules: forward larger, replace smaller once, swallow after",
          "[ring]") {
  Single s(3);
  s.clock.advance(1s);
  s.node.receive(5, Heartbeat{1});  // follows 5 at the end of the quiet period
  s.node.tick();
  REQUIRE(s.node.leader() == NodeId{5});
  s.node.receive(2, Election{2, 4, 11});
  CHECK(without_hops(s.take_acked()) == std::vector<Sent>{{2, Ack{11}}, {4, Election{2, 4, 0}}});
  CHECK(s.node.role() == Role::electing);
  s.node.receive(2, Election{2, 1, 12});  // smaller, and it has taken part: swallowed
  CHECK(s.out.take() == std::vector<Sent>{{2, Ack{12}}});

  SECTION("a node not yet taking part replaces a smaller candidate with itself") {
    Single t(3);
    t.end_quiet_period();
    t.take_acked();
    t.node.receive(2, Election{5, 1, 13});  // a newer epoch: a new round
    CHECK(without_hops(t.take_acked()) == std::vector<Sent>{{2, Ack{13}}, {4, Election{5, 3, 0}}});
  }
}

TEST_CASE("ring: the token coming home elects its candidate, which announces it", "[ring]") {
  Single s(3);
  s.end_quiet_period();
  s.take_acked();
  s.node.receive(2, Election{1, 3, 5});
  CHECK(s.node.is_leader());
  CHECK(s.node.leader_epoch() == 1);
  std::vector<Sent> expected{{2, Ack{5}}, {4, Elected{1, 3, 0}}};
  for (const Sent& h : heartbeats({1, 2, 4, 5}, 1))
    expected.push_back(h);
  CHECK(without_hops(s.take_acked()) == expected);
  s.node.receive(2, Election{1, 3, 6});  // a duplicate of the token: no second announcement
  CHECK(s.out.take() == std::vector<Sent>{{2, Ack{6}}});
  s.node.receive(2, Elected{1, 3, 7});  // its announcement has gone round: it stops
  CHECK(s.out.take() == std::vector<Sent>{{2, Ack{7}}});
  s.clock.advance(100ms);
  s.node.tick();
  CHECK(s.out.take() == heartbeats({1, 2, 4, 5}, 1));
}

TEST_CASE("ring: an unacknowledged hop skips the successor; with nobody left, the node leads",
          "[ring]") {
  Single s(4);
  s.end_quiet_period();
  CHECK(without_hops(s.out.take()) == std::vector<Sent>{{5, Election{1, 4, 0}}});
  s.clock.advance(99ms);
  s.node.tick();
  CHECK(s.out.empty());
  s.clock.advance(1ms);  // hop_timeout
  s.node.tick();
  CHECK(without_hops(s.out.take()) == std::vector<Sent>{{1, Election{1, 4, 0}}});
  CHECK(s.node.skipped() == 1);
  for (int i = 0; i < 3; ++i) {  // 1, 2 and 3 are silent too
    s.clock.advance(100ms);
    s.node.tick();
  }
  std::vector<Sent> expected{{2, Election{1, 4, 0}}, {3, Election{1, 4, 0}}, {5, Elected{1, 4, 0}}};
  for (const Sent& h : heartbeats({1, 2, 3, 5}, 1))
    expected.push_back(h);
  CHECK(without_hops(s.out.take()) == expected);
  CHECK(s.node.is_leader());
  CHECK(s.node.skipped() == 4);

  SECTION("an acknowledgement from someone else does not count") {
    Single t(4);
    t.end_quiet_period();
    const auto hop = pods::ring::hop_of(t.out.take().at(0).message);
    t.node.receive(1, Ack{hop});
    t.clock.advance(100ms);
    t.node.tick();
    CHECK(t.out.size() == 1);
  }
}

TEST_CASE("ring: announcements are followed and passed on; stale ones are ignored", "[ring]") {
  Single s(2);
  s.end_quiet_period();
  s.take_acked();
  s.node.receive(1, Elected{3, 4, 8});
  CHECK(s.node.leader() == NodeId{4});
  CHECK(s.node.leader_epoch() == 3);
  CHECK(without_hops(s.take_acked()) == std::vector<Sent>{{1, Ack{8}}, {3, Elected{3, 4, 0}}});
  s.node.receive(1, Elected{3, 4, 9});   // a duplicate: acknowledged, not passed on
  s.node.receive(1, Elected{2, 5, 10});  // an older epoch
  s.node.receive(5, Heartbeat{2});
  CHECK(s.out.take() == std::vector<Sent>{{1, Ack{9}}, {1, Ack{10}}});
  CHECK(s.node.stale() == 3);
  CHECK(s.node.leader() == NodeId{4});
  s.node.receive(5, Heartbeat{3});  // the same epoch, a higher id: followed
  CHECK(s.node.leader() == NodeId{5});

  SECTION("a node that learns of a lower leader was skipped, and elects again") {
    Single t(4);
    t.end_quiet_period();
    t.take_acked();
    t.node.receive(3, Elected{2, 2, 1});
    CHECK(without_hops(t.take_acked()) ==
          std::vector<Sent>{{3, Ack{1}}, {5, Elected{2, 2, 0}}, {5, Election{3, 4, 0}}});
    CHECK(t.node.role() == Role::electing);
  }
}

TEST_CASE("ring: a follower elects when its leader's heartbeats stop", "[ring]") {
  Single s(2);
  s.clock.advance(500ms);
  s.node.receive(5, Heartbeat{4});
  s.clock.advance(500ms);
  s.node.tick();
  CHECK(s.node.leader() == NodeId{5});
  CHECK(s.out.empty());
  s.clock.advance(400ms);
  s.node.receive(5, Heartbeat{4});
  s.clock.advance(999ms);
  s.node.tick();
  CHECK(s.node.role() == Role::follower);
  s.clock.advance(1ms);
  s.node.tick();
  CHECK(without_hops(s.out.take()) == std::vector<Sent>{{3, Election{5, 2, 0}}});
}

TEST_CASE("ring: an election without result within election_timeout starts again", "[ring]") {
  Single s(2);
  s.end_quiet_period();
  s.take_acked();
  s.clock.advance(1s);
  s.node.tick();
  CHECK(without_hops(s.out.take()) == std::vector<Sent>{{3, Election{2, 2, 0}}});
}

TEST_CASE("ring: malformed messages are dropped and counted", "[ring]") {
  Single s(2);
  s.end_quiet_period();
  s.take_acked();
  s.node.receive(9, Heartbeat{1});       // not a member
  s.node.receive(2, Heartbeat{1});       // itself
  s.node.receive(1, Election{1, 9, 1});  // candidate not a member
  s.node.receive(1, Elected{1, 9, 1});   // leader not a member
  CHECK(s.node.dropped() == 4);
  CHECK(s.out.empty());
  CHECK(s.node.epoch() == 1);
}

TEST_CASE("ring: bad configurations throw naming the argument and the rule", "[ring]") {
  Box out;
  pods::ManualClock clock;
  auto make = [&](NodeId self, std::vector<NodeId> members, pods::RingOptions o = {}) {
    Node node(self, std::move(members), out, clock, o);
  };
  CHECK_THROWS_WITH(make(1, {}), "RingElection: members must not be empty");
  CHECK_THROWS_WITH(make(1, {1, 1}), "RingElection: members must not contain a duplicate id");
  CHECK_THROWS_WITH(make(4, {1, 2}), "RingElection: members must contain self");
  CHECK_THROWS_WITH(make(1, {1}, {.leader_timeout = 0ms}),
                    "RingElection: leader_timeout must be positive");
  CHECK_THROWS_WITH(make(1, {1}, {.hop_timeout = 0ms}),
                    "RingElection: hop_timeout must be positive");
  CHECK_THROWS_WITH(make(1, {1}, {.election_timeout = -5ms}),
                    "RingElection: election_timeout must be positive");
  CHECK_THROWS_WITH(make(1, {1}, {.heartbeat_interval = 0ms}),
                    "RingElection: heartbeat_interval must be positive");
  CHECK_THROWS_AS(make(1, {}), std::invalid_argument);
}

TEST_CASE("ring: a ring of one elects itself when its quiet period ends", "[ring]") {
  Single s(1, 1);
  s.end_quiet_period();
  CHECK(s.node.is_leader());
  CHECK(s.out.empty());
}

TEST_CASE("ring: the codec round-trips every message and pins its bytes", "[ring][codec]") {
  const pods::ring::MessageCodec codec;
  for (const Msg& m :
       {Msg(Election{1, 2, 3}), Msg(Elected{~0ULL, 7, 0}), Msg(Ack{9}), Msg(Heartbeat{4})}) {
    pods::Buffer out;
    codec.encode(m, out);
    CHECK(codec.decode(out) == m);
  }
  pods::Buffer out;
  codec.encode(Ack{0x0201}, out);
  const pods::Buffer pinned{std::byte{1}, std::byte{2}, std::byte{1}, std::byte{2}, std::byte{0},
                            std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}};
  CHECK(out == pinned);
}

TEST_CASE("ring: the codec refuses bad bytes with a CorruptionError naming where",
          "[ring][codec]") {
  const pods::ring::MessageCodec codec;
  pods::Buffer good;
  codec.encode(Election{1, 2, 3}, good);
  CHECK(good.size() == 26);
  pods::Buffer bad = good;
  bad[0] = std::byte{0};
  CHECK_THROWS_WITH(codec.decode(bad),
                    "corrupt data in ring message at offset 0: unknown version 0");
  bad = good;
  bad[1] = std::byte{4};
  CHECK_THROWS_WITH(codec.decode(bad),
                    "corrupt data in ring message at offset 1: unknown message kind 4");
  CHECK_THROWS_WITH(codec.decode(std::span(good).first(20)),
                    "corrupt data in ring message at offset 18: truncated: a u64 needs 8 bytes, "
                    "2 remain");
  bad = good;
  bad.push_back(std::byte{0});
  CHECK_THROWS_WITH(codec.decode(bad),
                    "corrupt data in ring message at offset 26: 1 unexpected trailing bytes");
}

// ---- on the simulator ----------------------------------------------------------------------

namespace {

using SimNode = pods::RingElection<pods::sim::Network<Msg>::Endpoint, pods::sim::NodeClock>;
using World = election_test::World<SimNode, Msg>;

World::Cluster::Factory factory(std::size_t n, pods::RingOptions o = {}) {
  return [n, o](const pods::sim::NodeContext<Msg>& ctx) {
    return std::make_unique<SimNode>(ctx.id, election_test::ids(n), ctx.endpoint, ctx.clock, o);
  };
}

// The settling bound after the faults stop: a restarted node's quiet period, then two election
// timeouts (a lost round, then a full one), plus hops and tick slack.
constexpr auto settle_bound = 1s + 2 * 1s + 200ms;

}  // namespace

TEST_CASE(
    "ring on the simulator: with crashes, at most one leader per epoch at every step, then the "
    "highest id leads",
    "[ring][sim]") {
  const std::uint64_t seeds = election_test::seeds(30);
  const auto s = election_test::check_runs<SimNode, Msg>(
      seeds, factory(5), election_test::crash_faults(), true, settle_bound);
  CHECK(s.epochs_led > seeds);  // crashes did force takeovers
  std::cout << "ring, crashes: " << seeds << " seeds, " << s.epochs_led
            << " epochs led, settled at worst " << s.worst / 1ms << " ms after the heal (bound "
            << settle_bound / 1ms << " ms)\n";
}

TEST_CASE(
    "ring on the simulator: with every fault, epochs never go back, and after the heal the "
    "highest id leads within the bound",
    "[ring][sim]") {
  const std::uint64_t seeds = election_test::seeds(30);
  const auto s = election_test::check_runs<SimNode, Msg>(
      seeds, factory(5), election_test::all_faults(), false, settle_bound);
  std::cout << "ring, every fault: " << seeds << " seeds, settled at worst " << s.worst / 1ms
            << " ms after the heal (bound " << settle_bound / 1ms << " ms)\n";
}

TEST_CASE(
    "ring on the simulator: a partition elects one leader per side (the ring skips the other "
    "side); the heal leaves one",
    "[ring][sim]") {
  World w(7, 5, factory(5));
  election_test::check_partition_sides(w, 3s, 4s, 2s);
}

TEST_CASE(
    "ring on the simulator: the per-epoch check catches nodes that forward smaller candidates",
    "[ring][sim]") {
  const auto s = election_test::check_runs<SimNode, Msg>(
      10, factory(5, {.unsafe_forward_smaller = true}), election_test::crash_faults(), true,
      settle_bound, /*expect_violations=*/true);
  std::cout << "ring, smaller candidates forwarded: two leaders of one epoch on " << s.violating
            << " of 10 seeds\n";
  CHECK(s.violating > 0);
}

TEST_CASE(
    "ring on the simulator: under every fault two nodes do lead one epoch (the documented "
    "limit)",
    "[ring][sim]") {
  const auto s = election_test::check_runs<SimNode, Msg>(
      10, factory(5), election_test::all_faults(), true, settle_bound, true);
  std::cout << "ring, every fault: two leaders of one epoch on " << s.violating << " of 10 seeds\n";
  CHECK(s.violating > 0);
}

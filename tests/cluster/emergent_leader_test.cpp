#include <pods/cluster/emergent_leader.hpp>

#include "election_harness.hpp"

#include <catch2/catch.hpp>

#include <pods/cluster/heartbeat.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/sim/node_clock.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pods::NodeId;
using pods::emergent::Join;
using pods::emergent::Member;
using pods::emergent::Members;
using Msg = pods::emergent::Message;

namespace {

using Box = pods::Outbox<Msg>;
using Node = pods::EmergentLeader<Box, pods::ManualClock>;
using Sent = Box::Sent;

// A founder (node 1) and the messages it sends; more nodes share its clock.
struct Founder {
  Founder() : node(1, out, clock, {.seeds = {1}, .bootstrap = true}) {}
  Box out;
  pods::ManualClock clock;
  Node node;
};

// Returns the ids of a list, in its order.
std::vector<NodeId> ids_of(const std::vector<Member>& list) {
  std::vector<NodeId> out;
  for (const Member& m : list)
    out.push_back(m.id);
  return out;
}

}  // namespace

TEST_CASE("emergent: the founder is the only member, at generation 1, and coordinates",
          "[emergent]") {
  Founder f;
  CHECK(f.node.joined());
  CHECK(f.node.generation() == 1);
  CHECK(f.node.is_coordinator());
  CHECK(f.node.coordinator() == NodeId{1});
  CHECK(f.node.members() == std::vector<NodeId>{1});
  f.node.tick();
  CHECK(f.out.empty());  // nobody else to tell
}

TEST_CASE("emergent: a joining node asks the seeds in turn until a list names it", "[emergent]") {
  Box out;
  pods::ManualClock clock;
  Node node(3, out, clock, {.seeds = {1, 3, 2}, .seed = 9});
  CHECK_FALSE(node.joined());
  CHECK_FALSE(node.is_coordinator());
  CHECK_FALSE(node.coordinator().has_value());
  node.tick();
  CHECK(node.next_deadline() == clock.now() + 100ms);
  clock.advance(100ms);
  node.tick();
  clock.advance(100ms);
  node.tick();  // itself is skipped
  CHECK(out.take() == std::vector<Sent>{{1, Join{node.nonce()}},
                                        {2, Join{node.nonce()}},
                                        {1, Join{node.nonce()}}});
  node.receive(1, Members{5, {{1, 1, 5}, {3, 2, node.nonce()}}});
  CHECK(node.joined());
  CHECK(node.generation() == 2);
  CHECK(node.coordinator() == NodeId{1});
  CHECK(node.members() == std::vector<NodeId>{1, 3});
  clock.advance(100ms);
  node.tick();  // now a member: it sends its list to the others
  CHECK(out.take() == std::vector<Sent>{{1, Members{node.nonce(), node.list()}}});
}

TEST_CASE("emergent: a node not yet admitted asks the coordinator its list names", "[emergent]") {
  Box out;
  pods::ManualClock clock;
  Node node(4, out, clock, {.seeds = {2}, .seed = 1});
  node.receive(2, Members{6, {{1, 1, 5}, {2, 2, 6}}});  // 2 is not the coordinator: 1 is oldest
  node.tick();
  CHECK(out.take() == std::vector<Sent>{{2, Join{node.nonce()}}});  // 1 not heard from yet
  node.receive(1, Members{5, {{1, 1, 5}, {2, 2, 6}}});
  clock.advance(100ms);
  node.tick();
  CHECK(out.take() == std::vector<Sent>{{1, Join{node.nonce()}}});
}

TEST_CASE("emergent: the coordinator admits joins in order, once per incarnation", "[emergent]") {
  Founder f;
  f.node.receive(3, Join{30});
  f.node.receive(2, Join{20});
  CHECK(f.node.list() == std::vector<Member>{{1, 1, f.node.nonce()}, {3, 2, 30}, {2, 3, 20}});
  CHECK(f.node.members() == std::vector<NodeId>{1, 3, 2});
  f.out.clear();
  f.node.receive(3, Join{30});  // a retry: answered, nothing changes
  CHECK(f.node.list().size() == 3);
  CHECK(f.out.take() == std::vector<Sent>{{3, Members{f.node.nonce(), f.node.list()}}});
  f.node.receive(3, Join{31});  // 3 restarted: it joins again as the youngest
  CHECK(ids_of(f.node.list()) == std::vector<NodeId>{1, 2, 3});
  CHECK(f.node.list().back() == Member{3, 4, 31});
}

TEST_CASE("emergent: a member that does not coordinate answers a join without admitting",
          "[emergent]") {
  Founder f;
  Box out;
  Node two(2, out, f.clock, {.seeds = {1}, .seed = 2});
  f.node.receive(2, Join{two.nonce()});
  for (const Sent& s : f.out.take())
    two.receive(1, s.message);
  REQUIRE(two.joined());
  out.clear();
  two.receive(5, Join{50});
  CHECK(two.list().size() == 2);
  CHECK(out.take() == std::vector<Sent>{{5, Members{two.nonce(), two.list()}}});
}

TEST_CASE("emergent: when the oldest member falls silent, the next oldest coordinates",
          "[emergent]") {
  Founder f;
  Box out;
  Node two(2, out, f.clock, {.seeds = {1}, .seed = 2});
  f.node.receive(2, Join{two.nonce()});
  f.node.receive(3, Join{30});
  for (const Sent& s : f.out.take())
    if (s.to == 2) two.receive(1, s.message);
  two.receive(3, Members{30, f.node.list()});
  CHECK(two.coordinator() == NodeId{1});
  CHECK_FALSE(two.is_coordinator());
  f.clock.advance(200ms);
  two.receive(3, Members{30, f.node.list()});  // 3 keeps talking, 1 does not
  f.clock.advance(100ms);                      // 300 ms: the timeout detector's 3 intervals
  CHECK(two.coordinator() == NodeId{2});
  CHECK(two.is_coordinator());
  CHECK(two.members() == std::vector<NodeId>{2, 3});
  two.receive(1, Members{f.node.nonce(), f.node.list()});  // 1 is back: it leads again
  CHECK(two.coordinator() == NodeId{1});
  CHECK(two.members() == std::vector<NodeId>{1, 2, 3});
}

TEST_CASE("emergent: a message from a new incarnation retires the old one at once", "[emergent]") {
  Founder f;
  Box out;
  Node two(2, out, f.clock, {.seeds = {1}, .seed = 2});
  f.node.receive(2, Join{two.nonce()});
  for (const Sent& s : f.out.take())
    two.receive(1, s.message);
  REQUIRE(two.coordinator() == NodeId{1});
  two.receive(1, Join{999});  // node 1 restarted and asks to join
  CHECK(two.coordinator() == NodeId{2});
  CHECK(two.is_coordinator());  // so 2 admitted the new incarnation, as the youngest
  CHECK(two.list().back() == Member{1, 3, 999});
  CHECK(two.members() == std::vector<NodeId>{2, 1});
}

TEST_CASE("emergent: lists merge by union, each id keeping its latest join", "[emergent]") {
  Founder f;
  f.node.receive(2, Members{20, {{2, 2, 20}, {4, 3, 40}}});
  f.node.receive(4, Members{41, {{4, 5, 41}, {5, 6, 50}}});
  CHECK(f.node.list() ==
        std::vector<Member>{{1, 1, f.node.nonce()}, {2, 2, 20}, {4, 5, 41}, {5, 6, 50}});
  f.node.receive(2, Members{20, {{2, 2, 20}, {4, 3, 40}}});  // an older view changes nothing
  CHECK(f.node.list().size() == 4);
  CHECK(f.node.list()[2] == Member{4, 5, 41});
  CHECK(f.node.members() == std::vector<NodeId>{1, 2, 4});  // 5 never heard from
}

TEST_CASE("emergent: malformed messages are dropped and counted", "[emergent]") {
  Founder f;
  const auto before = f.node.list();
  f.node.receive(1, Join{1});                                // from itself
  f.node.receive(2, Members{20, {{2, 2, 20}, {2, 3, 21}}});  // a duplicate id
  f.node.receive(2, Members{20, {{2, 0, 20}}});              // generation 0
  f.node.receive(2, Members{20, {{3, 2, 30}}});              // without its sender
  f.node.receive(2, Members{20, {{2, 2, 21}}});              // its sender's other incarnation
  CHECK(f.node.dropped() == 5);
  CHECK(f.node.list() == before);
  CHECK(f.node.members() == std::vector<NodeId>{1});
}

TEST_CASE("emergent: bad configurations throw naming the argument and the rule", "[emergent]") {
  Box out;
  pods::ManualClock clock;
  CHECK_THROWS_WITH(Node(1, out, clock, {.seeds = {1}, .heartbeat_interval = 0ms}),
                    "EmergentLeader: heartbeat_interval must be positive");
  CHECK_THROWS_WITH(Node(2, out, clock, {}),
                    "EmergentLeader: seeds must not be empty unless bootstrap");
  CHECK_NOTHROW(Node(1, out, clock, {.bootstrap = true}));
  CHECK_THROWS_AS(Node(2, out, clock, {}), std::invalid_argument);
}

TEST_CASE("emergent: the failure detector is a policy: phi accrual works in its place",
          "[emergent]") {
  using Phi = pods::PhiAccrualDetector<pods::ManualClock>;
  Box out;
  pods::ManualClock clock;
  pods::EmergentLeader<Box, pods::ManualClock, Phi> two(2, out, clock, {.seeds = {1}, .seed = 2},
                                                        Phi({.threshold = 8.0}));
  for (int i = 0; i < 20; ++i) {
    two.receive(1, Members{5, {{1, 1, 5}, {2, 2, two.nonce()}}});
    clock.advance(100ms);
  }
  CHECK(two.coordinator() == NodeId{1});
  clock.advance(5s);
  CHECK(two.coordinator() == NodeId{2});
}

TEST_CASE("emergent: the codec round-trips every message and refuses bad bytes",
          "[emergent][codec]") {
  const pods::emergent::MessageCodec codec;
  for (const Msg& m :
       {Msg(Join{7}), Msg(Members{3, {}}), Msg(Members{~0ULL, {{1, 2, 3}, {4, 5, 6}}})}) {
    pods::Buffer out;
    codec.encode(m, out);
    CHECK(codec.decode(out) == m);
  }
  pods::Buffer good;
  codec.encode(Members{1, {{2, 3, 4}}}, good);
  CHECK(good.size() == 1 + 1 + 8 + 4 + 24);
  const pods::Buffer join_bytes = [&] {
    pods::Buffer b;
    codec.encode(Join{0x0102}, b);
    return b;
  }();
  CHECK(join_bytes == pods::Buffer{std::byte{1}, std::byte{0}, std::byte{2}, std::byte{1},
                                   std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0},
                                   std::byte{0}, std::byte{0}});
  pods::Buffer bad = good;
  bad[0] = std::byte{9};
  CHECK_THROWS_WITH(codec.decode(bad),
                    "corrupt data in emergent leader message at offset 0: unknown version 9");
  bad = good;
  bad[1] = std::byte{2};
  CHECK_THROWS_WITH(codec.decode(bad),
                    "corrupt data in emergent leader message at offset 1: unknown message kind 2");
  bad = good;
  bad[10] = std::byte{2};  // a count of 2 entries, room for 1
  CHECK_THROWS_WITH(codec.decode(bad),
                    "corrupt data in emergent leader message at offset 10: a count of 2 elements "
                    "cannot fit in the 24 bytes that remain");
  bad = good;
  bad.push_back(std::byte{0});
  CHECK_THROWS_WITH(codec.decode(bad),
                    "corrupt data in emergent leader message at offset 38: 1 unexpected trailing "
                    "bytes");
}

// ---- on the simulator ----------------------------------------------------------------------

namespace {

using SimNode = pods::EmergentLeader<pods::sim::Network<Msg>::Endpoint, pods::sim::NodeClock>;
using World = election_test::World<SimNode, Msg>;

World::Cluster::Factory factory(bool unsafe = false) {
  return [unsafe](const pods::sim::NodeContext<Msg>& ctx) {
    pods::EmergentLeaderOptions o;
    o.seeds = {1, 2, 3};
    o.bootstrap = ctx.id == 1 && ctx.incarnation == 0;
    o.seed = pods::Random(ctx.random).next();
    o.unsafe_claim_before_join = unsafe;
    return std::make_unique<SimNode>(ctx.id, ctx.endpoint, ctx.clock, o);
  };
}

// The settling bound after the faults stop: a restarted node's join (a seed, then the
// coordinator: two intervals, more when a seed is down), the detector's 300 ms for every stale
// entry, and the lists spreading in one more interval; with generous slack for joins that
// race with restarts at the heal.
constexpr auto settle_bound = 1500ms;

// At most one live node claims to coordinate; returns the violation, or empty.
std::string claimants(World& w) {
  std::vector<NodeId> claiming;
  w.each([&](NodeId id, SimNode& n) {
    if (n.is_coordinator()) claiming.push_back(id);
  });
  if (claiming.size() <= 1) return {};
  std::string out = "coordinators";
  for (NodeId id : claiming) {
    out += ' ';
    out += std::to_string(id);
  }
  return out;
}

// Every live node is a member, holds the same list, names the same coordinator, which alone
// claims, and sees every node alive.
bool settled(World& w) {
  std::optional<std::vector<Member>> list;
  std::optional<NodeId> coordinator;
  bool ok = true;
  std::size_t claiming = 0;
  w.each([&](NodeId, SimNode& n) {
    if (!n.joined() || n.members().size() != w.cluster.size()) ok = false;
    if (!list) list = n.list(), coordinator = n.coordinator();
    ok = ok && n.list() == *list && n.coordinator() == coordinator;
    claiming += n.is_coordinator() ? 1 : 0;
  });
  return ok && claiming == 1;
}

// Runs to the heal checking claimants at every step when `check_claims`, then to the end
// checking settled() at every step from heal + settle_bound on.
election_test::Verdict run_checked(World& w, pods::sim::Nemesis<World::Cluster>& nemesis,
                                   bool check_claims) {
  election_test::Verdict v;
  w.run(nemesis.heal_at().time_since_epoch(), [&] {
    if (!check_claims || !v.violation.empty()) return;
    if (std::string bad = claimants(w); !bad.empty()) {
      v.violation =
          "at " + std::to_string(w.now() / 1ms) + " ms: " + bad + "\n" + nemesis.describe();
    }
  });
  const auto heal = nemesis.heal_at().time_since_epoch();
  auto last_bad = heal;
  w.run(nemesis.end_at().time_since_epoch() - w.now(), [&] {
    if (settled(w)) return;
    last_bad = w.now();
    if (w.now() > heal + settle_bound && v.violation.empty()) {
      v.violation = "not settled " + std::to_string((w.now() - heal) / 1ms) +
                    " ms after the heal\n" + nemesis.describe();
    }
  });
  v.settled = last_bad - heal;
  return v;
}

}  // namespace

namespace {

// Runs seeds 1..seeds under `faults` through run_checked; returns the worst settling time and
// how many runs violated a check (each one fails the test case unless `expect_violations`,
// when only claims during the faults are counted).
std::pair<std::chrono::nanoseconds, std::uint64_t> check_runs(
    std::uint64_t seeds, const pods::sim::NemesisOptions& faults, bool check_claims,
    bool unsafe = false, bool expect_violations = false) {
  std::chrono::nanoseconds worst{};
  std::uint64_t violating = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    World w(seed, 5, factory(unsafe));
    pods::sim::Nemesis nemesis(w.cluster, faults);
    const auto v = run_checked(w, nemesis, check_claims);
    if (expect_violations) {
      // Only a claim seen during the faults counts (its report starts with the time).
      violating += v.violation.rfind("at ", 0) == 0 ? 1 : 0;
      continue;
    }
    violating += v.violation.empty() ? 0 : 1;
    election_test::check_clean(v, seed);
    worst = std::max(worst, v.settled);
  }
  return {worst, violating};
}

}  // namespace

TEST_CASE(
    "emergent on the simulator: with crashes, at most one coordinator at every step; after the "
    "heal every node agrees",
    "[emergent][sim]") {
  const std::uint64_t seeds = election_test::seeds(20);
  const auto [worst, violating] = check_runs(seeds, election_test::crash_faults(), true);
  CHECK(violating == 0);
  std::cout << "emergent leader, crashes: " << seeds << " seeds, settled at worst " << worst / 1ms
            << " ms after the heal (bound " << settle_bound / 1ms << " ms)\n";
}

TEST_CASE(
    "emergent on the simulator: with every fault, every node agrees within the bound after the "
    "heal",
    "[emergent][sim]") {
  const std::uint64_t seeds = election_test::seeds(20);
  const auto [worst, violating] = check_runs(seeds, election_test::all_faults(), false);
  CHECK(violating == 0);
  std::cout << "emergent leader, every fault: " << seeds << " seeds, settled at worst "
            << worst / 1ms << " ms after the heal (bound " << settle_bound / 1ms << " ms)\n";
}

TEST_CASE(
    "emergent on the simulator: each side of a partition has its own coordinator; the "
    "heal leaves the oldest",
    "[emergent][sim]") {
  World w(3, 5, factory());
  w.sim.run_for(2s);
  REQUIRE(settled(w));
  const std::vector<NodeId> order = w.cluster.node(1)->members();
  REQUIRE(order.front() == 1);
  // The documented use: partition p belongs to members[p % n]; every node computes the same.
  for (std::size_t p = 0; p < 12; ++p)
    w.each([&](NodeId, SimNode& n) { CHECK(n.members()[p % n.members().size()] == order[p % 5]); });
  const std::vector<NodeId> minority{order[0], order[1]};
  const std::vector<NodeId> majority{order[2], order[3], order[4]};
  w.net.partition({minority, majority});
  w.sim.run_for(2s);
  w.each([&](NodeId id, SimNode& n) {
    const bool in_minority = std::find(minority.begin(), minority.end(), id) != minority.end();
    CHECK(n.coordinator() == (in_minority ? order[0] : order[2]));
    CHECK(n.is_coordinator() == (id == order[0] || id == order[2]));
  });
  w.net.heal();
  w.sim.run_for(1s);
  CHECK(settled(w));
  w.each([&](NodeId, SimNode& n) { CHECK(n.coordinator() == order[0]); });
}

TEST_CASE("emergent on the simulator: the check catches a restarted node claiming its old place",
          "[emergent][sim]") {
  // With unsafe_claim_before_join a restarted oldest member takes its old entry for its own
  // before it has joined again, while the next oldest already coordinates.
  const auto [worst, violating] =
      check_runs(10, election_test::crash_faults(), true, /*unsafe=*/true, /*expect=*/true);
  std::cout << "emergent leader, claims before joining: a check failed on " << violating
            << " of 10 seeds\n";
  CHECK(violating > 0);
}

TEST_CASE(
    "emergent on the simulator: under every fault two nodes do coordinate at once (the "
    "documented limit)",
    "[emergent][sim]") {
  const auto [worst, violating] =
      check_runs(10, election_test::all_faults(), true, /*unsafe=*/false, /*expect=*/true);
  std::cout << "emergent leader, every fault: two coordinators at once on " << violating
            << " of 10 seeds\n";
  CHECK(violating > 0);
}

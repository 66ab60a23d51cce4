// Tests of pods/partitioning/fixed_partitions.hpp: the stable hash pinned to known values
// (computed by a second, independent implementation), the first assignment's balance and
// distinct replicas, move plans from tables with the lower bound computed here and compared,
// a seeded sequence of joins and leaves checked after every step, the checks themselves
// shown to catch broken plans, and every error message.
//
// Seeds: PODS_SEEDS (default 3) runs that many random sequences of 40 membership changes.
#include <pods/partitioning/fixed_partitions.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include <pods/policy/random.hpp>

using pods::FixedPartitions;
using pods::NodeId;
using pods::PartitionId;
using pods::PartitionMove;

namespace {

std::uint64_t seeds() {
  if (const char* s = std::getenv("PODS_SEEDS")) return std::strtoull(s, nullptr, 10);
  return 3;
}

using Assignment = std::vector<std::vector<NodeId>>;  // per partition, its replicas

Assignment snapshot(const FixedPartitions& parts) {
  Assignment a;
  for (PartitionId p = 0; p < parts.partition_count(); ++p) {
    auto r = parts.replicas(p);
    a.emplace_back(r.begin(), r.end());
  }
  return a;
}

// Returns an empty string when every node of `nodes` holds floor or ceil of its share, holds
// nothing outside `nodes`, and every partition's replicas are distinct; a description otherwise.
std::string check_assignment(const Assignment& a, const std::vector<NodeId>& nodes) {
  std::map<NodeId, std::size_t> load;
  for (NodeId n : nodes)
    load[n] = 0;
  std::size_t total = 0;
  for (std::size_t p = 0; p < a.size(); ++p) {
    std::set<NodeId> distinct(a[p].begin(), a[p].end());
    if (distinct.size() != a[p].size()) return "partition " + std::to_string(p) + " repeats a node";
    for (NodeId n : a[p]) {
      if (!load.count(n))
        return "partition " + std::to_string(p) + " is on non-member " + std::to_string(n);
      ++load[n];
      ++total;
    }
  }
  const std::size_t lo = total / nodes.size(), hi = lo + (total % nodes.size() ? 1 : 0);
  for (auto [n, l] : load)
    if (l < lo || l > hi) return "node " + std::to_string(n) + " holds " + std::to_string(l);
  return {};
}

// The fewest replicas any plan must move from `a` to a balanced assignment over `nodes`:
// every replica on a departed node, plus each staying node's excess over its share, with the
// larger shares given to the nodes holding the most (any other choice only adds excess).
std::size_t lower_bound_moves(const Assignment& a, const std::vector<NodeId>& nodes) {
  std::map<NodeId, std::size_t> load;
  std::size_t total = 0, departed = 0;
  const std::set<NodeId> members(nodes.begin(), nodes.end());
  for (NodeId n : nodes)
    load[n] = 0;
  for (const auto& r : a)
    for (NodeId n : r) {
      ++total;
      if (members.count(n))
        ++load[n];
      else
        ++departed;
    }
  std::vector<std::size_t> loads;
  for (auto [n, l] : load)
    loads.push_back(l);
  std::sort(loads.rbegin(), loads.rend());
  std::size_t bound = departed;
  for (std::size_t i = 0; i < loads.size(); ++i) {
    const std::size_t share = total / nodes.size() + (i < total % nodes.size() ? 1 : 0);
    if (loads[i] > share) bound += loads[i] - share;
  }
  return bound;
}

// Applies `moves` to `a`; returns an empty string, or what was wrong with a move.
std::string apply(Assignment& a, const std::vector<PartitionMove>& moves) {
  for (const PartitionMove& m : moves) {
    if (m.partition >= a.size() || m.slot >= a[m.partition].size()) return "move out of range";
    if (a[m.partition][m.slot] != m.from) return "move from the wrong node";
    if (m.from == m.to) return "move to the same node";
    a[m.partition][m.slot] = m.to;
  }
  return {};
}

struct PlanCheck {
  std::string error;
  std::size_t moves = 0, bound = 0;
};

// Checks a plan from `before` to `nodes` that should lead to `after`: it applies, balances,
// and moves no more than the lower bound (replicas > 1 may need one extra move per blocked
// replica: `slack` allows them).
PlanCheck check_plan(Assignment before, const std::vector<PartitionMove>& moves,
                     const std::vector<NodeId>& nodes, std::size_t slack = 0) {
  PlanCheck c{{}, moves.size(), lower_bound_moves(before, nodes)};
  if (auto e = apply(before, moves); !e.empty())
    c.error = e;
  else if (auto e2 = check_assignment(before, nodes); !e2.empty())
    c.error = e2;
  else if (c.moves < c.bound)
    c.error = "fewer moves than the bound: the bound is wrong";
  else if (c.moves > c.bound + slack)
    c.error = "more moves than the minimum";
  return c;
}

std::vector<NodeId> range_of_nodes(NodeId first, std::size_t n) {
  std::vector<NodeId> v;
  for (std::size_t i = 0; i < n; ++i)
    v.push_back(first + i);
  return v;
}

}  // namespace

TEST_CASE("stable_hash is pinned: FNV-1a 64 then fmix64, the same everywhere") {
  struct Row {
    std::string key;
    std::uint64_t hash;
    PartitionId of16, of1000;
  };
  const std::vector<Row> rows{
      {"", 0xb7ad85acbad45f90ULL, 0, 168},
      {"a", 0xc8abef0e51c56028ULL, 8, 688},
      {"user:42", 0x1aba51a6ed54f39cULL, 12, 924},
      {std::string("\xff\x00\x80", 3), 0x676a23b3866a7b44ULL, 4, 404},
      {"partition", 0xa616085afe140c31ULL, 1, 361},
  };
  for (const Row& r : rows) {
    CAPTURE(r.key);
    CHECK(pods::stable_hash(r.key) == r.hash);
    CHECK(FixedPartitions::partition_of(r.key, 16) == r.of16);
    CHECK(FixedPartitions::partition_of(r.key, 1000) == r.of1000);
  }
  static_assert(pods::stable_hash("a") == 0xc8abef0e51c56028ULL, "usable at compile time");
  const FixedPartitions parts(16, {1, 2});
  CHECK(parts.partition_of("user:42") == 12);
}

TEST_CASE("keys spread evenly over the partitions") {
  std::vector<std::size_t> counts(64, 0);
  for (int i = 0; i < 64000; ++i)
    ++counts[FixedPartitions::partition_of("key" + std::to_string(i), 64)];
  const auto [lo, hi] = std::minmax_element(counts.begin(), counts.end());
  CHECK(*lo > 850);  // expected 1000 each; a few standard deviations either side
  CHECK(*hi < 1150);
}

TEST_CASE("the first assignment is balanced within one, with distinct replicas") {
  for (std::size_t partitions : {1, 7, 16, 64, 100})
    for (std::size_t n : {1, 2, 3, 5, 8})
      for (std::size_t factor = 1; factor <= std::min<std::size_t>(n, 3); ++factor) {
        CAPTURE(partitions, n, factor);
        const auto nodes = range_of_nodes(10, n);
        const FixedPartitions parts(partitions, nodes, {.replication_factor = factor});
        CHECK(parts.replication_factor() == factor);
        CHECK(check_assignment(snapshot(parts), nodes).empty());
        std::size_t total = 0;
        for (NodeId id : nodes)
          total += parts.load(id);
        CHECK(total == partitions * factor);
        CHECK(parts.primary(0) == parts.replicas(0)[0]);
      }
  const FixedPartitions parts(4, {3, 1, 2});
  CHECK(std::vector<NodeId>(parts.nodes().begin(), parts.nodes().end()) ==
        std::vector<NodeId>{1, 2, 3});
  CHECK(parts.primary(0) == 1);
  CHECK(parts.primary(3) == 1);
  CHECK(parts.load(9) == 0);
}

// Each row: the moves expected (the true minimum, by the reasoning in its comment where it
// exceeds the counting bound) and the counting bound.
TEST_CASE("move plans from a table move exactly the minimum") {
  struct Row {
    std::size_t partitions, factor;
    std::vector<NodeId> before, after;
    std::size_t expected_moves;
    std::size_t expected_bound;
  };
  const std::vector<Row> rows{
      {12, 1, {1, 2, 3}, {1, 2, 3, 4}, 3, 3},    // 4, 4, 4 -> 3 each: one from each
      {12, 1, {1, 2, 3, 4}, {1, 2, 3}, 3, 3},    // node 4's three go
      {12, 1, {1, 2, 3}, {1, 2, 3}, 0, 0},       // no change, no move
      {10, 1, {1, 2, 3}, {1, 2, 3, 4}, 2, 2},    // 4, 3, 3 -> shares 3, 3, 2, 2
      {64, 2, {1, 2, 3}, {1, 2, 3, 4}, 32, 32},  // 43, 43, 42 -> 32 each
      // Even partitions are on {1, 2}, odd ones on {3, 4}: node 3's 32 replicas can only go to
      // 1 and 2 (4 holds them), which then hold 96 of the 128 and must pass 10 to node 4.
      {64, 2, {1, 2, 3, 4}, {1, 2, 4}, 42, 32},
      {64, 2, {1, 2, 3, 4}, {1, 2, 3}, 42, 32},
      {64, 3, {1, 2, 3, 4, 5}, {1, 2, 3, 4, 5, 6}, 32, 32},
      {16, 1, {1, 2}, {3, 4}, 16, 16},  // everything changes hands
      {16, 2, {1, 2, 3, 4}, {1, 2, 3, 4, 5, 6, 7, 8}, 16, 16},
      {8, 1, {1, 2, 3, 4, 5, 6, 7, 8}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 0, 0},  // 1 each fits
  };
  for (const Row& r : rows) {
    CAPTURE(r.partitions, r.factor, r.before, r.after);
    FixedPartitions parts(r.partitions, r.before, {.replication_factor = r.factor});
    const Assignment before = snapshot(parts);
    const std::vector<PartitionMove> planned = parts.plan(r.after);
    CHECK(snapshot(parts) == before);  // plan() changes nothing
    const std::vector<PartitionMove> moves = parts.set_nodes(r.after);
    CHECK(moves == planned);
    const PlanCheck c = check_plan(before, moves, r.after, r.expected_moves - r.expected_bound);
    CHECK(c.error == "");
    CHECK(c.moves == r.expected_moves);
    CHECK(c.bound == r.expected_bound);
    Assignment applied = before;
    CHECK(apply(applied, moves).empty());
    CHECK(applied == snapshot(parts));
    std::printf(
        "fixed partitions: %zu partitions x %zu replicas, %zu -> %zu nodes: %zu moves, "
        "lower bound %zu\n",
        r.partitions, r.factor, r.before.size(), r.after.size(), c.moves, c.bound);
  }
}

TEST_CASE("add_node and remove_node rebalance with the fewest moves") {
  FixedPartitions parts(30, {1, 2, 3}, {.replication_factor = 2});
  Assignment before = snapshot(parts);
  auto moves = parts.add_node(4);
  CHECK(check_plan(before, moves, {1, 2, 3, 4}).error == "");
  CHECK(moves.size() == 15);  // 60 replicas: 20 each -> 15 each
  for (const PartitionMove& m : moves)
    CHECK(m.to == 4);
  CHECK(parts.member(4));
  before = snapshot(parts);
  moves = parts.remove_node(2);
  CHECK(check_plan(before, moves, {1, 3, 4}).error == "");
  CHECK(moves.size() == 15);
  for (const PartitionMove& m : moves)
    CHECK(m.from == 2);
  CHECK_FALSE(parts.member(2));
  CHECK(parts.load(2) == 0);
}

TEST_CASE("random joins and leaves keep the balance, distinct replicas and the minimum") {
  std::size_t blocked = 0, steps = 0;
  for (std::uint64_t seed = 1; seed <= seeds(); ++seed) {
    pods::Random random(seed);
    const std::size_t factor = 1 + random.below(3);
    const std::size_t partitions = 1 + random.below(200);
    std::vector<NodeId> nodes = range_of_nodes(1, factor + random.below(5));
    FixedPartitions parts(partitions, nodes, {.replication_factor = factor});
    NodeId next_id = 100;
    for (int step = 0; step < 40; ++step) {
      std::vector<NodeId> after = nodes;
      const std::size_t change = random.below(4);
      if (change == 0 || after.size() <= factor) {
        after.push_back(next_id++);  // a join
      } else if (change == 1) {
        after.erase(after.begin() + static_cast<std::ptrdiff_t>(random.below(after.size())));
      } else if (change == 2) {  // a replacement: one leaves, one joins at once
        after[random.below(after.size())] = next_id++;
      } else {  // several join
        for (std::uint64_t k = random.below(3) + 1; k > 0; --k)
          after.push_back(next_id++);
      }
      CAPTURE(seed, step, partitions, factor, nodes, after);
      const Assignment before = snapshot(parts);
      const auto moves = parts.set_nodes(after);
      // With one replica nothing can block a direct move: the bound is met exactly.
      const PlanCheck c = check_plan(before, moves, after, factor == 1 ? 0 : moves.size());
      REQUIRE(c.error == "");
      if (c.moves > c.bound) ++blocked;
      ++steps;
      nodes = after;
      std::sort(nodes.begin(), nodes.end());
    }
  }
  std::printf("fixed partitions: %zu random membership changes, %zu needed more than the bound\n",
              steps, blocked);
}

TEST_CASE("the checks catch a broken plan") {
  FixedPartitions parts(12, {1, 2, 3});
  const Assignment before = snapshot(parts);
  std::vector<PartitionMove> moves = parts.plan({1, 2, 3, 4});
  REQUIRE(check_plan(before, moves, {1, 2, 3, 4}).error == "");
  // A gratuitous move: partition 0 goes to node 4 as well (which unbalances, or moves too much).
  auto extra = moves;
  const Assignment a = before;
  const PartitionId victim = moves[0].partition == 0 ? 1 : 0;
  extra.push_back({victim, 0, a[victim][0], 4});
  CHECK(check_plan(before, extra, {1, 2, 3, 4}).error != "");
  // A plan that drops a move leaves node 4 short.
  auto missing = moves;
  missing.pop_back();
  CHECK_THAT(check_plan(before, missing, {1, 2, 3, 4}).error, Catch::Contains("holds"));
  // A move that puts two replicas of one partition on one node.
  FixedPartitions two(4, {1, 2, 3}, {.replication_factor = 2});
  const Assignment b = snapshot(two);
  CHECK(check_plan(b, {{0, 1, b[0][1], b[0][0]}}, {1, 2, 3}).error == "partition 0 repeats a node");
  // Swapping two replicas keeps the balance but moves what did not have to.
  const Assignment c = snapshot(parts);
  std::vector<PartitionMove> swap{{0, 0, c[0][0], c[1][0]}, {1, 0, c[1][0], c[0][0]}};
  CHECK(check_plan(c, swap, {1, 2, 3}).error == "more moves than the minimum");
}

TEST_CASE("bad arguments throw std::invalid_argument naming them") {
  const std::vector<NodeId> none;
  CHECK_THROWS_AS(FixedPartitions(0, {1}), std::invalid_argument);
  CHECK_THROWS_WITH(FixedPartitions(0, {1}), "FixedPartitions: partition count must be at least 1");
  CHECK_THROWS_WITH(FixedPartitions::partition_of("k", 0),
                    "FixedPartitions: partition count must be at least 1");
  CHECK_THROWS_WITH(FixedPartitions(std::size_t{1} << 33, {1}),
                    "FixedPartitions: partition count must fit a PartitionId");
  CHECK_THROWS_WITH(FixedPartitions(4, none), "FixedPartitions: nodes must not be empty");
  CHECK_THROWS_WITH(FixedPartitions(4, {1, 2, 1}),
                    "FixedPartitions: nodes must not repeat a node (node 1 appears twice)");
  CHECK_THROWS_WITH(FixedPartitions(4, {1, 2}, {.replication_factor = 0}),
                    "FixedPartitions: replication factor must be at least 1");
  CHECK_THROWS_WITH(FixedPartitions(4, {1, 2}, {.replication_factor = 3}),
                    "FixedPartitions: replication factor (3) must not exceed the node count (2)");
  FixedPartitions parts(4, {1, 2}, {.replication_factor = 2});
  CHECK_THROWS_WITH(parts.replicas(4),
                    "FixedPartitions: partition 4 is out of range (4 partitions)");
  CHECK_THROWS_WITH(parts.primary(9),
                    "FixedPartitions: partition 9 is out of range (4 partitions)");
  CHECK_THROWS_WITH(parts.add_node(2), "FixedPartitions: add_node: node 2 is already a member");
  CHECK_THROWS_WITH(parts.remove_node(7), "FixedPartitions: remove_node: node 7 is not a member");
  const Assignment before = snapshot(parts);
  CHECK_THROWS_WITH(parts.remove_node(1),
                    "FixedPartitions: replication factor (2) must not exceed the node count (1)");
  CHECK_THROWS_WITH(parts.set_nodes(none), "FixedPartitions: nodes must not be empty");
  CHECK_THROWS_WITH(parts.plan(std::vector<NodeId>{3, 3}),
                    "FixedPartitions: nodes must not repeat a node (node 3 appears twice)");
  CHECK(snapshot(parts) == before);  // a refused change changes nothing
}

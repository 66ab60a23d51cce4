// Tests of pods/replication/high_water_mark.hpp: the mark is the majority's match index, only
// moves forward, respects the eligibility predicate (Raft §5.4.2), ignores older
// acknowledgements, and a seeded differential test against a brute-force model.
//
// Seeds: PODS_SEEDS (default 3) scales the differential test: 1000 steps per seed.
#include <pods/replication/high_water_mark.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <stdexcept>
#include <vector>

#include <pods/policy/random.hpp>

using pods::HighWaterMark;
using pods::MajorityQuorum;
using pods::NodeId;

namespace {

std::uint64_t seeds() {
  if (const char* s = std::getenv("PODS_SEEDS")) return std::strtoull(s, nullptr, 10);
  return 3;
}

const auto always = [](std::uint64_t) { return true; };

}  // namespace

TEST_CASE("HighWaterMark is the highest index a majority holds", "[high_water_mark]") {
  HighWaterMark mark(MajorityQuorum({1, 2, 3, 4, 5}));
  CHECK(mark.value() == 0);
  mark.acknowledge(1, 9);
  mark.acknowledge(2, 4);
  CHECK_FALSE(mark.advance(always));  // only two of five hold anything
  CHECK(mark.value() == 0);
  mark.acknowledge(3, 6);
  CHECK(mark.advance(always));
  CHECK(mark.value() == 4);  // 1, 2 and 3 hold index 4
  mark.acknowledge(2, 8);
  CHECK(mark.advance(always));
  CHECK(mark.value() == 6);
  CHECK(mark.match(1) == 9);
  CHECK(mark.match(7) == 0);
}

TEST_CASE("HighWaterMark never goes back", "[high_water_mark]") {
  HighWaterMark mark(MajorityQuorum({1, 2, 3}), 10);
  CHECK(mark.value() == 10);
  mark.acknowledge(1, 3);
  mark.acknowledge(2, 3);
  CHECK_FALSE(mark.advance(always));  // the majority is below the mark
  CHECK(mark.value() == 10);
  CHECK_FALSE(mark.follow(5));
  CHECK(mark.value() == 10);
  CHECK(mark.follow(12));
  CHECK(mark.value() == 12);
  mark.reset_matches();
  CHECK(mark.match(1) == 0);
  CHECK(mark.value() == 12);
}

TEST_CASE("HighWaterMark ignores an older acknowledgement", "[high_water_mark]") {
  HighWaterMark mark(MajorityQuorum({1, 2, 3}));
  CHECK(mark.acknowledge(2, 7));
  CHECK_FALSE(mark.acknowledge(2, 5));  // reordered: an earlier reply arrives late
  CHECK(mark.match(2) == 7);
}

TEST_CASE("HighWaterMark advances only to an eligible index (Raft 5.4.2)", "[high_water_mark]") {
  HighWaterMark mark(MajorityQuorum({1, 2, 3}));
  mark.acknowledge(1, 5);
  mark.acknowledge(2, 5);
  std::vector<std::uint64_t> asked;
  CHECK_FALSE(mark.advance([&](std::uint64_t i) {
    asked.push_back(i);
    return false;  // index 5 is from an older term
  }));
  CHECK(asked == std::vector<std::uint64_t>{5});
  CHECK(mark.value() == 0);
  mark.acknowledge(1, 6);
  mark.acknowledge(3, 6);
  CHECK(mark.advance([](std::uint64_t i) { return i == 6; }));  // an entry of this term
  CHECK(mark.value() == 6);
}

TEST_CASE("HighWaterMark over a joint configuration needs both majorities", "[high_water_mark]") {
  HighWaterMark mark(MajorityQuorum({1, 2, 3}, {3, 4, 5}));
  mark.acknowledge(1, 8);
  mark.acknowledge(2, 8);
  CHECK_FALSE(mark.advance(always));  // the new configuration holds nothing
  mark.acknowledge(4, 8);
  mark.acknowledge(5, 2);
  CHECK(mark.advance(always));
  CHECK(mark.value() == 2);  // the new configuration's majority holds 2
}

TEST_CASE("HighWaterMark rejects a node outside the quorum", "[high_water_mark]") {
  HighWaterMark mark(MajorityQuorum({1, 2, 3}));
  CHECK_THROWS_WITH(mark.acknowledge(9, 1),
                    "HighWaterMark::acknowledge: node 9 is not a voter of the quorum");
  CHECK_THROWS_AS(mark.acknowledge(9, 1), std::invalid_argument);
}

TEST_CASE("HighWaterMark agrees with a brute-force model", "[high_water_mark]") {
  for (std::uint64_t seed = 1; seed <= seeds(); ++seed) {
    pods::Random random(seed);
    const std::uint64_t n = random.between<std::uint64_t>(1, 7);
    std::vector<NodeId> voters;
    for (NodeId id = 1; id <= n; ++id)
      voters.push_back(id);
    HighWaterMark mark{MajorityQuorum(voters)};
    std::map<NodeId, std::uint64_t> match;
    std::uint64_t model = 0;
    const std::uint64_t barrier = random.between<std::uint64_t>(0, 50);  // not eligible below
    for (int step = 0; step < 1000; ++step) {
      const NodeId id = random.between<NodeId>(1, n);
      const std::uint64_t index = random.between<std::uint64_t>(0, 100);
      mark.acknowledge(id, index);
      match[id] = std::max(match[id], index);
      // The model: the largest i held by more than n / 2 voters, if eligible and higher.
      std::uint64_t best = 0;
      for (std::uint64_t i = 0; i <= 100; ++i) {
        std::uint64_t holders = 0;
        for (const auto& [node, m] : match)
          holders += m >= i ? 1 : 0;
        if (holders > n / 2) best = i;
      }
      if (best > model && best >= barrier) model = best;
      mark.advance([&](std::uint64_t i) { return i >= barrier; });
      INFO("seed " << seed << " step " << step);
      REQUIRE(mark.value() == model);
    }
  }
}

TEST_CASE("HighWaterMark::reconfigure keeps the remaining voters' matches and the mark",
          "[high_water_mark]") {
  HighWaterMark mark(MajorityQuorum({1, 2, 3}));
  mark.acknowledge(1, 8);
  mark.acknowledge(2, 6);
  mark.acknowledge(3, 2);
  REQUIRE(mark.advance(always));
  REQUIRE(mark.value() == 6);
  // Raft dissertation §4.1: {1, 2, 3} -> {1, 2, 3, 4}: a majority is now 3 of 4.
  mark.reconfigure(MajorityQuorum({1, 2, 3, 4}));
  CHECK(mark.value() == 6);
  CHECK(mark.match(1) == 8);
  CHECK(mark.match(4) == 0);
  mark.acknowledge(2, 8);
  CHECK_FALSE(mark.advance(always));  // 1 and 2 hold 8: two of four
  mark.acknowledge(4, 8);
  CHECK(mark.advance(always));
  CHECK(mark.value() == 8);
  // Removing 2: its match is forgotten and acknowledging it throws.
  mark.reconfigure(MajorityQuorum({1, 3, 4}));
  CHECK(mark.match(2) == 0);
  CHECK_THROWS_WITH(mark.acknowledge(2, 9),
                    "HighWaterMark::acknowledge: node 2 is not a voter of the quorum");
  CHECK(mark.value() == 8);
}

// Tests of pods/cluster/majority_quorum.hpp: quorum sizes, committed indices and vote tallies
// from tables, the error messages, and a seeded differential test of single and joint
// configurations against a brute-force model that enumerates every subset of the voters.
//
// Seeds: PODS_SEEDS (default 3) scales the differential test: 2000 cases per seed.
#include <pods/cluster/majority_quorum.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <vector>

#include <pods/policy/random.hpp>

using pods::MajorityQuorum;
using pods::NodeId;
using pods::VoteResult;
using pods::VoteTally;

namespace {

std::uint64_t seeds() {
  if (const char* s = std::getenv("PODS_SEEDS")) return std::strtoull(s, nullptr, 10);
  return 3;
}

auto from(const std::map<NodeId, std::uint64_t>& match) {
  return [&match](NodeId id) -> std::uint64_t {
    auto it = match.find(id);
    return it == match.end() ? 0 : it->second;
  };
}

auto votes_from(const std::map<NodeId, bool>& votes) {
  return [&votes](NodeId id) -> std::optional<bool> {
    auto it = votes.find(id);
    if (it == votes.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST_CASE("quorum_size is n / 2 + 1") {
  const std::vector<std::size_t> expected{1, 2, 2, 3, 3, 4, 4, 5, 5};  // n = 1 .. 9
  for (std::size_t n = 1; n <= expected.size(); ++n) {
    std::vector<NodeId> voters;
    for (NodeId id = 1; id <= n; ++id)
      voters.push_back(id * 10);
    const MajorityQuorum q(voters);
    CHECK(q.quorum_size() == expected[n - 1]);
    CHECK_FALSE(q.joint());
    CHECK(q.old_quorum_size() == 0);
  }
  const MajorityQuorum joint({1, 2, 3}, {3, 4, 5, 6});
  CHECK(joint.joint());
  CHECK(joint.quorum_size() == 3);
  CHECK(joint.old_quorum_size() == 2);
  CHECK(joint.contains(1));
  CHECK(joint.contains(6));
  CHECK_FALSE(joint.contains(7));
}

TEST_CASE("voters are kept sorted") {
  const MajorityQuorum q({5, 1, 3});
  CHECK(std::vector<NodeId>(q.voters().begin(), q.voters().end()) == std::vector<NodeId>{1, 3, 5});
  CHECK(q.old_voters().empty());
  CHECK(q == MajorityQuorum({3, 5, 1}));
}

TEST_CASE("bad configurations throw std::invalid_argument naming them") {
  const std::vector<NodeId> none;
  CHECK_THROWS_WITH(MajorityQuorum(none), "MajorityQuorum: voters must not be empty");
  CHECK_THROWS_WITH(MajorityQuorum({1, 2, 1}), "MajorityQuorum: voters must not repeat node 1");
  CHECK_THROWS_WITH(MajorityQuorum(none, std::vector<NodeId>{1}),
                    "MajorityQuorum: old voters must not be empty");
  CHECK_THROWS_WITH(MajorityQuorum(std::vector<NodeId>{1}, none),
                    "MajorityQuorum: new voters must not be empty");
  CHECK_THROWS_WITH(MajorityQuorum({1, 2}, {3, 4, 4}),
                    "MajorityQuorum: new voters must not repeat node 4");
  CHECK_THROWS_WITH(MajorityQuorum({7, 2, 7}, {3}),
                    "MajorityQuorum: old voters must not repeat node 7");
  CHECK_THROWS_AS(MajorityQuorum(none), std::invalid_argument);
}

TEST_CASE("committed_index: table") {
  struct Row {
    std::vector<NodeId> old_voters, new_voters;
    std::map<NodeId, std::uint64_t> match;
    std::uint64_t expected;
  };
  const std::vector<Row> rows{
      {{}, {1}, {{1, 5}}, 5},
      {{}, {1, 2, 3}, {}, 0},
      {{}, {1, 2, 3}, {{1, 5}}, 0},
      {{}, {1, 2, 3}, {{1, 5}, {2, 4}}, 4},
      {{}, {1, 2, 3}, {{1, 5}, {2, 4}, {3, 6}}, 5},
      {{}, {1, 2, 3, 4}, {{1, 9}, {2, 8}, {3, 7}, {4, 1}}, 7},  // 3 of 4 needed
      {{}, {1, 2, 3, 4, 5}, {{1, 9}, {2, 7}, {3, 7}, {4, 3}, {5, 0}}, 7},
      {{}, {1, 2, 3, 4, 5, 6, 7}, {{1, 1}, {2, 2}, {3, 3}, {4, 4}, {5, 5}, {6, 6}, {7, 7}}, 4},
      {{}, {1, 2, 3}, {{1, ~0ULL}, {2, ~0ULL}, {3, 0}}, ~0ULL},
      // joint: the smaller of the two majorities' answers
      {{1, 2, 3}, {3, 4, 5}, {{1, 9}, {2, 9}, {3, 3}, {4, 3}, {5, 0}}, 3},
      {{1, 2, 3}, {4, 5, 6}, {{1, 9}, {2, 9}, {3, 9}, {4, 9}, {5, 9}}, 9},
      {{1, 2, 3}, {4, 5, 6}, {{1, 9}, {2, 9}, {3, 9}, {4, 9}}, 0},  // new has 1 of 3
      {{1}, {1, 2, 3}, {{1, 4}, {2, 6}, {3, 6}}, 4},
  };
  for (const Row& r : rows) {
    const MajorityQuorum q = r.old_voters.empty() ? MajorityQuorum(r.new_voters)
                                                  : MajorityQuorum(r.old_voters, r.new_voters);
    INFO("row with " << r.new_voters.size() << " new voters, expected " << r.expected);
    CHECK(q.committed_index(from(r.match)) == r.expected);
  }
}

TEST_CASE("committed_index asks each voter once and works past the inline size") {
  std::vector<NodeId> voters;
  std::map<NodeId, std::uint64_t> match;
  for (NodeId id = 1; id <= 41; ++id) {
    voters.push_back(id);
    match[id] = id * 3;
  }
  int calls = 0;
  const MajorityQuorum q(voters);
  // Sorted descending, the 21st largest of 3, 6, ..., 123 is 3 * 21 = 63.
  CHECK(q.committed_index([&](NodeId id) {
    ++calls;
    return match[id];
  }) == 63);
  CHECK(calls == 41);
}

TEST_CASE("tally: table") {
  struct Row {
    std::vector<NodeId> old_voters, new_voters;
    std::map<NodeId, bool> votes;
    VoteTally expected;
  };
  using enum VoteResult;
  const std::vector<Row> rows{
      {{}, {1}, {}, {0, 0, 1, pending}},
      {{}, {1}, {{1, true}}, {1, 0, 0, won}},
      {{}, {1}, {{1, false}}, {0, 1, 0, lost}},
      {{}, {1, 2, 3}, {{1, true}}, {1, 0, 2, pending}},
      {{}, {1, 2, 3}, {{1, true}, {2, true}}, {2, 0, 1, won}},
      {{}, {1, 2, 3}, {{1, true}, {2, false}}, {1, 1, 1, pending}},
      {{}, {1, 2, 3}, {{1, false}, {2, false}}, {0, 2, 1, lost}},
      {{}, {1, 2, 3, 4}, {{1, true}, {2, true}, {3, false}}, {2, 1, 1, pending}},
      {{}, {1, 2, 3, 4}, {{1, false}, {2, false}}, {0, 2, 2, lost}},  // 2 of 4 is no majority
      {{}, {1, 2, 3}, {{9, true}, {8, true}}, {0, 0, 3, pending}},    // non-voters ignored
      // joint: both must be won; either lost loses
      {{1, 2, 3}, {3, 4, 5}, {{1, true}, {2, true}}, {2, 0, 3, pending}},
      {{1, 2, 3}, {3, 4, 5}, {{1, true}, {2, true}, {4, true}, {5, true}}, {4, 0, 1, won}},
      {{1, 2, 3}, {3, 4, 5}, {{1, true}, {3, true}, {4, true}}, {3, 0, 2, won}},
      {{1, 2, 3}, {3, 4, 5}, {{4, false}, {5, false}, {1, true}, {2, true}}, {2, 2, 1, lost}},
      {{1, 2, 3}, {3, 4, 5}, {{1, false}, {2, false}}, {0, 2, 3, lost}},
  };
  for (const Row& r : rows) {
    const MajorityQuorum q = r.old_voters.empty() ? MajorityQuorum(r.new_voters)
                                                  : MajorityQuorum(r.old_voters, r.new_voters);
    INFO("votes " << r.votes.size() << " on " << r.new_voters.size() << " new voters");
    CHECK(q.tally(votes_from(r.votes)) == r.expected);
  }
}

namespace {

// The brute-force model: a set of voters (a bit mask over `all`) is a quorum when it holds
// more than half of the new voters and, when joint, more than half of the old ones.
struct Model {
  std::vector<NodeId> all;  // the distinct voters of both configurations
  std::vector<NodeId> old_voters, new_voters;

  bool quorum(unsigned mask) const {
    auto majority_of = [&](const std::vector<NodeId>& config) {
      std::size_t in = 0;
      for (std::size_t i = 0; i < all.size(); ++i)
        if ((mask >> i & 1u) && std::count(config.begin(), config.end(), all[i])) ++in;
      return 2 * in > config.size();
    };
    return majority_of(new_voters) && (old_voters.empty() || majority_of(old_voters));
  }

  // The largest v such that some quorum has every match index >= v.
  std::uint64_t committed(const std::map<NodeId, std::uint64_t>& match) const {
    std::uint64_t best = 0;
    for (unsigned mask = 1; mask < (1u << all.size()); ++mask) {
      if (!quorum(mask)) continue;
      std::uint64_t low = ~0ULL;
      for (std::size_t i = 0; i < all.size(); ++i)
        if (mask >> i & 1u) low = std::min(low, match.at(all[i]));
      best = std::max(best, low);
    }
    return best;
  }

  // won: some quorum granted everything; lost: no quorum avoids every refusal.
  VoteResult result(const std::map<NodeId, bool>& votes) const {
    bool won = false, possible = false;
    for (unsigned mask = 1; mask < (1u << all.size()); ++mask) {
      if (!quorum(mask)) continue;
      bool all_granted = true, none_refused = true;
      for (std::size_t i = 0; i < all.size(); ++i) {
        if (!(mask >> i & 1u)) continue;
        auto it = votes.find(all[i]);
        if (it == votes.end() || !it->second) all_granted = false;
        if (it != votes.end() && !it->second) none_refused = false;
      }
      won = won || all_granted;
      possible = possible || none_refused;
    }
    if (won) return VoteResult::won;
    return possible ? VoteResult::pending : VoteResult::lost;
  }
};

}  // namespace

TEST_CASE("differential: single and joint configurations agree with a subset enumeration") {
  for (std::uint64_t seed = 1; seed <= seeds(); ++seed) {
    pods::Random random(seed);
    for (int round = 0; round < 2000; ++round) {
      // Voters drawn from ids 1..12, so old and new overlap by chance.
      auto draw_config = [&](std::size_t n) {
        std::vector<NodeId> ids{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
        random.shuffle(ids);
        ids.resize(n);
        return ids;
      };
      const bool joint = random.chance(0.5);
      Model m;
      m.new_voters = draw_config(1 + random.below(7));
      if (joint) m.old_voters = draw_config(1 + random.below(7));
      std::set<NodeId> all(m.new_voters.begin(), m.new_voters.end());
      all.insert(m.old_voters.begin(), m.old_voters.end());
      m.all.assign(all.begin(), all.end());
      const MajorityQuorum q =
          joint ? MajorityQuorum(m.old_voters, m.new_voters) : MajorityQuorum(m.new_voters);

      std::map<NodeId, std::uint64_t> match;
      std::map<NodeId, bool> votes;
      for (NodeId id : m.all) {
        match[id] = random.below(6);  // few values: ties are common
        const auto kind = random.below(3);
        if (kind < 2) votes[id] = kind == 0;
      }
      INFO("seed " << seed << " round " << round);
      REQUIRE(q.committed_index(from(match)) == m.committed(match));
      const VoteTally t = q.tally(votes_from(votes));
      REQUIRE(t.result == m.result(votes));
      REQUIRE(t.granted + t.rejected + t.missing == m.all.size());
    }
  }
}

namespace {
// A test-only quorum rule that breaks one rule: it takes the median index of the union of both
// configurations instead of the minimum of the two majorities.
std::uint64_t union_median(const std::vector<NodeId>& all,
                           const std::map<NodeId, std::uint64_t>& match) {
  return MajorityQuorum(all).committed_index(from(match));
}
}  // namespace

TEST_CASE("the differential check catches a joint rule that uses one majority of the union") {
  pods::Random random(11);
  int caught = 0;
  for (int round = 0; round < 500; ++round) {
    Model m;
    m.old_voters = {1, 2, 3};
    m.new_voters = {4, 5, 6};
    m.all = {1, 2, 3, 4, 5, 6};
    std::map<NodeId, std::uint64_t> match;
    for (NodeId id : m.all)
      match[id] = random.below(6);
    if (union_median(m.all, match) != m.committed(match)) ++caught;
  }
  CHECK(caught > 0);
}

TEST_CASE("committed_index takes the same answer on every code path (1 to 20 voters)") {
  // 1-9 voters: unrolled; 10-16: a stack array; 17-20: a heap array. The expectation is the
  // (n/2+1)-th largest by a full sort.
  pods::Random random(3);
  for (std::size_t n = 1; n <= 20; ++n) {
    for (int round = 0; round < 50; ++round) {
      std::vector<NodeId> voters;
      std::map<NodeId, std::uint64_t> match;
      std::vector<std::uint64_t> sorted;
      for (NodeId id = 1; id <= n; ++id) {
        voters.push_back(id * 7);
        match[id * 7] = random.below(10);
        sorted.push_back(match[id * 7]);
      }
      std::sort(sorted.begin(), sorted.end(), std::greater<>());
      INFO("n " << n << " round " << round);
      REQUIRE(MajorityQuorum(voters).committed_index(from(match)) == sorted[n / 2]);
    }
  }
}

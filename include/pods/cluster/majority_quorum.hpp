// pods/cluster/majority_quorum.hpp — Majority Quorum: decisions that any two majorities share
//
// Problem:       A replicated system cannot wait for every server (one crash would stop it),
//                and it cannot act on any subset (two halves cut apart would decide opposite
//                things). It needs a rule for "enough servers agree" under which any two
//                decisions have a server in common that knows about both.
// Solution:      A quorum is any strict majority of the voters: n / 2 + 1 of n. Two majorities
//                of the same set always intersect, so a value a majority accepted is seen by
//                every later majority. MajorityQuorum applies the rule to the two questions a
//                protocol asks:
//                  - an election or a round of votes: granted by a majority (won), refused by
//                    so many that a majority can no longer grant (lost), or still open (pending);
//                  - a replicated log's commit rule: given each voter's match index (the
//                    highest entry it holds), the highest index a majority holds: the
//                    quorum_size()-th largest match index.
//                While membership changes, a JOINT configuration (Raft's C_old,new, Ongaro and
//                Ousterhout 2014, section 6) needs a majority of the old voters AND a majority
//                of the new ones for every decision, so neither configuration can decide alone.
// Guarantees:    Any two quorums of one configuration intersect; a joint quorum contains a
//                quorum of each of its configurations. committed_index() is the largest i such
//                that a quorum of voters has match index >= i (in a joint configuration, the
//                smaller of the two configurations' answers). tally() says won exactly when
//                the granted votes contain a quorum, lost exactly when the granted and missing
//                votes together do not.
// Not provided:  Weighted or flexible (grid, Flexible Paxos) quorums; the current term check
//                of Raft's commit rule (commit only an entry of the leader's own term: the
//                replicated log does that with the index returned here).
// Thread safety: thread-compatible: a value type; const members may be called concurrently.
// Errors:        An empty voter list or one that repeats a node throws std::invalid_argument
//                naming the list and the node.
// Cost:          Construction: allocates and sorts the voter lists. committed_index(): one
//                call of match_of per voter and a sort of a stack array (a branch-free
//                sorting network up to 9 voters, an insertion sort up to 16), no allocation;
//                a heap array and std::nth_element beyond 16.
//                tally(): one call of vote_of per distinct voter, no allocation.
// Example:
//   pods::MajorityQuorum quorum(std::vector<pods::NodeId>{1, 2, 3, 4, 5});
//   assert(quorum.quorum_size() == 3);
//   std::map<pods::NodeId, std::uint64_t> match{{1, 9}, {2, 7}, {3, 7}, {4, 3}, {5, 0}};
//   assert(quorum.committed_index([&](pods::NodeId id) { return match[id]; }) == 7);
//   std::map<pods::NodeId, bool> votes{{1, true}, {2, true}, {4, false}};
//   auto vote = [&](pods::NodeId id) -> std::optional<bool> {
//     if (auto it = votes.find(id); it != votes.end()) return it->second;
//     return std::nullopt;
//   };
//   assert(quorum.tally(vote).result == pods::VoteResult::pending);  // 2 of 3 granted
//   pods::MajorityQuorum joint(std::vector<pods::NodeId>{1, 2, 3},   // old
//                              std::vector<pods::NodeId>{3, 4, 5});  // new
//   assert(joint.committed_index([&](pods::NodeId id) { return match[id]; }) == 3);
// Example context: #include <map>
// Example context: #include <optional>
#pragma once

#include <pods/policy/transport.hpp>

#include <algorithm>
#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace pods {

// The state of a round of votes.
enum class VoteResult {
  pending,  // neither a quorum of grants nor enough refusals to rule one out, yet
  won,      // the granted votes contain a quorum
  lost,     // even if every missing vote were granted there would be no quorum
};

// The votes of a round, counted over the distinct voters of the configuration (both
// configurations when joint, a voter in both counted once).
struct VoteTally {
  std::size_t granted = 0;
  std::size_t rejected = 0;
  std::size_t missing = 0;
  VoteResult result = VoteResult::pending;

  friend bool operator==(const VoteTally&, const VoteTally&) = default;
};

namespace detail {

// Returns the k-th largest (1-based) of values[0..n), reordering them: an insertion sort into
// descending order, for sizes known only at run time (10 to 16 voters).
inline std::uint64_t kth_largest(std::uint64_t* values, std::size_t n, std::size_t k) noexcept {
  for (std::size_t i = 1; i < n; ++i) {
    const std::uint64_t v = values[i];
    std::size_t j = i;
    for (; j > 0 && values[j - 1] < v; --j)
      values[j] = values[j - 1];
    values[j] = v;
  }
  return values[k - 1];
}

// Returns the (N / 2 + 1)-th largest match index of voters[0..N), for a size known at compile
// time: an odd-even transposition sort (N rounds of compare-exchange of neighbours, a sorting
// network), written with conditional moves so that it has no data-dependent branch. For the 3 to
// 9 voters of a real cluster this beats an insertion sort, whose branches mispredict.
template <std::size_t N, class F>
std::uint64_t majority_index(const NodeId* voters, F& match_of) {
  std::array<std::uint64_t, N> v;
  for (std::size_t i = 0; i < N; ++i)
    v[i] = match_of(voters[i]);
  for (std::size_t round = 0; round < N; ++round) {
    for (std::size_t i = round & 1; i + 1 < N; i += 2) {
      const std::uint64_t a = v[i], b = v[i + 1];
      v[i] = a > b ? a : b;  // descending
      v[i + 1] = a > b ? b : a;
    }
  }
  return v[N / 2];
}

}  // namespace detail

class MajorityQuorum {
 public:
  // Up to this many voters per configuration, committed_index() works on the stack.
  static constexpr std::size_t inline_voters = 16;

  // Creates the configuration of `voters` (copied). Allocates. Throws std::invalid_argument
  // naming voters when the list is empty or repeats a node.
  explicit MajorityQuorum(std::span<const NodeId> voters) : new_(checked(voters, "voters")) {}

  // Same, from a braced list: MajorityQuorum({1, 2, 3}).
  explicit MajorityQuorum(std::initializer_list<NodeId> voters)
      : MajorityQuorum(std::span<const NodeId>(voters.begin(), voters.size())) {}

  // Creates the joint configuration of `old_voters` and `new_voters` (copied): every decision
  // needs a majority of each. Allocates. Throws std::invalid_argument naming old voters or new
  // voters when that list is empty or repeats a node.
  MajorityQuorum(std::span<const NodeId> old_voters, std::span<const NodeId> new_voters)
      : new_(checked(new_voters, "new voters")), old_(checked(old_voters, "old voters")) {}

  // Same, from braced lists: MajorityQuorum({1, 2, 3}, {3, 4, 5}).
  MajorityQuorum(std::initializer_list<NodeId> old_voters, std::initializer_list<NodeId> new_voters)
      : MajorityQuorum(std::span<const NodeId>(old_voters.begin(), old_voters.size()),
                       std::span<const NodeId>(new_voters.begin(), new_voters.size())) {}

  // Returns true for a joint configuration.
  bool joint() const noexcept { return !old_.empty(); }

  // Returns the voters in ascending order: in a joint configuration, the new ones.
  std::span<const NodeId> voters() const noexcept { return new_; }

  // Returns the old voters of a joint configuration in ascending order; empty otherwise.
  std::span<const NodeId> old_voters() const noexcept { return old_; }

  // Returns how many votes make a majority of voters(): n / 2 + 1.
  std::size_t quorum_size() const noexcept { return new_.size() / 2 + 1; }

  // Returns how many votes make a majority of old_voters() (0 when not joint).
  std::size_t old_quorum_size() const noexcept { return old_.empty() ? 0 : old_.size() / 2 + 1; }

  // Returns true when `id` votes in either configuration.
  bool contains(NodeId id) const noexcept { return has(new_, id) || has(old_, id); }

  // Returns the highest index that a quorum holds, given each voter's match index
  // (`match_of(id)`, called once per voter of each configuration; 0 for a voter not heard
  // from). Joint: the smaller of the two configurations' answers. No allocation up to
  // inline_voters voters per configuration; throws only what match_of throws (or
  // std::bad_alloc beyond inline_voters).
  template <class F>
  requires std::is_invocable_r_v<std::uint64_t, F&, NodeId> std::uint64_t committed_index(
      F&& match_of)
  const {
    const std::uint64_t index = committed(new_, match_of);
    if (old_.empty()) return index;
    return std::min(index, committed(old_, match_of));
  }

  // Counts a round of votes: `vote_of(id)` returns true (granted), false (refused) or nullopt
  // (not yet), and is called once per distinct voter. No allocation; throws only what vote_of
  // throws.
  template <class F>
  requires std::is_invocable_r_v<std::optional<bool>, F&, NodeId> VoteTally
  tally(F&& vote_of) const {
    VoteTally t;
    Counts n, o;
    for (NodeId id : new_) {
      const std::optional<bool> v = vote_of(id);
      count(t, v);
      count(n, v);
      if (has(old_, id)) count(o, v);
    }
    for (NodeId id : old_) {
      if (has(new_, id)) continue;
      const std::optional<bool> v = vote_of(id);
      count(t, v);
      count(o, v);
    }
    const VoteResult rn = result(n, quorum_size());
    const VoteResult ro = old_.empty() ? VoteResult::won : result(o, old_quorum_size());
    if (rn == VoteResult::lost || ro == VoteResult::lost) {
      t.result = VoteResult::lost;
    } else if (rn == VoteResult::won && ro == VoteResult::won) {
      t.result = VoteResult::won;
    } else {
      t.result = VoteResult::pending;
    }
    return t;
  }

  friend bool operator==(const MajorityQuorum&, const MajorityQuorum&) = default;

 private:
  struct Counts {
    std::size_t granted = 0, rejected = 0, missing = 0;
  };
  template <class T>
  static void count(T& c, const std::optional<bool>& v) noexcept {
    if (!v) {
      ++c.missing;
    } else if (*v) {
      ++c.granted;
    } else {
      ++c.rejected;
    }
  }
  static VoteResult result(const Counts& c, std::size_t quorum) noexcept {
    if (c.granted >= quorum) return VoteResult::won;
    if (c.granted + c.missing < quorum) return VoteResult::lost;
    return VoteResult::pending;
  }

  static bool has(const std::vector<NodeId>& sorted, NodeId id) noexcept {
    return std::binary_search(sorted.begin(), sorted.end(), id);
  }

  static std::vector<NodeId> checked(std::span<const NodeId> voters, const char* name) {
    if (voters.empty()) {
      std::string message = "MajorityQuorum: ";
      message += name;
      message += " must not be empty";
      throw std::invalid_argument(message);
    }
    std::vector<NodeId> sorted(voters.begin(), voters.end());
    std::sort(sorted.begin(), sorted.end());
    const auto twin = std::adjacent_find(sorted.begin(), sorted.end());
    if (twin != sorted.end()) {
      std::string message = "MajorityQuorum: ";
      message += name;
      message += " must not repeat node ";
      message += std::to_string(*twin);
      throw std::invalid_argument(message);
    }
    return sorted;
  }

  template <class F>
  static std::uint64_t committed(const std::vector<NodeId>& voters, F& match_of) {
    const std::size_t n = voters.size();
    switch (n) {  // the sizes of real clusters, each unrolled
      case 1:
        return detail::majority_index<1>(voters.data(), match_of);
      case 2:
        return detail::majority_index<2>(voters.data(), match_of);
      case 3:
        return detail::majority_index<3>(voters.data(), match_of);
      case 4:
        return detail::majority_index<4>(voters.data(), match_of);
      case 5:
        return detail::majority_index<5>(voters.data(), match_of);
      case 6:
        return detail::majority_index<6>(voters.data(), match_of);
      case 7:
        return detail::majority_index<7>(voters.data(), match_of);
      case 8:
        return detail::majority_index<8>(voters.data(), match_of);
      case 9:
        return detail::majority_index<9>(voters.data(), match_of);
      default:
        break;
    }
    if (n <= inline_voters) {
      std::array<std::uint64_t, inline_voters> values;
      for (std::size_t i = 0; i < n; ++i)
        values[i] = match_of(voters[i]);
      return detail::kth_largest(values.data(), n, n / 2 + 1);
    }
    std::vector<std::uint64_t> values;
    values.reserve(n);
    for (NodeId id : voters)
      values.push_back(match_of(id));
    const auto kth = values.begin() + static_cast<std::ptrdiff_t>(n / 2);
    std::nth_element(values.begin(), kth, values.end(), std::greater<>());
    return *kth;
  }

  std::vector<NodeId> new_;  // the voters; in a joint configuration, the new ones
  std::vector<NodeId> old_;  // a joint configuration's old voters; empty otherwise
};

}  // namespace pods

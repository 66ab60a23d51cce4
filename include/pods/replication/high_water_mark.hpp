// pods/replication/high_water_mark.hpp — High-Water Mark: the last log index safe to expose
//
// Problem:       A leader appends an entry to its own log and sends it to its followers. If it
//                hands the entry to the state machine (or a client reads it) before a majority
//                holds it, and then crashes, the next leader may not have the entry and the
//                cluster forgets something a client already saw.
// Solution:      The leader tracks, for every voter, the highest index that voter has
//                acknowledged (its match index). The high-water mark is the highest index a
//                majority holds: MajorityQuorum::committed_index over the match indices. It
//                only ever moves forward. Raft adds one rule (Ongaro and Ousterhout 2014,
//                §5.4.2): the leader may move the mark by counting replicas only to an entry
//                of its own term; advance() takes that check as a predicate on the candidate
//                index. Followers learn the mark from the leader's messages (follow()).
// Guarantees:    value() never decreases. After advance(eligible), value() is the largest of
//                its old value and the quorum's committed index c when eligible(c) is true; a
//                candidate for which eligible returns false leaves the mark unchanged. A match
//                index only grows (acknowledge() ignores a lower one), and reset_matches()
//                forgets them without moving the mark, as reconfigure() (a membership
//                change) does, keeping the match indices of the voters that remain.
// Not provided:  Durability (a restarted node recomputes the mark from its peers); the check
//                that an index is in the log (the replicated log does not acknowledge what it
//                has not stored).
// Thread safety: thread-compatible.
// Errors:        acknowledge() of a node outside the quorum throws std::invalid_argument
//                naming node.
// Cost:          acknowledge(): a linear search over the voters. advance(): one
//                committed_index (no allocation up to 16 voters). No allocation after
//                construction.
// Example:
//   pods::HighWaterMark mark(pods::MajorityQuorum({1, 2, 3}));
//   mark.acknowledge(1, 7);  // the leader holds 7 entries
//   mark.acknowledge(2, 5);  // a follower holds 5
//   mark.advance([](std::uint64_t) { return true; });
//   assert(mark.value() == 5);  // 1 and 2 hold index 5: a majority of 3
//   mark.follow(4);             // a lower mark from a message never moves it back
//   assert(mark.value() == 5);
#pragma once

#include <pods/cluster/majority_quorum.hpp>
#include <pods/policy/transport.hpp>

#include <algorithm>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace pods {

class HighWaterMark {
 public:
  // Creates a mark at `start` (0: nothing exposed yet) over `quorum`'s voters, every match
  // index 0. Allocates one slot per voter.
  explicit HighWaterMark(MajorityQuorum quorum, std::uint64_t start = 0)
      : quorum_(std::move(quorum)), value_(start) {
    for (NodeId id : quorum_.voters())
      matches_.push_back({id, 0});
    for (NodeId id : quorum_.old_voters()) {
      if (!find(id)) matches_.push_back({id, 0});
    }
  }

  // Returns the highest index known to be held by a majority (never decreases).
  std::uint64_t value() const noexcept { return value_; }

  // Returns the configuration the mark counts over.
  const MajorityQuorum& quorum() const noexcept { return quorum_; }

  // Returns the match index recorded for `node` (0 for a node outside the quorum).
  std::uint64_t match(NodeId node) const noexcept {
    const Slot* s = find(node);
    return s ? s->match : 0;
  }

  // Records that `node` holds every entry up to `index`; a lower index than the one recorded
  // is ignored (a reordered, older acknowledgement). Returns true when the match index grew.
  // Throws std::invalid_argument naming node when it is not a voter of the quorum.
  bool acknowledge(NodeId node, std::uint64_t index) {
    Slot* s = find(node);
    if (!s) {
      std::string message = "HighWaterMark::acknowledge: node ";
      message += std::to_string(node);
      message += " is not a voter of the quorum";
      throw std::invalid_argument(message);
    }
    if (index <= s->match) return false;
    s->match = index;
    return true;
  }

  // Forgets every match index (a new leader's term starts from no acknowledgements, Raft
  // §5.3: matchIndex is reinitialised to 0); the mark stays where it is.
  void reset_matches() noexcept {
    for (Slot& s : matches_)
      s.match = 0;
  }

  // Counts over `quorum` from now on (a membership change): a node of both keeps its match
  // index, a new one starts at 0, a node outside `quorum` is forgotten; the mark stays where
  // it is. Allocates one slot per voter.
  void reconfigure(MajorityQuorum quorum) {
    std::vector<Slot> matches;
    for (std::span<const NodeId> ids : {quorum.voters(), quorum.old_voters()}) {
      for (NodeId id : ids) {
        bool seen = false;
        for (const Slot& s : matches)
          seen = seen || s.id == id;
        if (!seen) matches.push_back({id, match(id)});
      }
    }
    matches_ = std::move(matches);
    quorum_ = std::move(quorum);
  }

  // Moves the mark to the quorum's committed index c when c is above it and `eligible(c)`
  // returns true (Raft §5.4.2: an entry of the leader's own term). Returns true when the mark
  // moved. Throws what eligible throws.
  template <class F>
  requires std::is_invocable_r_v<bool, F&, std::uint64_t>
  bool advance(F&& eligible) {
    const std::uint64_t c = quorum_.committed_index([this](NodeId id) { return match(id); });
    if (c <= value_ || !eligible(c)) return false;
    value_ = c;
    return true;
  }

  // Moves the mark to `index` when it is higher (a follower learning the leader's mark).
  // Returns true when the mark moved.
  bool follow(std::uint64_t index) noexcept {
    if (index <= value_) return false;
    value_ = index;
    return true;
  }

 private:
  struct Slot {
    NodeId id;
    std::uint64_t match;
  };

  Slot* find(NodeId id) noexcept {
    for (Slot& s : matches_) {
      if (s.id == id) return &s;
    }
    return nullptr;
  }
  const Slot* find(NodeId id) const noexcept {
    for (const Slot& s : matches_) {
      if (s.id == id) return &s;
    }
    return nullptr;
  }

  MajorityQuorum quorum_;
  std::vector<Slot> matches_;
  std::uint64_t value_;
};

}  // namespace pods

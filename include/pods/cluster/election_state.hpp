// pods/cluster/election_state.hpp — ElectionState: what the bully and ring elections both keep
//
// Problem:       The bully and ring elections differ in how they find the winner but keep the
//                same bookkeeping: a fixed group of members, the highest epoch seen, the
//                leadership a node follows as an (epoch, leader) pair compared
//                lexicographically, and, while a starting node listens, the greatest claim it
//                heard. Written twice, the two copies drift.
// Solution:      ElectionState holds that bookkeeping, with the configuration checks, for
//                BullyElection and RingElection (and for a user's own election protocol).
// Guarantees:    The members are sorted and distinct and contain self, or the constructor
//                throws. epoch() never decreases; follow() and lead() raise it to the
//                followed epoch. older(e, id) is (e, id) < (leader_epoch(), leader()).
// Not provided:  Roles, timers and messages: those are the protocol's.
// Thread safety: thread-compatible: a value type.
// Errors:        The constructor throws std::invalid_argument "<who>: members must not be
//                empty", "... must not contain a duplicate id", "... must contain self";
//                require_positive throws "<who>: <name> must be positive".
// Cost:          is_member: a binary search; everything else O(1). The constructor sorts.
// Example:
//   pods::ElectionState<std::chrono::steady_clock::time_point> state("MyElection", 2, {3, 1, 2});
//   state.observe(4);                  // a message carried epoch 4
//   state.follow(3, 4);                // follow 3's leadership of epoch 4
//   bool stale = state.older(3, 2);    // true: (3, 2) < (4, 3)
#pragma once

#include <pods/policy/transport.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods {

template <class TimePoint>
class ElectionState {
 public:
  // Keeps `members` (copied, sorted) with `self` among them; `who` names the protocol in
  // errors (a string literal). Throws std::invalid_argument naming members when they are
  // empty, hold a duplicate id or miss self.
  ElectionState(const char* who, NodeId self, std::vector<NodeId> members)
      : self_(self), members_(std::move(members)) {
    auto fail = [who](const char* rule) {
      std::string what = who;
      what += ": members must ";
      what += rule;
      throw std::invalid_argument(what);
    };
    if (members_.empty()) fail("not be empty");
    std::sort(members_.begin(), members_.end());
    if (std::adjacent_find(members_.begin(), members_.end()) != members_.end()) {
      fail("not contain a duplicate id");
    }
    if (!is_member(self_)) fail("contain self");
  }

  // Throws std::invalid_argument "<who>: <name> must be positive" unless d > 0.
  static void require_positive(const char* who, const char* name, std::chrono::nanoseconds d) {
    if (d.count() > 0) return;
    std::string what = who;
    what += ": ";
    what += name;
    what += " must be positive";
    throw std::invalid_argument(what);
  }

  NodeId self() const noexcept { return self_; }
  const std::vector<NodeId>& members() const noexcept { return members_; }
  bool is_member(NodeId id) const {
    return std::binary_search(members_.begin(), members_.end(), id);
  }

  // Raises the highest epoch seen to `e` if it is higher.
  void observe(std::uint64_t e) noexcept { epoch_ = std::max(epoch_, e); }
  // Returns a new epoch, above every one seen, and records it as seen.
  std::uint64_t next_epoch() noexcept { return ++epoch_; }
  std::uint64_t epoch() const noexcept { return epoch_; }

  // Records that this node follows `leader`'s leadership of epoch `e` (itself: lead(e)).
  void follow(NodeId leader, std::uint64_t e) noexcept {
    leader_ = leader;
    leader_epoch_ = e;
    observe(e);
  }
  void lead(std::uint64_t e) noexcept { follow(self_, e); }
  NodeId leader_id() const noexcept { return leader_; }
  std::uint64_t leader_epoch() const noexcept { return leader_epoch_; }

  // Returns true when the claim (e, id) is older than the leadership it follows.
  bool older(std::uint64_t e, NodeId id) const noexcept {
    return std::pair(e, id) < std::pair(leader_epoch_, leader_);
  }
  // Returns true when the claim (e, id) is the leadership it follows.
  bool same(std::uint64_t e, NodeId id) const noexcept {
    return e == leader_epoch_ && id == leader_;
  }

  // Records, while listening, a claim of leadership (e, leader) heard at `now`, keeping the
  // greatest.
  void hear(std::uint64_t e, NodeId leader, TimePoint now) {
    if (!heard_ || std::pair(e, leader) >= std::pair(heard_->epoch, heard_->leader)) {
      heard_ = Heard{e, leader, now};
    }
  }

  // The greatest claim heard while listening.
  struct Heard {
    std::uint64_t epoch;
    NodeId leader;
    TimePoint at;
  };

  // Returns the greatest claim heard while listening when a listener should simply follow
  // it: its leader is higher than self and nothing newer has been seen since.
  std::optional<Heard> heard_higher() const noexcept {
    if (heard_ && heard_->leader > self_ && heard_->epoch >= epoch_) return heard_;
    return std::nullopt;
  }

 private:
  NodeId self_;
  std::vector<NodeId> members_;
  std::uint64_t epoch_ = 0;         // the highest seen or used
  std::uint64_t leader_epoch_ = 0;  // the leadership it follows or holds
  NodeId leader_ = 0;
  std::optional<Heard> heard_;
};

}  // namespace pods

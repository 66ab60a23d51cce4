// pods/cluster/bully_election.hpp — Bully Election (Garcia-Molina, 1982): the highest live id leads
//
// Problem:       A group of processes needs one coordinator, and when it crashes the others
//                must notice and agree on a successor, without a consensus protocol and with
//                nothing but messages and timeouts.
// Solution:      Every node knows every member's id. The highest id that is alive wins:
//                a node that misses its leader's heartbeats for leader_timeout starts an
//                election: it sends ELECTION to every higher id and waits election_timeout.
//                A live higher node replies ANSWER (and starts its own election), and the
//                lower node then waits coordinator_timeout for the winner's announcement,
//                electing again when none comes. A node that hears no ANSWER, or that has no
//                higher member at all, declares itself: it sends COORDINATOR to everyone and
//                repeats it every heartbeat_interval as the leader's heartbeat. A node that
//                hears a COORDINATOR from a lower id bullies it: it elects itself again.
//                Epochs: each election runs in epoch = (highest epoch seen) + 1, carried by
//                every message. A node follows the announcement with the greatest
//                (epoch, id) it has seen and ignores older ones, so a delayed COORDINATOR
//                from a deposed leader cannot bring it back; a leader's epoch also serves as
//                a fencing token for what it does while leading.
//                A node that starts (or restarts: it keeps nothing) first listens, silent,
//                for leader_timeout, learning the current epoch and leader from the traffic,
//                so it never claims an epoch that a claim made while it was down used.
// Guarantees:    - Leader of an epoch: no two nodes claim leadership in the same epoch while
//                  the network loses nothing, is not partitioned, delivers within D with
//                  2D < election_timeout and D + election_timeout < leader_timeout, and no
//                  process pauses or clock steps happen (crash and restart allowed);
//                  tested at every step of seeded runs.
//                - After the faults stop (every node up and connected, delays within D), within
//                  leader_timeout + 2 * (election_timeout + coordinator_timeout) plus a few D,
//                  the highest id leads and every node follows it; tested at every step.
//                - Epochs a node uses and accepts never decrease while it lives.
// Not provided:  Safety under partitions: each side elects its own leader (the highest id it
//                can reach), by design; two nodes may also both believe they lead for up to
//                D after a takeover (the old leader learns of the new one from its
//                COORDINATOR). Use a majority quorum (ReplicatedLog, Lease) where two
//                simultaneous leaders are unsafe. Membership is fixed at construction.
// Thread safety: thread-compatible: run one node on one thread (or a SingularUpdateQueue).
// Errors:        The constructor throws std::invalid_argument naming members (empty,
//                duplicate ids, missing self) or a non-positive timeout. receive() drops and
//                counts (dropped()) a message from a non-member, from itself, or of a kind
//                its sender may not send (an ELECTION from a higher id, an ANSWER from a lower
//                one). MessageCodec::decode throws pods::CorruptionError.
// Cost:          An election sends at most n - 1 messages per node involved; a leader sends
//                n - 1 heartbeats per heartbeat_interval. No allocation per message beyond the
//                transport's; the member list is allocated once.
// Example:
//   pods::Outbox<pods::bully::Message> out;
//   pods::ManualClock clock;
//   pods::BullyElection node(3, {1, 2, 3}, out, clock);
//   clock.advance(1s);                    // the quiet period ends: 3 has no higher member
//   node.tick();                          // so it declares itself and announces it
//   bool leads = node.is_leader();        // true, in epoch node.leader_epoch() == 1
//   for (auto& [to, m] : out.take()) {}   // COORDINATOR{1} to 1 and to 2
#pragma once

#include <pods/cluster/election_state.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

namespace bully {

// "I am electing in `epoch`": sent to every higher id.
struct Election {
  std::uint64_t epoch = 0;
  friend bool operator==(const Election&, const Election&) = default;
};

// "I am alive and higher than you": the reply to an Election, echoing its epoch.
struct Answer {
  std::uint64_t epoch = 0;
  friend bool operator==(const Answer&, const Answer&) = default;
};

// "I lead in `epoch`": the winner's announcement, repeated as its heartbeat.
struct Coordinator {
  std::uint64_t epoch = 0;
  friend bool operator==(const Coordinator&, const Coordinator&) = default;
};

using Message = std::variant<Election, Answer, Coordinator>;

// The wire format: version byte 1, a kind byte (0 Election, 1 Answer, 2 Coordinator), the epoch
// as a little-endian u64. Exactly 10 bytes.
struct MessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` to `out`.
  void encode(const Message& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    std::visit([&](const auto& x) { w.u64(x.epoch); }, m);
  }

  // Returns the message encoded in `bytes`. Throws pods::CorruptionError ("bully message" at
  // the offset) on an unknown version or kind, a truncated epoch or trailing bytes.
  Message decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "bully message");
    Message m;
    switch (r.header(version, std::variant_size_v<Message>)) {
      case 0:
        m = Election{r.u64()};
        break;
      case 1:
        m = Answer{r.u64()};
        break;
      case 2:
        m = Coordinator{r.u64()};
        break;
    }
    r.expect_end();
    return m;
  }
};
static_assert(Codec<MessageCodec, Message>);

}  // namespace bully

struct BullyOptions {
  // How long a follower waits without its leader's COORDINATOR before electing; also the
  // quiet period of a node that starts.
  std::chrono::nanoseconds leader_timeout = std::chrono::milliseconds(500);
  // How long an electing node waits for an ANSWER from a higher id.
  std::chrono::nanoseconds election_timeout = std::chrono::milliseconds(200);
  // How long a node that got an ANSWER waits for the winner's COORDINATOR.
  std::chrono::nanoseconds coordinator_timeout = std::chrono::milliseconds(500);
  // How often the leader repeats its COORDINATOR.
  std::chrono::nanoseconds heartbeat_interval = std::chrono::milliseconds(100);
  // Breaks the algorithm on purpose, for tests that show the checkers catch it: the node
  // declares itself when its election times out even though a higher id answered.
  bool unsafe_ignore_answers = false;
};

template <class T, PhysicalClock Clock = SteadyClock>
requires Transport<T, bully::Message>
class BullyElection {
 public:
  using Message = bully::Message;
  using MessageCodec = bully::MessageCodec;
  using time_point = typename Clock::time_point;

  // What the node is doing.
  enum class Role {
    listening,  // the quiet period after start: it records what it hears, sends nothing
    follower,   // it follows leader()
    electing,   // it sent ELECTION to the higher ids and waits for an ANSWER
    awaiting,   // a higher id answered; it waits for the winner's COORDINATOR
    leader      // it leads in leader_epoch()
  };

  // Creates node `self` of the group `members` (copied, any order; must contain self), sending
  // through `transport` and timing with `clock` (both retained). The node starts listening.
  // Throws std::invalid_argument naming members (empty, duplicate id, self missing) or the
  // first timeout that is not positive.
  BullyElection(NodeId self, std::vector<NodeId> members, T transport, Clock clock = {},
                BullyOptions options = {})
      : state_("BullyElection", self, std::move(members)),
        self_(self),
        transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(options) {
    validate();
    deadline_ = clock_.now() + options_.leader_timeout;
  }

  // Handles one message from `from`. Sends through the transport; never throws except
  // std::bad_alloc from the transport. Drops and counts a message that breaks the protocol.
  void receive(NodeId from, const Message& m) {
    if (from == self_ || !state_.is_member(from)) {
      ++dropped_;
      return;
    }
    std::visit([&](const auto& x) { on(from, x); }, m);
  }

  // Fires what is due by the clock: the end of the quiet period, a silent leader, an election
  // or coordinator timeout, the leader's heartbeat.
  void tick() {
    const time_point now = clock_.now();
    if (now < deadline_) return;
    switch (role_) {
      case Role::listening:
        if (const auto heard = state_.heard_higher()) {
          follow(heard->leader, heard->epoch, heard->at + options_.leader_timeout);
        } else {
          start_election();
        }
        break;
      case Role::follower:
      case Role::awaiting:
        start_election();
        break;
      case Role::electing:
        become_leader();
        break;
      case Role::leader:
        broadcast(bully::Coordinator{state_.leader_epoch()});
        deadline_ = now + options_.heartbeat_interval;
        break;
    }
  }

  // Returns when tick() next has work.
  std::optional<time_point> next_deadline() const { return deadline_; }

  // Starts an election now, in a new epoch (as if the leader had gone silent). Does nothing
  // while listening.
  void start_election() {
    if (role_ == Role::listening && clock_.now() < deadline_) return;
    election_epoch_ = state_.next_epoch();
    const auto& members = state_.members();
    const auto higher = std::upper_bound(members.begin(), members.end(), self_);
    if (higher == members.end()) {
      become_leader();
      return;
    }
    role_ = Role::electing;
    for (auto it = higher; it != members.end(); ++it)
      transport_.send(*it, Message(bully::Election{election_epoch_}));
    deadline_ = clock_.now() + options_.election_timeout;
  }

  // Returns true while this node believes it leads.
  bool is_leader() const noexcept { return role_ == Role::leader; }

  // Returns the leader this node follows (itself when leading); nullopt while it listens or
  // elects.
  std::optional<NodeId> leader() const noexcept {
    if (role_ == Role::leader) return self_;
    if (role_ == Role::follower) return state_.leader_id();
    return std::nullopt;
  }

  // Returns the epoch of the leadership it believes in (its own when leading), 0 before any.
  std::uint64_t leader_epoch() const noexcept { return state_.leader_epoch(); }

  // Returns the highest epoch this node has seen or used.
  std::uint64_t epoch() const noexcept { return state_.epoch(); }

  Role role() const noexcept { return role_; }
  NodeId id() const noexcept { return self_; }

  // Returns the members, in ascending id order.
  const std::vector<NodeId>& members() const noexcept { return state_.members(); }

  // Returns how many messages were dropped as breaking the protocol.
  std::uint64_t dropped() const noexcept { return dropped_; }

  // Returns how many COORDINATOR announcements were ignored as stale (older than the
  // leadership this node already follows).
  std::uint64_t stale() const noexcept { return stale_; }

 private:
  void validate() const {
    using State = ElectionState<time_point>;
    State::require_positive("BullyElection", "leader_timeout", options_.leader_timeout);
    State::require_positive("BullyElection", "election_timeout", options_.election_timeout);
    State::require_positive("BullyElection", "coordinator_timeout", options_.coordinator_timeout);
    State::require_positive("BullyElection", "heartbeat_interval", options_.heartbeat_interval);
  }

  bool electing() const noexcept { return role_ == Role::electing || role_ == Role::awaiting; }

  void on(NodeId from, const bully::Election& m) {
    if (from > self_) {
      ++dropped_;  // elections go only upwards
      return;
    }
    state_.observe(m.epoch);
    if (role_ == Role::listening) return;
    transport_.send(from, Message(bully::Answer{m.epoch}));
    if (role_ == Role::leader && m.epoch <= state_.leader_epoch()) {
      transport_.send(from, Message(bully::Coordinator{state_.leader_epoch()}));
    } else if (!electing() || election_epoch_ < m.epoch) {
      start_election();
    }
  }

  void on(NodeId from, const bully::Answer& m) {
    if (from < self_) {
      ++dropped_;  // only higher ids answer
      return;
    }
    state_.observe(m.epoch);
    if (role_ != Role::electing || m.epoch != election_epoch_) return;  // a late answer
    if (options_.unsafe_ignore_answers) return;
    role_ = Role::awaiting;
    deadline_ = clock_.now() + options_.coordinator_timeout;
  }

  void on(NodeId from, const bully::Coordinator& m) {
    state_.observe(m.epoch);
    if (role_ == Role::listening) {
      state_.hear(m.epoch, from, clock_.now());
      return;
    }
    if (state_.older(m.epoch, from)) {
      ++stale_;
      return;
    }
    if (from < self_) {
      // A lower id claims a newer epoch than the one this node follows: bully it. (An older
      // claim was stale above; the claimant learns of this node's from its heartbeats.)
      if (!electing() || election_epoch_ <= m.epoch) start_election();
      return;
    }
    follow(from, m.epoch, clock_.now() + options_.leader_timeout);
  }

  void follow(NodeId leader, std::uint64_t e, time_point until) {
    role_ = Role::follower;
    state_.follow(leader, e);
    deadline_ = until;
  }

  void become_leader() {
    role_ = Role::leader;
    state_.lead(election_epoch_);
    broadcast(bully::Coordinator{election_epoch_});
    deadline_ = clock_.now() + options_.heartbeat_interval;
  }

  void broadcast(const bully::Coordinator& m) {
    for (NodeId id : state_.members())
      if (id != self_) transport_.send(id, Message(m));
  }

  ElectionState<time_point> state_;  // members, epochs, the leadership followed
  NodeId self_;
  T transport_;
  Clock clock_;
  BullyOptions options_;
  Role role_ = Role::listening;
  time_point deadline_{};
  std::uint64_t election_epoch_ = 0;  // the epoch of this node's latest election
  std::uint64_t dropped_ = 0;
  std::uint64_t stale_ = 0;
};

}  // namespace pods

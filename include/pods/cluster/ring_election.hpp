// pods/cluster/ring_election.hpp — Ring Election (Chang and Roberts, 1979; LeLann, 1977)
//
// Problem:       A group of processes needs one coordinator and a way to pick the next one
//                when it fails, with every node sending to one neighbour rather than to
//                everyone, and crashed neighbours in the way.
// Solution:      The members form a ring in ascending id order (the highest wraps to the
//                lowest). An election is a token that travels the ring carrying a candidate:
//                each node forwards the token with the larger of the candidate and itself,
//                and a node that has already sent its own id in this epoch swallows tokens
//                whose candidate is smaller (Chang-Roberts), so only the highest id's token
//                survives. When a node receives the token carrying its own id, it has been
//                seen by every live node: it is elected, and an ELECTED token travels the
//                ring once to announce it. Every hop is acknowledged; a node whose successor
//                does not acknowledge within hop_timeout skips it and tries the next one
//                (the crashed successor is bypassed), and a node that finds nobody left
//                elects itself. The leader sends a HEARTBEAT to every member each
//                heartbeat_interval; a node that hears none for leader_timeout, or whose
//                election produces no result within election_timeout, starts a new election.
//                Epochs: an election runs in epoch = (highest epoch seen) + 1, carried by
//                every token and heartbeat. A node follows the leadership with the greatest
//                (epoch, id) it has seen and ignores older tokens and heartbeats; a node that
//                learns of a leader lower than itself (it was skipped) starts a new election.
//                A node that starts (or restarts: it keeps nothing) first listens, silent and
//                unacknowledging, for leader_timeout, so the ring skips it until it has
//                learned the current epoch.
// Guarantees:    - Leader of an epoch: no two nodes lead the same epoch while the network loses
//                  nothing, is not partitioned, delivers within D with 2D < hop_timeout and
//                  n * (hop_timeout + D) + heartbeat_interval + D < leader_timeout, and no
//                  process pauses or clock steps happen (crash and restart allowed); tested
//                  at every step of seeded runs.
//                - After the faults stop (every node up and connected), within
//                  leader_timeout + 2 * election_timeout plus a few hops, the highest id leads
//                  and every node follows it; tested at every step.
//                - Epochs a node uses and accepts never decrease while it lives.
// Not provided:  Safety under partitions: the ring skips the unreachable nodes, so each side
//                elects its own leader, like the bully algorithm. Two nodes may both believe
//                they lead for up to one heartbeat delay after a takeover. Membership is fixed
//                at construction.
// Thread safety: thread-compatible: run one node on one thread (or a SingularUpdateQueue).
// Errors:        The constructor throws std::invalid_argument naming members (empty,
//                duplicate ids, missing self) or a non-positive timeout. receive() drops and
//                counts (dropped()) a message from a non-member or itself, or naming a
//                candidate or leader that is not a member. MessageCodec::decode throws
//                pods::CorruptionError.
// Cost:          An election without crashes takes at most 2n hops of the token plus n hops
//                of the announcement, one message and one acknowledgement each; a leader
//                sends n - 1 heartbeats per heartbeat_interval. Each hop awaiting its
//                acknowledgement holds one pending entry (a vector, allocated as it grows).
// Example:
//   pods::Outbox<pods::ring::Message> out;
//   pods::ManualClock clock;
//   pods::RingElection node(2, {1, 2, 3}, out, clock);
//   clock.advance(1s);                       // the quiet period ends
//   node.tick();                             // ELECTION{epoch 1, candidate 2} to 3
//   auto sent = out.take();
//   node.receive(3, pods::ring::Ack{pods::ring::hop_of(sent[0].message)});
// Example context: #include <pods/policy/clock.hpp>
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

namespace ring {

// The election token: the best candidate so far in `epoch`. `hop` numbers this send for its
// acknowledgement.
struct Election {
  std::uint64_t epoch = 0;
  NodeId candidate = 0;
  std::uint64_t hop = 0;
  friend bool operator==(const Election&, const Election&) = default;
};

// The announcement token: `leader` won `epoch`.
struct Elected {
  std::uint64_t epoch = 0;
  NodeId leader = 0;
  std::uint64_t hop = 0;
  friend bool operator==(const Elected&, const Elected&) = default;
};

// The acknowledgement of the token sent with number `hop`.
struct Ack {
  std::uint64_t hop = 0;
  friend bool operator==(const Ack&, const Ack&) = default;
};

// The leader's heartbeat, sent directly to every member.
struct Heartbeat {
  std::uint64_t epoch = 0;
  friend bool operator==(const Heartbeat&, const Heartbeat&) = default;
};

using Message = std::variant<Election, Elected, Ack, Heartbeat>;

// Returns the hop number of a token, 0 for other messages.
inline std::uint64_t hop_of(const Message& m) noexcept {
  if (const auto* e = std::get_if<Election>(&m)) return e->hop;
  if (const auto* e = std::get_if<Elected>(&m)) return e->hop;
  return 0;
}

// The wire format: version byte 1, a kind byte (0 Election, 1 Elected, 2 Ack, 3 Heartbeat),
// then the fields in declaration order as little-endian u64s.
struct MessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` to `out`.
  void encode(const Message& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<X, Election>) {
            w.u64(x.epoch), w.u64(x.candidate), w.u64(x.hop);
          } else if constexpr (std::is_same_v<X, Elected>) {
            w.u64(x.epoch), w.u64(x.leader), w.u64(x.hop);
          } else if constexpr (std::is_same_v<X, Ack>) {
            w.u64(x.hop);
          } else {
            w.u64(x.epoch);
          }
        },
        m);
  }

  // Returns the message encoded in `bytes`. Throws pods::CorruptionError ("ring message" at the
  // offset) on an unknown version or kind, a truncated field or trailing bytes.
  Message decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "ring message");
    Message m;
    switch (r.header(version, std::variant_size_v<Message>)) {
      case 0: {
        Election e;
        e.epoch = r.u64(), e.candidate = r.u64(), e.hop = r.u64();
        m = e;
        break;
      }
      case 1: {
        Elected e;
        e.epoch = r.u64(), e.leader = r.u64(), e.hop = r.u64();
        m = e;
        break;
      }
      case 2:
        m = Ack{r.u64()};
        break;
      case 3:
        m = Heartbeat{r.u64()};
        break;
    }
    r.expect_end();
    return m;
  }
};
static_assert(Codec<MessageCodec, Message>);

}  // namespace ring

struct RingOptions {
  // How long a follower waits without its leader's heartbeat before electing; also the quiet
  // period of a node that starts.
  std::chrono::nanoseconds leader_timeout = std::chrono::seconds(1);
  // How long a node waits for a successor to acknowledge a token before skipping it.
  std::chrono::nanoseconds hop_timeout = std::chrono::milliseconds(100);
  // How long a node in an election waits for its result before starting a new one.
  std::chrono::nanoseconds election_timeout = std::chrono::seconds(1);
  // How often the leader sends its heartbeat.
  std::chrono::nanoseconds heartbeat_interval = std::chrono::milliseconds(100);
  // Breaks the algorithm on purpose, for tests that show the checkers catch it: a node that
  // has sent its own id forwards smaller candidates too, instead of swallowing them, so a
  // token can pass a larger live id and come home.
  bool unsafe_forward_smaller = false;
};

template <class T, PhysicalClock Clock = SteadyClock>
requires Transport<T, ring::Message>
class RingElection {
 public:
  using Message = ring::Message;
  using MessageCodec = ring::MessageCodec;
  using time_point = typename Clock::time_point;

  enum class Role {
    listening,  // the quiet period after start: it records what it hears, answers nothing
    follower,   // it follows leader()
    electing,   // it has a token of the current epoch out
    leader      // it leads in leader_epoch()
  };

  // Creates node `self` of the ring `members` (copied, any order; must contain self), sending
  // through `transport` and timing with `clock` (both retained). The node starts listening.
  // Throws std::invalid_argument naming members (empty, duplicate id, self missing) or the
  // first timeout that is not positive.
  RingElection(NodeId self, std::vector<NodeId> members, T transport, Clock clock = {},
               RingOptions options = {})
      : state_("RingElection", self, std::move(members)),
        self_(self),
        transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(options) {
    validate();
    const auto& ids = state_.members();
    position_ =
        static_cast<std::size_t>(std::lower_bound(ids.begin(), ids.end(), self_) - ids.begin());
    deadline_ = clock_.now() + options_.leader_timeout;
  }

  // Handles one message from `from`: acknowledges a token (unless listening), then applies the
  // ring rules. Sends through the transport. Drops and counts a malformed message.
  void receive(NodeId from, const Message& m) {
    if (from == self_ || !state_.is_member(from)) {
      ++dropped_;
      return;
    }
    std::visit([&](const auto& x) { on(from, x); }, m);
  }

  // Fires what is due: the end of the quiet period, a silent leader, an election without
  // result, an unacknowledged hop (skipping that successor), the leader's heartbeat.
  void tick() {
    const time_point now = clock_.now();
    retry_hops(now);
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
      case Role::electing:
        start_election();
        break;
      case Role::leader:
        broadcast_heartbeat();
        deadline_ = now + options_.heartbeat_interval;
        break;
    }
  }

  // Returns when tick() next has work.
  std::optional<time_point> next_deadline() const {
    time_point next = deadline_;
    for (const Pending& p : pending_)
      next = std::min(next, p.deadline);
    return next;
  }

  // Starts an election now, in a new epoch. Does nothing while listening.
  void start_election() {
    if (role_ == Role::listening && clock_.now() < deadline_) return;
    round_ = state_.next_epoch();
    participant_ = true;
    role_ = Role::electing;
    deadline_ = clock_.now() + options_.election_timeout;
    forward(Message(ring::Election{round_, self_, 0}));
  }

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
  const std::vector<NodeId>& members() const noexcept { return state_.members(); }

  // Returns how many messages were dropped as malformed.
  std::uint64_t dropped() const noexcept { return dropped_; }

  // Returns how many successors were skipped after a hop timeout.
  std::uint64_t skipped() const noexcept { return skipped_; }

  // Returns how many tokens and heartbeats were ignored as older than what it follows.
  std::uint64_t stale() const noexcept { return stale_; }

 private:
  struct Pending {
    std::uint64_t hop;
    std::size_t target;  // index into members()
    Message message;     // hop field as sent
    time_point deadline;
  };

  void validate() const {
    using State = ElectionState<time_point>;
    State::require_positive("RingElection", "leader_timeout", options_.leader_timeout);
    State::require_positive("RingElection", "hop_timeout", options_.hop_timeout);
    State::require_positive("RingElection", "election_timeout", options_.election_timeout);
    State::require_positive("RingElection", "heartbeat_interval", options_.heartbeat_interval);
  }

  void on(NodeId from, const ring::Election& m) {
    if (!state_.is_member(m.candidate)) {
      ++dropped_;
      return;
    }
    state_.observe(m.epoch);
    if (role_ == Role::listening) return;
    transport_.send(from, Message(ring::Ack{m.hop}));
    if (m.epoch < round_ || m.epoch <= state_.leader_epoch()) {
      ++stale_;
      return;
    }
    if (m.epoch > round_) {
      round_ = m.epoch;
      participant_ = false;
    }
    if (m.candidate == self_) {
      become_leader(m.epoch);
    } else if (m.candidate > self_) {
      enter_election();
      forward(Message(ring::Election{m.epoch, m.candidate, 0}));
    } else if (!participant_) {
      enter_election();
      forward(Message(ring::Election{m.epoch, self_, 0}));
    } else if (options_.unsafe_forward_smaller) {
      forward(Message(ring::Election{m.epoch, m.candidate, 0}));
    }
    participant_ = participant_ || m.candidate != self_;
  }

  void on(NodeId from, const ring::Elected& m) {
    if (!state_.is_member(m.leader)) {
      ++dropped_;
      return;
    }
    state_.observe(m.epoch);
    if (role_ == Role::listening) {
      state_.hear(m.epoch, m.leader, clock_.now());
      return;
    }
    transport_.send(from, Message(ring::Ack{m.hop}));
    if (m.leader == self_) return;  // the announcement has gone round
    if (state_.older(m.epoch, m.leader) || state_.same(m.epoch, m.leader)) {
      ++stale_;
      return;
    }
    follow(m.leader, m.epoch, clock_.now() + options_.leader_timeout);
    forward(Message(ring::Elected{m.epoch, m.leader, 0}));
    if (m.leader < self_) start_election();  // it was skipped: rejoin the ring
  }

  void on(NodeId from, const ring::Ack& m) {
    std::erase_if(pending_, [&](const Pending& p) {
      return p.hop == m.hop && state_.members()[p.target] == from;
    });
  }

  void on(NodeId from, const ring::Heartbeat& m) {
    state_.observe(m.epoch);
    if (role_ == Role::listening) {
      state_.hear(m.epoch, from, clock_.now());
      return;
    }
    if (state_.older(m.epoch, from)) {
      ++stale_;
      return;
    }
    const bool newer = !state_.same(m.epoch, from);
    if (role_ == Role::electing && !newer) return;
    follow(from, m.epoch, clock_.now() + options_.leader_timeout);
    if (newer && from < self_) start_election();
  }

  void enter_election() {
    if (role_ == Role::electing) return;
    role_ = Role::electing;
    deadline_ = clock_.now() + options_.election_timeout;
  }

  void follow(NodeId leader, std::uint64_t e, time_point until) {
    role_ = Role::follower;
    state_.follow(leader, e);
    deadline_ = until;
  }

  void become_leader(std::uint64_t e) {
    if (role_ == Role::leader && state_.leader_epoch() == e) return;  // a duplicated token
    role_ = Role::leader;
    state_.lead(e);
    forward(Message(ring::Elected{e, self_, 0}));
    broadcast_heartbeat();
    deadline_ = clock_.now() + options_.heartbeat_interval;
  }

  void broadcast_heartbeat() {
    for (NodeId id : state_.members())
      if (id != self_) transport_.send(id, Message(ring::Heartbeat{state_.leader_epoch()}));
  }

  // Sends a token to the successor, recording it until acknowledged.
  void forward(Message m) { send_to((position_ + 1) % state_.members().size(), std::move(m)); }

  void send_to(std::size_t target, Message m) {
    if (target == position_) {
      arrived_home(m);
      return;
    }
    const std::uint64_t hop = ++hops_;
    std::visit(
        [&](auto& x) {
          if constexpr (requires { x.hop; }) x.hop = hop;
        },
        m);
    transport_.send(state_.members()[target], m);
    pending_.push_back(Pending{hop, target, std::move(m), clock_.now() + options_.hop_timeout});
  }

  // Every other member was skipped: the token is back at its sender.
  void arrived_home(const Message& m) {
    if (const auto* e = std::get_if<ring::Election>(&m)) {
      if (e->epoch == round_ && e->epoch > state_.leader_epoch()) become_leader(e->epoch);
    }
  }

  void retry_hops(time_point now) {
    std::vector<Pending> due;
    std::erase_if(pending_, [&](Pending& p) {
      if (p.deadline > now) return false;
      due.push_back(std::move(p));
      return true;
    });
    for (Pending& p : due) {
      ++skipped_;
      send_to((p.target + 1) % state_.members().size(), std::move(p.message));
    }
  }

  ElectionState<time_point> state_;  // members, epochs, the leadership followed
  NodeId self_;
  T transport_;
  Clock clock_;
  RingOptions options_;
  std::size_t position_ = 0;
  Role role_ = Role::listening;
  time_point deadline_{};
  std::uint64_t round_ = 0;   // the epoch of the election it takes part in
  bool participant_ = false;  // it has sent a token with a candidate >= itself in round_
  std::uint64_t hops_ = 0;
  std::vector<Pending> pending_;
  std::uint64_t dropped_ = 0;
  std::uint64_t skipped_ = 0;
  std::uint64_t stale_ = 0;
};

}  // namespace pods

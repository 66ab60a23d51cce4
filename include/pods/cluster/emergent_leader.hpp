// pods/cluster/emergent_leader.hpp — Emergent Leader: the oldest live member coordinates
//
// Problem:       A cluster needs one node to make cluster-wide decisions (who owns which
//                partition, who admits new members), and running an election every time a
//                node comes or goes is slow and easy to get wrong.
// Solution:      Order the members by when they joined and let the oldest one that is alive
//                be the coordinator. Nobody votes: every node computes the same answer from
//                the same membership list, so leadership emerges from the list itself (how
//                Hazelcast picks its master, and where Akka places a cluster singleton).
//                  - Joining: the founding node (options.bootstrap) starts the list with itself
//                    at generation 1. Any other node sends JOIN to a seed (options.seeds, in
//                    turn) and then to the coordinator named in the list it gets back; the
//                    coordinator appends it at generation max + 1, so generations follow join
//                    order, and the list spreads from there.
//                  - Dissemination and liveness: every member sends its whole list (MEMBERS)
//                    to every member it knows each heartbeat_interval; the list doubles as a
//                    heartbeat fed to a FailureDetector per member (TimeoutDetector by default,
//                    or PhiAccrualDetector, from <pods/cluster/heartbeat.hpp>). Lists merge by
//                    union, keeping each id's latest join, so views converge once messages flow.
//                  - Incarnations: each start of a node draws a nonce (from options.seed), sent
//                    with every message. A restarted node is a new incarnation: its old entry
//                    stops counting as alive the moment a message with the new nonce arrives,
//                    and it joins again as the youngest member.
//                The coordinator is the member with the least (generation, id) that is this
//                node itself (once joined) or that its detector does not suspect.
// Guarantees:    - The same list and the same suspicions give the same coordinator and the same
//                  members() order on every node (a pure function of them).
//                - At most one node claims to coordinate at any instant, while the network
//                  loses nothing, is not partitioned, delivers within D and the detector's
//                  timeout exceeds heartbeat_interval + D, with no pauses or clock steps
//                  (crash and restart allowed): only a dead coordinator is ever suspected, and
//                  a joining node is younger than every live member. Tested at every step.
//                - After the faults stop, within a bound the tests assert, every node is a
//                  member, all hold the same list, and all name the same single coordinator.
// Not provided:  Safety under partitions: each side's oldest live member coordinates (a
//                minority side too); use a majority quorum where that matters. Removal of dead
//                members: their entries stay in the list, suspected (a restarted node reuses
//                its id's entry). Scale: the list travels whole, n - 1 messages of n entries
//                per node per interval; for hundreds of nodes use gossip dissemination.
// Thread safety: thread-compatible: run one node on one thread (or a SingularUpdateQueue).
// Errors:        The constructor throws std::invalid_argument naming heartbeat_interval (not
//                positive) or seeds (empty for a node that does not bootstrap). receive() drops
//                and counts (dropped()) a message from itself, and a MEMBERS list with a
//                duplicate id, a zero generation, or without its sender's own entry.
//                MessageCodec::decode throws pods::CorruptionError.
// Cost:          tick(): n - 1 sends of the list (n entries of 24 bytes each); receive(): a
//                check and a merge in O(n^2) for n entries (lists of tens of members), and one
//                detector update; coordinator() and members(): O(n) detector queries.
//                members() allocates its result. One detector is kept per distinct sender id.
// Example:
//   pods::Outbox<pods::emergent::Message> out;
//   pods::ManualClock clock;
//   pods::EmergentLeader node(1, out, clock, {.seeds = {1}, .bootstrap = true});
//   bool leads = node.is_coordinator();              // true: it is the only member
//   node.receive(2, pods::emergent::Join{.nonce = 77});
//   std::vector<pods::NodeId> order = node.members();  // {1, 2}: join order
//   pods::NodeId owner = order[partition % order.size()];
// Example context: inline std::size_t partition = 5;
#pragma once

#include <pods/cluster/heartbeat.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/random.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

namespace emergent {

// One entry of the membership list: node `id` joined at `generation` in the incarnation whose
// nonce is `nonce`.
struct Member {
  NodeId id = 0;
  std::uint64_t generation = 0;
  std::uint64_t nonce = 0;
  friend bool operator==(const Member&, const Member&) = default;
};

// "Admit me": sent by a node that is not (or no longer) in the list.
struct Join {
  std::uint64_t nonce = 0;  // the sender's incarnation
  friend bool operator==(const Join&, const Join&) = default;
};

// The sender's whole list, in join order; also its heartbeat.
struct Members {
  std::uint64_t nonce = 0;  // the sender's incarnation
  std::vector<Member> members;
  friend bool operator==(const Members&, const Members&) = default;
};

using Message = std::variant<Join, Members>;

// The wire format: version byte 1, a kind byte (0 Join, 1 Members), the nonce as a u64, and for
// Members a u32 count followed by (id, generation, nonce) u64 triples. All little-endian.
struct MessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` to `out`.
  void encode(const Message& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    if (const auto* j = std::get_if<Join>(&m)) {
      w.u64(j->nonce);
      return;
    }
    const auto& list = std::get<Members>(m);
    w.u64(list.nonce);
    w.count(list.members.size());
    for (const Member& e : list.members) {
      w.u64(e.id);
      w.u64(e.generation);
      w.u64(e.nonce);
    }
  }

  // Returns the message encoded in `bytes`. Throws pods::CorruptionError ("emergent leader
  // message" at the offset) on an unknown version or kind, a truncated field, a count larger
  // than the bytes left can hold, or trailing bytes. Allocates the list.
  Message decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "emergent leader message");
    const std::size_t kind = r.header(version, std::variant_size_v<Message>);
    const std::uint64_t nonce = r.u64();
    Message m;
    if (kind == 0) {
      m = Join{nonce};
    } else {
      Members list{nonce, {}};
      list.members.resize(r.count(24));
      for (Member& e : list.members) {
        e.id = r.u64();
        e.generation = r.u64();
        e.nonce = r.u64();
      }
      m = std::move(list);
    }
    r.expect_end();
    return m;
  }
};
static_assert(Codec<MessageCodec, Message>);

}  // namespace emergent

struct EmergentLeaderOptions {
  // Whom a joining node asks first, in turn (itself is skipped). Required unless bootstrap.
  std::vector<NodeId> seeds{};
  // This node founds the cluster: it starts as its only member, at generation 1. Set it on
  // one node's first start only (a restarted founder joins like everyone else).
  bool bootstrap = false;
  // How often a member sends its list to every member (and a joining node retries).
  std::chrono::nanoseconds heartbeat_interval = std::chrono::milliseconds(100);
  // Seeds the incarnation nonce: give each start of a node a different seed.
  std::uint64_t seed = 0;
  // Breaks the rule on purpose, for tests that show the checkers catch it: the node counts
  // its own entry as alive before it has joined in this incarnation (a restarted node then
  // claims its old place as the oldest member).
  bool unsafe_claim_before_join = false;
};

template <class T, PhysicalClock Clock = SteadyClock,
          FailureDetector Detector = TimeoutDetector<Clock>>
requires Transport<T, emergent::Message> &&
    std::same_as<typename Detector::time_point, typename Clock::time_point>
class EmergentLeader {
 public:
  using Message = emergent::Message;
  using MessageCodec = emergent::MessageCodec;
  using Member = emergent::Member;
  using time_point = typename Clock::time_point;

  // Creates node `self` sending through `transport`, timing with `clock` and judging each
  // member with a copy of `detector` (all retained). Throws std::invalid_argument naming
  // heartbeat_interval when it is not positive, or seeds when it is empty without bootstrap.
  EmergentLeader(NodeId self, T transport, Clock clock = {}, EmergentLeaderOptions options = {},
                 Detector detector = Detector{})
      : self_(self),
        transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(std::move(options)),
        prototype_(std::move(detector)) {
    if (options_.heartbeat_interval.count() <= 0) {
      throw std::invalid_argument("EmergentLeader: heartbeat_interval must be positive");
    }
    if (options_.seeds.empty() && !options_.bootstrap) {
      throw std::invalid_argument("EmergentLeader: seeds must not be empty unless bootstrap");
    }
    Random random(options_.seed);
    nonce_ = random.next() | 1;  // never 0, the value of "no incarnation"
    if (options_.bootstrap) {
      list_.push_back(Member{self_, 1, nonce_});
      highest_generation_ = 1;
      joined_ = true;
    }
    next_tick_ = clock_.now();
  }

  // Handles one message from `from`: a JOIN (the coordinator admits the sender; any member
  // answers with its list) or a MEMBERS list (merged into this node's). Sends through the
  // transport. Drops and counts a malformed message.
  void receive(NodeId from, const Message& m) {
    if (from == self_) {
      ++dropped_;
      return;
    }
    if (const auto* join = std::get_if<emergent::Join>(&m)) {
      on_join(from, *join);
    } else {
      on_members(from, std::get<emergent::Members>(m));
    }
  }

  // Sends what is due: the list to every other member once joined, else a JOIN.
  void tick() {
    const time_point now = clock_.now();
    if (now < next_tick_) return;
    next_tick_ = now + options_.heartbeat_interval;
    if (joined_) {
      for (const Member& e : list_)
        if (e.id != self_) transport_.send(e.id, Message(emergent::Members{nonce_, list_}));
      return;
    }
    transport_.send(join_target(), Message(emergent::Join{nonce_}));
  }

  // Returns when tick() next has work.
  std::optional<time_point> next_deadline() const { return next_tick_; }

  // Returns the coordinator by this node's view: the live member with the least
  // (generation, id); nullopt when it knows none.
  std::optional<NodeId> coordinator() const {
    const time_point now = clock_.now();
    for (const Member& e : list_)
      if (alive(e, now)) return e.id;
    return std::nullopt;
  }

  // Returns true while this node is a member and is the coordinator by its own view.
  bool is_coordinator() const {
    return (joined_ || options_.unsafe_claim_before_join) && coordinator() == self_;
  }

  // Returns the live members in join order (the order partitions are assigned in). Allocates.
  std::vector<NodeId> members() const {
    const time_point now = clock_.now();
    std::vector<NodeId> out;
    for (const Member& e : list_)
      if (alive(e, now)) out.push_back(e.id);
    return out;
  }

  // Returns the whole list, live and suspected, in join order.
  const std::vector<Member>& list() const noexcept { return list_; }

  // Returns true once this incarnation is in the list.
  bool joined() const noexcept { return joined_; }

  // Returns this incarnation's generation (its place in join order), 0 before it joined.
  std::uint64_t generation() const {
    for (const Member& e : list_)
      if (e.id == self_ && e.nonce == nonce_) return e.generation;
    return 0;
  }

  // Returns this incarnation's nonce.
  std::uint64_t nonce() const noexcept { return nonce_; }

  NodeId id() const noexcept { return self_; }

  // Returns how many messages were dropped as malformed.
  std::uint64_t dropped() const noexcept { return dropped_; }

 private:
  struct Heard {
    std::uint64_t nonce;
    Detector detector;
  };

  static bool join_order(const Member& a, const Member& b) noexcept {
    return std::tie(a.generation, a.id) < std::tie(b.generation, b.id);
  }

  bool alive(const Member& e, time_point now) const {
    if (e.id == self_) return e.nonce == nonce_ || options_.unsafe_claim_before_join;
    auto it = heard_.find(e.id);
    return it != heard_.end() && it->second.nonce == e.nonce && !it->second.detector.suspected(now);
  }

  // Records a sign of life of incarnation `nonce` of `from`; a new nonce replaces the old one.
  void hear(NodeId from, std::uint64_t nonce) {
    const time_point now = clock_.now();
    auto it = heard_.find(from);
    if (it == heard_.end() || it->second.nonce != nonce) {
      Heard fresh{nonce, prototype_};
      fresh.detector.reset(now);
      heard_.insert_or_assign(from, std::move(fresh));
    } else {
      it->second.detector.heartbeat(now);
    }
  }

  NodeId join_target() {
    // Once the list names a live coordinator other than itself, ask it; otherwise the seeds.
    if (auto c = coordinator(); c && *c != self_) return *c;
    for (std::size_t tries = 0; tries < options_.seeds.size(); ++tries) {
      const NodeId seed = options_.seeds[next_seed_++ % options_.seeds.size()];
      if (seed != self_) return seed;
    }
    return options_.seeds.front();
  }

  void on_join(NodeId from, const emergent::Join& m) {
    hear(from, m.nonce);
    if (!joined_) return;
    if (is_coordinator()) {
      auto it =
          std::find_if(list_.begin(), list_.end(), [&](const Member& e) { return e.id == from; });
      if (it == list_.end() || it->nonce != m.nonce) {
        if (it != list_.end()) list_.erase(it);
        // The youngest. Generations are never reused, so the new entry outranks every
        // entry that id ever had.
        list_.push_back(Member{from, ++highest_generation_, m.nonce});
      }
    }
    transport_.send(from, Message(emergent::Members{nonce_, list_}));
  }

  void on_members(NodeId from, const emergent::Members& m) {
    if (!well_formed(from, m)) {
      ++dropped_;
      return;
    }
    for (const Member& e : m.members) {
      auto it =
          std::find_if(list_.begin(), list_.end(), [&](const Member& x) { return x.id == e.id; });
      highest_generation_ = std::max(highest_generation_, e.generation);
      if (it == list_.end()) {
        list_.push_back(e);
      } else if (std::tie(e.generation, e.nonce) > std::tie(it->generation, it->nonce)) {
        *it = e;  // a later join of that id
      }
    }
    std::sort(list_.begin(), list_.end(), join_order);
    hear(from, m.nonce);
    joined_ = generation() != 0;
  }

  // A list is well formed when every id appears once with a non-zero generation and the
  // sender's own incarnation is in it.
  bool well_formed(NodeId from, const emergent::Members& m) const {
    bool has_sender = false;
    for (std::size_t i = 0; i < m.members.size(); ++i) {
      const Member& e = m.members[i];
      if (e.generation == 0) return false;
      for (std::size_t j = 0; j < i; ++j)
        if (m.members[j].id == e.id) return false;
      has_sender = has_sender || (e.id == from && e.nonce == m.nonce);
    }
    return has_sender;
  }

  NodeId self_;
  T transport_;
  Clock clock_;
  EmergentLeaderOptions options_;
  Detector prototype_;
  std::uint64_t nonce_ = 0;
  std::vector<Member> list_;              // in join order: (generation, id)
  std::uint64_t highest_generation_ = 0;  // the highest ever seen or assigned
  std::unordered_map<NodeId, Heard> heard_;
  bool joined_ = false;
  time_point next_tick_{};
  std::size_t next_seed_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace pods

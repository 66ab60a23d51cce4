// pods/replication/paxos.hpp — Paxos: single-decree consensus (prepare, accept, commit)
//
// Problem:       Several servers must agree on one value (who leads, which command goes in
//                a slot) while any minority may crash, restart from disk, pause or be cut
//                off, and messages are lost, duplicated and reordered. A server cannot wait
//                for everyone, and two proposers acting on what they saw alone can decide
//                different values.
// Solution:      Lamport's Paxos ("Paxos Made Simple", 2001). Every node is an acceptor, a
//                proposer and a learner. A proposer picks a ballot (generation, node id) above
//                every ballot it has seen, from a GenerationClock, so no two proposers share
//                one, and runs two phases against a MajorityQuorum of acceptors:
//                  1. prepare(b): an acceptor promises to ignore ballots below b and returns
//                     the highest-ballot value it has accepted (section 2.2, phase 1);
//                  2. accept(b, v): with promises from a majority, the proposer proposes the
//                     value of the highest-ballot accepted value among them, or its own value
//                     when none reported one; an acceptor accepts unless it promised a higher
//                     ballot (section 2.2, phase 2).
//                A value accepted by a majority in one ballot is chosen; the proposer learns
//                it and tells every node with a commit message (section 2.3, learning). An
//                acceptor makes its promise and its accepted value durable (appended to a
//                WriteAheadLog and synced) before it answers, so a restarted acceptor keeps
//                its word. A round that stalls (lost messages, a higher ballot seen) is
//                retried with a higher ballot after a timeout jittered from pods::Random, so
//                duelling proposers stop colliding.
// Guarantees:    Agreement: no two nodes learn different values, across crashes that keep
//                synced bytes (MemoryStorage::crash(tear) included). Validity: a learned value
//                is one some node proposed. Every ballot this node sends is at most its own
//                durable promise, so a restarted proposer never reuses one. The callback of
//                propose runs exactly once: with the chosen value (which may be another
//                node's) or with Errc::timeout after max_attempts rounds.
// Not provided:  Progress under permanent duelling or without a live majority (FLP: Paxos is
//                safe always and live only when one proposer runs alone long enough). A node
//                that proposes nothing learns only from a commit message it receives; a lost
//                commit is repaired when the node proposes (acceptors that know the chosen
//                value answer with it). Membership changes. Multi-Paxos: see paxos_log.hpp.
// Thread safety: thread-compatible: one thread (or a SingularUpdateQueue) drives an object.
// Errors:        Bad options throw std::invalid_argument naming the option. propose while a
//                proposal is running calls back Errc::full. A malformed message (zero or
//                foreign ballot, unknown sender, a promise that reports a value without a
//                ballot or one above its own) is dropped and counted in dropped().
//                PaxosMessageCodec::decode throws pods::CorruptionError naming the offset; a
//                corrupt record in storage throws CorruptionError naming the segment.
// Cost:          A decision without contention: 2 message rounds (4 n messages plus n
//                commits), two storage syncs per acceptor. Each message allocates its value.
// Example:
//   pods::ManualClock clock;
//   pods::Outbox<pods::PaxosMessage> out;
//   pods::Paxos node(out, clock, pods::MemoryStorage{},
//                    pods::PaxosOptions{.id = 1, .members = {1, 2, 3}});
//   node.propose(std::vector<std::byte>{std::byte{7}}, [](pods::Outcome<pods::PaxosValue> v) {
//     if (v) std::printf("chosen %zu bytes\n", v->size());
//   });
//   for (auto& sent : out.take()) std::printf("to %llu: %zu\n",
//       static_cast<unsigned long long>(sent.to), sent.message.index());
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: #include <cstdio>
#pragma once

#include <pods/cluster/majority_quorum.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/random.hpp>
#include <pods/policy/storage.hpp>
#include <pods/policy/threading.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>
#include <pods/storage/write_ahead_log.hpp>
#include <pods/time/generation_clock.hpp>

#include <algorithm>
#include <chrono>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

// A user value: the bytes being agreed on.
using PaxosValue = std::vector<std::byte>;

// A ballot (Lamport's "proposal number"): a generation from the proposer's GenerationClock,
// then the proposer's id, so two proposers never share a ballot. Ordered lexicographically;
// Ballot{} (generation 0) is "none" and below every real ballot.
struct Ballot {
  std::uint64_t generation = 0;
  NodeId node = 0;

  friend auto operator<=>(const Ballot&, const Ballot&) = default;
  friend bool operator==(const Ballot&, const Ballot&) = default;
};

// ---- Messages -------------------------------------------------------------------------------

// Proposer -> acceptor: phase 1a. Promise to ignore ballots below `ballot`.
struct PaxosPrepare {
  Ballot ballot;
  friend bool operator==(const PaxosPrepare&, const PaxosPrepare&) = default;
};

// Acceptor -> proposer: phase 1b. I promise `ballot`; the value I accepted last, at
// `accepted_ballot` (nullopt and Ballot{} when none).
struct PaxosPromise {
  Ballot ballot;
  Ballot accepted_ballot;
  std::optional<PaxosValue> accepted_value;
  friend bool operator==(const PaxosPromise&, const PaxosPromise&) = default;
};

// Proposer -> acceptor: phase 2a. Accept `value` at `ballot`.
struct PaxosAccept {
  Ballot ballot;
  PaxosValue value;
  friend bool operator==(const PaxosAccept&, const PaxosAccept&) = default;
};

// Acceptor -> proposer: phase 2b. I accepted the value of `ballot`.
struct PaxosAccepted {
  Ballot ballot;
  friend bool operator==(const PaxosAccepted&, const PaxosAccepted&) = default;
};

// Acceptor -> proposer: I refuse `ballot`, having promised `promised` (higher).
struct PaxosNack {
  Ballot ballot;
  Ballot promised;
  friend bool operator==(const PaxosNack&, const PaxosNack&) = default;
};

// Proposer or any node that knows it -> learner: `value` is chosen.
struct PaxosCommit {
  PaxosValue value;
  friend bool operator==(const PaxosCommit&, const PaxosCommit&) = default;
};

using PaxosMessage =
    std::variant<PaxosPrepare, PaxosPromise, PaxosAccept, PaxosAccepted, PaxosNack, PaxosCommit>;

namespace detail {

inline void write_ballot(wire::Writer& w, const Ballot& b) {
  w.u64(b.generation);
  w.u64(b.node);
}

inline Ballot read_ballot(wire::Reader& r) {
  Ballot b;
  b.generation = r.u64();
  b.node = r.u64();
  return b;
}

inline void write_optional_value(wire::Writer& w, const std::optional<PaxosValue>& v) {
  w.boolean(v.has_value());
  if (v) w.bytes(*v);
}

inline std::optional<PaxosValue> read_optional_value(wire::Reader& r) {
  if (!r.boolean()) return std::nullopt;
  return r.bytes();
}

}  // namespace detail

// PaxosMessageCodec: a Codec<PaxosMessage>. Layout: a version byte (1), a tag byte (the
// variant index), then the fields in declaration order: a ballot as two little-endian u64
// (generation, node), a value as a u32 length and its bytes, an optional value as a bool
// byte (0 or 1) and, when 1, the value. Canonical: one encoding per message.
struct PaxosMessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` to `out`. Allocates as `out` grows.
  void encode(const PaxosMessage& m, Buffer& out) const {
    wire::Writer w(out);
    w.u8(version);
    w.u8(static_cast<std::uint8_t>(m.index()));
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_same_v<X, PaxosPrepare> || std::is_same_v<X, PaxosAccepted>) {
            detail::write_ballot(w, x.ballot);
          } else if constexpr (std::is_same_v<X, PaxosPromise>) {
            detail::write_ballot(w, x.ballot);
            detail::write_ballot(w, x.accepted_ballot);
            detail::write_optional_value(w, x.accepted_value);
          } else if constexpr (std::is_same_v<X, PaxosAccept>) {
            detail::write_ballot(w, x.ballot);
            w.bytes(x.value);
          } else if constexpr (std::is_same_v<X, PaxosNack>) {
            detail::write_ballot(w, x.ballot);
            detail::write_ballot(w, x.promised);
          } else {
            w.bytes(x.value);
          }
        },
        m);
  }

  // Returns the message encoded in `bytes` (exactly one). Throws pods::CorruptionError
  // ("paxos message" at the offset) on an unknown version or tag, a bool byte other than 0
  // or 1, a truncated field or trailing bytes. Allocates the value.
  PaxosMessage decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "paxos message");
    r.expect_version(version, "paxos message version");
    const std::size_t tag_at = r.offset();
    const std::uint8_t tag = r.u8();
    PaxosMessage m = body(r, tag, tag_at);
    r.expect_end();
    return m;
  }

 private:
  static PaxosMessage body(wire::Reader& r, std::uint8_t tag, std::size_t tag_at) {
    switch (tag) {
      case 0:
        return PaxosPrepare{detail::read_ballot(r)};
      case 1: {
        PaxosPromise p;
        p.ballot = detail::read_ballot(r);
        p.accepted_ballot = detail::read_ballot(r);
        p.accepted_value = detail::read_optional_value(r);
        return p;
      }
      case 2: {
        PaxosAccept a;
        a.ballot = detail::read_ballot(r);
        a.value = r.bytes();
        return a;
      }
      case 3:
        return PaxosAccepted{detail::read_ballot(r)};
      case 4: {
        PaxosNack n;
        n.ballot = detail::read_ballot(r);
        n.promised = detail::read_ballot(r);
        return n;
      }
      case 5:
        return PaxosCommit{r.bytes()};
      default: {
        std::string m = "unknown paxos message tag ";
        m += std::to_string(tag);
        r.fail(tag_at, m);
      }
    }
  }
};
static_assert(Codec<PaxosMessageCodec, PaxosMessage>);

// What an acceptor and learner keep durable: one record, the whole state, appended per change.
struct PaxosAcceptorState {
  Ballot promised;
  Ballot accepted_ballot;
  std::optional<PaxosValue> accepted_value;
  std::optional<PaxosValue> chosen;
  friend bool operator==(const PaxosAcceptorState&, const PaxosAcceptorState&) = default;
};

// The storage record codec: a version byte (1), promised, accepted_ballot, accepted_value,
// chosen, laid out as in PaxosMessageCodec.
struct PaxosStateCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `s` to `out`.
  void encode(const PaxosAcceptorState& s, Buffer& out) const {
    wire::Writer w(out);
    w.u8(version);
    detail::write_ballot(w, s.promised);
    detail::write_ballot(w, s.accepted_ballot);
    detail::write_optional_value(w, s.accepted_value);
    detail::write_optional_value(w, s.chosen);
  }

  // Returns the state in `bytes`; throws pods::CorruptionError ("paxos state") when they are
  // not exactly one record.
  PaxosAcceptorState decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "paxos state");
    r.expect_version(version, "paxos state version");
    PaxosAcceptorState s;
    s.promised = detail::read_ballot(r);
    s.accepted_ballot = detail::read_ballot(r);
    s.accepted_value = detail::read_optional_value(r);
    s.chosen = detail::read_optional_value(r);
    r.expect_end();
    return s;
  }
};
static_assert(Codec<PaxosStateCodec, PaxosAcceptorState>);

struct PaxosOptions {
  NodeId id = 0;                // this node
  std::vector<NodeId> members;  // every acceptor, id included
  std::chrono::nanoseconds retry_timeout = std::chrono::milliseconds(100);  // per round
  std::chrono::nanoseconds max_jitter = std::chrono::milliseconds(100);     // added, drawn
  std::size_t max_attempts = 0;  // rounds before propose gives up with Errc::timeout; 0: never
  std::uint64_t seed = 0;        // the jitter's generator (mixed with id)
};

namespace detail {

// Checks PaxosOptions-like membership: id non-zero and among members, members distinct.
inline void check_paxos_members(const char* who, NodeId id, const std::vector<NodeId>& members) {
  std::string prefix = who;
  prefix += ": ";
  if (id == 0) throw std::invalid_argument(prefix + "options.id must not be 0");
  if (std::find(members.begin(), members.end(), id) == members.end()) {
    throw std::invalid_argument(prefix + "options.members must contain options.id");
  }
  std::vector<NodeId> sorted = members;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    throw std::invalid_argument(prefix + "options.members must not repeat a node");
  }
}

inline void check_paxos_timing(const char* who, std::chrono::nanoseconds retry_timeout,
                               std::chrono::nanoseconds max_jitter) {
  std::string prefix = who;
  prefix += ": ";
  if (retry_timeout.count() <= 0) {
    throw std::invalid_argument(prefix + "options.retry_timeout must be positive");
  }
  if (max_jitter.count() < 0) {
    throw std::invalid_argument(prefix + "options.max_jitter must not be negative");
  }
}

}  // namespace detail

// Paxos: one node of single-decree Paxos, playing proposer, acceptor and learner.
template <Transport<PaxosMessage> T, PhysicalClock C = SteadyClock, SegmentStorage S = FileStorage>
class Paxos {
 public:
  using time_point = typename C::time_point;
  using Callback = std::function<void(Outcome<PaxosValue>)>;

  // Opens the node: recovers its promise, accepted value and learned value from `storage`
  // (the last record of its WriteAheadLog) and starts its GenerationClock above the recovered
  // promise. Keeps copies of the handles. Throws std::invalid_argument naming options.id
  // (zero or not in members), options.members (a repeated node), options.retry_timeout (not
  // positive) or options.max_jitter (negative); what WriteAheadLog throws on bad storage.
  Paxos(T transport, C clock, S storage, PaxosOptions options)
      : transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(checked(std::move(options))),
        quorum_(std::span<const NodeId>(options_.members)),
        wal_(std::move(storage)),
        random_(Random(options_.seed).fork(options_.id)) {
    for (const auto& e : wal_.replay())
      state_ = e.entry;
    generation_.observe(state_.promised.generation);
  }

  Paxos(const Paxos&) = delete;
  Paxos& operator=(const Paxos&) = delete;

  // Proposes `value` (moved): runs rounds until some value is chosen and then calls `done`
  // with it (it may be another node's value), or with Errc::timeout after
  // options.max_attempts rounds. When a value is already learned, calls `done` at once with
  // it; while another proposal runs, calls `done` at once with Errc::full. `done` is retained
  // until then and runs exactly once. Sends and syncs; allocates the messages.
  void propose(PaxosValue value, Callback done) {
    if (state_.chosen) {
      done(*state_.chosen);
      return;
    }
    if (pending_) {
      done(Errc::full);
      return;
    }
    pending_.emplace(Pending{std::move(value), std::move(done), 0});
    start_round();
    drain();
  }

  // Handles one message from `from`. Drops (and counts) a malformed one. Acceptor replies
  // follow a synced write of the new promise or accepted value.
  void receive(NodeId from, PaxosMessage m) {
    handle(from, std::move(m));
    drain();
  }

  // Fires what is due by the clock: the retry of a stalled round with a higher ballot (or the
  // give-up of propose after max_attempts rounds).
  void tick() {
    if (pending_ && retry_at_ && clock_.now() >= *retry_at_) {
      if (options_.max_attempts != 0 && pending_->attempts >= options_.max_attempts) {
        finish(Errc::timeout);
      } else {
        start_round();
      }
    }
    drain();
  }

  // Returns when tick() next has work (a retry), or nullopt when no proposal runs.
  std::optional<time_point> next_deadline() const {
    if (!pending_) return std::nullopt;
    return retry_at_;
  }

  // Returns the learned (chosen) value, or nullopt before this node learns it.
  const std::optional<PaxosValue>& chosen() const noexcept { return state_.chosen; }
  // Returns the highest ballot this acceptor promised (durable).
  Ballot promised() const noexcept { return state_.promised; }
  // Returns the ballot of the value this acceptor accepted last (Ballot{}: none).
  Ballot accepted_ballot() const noexcept { return state_.accepted_ballot; }
  // Returns the value this acceptor accepted last, or nullopt.
  const std::optional<PaxosValue>& accepted_value() const noexcept { return state_.accepted_value; }
  // Returns the ballot of the current (or last) round this node proposed in.
  Ballot ballot() const noexcept { return ballot_; }
  // Returns true while a propose has not called back.
  bool proposing() const noexcept { return pending_.has_value(); }
  // Returns how many rounds (ballots) this node has started.
  std::uint64_t rounds() const noexcept { return rounds_; }
  // Returns how many malformed messages were dropped.
  std::uint64_t dropped() const noexcept { return dropped_; }
  // Returns the options.
  const PaxosOptions& options() const noexcept { return options_; }

 private:
  enum class Phase { idle, preparing, accepting };

  struct Pending {
    PaxosValue value;
    Callback done;
    std::size_t attempts;
  };

  static PaxosOptions checked(PaxosOptions o) {
    detail::check_paxos_members("Paxos", o.id, o.members);
    detail::check_paxos_timing("Paxos", o.retry_timeout, o.max_jitter);
    return o;
  }

  bool member(NodeId n) const { return quorum_.contains(n); }
  bool valid(const Ballot& b) const { return b.generation != 0 && member(b.node); }

  void persist() {
    wal_.append(state_);
    wal_.sync();
  }

  // Sends to a peer, or queues for this node's own handlers (drained after the input).
  void post(NodeId to, PaxosMessage m) {
    if (to == options_.id) {
      self_.push_back(std::move(m));
    } else {
      (void)transport_.send(to, std::move(m));
    }
  }

  // Handles the message at this node first (its acceptor syncs before any peer sees the
  // ballot, so a restarted proposer never reuses it), then sends it to every peer.
  void broadcast(const PaxosMessage& m) {
    handle(options_.id, m);
    for (NodeId n : options_.members) {
      if (n != options_.id) (void)transport_.send(n, m);
    }
  }

  void drain() {
    while (!self_.empty()) {
      PaxosMessage m = std::move(self_.front());
      self_.pop_front();
      handle(options_.id, std::move(m));
    }
  }

  void start_round() {
    ++pending_->attempts;
    ++rounds_;
    generation_.observe(state_.promised.generation);
    ballot_ = Ballot{generation_.next(), options_.id};
    phase_ = Phase::preparing;
    votes_.clear();
    best_ballot_ = Ballot{};
    best_value_.reset();
    retry_at_ = clock_.now() + options_.retry_timeout + jitter();
    broadcast(PaxosPrepare{ballot_});
  }

  std::chrono::nanoseconds jitter() {
    return random_.between(std::chrono::nanoseconds(0), options_.max_jitter);
  }

  bool won() const {
    return quorum_
               .tally([&](NodeId n) -> std::optional<bool> {
                 auto it = votes_.find(n);
                 if (it == votes_.end()) return std::nullopt;
                 return it->second;
               })
               .result == VoteResult::won;
  }

  void finish(Outcome<PaxosValue> result) {
    phase_ = Phase::idle;
    retry_at_.reset();
    Callback done = std::move(pending_->done);
    pending_.reset();
    done(std::move(result));
  }

  void learn(const PaxosValue& value) {
    if (!state_.chosen) {
      state_.chosen = value;
      persist();
    }
    if (pending_) finish(*state_.chosen);
  }

  void handle(NodeId from, PaxosMessage m) {
    if (!member(from)) {
      ++dropped_;
      return;
    }
    std::visit([&](auto& x) { on(from, x); }, m);
  }

  // ---- Acceptor ("Paxos Made Simple", section 2.2) ----

  void on(NodeId from, PaxosPrepare& m) {
    if (!valid(m.ballot)) {
      ++dropped_;
      return;
    }
    if (state_.chosen) {
      post(from, PaxosCommit{*state_.chosen});
      return;
    }
    if (m.ballot < state_.promised) {
      post(from, PaxosNack{m.ballot, state_.promised});
      return;
    }
    if (m.ballot > state_.promised) {
      state_.promised = m.ballot;
      persist();  // the promise is durable before it is sent
    }
    post(from, PaxosPromise{m.ballot, state_.accepted_ballot, state_.accepted_value});
  }

  void on(NodeId from, PaxosAccept& m) {
    if (!valid(m.ballot)) {
      ++dropped_;
      return;
    }
    if (state_.chosen) {
      post(from, PaxosCommit{*state_.chosen});
      return;
    }
    if (m.ballot < state_.promised) {
      post(from, PaxosNack{m.ballot, state_.promised});
      return;
    }
    if (m.ballot != state_.accepted_ballot || state_.accepted_value != m.value) {
      state_.promised = m.ballot;
      state_.accepted_ballot = m.ballot;
      state_.accepted_value = std::move(m.value);
      persist();  // the accepted value is durable before it is acknowledged
    }
    post(from, PaxosAccepted{m.ballot});
  }

  // ---- Proposer ----

  void on(NodeId from, PaxosPromise& m) {
    const bool reports = m.accepted_value.has_value();
    if (!valid(m.ballot) || reports != (m.accepted_ballot != Ballot{}) ||
        m.accepted_ballot > m.ballot) {
      ++dropped_;
      return;
    }
    if (phase_ != Phase::preparing || m.ballot != ballot_) return;  // an old round's
    votes_[from] = true;
    // The rule of section 2.2: propose the value of the highest-ballot accepted proposal.
    if (reports && m.accepted_ballot > best_ballot_) {
      best_ballot_ = m.accepted_ballot;
      best_value_ = std::move(m.accepted_value);
    }
    if (!won()) return;
    phase_ = Phase::accepting;
    votes_.clear();
    proposal_ = best_value_ ? *best_value_ : pending_->value;
    broadcast(PaxosAccept{ballot_, proposal_});
  }

  void on(NodeId from, PaxosAccepted& m) {
    if (!valid(m.ballot)) {
      ++dropped_;
      return;
    }
    if (phase_ != Phase::accepting || m.ballot != ballot_) return;
    votes_[from] = true;
    if (!won()) return;
    // Chosen: a majority accepted proposal_ at ballot_ (section 2.3: tell the learners).
    const PaxosValue value = proposal_;
    for (NodeId n : options_.members) {
      if (n != options_.id) (void)transport_.send(n, PaxosCommit{value});
    }
    learn(value);
  }

  void on(NodeId, PaxosNack& m) {
    if (!valid(m.ballot) || !valid(m.promised) || m.promised <= m.ballot) {
      ++dropped_;
      return;
    }
    generation_.observe(m.promised.generation);
    if (phase_ == Phase::idle || m.ballot != ballot_) return;
    // A higher ballot runs: back off for a jittered while, then retry above it.
    phase_ = Phase::idle;
    retry_at_ = clock_.now() + jitter();
  }

  // ---- Learner ----

  void on(NodeId, PaxosCommit& m) { learn(m.value); }

  // Every send discards its result: a refused send (queue full, peer unknown) is a lost
  // message, which the protocol's retries already cover.
  T transport_;
  C clock_;
  PaxosOptions options_;
  MajorityQuorum quorum_;
  WriteAheadLog<PaxosAcceptorState, PaxosStateCodec, S> wal_;
  Random random_;
  GenerationClock<SingleThreaded> generation_;
  PaxosAcceptorState state_;

  std::optional<Pending> pending_;
  Phase phase_ = Phase::idle;
  Ballot ballot_;
  std::map<NodeId, bool> votes_;
  Ballot best_ballot_;
  std::optional<PaxosValue> best_value_;
  PaxosValue proposal_;
  std::optional<time_point> retry_at_;
  std::deque<PaxosMessage> self_;
  std::uint64_t rounds_ = 0;
  std::uint64_t dropped_ = 0;
};

}  // namespace pods

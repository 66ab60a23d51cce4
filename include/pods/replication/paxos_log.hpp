// pods/replication/paxos_log.hpp — PaxosLog: a multi-Paxos replicated log
//
// Problem:       Single-decree Paxos agrees on one value in two round trips. A replicated
//                state machine needs a sequence of values (a log of commands), and running
//                both phases for every slot doubles the latency of every command.
// Solution:      Multi-Paxos (Lamport, "Paxos Made Simple", section 3). One instance of Paxos
//                per log slot, sharing one promise: a node that wants to lead runs phase 1
//                ONCE, for every slot from its first unlearned one on (prepare(b, from)); each
//                acceptor promises b for all those slots and reports what it has accepted in
//                them. With a majority of promises the node leads: for each open slot it
//                re-proposes the highest-ballot value reported, fills every gap with a no-op,
//                and from then on runs only phase 2 (accept(b, slot, value)) for each new
//                command. A value accepted by a majority is chosen; the leader tells every
//                node (commit) and each applies chosen entries in slot order to its state
//                machine. The leader sends heartbeats carrying its commit index; a follower
//                that misses them for an election timeout (jittered from pods::Random) runs
//                phase 1 with a higher ballot from its GenerationClock; one that lags asks the
//                leader for the commits it missed. Promises and accepted values are appended
//                to a WriteAheadLog and synced before they are answered; a learned entry is
//                appended without a sync of its own (the next synced write carries it, and
//                one lost in a crash is learned again from the leader).
// Guarantees:    Agreement per slot: no two nodes learn different values (or a value and a
//                no-op) for one slot, across crashes that keep synced bytes. Every node applies
//                the same entries in the same order, each once per incarnation. A stable
//                leader needs one round trip per command. propose returns the slot it used.
// Not provided:  A guarantee that a proposed command is chosen: a leader that loses its
//                leadership may see its slot filled by a no-op; the caller learns what was
//                chosen from apply(). Snapshots and log compaction; membership changes; read
//                leases. Progress needs a majority up and one leader not pre-empted.
// Thread safety: thread-compatible: one thread (or a SingularUpdateQueue) drives an object.
// Errors:        Bad options throw std::invalid_argument naming the option. propose on a node
//                that does not lead returns Errc::not_leader (leader_hint() names the node it
//                last heard from), and Errc::full with max_open_slots slots not yet chosen.
//                Malformed messages are dropped and counted in dropped().
//                PaxosLogMessageCodec::decode throws pods::CorruptionError; a corrupt record in
//                storage throws CorruptionError naming the segment.
// Cost:          A command with a stable leader: n - 1 accepts, n - 1 acknowledgements, n - 1
//                commits, one storage sync per acceptor. A change of leader: one prepare round
//                whose promises carry the accepted entries of the open slots.
// Example:
//   pods::ManualClock clock;
//   pods::Outbox<pods::PaxosLogMessage> out;
//   pods::PaxosLog node(out, clock, pods::MemoryStorage{}, Printer{},
//                       pods::PaxosLogOptions{.id = 1, .members = {1}});
//   clock.advance(std::chrono::seconds(1));
//   node.tick();  // no leader heard: phase 1, won alone
//   if (auto slot = node.propose(std::vector<std::byte>{std::byte{42}})) node.tick();
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: #include <cstdio>
// Example context: struct Printer { void apply(std::uint64_t, std::span<const std::byte>) {} };
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
#include <pods/replication/paxos.hpp>
#include <pods/storage/write_ahead_log.hpp>
#include <pods/time/generation_clock.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

// A user state machine: apply(index, bytes) is called once per chosen command, in slot order
// (no-op slots are skipped, so indices may jump).
// clang-format off
template <class M>
concept PaxosStateMachine = requires(M& m, std::uint64_t index, std::span<const std::byte> b) {
  m.apply(index, b);
};
// clang-format on

// One slot's accepted (or chosen) value: nullopt is a no-op.
struct PaxosLogEntry {
  std::uint64_t slot = 0;
  Ballot ballot;
  std::optional<PaxosValue> value;
  friend bool operator==(const PaxosLogEntry&, const PaxosLogEntry&) = default;
};

// Candidate -> acceptor: phase 1a for every slot >= from_slot.
struct LogPrepare {
  Ballot ballot;
  std::uint64_t from_slot = 1;
  friend bool operator==(const LogPrepare&, const LogPrepare&) = default;
};
// Acceptor -> candidate: phase 1b; what it accepted in the slots >= from_slot.
struct LogPromise {
  Ballot ballot;
  std::uint64_t from_slot = 1;
  std::vector<PaxosLogEntry> accepted;
  friend bool operator==(const LogPromise&, const LogPromise&) = default;
};
// Leader -> acceptor: phase 2a for one slot (value nullopt: a no-op).
struct LogAccept {
  Ballot ballot;
  std::uint64_t slot = 0;
  std::optional<PaxosValue> value;
  friend bool operator==(const LogAccept&, const LogAccept&) = default;
};
// Acceptor -> leader: phase 2b.
struct LogAccepted {
  Ballot ballot;
  std::uint64_t slot = 0;
  friend bool operator==(const LogAccepted&, const LogAccepted&) = default;
};
// Acceptor -> sender: `ballot` is below my promise `promised`.
struct LogNack {
  Ballot ballot;
  Ballot promised;
  friend bool operator==(const LogNack&, const LogNack&) = default;
};
// Leader -> learner: `slot` is chosen with `value`.
struct LogCommit {
  std::uint64_t slot = 0;
  std::optional<PaxosValue> value;
  friend bool operator==(const LogCommit&, const LogCommit&) = default;
};
// Leader -> follower: I lead with `ballot`; every slot up to commit_index is chosen.
struct LogHeartbeat {
  Ballot ballot;
  std::uint64_t commit_index = 0;
  friend bool operator==(const LogHeartbeat&, const LogHeartbeat&) = default;
};
// Follower -> leader: send me the commits from `from_slot` on.
struct LogCatchUp {
  std::uint64_t from_slot = 1;
  friend bool operator==(const LogCatchUp&, const LogCatchUp&) = default;
};

using PaxosLogMessage = std::variant<LogPrepare, LogPromise, LogAccept, LogAccepted, LogNack,
                                     LogCommit, LogHeartbeat, LogCatchUp>;

// PaxosLogMessageCodec: a Codec<PaxosLogMessage>. Layout: a version byte (1), a tag byte (the
// variant index), then the fields in declaration order as in PaxosMessageCodec (ballots as two
// u64, slots as u64, optional values as a bool byte and the value); a promise's entries as a
// u32 count and, per entry, slot, ballot, optional value.
struct PaxosLogMessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` to `out`. Allocates as `out` grows.
  void encode(const PaxosLogMessage& m, Buffer& out) const {
    wire::Writer w(out);
    w.u8(version);
    w.u8(static_cast<std::uint8_t>(m.index()));
    std::visit([&](const auto& x) { write(w, x); }, m);
  }

  // Returns the message encoded in `bytes` (exactly one). Throws pods::CorruptionError
  // ("paxos log message" at the offset) on an unknown version or tag, a bad bool byte, a
  // count larger than the bytes left, a truncated field or trailing bytes.
  PaxosLogMessage decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "paxos log message");
    r.expect_version(version, "paxos log message version");
    const std::size_t tag_at = r.offset();
    const std::uint8_t tag = r.u8();
    PaxosLogMessage m = body(r, tag, tag_at);
    r.expect_end();
    return m;
  }

 private:
  static void write(wire::Writer& w, const LogPrepare& x) {
    detail::write_ballot(w, x.ballot);
    w.u64(x.from_slot);
  }
  static void write(wire::Writer& w, const LogPromise& x) {
    detail::write_ballot(w, x.ballot);
    w.u64(x.from_slot);
    w.count(x.accepted.size());
    for (const PaxosLogEntry& e : x.accepted) {
      w.u64(e.slot);
      detail::write_ballot(w, e.ballot);
      detail::write_optional_value(w, e.value);
    }
  }
  static void write(wire::Writer& w, const LogAccept& x) {
    detail::write_ballot(w, x.ballot);
    w.u64(x.slot);
    detail::write_optional_value(w, x.value);
  }
  static void write(wire::Writer& w, const LogAccepted& x) {
    detail::write_ballot(w, x.ballot);
    w.u64(x.slot);
  }
  static void write(wire::Writer& w, const LogNack& x) {
    detail::write_ballot(w, x.ballot);
    detail::write_ballot(w, x.promised);
  }
  static void write(wire::Writer& w, const LogCommit& x) {
    w.u64(x.slot);
    detail::write_optional_value(w, x.value);
  }
  static void write(wire::Writer& w, const LogHeartbeat& x) {
    detail::write_ballot(w, x.ballot);
    w.u64(x.commit_index);
  }
  static void write(wire::Writer& w, const LogCatchUp& x) { w.u64(x.from_slot); }

  static PaxosLogMessage body(wire::Reader& r, std::uint8_t tag, std::size_t tag_at) {
    switch (tag) {
      case 0: {
        LogPrepare p;
        p.ballot = detail::read_ballot(r);
        p.from_slot = r.u64();
        return p;
      }
      case 1: {
        LogPromise p;
        p.ballot = detail::read_ballot(r);
        p.from_slot = r.u64();
        const std::size_t n = r.count(25);  // slot, ballot, bool byte
        p.accepted.reserve(n);
        for (std::size_t i = 0; i < n; ++i) {
          PaxosLogEntry e;
          e.slot = r.u64();
          e.ballot = detail::read_ballot(r);
          e.value = detail::read_optional_value(r);
          p.accepted.push_back(std::move(e));
        }
        return p;
      }
      case 2: {
        LogAccept a;
        a.ballot = detail::read_ballot(r);
        a.slot = r.u64();
        a.value = detail::read_optional_value(r);
        return a;
      }
      case 3: {
        LogAccepted a;
        a.ballot = detail::read_ballot(r);
        a.slot = r.u64();
        return a;
      }
      case 4: {
        LogNack n;
        n.ballot = detail::read_ballot(r);
        n.promised = detail::read_ballot(r);
        return n;
      }
      case 5: {
        LogCommit c;
        c.slot = r.u64();
        c.value = detail::read_optional_value(r);
        return c;
      }
      case 6: {
        LogHeartbeat h;
        h.ballot = detail::read_ballot(r);
        h.commit_index = r.u64();
        return h;
      }
      case 7:
        return LogCatchUp{r.u64()};
      default: {
        std::string m = "unknown paxos log message tag ";
        m += std::to_string(tag);
        r.fail(tag_at, m);
      }
    }
  }
};
static_assert(Codec<PaxosLogMessageCodec, PaxosLogMessage>);

// One durable record of a PaxosLog node: a promise (slot 0), an accepted entry, or a chosen
// entry.
struct PaxosLogRecord {
  enum class Kind : std::uint8_t { promise = 0, accepted = 1, chosen = 2 };
  Kind kind = Kind::promise;
  PaxosLogEntry entry;
  friend bool operator==(const PaxosLogRecord&, const PaxosLogRecord&) = default;
};

// The storage record codec: version (1), kind byte, slot, ballot, optional value.
struct PaxosLogRecordCodec {
  static constexpr std::uint8_t version = 1;
  // Appends the encoding of `rec` to `out`.
  void encode(const PaxosLogRecord& rec, Buffer& out) const {
    wire::Writer w(out);
    w.u8(version);
    w.u8(static_cast<std::uint8_t>(rec.kind));
    w.u64(rec.entry.slot);
    detail::write_ballot(w, rec.entry.ballot);
    detail::write_optional_value(w, rec.entry.value);
  }
  // Returns the record in `bytes`; throws pods::CorruptionError ("paxos log record").
  PaxosLogRecord decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "paxos log record");
    r.expect_version(version, "paxos log record version");
    PaxosLogRecord rec;
    const std::uint8_t kind = r.u8();
    if (kind > 2) r.fail(1, "unknown paxos log record kind " + std::to_string(kind));
    rec.kind = static_cast<PaxosLogRecord::Kind>(kind);
    rec.entry.slot = r.u64();
    rec.entry.ballot = detail::read_ballot(r);
    rec.entry.value = detail::read_optional_value(r);
    r.expect_end();
    return rec;
  }
};
static_assert(Codec<PaxosLogRecordCodec, PaxosLogRecord>);

struct PaxosLogOptions {
  NodeId id = 0;
  std::vector<NodeId> members;  // every acceptor, id included
  std::chrono::nanoseconds heartbeat_interval = std::chrono::milliseconds(50);
  std::chrono::nanoseconds election_timeout = std::chrono::milliseconds(300);  // plus jitter
  std::chrono::nanoseconds max_jitter = std::chrono::milliseconds(300);
  std::chrono::nanoseconds retry_timeout = std::chrono::milliseconds(100);  // resend accepts
  std::size_t catch_up_batch = 64;    // commits per catch-up answer
  std::size_t max_open_slots = 4096;  // slots a leader may have unchosen; promises beyond: dropped
  std::uint64_t seed = 0;
};

// PaxosLog: one node of a multi-Paxos log feeding the state machine M.
template <Transport<PaxosLogMessage> T, PhysicalClock C, SegmentStorage S, PaxosStateMachine M>
class PaxosLog {
 public:
  using time_point = typename C::time_point;
  enum class Role { follower, candidate, leader };

  // Opens the node: replays its promise, accepted and chosen entries from `storage` and applies
  // the chosen prefix to `machine` (kept by value). Throws std::invalid_argument naming
  // options.id, options.members, options.heartbeat_interval, options.election_timeout,
  // options.max_jitter, options.retry_timeout, options.catch_up_batch or
  // options.max_open_slots; what WriteAheadLog
  // throws on bad storage.
  PaxosLog(T transport, C clock, S storage, M machine, PaxosLogOptions options)
      : transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(checked(std::move(options))),
        quorum_(std::span<const NodeId>(options_.members)),
        wal_(std::move(storage)),
        machine_(std::move(machine)),
        random_(Random(options_.seed).fork(options_.id)) {
    for (const auto& e : wal_.replay()) {
      const PaxosLogRecord& rec = e.entry;
      if (rec.kind == PaxosLogRecord::Kind::promise) {
        promised_ = std::max(promised_, rec.entry.ballot);
      } else if (rec.kind == PaxosLogRecord::Kind::accepted) {
        promised_ = std::max(promised_, rec.entry.ballot);
        accepted_[rec.entry.slot] = rec.entry;
      } else {
        learned_.emplace(rec.entry.slot, rec.entry.value);
      }
    }
    generation_.observe(promised_.generation);
    advance();
    election_at_ = clock_.now() + election_wait();
  }

  PaxosLog(const PaxosLog&) = delete;
  PaxosLog& operator=(const PaxosLog&) = delete;

  // Appends `command` (moved) at the next slot when this node leads, sending accepts, and
  // returns the slot; Errc::not_leader otherwise, Errc::full while options.max_open_slots
  // slots are not yet chosen. The command is applied when chosen, which a
  // change of leader may prevent (the slot then holds what the next leader chose).
  Outcome<std::uint64_t> propose(PaxosValue command) {
    if (role_ != Role::leader) return Errc::not_leader;
    if (in_flight_.size() >= options_.max_open_slots) return Errc::full;
    const std::uint64_t slot = next_slot_++;
    start_accept(slot, std::move(command));
    drain();
    return slot;
  }

  // Handles one message from `from`; drops and counts a malformed one.
  void receive(NodeId from, PaxosLogMessage m) {
    handle(from, std::move(m));
    drain();
  }

  // Fires what is due: an election when no leader was heard for the timeout, the leader's
  // heartbeat, and resends of accepts not yet acknowledged by a majority.
  void tick() {
    const time_point now = clock_.now();
    if (role_ != Role::leader && now >= election_at_) start_election();
    if (role_ == Role::leader) {
      if (now >= heartbeat_at_) heartbeat();
      for (auto& [slot, f] : in_flight_) {
        if (now < f.resend_at) continue;
        f.resend_at = now + options_.retry_timeout;
        for (NodeId n : options_.members)
          if (n != options_.id && !f.acks.count(n))
            (void)transport_.send(n, LogAccept{ballot_, slot, f.value});
      }
    }
    drain();
  }

  // Returns when tick() next has work.
  time_point next_deadline() const {
    if (role_ != Role::leader) return election_at_;
    time_point d = heartbeat_at_;
    for (const auto& [slot, f] : in_flight_)
      d = std::min(d, f.resend_at);
    return d;
  }

  // Returns this node's role.
  Role role() const noexcept { return role_; }
  // Returns true while this node leads (won phase 1 and saw no higher ballot).
  bool is_leader() const noexcept { return role_ == Role::leader; }
  // Returns the node this node last heard lead (0: none yet).
  NodeId leader_hint() const noexcept { return leader_hint_; }
  // Returns the highest slot s such that every slot up to s is learned and applied.
  std::uint64_t commit_index() const noexcept { return applied_; }
  // Returns the learned entry of `slot` (an inner nullopt: a no-op), or nullopt before it is
  // learned.
  std::optional<std::optional<PaxosValue>> learned(std::uint64_t slot) const {
    auto it = learned_.find(slot);
    if (it == learned_.end()) return std::nullopt;
    return it->second;
  }
  // Returns the promised ballot and this node's own ballot.
  Ballot promised() const noexcept { return promised_; }
  Ballot ballot() const noexcept { return ballot_; }
  // Returns how many malformed messages were dropped.
  std::uint64_t dropped() const noexcept { return dropped_; }
  // Returns the state machine.
  M& machine() noexcept { return machine_; }
  const M& machine() const noexcept { return machine_; }

 private:
  struct InFlight {
    std::optional<PaxosValue> value;
    std::set<NodeId> acks;
    time_point resend_at;
  };

  static PaxosLogOptions checked(PaxosLogOptions o) {
    detail::check_paxos_members("PaxosLog", o.id, o.members);
    detail::check_paxos_timing("PaxosLog", o.retry_timeout, o.max_jitter);
    if (o.heartbeat_interval.count() <= 0) {
      throw std::invalid_argument("PaxosLog: options.heartbeat_interval must be positive");
    }
    if (o.election_timeout <= o.heartbeat_interval) {
      throw std::invalid_argument(
          "PaxosLog: options.election_timeout must be longer than options.heartbeat_interval");
    }
    if (o.catch_up_batch == 0) {
      throw std::invalid_argument("PaxosLog: options.catch_up_batch must be positive");
    }
    if (o.max_open_slots == 0) {
      throw std::invalid_argument("PaxosLog: options.max_open_slots must be positive");
    }
    return o;
  }

  bool member(NodeId n) const { return quorum_.contains(n); }
  bool valid(const Ballot& b) const { return b.generation != 0 && member(b.node); }
  std::chrono::nanoseconds election_wait() {
    return options_.election_timeout +
           random_.between(std::chrono::nanoseconds(0), options_.max_jitter);
  }

  void record(PaxosLogRecord::Kind kind, PaxosLogEntry e, bool sync) {
    wal_.append(PaxosLogRecord{kind, std::move(e)});
    if (sync) wal_.sync();
  }

  void post(NodeId to, PaxosLogMessage m) {
    if (to == options_.id) {
      self_.push_back(std::move(m));
    } else {
      (void)transport_.send(to, std::move(m));
    }
  }
  // Handles `m` here first (its own acceptor syncs before any peer sees it), then sends it on.
  void broadcast(const PaxosLogMessage& m) {
    handle(options_.id, m);
    for (NodeId n : options_.members)
      if (n != options_.id) (void)transport_.send(n, m);
  }
  void drain() {
    while (!self_.empty()) {
      PaxosLogMessage m = std::move(self_.front());
      self_.pop_front();
      handle(options_.id, std::move(m));
    }
  }

  template <class F>
  bool won(const F& granted) const {
    return quorum_
               .tally([&](NodeId n) -> std::optional<bool> {
                 if (granted.count(n)) return true;
                 return std::nullopt;
               })
               .result == VoteResult::won;
  }

  void follow(const Ballot& b) {
    leader_hint_ = b.node;
    if (b.node != options_.id) {
      if (role_ != Role::follower && b > ballot_) step_down();
      election_at_ = clock_.now() + election_wait();
    }
  }

  void step_down() {
    role_ = Role::follower;
    in_flight_.clear();
    votes_.clear();
    election_at_ = clock_.now() + election_wait();
  }

  // ---- Phase 1, once for all open slots ("Paxos Made Simple", section 3) ----

  void start_election() {
    generation_.observe(promised_.generation);
    ballot_ = Ballot{generation_.next(), options_.id};
    role_ = Role::candidate;
    votes_.clear();
    in_flight_.clear();
    reported_.clear();
    from_slot_ = applied_ + 1;
    election_at_ = clock_.now() + election_wait();
    broadcast(LogPrepare{ballot_, from_slot_});
  }

  void on(NodeId from, LogPrepare& m) {
    if (!valid(m.ballot) || m.from_slot == 0) {
      ++dropped_;
      return;
    }
    if (m.ballot < promised_) {
      post(from, LogNack{m.ballot, promised_});
      return;
    }
    if (m.ballot > promised_) {
      promised_ = m.ballot;
      record(PaxosLogRecord::Kind::promise, PaxosLogEntry{0, m.ballot, std::nullopt}, true);
    }
    if (m.ballot.node != options_.id && role_ != Role::follower) step_down();
    election_at_ = clock_.now() + election_wait();
    LogPromise p{m.ballot, m.from_slot, {}};
    for (auto it = accepted_.lower_bound(m.from_slot); it != accepted_.end(); ++it)
      p.accepted.push_back(it->second);
    post(from, std::move(p));
  }

  void on(NodeId from, LogPromise& m) {
    if (!valid(m.ballot)) {
      ++dropped_;
      return;
    }
    for (const PaxosLogEntry& e : m.accepted) {
      if (e.slot < m.from_slot || e.slot - m.from_slot >= options_.max_open_slots ||
          !valid(e.ballot) || e.ballot > m.ballot) {
        ++dropped_;
        return;
      }
    }
    if (role_ != Role::candidate || m.ballot != ballot_ || m.from_slot != from_slot_) return;
    votes_.insert(from);
    // Keep, per slot, the value of the highest ballot reported (section 2.2's rule, per slot).
    for (PaxosLogEntry& e : m.accepted) {
      auto it = reported_.find(e.slot);
      if (it == reported_.end() || e.ballot > it->second.ballot) reported_[e.slot] = std::move(e);
    }
    if (!won(votes_)) return;
    role_ = Role::leader;
    leader_hint_ = options_.id;
    std::uint64_t last = applied_;
    if (!reported_.empty()) last = std::max(last, reported_.rbegin()->first);
    if (!learned_.empty()) last = std::max(last, learned_.rbegin()->first);
    next_slot_ = last + 1;
    // Re-propose what may have been chosen; fill the gaps with no-ops.
    for (std::uint64_t slot = from_slot_; slot <= last; ++slot) {
      std::optional<PaxosValue> value;
      if (auto l = learned_.find(slot); l != learned_.end()) {
        value = l->second;
      } else if (auto r = reported_.find(slot); r != reported_.end()) {
        value = r->second.value;
      }
      start_accept(slot, std::move(value));
    }
    reported_.clear();
    heartbeat();
  }

  // ---- Phase 2, per slot ----

  void start_accept(std::uint64_t slot, std::optional<PaxosValue> value) {
    in_flight_[slot] = InFlight{value, {}, clock_.now() + options_.retry_timeout};
    broadcast(LogAccept{ballot_, slot, std::move(value)});
  }

  void on(NodeId from, LogAccept& m) {
    if (!valid(m.ballot) || m.slot == 0) {
      ++dropped_;
      return;
    }
    if (m.ballot < promised_) {
      post(from, LogNack{m.ballot, promised_});
      return;
    }
    promised_ = m.ballot;
    follow(m.ballot);
    auto it = accepted_.find(m.slot);
    if (it == accepted_.end() || it->second.ballot != m.ballot || it->second.value != m.value) {
      PaxosLogEntry e{m.slot, m.ballot, std::move(m.value)};
      accepted_[m.slot] = e;
      record(PaxosLogRecord::Kind::accepted, std::move(e), true);  // durable before the ack
    }
    post(from, LogAccepted{m.ballot, m.slot});
  }

  void on(NodeId from, LogAccepted& m) {
    if (!valid(m.ballot) || m.slot == 0) {
      ++dropped_;
      return;
    }
    if (role_ != Role::leader || m.ballot != ballot_) return;
    auto it = in_flight_.find(m.slot);
    if (it == in_flight_.end()) return;
    it->second.acks.insert(from);
    if (!won(it->second.acks)) return;
    std::optional<PaxosValue> value = std::move(it->second.value);
    in_flight_.erase(it);
    for (NodeId n : options_.members)
      if (n != options_.id) (void)transport_.send(n, LogCommit{m.slot, value});
    learn(m.slot, std::move(value));
  }

  void on(NodeId, LogNack& m) {
    if (!valid(m.ballot) || !valid(m.promised) || m.promised <= m.ballot) {
      ++dropped_;
      return;
    }
    generation_.observe(m.promised.generation);
    if (role_ != Role::follower && m.ballot == ballot_) step_down();
  }

  // ---- Learning and catching up ----

  void learn(std::uint64_t slot, std::optional<PaxosValue> value) {
    if (slot <= applied_ || learned_.count(slot)) return;
    record(PaxosLogRecord::Kind::chosen, PaxosLogEntry{slot, Ballot{}, value}, false);
    learned_.emplace(slot, std::move(value));
    advance();
  }

  void advance() {
    for (auto it = learned_.find(applied_ + 1); it != learned_.end();
         it = learned_.find(applied_ + 1)) {
      ++applied_;
      if (it->second) machine_.apply(applied_, std::span<const std::byte>(*it->second));
    }
  }

  void on(NodeId, LogCommit& m) {
    if (m.slot == 0) {
      ++dropped_;
      return;
    }
    learn(m.slot, std::move(m.value));
  }

  void heartbeat() {
    heartbeat_at_ = clock_.now() + options_.heartbeat_interval;
    for (NodeId n : options_.members)
      if (n != options_.id) (void)transport_.send(n, LogHeartbeat{ballot_, applied_});
  }

  void on(NodeId from, LogHeartbeat& m) {
    if (!valid(m.ballot)) {
      ++dropped_;
      return;
    }
    if (m.ballot < promised_) {
      post(from, LogNack{m.ballot, promised_});
      return;
    }
    follow(m.ballot);
    if (applied_ < m.commit_index) post(from, LogCatchUp{applied_ + 1});
  }

  void on(NodeId from, LogCatchUp& m) {
    if (m.from_slot == 0) {
      ++dropped_;
      return;
    }
    if (role_ != Role::leader) return;
    std::size_t sent = 0;
    for (auto it = learned_.lower_bound(m.from_slot);
         it != learned_.end() && sent < options_.catch_up_batch; ++it, ++sent)
      (void)transport_.send(from, LogCommit{it->first, it->second});
  }

  void handle(NodeId from, PaxosLogMessage m) {
    if (!member(from)) {
      ++dropped_;
      return;
    }
    std::visit([&](auto& x) { on(from, x); }, m);
  }

  // Every send discards its result: a refused send (queue full, peer unknown) is a lost
  // message, which the protocol's retries already cover.
  T transport_;
  C clock_;
  PaxosLogOptions options_;
  MajorityQuorum quorum_;
  WriteAheadLog<PaxosLogRecord, PaxosLogRecordCodec, S> wal_;
  M machine_;
  Random random_;
  GenerationClock<SingleThreaded> generation_;

  Ballot promised_;
  std::map<std::uint64_t, PaxosLogEntry> accepted_;
  std::map<std::uint64_t, std::optional<PaxosValue>> learned_;
  std::uint64_t applied_ = 0;

  Role role_ = Role::follower;
  Ballot ballot_;
  NodeId leader_hint_ = 0;
  std::uint64_t from_slot_ = 1;
  std::uint64_t next_slot_ = 1;
  std::set<NodeId> votes_;
  std::map<std::uint64_t, PaxosLogEntry> reported_;
  std::map<std::uint64_t, InFlight> in_flight_;
  time_point election_at_{};
  time_point heartbeat_at_{};
  std::deque<PaxosLogMessage> self_;
  std::uint64_t dropped_ = 0;
};

}  // namespace pods

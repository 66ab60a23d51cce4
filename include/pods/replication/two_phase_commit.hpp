// pods/replication/two_phase_commit.hpp — Two-Phase Commit (coordinator and participant)
//
// Problem:       A change that spans several servers (a transfer between accounts held on two
//                partitions) must happen on all of them or on none. Each server can crash at
//                any point, messages are lost and reordered, and a server that applies its
//                part before knowing the others can apply theirs leaves the data half-changed.
// Solution:      Two phases, driven by a coordinator. Phase 1 (prepare): the coordinator sends
//                each participant its part; the participant locks the part's keys (a key locked by
//                another transaction, or an application's Admit refusal, makes it vote no),
//                appends a "prepared" record to its write-ahead log, syncs it, and only then votes
//                yes. Phase 2 (decide): with a yes from every participant the coordinator appends
//                a "commit" record, syncs it (the commit point) and then sends commit; one no, or
//                a participant that does not answer within prepare_timeout, makes it abort.
//                Presumed abort: the coordinator never logs an abort, and a transaction it has no
//                record of is aborted, so whoever asks about it is told abort. A participant that
//                voted yes has given up its right to decide: it holds its locks until told, and
//                when the decision does not come it asks the coordinator (the in-doubt query),
//                every query_interval. Restarts replay the logs: a participant re-locks what it
//                prepared and asks about it; a coordinator resends commit to every participant
//                that has not acknowledged a transaction it logged as committed (a transaction it
//                was still preparing is lost with its memory, and is thus aborted). Every message
//                is idempotent: duplicates get the same answer again.
// Guarantees:    Atomicity across crashes that keep synced bytes (MemoryStorage::crash(tear)
//                included): a transaction's parts are applied on all its participants or on
//                none, and a begin() callback that says committed means every participant
//                will apply it. A participant applies each committed part once per
//                incarnation, in commit order, and again (in the same order) when it replays
//                its log after a restart. Once the network delivers and nodes run, every
//                transaction finishes and every lock is released (the coordinator's timeout
//                bounds a prepare, the in-doubt query bounds a prepared participant).
//                Transaction ids never repeat: a coordinator starts a new durable epoch at
//                every start, and an id is (epoch << 32 | sequence).
// Not provided:  Non-blocking commit: while the coordinator is down, prepared participants
//                hold their locks (three-phase commit or a replicated coordinator lifts
//                that). Deadlock avoidance beyond "a lock conflict votes no". Log compaction:
//                both logs grow by a few records per transaction. Reads: the application
//                decides what a read sees (see examples/bank for snapshot reads).
// Thread safety: thread-compatible: one thread (or a SingularUpdateQueue) drives an object.
// Errors:        Bad options throw std::invalid_argument naming the option; begin() throws
//                std::invalid_argument naming the argument (no branches, a participant not in
//                options.participants, a participant named twice). A malformed or misrouted
//                message (a commit for a transaction the participant never prepared, a vote
//                from a node that is not in the transaction) is dropped and counted in
//                dropped(). TwoPhaseMessageCodec::decode throws pods::CorruptionError naming
//                the offset; a corrupt log record throws CorruptionError naming the segment.
// Cost:          A transaction over n participants: 4 n messages (prepare, vote, commit,
//                ack), one sync at the coordinator and two at each participant. The commit
//                point is reached after one round trip and two sequential syncs (the
//                participants' votes, then the decision); the transaction is finished, every
//                lock released, after two round trips and three sequential syncs. Each
//                message allocates its keys and payload.
// Example:
//   pods::ManualClock clock;
//   pods::Outbox<pods::TwoPhaseMessage> out;
//   pods::TwoPhaseCoordinator coordinator(out, clock, pods::MemoryStorage{},
//       pods::TwoPhaseCoordinatorOptions{.id = 1, .participants = {2, 3}});
//   coordinator.begin({{2, {{"alice"}, {}}}, {3, {{"bob"}, {}}}},
//                     [](pods::TxnId, pods::TwoPhaseOutcome o) {
//                       std::printf("%s\n", o == pods::TwoPhaseOutcome::committed ? "yes" : "no");
//                     });
//   for (auto& sent : out.take()) std::printf("prepare to %llu\n",
//       static_cast<unsigned long long>(sent.to));
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: #include <cstdio>
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/storage.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>
#include <pods/storage/file_storage.hpp>
#include <pods/storage/write_ahead_log.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
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

// A transaction id: the coordinator's epoch in the high 32 bits, a sequence in the low 32.
using TxnId = std::uint64_t;

// What one participant does in a transaction: the keys it locks and an opaque payload that
// its application applies on commit.
struct TwoPhaseWork {
  std::vector<std::string> keys;
  std::vector<std::byte> payload;
  friend bool operator==(const TwoPhaseWork&, const TwoPhaseWork&) = default;
};

// One participant's part of a transaction.
struct TwoPhaseBranch {
  NodeId participant = 0;
  TwoPhaseWork work;
  friend bool operator==(const TwoPhaseBranch&, const TwoPhaseBranch&) = default;
};

enum class TwoPhaseOutcome : std::uint8_t { aborted = 0, committed = 1 };

// ---- Messages -------------------------------------------------------------------------------

// Coordinator -> participant: phase 1. Lock work.keys, make the vote durable, vote.
struct TwoPhasePrepare {
  TxnId txn = 0;
  TwoPhaseWork work;
  friend bool operator==(const TwoPhasePrepare&, const TwoPhasePrepare&) = default;
};

// Participant -> coordinator: the vote (yes: prepared durably, keys locked).
struct TwoPhaseVote {
  TxnId txn = 0;
  bool yes = false;
  friend bool operator==(const TwoPhaseVote&, const TwoPhaseVote&) = default;
};

// Coordinator -> participant: phase 2, the decision.
struct TwoPhaseDecision {
  TxnId txn = 0;
  TwoPhaseOutcome outcome = TwoPhaseOutcome::aborted;
  friend bool operator==(const TwoPhaseDecision&, const TwoPhaseDecision&) = default;
};

// Participant -> coordinator: the commit is durable here; stop resending it.
struct TwoPhaseAck {
  TxnId txn = 0;
  friend bool operator==(const TwoPhaseAck&, const TwoPhaseAck&) = default;
};

// Participant -> coordinator: I am prepared and in doubt; what was decided?
struct TwoPhaseQuery {
  TxnId txn = 0;
  friend bool operator==(const TwoPhaseQuery&, const TwoPhaseQuery&) = default;
};

using TwoPhaseMessage =
    std::variant<TwoPhasePrepare, TwoPhaseVote, TwoPhaseDecision, TwoPhaseAck, TwoPhaseQuery>;

// ---- Durable records ------------------------------------------------------------------------

// Coordinator log: a new epoch at each start; a commit decision with its participants; the
// end of a committed transaction (every participant acknowledged; not synced).
struct TwoPhaseEpochRecord {
  std::uint32_t epoch = 0;
  friend bool operator==(const TwoPhaseEpochRecord&, const TwoPhaseEpochRecord&) = default;
};
struct TwoPhaseCommitRecord {
  TxnId txn = 0;
  std::vector<NodeId> participants;
  friend bool operator==(const TwoPhaseCommitRecord&, const TwoPhaseCommitRecord&) = default;
};
struct TwoPhaseEndRecord {
  TxnId txn = 0;
  friend bool operator==(const TwoPhaseEndRecord&, const TwoPhaseEndRecord&) = default;
};
using TwoPhaseCoordinatorRecord =
    std::variant<TwoPhaseEpochRecord, TwoPhaseCommitRecord, TwoPhaseEndRecord>;

// Participant log: a yes vote (with what to apply), and a decision on a prepared transaction.
struct TwoPhasePreparedRecord {
  TxnId txn = 0;
  NodeId coordinator = 0;
  TwoPhaseWork work;
  friend bool operator==(const TwoPhasePreparedRecord&, const TwoPhasePreparedRecord&) = default;
};
struct TwoPhaseDecidedRecord {
  TxnId txn = 0;
  TwoPhaseOutcome outcome = TwoPhaseOutcome::aborted;
  friend bool operator==(const TwoPhaseDecidedRecord&, const TwoPhaseDecidedRecord&) = default;
};
using TwoPhaseParticipantRecord = std::variant<TwoPhasePreparedRecord, TwoPhaseDecidedRecord>;

namespace detail {

inline void write_work(wire::Writer& w, const TwoPhaseWork& work) {
  w.count(work.keys.size());
  for (const auto& k : work.keys)
    w.string(k);
  w.bytes(work.payload);
}

inline TwoPhaseWork read_work(wire::Reader& r) {
  TwoPhaseWork work;
  const std::size_t n = r.count(4);  // each key takes at least its u32 length
  work.keys.reserve(n);
  for (std::size_t i = 0; i < n; ++i)
    work.keys.push_back(r.string());
  work.payload = r.bytes();
  return work;
}

inline TwoPhaseOutcome read_outcome(wire::Reader& r) {
  return r.boolean() ? TwoPhaseOutcome::committed : TwoPhaseOutcome::aborted;
}

inline void write_outcome(wire::Writer& w, TwoPhaseOutcome o) {
  w.boolean(o == TwoPhaseOutcome::committed);
}

}  // namespace detail

// TwoPhaseMessageCodec: a Codec<TwoPhaseMessage>. Layout: a version byte (1), a kind byte (the
// variant index), then the fields in declaration order: a TxnId as a little-endian u64, a
// bool or an outcome as one byte (0 or 1; committed is 1), work as a u32 key count, each key
// as a u32 length and its bytes, then the payload as a u32 length and its bytes. Canonical:
// one encoding per message.
struct TwoPhaseMessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` to `out`. Allocates as `out` grows.
  void encode(const TwoPhaseMessage& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    std::visit([&](const auto& x) { fields(w, x); }, m);
  }

  // Returns the message in `bytes`; throws pods::CorruptionError ("two-phase message", with
  // the offset) when they are not exactly one message. Allocates its keys and payload.
  TwoPhaseMessage decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "two-phase message");
    const std::size_t kind =
        r.header(version, std::variant_size_v<TwoPhaseMessage>,
                 {.version = "two-phase message version", .kind = "two-phase message kind"});
    TwoPhaseMessage m = body(r, kind);
    r.expect_end();
    return m;
  }

 private:
  static void fields(wire::Writer& w, const TwoPhasePrepare& m) {
    w.u64(m.txn);
    detail::write_work(w, m.work);
  }
  static void fields(wire::Writer& w, const TwoPhaseVote& m) {
    w.u64(m.txn);
    w.boolean(m.yes);
  }
  static void fields(wire::Writer& w, const TwoPhaseDecision& m) {
    w.u64(m.txn);
    detail::write_outcome(w, m.outcome);
  }
  static void fields(wire::Writer& w, const TwoPhaseAck& m) { w.u64(m.txn); }
  static void fields(wire::Writer& w, const TwoPhaseQuery& m) { w.u64(m.txn); }

  static TwoPhaseMessage body(wire::Reader& r, std::size_t kind) {
    const TxnId txn = r.u64();
    switch (kind) {
      case 0:
        return TwoPhasePrepare{txn, detail::read_work(r)};
      case 1:
        return TwoPhaseVote{txn, r.boolean()};
      case 2:
        return TwoPhaseDecision{txn, detail::read_outcome(r)};
      case 3:
        return TwoPhaseAck{txn};
      default:
        return TwoPhaseQuery{txn};
    }
  }
};
static_assert(Codec<TwoPhaseMessageCodec, TwoPhaseMessage>);

// The coordinator's record codec: a version byte (1), a kind byte (the variant index), then
// the fields: an epoch as a u32; a commit as its TxnId (u64), a u32 count and each
// participant as a u64; an end as its TxnId.
struct TwoPhaseCoordinatorRecordCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `rec` to `out`.
  void encode(const TwoPhaseCoordinatorRecord& rec, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, rec.index());
    if (const auto* e = std::get_if<TwoPhaseEpochRecord>(&rec)) {
      w.u32(e->epoch);
    } else if (const auto* c = std::get_if<TwoPhaseCommitRecord>(&rec)) {
      w.u64(c->txn);
      w.count(c->participants.size());
      for (NodeId p : c->participants)
        w.u64(p);
    } else {
      w.u64(std::get<TwoPhaseEndRecord>(rec).txn);
    }
  }

  // Returns the record in `bytes`; throws pods::CorruptionError ("two-phase coordinator
  // record") when they are not exactly one record.
  TwoPhaseCoordinatorRecord decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "two-phase coordinator record");
    const std::size_t kind = r.header(version, std::variant_size_v<TwoPhaseCoordinatorRecord>,
                                      {.version = "two-phase coordinator record version",
                                       .kind = "two-phase coordinator record kind"});
    TwoPhaseCoordinatorRecord rec;
    if (kind == 0) {
      rec = TwoPhaseEpochRecord{r.u32()};
    } else if (kind == 1) {
      TwoPhaseCommitRecord c;
      c.txn = r.u64();
      const std::size_t n = r.count(8);
      for (std::size_t i = 0; i < n; ++i)
        c.participants.push_back(r.u64());
      rec = std::move(c);
    } else {
      rec = TwoPhaseEndRecord{r.u64()};
    }
    r.expect_end();
    return rec;
  }
};
static_assert(Codec<TwoPhaseCoordinatorRecordCodec, TwoPhaseCoordinatorRecord>);

// The participant's record codec: a version byte (1), a kind byte (the variant index), then
// the fields: prepared as its TxnId (u64), the coordinator (u64) and the work as in
// TwoPhaseMessageCodec; decided as its TxnId and the outcome byte.
struct TwoPhaseParticipantRecordCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `rec` to `out`.
  void encode(const TwoPhaseParticipantRecord& rec, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, rec.index());
    if (const auto* p = std::get_if<TwoPhasePreparedRecord>(&rec)) {
      w.u64(p->txn);
      w.u64(p->coordinator);
      detail::write_work(w, p->work);
    } else {
      const auto& d = std::get<TwoPhaseDecidedRecord>(rec);
      w.u64(d.txn);
      detail::write_outcome(w, d.outcome);
    }
  }

  // Returns the record in `bytes`; throws pods::CorruptionError ("two-phase participant
  // record") when they are not exactly one record.
  TwoPhaseParticipantRecord decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "two-phase participant record");
    const std::size_t kind = r.header(version, std::variant_size_v<TwoPhaseParticipantRecord>,
                                      {.version = "two-phase participant record version",
                                       .kind = "two-phase participant record kind"});
    TwoPhaseParticipantRecord rec;
    if (kind == 0) {
      TwoPhasePreparedRecord p;
      p.txn = r.u64();
      p.coordinator = r.u64();
      p.work = detail::read_work(r);
      rec = std::move(p);
    } else {
      TwoPhaseDecidedRecord d;
      d.txn = r.u64();
      d.outcome = detail::read_outcome(r);
      rec = d;
    }
    r.expect_end();
    return rec;
  }
};
static_assert(Codec<TwoPhaseParticipantRecordCodec, TwoPhaseParticipantRecord>);

struct TwoPhaseCoordinatorOptions {
  NodeId id = 0;                     // this node
  std::vector<NodeId> participants;  // every node a transaction may name
  // A prepare that has not collected every vote by then is aborted.
  std::chrono::nanoseconds prepare_timeout = std::chrono::milliseconds(200);
  // How often an unanswered prepare, or an unacknowledged commit, is sent again.
  std::chrono::nanoseconds retry_interval = std::chrono::milliseconds(50);
};

struct TwoPhaseParticipantOptions {
  NodeId id = 0;  // this node
  // How often a prepared participant without a decision asks its coordinator.
  std::chrono::nanoseconds query_interval = std::chrono::milliseconds(100);
};

namespace detail {

inline void check_two_phase_duration(const std::string& who, const char* name,
                                     std::chrono::nanoseconds d) {
  if (d.count() <= 0) throw std::invalid_argument(who + ": options." + name + " must be positive");
}

}  // namespace detail

// TwoPhaseCoordinator: runs transactions over participants, logging only commit decisions.
template <Transport<TwoPhaseMessage> T, PhysicalClock C = SteadyClock,
          SegmentStorage S = FileStorage>
class TwoPhaseCoordinator {
 public:
  using time_point = typename C::time_point;
  using Callback = std::function<void(TxnId, TwoPhaseOutcome)>;

  // Opens the coordinator: replays its log from `storage`, keeps resending commit for every
  // logged commit without an end record, and starts a new epoch (one appended and synced
  // record). Keeps copies of the handles. Throws std::invalid_argument naming options.id
  // (zero, or among the participants), options.participants (empty, a zero or repeated node),
  // options.prepare_timeout or options.retry_interval (not positive); what WriteAheadLog
  // throws on bad storage.
  TwoPhaseCoordinator(T transport, C clock, S storage, TwoPhaseCoordinatorOptions options)
      : transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(checked(std::move(options))),
        wal_(std::move(storage)) {
    std::uint32_t epoch = 0;
    for (const auto& e : wal_.replay()) {
      if (const auto* ep = std::get_if<TwoPhaseEpochRecord>(&e.entry)) {
        epoch = std::max(epoch, ep->epoch);
      } else if (const auto* c = std::get_if<TwoPhaseCommitRecord>(&e.entry)) {
        Committing& k = committing_[c->txn];
        k.unacked = std::set<NodeId>(c->participants.begin(), c->participants.end());
        k.retry_at = clock_.now();  // resend at the first tick
      } else {
        committing_.erase(std::get<TwoPhaseEndRecord>(e.entry).txn);
      }
    }
    epoch_ = epoch + 1;
    wal_.append(TwoPhaseEpochRecord{epoch_});
    wal_.sync();
  }

  TwoPhaseCoordinator(const TwoPhaseCoordinator&) = delete;
  TwoPhaseCoordinator& operator=(const TwoPhaseCoordinator&) = delete;

  // Starts a transaction over `branches` (moved) and returns its id: sends each participant
  // its prepare. `done` is retained and runs exactly once, in this incarnation, with
  // committed (after the decision is durable, before commit is sent) or aborted; a restart
  // before the decision forgets it (the transaction aborts). Allocates. Throws
  // std::invalid_argument naming branches (empty), branches[i].participant (not in
  // options.participants, or named twice).
  TxnId begin(std::vector<TwoPhaseBranch> branches, Callback done) {
    if (branches.empty()) {
      throw std::invalid_argument("TwoPhaseCoordinator::begin: branches must not be empty");
    }
    std::set<NodeId> seen;
    for (std::size_t i = 0; i < branches.size(); ++i) {
      const NodeId p = branches[i].participant;
      const std::string at = "TwoPhaseCoordinator::begin: branches[" + std::to_string(i) +
                             "].participant " + std::to_string(p);
      if (!std::binary_search(sorted_.begin(), sorted_.end(), p)) {
        throw std::invalid_argument(at + " is not in options.participants");
      }
      if (!seen.insert(p).second) throw std::invalid_argument(at + " is named twice");
    }
    const TxnId txn = (static_cast<TxnId>(epoch_) << 32) | ++sequence_;
    Preparing& p = preparing_[txn];
    p.branches = std::move(branches);
    p.done = std::move(done);
    p.deadline = clock_.now() + options_.prepare_timeout;
    p.retry_at = clock_.now() + options_.retry_interval;
    for (const auto& b : p.branches)
      (void)transport_.send(b.participant, TwoPhasePrepare{txn, b.work});
    return txn;
  }

  // Handles one message from `from`: votes (deciding when the last yes or the first no
  // arrives), acknowledgements and in-doubt queries (answered from the log: commit, abort
  // when no record says commit, nothing while the transaction is still being prepared).
  // Drops (and counts) a message a coordinator never receives or that names a node outside
  // the transaction. A commit decision is appended and synced before it is sent.
  void receive(NodeId from, TwoPhaseMessage m) {
    std::visit([&](auto& x) { on(from, x); }, m);
  }

  // Fires what is due by the clock: aborts the prepares past prepare_timeout, resends
  // unanswered prepares and unacknowledged commits every retry_interval.
  void tick() {
    const time_point now = clock_.now();
    std::vector<TxnId> expired;
    for (auto& [txn, p] : preparing_) {
      if (now >= p.deadline) {
        expired.push_back(txn);
      } else if (now >= p.retry_at) {
        p.retry_at = now + options_.retry_interval;
        for (const auto& b : p.branches)
          if (!p.yes.count(b.participant))
            (void)transport_.send(b.participant, TwoPhasePrepare{txn, b.work});
      }
    }
    for (TxnId txn : expired)
      abort(txn);
    for (auto& [txn, k] : committing_) {
      if (now < k.retry_at) continue;
      k.retry_at = now + options_.retry_interval;
      for (NodeId p : k.unacked)
        (void)transport_.send(p, TwoPhaseDecision{txn, TwoPhaseOutcome::committed});
    }
  }

  // Returns when tick() next has work, or nullopt when no transaction is open.
  std::optional<time_point> next_deadline() const {
    std::optional<time_point> at;
    auto consider = [&](time_point t) {
      if (!at || t < *at) at = t;
    };
    for (const auto& [txn, p] : preparing_) {
      consider(p.deadline);
      consider(p.retry_at);
    }
    for (const auto& [txn, k] : committing_)
      consider(k.retry_at);
    return at;
  }

  // Returns how many transactions are collecting votes.
  std::size_t preparing() const noexcept { return preparing_.size(); }
  // Returns how many committed transactions wait for acknowledgements.
  std::size_t committing() const noexcept { return committing_.size(); }
  // Returns true while `txn` is committed and not acknowledged by every participant.
  bool is_committing(TxnId txn) const { return committing_.count(txn) != 0; }
  // Returns this incarnation's epoch (1 at the first start).
  std::uint32_t epoch() const noexcept { return epoch_; }
  // Returns how many messages were dropped.
  std::uint64_t dropped() const noexcept { return dropped_; }
  // Returns the options.
  const TwoPhaseCoordinatorOptions& options() const noexcept { return options_; }

 private:
  struct Preparing {
    std::vector<TwoPhaseBranch> branches;
    std::set<NodeId> yes;
    Callback done;
    time_point deadline;
    time_point retry_at;
  };
  struct Committing {
    std::set<NodeId> unacked;
    time_point retry_at;
  };

  TwoPhaseCoordinatorOptions checked(TwoPhaseCoordinatorOptions o) {
    const std::string who = "TwoPhaseCoordinator";
    if (o.id == 0) throw std::invalid_argument(who + ": options.id must not be 0");
    if (o.participants.empty()) {
      throw std::invalid_argument(who + ": options.participants must not be empty");
    }
    sorted_ = o.participants;
    std::sort(sorted_.begin(), sorted_.end());
    if (sorted_.front() == 0) {
      throw std::invalid_argument(who + ": options.participants must not contain node 0");
    }
    if (std::adjacent_find(sorted_.begin(), sorted_.end()) != sorted_.end()) {
      throw std::invalid_argument(who + ": options.participants must not repeat a node");
    }
    if (std::binary_search(sorted_.begin(), sorted_.end(), o.id)) {
      throw std::invalid_argument(who + ": options.id must not be a participant");
    }
    detail::check_two_phase_duration(who, "prepare_timeout", o.prepare_timeout);
    detail::check_two_phase_duration(who, "retry_interval", o.retry_interval);
    return o;
  }

  static bool in(const Preparing& p, NodeId n) {
    return std::any_of(p.branches.begin(), p.branches.end(),
                       [&](const TwoPhaseBranch& b) { return b.participant == n; });
  }

  void abort(TxnId txn) {
    auto it = preparing_.find(txn);
    Preparing p = std::move(it->second);
    preparing_.erase(it);
    // Presumed abort: nothing is logged; a participant that misses this asks and is told.
    for (const auto& b : p.branches)
      (void)transport_.send(b.participant, TwoPhaseDecision{txn, TwoPhaseOutcome::aborted});
    if (p.done) p.done(txn, TwoPhaseOutcome::aborted);
  }

  void commit(TxnId txn) {
    auto it = preparing_.find(txn);
    Preparing p = std::move(it->second);
    preparing_.erase(it);
    TwoPhaseCommitRecord rec{txn, {}};
    for (const auto& b : p.branches)
      rec.participants.push_back(b.participant);
    wal_.append(rec);
    wal_.sync();  // the commit point: durable before anyone hears of it
    Committing& k = committing_[txn];
    k.unacked = std::set<NodeId>(rec.participants.begin(), rec.participants.end());
    k.retry_at = clock_.now() + options_.retry_interval;
    if (p.done) p.done(txn, TwoPhaseOutcome::committed);
    for (NodeId n : rec.participants)
      (void)transport_.send(n, TwoPhaseDecision{txn, TwoPhaseOutcome::committed});
  }

  // Answers a participant that holds `txn` prepared: commit from the log, abort when the log
  // has no commit (presumed abort), nothing while the votes are still being collected.
  void answer(NodeId from, TxnId txn) {
    if (committing_.count(txn)) {
      (void)transport_.send(from, TwoPhaseDecision{txn, TwoPhaseOutcome::committed});
    } else if (!preparing_.count(txn)) {
      (void)transport_.send(from, TwoPhaseDecision{txn, TwoPhaseOutcome::aborted});
    }
  }

  void on(NodeId from, TwoPhaseVote& m) {
    auto it = preparing_.find(m.txn);
    if (it == preparing_.end()) {
      if (m.yes) answer(from, m.txn);  // a late or duplicated yes: tell it what happened
      return;
    }
    Preparing& p = it->second;
    if (!in(p, from)) {
      ++dropped_;
      return;
    }
    if (!m.yes) {
      abort(m.txn);
      return;
    }
    p.yes.insert(from);
    if (p.yes.size() == p.branches.size()) commit(m.txn);
  }

  void on(NodeId from, TwoPhaseAck& m) {
    auto it = committing_.find(m.txn);
    if (it == committing_.end()) return;  // a duplicate after the end
    if (!it->second.unacked.erase(from)) return;
    if (it->second.unacked.empty()) {
      committing_.erase(it);
      // Not synced: a lost end record only makes a restarted coordinator resend commit.
      wal_.append(TwoPhaseEndRecord{m.txn});
    }
  }

  void on(NodeId from, TwoPhaseQuery& m) { answer(from, m.txn); }

  void on(NodeId, TwoPhasePrepare&) { ++dropped_; }
  void on(NodeId, TwoPhaseDecision&) { ++dropped_; }

  // Every send discards its result: a refused send (queue full, peer unknown) is a lost
  // message, which the protocol's retries already cover.
  T transport_;
  C clock_;
  std::vector<NodeId> sorted_;  // options_.participants, sorted
  TwoPhaseCoordinatorOptions options_;
  WriteAheadLog<TwoPhaseCoordinatorRecord, TwoPhaseCoordinatorRecordCodec, S> wal_;
  std::uint32_t epoch_ = 0;
  std::uint32_t sequence_ = 0;
  std::map<TxnId, Preparing> preparing_;
  std::map<TxnId, Committing> committing_;
  std::uint64_t dropped_ = 0;
};

// The state of a transaction at a participant.
enum class TwoPhaseState : std::uint8_t { unknown, prepared, committed, aborted };

// TwoPhaseParticipant: locks, votes durably, applies committed work, asks when in doubt.
template <Transport<TwoPhaseMessage> T, PhysicalClock C = SteadyClock,
          SegmentStorage S = FileStorage>
class TwoPhaseParticipant {
 public:
  using time_point = typename C::time_point;
  // Applies one committed transaction's work to the application's state.
  using Apply = std::function<void(TxnId, const TwoPhaseWork&)>;
  // Returns false to vote no on a new prepare whose keys are free (the application refuses
  // the work, e.g. its timestamp is below a read it has served).
  using Admit = std::function<bool(TxnId, const TwoPhaseWork&)>;

  // Opens the participant: replays its log from `storage`, calling `apply` for every committed
  // transaction in commit order, re-locks the keys of every transaction prepared without a
  // decision (in doubt) and asks its coordinator about each at the first tick. Keeps copies of
  // the handles and retains `apply` and `admit` (empty: apply nothing, admit everything).
  // Throws std::invalid_argument naming options.id (zero) or options.query_interval (not
  // positive); what WriteAheadLog throws on bad storage.
  TwoPhaseParticipant(T transport, C clock, S storage, TwoPhaseParticipantOptions options,
                      Apply apply = {}, Admit admit = {})
      : transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(checked(std::move(options))),
        wal_(std::move(storage)),
        apply_(std::move(apply)),
        admit_(std::move(admit)) {
    for (const auto& e : wal_.replay()) {
      if (const auto* p = std::get_if<TwoPhasePreparedRecord>(&e.entry)) {
        Txn& t = txns_[p->txn];
        t.state = TwoPhaseState::prepared;
        t.coordinator = p->coordinator;
        t.work = p->work;
        t.query_at = clock_.now();
        lock(p->txn, t.work);
      } else {
        const auto& d = std::get<TwoPhaseDecidedRecord>(e.entry);
        auto it = txns_.find(d.txn);
        if (it == txns_.end() || it->second.state != TwoPhaseState::prepared) continue;
        finish(d.txn, it->second, d.outcome);
      }
    }
  }

  TwoPhaseParticipant(const TwoPhaseParticipant&) = delete;
  TwoPhaseParticipant& operator=(const TwoPhaseParticipant&) = delete;

  // Handles one message from `from`. A prepare locks and logs (synced) before the yes vote is
  // sent; a key locked by another transaction votes no. A commit is logged (synced), applied
  // and acknowledged; an abort releases the locks (logged, not synced: a lost abort record
  // only makes the restarted participant ask again). Duplicates get the same answer; a
  // decision after a decision is ignored; a commit for a transaction never prepared is dropped
  // and counted.
  void receive(NodeId from, TwoPhaseMessage m) {
    std::visit([&](auto& x) { on(from, x); }, m);
  }

  // Fires what is due by the clock: the in-doubt query of every prepared transaction whose
  // decision has not come within query_interval.
  void tick() {
    const time_point now = clock_.now();
    for (auto& [txn, t] : txns_) {
      if (t.state != TwoPhaseState::prepared || now < t.query_at) continue;
      t.query_at = now + options_.query_interval;
      (void)transport_.send(t.coordinator, TwoPhaseQuery{txn});
    }
  }

  // Returns when tick() next has work, or nullopt when nothing is in doubt.
  std::optional<time_point> next_deadline() const {
    std::optional<time_point> at;
    for (const auto& [txn, t] : txns_)
      if (t.state == TwoPhaseState::prepared && (!at || t.query_at < *at)) at = t.query_at;
    return at;
  }

  // Returns what this participant knows of `txn` (unknown: never prepared here, or voted no,
  // or an abort heard before a prepare, in a previous incarnation).
  TwoPhaseState state(TxnId txn) const {
    auto it = txns_.find(txn);
    return it == txns_.end() ? TwoPhaseState::unknown : it->second.state;
  }
  // Returns the transaction holding `key`'s lock, or nullopt.
  std::optional<TxnId> lock_holder(const std::string& key) const {
    auto it = locks_.find(key);
    if (it == locks_.end()) return std::nullopt;
    return it->second;
  }
  // Returns how many keys are locked.
  std::size_t locked() const noexcept { return locks_.size(); }
  // Returns how many transactions are prepared without a decision.
  std::size_t in_doubt() const {
    return static_cast<std::size_t>(std::count_if(txns_.begin(), txns_.end(), [](const auto& e) {
      return e.second.state == TwoPhaseState::prepared;
    }));
  }
  // Returns how many messages were dropped.
  std::uint64_t dropped() const noexcept { return dropped_; }
  // Returns the options.
  const TwoPhaseParticipantOptions& options() const noexcept { return options_; }

 private:
  struct Txn {
    TwoPhaseState state = TwoPhaseState::unknown;
    NodeId coordinator = 0;
    TwoPhaseWork work;
    time_point query_at{};
  };

  static TwoPhaseParticipantOptions checked(TwoPhaseParticipantOptions o) {
    const std::string who = "TwoPhaseParticipant";
    if (o.id == 0) throw std::invalid_argument(who + ": options.id must not be 0");
    detail::check_two_phase_duration(who, "query_interval", o.query_interval);
    return o;
  }

  void lock(TxnId txn, const TwoPhaseWork& work) {
    for (const auto& k : work.keys)
      locks_[k] = txn;
  }

  void unlock(TxnId txn, const TwoPhaseWork& work) {
    for (const auto& k : work.keys) {
      auto it = locks_.find(k);
      if (it != locks_.end() && it->second == txn) locks_.erase(it);
    }
  }

  void finish(TxnId txn, Txn& t, TwoPhaseOutcome outcome) {
    unlock(txn, t.work);
    if (outcome == TwoPhaseOutcome::committed) {
      t.state = TwoPhaseState::committed;
      if (apply_) apply_(txn, t.work);
    } else {
      t.state = TwoPhaseState::aborted;
    }
    t.work.payload.clear();
    t.work.payload.shrink_to_fit();
  }

  void on(NodeId from, TwoPhasePrepare& m) {
    auto it = txns_.find(m.txn);
    if (it != txns_.end()) {  // a duplicate: the same vote again
      const TwoPhaseState s = it->second.state;
      (void)transport_.send(from, TwoPhaseVote{m.txn, s != TwoPhaseState::aborted});
      return;
    }
    for (const auto& k : m.work.keys) {
      auto held = locks_.find(k);
      if (held != locks_.end() && held->second != m.txn) {
        txns_[m.txn].state = TwoPhaseState::aborted;  // remembered, not logged
        (void)transport_.send(from, TwoPhaseVote{m.txn, false});
        return;
      }
    }
    if (admit_ && !admit_(m.txn, m.work)) {
      txns_[m.txn].state = TwoPhaseState::aborted;  // refused: remembered, not logged
      (void)transport_.send(from, TwoPhaseVote{m.txn, false});
      return;
    }
    Txn& t = txns_[m.txn];
    t.state = TwoPhaseState::prepared;
    t.coordinator = from;
    t.work = std::move(m.work);
    t.query_at = clock_.now() + options_.query_interval;
    lock(m.txn, t.work);
    wal_.append(TwoPhasePreparedRecord{m.txn, from, t.work});
    wal_.sync();  // the vote is durable before it is sent
    (void)transport_.send(from, TwoPhaseVote{m.txn, true});
  }

  void on(NodeId from, TwoPhaseDecision& m) {
    auto it = txns_.find(m.txn);
    if (it == txns_.end()) {
      if (m.outcome == TwoPhaseOutcome::committed) {
        ++dropped_;  // never prepared here: nothing to commit
      } else {
        txns_[m.txn].state = TwoPhaseState::aborted;  // a later prepare votes no
      }
      return;
    }
    Txn& t = it->second;
    if (t.state == TwoPhaseState::committed && m.outcome == TwoPhaseOutcome::committed) {
      (void)transport_.send(from, TwoPhaseAck{m.txn});  // a duplicate: acknowledge again
      return;
    }
    if (t.state != TwoPhaseState::prepared) return;  // already decided
    wal_.append(TwoPhaseDecidedRecord{m.txn, m.outcome});
    if (m.outcome == TwoPhaseOutcome::committed) {
      wal_.sync();  // durable before it is acknowledged: the coordinator then forgets
      finish(m.txn, t, m.outcome);
      (void)transport_.send(from, TwoPhaseAck{m.txn});
    } else {
      finish(m.txn, t, m.outcome);
    }
  }

  void on(NodeId, TwoPhaseVote&) { ++dropped_; }
  void on(NodeId, TwoPhaseAck&) { ++dropped_; }
  void on(NodeId, TwoPhaseQuery&) { ++dropped_; }

  // Every send discards its result: a refused send (queue full, peer unknown) is a lost
  // message, which the protocol's retries already cover.
  T transport_;
  C clock_;
  TwoPhaseParticipantOptions options_;
  WriteAheadLog<TwoPhaseParticipantRecord, TwoPhaseParticipantRecordCodec, S> wal_;
  Apply apply_;
  Admit admit_;
  std::map<TxnId, Txn> txns_;
  std::map<std::string, TxnId> locks_;
  std::uint64_t dropped_ = 0;
};

}  // namespace pods

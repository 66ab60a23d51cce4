// pods/replication/replicated_log.hpp — Replicated Log (Leader and Followers, Raft-style)
//
// Problem:       A state machine on one server dies with the server. Copying commands to
//                several servers is not enough: under crashes, partitions and reordering
//                they apply different commands in different orders, or lose a command a
//                client was told had been committed.
// Solution:      The servers keep one log and agree on it, as in Raft (Ongaro and Ousterhout,
//                "In Search of an Understandable Consensus Algorithm", extended version
//                2014; sections cited at each rule). One leader per term (a GenerationClock)
//                appends client commands and sends them to the followers in AppendEntries;
//                an entry a majority stored is committed (the HighWaterMark) and applied, in
//                index order, to the user's StateMachine on every server.
//                  - Election (§5.2): a follower that hears no leader for a randomised timeout
//                    (drawn from a pods::Random seeded by options.seed) asks for votes in a
//                    new term; each server grants one vote per term, durably, before replying.
//                  - Pre-vote (§9.6): before raising its term, a candidate asks whether it
//                    could win, so a server rejoining from a partition does not disrupt the
//                    cluster with a higher term.
//                  - Check-quorum (§6, dissertation §6.2): a leader that has not heard from a
//                    majority within an election timeout steps down, and a server that heard
//                    from a leader within the minimum election timeout ignores vote requests.
//                  - Up-to-date rule (§5.4.1): a vote or pre-vote goes only to a candidate
//                    whose log is at least as up to date (last term, then last index).
//                  - Log matching (§5.3): AppendEntries names the entry before the new ones; a
//                    follower without it refuses, with a fast back-off hint (the conflicting
//                    term and its first index); a follower whose entry conflicts truncates its
//                    log there (the storage log's truncate_after) before appending.
//                  - Commit (§5.4.2): a leader appends a no-op at the start of its term and
//                    moves the high-water mark by counting replicas only to an entry of its
//                    own term; followers learn the mark from AppendEntries.
//                  - Replication: pipelined AppendEntries, up to options.window unanswered
//                    messages per follower of up to options.max_batch_entries entries each;
//                    what is not acknowledged is sent again from the follower's match index
//                    at the next heartbeat.
//                  - Membership (Raft dissertation, Ongaro 2014, §4.1-4.3): one server is
//                    added or removed at a time by a configuration entry in the log; every
//                    server uses the latest configuration in its log, committed or not, and
//                    a truncated one rolls back to the previous. A leader makes a change only
//                    once its own no-op committed and no other change is uncommitted; a
//                    leader that removed itself steps down once the change commits.
//                  - Learners (§4.2.1): members that receive the log but never campaign and
//                    never count, for the commit or in an election (a learner answers a
//                    vote request, since it may have been promoted without knowing it yet,
//                    but no candidate counts it); a new server joins as a learner, catches
//                    up, and is promoted to voter by a second change.
//                  - Snapshots (§7): compact() (or options.snapshot_every applied entries)
//                    takes the state machine's snapshot at the applied index with that
//                    entry's term and the configuration then, writes it to the one of two
//                    reserved segments that does not hold the current snapshot, syncs it, and
//                    only then drops the previous one and the log segments it covers (the
//                    SnapshotLowWaterMark). A rebuilt server restores the snapshot, then the
//                    log after it.
//                  - InstallSnapshot (§7): a follower that needs a compacted entry gets the
//                    snapshot in chunks of options.snapshot_chunk_bytes (Figure 13), one in
//                    flight at a time, each acknowledged with the bytes held so far (a lost
//                    chunk is resent at the next heartbeat; one at an unexpected offset is
//                    answered with the offset wanted); with the last chunk it restores the
//                    machine from it, makes it durable, keeps its log after it when it holds
//                    the snapshot's entry with the same term, discards all of it otherwise,
//                    and replies; AppendEntries resume after it. A snapshot the machine
//                    refuses (CorruptionError) is dropped and counted, unanswered.
//                  - Leadership transfer (dissertation §3.10): transfer_leadership(to) stops
//                    proposals, brings `to` up to date, sends it TimeoutNow; `to` campaigns at
//                    once, without pre-vote, and the voters disregard their leader lease for
//                    it. The transfer is given up after election_timeout_max.
// Guarantees:    Election safety (at most one leader per term), log matching, leader
//                completeness and state machine safety (§5.4.3): no two servers apply
//                different commands at one index, and a committed entry is never lost, under
//                message loss, duplication, reordering, partitions (one-way ones too), process
//                pauses and crashes that lose unsynced bytes. Every acknowledgement (vote,
//                AppendEntries reply, the leader's own match index) covers only synced state.
//                A server rebuilt from its storage continues correctly. The high-water mark
//                never goes back while a server runs. The same holds while servers join and
//                leave one at a time: any majority of a configuration shares a server with any
//                majority of the next. A removed server cannot depose the leader while the
//                leader is heard (pre-vote and check-quorum).
// Not provided:  Joint consensus (changes of several servers at once), read paths (see
//                follower_reads.hpp); snapshots over options.max_snapshot_bytes (a follower
//                refuses their chunks), streamed to or from storage (the chunks of an incoming
//                snapshot are gathered in memory); snapshots taken off the calling thread;
//                exactly-once client commands (a command retried after a timeout may be applied
//                twice: deduplicate in the state machine); liveness under clock drift beyond the
//                timeouts' margins.
// Thread safety: thread-confined: one thread calls receive, tick, propose and the
//                accessors; the state machine is called from those calls.
// Errors:        Bad options throw std::invalid_argument naming the option and the rule.
//                propose() returns Errc::not_leader on a server that is not the leader
//                (leader() is the hint); so do the membership changes, which return
//                Errc::full while a change is pending or the term's no-op is uncommitted,
//                and throw std::invalid_argument naming the node for a bad one. During a
//                leadership transfer propose() and the changes return Errc::full;
//                transfer_leadership throws std::invalid_argument naming a target that is 0,
//                this server or not a voter. A malformed
//                message (from node 0 or itself, inconsistent indices, a configuration that
//                does not decode, a snapshot the machine's restore refuses) is dropped and
//                counted by dropped(). Storage failures throw
//                std::system_error; a bad term and vote record before the last one, or a
//                log entry that does not decode, throws pods::CorruptionError naming the
//                segment (or entry) and the offset; so does a log that starts after the
//                snapshot (or after index 1 without one). A torn snapshot is ignored.
// Cost:          propose(): one log append (no sync). tick(): one message per follower per
//                batch, sent before at most one sync of the log (dissertation §10.2.1: the
//                leader's write overlaps the followers'). A follower: one append and one
//                sync per AppendEntries that carries entries. Memory: 8 bytes per log entry
//                (the terms) and the state machine. A membership change: one log entry (8
//                bytes per member) and one replication round; the configurations in the log
//                are kept in memory. A snapshot: machine.snapshot(), one write and sync of its
//                bytes, the removal of the segments it covers; its bytes stay in memory (for
//                InstallSnapshot; a transfer under way keeps the snapshot it started with, shared
//                by the followers receiving it). Sending one: a chunk per reply (a copy of at most
//                snapshot_chunk_bytes). An install: its bytes gathered in memory, one write and
//                sync, a restore, and, when the log conflicts, the removal of every log segment.
// Example:
//   pods::ReplicatedLog node(pods::MemoryStorage{}, out, clock, machine,
//                            {.self = 1, .voters = {1}, .seed = 7});
//   clock.advance(std::chrono::seconds(1));
//   node.tick();                                   // a single voter elects itself
//   auto index = node.propose(std::vector<std::byte>{std::byte{42}});
//   node.tick();                                   // sync, commit, apply
//   assert(index && machine.applied == 1);
//   assert(node.add_learner(2));                   // server 2 joins as a learner
//   assert(node.configuration().learners == std::vector<pods::NodeId>{2});
//   assert(node.compact() && node.snapshot_index() == node.applied_index());  // §7
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: struct Machine { int applied = 0;
// Example context:   void apply(std::uint64_t, std::span<const std::byte>) { ++applied; }
// Example context:   std::vector<std::byte> snapshot() const { return {}; }
// Example context:   void restore(std::span<const std::byte>) {} } machine;
// Example context: pods::Outbox<pods::ReplicatedLogMessage> out;
// Example context: pods::ManualClock clock;
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
#include <pods/replication/high_water_mark.hpp>
#include <pods/storage/crc32c.hpp>
#include <pods/storage/low_water_mark.hpp>
#include <pods/storage/segmented_log_core.hpp>
#include <pods/time/generation_clock.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

// A StateMachine receives the committed commands in index order.
// Semantic requirements the compiler cannot check:
//   - apply is deterministic: the same commands in the same order give the same state on
//     every server;
//   - restore(snapshot()) gives back the same state;
//   - restore of bytes that are not a snapshot throws pods::CorruptionError and leaves the
//     state as it was (a leader's snapshot that does not decode is then dropped and counted,
//     not installed; on recovery the error propagates, naming the snapshot).
// clang-format off
template <class S>
concept StateMachine = requires(S& s, const S& cs, std::uint64_t index,
                                std::span<const std::byte> bytes) {
  s.apply(index, bytes);
  { cs.snapshot() } -> std::convertible_to<std::vector<std::byte>>;
  s.restore(bytes);
};
// clang-format on

// What an entry of the replicated log carries (its byte on the wire and on disk).
enum class RaftEntryKind : std::uint8_t {
  command = 0,        // a client's command, applied to the state machine
  noop = 1,           // a new leader's no-op (§5.4.2), applied to nothing
  configuration = 2,  // a membership change (dissertation §4.1): an encoded RaftConfiguration
};

// One entry of the replicated log: the term of the leader that appended it, its kind and its
// bytes (the command, nothing for a no-op, the configuration for a membership change).
struct RaftEntry {
  std::uint64_t term = 0;
  RaftEntryKind kind = RaftEntryKind::command;
  std::vector<std::byte> command;

  friend bool operator==(const RaftEntry&, const RaftEntry&) = default;
};

namespace detail {

// The one layout of a RaftEntry, in AppendEntries and in the storage log alike: the term, the
// kind byte (0..2), then the length-prefixed command.
inline void write_entry(wire::Writer& w, const RaftEntry& e) {
  w.u64(e.term);
  w.u8(static_cast<std::uint8_t>(e.kind));
  w.bytes(e.command);
}

// Reads one entry written by write_entry. Allocates. Throws pods::CorruptionError for a
// truncated field or an unknown kind.
inline RaftEntry read_entry(wire::Reader& r) {
  RaftEntry e;
  e.term = r.u64();
  e.kind = static_cast<RaftEntryKind>(r.kind(3, "entry kind"));
  e.command = r.bytes();
  return e;
}

}  // namespace detail

// The members of a cluster (Raft dissertation §4): voters elect the leader and count for the
// commit; learners (§4.2.1) only receive the log. Both lists ascending and disjoint.
struct RaftConfiguration {
  std::vector<NodeId> voters;
  std::vector<NodeId> learners;

  // Returns true when `id` is a voter. No allocation.
  bool is_voter(NodeId id) const noexcept {
    return std::binary_search(voters.begin(), voters.end(), id);
  }
  // Returns true when `id` is a learner. No allocation.
  bool is_learner(NodeId id) const noexcept {
    return std::binary_search(learners.begin(), learners.end(), id);
  }

  // Appends the encoding (a count and the u64 ids of the voters, then of the learners) to
  // `out`. Allocates as out grows.
  void encode(Buffer& out) const {
    wire::Writer w(out);
    for (const std::vector<NodeId>* ids : {&voters, &learners}) {
      w.count(ids->size());
      for (NodeId id : *ids)
        w.u64(id);
    }
  }

  // Decodes a configuration from exactly `bytes`; `where` names them in errors. Allocates.
  // Throws pods::CorruptionError naming where and the offset for a truncated list, no voter,
  // node 0, a list out of ascending order, a node in both lists, or trailing bytes.
  static RaftConfiguration decode(std::span<const std::byte> bytes, const std::string& where) {
    wire::Reader r(bytes, where);
    RaftConfiguration c;
    for (std::vector<NodeId>* ids : {&c.voters, &c.learners}) {
      const std::size_t n = r.count(8);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t at = r.offset();
        const NodeId id = r.u64();
        if (id == 0 || (!ids->empty() && id <= ids->back())) {
          throw CorruptionError(where, at, "configuration node 0 or out of ascending order");
        }
        if (ids == &c.learners && c.is_voter(id)) {
          throw CorruptionError(where, at, "configuration node both voter and learner");
        }
        ids->push_back(id);
      }
      if (ids == &c.voters && n == 0) {
        throw CorruptionError(where, r.offset(), "configuration without a voter");
      }
    }
    r.expect_end();
    return c;
  }

  friend bool operator==(const RaftConfiguration&, const RaftConfiguration&) = default;
};

// A candidate's (or pre-candidate's) request for a vote (§5.2, §9.6).
struct RequestVote {
  std::uint64_t term = 0;  // the candidate's term (for a pre-vote: the term it would start)
  std::uint64_t last_log_index = 0;
  std::uint64_t last_log_term = 0;
  bool pre_vote = false;
  bool transfer = false;  // sent on a TimeoutNow: voters disregard their leader lease (§3.10)

  friend bool operator==(const RequestVote&, const RequestVote&) = default;
};

// The answer to a RequestVote.
struct VoteReply {
  std::uint64_t term = 0;  // the voter's term (for a granted pre-vote: the request's term)
  bool granted = false;
  bool pre_vote = false;

  friend bool operator==(const VoteReply&, const VoteReply&) = default;
};

// The leader's replication message (§5.3); with no entries, a heartbeat.
struct AppendEntries {
  std::uint64_t term = 0;
  std::uint64_t prev_index = 0;  // the entry before `entries`
  std::uint64_t prev_term = 0;
  std::uint64_t commit = 0;  // the leader's high-water mark
  std::vector<RaftEntry> entries;
  std::uint64_t round = 0;  // the leader's heartbeat round when sent (read paths, §8)

  friend bool operator==(const AppendEntries&, const AppendEntries&) = default;
};

// The answer to an AppendEntries.
struct AppendReply {
  std::uint64_t term = 0;
  bool success = false;
  std::uint64_t match_index = 0;     // success: the last index known to match the leader's
  std::uint64_t conflict_term = 0;   // refusal: the follower's term at prev_index (0: none)
  std::uint64_t conflict_index = 0;  // refusal: first index of conflict_term, or last + 1
  std::uint64_t round = 0;           // the round of the AppendEntries answered

  friend bool operator==(const AppendReply&, const AppendReply&) = default;
};

// The leader's snapshot for a follower that needs entries the leader has compacted (§7): the
// state machine's bytes at last_index, the term of that entry and the configuration then, sent
// in chunks (Figure 13): `data` holds the snapshot's bytes from `offset`, and `done` marks the
// last chunk. A snapshot that fits one chunk is one message with offset 0 and done.
struct InstallSnapshot {
  std::uint64_t term = 0;
  std::uint64_t last_index = 0;
  std::uint64_t last_term = 0;
  RaftConfiguration configuration;
  std::vector<std::byte> data;
  std::uint64_t offset = 0;  // where `data` starts in the snapshot's bytes
  bool done = true;          // `data` ends the snapshot

  friend bool operator==(const InstallSnapshot&, const InstallSnapshot&) = default;
};

// The answer to an InstallSnapshot: the follower's term and the index its state now covers
// (0 from a follower with a higher term, or while a chunked snapshot is incomplete). For a
// chunk that did not complete the snapshot, `snapshot_index` names the snapshot (its
// last_index) and `offset` how many of its bytes the follower holds: the next chunk starts
// there.
struct InstallSnapshotReply {
  std::uint64_t term = 0;
  std::uint64_t last_index = 0;
  std::uint64_t snapshot_index = 0;  // 0: not a chunk's progress
  std::uint64_t offset = 0;

  friend bool operator==(const InstallSnapshotReply&, const InstallSnapshotReply&) = default;
};

// A leader handing over leadership tells the caught-up target to start an election at once
// (Raft dissertation §3.10).
struct TimeoutNow {
  std::uint64_t term = 0;

  friend bool operator==(const TimeoutNow&, const TimeoutNow&) = default;
};

using ReplicatedLogMessage = std::variant<RequestVote, VoteReply, AppendEntries, AppendReply,
                                          InstallSnapshot, InstallSnapshotReply, TimeoutNow>;

// The wire format of ReplicatedLogMessage: a version byte (3), a tag byte (0..6 in variant
// order), then the fields in declaration order, little-endian; booleans one byte (0 or 1),
// entries as a count then (term, kind byte 0..2, length-prefixed bytes); a configuration as
// length-prefixed RaftConfiguration bytes, snapshot data length-prefixed. A RequestVote's
// transfer flag is one trailing byte 1 when set and absent when not, so a RequestVote without
// it reads as before. Likewise an InstallSnapshot chunk other than a whole snapshot (offset 0,
// done) ends with its offset (u64) and done (boolean), and an InstallSnapshotReply with a
// chunk's progress ends with snapshot_index and offset (u64 each); without them each reads as
// the whole-snapshot message before chunks. Version 1 had a no-op boolean where the kind byte is;
// version 2 had no heartbeat round in AppendEntries and AppendReply.
struct ReplicatedLogMessageCodec {
  static constexpr std::uint8_t version = 3;

  // Appends the encoding of `m` to `out`. Allocates as out grows.
  void encode(const ReplicatedLogMessage& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    std::visit([&](const auto& v) { put(w, v); }, m);
  }

  // Decodes one message from exactly `bytes`. Allocates. Throws pods::CorruptionError naming
  // the message and the offset for a wrong version or tag, a truncated field, a boolean other
  // than 0 or 1, or trailing bytes.
  ReplicatedLogMessage decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "ReplicatedLogMessage");
    const std::size_t tag =
        r.header(version, std::variant_size_v<ReplicatedLogMessage>, {.kind = "message tag"});
    ReplicatedLogMessage m;
    switch (tag) {
      case 0: {
        RequestVote v;
        v.term = r.u64();
        v.last_log_index = r.u64();
        v.last_log_term = r.u64();
        v.pre_vote = r.boolean();
        if (r.remaining() > 0) {
          const std::size_t at = r.offset();
          v.transfer = r.boolean();
          if (!v.transfer) {
            throw CorruptionError("ReplicatedLogMessage", at, "transfer flag 0 must be omitted");
          }
        }
        m = v;
        break;
      }
      case 1: {
        VoteReply v;
        v.term = r.u64();
        v.granted = r.boolean();
        v.pre_vote = r.boolean();
        m = v;
        break;
      }
      case 2: {
        AppendEntries a;
        a.term = r.u64();
        a.prev_index = r.u64();
        a.prev_term = r.u64();
        a.commit = r.u64();
        const std::size_t n = r.count(8 + 1 + 1);
        a.entries.reserve(n);
        for (std::size_t i = 0; i < n; ++i)
          a.entries.push_back(detail::read_entry(r));
        a.round = r.u64();
        m = std::move(a);
        break;
      }
      case 3: {
        AppendReply a;
        a.term = r.u64();
        a.success = r.boolean();
        a.match_index = r.u64();
        a.conflict_term = r.u64();
        a.conflict_index = r.u64();
        a.round = r.u64();
        m = a;
        break;
      }
      case 4: {
        InstallSnapshot s;
        s.term = r.u64();
        s.last_index = r.u64();
        s.last_term = r.u64();
        s.configuration =
            RaftConfiguration::decode(r.bytes_view(), "ReplicatedLogMessage configuration");
        s.data = r.bytes();
        if (r.remaining() > 0) {
          const std::size_t at = r.offset();
          s.offset = r.u64();
          s.done = r.boolean();
          if (s.offset == 0 && s.done) {
            throw CorruptionError("ReplicatedLogMessage", at,
                                  "a whole snapshot's offset 0 and done must be omitted");
          }
        }
        m = std::move(s);
        break;
      }
      case 5: {
        InstallSnapshotReply s;
        s.term = r.u64();
        s.last_index = r.u64();
        if (r.remaining() > 0) {
          const std::size_t at = r.offset();
          s.snapshot_index = r.u64();
          s.offset = r.u64();
          if (s.snapshot_index == 0) {
            throw CorruptionError("ReplicatedLogMessage", at,
                                  "a reply without a chunk's progress must omit it");
          }
        }
        m = s;
        break;
      }
      case 6: {
        TimeoutNow t;
        t.term = r.u64();
        m = t;
        break;
      }
    }
    r.expect_end();
    return m;
  }

 private:
  static void put(wire::Writer& w, const RequestVote& v) {
    w.u64(v.term);
    w.u64(v.last_log_index);
    w.u64(v.last_log_term);
    w.boolean(v.pre_vote);
    if (v.transfer) w.boolean(true);
  }
  static void put(wire::Writer& w, const VoteReply& v) {
    w.u64(v.term);
    w.boolean(v.granted);
    w.boolean(v.pre_vote);
  }
  static void put(wire::Writer& w, const AppendEntries& a) {
    w.u64(a.term);
    w.u64(a.prev_index);
    w.u64(a.prev_term);
    w.u64(a.commit);
    w.count(a.entries.size());
    for (const RaftEntry& e : a.entries)
      detail::write_entry(w, e);
    w.u64(a.round);
  }
  static void put(wire::Writer& w, const AppendReply& a) {
    w.u64(a.term);
    w.boolean(a.success);
    w.u64(a.match_index);
    w.u64(a.conflict_term);
    w.u64(a.conflict_index);
    w.u64(a.round);
  }
  static void put(wire::Writer& w, const InstallSnapshot& s) {
    w.u64(s.term);
    w.u64(s.last_index);
    w.u64(s.last_term);
    Buffer config;
    s.configuration.encode(config);
    w.bytes(config);
    w.bytes(s.data);
    if (s.offset != 0 || !s.done) {
      w.u64(s.offset);
      w.boolean(s.done);
    }
  }
  static void put(wire::Writer& w, const InstallSnapshotReply& s) {
    w.u64(s.term);
    w.u64(s.last_index);
    if (s.snapshot_index != 0) {
      w.u64(s.snapshot_index);
      w.u64(s.offset);
    }
  }
  static void put(wire::Writer& w, const TimeoutNow& t) { w.u64(t.term); }
};
static_assert(Codec<ReplicatedLogMessageCodec, ReplicatedLogMessage>);

// The rules ReplicatedLog follows. Every member is true in RaftRules; a test may pass a
// policy that turns one off to show that its checker notices.
struct RaftRules {
  static constexpr bool up_to_date_check = true;      // §5.4.1
  static constexpr bool current_term_commit = true;   // §5.4.2
  static constexpr bool one_change_at_a_time = true;  // dissertation §4.1
  static constexpr bool durable_install = true;       // §7: the snapshot synced before the reply
  static constexpr bool chunks_in_order = true;       // Figure 13: a chunk only at the held offset
};

struct ReplicatedLogOptions {
  NodeId self = 0;
  std::vector<NodeId> voters;      // the initial voters (the configuration before any change)
  std::vector<NodeId> learners{};  // the initial learners; self is in one of the two lists
  std::chrono::nanoseconds heartbeat_interval = std::chrono::milliseconds(50);
  std::chrono::nanoseconds election_timeout_min = std::chrono::milliseconds(300);
  std::chrono::nanoseconds election_timeout_max = std::chrono::milliseconds(600);
  std::size_t window = 4;              // unanswered AppendEntries per follower
  std::size_t max_batch_entries = 64;  // entries per AppendEntries
  bool pre_vote = true;                // §9.6
  bool check_quorum = true;            // §6
  std::uint64_t seed = 0;              // election jitter
  LogOptions log{};                    // the storage log's segments (sync is managed here)
  std::uint64_t snapshot_every = 0;    // §7: snapshot after this many applied entries (0: never)
  std::size_t max_snapshot_bytes = std::size_t{64} << 20;   // larger snapshots are refused
  std::size_t snapshot_chunk_bytes = std::size_t{1} << 20;  // bytes per InstallSnapshot chunk
};

enum class RaftRole { follower, pre_candidate, candidate, leader };

namespace detail {

// The id of the segment holding the durable term and vote: no log segment has it (segment ids
// are first indices, at most SegmentedLog's max_index).
inline constexpr std::uint64_t raft_state_segment = std::numeric_limits<std::uint64_t>::max();

// The two segments that hold snapshots (§7), written in turn: a new snapshot goes to the one
// that does not hold the current one, so a torn write never replaces a good snapshot.
inline constexpr std::uint64_t raft_snapshot_segments[2] = {raft_state_segment - 1,
                                                            raft_state_segment - 2};

// The largest index the log may hold: a log segment's id is the index of its first entry, so
// indices stop below the state and snapshot segments' ids. An InstallSnapshot whose log would
// start past it is malformed.
inline constexpr std::uint64_t raft_max_index = raft_state_segment - 3;

// A SegmentStorage view that hides the state and snapshot segments, so that the log sees only
// its own.
template <SegmentStorage S>
class RaftLogStorage {
 public:
  explicit RaftLogStorage(S storage) : s_(std::move(storage)) {}
  std::vector<std::uint64_t> list() const {
    std::vector<std::uint64_t> ids = s_.list();
    std::erase(ids, raft_state_segment);
    for (std::uint64_t id : raft_snapshot_segments)
      std::erase(ids, id);
    return ids;
  }
  void create(std::uint64_t id) { s_.create(id); }
  void append(std::uint64_t id, std::span<const std::byte> b) { s_.append(id, b); }
  std::size_t read(std::uint64_t id, std::uint64_t at, std::span<std::byte> out) const {
    return s_.read(id, at, out);
  }
  std::uint64_t size(std::uint64_t id) const { return s_.size(id); }
  void sync(std::uint64_t id) { s_.sync(id); }
  void truncate(std::uint64_t id, std::uint64_t n) { s_.truncate(id, n); }
  void remove(std::uint64_t id) { s_.remove(id); }
  std::string name(std::uint64_t id) const { return std::string(s_.name(id)); }
  void acquire_writer() requires requires(S& s) { s.acquire_writer(); }
  { s_.acquire_writer(); }
  void release_writer() noexcept requires requires(S& s) { s.release_writer(); }
  { s_.release_writer(); }

 private:
  S s_;
};

}  // namespace detail

template <SegmentStorage Storage, Transport<ReplicatedLogMessage> T, PhysicalClock Clock,
          StateMachine SM, class Rules = RaftRules>
class ReplicatedLog {
 public:
  using Message = ReplicatedLogMessage;
  using time_point = typename Clock::time_point;

  // Opens the server's durable state (term, vote, snapshot, log) from `storage` (a copy is
  // kept) and starts as a follower. `machine` is retained by reference and must outlive the
  // log; it should be empty: it is restored from the snapshot when there is one (§7), and the
  // committed entries after it are applied as the mark is learnt. Throws std::invalid_argument
  // naming the option when options break a rule, pods::CorruptionError for bad durable state
  // (a log that starts after the snapshot), what the storage and the machine throw.
  ReplicatedLog(Storage storage, T transport, Clock clock, SM& machine,
                ReplicatedLogOptions options)
      : options_(validated(std::move(options))),
        storage_(storage),
        log_(detail::RaftLogStorage<Storage>(storage), options_.log),
        transport_(std::move(transport)),
        clock_(std::move(clock)),
        machine_(machine),
        quorum_(options_.voters),
        mark_(quorum_),
        random_(options_.seed) {
    RaftConfiguration initial{options_.voters, options_.learners};
    std::sort(initial.voters.begin(), initial.voters.end());
    std::sort(initial.learners.begin(), initial.learners.end());
    configs_.push_back({0, std::move(initial)});
    recover_state();
    recover_snapshot();
    for (const LogEntry& e : log_.entries(base_ + 1)) {
      RaftEntry entry = decode_entry(e.index, e.payload);
      terms_.push_back(entry.term);
      if (entry.kind == RaftEntryKind::configuration) {
        configs_.push_back({e.index, decoded(entry, e.index)});
      }
    }
    adopt_configuration();
    synced_ = last_index();
    reset_election_timer();
  }

  ReplicatedLog(const ReplicatedLog&) = delete;
  ReplicatedLog& operator=(const ReplicatedLog&) = delete;

  // Appends `command` (copied) to the log when this server leads and returns its index; the
  // entry is synced, replicated and applied by later tick() and receive() calls. Returns
  // Errc::not_leader otherwise (leader() names the leader when known). Allocates.
  // Returns Errc::full while a leadership transfer is under way (dissertation §3.10).
  Outcome<std::uint64_t> propose(std::span<const std::byte> command) {
    if (role_ != RaftRole::leader) return Errc::not_leader;
    if (transfer_to_) return Errc::full;
    return append_local(
        RaftEntry{term(), RaftEntryKind::command, {command.begin(), command.end()}});
  }

  // ---- membership changes (Raft dissertation §4.1-4.3), one server at a time ----------
  // Each appends a configuration entry when this server leads and returns its index; the
  // new configuration is in force from that moment on every server that appends the entry,
  // committed or not (§4.1). Returns Errc::not_leader on a server that is not the leader,
  // and Errc::full while the leader has not committed an entry of its own term (its no-op)
  // or an earlier change is not committed (one change at a time). Allocates. Throws
  // std::invalid_argument naming node when it is 0 or breaks the rule in the comment.

  // Adds `node` as a learner (§4.2.1): it receives the log, never votes, never counts. The
  // way to add a server: add_learner, wait until it caught up (match_index), then promote.
  // Throws when node is already a voter or a learner.
  Outcome<std::uint64_t> add_learner(NodeId node) {
    return change("add_learner", node, [&](RaftConfiguration& c) {
      if (c.is_voter(node) || c.is_learner(node))
        reject("add_learner", node, "is already a member");
      c.learners.insert(std::upper_bound(c.learners.begin(), c.learners.end(), node), node);
    });
  }

  // Adds `node` straight as a voter (§4.1). A server with an empty log makes the cluster
  // wait for its catch-up before it counts; prefer add_learner then promote. Throws when
  // node is already a voter or a learner (promote a learner).
  Outcome<std::uint64_t> add_voter(NodeId node) {
    return change("add_voter", node, [&](RaftConfiguration& c) {
      if (c.is_voter(node)) reject("add_voter", node, "is already a voter");
      if (c.is_learner(node)) reject("add_voter", node, "is a learner: promote it");
      c.voters.insert(std::upper_bound(c.voters.begin(), c.voters.end(), node), node);
    });
  }

  // Makes the learner `node` a voter (§4.2.1). Throws when node is not a learner.
  Outcome<std::uint64_t> promote(NodeId node) {
    return change("promote", node, [&](RaftConfiguration& c) {
      if (c.is_voter(node)) reject("promote", node, "is already a voter");
      if (!c.is_learner(node)) reject("promote", node, "is not a learner (unknown node)");
      std::erase(c.learners, node);
      c.voters.insert(std::upper_bound(c.voters.begin(), c.voters.end(), node), node);
    });
  }

  // Removes the voter or learner `node` (§4.2.2); a leader that removes itself goes on
  // leading, not counting itself, until the entry commits, then steps down. Throws when node
  // is not a member or is the last voter.
  Outcome<std::uint64_t> remove(NodeId node) {
    return change("remove", node, [&](RaftConfiguration& c) {
      if (!c.is_voter(node) && !c.is_learner(node)) {
        reject("remove", node, "is not a member (unknown node)");
      }
      if (c.is_voter(node) && c.voters.size() == 1) reject("remove", node, "is the last voter");
      std::erase(c.voters, node);
      std::erase(c.learners, node);
    });
  }

  // ---- snapshots (§7) and leadership transfer (dissertation §3.10) ---------------------

  // Takes a snapshot of the state machine at the applied index, makes it durable (in the
  // snapshot segment that does not hold the current one, synced before it counts), then
  // removes the log segments wholly covered by it (SnapshotLowWaterMark). Returns false, and
  // does nothing, when nothing was applied since the last snapshot. Called by itself every
  // options.snapshot_every applied entries. Allocates (the snapshot's bytes are retained, to
  // be sent to lagging followers). Throws what the storage and machine.snapshot() throw.
  bool compact() {
    if (applied_ <= base_) return false;
    const std::uint64_t index = applied_;
    const std::uint64_t t = term_at(index);
    RaftConfiguration config = configuration_at(index);
    std::vector<std::byte> data = machine_.snapshot();
    write_snapshot(index, t, config, data, true);
    drop_prefix(index, t, config);
    current_ = std::make_shared<const SnapshotImage>(
        SnapshotImage{index, t, std::move(config), std::move(data)});
    ++snapshots_taken_;
    lwm_.snapshot_taken(index);
    lwm_.clean(log_);
    return true;
  }

  // Hands leadership to the voter `to` (dissertation §3.10): refuses proposals and
  // membership changes (Errc::full) from now on, brings `to` up to date, then sends it
  // TimeoutNow, on which it starts an election at once. Gives up after
  // options.election_timeout_max (transfer_target() is then nullopt again). Returns
  // Errc::not_leader on a server that is not the leader. Throws std::invalid_argument naming
  // `to` when it is 0, this server or not a voter. May sync the log.
  Outcome<void> transfer_leadership(NodeId to) {
    if (to == 0) reject("transfer_leadership", to, "must not be 0");
    if (to == options_.self) reject("transfer_leadership", to, "is this server");
    if (role_ != RaftRole::leader) return Errc::not_leader;
    if (!configuration().is_voter(to)) reject("transfer_leadership", to, "is not a voter");
    transfer_to_ = to;
    transfer_deadline_ = clock_.now() + options_.election_timeout_max;
    flush();
    if (Peer* p = peer(to); p && role_ == RaftRole::leader) {
      if (!send_timeout_now(*p)) send_append(*p, false);
    }
    return {};
  }

  // Returns the server leadership is being handed to (nullopt: no transfer under way).
  std::optional<NodeId> transfer_target() const noexcept { return transfer_to_; }
  // Returns the index the snapshot covers (0: no snapshot): the log starts after it.
  std::uint64_t snapshot_index() const noexcept { return base_; }
  // Returns the term of the snapshot's last entry (0: no snapshot).
  std::uint64_t snapshot_term() const noexcept { return base_term_; }
  // Returns how many snapshots this server took (compact) since it started.
  std::uint64_t snapshots_taken() const noexcept { return snapshots_taken_; }
  // Returns how many snapshots from a leader this server installed since it started.
  std::uint64_t snapshots_installed() const noexcept { return snapshots_installed_; }

  // Returns the latest configuration in the log (committed or not; options.voters and
  // options.learners before any change, the snapshot's when it covers every change).
  const RaftConfiguration& configuration() const noexcept { return configs_.back().second; }
  // Returns the index of the latest configuration's entry (0: the options' configuration).
  std::uint64_t configuration_index() const noexcept { return configs_.back().first; }
  // Returns the last index `node` acknowledged to this leader in its term (0 when unknown or
  // not leading): how far a learner caught up.
  std::uint64_t match_index(NodeId node) const noexcept {
    for (const Peer& p : peers_) {
      if (p.id == node) return p.match;
    }
    return 0;
  }

  // Handles one message from `from`: votes, appends, counts replies, steps down on a higher
  // term. Drops and counts a malformed message. May sync the storage and call the state
  // machine. Throws what the storage and the state machine throw.
  void receive(NodeId from, Message m) {
    // A server outside our configuration is heard: it may lead a configuration we have not
    // received yet (dissertation §4.1); a removed one is kept out by pre-vote and check-quorum.
    if (from == options_.self || from == 0) {
      ++dropped_;
      return;
    }
    std::visit([&](auto& v) { handle(from, v); }, m);
  }

  // Fires what is due: an election timeout, a heartbeat, a check-quorum round, the end of a
  // leadership transfer; syncs what propose appended and replicates it. Throws what the
  // storage throws.
  void tick() {
    const time_point now = clock_.now();
    if (role_ == RaftRole::leader) {
      if (transfer_to_ && now >= transfer_deadline_) transfer_to_.reset();  // §3.10: abort
      flush();
      if (role_ == RaftRole::leader && options_.check_quorum && now >= quorum_check_at_) {
        check_quorum(now);  // (flush may have stepped a removed leader down, §4.2.2)
      }
      if (role_ == RaftRole::leader && now >= heartbeat_at_) {
        heartbeat_at_ = now + options_.heartbeat_interval;
        begin_round(now);
        for (Peer& p : peers_) {
          p.in_flight = 0;
          if (p.matched) p.next = std::min(p.next, p.match + 1);  // resend
          send_append(p, true);
        }
      }
    } else if (now >= election_at_) {
      if (configuration().is_voter(options_.self)) {
        start_election(options_.pre_vote);
      } else {
        reset_election_timer();  // §4.2.1: a learner or a removed server never campaigns
      }
    }
  }

  // Returns when tick() next has work: now when entries wait to be synced, else the next
  // heartbeat, check-quorum round or election timeout.
  time_point next_deadline() const {
    if (role_ == RaftRole::leader) {
      if (synced_ < last_index()) return clock_.now();
      time_point next =
          options_.check_quorum ? std::min(heartbeat_at_, quorum_check_at_) : heartbeat_at_;
      return transfer_to_ ? std::min(next, transfer_deadline_) : next;
    }
    return election_at_;
  }

  // Returns the current term.
  std::uint64_t term() const noexcept { return generation_.current(); }
  // Returns the role.
  RaftRole role() const noexcept { return role_; }
  // Returns true when this server leads.
  bool is_leader() const noexcept { return role_ == RaftRole::leader; }
  // Returns the leader of the current term when known (the hint after Errc::not_leader).
  std::optional<NodeId> leader() const noexcept { return leader_; }
  // Returns the vote cast in the current term (0: none).
  NodeId voted_for() const noexcept { return vote_; }
  // Returns the high-water mark (commit index): never decreases while the server runs.
  std::uint64_t commit_index() const noexcept { return mark_.value(); }
  // Returns the last index applied to the state machine.
  std::uint64_t applied_index() const noexcept { return applied_; }
  // Returns the last index of the log (0 when empty; the snapshot's index when the log holds
  // nothing after it).
  std::uint64_t last_index() const noexcept { return base_ + terms_.size(); }
  // Returns the term of the entry at `index`: the snapshot's term at its index, 0 for index 0,
  // below the snapshot or beyond the log.
  std::uint64_t term_at(std::uint64_t index) const noexcept {
    if (index == base_) return base_term_;
    return index < base_ || index > last_index() ? 0 : terms_[index - base_ - 1];
  }
  // Returns the entry at `index`, or nullopt outside the log (at or below the snapshot's
  // index too). Allocates.
  std::optional<RaftEntry> entry(std::uint64_t index) const {
    if (index <= base_) return std::nullopt;
    std::optional<LogEntry> raw = log_.read(index);
    if (!raw) return std::nullopt;
    return decode_entry(index, raw->payload);
  }
  // Returns how many malformed messages were dropped.
  std::uint64_t dropped() const noexcept { return dropped_; }

  // ---- the read paths' hook (follower_reads.hpp; Raft §8, dissertation §6.4) ----------
  // Starts a heartbeat round now when this server leads: sends an AppendEntries (possibly
  // empty) to every follower and returns the round's number; returns 0 otherwise. A round
  // is confirmed once a majority of voters (this leader included) answered a message of it
  // or of a later round in this term. Allocates (the messages).
  std::uint64_t start_round() {
    if (role_ != RaftRole::leader) return 0;
    begin_round(clock_.now());
    for (Peer& p : peers_) {
      p.in_flight = 0;
      send_append(p, true);
    }
    return round_;
  }
  // Returns the last round started (rounds only grow while the server runs).
  std::uint64_t current_round() const noexcept { return round_; }
  // Returns the highest round confirmed in this term; 0 when not leading or none.
  std::uint64_t confirmed_round() const noexcept {
    return role_ == RaftRole::leader ? confirmed_round_ : 0;
  }
  // Returns when the confirmed round started (its messages were all sent at or after it);
  // nullopt when not leading or no round is confirmed in this term.
  std::optional<time_point> confirmed_round_sent_at() const noexcept {
    if (role_ != RaftRole::leader || !confirmed_at_) return std::nullopt;
    return confirmed_at_;
  }
  // Returns the index of this leader's no-op, the first entry of its term (0 when not
  // leading).
  std::uint64_t term_first_index() const noexcept {
    return role_ == RaftRole::leader ? term_first_ : 0;
  }
  // Returns true when this server leads and has committed an entry of its own term, so its
  // commit index covers every entry committed before its term (§8).
  bool committed_in_term() const noexcept {
    return role_ == RaftRole::leader && mark_.value() >= term_first_;
  }
  // Returns the options.
  const ReplicatedLogOptions& options() const noexcept { return options_; }

 private:
  // A snapshot as the leader sends it (§7): shared by the peers it is being sent to, so that
  // taking a newer one does not copy or cut their transfers.
  struct SnapshotImage {
    std::uint64_t index = 0;
    std::uint64_t term = 0;
    RaftConfiguration configuration;
    std::vector<std::byte> data;
  };

  struct Peer {
    NodeId id;
    std::uint64_t next = 1;     // the next index to send (§5.3 nextIndex)
    std::size_t in_flight = 0;  // AppendEntries sent and not answered
    bool heard = false;         // answered since the last check-quorum round
    bool matched = false;       // has acknowledged an AppendEntries in this term
    std::uint64_t match = 0;    // the highest index acknowledged in this term
    std::uint64_t round = 0;    // the highest heartbeat round answered in this term
    std::shared_ptr<const SnapshotImage> sending{};  // the snapshot sent to it in chunks
    std::uint64_t snapshot_offset = 0;               // where its next chunk starts
  };

  // ---- options and durable state ------------------------------------------------------

  static ReplicatedLogOptions validated(ReplicatedLogOptions o) {
    auto fail = [](const char* what) {
      std::string message = "ReplicatedLog: options.";
      message += what;
      throw std::invalid_argument(message);
    };
    auto has = [](const std::vector<NodeId>& ids, NodeId id) {
      return std::find(ids.begin(), ids.end(), id) != ids.end();
    };
    if (o.voters.empty()) fail("voters must not be empty");
    if (!has(o.voters, o.self) && !has(o.learners, o.self)) {
      fail("voters must contain options.self (or learners, for a server joining as a learner)");
    }
    if (has(o.voters, NodeId{0})) fail("voters must not contain node 0");
    if (has(o.learners, NodeId{0})) fail("learners must not contain node 0");
    for (NodeId id : o.learners) {
      if (has(o.voters, id)) fail("learners must not contain a voter");
    }
    if (o.heartbeat_interval.count() <= 0) fail("heartbeat_interval must be positive");
    if (o.election_timeout_min <= o.heartbeat_interval) {
      fail("election_timeout_min must be greater than heartbeat_interval");
    }
    if (o.election_timeout_max < o.election_timeout_min) {
      fail("election_timeout_max must not be less than election_timeout_min");
    }
    if (o.window == 0) fail("window must be at least 1");
    if (o.max_batch_entries == 0) fail("max_batch_entries must be at least 1");
    if (o.snapshot_chunk_bytes == 0) fail("snapshot_chunk_bytes must be at least 1");
    return o;
  }

  // The durable state is a sequence of 20-byte records (term, vote, crc32c of both) in the
  // state segment; the last whole record whose checksum holds is the state. A torn last
  // record (a crash during its append) is cut; a bad record before the last is corruption.
  static constexpr std::size_t state_record = 20;

  void recover_state() {
    const std::uint64_t id = detail::raft_state_segment;
    const std::vector<std::uint64_t> ids = storage_.list();
    if (std::find(ids.begin(), ids.end(), id) == ids.end()) {
      storage_.create(id);
      return;
    }
    const std::uint64_t size = storage_.size(id);
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    const std::size_t got = storage_.read(id, 0, bytes);
    std::size_t valid = 0;
    std::uint64_t term = 0;
    for (std::size_t at = 0; at + state_record <= got; at += state_record) {
      wire::Reader r(std::span<const std::byte>(bytes.data() + at, state_record), "raft state");
      const std::uint64_t t = r.u64();
      const std::uint64_t v = r.u64();
      const std::uint32_t crc = r.u32();
      if (crc != crc32c(bytes.data() + at, 16)) {
        // Each record is synced before the next is appended, so only the last can be torn.
        if (at + state_record < got) {
          throw CorruptionError(std::string(storage_.name(id)), at,
                                "checksum mismatch in a term and vote record before the last");
        }
        break;
      }
      term = t;
      vote_ = v;
      valid = at + state_record;
    }
    if (valid != size) storage_.truncate(id, valid);
    generation_.observe(term);
  }

  // Makes the term and vote durable (§5.2: before the vote is sent).
  void persist_state() {
    Buffer record;
    wire::Writer w(record);
    w.u64(term());
    w.u64(vote_);
    w.u32(crc32c(record.data(), record.size()));
    storage_.append(detail::raft_state_segment, record);
    storage_.sync(detail::raft_state_segment);
  }

  // ---- snapshots (§7) -----------------------------------------------------------------

  // A snapshot segment holds one record: last index, last term (u64 each), the configuration
  // and the machine's bytes (length-prefixed), then a crc32c of all of it. A record whose
  // checksum fails (a torn write) is ignored; of two good ones the higher index counts.
  void recover_snapshot() {
    const std::vector<std::uint64_t> ids = storage_.list();
    std::optional<InstallSnapshot> best;
    for (std::uint64_t id : detail::raft_snapshot_segments) {
      if (std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
      std::vector<std::byte> bytes(static_cast<std::size_t>(storage_.size(id)));
      const std::size_t got = storage_.read(id, 0, bytes);
      if (got < 4 || got != bytes.size()) continue;
      wire::Reader tail(std::span<const std::byte>(bytes.data() + got - 4, 4), "raft snapshot");
      if (tail.u32() != crc32c(bytes.data(), got - 4)) continue;
      wire::Reader r(std::span<const std::byte>(bytes.data(), got - 4),
                     std::string(storage_.name(id)));
      InstallSnapshot s;
      s.last_index = r.u64();
      s.last_term = r.u64();
      s.configuration = RaftConfiguration::decode(r.bytes_view(), std::string(storage_.name(id)));
      s.data = r.bytes();
      r.expect_end();
      if (!best || s.last_index > best->last_index) {
        best = std::move(s);
        snapshot_slot_ = id;
      }
    }
    if (!best) {
      if (log_.first_index() != 1) {
        throw CorruptionError(std::string(storage_.name(log_.first_index())), 0,
                              "the log starts after index 1 and there is no snapshot");
      }
      return;
    }
    const std::uint64_t index = best->last_index;
    // The log continues the snapshot when it holds the snapshot's entry with its term, or
    // starts right after it; otherwise (an InstallSnapshot that conflicted, cut short by a
    // crash) the log is discarded, as the install would have done.
    bool continues = log_.first_index() == index + 1;
    if (log_.first_index() <= index && index <= log_.last_index()) {
      continues = decode_entry(index, log_.read(index)->payload).term == best->last_term;
    } else if (log_.first_index() > index + 1) {
      throw CorruptionError(std::string(storage_.name(log_.first_index())), 0,
                            "the log starts after the snapshot's index + 1");
    }
    if (!continues) reset_log(index + 1);
    base_ = index;
    base_term_ = best->last_term;
    configs_.assign(1, {index, std::move(best->configuration)});
    machine_.restore(best->data);
    current_ = std::make_shared<const SnapshotImage>(
        SnapshotImage{index, best->last_term, configs_.front().second, std::move(best->data)});
    applied_ = index;
    mark_.follow(index);
    lwm_.snapshot_taken(index);
  }

  // Writes a snapshot record to the snapshot segment that does not hold the current one and,
  // when `sync`, syncs it, then removes the previous one (only a synced snapshot replaces it).
  void write_snapshot(std::uint64_t index, std::uint64_t t, const RaftConfiguration& config,
                      std::span<const std::byte> data, bool sync) {
    const auto& slots = detail::raft_snapshot_segments;
    const std::uint64_t slot = snapshot_slot_ == slots[0] ? slots[1] : slots[0];
    Buffer record;
    wire::Writer w(record);
    w.u64(index);
    w.u64(t);
    Buffer c;
    config.encode(c);
    w.bytes(c);
    w.bytes(data);
    w.u32(crc32c(record.data(), record.size()));
    const std::vector<std::uint64_t> ids = storage_.list();
    if (std::find(ids.begin(), ids.end(), slot) != ids.end()) storage_.remove(slot);
    storage_.create(slot);
    storage_.append(slot, record);
    if (!sync) return;
    storage_.sync(slot);
    const std::uint64_t old = std::exchange(snapshot_slot_, slot);
    if (old != 0) storage_.remove(old);
  }

  // Returns the configuration in force at `index`: the latest one appended at or before it.
  RaftConfiguration configuration_at(std::uint64_t index) const {
    const RaftConfiguration* c = &configs_.front().second;
    for (const auto& [at, config] : configs_) {
      if (at <= index) c = &config;
    }
    return *c;
  }

  // Forgets the entries up to `index` (base_ < index <= last_index()), now in the snapshot
  // whose last term is `t` and configuration `config`; the storage log is cleaned after.
  void drop_prefix(std::uint64_t index, std::uint64_t t, RaftConfiguration config) {
    terms_.erase(terms_.begin(), terms_.begin() + static_cast<std::ptrdiff_t>(index - base_));
    base_ = index;
    base_term_ = t;
    auto later = std::find_if(configs_.begin(), configs_.end(),
                              [&](const auto& c) { return c.first > index; });
    configs_.erase(configs_.begin(), later);
    configs_.insert(configs_.begin(), {index, std::move(config)});
  }

  // Discards the whole storage log and starts a new one whose first index is `first`: the
  // segments are removed newest first (a crash leaves a prefix of the old log, which
  // recovery discards again), then the new one is created and synced.
  void reset_log(std::uint64_t first) {
    { auto released = std::move(log_); }  // gives up the storage's writer claim
    detail::RaftLogStorage<Storage> view(storage_);
    const std::vector<std::uint64_t> ids = view.list();
    for (auto it = ids.rbegin(); it != ids.rend(); ++it)
      view.remove(*it);
    view.create(first);
    view.append(first, detail::segment_header(first));
    view.sync(first);
    log_ = SegmentedLog<detail::RaftLogStorage<Storage>>(view, options_.log);
    terms_.clear();
  }

  // §7: makes the leader's snapshot, which the machine has restored, this server's state:
  // durable first, then the log after it is kept if it holds the snapshot's entry with its
  // term, else discarded entirely.
  void install(InstallSnapshot s) {
    write_snapshot(s.last_index, s.last_term, s.configuration, s.data, Rules::durable_install);
    if (s.last_index <= last_index() && term_at(s.last_index) == s.last_term) {
      drop_prefix(s.last_index, s.last_term, s.configuration);
      lwm_.snapshot_taken(s.last_index);
      lwm_.clean(log_);
    } else {
      reset_log(s.last_index + 1);
      base_ = s.last_index;
      base_term_ = s.last_term;
      configs_.assign(1, {s.last_index, s.configuration});
      lwm_.snapshot_taken(s.last_index);
    }
    synced_ = std::max(synced_, s.last_index);
    current_ = std::make_shared<const SnapshotImage>(
        SnapshotImage{s.last_index, s.last_term, std::move(s.configuration), std::move(s.data)});
    applied_ = s.last_index;
    mark_.follow(s.last_index);
    ++snapshots_installed_;
    adopt_configuration();
  }

  // Adopts a higher `t` as a follower with no vote (§5.1: a server that sees a higher term
  // updates its own and reverts to follower).
  void become_follower(std::uint64_t t, std::optional<NodeId> leader) {
    if (t > term()) {
      generation_.observe(t);
      vote_ = 0;
      persist_state();
    }
    role_ = RaftRole::follower;
    leader_ = leader;
    peers_.clear();
    transfer_to_.reset();
  }

  // ---- the log ------------------------------------------------------------------------

  static void encode_entry(const RaftEntry& e, Buffer& out) {
    wire::Writer w(out);
    detail::write_entry(w, e);
  }

  RaftEntry decode_entry(std::uint64_t index, std::span<const std::byte> payload) const {
    std::string what = "replicated log entry ";
    what += std::to_string(index);
    wire::Reader r(payload, what);
    RaftEntry e = detail::read_entry(r);
    r.expect_end();
    return e;
  }

  std::uint64_t append_local(const RaftEntry& e) {
    // Decoded first, so that a bad configuration is refused before the log holds it.
    std::optional<RaftConfiguration> config;
    if (e.kind == RaftEntryKind::configuration) config = decoded(e, last_index() + 1);
    buffer_.clear();
    encode_entry(e, buffer_);
    const std::uint64_t index = log_.append(buffer_);
    terms_.push_back(e.term);
    if (config) {  // §4.1: in force once appended, committed or not
      configs_.push_back({index, std::move(*config)});
      adopt_configuration();
    }
    return index;
  }

  static RaftConfiguration decoded(const RaftEntry& e, std::uint64_t index) {
    std::string where = "replicated log configuration entry ";
    where += std::to_string(index);
    return RaftConfiguration::decode(e.command, where);
  }

  void sync_log() {
    if (synced_ == last_index()) return;
    log_.sync();
    synced_ = last_index();
  }

  void truncate_after(std::uint64_t index) {
    log_.truncate_after(index);
    terms_.resize(static_cast<std::size_t>(index - base_));
    synced_ = std::min(synced_, index);
    // §4.1: a configuration entry cut from the log takes the previous configuration back.
    if (configs_.back().first > index) {
      while (configs_.back().first > index)
        configs_.pop_back();
      adopt_configuration();
    }
  }

  // ---- membership ---------------------------------------------------------------------

  [[noreturn]] static void reject(const char* call, NodeId node, const char* rule) {
    std::string message = "ReplicatedLog::";
    message += call;
    message += ": node ";
    message += std::to_string(node);
    message += ' ';
    message += rule;
    throw std::invalid_argument(message);
  }

  template <class F>
  Outcome<std::uint64_t> change(const char* call, NodeId node, F&& edit) {
    if (node == 0) reject(call, node, "must not be 0");
    if (role_ != RaftRole::leader) return Errc::not_leader;
    if (transfer_to_) return Errc::full;  // §3.10: no change while leadership moves
    RaftConfiguration c = configuration();
    edit(c);
    // Dissertation §4.1 and its 2015 errata: no change before an entry of this term (the
    // no-op) commits, and none while another is uncommitted.
    if (term_at(mark_.value()) != term()) return Errc::full;
    if (Rules::one_change_at_a_time && configuration_index() > mark_.value()) return Errc::full;
    Buffer bytes;
    c.encode(bytes);
    return append_local(
        RaftEntry{term(), RaftEntryKind::configuration, {bytes.begin(), bytes.end()}});
  }

  // Makes the latest configuration the one that counts: the quorum, the mark's voters, the
  // leader's peers (§4.1).
  void adopt_configuration() {
    const RaftConfiguration& c = configuration();
    quorum_ = MajorityQuorum(c.voters);
    mark_.reconfigure(quorum_);
    const bool voter = c.is_voter(options_.self);
    if (role_ == RaftRole::pre_candidate || role_ == RaftRole::candidate) {
      if (!voter) role_ = RaftRole::follower;
      return;
    }
    if (role_ != RaftRole::leader) return;
    std::erase_if(peers_, [&](const Peer& p) { return !c.is_voter(p.id) && !c.is_learner(p.id); });
    for (const std::vector<NodeId>* ids : {&c.voters, &c.learners}) {
      for (NodeId id : *ids) {
        if (id != options_.self && !peer(id)) {
          peers_.push_back(Peer{.id = id, .next = last_index(), .heard = true});
        }
      }
    }
    for (const Peer& p : peers_) {
      if (quorum_.contains(p.id)) mark_.acknowledge(p.id, p.match);
    }
    if (voter) mark_.acknowledge(options_.self, synced_);
  }

  // §4.2.2: a leader outside its configuration steps down once that configuration commits.
  void step_down_if_removed() {
    if (role_ != RaftRole::leader || configuration().is_voter(options_.self) ||
        mark_.value() < configuration_index()) {
      return;
    }
    become_follower(term(), std::nullopt);
    reset_election_timer();
  }

  // ---- elections ----------------------------------------------------------------------

  void reset_election_timer() {
    const auto span = options_.election_timeout_max - options_.election_timeout_min;
    const auto jitter = std::chrono::nanoseconds(
        static_cast<std::int64_t>(random_.below(static_cast<std::uint64_t>(span.count()) + 1)));
    election_at_ = clock_.now() + options_.election_timeout_min + jitter;
  }

  bool leader_lease_holds() const {
    if (role_ == RaftRole::leader) return options_.check_quorum;
    return options_.check_quorum && heard_leader_ &&
           clock_.now() < heard_leader_at_ + options_.election_timeout_min;
  }

  // §5.4.1: the candidate's log is at least as up to date as ours.
  bool up_to_date(const RequestVote& v) const {
    if constexpr (!Rules::up_to_date_check) return true;
    const std::uint64_t my_term = term_at(last_index());
    if (v.last_log_term != my_term) return v.last_log_term > my_term;
    return v.last_log_index >= last_index();
  }

  // §5.2 (and §9.6 for a pre-vote): asks every voter for its vote; `transfer` (§3.10) asks
  // the voters to disregard their leader lease.
  void start_election(bool pre, bool transfer = false) {
    reset_election_timer();
    leader_.reset();
    votes_.clear();
    if (pre) {
      role_ = RaftRole::pre_candidate;
    } else {
      role_ = RaftRole::candidate;
      generation_.next();
      vote_ = options_.self;
      persist_state();  // our own vote, durable before anyone learns of the election
    }
    votes_.push_back({options_.self, true});
    const RequestVote request{pre ? term() + 1 : term(), last_index(), term_at(last_index()), pre,
                              transfer};
    if (tally() == VoteResult::won) return won(pre);
    for (NodeId id : quorum_.voters()) {
      if (id != options_.self) (void)transport_.send(id, request);
    }
  }

  VoteResult tally() const {
    return quorum_
        .tally([this](NodeId id) -> std::optional<bool> {
          for (const auto& [voter, granted] : votes_) {
            if (voter == id) return granted;
          }
          return std::nullopt;
        })
        .result;
  }

  void won(bool pre) {
    if (pre) return start_election(false);
    become_leader();
  }

  // §5.3, §5.4.2: a new leader starts every follower at its last index + 1, forgets the
  // match indices and appends a no-op, which commits the entries of earlier terms with it.
  void become_leader() {
    role_ = RaftRole::leader;
    leader_ = options_.self;
    transfer_to_.reset();
    mark_.reset_matches();
    peers_.clear();
    term_first_ = append_local(RaftEntry{term(), RaftEntryKind::noop, {}});
    confirmed_round_ = 0;
    confirmed_at_.reset();
    round_starts_.clear();
    const RaftConfiguration& c = configuration();
    for (const std::vector<NodeId>* ids : {&c.voters, &c.learners}) {
      for (NodeId id : *ids) {
        if (id != options_.self) peers_.push_back(Peer{.id = id, .next = last_index()});
      }
    }
    const time_point now = clock_.now();
    quorum_check_at_ = now + options_.election_timeout_min;
    heartbeat_at_ = now + options_.heartbeat_interval;  // the no-op announces the term
  }

  // A server answers by the same rules whatever its own role in its configuration: a learner
  // may have been promoted by an entry it has not received yet (§4.1), and a candidate counts
  // only the voters of its own configuration, so a learner's answer never decides (§4.2.1).
  void handle(NodeId from, const RequestVote& v) {
    if (v.pre_vote) {
      // §9.6: grant when we would vote in that term; our own term does not change.
      const bool granted = v.term > term() && !leader_lease_holds() && up_to_date(v);
      (void)transport_.send(from, VoteReply{granted ? v.term : term(), granted, true});
      return;
    }
    // §6: a server that heard from a leader within the minimum election timeout ignores
    // the request, so a removed or rejoining server cannot depose a working leader.
    // A transfer's election (dissertation §3.10) disregards the lease: the leader asked for it.
    if (v.term > term() && !v.transfer && leader_lease_holds()) return;
    if (v.term > term()) become_follower(v.term, std::nullopt);
    bool granted = false;
    if (v.term == term() && (vote_ == 0 || vote_ == from) && up_to_date(v)) {
      // §5.2: at most one vote per term, durable before the reply is sent.
      if (vote_ != from) {
        vote_ = from;
        persist_state();
      }
      granted = true;
      reset_election_timer();
    }
    (void)transport_.send(from, VoteReply{term(), granted, false});
  }

  void handle(NodeId from, const VoteReply& v) {
    if (v.term > term() && !(v.pre_vote && v.granted)) {
      become_follower(v.term, std::nullopt);
      return;
    }
    const bool current = v.pre_vote ? role_ == RaftRole::pre_candidate && v.term == term() + 1
                                    : role_ == RaftRole::candidate && v.term == term();
    if (!current) return;
    for (const auto& [voter, granted] : votes_) {
      if (voter == from) return;  // a duplicate
    }
    votes_.push_back({from, v.granted});
    const VoteResult r = tally();
    if (r == VoteResult::won) won(v.pre_vote);
  }

  // ---- replication --------------------------------------------------------------------

  // Sends what was appended to the followers, then syncs it and counts the leader's own copy
  // (§5.4.2 via HighWaterMark). Dissertation §10.2.1: the leader may write its log in
  // parallel with replicating it, since it counts itself only for what it synced; the
  // followers' syncs then overlap its own instead of following it. An entry a majority synced
  // is committed even if the leader crashes before its own sync.
  void flush() {
    if (synced_ == last_index()) return;
    for (Peer& p : peers_)
      send_append(p, false);
    sync_log();
    if (quorum_.contains(options_.self)) mark_.acknowledge(options_.self, synced_);
    advance_commit();
  }

  // Sends up to the window of AppendEntries to `p` (one, possibly empty, when `heartbeat`).
  // §7: a follower that needs a compacted entry gets the snapshot instead, once per reply or
  // heartbeat (the window is taken up until then).
  void send_append(Peer& p, bool heartbeat) {
    if (p.next <= base_) {
      if (p.in_flight > 0) return;
      p.in_flight = options_.window;
      send_snapshot_chunk(p);
      return;
    }
    bool sent = false;
    const std::uint64_t last = last_index();  // synced or not (§10.2.1, see flush)
    while (p.in_flight < options_.window && (p.next <= last || (heartbeat && !sent))) {
      AppendEntries a{term(), p.next - 1, term_at(p.next - 1), mark_.value(), {}, round_};
      const std::uint64_t end =
          std::min<std::uint64_t>(last, p.next - 1 + options_.max_batch_entries);
      for (std::uint64_t i = p.next; i <= end; ++i) {
        a.entries.push_back(*entry(i));
      }
      p.next = end + 1 > p.next ? end + 1 : p.next;
      ++p.in_flight;
      sent = true;
      (void)transport_.send(p.id, std::move(a));
    }
  }

  // §7, Figure 13: sends `p` the chunk at its offset of the snapshot it is being sent (the
  // current one when none is). A transfer goes on with its snapshot when a newer one is
  // taken meanwhile, so frequent snapshots cannot starve it; the follower then needs the next
  // one. One chunk is in flight at a time: the next goes out on the reply, and a lost one is
  // resent at the next heartbeat.
  void send_snapshot_chunk(Peer& p) {
    if (!p.sending) {
      p.sending = current_;
      p.snapshot_offset = 0;
    }
    const SnapshotImage& image = *p.sending;
    if (p.snapshot_offset > image.data.size()) p.snapshot_offset = 0;
    const std::size_t from = static_cast<std::size_t>(p.snapshot_offset);
    const std::size_t n = std::min(options_.snapshot_chunk_bytes, image.data.size() - from);
    const auto first = image.data.begin() + static_cast<std::ptrdiff_t>(from);
    (void)transport_.send(p.id, InstallSnapshot{term(),
                                                image.index,
                                                image.term,
                                                image.configuration,
                                                {first, first + static_cast<std::ptrdiff_t>(n)},
                                                p.snapshot_offset,
                                                from + n == image.data.size()});
  }

  void advance_commit() {
    const std::uint64_t t = term();
    const bool moved = mark_.advance([&](std::uint64_t index) {
      if constexpr (Rules::current_term_commit) return term_at(index) == t;
      return true;
    });
    if (moved) {
      apply_committed();
      step_down_if_removed();
    }
  }

  void apply_committed() {
    const std::uint64_t upto = std::min(mark_.value(), last_index());
    while (applied_ < upto) {
      const std::uint64_t index = applied_ + 1;
      RaftEntry e = *entry(index);
      applied_ = index;
      if (e.kind == RaftEntryKind::command) machine_.apply(index, e.command);
    }
    if (options_.snapshot_every != 0 && applied_ - base_ >= options_.snapshot_every) compact();
  }

  void handle(NodeId from, AppendEntries& a) {
    if (a.entries.size() > std::numeric_limits<std::uint32_t>::max() ||
        a.prev_index > std::numeric_limits<std::uint64_t>::max() / 2) {
      ++dropped_;
      return;
    }
    for (const RaftEntry& e : a.entries) {  // a configuration that does not decode
      if (e.kind != RaftEntryKind::configuration) continue;
      try {
        (void)decoded(e, 0);
      } catch (const CorruptionError&) {
        ++dropped_;
        return;
      }
    }
    if (a.term < term()) {  // §5.1: a stale leader learns the current term from the reply
      (void)transport_.send(from, AppendReply{term(), false, 0, 0, 0});
      return;
    }
    if (!follow_leader(from, a.term)) return;
    // §7: entries up to the snapshot's index are committed and in the snapshot: skip them.
    if (a.prev_index < base_) {
      const std::uint64_t covered = std::min<std::uint64_t>(base_ - a.prev_index, a.entries.size());
      a.entries.erase(a.entries.begin(), a.entries.begin() + static_cast<std::ptrdiff_t>(covered));
      if (a.entries.empty() && a.prev_index + covered < base_) {
        const std::uint64_t verified = a.prev_index + covered;
        (void)transport_.send(from, AppendReply{term(), true, verified, 0, 0, a.round});
        return;
      }
      a.prev_index = base_;
      a.prev_term = base_term_;
    }
    // §5.3: refuse unless we hold the entry before the new ones, with a back-off hint.
    if (a.prev_index > last_index()) {
      (void)transport_.send(from, AppendReply{term(), false, 0, 0, last_index() + 1, a.round});
      return;
    }
    if (term_at(a.prev_index) != a.prev_term) {
      const std::uint64_t ct = term_at(a.prev_index);
      std::uint64_t first = a.prev_index;
      while (first > base_ + 1 && term_at(first - 1) == ct)
        --first;
      (void)transport_.send(from, AppendReply{term(), false, 0, ct, first, a.round});
      return;
    }
    // §5.3: skip what we hold, truncate at the first conflict, append the rest.
    std::uint64_t index = a.prev_index;
    for (RaftEntry& e : a.entries) {
      ++index;
      if (index <= last_index()) {
        if (term_at(index) == e.term) continue;
        if (index <= mark_.value()) {  // would cut a committed entry: a malformed message
          ++dropped_;
          return;
        }
        truncate_after(index - 1);
      }
      append_local(e);
    }
    sync_log();  // acknowledge only what is durable
    const std::uint64_t verified = a.prev_index + a.entries.size();
    if (mark_.follow(std::min(a.commit, verified))) apply_committed();
    (void)transport_.send(from, AppendReply{term(), true, verified, 0, 0, a.round});
  }

  void handle(NodeId from, const AppendReply& r) {
    if (r.term > term()) {
      become_follower(r.term, std::nullopt);
      return;
    }
    if (role_ != RaftRole::leader || r.term != term()) return;
    Peer* p = peer(from);
    if (!p) return;
    if (r.success && r.match_index > last_index()) {
      ++dropped_;
      return;
    }
    p->heard = true;
    note_round(*p, r.round);
    if (p->in_flight > 0) --p->in_flight;
    if (r.success) {
      p->matched = true;
      p->match = std::max(p->match, r.match_index);
      p->next = std::max(p->next, r.match_index + 1);
      if (quorum_.contains(from) && mark_.acknowledge(from, r.match_index)) {
        advance_commit();
        if (role_ != RaftRole::leader) return;  // removed, and stepped down (§4.2.2)
      }
      if (send_timeout_now(*p)) return;
    } else {
      // §5.3 fast back-off: skip the follower's whole conflicting term at once.
      std::uint64_t next = r.conflict_index;
      if (r.conflict_term != 0) {
        for (std::uint64_t i = std::min(r.conflict_index, last_index()); i > base_; --i) {
          if (term_at(i) == r.conflict_term) {
            next = i + 1;
            break;
          }
          if (term_at(i) < r.conflict_term) break;
        }
      }
      next = std::clamp<std::uint64_t>(next, p->match + 1, last_index() + 1);
      if (next >= p->next) return;  // an old refusal
      p->next = next;
      p->in_flight = 0;
    }
    send_append(*p, false);
  }

  // §5.1, §5.2: a message of the current or a higher term from a leader makes this server
  // its follower and restarts the election timer. Returns false, having dropped the message,
  // when this server leads the same term (two leaders in one term: a malformed message).
  bool follow_leader(NodeId from, std::uint64_t t) {
    if (t > term() || role_ != RaftRole::follower || leader_ != from) {
      if (role_ == RaftRole::leader && t == term()) {
        ++dropped_;
        return false;
      }
      become_follower(t, from);
    }
    heard_leader_ = true;
    heard_leader_at_ = clock_.now();
    reset_election_timer();
    return true;
  }

  void handle(NodeId from, InstallSnapshot& s) {
    if (s.last_index == 0 || s.last_term == 0 || s.last_term > s.term ||
        s.configuration.voters.empty() || s.offset > options_.max_snapshot_bytes ||
        s.data.size() > options_.max_snapshot_bytes - s.offset ||
        s.last_index >= detail::raft_max_index) {
      ++dropped_;
      return;
    }
    if (s.term < term()) {  // §5.1: a stale leader learns the current term from the reply
      (void)transport_.send(from, InstallSnapshotReply{term(), 0});
      return;
    }
    if (!follow_leader(from, s.term)) return;
    // §7: a snapshot at or below the commit index is old news (what it covers is here).
    if (s.last_index <= mark_.value()) {
      incoming_.reset();
      (void)transport_.send(from, InstallSnapshotReply{term(), s.last_index});
      return;
    }
    // Figure 13: the chunks of one snapshot (this term's leader, this index and term) are
    // gathered in order; a chunk at another offset is answered with the offset expected.
    const bool same = incoming_ && incoming_->term == s.term &&
                      incoming_->last_index == s.last_index && incoming_->last_term == s.last_term;
    if (!same) {
      incoming_.reset();
      if (s.offset == 0) {
        incoming_ =
            InstallSnapshot{s.term, s.last_index, s.last_term, s.configuration, {}, 0, false};
      }
    }
    const bool fits = incoming_ && (!Rules::chunks_in_order || s.offset == incoming_->data.size());
    if (fits) incoming_->data.insert(incoming_->data.end(), s.data.begin(), s.data.end());
    if (!fits || !s.done) {  // the bytes held: where the next chunk must start
      const std::uint64_t held = incoming_ ? incoming_->data.size() : 0;
      (void)transport_.send(from, InstallSnapshotReply{term(), 0, s.last_index, held});
      return;
    }
    InstallSnapshot whole = std::move(*incoming_);
    incoming_.reset();
    // The machine restores the snapshot before anything is made durable: one it refuses as
    // corrupt (CorruptionError, its state unchanged) changes nothing here, and is dropped and
    // counted, unanswered; the leader sends it again, and this server goes on running.
    try {
      machine_.restore(whole.data);
    } catch (const CorruptionError&) {
      ++dropped_;
      return;
    }
    install(std::move(whole));
    (void)transport_.send(from, InstallSnapshotReply{term(), s.last_index});
  }

  void handle(NodeId from, const InstallSnapshotReply& r) {
    if (r.term > term()) {
      become_follower(r.term, std::nullopt);
      return;
    }
    if (role_ != RaftRole::leader || r.term != term()) return;
    Peer* p = peer(from);
    if (!p) return;
    if (r.last_index > last_index() || (r.snapshot_index != 0 && r.last_index != 0)) {
      ++dropped_;
      return;
    }
    if (r.snapshot_index != 0) {  // a chunk's progress: the next chunk from where it stands
      p->heard = true;
      if (!p->sending || r.snapshot_index != p->sending->index || p->next > base_) return;
      // A reply that names the offset already being sent is no news (a duplicate, or the
      // answer to a resent chunk): it sends nothing, so duplicated replies cannot multiply the
      // chunks in flight. A lost chunk is resent at the heartbeat.
      if (r.offset == p->snapshot_offset) return;
      p->snapshot_offset = r.offset;
      p->in_flight = 0;
      send_append(*p, false);
      return;
    }
    p->heard = true;
    p->in_flight = 0;
    p->sending.reset();
    p->matched = true;
    p->match = std::max(p->match, r.last_index);
    p->next = std::max(p->next, r.last_index + 1);
    if (quorum_.contains(from) && mark_.acknowledge(from, p->match)) {
      advance_commit();
      if (role_ != RaftRole::leader) return;
    }
    if (send_timeout_now(*p)) return;
    send_append(*p, false);
  }

  // §3.10: a server the leader hands over to campaigns at once, skipping pre-vote, and its
  // request tells the voters to disregard their leader lease.
  void handle(NodeId from, const TimeoutNow& t) {
    if (t.term < term() || role_ == RaftRole::leader) return;
    if (t.term > term()) become_follower(t.term, from);
    if (!configuration().is_voter(options_.self)) return;
    start_election(false, true);
  }

  // §3.10: once the transfer's target holds every entry (synced here), tells it to campaign.
  // Returns true when it sent TimeoutNow.
  bool send_timeout_now(const Peer& p) {
    if (transfer_to_ != p.id || p.match != last_index() || synced_ != last_index()) return false;
    (void)transport_.send(p.id, TimeoutNow{term()});
    return true;
  }

  // §6: a leader that did not hear from a majority within an election timeout steps down.
  void check_quorum(time_point now) {
    std::size_t heard = quorum_.contains(options_.self) ? 1 : 0;
    for (Peer& p : peers_) {
      heard += p.heard && quorum_.contains(p.id) ? 1 : 0;  // learners do not count (§4.2.1)
      p.heard = false;
    }
    quorum_check_at_ = now + options_.election_timeout_min;
    if (heard < quorum_.quorum_size()) {
      become_follower(term(), std::nullopt);
      reset_election_timer();
    }
  }

  Peer* peer(NodeId id) {
    for (Peer& p : peers_) {
      if (p.id == id) return &p;
    }
    return nullptr;
  }

  // ---- heartbeat rounds (the read paths' hook) ----------------------------------------

  // Starts round round_ + 1 at `now`, remembered until a majority answers it.
  void begin_round(time_point now) {
    ++round_;
    round_starts_.push_back({round_, now});
    if (round_starts_.size() > max_round_starts) round_starts_.erase(round_starts_.begin());
    confirm_rounds();  // a single voter confirms its own round at once
  }

  // Records that `p` answered round `r` of this term; moves the confirmed round.
  void note_round(Peer& p, std::uint64_t r) {
    if (r <= p.round || r > round_) return;
    p.round = r;
    confirm_rounds();
  }

  void confirm_rounds() {
    const std::uint64_t r = quorum_.committed_index([&](NodeId id) -> std::uint64_t {
      if (id == options_.self) return round_;
      for (const Peer& q : peers_) {
        if (q.id == id) return q.round;
      }
      return 0;
    });
    if (r <= confirmed_round_) return;
    confirmed_round_ = r;
    while (!round_starts_.empty() && round_starts_.front().first < r)
      round_starts_.erase(round_starts_.begin());
    if (!round_starts_.empty() && round_starts_.front().first == r) {
      confirmed_at_ = round_starts_.front().second;
    }
  }

  static constexpr std::size_t max_round_starts = 64;

  ReplicatedLogOptions options_;
  Storage storage_;
  SegmentedLog<detail::RaftLogStorage<Storage>> log_;
  // Every send discards its result: a refused send (queue full, peer unknown) is a lost
  // message, which the protocol's retries already cover.
  T transport_;
  Clock clock_;
  SM& machine_;
  MajorityQuorum quorum_;
  HighWaterMark mark_;
  Random random_;
  GenerationClock<SingleThreaded> generation_;
  NodeId vote_ = 0;
  RaftRole role_ = RaftRole::follower;
  std::optional<NodeId> leader_;
  std::vector<std::uint64_t> terms_;  // terms_[i - 1]: the term of entry i
  std::uint64_t synced_ = 0;
  std::uint64_t applied_ = 0;
  std::vector<std::pair<NodeId, bool>> votes_;
  std::vector<Peer> peers_;  // every member but self, learners included
  std::vector<std::pair<std::uint64_t, RaftConfiguration>> configs_;  // (entry index, config)
  time_point election_at_{};
  time_point heartbeat_at_{};
  time_point quorum_check_at_{};
  time_point heard_leader_at_{};
  bool heard_leader_ = false;
  std::uint64_t dropped_ = 0;
  Buffer buffer_;
  std::uint64_t base_ = 0;       // the snapshot's index: terms_[i - base_ - 1] is entry i's term
  std::uint64_t base_term_ = 0;  // the snapshot's term
  std::shared_ptr<const SnapshotImage> current_;  // the durable snapshot, for InstallSnapshot
  std::optional<InstallSnapshot> incoming_;       // the chunks received of a leader's snapshot
  std::uint64_t snapshot_slot_ = 0;               // the segment holding it (0: none)
  SnapshotLowWaterMark lwm_;
  std::uint64_t snapshots_taken_ = 0;
  std::uint64_t snapshots_installed_ = 0;
  std::optional<NodeId> transfer_to_;  // §3.10: the server leadership is handed to
  time_point transfer_deadline_{};
  std::uint64_t round_ = 0;                 // the last heartbeat round started
  std::uint64_t confirmed_round_ = 0;       // the highest round a majority answered in this term
  std::optional<time_point> confirmed_at_;  // when confirmed_round_ started
  std::uint64_t term_first_ = 0;            // this leader's no-op index
  std::vector<std::pair<std::uint64_t, time_point>> round_starts_;  // unconfirmed rounds
};

}  // namespace pods

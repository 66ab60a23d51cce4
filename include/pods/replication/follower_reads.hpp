// pods/replication/follower_reads.hpp — Follower Reads: ReadIndex, LeaseRead, FollowerRead,
// BoundedStaleRead
//
// Problem:       A read served from a server's state machine may be stale: a deposed leader
//                that does not yet know it, or a follower that is behind, answers with a state
//                that misses writes other clients were already told had committed.
// Solution:      Each policy decides when a read may run against the local state machine
//                and hands the caller the index the state machine has reached by then
//                (Raft §8, Ongaro's dissertation §6.4), driven by the ReplicatedLog's hook:
//                  - ReadIndex: the leader records its commit index (at least its term's no-op),
//                    confirms its leadership with a heartbeat round started after the read
//                    arrived, and lets the read run once it applied that index.
//                  - LeaseRead: while a majority acknowledged a round started at t, no other
//                    leader can be elected before t + election_timeout_min on the followers'
//                    clocks (check-quorum makes them ignore votes); minus the drift bound, the
//                    leader serves reads in that lease without a round.
//                  - FollowerRead: a follower asks the leader for a read index (a small
//                    message pair over a Transport the caller supplies); the leader answers
//                    through its ReadIndex; the follower lets the read run once it applied
//                    the index the leader gave.
//                  - BoundedStaleRead: any server serves a read once it applied the client's
//                    last seen index (read-your-writes), else the read waits.
// Guarantees:    ReadIndex: linearizable. LeaseRead: linearizable while the clocks' drift
//                over an election timeout stays within options.max_drift.
//                FollowerRead: linearizable (the leader's read index covers every write
//                completed before the request left the follower).
//                BoundedStaleRead: read-your-writes (the state includes the client's last
//                seen index), not linearizable. Every read's callback is called exactly once:
//                with the index, Errc::not_leader (not leading, deposed, or lease not held),
//                Errc::full (options.max_pending reads waiting) or Errc::timeout.
// Not provided:  Retries (a refused or lost FollowerRead request fails; the caller asks
//                again). The policies run the read nowhere: the caller runs it when the callback
//                says it may. A lease across leadership transfer (a transfer makes a follower
//                campaign at once, so do not transfer while leases are in use).
// Thread safety: thread-confined, like the ReplicatedLog it reads (callbacks run on the
//                thread calling read or poll).
// Errors:        Bad options throw std::invalid_argument naming the option and the rule.
//                Outcomes are values given to the callback.
// Cost:          ReadIndex: one heartbeat round per poll() that has new reads (reads arriving
//                between two polls share it): 2 messages per follower, one round trip.
//                FollowerRead: a request and a reply (10 and 19 bytes) beside the leader's
//                ReadIndex round.
//                LeaseRead: no message inside the lease. BoundedStaleRead: none. Each waiting
//                read: one RequestWaitingList node.
// Example:
//   pods::ReadIndex reads(log, clock, {.timeout = std::chrono::seconds(1)});
//   reads.read([&](pods::Outcome<std::uint64_t> at) { if (at) serve_from_state_machine(); });
//   reads.poll();                                  // after every receive and tick of the log
//   pods::FollowerRead anywhere(log, clock, read_messages);  // on every server
//   anywhere.read([&](pods::Outcome<std::uint64_t> at) { if (at) serve_from_state_machine(); });
//   anywhere.poll();                       // and anywhere.receive(from, m) for its messages
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: struct Machine {
// Example context:   void apply(std::uint64_t, std::span<const std::byte>) {}
// Example context:   std::vector<std::byte> snapshot() const { return {}; }
// Example context:   void restore(std::span<const std::byte>) {} } machine;
// Example context: pods::Outbox<pods::ReplicatedLogMessage> out;
// Example context: pods::ManualClock clock;
// Example context: pods::ReplicatedLog log(pods::MemoryStorage{}, out, clock, machine,
// Example context:                         {.self = 1, .voters = {1}, .seed = 7});
// Example context: auto serve_from_state_machine = [] {};
// Example context: pods::Outbox<pods::FollowerReadMessage> read_messages;
#pragma once

#include <pods/messaging/request_waiting_list.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>
#include <pods/replication/replicated_log.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

struct ReadOptions {
  std::size_t max_pending = 1024;                              // reads waiting at once
  std::chrono::nanoseconds timeout = std::chrono::seconds(1);  // a waiting read fails after it
  std::chrono::nanoseconds max_drift = std::chrono::milliseconds(50);  // LeaseRead's bound
};

// The rule ReadIndex follows; a test may turn it off to show that its checks notice.
struct ReadRules {
  static constexpr bool confirm_round = true;  // §6.4: a heartbeat round before the read
};

namespace detail {

inline void check_read_options(const ReadOptions& o, const char* who) {
  auto fail = [&](const char* rule) {
    throw std::invalid_argument(std::string(who) + ": options." + rule);
  };
  if (o.max_pending == 0) fail("max_pending must be at least 1");
  if (o.timeout.count() <= 0) fail("timeout must be positive");
  if (o.max_drift.count() < 0) fail("max_drift must not be negative");
}

// Reads of one leader term, in arrival order: both their read index and their round only
// grow, so the reads that may run are a prefix.
template <class Log, PhysicalClock Clock>
class LeaderReads {
 public:
  using Callback = typename RequestWaitingList<std::uint64_t, std::uint64_t, Clock>::Callback;

  LeaderReads(Log& log, Clock clock, const ReadOptions& o)
      : log_(log), max_(o.max_pending), waiting_(o.timeout, std::move(clock)) {}

  // Adds a read at `index` needing `round` (0: a round to start at the next poll).
  void add(std::uint64_t index, std::uint64_t round, Callback done) {
    cancel_if_deposed();
    if (!log_.is_leader()) return done(Outcome<std::uint64_t>(Errc::not_leader));
    if (meta_.size() >= max_) return done(Outcome<std::uint64_t>(Errc::full));
    if (meta_.empty()) term_ = log_.term();
    waiting_.add(next_, std::move(done));
    meta_.push_back({next_++, index, round});
  }

  void poll(bool start_rounds) {
    cancel_if_deposed();
    // A clock that steps back can expire reads out of arrival order: keep those still waiting.
    if (waiting_.expire() != 0) {
      std::erase_if(meta_, [this](const Meta& m) { return !waiting_.contains(m.seq); });
    }
    if (start_rounds && !meta_.empty() && meta_.back().round == 0) {
      const std::uint64_t r = log_.start_round();
      for (auto it = meta_.rbegin(); it != meta_.rend() && it->round == 0; ++it)
        it->round = r;
    }
    while (!meta_.empty() && meta_.front().round != 0 &&
           meta_.front().round <= log_.confirmed_round() &&
           meta_.front().index <= log_.applied_index()) {
      const Meta m = meta_.front();
      meta_.pop_front();
      waiting_.complete(m.seq, log_.applied_index());
    }
  }

  std::size_t pending() const noexcept { return meta_.size(); }

 private:
  struct Meta {
    std::uint64_t seq;
    std::uint64_t index;
    std::uint64_t round;
  };

  // §6.4: a leader that stepped down (or was replaced) cannot complete its reads.
  void cancel_if_deposed() {
    if (meta_.empty() || (log_.is_leader() && log_.term() == term_)) return;
    std::deque<Meta> gone;
    gone.swap(meta_);
    for (const Meta& m : gone)
      waiting_.fail(m.seq, Errc::not_leader);
  }

  Log& log_;
  std::size_t max_;
  RequestWaitingList<std::uint64_t, std::uint64_t, Clock> waiting_;
  std::deque<Meta> meta_;
  std::uint64_t next_ = 1;
  std::uint64_t term_ = 0;
};

// §8: the index a read must wait for: the commit index, and at least the term's no-op (a
// new leader learns the commit index only once that commits).
template <class Log>
std::uint64_t read_index_of(const Log& log) {
  return std::max(log.commit_index(), log.term_first_index());
}

}  // namespace detail

// ReadIndex — linearizable reads on the leader: the read index, a heartbeat round, the apply.
template <class Log, PhysicalClock Clock, class Rules = ReadRules>
class ReadIndex {
 public:
  using Callback = typename detail::LeaderReads<Log, Clock>::Callback;

  // Serves reads for `log` (retained by reference; must outlive this). Throws
  // std::invalid_argument naming a bad option.
  ReadIndex(Log& log, Clock clock, ReadOptions options = {})
      : log_(log), reads_(log, std::move(clock), checked(options)) {}

  // Starts a read; `done` (retained) gets the applied index once the read may run, or an
  // Errc (not_leader, full, timeout). Allocates.
  void read(Callback done) {
    // Without the rule (a test mutation) the read trusts the last round confirmed.
    const std::uint64_t round =
        Rules::confirm_round ? 0 : std::max<std::uint64_t>(log_.confirmed_round(), 1);
    reads_.add(detail::read_index_of(log_), round, std::move(done));
  }

  // Starts the round for new reads, completes the reads that may run, expires the old,
  // cancels all on step-down. Call after every receive and tick of the log.
  void poll() { reads_.poll(true); }

  // Returns how many reads wait.
  std::size_t pending() const noexcept { return reads_.pending(); }

 private:
  static const ReadOptions& checked(const ReadOptions& o) {
    detail::check_read_options(o, "ReadIndex");
    return o;
  }
  Log& log_;
  detail::LeaderReads<Log, Clock> reads_;
};

// LeaseRead — reads on the leader without a round while its lease holds.
template <class Log, PhysicalClock Clock>
class LeaseRead {
 public:
  using Callback = typename detail::LeaderReads<Log, Clock>::Callback;

  // Serves reads for `log` (retained by reference). Throws std::invalid_argument when an
  // option is bad, when options.max_drift leaves no lease (>= the log's election_timeout_min)
  // or the log runs without check_quorum (followers would vote inside the lease).
  LeaseRead(Log& log, Clock clock, ReadOptions options = {})
      : log_(log),
        clock_(clock),
        drift_(options.max_drift),
        reads_(log, std::move(clock), checked(options, log)) {}

  // Returns the end of the lease, or nullopt when this server holds none.
  std::optional<typename Clock::time_point> lease_until() const {
    const auto sent = log_.confirmed_round_sent_at();
    if (!sent) return std::nullopt;
    return *sent + log_.options().election_timeout_min - drift_;
  }

  // Starts a read: inside the lease `done` gets the applied index once it reached the read
  // index (at once, usually); outside it, Errc::not_leader at once (use ReadIndex). Allocates.
  void read(Callback done) {
    const auto until = lease_until();
    if (!log_.is_leader() || !until || clock_.now() >= *until || !log_.committed_in_term()) {
      return done(Outcome<std::uint64_t>(Errc::not_leader));
    }
    reads_.add(detail::read_index_of(log_), log_.confirmed_round(), std::move(done));
    reads_.poll(false);
  }

  // Completes reads that may run, expires the old, cancels all on step-down.
  void poll() { reads_.poll(false); }

 private:
  static const ReadOptions& checked(const ReadOptions& o, const Log& log) {
    detail::check_read_options(o, "LeaseRead");
    if (o.max_drift >= log.options().election_timeout_min) {
      throw std::invalid_argument(
          "LeaseRead: options.max_drift must be less than the log's election_timeout_min");
    }
    if (!log.options().check_quorum) {
      throw std::invalid_argument("LeaseRead: the log's options.check_quorum must be on");
    }
    return o;
  }
  Log& log_;
  Clock clock_;
  std::chrono::nanoseconds drift_;
  detail::LeaderReads<Log, Clock> reads_;
};

// A follower asks the leader for a read index; `read_id` matches the reply to the read.
struct ReadIndexRequest {
  std::uint64_t read_id = 0;

  friend bool operator==(const ReadIndexRequest&, const ReadIndexRequest&) = default;
};

// The leader's answer: granted with the index the follower must apply before the read runs,
// or refused (not leading, deposed, full or timed out) with index 0.
struct ReadIndexReply {
  std::uint64_t read_id = 0;
  bool granted = false;
  std::uint64_t index = 0;

  friend bool operator==(const ReadIndexReply&, const ReadIndexReply&) = default;
};

using FollowerReadMessage = std::variant<ReadIndexRequest, ReadIndexReply>;

// The wire format of FollowerReadMessage: a version byte (1), a tag byte (0 request, 1 reply),
// then the fields in declaration order, little-endian, the boolean one byte (0 or 1). A
// refused reply carries index 0.
struct FollowerReadMessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` to `out`. Allocates as out grows.
  void encode(const FollowerReadMessage& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    if (const auto* q = std::get_if<ReadIndexRequest>(&m)) {
      w.u64(q->read_id);
    } else {
      const auto& a = std::get<ReadIndexReply>(m);
      w.u64(a.read_id);
      w.boolean(a.granted);
      w.u64(a.index);
    }
  }

  // Decodes one message from exactly `bytes`. Allocates nothing. Throws pods::CorruptionError
  // naming "FollowerReadMessage" and the offset for a wrong version or tag, a truncated
  // field, a boolean other than 0 or 1, a refusal with an index, or trailing bytes.
  FollowerReadMessage decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "FollowerReadMessage");
    const std::size_t tag = r.header(version, 2, {.kind = "message tag"});
    FollowerReadMessage m;
    if (tag == 0) {
      m = ReadIndexRequest{r.u64()};
    } else {
      ReadIndexReply a;
      a.read_id = r.u64();
      a.granted = r.boolean();
      const std::size_t at = r.offset();
      a.index = r.u64();
      if (!a.granted && a.index != 0) r.fail(at, "a refused reply must carry index 0");
      m = a;
    }
    r.expect_end();
    return m;
  }
};
static_assert(Codec<FollowerReadMessageCodec, FollowerReadMessage>);

// FollowerRead — linearizable reads on a follower: the leader's read index, then the apply.
template <class Log, PhysicalClock Clock, Transport<FollowerReadMessage> T, class Rules = ReadRules>
class FollowerRead {
 public:
  using Callback = typename RequestWaitingList<std::uint64_t, std::uint64_t, Clock>::Callback;

  // Serves reads for `log` (retained by reference; must outlive this), sending requests and
  // replies through `transport` (a copy retained). Every server runs one: its leader side
  // answers other servers' requests through a ReadIndex. Throws std::invalid_argument naming
  // a bad option.
  FollowerRead(Log& log, Clock clock, T transport, ReadOptions options = {})
      : log_(log),
        transport_(std::move(transport)),
        max_(checked(options).max_pending),
        leader_reads_(log, clock, options),
        waiting_(options.timeout, std::move(clock)) {}
  FollowerRead(const FollowerRead&) = delete;  // the leader side's callbacks hold `this`
  FollowerRead& operator=(const FollowerRead&) = delete;

  // Starts a read: on the leader through its ReadIndex; on a follower by asking the leader
  // it knows. `done` (retained) gets the applied index once the read may run, or
  // Errc::not_leader (no leader known, the leader refused, or it changed), Errc::full or
  // Errc::timeout. Allocates; sends at most one request.
  void read(Callback done) {
    cancel_if_leader_changed();
    if (log_.is_leader()) return leader_reads_.read(std::move(done));
    const std::optional<NodeId> leader = log_.leader();
    if (!leader) return done(Outcome<std::uint64_t>(Errc::not_leader));
    if (asked_.size() >= max_) return done(Outcome<std::uint64_t>(Errc::full));
    if (asked_.empty()) {
      leader_ = *leader;
      term_ = log_.term();
    }
    const std::uint64_t id = next_++;
    // Every way out (reply, refusal, cancel, expiry) forgets the read here first; expiry
    // follows the clock, which may be stepped, so it need not follow the ids.
    waiting_.add(id, [this, id, done = std::move(done)](Outcome<std::uint64_t> at) mutable {
      asked_.erase(id);
      done(at);
    });
    asked_.emplace(id, 0);
    (void)transport_.send(*leader, ReadIndexRequest{id});
  }

  // Handles a message from server `from`: answers a request through the ReadIndex (the reply
  // is sent when that read completes or fails), or records the index of a reply from the
  // leader asked (others and unknown ids are dropped). Allocates.
  void receive(NodeId from, const FollowerReadMessage& m) {
    if (const auto* q = std::get_if<ReadIndexRequest>(&m)) {
      const std::uint64_t id = q->read_id;
      leader_reads_.read([this, from, id](Outcome<std::uint64_t> at) {
        (void)transport_.send(from,
                              at ? ReadIndexReply{id, true, *at} : ReadIndexReply{id, false, 0});
      });
      return;
    }
    const auto& a = std::get<ReadIndexReply>(m);
    cancel_if_leader_changed();
    const auto it = asked_.find(a.read_id);
    if (it == asked_.end() || from != leader_ || it->second != 0) return;
    if (!a.granted) {
      waiting_.fail(a.read_id, Errc::not_leader);
      return;
    }
    it->second = std::max<std::uint64_t>(a.index, 1);
    complete_applied();
  }

  // Polls the leader side, completes the reads the applied index now covers, expires the
  // old, and fails every waiting read with Errc::not_leader when the leader or the term
  // changed. Call after every receive and tick of the log.
  void poll() {
    leader_reads_.poll();
    cancel_if_leader_changed();
    waiting_.expire();
    complete_applied();
  }

  // Returns how many of this server's reads wait for the leader (the leader side's own
  // reads not included).
  std::size_t pending() const noexcept { return asked_.size(); }

 private:
  static const ReadOptions& checked(const ReadOptions& o) {
    detail::check_read_options(o, "FollowerRead");
    return o;
  }

  void complete_applied() {
    const std::uint64_t applied = log_.applied_index();
    std::vector<std::uint64_t> ready;
    for (const auto& [id, index] : asked_) {
      if (index != 0 && index <= applied) ready.push_back(id);
    }
    for (std::uint64_t id : ready)
      waiting_.complete(id, applied);
  }

  // A reply from a replaced leader could name an index a newer leader already overtook
  // without this server knowing; the reads asked of it fail instead.
  void cancel_if_leader_changed() {
    if (asked_.empty()) return;
    if (!log_.is_leader() && log_.leader() == leader_ && log_.term() == term_) return;
    std::vector<std::uint64_t> gone;
    for (const auto& [id, index] : asked_)
      gone.push_back(id);
    for (std::uint64_t id : gone)
      waiting_.fail(id, Errc::not_leader);
  }

  Log& log_;
  // Every send discards its result: a refused send (queue full, peer unknown) is a lost
  // message, which the protocol's retries already cover.
  T transport_;
  std::size_t max_;
  ReadIndex<Log, Clock, Rules> leader_reads_;
  RequestWaitingList<std::uint64_t, std::uint64_t, Clock> waiting_;
  std::map<std::uint64_t, std::uint64_t> asked_;  // read id -> index to apply (0: not known)
  NodeId leader_ = 0;
  std::uint64_t term_ = 0;
  std::uint64_t next_ = 1;
};

// BoundedStaleRead — read-your-writes on any server, given the client's last seen index.
template <class Log, PhysicalClock Clock>
class BoundedStaleRead {
 public:
  using Key = std::pair<std::uint64_t, std::uint64_t>;  // (the client's index, arrival)
  using Callback = typename RequestWaitingList<Key, std::uint64_t, Clock>::Callback;

  // Serves reads for `log` (retained by reference). Throws std::invalid_argument naming a
  // bad option.
  BoundedStaleRead(Log& log, Clock clock, ReadOptions options = {})
      : log_(log),
        max_(options.max_pending),
        waiting_(checked(options).timeout, std::move(clock)) {}

  // Starts a read for a client that last saw `last_seen`: `done` gets the applied index at
  // once when it is >= last_seen, else when it becomes so (or Errc::full, Errc::timeout).
  void read(std::uint64_t last_seen, Callback done) {
    if (log_.applied_index() >= last_seen)
      return done(Outcome<std::uint64_t>(log_.applied_index()));
    if (waiting_.size() >= max_) return done(Outcome<std::uint64_t>(Errc::full));
    waiting_.add({last_seen, next_++}, std::move(done));
  }

  // Completes the reads the applied index now covers and expires the old.
  void poll() {
    waiting_.expire();
    const std::uint64_t applied = log_.applied_index();
    waiting_.complete_up_to({applied, std::numeric_limits<std::uint64_t>::max()},
                            [&](const Key&) { return applied; });
  }

  // Returns how many reads wait.
  std::size_t pending() const { return waiting_.size(); }

 private:
  static const ReadOptions& checked(const ReadOptions& o) {
    detail::check_read_options(o, "BoundedStaleRead");
    return o;
  }
  Log& log_;
  std::size_t max_;
  RequestWaitingList<Key, std::uint64_t, Clock> waiting_;
  std::uint64_t next_ = 1;
};

}  // namespace pods

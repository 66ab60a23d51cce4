// Tests of pods/replication/follower_reads.hpp and of the hook it uses in
// pods/replication/replicated_log.hpp (Raft §8, dissertation §6.4): heartbeat rounds carried
// in AppendEntries and echoed in AppendReply, the round a majority confirmed and when it
// started, whether the leader committed an entry of its own term; then ReadIndex, LeaseRead
// and BoundedStaleRead, each for its one-line guarantee. Driven message by message through
// Outbox and a ManualClock. A test-only ReadRules policy that skips the heartbeat round shows
// that the deposed-leader check notices it.
#include <pods/replication/follower_reads.hpp>
#include <pods/replication/replicated_log.hpp>

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/storage/memory_storage.hpp>

#include "raft_sim.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using pods::AppendEntries;
using pods::AppendReply;
using pods::Errc;
using pods::NodeId;
using pods::RaftEntry;
using pods::RaftEntryKind;
using pods::VoteReply;
using Msg = pods::ReplicatedLogMessage;

namespace {

struct Machine {
  std::uint64_t applied = 0;
  void apply(std::uint64_t index, std::span<const std::byte>) { applied = index; }
  std::vector<std::byte> snapshot() const { return {}; }
  void restore(std::span<const std::byte>) {}
};

using Log = pods::ReplicatedLog<pods::MemoryStorage, pods::Outbox<Msg>, pods::ManualClock, Machine>;

struct Node {
  pods::ManualClock clock;
  pods::Outbox<Msg> out;
  Machine machine;
  std::unique_ptr<Log> log;
  explicit Node(std::vector<NodeId> voters) {
    log = std::make_unique<Log>(pods::MemoryStorage{}, out, clock, machine,
                                pods::ReplicatedLogOptions{.self = 1,
                                                           .voters = std::move(voters),
                                                           .heartbeat_interval = 50ms,
                                                           .election_timeout_min = 300ms,
                                                           .election_timeout_max = 600ms,
                                                           .seed = 1});
  }
  // Elects node 1 of {1, 2, 3} by hand (pre-vote, vote) and sends the no-op.
  void elect() {
    clock.advance(601ms);
    log->tick();
    out.take();
    log->receive(2, VoteReply{log->term() + 1, true, true});
    out.take();
    log->receive(2, VoteReply{log->term(), true, false});
    REQUIRE(log->is_leader());
    log->tick();
    out.take();
  }
};

std::uint64_t round_sent_to(const std::vector<pods::Outbox<Msg>::Sent>& sent, NodeId to) {
  for (const auto& s : sent) {
    if (s.to == to) return std::get<AppendEntries>(s.message).round;
  }
  FAIL("no AppendEntries to " << to);
  return 0;
}

}  // namespace

TEST_CASE("The codec carries the heartbeat round of AppendEntries and AppendReply", "[reads]") {
  const pods::ReplicatedLogMessageCodec codec;
  for (const Msg& m :
       {Msg{AppendEntries{3, 1, 2, 1, {}, 77}}, Msg{AppendReply{3, true, 4, 0, 0, 78}}}) {
    pods::Buffer b;
    codec.encode(m, b);
    CHECK(codec.decode(b) == m);
    b.pop_back();  // the round is the last field: cut, it is corruption
    CHECK_THROWS_AS(codec.decode(b), pods::CorruptionError);
  }
}

TEST_CASE("A follower echoes the round of the AppendEntries it answers", "[reads]") {
  Node n({1, 2, 3});
  n.log->receive(2, AppendEntries{1, 0, 0, 0, {}, 9});
  auto sent = n.out.take();
  REQUIRE(sent.size() == 1);
  CHECK(std::get<AppendReply>(sent[0].message).round == 9);
  n.log->receive(2, AppendEntries{1, 5, 1, 0, {}, 10});  // a refusal in the term echoes too
  sent = n.out.take();
  REQUIRE(sent.size() == 1);
  CHECK(std::get<AppendReply>(sent[0].message) == AppendReply{1, false, 0, 0, 1, 10});
}

TEST_CASE("A round is confirmed when a majority answered it, with its start time", "[reads]") {
  Node n({1, 2, 3});
  CHECK(n.log->start_round() == 0);  // not leading
  n.elect();
  CHECK(n.log->confirmed_round() == 0);
  CHECK_FALSE(n.log->confirmed_round_sent_at());
  const auto t = n.clock.now();
  const std::uint64_t r = n.log->start_round();
  CHECK(r == n.log->current_round());
  auto sent = n.out.take();
  REQUIRE(sent.size() == 2);  // one AppendEntries per follower, now
  CHECK(round_sent_to(sent, 2) == r);
  CHECK(round_sent_to(sent, 3) == r);
  n.clock.advance(10ms);
  n.log->receive(2, AppendReply{n.log->term(), true, 0, 0, 0, r - 1});  // an older round
  CHECK(n.log->confirmed_round() < r);
  n.log->receive(2, AppendReply{n.log->term(), true, 0, 0, 0, r + 5});  // never started
  CHECK(n.log->confirmed_round() < r);
  n.log->receive(2, AppendReply{n.log->term(), true, 0, 0, 0, r});
  CHECK(n.log->confirmed_round() == r);
  CHECK(n.log->confirmed_round_sent_at() == t);
  // A later heartbeat starts the next round; a new term forgets the confirmation.
  n.log->receive(3, AppendEntries{n.log->term() + 1, 0, 0, 0, {}, 1});
  CHECK(n.log->confirmed_round() == 0);
  CHECK_FALSE(n.log->confirmed_round_sent_at());
  CHECK(n.log->start_round() == 0);
}

TEST_CASE("A single voter confirms its own round at once", "[reads]") {
  Node n({1});
  n.clock.advance(601ms);
  n.log->tick();
  REQUIRE(n.log->is_leader());
  const std::uint64_t r = n.log->start_round();
  CHECK(r > 0);
  CHECK(n.log->confirmed_round() == r);
  CHECK(n.log->confirmed_round_sent_at() == n.clock.now());
}

TEST_CASE("8: a new leader knows its commit index only once its no-op commits", "[reads]") {
  Node n({1, 2, 3});
  n.elect();
  CHECK(n.log->term_first_index() == 1);
  CHECK_FALSE(n.log->committed_in_term());
  n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, 0});
  CHECK(n.log->commit_index() == 1);
  CHECK(n.log->committed_in_term());
}

// ---- the read policies ------------------------------------------------------------------

namespace {

using Clock = pods::ManualClock;

// Holds the outcome a read's callback got (nullopt: not called yet).
struct Got {
  std::optional<pods::Outcome<std::uint64_t>> outcome;
  auto callback() {
    return [this](pods::Outcome<std::uint64_t> o) {
      REQUIRE_FALSE(outcome);  // exactly once
      outcome = o;
    };
  }
  bool ok() const { return outcome && outcome->has_value(); }
  bool failed_with(Errc e) const {
    return outcome && !outcome->has_value() && outcome->error() == e;
  }
};

// Elects node 1 and commits its no-op with node 2's answer.
void elect_and_commit(Node& n) {
  n.elect();
  n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, 0});
  REQUIRE(n.log->applied_index() == 1);
}

std::uint64_t last_round(const std::vector<pods::Outbox<Msg>::Sent>& sent) {
  std::uint64_t r = 0;
  for (const auto& s : sent) {
    if (const auto* a = std::get_if<AppendEntries>(&s.message)) r = std::max(r, a->round);
  }
  return r;
}

struct SkipRound {
  static constexpr bool confirm_round = false;
};

}  // namespace

TEST_CASE("The read policies reject bad options naming the option and the rule", "[reads]") {
  Node n({1, 2, 3});
  CHECK_THROWS_WITH((pods::ReadIndex(*n.log, n.clock, {.max_pending = 0})),
                    "ReadIndex: options.max_pending must be at least 1");
  CHECK_THROWS_WITH((pods::ReadIndex(*n.log, n.clock, {.timeout = 0ms})),
                    "ReadIndex: options.timeout must be positive");
  CHECK_THROWS_WITH((pods::LeaseRead(*n.log, n.clock, {.max_drift = -1ms})),
                    "LeaseRead: options.max_drift must not be negative");
  CHECK_THROWS_WITH((pods::LeaseRead(*n.log, n.clock, {.max_drift = 300ms})),
                    "LeaseRead: options.max_drift must be less than the log's "
                    "election_timeout_min");
  CHECK_THROWS_AS((pods::LeaseRead(*n.log, n.clock, {.max_drift = 300ms})), std::invalid_argument);
  CHECK_THROWS_WITH((pods::BoundedStaleRead(*n.log, n.clock, {.timeout = -1ms})),
                    "BoundedStaleRead: options.timeout must be positive");
  pods::Outbox<Msg> out;
  Machine m;
  Log no_quorum_check(pods::MemoryStorage{}, out, n.clock, m,
                      {.self = 1, .voters = {1, 2, 3}, .check_quorum = false});
  CHECK_THROWS_WITH((pods::LeaseRead(no_quorum_check, n.clock)),
                    "LeaseRead: the log's options.check_quorum must be on");
}

TEST_CASE("ReadIndex (linearizable): the read waits for a heartbeat round and the apply",
          "[reads]") {
  Node n({1, 2, 3});
  elect_and_commit(n);
  pods::ReadIndex reads(*n.log, n.clock);
  Got got;
  reads.read(got.callback());
  CHECK_FALSE(got.outcome);
  reads.poll();  // starts the round
  const std::uint64_t r = last_round(n.out.take());
  REQUIRE(r == n.log->current_round());
  reads.poll();
  CHECK_FALSE(got.outcome);                                             // no majority yet
  n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, r - 1});  // an older round
  reads.poll();
  CHECK_FALSE(got.outcome);
  n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, r});
  reads.poll();
  REQUIRE(got.ok());
  CHECK(**got.outcome == 1);
  CHECK(reads.pending() == 0);
}

TEST_CASE("8: ReadIndex on a new leader waits for its no-op to commit", "[reads]") {
  Node n({1, 2, 3});
  n.elect();
  pods::ReadIndex reads(*n.log, n.clock);
  Got got;
  reads.read(got.callback());
  reads.poll();
  const std::uint64_t r = last_round(n.out.take());
  n.log->receive(2, AppendReply{n.log->term(), false, 0, 0, 1, r});  // confirms, no match
  reads.poll();
  CHECK(n.log->confirmed_round() == r);
  CHECK_FALSE(got.outcome);  // the commit index is not known yet
  n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, r});
  reads.poll();
  CHECK(got.ok());
}

TEST_CASE("6.4: a deposed leader cannot complete a ReadIndex, and skipping the round is caught",
          "[reads]") {
  SECTION("partitioned: the read times out instead of answering") {
    Node n({1, 2, 3});
    elect_and_commit(n);
    pods::ReadIndex reads(*n.log, n.clock, {.timeout = 100ms});
    Got got;
    reads.read(got.callback());
    reads.poll();
    // Nodes 2 and 3 elect a new leader elsewhere and commit writes; node 1 hears nothing.
    n.clock.advance(100ms);
    reads.poll();
    CHECK(got.failed_with(Errc::timeout));
  }
  SECTION("the new leader's term reaches it: the read is cancelled") {
    Node n({1, 2, 3});
    elect_and_commit(n);
    pods::ReadIndex reads(*n.log, n.clock);
    Got got;
    reads.read(got.callback());
    reads.poll();
    n.log->receive(3, AppendEntries{n.log->term() + 1, 0, 0, 0, {}, 1});
    reads.poll();
    CHECK(got.failed_with(Errc::not_leader));
    Got after;
    reads.read(after.callback());
    CHECK(after.failed_with(Errc::not_leader));
  }
  SECTION("mutation: without the round the partitioned leader answers a stale read") {
    Node n({1, 2, 3});
    elect_and_commit(n);
    n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, n.log->start_round()});
    pods::ReadIndex<Log, Clock, SkipRound> reads(*n.log, n.clock);
    Got got;
    reads.read(got.callback());  // the partition starts: nobody answers any more
    reads.poll();
    CHECK(got.ok());  // the check above (a timeout) fails for this broken rule
  }
}

TEST_CASE("ReadIndex keeps the right reads when a clock stepped back expires them out of order",
          "[reads]") {
  Node n({1, 2, 3});
  elect_and_commit(n);
  pods::ReadIndex reads(*n.log, n.clock, {.timeout = 100ms});
  Got first, second;
  reads.read(first.callback());
  n.clock.set(n.clock.now().time_since_epoch() - 50ms);  // the clock steps back
  reads.read(second.callback());                         // added "before" the first
  n.clock.advance(100ms);
  reads.poll();  // the second read has waited the timeout, the first has not
  CHECK(second.failed_with(Errc::timeout));
  CHECK_FALSE(first.outcome);
  CHECK(reads.pending() == 1);
  const std::uint64_t r = last_round(n.out.take());
  n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, r});
  reads.poll();
  CHECK(first.ok());  // still tracked, so served once its round is confirmed
  CHECK(reads.pending() == 0);
}

TEST_CASE("ReadIndex bounds the waiting reads", "[reads]") {
  Node n({1, 2, 3});
  elect_and_commit(n);
  pods::ReadIndex reads(*n.log, n.clock, {.max_pending = 1});
  Got a, b;
  reads.read(a.callback());
  reads.read(b.callback());
  CHECK_FALSE(a.outcome);
  CHECK(b.failed_with(Errc::full));
  Node f({1, 2, 3});  // a follower refuses
  pods::ReadIndex follower_reads(*f.log, f.clock);
  Got c;
  follower_reads.read(c.callback());
  CHECK(c.failed_with(Errc::not_leader));
}

TEST_CASE("LeaseRead (linearizable within the drift bound): served in the lease, refused after",
          "[reads]") {
  Node n({1, 2, 3});
  elect_and_commit(n);
  pods::LeaseRead lease(*n.log, n.clock, {.max_drift = 100ms});
  Got before;
  lease.read(before.callback());
  CHECK(before.failed_with(Errc::not_leader));  // no round confirmed yet: no lease
  const auto t = n.clock.now();
  n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, n.log->start_round()});
  REQUIRE(lease.lease_until() == t + 300ms - 100ms);
  n.out.take();  // the round's own heartbeats
  n.clock.advance(199ms);
  Got inside;
  lease.read(inside.callback());
  CHECK(inside.ok());  // no message needed
  CHECK(n.out.take().empty());
  n.clock.advance(1ms);
  Got after;
  lease.read(after.callback());
  CHECK(after.failed_with(Errc::not_leader));
  SECTION("the drift bound shortens the lease") {
    pods::LeaseRead no_drift(*n.log, n.clock, {.max_drift = 0ms});
    Got g;
    no_drift.read(g.callback());  // 200 ms after the round: inside 300 ms without drift
    CHECK(g.ok());
  }
}

TEST_CASE("BoundedStaleRead (read-your-writes): waits below the client's index, or times out",
          "[reads]") {
  Node f({1, 2, 3});  // a follower
  pods::BoundedStaleRead reads(*f.log, f.clock, {.max_pending = 2, .timeout = 100ms});
  Got now;
  reads.read(0, now.callback());
  CHECK(now.ok());
  Got wait, too_far, full;
  reads.read(2, wait.callback());
  reads.read(9, too_far.callback());
  reads.read(3, full.callback());
  CHECK(full.failed_with(Errc::full));
  CHECK(reads.pending() == 2);
  f.log->receive(2, AppendEntries{1,
                                  0,
                                  0,
                                  2,
                                  {RaftEntry{1, RaftEntryKind::noop, {}},
                                   RaftEntry{1, RaftEntryKind::command, {std::byte{7}}}},
                                  1});
  REQUIRE(f.log->applied_index() == 2);
  reads.poll();
  REQUIRE(wait.ok());
  CHECK(**wait.outcome == 2);
  CHECK_FALSE(too_far.outcome);
  f.clock.advance(100ms);
  reads.poll();
  CHECK(too_far.failed_with(Errc::timeout));
}

// ---- FollowerRead -----------------------------------------------------------------------

namespace {

using ReadMsg = pods::FollowerReadMessage;
using pods::ReadIndexReply;
using pods::ReadIndexRequest;
using Reads = pods::FollowerRead<Log, Clock, pods::Outbox<ReadMsg>>;

// Makes node 1 a follower of node 2 in `term`, applying a no-op and `commands` commands.
void follow(Node& f, std::uint64_t term, NodeId leader, std::uint64_t commit) {
  std::vector<RaftEntry> entries;
  for (std::uint64_t i = f.log->last_index(); i < commit; ++i)
    entries.push_back(RaftEntry{term, RaftEntryKind::command, {std::byte{1}}});
  f.log->receive(
      leader, AppendEntries{term, f.log->last_index(), f.log->last_index() == 0 ? 0 : term, commit,
                            std::move(entries), 1});
  f.out.take();
  REQUIRE(f.log->leader() == leader);
}

}  // namespace

TEST_CASE("The FollowerRead codec round-trips and names corruption", "[reads]") {
  const pods::FollowerReadMessageCodec codec;
  for (const ReadMsg& m : {ReadMsg{ReadIndexRequest{7}}, ReadMsg{ReadIndexReply{7, true, 42}},
                           ReadMsg{ReadIndexReply{8, false, 0}}}) {
    pods::Buffer b;
    codec.encode(m, b);
    CHECK(codec.decode(b) == m);
    pods::Buffer cut(b.begin(), b.end() - 1);
    CHECK_THROWS_AS(codec.decode(cut), pods::CorruptionError);
    b.push_back(std::byte{0});
    CHECK_THROWS_WITH(codec.decode(b), Catch::Contains("FollowerReadMessage") &&
                                           Catch::Contains("1 unexpected trailing bytes"));
  }
  pods::Buffer b;
  codec.encode(ReadIndexReply{1, false, 0}, b);
  CHECK(b.size() == 19);
  b[11] = std::byte{5};  // the index of a refusal
  CHECK_THROWS_WITH(codec.decode(b), Catch::Contains("a refused reply must carry index 0"));
  b[1] = std::byte{2};
  CHECK_THROWS_WITH(codec.decode(b), Catch::Contains("unknown message tag 2"));
  pods::Buffer q;
  codec.encode(ReadIndexRequest{1}, q);
  CHECK(q.size() == 10);
  q[0] = std::byte{9};
  CHECK_THROWS_WITH(codec.decode(q), Catch::Contains("unknown version 9"));
}

TEST_CASE("FollowerRead rejects bad options naming the option and the rule", "[reads]") {
  Node n({1, 2, 3});
  pods::Outbox<ReadMsg> out;
  CHECK_THROWS_WITH((Reads(*n.log, n.clock, out, {.max_pending = 0})),
                    "FollowerRead: options.max_pending must be at least 1");
  CHECK_THROWS_AS((Reads(*n.log, n.clock, out, {.timeout = 0ms})), std::invalid_argument);
}

TEST_CASE("FollowerRead (linearizable): the follower waits to apply the leader's read index",
          "[reads]") {
  Node f({1, 2, 3});
  pods::Outbox<ReadMsg> out;
  Reads reads(*f.log, f.clock, out);
  Got unknown;
  reads.read(unknown.callback());
  CHECK(unknown.failed_with(Errc::not_leader));  // no leader known
  follow(f, 1, 2, 1);
  Got got;
  reads.read(got.callback());
  auto sent = out.take();
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].to == 2);
  const std::uint64_t id = std::get<ReadIndexRequest>(sent[0].message).read_id;
  reads.receive(3, ReadIndexReply{id, true, 3});      // not the leader asked: dropped
  reads.receive(2, ReadIndexReply{id + 1, true, 3});  // no such read: dropped
  reads.poll();
  CHECK_FALSE(got.outcome);
  reads.receive(2, ReadIndexReply{id, true, 3});
  CHECK_FALSE(got.outcome);  // applied 1 < 3
  CHECK(reads.pending() == 1);
  follow(f, 1, 2, 3);
  reads.poll();
  REQUIRE(got.ok());
  CHECK(**got.outcome == 3);
  CHECK(reads.pending() == 0);
}

TEST_CASE("FollowerRead fails on a refusal, a leader change, a timeout and when full", "[reads]") {
  Node f({1, 2, 3});
  pods::Outbox<ReadMsg> out;
  Reads reads(*f.log, f.clock, out, {.max_pending = 2, .timeout = 100ms});
  follow(f, 1, 2, 1);
  Got refused, changed, full;
  reads.read(refused.callback());
  reads.read(changed.callback());
  reads.read(full.callback());
  CHECK(full.failed_with(Errc::full));
  auto sent = out.take();
  REQUIRE(sent.size() == 2);
  reads.receive(2, ReadIndexReply{std::get<ReadIndexRequest>(sent[0].message).read_id, false, 0});
  CHECK(refused.failed_with(Errc::not_leader));
  reads.receive(2, ReadIndexReply{std::get<ReadIndexRequest>(sent[1].message).read_id, true, 1});
  CHECK(changed.ok());  // applied 1 already
  Got waits, times_out;
  reads.read(waits.callback());
  const auto late = std::get<ReadIndexRequest>(out.take()[0].message).read_id;
  follow(f, 2, 3, 1);  // node 3 leads term 2: the read asked of node 2 is cancelled
  reads.poll();
  CHECK(waits.failed_with(Errc::not_leader));
  reads.receive(2, ReadIndexReply{late, true, 1});  // its late reply is dropped
  reads.read(times_out.callback());
  CHECK(out.take()[0].to == 3);
  f.clock.advance(100ms);
  reads.poll();
  CHECK(times_out.failed_with(Errc::timeout));
  CHECK(reads.pending() == 0);
}

TEST_CASE("FollowerRead uses a transport whose send returns a value; a refused send times out",
          "[reads]") {
  using Checked = raft_sim::ResultOutbox<ReadMsg>;
  Node f({1, 2, 3});
  Checked out;
  pods::FollowerRead<Log, Clock, Checked> reads(*f.log, f.clock, out, {.timeout = 100ms});
  follow(f, 1, 2, 1);
  *out.refuse = true;
  Got lost;
  reads.read(lost.callback());
  CHECK(out.out.empty());
  f.clock.advance(100ms);
  reads.poll();
  CHECK(lost.failed_with(Errc::timeout));
  *out.refuse = false;
  Got got;
  reads.read(got.callback());
  auto sent = out.out.take();
  REQUIRE(sent.size() == 1);
  reads.receive(2, ReadIndexReply{std::get<ReadIndexRequest>(sent[0].message).read_id, true, 1});
  CHECK(got.ok());
}

TEST_CASE("FollowerRead's leader side answers through ReadIndex after its round", "[reads]") {
  Node n({1, 2, 3});
  elect_and_commit(n);
  pods::Outbox<ReadMsg> out;
  Reads reads(*n.log, n.clock, out);
  reads.receive(2, ReadIndexRequest{5});
  reads.poll();  // starts the round
  CHECK(out.empty());
  const std::uint64_t r = last_round(n.out.take());
  n.log->receive(3, AppendReply{n.log->term(), true, 1, 0, 0, r});
  reads.poll();
  auto sent = out.take();
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].to == 2);
  CHECK(sent[0].message == ReadMsg{ReadIndexReply{5, true, 1}});
  Got own;  // the leader's own read goes through ReadIndex too
  reads.read(own.callback());
  reads.poll();
  CHECK_FALSE(own.outcome);
  n.log->receive(3, AppendReply{n.log->term(), true, 1, 0, 0, last_round(n.out.take())});
  reads.poll();
  CHECK(own.ok());
  CHECK(out.empty());
  SECTION("a follower refuses a request at once") {
    Node f({1, 2, 3});
    Reads other(*f.log, f.clock, out);
    other.receive(2, ReadIndexRequest{6});
    CHECK(out.take()[0].message == ReadMsg{ReadIndexReply{6, false, 0}});
  }
}

TEST_CASE("6.4: FollowerRead from a partitioned leader times out, and skipping the round is caught",
          "[reads]") {
  Node n({1, 2, 3});
  elect_and_commit(n);
  n.log->receive(2, AppendReply{n.log->term(), true, 1, 0, 0, n.log->start_round()});
  pods::Outbox<ReadMsg> out;
  SECTION("the rule: no answer without a new round") {
    Reads reads(*n.log, n.clock, out, {.timeout = 100ms});
    reads.receive(2, ReadIndexRequest{1});
    reads.poll();
    n.clock.advance(100ms);
    reads.poll();
    CHECK(out.take()[0].message == ReadMsg{ReadIndexReply{1, false, 0}});
  }
  SECTION("mutation: without the round the partitioned leader grants a stale index") {
    pods::FollowerRead<Log, Clock, pods::Outbox<ReadMsg>, SkipRound> reads(*n.log, n.clock, out);
    reads.receive(2, ReadIndexRequest{1});
    reads.poll();
    CHECK(out.take()[0].message == ReadMsg{ReadIndexReply{1, true, 1}});
  }
}

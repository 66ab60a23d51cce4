// Tests of pods/replication/replicated_log.hpp. Each rule is driven message by message through
// Outbox and a ManualClock, named by the section of the Raft paper (Ongaro and Ousterhout,
// extended version, 2014) it checks; the codec round-trips and rejects bad bytes; and on the
// simulator 3 and 5 servers under a Nemesis (crashes with torn writes, partitions, one-way
// cuts, loss, duplication, delays, pauses) keep the safety properties at every step, serve a
// key-value history that check_linearizable accepts, and elect a leader that commits within a
// bound once the faults stop. Test-only rule policies that break one rule each show that the
// simulation catches them; Figure 8's schedule is driven by partitions the test places as the
// servers reach each step.
//
// Seeds: PODS_SEEDS (default 4 for 3 servers, 3 for 5) runs that many seeded simulations per
// configuration; PODS_SEEDS=1000 for the full sweep. The mutation tests and their controls
// always run their first 20 seeds.
#include <pods/replication/replicated_log.hpp>

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/storage/memory_storage.hpp>

#include "raft_sim.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using pods::AppendEntries;
using pods::AppendReply;
using pods::NodeId;
using pods::RaftEntry;
using pods::RaftRole;
using pods::RequestVote;
using pods::VoteReply;
using Msg = pods::ReplicatedLogMessage;
using raft_sim::seeds;

namespace {

std::vector<std::byte> bytes(const std::string& s) {
  std::vector<std::byte> b;
  for (char c : s)
    b.push_back(static_cast<std::byte>(c));
  return b;
}

// Records what was applied.
struct Recorder {
  std::vector<std::pair<std::uint64_t, std::vector<std::byte>>> applied;
  void apply(std::uint64_t index, std::span<const std::byte> command) {
    applied.push_back({index, {command.begin(), command.end()}});
  }
  std::vector<std::byte> snapshot() const { return {}; }
  void restore(std::span<const std::byte>) {}
};

using Log =
    pods::ReplicatedLog<pods::MemoryStorage, pods::Outbox<Msg>, pods::ManualClock, Recorder>;

pods::ReplicatedLogOptions options(NodeId self, std::vector<NodeId> voters, bool pre_vote = true) {
  return {.self = self,
          .voters = std::move(voters),
          .heartbeat_interval = 50ms,
          .election_timeout_min = 300ms,
          .election_timeout_max = 600ms,
          .pre_vote = pre_vote,
          .seed = self};
}

// One server driven by hand.
struct Server {
  pods::MemoryStorage storage;
  pods::Outbox<Msg> out;
  pods::ManualClock clock;
  Recorder machine;
  pods::ReplicatedLogOptions opts;
  std::unique_ptr<Log> log;

  Server(pods::ManualClock c, pods::ReplicatedLogOptions o) : clock(c), opts(std::move(o)) {
    log = std::make_unique<Log>(storage, out, clock, machine, opts);
  }
  // Crashes the storage (losing what was not synced) and rebuilds the server from it.
  void restart(bool tear) {
    log.reset();
    storage.crash(tear);
    machine = {};
    out.clear();
    log = std::make_unique<Log>(storage, out, clock, machine, opts);
  }
};

template <class M>
M only(const std::vector<pods::Outbox<Msg>::Sent>& sent, NodeId to) {
  for (const auto& s : sent) {
    if (s.to == to) return std::get<M>(s.message);
  }
  FAIL("nothing sent to " << to);
  throw std::logic_error("unreachable");
}

// Elects server 1 of {1, 2, 3} in term 1 (pre-vote, then vote), by hand.
void elect_first(Server& s) {
  s.clock.advance(601ms);
  s.log->tick();
  auto pre = s.out.take();
  REQUIRE(pre.size() == 2);
  s.log->receive(2, VoteReply{s.log->term() + 1, true, true});
  auto votes = s.out.take();
  REQUIRE(s.log->role() == RaftRole::candidate);
  s.log->receive(2, VoteReply{s.log->term(), true, false});
  REQUIRE(s.log->is_leader());
  s.log->tick();  // syncs the no-op and sends it
}

}  // namespace

// ---- options --------------------------------------------------------------------------

TEST_CASE("ReplicatedLog rejects bad options naming the option and the rule", "[replicated_log]") {
  pods::ManualClock clock;
  auto make = [&](pods::ReplicatedLogOptions o) {
    Recorder r;
    Log log(pods::MemoryStorage{}, pods::Outbox<Msg>{}, clock, r, std::move(o));
  };
  CHECK_THROWS_WITH(make({.self = 1, .voters = {}}),
                    "ReplicatedLog: options.voters must not be empty");
  CHECK_THROWS_WITH(make({.self = 4, .voters = {1, 2}}),
                    "ReplicatedLog: options.voters must contain options.self (or learners, for a "
                    "server joining as a learner)");
  CHECK_THROWS_WITH(make({.self = 1, .voters = {0, 1}}),
                    "ReplicatedLog: options.voters must not contain node 0");
  CHECK_THROWS_WITH(make({.self = 1, .voters = {1}, .heartbeat_interval = 0ms}),
                    "ReplicatedLog: options.heartbeat_interval must be positive");
  CHECK_THROWS_WITH(
      make({.self = 1, .voters = {1}, .heartbeat_interval = 300ms, .election_timeout_min = 300ms}),
      "ReplicatedLog: options.election_timeout_min must be greater than heartbeat_interval");
  CHECK_THROWS_WITH(
      make(
          {.self = 1, .voters = {1}, .election_timeout_min = 300ms, .election_timeout_max = 200ms}),
      "ReplicatedLog: options.election_timeout_max must not be less than "
      "election_timeout_min");
  CHECK_THROWS_WITH(make({.self = 1, .voters = {1}, .window = 0}),
                    "ReplicatedLog: options.window must be at least 1");
  CHECK_THROWS_WITH(make({.self = 1, .voters = {1}, .max_batch_entries = 0}),
                    "ReplicatedLog: options.max_batch_entries must be at least 1");
  CHECK_THROWS_WITH(make({.self = 1, .voters = {1}, .snapshot_chunk_bytes = 0}),
                    "ReplicatedLog: options.snapshot_chunk_bytes must be at least 1");
  CHECK_THROWS_AS(make({.self = 1, .voters = {}}), std::invalid_argument);
  CHECK_THROWS_WITH(make({.self = 1, .voters = {1, 1}}),
                    "MajorityQuorum: voters must not repeat node 1");
}

// ---- elections ------------------------------------------------------------------------

TEST_CASE("5.2: a follower starts an election after a randomised timeout", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}, false));
  REQUIRE(s.log->role() == RaftRole::follower);
  clock.advance(299ms);
  s.log->tick();
  CHECK(s.out.empty());  // below election_timeout_min
  const auto deadline = s.log->next_deadline();
  CHECK(deadline >= clock.now() + 1ms);
  CHECK(deadline <= pods::ManualClock::time_point(600ms));
  clock.set(deadline.time_since_epoch());
  s.log->tick();
  auto sent = s.out.take();
  REQUIRE(sent.size() == 2);
  CHECK(s.log->role() == RaftRole::candidate);
  CHECK(s.log->term() == 1);
  CHECK(s.log->voted_for() == 1);
  CHECK(only<RequestVote>(sent, 2) == RequestVote{1, 0, 0, false});
  CHECK(only<RequestVote>(sent, 3) == RequestVote{1, 0, 0, false});
}

TEST_CASE("5.2: election timeouts differ between seeds", "[replicated_log]") {
  pods::ManualClock clock;
  std::map<std::int64_t, int> deadlines;
  for (NodeId self = 1; self <= 8; ++self) {
    auto o = options(self, {1, 2, 3, 4, 5, 6, 7, 8});
    Server s(clock, o);
    ++deadlines[s.log->next_deadline().time_since_epoch().count()];
  }
  CHECK(deadlines.size() > 4);
}

TEST_CASE("5.2: a candidate with a majority of votes leads and appends a no-op (5.4.2)",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}, false));
  clock.advance(601ms);
  s.log->tick();
  s.out.clear();
  s.log->receive(3, VoteReply{1, false, false});
  CHECK(s.log->role() == RaftRole::candidate);
  s.log->receive(2, VoteReply{1, true, false});
  CHECK(s.log->is_leader());
  CHECK(s.log->leader() == NodeId{1});
  REQUIRE(s.log->last_index() == 1);
  CHECK(*s.log->entry(1) == RaftEntry{1, pods::RaftEntryKind::noop, {}});
  s.log->tick();
  auto sent = s.out.take();
  const auto& a = only<AppendEntries>(sent, 2);
  CHECK(a.term == 1);
  CHECK(a.prev_index == 0);
  CHECK(a.entries == std::vector<RaftEntry>{RaftEntry{1, pods::RaftEntryKind::noop, {}}});
}

TEST_CASE("5.2: one vote per term, to the first candidate that asks", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, RequestVote{1, 0, 0, false});
  CHECK(only<VoteReply>(s.out.take(), 2) == VoteReply{1, true, false});
  CHECK(s.log->voted_for() == 2);
  s.log->receive(3, RequestVote{1, 0, 0, false});
  CHECK(only<VoteReply>(s.out.take(), 3) == VoteReply{1, false, false});
  s.log->receive(2, RequestVote{1, 0, 0, false});  // a retransmission is granted again
  CHECK(only<VoteReply>(s.out.take(), 2) == VoteReply{1, true, false});
  s.log->receive(3, RequestVote{2, 0, 0, false});  // a new term: a new vote
  CHECK(only<VoteReply>(s.out.take(), 3) == VoteReply{2, true, false});
}

TEST_CASE("5.2: the vote is durable before it is sent, and survives a torn crash",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, RequestVote{4, 0, 0, false});
  REQUIRE(only<VoteReply>(s.out.take(), 2).granted);
  s.restart(true);
  CHECK(s.log->term() == 4);
  CHECK(s.log->voted_for() == 2);
  s.log->receive(3, RequestVote{4, 0, 0, false});
  CHECK(only<VoteReply>(s.out.take(), 3) == VoteReply{4, false, false});
}

TEST_CASE("5.4.1: a vote goes only to a candidate whose log is at least as up to date",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  // Give server 1 two entries of term 2 from leader 2.
  s.log->receive(2, AppendEntries{2,
                                  0,
                                  0,
                                  0,
                                  {RaftEntry{2, pods::RaftEntryKind::noop, {}},
                                   RaftEntry{2, pods::RaftEntryKind::command, bytes("a")}}});
  REQUIRE(only<AppendReply>(s.out.take(), 2) == AppendReply{2, true, 2, 0, 0});
  clock.advance(1s);                               // the leader's lease has lapsed
  s.log->receive(3, RequestVote{3, 5, 1, false});  // longer, but an older last term
  CHECK_FALSE(only<VoteReply>(s.out.take(), 3).granted);
  s.log->receive(3, RequestVote{4, 1, 2, false});  // same last term, shorter
  CHECK_FALSE(only<VoteReply>(s.out.take(), 3).granted);
  s.log->receive(3, RequestVote{5, 2, 2, false});  // as up to date
  CHECK(only<VoteReply>(s.out.take(), 3).granted);
  s.log->receive(2, RequestVote{6, 1, 3, false});  // a newer last term wins over length
  CHECK(only<VoteReply>(s.out.take(), 2).granted);
}

TEST_CASE("9.6: pre-vote asks without raising the term; a granted pre-vote starts the election",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  clock.advance(601ms);
  s.log->tick();
  auto sent = s.out.take();
  CHECK(s.log->role() == RaftRole::pre_candidate);
  CHECK(s.log->term() == 0);
  CHECK(s.log->voted_for() == 0);
  CHECK(only<RequestVote>(sent, 2) == RequestVote{1, 0, 0, true});
  s.log->receive(2, VoteReply{1, true, true});
  CHECK(s.log->role() == RaftRole::candidate);
  CHECK(s.log->term() == 1);
  CHECK(only<RequestVote>(s.out.take(), 3) == RequestVote{1, 0, 0, false});
}

TEST_CASE("9.6: a pre-vote neither changes the voter's term nor its vote", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, RequestVote{3, 0, 0, true});
  CHECK(only<VoteReply>(s.out.take(), 2) == VoteReply{3, true, true});
  CHECK(s.log->term() == 0);
  CHECK(s.log->voted_for() == 0);
}

TEST_CASE("6: a server that heard from a leader recently ignores votes and refuses pre-votes",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, AppendEntries{1, 0, 0, 0, {}});
  s.out.clear();
  clock.advance(100ms);
  s.log->receive(3, RequestVote{2, 0, 0, true});
  CHECK(only<VoteReply>(s.out.take(), 3) == VoteReply{1, false, true});
  s.log->receive(3, RequestVote{2, 0, 0, false});
  CHECK(s.out.empty());  // ignored: a rejoining server cannot depose the leader
  CHECK(s.log->term() == 1);
  CHECK(s.log->leader() == NodeId{2});
  clock.advance(300ms);  // the lease lapsed
  s.log->receive(3, RequestVote{2, 0, 0, false});
  CHECK(only<VoteReply>(s.out.take(), 3) == VoteReply{2, true, false});
}

TEST_CASE("6: a leader that hears from no majority within an election timeout steps down",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  elect_first(s);
  const std::uint64_t term = s.log->term();
  s.log->receive(2, AppendReply{term, true, 1, 0, 0});
  clock.advance(300ms);
  s.log->tick();
  CHECK(s.log->is_leader());  // 2 answered in this round: with 1, a majority
  clock.advance(300ms);
  s.log->tick();
  CHECK(s.log->role() == RaftRole::follower);  // nobody answered in the next round
  CHECK(s.log->term() == term);
}

TEST_CASE("5.1: a higher term in any message makes a leader step down", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  elect_first(s);
  s.log->receive(3, AppendReply{7, false, 0, 0, 0});
  CHECK(s.log->role() == RaftRole::follower);
  CHECK(s.log->term() == 7);
  CHECK(s.log->voted_for() == 0);
}

// ---- replication ----------------------------------------------------------------------

TEST_CASE("5.3: AppendEntries is refused without the previous entry, with a back-off hint",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, AppendEntries{1,
                                  0,
                                  0,
                                  0,
                                  {RaftEntry{1, pods::RaftEntryKind::noop, {}},
                                   RaftEntry{1, pods::RaftEntryKind::command, bytes("a")}}});
  s.out.clear();
  s.log->receive(2, AppendEntries{1, 5, 1, 0, {}});  // beyond our log
  CHECK(only<AppendReply>(s.out.take(), 2) == AppendReply{1, false, 0, 0, 3});
  s.log->receive(3, AppendEntries{2, 2, 2, 0, {}});  // index 2 holds term 1, not 2
  CHECK(only<AppendReply>(s.out.take(), 3) == AppendReply{2, false, 0, 1, 1});
}

TEST_CASE("5.3: a conflicting suffix is truncated and replaced", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, AppendEntries{1,
                                  0,
                                  0,
                                  0,
                                  {RaftEntry{1, pods::RaftEntryKind::noop, {}},
                                   RaftEntry{1, pods::RaftEntryKind::command, bytes("a")},
                                   RaftEntry{1, pods::RaftEntryKind::command, bytes("b")}}});
  s.out.clear();
  s.log->receive(
      3, AppendEntries{2, 1, 1, 0, {RaftEntry{2, pods::RaftEntryKind::command, bytes("c")}}});
  CHECK(only<AppendReply>(s.out.take(), 3) == AppendReply{2, true, 2, 0, 0});
  CHECK(s.log->last_index() == 2);
  CHECK(*s.log->entry(2) == RaftEntry{2, pods::RaftEntryKind::command, bytes("c")});
  // The truncation is durable: a crash does not bring "b" back.
  s.restart(true);
  CHECK(s.log->last_index() == 2);
  CHECK(s.log->term_at(2) == 2);
}

TEST_CASE("5.3: an old AppendEntries does not cut entries appended after it", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, AppendEntries{1,
                                  0,
                                  0,
                                  0,
                                  {RaftEntry{1, pods::RaftEntryKind::noop, {}},
                                   RaftEntry{1, pods::RaftEntryKind::command, bytes("a")}}});
  s.log->receive(
      2,
      AppendEntries{1, 0, 0, 0, {RaftEntry{1, pods::RaftEntryKind::noop, {}}}});  // delivered late
  CHECK(s.log->last_index() == 2);
}

TEST_CASE("5.3: the leader backs off past a whole conflicting term at once", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  elect_first(s);
  s.out.clear();
  const std::uint64_t term = s.log->term();
  for (int i = 0; i < 5; ++i)
    (void)s.log->propose(bytes("x"));
  s.log->tick();
  s.out.clear();
  // Follower 2 holds 1..4 from a term the leader does not have at all: it starts over at 1.
  s.log->receive(2, AppendReply{term, false, 0, 9, 1});
  const auto sent = s.out.take();
  const auto& a = only<AppendEntries>(sent, 2);
  CHECK(a.prev_index == 0);
  CHECK(a.entries.size() == 6);
}

TEST_CASE("5.3: the leader pipelines up to the window and batches entries", "[replicated_log]") {
  pods::ManualClock clock;
  auto o = options(1, {1, 2, 3});
  o.window = 2;
  o.max_batch_entries = 3;
  Server s(clock, o);
  elect_first(s);
  s.out.clear();
  s.log->receive(2, AppendReply{s.log->term(), true, 1, 0, 0});  // the no-op
  s.out.clear();
  for (int i = 0; i < 20; ++i)
    (void)s.log->propose(bytes("x"));
  s.log->tick();
  std::vector<AppendEntries> to2;
  for (const auto& m : s.out.take()) {
    if (m.to == 2) to2.push_back(std::get<AppendEntries>(m.message));
  }
  // The window is full after two messages of 3 entries each.
  REQUIRE(to2.size() == 2);
  CHECK(to2[0].prev_index == 1);
  CHECK(to2[0].entries.size() == 3);
  CHECK(to2[1].prev_index == 4);
  CHECK(to2[1].entries.size() == 3);
  s.log->receive(2, AppendReply{s.log->term(), true, 4, 0, 0});
  const auto& next = only<AppendEntries>(s.out.take(), 2);
  CHECK(next.prev_index == 7);  // one slot freed, the next batch
}

TEST_CASE("5.4.2: the leader commits an older term's entry only with one of its own term",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}, false));
  // As a follower of leader 2 in term 1, server 1 stores a command it never sees committed.
  s.log->receive(
      2, AppendEntries{1, 0, 0, 0, {RaftEntry{1, pods::RaftEntryKind::command, bytes("old")}}});
  s.out.clear();
  clock.advance(1s);
  s.log->tick();  // becomes candidate in term 2
  s.log->receive(3, VoteReply{2, true, false});
  REQUIRE(s.log->is_leader());
  s.log->tick();
  s.out.clear();
  REQUIRE(s.log->term_at(2) == 2);                   // the no-op
  s.log->receive(3, AppendReply{2, true, 1, 0, 0});  // 3 holds the old entry: a majority
  CHECK(s.log->commit_index() == 0);                 // but it is not of term 2
  CHECK(s.machine.applied.empty());
  s.log->receive(3, AppendReply{2, true, 2, 0, 0});
  CHECK(s.log->commit_index() == 2);
  REQUIRE(s.machine.applied.size() == 1);
  CHECK(s.machine.applied[0] == std::pair<std::uint64_t, std::vector<std::byte>>{1, bytes("old")});
}

TEST_CASE("5.3: followers learn the high-water mark and apply in order", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, AppendEntries{1,
                                  0,
                                  0,
                                  0,
                                  {RaftEntry{1, pods::RaftEntryKind::noop, {}},
                                   RaftEntry{1, pods::RaftEntryKind::command, bytes("a")},
                                   RaftEntry{1, pods::RaftEntryKind::command, bytes("b")}}});
  CHECK(s.log->commit_index() == 0);
  s.log->receive(2, AppendEntries{1, 3, 1, 2, {}});
  CHECK(s.log->commit_index() == 2);
  REQUIRE(s.machine.applied.size() == 1);
  CHECK(s.machine.applied[0].first == 2);
  s.log->receive(2, AppendEntries{1, 1, 1, 1, {}});  // an older mark: never back
  CHECK(s.log->commit_index() == 2);
  // A mark above what this message verified is capped at its last entry.
  s.log->receive(3, AppendEntries{2, 2, 1, 9, {}});
  CHECK(s.log->commit_index() == 2);
  CHECK(s.log->last_index() == 3);
  // A message that would replace a committed entry is malformed: dropped and counted.
  s.log->receive(
      3, AppendEntries{2, 1, 1, 9, {RaftEntry{2, pods::RaftEntryKind::command, bytes("c")}}});
  CHECK(s.log->dropped() == 1);
  CHECK(*s.log->entry(2) == RaftEntry{1, pods::RaftEntryKind::command, bytes("a")});
}

TEST_CASE("propose returns not_leader with a leader hint on a follower", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  CHECK(s.log->propose(bytes("a")) == pods::Errc::not_leader);
  CHECK_FALSE(s.log->leader());
  s.log->receive(3, AppendEntries{1, 0, 0, 0, {}});
  CHECK(s.log->propose(bytes("a")) == pods::Errc::not_leader);
  CHECK(s.log->leader() == NodeId{3});
}

TEST_CASE("A leader commits and applies a proposal once a majority synced it", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  elect_first(s);
  s.out.clear();
  auto index = s.log->propose(bytes("cmd"));
  REQUIRE(index);
  CHECK(index.value() == 2);
  s.log->tick();
  CHECK(s.log->commit_index() == 0);
  s.log->receive(3, AppendReply{s.log->term(), true, 2, 0, 0});
  CHECK(s.log->commit_index() == 2);
  REQUIRE(s.machine.applied.size() == 1);
  CHECK(s.machine.applied[0].second == bytes("cmd"));
}

TEST_CASE("A malformed message is dropped and counted", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(0, RequestVote{1, 0, 0, false});  // node 0
  s.log->receive(1, RequestVote{1, 0, 0, false});  // from itself
  CHECK(s.out.empty());
  CHECK(s.log->dropped() == 2);
  elect_first(s);
  s.log->receive(2, AppendReply{s.log->term(), true, 99, 0, 0});  // beyond the leader's log
  CHECK(s.log->dropped() == 3);
  CHECK(s.log->commit_index() == 0);
}

TEST_CASE("A transport whose send returns a value is used as is; a refused send is a lost message",
          "[replicated_log]") {
  using Checked = raft_sim::ResultOutbox<Msg>;
  pods::ManualClock clock;
  Checked transport;
  pods::MemoryStorage storage;
  Recorder machine;
  pods::ReplicatedLog<pods::MemoryStorage, Checked, pods::ManualClock, Recorder> log(
      storage, transport, clock, machine, options(1, {1, 2, 3}, false));
  *transport.refuse = true;
  clock.advance(601ms);
  log.tick();
  CHECK(log.role() == RaftRole::candidate);
  CHECK(transport.out.empty());  // both RequestVotes refused, so lost
  *transport.refuse = false;
  clock.set(log.next_deadline().time_since_epoch());
  log.tick();  // 5.2: the election timeout retries in a new term
  auto sent = transport.out.take();
  REQUIRE(sent.size() == 2);
  CHECK(only<RequestVote>(sent, 2) == RequestVote{2, 0, 0, false});
}

TEST_CASE("A server rebuilt from a torn crash keeps its synced log and term", "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, AppendEntries{3,
                                  0,
                                  0,
                                  0,
                                  {RaftEntry{3, pods::RaftEntryKind::noop, {}},
                                   RaftEntry{3, pods::RaftEntryKind::command, bytes("a")}}});
  s.restart(true);
  CHECK(s.log->term() == 3);
  CHECK(s.log->last_index() == 2);
  CHECK(*s.log->entry(2) == RaftEntry{3, pods::RaftEntryKind::command, bytes("a")});
  CHECK(s.log->commit_index() == 0);  // learnt again from the leader
}

TEST_CASE("A torn term and vote record is cut; a bad earlier one is corruption",
          "[replicated_log]") {
  pods::ManualClock clock;
  Server s(clock, options(1, {1, 2, 3}));
  s.log->receive(2, RequestVote{4, 0, 0, false});  // records term 4 with vote 2
  s.log.reset();
  const std::uint64_t id = pods::detail::raft_state_segment;
  const std::uint64_t size = s.storage.size(id);
  REQUIRE(size % 20 == 0);
  const std::vector<std::byte> partial(13, std::byte{0x5A});
  s.storage.append(id, partial);  // a record cut short by a crash
  s.log = std::make_unique<Log>(s.storage, s.out, clock, s.machine, s.opts);
  CHECK(s.log->term() == 4);
  CHECK(s.log->voted_for() == 2);
  CHECK(s.storage.size(id) == size);  // the torn bytes were cut
  s.log.reset();
  // Garble the first record's checksum while a later record follows it.
  std::vector<std::byte> all(static_cast<std::size_t>(size));
  REQUIRE(s.storage.read(id, 0, all) == size);
  REQUIRE(size >= 40);
  s.storage.truncate(id, 0);
  all[16] ^= std::byte{1};
  s.storage.append(id, all);
  s.storage.sync(id);
  try {
    Log broken(s.storage, s.out, clock, s.machine, s.opts);
    FAIL("opened corrupt durable state");
  } catch (const pods::CorruptionError& e) {
    const std::string what = e.what();
    CHECK(what.find(s.storage.name(id)) != std::string::npos);
    CHECK(what.find("checksum mismatch in a term and vote record before the last") !=
          std::string::npos);
  }
}

// ---- the codec ------------------------------------------------------------------------

TEST_CASE("ReplicatedLogMessageCodec round-trips every message", "[replicated_log][codec]") {
  const pods::ReplicatedLogMessageCodec codec;
  const std::vector<Msg> messages = {
      RequestVote{1, 2, 3, true},
      VoteReply{9, true, false},
      AppendEntries{5,
                    4,
                    3,
                    2,
                    {RaftEntry{1, pods::RaftEntryKind::noop, {}},
                     RaftEntry{5, pods::RaftEntryKind::command, bytes("xyz")}}},
      AppendEntries{},
      AppendReply{7, false, 0, 3, 11},
  };
  for (const Msg& m : messages) {
    pods::Buffer b;
    codec.encode(m, b);
    CHECK(std::to_integer<int>(b[0]) == 3);
    CHECK(codec.decode(b) == m);
  }
}

TEST_CASE("ReplicatedLogMessageCodec rejects bad bytes naming where", "[replicated_log][codec]") {
  const pods::ReplicatedLogMessageCodec codec;
  pods::Buffer b;
  codec.encode(VoteReply{9, true, false}, b);
  auto bad = b;
  bad[0] = std::byte{1};  // version 1 (a no-op boolean where the entry kind is) is refused
  CHECK_THROWS_AS(codec.decode(bad), pods::CorruptionError);
  bad = b;
  bad[1] = std::byte{4};
  CHECK_THROWS_AS(codec.decode(bad), pods::CorruptionError);
  bad = b;
  bad.pop_back();
  CHECK_THROWS_AS(codec.decode(bad), pods::CorruptionError);
  bad = b;
  bad.push_back(std::byte{0});
  CHECK_THROWS_AS(codec.decode(bad), pods::CorruptionError);
  bad = b;
  bad[10] = std::byte{2};  // the granted boolean
  CHECK_THROWS_AS(codec.decode(bad), pods::CorruptionError);
  try {
    (void)codec.decode(std::span<const std::byte>(b.data(), 1));
    FAIL("decoded a truncated message");
  } catch (const pods::CorruptionError& e) {
    CHECK(std::string(e.what()).find("ReplicatedLogMessage") != std::string::npos);
  }
}

// ---- the simulator (tests/replication/raft_sim.hpp) -------------------------------------

using raft_sim::sweep;

TEST_CASE("5.4.3: on the simulator, 3 servers stay safe and linearizable under the nemesis",
          "[replicated_log][sim]") {
  sweep<pods::RaftRules>(3, seeds(4));
}

TEST_CASE("5.4.3: on the simulator, 5 servers stay safe and linearizable under the nemesis",
          "[replicated_log][sim]") {
  sweep<pods::RaftRules>(5, seeds(3));
}

// ---- mutations: each broken rule is caught by the simulation --------------------------

using raft_sim::crashy;
using raft_sim::first_violation;
using raft_sim::ForgetfulVoteStorage;
using raft_sim::hostile;
using raft_sim::mutation_seeds;
using raft_sim::NoUpToDateCheck;
using raft_sim::PreviousTermCommit;

TEST_CASE("Mutation: without the up-to-date check (5.4.1) the simulation finds a violation",
          "[replicated_log][sim][mutation]") {
  CHECK(first_violation<NoUpToDateCheck>(hostile, mutation_seeds) != 0);
}

TEST_CASE("Mutation: committing a previous term's entry by counting (5.4.2) is caught",
          "[replicated_log][mutation]") {
  // The nemesis alone rarely reaches Figure 8's schedule (the hidden [figure8] test below
  // does, slowly; the driven Figure 8 scenario below does at once), so this mutation is also
  // shown against the message-by-message 5.4.2 test's situation: the broken rule commits
  // the old entry that the test requires to stay uncommitted.
  using Broken = pods::ReplicatedLog<pods::MemoryStorage, pods::Outbox<Msg>, pods::ManualClock,
                                     Recorder, PreviousTermCommit>;
  pods::ManualClock clock;
  pods::Outbox<Msg> out;
  Recorder machine;
  Broken log(pods::MemoryStorage{}, out, clock, machine, options(1, {1, 2, 3}, false));
  log.receive(
      2, AppendEntries{1, 0, 0, 0, {RaftEntry{1, pods::RaftEntryKind::command, bytes("old")}}});
  clock.advance(1s);
  log.tick();
  log.receive(3, VoteReply{2, true, false});
  REQUIRE(log.is_leader());
  log.tick();
  log.receive(3, AppendReply{2, true, 1, 0, 0});
  CHECK(log.commit_index() == 1);  // what "5.4.2: the leader commits an older term's entry
                                   // only with one of its own term" rejects
}

namespace {

// Figure 8's schedule made likely: one entry per AppendEntries and one in flight (so an old
// entry is counted on a majority before the new leader's no-op reaches it), long delays
// against short timeouts (many elections), no pre-vote or check-quorum.
const raft_sim::Scenario figure8{.nodes = 3,
                                 .min_gap = 10ms,
                                 .max_gap = 80ms,
                                 .max_fault = 150ms,
                                 .pre_vote_and_check_quorum = false,
                                 .max_delay = 60ms,
                                 .clients = 8,
                                 .configure = [](pods::ReplicatedLogOptions& o) {
                                   o.max_batch_entries = 1;
                                   o.window = 1;
                                   o.heartbeat_interval = 10ms;
                                   o.election_timeout_min = 60ms;
                                   o.election_timeout_max = 200ms;
                                 }};

}  // namespace

// Hidden from the CI run (about 1.5 s per seed optimised, several times that in a debug or
// sanitizer build): run it with `replication_replicated_log_test "[figure8]"`.
TEST_CASE("Mutation: the simulation catches committing a previous term's entry by counting",
          "[.][replicated_log][sim][mutation][figure8]") {
  CHECK(first_violation<PreviousTermCommit>(figure8, mutation_seeds) != 0);
  CHECK(first_violation<pods::RaftRules>(figure8, mutation_seeds) == 0);  // the control
}

namespace {

// Figure 8's schedule driven by the extension's partitions instead of waited for (3 servers,
// no nemesis fault, one entry per AppendEntries and a window of 1, no pre-vote or
// check-quorum):
//   1. once the cluster is idle with every log at index k, leader `a` (term t) is cut off
//      alone; the clients' proposals still append entries of term t after k on it;
//   2. the others elect `n` (term t + 1, a no-op at k + 1 in its log only): as soon as it
//      leads, it is cut off alone and `a` rejoins `f`, the third server;
//   3. `a` wins a later term (its log is the more up to date) and replicates its term-t
//      entries to `f` one at a time: as soon as its commit index passes k, `a` is cut off
//      and `n` rejoins `f`.
// Counting replicas commits a's entry k + 1 (term t) on {a, f} before a's own no-op reaches f;
// `n`, whose last entry (term t + 1) is more up to date than f's, then wins and lacks it. With
// the current-term rule a's commit index passes k only once its no-op is on f, and `n` cannot
// win.
struct Figure8 {
  enum class Phase { idle, old_leader_cut, new_leader_cut, done } phase = Phase::idle;
  NodeId a = 0, n = 0, f = 0;
  std::uint64_t k = 0, t = 0;
  bool reached = false;  // the schedule got to step 3's cut

  template <class Ctx>
  void on_step(Ctx& ctx) {
    auto log = [&](NodeId id) {
      return ctx.cluster.node(id) ? &ctx.cluster.node(id)->log : nullptr;
    };
    if (phase == Phase::idle) {
      if (ctx.sim.now() < pods::sim::Simulation::time_point(1s)) return;
      for (NodeId id : ctx.voters) {
        auto* l = log(id);
        if (!l || !l->is_leader() || l->commit_index() != l->last_index()) continue;
        bool idle = true;
        for (NodeId o : ctx.voters)
          idle = idle && log(o) && log(o)->last_index() == l->last_index();
        if (!idle) return;
        a = id;
        k = l->last_index();
        t = l->term();
        std::vector<NodeId> others;
        for (NodeId o : ctx.voters)
          if (o != a) others.push_back(o);
        ctx.net.partition({std::vector<NodeId>{a}, others});
        phase = Phase::old_leader_cut;
        return;
      }
      return;
    }
    if (phase == Phase::old_leader_cut) {
      for (NodeId id : ctx.voters) {
        auto* l = log(id);
        if (id == a || !l || !l->is_leader()) continue;
        n = id;
        for (NodeId o : ctx.voters)
          if (o != a && o != n) f = o;
        const bool appended = log(a) && log(a)->last_index() > k && log(a)->term_at(k + 1) == t;
        if (!appended) {
          phase = Phase::done;  // a got no entry of its own: nothing to count
          return;
        }
        ctx.net.partition({std::vector<NodeId>{a, f}, std::vector<NodeId>{n}});
        phase = Phase::new_leader_cut;
        return;
      }
      return;
    }
    if (phase == Phase::new_leader_cut) {
      auto* l = log(a);
      if (!l || !l->is_leader() || l->term() <= t + 1 || l->commit_index() <= k) return;
      ctx.net.partition({std::vector<NodeId>{a}, std::vector<NodeId>{n, f}});
      reached = true;
      phase = Phase::done;
    }
  }
};

const raft_sim::Scenario figure8_driven{.nodes = 3,
                                        .min_gap = 60s,  // the extension alone cuts links
                                        .max_gap = 60s,
                                        .pre_vote_and_check_quorum = false,
                                        .crashes_only = true,
                                        .loss = 0,
                                        .duplicate = 0,
                                        .configure = figure8.configure};

// Runs seeds 1..n of the driven Figure 8 and returns how many found a violation; counts the
// runs that reached the last cut.
template <class Rules>
std::uint64_t figure8_driven_violations(std::uint64_t n, std::uint64_t& reached) {
  std::uint64_t caught = 0;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    Figure8 driver;
    const raft_sim::RunResult r = raft_sim::run<Rules>(seed, figure8_driven, driver);
    reached += driver.reached ? 1 : 0;
    if (!r.violation.empty() && caught++ == 0) {
      WARN("seed " << seed << ": " << r.violation.substr(0, r.violation.find('\n')));
    }
  }
  return caught;
}

}  // namespace

TEST_CASE("Mutation: Figure 8's schedule, driven, catches committing a previous term's entry",
          "[replicated_log][sim][mutation]") {
  const std::uint64_t n = seeds(mutation_seeds);
  std::uint64_t reached = 0, control_reached = 0;
  const std::uint64_t caught = figure8_driven_violations<PreviousTermCommit>(n, reached);
  CHECK(caught > 0);
  CHECK(figure8_driven_violations<pods::RaftRules>(n, control_reached) == 0);
  CHECK(control_reached > 0);  // the control went through the same schedule
  WARN("driven Figure 8, " << n << " seeds: counting caught at " << caught << " (" << reached
                           << " reached the last cut); the control found nothing ("
                           << control_reached << " reached the last cut)");
}

TEST_CASE("Mutation: a vote that is not durable (5.2) is caught",
          "[replicated_log][sim][mutation]") {
  CHECK(first_violation<pods::RaftRules, ForgetfulVoteStorage>(crashy, mutation_seeds) != 0);
}

TEST_CASE("Mutation controls: the same scenarios and seeds find nothing with every rule kept",
          "[replicated_log][sim][mutation]") {
  CHECK(first_violation<pods::RaftRules>(hostile, mutation_seeds) == 0);
  CHECK(first_violation<pods::RaftRules>(crashy, mutation_seeds) == 0);
}

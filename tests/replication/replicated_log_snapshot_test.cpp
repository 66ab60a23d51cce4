// Tests of the snapshot, InstallSnapshot and leadership-transfer rules of
// pods/replication/replicated_log.hpp, driven message by message through Outbox and a
// ManualClock and named by the section they check: Raft paper (Ongaro and Ousterhout,
// extended version, 2014) §7 for snapshots and InstallSnapshot, Raft dissertation (Ongaro
// 2014) §3.10 for leadership transfer. The state machine is a key-value map whose snapshot
// is the encoded map, so a wrong restore shows as a different map. A test-only rule policy
// that acknowledges InstallSnapshot before making it durable is caught.
#include <pods/replication/replicated_log.hpp>

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/history.hpp>
#include <pods/sim/linearizability.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using pods::AppendEntries;
using pods::InstallSnapshot;
using pods::InstallSnapshotReply;
using pods::NodeId;
using pods::RaftEntry;
using pods::RaftRole;
using pods::TimeoutNow;
using Msg = pods::ReplicatedLogMessage;

namespace {

std::vector<std::byte> bytes(const std::string& s) {
  std::vector<std::byte> b;
  for (char c : s)
    b.push_back(static_cast<std::byte>(c));
  return b;
}

std::string text(std::span<const std::byte> b) {
  std::string s;
  for (std::byte c : b)
    s.push_back(static_cast<char>(c));
  return s;
}

// A key-value map: a command "k=v" sets k; the snapshot is "k=v\n" per key, in key order.
struct Kv {
  std::map<std::string, std::string> map;
  std::uint64_t restores = 0;
  void apply(std::uint64_t, std::span<const std::byte> command) {
    const std::string c = text(command);
    const auto eq = c.find('=');
    map[c.substr(0, eq)] = c.substr(eq + 1);
  }
  std::vector<std::byte> snapshot() const {
    std::string s;
    for (const auto& [k, v] : map)
      s += k + "=" + v + "\n";
    return bytes(s);
  }
  void restore(std::span<const std::byte> data) {
    ++restores;
    map.clear();
    const std::string s = text(data);
    std::size_t at = 0;
    while (at < s.size()) {
      const std::size_t end = s.find('\n', at);
      apply(0, bytes(s.substr(at, end - at)));
      at = end + 1;
    }
  }
};

// A MemoryStorage whose sync of a snapshot segment fails while `fail_snapshot_sync` is set:
// a crash between the snapshot's write and its sync.
class SnapshotSyncFault : public pods::MemoryStorage {
 public:
  std::shared_ptr<bool> fail_snapshot_sync = std::make_shared<bool>(false);
  void sync(std::uint64_t id) {
    const bool snapshot = id == pods::detail::raft_snapshot_segments[0] ||
                          id == pods::detail::raft_snapshot_segments[1];
    if (snapshot && *fail_snapshot_sync) {
      throw std::system_error(std::make_error_code(std::errc::io_error), "injected");
    }
    pods::MemoryStorage::sync(id);
  }
};

// Test-only rule: the follower replies to InstallSnapshot before its snapshot is durable.
struct NonDurableInstall : pods::RaftRules {
  static constexpr bool durable_install = false;
};

pods::ReplicatedLogOptions options(NodeId self, std::vector<NodeId> voters) {
  return {.self = self,
          .voters = std::move(voters),
          .heartbeat_interval = 50ms,
          .election_timeout_min = 300ms,
          .election_timeout_max = 600ms,
          .seed = self,
          .log = {.segment_bytes = 128}};
}

// One server driven by hand.
template <class Rules = pods::RaftRules>
struct Server {
  using Log =
      pods::ReplicatedLog<SnapshotSyncFault, pods::Outbox<Msg>, pods::ManualClock, Kv, Rules>;
  SnapshotSyncFault storage;
  pods::Outbox<Msg> out;
  pods::ManualClock clock;
  Kv machine;
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
  // Returns how many log segments the storage holds.
  std::size_t log_segments() const {
    return pods::detail::RaftLogStorage<SnapshotSyncFault>(storage).list().size();
  }
};

// Elects a single voter and commits `n` commands "k<i>=<i>".
template <class S>
void single_voter_commits(S& s, int n) {
  s.clock.advance(601ms);
  s.log->tick();
  s.log->tick();
  REQUIRE(s.log->is_leader());
  for (int i = 1; i <= n; ++i) {
    REQUIRE(s.log->propose(bytes("k" + std::to_string(i) + "=" + std::to_string(i))));
    s.log->tick();
  }
}

// Three servers on one clock; messages between servers that are not cut are delivered at
// once by pump().
struct Trio {
  pods::ManualClock clock;
  std::array<std::unique_ptr<Server<>>, 4> s;
  std::array<bool, 4> cut{};
  std::uint64_t snapshot_every;

  explicit Trio(std::uint64_t every = 0) : snapshot_every(every) {
    for (NodeId id = 1; id <= 3; ++id) {
      auto o = options(id, {1, 2, 3});
      o.snapshot_every = every;
      s[id] = std::make_unique<Server<>>(clock, o);
    }
  }
  Server<>& operator[](NodeId id) { return *s[id]; }
  // Delivers messages until none is left (or a bound of rounds).
  void pump() {
    for (int round = 0; round < 1000; ++round) {
      bool any = false;
      for (NodeId from = 1; from <= 3; ++from) {
        for (auto& m : s[from]->out.take()) {
          any = true;
          if (cut[from] || cut[m.to]) continue;
          s[m.to]->log->receive(from, std::move(m.message));
        }
      }
      if (!any) return;
    }
  }
  // Advances the clock by `d` in 10 ms steps, ticking every server and delivering.
  void run(std::chrono::milliseconds d) {
    for (auto t = 0ms; t < d; t += 10ms) {
      clock.advance(10ms);
      for (NodeId id = 1; id <= 3; ++id)
        s[id]->log->tick();
      pump();
    }
  }
  // Elects server 1 (the others are not ticked while it campaigns).
  void elect_first() {
    clock.advance(601ms);
    s[1]->log->tick();
    pump();
    s[1]->log->tick();
    pump();
    REQUIRE(s[1]->log->is_leader());
  }
  void propose(int from, int to) {
    for (int i = from; i <= to; ++i) {
      REQUIRE(s[1]->log->propose(bytes("k" + std::to_string(i) + "=" + std::to_string(i))));
    }
  }
};

template <class M>
std::vector<M> sent_of(const std::vector<pods::Outbox<Msg>::Sent>& sent) {
  std::vector<M> out;
  for (const auto& m : sent) {
    if (const M* v = std::get_if<M>(&m.message)) out.push_back(*v);
  }
  return out;
}

pods::RaftEntry command(std::uint64_t term, const std::string& c) {
  return RaftEntry{term, pods::RaftEntryKind::command, bytes(c)};
}

}  // namespace

// ---- snapshots ------------------------------------------------------------------------

TEST_CASE("7: compact snapshots the applied state and removes the segments it covers",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  Server<> s(clock, options(1, {1}));
  REQUIRE_FALSE(s.log->compact());  // nothing applied yet
  single_voter_commits(s, 20);
  REQUIRE(s.log->applied_index() == 21);  // the no-op and 20 commands
  const std::size_t before = s.log_segments();
  REQUIRE(before > 3);
  REQUIRE(s.log->compact());
  CHECK(s.log->snapshot_index() == 21);
  CHECK(s.log->snapshot_term() == 1);
  CHECK(s.log->term_at(21) == 1);
  CHECK(s.log->term_at(5) == 0);  // below the snapshot
  CHECK_FALSE(s.log->entry(21));
  CHECK(s.log->last_index() == 21);
  CHECK(s.log_segments() < before);
  CHECK(s.log->snapshots_taken() == 1);
  CHECK_FALSE(s.log->compact());  // nothing new applied
  // The log goes on after the snapshot.
  REQUIRE(s.log->propose(bytes("k1=x")));
  s.log->tick();
  CHECK(s.log->commit_index() == 22);
  CHECK(s.machine.map.at("k1") == "x");
  CHECK(s.log->term_at(22) == 1);
}

TEST_CASE("7: snapshot_every takes snapshots as entries are applied",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  auto o = options(1, {1});
  o.snapshot_every = 5;
  Server<> s(clock, o);
  single_voter_commits(s, 19);  // 20 entries applied
  CHECK(s.log->snapshots_taken() == 4);
  CHECK(s.log->snapshot_index() == 20);
}

TEST_CASE("7: a server rebuilt after a torn crash restores the snapshot, then the log after it",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  auto o = options(1, {1});
  o.snapshot_every = 6;
  Server<> s(clock, o);
  single_voter_commits(s, 14);  // 15 entries: a snapshot at 12, entries 13..15 in the log
  REQUIRE(s.log->snapshot_index() == 12);
  REQUIRE(s.log->propose(bytes("lost=1")));  // appended, never synced
  s.restart(true);
  CHECK(s.machine.restores == 1);
  CHECK(s.log->snapshot_index() == 12);
  CHECK(s.log->applied_index() == 12);
  CHECK(s.log->last_index() == 15);
  CHECK(s.machine.map.size() == 11);  // k1..k11 from the snapshot
  // It elects itself again, commits its no-op and applies the log after the snapshot.
  clock.advance(601ms);
  s.log->tick();
  s.log->tick();
  REQUIRE(s.log->is_leader());
  CHECK(s.machine.map.size() == 14);
  CHECK(s.machine.map.count("lost") == 0);
}

TEST_CASE("7: a torn snapshot write never replaces the previous snapshot",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  Server<> s(clock, options(1, {1}));
  single_voter_commits(s, 5);
  REQUIRE(s.log->compact());  // snapshot at 6
  for (int i = 0; i < 4; ++i) {
    REQUIRE(s.log->propose(bytes("later=" + std::to_string(i))));
    s.log->tick();
  }
  *s.storage.fail_snapshot_sync = true;  // the crash comes between write and sync
  REQUIRE_THROWS_AS(s.log->compact(), std::system_error);
  *s.storage.fail_snapshot_sync = false;
  s.restart(true);
  CHECK(s.log->snapshot_index() == 6);
  CHECK(s.machine.map.size() == 5);
  CHECK(s.log->last_index() == 10);  // the log after the old snapshot is all there
  clock.advance(601ms);
  s.log->tick();
  s.log->tick();
  REQUIRE(s.log->is_leader());
  CHECK(s.machine.map.at("later") == "3");
}

TEST_CASE("A log that starts after index 1 with no snapshot is corruption",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  Server<> s(clock, options(1, {1}));
  single_voter_commits(s, 20);
  REQUIRE(s.log->compact());
  s.log.reset();
  for (std::uint64_t id : pods::detail::raft_snapshot_segments) {
    for (std::uint64_t have : s.storage.list())
      if (have == id) s.storage.remove(id);
  }
  CHECK_THROWS_WITH((Server<>::Log(s.storage, s.out, clock, s.machine, s.opts)),
                    Catch::Contains("the log starts after index 1 and there is no snapshot"));
}

// ---- InstallSnapshot ------------------------------------------------------------------

TEST_CASE("7: a lagging follower gets InstallSnapshot, then the entries after it",
          "[replicated_log][snapshot]") {
  Trio t;
  t.elect_first();
  t.cut[3] = true;
  t.propose(1, 20);
  t.run(200ms);
  REQUIRE(t[1].log->commit_index() == 21);
  REQUIRE(t[1].log->compact());
  t.propose(21, 23);
  t.run(100ms);
  REQUIRE(t[3].log->last_index() < t[1].log->snapshot_index());
  t.cut[3] = false;
  t.run(200ms);
  CHECK(t[3].log->snapshots_installed() == 1);
  CHECK(t[3].log->snapshot_index() == 21);
  CHECK(t[3].machine.restores == 1);
  CHECK(t[3].log->last_index() == t[1].log->last_index());
  CHECK(t[3].log->commit_index() == 24);
  CHECK(t[3].machine.map == t[1].machine.map);
  CHECK(t[3].machine.map.size() == 23);
  CHECK(t[1].log->match_index(3) == 24);
}

TEST_CASE("7: a follower whose log conflicts with the snapshot discards all of it",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  Server<> f(clock, options(3, {1, 2, 3}));
  f.log->receive(
      2, AppendEntries{1, 0, 0, 0, {command(1, "a=1"), command(1, "b=1"), command(1, "c=1")}});
  REQUIRE(f.log->last_index() == 3);
  f.out.clear();
  Kv leader_state;
  leader_state.map = {{"a", "2"}, {"z", "2"}};
  f.log->receive(1, InstallSnapshot{3, 5, 2, {{1, 2, 3}, {}}, leader_state.snapshot()});
  const auto replies = sent_of<InstallSnapshotReply>(f.out.take());
  REQUIRE(replies.size() == 1);
  CHECK(replies[0] == InstallSnapshotReply{3, 5});
  CHECK(f.log->snapshot_index() == 5);
  CHECK(f.log->last_index() == 5);
  CHECK(f.log->term_at(5) == 2);
  CHECK(f.log->term_at(3) == 0);  // the stale term of the old entry is gone
  CHECK(f.log->commit_index() == 5);
  CHECK(f.machine.map == leader_state.map);
  CHECK(pods::detail::RaftLogStorage<SnapshotSyncFault>(f.storage).list() ==
        std::vector<std::uint64_t>{6});
  // The leader goes on from there.
  f.log->receive(1, AppendEntries{3, 5, 2, 6, {command(3, "b=3")}});
  CHECK(f.log->commit_index() == 6);
  CHECK(f.machine.map.at("b") == "3");
  // And a rebuilt server has the same state.
  f.restart(true);
  CHECK(f.log->snapshot_index() == 5);
  CHECK(f.log->last_index() == 6);
  CHECK(f.machine.map.size() == 2);
}

TEST_CASE("7: a follower keeps the log after a snapshot entry it holds with the same term",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  Server<> f(clock, options(3, {1, 2, 3}));
  f.log->receive(1, AppendEntries{1,
                                  0,
                                  0,
                                  0,
                                  {command(1, "a=1"), command(1, "b=1"), command(1, "c=1"),
                                   command(1, "d=1")}});
  Kv leader_state;
  leader_state.map = {{"a", "1"}, {"b", "1"}};
  f.log->receive(1, InstallSnapshot{1, 2, 1, {{1, 2, 3}, {}}, leader_state.snapshot()});
  CHECK(f.log->snapshot_index() == 2);
  CHECK(f.log->last_index() == 4);
  CHECK(f.log->term_at(4) == 1);
  CHECK(f.log->entry(3)->command == bytes("c=1"));
  f.log->receive(1, AppendEntries{1, 4, 1, 4, {}});
  CHECK(f.machine.map.size() == 4);
}

TEST_CASE("7: a stale InstallSnapshot (older term, or at or below the commit) is ignored",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  Server<> f(clock, options(3, {1, 2, 3}));
  f.log->receive(1, AppendEntries{4, 0, 0, 2, {command(4, "a=1"), command(4, "b=1")}});
  REQUIRE(f.log->commit_index() == 2);
  f.out.clear();
  SECTION("older term") {
    f.log->receive(2, InstallSnapshot{3, 9, 3, {{1, 2, 3}, {}}, bytes("x=1\n")});
    const auto replies = sent_of<InstallSnapshotReply>(f.out.take());
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].term == 4);  // the stale leader learns the term
    CHECK(f.log->snapshots_installed() == 0);
    CHECK(f.log->last_index() == 2);
  }
  SECTION("older index") {
    f.log->receive(1, InstallSnapshot{4, 2, 4, {{1, 2, 3}, {}}, bytes("x=1\n")});
    const auto replies = sent_of<InstallSnapshotReply>(f.out.take());
    REQUIRE(replies.size() == 1);
    CHECK(replies[0] == InstallSnapshotReply{4, 2});
    CHECK(f.log->snapshots_installed() == 0);
    CHECK(f.machine.map.count("x") == 0);
  }
  SECTION("malformed: index 0, a last term above the term, too many bytes") {
    f.log->receive(1, InstallSnapshot{4, 0, 4, {{1, 2, 3}, {}}, {}});
    f.log->receive(1, InstallSnapshot{4, 9, 5, {{1, 2, 3}, {}}, {}});
    f.opts.max_snapshot_bytes = 2;
    f.restart(false);
    f.log->receive(1, InstallSnapshot{4, 9, 4, {{1, 2, 3}, {}}, bytes("x=1\n")});
    CHECK(f.log->dropped() == 1);
    CHECK(f.log->snapshots_installed() == 0);
  }
}

template <class Rules>
bool install_survives_crash() {
  pods::ManualClock clock;
  Server<Rules> f(clock, options(3, {1, 2, 3}));
  f.log->receive(1, InstallSnapshot{2, 5, 2, {{1, 2, 3}, {}}, bytes("a=1\n")});
  REQUIRE(sent_of<InstallSnapshotReply>(f.out.take()).size() == 1);  // acknowledged
  try {
    f.restart(true);
  } catch (const pods::CorruptionError&) {
    return false;
  }
  return f.log->snapshot_index() == 5 && f.machine.map.size() == 1;
}

TEST_CASE("Mutation: acknowledging InstallSnapshot before it is durable (7) is caught",
          "[replicated_log][snapshot]") {
  CHECK(install_survives_crash<pods::RaftRules>());
  CHECK_FALSE(install_survives_crash<NonDurableInstall>());
}

// ---- leadership transfer --------------------------------------------------------------

TEST_CASE("3.10: a transfer to an up-to-date voter makes it leader at once",
          "[replicated_log][transfer]") {
  Trio t;
  t.elect_first();
  t.propose(1, 3);
  t.run(100ms);
  const std::uint64_t term = t[1].log->term();
  REQUIRE(t[1].log->transfer_leadership(2));
  CHECK(t[1].log->transfer_target() == NodeId{2});
  const auto sent = t[1].out.take();
  REQUIRE(sent_of<TimeoutNow>(sent).size() == 1);
  CHECK(sent_of<TimeoutNow>(sent)[0].term == term);
  // 2 campaigns at once, without pre-vote; 3 votes though it heard from 1 just now.
  t[2].log->receive(1, sent_of<TimeoutNow>(sent)[0]);
  CHECK(t[2].log->role() == RaftRole::candidate);
  CHECK(t[2].log->term() == term + 1);
  t.pump();
  CHECK(t[2].log->is_leader());
  CHECK_FALSE(t[1].log->is_leader());
  CHECK_FALSE(t[1].log->transfer_target());
  t.run(100ms);
  REQUIRE(t[2].log->propose(bytes("after=1")));
  t.run(100ms);
  CHECK(t[1].machine.map.at("after") == "1");
  CHECK(t[2].machine.map.size() == 4);
}

TEST_CASE("3.10: a lagging target catches up before TimeoutNow", "[replicated_log][transfer]") {
  Trio t;
  t.elect_first();
  t.cut[3] = true;
  t.propose(1, 5);
  t.run(100ms);
  REQUIRE(t[1].log->transfer_leadership(3));
  CHECK(sent_of<TimeoutNow>(t[1].out.take()).empty());  // 3 is behind
  t.cut[3] = false;
  t.run(100ms);
  CHECK(t[3].log->is_leader());
  CHECK(t[3].log->last_index() >= 6);
  t.run(100ms);
  CHECK(t[3].machine.map.size() == 5);
}

TEST_CASE(
    "3.10: proposals and changes are refused during a transfer, which aborts after an "
    "election timeout",
    "[replicated_log][transfer]") {
  Trio t;
  t.elect_first();
  t.cut[2] = true;  // the target never answers
  REQUIRE(t[1].log->transfer_leadership(2));
  const auto refused = t[1].log->propose(bytes("x=1"));
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == pods::Errc::full);
  CHECK(t[1].log->add_learner(4).error() == pods::Errc::full);
  t.run(590ms);
  CHECK(t[1].log->transfer_target() == NodeId{2});
  t.run(20ms);
  CHECK_FALSE(t[1].log->transfer_target());
  CHECK(t[1].log->is_leader());
  CHECK(t[1].log->propose(bytes("x=1")));
}

TEST_CASE("transfer_leadership names a bad target; a follower gets not_leader",
          "[replicated_log][transfer]") {
  Trio t;
  t.elect_first();
  CHECK_THROWS_WITH(t[1].log->transfer_leadership(0),
                    "ReplicatedLog::transfer_leadership: node 0 must not be 0");
  CHECK_THROWS_WITH(t[1].log->transfer_leadership(1),
                    "ReplicatedLog::transfer_leadership: node 1 is this server");
  CHECK_THROWS_WITH(t[1].log->transfer_leadership(7),
                    "ReplicatedLog::transfer_leadership: node 7 is not a voter");
  CHECK(t[2].log->transfer_leadership(3).error() == pods::Errc::not_leader);
}

// ---- codec ----------------------------------------------------------------------------

TEST_CASE("ReplicatedLogMessageCodec round-trips InstallSnapshot, its reply and TimeoutNow",
          "[replicated_log][codec]") {
  const pods::ReplicatedLogMessageCodec codec;
  const std::vector<Msg> messages = {
      InstallSnapshot{3, 9, 2, {{1, 2, 3}, {5}}, bytes("a=1\n")},
      InstallSnapshot{1, 1, 1, {{1}, {}}, {}},
      InstallSnapshotReply{3, 9},
      TimeoutNow{4},
      pods::RequestVote{5, 9, 4, false, true},
      pods::RequestVote{5, 9, 4, false, false},
  };
  for (const Msg& m : messages) {
    pods::Buffer b;
    codec.encode(m, b);
    CHECK(codec.decode(b) == m);
  }
  pods::Buffer plain;
  codec.encode(pods::RequestVote{5, 9, 4, true, false}, plain);
  CHECK(plain.size() == 2 + 24 + 1);  // no transfer byte when the flag is unset
}

TEST_CASE("ReplicatedLogMessageCodec rejects bad snapshot and transfer bytes naming where",
          "[replicated_log][codec]") {
  const pods::ReplicatedLogMessageCodec codec;
  pods::Buffer vote;
  codec.encode(pods::RequestVote{5, 9, 4, false, false}, vote);
  vote.push_back(std::byte{0});
  CHECK_THROWS_WITH(codec.decode(vote), Catch::Contains("transfer flag 0 must be omitted"));
  pods::Buffer snap;
  codec.encode(InstallSnapshot{3, 9, 2, {{1, 2}, {}}, bytes("a")}, snap);
  pods::Buffer truncated(snap.begin(), snap.end() - 1);
  CHECK_THROWS_AS(codec.decode(truncated), pods::CorruptionError);
  pods::Buffer no_voter;
  codec.encode(InstallSnapshot{3, 9, 2, {{}, {}}, {}}, no_voter);
  CHECK_THROWS_WITH(codec.decode(no_voter), Catch::Contains("ReplicatedLogMessage configuration") &&
                                                Catch::Contains("configuration without a voter"));
  pods::Buffer bad_tag;
  codec.encode(TimeoutNow{1}, bad_tag);
  bad_tag[1] = std::byte{7};
  CHECK_THROWS_AS(codec.decode(bad_tag), pods::CorruptionError);
}

// ---- simulation -----------------------------------------------------------------------

namespace {

std::uint64_t seeds(std::uint64_t fallback) {
  if (const char* env = std::getenv("PODS_SEEDS")) {
    const auto n = std::strtoull(env, nullptr, 10);
    if (n > 0) return n;
  }
  return fallback;
}

using Net = pods::sim::Network<Msg>;
using KvModel = pods::sim::KvModel;
using History = pods::sim::History<pods::sim::KvInput, pods::sim::KvOutput>;

struct SimWorld {
  pods::sim::Simulation& sim;
  History history;
  std::map<std::uint64_t, History::Id> pending;             // operation id -> history id
  std::map<std::uint64_t, std::vector<std::byte>> applied;  // index -> command
  std::string violation;

  explicit SimWorld(pods::sim::Simulation& s)
      : sim(s), history([&s] { return s.now().time_since_epoch().count(); }) {}
  void fail(const std::string& what) {
    if (!violation.empty()) return;
    std::ostringstream o;
    o << what << " at " << sim.now().time_since_epoch().count() << " ns";
    violation = o.str();
  }
};

// Commands are (operation id, op, key, value); the snapshot is the map, encoded, so a wrong
// restore answers a get wrongly and the history check fails.
struct SnapKv {
  SimWorld* world = nullptr;
  std::map<std::string, std::string> data;

  void apply(std::uint64_t index, std::span<const std::byte> command) {
    auto [it, fresh] = world->applied.try_emplace(index, command.begin(), command.end());
    if (!fresh && !std::equal(command.begin(), command.end(), it->second.begin(), it->second.end()))
      world->fail("two servers applied different commands at index " + std::to_string(index));
    pods::wire::Reader r(command, "command");
    const std::uint64_t op_id = r.u64();
    const auto op = static_cast<pods::sim::KvOp>(r.u8());
    const std::string key = r.string();
    const std::string value = r.string();
    pods::sim::KvOutput out;
    if (op == pods::sim::KvOp::get) {
      if (auto v = data.find(key); v != data.end()) out.value = v->second;
    } else {
      data[key] = value;
    }
    if (auto p = world->pending.find(op_id); p != world->pending.end()) {
      world->history.ok(p->second, out);
      world->pending.erase(p);
    }
  }
  std::vector<std::byte> snapshot() const {
    pods::Buffer b;
    pods::wire::Writer w(b);
    w.count(data.size());
    for (const auto& [k, v] : data) {
      w.string(k);
      w.string(v);
    }
    return b;
  }
  void restore(std::span<const std::byte> bytes) {
    data.clear();
    pods::wire::Reader r(bytes, "kv snapshot");
    const std::size_t n = r.count(8);
    for (std::size_t i = 0; i < n; ++i) {
      std::string k = r.string();
      data[k] = r.string();
    }
  }
};

template <class Rules>
struct SnapNode {
  SnapKv machine;
  pods::ReplicatedLog<pods::MemoryStorage, Net::Endpoint, pods::sim::NodeClock, SnapKv, Rules> log;

  SnapNode(const pods::sim::NodeContext<Msg>& ctx, SimWorld& world, std::vector<NodeId> voters)
      : machine{&world, {}},
        log(pods::MemoryStorage(ctx.storage), ctx.endpoint, ctx.clock, machine,
            {.self = ctx.id,
             .voters = std::move(voters),
             .seed = ctx.random.fork(1).next(),
             .log = {.segment_bytes = 256},
             .snapshot_every = 4}) {}
  void receive(NodeId from, Msg m) { log.receive(from, std::move(m)); }
  void tick() { log.tick(); }
  auto next_deadline() const { return log.next_deadline(); }
};

struct SnapRun {
  std::string violation;
  std::uint64_t operations = 0, ok = 0, taken = 0, installed = 0, crashes = 0, transfers = 0;
};

// One seeded run of 3 servers under every fault of the Nemesis, with a transfer of
// leadership every 2 s, checked at every step and for linearizability at the end.
template <class Rules>
SnapRun snap_run(std::uint64_t seed) {
  using Node = SnapNode<Rules>;
  using SimCluster = pods::sim::Cluster<Node, Msg>;
  pods::sim::Simulation sim(seed);
  Net net(sim, {.loss = 0.01, .duplicate = 0.01, .min_delay = 1ms, .max_delay = 10ms});
  SimWorld world(sim);
  const std::vector<NodeId> voters{1, 2, 3};
  SnapRun result;
  SimCluster cluster(net, [&](const typename SimCluster::Context& ctx) {
    return std::make_unique<Node>(ctx, world, voters);
  });
  for (NodeId id : voters)
    cluster.add(id);
  pods::sim::Nemesis nemesis(cluster, {.duration = 10s, .quiet = 4s});
  const auto end = nemesis.end_at();
  pods::Random draws(seed ^ 0x736e6170ULL);
  struct Client {
    std::uint64_t id = 0, op_id = 0;
    bool busy = false, proposed = false;
    pods::Buffer command;
    NodeId target = 1;
    pods::sim::Simulation::time_point give_up{};
  };
  std::vector<Client> clients(3);
  std::uint64_t next_client = 1, next_op = 1;
  for (Client& c : clients)
    c.id = next_client++;
  auto live = [&](NodeId id) -> Node* {
    return cluster.is_up(id) && !cluster.is_paused(id) ? cluster.node(id) : nullptr;
  };
  std::function<void(std::size_t)> step_client = [&](std::size_t k) {
    Client& c = clients[k];
    const auto now = sim.now();
    if (c.busy && world.pending.count(c.op_id) == 0) c.busy = false;
    if (c.busy && now >= c.give_up) {
      world.history.unknown(world.pending.at(c.op_id));
      world.pending.erase(c.op_id);
      c.busy = false;
      c.id = next_client++;
    }
    if (!c.busy && now + 1s < end) {
      const std::string key(1, static_cast<char>('x' + draws.below(2)));
      pods::sim::KvInput in =
          draws.chance(0.5) ? KvModel::get(key) : KvModel::put(key, std::to_string(next_op));
      c.op_id = next_op++;
      c.command.clear();
      pods::wire::Writer w(c.command);
      w.u64(c.op_id);
      w.u8(static_cast<std::uint8_t>(in.op));
      w.string(in.key);
      w.string(in.value);
      world.pending[c.op_id] = world.history.invoke(c.id, in);
      c.busy = true;
      c.proposed = false;
      c.give_up = now + 1s;
      ++result.operations;
    }
    if (c.busy && !c.proposed) {
      Node* n = live(c.target);
      if (n && n->log.propose(c.command)) {
        c.proposed = true;
      } else if (auto hint = n ? n->log.leader() : std::nullopt; hint && *hint != c.target) {
        c.target = *hint;
      } else {
        c.target = voters[draws.below(voters.size())];
      }
    }
    sim.schedule(20ms, [&step_client, k] { step_client(k); });
  };
  for (std::size_t k = 0; k < clients.size(); ++k)
    sim.schedule(std::chrono::milliseconds(5 * k + 1), [&step_client, k] { step_client(k); });
  std::function<void()> transfer = [&] {
    for (NodeId id : voters) {
      if (Node* n = live(id); n && n->log.is_leader()) {
        if (n->log.transfer_leadership(voters[(id % 3)])) ++result.transfers;
      }
    }
    sim.schedule(2s, transfer);
  };
  sim.schedule(2s, transfer);

  std::map<std::uint64_t, NodeId> leaders;                                     // term -> leader
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> committed;  // index -> terms
  std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>> marks;             // incarnation, mark
  std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>> counts;            // taken, installed
  try {
    while (sim.now() < end && sim.step()) {
      for (NodeId id : voters) {
        Node* n = cluster.node(id);
        if (!n) continue;
        auto& log = n->log;
        auto& [incarnation, mark] = marks[id];
        auto& [taken, installed] = counts[id];
        if (incarnation != cluster.incarnation(id)) {
          result.taken += taken;
          result.installed += installed;
          incarnation = cluster.incarnation(id);
          mark = 0;
        }
        taken = log.snapshots_taken();
        installed = log.snapshots_installed();
        if (log.commit_index() < mark) world.fail("a high-water mark went back");
        // §7: below the snapshot the terms are gone; what it covers was checked as committed.
        for (std::uint64_t i = std::max(mark + 1, log.snapshot_index()); i <= log.commit_index();
             ++i) {
          if (i == 0) continue;
          auto [it, fresh] = committed.try_emplace(i, log.term_at(i), log.term());
          it->second.second = std::min(it->second.second, log.term());
          if (!fresh && it->second.first != log.term_at(i))
            world.fail("server " + std::to_string(id) + " committed a different entry at " +
                       std::to_string(i));
        }
        mark = log.commit_index();
        if (!log.is_leader()) continue;
        auto [l, fresh] = leaders.try_emplace(log.term(), id);
        if (l->second != id) world.fail("two leaders in term " + std::to_string(log.term()));
        if (fresh) {
          for (const auto& [i, t] : committed) {
            if (i >= log.snapshot_index() && t.second < log.term() && log.term_at(i) != t.first) {
              world.fail("a leader lacks committed entry " + std::to_string(i));
              break;
            }
          }
        }
      }
      if (!world.violation.empty()) break;
    }
  } catch (const std::exception& e) {
    world.fail(std::string("a server threw: ") + e.what());
  }
  for (const auto& [id, c] : counts) {
    result.taken += c.first;
    result.installed += c.second;
  }
  for (const auto& e : nemesis.log())
    result.crashes += e.what.rfind("crash ", 0) == 0 ? 1 : 0;
  if (world.violation.empty()) {
    for (auto& [op, id] : world.pending)
      world.history.unknown(id);
    const auto ops = world.history.operations();
    for (const auto& o : ops)
      result.ok += o.output ? 1 : 0;
    const auto check = pods::sim::check_linearizable(KvModel{}, std::span(ops), 10s);
    if (check.verdict == pods::sim::Verdict::illegal) world.fail("the history is not linearizable");
  }
  result.violation = world.violation;
  return result;
}

}  // namespace

TEST_CASE(
    "7, 3.10: on the simulator, snapshots every 4 entries, installs and transfers stay "
    "safe and linearizable under the nemesis",
    "[replicated_log][snapshot][sim]") {
  SnapRun total;
  const std::uint64_t n = seeds(4);
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    const SnapRun r = snap_run<pods::RaftRules>(seed);
    INFO("seed " << seed << ": " << r.violation);
    REQUIRE(r.violation.empty());
    total.operations += r.operations;
    total.ok += r.ok;
    total.taken += r.taken;
    total.installed += r.installed;
    total.crashes += r.crashes;
    total.transfers += r.transfers;
  }
  CHECK(total.taken > 0);
  CHECK(total.ok > 0);
  WARN(n << " seeds: " << total.operations << " operations, " << total.ok << " answered, "
         << total.taken << " snapshots taken, " << total.installed << " installed, "
         << total.crashes << " crashes, " << total.transfers << " transfers started");
}

TEST_CASE("Mutation: on the simulator, a non-durable InstallSnapshot (7) is caught",
          "[replicated_log][snapshot][sim]") {
  std::uint64_t caught = 0, first = 0;
  std::string why;
  for (std::uint64_t seed = 1; seed <= 20 && caught == 0; ++seed) {
    if (auto r = snap_run<NonDurableInstall>(seed); !r.violation.empty()) {
      why = r.violation;
      ++caught;
      first = seed;
    }
  }
  WARN("a non-durable install caught at seed " << first << ": " << why);
  CHECK(caught > 0);
}

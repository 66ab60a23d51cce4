// Tests of the snapshot, InstallSnapshot and leadership-transfer rules of
// pods/replication/replicated_log.hpp, driven message by message through Outbox and a
// ManualClock and named by the section they check: Raft paper (Ongaro and Ousterhout,
// extended version, 2014) §7 for snapshots and InstallSnapshot, Raft dissertation (Ongaro
// 2014) §3.10 for leadership transfer. The state machine is a key-value map whose snapshot
// is the encoded map, so a wrong restore shows as a different map. On the simulator (the Raft
// harness, raft_sim.hpp) servers snapshotting every 4 entries, installing snapshots and
// transferring leadership every 2 s keep the harness's safety checks at every step and a
// linearizable history under the Nemesis. A test-only rule policy that acknowledges
// InstallSnapshot before making it durable is caught.
//
// Seeds: PODS_SEEDS (or --seeds N) runs that many seeded simulations per configuration.
#include <pods/replication/replicated_log.hpp>

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/storage/memory_storage.hpp>

#include "raft_sim.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
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

// The command "k<i>=<i>" (built by appending: GCC 12's -O3 warns falsely on "k" + string).
std::string numbered(int i) {
  std::string c = "k";
  c += std::to_string(i);
  c += '=';
  c += std::to_string(i);
  return c;
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
  // Throws pods::CorruptionError, the map unchanged, for bytes that are not "k=v\n" lines.
  void restore(std::span<const std::byte> data) {
    const std::string s = text(data);
    std::map<std::string, std::string> restored;
    std::size_t at = 0;
    while (at < s.size()) {
      const std::size_t end = s.find('\n', at);
      const std::size_t eq = s.find('=', at);
      if (end == std::string::npos || eq == std::string::npos || eq > end) {
        throw pods::CorruptionError("Kv snapshot", at, "not a k=v line");
      }
      restored[s.substr(at, eq - at)] = s.substr(eq + 1, end - eq - 1);
      at = end + 1;
    }
    ++restores;
    map = std::move(restored);
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

// Test-only rule: the follower appends a chunk wherever it says it starts (Figure 13 broken).
struct ChunksAnyOrder : pods::RaftRules {
  static constexpr bool chunks_in_order = false;
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
    REQUIRE(s.log->propose(bytes(numbered(i))));
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
  std::size_t chunks_delivered = 0;  // InstallSnapshot messages delivered by pump()
  std::size_t largest_chunk = 0;     // the most data bytes one of them carried

  explicit Trio(std::uint64_t every = 0, std::size_t chunk_bytes = std::size_t{1} << 20)
      : snapshot_every(every) {
    for (NodeId id = 1; id <= 3; ++id) {
      auto o = options(id, {1, 2, 3});
      o.snapshot_every = every;
      o.snapshot_chunk_bytes = chunk_bytes;
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
          if (const auto* c = std::get_if<InstallSnapshot>(&m.message)) {
            ++chunks_delivered;
            largest_chunk = std::max(largest_chunk, c->data.size());
          }
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
      REQUIRE(s[1]->log->propose(bytes(numbered(i))));
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

TEST_CASE("7, Figure 13: a snapshot larger than a chunk reaches a lagging follower in chunks",
          "[replicated_log][snapshot]") {
  Trio t(0, 16);
  t.elect_first();
  t.cut[3] = true;
  t.propose(1, 20);
  t.run(200ms);
  REQUIRE(t[1].log->compact());
  const std::size_t size = t[1].machine.snapshot().size();
  REQUIRE(size > 6 * 16);
  t.cut[3] = false;
  t.run(300ms);
  CHECK(t[3].log->snapshots_installed() == 1);
  CHECK(t[3].machine.restores == 1);
  CHECK(t[3].machine.map == t[1].machine.map);
  CHECK(t[3].log->commit_index() == t[1].log->commit_index());
  CHECK(t.largest_chunk == 16);
  CHECK(t.chunks_delivered >= (size + 15) / 16);
  CHECK(t[3].log->dropped() == 0);
  CHECK(t[1].log->dropped() == 0);
}

TEST_CASE("7, Figure 13: a follower gathers chunks in order and answers the offset it holds",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  Server<> f(clock, options(3, {1, 2, 3}));
  Kv leader_state;
  leader_state.map = {{"a", "1"}, {"b", "22"}, {"c", "333"}};
  const std::vector<std::byte> whole = leader_state.snapshot();  // "a=1\nb=22\nc=333\n"
  auto chunk = [&](std::size_t from, std::size_t n, std::uint64_t index = 5) {
    const auto first = whole.begin() + static_cast<std::ptrdiff_t>(from);
    return InstallSnapshot{3,
                           index,
                           2,
                           {{1, 2, 3}, {}},
                           {first, first + static_cast<std::ptrdiff_t>(n)},
                           from,
                           from + n == whole.size()};
  };
  auto reply = [&] {
    const auto replies = sent_of<InstallSnapshotReply>(f.out.take());
    REQUIRE(replies.size() == 1);
    return replies[0];
  };
  f.log->receive(1, chunk(0, 4));
  CHECK(reply() == InstallSnapshotReply{3, 0, 5, 4});
  CHECK(f.log->snapshots_installed() == 0);
  CHECK(f.log->leader() == NodeId{1});  // a chunk is heard from the leader

  SECTION("a duplicate, a gap and another snapshot's later chunk are answered with the offset") {
    f.log->receive(1, chunk(0, 4));
    CHECK(reply() == InstallSnapshotReply{3, 0, 5, 4});
    f.log->receive(1, chunk(9, 6));
    CHECK(reply() == InstallSnapshotReply{3, 0, 5, 4});
    f.log->receive(1, chunk(4, 5, 6));
    CHECK(reply() == InstallSnapshotReply{3, 0, 6, 0});  // not started: from the beginning
    f.log->receive(1, chunk(0, 4));                      // the one of index 5 starts again
    CHECK(reply() == InstallSnapshotReply{3, 0, 5, 4});
  }
  SECTION("a restart forgets the chunks: the leader is told to start from 0") {
    f.restart(false);
    f.log->receive(1, chunk(4, 5));
    CHECK(reply() == InstallSnapshotReply{3, 0, 5, 0});
    f.log->receive(1, chunk(0, 4));
    CHECK(reply() == InstallSnapshotReply{3, 0, 5, 4});
  }
  f.log->receive(1, chunk(4, 5));
  CHECK(reply() == InstallSnapshotReply{3, 0, 5, 9});
  CHECK(f.log->snapshots_installed() == 0);
  f.log->receive(1, chunk(9, whole.size() - 9));
  CHECK(reply() == InstallSnapshotReply{3, 5});
  CHECK(f.log->snapshots_installed() == 1);
  CHECK(f.log->snapshot_index() == 5);
  CHECK(f.machine.map == leader_state.map);
  f.restart(true);  // durable once acknowledged
  CHECK(f.machine.map == leader_state.map);
  CHECK(f.log->dropped() == 0);
}

// The same three chunks of "a=1\nb=2\nc=3\n", the middle one lost: the rule answers the last
// with the offset it holds and installs nothing; the broken rule installs a state without b.
template <class Rules>
std::optional<std::map<std::string, std::string>> install_with_a_lost_chunk() {
  pods::ManualClock clock;
  Server<Rules> f(clock, options(3, {1, 2, 3}));
  f.log->receive(1, InstallSnapshot{3, 5, 2, {{1, 2, 3}, {}}, bytes("a=1\n"), 0, false});
  f.log->receive(1, InstallSnapshot{3, 5, 2, {{1, 2, 3}, {}}, bytes("c=3\n"), 8, true});
  if (f.log->snapshots_installed() == 0) return std::nullopt;
  return f.machine.map;
}

TEST_CASE("Mutation: appending a chunk at any offset (Figure 13) is caught message by message",
          "[replicated_log][snapshot]") {
  CHECK(install_with_a_lost_chunk<pods::RaftRules>() == std::nullopt);
  const auto broken = install_with_a_lost_chunk<ChunksAnyOrder>();
  REQUIRE(broken);
  CHECK(broken->count("b") == 0);  // installed, and not the leader's state
}

TEST_CASE("7: a snapshot the machine refuses is dropped and counted, and changes nothing",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  Server<> f(clock, options(3, {1, 2, 3}));
  f.log->receive(1, AppendEntries{1, 0, 0, 2, {command(1, "a=1"), command(1, "b=1")}});
  REQUIRE(f.log->commit_index() == 2);
  f.out.clear();
  f.log->receive(1, InstallSnapshot{1, 5, 1, {{1, 2, 3}, {}}, bytes("garbage")});
  CHECK(sent_of<InstallSnapshotReply>(f.out.take()).empty());  // unanswered
  CHECK(f.log->dropped() == 1);
  CHECK(f.log->snapshots_installed() == 0);
  CHECK(f.log->snapshot_index() == 0);
  CHECK(f.log->last_index() == 2);
  CHECK(f.machine.map == std::map<std::string, std::string>{{"a", "1"}, {"b", "1"}});
  f.restart(true);  // nothing of it was made durable
  CHECK(f.log->snapshot_index() == 0);
  CHECK(f.log->last_index() == 2);
  // The leader's next, good, snapshot installs.
  f.log->receive(1, InstallSnapshot{1, 5, 1, {{1, 2, 3}, {}}, bytes("z=9\n")});
  CHECK(sent_of<InstallSnapshotReply>(f.out.take()) == std::vector<InstallSnapshotReply>{{1, 5}});
  CHECK(f.machine.map == std::map<std::string, std::string>{{"z", "9"}});
}

TEST_CASE("7, Figure 13: chunks past max_snapshot_bytes are dropped and counted",
          "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  auto o = options(3, {1, 2, 3});
  o.max_snapshot_bytes = 7;
  Server<> f(clock, o);
  f.log->receive(1, InstallSnapshot{3, 5, 2, {{1, 2, 3}, {}}, bytes("a=1\n"), 0, false});
  REQUIRE(sent_of<InstallSnapshotReply>(f.out.take()).size() == 1);
  f.log->receive(1, InstallSnapshot{3, 5, 2, {{1, 2, 3}, {}}, bytes("b=2\n"), 4, true});
  f.log->receive(1, InstallSnapshot{3, 5, 2, {{1, 2, 3}, {}}, {}, 8, true});
  f.log->receive(1,
                 InstallSnapshot{3, 5, 2, {{1, 2, 3}, {}}, bytes("b"), std::uint64_t{0} - 1, true});
  CHECK(f.out.take().empty());
  CHECK(f.log->dropped() == 3);
  CHECK(f.log->snapshots_installed() == 0);
  f.log->receive(1, InstallSnapshot{3, 5, 2, {{1, 2, 3}, {}}, bytes("b=\n"), 4, true});
  CHECK(sent_of<InstallSnapshotReply>(f.out.take()) == std::vector<InstallSnapshotReply>{{3, 5}});
  CHECK(f.machine.map == std::map<std::string, std::string>{{"a", "1"}, {"b", ""}});
}

TEST_CASE(
    "7, Figure 13: the leader sends the chunk a reply asks for, resends a lost one at the "
    "heartbeat, and starts again when it took a newer snapshot",
    "[replicated_log][snapshot]") {
  pods::ManualClock clock;
  auto o = options(1, {1, 2, 3});
  o.snapshot_chunk_bytes = 4;
  o.pre_vote = false;
  Server<> l(clock, o);
  l.clock.advance(601ms);
  l.log->tick();
  l.log->receive(3, pods::VoteReply{l.log->term(), true, false});
  REQUIRE(l.log->is_leader());
  const std::uint64_t term = l.log->term();
  for (int i = 1; i <= 3; ++i)
    REQUIRE(l.log->propose(bytes(numbered(i))));
  l.log->tick();
  l.log->receive(3, pods::AppendReply{term, true, 4, 0, 0, 0});  // server 3 keeps up
  REQUIRE(l.log->commit_index() == 4);
  REQUIRE(l.log->compact());
  const std::vector<std::byte> whole = l.machine.snapshot();  // "k1=1\nk2=2\nk3=3\n"
  REQUIRE(whole.size() == 15);
  l.out.clear();
  // Server 2 restarted with an empty log: its refusal sends it the snapshot's first chunk.
  l.log->receive(2, pods::AppendReply{term, false, 0, 0, 1, 0});
  auto chunks = [&] { return sent_of<InstallSnapshot>(l.out.take()); };
  auto c = chunks();
  REQUIRE(c.size() == 1);
  CHECK(c[0].last_index == 4);
  CHECK(c[0].offset == 0);
  CHECK(c[0].data == std::vector<std::byte>(whole.begin(), whole.begin() + 4));
  CHECK(!c[0].done);
  l.log->receive(2, InstallSnapshotReply{term, 0, 4, 4});
  c = chunks();
  REQUIRE(c.size() == 1);
  CHECK(c[0].offset == 4);
  l.log->receive(2, InstallSnapshotReply{term, 0, 4, 4});  // the same reply, duplicated
  CHECK(chunks().empty());
  // That one is lost: nothing more until the heartbeat resends it.
  l.log->tick();
  CHECK(chunks().empty());
  l.clock.advance(51ms);
  l.log->tick();
  c = chunks();
  REQUIRE(c.size() == 1);
  CHECK(c[0].offset == 4);
  // A reply naming another snapshot moves nothing; one naming an earlier offset goes back,
  // one past the end starts at 0; a reply with both an index and progress is malformed.
  l.log->receive(2, InstallSnapshotReply{term, 0, 3, 12});
  CHECK(chunks().empty());
  l.log->receive(2, InstallSnapshotReply{term, 0, 4, 0});
  c = chunks();
  REQUIRE(c.size() == 1);
  CHECK(c[0].offset == 0);
  l.log->receive(2, InstallSnapshotReply{term, 0, 4, 999});
  c = chunks();
  REQUIRE(c.size() == 1);
  CHECK(c[0].offset == 0);
  l.log->receive(2, InstallSnapshotReply{term, 4, 4, 8});
  CHECK(l.log->dropped() == 1);
  CHECK(chunks().empty());
  // The chunks in order, the last one done.
  for (std::uint64_t at = 4; at < whole.size(); at += 4) {
    l.log->receive(2, InstallSnapshotReply{term, 0, 4, at});
    c = chunks();
    REQUIRE(c.size() == 1);
    CHECK(c[0].offset == at);
    CHECK(c[0].data.size() == std::min<std::size_t>(4, whole.size() - at));
    CHECK(c[0].done == (at + 4 >= whole.size()));
  }
  SECTION("installed: AppendEntries resume after the snapshot") {
    l.log->receive(2, InstallSnapshotReply{term, 4});
    CHECK(l.log->match_index(2) == 4);
    REQUIRE(l.log->propose(bytes("k4=4")));
    l.log->tick();
    const auto entries = sent_of<AppendEntries>(l.out.take());
    REQUIRE(entries.size() == 2);  // to servers 2 and 3
    for (const AppendEntries& a : entries)
      CHECK(a.prev_index == 4);
  }
  SECTION("a newer snapshot meanwhile: the transfer goes on, then the newer one is sent") {
    REQUIRE(l.log->propose(bytes("k4=4")));
    l.log->tick();
    l.log->receive(3, pods::AppendReply{term, true, 5, 0, 0, 0});
    REQUIRE(l.log->compact());
    REQUIRE(l.log->snapshot_index() == 5);
    l.out.clear();
    l.log->receive(2, InstallSnapshotReply{term, 0, 4, 8});  // progress on the old one
    c = chunks();
    REQUIRE(c.size() == 1);
    CHECK(c[0].last_index == 4);
    CHECK(c[0].offset == 8);
    l.log->receive(2, InstallSnapshotReply{term, 0, 5, 4});  // not the one being sent
    CHECK(chunks().empty());
    l.log->receive(2, InstallSnapshotReply{term, 4});  // installed: it needs the newer one
    c = chunks();
    REQUIRE(c.size() == 1);
    CHECK(c[0].last_index == 5);
    CHECK(c[0].offset == 0);
  }
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
  SECTION("malformed: a log that would start among the state and snapshot segments' ids") {
    const std::uint64_t top = std::numeric_limits<std::uint64_t>::max();
    for (std::uint64_t last : {top, top - 1, top - 2, top - 3})
      f.log->receive(1, InstallSnapshot{4, last, 4, {{1, 2, 3}, {}}, bytes("x=1\n")});
    CHECK(f.log->dropped() == 4);
    CHECK(f.log->snapshots_installed() == 0);
    CHECK(f.log->last_index() == 2);
    f.log->receive(1, InstallSnapshot{4, top - 4, 4, {{1, 2, 3}, {}}, bytes("x=1\n")});
    CHECK(f.log->snapshots_installed() == 1);  // the highest index a log may start after
    CHECK(f.log->last_index() == top - 4);
    f.restart(false);
    CHECK(f.log->last_index() == top - 4);
    CHECK(f.machine.map.count("x") == 1);
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
      InstallSnapshot{3, 9, 2, {{1, 2, 3}, {}}, bytes("chunk"), 0, false},
      InstallSnapshot{3, 9, 2, {{1, 2, 3}, {}}, bytes("last"), 5, true},
      InstallSnapshot{3, 9, 2, {{1, 2, 3}, {}}, {}, 1u << 20, false},
      InstallSnapshotReply{3, 0, 9, 5},
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
  pods::Buffer whole, chunk, reply, progress;
  codec.encode(InstallSnapshot{3, 9, 2, {{1}, {}}, bytes("ab")}, whole);
  codec.encode(InstallSnapshot{3, 9, 2, {{1}, {}}, bytes("ab"), 0, false}, chunk);
  CHECK(chunk.size() == whole.size() + 9);  // a whole snapshot omits offset and done
  codec.encode(InstallSnapshotReply{3, 9}, reply);
  codec.encode(InstallSnapshotReply{3, 0, 9, 2}, progress);
  CHECK(reply.size() == 2 + 16);
  CHECK(progress.size() == 2 + 32);
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
  // A whole snapshot's or a plain reply's trailing fields must be omitted, not zero.
  pods::Buffer zeros;
  codec.encode(InstallSnapshot{3, 9, 2, {{1, 2}, {}}, bytes("a")}, zeros);
  for (int i = 0; i < 8; ++i)
    zeros.push_back(std::byte{0});
  zeros.push_back(std::byte{1});
  CHECK_THROWS_WITH(codec.decode(zeros),
                    Catch::Contains("a whole snapshot's offset 0 and done must be omitted"));
  pods::Buffer plain_reply;
  codec.encode(InstallSnapshotReply{3, 9}, plain_reply);
  for (int i = 0; i < 16; ++i)
    plain_reply.push_back(std::byte{0});
  CHECK_THROWS_WITH(codec.decode(plain_reply),
                    Catch::Contains("a reply without a chunk's progress must omit it"));
  pods::Buffer half;
  codec.encode(InstallSnapshot{3, 9, 2, {{1, 2}, {}}, bytes("a"), 4, false}, half);
  half.pop_back();
  CHECK_THROWS_AS(codec.decode(half), pods::CorruptionError);
  pods::Buffer bad_tag;
  codec.encode(TimeoutNow{1}, bad_tag);

  bad_tag[1] = std::byte{7};
  CHECK_THROWS_AS(codec.decode(bad_tag), pods::CorruptionError);
}

// ---- simulation -----------------------------------------------------------------------

namespace {

// The extension on the Raft harness: a transfer of leadership every 2 s (to the next voter
// after the leader), and the snapshots taken and installed, counted per incarnation.
struct SnapshotsAndTransfers {
  std::uint64_t taken = 0, installed = 0, transfers = 0;
  // node -> (incarnation, taken, installed) of its current incarnation
  std::map<NodeId, std::array<std::uint64_t, 3>> counts;

  template <class Ctx>
  void on_start(Ctx& ctx) {
    ctx.sim.schedule(2s, [this, &ctx] { transfer(ctx); });
  }
  template <class Ctx>
  void transfer(Ctx& ctx) {
    for (NodeId id : ctx.voters) {
      if (!ctx.cluster.is_up(id) || ctx.cluster.is_paused(id)) continue;
      auto& log = ctx.cluster.node(id)->log;
      if (log.is_leader() && log.transfer_leadership(ctx.voters[id % ctx.voters.size()])) {
        ++transfers;
      }
    }
    ctx.sim.schedule(2s, [this, &ctx] { transfer(ctx); });
  }
  template <class Ctx>
  void on_step(Ctx& ctx) {
    for (NodeId id : ctx.voters) {
      const auto* n = ctx.cluster.node(id);
      if (!n) continue;
      auto& [incarnation, t, i] = counts[id];
      if (incarnation != ctx.cluster.incarnation(id)) {
        taken += t;
        installed += i;
        incarnation = ctx.cluster.incarnation(id);
      }
      t = n->log.snapshots_taken();
      i = n->log.snapshots_installed();
    }
  }
  template <class Ctx>
  void on_end(Ctx&, raft_sim::RunResult&) {
    for (auto& [id, c] : counts) {
      taken += c[1];
      installed += c[2];
      c = {};
    }
  }
};

// Servers snapshot every 4 entries over 256-byte log segments and send snapshots in chunks
// of 8 bytes (Figure 13: most take several, which the faults lose, duplicate and reorder), for
// 10 s under every fault of the Nemesis; a server that throws (a corrupt log on restart) is a
// violation.
raft_sim::Scenario snapshot_scenario(std::size_t nodes) {
  return {.nodes = nodes,
          .duration = 10s,
          .quiet = 4s,
          .configure =
              [](pods::ReplicatedLogOptions& o) {
                o.log.segment_bytes = 256;
                o.snapshot_every = 4;
                o.snapshot_chunk_bytes = 8;
              },
          .throw_is_violation = true};
}

template <class Rules>
raft_sim::RunResult snap_run(std::uint64_t seed, std::size_t nodes, SnapshotsAndTransfers& ext,
                             bool check_history = true, std::uint64_t max_steps = 0) {
  raft_sim::Scenario s = snapshot_scenario(nodes);
  s.check_history = check_history;
  s.max_steps = max_steps;
  return raft_sim::run<Rules>(seed, s, ext);
}

void snapshot_sweep(std::size_t nodes, std::uint64_t n) {
  SnapshotsAndTransfers ext;
  raft_sim::RunResult total;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    const raft_sim::RunResult r = snap_run<pods::RaftRules>(seed, nodes, ext);
    INFO(nodes << " servers, seed " << seed << ": " << r.violation);
    REQUIRE(r.violation.empty());
    total.operations += r.operations;
    total.ok += r.ok;
    total.crashes += r.crashes;
    total.pauses += r.pauses;
  }
  CHECK(ext.taken > 0);
  CHECK(total.ok > 0);
  WARN(nodes << " servers, " << n << " seeds: " << total.operations << " operations, " << total.ok
             << " answered, " << ext.taken << " snapshots taken, " << ext.installed
             << " installed, " << total.crashes << " crashes, " << total.pauses << " pauses, "
             << ext.transfers << " transfers started");
}

}  // namespace

TEST_CASE(
    "7, 3.10: on the simulator, snapshots every 4 entries, installs and transfers stay "
    "safe and linearizable under the nemesis",
    "[replicated_log][snapshot][sim]") {
  snapshot_sweep(3, raft_sim::seeds(4));
}

TEST_CASE(
    "7, 3.10: on the simulator, 5 servers with snapshots, installs and transfers stay safe and "
    "linearizable under the nemesis",
    "[replicated_log][snapshot][sim]") {
  snapshot_sweep(5, raft_sim::seeds(3));
}

// The broken rule appends chunks wherever they say they start, so under duplication and
// reordering the bytes are not the leader's snapshot, and the follower's count of bytes held
// grows with every duplicate: each duplicated chunk then draws a reply the leader takes for
// news, and the chunks in flight multiply. Caught when a seed has a violation: a safety check,
// a server that throws, or more than 20 times the simulation steps the rule took on that seed.
// Both runs skip the final history check (a wrong state can make its search slow; the rule's
// histories are checked by the sweeps above).
TEST_CASE("Mutation: on the simulator, chunks appended at any offset (Figure 13) are caught",
          "[replicated_log][snapshot][sim]") {
  const std::uint64_t n = raft_sim::seeds(raft_sim::mutation_seeds);
  std::uint64_t caught = 0, first = 0;
  std::string why;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    SnapshotsAndTransfers rule, broken;
    const auto r = snap_run<pods::RaftRules>(seed, 3, rule, false);
    INFO("seed " << seed << ": " << r.violation);
    REQUIRE(r.violation.empty());
    if (auto b = snap_run<ChunksAnyOrder>(seed, 3, broken, false, 20 * r.steps);
        !b.violation.empty()) {
      ++caught;
      if (first == 0) {
        first = seed;
        why = b.violation.substr(0, b.violation.find('\n'));
      }
    }
  }
  WARN("chunks in any order: caught at " << caught << " of " << n << " seeds, first at seed "
                                         << first << ": " << why);
  CHECK(caught > 0);
}

TEST_CASE("Mutation: on the simulator, a non-durable InstallSnapshot (7) is caught",
          "[replicated_log][snapshot][sim]") {
  std::uint64_t first = 0;
  std::string why;
  for (std::uint64_t seed = 1; seed <= raft_sim::mutation_seeds && first == 0; ++seed) {
    SnapshotsAndTransfers ext;
    if (auto r = snap_run<NonDurableInstall>(seed, 3, ext); !r.violation.empty()) {
      why = r.violation.substr(0, r.violation.find('\n'));
      first = seed;
    }
  }
  WARN("a non-durable install caught at seed " << first << ": " << why);
  CHECK(first > 0);
}

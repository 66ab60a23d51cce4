// Tests of the read paths' hook in pods/replication/replicated_log.hpp (Raft §8, dissertation
// §6.4): heartbeat rounds carried in AppendEntries and echoed in AppendReply, the round a
// majority confirmed and when it started, and whether the leader committed an entry of its
// own term. Driven message by message through Outbox and a ManualClock.
#include <pods/replication/replicated_log.hpp>

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/storage/memory_storage.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using pods::AppendEntries;
using pods::AppendReply;
using pods::NodeId;
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

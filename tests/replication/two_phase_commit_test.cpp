// Tests of pods/replication/two_phase_commit.hpp. Message-by-message tests drive one
// coordinator or participant through an Outbox and a ManualClock. The crash-point table runs
// one transaction over two participants and crashes each node (MemoryStorage::crash with torn
// writes) before and after each of its durable writes and each of its sends, then recovers it
// and checks atomicity. The simulator runs a coordinator and three participants under a
// Nemesis (partitions, crashes with torn writes, pauses, clock faults, loss, duplication,
// delays) for PODS_SEEDS seeds (default 40) and checks atomicity at every commit and, after
// the faults stop, that every transaction finished and no lock is held. Two broken rules (the
// coordinator sends commit before its decision is durable; the participant votes before its
// vote is durable) are switched on in test code and must be caught.
#include <pods/replication/two_phase_commit.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include "paxos_harness.hpp"

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using paxos_test::everything;
using paxos_test::seeds;
using pods::NodeId;
using pods::TwoPhaseMessage;
using pods::TwoPhaseOutcome;
using pods::TwoPhaseState;
using pods::TxnId;

namespace {

using Out = pods::Outbox<TwoPhaseMessage>;
using Coordinator = pods::TwoPhaseCoordinator<Out, pods::ManualClock, pods::MemoryStorage>;
using Participant = pods::TwoPhaseParticipant<Out, pods::ManualClock, pods::MemoryStorage>;

pods::TwoPhaseCoordinatorOptions coordinator_options() {
  return {.id = 1, .participants = {2, 3}, .prepare_timeout = 200ms, .retry_interval = 50ms};
}

pods::TwoPhaseParticipantOptions participant_options(NodeId id) {
  return {.id = id, .query_interval = 100ms};
}

pods::TwoPhaseWork work(std::vector<std::string> keys, int payload = 0) {
  return {std::move(keys), {static_cast<std::byte>(payload)}};
}

std::vector<pods::TwoPhaseBranch> two_branches() {
  return {{2, work({"a"}, 1)}, {3, work({"b"}, 2)}};
}

struct Told {
  int calls = 0;
  std::optional<TwoPhaseOutcome> outcome;
  Coordinator::Callback callback() {
    return [this](TxnId, TwoPhaseOutcome o) {
      ++calls;
      outcome = o;
    };
  }
};

using Sent = std::vector<Out::Sent>;

TwoPhaseMessage decision(TxnId t, TwoPhaseOutcome o) {
  return pods::TwoPhaseDecision{t, o};
}

}  // namespace

TEST_CASE("TwoPhaseCommit options and begin arguments are checked with named errors", "[2pc]") {
  Out out;
  pods::ManualClock clock;
  auto make = [&](pods::TwoPhaseCoordinatorOptions o) {
    Coordinator c(out, clock, pods::MemoryStorage{}, o);
  };
  auto o = coordinator_options();
  o.id = 0;
  CHECK_THROWS_WITH(make(o), "TwoPhaseCoordinator: options.id must not be 0");
  o = coordinator_options();
  o.participants = {};
  CHECK_THROWS_WITH(make(o), "TwoPhaseCoordinator: options.participants must not be empty");
  o.participants = {2, 0};
  CHECK_THROWS_WITH(make(o), "TwoPhaseCoordinator: options.participants must not contain node 0");
  o.participants = {2, 3, 2};
  CHECK_THROWS_WITH(make(o), "TwoPhaseCoordinator: options.participants must not repeat a node");
  o.participants = {1, 2};
  CHECK_THROWS_WITH(make(o), "TwoPhaseCoordinator: options.id must not be a participant");
  o = coordinator_options();
  o.prepare_timeout = 0ms;
  CHECK_THROWS_WITH(make(o), "TwoPhaseCoordinator: options.prepare_timeout must be positive");
  o = coordinator_options();
  o.retry_interval = -1ms;
  CHECK_THROWS_WITH(make(o), "TwoPhaseCoordinator: options.retry_interval must be positive");

  auto make_participant = [&](pods::TwoPhaseParticipantOptions p) {
    Participant x(out, clock, pods::MemoryStorage{}, p);
  };
  CHECK_THROWS_WITH(make_participant({.id = 0}), "TwoPhaseParticipant: options.id must not be 0");
  CHECK_THROWS_WITH(make_participant({.id = 2, .query_interval = 0ms}),
                    "TwoPhaseParticipant: options.query_interval must be positive");

  Coordinator c(out, clock, pods::MemoryStorage{}, coordinator_options());
  CHECK_THROWS_WITH(c.begin({}, {}), "TwoPhaseCoordinator::begin: branches must not be empty");
  CHECK_THROWS_WITH(c.begin({{2, work({"a"})}, {9, work({"b"})}}, {}),
                    "TwoPhaseCoordinator::begin: branches[1].participant 9 is not in "
                    "options.participants");
  CHECK_THROWS_WITH(c.begin({{3, work({"a"})}, {3, work({"b"})}}, {}),
                    "TwoPhaseCoordinator::begin: branches[1].participant 3 is named twice");
  CHECK(out.empty());
  CHECK(c.preparing() == 0);
}

TEST_CASE("TwoPhaseCommit codecs round-trip every message and record and reject bad bytes",
          "[2pc][codec]") {
  const pods::TwoPhaseMessageCodec codec;
  const std::vector<TwoPhaseMessage> all{
      pods::TwoPhasePrepare{7, work({"a", "bc"}, 5)},
      pods::TwoPhasePrepare{7, {}},
      pods::TwoPhaseVote{1ull << 40, true},
      pods::TwoPhaseVote{2, false},
      decision(3, TwoPhaseOutcome::committed),
      decision(3, TwoPhaseOutcome::aborted),
      pods::TwoPhaseAck{4},
      pods::TwoPhaseQuery{5},
  };
  for (const auto& m : all) {
    pods::Buffer b;
    codec.encode(m, b);
    CHECK(codec.decode(b) == m);
    for (std::size_t n = 0; n < b.size(); ++n)
      CHECK_THROWS_AS(codec.decode(std::span<const std::byte>(b.data(), n)), pods::CorruptionError);
    pods::Buffer longer = b;
    longer.push_back(std::byte{0});
    CHECK_THROWS_WITH(codec.decode(longer), Catch::Contains("1 unexpected trailing bytes"));
  }
  pods::Buffer b;
  codec.encode(pods::TwoPhaseAck{1}, b);
  b[0] = std::byte{2};
  CHECK_THROWS_WITH(codec.decode(b), Catch::Contains("unknown two-phase message version 2"));
  b[0] = std::byte{1};
  b[1] = std::byte{5};
  CHECK_THROWS_WITH(codec.decode(b), Catch::Contains("unknown two-phase message kind 5"));
  pods::Buffer v;
  codec.encode(pods::TwoPhaseVote{1, true}, v);
  v[10] = std::byte{2};
  CHECK_THROWS_WITH(codec.decode(v), Catch::Contains("a bool byte is 2"));
  pods::Buffer p;
  codec.encode(pods::TwoPhasePrepare{1, {}}, p);
  p[10] = std::byte{200};  // a key count the frame cannot hold
  CHECK_THROWS_WITH(codec.decode(p), Catch::Contains("a count of 200 elements cannot fit"));

  const pods::TwoPhaseCoordinatorRecordCodec cc;
  for (const pods::TwoPhaseCoordinatorRecord& r : std::vector<pods::TwoPhaseCoordinatorRecord>{
           pods::TwoPhaseEpochRecord{3}, pods::TwoPhaseCommitRecord{9, {2, 3}},
           pods::TwoPhaseEndRecord{9}}) {
    pods::Buffer x;
    cc.encode(r, x);
    CHECK(cc.decode(x) == r);
    CHECK_THROWS_AS(cc.decode(std::span<const std::byte>(x.data(), x.size() - 1)),
                    pods::CorruptionError);
  }
  const pods::TwoPhaseParticipantRecordCodec pc;
  for (const pods::TwoPhaseParticipantRecord& r : std::vector<pods::TwoPhaseParticipantRecord>{
           pods::TwoPhasePreparedRecord{9, 1, work({"k"}, 3)},
           pods::TwoPhaseDecidedRecord{9, TwoPhaseOutcome::committed}}) {
    pods::Buffer x;
    pc.encode(r, x);
    CHECK(pc.decode(x) == r);
    x[1] = std::byte{2};
    CHECK_THROWS_WITH(pc.decode(x), Catch::Contains("unknown two-phase participant record kind 2"));
  }
}

TEST_CASE(
    "TwoPhaseParticipant: prepare locks the keys and makes the vote durable before voting yes; "
    "a lock conflict votes no; duplicates get the same vote",
    "[2pc]") {
  Out out;
  pods::ManualClock clock;
  pods::MemoryStorage storage(3);
  auto p = std::make_unique<Participant>(out, clock, storage, participant_options(2));
  p->receive(1, pods::TwoPhasePrepare{10, work({"a", "b"})});
  CHECK(out.take() == Sent{{1, pods::TwoPhaseVote{10, true}}});
  CHECK(p->lock_holder("a") == TxnId{10});
  CHECK(p->state(10) == TwoPhaseState::prepared);
  p->receive(1, pods::TwoPhasePrepare{11, work({"c", "b"})});  // b is held by 10
  CHECK(out.take() == Sent{{1, pods::TwoPhaseVote{11, false}}});
  CHECK_FALSE(p->lock_holder("c").has_value());
  p->receive(1, pods::TwoPhasePrepare{10, work({"a", "b"})});  // a duplicate
  p->receive(1, pods::TwoPhasePrepare{11, work({"c", "b"})});
  CHECK(out.take() == Sent{{1, pods::TwoPhaseVote{10, true}}, {1, pods::TwoPhaseVote{11, false}}});
  // The vote was durable when it was sent: a torn crash keeps it, locks and all.
  p.reset();
  storage.crash(/*tear=*/true);
  p = std::make_unique<Participant>(out, clock, storage, participant_options(2));
  CHECK(p->state(10) == TwoPhaseState::prepared);
  CHECK(p->lock_holder("b") == TxnId{10});
  CHECK(p->in_doubt() == 1);
  // In doubt after the restart: it asks its coordinator at once, then every query_interval.
  REQUIRE(p->next_deadline() == clock.now());
  p->tick();
  CHECK(out.take() == Sent{{1, pods::TwoPhaseQuery{10}}});
  clock.advance(99ms);
  p->tick();
  CHECK(out.empty());
  clock.advance(1ms);
  p->tick();
  CHECK(out.take() == Sent{{1, pods::TwoPhaseQuery{10}}});
}

TEST_CASE("TwoPhaseParticipant: an Admit refusal votes no and locks nothing", "[2pc]") {
  Out out;
  pods::ManualClock clock;
  std::vector<TxnId> asked;
  Participant p(out, clock, pods::MemoryStorage{}, participant_options(2), {},
                [&](TxnId t, const pods::TwoPhaseWork&) {
                  asked.push_back(t);
                  return t != 11;
                });
  p.receive(1, pods::TwoPhasePrepare{10, work({"a"})});
  p.receive(1, pods::TwoPhasePrepare{11, work({"b"})});
  p.receive(1, pods::TwoPhasePrepare{11, work({"b"})});  // a duplicate: the same no, not asked
  CHECK(out.take() == Sent{{1, pods::TwoPhaseVote{10, true}},
                           {1, pods::TwoPhaseVote{11, false}},
                           {1, pods::TwoPhaseVote{11, false}}});
  CHECK(asked == std::vector<TxnId>{10, 11});
  CHECK(p.locked() == 1);
  CHECK(p.state(11) == TwoPhaseState::aborted);
}

TEST_CASE(
    "TwoPhaseParticipant: commit is durable, applied once and acknowledged; abort releases; "
    "late and unknown decisions change nothing",
    "[2pc]") {
  Out out;
  pods::ManualClock clock;
  pods::MemoryStorage storage(5);
  std::vector<std::pair<TxnId, int>> applied;
  auto apply = [&](TxnId t, const pods::TwoPhaseWork& w) {
    applied.emplace_back(t, static_cast<int>(w.payload.at(0)));
  };
  auto p = std::make_unique<Participant>(out, clock, storage, participant_options(2), apply);
  p->receive(1, pods::TwoPhasePrepare{10, work({"a"}, 7)});
  p->receive(1, pods::TwoPhasePrepare{11, work({"b"}, 8)});
  out.take();
  p->receive(1, decision(10, TwoPhaseOutcome::committed));
  CHECK(out.take() == Sent{{1, pods::TwoPhaseAck{10}}});
  CHECK(applied == std::vector<std::pair<TxnId, int>>{{10, 7}});
  CHECK_FALSE(p->lock_holder("a").has_value());
  p->receive(1, decision(10, TwoPhaseOutcome::committed));  // a duplicate: acked, not re-applied
  CHECK(out.take() == Sent{{1, pods::TwoPhaseAck{10}}});
  p->receive(1, decision(10, TwoPhaseOutcome::aborted));  // a stale answer to an old query
  CHECK(p->state(10) == TwoPhaseState::committed);
  p->receive(1, decision(11, TwoPhaseOutcome::aborted));
  CHECK(out.empty());
  CHECK(p->state(11) == TwoPhaseState::aborted);
  CHECK(p->locked() == 0);
  p->receive(1, decision(12, TwoPhaseOutcome::committed));  // never prepared here
  CHECK(p->dropped() == 1);
  p->receive(1, decision(13, TwoPhaseOutcome::aborted));  // abort before its prepare arrives
  p->receive(1, pods::TwoPhasePrepare{13, work({"a"})});
  CHECK(out.take() == Sent{{1, pods::TwoPhaseVote{13, false}}});
  p->receive(1, pods::TwoPhaseQuery{1});
  p->receive(1, pods::TwoPhaseVote{1, true});
  p->receive(1, pods::TwoPhaseAck{1});
  CHECK(p->dropped() == 4);
  // Replay after a crash applies the committed work again, in the same order, and nothing else.
  p.reset();
  storage.crash(true);
  applied.clear();
  p = std::make_unique<Participant>(out, clock, storage, participant_options(2), apply);
  CHECK(applied == std::vector<std::pair<TxnId, int>>{{10, 7}});
  CHECK(p->state(10) == TwoPhaseState::committed);
  CHECK(p->locked() <= 1);  // the abort of 11 was not synced: it may be in doubt again
  p->tick();
  for (const auto& s : out.take())
    CHECK(s.message == TwoPhaseMessage{pods::TwoPhaseQuery{11}});
}

TEST_CASE(
    "TwoPhaseCoordinator: with every yes the decision is durable before commit is sent, and "
    "acknowledgements finish the transaction",
    "[2pc]") {
  Out out;
  pods::ManualClock clock;
  pods::MemoryStorage storage(1);
  auto c = std::make_unique<Coordinator>(out, clock, storage, coordinator_options());
  CHECK(c->epoch() == 1);
  Told told;
  const TxnId t = c->begin(two_branches(), told.callback());
  CHECK(t >> 32 == 1);
  CHECK(out.take() == Sent{{2, pods::TwoPhasePrepare{t, work({"a"}, 1)}},
                           {3, pods::TwoPhasePrepare{t, work({"b"}, 2)}}});
  c->receive(2, pods::TwoPhaseVote{t, true});
  CHECK(out.empty());
  c->receive(9, pods::TwoPhaseVote{t, true});  // not in the transaction
  CHECK(c->dropped() == 1);
  const auto syncs = storage.sync_count();
  c->receive(3, pods::TwoPhaseVote{t, true});
  CHECK(storage.sync_count() == syncs + 1);
  CHECK(out.take() == Sent{{2, decision(t, TwoPhaseOutcome::committed)},
                           {3, decision(t, TwoPhaseOutcome::committed)}});
  REQUIRE(told.calls == 1);
  CHECK(told.outcome == TwoPhaseOutcome::committed);
  CHECK(c->is_committing(t));
  // Unacknowledged commits are resent; queries and late yes votes get commit.
  clock.advance(50ms);
  c->tick();
  CHECK(out.take().size() == 2);
  c->receive(2, pods::TwoPhaseAck{t});
  c->receive(3, pods::TwoPhaseQuery{t});
  CHECK(out.take() == Sent{{3, decision(t, TwoPhaseOutcome::committed)}});
  clock.advance(50ms);
  c->tick();
  CHECK(out.take() == Sent{{3, decision(t, TwoPhaseOutcome::committed)}});
  // The decision survives a torn crash: the restarted coordinator resends it at its first tick.
  c.reset();
  storage.crash(true);
  c = std::make_unique<Coordinator>(out, clock, storage, coordinator_options());
  CHECK(c->epoch() == 2);
  CHECK(c->is_committing(t));
  c->tick();
  CHECK(out.take() == Sent{{2, decision(t, TwoPhaseOutcome::committed)},
                           {3, decision(t, TwoPhaseOutcome::committed)}});
  c->receive(2, pods::TwoPhaseAck{t});
  c->receive(3, pods::TwoPhaseAck{t});
  c->receive(3, pods::TwoPhaseAck{t});  // a duplicate
  CHECK(c->committing() == 0);
  CHECK_FALSE(c->next_deadline().has_value());
  // Once finished, the transaction is forgotten: a late query is presumed aborted, which a
  // participant that committed ignores.
  c->receive(2, pods::TwoPhaseQuery{t});
  CHECK(out.take() == Sent{{2, decision(t, TwoPhaseOutcome::aborted)}});
  // A new incarnation never reuses an id.
  const TxnId u = c->begin(two_branches(), {});
  CHECK(u >> 32 == 2);
  CHECK(u != t);
}

TEST_CASE(
    "TwoPhaseCoordinator: one no, or a prepare past its timeout, aborts without a log record "
    "(presumed abort); queries are answered from what it knows",
    "[2pc]") {
  Out out;
  pods::ManualClock clock;
  pods::MemoryStorage storage(2);
  Coordinator c(out, clock, storage, coordinator_options());
  const auto syncs = storage.sync_count();
  Told no;
  const TxnId t = c.begin(two_branches(), no.callback());
  out.take();
  c.receive(2, pods::TwoPhaseVote{t, true});
  c.receive(3, pods::TwoPhaseVote{t, false});
  CHECK(out.take() == Sent{{2, decision(t, TwoPhaseOutcome::aborted)},
                           {3, decision(t, TwoPhaseOutcome::aborted)}});
  CHECK(no.outcome == TwoPhaseOutcome::aborted);
  CHECK(storage.sync_count() == syncs);  // nothing logged for an abort

  Told late;
  const TxnId u = c.begin(two_branches(), late.callback());
  out.take();
  c.receive(2, pods::TwoPhaseVote{u, true});
  c.receive(2, pods::TwoPhaseQuery{u});  // still collecting votes: no answer yet
  CHECK(out.empty());
  clock.advance(50ms);
  c.tick();  // the unanswered prepare is sent again, only to the silent participant
  CHECK(out.take() == Sent{{3, pods::TwoPhasePrepare{u, work({"b"}, 2)}}});
  clock.advance(150ms);
  c.tick();
  CHECK(out.take() == Sent{{2, decision(u, TwoPhaseOutcome::aborted)},
                           {3, decision(u, TwoPhaseOutcome::aborted)}});
  REQUIRE(late.calls == 1);
  CHECK(late.outcome == TwoPhaseOutcome::aborted);
  c.receive(3, pods::TwoPhaseVote{u, true});  // too late: told abort
  c.receive(2, pods::TwoPhaseQuery{999});     // never heard of: presumed abort
  CHECK(out.take() == Sent{{3, decision(u, TwoPhaseOutcome::aborted)},
                           {2, decision(999, TwoPhaseOutcome::aborted)}});
  CHECK(late.calls == 1);
  CHECK(storage.sync_count() == syncs);
  c.receive(2, pods::TwoPhasePrepare{1, {}});
  c.receive(2, decision(1, TwoPhaseOutcome::aborted));
  CHECK(c.dropped() == 2);
}

TEST_CASE("TwoPhaseCoordinator: a restart forgets the transactions being prepared (they abort)",
          "[2pc]") {
  Out out;
  pods::ManualClock clock;
  pods::MemoryStorage storage(4);
  auto c = std::make_unique<Coordinator>(out, clock, storage, coordinator_options());
  const TxnId t = c->begin(two_branches(), {});
  c->receive(2, pods::TwoPhaseVote{t, true});
  c.reset();
  storage.crash(true);
  c = std::make_unique<Coordinator>(out, clock, storage, coordinator_options());
  out.take();
  CHECK(c->preparing() == 0);
  c->receive(2, pods::TwoPhaseQuery{t});
  CHECK(out.take() == Sent{{2, decision(t, TwoPhaseOutcome::aborted)}});
}

// ---- Crash points ---------------------------------------------------------------------------

namespace {

struct Crash {};

// Which event of which node crashes it: the index-th sync or send, before or after it happens.
struct CrashPoint {
  NodeId node = 0;
  bool sync = true;  // a durable write; false: a send
  int index = 0;     // 1-based; 0: never
  bool after = false;
};

// The rules a test may break (the mutations); both kept by default.
struct Rules {
  bool coordinator_syncs = true;  // false: the decision is sent before it is durable
  bool participant_syncs = true;  // false: the vote is sent before it is durable
};

struct Trigger {
  CrashPoint point;
  bool armed = false;
  std::map<NodeId, int> syncs, sends;
  std::map<NodeId, pods::MemoryStorage> disks;     // each node's medium
  std::map<NodeId, std::shared_ptr<bool>> frozen;  // the crashed incarnation's storage
  // Counts the event and, at the crash point, crashes the node's medium at this instant
  // (torn), freezes the storage the dead incarnation holds, and unwinds it with Crash.
  void event(NodeId node, bool sync, bool after) {
    if (!armed) return;
    if (!after) ++(sync ? syncs : sends)[node];
    const int n = (sync ? syncs : sends)[node];
    if (point.node == node && point.sync == sync && point.index == n && point.after == after) {
      armed = false;
      disks.at(node).crash(/*tear=*/true);
      *frozen.at(node) = true;
      throw Crash{};
    }
  }
};

// A MemoryStorage whose syncs report to the trigger (and that may skip them: a mutation).
// Once its node has crashed it changes nothing: what the dead process would still do (cut a
// segment back after the failed call) never reaches the medium.
struct TestStorage {
  pods::MemoryStorage inner;
  NodeId node = 0;
  std::shared_ptr<Trigger> trigger;
  bool skip_sync = false;
  std::shared_ptr<bool> frozen = std::make_shared<bool>(false);

  std::vector<std::uint64_t> list() const { return inner.list(); }
  void create(std::uint64_t id) {
    if (!*frozen) inner.create(id);
  }
  void append(std::uint64_t id, std::span<const std::byte> b) {
    if (!*frozen) inner.append(id, b);
  }
  std::size_t read(std::uint64_t id, std::uint64_t at, std::span<std::byte> out) const {
    return inner.read(id, at, out);
  }
  std::uint64_t size(std::uint64_t id) const { return inner.size(id); }
  void sync(std::uint64_t id) {
    if (trigger) trigger->event(node, true, false);
    if (!skip_sync && !*frozen) inner.sync(id);
    if (trigger) trigger->event(node, true, true);
  }
  void truncate(std::uint64_t id, std::uint64_t n) {
    if (!*frozen) inner.truncate(id, n);
  }
  void remove(std::uint64_t id) {
    if (!*frozen) inner.remove(id);
  }
  std::string name(std::uint64_t id) const { return inner.name(id); }
};
static_assert(pods::SegmentStorage<TestStorage>);

struct Envelope {
  NodeId from, to;
  TwoPhaseMessage message;
};

// A transport into one shared FIFO, reporting each send to the trigger.
struct QueueTransport {
  NodeId self = 0;
  std::shared_ptr<std::deque<Envelope>> queue;
  std::shared_ptr<Trigger> trigger;
  void send(NodeId to, TwoPhaseMessage m) {
    trigger->event(self, false, false);
    queue->push_back({self, to, std::move(m)});
    trigger->event(self, false, true);
  }
};

using CCoordinator = pods::TwoPhaseCoordinator<QueueTransport, pods::ManualClock, TestStorage>;
using CParticipant = pods::TwoPhaseParticipant<QueueTransport, pods::ManualClock, TestStorage>;

struct CrashRun {
  std::optional<TwoPhaseOutcome> told;
  TwoPhaseState p2 = TwoPhaseState::unknown, p3 = TwoPhaseState::unknown;
  std::set<NodeId> applied;
  bool crashed = false;
  bool quiescent = false;
  std::size_t locked = 0;
  std::map<NodeId, int> syncs, sends;  // counted up to the crash (all, without one)
};

CrashRun run_crash_point(CrashPoint point, Rules rules = {}) {
  auto trigger = std::make_shared<Trigger>();
  trigger->point = point;
  auto queue = std::make_shared<std::deque<Envelope>>();
  pods::ManualClock clock;
  trigger->disks = {
      {1, pods::MemoryStorage(11)}, {2, pods::MemoryStorage(12)}, {3, pods::MemoryStorage(13)}};
  CrashRun run;
  std::unique_ptr<CCoordinator> c;
  std::map<NodeId, std::unique_ptr<CParticipant>> p;
  auto storage = [&](NodeId n) {
    TestStorage s{trigger->disks.at(n), n, trigger,
                  n == 1 ? !rules.coordinator_syncs : !rules.participant_syncs};
    trigger->frozen[n] = s.frozen;
    return s;
  };
  auto start = [&](NodeId n) {
    if (n == 1) {
      c = std::make_unique<CCoordinator>(QueueTransport{1, queue, trigger}, clock, storage(1),
                                         coordinator_options());
    } else {
      p[n] = std::make_unique<CParticipant>(
          QueueTransport{n, queue, trigger}, clock, storage(n), participant_options(n),
          [&run, n](TxnId, const pods::TwoPhaseWork&) { run.applied.insert(n); });
    }
  };
  auto crash = [&](NodeId n) {
    run.crashed = true;
    if (n == 1) {
      c.reset();
    } else {
      p[n].reset();
    }
    if (n != 1) run.applied.erase(n);  // its replay applies again what is durable
    start(n);
  };
  for (NodeId n : {1, 2, 3})
    start(n);
  trigger->armed = true;
  try {
    c->begin(two_branches(), [&](TxnId, TwoPhaseOutcome o) { run.told = o; });
  } catch (const Crash&) {
    crash(1);
  }
  for (int round = 0; round < 40; ++round) {
    while (!queue->empty()) {
      Envelope e = std::move(queue->front());
      queue->pop_front();
      try {
        if (e.to == 1) {
          c->receive(e.from, std::move(e.message));
        } else {
          p.at(e.to)->receive(e.from, std::move(e.message));
        }
      } catch (const Crash&) {
        crash(e.to);
      }
    }
    if (c->preparing() == 0 && c->committing() == 0 && p[2]->in_doubt() == 0 &&
        p[3]->in_doubt() == 0) {
      run.quiescent = true;
      break;
    }
    clock.advance(50ms);
    for (NodeId n : {1, 2, 3}) {
      try {
        if (n == 1) {
          c->tick();
        } else {
          p[n]->tick();
        }
      } catch (const Crash&) {
        crash(n);
      }
    }
  }
  const TxnId t = (1ull << 32) | 1;
  run.p2 = p[2]->state(t);
  run.p3 = p[3]->state(t);
  run.locked = p[2]->locked() + p[3]->locked();
  run.syncs = trigger->syncs;
  run.sends = trigger->sends;
  return run;
}

const char* name(TwoPhaseState s) {
  switch (s) {
    case TwoPhaseState::unknown:
      return "unknown";
    case TwoPhaseState::prepared:
      return "prepared";
    case TwoPhaseState::committed:
      return "committed";
    default:
      return "aborted";
  }
}

// Returns what is wrong with the run, or "".
std::string atomicity(const CrashRun& r) {
  const bool c2 = r.p2 == TwoPhaseState::committed, c3 = r.p3 == TwoPhaseState::committed;
  if (!r.quiescent) return "did not finish";
  if (c2 != c3) return "half-applied: p2 " + std::string(name(r.p2)) + ", p3 " + name(r.p3);
  if (r.applied.size() != (c2 ? 2u : 0u)) return "applied on " + std::to_string(r.applied.size());
  if (r.told == TwoPhaseOutcome::committed && !c2) return "told committed but aborted";
  if (r.told == TwoPhaseOutcome::aborted && c2) return "told aborted but committed";
  if (r.locked != 0) return "a lock is still held";
  return "";
}

std::vector<CrashPoint> every_crash_point() {
  const CrashRun dry = run_crash_point({});
  std::vector<CrashPoint> points;
  for (NodeId n : {1, 2, 3}) {
    for (bool sync : {true, false}) {
      const auto& counts = sync ? dry.syncs : dry.sends;
      const int k = counts.count(n) ? counts.at(n) : 0;
      for (int i = 1; i <= k; ++i)
        for (bool after : {false, true})
          points.push_back({n, sync, i, after});
    }
  }
  return points;
}

std::string describe(const CrashPoint& p) {
  std::ostringstream s;
  s << (p.node == 1 ? "coordinator" : "participant " + std::to_string(p.node)) << ' '
    << (p.after ? "after" : "before") << ' ' << (p.sync ? "sync" : "send") << ' ' << p.index;
  return s.str();
}

}  // namespace

TEST_CASE(
    "TwoPhaseCommit crash points: a crash of any node before or after each durable write and "
    "each send, with torn writes, leaves the transaction all-or-nothing and no lock held",
    "[2pc][crash]") {
  const CrashRun dry = run_crash_point({});
  REQUIRE(atomicity(dry).empty());
  CHECK(dry.p2 == TwoPhaseState::committed);
  // The floor: the coordinator syncs once (its decision), each participant twice.
  CHECK(dry.syncs.at(1) == 1);
  CHECK(dry.syncs.at(2) == 2);
  CHECK(dry.syncs.at(3) == 2);
  CHECK(dry.sends.at(1) == 4);  // two prepares, two commits
  CHECK(dry.sends.at(2) == 2);  // a vote, an ack
  const auto points = every_crash_point();
  CHECK(points.size() == 2 * (1 + 2 + 2 + 4 + 2 + 2));
  std::ostringstream table;
  int committed = 0;
  for (const CrashPoint& point : points) {
    const CrashRun r = run_crash_point(point);
    INFO(describe(point));
    CHECK(r.crashed);
    CHECK(atomicity(r) == "");
    const bool commit = r.p2 == TwoPhaseState::committed;
    committed += commit ? 1 : 0;
    // The commit point is the coordinator's sync: before it the transaction aborts (the
    // restarted coordinator has no record), after it the transaction commits.
    if (point.node == 1 && point.sync) CHECK(commit == point.after);
    if (point.node == 1 && !point.sync) CHECK(commit == (point.index > 2));
    table << "  " << describe(point) << ": " << (commit ? "committed" : "aborted") << '\n';
  }
  WARN(points.size() << " crash points, " << committed << " committed, the rest aborted:\n"
                     << table.str());
}

TEST_CASE("TwoPhaseCommit crash points catch a decision sent before it is durable",
          "[2pc][crash][mutation]") {
  int caught = 0;
  for (const CrashPoint& point : every_crash_point())
    caught += atomicity(run_crash_point(point, {.coordinator_syncs = false})).empty() ? 0 : 1;
  WARN("coordinator does not sync its decision: " << caught << " crash points broke atomicity");
  CHECK(caught > 0);
}

TEST_CASE("TwoPhaseCommit crash points catch a vote sent before it is durable",
          "[2pc][crash][mutation]") {
  int caught = 0;
  for (const CrashPoint& point : every_crash_point())
    caught += atomicity(run_crash_point(point, {.participant_syncs = false})).empty() ? 0 : 1;
  WARN("participant does not sync its vote: " << caught << " crash points broke atomicity");
  CHECK(caught > 0);
}

// ---- Simulation -----------------------------------------------------------------------------

namespace {

using SimNet = pods::sim::Network<TwoPhaseMessage>;
using SimCoordinator =
    pods::TwoPhaseCoordinator<SimNet::Endpoint, pods::sim::NodeClock, TestStorage>;
using SimParticipant =
    pods::TwoPhaseParticipant<SimNet::Endpoint, pods::sim::NodeClock, TestStorage>;

constexpr NodeId kCoordinator = 1;
const std::vector<NodeId> kParticipants{2, 3, 4};

struct SimNode;

struct World {
  Rules rules;
  bool open = true;  // the coordinator begins transactions until the heal
  std::map<TxnId, std::set<NodeId>> branches;
  std::map<TxnId, TwoPhaseOutcome> told;
  std::string violation;
  std::function<SimNode*(NodeId)> node;
  std::uint64_t commits = 0, aborts = 0;
  void fail(const std::string& what) {
    if (violation.empty()) violation = what;
  }
};

// One simulated node: node 1 is the coordinator (it begins a transaction over two random
// participants, one of three keys each, every few milliseconds); the others are participants.
struct SimNode {
  SimNode(const pods::sim::NodeContext<TwoPhaseMessage>& ctx, World& w)
      : world(&w), clock(ctx.clock), random(ctx.random), id(ctx.id) {
    TestStorage storage{
        ctx.storage, ctx.id, nullptr,
        ctx.id == kCoordinator ? !w.rules.coordinator_syncs : !w.rules.participant_syncs};
    if (id == kCoordinator) {
      coordinator = std::make_unique<SimCoordinator>(
          ctx.endpoint, ctx.clock, storage,
          pods::TwoPhaseCoordinatorOptions{.id = id,
                                           .participants = kParticipants,
                                           .prepare_timeout = 100ms,
                                           .retry_interval = 30ms});
      next_begin = clock.now();
    } else {
      participant = std::make_unique<SimParticipant>(
          ctx.endpoint, ctx.clock, storage,
          pods::TwoPhaseParticipantOptions{.id = id, .query_interval = 50ms},
          [this](TxnId t, const pods::TwoPhaseWork&) { applied(t); });
    }
  }

  // Atomicity at each commit: nobody was told abort, no other branch aborted.
  void applied(TxnId t) {
    auto told = world->told.find(t);
    if (told != world->told.end() && told->second == TwoPhaseOutcome::aborted) {
      world->fail("txn " + std::to_string(t) + " applied at " + std::to_string(id) +
                  " after the client was told aborted");
    }
    for (NodeId other : world->branches[t]) {
      SimNode* n = other == id ? nullptr : world->node(other);
      if (n && n->participant && n->participant->state(t) == TwoPhaseState::aborted) {
        world->fail("txn " + std::to_string(t) + " committed at " + std::to_string(id) +
                    " and aborted at " + std::to_string(other));
      }
    }
  }

  void receive(NodeId from, TwoPhaseMessage m) {
    if (coordinator) {
      coordinator->receive(from, std::move(m));
    } else {
      participant->receive(from, std::move(m));
    }
  }

  void tick() {
    if (participant) {
      participant->tick();
      return;
    }
    if (world->open && clock.now() >= next_begin) {
      next_begin = clock.now() + random.between(5ms, 30ms);
      const std::size_t a = random.below(3), b = (a + 1 + random.below(2)) % 3;
      std::vector<pods::TwoPhaseBranch> txn;
      for (std::size_t i : {a, b})
        txn.push_back({kParticipants[i], work({"k" + std::to_string(random.below(3))})});
      World* w = world;
      const TxnId t = coordinator->begin(txn, [w](TxnId id, TwoPhaseOutcome o) {
        w->told[id] = o;
        ++(o == TwoPhaseOutcome::committed ? w->commits : w->aborts);
      });
      world->branches[t] = {kParticipants[a], kParticipants[b]};
    }
    coordinator->tick();
  }

  std::optional<pods::sim::NodeClock::time_point> next_deadline() const {
    if (participant) return participant->next_deadline();
    auto d = coordinator->next_deadline();
    if (world->open && (!d || next_begin < *d)) return next_begin;
    return d;
  }

  World* world;
  pods::sim::NodeClock clock;
  pods::Random random;
  NodeId id;
  std::unique_ptr<SimCoordinator> coordinator;
  std::unique_ptr<SimParticipant> participant;
  pods::sim::NodeClock::time_point next_begin{};
};

using SimCluster = pods::sim::Cluster<SimNode, TwoPhaseMessage>;

struct SimResult {
  std::string violation;
  std::uint64_t steps = 0, crashes = 0, commits = 0, aborts = 0, transactions = 0;
};

SimResult simulate(std::uint64_t seed, Rules rules = {},
                   pods::sim::NemesisOptions faults = everything()) {
  pods::sim::Simulation sim(seed);
  SimNet net(sim, {.loss = 0.05, .duplicate = 0.05, .min_delay = 1ms, .max_delay = 10ms});
  World world;
  world.rules = rules;
  SimCluster cluster(
      net, [&](const SimCluster::Context& ctx) { return std::make_unique<SimNode>(ctx, world); });
  world.node = [&](NodeId n) { return cluster.node(n); };
  cluster.add(kCoordinator);
  for (NodeId p : kParticipants)
    cluster.add(p);
  pods::sim::Nemesis nemesis(cluster, faults);
  sim.schedule(nemesis.heal_at() - sim.now(), [&] { world.open = false; });
  SimResult result;
  while (sim.now() < nemesis.end_at() && sim.step() && world.violation.empty())
    ++result.steps;
  // After the quiet period: every transaction finished, all-or-nothing, no lock held.
  if (world.violation.empty()) {
    SimNode* c = cluster.node(kCoordinator);
    if (!c) {
      world.fail("the coordinator is down after the heal");
    } else if (c->coordinator->preparing() + c->coordinator->committing() != 0) {
      world.fail(std::to_string(c->coordinator->preparing()) + " preparing and " +
                 std::to_string(c->coordinator->committing()) +
                 " committing transactions after the quiet period");
    }
    for (NodeId p : kParticipants) {
      SimNode* n = cluster.node(p);
      if (!n) {
        world.fail("participant " + std::to_string(p) + " is down after the heal");
      } else if (n->participant->locked() != 0 || n->participant->in_doubt() != 0) {
        world.fail("participant " + std::to_string(p) + " holds " +
                   std::to_string(n->participant->locked()) + " locks after the quiet period");
      }
    }
    for (const auto& [t, parts] : world.branches) {
      std::size_t committed = 0;
      for (NodeId p : parts) {
        SimNode* n = cluster.node(p);
        committed += n && n->participant->state(t) == TwoPhaseState::committed ? 1 : 0;
      }
      auto told = world.told.find(t);
      if (committed != 0 && committed != parts.size()) {
        world.fail("txn " + std::to_string(t) + " is half-applied");
      } else if (told != world.told.end() &&
                 (told->second == TwoPhaseOutcome::committed) != (committed != 0)) {
        world.fail("txn " + std::to_string(t) + " disagrees with what the client was told");
      }
    }
  }
  for (const auto& e : nemesis.log())
    if (e.what.rfind("crash ", 0) == 0) ++result.crashes;
  result.violation = world.violation;
  if (!result.violation.empty()) result.violation += "\n" + nemesis.describe();
  result.commits = world.commits;
  result.aborts = world.aborts;
  result.transactions = world.branches.size();
  return result;
}

}  // namespace

TEST_CASE(
    "TwoPhaseCommit on the simulator: atomicity at every commit and, once the faults stop, "
    "every transaction finished all-or-nothing and no lock held",
    "[2pc][sim]") {
  const std::uint64_t n = seeds(40);
  SimResult total;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    const SimResult r = simulate(seed);
    INFO("seed " << seed << ": " << r.violation);
    REQUIRE(r.violation.empty());
    CHECK(r.commits > 0);
    total.steps += r.steps;
    total.crashes += r.crashes;
    total.commits += r.commits;
    total.aborts += r.aborts;
    total.transactions += r.transactions;
  }
  CHECK(total.crashes > 0);
  WARN(n << " seeds, " << total.steps << " steps, " << total.crashes << " crashes, "
         << total.transactions << " transactions: " << total.commits << " told committed, "
         << total.aborts << " told aborted, the rest lost with a coordinator crash; atomicity "
         << "held and no lock outlived the faults");
}

TEST_CASE("TwoPhaseCommit on the simulator: the same seed replays the same run", "[2pc][sim]") {
  const SimResult a = simulate(5), b = simulate(5);
  CHECK(a.steps == b.steps);
  CHECK(a.commits == b.commits);
}

TEST_CASE("TwoPhaseCommit on the simulator: the broken durability rules are caught",
          "[2pc][sim][mutation]") {
  const std::uint64_t n = seeds(40);
  std::uint64_t coordinator_caught = 0, participant_caught = 0;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    coordinator_caught += simulate(seed, {.coordinator_syncs = false}).violation.empty() ? 0 : 1;
    participant_caught += simulate(seed, {.participant_syncs = false}).violation.empty() ? 0 : 1;
  }
  WARN("decision sent before it is durable: caught in " << coordinator_caught << " of " << n
                                                        << " runs; vote sent before it is "
                                                           "durable: caught in "
                                                        << participant_caught << " of " << n);
  CHECK(coordinator_caught > 0);
  CHECK(participant_caught > 0);
}

TEST_CASE(
    "TwoPhaseCommit latency: with a fixed one-way delay and no faults the client hears "
    "committed after 1 round trip and the transaction finishes after 2",
    "[2pc][sim]") {
  pods::sim::Simulation sim(1);
  SimNet net(sim, {.min_delay = 1ms, .max_delay = 1ms});
  World world;
  world.open = false;  // the test begins the transactions itself
  SimCluster cluster(
      net, [&](const SimCluster::Context& ctx) { return std::make_unique<SimNode>(ctx, world); });
  world.node = [&](NodeId n) { return cluster.node(n); };
  cluster.add(kCoordinator);
  for (NodeId p : kParticipants)
    cluster.add(p);
  std::vector<std::chrono::nanoseconds> told_after, finished_after;
  for (int i = 0; i < 10; ++i) {
    sim.run_for(10ms);
    const auto start = sim.now();
    SimCoordinator& c = *cluster.node(kCoordinator)->coordinator;
    c.begin({{2, work({"x"})}, {3, work({"y"})}}, [&](TxnId, TwoPhaseOutcome o) {
      CHECK(o == TwoPhaseOutcome::committed);
      told_after.push_back(sim.now() - start);
    });
    while (c.committing() + c.preparing() != 0 && sim.step()) {
    }
    finished_after.push_back(sim.now() - start);
  }
  for (auto d : told_after)
    CHECK(d == 2ms);
  for (auto d : finished_after)
    CHECK(d == 4ms);
  WARN("2-participant transaction, one-way delay 1 ms: committed (decision durable) after "
       << told_after.front().count() / 1e6 << " ms = 1 round trip, finished (every ack) after "
       << finished_after.front().count() / 1e6 << " ms = 2 round trips");
}

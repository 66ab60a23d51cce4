// Tests of pods/replication/paxos_log.hpp, the multi-Paxos log of Lamport, "Paxos Made
// Simple" (2001), section 3: phase 1 once for every open slot, then phase 2 per slot; a new
// leader re-proposes the highest-ballot accepted value of each open slot (section 2.2's rule,
// per slot) and fills the gaps with no-ops. Message-by-message tests drive nodes through an
// Outbox and a ManualClock; the simulator tests run a key-value state machine on 3 and 5
// nodes under a Nemesis for PODS_SEEDS seeds (default 10; PODS_SEEDS=1000 for the full sweep),
// check agreement per slot at every step, check the client history with
// sim::check_linearizable, and assert progress after the heal.
#include <pods/replication/paxos_log.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/history.hpp>
#include <pods/sim/linearizability.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include "paxos_harness.hpp"

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using paxos_test::crashes_only;
using paxos_test::everything;
using paxos_test::NoSyncStorage;
using paxos_test::seeds;
using pods::Ballot;
using pods::NodeId;
using pods::PaxosLogMessage;
using pods::PaxosValue;

namespace {

PaxosValue bytes(std::initializer_list<int> v) {
  PaxosValue out;
  for (int b : v)
    out.push_back(static_cast<std::byte>(b));
  return out;
}

// Records what it applies.
struct Recorder {
  std::shared_ptr<std::vector<std::pair<std::uint64_t, PaxosValue>>> applied =
      std::make_shared<std::vector<std::pair<std::uint64_t, PaxosValue>>>();
  void apply(std::uint64_t index, std::span<const std::byte> b) {
    applied->emplace_back(index, PaxosValue(b.begin(), b.end()));
  }
};

using Out = pods::Outbox<PaxosLogMessage>;
using Log = pods::PaxosLog<Out, pods::ManualClock, pods::MemoryStorage, Recorder>;

pods::PaxosLogOptions options(NodeId id, std::vector<NodeId> members = {1, 2, 3}) {
  return pods::PaxosLogOptions{.id = id,
                               .members = std::move(members),
                               .heartbeat_interval = 50ms,
                               .election_timeout = 300ms,
                               .max_jitter = 100ms,
                               .retry_timeout = 100ms,
                               .catch_up_batch = 2,
                               .max_open_slots = 8,
                               .seed = 3};
}

template <class X>
std::vector<X> sent_to(const std::vector<Out::Sent>& sent, NodeId to) {
  std::vector<X> out;
  for (const auto& s : sent)
    if (s.to == to && std::holds_alternative<X>(s.message)) out.push_back(std::get<X>(s.message));
  return out;
}

// Makes node 1 of {1, 2, 3} the leader: its election timeout, then a promise from node 2.
Ballot elect(Log& n, Out& out, pods::ManualClock& clock,
             std::vector<pods::PaxosLogEntry> reported = {}) {
  clock.advance(1s);
  n.tick();
  const Ballot b = n.ballot();
  out.take();
  n.receive(2, pods::LogPromise{b, 1, std::move(reported)});
  return b;
}

}  // namespace

TEST_CASE("PaxosLog options are checked with named errors", "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  auto make = [&](pods::PaxosLogOptions o) { Log n(out, clock, pods::MemoryStorage{}, {}, o); };
  auto o = options(4);
  CHECK_THROWS_WITH(make(o), "PaxosLog: options.members must contain options.id");
  o = options(1);
  o.heartbeat_interval = 0ms;
  CHECK_THROWS_WITH(make(o), "PaxosLog: options.heartbeat_interval must be positive");
  o = options(1);
  o.election_timeout = 50ms;
  CHECK_THROWS_WITH(make(o),
                    "PaxosLog: options.election_timeout must be longer than "
                    "options.heartbeat_interval");
  o = options(1);
  o.catch_up_batch = 0;
  CHECK_THROWS_WITH(make(o), "PaxosLog: options.catch_up_batch must be positive");
  o = options(1);
  o.max_open_slots = 0;
  CHECK_THROWS_WITH(make(o), "PaxosLog: options.max_open_slots must be positive");
  o = options(1);
  o.retry_timeout = 0ms;
  CHECK_THROWS_WITH(make(o), "PaxosLog: options.retry_timeout must be positive");
}

TEST_CASE("PaxosLogMessageCodec round-trips every message and rejects bad bytes",
          "[paxos_log][codec]") {
  const pods::PaxosLogMessageCodec codec;
  const std::vector<PaxosLogMessage> all{
      pods::LogPrepare{{3, 2}, 7},
      pods::LogPromise{{3, 2}, 7, {{7, {1, 1}, bytes({1})}, {9, {2, 3}, std::nullopt}}},
      pods::LogAccept{{3, 2}, 8, bytes({5, 6})},
      pods::LogAccept{{3, 2}, 8, std::nullopt},
      pods::LogAccepted{{3, 2}, 8},
      pods::LogNack{{3, 2}, {4, 1}},
      pods::LogCommit{8, bytes({5})},
      pods::LogHeartbeat{{3, 2}, 12},
      pods::LogCatchUp{4},
  };
  for (const auto& m : all) {
    pods::Buffer b;
    codec.encode(m, b);
    CHECK(codec.decode(b) == m);
    for (std::size_t n = 0; n < b.size(); ++n)
      CHECK_THROWS_AS(codec.decode(std::span<const std::byte>(b.data(), n)), pods::CorruptionError);
  }
  pods::Buffer b;
  codec.encode(pods::LogCatchUp{1}, b);
  b[1] = std::byte{8};
  CHECK_THROWS_WITH(codec.decode(b), Catch::Contains("unknown paxos log message tag 8"));
}

TEST_CASE("PaxosLog 3: a node that hears no leader runs phase 1 once for every open slot",
          "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  pods::MemoryStorage storage;
  Log n(out, clock, storage, {}, options(1));
  n.tick();
  CHECK(out.take().empty());  // the election timeout has not run out
  clock.advance(1s);
  n.tick();
  const Ballot b = n.ballot();
  const auto sent = out.take();
  CHECK(sent_to<pods::LogPrepare>(sent, 2) == std::vector{pods::LogPrepare{b, 1}});
  CHECK(n.promised() == b);  // its own promise, durable before the prepares left
  CHECK(n.role() == Log::Role::candidate);
  n.receive(2, pods::LogPromise{b, 1, {}});
  CHECK(n.is_leader());
  // A stable leader: each command is phase 2 only, one accept per peer.
  auto slot = n.propose(bytes({10}));
  REQUIRE(slot.has_value());
  CHECK(*slot == 1);
  auto more = out.take();
  CHECK(sent_to<pods::LogPrepare>(more, 2).empty());
  CHECK(sent_to<pods::LogAccept>(more, 2) == std::vector{pods::LogAccept{b, 1, bytes({10})}});
  CHECK(*n.propose(bytes({11})) == 2);
  out.take();
  n.receive(3, pods::LogAccepted{b, 2});  // slot 2 chosen first: applied only after slot 1
  CHECK(n.machine().applied->empty());
  n.receive(3, pods::LogAccepted{b, 1});
  const auto commits = out.take();
  CHECK(sent_to<pods::LogCommit>(commits, 2) ==
        std::vector{pods::LogCommit{2, bytes({11})}, pods::LogCommit{1, bytes({10})}});
  REQUIRE(n.machine().applied->size() == 2);
  CHECK((*n.machine().applied)[0] == std::pair<std::uint64_t, PaxosValue>{1, bytes({10})});
  CHECK((*n.machine().applied)[1] == std::pair<std::uint64_t, PaxosValue>{2, bytes({11})});
  CHECK(n.commit_index() == 2);
}

TEST_CASE(
    "PaxosLog 3: a new leader re-proposes the highest-ballot accepted values and fills "
    "gaps with no-ops",
    "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  Log n(out, clock, pods::MemoryStorage{}, {}, options(1));
  n.receive(3, pods::LogAccept{{1, 3}, 1, bytes({1})});  // its own acceptor has slot 1 at (1,3)
  out.take();
  clock.advance(1s);
  n.tick();
  const Ballot b = n.ballot();
  out.take();
  // Node 2 reports slot 1 at a higher ballot and slot 3; nobody reports slot 2.
  n.receive(2, pods::LogPromise{b, 1, {{1, {1, 2}, bytes({2})}, {3, {1, 2}, bytes({3})}}});
  REQUIRE(n.is_leader());
  const auto sent = out.take();
  CHECK(sent_to<pods::LogAccept>(sent, 3) == std::vector{pods::LogAccept{b, 1, bytes({1})},
                                                         pods::LogAccept{b, 2, std::nullopt},
                                                         pods::LogAccept{b, 3, bytes({3})}});
  CHECK(*n.propose(bytes({4})) == 4);  // after the re-proposed slots
}

TEST_CASE("PaxosLog 3: the highest-ballot value wins when promises disagree on a slot",
          "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  Log n(out, clock, pods::MemoryStorage{}, {}, options(1, {1, 2, 3, 4, 5}));
  n.receive(4, pods::LogPrepare{{5, 4}, 1});  // the node has seen generation 5
  clock.advance(1s);
  n.tick();
  const Ballot b = n.ballot();
  CHECK(b > Ballot{5, 4});
  out.take();
  n.receive(2, pods::LogPromise{b, 1, {{1, {4, 2}, bytes({2})}}});
  n.receive(3, pods::LogPromise{b, 1, {{1, {5, 3}, bytes({3})}}});
  REQUIRE(n.is_leader());
  CHECK(sent_to<pods::LogAccept>(out.take(), 4) == std::vector{pods::LogAccept{b, 1, bytes({3})}});
}

TEST_CASE(
    "PaxosLog 2.2: an acceptor's promise and accepted entries are durable and lower "
    "ballots are refused",
    "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  pods::MemoryStorage storage;
  auto n = std::make_unique<Log>(out, clock, storage, Recorder{}, options(2));
  n->receive(1, pods::LogPrepare{{5, 1}, 1});
  CHECK(out.take() == std::vector<Out::Sent>{{1, pods::LogPromise{{5, 1}, 1, {}}}});
  n->receive(1, pods::LogAccept{{5, 1}, 1, bytes({8})});
  CHECK(out.take() == std::vector<Out::Sent>{{1, pods::LogAccepted{{5, 1}, 1}}});
  n.reset();
  storage.crash(/*tear=*/true);
  n = std::make_unique<Log>(out, clock, storage, Recorder{}, options(2));
  CHECK(n->promised() == Ballot{5, 1});
  n->receive(3, pods::LogPrepare{{4, 3}, 1});
  CHECK(out.take() == std::vector<Out::Sent>{{3, pods::LogNack{{4, 3}, {5, 1}}}});
  n->receive(3, pods::LogPrepare{{6, 3}, 1});
  CHECK(out.take() ==
        std::vector<Out::Sent>{{3, pods::LogPromise{{6, 3}, 1, {{1, {5, 1}, bytes({8})}}}}});
  n->receive(1, pods::LogAccept{{5, 1}, 2, bytes({9})});  // the old leader: refused
  CHECK(out.take() == std::vector<Out::Sent>{{1, pods::LogNack{{5, 1}, {6, 3}}}});
}

TEST_CASE("PaxosLog: a leader refuses commands past max_open_slots unchosen slots", "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  auto o = options(1);
  o.max_open_slots = 3;
  Log n(out, clock, pods::MemoryStorage{}, {}, o);
  const Ballot b = elect(n, out, clock);
  for (int i = 0; i < 3; ++i)
    REQUIRE(n.propose(bytes({i})).has_value());
  CHECK(n.propose(bytes({9})).error() == pods::Errc::full);
  n.receive(2, pods::LogAccepted{b, 1});
  CHECK(*n.propose(bytes({9})) == 4);
}

TEST_CASE("PaxosLog: a lagging follower catches up from the leader's heartbeat", "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  Log leader(out, clock, pods::MemoryStorage{}, {}, options(1));
  const Ballot b = elect(leader, out, clock);
  for (int i = 0; i < 3; ++i) {
    const auto slot = leader.propose(bytes({i}));
    leader.receive(2, pods::LogAccepted{b, *slot});
  }
  out.take();
  Out out3;
  Log follower(out3, clock, pods::MemoryStorage{}, {}, options(3));
  follower.receive(1, pods::LogHeartbeat{b, leader.commit_index()});
  auto asks = out3.take();
  REQUIRE(asks.size() == 1);
  CHECK(asks[0].message == PaxosLogMessage{pods::LogCatchUp{1}});
  leader.receive(3, pods::LogCatchUp{1});
  auto commits = out.take();
  CHECK(commits.size() == 2);  // catch_up_batch
  for (auto& c : commits)
    follower.receive(1, c.message);
  CHECK(follower.commit_index() == 2);
  CHECK(follower.leader_hint() == 1);
  CHECK_FALSE(follower.propose(bytes({1})).has_value());
  CHECK(follower.propose(bytes({1})).error() == pods::Errc::not_leader);
}

TEST_CASE("PaxosLog: a restarted node re-applies its chosen prefix and never reuses a ballot",
          "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  pods::MemoryStorage storage;
  auto n = std::make_unique<Log>(out, clock, storage, Recorder{}, options(1));
  const Ballot b = elect(*n, out, clock);
  const auto slot = n->propose(bytes({7}));
  n->receive(2, pods::LogAccepted{b, *slot});
  (void)n->propose(bytes({8}));  // its synced accept makes the chosen record of slot 1 durable
  n.reset();
  storage.crash();
  Recorder fresh;
  n = std::make_unique<Log>(out, clock, storage, fresh, options(1));
  CHECK(*fresh.applied == std::vector<std::pair<std::uint64_t, PaxosValue>>{{1, bytes({7})}});
  clock.advance(1s);
  n->tick();
  CHECK(n->ballot() > b);
}

TEST_CASE("PaxosLog: a leader steps down at a nack, and malformed messages are dropped",
          "[paxos_log]") {
  Out out;
  pods::ManualClock clock;
  Log n(out, clock, pods::MemoryStorage{}, {}, options(1));
  const Ballot b = elect(n, out, clock);
  REQUIRE(n.is_leader());
  n.receive(9, pods::LogCatchUp{1});                                // unknown sender
  n.receive(2, pods::LogAccept{{0, 2}, 1, std::nullopt});           // generation 0
  n.receive(2, pods::LogCommit{0, std::nullopt});                   // slot 0
  n.receive(2, pods::LogPromise{b, 3, {{1, {1, 2}, bytes({1})}}});  // an entry below from_slot
  n.receive(2, pods::LogPromise{b, 1, {{1u << 20, {1, 2}, bytes({1})}}});  // beyond the window
  CHECK(n.dropped() == 5);
  CHECK(n.is_leader());
  n.receive(2, pods::LogNack{b, {b.generation + 1, 3}});
  CHECK_FALSE(n.is_leader());
}

// ---- Simulation: a key-value store on the log ----------------------------------------------

namespace {

using SimNet = pods::sim::Network<PaxosLogMessage>;
using KvHistory = pods::sim::History<pods::sim::KvInput, pods::sim::KvOutput>;

enum class Mutation { none, no_sync, ignore_accepted };

// The replicated key-value state machine. A command: op id, origin node, op, key, value.
struct Kv {
  std::map<std::string, std::string> data;
  std::function<void(std::uint64_t op, NodeId origin, pods::sim::KvOutput)> done;
  void apply(std::uint64_t, std::span<const std::byte> b) {
    pods::wire::Reader r(b, "kv command");
    const std::uint64_t op = r.u64();
    const NodeId origin = r.u64();
    const auto kind = static_cast<pods::sim::KvOp>(r.u8());
    const std::string key = r.string();
    const std::string value = r.string();
    pods::sim::KvOutput out;
    if (kind == pods::sim::KvOp::get) {
      if (auto it = data.find(key); it != data.end()) out.value = it->second;
    } else if (kind == pods::sim::KvOp::put) {
      data[key] = value;
    } else {
      data[key] += value;
    }
    if (done) done(op, origin, out);
  }
};

struct World {
  KvHistory history;
  std::map<std::uint64_t, std::optional<PaxosValue>> slots;  // first learned value per slot
  std::string violation;
  std::uint64_t next_op = 1;
  std::uint64_t completed = 0;
};

template <class S>
using SimLog = pods::PaxosLog<SimNet::Endpoint, pods::sim::NodeClock, S, Kv>;

struct SimNode {
  SimNode(const pods::sim::NodeContext<PaxosLogMessage>& ctx, World& w, Mutation m,
          std::size_t nodes)
      : world(&w), mutation(m), id(ctx.id), clock(ctx.clock), random(ctx.random) {
    pods::PaxosLogOptions o{.id = ctx.id,
                            .members = {},
                            .heartbeat_interval = 30ms,
                            .election_timeout = 150ms,
                            .max_jitter = 150ms,
                            .retry_timeout = 60ms,
                            .catch_up_batch = 64,
                            .max_open_slots = 4096,
                            .seed = ctx.random.fork(1).next()};
    for (NodeId i = 1; i <= nodes; ++i)
      o.members.push_back(i);
    Kv kv;
    kv.done = [this](std::uint64_t op, NodeId origin, pods::sim::KvOutput out) {
      if (origin == id && pending && pending->op == op) {
        world->history.ok(pending->id, std::move(out));
        ++world->completed;
        pending.reset();
      }
    };
    if (m == Mutation::no_sync) {
      bad = std::make_unique<SimLog<NoSyncStorage>>(ctx.endpoint, ctx.clock,
                                                    NoSyncStorage{ctx.storage}, kv, o);
    } else {
      good = std::make_unique<SimLog<pods::MemoryStorage>>(ctx.endpoint, ctx.clock, ctx.storage, kv,
                                                           o);
    }
  }
  ~SimNode() {
    if (pending) world->history.unknown(pending->id);  // crashed: it may or may not apply
  }

  template <class F>
  decltype(auto) with(F&& f) {
    return good ? f(*good) : f(*bad);
  }
  template <class F>
  decltype(auto) with(F&& f) const {
    return good ? f(*good) : f(*bad);
  }

  void receive(NodeId from, PaxosLogMessage m) {
    if (mutation == Mutation::ignore_accepted) {
      if (auto* p = std::get_if<pods::LogPromise>(&m)) p->accepted.clear();
    }
    with([&](auto& n) { n.receive(from, std::move(m)); });
    client();
  }

  void tick() {
    with([&](auto& n) { n.tick(); });
    client();
  }

  // The client of this node: one operation at a time, sent to this node while it leads.
  void client() {
    const auto now = clock.now();
    if (pending && now >= pending->deadline) {
      world->history.unknown(pending->id);
      pending.reset();
    }
    if (pending || now < next_op_at || !with([](auto& n) { return n.is_leader(); })) return;
    const char* keys[] = {"x", "y", "z"};
    pods::sim::KvInput in;
    in.op = static_cast<pods::sim::KvOp>(random.below(3));
    in.key = keys[random.below(3)];
    if (in.op != pods::sim::KvOp::get) in.value = std::to_string(random.below(1000));
    const std::uint64_t op = world->next_op++;
    pods::Buffer cmd;
    pods::wire::Writer w(cmd);
    w.u64(op);
    w.u64(id);
    w.u8(static_cast<std::uint8_t>(in.op));
    w.string(in.key);
    w.string(in.value);
    const auto hid = world->history.invoke(id, in);
    pending = Pending{hid, op, now + 1s};
    const auto slot = with([&](auto& n) { return n.propose(cmd); });
    if (!slot) {
      world->history.fail(hid);
      pending.reset();
    }
    next_op_at = now + random.between(0ms, 20ms);
  }

  pods::sim::NodeClock::time_point next_deadline() const {
    auto d = with([](const auto& n) { return n.next_deadline(); });
    if (pending) d = std::min(d, pending->deadline);
    return std::min(d, std::max(next_op_at, clock.now() + 1ms));
  }

  std::uint64_t commit_index() const {
    return with([](const auto& n) { return n.commit_index(); });
  }
  std::optional<std::optional<PaxosValue>> learned(std::uint64_t s) const {
    return with([&](const auto& n) { return n.learned(s); });
  }

  struct Pending {
    KvHistory::Id id;
    std::uint64_t op;
    pods::sim::NodeClock::time_point deadline;
  };

  World* world;
  Mutation mutation;
  NodeId id;
  pods::sim::NodeClock clock;
  pods::Random random;
  std::unique_ptr<SimLog<pods::MemoryStorage>> good;
  std::unique_ptr<SimLog<NoSyncStorage>> bad;
  std::optional<Pending> pending;
  pods::sim::NodeClock::time_point next_op_at{};
};

using SimCluster = pods::sim::Cluster<SimNode, PaxosLogMessage>;

struct RunResult {
  std::string violation;
  std::uint64_t steps = 0, completed = 0, slots = 0, crashes = 0;
  std::int64_t commit_after_heal_ns = -1;
  pods::sim::Verdict verdict = pods::sim::Verdict::ok;
};

RunResult run(std::uint64_t seed, std::size_t nodes, Mutation mutation,
              pods::sim::NemesisOptions faults = everything()) {
  pods::sim::Simulation sim(seed);
  SimNet net(sim, {.loss = 0.03, .duplicate = 0.03, .min_delay = 1ms, .max_delay = 10ms});
  World world;
  RunResult result;
  {
    SimCluster cluster(net, [&](const SimCluster::Context& ctx) {
      return std::make_unique<SimNode>(ctx, world, mutation, nodes);
    });
    for (NodeId id = 1; id <= nodes; ++id)
      cluster.add(id);
    pods::sim::Nemesis nemesis(cluster, faults);
    std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>> checked;  // incarnation, slot
    std::uint64_t commit_at_heal = 0;
    bool heal_seen = false;
    while (sim.now() < nemesis.end_at() && sim.step()) {
      ++result.steps;
      std::uint64_t best = 0;
      for (NodeId id = 1; id <= nodes; ++id) {
        SimNode* n = cluster.node(id);
        if (!n) continue;
        auto& [inc, upto] = checked[id];
        if (inc != cluster.incarnation(id)) {
          inc = cluster.incarnation(id);
          upto = 0;
        }
        const std::uint64_t ci = n->commit_index();
        best = std::max(best, ci);
        // Agreement per slot, at every step, for every newly learned slot.
        for (; upto < ci; ++upto) {
          const auto got = *n->learned(upto + 1);
          auto [it, fresh] = world.slots.emplace(upto + 1, got);
          if (!fresh && it->second != got && world.violation.empty()) {
            world.violation = "node " + std::to_string(id) + " learned another entry at slot " +
                              std::to_string(upto + 1);
          }
        }
      }
      if (nemesis.healed() && !heal_seen) {
        heal_seen = true;
        commit_at_heal = best;
      }
      if (heal_seen && result.commit_after_heal_ns < 0 && best > commit_at_heal) {
        result.commit_after_heal_ns = (sim.now() - nemesis.heal_at()).count();
      }
      if (!world.violation.empty()) break;
    }
    for (const auto& e : nemesis.log())
      if (e.what.rfind("crash ", 0) == 0) ++result.crashes;
    if (!world.violation.empty()) world.violation += "\n" + nemesis.describe();
  }  // the nodes' destructors record their pending operations as unknown
  const auto ops = world.history.operations();
  result.verdict = pods::sim::check_linearizable(
                       pods::sim::KvModel{},
                       std::span<const KvHistory::operation_type>(ops.data(), ops.size()), 10s)
                       .verdict;
  if (world.violation.empty() && result.verdict == pods::sim::Verdict::illegal) {
    world.violation = "the client history is not linearizable";
  }
  result.violation = world.violation;
  result.completed = world.completed;
  result.slots = world.slots.size();
  return result;
}

}  // namespace

TEST_CASE(
    "PaxosLog on the simulator: agreement per slot at every step, a linearizable key-value "
    "history, and commits within 1 s after the heal",
    "[paxos_log][sim]") {
  for (std::size_t nodes : {3u, 5u}) {
    const std::uint64_t n = seeds(10);
    std::uint64_t completed = 0, slots = 0, crashes = 0, steps = 0;
    std::int64_t worst = 0;
    for (std::uint64_t seed = 1; seed <= n; ++seed) {
      const RunResult r = run(seed, nodes, Mutation::none);
      INFO(nodes << " nodes, seed " << seed << ": " << r.violation);
      REQUIRE(r.violation.empty());
      CHECK(r.verdict == pods::sim::Verdict::ok);
      REQUIRE(r.commit_after_heal_ns >= 0);
      CHECK(r.commit_after_heal_ns <= 1'000'000'000);
      worst = std::max(worst, r.commit_after_heal_ns);
      completed += r.completed;
      slots += r.slots;
      crashes += r.crashes;
      steps += r.steps;
    }
    CHECK(completed > n * 10);
    WARN(nodes << " nodes, " << n << " seeds, " << steps << " steps, " << crashes << " crashes, "
               << slots << " slots chosen, " << completed
               << " client operations completed, linearizable; first commit after the heal at "
                  "most "
               << worst / 1000000 << " ms after it");
  }
}

TEST_CASE("PaxosLog on the simulator: answering before promises are synced is caught",
          "[paxos_log][sim][mutation]") {
  std::uint64_t caught = 0;
  const std::uint64_t n = 10;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    caught += run(seed, 3, Mutation::no_sync, crashes_only()).violation.empty() ? 0 : 1;
    const RunResult kept = run(seed, 3, Mutation::none, crashes_only());
    INFO("seed " << seed << ": " << kept.violation);
    CHECK(kept.violation.empty());
  }
  WARN("log without sync: " << caught << " of " << n << " runs caught");
  CHECK(caught > 0);
}

TEST_CASE(
    "PaxosLog on the simulator: a new leader that ignores reported accepted values is "
    "caught",
    "[paxos_log][sim][mutation]") {
  std::uint64_t caught = 0;
  const std::uint64_t n = 10;
  for (std::uint64_t seed = 1; seed <= n; ++seed)
    caught += run(seed, 3, Mutation::ignore_accepted).violation.empty() ? 0 : 1;
  WARN("log ignoring accepted values: " << caught << " of " << n << " runs caught");
  CHECK(caught > 0);
}

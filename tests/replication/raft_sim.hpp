// The Raft simulation harness the ReplicatedLog tests share: a key-value state machine whose
// snapshot encodes its map, servers on pods::sim::Cluster under a Nemesis, clients recording a
// history for check_linearizable, and the safety properties checked at every step (at most
// one leader per term, one command per index, a committed entry never lost, leader
// completeness, the high-water mark never back), then the liveness bound after the heal.
//
// Extending it without editing it:
//   - Scenario::configure adjusts each server's ReplicatedLogOptions before it starts;
//   - run()'s last argument, an extension object, may define on_start(ctx) (schedule extra
//     client or admin actions on ctx.sim), on_step(ctx) (called after every simulation step,
//     after the built-in checks; call ctx.world.fail to report a violation) and
//     on_end(ctx, result) (before the liveness and linearizability checks);
//   - the Rules and Storage template parameters break one rule at a time (mutations).
// Seeds: seeds(fallback) reads PODS_SEEDS (tests/main.cpp sets it from --seeds N).
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/random.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>
#include <pods/replication/replicated_log.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/history.hpp>
#include <pods/sim/linearizability.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace raft_sim {

using namespace std::chrono_literals;
using pods::NodeId;
using Msg = pods::ReplicatedLogMessage;
using Net = pods::sim::Network<Msg>;
using Kv = pods::sim::KvModel;

// Returns PODS_SEEDS when set to a positive number, else `fallback`.
inline std::uint64_t seeds(std::uint64_t fallback) {
  if (const char* env = std::getenv("PODS_SEEDS")) {
    const auto n = std::strtoull(env, nullptr, 10);
    if (n > 0) return n;
  }
  return fallback;
}

// A transport whose send returns a value, as pods::net::TcpTransport's does
// (pods::Outcome<void>, [[nodiscard]]): it records into `out` and, while `*refuse`, refuses
// (Errc::full) and records nothing. Copies share `out` and the switch.
template <class M>
struct ResultOutbox {
  pods::Outbox<M> out;
  std::shared_ptr<bool> refuse = std::make_shared<bool>(false);
  pods::Outcome<void> send(NodeId to, M m) {
    if (*refuse) return pods::Errc::full;
    out.send(to, std::move(m));
    return {};
  }
};

struct World;

// A key-value state machine; commands are (operation id, op, key, value). Each apply reports
// to the world, which checks that every server applies the same command at each index and
// completes the client's operation with the first result. snapshot() encodes the map (a
// count, then key and value strings in key order) and restore() decodes it, throwing
// pods::CorruptionError for bad bytes.
struct KvMachine {
  World* world = nullptr;
  NodeId node = 0;
  std::map<std::string, std::string> data;

  void apply(std::uint64_t index, std::span<const std::byte> command);
  std::vector<std::byte> snapshot() const {
    pods::Buffer b;
    pods::wire::Writer w(b);
    w.count(data.size());
    for (const auto& [k, v] : data) {
      w.string(k);
      w.string(v);
    }
    return {b.begin(), b.end()};
  }
  void restore(std::span<const std::byte> bytes) {
    pods::wire::Reader r(bytes, "KvMachine snapshot");
    std::map<std::string, std::string> m;
    const std::size_t n = r.count(8);
    for (std::size_t i = 0; i < n; ++i) {
      std::string k = r.string();
      m[std::move(k)] = r.string();
    }
    r.expect_end();
    data = std::move(m);
  }
};

inline pods::Buffer encode_command(std::uint64_t op_id, const pods::sim::KvInput& in) {
  pods::Buffer b;
  pods::wire::Writer w(b);
  w.u64(op_id);
  w.u8(static_cast<std::uint8_t>(in.op));
  w.string(in.key);
  w.string(in.value);
  return b;
}

struct Pending {
  pods::sim::History<pods::sim::KvInput, pods::sim::KvOutput>::Id id;
};

struct World {
  pods::sim::Simulation& sim;
  pods::sim::History<pods::sim::KvInput, pods::sim::KvOutput> history;
  std::map<std::uint64_t, Pending> pending;                 // by operation id
  std::map<std::uint64_t, std::vector<std::byte>> applied;  // index -> command
  std::string violation;
  std::uint64_t applies = 0;

  explicit World(pods::sim::Simulation& s)
      : sim(s), history([&s] { return s.now().time_since_epoch().count(); }) {}

  void fail(const std::string& what) {
    if (violation.empty()) {
      std::ostringstream o;
      o << what << " at " << sim.now().time_since_epoch().count() << " ns";
      violation = o.str();
    }
  }
};

inline void KvMachine::apply(std::uint64_t index, std::span<const std::byte> command) {
  auto [it, fresh] = world->applied.try_emplace(index, command.begin(), command.end());
  if (!fresh && !std::equal(command.begin(), command.end(), it->second.begin(), it->second.end())) {
    world->fail("two servers applied different commands at index " + std::to_string(index));
  }
  ++world->applies;
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
    world->history.ok(p->second.id, out);
    world->pending.erase(p);
  }
}

template <class Rules, class Storage>
using SimLog = pods::ReplicatedLog<Storage, Net::Endpoint, pods::sim::NodeClock, KvMachine, Rules>;

struct Scenario;

template <class Rules, class Storage>
struct SimNode {
  KvMachine machine;
  SimLog<Rules, Storage> log;

  SimNode(const pods::sim::NodeContext<Msg>& ctx, World& world, std::vector<NodeId> voters,
          const Scenario& s)
      : machine{&world, ctx.id, {}},
        log(Storage(ctx.storage), ctx.endpoint, ctx.clock, machine, options(ctx, voters, s)) {}
  void receive(NodeId from, Msg m) { log.receive(from, std::move(m)); }
  void tick() { log.tick(); }
  auto next_deadline() const { return log.next_deadline(); }

  static pods::ReplicatedLogOptions options(const pods::sim::NodeContext<Msg>& ctx,
                                            std::vector<NodeId> voters, const Scenario& s);
};

struct Scenario {
  std::size_t nodes = 3;
  std::chrono::nanoseconds duration = 12s;
  std::chrono::nanoseconds quiet = 4s;
  std::chrono::nanoseconds liveness_bound = 3s;  // from heal to a commit in the leader's term
  bool stop_at_violation = true;
  std::chrono::nanoseconds min_gap = 100ms, max_gap = 1000ms, max_fault = 2000ms;
  bool pre_vote_and_check_quorum = true;
  bool crashes_only = false;  // no partitions, pauses or clock faults
  bool clock_steps = true;    // with !crashes_only: clocks also jump (not only drift)
  std::chrono::nanoseconds max_delay = 10ms;
  double loss = 0.01, duplicate = 0.01;
  std::size_t clients = 3;
  // Adjusts a server's options (window, batch, timeouts, learners...) before it starts.
  std::function<void(pods::ReplicatedLogOptions&)> configure{};
  // The nemesis' clock faults: how fast or slow a drifting clock runs, how far a step jumps.
  double max_drift = 1e-3;
  std::chrono::nanoseconds max_clock_step = 1s;
  // A server that throws (a CorruptionError on restart, say) ends the run with a violation
  // naming the exception instead of propagating it (for mutations that corrupt state).
  bool throw_is_violation = false;
  // Checks the clients' history with check_linearizable at the end (10 s budget). A mutation
  // test that judges by other evidence may turn it off: a corrupted state can make the
  // search slow.
  bool check_history = true;
  // Ends a run with a violation once it has taken this many simulation steps (0: no bound): a
  // broken rule that makes messages multiply is caught without waiting for the run's end.
  std::uint64_t max_steps = 0;
};

template <class Rules, class Storage>
pods::ReplicatedLogOptions SimNode<Rules, Storage>::options(const pods::sim::NodeContext<Msg>& ctx,
                                                            std::vector<NodeId> voters,
                                                            const Scenario& s) {
  pods::ReplicatedLogOptions o{.self = ctx.id,
                               .voters = std::move(voters),
                               .pre_vote = s.pre_vote_and_check_quorum,
                               .check_quorum = s.pre_vote_and_check_quorum,
                               .seed = ctx.random.fork(1).next()};
  if (s.configure) s.configure(o);
  return o;
}

struct RunResult {
  std::string violation;
  std::uint64_t operations = 0, ok = 0, applies = 0, elections = 0, steps = 0;
  std::uint64_t crashes = 0, pauses = 0;
  std::int64_t recovery_ns = -1;  // heal to the first commit of a leader's own term
};

// What an extension's hooks see of a run.
template <class Node>
struct RunContext {
  pods::sim::Simulation& sim;
  Net& net;
  World& world;
  pods::sim::Cluster<Node, Msg>& cluster;
  const std::vector<NodeId>& voters;
  pods::sim::Simulation::time_point heal, end;
};

// The extension that adds nothing.
struct NoExtension {};

// Runs one seeded simulation of scenario `s`; `ext` may add on_start(ctx), on_step(ctx) and
// on_end(ctx, result) (see the file comment).
template <class Rules, class Storage = pods::MemoryStorage, class Extension = NoExtension>
RunResult run(std::uint64_t seed, const Scenario& s, Extension&& ext = {}) {
  using Node = SimNode<Rules, Storage>;
  using SimCluster = pods::sim::Cluster<Node, Msg>;
  pods::sim::Simulation sim(seed);
  Net net(sim,
          {.loss = s.loss, .duplicate = s.duplicate, .min_delay = 1ms, .max_delay = s.max_delay});
  World world(sim);
  std::vector<NodeId> voters;
  for (NodeId id = 1; id <= s.nodes; ++id)
    voters.push_back(id);
  SimCluster cluster(net, [&](const typename SimCluster::Context& ctx) {
    return std::make_unique<Node>(ctx, world, voters, s);
  });
  for (NodeId id : voters)
    cluster.add(id);
  pods::sim::Nemesis nemesis(cluster, {.duration = s.duration,
                                       .quiet = s.quiet,
                                       .min_gap = s.min_gap,
                                       .max_gap = s.max_gap,
                                       .max_fault = s.max_fault,
                                       .partitions = !s.crashes_only,
                                       .one_way = !s.crashes_only,
                                       .isolation = !s.crashes_only,
                                       .pauses = !s.crashes_only,
                                       .clock_steps = !s.crashes_only && s.clock_steps,
                                       .clock_drift = !s.crashes_only,
                                       .max_clock_step = s.max_clock_step,
                                       .max_drift = s.max_drift});
  const auto heal = nemesis.heal_at();
  const auto end = nemesis.end_at();
  RunContext<Node> ctx{sim, net, world, cluster, voters, heal, end};
  if constexpr (requires { ext.on_start(ctx); }) ext.on_start(ctx);

  // Clients: each issues one operation at a time to the server it believes leads; an
  // operation without an answer within a second is recorded as unknown and the client
  // continues under a new id (a new process, in Jepsen's terms).
  struct Client {
    std::uint64_t id = 0;
    bool busy = false;
    bool proposed = false;
    std::uint64_t op_id = 0;
    pods::Buffer command;
    NodeId target = 1;
    pods::sim::Simulation::time_point give_up{};
  };
  std::vector<Client> clients(s.clients);
  std::uint64_t next_client = 1, next_op = 1;
  for (Client& c : clients)
    c.id = next_client++;
  pods::Random draws(seed ^ 0x7261667421ULL);
  RunResult result;
  std::function<void(std::size_t)> step_client = [&](std::size_t k) {
    Client& c = clients[k];
    const auto now = sim.now();
    if (c.busy && world.pending.count(c.op_id) == 0) c.busy = false;  // answered
    if (c.busy && now >= c.give_up) {
      world.history.unknown(world.pending.at(c.op_id).id);
      world.pending.erase(c.op_id);
      c.busy = false;
      c.id = next_client++;
    }
    if (!c.busy && now + 1s < end) {
      const std::string key(1, static_cast<char>('x' + draws.below(2)));
      pods::sim::KvInput in =
          draws.chance(0.5) ? Kv::get(key) : Kv::put(key, std::to_string(next_op));
      c.op_id = next_op++;
      c.command = encode_command(c.op_id, in);
      world.pending[c.op_id] = {world.history.invoke(c.id, in)};
      c.busy = true;
      c.proposed = false;
      c.give_up = now + 1s;
      ++result.operations;
    }
    if (c.busy && !c.proposed) {
      if (Node* n = cluster.is_up(c.target) && !cluster.is_paused(c.target) ? cluster.node(c.target)
                                                                            : nullptr) {
        if (n->log.propose(c.command)) {
          c.proposed = true;
        } else if (auto hint = n->log.leader(); hint && *hint != c.target) {
          c.target = *hint;
        } else {
          c.target = voters[draws.below(voters.size())];
        }
      } else {
        c.target = voters[draws.below(voters.size())];
      }
    }
    sim.schedule(20ms, [&step_client, k] { step_client(k); });
  };
  for (std::size_t k = 0; k < clients.size(); ++k)
    sim.schedule(std::chrono::milliseconds(5 * k + 1), [&step_client, k] { step_client(k); });

  std::map<std::uint64_t, NodeId> leaders;  // term -> leader
  // index -> (the entry's term, the lowest term in which a server knew it committed)
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> committed;
  std::map<NodeId, std::pair<std::uint64_t, std::uint64_t>> marks;  // incarnation, mark
  std::map<std::pair<NodeId, std::uint64_t>, bool> checked_leader;  // (node, term)
  // Runs one simulation step; false at the end (or, with throw_is_violation, after a throw).
  auto step = [&] {
    if (!s.throw_is_violation) return sim.step();
    try {
      return sim.step();
    } catch (const std::exception& e) {
      world.fail(std::string("a server threw: ") + e.what());
      return false;
    }
  };
  while (sim.now() < end && step()) {
    ++result.steps;
    if (s.max_steps != 0 && result.steps > s.max_steps) {
      world.fail("more than " + std::to_string(s.max_steps) +
                 " simulation steps: messages multiply");
      break;
    }
    for (NodeId id : voters) {
      Node* n = cluster.node(id);
      if (!n) continue;
      auto& log = n->log;
      // A server's high-water mark never goes back while it runs.
      auto& [incarnation, mark] = marks[id];
      if (incarnation != cluster.incarnation(id)) {
        incarnation = cluster.incarnation(id);
        mark = 0;
      }
      if (log.commit_index() < mark)
        world.fail("the high-water mark of " + std::to_string(id) + " went back");
      // A committed entry is never lost: every server that commits agrees on its term. Below
      // a snapshot the terms are gone (7): what it covers was checked when it committed.
      for (std::uint64_t i = std::max(mark + 1, log.snapshot_index()); i <= log.commit_index();
           ++i) {
        if (i == 0) continue;
        auto [it, fresh] = committed.try_emplace(i, log.term_at(i), log.term());
        it->second.second = std::min(it->second.second, log.term());
        if (!fresh && it->second.first != log.term_at(i)) {
          world.fail("server " + std::to_string(id) + " committed a different entry at " +
                     std::to_string(i));
        }
      }
      mark = log.commit_index();
      if (!log.is_leader()) continue;
      // At most one leader per term.
      auto [l, fresh] = leaders.try_emplace(log.term(), id);
      if (fresh) ++result.elections;
      if (l->second != id) {
        world.fail("servers " + std::to_string(l->second) + " and " + std::to_string(id) +
                   " both lead term " + std::to_string(log.term()));
      }
      // Leader completeness (5.4): a new leader holds every entry committed in an earlier term.
      if (!checked_leader[{id, log.term()}]) {
        checked_leader[{id, log.term()}] = true;
        for (const auto& [i, t] : committed) {
          if (i >= log.snapshot_index() && t.second < log.term() && log.term_at(i) != t.first) {
            world.fail("leader " + std::to_string(id) + " of term " + std::to_string(log.term()) +
                       " lacks committed entry " + std::to_string(i));
            break;
          }
        }
      }
      if (result.recovery_ns < 0 && sim.now() >= heal && log.commit_index() > 0 &&
          log.term_at(log.commit_index()) == log.term()) {
        result.recovery_ns = (sim.now() - heal).count();
      }
    }
    if constexpr (requires { ext.on_step(ctx); }) ext.on_step(ctx);
    if (!world.violation.empty() && s.stop_at_violation) break;
  }
  for (const auto& e : nemesis.log()) {
    if (e.what.rfind("crash ", 0) == 0) ++result.crashes;
    if (e.what.rfind("pause ", 0) == 0) ++result.pauses;
  }
  if constexpr (requires { ext.on_end(ctx, result); }) ext.on_end(ctx, result);
  if (world.violation.empty()) {
    if (result.recovery_ns < 0 || result.recovery_ns > s.liveness_bound.count()) {
      world.fail("no leader committed in its own term within the bound after the heal");
    }
  }
  if (world.violation.empty() && s.check_history) {
    for (auto& [op, p] : world.pending)
      world.history.unknown(p.id);
    const auto ops = world.history.operations();
    for (const auto& o : ops)
      result.ok += o.output ? 1 : 0;
    const auto check = pods::sim::check_linearizable(Kv{}, std::span(ops), 10s);
    if (check.verdict == pods::sim::Verdict::illegal) world.fail("the history is not linearizable");
  }
  result.applies = world.applies;
  result.violation = world.violation;
  if (!result.violation.empty()) result.violation += "\n" + nemesis.describe();
  return result;
}

// Runs seeds 1..n of scenario `s`, requires each to be free of violations, and WARNs the
// totals (operations, answers, applies, elections, crashes, pauses, the worst recovery).
template <class Rules, class Storage = pods::MemoryStorage>
void sweep(const Scenario& s, std::uint64_t n) {
  const std::size_t nodes = s.nodes;
  RunResult total;
  std::int64_t worst_recovery = 0;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    const RunResult r = run<Rules, Storage>(seed, s);
    INFO("seed " << seed << ": " << r.violation);
    REQUIRE(r.violation.empty());
    total.operations += r.operations;
    total.ok += r.ok;
    total.applies += r.applies;
    total.elections += r.elections;
    total.crashes += r.crashes;
    total.pauses += r.pauses;
    total.steps += r.steps;
    worst_recovery = std::max(worst_recovery, r.recovery_ns);
  }
  CHECK(total.ok > 0);
  WARN(nodes << " servers, " << n << " seeds: " << total.operations << " operations, " << total.ok
             << " answered, " << total.applies << " applies, " << total.elections << " elections, "
             << total.crashes << " crashes, " << total.pauses << " pauses, worst recovery "
             << worst_recovery / 1000000 << " ms, " << total.steps << " steps");
}

// Runs seeds 1..n of the default scenario on `nodes` servers (see sweep above).
template <class Rules>
void sweep(std::size_t nodes, std::uint64_t n) {
  sweep<Rules>(Scenario{.nodes = nodes}, n);
}

// ---- mutations: test-only rule policies and storages that break one rule each ----------

// Grants votes without the up-to-date check (breaks 5.4.1).
struct NoUpToDateCheck : pods::RaftRules {
  static constexpr bool up_to_date_check = false;
};

// Commits an older term's entry by counting replicas (breaks 5.4.2).
struct PreviousTermCommit : pods::RaftRules {
  static constexpr bool current_term_commit = false;
};

// A storage that never syncs the durable term and vote (breaks 5.2's durable vote): a crash
// may forget the vote a server cast.
class ForgetfulVoteStorage : public pods::MemoryStorage {
 public:
  explicit ForgetfulVoteStorage(pods::MemoryStorage s) : pods::MemoryStorage(std::move(s)) {}
  void sync(std::uint64_t id) {
    if (id != pods::detail::raft_state_segment) pods::MemoryStorage::sync(id);
  }
};

// Returns the first seed in [1, n] whose run finds a violation, or 0.
template <class Rules, class Storage = pods::MemoryStorage>
std::uint64_t first_violation(const Scenario& s, std::uint64_t n) {
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    const RunResult r = run<Rules, Storage>(seed, s);
    if (!r.violation.empty()) {
      WARN("seed " << seed << ": " << r.violation.substr(0, r.violation.find('\n')));
      return seed;
    }
  }
  return 0;
}

// The seeds within which each broken rule must be caught, and the controls must pass.
inline constexpr std::uint64_t mutation_seeds = 20;

inline const Scenario hostile{.nodes = 3, .min_gap = 50ms, .max_gap = 300ms, .max_fault = 800ms};
inline const Scenario crashy{.nodes = 3,
                             .min_gap = 20ms,
                             .max_gap = 100ms,
                             .max_fault = 150ms,
                             .pre_vote_and_check_quorum = false,
                             .crashes_only = true,
                             .max_delay = 150ms};

}  // namespace raft_sim

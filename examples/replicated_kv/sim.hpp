// `replicated_kv sim`: the key-value machine on ReplicatedLog on the simulator, under a
// Nemesis with every fault, safety checked at every step and each history checked for
// linearizability.
#pragma once

#include "kv.hpp"

#include <pods/replication/replicated_log.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/history.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace replicated_kv {

using Msg = pods::ReplicatedLogMessage;
using Net = pods::sim::Network<Msg>;
using KvHistory = pods::sim::History<pods::sim::KvInput, pods::sim::KvOutput>;

struct SimWorld {
  KvHistory history;
  std::map<std::uint64_t, KvHistory::Id> pending;           // by command tag
  std::map<std::uint64_t, std::vector<std::byte>> applied;  // index -> command
  std::string violation;
  explicit SimWorld(pods::sim::Simulation& s)
      : history([&s] { return s.now().time_since_epoch().count(); }) {}
  void fail(const std::string& what) {
    if (violation.empty()) violation = what;
  }
};

// Servers snapshot every this many applied entries (§7), so that the nemesis's crashes and
// partitions leave followers behind the leader's snapshot, to catch up by InstallSnapshot.
inline constexpr std::uint64_t sim_snapshot_every = 50;

struct SimNode {
  Machine machine;
  pods::ReplicatedLog<pods::MemoryStorage, Net::Endpoint, pods::sim::NodeClock, Machine> log;

  SimNode(const pods::sim::NodeContext<Msg>& ctx, SimWorld& world, std::vector<pods::NodeId> voters)
      : log(ctx.storage, ctx.endpoint, ctx.clock, machine,
            {.self = ctx.id,
             .voters = std::move(voters),
             .seed = ctx.random.fork(1).next(),
             .snapshot_every = sim_snapshot_every}) {
    machine.on_apply = [&world](std::uint64_t index, const Command& c,
                                const pods::sim::KvOutput& out) {
      const pods::Buffer bytes = encode(c);
      auto [it, fresh] = world.applied.try_emplace(index, bytes);
      if (!fresh && it->second != bytes) {
        world.fail("two servers applied different commands at index " + std::to_string(index));
      }
      if (auto p = world.pending.find(c.tag); p != world.pending.end()) {
        world.history.ok(p->second, out);
        world.pending.erase(p);
      }
    };
  }
  void receive(pods::NodeId from, Msg m) { log.receive(from, std::move(m)); }
  void tick() { log.tick(); }
  auto next_deadline() const { return log.next_deadline(); }
};

struct SimTotals {
  std::uint64_t operations = 0, ok = 0, crashes = 0, pauses = 0, elections = 0;
  std::uint64_t snapshots = 0, installs = 0;  // by every incarnation still up at the end
};

// Runs one seed; returns the violation ("" when safe and linearizable).
// stale_reads: gets are answered from a random server's local state, without the log (the
// checker's own test: such a history must be found non-linearizable).
inline std::string run_sim_seed(std::uint64_t seed, std::size_t nodes, SimTotals& totals,
                                bool stale_reads = false) {
  using namespace std::chrono_literals;
  using SimCluster = pods::sim::Cluster<SimNode, Msg>;
  pods::sim::Simulation sim(seed);
  Net net(sim, {.loss = 0.01, .duplicate = 0.01, .min_delay = 1ms, .max_delay = 10ms});
  SimWorld world(sim);
  std::vector<pods::NodeId> voters;
  for (pods::NodeId id = 1; id <= nodes; ++id)
    voters.push_back(id);
  SimCluster cluster(net, [&](const SimCluster::Context& ctx) {
    return std::make_unique<SimNode>(ctx, world, voters);
  });
  for (pods::NodeId id : voters)
    cluster.add(id);
  pods::sim::Nemesis nemesis(cluster, {.duration = 10s, .quiet = 4s});  // every fault
  const auto end = nemesis.end_at();
  const auto heal = nemesis.heal_at();

  struct Client {
    std::uint64_t process = 0, tag = 0;
    bool busy = false, proposed = false;
    pods::Buffer command;
    pods::NodeId target = 1;
    pods::sim::Simulation::time_point give_up{};
  };
  std::vector<Client> clients(3);
  std::uint64_t next_process = 1, next_tag = 1;
  for (Client& c : clients)
    c.process = next_process++;
  pods::Random draws(seed * 7919 + 11);
  std::function<void(std::size_t)> step = [&](std::size_t k) {
    Client& c = clients[k];
    const auto now = sim.now();
    if (c.busy && !world.pending.count(c.tag)) c.busy = false;
    if (c.busy && now >= c.give_up) {  // no answer: the outcome is unknown
      world.history.unknown(world.pending.at(c.tag));
      world.pending.erase(c.tag);
      c.busy = false;
      c.process = next_process++;
    }
    if (!c.busy && now + 1s < end) {
      const std::string key(1, static_cast<char>('a' + draws.below(2)));
      Command cmd{next_tag++, draws.chance(0.5)
                                  ? pods::sim::KvModel::get(key)
                                  : pods::sim::KvModel::put(key, std::to_string(next_tag))};
      c.tag = cmd.tag;
      c.command = encode(cmd);
      world.pending[c.tag] = world.history.invoke(c.process, cmd.input);
      c.busy = true;
      c.proposed = false;
      c.give_up = now + 1s;
      ++totals.operations;
    }
    if (stale_reads && c.busy && !c.proposed && c.command[8] == std::byte{0}) {  // a get
      const pods::NodeId at = voters[draws.below(voters.size())];
      if (SimNode* n = cluster.is_up(at) && !cluster.is_paused(at) ? cluster.node(at) : nullptr) {
        const Command cmd = decode(c.command);
        pods::sim::KvOutput out;
        if (auto it = n->machine.data.find(cmd.input.key); it != n->machine.data.end())
          out.value = it->second;
        world.history.ok(world.pending.at(c.tag), out);
        world.pending.erase(c.tag);
        c.busy = false;
      }
    }
    if (c.busy && !c.proposed) {
      SimNode* n = cluster.is_up(c.target) && !cluster.is_paused(c.target) ? cluster.node(c.target)
                                                                           : nullptr;
      if (n && n->log.propose(c.command)) {
        c.proposed = true;
      } else if (auto hint = n ? n->log.leader() : std::nullopt; hint && *hint != c.target) {
        c.target = *hint;
      } else {
        c.target = voters[draws.below(voters.size())];
      }
    }
    sim.schedule(20ms, [&step, k] { step(k); });
  };
  for (std::size_t k = 0; k < clients.size(); ++k)
    sim.schedule(std::chrono::milliseconds(3 * k + 1), [&step, k] { step(k); });

  std::map<std::uint64_t, pods::NodeId> leaders;     // term -> leader
  std::map<std::uint64_t, std::uint64_t> committed;  // index -> term of the entry
  std::map<pods::NodeId, std::pair<std::uint64_t, std::uint64_t>> marks;  // incarnation, mark
  bool recovered = false;
  while (sim.now() < end && sim.step() && world.violation.empty()) {
    for (pods::NodeId id : voters) {
      SimNode* n = cluster.node(id);
      if (!n) continue;
      auto& log = n->log;
      auto& [incarnation, mark] = marks[id];
      if (incarnation != cluster.incarnation(id)) {
        incarnation = cluster.incarnation(id);
        mark = 0;
      }
      if (log.commit_index() < mark) world.fail("the high-water mark of a server went back");
      // Entries a snapshot covers have no term here any more; the snapshot's own entry has.
      for (std::uint64_t i = std::max(mark + 1, log.snapshot_index()); i <= log.commit_index();
           ++i) {
        if (i == 0) continue;
        auto [it, fresh] = committed.try_emplace(i, log.term_at(i));
        if (!fresh && it->second != log.term_at(i)) {
          world.fail("a committed entry was lost at index " + std::to_string(i));
        }
      }
      mark = log.commit_index();
      if (!log.is_leader()) continue;
      auto [l, fresh] = leaders.try_emplace(log.term(), id);
      if (fresh) ++totals.elections;
      if (l->second != id) world.fail("two leaders in term " + std::to_string(log.term()));
      if (sim.now() >= heal && log.commit_index() > 0 &&
          log.term_at(log.commit_index()) == log.term()) {
        recovered = true;
      }
    }
  }
  for (pods::NodeId id : voters) {
    if (const SimNode* n = cluster.node(id)) {
      totals.snapshots += n->log.snapshots_taken();
      totals.installs += n->log.snapshots_installed();
    }
  }
  for (const auto& e : nemesis.log()) {
    if (e.what.rfind("crash ", 0) == 0) ++totals.crashes;
    if (e.what.rfind("pause ", 0) == 0) ++totals.pauses;
  }
  if (world.violation.empty() && !recovered) world.fail("no leader committed after the heal");
  if (!world.violation.empty()) return world.violation;
  for (const auto& [tag, id] : world.pending)
    world.history.unknown(id);
  const auto ops = world.history.operations();
  for (const auto& o : ops)
    totals.ok += o.output ? 1 : 0;
  const auto check = pods::sim::check_linearizable(pods::sim::KvModel{}, std::span(ops), 20s);
  if (check.verdict == pods::sim::Verdict::illegal) return "the history is not linearizable";
  if (check.verdict == pods::sim::Verdict::unknown) return "the checker ran out of time";
  return "";
}

// Runs `seeds` seeds on `nodes` servers; prints a summary and the verdict. Returns 0 on success.
inline int run_sim(std::uint64_t seeds, std::size_t nodes, bool stale_reads) {
  SimTotals totals;
  std::uint64_t failed = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    const std::string v = run_sim_seed(seed, nodes, totals, stale_reads);
    if (!v.empty()) {
      ++failed;
      std::printf("FAILED: seed %llu: %s\n", static_cast<unsigned long long>(seed), v.c_str());
    }
  }
  std::printf(
      "replicated_kv sim: %zu nodes, %llu seeds, %llu operations (%llu answered), "
      "%llu elections, %llu crashes, %llu pauses, partitions, loss, duplication, "
      "clock faults; %llu snapshots taken, %llu installed from a leader\n",
      nodes, static_cast<unsigned long long>(seeds),
      static_cast<unsigned long long>(totals.operations),
      static_cast<unsigned long long>(totals.ok), static_cast<unsigned long long>(totals.elections),
      static_cast<unsigned long long>(totals.crashes),
      static_cast<unsigned long long>(totals.pauses),
      static_cast<unsigned long long>(totals.snapshots),
      static_cast<unsigned long long>(totals.installs));
  if (failed == 0) {
    std::printf("verdict: linearizable and safe in every seed\n");
    return 0;
  }
  std::printf("verdict: FAILED (NOT linearizable or unsafe) in %llu seeds\n",
              static_cast<unsigned long long>(failed));
  return 1;
}

}  // namespace replicated_kv

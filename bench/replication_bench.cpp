// bench/replication_bench.cpp — ReplicatedLog on the simulator: commits per simulated second
// and per real second.
//
// Scenarios (one item = one committed command; counter commits_per_sim_s = commits per
// simulated second, so items_per_second is commits per real second of the simulation):
//   raft/sim/<servers>/<loss per mille>   3 or 5 servers on pods::sim, MemoryStorage, 1-10 ms
//                                          one-way delays, a client that keeps 256 commands of
//                                          32 bytes in flight at the leader; the first
//                                          simulated second (the election) is not counted,
//                                          then 2 simulated seconds are.
//   core/sim/3                             ConsistentCore on 3 servers, the same network
//                                          without loss: 256 puts of 32 bytes on 100 keys in
//                                          flight at the leader; counter puts_per_sim_s =
//                                          puts acknowledged per simulated second.
//   hwm/ack_advance/<voters>               HighWaterMark as a leader uses it per
//                                          AppendEntries reply: acknowledge(follower, index),
//                                          then advance() with the current-term check; the
//                                          followers answer in turn, each one index further.
//   baseline/map_ack_advance/<voters>      the same with the match indices in a
//                                          std::map<NodeId, index> copied into a vector and
//                                          std::nth_element for the majority's index (what a
//                                          leader without a fixed-size voter table does).
// No faults but the loss: this measures the log's own cost per command (encoding, the
// simulated network, storage appends and syncs, the state machine), not recovery. The peer
// for durable replication between processes is etcd, measured by scripts/bench_replication.sh.
#include "bench_support.hpp"

#include <pods/cluster/majority_quorum.hpp>
#include <pods/replication/consistent_core.hpp>
#include <pods/replication/high_water_mark.hpp>
#include <pods/replication/replicated_log.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/node_clock.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Msg = pods::ReplicatedLogMessage;
using Net = pods::sim::Network<Msg>;

// Counts what it applies; its snapshot is the count.
struct Counter {
  std::uint64_t applied = 0;
  void apply(std::uint64_t, std::span<const std::byte>) { ++applied; }
  std::vector<std::byte> snapshot() const { return {}; }
  void restore(std::span<const std::byte>) {}
};

struct Server {
  Counter machine;
  pods::ReplicatedLog<pods::MemoryStorage, Net::Endpoint, pods::sim::NodeClock, Counter> log;

  Server(const pods::sim::NodeContext<Msg>& ctx, std::vector<pods::NodeId> voters)
      : log(ctx.storage, ctx.endpoint, ctx.clock, machine,
            {.self = ctx.id, .voters = std::move(voters), .seed = ctx.random.fork(1).next()}) {}
  void receive(pods::NodeId from, Msg m) { log.receive(from, std::move(m)); }
  void tick() { log.tick(); }
  auto next_deadline() const { return log.next_deadline(); }
};

// Runs one cluster of S: `load(cluster, voters)` every simulated millisecond; returns how far
// `count(cluster, voters)` moved during the measured simulated seconds (after the first one,
// the election).
template <class S, class Load, class Count>
std::uint64_t run_cluster_of(std::size_t servers, double loss, std::uint64_t seed,
                             std::chrono::nanoseconds measured, Load load, Count count) {
  pods::sim::Simulation sim(seed);
  Net net(sim, {.loss = loss, .min_delay = 1ms, .max_delay = 10ms});
  std::vector<pods::NodeId> voters;
  for (pods::NodeId id = 1; id <= servers; ++id)
    voters.push_back(id);
  pods::sim::Cluster<S, Msg> cluster(net, [&](const pods::sim::NodeContext<Msg>& ctx) {
    return std::make_unique<S>(ctx, voters);
  });
  for (pods::NodeId id : voters)
    cluster.add(id);
  std::function<void()> client = [&] {
    load(cluster, voters);
    sim.schedule(1ms, client);
  };
  sim.schedule(1ms, client);
  sim.run_for(1s);  // the election
  const std::uint64_t before = count(cluster, voters);
  sim.run_for(measured);
  return count(cluster, voters) - before;
}

// Runs one cluster: returns the commits counted in the measured simulated seconds.
std::uint64_t run_cluster(std::size_t servers, double loss, std::uint64_t seed,
                          std::chrono::nanoseconds measured) {
  const std::vector<std::byte> command(32, std::byte{7});
  constexpr std::uint64_t in_flight = 256;
  auto load = [&](pods::sim::Cluster<Server, Msg>& cluster, const std::vector<pods::NodeId>& ids) {
    for (pods::NodeId id : ids) {
      Server* s = cluster.node(id);
      if (s == nullptr || !s->log.is_leader()) continue;
      while (s->log.last_index() - s->log.commit_index() < in_flight) {
        if (!s->log.propose(command)) break;
      }
    }
  };
  auto committed = [](pods::sim::Cluster<Server, Msg>& cluster,
                      const std::vector<pods::NodeId>& ids) {
    std::uint64_t most = 0;
    for (pods::NodeId id : ids) {
      if (Server* s = cluster.node(id)) most = std::max(most, s->machine.applied);
    }
    return most;
  };
  return run_cluster_of<Server>(servers, loss, seed, measured, load, committed);
}

void raft_sim(benchmark::State& state) {
  const auto servers = static_cast<std::size_t>(state.range(0));
  const double loss = static_cast<double>(state.range(1)) / 1000.0;
  const std::chrono::nanoseconds measured = 2s;
  std::uint64_t commits = 0;
  std::uint64_t seed = 1;
  for (auto _ : state) {
    const std::uint64_t n = run_cluster(servers, loss, seed++, measured);
    benchmark::DoNotOptimize(n);
    commits += n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(commits));
  state.counters["commits_per_sim_s"] = benchmark::Counter(
      static_cast<double>(commits) /
      (static_cast<double>(state.iterations()) * std::chrono::duration<double>(measured).count()));
}
BENCHMARK(raft_sim)
    ->Name("raft/sim")
    ->Args({3, 0})
    ->Args({5, 0})
    ->Args({3, 10})
    ->Args({5, 10})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

// A ConsistentCore server on the simulator.
struct CoreServer {
  pods::ConsistentCore<pods::MemoryStorage, Net::Endpoint, pods::sim::NodeClock> core;

  CoreServer(const pods::sim::NodeContext<Msg>& ctx, std::vector<pods::NodeId> voters)
      : core(ctx.storage, ctx.endpoint, ctx.clock,
             pods::ConsistentCoreOptions{.log = {.self = ctx.id,
                                                 .voters = std::move(voters),
                                                 .seed = ctx.random.fork(1).next()}}) {}
  void receive(pods::NodeId from, Msg m) { core.receive(from, std::move(m)); }
  void tick() { core.tick(); }
  auto next_deadline() const { return core.next_deadline(); }
};

// Puts acknowledged by the leader in the measured simulated seconds: 256 puts of 32 bytes in
// flight at the leader, on 100 keys.
void core_sim(benchmark::State& state) {
  const auto servers = static_cast<std::size_t>(state.range(0));
  const std::chrono::nanoseconds measured = 2s;
  std::uint64_t acked = 0;
  std::uint64_t seed = 1;
  for (auto _ : state) {
    std::uint64_t done = 0, in_flight = 0, next = 0;
    const std::vector<std::byte> value(32, std::byte{7});
    auto load = [&](pods::sim::Cluster<CoreServer, Msg>& cluster,
                    const std::vector<pods::NodeId>& ids) {
      for (pods::NodeId id : ids) {
        CoreServer* s = cluster.node(id);
        if (s == nullptr || !s->core.is_leader()) continue;
        while (in_flight < 256) {
          ++in_flight;
          s->core.put("key" + std::to_string(next++ % 100), value, {},
                      [&](pods::Outcome<pods::CoreWrite> w) {
                        --in_flight;
                        if (w && w->ok) ++done;
                      });
        }
        cluster.wake(id);
      }
    };
    auto count = [&](pods::sim::Cluster<CoreServer, Msg>&, const std::vector<pods::NodeId>&) {
      return done;
    };
    const std::uint64_t n = run_cluster_of<CoreServer>(servers, 0.0, seed++, measured, load, count);
    benchmark::DoNotOptimize(n);
    acked += n;
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(acked));
  state.counters["puts_per_sim_s"] = benchmark::Counter(
      static_cast<double>(acked) /
      (static_cast<double>(state.iterations()) * std::chrono::duration<double>(measured).count()));
}
BENCHMARK(core_sim)
    ->Name("core/sim")
    ->Args({3})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime()
    ->Iterations(3);

// ---- HighWaterMark: one leader's work per acknowledgement ----------------------------

std::vector<pods::NodeId> bench_voters(std::size_t n) {
  std::vector<pods::NodeId> v;
  for (pods::NodeId id = 1; id <= n; ++id)
    v.push_back(id);
  return v;
}

void hwm_ack_advance(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  pods::MajorityQuorum quorum(bench_voters(n));
  pods::HighWaterMark mark(quorum);
  const std::uint64_t term_start = 1;  // every index is of the current term
  std::uint64_t index = 0;
  pods::NodeId next = 2;  // the followers answer in turn; the leader (1) acknowledges too
  for (auto _ : state) {
    ++index;
    mark.acknowledge(1, index);
    mark.acknowledge(next, index);
    next = next == n ? 2 : next + 1;
    benchmark::DoNotOptimize(mark.advance([&](std::uint64_t c) { return c >= term_start; }));
  }
  if (state.iterations() > 16 && mark.value() == 0) state.SkipWithError("the mark never moved");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(hwm_ack_advance)->Name("hwm/ack_advance")->Arg(3)->Arg(5)->Arg(7);

void baseline_map_ack_advance(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::map<pods::NodeId, std::uint64_t> match;
  for (pods::NodeId id : bench_voters(n))
    match[id] = 0;
  const std::uint64_t term_start = 1;
  std::uint64_t index = 0, mark = 0;
  pods::NodeId next = 2;
  for (auto _ : state) {
    ++index;
    match[1] = std::max(match[1], index);
    match[next] = std::max(match[next], index);
    next = next == n ? 2 : next + 1;
    std::vector<std::uint64_t> v;
    v.reserve(n);
    for (const auto& [id, m] : match)
      v.push_back(m);
    const auto kth = v.begin() + static_cast<std::ptrdiff_t>(n - (n / 2 + 1));
    std::nth_element(v.begin(), kth, v.end());
    const bool moved = *kth > mark && *kth >= term_start;
    if (moved) mark = *kth;
    benchmark::DoNotOptimize(moved);
  }
  if (state.iterations() > 16 && mark == 0) state.SkipWithError("the mark never moved");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(baseline_map_ack_advance)->Name("baseline/map_ack_advance")->Arg(3)->Arg(5)->Arg(7);

[[maybe_unused]] const bool comparisons_declared = [] {
  for (const char* n : {"3", "5", "7"}) {
    std::string label = "HighWaterMark acknowledge + advance, ";
    label += n;
    label += " voters, vs std::map + nth_element";
    pods::bench::compare(label, std::string("hwm/ack_advance/") + n,
                         std::string("baseline/map_ack_advance/") + n, "");
  }
  return true;
}();

}  // namespace

PODS_BENCH_MAIN()

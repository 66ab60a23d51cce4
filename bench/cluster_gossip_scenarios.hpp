// bench/cluster_gossip_scenarios.hpp — GossipDissemination: rounds to converge and bytes per
// node per round, for 100, 1 000 and 10 000 simulated nodes, beside log2(n).
//
// Included at the end of bench/cluster_bench.cpp. Each scenario builds n GossipDissemination
// nodes (fanout 3, gossip every 200 ms, SWIM probes every second) on a sim::Network with
// delays uniform in [1 ms, 10 ms], every node seeded with every other, runs 1 s of virtual
// time, then has node 1 put one key and runs until every node holds it, checking every 10 ms.
// It reports the rounds that took (virtual time / gossip interval), log2(n), their ratio, and
// the bytes every node sent per round over that window (every message encoded with
// gossip::MessageCodec: digests, syncs, pings and acks). One iteration is one whole run; the
// wall time it reports is the simulator's, not the protocol's. Peers: hashicorp/memberlist is
// Go and runs on real sockets, so it cannot share this simulated network; the docs page
// compares designs instead, and log2(n) is the yardstick the literature gives.
#pragma once

#include <pods/cluster/gossip_dissemination.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <vector>

namespace pods_gossip_bench {

// A network endpoint that adds the encoded size of every message to a shared total.
struct ByteCountingEndpoint {
  pods::sim::Network<pods::gossip::Message>::Endpoint endpoint;
  std::shared_ptr<std::uint64_t> bytes;
  void send(pods::NodeId to, pods::gossip::Message m) {
    pods::Buffer out;
    pods::gossip::MessageCodec{}.encode(m, out);
    *bytes += out.size();
    endpoint.send(to, std::move(m));
  }
};

using Node = pods::GossipDissemination<ByteCountingEndpoint, pods::sim::NodeClock>;

inline void gossip_converge(benchmark::State& state) {
  using namespace std::chrono_literals;
  const auto n = static_cast<std::size_t>(state.range(0));
  double rounds = 0, bytes_per_node_round = 0;
  for (auto _ : state) {
    pods::sim::Simulation sim(42);
    pods::sim::Network<pods::gossip::Message> net(sim, {.min_delay = 1ms, .max_delay = 10ms});
    auto bytes = std::make_shared<std::uint64_t>(0);
    pods::GossipOptions options;
    options.fanout = 3;
    options.gossip_interval = 200ms;
    std::vector<pods::NodeId> all;
    for (pods::NodeId id = 1; id <= n; ++id)
      all.push_back(id);
    pods::sim::Cluster<Node, pods::gossip::Message> cluster(
        net,
        [&](const pods::sim::NodeContext<pods::gossip::Message>& ctx) {
          pods::GossipOptions o = options;
          o.seeds.reserve(n - 1);
          for (pods::NodeId id : all)
            if (id != ctx.id) o.seeds.push_back(id);
          pods::Random r = ctx.random;
          o.seed = r.next();
          return std::make_unique<Node>(ctx.id, ByteCountingEndpoint{ctx.endpoint, bytes},
                                        ctx.clock, std::move(o));
        },
        {.tick_interval = 0s});
    for (pods::NodeId id = 1; id <= n; ++id)
      cluster.add(id);
    sim.run_for(1s);
    const std::uint64_t bytes_before = *bytes;
    const auto start = sim.now();
    cluster.node(1)->put("news", std::vector<std::byte>(16));
    auto everyone = [&] {
      for (pods::NodeId id = 1; id <= n; ++id)
        if (!cluster.node(id)->get(1, "news")) return false;
      return true;
    };
    while (!everyone() && sim.now() - start < 60s)
      sim.run_for(10ms);
    rounds = std::chrono::duration<double>(sim.now() - start) /
             std::chrono::duration<double>(options.gossip_interval);
    bytes_per_node_round =
        static_cast<double>(*bytes - bytes_before) / static_cast<double>(n) / rounds;
  }
  const double log2n = std::log2(static_cast<double>(n));
  state.counters["rounds"] = rounds;
  state.counters["log2_n"] = log2n;
  state.counters["rounds_per_log2_n"] = rounds / log2n;
  state.counters["bytes_per_node_round"] = bytes_per_node_round;
  std::printf(
      "gossip n=%zu: converged in %.2f rounds; log2(n) = %.2f; ratio %.2f; %.0f bytes "
      "sent per node per round\n",
      n, rounds, log2n, rounds / log2n, bytes_per_node_round);
}

}  // namespace pods_gossip_bench

BENCHMARK(pods_gossip_bench::gossip_converge)
    ->Name("cluster/gossip_converge")
    ->Arg(100)
    ->Arg(1000)
    ->Arg(10000)
    ->Iterations(1)
    ->Repetitions(1)
    ->Unit(benchmark::kMillisecond);

// bench/sim_network_scenarios.hpp — simulated message deliveries per second (pods::sim).
//
// Included once by bench/sim_bench.cpp. Each scenario runs a Simulation with a Network<Msg>
// of N nodes: every delivery makes its receiver send one message to a peer chosen by a
// seeded generator, so a constant number of messages (4 per node, at least 64) is in flight
// and the event queue holds that many events. Links delay uniformly in [1 ms, 5 ms] (so the
// queue reorders) with 1% loss and 1% duplication; a lost message is replaced so the load
// stays constant. One item is one delivery: a send (fault draws, one event scheduled), the
// event popped, the handler called. Peers: none ship a deterministic simulator as a library
// (etcd's raft test network is not a reusable component), so the figure stands alone
// against the 1 million deliveries per second target.
#pragma once

#include <pods/policy/random.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace pods_sim_bench {

// A small protocol message: a kind, a term and an index, as a heartbeat or an ack carries.
struct Msg {
  std::uint32_t kind = 0;
  std::uint64_t term = 0;
  std::uint64_t index = 0;
};

inline void sim_deliveries(benchmark::State& state) {
  using namespace std::chrono_literals;
  const auto nodes = static_cast<pods::NodeId>(state.range(0));
  pods::sim::Simulation sim(42);
  pods::sim::Network<Msg> net(
      sim, {.loss = 0.01, .duplicate = 0.01, .min_delay = 1ms, .max_delay = 5ms});
  pods::Random pick(7);
  std::vector<pods::sim::Network<Msg>::Endpoint> endpoints;
  for (pods::NodeId id = 0; id < nodes; ++id)
    endpoints.push_back(net.endpoint(id));
  auto peer = [&](pods::NodeId self) {
    const pods::NodeId other = pick.below(nodes - 1);
    return other >= self ? other + 1 : other;
  };
  for (pods::NodeId id = 0; id < nodes; ++id) {
    net.on_deliver(id, [&, id](pods::NodeId, Msg m) {
      ++m.index;
      endpoints[id].send(peer(id), m);
    });
  }
  const std::uint64_t in_flight = std::max<std::uint64_t>(64, 4 * nodes);
  for (std::uint64_t i = 0; i < in_flight; ++i) {
    const pods::NodeId from = i % nodes;
    endpoints[from].send(peer(from), Msg{1, 1, 0});
  }
  constexpr std::uint64_t batch = 10'000;
  for (auto _ : state) {
    const std::uint64_t target = net.stats().delivered + batch;
    while (net.stats().delivered < target) {
      sim.step();
      // keep the load constant: replace what was lost
      const std::uint64_t now_in_flight = net.in_flight();
      for (std::uint64_t i = now_in_flight; i < in_flight; ++i) {
        const pods::NodeId from = pick.below(nodes);
        endpoints[from].send(peer(from), Msg{1, 1, 0});
      }
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * batch));
  state.counters["events_queued"] = static_cast<double>(sim.pending());
}

}  // namespace pods_sim_bench

// sim/deliveries/5: five nodes; sim/deliveries/1000: a thousand (a deeper event queue).
BENCHMARK(pods_sim_bench::sim_deliveries)->Name("sim/deliveries")->Arg(5)->Arg(1000);

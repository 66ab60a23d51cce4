// bench/bank_scenarios.hpp — transfers between accounts on different partitions as two-phase
// commits: transfers per simulated and per real second, and the commit latency in simulated
// round trips beside the protocol's floor.
//
// Included into bench/partitioning_bench.cpp. Nine accounts live on three partition nodes (as
// in examples/bank: by FixedPartitions, account i on node 2 + i % 3), each partition a
// TwoPhaseParticipant over a MemoryStorage whose Apply adds the transfer's delta to the account;
// node 1 is the TwoPhaseCoordinator. A transfer moves 1 from account a to account b (on another
// partition): two branches, each locking its account. Scenarios:
//   bank/transfers_sim/<clients>   on a sim::Network with one-way delays uniform in [1, 2] ms
//       and no faults, <clients> closed-loop clients (each begins its next transfer when the
//       last one's outcome arrives) for 1 s of virtual time; reports committed transfers per
//       simulated second, the abort share (lock conflicts) and, as items/s, committed
//       transfers per second of the simulator's wall time.
//   bank/transfers_in_process      the same blocks wired through in-memory queues (no
//       simulator, no delays): one transfer at a time, delivered to quiescence; items/s is
//       transfers per real second, every sync a MemoryStorage sync.
//   bank/commit_latency            one transfer at a time on links with a fixed 1 ms one-way
//       delay: the time until the client is told committed and until every acknowledgement is
//       in, in round trips, beside the floor of 2 round trips (plus 2 durable writes, which
//       take no virtual time here).
//   bank/example                   examples/bank itself for one seed: 8 simulated seconds of
//       transfers and snapshot reads under the nemesis (crashes with torn writes,
//       partitions, pauses, lossy links) with skew within the bound; reports acknowledged
//       transfers and snapshots per simulated second and, as items/s, acknowledged transfers
//       per second of the simulator's wall time.
// Each checks that the total balance is unchanged and aborts the run otherwise.
#pragma once

#include "../examples/bank/bank.hpp"

#include <pods/policy/wire.hpp>
#include <pods/replication/two_phase_commit.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace pods_bank_bench {

using namespace std::chrono_literals;
using pods::NodeId;
using pods::TwoPhaseMessage;

constexpr NodeId kCoordinator = 1;
constexpr std::uint64_t kAccounts = 9;
constexpr std::int64_t kOpening = 100;

inline NodeId partition_of(std::uint64_t account) {
  return 2 + account % 3;
}

// The branch of a transfer at one partition: lock the account, add `delta` on commit.
inline pods::TwoPhaseBranch branch(std::uint64_t account, std::int64_t delta) {
  pods::TwoPhaseBranch b;
  b.participant = partition_of(account);
  b.work.keys = {"account/" + std::to_string(account)};
  pods::wire::Writer w(b.work.payload);
  w.u64(account);
  w.i64(delta);
  return b;
}

// The balances of one partition, changed only by committed transfers.
struct Balances {
  std::map<std::uint64_t, std::int64_t> of;
  void apply(const pods::TwoPhaseWork& work) {
    pods::wire::Reader r(work.payload, "bank transfer");
    const std::uint64_t account = r.u64();
    of[account] += r.i64();
  }
};

inline void check_total(const std::map<NodeId, Balances>& parts) {
  std::int64_t total = 0;
  for (const auto& [node, b] : parts)
    for (const auto& [account, balance] : b.of)
      total += balance;
  if (total != static_cast<std::int64_t>(kAccounts) * kOpening) {
    std::fprintf(stderr, "bank: the total balance changed to %lld\n",
                 static_cast<long long>(total));
    std::abort();
  }
}

using SimNet = pods::sim::Network<TwoPhaseMessage>;
using SimCoordinator =
    pods::TwoPhaseCoordinator<SimNet::Endpoint, pods::sim::NodeClock, pods::MemoryStorage>;
using SimParticipant =
    pods::TwoPhaseParticipant<SimNet::Endpoint, pods::sim::NodeClock, pods::MemoryStorage>;

struct Bank;

// A node of the simulated bank: the coordinator or one partition.
struct SimNode {
  SimNode(const pods::sim::NodeContext<TwoPhaseMessage>& ctx, Bank& bank);
  void receive(NodeId from, TwoPhaseMessage m) {
    if (coordinator) {
      coordinator->receive(from, std::move(m));
    } else {
      participant->receive(from, std::move(m));
    }
  }
  void tick() {
    if (coordinator) {
      coordinator->tick();
    } else {
      participant->tick();
    }
  }
  std::optional<pods::sim::NodeClock::time_point> next_deadline() const {
    return coordinator ? coordinator->next_deadline() : participant->next_deadline();
  }
  std::unique_ptr<SimCoordinator> coordinator;
  std::unique_ptr<SimParticipant> participant;
};

struct Bank {
  std::map<NodeId, Balances> parts;
};

inline SimNode::SimNode(const pods::sim::NodeContext<TwoPhaseMessage>& ctx, Bank& bank) {
  if (ctx.id == kCoordinator) {
    coordinator = std::make_unique<SimCoordinator>(
        ctx.endpoint, ctx.clock, ctx.storage,
        pods::TwoPhaseCoordinatorOptions{.id = kCoordinator, .participants = {2, 3, 4}});
  } else {
    Balances* b = &bank.parts[ctx.id];
    participant = std::make_unique<SimParticipant>(
        ctx.endpoint, ctx.clock, ctx.storage, pods::TwoPhaseParticipantOptions{.id = ctx.id},
        [b](pods::TxnId, const pods::TwoPhaseWork& w) { b->apply(w); });
  }
}

using SimCluster = pods::sim::Cluster<SimNode, TwoPhaseMessage>;

inline Bank opened_bank() {
  Bank bank;
  for (std::uint64_t a = 0; a < kAccounts; ++a)
    bank.parts[partition_of(a)].of[a] = kOpening;
  return bank;
}

// Returns a transfer of 1 between two accounts on different partitions, drawn from `random`.
inline std::vector<pods::TwoPhaseBranch> transfer(pods::Random& random) {
  const std::uint64_t from = random.below(kAccounts);
  std::uint64_t to = random.below(kAccounts);
  while (partition_of(to) == partition_of(from))
    to = random.below(kAccounts);
  return {branch(from, -1), branch(to, +1)};
}

inline void transfers_sim(benchmark::State& state) {
  const auto clients = static_cast<int>(state.range(0));
  std::uint64_t committed = 0, aborted = 0;
  for (auto _ : state) {
    pods::sim::Simulation sim(7);
    SimNet net(sim, {.min_delay = 1ms, .max_delay = 2ms});
    Bank bank = opened_bank();
    SimCluster cluster(
        net, [&](const SimCluster::Context& ctx) { return std::make_unique<SimNode>(ctx, bank); });
    for (NodeId id = 1; id <= 4; ++id)
      cluster.add(id);
    pods::Random random(11);
    bool open = true;
    std::function<void()> next = [&] {
      if (!open) return;
      cluster.node(kCoordinator)
          ->coordinator->begin(transfer(random), [&](pods::TxnId, pods::TwoPhaseOutcome o) {
            ++(o == pods::TwoPhaseOutcome::committed ? committed : aborted);
            sim.schedule(0ns, [&] { next(); });
          });
    };
    for (int c = 0; c < clients; ++c)
      next();
    sim.run_for(1s);
    open = false;
    sim.run_for(1s);  // let the last transfers finish
    check_total(bank.parts);
  }
  const auto runs = static_cast<double>(state.iterations());
  state.counters["committed_per_sim_s"] = static_cast<double>(committed) / runs;
  state.counters["abort_share"] =
      static_cast<double>(aborted) / static_cast<double>(committed + aborted);
  state.SetItemsProcessed(static_cast<std::int64_t>(committed));
}

// A transport into one in-memory queue shared by every node.
struct Queue {
  struct Envelope {
    NodeId from, to;
    TwoPhaseMessage message;
  };
  NodeId self = 0;
  std::shared_ptr<std::deque<Envelope>> queue;
  void send(NodeId to, TwoPhaseMessage m) { queue->push_back({self, to, std::move(m)}); }
};

inline void transfers_in_process(benchmark::State& state) {
  using Coordinator = pods::TwoPhaseCoordinator<Queue, pods::ManualClock, pods::MemoryStorage>;
  using Participant = pods::TwoPhaseParticipant<Queue, pods::ManualClock, pods::MemoryStorage>;
  auto queue = std::make_shared<std::deque<Queue::Envelope>>();
  pods::ManualClock clock;
  Bank bank = opened_bank();
  Coordinator coordinator(Queue{kCoordinator, queue}, clock, pods::MemoryStorage{},
                          {.id = kCoordinator, .participants = {2, 3, 4}});
  std::map<NodeId, std::unique_ptr<Participant>> parts;
  for (NodeId id = 2; id <= 4; ++id) {
    Balances* b = &bank.parts[id];
    parts[id] = std::make_unique<Participant>(
        Queue{id, queue}, clock, pods::MemoryStorage{}, pods::TwoPhaseParticipantOptions{.id = id},
        [b](pods::TxnId, const pods::TwoPhaseWork& w) { b->apply(w); });
  }
  pods::Random random(3);
  std::uint64_t committed = 0;
  for (auto _ : state) {
    coordinator.begin(transfer(random), [&](pods::TxnId, pods::TwoPhaseOutcome o) {
      committed += o == pods::TwoPhaseOutcome::committed ? 1 : 0;
    });
    while (!queue->empty()) {
      Queue::Envelope e = std::move(queue->front());
      queue->pop_front();
      if (e.to == kCoordinator) {
        coordinator.receive(e.from, std::move(e.message));
      } else {
        parts.at(e.to)->receive(e.from, std::move(e.message));
      }
    }
  }
  check_total(bank.parts);
  state.SetItemsProcessed(static_cast<std::int64_t>(committed));
}

inline void commit_latency(benchmark::State& state) {
  double told_rtt = 0, finished_rtt = 0;
  std::uint64_t samples = 0;
  for (auto _ : state) {
    pods::sim::Simulation sim(5);
    SimNet net(sim, {.min_delay = 1ms, .max_delay = 1ms});
    Bank bank = opened_bank();
    SimCluster cluster(
        net, [&](const SimCluster::Context& ctx) { return std::make_unique<SimNode>(ctx, bank); });
    for (NodeId id = 1; id <= 4; ++id)
      cluster.add(id);
    pods::Random random(9);
    for (int i = 0; i < 100; ++i) {
      SimCoordinator& c = *cluster.node(kCoordinator)->coordinator;
      const auto start = sim.now();
      c.begin(transfer(random), [&](pods::TxnId, pods::TwoPhaseOutcome) {
        told_rtt += static_cast<double>((sim.now() - start).count()) / 2e6;
      });
      while (c.preparing() + c.committing() != 0 && sim.step()) {
      }
      finished_rtt += static_cast<double>((sim.now() - start).count()) / 2e6;
      ++samples;
      sim.run_for(5ms);
    }
    check_total(bank.parts);
  }
  state.counters["told_round_trips"] = told_rtt / static_cast<double>(samples);
  state.counters["finished_round_trips"] = finished_rtt / static_cast<double>(samples);
  state.counters["floor_round_trips"] = 2;
}

inline void example(benchmark::State& state) {
  std::uint64_t acknowledged = 0, snapshots = 0;
  for (auto _ : state) {
    const ::bank::Result r = ::bank::run(1, {.epsilon = 20ms});
    if (!r.violation.empty() || r.missed != 0) {
      std::fprintf(stderr, "bank: %s\n", r.violation.c_str());
      std::abort();
    }
    acknowledged += r.acknowledged;
    snapshots += r.snapshots;
  }
  const double seconds = 8.0 * static_cast<double>(state.iterations());
  state.counters["acknowledged_per_sim_s"] = static_cast<double>(acknowledged) / seconds;
  state.counters["snapshots_per_sim_s"] = static_cast<double>(snapshots) / seconds;
  state.SetItemsProcessed(static_cast<std::int64_t>(acknowledged));
}

BENCHMARK(transfers_sim)
    ->Name("bank/transfers_sim")
    ->Arg(1)
    ->Arg(4)
    ->Arg(16)
    ->Unit(benchmark::kMillisecond);
BENCHMARK(transfers_in_process)->Name("bank/transfers_in_process");
BENCHMARK(commit_latency)->Name("bank/commit_latency")->Unit(benchmark::kMillisecond);
BENCHMARK(example)->Name("bank/example")->Unit(benchmark::kMillisecond);

}  // namespace pods_bank_bench

// Shared by the election tests (bully, ring, emergent leader): a simulated cluster of election
// nodes, the seed count, and the checks run at every step.
#pragma once

#include <pods/policy/transport.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace election_test {

using namespace std::chrono_literals;

// Returns how many seeds a simulator test runs: `ci` unless the PODS_SEEDS environment
// variable says otherwise (PODS_SEEDS=1000 for a long run).
inline std::uint64_t seeds(std::uint64_t ci) {
  const char* s = std::getenv("PODS_SEEDS");
  if (s == nullptr || *s == '\0') return ci;
  return std::strtoull(s, nullptr, 10);
}

// Returns the ids 1..n.
inline std::vector<pods::NodeId> ids(std::size_t n) {
  std::vector<pods::NodeId> out;
  for (pods::NodeId id = 1; id <= n; ++id)
    out.push_back(id);
  return out;
}

// Faults that keep the timing assumptions of the election algorithms: crashes with restarts,
// duplicates, delay spikes up to 40 ms and clock drift; no loss, partitions or pauses.
inline pods::sim::NemesisOptions crash_faults() {
  pods::sim::NemesisOptions o;
  o.duration = 20s;
  o.quiet = 5s;
  o.partitions = o.one_way = o.isolation = o.pauses = o.clock_steps = o.loss = false;
  o.spike_max_delay = 40ms;
  return o;
}

// Every fault the nemesis has, healed 5 s before the end of a 20 s run.
inline pods::sim::NemesisOptions all_faults() {
  pods::sim::NemesisOptions o;
  o.duration = 20s;
  o.quiet = 5s;
  return o;
}

// A simulated cluster of nodes 1..n of type N exchanging M, links delaying 1 to 5 ms.
template <class N, class M>
struct World {
  using Cluster = pods::sim::Cluster<N, M>;

  World(std::uint64_t seed, std::size_t n, typename Cluster::Factory factory)
      : sim(seed),
        net(sim, {.min_delay = 1ms, .max_delay = 5ms}),
        cluster(net, std::move(factory)) {
    for (pods::NodeId id : election_test::ids(n))
      cluster.add(id);
  }

  // Calls f(id, node) for every live node.
  template <class F>
  void each(F&& f) {
    for (pods::NodeId id : cluster.ids())
      if (N* node = cluster.node(id)) f(id, *node);
  }

  // Runs for `d`, calling check() after every event.
  template <class F>
  void run(std::chrono::nanoseconds d, F&& check) {
    sim.run_until(
        [&] {
          check();
          return false;
        },
        d);
  }

  std::chrono::nanoseconds now() const { return sim.now().time_since_epoch(); }

  pods::sim::Simulation sim;
  pods::sim::Network<M> net;
  Cluster cluster;
};

// Tracks a per-incarnation value that must never decrease; returns false when it did.
class Monotone {
 public:
  bool update(pods::NodeId id, std::uint64_t incarnation, std::uint64_t value) {
    auto [it, fresh] = last_.try_emplace({id, incarnation}, value);
    if (fresh) return true;
    if (value < it->second) return false;
    it->second = value;
    return true;
  }

 private:
  std::map<std::pair<pods::NodeId, std::uint64_t>, std::uint64_t> last_;
};

// What a checker found: the first violation (empty when none), and a measure of the run.
struct Verdict {
  std::string violation;
  std::size_t epochs_led = 0;          // check_until_heal: distinct epochs some node led
  std::chrono::nanoseconds settled{};  // check_settled: how long after the heal it settled
};

// Asserts that a checker found nothing, naming the seed and the violation otherwise.
inline void check_clean(const Verdict& v, std::uint64_t seed) {
  INFO("seed " << seed << ": " << v.violation);
  CHECK(v.violation.empty());
}

// Runs `w` to the nemesis's heal, checking at every step that no live node's leader_epoch() or
// epoch() goes down within one incarnation and, when `unique_per_epoch`, that no two live
// nodes lead the same epoch.
template <class W, class Nemesis>
Verdict check_until_heal(W& w, Nemesis& nemesis, bool unique_per_epoch) {
  Monotone leader_epochs, epochs;
  std::set<std::uint64_t> led;
  Verdict v;
  auto fail = [&](const std::string& what) {
    if (!v.violation.empty()) return;
    v.violation = "at " + std::to_string(w.now().count() / 1000000) + " ms: " + what + "\n" +
                  nemesis.describe();
  };
  w.run(nemesis.heal_at().time_since_epoch() - w.now(), [&] {
    std::map<std::uint64_t, pods::NodeId> leader_of;
    w.each([&](pods::NodeId id, auto& n) {
      const std::uint64_t inc = w.cluster.incarnation(id);
      if (!leader_epochs.update(id, inc, n.leader_epoch()) || !epochs.update(id, inc, n.epoch())) {
        fail("node " + std::to_string(id) + " went back to an older epoch");
      }
      if (!n.is_leader()) return;
      led.insert(n.leader_epoch());
      auto [it, fresh] = leader_of.emplace(n.leader_epoch(), id);
      if (!fresh && unique_per_epoch) {
        fail("nodes " + std::to_string(it->second) + " and " + std::to_string(id) +
             " both lead epoch " + std::to_string(n.leader_epoch()));
      }
    });
  });
  v.epochs_led = led.size();
  return v;
}

// Runs `w` to the nemesis's end, checking at every step from heal + bound on that `highest`
// leads and every live node follows it; measures when that began to hold for good.
template <class W, class Nemesis>
Verdict check_settled(W& w, Nemesis& nemesis, pods::NodeId highest,
                      std::chrono::nanoseconds bound) {
  const auto heal = nemesis.heal_at().time_since_epoch();
  std::chrono::nanoseconds last_bad = heal;
  Verdict v;
  w.run(nemesis.end_at().time_since_epoch() - w.now(), [&] {
    if (w.now() < heal) return;
    bool ok = true;
    w.each([&](pods::NodeId id, auto& n) {
      ok = ok && n.leader() == highest && n.is_leader() == (id == highest);
    });
    if (ok) return;
    last_bad = w.now();
    if (w.now() > heal + bound && v.violation.empty()) {
      v.violation = "not settled " + std::to_string((w.now() - heal).count() / 1000000) +
                    " ms after the heal\n" + nemesis.describe();
    }
  });
  v.settled = last_bad - heal;
  return v;
}

// Totals over many seeded runs.
struct Summary {
  std::size_t epochs_led = 0;        // summed over the runs
  std::chrono::nanoseconds worst{};  // the slowest settling after the heal
  std::uint64_t violating = 0;       // runs in which some check failed
};

// Runs seeds 1..seeds of a 5-node World<N, M> built by `factory` under `faults`: checks every
// step to the heal (per-epoch uniqueness when `unique_per_epoch`) and every step after it
// (settled on node 5 by `bound`). Each violation fails the test case unless `expect_violations`
// (for a deliberately broken rule), when they are only counted.
template <class N, class M>
Summary check_runs(std::uint64_t seeds, const typename World<N, M>::Cluster::Factory& factory,
                   const pods::sim::NemesisOptions& faults, bool unique_per_epoch,
                   std::chrono::nanoseconds bound, bool expect_violations = false) {
  Summary total;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    World<N, M> w(seed, 5, factory);
    pods::sim::Nemesis nemesis(w.cluster, faults);
    const Verdict during = check_until_heal(w, nemesis, unique_per_epoch);
    if (expect_violations) {
      total.violating += during.violation.empty() ? 0 : 1;
      continue;
    }
    check_clean(during, seed);
    const Verdict after = check_settled(w, nemesis, 5, bound);
    check_clean(after, seed);
    total.epochs_led += during.epochs_led;
    total.worst = std::max(total.worst, after.settled);
    total.violating += during.violation.empty() && after.violation.empty() ? 0 : 1;
  }
  return total;
}

// Partitions a settled 5-node cluster whose leader is 5 into {1, 2} | {3, 4, 5}: checks that
// each side follows its own highest id (2 and 5), then that the heal leaves 5 alone.
template <class W>
void check_partition_sides(W& w, std::chrono::nanoseconds settle, std::chrono::nanoseconds split,
                           std::chrono::nanoseconds heal) {
  w.sim.run_for(settle);
  w.each([](pods::NodeId, auto& n) { REQUIRE(n.leader() == pods::NodeId{5}); });
  w.net.partition({{1, 2}, {3, 4, 5}});
  w.sim.run_for(split);
  std::vector<pods::NodeId> leaders;
  w.each([&](pods::NodeId id, auto& n) {
    if (n.is_leader()) leaders.push_back(id);
    CHECK(n.leader() == (id <= 2 ? pods::NodeId{2} : pods::NodeId{5}));
  });
  CHECK(leaders == std::vector<pods::NodeId>{2, 5});
  w.net.heal();
  w.sim.run_for(heal);
  leaders.clear();
  w.each([&](pods::NodeId id, auto& n) {
    if (n.is_leader()) leaders.push_back(id);
    CHECK(n.leader() == pods::NodeId{5});
  });
  CHECK(leaders == std::vector<pods::NodeId>{5});
}

}  // namespace election_test

// bench/cluster_bench.cpp — the cluster patterns' hot paths beside the code people write
// without them.
//
// Failure detectors: the cost of recording one heartbeat and of one query, for
// PhiAccrualDetector (a full window of 1000 intervals, arrivals 100 ms apart with 0-20 ms of
// jitter, precomputed) and TimeoutDetector. No peer library ships a C++ phi accrual detector
// (Akka's and Cassandra's are JVM code), so the figures stand beside the timeout detector.
// Majority quorum: the index a majority has reached, for 3, 5 and 7 voters, cycling through 64
// precomputed match-index sets (so branches are not learned), beside the usual code: copy the
// match indices into a std::vector and std::nth_element (or std::sort) it, and a stack array
// with std::sort (which shows how much of the gap is the allocation).
#include <pods/cluster/heartbeat.hpp>
#include <pods/cluster/majority_quorum.hpp>
#include <pods/policy/random.hpp>

#include "bench_support.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using Clock = pods::ManualClock;
using Time = Clock::time_point;

// Arrival times 100 ms apart plus 0-20 ms of jitter, cycling through 4096 of them (shifted by
// a whole cycle each pass so time only moves forward).
struct Arrivals {
  std::vector<std::int64_t> offsets;
  std::int64_t cycle = 0;
  Arrivals() {
    pods::Random random(7);
    std::int64_t t = 0;
    for (int i = 0; i < 4096; ++i) {
      t += 100'000'000;
      offsets.push_back(t + random.between<std::int64_t>(0, 20'000'000));
    }
    cycle = t + 100'000'000;
  }
};
const Arrivals arrivals;

template <class D>
D warmed(D d) {
  for (int i = 0; i < 1000; ++i)
    d.heartbeat(Time(std::chrono::nanoseconds(arrivals.offsets[static_cast<std::size_t>(i)])));
  return d;
}

pods::PhiAccrualDetector<Clock> phi_detector() {
  return warmed(pods::PhiAccrualDetector<Clock>(
      {.threshold = 8, .window = 1000, .min_std_deviation = 10ms, .first_interval = 100ms}));
}

template <class D>
void detector_heartbeat(benchmark::State& state, D d) {
  std::size_t i = 1000;
  std::int64_t base = 0;
  for (auto _ : state) {
    if (i == arrivals.offsets.size()) {
      i = 0;
      base += arrivals.cycle;
    }
    d.heartbeat(Time(std::chrono::nanoseconds(base + arrivals.offsets[i++])));
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void phi_heartbeat(benchmark::State& state) {
  detector_heartbeat(state, phi_detector());
}
BENCHMARK(phi_heartbeat)->Name("phi_accrual/heartbeat");

void timeout_heartbeat(benchmark::State& state) {
  detector_heartbeat(state, warmed(pods::TimeoutDetector<Clock>({.interval = 100ms})));
}
BENCHMARK(timeout_heartbeat)->Name("timeout/heartbeat");

// Query times spread over the silence after the last beat: 0 to 1 s in 64 steps.
template <class D, class Q>
void detector_query(benchmark::State& state, const D& d, Q query) {
  std::array<Time, 64> probes;
  for (std::size_t k = 0; k < probes.size(); ++k) {
    probes[k] =
        d.last_heartbeat() + std::chrono::nanoseconds(static_cast<std::int64_t>(k) * 15'625'000);
  }
  std::size_t k = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(query(d, probes[k++ & 63]));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

void phi_phi(benchmark::State& state) {
  detector_query(state, phi_detector(), [](const auto& d, Time t) { return d.phi(t); });
}
BENCHMARK(phi_phi)->Name("phi_accrual/phi");

void phi_suspected(benchmark::State& state) {
  detector_query(state, phi_detector(), [](const auto& d, Time t) { return d.suspected(t); });
}
BENCHMARK(phi_suspected)->Name("phi_accrual/suspected");

void timeout_suspected(benchmark::State& state) {
  detector_query(state, warmed(pods::TimeoutDetector<Clock>({.interval = 100ms})),
                 [](const auto& d, Time t) { return d.suspected(t); });
}
BENCHMARK(timeout_suspected)->Name("timeout/suspected");

// ---- Majority quorum -------------------------------------------------------------------------

// 64 sets of match indices for voters 1..n (index 0 unused), around a moving commit point.
struct MatchSets {
  std::vector<std::array<std::uint64_t, 8>> sets;
  explicit MatchSets(std::size_t n) {
    pods::Random random(n);
    for (int s = 0; s < 64; ++s) {
      std::array<std::uint64_t, 8> m{};
      const std::uint64_t base = 1000 + random.below(1000);
      for (std::size_t id = 1; id <= n; ++id)
        m[id] = base + random.below(64);
      sets.push_back(m);
    }
  }
};

void quorum_committed(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<pods::NodeId> voters;
  for (pods::NodeId id = 1; id <= n; ++id)
    voters.push_back(id);
  const pods::MajorityQuorum quorum(voters);
  const MatchSets match(n);
  std::size_t k = 0;
  for (auto _ : state) {
    const auto& m = match.sets[k++ & 63];
    benchmark::DoNotOptimize(quorum.committed_index([&m](pods::NodeId id) { return m[id]; }));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(quorum_committed)->Name("quorum/committed_index")->Arg(3)->Arg(5)->Arg(7);

void joint_committed(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<pods::NodeId> old_voters, new_voters;
  for (pods::NodeId id = 1; id <= n; ++id) {
    old_voters.push_back(id);
    new_voters.push_back(id == 1 ? 7 : id);  // one voter replaced
  }
  const pods::MajorityQuorum quorum(old_voters, new_voters);
  const MatchSets match(7);
  std::size_t k = 0;
  for (auto _ : state) {
    const auto& m = match.sets[k++ & 63];
    benchmark::DoNotOptimize(quorum.committed_index([&m](pods::NodeId id) { return m[id]; }));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(joint_committed)->Name("quorum/joint_committed_index")->Arg(3)->Arg(5);

// The usual code: the voters' match indices copied into a vector, then the majority's index.
enum class Baseline { vector_nth_element, vector_sort };

template <Baseline kind>
void baseline_committed(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<pods::NodeId> voters;
  for (pods::NodeId id = 1; id <= n; ++id)
    voters.push_back(id);
  const MatchSets match(n);
  std::size_t k = 0;
  for (auto _ : state) {
    const auto& m = match.sets[k++ & 63];
    std::vector<std::uint64_t> v;
    v.reserve(n);
    for (pods::NodeId id : voters)
      v.push_back(m[id]);
    std::uint64_t committed = 0;
    if constexpr (kind == Baseline::vector_sort) {
      std::sort(v.begin(), v.end());
      committed = v[n - (n / 2 + 1)];
    } else {
      const auto kth = v.begin() + static_cast<std::ptrdiff_t>(n - (n / 2 + 1));
      std::nth_element(v.begin(), kth, v.end());
      committed = *kth;
    }
    benchmark::DoNotOptimize(committed);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(baseline_committed<Baseline::vector_nth_element>)
    ->Name("baseline/vector_nth_element")
    ->Arg(3)
    ->Arg(5)
    ->Arg(7);
BENCHMARK(baseline_committed<Baseline::vector_sort>)
    ->Name("baseline/vector_sort")
    ->Arg(3)
    ->Arg(5)
    ->Arg(7);

// The same without the allocation: a stack array of exactly N voters and std::sort (N is a
// template argument; the Arg only names the scenario like the others).
template <std::size_t N>
void baseline_stack_sort(benchmark::State& state) {
  std::vector<pods::NodeId> voters;
  for (pods::NodeId id = 1; id <= N; ++id)
    voters.push_back(id);
  const MatchSets match(N);
  std::size_t k = 0;
  for (auto _ : state) {
    const auto& m = match.sets[k++ & 63];
    std::array<std::uint64_t, N> v;
    for (std::size_t i = 0; i < N; ++i)
      v[i] = m[voters[i]];
    std::sort(v.begin(), v.end());
    benchmark::DoNotOptimize(v[N - (N / 2 + 1)]);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(baseline_stack_sort<3>)->Name("baseline/stack_sort")->Arg(3);
BENCHMARK(baseline_stack_sort<5>)->Name("baseline/stack_sort")->Arg(5);
BENCHMARK(baseline_stack_sort<7>)->Name("baseline/stack_sort")->Arg(7);

[[maybe_unused]] const bool comparisons_declared = [] {
  using pods::bench::compare;
  compare("PhiAccrualDetector heartbeat vs TimeoutDetector heartbeat", "phi_accrual/heartbeat",
          "timeout/heartbeat", "");
  compare("PhiAccrualDetector suspected vs TimeoutDetector suspected", "phi_accrual/suspected",
          "timeout/suspected", "");
  for (const char* n : {"3", "5", "7"}) {
    const std::string ours = std::string("quorum/committed_index/") + n;
    std::string label = "MajorityQuorum committed_index, ";
    label += n;
    label += " voters, vs ";
    compare(label + "vector + nth_element", ours, std::string("baseline/vector_nth_element/") + n,
            "");
    compare(label + "vector + sort", ours, std::string("baseline/vector_sort/") + n, "");
    compare(label + "stack array + sort", ours, std::string("baseline/stack_sort/") + n, "");
  }
  return true;
}();

}  // namespace

PODS_BENCH_MAIN()

#if __has_include("cluster_gossip_scenarios.hpp")
#include "cluster_gossip_scenarios.hpp"
#endif

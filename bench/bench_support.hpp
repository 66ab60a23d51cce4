// bench/bench_support.hpp — the shared main of pods' benchmark programs.
//
// Every benchmark program registers its scenarios with Google Benchmark as usual and then
// declares the comparisons it cares about with `compare(label, ours, peer, target)`. The main
// below runs the benchmarks (by default 5 repetitions, reporting aggregates), keeps the
// median of each scenario, and prints one line per comparison: both figures and how many
// times faster ours is. Peers that are not installed are announced with `skip(note)` and
// listed at the end; they never fail the build or the run.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace pods::bench {

struct Comparison {
  std::string label;   // what is compared, in one line
  std::string ours;    // benchmark name of our scenario (as Google Benchmark prints it)
  std::string peer;    // benchmark name of the peer's scenario
  std::string target;  // the target as text, e.g. ">= 1.5x" (informational)
};

inline std::vector<Comparison>& comparisons() {
  static std::vector<Comparison> list;
  return list;
}
inline std::vector<std::string>& skipped() {
  static std::vector<std::string> list;
  return list;
}

// Declares that `ours` and `peer` (benchmark names) should be printed side by side.
inline void compare(std::string label, std::string ours, std::string peer,
                    std::string target = {}) {
  comparisons().push_back({std::move(label), std::move(ours), std::move(peer), std::move(target)});
}
// Records that a peer is not installed, so its scenarios were not registered.
inline void skip(std::string note) {
  skipped().push_back(std::move(note));
}

namespace detail {

struct Figure {
  double ns_per_op = 0;         // adjusted real time per iteration, in ns
  double items_per_second = 0;  // when the scenario reports items
  bool median = false;
};

inline double to_ns(double value, benchmark::TimeUnit unit) {
  switch (unit) {
    case benchmark::kNanosecond:
      return value;
    case benchmark::kMicrosecond:
      return value * 1e3;
    case benchmark::kMillisecond:
      return value * 1e6;
    case benchmark::kSecond:
      return value * 1e9;
  }
  return value;
}

// A console reporter that also remembers the median (or the only run) of every scenario.
class Recorder : public benchmark::ConsoleReporter {
 public:
  std::map<std::string, Figure> figures;

  void ReportRuns(const std::vector<Run>& runs) override {
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      const bool is_median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type == Run::RT_Aggregate && !is_median) continue;
      Figure& f = figures[run.run_name.str()];
      if (f.median && !is_median) continue;
      f.median = is_median;
      f.ns_per_op = to_ns(run.GetAdjustedRealTime(), run.time_unit);
      auto it = run.counters.find("items_per_second");
      f.items_per_second = it == run.counters.end() ? 0.0 : double(it->second);
    }
    ConsoleReporter::ReportRuns(runs);
  }
};

}  // namespace detail

// Runs the registered benchmarks and prints the comparisons. Returns the process exit code.
inline int run(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  bool has_repetitions = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]).starts_with("--benchmark_repetitions")) has_repetitions = true;
  }
  static char reps[] = "--benchmark_repetitions=5";
  static char aggregates[] = "--benchmark_report_aggregates_only=true";
  if (!has_repetitions) {
    args.push_back(reps);
    args.push_back(aggregates);
  }
  int count = static_cast<int>(args.size());
  benchmark::Initialize(&count, args.data());
  if (benchmark::ReportUnrecognizedArguments(count, args.data())) return 1;
  detail::Recorder recorder;
  benchmark::RunSpecifiedBenchmarks(&recorder);
  benchmark::Shutdown();

  std::printf("\nComparisons (medians; 'x' = how many times faster ours is than the peer):\n");
  for (const Comparison& c : comparisons()) {
    auto ours = recorder.figures.find(c.ours);
    auto peer = recorder.figures.find(c.peer);
    if (ours == recorder.figures.end() || peer == recorder.figures.end()) continue;
    const detail::Figure& o = ours->second;
    const detail::Figure& p = peer->second;
    double ratio;
    if (o.items_per_second > 0 && p.items_per_second > 0) {
      ratio = o.items_per_second / p.items_per_second;
      std::printf("  %-58s ours %10.3g items/s  peer %10.3g items/s  %6.2fx  %s\n", c.label.c_str(),
                  o.items_per_second, p.items_per_second, ratio, c.target.c_str());
    } else {
      ratio = p.ns_per_op / o.ns_per_op;
      std::printf("  %-58s ours %10.2f ns  peer %10.2f ns  %6.2fx  %s\n", c.label.c_str(),
                  o.ns_per_op, p.ns_per_op, ratio, c.target.c_str());
    }
  }
  for (const std::string& note : skipped())
    std::printf("  skipped: %s\n", note.c_str());
  return 0;
}

}  // namespace pods::bench

#define PODS_BENCH_MAIN()                  \
  int main(int argc, char** argv) {        \
    return ::pods::bench::run(argc, argv); \
  }

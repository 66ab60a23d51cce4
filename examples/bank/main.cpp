// The bank on the simulator: transfers between partitions as two-phase commits, snapshot
// reads at a hybrid-clock timestamp behind a Clock-Bound Wait, under crashes (torn writes),
// partitions, pauses and lossy links, with clock skew within the bound. Then the same with a
// reader whose clock lags by more than the bound: snapshots miss acknowledged transfers.
//
//   bank [--seeds N]     N seeds of each (default 3); exits 1 on any violation, or when the
//                        lagging reader shows no anomaly
#include "bank.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char** argv) {
  std::uint64_t seeds = 3;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--seeds") == 0 && i + 1 < argc) {
      seeds = std::strtoull(argv[++i], nullptr, 10);
    } else {
      std::fprintf(stderr, "usage: bank [--seeds N]\n");
      return 2;
    }
  }
  if (seeds == 0) {
    std::fprintf(stderr, "bank: --seeds must be positive\n");
    return 2;
  }
  using namespace std::chrono_literals;
  bank::Result within, beyond;
  auto add = [](bank::Result& total, const bank::Result& r) {
    total.snapshots += r.snapshots;
    total.retries += r.retries;
    total.transfers += r.transfers;
    total.acknowledged += r.acknowledged;
    total.missed += r.missed;
    total.crashes += r.crashes;
  };
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    const bank::Result r = bank::run(seed, {.epsilon = 20ms});
    if (!r.violation.empty() || r.missed != 0) {
      std::printf("seed %llu: %s (%llu missed)\n", static_cast<unsigned long long>(seed),
                  r.violation.c_str(), static_cast<unsigned long long>(r.missed));
      return 1;
    }
    add(within, r);
  }
  std::printf(
      "skew within the bound, %llu seeds: %llu snapshots (%llu partition retries), every total "
      "%lld; %llu transfers begun, %llu acknowledged, none missed by a later snapshot; %llu "
      "crashes; nothing locked after the faults\n",
      static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(within.snapshots),
      static_cast<unsigned long long>(within.retries), static_cast<long long>(bank::kTotal),
      static_cast<unsigned long long>(within.transfers),
      static_cast<unsigned long long>(within.acknowledged),
      static_cast<unsigned long long>(within.crashes));
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    const bank::Result r = bank::run(seed, {.epsilon = 20ms, .reader_lag = 60ms});
    if (!r.violation.empty()) {
      std::printf("seed %llu, lagging reader: %s\n", static_cast<unsigned long long>(seed),
                  r.violation.c_str());
      return 1;
    }
    add(beyond, r);
  }
  std::printf(
      "reader clock 60 ms behind (the bound is 20 ms), %llu seeds: %llu snapshots, totals "
      "still %lld, but %llu times a snapshot begun after a transfer was acknowledged did not "
      "include it\n",
      static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(beyond.snapshots),
      static_cast<long long>(bank::kTotal), static_cast<unsigned long long>(beyond.missed));
  bank::Result unwaited;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    const bank::Result r = bank::run(seed, {.epsilon = 20ms, .commit_wait = false});
    if (!r.violation.empty()) {
      std::printf("seed %llu, no wait: %s\n", static_cast<unsigned long long>(seed),
                  r.violation.c_str());
      return 1;
    }
    add(unwaited, r);
  }
  std::printf(
      "skew within the bound but no Clock-Bound Wait before the acknowledgement, %llu seeds: "
      "%llu snapshots, totals still %lld, %llu misses of an acknowledged transfer\n",
      static_cast<unsigned long long>(seeds), static_cast<unsigned long long>(unwaited.snapshots),
      static_cast<long long>(bank::kTotal), static_cast<unsigned long long>(unwaited.missed));
  std::uint64_t torn = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed)
    torn += bank::run(seed, {.epsilon = 20ms, .refuse_stale = false}).violation.empty() ? 0 : 1;
  std::printf(
      "partitions that accept a transfer stamped below a snapshot they served: %llu of %llu "
      "runs saw a snapshot whose total is not %lld\n",
      static_cast<unsigned long long>(torn), static_cast<unsigned long long>(seeds),
      static_cast<long long>(bank::kTotal));
  if (torn == 0) {
    std::printf("the broken rule was not caught\n");
    return 1;
  }
  if (beyond.missed == 0) {
    std::printf("the lagging reader showed no anomaly\n");
    return 1;
  }
  std::printf("bank: atomic, and no read missed a committed transfer within the bound\n");
  return 0;
}

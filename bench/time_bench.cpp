// bench/time_bench.cpp — the time patterns beside the code people write without them.
//
// Clocks are shared by every benchmark thread (->Threads(2) measures contention); times are
// wall-clock per operation per thread (->UseRealTime()). Peers live in this file: a bare
// atomic counter, a std::mutex counter, a raw clock_gettime(CLOCK_REALTIME), a clock read
// followed by a shared fetch_add (the floor of a thread-safe hybrid clock), a hybrid clock
// guarded by a std::mutex written the usual way, and a std::map version vector.
#include <pods/storage/versioned_value.hpp>
#include <pods/time/hybrid_clock.hpp>
#include <pods/time/lamport_clock.hpp>
#include <pods/time/tsc_clock.hpp>
#include <pods/time/version_vector.hpp>

#include "bench_support.hpp"

#include <time.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace {

// ---- Peers ---------------------------------------------------------------------------------

// A Lamport clock as a bare atomic counter: the floor for any shared logical clock.
std::atomic<std::uint64_t> bare_counter{0};

// A Lamport clock guarded by a std::mutex.
struct MutexLamport {
  std::mutex mutex;
  std::uint64_t time = 0;
  std::uint64_t tick() {
    std::lock_guard lock(mutex);
    return ++time;
  }
};

// A hybrid logical clock written the usual way: lock, read the clock, max, bump logical.
struct MutexHlc {
  std::mutex mutex;
  std::int64_t wall = 0;
  std::uint32_t logical = 0;
  pods::HybridTimestamp now() {
    std::lock_guard lock(mutex);
    const std::int64_t pt = pods::to_nanoseconds(pods::SystemClock::now());
    if (pt > wall) {
      wall = pt;
      logical = 0;
    } else {
      ++logical;
    }
    return {wall, logical};
  }
};

// A version vector as a std::map from node to counter.
struct MapVersionVector {
  std::map<std::string, std::uint64_t> counters;
  void merge(const MapVersionVector& other) {
    for (const auto& [node, counter] : other.counters) {
      std::uint64_t& mine = counters[node];
      if (mine < counter) mine = counter;
    }
  }
  bool descends(const MapVersionVector& other) const {
    for (const auto& [node, counter] : other.counters) {
      auto it = counters.find(node);
      if (it == counters.end() || it->second < counter) return false;
    }
    return true;
  }
  // Both directions, as a partial order needs.
  std::partial_ordering compare(const MapVersionVector& other) const {
    const bool ge = descends(other);
    const bool le = other.descends(*this);
    if (ge && le) return std::partial_ordering::equivalent;
    if (ge) return std::partial_ordering::greater;
    if (le) return std::partial_ordering::less;
    return std::partial_ordering::unordered;
  }
};

std::string node_name(int i) {
  return "node-" + std::to_string(100 + i);
}

// ---- LamportClock --------------------------------------------------------------------------

// LamportClock<ThreadSafe>::tick() on one clock shared by all threads.
void lamport_thread_safe(benchmark::State& state) {
  static pods::LamportClock<pods::ThreadSafe> clock;
  for (auto _ : state)
    benchmark::DoNotOptimize(clock.tick());
}
BENCHMARK(lamport_thread_safe)->Name("lamport/thread_safe")->Threads(1)->Threads(2)->UseRealTime();

// LamportClock<SingleThreaded>::tick(): a plain increment.
void lamport_single_threaded(benchmark::State& state) {
  pods::LamportClock<pods::SingleThreaded> clock;
  for (auto _ : state)
    benchmark::DoNotOptimize(clock.tick());
}
BENCHMARK(lamport_single_threaded)->Name("lamport/single_threaded")->UseRealTime();

// Peer: a bare std::atomic<uint64_t>::fetch_add shared by all threads.
void lamport_atomic_counter(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(bare_counter.fetch_add(1) + 1);
}
BENCHMARK(lamport_atomic_counter)
    ->Name("lamport/atomic_counter")
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// Peer: a counter behind a std::mutex shared by all threads.
void lamport_mutex(benchmark::State& state) {
  static MutexLamport clock;
  for (auto _ : state)
    benchmark::DoNotOptimize(clock.tick());
}
BENCHMARK(lamport_mutex)->Name("lamport/mutex")->Threads(1)->Threads(2)->UseRealTime();

// ---- HybridClock ---------------------------------------------------------------------------

// HybridClock<SystemClock, ThreadSafe>::now() on one clock shared by all threads.
void hlc_thread_safe_system(benchmark::State& state) {
  static pods::HybridClock<pods::SystemClock, pods::ThreadSafe> clock;
  for (auto _ : state)
    benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(hlc_thread_safe_system)
    ->Name("hlc/thread_safe/system")
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// HybridClock<SystemClock, SingleThreaded>::now(): the clock read plus plain arithmetic.
void hlc_single_threaded_system(benchmark::State& state) {
  pods::HybridClock<pods::SystemClock, pods::SingleThreaded> clock;
  for (auto _ : state)
    benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(hlc_single_threaded_system)->Name("hlc/single_threaded/system")->UseRealTime();

// HybridClock<TscClock, ThreadSafe>::now() on one clock shared by all threads.
void hlc_thread_safe_tsc(benchmark::State& state) {
  static pods::HybridClock<pods::TscClock, pods::ThreadSafe> clock;
  for (auto _ : state)
    benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(hlc_thread_safe_tsc)->Name("hlc/thread_safe/tsc")->Threads(1)->Threads(2)->UseRealTime();

// HybridClock<TscClock, SingleThreaded>::now().
void hlc_single_threaded_tsc(benchmark::State& state) {
  pods::HybridClock<pods::TscClock, pods::SingleThreaded> clock;
  for (auto _ : state)
    benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(hlc_single_threaded_tsc)->Name("hlc/single_threaded/tsc")->UseRealTime();

// Peer: a raw clock_gettime(CLOCK_REALTIME), the physical clock read alone.
void clock_gettime_realtime(benchmark::State& state) {
  for (auto _ : state) {
    timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    benchmark::DoNotOptimize(ts);
  }
}
BENCHMARK(clock_gettime_realtime)
    ->Name("clock_gettime/realtime")
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// The floor of any thread-safe hybrid clock: one physical clock read plus one atomic
// read-modify-write of a word every thread shares (here a fetch_add, which never retries).
std::atomic<std::uint64_t> floor_counter{0};
void clock_read_plus_fetch_add(benchmark::State& state) {
  for (auto _ : state) {
    const std::int64_t pt = pods::to_nanoseconds(pods::SystemClock::now());
    benchmark::DoNotOptimize(floor_counter.fetch_add(1) + static_cast<std::uint64_t>(pt));
  }
}
BENCHMARK(clock_read_plus_fetch_add)
    ->Name("floor/clock_read_plus_fetch_add")
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

// Peer: a hybrid clock behind a std::mutex (lock, read clock, max, bump logical).
void hlc_mutex(benchmark::State& state) {
  static MutexHlc clock;
  for (auto _ : state)
    benchmark::DoNotOptimize(clock.now());
}
BENCHMARK(hlc_mutex)->Name("hlc/mutex")->Threads(1)->Threads(2)->UseRealTime();

// TscClock::now() alone (lfence + rdtsc + the calibrated map).
void tsc_clock_now(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(pods::TscClock::now());
}
BENCHMARK(tsc_clock_now)->Name("tsc_clock/now")->Threads(1)->Threads(2)->UseRealTime();

// TscClock::now_unordered() alone (rdtsc without the fence).
void tsc_clock_now_unordered(benchmark::State& state) {
  for (auto _ : state)
    benchmark::DoNotOptimize(pods::TscClock::now_unordered());
}
BENCHMARK(tsc_clock_now_unordered)->Name("tsc_clock/now_unordered")->UseRealTime();

// ---- VersionVector -------------------------------------------------------------------------

// Two vectors over the same N nodes where a > b (one counter behind): a full pass.
template <class Make>
auto vector_pair(int nodes, Make make) {
  auto a = make(), b = make();
  for (int i = 0; i < nodes; ++i) {
    for (int k = 0; k < 3 + i % 5; ++k) {
      a.increment(node_name(i));
      b.increment(node_name(i));
    }
  }
  a.increment(node_name(nodes / 2));
  return std::pair{a, b};
}

struct MapVV : MapVersionVector {
  void increment(const std::string& node) { ++counters[node]; }
};

// VersionVector::operator<=> of two vectors over N nodes (sorted flat vector).
void vv_compare(benchmark::State& state) {
  auto [a, b] =
      vector_pair(static_cast<int>(state.range(0)), [] { return pods::VersionVector<>{}; });
  for (auto _ : state) {
    benchmark::DoNotOptimize(a <=> b);
    benchmark::ClobberMemory();
  }
  if ((a <=> b) != std::partial_ordering::greater) state.SkipWithError("wrong order");
}
BENCHMARK(vv_compare)->Name("version_vector/compare")->Arg(3)->Arg(8)->Arg(32);

// Peer: the same comparison over std::map (two descends passes).
void vv_map_compare(benchmark::State& state) {
  auto [a, b] = vector_pair(static_cast<int>(state.range(0)), [] { return MapVV{}; });
  for (auto _ : state) {
    benchmark::DoNotOptimize(a.compare(b));
    benchmark::ClobberMemory();
  }
  if (a.compare(b) != std::partial_ordering::greater) state.SkipWithError("wrong order");
}
BENCHMARK(vv_map_compare)->Name("version_vector_map/compare")->Arg(3)->Arg(8)->Arg(32);

// VersionVector::merge of a vector over the same N nodes (in place, no allocation).
void vv_merge(benchmark::State& state) {
  auto [a, b] =
      vector_pair(static_cast<int>(state.range(0)), [] { return pods::VersionVector<>{}; });
  for (auto _ : state) {
    benchmark::DoNotOptimize(&b.merge(a));
    benchmark::ClobberMemory();
  }
  if (!(a == b)) state.SkipWithError("merge lost a counter");
}
BENCHMARK(vv_merge)->Name("version_vector/merge")->Arg(3)->Arg(8)->Arg(32);

// Peer: merge over std::map (a lookup per node).
void vv_map_merge(benchmark::State& state) {
  auto [a, b] = vector_pair(static_cast<int>(state.range(0)), [] { return MapVV{}; });
  for (auto _ : state) {
    b.merge(a);
    benchmark::ClobberMemory();
  }
  if (b.counters != a.counters) state.SkipWithError("merge lost a counter");
}
BENCHMARK(vv_map_merge)->Name("version_vector_map/merge")->Arg(3)->Arg(8)->Arg(32);

// ---- VersionedStore ------------------------------------------------------------------------

constexpr int store_keys = 1024;

// Random (key, at) reads, the same sequence for ours and the peer.
std::vector<std::pair<std::uint64_t, std::uint64_t>> read_plan(std::int64_t versions) {
  std::mt19937_64 rng(5);
  std::vector<std::pair<std::uint64_t, std::uint64_t>> plan(4096);
  for (auto& [key, at] : plan) {
    key = rng() % store_keys;
    at = rng() % (static_cast<std::uint64_t>(versions) * 10 + 10);
  }
  return plan;
}

// VersionedStore::get(key, at) with 1024 keys of N versions each (versions 10, 20, ...).
void store_get_at(benchmark::State& state) {
  const std::int64_t versions = state.range(0);
  pods::VersionedStore<std::uint64_t, std::uint64_t> store;
  for (std::uint64_t key = 0; key < store_keys; ++key) {
    for (std::int64_t v = 1; v <= versions; ++v) {
      store.put(key, key * 7 + static_cast<std::uint64_t>(v), static_cast<std::uint64_t>(v) * 10);
    }
  }
  const auto plan = read_plan(versions);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& [key, at] = plan[i++ & (plan.size() - 1)];
    benchmark::DoNotOptimize(store.get(key, at));
  }
}
BENCHMARK(store_get_at)->Name("versioned_store/get_at")->Arg(1)->Arg(16)->Arg(1024);

// Peer: one std::map keyed by (key, version), read with upper_bound.
void map_store_get_at(benchmark::State& state) {
  const std::int64_t versions = state.range(0);
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::optional<std::uint64_t>> store;
  for (std::uint64_t key = 0; key < store_keys; ++key) {
    for (std::int64_t v = 1; v <= versions; ++v) {
      store[{key, static_cast<std::uint64_t>(v) * 10}] = key * 7 + static_cast<std::uint64_t>(v);
    }
  }
  const auto plan = read_plan(versions);
  std::size_t i = 0;
  for (auto _ : state) {
    const auto& [key, at] = plan[i++ & (plan.size() - 1)];
    auto it = store.upper_bound({key, at});
    std::optional<std::uint64_t> found;
    if (it != store.begin() && (--it)->first.first == key) found = it->second;
    benchmark::DoNotOptimize(found);
  }
}
BENCHMARK(map_store_get_at)->Name("versioned_store_map/get_at")->Arg(1)->Arg(16)->Arg(1024);

// ---- Comparisons ---------------------------------------------------------------------------

[[maybe_unused]] const bool comparisons_declared = [] {
  using pods::bench::compare;
  compare("LamportClock<ThreadSafe> tick vs bare atomic, 1 thread",
          "lamport/thread_safe/real_time/threads:1", "lamport/atomic_counter/real_time/threads:1",
          "target >= 0.83x (within 1.2x)");
  compare("LamportClock<ThreadSafe> tick vs bare atomic, 2 threads",
          "lamport/thread_safe/real_time/threads:2", "lamport/atomic_counter/real_time/threads:2",
          "target >= 0.83x (within 1.2x)");
  compare("LamportClock<ThreadSafe> tick vs std::mutex clock, 2 threads",
          "lamport/thread_safe/real_time/threads:2", "lamport/mutex/real_time/threads:2",
          "target >= 4x");
  compare("LamportClock<SingleThreaded> tick vs bare atomic, 1 thread",
          "lamport/single_threaded/real_time", "lamport/atomic_counter/real_time/threads:1", "");
  compare("HybridClock<System> now vs clock_gettime, 1 thread",
          "hlc/thread_safe/system/real_time/threads:1",
          "clock_gettime/realtime/real_time/threads:1", "target >= 0.83x (within 1.2x)");
  compare("HybridClock<System> now vs mutex HLC, 1 thread",
          "hlc/thread_safe/system/real_time/threads:1", "hlc/mutex/real_time/threads:1", "");
  compare("HybridClock<System> now vs clock read + fetch_add, 1 thread",
          "hlc/thread_safe/system/real_time/threads:1",
          "floor/clock_read_plus_fetch_add/real_time/threads:1", "");
  compare("HybridClock<System> now vs clock read + fetch_add, 2 threads",
          "hlc/thread_safe/system/real_time/threads:2",
          "floor/clock_read_plus_fetch_add/real_time/threads:2", "target >= 0.67x (within 1.5x)");
  compare("HybridClock<System> now vs bare fetch_add, 2 threads",
          "hlc/thread_safe/system/real_time/threads:2",
          "lamport/atomic_counter/real_time/threads:2", "");
  compare("HybridClock<System> now vs mutex HLC, 2 threads",
          "hlc/thread_safe/system/real_time/threads:2", "hlc/mutex/real_time/threads:2",
          "target >= 4x");
  compare("HybridClock<System, SingleThreaded> now vs clock_gettime",
          "hlc/single_threaded/system/real_time", "clock_gettime/realtime/real_time/threads:1", "");
  compare("HybridClock<TscClock> now vs clock_gettime, 1 thread",
          "hlc/thread_safe/tsc/real_time/threads:1", "clock_gettime/realtime/real_time/threads:1",
          "target: ours < 15 ns");
  compare("HybridClock<TscClock> now vs mutex HLC, 2 threads",
          "hlc/thread_safe/tsc/real_time/threads:2", "hlc/mutex/real_time/threads:2", "");
  compare("HybridClock<TscClock, SingleThreaded> now vs clock_gettime",
          "hlc/single_threaded/tsc/real_time", "clock_gettime/realtime/real_time/threads:1", "");
  compare("TscClock::now vs clock_gettime, 1 thread", "tsc_clock/now/real_time/threads:1",
          "clock_gettime/realtime/real_time/threads:1", "");
  for (const char* n : {"3", "8", "32"}) {
    compare(std::string("VersionVector compare vs std::map, ") + n + " nodes",
            std::string("version_vector/compare/") + n,
            std::string("version_vector_map/compare/") + n, "");
    compare(std::string("VersionVector merge vs std::map, ") + n + " nodes",
            std::string("version_vector/merge/") + n, std::string("version_vector_map/merge/") + n,
            "");
  }
  for (const char* n : {"1", "16", "1024"}) {
    compare(std::string("VersionedStore get(key, at) vs one std::map, ") + n + " versions/key",
            std::string("versioned_store/get_at/") + n,
            std::string("versioned_store_map/get_at/") + n, "");
  }
  return true;
}();

}  // namespace

PODS_BENCH_MAIN()

// bench/partitioning_bench.cpp — key -> partition lookups beside the code people write
// without the partitioning headers.
//
// Fixed partitions: FixedPartitions::partition_of (the stable hash mod 1024) over 4096
// precomputed keys "user:<n>", beside std::hash<std::string_view> mod 1024 (libstdc++'s
// murmur-based hash: fast but neither stable across implementations nor documented).
// Key ranges: KeyRangePartitions::route over 10 000 ranges (random 8-letter split points),
// looking up 4096 random 8-letter keys, beside the obvious structure, a std::map from each
// range's start to its id searched with upper_bound; and a range query of about 10 ranges.
// Move plans: one join of a 16-node cluster with 1024 partitions and 3 replicas (no peer).
// The bank and two-phase commit scenarios live in bank_scenarios.hpp when it is present.
#include <pods/partitioning/fixed_partitions.hpp>
#include <pods/partitioning/key_range_partitions.hpp>
#include <pods/policy/random.hpp>

#include "bench_support.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr std::size_t partitions = 1024;
constexpr std::size_t ranges = 10'000;

std::vector<std::string> user_keys() {
  std::vector<std::string> keys;
  for (int i = 0; i < 4096; ++i)
    keys.push_back("user:" + std::to_string(i * 7919));
  return keys;
}

std::string random_word(pods::Random& random) {
  std::string s(8, 'a');
  for (char& c : s)
    c = static_cast<char>('a' + random.below(26));
  return s;
}

std::vector<std::string> words(std::uint64_t seed, std::size_t n) {
  pods::Random random(seed);
  std::vector<std::string> out;
  for (std::size_t i = 0; i < n; ++i)
    out.push_back(random_word(random));
  return out;
}

// 10 000 ranges: 9 999 distinct sorted split points.
std::vector<std::string> split_points() {
  std::map<std::string, int> sorted;
  pods::Random random(11);
  while (sorted.size() < ranges - 1)
    sorted.emplace(random_word(random), 0);
  std::vector<std::string> out;
  for (const auto& [k, v] : sorted)
    out.push_back(k);
  return out;
}

void fixed_partition_of(benchmark::State& state) {
  const auto keys = user_keys();
  const pods::FixedPartitions parts(partitions, {1, 2, 3, 4});
  std::size_t k = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(parts.partition_of(keys[k++ & 4095]));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(fixed_partition_of)->Name("fixed/partition_of");

void std_hash_mod(benchmark::State& state) {
  const auto keys = user_keys();
  const std::hash<std::string_view> hash;
  std::size_t k = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(hash(keys[k++ & 4095]) % partitions);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(std_hash_mod)->Name("baseline/std_hash_mod");

void key_range_route(benchmark::State& state) {
  const auto points = split_points();
  const pods::KeyRangePartitions parts(points);
  const auto keys = words(12, 4096);
  std::size_t k = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(parts.route(keys[k++ & 4095]));
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(key_range_route)->Name("key_range/route/10000");

void map_upper_bound(benchmark::State& state) {
  const auto points = split_points();
  std::map<std::string, pods::RangeId, std::less<>> starts{{"", 0}};
  for (std::size_t i = 0; i < points.size(); ++i)
    starts.emplace(points[i], i + 1);
  const auto keys = words(12, 4096);
  std::size_t k = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(
        std::prev(starts.upper_bound(std::string_view(keys[k++ & 4095])))->second);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(map_upper_bound)->Name("baseline/map_upper_bound/10000");

void key_range_route_range(benchmark::State& state) {
  const auto points = split_points();
  const pods::KeyRangePartitions parts(points);
  const auto keys = words(12, 4096);
  std::size_t k = 0;
  for (auto _ : state) {
    // [key, its first three letters with the third advanced by one): 1/17576 of the key
    // space, so about one range, often two: what a scatter-gather query asks for.
    const std::string& a = keys[k++ & 4095];
    std::string b = a.substr(0, 2) + static_cast<char>(a[2] + 1);
    benchmark::DoNotOptimize(parts.route_range(a, std::string_view(b)));
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}
BENCHMARK(key_range_route_range)->Name("key_range/route_range/10000");

void fixed_join_plan(benchmark::State& state) {
  std::vector<pods::NodeId> nodes;
  for (pods::NodeId id = 1; id <= 16; ++id)
    nodes.push_back(id);
  const pods::FixedPartitions parts(partitions, nodes, {.replication_factor = 3});
  nodes.push_back(17);
  std::size_t moves = 0;
  for (auto _ : state) {
    auto plan = parts.plan(nodes);
    moves = plan.size();
    benchmark::DoNotOptimize(plan);
  }
  state.counters["moves"] = static_cast<double>(moves);
}
BENCHMARK(fixed_join_plan)->Name("fixed/plan_join/16_to_17")->Unit(benchmark::kMillisecond);

const bool registered = [] {
  using pods::bench::compare;
  compare("FixedPartitions::partition_of vs std::hash % 1024", "fixed/partition_of",
          "baseline/std_hash_mod", "");
  compare("KeyRangePartitions::route vs std::map upper_bound, 10 000 ranges",
          "key_range/route/10000", "baseline/map_upper_bound/10000", "");
  return true;
}();

}  // namespace

PODS_BENCH_MAIN()

#if __has_include("bank_scenarios.hpp")
#include "bank_scenarios.hpp"
#endif

// bench/sim_bench.cpp — the linearizability checker on generated histories, and the simulator.
//
// Histories come from a seeded generator of concurrent clients over an atomic object: each
// client issues one operation at a time, each operation takes effect at a uniformly random
// point of its interval, and its output is what the atomic object gave at that point, so
// every history is linearizable and the checker must search it to the end. With unknowns,
// 5% of operations time out: no output, ret = never, and a new client id for the caller
// (as Jepsen gives a crashed process a new one); half of the timed-out ones took effect.
//
// Scenarios (one item = one operation checked; `bytes` = CheckStats::peak_bytes, the most
// the search's own tables — configuration cache, state table, lists — held in one partition,
// not the process's resident size):
//   lin/register/<ops>/<clients>/<unknown>   one register, reads 50%, writes 40%, cas 10%
//   lin/kv/<ops>/<clients>/<unknown>          8 keys, get 50%, put 25%, append 25%
//   lin/etcd                                  100 histories shaped like Jepsen's etcd test:
//                                             80 operations each, read/write/cas on values
//                                             0..4, 5 workers, 25% timeouts (a timed-out
//                                             worker gets a new process id: ~25 processes)
//   sim/deliveries/<nodes>                    the simulator (bench/sim_network_scenarios.hpp)
//
// porcupine (Go) is the peer; it is not linked here. `sim_bench --dump-histories=DIR`
// writes every generated history to DIR as JSON lines (one operation per line: client,
// input, output or null when unknown, call, return or null when never), so an outside run
// can feed the same histories to porcupine.
#include "bench_support.hpp"

#include <pods/sim/history.hpp>
#include <pods/sim/linearizability.hpp>

#if __has_include("sim_network_scenarios.hpp")
#include "sim_network_scenarios.hpp"
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

using Reg = pods::sim::RegisterModel<std::int64_t>;
using RegOp = pods::sim::Operation<Reg::Input, Reg::Output>;
using Kv = pods::sim::KvModel;
using KvOp = pods::sim::Operation<Kv::Input, Kv::Output>;

std::filesystem::path& dump_dir() {
  static std::filesystem::path dir;
  return dir;
}

// SplitMix64: a small seeded generator, identical on every platform.
struct Rng {
  std::uint64_t s;
  std::uint64_t next() {
    std::uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
  }
  std::int64_t below(std::int64_t n) {
    return static_cast<std::int64_t>(next() % std::uint64_t(n));
  }
  bool percent(int p) { return below(100) < p; }
};

// The timing of a history: for each operation its client, call, return and the point at
// which it takes effect (nullopt: never).
struct Slot {
  std::uint64_t client;
  std::int64_t call, ret;
  std::optional<std::int64_t> point;
  bool timed_out;
};

std::vector<Slot> timing(Rng& rng, std::size_t ops, int clients, int timeout_percent) {
  std::vector<std::int64_t> free_at(static_cast<std::size_t>(clients), 0);
  std::vector<std::uint64_t> id(static_cast<std::size_t>(clients));
  for (int c = 0; c < clients; ++c)
    id[std::size_t(c)] = std::uint64_t(c);
  std::uint64_t next_id = std::uint64_t(clients);
  std::vector<Slot> slots;
  slots.reserve(ops);
  for (std::size_t i = 0; i < ops; ++i) {
    const auto c = static_cast<std::size_t>(rng.below(clients));
    // Think time grows with the number of clients, so the number of operations in flight at
    // once (the concurrency the search faces) is about 3 with 5 clients and 8 with 50.
    const std::int64_t call = free_at[c] + rng.below(10 * clients);
    const std::int64_t latency = 1 + rng.below(100);
    const std::int64_t ret = call + latency;
    Slot s{id[c], call, ret, call + rng.below(latency + 1), false};
    if (rng.percent(timeout_percent)) {
      s.timed_out = true;
      s.ret = pods::sim::never;
      if (rng.percent(50)) s.point.reset();
      id[c] = next_id++;  // the caller gives up; a new process takes its place
    }
    free_at[c] = ret + 1;
    slots.push_back(s);
  }
  return slots;
}

// Returns the indices of the slots that take effect, in the order of their points.
std::vector<std::size_t> effect_order(const std::vector<Slot>& slots) {
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < slots.size(); ++i)
    if (slots[i].point) order.push_back(i);
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return *slots[a].point < *slots[b].point; });
  return order;
}

std::vector<RegOp> register_history(std::uint64_t seed, std::size_t ops, int clients,
                                    int timeout_percent, std::int64_t values = 0) {
  Rng rng{seed};
  const auto slots = timing(rng, ops, clients, timeout_percent);
  std::vector<RegOp> h(ops);
  std::int64_t next_value = 0;
  for (std::size_t i = 0; i < ops; ++i) {
    const int kind = int(rng.below(10));
    const auto value = [&] { return values ? rng.below(values) : next_value++; };
    h[i].client = slots[i].client;
    h[i].call = slots[i].call;
    h[i].ret = slots[i].ret;
    h[i].input = kind < 5 ? Reg::read()
                 : kind < 9
                     ? Reg::write(value())
                     : Reg::cas(values ? rng.below(values) : rng.below(next_value + 1), value());
  }
  std::optional<std::int64_t> reg;
  for (std::size_t i : effect_order(slots)) {
    const auto& in = h[i].input;
    if (in.op == pods::sim::RegisterOp::read) {
      h[i].output = Reg::read_result(reg);
    } else if (in.op == pods::sim::RegisterOp::write) {
      reg = in.value;
      h[i].output = Reg::write_result();
    } else {
      const bool swaps = reg == in.expected;
      if (swaps) reg = in.value;
      h[i].output = Reg::cas_result(swaps);
    }
  }
  for (std::size_t i = 0; i < ops; ++i)
    if (slots[i].timed_out) h[i].output.reset();
  return h;
}

std::vector<KvOp> kv_history(std::uint64_t seed, std::size_t ops, int clients,
                             int timeout_percent) {
  Rng rng{seed};
  const auto slots = timing(rng, ops, clients, timeout_percent);
  std::vector<KvOp> h(ops);
  std::int64_t next_value = 0;
  for (std::size_t i = 0; i < ops; ++i) {
    const int kind = int(rng.below(4));
    std::string key = std::to_string(rng.below(8));
    key.insert(0, 1, 'k');
    h[i].client = slots[i].client;
    h[i].call = slots[i].call;
    h[i].ret = slots[i].ret;
    h[i].input = kind < 2 ? Kv::get(std::move(key))
                 : kind == 2
                     ? Kv::put(std::move(key), std::to_string(next_value++))
                     : Kv::append(std::move(key), std::to_string(next_value++).append(1, ','));
  }
  Kv::State state;
  const Kv model;
  for (std::size_t i : effect_order(slots)) {
    const auto& in = h[i].input;
    if (in.op == pods::sim::KvOp::get) {
      auto it = std::find_if(state.entries.begin(), state.entries.end(),
                             [&](const auto& e) { return e.first == in.key; });
      h[i].output = Kv::get_result(
          it == state.entries.end() ? std::nullopt : std::optional<std::string>(it->second));
    } else {
      h[i].output = Kv::put_result();
    }
    state = *model.step(state, in, std::nullopt);
  }
  for (std::size_t i = 0; i < ops; ++i)
    if (slots[i].timed_out) h[i].output.reset();
  return h;
}

// JSON lines for an outside checker.
std::string json_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}
std::string json(const Reg::Input& in) {
  switch (in.op) {
    case pods::sim::RegisterOp::read:
      return R"({"op":"read"})";
    case pods::sim::RegisterOp::write:
      return R"({"op":"write","value":)" + std::to_string(*in.value) + "}";
    case pods::sim::RegisterOp::cas:
      return R"({"op":"cas","expected":)" +
             (in.expected ? std::to_string(*in.expected) : std::string("null")) + R"(,"value":)" +
             std::to_string(*in.value) + "}";
  }
  return "{}";
}
std::string json(const Reg::Output& out) {
  return R"({"value":)" + (out.value ? std::to_string(*out.value) : std::string("null")) +
         R"(,"ok":)" + (out.ok ? "true" : "false") + "}";
}
std::string json(const Kv::Input& in) {
  static const char* names[] = {"get", "put", "append"};
  return R"({"op":")" + std::string(names[int(in.op)]) + R"(","key":")" + json_escape(in.key) +
         R"(","value":")" + json_escape(in.value) + R"("})";
}
std::string json(const Kv::Output& out) {
  return R"({"value":)" +
         (out.value ? "\"" + json_escape(*out.value) + "\"" : std::string("null")) + "}";
}

template <class Op>
void dump(const std::string& name, const std::vector<Op>& h) {
  if (dump_dir().empty()) return;
  std::string file = name;
  std::replace(file.begin(), file.end(), '/', '_');
  std::ofstream out(dump_dir() / (file + ".jsonl"));
  for (const Op& op : h) {
    out << R"({"client":)" << op.client << R"(,"input":)" << json(op.input) << R"(,"output":)"
        << (op.output ? json(*op.output) : std::string("null")) << R"(,"call":)" << op.call
        << R"(,"return":)"
        << (op.ret == pods::sim::never ? std::string("null") : std::to_string(op.ret)) << "}\n";
  }
}

template <class M, class Op>
void check_all(benchmark::State& state, const M& model,
               const std::vector<std::vector<Op>>& histories) {
  std::size_t ops = 0;
  for (const auto& h : histories)
    ops += h.size();
  pods::sim::CheckStats stats;
  for (auto _ : state) {
    stats = {};
    for (const auto& h : histories) {
      const auto r = pods::sim::check_linearizable(model, std::span<const Op>(h), {}, stats);
      if (r.verdict != pods::sim::Verdict::ok) {
        state.SkipWithError("a history of an atomic object was not found linearizable");
        return;
      }
      benchmark::DoNotOptimize(r.linearizations.data());
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * ops));
  state.counters["bytes"] = double(stats.peak_bytes);
  state.counters["configs/op"] = double(stats.configurations) / double(ops);
}

void lin_register(benchmark::State& state, const std::string& name, std::size_t ops, int clients,
                  bool unknown) {
  const auto h = register_history(1000 + ops + std::size_t(clients), ops, clients, unknown ? 5 : 0);
  dump(name, h);
  check_all(state, Reg{}, std::vector<std::vector<RegOp>>{h});
}

void lin_kv(benchmark::State& state, const std::string& name, std::size_t ops, int clients,
            bool unknown) {
  const auto h = kv_history(2000 + ops + std::size_t(clients), ops, clients, unknown ? 5 : 0);
  dump(name, h);
  check_all(state, Kv{}, std::vector<std::vector<KvOp>>{h});
}

// Jepsen's etcd test: a cas register on values 0..4, a handful of workers whose timed-out
// processes are replaced, about 80 operations per key, many timeouts.
void lin_etcd(benchmark::State& state, const std::string& name) {
  std::vector<std::vector<RegOp>> histories;
  std::size_t processes = 0;
  for (std::uint64_t k = 0; k < 100; ++k) {
    histories.push_back(register_history(3000 + k, 80, 5, 25, 5));
    dump(name + "_" + std::to_string(k), histories.back());
    std::vector<std::uint64_t> ids;
    for (const auto& op : histories.back())
      ids.push_back(op.client);
    std::sort(ids.begin(), ids.end());
    processes = std::max<std::size_t>(
        processes, std::size_t(std::unique(ids.begin(), ids.end()) - ids.begin()));
  }
  check_all(state, Reg{}, histories);
  state.counters["processes"] = double(processes);
}

void register_all() {
  for (bool unknown : {false, true}) {
    for (std::size_t ops : {10, 100, 1000, 10000, 100000}) {
      for (int clients : {5, 50}) {
        std::string args = "/";
        args.append(std::to_string(ops)).append("ops/").append(std::to_string(clients));
        args.append("clients/").append(unknown ? "unknown" : "complete");
        benchmark::RegisterBenchmark(("lin/register" + args).c_str(), lin_register,
                                     "lin/register" + args, ops, clients, unknown)
            ->Unit(benchmark::kMicrosecond);
        benchmark::RegisterBenchmark(("lin/kv" + args).c_str(), lin_kv, "lin/kv" + args, ops,
                                     clients, unknown)
            ->Unit(benchmark::kMicrosecond);
      }
    }
  }
  benchmark::RegisterBenchmark("lin/etcd", lin_etcd, std::string("lin/etcd"))
      ->Unit(benchmark::kMicrosecond);
  pods::bench::skip(
      "porcupine (Go) is not installed here: write the histories with --dump-histories=DIR and "
      "check them with porcupine for the comparison");
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<char*> args;
  for (int i = 0; i < argc; ++i) {
    const std::string_view a(argv[i]);
    if (a.starts_with("--dump-histories=")) {
      dump_dir() = std::string(a.substr(17));
      std::filesystem::create_directories(dump_dir());
      continue;
    }
    args.push_back(argv[i]);
  }
  register_all();
  return pods::bench::run(static_cast<int>(args.size()), args.data());
}

#include <pods/sim/linearizability.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

using pods::sim::check_linearizable;
using pods::sim::check_sequential;
using pods::sim::KvModel;
using pods::sim::never;
using pods::sim::Operation;
using pods::sim::Verdict;
using Reg = pods::sim::RegisterModel<int>;
using RegOp = Operation<Reg::Input, Reg::Output>;
using KvOp = Operation<KvModel::Input, KvModel::Output>;

namespace {

// A small seeded generator (SplitMix64), so every run draws the same histories.
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
  bool one_in(std::int64_t n) { return below(n) == 0; }
};

std::string key_of(const RegOp&) {
  return {};
}
std::string key_of(const KvOp& op) {
  return op.input.key;
}

template <class Op>
bool must_precede(const Op& a, const Op& b, bool per_client) {
  return a.ret < b.call && (!per_client || a.client == b.client);
}

// The definition, tried literally: every order of all operations (timed-out ones included)
// that respects the precedence, applied to the model from its initial state.
template <class M>
bool brute_force(const M& model,
                 const std::vector<Operation<typename M::Input, typename M::Output>>& h,
                 bool per_client) {
  std::vector<char> placed(h.size(), 0);
  const auto rec = [&](auto&& self, const typename M::State& state, std::size_t count) -> bool {
    if (count == h.size()) return true;
    for (std::size_t i = 0; i < h.size(); ++i) {
      if (placed[i]) continue;
      bool minimal = true;
      for (std::size_t j = 0; j < h.size() && minimal; ++j)
        if (!placed[j] && j != i && must_precede(h[j], h[i], per_client)) minimal = false;
      if (!minimal) continue;
      auto next = model.step(state, h[i].input, h[i].output);
      if (!next) continue;
      placed[i] = 1;
      if (self(self, *next, count + 1)) return true;
      placed[i] = 0;
    }
    return false;
  };
  return rec(rec, model.init(), 0);
}

// Checks that `order` is a legal prefix of a linearization of `h` (or all of it when
// `complete`): each operation's predecessors come before it and the model accepts each output.
template <class M>
bool valid_order(const M& model,
                 const std::vector<Operation<typename M::Input, typename M::Output>>& h,
                 const std::vector<std::size_t>& order, bool per_client) {
  std::vector<char> placed(h.size(), 0);
  typename M::State state = model.init();
  for (std::size_t i : order) {
    if (i >= h.size() || placed[i]) return false;
    for (std::size_t j = 0; j < h.size(); ++j)
      if (!placed[j] && j != i && must_precede(h[j], h[i], per_client)) return false;
    auto next = model.step(state, h[i].input, h[i].output);
    if (!next) return false;
    state = *next;
    placed[i] = 1;
  }
  return true;
}

// Checks the result's linearizations: on ok they cover every operation exactly once and each
// is legal on its own (partitions are independent); otherwise each is a legal prefix.
template <class M>
bool valid_result(const M& model,
                  const std::vector<Operation<typename M::Input, typename M::Output>>& h,
                  const pods::sim::CheckResult<typename M::Input, typename M::Output>& r,
                  bool per_client, bool partitioned) {
  std::vector<int> seen(h.size(), 0);
  for (const auto& lin : r.linearizations) {
    for (std::size_t i : lin) {
      if (i >= h.size()) return false;
      ++seen[i];
    }
    // A partition's order is checked on the sub-history it belongs to.
    std::vector<Operation<typename M::Input, typename M::Output>> sub;
    std::vector<std::size_t> local;
    if (partitioned) {
      std::vector<std::size_t> members;
      // the part's members: every index with the key of its first operation
      if (!lin.empty()) {
        for (std::size_t i = 0; i < h.size(); ++i)
          if (key_of(h[i]) == key_of(h[lin[0]])) members.push_back(i);
      }
      for (std::size_t i : members)
        sub.push_back(h[i]);
      for (std::size_t i : lin)
        local.push_back(static_cast<std::size_t>(std::find(members.begin(), members.end(), i) -
                                                 members.begin()));
      if (!valid_order(model, sub, local, per_client)) return false;
    } else if (!valid_order(model, h, lin, per_client)) {
      return false;
    }
  }
  for (int s : seen)
    if (s > 1 || (r.verdict == Verdict::ok && s != 1)) return false;
  return true;
}

// Times for one client's next operation: calls after the previous return, ties possible.
struct Timing {
  std::int64_t call, ret;
};
Timing next_timing(Rng& rng, std::int64_t& free_at, bool never_returns) {
  const std::int64_t call = free_at + rng.below(3);
  const std::int64_t ret = call + rng.below(6);
  free_at = ret + rng.below(2);
  return {call, never_returns ? never : ret};
}

Reg::Input random_register_input(Rng& rng) {
  switch (rng.below(3)) {
    case 0:
      return Reg::read();
    case 1:
      return Reg::write(static_cast<int>(rng.below(3)));
    default:
      return Reg::cas(rng.one_in(3) ? std::nullopt : std::optional<int>(int(rng.below(3))),
                      static_cast<int>(rng.below(3)));
  }
}
Reg::Output random_register_output(Rng& rng, const Reg::Input& in) {
  if (in.op == pods::sim::RegisterOp::read)
    return Reg::read_result(rng.one_in(4) ? std::nullopt : std::optional<int>(int(rng.below(3))));
  if (in.op == pods::sim::RegisterOp::cas) return Reg::cas_result(rng.one_in(2));
  return Reg::write_result();
}

KvModel::Input random_kv_input(Rng& rng) {
  const std::string key = rng.one_in(2) ? "a" : "b";
  const std::string value = rng.one_in(2) ? "x" : "y";
  switch (rng.below(3)) {
    case 0:
      return KvModel::get(key);
    case 1:
      return KvModel::put(key, value);
    default:
      return KvModel::append(key, value);
  }
}
KvModel::Output random_kv_output(Rng& rng, const KvModel::Input& in) {
  if (in.op != pods::sim::KvOp::get) return KvModel::put_result();
  static const char* values[] = {"x", "y", "xy", "yx", "xx", "yy"};
  return KvModel::get_result(rng.one_in(4) ? std::nullopt
                                           : std::optional<std::string>(values[rng.below(6)]));
}

// Makes a random history. With `atomic`, the outputs come from running the operations on an
// atomic object at a random point of each one's interval (so the history is linearizable),
// and then one output is sometimes changed at random; otherwise every output is random.
template <class M, class In, class Out>
std::vector<Operation<typename M::Input, typename M::Output>> random_history(Rng& rng, bool atomic,
                                                                             In&& input,
                                                                             Out&& output) {
  using Op = Operation<typename M::Input, typename M::Output>;
  const M model;
  const std::int64_t clients = 1 + rng.below(4);
  const std::int64_t n = 1 + rng.below(8);
  std::vector<std::int64_t> free_at(static_cast<std::size_t>(clients), 0);
  std::vector<Op> h;
  for (std::int64_t i = 0; i < n; ++i) {
    const auto client = static_cast<std::uint64_t>(rng.below(clients));
    const bool never_returns = rng.one_in(6);
    const Timing t = next_timing(rng, free_at[client], never_returns);
    Op op{client, input(rng), std::nullopt, t.call, t.ret};
    h.push_back(op);
  }
  if (atomic) {
    // A point for each operation inside its interval (or none for a timed-out one, sometimes).
    std::vector<std::pair<std::int64_t, std::size_t>> points;
    for (std::size_t i = 0; i < h.size(); ++i) {
      if (h[i].ret == never && rng.one_in(3)) continue;  // never took effect
      const std::int64_t end = h[i].ret == never ? h[i].call + 12 : h[i].ret;
      points.push_back({h[i].call + rng.below(end - h[i].call + 1), i});
    }
    for (std::size_t i = 0; i < points.size(); ++i)
      std::swap(points[i], points[i + static_cast<std::size_t>(rng.below(
                                          static_cast<std::int64_t>(points.size() - i)))]);
    std::stable_sort(points.begin(), points.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    typename M::State state = model.init();
    for (const auto& [at, i] : points) {
      (void)at;
      auto probe = model.step(state, h[i].input, std::nullopt);
      // The output the atomic object gives: the one the model accepts from this state.
      for (int attempt = 0; attempt < 64; ++attempt) {
        auto out = output(rng, h[i].input);
        if (model.step(state, h[i].input, out)) {
          h[i].output = out;
          break;
        }
      }
      state = *probe;
    }
    for (auto& op : h) {
      if (op.ret == never && rng.one_in(2)) op.output.reset();  // the answer never came
      if (!op.output && op.ret == never) continue;
      if (!op.output) op.output = output(rng, op.input);  // no point drawn: keep it complete
    }
    if (rng.one_in(2)) {
      auto& op = h[static_cast<std::size_t>(rng.below(static_cast<std::int64_t>(h.size())))];
      op.output = output(rng, op.input);
    }
  } else {
    for (auto& op : h) {
      if (op.ret == never && rng.one_in(2)) continue;  // timed out: output unknown
      if (rng.one_in(12)) continue;                    // answer lost, returned on time
      op.output = output(rng, op.input);
    }
  }
  for (auto& op : h)  // a few operations whose answer was lost but that did return
    if (op.output && op.ret != never && rng.one_in(15)) op.output.reset();
  return h;
}

template <class M>
struct Tally {
  int agree_ok = 0, agree_illegal = 0, disagree = 0, invalid = 0;
};

template <class M, class Gen>
Tally<M> differential(std::uint64_t seed, int count, bool per_client, bool partitioned, Gen&& gen) {
  Tally<M> t;
  Rng rng{seed};
  const M model;
  for (int k = 0; k < count; ++k) {
    auto h = gen(rng, k % 2 == 0);
    const bool expected = brute_force(model, h, per_client);
    const auto r =
        per_client
            ? check_sequential(model, std::span<const typename decltype(h)::value_type>(h))
            : check_linearizable(model, std::span<const typename decltype(h)::value_type>(h));
    const bool got = r.verdict == Verdict::ok;
    if (r.verdict == Verdict::unknown || got != expected) {
      ++t.disagree;
      UNSCOPED_INFO("seed " << seed << " history " << k << " brute force " << expected);
      for (const auto& o : h)
        UNSCOPED_INFO("  client " << o.client << " " << to_string(o.input) << " -> "
                                  << (o.output ? to_string(*o.output) : std::string("?")) << " ["
                                  << o.call << ", " << (o.ret == never ? -1 : o.ret) << "]");
    } else if (got) {
      ++t.agree_ok;
    } else {
      ++t.agree_illegal;
    }
    if (!valid_result(model, h, r, per_client, partitioned)) ++t.invalid;
  }
  return t;
}

const auto register_history = [](Rng& rng, bool atomic) {
  return random_history<Reg>(rng, atomic, random_register_input, random_register_output);
};
const auto kv_history = [](Rng& rng, bool atomic) {
  return random_history<KvModel>(rng, atomic, random_kv_input, random_kv_output);
};

RegOp op(std::uint64_t client, Reg::Input in, std::optional<Reg::Output> out, std::int64_t call,
         std::int64_t ret) {
  return RegOp{client, std::move(in), std::move(out), call, ret};
}

Verdict lin(const std::vector<RegOp>& h) {
  return check_linearizable(Reg{}, std::span<const RegOp>(h)).verdict;
}
Verdict seq(const std::vector<RegOp>& h) {
  return check_sequential(Reg{}, std::span<const RegOp>(h)).verdict;
}

}  // namespace

TEST_CASE("Model: the shipped models model it; a type without step does not", "[linearizability]") {
  struct NoStep {
    using State = int;
    using Input = int;
    using Output = int;
    int init() const { return 0; }
  };
  STATIC_REQUIRE(pods::sim::Model<Reg>);
  STATIC_REQUIRE(pods::sim::Model<pods::sim::RegisterModel<std::string>>);
  STATIC_REQUIRE(pods::sim::Model<KvModel>);
  STATIC_REQUIRE_FALSE(pods::sim::Model<NoStep>);
  STATIC_REQUIRE_FALSE(pods::sim::Model<int>);
}

TEST_CASE("RegisterModel: read, write and compare-and-set from an absent register",
          "[linearizability]") {
  const Reg m;
  CHECK(m.init() == std::nullopt);
  CHECK(m.step(std::nullopt, Reg::read(), Reg::read_result(std::nullopt)) ==
        std::optional<Reg::State>(Reg::State{}));
  CHECK_FALSE(m.step(std::nullopt, Reg::read(), Reg::read_result(1)));
  CHECK(m.step(std::nullopt, Reg::write(1), Reg::write_result()) == std::optional<Reg::State>(1));
  CHECK(m.step(1, Reg::cas(1, 2), Reg::cas_result(true)) == std::optional<Reg::State>(2));
  CHECK_FALSE(m.step(1, Reg::cas(1, 2), Reg::cas_result(false)));
  CHECK(m.step(1, Reg::cas(3, 2), Reg::cas_result(false)) == std::optional<Reg::State>(1));
  CHECK(m.step(std::nullopt, Reg::cas(std::nullopt, 2), Reg::cas_result(true)) ==
        std::optional<Reg::State>(2));
  // An unknown output is legal anywhere and leads where the input leads.
  CHECK(m.step(1, Reg::read(), std::nullopt) == std::optional<Reg::State>(1));
  CHECK(m.step(1, Reg::cas(1, 5), std::nullopt) == std::optional<Reg::State>(5));
  CHECK(m.step(1, Reg::cas(2, 5), std::nullopt) == std::optional<Reg::State>(1));
  CHECK(to_string(Reg::cas(std::nullopt, 2)) == "cas (absent)->2");
  CHECK(to_string(Reg::cas_result(false)) == "failed");
}

TEST_CASE("KvModel: get, put and append per key; one partition per key", "[linearizability]") {
  const KvModel m;
  auto s = m.step(m.init(), KvModel::put("a", "x"), KvModel::put_result());
  REQUIRE(s);
  s = m.step(*s, KvModel::append("a", "y"), std::nullopt);
  REQUIRE(s);
  s = m.step(*s, KvModel::append("b", "z"), KvModel::append_result());
  REQUIRE(s);
  CHECK(m.step(*s, KvModel::get("a"), KvModel::get_result("xy")));
  CHECK(m.step(*s, KvModel::get("b"), KvModel::get_result("z")));
  CHECK_FALSE(m.step(*s, KvModel::get("a"), KvModel::get_result("x")));
  CHECK_FALSE(m.step(*s, KvModel::get("c"), KvModel::get_result("x")));
  CHECK(m.step(*s, KvModel::get("c"), KvModel::get_result(std::nullopt)));
  const std::vector<KvOp> h = {{0, KvModel::get("b"), {}, 0, 1},
                               {0, KvModel::put("a", "1"), {}, 2, 3},
                               {1, KvModel::get("b"), {}, 0, 5}};
  CHECK(m.partition(std::span<const KvOp>(h)) ==
        std::vector<std::vector<std::size_t>>{{0, 2}, {1}});
}

TEST_CASE("check_linearizable agrees with a brute-force search on thousands of small histories",
          "[linearizability]") {
  SECTION("register") {
    const auto t = differential<Reg>(1, 4000, false, false, register_history);
    CHECK(t.disagree == 0);
    CHECK(t.invalid == 0);
    CHECK(t.agree_ok > 600);  // both answers are well represented
    CHECK(t.agree_illegal > 600);
  }
  SECTION("key-value store, partitioned by key") {
    const auto t = differential<KvModel>(2, 4000, false, true, kv_history);
    CHECK(t.disagree == 0);
    CHECK(t.invalid == 0);
    CHECK(t.agree_ok > 600);
    CHECK(t.agree_illegal > 600);
  }
}

TEST_CASE("check_sequential agrees with a brute-force search on thousands of small histories",
          "[linearizability]") {
  SECTION("register") {
    const auto t = differential<Reg>(3, 4000, true, false, register_history);
    CHECK(t.disagree == 0);
    CHECK(t.invalid == 0);
    CHECK(t.agree_ok > 600);
    CHECK(t.agree_illegal > 600);
  }
  SECTION("key-value store, partitioned by key") {
    const auto t = differential<KvModel>(4, 4000, true, false, kv_history);
    CHECK(t.disagree == 0);
    CHECK(t.invalid == 0);
    CHECK(t.agree_ok > 600);
    CHECK(t.agree_illegal > 600);
  }
}

TEST_CASE("Classic anomalies", "[linearizability]") {
  SECTION("a stale read: absent after a write completed") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), Reg::write_result(), 0, 10),
                                  op(2, Reg::read(), Reg::read_result(std::nullopt), 20, 30)};
    CHECK(lin(h) == Verdict::illegal);
    CHECK(seq(h) == Verdict::ok);  // sequentially consistent: client 2 may read first
    const auto r = check_linearizable(Reg{}, std::span<const RegOp>(h));
    CHECK(r.linearizations == std::vector<std::vector<std::size_t>>{{0}});
  }
  SECTION("the same read overlapping the write is fine") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), Reg::write_result(), 0, 25),
                                  op(2, Reg::read(), Reg::read_result(std::nullopt), 20, 30)};
    CHECK(lin(h) == Verdict::ok);
    const auto r = check_linearizable(Reg{}, std::span<const RegOp>(h));
    CHECK(r.linearizations == std::vector<std::vector<std::size_t>>{{1, 0}});
  }
  SECTION("a stale read after a newer value was read") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), Reg::write_result(), 0, 5),
                                  op(1, Reg::write(2), Reg::write_result(), 6, 40),
                                  op(2, Reg::read(), Reg::read_result(2), 10, 15),
                                  op(3, Reg::read(), Reg::read_result(1), 20, 25)};
    CHECK(lin(h) == Verdict::illegal);
  }
  SECTION("a lost update: two compare-and-sets from the same value both succeed") {
    const std::vector<RegOp> h = {op(1, Reg::write(0), Reg::write_result(), 0, 1),
                                  op(1, Reg::cas(0, 1), Reg::cas_result(true), 2, 10),
                                  op(2, Reg::cas(0, 2), Reg::cas_result(true), 3, 9)};
    CHECK(lin(h) == Verdict::illegal);
    CHECK(seq(h) == Verdict::illegal);
  }
  SECTION("a lost append") {
    const std::vector<KvOp> h = {{1, KvModel::append("k", "x"), KvModel::append_result(), 0, 5},
                                 {2, KvModel::append("k", "y"), KvModel::append_result(), 1, 6},
                                 {3, KvModel::get("k"), KvModel::get_result("y"), 10, 11}};
    CHECK(check_linearizable(KvModel{}, std::span<const KvOp>(h)).verdict == Verdict::illegal);
    const std::vector<KvOp> good = {
        h[0], h[1], {3, KvModel::get("k"), KvModel::get_result("yx"), 10, 11}};
    CHECK(check_linearizable(KvModel{}, std::span<const KvOp>(good)).verdict == Verdict::ok);
  }
  SECTION("a read of a value never written") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), Reg::write_result(), 0, 10),
                                  op(2, Reg::read(), Reg::read_result(7), 0, 30)};
    CHECK(lin(h) == Verdict::illegal);
    CHECK(seq(h) == Verdict::illegal);
  }
  SECTION("a timed-out write seen later is legal; seen before it was called is not") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), std::nullopt, 5, never),
                                  op(2, Reg::read(), Reg::read_result(std::nullopt), 10, 20),
                                  op(2, Reg::read(), Reg::read_result(1), 100, 110)};
    CHECK(lin(h) == Verdict::ok);
    const std::vector<RegOp> early = {op(1, Reg::write(1), std::nullopt, 50, never),
                                      op(2, Reg::read(), Reg::read_result(1), 10, 20)};
    CHECK(lin(early) == Verdict::illegal);
  }
  SECTION("a timed-out write that never took effect is legal") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), std::nullopt, 0, never),
                                  op(2, Reg::read(), Reg::read_result(std::nullopt), 10, 20),
                                  op(2, Reg::read(), Reg::read_result(std::nullopt), 100, 110)};
    const auto r = check_linearizable(Reg{}, std::span<const RegOp>(h));
    CHECK(r.verdict == Verdict::ok);
    CHECK(r.linearizations == std::vector<std::vector<std::size_t>>{{1, 2, 0}});  // placed last
  }
  SECTION("a lost answer with a return time took effect inside its interval") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), std::nullopt, 0, 10),
                                  op(2, Reg::read(), Reg::read_result(std::nullopt), 20, 30)};
    CHECK(lin(h) == Verdict::illegal);
  }
  SECTION("a write that definitely failed is not in the history: reading it is illegal") {
    pods::sim::History<Reg::Input, Reg::Output> history;
    history.fail(history.invoke(1, Reg::write(1)));
    const auto id = history.invoke(2, Reg::read());
    history.ok(id, Reg::read_result(1));
    const auto ops = history.operations();
    REQUIRE(ops.size() == 1);
    CHECK(check_linearizable(Reg{}, std::span<const RegOp>(ops)).verdict == Verdict::illegal);
  }
  SECTION("a recorded timeout seen later is legal") {
    pods::sim::History<Reg::Input, Reg::Output> history;
    history.unknown(history.invoke(1, Reg::write(3)));
    const auto id = history.invoke(2, Reg::read());
    history.ok(id, Reg::read_result(3));
    const auto ops = history.operations();
    CHECK(check_linearizable(Reg{}, std::span<const RegOp>(ops)).verdict == Verdict::ok);
  }
  SECTION("not sequentially consistent: two readers see two writes in opposite orders") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), Reg::write_result(), 0, 1),
                                  op(2, Reg::write(2), Reg::write_result(), 0, 1),
                                  op(3, Reg::read(), Reg::read_result(1), 2, 3),
                                  op(3, Reg::read(), Reg::read_result(2), 4, 5),
                                  op(4, Reg::read(), Reg::read_result(2), 2, 3),
                                  op(4, Reg::read(), Reg::read_result(1), 4, 5)};
    CHECK(seq(h) == Verdict::illegal);
    CHECK(lin(h) == Verdict::illegal);
  }
  SECTION("equal times are concurrent: a return at t does not precede a call at t") {
    const std::vector<RegOp> h = {op(1, Reg::write(1), Reg::write_result(), 0, 10),
                                  op(2, Reg::read(), Reg::read_result(std::nullopt), 10, 20)};
    CHECK(lin(h) == Verdict::ok);
  }
  SECTION("an empty history is linearizable") {
    const std::vector<RegOp> h;
    const auto r = check_linearizable(Reg{}, std::span<const RegOp>(h));
    CHECK(r.verdict == Verdict::ok);
    CHECK(r.linearizations == std::vector<std::vector<std::size_t>>{{}});
  }
}

TEST_CASE("Partitions are checked independently; an illegal one does not hide the others",
          "[linearizability]") {
  const std::vector<KvOp> h = {{1, KvModel::put("a", "1"), KvModel::put_result(), 0, 5},
                               {2, KvModel::get("b"), KvModel::get_result("9"), 1, 2},
                               {2, KvModel::get("a"), KvModel::get_result("1"), 6, 7}};
  const auto r = check_linearizable(KvModel{}, std::span<const KvOp>(h));
  CHECK(r.verdict == Verdict::illegal);
  CHECK(r.linearizations == std::vector<std::vector<std::size_t>>{{0, 2}, {}});
  pods::sim::CheckStats stats;
  (void)check_linearizable(KvModel{}, std::span<const KvOp>(h), {}, stats);
  CHECK(stats.partitions == 2);
  CHECK(stats.steps >= 3);
  CHECK(stats.peak_bytes > 0);
}

namespace {
// A model whose partition is whatever the test says.
struct Split {
  using State = int;
  using Input = int;
  using Output = int;
  std::vector<std::vector<std::size_t>> parts;
  int init() const { return 0; }
  std::optional<int> step(const int& s, const int&, const std::optional<int>&) const { return s; }
  std::vector<std::vector<std::size_t>> partition(std::span<const Operation<int, int>>) const {
    return parts;
  }
};

std::string error_of(auto&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no exception";
}
}  // namespace

TEST_CASE("Bad input throws std::invalid_argument naming it", "[linearizability]") {
  const std::vector<Operation<int, int>> h = {{0, 1, 1, 0, 5}, {1, 2, 2, 3, 4}};
  const std::span<const Operation<int, int>> s(h);
  CHECK(error_of([&] {
          check_linearizable(Split{{{0}, {1, 7}}}, s);
        }) ==
        "check_linearizable: model.partition returned index 7, out of range for a history of 2 "
        "operations");
  CHECK(error_of([&] {
          check_linearizable(Split{{{0, 1}, {1}}}, s);
        }) == "check_linearizable: model.partition returned index 1 twice");
  CHECK(error_of([&] { check_linearizable(Split{{{1}}}, s); }) ==
        "check_linearizable: model.partition left out operation 0");
  CHECK(check_sequential(Split{{{1}}}, s).verdict == Verdict::ok);  // sequential: one search
  CHECK(error_of([&] {
          check_sequential(Reg{}, std::span<const RegOp>{}, std::chrono::seconds(-2));
        }) == "check_sequential: budget must be >= 0 (zero: no limit), got -2000000000ns");
  CHECK(error_of([&] {
          check_linearizable(Split{{{0, 1}}}, s, std::chrono::nanoseconds(-1));
        }) == "check_linearizable: budget must be >= 0 (zero: no limit), got -1ns");
  CHECK(check_linearizable(Split{{{0, 1}}}, s).verdict == Verdict::ok);
  const std::vector<RegOp> backwards = {op(1, Reg::read(), std::nullopt, 0, 5),
                                        op(1, Reg::read(), std::nullopt, 9, 8)};
  CHECK(error_of([&] { check_linearizable(Reg{}, std::span<const RegOp>(backwards)); }) ==
        "check_linearizable: history[1] has ret (8) < call (9)");
}

namespace {
// Writes of distinct values, all concurrent, then a read of a value none of them wrote: the
// search must try every subset of the writes before it can say illegal.
std::vector<RegOp> adversarial(int writers) {
  std::vector<RegOp> h;
  for (int i = 0; i < writers; ++i)
    h.push_back(op(std::uint64_t(i), Reg::write(i), Reg::write_result(), i, 1000 + i));
  for (int i = 0; i < writers; ++i)
    h.push_back(op(std::uint64_t(i), Reg::read(), Reg::read_result(i), 500 + i, 2000));
  h.push_back(op(99, Reg::read(), Reg::read_result(-1), 3000, 3001));
  return h;
}
}  // namespace

TEST_CASE("A budget that runs out gives unknown, never a wrong answer", "[linearizability]") {
  const auto h = adversarial(40);
  const auto t0 = std::chrono::steady_clock::now();
  const auto r = check_linearizable(Reg{}, std::span<const RegOp>(h), std::chrono::nanoseconds(1));
  CHECK(r.verdict == Verdict::unknown);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
  REQUIRE(r.linearizations.size() == 1);
  CHECK(valid_order(Reg{}, h, r.linearizations[0], false));
  // A budget that runs out in the middle of the search.
  const auto t1 = std::chrono::steady_clock::now();
  const auto mid =
      check_linearizable(Reg{}, std::span<const RegOp>(h), std::chrono::milliseconds(50));
  CHECK(mid.verdict == Verdict::unknown);
  CHECK(std::chrono::steady_clock::now() - t1 < std::chrono::seconds(10));
  CHECK(valid_order(Reg{}, h, mid.linearizations[0], false));
  CHECK(mid.linearizations[0].size() > 0);
  // A generous budget does not change an answer the search can reach.
  const auto small = adversarial(4);
  CHECK(
      check_linearizable(Reg{}, std::span<const RegOp>(small), std::chrono::seconds(60)).verdict ==
      Verdict::illegal);
  CHECK_FALSE(brute_force(Reg{}, small, false));
  const std::vector<RegOp> fine(small.begin(), small.end() - 1);
  CHECK(check_linearizable(Reg{}, std::span<const RegOp>(fine), std::chrono::seconds(60)).verdict ==
        Verdict::ok);
  CHECK(brute_force(Reg{}, fine, false));
}

TEST_CASE("A long history of a linearizable register is checked in near-linear work",
          "[linearizability]") {
  // Five clients over an atomic register: every operation takes effect at a random point of
  // its interval, some time out (never return).
  Rng rng{7};
  std::vector<RegOp> h;
  std::vector<std::int64_t> free_at(5, 0);
  std::vector<std::pair<std::int64_t, std::size_t>> points;
  for (int i = 0; i < 20000; ++i) {
    const auto c = static_cast<std::size_t>(rng.below(5));
    const std::int64_t call = free_at[c] + rng.below(10);
    const std::int64_t ret = call + 1 + rng.below(30);
    free_at[c] = ret + 1;
    h.push_back(op(c, rng.one_in(2) ? Reg::read() : Reg::write(i), std::nullopt, call, ret));
    points.push_back({call + rng.below(ret - call + 1), h.size() - 1});
  }
  std::sort(points.begin(), points.end());
  std::optional<int> value;
  for (const auto& [at, i] : points) {
    (void)at;
    if (h[i].input.op == pods::sim::RegisterOp::read) {
      h[i].output = Reg::read_result(value);
    } else {
      value = h[i].input.value;
      h[i].output = Reg::write_result();
    }
  }
  for (auto& o : h)
    if (o.input.op == pods::sim::RegisterOp::write && rng.one_in(50)) {
      o.output.reset();
      o.ret = never;
    }
  pods::sim::CheckStats stats;
  const auto r = check_linearizable(Reg{}, std::span<const RegOp>(h), {}, stats);
  CHECK(r.verdict == Verdict::ok);
  CHECK(r.linearizations[0].size() == h.size());
  CHECK(valid_order(Reg{}, h, r.linearizations[0], false));
  CHECK(stats.configurations < 40 * h.size());
}

TEST_CASE("RegisterModel: a write is blind, a read and a compare-and-set are not",
          "[linearizability]") {
  const Reg m;
  CHECK(m.blind(Reg::write(1)));
  CHECK_FALSE(m.blind(Reg::read()));
  CHECK_FALSE(m.blind(Reg::cas(1, 2)));
  // What blind promises: the state after an unknown-output write is the same from any state.
  for (const Reg::State s : {Reg::State{}, Reg::State{1}, Reg::State{7}})
    CHECK(m.step(s, Reg::write(3), std::nullopt) == std::optional<Reg::State>(3));
}

TEST_CASE("Timed-out writes that take effect late are found without trying every order",
          "[linearizability]") {
  // One register, five clients; 1 in 20 operations times out (no output, never returns) and
  // half of those took effect inside their interval, so reads see values of timed-out writes.
  Rng rng{11};
  std::vector<RegOp> h;
  std::vector<std::int64_t> free_at(5, 0);
  std::vector<std::uint64_t> id = {0, 1, 2, 3, 4};
  std::uint64_t next_id = 5;
  std::vector<std::pair<std::int64_t, std::size_t>> points;
  for (int i = 0; i < 2000; ++i) {
    const auto c = static_cast<std::size_t>(rng.below(5));
    const std::int64_t call = free_at[c] + rng.below(50);
    const std::int64_t ret = call + 1 + rng.below(100);
    free_at[c] = ret + 1;
    const bool timed_out = rng.one_in(20);
    h.push_back(op(id[c], rng.one_in(2) ? Reg::read() : Reg::write(i), std::nullopt, call, ret));
    if (!timed_out || rng.one_in(2)) points.push_back({call + rng.below(ret - call + 1), i});
    if (timed_out) {
      h.back().ret = never;
      id[c] = next_id++;
    }
  }
  std::sort(points.begin(), points.end());
  std::optional<int> value;
  for (const auto& [at, i] : points) {
    (void)at;
    if (h[i].input.op == pods::sim::RegisterOp::read) {
      h[i].output = Reg::read_result(value);
    } else {
      value = h[i].input.value;
      h[i].output = Reg::write_result();
    }
  }
  for (auto& o : h)
    if (o.ret == never) o.output.reset();
  pods::sim::CheckStats stats;
  const auto r = check_linearizable(Reg{}, std::span<const RegOp>(h), {}, stats);
  CHECK(r.verdict == Verdict::ok);
  CHECK(valid_order(Reg{}, h, r.linearizations[0], false));
  // Without the masking rule every chain of timed-out writes is a new configuration: many
  // times more than this.
  CHECK(stats.configurations < 8 * h.size());
  // The same history with one read changed to a value never written is illegal.
  auto bad = h;
  for (auto& o : bad)
    if (o.input.op == pods::sim::RegisterOp::read && o.ret != never && o.call > 20000) {
      o.output = Reg::read_result(-5);
      break;
    }
  CHECK(check_linearizable(Reg{}, std::span<const RegOp>(bad)).verdict == Verdict::illegal);
}

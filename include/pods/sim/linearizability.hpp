// pods/sim/linearizability.hpp — Linearizability checking (Wing & Gong, Lowe; P-compositional)
//
// Problem:       A replicated register that passes every unit test can still let a client
//                read a value older than one another client already read, or lose a write
//                across a failover. Whether a recorded history of concurrent calls could have
//                come from one copy of the object is a search over the orders of its
//                operations, exponential when done naively.
// Solution:      A history is linearizable when every operation can be given one point in
//                time between its call and its return so that applying the operations in the
//                order of their points to the sequential model gives every output observed.
//                The checker builds such an order one operation at a time, depth first (Wing
//                & Gong 1993): an operation may go next when it was called before the earliest
//                return still pending (nothing pending finished before it started), and the
//                model accepts its output in the current state. When no operation may go next
//                it undoes the last choice and tries the next one. Lowe (2017) made this
//                practical by remembering every configuration seen — the set of operations
//                already placed and the model state they led to — and never exploring one
//                twice: two orders of the same operations that lead to the same state have the
//                same future. When the model splits a history into independent parts (one per
//                key), each part is checked on its own (P-compositionality, Horn & Kroening
//                2015): a history is linearizable exactly when every part is.
//                check_sequential runs the same search with each client's own order in place
//                of real-time order (sequential consistency, Lamport 1979), over the whole
//                history: that property is not compositional.
// Guarantees:    Verdict::ok and Verdict::illegal are exact answers of the definition above
//                (no heuristics, no hash-only comparisons). An operation with an unknown output
//                is accepted in any state; one whose ret is `never` may be placed anywhere
//                after its call, and one with both (a timed-out call) may also never take
//                effect. When ok, linearizations[p] lists every operation of partition p in an
//                order that explains the history; when illegal, the longest legal prefix
//                found in a partition that has none. Verdict::unknown only when the budget ran
//                out, never a guess.
// Not provided:  Nondeterministic models (step returns one state); a parallel search (run one
//                check per thread); checking while the history is recorded.
// Thread safety: check_linearizable and check_sequential are reentrant: concurrent calls on
//                different or the same const arguments are safe. The models are immutable.
// Errors:        std::invalid_argument naming it when an operation has ret < call, when the
//                budget is negative, or when model.partition returns an index out of range, a
//                duplicated index, or leaves an operation out. Whatever the model throws
//                propagates. std::bad_alloc when memory runs out.
// Cost:          Exponential in the worst case (the problem is NP-complete, Gibbons & Korach
//                1997); for histories of real systems, close to linear: each configuration is
//                stored once in a flat open-addressing table of 16-byte entries, keyed by an
//                incremental (Zobrist) hash of the set and the interned state id, holding only the
//                window of the set's bitset between its all-ones prefix and all-zeros suffix (a few
//                words where the history's concurrency is low). The inner loop allocates only when
//                a new configuration or a new model state is stored. Each model state is stored
//                once (interned, found by std::hash<State> when it exists, else by comparing
//                it with every state seen: give large models a hash). Timed-out operations
//                (no output, ret = never) stay candidates to the end, so each configuration
//                where the search backtracks tries every pending one; a timed-out operation
//                that hides the effect of the timed-out one just placed (a blind write) is
//                skipped, so one dead end costs one configuration per pending timed-out
//                operation, not one per chain of them. Declare blind() on the model to make
//                that skip free of model calls.
// Example:
//   using Reg = pods::sim::RegisterModel<int>;
//   std::vector<pods::sim::Operation<Reg::Input, Reg::Output>> h = {
//       {1, Reg::write(1), Reg::write_result(), 0, 10},
//       {2, Reg::read(), Reg::read_result(1), 5, 15},      // concurrent with the write: fine
//       {3, Reg::read(), Reg::read_result(std::nullopt), 20, 30}};  // after both: stale
//   auto result = pods::sim::check_linearizable(Reg{}, std::span(h));
//   // result.verdict == Verdict::illegal; result.linearizations[0] == {0, 1}
#pragma once

#include <pods/policy/random.hpp>
#include <pods/sim/history.hpp>

#include <algorithm>
#include <bit>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <ostream>
#include <span>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pods::sim {

// A sequential specification. step() returns the state after applying `input` to `state`
// when `output` is a legal answer there, and nullopt when it is not. An unknown output
// (nullopt) is legal in every state: step then returns the state the input leads to.
// Optional members, used when present:
//   m.partition(std::span<const Operation<Input, Output>>) -> std::vector<std::vector<std::size_t>>
//     (independent sub-histories, e.g. one per key; indices into the span, each exactly once),
//   std::hash<State> (faster memoisation),
//   m.read_only(input, output) -> bool: true only when step(s, input, output) returns s in
//     every state s where it is legal (a read; a compare-and-set that reported failure). The
//     search then places such an operation as soon as it is legal, without trying others.
//   m.blind(input) -> bool: true only when step(s, input, nullopt) returns one and the same
//     state for every s (a write that ignores what it overwrites). After one timed-out
//     operation the search then skips the timed-out blind ones without calling step: each
//     hides the effect of the one before it.
// clang-format off
template <class M>
concept Model = requires(const M& m, const typename M::State& s, const typename M::Input& in,
                         const std::optional<typename M::Output>& out) {
  typename M::State;
  typename M::Input;
  typename M::Output;
  { m.init() } -> std::convertible_to<typename M::State>;
  { m.step(s, in, out) } -> std::same_as<std::optional<typename M::State>>;
} && std::equality_comparable<typename M::State>;
// clang-format on

enum class Verdict { ok, illegal, unknown };  // unknown: the time budget ran out first

template <class Input, class Output>
struct CheckResult {
  Verdict verdict;
  // For each partition, the longest prefix of a linearization found (operation indices in
  // linearization order): the whole history when ok, the point where it got stuck when illegal.
  std::vector<std::vector<std::size_t>> linearizations;
};

// What a check cost; filled by the overloads that take a CheckStats&.
struct CheckStats {
  std::size_t partitions = 0;        // searches run
  std::uint64_t configurations = 0;  // (set, state) pairs stored, summed over partitions
  std::uint64_t steps = 0;           // calls of model.step, summed over partitions
  std::uint64_t backtracks = 0;      // choices undone, summed over partitions
  std::size_t states = 0;            // distinct model states, the most in one partition
  std::size_t peak_bytes = 0;        // bytes the search held, the most in one partition
};

inline const char* to_string(Verdict v) noexcept {
  switch (v) {
    case Verdict::ok:
      return "ok";
    case Verdict::illegal:
      return "illegal";
    case Verdict::unknown:
      return "unknown";
  }
  return "?";
}

inline std::ostream& operator<<(std::ostream& os, Verdict v) {
  return os << to_string(v);
}

namespace detail::lin {

// clang-format off
template <class M>
concept HasPartition = requires(const M& m,
                                std::span<const Operation<typename M::Input, typename M::Output>> h) {
  { m.partition(h) } -> std::convertible_to<std::vector<std::vector<std::size_t>>>;
};
template <class M>
concept HasReadOnly = requires(const M& m, const typename M::Input& in,
                               const std::optional<typename M::Output>& out) {
  { m.read_only(in, out) } -> std::convertible_to<bool>;
};
template <class M>
concept HasBlind = requires(const M& m, const typename M::Input& in) {
  { m.blind(in) } -> std::convertible_to<bool>;
};
template <class T>
concept StdHashable = requires(const T& t) {
  { std::hash<T>{}(t) } -> std::convertible_to<std::size_t>;
};
// clang-format on

using pods::detail::mix64;  // <pods/policy/random.hpp>

inline constexpr std::uint32_t kNone = std::numeric_limits<std::uint32_t>::max();

// The time budget: checked every few thousand steps, so the clock costs nothing measurable.
class Deadline {
 public:
  explicit Deadline(std::chrono::nanoseconds budget)
      : limited_(budget.count() > 0),
        at_(limited_ ? std::chrono::steady_clock::now() + budget
                     : std::chrono::steady_clock::time_point::max()) {}
  bool expired() {
    if (!limited_) return false;
    if (expired_) return true;
    expired_ = std::chrono::steady_clock::now() >= at_;
    return expired_;
  }

 private:
  bool limited_;
  bool expired_ = false;
  std::chrono::steady_clock::time_point at_;
};

// StateTable: every distinct model state once; the search refers to states by index, so a
// configuration is two integers and comparing states is comparing indices.
template <class State>
class StateTable {
 public:
  StateTable() : slots_(16, kNone) {}

  // Returns the index of `s`, storing it when new. Allocates when new.
  std::uint32_t intern(State&& s) {
    const std::uint64_t h = hash_of(s);
    std::size_t mask = slots_.size() - 1;
    for (std::size_t i = mix64(h) & mask;; i = (i + 1) & mask) {
      const std::uint32_t id = slots_[i];
      if (id == kNone) break;
      if (hashes_[id] == h && states_[id] == s) return id;
    }
    const auto id = static_cast<std::uint32_t>(states_.size());
    states_.push_back(std::move(s));
    hashes_.push_back(h);
    if (states_.size() * 2 > slots_.size()) {
      slots_.assign(slots_.size() * 2, kNone);
      for (std::uint32_t j = 0; j < states_.size(); ++j)
        place(j);
    } else {
      place(id);
    }
    return id;
  }
  // Returns the index of `s`, or kNone when it was never stored. Does not allocate.
  std::uint32_t find(const State& s) const {
    const std::uint64_t h = hash_of(s);
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = mix64(h) & mask;; i = (i + 1) & mask) {
      const std::uint32_t id = slots_[i];
      if (id == kNone) return kNone;
      if (hashes_[id] == h && states_[id] == s) return id;
    }
  }
  const State& operator[](std::uint32_t id) const { return states_[id]; }
  std::size_t size() const { return states_.size(); }
  std::size_t bytes() const {
    return states_.capacity() * sizeof(State) + hashes_.capacity() * 8 + slots_.capacity() * 4;
  }

 private:
  static std::uint64_t hash_of(const State& s) {
    if constexpr (StdHashable<State>) {
      return static_cast<std::uint64_t>(std::hash<State>{}(s));
    } else {
      return 0;  // every state in one probe chain: found by comparing with each
    }
  }
  void place(std::uint32_t id) {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = mix64(hashes_[id]) & mask;
    while (slots_[i] != kNone)
      i = (i + 1) & mask;
    slots_[i] = id;
  }

  std::vector<State> states_;
  std::vector<std::uint64_t> hashes_;
  std::vector<std::uint32_t> slots_;  // open addressing, linear probing; kNone: empty
};

// WindowBits: a set of n indices as a bitset that knows its window: every word below `lo` is
// full, every word at or above `hi` is zero. (lo, words[lo, hi)) identifies the set, and it is
// short when the members are a prefix plus a few more, the usual shape of a linearized set.
class WindowBits {
 public:
  explicit WindowBits(std::size_t n) : words_((n + 63) / 64, 0), n_(n) {}

  struct Mark {
    std::uint32_t lo, hi;
  };
  Mark mark() const { return {lo_, hi_}; }

  // Adds index i (not yet a member).
  void set(std::size_t i) {
    const auto w = static_cast<std::uint32_t>(i >> 6);
    words_[w] |= std::uint64_t{1} << (i & 63);
    if (w >= hi_) hi_ = w + 1;
    while (lo_ < words_.size() && words_[lo_] == full(lo_))
      ++lo_;
  }
  // Removes index i, restoring the window saved by mark() before its set().
  void clear(std::size_t i, Mark m) {
    words_[i >> 6] &= ~(std::uint64_t{1} << (i & 63));
    lo_ = m.lo;
    hi_ = m.hi;
  }
  bool test(std::size_t i) const { return (words_[i >> 6] >> (i & 63)) & 1; }
  std::uint64_t word(std::size_t w) const { return words_[w]; }
  std::uint32_t lo() const { return lo_; }
  std::uint32_t length() const { return hi_ > lo_ ? hi_ - lo_ : 0; }
  const std::uint64_t* window() const { return words_.data() + lo_; }

 private:
  std::uint64_t full(std::size_t w) const {
    const std::size_t tail = n_ & 63;
    return (w + 1 < words_.size() || tail == 0) ? ~std::uint64_t{0}
                                                : (std::uint64_t{1} << tail) - 1;
  }
  std::vector<std::uint64_t> words_;
  std::size_t n_;
  std::uint32_t lo_ = 0, hi_ = 0;
};

// ConfigurationCache: the configurations (placed set, state) seen, in one flat open-addressing
// table; the bitset windows live in one arena. The key is the known operations placed and the
// state; the free operations placed are compared by inclusion: a configuration with the same
// known set and state and *fewer* free operations placed can do everything this one can (a
// free operation is never needed by what follows, only allowed), so this one adds nothing.
class ConfigurationCache {
 public:
  ConfigurationCache() : table_(64) {}

  // Says whether the search has free operations; without them no free window is stored.
  void track_free(bool on) { with_free_ = on; }

  // Inserts the configuration and returns true unless it, or one that subsumes it, is there.
  // Allocates when it inserts.
  bool insert(std::uint64_t known_hash, std::uint32_t state, const WindowBits& known,
              const WindowBits& free) {
    const auto key = static_cast<std::uint32_t>(
        mix64(known_hash ^ (std::uint64_t{state} * 0x9E3779B97F4A7C15ULL)));
    std::size_t mask = table_.size() - 1;
    std::size_t i = key & mask;
    for (;; i = (i + 1) & mask) {
      const Entry& e = table_[i];
      if (e.state == kNone) break;
      if (e.key == key && e.state == state && subsumes(e, known, free)) return false;
    }
    Entry& e = table_[i];
    e.key = key;
    e.state = state;
    e.offset = arena_.size();
    arena_.push_back(std::uint64_t{known.lo()} | std::uint64_t{known.length()} << 32);
    if (with_free_) arena_.push_back(std::uint64_t{free.lo()} | std::uint64_t{free.length()} << 32);
    arena_.insert(arena_.end(), known.window(), known.window() + known.length());
    if (with_free_) arena_.insert(arena_.end(), free.window(), free.window() + free.length());
    if (++count_ * 10 > table_.size() * 7) grow();  // load at most 0.7
    return true;
  }
  std::size_t size() const { return count_; }
  std::size_t bytes() const {
    return table_.capacity() * sizeof(Entry) + arena_.capacity() * sizeof(std::uint64_t);
  }

 private:
  // 16 bytes: 32 bits of the key (enough to index any table that fits in memory; equal keys
  // are confirmed by the windows), the state, and where the windows are. The arena holds, at
  // `offset`, a word with the known window's first word index and length, the same for the
  // free window when the search has free operations, then the windows.
  struct Entry {
    std::uint32_t key = 0;
    std::uint32_t state = kNone;  // kNone: empty slot
    std::uint64_t offset = 0;
  };
  // Returns whether the stored configuration has the same known set and a subset of the free
  // operations placed.
  bool subsumes(const Entry& e, const WindowBits& known, const WindowBits& free) const {
    const std::uint64_t* stored = arena_.data() + e.offset;
    const auto length = static_cast<std::uint32_t>(stored[0] >> 32);
    if (static_cast<std::uint32_t>(stored[0]) != known.lo() || length != known.length())
      return false;
    std::uint32_t free_lo = 0, free_length = 0;
    if (with_free_) {
      free_lo = static_cast<std::uint32_t>(stored[1]);
      free_length = static_cast<std::uint32_t>(stored[1] >> 32);
      ++stored;
    }
    ++stored;
    if (std::memcmp(stored, known.window(), std::size_t{length} * 8) != 0) return false;
    // Words below free_lo are full in the stored set: they must be full here too.
    if (free.lo() < free_lo) return false;
    stored += length;
    for (std::uint32_t w = 0; w < free_length; ++w)
      if (stored[w] & ~free.word(free_lo + w)) return false;
    return true;
  }
  void grow() {
    std::vector<Entry> old(table_.size() * 2);
    old.swap(table_);
    const std::size_t mask = table_.size() - 1;
    for (const Entry& e : old) {
      if (e.state == kNone) continue;
      std::size_t i = e.key & mask;
      while (table_[i].state != kNone)
        i = (i + 1) & mask;
      table_[i] = e;
    }
  }

  std::vector<Entry> table_;
  std::vector<std::uint64_t> arena_;
  std::size_t count_ = 0;
  bool with_free_ = true;
};

// Search: the memoised depth-first search over one partition.
//
// Operations are split in two. A "known" operation (its output is known, or its return time
// is) must be placed. A "free" one (output unknown and ret == never: a timed-out call) may
// be placed at any point after its call, or never: placing it last is always legal, so the
// search places it only where it changes the state, and adds the rest at the end of a
// linearization it finds.
//
// Each group (the whole partition for linearizability, one client for sequential
// consistency) keeps four doubly linked lists of the operations not yet placed: known
// calls by call time, known returns by return time, free calls by call time, and the free
// calls the model does not declare blind, by call time. An operation
// may go next when its call is at or before the earliest return pending in its group. Placing
// an operation unlinks it; undoing relinks it (the lists are restored in reverse order, so
// the unlinked node still points at its neighbours: Knuth's dancing links).
template <Model M>
class Search {
 public:
  using Input = typename M::Input;
  using Output = typename M::Output;
  using State = typename M::State;
  using Op = Operation<Input, Output>;

  Search(const M& model, std::span<const Op> history, const std::vector<std::size_t>& members,
         bool per_client)
      : model_(model), history_(history) {
    // Groups: one, or one per client in client order. Operations sorted by (group, call).
    std::map<std::uint64_t, std::uint32_t> groups;
    if (per_client)
      for (std::size_t i : members)
        groups.emplace(history[i].client, 0);
    std::uint32_t next_group = 0;
    for (auto& [client, g] : groups)
      g = next_group++;
    g_ = std::max<std::uint32_t>(next_group, 1);
    struct Member {
      std::uint32_t group;
      std::int64_t call;
      std::size_t index;
      bool operator<(const Member& o) const {
        return std::tie(group, call, index) < std::tie(o.group, o.call, o.index);
      }
    };
    std::vector<Member> known, free;
    for (std::size_t i : members) {
      const Op& op = history[i];
      const std::uint32_t group = per_client ? groups[op.client] : 0;
      (!op.output && op.ret == never ? free : known).push_back(Member{group, op.call, i});
    }
    std::sort(known.begin(), known.end());
    std::sort(free.begin(), free.end());
    n_ = static_cast<std::uint32_t>(known.size());
    f_ = static_cast<std::uint32_t>(free.size());

    // Local ids: known operations 0..n-1, free ones n..n+f-1.
    const std::size_t total = std::size_t{n_} + f_;
    origin_.resize(total);
    call_.resize(total);
    ret_.resize(n_);
    group_.resize(total);
    zobrist_.resize(total);
    memo_state_.assign(total, kNone);
    read_only_.assign(total, 0);
    blind_.assign(total, 0);
    memo_next_.assign(total, kNone);
    memo2_state_.assign(total, kNone);
    memo2_next_.assign(total, kNone);
    for (std::uint32_t i = 0; i < n_; ++i) {
      origin_[i] = known[i].index;
      group_[i] = known[i].group;
    }
    for (std::uint32_t i = 0; i < f_; ++i) {
      origin_[n_ + i] = free[i].index;
      group_[n_ + i] = free[i].group;
    }
    for (std::size_t i = 0; i < total; ++i) {
      call_[i] = history[origin_[i]].call;
      zobrist_[i] = mix64(0x243F6A8885A308D3ULL + i * 0x9E3779B97F4A7C15ULL);
    }
    for (std::uint32_t i = 0; i < n_; ++i) {
      ret_[i] = history[origin_[i]].ret;
      if constexpr (HasReadOnly<M>) {
        const Op& o = history[origin_[i]];
        read_only_[i] = model.read_only(o.input, o.output) ? 1 : 0;
      }
    }
    if constexpr (HasBlind<M>) {
      for (std::size_t i = n_; i < total; ++i)
        blind_[i] = model.blind(history[origin_[i]].input) ? 1 : 0;
    }

    // The lists: nodes are local ids (free lists: id - n), sentinel of group g at size + g.
    const auto build = [&](std::vector<std::uint32_t>& next, std::vector<std::uint32_t>& prev,
                           std::uint32_t size, const std::vector<std::uint32_t>& order,
                           std::uint32_t base) {
      next.assign(size + g_, 0);
      prev.assign(size + g_, 0);
      std::vector<std::uint32_t> last(g_);
      for (std::uint32_t g = 0; g < g_; ++g)
        last[g] = size + g;
      for (std::uint32_t node : order) {
        const std::uint32_t g = group_[node + base];
        next[last[g]] = node;
        prev[node] = last[g];
        last[g] = node;
      }
      for (std::uint32_t g = 0; g < g_; ++g) {
        next[last[g]] = size + g;
        prev[size + g] = last[g];
      }
    };
    std::vector<std::uint32_t> order(n_);
    for (std::uint32_t i = 0; i < n_; ++i)
      order[i] = i;
    build(call_next_, call_prev_, n_, order, 0);
    std::stable_sort(order.begin(), order.end(), [&](std::uint32_t a, std::uint32_t b) {
      if (group_[a] != group_[b]) return group_[a] < group_[b];
      return ret_[a] < ret_[b];
    });
    build(ret_next_, ret_prev_, n_, order, 0);
    order.resize(f_);
    for (std::uint32_t i = 0; i < f_; ++i)
      order[i] = i;
    build(free_next_, free_prev_, f_, order, n_);
    order.erase(std::remove_if(order.begin(), order.end(),
                               [&](std::uint32_t x) { return blind_[n_ + x] != 0; }),
                order.end());
    build(open_next_, open_prev_, f_, order, n_);
    known_ = WindowBits(n_);
    free_ = WindowBits(f_);
    cache_.track_free(f_ > 0);
  }

  // Runs the search; returns ok, illegal, or unknown when `deadline` expired first.
  Verdict run(Deadline& deadline) {
    state_ = states_.intern(State(model_.init()));
    frames_.reserve(std::size_t{n_} + f_);
    remaining_ = n_;
    std::uint64_t tick = 0;
    // The cursor over the candidates: group g, list (known calls in call order, then free calls
    // latest first), node.
    std::uint32_t g = 0;
    bool in_free = false;
    std::uint32_t node = call_next_[n_];
    if (!settle(g, in_free, node)) return Verdict::illegal;

    for (;;) {
      if (remaining_ == 0) {
        finish();
        return Verdict::ok;
      }
      if ((++tick & 4095) == 0 && deadline.expired()) {
        keep_longest();
        return Verdict::unknown;
      }
      // The earliest pending return of group g bounds the calls that may go next.
      const std::uint32_t first_ret = ret_next_[n_ + g];
      const std::int64_t bound = first_ret == n_ + g ? never : ret_[first_ret];
      std::uint32_t op;
      if (!in_free) {
        if (node == n_ + g || call_[node] > bound) {
          in_free = true;
          node = last_free(g, bound);
          continue;
        }
        op = node;
      } else {
        if (node == f_ + g) {
          if (++g < g_) {
            in_free = false;
            node = call_next_[n_ + g];
            continue;
          }
          // No operation may go next here.
          if (!backtrack(g, in_free, node)) return Verdict::illegal;
          continue;
        }
        op = n_ + node;
      }

      // Try `op` next.
      const std::uint32_t after = transition(state_, op);
      bool descend = false, forced = false;
      if (after != kNone) {
        // A known operation that only observes (the model's read_only says it leaves every
        // state where it is legal as it is) can go first in any completion of this
        // configuration: it is minimal, and moving it forward changes no state. So it is
        // placed without trying the alternatives. A free operation that changes nothing
        // here is never placed here: dropping it is just as good.
        forced = op < n_ && read_only_[op] && after == state_;
        if (op < n_ || (after != state_ && !masks_previous(op, after))) {
          WindowBits& bits = op < n_ ? known_ : free_;
          const std::size_t bit = op < n_ ? op : op - n_;
          const WindowBits::Mark mark = bits.mark();
          bits.set(bit);
          const std::uint64_t hash = op < n_ ? set_hash_ ^ zobrist_[op] : set_hash_;
          if (cache_.insert(hash, after, known_, free_)) {
            if (agree_ == frames_.size() && agree_ < longest_.size() && longest_[agree_] == op)
              ++agree_;
            frames_.push_back(Frame{op, state_, mark, forced});
            set_hash_ = hash;
            unlink(op);
            state_ = after;
            if (op < n_) --remaining_;
            descend = true;
          } else {
            bits.clear(bit, mark);
          }
        }
      }
      if (descend) {
        if (!settle(g, in_free, node)) return Verdict::illegal;
      } else if (forced) {
        // The one completion worth trying was seen before and failed: so does this one.
        if (!backtrack(g, in_free, node)) return Verdict::illegal;
      } else {
        node = in_free ? free_list_prev()[node] : call_next_[node];
      }
    }
  }

  // The linearization found (ok) or the longest prefix (otherwise), as history indices.
  std::vector<std::size_t> linearization() const {
    std::vector<std::size_t> out;
    out.reserve(longest_.size());
    for (std::uint32_t op : longest_)
      out.push_back(origin_[op]);
    return out;
  }

  void add_to(CheckStats& stats) const {
    ++stats.partitions;
    stats.configurations += cache_.size();
    stats.steps += steps_;
    stats.backtracks += backtracks_;
    stats.states = std::max(stats.states, states_.size());
    const std::size_t bytes =
        cache_.bytes() + states_.bytes() +
        (origin_.capacity() + call_.capacity() + ret_.capacity() + zobrist_.capacity()) * 8 +
        (group_.capacity() + memo_state_.capacity() + memo_next_.capacity() +
         call_next_.capacity() * 2 + ret_next_.capacity() * 2 + free_next_.capacity() * 4) *
            4 +
        longest_.capacity() * 4 + (std::size_t{n_} + f_) * sizeof(Frame);
    stats.peak_bytes = std::max(stats.peak_bytes, bytes);
  }

 private:
  struct Frame {
    std::uint32_t op;
    std::uint32_t state;  // before op
    WindowBits::Mark mark;
    bool forced;  // placed without alternatives: undoing it undoes its parent too
  };

  // Returns the state after `op` in `state`, or kNone when its output is illegal there.
  // Remembers the last answer per operation: a retry in the same state costs no model call.
  std::uint32_t transition(std::uint32_t state, std::uint32_t op) {
    if (memo_state_[op] == state) return memo_next_[op];
    const Op& o = history_[origin_[op]];
    ++steps_;
    std::optional<State> next = model_.step(states_[state], o.input, o.output);
    const std::uint32_t id = next ? states_.intern(std::move(*next)) : kNone;
    memo_state_[op] = state;
    memo_next_[op] = id;
    return id;
  }

  // Returns the free candidate of group g called last (at or before `bound`), or the list's
  // sentinel. Free candidates are tried latest call first: a timed-out call that took effect
  // did so soon after it was made, so the one a stuck read needs is usually a recent one. The
  // order changes only how soon a linearization is found, never the verdict: every candidate
  // is still tried.
  std::uint32_t last_free(std::uint32_t g, std::int64_t bound) const {
    const std::vector<std::uint32_t>& prev = free_list_prev();
    std::uint32_t x = prev[f_ + g];
    while (x != f_ + g && call_[n_ + x] > bound)
      x = prev[x];
    return x;
  }
  // Returns the free list the current configuration iterates: after a free operation, only
  // the ones that are not blind (a blind one masks it, see masks_previous, so it is skipped
  // without a model call); otherwise all of them.
  const std::vector<std::uint32_t>& free_list_prev() const {
    return !frames_.empty() && frames_.back().op >= n_ ? open_prev_ : free_prev_;
  }

  // Returns whether the free operation `op`, leading to `after` here, may be skipped because
  // the configuration was reached by placing another free operation Y, and `op` leads to the
  // same state from the one before Y: `op` masks Y's effect (a blind write after a blind
  // write). Any completion that places Y then `op` here is a completion of the sibling that
  // places `op` alone (same known set, same state, one free operation fewer placed, and Y,
  // which never returns, precedes nothing). That sibling is a candidate of the parent (same
  // known set: same bound), which tries every candidate: it was tried before Y, or it will be
  // tried after Y fails. The parent's other state is compared by value, without interning it.
  bool masks_previous(std::uint32_t op, std::uint32_t after) {
    if (frames_.empty() || frames_.back().op < n_) return false;
    const std::uint32_t before = frames_.back().state;
    if (memo2_state_[op] != before) {
      const Op& o = history_[origin_[op]];
      ++steps_;
      std::optional<State> next = model_.step(states_[before], o.input, o.output);
      memo2_state_[op] = before;
      memo2_next_[op] = next ? states_.find(*next) : kNone;
    }
    return memo2_next_[op] == after;
  }

  void unlink(std::uint32_t op) {
    if (op < n_) {
      call_next_[call_prev_[op]] = call_next_[op];
      call_prev_[call_next_[op]] = call_prev_[op];
      ret_next_[ret_prev_[op]] = ret_next_[op];
      ret_prev_[ret_next_[op]] = ret_prev_[op];
    } else {
      const std::uint32_t x = op - n_;
      free_next_[free_prev_[x]] = free_next_[x];
      free_prev_[free_next_[x]] = free_prev_[x];
      if (!blind_[op]) {
        open_next_[open_prev_[x]] = open_next_[x];
        open_prev_[open_next_[x]] = open_prev_[x];
      }
    }
  }
  void relink(std::uint32_t op) {
    if (op < n_) {
      ret_next_[ret_prev_[op]] = op;
      ret_prev_[ret_next_[op]] = op;
      call_next_[call_prev_[op]] = op;
      call_prev_[call_next_[op]] = op;
    } else {
      const std::uint32_t x = op - n_;
      if (!blind_[op]) {
        open_next_[open_prev_[x]] = x;
        open_prev_[open_next_[x]] = x;
      }
      free_next_[free_prev_[x]] = x;
      free_prev_[free_next_[x]] = x;
    }
  }

  // Places every read-only operation that is legal now, before any choice is tried here
  // (each has no alternatives, see run), and points the cursor at the first candidate.
  // Returns false when that made the search fail: illegal.
  bool settle(std::uint32_t& g, bool& in_free, std::uint32_t& node) {
    for (;;) {
      g = 0;
      in_free = false;
      node = call_next_[n_];
      if (remaining_ == 0) return true;
      const std::uint32_t op = first_read_only();
      if (op == kNone) return true;
      const WindowBits::Mark mark = known_.mark();
      known_.set(op);
      const std::uint64_t hash = set_hash_ ^ zobrist_[op];
      if (!cache_.insert(hash, state_, known_, free_)) {
        known_.clear(op, mark);
        return backtrack(g, in_free, node);
      }
      if (agree_ == frames_.size() && agree_ < longest_.size() && longest_[agree_] == op) ++agree_;
      frames_.push_back(Frame{op, state_, mark, true});
      set_hash_ = hash;
      unlink(op);
      --remaining_;
    }
  }

  // Returns a candidate that is read-only and legal in the current state, or kNone.
  std::uint32_t first_read_only() {
    for (std::uint32_t g = 0; g < g_; ++g) {
      const std::uint32_t first_ret = ret_next_[n_ + g];
      const std::int64_t bound = first_ret == n_ + g ? never : ret_[first_ret];
      for (std::uint32_t op = call_next_[n_ + g]; op != n_ + g && call_[op] <= bound;
           op = call_next_[op])
        if (read_only_[op] && transition(state_, op) == state_) return op;
    }
    return kNone;
  }

  // Undoes choices up to and including the last one that has alternatives, and points the
  // cursor at the candidate after it. Returns false when there is none: illegal.
  bool backtrack(std::uint32_t& g, bool& in_free, std::uint32_t& node) {
    keep_longest();
    for (;;) {
      if (frames_.empty()) return false;
      const Frame f = frames_.back();
      frames_.pop_back();
      ++backtracks_;
      relink(f.op);
      state_ = f.state;
      if (f.op < n_) {
        set_hash_ ^= zobrist_[f.op];
        known_.clear(f.op, f.mark);
        ++remaining_;
      } else {
        free_.clear(f.op - n_, f.mark);
      }
      if (agree_ > frames_.size()) agree_ = frames_.size();
      if (f.forced) continue;
      g = group_[f.op];
      in_free = f.op >= n_;
      node = in_free ? free_list_prev()[f.op - n_] : call_next_[f.op];
      return true;
    }
  }

  // Keeps the current path when it is the longest seen, copying only what differs from the
  // one kept (agree_: how long a prefix of the path equals the kept one).
  void keep_longest() {
    if (frames_.size() <= longest_.size()) return;
    longest_.resize(agree_);
    for (std::size_t i = agree_; i < frames_.size(); ++i)
      longest_.push_back(frames_[i].op);
    agree_ = frames_.size();
  }
  // Keeps the path as the linearization and appends the free operations never placed.
  void finish() {
    longest_.clear();
    for (const Frame& f : frames_)
      longest_.push_back(f.op);
    for (std::uint32_t x = 0; x < f_; ++x)
      if (!free_.test(x)) longest_.push_back(n_ + x);
  }

  const M& model_;
  std::span<const Op> history_;
  std::uint32_t n_ = 0, f_ = 0, g_ = 1;
  std::vector<std::size_t> origin_;  // local id -> history index
  std::vector<std::int64_t> call_, ret_;
  std::vector<std::uint32_t> group_;
  std::vector<std::uint64_t> zobrist_;  // a random word per operation; a set hashes to the XOR
  std::vector<std::uint32_t> memo_state_, memo_next_;
  std::vector<std::uint32_t> memo2_state_, memo2_next_;  // masks_previous: the parent's state
  std::vector<char> read_only_;  // the model says the operation never changes a state
  std::vector<char> blind_;      // free, and the model says its result ignores the state
  std::vector<std::uint32_t> call_next_, call_prev_, ret_next_, ret_prev_, free_next_, free_prev_;
  std::vector<std::uint32_t> open_next_, open_prev_;  // the free operations that are not blind
  StateTable<State> states_;
  ConfigurationCache cache_;
  WindowBits known_{0}, free_{0};  // the placed known and free operations
  std::uint64_t set_hash_ = 0;     // XOR of the Zobrist words of the placed known operations
  std::uint32_t state_ = kNone;
  std::uint32_t remaining_ = 0;  // known operations not placed
  std::vector<Frame> frames_;
  std::vector<std::uint32_t> longest_;
  std::size_t agree_ = 0;
  std::uint64_t steps_ = 0, backtracks_ = 0;
};

template <Model M>
CheckResult<typename M::Input, typename M::Output> check(
    const char* what, const M& model,
    std::span<const Operation<typename M::Input, typename M::Output>> history,
    std::chrono::nanoseconds budget, bool per_client, CheckStats* stats) {
  const std::string name(what);
  if (budget.count() < 0)
    throw std::invalid_argument(name + ": budget must be >= 0 (zero: no limit), got " +
                                std::to_string(budget.count()) + "ns");
  for (std::size_t i = 0; i < history.size(); ++i) {
    if (history[i].ret < history[i].call)
      throw std::invalid_argument(name + ": history[" + std::to_string(i) + "] has ret (" +
                                  std::to_string(history[i].ret) + ") < call (" +
                                  std::to_string(history[i].call) + ")");
  }
  std::vector<std::vector<std::size_t>> parts;
  bool partitioned = false;
  if constexpr (HasPartition<M>) partitioned = !per_client;
  if (partitioned) {
    if constexpr (HasPartition<M>) parts = model.partition(history);
    std::vector<char> seen(history.size(), 0);
    for (const auto& part : parts) {
      for (std::size_t i : part) {
        if (i >= history.size())
          throw std::invalid_argument(name + ": model.partition returned index " +
                                      std::to_string(i) + ", out of range for a history of " +
                                      std::to_string(history.size()) + " operations");
        if (seen[i])
          throw std::invalid_argument(name + ": model.partition returned index " +
                                      std::to_string(i) + " twice");
        seen[i] = 1;
      }
    }
    for (std::size_t i = 0; i < history.size(); ++i)
      if (!seen[i])
        throw std::invalid_argument(name + ": model.partition left out operation " +
                                    std::to_string(i));
  } else {
    parts.emplace_back(history.size());
    for (std::size_t i = 0; i < history.size(); ++i)
      parts[0][i] = i;
  }

  CheckResult<typename M::Input, typename M::Output> result{Verdict::ok, {}};
  result.linearizations.reserve(parts.size());
  Deadline deadline(budget);
  for (const auto& part : parts) {
    if (deadline.expired()) {  // the budget is spent: this part is not searched
      if (result.verdict == Verdict::ok) result.verdict = Verdict::unknown;
      result.linearizations.emplace_back();
      continue;
    }
    Search<M> search(model, history, part, per_client);
    const Verdict v = search.run(deadline);
    if (stats) search.add_to(*stats);
    result.linearizations.push_back(search.linearization());
    if (v == Verdict::illegal) result.verdict = Verdict::illegal;
    if (v == Verdict::unknown && result.verdict == Verdict::ok) result.verdict = Verdict::unknown;
  }
  return result;
}

}  // namespace detail::lin

// Checks that `history` is linearizable with respect to `model`: returns ok with a
// linearization per partition, illegal with the longest prefix found, or unknown when
// `budget` (zero: no limit) ran out first. Partitions are searched one after another; after
// an illegal one the others are still checked, so every part of the result is filled.
// Throws std::invalid_argument for an operation with ret < call, a negative budget, or a
// partition that is not a partition of the history's indices. Allocates.
template <Model M>
CheckResult<typename M::Input, typename M::Output> check_linearizable(
    const M& model, std::span<const Operation<typename M::Input, typename M::Output>> history,
    std::chrono::nanoseconds budget = {}) {
  return detail::lin::check("check_linearizable", model, history, budget, false, nullptr);
}

// Checks like check_linearizable and adds what the search cost to `stats`.
template <Model M>
CheckResult<typename M::Input, typename M::Output> check_linearizable(
    const M& model, std::span<const Operation<typename M::Input, typename M::Output>> history,
    std::chrono::nanoseconds budget, CheckStats& stats) {
  return detail::lin::check("check_linearizable", model, history, budget, false, &stats);
}

// Checks that `history` is sequentially consistent with respect to `model`: some order of all
// operations that keeps each client's own order (an operation precedes a later call of the
// same client when it returned before that call) explains every output. Real-time order
// between clients is ignored. Sequential consistency is not compositional (Herlihy & Wing
// 1990: every key can be sequentially consistent while the whole store is not), so the whole
// history is one search and model.partition is not used: linearizations has one element.
// Same results, errors and cost as check_linearizable otherwise.
template <Model M>
CheckResult<typename M::Input, typename M::Output> check_sequential(
    const M& model, std::span<const Operation<typename M::Input, typename M::Output>> history,
    std::chrono::nanoseconds budget = {}) {
  return detail::lin::check("check_sequential", model, history, budget, true, nullptr);
}

// Checks like check_sequential and adds what the search cost to `stats`.
template <Model M>
CheckResult<typename M::Input, typename M::Output> check_sequential(
    const M& model, std::span<const Operation<typename M::Input, typename M::Output>> history,
    std::chrono::nanoseconds budget, CheckStats& stats) {
  return detail::lin::check("check_sequential", model, history, budget, true, &stats);
}

// ---------------------------------------------------------------------------------------------
// RegisterModel<V>: one register, initially absent; read, write, compare-and-set.

enum class RegisterOp : std::uint8_t { read, write, cas };

template <class V>
struct RegisterInput {
  RegisterOp op = RegisterOp::read;
  std::optional<V> value;     // write: the value; cas: the new value
  std::optional<V> expected;  // cas: the value it must find (nullopt: absent)
  friend bool operator==(const RegisterInput&, const RegisterInput&) = default;
};

template <class V>
struct RegisterOutput {
  std::optional<V> value;  // read: what it returned (nullopt: absent)
  bool ok = true;          // cas: whether it swapped
  friend bool operator==(const RegisterOutput&, const RegisterOutput&) = default;
};

template <class V>
struct RegisterModel {
  using Input = RegisterInput<V>;
  using Output = RegisterOutput<V>;
  using State = std::optional<V>;  // nullopt: never written

  static Input read() { return {RegisterOp::read, std::nullopt, std::nullopt}; }
  static Input write(V v) { return {RegisterOp::write, std::move(v), std::nullopt}; }
  static Input cas(std::optional<V> expected, V desired) {
    return {RegisterOp::cas, std::move(desired), std::move(expected)};
  }
  static Output read_result(std::optional<V> v) { return {std::move(v), true}; }
  static Output write_result() { return {std::nullopt, true}; }
  static Output cas_result(bool swapped) { return {std::nullopt, swapped}; }

  State init() const { return std::nullopt; }

  // Returns true for a read and for a compare-and-set that reported failure: they never
  // change the state.
  bool read_only(const Input& in, const std::optional<Output>& out) const {
    return in.op == RegisterOp::read || (in.op == RegisterOp::cas && out && !out->ok);
  }
  // Returns true for a write: the state after it is its value, whatever was there.
  bool blind(const Input& in) const { return in.op == RegisterOp::write; }

  // Returns the state after `in`: a read is legal when it returned the state; a write always
  // (its output is not looked at); a cas when `ok` says whether the state was `expected`.
  std::optional<State> step(const State& s, const Input& in,
                            const std::optional<Output>& out) const {
    switch (in.op) {
      case RegisterOp::read:
        if (out && out->value != s) return std::nullopt;
        return s;
      case RegisterOp::write:
        return State(in.value);
      case RegisterOp::cas: {
        const bool swaps = s == in.expected;
        if (out && out->ok != swaps) return std::nullopt;
        return swaps ? State(in.value) : s;
      }
    }
    return std::nullopt;
  }
};

// ---------------------------------------------------------------------------------------------
// KvModel: a map from string keys to string values; get, put and append, partitioned by key.

enum class KvOp : std::uint8_t { get, put, append };

struct KvInput {
  KvOp op = KvOp::get;
  std::string key;
  std::string value;  // put: the value; append: the suffix
  friend bool operator==(const KvInput&, const KvInput&) = default;
};

struct KvOutput {
  std::optional<std::string> value;  // get: what it returned (nullopt: absent)
  friend bool operator==(const KvOutput&, const KvOutput&) = default;
};

// The values of the keys present, sorted by key (within one partition: one key at most).
struct KvState {
  std::vector<std::pair<std::string, std::string>> entries;
  friend bool operator==(const KvState&, const KvState&) = default;
};

}  // namespace pods::sim

template <>
struct std::hash<pods::sim::KvState> {
  std::size_t operator()(const pods::sim::KvState& s) const noexcept {
    std::uint64_t h = 0x84222325CBF29CE4ULL;
    for (const auto& [k, v] : s.entries) {
      h = pods::detail::mix64(h ^ std::hash<std::string>{}(k));
      h = pods::detail::mix64(h ^ std::hash<std::string>{}(v));
    }
    return static_cast<std::size_t>(h);
  }
};

namespace pods::sim {

struct KvModel {
  using Input = KvInput;
  using Output = KvOutput;
  using State = KvState;

  static Input get(std::string key) { return {KvOp::get, std::move(key), {}}; }
  static Input put(std::string key, std::string value) {
    return {KvOp::put, std::move(key), std::move(value)};
  }
  static Input append(std::string key, std::string suffix) {
    return {KvOp::append, std::move(key), std::move(suffix)};
  }
  static Output get_result(std::optional<std::string> v) { return {std::move(v)}; }
  static Output put_result() { return {}; }
  static Output append_result() { return {}; }

  State init() const { return {}; }

  // Returns true for a get: it never changes the state.
  bool read_only(const Input& in, const std::optional<Output>&) const { return in.op == KvOp::get; }

  // Returns the state after `in`: a get is legal when it returned the key's value; put and
  // append always (their output is not looked at).
  std::optional<State> step(const State& s, const Input& in,
                            const std::optional<Output>& out) const {
    auto it = std::lower_bound(s.entries.begin(), s.entries.end(), in.key,
                               [](const auto& e, const std::string& k) { return e.first < k; });
    const bool present = it != s.entries.end() && it->first == in.key;
    if (in.op == KvOp::get) {
      if (out && out->value != (present ? std::optional<std::string>(it->second) : std::nullopt))
        return std::nullopt;
      return s;
    }
    State next = s;
    auto at = next.entries.begin() + (it - s.entries.begin());
    if (!present) {
      next.entries.insert(at, {in.key, in.value});
    } else if (in.op == KvOp::put) {
      at->second = in.value;
    } else {
      at->second += in.value;
    }
    return next;
  }

  // Returns one sub-history per key, in order of first appearance.
  std::vector<std::vector<std::size_t>> partition(
      std::span<const Operation<Input, Output>> history) const {
    std::vector<std::vector<std::size_t>> parts;
    std::unordered_map<std::string_view, std::size_t> index;
    for (std::size_t i = 0; i < history.size(); ++i) {
      auto [it, fresh] = index.try_emplace(history[i].input.key, parts.size());
      if (fresh) parts.emplace_back();
      parts[it->second].push_back(i);
    }
    return parts;
  }
};

// Returns the text of the shipped models' inputs, outputs and states (sim::write_html uses
// these through argument-dependent lookup). V is printed with operator<<.
template <class V>
std::string to_string(const RegisterInput<V>& in) {
  std::ostringstream os;
  const auto print = [&os](const std::optional<V>& v) {
    if (v) {
      os << *v;
    } else {
      os << "(absent)";
    }
  };
  switch (in.op) {
    case RegisterOp::read:
      os << "read";
      break;
    case RegisterOp::write:
      os << "write ";
      print(in.value);
      break;
    case RegisterOp::cas:
      os << "cas ";
      print(in.expected);
      os << "->";
      print(in.value);
      break;
  }
  return os.str();
}
template <class V>
std::string to_string(const RegisterOutput<V>& out) {
  std::ostringstream os;
  if (out.value) {
    os << *out.value;
  } else if (!out.ok) {
    os << "failed";
  } else {
    os << "ok";
  }
  return os.str();
}
inline std::string to_string(const KvInput& in) {
  switch (in.op) {
    case KvOp::get:
      return "get " + in.key;
    case KvOp::put:
      return "put " + in.key + "=" + in.value;
    case KvOp::append:
      return "append " + in.key + "+=" + in.value;
  }
  return "?";
}
inline std::string to_string(const KvOutput& out) {
  return out.value ? *out.value : std::string("(absent)");
}

}  // namespace pods::sim

// The sequential specification the demo's history is checked against: one key of the
// consistent core as the RESP commands the demo's clients send see it. A key is absent or
// holds a string; GET reads it, SET writes it, SET NX writes it only when absent, CAS writes
// it only when it holds the value whose revision the client passed, DEL removes it (and says
// whether it was there), INCR adds one to an integer (an absent key counts as 0). Keys are
// independent, so the history is checked one key at a time (partition).
//
// CAS names a revision, not a value. The demo makes the two equivalent: every value a client
// writes with SET or CAS is unique (client number and sequence), INCR runs only on counter
// keys that nothing else writes, and a CAS passes the revision that a GETREV returned with a
// value (0 with an absent key). The key's mod_revision is then that revision exactly when
// the key holds that value, so the model records the value the client saw and compares
// values. The (value, revision) pairs GETREV returns are checked on their own: one value,
// one revision (see demo.hpp).
#pragma once

#include <pods/sim/history.hpp>
#include <pods/sim/linearizability.hpp>

#include <charconv>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace consistent_core::demo {

enum class CoreOp : std::uint8_t { get, set, set_nx, cas, del, incr };

struct CoreInput {
  CoreOp op = CoreOp::get;
  std::string key;
  std::string value;                    // set, set_nx, cas: the value written
  std::optional<std::string> expected;  // cas: the value seen with the revision passed
  friend bool operator==(const CoreInput&, const CoreInput&) = default;
};

struct CoreOutput {
  std::optional<std::string> value;  // get: the value read (nullopt: absent)
  bool ok = true;                    // set_nx, cas: whether it wrote; incr: false for an error
  std::int64_t number = 0;           // del: keys removed; incr: the new value
  friend bool operator==(const CoreOutput&, const CoreOutput&) = default;
};

struct CoreModel {
  using Input = CoreInput;
  using Output = CoreOutput;
  using State = std::optional<std::string>;  // one key: nullopt when absent

  State init() const { return std::nullopt; }

  // Returns true for what never changes the key: a read, a refused SET NX or CAS, a DEL of
  // nothing, an INCR that failed.
  bool read_only(const Input& in, const std::optional<Output>& out) const {
    switch (in.op) {
      case CoreOp::get:
        return true;
      case CoreOp::set_nx:
      case CoreOp::cas:
      case CoreOp::incr:
        return out && !out->ok;
      case CoreOp::del:
        return out && out->number == 0;
      case CoreOp::set:
        return false;
    }
    return false;
  }
  // Returns true for SET: the key holds its value afterwards, whatever it held.
  bool blind(const Input& in) const { return in.op == CoreOp::set; }

  std::optional<State> step(const State& s, const Input& in,
                            const std::optional<Output>& out) const {
    switch (in.op) {
      case CoreOp::get:
        if (out && out->value != s) return std::nullopt;
        return s;
      case CoreOp::set:
        return State(in.value);
      case CoreOp::set_nx:
      case CoreOp::cas: {
        const bool writes = in.op == CoreOp::set_nx ? !s.has_value() : s == in.expected;
        if (out && out->ok != writes) return std::nullopt;
        return writes ? State(in.value) : s;
      }
      case CoreOp::del:
        if (out && out->number != (s ? 1 : 0)) return std::nullopt;
        return State(std::nullopt);
      case CoreOp::incr: {
        std::int64_t v = 0;
        bool integer = true;
        if (s) {
          const auto r = std::from_chars(s->data(), s->data() + s->size(), v);
          integer = r.ec == std::errc{} && r.ptr == s->data() + s->size() && !s->empty();
        }
        if (!integer ||
            v == std::numeric_limits<std::int64_t>::max()) {  // the server refuses: nothing changes
          if (out && out->ok) return std::nullopt;
          return s;
        }
        if (out && (!out->ok || out->number != v + 1)) return std::nullopt;
        return State(std::to_string(v + 1));
      }
    }
    return std::nullopt;
  }

  // Returns one sub-history per key, the keys in lexicographic order.
  std::vector<std::vector<std::size_t>> partition(
      std::span<const pods::sim::Operation<Input, Output>> history) const {
    std::map<std::string_view, std::vector<std::size_t>> by_key;
    for (std::size_t i = 0; i < history.size(); ++i)
      by_key[history[i].input.key].push_back(i);
    std::vector<std::vector<std::size_t>> parts;
    for (auto& [key, ops] : by_key)
      parts.push_back(std::move(ops));
    return parts;
  }
};

using CoreHistory = pods::sim::History<CoreInput, CoreOutput>;

}  // namespace consistent_core::demo

// The key-value state machine and its command encoding, shared by the simulator run and the
// node process. A command is (tag, op, key, value): the tag is chosen by the server that
// proposed it, so that it can tell, when an index is applied, whether its own command won
// that index or another leader's entry replaced it.
#pragma once

#include <pods/policy/wire.hpp>
#include <pods/sim/linearizability.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <string>
#include <vector>

namespace replicated_kv {

struct Command {
  std::uint64_t tag = 0;
  pods::sim::KvInput input;
};

// Returns the encoding of `c`. Allocates.
inline pods::Buffer encode(const Command& c) {
  pods::Buffer b;
  pods::wire::Writer w(b);
  w.u64(c.tag);
  w.u8(static_cast<std::uint8_t>(c.input.op));
  w.string(c.input.key);
  w.string(c.input.value);
  return b;
}

// Decodes a command. Allocates. Throws pods::CorruptionError for bad bytes.
inline Command decode(std::span<const std::byte> bytes) {
  pods::wire::Reader r(bytes, "replicated_kv command");
  Command c;
  c.tag = r.u64();
  c.input.op = static_cast<pods::sim::KvOp>(r.kind(3, "kv op"));
  c.input.key = r.string();
  c.input.value = r.string();
  r.expect_end();
  return c;
}

// The state machine: a map; each applied command is reported to `on_apply` with its result.
struct Machine {
  std::map<std::string, std::string> data;
  std::function<void(std::uint64_t index, const Command&, const pods::sim::KvOutput&)> on_apply;

  void apply(std::uint64_t index, std::span<const std::byte> bytes) {
    const Command c = decode(bytes);
    covered = index;
    pods::sim::KvOutput out;
    if (c.input.op == pods::sim::KvOp::get) {
      if (auto it = data.find(c.input.key); it != data.end()) out.value = it->second;
    } else if (c.input.op == pods::sim::KvOp::put) {
      data[c.input.key] = c.input.value;
    } else {
      data[c.input.key] += c.input.value;
    }
    if (on_apply) on_apply(index, c, out);
  }
  // Called after restore() with the index the restored state covers: the commands up to it
  // are in the state without having been applied here, so whoever waits for one of them
  // cannot learn its outcome.
  std::function<void(std::uint64_t covered)> on_restore;
  std::uint64_t covered = 0;  // the index of the last command applied or restored

  // The snapshot (§7 of the Raft paper): the number of keys, then each key and value
  // (length-prefixed, in key order), then the index the state covers.
  std::vector<std::byte> snapshot() const {
    pods::Buffer b;
    pods::wire::Writer w(b);
    w.count(data.size());
    for (const auto& [k, v] : data) {
      w.string(k);
      w.string(v);
    }
    w.u64(covered);
    return b;
  }
  // Replaces the state with a snapshot's. Throws pods::CorruptionError naming the offset for
  // bytes that are not one (the state is then unchanged).
  void restore(std::span<const std::byte> bytes) {
    pods::wire::Reader r(bytes, "replicated_kv snapshot");
    std::map<std::string, std::string> restored;
    const std::size_t n = r.count(2 * 4);
    for (std::size_t i = 0; i < n; ++i) {
      std::string k = r.string();
      restored[std::move(k)] = r.string();
    }
    const std::uint64_t index = r.u64();
    r.expect_end();
    data = std::move(restored);
    covered = index;
    if (on_restore) on_restore(index);
  }
};

}  // namespace replicated_kv

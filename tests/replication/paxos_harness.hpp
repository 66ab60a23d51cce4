// What the Paxos and PaxosLog simulator tests share: the broken-durability storage, the
// fault schedules and the seed count.
#pragma once

#include <pods/policy/storage.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/storage/memory_storage.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>
#include <vector>

namespace paxos_test {

using namespace std::chrono_literals;

// A MemoryStorage whose sync does nothing: the mutation "answer before the promise is durable".
struct NoSyncStorage {
  pods::MemoryStorage inner;
  std::vector<std::uint64_t> list() const { return inner.list(); }
  void create(std::uint64_t id) { inner.create(id); }
  void append(std::uint64_t id, std::span<const std::byte> b) { inner.append(id, b); }
  std::size_t read(std::uint64_t id, std::uint64_t at, std::span<std::byte> out) const {
    return inner.read(id, at, out);
  }
  std::uint64_t size(std::uint64_t id) const { return inner.size(id); }
  void sync(std::uint64_t) {}
  void truncate(std::uint64_t id, std::uint64_t n) { inner.truncate(id, n); }
  void remove(std::uint64_t id) { inner.remove(id); }
  std::string name(std::uint64_t id) const { return inner.name(id); }
};
static_assert(pods::SegmentStorage<NoSyncStorage>);

// Every fault the nemesis has, for 6 s (the last 2 s quiet).
inline pods::sim::NemesisOptions everything() {
  return {.duration = 6s, .quiet = 2s, .max_gap = 400ms, .max_fault = 1000ms};
}

// Short, frequent crashes (and nothing else): the faults that test durability hardest.
inline pods::sim::NemesisOptions crashes_only() {
  return {.duration = 3s,
          .quiet = 1s,
          .min_gap = 10ms,
          .max_gap = 60ms,
          .min_fault = 10ms,
          .max_fault = 100ms,
          .partitions = false,
          .one_way = false,
          .isolation = false,
          .pauses = false,
          .clock_steps = false,
          .clock_drift = false,
          .loss = false,
          .duplication = false,
          .delays = false,
          .tear = false};
}

// Returns PODS_SEEDS when set (and positive), else `fallback`.
inline std::uint64_t seeds(std::uint64_t fallback) {
  if (const char* env = std::getenv("PODS_SEEDS")) {
    const auto n = std::strtoull(env, nullptr, 10);
    if (n > 0) return n;
  }
  return fallback;
}

}  // namespace paxos_test

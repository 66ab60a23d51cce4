// pods/time/generation_clock.hpp — Generation Clock (also called term or epoch)
//
// Problem:       A leader that was cut off (paused by GC, partitioned) comes back still
//                believing it leads, and its requests would overwrite decisions made by the
//                leader elected meanwhile. Servers need to tell an old leader's messages from
//                the current one's.
// Solution:      A monotonically increasing number. A candidate starts an election with
//                next(); every message carries the sender's generation; a receiver adopts a
//                higher generation it sees (observe) and rejects messages whose generation is
//                lower than its own (is_stale), answering with its generation so the stale
//                sender steps down.
// Guarantees:    current() never decreases. next() returns a generation larger than every
//                generation this object returned or observed before it, and with ThreadSafe
//                no two next() calls return the same value. observe(g) returns true exactly
//                when it raised the generation to g. is_stale(g) is g < current().
// Not provided:  Durability: the generation lives in memory. To survive a restart, store the
//                generation with every write-ahead log entry (and with the vote a server
//                casts) and, on recovery, construct the clock from the highest generation
//                found in the log: `GenerationClock<> gen(recovered)`. A server that forgot
//                its generation could vote twice in one election.
// Thread safety: thread-safe with ThreadSafe (every member from any thread; next() is one
//                fetch_add, observe() a compare-exchange loop, both acq_rel). Thread-compatible
//                with SingleThreaded.
// Errors:        none; every member is noexcept.
// Cost:          O(1), no allocation.
// Example:
//   pods::GenerationClock<> gen(log.last_generation());  // recovered from the WAL
//   auto term = gen.next();                               // start an election in a new term
//   if (gen.is_stale(message.generation)) reply(pods::Errc::stale_generation, gen.current());
//   else if (gen.observe(message.generation)) step_down();  // someone is ahead of us
// Example context: struct { std::uint64_t last_generation() const { return 0; } } log;  // a WAL
// Example context: struct { std::uint64_t generation = 0; } message;
// Example context: void reply(pods::Errc, std::uint64_t) {}
// Example context: void step_down() {}
// Example context: #include <pods/policy/errors.hpp>
#pragma once

#include <pods/policy/threading.hpp>

#include <atomic>
#include <cstdint>

namespace pods {

// GenerationClock: the election generation of one server.
template <Threading T = ThreadSafe>
class GenerationClock {
 public:
  // Creates a clock at generation `start`; pass the highest generation recovered from the
  // write-ahead log after a restart.
  explicit GenerationClock(std::uint64_t start = 0) noexcept : generation_(start) {}

  GenerationClock(const GenerationClock&) = delete;
  GenerationClock& operator=(const GenerationClock&) = delete;

  // Returns the current generation. Never allocates or throws.
  std::uint64_t current() const noexcept { return generation_.load(std::memory_order_acquire); }

  // Starts a new generation (a new election) and returns it. Never allocates or throws.
  std::uint64_t next() noexcept { return generation_.fetch_add(1, std::memory_order_acq_rel) + 1; }

  // Adopts `generation` when it is higher than the current one (it came in a message from a
  // server that is ahead). Returns true when the generation changed. Never allocates or throws.
  bool observe(std::uint64_t generation) noexcept {
    std::uint64_t current = generation_.load(std::memory_order_relaxed);
    while (current < generation) {
      if (generation_.compare_exchange_weak(current, generation, std::memory_order_acq_rel,
                                            std::memory_order_relaxed)) {
        return true;
      }
    }
    return false;
  }

  // Returns true when `generation` is older than the current one (its sender is behind).
  bool is_stale(std::uint64_t generation) const noexcept { return generation < current(); }

 private:
  typename T::template atomic<std::uint64_t> generation_;
};

}  // namespace pods

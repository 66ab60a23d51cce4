// pods/sim/history.hpp — History: what a set of clients asked and what came back
//
// Problem:       To check that a replicated register or store behaved like one copy, a test
//                needs the record of what every client called, when, and what it was told,
//                including the calls that timed out; recording it by hand from several threads
//                loses the order of events or invents one.
// Solution:      Each client calls invoke(client, input) before it sends a request and ok(id,
//                output), fail(id) or unknown(id) when the outcome is known. Every event reads
//                one clock under one lock, so the recorded times are in the order the events
//                were recorded: a call recorded after a return gets a later time, and the
//                checker (pods/sim/linearizability.hpp) sees the same real-time order the
//                clients saw. Without a time source the clock is a logical counter, so every
//                event gets a distinct time.
// Guarantees:    operations() lists every operation not failed, in invoke order, with call
//                and return times of the recorder's clock: call <= ret, and the interval of
//                each operation contains the interval the client really waited (the call is
//                recorded before the request leaves, the return after the answer came), so a
//                history of a linearizable system checks linearizable. ok(id, out) records the
//                output; unknown(id) records no output and ret = never (the operation may take
//                effect at any later time, or never); fail(id) drops the operation: a caller
//                told it definitely did not happen. An operation still pending when
//                operations() is called is reported as unknown.
// Not provided:  Persistence of the history; a wall-clock time source (pass one: any callable
//                returning std::int64_t, e.g. a simulation's virtual nanoseconds; equal
//                readings make operations concurrent, which is safe but weaker).
// Thread safety: thread-safe: any member from any thread. The time source is called under the
//                recorder's lock.
// Errors:        ok, fail and unknown throw std::invalid_argument naming the id when it was
//                never returned by invoke or its outcome was already recorded. Every member
//                may throw std::bad_alloc; invoke and ok retain a copy of their argument.
// Cost:          invoke, ok, fail, unknown: O(1) amortised under one mutex; operations():
//                O(operations) and one copy of each.
// Example:
//   pods::sim::History<std::string, std::string> history;
//   auto id = history.invoke(/*client=*/1, "get x");
//   history.ok(id, "42");                    // or history.unknown(id) on a timeout
//   auto ops = history.operations();         // feed to sim::check_linearizable
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods::sim {

// The return time of an operation that may take effect at any time after its call: one that
// timed out, or whose client crashed before the answer came.
inline constexpr std::int64_t never = std::numeric_limits<std::int64_t>::max();

// Operation: one call of one client, as the checker sees it.
template <class Input, class Output>
struct Operation {
  std::uint64_t client = 0;      // who called (a process, a client thread)
  Input input;                   // what was asked
  std::optional<Output> output;  // what came back; nullopt: unknown (timed out, crashed)
  std::int64_t call = 0;         // when it was invoked (any unit, the same for every op)
  std::int64_t ret = never;      // when it returned; `never`: it may take effect any time after
                                 // `call`
  friend bool operator==(const Operation&, const Operation&) = default;
};

// History: the thread-safe recorder of operations.
template <class Input, class Output>
class History {
 public:
  using Id = std::uint64_t;
  using operation_type = Operation<Input, Output>;

  // Records with a logical clock: the n-th event gets time n, so distinct events get
  // distinct, increasing times.
  History() = default;

  // Records with `now` as the clock (for example a simulation's virtual time). Readings are
  // made monotone (a reading below the previous one is raised to it); equal readings make
  // the events concurrent. Retains `now`. Throws std::invalid_argument when `now` is empty.
  explicit History(std::function<std::int64_t()> now) : now_(std::move(now)) {
    if (!now_) throw std::invalid_argument("History: the time source `now` is empty");
  }

  History(const History&) = delete;
  History& operator=(const History&) = delete;

  // Records that `client` calls `input` now; returns the id to report its outcome with.
  // Retains a copy of `input`. Allocates.
  Id invoke(std::uint64_t client, Input input) {
    std::lock_guard lock(mutex_);
    const std::int64_t t = tick();
    slots_.push_back(
        Slot{operation_type{client, std::move(input), std::nullopt, t, never}, Status::pending});
    return static_cast<Id>(slots_.size() - 1);
  }

  // Records that operation `id` returned `output` now. Throws std::invalid_argument when `id`
  // is not pending.
  void ok(Id id, Output output) {
    std::lock_guard lock(mutex_);
    Slot& slot = pending("ok", id);
    slot.op.output = std::move(output);
    slot.op.ret = tick();
    slot.status = Status::done;
  }

  // Records that operation `id` definitely did not take effect: it is left out of the
  // history. Throws std::invalid_argument when `id` is not pending.
  void fail(Id id) {
    std::lock_guard lock(mutex_);
    pending("fail", id).status = Status::failed;
  }

  // Records that the outcome of operation `id` is unknown (a timeout, a crash): no output,
  // ret = never. Throws std::invalid_argument when `id` is not pending.
  void unknown(Id id) {
    std::lock_guard lock(mutex_);
    Slot& slot = pending("unknown", id);
    slot.op.output.reset();
    slot.op.ret = never;
    slot.status = Status::done;
  }

  // Returns a copy of every operation not failed, in invoke order; a pending one as unknown.
  // Allocates.
  std::vector<operation_type> operations() const {
    std::lock_guard lock(mutex_);
    std::vector<operation_type> out;
    out.reserve(slots_.size());
    for (const Slot& slot : slots_) {
      if (slot.status == Status::failed) continue;
      out.push_back(slot.op);
    }
    return out;
  }

  // Returns how many operations were invoked (failed ones included).
  std::size_t invoked() const {
    std::lock_guard lock(mutex_);
    return slots_.size();
  }

 private:
  enum class Status : std::uint8_t { pending, done, failed };
  struct Slot {
    operation_type op;
    Status status;
  };

  // Returns the next time of the recorder's clock. Requires the lock.
  std::int64_t tick() {
    if (!now_) return next_++;
    next_ = std::max(next_, now_());
    return next_;
  }

  Slot& pending(const char* what, Id id) {
    if (id >= slots_.size())
      throw std::invalid_argument(std::string("History::") + what + ": id " + std::to_string(id) +
                                  " was never returned by invoke");
    Slot& slot = slots_[static_cast<std::size_t>(id)];
    if (slot.status != Status::pending)
      throw std::invalid_argument(std::string("History::") + what + ": id " + std::to_string(id) +
                                  " already has its outcome recorded");
    return slot;
  }

  mutable std::mutex mutex_;
  std::vector<Slot> slots_;  // index: the id
  std::int64_t next_ = 0;
  std::function<std::int64_t()> now_;
};

}  // namespace pods::sim

// pods/sim/simulation.hpp — Simulation: virtual time and a deterministic event queue
//
// Problem:       A distributed protocol fails in rare interleavings (a message that arrives
//                just after a timeout, a duplicate after a heal). On real threads and sockets
//                such a failure cannot be reproduced: the next run interleaves differently,
//                and a test that waits for real time is slow.
// Solution:      Run the whole system, every node and the network between them, on one
//                thread in virtual time. Everything that happens is an event in one queue
//                ordered by (time, sequence number): a message arriving, a timer firing, a
//                fault starting. step() takes the earliest event, moves the virtual clock to
//                its time and runs it; events schedule further events. Every choice comes
//                from one seeded generator (random()), so a seed is a complete description
//                of a run: the same seed replays the same run, event for event, on every
//                compiler. trace_hash() digests every event run (its time, its sequence
//                number, and any values the event passes to trace()), so a test can check
//                that two runs were identical by comparing one number.
// Guarantees:    Events run in (time, sequence) order: at equal times, in the order they were
//                scheduled. The clock (a ManualClock handle) reads the time of the event
//                running; it moves only forward and only through step, run_for, run_until.
//                A cancelled event never runs. The same seed and the same calls give the same
//                trace_hash on every platform (the digest uses only integer arithmetic).
// Not provided:  Real concurrency: the simulated system is single-threaded by construction,
//                so it finds interleavings of events, not data races (run TSan for those).
// Thread safety: thread-confined: one thread owns the simulation and everything that runs in
//                it (networks, nodes, nemeses). The clock handle it returns is thread-safe to
//                read, but only the simulation moves it: never advance or set it yourself.
// Errors:        schedule with a negative delay or a time in the past, and run_for or
//                run_until with a negative duration, throw std::invalid_argument naming the
//                argument; step, run_for and run_until called from inside an event throw
//                std::logic_error. An exception thrown by an event propagates out of step (the
//                event is consumed; the queue stays consistent).
// Cost:          schedule: O(log n) heap push; no allocation once warm for callables of up to
//                64 bytes (larger ones are allocated). step: O(log n). cancel: O(1).
// Example:
//   pods::sim::Simulation sim(/*seed=*/42);
//   auto clock = sim.clock();                         // a ManualClock for the code under test
//   sim.schedule(10ms, [&] { sim.trace(1); });
//   auto id = sim.schedule(20ms, [&] { sim.trace(2); });
//   sim.cancel(id);
//   sim.run_for(1s);                                  // now() == 1 s; one event ran
//   std::uint64_t digest = sim.trace_hash();          // equal for every run of seed 42
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/random.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace pods::sim {

namespace detail {

// A move-only type-erased void() callable that stores callables of up to inline_size bytes
// in place, so scheduling a typical event (a message delivery, a timer) does not allocate.
class Task {
 public:
  static constexpr std::size_t inline_size = 64;

  Task() noexcept = default;

  template <class F, class D = std::decay_t<F>>
  requires(!std::is_same_v<D, Task> && std::is_invocable_v<D&>) explicit Task(F&& f) {
    if constexpr (sizeof(D) <= inline_size && alignof(D) <= alignof(std::max_align_t) &&
                  std::is_nothrow_move_constructible_v<D>) {
      ::new (static_cast<void*>(storage_)) D(std::forward<F>(f));
      ops_ = &inline_ops<D>;
    } else {
      *reinterpret_cast<D**>(storage_) = new D(std::forward<F>(f));
      ops_ = &heap_ops<D>;
    }
  }

  Task(Task&& other) noexcept : ops_(other.ops_) {
    if (ops_ != nullptr) ops_->relocate(storage_, other.storage_);
    other.ops_ = nullptr;
  }

  Task& operator=(Task&& other) noexcept {
    if (this != &other) {
      reset();
      ops_ = other.ops_;
      if (ops_ != nullptr) ops_->relocate(storage_, other.storage_);
      other.ops_ = nullptr;
    }
    return *this;
  }

  Task(const Task&) = delete;
  Task& operator=(const Task&) = delete;
  ~Task() { reset(); }

  // Runs the callable. Precondition: not empty.
  void operator()() { ops_->invoke(storage_); }

  explicit operator bool() const noexcept { return ops_ != nullptr; }

  // Destroys the callable, leaving the task empty.
  void reset() noexcept {
    if (ops_ != nullptr) {
      ops_->destroy(storage_);
      ops_ = nullptr;
    }
  }

 private:
  struct Ops {
    void (*invoke)(void*);
    void (*relocate)(void* to, void* from) noexcept;  // move-constructs into to, destroys from
    void (*destroy)(void*) noexcept;
  };

  template <class D>
  static constexpr Ops inline_ops{[](void* p) { (*static_cast<D*>(p))(); },
                                  [](void* to, void* from) noexcept {
                                    ::new (to) D(std::move(*static_cast<D*>(from)));
                                    static_cast<D*>(from)->~D();
                                  },
                                  [](void* p) noexcept { static_cast<D*>(p)->~D(); }};

  template <class D>
  static constexpr Ops heap_ops{
      [](void* p) { (**static_cast<D**>(p))(); },
      [](void* to, void* from) noexcept { *static_cast<D**>(to) = *static_cast<D**>(from); },
      [](void* p) noexcept { delete *static_cast<D**>(p); }};

  alignas(std::max_align_t) std::byte storage_[inline_size];
  const Ops* ops_ = nullptr;
};

}  // namespace detail

// Names one scheduled event, for cancel(). A default-constructed EventId names no event.
struct EventId {
  std::uint64_t sequence = 0;  // the event's sequence number (1, 2, ...); 0: none
  std::uint32_t slot = 0;      // where the event's callable is stored

  explicit operator bool() const noexcept { return sequence != 0; }
  friend bool operator==(const EventId&, const EventId&) = default;
};

class Simulation {
 public:
  using duration = std::chrono::nanoseconds;
  using time_point = ManualClock::time_point;

  // Creates a simulation whose virtual time starts at `start` (nanoseconds since the epoch of
  // its ManualClock) and whose every random choice derives from `seed`. Allocates the clock.
  explicit Simulation(std::uint64_t seed, duration start = duration::zero())
      : seed_(seed),
        random_(seed),
        clock_(start),
        now_(start.count()),
        digest_(pods::detail::mix64(seed ^ 0x706F64732D73696DULL)) {}

  // A simulation is referred to by everything that runs in it: it does not move.
  Simulation(const Simulation&) = delete;
  Simulation& operator=(const Simulation&) = delete;

  // Returns a handle to the virtual clock (copies share the time). Give it to the code under
  // test as its PhysicalClock; read it from anywhere, but never advance or set it.
  ManualClock clock() const noexcept { return clock_; }

  // Returns the current virtual time.
  time_point now() const noexcept { return time_point(duration(now_)); }

  // Returns the seed the simulation was created with.
  std::uint64_t seed() const noexcept { return seed_; }

  // Returns the simulation's generator. Components that draw from it should keep a fork()
  // of their own, so that one component's draws do not shift another's.
  Random& random() noexcept { return random_; }

  // Schedules `fn` (moved or copied in; retained until it runs or is cancelled) to run
  // `after` from now, after every event already scheduled for that time. Returns its id.
  // Allocates only when the queue grows or fn is larger than 64 bytes. Throws
  // std::invalid_argument naming after when it is negative or overflows the time.
  template <class F>
  EventId schedule(duration after, F&& fn) {
    if (after.count() < 0) {
      throw std::invalid_argument("Simulation::schedule: after must not be negative, got " +
                                  std::to_string(after.count()) + " ns");
    }
    if (after.count() > std::numeric_limits<std::int64_t>::max() - now_) {
      throw std::invalid_argument("Simulation::schedule: after overflows the virtual time");
    }
    return push(now_ + after.count(), detail::Task(std::forward<F>(fn)));
  }

  // Schedules `fn` to run at virtual time `at`. Throws std::invalid_argument naming at when it
  // is in the past.
  template <class F>
  EventId schedule_at(time_point at, F&& fn) {
    const std::int64_t t = at.time_since_epoch().count();
    if (t < now_) {
      throw std::invalid_argument("Simulation::schedule_at: at is in the past (" +
                                  std::to_string(t) + " ns < now " + std::to_string(now_) + " ns)");
    }
    return push(t, detail::Task(std::forward<F>(fn)));
  }

  // Cancels the event `id` and destroys its callable. Returns true when it was still pending;
  // false when it already ran, was already cancelled, or `id` names no event.
  bool cancel(EventId id) noexcept {
    if (!id || id.slot >= slots_.size() || slots_[id.slot].sequence != id.sequence) return false;
    release(id.slot);
    return true;
  }

  // Returns true when the event `id` is scheduled and has neither run nor been cancelled.
  bool is_pending(EventId id) const noexcept {
    return id && id.slot < slots_.size() && slots_[id.slot].sequence == id.sequence;
  }

  // Runs the earliest pending event: moves the clock to its time, digests it and calls it.
  // Returns false (and does nothing) when no event is pending. Throws std::logic_error when
  // called from inside an event; rethrows what the event throws.
  bool step() {
    if (running_) throw std::logic_error("Simulation::step: called from inside an event");
    if (!drop_cancelled_top()) return false;
    const Entry e = heap_.front();
    std::pop_heap(heap_.begin(), heap_.end(), Later{});
    heap_.pop_back();
    detail::Task task = std::move(slots_[e.slot].task);
    release(e.slot);
    if (e.time != now_) {
      now_ = e.time;
      clock_.set(duration(now_));
    }
    fold(static_cast<std::uint64_t>(e.time));
    fold(e.sequence);
    ++events_run_;
    running_ = true;
    struct Reset {
      bool& flag;
      ~Reset() { flag = false; }
    } reset{running_};
    task();
    return true;
  }

  // Runs every event due within `d` from now, then moves the clock to now + d. Returns how
  // many events ran. Throws std::invalid_argument naming d when it is negative, and as step().
  std::uint64_t run_for(duration d) {
    if (d.count() < 0) {
      throw std::invalid_argument("Simulation::run_for: d must not be negative, got " +
                                  std::to_string(d.count()) + " ns");
    }
    if (running_) throw std::logic_error("Simulation::run_for: called from inside an event");
    const std::int64_t end = saturated_end(d);
    const std::uint64_t before = events_run_;
    while (drop_cancelled_top() && heap_.front().time <= end)
      step();
    advance_to(end);
    return events_run_ - before;
  }

  // Runs events until `pred()` returns true (checked before the first event and after each),
  // or until no event is due within `limit` from now, when the clock moves to now + limit.
  // Returns the last value of pred(). Throws as run_for.
  template <class Pred>
  bool run_until(Pred&& pred, duration limit) {
    if (limit.count() < 0) {
      throw std::invalid_argument("Simulation::run_until: limit must not be negative, got " +
                                  std::to_string(limit.count()) + " ns");
    }
    if (running_) throw std::logic_error("Simulation::run_until: called from inside an event");
    const std::int64_t end = saturated_end(limit);
    while (!pred()) {
      if (!drop_cancelled_top() || heap_.front().time > end) {
        advance_to(end);
        return pred();
      }
      step();
    }
    return true;
  }

  // Folds `value` into the trace digest. Call it from events with whatever identifies what
  // they did (a message kind, a node id, a decision), so that two runs that differ in it
  // have different digests.
  void trace(std::uint64_t value) noexcept { fold(value); }

  // Returns the digest of everything run so far: the seed, then for each event its time and
  // sequence number, and the values traced while it ran, in order. Two runs with equal
  // digests ran the same events at the same times (up to a 2^-64 chance of collision).
  std::uint64_t trace_hash() const noexcept { return digest_; }

  // Returns how many events have run.
  std::uint64_t events_run() const noexcept { return events_run_; }

  // Returns how many events are pending (scheduled, not run, not cancelled).
  std::size_t pending() const noexcept { return live_; }

  // Returns the time of the earliest pending event, or nullopt when none is pending.
  std::optional<time_point> next_event_time() {
    if (!drop_cancelled_top()) return std::nullopt;
    return time_point(duration(heap_.front().time));
  }

 private:
  struct Entry {
    std::int64_t time;
    std::uint64_t sequence;
    std::uint32_t slot;
  };
  // Orders the heap so its front is the earliest (time, sequence).
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const noexcept {
      return a.time != b.time ? a.time > b.time : a.sequence > b.sequence;
    }
  };
  struct Slot {
    detail::Task task;
    std::uint64_t sequence = 0;  // 0: free
  };

  EventId push(std::int64_t time, detail::Task task) {
    std::uint32_t slot;
    if (!free_.empty()) {
      slot = free_.back();
      free_.pop_back();
    } else {
      if (slots_.size() >= std::numeric_limits<std::uint32_t>::max()) throw std::bad_alloc();
      slot = static_cast<std::uint32_t>(slots_.size());
      slots_.emplace_back();
      free_.reserve(slots_.size());  // so release() never allocates
    }
    if (heap_.size() == heap_.capacity()) {
      try {
        heap_.reserve(heap_.capacity() * 2 + 64);
      } catch (...) {
        free_.push_back(slot);  // within the capacity reserved above
        throw;
      }
    }
    const std::uint64_t sequence = ++sequence_;
    slots_[slot].task = std::move(task);
    slots_[slot].sequence = sequence;
    heap_.push_back(Entry{time, sequence, slot});
    std::push_heap(heap_.begin(), heap_.end(), Later{});
    ++live_;
    return EventId{sequence, slot};
  }

  void release(std::uint32_t slot) noexcept {
    slots_[slot].task.reset();
    slots_[slot].sequence = 0;
    free_.push_back(slot);  // capacity: free_ never holds more than slots_.size() entries
    --live_;
  }

  // Pops cancelled entries off the top of the heap. Returns true when a live event remains.
  bool drop_cancelled_top() noexcept {
    while (!heap_.empty() && slots_[heap_.front().slot].sequence != heap_.front().sequence) {
      std::pop_heap(heap_.begin(), heap_.end(), Later{});
      heap_.pop_back();
    }
    return !heap_.empty();
  }

  std::int64_t saturated_end(duration d) const noexcept {
    return d.count() > std::numeric_limits<std::int64_t>::max() - now_
               ? std::numeric_limits<std::int64_t>::max()
               : now_ + d.count();
  }

  void advance_to(std::int64_t t) {
    if (t > now_) {
      now_ = t;
      clock_.set(duration(now_));
    }
  }

  void fold(std::uint64_t value) noexcept {
    digest_ = pods::detail::mix64((digest_ ^ value) + 0x9E3779B97F4A7C15ULL);
  }

  std::uint64_t seed_;
  Random random_;
  ManualClock clock_;
  std::int64_t now_;
  std::uint64_t digest_;
  std::uint64_t sequence_ = 0;
  std::uint64_t events_run_ = 0;
  std::size_t live_ = 0;
  bool running_ = false;
  std::vector<Entry> heap_;
  std::vector<Slot> slots_;
  std::vector<std::uint32_t> free_;
};

}  // namespace pods::sim

// pods/sim/node_clock.hpp — NodeClock: one node's physical clock in a simulation
//
// Problem:       Real machines disagree about the time: a clock runs fast or slow (drift, tens
//                of parts per million for a quartz oscillator), starts at an offset, and is
//                stepped (backwards too) by NTP or an operator. Leases, timeouts and hybrid
//                clocks break exactly there, and a simulation whose nodes all read the one
//                virtual time can never show it.
// Solution:      A NodeClock reads the simulation's virtual time through a linear map that can
//                be changed at any instant:
//                  local(t) = local_anchor + (t - anchor) + trunc((t - anchor) * drift)
//                where `anchor` is the virtual time of the last change. set_drift() changes
//                the rate from now on (the reading stays continuous), step() jumps the reading
//                by a signed amount, set_offset() jumps it to virtual time plus an offset. It
//                is a PhysicalClock, so a protocol block takes it as its clock policy.
// Guarantees:    With drift r and no step, the clock advances by d + trunc(d * r) while virtual
//                time advances by d (measured from the last change). Copies share one state.
//                The arithmetic is one double multiply and integer adds, so it replays
//                exactly on every platform.
// Not provided:  Monotonicity: step() may move it backwards, as a wall clock may. Noise or
//                random walk of the rate (change the drift from a Nemesis for that).
// Thread safety: thread-compatible: now() may be called from any thread while no thread
//                changes the clock (in a simulation, everything runs on its one thread).
// Errors:        set_drift with a rate <= -1 or not finite (the clock would stop or run
//                backwards) throws std::invalid_argument naming rate.
// Cost:          now(): an atomic load of the virtual time and a few arithmetic operations.
// Example:
//   pods::sim::NodeClock clock(sim.clock(), /*offset=*/-3ms, /*drift=*/50e-6);  // 50 ppm fast
//   pods::HybridClock<pods::sim::NodeClock> hlc(clock);
//   clock.step(-200ms);                                 // NTP steps it back
// Example context: #include <pods/time/hybrid_clock.hpp>
// Example context: #include <pods/sim/simulation.hpp>
// Example context: inline pods::sim::Simulation sim(42);
#pragma once

#include <pods/policy/clock.hpp>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

namespace pods::sim {

class NodeClock {
 public:
  using duration = std::chrono::nanoseconds;
  using rep = duration::rep;
  using period = duration::period;
  using time_point = std::chrono::time_point<NodeClock, duration>;
  static constexpr bool is_steady = false;

  // Creates a clock reading `base` (the simulation's clock) plus `offset`, running at
  // 1 + `drift` times the rate of virtual time. Allocates the shared state. Throws
  // std::invalid_argument naming drift when it is <= -1 or not finite.
  explicit NodeClock(ManualClock base, duration offset = duration::zero(), double drift = 0.0)
      : base_(std::move(base)), state_(std::make_shared<State>()) {
    check_rate(drift, "drift");
    const std::int64_t t = base_now();
    state_->anchor = t;
    state_->local_anchor = t + offset.count();
    state_->drift = drift;
  }

  // Returns the node's reading of the time. Never throws.
  time_point now() const noexcept { return time_point(duration(local_at(base_now()))); }

  // Jumps the reading by `delta` (negative: backwards), as an NTP step does.
  void step(duration delta) noexcept {
    reanchor();
    state_->local_anchor += delta.count();
  }

  // Sets the reading to virtual time plus `offset` from now on (the drift continues).
  void set_offset(duration offset) noexcept {
    reanchor();
    state_->local_anchor = state_->anchor + offset.count();
  }

  // Returns how far the reading is ahead of virtual time now (negative: behind).
  duration offset() const noexcept { return duration(local_at(base_now()) - base_now()); }

  // Sets the rate error from now on: the clock advances 1 + rate seconds per virtual second
  // (1e-4: 100 ppm fast; -1e-4: slow). The reading stays continuous. Throws
  // std::invalid_argument naming rate when it is <= -1 or not finite.
  void set_drift(double rate) {
    check_rate(rate, "rate");
    reanchor();
    state_->drift = rate;
  }

  // Returns the rate error set by set_drift (or the constructor).
  double drift() const noexcept { return state_->drift; }

  // Returns how much virtual time must pass, from now and with the current drift, until this
  // clock reads `deadline` or later; zero when it already does; duration::max() when it is
  // more than 2^61 ns away. Rounds up, never early.
  duration until(time_point deadline) const noexcept {
    const std::int64_t now_base = base_now();
    const std::int64_t target = deadline.time_since_epoch().count();
    if (local_at(now_base) >= target) return duration::zero();
    // Beyond about 73 years (2^61 ns) the answer is "never" for any simulation; stopping here
    // also keeps the arithmetic below clear of overflow. (target > reading: the unsigned
    // difference is exact.)
    const std::uint64_t gap =
        static_cast<std::uint64_t>(target) - static_cast<std::uint64_t>(local_at(now_base));
    if (gap > (std::uint64_t{1} << 61)) return duration::max();
    // Solve local_at(now_base + e) >= target for the least e, starting from the real-valued
    // estimate and correcting the truncation by single steps.
    const double rate = 1.0 + state_->drift;
    const double wanted = static_cast<double>(gap) / rate;
    if (wanted > 0x1.0p62) return duration::max();  // a clock running at almost zero rate
    auto e = static_cast<std::int64_t>(std::ceil(wanted));
    if (e < 1) e = 1;
    while (local_at(now_base + e) < target)
      ++e;
    while (e > 1 && local_at(now_base + e - 1) >= target)
      --e;
    return duration(e);
  }

  // Returns the virtual clock this clock reads.
  const ManualClock& base() const noexcept { return base_; }

 private:
  struct State {
    std::int64_t anchor = 0;        // virtual time of the last change
    std::int64_t local_anchor = 0;  // the reading at that time
    double drift = 0.0;
  };

  static void check_rate(double rate, const char* name) {
    if (!(std::isfinite(rate) && rate > -1.0)) {
      throw std::invalid_argument(std::string("NodeClock: ") + name +
                                  " must be finite and greater than -1, got " +
                                  std::to_string(rate));
    }
  }

  std::int64_t base_now() const noexcept { return base_.now().time_since_epoch().count(); }

  std::int64_t local_at(std::int64_t t) const noexcept {
    const std::int64_t elapsed = t - state_->anchor;
    return state_->local_anchor + elapsed +
           static_cast<std::int64_t>(static_cast<double>(elapsed) * state_->drift);
  }

  void reanchor() noexcept {
    const std::int64_t t = base_now();
    state_->local_anchor = local_at(t);
    state_->anchor = t;
  }

  ManualClock base_;
  std::shared_ptr<State> state_;
};
static_assert(PhysicalClock<NodeClock>);

}  // namespace pods::sim

#include <pods/sim/node_clock.hpp>
#include <pods/sim/simulation.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <stdexcept>

using namespace std::chrono_literals;
using pods::sim::NodeClock;

namespace {
std::int64_t ns(NodeClock::time_point t) {
  return t.time_since_epoch().count();
}
}  // namespace

TEST_CASE("NodeClock: a PhysicalClock over virtual time plus an offset", "[node_clock]") {
  STATIC_REQUIRE(pods::PhysicalClock<NodeClock>);
  pods::sim::Simulation sim(1, 100s);
  NodeClock clock(sim.clock(), 250ms);
  CHECK(ns(clock.now()) == 100'250'000'000);
  CHECK(clock.offset() == 250ms);
  sim.run_for(1s);
  CHECK(ns(clock.now()) == 101'250'000'000);
  NodeClock behind(sim.clock(), -3s);
  CHECK(behind.offset() == -3s);
}

TEST_CASE("NodeClock: drifts at its rate", "[node_clock]") {
  pods::sim::Simulation sim(1);
  NodeClock fast(sim.clock(), 0ms, 1e-3);   // 1000 ppm fast
  NodeClock slow(sim.clock(), 0ms, -5e-4);  // 500 ppm slow
  sim.run_for(10s);
  CHECK(ns(fast.now()) == 10'010'000'000);
  CHECK(ns(slow.now()) == 9'995'000'000);
  SECTION("changing the rate keeps the reading continuous") {
    fast.set_drift(0.0);
    CHECK(ns(fast.now()) == 10'010'000'000);
    sim.run_for(1s);
    CHECK(ns(fast.now()) == 11'010'000'000);
    fast.set_drift(0.5);
    sim.run_for(2s);
    CHECK(ns(fast.now()) == 14'010'000'000);
    CHECK(fast.drift() == 0.5);
  }
  SECTION("over many small advances the drift accumulates to the rate") {
    for (int i = 0; i < 1000; ++i)
      sim.run_for(1ms);
    CHECK(ns(fast.now()) - 10'010'000'000 == 1'001'000'000);
  }
}

TEST_CASE("NodeClock: steps backwards and forwards; copies share the state", "[node_clock]") {
  pods::sim::Simulation sim(1, 10s);
  NodeClock clock(sim.clock());
  NodeClock copy = clock;
  copy.step(-2s);
  CHECK(ns(clock.now()) == 8'000'000'000);  // moved backwards
  clock.step(500ms);
  CHECK(ns(copy.now()) == 8'500'000'000);
  clock.set_offset(1s);
  CHECK(clock.offset() == 1s);
  sim.run_for(1s);
  CHECK(ns(copy.now()) == 12'000'000'000);
}

TEST_CASE("NodeClock: until() says how much virtual time is left until a local deadline",
          "[node_clock]") {
  pods::sim::Simulation sim(1);
  for (double drift : {0.0, 1e-4, -1e-4, 0.37, -0.6}) {
    NodeClock clock(sim.clock(), 5ms, drift);
    INFO("drift " << drift);
    const auto deadline = clock.now() + 123'456'789ns;
    const auto wait = clock.until(deadline);
    CHECK(wait > 0ns);
    // waiting exactly that long reaches the deadline, one nanosecond less does not
    pods::sim::Simulation probe(1, sim.now().time_since_epoch());
    NodeClock same(probe.clock(), clock.offset(), drift);
    probe.run_for(wait - 1ns);
    CHECK(same.now() < deadline);
    probe.run_for(1ns);
    CHECK(same.now() >= deadline);
    CHECK(clock.until(clock.now()) == 0ns);
    CHECK(clock.until(clock.now() - 1s) == 0ns);
  }
}

TEST_CASE("NodeClock: a rate that would stop the clock throws naming it", "[node_clock]") {
  pods::sim::Simulation sim(1);
  CHECK_THROWS_AS(NodeClock(sim.clock(), 0ms, -1.0), std::invalid_argument);
  CHECK_THROWS_WITH(NodeClock(sim.clock(), 0ms, -1.0), Catch::Contains("drift"));
  NodeClock clock(sim.clock());
  CHECK_THROWS_WITH(clock.set_drift(-2.0), Catch::Contains("rate"));
  CHECK_THROWS_WITH(clock.set_drift(std::nan("")), Catch::Contains("rate"));
  CHECK(clock.drift() == 0.0);
}

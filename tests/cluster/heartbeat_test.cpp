// Tests of pods/cluster/heartbeat.hpp: the detectors alone on a ManualClock, HeartBeat message
// by message through an Outbox, the codec, and whole clusters on the simulator with loss,
// jitter, crashes, pauses and a Nemesis.
//
// Seeds: the simulator tests run PODS_SEEDS seeds each (default 3); e.g. PODS_SEEDS=200.
//
// The bounds the simulator tests assert, for a beat interval I, delays uniform in
// [dmin, dmax] (jitter J = dmax - dmin < I), independent loss p, and no clock faults:
//   TimeoutDetector (k intervals):
//     detection: the last beat that arrives was sent at or before the crash and arrives by
//       crash + dmax, and the peer is suspected k * I after it: latency <= k * I + dmax.
//     false suspicion: accepted arrivals are a_j = s_j * I + d_j (s_j the beat's sequence), so
//       a silence of k * I needs s_{j+1} - s_j = m with m * I + J >= k * I, i.e. m >= k when
//       J < I: k - 1 consecutive beats lost. Per beat: P <= sum_{m>=k} p^(m-1) = p^(k-1)/(1-p).
//   PhiAccrualDetector (threshold phi, y = its normal quantile, floor sigma_min):
//     the wait after a beat is W = mean + y * max(sigma, sigma_min). The window's mean
//     telescopes: mean = (a_last - a_first) / n >= I - J / n. So W >= I - J / n + y * sigma_min;
//     with sigma_min chosen so that W > 2 * I + J, a false suspicion needs m >= 3 (two beats
//     lost in a row): P <= p^2 / (1 - p) per beat.
//     detection: latency <= dmax + W at the crash; the model's interval distribution has
//       mean I / (1 - p) and variance I^2 p / (1 - p)^2 + J^2 / 6 (geometric gaps plus the
//       difference of two uniform delays); the window's estimates are allowed 1.2 x the mean
//       and 2 x the deviation (sampling error of a 200-interval window of a heavy-tailed
//       distribution).
// Rates are measured over (monitor, live peer, beat interval) triples and asserted at twice
// the bound, which leaves room for sampling noise over the ~10^5 triples of a run.
#include <pods/cluster/heartbeat.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/nemesis.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using pods::HeartBeat;
using pods::HeartBeatMessage;
using pods::HeartBeatRequest;
using pods::ManualClock;
using pods::NodeId;
using pods::PhiAccrualDetector;
using pods::TimeoutDetector;

namespace {

using Time = ManualClock::time_point;
Time at(std::chrono::nanoseconds d) {
  return Time(d);
}

std::uint64_t seeds() {
  if (const char* s = std::getenv("PODS_SEEDS")) return std::strtoull(s, nullptr, 10);
  return 3;
}

// A type that is not a detector: no suspect_at().
struct NotADetector {
  using time_point = Time;
  using duration = std::chrono::nanoseconds;
  void reset(time_point) {}
  void heartbeat(time_point) {}
  bool suspected(time_point) const { return false; }
  double suspicion(time_point) const { return 0; }
};

}  // namespace

TEST_CASE("detectors model FailureDetector; other types do not") {
  STATIC_REQUIRE(pods::FailureDetector<TimeoutDetector<ManualClock>>);
  STATIC_REQUIRE(pods::FailureDetector<PhiAccrualDetector<ManualClock>>);
  STATIC_REQUIRE(pods::FailureDetector<PhiAccrualDetector<pods::sim::NodeClock>>);
  STATIC_REQUIRE_FALSE(pods::FailureDetector<NotADetector>);
  STATIC_REQUIRE_FALSE(pods::FailureDetector<int>);
}

TEST_CASE("TimeoutDetector suspects after exactly intervals * interval of silence") {
  TimeoutDetector<ManualClock> d({.interval = 100ms, .intervals = 3}, at(1s));
  CHECK(d.timeout() == 300ms);
  CHECK(d.suspect_at() == at(1300ms));
  CHECK_FALSE(d.suspected(at(1300ms) - 1ns));
  CHECK(d.suspected(at(1300ms)));
  CHECK(d.suspicion(at(1s)) == 0.0);
  CHECK(d.suspicion(at(1250ms)) == Approx(2.5));

  SECTION("a beat postpones the suspicion by a full timeout") {
    d.heartbeat(at(1200ms));
    CHECK(d.last_heartbeat() == at(1200ms));
    CHECK_FALSE(d.suspected(at(1499ms)));
    CHECK(d.suspected(at(1500ms)));
  }
  SECTION("a beat clears a suspicion") {
    CHECK(d.suspected(at(2s)));
    d.heartbeat(at(2s));
    CHECK_FALSE(d.suspected(at(2s)));
  }
  SECTION("reset gives a fresh timeout from the reset time") {
    d.reset(at(5s));
    CHECK(d.suspect_at() == at(5300ms));
  }
  SECTION("a beat timed before the last one (a clock stepped back) counts from its own time") {
    d.heartbeat(at(500ms));
    CHECK(d.suspect_at() == at(800ms));
  }
}

TEST_CASE("TimeoutDetector rejects bad options with a message naming them") {
  using D = TimeoutDetector<ManualClock>;
  CHECK_THROWS_WITH(D({.interval = 0ns, .intervals = 3}),
                    "TimeoutDetector: interval must be positive");
  CHECK_THROWS_WITH(D({.interval = -1ms, .intervals = 3}),
                    "TimeoutDetector: interval must be positive");
  CHECK_THROWS_WITH(D({.interval = 1ms, .intervals = 0}),
                    "TimeoutDetector: intervals must be at least 1");
  CHECK_THROWS_WITH(
      D({.interval = std::chrono::nanoseconds(std::int64_t{1} << 62), .intervals = 2}),
      "TimeoutDetector: interval * intervals must fit the clock's duration");
  CHECK_THROWS_AS(D({.interval = 0ns}), std::invalid_argument);
}

namespace {

// The window model of a phi accrual detector, computed directly: the last `window` intervals
// (the two prior samples first), their mean and population deviation.
struct PhiModel {
  std::size_t window;
  std::deque<double> intervals;
  double threshold;
  double floor_ns;
  double pause_ns;

  void add(double ns) {
    intervals.push_back(ns);
    if (intervals.size() > window) intervals.pop_front();
  }
  double mean() const {
    double s = 0;
    for (double v : intervals)
      s += v;
    return s / static_cast<double>(intervals.size());
  }
  double deviation() const {
    const double m = mean();
    double s = 0;
    for (double v : intervals)
      s += (v - m) * (v - m);
    return std::sqrt(s / static_cast<double>(intervals.size()));
  }
  double phi(double elapsed_ns) const {
    const double sd = std::max(deviation(), floor_ns);
    const double y = (elapsed_ns - mean() - pause_ns) / sd;
    return -std::log10(0.5 * std::erfc(y / std::sqrt(2.0)));
  }
};

}  // namespace

TEST_CASE("PhiAccrualDetector's mean, deviation and phi match a direct computation (seeded)") {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    pods::Random random(seed);
    const std::size_t window = 2 + random.below(40);
    const pods::PhiAccrualOptions options{.threshold = 1.0 + static_cast<double>(random.below(12)),
                                          .window = window,
                                          .min_std_deviation = 1ms,
                                          .acceptable_pause = std::chrono::milliseconds(
                                              50 * static_cast<std::int64_t>(random.below(2))),
                                          .first_interval = 80ms};
    PhiAccrualDetector<ManualClock> d(options, at(0ns));
    PhiModel model{
        window, {}, options.threshold, 1e6, static_cast<double>(options.acceptable_pause.count())};
    model.add(60e6);
    model.add(100e6);
    std::int64_t now = 0;
    for (int beat = 0; beat < 120; ++beat) {
      const std::int64_t gap = random.between<std::int64_t>(1'000'000, 300'000'000);
      now += gap;
      d.heartbeat(at(std::chrono::nanoseconds(now)));
      model.add(static_cast<double>(gap));
      INFO("seed " << seed << " beat " << beat);
      REQUIRE(d.samples() == model.intervals.size());
      REQUIRE(d.mean() == Approx(model.mean()).epsilon(1e-9));
      REQUIRE(d.std_deviation() ==
              Approx(std::max(model.deviation(), 1e6)).epsilon(1e-6).margin(1e-3));
      const std::int64_t probe = random.between<std::int64_t>(0, 400'000'000);
      const double expected = model.phi(static_cast<double>(probe));
      const double got = d.phi(at(std::chrono::nanoseconds(now + probe)));
      if (std::isfinite(expected))
        REQUIRE(got == Approx(std::max(0.0, expected)).epsilon(1e-6).margin(1e-9));
      // suspected() switches where phi reaches the threshold.
      const auto s = d.suspect_at();
      REQUIRE(d.phi(s) >= options.threshold - 1e-6);
      REQUIRE(d.phi(s - 1ms) < options.threshold);
      REQUIRE(d.suspected(s));
      REQUIRE_FALSE(d.suspected(s - 1ns));
    }
  }
}

TEST_CASE("PhiAccrualDetector: phi grows with silence; floor, pause and window bound act") {
  pods::PhiAccrualOptions options{.threshold = 8,
                                  .window = 4,
                                  .min_std_deviation = 10ms,
                                  .acceptable_pause = 0ns,
                                  .first_interval = 100ms};
  PhiAccrualDetector<ManualClock> d(options, at(0ns));
  SECTION("the prior: mean first_interval, two samples") {
    CHECK(d.samples() == 2);
    CHECK(d.mean() == Approx(100e6));
    CHECK(d.std_deviation() == Approx(25e6));  // samples 75 ms and 125 ms
  }
  SECTION("phi never decreases as silence grows") {
    double previous = 0;
    for (auto t = 0ms; t <= 600ms; t += 10ms) {
      const double phi = d.phi(at(t));
      CHECK(phi >= previous);
      previous = phi;
    }
    CHECK(d.phi(at(0ns)) < 1e-4);  // a beat just came: P(later) = P(X > -4 sigma)
  }
  SECTION("perfectly regular beats: the deviation is the floor") {
    for (int i = 1; i <= 4; ++i)
      d.heartbeat(at(i * 100ms));
    CHECK(d.samples() == 4);  // the window holds 4: the prior is gone
    CHECK(d.mean() == Approx(100e6));
    CHECK(d.std_deviation() == Approx(10e6));
    // y(8) = 5.612...: suspected 100 ms + 5.612 * 10 ms after the last beat.
    const double y = d.threshold_quantile();
    CHECK(y == Approx(5.612).margin(1e-3));
    CHECK(d.suspect_at() == at(400ms) + std::chrono::nanoseconds(static_cast<std::int64_t>(
                                            std::ceil(100e6 + y * 10e6))));
  }
  SECTION("acceptable_pause delays the suspicion by exactly itself") {
    options.acceptable_pause = 1s;
    PhiAccrualDetector<ManualClock> lenient(options, at(0ns));
    CHECK(lenient.suspect_at() - d.suspect_at() == 1s);
  }
  SECTION("a huge silence saturates phi at infinity and a beat clears it") {
    CHECK(std::isinf(d.phi(at(1h))));
    CHECK(d.suspected(at(1h)));
    d.heartbeat(at(1h));
    CHECK_FALSE(d.suspected(at(1h)));
    CHECK(d.mean() == Approx((75e6 + 125e6 + std::ldexp(1.0, 40)) / 3));  // capped at 2^40 ns
  }
  SECTION("reset forgets the window") {
    d.heartbeat(at(1s));
    d.reset(at(2s));
    CHECK(d.samples() == 2);
    CHECK(d.mean() == Approx(100e6));
    CHECK(d.last_heartbeat() == at(2s));
  }
}

TEST_CASE("PhiAccrualDetector rejects bad options with a message naming them") {
  using D = PhiAccrualDetector<ManualClock>;
  CHECK_THROWS_WITH(D({.threshold = 0}), "PhiAccrualDetector: threshold must be in (0, 300]");
  CHECK_THROWS_WITH(D({.threshold = 301}), "PhiAccrualDetector: threshold must be in (0, 300]");
  CHECK_THROWS_WITH(D({.threshold = std::nan("")}),
                    "PhiAccrualDetector: threshold must be in (0, 300]");
  CHECK_THROWS_WITH(D({.window = 1}), "PhiAccrualDetector: window must be in [2, 65536]");
  CHECK_THROWS_WITH(D({.window = 65537}), "PhiAccrualDetector: window must be in [2, 65536]");
  CHECK_THROWS_WITH(D({.min_std_deviation = 0ns}),
                    "PhiAccrualDetector: min_std_deviation must be positive");
  CHECK_THROWS_WITH(D({.acceptable_pause = -1ns}),
                    "PhiAccrualDetector: acceptable_pause must not be negative");
  CHECK_THROWS_WITH(D({.first_interval = 0ns}),
                    "PhiAccrualDetector: first_interval must be positive and at most 2^40 ns");
}

namespace {

using Out = pods::Outbox<HeartBeatMessage>;
using Timeout = TimeoutDetector<ManualClock>;
using Beat = HeartBeat<Out, ManualClock, Timeout>;

struct Fixture {
  ManualClock clock;
  Out out;
  std::vector<std::pair<NodeId, bool>> changes;
  Beat beat{1,
            std::vector<NodeId>{3, 2},
            out,
            clock,
            {.interval = 100ms, .generation = 7},
            Timeout({.interval = 100ms, .intervals = 3})};
  Fixture() {
    beat.on_change([this](NodeId peer, bool s) { changes.emplace_back(peer, s); });
  }
};

HeartBeatMessage beat_of(std::uint64_t generation, std::uint64_t sequence) {
  return HeartBeatRequest{generation, sequence};
}

}  // namespace

TEST_CASE("HeartBeat sends one beat per peer per interval") {
  Fixture f;
  CHECK(f.beat.peers() == std::vector<NodeId>{2, 3});
  CHECK(f.beat.next_deadline() == f.clock.now());
  f.beat.tick();
  CHECK(f.out.take() == std::vector<Out::Sent>{{2, beat_of(7, 1)}, {3, beat_of(7, 1)}});
  CHECK(f.beat.next_deadline() == at(100ms));
  f.clock.advance(99ms);
  f.beat.tick();
  CHECK(f.out.empty());
  f.clock.advance(1ms);
  f.beat.tick();
  CHECK(f.out.take() == std::vector<Out::Sent>{{2, beat_of(7, 2)}, {3, beat_of(7, 2)}});
  CHECK(f.beat.stats().sent == 4);

  SECTION("after a stall, one round and a schedule restarted from now (no burst)") {
    f.clock.advance(1s);  // now 1.1 s; rounds at 200 ms .. 1 s were missed
    f.beat.tick();
    CHECK(f.out.take().size() == 2);
    f.beat.tick();
    CHECK(f.out.empty());
    CHECK(f.beat.next_deadline() <= at(1200ms));
  }
}

TEST_CASE("HeartBeat: a beat that is news feeds the detector; stale and unknown ones are counted") {
  Fixture f;
  f.clock.advance(50ms);
  f.beat.receive(2, beat_of(0, 5));
  CHECK(f.beat.detector(2).last_heartbeat() == at(50ms));
  CHECK(f.beat.stats().received == 1);

  f.clock.advance(50ms);
  f.beat.receive(2, beat_of(0, 5));  // a duplicate
  f.beat.receive(2, beat_of(0, 4));  // reordered: older
  CHECK(f.beat.stats().stale == 2);
  CHECK(f.beat.detector(2).last_heartbeat() == at(50ms));

  f.beat.receive(2, beat_of(1, 1));  // a restarted sender: a larger generation
  CHECK(f.beat.detector(2).last_heartbeat() == at(100ms));
  f.beat.receive(2, beat_of(0, 99));  // the old incarnation's late beat
  CHECK(f.beat.stats().stale == 3);

  f.beat.receive(9, beat_of(0, 1));  // not a peer
  CHECK(f.beat.stats().unknown == 1);
  CHECK(f.beat.stats().received == 2);
}

TEST_CASE("HeartBeat tells the listener each transition exactly once, on time") {
  Fixture f;
  f.beat.tick();
  f.clock.advance(100ms);
  f.beat.tick();
  f.clock.advance(100ms);
  f.beat.tick();
  f.beat.receive(2, beat_of(0, 1));
  // 3 was never heard: suspected at 300 ms; 2 at 500 ms.
  CHECK(f.beat.next_deadline() == at(300ms));
  f.clock.advance(100ms);
  f.beat.tick();
  CHECK(f.changes == std::vector<std::pair<NodeId, bool>>{{3, true}});
  CHECK(f.beat.suspected(3));
  CHECK_FALSE(f.beat.suspected(2));
  CHECK(f.beat.suspects() == std::vector<NodeId>{3});
  CHECK(f.beat.suspicion(3) == Approx(3.0));
  // A suspected peer no longer sets the deadline: only the next beat and peer 2 do.
  CHECK(f.beat.next_deadline() == at(400ms));
  f.beat.tick();
  CHECK(f.changes.size() == 1);  // no repeat

  f.clock.advance(50ms);
  f.beat.receive(3, beat_of(0, 1));  // heard again: cleared at once
  CHECK(f.changes == std::vector<std::pair<NodeId, bool>>{{3, true}, {3, false}});
  f.beat.tick();
  CHECK(f.changes.size() == 2);
}

TEST_CASE("HeartBeat: peers can be added and removed") {
  Fixture f;
  f.clock.advance(1s);
  f.beat.add_peer(4);
  CHECK(f.beat.peers() == std::vector<NodeId>{2, 3, 4});
  CHECK(f.beat.detector(4).last_heartbeat() == at(1s));  // a fresh grace period
  CHECK(f.beat.remove_peer(2));
  CHECK_FALSE(f.beat.remove_peer(2));
  f.beat.tick();
  CHECK(f.out.size() == 2);
  CHECK_THROWS_WITH(f.beat.add_peer(3), "HeartBeat::add_peer: node 3 is already a peer");
  CHECK_THROWS_WITH(f.beat.add_peer(1), "HeartBeat::add_peer: node 1 is this node");
}

TEST_CASE("HeartBeat rejects bad arguments with a message naming them") {
  ManualClock clock;
  Out out;
  const std::vector<NodeId> ok{2, 3};
  CHECK_THROWS_WITH(Beat(1, ok, out, clock, {.interval = 0ns}),
                    "HeartBeat: interval must be positive");
  CHECK_THROWS_WITH(Beat(1, std::vector<NodeId>{2, 1}, out, clock),
                    "HeartBeat: peers must not contain self (node 1)");
  CHECK_THROWS_WITH(Beat(1, std::vector<NodeId>{2, 3, 2}, out, clock),
                    "HeartBeat: peers must not repeat node 2");
  Beat beat(1, ok, out, clock);
  CHECK_THROWS_WITH(beat.suspected(4), "HeartBeat::suspected: node 4 is not a peer");
  CHECK_THROWS_WITH(beat.suspicion(4), "HeartBeat::suspicion: node 4 is not a peer");
  CHECK_THROWS_WITH(beat.detector(4), "HeartBeat::detector: node 4 is not a peer");
}

TEST_CASE("HeartBeatMessageCodec: exact bytes, round trip, and corruption named") {
  const pods::HeartBeatMessageCodec codec;
  pods::Buffer bytes;
  codec.encode(beat_of(0x0102, 0x0A0B0C), bytes);
  const std::vector<int> expected{1, 0,    0x02, 0x01, 0, 0, 0, 0, 0,
                                  0, 0x0C, 0x0B, 0x0A, 0, 0, 0, 0, 0};
  REQUIRE(bytes.size() == expected.size());
  for (std::size_t i = 0; i < bytes.size(); ++i)
    CHECK(static_cast<int>(bytes[i]) == expected[i]);
  CHECK(codec.decode(bytes) == beat_of(0x0102, 0x0A0B0C));

  pods::Random random(5);
  for (int i = 0; i < 100; ++i) {
    const HeartBeatMessage m = beat_of(random.next(), random.next());
    pods::Buffer b;
    codec.encode(m, b);
    CHECK(codec.decode(b) == m);
  }

  auto corrupt = [&](pods::Buffer b) { return codec.decode(b); };
  pods::Buffer v = bytes;
  v[0] = std::byte{2};
  CHECK_THROWS_WITH(corrupt(v), "corrupt data in heartbeat message at offset 0: unknown version 2");
  pods::Buffer t = bytes;
  t[1] = std::byte{1};
  CHECK_THROWS_WITH(corrupt(t),
                    "corrupt data in heartbeat message at offset 1: unknown message tag 1");
  pods::Buffer shorter(bytes.begin(), bytes.end() - 1);
  CHECK_THROWS_AS(corrupt(shorter), pods::CorruptionError);
  pods::Buffer longer = bytes;
  longer.push_back(std::byte{0});
  CHECK_THROWS_WITH(corrupt(longer),
                    "corrupt data in heartbeat message at offset 18: 1 unexpected trailing bytes");
  CHECK_THROWS_AS(corrupt({}), pods::CorruptionError);
}

// ---------------------------------------------------------------------------------------------
// On the simulator.

namespace {

using Clock = pods::sim::NodeClock;
using Net = pods::sim::Network<HeartBeatMessage>;
using SimTimeout = TimeoutDetector<Clock>;
using SimPhi = PhiAccrualDetector<Clock>;

constexpr auto interval = 100ms;
constexpr pods::sim::LinkFaults lossy{.loss = 0.05, .min_delay = 1ms, .max_delay = 21ms};
constexpr double loss = 0.05;
constexpr auto jitter = 20ms;

// One suspicion transition seen by a listener.
struct Change {
  std::int64_t at;
  NodeId monitor, peer;
  bool suspected;
};

// A test-only detector that breaks one rule: it never records a beat, so every peer is
// suspected one timeout after the start however alive it is.
struct DeafDetector : SimTimeout {
  using SimTimeout::SimTimeout;
  void heartbeat(time_point) noexcept {}
};
// A test-only detector that breaks another: it waits two intervals longer than it says.
struct SlowDetector : SimTimeout {
  using SimTimeout::SimTimeout;
  bool suspected(time_point now) const noexcept { return now >= suspect_at(); }
  time_point suspect_at() const noexcept { return SimTimeout::suspect_at() + 2 * interval; }
};

template <class D>
struct Node {
  Node(const pods::sim::NodeContext<HeartBeatMessage>& ctx, std::vector<NodeId> peers, D proto,
       std::vector<Change>& log, pods::sim::Simulation& sim)
      : hb(ctx.id, peers, ctx.endpoint, ctx.clock,
           {.interval = interval, .generation = ctx.incarnation}, proto) {
    hb.on_change([&log, &sim, id = ctx.id](NodeId peer, bool s) {
      log.push_back({pods::to_nanoseconds(sim.now()), id, peer, s});
    });
  }
  void receive(NodeId from, HeartBeatMessage m) { hb.receive(from, std::move(m)); }
  void tick() { hb.tick(); }
  auto next_deadline() const { return hb.next_deadline(); }
  HeartBeat<Net::Endpoint, Clock, D> hb;
};

template <class D>
struct World {
  pods::sim::Simulation sim;
  Net net;
  std::vector<Change> log;
  pods::sim::Cluster<Node<D>, HeartBeatMessage> cluster;
  std::map<NodeId, std::int64_t> started;  // when each node's current incarnation started

  World(std::uint64_t seed, pods::sim::LinkFaults faults, std::size_t n, D proto)
      : sim(seed),
        net(sim, faults),
        cluster(net,
                [this, n, proto](const pods::sim::NodeContext<HeartBeatMessage>& ctx) {
                  std::vector<NodeId> peers;
                  for (NodeId id = 1; id <= n; ++id)
                    if (id != ctx.id) peers.push_back(id);
                  started[ctx.id] = pods::to_nanoseconds(sim.now());
                  return std::make_unique<Node<D>>(ctx, peers, proto, log, sim);
                },
                {.tick_interval = 0ns}) {
    for (NodeId id = 1; id <= n; ++id)
      cluster.add(id);
  }
  std::int64_t now() const { return pods::to_nanoseconds(sim.now()); }
};

SimTimeout timeout_proto() {
  return SimTimeout({.interval = interval, .intervals = 3});
}
// sigma_min = 25 ms: W >= I - J/n + 5.61 * 25 ms ~ 240 ms > 2 I + J = 220 ms (see the top).
SimPhi phi_proto(std::chrono::nanoseconds floor = 25ms) {
  return SimPhi(
      {.threshold = 8, .window = 200, .min_std_deviation = floor, .first_interval = interval});
}

struct Figures {
  std::vector<double> detection_ms;  // crash to suspicion, per (crash, live monitor)
  std::uint64_t false_suspicions = 0;
  double pair_intervals = 0;  // (monitor, live peer) x beat intervals observed
  std::uint64_t completeness_violations = 0;
};

// Runs n = 5 nodes on lossy links: `warmup`, then the crash of one node, checking at every
// step that a crashed node is suspected by every live monitor once `bound` has passed; counts
// suspicions of live peers before the crash.
template <class D>
Figures crash_run(std::uint64_t seed, D proto, std::chrono::nanoseconds warmup,
                  std::chrono::nanoseconds bound) {
  World<D> w(seed, lossy, 5, proto);
  Figures f;
  w.sim.run_for(warmup);
  // Suspicions during the warm-up (after the first timeout's grace) are false: all live.
  for (const Change& c : w.log)
    if (c.suspected) ++f.false_suspicions;
  f.pair_intervals = 20.0 * static_cast<double>(warmup / interval);
  pods::Random r(seed);
  const NodeId victim = 1 + r.below(5);
  w.sim.run_for(std::chrono::nanoseconds(r.between<std::int64_t>(0, interval.count())));
  const std::int64_t crash = w.now();
  w.cluster.crash(victim);
  const std::size_t before = w.log.size();
  const std::int64_t end = crash + 3 * bound.count();
  while (w.now() < end && w.sim.step()) {
    if (w.now() < crash + bound.count()) continue;
    for (NodeId m = 1; m <= 5; ++m) {
      if (m == victim) continue;
      if (!w.cluster.node(m)->hb.suspected(victim)) ++f.completeness_violations;
    }
  }
  std::set<NodeId> seen;
  for (std::size_t i = before; i < w.log.size(); ++i) {
    const Change& c = w.log[i];
    if (c.peer == victim && c.suspected && seen.insert(c.monitor).second) {
      f.detection_ms.push_back(static_cast<double>(c.at - crash) / 1e6);
    }
  }
  if (seen.size() != 4) ++f.completeness_violations;
  return f;
}

double max_of(const std::vector<double>& v) {
  double m = 0;
  for (double x : v)
    m = std::max(m, x);
  return m;
}
double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v)
    s += x;
  return v.empty() ? 0 : s / static_cast<double>(v.size());
}

template <class D>
void report(const char* name, std::chrono::nanoseconds bound, double rate_bound, D proto,
            std::chrono::nanoseconds warmup) {
  std::vector<double> detection;
  std::uint64_t suspicions = 0, violations = 0;
  double pairs = 0;
  for (std::uint64_t seed = 1; seed <= seeds(); ++seed) {
    const Figures f = crash_run(seed, proto, warmup, bound);
    detection.insert(detection.end(), f.detection_ms.begin(), f.detection_ms.end());
    suspicions += f.false_suspicions;
    pairs += f.pair_intervals;
    violations += f.completeness_violations;
  }
  const double rate = static_cast<double>(suspicions) / pairs;
  std::printf(
      "%s, 5 nodes, 5%% loss, delay 1-21 ms, %llu seeds: detection mean %.1f ms, max %.1f ms "
      "(bound %.1f ms); false suspicions %llu in %.0f pair-intervals = %.5f per beat "
      "(bound %.5f)\n",
      name, static_cast<unsigned long long>(seeds()), mean_of(detection), max_of(detection),
      static_cast<double>(bound.count()) / 1e6, static_cast<unsigned long long>(suspicions), pairs,
      rate, rate_bound);
  CHECK(violations == 0);
  CHECK(detection.size() == 4 * seeds());
  CHECK(max_of(detection) <= static_cast<double>(bound.count()) / 1e6);
  CHECK(rate <= 2 * rate_bound);
}

}  // namespace

TEST_CASE("simulated TimeoutDetector: detection within k*I + dmax, false suspicions ~ p^(k-1)") {
  // k = 3: detection <= 300 ms + 21 ms; false suspicion per beat <= p^2 / (1 - p).
  report("TimeoutDetector k=3", 3 * interval + lossy.max_delay, loss * loss / (1 - loss),
         timeout_proto(), 120s);
}

TEST_CASE(
    "simulated PhiAccrualDetector: detection and false suspicions within the derived bounds") {
  const double I = static_cast<double>(std::chrono::nanoseconds(interval).count());
  const double J = static_cast<double>(std::chrono::nanoseconds(jitter).count());
  const double mean = I / (1 - loss);
  const double sd = std::sqrt(I * I * loss / ((1 - loss) * (1 - loss)) + J * J / 6);
  const SimPhi proto = phi_proto();
  const double y = proto.threshold_quantile();
  const double floor = static_cast<double>(proto.options().min_std_deviation.count());
  REQUIRE(I - J / 200 + y * floor > 2 * I + J);  // the premise of the false-suspicion bound
  const double wait = 1.2 * mean + y * std::max(floor, 2 * sd);
  const auto bound =
      lossy.max_delay + std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(wait)));
  report("PhiAccrualDetector phi=8", bound, loss * loss / (1 - loss), proto, 120s);
}

TEST_CASE("the crash check catches a detector that waits longer than its bound") {
  const Figures f = crash_run(1, SlowDetector({.interval = interval, .intervals = 3}), 5s,
                              3 * interval + lossy.max_delay);
  CHECK(f.completeness_violations > 0);
  CHECK(max_of(f.detection_ms) > 321.0);
}

TEST_CASE("the false-suspicion count catches a detector that ignores beats") {
  const Figures f = crash_run(1, DeafDetector({.interval = interval, .intervals = 3}), 5s,
                              3 * interval + lossy.max_delay);
  CHECK(f.false_suspicions >= 20);  // every monitor suspects every live peer
}

TEST_CASE("simulated: a paused node is suspected by every peer, then cleared when it resumes") {
  auto run = [](auto proto, std::uint64_t seed) {
    using D = decltype(proto);
    World<D> w(seed, {.min_delay = 1ms, .max_delay = 21ms}, 4, proto);
    w.sim.run_for(30s);
    w.cluster.pause(4, 3s);
    const std::int64_t paused = w.now();
    w.sim.run_for(2s);
    for (NodeId m = 1; m <= 3; ++m)
      CHECK(w.cluster.node(m)->hb.suspected(4));
    w.sim.run_for(1s + interval + 21ms);  // resumed; its next beat has arrived
    for (NodeId m = 1; m <= 3; ++m)
      CHECK_FALSE(w.cluster.node(m)->hb.suspected(4));
    // Each monitor logged exactly one suspicion of 4 and one clearing, during the pause.
    for (NodeId m = 1; m <= 3; ++m) {
      int up = 0, down = 0;
      for (const Change& c : w.log) {
        if (c.monitor != m || c.peer != 4) continue;
        CHECK(c.at >= paused);
        (c.suspected ? down : up) += 1;
      }
      CHECK(down == 1);
      CHECK(up == 1);
    }
  };
  for (std::uint64_t seed = 1; seed <= seeds(); ++seed) {
    run(timeout_proto(), seed);
    run(phi_proto(), seed);
  }
}

namespace {

// A Nemesis run (partitions, one-way blocks, isolation, crashes with restarts, pauses, loss,
// duplication and delay spikes; no clock faults): at every step, a node that has been down for
// longer than the timeout plus the spiked delay is suspected by every live monitor started
// before; after the heal and a settling time, no live node suspects a live one.
template <class D>
std::uint64_t nemesis_violations(std::uint64_t seed, D proto, std::chrono::nanoseconds timeout) {
  World<D> w(seed, {.min_delay = 1ms, .max_delay = 21ms}, 5, proto);
  pods::sim::NemesisOptions options{.duration = 30s, .quiet = 5s};
  options.clock_steps = options.clock_drift = false;
  pods::sim::Nemesis nemesis(w.cluster, options);
  const std::int64_t worst_delay = options.spike_max_delay.count();
  const std::int64_t settle = 2 * interval.count() + worst_delay;
  std::map<NodeId, std::int64_t> down_since;
  std::map<NodeId, std::int64_t> resumed;  // a paused monitor gets held beats at its resume
  std::set<NodeId> paused;
  std::uint64_t violations = 0;
  const std::int64_t end = pods::to_nanoseconds(nemesis.end_at());
  while (w.now() < end && w.sim.step()) {
    const std::int64_t now = w.now();
    for (NodeId id = 1; id <= 5; ++id) {
      const bool p = w.cluster.is_up(id) && w.cluster.is_paused(id);
      if (!p && paused.erase(id) != 0) resumed[id] = now;
      if (p) paused.insert(id);
      if (!w.cluster.is_up(id)) {
        down_since.try_emplace(id, now);
      } else {
        down_since.erase(id);
      }
    }
    for (NodeId m = 1; m <= 5; ++m) {
      auto* node = w.cluster.node(m);
      if (node == nullptr) continue;
      for (const auto& [id, since] : down_since) {
        const std::int64_t from = std::max({since, w.started[m], resumed[m]});
        if (now >= from + timeout.count() + worst_delay && !node->hb.suspected(id)) ++violations;
      }
      if (nemesis.healed() && now >= pods::to_nanoseconds(nemesis.heal_at()) + settle) {
        for (NodeId id = 1; id <= 5; ++id) {
          if (id != m && w.cluster.is_up(id) && node->hb.suspected(id)) ++violations;
        }
      }
    }
  }
  if (violations != 0 && std::getenv("PODS_VERBOSE"))
    std::printf("%s\n", nemesis.describe().c_str());
  return violations;
}

}  // namespace

TEST_CASE("simulated with a Nemesis: crashed nodes suspected in time, none wrongly after heal") {
  for (std::uint64_t seed = 1; seed <= seeds(); ++seed) {
    INFO("seed " << seed);
    CHECK(nemesis_violations(seed, timeout_proto(), 3 * interval) == 0);
    // The phi detector's wait grows with the gaps faults leave in its window: only its
    // accuracy after the heal is checked (a timeout of an hour disables the crash check).
    CHECK(nemesis_violations(seed, phi_proto(50ms), 1h) == 0);
  }
}

TEST_CASE("the Nemesis check catches a detector that ignores beats") {
  CHECK(nemesis_violations(1, DeafDetector({.interval = interval, .intervals = 3}), 3 * interval) >
        0);
}

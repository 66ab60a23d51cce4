// pods/cluster/heartbeat.hpp — HeartBeat, and the failure detectors that read its beats
//
// Problem:       A node cannot tell a crashed peer from a slow one: both are silent. Waiting
//                forever for an answer stalls a cluster behind a dead server, and giving up
//                too early evicts live servers whenever the network hiccups. Each node needs
//                a timely, tunable opinion about which peers are alive.
// Solution:      Every node pushes a small HeartBeatRequest to each peer every `interval`
//                (tick() sends them when due), and feeds each beat it receives to a failure
//                detector kept for that peer. A detector turns "the last beat came at t" into
//                an opinion, behind one concept (FailureDetector):
//                  - TimeoutDetector: suspects a peer once `intervals` send intervals have
//                    passed without a beat (a fixed timeout of intervals * interval);
//                  - PhiAccrualDetector (Hayashibara, Defago, Yared and Katayama, 2004): keeps
//                    a bounded window of the intervals between beats, models them as a normal
//                    distribution with the window's mean and variance (kept as running sums,
//                    so a beat costs O(1)), and reports phi(t) = -log10(P(the next beat comes
//                    later than t)). A peer is suspected when phi reaches a threshold; phi 8
//                    means the silence would be a one-in-10^8 event for a live peer. The
//                    standard deviation has a floor and an acceptable pause is added to the
//                    mean, as production detectors do, so a regular network does not make
//                    the detector trigger-happy.
//                Beats carry the sender's (generation, sequence): a duplicated, reordered or
//                older beat is ignored, so only news counts as a sign of life.
// Guarantees:    - A peer is suspected exactly when its detector says so at the time the
//                  block reads its clock; queries (suspected, suspicion, suspects) read it.
//                - The listener is told each transition (suspected, then cleared) exactly
//                  once, from tick() or receive(); next_deadline() includes the earliest
//                  moment a peer becomes suspected, so a driver that ticks by it reports a
//                  suspicion on time.
//                - TimeoutDetector: with delays at most max_delay, a crashed peer is
//                  suspected within intervals * interval + max_delay of its crash; a live peer
//                  is suspected only after intervals - 1 consecutive beats were lost (when the
//                  delay jitter is below one interval).
//                - PhiAccrualDetector: suspected(t) holds exactly when t >= suspect_at(), the
//                  instant phi reaches the threshold; phi grows with the silence.
// Not provided:  Agreement: two nodes may disagree about a peer (a failure detector is an
//                opinion, not a membership protocol: see gossip). Any bound when clocks step
//                (a detector measures silence on the local clock). A restarted node must send
//                with a higher generation (its incarnation) or its beats are ignored until its
//                sequence passes the old one.
// Thread safety: thread-compatible: run a HeartBeat on one thread (a SingularUpdateQueue).
// Errors:        Bad options or peer lists throw std::invalid_argument naming the argument
//                and the rule; queries about a node that is not a peer throw
//                std::invalid_argument naming it. A beat from a node that is not a peer is
//                dropped and counted (stats().unknown); corrupt bytes given to the codec
//                throw pods::CorruptionError naming the offset.
// Cost:          tick(): O(peers) sends when a beat is due, O(peers) checks. receive(): a
//                binary search over the peers and one detector update (TimeoutDetector: a
//                store; PhiAccrualDetector: a few arithmetic operations and one sqrt). No
//                allocation after construction except by the transport, the listener, and
//                add_peer. next_deadline(): O(peers).
// Example:
//   pods::ManualClock clock;
//   pods::Outbox<pods::HeartBeatMessage> out;
//   using Detector = pods::TimeoutDetector<pods::ManualClock>;
//   Detector detector({.interval = 100ms, .intervals = 3});
//   pods::HeartBeat<pods::Outbox<pods::HeartBeatMessage>, pods::ManualClock, Detector> beat(
//       /*self=*/1, std::vector<pods::NodeId>{2, 3}, out, clock, {.interval = 100ms}, detector);
//   beat.on_change([](pods::NodeId peer, bool down) { std::printf("%d %d\n", int(peer), down); });
//   beat.tick();                                        // sends a beat to 2 and 3
//   clock.advance(200ms);
//   beat.receive(2, pods::HeartBeatRequest{.sequence = 1});
//   clock.advance(100ms);
//   beat.tick();                                        // 3 silent for 300 ms: suspected
//   assert(beat.suspected(3) && !beat.suspected(2));
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>

#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

// A FailureDetector holds one monitor's opinion of one peer, fed with the arrival times of the
// peer's heartbeats on the monitor's clock.
// Semantic requirements the compiler cannot check:
//   - reset(t) forgets every earlier beat and behaves as if a beat arrived at t (a fresh peer is
//     given one timeout's grace);
//   - heartbeat(t) records a beat arriving at t; t earlier than the last beat (a clock stepped
//     back) records no interval;
//   - between beats, suspicion(t) never decreases as t grows, and suspected(t) is exactly
//     t >= suspect_at(): once suspected, a peer stays suspected until its next beat;
//   - it is a copyable value: HeartBeat copies a prototype for each peer.
// clang-format off
template <class D>
concept FailureDetector = std::copy_constructible<D> &&
  requires(D& d, const D& cd, typename D::time_point t) {
    typename D::time_point;
    typename D::duration;
    d.reset(t);
    d.heartbeat(t);
    { cd.suspected(t) } -> std::same_as<bool>;
    { cd.suspicion(t) } -> std::same_as<double>;
    { cd.suspect_at() } -> std::same_as<typename D::time_point>;
    { cd.last_heartbeat() } -> std::same_as<typename D::time_point>;
  };
// clang-format on

struct TimeoutDetectorOptions {
  std::chrono::nanoseconds interval = std::chrono::milliseconds(100);  // the peer's send interval
  std::uint32_t intervals = 3;  // suspect after this many intervals without a beat
};

// TimeoutDetector: suspects a peer after a fixed silence of intervals * interval.
template <PhysicalClock Clock = SteadyClock>
class TimeoutDetector {
 public:
  using time_point = typename Clock::time_point;
  using duration = typename Clock::duration;

  // Creates a detector that has seen a beat at `start`. Throws std::invalid_argument naming
  // interval when it is not positive, intervals when it is 0, and both when their product
  // overflows the clock's duration.
  explicit TimeoutDetector(TimeoutDetectorOptions options = {}, time_point start = time_point{})
      : options_(options), last_(start) {
    if (options.interval.count() <= 0) {
      throw std::invalid_argument("TimeoutDetector: interval must be positive");
    }
    if (options.intervals == 0) {
      throw std::invalid_argument("TimeoutDetector: intervals must be at least 1");
    }
    const auto step = std::chrono::duration_cast<duration>(options.interval);
    if (step.count() <= 0 ||
        step.count() > std::numeric_limits<typename duration::rep>::max() / 4 / options.intervals) {
      throw std::invalid_argument(
          "TimeoutDetector: interval * intervals must fit the clock's duration");
    }
    timeout_ = step * options.intervals;
  }

  // Forgets the peer's history: it has just been heard from at `now`.
  void reset(time_point now) noexcept { last_ = now; }

  // Records a beat arriving at `now`.
  void heartbeat(time_point now) noexcept { last_ = now; }

  // Returns true when the peer has been silent for the timeout or longer at `now`.
  bool suspected(time_point now) const noexcept { return now >= suspect_at(); }

  // Returns the silence at `now` in send intervals (0 right after a beat; the peer is
  // suspected from `intervals` on).
  double suspicion(time_point now) const noexcept {
    if (now <= last_) return 0.0;
    return static_cast<double>((now - last_).count()) /
           static_cast<double>(std::chrono::duration_cast<duration>(options_.interval).count());
  }

  // Returns when the peer becomes suspected unless a beat arrives first.
  time_point suspect_at() const noexcept { return last_ + timeout_; }

  // Returns when the last beat arrived (or the reset time).
  time_point last_heartbeat() const noexcept { return last_; }

  // Returns the silence after which the peer is suspected: intervals * interval.
  duration timeout() const noexcept { return timeout_; }

  const TimeoutDetectorOptions& options() const noexcept { return options_; }

 private:
  TimeoutDetectorOptions options_;
  time_point last_;
  duration timeout_{};
};

struct PhiAccrualOptions {
  double threshold = 8.0;     // suspect when phi reaches it: 8 ~ a one-in-10^8 silence
  std::size_t window = 1000;  // how many recent intervals the estimate uses (2 .. 65536)
  std::chrono::nanoseconds min_std_deviation = std::chrono::milliseconds(50);  // a floor
  std::chrono::nanoseconds acceptable_pause{0};  // added to the mean: a tolerated stall
  std::chrono::nanoseconds first_interval = std::chrono::milliseconds(100);  // the prior
};

namespace detail {
#if defined(__SIZEOF_INT128__)
__extension__ using PhiWide = unsigned __int128;
#else
using PhiWide = long double;
#endif

// Returns P(X > y) for a standard normal X.
inline double normal_tail(double y) noexcept {
  return 0.5 * std::erfc(y / std::sqrt(2.0));
}

// Returns the y with -log10(normal_tail(y)) == phi, by bisection (phi in (0, 300]).
inline double normal_tail_quantile(double phi) noexcept {
  const double target = std::pow(10.0, -phi);
  double lo = -40.0, hi = 40.0;  // normal_tail(40) underflows below any target
  for (int i = 0; i < 200 && hi - lo > 1e-12; ++i) {
    const double mid = 0.5 * (lo + hi);
    (normal_tail(mid) > target ? lo : hi) = mid;
  }
  return hi;
}
}  // namespace detail

// PhiAccrualDetector: the accrual failure detector of Hayashibara et al. (2004).
template <PhysicalClock Clock = SteadyClock>
class PhiAccrualDetector {
 public:
  using time_point = typename Clock::time_point;
  using duration = typename Clock::duration;

  // Intervals longer than this (about 18 minutes) are recorded as this, so the running sums
  // stay exact.
  static constexpr std::int64_t max_interval_ns = std::int64_t{1} << 40;

  // Creates a detector that has seen a beat at `start`; its window holds two samples at
  // first_interval -+ first_interval / 4 (a prior mean of first_interval), which later beats
  // push out. Allocates the window. Throws std::invalid_argument naming threshold (outside
  // (0, 300]), window (outside [2, 65536]), min_std_deviation (not positive), acceptable_pause
  // (negative) or first_interval (not positive).
  explicit PhiAccrualDetector(PhiAccrualOptions options = {}, time_point start = time_point{})
      : options_(options) {
    if (!(options.threshold > 0.0 && options.threshold <= 300.0)) {
      throw std::invalid_argument("PhiAccrualDetector: threshold must be in (0, 300]");
    }
    if (options.window < 2 || options.window > 65536) {
      throw std::invalid_argument("PhiAccrualDetector: window must be in [2, 65536]");
    }
    if (options.min_std_deviation.count() <= 0) {
      throw std::invalid_argument("PhiAccrualDetector: min_std_deviation must be positive");
    }
    if (options.acceptable_pause.count() < 0) {
      throw std::invalid_argument("PhiAccrualDetector: acceptable_pause must not be negative");
    }
    if (options.first_interval.count() <= 0 || options.first_interval.count() > max_interval_ns) {
      throw std::invalid_argument(
          "PhiAccrualDetector: first_interval must be positive and at most 2^40 ns");
    }
    y_threshold_ = detail::normal_tail_quantile(options.threshold);
    ring_.assign(options.window, 0);
    reset(start);
  }

  // Forgets every interval, seeds the window with the prior and takes `now` as the last beat.
  void reset(time_point now) noexcept {
    count_ = head_ = 0;
    sum_ = 0;
    squares_ = 0;
    const std::int64_t prior = options_.first_interval.count();
    push(prior - prior / 4);
    push(prior + prior / 4);
    last_ = now;
    update();
  }

  // Records a beat arriving at `now`: the interval since the last one enters the window
  // (evicting the oldest when full). O(1), no allocation.
  void heartbeat(time_point now) noexcept {
    if (now >= last_) {
      const std::int64_t ns =
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count();
      push(std::min(ns, max_interval_ns));
    }
    last_ = now;
    update();
  }

  // Returns phi at `now`: -log10 of the probability that a live peer's next beat comes later
  // than now, under the window's normal model. 0 for no silence; +infinity once that
  // probability underflows a double.
  double phi(time_point now) const noexcept {
    const double elapsed = now <= last_ ? 0.0 : to_ns(now - last_);
    const double p = detail::normal_tail((elapsed - mean_ - pause_ns()) / std_deviation());
    if (p <= 0.0) return std::numeric_limits<double>::infinity();
    return std::max(0.0, -std::log10(p));
  }

  // Returns phi(now): the detector's suspicion level.
  double suspicion(time_point now) const noexcept { return phi(now); }

  // Returns true when phi has reached the threshold at `now`: now >= suspect_at().
  bool suspected(time_point now) const noexcept { return now >= suspect_at_; }

  // Returns when phi reaches the threshold unless a beat arrives first: the last beat plus
  // mean + acceptable_pause + y * std_deviation(), where y is the normal quantile of the
  // threshold.
  time_point suspect_at() const noexcept { return suspect_at_; }

  time_point last_heartbeat() const noexcept { return last_; }

  // Returns the window's mean interval, in nanoseconds.
  double mean() const noexcept { return mean_; }

  // Returns the standard deviation the model uses: the window's, or min_std_deviation when
  // larger. In nanoseconds.
  double std_deviation() const noexcept {
    return std::max(raw_std_, static_cast<double>(options_.min_std_deviation.count()));
  }

  // Returns how many intervals the window holds (the two prior samples included until evicted).
  std::size_t samples() const noexcept { return count_; }

  // Returns the standard normal quantile of the threshold: the number of standard deviations
  // past the mean at which phi reaches it.
  double threshold_quantile() const noexcept { return y_threshold_; }

  const PhiAccrualOptions& options() const noexcept { return options_; }

 private:
  static double to_ns(duration d) noexcept {
    return static_cast<double>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  }
  double pause_ns() const noexcept {
    return static_cast<double>(options_.acceptable_pause.count());
  }

  void push(std::int64_t ns) noexcept {
    const auto v = static_cast<std::uint64_t>(ns);
    if (count_ == ring_.size()) {
      const auto old = static_cast<std::uint64_t>(ring_[head_]);
      sum_ -= old;
      squares_ -= static_cast<detail::PhiWide>(old) * old;
    } else {
      ++count_;
    }
    ring_[head_] = ns;
    head_ = head_ + 1 == ring_.size() ? 0 : head_ + 1;
    sum_ += v;
    squares_ += static_cast<detail::PhiWide>(v) * v;
  }

  // Recomputes mean, deviation and suspect_at from the exact sums.
  void update() noexcept {
    const auto n = static_cast<detail::PhiWide>(count_);
    mean_ = static_cast<double>(sum_) / static_cast<double>(count_);
    // n * sum(x^2) - (sum x)^2 >= 0 exactly in integers; at most 2^16 * 2^16 * 2^80.
    const detail::PhiWide spread =
        n * squares_ - static_cast<detail::PhiWide>(sum_) * static_cast<detail::PhiWide>(sum_);
    raw_std_ = std::sqrt(static_cast<double>(spread)) / static_cast<double>(count_);
    const double wait = mean_ + pause_ns() + y_threshold_ * std_deviation();
    const auto ns = std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(wait)));
    suspect_at_ = last_ + std::chrono::duration_cast<duration>(ns);
  }

  PhiAccrualOptions options_;
  double y_threshold_ = 0;
  std::vector<std::int64_t> ring_;
  std::size_t count_ = 0, head_ = 0;
  std::uint64_t sum_ = 0;
  detail::PhiWide squares_ = 0;
  double mean_ = 0, raw_std_ = 0;
  time_point last_{};
  time_point suspect_at_{};
};

static_assert(FailureDetector<TimeoutDetector<ManualClock>>);
static_assert(FailureDetector<PhiAccrualDetector<ManualClock>>);
static_assert(FailureDetector<TimeoutDetector<SteadyClock>>);

// One heartbeat: the sender's generation (its incarnation: raise it on restart) and the
// number of beats it has sent in that generation (1, 2, ...).
struct HeartBeatRequest {
  std::uint64_t generation = 0;
  std::uint64_t sequence = 0;

  friend bool operator==(const HeartBeatRequest&, const HeartBeatRequest&) = default;
};

// The messages of the heartbeat protocol.
using HeartBeatMessage = std::variant<HeartBeatRequest>;

// HeartBeatMessageCodec: version byte 1, the alternative's index byte, then its fields as
// little-endian u64s. decode throws pods::CorruptionError ("heartbeat message" at the offset)
// on an unknown version or index, truncation, or trailing bytes.
struct HeartBeatMessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` (18 bytes) to `out`.
  void encode(const HeartBeatMessage& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    const auto& beat = std::get<HeartBeatRequest>(m);
    w.u64(beat.generation);
    w.u64(beat.sequence);
  }

  // Returns the message encoded in `bytes`. Throws pods::CorruptionError naming the offset.
  HeartBeatMessage decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "heartbeat message");
    r.header(version, std::variant_size_v<HeartBeatMessage>, {.kind = "message tag"});
    HeartBeatRequest beat;
    beat.generation = r.u64();
    beat.sequence = r.u64();
    r.expect_end();
    return beat;
  }
};
static_assert(Codec<HeartBeatMessageCodec, HeartBeatMessage>);

struct HeartBeatOptions {
  std::chrono::nanoseconds interval = std::chrono::milliseconds(100);  // between beats
  std::uint64_t generation = 0;  // sent in every beat; a restarted node must use a larger one
};

// What a HeartBeat has done.
struct HeartBeatStats {
  std::uint64_t sent = 0;      // beats sent (one per peer per interval)
  std::uint64_t received = 0;  // beats accepted as news
  std::uint64_t stale = 0;     // beats ignored: duplicated, reordered or of an older generation
  std::uint64_t unknown = 0;   // beats dropped because their sender is not a peer

  friend bool operator==(const HeartBeatStats&, const HeartBeatStats&) = default;
};

template <Transport<HeartBeatMessage> T, PhysicalClock Clock,
          FailureDetector Detector = TimeoutDetector<Clock>>
requires std::same_as<typename Detector::time_point, typename Clock::time_point>
class HeartBeat {
 public:
  using Message = HeartBeatMessage;
  using MessageCodec = HeartBeatMessageCodec;
  using time_point = typename Clock::time_point;
  using Listener = std::function<void(NodeId peer, bool suspected)>;

  // Creates node `self`'s heartbeat towards `peers`, sending through `transport` and timing by
  // `clock` (both retained). Each peer gets a copy of `detector`, reset to now: a peer is given
  // one detector timeout to be heard from. The first beat goes out at the first tick().
  // Allocates. Throws std::invalid_argument naming interval when it is not positive, and peers
  // when it contains self or repeats a node.
  HeartBeat(NodeId self, std::span<const NodeId> peers, T transport, Clock clock,
            HeartBeatOptions options = {}, Detector detector = Detector())
      : self_(self),
        transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(options),
        prototype_(std::move(detector)) {
    if (options.interval.count() <= 0) {
      throw std::invalid_argument("HeartBeat: interval must be positive");
    }
    interval_ = std::chrono::duration_cast<typename Clock::duration>(options.interval);
    if (interval_.count() <= 0) {
      throw std::invalid_argument("HeartBeat: interval must be positive");
    }
    const time_point now = clock_.now();
    peers_.reserve(peers.size());
    for (NodeId id : peers) {
      if (id == self) {
        throw std::invalid_argument("HeartBeat: peers must not contain self (node " +
                                    std::to_string(id) + ")");
      }
      peers_.push_back(make_peer(id, now));
    }
    std::sort(peers_.begin(), peers_.end(),
              [](const Peer& a, const Peer& b) { return a.id < b.id; });
    for (std::size_t i = 1; i < peers_.size(); ++i) {
      if (peers_[i].id == peers_[i - 1].id) {
        throw std::invalid_argument("HeartBeat: peers must not repeat node " +
                                    std::to_string(peers_[i].id));
      }
    }
    changes_.reserve(peers_.size());
    next_send_ = now;
  }

  // Sets the function told of each transition (peer, true: now suspected; false: heard from
  // again). Retained. It runs inside tick() or receive() and must not call them.
  void on_change(Listener listener) { listener_ = std::move(listener); }

  // Handles a message from `from`: a beat that is news (a larger (generation, sequence) than
  // any before from that peer) feeds the peer's detector, clearing a suspicion; other beats are
  // counted as stale, and beats from non-peers as unknown. Never throws except from the
  // listener.
  void receive(NodeId from, Message m) {
    const auto& beat = std::get<HeartBeatRequest>(m);
    Peer* p = find(from);
    if (p == nullptr) {
      ++stats_.unknown;
      return;
    }
    if (p->heard && (beat.generation < p->generation ||
                     (beat.generation == p->generation && beat.sequence <= p->sequence))) {
      ++stats_.stale;
      return;
    }
    p->heard = true;
    p->generation = beat.generation;
    p->sequence = beat.sequence;
    ++stats_.received;
    const time_point now = clock_.now();
    p->detector.heartbeat(now);
    if (p->suspected && !p->detector.suspected(now)) {
      p->suspected = false;
      if (listener_) listener_(from, false);
    }
  }

  // Sends a beat to every peer when one is due (at most one round per call: after a stall the
  // schedule restarts from now rather than bursting), then tells the listener of peers that
  // became suspected. Throws what the transport or the listener throws.
  void tick() {
    const time_point now = clock_.now();
    if (now >= next_send_) {
      ++sequence_;
      for (const Peer& p : peers_) {
        transport_.send(p.id, Message{HeartBeatRequest{options_.generation, sequence_}});
        ++stats_.sent;
      }
      next_send_ += interval_;
      if (next_send_ <= now) next_send_ = now + interval_;
    }
    changes_.clear();
    for (Peer& p : peers_) {
      const bool s = p.detector.suspected(now);
      if (s != p.suspected) {
        p.suspected = s;
        changes_.emplace_back(p.id, s);
      }
    }
    if (listener_) {
      for (const auto& [id, s] : changes_)
        listener_(id, s);
    }
  }

  // Returns when tick() next has work: the next beat, or an earlier moment at which a peer not
  // yet suspected becomes suspected.
  time_point next_deadline() const noexcept {
    time_point due = next_send_;
    for (const Peer& p : peers_) {
      if (!p.suspected) due = std::min(due, p.detector.suspect_at());
    }
    return due;
  }

  // Returns true when `peer`'s detector suspects it now. Throws std::invalid_argument naming
  // the node when it is not a peer.
  bool suspected(NodeId peer) const {
    return get("suspected", peer).detector.suspected(clock_.now());
  }

  // Returns `peer`'s suspicion level now (the detector's suspicion()). Throws as suspected().
  double suspicion(NodeId peer) const {
    return get("suspicion", peer).detector.suspicion(clock_.now());
  }

  // Returns the peers suspected now, in ascending id order. Allocates.
  std::vector<NodeId> suspects() const {
    const time_point now = clock_.now();
    std::vector<NodeId> out;
    for (const Peer& p : peers_) {
      if (p.detector.suspected(now)) out.push_back(p.id);
    }
    return out;
  }

  // Returns `peer`'s detector. Throws as suspected().
  const Detector& detector(NodeId peer) const { return get("detector", peer).detector; }

  // Starts monitoring `peer` with a fresh detector (reset to now) and beating to it. Allocates.
  // Throws std::invalid_argument naming the node when it is self or already a peer.
  void add_peer(NodeId peer) {
    if (peer == self_) {
      throw std::invalid_argument("HeartBeat::add_peer: node " + std::to_string(peer) +
                                  " is this node");
    }
    auto it = lower(peer);
    if (it != peers_.end() && it->id == peer) {
      throw std::invalid_argument("HeartBeat::add_peer: node " + std::to_string(peer) +
                                  " is already a peer");
    }
    peers_.insert(it, make_peer(peer, clock_.now()));
    changes_.reserve(peers_.size());
  }

  // Stops monitoring `peer`. Returns false when it was not a peer.
  bool remove_peer(NodeId peer) {
    auto it = lower(peer);
    if (it == peers_.end() || it->id != peer) return false;
    peers_.erase(it);
    return true;
  }

  // Returns the peers in ascending id order. Allocates.
  std::vector<NodeId> peers() const {
    std::vector<NodeId> out;
    out.reserve(peers_.size());
    for (const Peer& p : peers_)
      out.push_back(p.id);
    return out;
  }

  NodeId self() const noexcept { return self_; }
  const HeartBeatStats& stats() const noexcept { return stats_; }
  const HeartBeatOptions& options() const noexcept { return options_; }

 private:
  struct Peer {
    NodeId id = 0;
    Detector detector;
    bool suspected = false;  // as last reported to the listener
    bool heard = false;      // a beat has been accepted
    std::uint64_t generation = 0;
    std::uint64_t sequence = 0;
  };

  Peer make_peer(NodeId id, time_point now) const {
    Peer p{id, prototype_};
    p.detector.reset(now);
    return p;
  }

  typename std::vector<Peer>::iterator lower(NodeId id) {
    return std::lower_bound(peers_.begin(), peers_.end(), id,
                            [](const Peer& p, NodeId v) { return p.id < v; });
  }
  Peer* find(NodeId id) {
    auto it = lower(id);
    return it != peers_.end() && it->id == id ? &*it : nullptr;
  }
  const Peer& get(const char* where, NodeId id) const {
    const Peer* p = const_cast<HeartBeat*>(this)->find(id);
    if (p == nullptr) {
      std::string message = "HeartBeat::";
      message += where;
      message += ": node ";
      message += std::to_string(id);
      message += " is not a peer";
      throw std::invalid_argument(message);
    }
    return *p;
  }

  NodeId self_;
  T transport_;
  Clock clock_;
  HeartBeatOptions options_;
  Detector prototype_;
  typename Clock::duration interval_{};
  std::vector<Peer> peers_;
  std::vector<std::pair<NodeId, bool>> changes_;
  Listener listener_;
  time_point next_send_{};
  std::uint64_t sequence_ = 0;
  HeartBeatStats stats_;
};

}  // namespace pods

// pods/sim/nemesis.hpp — Nemesis: a seeded schedule of faults over a simulated run
//
// Problem:       Faults written into a test by hand find the bugs their author imagined.
//                The ones that matter are combinations nobody wrote down: a partition that
//                starts while a node is paused, a crash during a loss spike, a clock stepped
//                back while a lease is held.
// Solution:      Nemesis (Jepsen's word for the fault injector) draws a schedule of faults
//                from the simulation's seed and applies them to a Cluster and its Network as
//                the run goes: every gap (drawn from [min_gap, max_gap]) it starts one fault,
//                chosen uniformly among the enabled kinds that are free, for a duration drawn
//                from [min_fault, max_fault], then undoes it. Kinds: symmetric partitions into
//                two sides, one-way blocks (a node that stops hearing some peers, or being
//                heard by them), isolation of one node, crash with restart (optionally with a
//                torn write), process pauses, clock steps (forwards or backwards), clock drift,
//                and spikes of loss, duplication and delay on every link. At most one
//                connectivity fault and one link-quality spike are active at a time, and at
//                most max_down nodes are crashed or paused at once (a minority by default, so
//                a majority protocol can make progress between faults).
//                Timing model: PARTIALLY SYNCHRONOUS (Dwork, Lynch and Stockmeyer, 1988).
//                Outside nemesis windows, message delays are bounded by the links' max_delay and
//                every node runs; inside a window, messages may be lost or delayed without
//                bound and nodes stopped. At heal_at() = start + duration - quiet, every fault
//                is undone (crashed nodes restarted, pauses ended, partitions healed, link
//                defaults and clock rates restored) and none starts again: that instant is the
//                global stabilisation time after which a correct protocol must make progress.
//                Every action is logged with its virtual time, so a failing seed explains
//                itself.
// Guarantees:    The same seed (and the same system) gives the same schedule. After heal_at()
//                no fault is active and none starts. Faults touch only nodes of the cluster.
// Not provided:  Faults the network and cluster do not model (Byzantine behaviour, disk
//                corruption of synced bytes). Clock offsets introduced by steps are not undone
//                at the heal (a stepped clock stays stepped; its rate returns to nominal).
// Thread safety: thread-confined to the simulation's thread.
// Errors:        Options out of range (quiet > duration, min_gap <= 0, min_gap > max_gap,
//                min_fault > max_fault, spikes outside [0, 1], max_drift outside [0, 1))
//                throw std::invalid_argument naming the option.
// Cost:          One event per fault start and end; the log allocates one string per action.
// Example:
//   pods::sim::Nemesis nemesis(cluster, {.duration = 30s, .quiet = 5s});
//   sim.run_for(30s);
//   if (!check(history)) std::cout << nemesis.describe();   // what happened, when
// Example context: inline pods::sim::Simulation sim(42);
// Example context: struct Msg {};
// Example context: struct Node { void receive(pods::NodeId, Msg) {} void tick() {} };
// Example context: inline pods::sim::Network<Msg> net(sim);
// Example context: inline auto make_node(const pods::sim::NodeContext<Msg>&) {
// Example context:   return std::make_unique<Node>();
// Example context: }
// Example context: inline pods::sim::Cluster<Node, Msg> cluster(net, make_node);
// Example context: inline int history = 0;
// Example context: inline bool check(int) { return true; }
#pragma once

#include <pods/policy/random.hpp>
#include <pods/policy/transport.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods::sim {

struct NemesisOptions {
  std::chrono::nanoseconds duration = std::chrono::seconds(10);       // the run: faults, then quiet
  std::chrono::nanoseconds quiet = std::chrono::seconds(2);           // the fault-free end
  std::chrono::nanoseconds min_gap = std::chrono::milliseconds(100);  // between fault starts
  std::chrono::nanoseconds max_gap = std::chrono::milliseconds(1000);
  std::chrono::nanoseconds min_fault = std::chrono::milliseconds(100);  // how long one lasts
  std::chrono::nanoseconds max_fault = std::chrono::milliseconds(2000);

  // The kinds of fault, each on or off.
  bool partitions = true;   // two sides that cannot reach each other
  bool one_way = true;      // a node cut from some peers in one direction
  bool isolation = true;    // a node cut from everyone
  bool crashes = true;      // crash, then restart at the end of the window
  bool pauses = true;       // process pause
  bool clock_steps = true;  // a node's clock jumps by up to max_clock_step either way
  bool clock_drift = true;  // a node's clock runs up to max_drift fast or slow
  bool loss = true;         // every link loses spike_loss of its messages
  bool duplication = true;  // every link duplicates spike_duplicate (copyable messages)
  bool delays = true;       // every link's max_delay rises to spike_max_delay

  bool tear = true;          // crashes keep a random prefix of unsynced bytes
  std::size_t max_down = 0;  // crashed + paused at once; 0: a minority, (n - 1) / 2
  double spike_loss = 0.3;
  double spike_duplicate = 0.3;
  std::chrono::nanoseconds spike_max_delay = std::chrono::milliseconds(200);
  std::chrono::nanoseconds max_clock_step = std::chrono::seconds(1);
  double max_drift = 1e-3;
};

// One logged action of a Nemesis.
struct NemesisEntry {
  std::chrono::nanoseconds at;  // virtual time since the simulation's epoch
  std::string what;             // e.g. "partition {1, 3} | {2, 4, 5}"
};

template <class C>
class Nemesis {
 public:
  using Cluster = C;

  // Schedules faults over [now, now + duration) on `cluster` (which must outlive the
  // nemesis), drawing from a fork of the simulation's generator. Throws
  // std::invalid_argument naming a bad option.
  explicit Nemesis(C& cluster, NemesisOptions options = {})
      : cluster_(cluster),
        net_(cluster.network()),
        sim_(cluster.simulation()),
        options_(options),
        random_(sim_.random().fork()) {
    validate(options_);
    const std::int64_t now = sim_.now().time_since_epoch().count();
    heal_at_ = now + (options_.duration - options_.quiet).count();
    end_at_ = now + options_.duration.count();
    heal_event_ = sim_.schedule(options_.duration - options_.quiet, [this] { heal_all(); });
    schedule_next();
  }

  // The nemesis's events point at it: it does not move.
  Nemesis(const Nemesis&) = delete;
  Nemesis& operator=(const Nemesis&) = delete;

  // Cancels every pending fault start and end (active faults stay as they are).
  ~Nemesis() {
    sim_.cancel(heal_event_);
    sim_.cancel(next_event_);
    for (Active& a : active_)
      sim_.cancel(a.end_event);
  }

  // Returns the instant every fault is undone and after which none starts.
  Simulation::time_point heal_at() const noexcept {
    return Simulation::time_point(std::chrono::nanoseconds(heal_at_));
  }

  // Returns the end of the run (heal_at() + quiet).
  Simulation::time_point end_at() const noexcept {
    return Simulation::time_point(std::chrono::nanoseconds(end_at_));
  }

  // Returns true once the heal has happened.
  bool healed() const noexcept { return healed_; }

  // Returns every action taken so far, oldest first.
  const std::vector<NemesisEntry>& log() const noexcept { return log_; }

  // Returns the log as text, one "<seconds>s  <action>" line per action. Allocates.
  std::string describe() const {
    std::string out;
    for (const NemesisEntry& e : log_) {
      char when[32];
      std::snprintf(when, sizeof when, "%12.6fs  ", static_cast<double>(e.at.count()) / 1e9);
      out += when;
      out += e.what;
      out += '\n';
    }
    return out;
  }

 private:
  enum class Kind {
    partition,
    one_way,
    isolation,
    crash,
    pause,
    clock_step,
    clock_drift,
    loss,
    duplication,
    delay
  };
  enum class Slot { connectivity, link_quality, node, clock };

  struct Active {
    Slot slot;
    NodeId node;  // for node and clock faults
    EventId end_event;
    std::function<void()> undo;
  };

  static void validate(const NemesisOptions& o) {
    auto fail = [](const std::string& what) { throw std::invalid_argument("Nemesis: " + what); };
    if (o.duration.count() < 0) fail("duration must not be negative");
    if (o.quiet.count() < 0 || o.quiet > o.duration) fail("quiet must be in [0, duration]");
    if (o.min_gap.count() <= 0) fail("min_gap must be positive");
    if (o.min_gap > o.max_gap) fail("min_gap must not exceed max_gap");
    if (o.min_fault.count() < 0) fail("min_fault must not be negative");
    if (o.min_fault > o.max_fault) fail("min_fault must not exceed max_fault");
    if (!(o.spike_loss >= 0.0 && o.spike_loss <= 1.0)) fail("spike_loss must be in [0, 1]");
    if (!(o.spike_duplicate >= 0.0 && o.spike_duplicate <= 1.0))
      fail("spike_duplicate must be in [0, 1]");
    if (o.spike_max_delay.count() < 0) fail("spike_max_delay must not be negative");
    if (o.max_clock_step.count() < 0) fail("max_clock_step must not be negative");
    if (!(o.max_drift >= 0.0 && o.max_drift < 1.0)) fail("max_drift must be in [0, 1)");
  }

  std::int64_t now_ns() const noexcept { return sim_.now().time_since_epoch().count(); }

  // Logs `what` and digests it (FNV-1a over its bytes: the same on every platform).
  void note(std::string what) {
    std::uint64_t h = 0xCBF29CE484222325ULL;
    for (const char c : what)
      h = (h ^ static_cast<unsigned char>(c)) * 0x100000001B3ULL;
    sim_.trace(h);
    log_.push_back(NemesisEntry{sim_.now().time_since_epoch(), std::move(what)});
  }

  static std::string list(const std::vector<NodeId>& ids) {
    std::string s = "{";
    for (std::size_t i = 0; i < ids.size(); ++i)
      s += (i ? ", " : "") + std::to_string(ids[i]);
    return s + "}";
  }

  void schedule_next() {
    const auto gap = random_.between(options_.min_gap, options_.max_gap);
    if (healed_ || now_ns() + gap.count() >= heal_at_) return;
    next_event_ = sim_.schedule(gap, [this] {
      start_one();
      schedule_next();
    });
  }

  bool busy(Slot slot) const {
    return std::any_of(active_.begin(), active_.end(),
                       [slot](const Active& a) { return a.slot == slot; });
  }

  std::size_t down_or_paused() const {
    std::size_t n = 0;
    for (const Active& a : active_)
      n += a.slot == Slot::node ? 1 : 0;
    return n;
  }

  std::size_t max_down() const {
    if (options_.max_down != 0) return options_.max_down;
    return cluster_.size() == 0 ? 0 : (cluster_.size() - 1) / 2;
  }

  // Returns the nodes that are up, not paused and not under a node fault of ours.
  std::vector<NodeId> runnable() const {
    std::vector<NodeId> out;
    for (NodeId id : cluster_.ids()) {
      if (!cluster_.is_up(id) || cluster_.is_paused(id)) continue;
      out.push_back(id);
    }
    return out;
  }

  bool clock_busy(NodeId id) const {
    return std::any_of(active_.begin(), active_.end(),
                       [id](const Active& a) { return a.slot == Slot::clock && a.node == id; });
  }

  void start_one() {
    const std::vector<NodeId> ids = cluster_.ids();
    const std::size_t n = ids.size();
    if (n == 0) return;
    std::vector<Kind> kinds;
    const bool connectivity_free = !busy(Slot::connectivity);
    const bool quality_free = !busy(Slot::link_quality);
    const bool node_free = down_or_paused() < max_down() && !runnable().empty();
    if (options_.partitions && connectivity_free && n >= 2) kinds.push_back(Kind::partition);
    if (options_.one_way && connectivity_free && n >= 2) kinds.push_back(Kind::one_way);
    if (options_.isolation && connectivity_free && n >= 2) kinds.push_back(Kind::isolation);
    if (options_.crashes && node_free) kinds.push_back(Kind::crash);
    if (options_.pauses && node_free) kinds.push_back(Kind::pause);
    if (options_.clock_steps) kinds.push_back(Kind::clock_step);
    if (options_.clock_drift) kinds.push_back(Kind::clock_drift);
    if (options_.loss && quality_free) kinds.push_back(Kind::loss);
    if constexpr (std::copy_constructible<typename C::Message>) {
      if (options_.duplication && quality_free) kinds.push_back(Kind::duplication);
    }
    if (options_.delays && quality_free) kinds.push_back(Kind::delay);
    if (kinds.empty()) return;
    const Kind kind = kinds[random_.below(kinds.size())];
    const std::int64_t length = std::min(
        random_.between(options_.min_fault, options_.max_fault).count(), heal_at_ - now_ns());
    const std::chrono::nanoseconds d(length);
    switch (kind) {
      case Kind::partition: {
        std::vector<NodeId> order = ids;
        random_.shuffle(order);
        const auto cut = static_cast<std::ptrdiff_t>(random_.between<std::size_t>(1, n - 1));
        std::vector<NodeId> a(order.begin(), order.begin() + cut),
            b(order.begin() + cut, order.end());
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        net_.partition({a, b});
        note("partition " + list(a) + " | " + list(b) + " for " + ms(d));
        begin(Slot::connectivity, 0, d, [this] {
          net_.heal();
          note("heal partition");
        });
        break;
      }
      case Kind::one_way: {
        const NodeId victim = ids[random_.below(n)];
        std::vector<NodeId> peers;
        for (NodeId id : ids)
          if (id != victim && random_.chance(0.5)) peers.push_back(id);
        if (peers.empty()) peers.push_back(victim == ids[0] ? ids[1] : ids[0]);
        const bool deaf = random_.chance(0.5);  // the victim stops hearing, or being heard
        for (NodeId p : peers)
          deaf ? net_.block(p, victim) : net_.block(victim, p);
        const std::string arrow = deaf ? list(peers) + " -/-> " + std::to_string(victim)
                                       : std::to_string(victim) + " -/-> " + list(peers);
        note("block " + arrow + " for " + ms(d));
        begin(Slot::connectivity, victim, d, [this, peers, victim, deaf, arrow] {
          for (NodeId p : peers)
            deaf ? net_.unblock(p, victim) : net_.unblock(victim, p);
          note("unblock " + arrow);
        });
        break;
      }
      case Kind::isolation: {
        const NodeId victim = ids[random_.below(n)];
        net_.isolate(victim);
        note("isolate " + std::to_string(victim) + " for " + ms(d));
        begin(Slot::connectivity, victim, d, [this, victim] {
          net_.heal();
          note("heal isolation of " + std::to_string(victim));
        });
        break;
      }
      case Kind::crash: {
        const auto candidates = runnable();
        const NodeId victim = candidates[random_.below(candidates.size())];
        cluster_.crash(victim, options_.tear);
        note("crash " + std::to_string(victim) + (options_.tear ? " (torn write)" : "") +
             ", restart in " + ms(d));
        begin(Slot::node, victim, d, [this, victim] {
          if (cluster_.is_up(victim)) return;  // someone else restarted it already
          cluster_.restart(victim);
          note("restart " + std::to_string(victim));
        });
        break;
      }
      case Kind::pause: {
        const auto candidates = runnable();
        const NodeId victim = candidates[random_.below(candidates.size())];
        cluster_.pause(victim, d);
        note("pause " + std::to_string(victim) + " for " + ms(d));
        begin(Slot::node, victim, d, [this, victim] {
          cluster_.resume(victim);  // already over when the window ends on time
          note("resume " + std::to_string(victim));
        });
        break;
      }
      case Kind::clock_step: {
        const NodeId victim = ids[random_.below(n)];
        const auto step = random_.between(-options_.max_clock_step, options_.max_clock_step);
        cluster_.clock(victim).step(step);
        note("step clock of " + std::to_string(victim) + " by " + ms(step));
        break;
      }
      case Kind::clock_drift: {
        const NodeId victim = ids[random_.below(n)];
        if (clock_busy(victim)) return;
        const auto ppb = static_cast<std::int64_t>(options_.max_drift * 1e9);
        const double rate = static_cast<double>(random_.between(-ppb, ppb)) * 1e-9;
        cluster_.clock(victim).set_drift(rate);
        note("drift clock of " + std::to_string(victim) + " by " + std::to_string(rate * 1e6) +
             " ppm for " + ms(d));
        begin(Slot::clock, victim, d, [this, victim] {
          cluster_.clock(victim).set_drift(0.0);
          note("clock of " + std::to_string(victim) + " back to nominal rate");
        });
        break;
      }
      case Kind::loss:
      case Kind::duplication:
      case Kind::delay: {
        const LinkFaults saved = net_.defaults();
        LinkFaults spiked = saved;
        std::string what;
        if (kind == Kind::loss) {
          spiked.loss = std::max(saved.loss, options_.spike_loss);
          what = "loss " + std::to_string(spiked.loss);
        } else if (kind == Kind::duplication) {
          spiked.duplicate = std::max(saved.duplicate, options_.spike_duplicate);
          what = "duplication " + std::to_string(spiked.duplicate);
        } else {
          spiked.max_delay = std::max(saved.max_delay, options_.spike_max_delay);
          what = "max_delay " + ms(spiked.max_delay);
        }
        net_.set_defaults(spiked);
        note("spike: " + what + " on every link for " + ms(d));
        begin(Slot::link_quality, 0, d, [this, saved] {
          net_.set_defaults(saved);
          note("links back to their defaults");
        });
        break;
      }
    }
  }

  // Records an active fault and schedules its undo after d.
  void begin(Slot slot, NodeId node, std::chrono::nanoseconds d, std::function<void()> undo) {
    active_.push_back(Active{slot, node, EventId{}, std::move(undo)});
    const std::uint64_t id = ++fault_ids_;
    ids_.push_back(id);
    active_.back().end_event = sim_.schedule(d, [this, id] { end(id); });
  }

  void end(std::uint64_t id) {
    const auto it = std::find(ids_.begin(), ids_.end(), id);
    if (it == ids_.end()) return;
    const auto i = static_cast<std::size_t>(it - ids_.begin());
    std::function<void()> undo = std::move(active_[i].undo);
    active_.erase(active_.begin() + static_cast<std::ptrdiff_t>(i));
    ids_.erase(it);
    undo();
  }

  void heal_all() {
    healed_ = true;
    sim_.cancel(next_event_);
    while (!ids_.empty()) {
      sim_.cancel(active_.front().end_event);
      end(ids_.front());
    }
    note("heal: every fault undone; quiet until the end of the run");
  }

  static std::string ms(std::chrono::nanoseconds d) {
    char text[32];
    std::snprintf(text, sizeof text, "%.3f ms", static_cast<double>(d.count()) / 1e6);
    return text;
  }

  C& cluster_;
  Network<typename C::Message>& net_;
  Simulation& sim_;
  NemesisOptions options_;
  Random random_;
  std::int64_t heal_at_ = 0;
  std::int64_t end_at_ = 0;
  bool healed_ = false;
  EventId heal_event_{};
  EventId next_event_{};
  std::vector<Active> active_;
  std::vector<std::uint64_t> ids_;  // parallel to active_: the id of each active fault
  std::uint64_t fault_ids_ = 0;
  std::vector<NemesisEntry> log_;
};

}  // namespace pods::sim

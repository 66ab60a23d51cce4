// pods/sim/cluster.hpp — Cluster: the nodes of a simulation, and the faults of a process
//
// Problem:       Processes fail as well as networks: a server crashes and never returns, or
//                restarts with only what reached its disk, or stops for a second (a garbage
//                collection, a VM migration) and then acts on stale beliefs, and its clock is
//                wrong. A protocol test has to kill and rebuild nodes at any instant, from
//                exactly the bytes a real crash would leave.
// Solution:      Cluster<N, M> owns the user's node objects (sans-IO protocol blocks with
//                receive(from, m) and tick()) and drives them: it installs each node's network
//                handler, ticks live nodes periodically and at their next_deadline(), and
//                applies the node faults of the textbook models:
//                  - crash-stop (crash(n)): the node object is destroyed, its network endpoint
//                    goes down (what arrives for it is dropped), and its MemoryStorage keeps
//                    only its synced bytes (crash(tear): also a random prefix of the rest);
//                  - crash-recovery (restart(n)): after the crash, the user's factory builds a
//                    new node from the same MemoryStorage, the only state that survives;
//                  - process pause (pause(n, d)): no ticks and no deliveries for d; then what
//                    was held arrives, in order, and ticks resume;
//                  - clock faults: each node reads its own NodeClock (offset, drift, steps).
//                The factory gets a NodeContext: the node's id, endpoint, storage, clock, a
//                random stream of its own (forked by id and incarnation), and its incarnation.
//                In the Cachin-Guerraoui-Rodrigues terms, a node that is never restarted is
//                crash-stop; restarts make the crash-recovery model, where a node's memory is
//                lost and its stable storage (the synced bytes) is all it recovers with.
// Guarantees:    A crashed node receives nothing and sends nothing (its endpoint is down);
//                unsynced bytes of its storage are gone when it restarts. A paused node is
//                neither ticked nor handed messages until the pause ends. Ticks happen every
//                tick_interval (at a per-node phase) and no later than the node's
//                next_deadline() as its own clock reads it. All draws come from forks of the
//                simulation's generator, so runs replay.
// Not provided:  Byzantine faults (a node is correct or crashed); a disk's timing.
// Thread safety: thread-confined to the simulation's thread.
// Errors:        Unknown node ids throw std::invalid_argument naming the node; add of an id
//                that exists, pause of a crashed node and negative durations throw
//                std::invalid_argument; crashing or restarting a node from inside its own
//                receive() or tick() throws std::logic_error (schedule it as an event
//                instead). What the factory throws propagates, and the node stays down.
// Cost:          A delivery is one std::function call plus one next_deadline() call; a tick
//                is one event. Crash and restart: the node's destructor and factory, and
//                MemoryStorage::crash (O(segments)).
// Example:
//   pods::sim::Simulation sim(seed);
//   pods::sim::Network<Msg> net(sim, {.min_delay = 1ms, .max_delay = 5ms});
//   pods::sim::Cluster<Replica, Msg> cluster(net, [](const pods::sim::NodeContext<Msg>& ctx) {
//     return std::make_unique<Replica>(ctx.id, ctx.endpoint, ctx.storage, ctx.clock);
//   });
//   for (pods::NodeId id = 1; id <= 3; ++id) cluster.add(id);
//   sim.run_for(1s);
//   cluster.crash(2, /*tear=*/true);   // later, from an event:
//   cluster.restart(2);
//   cluster.pause(3, 500ms);
// Example context: inline std::uint64_t seed = 42;
// Example context: struct Msg {};
// Example context: struct Replica {
// Example context:   Replica(pods::NodeId, pods::sim::Network<Msg>::Endpoint, pods::MemoryStorage,
// Example context:           pods::sim::NodeClock) {}
// Example context:   void receive(pods::NodeId, Msg) {}
// Example context:   void tick() {}
// Example context: };
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/random.hpp>
#include <pods/policy/transport.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/node_clock.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pods::sim {

// A Node<N, M> is a sans-IO protocol participant the Cluster can drive.
// Semantic requirements the compiler cannot check:
//   - receive(from, m) handles one message; tick() fires whatever is due by the node's clock;
//   - both may send through the node's endpoint, never block and never wait for real time;
//   - optionally, next_deadline() returns the time (a time_point of the node's clock, or an
//     optional of one, nullopt for "none") when tick() next has work; the cluster then ticks
//     the node no later than that.
// clang-format off
template <class N, class M>
concept Node = requires(N& n, NodeId from, M m) {
  n.receive(from, std::move(m));
  n.tick();
};
// clang-format on

// What a factory gets to build (or rebuild) a node. Every member is a handle that the node
// may copy and keep.
template <class M>
struct NodeContext {
  NodeId id = 0;
  typename Network<M>::Endpoint endpoint;  // models Transport<M>: a fair-loss link
  MemoryStorage storage;                   // survives restarts (its synced bytes do)
  NodeClock clock;                         // this node's physical clock
  Random random;                           // this incarnation's own stream
  std::uint64_t incarnation = 0;           // 0 at the first start, then 1, 2, ... per restart
};

struct ClusterOptions {
  // How often a live node is ticked; zero: only at its next_deadline().
  std::chrono::nanoseconds tick_interval = std::chrono::milliseconds(10);
};

template <class N, class M>
requires Node<N, M>
class Cluster {
 public:
  using NodeType = N;
  using Message = M;
  using Context = NodeContext<M>;
  using Factory = std::function<std::unique_ptr<N>(const Context&)>;

  // Creates an empty cluster of nodes built by `factory` (retained) on `network`, which must
  // outlive it. Throws std::invalid_argument naming tick_interval when it is negative, or
  // factory when it is empty.
  Cluster(Network<M>& network, Factory factory, ClusterOptions options = {})
      : net_(network),
        sim_(network.simulation()),
        factory_(std::move(factory)),
        options_(options),
        streams_(sim_.random().fork()) {
    if (options_.tick_interval.count() < 0) {
      throw std::invalid_argument("Cluster: tick_interval must not be negative");
    }
    if (!factory_) throw std::invalid_argument("Cluster: factory must not be empty");
  }

  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  // Cancels the cluster's pending ticks, uninstalls its handlers and destroys the nodes.
  ~Cluster() {
    for (Member& m : members_) {
      sim_.cancel(m.tick_event);
      sim_.cancel(m.resume_event);
      net_.on_deliver(m.id, nullptr);
      net_.down(m.id);
      m.node.reset();
    }
  }

  // Adds node `id` and starts it: a fresh MemoryStorage (seeded from the cluster's stream),
  // a NodeClock reading virtual time, the network endpoint, then the factory. Returns the
  // node. Throws std::invalid_argument naming id when it exists; rethrows what the factory
  // throws (the node then exists, down).
  N& add(NodeId id) {
    if (index_.count(id) != 0) {
      throw std::invalid_argument("Cluster::add: id " + std::to_string(id) + " already exists");
    }
    net_.add(id);
    Member& m = members_.emplace_back(Member{
        id, nullptr, MemoryStorage(streams_.fork(id).fork(0).next()), NodeClock(sim_.clock())});
    index_.emplace(id, members_.size() - 1);
    Member* self = &m;  // a deque: stable while members are added
    net_.on_deliver(
        id, [this, self](NodeId from, M message) { deliver(*self, from, std::move(message)); });
    return start(m);
  }

  // Returns the live node object `id`, or nullptr while it is crashed. Throws
  // std::invalid_argument naming id when unknown.
  N* node(NodeId id) { return member("node", id).node.get(); }

  // Returns the ids of the nodes, in the order they were added. Allocates.
  std::vector<NodeId> ids() const {
    std::vector<NodeId> out;
    out.reserve(members_.size());
    for (const Member& m : members_)
      out.push_back(m.id);
    return out;
  }

  // Returns how many nodes were added.
  std::size_t size() const noexcept { return members_.size(); }

  // Returns true when node `id` is running (not crashed; it may be paused).
  bool is_up(NodeId id) const { return member("is_up", id).node != nullptr; }

  // Returns true while node `id` is paused.
  bool is_paused(NodeId id) const { return member("is_paused", id).paused; }

  // Returns how many times node `id` has been restarted.
  std::uint64_t incarnation(NodeId id) const { return member("incarnation", id).incarnation; }

  // Returns node `id`'s storage (a handle: copies share the store).
  MemoryStorage& storage(NodeId id) { return member("storage", id).storage; }

  // Returns node `id`'s clock (a handle: the node sees changes made through it).
  NodeClock& clock(NodeId id) { return member("clock", id).clock; }

  Network<M>& network() noexcept { return net_; }
  Simulation& simulation() noexcept { return sim_; }

  // Crash-stop: destroys node `id`, takes its endpoint down (in-flight and held messages to
  // it are dropped; anything its destructor sends is dropped) and crashes its storage: only
  // synced bytes survive, plus a random prefix of the unsynced ones when `tear`. Does nothing
  // when the node is already crashed. Throws std::invalid_argument when unknown,
  // std::logic_error from inside the node's own receive() or tick().
  void crash(NodeId id, bool tear = false) {
    Member& m = member("crash", id);
    not_active(m, "crash");
    if (!m.node) return;
    sim_.cancel(m.tick_event);
    sim_.cancel(m.resume_event);
    m.paused = false;
    net_.down(id);
    m.node.reset();
    m.storage.crash(tear);
    sim_.trace(0x63726173680000ULL ^ id);
  }

  // Crash-recovery: crashes node `id` if it is running (with `tear` as in crash()), then
  // rebuilds it with the factory from the same storage and clock, with the next incarnation
  // and its random stream. Returns the new node. Throws as crash(), and rethrows what the
  // factory throws (the node then stays down).
  N& restart(NodeId id, bool tear = false) {
    Member& m = member("restart", id);
    not_active(m, "restart");
    crash(id, tear);
    ++m.incarnation;
    return start(m);
  }

  // Process pause: node `id` is not ticked and is handed no messages for `d` (what arrives is
  // held); then everything held arrives, in order, and ticks resume. Pausing a paused node
  // extends the pause to whichever end is later. Throws std::invalid_argument naming id when
  // unknown or crashed, or d when negative.
  void pause(NodeId id, std::chrono::nanoseconds d) {
    Member& m = member("pause", id);
    if (!m.node) {
      throw std::invalid_argument("Cluster::pause: node " + std::to_string(id) + " is crashed");
    }
    if (d.count() < 0) throw std::invalid_argument("Cluster::pause: d must not be negative");
    const std::int64_t until = now_ns() + d.count();
    if (m.paused && until <= m.pause_until) return;
    sim_.cancel(m.resume_event);
    sim_.cancel(m.tick_event);
    m.paused = true;
    m.pause_until = until;
    net_.pause(id);
    Member* self = &m;
    m.resume_event = sim_.schedule(d, [this, self] { resume(self->id); });
    sim_.trace(0x7061757365000000ULL ^ id);
  }

  // Ends a pause of node `id` now (as if it had run out). Does nothing unless it is paused.
  void resume(NodeId id) {
    Member& m = member("resume", id);
    if (!m.paused) return;
    sim_.cancel(m.resume_event);
    m.paused = false;
    net_.resume(id);
    schedule_tick(m);
  }

  // Re-reads node `id`'s next_deadline() and ticks it by then; call it after calling the
  // node directly (a user request) in a way that may have set a timer.
  void wake(NodeId id) { schedule_tick(member("wake", id)); }

 private:
  struct Member {
    NodeId id;
    std::unique_ptr<N> node;
    MemoryStorage storage;
    NodeClock clock;
    std::uint64_t incarnation = 0;
    bool paused = false;
    std::int64_t pause_until = 0;
    EventId resume_event{};
    EventId tick_event{};
    std::int64_t tick_at = 0;        // when tick_event runs
    std::int64_t next_periodic = 0;  // when the next periodic tick is due
  };

  // Marks which node's code is running, to refuse crashing it from inside itself.
  struct Active {
    Cluster& c;
    const Member* previous;
    Active(Cluster& cluster, const Member& m) : c(cluster), previous(cluster.active_) {
      c.active_ = &m;
    }
    ~Active() { c.active_ = previous; }
  };

  std::int64_t now_ns() const noexcept { return sim_.now().time_since_epoch().count(); }

  Member& member(const char* where, NodeId id) {
    auto it = index_.find(id);
    if (it == index_.end()) {
      throw std::invalid_argument(std::string("Cluster::") + where + ": node " +
                                  std::to_string(id) + " was never added");
    }
    return members_[it->second];
  }
  const Member& member(const char* where, NodeId id) const {
    return const_cast<Cluster*>(this)->member(where, id);
  }

  void not_active(const Member& m, const char* what) const {
    if (active_ == &m) {
      throw std::logic_error("Cluster::" + std::string(what) + ": node " + std::to_string(m.id) +
                             " cannot be crashed from inside its own receive or tick");
    }
  }

  N& start(Member& m) {
    net_.up(m.id);
    Context context{m.id,
                    net_.endpoint(m.id),
                    m.storage,
                    m.clock,
                    streams_.fork(m.id).fork(2 + 2 * m.incarnation),
                    m.incarnation};
    try {
      m.node = factory_(context);
    } catch (...) {
      net_.down(m.id);
      throw;
    }
    if (!m.node) {
      net_.down(m.id);
      throw std::invalid_argument("Cluster: factory returned no node for node " +
                                  std::to_string(m.id));
    }
    // Each node ticks at its own phase, so nodes do not act in lockstep.
    const std::int64_t interval = options_.tick_interval.count();
    Random phase = streams_.fork(m.id).fork(3 + 2 * m.incarnation);
    m.next_periodic = now_ns() + (interval > 0 ? phase.between<std::int64_t>(1, interval) : 0);
    sim_.trace(0x7374617274000000ULL ^ m.id);
    schedule_tick(m);
    return *m.node;
  }

  template <class T>
  static std::optional<std::int64_t> deadline_ns(const T& deadline) {
    if constexpr (requires {
                    deadline.has_value();
                    *deadline;
                  }) {
      if (!deadline.has_value()) return std::nullopt;
      return to_nanoseconds(*deadline);
    } else {
      return to_nanoseconds(deadline);
    }
  }

  // Makes sure node m is ticked at the earlier of its next periodic tick and its deadline.
  void schedule_tick(Member& m) {
    if (!m.node || m.paused) return;
    const std::int64_t now = now_ns();
    constexpr std::int64_t none = std::numeric_limits<std::int64_t>::max();
    std::int64_t due = options_.tick_interval.count() > 0 ? m.next_periodic : none;
    if constexpr (requires { m.node->next_deadline(); }) {
      if (auto local = deadline_ns(m.node->next_deadline())) {
        const auto wait = m.clock.until(NodeClock::time_point(std::chrono::nanoseconds(*local)));
        if (wait.count() <= none - now) due = std::min(due, now + wait.count());
      }
    }
    if (due == none) return;
    due = std::max(due, now);
    if (sim_.is_pending(m.tick_event)) {
      if (m.tick_at <= due) return;  // an earlier tick is harmless: the node ticks idle
      sim_.cancel(m.tick_event);
    }
    Member* self = &m;
    m.tick_at = due;
    m.tick_event =
        sim_.schedule(std::chrono::nanoseconds(due - now), [this, self] { tick(*self); });
  }

  void tick(Member& m) {
    m.tick_event = {};
    if (!m.node || m.paused) return;
    const std::int64_t now = now_ns();
    const std::int64_t interval = options_.tick_interval.count();
    if (interval > 0 && m.next_periodic <= now) {
      m.next_periodic += ((now - m.next_periodic) / interval + 1) * interval;
    }
    {
      Active active(*this, m);
      m.node->tick();
    }
    schedule_tick(m);
  }

  void deliver(Member& m, NodeId from, M message) {
    if (!m.node) return;  // the network holds nothing for a down node; defensive
    {
      Active active(*this, m);
      m.node->receive(from, std::move(message));
    }
    schedule_tick(m);
  }

  Network<M>& net_;
  Simulation& sim_;
  Factory factory_;
  ClusterOptions options_;
  // Never advanced: each node's streams are forks of it by id (storage seed, context random
  // and tick phase per incarnation), so adding a node shifts no other node's draws.
  const Random streams_;
  std::deque<Member> members_;
  std::unordered_map<NodeId, std::size_t> index_;
  const Member* active_ = nullptr;
};

}  // namespace pods::sim

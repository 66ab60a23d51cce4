// pods/sim/network.hpp — Network: a seeded fair-loss network with partitions, in virtual time
//
// Problem:       The faults that break distributed protocols live in the network: messages
//                lost, duplicated, delayed and reordered, links cut in one direction, a node
//                cut off from the rest. A test on a real network sees them rarely and can
//                never repeat one.
// Solution:      Network<M> moves messages of type M between nodes as events of a Simulation.
//                Each node gets an endpoint, a Transport<M>; send() decides the message's fate
//                at once from the link's LinkFaults and the seeded generator (lost, or
//                delivered after a delay drawn uniformly from [min_delay, max_delay], plus a
//                duplicate with its own delay) and schedules its arrival. Arrival hands the
//                message to the handler installed with on_deliver(). Connectivity faults are
//                applied both when a message is sent and when it arrives: symmetric
//                partitions, one-way blocks, isolation of a node. A node that is down (crashed)
//                loses what arrives for it; a paused node has its arrivals held in order and
//                handed over when it resumes.
//                In the textbook model (Cachin, Guerraoui and Rodrigues, 2.4.2) each endpoint
//                is a FAIR-LOSS LINK: it may lose, duplicate (finitely often: each send makes
//                at most one extra copy), delay and reorder messages, but it never creates or
//                corrupts one, and a message sent again and again is delivered eventually while
//                loss < 1 and the link is connected. Reliable and authenticated links are built
//                over it by decorators, as in production.
// Guarantees:    - A message is delivered only if its link is connected when it is sent and when
//                  it arrives (nothing crosses a partition, even one that began in flight).
//                - With min_delay == max_delay a link never reorders (arrivals keep send order);
//                  with max_delay > min_delay it does, as the drawn delays cross.
//                - Every send, drop and delivery is digested into the simulation's trace_hash.
//                - Accounting: sent + duplicated == delivered + dropped + in_flight() + held().
//                - send() never calls a handler: delivery is always a later event.
// Not provided:  Bandwidth or queueing models (delays are independent of load); corruption
//                (a checksummed transport would drop a corrupt frame: model it as loss).
// Thread safety: thread-confined to the simulation's thread, like everything that runs in it.
// Errors:        Naming a node that was never added (in send's `to`, set_faults, block,
//                partition, ...) throws std::invalid_argument naming the argument and the id;
//                LinkFaults with loss or duplicate outside [0, 1], a negative min_delay, or
//                min_delay > max_delay throw std::invalid_argument naming the field.
// Cost:          send: one draw per fault that is non-zero, one event (no allocation for
//                messages of up to 48 bytes); delivery: one std::function call. Per-direction
//                overrides and blocks are hash lookups, paid only while some are set.
// Example:
//   pods::sim::Simulation sim(seed);
//   pods::sim::Network<Msg> net(sim, {.loss = 0.01, .min_delay = 1ms, .max_delay = 10ms});
//   auto a = net.endpoint(1), b = net.endpoint(2);            // Transport<Msg> models
//   net.on_deliver(2, [&](pods::NodeId from, Msg m) { node2.receive(from, std::move(m)); });
//   a.send(2, Msg{42});
//   net.partition({{1}, {2}});                                 // until
//   net.heal();
//   sim.run_for(1s);
//   auto stats = net.stats();                                  // sent, delivered, dropped, ...
// Example context: inline std::uint64_t seed = 42;
// Example context: struct Msg { int value = 0; };
// Example context: struct Node { void receive(pods::NodeId, Msg) {} };
// Example context: inline Node node2;
#pragma once

#include <pods/policy/random.hpp>
#include <pods/policy/transport.hpp>
#include <pods/sim/simulation.hpp>

#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <initializer_list>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace pods::sim {

// The quality of one direction of a link. The default is a perfect link that delivers at once
// (in the next event at the same virtual time, in send order).
struct LinkFaults {
  double loss = 0.0;                      // probability that a message is dropped
  double duplicate = 0.0;                 // probability that a delivered message arrives twice
  std::chrono::nanoseconds min_delay{0};  // shortest delay from send to arrival
  std::chrono::nanoseconds max_delay{0};  // longest; delays are uniform in [min, max]

  friend bool operator==(const LinkFaults&, const LinkFaults&) = default;
};

// Throws std::invalid_argument naming the field of `faults` that is out of range; `where` names
// the caller in the message.
inline void validate(const LinkFaults& faults, const char* where) {
  auto fail = [&](const std::string& what) {
    throw std::invalid_argument(std::string(where) + ": " + what);
  };
  if (!(faults.loss >= 0.0 && faults.loss <= 1.0))
    fail("loss must be in [0, 1], got " + std::to_string(faults.loss));
  if (!(faults.duplicate >= 0.0 && faults.duplicate <= 1.0))
    fail("duplicate must be in [0, 1], got " + std::to_string(faults.duplicate));
  if (faults.min_delay.count() < 0)
    fail("min_delay must not be negative, got " + std::to_string(faults.min_delay.count()) + " ns");
  if (faults.min_delay > faults.max_delay)
    fail("min_delay (" + std::to_string(faults.min_delay.count()) +
         " ns) must not exceed max_delay (" + std::to_string(faults.max_delay.count()) + " ns)");
}

// What a Network has done with the messages sent through it.
struct NetworkStats {
  std::uint64_t sent = 0;        // send() calls
  std::uint64_t delivered = 0;   // messages handed to a handler (duplicates included)
  std::uint64_t dropped = 0;     // lost, cut by a partition or block, or addressed to a down node
  std::uint64_t duplicated = 0;  // extra copies made by duplication

  friend bool operator==(const NetworkStats&, const NetworkStats&) = default;
};

template <class M>
class Network {
 public:
  using Handler = std::function<void(NodeId from, M message)>;

  // A node's handle on the network: models Transport<M> as a fair-loss link (see the header
  // comment). A cheap value; copies send as the same node. Valid while the Network lives.
  class Endpoint {
   public:
    // Sends `message` (moved; retained until it arrives or is dropped) from this endpoint's
    // node to `to`. Never blocks and never calls a handler. Throws std::invalid_argument
    // naming `to` when it was never added to the network.
    void send(NodeId to, M message) { net_->send_from(index_, to, std::move(message)); }

    // Returns the node this endpoint sends as.
    NodeId id() const noexcept { return id_; }

   private:
    friend class Network;
    Endpoint(Network* net, NodeId id, std::uint32_t index) : net_(net), id_(id), index_(index) {}
    Network* net_;
    NodeId id_;
    std::uint32_t index_;
  };

  // Creates a network in `sim` (which must outlive it, and it must outlive every event it
  // schedules: keep both alive for the whole run) with `defaults` on every link. Draws from a
  // fork of the simulation's generator. Throws std::invalid_argument naming a bad field.
  explicit Network(Simulation& sim, LinkFaults defaults = {})
      : sim_(sim), random_(sim.random().fork()), defaults_(defaults) {
    validate(defaults, "Network");
    check_copyable(defaults, "Network");
  }

  // Endpoints and in-flight messages point at the network: it does not move.
  Network(const Network&) = delete;
  Network& operator=(const Network&) = delete;

  // Returns the simulation the network runs in.
  Simulation& simulation() const noexcept { return sim_; }

  // Adds `node` to the network if it is not there yet (up, not paused, in no partition).
  // Allocates.
  void add(NodeId node) { (void)index_or_add(node); }

  // Returns the endpoint of `node`, adding the node first if needed. Allocates when adding.
  Endpoint endpoint(NodeId node) { return Endpoint(this, node, index_or_add(node)); }

  // Installs `handler` (retained; replaces the previous one) to receive what arrives for
  // `node`, adding the node if needed. Must not be called for `node` from inside its own
  // handler. Without a handler, arrivals for the node are dropped.
  void on_deliver(NodeId node, Handler handler) {
    nodes_[index_or_add(node)].handler = std::move(handler);
  }

  // Returns true when `node` was added.
  bool contains(NodeId node) const noexcept { return find(node) != npos; }

  // Returns the nodes, in the order they were added. Allocates.
  std::vector<NodeId> nodes() const {
    std::vector<NodeId> ids;
    ids.reserve(nodes_.size());
    for (const Node& n : nodes_)
      ids.push_back(n.id);
    return ids;
  }

  // ---- Link quality ---------------------------------------------------------------------

  // Returns the faults of every link without an override.
  const LinkFaults& defaults() const noexcept { return defaults_; }

  // Sets the faults of every link without an override. Throws std::invalid_argument naming a
  // bad field.
  void set_defaults(LinkFaults faults) {
    validate(faults, "Network::set_defaults");
    check_copyable(faults, "Network::set_defaults");
    defaults_ = faults;
  }

  // Overrides the faults of the one direction from -> to. Throws std::invalid_argument naming
  // from or to when unknown, or a bad field. Allocates.
  void set_faults(NodeId from, NodeId to, LinkFaults faults) {
    validate(faults, "Network::set_faults");
    check_copyable(faults, "Network::set_faults");
    overrides_[key(index("from", from), index("to", to))] = faults;
  }

  // Returns the faults that apply from -> to now. Throws std::invalid_argument for unknown ids.
  const LinkFaults& faults(NodeId from, NodeId to) const {
    return faults_of(index("from", from), index("to", to));
  }

  // Removes every per-direction override: every link has the defaults again.
  void clear_faults() noexcept { overrides_.clear(); }

  // ---- Connectivity ---------------------------------------------------------------------

  // Splits the nodes into `groups` that cannot reach each other, in both directions (a
  // symmetric partition); nodes named in no group form one more group together. Replaces any
  // previous partition; blocks and isolation stay. Throws std::invalid_argument when a node is
  // unknown or named twice.
  void partition(std::span<const std::vector<NodeId>> groups) {
    std::vector<std::uint32_t> group(nodes_.size(), 0);
    std::uint32_t number = 0;
    for (const auto& members : groups) {
      ++number;
      for (NodeId id : members) {
        std::uint32_t& g = group[index("groups", id)];
        if (g != 0) {
          throw std::invalid_argument("Network::partition: groups name node " + std::to_string(id) +
                                      " twice");
        }
        g = number;
      }
    }
    for (std::size_t i = 0; i < nodes_.size(); ++i)
      nodes_[i].group = group[i];
    sim_.trace(0x7061727469ULL ^ number);
  }

  // As partition(span), for a braced list: net.partition({{1, 2}, {3, 4, 5}}).
  void partition(std::initializer_list<std::vector<NodeId>> groups) {
    partition(std::span<const std::vector<NodeId>>(groups.begin(), groups.size()));
  }

  // Cuts the one direction from -> to (a one-way partition); to -> from is unaffected.
  // Throws std::invalid_argument naming from or to when unknown. Allocates.
  void block(NodeId from, NodeId to) { blocked_.insert(key(index("from", from), index("to", to))); }

  // Restores the direction from -> to cut by block(). Throws std::invalid_argument when
  // unknown.
  void unblock(NodeId from, NodeId to) {
    blocked_.erase(key(index("from", from), index("to", to)));
  }

  // Cuts every link to and from `node`. Throws std::invalid_argument naming node when unknown.
  void isolate(NodeId node) { nodes_[index("node", node)].isolated = true; }

  // Removes every partition, block and isolation (link faults and node states stay).
  void heal() noexcept {
    for (Node& n : nodes_) {
      n.group = 0;
      n.isolated = false;
    }
    blocked_.clear();
    sim_.trace(0x6865616CULL);
  }

  // Returns true when a message sent now from -> to would not be cut by a partition, block or
  // isolation (it may still be lost). Throws std::invalid_argument for unknown ids.
  bool connected(NodeId from, NodeId to) const {
    return link_open(index("from", from), index("to", to));
  }

  // ---- Node states (used by Cluster for crashes and pauses) ------------------------------

  // Marks `node` down (crashed): it sends nothing, what arrives for it is dropped, and what it
  // held while paused is dropped. Throws std::invalid_argument naming node when unknown.
  void down(NodeId node) {
    Node& n = nodes_[index("node", node)];
    n.down = true;
    n.paused = false;
    stats_.dropped += n.held.size();
    held_total_ -= n.held.size();
    n.held.clear();
  }

  // Marks `node` up again (a restarted process). Messages that were dropped stay dropped.
  void up(NodeId node) { nodes_[index("node", node)].down = false; }

  // Returns true unless `node` is down. Throws std::invalid_argument when unknown.
  bool is_up(NodeId node) const { return !nodes_[index("node", node)].down; }

  // Pauses `node`: what arrives for it is held, in arrival order, until resume(). Throws
  // std::invalid_argument naming node when unknown.
  void pause(NodeId node) { nodes_[index("node", node)].paused = true; }

  // Resumes `node`: everything held for it is handed over, in arrival order, in events at the
  // current time. Throws std::invalid_argument naming node when unknown.
  void resume(NodeId node) {
    const std::uint32_t i = index("node", node);
    Node& n = nodes_[i];
    n.paused = false;
    std::vector<Held> held = std::exchange(n.held, {});
    held_total_ -= held.size();
    for (Held& h : held) {
      ++in_flight_;
      sim_.schedule(std::chrono::nanoseconds(0), Handover{this, h.from, i, std::move(h.message)});
    }
  }

  // Returns true while `node` is paused. Throws std::invalid_argument when unknown.
  bool is_paused(NodeId node) const { return nodes_[index("node", node)].paused; }

  // ---- Accounting -------------------------------------------------------------------------

  // Returns the counters of everything sent so far.
  const NetworkStats& stats() const noexcept { return stats_; }

  // Returns how many messages (copies) are on their way (scheduled, not yet arrived).
  std::uint64_t in_flight() const noexcept { return in_flight_; }

  // Returns how many messages are held for paused nodes.
  std::uint64_t held() const noexcept { return held_total_; }

 private:
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();
  static constexpr std::size_t dense_limit = 1u << 16;  // ids below this index a vector

  struct Held {
    std::uint32_t from;
    M message;
  };
  struct Node {
    NodeId id = 0;
    Handler handler;
    std::uint32_t group = 0;  // 0: in no named group
    bool isolated = false;
    bool down = false;
    bool paused = false;
    std::vector<Held> held;
  };

  // The event of a message arriving over a link.
  struct Arrival {
    Network* net;
    std::uint32_t from, to;
    M message;
    void operator()() { net->arrive(from, to, std::move(message)); }
  };
  // The event of a held message handed to a resumed node.
  struct Handover {
    Network* net;
    std::uint32_t from, to;
    M message;
    void operator()() {
      --net->in_flight_;
      net->hand_over(from, to, std::move(message));
    }
  };

  static std::uint64_t key(std::uint32_t from, std::uint32_t to) noexcept {
    return (std::uint64_t{from} << 32) | to;
  }

  void check_copyable(const LinkFaults& faults, const char* where) const {
    if constexpr (!std::copy_constructible<M>) {
      if (faults.duplicate > 0.0) {
        throw std::invalid_argument(std::string(where) +
                                    ": duplicate must be 0 for a move-only message type");
      }
    }
  }

  std::uint32_t find(NodeId id) const noexcept {
    if (id < dense_.size()) return dense_[id];
    if (id < dense_limit) return npos;
    auto it = sparse_.find(id);
    return it == sparse_.end() ? npos : it->second;
  }

  std::uint32_t index(const char* argument, NodeId id) const {
    const std::uint32_t i = find(id);
    if (i == npos) {
      throw std::invalid_argument(std::string("Network: ") + argument + " names node " +
                                  std::to_string(id) + ", which was never added");
    }
    return i;
  }

  std::uint32_t index_or_add(NodeId id) {
    if (const std::uint32_t i = find(id); i != npos) return i;
    const auto i = static_cast<std::uint32_t>(nodes_.size());
    nodes_.emplace_back().id = id;
    if (id < dense_limit) {
      if (id >= dense_.size()) dense_.resize(static_cast<std::size_t>(id) + 1, npos);
      dense_[id] = i;
    } else {
      sparse_.emplace(id, i);
    }
    return i;
  }

  const LinkFaults& faults_of(std::uint32_t from, std::uint32_t to) const {
    if (!overrides_.empty()) {
      auto it = overrides_.find(key(from, to));
      if (it != overrides_.end()) return it->second;
    }
    return defaults_;
  }

  bool link_open(std::uint32_t from, std::uint32_t to) const {
    const Node& a = nodes_[from];
    const Node& b = nodes_[to];
    if (a.isolated || b.isolated) return from == to;  // a node still reaches itself
    if (a.group != b.group) return false;
    return blocked_.empty() || blocked_.count(key(from, to)) == 0;
  }

  std::uint64_t trace_word(std::uint64_t kind, std::uint32_t from, std::uint32_t to) const {
    return (kind << 56) ^ (nodes_[from].id * 0x9E3779B97F4A7C15ULL) ^ nodes_[to].id;
  }

  void drop(std::uint32_t from, std::uint32_t to, std::uint64_t kind) {
    ++stats_.dropped;
    sim_.trace(trace_word(kind, from, to));
  }

  std::chrono::nanoseconds draw_delay(const LinkFaults& f) {
    return f.max_delay > f.min_delay ? random_.between(f.min_delay, f.max_delay) : f.min_delay;
  }

  // Decides a message's fate. Draw order (fixed, so runs replay): loss, delay, duplicate,
  // the duplicate's delay; a draw is made only when its fault is non-zero.
  void send_from(std::uint32_t from, NodeId to_id, M message) {
    const std::uint32_t to = index("to", to_id);
    ++stats_.sent;
    if (nodes_[from].down) return drop(from, to, 1);  // a crashed process sends nothing
    if (!link_open(from, to)) return drop(from, to, 2);
    const LinkFaults& f = faults_of(from, to);
    if (f.loss > 0.0 && random_.chance(f.loss)) return drop(from, to, 3);
    const std::chrono::nanoseconds delay = draw_delay(f);
    if constexpr (std::copy_constructible<M>) {
      if (f.duplicate > 0.0 && random_.chance(f.duplicate)) {
        const std::chrono::nanoseconds again = draw_delay(f);
        ++stats_.duplicated;
        ++in_flight_;
        sim_.trace(trace_word(4, from, to));
        sim_.schedule(again, Arrival{this, from, to, message});
      }
    }
    ++in_flight_;
    sim_.trace(trace_word(5, from, to));
    sim_.schedule(delay, Arrival{this, from, to, std::move(message)});
  }

  void arrive(std::uint32_t from, std::uint32_t to, M message) {
    --in_flight_;
    if (!link_open(from, to)) return drop(from, to, 6);  // the link was cut while in flight
    hand_over(from, to, std::move(message));
  }

  void hand_over(std::uint32_t from, std::uint32_t to, M message) {
    Node& n = nodes_[to];  // a deque: stays valid if the handler adds nodes
    if (n.down || !n.handler) return drop(from, to, 7);
    if (n.paused) {
      n.held.push_back(Held{from, std::move(message)});
      ++held_total_;
      sim_.trace(trace_word(8, from, to));
      return;
    }
    ++stats_.delivered;
    sim_.trace(trace_word(9, from, to));
    n.handler(nodes_[from].id, std::move(message));
  }

  Simulation& sim_;
  Random random_;
  LinkFaults defaults_;
  std::deque<Node> nodes_;
  std::vector<std::uint32_t> dense_;
  std::unordered_map<NodeId, std::uint32_t> sparse_;
  std::unordered_map<std::uint64_t, LinkFaults> overrides_;
  std::unordered_set<std::uint64_t> blocked_;
  NetworkStats stats_;
  std::uint64_t in_flight_ = 0;
  std::uint64_t held_total_ = 0;
};

static_assert(Transport<Network<int>::Endpoint, int>);

}  // namespace pods::sim

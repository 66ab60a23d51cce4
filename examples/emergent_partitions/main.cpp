// Partition assignment by an emergent leader: five nodes on the simulated network join one
// cluster through seeds; every node computes the coordinator (the oldest live member) and the
// owner of each of 8 partitions (partition p -> members[p % n], members in join order) from
// its own view. The program crashes the coordinator, then restarts it, and prints what each
// node computes after each change: the views agree without any election.
#include <pods/cluster/emergent_leader.hpp>
#include <pods/policy/random.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/node_clock.hpp>
#include <pods/sim/simulation.hpp>

#include <chrono>
#include <cstddef>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Msg = pods::emergent::Message;
using Node = pods::EmergentLeader<pods::sim::Network<Msg>::Endpoint, pods::sim::NodeClock>;

namespace {

constexpr std::size_t partitions = 8;

// Returns "coordinator 1, owners 1 2 3 4 5 1 2 3" as node `n` computes it.
std::string assignment(const Node& n) {
  const std::vector<pods::NodeId> members = n.members();
  std::string out = "coordinator " + std::to_string(n.coordinator().value_or(0)) + ", owners";
  for (std::size_t p = 0; p < partitions; ++p) {
    out += ' ';
    out += members.empty() ? "-" : std::to_string(members[p % members.size()]);
  }
  return out;
}

// Prints every node's view; returns whether every live node computes the same assignment.
bool show(const char* when, pods::sim::Cluster<Node, Msg>& cluster) {
  std::printf("%s\n", when);
  std::vector<std::string> views;
  for (pods::NodeId id : cluster.ids()) {
    if (const Node* n = cluster.node(id)) {
      views.push_back(assignment(*n));
      std::printf("  node %llu (generation %llu): %s\n", static_cast<unsigned long long>(id),
                  static_cast<unsigned long long>(n->generation()), views.back().c_str());
    } else {
      std::printf("  node %llu: crashed\n", static_cast<unsigned long long>(id));
    }
  }
  for (const std::string& v : views) {
    if (v != views.front()) {
      std::printf("  the live nodes disagree\n");
      return false;
    }
  }
  return true;
}

}  // namespace

int main() {
  pods::sim::Simulation sim(42);
  pods::sim::Network<Msg> net(sim, {.min_delay = 1ms, .max_delay = 5ms});
  pods::sim::Cluster<Node, Msg> cluster(net, [](const pods::sim::NodeContext<Msg>& ctx) {
    pods::EmergentLeaderOptions o;
    o.seeds = {1, 2};
    o.bootstrap = ctx.id == 1 && ctx.incarnation == 0;  // node 1 founds the cluster, once
    o.seed = pods::Random(ctx.random).next();           // a new nonce per incarnation
    return std::make_unique<Node>(ctx.id, ctx.endpoint, ctx.clock, o);
  });
  for (pods::NodeId id : {1, 3, 2, 5, 4}) {  // join order differs from id order
    cluster.add(id);
    sim.run_for(200ms);
  }
  sim.run_for(1s);
  bool agree = show("all five joined:", cluster);
  cluster.crash(1);
  sim.run_for(1s);
  agree = show("after the coordinator (node 1) crashed:", cluster) && agree;
  cluster.restart(1);
  sim.run_for(1s);
  agree = show("after node 1 restarted (it joins again, as the youngest):", cluster) && agree;
  std::printf("%s\n", agree ? "every live node computed the same assignment each time"
                            : "FAILED: the views differ");
  return agree ? 0 : 1;
}

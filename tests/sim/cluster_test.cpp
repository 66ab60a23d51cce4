#include <pods/sim/cluster.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using pods::NodeId;
using pods::sim::Cluster;
using pods::sim::Network;
using pods::sim::NodeContext;
using pods::sim::Simulation;

namespace {
struct Msg {
  int value = 0;
};

// What the test sees of each node, kept outside the node objects (which crashes destroy).
struct Observed {
  std::vector<std::pair<NodeId, int>> received;
  std::vector<std::int64_t> ticks;  // virtual times of tick()
  std::vector<std::int64_t> receive_times;
  int constructed = 0;
  int destroyed = 0;
  std::vector<std::byte> recovered;  // segment 1 as the factory found it
  std::uint64_t first_draw = 0;
};

struct TestNode {
  TestNode(const NodeContext<Msg>& ctx, Simulation& sim, std::map<NodeId, Observed>& seen)
      : ctx(ctx), sim(sim), seen(seen[ctx.id]) {
    ++this->seen.constructed;
    this->seen.first_draw = Random(ctx.random).next();
    if (ctx.storage.list().empty()) {
      this->ctx.storage.create(1);
    } else {
      this->seen.recovered = this->ctx.storage.contents(1);
    }
  }
  ~TestNode() { ++seen.destroyed; }
  void receive(NodeId from, Msg m) {
    seen.received.emplace_back(from, m.value);
    seen.receive_times.push_back(pods::to_nanoseconds(sim.now()));
    if (on_receive) on_receive(from, m);
  }
  void tick() { seen.ticks.push_back(pods::to_nanoseconds(sim.now())); }

  using Random = pods::Random;
  NodeContext<Msg> ctx;
  Simulation& sim;
  Observed& seen;
  std::function<void(NodeId, Msg)> on_receive;
};

// A node with a timer: it wants a tick at the local time it was given.
struct TimerNode {
  explicit TimerNode(const NodeContext<Msg>& ctx) : ctx(ctx) {}
  void receive(NodeId, Msg m) { deadline = ctx.clock.now() + std::chrono::milliseconds(m.value); }
  void tick() {
    ticks.push_back(ctx.clock.now());
    if (deadline && ctx.clock.now() >= *deadline) deadline.reset();
  }
  std::optional<pods::sim::NodeClock::time_point> next_deadline() const { return deadline; }

  NodeContext<Msg> ctx;
  std::optional<pods::sim::NodeClock::time_point> deadline;
  std::vector<pods::sim::NodeClock::time_point> ticks;
};

struct Fixture {
  explicit Fixture(std::uint64_t seed, pods::sim::ClusterOptions options = {})
      : sim(seed),
        net(sim, {.min_delay = 1ms, .max_delay = 1ms}),
        cluster(
            net,
            [this](const NodeContext<Msg>& ctx) {
              return std::make_unique<TestNode>(ctx, sim, seen);
            },
            options) {
    for (NodeId id = 1; id <= 3; ++id)
      cluster.add(id);
  }
  void send(NodeId from, NodeId to, int v) { net.endpoint(from).send(to, Msg{v}); }
  Simulation sim;
  Network<Msg> net;
  std::map<NodeId, Observed> seen;
  Cluster<TestNode, Msg> cluster;
};

std::string text(const std::vector<std::byte>& bytes) {
  return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}
std::vector<std::byte> bytes(const std::string& s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}
}  // namespace

TEST_CASE("Cluster: the Node concept", "[cluster]") {
  STATIC_REQUIRE(pods::sim::Node<TestNode, Msg>);
  STATIC_REQUIRE(pods::sim::Node<TimerNode, Msg>);
  STATIC_REQUIRE_FALSE(pods::sim::Node<Msg, Msg>);
  STATIC_REQUIRE_FALSE(pods::sim::Node<TestNode, std::string>);
}

TEST_CASE("Cluster: nodes receive through the network and are ticked periodically", "[cluster]") {
  Fixture f(1);
  CHECK(f.cluster.ids() == std::vector<NodeId>{1, 2, 3});
  REQUIRE(f.cluster.node(2) != nullptr);
  CHECK(f.cluster.node(2)->ctx.endpoint.id() == 2);
  f.send(1, 2, 7);
  f.sim.run_for(1s);
  CHECK(f.seen[2].received == std::vector<std::pair<NodeId, int>>{{1, 7}});
  for (NodeId id = 1; id <= 3; ++id) {
    const auto& t = f.seen[id].ticks;
    CHECK(t.size() == 100);  // every 10 ms, at the node's own phase in (0, 10 ms]
    for (std::size_t i = 1; i < t.size(); ++i)
      CHECK(t[i] - t[i - 1] == 10'000'000);
  }
  CHECK(f.seen[1].ticks.front() != f.seen[2].ticks.front());  // phases differ
}

TEST_CASE("Cluster: next_deadline is honoured as the node's own clock reads it", "[cluster]") {
  Simulation sim(2);
  Network<Msg> net(sim);
  Cluster<TimerNode, Msg> cluster(
      net, [](const NodeContext<Msg>& ctx) { return std::make_unique<TimerNode>(ctx); },
      {.tick_interval = 0ms});  // ticks only for deadlines
  cluster.add(1);
  cluster.add(2);
  cluster.clock(2).set_drift(-0.5);  // node 2's clock runs at half speed
  sim.run_for(100ms);
  CHECK(cluster.node(1)->ticks.empty());  // no deadline, no periodic ticks
  net.endpoint(9).send(1, Msg{7});
  net.endpoint(9).send(2, Msg{7});
  sim.run_for(0ms);  // delivered at 100 ms
  sim.run_for(1s);
  REQUIRE(cluster.node(1)->ticks.size() == 1);
  CHECK(cluster.node(1)->ticks[0].time_since_epoch() == 107ms);
  REQUIRE(cluster.node(2)->ticks.size() == 1);
  // 7 ms on a clock at half speed: 14 ms of virtual time
  CHECK(cluster.node(2)->ticks[0] == cluster.node(2)->ctx.clock.now() - (1100ms - 114ms) / 2);
  CHECK(cluster.node(2)->deadline == std::nullopt);
}

TEST_CASE("Cluster: a crashed node is destroyed, receives nothing and is not ticked", "[cluster]") {
  Fixture f(3);
  f.sim.run_for(50ms);
  f.send(1, 2, 1);  // in flight at the crash
  f.cluster.crash(2);
  CHECK(f.seen[2].destroyed == 1);
  CHECK(f.cluster.node(2) == nullptr);
  CHECK_FALSE(f.cluster.is_up(2));
  const auto ticks = f.seen[2].ticks.size();
  f.send(3, 2, 2);
  f.net.endpoint(2).send(1, Msg{3});  // a stale endpoint of the crashed node sends nothing
  f.sim.run_for(1s);
  CHECK(f.seen[2].received.empty());
  CHECK(f.seen[2].ticks.size() == ticks);
  CHECK(f.seen[1].received.empty());
  f.cluster.crash(2);  // crashing a crashed node does nothing
  CHECK(f.seen[2].destroyed == 1);
}

TEST_CASE("Cluster: after a restart the unsynced bytes are gone and the node runs again",
          "[cluster]") {
  Fixture f(4);
  auto* node = f.cluster.node(2);
  node->ctx.storage.append(1, bytes("synced|"));
  node->ctx.storage.sync(1);
  node->ctx.storage.append(1, bytes("unsynced"));
  SECTION("crash, then restart") {
    f.cluster.crash(2);
    CHECK(text(f.cluster.storage(2).contents(1)) == "synced|");  // gone at the crash
    f.sim.run_for(100ms);
    auto& again = f.cluster.restart(2);
    CHECK(&again == f.cluster.node(2));
    CHECK(text(f.seen[2].recovered) == "synced|");
    CHECK(f.cluster.incarnation(2) == 1);
    CHECK(f.seen[2].constructed == 2);
  }
  SECTION("restart of a running node with a torn write keeps a prefix of the unsynced bytes") {
    f.cluster.restart(2, /*tear=*/true);
    const std::string got = text(f.seen[2].recovered);
    CHECK(got.rfind("synced|", 0) == 0);
    CHECK(std::string("synced|unsynced").rfind(got, 0) == 0);  // a prefix of what was written
    CHECK(f.seen[2].destroyed == 1);
  }
  const auto ticks = f.seen[2].ticks.size();
  f.send(1, 2, 5);
  f.sim.run_for(1s);
  CHECK(f.seen[2].received == std::vector<std::pair<NodeId, int>>{{1, 5}});
  CHECK(f.seen[2].ticks.size() > ticks + 90);
}

TEST_CASE("Cluster: each incarnation has its own random stream; adding a node shifts none",
          "[cluster]") {
  Fixture f(5);
  const auto first = f.seen[2].first_draw;
  f.cluster.restart(2);
  CHECK(f.seen[2].first_draw != first);
  Fixture g(5);
  CHECK(g.seen[1].first_draw == f.seen[1].first_draw);
  g.cluster.add(4);
  g.cluster.restart(2);
  CHECK(g.seen[2].first_draw == f.seen[2].first_draw);
}

TEST_CASE("Cluster: a paused node gets nothing until the pause ends, then everything queued",
          "[cluster]") {
  Fixture f(6);
  f.sim.run_for(20ms);
  f.cluster.pause(2, 300ms);
  CHECK(f.cluster.is_paused(2));
  const auto ticks = f.seen[2].ticks.size();
  for (int i = 0; i < 5; ++i)
    f.sim.schedule(std::chrono::milliseconds(10 * i), [&f, i] { f.send(1, 2, i); });
  f.sim.run_for(299ms);
  CHECK(f.seen[2].received.empty());
  CHECK(f.seen[2].ticks.size() == ticks);
  f.sim.run_for(1ms);  // the pause ends at 320 ms
  CHECK_FALSE(f.cluster.is_paused(2));
  REQUIRE(f.seen[2].received.size() == 5);
  for (int i = 0; i < 5; ++i)
    CHECK(f.seen[2].received[static_cast<std::size_t>(i)].second == i);
  for (auto t : f.seen[2].receive_times)
    CHECK(t == 320'000'000);
  CHECK(f.seen[2].ticks.size() == ticks + 1);  // the tick that was due runs at the end
  CHECK(f.seen[2].ticks.back() == 320'000'000);
  f.sim.run_for(100ms);
  CHECK(f.seen[2].ticks.size() > ticks + 5);
  SECTION("a crash during a pause drops what was held") {
    f.cluster.pause(2, 1s);
    f.send(1, 2, 99);
    f.sim.run_for(10ms);
    f.cluster.crash(2);
    f.cluster.restart(2);
    f.sim.run_for(2s);
    CHECK(f.seen[2].received.size() == 5);
  }
}

TEST_CASE("Cluster: a node cannot be crashed from inside itself; misuse throws", "[cluster]") {
  Fixture f(7);
  bool threw = false;
  f.cluster.node(2)->on_receive = [&](NodeId, Msg) {
    try {
      f.cluster.crash(2);
    } catch (const std::logic_error&) {
      threw = true;
    }
  };
  f.send(1, 2, 1);
  f.sim.run_for(10ms);
  CHECK(threw);
  CHECK(f.cluster.is_up(2));
  CHECK_THROWS_AS(f.cluster.crash(9), std::invalid_argument);
  CHECK_THROWS_WITH(f.cluster.crash(9), Catch::Contains("node 9"));
  CHECK_THROWS_WITH(f.cluster.node(9), Catch::Contains("node 9"));
  CHECK_THROWS_WITH(f.cluster.add(1), Catch::Contains("id 1 already exists"));
  CHECK_THROWS_WITH(f.cluster.pause(1, -1ms), Catch::Contains("d must not be negative"));
  f.cluster.crash(3);
  CHECK_THROWS_WITH(f.cluster.pause(3, 1ms), Catch::Contains("node 3 is crashed"));
  CHECK_THROWS_AS((Cluster<TestNode, Msg>(f.net, nullptr)), std::invalid_argument);
  CHECK_THROWS_WITH((Cluster<TestNode, Msg>(
                        f.net, [](const NodeContext<Msg>&) { return std::unique_ptr<TestNode>(); },
                        {.tick_interval = -1ms})),
                    Catch::Contains("tick_interval"));
}

TEST_CASE("Cluster: runs replay: same seed, same digest; different seeds differ", "[cluster]") {
  auto run = [](std::uint64_t seed) {
    Fixture f(seed);
    for (int i = 0; i < 50; ++i) {
      f.sim.schedule(std::chrono::milliseconds(7 * i), [&f, i] {
        f.send(1 + static_cast<NodeId>(i) % 3, 1 + static_cast<NodeId>(i + 1) % 3, i);
      });
    }
    f.sim.schedule(100ms, [&f] { f.cluster.crash(1, true); });
    f.sim.schedule(150ms, [&f] { f.cluster.restart(1); });
    f.sim.schedule(200ms, [&f] { f.cluster.pause(3, 40ms); });
    f.sim.run_for(1s);
    return f.sim.trace_hash();
  };
  CHECK(run(8) == run(8));
  CHECK(run(8) != run(9));
}

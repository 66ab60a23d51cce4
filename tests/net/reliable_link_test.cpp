#include <pods/net/reliable_link.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>

#include <catch2/catch.hpp>

#include "link_checker.hpp"

#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using links_test::LinkChecker;
using links_test::Numbered;
using pods::Errc;
using pods::ManualClock;
using pods::NodeId;
using pods::Outbox;
using pods::net::ReliableAck;
using pods::net::ReliableData;
using pods::net::ReliableLink;
using pods::net::ReliableLinkCodec;
using pods::net::ReliableLinkMessage;
using pods::net::ReliableLinkOptions;

namespace {

using Wire = ReliableLinkMessage<int>;
using Link = ReliableLink<int, Outbox<Wire>, ManualClock>;

static_assert(pods::Transport<Link, int>);
static_assert(pods::Transport<ReliableLink<int, pods::sim::Network<Wire>::Endpoint>, int>);
static_assert(pods::Codec<ReliableLinkCodec<std::string, pods::StringCodec>,
                          ReliableLinkMessage<std::string>>);

ReliableData<int> data_of(const Outbox<Wire>::Sent& s) {
  return std::get<ReliableData<int>>(s.message);
}
ReliableAck ack_of(const Outbox<Wire>::Sent& s) {
  return std::get<ReliableAck>(s.message);
}

// A link under test with its outbox, clock and what it delivered.
struct Harness {
  explicit Harness(ReliableLinkOptions options = {}) : link(out, clock, options) {
    link.on_receive([this](NodeId from, int m) { got.push_back({from, m}); });
  }
  Outbox<Wire> out;
  ManualClock clock;
  Link link;
  std::vector<std::pair<NodeId, int>> got;
};

Wire data(std::uint64_t incarnation, std::uint64_t seq, std::uint64_t base, int payload) {
  return ReliableData<int>{incarnation, seq, base, payload};
}
Wire ack(std::uint64_t incarnation, std::uint64_t data_incarnation, std::uint64_t cumulative,
         std::uint64_t selective = 0) {
  return ReliableAck{incarnation, data_incarnation, cumulative, selective};
}

}  // namespace

TEST_CASE(
    "ReliableLink: send numbers each message per peer and sends it through the inner transport",
    "[net][reliable_link]") {
  Harness h({.incarnation = 7});
  h.link.send(2, 10);
  h.link.send(2, 11);
  h.link.send(3, 12);
  const auto sent = h.out.take();
  REQUIRE(sent.size() == 3);
  CHECK(sent[0].to == 2);
  CHECK(data_of(sent[0]) == ReliableData<int>{7, 1, 1, 10});
  CHECK(data_of(sent[1]) == ReliableData<int>{7, 2, 1, 11});
  CHECK(sent[2].to == 3);
  CHECK(data_of(sent[2]) == ReliableData<int>{7, 1, 1, 12});
  CHECK(h.link.buffered(2) == 2);
  CHECK(h.link.buffered(3) == 1);
  CHECK(h.link.stats().sent == 3);
  CHECK(h.link.stats().transmissions == 3);
}

TEST_CASE("ReliableLink: delivers in order, holds early messages and acknowledges each",
          "[net][reliable_link]") {
  Harness h({.incarnation = 1});
  h.link.receive(5, data(9, 2, 1, 200));  // early: held, selective bit 0 (number 2)
  CHECK(h.got.empty());
  auto sent = h.out.take();
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].to == 5);
  CHECK(ack_of(sent[0]) == ReliableAck{1, 9, 0, 0b1});
  h.link.receive(5, data(9, 4, 1, 400));  // number 4: bit 2
  CHECK(ack_of(h.out.take().at(0)) == ReliableAck{1, 9, 0, 0b101});
  h.link.receive(5, data(9, 1, 1, 100));  // unblocks 1 and 2; 3 is still missing
  CHECK(h.got == std::vector<std::pair<NodeId, int>>{{5, 100}, {5, 200}});
  CHECK(ack_of(h.out.take().at(0)) == ReliableAck{1, 9, 2, 0b1});  // holds 4 = 2 + 2 + 0
  h.link.receive(5, data(9, 3, 1, 300));
  CHECK(h.got.size() == 4);
  CHECK(h.got[2].second == 300);
  CHECK(h.got[3].second == 400);
  CHECK(ack_of(h.out.take().at(0)) == ReliableAck{1, 9, 4, 0});
  CHECK(h.link.stats().delivered == 4);
  CHECK(h.link.stats().acks_sent == 4);
}

TEST_CASE("ReliableLink: a duplicate is acknowledged again and not delivered",
          "[net][reliable_link]") {
  Harness h;
  h.link.receive(5, data(1, 1, 1, 100));
  h.link.receive(5, data(1, 1, 1, 100));  // delivered before
  h.link.receive(5, data(1, 3, 1, 300));
  h.link.receive(5, data(1, 3, 1, 300));  // held before
  CHECK(h.got == std::vector<std::pair<NodeId, int>>{{5, 100}});
  CHECK(h.link.stats().duplicates == 2);
  const auto sent = h.out.take();
  REQUIRE(sent.size() == 4);  // every copy is answered, so a lost ack is repaired
  CHECK(ack_of(sent[1]).cumulative == 1);
  CHECK(ack_of(sent[3]) == ReliableAck{0, 1, 1, 0b1});
}

TEST_CASE("ReliableLink: with unsafe_deliver_duplicates a delivered message is delivered again",
          "[net][reliable_link]") {
  Harness h({.unsafe_deliver_duplicates = true});
  h.link.receive(5, data(1, 1, 1, 100));
  h.link.receive(5, data(1, 1, 1, 100));
  CHECK(h.got.size() == 2);
}

TEST_CASE("ReliableLink: an acknowledgement frees what it covers and opens the window",
          "[net][reliable_link]") {
  Harness h({.incarnation = 3, .window = 2, .capacity = 4});
  for (int i = 1; i <= 4; ++i)
    REQUIRE(h.link.try_send(2, i));
  auto sent = h.out.take();
  REQUIRE(sent.size() == 2);  // only the window is in flight
  CHECK(data_of(sent[1]).seq == 2);
  CHECK(h.link.try_send(2, 5) == Errc::full);
  h.link.send(2, 5);
  CHECK(h.link.stats().rejected == 1);
  CHECK(h.link.stats().sent == 4);
  CHECK(h.link.buffered(2) == 4);

  h.link.receive(2, ack(8, 3, 1));  // frees 1; 3 enters the window with base 2
  sent = h.out.take();
  REQUIRE(sent.size() == 1);
  CHECK(data_of(sent[0]) == ReliableData<int>{3, 3, 2, 3});
  CHECK(h.link.buffered(2) == 3);
  h.link.receive(2, ack(8, 3, 3));  // frees 2 and 3; 4 enters
  sent = h.out.take();
  REQUIRE(sent.size() == 1);
  CHECK(data_of(sent[0]) == ReliableData<int>{3, 4, 4, 4});
  CHECK(h.link.try_send(2, 5));
  CHECK(h.link.stats().acks_received == 2);
}

TEST_CASE("ReliableLink: tick retransmits on the timer with capped exponential backoff",
          "[net][reliable_link]") {
  Harness h({.retransmit_after = 100ms, .max_retransmit_after = 300ms});
  const auto t0 = h.clock.now();
  CHECK_FALSE(h.link.next_deadline().has_value());
  h.link.send(2, 1);
  h.out.clear();
  CHECK(h.link.next_deadline() == t0 + 100ms);
  h.clock.advance(99ms);
  h.link.tick();
  CHECK(h.out.empty());
  const std::vector<std::chrono::milliseconds> gaps{1ms, 200ms, 300ms, 300ms};
  auto expected = t0 + 99ms;
  for (auto gap : gaps) {
    h.clock.advance(gap);
    expected += gap;
    h.link.tick();
    const auto sent = h.out.take();
    REQUIRE(sent.size() == 1);
    CHECK(data_of(sent[0]) == ReliableData<int>{0, 1, 1, 1});
    const auto next = gap == 1ms ? 200ms : 300ms;  // 100 ms doubled once, then capped
    CHECK(h.link.next_deadline() == expected + next);
  }
  CHECK(h.link.stats().retransmissions == 4);
  h.link.receive(2, ack(0, 0, 1));
  CHECK_FALSE(h.link.next_deadline().has_value());
  h.clock.advance(10s);
  h.link.tick();
  CHECK(h.out.empty());
}

TEST_CASE("ReliableLink: a selectively held message is not retransmitted, the oldest always is",
          "[net][reliable_link]") {
  Harness h({.retransmit_after = 100ms});
  for (int i = 1; i <= 3; ++i)
    h.link.send(2, i);
  h.out.clear();
  h.link.receive(2, ack(0, 0, 0, 0b11));  // holds 2 and 3 (bits 0, 1)
  h.clock.advance(100ms);
  h.link.tick();
  auto sent = h.out.take();
  REQUIRE(sent.size() == 1);
  CHECK(data_of(sent[0]).seq == 1);
  h.link.receive(2, ack(0, 0, 1, 0b1));  // 1 delivered; 3 held; 2 is now the oldest
  h.clock.advance(1s);
  h.link.tick();
  sent = h.out.take();
  REQUIRE(sent.size() == 1);
  CHECK(data_of(sent[0]).seq == 2);
}

TEST_CASE("ReliableLink: a restarted sender's numbering starts again, its old messages are stale",
          "[net][reliable_link]") {
  Harness h({.incarnation = 1});
  h.link.receive(5, data(10, 1, 1, 100));
  h.link.receive(5, data(10, 2, 1, 200));
  h.link.receive(5, data(11, 1, 1, 111));  // incarnation 11: a new process, a new stream
  h.link.receive(5, data(10, 3, 1, 300));  // late from the old process
  h.link.receive(5, data(11, 2, 1, 222));
  CHECK(h.got == std::vector<std::pair<NodeId, int>>{{5, 100}, {5, 200}, {5, 111}, {5, 222}});
  CHECK(h.link.stats().peer_restarts == 1);
  CHECK(h.link.stats().stale == 1);
  h.out.clear();
  h.link.receive(5, ack(10, 1, 0));  // an ack from the old incarnation of node 5
  CHECK(h.link.stats().stale == 2);
  h.link.receive(5, ack(11, 0, 0));  // an ack for an earlier incarnation (0) of this node
  CHECK(h.link.stats().stale == 3);
}

TEST_CASE("ReliableLink: a restarted receiver joins the stream at the sender's base",
          "[net][reliable_link]") {
  SECTION("the receiver side: data names where the stream resumes") {
    Harness h;
    h.link.receive(5, data(1, 42, 40, 420));  // first contact: 40 and 41 are still coming
    CHECK(h.got.empty());
    h.link.receive(5, data(1, 40, 40, 400));
    h.link.receive(5, data(1, 41, 40, 410));
    CHECK(h.got == std::vector<std::pair<NodeId, int>>{{5, 400}, {5, 410}, {5, 420}});
    h.link.receive(5, data(1, 45, 44, 450));  // 43 was acknowledged by someone: passed over
    CHECK(h.link.stats().skipped == 1);
    h.link.receive(5, data(1, 44, 44, 440));
    CHECK(h.got.back().second == 450);
  }
  SECTION("the sender side: an ack from a new incarnation resends what is held, at once") {
    Harness h({.retransmit_after = 100ms});
    for (int i = 1; i <= 3; ++i)
      h.link.send(2, i);
    h.link.receive(2, ack(1, 0, 1, 0b1));  // incarnation 1 delivered 1, holds 3
    h.out.clear();
    h.link.receive(2, ack(2, 0, 0));  // incarnation 2 (restarted) holds nothing
    CHECK(h.link.stats().peer_restarts == 1);
    CHECK(h.link.next_deadline() == h.clock.now());
    h.link.tick();
    const auto sent = h.out.take();
    REQUIRE(sent.size() == 2);
    CHECK(data_of(sent[0]) == ReliableData<int>{0, 2, 2, 2});
    CHECK(data_of(sent[1]) == ReliableData<int>{0, 3, 2, 3});
  }
}

TEST_CASE("ReliableLink: messages no correct peer sends are dropped and counted",
          "[net][reliable_link]") {
  Harness h;
  h.link.receive(5, data(1, 0, 0, 1));       // number 0
  h.link.receive(5, data(1, 3, 4, 1));       // base beyond the number
  h.link.receive(5, ack(1, 0, 1));           // acknowledges a number never sent
  h.link.receive(5, data(1, 1 + 64, 1, 1));  // beyond the 64-message receive window
  CHECK(h.link.stats().malformed == 3);
  CHECK(h.link.stats().out_of_window == 1);
  CHECK(h.got.empty());
}

TEST_CASE("ReliableLink: the handler may send on the link", "[net][reliable_link]") {
  Outbox<Wire> out;
  ManualClock clock;
  Link link(out, clock);
  link.on_receive([&](NodeId from, int m) { link.send(from + 100, m + 1); });
  link.receive(5, data(1, 1, 1, 41));
  const auto sent = out.take();
  REQUIRE(sent.size() == 2);
  CHECK(ack_of(sent[0]).cumulative == 1);
  CHECK(sent[1].to == 105);
  CHECK(data_of(sent[1]).payload == 42);
}

TEST_CASE("ReliableLink: options out of range are rejected with the rule", "[net][reliable_link]") {
  Outbox<Wire> out;
  ManualClock clock;
  auto make = [&](ReliableLinkOptions o) { Link link(out, clock, o); };
  CHECK_THROWS_WITH(make({.window = 0}), "ReliableLink: window must be in [1, 65536], got 0");
  CHECK_THROWS_WITH(make({.window = 65537, .capacity = 70000}),
                    "ReliableLink: window must be in [1, 65536], got 65537");
  CHECK_THROWS_WITH(make({.window = 8, .capacity = 4}),
                    "ReliableLink: capacity (4) must be at least window (8)");
  CHECK_THROWS_WITH(make({.retransmit_after = 0ms}),
                    "ReliableLink: retransmit_after must be positive, got 0 ns");
  CHECK_THROWS_WITH(make({.retransmit_after = 2ms, .max_retransmit_after = 1ms}),
                    "ReliableLink: max_retransmit_after (1000000 ns) must not be less than "
                    "retransmit_after (2000000 ns)");
  CHECK_THROWS_AS(make({.window = 0}), std::invalid_argument);
}

// ---- The wire codec ------------------------------------------------------------------------

TEST_CASE("ReliableLinkCodec: round trip, layout and overhead", "[net][reliable_link][codec]") {
  const ReliableLinkCodec<std::string, pods::StringCodec> codec;
  using W = ReliableLinkMessage<std::string>;
  const std::vector<W> messages{
      ReliableData<std::string>{1, 2, 1, "hello"},
      ReliableData<std::string>{~0ull, ~0ull, ~0ull, ""},
      ReliableAck{3, 4, 5, 0x8000000000000001ull},
  };
  for (const W& m : messages) {
    pods::Buffer bytes;
    codec.encode(m, bytes);
    CHECK(codec.decode(bytes) == m);
  }
  pods::Buffer bytes;
  codec.encode(messages[0], bytes);
  CHECK(bytes.size() == 5 + ReliableLinkCodec<std::string, pods::StringCodec>::data_overhead);
  CHECK(bytes.size() == 1 + 1 + 8 + 8 + 8 + 4 + 5);
  CHECK(bytes[0] == std::byte{1});   // version
  CHECK(bytes[1] == std::byte{0});   // kind: data
  CHECK(bytes[10] == std::byte{2});  // seq, little-endian
  bytes.clear();
  codec.encode(messages[2], bytes);
  CHECK(bytes.size() == ReliableLinkCodec<std::string, pods::StringCodec>::ack_size);
  std::cout << "reliable link wire overhead: data " << (bytes.size() - 4) << " bytes + payload"
            << ", ack " << bytes.size() << " bytes\n";
}

TEST_CASE("ReliableLinkCodec: corrupt bytes throw CorruptionError naming the offset",
          "[net][reliable_link][codec]") {
  const ReliableLinkCodec<int, pods::TrivialCodec<int>> codec;
  pods::Buffer good;
  codec.encode(ReliableData<int>{1, 2, 1, 7}, good);
  SECTION("every truncation") {
    for (std::size_t n = 0; n < good.size(); ++n) {
      CHECK_THROWS_AS(codec.decode(std::span(good).first(n)), pods::CorruptionError);
    }
  }
  SECTION("bad version, kind, trailing bytes, payload") {
    pods::Buffer b = good;
    b[0] = std::byte{2};
    CHECK_THROWS_WITH(codec.decode(b),
                      "corrupt data in reliable link message at offset 0: unknown version 2");
    b = good;
    b[1] = std::byte{9};
    CHECK_THROWS_WITH(codec.decode(b),
                      "corrupt data in reliable link message at offset 1: unknown kind 9");
    b = good;
    b.push_back(std::byte{0});
    CHECK_THROWS_WITH(codec.decode(b), Catch::Contains("trailing"));
    b = good;
    b[26] = std::byte{3};  // the payload claims 3 bytes, TrivialCodec<int> wants 4
    b.resize(30 + 3);
    CHECK_THROWS_WITH(codec.decode(b), Catch::StartsWith("corrupt data in reliable link message "
                                                         "at offset 33: payload: "));
  }
}

// ---- Simulation: a fair-loss network with faults -------------------------------------------

namespace {

using SimWire = ReliableLinkMessage<Numbered>;
using Endpoint = pods::sim::Network<SimWire>::Endpoint;

struct WorldOptions {
  std::uint64_t quota = 60;  // messages each incarnation sends to each peer
  bool nemesis = false;
  bool break_duplicates = false;
  bool break_retransmission = false;
};

// The node's endpoint, which can break the stubborn half of the link for a test: with `drop`
// it lets only the first transmission of each data message through.
struct Wrapped {
  void send(NodeId to, SimWire m) {
    if (const auto* d = std::get_if<ReliableData<Numbered>>(&m); d != nullptr && drop) {
      if (!seen->insert({to, d->incarnation, d->seq}).second) return;
    }
    inner.send(to, std::move(m));
  }
  Endpoint inner;
  bool drop = false;
  std::shared_ptr<std::set<std::tuple<NodeId, std::uint64_t, std::uint64_t>>> seen =
      std::make_shared<std::set<std::tuple<NodeId, std::uint64_t, std::uint64_t>>>();
};

// A node: its link, and a sender of numbered messages to every peer, a few per tick.
struct LinkNode {
  LinkNode(const pods::sim::NodeContext<SimWire>& ctx, std::vector<NodeId> peers,
           LinkChecker& checker, const WorldOptions& wo)
      : ctx(ctx),
        peers(std::move(peers)),
        checker(checker),
        quota(wo.quota),
        link(Wrapped{ctx.endpoint, wo.break_retransmission}, ctx.clock,
             {.incarnation = ctx.incarnation,
              .window = 16,
              .capacity = 32,
              .retransmit_after = 40ms,
              .max_retransmit_after = 320ms,
              .unsafe_deliver_duplicates = wo.break_duplicates}) {
    checker.started(ctx.id, ctx.incarnation, now());
    link.on_receive([this](NodeId from, Numbered m) {
      this->checker.delivered(this->ctx.id, this->ctx.incarnation, from, m);
    });
  }
  std::int64_t now() const { return pods::to_nanoseconds(ctx.clock.base().now()); }
  void receive(NodeId from, SimWire m) { link.receive(from, std::move(m)); }
  void tick() {
    link.tick();
    links_test::send_numbered(link, checker, ctx.id, ctx.incarnation, peers, count, quota, now());
  }
  auto next_deadline() const { return link.next_deadline(); }

  pods::sim::NodeContext<SimWire> ctx;
  std::vector<NodeId> peers;
  LinkChecker& checker;
  std::uint64_t quota;
  std::map<NodeId, std::uint64_t> count;
  ReliableLink<Numbered, Wrapped, pods::sim::NodeClock> link;
};

}  // namespace

namespace {

struct World {
  World(std::uint64_t seed, WorldOptions wo)
      : options(wo),
        sim(seed),
        net(sim, {.loss = 0.3, .duplicate = 0.1, .min_delay = 1ms, .max_delay = 20ms}),
        cluster(net, [this](const pods::sim::NodeContext<SimWire>& ctx) {
          return std::make_unique<LinkNode>(ctx, ids, checker, options);
        }) {
    for (NodeId id = 1; id <= 3; ++id)
      ids.push_back(id);
    for (NodeId id : ids)
      cluster.add(id);
    if (wo.nemesis) {
      nemesis = std::make_unique<pods::sim::Nemesis<pods::sim::Cluster<LinkNode, SimWire>>>(
          cluster, pods::sim::NemesisOptions{.duration = 6s,
                                             .quiet = 2s,
                                             .max_fault = 1s,
                                             .max_down = 1,
                                             .spike_loss = 0.6,
                                             .spike_duplicate = 0.3});
    }
  }

  // Returns true when every live link has nothing unacknowledged and sent its quota.
  bool settled() {
    for (NodeId id : ids) {
      LinkNode* n = cluster.node(id);
      if (n == nullptr) return false;
      for (NodeId p : ids) {
        if (p == id) continue;
        if (n->count[p] < n->quota || n->link.buffered(p) != 0) return false;
      }
    }
    return true;
  }

  // Returns how many messages sent by the live incarnations after their receivers started
  // have not arrived.
  std::uint64_t missing() {
    std::uint64_t total = 0;
    for (NodeId from : ids)
      for (NodeId to : ids)
        if (from != to)
          total += checker.missing(from, cluster.incarnation(from), to, cluster.incarnation(to));
    return total;
  }

  WorldOptions options;
  std::vector<NodeId> ids;
  LinkChecker checker;
  pods::sim::Simulation sim;
  pods::sim::Network<SimWire> net;
  pods::sim::Cluster<LinkNode, SimWire> cluster;
  std::unique_ptr<pods::sim::Nemesis<pods::sim::Cluster<LinkNode, SimWire>>> nemesis;
};

std::string report(World& w, std::uint64_t seed) {
  std::string s = "seed " + std::to_string(seed) + "\n";
  for (const auto& v : w.checker.violations())
    s += "  " + v + "\n";
  if (w.nemesis) s += w.nemesis->describe();
  return s;
}

}  // namespace

TEST_CASE(
    "ReliableLink on sim::Network with 30 % loss, 10 % duplication and reordering: "
    "every message exactly once and in order (PODS_SEEDS seeds, default 50)",
    "[net][reliable_link][sim]") {
  const std::uint64_t seeds = links_test::seeds(50);
  std::uint64_t deliveries = 0, retransmissions = 0, duplicates = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    World w(seed, {});
    const bool settled = w.sim.run_until([&] { return w.settled(); }, 120s);
    INFO(report(w, seed));
    REQUIRE(w.checker.violations().empty());
    REQUIRE(settled);
    REQUIRE(w.missing() == 0);
    // Nobody restarted: every message of the quota arrived, once.
    REQUIRE(w.checker.deliveries() == 3 * 2 * w.options.quota);
    CHECK(w.net.stats().dropped > 0);
    CHECK(w.net.stats().duplicated > 0);
    deliveries += w.checker.deliveries();
    for (NodeId id : w.ids) {
      retransmissions += w.cluster.node(id)->link.stats().retransmissions;
      duplicates += w.cluster.node(id)->link.stats().duplicates;
    }
  }
  std::cout << "reliable link, " << seeds << " seeds, 30 % loss, 10 % duplication: " << deliveries
            << " deliveries, " << retransmissions << " retransmissions, " << duplicates
            << " duplicates suppressed\n";
}

TEST_CASE(
    "ReliableLink under a nemesis (crashes and restarts, partitions, pauses, loss spikes): "
    "at most once and in order always, everything sent to a live receiver arrives after "
    "the heal (PODS_SEEDS seeds, default 30)",
    "[net][reliable_link][sim]") {
  const std::uint64_t seeds = links_test::seeds(30);
  std::uint64_t restarts = 0;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    World w(seed, {.quota = 200, .nemesis = true});
    w.sim.run_for(6s);
    REQUIRE(w.nemesis->healed());
    const bool settled = w.sim.run_until([&] { return w.settled(); }, 60s);
    INFO(report(w, seed));
    REQUIRE(w.checker.violations().empty());
    REQUIRE(settled);
    REQUIRE(w.missing() == 0);
    for (NodeId id : w.ids)
      restarts += w.cluster.incarnation(id);
  }
  CHECK(restarts > 0);  // the nemesis did restart nodes
  std::cout << "reliable link under a nemesis, " << seeds << " seeds: " << restarts
            << " restarts\n";
}

TEST_CASE("ReliableLink: the checker catches a link that delivers duplicates",
          "[net][reliable_link][sim]") {
  std::uint64_t caught = 0;
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    World w(seed, {.break_duplicates = true});
    w.sim.run_until([&] { return w.settled(); }, 120s);
    if (!w.checker.violations().empty()) {
      ++caught;
      CHECK_THAT(w.checker.violations().front(), Catch::StartsWith("duplicate or reordered"));
    }
  }
  CHECK(caught == 5);
}

TEST_CASE("ReliableLink: the checks catch a link that does not retransmit",
          "[net][reliable_link][sim]") {
  for (std::uint64_t seed = 1; seed <= 5; ++seed) {
    World w(seed, {.break_retransmission = true});
    const bool settled = w.sim.run_until([&] { return w.settled(); }, 60s);
    INFO(report(w, seed));
    CHECK_FALSE(settled);
    CHECK(w.missing() > 0);  // lost on the first try, never sent again: never delivered
  }
}

// Tests of pods/cluster/gossip_dissemination.hpp: the SWIM rules message by message (Outbox and
// ManualClock), the push-pull exchange and its bounds, the codec, and simulator runs across
// seeds with faults. PODS_SEEDS=<n> runs n seeds of each simulator test instead of the few CI
// runs (PODS_SEEDS=1000 for a soak).
#include <pods/cluster/gossip_dissemination.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using pods::MemberStatus;
using pods::NodeId;
namespace gossip = pods::gossip;

namespace {

using Outbox = pods::Outbox<gossip::Message>;
using Node = pods::GossipDissemination<Outbox, pods::ManualClock>;

std::vector<std::byte> bytes(std::string_view s) {
  std::vector<std::byte> b;
  for (char c : s)
    b.push_back(static_cast<std::byte>(c));
  return b;
}

std::uint64_t seeds_to_run(std::uint64_t ci) {
  if (const char* env = std::getenv("PODS_SEEDS")) return std::strtoull(env, nullptr, 10);
  return ci;
}

// A node with its own outbox, all on one manual clock.
struct Harness {
  pods::ManualClock clock;
  std::map<NodeId, Outbox> outboxes;
  std::map<NodeId, std::unique_ptr<Node>> nodes;

  Node& add(NodeId id, pods::GossipOptions options) {
    outboxes[id] = Outbox{};
    nodes[id] = std::make_unique<Node>(id, outboxes[id], clock, std::move(options));
    return *nodes[id];
  }
  Node& operator[](NodeId id) { return *nodes.at(id); }
  std::vector<Outbox::Sent> take(NodeId id) { return outboxes.at(id).take(); }
  // Delivers everything `from` sent to nodes of the harness; returns how many were delivered.
  std::size_t flush(NodeId from) {
    std::size_t n = 0;
    for (auto& sent : take(from)) {
      if (auto it = nodes.find(sent.to); it != nodes.end()) {
        it->second->receive(from, std::move(sent.message));
        ++n;
      }
    }
    return n;
  }
  // Delivers until no node has anything to send.
  void settle() {
    for (bool any = true; any;) {
      any = false;
      for (auto& [id, node] : nodes)
        any = flush(id) > 0 || any;
    }
  }
};

template <class M>
std::vector<M> of_kind(const std::vector<Outbox::Sent>& sent, std::optional<NodeId> to = {}) {
  std::vector<M> out;
  for (const auto& s : sent) {
    if (const M* m = std::get_if<M>(&s.message); m && (!to || s.to == *to)) out.push_back(*m);
  }
  return out;
}

pods::GossipOptions quiet_options(std::vector<NodeId> seeds) {
  // Probing only: gossip rounds far apart, so a test sees the SWIM messages alone.
  pods::GossipOptions o;
  o.seeds = std::move(seeds);
  o.gossip_interval = 1h;
  o.probe_interval = 1s;
  o.probe_timeout = 300ms;
  o.indirect_checks = 2;
  o.suspicion_timeout = 4s;
  o.reap_after = 20s;
  o.seed = 11;
  return o;
}

std::optional<MemberStatus> status(const Node& n, NodeId of) {
  auto m = n.member(of);
  if (!m) return std::nullopt;
  return m->status;
}

}  // namespace

TEST_CASE("GossipDissemination models the cluster's Node and uses its Transport", "[gossip]") {
  STATIC_REQUIRE(pods::Transport<Outbox, gossip::Message>);
  STATIC_REQUIRE(pods::sim::Node<Node, gossip::Message>);
  STATIC_REQUIRE(pods::Codec<gossip::MessageCodec, gossip::Message>);
}

TEST_CASE("A new node knows itself and its seeds, alive at incarnation 0", "[gossip]") {
  Harness h;
  Node& a = h.add(1, quiet_options({3, 2, 3}));
  REQUIRE(a.size() == 3);
  REQUIRE(a.live_count() == 3);
  for (NodeId id : {1, 2, 3}) {
    REQUIRE(a.member(id) == pods::GossipMember{id, MemberStatus::alive, 0, 0, 0});
  }
  REQUIRE_FALSE(a.member(4));
  REQUIRE(a.incarnation() == 0);
}

TEST_CASE("Bad options and puts throw std::invalid_argument naming the rule", "[gossip]") {
  Outbox out;
  pods::ManualClock clock;
  auto make = [&](auto change) {
    pods::GossipOptions o;
    change(o);
    Node n(1, out, clock, o);
  };
  using O = pods::GossipOptions;
  REQUIRE_THROWS_WITH(make([](O& o) { o.fanout = 0; }),
                      "GossipDissemination: fanout must be positive");
  REQUIRE_THROWS_WITH(make([](O& o) { o.max_records = 1; }),
                      "GossipDissemination: max_records must be at least 2");
  REQUIRE_THROWS_WITH(make([](O& o) { o.max_piggyback = 0; }),
                      "GossipDissemination: max_piggyback must be positive");
  REQUIRE_THROWS_WITH(make([](O& o) { o.max_delta_bytes = 63; }),
                      "GossipDissemination: max_delta_bytes must be at least 64");
  REQUIRE_THROWS_WITH(make([](O& o) { o.gossip_interval = 0s; }),
                      "GossipDissemination: gossip_interval must be positive");
  REQUIRE_THROWS_WITH(make([](O& o) { o.probe_interval = -1s; }),
                      "GossipDissemination: probe_interval must be positive");
  REQUIRE_THROWS_WITH(make([](O& o) { o.probe_timeout = 0s; }),
                      "GossipDissemination: probe_timeout must be positive");
  REQUIRE_THROWS_WITH(make([](O& o) { o.probe_timeout = o.probe_interval; }),
                      "GossipDissemination: probe_timeout must be shorter than probe_interval");
  REQUIRE_THROWS_WITH(make([](O& o) { o.suspicion_timeout = 0s; }),
                      "GossipDissemination: suspicion_timeout must be positive");
  REQUIRE_THROWS_WITH(make([](O& o) { o.reap_after = 0s; }),
                      "GossipDissemination: reap_after must be positive");
  REQUIRE_THROWS_WITH(make([](O& o) {
                        o.seeds = {2, 1};
                      }),
                      "GossipDissemination: seeds must not name the node itself");

  pods::GossipOptions small;
  small.max_delta_bytes = 64;
  Node n(1, out, clock, small);
  REQUIRE_THROWS_WITH(n.put("", {}), "GossipDissemination::put: key must not be empty");
  REQUIRE_THROWS_WITH(n.put("k", std::vector<std::byte>(48)),
                      "GossipDissemination::put: key and value must fit max_delta_bytes - 16 "
                      "(48 bytes), got 49");
  REQUIRE_NOTHROW(n.put("k", std::vector<std::byte>(47)));
}

TEST_CASE("SWIM: a probe is a Ping answered by an Ack with its seq", "[gossip][swim]") {
  Harness h;
  Node& a = h.add(1, quiet_options({2}));
  Node& b = h.add(2, quiet_options({1}));
  a.tick();
  auto sent = h.take(1);
  auto pings = of_kind<gossip::Ping>(sent, 2);
  REQUIRE(pings.size() == 1);
  REQUIRE(a.stats().probes == 1);
  // The ping piggybacks a's announcement of itself.
  REQUIRE(std::any_of(pings[0].updates.begin(), pings[0].updates.end(),
                      [](const auto& r) { return r.node == 1; }));
  b.receive(1, pings[0]);
  auto acks = of_kind<gossip::Ack>(h.take(2), 1);
  REQUIRE(acks.size() == 1);
  REQUIRE(acks[0].seq == pings[0].seq);
  a.receive(2, acks[0]);
  // Acked: no PingReq at the timeout, no suspicion at the interval's end.
  h.clock.advance(300ms);
  a.tick();
  REQUIRE(of_kind<gossip::PingReq>(h.take(1)).empty());
  h.clock.advance(700ms);
  a.tick();
  REQUIRE(status(a, 2) == MemberStatus::alive);
  REQUIRE(a.stats().suspected == 0);
}

TEST_CASE("SWIM: without an Ack by probe_timeout, indirect_checks members are asked (PingReq)",
          "[gossip][swim]") {
  Harness h;
  Node& a = h.add(1, quiet_options({2, 3, 4}));
  a.tick();
  const auto pings = of_kind<gossip::Ping>(h.take(1));
  REQUIRE(pings.size() == 1);
  h.clock.advance(299ms);
  a.tick();
  REQUIRE(of_kind<gossip::PingReq>(h.take(1)).empty());
  h.clock.advance(1ms);
  a.tick();
  const auto sent = h.take(1);
  const auto reqs = of_kind<gossip::PingReq>(sent);
  REQUIRE(reqs.size() == 2);  // indirect_checks
  for (const auto& s : sent) {
    if (const auto* r = std::get_if<gossip::PingReq>(&s.message)) {
      REQUIRE(r->seq == pings[0].seq);
      REQUIRE(s.to != r->target);  // never asks the silent member itself
      REQUIRE(s.to != 1);
    }
  }
  REQUIRE(a.stats().indirect_probes == 1);
}

TEST_CASE("SWIM: a relay pings the target and forwards its Ack with the requester's seq",
          "[gossip][swim]") {
  Harness h;
  Node& relay = h.add(2, quiet_options({1, 3}));
  relay.receive(1, gossip::PingReq{77, 3, {}});
  auto pings = of_kind<gossip::Ping>(h.take(2), 3);
  REQUIRE(pings.size() == 1);
  relay.receive(3, gossip::Ack{pings[0].seq, {}});
  auto forwarded = of_kind<gossip::Ack>(h.take(2), 1);
  REQUIRE(forwarded.size() == 1);
  REQUIRE(forwarded[0].seq == 77);
  // A second Ack for the same relay is stale: the relay is done.
  relay.receive(3, gossip::Ack{pings[0].seq, {}});
  REQUIRE(h.take(2).empty());
  REQUIRE(relay.stats().stale == 1);
}

TEST_CASE("SWIM: an indirect Ack counts as the target's answer", "[gossip][swim]") {
  Harness h;
  Node& a = h.add(1, quiet_options({2, 3}));
  a.tick();
  const auto ping = of_kind<gossip::Ping>(h.take(1)).at(0);
  h.clock.advance(300ms);
  a.tick();
  h.take(1);
  a.receive(3, gossip::Ack{ping.seq, {}});  // forwarded by a relay
  h.clock.advance(700ms);
  a.tick();
  REQUIRE(a.stats().suspected == 0);
  REQUIRE(a.live_count() == 3);
  for (NodeId id : {2, 3})
    REQUIRE(status(a, id) == MemberStatus::alive);
}

TEST_CASE(
    "SWIM: suspect at the interval's end, dead after suspicion_timeout, reaped after "
    "reap_after",
    "[gossip][swim]") {
  Harness h;
  Node& a = h.add(1, quiet_options({2}));
  a.tick();  // pings 2, which never answers
  h.clock.advance(999ms);
  a.tick();
  REQUIRE(status(a, 2) == MemberStatus::alive);
  h.clock.advance(1ms);
  a.tick();
  REQUIRE(status(a, 2) == MemberStatus::suspect);
  REQUIRE(a.stats().suspected == 1);
  // The suspicion travels on the next probe's piggyback.
  h.take(1);
  REQUIRE(a.next_deadline() <= h.clock.now() + 4s);
  h.clock.advance(4s - 1ms);
  a.tick();
  REQUIRE(status(a, 2) == MemberStatus::suspect);
  h.clock.advance(1ms);
  a.tick();
  REQUIRE(status(a, 2) == MemberStatus::dead);
  REQUIRE(a.stats().declared_dead == 1);
  REQUIRE(a.live_count() == 1);
  REQUIRE(a.size() == 2);
  h.take(1);
  h.clock.advance(1s);
  a.tick();
  REQUIRE(of_kind<gossip::Ping>(h.take(1)).empty());  // the dead are not probed
  h.clock.advance(20s);
  a.tick();
  REQUIRE_FALSE(a.member(2));
  REQUIRE(a.stats().reaped == 1);
  REQUIRE(a.size() == 1);
}

TEST_CASE("SWIM: a suspected node refutes with a higher incarnation, which clears the suspicion",
          "[gossip][swim]") {
  Harness h;
  Node& a = h.add(1, quiet_options({2}));
  Node& b = h.add(2, quiet_options({1}));
  a.tick();
  h.take(1);  // the ping is lost
  h.clock.advance(1s);
  a.tick();
  REQUIRE(status(a, 2) == MemberStatus::suspect);
  // a's next ping carries suspect(2, 0); b answers with alive(2, 1).
  auto pings = of_kind<gossip::Ping>(h.take(1), 2);
  REQUIRE(pings.size() == 1);
  REQUIRE(std::any_of(pings[0].updates.begin(), pings[0].updates.end(), [](const auto& r) {
    return r.node == 2 && r.status == MemberStatus::suspect && r.incarnation == 0;
  }));
  b.receive(1, pings[0]);
  REQUIRE(b.incarnation() == 1);
  REQUIRE(b.stats().refuted == 1);
  auto acks = of_kind<gossip::Ack>(h.take(2), 1);
  REQUIRE(acks.size() == 1);
  REQUIRE(std::any_of(acks[0].updates.begin(), acks[0].updates.end(), [](const auto& r) {
    return r.node == 2 && r.status == MemberStatus::alive && r.incarnation == 1;
  }));
  a.receive(2, acks[0]);
  REQUIRE(a.member(2)->status == MemberStatus::alive);
  REQUIRE(a.member(2)->incarnation == 1);
  h.clock.advance(10s);  // past the old suspicion's timeout
  for (int i = 0; i < 10; ++i) {
    a.tick();
    h.flush(1);
    h.flush(2);
  }
  REQUIRE(status(a, 2) == MemberStatus::alive);
  REQUIRE(a.stats().declared_dead == 0);
}

TEST_CASE(
    "SWIM: with refutation disabled, the suspected node is declared dead (the rule is "
    "load-bearing)",
    "[gossip][swim]") {
  Harness h;
  Node& a = h.add(1, quiet_options({2}));
  auto broken = quiet_options({1});
  broken.refute = false;
  Node& b = h.add(2, broken);
  a.tick();
  h.take(1);
  h.clock.advance(1s);
  a.tick();
  b.receive(1, of_kind<gossip::Ping>(h.take(1), 2).at(0));
  REQUIRE(b.incarnation() == 0);
  a.receive(2, of_kind<gossip::Ack>(h.take(2), 1).at(0));
  h.clock.advance(4s);
  a.tick();
  REQUIRE(status(a, 2) == MemberStatus::dead);
}

TEST_CASE("SWIM: a node told it is dead, or at an incarnation it never had, refutes",
          "[gossip][swim]") {
  Harness h;
  Node& b = h.add(2, quiet_options({1}));
  b.receive(1, gossip::Ping{1, {{2, 0, MemberStatus::dead, 0, 0}}});
  REQUIRE(b.incarnation() == 1);
  b.receive(1, gossip::Ping{2, {{2, 5, MemberStatus::alive, 0, 0}}});  // a previous life
  REQUIRE(b.incarnation() == 6);
  b.receive(1, gossip::Ping{3, {{2, 3, MemberStatus::suspect, 0, 0}}});  // older: ignored
  REQUIRE(b.incarnation() == 6);
  REQUIRE(b.member(2)->status == MemberStatus::alive);
  REQUIRE(b.stats().refuted == 2);
}

TEST_CASE("Records are ordered by incarnation, then alive < suspect < dead", "[gossip][swim]") {
  struct Case {
    std::uint32_t have_inc;
    MemberStatus have;
    std::uint32_t rumour_inc;
    MemberStatus rumour;
    bool adopted;
  };
  const MemberStatus A = MemberStatus::alive, S = MemberStatus::suspect, D = MemberStatus::dead;
  const Case cases[] = {
      {0, A, 0, S, true},  {0, A, 0, D, true},  {0, S, 0, D, true},  {0, S, 0, A, false},
      {0, D, 0, S, false}, {0, D, 0, A, false}, {0, S, 1, A, true},  {0, D, 1, A, true},
      {2, A, 1, D, false}, {2, S, 1, S, false}, {1, A, 1, A, false}, {1, D, 2, S, true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.have_inc, pods::to_string(c.have), c.rumour_inc, pods::to_string(c.rumour));
    Harness h;
    Node& a = h.add(1, quiet_options({}));
    a.receive(3, gossip::Ping{1, {{2, c.have_inc, MemberStatus::alive, 0, 0}}});
    a.receive(3, gossip::Ping{1, {{2, c.have_inc, c.have, 0, 0}}});
    REQUIRE(a.member(2) == pods::GossipMember{2, c.have, c.have_inc, 0, 0});
    a.receive(3, gossip::Ping{2, {{2, c.rumour_inc, c.rumour, 0, 0}}});
    const auto expect = c.adopted ? pods::GossipMember{2, c.rumour, c.rumour_inc, 0, 0}
                                  : pods::GossipMember{2, c.have, c.have_inc, 0, 0};
    REQUIRE(a.member(2) == expect);
  }
}

TEST_CASE("A dead member never heard of is not added; an alive or suspect one is",
          "[gossip][swim]") {
  Harness h;
  Node& a = h.add(1, quiet_options({}));
  a.receive(9, gossip::Ping{1, {{5, 0, MemberStatus::dead, 0, 0}}});
  REQUIRE_FALSE(a.member(5));
  a.receive(
      9, gossip::Ping{2, {{6, 0, MemberStatus::suspect, 0, 0}, {7, 2, MemberStatus::alive, 4, 0}}});
  REQUIRE(status(a, 6) == MemberStatus::suspect);
  REQUIRE(a.member(7) == pods::GossipMember{7, MemberStatus::alive, 2, 4, 0});
}

namespace {
pods::GossipOptions gossip_options(std::vector<NodeId> seeds) {
  pods::GossipOptions o;
  o.seeds = std::move(seeds);
  o.fanout = 1;
  o.gossip_interval = 100ms;
  o.probe_interval = 1h;  // gossip only
  o.probe_timeout = 1s;
  o.seed = 5;
  return o;
}
}  // namespace

TEST_CASE("Push-pull: a digest pulls the newer keys, and the reply's digest pushes them back",
          "[gossip][dissemination]") {
  Harness h;
  Node& a = h.add(1, gossip_options({2}));
  Node& b = h.add(2, gossip_options({1}));
  a.put("colour", bytes("red"));
  b.put("shape", bytes("round"));
  a.tick();
  auto sent = h.take(1);
  auto digests = of_kind<gossip::Digest>(sent, 2);
  REQUIRE(digests.size() == 1);
  REQUIRE(digests[0].reply);
  REQUIRE(digests[0].records.at(0) == gossip::MemberRecord{1, 0, MemberStatus::alive, 1, 1});
  b.receive(1, digests[0]);
  auto replies = h.take(2);
  auto syncs = of_kind<gossip::Sync>(replies, 1);
  REQUIRE(syncs.size() == 1);
  REQUIRE(syncs[0].wants == std::vector<gossip::Want>{{1, 0}});  // b has none of a's keys
  // a's digest listed b at version 0, so b pushes its own keys at once.
  REQUIRE(syncs[0].deltas == std::vector<gossip::Delta>{{2, 0, 1, {{"shape", bytes("round"), 1}}}});
  auto back = of_kind<gossip::Digest>(replies, 1);
  REQUIRE(back.size() == 1);
  REQUIRE_FALSE(back[0].reply);
  a.receive(2, syncs[0]);
  a.receive(2, back[0]);
  REQUIRE(a.get(2, "shape") == bytes("round"));
  auto answers = of_kind<gossip::Sync>(h.take(1), 2);
  REQUIRE(answers.size() == 1);  // b's wants answered; b's digest asks nothing more of a
  const gossip::Delta expected{1, 0, 1, {{"colour", bytes("red"), 1}}};
  REQUIRE(answers[0].deltas == std::vector<gossip::Delta>{expected});
  for (const auto& s : answers)
    b.receive(1, s);
  h.settle();
  REQUIRE(b.get(1, "colour") == bytes("red"));
  REQUIRE(a.get(2, "shape") == bytes("round"));
  REQUIRE(a.member(2)->version == 1);
  REQUIRE(b.member(1)->version == 1);
  REQUIRE(b.member(1)->heartbeat == 1);  // the heartbeat travels in the digest
}

TEST_CASE("A later put of a key wins everywhere; get of an unknown owner or key is empty",
          "[gossip][dissemination]") {
  Harness h;
  Node& a = h.add(1, gossip_options({2}));
  Node& b = h.add(2, gossip_options({1}));
  auto round = [&] {
    h.clock.advance(100ms);
    a.tick();
    b.tick();
    h.settle();
  };
  a.put("k", bytes("v1"));
  round();
  REQUIRE(b.get(1, "k") == bytes("v1"));
  a.put("k", bytes("v2"));
  a.put("other", bytes("x"));
  round();
  REQUIRE(b.get(1, "k") == bytes("v2"));
  REQUIRE(b.member(1)->version == 3);
  REQUIRE_FALSE(b.get(1, "missing"));
  REQUIRE_FALSE(b.get(7, "k"));
  REQUIRE(a.get(1, "k") == bytes("v2"));  // its own keys too
}

TEST_CASE("Heartbeat counters grow one per round and spread", "[gossip][dissemination]") {
  Harness h;
  Node& a = h.add(1, gossip_options({2}));
  Node& b = h.add(2, gossip_options({1}));
  for (int i = 0; i < 5; ++i) {
    a.tick();
    b.tick();
    h.settle();
    h.clock.advance(100ms);
  }
  REQUIRE(a.member(1)->heartbeat == 5);
  REQUIRE(a.stats().rounds == 5);
  REQUIRE(b.member(1)->heartbeat >= 4);
  REQUIRE(a.member(2)->heartbeat >= 4);
}

TEST_CASE("Messages are bounded: records per digest, bytes per delta", "[gossip][bounds]") {
  Harness h;
  std::vector<NodeId> many;
  for (NodeId id = 2; id <= 200; ++id)
    many.push_back(id);
  auto o = gossip_options(many);
  o.max_records = 10;
  o.max_delta_bytes = 256;
  Node& a = h.add(1, o);
  auto ob = gossip_options({1});
  ob.max_delta_bytes = 256;
  Node& b = h.add(2, ob);
  for (int i = 0; i < 40; ++i)
    a.put("key" + std::to_string(i), std::vector<std::byte>(30));
  a.tick();
  for (const auto& s : h.take(1)) {
    if (const auto* d = std::get_if<gossip::Digest>(&s.message)) REQUIRE(d->records.size() <= 10);
  }
  // b pulls a's 40 keys 256 bytes at a time; every Sync respects the bound.
  std::size_t syncs = 0;
  for (int round = 0; round < 60 && b.member(1)->version < 40; ++round) {
    b.receive(1, gossip::Digest{{{1, 0, MemberStatus::alive, 0, a.member(1)->version}}, false});
    for (auto& s : h.take(2))
      a.receive(2, std::move(s.message));
    for (auto& s : h.take(1)) {
      if (s.to != 2) continue;
      if (const auto* sync = std::get_if<gossip::Sync>(&s.message)) {
        std::size_t delta_bytes = 0;
        for (const auto& d : sync->deltas) {
          REQUIRE(d.to_version >= d.from_version);
          for (const auto& kv : d.entries)
            delta_bytes += kv.key.size() + kv.value.size() + 16;
        }
        REQUIRE(delta_bytes <= 256);
        ++syncs;
      }
      b.receive(1, std::move(s.message));
    }
  }
  REQUIRE(b.member(1)->version == 40);
  REQUIRE(syncs >= 40 * (5 + 30 + 16) / 256);
  for (int i = 0; i < 40; ++i)
    REQUIRE(b.get(1, "key" + std::to_string(i)) == std::vector<std::byte>(30));
}

TEST_CASE("Digests past max_incoming_digests per interval are dropped and counted",
          "[gossip][bounds]") {
  Harness h;
  auto o = gossip_options({});
  o.max_incoming_digests = 2;
  Node& a = h.add(1, o);
  for (NodeId from = 2; from <= 5; ++from)
    a.receive(from, gossip::Digest{{{from, 0, MemberStatus::alive, 0, 0}}, true});
  const auto sent = h.take(1);
  REQUIRE(of_kind<gossip::Digest>(sent).size() == 2);
  REQUIRE(a.stats().busy == 2);
  h.clock.advance(100ms);
  a.tick();  // a new interval
  h.take(1);
  a.receive(6, gossip::Digest{{{6, 0, MemberStatus::alive, 0, 0}}, true});
  REQUIRE(of_kind<gossip::Digest>(h.take(1), 6).size() == 1);
}

TEST_CASE("The gossip budget per interval is a hard cap on Digest and Sync sends",
          "[gossip][bounds]") {
  Harness h;
  auto o = gossip_options({});
  o.fanout = 1;
  o.max_incoming_digests = 1;
  Node& a = h.add(1, o);
  a.put("k", bytes("v"));
  const std::size_t budget = 3 * 1 + 3 * 1;
  // Non-reply digests and wants are not rate-limited by the incoming rule; the budget holds.
  for (NodeId from = 2; from < 30; ++from) {
    a.receive(from, gossip::Digest{
                        {{from, 0, MemberStatus::alive, 0, 0}, {1, 0, MemberStatus::alive, 0, 0}},
                        false});
    a.receive(from, gossip::Sync{{}, {{1, 0}}, {}});
  }
  REQUIRE(h.take(1).size() == budget);
  REQUIRE(a.stats().busy > 0);
}

TEST_CASE("Malformed messages are dropped and counted, never applied", "[gossip][errors]") {
  Harness h;
  auto o = gossip_options({2});
  o.max_records = 4;
  Node& a = h.add(1, o);
  a.put("mine", bytes("v"));
  // A delta about a's own keys.
  a.receive(2, gossip::Sync{{}, {}, {{1, 0, 9, {{"mine", bytes("forged"), 9}}}}});
  REQUIRE(a.get(1, "mine") == bytes("v"));
  // A PingReq naming a itself, or its sender.
  a.receive(2, gossip::PingReq{1, 1, {}});
  a.receive(2, gossip::PingReq{1, 2, {}});
  // Entries at or below the delta's from_version; an empty key; to below from.
  a.receive(2, gossip::Sync{{}, {}, {{2, 3, 5, {{"x", {}, 3}}}}});
  a.receive(2, gossip::Sync{{}, {}, {{2, 0, 5, {{"", {}, 3}}}}});
  a.receive(2, gossip::Sync{{}, {}, {{2, 5, 3, {}}}});
  // More records than max_records.
  a.receive(
      2, gossip::Ping{1, std::vector<gossip::MemberRecord>(5, {3, 0, MemberStatus::alive, 0, 0})});
  REQUIRE(a.stats().malformed == 7);
  REQUIRE(h.take(1).empty());
  REQUIRE_FALSE(a.member(3));
  REQUIRE(a.member(2)->version == 0);
}

TEST_CASE("MessageCodec round-trips every kind", "[gossip][codec]") {
  const gossip::MessageCodec codec;
  const gossip::MemberRecord r1{1, 2, MemberStatus::suspect, 3, 4};
  const gossip::MemberRecord r2{~0ULL, ~0U, MemberStatus::dead, ~0ULL, ~0ULL};
  const std::vector<gossip::Message> messages{
      gossip::Ping{},
      gossip::Ping{5, {r1, r2}},
      gossip::PingReq{6, 7, {r1}},
      gossip::Ack{8, {}},
      gossip::Digest{{r1, r2}, true},
      gossip::Digest{{}, false},
      gossip::Sync{{r2},
                   {{1, 2}, {3, 4}},
                   {{9, 1, 3, {{"a", bytes("xyz"), 2}, {"b", {}, 3}}}, {10, 0, 0, {}}}},
  };
  for (const auto& m : messages) {
    pods::Buffer out;
    codec.encode(m, out);
    REQUIRE(static_cast<std::uint8_t>(out.at(0)) == 1);
    REQUIRE(static_cast<std::size_t>(out.at(1)) == m.index());
    REQUIRE(codec.decode(out) == m);
  }
  pods::Buffer ping;
  codec.encode(gossip::Ping{5, {r1}}, ping);
  REQUIRE(ping.size() == 2 + 8 + 4 + gossip::MessageCodec::record_bytes);
}

TEST_CASE("MessageCodec throws CorruptionError naming the offset on bad bytes", "[gossip][codec]") {
  const gossip::MessageCodec codec;
  auto encoded = [&](const gossip::Message& m) {
    pods::Buffer out;
    codec.encode(m, out);
    return out;
  };
  auto fails_with = [&](pods::Buffer b, const std::string& text) {
    try {
      (void)codec.decode(b);
      FAIL("decoded");
    } catch (const pods::CorruptionError& e) {
      CAPTURE(e.what());
      REQUIRE(std::string(e.what()).find(text) != std::string::npos);
      REQUIRE(std::string(e.what()).find("gossip message") != std::string::npos);
    }
  };
  auto b = encoded(gossip::Ping{1, {}});
  b[0] = std::byte{2};
  fails_with(b, "unknown format version 2");
  b = encoded(gossip::Ping{1, {}});
  b[1] = std::byte{9};
  fails_with(b, "unknown message kind 9");
  b = encoded(gossip::Ping{1, {{1, 0, MemberStatus::alive, 0, 0}}});
  b[2 + 8 + 4 + 12] = std::byte{3};  // the status byte
  fails_with(b, "member status 3");
  b = encoded(gossip::Digest{{}, true});
  b.back() = std::byte{2};
  fails_with(b, "bool");
  b = encoded(gossip::Ack{1, {}});
  b.pop_back();
  fails_with(b, "truncated");
  b = encoded(gossip::Ack{1, {}});
  b.push_back(std::byte{0});
  fails_with(b, "trailing");
  b = encoded(gossip::Ack{1, {}});
  b[10] = std::byte{0xFF};  // a count of 255 records in 0 bytes
  fails_with(b, "count of 255");
  fails_with({}, "truncated");
}

// ---- On the simulator ----------------------------------------------------------------------

namespace {

// A sim::Network endpoint that also counts, per node, the Digest and Sync messages sent in
// each window of one gossip interval of virtual time, and optionally their encoded bytes.
struct Counters {
  pods::sim::Simulation* sim = nullptr;
  std::chrono::nanoseconds window{};
  bool measure_bytes = false;
  struct PerNode {
    std::int64_t window = -1;
    std::size_t in_window = 0;
    std::size_t max_in_window = 0;
    std::size_t gossip = 0, probe = 0;
    std::size_t bytes = 0, max_bytes = 0;
  };
  std::map<NodeId, PerNode> nodes;
};

struct CountingEndpoint {
  pods::sim::Network<gossip::Message>::Endpoint endpoint;
  std::shared_ptr<Counters> counters;
  void send(NodeId to, gossip::Message m) {
    Counters::PerNode& c = counters->nodes[endpoint.id()];
    if (std::holds_alternative<gossip::Digest>(m) || std::holds_alternative<gossip::Sync>(m)) {
      ++c.gossip;
      const std::int64_t w = counters->sim->now().time_since_epoch() / counters->window;
      if (w != c.window) {
        c.window = w;
        c.in_window = 0;
      }
      c.max_in_window = std::max(c.max_in_window, ++c.in_window);
    } else {
      ++c.probe;
    }
    if (counters->measure_bytes) {
      pods::Buffer out;
      gossip::MessageCodec{}.encode(m, out);
      c.bytes += out.size();
      c.max_bytes = std::max(c.max_bytes, out.size());
    }
    endpoint.send(to, std::move(m));
  }
};

using SimNode = pods::GossipDissemination<CountingEndpoint, pods::sim::NodeClock>;

struct SimCluster {
  pods::sim::Simulation sim;
  pods::sim::Network<gossip::Message> net;
  pods::GossipOptions base;
  std::size_t n;
  std::vector<NodeId> seeds_of_all;  // empty: every node seeds every other
  std::shared_ptr<Counters> counters = std::make_shared<Counters>();
  std::map<NodeId, bool> refutes;          // nodes built with refute = false
  std::function<void(SimNode&)> on_start;  // run on every node built (and rebuilt)
  pods::sim::Cluster<SimNode, gossip::Message> cluster;

  SimCluster(std::uint64_t seed, std::size_t nodes, pods::sim::LinkFaults faults,
             pods::GossipOptions options)
      : sim(seed),
        net(sim, faults),
        base(std::move(options)),
        n(nodes),
        cluster(net,
                [this](const pods::sim::NodeContext<gossip::Message>& ctx) { return make(ctx); },
                {.tick_interval = 0s}) {
    counters->sim = &sim;
    counters->window = base.gossip_interval;
  }
  // Starts the nodes; separate from construction so a test can set refutes and on_start.
  SimCluster& start() {
    for (NodeId id = 1; id <= n; ++id)
      cluster.add(id);
    return *this;
  }
  SimNode& operator[](NodeId id) { return *cluster.node(id); }

  std::unique_ptr<SimNode> make(const pods::sim::NodeContext<gossip::Message>& ctx) {
    pods::GossipOptions o = base;
    if (seeds_of_all.empty()) {
      for (NodeId id = 1; id <= n; ++id)
        if (id != ctx.id) o.seeds.push_back(id);
    } else {
      for (NodeId id : seeds_of_all)
        if (id != ctx.id) o.seeds.push_back(id);
    }
    pods::Random r = ctx.random;
    o.seed = r.next();
    if (auto it = refutes.find(ctx.id); it != refutes.end()) o.refute = it->second;
    auto node = std::make_unique<SimNode>(ctx.id, CountingEndpoint{ctx.endpoint, counters},
                                          ctx.clock, std::move(o));
    if (on_start) on_start(*node);
    return node;
  }
};

pods::GossipOptions sim_options() {
  pods::GossipOptions o;
  o.fanout = 3;
  o.gossip_interval = 200ms;
  o.probe_interval = 1s;
  o.probe_timeout = 400ms;
  o.suspicion_timeout = 5s;
  o.reap_after = 60s;
  return o;
}

// Returns how many gossip rounds after a put on node 1 the value reached every live node,
// checked every 10 ms of virtual time; nullopt past `limit` rounds.
std::optional<double> rounds_to_spread(SimCluster& c, std::size_t limit) {
  const auto interval = c.base.gossip_interval;
  const auto start = c.sim.now();
  c[1].put("news", bytes("hello"));
  const auto deadline = start + interval * static_cast<std::int64_t>(limit);
  while (c.sim.now() < deadline) {
    c.sim.run_for(10ms);
    std::size_t have = 0;
    for (NodeId id = 1; id <= c.n; ++id)
      have += !c.cluster.is_up(id) || c[id].get(1, "news") ? 1 : 0;
    if (have == c.n) {
      return std::chrono::duration<double>(c.sim.now() - start) /
             std::chrono::duration<double>(interval);
    }
  }
  return std::nullopt;
}

// Returns true when no live member other than `node` itself holds `node` as dead.
bool nobody_declares_dead(SimCluster& c, NodeId node) {
  for (NodeId id = 1; id <= c.n; ++id) {
    if (id == node || !c.cluster.is_up(id)) continue;
    if (auto m = c[id].member(node); m && m->status == MemberStatus::dead) return false;
  }
  return true;
}

// Runs `d` of virtual time one event at a time, checking `property` after every event.
// Returns false at the first event after which it does not hold.
template <class Property>
bool run_checked(SimCluster& c, std::chrono::nanoseconds d, Property property) {
  const auto end = c.sim.now() + d;
  while (c.sim.now() <= end) {
    const auto next = c.sim.next_event_time();
    if (!next || *next > end) break;
    c.sim.step();
    if (!property()) return false;
  }
  c.sim.run_for(end - c.sim.now());
  return property();
}

}  // namespace

// The bound. Push gossip with fanout f from one node reaches all n in about
// log_{1+f}(n) + ln(n) / f rounds (Pittel 1987 for f = 1; Frieze and Grimmett); push-pull is
// faster still. For n = 1000, f = 3 that is 5.0 + 2.3 = 7.3 rounds. Each hop costs up to three
// message legs (digest, want, delta) within the round and a node passes the value on only at
// its next round, so we allow log2(n) + 3 rounds: 12.97 for n = 1000, with margin for the
// straggler tail and 10 % loss.
TEST_CASE(
    "Sim: with 1000 nodes and fanout 3 a new value reaches every node within log2(n) + 3 "
    "rounds, also under 10 % loss",
    "[gossip][sim]") {
  const std::size_t n = 1000;
  const double bound = std::log2(static_cast<double>(n)) + 3;
  for (const double loss : {0.0, 0.1}) {
    for (std::uint64_t seed = 1; seed <= seeds_to_run(1); ++seed) {
      CAPTURE(seed, loss);
      SimCluster c(seed, n, {.loss = loss, .min_delay = 1ms, .max_delay = 10ms}, sim_options());
      c.start();
      c.sim.run_for(1s);
      const auto rounds = rounds_to_spread(c, 40);
      REQUIRE(rounds);
      std::printf(
          "gossip: n=%zu fanout=3 loss=%.0f%% seed=%llu: every node in %.2f rounds "
          "(log2 n = %.2f, bound %.2f)\n",
          n, loss * 100, static_cast<unsigned long long>(seed), *rounds,
          std::log2(static_cast<double>(n)), bound);
      REQUIRE(*rounds <= bound);
      // No live node was declared dead: loss alone does not evict anyone.
      for (NodeId id = 1; id <= n; ++id)
        REQUIRE(c[id].stats().declared_dead == 0);
    }
  }
}

TEST_CASE(
    "Sim: messages per node per gossip interval stay within the budget, and every message "
    "within its size bound",
    "[gossip][sim][bounds]") {
  const std::size_t n = 100;
  for (std::uint64_t seed = 1; seed <= seeds_to_run(1); ++seed) {
    CAPTURE(seed);
    auto o = sim_options();
    SimCluster c(seed, n, {.loss = 0.05, .min_delay = 1ms, .max_delay = 20ms}, o);
    c.counters->measure_bytes = true;
    c.on_start = [](SimNode& node) {
      for (int k = 0; k < 8; ++k)
        node.put("key" + std::to_string(k), std::vector<std::byte>(100));
    };
    c.start();
    c.sim.run_for(8s);
    // A window of one interval overlaps at most two of a node's rounds, each within budget.
    const std::size_t budget = 3 * o.fanout + 3 * (2 * o.fanout);
    // A message: version, kind, then at most max_records records with their counts, and
    // deltas of at most max_delta_bytes of keys and values (16 bytes of lengths and version
    // each, counted in the limit) with 28 bytes of header per delta, one delta per record.
    const std::size_t max_message = 2 + 4 + o.max_records * gossip::MessageCodec::record_bytes + 4 +
                                    o.max_records * 16 + 4 + o.max_records * 28 + o.max_delta_bytes;
    std::size_t max_window = 0, max_bytes = 0, gossip_sent = 0, bytes = 0;
    for (const auto& [id, counts] : c.counters->nodes) {
      max_window = std::max(max_window, counts.max_in_window);
      max_bytes = std::max(max_bytes, counts.max_bytes);
      gossip_sent += counts.gossip;
      bytes += counts.bytes;
    }
    const double rounds = 8s / o.gossip_interval;
    std::printf(
        "gossip: n=%zu seed=%llu: at most %zu Digest/Sync per node per interval (bound "
        "%zu), mean %.2f; largest message %zu bytes (bound %zu); %.0f bytes per node per "
        "round\n",
        n, static_cast<unsigned long long>(seed), max_window, 2 * budget,
        static_cast<double>(gossip_sent) / static_cast<double>(n) / rounds, max_bytes, max_message,
        static_cast<double>(bytes) / static_cast<double>(n) / rounds);
    REQUIRE(max_window <= 2 * budget);
    REQUIRE(max_bytes <= max_message);
    // And the keys did spread: every node holds every other node's keys.
    for (NodeId id = 1; id <= n; id += 7)
      for (NodeId owner = 1; owner <= n; ++owner)
        REQUIRE(c[id].get(owner, "key7"));
  }
}

TEST_CASE("Sim: a crashed node is declared dead by every member", "[gossip][sim][swim]") {
  const std::size_t n = 100;
  for (std::uint64_t seed = 1; seed <= seeds_to_run(1); ++seed) {
    CAPTURE(seed);
    auto o = sim_options();
    o.reap_after = 10s;
    SimCluster c(seed, n, {.loss = 0.02, .min_delay = 1ms, .max_delay = 10ms}, o);
    c.start();
    c.sim.run_for(2s);
    const NodeId victim = 1 + c.sim.random().below(n);
    c.cluster.crash(victim);
    const auto crashed_at = c.sim.now();
    // Someone probes the victim within a few probe intervals (each of the n - 1 members
    // probes one member per interval); it is suspect at that interval's end; the suspicion
    // spreads within a few gossip rounds, and each member declares it dead suspicion_timeout
    // after it heard. Allow 5 probe intervals + suspicion_timeout + 10 gossip rounds.
    const auto bound = 5 * o.probe_interval + o.suspicion_timeout + 10 * o.gossip_interval;
    auto all_dead = [&] {
      for (NodeId id = 1; id <= n; ++id) {
        if (id == victim) continue;
        auto m = c[id].member(victim);
        if (!m || m->status != MemberStatus::dead) return false;
      }
      return true;
    };
    REQUIRE(c.sim.run_until(all_dead, bound));
    std::printf(
        "gossip: n=%zu seed=%llu: every member declared the crashed node dead %.2f s "
        "after the crash (bound %.1f s)\n",
        n, static_cast<unsigned long long>(seed),
        std::chrono::duration<double>(c.sim.now() - crashed_at).count(),
        std::chrono::duration<double>(bound).count());
    // No one else was declared dead.
    for (NodeId id = 1; id <= n; ++id)
      if (id != victim) REQUIRE(nobody_declares_dead(c, id));
    // And reap_after later it is forgotten everywhere.
    c.sim.run_for(o.reap_after + 1s);
    for (NodeId id = 1; id <= n; ++id)
      if (id != victim) REQUIRE_FALSE(c[id].member(victim));
  }
}

namespace {

enum class Fault { pause, one_way };

// Returns whether `node`, paused or cut off in one direction for 3 s (under the 5 s
// suspicion timeout), stayed a member in every live view at every step; reports whether it
// was suspected at all and its incarnation afterwards.
struct FalseSuspicion {
  bool stayed_member = false;
  std::uint64_t suspicions = 0;
  std::uint32_t incarnation = 0;
};
FalseSuspicion falsely_suspect(std::uint64_t seed, Fault fault, bool refute) {
  const std::size_t n = 50;
  SimCluster c(seed, n, {.loss = 0.01, .min_delay = 1ms, .max_delay = 10ms}, sim_options());
  const NodeId node = 7;
  c.refutes[node] = refute;
  c.start();
  c.sim.run_for(3s);
  if (fault == Fault::pause) {
    c.cluster.pause(node, 3s);
  } else {
    for (NodeId id = 1; id <= n; ++id)
      if (id != node) c.net.block(node, id);
    c.sim.schedule(3s, [&c] { c.net.heal(); });
  }
  FalseSuspicion result;
  result.stayed_member = run_checked(c, 12s, [&] { return nobody_declares_dead(c, node); });
  for (NodeId id = 1; id <= n; ++id)
    result.suspicions += c[id].stats().suspected;
  result.incarnation = c[node].incarnation();
  return result;
}

}  // namespace

TEST_CASE("Sim: a falsely suspected live node (paused, or one-way cut) refutes and stays a member",
          "[gossip][sim][swim]") {
  for (const Fault fault : {Fault::pause, Fault::one_way}) {
    for (std::uint64_t seed = 1; seed <= seeds_to_run(1); ++seed) {
      CAPTURE(seed, fault == Fault::pause ? "pause" : "one-way");
      const FalseSuspicion r = falsely_suspect(seed, fault, true);
      REQUIRE(r.suspicions >= 1);   // the fault did cause suspicion
      REQUIRE(r.incarnation >= 1);  // which the node refuted
      REQUIRE(r.stayed_member);     // checked after every event
    }
  }
}

TEST_CASE(
    "Sim: with refutation disabled the same fault gets the live node declared dead (the "
    "checker catches the broken rule)",
    "[gossip][sim][swim]") {
  for (std::uint64_t seed = 1; seed <= seeds_to_run(3); ++seed) {
    CAPTURE(seed);
    const FalseSuspicion r = falsely_suspect(seed, Fault::pause, false);
    REQUIRE(r.suspicions >= 1);
    REQUIRE(r.incarnation == 0);
    REQUIRE_FALSE(r.stayed_member);
  }
}

TEST_CASE("Sim: nodes that know only one seed learn the whole membership", "[gossip][sim]") {
  const std::size_t n = 40;
  for (std::uint64_t seed = 1; seed <= seeds_to_run(3); ++seed) {
    CAPTURE(seed);
    SimCluster c(seed, n, {.loss = 0.02, .min_delay = 1ms, .max_delay = 10ms}, sim_options());
    c.seeds_of_all = {1};
    c.start();
    REQUIRE(c[1].size() == 1);
    REQUIRE(c[2].size() == 2);
    auto everyone = [&] {
      for (NodeId id = 1; id <= n; ++id)
        if (c[id].live_count() != n) return false;
      return true;
    };
    REQUIRE(c.sim.run_until(everyone, 30s));
    std::printf("gossip: n=%zu seed=%llu: joined through one seed, full membership after %.1f s\n",
                n, static_cast<unsigned long long>(seed),
                std::chrono::duration<double>(c.sim.now().time_since_epoch()).count());
  }
}

TEST_CASE("Sim: the same seed replays the same run", "[gossip][sim]") {
  auto run = [](std::uint64_t seed) {
    SimCluster c(seed, 20, {.loss = 0.1, .min_delay = 1ms, .max_delay = 30ms}, sim_options());
    c.start();
    c[3].put("k", bytes("v"));
    c.sim.run_for(5s);
    return c.sim.trace_hash();
  };
  REQUIRE(run(9) == run(9));
  REQUIRE(run(9) != run(10));
}

TEST_CASE("Sim: under a nemesis, views stay sane at every step and converge after the heal",
          "[gossip][sim][nemesis]") {
  const std::size_t n = 10;
  for (std::uint64_t seed = 1; seed <= seeds_to_run(1); ++seed) {
    CAPTURE(seed);
    auto o = sim_options();
    o.gossip_interval = 100ms;
    o.probe_interval = 500ms;
    o.probe_timeout = 200ms;
    o.suspicion_timeout = 2s;
    SimCluster c(seed, n, {.loss = 0.01, .min_delay = 1ms, .max_delay = 10ms}, o);
    // Each node publishes its name; values a node holds must be ones their owner put.
    c.on_start = [](SimNode& node) { node.put("name", bytes("node" + std::to_string(node.id()))); };
    c.start();
    pods::sim::Nemesis nemesis(c.cluster, {.duration = 30s, .quiet = 15s});
    // Per (observer, member): the observer's life, the (incarnation, status) and the version
    // seen last, to check that a view only moves forward while its observer lives.
    struct Seen {
      std::uint64_t life = 0;  // 0: not seen yet; else the observer's incarnation + 1
      std::uint32_t incarnation = 0;
      int status = 0;
      std::uint64_t version = 0;
    };
    std::vector<Seen> last((n + 1) * (n + 1));
    std::vector<std::vector<std::byte>> names(n + 1);
    for (NodeId id = 1; id <= n; ++id)
      names[id] = bytes("node" + std::to_string(id));
    const char* broken = nullptr;
    auto sane = [&] {
      for (NodeId id = 1; id <= n; ++id) {
        if (!c.cluster.is_up(id)) continue;
        SimNode& node = c[id];
        const std::uint64_t life = c.cluster.incarnation(id) + 1;
        for (NodeId other = 1; other <= n; ++other) {
          const auto m = node.member(other);
          if (!m) continue;
          if (other == id && m->status != MemberStatus::alive)
            broken = "a node holds itself not alive";
          Seen& seen = last[id * (n + 1) + other];
          if (seen.life == life &&
              (m->incarnation < seen.incarnation ||
               (m->incarnation == seen.incarnation && static_cast<int>(m->status) < seen.status) ||
               m->version < seen.version)) {
            broken = "a view moved backwards";
          }
          seen = {life, m->incarnation, static_cast<int>(m->status), m->version};
          if (m->version > 0) {
            if (auto v = node.get(other, "name"); v && *v != names[other]) {
              broken = "a value its owner never put";
            }
          }
        }
      }
      return broken == nullptr;
    };
    const bool ok = run_checked(c, 30s, sane);
    if (!ok) std::printf("%s\n%s\n", broken, nemesis.describe().c_str());
    REQUIRE(ok);
    // After the heal and the quiet period: every node sees every node alive and knows its name.
    for (NodeId id = 1; id <= n; ++id) {
      REQUIRE(c.cluster.is_up(id));
      for (NodeId other = 1; other <= n; ++other) {
        CAPTURE(id, other);
        const auto m = c[id].member(other);
        REQUIRE(m);
        REQUIRE(m->status == MemberStatus::alive);
        REQUIRE(c[id].get(other, "name") == bytes("node" + std::to_string(other)));
      }
    }
  }
}

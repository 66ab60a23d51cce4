#include <pods/net/authenticated_link.hpp>
#include <pods/net/reliable_link.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>

#include <catch2/catch.hpp>

#include "link_checker.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

using namespace std::chrono_literals;
using links_test::LinkChecker;
using links_test::Numbered;
using links_test::NumberedCodec;
using pods::NodeId;
using pods::Outbox;
using pods::net::AuthenticatedLink;
using pods::net::AuthenticatedLinkCodec;
using pods::net::AuthenticatedLinkMessage;
using pods::net::AuthenticatedLinkStats;
using pods::net::LinkKey;
using pods::net::LinkKeys;

namespace {

using AuthWire = AuthenticatedLinkMessage;
using Link = AuthenticatedLink<std::string, pods::StringCodec, Outbox<AuthWire>>;
static_assert(pods::Transport<Link, std::string>);

LinkKey key_of(std::uint8_t fill) {
  LinkKey k{};
  for (std::size_t i = 0; i < k.size(); ++i)
    k[i] = static_cast<std::byte>(fill + i);
  return k;
}

// Node `self` with its own outbox, keyed from a cluster key.
struct End {
  End(NodeId self, const LinkKey& cluster, pods::net::AuthenticatedLinkOptions o = {})
      : link(out, self, LinkKeys::derived(cluster), o) {
    link.on_receive([this](NodeId from, std::string m) { got.emplace_back(from, std::move(m)); });
  }
  Outbox<AuthWire> out;
  Link link;
  std::vector<std::pair<NodeId, std::string>> got;
};

// The MAC of `w` computed here from the documented layout with libsodium's one-shot HMAC.
std::array<std::byte, 32> independent_mac(const LinkKey& key, const AuthWire& w) {
  pods::Buffer bytes;
  pods::wire::Writer wr(bytes);
  wr.u8(1);
  wr.u64(w.sender);
  wr.u64(w.receiver);
  wr.u64(w.incarnation);
  wr.u64(w.counter);
  wr.bytes(w.payload);
  std::array<std::byte, 32> mac{};
  crypto_auth_hmacsha256(reinterpret_cast<unsigned char*>(mac.data()),
                         reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(),
                         reinterpret_cast<const unsigned char*>(key.data()));
  return mac;
}

const LinkKey cluster = key_of(7);

}  // namespace

TEST_CASE("AuthenticatedLink: a message passes between holders of the pair's key",
          "[net][authenticated_link]") {
  End a(1, cluster, {.incarnation = 5}), b(2, cluster);
  a.link.send(2, "hello");
  a.link.send(2, "again");
  auto sent = a.out.take();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0].to == 2);
  const AuthWire& w = sent[0].message;
  CHECK(w.sender == 1);
  CHECK(w.receiver == 2);
  CHECK(w.incarnation == 5);
  CHECK(w.counter == 1);
  CHECK(sent[1].message.counter == 2);
  for (auto& s : sent)
    b.link.receive(1, s.message);
  CHECK(b.got == std::vector<std::pair<NodeId, std::string>>{{1, "hello"}, {1, "again"}});
  CHECK(a.link.stats().sent == 2);
  CHECK(b.link.stats().delivered == 2);
}

TEST_CASE(
    "AuthenticatedLink: the MAC is HMAC-SHA256 of the documented header and payload under "
    "the pair's crypto_kdf key",
    "[net][authenticated_link]") {
  End a(1, cluster);
  a.link.send(2, "payload");
  const AuthWire w = a.out.take().at(0).message;
  // The documented derivation, step by step: the smaller id, then the larger.
  LinkKey first{}, expected_key{};
  crypto_kdf_derive_from_key(reinterpret_cast<unsigned char*>(first.data()), 32, 1, "podslnk1",
                             reinterpret_cast<const unsigned char*>(cluster.data()));
  crypto_kdf_derive_from_key(reinterpret_cast<unsigned char*>(expected_key.data()), 32, 2,
                             "podslnk2", reinterpret_cast<const unsigned char*>(first.data()));
  CHECK(pods::net::derive_link_key(cluster, 1, 2) == expected_key);
  CHECK(pods::net::derive_link_key(cluster, 2, 1) == expected_key);
  CHECK(pods::net::derive_link_key(cluster, 1, 3) != expected_key);
  CHECK(pods::net::derive_link_key(key_of(8), 1, 2) != expected_key);
  CHECK(w.mac == independent_mac(expected_key, w));
}

TEST_CASE("AuthenticatedLink: a tampered byte anywhere in the message is dropped and counted",
          "[net][authenticated_link]") {
  End a(1, cluster, {.incarnation = 3});
  a.link.send(2, "transfer 100 to carol");
  const AuthWire original = a.out.take().at(0).message;
  const AuthenticatedLinkCodec codec;
  pods::Buffer bytes;
  codec.encode(original, bytes);
  std::size_t rejected_by_codec = 0, bad_mac = 0, misaddressed = 0;
  for (std::size_t at = 0; at < bytes.size(); ++at) {
    for (std::byte flip : {std::byte{0x01}, std::byte{0x80}}) {
      End b(2, cluster);  // a fresh receiver: a replay cannot be what stops it
      pods::Buffer tampered = bytes;
      tampered[at] ^= flip;
      AuthWire w;
      try {
        w = codec.decode(tampered);
      } catch (const pods::CorruptionError&) {
        ++rejected_by_codec;
        continue;
      }
      b.link.receive(1, w);
      INFO("byte " << at);
      CHECK(b.got.empty());
      const AuthenticatedLinkStats st = b.link.stats();
      CHECK(st.delivered == 0);
      CHECK(st.bad_mac + st.misaddressed == 1);
      bad_mac += st.bad_mac;
      misaddressed += st.misaddressed;
    }
  }
  // The version byte and the length are the codec's to refuse; sender and receiver are checked
  // against the transport and this node; incarnation, counter, payload and MAC are the MAC's.
  CHECK(rejected_by_codec == 2 * (1 + 4));
  CHECK(misaddressed == 2 * 16);
  CHECK(bad_mac == 2 * (16 + original.payload.size() + 32));
  // And the untouched message still passes.
  End b(2, cluster);
  b.link.receive(1, codec.decode(bytes));
  CHECK(b.got.size() == 1);
}

TEST_CASE("AuthenticatedLink: a forged sender is dropped and counted",
          "[net][authenticated_link]") {
  End victim(1, cluster), mallory(3, cluster);
  SECTION("naming another sender than the link it came on") {
    mallory.link.send(1, "I am node 2");
    AuthWire w = mallory.out.take().at(0).message;
    w.sender = 2;  // claims to be node 2 over its own link
    victim.link.receive(3, w);
    CHECK(victim.link.stats().misaddressed == 1);
  }
  SECTION("spoofing the transport's sender: the MAC is under key(1, 3), not key(1, 2)") {
    mallory.link.send(1, "I am node 2");
    AuthWire w = mallory.out.take().at(0).message;
    w.sender = 2;
    victim.link.receive(2, w);
    CHECK(victim.link.stats().bad_mac == 1);
  }
  SECTION("addressed to another node") {
    End other(4, cluster);
    mallory.link.send(4, "for node 4");
    victim.link.receive(3, mallory.out.take().at(0).message);
    CHECK(victim.link.stats().misaddressed == 1);
  }
  CHECK(victim.got.empty());
}

TEST_CASE("AuthenticatedLink: a wrong key is dropped and counted", "[net][authenticated_link]") {
  End a(1, key_of(99)), b(2, cluster);
  a.link.send(2, "hello");
  b.link.receive(1, a.out.take().at(0).message);
  CHECK(b.got.empty());
  CHECK(b.link.stats().bad_mac == 1);
  SECTION("explicit per-peer keys: both ends set the same key") {
    Outbox<AuthWire> out1, out2;
    const LinkKey k = key_of(42);
    Link one(out1, 1, LinkKeys().set(2, k)), two(out2, 2, LinkKeys().set(1, k));
    std::vector<std::string> got;
    two.on_receive([&](NodeId, std::string m) { got.push_back(m); });
    one.send(2, "explicit");
    two.receive(1, out1.take().at(0).message);
    CHECK(got == std::vector<std::string>{"explicit"});
  }
}

TEST_CASE("AuthenticatedLink: a replay is dropped and counted, reordering within the window passes",
          "[net][authenticated_link]") {
  End a(1, cluster, {.incarnation = 1}), b(2, cluster, {.replay_window = 64});
  for (int i = 1; i <= 100; ++i)
    a.link.send(2, std::to_string(i));
  auto sent = a.out.take();
  b.link.receive(1, sent[9].message);  // counter 10 first
  b.link.receive(1, sent[9].message);  // again: a replay
  CHECK(b.link.stats().replayed == 1);
  for (int i = 0; i < 9; ++i)  // 1..9 arrive late, within the window
    b.link.receive(1, sent[i].message);
  CHECK(b.got.size() == 10);
  b.link.receive(1, sent[99].message);  // counter 100: the window moves to 37..100
  b.link.receive(1, sent[20].message);  // counter 21 < 100 - 63: too old
  CHECK(b.link.stats().too_old == 1);
  b.link.receive(1, sent[40].message);  // counter 41: still inside, and new
  CHECK(b.got.size() == 12);
  b.link.receive(1, sent[99].message);
  b.link.receive(1, sent[40].message);
  CHECK(b.link.stats().replayed == 3);
  for (auto& s : sent)  // everything again
    b.link.receive(1, s.message);
  // The window now holds 37..100: 1..36 are too old, 41 and 100 replays, 37..40 and 42..99 new.
  CHECK(b.got.size() == 12 + 4 + 58);
  CHECK(b.link.stats().too_old == 1 + 36);
  SECTION("a restarted sender's new incarnation starts a fresh window; the old one is refused") {
    End a2(1, cluster, {.incarnation = 2});
    a2.link.send(2, "after restart");
    b.link.receive(1, a2.out.take().at(0).message);
    CHECK(b.got.back().second == "after restart");
    const auto before = b.link.stats().replayed;
    b.link.receive(1, sent[99].message);  // incarnation 1
    CHECK(b.link.stats().replayed == before + 1);
  }
}

TEST_CASE("AuthenticatedLink: unknown peers, undecodable payloads and bad options",
          "[net][authenticated_link]") {
  Outbox<AuthWire> out;
  const LinkKey k = key_of(5);
  Link only2(out, 1, LinkKeys().set(2, k));
  CHECK_THROWS_WITH(only2.send(3, "x"), "AuthenticatedLink::send: no key for node 3 (to)");
  CHECK_THROWS_AS(only2.send(3, "x"), std::invalid_argument);
  AuthWire w;
  w.sender = 3;
  w.receiver = 1;
  only2.receive(3, w);
  CHECK(only2.stats().unknown_peer == 1);

  // An authentic message whose payload the user's codec rejects (3 bytes for an int).
  Outbox<AuthWire> out2;
  AuthenticatedLink<int, pods::TrivialCodec<int>, Outbox<AuthWire>> ints(out2, 1,
                                                                         LinkKeys().set(2, k));
  AuthWire bad;
  bad.sender = 2;
  bad.receiver = 1;
  bad.counter = 1;
  bad.payload = {std::byte{1}, std::byte{2}, std::byte{3}};
  bad.mac = independent_mac(k, bad);
  ints.receive(2, bad);
  CHECK(ints.stats().undecodable == 1);
  CHECK(ints.stats().delivered == 0);

  for (std::size_t window : {std::size_t{0}, std::size_t{65}, std::size_t{1} << 21}) {
    CHECK_THROWS_WITH((Link(out, 1, LinkKeys(), {.replay_window = window})),
                      "AuthenticatedLink: replay_window must be a multiple of 64 in [64, "
                      "1048576], got " +
                          std::to_string(window));
  }
}

TEST_CASE("AuthenticatedLinkCodec: round trip, overhead and corrupt bytes",
          "[net][authenticated_link][codec]") {
  const AuthenticatedLinkCodec codec;
  AuthWire m;
  m.sender = 1;
  m.receiver = ~0ull;
  m.incarnation = 3;
  m.counter = 4;
  m.payload = {std::byte{9}, std::byte{8}};
  m.mac[0] = std::byte{0xAA};
  m.mac[31] = std::byte{0x55};
  pods::Buffer bytes;
  codec.encode(m, bytes);
  CHECK(codec.decode(bytes) == m);
  CHECK(bytes.size() == AuthenticatedLinkCodec::overhead + 2);
  CHECK(bytes.size() == 1 + 8 * 4 + 4 + 2 + 32);
  std::cout << "authenticated link wire overhead: " << bytes.size() - m.payload.size()
            << " bytes + payload\n";
  for (std::size_t n = 0; n < bytes.size(); ++n)
    CHECK_THROWS_AS(codec.decode(std::span(bytes).first(n)), pods::CorruptionError);
  pods::Buffer longer = bytes;
  longer.push_back(std::byte{0});
  CHECK_THROWS_WITH(codec.decode(longer), "corrupt data in authenticated link message at offset " +
                                              std::to_string(bytes.size()) +
                                              ": 1 unexpected trailing bytes");
  pods::Buffer v2 = bytes;
  v2[0] = std::byte{2};
  CHECK_THROWS_WITH(codec.decode(v2),
                    "corrupt data in authenticated link message at offset 0: unknown version 2");
}

// ---- The stack: ReliableLink over AuthenticatedLink ------------------------------------------

namespace {

using RWire = pods::net::ReliableLinkMessage<Numbered>;
using RCodec = pods::net::ReliableLinkCodec<Numbered, NumberedCodec>;

template <class Inner>
using AuthOf = AuthenticatedLink<RWire, RCodec, Inner>;
template <class Inner, class Clock>
using Stack = pods::net::ReliableLink<Numbered, AuthOf<Inner>, Clock>;

}  // namespace

TEST_CASE(
    "The stack: a forged acknowledgement cannot make ReliableLink forget a message, with the "
    "layers the other way round it does",
    "[net][authenticated_link][reliable_link]") {
  pods::ManualClock clock;
  SECTION("ReliableLink over AuthenticatedLink (the documented order)") {
    Outbox<AuthWire> out;
    AuthOf<Outbox<AuthWire>> auth(out, 1, LinkKeys::derived(cluster));
    Stack<Outbox<AuthWire>, pods::ManualClock> link(auth, clock);
    auth.on_receive([&](NodeId from, RWire m) { link.receive(from, std::move(m)); });
    link.send(2, Numbered{0, 1});
    // Mallory wraps a forged ack in an authenticated message she cannot key.
    AuthWire forged;
    forged.sender = 2;
    forged.receiver = 1;
    forged.counter = 1;
    RCodec{}.encode(RWire(pods::net::ReliableAck{0, 0, 1, 0}), forged.payload);
    auth.receive(2, forged);
    CHECK(auth.stats().bad_mac == 1);
    CHECK(link.buffered(2) == 1);  // still held, and retransmitted until node 2 has it
  }
  SECTION("AuthenticatedLink over ReliableLink (the other order)") {
    using Bottom =
        pods::net::ReliableLink<AuthWire, Outbox<pods::net::ReliableLinkMessage<AuthWire>>,
                                pods::ManualClock>;
    Outbox<pods::net::ReliableLinkMessage<AuthWire>> out;
    Bottom bottom(out, clock);
    AuthenticatedLink<Numbered, NumberedCodec, Bottom> top(bottom, 1, LinkKeys::derived(cluster));
    top.send(2, Numbered{0, 1});
    REQUIRE(bottom.buffered(2) == 1);
    bottom.receive(2, pods::net::ReliableAck{0, 0, 1, 0});  // unauthenticated: accepted
    CHECK(bottom.buffered(2) == 0);                         // forgotten, never delivered to node 2
  }
}

namespace {

using Endpoint = pods::sim::Network<AuthWire>::Endpoint;
using SimStack = Stack<Endpoint, pods::sim::NodeClock>;

// A node of the stack: numbered messages to every peer through ReliableLink over
// AuthenticatedLink over the lossy network. It records what the authenticated layer accepted.
struct StackNode {
  StackNode(const pods::sim::NodeContext<AuthWire>& ctx, std::vector<NodeId> peers,
            LinkChecker& checker,
            std::set<std::tuple<NodeId, NodeId, std::uint64_t, std::uint64_t>>& accepted)
      : ctx(ctx),
        peers(std::move(peers)),
        checker(checker),
        accepted(accepted),
        auth(ctx.endpoint, ctx.id, LinkKeys::derived(cluster), {.incarnation = ctx.incarnation}),
        link(auth, ctx.clock,
             {.incarnation = ctx.incarnation,
              .window = 16,
              .capacity = 32,
              .retransmit_after = 40ms,
              .max_retransmit_after = 320ms}) {
    checker.started(ctx.id, ctx.incarnation, now());
    auth.on_receive([this](NodeId from, RWire m) { link.receive(from, std::move(m)); });
    link.on_receive([this](NodeId from, Numbered m) {
      this->checker.delivered(this->ctx.id, this->ctx.incarnation, from, m);
    });
  }
  std::int64_t now() const { return pods::to_nanoseconds(ctx.clock.base().now()); }
  void receive(NodeId from, AuthWire m) {
    const auto key = std::make_tuple(from, ctx.id, m.incarnation, m.counter);
    const auto before = auth.stats().delivered;
    auth.receive(from, std::move(m));
    if (auth.stats().delivered != before && !accepted.insert(key).second) {
      checker_violation = true;  // the authenticated layer accepted one message twice
    }
  }
  void tick() {
    link.tick();
    links_test::send_numbered(link, checker, ctx.id, ctx.incarnation, peers, count, 60, now());
  }
  auto next_deadline() const { return link.next_deadline(); }

  pods::sim::NodeContext<AuthWire> ctx;
  std::vector<NodeId> peers;
  LinkChecker& checker;
  std::set<std::tuple<NodeId, NodeId, std::uint64_t, std::uint64_t>>& accepted;
  AuthOf<Endpoint> auth;
  SimStack link;
  std::map<NodeId, std::uint64_t> count;
  bool checker_violation = false;
};

// What Mallory has seen on the wire: every message the network delivered.
struct Tap {
  std::vector<std::pair<NodeId, AuthWire>> seen;  // (to, message)
};

}  // namespace

TEST_CASE(
    "The stack on sim::Network with 30 % loss, 10 % duplication, reordering and an attacker "
    "replaying, tampering and forging: exactly once, in order, every attack dropped "
    "(PODS_SEEDS seeds, default 20)",
    "[net][authenticated_link][reliable_link][sim]") {
  const std::uint64_t seeds = links_test::seeds(20);
  AuthenticatedLinkStats total;
  for (std::uint64_t seed = 1; seed <= seeds; ++seed) {
    pods::sim::Simulation sim(seed);
    pods::sim::Network<AuthWire> net(
        sim, {.loss = 0.3, .duplicate = 0.1, .min_delay = 1ms, .max_delay = 20ms});
    LinkChecker checker;
    std::set<std::tuple<NodeId, NodeId, std::uint64_t, std::uint64_t>> accepted;
    std::vector<NodeId> ids{1, 2, 3};
    Tap tap;
    pods::sim::Cluster<StackNode, AuthWire> cluster(
        net, [&](const pods::sim::NodeContext<AuthWire>& ctx) {
          return std::make_unique<StackNode>(ctx, ids, checker, accepted);
        });
    for (NodeId id : ids)
      cluster.add(id);
    // Mallory: every 7 ms she picks one of the last 256 messages she saw on the wire and
    // injects, spoofing its sender's address, a replay of it, a copy with one byte changed, or
    // a forgery with a fresh counter and incarnation.
    pods::Random mallory(seed ^ 0x6d616c6c6f7279ULL);
    std::uint64_t injected = 0;
    std::function<void()> attack = [&] {
      if (sim.now().time_since_epoch() > 5s) return;
      sim.schedule(7ms, attack);
      if (tap.seen.empty()) return;
      auto [to, m] = tap.seen[mallory.below(tap.seen.size())];
      const NodeId from = m.sender;
      switch (mallory.below(3)) {
        case 0:  // replay as is
          break;
        case 1:  // tamper one byte of the payload or the MAC
          if (!m.payload.empty() && mallory.chance(0.5)) {
            m.payload[mallory.below(m.payload.size())] ^= std::byte{0x10};
          } else {
            m.mac[mallory.below(32)] ^= std::byte{0x01};
          }
          break;
        default:  // forge: a fresh counter and incarnation, but she has no key
          m.counter += 1000000;
          m.incarnation += 1;
          break;
      }
      ++injected;
      net.endpoint(from).send(to, std::move(m));
    };
    sim.schedule(5ms, attack);
    // The tap: each node's network handler records what arrives before the node gets it.
    for (NodeId id : ids) {
      net.on_deliver(id, [&, id](NodeId from, AuthWire m) {
        tap.seen.emplace_back(id, m);
        if (tap.seen.size() > 256) tap.seen.erase(tap.seen.begin());
        if (StackNode* n = cluster.node(id)) {
          n->receive(from, std::move(m));
          cluster.wake(id);
        }
      });
    }
    auto settled = [&] {
      for (NodeId id : ids) {
        StackNode* n = cluster.node(id);
        for (NodeId p : ids)
          if (p != id && (n->count[p] < 60 || n->link.buffered(p) != 0)) return false;
      }
      return sim.now().time_since_epoch() > 5s;
    };
    const bool done = sim.run_until(settled, 120s);
    INFO("seed " << seed);
    for (const auto& v : checker.violations())
      UNSCOPED_INFO(v);
    REQUIRE(checker.violations().empty());
    REQUIRE(done);
    REQUIRE(checker.deliveries() == 3 * 2 * 60);
    for (NodeId id : ids) {
      StackNode* n = cluster.node(id);
      REQUIRE_FALSE(n->checker_violation);
      const AuthenticatedLinkStats st = n->auth.stats();
      total.replayed += st.replayed;
      total.bad_mac += st.bad_mac;
      total.too_old += st.too_old;
      total.delivered += st.delivered;
    }
    REQUIRE(injected > 0);
  }
  CHECK(total.replayed > 0);
  CHECK(total.bad_mac > 0);
  std::cout << "reliable over authenticated link, " << seeds
            << " seeds with an attacker: " << total.delivered << " authentic deliveries, "
            << total.replayed << " replays (network duplicates and injected), " << total.bad_mac
            << " bad MACs, " << total.too_old << " below the window\n";
}

// ---- The stack on TCP ----------------------------------------------------------------------

#include <pods/net/tcp_transport.hpp>

#include <condition_variable>
#include <mutex>

namespace {

using Tcp = pods::net::TcpTransport<AuthWire, AuthenticatedLinkCodec>;
using TcpStack = Stack<Tcp, pods::SteadyClock>;

// One process of the TCP test: ReliableLink over AuthenticatedLink over a TcpTransport. The
// links are thread-compatible, so the transport's I/O thread and the test thread take `mu`.
struct TcpNode {
  TcpNode(NodeId id, std::uint64_t incarnation, std::mutex& mu, std::condition_variable& cv,
          LinkChecker& checker)
      : id(id),
        incarnation(incarnation),
        tcp(id),
        auth(tcp, id, LinkKeys::derived(cluster), {.incarnation = incarnation}),
        link(
            auth, pods::SteadyClock{},
            {.incarnation = incarnation, .retransmit_after = 50ms, .max_retransmit_after = 400ms}) {
    checker.started(id, incarnation, now());
    link.on_receive([&checker, id, incarnation](NodeId from, Numbered m) {
      checker.delivered(id, incarnation, from, m);
    });
    auth.on_receive([this](NodeId from, RWire m) { link.receive(from, std::move(m)); });
    tcp.on_receive([this, &mu, &cv](NodeId from, AuthWire m) {
      {
        std::lock_guard<std::mutex> lock(mu);
        auth.receive(from, std::move(m));
      }
      cv.notify_all();
    });
  }
  ~TcpNode() { tcp.stop(); }
  static std::int64_t now() { return pods::to_nanoseconds(pods::SteadyClock::now()); }

  NodeId id;
  std::uint64_t incarnation;
  Tcp tcp;
  AuthOf<Tcp> auth;
  TcpStack link;
  std::map<NodeId, std::uint64_t> count;
};

}  // namespace

TEST_CASE(
    "The stack on TcpTransport over 127.0.0.1: exactly once and in order both ways, and a "
    "restarted peer gets what was not acknowledged",
    "[net][authenticated_link][reliable_link][tcp][threads]") {
  std::mutex mu;
  std::condition_variable cv;
  LinkChecker checker;
  auto a = std::make_unique<TcpNode>(1, 1, mu, cv, checker);
  auto b = std::make_unique<TcpNode>(2, 1, mu, cv, checker);
  a->tcp.set_peer(2, "127.0.0.1", b->tcp.local_port());
  b->tcp.set_peer(1, "127.0.0.1", a->tcp.local_port());
  a->tcp.start();
  b->tcp.start();

  // Drives both nodes from this thread: sends up to `quota` to each other, ticks, and waits on
  // the condition variable (woken by every arrival, and at least every 5 ms for the timers)
  // until `done` holds or the guard deadline passes.
  auto drive = [&](std::uint64_t quota, auto done) {
    const auto guard = std::chrono::steady_clock::now() + 30s;
    std::unique_lock<std::mutex> lock(mu);
    while (!done()) {
      if (std::chrono::steady_clock::now() > guard) return false;
      for (TcpNode* n : {a.get(), b.get()}) {
        n->link.tick();
        links_test::send_numbered(n->link, checker, n->id, n->incarnation, {1, 2}, n->count, quota,
                                  TcpNode::now());
      }
      cv.wait_for(lock, 5ms);
    }
    return true;
  };
  auto all_acknowledged = [&](std::uint64_t quota) {
    return [&, quota] {
      return a->count[2] == quota && b->count[1] == quota && a->link.buffered(2) == 0 &&
             b->link.buffered(1) == 0;
    };
  };

  REQUIRE(drive(500, all_acknowledged(500)));
  {
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(checker.violations().empty());
    CHECK(checker.missing(1, 1, 2, 1) == 0);
    CHECK(checker.missing(2, 1, 1, 1) == 0);
    CHECK(checker.deliveries() == 1000);
  }

  // Node 2 stops with messages from node 1 on their way; node 1 keeps sending. A new
  // incarnation of node 2 on a new port takes over.
  {
    std::lock_guard<std::mutex> lock(mu);
    for (int i = 0; i < 50; ++i)
      links_test::send_numbered(a->link, checker, 1, 1, {1, 2}, a->count, 600, TcpNode::now());
  }
  b.reset();
  {
    std::lock_guard<std::mutex> lock(mu);  // the checker is shared with node 1's I/O thread
    b = std::make_unique<TcpNode>(2, 2, mu, cv, checker);
  }
  b->tcp.set_peer(1, "127.0.0.1", a->tcp.local_port());
  a->tcp.set_peer(2, "127.0.0.1", b->tcp.local_port());
  b->tcp.start();
  REQUIRE(drive(600, [&] {
    return a->count[2] == 600 && a->link.buffered(2) == 0 && b->count[1] == 600 &&
           b->link.buffered(1) == 0;
  }));
  std::lock_guard<std::mutex> lock(mu);
  for (const auto& v : checker.violations())
    UNSCOPED_INFO(v);
  REQUIRE(checker.violations().empty());
  CHECK(checker.missing(1, 1, 2, 2) == 0);  // everything node 1 sent after node 2 returned
  CHECK(checker.missing(2, 2, 1, 1) == 0);
  CHECK(a->link.stats().peer_restarts == 1);
  std::cout << "stack over TCP: " << checker.deliveries() << " deliveries, "
            << a->link.stats().retransmissions << " retransmissions by node 1\n";
}

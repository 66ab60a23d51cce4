// Loopback tests of TcpTransport: real sockets on 127.0.0.1, ports chosen by the OS. Every
// wait is on a condition with a generous deadline that only guards against a hang: the test
// asserts the condition it waited for.
#include <pods/net/tcp_transport.hpp>
#include <pods/policy/wire.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct Msg {
  std::uint32_t stream = 0;
  std::uint64_t seq = 0;
  std::string body;
  friend bool operator==(const Msg&, const Msg&) = default;
};

// A version byte, then the fields, little-endian through pods::wire.
struct MsgCodec {
  void encode(const Msg& m, pods::Buffer& out) const {
    pods::wire::Writer w(out);
    w.u8(1);
    w.u32(m.stream);
    w.u64(m.seq);
    w.string(m.body);
  }
  Msg decode(std::span<const std::byte> bytes) const {
    pods::wire::Reader r(bytes, "test message");
    if (r.u8() != 1) r.fail(0, "unknown version");
    Msg m;
    m.stream = r.u32();
    m.seq = r.u64();
    m.body = r.string();
    r.expect_end();
    return m;
  }
};

using Transport = pods::net::TcpTransport<Msg, MsgCodec>;
static_assert(pods::Transport<Transport, Msg>);
static_assert(pods::Codec<MsgCodec, Msg>);

constexpr auto deadline = 30s;  // a guard against a hang, never a synchronisation

// What one node received and was told, with a condition variable the waits use.
struct Inbox {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<pods::NodeId, Msg>> got;
  std::vector<pods::net::TcpEvent> events;

  void add(pods::NodeId from, Msg m) {
    {
      std::lock_guard lock(mu);
      got.emplace_back(from, std::move(m));
    }
    cv.notify_all();
  }
  void event(const pods::net::TcpEvent& e) {
    {
      std::lock_guard lock(mu);
      events.push_back(e);
    }
    cv.notify_all();
  }
  // Waits until pred() holds (pred runs under the inbox lock, re-checked at every message and
  // event) and returns whether it does.
  template <class Pred>
  bool wait(Pred pred, std::chrono::nanoseconds limit = deadline) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, limit, pred);
  }
  std::size_t size() {
    std::lock_guard lock(mu);
    return got.size();
  }
  std::size_t count(pods::net::TcpEvent::Kind kind) {
    std::lock_guard lock(mu);
    std::size_t n = 0;
    for (const auto& e : events)
      n += e.kind == kind;
    return n;
  }
  std::vector<std::pair<pods::NodeId, Msg>> messages() {
    std::lock_guard lock(mu);
    return got;
  }
};

// Creates (not started) a transport for `id` whose handlers fill `inbox`.
std::unique_ptr<Transport> make_node(pods::NodeId id, Inbox& inbox,
                                     pods::net::TcpOptions options = {}) {
  auto t = std::make_unique<Transport>(id, std::move(options));
  t->on_receive([&inbox](pods::NodeId from, Msg m) { inbox.add(from, std::move(m)); });
  t->on_event([&inbox](const pods::net::TcpEvent& e) { inbox.event(e); });
  return t;
}

// Tells each of two transports where the other listens.
void introduce(Transport& a, Transport& b) {
  a.set_peer(b.self(), "127.0.0.1", b.local_port());
  b.set_peer(a.self(), "127.0.0.1", a.local_port());
}

// Sends until accepted, yielding while the queue is full; returns how often it was full.
std::size_t send_until_accepted(Transport& t, pods::NodeId to, const Msg& m) {
  std::size_t full = 0;
  for (;;) {
    const auto r = t.send(to, m);
    if (r) return full;
    REQUIRE(r.error() == pods::Errc::full);
    ++full;
    std::this_thread::yield();
  }
}

// Checks that the messages of each stream from `from` are 0, 1, 2, ... `per_stream` - 1.
void check_in_order(const std::vector<std::pair<pods::NodeId, Msg>>& got, pods::NodeId from,
                    std::uint32_t streams, std::uint64_t per_stream) {
  std::map<std::uint32_t, std::uint64_t> next;
  for (const auto& [who, m] : got) {
    REQUIRE(who == from);
    REQUIRE(m.stream < streams);
    REQUIRE(m.seq == next[m.stream]);
    ++next[m.stream];
  }
  for (std::uint32_t s = 0; s < streams; ++s)
    CHECK(next[s] == per_stream);
}

// Returns a port on 127.0.0.1 that nothing listens on (bound by the OS, then released).
std::uint16_t closed_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
  return acceptor.local_endpoint().port();
}

}  // namespace

TEST_CASE("tcp: per-peer order under concurrent senders, both directions", "[tcp][threads]") {
  Inbox at_a, at_b;
  auto a = make_node(1, at_a);
  auto b = make_node(2, at_b);
  introduce(*a, *b);
  a->start();
  b->start();

  constexpr std::uint32_t a_streams = 4, b_streams = 2;
  constexpr std::uint64_t per_stream = 5000;
  std::vector<std::thread> senders;
  for (std::uint32_t s = 0; s < a_streams; ++s) {
    senders.emplace_back([&, s] {
      for (std::uint64_t i = 0; i < per_stream; ++i)
        send_until_accepted(*a, 2, Msg{s, i, "from a"});
    });
  }
  for (std::uint32_t s = 0; s < b_streams; ++s) {
    senders.emplace_back([&, s] {
      for (std::uint64_t i = 0; i < per_stream; ++i)
        send_until_accepted(*b, 1, Msg{s, i, "from b"});
    });
  }
  for (auto& t : senders)
    t.join();

  REQUIRE(at_b.wait([&] { return at_b.got.size() == a_streams * per_stream; }));
  REQUIRE(at_a.wait([&] { return at_a.got.size() == b_streams * per_stream; }));
  check_in_order(at_b.messages(), 1, a_streams, per_stream);
  check_in_order(at_a.messages(), 2, b_streams, per_stream);

  const pods::net::TcpStats sa = a->stats(), sb = b->stats();
  CHECK(sa.frames_sent == a_streams * per_stream);
  CHECK(sb.frames_received == a_streams * per_stream);
  CHECK(sa.frames_received == b_streams * per_stream);
  CHECK(sa.bytes_sent == sb.bytes_received);
  CHECK(sa.batches_sent <= sa.frames_sent);
  // Exactly one connection between the two: node 1 dialed, node 2 accepted.
  CHECK(sa.connections_dialed == 1);
  CHECK(sa.connections_accepted == 0);
  CHECK(sb.connections_accepted == 1);
  CHECK(sb.connections_dialed == 0);
  CHECK(sa.corrupt_frames + sb.corrupt_frames == 0);
  CHECK(sa.dropped_in_flight + sb.dropped_in_flight == 0);
  a->stop();
  b->stop();
}

TEST_CASE("tcp: a restarted peer on a new port is found again; queued messages reach it",
          "[tcp][threads]") {
  pods::net::TcpOptions fast;
  fast.reconnect_min = 1ms;
  fast.reconnect_max = 20ms;

  SECTION("the accepting (higher-id) node restarts; the dialer is told its new port") {
    Inbox at_a, at_b;
    auto a = make_node(1, at_a, fast);
    auto b = make_node(2, at_b, fast);
    introduce(*a, *b);
    a->start();
    b->start();
    REQUIRE(a->send(2, Msg{0, 0, "before"}));
    REQUIRE(at_b.wait([&] { return at_b.got.size() == 1; }));

    b->stop();
    b.reset();
    REQUIRE(at_a.wait([&] { return !a->connected(2); }));
    for (std::uint64_t i = 1; i <= 100; ++i)
      REQUIRE(a->send(2, Msg{0, i, "while down"}));
    CHECK(a->queued_approx(2) == 100);
    // The dialer keeps retrying the old port and fails.
    REQUIRE(at_a.wait([&] {
      std::size_t n = 0;
      for (const auto& e : at_a.events)
        n += e.kind == pods::net::TcpEvent::Kind::dial_failed;
      return n >= 2;
    }));

    Inbox at_b2;
    auto b2 = make_node(2, at_b2, fast);
    b2->set_peer(1, "127.0.0.1", a->local_port());
    b2->start();
    a->set_peer(2, "127.0.0.1", b2->local_port());
    REQUIRE(at_b2.wait([&] { return at_b2.got.size() == 100; }));
    const auto got = at_b2.messages();
    for (std::uint64_t i = 0; i < 100; ++i) {
      REQUIRE(got[i].first == 1);
      REQUIRE(got[i].second.seq == i + 1);
    }
    REQUIRE(b2->send(1, Msg{0, 0, "back"}));
    REQUIRE(at_a.wait([&] { return !at_a.got.empty(); }));
    CHECK(at_a.got.front().second.body == "back");
    CHECK(a->stats().dial_attempts >= 3);
    CHECK(a->stats().connections_dialed == 2);
  }

  SECTION("the dialing (lower-id) node restarts; it dials the survivor, which sends its queue") {
    Inbox at_a, at_b;
    auto a = make_node(1, at_a, fast);
    auto b = make_node(2, at_b, fast);
    introduce(*a, *b);
    a->start();
    b->start();
    REQUIRE(b->send(1, Msg{0, 0, "before"}));
    REQUIRE(at_a.wait([&] { return at_a.got.size() == 1; }));

    a->stop();
    a.reset();
    REQUIRE(at_b.wait([&] { return !b->connected(1); }));
    for (std::uint64_t i = 1; i <= 100; ++i)
      REQUIRE(b->send(1, Msg{0, i, "while down"}));

    Inbox at_a2;
    auto a2 = make_node(1, at_a2, fast);
    a2->set_peer(2, "127.0.0.1", b->local_port());  // b needs no new address: 1 dials 2
    a2->start();
    REQUIRE(at_a2.wait([&] { return at_a2.got.size() == 100; }));
    const auto got = at_a2.messages();
    for (std::uint64_t i = 0; i < 100; ++i)
      REQUIRE(got[i].second.seq == i + 1);
    CHECK(b->stats().connections_accepted == 2);
  }
}

TEST_CASE("tcp: a peer that never comes up: the queue bound holds, dials back off",
          "[tcp][threads]") {
  pods::net::TcpOptions options;
  options.max_queue_messages = 100;
  options.reconnect_min = 1ms;
  options.reconnect_max = 16ms;
  Inbox inbox;
  auto a = make_node(1, inbox, options);
  a->set_peer(2, "127.0.0.1", closed_port());
  a->start();
  std::size_t accepted = 0, full = 0;
  for (int i = 0; i < 250; ++i) {
    const auto r = a->send(2, Msg{0, static_cast<std::uint64_t>(i), std::string(100, 'x')});
    if (r) {
      ++accepted;
    } else {
      CHECK(r.error() == pods::Errc::full);
      ++full;
    }
  }
  CHECK(accepted == 100);
  CHECK(full == 150);
  CHECK(a->queued_approx(2) == 100);
  CHECK(a->stats().queue_full == 150);
  REQUIRE(inbox.wait([&] { return a->stats().dial_attempts >= 5; }));
  CHECK(inbox.count(pods::net::TcpEvent::Kind::dial_failed) >= 4);
  CHECK(a->stats().connections_dialed == 0);
  CHECK(a->queued_approx(2) == 100);  // still bounded after the retries
  a->stop();
  CHECK(a->stats().dropped_on_stop == 100);
  CHECK(a->send(2, Msg{}) == pods::Errc::closed);
}

TEST_CASE("tcp: bad options and arguments throw std::invalid_argument naming them", "[tcp]") {
  auto options_with = [](auto change) {
    pods::net::TcpOptions o;
    change(o);
    return o;
  };
  CHECK_THROWS_MATCHES(Transport(1, options_with([](auto& o) { o.max_queue_messages = 0; })),
                       std::invalid_argument,
                       Catch::Message("TcpOptions::max_queue_messages must be positive"));
  CHECK_THROWS_MATCHES(Transport(1, options_with([](auto& o) { o.max_frame_bytes = 0; })),
                       std::invalid_argument,
                       Catch::Message("TcpOptions::max_frame_bytes must be between 1 and "
                                      "4294967295"));
  CHECK_THROWS_MATCHES(Transport(1, options_with([](auto& o) { o.max_queue_bytes = 100; })),
                       std::invalid_argument,
                       Catch::Message("TcpOptions::max_queue_bytes must hold at least one frame "
                                      "of max_frame_bytes"));
  CHECK_THROWS_MATCHES(Transport(1, options_with([](auto& o) { o.reconnect_min = 0ms; })),
                       std::invalid_argument,
                       Catch::Message("TcpOptions::reconnect_min must be positive"));
  CHECK_THROWS_MATCHES(Transport(1, options_with([](auto& o) { o.reconnect_max = 1ms; })),
                       std::invalid_argument,
                       Catch::Message("TcpOptions::reconnect_max must not be below reconnect_min"));
  CHECK_THROWS_MATCHES(Transport(1, options_with([](auto& o) { o.handshake_timeout = 0ms; })),
                       std::invalid_argument,
                       Catch::Message("TcpOptions::handshake_timeout must be positive"));
  CHECK_THROWS_MATCHES(Transport(1, options_with([](auto& o) { o.read_chunk = 0; })),
                       std::invalid_argument,
                       Catch::Message("TcpOptions::read_chunk must be positive"));
  CHECK_THROWS_MATCHES(Transport(1, options_with([](auto& o) { o.listen_host = "localhost"; })),
                       std::invalid_argument,
                       Catch::Message("TcpOptions::listen_host: \"localhost\" is not an IP "
                                      "address"));

  Transport t(1, options_with([](auto& o) { o.max_frame_bytes = 64; }));
  CHECK(t.local_port() != 0);
  CHECK_THROWS_MATCHES(t.set_peer(1, "127.0.0.1", 1), std::invalid_argument,
                       Catch::Message("TcpTransport::set_peer: id must not be this node's own "
                                      "id"));
  t.set_peer(2, "127.0.0.1", closed_port());
  CHECK_THROWS_MATCHES(t.send(2, Msg{0, 0, std::string(100, 'x')}), std::invalid_argument,
                       Catch::Message("TcpTransport::send: the message encodes to 117 bytes, "
                                      "more than max_frame_bytes (64)"));
  CHECK(t.send(3, Msg{}) == pods::Errc::failed);  // set_peer never named node 3
  CHECK(t.stats().unknown_destination == 1);
  t.start();
  CHECK_THROWS_AS(t.start(), std::logic_error);
  CHECK_THROWS_AS(t.on_receive([](pods::NodeId, Msg) {}), std::logic_error);
  t.stop();
  t.stop();  // idempotent
}

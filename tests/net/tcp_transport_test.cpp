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
    return count_locked(kind);
  }
  // The same, for a wait() predicate, which runs under the lock already.
  std::size_t count_locked(pods::net::TcpEvent::Kind kind) const {
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

// Returns true when the messages from `from` of each of `streams` streams are exactly 0, 1, 2,
// ... per_stream - 1, in that order: nothing lost, duplicated or reordered.
bool in_order(const std::vector<std::pair<pods::NodeId, Msg>>& got, pods::NodeId from,
              std::uint32_t streams, std::uint64_t per_stream) {
  std::map<std::uint32_t, std::uint64_t> next;
  for (const auto& [who, m] : got) {
    if (who != from || m.stream >= streams || m.seq != next[m.stream]) return false;
    ++next[m.stream];
  }
  for (std::uint32_t s = 0; s < streams; ++s) {
    if (next[s] != per_stream) return false;
  }
  return true;
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
  CHECK(in_order(at_b.messages(), 1, a_streams, per_stream));
  CHECK(in_order(at_a.messages(), 2, b_streams, per_stream));

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
    REQUIRE(
        at_a.wait([&] { return at_a.count_locked(pods::net::TcpEvent::Kind::dial_failed) >= 2; }));

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

namespace {

// A hand-driven peer: a plain Asio socket that writes raw bytes, as a broken or hostile node
// would.
struct RawPeer {
  asio::io_context io;
  asio::ip::tcp::socket socket{io};

  RawPeer() = default;
  explicit RawPeer(std::uint16_t port) {
    socket.connect({asio::ip::make_address("127.0.0.1"), port});
  }
  void write(const pods::Buffer& bytes) { asio::write(socket, asio::buffer(bytes)); }
  pods::net::Handshake read_handshake() {
    std::array<std::byte, pods::net::handshake_bytes> h{};
    asio::read(socket, asio::buffer(h));
    return pods::net::decode_handshake(h);
  }
  // Reads until the other side closes; returns the bytes read then, or nullopt when it is
  // still open at the deadline.
  std::optional<std::size_t> wait_closed() {
    std::array<std::byte, 4096> buf{};
    std::size_t total = 0;
    bool closed = false;
    std::function<void()> next = [&] {
      socket.async_read_some(asio::buffer(buf), [&](const asio::error_code& ec, std::size_t n) {
        total += n;
        if (ec) {
          closed = true;
          return;
        }
        next();
      });
    };
    next();
    io.restart();
    io.run_for(deadline);
    if (!closed) return std::nullopt;
    return total;
  }
};

pods::Buffer hello(pods::NodeId from, pods::NodeId to, std::uint16_t version = 1,
                   std::uint32_t application = 0) {
  pods::Buffer out;
  pods::net::encode_handshake({version, application, from, to}, out);
  return out;
}

pods::Buffer frame_of(const Msg& m) {
  pods::Buffer out;
  const std::size_t start = pods::net::begin_frame(out);
  MsgCodec{}.encode(m, out);
  pods::net::end_frame(out, start);
  return out;
}

void append(pods::Buffer& to, const pods::Buffer& more) {
  to.insert(to.end(), more.begin(), more.end());
}

// Returns the details of the events of `kind` seen so far.
std::vector<std::string> details(Inbox& inbox, pods::net::TcpEvent::Kind kind) {
  std::lock_guard lock(inbox.mu);
  std::vector<std::string> out;
  for (const auto& e : inbox.events) {
    if (e.kind == kind) out.push_back(e.detail);
  }
  return out;
}

// Starts node 2, which accepts node 1 (whose address it never needs).
std::unique_ptr<Transport> acceptor_node(Inbox& inbox, pods::net::TcpOptions options = {}) {
  auto b = make_node(2, inbox, std::move(options));
  b->set_peer(1, "127.0.0.1", closed_port());
  b->start();
  return b;
}

}  // namespace

TEST_CASE("tcp: bad frames close the connection, are counted, never reach the handler",
          "[tcp][threads]") {
  using Kind = pods::net::TcpEvent::Kind;
  Inbox at_b;
  pods::net::TcpOptions options;
  options.max_frame_bytes = 1024;
  auto b = acceptor_node(at_b, options);
  RawPeer raw(b->local_port());
  raw.write(hello(1, 2));
  const pods::net::Handshake reply = raw.read_handshake();
  CHECK(reply == pods::net::Handshake{1, 0, 2, 1});
  REQUIRE(at_b.wait([&] { return b->connected(1); }));

  pods::Buffer wire = frame_of(Msg{0, 0, "good"});
  const std::size_t first = wire.size();
  std::string reason;
  Kind kind = Kind::corrupt_frame;

  SECTION("a flipped byte") {
    pods::Buffer bad = frame_of(Msg{0, 1, "bad"});
    bad.back() ^= std::byte{0x01};
    append(wire, bad);
    append(wire, frame_of(Msg{0, 2, "after the bad one"}));
    reason = "checksum mismatch";
  }
  SECTION("a frame claiming 4 GiB: refused from its 8-byte header alone") {
    append(wire, pods::Buffer{std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF}, std::byte{0xFF},
                              std::byte{0}, std::byte{0}, std::byte{0}, std::byte{0}});
    reason = "a frame claims 4294967295 bytes, the maximum is 1024";
  }
  SECTION("bytes the codec rejects") {
    pods::Buffer bad;
    const std::size_t start = pods::net::begin_frame(bad);
    bad.push_back(std::byte{9});  // MsgCodec knows version 1 only
    pods::net::end_frame(bad, start);
    append(wire, bad);
    append(wire, frame_of(Msg{0, 2, "after the bad one"}));
    kind = Kind::rejected_message;
    reason = "rejected by the codec: corrupt data in test message at offset 0: unknown version";
  }
  raw.write(wire);
  const auto read_back = raw.wait_closed();
  REQUIRE(read_back.has_value());
  CHECK(*read_back == 0);
  REQUIRE(at_b.wait([&] { return !b->connected(1); }));
  const auto seen = details(at_b, kind);
  REQUIRE(seen.size() == 1);
  INFO(seen[0]);
  CHECK(seen[0].find("frame from node 1 (127.0.0.1:") != std::string::npos);
  std::string at_offset = "offset ";
  at_offset += std::to_string(first);
  CHECK(seen[0].find(at_offset) != std::string::npos);
  CHECK(seen[0].find(reason) != std::string::npos);
  const auto got = at_b.messages();
  REQUIRE(got.size() == 1);
  CHECK(got[0].second.body == "good");
  const pods::net::TcpStats s = b->stats();
  CHECK(s.corrupt_frames + s.rejected_messages == 1);
  CHECK((kind == Kind::rejected_message ? s.rejected_messages : s.corrupt_frames) == 1);
  CHECK(s.frames_received == 1);
  CHECK(s.connections_closed == 1);
}

TEST_CASE("tcp: a truncated frame is counted and never delivered", "[tcp][threads]") {
  Inbox at_b;
  auto b = acceptor_node(at_b);
  {
    RawPeer raw(b->local_port());
    raw.write(hello(1, 2));
    raw.read_handshake();
    pods::Buffer wire = frame_of(Msg{0, 0, "whole"});
    pods::Buffer cut = frame_of(Msg{0, 1, "cut short"});
    cut.resize(cut.size() / 2);
    append(wire, cut);
    raw.write(wire);
  }  // the raw peer closes in the middle of the second frame
  REQUIRE(at_b.wait([&] { return b->stats().truncated_frames == 1 && !b->connected(1); }));
  const auto got = at_b.messages();
  REQUIRE(got.size() == 1);
  CHECK(got[0].second.body == "whole");
  REQUIRE(details(at_b, pods::net::TcpEvent::Kind::truncated_frame).size() == 1);
}

TEST_CASE("tcp: a handshake from an unexpected node, or a bad one, is closed and counted",
          "[tcp][threads]") {
  using Kind = pods::net::TcpEvent::Kind;
  struct Case {
    const char* name;
    pods::Buffer bytes;
    Kind kind;
  };
  pods::Buffer bad_magic = hello(1, 2);
  bad_magic[0] = std::byte{'X'};
  const std::vector<Case> cases = {
      {"a node not configured", hello(7, 2), Kind::unknown_node},
      {"a configured node with a higher id (it must accept, not dial)", hello(3, 2),
       Kind::unknown_node},
      {"a node meaning to reach another node", hello(1, 5), Kind::unknown_node},
      {"bytes that are not a handshake", bad_magic, Kind::bad_handshake},
      {"another frame format version", hello(1, 2, 2), Kind::bad_handshake},
      {"another application version", hello(1, 2, 1, 77), Kind::bad_handshake},
      {"silence past the handshake timeout", {}, Kind::bad_handshake},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Inbox at_b;
    pods::net::TcpOptions options;
    options.handshake_timeout = 50ms;
    auto b = make_node(2, at_b, options);
    b->set_peer(1, "127.0.0.1", closed_port());
    b->set_peer(3, "127.0.0.1", closed_port());
    b->start();
    RawPeer raw(b->local_port());
    if (!c.bytes.empty()) raw.write(c.bytes);
    const auto read_back = raw.wait_closed();
    REQUIRE(read_back.has_value());
    CHECK(*read_back == 0);  // no handshake came back
    REQUIRE(at_b.wait([&] { return at_b.count_locked(c.kind) == 1; }));
    const pods::net::TcpStats s = b->stats();
    CHECK((c.kind == Kind::unknown_node ? s.unknown_node_handshakes : s.bad_handshakes) == 1);
    CHECK(s.connections_accepted == 1);
    CHECK(s.connections_closed == 1);
    CHECK_FALSE(b->connected(1));
    CHECK(at_b.count(Kind::connected) == 0);
  }
}

TEST_CASE("tcp: the dialer refuses a node that is not the one it meant, and retries",
          "[tcp][threads]") {
  asio::io_context io;
  asio::ip::tcp::acceptor impostor(io, {asio::ip::make_address("127.0.0.1"), 0});
  pods::net::TcpOptions options;
  options.reconnect_min = 1ms;
  options.reconnect_max = 5ms;
  Inbox at_a;
  auto a = make_node(1, at_a, options);
  a->set_peer(2, "127.0.0.1", impostor.local_endpoint().port());
  a->start();
  for (int round = 0; round < 2; ++round) {
    RawPeer raw;
    bool accepted = false;
    impostor.async_accept(raw.socket, [&](const asio::error_code& ec) { accepted = !ec; });
    io.restart();
    io.run_for(deadline);
    REQUIRE(accepted);
    CHECK(raw.read_handshake() == pods::net::Handshake{1, 0, 1, 2});
    raw.write(hello(9, 1));  // "I am node 9"
    REQUIRE(raw.wait_closed().has_value());
  }
  REQUIRE(at_a.wait([&] { return a->stats().unknown_node_handshakes == 2; }));
  CHECK_FALSE(a->connected(2));
  CHECK(a->stats().connections_dialed == 2);
}

namespace {

// A codec that breaks the ordering rule on purpose: on decode it holds every even-numbered
// message back and hands it out after the next one, so the receiver sees 1, 0, 3, 2, ...
// (shared state: one instance per receiving transport).
struct ReorderingCodec {
  std::shared_ptr<std::optional<Msg>> held = std::make_shared<std::optional<Msg>>();
  void encode(const Msg& m, pods::Buffer& out) const { MsgCodec{}.encode(m, out); }
  Msg decode(std::span<const std::byte> bytes) const {
    Msg m = MsgCodec{}.decode(bytes);
    if (!*held) {
      *held = m;
      m.seq += 1;  // stands in for the next message; the held one follows it
      return m;
    }
    Msg out = **held;
    held->reset();
    return out;
  }
};

}  // namespace

TEST_CASE("tcp: the ordering check catches a transport that swaps neighbours", "[tcp][threads]") {
  using Reordering = pods::net::TcpTransport<Msg, ReorderingCodec>;
  static_assert(pods::Transport<Reordering, Msg>);
  Reordering a(1), b(2);
  Inbox at_b;
  b.on_receive([&](pods::NodeId from, Msg m) { at_b.add(from, std::move(m)); });
  a.set_peer(2, "127.0.0.1", b.local_port());
  b.set_peer(1, "127.0.0.1", a.local_port());
  a.start();
  b.start();
  constexpr std::uint64_t n = 1000;
  for (std::uint64_t i = 0; i < n; ++i)
    REQUIRE(a.send(2, Msg{0, i, ""}));
  REQUIRE(at_b.wait([&] { return at_b.got.size() == n; }));
  CHECK_FALSE(in_order(at_b.messages(), 1, 1, n));  // the same check that passes above
  a.stop();
  b.stop();
}

TEST_CASE("tcp: a slow reader: the send queue bound holds, then everything arrives in order",
          "[tcp][threads]") {
  pods::net::TcpOptions options;
  options.max_queue_messages = 64;
  Inbox at_a, at_b;
  auto a = make_node(1, at_a, options);
  auto b = std::make_unique<Transport>(2);
  std::mutex gate_mu;
  std::condition_variable gate_cv;
  bool open = false;
  b->on_receive([&](pods::NodeId from, Msg m) {
    std::unique_lock lock(gate_mu);
    gate_cv.wait(lock, [&] { return open; });  // the reader stalls until the test opens it
    lock.unlock();
    at_b.add(from, std::move(m));
  });
  introduce(*a, *b);
  a->start();
  b->start();
  REQUIRE(a->wait_connected(2, deadline));

  const std::string body(4096, 'q');
  std::uint64_t accepted = 0;
  std::size_t most_queued = 0;
  bool saw_full = false;
  // The reader holds its thread, so the socket buffers fill, then the send queue: send must
  // refuse rather than grow. The count before that is bounded by the kernel's buffers.
  while (!saw_full && accepted < 1'000'000) {
    const auto r = a->send(2, Msg{0, accepted, body});
    if (r) {
      ++accepted;
    } else {
      REQUIRE(r.error() == pods::Errc::full);
      saw_full = true;
    }
    most_queued = std::max(most_queued, a->queued_approx(2));
  }
  REQUIRE(saw_full);
  CHECK(most_queued <= 64);
  CHECK(a->queued_approx(2) <= 64);
  CHECK(a->stats().queue_full >= 1);
  {
    std::lock_guard lock(gate_mu);
    open = true;
  }
  gate_cv.notify_all();
  REQUIRE(at_b.wait([&] { return at_b.got.size() == accepted; }));
  CHECK(in_order(at_b.messages(), 1, 1, accepted));
  a->stop();
  b->stop();
}

TEST_CASE("tcp: stop() with messages in flight: returns, accounts for every message",
          "[tcp][threads]") {
  Inbox at_a, at_b;
  auto a = make_node(1, at_a);
  auto b = make_node(2, at_b);
  introduce(*a, *b);
  a->start();
  b->start();
  REQUIRE(a->wait_connected(2, deadline));
  const std::string body(1024, 's');
  std::uint64_t accepted = 0;
  for (std::uint64_t i = 0; i < 20000; ++i)
    accepted += a->send(2, Msg{0, i, body}).has_value();
  a->stop();  // while the batches are being written
  const pods::net::TcpStats s = a->stats();
  // Every accepted message was written, dropped with its failed batch, or dropped by stop.
  CHECK(s.frames_sent + s.dropped_in_flight + s.dropped_on_stop == accepted);
  CHECK(a->send(2, Msg{}) == pods::Errc::closed);
  REQUIRE(at_b.wait([&] { return !b->connected(1); }));
  b->stop();
  const std::size_t after_stop = at_b.size();
  // What arrived is a prefix of what was sent, in order.
  const auto got = at_b.messages();
  for (std::size_t i = 0; i < got.size(); ++i)
    REQUIRE(got[i].second.seq == i);
  // A batch cut by stop() may have partly arrived: it is counted in dropped_in_flight.
  CHECK(got.size() <= s.frames_sent + s.dropped_in_flight);
  CHECK(at_b.size() == after_stop);  // nothing is delivered after stop() returned
}

TEST_CASE("tcp: stop() from inside the handler: no delivery after it, no deadlock",
          "[tcp][threads]") {
  Inbox at_a;
  auto a = make_node(1, at_a);
  auto b = std::make_unique<Transport>(2);
  std::atomic<int> delivered{0};
  Transport* bp = b.get();
  b->on_receive([&](pods::NodeId, Msg) {
    if (++delivered == 10) bp->stop();
  });
  introduce(*a, *b);
  a->start();
  b->start();
  for (std::uint64_t i = 0; i < 1000; ++i)
    REQUIRE(a->send(2, Msg{0, i, ""}));
  REQUIRE(at_a.wait([&] { return !a->connected(2) && a->stats().frames_sent > 0; }));
  CHECK(delivered.load() == 10);
  CHECK(b->send(1, Msg{}) == pods::Errc::closed);
  b->stop();  // a second stop from another thread: returns
  b.reset();
  a->stop();
}

TEST_CASE("tcp: a throwing handler is counted and delivery goes on", "[tcp][threads]") {
  Inbox at_a, at_b;
  auto a = make_node(1, at_a);
  auto b = std::make_unique<Transport>(2);
  b->on_receive([&](pods::NodeId from, Msg m) {
    if (m.seq == 1) throw std::runtime_error("handler failed on 1");
    at_b.add(from, std::move(m));
  });
  b->on_event([&](const pods::net::TcpEvent& e) { at_b.event(e); });
  introduce(*a, *b);
  a->start();
  b->start();
  for (std::uint64_t i = 0; i < 3; ++i)
    REQUIRE(a->send(2, Msg{0, i, ""}));
  REQUIRE(at_b.wait([&] { return at_b.got.size() == 2; }));
  CHECK(at_b.got[1].second.seq == 2);
  CHECK(b->stats().handler_exceptions == 1);
  const auto seen = details(at_b, pods::net::TcpEvent::Kind::handler_exception);
  REQUIRE(seen.size() == 1);
  CHECK(seen[0] == "handler failed on 1");
  CHECK(b->connected(1));
}

TEST_CASE("tcp: a message to this node's own id comes back through on_receive", "[tcp][threads]") {
  Inbox inbox;
  auto a = make_node(1, inbox);
  a->start();
  REQUIRE(a->send(1, Msg{3, 4, "self"}));
  REQUIRE(inbox.wait([&] { return inbox.got.size() == 1; }));
  CHECK(inbox.got[0] == std::pair<pods::NodeId, Msg>{1, Msg{3, 4, "self"}});
}

TEST_CASE("tcp: runs on the user's io_context", "[tcp][threads]") {
  asio::io_context io;
  auto work = asio::make_work_guard(io);
  std::thread runner([&] { io.run(); });
  Inbox at_a, at_b;
  {
    Transport a(io, 1), b(io, 2);
    a.on_receive([&](pods::NodeId from, Msg m) { at_a.add(from, std::move(m)); });
    b.on_receive([&](pods::NodeId from, Msg m) { at_b.add(from, std::move(m)); });
    introduce(a, b);
    a.start();
    b.start();
    for (std::uint64_t i = 0; i < 500; ++i) {
      REQUIRE(a.send(2, Msg{0, i, "ab"}));
      REQUIRE(b.send(1, Msg{0, i, "ba"}));
    }
    REQUIRE(at_b.wait([&] { return at_b.got.size() == 500; }));
    REQUIRE(at_a.wait([&] { return at_a.got.size() == 500; }));
    CHECK(in_order(at_b.messages(), 1, 1, 500));
    CHECK(in_order(at_a.messages(), 2, 1, 500));
    a.stop();  // waits for the closing to run on the user's thread
    b.stop();
    CHECK(a.send(2, Msg{}) == pods::Errc::closed);
  }
  work.reset();
  runner.join();  // the context runs out of work: nothing of the transports is left in it
}

namespace {

// MsgCodec, except that it throws after writing part of a message whose body is "throw".
struct ThrowingCodec {
  void encode(const Msg& m, pods::Buffer& out) const {
    pods::wire::Writer w(out);
    w.u8(1);
    w.u32(m.stream);
    if (m.body == "throw") throw std::runtime_error("ThrowingCodec: refused");
    w.u64(m.seq);
    w.string(m.body);
  }
  Msg decode(std::span<const std::byte> bytes) const { return MsgCodec{}.decode(bytes); }
};

using ThrowingTransport = pods::net::TcpTransport<Msg, ThrowingCodec>;

}  // namespace

TEST_CASE("tcp: a codec that throws, an oversize or a refused message leaves no partial frame",
          "[tcp][threads]") {
  pods::net::TcpOptions options;
  options.max_frame_bytes = 64;
  options.max_queue_bytes = 100;
  ThrowingTransport a(1, options);
  Inbox at_b;
  ThrowingTransport b(2);
  b.on_receive([&](pods::NodeId from, Msg m) { at_b.add(from, std::move(m)); });
  b.on_event([&](const pods::net::TcpEvent& e) { at_b.event(e); });
  a.set_peer(2, "127.0.0.1", b.local_port());
  b.set_peer(1, "127.0.0.1", closed_port());

  // Queued while nothing is connected: every refusal must leave the queue as it was.
  REQUIRE(a.send(2, Msg{0, 0, "first"}));  // 8 + 22 bytes queued
  CHECK_THROWS_MATCHES(a.send(2, Msg{0, 1, "throw"}), std::runtime_error,
                       Catch::Message("ThrowingCodec: refused"));
  CHECK_THROWS_AS(a.send(2, Msg{0, 1, std::string(60, 'x')}), std::invalid_argument);
  // Fits max_frame_bytes (8 + 64 bytes) but not beside the first in max_queue_bytes.
  CHECK(a.send(2, Msg{0, 1, std::string(47, 'y')}) == pods::Errc::full);
  CHECK(a.stats().queue_full == 1);
  CHECK(a.queued_approx(2) == 1);
  REQUIRE(a.send(2, Msg{0, 1, "second"}));
  CHECK(a.queued_approx(2) == 2);

  a.start();
  b.start();
  using Kind = pods::net::TcpEvent::Kind;
  auto broken = [&] {  // a partial frame would surface as one of these
    return at_b.count_locked(Kind::corrupt_frame) + at_b.count_locked(Kind::rejected_message) > 0;
  };
  REQUIRE(at_b.wait([&] { return at_b.got.size() >= 2 || broken(); }));
  const auto got = at_b.messages();
  REQUIRE(got.size() == 2);
  CHECK(got[0].second == Msg{0, 0, "first"});
  CHECK(got[1].second == Msg{0, 1, "second"});
  // One more after the connection is up: the stream is still in step.
  REQUIRE(a.send(2, Msg{0, 2, "third"}));
  REQUIRE(at_b.wait([&] { return at_b.got.size() == 3; }));
  CHECK(at_b.messages()[2].second == Msg{0, 2, "third"});
  const pods::net::TcpStats s = b.stats();
  CHECK(s.corrupt_frames == 0);
  CHECK(s.rejected_messages == 0);
  CHECK(s.frames_received == 3);
  CHECK(a.stats().connections_closed == 0);
}

TEST_CASE("tcp: sends from inside on_receive (the I/O thread) arrive in order", "[tcp][threads]") {
  Inbox at_a;
  auto a = make_node(1, at_a);
  Transport b(2);
  std::atomic<std::uint64_t> refused{0};
  b.on_receive([&](pods::NodeId from, Msg m) {
    // Two replies per request, written from the I/O thread without a post.
    m.stream = 0;
    if (!b.send(from, m)) ++refused;
    m.stream = 1;
    if (!b.send(from, m)) ++refused;
  });
  introduce(*a, b);
  a->start();
  b.start();
  constexpr std::uint64_t n = 500;
  for (std::uint64_t i = 0; i < n; ++i)
    send_until_accepted(*a, 2, Msg{0, i, "echo"});
  REQUIRE(at_a.wait([&] { return at_a.got.size() == 2 * n; }));
  CHECK(refused.load() == 0);
  CHECK(in_order(at_a.messages(), 2, 2, n));
  b.stop();
}

TEST_CASE("tcp: one thread sending through two transports reaches each one's own peers", "[tcp]") {
  // Both transports are node 1; only the first knows node 2. A lookup cached across
  // transports would let the second queue for the first's peer.
  for (int round = 0; round < 3; ++round) {
    Transport first(1), second(1);
    first.set_peer(2, "127.0.0.1", closed_port());
    for (int i = 0; i < 4; ++i) {
      REQUIRE(first.send(2, Msg{}));
      CHECK(second.send(2, Msg{}) == pods::Errc::failed);
    }
    CHECK(first.queued_approx(2) == 4);
    CHECK(second.stats().unknown_destination == 4);
  }
  // A transport built where a destroyed one was (same id, maybe the same address) starts
  // with no peers.
  {
    Transport gone(1);
    gone.set_peer(2, "127.0.0.1", closed_port());
    REQUIRE(gone.send(2, Msg{}));
  }
  Transport fresh(1);
  CHECK(fresh.send(2, Msg{}) == pods::Errc::failed);
}

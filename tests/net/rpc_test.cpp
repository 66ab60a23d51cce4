#include <pods/net/rpc.hpp>
#include <pods/net/tcp_transport.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {
using pods::Errc;
using pods::NodeId;
using pods::Outcome;
using Message = pods::net::RpcMessage<std::string, std::string>;
using Wire = pods::Outbox<Message>;
using Client = pods::net::RpcClient<std::string, std::string, Wire, pods::ManualClock>;
using Server = pods::net::RpcServer<std::string, std::string, Wire>;
using Responder = Server::Responder;
using Request = pods::net::RpcRequest<std::string>;
using Response = pods::net::RpcResponse<std::string>;
using Codec = pods::net::RpcCodec<std::string, std::string, pods::StringCodec, pods::StringCodec>;

static_assert(pods::Transport<Wire, Message>);
static_assert(pods::Transport<pods::sim::Network<Message>::Endpoint, Message>);
static_assert(pods::Codec<Codec, Message>);

// Records each callback's tag and outcome, in the order they ran.
struct Log {
  std::vector<std::pair<int, Outcome<std::string>>> calls;
  Client::Callback callback(int tag) {
    return [this, tag](Outcome<std::string> r) { calls.emplace_back(tag, std::move(r)); };
  }
};

// A client on an Outbox and a ManualClock, and a log of its callbacks.
struct Setup {
  explicit Setup(pods::net::RpcClientOptions options = {}, std::chrono::nanoseconds start = {})
      : clock(start), client(wire, clock, options) {}
  Wire wire;
  pods::ManualClock clock;
  Log log;
  Client client;
};

Message response(std::uint64_t id, Outcome<std::string> result, std::uint64_t session = 0) {
  return Response{session, id, std::move(result)};
}

// Returns the requests recorded in `wire`, clearing it.
std::vector<std::pair<NodeId, Request>> requests(Wire& wire) {
  std::vector<std::pair<NodeId, Request>> out;
  for (auto& sent : wire.take()) {
    REQUIRE(pods::net::is_request(sent.message));
    out.emplace_back(sent.to, std::get<Request>(sent.message));
  }
  return out;
}
}  // namespace

TEST_CASE("RpcClient: numbers requests per peer and sends them with its session", "[rpc]") {
  Setup setup({.session = 77});
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", log.callback(1)) == Outcome<std::uint64_t>(1));
  REQUIRE(client.call(2, "b", log.callback(2)) == Outcome<std::uint64_t>(2));
  REQUIRE(client.call(3, "c", log.callback(3)) == Outcome<std::uint64_t>(1));  // its own ids
  const auto sent = requests(wire);
  REQUIRE(sent.size() == 3);
  CHECK(sent[0] == std::pair<NodeId, Request>(2, Request{77, 1, "a"}));
  CHECK(sent[1] == std::pair<NodeId, Request>(2, Request{77, 2, "b"}));
  CHECK(sent[2] == std::pair<NodeId, Request>(3, Request{77, 1, "c"}));
  CHECK(client.in_flight(2) == 2);
  CHECK(client.in_flight(3) == 1);
  CHECK(client.in_flight() == 3);
  CHECK(client.stats().calls == 3);
  CHECK(log.calls.empty());

  client.receive(3, response(1, std::string("C"), 77));
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0] == std::pair<int, Outcome<std::string>>(3, std::string("C")));
  CHECK(client.in_flight(3) == 0);
  CHECK(client.stats().ok == 1);
}

TEST_CASE("RpcClient: a full window refuses with Errc::full and sends nothing", "[rpc]") {
  Setup setup({.max_in_flight = 2});
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", log.callback(1)));
  REQUIRE(client.call(2, "b", log.callback(2)));
  CHECK(wire.take().size() == 2);
  auto refused = client.call(2, "c", log.callback(3));
  REQUIRE_FALSE(refused);
  CHECK(refused.error() == Errc::full);
  CHECK(wire.empty());
  CHECK(client.stats().refused == 1);
  CHECK(client.stats().calls == 2);
  // Another peer has its own window.
  CHECK(client.call(3, "x", log.callback(4)));
  // An answer makes room.
  client.receive(2, response(1, std::string("A")));
  auto again = client.call(2, "c", log.callback(3));
  REQUIRE(again);
  CHECK(*again == 3);
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0].first == 1);  // the refused callback never ran
}

TEST_CASE("RpcClient: out-of-order responses complete the call their id names, in call order",
          "[rpc]") {
  Setup setup;
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", log.callback(1)));
  REQUIRE(client.call(2, "b", log.callback(2)));
  REQUIRE(client.call(2, "c", log.callback(3)));
  client.receive(2, response(3, std::string("C")));
  client.receive(2, response(2, std::string("B")));
  CHECK(log.calls.empty());  // held behind call 1
  client.receive(2, response(1, std::string("A")));
  REQUIRE(log.calls.size() == 3);
  CHECK(log.calls[0] == std::pair<int, Outcome<std::string>>(1, std::string("A")));
  CHECK(log.calls[1] == std::pair<int, Outcome<std::string>>(2, std::string("B")));
  CHECK(log.calls[2] == std::pair<int, Outcome<std::string>>(3, std::string("C")));
  CHECK(client.in_flight() == 0);
}

TEST_CASE("RpcClient: tick times out a call at now - sent >= timeout, and next_deadline says when",
          "[rpc]") {
  Setup setup({.timeout = 100ms}, 1000s);
  auto& [wire, clock, log, client] = setup;
  CHECK_FALSE(client.next_deadline());
  REQUIRE(client.call(2, "a", log.callback(1)));
  const auto first_sent = clock.now();
  clock.advance(30ms);
  REQUIRE(client.call(3, "b", log.callback(2)));
  CHECK(client.next_deadline() == first_sent + 100ms);
  clock.advance(70ms - 1ns);
  CHECK(client.tick() == 0);
  CHECK(log.calls.empty());
  clock.advance(1ns);
  CHECK(client.tick() == 1);
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0] == std::pair<int, Outcome<std::string>>(1, Errc::timeout));
  CHECK(client.next_deadline() == first_sent + 130ms);
  clock.advance(30ms);
  CHECK(client.tick() == 1);
  CHECK(log.calls.size() == 2);
  CHECK_FALSE(client.next_deadline());
  CHECK(client.stats().timeouts == 2);
  CHECK(client.in_flight() == 0);
}

TEST_CASE("RpcClient: a timeout releases the answered calls it held back", "[rpc]") {
  Setup setup({.timeout = 1s});
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", log.callback(1)));
  REQUIRE(client.call(2, "b", log.callback(2)));
  client.receive(2, response(2, std::string("B")));
  CHECK(log.calls.empty());
  clock.advance(1s);
  CHECK(client.tick() == 1);
  REQUIRE(log.calls.size() == 2);
  CHECK(log.calls[0] == std::pair<int, Outcome<std::string>>(1, Errc::timeout));
  CHECK(log.calls[1] == std::pair<int, Outcome<std::string>>(2, std::string("B")));
}

TEST_CASE("RpcClient: a late or duplicated response is dropped and counted", "[rpc]") {
  Setup setup({.timeout = 1s});
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", log.callback(1)));
  clock.advance(1s);
  CHECK(client.tick() == 1);
  client.receive(2, response(1, std::string("A")));  // late
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0].second == Errc::timeout);
  CHECK(client.stats().late_responses == 1);

  REQUIRE(client.call(2, "b", log.callback(2)));
  client.receive(2, response(2, std::string("B")));
  client.receive(2, response(2, std::string("B again")));  // duplicate
  REQUIRE(log.calls.size() == 2);
  CHECK(log.calls[1] == std::pair<int, Outcome<std::string>>(2, std::string("B")));
  CHECK(client.stats().late_responses == 2);
  CHECK(client.stats().ok == 1);
}

TEST_CASE("RpcClient: unknown ids, sessions and peers are dropped and counted", "[rpc]") {
  Setup setup({.session = 5});
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", log.callback(1)));
  client.receive(2, response(2, std::string("never issued"), 5));
  client.receive(2, response(0, std::string("id zero"), 5));
  client.receive(2, response(1, std::string("another session"), 4));
  client.receive(9, response(1, std::string("unknown peer"), 5));
  client.receive(3, response(1, std::string("wrong peer"), 5));
  CHECK(client.stats().unknown_responses == 5);
  client.receive(2, Message(Request{5, 1, "a request"}));
  CHECK(client.stats().unexpected_requests == 1);
  CHECK(log.calls.empty());
  CHECK(client.in_flight(2) == 1);
  client.receive(2, response(1, std::string("A"), 5));
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0].second == Outcome<std::string>(std::string("A")));
  CHECK(client.stats().late_responses == 0);
}

TEST_CASE("RpcClient: a server's error reaches the callback", "[rpc]") {
  Setup setup;
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", log.callback(1)));
  client.receive(2, response(1, Errc::not_leader));
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0].second == Errc::not_leader);
  CHECK(client.stats().errors == 1);
  CHECK(client.stats().ok == 0);
}

TEST_CASE("RpcClient: cancel and close complete outstanding calls with the error given", "[rpc]") {
  Setup setup;
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", log.callback(1)));
  REQUIRE(client.call(2, "b", log.callback(2)));
  REQUIRE(client.call(3, "c", log.callback(3)));
  CHECK(client.cancel(2) == 2);
  REQUIRE(log.calls.size() == 2);
  CHECK(log.calls[0] == std::pair<int, Outcome<std::string>>(1, Errc::closed));
  CHECK(log.calls[1] == std::pair<int, Outcome<std::string>>(2, Errc::closed));
  CHECK(client.cancel(2) == 0);
  CHECK(client.cancel(42) == 0);  // never called
  client.receive(2, response(1, std::string("A")));
  CHECK(client.stats().late_responses == 1);
  CHECK(client.close(Errc::cancelled) == 1);
  REQUIRE(log.calls.size() == 3);
  CHECK(log.calls[2] == std::pair<int, Outcome<std::string>>(3, Errc::cancelled));
  CHECK_FALSE(client.next_deadline());
  CHECK(client.stats().cancelled == 3);
  CHECK(client.stats().timeouts == 0);
  // Ids keep counting after a cancel, so an old response cannot complete a new call.
  auto id = client.call(2, "d", log.callback(4));
  REQUIRE(id);
  CHECK(*id == 3);
}

TEST_CASE("RpcClient: a callback may call again", "[rpc]") {
  Wire wire;
  pods::ManualClock clock;
  Client client(wire, clock, {.max_in_flight = 1});
  std::vector<Outcome<std::string>> got;
  REQUIRE(client.call(2, "a", [&](Outcome<std::string> r) {
    got.push_back(r);
    REQUIRE(client.call(2, "b", [&](Outcome<std::string> r2) { got.push_back(r2); }));
  }));
  (void)wire.take();
  client.receive(2, response(1, std::string("A")));
  REQUIRE(got.size() == 1);
  const auto sent = requests(wire);
  REQUIRE(sent.size() == 1);
  CHECK(sent[0].second.id == 2);
  client.receive(2, response(2, std::string("B")));
  CHECK(got == std::vector<Outcome<std::string>>{std::string("A"), std::string("B")});
}

TEST_CASE("RpcClient: a throwing callback propagates after the others ran", "[rpc]") {
  Setup setup({.timeout = 1s});
  auto& [wire, clock, log, client] = setup;
  REQUIRE(client.call(2, "a", [](Outcome<std::string>) { throw std::runtime_error("boom"); }));
  REQUIRE(client.call(3, "b", log.callback(2)));
  clock.advance(1s);
  CHECK_THROWS_WITH(client.tick(), "boom");
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0].second == Errc::timeout);
  CHECK(client.in_flight() == 0);
  CHECK_FALSE(client.next_deadline());
}

TEST_CASE("RpcClient: bad options and an empty callback throw std::invalid_argument", "[rpc]") {
  Wire wire;
  pods::ManualClock clock;
  CHECK_THROWS_MATCHES(Client(wire, clock, {.max_in_flight = 0}), std::invalid_argument,
                       Catch::Message("RpcClient: options.max_in_flight must be at least 1"));
  CHECK_THROWS_MATCHES(Client(wire, clock, {.timeout = 0ns}), std::invalid_argument,
                       Catch::Message("RpcClient: options.timeout must be positive, got 0 ns"));
  CHECK_THROWS_MATCHES(Client(wire, clock, {.timeout = -5ns}), std::invalid_argument,
                       Catch::Message("RpcClient: options.timeout must be positive, got -5 ns"));
  Client client(wire, clock);
  CHECK_THROWS_MATCHES(client.call(2, "a", Client::Callback()), std::invalid_argument,
                       Catch::Message("RpcClient::call: done must not be empty"));
  CHECK(wire.empty());
  CHECK(client.in_flight() == 0);
}

TEST_CASE("RpcServer: a returning handler answers at once with its value or its error", "[rpc]") {
  Wire wire;
  Server server(wire, [](NodeId from, std::string q) -> Outcome<std::string> {
    if (q == "refuse") return Errc::not_leader;
    return q + "@" + std::to_string(from);
  });
  server.receive(4, Message(Request{9, 1, "x"}));
  server.receive(4, Message(Request{9, 2, "refuse"}));
  auto sent = wire.take();
  REQUIRE(sent.size() == 2);
  CHECK(sent[0] == Wire::Sent{4, response(1, std::string("x@4"), 9)});
  CHECK(sent[1] == Wire::Sent{4, response(2, Errc::not_leader, 9)});
  CHECK(server.stats().requests == 2);
}

TEST_CASE("RpcServer: a handler may keep the responder and answer later, once", "[rpc]") {
  Wire wire;
  std::vector<Responder> pending;
  Server server(wire, [&](NodeId, std::string, Responder& r) { pending.push_back(std::move(r)); });
  server.receive(4, Message(Request{0, 1, "a"}));
  server.receive(5, Message(Request{0, 1, "b"}));
  CHECK(wire.empty());
  REQUIRE(pending.size() == 2);
  CHECK(pending[1].peer() == 5);
  CHECK(pending[1].id() == 1);
  CHECK(pending[1].pending());
  CHECK(pending[1].respond("B"));
  CHECK_FALSE(pending[1].pending());
  CHECK_FALSE(pending[1].respond("B twice"));
  CHECK_FALSE(pending[1].fail(Errc::failed));
  auto sent = wire.take();
  REQUIRE(sent.size() == 1);
  CHECK(sent[0] == Wire::Sent{5, response(1, std::string("B"))});
  // Moving keeps the one right to answer.
  Responder moved = std::move(pending[0]);
  CHECK_FALSE(pending[0].pending());
  CHECK_FALSE(pending[0].respond("from the husk"));
  CHECK(wire.empty());
  CHECK(moved.fail(Errc::duplicate));
  CHECK(wire.take() == std::vector<Wire::Sent>{{4, response(1, Errc::duplicate)}});
}

TEST_CASE("RpcServer: a responder dropped or overwritten unanswered answers Errc::cancelled",
          "[rpc]") {
  Wire wire;
  std::optional<Responder> kept;
  Server server(wire, [&](NodeId, std::string q, Responder& r) {
    if (q == "keep") kept.emplace(std::move(r));
    // otherwise dropped: the server's responder goes out of scope unanswered
  });
  server.receive(4, Message(Request{0, 1, "drop"}));
  CHECK(wire.take() == std::vector<Wire::Sent>{{4, response(1, Errc::cancelled)}});
  server.receive(4, Message(Request{0, 2, "keep"}));
  CHECK(wire.empty());
  {
    Responder other(wire, 6, 0, 7);
    *kept = std::move(other);  // kept's pending request 2 is cancelled first
    CHECK(wire.take() == std::vector<Wire::Sent>{{4, response(2, Errc::cancelled)}});
  }
  CHECK(wire.empty());  // `other` was moved from: it sends nothing
  kept.reset();
  CHECK(wire.take() == std::vector<Wire::Sent>{{6, response(7, Errc::cancelled)}});
}

TEST_CASE("RpcServer: a throwing handler answers Errc::failed and is counted", "[rpc]") {
  Wire wire;
  Server server(wire, [](NodeId, std::string q, Responder& r) {
    if (q == "answered") (void)r.respond("ok");
    throw std::runtime_error("handler bug");
  });
  server.receive(4, Message(Request{0, 1, "x"}));
  CHECK(wire.take() == std::vector<Wire::Sent>{{4, response(1, Errc::failed)}});
  server.receive(4, Message(Request{0, 2, "answered"}));  // its answer stands
  CHECK(wire.take() == std::vector<Wire::Sent>{{4, response(2, std::string("ok"))}});
  CHECK(server.stats().handler_failures == 2);

  // End to end: the client's callback gets Errc::failed.
  pods::ManualClock clock;
  Wire to_server;
  Client client(to_server, clock);
  Log log;
  REQUIRE(client.call(1, "x", log.callback(1)));
  for (auto& s : to_server.take())
    server.receive(9, std::move(s.message));
  for (auto& s : wire.take())
    client.receive(1, std::move(s.message));
  REQUIRE(log.calls.size() == 1);
  CHECK(log.calls[0].second == Errc::failed);
}

TEST_CASE("RpcServer: responses delivered to a server are dropped and counted", "[rpc]") {
  Wire wire;
  int handled = 0;
  Server server(wire, [&](NodeId, std::string q) {
    ++handled;
    return q;
  });
  server.receive(4, response(1, std::string("x")));
  CHECK(server.stats().unexpected_responses == 1);
  CHECK(handled == 0);
  CHECK(wire.empty());
}

TEST_CASE("RpcServer: an empty handler and a bad error code throw std::invalid_argument", "[rpc]") {
  Wire wire;
  using Fn = void (*)(NodeId, std::string, Responder&);
  CHECK_THROWS_MATCHES(Server(wire, Fn(nullptr)), std::invalid_argument,
                       Catch::Message("RpcServer: handler must not be empty"));
  CHECK_THROWS_MATCHES(Server(wire, std::function<std::string(NodeId, std::string)>()),
                       std::invalid_argument,
                       Catch::Message("RpcServer: handler must not be empty"));
  Responder r(wire, 4, 0, 1);
  CHECK_THROWS_MATCHES(r.fail(static_cast<Errc>(0)), std::invalid_argument,
                       Catch::Message("RpcResponder::fail: error must be a pods::Errc value, "
                                      "got 0"));
  CHECK_THROWS_MATCHES(r.fail(static_cast<Errc>(200)), std::invalid_argument,
                       Catch::Message("RpcResponder::fail: error must be a pods::Errc value, "
                                      "got 200"));
  CHECK(r.pending());  // still answerable
  CHECK(wire.empty());
}

// ---- the codec ----

namespace {
pods::Buffer encode(const Message& m) {
  pods::Buffer out;
  Codec().encode(m, out);
  return out;
}
pods::Buffer bytes(std::initializer_list<int> values) {
  pods::Buffer out;
  for (int v : values)
    out.push_back(static_cast<std::byte>(v));
  return out;
}
}  // namespace

TEST_CASE("RpcCodec: every message round-trips", "[rpc][codec]") {
  std::vector<Message> messages = {
      Request{0, 1, ""},
      Request{~0ULL, ~0ULL, "hello"},
      Request{3, 4, std::string(1000, 'x')},
      response(1, std::string("")),
      response(~0ULL, std::string("world"), 12),
  };
  for (int e = 1; e <= static_cast<int>(Errc::session_expired); ++e) {
    messages.push_back(response(static_cast<std::uint64_t>(e), static_cast<Errc>(e)));
  }
  const Codec codec;
  for (const auto& m : messages) {
    pods::Buffer out{std::byte{0xAA}};  // encode appends
    codec.encode(m, out);
    REQUIRE(out[0] == std::byte{0xAA});
    CHECK(codec.decode(std::span<const std::byte>(out).subspan(1)) == m);
  }
}

TEST_CASE("RpcCodec: the layout is version, kind, session, id, then the body or status",
          "[rpc][codec]") {
  CHECK(encode(Request{0x0102, 3, "hi"}) ==
        bytes({1, 1, 0x02, 0x01, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 'h', 'i'}));
  CHECK(encode(response(5, Errc::timeout, 1)) ==
        bytes({1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 1}));
  CHECK(encode(response(5, std::string("k"), 1)) ==
        bytes({1, 2, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 'k'}));
}

TEST_CASE("RpcCodec: bad bytes throw CorruptionError naming the offset and the field",
          "[rpc][codec]") {
  const Codec codec;
  auto decode = [&](const pods::Buffer& b) { return codec.decode(b); };
  auto ok = encode(response(5, std::string("k"), 1));
  CHECK_THROWS_MATCHES(
      decode(bytes({2})), pods::CorruptionError,
      Catch::Message("corrupt data in rpc message at offset 0: unknown version 2"));
  CHECK_THROWS_MATCHES(decode(bytes({1, 3})), pods::CorruptionError,
                       Catch::Message("corrupt data in rpc message at offset 1: unknown kind 3"));
  auto bad_status = encode(response(5, Errc::timeout));
  bad_status.back() = std::byte{200};
  CHECK_THROWS_MATCHES(decode(bad_status), pods::CorruptionError,
                       Catch::Message("corrupt data in rpc message at offset 18: unknown status "
                                      "200"));
  auto trailing = ok;
  trailing.push_back(std::byte{0});
  CHECK_THROWS_MATCHES(decode(trailing), pods::CorruptionError,
                       Catch::Message("corrupt data in rpc message at offset 24: 1 unexpected "
                                      "trailing bytes"));
  // Every strict prefix of a valid message is corrupt.
  for (const auto& m : {Message(Request{1, 2, "abc"}), response(3, std::string("def")),
                        response(4, Errc::closed)}) {
    const auto full = encode(m);
    for (std::size_t n = 0; n < full.size(); ++n) {
      const pods::Buffer prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
      CHECK_THROWS_AS(decode(prefix), pods::CorruptionError);
    }
  }
}

TEST_CASE("RpcCodec: a body its codec rejects is corruption at the body's offset", "[rpc][codec]") {
  using U32 = pods::TrivialCodec<std::uint32_t>;
  using Strict = pods::net::RpcCodec<std::uint32_t, std::uint32_t, U32, U32>;
  using StrictMessage = Strict::Message;
  pods::Buffer out;
  Strict().encode(StrictMessage(pods::net::RpcRequest<std::uint32_t>{0, 1, 7}), out);
  CHECK(Strict().decode(out) == StrictMessage(pods::net::RpcRequest<std::uint32_t>{0, 1, 7}));
  // Shorten the body to 3 bytes: its length field and the frame agree, the body codec refuses.
  out[18] = std::byte{3};
  out.pop_back();
  CHECK_THROWS_MATCHES(Strict().decode(out), pods::CorruptionError,
                       Catch::Message("corrupt data in rpc message at offset 18: request body: "
                                      "corrupt data in codec input at offset 3: TrivialCodec "
                                      "expects 4 bytes, got 3"));
}

// ---- on the simulator ----

namespace {
using SimMessage = pods::net::RpcMessage<std::uint64_t, std::uint64_t>;
using Endpoint = pods::sim::Network<SimMessage>::Endpoint;

// What every node's server answers: a function of the request, so the caller can check it.
std::uint64_t answer_to(std::uint64_t q) {
  return q * 2 + 1;
}
// Requests the server refuses or fails on, by rule.
bool refused(std::uint64_t q) {
  return q % 7 == 0;
}
bool throws(std::uint64_t q) {
  return q % 11 == 0;
}

constexpr auto sim_timeout = 200ms;

// The run's record of every call, checked as each call completes.
struct Record {
  // caller, its incarnation, callee, correlation id
  using Key = std::tuple<NodeId, std::uint64_t, NodeId, std::uint64_t>;
  struct Call {
    std::uint64_t request = 0;
    std::int64_t called_ns = 0;
    std::optional<Outcome<std::uint64_t>> outcome;
  };
  std::map<Key, Call> calls;
  std::vector<std::string> violations;
  std::uint64_t ok = 0, timeouts = 0, errors = 0, closed = 0;
  std::int64_t last_ok_ns = -1;
  bool stop_issuing = false;

  void violation(std::string what) {
    if (violations.size() < 10) violations.push_back(std::move(what));
  }

  // Checks one completion: the call exists, completes once, and its outcome is one the
  // server's rules allow for its request.
  void complete(const Key& key, std::uint64_t q, const Outcome<std::uint64_t>& r,
                std::int64_t now_ns) {
    auto it = calls.find(key);
    if (it == calls.end()) return violation("a callback for a call never admitted");
    if (it->second.outcome) return violation("a callback ran twice");
    if (it->second.request != q) return violation("a call recorded with another request");
    it->second.outcome = r;
    std::string got;
    if (r) {
      ++ok;
      last_ok_ns = now_ns;
      if (*r != answer_to(q) || refused(q) || throws(q)) got = std::to_string(*r);
    } else if (r.error() == Errc::timeout) {
      ++timeouts;
    } else if (r.error() == Errc::closed) {
      ++closed;
    } else {
      ++errors;
      const bool allowed = (r.error() == Errc::failed && throws(q)) ||
                           (r.error() == Errc::not_leader && refused(q) && !throws(q)) ||
                           r.error() == Errc::cancelled;  // a responder lost in a crash
      if (!allowed) got = std::string(pods::to_string(r.error()));
    }
    if (!got.empty()) {
      std::string what = "request ";
      what += std::to_string(q);
      what += " got ";
      what += got;
      violation(std::move(what));
    }
  }
};

template <class Rules>
struct RpcNode {
  using Client =
      pods::net::RpcClient<std::uint64_t, std::uint64_t, Endpoint, pods::sim::NodeClock, Rules>;
  using Server = pods::net::RpcServer<std::uint64_t, std::uint64_t, Endpoint>;

  RpcNode(const pods::sim::NodeContext<SimMessage>& c, const std::vector<NodeId>& ids,
          pods::sim::Simulation& s, Record& r)
      : ctx(c),
        peers(ids),
        sim(s),
        record(r),
        client(c.endpoint, c.clock,
               {.max_in_flight = 4, .timeout = sim_timeout, .session = c.incarnation}),
        server(c.endpoint, [this](NodeId, std::uint64_t q, typename Server::Responder& respond) {
          if (throws(q)) throw std::runtime_error("rule: throws");
          if (refused(q)) {
            (void)respond.fail(Errc::not_leader);
          } else if (q % 2 == 0) {
            (void)respond.respond(answer_to(q));
          } else {
            deferred.emplace_back(q, std::move(respond));  // answered on a later tick
          }
        }) {}

  RpcNode(const RpcNode&) = delete;
  RpcNode& operator=(const RpcNode&) = delete;
  ~RpcNode() { (void)client.close(); }  // a crashed node's calls complete with Errc::closed

  void receive(NodeId from, SimMessage m) {
    if (pods::net::is_request(m)) {
      server.receive(from, std::move(m));
    } else {
      client.receive(from, std::move(m));
    }
  }

  void tick() {
    (void)client.tick();
    for (auto& [q, respond] : deferred) {
      if (ctx.random.chance(0.5)) (void)respond.respond(answer_to(q));
    }
    std::erase_if(deferred, [](const auto& d) { return !d.second.pending(); });
    if (!record.stop_issuing) {
      for (int k = 0; k < 2; ++k)
        issue();
    }
  }

  std::optional<pods::sim::NodeClock::time_point> next_deadline() const {
    return client.next_deadline();
  }

  void issue() {
    const NodeId to = peers[static_cast<std::size_t>(ctx.random.below(peers.size()))];
    if (to == ctx.id) return;
    const std::uint64_t q = 1 + ctx.random.below(1000);
    const auto key = std::make_shared<Record::Key>(ctx.id, ctx.incarnation, to, 0);
    Record* rec = &record;
    pods::sim::Simulation* s = &sim;
    auto admitted = client.call(to, q, [rec, s, key, q](Outcome<std::uint64_t> r) {
      rec->complete(*key, q, r, s->now().time_since_epoch().count());
    });
    if (!admitted) {
      if (admitted.error() != Errc::full) record.violation("a call refused with a wrong error");
      return;
    }
    std::get<3>(*key) = *admitted;
    const bool fresh =
        record.calls.try_emplace(*key, Record::Call{q, sim.now().time_since_epoch().count(), {}})
            .second;
    if (!fresh) record.violation("a correlation id was issued twice to one peer");
  }

  pods::sim::NodeContext<SimMessage> ctx;
  std::vector<NodeId> peers;
  pods::sim::Simulation& sim;
  Record& record;
  std::vector<std::pair<std::uint64_t, typename Server::Responder>> deferred;
  Client client;
  Server server;
};

struct SimRun {
  Record record;
  std::string nemesis_log;
  std::int64_t heal_ns = 0;
  pods::sim::NetworkStats net;
};

// Runs 4 nodes calling each other for 10 s of faults and 2 s of quiet, then stops issuing
// calls and lets every outstanding one finish.
template <class Rules = pods::net::detail::RpcClientRules>
SimRun run_sim(std::uint64_t seed) {
  SimRun out;
  pods::sim::Simulation sim(seed);
  pods::sim::Network<SimMessage> net(
      sim, {.loss = 0.05, .duplicate = 0.05, .min_delay = 1ms, .max_delay = 20ms});
  const std::vector<NodeId> ids = {1, 2, 3, 4};
  pods::sim::Cluster<RpcNode<Rules>, SimMessage> cluster(
      net, [&](const pods::sim::NodeContext<SimMessage>& ctx) {
        return std::make_unique<RpcNode<Rules>>(ctx, ids, sim, out.record);
      });
  for (NodeId id : ids)
    cluster.add(id);
  pods::sim::Nemesis nemesis(cluster, {.duration = 10s, .quiet = 2s});
  out.heal_ns = nemesis.heal_at().time_since_epoch().count();
  // Safety is checked in every callback as it runs (Record::complete); the run stops early
  // at the first violation.
  (void)sim.run_until([&] { return !out.record.violations.empty(); }, 10s);
  out.record.stop_issuing = true;
  (void)sim.run_until([&] { return !out.record.violations.empty(); }, 2s);
  out.nemesis_log = nemesis.describe();
  out.net = net.stats();
  return out;
}

std::uint64_t seeds(std::uint64_t fallback) {
  if (const char* env = std::getenv("PODS_SEEDS")) return std::strtoull(env, nullptr, 10);
  return fallback;
}
}  // namespace

TEST_CASE("RpcClient on sim::Network: every call completes exactly once, with the right answer",
          "[rpc][sim]") {
  const std::uint64_t n = seeds(10);
  std::uint64_t ok = 0, timeouts = 0, errors = 0, closed = 0;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    INFO("seed " << seed);
    const SimRun run = run_sim(seed);
    INFO(run.nemesis_log);
    for (const auto& v : run.record.violations)
      FAIL_CHECK(v);
    REQUIRE(run.record.violations.empty());
    std::size_t open = 0;
    for (const auto& [key, call] : run.record.calls) {
      if (!call.outcome) ++open;
    }
    CHECK(open == 0);  // liveness: every call ended, by an answer, a timeout or a crash
    CHECK(run.record.last_ok_ns > run.heal_ns);  // calls succeed again after the faults
    CHECK(run.net.dropped > 0);
    CHECK(run.net.duplicated > 0);
    ok += run.record.ok;
    timeouts += run.record.timeouts;
    errors += run.record.errors;
    closed += run.record.closed;
  }
  // Every kind of ending happened somewhere, so the checks above were exercised.
  CHECK(ok > 0);
  CHECK(timeouts > 0);
  CHECK(errors > 0);
  CHECK(closed > 0);
  WARN(n << " seeds: " << ok << " ok, " << timeouts << " timed out, " << errors
         << " server errors, " << closed << " closed by a crash");
}

namespace {
// Breaks one rule: a response completes the oldest waiting call instead of the one it names.
struct MatchOldest {
  static constexpr bool match_by_id = false;
};
}  // namespace

TEST_CASE("RpcClient on sim::Network: matching by arrival instead of correlation id is caught",
          "[rpc][sim]") {
  bool caught = false;
  for (std::uint64_t seed = 1; seed <= 5 && !caught; ++seed) {
    caught = !run_sim<MatchOldest>(seed).record.violations.empty();
  }
  CHECK(caught);
}

// ---- over TCP ----

TEST_CASE("RpcClient and RpcServer over TcpTransport on 127.0.0.1", "[rpc][threads]") {
  using Tcp = pods::net::TcpTransport<Message, Codec>;
  static_assert(pods::Transport<Tcp, Message>);
  Tcp a(1), b(2);
  a.set_peer(2, "127.0.0.1", b.local_port());
  b.set_peer(1, "127.0.0.1", a.local_port());
  // Node 2 serves; node 1 calls. The client is thread-compatible: the test thread and node
  // 1's I/O thread share it under one mutex.
  pods::net::RpcServer<std::string, std::string, Tcp> tcp_server(
      b, [](NodeId from, std::string q) { return q + " from " + std::to_string(from); });
  b.on_receive([&](NodeId from, Message m) { tcp_server.receive(from, std::move(m)); });
  std::mutex mu;
  std::condition_variable cv;
  pods::net::RpcClient<std::string, std::string, Tcp> client(a, pods::SteadyClock{},
                                                             {.max_in_flight = 8, .timeout = 30s});
  a.on_receive([&](NodeId from, Message m) {
    std::lock_guard lock(mu);
    client.receive(from, std::move(m));
    cv.notify_all();
  });
  a.start();
  b.start();
  std::vector<Outcome<std::string>> got;
  {
    std::lock_guard lock(mu);
    for (int i = 0; i < 8; ++i) {
      REQUIRE(client.call(2, "q" + std::to_string(i),
                          [&](Outcome<std::string> r) { got.push_back(std::move(r)); }));
    }
    CHECK(client.call(2, "over", [](Outcome<std::string>) {}) ==
          Outcome<std::uint64_t>(Errc::full));
  }
  std::unique_lock lock(mu);
  REQUIRE(cv.wait_for(lock, 30s, [&] { return got.size() == 8; }));
  for (int i = 0; i < 8; ++i) {
    CHECK(got[static_cast<std::size_t>(i)] ==
          Outcome<std::string>("q" + std::to_string(i) + " from 1"));
  }
  CHECK(client.in_flight() == 0);
  lock.unlock();
  a.stop();
  b.stop();
}

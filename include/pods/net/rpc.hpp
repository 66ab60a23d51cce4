// pods/net/rpc.hpp — Request Pipeline over the network: RpcClient and RpcServer
//
// Problem:       A request sent to another process comes back, if at all, on the same link as
//                every other request's answer, late, duplicated or never. Waiting for each
//                answer before sending the next costs a round trip per request; sending many
//                at once needs a way to tell the answers apart, a bound on how many are
//                outstanding, and a deadline after which the caller stops waiting.
// Solution:      RpcClient numbers the requests to each peer (correlation ids 1, 2, 3, ...),
//                keeps up to max_in_flight of them outstanding per peer in a RequestPipeline,
//                and sends each as an RpcRequest{session, id, body} through any Transport of
//                RpcMessage. RpcServer hands each request to the user's handler with an
//                RpcResponder, which sends one RpcResponse{session, id, result} back, at once
//                or later. The client matches a response by (peer, session, id); tick() times
//                out the requests older than the timeout against a PhysicalClock. Sans-IO: the
//                owner feeds receive(from, message) and tick(), so the same objects run on
//                Outbox, sim::Network and net::TcpTransport. RpcCodec encodes the messages
//                with the user's codecs for the bodies.
// Guarantees:    - Every admitted call's callback runs exactly once: with the response's value,
//                  with the error the server answered (Errc::failed when its handler threw,
//                  Errc::cancelled when its responder was dropped unanswered), with
//                  Errc::timeout when now - sent >= timeout, or with the error given to
//                  cancel() / close().
//                - A response completes only the call its correlation id names, from the peer
//                  it was sent to, in the client's session; a late, duplicated or unknown
//                  response is dropped and counted, never completes another call.
//                - Callbacks to one peer run in the order the calls were made (the pipeline's
//                  rule: an early answer waits for the calls before it).
//                - At most max_in_flight calls are outstanding to one peer: call() returns
//                  Errc::full past it, before anything is sent.
//                - A responder answers at most once; destroyed unanswered, it answers
//                  Errc::cancelled.
//                - next_deadline() is the earliest time at which tick() times out a call.
// Not provided:  Retries (a timed-out call may have run on the server: pair it with an
//                IdempotentReceiver there). Delivery of requests (the transport's link
//                guarantee applies: on a fair-loss link a request may be lost, and its call
//                times out). Destroying a client runs no callback (close() first for that).
//                Matching across restarts of the client needs a fresh session per
//                incarnation (options.session); with one session, a response from before a
//                restart may complete the new call with the same id.
// Thread safety: thread-compatible: a client and a server each belong to one owner thread
//                (the transport's I/O thread, a SingularUpdateQueue worker, the simulation).
//                Callbacks and handlers run synchronously on that thread, inside receive(),
//                tick(), cancel() and close(); a callback may call call(), cancel() and
//                close(). An RpcResponder may be moved to another thread and answered there
//                when the transport's send may be called from that thread.
// Errors:        options.max_in_flight == 0 or options.timeout <= 0 throw std::invalid_argument
//                naming the option; an empty callback or handler throws std::invalid_argument
//                naming it; RpcResponder::fail with a value that is not a pods::Errc throws
//                std::invalid_argument. call() returns Errc::full. A callback's exception
//                propagates out of receive/tick/cancel/close after the other callbacks of that
//                call have run. A handler's exception is caught, counted, and answered with
//                Errc::failed. RpcCodec::decode throws pods::CorruptionError("rpc message",
//                offset, reason) on bad bytes, naming the field.
// Cost:          call: O(log n) (n calls in flight in total), one allocation for the wrapped
//                callback, one send. receive of a response: O(log n) plus the callbacks it
//                completes. tick: O(log n) per call timed out. next_deadline: O(1). Server:
//                one handler call and one send per request. Wire overhead: 19 bytes, plus 4
//                for a body's length.
// Example:
//   using Rpc = pods::net::RpcMessage<std::string, std::string>;
//   pods::Outbox<Rpc> wire;
//   pods::net::RpcServer<std::string, std::string, pods::Outbox<Rpc>> server(
//       wire, [](pods::NodeId, std::string q) { return q + "!"; });
//   pods::net::RpcClient<std::string, std::string, pods::Outbox<Rpc>> client(wire);
//   auto id = client.call(2, "ping", [](pods::Outcome<std::string> r) { (void)r; });  // "ping!"
//   for (auto& [to, m] : wire.take()) server.receive(/*from=*/1, std::move(m));
//   for (auto& [to, m] : wire.take()) client.receive(/*from=*/2, std::move(m));
//   client.tick();   // on a timer, or at client.next_deadline()
#pragma once

#include <pods/messaging/move_only_function.hpp>
#include <pods/messaging/request_pipeline.hpp>
#include <pods/policy/assert.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace pods::net {

// A call: the client's session, the correlation id it gave the call to this server, and the
// user's request.
template <class Request>
struct RpcRequest {
  std::uint64_t session = 0;  // the client incarnation's session, echoed in the response
  std::uint64_t id = 0;       // correlation id, per (client, server) pair: 1, 2, 3, ...
  Request body{};

  friend bool operator==(const RpcRequest&, const RpcRequest&) = default;
};

// The answer to one call: the value, or the error the server answered with.
template <class Response>
struct RpcResponse {
  std::uint64_t session = 0;  // the session of the request answered
  std::uint64_t id = 0;       // the correlation id of the request answered
  Outcome<Response> result = Errc::failed;

  friend bool operator==(const RpcResponse&, const RpcResponse&) = default;
};

// The RPC wire message: what a client and a server exchange through one Transport.
template <class Request, class Response>
using RpcMessage = std::variant<RpcRequest<Request>, RpcResponse<Response>>;

// Returns true when `m` is a request (for the server) rather than a response (for the client),
// so a node running both can dispatch what its transport delivers.
template <class Request, class Response>
bool is_request(const RpcMessage<Request, Response>& m) noexcept {
  return m.index() == 0;
}

namespace detail {

// The highest Errc value the wire format carries (codes are 1..this).
inline constexpr int rpc_last_errc = static_cast<int>(Errc::session_expired);

inline bool rpc_known_errc(int code) noexcept {
  return code >= 1 && code <= rpc_last_errc;
}

// Returns true for a null function pointer or an empty std::function-like callable.
template <class F>
bool rpc_empty_callable(const F& f) noexcept {
  if constexpr (std::is_pointer_v<F> || std::is_member_pointer_v<F>) {
    return f == nullptr;
  } else if constexpr (requires { f.target_type(); }) {
    return !f;
  } else {
    return false;
  }
}

// A PhysicalClock reading a time the client latches before each pipeline call, so the
// pipeline and the client's deadline index see exactly the same instants.
template <class Clock>
struct LatchedClock {
  using time_point = typename Clock::time_point;
  using duration = typename Clock::duration;
  const time_point* at = nullptr;
  time_point now() const noexcept { return *at; }
};

// The client's rules; a test replaces it to break one and show that the tests notice.
struct RpcClientRules {
  // A response completes the call its correlation id names. (false: it completes the oldest
  // call waiting for that peer, the mistake of assuming answers come back in order.)
  static constexpr bool match_by_id = true;
};

}  // namespace detail

// RpcCodec: the Codec of RpcMessage, with the user's codecs for the request and response
// bodies. Layout (little-endian): u8 version (1), u8 kind (1 request, 2 response), u64 session,
// u64 id; a request then has the body as a u32 length and the bytes; a response has a u8
// status, 0 followed by the body as for a request, or the pods::Errc value it failed with.
template <class Request, class Response, Codec<Request> RequestCodec, Codec<Response> ResponseCodec>
class RpcCodec {
 public:
  using Message = RpcMessage<Request, Response>;
  static constexpr std::uint8_t version = 1;

  // Creates the codec with default-constructed body codecs. Not explicit, so a transport's
  // `Codec codec = {}` parameter takes it.
  RpcCodec() = default;
  // Creates the codec; the body codecs are retained by value.
  explicit RpcCodec(RequestCodec request_codec, ResponseCodec response_codec = {})
      : request_codec_(std::move(request_codec)), response_codec_(std::move(response_codec)) {}

  // Appends the encoding of `m` to `out`. Throws std::length_error for a body past 4 GiB - 1.
  void encode(const Message& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, kind_request + m.index());
    Buffer body;
    if (const auto* q = std::get_if<0>(&m)) {
      w.u64(q->session);
      w.u64(q->id);
      request_codec_.encode(q->body, body);
      w.bytes(body);
    } else {
      const auto& r = std::get<1>(m);
      w.u64(r.session);
      w.u64(r.id);
      if (r.result) {
        w.u8(0);
        response_codec_.encode(*r.result, body);
        w.bytes(body);
      } else {
        w.u8(static_cast<std::uint8_t>(r.result.error()));
      }
    }
  }

  // Returns the message `bytes` encode. Throws pods::CorruptionError("rpc message", offset,
  // reason) for an unknown version, kind or status, a truncated field, trailing bytes, or a
  // body its codec rejects (the reason then quotes the body codec's message).
  Message decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "rpc message");
    r.expect_version(version);
    const std::size_t index = r.kind(std::variant_size_v<Message>, "kind", kind_request);
    const std::uint64_t session = r.u64();
    const std::uint64_t id = r.u64();
    if (index == 0) {
      RpcRequest<Request> q{session, id, body(r, request_codec_, "request body")};
      r.expect_end();
      return Message(std::in_place_index<0>, std::move(q));
    }
    const std::size_t status_at = r.offset();
    const std::uint8_t status = r.u8();
    RpcResponse<Response> resp{session, id, Errc::failed};
    if (status == 0) {
      resp.result = body(r, response_codec_, "response body");
    } else if (detail::rpc_known_errc(status)) {
      resp.result = static_cast<Errc>(status);
    } else {
      r.fail(status_at, "unknown status " + std::to_string(status));
    }
    r.expect_end();
    return Message(std::in_place_index<1>, std::move(resp));
  }

 private:
  static constexpr std::uint8_t kind_request = 1;  // a response is kind_request + 1

  template <class C>
  static auto body(wire::Reader& r, const C& codec, const char* field) {
    const std::size_t at = r.offset();
    const auto view = r.bytes_view();
    try {
      return codec.decode(view);
    } catch (const CorruptionError& e) {
      std::string reason = field;
      reason += ": ";
      reason += e.what();
      r.fail(at, reason);
    }
  }

  RequestCodec request_codec_{};
  ResponseCodec response_codec_{};
};

struct RpcClientOptions {
  std::size_t max_in_flight = 64;                              // outstanding calls per peer
  std::chrono::nanoseconds timeout = std::chrono::seconds(5);  // from call() to Errc::timeout
  // Sent with every request and echoed back; responses of another session are dropped. Give
  // each incarnation of a client a different one (a boot counter, a random draw).
  std::uint64_t session = 0;
};

struct RpcClientStats {
  std::uint64_t calls = 0;                // admitted by call()
  std::uint64_t refused = 0;              // call() returned Errc::full
  std::uint64_t ok = 0;                   // completed with a response's value
  std::uint64_t errors = 0;               // completed with an error the server answered
  std::uint64_t timeouts = 0;             // completed with Errc::timeout
  std::uint64_t cancelled = 0;            // completed by cancel() or close()
  std::uint64_t late_responses = 0;       // for a call already answered or timed out
  std::uint64_t unknown_responses = 0;    // an id never issued, another session, an unknown peer
  std::uint64_t unexpected_requests = 0;  // a request delivered to the client

  friend bool operator==(const RpcClientStats&, const RpcClientStats&) = default;
};

// RpcClient: calls to other nodes through `T`, a Transport<RpcMessage<Request, Response>>.
template <class Request, class Response, class T, PhysicalClock Clock = SteadyClock,
          class Rules = detail::RpcClientRules>
requires Transport<T, RpcMessage<Request, Response>>
class RpcClient {
 public:
  using Message = RpcMessage<Request, Response>;
  using CorrelationId = std::uint64_t;
  using Callback = pods::detail::MoveOnlyFunction<void(Outcome<Response>)>;  // may be move-only
  using time_point = typename Clock::time_point;

  // Creates a client sending through `transport` and timing out against `clock` (both
  // retained). Throws std::invalid_argument when options.max_in_flight == 0 or
  // options.timeout <= 0.
  explicit RpcClient(T transport, Clock clock = Clock(), RpcClientOptions options = {})
      : transport_(std::move(transport)), clock_(std::move(clock)), options_(options) {
    if (options_.max_in_flight == 0) {
      throw std::invalid_argument("RpcClient: options.max_in_flight must be at least 1");
    }
    if (options_.timeout.count() <= 0) {
      std::string what = "RpcClient: options.timeout must be positive, got ";
      what += std::to_string(options_.timeout.count());
      what += " ns";
      throw std::invalid_argument(what);
    }
  }

  // The pipelines' clock points into this object.
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Sends `request` to `to` and retains `done`, to be called exactly once with the outcome;
  // returns the call's correlation id. Returns Errc::full, sending nothing and dropping
  // `done` uncalled, when max_in_flight calls to `to` are outstanding. Throws
  // std::invalid_argument for an empty `done`. Allocates.
  Outcome<CorrelationId> call(NodeId to, Request request, Callback done) {
    if (!done) throw std::invalid_argument("RpcClient::call: done must not be empty");
    Peer& p = peer(to);
    if (p.pipeline.full()) {
      ++stats_.refused;
      return Errc::full;
    }
    latched_ = clock_.now();
    const time_point sent = latched_;
    auto admitted = p.pipeline.try_send(std::move(request), wrap(std::move(done)));
    PODS_ASSERT(admitted.has_value(), "a pipeline with room refused a request");
    const CorrelationId id = *admitted;
    p.issued = id;
    p.waiting.emplace(id, sent);
    deadlines_.emplace(sent, to, id);
    ++stats_.calls;
    for (auto& [cid, body] : p.pipeline.take_outgoing()) {
      // A transport that refuses (a full queue) loses the request: the call times out.
      (void)transport_.send(to,
                            Message(std::in_place_index<0>,
                                    RpcRequest<Request>{options_.session, cid, std::move(body)}));
    }
    return id;
  }

  // Handles a message from `from`: a response completes its call and every call to `from`
  // it was holding back, in call order. Drops and counts a response with an unknown id,
  // session or peer, a late or duplicated one, and a request (that is the server's).
  void receive(NodeId from, Message message) {
    auto* r = std::get_if<1>(&message);
    if (r == nullptr) {
      ++stats_.unexpected_requests;
      return;
    }
    auto it = peers_.find(from);
    if (r->session != options_.session || it == peers_.end() || r->id == 0 ||
        r->id > it->second.issued) {
      ++stats_.unknown_responses;
      return;
    }
    Peer& p = it->second;
    CorrelationId id = r->id;
    if constexpr (!Rules::match_by_id) {
      if (!p.waiting.empty()) id = p.waiting.begin()->first;
    }
    auto w = p.waiting.find(id);
    if (w == p.waiting.end()) {
      ++stats_.late_responses;
      return;
    }
    deadlines_.erase(std::tuple(w->second, from, id));
    p.waiting.erase(w);
    const bool matched = p.pipeline.receive(id, std::move(r->result));
    PODS_ASSERT(matched, "the pipeline disagrees with the client about a waiting call");
  }

  // Times out (Errc::timeout) every call with now - sent >= timeout, and completes the calls
  // they were holding back. Returns how many timed out.
  std::size_t tick() {
    const time_point now = clock_.now();
    std::vector<NodeId> due;
    std::size_t timed_out = 0;
    while (!deadlines_.empty() && now - std::get<0>(*deadlines_.begin()) >= options_.timeout) {
      const auto [sent, to, id] = *deadlines_.begin();
      deadlines_.erase(deadlines_.begin());
      peers_.at(to).waiting.erase(id);
      if (due.empty() || due.back() != to) due.push_back(to);
      ++timed_out;
    }
    std::sort(due.begin(), due.end());
    due.erase(std::unique(due.begin(), due.end()), due.end());
    std::exception_ptr first;
    for (NodeId to : due) {
      latched_ = now;  // the same instant the deadline index was cut at
      try {
        (void)peers_.at(to).pipeline.expire();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
    return timed_out;
  }

  // Returns when tick() next has work: the earliest deadline of a waiting call; nullopt when
  // no call waits.
  std::optional<time_point> next_deadline() const {
    if (deadlines_.empty()) return std::nullopt;
    return std::get<0>(*deadlines_.begin()) +
           std::chrono::duration_cast<typename Clock::duration>(options_.timeout);
  }

  // Completes every outstanding call to `to` with `error` (e.g. Errc::closed when its
  // connection dropped), in call order. Returns how many. Every callback runs, also when one
  // throws; the first exception propagates afterwards.
  std::size_t cancel(NodeId to, Errc error = Errc::closed) {
    auto it = peers_.find(to);
    if (it == peers_.end()) return 0;
    Peer& p = it->second;
    for (const auto& [id, sent] : p.waiting)
      deadlines_.erase(std::tuple(sent, to, id));
    p.waiting.clear();
    cancelling_ = true;
    struct Reset {
      bool& flag;
      ~Reset() { flag = false; }
    } reset{cancelling_};
    return p.pipeline.fail_all(error);
  }

  // Completes every outstanding call, to every peer, with `error`. Returns how many.
  std::size_t close(Errc error = Errc::closed) {
    std::vector<NodeId> ids;
    for (const auto& [to, p] : peers_) {
      if (p.pipeline.in_flight() > 0) ids.push_back(to);
    }
    std::size_t n = 0;
    std::exception_ptr first;
    for (NodeId to : ids) {
      try {
        n += cancel(to, error);
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
    return n;
  }

  // Returns how many calls to `to` are outstanding (admitted, callback not yet run).
  std::size_t in_flight(NodeId to) const {
    auto it = peers_.find(to);
    return it == peers_.end() ? 0 : it->second.pipeline.in_flight();
  }
  // Returns how many calls are outstanding in total.
  std::size_t in_flight() const {
    std::size_t n = 0;
    for (const auto& [to, p] : peers_)
      n += p.pipeline.in_flight();
    return n;
  }

  const RpcClientStats& stats() const noexcept { return stats_; }
  const RpcClientOptions& options() const noexcept { return options_; }

 private:
  using Pipeline = RequestPipeline<Request, Outcome<Response>, detail::LatchedClock<Clock>>;

  struct Peer {
    Pipeline pipeline;
    CorrelationId issued = 0;                     // the last id given to a call
    std::map<CorrelationId, time_point> waiting;  // no response yet, not timed out
  };

  Peer& peer(NodeId to) {
    auto it = peers_.find(to);
    if (it == peers_.end()) {
      Pipeline pipeline(options_.max_in_flight, options_.timeout,
                        detail::LatchedClock<Clock>{&latched_});
      it = peers_.try_emplace(to, Peer{std::move(pipeline), 0, {}}).first;
    }
    return it->second;
  }

  // Wraps the user's callback: flattens the pipeline's outcome (a timeout, or the server's
  // result) and counts how the call ended.
  typename Pipeline::Callback wrap(Callback done) {
    return [this, done = std::move(done)](Outcome<Outcome<Response>> r) mutable {
      if (!r) {
        if (r.error() == Errc::timeout && !cancelling_) {
          ++stats_.timeouts;
        } else {
          ++stats_.cancelled;
        }
        done(Outcome<Response>(r.error()));
        return;
      }
      if (*r) {
        ++stats_.ok;
      } else {
        ++stats_.errors;
      }
      done(std::move(*r));
    };
  }

  T transport_;
  Clock clock_;
  RpcClientOptions options_;
  time_point latched_{};
  bool cancelling_ = false;
  std::map<NodeId, Peer> peers_;
  std::set<std::tuple<time_point, NodeId, CorrelationId>> deadlines_;  // waiting calls by age
  RpcClientStats stats_;
};

// RpcResponder: the right to answer one request, exactly once. Move-only; holds a copy of the
// server's transport, so it may outlive the server.
template <class Request, class Response, class T>
requires Transport<T, RpcMessage<Request, Response>>
class RpcResponder {
 public:
  using Message = RpcMessage<Request, Response>;

  // Creates the responder for request `id` of `session` from `to`.
  RpcResponder(T transport, NodeId to, std::uint64_t session, std::uint64_t id)
      : transport_(std::move(transport)), to_(to), session_(session), id_(id) {}

  RpcResponder(RpcResponder&& other) noexcept(std::is_nothrow_move_constructible_v<T>)
      : transport_(std::move(other.transport_)),
        to_(other.to_),
        session_(other.session_),
        id_(other.id_) {
    other.transport_.reset();
  }
  // Answers this responder's request Errc::cancelled if it is pending, then takes `other`'s.
  RpcResponder& operator=(RpcResponder&& other) {
    if (this != &other) {
      cancel_quietly();
      transport_ = std::move(other.transport_);
      other.transport_.reset();
      to_ = other.to_;
      session_ = other.session_;
      id_ = other.id_;
    }
    return *this;
  }
  RpcResponder(const RpcResponder&) = delete;
  RpcResponder& operator=(const RpcResponder&) = delete;

  // Answers Errc::cancelled when the request is still pending (an exception from the
  // transport is swallowed: a destructor does not throw).
  ~RpcResponder() { cancel_quietly(); }

  // Sends `response` as the answer. Returns false (sending nothing) when already answered or
  // moved from.
  bool respond(Response response) { return answer(Outcome<Response>(std::move(response))); }

  // Sends the error `error` as the answer. Returns false (sending nothing) when already
  // answered or moved from. Throws std::invalid_argument when `error` is not a pods::Errc
  // value.
  bool fail(Errc error) {
    if (!detail::rpc_known_errc(static_cast<int>(error))) {
      std::string what = "RpcResponder::fail: error must be a pods::Errc value, got ";
      what += std::to_string(static_cast<int>(error));
      throw std::invalid_argument(what);
    }
    return answer(Outcome<Response>(error));
  }

  // Returns true while the request waits for its answer.
  bool pending() const noexcept { return transport_.has_value(); }
  // Returns the node that sent the request.
  NodeId peer() const noexcept { return to_; }
  // Returns the request's correlation id.
  std::uint64_t id() const noexcept { return id_; }

 private:
  bool answer(Outcome<Response> result) {
    if (!transport_) return false;
    T transport = std::move(*transport_);
    transport_.reset();  // answered, even if the send below throws
    (void)transport.send(to_, Message(std::in_place_index<1>,
                                      RpcResponse<Response>{session_, id_, std::move(result)}));
    return true;
  }

  void cancel_quietly() noexcept {
    try {
      (void)answer(Outcome<Response>(Errc::cancelled));
    } catch (...) {
      // The request stays unanswered; its caller times out.
    }
  }

  std::optional<T> transport_;  // engaged while pending
  NodeId to_;
  std::uint64_t session_;
  std::uint64_t id_;
};

struct RpcServerStats {
  std::uint64_t requests = 0;              // handed to the handler
  std::uint64_t handler_failures = 0;      // the handler threw (answered Errc::failed)
  std::uint64_t unexpected_responses = 0;  // a response delivered to the server

  friend bool operator==(const RpcServerStats&, const RpcServerStats&) = default;
};

// RpcServer: hands each request delivered through `T` to the handler, which answers through
// its RpcResponder.
template <class Request, class Response, class T>
requires Transport<T, RpcMessage<Request, Response>>
class RpcServer {
 public:
  using Message = RpcMessage<Request, Response>;
  using Responder = RpcResponder<Request, Response, T>;
  using Handler = pods::detail::MoveOnlyFunction<void(NodeId, Request, Responder&)>;

  // Creates a server answering through `transport` (retained). `handler` (retained) is one of
  //   handler(NodeId from, Request request, Responder& respond) -> void
  //     answers through `respond` now, or moves it away and answers later, once;
  //   handler(NodeId from, Request request) -> Response or Outcome<Response>
  //     answers at once with what it returns (an Errc: that error).
  // Throws std::invalid_argument naming handler when it is empty.
  template <class F>
  RpcServer(T transport, F handler)
      : transport_(std::move(transport)), handler_(adapt(std::move(handler))) {
    if (!handler_) throw std::invalid_argument("RpcServer: handler must not be empty");
  }

  // Hands a request from `from` to the handler. Its answer goes back to `from`; when the
  // handler throws, an unanswered request is answered Errc::failed and the exception is
  // counted, not propagated. Drops and counts a response (that is the client's).
  void receive(NodeId from, Message message) {
    auto* q = std::get_if<0>(&message);
    if (q == nullptr) {
      ++stats_.unexpected_responses;
      return;
    }
    ++stats_.requests;
    Responder respond(transport_, from, q->session, q->id);
    try {
      handler_(from, std::move(q->body), respond);
    } catch (...) {
      ++stats_.handler_failures;
      (void)respond.fail(Errc::failed);
    }
  }

  const RpcServerStats& stats() const noexcept { return stats_; }

 private:
  template <class F>
  static Handler adapt(F handler) {
    if (detail::rpc_empty_callable(handler)) return Handler();
    if constexpr (std::is_invocable_v<F&, NodeId, Request&&, Responder&>) {
      return Handler(std::move(handler));
    } else {
      static_assert(std::is_invocable_r_v<Outcome<Response>, F&, NodeId, Request&&>,
                    "RpcServer: the handler must be callable as (NodeId, Request, Responder&) "
                    "or as (NodeId, Request) returning a Response or an Outcome<Response>");
      return Handler([h = std::move(handler)](NodeId from, Request q, Responder& r) mutable {
        Outcome<Response> out = h(from, std::move(q));
        if (out) {
          (void)r.respond(std::move(*out));
        } else {
          (void)r.fail(out.error());
        }
      });
    }
  }

  T transport_;
  Handler handler_;
  RpcServerStats stats_;
};

}  // namespace pods::net

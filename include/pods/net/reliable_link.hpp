// pods/net/reliable_link.hpp — ReliableLink: a perfect link over a fair-loss transport
//
// Problem:       A fair-loss link (a sim::Network endpoint, UDP, a TCP transport across
//                reconnects) loses, duplicates and reorders messages. A protocol written
//                against it must number, acknowledge, retransmit and deduplicate by itself,
//                and each protocol doing that again is where a duplicate slips through.
// Solution:      ReliableLink<M, Inner, Clock> is a transport decorator. Its user sends M with
//                send(to, m) as on any Transport; the link gives each message a sequence
//                number per peer (1, 2, ...) and sends a ReliableData wire message through
//                the inner transport, keeping the message until the peer acknowledges it.
//                The receiver delivers messages to its handler strictly in sequence order,
//                holding early ones in a receive window and dropping ones it has delivered,
//                and answers every data message with a ReliableAck: a cumulative number
//                (everything up to it was delivered) and 64 selective bits (which later ones
//                it holds). tick() retransmits, on a timer read from the clock with capped
//                exponential backoff, each message neither acknowledged nor selectively held.
//                Every message names its sender's incarnation (options.incarnation, which
//                the owner raises on every restart), so a restarted peer's new numbering is
//                not taken for duplicates, and data names the sender's oldest unacknowledged
//                number, so a restarted receiver knows where the stream resumes.
//                In the textbook terms (Cachin, Guerraoui and Rodrigues, 2.4.3 and 2.4.5) it
//                turns a fair-loss link into a stubborn one (retransmission) and a stubborn
//                one into a perfect (reliable) link (duplicate suppression), adding FIFO order.
// Guarantees:    Between one incarnation of a sender and one incarnation of a receiver:
//                - each message is delivered at most once, in the order it was sent, and only
//                  if it was sent (the inner link invents nothing);
//                - every message the sender's send() accepted after the receiver started is
//                  delivered, as long as both live and the inner link is fair-loss (a message
//                  sent again and again eventually arrives); a gap in the delivered numbers is
//                  only ever messages an earlier incarnation of the receiver acknowledged;
//                - at most `window` messages per peer are in flight and at most `capacity`
//                  are held per peer; buffered(peer) counts those not yet acknowledged.
//                Full policy: try_send() returns Errc::full when `capacity` messages to the
//                peer are unacknowledged; send() then drops the message and counts it in
//                stats().rejected (a protocol that must not lose one uses try_send).
// Not provided:  Delivery across a crash: an unacknowledged message of a crashed sender is
//                lost, and a receiver that restarts (it keeps no durable state) may get again
//                the messages its earlier incarnation received but had not acknowledged.
//                Incarnations must grow across restarts; one reused makes the restarted node's
//                first messages look like duplicates (they are dropped until its numbering
//                passes the old one). No flow control beyond the window, no congestion
//                control, no fast retransmit (loss is repaired by the timer), no protection
//                against a forged acknowledgement: stack it over AuthenticatedLink on an
//                untrusted network.
// Thread safety: thread-compatible. Copies share one link (a handle), so every copy must be
//                used from one thread at a time, e.g. on a SingularUpdateQueue.
// Errors:        Options out of range throw std::invalid_argument naming the option. A
//                message no correct peer sends (an acknowledgement of a number never sent, a
//                data number of 0) is dropped and counted in stats().malformed. The wire codec
//                throws pods::CorruptionError("reliable link message", offset, reason). What
//                the inner transport throws propagates; so does what the handler throws, and
//                the messages after it in the same receive() are then lost (they were
//                acknowledged): a handler should not throw.
// Cost:          Per message: one copy kept for retransmission (one allocation of a deque
//                block per few messages) and one ack back. Wire overhead: 30 bytes of data
//                header (version, kind, incarnation, number, base, payload length) and a
//                34-byte ack. tick() and next_deadline() are O(peers x window).
// Example:
//   pods::ManualClock clock;
//   pods::Outbox<pods::net::ReliableLinkMessage<int>> wire;
//   pods::net::ReliableLink<int, decltype(wire), pods::ManualClock> link(wire, clock);
//   link.on_receive([](pods::NodeId from, int m) { std::printf("%d from %llu\n", m,
//                                                  static_cast<unsigned long long>(from)); });
//   link.send(2, 42);                          // wire now holds a ReliableData for node 2
//   for (auto& sent : wire.take()) link.receive(2, sent.message);  // (a loop back, for show)
//   clock.advance(1s);
//   link.tick();                               // retransmits what was not acknowledged
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>

#include <algorithm>
#include <chrono>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <variant>
#include <vector>

namespace pods::net {

// A numbered message of the user's, sent from one incarnation of a node to a peer.
template <class M>
struct ReliableData {
  std::uint64_t incarnation = 0;  // the sender's incarnation
  std::uint64_t seq = 0;          // 1, 2, ... per (sender incarnation, peer)
  std::uint64_t base = 0;         // the sender's oldest unacknowledged number (1 <= base <= seq)
  M payload;

  friend bool operator==(const ReliableData&, const ReliableData&) = default;
};

// The receiver's answer to data: what it has delivered and what it holds.
struct ReliableAck {
  std::uint64_t incarnation = 0;       // the acknowledging node's incarnation
  std::uint64_t data_incarnation = 0;  // the incarnation of the data's sender it answers
  std::uint64_t cumulative = 0;        // every number <= this was delivered
  std::uint64_t selective = 0;         // bit i set: number cumulative + 2 + i is held

  friend bool operator==(const ReliableAck&, const ReliableAck&) = default;
};

// The wire message of a ReliableLink carrying M: what its inner transport moves.
template <class M>
using ReliableLinkMessage = std::variant<ReliableData<M>, ReliableAck>;

// The codec of ReliableLinkMessage<M>, given the user's codec of M. Layout (little-endian):
// u8 version (1), u8 kind (0 data, 1 ack); data: u64 incarnation, u64 seq, u64 base, u32
// length, the payload's bytes; ack: u64 incarnation, u64 data_incarnation, u64 cumulative,
// u64 selective. Trailing bytes are corruption.
template <class M, Codec<M> C>
class ReliableLinkCodec {
 public:
  static constexpr std::uint8_t version = 1;
  static constexpr std::size_t data_overhead = 30;  // bytes besides the payload's
  static constexpr std::size_t ack_size = 34;

  // Uses a default-constructed C for the user's messages.
  ReliableLinkCodec() requires std::default_initializable<C>
  = default;
  // Uses `payload_codec` (copied) for the user's messages.
  explicit ReliableLinkCodec(C payload_codec) : payload_(std::move(payload_codec)) {}

  // Appends the encoding of `m` to `out`. Allocates as out grows; throws std::length_error
  // when the payload's encoding exceeds 4 GiB - 1.
  void encode(const ReliableLinkMessage<M>& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    if (const auto* d = std::get_if<ReliableData<M>>(&m)) {
      w.u64(d->incarnation);
      w.u64(d->seq);
      w.u64(d->base);
      const std::size_t length_at = out.size();
      w.u32(0);
      payload_.encode(d->payload, out);
      const std::size_t n = out.size() - length_at - 4;
      if (n > 0xFFFFFFFFu) throw std::length_error("ReliableLinkCodec: payload exceeds 4 GiB - 1");
      for (std::size_t i = 0; i < 4; ++i)
        out[length_at + i] = static_cast<std::byte>(n >> (8 * i));
    } else {
      const auto& a = std::get<ReliableAck>(m);
      w.u64(a.incarnation);
      w.u64(a.data_incarnation);
      w.u64(a.cumulative);
      w.u64(a.selective);
    }
  }

  // Returns the message `bytes` encode. Throws pods::CorruptionError("reliable link message",
  // offset, reason) on an unknown version or kind, a truncated field, trailing bytes, or a
  // payload the user's codec rejects (at the payload's offset plus the codec's). Allocates.
  ReliableLinkMessage<M> decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "reliable link message");
    if (r.header(version, std::variant_size_v<ReliableLinkMessage<M>>, {.kind = "kind"}) == 0) {
      const std::uint64_t incarnation = r.u64();
      const std::uint64_t seq = r.u64();
      const std::uint64_t base = r.u64();
      const std::size_t payload_at = r.offset() + 4;
      const auto payload = r.bytes_view();
      r.expect_end();
      try {
        return ReliableData<M>{incarnation, seq, base, payload_.decode(payload)};
      } catch (const CorruptionError& e) {
        std::string reason = "payload: ";
        reason += e.what();
        r.fail(payload_at + e.offset(), reason);
      }
    }
    ReliableAck a;
    a.incarnation = r.u64();
    a.data_incarnation = r.u64();
    a.cumulative = r.u64();
    a.selective = r.u64();
    r.expect_end();
    return a;
  }

 private:
  C payload_{};
};

struct ReliableLinkOptions {
  // This node's incarnation: raise it on every restart (a restart counter kept in storage,
  // or the wall-clock time at start in nanoseconds).
  std::uint64_t incarnation = 0;
  // Messages per peer in flight (sent, not yet acknowledged), in [1, 65536].
  std::size_t window = 64;
  // Messages per peer held (in flight plus waiting for the window), at least `window`.
  std::size_t capacity = 1024;
  // The first retransmission timeout (> 0); each retransmission of a message doubles it...
  std::chrono::nanoseconds retransmit_after = std::chrono::milliseconds(100);
  // ... up to this (>= retransmit_after).
  std::chrono::nanoseconds max_retransmit_after = std::chrono::seconds(2);
  // Breaks duplicate suppression on purpose: a data message already delivered is delivered
  // again. Only for tests showing that a checker catches a broken link; never set it.
  bool unsafe_deliver_duplicates = false;
};

// What a ReliableLink has done.
struct ReliableLinkStats {
  std::uint64_t sent = 0;             // messages send() or try_send() accepted
  std::uint64_t rejected = 0;         // messages send() dropped because the peer's buffer was full
  std::uint64_t delivered = 0;        // messages handed to the handler
  std::uint64_t transmissions = 0;    // data messages given to the inner transport
  std::uint64_t retransmissions = 0;  // of those, repeats of a number already sent
  std::uint64_t acks_sent = 0;
  std::uint64_t acks_received = 0;
  std::uint64_t duplicates = 0;     // data received again and suppressed
  std::uint64_t stale = 0;          // from an older incarnation of the peer, or to one of ours
  std::uint64_t out_of_window = 0;  // data beyond the receive window (the sender retransmits)
  std::uint64_t malformed = 0;      // messages no correct peer sends
  std::uint64_t skipped = 0;        // numbers passed over: acknowledged by an earlier receiver
  std::uint64_t peer_restarts = 0;  // newer incarnations of a peer seen

  friend bool operator==(const ReliableLinkStats&, const ReliableLinkStats&) = default;
};

// Write it as ReliableLink<M, Inner, Clock>: M the user's message (copyable: it is kept for
// retransmission), Inner a Transport of ReliableLinkMessage<M> (a sim::Network endpoint, a
// TcpTransport, an AuthenticatedLink, an Outbox), Clock a PhysicalClock for the timers.
template <class M, class Inner, PhysicalClock Clock = SteadyClock>
requires std::copy_constructible<M> && Transport<Inner, ReliableLinkMessage<M>>
class ReliableLink {
 public:
  using Message = M;
  using Wire = ReliableLinkMessage<M>;
  template <Codec<M> C>
  using WireCodec = ReliableLinkCodec<M, C>;
  using time_point = typename Clock::time_point;
  using Handler = std::function<void(NodeId from, M message)>;

  // Creates a link sending through `inner` (copied) with timers on `clock` (copied). Throws
  // std::invalid_argument naming the option out of range. Allocates the shared state.
  ReliableLink(Inner inner, Clock clock, ReliableLinkOptions options = {})
      : s_(std::make_shared<State>(std::move(inner), std::move(clock), validated(options))) {}

  // Installs `handler` (retained; replaces the previous one), called with each message in
  // order. Without one, messages are counted as delivered and dropped. The handler may call
  // send() on this link; it must not call receive() or tick().
  void on_receive(Handler handler) { s_->handler = std::move(handler); }

  // Sends `message` (copied into the peer's buffer, retained until acknowledged) to `to`.
  // When `capacity` messages to `to` are unacknowledged it drops the message and counts it
  // in stats().rejected. Allocates; what the inner transport throws propagates.
  void send(NodeId to, M message) {
    if (!try_send(to, std::move(message))) ++s_->stats.rejected;
  }

  // Sends `message` as send() does, or returns Errc::full (and keeps nothing) when `capacity`
  // messages to `to` are unacknowledged.
  Outcome<void> try_send(NodeId to, M message) {
    State& s = *s_;
    Peer& p = s.peers[to];
    if (p.queue.size() >= s.options.capacity) return Errc::full;
    p.queue.push_back(Outgoing{p.next_seq++, std::move(message)});
    ++s.stats.sent;
    if (p.queue.size() <= s.options.window) transmit(to, p, p.queue.back(), s.clock.now());
    return {};
  }

  // Handles `message` that the inner transport delivered from `from`: data is acknowledged
  // and, when it is next in order, delivered to the handler (with any held messages it
  // unblocks) before this returns; an acknowledgement frees the messages it covers and sends
  // the ones waiting for the window. Drops and counts stale, duplicate and malformed messages.
  // Allocates.
  void receive(NodeId from, Wire message) {
    if (auto* d = std::get_if<ReliableData<M>>(&message)) {
      on_data(from, std::move(*d));
    } else {
      on_ack(from, std::get<ReliableAck>(message));
    }
  }

  // Retransmits every message whose timer is due by the clock. Allocates nothing beyond what
  // the inner transport does.
  void tick() {
    State& s = *s_;
    const time_point now = s.clock.now();
    for (auto& [to, p] : s.peers) {
      const std::size_t n = std::min(p.queue.size(), s.options.window);
      for (std::size_t i = 0; i < n; ++i) {
        Outgoing& o = p.queue[i];
        // The oldest is resent even when selectively held, so a lost newer ack (or a
        // receiver that restarted and forgot what it held) cannot leave the stream stuck.
        if ((!o.held || i == 0) && o.due <= now) transmit(to, p, o, now);
      }
    }
  }

  // Returns when tick() next has a retransmission to make, or nullopt when every message is
  // acknowledged.
  std::optional<time_point> next_deadline() const {
    const State& s = *s_;
    std::optional<time_point> next;
    for (const auto& [to, p] : s.peers) {
      const std::size_t n = std::min(p.queue.size(), s.options.window);
      for (std::size_t i = 0; i < n; ++i) {
        const Outgoing& o = p.queue[i];
        if ((!o.held || i == 0) && (!next || o.due < *next)) next = o.due;
      }
    }
    return next;
  }

  // Returns how many messages to `peer` are not yet acknowledged (in flight or waiting).
  std::size_t buffered(NodeId peer) const {
    auto it = s_->peers.find(peer);
    return it == s_->peers.end() ? 0 : it->second.queue.size();
  }

  // Returns the counters.
  const ReliableLinkStats& stats() const noexcept { return s_->stats; }

  // Returns the options the link was built with.
  const ReliableLinkOptions& options() const noexcept { return s_->options; }

 private:
  struct Outgoing {
    std::uint64_t seq = 0;
    M payload;
    bool held = false;  // the receiver holds it (selective ack): no retransmission needed
    std::uint32_t attempts = 0;
    time_point due{};
  };
  struct Peer {
    // Sending to the peer: queue.front() is the oldest unacknowledged (the base).
    std::uint64_t next_seq = 1;
    std::deque<Outgoing> queue;
    // The peer's incarnation, from anything it sent; nullopt: nothing heard yet.
    std::optional<std::uint64_t> incarnation;
    // Receiving from it: 0 until the first data of its incarnation.
    std::uint64_t next_expected = 0;
    std::map<std::uint64_t, M> early;  // held out of order, within the window
  };
  struct State {
    State(Inner i, Clock c, ReliableLinkOptions o)
        : inner(std::move(i)), clock(std::move(c)), options(o) {}
    Inner inner;
    Clock clock;
    ReliableLinkOptions options;
    Handler handler;
    std::unordered_map<NodeId, Peer> peers;
    ReliableLinkStats stats;
  };

  static ReliableLinkOptions validated(const ReliableLinkOptions& o) {
    auto fail = [](const std::string& what) {
      throw std::invalid_argument("ReliableLink: " + what);
    };
    if (o.window < 1 || o.window > 65536) {
      fail("window must be in [1, 65536], got " + std::to_string(o.window));
    }
    if (o.capacity < o.window) {
      fail("capacity (" + std::to_string(o.capacity) + ") must be at least window (" +
           std::to_string(o.window) + ")");
    }
    if (o.retransmit_after.count() <= 0) {
      fail("retransmit_after must be positive, got " + std::to_string(o.retransmit_after.count()) +
           " ns");
    }
    if (o.max_retransmit_after < o.retransmit_after) {
      fail("max_retransmit_after (" + std::to_string(o.max_retransmit_after.count()) +
           " ns) must not be less than retransmit_after (" +
           std::to_string(o.retransmit_after.count()) + " ns)");
    }
    return o;
  }

  std::chrono::nanoseconds timeout(std::uint32_t attempts) const {
    const ReliableLinkOptions& o = s_->options;
    std::chrono::nanoseconds t = o.retransmit_after;
    for (std::uint32_t i = 1; i < attempts && t < o.max_retransmit_after; ++i)
      t *= 2;
    return std::min(t, o.max_retransmit_after);
  }

  void transmit(NodeId to, Peer& p, Outgoing& o, time_point now) {
    State& s = *s_;
    if (o.attempts > 0) ++s.stats.retransmissions;
    ++s.stats.transmissions;
    if (o.attempts < 64) ++o.attempts;
    o.due = now + timeout(o.attempts);
    Wire w = ReliableData<M>{s.options.incarnation, o.seq, p.queue.front().seq, o.payload};
    static_cast<void>(s.inner.send(to, std::move(w)));
  }

  // Returns false (counting a stale message) when `incarnation` is older than the peer's
  // latest; on a newer one, forgets what the peer's previous incarnation held or sent.
  bool admit(Peer& p, std::uint64_t incarnation) {
    State& s = *s_;
    if (p.incarnation && incarnation < *p.incarnation) {
      ++s.stats.stale;
      return false;
    }
    if (!p.incarnation || incarnation > *p.incarnation) {
      if (p.incarnation) ++s.stats.peer_restarts;
      p.incarnation = incarnation;
      p.next_expected = 0;
      p.early.clear();
      // The new process holds nothing we sent: resend everything in flight at the next tick.
      const time_point now = s.clock.now();
      const std::size_t n = std::min(p.queue.size(), s.options.window);
      for (std::size_t i = 0; i < n; ++i) {
        p.queue[i].held = false;
        if (p.queue[i].attempts > 0) p.queue[i].due = now;
      }
    }
    return true;
  }

  void send_ack(NodeId to, Peer& p) {
    State& s = *s_;
    ReliableAck a;
    a.incarnation = s.options.incarnation;
    a.data_incarnation = *p.incarnation;
    a.cumulative = p.next_expected - 1;
    for (auto it = p.early.begin(); it != p.early.end(); ++it) {
      const std::uint64_t bit = it->first - p.next_expected - 1;  // next_expected is missing
      if (bit >= 64) break;
      a.selective |= std::uint64_t{1} << bit;
    }
    ++s.stats.acks_sent;
    static_cast<void>(s.inner.send(to, Wire(a)));
  }

  void on_data(NodeId from, ReliableData<M> d) {
    State& s = *s_;
    if (d.seq == 0 || d.base == 0 || d.base > d.seq) {
      ++s.stats.malformed;
      return;
    }
    Peer& p = s.peers[from];
    if (!admit(p, d.incarnation)) return;
    if (p.next_expected == 0) p.next_expected = d.base;  // where this receiver joins the stream
    if (d.base > p.next_expected) {
      // The sender freed numbers below its base: an earlier incarnation of this receiver
      // acknowledged them. Nobody will send them again.
      s.stats.skipped += d.base - p.next_expected;
      p.early.erase(p.early.begin(), p.early.lower_bound(d.base));
      p.next_expected = d.base;
    }
    std::vector<M> ready;
    if (d.seq < p.next_expected || p.early.count(d.seq) != 0) {
      ++s.stats.duplicates;
      if (s.options.unsafe_deliver_duplicates && d.seq < p.next_expected) {
        ready.push_back(std::move(d.payload));
      }
    } else if (d.seq - p.next_expected >= s.options.window) {
      ++s.stats.out_of_window;
    } else if (d.seq == p.next_expected) {
      ready.push_back(std::move(d.payload));
      ++p.next_expected;
      for (auto it = p.early.begin(); it != p.early.end() && it->first == p.next_expected;) {
        ready.push_back(std::move(it->second));
        it = p.early.erase(it);
        ++p.next_expected;
      }
    } else {
      p.early.emplace(d.seq, std::move(d.payload));
    }
    send_ack(from, p);
    // No reference into the state is used from here on: the handler may send (and so add
    // peers, rehashing the map).
    for (M& m : ready) {
      ++s.stats.delivered;
      if (s.handler) s.handler(from, std::move(m));
    }
  }

  void on_ack(NodeId from, const ReliableAck& a) {
    State& s = *s_;
    Peer& p = s.peers[from];
    if (a.data_incarnation != s.options.incarnation) {
      ++s.stats.stale;  // it answers an earlier incarnation of this node
      return;
    }
    if (a.cumulative >= p.next_seq) {
      ++s.stats.malformed;  // it acknowledges a number never sent
      return;
    }
    if (!admit(p, a.incarnation)) return;
    ++s.stats.acks_received;
    const std::size_t before = std::min(p.queue.size(), s.options.window);
    std::size_t freed = 0;
    while (!p.queue.empty() && p.queue.front().seq <= a.cumulative) {
      p.queue.pop_front();
      ++freed;
    }
    if (a.selective != 0) {
      const std::size_t n = std::min(p.queue.size(), s.options.window);
      for (std::size_t i = 0; i < n; ++i) {
        Outgoing& o = p.queue[i];
        if (o.seq < a.cumulative + 2) continue;
        const std::uint64_t bit = o.seq - a.cumulative - 2;
        if (bit >= 64) break;
        if ((a.selective >> bit) & 1) o.held = true;
      }
    }
    if (freed == 0) return;
    // Messages that entered the window with this ack are sent now.
    const time_point now = s.clock.now();
    const std::size_t in_flight = before - std::min(before, freed);
    const std::size_t n = std::min(p.queue.size(), s.options.window);
    for (std::size_t i = in_flight; i < n; ++i) {
      if (p.queue[i].attempts == 0) transmit(from, p, p.queue[i], now);
    }
  }

  std::shared_ptr<State> s_;
};

}  // namespace pods::net

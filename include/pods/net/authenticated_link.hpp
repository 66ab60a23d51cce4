// pods/net/authenticated_link.hpp — AuthenticatedLink: HMAC-SHA256 on every message, replays
// refused
//
// Problem:       A transport's idea of who sent a message is an address or a handshake anyone
//                can fake. On a network an attacker (or a misrouted, misconfigured node) can
//                inject a message naming another sender, change bytes in flight, or record a
//                message and play it again later, and a protocol acts on each as genuine.
// Solution:      AuthenticatedLink<M, C, Inner> is a transport decorator. send(to, m) encodes m
//                with the user's codec C and sends an AuthenticatedLinkMessage through the inner
//                transport: sender, receiver, the sender's incarnation, a per-link counter (1,
//                2, ...), the payload, and an HMAC-SHA256 (libsodium's crypto_auth_hmacsha256)
//                over all of them, keyed with the key of that pair of nodes. The receiver
//                recomputes the MAC with the key of the sender the transport names and compares
//                in constant time (crypto_verify_32), checks that the message names this node
//                as its receiver, and refuses a counter it has seen: a sliding window of the
//                last `replay_window` counters per sender (so reordering by fewer than that many
//                messages is tolerated), reset when the sender's incarnation grows, with older
//                incarnations refused. Keys: LinkKeys holds a key per peer given by the user,
//                or derives one per pair from a cluster key with crypto_kdf (two levels: the
//                smaller node id, then the larger, so both ends derive the same key and no two
//                pairs share one).
//                In the textbook terms (Cachin, Guerraoui and Rodrigues, 2.5) this is the MAC
//                half of an authenticated perfect link: put ReliableLink ABOVE it for the
//                perfect half, as ReliableLink<P, AuthenticatedLink<ReliableLinkMessage<P>,
//                ReliableLinkCodec<P, PC>, Inner>>. The other order compiles but leaves the
//                reliable layer's acknowledgements unauthenticated: a forged ack makes the
//                sender forget a message it never delivered.
// Guarantees:    A delivered message was sent by the node the transport named, to this node,
//                unmodified, by a holder of that pair's key; each (sender incarnation, counter)
//                is delivered at most once; a message of an older incarnation than one already
//                seen is refused. Messages are never delayed: what passes is handed over at once.
// Not provided:  Confidentiality (payloads travel in clear: pair it with TLS or an AEAD where
//                that matters); retransmission or ordering (that is ReliableLink's); replay
//                protection across a restart of the RECEIVER (it keeps its window in memory, so
//                a restarted receiver accepts once more, once each, messages of the sender's
//                current incarnation that an attacker recorded; a fresh key per receiver
//                incarnation, or a nonce handshake, would close that); key rotation. A network
//                duplicate is indistinguishable from a replay and is counted as one.
// Thread safety: thread-compatible. Copies share one link (a handle): use every copy from one
//                thread at a time. LinkKeys and derive_link_key are thread-safe to call
//                concurrently on distinct objects; sodium_init runs once, thread-safely.
// Errors:        send() to a peer without a key, and a replay_window that is not a multiple of
//                64 in [64, 2^20], throw std::invalid_argument naming the argument. Messages
//                that fail a check are dropped and counted in stats(): unknown_peer (no key),
//                misaddressed (names another sender or receiver), bad_mac (forged or
//                tampered), replayed (seen, or from an older incarnation), too_old (below the
//                window), undecodable (the MAC holds but the codec throws). The wire codec
//                throws pods::CorruptionError("authenticated link message", offset, reason).
//                std::runtime_error when libsodium cannot initialise.
// Cost:          Per message one HMAC-SHA256 on each side over 37 bytes of header plus the
//                payload (the key's inner and outer pads are hashed once per peer and kept);
//                one allocation for the encoded payload. Wire overhead: 69 bytes (version,
//                sender, receiver, incarnation, counter, length, 32-byte MAC). The replay
//                window costs replay_window / 8 bytes per keyed peer sent to or heard from;
//                nothing is kept for a node without a key.
// Example:
//   pods::Outbox<pods::net::AuthenticatedLinkMessage> wire;
//   pods::net::LinkKey cluster_key{};          // in production: 32 random bytes, kept secret
//   auto keys = pods::net::LinkKeys::derived(cluster_key);
//   pods::net::AuthenticatedLink<std::string, pods::StringCodec, decltype(wire)> link(
//       wire, /*self=*/1, keys, {.incarnation = 1});
//   link.on_receive([](pods::NodeId from, std::string m) { std::cout << from << ": " << m; });
//   link.send(2, "hello");                     // wire holds it, MAC'd with key(1, 2)
//   auto stats = link.stats();                 // sent 1
#pragma once

#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>

#include <sodium.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pods::net {

// The key of a link, and of a cluster (crypto_auth_hmacsha256_KEYBYTES == crypto_kdf_KEYBYTES).
using LinkKey = std::array<std::byte, 32>;
static_assert(crypto_auth_hmacsha256_KEYBYTES == 32 && crypto_kdf_KEYBYTES == 32);

namespace detail {
// Initialises libsodium once per process (thread-safe: a function-local static). Throws
// std::runtime_error when it cannot.
inline void sodium_ready() {
  static const int rc = sodium_init();  // 0 first time, 1 when already done, -1 on failure
  if (rc < 0) throw std::runtime_error("AuthenticatedLink: sodium_init failed");
}

inline const unsigned char* uchars(const std::byte* p) noexcept {
  return reinterpret_cast<const unsigned char*>(p);
}
inline unsigned char* uchars(std::byte* p) noexcept {
  return reinterpret_cast<unsigned char*>(p);
}
}  // namespace detail

// Returns the key of the link between `a` and `b` derived from `cluster_key`: the same for
// (a, b) and (b, a), and unrelated for any other pair. Two crypto_kdf steps: the smaller id
// under context "podslnk1", then the larger under "podslnk2". Throws std::runtime_error when
// libsodium cannot initialise.
inline LinkKey derive_link_key(const LinkKey& cluster_key, NodeId a, NodeId b) {
  detail::sodium_ready();
  const NodeId lo = std::min(a, b), hi = std::max(a, b);
  LinkKey first{}, key{};
  crypto_kdf_derive_from_key(detail::uchars(first.data()), first.size(), lo, "podslnk1",
                             detail::uchars(cluster_key.data()));
  crypto_kdf_derive_from_key(detail::uchars(key.data()), key.size(), hi, "podslnk2",
                             detail::uchars(first.data()));
  sodium_memzero(first.data(), first.size());
  return key;
}

// The keys a node authenticates its links with: a key per peer set by the user, or, for a
// peer without one, the pair's key derived from a cluster key. The keys are wiped (sodium_memzero)
// when the object is destroyed.
class LinkKeys {
 public:
  // Holds no key: only set() ones.
  LinkKeys() = default;

  // Returns keys that derive each pair's key from `cluster_key` (copied).
  static LinkKeys derived(const LinkKey& cluster_key) {
    LinkKeys keys;
    keys.cluster_ = cluster_key;
    return keys;
  }

  // Sets the key of the link to `peer` (copied; it overrides derivation). Allocates.
  LinkKeys& set(NodeId peer, const LinkKey& key) {
    explicit_[peer] = key;
    return *this;
  }

  // Returns the key of the link between `self` and `peer`, or nullopt when there is none.
  std::optional<LinkKey> find(NodeId self, NodeId peer) const {
    if (auto it = explicit_.find(peer); it != explicit_.end()) return it->second;
    if (cluster_) return derive_link_key(*cluster_, self, peer);
    return std::nullopt;
  }

  LinkKeys(const LinkKeys&) = default;
  LinkKeys& operator=(const LinkKeys&) = default;
  LinkKeys(LinkKeys&&) = default;
  LinkKeys& operator=(LinkKeys&&) = default;
  ~LinkKeys() {
    for (auto& [peer, key] : explicit_)
      sodium_memzero(key.data(), key.size());
    if (cluster_) sodium_memzero(cluster_->data(), cluster_->size());
  }

 private:
  std::optional<LinkKey> cluster_;
  std::unordered_map<NodeId, LinkKey> explicit_;
};

// The wire message of an AuthenticatedLink: what its inner transport moves.
struct AuthenticatedLinkMessage {
  NodeId sender = 0;
  NodeId receiver = 0;
  std::uint64_t incarnation = 0;  // the sender's
  std::uint64_t counter = 0;      // 1, 2, ... per (sender incarnation, receiver)
  std::vector<std::byte> payload;
  std::array<std::byte, 32> mac{};

  friend bool operator==(const AuthenticatedLinkMessage&,
                         const AuthenticatedLinkMessage&) = default;
};

// The codec of AuthenticatedLinkMessage. Layout (little-endian): u8 version (1), u64 sender,
// u64 receiver, u64 incarnation, u64 counter, u32 length and the payload, 32 bytes of MAC.
// Trailing bytes are corruption. It checks the layout only; the MAC is the link's to check.
struct AuthenticatedLinkCodec {
  static constexpr std::uint8_t version = 1;
  static constexpr std::size_t overhead = 69;  // bytes besides the payload's

  // Appends the encoding of `m` to `out`. Allocates as out grows.
  void encode(const AuthenticatedLinkMessage& m, Buffer& out) const {
    wire::Writer w(out);
    w.u8(version);
    w.u64(m.sender);
    w.u64(m.receiver);
    w.u64(m.incarnation);
    w.u64(m.counter);
    w.bytes(m.payload);
    out.insert(out.end(), m.mac.begin(), m.mac.end());
  }

  // Returns the message `bytes` encode. Throws pods::CorruptionError("authenticated link
  // message", offset, reason) on an unknown version, a truncated field or trailing bytes.
  AuthenticatedLinkMessage decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "authenticated link message");
    r.expect_version(version);
    AuthenticatedLinkMessage m;
    m.sender = r.u64();
    m.receiver = r.u64();
    m.incarnation = r.u64();
    m.counter = r.u64();
    m.payload = r.bytes();
    if (r.remaining() < m.mac.size()) {
      r.fail("truncated: the MAC needs 32 bytes, " + std::to_string(r.remaining()) + " remain");
    }
    std::copy_n(bytes.begin() + static_cast<std::ptrdiff_t>(r.offset()), m.mac.size(),
                m.mac.begin());
    if (r.remaining() != m.mac.size()) {
      r.fail(r.offset() + m.mac.size(),
             std::to_string(r.remaining() - m.mac.size()) + " unexpected trailing bytes");
    }
    return m;
  }
};
static_assert(Codec<AuthenticatedLinkCodec, AuthenticatedLinkMessage>);

struct AuthenticatedLinkOptions {
  // This node's incarnation: raise it on every restart, or receivers refuse its new counters.
  std::uint64_t incarnation = 0;
  // How many recent counters per sender are remembered: a multiple of 64 in [64, 2^20]. A
  // message reordered behind this many later ones is dropped as too_old.
  std::size_t replay_window = 1024;
};

// What an AuthenticatedLink has done.
struct AuthenticatedLinkStats {
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;
  std::uint64_t unknown_peer = 0;  // from a node this link has no key for
  std::uint64_t misaddressed = 0;  // names a sender other than the transport's, or another receiver
  std::uint64_t bad_mac = 0;       // forged, tampered with, or keyed with another key
  std::uint64_t replayed = 0;      // a counter already seen, or an older incarnation
  std::uint64_t too_old = 0;       // a counter below the replay window
  std::uint64_t undecodable = 0;   // authentic, but the user's codec rejects the payload

  friend bool operator==(const AuthenticatedLinkStats&, const AuthenticatedLinkStats&) = default;
};

// Write it as AuthenticatedLink<M, C, Inner>: M the user's message, C a Codec<M>, Inner a
// Transport of AuthenticatedLinkMessage (a sim::Network endpoint, a TcpTransport, an Outbox).
template <class M, Codec<M> C, class Inner>
requires Transport<Inner, AuthenticatedLinkMessage>
class AuthenticatedLink {
 public:
  using Message = M;
  using Wire = AuthenticatedLinkMessage;
  using WireCodec = AuthenticatedLinkCodec;
  using Handler = std::function<void(NodeId from, M message)>;

  // Creates the link of node `self` sending through `inner` (copied), authenticating with
  // `keys` (copied) and encoding with `codec`. Throws std::invalid_argument naming
  // replay_window when it is out of range, std::runtime_error when libsodium cannot
  // initialise. Allocates the shared state.
  AuthenticatedLink(Inner inner, NodeId self, LinkKeys keys, AuthenticatedLinkOptions options = {},
                    C codec = {})
      : s_(std::make_shared<State>(std::move(inner), self, std::move(keys), options,
                                   std::move(codec))) {
    detail::sodium_ready();
    if (options.replay_window < 64 || options.replay_window > (std::size_t{1} << 20) ||
        options.replay_window % 64 != 0) {
      throw std::invalid_argument(
          "AuthenticatedLink: replay_window must be a multiple of 64 in [64, 1048576], got " +
          std::to_string(options.replay_window));
    }
  }

  // Installs `handler` (retained; replaces the previous one), called with each message that
  // passes every check. It may call send() on this link.
  void on_receive(Handler handler) { s_->handler = std::move(handler); }

  // Encodes `message`, authenticates it for `to` and sends it through the inner transport.
  // Throws std::invalid_argument naming `to` when there is no key for it. Allocates the
  // payload; what the codec or the inner transport throws propagates.
  void send(NodeId to, M message) {
    State& s = *s_;
    Peer* found = peer(to);
    if (found == nullptr) {
      throw std::invalid_argument("AuthenticatedLink::send: no key for node " + std::to_string(to) +
                                  " (to)");
    }
    Peer& p = *found;
    Wire w;
    w.sender = s.self;
    w.receiver = to;
    w.incarnation = s.options.incarnation;
    w.counter = p.next_counter++;
    s.codec.encode(message, w.payload);
    w.mac = mac(p, w);
    ++s.stats.sent;
    static_cast<void>(s.inner.send(to, std::move(w)));
  }

  // Checks `message` that the inner transport delivered from `from` and, when it is authentic,
  // addressed here and new, decodes it and hands it to the handler before returning. Drops and
  // counts it otherwise. Allocates the decoded message.
  void receive(NodeId from, Wire message) {
    State& s = *s_;
    Peer* found = peer(from);
    if (found == nullptr) {
      ++s.stats.unknown_peer;  // and nothing is kept for it
      return;
    }
    Peer& p = *found;
    if (message.sender != from || message.receiver != s.self) {
      ++s.stats.misaddressed;
      return;
    }
    const std::array<std::byte, 32> expected = mac(p, message);
    if (crypto_verify_32(detail::uchars(expected.data()), detail::uchars(message.mac.data())) !=
        0) {
      ++s.stats.bad_mac;
      return;
    }
    if (!fresh(p, message.incarnation, message.counter)) return;
    std::optional<M> m;
    try {
      m.emplace(s.codec.decode(message.payload));
    } catch (const CorruptionError&) {
      ++s.stats.undecodable;
      return;
    }
    ++s.stats.delivered;
    // Nothing of the state is touched after the handler: it may send, adding peers.
    if (s.handler) s.handler(from, std::move(*m));
  }

  // Returns the counters.
  const AuthenticatedLinkStats& stats() const noexcept { return s_->stats; }

  // Returns this link's node.
  NodeId self() const noexcept { return s_->self; }

 private:
  struct Peer {
    crypto_auth_hmacsha256_state keyed_state{};  // after the key's pads: copied per message
    std::uint64_t next_counter = 1;
    std::optional<std::uint64_t> incarnation;  // the peer's latest, from authentic messages
    std::uint64_t highest = 0;                 // the highest counter seen in that incarnation
    std::vector<std::uint64_t> seen;           // a ring of replay_window bits

    Peer() = default;
    Peer(const Peer&) = delete;
    Peer& operator=(const Peer&) = delete;
    ~Peer() { sodium_memzero(&keyed_state, sizeof keyed_state); }
  };
  struct State {
    State(Inner i, NodeId self_id, LinkKeys k, AuthenticatedLinkOptions o, C c)
        : inner(std::move(i)), self(self_id), keys(std::move(k)), options(o), codec(std::move(c)) {}
    Inner inner;
    NodeId self;
    LinkKeys keys;
    AuthenticatedLinkOptions options;
    C codec;
    Handler handler;
    std::unordered_map<NodeId, std::unique_ptr<Peer>> peers;
    AuthenticatedLinkStats stats;
  };

  // Returns the record of `id`, made (and its key's HMAC state computed) on first use, or
  // nullptr when there is no key for it.
  Peer* peer(NodeId id) {
    State& s = *s_;
    if (auto it = s.peers.find(id); it != s.peers.end()) return it->second.get();
    std::optional<LinkKey> key = s.keys.find(s.self, id);
    if (!key) return nullptr;
    auto p = std::make_unique<Peer>();
    crypto_auth_hmacsha256_init(&p->keyed_state, detail::uchars(key->data()), key->size());
    sodium_memzero(key->data(), key->size());
    p->seen.assign(s.options.replay_window / 64, 0);
    return s.peers.emplace(id, std::move(p)).first->second.get();
  }

  // Returns the HMAC-SHA256 of the message's header (version, sender, receiver, incarnation,
  // counter, payload length, little-endian) and payload under the peer's key.
  static std::array<std::byte, 32> mac(const Peer& p, const Wire& w) {
    std::array<unsigned char, 37> header{};
    std::size_t at = 0;
    header[at++] = AuthenticatedLinkCodec::version;
    auto put = [&](std::uint64_t v, int width) {
      for (int i = 0; i < width; ++i)
        header[at++] = static_cast<unsigned char>(v >> (8 * i));
    };
    put(w.sender, 8);
    put(w.receiver, 8);
    put(w.incarnation, 8);
    put(w.counter, 8);
    put(w.payload.size(), 4);
    crypto_auth_hmacsha256_state state = p.keyed_state;
    crypto_auth_hmacsha256_update(&state, header.data(), header.size());
    crypto_auth_hmacsha256_update(&state, detail::uchars(w.payload.data()), w.payload.size());
    std::array<std::byte, 32> out{};
    crypto_auth_hmacsha256_final(&state, detail::uchars(out.data()));
    sodium_memzero(&state, sizeof state);
    return out;
  }

  // Returns true and records (incarnation, counter) when it is new; counts it and returns false
  // when it is a replay or too old.
  bool fresh(Peer& p, std::uint64_t incarnation, std::uint64_t counter) {
    State& s = *s_;
    if (p.incarnation && incarnation < *p.incarnation) {
      ++s.stats.replayed;
      return false;
    }
    if (!p.incarnation || incarnation > *p.incarnation) {
      p.incarnation = incarnation;
      p.highest = 0;
      std::fill(p.seen.begin(), p.seen.end(), 0);
    }
    const std::uint64_t width = s.options.replay_window;
    auto bit = [&](std::uint64_t c) -> std::pair<std::uint64_t&, std::uint64_t> {
      return {p.seen[(c / 64) % p.seen.size()], std::uint64_t{1} << (c % 64)};
    };
    if (counter == 0 || (counter <= p.highest && p.highest - counter >= width)) {
      ++s.stats.too_old;
      return false;
    }
    if (counter > p.highest) {
      if (counter - p.highest >= width) {
        std::fill(p.seen.begin(), p.seen.end(), 0);
      } else {
        for (std::uint64_t c = p.highest + 1; c < counter; ++c) {
          auto [word, mask] = bit(c);
          word &= ~mask;
        }
      }
      p.highest = counter;
      auto [word, mask] = bit(counter);
      word |= mask;
      return true;
    }
    auto [word, mask] = bit(counter);
    if ((word & mask) != 0) {
      ++s.stats.replayed;
      return false;
    }
    word |= mask;
    return true;
  }

  std::shared_ptr<State> s_;
};

}  // namespace pods::net

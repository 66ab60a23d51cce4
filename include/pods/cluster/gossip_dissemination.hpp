// pods/cluster/gossip_dissemination.hpp — Gossip Dissemination with SWIM-style membership
//
// Problem:       A cluster of hundreds or thousands of nodes must agree on who is in it and
//                share small facts about each member (its address, its load, the partitions
//                it owns). Every node telling every other node costs n^2 messages per
//                interval; a central registry is a bottleneck and a single point of failure;
//                and a failure detector that trusts one missed reply evicts healthy nodes.
// Solution:      Each node owns a versioned key/value map and a heartbeat counter, and keeps
//                a member record (incarnation, status, heartbeat, version) for every node it
//                knows. Two mechanisms run side by side:
//                  - Dissemination (push-pull anti-entropy, after van Renesse's Scuttlebutt):
//                    every gossip_interval a node sends a Digest of member records to
//                    `fanout` random live members. The digest holds the node's own record,
//                    then the "hot" records (those that changed recently, each sent at most
//                    retransmit_mult * digits(n) times, memberlist's retransmit limit), then
//                    a rotating window over all the others. The receiver answers with a Sync
//                    carrying the deltas the sender lacks, the versions it wants, and the
//                    records where its own view wins, plus a Digest of its own hot records;
//                    the sender answers the wants. A delta brings an owner's keys from the
//                    version the receiver has up to the version the sender has.
//                  - Membership (SWIM, Das, Gupta and Motivala, 2002): every probe_interval a
//                    node pings the next member of a shuffled round-robin order. Without an
//                    Ack within probe_timeout it asks indirect_checks other members to ping
//                    the target for it (PingReq); without any Ack by the end of the interval
//                    it marks the target suspect. A suspect not refuted within
//                    suspicion_timeout is declared dead, and a dead member is reaped
//                    (forgotten, with its keys) reap_after later. Pings, PingReqs and Acks
//                    piggyback hot records, so suspicions and refutations spread with the
//                    probes. A node that hears it is suspected (or dead, or at a higher
//                    incarnation than its own) refutes: it raises its incarnation above the
//                    rumour's and spreads alive(incarnation).
//                Records about a member are ordered by (incarnation, status) with
//                alive < suspect < dead at one incarnation; a node adopts a record only when
//                it is greater than the one it holds. A new node joins through `seeds`:
//                members it assumes alive at incarnation 0 and gossips with; a node that
//                finds itself alone (every other member dead or reaped) gossips with one of
//                its first 16 seeds each round until it hears of others.
// Guarantees:    - Every message is bounded: at most max_records member records, and deltas
//                  of at most max_delta_bytes key/value bytes (a value larger than that is
//                  refused by put), so no message floods a link.
//                - Each gossip interval a node starts at most `fanout` exchanges, answers at
//                  most max_incoming_digests, and sends at most 3 * fanout +
//                  3 * max_incoming_digests Digest and Sync messages (a hard budget: past
//                  it, nothing more is sent and stats().busy counts it). Each probe interval
//                  it starts one Ping and at most indirect_checks PingReqs; beyond that it
//                  sends one Ack per Ping and one Ping (then one Ack) per PingReq it relays.
//                - A key/value, once put, reaches every live member that gossips with the
//                  rest (with probability 1 as rounds go on); a later put of the same key
//                  wins everywhere (versions per owner only grow).
//                - A live node that hears it is suspected at its incarnation refutes with a
//                  higher one, which overrides the suspicion everywhere it reaches.
//                - Randomness comes only from pods::Random seeded by options.seed: runs
//                  replay exactly.
// Not provided:  Strong membership (nodes may disagree for a while; use a consistent core for
//                that); Lifeguard's local-health and suspicion-confirmation refinements; deletes
//                of keys (overwrite with an empty value); durability: a restarted node starts
//                at incarnation 0 with no keys and refutes the records of its previous life
//                as soon as it hears them, and its old keys stay visible elsewhere until it
//                overwrites them. A reaped member that a stale peer still lists as alive is
//                added again and probed (it is then suspected and declared dead again).
// Thread safety: thread-compatible: one owner thread (run it on a SingularUpdateQueue).
// Errors:        Bad options throw std::invalid_argument naming the option and the rule; put
//                with an empty key or an entry larger than max_delta_bytes throws
//                std::invalid_argument. A malformed message (a delta about this node, a
//                PingReq that names this node or its sender, entries outside their delta's
//                versions, more records than max_records) is dropped and counted in
//                stats().malformed; MessageCodec::decode throws pods::CorruptionError.
// Cost:          Memory: 32 bytes per known member plus the keys. A digest or Sync is
//                processed in O(records * log members); a delta scans its owner's keys. Every
//                send allocates its message.
// Example:
//   pods::GossipDissemination gossip(1, outbox, clock, {.seeds = {2, 3}, .seed = 7});
//   gossip.put("address", bytes("10.0.0.1:7000"));
//   gossip.tick();                                       // a gossip round and a probe
//   for (auto& [to, message] : outbox.take()) { /* hand to the network */ }
//   auto address = gossip.get(2, "address");             // what node 2 published, if known
//   bool two_alive = gossip.member(2)->status == pods::MemberStatus::alive;
// Example context: inline pods::Outbox<pods::gossip::Message> outbox;
// Example context: inline pods::ManualClock clock;
// Example context: inline std::vector<std::byte> bytes(std::string_view s) {
// Example context:   std::vector<std::byte> b;
// Example context:   for (char c : s) b.push_back(static_cast<std::byte>(c));
// Example context:   return b;
// Example context: }
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/random.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

// What a node believes about a member. At one incarnation, alive < suspect < dead.
enum class MemberStatus : std::uint8_t { alive = 0, suspect = 1, dead = 2 };

// Returns "alive", "suspect" or "dead".
inline const char* to_string(MemberStatus s) noexcept {
  switch (s) {
    case MemberStatus::alive:
      return "alive";
    case MemberStatus::suspect:
      return "suspect";
    case MemberStatus::dead:
      return "dead";
  }
  return "unknown";
}

namespace gossip {

// One node's view of one member: the unit both mechanisms exchange.
struct MemberRecord {
  NodeId node = 0;
  std::uint32_t incarnation = 0;  // raised only by the member itself, to refute
  MemberStatus status = MemberStatus::alive;
  std::uint64_t heartbeat = 0;  // the member's own counter, one per gossip round
  std::uint64_t version = 0;    // the newest of the member's key/values this view holds
  friend bool operator==(const MemberRecord&, const MemberRecord&) = default;
};

// One key of an owner's map, at the owner's version when it was last put.
struct KeyValue {
  std::string key;
  std::vector<std::byte> value;
  std::uint64_t version = 0;
  friend bool operator==(const KeyValue&, const KeyValue&) = default;
};

// The owner's keys with versions in (from_version, to_version]: every one of them, so a
// receiver holding from_version holds to_version after applying it.
struct Delta {
  NodeId owner = 0;
  std::uint64_t from_version = 0;
  std::uint64_t to_version = 0;
  std::vector<KeyValue> entries;  // ascending versions
  friend bool operator==(const Delta&, const Delta&) = default;
};

// "Send me owner's keys newer than have_version."
struct Want {
  NodeId owner = 0;
  std::uint64_t have_version = 0;
  friend bool operator==(const Want&, const Want&) = default;
};

// SWIM's probe; the target answers with an Ack carrying the same seq.
struct Ping {
  std::uint64_t seq = 0;
  std::vector<MemberRecord> updates;
  friend bool operator==(const Ping&, const Ping&) = default;
};

// "Ping target for me": the receiver pings it and forwards its Ack with this seq.
struct PingReq {
  std::uint64_t seq = 0;
  NodeId target = 0;
  std::vector<MemberRecord> updates;
  friend bool operator==(const PingReq&, const PingReq&) = default;
};

struct Ack {
  std::uint64_t seq = 0;
  std::vector<MemberRecord> updates;
  friend bool operator==(const Ack&, const Ack&) = default;
};

// The push of an exchange: what the sender knows, in summary. reply: answer with a Digest.
struct Digest {
  std::vector<MemberRecord> records;
  bool reply = false;
  friend bool operator==(const Digest&, const Digest&) = default;
};

// The pull of an exchange: records where the sender's view wins, versions it wants, deltas.
struct Sync {
  std::vector<MemberRecord> records;
  std::vector<Want> wants;
  std::vector<Delta> deltas;
  friend bool operator==(const Sync&, const Sync&) = default;
};

using Message = std::variant<Ping, PingReq, Ack, Digest, Sync>;

// MessageCodec: a Codec<Message>. Format (little-endian, pods::wire): a version byte (1), a
// kind byte (the variant index), then the fields in declaration order; a record is 29 bytes
// (node u64, incarnation u32, status u8, heartbeat u64, version u64); sequences are u32
// counts. decode throws pods::CorruptionError naming "gossip message", the offset and the
// field for a wrong version or kind, a status or bool byte out of range, a count the
// remaining bytes cannot hold, truncation or trailing bytes.
struct MessageCodec {
  static constexpr std::uint8_t format_version = 1;
  static constexpr std::size_t record_bytes = 29;

  // Appends the encoding of `m` to `out`. Throws std::length_error past 32-bit lengths.
  void encode(const Message& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(format_version, m.index());
    std::visit([&](const auto& body) { put(w, body); }, m);
  }

  // Returns the message encoded in `bytes`. Allocates. Throws pods::CorruptionError.
  Message decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "gossip message");
    Message m;
    switch (r.header(format_version, std::variant_size_v<Message>, {.version = "format version"})) {
      case 0:
        m = Ping{r.u64(), records(r)};
        break;
      case 1: {
        PingReq p;
        p.seq = r.u64();
        p.target = r.u64();
        p.updates = records(r);
        m = std::move(p);
        break;
      }
      case 2:
        m = Ack{r.u64(), records(r)};
        break;
      case 3: {
        Digest d;
        d.records = records(r);
        d.reply = r.boolean();
        m = std::move(d);
        break;
      }
      case 4: {
        Sync s;
        s.records = records(r);
        const std::size_t wants = r.count(16);
        s.wants.reserve(wants);
        for (std::size_t i = 0; i < wants; ++i) {
          Want want;
          want.owner = r.u64();
          want.have_version = r.u64();
          s.wants.push_back(want);
        }
        const std::size_t deltas = r.count(28);
        s.deltas.reserve(deltas);
        for (std::size_t i = 0; i < deltas; ++i)
          s.deltas.push_back(delta(r));
        m = std::move(s);
        break;
      }
    }
    r.expect_end();
    return m;
  }

 private:
  static void put(wire::Writer& w, const std::vector<MemberRecord>& records) {
    w.count(records.size());
    for (const MemberRecord& rec : records) {
      w.u64(rec.node);
      w.u32(rec.incarnation);
      w.u8(static_cast<std::uint8_t>(rec.status));
      w.u64(rec.heartbeat);
      w.u64(rec.version);
    }
  }
  static void put(wire::Writer& w, const Ping& p) {
    w.u64(p.seq);
    put(w, p.updates);
  }
  static void put(wire::Writer& w, const PingReq& p) {
    w.u64(p.seq);
    w.u64(p.target);
    put(w, p.updates);
  }
  static void put(wire::Writer& w, const Ack& a) {
    w.u64(a.seq);
    put(w, a.updates);
  }
  static void put(wire::Writer& w, const Digest& d) {
    put(w, d.records);
    w.boolean(d.reply);
  }
  static void put(wire::Writer& w, const Sync& s) {
    put(w, s.records);
    w.count(s.wants.size());
    for (const Want& want : s.wants) {
      w.u64(want.owner);
      w.u64(want.have_version);
    }
    w.count(s.deltas.size());
    for (const Delta& d : s.deltas) {
      w.u64(d.owner);
      w.u64(d.from_version);
      w.u64(d.to_version);
      w.count(d.entries.size());
      for (const KeyValue& kv : d.entries) {
        w.string(kv.key);
        w.bytes(kv.value);
        w.u64(kv.version);
      }
    }
  }
  static std::vector<MemberRecord> records(wire::Reader& r) {
    const std::size_t n = r.count(record_bytes);
    std::vector<MemberRecord> out;
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      MemberRecord rec;
      rec.node = r.u64();
      rec.incarnation = r.u32();
      const std::size_t status_at = r.offset();
      const std::uint8_t status = r.u8();
      if (status > 2) r.fail(status_at, "member status " + std::to_string(status));
      rec.status = static_cast<MemberStatus>(status);
      rec.heartbeat = r.u64();
      rec.version = r.u64();
      out.push_back(rec);
    }
    return out;
  }
  static Delta delta(wire::Reader& r) {
    Delta d;
    d.owner = r.u64();
    d.from_version = r.u64();
    d.to_version = r.u64();
    const std::size_t n = r.count(16);  // two lengths and a version
    d.entries.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      KeyValue kv;
      kv.key = r.string();
      kv.value = r.bytes();
      kv.version = r.u64();
      d.entries.push_back(std::move(kv));
    }
    return d;
  }
};

static_assert(Codec<MessageCodec, Message>);

}  // namespace gossip

struct GossipOptions {
  std::vector<NodeId> seeds;  // members assumed alive at incarnation 0, contacted first
  std::size_t fanout = 3;     // exchanges started per gossip interval
  std::chrono::nanoseconds gossip_interval = std::chrono::milliseconds(200);
  std::chrono::nanoseconds probe_interval = std::chrono::seconds(1);
  std::chrono::nanoseconds probe_timeout = std::chrono::milliseconds(500);  // then PingReq
  std::size_t indirect_checks = 3;  // members asked to ping a silent target
  std::chrono::nanoseconds suspicion_timeout = std::chrono::seconds(5);  // suspect -> dead
  std::chrono::nanoseconds reap_after = std::chrono::seconds(30);        // dead -> forgotten
  std::size_t retransmit_mult = 4;  // a changed record is sent retransmit_mult * digits(n) times
  std::size_t max_records = 32;     // member records per Digest or Sync
  std::size_t max_piggyback = 8;    // member records per Ping, PingReq or Ack
  std::size_t max_delta_bytes = 8 << 10;  // key and value bytes per Sync
  std::size_t max_incoming_digests = 0;   // answered per gossip interval; 0: 2 * fanout
  std::uint64_t seed = 0;                 // of the generator that picks peers
  // false only to show the tests catch it: a suspected node then never refutes.
  bool refute = true;
};

// What a node has done and refused.
struct GossipStats {
  std::uint64_t rounds = 0;           // gossip rounds run
  std::uint64_t sent = 0;             // messages sent, every kind
  std::uint64_t probes = 0;           // probes started (direct pings)
  std::uint64_t indirect_probes = 0;  // probes that needed PingReqs
  std::uint64_t suspected = 0;        // members this node suspected after a failed probe
  std::uint64_t declared_dead = 0;    // suspicions this node saw time out
  std::uint64_t refuted = 0;          // times this node raised its incarnation
  std::uint64_t reaped = 0;           // dead members forgotten
  std::uint64_t busy = 0;             // digests dropped past max_incoming_digests
  std::uint64_t malformed = 0;        // messages (or deltas) dropped as malformed
  std::uint64_t stale = 0;            // Acks for no probe or relay in progress
};

// A member as this node sees it.
struct GossipMember {
  NodeId id = 0;
  MemberStatus status = MemberStatus::alive;
  std::uint32_t incarnation = 0;
  std::uint64_t heartbeat = 0;
  std::uint64_t version = 0;  // the newest of its key/values held here
  friend bool operator==(const GossipMember&, const GossipMember&) = default;
};

template <class T, PhysicalClock Clock = SteadyClock>
requires Transport<T, gossip::Message>
class GossipDissemination {
 public:
  using Message = gossip::Message;
  using MessageCodec = gossip::MessageCodec;
  using time_point = typename Clock::time_point;

  // Creates node `self` sending through `transport` and reading `clock` (both retained as
  // copies). The node knows itself (alive, incarnation 0) and its seeds; its first tick
  // gossips and probes at once. Throws std::invalid_argument naming the option when fanout,
  // max_records (< 2), max_piggyback, max_delta_bytes (< 64) is zero, an interval or
  // timeout is not positive, probe_timeout >= probe_interval, or a seed is `self`.
  GossipDissemination(NodeId self, T transport, Clock clock, GossipOptions options = {})
      : self_(self),
        transport_(std::move(transport)),
        clock_(std::move(clock)),
        options_(std::move(options)),
        random_(options_.seed) {
    validate();
    if (options_.max_incoming_digests == 0) options_.max_incoming_digests = 2 * options_.fanout;
    incoming_left_ = options_.max_incoming_digests;
    gossip_left_ = gossip_budget();
    std::vector<NodeId> seeds = std::move(options_.seeds);
    options_.seeds.clear();
    std::sort(seeds.begin(), seeds.end());
    seeds.erase(std::unique(seeds.begin(), seeds.end()), seeds.end());
    rejoin_.assign(seeds.begin(),
                   seeds.begin() + static_cast<std::ptrdiff_t>(std::min(seeds.size(), max_rejoin)));
    seeds.insert(std::upper_bound(seeds.begin(), seeds.end(), self_), self_);
    members_.reserve(seeds.size());
    for (NodeId id : seeds)
      members_.push_back(Entry{id});
    live_ = members_.size();
    const auto now = clock_.now();
    next_gossip_ = now;
    next_probe_ = now;
    make_hot(*find(self_));  // announce ourselves
  }

  // Handles one message from `from`. Consumes it; may send. A malformed message is dropped
  // and counted.
  void receive(NodeId from, Message message) {
    std::visit([&](auto& m) { on(from, m); }, message);
  }

  // Runs what is due by the clock: a gossip round every gossip_interval, the probe's steps,
  // suspicion timeouts and reaping. May send; allocates.
  void tick() {
    const auto now = clock_.now();
    if (now >= next_gossip_) {
      gossip_round();
      next_gossip_ += options_.gossip_interval;
      if (next_gossip_ <= now) next_gossip_ = now + options_.gossip_interval;
    }
    fire_timers(now);
    probe_step(now);
    expire_relays(now);
  }

  // Returns when tick() next has work.
  time_point next_deadline() const {
    time_point due = std::min(next_gossip_, probe_ ? probe_deadline() : next_probe_);
    if (!timers_.empty()) due = std::min(due, timers_.begin()->first);
    for (const auto& [seq, relay] : relays_)
      due = std::min(due, relay.expires);
    return due;
  }

  // Publishes key = value as this node's, at the next version; it spreads with the gossip.
  // Copies nothing more than the arguments (moved in). Throws std::invalid_argument when key
  // is empty or key and value together exceed max_delta_bytes - 16.
  void put(std::string key, std::vector<std::byte> value) {
    if (key.empty()) throw std::invalid_argument("GossipDissemination::put: key must not be empty");
    if (key.size() + value.size() + 16 > options_.max_delta_bytes) {
      throw std::invalid_argument(
          "GossipDissemination::put: key and value must fit max_delta_bytes - 16 (" +
          std::to_string(options_.max_delta_bytes - 16) + " bytes), got " +
          std::to_string(key.size() + value.size()));
    }
    Entry& me = *find(self_);
    ++me.version;
    Stored& stored = owners_[self_][std::move(key)];
    stored.value = std::move(value);
    stored.version = me.version;
    make_hot(me);
  }

  // Returns owner's value for key as this node knows it, or nullopt.
  std::optional<std::vector<std::byte>> get(NodeId owner, std::string_view key) const {
    auto o = owners_.find(owner);
    if (o == owners_.end()) return std::nullopt;
    auto k = o->second.find(key);
    if (k == o->second.end()) return std::nullopt;
    return k->second.value;
  }

  // Returns this node's view of member `id`, or nullopt when it does not know it.
  std::optional<GossipMember> member(NodeId id) const {
    const Entry* e = find(id);
    if (!e) return std::nullopt;
    return GossipMember{e->id, e->status, e->incarnation, e->heartbeat, e->version};
  }

  // Returns every known member (itself included), ordered by id. Allocates.
  std::vector<GossipMember> members() const {
    std::vector<GossipMember> out;
    out.reserve(members_.size());
    for (const Entry& e : members_)
      out.push_back(GossipMember{e.id, e.status, e.incarnation, e.heartbeat, e.version});
    return out;
  }

  // Returns how many known members (itself included) are not dead.
  std::size_t live_count() const noexcept { return live_; }
  // Returns how many members this node knows, dead ones not yet reaped included.
  std::size_t size() const noexcept { return members_.size(); }
  NodeId id() const noexcept { return self_; }
  std::uint32_t incarnation() const noexcept { return find(self_)->incarnation; }
  const GossipStats& stats() const noexcept { return stats_; }
  const GossipOptions& options() const noexcept { return options_; }

 private:
  struct Stored {
    std::vector<std::byte> value;
    std::uint64_t version = 0;
  };
  using Keys = std::map<std::string, Stored, std::less<>>;

  // 32 bytes per member, so 10 000 nodes that each know 10 000 fit in a few gigabytes.
  struct Entry {
    NodeId id = 0;
    std::uint64_t heartbeat = 0;
    std::uint64_t version = 0;
    std::uint32_t incarnation = 0;
    MemberStatus status = MemberStatus::alive;
    std::uint8_t budget = 0;  // sends left while hot
  };
  static_assert(sizeof(Entry) <= 32, "a member entry is 32 bytes");
  enum class TimerKind : std::uint8_t { suspicion, reap };
  struct Timer {
    NodeId node;
    std::uint32_t incarnation;
    TimerKind kind;
  };
  struct Probe {
    NodeId target = 0;
    std::uint64_t seq = 0;
    time_point indirect_at{};
    time_point end{};
    bool acked = false;
    bool indirect = false;
  };
  struct Relay {
    NodeId requester = 0;
    std::uint64_t seq = 0;  // the requester's
    time_point expires{};
  };

  void validate() const {
    auto fail = [](const char* what) {
      throw std::invalid_argument(std::string("GossipDissemination: ") + what);
    };
    if (options_.fanout == 0) fail("fanout must be positive");
    if (options_.max_records < 2) fail("max_records must be at least 2");
    if (options_.max_piggyback == 0) fail("max_piggyback must be positive");
    if (options_.max_delta_bytes < 64) fail("max_delta_bytes must be at least 64");
    if (options_.gossip_interval.count() <= 0) fail("gossip_interval must be positive");
    if (options_.probe_interval.count() <= 0) fail("probe_interval must be positive");
    if (options_.probe_timeout.count() <= 0) fail("probe_timeout must be positive");
    if (options_.probe_timeout >= options_.probe_interval) {
      fail("probe_timeout must be shorter than probe_interval");
    }
    if (options_.suspicion_timeout.count() <= 0) fail("suspicion_timeout must be positive");
    if (options_.reap_after.count() <= 0) fail("reap_after must be positive");
    for (NodeId seed : options_.seeds) {
      if (seed == self_) fail("seeds must not name the node itself");
    }
  }

  Entry* find(NodeId id) {
    auto it = std::lower_bound(members_.begin(), members_.end(), id,
                               [](const Entry& e, NodeId n) { return e.id < n; });
    return it != members_.end() && it->id == id ? &*it : nullptr;
  }
  const Entry* find(NodeId id) const { return const_cast<GossipDissemination*>(this)->find(id); }

  Entry& insert(NodeId id) {
    auto it = std::lower_bound(members_.begin(), members_.end(), id,
                               [](const Entry& e, NodeId n) { return e.id < n; });
    const auto at = static_cast<std::size_t>(it - members_.begin());
    members_.insert(it, Entry{id});
    if (at <= cursor_ && cursor_ + 1 < members_.size()) ++cursor_;
    ++live_;
    return members_[at];
  }

  // Returns how many times a changed record is sent: retransmit_mult * digits(live members),
  // memberlist's retransmit_mult * ceil(log10(n + 1)) in integers.
  std::uint8_t retransmits() const noexcept {
    std::size_t digits = 1;
    for (std::size_t n = live_; n >= 10; n /= 10)
      ++digits;
    return static_cast<std::uint8_t>(std::min<std::size_t>(255, options_.retransmit_mult * digits));
  }

  void make_hot(Entry& e) {
    if (e.budget == 0) hot_.push_back(e.id);
    e.budget = std::max<std::uint8_t>(1, retransmits());
  }

  static gossip::MemberRecord record(const Entry& e) {
    return {e.id, e.incarnation, e.status, e.heartbeat, e.version};
  }

  // Appends up to `limit` hot records, the most recently changed first, spending their budgets.
  void take_hot(std::vector<gossip::MemberRecord>& out, std::size_t limit) {
    std::erase_if(hot_, [&](NodeId id) {
      const Entry* e = find(id);
      return !e || e->budget == 0;
    });
    std::stable_sort(hot_.begin(), hot_.end(),
                     [&](NodeId a, NodeId b) { return find(a)->budget > find(b)->budget; });
    for (NodeId id : hot_) {
      if (out.size() >= limit) break;
      if (std::any_of(out.begin(), out.end(), [&](const auto& r) { return r.node == id; })) {
        continue;
      }
      Entry& e = *find(id);
      out.push_back(record(e));
      --e.budget;
    }
  }

  std::vector<gossip::MemberRecord> piggyback() {
    std::vector<gossip::MemberRecord> out;
    take_hot(out, options_.max_piggyback);
    return out;
  }

  // Returns a digest's records: our own, the hot ones, then a rotating window of the rest.
  std::vector<gossip::MemberRecord> digest_records() {
    std::vector<gossip::MemberRecord> out;
    out.reserve(options_.max_records);
    Entry& me = *find(self_);
    out.push_back(record(me));
    if (me.budget > 0) --me.budget;
    take_hot(out, options_.max_records);
    const std::size_t n = members_.size();
    for (std::size_t step = 0; step < n && out.size() < options_.max_records; ++step) {
      cursor_ = cursor_ + 1 >= n ? 0 : cursor_ + 1;
      const Entry& e = members_[cursor_];
      if (e.id == self_) continue;
      if (std::any_of(out.begin(), out.end(), [&](const auto& r) { return r.node == e.id; })) {
        continue;
      }
      out.push_back(record(e));
    }
    return out;
  }

  // Returns up to `count` distinct members satisfying `eligible`, drawn uniformly: from the
  // whole list when it is short, by rejection sampling when it is long (O(count) draws).
  template <class Eligible>
  std::vector<NodeId> pick(std::size_t count, Eligible eligible) {
    std::vector<NodeId> out;
    const std::size_t n = members_.size();
    if (n <= 64) {
      for (const Entry& e : members_)
        if (eligible(e)) out.push_back(e.id);
      random_.shuffle(out);
      if (out.size() > count) out.resize(count);
      return out;
    }
    for (std::size_t attempt = 0; attempt < 8 * count && out.size() < count; ++attempt) {
      const Entry& e = members_[random_.below(n)];
      if (!eligible(e) || std::find(out.begin(), out.end(), e.id) != out.end()) continue;
      out.push_back(e.id);
    }
    return out;
  }

  void send(NodeId to, Message m) {
    ++stats_.sent;
    transport_.send(to, std::move(m));
  }

  // Sends a Digest or Sync within this interval's budget; past it the message is not sent.
  void send_gossip(NodeId to, Message m) {
    if (gossip_left_ == 0) {
      ++stats_.busy;
      return;
    }
    --gossip_left_;
    send(to, std::move(m));
  }

  // ---- Membership rules -------------------------------------------------------------------

  // Returns true when (incarnation a, status a) overrides (b, status b).
  static bool newer(std::uint32_t a, MemberStatus sa, std::uint32_t b, MemberStatus sb) noexcept {
    if (a != b) return a > b;
    return static_cast<int>(sa) > static_cast<int>(sb);
  }
  static bool overrides(const gossip::MemberRecord& r, const Entry& e) noexcept {
    return newer(r.incarnation, r.status, e.incarnation, e.status);
  }

  void set_status(Entry& e, std::uint32_t incarnation, MemberStatus status) {
    const auto now = clock_.now();
    if (e.status == MemberStatus::dead && status != MemberStatus::dead) ++live_;
    if (e.status != MemberStatus::dead && status == MemberStatus::dead) --live_;
    e.incarnation = incarnation;
    e.status = status;
    if (status == MemberStatus::suspect) {
      timers_.emplace(now + options_.suspicion_timeout,
                      Timer{e.id, incarnation, TimerKind::suspicion});
    } else if (status == MemberStatus::dead) {
      timers_.emplace(now + options_.reap_after, Timer{e.id, incarnation, TimerKind::reap});
    }
    make_hot(e);
  }

  // Raises our incarnation above `rumour`'s and spreads alive(incarnation).
  void refute(std::uint32_t rumour) {
    if (!options_.refute) return;
    Entry& me = *find(self_);
    me.incarnation = rumour + 1;
    me.status = MemberStatus::alive;
    ++stats_.refuted;
    make_hot(me);
  }

  // Merges one record about a member; returns the entry (nullptr when ignored). Records
  // about ourselves are never adopted: a rumour that we are suspect or dead, or at an
  // incarnation we never had, is refuted.
  Entry* merge(const gossip::MemberRecord& r) {
    if (r.node == self_) {
      Entry& me = *find(self_);
      if (r.incarnation > me.incarnation ||
          (r.incarnation == me.incarnation && r.status != MemberStatus::alive)) {
        refute(r.incarnation);
      }
      if (r.version > me.version) me.version = r.version;  // a previous life's versions
      if (r.heartbeat > me.heartbeat) me.heartbeat = r.heartbeat;
      return nullptr;
    }
    Entry* e = find(r.node);
    if (!e) {
      if (r.status == MemberStatus::dead) return nullptr;  // never add the dead
      e = &insert(r.node);
      e->version = 0;
      set_status(*e, r.incarnation, r.status);
    } else if (overrides(r, *e)) {
      set_status(*e, r.incarnation, r.status);
    }
    if (r.heartbeat > e->heartbeat) e->heartbeat = r.heartbeat;
    return e;
  }

  void merge_all(const std::vector<gossip::MemberRecord>& records) {
    for (const auto& r : records)
      merge(r);
  }

  bool too_many(std::size_t n, std::size_t limit) {
    if (n <= limit) return false;
    ++stats_.malformed;
    return true;
  }

  // ---- Key/value deltas -------------------------------------------------------------------

  // Returns owner's keys with versions above `have`, oldest first, as many as fit `bytes`
  // (which it reduces), claiming the version up to which nothing is missing; nullopt when
  // nothing newer is held or nothing fits.
  std::optional<gossip::Delta> make_delta(NodeId owner, std::uint64_t have, std::size_t& bytes) {
    const Entry* e = find(owner);
    if (!e || e->version <= have) return std::nullopt;
    gossip::Delta d{owner, have, e->version, {}};
    auto o = owners_.find(owner);
    std::vector<std::pair<std::uint64_t, typename Keys::const_iterator>> newer_keys;
    if (o != owners_.end()) {
      for (auto it = o->second.cbegin(); it != o->second.cend(); ++it) {
        if (it->second.version > have) newer_keys.emplace_back(it->second.version, it);
      }
    }
    std::sort(newer_keys.begin(), newer_keys.end(),
              [](const auto& x, const auto& y) { return x.first < y.first; });
    for (const auto& [version, it] : newer_keys) {
      const std::size_t size = it->first.size() + it->second.value.size() + 16;
      if (size > bytes) {
        if (d.entries.empty()) return std::nullopt;
        // Cut here: every key up to the last one sent is included.
        d.to_version = std::min(e->version, d.entries.back().version);
        return d;
      }
      bytes -= size;
      d.entries.push_back({it->first, it->second.value, version});
    }
    return d;
  }

  void apply(const gossip::Delta& d) {
    if (d.owner == self_ || d.to_version < d.from_version) {
      ++stats_.malformed;
      return;
    }
    for (const auto& kv : d.entries) {
      if (kv.key.empty() || kv.version <= d.from_version) {
        ++stats_.malformed;
        return;
      }
    }
    Entry* e = find(d.owner);
    if (!e) return;  // reaped or never heard of: its keys are not wanted
    Keys& keys = owners_[d.owner];
    for (const auto& kv : d.entries) {
      Stored& s = keys[kv.key];
      if (kv.version > s.version) {
        s.value = kv.value;
        s.version = kv.version;
      }
    }
    if (d.from_version <= e->version && d.to_version > e->version) {
      e->version = d.to_version;
      make_hot(*e);
    }
  }

  // ---- Gossip exchanges ---------------------------------------------------------------------

  // Returns the Digest and Sync messages one gossip interval may send: per exchange started
  // its Digest, the answer to the partner's wants and the Sync for the partner's Digest; per
  // exchange answered its Sync, its Digest and the answer to the initiator's wants.
  std::size_t gossip_budget() const noexcept {
    return 3 * options_.fanout + 3 * options_.max_incoming_digests;
  }

  void gossip_round() {
    ++stats_.rounds;
    incoming_left_ = options_.max_incoming_digests;
    gossip_left_ = gossip_budget();
    Entry& me = *find(self_);
    ++me.heartbeat;
    // Dead members not yet reaped stay eligible (memberlist's gossip to the dead), so a
    // member wrongly declared dead hears it and refutes, and a healed partition merges.
    std::vector<NodeId> targets =
        pick(options_.fanout, [&](const Entry& e) { return e.id != self_; });
    if (live_ == 1 && !rejoin_.empty()) {
      // Alone: everyone else is dead or reaped. Ask a seed again.
      const NodeId seed = rejoin_[random_.below(rejoin_.size())];
      if (std::find(targets.begin(), targets.end(), seed) == targets.end()) targets.push_back(seed);
    }
    for (NodeId to : targets)
      send_gossip(to, gossip::Digest{digest_records(), true});
  }

  void on(NodeId from, gossip::Digest& d) {
    if (too_many(d.records.size(), options_.max_records)) return;
    if (d.reply) {
      if (incoming_left_ == 0) {
        ++stats_.busy;
        return;
      }
      --incoming_left_;
    }
    gossip::Sync reply;
    std::size_t bytes = options_.max_delta_bytes;
    for (const auto& r : d.records) {
      const bool known = find(r.node) != nullptr;
      Entry* e = merge(r);
      if (r.node == self_) e = find(self_);
      if (!e) continue;  // a dead member we never knew
      const bool ours_wins =
          r.node == self_ ? (r.incarnation != e->incarnation || r.status != e->status)
                          : known && newer(e->incarnation, e->status, r.incarnation, r.status);
      if (ours_wins && reply.records.size() < options_.max_records) {
        reply.records.push_back(record(*e));  // the sender's view is behind ours
      }
      if (r.version > e->version) {
        reply.wants.push_back({r.node, e->version});
      } else if (r.version < e->version) {
        if (auto delta = make_delta(r.node, r.version, bytes)) {
          reply.deltas.push_back(std::move(*delta));
        }
      }
    }
    if (!reply.records.empty() || !reply.wants.empty() || !reply.deltas.empty()) {
      send_gossip(from, std::move(reply));
    }
    if (d.reply) {
      std::vector<gossip::MemberRecord> mine;
      mine.push_back(record(*find(self_)));
      take_hot(mine, options_.max_records);
      send_gossip(from, gossip::Digest{std::move(mine), false});
    }
  }

  void on(NodeId from, gossip::Sync& s) {
    if (too_many(s.records.size(), options_.max_records) ||
        too_many(s.wants.size(), options_.max_records)) {
      return;
    }
    merge_all(s.records);
    for (const auto& d : s.deltas)
      apply(d);
    if (s.wants.empty()) return;
    gossip::Sync answer;
    std::size_t bytes = options_.max_delta_bytes;
    for (const auto& want : s.wants) {
      if (auto delta = make_delta(want.owner, want.have_version, bytes)) {
        answer.deltas.push_back(std::move(*delta));
      }
    }
    if (!answer.deltas.empty()) send_gossip(from, std::move(answer));
  }

  // ---- SWIM probes --------------------------------------------------------------------------

  time_point probe_deadline() const {
    return probe_->indirect || probe_->acked ? probe_->end : probe_->indirect_at;
  }

  // Returns the next member to probe, walking a shuffled order and reshuffling each pass.
  std::optional<NodeId> next_target() {
    for (int pass = 0; pass < 2; ++pass) {
      while (probe_index_ < probe_order_.size()) {
        const NodeId id = probe_order_[probe_index_++];
        const Entry* e = find(id);
        if (e && e->id != self_ && e->status != MemberStatus::dead) return id;
      }
      probe_order_.clear();
      for (const Entry& e : members_)
        if (e.id != self_ && e.status != MemberStatus::dead) probe_order_.push_back(e.id);
      random_.shuffle(probe_order_);
      probe_index_ = 0;
    }
    return std::nullopt;
  }

  void probe_step(time_point now) {
    if (probe_ && !probe_->indirect && !probe_->acked && now >= probe_->indirect_at) {
      probe_->indirect = true;
      ++stats_.indirect_probes;
      const NodeId target = probe_->target;
      const std::vector<NodeId> helpers = pick(options_.indirect_checks, [&](const Entry& e) {
        return e.id != self_ && e.id != target && e.status == MemberStatus::alive;
      });
      for (NodeId h : helpers)
        send(h, gossip::PingReq{probe_->seq, probe_->target, piggyback()});
    }
    if (probe_ && now >= probe_->end) {
      if (!probe_->acked) {
        Entry* e = find(probe_->target);
        if (e && e->status == MemberStatus::alive) {
          ++stats_.suspected;
          set_status(*e, e->incarnation, MemberStatus::suspect);
        }
      }
      probe_.reset();
    }
    if (!probe_ && now >= next_probe_) {
      next_probe_ += options_.probe_interval;
      if (next_probe_ <= now) next_probe_ = now + options_.probe_interval;
      if (auto target = next_target()) {
        ++stats_.probes;
        probe_ = Probe{*target, ++seq_, now + options_.probe_timeout, now + options_.probe_interval,
                       false,   false};
        send(*target, gossip::Ping{probe_->seq, piggyback()});
      }
    }
  }

  void on(NodeId from, gossip::Ping& p) {
    if (too_many(p.updates.size(), options_.max_records)) return;
    merge_all(p.updates);
    send(from, gossip::Ack{p.seq, piggyback()});
  }

  void on(NodeId from, gossip::PingReq& p) {
    if (too_many(p.updates.size(), options_.max_records)) return;
    if (p.target == self_ || p.target == from) {
      ++stats_.malformed;
      return;
    }
    merge_all(p.updates);
    const std::uint64_t seq = ++seq_;
    relays_[seq] = Relay{from, p.seq, clock_.now() + options_.probe_timeout};
    send(p.target, gossip::Ping{seq, piggyback()});
  }

  void on(NodeId, gossip::Ack& a) {
    if (too_many(a.updates.size(), options_.max_records)) return;
    merge_all(a.updates);
    if (probe_ && a.seq == probe_->seq) {
      probe_->acked = true;
      return;
    }
    auto relay = relays_.find(a.seq);
    if (relay == relays_.end()) {
      ++stats_.stale;
      return;
    }
    const Relay r = relay->second;
    relays_.erase(relay);
    send(r.requester, gossip::Ack{r.seq, piggyback()});
  }

  void expire_relays(time_point now) {
    std::erase_if(relays_, [&](const auto& item) { return item.second.expires <= now; });
  }

  void fire_timers(time_point now) {
    while (!timers_.empty() && timers_.begin()->first <= now) {
      const Timer t = timers_.begin()->second;
      timers_.erase(timers_.begin());
      Entry* e = find(t.node);
      if (!e || e->incarnation != t.incarnation) continue;  // refuted or replaced since
      if (t.kind == TimerKind::suspicion && e->status == MemberStatus::suspect) {
        ++stats_.declared_dead;
        set_status(*e, e->incarnation, MemberStatus::dead);
      } else if (t.kind == TimerKind::reap && e->status == MemberStatus::dead) {
        ++stats_.reaped;
        owners_.erase(e->id);
        std::erase(hot_, e->id);
        const auto at = static_cast<std::size_t>(e - members_.data());
        members_.erase(members_.begin() + static_cast<std::ptrdiff_t>(at));
        if (cursor_ >= members_.size()) cursor_ = 0;
      }
    }
  }

  static constexpr std::size_t max_rejoin = 16;  // seeds kept for rejoining when alone

  NodeId self_;
  std::vector<NodeId> rejoin_;
  T transport_;
  Clock clock_;
  GossipOptions options_;
  Random random_;
  std::vector<Entry> members_;  // sorted by id
  std::size_t live_ = 0;
  std::size_t cursor_ = 0;  // the rotating window of digests
  std::vector<NodeId> hot_;
  std::map<NodeId, Keys> owners_;
  std::multimap<time_point, Timer> timers_;
  std::vector<NodeId> probe_order_;
  std::size_t probe_index_ = 0;
  std::optional<Probe> probe_;
  std::map<std::uint64_t, Relay> relays_;
  std::uint64_t seq_ = 0;
  std::size_t incoming_left_ = 0;
  std::size_t gossip_left_ = 0;
  time_point next_gossip_{};
  time_point next_probe_{};
  GossipStats stats_;
};

}  // namespace pods

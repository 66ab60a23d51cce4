// pods/cluster/lease.hpp — Lease with fencing tokens: LeaseTable, LeaseServer, LeaseHolder,
// FencedResource
//
// Problem:       A lock service cannot tell a crashed client from a slow one, so a lock must
//                end by itself (a lease: a lock with a time to live), and a client must stop
//                acting on it before the server hands it to someone else. Clocks disagree,
//                messages take time and a process can stop for seconds (a GC pause) between
//                checking its lease and using it, so timing alone never makes the lease safe:
//                the resource it guards must refuse the late writer as well.
// Solution:      LeaseTable is the server's state machine: grant(now, name, holder, ttl) gives
//                a free (or expired) name to a holder until now + ttl, refresh extends it,
//                release and revoke end it, expire_until(now) drops what has run out. Every new
//                grant carries a fencing token from one counter that only grows. Times are
//                passed in, never read, so replicas replaying the same calls reach the same
//                table. LeaseServer runs a table behind the small lease protocol (acquire,
//                refresh and release requests; granted and refused replies) and keeps the
//                token counter durable in a SegmentStorage: it reserves blocks of tokens
//                with a synced record before using them, and after a restart starts above the
//                last reservation and grants nothing for max_ttl (the leases it forgot run out
//                first: Chubby's grace period). LeaseHolder is the client: it acquires,
//                refreshes every refresh_every, and relies on the lease only until
//                  sent + ttl - max_clock_drift
//                on its own clock, where `sent` is when it SENT the request the grant answers
//                (the server's timer started later than that), and max_clock_drift bounds how
//                much the two clocks may disagree about the length of a ttl
//                (lease_drift_bound(ttl, rate) computes it for clocks whose rates are off by
//                at most `rate`). Each request carries the holder's session (one per
//                incarnation: a restarted holder is a new owner to the server, so its
//                predecessor's late messages cannot end or take its lease) and a number the
//                reply echoes. FencedResource is the guarded resource: it remembers the
//                largest token it has seen and refuses a write with a smaller one (Kleppmann,
//                "How to do distributed locking", 2016).
// Guarantees:    - LeaseTable: at most one unexpired lease per name; a new grant's token is
//                  larger than every token the table issued before (re-acquiring a lease the
//                  same holder and session hold returns the same token); the same calls with
//                  the same times give the same table and the same results.
//                - LeaseServer: tokens keep growing across restarts from its storage; after a
//                  restart it grants nothing until max_ttl has passed on its clock.
//                - LeaseHolder: holds() is true only before sent + ttl - max_clock_drift on its
//                  clock. While every clock's rate is within `rate` of real time and
//                  max_clock_drift >= lease_drift_bound(ttl, rate), no two holders' holds()
//                  are true at once (the simulator test checks it at every step).
//                - FencedResource: the accepted tokens never decrease.
// Not provided:  Safety when a clock is stepped (use a monotonic clock: SteadyClock) or runs
//                faster or slower than the bound; fencing of a resource that does not check
//                tokens; fairness between clients (a refused client retries on its own); a
//                replicated server (the consistent core builds one from LeaseTable). Two
//                LeaseHolders for one name on one node need different seeds. A restarted
//                client waits for its predecessor's lease to run out.
// Thread safety: thread-compatible: each object is driven by one thread (or a
//                SingularUpdateQueue); const members may be read concurrently.
// Errors:        Bad arguments and options throw std::invalid_argument naming them (see each
//                constructor and method). Expected outcomes are values: a name held by
//                another is Errc::full, a refresh of a lease that ended is
//                Errc::stale_generation, a write with an old token is Errc::stale_generation,
//                an acquire without a reply is Errc::timeout. A malformed message (empty name,
//                ttl not positive) is dropped and counted. LeaseMessageCodec::decode throws
//                pods::CorruptionError naming the offset; a corrupt token record in the
//                server's storage throws CorruptionError naming the segment.
// Cost:          LeaseTable: O(log n) per call, one allocation per new lease. LeaseServer: one
//                storage append + sync per token_block grants. LeaseHolder: one message per
//                refresh, a few allocations per message (the name). FencedResource: O(1).
// Example:
//   pods::ManualClock clock;
//   pods::Outbox<pods::LeaseMessage> to_clients, to_server;
//   pods::LeaseServer server(to_clients, clock, pods::MemoryStorage{});
//   pods::LeaseHolder holder(to_server, clock, {.server = 1, .name = "orders", .ttl = 10s,
//                                               .max_clock_drift = 100ms});
//   holder.acquire([](pods::Outcome<pods::LeaseHolder<pods::Outbox<pods::LeaseMessage>,
//                                                       pods::ManualClock>::Lease> r) {
//     if (r) std::printf("token %llu\n", static_cast<unsigned long long>(r->token));
//   });
//   for (auto& sent : to_server.take()) server.receive(/*client=*/2, sent.message);
//   for (auto& sent : to_clients.take()) holder.receive(/*server=*/1, sent.message);
//   pods::FencedResource<std::string> resource;
//   if (auto token = holder.token()) (void)resource.write(*token, "new value");
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: #include <cstdio>
// Example context: #include <string>
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/random.hpp>
#include <pods/policy/storage.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>
#include <pods/storage/crc32c.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace pods {

// Returns the least max_clock_drift that keeps a lease of `ttl` safe when every clock (the
// holder's and the server's) runs at a rate within `rate` of real time (1e-4: 100 ppm):
// ceil(ttl * 2 * rate / (1 + rate)). The holder measures ttl - drift on a clock that may be
// slow by `rate` while the server measures ttl on one that may be fast by `rate`. Throws
// std::invalid_argument naming rate unless 0 <= rate < 1, or ttl unless it is positive.
inline std::chrono::nanoseconds lease_drift_bound(std::chrono::nanoseconds ttl, double rate) {
  if (!(rate >= 0.0 && rate < 1.0)) {
    std::string m = "lease_drift_bound: rate must be in [0, 1), got ";
    m += std::to_string(rate);
    throw std::invalid_argument(m);
  }
  if (ttl.count() <= 0) throw std::invalid_argument("lease_drift_bound: ttl must be positive");
  const double bound = std::ceil(static_cast<double>(ttl.count()) * 2.0 * rate / (1.0 + rate));
  return std::chrono::nanoseconds(static_cast<std::int64_t>(bound));
}

// ---- The lease protocol --------------------------------------------------------------------
// Every request carries a request number chosen by the holder; the reply echoes it, so the
// holder knows which request (and which send time) a reply answers, even after retransmits.

// Holder -> server: give me `name` for `ttl`. `session` names the holder's incarnation: a
// restarted holder has a new one, so what its previous incarnation sent (a late release, a
// duplicated acquire) never touches the new incarnation's lease.
struct LeaseAcquire {
  std::uint64_t request = 0;
  std::uint64_t session = 0;
  std::string name;
  std::chrono::nanoseconds ttl{0};

  friend bool operator==(const LeaseAcquire&, const LeaseAcquire&) = default;
};

// Holder -> server: extend my lease on `name`, granted with `token`, by its ttl from now.
struct LeaseRefresh {
  std::uint64_t request = 0;
  std::uint64_t session = 0;
  std::string name;
  std::uint64_t token = 0;

  friend bool operator==(const LeaseRefresh&, const LeaseRefresh&) = default;
};

// Holder -> server: I no longer hold `name` (granted with `token`). Not answered.
struct LeaseRelease {
  std::uint64_t request = 0;
  std::uint64_t session = 0;
  std::string name;
  std::uint64_t token = 0;

  friend bool operator==(const LeaseRelease&, const LeaseRelease&) = default;
};

// Server -> holder: `name` is yours with `token` for `ttl` from when the server handled
// request `request`.
struct LeaseGranted {
  std::uint64_t request = 0;
  std::string name;
  std::uint64_t token = 0;
  std::chrono::nanoseconds ttl{0};

  friend bool operator==(const LeaseGranted&, const LeaseGranted&) = default;
};

// Why a request was refused.
enum class LeaseRefusal : std::uint8_t {
  held = 1,        // another holder has the lease
  stale = 2,       // the lease to refresh has ended (expired, released, revoked, forgotten)
  recovering = 3,  // the server restarted and waits for the leases it forgot to run out
};

// Server -> holder: request `request` on `name` is refused; `retry_after` is how long the
// server expects the obstacle to last (the lease's remaining time, or the grace period's).
struct LeaseRefused {
  std::uint64_t request = 0;
  std::string name;
  LeaseRefusal reason = LeaseRefusal::held;
  std::chrono::nanoseconds retry_after{0};

  friend bool operator==(const LeaseRefused&, const LeaseRefused&) = default;
};

using LeaseMessage =
    std::variant<LeaseAcquire, LeaseRefresh, LeaseRelease, LeaseGranted, LeaseRefused>;

// LeaseMessageCodec: a Codec<LeaseMessage>. Layout: a version byte (1), a tag byte (the
// variant index), then the fields in declaration order: integers as little-endian u64 (i64
// for durations), names as a u32 length and the bytes, the refusal reason as one byte (1-3).
// A request's session follows its request number.
struct LeaseMessageCodec {
  static constexpr std::uint8_t version = 1;

  // Appends the encoding of `m` to `out`. Allocates as `out` grows.
  void encode(const LeaseMessage& m, Buffer& out) const {
    wire::Writer w(out);
    w.header(version, m.index());
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          w.u64(x.request);
          if constexpr (requires { x.session; }) w.u64(x.session);
          w.string(x.name);
          if constexpr (std::is_same_v<X, LeaseAcquire>) {
            w.i64(x.ttl.count());
          } else if constexpr (std::is_same_v<X, LeaseRefresh> || std::is_same_v<X, LeaseRelease>) {
            w.u64(x.token);
          } else if constexpr (std::is_same_v<X, LeaseGranted>) {
            w.u64(x.token);
            w.i64(x.ttl.count());
          } else {
            w.u8(static_cast<std::uint8_t>(x.reason));
            w.i64(x.retry_after.count());
          }
        },
        m);
  }

  // Returns the message encoded in `bytes` (exactly one). Throws pods::CorruptionError
  // ("lease message" at the offset) on an unknown version, tag or refusal reason, a
  // truncated field or trailing bytes. Allocates the name.
  LeaseMessage decode(std::span<const std::byte> bytes) const {
    wire::Reader r(bytes, "lease message");
    const std::size_t tag =
        r.header(version, std::variant_size_v<LeaseMessage>,
                 {.version = "lease message version", .kind = "lease message tag"});
    LeaseMessage m = decode_body(r, tag);
    r.expect_end();
    return m;
  }

 private:
  static LeaseMessage decode_body(wire::Reader& r, std::size_t tag) {
    const std::uint64_t request = r.u64();
    const std::uint64_t session = tag <= 2 ? r.u64() : 0;
    std::string name = r.string();
    switch (tag) {
      case 0: {
        const std::chrono::nanoseconds ttl(r.i64());
        return LeaseAcquire{request, session, std::move(name), ttl};
      }
      case 1: {
        const std::uint64_t token = r.u64();
        return LeaseRefresh{request, session, std::move(name), token};
      }
      case 2: {
        const std::uint64_t token = r.u64();
        return LeaseRelease{request, session, std::move(name), token};
      }
      case 3: {
        const std::uint64_t token = r.u64();
        const std::chrono::nanoseconds ttl(r.i64());
        return LeaseGranted{request, std::move(name), token, ttl};
      }
      default: {  // 4, LeaseRefused
        const std::size_t at = r.offset();
        const std::uint8_t reason = r.u8();
        if (reason < 1 || reason > 3) {
          std::string m = "unknown lease refusal reason ";
          m += std::to_string(reason);
          r.fail(at, m);
        }
        const std::chrono::nanoseconds retry_after(r.i64());
        return LeaseRefused{request, std::move(name), static_cast<LeaseRefusal>(reason),
                            retry_after};
      }
    }
  }
};
static_assert(Codec<LeaseMessageCodec, LeaseMessage>);

// ---- LeaseTable ----------------------------------------------------------------------------

// LeaseTable<Clock>: the leases of one server as a deterministic state machine. It never reads
// a clock: every call that depends on time takes `now` (a Clock::time_point), so a replicated
// log of calls replays to the same table on every replica. A lease whose expires_at <= now is
// expired: grant and refresh treat it as gone even before expire_until removes it.
template <PhysicalClock Clock = SteadyClock>
class LeaseTable {
 public:
  using time_point = typename Clock::time_point;
  using duration = typename Clock::duration;

  // One lease.
  struct Lease {
    std::string name;
    NodeId holder = 0;
    std::uint64_t session = 0;  // the holder's incarnation: (holder, session) owns the lease
    std::uint64_t token = 0;    // the fencing token of this grant
    duration ttl{};             // how long each grant or refresh lasts
    time_point expires_at{};    // the lease is over once now >= expires_at

    friend bool operator==(const Lease&, const Lease&) = default;
  };

  // Creates an empty table whose next new grant gets token last_token + 1 (pass the last
  // token a previous table issued, or more, to keep tokens growing across a rebuild).
  explicit LeaseTable(std::uint64_t last_token = 0) noexcept : last_token_(last_token) {}

  // Grants `name` to `holder` (in `session`) until now + ttl and returns the lease: a new
  // token when the name is free or its lease has expired; the same token, extended, when the
  // same holder and session hold it already. Returns Errc::full when another owner's lease is
  // unexpired. Throws
  // std::invalid_argument naming name when it is empty or ttl when it is not positive.
  // Allocates for a new name.
  Outcome<Lease> grant(time_point now, std::string_view name, NodeId holder, duration ttl,
                       std::uint64_t session = 0) {
    check(name, "grant");
    if (ttl.count() <= 0) {
      std::string m = "LeaseTable::grant: ttl must be positive, got ";
      m += std::to_string(std::chrono::nanoseconds(ttl).count());
      m += " ns";
      throw std::invalid_argument(m);
    }
    auto it = leases_.find(name);
    if (it != leases_.end() && it->second.expires_at > now) {
      if (!owns(it->second, holder, session)) return Errc::full;
      it->second.ttl = ttl;
      extend(it->second, now + ttl);
      return it->second;
    }
    if (it != leases_.end()) erase(it);
    if (last_token_ == std::numeric_limits<std::uint64_t>::max()) {
      throw std::overflow_error("LeaseTable::grant: the fencing tokens are exhausted");
    }
    Lease lease{std::string(name), holder, session, ++last_token_, ttl, now + ttl};
    by_expiry_.emplace(lease.expires_at, lease.name);
    return leases_.emplace(lease.name, lease).first->second;
  }

  // Extends `holder`'s lease on `name` (in `session`) granted with `token` to now + its ttl (never
  // shortens it) and returns it. Returns Errc::stale_generation when there is no such unexpired
  // lease (it expired, was released or revoked, or another grant replaced it). Throws
  // std::invalid_argument naming name when it is empty.
  Outcome<Lease> refresh(time_point now, std::string_view name, NodeId holder, std::uint64_t token,
                         std::uint64_t session = 0) {
    check(name, "refresh");
    auto it = leases_.find(name);
    if (it == leases_.end() || it->second.expires_at <= now || !owns(it->second, holder, session) ||
        it->second.token != token) {
      return Errc::stale_generation;
    }
    extend(it->second, now + it->second.ttl);
    return it->second;
  }

  // Ends `holder`'s lease on `name` (in `session`) granted with `token`. Returns false (and changes
  // nothing) when that is not the current lease of `name`.
  bool release(std::string_view name, NodeId holder, std::uint64_t token,
               std::uint64_t session = 0) {
    auto it = leases_.find(name);
    if (it == leases_.end() || !owns(it->second, holder, session) || it->second.token != token) {
      return false;
    }
    erase(it);
    return true;
  }

  // Ends the lease on `name`, whoever holds it (an operator's action), and returns it, or
  // nullopt when there is none. The holder learns at its next refresh; a guarded resource
  // refuses its writes once the next holder has written.
  std::optional<Lease> revoke(std::string_view name) {
    auto it = leases_.find(name);
    if (it == leases_.end()) return std::nullopt;
    Lease lease = it->second;
    erase(it);
    return lease;
  }

  // Removes every lease with expires_at <= now and returns them, earliest first. Allocates
  // the result.
  std::vector<Lease> expire_until(time_point now) {
    std::vector<Lease> out;
    while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
      auto it = leases_.find(by_expiry_.begin()->second);
      out.push_back(it->second);
      erase(it);
    }
    return out;
  }

  // Returns the earliest expires_at of the leases in the table, or nullopt when it is empty.
  std::optional<time_point> next_expiry() const {
    if (by_expiry_.empty()) return std::nullopt;
    return by_expiry_.begin()->first;
  }

  // Returns the lease on `name` unexpired at `now`, or nullopt.
  std::optional<Lease> find(std::string_view name, time_point now) const {
    auto it = leases_.find(name);
    if (it == leases_.end() || it->second.expires_at <= now) return std::nullopt;
    return it->second;
  }

  // Returns the largest token issued so far (the constructor's last_token before any grant).
  std::uint64_t last_token() const noexcept { return last_token_; }

  // Returns how many leases the table holds (expired ones not yet removed included).
  std::size_t size() const noexcept { return leases_.size(); }

 private:
  using Map = std::map<std::string, Lease, std::less<>>;

  static bool owns(const Lease& lease, NodeId holder, std::uint64_t session) noexcept {
    return lease.holder == holder && lease.session == session;
  }

  static void check(std::string_view name, const char* where) {
    if (name.empty()) {
      std::string m = "LeaseTable::";
      m += where;
      m += ": name must not be empty";
      throw std::invalid_argument(m);
    }
  }

  void extend(Lease& lease, time_point until) {
    if (until <= lease.expires_at) return;
    by_expiry_.erase({lease.expires_at, lease.name});
    lease.expires_at = until;
    by_expiry_.emplace(lease.expires_at, lease.name);
  }

  void erase(typename Map::iterator it) {
    by_expiry_.erase({it->second.expires_at, it->second.name});
    leases_.erase(it);
  }

  Map leases_;
  std::set<std::pair<time_point, std::string>> by_expiry_;
  std::uint64_t last_token_;
};

// ---- LeaseServer ---------------------------------------------------------------------------

struct LeaseServerOptions {
  std::chrono::nanoseconds min_ttl = std::chrono::milliseconds(10);  // shorter asks get this
  std::chrono::nanoseconds max_ttl = std::chrono::seconds(60);       // longer asks get this; grace
  std::uint64_t token_block = 1024;  // tokens reserved by one synced storage record
  // Breaks the lease rule on purpose, to show the simulator test catches it: a restarted
  // server grants at once, though the leases it forgot may still be relied on. Never set it.
  bool unsafe_skip_grace_period = false;
};

// What a LeaseServer has done.
struct LeaseServerStats {
  std::uint64_t granted = 0;    // acquires answered with a grant
  std::uint64_t refreshed = 0;  // refreshes answered with a grant
  std::uint64_t refused = 0;    // requests answered with a refusal
  std::uint64_t released = 0;   // releases that ended a lease
  std::uint64_t expired = 0;    // leases removed by tick() after running out
  std::uint64_t malformed = 0;  // messages dropped: empty name, ttl not positive, a reply

  friend bool operator==(const LeaseServerStats&, const LeaseServerStats&) = default;
};

// LeaseServer<T, Clock, Storage>: a LeaseTable behind the lease protocol, with its token
// counter durable in `storage` (segment 1 holds 12-byte records: the reserved token as a
// little-endian u64 and the CRC32C of those 8 bytes; the last whole record wins, and a torn
// last record is ignored).
template <class T, PhysicalClock Clock, SegmentStorage Storage>
requires Transport<T, LeaseMessage>
class LeaseServer {
 public:
  using Table = LeaseTable<Clock>;
  using Lease = typename Table::Lease;
  using time_point = typename Clock::time_point;
  static constexpr std::uint64_t segment = 1;

  // Creates a server answering through `transport` on `clock`, keeping its tokens in
  // `storage` (all retained). When the storage holds a reservation (the server ran before),
  // the table starts above it and the server refuses acquires for max_ttl. Throws
  // std::invalid_argument naming min_ttl, max_ttl or token_block when not positive or
  // min_ttl > max_ttl; pods::CorruptionError naming the segment when a record other than
  // the last one is corrupt; what the storage throws.
  LeaseServer(T transport, Clock clock, Storage storage, LeaseServerOptions options = {})
      : transport_(std::move(transport)),
        clock_(std::move(clock)),
        storage_(std::move(storage)),
        options_(options) {
    if (options_.min_ttl.count() <= 0)
      throw std::invalid_argument("LeaseServer: min_ttl must be positive");
    if (options_.max_ttl < options_.min_ttl)
      throw std::invalid_argument("LeaseServer: max_ttl must not be less than min_ttl");
    if (options_.token_block == 0)
      throw std::invalid_argument("LeaseServer: token_block must be positive");
    if (const auto reserved = recover()) {
      reserved_ = *reserved;
      table_ = Table(reserved_);
      recovering_until_ = clock_.now() + options_.max_ttl;
      recovering_ = !options_.unsafe_skip_grace_period;
    }
  }

  // Handles one message from `from` (the holder's id): answers acquires and refreshes, applies
  // releases. Drops and counts malformed ones. May append to and sync the storage (throws what
  // it throws).
  void receive(NodeId from, LeaseMessage message) {
    const time_point now = clock_.now();
    std::visit([&](auto& m) { handle(from, now, m); }, message);
  }

  // Removes the leases that have run out and ends the grace period when it is over.
  void tick() {
    const time_point now = clock_.now();
    stats_.expired += table_.expire_until(now).size();
    if (recovering_ && now >= recovering_until_) recovering_ = false;
  }

  // Returns when tick() next has work: the next expiry or the end of the grace period.
  std::optional<time_point> next_deadline() const {
    std::optional<time_point> next = table_.next_expiry();
    if (recovering_ && (!next || recovering_until_ < *next)) next = recovering_until_;
    return next;
  }

  // Ends the lease on `name` now, whoever holds it; returns it, or nullopt.
  std::optional<Lease> revoke(std::string_view name) { return table_.revoke(name); }

  // Returns true while the server waits out the grace period after a restart.
  bool recovering() const { return recovering_ && clock_.now() < recovering_until_; }

  const Table& table() const noexcept { return table_; }
  const LeaseServerStats& stats() const noexcept { return stats_; }

 private:
  using Nanos = std::chrono::nanoseconds;

  // Reads the last whole reservation record, or nullopt when there is none.
  std::optional<std::uint64_t> recover() {
    const std::vector<std::uint64_t> ids = storage_.list();
    if (std::find(ids.begin(), ids.end(), segment) == ids.end()) {
      storage_.create(segment);
      return std::nullopt;
    }
    const std::uint64_t size = storage_.size(segment);
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    const std::size_t got = storage_.read(segment, 0, bytes);
    std::optional<std::uint64_t> last;
    std::size_t valid_end = 0;
    for (std::size_t at = 0; at + record_size <= got; at += record_size) {
      wire::Reader r(std::span<const std::byte>(bytes).subspan(at, record_size), "lease tokens");
      const std::uint64_t value = r.u64();
      const std::uint32_t crc = r.u32();
      if (crc != crc32c(std::span<const std::byte>(bytes).subspan(at, 8))) {
        if (at + record_size == got) break;  // a garbled final record was never relied on
        std::string reason = "token record checksum mismatch at offset ";
        reason += std::to_string(at);
        throw CorruptionError(storage_.name(segment), at, reason);
      }
      last = std::max(last.value_or(0), value);
      valid_end = at + record_size;
    }
    // Cut a record a crash left unfinished, so the next one starts on a record boundary.
    if (valid_end != got) storage_.truncate(segment, valid_end);
    if (!last && got > 0) return std::uint64_t{0};  // it ran, but reserved nothing whole
    return last;
  }

  // Makes sure the next token is covered by a synced reservation.
  void reserve_next() {
    if (table_.last_token() < reserved_) return;
    const std::uint64_t next = reserved_ + options_.token_block;
    Buffer record;
    wire::Writer w(record);
    w.u64(next);
    w.u32(crc32c(std::span<const std::byte>(record)));
    storage_.append(segment, record);
    storage_.sync(segment);
    reserved_ = next;
  }

  Nanos clamp(Nanos ttl) const { return std::clamp(ttl, options_.min_ttl, options_.max_ttl); }

  void refuse(NodeId to, std::uint64_t request, std::string name, LeaseRefusal reason,
              Nanos retry_after) {
    ++stats_.refused;
    transport_.send(to, LeaseRefused{request, std::move(name), reason, retry_after});
  }

  void handle(NodeId from, time_point now, LeaseAcquire& m) {
    if (m.name.empty() || m.ttl.count() <= 0) {
      ++stats_.malformed;
      return;
    }
    if (recovering_ && now < recovering_until_) {
      refuse(from, m.request, std::move(m.name), LeaseRefusal::recovering,
             std::chrono::duration_cast<Nanos>(recovering_until_ - now));
      return;
    }
    if (const auto held = table_.find(m.name, now);
        !held || held->holder != from || held->session != m.session) {
      if (held) {
        refuse(from, m.request, std::move(m.name), LeaseRefusal::held,
               std::chrono::duration_cast<Nanos>(held->expires_at - now));
        return;
      }
      reserve_next();
    }
    const Outcome<Lease> lease = table_.grant(now, m.name, from, clamp(m.ttl), m.session);
    ++stats_.granted;
    transport_.send(from, LeaseGranted{m.request, std::move(m.name), lease->token,
                                       std::chrono::duration_cast<Nanos>(lease->ttl)});
  }

  void handle(NodeId from, time_point now, LeaseRefresh& m) {
    if (m.name.empty()) {
      ++stats_.malformed;
      return;
    }
    const Outcome<Lease> lease = table_.refresh(now, m.name, from, m.token, m.session);
    if (!lease) {
      refuse(from, m.request, std::move(m.name), LeaseRefusal::stale, Nanos(0));
      return;
    }
    ++stats_.refreshed;
    transport_.send(from, LeaseGranted{m.request, std::move(m.name), lease->token,
                                       std::chrono::duration_cast<Nanos>(lease->ttl)});
  }

  void handle(NodeId from, time_point, LeaseRelease& m) {
    if (table_.release(m.name, from, m.token, m.session)) ++stats_.released;
  }

  // A reply sent to a server is not a request.
  void handle(NodeId, time_point, LeaseGranted&) { ++stats_.malformed; }
  void handle(NodeId, time_point, LeaseRefused&) { ++stats_.malformed; }

  static constexpr std::size_t record_size = 12;

  T transport_;
  Clock clock_;
  Storage storage_;
  LeaseServerOptions options_;
  Table table_;
  std::uint64_t reserved_ = 0;  // tokens up to here are covered by a synced record
  bool recovering_ = false;
  time_point recovering_until_{};
  LeaseServerStats stats_;
};

// ---- LeaseHolder ---------------------------------------------------------------------------

struct LeaseHolderOptions {
  NodeId server = 0;                                        // where the LeaseServer runs
  std::string name;                                         // the lease to hold
  std::chrono::nanoseconds ttl = std::chrono::seconds(10);  // asked for on acquire
  std::chrono::nanoseconds max_clock_drift = std::chrono::milliseconds(100);  // see header
  std::chrono::nanoseconds refresh_every{0};                                  // zero: ttl / 3
  std::chrono::nanoseconds retry_every{0};      // resend an unanswered request; zero: ttl / 10
  std::chrono::nanoseconds acquire_timeout{0};  // give up an acquire; zero: ttl
  // Seeds the holder's session and first request number, mixed with the clock's reading at
  // construction, so each incarnation of a holder differs from the last (give each one a
  // seed of its own, such as a random draw, where the clock may read the same twice).
  std::uint64_t seed = 0;
  // Breaks the lease rule on purpose, to show the simulator test catches it: measures the
  // validity from when the grant ARRIVED instead of when the request was sent. Never set it.
  bool unsafe_measure_from_arrival = false;
};

// What a LeaseHolder has done.
struct LeaseHolderStats {
  std::uint64_t acquired = 0;   // acquires that ended with a lease
  std::uint64_t refreshed = 0;  // refresh replies that extended the lease
  std::uint64_t lapsed = 0;     // leases that ran out on the holder's clock
  std::uint64_t lost = 0;       // leases the server refused to refresh
  std::uint64_t unwanted = 0;   // grants that answered no pending request (released at once)
  std::uint64_t ignored = 0;    // replies for another name, an old request or a ttl <= 0,
                                // and requests

  friend bool operator==(const LeaseHolderStats&, const LeaseHolderStats&) = default;
};

// LeaseHolder<T, Clock>: one client's hold on one named lease.
template <class T, PhysicalClock Clock = SteadyClock>
requires Transport<T, LeaseMessage>
class LeaseHolder {
 public:
  using time_point = typename Clock::time_point;

  // A held lease: use `token` with every write to the guarded resource.
  struct Lease {
    std::uint64_t token = 0;
    time_point valid_until{};  // holds() turns false here, on the holder's clock

    friend bool operator==(const Lease&, const Lease&) = default;
  };
  using Callback = std::function<void(Outcome<Lease>)>;

  // Creates an idle holder sending through `transport` and timing on `clock` (both retained).
  // Throws std::invalid_argument naming the option: name empty, ttl not positive,
  // max_clock_drift negative or not less than ttl, refresh_every not less than
  // ttl - max_clock_drift, retry_every or acquire_timeout negative.
  LeaseHolder(T transport, Clock clock, LeaseHolderOptions options)
      : transport_(std::move(transport)), clock_(std::move(clock)), options_(std::move(options)) {
    auto fail = [](const char* what) {
      std::string m = "LeaseHolder: ";
      m += what;
      throw std::invalid_argument(m);
    };
    if (options_.name.empty()) fail("name must not be empty");
    if (options_.ttl.count() <= 0) fail("ttl must be positive");
    if (options_.max_clock_drift.count() < 0 || options_.max_clock_drift >= options_.ttl)
      fail("max_clock_drift must be in [0, ttl)");
    if (options_.refresh_every.count() == 0) options_.refresh_every = options_.ttl / 3;
    if (options_.retry_every.count() == 0) options_.retry_every = options_.ttl / 10;
    if (options_.acquire_timeout.count() == 0) options_.acquire_timeout = options_.ttl;
    if (options_.refresh_every.count() <= 0 ||
        options_.refresh_every >= options_.ttl - options_.max_clock_drift)
      fail("refresh_every must be in (0, ttl - max_clock_drift)");
    if (options_.retry_every.count() <= 0) fail("retry_every must be positive");
    if (options_.acquire_timeout.count() <= 0) fail("acquire_timeout must be positive");
    std::uint64_t state = options_.seed ^ static_cast<std::uint64_t>(to_nanoseconds(clock_.now()));
    session_ = detail::splitmix64(state);
    next_request_ = detail::splitmix64(state) >> 1;  // far from wrapping around
  }

  // Starts acquiring the lease: sends an acquire now and again every retry_every until a
  // reply or acquire_timeout. `done` (retained) runs exactly once: with the Lease, with
  // Errc::full when another holder has it or the server is in its grace period after a
  // restart (see retry_after()), Errc::timeout without an answer in time, or
  // Errc::cancelled when release() comes first. Throws std::logic_error when an acquire is
  // pending or the lease is held (a lease past its end counts as lapsed).
  void acquire(Callback done) {
    const time_point now = clock_.now();
    if (state_ == State::held && now >= valid_until_) lapse();  // ran out before a tick
    if (state_ != State::idle) {
      throw std::logic_error("LeaseHolder::acquire: already acquiring or holding");
    }
    state_ = State::acquiring;
    done_ = std::move(done);
    acquire_deadline_ = now + options_.acquire_timeout;
    pending_.clear();
    send_acquire(now);
  }

  // Stops relying on the lease at once and tells the server (once, best effort: a lost
  // release only means the lease runs out on the server). A pending acquire completes with
  // Errc::cancelled. Does nothing when idle.
  void release() {
    if (state_ == State::held) {
      send_release(token_);
      state_ = State::idle;
    } else if (state_ == State::acquiring) {
      finish(Errc::cancelled);
    }
    pending_.clear();
  }

  // Returns true while the lease is held and valid on this holder's clock (before
  // sent + ttl - max_clock_drift of the latest answered request). Reads the clock.
  bool holds() const { return state_ == State::held && clock_.now() < valid_until_; }

  // Returns the fencing token while holds() is true, else nullopt.
  std::optional<std::uint64_t> token() const {
    if (!holds()) return std::nullopt;
    return token_;
  }

  // Returns the lease while holds() is true, else nullopt.
  std::optional<Lease> lease() const {
    if (!holds()) return std::nullopt;
    return Lease{token_, valid_until_};
  }

  // Returns this incarnation's session number, sent with every request.
  std::uint64_t session() const noexcept { return session_; }

  // Returns true while an acquire is pending.
  bool acquiring() const noexcept { return state_ == State::acquiring; }

  // Returns the server's estimate, in the last refusal, of how long the obstacle lasts.
  std::chrono::nanoseconds retry_after() const noexcept { return retry_after_; }

  // Handles a reply from the server. Replies from another node, for another name, or for no
  // pending request are counted and ignored; an unwanted grant is released at once.
  void receive(NodeId from, LeaseMessage message) {
    if (from != options_.server) {
      ++stats_.ignored;
      return;
    }
    if (auto* g = std::get_if<LeaseGranted>(&message)) return granted(*g);
    if (auto* r = std::get_if<LeaseRefused>(&message)) return refused(*r);
    ++stats_.ignored;  // a request sent to a holder
  }

  // Fires what is due on this holder's clock: the end of the lease, a refresh, a resend, the
  // acquire timeout.
  void tick() {
    const time_point now = clock_.now();
    if (state_ == State::acquiring) {
      if (now >= acquire_deadline_) return finish(Errc::timeout);
      if (now >= retry_at_) send_acquire(now);
    } else if (state_ == State::held) {
      if (now >= valid_until_) {
        lapse();
      } else if (now >= refresh_at_) {
        send_refresh(now);
      }
    }
  }

  // Returns when tick() next has work, or nullopt when idle.
  std::optional<time_point> next_deadline() const {
    if (state_ == State::acquiring) return std::min(acquire_deadline_, retry_at_);
    if (state_ == State::held) return std::min(valid_until_, refresh_at_);
    return std::nullopt;
  }

  const LeaseHolderOptions& options() const noexcept { return options_; }
  const LeaseHolderStats& stats() const noexcept { return stats_; }

 private:
  enum class State { idle, acquiring, held };
  struct Pending {
    std::uint64_t request;
    time_point sent;
  };
  static constexpr std::size_t max_pending = 16;

  void lapse() {
    ++stats_.lapsed;
    state_ = State::idle;
    pending_.clear();
  }

  void remember(time_point now) {
    if (pending_.size() == max_pending) pending_.pop_front();
    pending_.push_back(Pending{++next_request_, now});
    retry_at_ = now + options_.retry_every;
  }

  void send_acquire(time_point now) {
    remember(now);
    transport_.send(options_.server,
                    LeaseAcquire{next_request_, session_, options_.name, options_.ttl});
  }

  void send_refresh(time_point now) {
    remember(now);
    refresh_at_ = retry_at_;
    transport_.send(options_.server, LeaseRefresh{next_request_, session_, options_.name, token_});
  }

  // Returns the send time of pending request `request`, or nullopt.
  std::optional<time_point> sent_at(std::uint64_t request) const {
    for (const Pending& p : pending_)
      if (p.request == request) return p.sent;
    return std::nullopt;
  }

  void finish(Outcome<Lease> result) {
    if (!result) state_ = State::idle;
    pending_.clear();
    Callback done = std::move(done_);
    done_ = nullptr;
    if (done) done(std::move(result));
  }

  // Sends a release of `token` and never relies on that token again: a release may arrive
  // after a later grant that re-grants the same token, and would end it on the server.
  void send_release(std::uint64_t token) {
    released_max_ = std::max(released_max_, token);
    transport_.send(options_.server, LeaseRelease{++next_request_, session_, options_.name, token});
  }

  void granted(const LeaseGranted& g) {
    if (g.name != options_.name || g.ttl.count() <= 0) {
      ++stats_.ignored;
      return;
    }
    const std::optional<time_point> sent = sent_at(g.request);
    if (state_ == State::held && g.token == token_) {
      if (!sent) {
        ++stats_.ignored;  // a duplicate or an answer overtaken by a later one
        return;
      }
      return extend(g, *sent);
    }
    if (state_ != State::acquiring || !sent || g.token <= released_max_) {
      // A late or duplicated answer to a request given up on, or a token already handed back:
      // the server may hold the name for us, so hand it back (again).
      ++stats_.unwanted;
      send_release(g.token);
      return;
    }
    const time_point now = clock_.now();
    const time_point start = options_.unsafe_measure_from_arrival ? now : *sent;
    const time_point until = start + ttl_of(g) - options_.max_clock_drift;
    if (until <= now) {
      // Too late to be of use: the lease may already be someone else's on the server.
      send_release(g.token);
      return finish(Errc::timeout);
    }
    state_ = State::held;
    token_ = g.token;
    valid_until_ = until;
    refresh_at_ = start + refresh_period(g);
    ++stats_.acquired;
    finish(Lease{token_, valid_until_});
  }

  // Applies a refresh reply to the held lease: each answer's bound is safe on its own (the
  // server extended from when it handled a request sent at `sent`), so keep the latest.
  void extend(const LeaseGranted& g, time_point sent) {
    const time_point start = options_.unsafe_measure_from_arrival ? clock_.now() : sent;
    const time_point until = start + ttl_of(g) - options_.max_clock_drift;
    if (until > valid_until_) valid_until_ = until;
    refresh_at_ = std::max(refresh_at_, start + refresh_period(g));
    ++stats_.refreshed;
    std::erase_if(pending_, [&](const Pending& p) { return p.request <= g.request; });
  }

  // Returns the ttl to count on: the granted one, but never more than was asked for (a server
  // that grants more is not trusted further, and a wild value cannot overflow the clock).
  typename Clock::duration ttl_of(const LeaseGranted& g) const {
    return std::chrono::duration_cast<typename Clock::duration>(std::min(g.ttl, options_.ttl));
  }

  // Refreshes at refresh_every, or sooner when the server granted a shorter ttl.
  typename Clock::duration refresh_period(const LeaseGranted& g) const {
    const typename Clock::duration usable = ttl_of(g) - options_.max_clock_drift;
    return std::min<typename Clock::duration>(options_.refresh_every, usable / 2);
  }

  void refused(const LeaseRefused& r) {
    if (r.name != options_.name || !sent_at(r.request)) {
      ++stats_.ignored;
      return;
    }
    retry_after_ = r.retry_after;
    if (state_ == State::acquiring) return finish(Errc::full);
    if (state_ == State::held) {
      ++stats_.lost;
      state_ = State::idle;
      pending_.clear();
    }
  }

  T transport_;
  Clock clock_;
  LeaseHolderOptions options_;
  State state_ = State::idle;
  std::uint64_t session_ = 0;
  std::uint64_t next_request_ = 0;  // the last request number used
  std::deque<Pending> pending_;
  Callback done_;
  time_point acquire_deadline_{};
  time_point retry_at_{};
  time_point refresh_at_{};
  time_point valid_until_{};
  std::uint64_t token_ = 0;
  std::uint64_t released_max_ = 0;  // no grant of a token up to this one is relied on
  std::chrono::nanoseconds retry_after_{0};
  LeaseHolderStats stats_;
};

// ---- FencedResource ------------------------------------------------------------------------

// FencedResource<V>: a value guarded by fencing tokens. It remembers the largest token of any
// accepted write and refuses a write with a smaller one: a holder whose lease ran out while it
// was paused cannot overwrite what the next holder wrote. Equal tokens are accepted (one
// holder writes many times under one grant).
template <class V = std::vector<std::byte>>
class FencedResource {
 public:
  // Stores `value` (moved) when token >= the largest token seen; returns
  // Errc::stale_generation (and stores nothing) otherwise.
  Outcome<void> write(std::uint64_t token, V value) {
    if (!admit(token)) return Errc::stale_generation;
    value_ = std::move(value);
    return {};
  }

  // Records `token` and returns true when it is >= the largest seen; returns false (and
  // counts a refusal) otherwise. For a resource that applies the write itself.
  bool admit(std::uint64_t token) noexcept {
    if (seen_ && token < highest_) {
      ++refused_;
      return false;
    }
    seen_ = true;
    highest_ = token;
    ++accepted_;
    return true;
  }

  // Returns the value of the last accepted write (value-initialised before any).
  const V& value() const noexcept { return value_; }
  // Returns the largest token accepted so far (0 before any).
  std::uint64_t highest_token() const noexcept { return highest_; }
  std::uint64_t accepted() const noexcept { return accepted_; }
  std::uint64_t refused() const noexcept { return refused_; }

 private:
  V value_{};
  std::uint64_t highest_ = 0;
  bool seen_ = false;
  std::uint64_t accepted_ = 0;
  std::uint64_t refused_ = 0;
};

}  // namespace pods

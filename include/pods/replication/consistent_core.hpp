// pods/replication/consistent_core.hpp — Consistent Core (with Lease), over the Replicated Log
//
// Problem:       A large cluster needs a few facts everyone agrees on (who leads a partition,
//                which servers are alive, which client holds a lock), but running consensus
//                among all its servers is slow, and a store that is not linearizable hands
//                two servers the same lock. Locks must also end when their holder dies.
// Solution:      A small key-value state machine on a ReplicatedLog (Raft): every write is
//                a command in the log, applied in index order on every server, each change
//                of a key taking the next revision of one global counter (so every server
//                assigns the same revisions). A write carries its condition (a key's
//                mod_revision for compare-and-set, absent or present for SET NX / XX), checked
//                when it applies, so optimistic locking needs no lock. Reads are linearizable
//                through ReadIndex by default (Raft §8, dissertation §6.4: the read index,
//                a heartbeat round confirming leadership, then the apply); LeaseRead (§6.4.1)
//                and the local state are selectable per read. Leases: grant and revoke are
//                log entries (the ttl is replicated); the deadline is the leader's alone, on
//                its own clock: now + ttl at the grant and at each keep_alive, and reset to
//                now + ttl for every lease when a server becomes leader (a new leader cannot
//                know when its predecessor last heard a holder; restarting the ttl never
//                expires a lease early, dissertation §6.4.1's reasoning for leader leases
//                turned to client leases). keep_alive answers only after a ReadIndex round
//                confirmed the leadership (§6.4), so a deposed leader never answers it. A
//                leader proposes an expiry entry for a lease past its deadline; applying it
//                removes the lease and its keys on every server, with the same revisions.
//                The lease id is the log index of its grant: unique and increasing (a fencing
//                token). A write's callback is matched to its own entry by the entry's term
//                (one leader per term appends each index once, §5.3), so an entry that lost
//                its index to another leader's is never reported as applied.
// Guarantees:    Writes and ReadIndex reads are linearizable; LeaseRead reads are while clock
//                drift stays within options.reads.max_drift. Every server applies the same
//                changes with the same revisions; the revision never goes back. A write's
//                callback runs once, after the command applied on this server, with its own
//                result. A lease is not expired by the leader before ttl has passed on the
//                leader's clock since its grant, its last keep_alive on that leader, or that
//                leader's election. Snapshots (the log's §7) carry keys, leases and the revision.
// Not provided:  Exactly-once writes (a write retried after Errc::cancelled or Errc::timeout may
//                apply twice); a client-side lease clock (a holder stops relying on its lease
//                at sent + ttl - drift: see cluster/lease.hpp's LeaseHolder); history compaction
//                by revision (the state holds the latest value of each key only); leases across
//                a leadership transfer sooner than ttl (the new leader restarts every ttl).
// Thread safety: thread-confined: one thread calls every member; callbacks run on it, from
//                the call that completes them (receive, tick, or the call itself).
// Errors:        Bad options throw std::invalid_argument naming the option; bad arguments
//                (an empty key, NX with XX, a ttl outside [min_ttl, max_ttl], lease 0)
//                throw std::invalid_argument naming the argument and the rule. Outcomes given
//                to callbacks: Errc::not_leader on a follower (leader() hints; also when
//                another entry won the write's index), Errc::full when
//                options.max_pending_writes wait (or the log is transferring leadership),
//                Errc::cancelled when this server stopped leading before the write applied
//                (the outcome is unknown: the entry may still commit), Errc::timeout after
//                options.write_timeout (unknown too); reads: what ReadIndex and LeaseRead give;
//                keep_alive of a lease that is unknown, revoked or expiring:
//                Errc::session_expired. A corrupt command or snapshot throws
//                pods::CorruptionError naming "ConsistentCore command at index N" or
//                "ConsistentCore snapshot" and the offset.
// Cost:          A write: one log entry (its key, value and 30 bytes), one replication round,
//                O(log n) to apply. A ReadIndex read: a heartbeat round (shared by the reads
//                of one poll). A LeaseRead or local read: O(log n). A keep_alive: a heartbeat
//                round, no log entry. Memory: each key with its value and 40 bytes, each lease
//                its keys' names again.
// Example:
//   pods::ConsistentCore core(pods::MemoryStorage{}, out, clock,
//                             pods::ConsistentCoreOptions{.log = {.self = 1, .voters = {1}}});
//   clock.advance(std::chrono::seconds(1));
//   core.tick();                                          // a single voter elects itself
//   std::optional<pods::CoreWrite> put;
//   core.put("a", {std::byte{1}}, {}, [&](pods::Outcome<pods::CoreWrite> w) { put = *w; });
//   core.tick();                                          // commit and apply
//   assert(put && put->ok && put->revision == 1);
//   core.put("a", {std::byte{2}}, {.if_mod_revision = 7}, [](auto w) { assert(!w->ok); });
//   core.tick();                                          // a failed compare-and-set
//   core.get("a", pods::CoreRead::local, [](auto kv) { assert((*kv)->mod_revision == 1); });
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: #include <cassert>
// Example context: pods::Outbox<pods::ReplicatedLogMessage> out;
// Example context: pods::ManualClock clock;
#pragma once

#include <pods/messaging/move_only_function.hpp>
#include <pods/messaging/request_waiting_list.hpp>
#include <pods/messaging/state_watch.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/storage.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>
#include <pods/replication/follower_reads.hpp>
#include <pods/replication/replicated_log.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace pods {

// One key of the core: its value, the revisions of its creation and last change, how many
// puts since its creation, and the lease it is attached to.
struct CoreKeyValue {
  std::string key;
  std::vector<std::byte> value;
  std::uint64_t create_revision = 0, mod_revision = 0, version = 0;  // version: puts since creation
  std::uint64_t lease = 0;                                           // 0: none

  friend bool operator==(const CoreKeyValue&, const CoreKeyValue&) = default;
};

// Which read path a read takes: ReadIndex (the default, linearizable), LeaseRead, or this
// server's state as it is (any server, possibly stale).
enum class CoreRead : std::uint8_t { linearizable, lease, local };

// The condition of a put, checked when it applies.
struct CorePut {
  // Compare-and-set: only when the key's mod_revision is this (0: the key is absent).
  std::optional<std::uint64_t> if_mod_revision{};
  bool if_absent = false;   // SET NX
  bool if_present = false;  // SET XX
  std::uint64_t lease = 0;  // attach to this lease (0: none); unknown lease: not applied
};

// The result of put, erase, increment and revoke.
struct CoreWrite {
  bool ok = false;             // false: a condition failed (nothing changed)
  std::uint64_t revision = 0;  // ok: the change's revision; else the core's revision then
  std::optional<CoreKeyValue> previous{};  // the key before the command
  std::int64_t number = 0;                 // increment: the new value

  friend bool operator==(const CoreWrite&, const CoreWrite&) = default;
};

// A lease: its id (the log index of its grant) and its time to live.
struct CoreLease {
  std::uint64_t id = 0;
  std::chrono::milliseconds ttl{0};

  friend bool operator==(const CoreLease&, const CoreLease&) = default;
};

struct ConsistentCoreOptions {
  ReplicatedLogOptions log{};  // self, voters, timeouts, seed, snapshot_every...
  ReadOptions reads{};         // ReadIndex / LeaseRead options
  StateWatchOptions watch{};   // the watches of watches()
  std::chrono::milliseconds min_ttl{100}, max_ttl{std::chrono::minutes(10)};
  std::chrono::nanoseconds write_timeout = std::chrono::seconds(5);  // then Errc::timeout
  std::size_t max_pending_writes = 1024;  // writes waiting for their entry; then Errc::full
};

// The rules ConsistentCore follows (ReadIndex's, and its own). Every member is true here; a
// test may pass a policy that turns one off to show that its checks notice.
struct ConsistentCoreRules : ReadRules {
  static constexpr bool reset_lease_deadlines = true;  // a new leader restarts every lease's ttl
};

namespace detail {

// The commands of the core's log entries (the op byte after the version byte).
enum class CoreOp : std::uint8_t {
  put = 0,
  erase = 1,
  increment = 2,
  grant = 3,
  revoke = 4,
  expire = 5
};
inline constexpr std::uint8_t core_command_version = 1;
inline constexpr std::uint8_t core_snapshot_version = 1;

// One change of a key as a command applied it.
struct CoreChange {
  std::uint64_t revision = 0;
  bool erase = false;
  std::string key;
  std::vector<std::byte> value;
};

// What applying one command did.
struct CoreApplied {
  CoreWrite write;
  CoreLease lease;                     // grant: the lease granted
  std::vector<CoreChange> changes;     // in revision order
  std::optional<CoreLease> granted;    // a lease that began
  std::optional<std::uint64_t> ended;  // a lease that ended (revoke, expire)
};

// The deterministic state of the core: keys, leases, the revision. Commands and snapshots in
// the wire format written by the encode_* functions below.
class CoreState {
 public:
  struct Lease {
    std::chrono::milliseconds ttl{0};
    std::set<std::string, std::less<>> keys;
  };

  std::uint64_t revision() const noexcept { return revision_; }
  const std::map<std::string, CoreKeyValue, std::less<>>& keys() const noexcept { return kv_; }
  const std::map<std::uint64_t, Lease>& leases() const noexcept { return leases_; }

  const CoreKeyValue* find(std::string_view key) const {
    const auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
  }

  // Applies the command `bytes` of log entry `index`. Throws pods::CorruptionError naming
  // "ConsistentCore command at index N" for bytes that do not decode; changes nothing then.
  CoreApplied apply(std::uint64_t index, std::span<const std::byte> bytes) {
    const std::string where = "ConsistentCore command at index " + std::to_string(index);
    wire::Reader r(bytes, where);
    r.expect_version(core_command_version, "command version");
    const auto op = static_cast<CoreOp>(r.kind(6, "command op"));
    CoreApplied a;
    switch (op) {
      case CoreOp::put: {
        std::string key = r.string();
        std::vector<std::byte> value = r.bytes();
        const std::size_t at = r.offset();
        const std::uint8_t flags = r.u8();
        if (flags > 7) r.fail(at, "unknown put flags " + std::to_string(flags));
        CorePut c;
        if (flags & 1) c.if_mod_revision = r.u64();
        c.if_absent = (flags & 2) != 0;
        c.if_present = (flags & 4) != 0;
        c.lease = r.u64();
        r.expect_end();
        put(a, std::move(key), std::move(value), c);
        break;
      }
      case CoreOp::erase: {
        std::string key = r.string();
        r.expect_end();
        erase(a, key);
        break;
      }
      case CoreOp::increment: {
        std::string key = r.string();
        const std::int64_t delta = r.i64();
        r.expect_end();
        increment(a, std::move(key), delta);
        break;
      }
      case CoreOp::grant: {
        const std::uint64_t ttl = r.u64();
        r.expect_end();
        const CoreLease l{index, std::chrono::milliseconds(static_cast<std::int64_t>(ttl))};
        leases_[index].ttl = l.ttl;
        a.write = {true, revision_, std::nullopt, 0};
        a.lease = l;
        a.granted = l;
        break;
      }
      case CoreOp::revoke:
      case CoreOp::expire: {
        const std::uint64_t id = r.u64();
        r.expect_end();
        end_lease(a, id);
        break;
      }
    }
    return a;
  }

  // Returns the encoded state: version, revision, the keys in order (key, value, create,
  // mod, version, lease), the leases in order (id, ttl in ms). Allocates.
  std::vector<std::byte> snapshot() const {
    Buffer b;
    wire::Writer w(b);
    w.u8(core_snapshot_version);
    w.u64(revision_);
    w.count(kv_.size());
    for (const auto& [k, v] : kv_) {
      w.string(k);
      w.bytes(v.value);
      w.u64(v.create_revision);
      w.u64(v.mod_revision);
      w.u64(v.version);
      w.u64(v.lease);
    }
    w.count(leases_.size());
    for (const auto& [id, l] : leases_) {
      w.u64(id);
      w.u64(static_cast<std::uint64_t>(l.ttl.count()));
    }
    return b;
  }

  // Replaces the state with the decoded `bytes`. Throws pods::CorruptionError naming
  // "ConsistentCore snapshot" and the offset for a bad version, a truncated field, keys out
  // of order, a revision above the state's, a key on an unknown lease, or trailing bytes;
  // the state is unchanged then.
  void restore(std::span<const std::byte> bytes) {
    wire::Reader r(bytes, "ConsistentCore snapshot");
    r.expect_version(core_snapshot_version, "snapshot version");
    CoreState s;
    s.revision_ = r.u64();
    const std::size_t n = r.count(4 + 4 + 32);
    for (std::size_t i = 0; i < n; ++i) {
      const std::size_t at = r.offset();
      CoreKeyValue v;
      v.key = r.string();
      v.value = r.bytes();
      v.create_revision = r.u64();
      v.mod_revision = r.u64();
      v.version = r.u64();
      v.lease = r.u64();
      if (!s.kv_.empty() && v.key <= s.kv_.rbegin()->first) r.fail(at, "keys out of order");
      if (v.mod_revision > s.revision_ || v.create_revision > v.mod_revision || v.version == 0) {
        r.fail(at, "a key's revisions are inconsistent");
      }
      std::string key = v.key;
      s.kv_.emplace_hint(s.kv_.end(), std::move(key), std::move(v));
    }
    const std::size_t m = r.count(16);
    for (std::size_t i = 0; i < m; ++i) {
      const std::size_t at = r.offset();
      const std::uint64_t id = r.u64();
      const std::uint64_t ttl = r.u64();
      if (id == 0 || (!s.leases_.empty() && id <= s.leases_.rbegin()->first) ||
          ttl > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
        r.fail(at, "a lease is 0, out of order or has a bad ttl");
      }
      s.leases_[id].ttl = std::chrono::milliseconds(static_cast<std::int64_t>(ttl));
    }
    for (const auto& [k, v] : s.kv_) {
      if (v.lease == 0) continue;
      const auto l = s.leases_.find(v.lease);
      if (l == s.leases_.end()) r.fail(r.offset(), "key " + k + " is on an unknown lease");
      l->second.keys.insert(k);
    }
    r.expect_end();
    *this = std::move(s);
  }

 private:
  void put(CoreApplied& a, std::string key, std::vector<std::byte> value, const CorePut& c) {
    const auto it = kv_.find(key);
    if (it != kv_.end()) a.write.previous = it->second;
    const std::uint64_t mod = it == kv_.end() ? 0 : it->second.mod_revision;
    const bool holds = (!c.if_mod_revision || *c.if_mod_revision == mod) &&
                       !(c.if_absent && it != kv_.end()) && !(c.if_present && it == kv_.end()) &&
                       (c.lease == 0 || leases_.contains(c.lease));
    a.write.revision = revision_;
    if (!holds) return;
    set(a, std::move(key), std::move(value), c.lease);
  }

  void increment(CoreApplied& a, std::string key, std::int64_t delta) {
    const auto it = kv_.find(key);
    std::int64_t current = 0;
    a.write.revision = revision_;
    if (it != kv_.end()) {
      a.write.previous = it->second;
      const auto& v = it->second.value;
      const char* first = reinterpret_cast<const char*>(v.data());
      const char* last = first + v.size();
      const auto [end, ec] = std::from_chars(first, last, current);
      if (v.empty() || ec != std::errc{} || end != last) return;  // not an integer
    }
    std::int64_t next = 0;
    if (__builtin_add_overflow(current, delta, &next)) return;  // overflow
    const std::string text = std::to_string(next);
    std::vector<std::byte> value(text.size());
    std::transform(text.begin(), text.end(), value.begin(),
                   [](char ch) { return static_cast<std::byte>(ch); });
    const std::uint64_t lease = it == kv_.end() ? 0 : it->second.lease;  // INCR keeps the lease
    set(a, std::move(key), std::move(value), lease);
    a.write.number = next;
  }

  // Gives `key` the next revision with `value` on `lease`.
  void set(CoreApplied& a, std::string key, std::vector<std::byte> value, std::uint64_t lease) {
    const std::uint64_t rev = ++revision_;
    auto [it, fresh] = kv_.try_emplace(key);
    CoreKeyValue& v = it->second;
    if (fresh) {
      v.key = key;
      v.create_revision = rev;
    } else if (v.lease != 0 && v.lease != lease) {
      leases_[v.lease].keys.erase(key);
    }
    if (lease != 0) leases_[lease].keys.insert(key);
    v.value = value;
    v.mod_revision = rev;
    ++v.version;
    v.lease = lease;
    a.write.ok = true;
    a.write.revision = rev;
    a.changes.push_back({rev, false, std::move(key), std::move(value)});
  }

  void erase(CoreApplied& a, const std::string& key) {
    a.write.revision = revision_;
    const auto it = kv_.find(key);
    if (it == kv_.end()) return;
    a.write.previous = it->second;
    remove(a, it);
  }

  void remove(CoreApplied& a, std::map<std::string, CoreKeyValue, std::less<>>::iterator it) {
    if (it->second.lease != 0) {
      if (auto l = leases_.find(it->second.lease); l != leases_.end())
        l->second.keys.erase(it->first);
    }
    const std::uint64_t rev = ++revision_;
    a.changes.push_back({rev, true, it->first, {}});
    kv_.erase(it);
    a.write.ok = true;
    a.write.revision = rev;
  }

  void end_lease(CoreApplied& a, std::uint64_t id) {
    a.write.revision = revision_;
    const auto l = leases_.find(id);
    if (l == leases_.end()) return;
    const std::set<std::string, std::less<>> keys = std::move(l->second.keys);
    leases_.erase(l);
    for (const std::string& k : keys) {
      const auto it = kv_.find(k);
      it->second.lease = 0;  // already detached
      remove(a, it);
    }
    a.write.ok = true;
    a.write.revision = revision_;
    a.ended = id;
  }

  std::map<std::string, CoreKeyValue, std::less<>> kv_;
  std::map<std::uint64_t, Lease> leases_;
  std::uint64_t revision_ = 0;
};

// Returns a command: the version byte, the op byte, then what `body` writes.
template <class Body>
Buffer core_command(CoreOp op, Body body) {
  Buffer b;
  wire::Writer w(b);
  w.u8(core_command_version);
  w.u8(static_cast<std::uint8_t>(op));
  body(w);
  return b;
}

inline Buffer encode_core_put(std::string_view key, std::span<const std::byte> value,
                              const CorePut& c) {
  return core_command(CoreOp::put, [&](wire::Writer& w) {
    w.string(key);
    w.bytes(value);
    w.u8(static_cast<std::uint8_t>((c.if_mod_revision ? 1 : 0) | (c.if_absent ? 2 : 0) |
                                   (c.if_present ? 4 : 0)));
    if (c.if_mod_revision) w.u64(*c.if_mod_revision);
    w.u64(c.lease);
  });
}

inline Buffer encode_core_key(CoreOp op, std::string_view key) {
  return core_command(op, [&](wire::Writer& w) { w.string(key); });
}

inline Buffer encode_core_increment(std::string_view key, std::int64_t delta) {
  return core_command(CoreOp::increment, [&](wire::Writer& w) {
    w.string(key);
    w.i64(delta);
  });
}

inline Buffer encode_core_number(CoreOp op, std::uint64_t n) {
  return core_command(op, [&](wire::Writer& w) { w.u64(n); });
}

}  // namespace detail

// ConsistentCore — a linearizable key-value core with revisions, compare-and-set and leases.
template <SegmentStorage Storage, Transport<ReplicatedLogMessage> T, PhysicalClock Clock,
          class Rules = ConsistentCoreRules>
class ConsistentCore {
  // The adapter the ReplicatedLog applies to (its StateMachine).
  struct Machine {
    ConsistentCore* core;
    void apply(std::uint64_t index, std::span<const std::byte> bytes) {
      core->applied(index, bytes);
    }
    std::vector<std::byte> snapshot() const { return core->state_.snapshot(); }
    void restore(std::span<const std::byte> bytes) { core->restored(bytes); }
  };

 public:
  template <class V>
  using Callback = detail::MoveOnlyFunction<void(Outcome<V>)>;
  using time_point = typename Clock::time_point;
  using Log = ReplicatedLog<Storage, T, Clock, Machine>;

  // Opens the server's log from `storage` (restoring the snapshot and the committed entries
  // after it as the mark is learnt) and starts as a follower. Throws std::invalid_argument
  // naming a bad option (the log's and the reads' too), what the log's constructor throws.
  ConsistentCore(Storage storage, T transport, Clock clock, ConsistentCoreOptions options)
      : options_(validated(std::move(options))),
        clock_(clock),
        watch_(options_.watch),
        machine_{this},
        waiting_(options_.write_timeout, clock),
        log_(std::move(storage), std::move(transport), clock, machine_, options_.log),
        read_index_(log_, clock, options_.reads) {
    if (options_.log.check_quorum) lease_read_.emplace(log_, clock, options_.reads);
    publish();  // a snapshot restored: the watches' history starts at its revision
  }
  ConsistentCore(const ConsistentCore&) = delete;  // the log holds the adapter, which holds this
  ConsistentCore& operator=(const ConsistentCore&) = delete;

  // ---- writes: replicated, answered once applied on this server ------------------------

  // Sets `key` to `value` when `condition` holds as the command applies (retains nothing but
  // `done`). `done` gets the CoreWrite (ok = false: the condition failed or the lease is
  // unknown), or an Errc (see the header). Allocates. Throws std::invalid_argument for an
  // empty key or NX with XX.
  void put(std::string key, std::vector<std::byte> value, CorePut condition,
           Callback<CoreWrite> done) {
    check_key("put", key);
    if (condition.if_absent && condition.if_present) {
      throw std::invalid_argument(
          "ConsistentCore::put: condition.if_absent and condition.if_present must not both be "
          "set");
    }
    propose_write(detail::encode_core_put(key, value, condition), std::move(done));
  }

  // Removes `key`; ok = false when it is absent. Throws std::invalid_argument for an empty key.
  void erase(std::string key, Callback<CoreWrite> done) {
    check_key("erase", key);
    propose_write(detail::encode_core_key(detail::CoreOp::erase, key), std::move(done));
  }

  // Adds `delta` to the decimal integer in `key` (an absent key counts as 0; the key keeps its
  // lease); `number` is the new value. ok = false when the value is not a decimal int64 or
  // the sum overflows. Throws std::invalid_argument for an empty key.
  void increment(std::string key, std::int64_t delta, Callback<CoreWrite> done) {
    check_key("increment", key);
    propose_write(detail::encode_core_increment(key, delta), std::move(done));
  }

  // Grants a lease of `ttl`; `done` gets it (its id is the grant's log index). Throws
  // std::invalid_argument when ttl is outside [options.min_ttl, options.max_ttl].
  void grant(std::chrono::milliseconds ttl, Callback<CoreLease> done) {
    if (ttl < options_.min_ttl || ttl > options_.max_ttl) {
      throw std::invalid_argument(
          "ConsistentCore::grant: ttl must be within [options.min_ttl, "
          "options.max_ttl] = [" +
          std::to_string(options_.min_ttl.count()) + ", " +
          std::to_string(options_.max_ttl.count()) + "] ms, got " + std::to_string(ttl.count()) +
          " ms");
    }
    propose(
        detail::encode_core_number(detail::CoreOp::grant, static_cast<std::uint64_t>(ttl.count())),
        [done = std::move(done)](Outcome<Applied> a) mutable {
          if (!a) return done(a.error());
          done(a->lease);
        });
  }

  // Restarts the deadline of `lease` on the leader at now + ttl, once a heartbeat round
  // confirmed this server still leads (§6.4). `done` gets the lease, or Errc::not_leader,
  // Errc::session_expired (unknown, revoked or expiring lease), Errc::timeout or Errc::full
  // (ReadIndex's). Sends the round's messages. Throws std::invalid_argument for lease 0.
  void keep_alive(std::uint64_t lease, Callback<CoreLease> done) {
    check_lease("keep_alive", lease);
    settle();
    if (!log_.is_leader()) return done(Errc::not_leader);
    if (!live(lease)) return done(Errc::session_expired);
    const std::uint64_t term = log_.term();
    read_index_.read(
        [this, lease, term, done = std::move(done)](Outcome<std::uint64_t> at) mutable {
          if (!at) return done(at.error());
          if (!log_.is_leader() || log_.term() != term) return done(Errc::not_leader);
          if (!live(lease)) return done(Errc::session_expired);
          const auto ttl = state_.leases().at(lease).ttl;
          deadlines_[lease] = clock_.now() + ttl;
          done(CoreLease{lease, ttl});
        });
    settle();
  }

  // Ends `lease` and removes its keys (ok = false: unknown lease). Throws
  // std::invalid_argument for lease 0.
  void revoke(std::uint64_t lease, Callback<CoreWrite> done) {
    check_lease("revoke", lease);
    propose_write(detail::encode_core_number(detail::CoreOp::revoke, lease), std::move(done));
  }

  // ---- reads --------------------------------------------------------------------------

  // Reads `key` by `mode`; `done` gets the key (nullopt: absent) or an Errc (not_leader,
  // full, timeout). A local read answers at once. Throws std::invalid_argument for an empty
  // key, or mode lease when options.log.check_quorum is off.
  void get(std::string key, CoreRead mode, Callback<std::optional<CoreKeyValue>> done) {
    check_key("get", key);
    read(mode, "get",
         [this, key = std::move(key), done = std::move(done)](Outcome<std::uint64_t> at) mutable {
           if (!at) return done(at.error());
           done(local_get(key));
         });
  }

  // Reads the keys that start with `prefix` ("" : every key), in key order, at most `limit`
  // of them (0: no limit). As get otherwise.
  void range(std::string prefix, std::size_t limit, CoreRead mode,
             Callback<std::vector<CoreKeyValue>> done) {
    read(mode, "range",
         [this, prefix = std::move(prefix), limit,
          done = std::move(done)](Outcome<std::uint64_t> at) mutable {
           if (!at) return done(at.error());
           done(local_range(prefix, limit));
         });
  }

  // ---- watches ------------------------------------------------------------------------

  // Returns the changes as THIS server applies them (the same revisions on every server),
  // published from receive, tick and the calls, never from inside the log. Restoring a
  // snapshot resets it at the snapshot's revision (a watch from before: Errc::compacted).
  StateWatch& watches() noexcept { return watch_; }
  const StateWatch& watches() const noexcept { return watch_; }

  // ---- inputs -------------------------------------------------------------------------

  // Handles one message of the log; completes what it made ready. Throws what the log throws
  // (and pods::CorruptionError for a command that does not decode).
  void receive(NodeId from, ReplicatedLogMessage m) {
    log_.receive(from, std::move(m));
    settle();
  }

  // Fires the log's timers, proposes the expiry of leases past their deadline (leader),
  // expires waiting writes and reads. Throws what the log throws.
  void tick() {
    log_.tick();
    settle();
  }

  // Returns when tick() next has work: the log's next deadline, or a lease's deadline on the
  // leader when sooner (not during a leadership transfer, which refuses the expiry entry).
  time_point next_deadline() const {
    time_point next = log_.next_deadline();
    if (log_.is_leader() && !log_.transfer_target()) {  // (a transfer refuses the expiry)
      for (const auto& [id, at] : deadlines_) {
        if (!expiring_.contains(id)) next = std::min(next, at);
      }
    }
    return next;
  }

  // ---- accessors ----------------------------------------------------------------------

  bool is_leader() const noexcept { return log_.is_leader(); }
  // Returns the leader this server knows (0: none): the hint after Errc::not_leader.
  NodeId leader() const noexcept { return log_.leader().value_or(0); }
  std::uint64_t term() const noexcept { return log_.term(); }
  // Returns the high-water mark.
  std::uint64_t commit_index() const noexcept { return log_.commit_index(); }
  std::uint64_t applied_index() const noexcept { return log_.applied_index(); }
  // Returns the revision of the last change applied here (0: none).
  std::uint64_t revision() const noexcept { return state_.revision(); }
  // Returns `key` as this server's state holds it now (nullopt: absent), with no read path and
  // no side effect: possibly stale. Allocates (the copy).
  std::optional<CoreKeyValue> local_get(std::string_view key) const {
    const CoreKeyValue* v = state_.find(key);
    return v ? std::optional<CoreKeyValue>(*v) : std::nullopt;
  }
  // Returns the keys with `prefix` in this server's state now, in key order, at most `limit`
  // (0: no limit), as local_get. Allocates.
  std::vector<CoreKeyValue> local_range(std::string_view prefix, std::size_t limit = 0) const {
    std::vector<CoreKeyValue> out;
    for (auto it = state_.keys().lower_bound(prefix);
         it != state_.keys().end() && it->first.starts_with(prefix) &&
         (limit == 0 || out.size() < limit);
         ++it) {
      out.push_back(it->second);
    }
    return out;
  }
  // Returns the lease `id` as this server's state holds it (nullopt: none).
  std::optional<CoreLease> lease(std::uint64_t id) const {
    const auto it = state_.leases().find(id);
    if (it == state_.leases().end()) return std::nullopt;
    return CoreLease{id, it->second.ttl};
  }
  // Returns how many leases the state holds.
  std::size_t lease_count() const noexcept { return state_.leases().size(); }
  // Returns the deadline of lease `id` on this leader's clock (nullopt: not leading, unknown
  // lease).
  std::optional<time_point> lease_deadline(std::uint64_t id) const {
    if (!log_.is_leader() || lease_term_ != log_.term()) return std::nullopt;
    const auto it = deadlines_.find(id);
    if (it == deadlines_.end()) return std::nullopt;
    return it->second;
  }
  // Returns the encoded state (keys, leases, revision: the snapshot's bytes). Allocates.
  std::vector<std::byte> state() const { return state_.snapshot(); }
  // Returns how many writes wait for their entry.
  std::size_t pending_writes() const noexcept { return pending_.size(); }
  // Returns the ReplicatedLog, for membership, snapshots and metrics.
  Log& log() noexcept { return log_; }
  const Log& log() const noexcept { return log_; }
  const ConsistentCoreOptions& options() const noexcept { return options_; }

 private:
  struct Applied {
    CoreWrite write;
    CoreLease lease;
  };

  static ConsistentCoreOptions validated(ConsistentCoreOptions o) {
    auto fail = [](const char* rule) {
      throw std::invalid_argument(std::string("ConsistentCore: options.") + rule);
    };
    if (o.min_ttl.count() <= 0) fail("min_ttl must be positive");
    if (o.max_ttl < o.min_ttl) fail("max_ttl must not be less than min_ttl");
    if (o.write_timeout.count() <= 0) fail("write_timeout must be positive");
    if (o.max_pending_writes == 0) fail("max_pending_writes must be at least 1");
    return o;
  }

  static void check_key(const char* who, const std::string& key) {
    if (key.empty()) {
      throw std::invalid_argument(std::string("ConsistentCore::") + who +
                                  ": key must not be empty");
    }
  }
  static void check_lease(const char* who, std::uint64_t lease) {
    if (lease == 0) {
      throw std::invalid_argument(std::string("ConsistentCore::") + who + ": lease must not be 0");
    }
  }

  bool live(std::uint64_t lease) const {
    return state_.leases().contains(lease) && !expiring_.contains(lease);
  }

  template <class F>
  void read(CoreRead mode, const char* who, F f) {
    switch (mode) {
      case CoreRead::linearizable:
        read_index_.read(std::move(f));
        break;
      case CoreRead::lease:
        if (!lease_read_) {
          throw std::invalid_argument(std::string("ConsistentCore::") + who +
                                      ": mode lease needs options.log.check_quorum");
        }
        lease_read_->read(std::move(f));
        break;
      case CoreRead::local:
        f(Outcome<std::uint64_t>(log_.applied_index()));
        break;
    }
    settle();
  }

  void propose_write(Buffer command, Callback<CoreWrite> done) {
    propose(std::move(command), [done = std::move(done)](Outcome<Applied> a) mutable {
      if (!a) return done(a.error());
      done(std::move(a->write));
    });
  }

  // Appends `command` and waits for its entry to apply here.
  void propose(Buffer command, Callback<Applied> done) {
    settle();
    if (pending_.size() >= options_.max_pending_writes) return done(Errc::full);
    const Outcome<std::uint64_t> index = log_.propose(command);
    if (!index) return done(index.error());
    const std::uint64_t i = *index;
    pending_[i] = log_.term();
    waiting_.add(i, [this, i, done = std::move(done)](Outcome<Applied> a) mutable {
      pending_.erase(i);
      done(std::move(a));
    });
  }

  // Called by the log for each committed command, in index order.
  void applied(std::uint64_t index, std::span<const std::byte> bytes) {
    detail::CoreApplied a = state_.apply(index, bytes);
    for (detail::CoreChange& c : a.changes) {
      events_.push_back(
          {false, WatchEvent{c.revision, c.erase ? WatchEventKind::erase : WatchEventKind::put,
                             std::move(c.key), std::move(c.value)}});
    }
    if (a.granted) deadlines_[a.granted->id] = clock_.now() + a.granted->ttl;
    if (a.ended) {
      deadlines_.erase(*a.ended);
      expiring_.erase(*a.ended);
    }
    const auto p = pending_.find(index);
    if (p == pending_.end()) return;
    // §5.3: the entry at this index is ours only when its term is the one we proposed in.
    if (log_.term_at(index) == p->second) {
      ready_.emplace_back(index, Applied{std::move(a.write), a.lease});
    } else {
      ready_.emplace_back(index, Errc::not_leader);
    }
  }

  // Called by the log when it restores a snapshot (at start, or an InstallSnapshot).
  void restored(std::span<const std::byte> bytes) {
    state_.restore(bytes);
    events_.push_back({true, WatchEvent{state_.revision(), WatchEventKind::put, {}, {}}});
    deadlines_.clear();
    expiring_.clear();
    const time_point now = clock_.now();
    for (const auto& [id, l] : state_.leases())
      deadlines_[id] = now + l.ttl;
    lease_term_ = 0;
  }

  // Runs what the last call to the log made ready: write completions, cancellations on a
  // step-down, the leases' deadlines and expiries, the reads. Not re-entered from callbacks.
  void settle() {
    if (settling_) return;
    settling_ = true;
    struct Reset {
      bool& flag;
      ~Reset() { flag = false; }
    } reset{settling_};
    publish();
    // Writes whose entry applied: their outcome is known.
    std::vector<std::pair<std::uint64_t, Outcome<Applied>>> ready;
    ready.swap(ready_);
    for (auto& [index, a] : ready) {
      if (a) {
        waiting_.complete(index, std::move(*a));
      } else {
        waiting_.fail(index, a.error());
      }
    }
    // A server that stopped leading, or leads a later term, cannot tell whether its earlier
    // entries will commit: the outcome is unknown.
    std::vector<std::uint64_t> gone;
    for (const auto& [index, t] : pending_) {
      if (!log_.is_leader() || t != log_.term()) gone.push_back(index);
    }
    for (std::uint64_t index : gone)
      waiting_.fail(index, Errc::cancelled);
    waiting_.expire();
    leases();
    read_index_.poll();
    if (lease_read_) lease_read_->poll();
  }

  // Hands the changes applied (and the restores) to the watches, in order.
  void publish() {
    std::vector<std::pair<bool, WatchEvent>> events;
    events.swap(events_);
    for (auto& [restore, e] : events) {
      if (restore) {
        watch_.reset(e.revision);
      } else {
        watch_.publish(std::move(e));
      }
    }
  }

  // On the leader: restarts every deadline when its term begins; proposes the expiry of each
  // lease past its deadline, once per term.
  void leases() {
    if (!log_.is_leader()) {
      lease_term_ = 0;
      expiring_.clear();
      return;
    }
    const time_point now = clock_.now();
    if (lease_term_ != log_.term()) {
      lease_term_ = log_.term();
      expiring_.clear();
      if constexpr (Rules::reset_lease_deadlines) {
        for (const auto& [id, l] : state_.leases())
          deadlines_[id] = now + l.ttl;
      }
    }
    for (const auto& [id, at] : deadlines_) {
      if (at > now || expiring_.contains(id) || !state_.leases().contains(id)) continue;
      if (log_.propose(detail::encode_core_number(detail::CoreOp::expire, id))) {
        expiring_.insert(id);
      }
    }
  }

  ConsistentCoreOptions options_;
  Clock clock_;
  detail::CoreState state_;
  std::map<std::uint64_t, time_point> deadlines_;   // lease -> deadline on this server's clock
  std::set<std::uint64_t> expiring_;                // leases whose expiry this leader proposed
  std::uint64_t lease_term_ = 0;                    // the term the deadlines were reset in
  std::map<std::uint64_t, std::uint64_t> pending_;  // a waiting write's index -> its term
  std::vector<std::pair<std::uint64_t, Outcome<Applied>>> ready_;
  std::vector<std::pair<bool, WatchEvent>> events_;  // to publish (true: a restore's reset)
  bool settling_ = false;
  StateWatch watch_;
  Machine machine_;
  RequestWaitingList<std::uint64_t, Applied, Clock> waiting_;
  Log log_;
  ReadIndex<Log, Clock, Rules> read_index_;
  std::optional<LeaseRead<Log, Clock>> lease_read_;
};

}  // namespace pods

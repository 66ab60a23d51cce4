// Simulator runs of pods/replication/consistent_core.hpp: 3 and 5 servers on pods::sim::Cluster
// under a Nemesis, clients doing put, get, compare-and-set, increment and erase on a few keys
// (reads through ReadIndex, and LeaseRead where clocks are not stepped), lease holders that
// keep their lease alive for a while and then stop, and at every step:
//   - replicas' states are equal at equal applied index (a hash of the encoded state);
//   - a server's revision never goes back while it runs;
//   - on every server the watch sees each applied change once, in revision order, the same
//     change under each revision on every server, and replaying it gives the server's state;
//   - without clock steps, no lease expires before ttl after its holder's last keep_alive
//     that was answered ok (counted from when the holder sent it).
// At the end: every history is checked with check_linearizable against a model written here
// (one register with its mod_revision per key, partitioned by key; the outcomes the model
// cannot decide are sets of states), and every lease whose holder stopped is gone, with its
// key, from every server within ttl + a bound after the heal. Two test-only rule switches must
// be caught: a new leader that does not restart the leases' deadlines, and ReadIndex without
// its heartbeat round. Seeds: PODS_SEEDS (or --seeds N) runs more than the CI default.
#include "raft_sim.hpp"

#include <pods/replication/consistent_core.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace {

using namespace std::chrono_literals;
using pods::NodeId;
using Msg = pods::ReplicatedLogMessage;
using Net = pods::sim::Network<Msg>;
using Time = pods::sim::Simulation::time_point;

// ---- the model: one register with its mod_revision per key -----------------------------

enum class Op : std::uint8_t { get, put, cas, increment, erase };

struct Input {
  Op op = Op::get;
  std::string key;
  std::string value;           // put, cas
  std::int64_t delta = 0;      // increment
  std::uint64_t expected = 0;  // cas: the mod_revision expected (0: absent)
};

struct Output {
  bool ok = false;             // writes: applied; get: the key is present
  std::string value;           // get
  std::uint64_t revision = 0;  // get: mod_revision; write ok: the change's revision
  std::int64_t number = 0;     // increment
};

// One possible state of a key. `revision` is the revision of its last change (known unless
// a write whose answer is unknown may have made it).
struct Reg {
  bool present = false;
  std::string value;
  std::uint64_t revision = 0;
  bool known = true;
  auto operator<=>(const Reg&) const = default;
};

std::optional<std::int64_t> integer(const Reg& r) {
  if (!r.present) return 0;
  std::int64_t n = 0;
  const char* first = r.value.data();
  const char* last = first + r.value.size();
  const auto [end, ec] = std::from_chars(first, last, n);
  if (r.value.empty() || ec != std::errc{} || end != last) return std::nullopt;
  return n;
}

struct CoreModel {
  using Input = ::Input;
  using Output = ::Output;
  // Per key, the set of states the history so far allows (sorted, no duplicate).
  struct State {
    std::vector<std::pair<std::string, std::vector<Reg>>> keys;
    friend bool operator==(const State&, const State&) = default;
  };

  State init() const { return {}; }

  // The states `r` may lead to under `in` with output `out` (none: the output is illegal).
  static void successors(const Reg& r, const Input& in, const std::optional<Output>& out,
                         std::vector<Reg>& next) {
    // A known change must come after the key's last known one.
    const auto later = [&](std::uint64_t rev) { return !r.known || rev > r.revision; };
    switch (in.op) {
      case Op::get:
        if (!out) return next.push_back(r);
        if (out->ok != r.present || (r.present && out->value != r.value)) return;
        if (r.present && r.known && out->revision != r.revision) return;
        if (!r.present) return next.push_back(r);
        return next.push_back({true, r.value, out->revision, true});
      case Op::put:
        if (!out) return next.push_back({true, in.value, 0, false});
        if (!out->ok || !later(out->revision)) return;
        return next.push_back({true, in.value, out->revision, true});
      case Op::erase:
        if (!out) return next.push_back(r.present ? Reg{false, "", 0, false} : r);
        if (out->ok != r.present) return;
        if (!r.present) return next.push_back(r);
        if (!later(out->revision)) return;
        return next.push_back({false, "", out->revision, true});
      case Op::cas: {
        const bool match =
            in.expected == 0 ? !r.present : r.present && r.known && r.revision == in.expected;
        const bool maybe = in.expected != 0 && r.present && !r.known;
        if (!out) {
          if (match || maybe) next.push_back({true, in.value, 0, false});
          if (!match) next.push_back(r);
          return;
        }
        if (out->ok) {
          if ((match || maybe) && later(out->revision))
            next.push_back({true, in.value, out->revision, true});
          return;
        }
        if (!match) next.push_back(r);
        return;
      }
      case Op::increment: {
        const auto n = integer(r);
        std::int64_t sum = 0;
        const bool fits = n && !__builtin_add_overflow(*n, in.delta, &sum);
        if (!out) return next.push_back(fits ? Reg{true, std::to_string(sum), 0, false} : r);
        if (out->ok != fits) return;
        if (!fits) return next.push_back(r);
        if (out->number != sum || !later(out->revision)) return;
        return next.push_back({true, std::to_string(sum), out->revision, true});
      }
    }
  }

  std::optional<State> step(const State& s, const Input& in,
                            const std::optional<Output>& out) const {
    State n = s;
    auto it = std::find_if(n.keys.begin(), n.keys.end(),
                           [&](const auto& k) { return k.first == in.key; });
    if (it == n.keys.end()) {
      n.keys.push_back({in.key, {Reg{}}});
      std::sort(n.keys.begin(), n.keys.end());
      it = std::find_if(n.keys.begin(), n.keys.end(),
                        [&](const auto& k) { return k.first == in.key; });
    }
    std::vector<Reg> next;
    for (const Reg& r : it->second)
      successors(r, in, out, next);
    if (next.empty()) return std::nullopt;
    std::sort(next.begin(), next.end());
    next.erase(std::unique(next.begin(), next.end()), next.end());
    it->second = std::move(next);
    return n;
  }

  // One sub-history per key.
  std::vector<std::vector<std::size_t>> partition(
      std::span<const pods::sim::Operation<Input, Output>> history) const {
    std::map<std::string, std::size_t> index;
    std::vector<std::vector<std::size_t>> parts;
    for (std::size_t i = 0; i < history.size(); ++i) {
      auto [it, fresh] = index.try_emplace(history[i].input.key, parts.size());
      if (fresh) parts.emplace_back();
      parts[it->second].push_back(i);
    }
    return parts;
  }
};
static_assert(pods::sim::Model<CoreModel>);

// ---- the servers -------------------------------------------------------------------------

// A test-only rule policy: a new leader keeps the deadlines it had as a follower (the grant's
// apply time + ttl) instead of restarting them.
struct NoLeaseReset : pods::ConsistentCoreRules {
  static constexpr bool reset_lease_deadlines = false;
};

// A test-only rule policy: ReadIndex serves a read on the last round confirmed.
struct SkipRound : pods::ConsistentCoreRules {
  static constexpr bool confirm_round = false;
};

struct Scenario {
  std::size_t nodes = 3;
  bool clock_steps = true;  // off: lease reads and the early-expiry check are on
  bool check_quorum = true;
  bool leases = true;
  std::chrono::nanoseconds duration = 10s, quiet = 4s;
  std::chrono::nanoseconds lease_bound = 3s;  // from max(heal, last ok) + ttl to gone
};

template <class Rules>
struct Node {
  using Core =
      pods::ConsistentCore<pods::MemoryStorage, Net::Endpoint, pods::sim::NodeClock, Rules>;
  Core core;
  Node(const pods::sim::NodeContext<Msg>& ctx, std::vector<NodeId> voters, const Scenario& s)
      : core(ctx.storage, ctx.endpoint, ctx.clock, options(ctx, std::move(voters), s)) {}
  void receive(NodeId from, Msg m) { core.receive(from, std::move(m)); }
  void tick() { core.tick(); }
  auto next_deadline() const { return core.next_deadline(); }

  static pods::ConsistentCoreOptions options(const pods::sim::NodeContext<Msg>& ctx,
                                             std::vector<NodeId> voters, const Scenario& s) {
    pods::ConsistentCoreOptions o;
    o.log = {.self = ctx.id,
             .voters = std::move(voters),
             .pre_vote = s.check_quorum,
             .check_quorum = s.check_quorum,
             .seed = ctx.random.fork(1).next(),
             .snapshot_every = 40};
    o.reads = {.timeout = 500ms, .max_drift = 50ms};
    o.write_timeout = 1s;
    return o;
  }
};

struct Totals {
  std::uint64_t operations = 0, ok = 0, reads = 0, crashes = 0, pauses = 0, elections = 0;
  std::uint64_t leases = 0, leases_expired = 0, keep_alives = 0, events = 0, snapshots = 0;
  void add(const Totals& t) {
    operations += t.operations;
    ok += t.ok;
    reads += t.reads;
    crashes += t.crashes;
    pauses += t.pauses;
    elections += t.elections;
    leases += t.leases;
    leases_expired += t.leases_expired;
    keep_alives += t.keep_alives;
    events += t.events;
    snapshots += t.snapshots;
  }
};

std::uint64_t fnv(const std::vector<std::byte>& b) {
  std::uint64_t h = 1469598103934665603ULL;
  for (std::byte c : b)
    h = (h ^ static_cast<std::uint8_t>(c)) * 1099511628211ULL;
  return h;
}

std::string text(const std::vector<std::byte>& b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

std::vector<std::byte> bytes(const std::string& s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

// One seeded run; returns the violation ("" when none).
template <class Rules>
std::string run(std::uint64_t seed, const Scenario& s, Totals& totals) {
  using N = Node<Rules>;
  using SimCluster = pods::sim::Cluster<N, Msg>;
  pods::sim::Simulation sim(seed);
  Net net(sim, {.loss = 0.01, .duplicate = 0.01, .min_delay = 1ms, .max_delay = 10ms});
  std::vector<NodeId> voters;
  for (NodeId id = 1; id <= s.nodes; ++id)
    voters.push_back(id);
  SimCluster cluster(net, [&](const typename SimCluster::Context& ctx) {
    return std::make_unique<N>(ctx, voters, s);
  });
  for (NodeId id : voters)
    cluster.add(id);
  pods::sim::Nemesis nemesis(cluster, {.duration = s.duration,
                                       .quiet = s.quiet,
                                       .min_gap = 50ms,
                                       .max_gap = 400ms,
                                       .max_fault = 1000ms,
                                       .clock_steps = s.clock_steps});
  const Time heal = nemesis.heal_at();
  const Time end = nemesis.end_at();
  std::string violation;
  auto fail = [&](const std::string& what) {
    if (!violation.empty()) return;
    std::ostringstream o;
    o << what << " at " << sim.now().time_since_epoch().count() / 1000000 << " ms";
    violation = o.str();
  };
  Totals t;
  pods::Random draws(seed * 0x9e3779b97f4a7c15ULL + 5);
  auto usable = [&](NodeId id) -> N* {
    return cluster.is_up(id) && !cluster.is_paused(id) ? cluster.node(id) : nullptr;
  };

  // ---- clients on the linearizable keys ----
  using History = pods::sim::History<Input, Output>;
  History history([&sim] { return sim.now().time_since_epoch().count(); });
  struct Client {
    std::uint64_t process = 0;
    std::uint64_t op = 0;  // the open operation's number (0: none)
    Time give_up{};
    NodeId target = 1;
    std::map<std::string, std::uint64_t> seen;  // key -> the last mod_revision it saw
  };
  std::map<std::uint64_t, History::Id> open;  // operation number -> history id
  std::vector<Client> clients(3);
  std::uint64_t next_process = 1, next_op = 1;
  for (Client& c : clients)
    c.process = next_process++;
  const std::vector<std::string> keys{"a", "b", "c"};

  auto finish = [&](std::uint64_t op, std::optional<Output> out, bool definite_failure) {
    const auto it = open.find(op);
    if (it == open.end()) return;  // given up already
    if (out) {
      history.ok(it->second, *out);
    } else if (definite_failure) {
      history.fail(it->second);
    } else {
      history.unknown(it->second);
    }
    open.erase(it);
  };
  // The outcomes whose write did not take place: the server refused it.
  auto refused = [](pods::Errc e) { return e == pods::Errc::not_leader || e == pods::Errc::full; };

  std::function<void(std::size_t)> client_step = [&](std::size_t k) {
    Client& c = clients[k];
    const Time now = sim.now();
    sim.schedule(15ms, [&client_step, k] { client_step(k); });
    if (c.op != 0 && open.contains(c.op)) {
      if (now < c.give_up) return;
      finish(c.op, std::nullopt, false);  // no answer: unknown; a new process goes on
      c.process = next_process++;
      c.seen.clear();
      c.target = voters[draws.below(voters.size())];  // and reconnects anywhere
    }
    c.op = 0;
    if (now + 1s >= end) return;
    if (draws.chance(0.1)) c.target = voters[draws.below(voters.size())];
    N* n = usable(c.target);
    if (!n) {
      c.target = voters[draws.below(voters.size())];
      return;
    }
    if (!n->core.is_leader()) {
      const NodeId hint = n->core.leader();
      c.target = hint != 0 && hint != c.target ? hint : voters[draws.below(voters.size())];
      return;
    }
    Input in;
    in.key = keys[draws.below(keys.size())];
    const std::uint64_t roll = draws.below(100);
    const std::uint64_t op = next_op++;
    in.op = roll < 40   ? Op::get
            : roll < 60 ? Op::put
            : roll < 75 ? Op::cas
            : roll < 90 ? Op::increment
                        : Op::erase;
    if (in.op == Op::put || in.op == Op::cas) in.value = std::to_string(op * 100);
    if (in.op == Op::increment) in.delta = static_cast<std::int64_t>(draws.below(5)) - 1;
    if (in.op == Op::cas) {
      const auto it = c.seen.find(in.key);
      in.expected = it == c.seen.end() ? 0 : it->second;
      if (draws.chance(0.2)) in.expected = draws.below(3);
    }
    c.op = op;
    c.give_up = now + 1s;
    open[op] = history.invoke(c.process, in);
    ++t.operations;
    const NodeId at = c.target;
    const std::string key = in.key;
    auto wrote = [&, op, k, key](pods::Outcome<pods::CoreWrite> w) {
      if (!w) return finish(op, std::nullopt, refused(w.error()));
      if (w->ok) clients[k].seen[key] = w->revision;
      finish(op, Output{w->ok, {}, w->ok ? w->revision : 0, w->number}, false);
    };
    switch (in.op) {
      case Op::get: {
        const auto mode = !s.clock_steps && s.check_quorum && draws.chance(0.5)
                              ? pods::CoreRead::lease
                              : pods::CoreRead::linearizable;
        n->core.get(in.key, mode,
                    [&, op, k, key](pods::Outcome<std::optional<pods::CoreKeyValue>> v) {
                      if (!v) return finish(op, std::nullopt, true);  // a read changes nothing
                      ++t.reads;
                      Output out;
                      if (*v) {
                        out = {true, text((*v)->value), (*v)->mod_revision, 0};
                        clients[k].seen[key] = (*v)->mod_revision;
                      }
                      finish(op, out, false);
                    });
        break;
      }
      case Op::put:
        n->core.put(in.key, bytes(in.value), {}, wrote);
        break;
      case Op::cas:
        n->core.put(in.key, bytes(in.value), {.if_mod_revision = in.expected}, wrote);
        break;
      case Op::increment:
        n->core.increment(in.key, in.delta, wrote);
        break;
      case Op::erase:
        n->core.erase(in.key, wrote);
        break;
    }
    if (cluster.is_up(at)) cluster.wake(at);
  };
  for (std::size_t k = 0; k < clients.size(); ++k)
    sim.schedule(std::chrono::milliseconds(3 + 5 * k), [&client_step, k] { client_step(k); });

  // ---- lease holders ----
  struct Held {
    std::uint64_t id = 0;
    std::chrono::milliseconds ttl{0};
    Time last_ok{};  // when the last request answered ok (grant or keep_alive) was sent
    Time stop{};     // from then on the holder no longer keeps it alive
    bool stopped = false;
    std::optional<Time> expired;  // when the first server applied its expiry
  };
  std::map<std::uint64_t, Held> held;          // by lease id
  std::map<std::string, std::uint64_t> owner;  // lease key -> lease id
  struct Holder {
    std::uint64_t lease = 0;
    bool busy = false;
    NodeId target = 1;
  };
  std::vector<Holder> holders(s.leases ? 2 : 0);
  std::function<void(std::size_t)> holder_step = [&](std::size_t k) {
    Holder& h = holders[k];
    const Time now = sim.now();
    sim.schedule(std::chrono::milliseconds(60 + 20 * k), [&holder_step, k] { holder_step(k); });
    if (h.busy) return;
    if (h.lease != 0) {
      Held& l = held.at(h.lease);
      if (now >= l.stop || l.expired) {
        l.stopped = true;
        h.lease = 0;  // let it go; take a new one
      }
    }
    if (now + 1500ms >= end) return;
    N* n = usable(h.target);
    if (!n || !n->core.is_leader()) {
      const NodeId hint = n ? n->core.leader() : 0;
      h.target = hint != 0 && hint != h.target ? hint : voters[draws.below(voters.size())];
      return;
    }
    const NodeId at = h.target;
    h.busy = true;
    if (h.lease == 0) {
      const auto ttl = std::chrono::milliseconds(200 + 100 * draws.below(4));
      const auto hold = std::chrono::milliseconds(300 + draws.below(3000));
      n->core.grant(ttl, [&, k, now, ttl, hold](pods::Outcome<pods::CoreLease> g) {
        Holder& me = holders[k];
        me.busy = false;
        if (!g) return;
        ++t.leases;
        me.lease = g->id;
        held[g->id] = Held{g->id, ttl, now, now + hold, false, std::nullopt};
        const std::string key = "L" + std::to_string(g->id);
        owner[key] = g->id;
        me.busy = true;
        if (N* p = usable(me.target)) {
          p->core.put(key, bytes("held"), {.lease = g->id},
                      [&, k](pods::Outcome<pods::CoreWrite>) { holders[k].busy = false; });
        } else {
          me.busy = false;
        }
      });
    } else {
      const std::uint64_t id = h.lease;
      n->core.keep_alive(id, [&, k, id, now](pods::Outcome<pods::CoreLease> r) {
        holders[k].busy = false;
        if (!r) return;
        ++t.keep_alives;
        Held& l = held.at(id);
        l.last_ok = std::max(l.last_ok, now);
        if (l.expired && *l.expired < now) fail("keep_alive answered ok after the lease expired");
      });
    }
    if (cluster.is_up(at)) cluster.wake(at);
  };
  for (std::size_t k = 0; k < holders.size(); ++k)
    sim.schedule(std::chrono::milliseconds(7 + 11 * k), [&holder_step, k] { holder_step(k); });

  // ---- the checks at every step ----
  struct Watcher {
    std::uint64_t incarnation = ~0ULL;
    pods::WatchId id = 0;
    std::uint64_t seen = 0;                     // the last revision taken
    std::map<std::string, std::string> shadow;  // the state replayed from the events
    std::uint64_t applied = ~0ULL;              // the applied index last hashed
    std::uint64_t revision = 0;                 // the revision last seen
  };
  std::map<NodeId, Watcher> watchers;
  std::map<std::uint64_t, pods::WatchEvent> changes;  // revision -> the change, as first seen
  std::map<std::uint64_t, std::uint64_t> hashes;      // applied index -> hash of the state
  std::map<std::uint64_t, NodeId> leaders;            // term -> leader
  auto local_state = [](const N& n) {
    std::map<std::string, std::string> m;
    for (const auto& kv : n.core.local_range(""))
      m[kv.key] = text(kv.value);
    return m;
  };
  auto open_watch = [&](N& n, Watcher& w) {
    auto id = n.core.watches().watch({.key = "", .prefix = true});
    if (!id) return fail("a watch could not be opened");
    w.id = *id;
    w.seen = n.core.revision();
    w.shadow = local_state(n);
  };
  auto check = [&](NodeId nid, N& n) {
    Watcher& w = watchers[nid];
    auto& core = n.core;
    if (w.incarnation != cluster.incarnation(nid)) {
      w = Watcher{};
      w.incarnation = cluster.incarnation(nid);
      open_watch(n, w);
    }
    // The revision never goes back while the server runs.
    if (core.revision() < w.revision) fail("the revision of " + std::to_string(nid) + " went back");
    w.revision = core.revision();
    // Equal states at equal applied index.
    if (core.applied_index() != w.applied) {
      w.applied = core.applied_index();
      const auto [it, fresh] = hashes.try_emplace(w.applied, fnv(core.state()));
      if (!fresh && it->second != fnv(core.state()))
        fail("server " + std::to_string(nid) + " has another state at applied index " +
             std::to_string(w.applied));
    }
    // The watch: every change once, in revision order, the same on every server.
    for (pods::WatchEvent& e : core.watches().take(w.id)) {
      ++t.events;
      if (e.revision != w.seen + 1)
        return fail("server " + std::to_string(nid) + "'s watch got revision " +
                    std::to_string(e.revision) + " after " + std::to_string(w.seen));
      w.seen = e.revision;
      const auto [c, fresh] = changes.try_emplace(e.revision, e);
      if (!fresh && !(c->second == e))
        return fail("two servers saw different changes at revision " + std::to_string(e.revision));
      if (e.kind == pods::WatchEventKind::put) {
        w.shadow[e.key] = text(e.value);
      } else {
        w.shadow.erase(e.key);
        if (fresh && owner.contains(e.key)) {  // a lease's key went: the lease ended
          Held& l = held.at(owner.at(e.key));
          if (!l.expired) {
            l.expired = sim.now();
            ++t.leases_expired;
            if (!s.clock_steps && sim.now() < l.last_ok + l.ttl - 5ms)
              fail("lease " + std::to_string(l.id) + " expired " +
                   std::to_string((l.last_ok + l.ttl - sim.now()).count() / 1000000) +
                   " ms before ttl after its last keep_alive");
          }
        }
      }
    }
    if (const auto why = core.watches().closed(w.id)) {
      if (*why != pods::Errc::compacted) return fail("a watch closed for another reason");
      ++t.snapshots;
      core.watches().cancel(w.id);
      open_watch(n, w);
      return;
    }
    if (w.seen != core.revision())
      fail("server " + std::to_string(nid) + "'s watch is behind its state");
    if (w.shadow != local_state(n))
      fail("server " + std::to_string(nid) + "'s watch events do not replay to its state");
    if (core.is_leader()) {
      const auto [l, fresh] = leaders.try_emplace(core.term(), nid);
      if (fresh) ++t.elections;
      if (l->second != nid) fail("two leaders in term " + std::to_string(core.term()));
    }
  };

  bool recovered = false;
  while (sim.now() < end && sim.step() && violation.empty()) {
    for (NodeId id : voters) {
      if (N* n = cluster.node(id)) {
        check(id, *n);
        if (sim.now() >= heal && n->core.is_leader() && n->core.log().committed_in_term())
          recovered = true;
      }
    }
  }
  for (const auto& e : nemesis.log()) {
    if (e.what.rfind("crash ", 0) == 0) ++t.crashes;
    if (e.what.rfind("pause ", 0) == 0) ++t.pauses;
  }
  if (violation.empty() && !recovered) fail("no leader committed in its term after the heal");
  // Leases whose holder stopped are gone everywhere within ttl + the bound after the heal.
  for (const auto& [id, l] : held) {
    if (!violation.empty()) break;
    const Time due = std::max(heal, l.last_ok) + l.ttl + s.lease_bound;
    if (!(l.stopped || sim.now() >= l.stop) || due >= sim.now()) continue;
    for (NodeId nid : voters) {
      N* n = cluster.node(nid);
      if (!n) continue;
      if (n->core.lease(id))
        fail("lease " + std::to_string(id) + " outlived its holder on " + std::to_string(nid));
      if (local_state(*n).contains("L" + std::to_string(id)))
        fail("the key of lease " + std::to_string(id) + " outlived it on " + std::to_string(nid));
    }
  }
  if (violation.empty()) {
    for (const auto& [op, id] : open)
      history.unknown(id);
    const auto ops = history.operations();
    for (const auto& o : ops)
      t.ok += o.output ? 1 : 0;
    const auto result = pods::sim::check_linearizable(CoreModel{}, std::span(ops), 20s);
    if (result.verdict == pods::sim::Verdict::illegal) fail("the history is not linearizable");
    if (result.verdict == pods::sim::Verdict::unknown) fail("the checker ran out of time");
  }
  totals.add(t);
  if (!violation.empty()) violation += "\n" + nemesis.describe();
  return violation;
}

template <class Rules = pods::ConsistentCoreRules>
void sweep(const Scenario& s, const char* name, std::uint64_t fallback) {
  const std::uint64_t n = raft_sim::seeds(fallback);
  Totals t;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    const std::string v = run<Rules>(seed, s, t);
    INFO(name << " seed " << seed << ": " << v);
    REQUIRE(v.empty());
  }
  CHECK(t.ok > 0);
  CHECK(t.events > 0);
  if (s.leases) CHECK(t.leases_expired > 0);
  WARN(name << ", " << s.nodes << " servers, " << n << " seeds: " << t.operations << " operations ("
            << t.ok << " answered, " << t.reads << " reads), " << t.crashes << " crashes, "
            << t.pauses << " pauses, " << t.elections << " elections, " << t.leases
            << " leases granted, " << t.leases_expired << " expired, " << t.keep_alives
            << " keep-alives, " << t.events << " watch events, " << t.snapshots
            << " watch resets by snapshot");
}

template <class Rules>
std::uint64_t first_violation(const Scenario& s, std::uint64_t n) {
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    Totals t;
    const std::string v = run<Rules>(seed, s, t);
    if (!v.empty()) {
      WARN("seed " << seed << ": " << v.substr(0, v.find('\n')));
      return seed;
    }
  }
  return 0;
}

}  // namespace

TEST_CASE(
    "ConsistentCore on 3 servers under every fault: linearizable, safe, watches exact, "
    "leases released",
    "[core][sim]") {
  sweep(Scenario{.nodes = 3}, "every fault", 3);
}

TEST_CASE("ConsistentCore on 3 servers, clocks not stepped: lease reads, no lease expires early",
          "[core][sim]") {
  sweep(Scenario{.nodes = 3, .clock_steps = false}, "no clock steps", 3);
}

TEST_CASE("ConsistentCore on 5 servers under every fault", "[core][sim]") {
  sweep(Scenario{.nodes = 5}, "every fault", 2);
}

TEST_CASE("ConsistentCore on 5 servers, clocks not stepped", "[core][sim]") {
  sweep(Scenario{.nodes = 5, .clock_steps = false}, "no clock steps", 2);
}

TEST_CASE("Mutation: a new leader that keeps the grant's deadlines expires a live lease early",
          "[core][sim]") {
  const std::uint64_t caught =
      first_violation<NoLeaseReset>(Scenario{.nodes = 3, .clock_steps = false}, 20);
  WARN("no deadline reset: first violation at seed " << caught);
  CHECK(caught != 0);
}

TEST_CASE("Mutation: ReadIndex without its heartbeat round is caught by check_linearizable",
          "[core][sim]") {
  const std::uint64_t caught =
      first_violation<SkipRound>(Scenario{.nodes = 3, .check_quorum = false, .leases = false}, 40);
  WARN("reads without the round: first violation at seed " << caught);
  CHECK(caught != 0);
}

TEST_CASE("Control: ReadIndex with its round passes the mutation's scenario", "[core][sim]") {
  sweep(Scenario{.nodes = 3, .check_quorum = false, .leases = false}, "no check-quorum", 3);
}

// Tests of pods/replication/consistent_core.hpp, driven message by message through Outbox and
// a ManualClock: a single server, then 3-server clusters delivered by hand. Revisions,
// compare-and-set, NX/XX, increment, ranges, erase; writes on a follower; pending writes when
// the leader steps down; ReadIndex reads waiting for their round (Raft §8, dissertation
// §6.4); leases (grant, keep_alive, revoke, expiry on every replica with the same revisions,
// a new leader restarting every deadline, a deposed leader's keep_alive); snapshots; the
// command and snapshot encodings' corruption errors; every std::invalid_argument message.
#include <pods/replication/consistent_core.hpp>

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/storage/memory_storage.hpp>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

using namespace std::chrono_literals;
using pods::CoreKeyValue;
using pods::CoreLease;
using pods::CorePut;
using pods::CoreRead;
using pods::CoreWrite;
using pods::Errc;
using pods::NodeId;
using Msg = pods::ReplicatedLogMessage;

namespace {

template <class Rules = pods::ConsistentCoreRules>
using Core = pods::ConsistentCore<pods::MemoryStorage, pods::Outbox<Msg>, pods::ManualClock, Rules>;

std::vector<std::byte> bytes(std::string_view s) {
  std::vector<std::byte> b;
  for (char c : s)
    b.push_back(static_cast<std::byte>(c));
  return b;
}

std::string text(const std::vector<std::byte>& b) {
  std::string s;
  for (std::byte c : b)
    s.push_back(static_cast<char>(c));
  return s;
}

// Records the outcome a callback receives (once).
template <class V>
struct Got {
  std::shared_ptr<std::optional<pods::Outcome<V>>> value =
      std::make_shared<std::optional<pods::Outcome<V>>>();
  auto cb() {
    return [v = value](pods::Outcome<V> o) {
      REQUIRE_FALSE(v->has_value());  // called once
      v->emplace(std::move(o));
    };
  }
  bool done() const { return value->has_value(); }
  const pods::Outcome<V>& operator*() const {
    REQUIRE(done());
    return **value;
  }
  const V& ok() const {
    REQUIRE(done());
    REQUIRE((*value)->has_value());
    return ***value;
  }
  Errc error() const {
    REQUIRE(done());
    REQUIRE_FALSE((*value)->has_value());
    return (*value)->error();
  }
};

pods::ConsistentCoreOptions options(NodeId self, std::vector<NodeId> voters) {
  pods::ConsistentCoreOptions o;
  o.log = {.self = self,
           .voters = std::move(voters),
           .heartbeat_interval = 50ms,
           .election_timeout_min = 300ms,
           .election_timeout_max = 600ms,
           .seed = self};
  o.reads = {.timeout = 1s, .max_drift = 50ms};
  return o;
}

// One server on its own: elected on the first tick after the election timeout.
template <class Rules = pods::ConsistentCoreRules>
struct Single {
  pods::ManualClock clock;
  pods::Outbox<Msg> out;
  pods::MemoryStorage storage;
  std::unique_ptr<Core<Rules>> core;
  explicit Single(pods::ConsistentCoreOptions o = options(1, {1})) {
    core = std::make_unique<Core<Rules>>(storage, out, clock, std::move(o));
    clock.advance(1s);
    core->tick();
    core->tick();
    REQUIRE(core->is_leader());
  }
  CoreWrite put(std::string key, std::string value, CorePut c = {}) {
    Got<CoreWrite> g;
    core->put(std::move(key), bytes(value), c, g.cb());
    core->tick();
    return g.ok();
  }
  CoreWrite erase(std::string key) {
    Got<CoreWrite> g;
    core->erase(std::move(key), g.cb());
    core->tick();
    return g.ok();
  }
  CoreWrite increment(std::string key, std::int64_t delta) {
    Got<CoreWrite> g;
    core->increment(std::move(key), delta, g.cb());
    core->tick();
    return g.ok();
  }
  std::optional<CoreKeyValue> get(std::string key, CoreRead mode = CoreRead::linearizable) {
    Got<std::optional<CoreKeyValue>> g;
    core->get(std::move(key), mode, g.cb());
    core->tick();
    return g.ok();
  }
  std::vector<CoreKeyValue> range(std::string prefix, std::size_t limit = 0) {
    Got<std::vector<CoreKeyValue>> g;
    core->range(std::move(prefix), limit, CoreRead::linearizable, g.cb());
    core->tick();
    return g.ok();
  }
  CoreLease grant(std::chrono::milliseconds ttl) {
    Got<CoreLease> g;
    core->grant(ttl, g.cb());
    core->tick();
    return g.ok();
  }
};

}  // namespace

TEST_CASE(
    "Each change takes the next revision; a key keeps its create revision and counts its "
    "versions",
    "[core]") {
  Single s;
  CHECK(s.core->revision() == 0);
  const CoreWrite a = s.put("a", "1");
  CHECK(a.ok);
  CHECK(a.revision == 1);
  CHECK_FALSE(a.previous);
  const CoreWrite b = s.put("b", "x");
  CHECK(b.revision == 2);
  const CoreWrite a2 = s.put("a", "2");
  CHECK(a2.revision == 3);
  REQUIRE(a2.previous);
  CHECK(text(a2.previous->value) == "1");
  CHECK(a2.previous->mod_revision == 1);
  const auto v = s.get("a");
  REQUIRE(v);
  CHECK(*v == CoreKeyValue{"a", bytes("2"), 1, 3, 2, 0});
  CHECK(s.core->revision() == 3);
  CHECK_FALSE(s.get("zz"));
}

namespace {

// Three (or more) servers sharing one ManualClock, their messages delivered by hand; a cut
// link drops what is sent over it.
template <class Rules = pods::ConsistentCoreRules>
struct Cluster {
  struct Server {
    pods::Outbox<Msg> out;
    pods::MemoryStorage storage;
    std::unique_ptr<Core<Rules>> core;
  };
  pods::ManualClock clock;
  std::map<NodeId, Server> servers;
  std::set<std::pair<NodeId, NodeId>> cut;

  explicit Cluster(std::size_t n = 3,
                   std::function<void(pods::ConsistentCoreOptions&)> configure = {}) {
    std::vector<NodeId> voters;
    for (NodeId id = 1; id <= n; ++id)
      voters.push_back(id);
    for (NodeId id : voters) {
      pods::ConsistentCoreOptions o = options(id, voters);
      if (configure) configure(o);
      servers[id].core =
          std::make_unique<Core<Rules>>(servers[id].storage, servers[id].out, clock, o);
    }
  }
  Core<Rules>& operator[](NodeId id) { return *servers.at(id).core; }

  void isolate(NodeId id) {
    for (auto& [other, s] : servers) {
      if (other == id) continue;
      cut.insert({id, other});
      cut.insert({other, id});
    }
  }
  void heal() { cut.clear(); }

  // Delivers every message sent (and those the deliveries send) until none is left.
  void deliver() {
    for (int round = 0; round < 1000; ++round) {
      bool any = false;
      for (auto& [id, s] : servers) {
        for (auto& sent : s.out.take()) {
          if (cut.contains({id, sent.to}) || !servers.contains(sent.to)) continue;
          any = true;
          servers.at(sent.to).core->receive(id, std::move(sent.message));
        }
      }
      if (!any) return;
    }
    FAIL("messages kept flowing");
  }
  // Ticks every server and delivers.
  void tick() {
    for (auto& [id, s] : servers)
      s.core->tick();
    deliver();
  }
  // Lets `d` pass in steps of 10 ms, ticking and delivering at each.
  void run(std::chrono::milliseconds d) {
    for (auto t = 0ms; t < d; t += 10ms) {
      clock.advance(10ms);
      tick();
    }
  }
  // Returns the leader of the highest term (0: none).
  NodeId leader() {
    NodeId l = 0;
    for (auto& [id, s] : servers) {
      if (s.core->is_leader() && (l == 0 || s.core->term() > (*this)[l].term())) l = id;
    }
    return l;
  }
  // Runs until some server leads.
  NodeId elect() {
    for (int i = 0; i < 300 && leader() == 0; ++i)
      run(10ms);
    REQUIRE(leader() != 0);
    run(100ms);  // the no-op commits everywhere
    return leader();
  }
};

}  // namespace

TEST_CASE("Compare-and-set applies only when the key's mod_revision is the expected one",
          "[core]") {
  Single s;
  CHECK(s.put("a", "1", {.if_mod_revision = 0}).ok);  // 0: the key must be absent
  const CoreWrite no = s.put("a", "2", {.if_mod_revision = 0});
  CHECK_FALSE(no.ok);
  CHECK(no.revision == 1);  // the core's revision then
  REQUIRE(no.previous);
  CHECK(no.previous->mod_revision == 1);
  const CoreWrite yes = s.put("a", "3", {.if_mod_revision = 1});
  CHECK(yes.ok);
  CHECK(yes.revision == 2);
  CHECK_FALSE(s.put("a", "4", {.if_mod_revision = 1}).ok);  // the swap moved it on
  CHECK_FALSE(s.put("b", "4", {.if_mod_revision = 2}).ok);  // absent is 0
  CHECK(text(s.get("a")->value) == "3");
  CHECK(s.core->revision() == 2);
}

TEST_CASE("NX writes only an absent key, XX only a present one", "[core]") {
  Single s;
  CHECK_FALSE(s.put("a", "x", {.if_present = true}).ok);
  CHECK_FALSE(s.get("a"));
  CHECK(s.put("a", "1", {.if_absent = true}).ok);
  CHECK_FALSE(s.put("a", "2", {.if_absent = true}).ok);
  CHECK(s.put("a", "3", {.if_present = true}).ok);
  CHECK(text(s.get("a")->value) == "3");
  CHECK(s.get("a")->version == 2);
}

TEST_CASE("Increment counts an absent key as 0 and refuses a non-integer or an overflow",
          "[core]") {
  Single s;
  const CoreWrite five = s.increment("n", 5);
  CHECK(five.ok);
  CHECK(five.number == 5);
  CHECK(text(s.get("n")->value) == "5");
  CHECK(s.increment("n", -7).number == -2);
  CHECK(text(s.get("n")->value) == "-2");
  const std::uint64_t before = s.core->revision();
  for (const char* bad : {"abc", "", " 1", "+1", "1 ", "1.5", "99999999999999999999"}) {
    s.put("bad", bad);
    const std::uint64_t rev = s.core->revision();
    const CoreWrite w = s.increment("bad", 1);
    INFO(bad);
    CHECK_FALSE(w.ok);
    CHECK(w.revision == rev);
    CHECK(text(s.get("bad")->value) == bad);
  }
  CHECK(s.core->revision() > before);
  s.put("max", std::to_string(INT64_MAX));
  CHECK_FALSE(s.increment("max", 1).ok);
  CHECK(s.increment("max", -1).number == INT64_MAX - 1);
  s.put("min", std::to_string(INT64_MIN));
  CHECK_FALSE(s.increment("min", -1).ok);
  CHECK(text(s.get("min")->value) == std::to_string(INT64_MIN));
}

TEST_CASE("A range returns the keys with a prefix in order, up to its limit", "[core]") {
  Single s;
  for (const char* k : {"a/2", "b/1", "a/1", "a", "a/3", "a0"})
    s.put(k, k);
  auto keys = [](const std::vector<CoreKeyValue>& kvs) {
    std::vector<std::string> out;
    for (const auto& kv : kvs)
      out.push_back(kv.key);
    return out;
  };
  CHECK(keys(s.range("a/")) == std::vector<std::string>{"a/1", "a/2", "a/3"});
  CHECK(keys(s.range("a/", 2)) == std::vector<std::string>{"a/1", "a/2"});
  CHECK(keys(s.range("a")) == std::vector<std::string>{"a", "a/1", "a/2", "a/3", "a0"});
  CHECK(s.range("").size() == 6);  // every key
  CHECK(s.range("c").empty());
  CHECK(s.range("a/3")[0].value == bytes("a/3"));
}

TEST_CASE("Erase removes a present key with a new revision; an absent one changes nothing",
          "[core]") {
  Single s;
  CHECK_FALSE(s.erase("a").ok);
  CHECK(s.core->revision() == 0);
  s.put("a", "1");
  s.put("a", "2");
  const CoreWrite w = s.erase("a");
  CHECK(w.ok);
  CHECK(w.revision == 3);
  REQUIRE(w.previous);
  CHECK(text(w.previous->value) == "2");
  CHECK_FALSE(s.get("a"));
  const CoreWrite again = s.put("a", "3");
  CHECK(again.revision == 4);
  CHECK(*s.get("a") == CoreKeyValue{"a", bytes("3"), 4, 4, 1, 0});  // a new life
}

TEST_CASE("A write on a follower gets Errc::not_leader with the leader as hint", "[core]") {
  Cluster c;
  const NodeId l = c.elect();
  const NodeId f = l == 1 ? 2 : 1;
  Got<CoreWrite> w;
  c[f].put("a", bytes("1"), {}, w.cb());
  CHECK(w.error() == Errc::not_leader);
  CHECK(c[f].leader() == l);
  Got<CoreLease> g;
  c[f].grant(1s, g.cb());
  CHECK(g.error() == Errc::not_leader);
  Got<std::optional<CoreKeyValue>> r;
  c[f].get("a", CoreRead::linearizable, r.cb());
  CHECK(r.error() == Errc::not_leader);
  // On the leader it applies on every server, with the same revision.
  Got<CoreWrite> ok;
  c[l].put("a", bytes("1"), {}, ok.cb());
  c.run(100ms);
  CHECK(ok.ok().revision == 1);
  for (auto& [id, s] : c.servers) {
    CHECK(s.core->revision() == 1);
    CHECK(s.core->state() == c[l].state());
  }
}

TEST_CASE(
    "A write matches its own entry: applied by the next leader it is answered, replaced "
    "it is not_leader, unknown it is cancelled",
    "[core]") {
  Cluster c;
  REQUIRE(c.elect() != 0);
  const NodeId l = c.leader();
  Core<>& leader = c[l];
  const NodeId other = l == 1 ? 2 : 1;
  const std::uint64_t t = leader.term();
  const std::uint64_t i = leader.log().last_index() + 1;
  Got<CoreWrite> a, b, d;
  leader.put("a", bytes("A"), {}, a.cb());  // at i
  leader.put("b", bytes("B"), {}, b.cb());  // at i + 1
  leader.put("d", bytes("D"), {}, d.cb());  // at i + 2
  c.servers.at(l).out.take();               // nothing of it leaves the leader
  const auto own = *leader.log().entry(i);
  // The next leader (term t + 1) kept the entry at i, put its no-op at i + 1 and another
  // client's command at i + 2, and all three committed: one message tells the old leader.
  using pods::RaftEntry;
  using pods::RaftEntryKind;
  const auto x = pods::detail::encode_core_put("x", bytes("X"), {});
  leader.receive(other, pods::AppendEntries{t + 1,
                                            i - 1,
                                            leader.log().term_at(i - 1),
                                            i + 2,
                                            {own, RaftEntry{t + 1, RaftEntryKind::noop, {}},
                                             RaftEntry{t + 1, RaftEntryKind::command, x}},
                                            0});
  CHECK_FALSE(leader.is_leader());
  CHECK(a.ok().ok);  // its own entry applied: the outcome is known
  CHECK(a.ok().revision == 1);
  CHECK(b.error() == Errc::cancelled);   // its index holds a no-op: nothing applied there
  CHECK(d.error() == Errc::not_leader);  // another command won its index
  CHECK(leader.pending_writes() == 0);
  std::optional<CoreKeyValue> xv;
  leader.get("x", CoreRead::local, [&](auto v) { xv = *v; });
  REQUIRE(xv);
  CHECK(xv->mod_revision == 2);
}

TEST_CASE("Pending writes of a leader that steps down are cancelled (the outcome is unknown)",
          "[core]") {
  Cluster c;
  const NodeId l = c.elect();
  c.isolate(l);
  Got<CoreWrite> w;
  c[l].put("a", bytes("1"), {}, w.cb());
  c.run(10ms);
  CHECK_FALSE(w.done());
  c.run(700ms);  // check-quorum steps it down; the others elect a leader
  CHECK(w.error() == Errc::cancelled);
  CHECK(c.leader() != l);
  c.heal();
  c.run(200ms);
  CHECK(c[l].revision() == 0);  // the entry was not committed by the new leader
}

TEST_CASE("A write not applied within options.write_timeout gets Errc::timeout", "[core]") {
  Cluster c(3, [](pods::ConsistentCoreOptions& o) { o.write_timeout = 100ms; });
  const NodeId l = c.elect();
  c.isolate(l);
  Got<CoreWrite> w;
  c[l].put("a", bytes("1"), {}, w.cb());
  c.run(150ms);  // before check-quorum (300 ms)
  CHECK(w.error() == Errc::timeout);
}

TEST_CASE("Writes past options.max_pending_writes get Errc::full", "[core]") {
  Cluster c(3, [](pods::ConsistentCoreOptions& o) { o.max_pending_writes = 1; });
  const NodeId l = c.elect();
  Got<CoreWrite> first, second;
  c[l].put("a", bytes("1"), {}, first.cb());
  c[l].put("b", bytes("1"), {}, second.cb());
  CHECK(second.error() == Errc::full);
  c.run(50ms);
  CHECK(first.ok().ok);
}

TEST_CASE("A linearizable read waits for a heartbeat round started after it (§6.4)", "[core]") {
  Cluster c;
  const NodeId l = c.elect();
  Got<CoreWrite> w;
  c[l].put("a", bytes("1"), {}, w.cb());
  c.run(50ms);
  REQUIRE(w.done());
  Got<std::optional<CoreKeyValue>> r;
  c[l].get("a", CoreRead::linearizable, r.cb());
  CHECK_FALSE(r.done());  // the round's AppendEntries are in the outbox
  auto sent = c.servers.at(l).out.take();
  REQUIRE(sent.size() == 2);
  const NodeId f = sent[0].to;
  c[f].receive(l, std::move(sent[0].message));
  CHECK_FALSE(r.done());  // the follower's answer has not arrived
  auto reply = c.servers.at(f).out.take();
  REQUIRE(reply.size() == 1);
  c[l].receive(f, std::move(reply[0].message));  // a majority (2 of 3) answered the round
  REQUIRE(r.done());
  CHECK(text((*r.ok()).value) == "1");
  // A lease read inside the lease needs no round; a local read answers what this server holds.
  Got<std::optional<CoreKeyValue>> lease;
  c[l].get("a", CoreRead::lease, lease.cb());
  CHECK(lease.ok());
  CHECK(c.servers.at(l).out.empty());
  Got<std::optional<CoreKeyValue>> local;
  c[f].get("a", CoreRead::local, local.cb());
  CHECK(local.ok());
}

TEST_CASE("A leader cut off from the others never answers a linearizable read", "[core]") {
  Cluster c;
  const NodeId l = c.elect();
  c.isolate(l);
  Got<std::optional<CoreKeyValue>> r;
  c[l].get("a", CoreRead::linearizable, r.cb());
  c.run(1100ms);
  CHECK((r.error() == Errc::not_leader || r.error() == Errc::timeout));
}

namespace {

struct NoLeaseReset : pods::ConsistentCoreRules {
  static constexpr bool reset_lease_deadlines = false;
};

template <class Rules>
CoreLease grant(Cluster<Rules>& c, NodeId l, std::chrono::milliseconds ttl) {
  Got<CoreLease> g;
  c[l].grant(ttl, g.cb());
  c.run(30ms);
  return g.ok();
}

template <class Rules>
CoreWrite put(Cluster<Rules>& c, NodeId l, std::string key, CorePut p = {}) {
  Got<CoreWrite> w;
  c[l].put(std::move(key), bytes("v"), p, w.cb());
  c.run(30ms);
  return w.ok();
}

std::vector<pods::WatchEvent> all_events(pods::StateWatch& w, pods::WatchId id) {
  return w.take(id);
}

}  // namespace

TEST_CASE(
    "A lease is granted with the grant's index as id; keep_alive answers once the round "
    "confirms; revoke removes its keys",
    "[core][lease]") {
  Single s;
  const CoreLease l = s.grant(500ms);
  CHECK(l.ttl == 500ms);
  CHECK(l.id == s.core->log().last_index());  // the grant's entry (the last one)
  CHECK(s.core->lease(l.id) == l);
  CHECK(s.core->lease_deadline(l.id) == s.clock.now() + 500ms);
  const CoreLease second = s.grant(1s);
  CHECK(second.id > l.id);  // ids grow: a fencing token
  CHECK(s.put("a", "1", {.lease = l.id}).ok);
  CHECK(s.put("b", "1", {.lease = l.id}).ok);
  CHECK(s.get("a")->lease == l.id);
  CHECK_FALSE(s.put("c", "1", {.lease = 999}).ok);  // an unknown lease: not applied
  s.clock.advance(300ms);
  Got<CoreLease> k;
  s.core->keep_alive(l.id, k.cb());  // a single voter confirms its own round at once
  CHECK(k.ok() == l);
  CHECK(s.core->lease_deadline(l.id) == s.clock.now() + 500ms);
  Got<CoreLease> unknown;
  s.core->keep_alive(12345, unknown.cb());
  CHECK(unknown.error() == Errc::session_expired);
  const std::uint64_t rev = s.core->revision();
  Got<CoreWrite> r;
  s.core->revoke(l.id, r.cb());
  s.core->tick();
  CHECK(r.ok().ok);
  CHECK(r.ok().revision == rev + 2);  // one revision per removed key
  CHECK_FALSE(s.get("a"));
  CHECK_FALSE(s.get("b"));
  CHECK_FALSE(s.core->lease(l.id));
  Got<CoreWrite> again;
  s.core->revoke(l.id, again.cb());
  s.core->tick();
  CHECK_FALSE(again.ok().ok);
  Got<CoreLease> gone;
  s.core->keep_alive(l.id, gone.cb());
  CHECK(gone.error() == Errc::session_expired);
  // A put without a lease detaches the key from its lease.
  CHECK(s.put("d", "1", {.lease = second.id}).ok);
  CHECK(s.put("d", "2").ok);
  Got<CoreWrite> r2;
  s.core->revoke(second.id, r2.cb());
  s.core->tick();
  CHECK(s.get("d"));
}

TEST_CASE("A lease past its deadline expires on every server, with the same revisions",
          "[core][lease]") {
  Cluster c;
  const NodeId l = c.elect();
  const CoreLease lease = grant(c, l, 500ms);
  put(c, l, "a", {.lease = lease.id});
  put(c, l, "b", {.lease = lease.id});
  put(c, l, "c");
  put(c, l, "a2", {.lease = lease.id});
  CHECK(put(c, l, "a2").ok);  // detached again
  const std::uint64_t rev = c[l].revision();
  const auto w = c[2].watches().watch({.key = "", .prefix = true});
  REQUIRE(w);
  c.run(300ms);
  for (auto& [id, s] : c.servers)
    CHECK(s.core->lease(lease.id));
  c.run(300ms);  // past 500 ms since the grant: the leader proposes the expiry
  for (auto& [id, s] : c.servers) {
    INFO("server " << id);
    CHECK_FALSE(s.core->lease(lease.id));
    CHECK(s.core->revision() == rev + 2);
    CHECK(s.core->state() == c[l].state());
  }
  Got<std::optional<CoreKeyValue>> a, cc;
  c[l].get("a", CoreRead::local, a.cb());
  c[l].get("c", CoreRead::local, cc.cb());
  CHECK_FALSE(a.ok());
  CHECK(cc.ok());
  const auto events = all_events(c[2].watches(), *w);
  REQUIRE(events.size() == 2);
  CHECK(events[0] == pods::WatchEvent{rev + 1, pods::WatchEventKind::erase, "a", {}});
  CHECK(events[1] == pods::WatchEvent{rev + 2, pods::WatchEventKind::erase, "b", {}});
}

TEST_CASE("keep_alive holds a lease past its ttl; a follower does not take keep_alive",
          "[core][lease]") {
  Cluster c;
  const NodeId l = c.elect();
  const CoreLease lease = grant(c, l, 300ms);
  for (int i = 0; i < 10; ++i) {
    Got<CoreLease> k;
    c[l].keep_alive(lease.id, k.cb());
    CHECK_FALSE(k.done());  // it waits for its round
    c.run(100ms);
    CHECK(k.ok() == lease);
  }
  CHECK(c[l].lease(lease.id));
  const NodeId f = l == 1 ? 2 : 1;
  Got<CoreLease> k;
  c[f].keep_alive(lease.id, k.cb());
  CHECK(k.error() == Errc::not_leader);
  c.run(400ms);
  CHECK_FALSE(c[f].lease(lease.id));
}

template <class Rules>
void new_leader_deadlines(bool reset) {
  Cluster<Rules> c;
  const NodeId l = c.elect();
  const CoreLease lease = grant(c, l, 2000ms);
  const auto granted = c.clock.now();
  for (int i = 0; i < 15; ++i) {  // kept alive on the leader for 1.5 s
    c[l].keep_alive(lease.id, [](pods::Outcome<CoreLease> k) { REQUIRE(k); });
    c.run(100ms);
  }
  c.isolate(l);
  c.run(700ms);  // a new leader among the others
  const NodeId n = c.leader();
  REQUIRE(n != l);
  REQUIRE(n != 0);
  if (reset) {
    // Its deadline started over when it became leader (within the last 700 ms).
    const auto deadline = c[n].lease_deadline(lease.id);
    REQUIRE(deadline);
    CHECK(*deadline >= granted + 1500ms + 2000ms);
    CHECK(*deadline <= c.clock.now() + 2000ms);
    CHECK(c[n].lease(lease.id));
  } else {
    // The grant's apply time + ttl passed 2 s after the grant: the new leader expired a lease
    // its holder kept alive.
    CHECK_FALSE(c[n].lease(lease.id));
  }
}

TEST_CASE("A new leader restarts every lease's deadline at now + ttl", "[core][lease]") {
  new_leader_deadlines<pods::ConsistentCoreRules>(true);
}

TEST_CASE("Mutation: without the reset a new leader keeps the deadlines of the grant",
          "[core][lease]") {
  new_leader_deadlines<NoLeaseReset>(false);
}

TEST_CASE("A deposed leader never answers keep_alive ok", "[core][lease]") {
  Cluster c;
  const NodeId l = c.elect();
  const CoreLease lease = grant(c, l, 5000ms);
  c.isolate(l);
  Got<CoreLease> k;
  c[l].keep_alive(lease.id, k.cb());
  c.run(100ms);
  CHECK_FALSE(k.done());  // no round confirms while cut off
  c.run(1200ms);
  CHECK((k.error() == Errc::not_leader || k.error() == Errc::timeout));
  // Deposed by a newer leader's message, its keep_alive is refused at once.
  c.heal();
  c.run(100ms);
  REQUIRE_FALSE(c[l].is_leader());
  Got<CoreLease> k2;
  c[l].keep_alive(lease.id, k2.cb());
  CHECK(k2.error() == Errc::not_leader);
}

TEST_CASE("A snapshot keeps keys, leases and the revision, and resets the watch history",
          "[core][snapshot]") {
  pods::MemoryStorage storage;
  std::vector<std::byte> state;
  std::uint64_t lease = 0, revision = 0;
  {
    Single s;
    lease = s.grant(10s).id;
    s.put("a", "1", {.lease = lease});
    s.put("b", "2");
    s.erase("b");
    s.put("c", "3");
    revision = s.core->revision();
    REQUIRE(s.core->log().compact());
    state = s.core->state();
    storage = s.storage;
  }
  // A server rebuilt from the storage restores the snapshot.
  pods::ManualClock clock;
  pods::Outbox<Msg> out;
  Core<> core(storage, out, clock, options(1, {1}));
  CHECK(core.state() == state);
  CHECK(core.revision() == revision);
  CHECK(core.lease(lease));
  CHECK(core.watches().revision() == revision);
  CHECK(core.watches().compacted_revision() == revision);
  CHECK(core.watches().watch({.key = "a", .from_revision = 1}).error() == Errc::compacted);
  CHECK(core.watches().watch({.key = "a", .from_revision = revision}).error() == Errc::compacted);
  const auto w = core.watches().watch({.key = "a", .from_revision = revision + 1});
  REQUIRE(w);
  clock.advance(1s);
  core.tick();
  core.tick();
  REQUIRE(core.is_leader());
  Got<CoreWrite> put;
  core.put("a", bytes("9"), {}, put.cb());
  core.tick();
  CHECK(put.ok().revision == revision + 1);
  const auto events = core.watches().take(*w);
  REQUIRE(events.size() == 1);
  CHECK(events[0] == pods::WatchEvent{revision + 1, pods::WatchEventKind::put, "a", bytes("9")});
  // The lease's deadline restarted on the new leader: it has not expired.
  CHECK(core.lease(lease));
}

TEST_CASE(
    "A follower far behind is sent the snapshot and ends with the same state; its open "
    "watches close with Errc::compacted",
    "[core][snapshot]") {
  Cluster c;
  const NodeId l = c.elect();
  const NodeId f = l == 3 ? 2 : 3;
  const auto w = c[f].watches().watch({.key = "", .prefix = true});
  REQUIRE(w);
  c.isolate(f);
  const CoreLease lease = grant(c, l, 10s);
  for (int i = 0; i < 5; ++i)
    put(c, l, "k" + std::to_string(i), {.lease = i % 2 ? lease.id : 0});
  REQUIRE(c[l].log().compact());
  c.heal();
  c.run(200ms);
  CHECK(c[f].log().snapshots_installed() == 1);
  CHECK(c[f].state() == c[l].state());
  CHECK(c[f].revision() == 5);
  CHECK(c[f].lease(lease.id));
  CHECK(c[f].watches().closed(*w) == Errc::compacted);
  CHECK(c[f].watches().watch({.key = "k1", .from_revision = 5}).error() == Errc::compacted);
}

TEST_CASE("On every server the watches see each applied change once, in revision order",
          "[core][watch]") {
  Cluster c;
  const NodeId l = c.elect();
  std::map<NodeId, pods::WatchId> ids;
  for (auto& [id, s] : c.servers)
    ids[id] = *s.core->watches().watch({.key = "", .prefix = true});
  put(c, l, "a");
  put(c, l, "b");
  Got<CoreWrite> e;
  c[l].erase("a", e.cb());
  Got<CoreWrite> n;
  c[l].increment("n", 3, n.cb());
  c.run(100ms);
  const std::vector<pods::WatchEvent> expect{
      {1, pods::WatchEventKind::put, "a", bytes("v")},
      {2, pods::WatchEventKind::put, "b", bytes("v")},
      {3, pods::WatchEventKind::erase, "a", {}},
      {4, pods::WatchEventKind::put, "n", bytes("3")},
  };
  for (auto& [id, s] : c.servers)
    CHECK(s.core->watches().take(ids[id]) == expect);
}

TEST_CASE("A corrupt command or snapshot throws pods::CorruptionError naming where",
          "[core][errors]") {
  pods::detail::CoreState state;
  auto message = [&](std::vector<std::byte> b, bool snapshot) {
    try {
      if (snapshot) {
        state.restore(b);
      } else {
        (void)state.apply(7, b);
      }
    } catch (const pods::CorruptionError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message({std::byte{9}}, false) ==
        "corrupt data in ConsistentCore command at index 7 at offset 0: unknown command version 9");
  CHECK(message({std::byte{1}, std::byte{6}}, false) ==
        "corrupt data in ConsistentCore command at index 7 at offset 1: unknown command op 6");
  auto put = pods::detail::encode_core_put("k", bytes("v"), {});
  put[2 + 4 + 1 + 4 + 1] = std::byte{8};  // the flags byte
  CHECK(message(put, false) ==
        "corrupt data in ConsistentCore command at index 7 at offset 12: unknown put flags 8");
  auto erase = pods::detail::encode_core_key(pods::detail::CoreOp::erase, "k");
  erase.push_back(std::byte{0});
  CHECK(message(erase, false) ==
        "corrupt data in ConsistentCore command at index 7 at offset 7: 1 unexpected trailing "
        "bytes");
  CHECK(message({}, true) ==
        "corrupt data in ConsistentCore snapshot at offset 0: truncated: a u8 needs 1 bytes, 0 "
        "remain");
  CHECK(message({std::byte{2}}, true) ==
        "corrupt data in ConsistentCore snapshot at offset 0: unknown snapshot version 2");
  // A key on a lease the snapshot does not hold.
  pods::detail::CoreState good;
  (void)good.apply(1, pods::detail::encode_core_number(pods::detail::CoreOp::grant, 1000));
  (void)good.apply(2, pods::detail::encode_core_put("k", bytes("v"), {.lease = 1}));
  auto snap = good.snapshot();
  CHECK(message(snap, true) == "no error");
  snap[snap.size() - 16] = std::byte{5};  // the lease's id
  CHECK(message(snap, true) ==
        "corrupt data in ConsistentCore snapshot at offset 75: key k is on an unknown lease");
  CHECK(state.revision() == 1);  // only the good snapshot was restored
}

TEST_CASE("Bad arguments and options throw std::invalid_argument naming them", "[core][errors]") {
  Single s;
  auto ignore = [](auto) {};
  CHECK_THROWS_WITH(s.core->put("", {}, {}, ignore), "ConsistentCore::put: key must not be empty");
  CHECK_THROWS_WITH(s.core->put("a", {}, {.if_absent = true, .if_present = true}, ignore),
                    "ConsistentCore::put: condition.if_absent and condition.if_present must not "
                    "both be set");
  CHECK_THROWS_WITH(s.core->erase("", ignore), "ConsistentCore::erase: key must not be empty");
  CHECK_THROWS_WITH(s.core->increment("", 1, ignore),
                    "ConsistentCore::increment: key must not be empty");
  CHECK_THROWS_WITH(s.core->get("", CoreRead::local, ignore),
                    "ConsistentCore::get: key must not be empty");
  CHECK_THROWS_WITH(s.core->grant(99ms, ignore),
                    "ConsistentCore::grant: ttl must be within [options.min_ttl, options.max_ttl] "
                    "= [100, 600000] ms, got 99 ms");
  CHECK_THROWS_WITH(s.core->grant(600001ms, ignore),
                    "ConsistentCore::grant: ttl must be within [options.min_ttl, options.max_ttl] "
                    "= [100, 600000] ms, got 600001 ms");
  CHECK_THROWS_WITH(s.core->keep_alive(0, ignore),
                    "ConsistentCore::keep_alive: lease must not be 0");
  CHECK_THROWS_WITH(s.core->revoke(0, ignore), "ConsistentCore::revoke: lease must not be 0");
  CHECK(s.core->pending_writes() == 0);  // nothing was proposed
  auto make = [](auto change) {
    pods::ConsistentCoreOptions o = options(1, {1});
    change(o);
    pods::ManualClock clock;
    Core<> core(pods::MemoryStorage{}, pods::Outbox<Msg>{}, clock, o);
  };
  using O = pods::ConsistentCoreOptions;
  CHECK_THROWS_WITH(make([](O& o) { o.min_ttl = 0ms; }),
                    "ConsistentCore: options.min_ttl must be positive");
  CHECK_THROWS_WITH(make([](O& o) { o.max_ttl = 50ms; }),
                    "ConsistentCore: options.max_ttl must not be less than min_ttl");
  CHECK_THROWS_WITH(make([](O& o) { o.write_timeout = 0ms; }),
                    "ConsistentCore: options.write_timeout must be positive");
  CHECK_THROWS_WITH(make([](O& o) { o.max_pending_writes = 0; }),
                    "ConsistentCore: options.max_pending_writes must be at least 1");
  CHECK_THROWS_WITH(make([](O& o) { o.reads.timeout = 0ms; }),
                    "ReadIndex: options.timeout must be positive");
  CHECK_THROWS_WITH(make([](O& o) { o.watch.max_buffered = 0; }), Catch::Contains("StateWatch"));
  CHECK_THROWS_WITH(make([](O& o) { o.log.voters = {}; }),
                    "ReplicatedLog: options.voters must not be empty");
  pods::ConsistentCoreOptions o = options(1, {1});
  o.log.check_quorum = false;
  pods::ManualClock clock;
  Core<> core(pods::MemoryStorage{}, pods::Outbox<Msg>{}, clock, o);
  CHECK_THROWS_WITH(core.get("a", CoreRead::lease, ignore),
                    "ConsistentCore::get: mode lease needs options.log.check_quorum");
  CHECK_THROWS_WITH(core.range("a", 0, CoreRead::lease, ignore),
                    "ConsistentCore::range: mode lease needs options.log.check_quorum");
}

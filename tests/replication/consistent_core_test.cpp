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
#include <map>
#include <memory>
#include <optional>
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

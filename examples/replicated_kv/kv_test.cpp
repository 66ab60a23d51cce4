// Tests of examples/replicated_kv/kv.hpp: the command encoding, the state machine's snapshot
// and restore (round trip, bad bytes refused with the state unchanged), and a ReplicatedLog on
// MemoryStorage that compacts, restarts and rebuilds the map from its snapshot and log.
#include "kv.hpp"

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/replication/replicated_log.hpp>
#include <pods/storage/memory_storage.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

using replicated_kv::Command;
using replicated_kv::Machine;
using KvModel = pods::sim::KvModel;

namespace {

void apply(Machine& m, std::uint64_t index, const pods::sim::KvInput& input) {
  m.apply(index, replicated_kv::encode(Command{index, input}));
}

}  // namespace

TEST_CASE("a command survives its encoding") {
  const Command c{42, KvModel::put("key", "value")};
  const Command d = replicated_kv::decode(replicated_kv::encode(c));
  CHECK(d.tag == 42);
  CHECK(d.input.op == pods::sim::KvOp::put);
  CHECK(d.input.key == "key");
  CHECK(d.input.value == "value");
  pods::Buffer bad = replicated_kv::encode(c);
  bad[8] = std::byte{9};  // no such op
  CHECK_THROWS_AS(replicated_kv::decode(bad), pods::CorruptionError);
}

TEST_CASE("the machine's snapshot restores the same map and the index it covers") {
  Machine m;
  apply(m, 1, KvModel::put("a", "1"));
  apply(m, 2, KvModel::put("b", std::string(300, 'x')));
  apply(m, 3, KvModel::put("", "empty key"));
  apply(m, 4, KvModel::get("a"));
  const std::vector<std::byte> snap = m.snapshot();

  Machine r;
  std::uint64_t told = 0;
  r.on_restore = [&](std::uint64_t covered) { told = covered; };
  r.data["stale"] = "gone after the restore";
  r.restore(snap);
  CHECK(r.data == m.data);
  CHECK(r.covered == 4);
  CHECK(told == 4);
  CHECK(r.snapshot() == snap);

  SECTION("an empty map") {
    Machine e;
    Machine f;
    f.data["x"] = "y";
    f.restore(e.snapshot());
    CHECK(f.data.empty());
    CHECK(f.covered == 0);
  }
}

TEST_CASE("bad snapshot bytes throw CorruptionError and leave the state as it was") {
  Machine m;
  apply(m, 1, KvModel::put("a", "1"));
  apply(m, 2, KvModel::put("b", "2"));
  const std::vector<std::byte> snap = m.snapshot();

  Machine r;
  apply(r, 7, KvModel::put("kept", "yes"));
  const auto before = r.data;
  SECTION("truncated") {
    const std::vector<std::byte> cut(snap.begin(), snap.end() - 1);
    CHECK_THROWS_AS(r.restore(cut), pods::CorruptionError);
  }
  SECTION("trailing bytes") {
    std::vector<std::byte> longer = snap;
    longer.push_back(std::byte{0});
    CHECK_THROWS_AS(r.restore(longer), pods::CorruptionError);
  }
  SECTION("a key count larger than the bytes can hold") {
    std::vector<std::byte> big = snap;
    big[3] = std::byte{0x7f};
    CHECK_THROWS_AS(r.restore(big), pods::CorruptionError);
  }
  CHECK(r.data == before);
  CHECK(r.covered == 7);
}

TEST_CASE("a compacted log restarts with the map rebuilt from its snapshot and the log after it") {
  using namespace std::chrono_literals;
  pods::MemoryStorage storage;
  pods::ManualClock clock;
  pods::Outbox<pods::ReplicatedLogMessage> out;
  const pods::ReplicatedLogOptions options{
      .self = 1, .voters = {1}, .seed = 3, .snapshot_every = 5};
  Machine m;
  {
    pods::ReplicatedLog log(storage, out, clock, m, options);
    clock.advance(1s);
    log.tick();
    REQUIRE(log.is_leader());
    for (int i = 0; i < 12; ++i) {
      REQUIRE(log.propose(replicated_kv::encode(
          Command{static_cast<std::uint64_t>(i),
                  KvModel::put("k" + std::to_string(i % 4), std::to_string(i))})));
      log.tick();
    }
    REQUIRE(log.snapshots_taken() >= 2);
    REQUIRE(log.snapshot_index() > 5);
    REQUIRE(log.applied_index() > log.snapshot_index());  // entries after the snapshot
  }
  Machine rebuilt;
  std::uint64_t restored_at = 0;
  rebuilt.on_restore = [&](std::uint64_t covered) { restored_at = covered; };
  pods::ReplicatedLog log(storage, out, clock, rebuilt, options);
  CHECK(restored_at == log.snapshot_index());
  clock.advance(1s);
  log.tick();  // leads again
  REQUIRE(log.is_leader());
  log.tick();  // commits its no-op and applies the log after the snapshot
  CHECK(rebuilt.data == m.data);
  CHECK(rebuilt.data.at("k3") == "11");
}

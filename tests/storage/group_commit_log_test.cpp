#include <pods/storage/group_commit_log.hpp>

#include <pods/storage/file_storage.hpp>
#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "storage_fixtures.hpp"

using pods_test::bytes;
using pods_test::text;

namespace {

// Shared control of GatedStorage: a gate that holds sync() until the test opens it, and a
// switch that makes sync() fail.
struct Gate {
  std::mutex mutex;
  std::condition_variable cv;
  bool closed = false;
  bool fail = false;
  int waiting = 0;  // syncs currently held at the gate

  void close() {
    std::lock_guard lock(mutex);
    closed = true;
  }
  void open() {
    {
      std::lock_guard lock(mutex);
      closed = false;
    }
    cv.notify_all();
  }
  // Blocks until `n` syncs are held at the gate.
  void wait_for_waiting(int n) {
    std::unique_lock lock(mutex);
    cv.wait(lock, [&] { return waiting >= n; });
  }
  void pass() {
    std::unique_lock lock(mutex);
    ++waiting;
    cv.notify_all();
    cv.wait(lock, [&] { return !closed; });
    --waiting;
    if (fail) throw std::system_error(std::make_error_code(std::errc::io_error), "gated sync");
  }
};

// A MemoryStorage whose sync() passes through a Gate first.
struct GatedStorage : pods::MemoryStorage {
  std::shared_ptr<Gate> gate = std::make_shared<Gate>();
  void sync(std::uint64_t id) {
    gate->pass();
    pods::MemoryStorage::sync(id);
  }
};
static_assert(pods::SegmentStorage<GatedStorage>);

// Blocks until `log` has `n` appends queued. The writer is held at the gate, so the count
// can only grow to n; this polls a condition, it does not wait for time to pass.
template <class Log>
void wait_until_queued(const Log& log, std::size_t n) {
  while (log.queued_approx() < n)
    std::this_thread::yield();
}

}  // namespace

TEST_CASE("GroupCommitLog: concurrent callers share one sync", "[group_commit_log][threads]") {
  GatedStorage storage;
  pods::GroupCommitLog<GatedStorage> log(storage);
  const auto syncs_before = storage.sync_count();
  storage.gate->close();

  std::vector<std::uint64_t> indices(8);
  std::vector<std::thread> writers;
  writers.emplace_back([&] { indices[0] = log.append_durable(bytes("first")); });
  storage.gate->wait_for_waiting(1);  // the writer thread is syncing "first"
  for (int w = 1; w < 8; ++w) {
    writers.emplace_back([&, w] {
      indices[static_cast<std::size_t>(w)] = log.append_durable(bytes("w" + std::to_string(w)));
    });
  }
  wait_until_queued(log, 7);  // all seven queued behind the sync in progress
  CHECK(log.durable_index() == 0);
  storage.gate->open();
  for (auto& t : writers)
    t.join();

  CHECK(log.sync_count() == 2);  // eight durable appends, two syncs
  CHECK(storage.sync_count() - syncs_before == 2);
  std::sort(indices.begin(), indices.end());
  CHECK(indices == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(log.durable_index() == 8);

  log.stop();
  storage.crash();  // everything acknowledged survives
  pods::SegmentedLog<pods::MemoryStorage> reopened(storage);
  CHECK(reopened.last_index() == 8);
  CHECK(text(reopened.read(1)->payload) == "first");
}

TEMPLATE_TEST_CASE("GroupCommitLog: many writers, every entry durable, each writer's order kept",
                   "[group_commit_log][threads]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  constexpr int writers = 8;
  constexpr int per_writer = 40;
  std::uint64_t syncs = 0;
  {
    pods::GroupCommitLog<TestType> log(fixture.open(), {.segment_bytes = 2048});
    std::vector<std::vector<std::uint64_t>> got(writers);
    std::atomic<int> not_durable{0};  // Catch2 assertions are not thread-safe: count, check later
    std::vector<std::thread> threads;
    for (int w = 0; w < writers; ++w) {
      threads.emplace_back([&, w] {
        for (int k = 0; k < per_writer; ++k) {
          const std::uint64_t i =
              log.append_durable(bytes(std::to_string(w) + ":" + std::to_string(k)));
          if (log.durable_index() < i) ++not_durable;
          got[static_cast<std::size_t>(w)].push_back(i);
        }
      });
    }
    for (auto& t : threads)
      t.join();
    CHECK(not_durable == 0);
    std::set<std::uint64_t> all;
    for (const auto& g : got) {
      CHECK(std::is_sorted(g.begin(), g.end()));
      all.insert(g.begin(), g.end());
    }
    CHECK(all.size() == writers * per_writer);
    CHECK(*all.rbegin() == writers * per_writer);
    syncs = log.sync_count();
    CHECK(syncs >= 1);
    CHECK(syncs <= writers * per_writer);
    log.with_log([&](auto& l) {
      for (const pods::LogEntry& e : l.entries(1)) {
        const std::string s = text(e.payload);
        const auto w = static_cast<std::size_t>(std::stoi(s.substr(0, s.find(':'))));
        const int k = std::stoi(s.substr(s.find(':') + 1));
        CHECK(got[w][static_cast<std::size_t>(k)] == e.index);
      }
    });
  }
  if constexpr (std::is_same_v<TestType, pods::MemoryStorage>) fixture.store.crash(true);
  pods::SegmentedLog<TestType> reopened(fixture.open(), {.segment_bytes = 2048});
  CHECK(reopened.last_index() == writers * per_writer);
}

TEST_CASE("GroupCommitLog: stop refuses new appends and finishes the accepted ones",
          "[group_commit_log][threads]") {
  GatedStorage storage;
  auto log = std::make_unique<pods::GroupCommitLog<GatedStorage>>(storage);
  storage.gate->close();
  std::vector<std::thread> writers;
  std::atomic<int> succeeded{0};
  auto writer = [&] {
    log->append_durable(bytes("accepted"));
    ++succeeded;
  };
  writers.emplace_back(writer);
  storage.gate->wait_for_waiting(1);  // the first batch is at the gate
  for (int w = 0; w < 3; ++w)
    writers.emplace_back(writer);
  wait_until_queued(*log, 3);  // three queued behind it
  std::thread stopper([&] { log->stop(); });
  while (!log->stopping())
    std::this_thread::yield();
  CHECK_THROWS_AS(log->append_durable(bytes("late")), pods::ClosedError);
  storage.gate->open();
  stopper.join();
  for (auto& t : writers)
    t.join();
  CHECK(succeeded == 4);
  log->stop();  // idempotent
  CHECK_THROWS_AS(log->append_durable(bytes("late")), pods::ClosedError);
  CHECK(log->with_log([](auto& l) { return l.last_index(); }) == 4);
  log.reset();  // the destructor after stop() is fine
  storage.crash();
  CHECK(pods::SegmentedLog<pods::MemoryStorage>(storage).last_index() == 4);
}

TEST_CASE("GroupCommitLog: a failed sync fails its batch and every later append",
          "[group_commit_log][threads]") {
  GatedStorage storage;
  pods::GroupCommitLog<GatedStorage> log(storage);
  CHECK(log.append_durable(bytes("fine")) == 1);
  storage.gate->fail = true;
  CHECK_THROWS_AS(log.append_durable(bytes("doomed")), std::system_error);
  storage.gate->fail = false;
  CHECK_THROWS_WITH(log.append_durable(bytes("after")), Catch::Contains("gated sync"));
  CHECK(log.durable_index() == 1);
}

TEST_CASE("GroupCommitLog: an oversized payload is refused, naming payload",
          "[group_commit_log][threads]") {
  pods::MemoryStorage storage;
  pods::GroupCommitLog<pods::MemoryStorage> log(storage);
  const std::byte one{1};
  const std::span<const std::byte> huge(
      &one, pods::SegmentedLog<pods::MemoryStorage>::max_payload_bytes + 1);
  CHECK_THROWS_WITH(log.append_durable(huge), Catch::Contains("payload"));
  CHECK(log.append_durable(bytes("ok")) == 1);
}

TEST_CASE("GroupCommitLog: the destructor waits until every caller has left append_durable",
          "[group_commit_log][threads]") {
  for (int round = 0; round < 40; ++round) {
    GatedStorage storage;
    auto log = std::make_unique<pods::GroupCommitLog<GatedStorage>>(storage);
    pods::GroupCommitLog<GatedStorage>* raw = log.get();  // the callers keep using this one
    storage.gate->close();
    std::atomic<int> returned{0};
    auto writer = [&] {
      raw->append_durable(bytes("in flight"));
      ++returned;
    };
    std::vector<std::thread> writers;
    writers.emplace_back(writer);
    storage.gate->wait_for_waiting(1);  // the leader is syncing
    for (int w = 0; w < 3; ++w)
      writers.emplace_back(writer);
    wait_until_queued(*raw, 3);  // three followers wait inside append_durable
    std::thread destroyer([&] { log.reset(); });
    while (!raw->stopping())  // alive: the destructor waits for the queue at least
      std::this_thread::yield();
    storage.gate->open();  // the batch commits; the followers wake and leave
    destroyer.join();
    for (auto& t : writers)
      t.join();
    REQUIRE(returned == 4);
  }
}

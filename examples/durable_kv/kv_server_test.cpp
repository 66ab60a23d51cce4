// kv::Server on its own, request by request, on MemoryStorage: recovery refuses a log that
// does not meet its snapshot, the order in which a snapshot and the cleaning of the log reach
// storage, and what the server does after a failed fdatasync (FaultyStorage).
#include "kv_server.hpp"

#include <pods/storage/faulty_storage.hpp>
#include <pods/storage/memory_storage.hpp>
#include <pods/storage/segmented_log.hpp>

#include <catch2/catch.hpp>

#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace {

// Sends one request and waits for its answer.
template <class Server>
kv::Response call(Server& server, kv::Request request) {
  std::promise<kv::Response> answer;
  std::future<kv::Response> future = answer.get_future();
  server.submit(std::move(request), [&answer](kv::Response r) { answer.set_value(std::move(r)); });
  return future.get();
}

template <class Server>
kv::Response hello(Server& server, std::uint64_t client) {
  kv::Request r;
  r.op = kv::Op::hello;
  r.client = client;
  return call(server, std::move(r));
}

template <class Server>
kv::Response put(Server& server, std::uint64_t client, std::uint64_t seq, std::string key,
                 std::string value) {
  kv::Request r;
  r.op = kv::Op::put;
  r.client = client;
  r.seq = seq;
  r.acked_below = seq;
  r.key = std::move(key);
  r.value = std::move(value);
  return call(server, std::move(r));
}

template <class Server>
std::optional<kv::Version> get(Server& server, std::string key) {
  kv::Request r;
  r.op = kv::Op::get;
  r.key = std::move(key);
  return call(server, std::move(r)).value;
}

// Returns the server's statistics, asked through its queue (after every earlier request).
template <class Server>
kv::ServerStats server_stats(Server& server) {
  kv::Request r;
  r.op = kv::Op::stats;
  return call(server, std::move(r)).stats;
}

// Small segments and a snapshot every 20 entries: 100 puts take five snapshots, and the
// low-water mark deletes the log segments they cover.
kv::ServerOptions small_options() {
  kv::ServerOptions o;
  o.segment_bytes = 1024;
  o.snapshot_every = 20;
  return o;
}

// Puts k0..k{n-1} (client 1, one put per fsync) and returns their acknowledged versions.
template <class Server>
std::vector<kv::Version> put_keys(Server& server, int n) {
  REQUIRE(hello(server, 1).ok);
  std::vector<kv::Version> acked;
  for (int i = 0; i < n; ++i) {
    const std::string value = "value-" + std::to_string(i);
    const kv::Response r =
        put(server, 1, static_cast<std::uint64_t>(i + 1), "k" + std::to_string(i), value);
    REQUIRE(r.ok);
    acked.push_back({value, r.ts});
  }
  return acked;
}

using MemServer = kv::Server<pods::MemoryStorage>;

}  // namespace

TEST_CASE("durable_kv: a restart recovers every acknowledged put across snapshots and cleaning",
          "[threads]") {
  pods::MemoryStorage log(1), snapshots(2);
  std::vector<kv::Version> acked;
  {
    MemServer server(log, snapshots, small_options());
    acked = put_keys(server, 100);
    const kv::ServerStats stats = server_stats(server);
    CHECK(stats.snapshots == 5);
    CHECK(stats.segments_removed > 0);
  }
  MemServer server(log, snapshots, small_options());
  CHECK(server_stats(server).recovered_entries == 0);  // started from the snapshot at 100
  for (int i = 0; i < 100; ++i)
    CHECK(get(server, "k" + std::to_string(i)) == acked[static_cast<std::size_t>(i)]);
}

TEST_CASE("durable_kv: recovery refuses a log that starts after the newest snapshot left",
          "[threads]") {
  pods::MemoryStorage log(1), snapshots(2);
  {
    MemServer server(log, snapshots, small_options());
    put_keys(server, 100);
  }
  std::uint64_t log_first = 0;
  {
    // The newest snapshot record (index 100) is lost: a torn tail of the snapshot log cuts
    // it, and recovery would load the one at index 80.
    pods::SegmentedLog<pods::MemoryStorage> snapshot_log(snapshots);
    REQUIRE(snapshot_log.last_index() - snapshot_log.first_index() >= 1);
    const auto at = snapshot_log.locate(snapshot_log.last_index());
    REQUIRE(at);
    std::vector<std::byte> bytes = snapshots.contents(at->segment);
    bytes.resize(static_cast<std::size_t>(at->offset) + 5);  // 5 bytes of the record header
    snapshots.put(at->segment, bytes);
    log_first = pods::SegmentedLog<pods::MemoryStorage>(log).first_index();
  }
  REQUIRE(log_first > 81);  // the log segments with entries 81.. were deleted
  const std::string missing = "log entries 81 to " + std::to_string(log_first - 1) + " are missing";
  CHECK_THROWS_AS(MemServer(log, snapshots, small_options()), pods::CorruptionError);
  CHECK_THROWS_WITH(MemServer(log, snapshots, small_options()), Catch::Contains(missing));
}

TEST_CASE("durable_kv: recovery refuses a log that ends before the snapshot", "[threads]") {
  pods::MemoryStorage log(1), snapshots(2);
  {
    MemServer server(log, snapshots, small_options());
    put_keys(server, 100);  // the last snapshot covers 1..100
  }
  pods::SegmentedLog<pods::MemoryStorage>(log).truncate_after(95);
  CHECK_THROWS_AS(MemServer(log, snapshots, small_options()), pods::CorruptionError);
  CHECK_THROWS_WITH(MemServer(log, snapshots, small_options()),
                    Catch::Contains("log entries 96 to 100 are missing"));
}

namespace {

// The storage operations of both logs, in the order they happened.
struct Journal {
  std::mutex m;
  std::vector<std::pair<std::string, std::string>> events;  // (log, operation)
  void add(const std::string& log, const std::string& op) {
    std::lock_guard lock(m);
    events.emplace_back(log, op);
  }
};

// MemoryStorage that writes every change it makes into a Journal.
class JournaledStorage {
 public:
  JournaledStorage(pods::MemoryStorage storage, std::string label, std::shared_ptr<Journal> journal)
      : storage_(std::move(storage)), label_(std::move(label)), journal_(std::move(journal)) {}
  std::vector<std::uint64_t> list() const { return storage_.list(); }
  void create(std::uint64_t id) {
    journal_->add(label_, "create");
    storage_.create(id);
  }
  void append(std::uint64_t id, std::span<const std::byte> bytes) {
    journal_->add(label_, "append");
    storage_.append(id, bytes);
  }
  std::size_t read(std::uint64_t id, std::uint64_t offset, std::span<std::byte> out) const {
    return storage_.read(id, offset, out);
  }
  std::uint64_t size(std::uint64_t id) const { return storage_.size(id); }
  void sync(std::uint64_t id) {
    journal_->add(label_, "sync");
    storage_.sync(id);
  }
  void truncate(std::uint64_t id, std::uint64_t n) {
    journal_->add(label_, "truncate");
    storage_.truncate(id, n);
  }
  void remove(std::uint64_t id) {
    journal_->add(label_, "remove");
    storage_.remove(id);
  }
  std::string name(std::uint64_t id) const { return storage_.name(id); }

 private:
  pods::MemoryStorage storage_;
  std::string label_;
  std::shared_ptr<Journal> journal_;
};
static_assert(pods::SegmentStorage<JournaledStorage>);

}  // namespace

TEST_CASE("durable_kv: a log segment is deleted only after the snapshot covering it is synced",
          "[threads]") {
  auto journal = std::make_shared<Journal>();
  {
    kv::Server<JournaledStorage> server(JournaledStorage(pods::MemoryStorage(1), "log", journal),
                                        JournaledStorage(pods::MemoryStorage(2), "snap", journal),
                                        small_options());
    put_keys(server, 100);
  }
  std::lock_guard lock(journal->m);
  int removals = 0;
  bool snapshot_pending = false;  // bytes appended to the snapshot log and not yet synced
  int synced_appends = 0;         // syncs of the snapshot log after an append
  int created = 0;                // snapshot log segments (each starts with a synced header)
  for (const auto& [log, op] : journal->events) {
    if (log == "snap" && op == "create") ++created;
    if (log == "snap" && op == "append") snapshot_pending = true;
    if (log == "snap" && op == "sync" && snapshot_pending) {
      snapshot_pending = false;
      ++synced_appends;
    }
    if (log == "log" && op == "remove") {
      ++removals;
      CHECK_FALSE(snapshot_pending);
      CHECK(synced_appends - created >= 1);  // a snapshot record is synced
    }
  }
  CHECK(removals > 0);
}

TEST_CASE("durable_kv: after a failed fdatasync nothing is acknowledged, a retried put included",
          "[threads]") {
  using Faulty = pods::FaultyStorage<>;
  using FaultyServer = kv::Server<Faulty>;
  pods::MemoryStorage log_memory(1), snapshot_memory(2);
  Faulty log(log_memory), snapshots(snapshot_memory);
  log.drop_pages_on_failed_sync(true);  // the kernel keeps the pages readable, never writes them

  kv::Version a;
  {
    std::promise<std::string> failure;
    std::future<std::string> failed = failure.get_future();
    kv::ServerOptions options = small_options();
    options.on_failure = [&failure](const std::string& what) { failure.set_value(what); };
    FaultyServer server(log, snapshots, options);
    REQUIRE(hello(server, 1).ok);
    const kv::Response first = put(server, 1, 1, "a", "1");
    REQUIRE(first.ok);
    a = {"1", first.ts};

    log.fail_at(Faulty::Op::sync, 1);  // the fdatasync for put 2 fails with EIO
    const kv::Response second = put(server, 1, 2, "b", "2");
    CHECK_FALSE(second.ok);
    CHECK(second.error == pods::Errc::failed);
    CHECK_THAT(failed.get(), Catch::Contains("injected"));  // the owner is told what failed

    // The server answers nothing more: not the retry (its bytes may be gone), not a new put.
    const kv::Response retry = put(server, 1, 2, "b", "2");
    CHECK_FALSE(retry.ok);
    CHECK(retry.error == pods::Errc::failed);
    CHECK_FALSE(put(server, 1, 3, "c", "3").ok);
    kv::Request read;
    read.op = kv::Op::get;
    read.key = "a";
    CHECK_FALSE(call(server, read).ok);
  }

  // A new server in the same process on the same storage (the page cache still holds the
  // bytes of put 2). Whatever it acknowledges must survive the power cut that follows.
  std::optional<kv::Version> b;
  {
    FaultyServer server(log, snapshots, small_options());
    REQUIRE(hello(server, 1).ok);
    CHECK(get(server, "a") == a);
    const kv::Response retry = put(server, 1, 2, "b", "2");
    if (retry.ok) b = kv::Version{"2", retry.ts};
  }
  log.crash();  // the dropped pages read back as zeros
  snapshots.crash();
  FaultyServer server(log, snapshots, small_options());
  CHECK(get(server, "a") == a);
  if (b) CHECK(get(server, "b") == b);
}

// The durable key-value server under power loss: the same server logic as durable_kv, on
// MemoryStorage, in one process. At random points the power is cut (the server stops
// without another fsync, and the storage keeps its synced bytes plus a random prefix of the
// rest, as a disk that wrote part of them); the server restarts on what is left. At the end
// the clients' own record is checked: nothing acknowledged lost, nothing applied twice, no
// historical read changed.
#include "kv_server.hpp"
#include "workload.hpp"

#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace {

#if defined(__SANITIZE_THREAD__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

using Server = kv::Server<pods::MemoryStorage>;

// The server of the current life, and the power switch.
class Machine {
 public:
  Machine(std::uint64_t seed, kv::ServerOptions options)
      : log_(seed), snapshots_(seed + 1), options_(options) {
    boot();
  }

  // Cuts the power: the server stops where it is, the storage loses what was not synced
  // (keeping a random part of it), and a new server recovers from what is left.
  void power_cut() {
    std::shared_ptr<Server> old;
    {
      std::lock_guard lock(m_);
      old = std::move(server_);
    }
    old->halt();
    const kv::ServerStats stats = old->stats();  // the worker has stopped: safe to read
    snapshot_count_ += stats.snapshots;
    segments_removed_ += stats.segments_removed;
    old.reset();
    log_.crash(/*tear=*/true);
    snapshots_.crash(/*tear=*/true);
    ++cuts_;
    boot();
  }

  std::pair<std::shared_ptr<Server>, std::uint64_t> current() {
    std::lock_guard lock(m_);
    return {server_, generation_};
  }

  // Blocks until a server newer than `seen` runs; returns its generation (0: run over).
  std::uint64_t wait_newer(std::uint64_t seen) {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return finished_ || generation_ > seen; });
    return finished_ ? 0 : generation_;
  }

  void finish() {
    {
      std::lock_guard lock(m_);
      finished_ = true;
    }
    cv_.notify_all();
  }

  // Counts answered requests, so the test can cut the power after a random amount of work
  // without sleeping.
  void answered() {
    answered_.fetch_add(1);
    answered_.notify_all();
  }
  void wait_answered(std::uint64_t target) {
    for (auto seen = answered_.load(); seen < target; seen = answered_.load())
      answered_.wait(seen);
  }
  std::uint64_t answered_count() const { return answered_.load(); }
  int cuts() const { return cuts_; }
  std::uint64_t snapshots() const { return snapshot_count_; }
  std::uint64_t segments_removed() const { return segments_removed_; }

 private:
  void boot() {
    auto server = std::make_shared<Server>(log_, snapshots_, options_);
    {
      std::lock_guard lock(m_);
      server_ = std::move(server);
      ++generation_;
    }
    cv_.notify_all();
  }

  pods::MemoryStorage log_;
  pods::MemoryStorage snapshots_;
  kv::ServerOptions options_;
  std::mutex m_;
  std::condition_variable cv_;
  std::shared_ptr<Server> server_;
  std::uint64_t generation_ = 0;
  bool finished_ = false;
  std::atomic<std::uint64_t> answered_{0};
  int cuts_ = 0;
  std::uint64_t snapshot_count_ = 0;
  std::uint64_t segments_removed_ = 0;
};

// A client's connection to the server of the life it connected in; a power cut breaks it.
class InProcessConnection {
 public:
  explicit InProcessConnection(Machine& machine) : machine_(machine) {
    generation_ = machine.current().second;
  }

  std::optional<kv::Response> call(const kv::Request& request) {
    auto [server, generation] = machine_.current();
    if (!server || generation != generation_) return std::nullopt;
    std::promise<kv::Response> promise;
    auto future = promise.get_future();
    server->submit(request, [&promise](kv::Response r) { promise.set_value(std::move(r)); });
    kv::Response response = future.get();
    if (!response.ok && response.error == pods::Errc::closed) return std::nullopt;
    machine_.answered();
    return response;
  }

  bool reconnect() {
    generation_ = machine_.wait_newer(generation_);
    return generation_ != 0;
  }

 private:
  Machine& machine_;
  std::uint64_t generation_ = 0;
};
static_assert(kv::Connection<InProcessConnection>);

}  // namespace

TEST_CASE("durable_kv: power cuts at random points lose no acknowledged write", "[threads]") {
  const std::uint64_t seed = GENERATE(1, 2, 3);
  const int lives = kSanitized ? 10 : 60;
  const int clients = 3;

  kv::ServerOptions options;
  options.segment_bytes = 8 << 10;  // small segments and frequent snapshots, so recovery
  options.snapshot_every = 300;     // crosses snapshots, segment rolls and cleaning
  Machine machine(seed, options);

  kv::WorkloadOptions workload;
  workload.seed = seed;
  workload.keys = 16;
  workload.value_size = 24;
  std::atomic<bool> stop{false};
  std::vector<kv::ClientLedger> ledgers(clients);
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      InProcessConnection conn(machine);
      kv::run_client(static_cast<std::uint64_t>(c + 1), conn, workload, stop,
                     ledgers[static_cast<std::size_t>(c)]);
    });
  }

  std::mt19937_64 rng(seed);
  for (int life = 0; life < lives; ++life) {
    machine.wait_answered(machine.answered_count() + 20 + rng() % 300);
    machine.power_cut();
  }
  stop = true;
  for (auto& t : threads)
    t.join();
  machine.power_cut();
  machine.finish();

  InProcessConnection verifier(machine);
  // The verifier connects to the last life directly (finish() only stops reconnecting).
  const kv::Verdict verdict = kv::verify(verifier, ledgers, workload);
  INFO("seed " << seed);
  for (const std::string& d : verdict.details)
    INFO(d);
  CHECK(machine.cuts() == lives + 1);
  CHECK(verdict.acknowledged > static_cast<std::uint64_t>(lives));
  CHECK(verdict.past_reads > 0);
  CHECK(machine.snapshots() > 0);         // recovery started from snapshots,
  CHECK(machine.segments_removed() > 0);  // and the low-water mark deleted log segments
  CHECK(verdict.lost == 0);
  CHECK(verdict.duplicated == 0);
  CHECK(verdict.changed_reads == 0);
  CHECK(verdict.violations == 0);
}

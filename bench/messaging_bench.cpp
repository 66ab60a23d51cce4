// bench/messaging_bench.cpp — SingularUpdateQueue beside moodycamel, TBB and a mutex queue;
// RequestWaitingList, RequestBatch and StateWatch costs.
//
// Every queue scenario hands 8-byte requests (producer id << 32 | sequence) to one worker
// thread whose handler adds them to a sum and checks each producer's sequence; a broken
// order fails the scenario with SkipWithError.
#include <pods/messaging/idempotent_receiver.hpp>
#include <pods/messaging/request_batch.hpp>
#include <pods/messaging/request_pipeline.hpp>
#include <pods/messaging/request_waiting_list.hpp>
#include <pods/messaging/singular_update_queue.hpp>
#include <pods/messaging/state_watch.hpp>
#include <pods/policy/clock.hpp>

#include "bench_support.hpp"

#include <time.h>

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if PODS_HAVE_MOODYCAMEL
#include <concurrentqueue/blockingconcurrentqueue.h>
#endif
#if PODS_HAVE_TBB
#include <tbb/concurrent_queue.h>
#endif

namespace {

using namespace std::chrono_literals;

constexpr std::uint64_t kItemsPerProducer = 100'000;
constexpr std::uint64_t kStop = ~std::uint64_t{0};

// The worker side shared by every scenario: adds to a sum, checks each producer's order and
// signals when the expected number of requests has been handled.
struct Sink {
  std::array<std::uint64_t, 8> next{};
  std::uint64_t sum = 0;
  std::uint64_t handled = 0;
  std::uint64_t target = 0;
  std::atomic<bool> broken{false};
  std::atomic<std::uint64_t> done{0};

  std::uint64_t handle(std::uint64_t r) noexcept {
    const auto p = static_cast<std::size_t>(r >> 32);
    const std::uint64_t seq = r & 0xffffffffu;
    if (next[p] != seq) broken.store(true, std::memory_order_relaxed);
    next[p] = seq + 1;
    sum += r;
    if (++handled == target) {
      done.store(handled, std::memory_order_release);
      done.notify_all();
    }
    return sum;
  }
  // Producer side: announces the total the next round reaches (before any producer starts).
  void expect(std::uint64_t total) { target = handled + total; }
  void wait() const {
    for (std::uint64_t seen = done.load(std::memory_order_acquire); seen < target;
         seen = done.load(std::memory_order_acquire))
      done.wait(seen);
  }
};

std::uint64_t request(std::uint64_t producer, std::uint64_t seq) {
  return producer << 32 | seq;
}

// Returns the CPU time the calling thread has used, in ns.
std::uint64_t thread_cpu_ns() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return std::uint64_t(ts.tv_sec) * 1'000'000'000u + std::uint64_t(ts.tv_nsec);
}

// Long-lived producer threads (as a server's are): each round, every thread calls
// push(producer, seq) kItemsPerProducer times with its own increasing sequence. Each thread
// adds the CPU time its pushes took to cpu_ns() (unlike wall time, not inflated when the
// machine is busy and the thread waits for a CPU).
template <class Push>
class Producers {
 public:
  Producers(std::uint64_t count, Push push) : push_(std::move(push)) {
    for (std::uint64_t p = 0; p < count; ++p) {
      threads_.emplace_back([this, p] {
        std::uint64_t seq = 0;
        for (std::uint32_t seen = 0;;) {
          round_.wait(seen);
          seen = round_.load();
          if (quit_.load()) return;
          const std::uint64_t start = thread_cpu_ns();
          for (std::uint64_t i = 0; i < kItemsPerProducer; ++i)
            push_(p, seq++);
          cpu_ns_.fetch_add(thread_cpu_ns() - start);
          finished_.fetch_add(1);
          finished_.notify_all();
        }
      });
    }
  }
  ~Producers() {
    quit_.store(true);
    round_.fetch_add(1);
    round_.notify_all();
    for (auto& t : threads_)
      t.join();
  }
  // Runs one round and waits until every producer has pushed its share.
  void round() {
    const std::uint32_t target = finished_.load() + static_cast<std::uint32_t>(threads_.size());
    round_.fetch_add(1);
    round_.notify_all();
    for (std::uint32_t f = finished_.load(); f < target; f = finished_.load())
      finished_.wait(f);
  }
  // Returns the CPU time all producers spent pushing so far, in ns.
  std::uint64_t cpu_ns() const { return cpu_ns_.load(); }

 private:
  Push push_;
  std::atomic<std::uint64_t> cpu_ns_{0};
  std::atomic<std::uint32_t> round_{0};
  std::atomic<std::uint32_t> finished_{0};
  std::atomic<bool> quit_{false};
  std::vector<std::thread> threads_;
};

// Runs rounds of the producers, each followed by waiting for the worker to have handled
// them all; reports items per second.
template <class Push>
void run_producers(benchmark::State& state, Sink& sink, Push push) {
  const auto producers = static_cast<std::uint64_t>(state.range(0));
  Producers<Push> threads(producers, std::move(push));
  for (auto _ : state) {
    sink.expect(producers * kItemsPerProducer);
    threads.round();
    sink.wait();
  }
  if (sink.broken.load()) state.SkipWithError("per-producer order broken");
  const double items = double(state.iterations() * producers * kItemsPerProducer);
  state.SetItemsProcessed(static_cast<std::int64_t>(items));
  // CPU a producer spends per push: the producer-side cost, robust to a busy machine.
  state.counters["push_cpu_ns"] = double(threads.cpu_ns()) / items;
}

// SingularUpdateQueue, callback form: submit(request, done) with a done that ignores the sum.
void suq_callback(benchmark::State& state) {
  Sink sink;
  auto queue = pods::make_singular_update_queue<std::uint64_t>(
      [&](std::uint64_t r) { return sink.handle(r); });
  run_producers(state, sink, [&](std::uint64_t p, std::uint64_t s) {
    queue.submit(request(p, s), [](pods::Outcome<std::uint64_t>) noexcept {});
  });
}

// SingularUpdateQueue, future form: submit(request) and drop the future.
void suq_future(benchmark::State& state) {
  Sink sink;
  auto queue = pods::make_singular_update_queue<std::uint64_t>(
      [&](std::uint64_t r) { return sink.handle(r); });
  run_producers(state, sink,
                [&](std::uint64_t p, std::uint64_t s) { (void)queue.submit(request(p, s)); });
}

// SingularUpdateQueue over the MutexQueue policy, callback form.
void suq_mutex_callback(benchmark::State& state) {
  Sink sink;
  auto handler = [&](std::uint64_t r) { return sink.handle(r); };
  pods::SingularUpdateQueue<std::uint64_t, decltype(handler), pods::MutexQueue> queue(handler);
  run_producers(state, sink, [&](std::uint64_t p, std::uint64_t s) {
    queue.submit(request(p, s), [](pods::Outcome<std::uint64_t>) noexcept {});
  });
}

// Peer: std::mutex + condition_variable + deque, the worker swapping out all items per lock.
void mutex_deque(benchmark::State& state) {
  Sink sink;
  std::mutex m;
  std::condition_variable cv;
  std::deque<std::uint64_t> items;
  bool waiting = false;
  std::thread worker([&] {
    std::deque<std::uint64_t> batch;
    for (;;) {
      {
        std::unique_lock lock(m);
        waiting = true;
        cv.wait(lock, [&] { return !items.empty(); });
        waiting = false;
        batch.swap(items);
      }
      for (std::uint64_t r : batch) {
        if (r == kStop) return;
        sink.handle(r);
      }
      batch.clear();
    }
  });
  auto push = [&](std::uint64_t r) {
    bool wake;
    {
      std::lock_guard lock(m);
      items.push_back(r);
      wake = waiting;
    }
    if (wake) cv.notify_one();
  };
  run_producers(state, sink, [&](std::uint64_t p, std::uint64_t s) { push(request(p, s)); });
  push(kStop);
  worker.join();
}

#if PODS_HAVE_MOODYCAMEL
// Peer: moodycamel::BlockingConcurrentQueue, a producer token per thread, the worker draining
// with wait_dequeue_bulk.
void moodycamel_bulk(benchmark::State& state) {
  Sink sink;
  moodycamel::BlockingConcurrentQueue<std::uint64_t> queue;
  std::thread worker([&] {
    std::array<std::uint64_t, 256> batch;
    for (;;) {
      const std::size_t n = queue.wait_dequeue_bulk(batch.begin(), batch.size());
      for (std::size_t i = 0; i < n; ++i) {
        if (batch[i] == kStop) return;
        sink.handle(batch[i]);
      }
    }
  });
  {
    // One producer token per producer thread, made on its first push.
    run_producers(state, sink, [&](std::uint64_t p, std::uint64_t s) {
      thread_local std::unique_ptr<moodycamel::ProducerToken> token;
      if (!token) token = std::make_unique<moodycamel::ProducerToken>(queue);
      queue.enqueue(*token, request(p, s));
    });
  }
  queue.enqueue(kStop);
  worker.join();
}
#endif

#if PODS_HAVE_TBB
// Peer: tbb::concurrent_bounded_queue (unbounded capacity), the worker popping one at a time.
void tbb_bounded(benchmark::State& state) {
  Sink sink;
  tbb::concurrent_bounded_queue<std::uint64_t> queue;
  std::thread worker([&] {
    for (;;) {
      std::uint64_t r = 0;
      queue.pop(r);
      if (r == kStop) return;
      sink.handle(r);
    }
  });
  run_producers(state, sink, [&](std::uint64_t p, std::uint64_t s) { queue.push(request(p, s)); });
  queue.push(kStop);
  worker.join();
}
#endif

// Spins until `flag` is set, then clears it.
void spin_wait(std::atomic<bool>& flag) {
  while (!flag.load(std::memory_order_acquire))
    pods::detail::cpu_relax();
  flag.store(false, std::memory_order_relaxed);
}

// Round trip, callback form: submit, then spin until done has run on the worker.
void suq_round_trip_callback(benchmark::State& state) {
  auto queue =
      pods::make_singular_update_queue<std::uint64_t>([](std::uint64_t r) { return r + 1; });
  std::atomic<bool> answered{false};
  std::uint64_t i = 0;
  for (auto _ : state) {
    queue.submit(i++, [&answered](pods::Outcome<std::uint64_t>) noexcept {
      answered.store(true, std::memory_order_release);
    });
    spin_wait(answered);
  }
}

// Round trip, future form: submit(request).get().
void suq_round_trip_future(benchmark::State& state) {
  auto queue =
      pods::make_singular_update_queue<std::uint64_t>([](std::uint64_t r) { return r + 1; });
  std::uint64_t i = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(queue.submit(i++).get());
}

#if PODS_HAVE_MOODYCAMEL
struct Job {
  std::uint64_t request = 0;
  std::promise<std::uint64_t> promise;
  std::atomic<bool>* flag = nullptr;
};

// Peer round trip: moodycamel::BlockingConcurrentQueue of (request, promise), future.get().
void moodycamel_round_trip_future(benchmark::State& state) {
  moodycamel::BlockingConcurrentQueue<Job> queue;
  std::thread worker([&] {
    for (;;) {
      Job job;
      queue.wait_dequeue(job);
      if (job.request == kStop) return;
      job.promise.set_value(job.request + 1);
    }
  });
  std::uint64_t i = 0;
  for (auto _ : state) {
    Job job{i++, {}, nullptr};
    std::future<std::uint64_t> f = job.promise.get_future();
    queue.enqueue(std::move(job));
    benchmark::DoNotOptimize(f.get());
  }
  queue.enqueue(Job{kStop, {}, nullptr});
  worker.join();
}

// A moodycamel::BlockingConcurrentQueue with a worker blocked in wait_dequeue that raises a
// flag for every request: the peer of the spinning round trip and of the idle measurement.
struct MoodycamelEcho {
  moodycamel::BlockingConcurrentQueue<std::uint64_t> queue;
  std::atomic<bool> answered{false};
  std::thread worker{[this] {
    for (;;) {
      std::uint64_t r = 0;
      queue.wait_dequeue(r);
      if (r == kStop) return;
      answered.store(true, std::memory_order_release);
    }
  }};
  // Sends one request and spins until the worker has answered it.
  void round_trip(std::uint64_t r) {
    queue.enqueue(r);
    spin_wait(answered);
  }
  ~MoodycamelEcho() {
    queue.enqueue(kStop);
    worker.join();
  }
};

// Peer round trip: moodycamel::BlockingConcurrentQueue, the waiter spinning on a flag.
void moodycamel_round_trip_spin(benchmark::State& state) {
  MoodycamelEcho echo;
  std::uint64_t i = 0;
  for (auto _ : state)
    echo.round_trip(i++);
}
#endif

double process_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// Reports, as the iteration's (manual) time, the CPU the whole process used while the main
// thread slept one second beside an idle, warmed-up queue. idle_cpu_pct: percent of a core.
template <class Warm>
void measure_idle(benchmark::State& state, Warm warm) {
  for (auto _ : state) {
    warm();
    std::this_thread::sleep_for(100ms);  // let the worker finish its spin and park
    const double before = process_cpu_seconds();
    std::this_thread::sleep_for(1s);
    const double used = process_cpu_seconds() - before;
    state.SetIterationTime(used);
    state.counters["idle_cpu_pct"] = used * 100.0;
  }
}

// Idle CPU of a SingularUpdateQueue over one second.
void suq_idle(benchmark::State& state) {
  auto queue = pods::make_singular_update_queue<std::uint64_t>([](std::uint64_t r) { return r; });
  measure_idle(state, [&] { queue.submit(1).get(); });
}

#if PODS_HAVE_MOODYCAMEL
// Idle CPU of a moodycamel::BlockingConcurrentQueue worker blocked in wait_dequeue.
void moodycamel_idle(benchmark::State& state) {
  MoodycamelEcho echo;
  measure_idle(state, [&] { echo.round_trip(1); });
}
#endif

// RequestWaitingList: add a waiting request, then complete it (one thread).
void waiting_list_add_complete(benchmark::State& state) {
  pods::RequestWaitingList<std::uint64_t, std::uint64_t> list(1s);
  std::uint64_t sum = 0;
  std::uint64_t key = 0;
  for (auto _ : state) {
    list.add(key, [&sum](pods::Outcome<std::uint64_t> r) { sum += *r; });
    list.complete(key, key);
    ++key;
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}

// RequestWaitingList: expire 1000 timed-out requests (cost per expired request).
void waiting_list_expire(benchmark::State& state) {
  pods::ManualClock clock;
  pods::RequestWaitingList<std::uint64_t, std::uint64_t, pods::ManualClock> list(1s, clock);
  std::uint64_t timeouts = 0;
  std::uint64_t key = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int i = 0; i < 1000; ++i)
      list.add(key++, [&timeouts](pods::Outcome<std::uint64_t> r) { timeouts += !r; });
    clock.advance(1s);
    state.ResumeTiming();
    benchmark::DoNotOptimize(list.expire());
  }
  benchmark::DoNotOptimize(timeouts);
  state.SetItemsProcessed(state.iterations() * 1000);
}

// RequestBatch: add 64 8-byte requests (the batch becomes full), then take them.
void batch_add_take(benchmark::State& state) {
  pods::RequestBatch<std::uint64_t> batch;
  std::uint64_t i = 0;
  for (auto _ : state) {
    while (!batch.add(i++)) {
    }
    benchmark::DoNotOptimize(batch.take());
  }
  state.SetItemsProcessed(state.iterations() * 64);
}

// RequestPipeline: admit a request, take it for the channel, receive its response.
void pipeline_send_receive(benchmark::State& state) {
  pods::RequestPipeline<std::uint64_t, std::uint64_t> pipeline(64, 1s);
  std::uint64_t sum = 0;
  for (auto _ : state) {
    auto id = pipeline.try_send(1, [&sum](pods::Outcome<std::uint64_t> r) { sum += *r; });
    for (auto& [cid, request] : pipeline.take_outgoing())
      pipeline.receive(cid, request + cid);
    benchmark::DoNotOptimize(id);
  }
  benchmark::DoNotOptimize(sum);
  state.SetItemsProcessed(state.iterations());
}

// IdempotentReceiver: execute a new request (acknowledging the previous one), then retry it.
void idempotent_execute_and_retry(benchmark::State& state) {
  pods::IdempotentReceiver<std::uint64_t, std::uint64_t, std::uint64_t> receiver(60s, 64);
  const auto session = receiver.register_client(1);
  std::uint64_t seq = 0;
  for (auto _ : state) {
    ++seq;
    benchmark::DoNotOptimize(receiver.execute(session, seq, seq, [seq] { return seq; }));
    benchmark::DoNotOptimize(receiver.execute(session, seq, seq, [seq] { return seq + 1; }));
  }
  state.SetItemsProcessed(state.iterations());
}

// StateWatch: an event as the consistent core publishes it (a 100-byte value, as
// redis-benchmark -d 100 writes). Building it (two allocations) is part of each publish.
pods::WatchEvent watch_event(std::uint64_t revision, const std::string& key) {
  return {revision, pods::WatchEventKind::put, key, std::vector<std::byte>(100, std::byte{7})};
}

std::string numbered(const char* stem, std::int64_t i) {
  return stem + std::to_string(i);
}

// StateWatch: publish to one key while range(0) exact-key watches are open on distinct keys,
// one of them on the published key (its consumer takes every 1024 events, untimed).
void state_watch_publish_exact(benchmark::State& state) {
  pods::StateWatch watches;
  pods::WatchId mine = 0;
  for (std::int64_t i = 0; i < state.range(0); ++i)
    mine = *watches.watch({.key = numbered("key/", i)});
  const std::string key = numbered("key/", state.range(0) - 1);
  std::uint64_t r = 0;
  for (auto _ : state) {
    watches.publish(watch_event(++r, key));
    if (r % 1024 == 0) {
      state.PauseTiming();  // take's cost is measured on its own
      benchmark::DoNotOptimize(watches.take(mine));
      state.ResumeTiming();
    }
  }
  if (watches.closed(mine)) state.SkipWithError("the matching watch closed");
  state.SetItemsProcessed(state.iterations());
}

// StateWatch: publish while 100 prefix watches are open: range(0) == 1: on 100 distinct
// prefixes of one length, one matching; range(0) == 100: all on the published key's prefix
// (each event buffered 100 times; consumers take every 1024 events, untimed).
void state_watch_publish_prefix(benchmark::State& state) {
  pods::StateWatch watches;
  std::vector<pods::WatchId> ids;
  const bool all_match = state.range(0) == 100;
  for (std::int64_t i = 0; i < 100; ++i)
    ids.push_back(*watches.watch(
        {.key = all_match ? std::string("app/") : numbered("app", 10 + i) + "/", .prefix = true}));
  const std::string key = all_match ? "app/port" : "app42/port";  // short: no key allocation
  std::uint64_t r = 0;
  for (auto _ : state) {
    watches.publish(watch_event(++r, key));
    if (r % 1024 == 0) {
      state.PauseTiming();
      for (const auto id : ids)
        benchmark::DoNotOptimize(watches.take(id));
      state.ResumeTiming();
    }
  }
  for (const auto id : ids)
    if (watches.closed(id)) state.SkipWithError("a watch closed");
  state.SetItemsProcessed(state.iterations());
}

// StateWatch: take 1024 buffered events at once (cost per event). range(0) == 0: the history
// holds them too, so take copies each; 1: history_limit 1, so take moves them out.
void state_watch_take(benchmark::State& state) {
  const bool moves = state.range(0) == 1;
  pods::StateWatch watches({.history_limit = moves ? 1u : 65536u});
  const pods::WatchId id = *watches.watch({.key = "key"});
  std::uint64_t r = 0;
  for (auto _ : state) {
    state.PauseTiming();
    for (int i = 0; i < 1024; ++i)
      watches.publish(watch_event(++r, "key"));
    state.ResumeTiming();
    benchmark::DoNotOptimize(watches.take(id));
  }
  state.SetItemsProcessed(state.iterations() * 1024);
}

// StateWatch: open a watch resuming 1000 events back (the history holds 4000 events on 4
// keys; 250 match), take them and cancel it.
void state_watch_resume(benchmark::State& state) {
  pods::StateWatch watches;
  std::uint64_t r = 0;
  for (int i = 0; i < 4000; ++i)
    watches.publish(watch_event(++r, numbered("key/", i % 4)));
  for (auto _ : state) {
    const pods::WatchId id = *watches.watch({.key = "key/1", .from_revision = r - 999});
    benchmark::DoNotOptimize(watches.take(id));
    watches.cancel(id);
  }
  state.SetItemsProcessed(state.iterations());
}

const bool registered = [] {
  auto throughput = [](const char* name, void (*fn)(benchmark::State&)) {
    benchmark::RegisterBenchmark(name, fn)->Arg(1)->Arg(2)->UseRealTime()->MinTime(0.2);
  };
  throughput("throughput/suq_callback", suq_callback);
  throughput("throughput/suq_future", suq_future);
  throughput("throughput/suq_mutex_queue_callback", suq_mutex_callback);
  throughput("throughput/mutex_deque", mutex_deque);
#if PODS_HAVE_MOODYCAMEL
  throughput("throughput/moodycamel_bulk", moodycamel_bulk);
#else
  pods::bench::skip("moodycamel not installed (apt-get install libconcurrentqueue-dev)");
#endif
#if PODS_HAVE_TBB
  throughput("throughput/tbb_bounded", tbb_bounded);
#else
  pods::bench::skip("TBB not installed (apt-get install libtbb-dev)");
#endif
  benchmark::RegisterBenchmark("round_trip/suq_callback_spin", suq_round_trip_callback)
      ->UseRealTime();
  benchmark::RegisterBenchmark("round_trip/suq_future", suq_round_trip_future)->UseRealTime();
#if PODS_HAVE_MOODYCAMEL
  benchmark::RegisterBenchmark("round_trip/moodycamel_spin", moodycamel_round_trip_spin)
      ->UseRealTime();
  benchmark::RegisterBenchmark("round_trip/moodycamel_future", moodycamel_round_trip_future)
      ->UseRealTime();
#endif
  benchmark::RegisterBenchmark("idle/suq", suq_idle)->UseManualTime()->Iterations(1);
#if PODS_HAVE_MOODYCAMEL
  benchmark::RegisterBenchmark("idle/moodycamel", moodycamel_idle)->UseManualTime()->Iterations(1);
#endif
  benchmark::RegisterBenchmark("waiting_list/add_complete", waiting_list_add_complete);
  benchmark::RegisterBenchmark("waiting_list/expire_1000", waiting_list_expire);
  benchmark::RegisterBenchmark("batch/add64_take", batch_add_take);
  benchmark::RegisterBenchmark("pipeline/send_receive", pipeline_send_receive);
  benchmark::RegisterBenchmark("idempotent/execute_and_retry", idempotent_execute_and_retry);
  benchmark::RegisterBenchmark("state_watch/publish_exact_watches", state_watch_publish_exact)
      ->Arg(1)
      ->Arg(100)
      ->Arg(10'000);
  benchmark::RegisterBenchmark("state_watch/publish_100_prefix_watches_matching",
                               state_watch_publish_prefix)
      ->Arg(1)
      ->Arg(100);
  benchmark::RegisterBenchmark("state_watch/take_1024", state_watch_take)
      ->ArgName("moved")
      ->Arg(0)
      ->Arg(1);
  benchmark::RegisterBenchmark("state_watch/resume_1000_back", state_watch_resume);

  using pods::bench::compare;
  for (const char* p : {"1", "2"}) {
    const std::string suffix = std::string("/") + p + "/min_time:0.200/real_time";
    const std::string n = std::string(" (") + p + (p[0] == '1' ? " producer)" : " producers)");
    compare("throughput, callback vs moodycamel" + n, "throughput/suq_callback" + suffix,
            "throughput/moodycamel_bulk" + suffix, ">= 1.5x");
    compare("throughput, future vs moodycamel" + n, "throughput/suq_future" + suffix,
            "throughput/moodycamel_bulk" + suffix, "(informational)");
    compare("throughput, callback vs tbb bounded" + n, "throughput/suq_callback" + suffix,
            "throughput/tbb_bounded" + suffix, ">= 1.5x");
    compare("throughput, callback vs mutex+condvar+deque drain-all" + n,
            "throughput/suq_callback" + suffix, "throughput/mutex_deque" + suffix, ">= 1.5x");
    compare("throughput, MutexQueue policy vs mutex+condvar+deque" + n,
            "throughput/suq_mutex_queue_callback" + suffix, "throughput/mutex_deque" + suffix,
            "(baseline)");
  }
  // One producer must not be slower than two.
  compare("throughput, callback: 1 producer vs 2 producers",
          "throughput/suq_callback/1/min_time:0.200/real_time",
          "throughput/suq_callback/2/min_time:0.200/real_time", ">= 1.0x");
  compare("round trip, callback + spinning waiter vs moodycamel + spin",
          "round_trip/suq_callback_spin/real_time", "round_trip/moodycamel_spin/real_time",
          "ours < 1000 ns");
  compare("round trip, future vs moodycamel + promise/future", "round_trip/suq_future/real_time",
          "round_trip/moodycamel_future/real_time", ">= 1.0x");
  compare("idle CPU over 1 s (ns of CPU) vs moodycamel", "idle/suq/iterations:1/manual_time",
          "idle/moodycamel/iterations:1/manual_time", "ours < 10 ms (1% of a core)");
  return true;
}();

}  // namespace

PODS_BENCH_MAIN()

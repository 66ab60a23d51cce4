#include <pods/messaging/singular_update_queue.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#if defined(__unix__)
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>
#endif

#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define PODS_TEST_TSAN 1
#endif
#if __has_feature(address_sanitizer)
#define PODS_TEST_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define PODS_TEST_TSAN 1
#endif
#if defined(__SANITIZE_ADDRESS__)
#define PODS_TEST_ASAN 1
#endif
// The sanitizers bring their own operator new, so allocations are counted only without them.
#if !defined(PODS_TEST_TSAN) && !defined(PODS_TEST_ASAN)
#define PODS_TEST_COUNT_ALLOCATIONS 1
#endif

#ifdef PODS_TEST_COUNT_ALLOCATIONS
// Counts allocations made while `counting` is set, to test the allocation-free callback form.
namespace {
std::atomic<bool> counting{false};
std::atomic<std::size_t> allocations{0};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) allocations.fetch_add(1);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#endif

namespace {

#ifdef PODS_TEST_TSAN
constexpr int kPerProducer = 2000;
#else
constexpr int kPerProducer = 20000;
#endif

// The queue policies every behaviour is tested with.
struct Rings {
  template <class Request, class Handler>
  using queue = pods::SingularUpdateQueue<Request, Handler, pods::ProducerRingQueue>;
};
struct Mutex {
  template <class Request, class Handler>
  using queue = pods::SingularUpdateQueue<Request, Handler, pods::MutexQueue>;
};

using IntHandler = std::function<int(int)>;
using VoidHandler = std::function<void(int)>;

// Opens once; lets a handler hold the worker until the test is ready.
struct Gate {
  std::atomic<bool> open{false};
  void wait() const {
    while (!open.load(std::memory_order_acquire))
      open.wait(false, std::memory_order_acquire);
  }
  void release() {
    open.store(true, std::memory_order_release);
    open.notify_all();
  }
};

// Counts completions; lets a test wait for a number of them without sleeping.
struct Counter {
  std::atomic<int> n{0};
  void add() {
    n.fetch_add(1, std::memory_order_acq_rel);
    n.notify_all();
  }
  void wait_for(int target) const {
    for (int seen = n.load(std::memory_order_acquire); seen < target;
         seen = n.load(std::memory_order_acquire))
      n.wait(seen);
  }
};

}  // namespace

TEMPLATE_TEST_CASE("SingularUpdateQueue: the future form returns the handler's response",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  int sum = 0;
  typename TestType::template queue<int, IntHandler> queue([&sum](int x) { return sum += x; });
  std::future<int> a = queue.submit(5);
  std::future<int> b = queue.submit(7);
  CHECK(a.get() == 5);
  CHECK(b.get() == 12);
  STATIC_REQUIRE(std::is_same_v<decltype(queue.submit(1)), std::future<int>>);
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: a void handler gives std::future<void> and Outcome<void>",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  std::atomic<int> seen{0};
  typename TestType::template queue<int, VoidHandler> queue([&seen](int x) { seen += x; });
  STATIC_REQUIRE(std::is_same_v<decltype(queue.submit(1)), std::future<void>>);
  queue.submit(2).get();
  CHECK(seen.load() == 2);
  std::promise<bool> ok;
  queue.submit(3, [&](pods::Outcome<void> r) { ok.set_value(r.has_value()); });
  CHECK(ok.get_future().get());
  CHECK(seen.load() == 5);
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: the callback form calls done on the worker with the value",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  std::thread::id handler_thread;
  typename TestType::template queue<int, IntHandler> queue([&](int x) {
    handler_thread = std::this_thread::get_id();
    return x * 2;
  });
  std::promise<std::pair<int, std::thread::id>> got;
  queue.submit(21, [&](pods::Outcome<int> r) {
    got.set_value({r.value(), std::this_thread::get_id()});
  });
  auto [value, done_thread] = got.get_future().get();
  CHECK(value == 42);
  CHECK(done_thread == handler_thread);
  CHECK(done_thread != std::this_thread::get_id());
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: one thread runs the handler, one request at a time",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  std::atomic<int> active{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> runs{0};
  std::thread::id first;
  std::atomic<int> other_threads{0};
  typename TestType::template queue<int, VoidHandler> queue([&](int) {
    if (active.fetch_add(1) != 0) overlaps.fetch_add(1);
    if (runs.fetch_add(1) == 0) {
      first = std::this_thread::get_id();
    } else if (std::this_thread::get_id() != first) {
      other_threads.fetch_add(1);
    }
    active.fetch_sub(1);
  });
  std::vector<std::thread> producers;
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&] {
      for (int i = 0; i < 500; ++i)
        queue.submit(i, [](pods::Outcome<void>) {});
    });
  }
  for (auto& t : producers)
    t.join();
  queue.stop();
  CHECK(runs.load() == 2000);
  CHECK(overlaps.load() == 0);
  CHECK(other_threads.load() == 0);
}

namespace {
// Submits kPerProducer requests from each of `producers` threads, each carrying
// (producer << 32 | sequence), and checks the handler saw every producer's sequence in order.
template <class Policy>
void check_producer_order(int producers, bool future_form) {
  std::vector<std::int64_t> next(static_cast<std::size_t>(producers), 0);
  std::atomic<int> out_of_order{0};
  std::int64_t handled = 0;
  using Handler = std::function<std::int64_t(std::int64_t)>;
  typename Policy::template queue<std::int64_t, Handler> queue([&](std::int64_t r) {
    const auto p = static_cast<std::size_t>(r >> 32);
    const std::int64_t seq = r & 0xffffffff;
    if (next[p] != seq) out_of_order.fetch_add(1);
    next[p] = seq + 1;
    return ++handled;
  });
  std::latch start(producers);
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&, p] {
      start.arrive_and_wait();
      std::future<std::int64_t> last;
      for (std::int64_t i = 0; i < kPerProducer; ++i) {
        const std::int64_t r = (std::int64_t{p} << 32) | i;
        if (future_form) {
          last = queue.submit(r);
        } else {
          queue.submit(r, [](pods::Outcome<std::int64_t>) {});
        }
      }
      if (future_form) last.get();
    });
  }
  for (auto& t : threads)
    t.join();
  queue.stop();
  CHECK(out_of_order.load() == 0);
  CHECK(handled == std::int64_t{producers} * kPerProducer);
  for (auto n : next)
    CHECK(n == kPerProducer);
}
}  // namespace

TEMPLATE_TEST_CASE("SingularUpdateQueue: keeps each producer's order with 2 and 8 producers",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  SECTION("2 producers, callback form") {
    check_producer_order<TestType>(2, false);
  }
  SECTION("2 producers, future form") {
    check_producer_order<TestType>(2, true);
  }
  SECTION("8 producers, callback form") {
    check_producer_order<TestType>(8, false);
  }
  SECTION("8 producers, future form") {
    check_producer_order<TestType>(8, true);
  }
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: stop() finishes every accepted request, then joins",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  Gate gate;
  std::atomic<int> handled{0};
  Counter answered;
  typename TestType::template queue<int, VoidHandler> queue([&](int) {
    gate.wait();
    handled.fetch_add(1);
  });
  std::vector<std::future<void>> futures;
  for (int i = 0; i < 50; ++i) {
    futures.push_back(queue.submit(i));
    queue.submit(i, [&](pods::Outcome<void> r) {
      if (r) answered.add();
    });
  }
  std::thread stopper([&] { queue.stop(); });
  gate.release();
  stopper.join();
  CHECK(handled.load() == 100);
  CHECK(answered.n.load() == 50);
  for (auto& f : futures)
    CHECK_NOTHROW(f.get());
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: a handler exception reaches only that request",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  typename TestType::template queue<int, IntHandler> queue([](int x) {
    if (x < 0) throw std::runtime_error("negative request " + std::to_string(x));
    return x;
  });
  std::future<int> before = queue.submit(1);
  std::future<int> bad = queue.submit(-3);
  std::promise<pods::Outcome<int>> callback;
  queue.submit(-4, [&](pods::Outcome<int> r) { callback.set_value(r); });
  std::future<int> after = queue.submit(2);
  CHECK(before.get() == 1);
  // Keep the exception until the worker is joined: libstdc++'s exception_ptr reference count
  // is invisible to ThreadSanitizer, so the last reference must be dropped after a join.
  std::exception_ptr error;
  try {
    bad.get();
  } catch (...) {
    error = std::current_exception();
  }
  CHECK(callback.get_future().get() == pods::Errc::failed);
  CHECK(after.get() == 2);
  queue.stop();
  REQUIRE(error != nullptr);
  CHECK_THROWS_WITH(std::rethrow_exception(error), "negative request -3");
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: submitting after stop() is refused with closed",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  std::atomic<int> handled{0};
  typename TestType::template queue<int, IntHandler> queue([&](int x) {
    handled.fetch_add(1);
    return x;
  });
  CHECK(queue.submit(1).get() == 1);
  queue.stop();
  queue.stop();  // idempotent

  std::future<int> f = queue.submit(2);
  CHECK_THROWS_AS(f.get(), pods::ClosedError);

  std::thread::id done_thread;
  pods::Outcome<int> got = 0;
  queue.submit(3, [&](pods::Outcome<int> r) {
    done_thread = std::this_thread::get_id();
    got = r;
  });
  CHECK(got == pods::Errc::closed);
  CHECK(done_thread == std::this_thread::get_id());

  bool called = false;
  CHECK(queue.try_submit(4, [&](pods::Outcome<int>) { called = true; }) == pods::Errc::closed);
  CHECK_FALSE(called);
  auto t = queue.try_submit(5);
  REQUIRE_FALSE(t.has_value());
  CHECK(t.error() == pods::Errc::closed);
  CHECK(handled.load() == 1);
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: a bounded queue refuses try_submit and blocks submit",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  Gate gate;
  Counter started;
  std::atomic<int> handled{0};
  typename TestType::template queue<int, VoidHandler> queue(
      [&](int) {
        started.add();
        gate.wait();
        handled.fetch_add(1);
      },
      3);
  CHECK(queue.capacity() == 3);
  Counter answered;
  auto done = [&](pods::Outcome<void> r) {
    if (r) answered.add();
  };
  REQUIRE(queue.try_submit(0, done));
  started.wait_for(1);  // the worker holds request 0; it still counts against the capacity
  REQUIRE(queue.try_submit(1, done));
  auto f = queue.try_submit(2);
  REQUIRE(f.has_value());
  bool dropped_called = false;
  CHECK(queue.try_submit(3, [&](pods::Outcome<void>) { dropped_called = true; }) ==
        pods::Errc::full);
  auto refused = queue.try_submit(4);
  REQUIRE_FALSE(refused.has_value());
  CHECK(refused.error() == pods::Errc::full);
  CHECK_FALSE(dropped_called);

  // A blocking submit waits for room, then goes through.
  std::thread blocked([&] { queue.submit(5, done); });
  gate.release();
  blocked.join();
  answered.wait_for(3);
  f->get();
  queue.stop();
  CHECK(handled.load() == 4);
  CHECK_FALSE(dropped_called);
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: stop() wakes a producer blocked on a full queue",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  Gate gate;
  Counter started;
  typename TestType::template queue<int, VoidHandler> queue(
      [&](int) {
        started.add();
        gate.wait();
      },
      1);
  std::future<void> first = queue.submit(0);
  started.wait_for(1);
  std::promise<pods::Outcome<void>> second;
  std::thread blocked(
      [&] { queue.submit(1, [&](pods::Outcome<void> r) { second.set_value(r); }); });
  std::thread stopper([&] { queue.stop(); });
  gate.release();
  blocked.join();
  stopper.join();
  first.get();
  // Either accepted before the stop (and handled) or refused by it; answered exactly once.
  auto r = second.get_future().get();
  CHECK((r.has_value() || r == pods::Errc::closed));
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: stop() from the handler closes without deadlock",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  using Q = typename TestType::template queue<int, IntHandler>;
  std::unique_ptr<Q> queue;
  queue = std::make_unique<Q>([&](int x) {
    queue->stop();
    return x;
  });
  CHECK(queue->submit(9).get() == 9);
  CHECK_THROWS_AS(queue->submit(10).get(), pods::ClosedError);
  queue.reset();  // joins
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: move-only requests and responses",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  using Handler = std::function<std::unique_ptr<int>(std::unique_ptr<int>)>;
  typename TestType::template queue<std::unique_ptr<int>, Handler> queue(
      [](std::unique_ptr<int> p) {
        *p += 1;
        return p;
      });
  CHECK(*queue.submit(std::make_unique<int>(41)).get() == 42);
  std::promise<int> got;
  queue.submit(std::make_unique<int>(1),
               [&](pods::Outcome<std::unique_ptr<int>> r) { got.set_value(**r); });
  CHECK(got.get_future().get() == 2);
}

TEST_CASE("SingularUpdateQueue: a large done callback is stored on the heap and still called",
          "[singular_update_queue][threads]") {
  auto queue = pods::make_singular_update_queue<int>([](int x) { return x; });
  std::array<std::int64_t, 16> big{};
  big[15] = 7;
  std::promise<std::int64_t> got;
  queue.submit(3, [big, &got](pods::Outcome<int> r) { got.set_value(big[15] + *r); });
  CHECK(got.get_future().get() == 10);
}

TEST_CASE("SingularUpdateQueue: make_singular_update_queue returns the queue by value",
          "[singular_update_queue][threads]") {
  auto handler = [](int x) { return x + 1; };
  auto queue = pods::make_singular_update_queue<int>(handler);
  STATIC_REQUIRE(
      std::is_same_v<decltype(queue), pods::SingularUpdateQueue<int, decltype(handler)>>);
  STATIC_REQUIRE_FALSE(std::is_move_constructible_v<decltype(queue)>);
  CHECK(queue.submit(1).get() == 2);
  auto bounded = pods::make_singular_update_queue<int>(handler, 8);
  CHECK(bounded.capacity() == 8);
  CHECK(queue.capacity() == 0);
}

#ifdef PODS_TEST_COUNT_ALLOCATIONS
TEST_CASE("SingularUpdateQueue: the callback form allocates nothing per request once warm",
          "[singular_update_queue][threads]") {
  std::int64_t sum = 0;
  auto queue = pods::make_singular_update_queue<std::int64_t>([&sum](std::int64_t x) {
    sum += x;
    return sum;
  });
  Counter answered;
  auto done = [&answered](pods::Outcome<std::int64_t> r) {
    if (r) answered.add();
  };
  constexpr int kBurst = 1000;
  // Warm up: register this thread's ring and grow it to hold a whole burst, by holding the
  // worker in the handler of the first request while the rest of the burst queues up.
  Gate gate;
  queue.submit(0, [&](pods::Outcome<std::int64_t>) {
    gate.wait();
    answered.add();
  });
  for (int i = 1; i < 2 * kBurst; ++i)
    queue.submit(0, done);
  gate.release();
  answered.wait_for(2 * kBurst);
  allocations.store(0);
  counting.store(true);
  for (int i = 0; i < kBurst; ++i)
    queue.submit(i, done);
  answered.wait_for(3 * kBurst);
  counting.store(false);
  CHECK(allocations.load() == 0);
  queue.stop();
  CHECK(sum == kBurst * (kBurst - 1) / 2);
}
#endif

TEST_CASE("SingularUpdateQueue: the queue policy concept", "[singular_update_queue]") {
  struct Item {
    int v;
  };
  STATIC_REQUIRE(pods::MpscQueue<pods::ProducerRingQueue<Item>, Item>);
  STATIC_REQUIRE(pods::MpscQueue<pods::MutexQueue<Item>, Item>);
  STATIC_REQUIRE_FALSE(pods::MpscQueue<std::vector<Item>, Item>);
}

TEMPLATE_TEST_CASE(
    "SingularUpdateQueue: a done taking an exception_ptr gets the handler's exception",
    "[singular_update_queue][threads]", Rings, Mutex) {
  typename TestType::template queue<int, IntHandler> queue([](int x) {
    if (x < 0) throw std::runtime_error("negative request " + std::to_string(x));
    return x;
  });
  using Answer = std::pair<pods::Outcome<int>, std::exception_ptr>;
  std::promise<Answer> failed;
  std::promise<Answer> succeeded;
  queue.submit(-5, [&](pods::Outcome<int> r, std::exception_ptr e) {
    failed.set_value({r, std::move(e)});
  });
  queue.submit(6, [&](pods::Outcome<int> r, std::exception_ptr e) {
    succeeded.set_value({r, std::move(e)});
  });
  Answer bad = failed.get_future().get();
  Answer good = succeeded.get_future().get();
  queue.stop();  // see above: drop the exception only after the join
  CHECK(bad.first == pods::Errc::failed);
  REQUIRE(bad.second != nullptr);
  CHECK_THROWS_WITH(std::rethrow_exception(bad.second), "negative request -5");
  CHECK(good.first == pods::Outcome<int>(6));
  CHECK(good.second == nullptr);
  // After stop(): Errc::closed at once, on this thread, without an exception.
  std::optional<Answer> closed;
  queue.submit(7, [&](pods::Outcome<int> r, std::exception_ptr e) { closed.emplace(r, e); });
  REQUIRE(closed);
  CHECK(closed->first == pods::Errc::closed);
  CHECK(closed->second == nullptr);
  std::optional<Answer> refused;
  CHECK(queue.try_submit(8, [&](pods::Outcome<int> r, std::exception_ptr e) {
    refused.emplace(r, e);
  }) == pods::Errc::closed);
  CHECK_FALSE(refused);
}

#if defined(__unix__)
namespace {
// What a forked child did: whether it died of SIGABRT, and what it wrote to stderr.
struct ChildEnd {
  bool aborted = false;
  int status = 0;
  std::string stderr_text;
};

// Runs `body` in a forked child whose stderr is captured; a child still running after 20 s
// is ended by SIGALRM (a hang fails the test instead of hanging it).
template <class Body>
ChildEnd run_in_child(Body body) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    ::dup2(fds[1], 2);
    ::close(fds[1]);
    const int devnull = ::open("/dev/null", O_WRONLY);
    if (devnull >= 0) ::dup2(devnull, 1);
    std::signal(SIGABRT, SIG_DFL);  // not the test framework's handler
    ::alarm(20);
    body();
    ::_exit(0);
  }
  ::close(fds[1]);
  ChildEnd end;
  char buffer[512];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;)
    end.stderr_text.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  REQUIRE(::waitpid(pid, &end.status, 0) == pid);
  end.aborted = WIFSIGNALED(end.status) && WTERMSIG(end.status) == SIGABRT;
  return end;
}

// Blocks the calling thread of a child until the child ends.
[[noreturn, maybe_unused]] void wait_forever() {
  for (;;)
    ::pause();
}
}  // namespace

// The three misuses fork a child that starts the worker thread; under ThreadSanitizer a
// child of a process with threads is not supported, so the sanitizer build skips them.
#ifndef PODS_TEST_TSAN
TEMPLATE_TEST_CASE(
    "SingularUpdateQueue: destroying the queue from its handler aborts with a message",
    "[singular_update_queue][threads][death]", Rings, Mutex) {
  using Q = typename TestType::template queue<int, IntHandler>;
  const ChildEnd end = run_in_child([] {
    Q* queue = nullptr;
    queue = new Q([&queue](int x) {
      delete queue;
      return x;
    });
    queue->submit(1, [](pods::Outcome<int>) {});
    wait_forever();
  });
  CHECK(end.aborted);
  CHECK_THAT(end.stderr_text, Catch::Contains("SingularUpdateQueue misuse") &&
                                  Catch::Contains("destroyed from its own worker"));
}

TEMPLATE_TEST_CASE("SingularUpdateQueue: submit().get() from its own handler aborts with a message",
                   "[singular_update_queue][threads][death]", Rings, Mutex) {
  using Q = typename TestType::template queue<int, IntHandler>;
  const ChildEnd end = run_in_child([] {
    std::unique_ptr<Q> queue;
    queue = std::make_unique<Q>([&queue](int x) { return x > 0 ? queue->submit(-x).get() : x; });
    queue->submit(1, [](pods::Outcome<int>) {});
    wait_forever();
  });
  CHECK(end.aborted);
  CHECK_THAT(end.stderr_text, Catch::Contains("SingularUpdateQueue misuse") &&
                                  Catch::Contains("std::future was called from the queue's own "
                                                  "worker"));
}

TEMPLATE_TEST_CASE(
    "SingularUpdateQueue: a blocking submit on its own full queue aborts with a message",
    "[singular_update_queue][threads][death]", Rings, Mutex) {
  using Q = typename TestType::template queue<int, IntHandler>;
  const ChildEnd end = run_in_child([] {
    std::unique_ptr<Q> queue;
    queue = std::make_unique<Q>(
        [&queue](int x) {
          // The request being handled still holds the only unit of capacity.
          if (x > 0) queue->submit(-x, [](pods::Outcome<int>) {});
          return x;
        },
        1);
    queue->submit(1, [](pods::Outcome<int>) {});
    wait_forever();
  });
  CHECK(end.aborted);
  CHECK_THAT(end.stderr_text, Catch::Contains("SingularUpdateQueue misuse") &&
                                  Catch::Contains("found the queue full"));
}
#endif

TEMPLATE_TEST_CASE("SingularUpdateQueue: the callback forms work from the handler itself",
                   "[singular_update_queue][threads]", Rings, Mutex) {
  using Q = typename TestType::template queue<int, IntHandler>;
  std::unique_ptr<Q> queue;
  std::vector<int> seen;  // touched only by the worker until the join
  Counter answered;
  queue = std::make_unique<Q>(
      [&](int x) {
        seen.push_back(x);
        if (x == 1) {
          // Unbounded: a blocking submit from the worker never waits.
          queue->submit(2, [&](pods::Outcome<int>) { answered.add(); });
        }
        return x;
      },
      0);
  queue->submit(1, [&](pods::Outcome<int>) { answered.add(); });
  answered.wait_for(2);
  queue.reset();
  CHECK(seen == std::vector<int>{1, 2});
}
#endif

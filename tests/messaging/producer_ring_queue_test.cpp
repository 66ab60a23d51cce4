#include <pods/messaging/producer_ring_queue.hpp>
#include <pods/messaging/singular_update_queue.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__unix__)
#include <sys/wait.h>
#include <unistd.h>
#endif

namespace {
// An item whose move throws while `fail_moves` is set (the push moves it into the ring).
struct Fragile {
  static inline bool fail_moves = false;
  int v = 0;
  explicit Fragile(int value) : v(value) {}
  Fragile(Fragile&& other) : v(other.v) {
    if (fail_moves) throw std::runtime_error("move failed");
  }
  Fragile& operator=(Fragile&&) = default;
};

template <class T, class Q>
std::vector<int> drain_values(Q& q) {
  std::vector<int> got;
  q.consume([&](T& x) noexcept { got.push_back(x.v); });
  return got;
}
}  // namespace

TEST_CASE("ProducerRingQueue: a push that throws gives its capacity unit back",
          "[producer_ring_queue]") {
  pods::ProducerRingQueue<Fragile> q(1);
  Fragile::fail_moves = true;
  Fragile first(1);
  CHECK_THROWS_WITH(q.push(std::move(first), false), "move failed");
  CHECK_THROWS_WITH(q.push(std::move(first), true), "move failed");  // not blocked: room is back
  Fragile::fail_moves = false;
  Fragile second(2);
  REQUIRE(q.push(std::move(second), false));  // before the fix: Errc::full for good
  Fragile third(3);
  CHECK(q.push(std::move(third), false) == pods::Errc::full);
  CHECK(drain_values<Fragile>(q) == std::vector<int>{2});
  Fragile fourth(4);
  CHECK(q.push(std::move(fourth), false));
  CHECK(drain_values<Fragile>(q) == std::vector<int>{4});
}

namespace {
// A thread_local constructed on a thread before the thread's first push (so destroyed after
// the queue's per-thread ring record) that pushes from its destructor, as a logger or a
// metrics buffer flushing at thread exit does.
struct FlushAtExit {
  pods::ProducerRingQueue<std::uint64_t>* queue;
  std::uint64_t first;
  FlushAtExit(pods::ProducerRingQueue<std::uint64_t>* q, std::uint64_t f) : queue(q), first(f) {}
  ~FlushAtExit() {
    if (queue == nullptr) return;
    for (std::uint64_t i = 0; i < 3; ++i) {
      std::uint64_t v = first + i;
      if (!queue->push(std::move(v), true)) std::abort();
    }
  }
};
}  // namespace

TEST_CASE(
    "ProducerRingQueue: a push from a thread_local destructor after the thread's ring "
    "record died",
    "[producer_ring_queue][threads]") {
  pods::ProducerRingQueue<std::uint64_t> q(0);
  std::vector<std::uint64_t> got;
  // Several threads, one after another and two at once, so the late pushes also race.
  for (std::uint64_t wave = 0; wave < 3; ++wave) {
    std::vector<std::thread> threads;
    for (std::uint64_t t = 0; t < 2; ++t) {
      const std::uint64_t base = (wave * 2 + t) << 32;
      threads.emplace_back([&q, base] {
        thread_local FlushAtExit flush_at_exit(&q, base + 3);  // before the ring record
        for (std::uint64_t i = 0; i < 3; ++i) {
          std::uint64_t v = base + i;
          if (!q.push(std::move(v), true)) std::abort();
        }
      });  // at exit: the ring record is destroyed, then flush_at_exit pushes 3 more
    }
    for (auto& t : threads)
      t.join();
  }
  q.close();  // every push is done: consume until closed and drained
  while (q.consume([&](std::uint64_t& v) noexcept { got.push_back(v); })) {
  }
  CHECK(got.size() == 36);
  // Every item once, each thread's six in its order.
  std::vector<std::uint64_t> next(6, 0);
  for (std::uint64_t v : got) {
    const auto thread = static_cast<std::size_t>(v >> 32);
    CHECK((v & 0xffffffffu) == next[thread]);
    next[thread] = (v & 0xffffffffu) + 1;
  }
  CHECK(next == std::vector<std::uint64_t>(6, 6));
}

#if defined(__unix__)
TEST_CASE(
    "ProducerRingQueue: a static destructor on the main thread submits to a longer-lived "
    "static queue",
    "[producer_ring_queue][threads]") {
  // Runs in a child process, because it needs the program's exit: the main thread's
  // thread_locals (its ring record) are destroyed before the static objects.
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(fds[0]);
    static const int out = fds[1];
    using Handler = std::function<int(int)>;
    using Queue = pods::SingularUpdateQueue<int, Handler>;
    auto write_digit = [](int x) {
      const char c = static_cast<char>('0' + x);
      if (::write(out, &c, 1) != 1) std::abort();
      return x;
    };
    static Queue queue(write_digit);  // constructed first: destroyed last
    struct SubmitAtExit {
      ~SubmitAtExit() {
        queue.submit(2, [](pods::Outcome<int>) {});
      }
    };
    static SubmitAtExit late;
    (void)late;
    queue.submit(1).get();  // the main thread's ring record now exists
    std::exit(0);           // destroys the record, then `late` (which submits), then `queue`
  }
  ::close(fds[1]);
  std::string written;
  char buffer[16];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;)
    written.append(buffer, static_cast<std::size_t>(n));
  ::close(fds[0]);
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(written == "12");
}
#endif

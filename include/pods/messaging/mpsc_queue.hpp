// pods/messaging/mpsc_queue.hpp — the MpscQueue policy, and MutexQueue, its simplest model
//
// Problem:       A SingularUpdateQueue hands requests from many producer threads to one
//                worker. How it does so (a lock and a deque, per-producer lock-free rings, a
//                linked list) decides its speed, but not its meaning; the worker's logic should
//                not be written twice to try another queue.
// Solution:      The hand-over is a policy: a multi-producer single-consumer queue with
//                `push(item, block)`, `consume(f)` and `close()`. MutexQueue is the textbook
//                model (a mutex, two condition variables and a deque, the consumer swapping
//                the whole deque out per lock); it is the baseline the benchmarks compare
//                against and the proof that the policy is one. ProducerRingQueue
//                (<pods/messaging/producer_ring_queue.hpp>) is the fast default.
// Guarantees:    MutexQueue keeps one total order (the order pushes took the lock), so also
//                each producer's order; every accepted item is consumed exactly once, even
//                after close(); capacity (when non-zero) bounds the accepted items whose
//                consume(f) call has not finished.
// Not provided:  Fairness between blocked producers; priorities.
// Thread safety: thread-safe for push and close from any thread; consume from one thread only.
// Errors:        push returns Errc::full (bounded, not blocking) or Errc::closed (after close),
//                leaving the item untouched. Allocation failure throws std::bad_alloc.
// Cost:          push: one lock, one deque append (amortised allocation), a notify when the
//                consumer waits. consume: one lock per batch, however many items.
// Example:
//   pods::MutexQueue<int> q(/*capacity=*/0);
//   int v = 7;
//   (void)q.push(std::move(v), /*block=*/true);
//   q.close();
//   while (q.consume([](int& x) noexcept { std::printf("%d\n", x); })) {}
#pragma once

#include <pods/policy/errors.hpp>

#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <utility>

namespace pods {

namespace detail {
// The consumer callable the MpscQueue concept is checked with.
template <class T>
struct ConsumeArchetype {
  void operator()(T&) const noexcept {}
};
}  // namespace detail

// An MpscQueue<Q, T> moves items of type T from any number of producer threads to one
// consumer thread. Semantic requirements the compiler cannot check:
//   - Q(capacity): capacity 0 is unbounded; otherwise at most `capacity` items are accepted
//     and not yet consumed (an item counts until the consume(f) call that consumed it returns).
//   - push(std::move(item), block): thread-safe. Accepts the item and returns success; when
//     bounded and full, blocks until there is room if `block`, else returns Errc::full; after
//     close() returns Errc::closed. A refused item is left as it was (not moved from).
//   - consume(f): called from one thread at a time. Waits until an item is available or the
//     queue is closed, then calls f(T&) for the items available, destroying each after f
//     returns; f must not throw. Each producer's items arrive in its push order. Returns
//     false only when the queue is closed and every accepted item has been consumed.
//   - close(): thread-safe, idempotent. Refuses every later push, wakes a waiting consumer
//     and blocked producers; items already accepted are still consumed.
//   - A push that returned success happens-before the f(item) call that consumes it.
// clang-format off
template <class Q, class T>
concept MpscQueue = std::destructible<Q> && std::constructible_from<Q, std::size_t> &&
  requires(Q& q, const Q& cq, T&& item, bool block, detail::ConsumeArchetype<T>& f) {
    { q.push(std::move(item), block) } -> std::same_as<Outcome<void>>;
    { q.consume(f) } -> std::same_as<bool>;
    q.close();
    { cq.capacity() } -> std::same_as<std::size_t>;
  };
// clang-format on

// MutexQueue<T>: the mutex + condition variable + deque model of MpscQueue.
template <class T>
class MutexQueue {
 public:
  // Creates an empty queue; `capacity` 0 means unbounded. Allocates nothing yet.
  explicit MutexQueue(std::size_t capacity = 0) : capacity_(capacity) {}
  MutexQueue(const MutexQueue&) = delete;
  MutexQueue& operator=(const MutexQueue&) = delete;

  // Appends `item` (moving from it only when accepted). Blocks while full when `block`;
  // returns Errc::full (not blocking) or Errc::closed. May allocate (deque growth).
  Outcome<void> push(T&& item, bool block) {
    {
      std::unique_lock lock(mutex_);
      if (capacity_ != 0) {
        if (!block && !closed_ && outstanding_ >= capacity_) return Errc::full;
        not_full_.wait(lock, [&] { return closed_ || outstanding_ < capacity_; });
      }
      if (closed_) return Errc::closed;
      items_.push_back(std::move(item));
      ++outstanding_;
      if (!consumer_waiting_) return {};
    }
    not_empty_.notify_one();
    return {};
  }

  // Waits for items or close, then consumes every item queued under one lock. Returns false
  // when closed and drained. `f` must not throw.
  template <class F>
  bool consume(F&& f) {
    {
      std::unique_lock lock(mutex_);
      consumer_waiting_ = true;
      not_empty_.wait(lock, [&] { return closed_ || !items_.empty(); });
      consumer_waiting_ = false;
      if (items_.empty()) return false;  // closed and drained
      batch_.swap(items_);
    }
    const std::size_t n = batch_.size();
    for (T& item : batch_)
      f(item);
    batch_.clear();
    if (capacity_ != 0) {
      {
        std::lock_guard lock(mutex_);
        outstanding_ -= n;
      }
      not_full_.notify_all();
    }
    return true;
  }

  // Refuses every later push and wakes everyone waiting. Idempotent.
  void close() {
    {
      std::lock_guard lock(mutex_);
      closed_ = true;
    }
    not_empty_.notify_all();
    not_full_.notify_all();
  }

  // Returns the capacity given at construction (0: unbounded).
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  std::mutex mutex_;
  std::condition_variable not_empty_;
  std::condition_variable not_full_;
  std::deque<T> items_;
  std::deque<T> batch_;  // consumer-only: the batch being consumed, kept to reuse its blocks
  std::size_t outstanding_ = 0;
  std::size_t capacity_;
  bool closed_ = false;
  bool consumer_waiting_ = false;
};
static_assert(MpscQueue<MutexQueue<int>, int>);

}  // namespace pods

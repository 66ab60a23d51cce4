// pods/policy/threading.hpp — the Threading policy
//
// Problem:       A block used from one thread should not pay for atomics and locks, and a
//                block shared between threads must have them; writing each block twice is
//                how the two versions drift apart.
// Solution:      A Threading policy names the synchronisation primitives a block uses:
//                `atomic<T>` and `mutex`. ThreadSafe maps them to std::atomic and AtomicMutex
//                (a lock in one 32-bit atomic word that sleeps in the kernel when contended);
//                SingleThreaded maps them to a plain value with the same member functions
//                and to a lock that does nothing, so one implementation serves both.
// Guarantees:    Code written against `Threading::atomic<T>` compiles unchanged with both
//                models; with SingleThreaded every operation is a plain load or store.
//                AtomicMutex is a Lockable (lock, try_lock, unlock) with acquire/release
//                semantics, usable with ScopedLock or std::lock_guard.
// Not provided:  SingleThreaded gives no protection at all: a block built on it is
//                thread-compatible (one thread at a time, or external locking). AtomicMutex
//                is not a std::mutex: std::condition_variable does not take it (use
//                std::condition_variable_any), and it is neither fair nor recursive. This
//                header does not include <mutex>, so a block that only needs atomics does
//                not pay for compiling it.
// Thread safety: ThreadSafe's types are thread-safe; SingleThreaded's are thread-compatible.
// Errors:        none; nothing here throws.
// Cost:          ThreadSafe: std::atomic; an uncontended lock()/unlock() is one
//                compare-exchange and one exchange, a contended one a futex wait and wake.
//                SingleThreaded: zero.
// Example scope: namespace
// Example:
//   template <pods::Threading T = pods::ThreadSafe> class Counter {
//     typename T::template atomic<std::uint64_t> n_{0};
//    public:
//     std::uint64_t next() noexcept { return n_.fetch_add(1, std::memory_order_relaxed) + 1; }
//   };
#pragma once

#include <atomic>
#include <concepts>
#include <cstdint>

namespace pods {

namespace detail {

// plain_atomic<T>: std::atomic's member functions over a plain T, for single-threaded use.
// Memory orders are accepted and ignored.
template <class T>
class plain_atomic {
 public:
  constexpr plain_atomic() noexcept = default;
  constexpr plain_atomic(T value) noexcept : value_(value) {}  // NOLINT: mirrors std::atomic
  plain_atomic(const plain_atomic&) = delete;
  plain_atomic& operator=(const plain_atomic&) = delete;

  static constexpr bool is_always_lock_free = true;

  T load(std::memory_order = std::memory_order_seq_cst) const noexcept { return value_; }
  void store(T value, std::memory_order = std::memory_order_seq_cst) noexcept { value_ = value; }
  T exchange(T value, std::memory_order = std::memory_order_seq_cst) noexcept {
    T old = value_;
    value_ = value;
    return old;
  }
  bool compare_exchange_weak(T& expected, T desired, std::memory_order = std::memory_order_seq_cst,
                             std::memory_order = std::memory_order_seq_cst) noexcept {
    return compare_exchange_strong(expected, desired);
  }
  bool compare_exchange_strong(T& expected, T desired,
                               std::memory_order = std::memory_order_seq_cst,
                               std::memory_order = std::memory_order_seq_cst) noexcept {
    if (value_ == expected) {
      value_ = desired;
      return true;
    }
    expected = value_;
    return false;
  }
  T fetch_add(T arg,
              std::memory_order = std::memory_order_seq_cst) noexcept requires std::integral<T> {
    T old = value_;
    value_ = static_cast<T>(value_ + arg);
    return old;
  }
  T fetch_sub(T arg,
              std::memory_order = std::memory_order_seq_cst) noexcept requires std::integral<T> {
    T old = value_;
    value_ = static_cast<T>(value_ - arg);
    return old;
  }
  operator T() const noexcept { return value_; }  // NOLINT: mirrors std::atomic

 private:
  T value_{};
};

}  // namespace detail

// AtomicMutex: the ThreadSafe model of a mutex. One 32-bit word: 0 free, 1 held, 2 held with
// (possibly) a waiter. A contended lock() marks the word 2 and waits on it (a futex on
// Linux); unlock() wakes one waiter only when the word says there may be one.
class AtomicMutex {
 public:
  AtomicMutex() noexcept = default;
  AtomicMutex(const AtomicMutex&) = delete;
  AtomicMutex& operator=(const AtomicMutex&) = delete;

  // Blocks until the lock is held by the caller (acquire). Never throws.
  void lock() noexcept {
    std::uint32_t seen = 0;
    if (state_.compare_exchange_strong(seen, 1, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return;
    }
    if (seen != 2) seen = state_.exchange(2, std::memory_order_acquire);
    while (seen != 0) {
      state_.wait(2, std::memory_order_relaxed);
      seen = state_.exchange(2, std::memory_order_acquire);
    }
  }

  // Takes the lock when it is free and returns true; returns false at once otherwise.
  bool try_lock() noexcept {
    std::uint32_t seen = 0;
    return state_.compare_exchange_strong(seen, 1, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }

  // Releases the lock held by the caller (release) and wakes one waiter if there may be one.
  void unlock() noexcept {
    if (state_.exchange(0, std::memory_order_release) == 2) state_.notify_one();
  }

 private:
  std::atomic<std::uint32_t> state_{0};
};

// ScopedLock: holds `m` locked for its lifetime (std::lock_guard without <mutex>).
template <class Mutex>
class ScopedLock {
 public:
  explicit ScopedLock(Mutex& m) noexcept(noexcept(m.lock())) : m_(m) { m_.lock(); }
  ~ScopedLock() { m_.unlock(); }
  ScopedLock(const ScopedLock&) = delete;
  ScopedLock& operator=(const ScopedLock&) = delete;

 private:
  Mutex& m_;
};

// A lock that does nothing: the SingleThreaded model of a mutex.
struct NullMutex {
  void lock() noexcept {}
  bool try_lock() noexcept { return true; }
  void unlock() noexcept {}
};

// A Threading policy names `atomic<T>` (std::atomic's interface) and `mutex` (Lockable), and
// says through `is_thread_safe` whether they synchronise.
// clang-format off
template <class T>
concept Threading = requires {
  { T::is_thread_safe } -> std::convertible_to<bool>;
  typename T::mutex;
  typename T::template atomic<std::uint64_t>;
} && requires(typename T::mutex& m, typename T::template atomic<std::uint64_t>& a, std::uint64_t v) {
  m.lock();
  m.unlock();
  { m.try_lock() } -> std::convertible_to<bool>;
  { a.load(std::memory_order_acquire) } -> std::same_as<std::uint64_t>;
  a.store(v, std::memory_order_release);
  { a.fetch_add(v, std::memory_order_relaxed) } -> std::same_as<std::uint64_t>;
  { a.compare_exchange_weak(v, v, std::memory_order_acq_rel, std::memory_order_relaxed) } -> std::same_as<bool>;
};
// clang-format on

// ThreadSafe: the default. std::atomic and AtomicMutex.
struct ThreadSafe {
  static constexpr bool is_thread_safe = true;
  template <class T>
  using atomic = std::atomic<T>;
  using mutex = AtomicMutex;
};
static_assert(Threading<ThreadSafe>);

// SingleThreaded: plain values and a no-op lock, for a block confined to one thread (and the
// deterministic simulator).
struct SingleThreaded {
  static constexpr bool is_thread_safe = false;
  template <class T>
  using atomic = detail::plain_atomic<T>;
  using mutex = NullMutex;
};
static_assert(Threading<SingleThreaded>);

}  // namespace pods

// pods/messaging/producer_ring_queue.hpp — ProducerRingQueue, the default MpscQueue
//
// Problem:       A queue shared by many producers and one consumer usually serialises the
//                producers on one hot word (a lock, a list tail, a semaphore count); every
//                push then pays a contended read-modify-write, and a consumer that sleeps
//                makes every push a system call.
// Solution:      Each producer thread gets its own single-producer ring for each queue it
//                pushes to (found through a thread-local cache keyed by the queue's unique
//                id). A push writes the item into the producer's ring and publishes it with
//                one release store of the ring's own tail word; no other producer touches
//                that word. The consumer keeps a list of the rings and
//                drains every ring it finds non-empty, as many items as each holds. When
//                all are empty it spins briefly (pause instructions, and a yield of the CPU
//                every 32 turns, a few tens of microseconds in all), then parks on a futex-backed
//                std::atomic wait; a producer issues a notify only when it sees the consumer's
//                parked flag set, so the push path has no system call while the consumer is awake,
//                and no locked instruction at all (see the memory-ordering contract). A ring is a
//                circle of segments: when the producer reaches the end of a segment it reuses the
//                next one if the consumer has finished it, or inserts a new one twice as large (up
//                to 4096 items), so a warm ring never allocates.
// Guarantees:    Each producer's items are consumed in its push order. Every accepted item
//                is consumed exactly once, including the items accepted before close().
//                A push allocates nothing once its ring has grown to its working size.
//                An idle consumer is parked (no CPU) after its short spin.
// Not provided:  One total order across producers that respects causality: if thread A
//                pushes x and then tells thread B, which pushes y, the consumer may take y
//                before x (they are in different rings). Fairness between producers beyond
//                "every non-empty ring is drained on every pass".
// Memory-ordering contract:
//                A ring's tail word counts the items published; only its producer writes
//                it. The producer constructs the item in its slot, then stores tail = n + 1
//                with release; the consumer loads tail with acquire and reads the slots
//                below it, so a slot's contents happen-before its consumption. The consumer
//                stores its head count with release after destroying the items below it;
//                the producer loads head with acquire before reusing a segment, so it never
//                overwrites a live slot. A segment's `next` link is stored (release) before
//                any item in the next segment is published, so the consumer, which follows
//                the link only when an item beyond the segment is visible, always sees it.
//                The consumer never reports a segment finished before it has read that
//                segment's link (at the end of a segment it reports one item less), so the
//                producer cannot reuse and relink a segment whose link the consumer has
//                still to follow.
//                Parking and closing are Dekker handshakes with asymmetric fences: the
//                producer's side is a compiler barrier, the rare side (a consumer about to
//                park, close()) a membarrier(PRIVATE_EXPEDITED) system call, which executes
//                a full barrier on every CPU running one of our threads (on other systems
//                both sides use seq_cst fences). Parking: the consumer stores parked = 1,
//                runs the heavy fence, then re-reads every tail, the registry version and
//                the closed state; a producer stores its tail, runs the light fence, then
//                reads parked. Wherever the barrier lands in the producer's instruction
//                stream, either its tail store precedes it (the consumer sees the item) or
//                its read of parked follows it (the producer sees parked = 1 and wakes the
//                consumer). Closing: a producer raises its ring's `pushing` flag, runs the
//                light fence, reads the closed flag, publishes, and lowers the flag; close()
//                sets the closed flag, runs the heavy fence and waits until no ring's
//                pushing flag is up. A push that read "open" then has its flag visible to
//                close(), which waits for its publication; every other push reads
//                "closed" and is refused with its item untouched. Only then does the
//                consumer make its final pass.
// Thread safety: push and close from any thread; consume from one thread at a time.
// Lifetimes:     A producer thread that exits marks its rings abandoned; the consumer drops an
//                abandoned ring once it is empty. A push made after the thread's ring record
//                was destroyed (from a thread_local destructor that runs after it, or on the
//                main thread from a static destructor at exit) takes a slow path: a fresh
//                one-item ring, registered and abandoned by that push (one allocation and the
//                registry lock per such push); the thread's order is kept. A queue destroyed while
//                its producer threads live frees its rings' segments at once; each producer thread
//                keeps a small record of the dead ring until it registers with another queue or
//                exits.
// Errors:        push returns Errc::full (bounded, not blocking) or Errc::closed, leaving
//                the item untouched. Allocation failure (a new ring or segment) throws
//                std::bad_alloc, and the item's move constructor may throw; a push that
//                throws publishes nothing and gives its unit of capacity back.
// Cost:          push: one thread-local lookup (inline; the first push to a queue takes an
//                out-of-line path), the item's move, three plain stores to the producer's
//                own cache line, two loads of read-mostly flags; no locked instruction.
//                Bounded queues add one CAS on a shared counter. consume: one acquire load
//                per ring per pass, one release store per batch, a prefetch of the slot a
//                few items ahead (consuming a trivially copyable item only reads its slot,
//                so a producer reusing it finds the line shared, not modified in the
//                consumer's cache); parking and close() cost one membarrier system call
//                each.
// Example:
//   pods::ProducerRingQueue<int> q(0);              // what SingularUpdateQueue uses by default
//   int v = 1;
//   (void)q.push(std::move(v), true);               // from any thread
//   q.consume([](int& x) noexcept { use(x); });    // from the one consumer thread
// Example context: void use(int) noexcept {}
#pragma once

#include <pods/messaging/mpsc_queue.hpp>
#include <pods/policy/errors.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <utility>
#include <vector>

// Define PODS_NO_MEMBARRIER to use seq_cst fences on both sides instead.
#if defined(__linux__) && __has_include(<linux/membarrier.h>) && !defined(PODS_NO_MEMBARRIER)
#include <linux/membarrier.h>
#include <sys/syscall.h>
#include <unistd.h>
#define PODS_HAVE_MEMBARRIER 1
#endif

namespace pods {

namespace detail {

// Tells the CPU this is a spin-wait turn (frees pipeline resources for the sibling
// hyper-thread, saves power).
inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Asymmetric fences. The producers' hot path needs a store-load fence only to pair with the
// rare moments the consumer parks or the queue closes, so the cost is moved to that side:
// on Linux the rare side calls membarrier(PRIVATE_EXPEDITED), which runs a full memory
// barrier on every CPU running a thread of this process, and the hot side needs only a
// compiler barrier. Where membarrier is unavailable both sides use a seq_cst fence.
inline bool asymmetric_fences() noexcept {
  static const bool available = [] {
#if defined(__linux__) && defined(PODS_HAVE_MEMBARRIER)
    const long supported = ::syscall(__NR_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (supported < 0 || (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0) return false;
    return ::syscall(__NR_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
#else
    return false;
#endif
  }();
  return available;
}

// The hot side's store-load fence (pairs with heavy_fence()). `asymmetric` is the value of
// asymmetric_fences(), passed in so the hot path does not test the static's guard.
inline void light_fence(bool asymmetric) noexcept {
  if (asymmetric) {
    std::atomic_signal_fence(std::memory_order_seq_cst);
  } else {
    std::atomic_thread_fence(std::memory_order_seq_cst);
  }
}

// The rare side's fence: after it returns, every other thread's stores that precede its
// next light_fence() are visible, or its loads after that light_fence() see our earlier
// stores.
inline void heavy_fence() noexcept {
  std::atomic_thread_fence(std::memory_order_seq_cst);
#if defined(__linux__) && defined(PODS_HAVE_MEMBARRIER)
  if (asymmetric_fences()) ::syscall(__NR_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
#endif
}

// Returns a process-wide unique id for a queue (never reused, so a stale thread-local cache
// entry of a destroyed queue can never match a new one at the same address).
inline std::uint64_t next_ring_queue_id() noexcept {
  static std::atomic<std::uint64_t> next{0};
  return next.fetch_add(1, std::memory_order_relaxed) + 1;
}

// The type-independent part of a producer ring, shared between the queue's registry and the
// producer thread's thread-local list.
class RingControl {
 public:
  RingControl() = default;
  RingControl(const RingControl&) = delete;
  RingControl& operator=(const RingControl&) = delete;
  virtual ~RingControl() = default;
  // Frees the ring's storage (the queue is being destroyed; nobody will push again).
  virtual void release_storage() noexcept = 0;

  std::atomic<bool> producer_gone{false};  // set by the producer thread's exit
  std::atomic<bool> queue_gone{false};     // set by the queue's destructor
};

// The producer thread's one-entry cache: the last (queue id, ring) it used. Trivial, so the
// fast path is one thread-local load and compare.
struct RingCache {
  std::uint64_t queue_id = 0;
  RingControl* ring = nullptr;
};
inline thread_local RingCache ring_cache;

// Set when this thread's ThreadRings has been destroyed (the thread is exiting, or on the
// main thread the program is). Trivial, so it stays readable after every non-trivial
// thread_local is gone: a push from a later destructor checks it instead of touching the
// destroyed record.
inline thread_local constinit bool thread_rings_gone = false;

// The producer thread's rings, one per queue it has pushed to; marks them abandoned at exit.
class ThreadRings {
 public:
  ThreadRings() = default;
  ThreadRings(const ThreadRings&) = delete;
  ThreadRings& operator=(const ThreadRings&) = delete;
  ~ThreadRings() {
    for (auto& entry : rings_)
      entry.second->producer_gone.store(true, std::memory_order_release);
    ring_cache = {};
    thread_rings_gone = true;
  }

  // Returns this thread's ring for queue `id`, or nullptr.
  RingControl* find(std::uint64_t id) const noexcept {
    for (const auto& entry : rings_) {
      if (entry.first == id) return entry.second.get();
    }
    return nullptr;
  }

  // Records this thread's ring of queue `id`, first dropping the rings of destroyed queues.
  // Allocates.
  void add(std::uint64_t id, std::shared_ptr<RingControl> ring) {
    std::erase_if(rings_, [](const auto& entry) {
      return entry.second->queue_gone.load(std::memory_order_acquire);
    });
    rings_.emplace_back(id, std::move(ring));
  }

 private:
  std::vector<std::pair<std::uint64_t, std::shared_ptr<RingControl>>> rings_;
};
inline thread_local ThreadRings thread_rings;

// One producer's ring: a circle of segments written by the producer, read by the consumer.
template <class T>
class ProducerRing final : public RingControl {
 public:
  static constexpr std::size_t kFirstSegment = 64;
  static constexpr std::size_t kMaxSegment = 4096;
  // How many slots ahead of the one being consumed the consumer prefetches.
  static constexpr std::size_t kPrefetchAhead = 8;

  // Creates a ring whose first segment holds `first_segment` items.
  explicit ProducerRing(std::size_t first_segment = kFirstSegment) {
    Segment* s = new_segment(first_segment);
    s->next.store(s, std::memory_order_relaxed);
    pseg_ = s;
    cseg_ = s;
  }
  ~ProducerRing() override { release_storage(); }

  // Producer: publishes `item` (moving from it) unless `closed` is set; returns false and
  // leaves `item` as it was when closed. May allocate a segment (std::bad_alloc).
  bool push(T&& item, const std::atomic<bool>& closed, bool asymmetric) {
    // `pushing_` tells close() a push may be between its check of `closed` and its
    // publication; close() waits for it to drop before the consumer's final drain.
    pushing_.store(true, std::memory_order_relaxed);
    light_fence(asymmetric);
    struct Done {
      std::atomic<bool>& flag;
      ~Done() { flag.store(false, std::memory_order_release); }
    } done{pushing_};
    if (closed.load(std::memory_order_relaxed)) return false;
    if (pidx_ == pseg_->size) next_segment();
    std::construct_at(pseg_->slot(pidx_), std::move(item));
    tail_.store(ptail_ + 1, std::memory_order_release);
    ++ptail_;
    ++pidx_;
    return true;
  }

  // Consumer: returns the published count (seq_cst when deciding whether to park).
  std::uint64_t published(std::memory_order order) const noexcept { return tail_.load(order); }
  // Consumer: returns true when every published item has been consumed.
  bool empty(std::memory_order order) const noexcept { return published(order) == chead_; }

  // Consumer: consumes every item published so far with f; returns how many.
  template <class F>
  std::size_t drain(F& f) {
    const std::uint64_t tail = published(std::memory_order_acquire);
    const std::size_t n = static_cast<std::size_t>(tail - chead_);
    while (chead_ != tail) {
      if (cidx_ == cseg_->size) {
        // Read the link before letting the producer reuse the finished segment (it may
        // relink the segment as soon as it sees the new head).
        Segment* next = cseg_->next.load(std::memory_order_acquire);
        head_.store(chead_, std::memory_order_release);
        cseg_ = next;
        cidx_ = 0;
      }
      // Ask for a published slot a few lines ahead: a batch's slots were written on the
      // producer's core, and fetching them one demand miss at a time makes a consumer that
      // follows one producer closely pay a full cross-core miss per cache line.
      if (cidx_ + kPrefetchAhead < cseg_->size && tail - chead_ > kPrefetchAhead)
        __builtin_prefetch(cseg_->address(cidx_ + kPrefetchAhead), 0);
      T* item = cseg_->slot(cidx_);
      f(*item);
      std::destroy_at(item);
      ++cidx_;
      ++chead_;
    }
    // Stopped exactly at the end of a segment: the link to the next one is not read yet, so
    // report one item less; otherwise the producer could lap us, reuse this segment and
    // relink it before we follow its link.
    if (n != 0) head_.store(cidx_ == cseg_->size ? chead_ - 1 : chead_, std::memory_order_release);
    return n;
  }

  // Closer: returns true while a push may be between its check of `closed` and its
  // publication.
  bool pushing() const noexcept { return pushing_.load(std::memory_order_acquire); }

  void release_storage() noexcept override {
    if (cseg_ == nullptr) return;
    // Destroy items published but never consumed (only when the consumer never ran).
    std::uint64_t tail = tail_.load(std::memory_order_acquire);
    while (chead_ != tail) {
      if (cidx_ == cseg_->size) {
        cseg_ = cseg_->next.load(std::memory_order_acquire);
        cidx_ = 0;
      }
      std::destroy_at(cseg_->slot(cidx_));
      ++cidx_;
      ++chead_;
    }
    Segment* first = cseg_;
    Segment* s = first;
    do {
      Segment* next = s->next.load(std::memory_order_relaxed);
      delete s;
      s = next;
    } while (s != first);
    cseg_ = nullptr;
    pseg_ = nullptr;
  }

 private:
  struct Segment {
    explicit Segment(std::size_t n) : size(n), storage(new Storage[n]) {}
    T* slot(std::size_t i) noexcept { return std::launder(reinterpret_cast<T*>(storage[i].bytes)); }
    const void* address(std::size_t i) const noexcept { return storage[i].bytes; }
    struct Storage {
      alignas(T) unsigned char bytes[sizeof(T)];
    };
    std::atomic<Segment*> next{nullptr};
    const std::size_t size;
    std::uint64_t base = 0;  // producer-only: the count of the first item in this round
    std::unique_ptr<Storage[]> storage;
  };

  static Segment* new_segment(std::size_t n) { return new Segment(n); }

  // Producer: moves to the next segment of the circle, or inserts a larger one when the
  // consumer has not finished the next one yet.
  void next_segment() {
    Segment* next = pseg_->next.load(std::memory_order_relaxed);
    const std::uint64_t head = head_.load(std::memory_order_acquire);
    if (head < next->base + next->size) {
      Segment* fresh = new_segment(std::min(pseg_->size * 2, kMaxSegment));
      fresh->next.store(next, std::memory_order_relaxed);
      pseg_->next.store(fresh, std::memory_order_release);
      next = fresh;
    }
    next->base = ptail_;
    pseg_ = next;
    pidx_ = 0;
  }

  // Producer's line: the published count and the producer's private cursor.
  alignas(64) std::atomic<std::uint64_t> tail_{0};
  std::atomic<bool> pushing_{false};
  Segment* pseg_ = nullptr;
  std::size_t pidx_ = 0;
  std::uint64_t ptail_ = 0;
  // Consumer's line: the consumed count and the consumer's private cursor.
  alignas(64) std::atomic<std::uint64_t> head_{0};
  Segment* cseg_ = nullptr;
  std::size_t cidx_ = 0;
  std::uint64_t chead_ = 0;
};

}  // namespace detail

// ProducerRingQueue<T>: per-producer rings drained by one consumer; models MpscQueue.
template <class T>
class ProducerRingQueue {
  using Ring = detail::ProducerRing<T>;

 public:
  // How long the consumer spins on empty rings before it parks.
  static constexpr std::chrono::nanoseconds spin_time = std::chrono::microseconds(50);
  // The consumer's longest back-off between two polls while spinning: 2^kBackoffShift pauses.
  static constexpr unsigned kBackoffShift = 5;
  // A batch smaller than kSmallBatch makes the next consume() wait kSmallBatchPauses pauses.
  static constexpr std::size_t kSmallBatch = 32;
  static constexpr unsigned kSmallBatchPauses = 8;

  // Creates an empty queue; `capacity` 0 means unbounded. Allocates nothing yet.
  explicit ProducerRingQueue(std::size_t capacity = 0)
      : capacity_(capacity), asymmetric_(detail::asymmetric_fences()) {}
  ProducerRingQueue(const ProducerRingQueue&) = delete;
  ProducerRingQueue& operator=(const ProducerRingQueue&) = delete;

  // Frees every ring's storage; the producer threads keep only a small record of each.
  // Requires that no push or consume is running.
  ~ProducerRingQueue() {
    std::lock_guard lock(registry_mutex_);
    for (auto& ring : rings_) {
      ring->release_storage();
      ring->queue_gone.store(true, std::memory_order_release);
    }
  }

  // Publishes `item` in the calling thread's ring (moving from it only when accepted).
  // Blocks while full when `block`; returns Errc::full (not blocking) or Errc::closed.
  // Allocates only when the thread first pushes to this queue or its ring grows.
  Outcome<void> push(T&& item, bool block) {
    std::shared_ptr<Ring> late;  // set for a push after this thread's ring record died
    Ring* ring = ring_for_this_thread(late);
    if (ring == nullptr) return Errc::closed;
    // A late push's ring serves this one push: abandon it once the item is published (or
    // refused), so the consumer drops it when drained.
    struct Abandon {
      const std::shared_ptr<Ring>& ring;
      ~Abandon() {
        if (ring) ring->producer_gone.store(true, std::memory_order_release);
      }
    } abandon{late};
    if (capacity_ != 0) {
      if (Outcome<void> room = reserve(block); !room) return room;
    }
    bool accepted;
    try {
      accepted = ring->push(std::move(item), closed_flag_, asymmetric_);
    } catch (...) {
      // The item's move or a new segment threw: nothing was published; give the unit back.
      if (capacity_ != 0) release(1);
      throw;
    }
    if (!accepted) {
      if (capacity_ != 0) release(1);
      return Errc::closed;
    }
    detail::light_fence(asymmetric_);
    if (parked_.load(std::memory_order_relaxed) != 0) wake();
    return {};
  }

  // Waits (spins, then parks) until an item is available or the queue is closed, then
  // consumes every item available in every ring. Returns false when closed and drained.
  // `f` must not throw. Allocates only when a new producer has registered.
  template <class F>
  bool consume(F&& f) {
    auto spin_start = std::chrono::steady_clock::time_point{};
    // After a small batch, give the producers a moment before polling again: each poll
    // takes the tail's cache line (and the line of the slot being written) away from the
    // producer, so a consumer that polls as fast as it can makes every push a cache miss.
    // A few pauses let a batch build up; a lone request waits a few hundred ns at most.
    if (last_batch_ < kSmallBatch) {
      for (unsigned i = 0; i < kSmallBatchPauses; ++i)
        detail::cpu_relax();
    }
    for (unsigned turn = 0;; ++turn) {
      if (version_.load(std::memory_order_acquire) != seen_version_) refresh();
      std::size_t n = 0;
      for (std::size_t i = 0; i < snapshot_.size(); ++i) {
        Ring* ring = snapshot_[i];
        const std::size_t got = ring->drain(f);
        n += got;
        if (got == 0 && ring->producer_gone.load(std::memory_order_acquire) &&
            ring->empty(std::memory_order_acquire)) {
          forget(ring);
          --i;
        }
      }
      if (n != 0) {
        if (capacity_ != 0) release(n);
        last_batch_ = n;
        return true;
      }
      if (sealed_.load(std::memory_order_acquire)) {
        // close() saw every ring quiet before setting the flag: one more pass over a fresh
        // list sees each ring's final count.
        refresh();
        for (Ring* ring : snapshot_)
          n += ring->drain(f);
        if (capacity_ != 0 && n != 0) release(n);
        return n != 0;
      }
      if (turn == 0) spin_start = std::chrono::steady_clock::now();
      if ((turn & 31) != 31 || std::chrono::steady_clock::now() - spin_start < spin_time) {
        // Back off between passes (1, 2, 4, ... kMaxBackoff pauses): polling a ring's tail
        // takes its cache line away from the producer writing it, so polling less often lets
        // the producers run ahead and the next pass drain a larger batch.
        if ((turn & 31) == 31) {
          // Let a producer waiting for this CPU run (when the machine has more runnable
          // threads than CPUs, spinning would only delay the push it waits for).
          std::this_thread::yield();
          continue;
        }
        const unsigned pauses = 1u << std::min(turn, kBackoffShift);
        for (unsigned i = 0; i < pauses; ++i)
          detail::cpu_relax();
        continue;
      }
      park();
      turn = std::numeric_limits<unsigned>::max();  // restart the spin after waking
    }
  }

  // Refuses every later push, wakes the consumer and blocked producers. Idempotent.
  void close() {
    std::vector<std::shared_ptr<Ring>> rings;
    {
      std::lock_guard lock(registry_mutex_);
      if (closed_) return;
      closed_ = true;
      closed_flag_.store(true, std::memory_order_seq_cst);
      rings = rings_;
    }
    // After the heavy fence every push either sees closed_flag_ or has raised its ring's
    // pushing flag where we see it; wait for those to publish (a push never blocks there).
    detail::heavy_fence();
    for (const auto& ring : rings) {
      for (unsigned spins = 0; ring->pushing(); ++spins) {
        if (spins < 64) {
          detail::cpu_relax();
        } else {
          std::this_thread::yield();
        }
      }
    }
    sealed_.store(true, std::memory_order_seq_cst);
    wake();
    if (capacity_ != 0) {
      space_epoch_.fetch_add(1, std::memory_order_seq_cst);
      space_epoch_.notify_all();
    }
  }

  // Returns the capacity given at construction (0: unbounded).
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  // Returns the calling thread's ring, registering one at its first push; nullptr when
  // closed. After the thread's ring record was destroyed (a push from a thread_local or
  // static destructor that runs later), registers a fresh one-item ring, returned in `late`
  // and not recorded: the record cannot be touched any more. Appending it to the registry
  // keeps the thread's order: the consumer sees the new ring only after a refresh that also
  // makes every earlier push of the thread visible, and drains older rings first.
  Ring* ring_for_this_thread(std::shared_ptr<Ring>& late) {
    const detail::RingCache& cache = detail::ring_cache;
    if (cache.queue_id == id_) [[likely]]
      return static_cast<Ring*>(cache.ring);
    return find_ring(late);
  }

  // The slow path of ring_for_this_thread, kept out of line so the push path stays small.
  [[gnu::noinline]] Ring* find_ring(std::shared_ptr<Ring>& late) {
    detail::RingCache& cache = detail::ring_cache;
    if (detail::thread_rings_gone) [[unlikely]] {
      late = std::make_shared<Ring>(1);
      std::lock_guard lock(registry_mutex_);
      if (closed_) return nullptr;
      rings_.push_back(late);
      version_.fetch_add(1, std::memory_order_seq_cst);
      return late.get();
    }
    detail::RingControl* found = detail::thread_rings.find(id_);
    if (found == nullptr) {
      auto ring = std::make_shared<Ring>();
      {
        std::lock_guard lock(registry_mutex_);
        if (closed_) return nullptr;
        rings_.push_back(ring);
        version_.fetch_add(1, std::memory_order_seq_cst);
      }
      found = ring.get();
      detail::thread_rings.add(id_, std::move(ring));
    }
    cache = {id_, found};
    return static_cast<Ring*>(found);
  }

  // Consumer: copies the registry into the consumer's private list.
  void refresh() {
    std::lock_guard lock(registry_mutex_);
    seen_version_ = version_.load(std::memory_order_relaxed);
    snapshot_.clear();
    for (auto& ring : rings_)
      snapshot_.push_back(ring.get());
  }

  // Consumer: drops an abandoned, empty ring from the registry.
  void forget(Ring* ring) {
    std::lock_guard lock(registry_mutex_);
    std::erase_if(rings_, [&](const auto& r) { return r.get() == ring; });
    std::erase(snapshot_, ring);
    version_.fetch_add(1, std::memory_order_seq_cst);  // the next pass refreshes the list
  }

  // Consumer: parks until a producer or close() wakes it, unless work arrived meanwhile.
  void park() {
    parked_.store(1, std::memory_order_seq_cst);
    detail::heavy_fence();
    bool work = sealed_.load(std::memory_order_seq_cst) ||
                version_.load(std::memory_order_seq_cst) != seen_version_;
    for (std::size_t i = 0; !work && i < snapshot_.size(); ++i)
      work = !snapshot_[i]->empty(std::memory_order_acquire);
    if (!work) parked_.wait(1, std::memory_order_seq_cst);
    parked_.store(0, std::memory_order_relaxed);
  }

  // Producer or closer: wakes the consumer if it is parked.
  void wake() noexcept {
    if (parked_.exchange(0, std::memory_order_seq_cst) != 0) parked_.notify_one();
  }

  // Producer: takes one unit of capacity, blocking while full when `block`.
  Outcome<void> reserve(bool block) {
    for (;;) {
      std::size_t n = pending_.load(std::memory_order_relaxed);
      while (n < capacity_) {
        if (pending_.compare_exchange_weak(n, n + 1, std::memory_order_seq_cst,
                                           std::memory_order_relaxed))
          return {};
      }
      if (closed_flag_.load(std::memory_order_seq_cst)) return Errc::closed;
      if (!block) return Errc::full;
      waiters_.fetch_add(1, std::memory_order_seq_cst);
      const std::uint32_t epoch = space_epoch_.load(std::memory_order_seq_cst);
      if (pending_.load(std::memory_order_seq_cst) >= capacity_ &&
          !closed_flag_.load(std::memory_order_seq_cst))
        space_epoch_.wait(epoch, std::memory_order_seq_cst);
      waiters_.fetch_sub(1, std::memory_order_seq_cst);
    }
  }

  // Returns `n` units of capacity and wakes blocked producers.
  void release(std::size_t n) {
    pending_.fetch_sub(n, std::memory_order_seq_cst);
    if (waiters_.load(std::memory_order_seq_cst) != 0) {
      space_epoch_.fetch_add(1, std::memory_order_seq_cst);
      space_epoch_.notify_all();
    }
  }

  const std::uint64_t id_ = detail::next_ring_queue_id();
  const std::size_t capacity_;
  const bool asymmetric_;  // detail::asymmetric_fences(), read once

  // Registry: every ring of this queue, guarded by registry_mutex_.
  std::mutex registry_mutex_;
  std::vector<std::shared_ptr<Ring>> rings_;
  bool closed_ = false;                   // guarded by registry_mutex_
  std::atomic<bool> closed_flag_{false};  // closed_, for the producers' lock-free check
  alignas(64) std::atomic<std::uint32_t> version_{0};  // bumped on every registry change
  std::atomic<bool> sealed_{false};  // closed, and every push in progress has published

  // Consumer-private.
  alignas(64) std::vector<Ring*> snapshot_;
  std::uint32_t seen_version_ = 0;
  std::size_t last_batch_ = 0;  // items the last successful pass consumed

  alignas(64) std::atomic<std::uint32_t> parked_{0};  // the consumer is parked (or about to)

  // Bounded queues only.
  alignas(64) std::atomic<std::size_t> pending_{0};  // accepted, not yet consumed
  std::atomic<std::uint32_t> waiters_{0};            // producers blocked on a full queue
  std::atomic<std::uint32_t> space_epoch_{0};        // bumped when room appears or on close
};
static_assert(MpscQueue<ProducerRingQueue<int>, int>);

}  // namespace pods

// pods/messaging/singular_update_queue.hpp — Singular Update Queue
//
// Problem:       State changed by many threads needs locks, and locks held across a disk
//                write or a protocol step make every caller wait for every other; getting
//                the lock order right across a node's whole state is where bugs live.
// Solution:      Every change to the state becomes a request on a queue; one worker thread
//                takes the requests one at a time, in order, and runs the handler on them, so
//                the handler's state needs no lock at all. A caller gets its response through
//                a std::future, or through a callback the worker calls (no allocation).
//                The hand-over is a policy (the MpscQueue concept): ProducerRingQueue by
//                default (a lock-free ring per producer thread, a worker that spins briefly
//                and then parks), MutexQueue as the plain baseline.
// Guarantees:    One thread runs the handler, one request at a time. Requests run in one
//                total order that keeps each producer's submission order. Every accepted
//                request is answered exactly once, also when stop() is called with work
//                queued. A handler exception reaches that request's future (the callback
//                gets Errc::failed, and the exception itself when it takes a second,
//                std::exception_ptr parameter) and nothing else; the worker goes on. With a
//                capacity, at most `capacity` accepted requests wait (blocking submit, refusing
//                try_submit). The callback form allocates nothing per request once warm when
//                `done` fits 24 bytes (a lambda capturing up to three pointers).
// Not provided:  An order between requests of different producers beyond "some total order"
//                (the default queue does not order a request after one submitted earlier on
//                another thread; use one producer, or MutexQueue, when that matters).
//                Priorities; cancellation of an accepted request.
// Thread safety: thread-safe: submit, try_submit and stop from any thread. The handler and
//                the `done` callbacks run on the worker thread. From the worker (the handler
//                or a `done` callback) the callback forms and stop() may be called (stop()
//                then closes the queue and returns without joining); three calls would make
//                the worker wait for itself or run on inside a destroyed queue, and abort the
//                program with a message naming the mistake instead: the destructor, the
//                future forms of submit and try_submit (the future could never be waited
//                for), and a blocking submit that finds a bounded queue full.
// Errors:        After stop(): submit's future holds pods::ClosedError; the callback form
//                calls done(Errc::closed) at once on the submitting thread; try_submit
//                returns Errc::closed. try_submit on a full queue returns Errc::full. A
//                handler exception reaches the future; a `done` taking
//                (Outcome<Response>, std::exception_ptr) gets Errc::failed and the exception
//                (null for every other outcome), a `done` taking only the Outcome gets
//                Errc::failed. A throwing `done` callback terminates the program (it runs on
//                the worker). Misuse from the worker aborts (see Thread safety).
//                Allocation failure throws std::bad_alloc from submit.
// Cost:          callback submit: one move of the request and `done` into the producer's ring
//                and a release store of its tail (no lock, no locked instruction); no system
//                call while the worker is awake. Future submit adds the shared state (one
//                allocation). The worker pays one handler call and one indirect call
//                (`done`) per request.
// Example:
//   auto queue = pods::make_singular_update_queue<int>([sum = 0](int x) mutable {
//     return sum += x;                                // runs on the worker, no lock needed
//   });
//   std::future<int> total = queue.submit(5);          // total.get() == 5
//   queue.submit(7, [](pods::Outcome<int> r) { if (r) std::printf("%d\n", *r); });
//   queue.stop();                                      // finishes both, then joins
#pragma once

#include <pods/messaging/mpsc_queue.hpp>
#include <pods/messaging/producer_ring_queue.hpp>
#include <pods/policy/errors.hpp>

#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <new>
#include <optional>
#include <thread>
#include <type_traits>
#include <utility>

namespace pods {

namespace detail {

// The completion of one request: a type-erased, move-only callable stored in place (24
// bytes) that either receives the response or an error. It adapts both the callback form
// (done(Outcome<Response>)) and the future form (a std::promise).
template <class Response>
class Completion {
 public:
  static constexpr std::size_t inline_size = 24;

  Completion() noexcept = default;

  template <class F>
  explicit Completion(F&& f) {
    using Fn = std::decay_t<F>;
    if constexpr (fits_inline<Fn>) {
      ::new (static_cast<void*>(buffer_)) Fn(std::forward<F>(f));
      ops_ = &inline_ops<Fn>;
    } else {
      Fn* heap = new Fn(std::forward<F>(f));
      std::memcpy(buffer_, &heap, sizeof heap);
      ops_ = &heap_ops<Fn>;
    }
  }

  Completion(Completion&& other) noexcept : ops_(other.ops_) {
    if (ops_ == nullptr) return;
    if (ops_->relocate == nullptr) {
      std::memcpy(buffer_, other.buffer_, inline_size);
    } else {
      ops_->relocate(other.buffer_, buffer_);
    }
    other.ops_ = nullptr;
  }
  Completion& operator=(Completion&&) = delete;
  ~Completion() {
    if (ops_ != nullptr && ops_->destroy != nullptr) ops_->destroy(buffer_);
  }

  // Delivers the response (Response = void: no argument); call it once. The callable is
  // destroyed with the completion. It writes nothing into the completion itself, so the
  // worker only reads the queue slot the completion lives in (the producer that reuses the
  // slot then finds its cache line shared, not modified in the worker's cache).
  template <class... R>
  void set_value(R&&... response) {
    ops_->value(buffer_, std::forward<R>(response)...);
  }
  // Delivers a failure: the exception (may be null) and its Errc; call it once.
  void set_error(std::exception_ptr e, Errc code) { ops_->error(buffer_, std::move(e), code); }

 private:
  template <class Fn>
  static constexpr bool fits_inline =
      sizeof(Fn) <= inline_size &&
      alignof(Fn) <= alignof(void*) && std::is_nothrow_move_constructible_v<Fn>;

  template <class Fn>
  static constexpr bool trivial = std::is_trivially_copyable_v<Fn>;

  template <class R>
  struct ValueSignature {
    using type = void (*)(void*, R&&);
  };
  template <class R>
  requires std::is_void_v<R>
  struct ValueSignature<R> {
    using type = void (*)(void*);
  };
  using ValueFn = typename ValueSignature<Response>::type;
  struct Ops {
    ValueFn value;
    void (*error)(void*, std::exception_ptr, Errc);
    void (*relocate)(void* from, void* to) noexcept;  // nullptr: memcpy the buffer
    void (*destroy)(void*) noexcept;                  // nullptr: nothing to destroy
  };

  template <class Fn>
  static Fn& self_inline(void* p) noexcept {
    return *std::launder(static_cast<Fn*>(p));
  }
  template <class Fn>
  static Fn& self_heap(void* p) noexcept {
    Fn* heap;
    std::memcpy(&heap, p, sizeof heap);
    return *heap;
  }

  template <class Fn, Fn& (*self)(void*) noexcept>
  static constexpr ValueFn make_value() {
    if constexpr (std::is_void_v<Response>) {
      return [](void* p) { self(p).value(); };
    } else {
      return [](void* p, Response&& r) { self(p).value(std::move(r)); };
    }
  }

  template <class Fn>
  static constexpr Ops inline_ops = {
      make_value<Fn, &self_inline<Fn>>(),
      [](void* p, std::exception_ptr e, Errc c) { self_inline<Fn>(p).error(std::move(e), c); },
      trivial<Fn> ? nullptr
                  : +[](void* from, void* to) noexcept {
                      Fn& src = self_inline<Fn>(from);
                      ::new (to) Fn(std::move(src));
                      src.~Fn();
                    },
      std::is_trivially_destructible_v<Fn> ? nullptr
                                           : +[](void* p) noexcept { self_inline<Fn>(p).~Fn(); },
  };
  template <class Fn>
  static constexpr Ops heap_ops = {
      make_value<Fn, &self_heap<Fn>>(),
      [](void* p, std::exception_ptr e, Errc c) { self_heap<Fn>(p).error(std::move(e), c); },
      nullptr,
      [](void* p) noexcept { delete &self_heap<Fn>(p); },
  };

  const Ops* ops_ = nullptr;
  alignas(void*) unsigned char buffer_[inline_size]{};  // pointer-aligned: keeps items small
};

// True when `done` takes the handler's exception too: done(Outcome<Response>, exception_ptr).
template <class Done, class Response>
inline constexpr bool takes_exception =
    std::is_invocable_v<Done&, Outcome<Response>, std::exception_ptr>;

// Adapts a user callback, done(Outcome<Response>) or done(Outcome<Response>, exception_ptr),
// to Completion's value/error interface.
template <class Response, class Done>
struct CallbackSink {
  Done done;
  template <class... R>
  void value(R&&... r) {
    if constexpr (std::is_void_v<Response>) {
      call(Outcome<void>(), nullptr);
    } else {
      call(Outcome<Response>(std::forward<R>(r)...), nullptr);
    }
  }
  void error(std::exception_ptr e, Errc code) { call(Outcome<Response>(code), std::move(e)); }
  void call(Outcome<Response>&& outcome, std::exception_ptr e) {
    if constexpr (takes_exception<Done, Response>) {
      done(std::move(outcome), std::move(e));
    } else {
      done(std::move(outcome));
    }
  }
};

// Prints what the program did wrong with a SingularUpdateQueue and aborts: each of these
// would otherwise hang the worker or destroy it while it runs.
[[noreturn]] inline void update_queue_misuse(const char* what) noexcept {
  std::fprintf(stderr, "pods: SingularUpdateQueue misuse: %s\n", what);
  std::fflush(stderr);
  std::abort();
}

// A done callback the callback-form submit accepts.
template <class Done, class Response>
concept UpdateCallback =
    std::invocable<Done&, Outcome<Response>> || takes_exception<Done, Response>;

// Adapts a std::promise to Completion's value/error interface.
template <class Response>
struct PromiseSink {
  std::promise<Response> promise;
  template <class... R>
  void value(R&&... r) {
    promise.set_value(std::forward<R>(r)...);
  }
  void error(std::exception_ptr e, Errc) {
    if (e == nullptr) {
      e = std::make_exception_ptr(ClosedError("pods::SingularUpdateQueue: the queue is stopped"));
    }
    promise.set_exception(std::move(e));
  }
};

// One queued request and how to answer it.
template <class Request, class Response>
struct UpdateItem {
  UpdateItem(Request&& r, Completion<Response>&& c) : request(std::move(r)), done(std::move(c)) {}
  UpdateItem(UpdateItem&&) = default;
  Request request;
  Completion<Response> done;
};

}  // namespace detail

// SingularUpdateQueue: one worker thread runs `handler` on every submitted request, in order.
// `Queue` is the hand-over policy (MpscQueue): ProducerRingQueue (default) or MutexQueue.
template <class Request, class Handler, template <class> class Queue = ProducerRingQueue>
requires std::invocable<Handler&, Request&&> &&
    MpscQueue<Queue<detail::UpdateItem<Request, std::invoke_result_t<Handler&, Request&&>>>,
              detail::UpdateItem<Request, std::invoke_result_t<Handler&, Request&&>>>
class SingularUpdateQueue {
 public:
  using Response = std::invoke_result_t<Handler&, Request&&>;

  // Starts the one worker thread, with an unbounded queue. Throws std::system_error when the
  // thread cannot be started.
  explicit SingularUpdateQueue(Handler handler) : SingularUpdateQueue(std::move(handler), 0) {}

  // Starts the worker with a queue holding at most `capacity` waiting requests (0: unbounded).
  SingularUpdateQueue(Handler handler, std::size_t capacity)
      : handler_(std::move(handler)), queue_(capacity) {
    worker_ = std::thread([this] { run(); });
    worker_id_.store(worker_.get_id(), std::memory_order_relaxed);
  }

  SingularUpdateQueue(const SingularUpdateQueue&) = delete;
  SingularUpdateQueue& operator=(const SingularUpdateQueue&) = delete;

  // Stops the queue (see stop()). Aborts with a message when called from the worker (its
  // handler or a done callback): the queue cannot outlive the destruction of itself.
  ~SingularUpdateQueue() {
    if (on_worker())
      detail::update_queue_misuse(
          "the queue was destroyed from its own worker (its handler or a done callback); the "
          "worker would go on running inside the destroyed queue. Destroy it from another "
          "thread; stop() is the call that may run on the worker.");
    stop();
  }

  // Queues `request` and returns the future of its response. Never blocks on the handler;
  // blocks while a bounded queue is full. Allocates the future's shared state. After stop()
  // the future holds pods::ClosedError.
  std::future<Response> submit(Request request) {
    if (on_worker())
      detail::update_queue_misuse(
          "submit(request) returning a std::future was called from the queue's own worker (its "
          "handler or a done callback); waiting on that future would wait for the worker "
          "itself. Use the callback form there.");
    std::promise<Response> promise;
    std::future<Response> future = promise.get_future();
    Item item(std::move(request), Completion(detail::PromiseSink<Response>{std::move(promise)}));
    if (Outcome<void> r = queue_.push(std::move(item), true); !r)
      item.done.set_error({}, r.error());
    return future;
  }

  // Queues `request`; the worker calls done(Outcome<Response>) after the handler returns
  // (Errc::failed when it threw), or done(Outcome<Response>, std::exception_ptr) when `done`
  // takes both (the handler's exception with Errc::failed, else null). Blocks while a bounded queue
  // is full. Retains `done` until then. Allocates nothing once the producer's ring is warm when
  // `done` fits 24 bytes and is nothrow-movable (else one allocation). After stop() calls
  // done(Errc::closed) at once on the calling thread. `done` must not throw.
  template <detail::UpdateCallback<Response> Done>
  void submit(Request request, Done done) {
    Item item(std::move(request),
              Completion(detail::CallbackSink<Response, Done>{std::move(done)}));
    // On the worker a blocking push into a full queue would wait for the worker itself.
    const bool worker = on_worker();
    Outcome<void> r = queue_.push(std::move(item), !worker);
    if (!r && r.error() == Errc::full)
      detail::update_queue_misuse(
          "a blocking submit(request, done) found the queue full while called from the queue's "
          "own worker (its handler or a done callback); it would wait for the worker itself. "
          "Use try_submit there.");
    if (!r) item.done.set_error({}, r.error());
  }

  // Queues `request` unless a bounded queue is full. Returns the future, Errc::full, or
  // Errc::closed (after stop()). Allocates the future's shared state.
  Outcome<std::future<Response>> try_submit(Request request) {
    if (on_worker())
      detail::update_queue_misuse(
          "try_submit(request) returning a std::future was called from the queue's own worker "
          "(its handler or a done callback); waiting on that future would wait for the worker "
          "itself. Use the callback form there.");
    std::promise<Response> promise;
    std::future<Response> future = promise.get_future();
    Item item(std::move(request), Completion(detail::PromiseSink<Response>{std::move(promise)}));
    if (Outcome<void> r = queue_.push(std::move(item), false); !r) return r.error();
    return future;
  }

  // Queues `request` with `done` unless a bounded queue is full. Returns success (done will
  // be called on the worker), Errc::full or Errc::closed; a refused request and its `done`
  // are dropped without calling `done`. Allocates as the callback submit does.
  template <detail::UpdateCallback<Response> Done>
  Outcome<void> try_submit(Request request, Done done) {
    Item item(std::move(request),
              Completion(detail::CallbackSink<Response, Done>{std::move(done)}));
    return queue_.push(std::move(item), false);
  }

  // Refuses new requests, lets the worker finish every accepted one, and joins it.
  // Idempotent; thread-safe. From the worker thread itself it only refuses new requests.
  void stop() {
    queue_.close();
    if (on_worker()) return;
    std::lock_guard lock(stop_mutex_);
    if (worker_.joinable()) worker_.join();
  }

  // Returns the capacity given at construction (0: unbounded).
  std::size_t capacity() const noexcept { return queue_.capacity(); }

 private:
  using Item = detail::UpdateItem<Request, Response>;
  using Completion = detail::Completion<Response>;

  // Returns true on the worker thread. The worker stores its own id before its first
  // request, so the worker always sees it; any other thread sees an id that is not its own.
  bool on_worker() const noexcept {
    return worker_id_.load(std::memory_order_relaxed) == std::this_thread::get_id();
  }

  void run() noexcept {
    worker_id_.store(std::this_thread::get_id(), std::memory_order_relaxed);
    auto one = [this](Item& item) noexcept { handle(item); };
    while (queue_.consume(one)) {
    }
  }

  // Runs the handler on one request and answers it; a handler exception goes to `done`.
  // The exception is answered after its catch block has ended, so the worker holds no
  // reference to it once the requester can see it.
  void handle(Item& item) noexcept {
    std::exception_ptr error;
    if constexpr (std::is_void_v<Response>) {
      try {
        std::invoke(handler_, std::move(item.request));
      } catch (...) {
        error = std::current_exception();
      }
      if (error == nullptr) {
        item.done.set_value();
        return;
      }
    } else {
      std::optional<Response> response;
      try {
        response.emplace(std::invoke(handler_, std::move(item.request)));
      } catch (...) {
        error = std::current_exception();
      }
      if (error == nullptr) {
        item.done.set_value(std::move(*response));
        return;
      }
    }
    item.done.set_error(std::move(error), Errc::failed);
  }

  Handler handler_;
  Queue<Item> queue_;
  std::mutex stop_mutex_;
  std::thread worker_;
  std::atomic<std::thread::id> worker_id_{};
};

// Returns a SingularUpdateQueue<Request, Handler> running `handler` (by value: the queue is
// immovable, so this relies on guaranteed copy elision). `capacity` 0 means unbounded.
template <class Request, class Handler>
auto make_singular_update_queue(Handler handler, std::size_t capacity = 0) {
  return SingularUpdateQueue<Request, Handler>(std::move(handler), capacity);
}

}  // namespace pods

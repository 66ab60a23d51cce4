// pods/messaging/request_batch.hpp — Request Batch, and BatchingSender
//
// Problem:       Sending many small requests one by one spends the network and the receiver's
//                per-message cost (a system call, a header, a wake-up) on every request, so
//                throughput collapses long before the bandwidth is used.
// Solution:      Collect requests into a batch and send the batch as one message when it is
//                full (a request count or a byte size) or when its oldest request has waited
//                long enough (max_wait, read from a PhysicalClock). RequestBatch is the batch;
//                BatchingSender drives one: send() adds and flushes a full batch to a user
//                sink, tick() flushes a due one, deadline() says when to call tick() next.
// Guarantees:    Requests leave in the order they were added. A batch is full when
//                size() >= max_requests or bytes() >= max_bytes; add never refuses, so one
//                request larger than max_bytes forms a full batch alone. due() is true exactly
//                when the batch is not empty and its oldest request has waited max_wait.
// Not provided:  Any I/O or timer: BatchingSender is sans-IO, its owner calls tick() (from an
//                event loop, at deadline()); no thread safety.
// Thread safety: thread-compatible (one owner thread, or external locking).
// Errors:        Limits with max_requests == 0, max_bytes == 0 or a negative max_wait throw
//                std::invalid_argument naming the field. A sink's exception propagates out of
//                send/tick/flush; the batch it was given is gone.
// Cost:          add: amortised O(1), one Size call, one clock read when the batch was empty.
//                take: O(1), hands the vector over (the next add allocates a new one).
// Example:
//   pods::BatchingSender sender([&](std::vector<std::string> batch) { socket.write(batch); },
//                               pods::BatchLimits{.max_requests = 32});
//   sender.send("put a 1");                       // flushes by itself when 32 are waiting
//   if (auto when = sender.deadline()) loop.wake_at(*when, [&] { sender.tick(); });
// Example context: struct Socket { void write(const std::vector<std::string>&) {} };
// Example context: Socket socket;
// Example context: struct EventLoop { template <class T, class F> void wake_at(T, F) {} };
// Example context: EventLoop loop;
#pragma once

#include <pods/policy/clock.hpp>

#include <chrono>
#include <concepts>
#include <cstddef>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

namespace pods {

// The limits of one batch.
struct BatchLimits {
  std::size_t max_requests = 64;
  std::size_t max_bytes = 64 << 10;
  std::chrono::nanoseconds max_wait = std::chrono::milliseconds(1);
};

// DefaultSize: a request's size in bytes: its `.size()` where it has one, else sizeof.
struct DefaultSize {
  template <class Request>
  std::size_t operator()(const Request& request) const noexcept(noexcept(sizeof(Request))) {
    if constexpr (requires {
                    { request.size() } -> std::convertible_to<std::size_t>;
                  }) {
      return static_cast<std::size_t>(request.size());
    } else {
      return sizeof(Request);
    }
  }
};

// RequestBatch: requests collected until full or due.
template <class Request, PhysicalClock Clock = SteadyClock, class Size = DefaultSize>
class RequestBatch {
 public:
  // Creates an empty batch. Throws std::invalid_argument for a zero max_requests or
  // max_bytes, or a negative max_wait. Allocates nothing.
  explicit RequestBatch(BatchLimits limits = {}, Clock clock = Clock())
      : limits_(checked(limits)), clock_(std::move(clock)) {}

  // Adds `request` (retained until take()); returns true when the batch is now full.
  // Reads the clock when the batch was empty. Allocates when the vector grows.
  bool add(Request request) {
    if (requests_.empty()) oldest_ = clock_.now();
    bytes_ += Size{}(request);
    requests_.push_back(std::move(request));
    return full();
  }

  // Returns true when size() >= max_requests or bytes() >= max_bytes.
  bool full() const noexcept {
    return requests_.size() >= limits_.max_requests || bytes_ >= limits_.max_bytes;
  }

  // Returns true when the batch is not empty and its oldest request has waited max_wait.
  bool due() const { return !requests_.empty() && clock_.now() - oldest_ >= limits_.max_wait; }

  // Returns when the batch becomes due (oldest request + max_wait), or nothing when empty.
  std::optional<typename Clock::time_point> deadline() const {
    if (requests_.empty()) return std::nullopt;
    return oldest_ + std::chrono::duration_cast<typename Clock::duration>(limits_.max_wait);
  }

  // Hands the requests over in the order they were added and starts a new, empty batch.
  std::vector<Request> take() noexcept {
    bytes_ = 0;
    return std::exchange(requests_, {});
  }

  std::size_t size() const noexcept { return requests_.size(); }
  std::size_t bytes() const noexcept { return bytes_; }
  bool empty() const noexcept { return requests_.empty(); }
  const BatchLimits& limits() const noexcept { return limits_; }

 private:
  static BatchLimits checked(BatchLimits limits) {
    if (limits.max_requests == 0)
      throw std::invalid_argument("RequestBatch: limits.max_requests must be at least 1");
    if (limits.max_bytes == 0)
      throw std::invalid_argument("RequestBatch: limits.max_bytes must be at least 1");
    if (limits.max_wait.count() < 0)
      throw std::invalid_argument("RequestBatch: limits.max_wait must not be negative");
    return limits;
  }

  BatchLimits limits_;
  Clock clock_;
  std::vector<Request> requests_;
  std::size_t bytes_ = 0;
  typename Clock::time_point oldest_{};
};

namespace detail {
// The Request of a sink called with std::vector<Request>: read from the parameter of the
// sink's (non-template) call operator, or of a function pointer.
template <class Sig>
struct SinkBatchOf;
template <class R, class C, class Batch>
struct SinkBatchOf<R (C::*)(Batch)> {
  using type = std::remove_cvref_t<Batch>;
};
template <class R, class C, class Batch>
struct SinkBatchOf<R (C::*)(Batch) const> {
  using type = std::remove_cvref_t<Batch>;
};
template <class R, class C, class Batch>
struct SinkBatchOf<R (C::*)(Batch) noexcept> {
  using type = std::remove_cvref_t<Batch>;
};
template <class R, class C, class Batch>
struct SinkBatchOf<R (C::*)(Batch) const noexcept> {
  using type = std::remove_cvref_t<Batch>;
};
template <class R, class Batch>
struct SinkBatchOf<R (*)(Batch)> {
  using type = std::remove_cvref_t<Batch>;
};
template <class R, class Batch>
struct SinkBatchOf<R (*)(Batch) noexcept> {
  using type = std::remove_cvref_t<Batch>;
};
template <class Sink>
struct SinkRequest {
  using type = typename SinkBatchOf<decltype(&Sink::operator())>::type::value_type;
};
template <class Sink>
requires std::is_pointer_v<Sink>
struct SinkRequest<Sink> {
  using type = typename SinkBatchOf<Sink>::type::value_type;
};
}  // namespace detail

// BatchingSender: a RequestBatch that flushes itself to `sink(std::vector<Request>)` when full
// (on send) or due (on tick). Sans-IO: the owner calls tick() at deadline().
template <class Request, class Sink, PhysicalClock Clock = SteadyClock, class Size = DefaultSize>
requires std::invocable<Sink&, std::vector<Request> &&> class BatchingSender {
 public:
  // Creates a sender flushing to `sink` (retained). Throws as RequestBatch does.
  explicit BatchingSender(Sink sink, BatchLimits limits = {}, Clock clock = Clock())
      : sink_(std::move(sink)), batch_(limits, std::move(clock)) {}

  // Adds `request`; flushes the batch to the sink when it is now full. Returns true when it
  // flushed. Propagates the sink's exceptions.
  bool send(Request request) {
    if (!batch_.add(std::move(request))) return false;
    flush();
    return true;
  }

  // Flushes the batch when it is due. Returns true when it flushed.
  bool tick() {
    if (!batch_.due()) return false;
    flush();
    return true;
  }

  // Flushes whatever is waiting (e.g. at shutdown); returns how many requests were sent.
  std::size_t flush() {
    if (batch_.empty()) return 0;
    std::vector<Request> requests = batch_.take();
    const std::size_t n = requests.size();
    sink_(std::move(requests));
    return n;
  }

  // Returns when tick() should next be called, or nothing while no request waits.
  std::optional<typename Clock::time_point> deadline() const { return batch_.deadline(); }

  // Returns the batch being filled.
  const RequestBatch<Request, Clock, Size>& batch() const noexcept { return batch_; }

 private:
  Sink sink_;
  RequestBatch<Request, Clock, Size> batch_;
};

// Deduces Request from the sink's parameter (std::vector<Request>, by value or reference),
// so `BatchingSender sender(sink)` needs no template arguments.
template <class Sink>
BatchingSender(Sink) -> BatchingSender<typename detail::SinkRequest<Sink>::type, Sink>;
template <class Sink>
BatchingSender(Sink, BatchLimits) -> BatchingSender<typename detail::SinkRequest<Sink>::type, Sink>;
template <class Sink, PhysicalClock Clock>
BatchingSender(Sink, BatchLimits, Clock)
    -> BatchingSender<typename detail::SinkRequest<Sink>::type, Sink, Clock>;

}  // namespace pods

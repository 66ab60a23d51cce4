// pods/messaging/request_pipeline.hpp — Request Pipeline
//
// Problem:       Over one connection, sending a request and waiting for its response before
//                sending the next wastes a round trip per request: throughput is bounded by
//                1 / latency however fast both ends are.
// Solution:      Keep up to max_in_flight requests outstanding on the connection. Each request
//                gets a correlation id (1, 2, 3, ... in send order); the response names it.
//                try_send admits a request while the window has room (Errc::full otherwise)
//                and queues it for the connection; the owner takes the queued requests with
//                take_outgoing() and writes them, in order, to its Single-Socket Channel
//                (one TCP connection per peer, read by one reader, so the peer sees the
//                requests in send order). receive(id, response) feeds a response back;
//                expire() times out requests older than the timeout. Sans-IO: no socket,
//                thread or timer here, so the same object runs in the simulator and on TCP.
// Guarantees:    Callbacks are called exactly once each, in send order: a response that
//                arrives before an earlier request is answered is held until every earlier
//                request has completed or expired. A request counts against the window
//                from try_send until its callback runs. A request expires when
//                now - sent >= timeout (Errc::timeout); a late response for it is ignored.
// Not provided:  Retries (a timed-out request may still have been executed by the peer: pair
//                it with an IdempotentReceiver on the server). Thread safety.
// Thread safety: thread-compatible: one owner thread (the connection's event loop or a
//                SingularUpdateQueue worker). Callbacks run synchronously inside receive,
//                expire and fail_all, after the pipeline's state is updated, so a callback
//                may call try_send.
// Errors:        max_in_flight == 0 or timeout <= 0 throw std::invalid_argument naming the
//                argument; an empty callback throws std::invalid_argument naming `done`.
//                try_send returns Errc::full. A callback's exception propagates after every
//                other callback the same call completes has run (each callback still runs
//                exactly once).
// Cost:          try_send, receive: O(1) (a deque indexed by id - first id); one callback per
//                request (a MoveOnlyFunction: no allocation up to 24 bytes).
// Example:
//   pods::RequestPipeline<Request, Response> pipeline(/*max_in_flight=*/16, 5s);
//   if (auto id = pipeline.try_send(request, on_response)) {}  // else: Errc::full, wait
//   for (auto& [id, r] : pipeline.take_outgoing()) channel.write(id, r);
//   channel.on_read([&](auto id, Response r) { pipeline.receive(id, std::move(r)); });
//   timer.every(100ms, [&] { pipeline.expire(); });
// Example context: struct Request {};
// Example context: struct Response {};
// Example context: Request request;
// Example context: void on_response(pods::Outcome<Response>) {}
// Example context: struct Channel {
// Example context:   void write(std::uint64_t, const Request&) {}
// Example context:   template <class F> void on_read(F) {}
// Example context: };
// Example context: Channel channel;
// Example context: struct Timer { template <class F> void every(std::chrono::milliseconds, F) {} };
// Example context: Timer timer;
#pragma once

#include <pods/messaging/move_only_function.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods {

template <class Request, class Response, PhysicalClock Clock = SteadyClock>
class RequestPipeline {
 public:
  using CorrelationId = std::uint64_t;
  using Callback = detail::MoveOnlyFunction<void(Outcome<Response>)>;  // may be move-only

  // Creates an empty pipeline. Throws std::invalid_argument when max_in_flight == 0 or
  // timeout <= 0.
  RequestPipeline(std::size_t max_in_flight, std::chrono::nanoseconds timeout,
                  Clock clock = Clock())
      : max_in_flight_(max_in_flight), timeout_(timeout), clock_(std::move(clock)) {
    if (max_in_flight == 0)
      throw std::invalid_argument("RequestPipeline: max_in_flight must be at least 1");
    if (timeout.count() <= 0)
      throw std::invalid_argument("RequestPipeline: timeout must be positive, got " +
                                  std::to_string(timeout.count()) + " ns");
  }

  // Admits `request` when the window has room: queues it for take_outgoing(), retains
  // `done`, and returns its correlation id; returns Errc::full (nothing retained) otherwise.
  // Throws std::invalid_argument for an empty `done`. Allocates.
  Outcome<CorrelationId> try_send(Request request, Callback done) {
    if (!done) throw std::invalid_argument("RequestPipeline::try_send: done must not be empty");
    if (full()) return Errc::full;
    const CorrelationId id = first_id_ + entries_.size();
    entries_.push_back(Entry{std::move(done), clock_.now(), std::nullopt, false});
    outgoing_.emplace_back(id, std::move(request));
    return id;
  }

  // Returns the admitted requests not yet taken, in send order, for the owner to write to
  // the channel.
  std::vector<std::pair<CorrelationId, Request>> take_outgoing() {
    return std::exchange(outgoing_, {});
  }

  // Records the response to request `id` and completes every request it unblocks, in send
  // order. Returns false (and ignores it) for an unknown id: never sent, already answered,
  // or expired.
  bool receive(CorrelationId id, Response response) {
    if (id < first_id_ || id - first_id_ >= entries_.size()) return false;
    Entry& e = entries_[static_cast<std::size_t>(id - first_id_)];
    if (e.response || e.timed_out) return false;
    e.response.emplace(std::move(response));
    settle();
    return true;
  }

  // Times out (Errc::timeout) every unanswered request with now - sent >= timeout, and
  // completes the answered ones they were holding back, in send order. Returns how many
  // timed out.
  std::size_t expire() {
    const auto now = clock_.now();
    std::size_t timed_out = 0;
    for (Entry& e : entries_) {
      if (!e.response && !e.timed_out && now - e.sent >= timeout_) {
        e.timed_out = true;
        ++timed_out;
      }
    }
    settle();
    return timed_out;
  }

  // Fails every outstanding request with `error` (e.g. Errc::closed when the connection
  // dropped), in send order, and forgets the requests not yet taken. Returns how many.
  // Every callback runs, also when one throws; the first exception propagates afterwards.
  std::size_t fail_all(Errc error) {
    std::deque<Entry> failed = std::exchange(entries_, {});
    first_id_ += failed.size();
    outgoing_.clear();
    std::exception_ptr first;
    for (Entry& e : failed) {
      try {
        e.done(Outcome<Response>(error));
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
    return failed.size();
  }

  // Returns how many requests are outstanding (sent, callback not yet run).
  std::size_t in_flight() const noexcept { return entries_.size(); }
  // Returns true when try_send would refuse.
  bool full() const noexcept { return entries_.size() >= max_in_flight_; }
  std::size_t max_in_flight() const noexcept { return max_in_flight_; }

 private:
  struct Entry {
    Callback done;
    typename Clock::time_point sent;
    std::optional<Response> response;
    bool timed_out;
  };

  // Completes the answered or timed-out requests at the front, in send order. Every one of
  // them runs, also when a callback throws; the first exception propagates afterwards.
  void settle() {
    std::exception_ptr first;
    while (!entries_.empty() && (entries_.front().response || entries_.front().timed_out)) {
      Entry e = std::move(entries_.front());
      entries_.pop_front();
      ++first_id_;
      try {
        if (e.response) {
          e.done(Outcome<Response>(std::move(*e.response)));
        } else {
          e.done(Outcome<Response>(Errc::timeout));
        }
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
  }

  const std::size_t max_in_flight_;
  const std::chrono::nanoseconds timeout_;
  Clock clock_;
  CorrelationId first_id_ = 1;  // the id of entries_.front()
  std::deque<Entry> entries_;
  std::vector<std::pair<CorrelationId, Request>> outgoing_;
};

}  // namespace pods

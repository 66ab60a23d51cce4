// pods/messaging/request_waiting_list.hpp — Request Waiting List, and QuorumCallback
//
// Problem:       A node that sends requests to other nodes must answer its own client only
//                when the others reply (or a quorum of them does), without blocking a thread
//                per outstanding request and without forgetting requests whose reply never
//                comes.
// Solution:      Keep the pending requests in a list keyed by a correlation id (or a log
//                index), each with the callback to run on its response. A response completes
//                its entry; a log index that commits completes every entry up to it
//                (complete_up_to); a periodic expire() fails entries older than the timeout.
//                QuorumCallback is the callback for a request sent to n responders: it
//                completes when `quorum` of them succeeded and fails with Errc::no_quorum as
//                soon as too many failed (or timed out) for a quorum to be reached.
// Guarantees:    Every added callback is called exactly once: with the response, the error
//                given to fail(), Errc::timeout, or Errc::failed when complete_up_to's
//                make(k) threw for its key; also when other callbacks or make throw. Callbacks run
//                without any lock held, on the thread that completed, failed or expired them.
//                complete_up_to calls them in key order. An entry expires when now - added >=
//                timeout.
// Not provided:  A timer: the owner calls expire() (from a tick or a SingularUpdateQueue).
// Thread safety: thread-safe (one mutex; callbacks outside it). QuorumCallback: thread-safe.
// Errors:        A timeout <= 0, an empty callback, or a key already waiting throw
//                std::invalid_argument naming the argument; a throwing add changes nothing. The
//                first exception of a callback (or of make) propagates to the caller after
//                every other callback of the same call has run.
//                QuorumCallback: responders == 0 or quorum outside [1, responders] throw
//                std::invalid_argument naming the argument.
// Cost:          add, complete, fail: O(log n) and one node allocation; expire: O(log n) per
//                expired entry; a callback is a MoveOnlyFunction (allocates only when the
//                callable exceeds 24 bytes or may throw on move).
// Example:
//   pods::RequestWaitingList<std::uint64_t, Reply> waiting(5s);
//   auto quorum = pods::QuorumCallback<NodeId, Reply>::make(3, 2, [&](auto result) {
//     if (result) client.reply_ok(); else client.reply_error(result.error());
//   });
//   for (NodeId peer : peers) {                      // one request per peer
//     waiting.add(next_id, quorum->for_responder(peer));
//     send(peer, next_id++);
//   }
//   waiting.complete(id, reply);                     // from the network handler
//   waiting.expire();                                // from a periodic tick
// Example context: struct Reply {};
// Example context: using NodeId = int;
// Example context: struct Client { void reply_ok() {} void reply_error(pods::Errc) {} };
// Example context: Client client;
// Example context: std::vector<NodeId> peers{1, 2, 3};
// Example context: void send(NodeId, std::uint64_t) {}
// Example context: std::uint64_t next_id = 1, id = 1;
// Example context: Reply reply;
#pragma once

#include <pods/messaging/move_only_function.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>

#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods {

// RequestWaitingList: callbacks waiting for responses, keyed by Key (ordered).
template <class Key, class Response, PhysicalClock Clock = SteadyClock>
class RequestWaitingList {
 public:
  // Called exactly once. Move-only: a callback may own a std::promise (any callable with
  // this signature converts, a std::function too).
  using Callback = detail::MoveOnlyFunction<void(Outcome<Response>)>;

  // Creates an empty list. Throws std::invalid_argument when `timeout` <= 0.
  explicit RequestWaitingList(std::chrono::nanoseconds timeout, Clock clock = Clock())
      : timeout_(timeout), clock_(std::move(clock)) {
    if (timeout.count() <= 0)
      throw std::invalid_argument("RequestWaitingList: timeout must be positive, got " +
                                  std::to_string(timeout.count()) + " ns");
  }

  // Adds a waiting request (retains `done`). Throws std::invalid_argument when `key` is
  // already waiting or `done` is empty. Allocates. Strong guarantee: when it throws (also
  // std::bad_alloc or a throwing copy of the key), the list is as it was.
  void add(Key key, Callback done) {
    if (!done) throw std::invalid_argument("RequestWaitingList::add: done must not be empty");
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    auto [it, inserted] = entries_.try_emplace(std::move(key));
    if (!inserted) throw std::invalid_argument("RequestWaitingList::add: key is already waiting");
    try {
      it->second.by_time = by_time_.emplace(now, it->first);  // copies the key: may throw
    } catch (...) {
      entries_.erase(it);
      throw;
    }
    it->second.done = std::move(done);
    it->second.added = now;
  }

  // Completes `key` with `response`; returns false for an unknown key (late or duplicate).
  // Propagates the callback's exception.
  bool complete(const Key& key, Response response) {
    Callback done = take(key);
    if (!done) return false;
    done(Outcome<Response>(std::move(response)));
    return true;
  }

  // Completes every waiting key <= `key`, in key order, with make(k). make and the callbacks
  // run without the lock. When make(k) throws, k's callback gets Errc::failed; the first
  // exception (of make or a callback) propagates after every callback has run. Returns how
  // many were completed.
  template <class MakeResponse>
  std::size_t complete_up_to(const Key& key, MakeResponse make) {
    std::vector<Node> ready;
    {
      std::lock_guard lock(mutex_);
      const auto end = entries_.upper_bound(key);
      // Reserve first, so that taking the entries out cannot throw halfway.
      ready.reserve(static_cast<std::size_t>(std::distance(entries_.begin(), end)));
      for (auto it = entries_.begin(); it != end;) {
        const auto next = std::next(it);
        by_time_.erase(it->second.by_time);
        ready.push_back(entries_.extract(it));
        it = next;
      }
    }
    run_all(ready, [&](const Key& k) { return Outcome<Response>(make(k)); });
    return ready.size();
  }

  // Fails `key` with `error`; returns false for an unknown key.
  bool fail(const Key& key, Errc error) {
    Callback done = take(key);
    if (!done) return false;
    done(Outcome<Response>(error));
    return true;
  }

  // Fails with Errc::timeout every entry with now - added >= timeout, oldest first. Returns
  // how many expired.
  std::size_t expire() {
    std::vector<Node> expired;
    {
      const auto now = clock_.now();
      std::lock_guard lock(mutex_);
      std::size_t n = 0;
      for (auto t = by_time_.begin(); t != by_time_.end() && now - t->first >= timeout_; ++t)
        ++n;
      expired.reserve(n);  // before anything is taken out, so that nothing is lost
      for (; n != 0; --n) {
        auto it = entries_.find(by_time_.begin()->second);
        by_time_.erase(by_time_.begin());
        expired.push_back(entries_.extract(it));
      }
    }
    run_all(expired, [](const Key&) { return Outcome<Response>(Errc::timeout); });
    return expired.size();
  }

  // Returns how many requests are waiting.
  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

  // Returns true when the request `key` is still waiting (not completed, failed or expired).
  bool contains(const Key& key) const {
    std::lock_guard lock(mutex_);
    return entries_.contains(key);
  }

  // Returns the timeout given at construction.
  std::chrono::nanoseconds timeout() const noexcept { return timeout_; }

 private:
  using TimePoint = typename Clock::time_point;
  struct Entry {
    Callback done;
    TimePoint added{};
    typename std::multimap<TimePoint, Key>::iterator by_time;
  };
  using Node = typename std::map<Key, Entry>::node_type;  // an entry taken out of the list

  Callback take(const Key& key) {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end()) return {};
    Callback done = std::move(it->second.done);
    by_time_.erase(it->second.by_time);
    entries_.erase(it);
    return done;
  }

  // Calls every entry's callback in order with outcome(key), or with Errc::failed when
  // outcome(key) throws; rethrows the first exception at the end.
  template <class MakeOutcome>
  static void run_all(std::vector<Node>& entries, MakeOutcome outcome) {
    std::exception_ptr first;
    for (Node& entry : entries) {
      std::optional<Outcome<Response>> result;
      try {
        result.emplace(outcome(std::as_const(entry.key())));
      } catch (...) {
        if (!first) first = std::current_exception();
        result.emplace(Errc::failed);
      }
      try {
        entry.mapped().done(std::move(*result));
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    if (first) std::rethrow_exception(first);
  }

  const std::chrono::nanoseconds timeout_;
  Clock clock_;
  mutable std::mutex mutex_;
  std::map<Key, Entry> entries_;
  std::multimap<TimePoint, Key> by_time_;  // expiry order
};

// QuorumCallback: collects the responses of `responders` nodes to one request and calls
// `done` once: with the successful responses when `quorum` succeeded, or with
// Errc::no_quorum when more than responders - quorum failed. Each responder counts once.
template <class Responder, class Response>
class QuorumCallback : public std::enable_shared_from_this<QuorumCallback<Responder, Response>> {
  struct Private {};

 public:
  using Responses = std::vector<std::pair<Responder, Response>>;
  using Done = detail::MoveOnlyFunction<void(Outcome<Responses>)>;  // may be move-only

  // Returns the majority of n: n / 2 + 1.
  static constexpr std::size_t majority(std::size_t n) noexcept { return n / 2 + 1; }

  // Creates a shared QuorumCallback (the per-responder callbacks keep it alive). Throws
  // std::invalid_argument when responders == 0, quorum is outside [1, responders] or `done`
  // is empty.
  static std::shared_ptr<QuorumCallback> make(std::size_t responders, std::size_t quorum,
                                              Done done) {
    return std::make_shared<QuorumCallback>(Private{}, responders, quorum, std::move(done));
  }

  QuorumCallback(Private, std::size_t responders, std::size_t quorum, Done done)
      : responders_(responders), quorum_(quorum), done_(std::move(done)) {
    if (responders == 0)
      throw std::invalid_argument("QuorumCallback: responders must be at least 1");
    if (quorum == 0 || quorum > responders)
      throw std::invalid_argument("QuorumCallback: quorum must be in [1, responders], got " +
                                  std::to_string(quorum) + " of " + std::to_string(responders));
    if (!done_) throw std::invalid_argument("QuorumCallback: done must not be empty");
  }

  // Returns the callback for the request sent to `from`, to add to a RequestWaitingList.
  std::function<void(Outcome<Response>)> for_responder(Responder from) {
    return [self = this->shared_from_this(), from = std::move(from)](Outcome<Response> r) {
      self->on_response(from, std::move(r));
    };
  }

  // Records `from`'s outcome (an error, e.g. Errc::timeout, counts as a failure). Returns
  // true when this call decided the request (and called done). A second outcome from the
  // same responder and any outcome after the decision are ignored. Calls done without the
  // lock; propagates its exception.
  bool on_response(const Responder& from, Outcome<Response> response) {
    Outcome<Responses> result = Errc::no_quorum;
    {
      std::lock_guard lock(mutex_);
      if (decided_) return false;
      for (const Responder& seen : answered_) {
        if (seen == from) return false;
      }
      answered_.push_back(from);
      if (response) {
        successes_.emplace_back(from, std::move(*response));
        if (successes_.size() < quorum_) return false;
        result = std::move(successes_);
      } else {
        ++failures_;
        if (failures_ <= responders_ - quorum_) return false;
      }
      decided_ = true;
    }
    Done done = std::move(done_);
    done(std::move(result));
    return true;
  }

  // Returns true once done has been called (or is being called).
  bool decided() const {
    std::lock_guard lock(mutex_);
    return decided_;
  }

 private:
  const std::size_t responders_;
  const std::size_t quorum_;
  mutable std::mutex mutex_;
  Done done_;
  std::vector<Responder> answered_;
  Responses successes_;
  std::size_t failures_ = 0;
  bool decided_ = false;
};

}  // namespace pods

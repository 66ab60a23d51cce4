// pods/messaging/idempotent_receiver.hpp — Idempotent Receiver
//
// Problem:       A client that gets no response retries, but the server may have executed
//                the first attempt already (only the response was lost). Executing the retry
//                again applies the change twice: a transfer moves money twice.
// Solution:      Each client registers, gets a session (client, id), and numbers its
//                requests (seq) within it; every request carries the session. The server
//                remembers, per client, the response of every request it executed; a retry
//                with the same (session, seq) gets the remembered response instead of a second
//                execution. A request of an older session of the client (a retry delayed past
//                a re-registration, whose seq now means a different request) is refused.
//                Every request also carries the client's lowest unacknowledged seq (every
//                response below it has reached the client), so the server drops those
//                responses; and a client silent for longer than the session timeout is
//                forgotten. Memory is thereby bounded by live clients x window.
// Guarantees:    fn runs at most once per (client, seq) of a session, also under concurrent
//                retries: a retry that arrives while fn runs waits for it and returns the same
//                response. A request naming any session but the client's current one never
//                runs fn and does not refresh the current session. At most max_window responses
//                (cached or being computed) are kept per client; cached_responses() reports them.
// Not provided:  Durability: the cache lives in memory (a node that restarts forgets it;
//                persist it through a write-ahead log when that matters). Ordering of a
//                client's requests (combine with a SingularUpdateQueue).
// Thread safety: thread-safe. One mutex guards the sessions; fn runs without it, so clients
//                do not wait for each other's work.
// Errors:        execute returns Errc::unknown_client (never registered, removed by
//                expire_sessions or unregister_client, or a session id this receiver never
//                gave the client), Errc::session_expired (the session is not the client's
//                current one: a newer registration replaced it; or it was idle for
//                >= timeout, and is then removed), Errc::duplicate (seq below the client's
//                acknowledged mark: its response was already delivered and dropped), Errc::full
//                (the client has max_window unacknowledged requests), or Errc::failed (fn threw on
//                the first attempt: the exception went to that attempt, retries get Errc::failed).
//                A timeout <= 0 or max_window == 0 throw std::invalid_argument naming it.
// Cost:          execute: O(log clients + log window) under the lock; one map node per
//                cached response; a copy of the response for each caller.
// Example:
//   pods::IdempotentReceiver<std::string, std::uint64_t, Reply> receiver(30s, 64);
//   auto session = receiver.register_client("c1");      // the client keeps its session
//   auto r = receiver.execute(session, /*seq=*/7, /*lowest_unacknowledged=*/5,
//                             [&] { return store.apply(request); });  // runs once for seq 7
//   receiver.expire_sessions();                        // from a periodic tick
// Example context: struct Reply {};
// Example context: struct Request {};
// Example context: struct Store { Reply apply(const Request&) { return {}; } };
// Example context: Store store;
// Example context: Request request;
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace pods {

template <class ClientId, class Seq, class Response, PhysicalClock Clock = SteadyClock>
class IdempotentReceiver {
 public:
  // A client's registration: which client, and which incarnation (re-registering starts a
  // new session with a larger id and an empty cache).
  struct Session {
    ClientId client;
    std::uint64_t id;
  };

  // Creates a receiver forgetting sessions idle for `session_timeout` and keeping at most
  // `max_window` responses per client. Throws std::invalid_argument when session_timeout <= 0
  // or max_window == 0.
  IdempotentReceiver(std::chrono::nanoseconds session_timeout, std::size_t max_window,
                     Clock clock = Clock())
      : timeout_(session_timeout), max_window_(max_window), clock_(std::move(clock)) {
    if (session_timeout.count() <= 0)
      throw std::invalid_argument("IdempotentReceiver: session_timeout must be positive, got " +
                                  std::to_string(session_timeout.count()) + " ns");
    if (max_window == 0)
      throw std::invalid_argument("IdempotentReceiver: max_window must be at least 1");
  }

  // Registers `client` with a fresh session (replacing a previous one and its cache) and
  // returns it. Allocates.
  Session register_client(ClientId client) {
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    const std::uint64_t id = ++next_session_;
    auto& state = sessions_[client];
    state = std::make_shared<ClientState>();
    state->session = id;
    state->last_seen = now;
    return Session{std::move(client), id};
  }

  // Runs fn() for (session, seq) unless it ran before, and returns its response; a retry
  // gets the cached response (a copy). Refuses a session that is not the client's current
  // one (Errc::session_expired for an older one, Errc::unknown_client for one never given
  // to the client). First drops the client's responses with seq below
  // `lowest_unacknowledged`. Returns an Errc as listed in the header comment. fn runs without
  // the lock; its exception propagates to this caller (retries then get Errc::failed).
  template <class Fn>
  requires std::is_convertible_v<std::invoke_result_t<Fn&>, Response> Outcome<Response> execute(
      const Session& session, const Seq& seq, const Seq& lowest_unacknowledged, Fn&& fn) {
    const auto now = clock_.now();
    std::unique_lock lock(mutex_);
    auto it = sessions_.find(session.client);
    if (it == sessions_.end()) return Errc::unknown_client;
    std::shared_ptr<ClientState> state = it->second;
    // Ids grow with every registration, so an id below the current one is an older session.
    if (session.id != state->session)
      return session.id < state->session ? Errc::session_expired : Errc::unknown_client;
    if (now - state->last_seen >= timeout_) {
      sessions_.erase(it);
      return Errc::session_expired;
    }
    state->last_seen = now;
    if (state->acknowledged < lowest_unacknowledged) state->acknowledged = lowest_unacknowledged;
    auto& cache = state->responses;
    for (auto c = cache.begin(); c != cache.end() && c->first < state->acknowledged;)
      c = cache.erase(c);  // a running attempt keeps its entry through its shared_ptr
    if (seq < state->acknowledged) return Errc::duplicate;
    if (auto found = cache.find(seq); found != cache.end()) {
      // A retry: wait for a running first attempt, then answer from the cache.
      std::shared_ptr<Entry> entry = found->second;
      done_.wait(lock, [&] { return !entry->running; });
      if (!entry->response) return Errc::failed;
      return *entry->response;
    }
    if (cache.size() >= max_window_) return Errc::full;
    auto slot = std::make_shared<Entry>();
    cache.emplace(seq, slot);
    lock.unlock();

    std::optional<Response> response;
    std::exception_ptr error;
    try {
      response.emplace(fn());
    } catch (...) {
      error = std::current_exception();
    }

    lock.lock();
    slot->running = false;
    if (response) slot->response = *response;
    lock.unlock();
    done_.notify_all();
    if (error) std::rethrow_exception(error);
    return std::move(*response);
  }

  // Forgets every session idle for >= the timeout; returns how many.
  std::size_t expire_sessions() {
    const auto now = clock_.now();
    std::lock_guard lock(mutex_);
    return std::erase_if(sessions_, [&](const auto& s) {
      return now - s.second->last_seen >= timeout_ && !s.second->busy();
    });
  }

  // Forgets `client`'s session (a client that says goodbye); returns false when unknown.
  bool unregister_client(const ClientId& client) {
    std::lock_guard lock(mutex_);
    return sessions_.erase(client) != 0;
  }

  // Returns how many clients have a session (expired ones count until removed).
  std::size_t clients() const {
    std::lock_guard lock(mutex_);
    return sessions_.size();
  }

  // Returns how many responses `client` has cached or being computed (0 when unknown).
  std::size_t cached_responses(const ClientId& client) const {
    std::lock_guard lock(mutex_);
    auto it = sessions_.find(client);
    return it == sessions_.end() ? 0 : it->second->responses.size();
  }

  // Returns how many responses all clients have cached or being computed.
  std::size_t cached_responses() const {
    std::lock_guard lock(mutex_);
    std::size_t n = 0;
    for (const auto& s : sessions_)
      n += s.second->responses.size();
    return n;
  }

  std::size_t max_window() const noexcept { return max_window_; }

 private:
  struct Entry {
    bool running = true;
    std::optional<Response> response;  // empty after the first attempt threw
  };
  // Held by shared_ptr so a running execute keeps its entries alive if the session is
  // replaced or removed meanwhile.
  struct ClientState {
    std::uint64_t session = 0;
    typename Clock::time_point last_seen{};
    Seq acknowledged{};
    std::map<Seq, std::shared_ptr<Entry>> responses;
    bool busy() const {
      for (const auto& r : responses) {
        if (r.second->running) return true;
      }
      return false;
    }
  };

  const std::chrono::nanoseconds timeout_;
  const std::size_t max_window_;
  Clock clock_;
  mutable std::mutex mutex_;
  std::condition_variable done_;
  std::uint64_t next_session_ = 0;
  std::map<ClientId, std::shared_ptr<ClientState>> sessions_;
};

}  // namespace pods

// pods/policy/transport.hpp — the Transport policy: how a protocol block sends a message
//
// Problem:       A protocol that opens sockets itself can only be tested on a real network,
//                where the interleavings that break it (a loss, a duplicate, a late delivery)
//                cannot be produced on demand or replayed.
// Solution:      A protocol block never does I/O. It sends through a Transport policy: a cheap
//                value with `send(to, message)`. Delivery goes the other way, to a handler the
//                owner of the transport installs, which calls the block's receive(from, m).
//                Production passes a TCP transport, tests a sim::Network endpoint (a seeded
//                fair-loss link) or the Outbox double here, which only records what was sent.
// Guarantees:    Outbox: records every send in order; copies share one record.
// Not provided:  Outbox delivers nothing: a test moves messages between blocks itself.
// Thread safety: Outbox is thread-compatible: copies share one record, so every copy must be
//                used from one thread at a time (or under one external lock).
// Errors:        Outbox never throws except std::bad_alloc.
// Cost:          Outbox::send: one amortised push_back (a move of the message).
// Example:
//   pods::Outbox<Msg> out;
//   Follower follower(out);                   // the block holds a copy of the outbox
//   follower.receive(leader_id, append);      // the block answers through out.send(...)
//   for (auto& [to, reply] : out.take())      // the test delivers, drops or reorders
//     leader.receive(follower_id, reply);
// Example context: struct Msg { int term = 0; };
// Example context: struct Follower {
// Example context:   explicit Follower(pods::Outbox<Msg> o) : out(o) {}
// Example context:   void receive(pods::NodeId from, Msg m) { out.send(from, m); }
// Example context:   pods::Outbox<Msg> out;
// Example context: };
// Example context: struct Leader { void receive(pods::NodeId, const Msg&) {} };
// Example context: inline Leader leader;
// Example context: inline Msg append{1};
// Example context: inline pods::NodeId leader_id = 1, follower_id = 2;
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace pods {

// The identifier of a node (a process) of a distributed system. Its meaning is the user's: an
// index, a hash of an address, a configuration id.
using NodeId = std::uint64_t;

// A Transport<T, M> sends messages of type M to other nodes.
// Semantic requirements the compiler cannot check:
//   - send(to, m) never blocks on the network: it queues m (or drops it) and returns;
//   - send never calls back into the sender synchronously: delivery, even to itself, happens
//     later, through the receiver's handler, so a block may send from inside receive();
//   - each model documents its link guarantee in the textbook terms (Cachin, Guerraoui and
//     Rodrigues, "Introduction to Reliable and Secure Distributed Programming", 2.4):
//       fair-loss:   a message sent infinitely often is delivered infinitely often; a message
//                    may be lost, duplicated finitely often, delayed and reordered, and is
//                    never invented (sim::Network endpoints, UDP);
//       reliable:    a message sent between two correct nodes is delivered exactly once
//                    (ReliableLink over a fair-loss link, TCP while the connection lives);
//       authenticated: reliable, and a delivered message was sent by the named sender;
//   - it is a cheap copyable handle: a block stores a copy, and copies send on one link.
// Write it as `template <class M, pods::Transport<M> T>`.
// clang-format off
template <class T, class M>
concept Transport = std::copy_constructible<T> && requires(T& t, NodeId to, M m) {
  t.send(to, std::move(m));
};
// clang-format on

// Outbox<M>: the test double. It records every (to, message) pair sent through it, in order,
// and delivers nothing. Copies share one record through a shared_ptr, so the test keeps one
// copy and the block under test another.
template <class M>
class Outbox {
 public:
  // One recorded send.
  struct Sent {
    NodeId to = 0;
    M message;

    friend bool operator==(const Sent&, const Sent&) = default;
  };

  // Creates an empty outbox. Allocates the shared record.
  Outbox() : sent_(std::make_shared<std::vector<Sent>>()) {}

  // Records `message` (moved, retained until take() or clear()) as sent to `to`. Allocates
  // as the record grows.
  void send(NodeId to, M message) { sent_->push_back(Sent{to, std::move(message)}); }

  // Returns every recorded send, oldest first, and clears the record.
  std::vector<Sent> take() { return std::exchange(*sent_, {}); }

  // Returns the record without clearing it. The reference is invalidated by the next send,
  // take or clear on any copy.
  const std::vector<Sent>& sent() const noexcept { return *sent_; }

  // Returns how many sends are recorded.
  std::size_t size() const noexcept { return sent_->size(); }

  // Returns true when nothing is recorded.
  bool empty() const noexcept { return sent_->empty(); }

  // Forgets every recorded send.
  void clear() noexcept { sent_->clear(); }

 private:
  std::shared_ptr<std::vector<Sent>> sent_;
};
static_assert(Transport<Outbox<int>, int>);
static_assert(Transport<Outbox<std::vector<std::byte>>, std::vector<std::byte>>);

}  // namespace pods

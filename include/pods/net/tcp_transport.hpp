// pods/net/tcp_transport.hpp — Single-Socket Channel: a Transport over TCP (standalone Asio)
//
// Problem:       Protocol blocks send messages to node ids; between processes that means TCP.
//                Opening a connection per message (or two per pair of nodes, one each way)
//                loses the order in which a node sent to a peer, a connection that died must be
//                found again, and a peer that is down or slow must not make the sender buffer
//                without bound or block a protocol's thread.
// Solution:      One TCP connection per pair of nodes carries both directions (the book's
//                Single-Socket Channel): the node with the lower id dials, the higher one
//                accepts, so two connections can never both live. Each side opens with a
//                handshake (<pods/net/frame.hpp>): format version, the application's protocol
//                version, its own id and the id it means to reach; the acceptor checks that
//                the dialer is a configured peer with a lower id, the dialer that the node it
//                reached is the one it meant, and any other connection is closed and counted.
//                Messages are encoded by the Codec on the sender's thread straight into a
//                frame (length, CRC32C, bytes) at the end of the peer's send queue, under the
//                queue's lock (a codec that throws, a message over max_frame_bytes or one
//                past the queue bounds cuts the queue back: no partial frame); the I/O thread
//                writes everything queued for a peer in one write (the whole queue is one
//                contiguous buffer: the batch), and while that write is in flight new frames
//                gather for the next. The reader decodes frames (FrameDecoder) and calls
//                on_receive(from, message). A connection that fails is closed; the dialer
//                retries with capped exponential backoff and jitter (pods::Random, seeded from
//                the options), so a restarted peer is found again, at a new address once
//                set_peer names it.
// Guarantees:    Messages to one peer are received in the order send() accepted them, on any
//                thread, and each at most once (a reconnection may leave a gap: see below).
//                Messages accepted while the peer is down stay queued and are written when it
//                connects. A peer's send queue holds at most max_queue_messages messages and
//                max_queue_bytes bytes (frames included), counting those in the write in
//                flight: send() returns Errc::full past them, so memory stays bounded when a
//                peer never comes up or reads slowly. A frame over max_frame_bytes, with a bad
//                checksum, or whose bytes the Codec rejects closes its connection, is counted
//                and reported to on_event, and never reaches on_receive. After stop() returns,
//                on_receive and on_event are not called again.
// Not provided:  Delivery across a connection failure: the batch being written when a
//                connection dies is dropped (counted in dropped_in_flight), since TCP cannot
//                say how much of it arrived; resending it could duplicate. Stack a
//                ReliableLink for exactly-once delivery. Authentication (the handshake's ids
//                are claims: stack an AuthenticatedLink). Encryption. Name resolution beyond
//                what asio's resolver does at each dial.
// Thread safety: thread-safe handle: copies share one transport. send, set_peer, connected,
//                wait_connected, queued_approx, stats, local_port and self may be called from any
//                thread at any time. on_receive and on_event must be called before start(),
//                start() once. stop() is idempotent, from any thread, including from inside a
//                handler (then the own I/O thread is detached, not joined). The handlers run on
//                the I/O thread (the transport's strand on a user's io_context), one at a time.
//                The Codec's encode runs under the peer's queue lock: it must not call send.
// Errors:        send: Errc::full (queue bound), Errc::closed (after stop), Errc::failed (no
//                set_peer for that id); it throws std::invalid_argument when the message
//                encodes to more than max_frame_bytes. The constructors throw
//                std::invalid_argument for bad options (naming the option) and
//                std::system_error naming the address when binding fails. set_peer throws
//                std::invalid_argument for its own id; on_receive, on_event after start() and
//                a second start() throw std::logic_error. Network failures are never thrown:
//                they are counted in stats() and reported to on_event.
// Cost:          send: a lookup of the peer (cached per sending thread), one lock, one encode
//                straight into the queue, one CRC32C; when the writer is idle, a post to the
//                I/O thread, or from the I/O thread itself (a handler) the write at once. One
//                write system call per batch, one read per read_chunk bytes, no allocation per
//                message in steady state (queues and the read buffer keep their capacity).
// Example:
//   pods::net::TcpTransport<std::string, pods::StringCodec> a(1), b(2);
//   b.on_receive([](pods::NodeId, std::string m) { std::puts(m.c_str()); });
//   a.set_peer(2, "127.0.0.1", b.local_port());   // the lower id dials
//   b.set_peer(1, "127.0.0.1", a.local_port());   // the higher id accepts
//   a.start();
//   b.start();
//   if (!a.send(2, "hello")) std::puts("queue full");
//   a.stop();
//   b.stop();
#pragma once

#include <pods/net/frame.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/random.hpp>
#include <pods/policy/transport.hpp>

#include <asio.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

namespace pods::net {

// The configuration of a TcpTransport.
struct TcpOptions {
  std::string listen_host = "127.0.0.1";  // an IP address to listen on
  std::uint16_t listen_port = 0;          // 0: a port the OS chooses (see local_port())
  std::uint32_t application_version = 0;  // both ends must agree (checked by the handshake)
  std::size_t max_frame_bytes = default_max_frame_bytes;  // larger frames close the connection
  std::size_t max_queue_messages = std::size_t{1} << 16;  // per peer, the batch in flight included
  std::size_t max_queue_bytes = std::size_t{64} << 20;    // per peer, frame headers included
  std::chrono::milliseconds reconnect_min{10};            // first retry after a failed dial
  std::chrono::milliseconds reconnect_max{2000};          // the cap of the doubling backoff
  std::chrono::milliseconds handshake_timeout{5000};      // a silent new connection is closed
  std::size_t read_chunk = std::size_t{64} << 10;         // bytes asked of each read
  std::uint64_t seed = 0;                                 // for the backoff jitter
};

// A snapshot of a TcpTransport's counters (each counts since construction).
struct TcpStats {
  std::uint64_t frames_sent = 0;              // frames whose write completed
  std::uint64_t frames_received = 0;          // frames decoded and handed to on_receive
  std::uint64_t bytes_sent = 0;               // bytes written, headers included
  std::uint64_t bytes_received = 0;           // bytes read, handshakes excluded
  std::uint64_t batches_sent = 0;             // write calls that carried frames
  std::uint64_t connections_accepted = 0;     // sockets accepted
  std::uint64_t connections_dialed = 0;       // sockets connected by a dial
  std::uint64_t connections_closed = 0;       // accepted or dialed sockets closed
  std::uint64_t dial_attempts = 0;            // dials started, the first one included
  std::uint64_t unknown_node_handshakes = 0;  // a peer not configured, or not the one meant
  std::uint64_t bad_handshakes = 0;           // bad bytes, another version, silence, early close
  std::uint64_t corrupt_frames = 0;           // a length over the maximum or a bad checksum
  std::uint64_t truncated_frames = 0;         // the stream ended inside a frame
  std::uint64_t rejected_messages = 0;        // frames the Codec could not decode
  std::uint64_t handler_exceptions = 0;       // exceptions thrown by on_receive (caught)
  std::uint64_t queue_full = 0;               // sends refused with Errc::full
  std::uint64_t unknown_destination = 0;      // sends to an id set_peer never named
  std::uint64_t dropped_in_flight = 0;  // in a batch a failure or stop() cut (may have arrived)
  std::uint64_t dropped_on_stop = 0;    // messages still queued when stop() ran

  friend bool operator==(const TcpStats&, const TcpStats&) = default;
};

// Something a TcpTransport reports to its on_event hook (a log line's worth).
struct TcpEvent {
  enum class Kind {
    connected,          // a handshake completed with `peer`
    disconnected,       // the connection with `peer` closed
    dial_failed,        // resolving or connecting to `peer` failed; a retry is scheduled
    bad_handshake,      // bytes that are not a handshake, another version, or a timeout
    unknown_node,       // a handshake from a node not configured, or not the one dialed
    corrupt_frame,      // a frame over the maximum or with a bad checksum
    truncated_frame,    // the peer closed inside a frame
    rejected_message,   // the Codec threw on a frame's bytes
    handler_exception,  // on_receive threw (the exception is caught; delivery goes on)
    accept_failed,      // accepting a connection failed
  };
  Kind kind;
  std::optional<NodeId> peer;  // the node concerned, when known
  std::string detail;          // a human-readable description
};

// Returns the stable name of a TcpEvent::Kind, e.g. "corrupt_frame".
constexpr std::string_view to_string(TcpEvent::Kind k) noexcept {
  switch (k) {
    case TcpEvent::Kind::connected:
      return "connected";
    case TcpEvent::Kind::disconnected:
      return "disconnected";
    case TcpEvent::Kind::dial_failed:
      return "dial_failed";
    case TcpEvent::Kind::bad_handshake:
      return "bad_handshake";
    case TcpEvent::Kind::unknown_node:
      return "unknown_node";
    case TcpEvent::Kind::corrupt_frame:
      return "corrupt_frame";
    case TcpEvent::Kind::truncated_frame:
      return "truncated_frame";
    case TcpEvent::Kind::rejected_message:
      return "rejected_message";
    case TcpEvent::Kind::handler_exception:
      return "handler_exception";
    case TcpEvent::Kind::accept_failed:
      return "accept_failed";
  }
  return "unknown";
}

namespace detail {

// Throws std::invalid_argument naming the first option that breaks its rule.
inline void check_tcp_options(const TcpOptions& o) {
  auto bad = [](const char* what) {
    std::string message = "TcpOptions::";
    message += what;
    throw std::invalid_argument(message);
  };
  if (o.max_frame_bytes == 0 || o.max_frame_bytes > max_frame_format_bytes) {
    bad("max_frame_bytes must be between 1 and 4294967295");
  }
  if (o.max_queue_messages == 0) bad("max_queue_messages must be positive");
  if (o.max_queue_bytes < o.max_frame_bytes + frame_header_bytes) {
    bad("max_queue_bytes must hold at least one frame of max_frame_bytes");
  }
  if (o.reconnect_min.count() <= 0) bad("reconnect_min must be positive");
  if (o.reconnect_max < o.reconnect_min) bad("reconnect_max must not be below reconnect_min");
  if (o.handshake_timeout.count() <= 0) bad("handshake_timeout must be positive");
  if (o.read_chunk == 0) bad("read_chunk must be positive");
}

struct TcpCounters {
  std::atomic<std::uint64_t> frames_sent{0}, frames_received{0}, bytes_sent{0}, bytes_received{0},
      batches_sent{0}, connections_accepted{0}, connections_dialed{0}, connections_closed{0},
      dial_attempts{0}, unknown_node_handshakes{0}, bad_handshakes{0}, corrupt_frames{0},
      truncated_frames{0}, rejected_messages{0}, handler_exceptions{0}, queue_full{0},
      unknown_destination{0}, dropped_in_flight{0}, dropped_on_stop{0};

  TcpStats snapshot() const noexcept {
    auto v = [](const std::atomic<std::uint64_t>& a) { return a.load(std::memory_order_relaxed); };
    return {v(frames_sent),         v(frames_received),
            v(bytes_sent),          v(bytes_received),
            v(batches_sent),        v(connections_accepted),
            v(connections_dialed),  v(connections_closed),
            v(dial_attempts),       v(unknown_node_handshakes),
            v(bad_handshakes),      v(corrupt_frames),
            v(truncated_frames),    v(rejected_messages),
            v(handler_exceptions),  v(queue_full),
            v(unknown_destination), v(dropped_in_flight),
            v(dropped_on_stop)};
  }
};

inline void bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) noexcept {
  c.fetch_add(n, std::memory_order_relaxed);
}

// Adds one to a counter only the transport's strand writes: a plain load and store, no locked
// read-modify-write (readers still see each value whole; the strand orders the writers).
inline void bump_by_strand(std::atomic<std::uint64_t>& c) noexcept {
  c.store(c.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

// The shared state of one transport. Everything not marked otherwise runs on `strand_`.
template <class M, class C>
class TcpCore : public std::enable_shared_from_this<TcpCore<M, C>> {
  using tcp = asio::ip::tcp;
  using Strand = asio::strand<asio::io_context::executor_type>;

 public:
  using ReceiveHandler = std::function<void(NodeId, M)>;
  using EventHandler = std::function<void(const TcpEvent&)>;

  TcpCore(asio::io_context* user_io, NodeId self, TcpOptions options, C codec)
      : own_(user_io ? nullptr : std::make_unique<asio::io_context>(1)),
        io_(user_io ? user_io : own_.get()),
        strand_(asio::make_strand(*io_)),
        acceptor_(strand_),
        resolver_(strand_),
        self_(self),
        options_((check_tcp_options(options), std::move(options))),
        codec_(std::move(codec)) {
    asio::error_code ec;
    const auto address = asio::ip::make_address(options_.listen_host, ec);
    if (ec) {
      std::string message = "TcpOptions::listen_host: \"";
      message += options_.listen_host;
      message += "\" is not an IP address";
      throw std::invalid_argument(message);
    }
    const tcp::endpoint at(address, options_.listen_port);
    std::string where = "TcpTransport: listen on ";
    where += options_.listen_host;
    where += ":";
    where += std::to_string(options_.listen_port);
    acceptor_.open(at.protocol(), ec);
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(at, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) throw std::system_error(ec, where);
    port_ = acceptor_.local_endpoint().port();
  }

  ~TcpCore() {
    if (thread_.joinable()) thread_.detach();  // only when stop() ran on the I/O thread
  }

  NodeId self() const noexcept { return self_; }
  std::uint16_t local_port() const noexcept { return port_; }
  TcpStats stats() const noexcept { return counters_.snapshot(); }

  void on_receive(ReceiveHandler h) {
    check_not_started("on_receive");
    on_receive_ = std::move(h);
  }
  void on_event(EventHandler h) {
    check_not_started("on_event");
    on_event_ = std::move(h);
  }

  void start() {
    if (started_.exchange(true)) throw std::logic_error("TcpTransport::start: already started");
    if (stopped_.load()) return;
    asio::post(strand_, [self = this->shared_from_this()] {
      self->running_ = true;
      self->accept();
      for (Peer* peer : self->all_peers())
        self->maybe_dial(*peer);
    });
    if (own_) {
      work_.emplace(io_->get_executor());
      std::lock_guard lock(thread_mu_);
      thread_ = std::thread([self = this->shared_from_this()] {
        self->io_->run();
        self->io_done_.set_value();  // the last thing the I/O thread does with the core
      });
      io_thread_ = thread_.get_id();
      thread_started_ = true;
    }
  }

  void stop() {
    if (stopped_.exchange(true)) {
      join();
      return;
    }
    if (strand_.running_in_this_thread()) {
      close_all();
      if (own_) work_.reset();
      std::lock_guard lock(thread_mu_);
      if (own_ && thread_.joinable() && std::this_thread::get_id() == thread_.get_id()) {
        thread_.detach();
      }
      return;
    }
    if (own_) {
      bool running = false;
      {
        std::lock_guard lock(thread_mu_);
        running = thread_started_;
      }
      if (!running) {
        close_all();  // nothing runs the context: drain what set_peer posted, here
        io_->restart();
        io_->run();
        return;
      }
      asio::post(strand_, [self = this->shared_from_this()] { self->close_all(); });
      work_.reset();
      join();
      return;
    }
    if (io_->stopped()) {
      close_all();
      return;
    }
    std::promise<void> done;
    auto closed = done.get_future();
    asio::post(strand_, [self = this->shared_from_this(), &done] {
      self->close_all();
      done.set_value();
    });
    closed.wait();
  }

  void set_peer(NodeId id, std::string host, std::uint16_t port) {
    if (id == self_) {
      throw std::invalid_argument("TcpTransport::set_peer: id must not be this node's own id");
    }
    Peer* p = find_or_add(id);
    asio::post(strand_, [self = this->shared_from_this(), p, host = std::move(host), port] {
      self->change_address(*p, host, port);
    });
  }

  Outcome<void> send(NodeId to, M message) {
    if (stopped_.load(std::memory_order_relaxed)) return Errc::closed;
    if (to == self_) {
      asio::post(strand_, [self = this->shared_from_this(), m = std::move(message)]() mutable {
        if (!self->stopped_.load()) self->deliver(self->self_, std::move(m));
      });
      return {};
    }
    Peer* p = find_for_send(to);
    if (p == nullptr) {
      bump(counters_.unknown_destination);
      return Errc::failed;
    }
    bool kick = false;
    {
      std::lock_guard lock(p->mu);
      if (p->closed) return Errc::closed;
      if (p->pending_count + p->inflight_count >= options_.max_queue_messages) {
        bump(counters_.queue_full);
        return Errc::full;
      }
      // The frame is encoded straight into the queue; every way out but success cuts the
      // queue back to `start`, so no partial frame is ever left behind.
      Buffer& q = p->pending;
      const std::size_t start = begin_frame(q);
      try {
        codec_.encode(message, q);
      } catch (...) {
        q.resize(start);
        throw;
      }
      const std::size_t payload = q.size() - start - frame_header_bytes;
      if (payload > options_.max_frame_bytes) {
        q.resize(start);
        throw_oversize(payload);
      }
      if (q.size() + p->inflight_bytes > options_.max_queue_bytes) {
        q.resize(start);
        bump(counters_.queue_full);
        return Errc::full;
      }
      end_frame(q, start);
      ++p->pending_count;
      if (p->connected && !p->write_active) kick = p->write_active = true;
    }
    if (!kick) return {};
    if (strand_.running_in_this_thread()) {
      pump(*p);  // a send from a handler: start the write now, not after a post
    } else {
      asio::post(strand_, [self = this->shared_from_this(), p] { self->pump(*p); });
    }
    return {};
  }

  bool connected(NodeId id) const {
    Peer* p = find(id);
    if (p == nullptr) return false;
    std::lock_guard lock(p->mu);
    return p->connected;
  }

  bool wait_connected(NodeId id, std::chrono::nanoseconds timeout) {
    Peer* p = find(id);  // before state_mu_: peers_mu_ is never taken under it
    if (p == nullptr) return false;
    std::unique_lock lock(state_mu_);
    return state_cv_.wait_for(lock, timeout, [&] {
      std::lock_guard guard(p->mu);
      return p->connected;
    });
  }

  std::size_t queued_approx(NodeId id) const {
    Peer* p = find(id);
    if (p == nullptr) return 0;
    std::lock_guard lock(p->mu);
    return p->pending_count + p->inflight_count;
  }

 private:
  struct Connection {
    Connection(tcp::socket s, bool was_dialed, std::size_t max_frame)
        : socket(std::move(s)),
          timer(socket.get_executor()),
          decoder("?", max_frame),
          dialed(was_dialed) {}
    tcp::socket socket;
    asio::steady_timer timer;  // the handshake timeout
    FrameDecoder decoder;
    std::array<std::byte, handshake_bytes> hello{};
    Buffer hello_out;
    Buffer batch;  // the frames of the write in flight
    std::size_t batch_count = 0;
    bool writing = false;
    bool open = false;  // a socket was connected or accepted
    bool closed = false;
    bool dialed;
    std::optional<NodeId> peer;
    std::string name;  // "node 2 (127.0.0.1:4000)" or the remote address
  };

  struct Peer {
    Peer(NodeId peer_id, const Strand& strand, std::uint64_t seed)
        : id(peer_id), retry(strand), random(seed) {}
    const NodeId id;
    // Guarded by mu: the senders' side.
    std::mutex mu;
    Buffer pending;  // frames accepted and not yet written
    std::size_t pending_count = 0;
    std::size_t inflight_bytes = 0;
    std::size_t inflight_count = 0;
    bool connected = false;
    bool write_active = false;  // a pump is posted or a write is in flight
    bool closed = false;        // stop() ran
    // The I/O side (the strand).
    std::string host;
    std::uint16_t port = 0;
    bool has_address = false;
    std::shared_ptr<Connection> conn;     // the one live connection
    std::shared_ptr<Connection> dialing;  // a dial or handshake in progress
    asio::steady_timer retry;
    std::uint64_t retry_generation = 0;
    bool retry_pending = false;
    unsigned failures = 0;
    Random random;
  };

  void check_not_started(const char* what) const {
    if (started_.load()) {
      std::string message = "TcpTransport::";
      message += what;
      message += ": must be called before start()";
      throw std::logic_error(message);
    }
  }

  // Waits until the own I/O thread has finished (not holding thread_mu_ meanwhile: the I/O
  // thread may need it to detach itself), then joins it unless another caller did or it
  // detached itself. Returns at once on the I/O thread itself.
  void join() {
    {
      std::lock_guard lock(thread_mu_);
      if (!thread_started_ || std::this_thread::get_id() == io_thread_) return;
    }
    io_done_future_.wait();
    std::lock_guard lock(thread_mu_);
    if (thread_.joinable()) thread_.join();
  }

  // Returns find(id) through a one-entry cache per sending thread: peers_ is never erased, so
  // a Peer found once stays valid while this core lives, and uid_ (never reused) tells cores
  // apart, so an entry left by a destroyed core never matches.
  Peer* find_for_send(NodeId id) const {
    struct Last {
      std::uint64_t core = 0;
      NodeId id = 0;
      Peer* peer = nullptr;
    };
    static thread_local Last last;
    if (last.core == uid_ && last.id == id) return last.peer;
    Peer* p = find(id);
    if (p != nullptr) last = {uid_, id, p};
    return p;
  }

  [[noreturn]] void throw_oversize(std::size_t payload) const {
    std::string reason = "TcpTransport::send: the message encodes to ";
    reason += std::to_string(payload);
    reason += " bytes, more than max_frame_bytes (";
    reason += std::to_string(options_.max_frame_bytes);
    reason += ")";
    throw std::invalid_argument(reason);
  }

  Peer* find(NodeId id) const {
    std::shared_lock lock(peers_mu_);
    auto it = peers_.find(id);
    return it == peers_.end() ? nullptr : it->second.get();
  }

  // Returns every peer (the pointers stay valid: peers are never erased).
  std::vector<Peer*> all_peers() const {
    std::shared_lock lock(peers_mu_);
    std::vector<Peer*> out;
    out.reserve(peers_.size());
    for (const auto& [id, p] : peers_)
      out.push_back(p.get());
    return out;
  }

  Peer* find_or_add(NodeId id) {
    std::unique_lock lock(peers_mu_);
    auto& slot = peers_[id];
    if (!slot) slot = std::make_unique<Peer>(id, strand_, pods::detail::mix64(options_.seed ^ id));
    return slot.get();
  }

  void report(TcpEvent::Kind kind, std::optional<NodeId> peer, std::string detail) {
    if (on_event_ && !stopped_.load()) on_event_(TcpEvent{kind, peer, std::move(detail)});
  }

  void notify_state() {
    { std::lock_guard lock(state_mu_); }
    state_cv_.notify_all();
  }

  static std::string node_name(NodeId id) {
    std::string s = "node ";
    s += std::to_string(id);
    return s;
  }

  static std::string remote_of(const tcp::socket& s) {
    asio::error_code ec;
    const auto ep = s.remote_endpoint(ec);
    if (ec) return "an unknown address";
    std::string r = ep.address().to_string();
    r += ":";
    r += std::to_string(ep.port());
    return r;
  }

  // ---- connections ------------------------------------------------------------------------

  void accept() {
    acceptor_.async_accept(
        strand_, [self = this->shared_from_this()](const asio::error_code& ec, tcp::socket socket) {
          if (self->stopped_.load() || ec == asio::error::operation_aborted) return;
          if (ec) {
            self->report(TcpEvent::Kind::accept_failed, std::nullopt, ec.message());
          } else {
            self->accepted(std::move(socket));
          }
          self->accept();
        });
  }

  void accepted(tcp::socket socket) {
    bump(counters_.connections_accepted);
    auto c = std::make_shared<Connection>(std::move(socket), false, options_.max_frame_bytes);
    c->open = true;
    c->name = remote_of(c->socket);
    c->decoder.set_source(c->name);
    asio::error_code ignored;
    c->socket.set_option(tcp::no_delay(true), ignored);
    pre_handshake_.insert(c);
    arm_handshake_timer(c);
    asio::async_read(c->socket, asio::buffer(c->hello),
                     [self = this->shared_from_this(), c](const asio::error_code& ec, std::size_t) {
                       self->on_dialer_hello(c, ec);
                     });
  }

  void arm_handshake_timer(const std::shared_ptr<Connection>& c) {
    c->timer.expires_after(options_.handshake_timeout);
    c->timer.async_wait([self = this->shared_from_this(), c](const asio::error_code& ec) {
      if (ec || c->closed) return;
      bump(self->counters_.bad_handshakes);
      std::string detail = "no handshake from ";
      detail += c->name;
      self->report(TcpEvent::Kind::bad_handshake, c->peer, detail);
      self->close(c);
    });
  }

  // Returns the handshake in c->hello, or nullopt after counting, reporting and closing.
  std::optional<Handshake> read_hello(const std::shared_ptr<Connection>& c,
                                      const asio::error_code& ec) {
    std::string what = "handshake from ";
    what += c->name;
    if (ec) {
      bump(counters_.bad_handshakes);
      report(TcpEvent::Kind::bad_handshake, c->peer, what + ": " + ec.message());
      close(c);
      return std::nullopt;
    }
    try {
      Handshake h = decode_handshake(c->hello, what);
      if (h.version != frame_protocol_version || h.application != options_.application_version) {
        std::string detail = what;
        detail += ": version ";
        detail += std::to_string(h.version);
        detail += "/";
        detail += std::to_string(h.application);
        detail += ", expected ";
        detail += std::to_string(frame_protocol_version);
        detail += "/";
        detail += std::to_string(options_.application_version);
        bump(counters_.bad_handshakes);
        report(TcpEvent::Kind::bad_handshake, c->peer, detail);
        close(c);
        return std::nullopt;
      }
      return h;
    } catch (const CorruptionError& e) {
      bump(counters_.bad_handshakes);
      report(TcpEvent::Kind::bad_handshake, c->peer, e.what());
      close(c);
      return std::nullopt;
    }
  }

  void refuse_node(const std::shared_ptr<Connection>& c, const Handshake& h) {
    bump(counters_.unknown_node_handshakes);
    std::string detail = "handshake from ";
    detail += c->name;
    detail += " names node ";
    detail += std::to_string(h.from);
    detail += " reaching node ";
    detail += std::to_string(h.to);
    report(TcpEvent::Kind::unknown_node, h.from, detail);
    close(c);
  }

  // The accepting side: the dialer's handshake arrived.
  void on_dialer_hello(const std::shared_ptr<Connection>& c, const asio::error_code& ec) {
    if (c->closed) return;
    const auto h = read_hello(c, ec);
    if (!h) return;
    Peer* p = h->to == self_ && h->from < self_ ? find(h->from) : nullptr;
    if (p == nullptr) {
      refuse_node(c, *h);
      return;
    }
    c->peer = p->id;
    name_connection(*c, p->id);
    encode_handshake(my_hello(p->id), c->hello_out);
    asio::async_write(
        c->socket, asio::buffer(c->hello_out),
        [self = this->shared_from_this(), c, p](const asio::error_code& e, std::size_t) {
          if (c->closed) return;
          if (e) {
            self->close(c);
            return;
          }
          self->attach(*p, c);
        });
  }

  Handshake my_hello(NodeId to) const {
    return Handshake{frame_protocol_version, options_.application_version, self_, to};
  }

  void name_connection(Connection& c, NodeId id) {
    std::string name = node_name(id);
    name += " (";
    name += c.name;
    name += ")";
    c.name = std::move(name);
    c.decoder.set_source(c.name);
  }

  void change_address(Peer& p, const std::string& host, std::uint16_t port) {
    const bool changed = !p.has_address || p.host != host || p.port != port;
    p.host = host;
    p.port = port;
    p.has_address = true;
    if (!changed || !running_ || stopped_.load() || self_ > p.id) return;
    if (p.dialing) close(p.dialing, false);
    if (p.conn) close(p.conn, false);
    ++p.retry_generation;  // a new address: dial now, not after the backoff
    p.retry_pending = false;
    p.retry.cancel();
    p.failures = 0;
    maybe_dial(p);
  }

  void maybe_dial(Peer& p) {
    if (!running_ || stopped_.load() || self_ > p.id) return;
    if (!p.has_address || p.conn || p.dialing || p.retry_pending) return;
    bump(counters_.dial_attempts);
    auto c = std::make_shared<Connection>(tcp::socket(strand_), true, options_.max_frame_bytes);
    c->peer = p.id;
    c->name = p.host;
    c->name += ":";
    c->name += std::to_string(p.port);
    name_connection(*c, p.id);
    p.dialing = c;
    resolver_.async_resolve(p.host, std::to_string(p.port),
                            [self = this->shared_from_this(), c, pp = &p](
                                const asio::error_code& ec, tcp::resolver::results_type endpoints) {
                              if (c->closed) return;
                              if (ec) {
                                self->dial_failed(*pp, c, ec.message());
                                return;
                              }
                              asio::async_connect(
                                  c->socket, endpoints,
                                  [self, c, pp](const asio::error_code& e, const tcp::endpoint&) {
                                    if (c->closed) return;
                                    if (e) {
                                      self->dial_failed(*pp, c, e.message());
                                      return;
                                    }
                                    self->connected_out(*pp, c);
                                  });
                            });
  }

  void dial_failed(Peer& p, const std::shared_ptr<Connection>& c, const std::string& why) {
    std::string detail = "dial ";
    detail += c->name;
    detail += ": ";
    detail += why;
    report(TcpEvent::Kind::dial_failed, p.id, detail);
    close(c);
  }

  // The dialing side: the socket connected; send our handshake and read the reply.
  void connected_out(Peer& p, const std::shared_ptr<Connection>& c) {
    bump(counters_.connections_dialed);
    c->open = true;
    asio::error_code ignored;
    c->socket.set_option(tcp::no_delay(true), ignored);
    arm_handshake_timer(c);
    encode_handshake(my_hello(p.id), c->hello_out);
    asio::async_write(
        c->socket, asio::buffer(c->hello_out),
        [self = this->shared_from_this(), c](const asio::error_code& ec, std::size_t) {
          if (c->closed) return;
          if (ec) self->dial_failed(*self->find(*c->peer), c, ec.message());
        });
    asio::async_read(
        c->socket, asio::buffer(c->hello),
        [self = this->shared_from_this(), c, pp = &p](const asio::error_code& ec, std::size_t) {
          if (c->closed) return;
          const auto h = self->read_hello(c, ec);
          if (!h) return;
          if (h->from != pp->id || h->to != self->self_) {
            self->refuse_node(c, *h);
            return;
          }
          self->attach(*pp, c);
        });
  }

  void attach(Peer& p, const std::shared_ptr<Connection>& c) {
    if (p.conn && p.conn != c) close(p.conn, false);  // a newer connection replaces it
    pre_handshake_.erase(c);
    if (p.dialing == c) p.dialing = nullptr;
    c->timer.cancel();
    p.conn = c;
    p.failures = 0;
    {
      std::lock_guard lock(p.mu);
      p.connected = true;
      p.write_active = true;
    }
    notify_state();
    report(TcpEvent::Kind::connected, p.id, c->name);
    read(c);
    pump(p);
  }

  // Closes `c` once; a dialer whose connection or dial is gone schedules a retry when
  // `retry` is true.
  void close(std::shared_ptr<Connection> c, bool retry = true) {  // by value: c may be p->conn
    if (c->closed) return;
    c->closed = true;
    if (c->open) bump(counters_.connections_closed);  // before the peer can see the close
    asio::error_code ignored;
    c->socket.close(ignored);
    c->timer.cancel();
    pre_handshake_.erase(c);
    if (!c->peer) return;
    Peer* p = find(*c->peer);
    if (p == nullptr) return;
    if (p->dialing == c) p->dialing = nullptr;
    if (p->conn == c) {
      p->conn = nullptr;
      {
        std::lock_guard lock(p->mu);
        p->connected = false;
        p->write_active = false;
      }
      notify_state();
      report(TcpEvent::Kind::disconnected, p->id, c->name);
    }
    if (c->dialed && retry && !p->conn && !p->dialing) schedule_retry(*p);
  }

  void schedule_retry(Peer& p) {
    if (stopped_.load()) return;
    const auto min = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.reconnect_min);
    const auto max = std::chrono::duration_cast<std::chrono::nanoseconds>(options_.reconnect_max);
    auto base = min;
    for (unsigned k = 0; k < p.failures && base < max; ++k)
      base *= 2;
    if (base > max) base = max;
    ++p.failures;
    const auto delay = p.random.between(base / 2, base);  // "equal jitter"
    const std::uint64_t generation = ++p.retry_generation;
    p.retry_pending = true;
    p.retry.expires_after(delay);
    p.retry.async_wait(
        [self = this->shared_from_this(), pp = &p, generation](const asio::error_code& ec) {
          if (generation != pp->retry_generation) return;
          pp->retry_pending = false;
          if (!ec) self->maybe_dial(*pp);
        });
  }

  void close_all() {
    running_ = false;
    asio::error_code ignored;
    acceptor_.close(ignored);
    resolver_.cancel();
    for (auto c :
         std::vector<std::shared_ptr<Connection>>(pre_handshake_.begin(), pre_handshake_.end()))
      close(c, false);
    for (Peer* p : all_peers()) {  // not under peers_mu_: close() takes state_mu_
      ++p->retry_generation;
      p->retry.cancel();
      if (p->dialing) close(p->dialing, false);
      if (p->conn) close(p->conn, false);
      std::lock_guard guard(p->mu);
      bump(counters_.dropped_on_stop, p->pending_count);
      p->pending.clear();
      p->pending.shrink_to_fit();
      p->pending_count = 0;
      p->closed = true;
    }
  }

  // ---- reading ----------------------------------------------------------------------------

  void read(const std::shared_ptr<Connection>& c) {
    const std::span<std::byte> space = c->decoder.prepare(options_.read_chunk);
    c->socket.async_read_some(
        asio::buffer(space.data(), space.size()),
        [self = this->shared_from_this(), c](const asio::error_code& ec, std::size_t n) {
          self->on_read(c, ec, n);
        });
  }

  void on_read(const std::shared_ptr<Connection>& c, const asio::error_code& ec, std::size_t n) {
    if (c->closed) return;
    if (ec) {
      if (c->decoder.buffered() > 0) {
        bump(counters_.truncated_frames);
        std::string detail = "frame from ";
        detail += c->name;
        detail += " cut short at stream offset ";
        detail += std::to_string(c->decoder.offset());
        detail += " (";
        detail += std::to_string(c->decoder.buffered());
        detail += " bytes): ";
        detail += ec.message();
        report(TcpEvent::Kind::truncated_frame, c->peer, detail);
      }
      close(c);
      return;
    }
    bump(counters_.bytes_received, n);
    const NodeId from = *c->peer;
    bool codec_failed = false;
    std::uint64_t frame_at = 0;  // where the frame the codec rejected starts
    try {
      c->decoder.commit(n, [&](std::span<const std::byte> payload) {
        if (c->closed || stopped_.load(std::memory_order_relaxed)) return;
        std::optional<M> m;
        try {
          m.emplace(codec_.decode(payload));
        } catch (...) {
          codec_failed = true;
          frame_at = c->decoder.offset() - frame_header_bytes - payload.size();
          throw;
        }
        bump_by_strand(counters_.frames_received);
        deliver(from, std::move(*m));
      });
    } catch (const std::exception& e) {
      failed_frame(c, codec_failed, frame_at, e.what());
      return;
    } catch (...) {
      failed_frame(c, codec_failed, frame_at, "a non-standard exception");
      return;
    }
    if (!c->closed) read(c);
  }

  void failed_frame(const std::shared_ptr<Connection>& c, bool codec_failed, std::uint64_t frame_at,
                    const char* what) {
    bump(codec_failed ? counters_.rejected_messages : counters_.corrupt_frames);
    std::string detail;
    if (codec_failed) {
      detail = "frame from ";
      detail += c->name;
      detail += " at offset ";
      detail += std::to_string(frame_at);
      detail += " rejected by the codec: ";
    }
    detail += what;
    report(codec_failed ? TcpEvent::Kind::rejected_message : TcpEvent::Kind::corrupt_frame, c->peer,
           detail);
    close(c);
  }

  void deliver(NodeId from, M m) {
    if (!on_receive_) return;
    try {
      on_receive_(from, std::move(m));
    } catch (const std::exception& e) {
      bump(counters_.handler_exceptions);
      report(TcpEvent::Kind::handler_exception, from, e.what());
    } catch (...) {
      bump(counters_.handler_exceptions);
      report(TcpEvent::Kind::handler_exception, from, "a non-standard exception");
    }
  }

  // ---- writing ----------------------------------------------------------------------------

  // Writes everything queued for `p` in one write, unless a write is in flight already.
  void pump(Peer& p) {
    const std::shared_ptr<Connection> c = p.conn;
    if (!c || c->closed) {
      std::lock_guard lock(p.mu);
      p.write_active = false;
      return;
    }
    if (c->writing) return;  // its completion pumps again
    {
      std::lock_guard lock(p.mu);
      if (p.pending.empty()) {
        p.write_active = false;
        return;
      }
      std::swap(p.pending, c->batch);
      c->batch_count = p.pending_count;
      p.pending_count = 0;
      p.inflight_bytes += c->batch.size();
      p.inflight_count += c->batch_count;
    }
    c->writing = true;
    asio::async_write(
        c->socket, asio::buffer(c->batch),
        [self = this->shared_from_this(), c, pp = &p](const asio::error_code& ec, std::size_t n) {
          self->on_written(*pp, c, ec, n);
        });
  }

  void on_written(Peer& p, const std::shared_ptr<Connection>& c, const asio::error_code& ec,
                  std::size_t n) {
    c->writing = false;
    {
      std::lock_guard lock(p.mu);
      p.inflight_bytes -= c->batch.size();
      p.inflight_count -= c->batch_count;
    }
    if (ec) {
      bump(counters_.dropped_in_flight, c->batch_count);
    } else {
      bump(counters_.frames_sent, c->batch_count);
      bump(counters_.bytes_sent, n);
      bump(counters_.batches_sent);
    }
    c->batch.clear();
    c->batch_count = 0;
    if (ec) {
      close(c);
      return;
    }
    if (p.conn == c) pump(p);
  }

  // Declared first: destroyed last, after every object that uses the context.
  std::unique_ptr<asio::io_context> own_;
  asio::io_context* io_;
  Strand strand_;
  tcp::acceptor acceptor_;
  tcp::resolver resolver_;
  const NodeId self_;
  const TcpOptions options_;
  const C codec_;
  std::uint16_t port_ = 0;
  ReceiveHandler on_receive_;
  EventHandler on_event_;
  TcpCounters counters_;
  mutable std::shared_mutex peers_mu_;
  std::map<NodeId, std::unique_ptr<Peer>> peers_;  // never erased: Peer pointers stay valid
  std::set<std::shared_ptr<Connection>> pre_handshake_;
  std::atomic<bool> started_{false};
  std::atomic<bool> stopped_{false};
  bool running_ = false;  // the strand's view: accepting and dialing
  std::mutex state_mu_;
  std::condition_variable state_cv_;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  std::mutex thread_mu_;  // guards thread_ and what follows (start and stops may race)
  std::thread thread_;
  std::thread::id io_thread_;
  bool thread_started_ = false;
  std::promise<void> io_done_;
  std::shared_future<void> io_done_future_ = io_done_.get_future().share();
  inline static std::atomic<std::uint64_t> next_uid_{1};  // uids are never reused
  const std::uint64_t uid_ = next_uid_.fetch_add(1, std::memory_order_relaxed);
};

}  // namespace detail

// TcpTransport<M, MessageCodec>: a pods::Transport<M> over TCP. A cheap copyable handle:
// copies share one transport, which stops when the last copy goes.
template <class M, Codec<M> MessageCodec>
class TcpTransport {
  using Core = detail::TcpCore<M, MessageCodec>;

 public:
  using Message = M;
  using ReceiveHandler = std::function<void(NodeId from, M message)>;
  using EventHandler = std::function<void(const TcpEvent&)>;

  // Creates a transport for node `self` that runs its own I/O thread (from start() to
  // stop()), and binds its listening socket now, so local_port() is known before start().
  // Throws std::invalid_argument naming a bad option, std::system_error naming the address
  // when it cannot listen.
  explicit TcpTransport(NodeId self, TcpOptions options = {}, MessageCodec codec = {})
      : owner_(std::make_shared<Owner>(
            std::make_shared<Core>(nullptr, self, std::move(options), std::move(codec)))) {}

  // Creates a transport for node `self` whose I/O runs on the user's `io` (retained by
  // reference: it must outlive the transport, and some thread must run it). Throws as above.
  TcpTransport(asio::io_context& io, NodeId self, TcpOptions options = {}, MessageCodec codec = {})
      : owner_(std::make_shared<Owner>(
            std::make_shared<Core>(&io, self, std::move(options), std::move(codec)))) {}

  // Sets the handler of every received message (retained; called on the I/O thread, one
  // message at a time, in each peer's send order). Must precede start(): throws
  // std::logic_error after it.
  void on_receive(ReceiveHandler handler) { core().on_receive(std::move(handler)); }

  // Sets the hook told of connections, failures and dropped bytes (retained; called on the
  // I/O thread; must not throw). Must precede start(): throws std::logic_error after it.
  void on_event(EventHandler handler) { core().on_event(std::move(handler)); }

  // Starts accepting and dialing (and the own I/O thread, for the first constructor).
  // Throws std::logic_error when called twice.
  void start() { core().start(); }

  // Closes every connection and the listening socket, drops what is still queued (counted
  // in dropped_on_stop), and joins the own I/O thread. With a user's io_context it waits
  // until the closing ran there (call it while the context runs, or from its thread).
  // Idempotent; later sends return Errc::closed.
  void stop() { core().stop(); }

  // Queues `message` for `to` (encoded now, on the calling thread) and returns at once.
  // Returns Errc::full past the queue bounds, Errc::closed after stop(), Errc::failed when
  // set_peer never named `to`. A message to this node's own id is delivered through
  // on_receive on the I/O thread, bypassing the queue. Throws std::invalid_argument when the
  // message encodes to more than max_frame_bytes. Thread-safe.
  Outcome<void> send(NodeId to, M message) { return core().send(to, std::move(message)); }

  // Names the address of peer `id` (copied), adding the peer when new: the transport then
  // accepts `id` (when id < self) or dials it (when id > self). A changed address of a
  // dialed peer closes its connection and dials the new address at once. The address of a
  // peer with a lower id is not used (it dials us). Thread-safe. Throws std::invalid_argument
  // for this node's own id.
  void set_peer(NodeId id, std::string host, std::uint16_t port) {
    core().set_peer(id, std::move(host), port);
  }

  // Returns the port the transport listens on (the one the OS chose for port 0).
  std::uint16_t local_port() const noexcept { return owner_->core->local_port(); }

  // Returns this node's id.
  NodeId self() const noexcept { return owner_->core->self(); }

  // Returns true while a handshaken connection with `id` is open. Thread-safe.
  bool connected(NodeId id) const { return owner_->core->connected(id); }

  // Blocks until a connection with `id` is open or `timeout` passes; returns connected(id)
  // (false at once for an id set_peer never named).
  bool wait_connected(NodeId id, std::chrono::nanoseconds timeout) {
    return core().wait_connected(id, timeout);
  }

  // Returns how many messages for `id` are queued or in the write in flight (racy by design).
  std::size_t queued_approx(NodeId id) const { return owner_->core->queued_approx(id); }

  // Returns a snapshot of the counters. Thread-safe; each counter is read atomically, the
  // set is not one instant.
  TcpStats stats() const noexcept { return owner_->core->stats(); }

 private:
  struct Owner {
    explicit Owner(std::shared_ptr<Core> c) : core(std::move(c)) {}
    Owner(const Owner&) = delete;
    Owner& operator=(const Owner&) = delete;
    ~Owner() {
      try {
        core->stop();
      } catch (...) {  // NOLINT: a destructor must not throw; stop() fails only on join
      }
    }
    std::shared_ptr<Core> core;
  };
  Core& core() const noexcept { return *owner_->core; }

  std::shared_ptr<Owner> owner_;
};

}  // namespace pods::net

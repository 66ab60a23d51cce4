// bench/net_bench.cpp — pods::net::TcpTransport beside ZeroMQ and a raw Asio channel, over
// loopback between two threads, each side with its own I/O context.
//
// Two measurements, each for payloads of 64 B and 4 KiB:
//   throughput/<impl>/<size>   one-way: the benchmark thread sends a batch of messages, each
//                              built from a source buffer in the implementation's own way; the
//                              receiving side counts them and checks their sequence numbers;
//                              an iteration ends when the whole batch has arrived. Reported as
//                              items (messages) and bytes (payload) per second.
//   round_trip_p50/<impl>/<size>, round_trip_p99/...  the benchmark thread sends one message
//                              and waits for the echo, 500 times per iteration; the iteration's
//                              time is the 50th (99th) percentile of those 500 round trips.
// Implementations:
//   pods_tcp      pods::net::TcpTransport<std::vector<std::byte>, BytesCodec>, each transport
//                 on its own I/O thread; send() from the benchmark thread, retried after a
//                 yield when it returns Errc::full. Default options.
//   pods_tcp_queue_1mib  the same with max_queue_bytes = 1 MiB (throughput only), which also
//                 bounds the bytes one batched write carries.
//   zmq           ZeroMQ (cppzmq): PUSH/PULL for throughput, DEALER/ROUTER for round trips,
//                 one context (one I/O thread) per side, default high-water marks.
//   raw_asio      the plain channel below: a u32 length before each payload over one socket,
//                 TCP_NODELAY; send() appends the frame to a pending buffer (bounded at
//                 1 MiB) under a mutex and wakes the I/O thread if no write is in flight; the
//                 I/O thread writes everything pending in one write and loops while more
//                 arrived meanwhile; the reader parses every whole frame of each read.
// Every side waits on a std::atomic (futex), never spins, so the three implementations run the
// same number of threads on the same cores: the benchmark thread and one I/O thread per side
// (ZeroMQ adds the receiving application thread, as its sockets are driven by their user).
// The repetitions of all scenarios run interleaved in a random order (see main). The
// comparisons print pods against both peers; the targets are pods' 64-byte throughput at
// least ZeroMQ's and its p50 round trip within 1.2x of the raw channel's.
#include <pods/net/tcp_transport.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>

#include "bench_support.hpp"

#include <asio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#if PODS_HAVE_ZMQ
#include <zmq.hpp>
#endif

namespace {

using Clock = std::chrono::steady_clock;
using Bytes = std::span<const std::byte>;

constexpr int kRoundTrips = 500;  // round trips per iteration of a latency scenario
constexpr int kWarmupRoundTrips = 200;

// Returns the number of messages one throughput iteration sends: about 1 MiB of 64-byte
// messages, 8 MiB of 4 KiB ones.
std::uint64_t batch_for(std::size_t size) {
  return size <= 64 ? 16384 : 2048;
}

// Writes the sequence number `seq` into the first 8 bytes of `payload`.
void stamp(std::vector<std::byte>& payload, std::uint64_t seq) {
  std::memcpy(payload.data(), &seq, sizeof seq);
}
// Returns the sequence number in the first 8 bytes of `payload`.
std::uint64_t stamp_of(Bytes payload) {
  std::uint64_t seq = 0;
  std::memcpy(&seq, payload.data(), sizeof seq);
  return seq;
}

std::vector<std::byte> make_payload(std::size_t size) {
  std::vector<std::byte> payload(size);
  for (std::size_t i = 0; i < size; ++i)
    payload[i] = static_cast<std::byte>(i * 131 + 7);
  return payload;
}

// Blocks until `counter` reaches `target`; the other side notifies after each change.
void wait_for(const std::atomic<std::uint32_t>& counter, std::uint32_t target) {
  for (std::uint32_t seen = counter.load(std::memory_order_acquire); seen != target;
       seen = counter.load(std::memory_order_acquire))
    counter.wait(seen, std::memory_order_acquire);
}

// The receiving end of a throughput scenario, called on the receiver's thread: checks the
// sequence and size of every message and signals the benchmark thread when a batch is in.
struct Sink {
  std::size_t size = 0;
  std::uint64_t next = 0;
  std::uint32_t count = 0;
  std::atomic<std::uint32_t> target{0};
  std::atomic<std::uint32_t> reached{0};
  std::atomic<bool> broken{false};

  void on_message(Bytes m) {
    if (m.size() != size || stamp_of(m) != next) broken.store(true, std::memory_order_relaxed);
    ++next;
    if (++count == target.load(std::memory_order_relaxed)) {
      reached.store(count, std::memory_order_release);
      reached.notify_one();
    }
  }
  // Announces, before the batch is sent, how many messages the next batch adds.
  void expect(std::uint64_t batch) {
    target.store(reached.load(std::memory_order_relaxed) + static_cast<std::uint32_t>(batch),
                 std::memory_order_relaxed);
  }
  void wait() const { wait_for(reached, target.load(std::memory_order_relaxed)); }
};

// The client end of a round-trip scenario, called on the client's I/O thread: counts replies.
struct Replies {
  std::uint64_t expected_seq = 0;
  std::atomic<std::uint32_t> count{0};
  std::atomic<bool> broken{false};

  void on_reply(Bytes m) {
    if (stamp_of(m) != expected_seq) broken.store(true, std::memory_order_relaxed);
    count.fetch_add(1, std::memory_order_release);
    count.notify_one();
  }
};

// An io_context run by its own thread until stop().
class IoThread {
 public:
  IoThread() : work_(asio::make_work_guard(io_)), thread_([this] { io_.run(); }) {}
  IoThread(const IoThread&) = delete;
  IoThread& operator=(const IoThread&) = delete;
  ~IoThread() { stop(); }

  asio::io_context& io() { return io_; }
  void stop() {
    if (!thread_.joinable()) return;
    work_.reset();
    io_.stop();
    thread_.join();
  }

 private:
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::thread thread_;
};

// ---------------------------------------------------------------------------------------------
// The raw Asio baseline: one socket, a u32 length (host order: both ends are this process)
// before each payload.

class RawChannel {
 public:
  using Handler = std::function<void(Bytes)>;
  static constexpr std::size_t kQueueBytes = 1 << 20;

  RawChannel(asio::ip::tcp::socket socket, Handler on_message)
      : socket_(std::move(socket)), on_message_(std::move(on_message)), in_(64 * 1024) {
    socket_.set_option(asio::ip::tcp::no_delay(true));
  }

  // Starts reading on the socket's I/O thread.
  void start() {
    asio::post(socket_.get_executor(), [this] { read(); });
  }

  // Queues one frame; callable from any thread. Blocks while 1 MiB is already pending.
  void send(Bytes payload) {
    std::unique_lock lock(mutex_);
    space_.wait(lock, [&] { return pending_.size() < kQueueBytes || failed_; });
    if (failed_) return;
    const auto length = static_cast<std::uint32_t>(payload.size());
    std::byte header[sizeof length];
    std::memcpy(header, &length, sizeof length);
    pending_.insert(pending_.end(), header, header + sizeof length);  // no zero-fill first
    pending_.insert(pending_.end(), payload.begin(), payload.end());
    if (writing_) return;
    writing_ = true;
    lock.unlock();
    asio::dispatch(socket_.get_executor(), [this] { flush(); });
  }

 private:
  // Writes everything pending in one write, then again while more arrived meanwhile.
  void flush() {
    {
      std::lock_guard lock(mutex_);
      if (pending_.empty()) {
        writing_ = false;
        return;
      }
      inflight_.swap(pending_);
      pending_.clear();
    }
    space_.notify_all();
    asio::async_write(socket_, asio::buffer(inflight_), [this](std::error_code ec, std::size_t) {
      if (ec) {
        std::lock_guard lock(mutex_);
        failed_ = true;
        space_.notify_all();
        return;
      }
      flush();
    });
  }

  void read() {
    socket_.async_read_some(asio::buffer(in_.data() + filled_, in_.size() - filled_),
                            [this](std::error_code ec, std::size_t n) {
                              if (ec) return;
                              filled_ += n;
                              parse();
                              read();
                            });
  }

  // Hands every whole frame in the buffer to the handler and keeps the partial one.
  void parse() {
    std::size_t at = 0;
    std::uint32_t length = 0;
    while (filled_ - at >= sizeof length) {
      std::memcpy(&length, in_.data() + at, sizeof length);
      if (filled_ - at - sizeof length < length) break;
      on_message_(Bytes(in_.data() + at + sizeof length, length));
      at += sizeof length + length;
    }
    std::memmove(in_.data(), in_.data() + at, filled_ - at);
    filled_ -= at;
    if (filled_ >= sizeof length) {
      std::memcpy(&length, in_.data(), sizeof length);
      if (sizeof length + length > in_.size()) in_.resize(sizeof length + length);
    }
  }

  asio::ip::tcp::socket socket_;
  Handler on_message_;
  std::vector<std::byte> in_;
  std::size_t filled_ = 0;
  std::mutex mutex_;
  std::condition_variable space_;
  std::vector<std::byte> pending_;
  std::vector<std::byte> inflight_;
  bool writing_ = false;
  bool failed_ = false;
};

// Two raw channels joined over loopback, each on its own I/O thread. `a` is the benchmark
// thread's end.
struct RawPair {
  IoThread a_thread, b_thread;
  std::optional<RawChannel> a, b;

  RawPair(RawChannel::Handler on_a, RawChannel::Handler on_b) {
    asio::ip::tcp::acceptor acceptor(b_thread.io(), {asio::ip::make_address("127.0.0.1"), 0});
    asio::ip::tcp::socket dialer(a_thread.io());
    dialer.connect(acceptor.local_endpoint());
    asio::ip::tcp::socket accepted = acceptor.accept();
    a.emplace(std::move(dialer), std::move(on_a));
    b.emplace(std::move(accepted), std::move(on_b));
    a->start();
    b->start();
  }
  ~RawPair() {
    a_thread.stop();
    b_thread.stop();
    a.reset();
    b.reset();
  }
};

class RawThroughput {
 public:
  explicit RawThroughput(Sink& sink)
      : pair_([](Bytes) {}, [&sink](Bytes m) { sink.on_message(m); }) {}
  void send(const std::vector<std::byte>& payload) { pair_.a->send(payload); }

 private:
  RawPair pair_;
};

class RawEcho {
 public:
  explicit RawEcho(Replies& replies)
      : pair_([&replies](Bytes m) { replies.on_reply(m); }, [this](Bytes m) { pair_.b->send(m); }) {
  }
  void send(const std::vector<std::byte>& payload) { pair_.a->send(payload); }

 private:
  RawPair pair_;
};

// ---------------------------------------------------------------------------------------------
// pods::net::TcpTransport

using PodsTransport = pods::net::TcpTransport<std::vector<std::byte>, pods::BytesCodec>;
static_assert(pods::Transport<PodsTransport, std::vector<std::byte>>);

// Nodes 1 (the benchmark thread's end; it dials, having the lower id) and 2, each on its own
// I/O thread, connected before the first message.
struct PodsPair {
  static constexpr pods::NodeId kA = 1, kB = 2;
  PodsTransport a, b;

  PodsPair(PodsTransport::ReceiveHandler on_a, PodsTransport::ReceiveHandler on_b,
           const pods::net::TcpOptions& options = {})
      : a(kA, options), b(kB, options) {
    a.on_receive(std::move(on_a));
    b.on_receive(std::move(on_b));
    a.set_peer(kB, "127.0.0.1", b.local_port());
    b.set_peer(kA, "127.0.0.1", a.local_port());
    a.start();
    b.start();
    if (!a.wait_connected(kB, std::chrono::seconds(10)) ||
        !b.wait_connected(kA, std::chrono::seconds(10)))
      throw std::runtime_error("pods transports did not connect");
  }
  PodsPair(const PodsPair&) = delete;
  PodsPair& operator=(const PodsPair&) = delete;
  ~PodsPair() {
    a.stop();
    b.stop();
  }

  // Sends a copy of `payload` to node 2, waiting while the queue is full (Errc::full).
  void send(const std::vector<std::byte>& payload) {
    for (;;) {
      const pods::Outcome<void> sent = a.send(kB, payload);
      if (sent) return;
      if (sent.error() != pods::Errc::full) throw std::runtime_error("pods send failed");
      std::this_thread::yield();
    }
  }
};

// With the default options, or (QueueBytes > 0) a per-peer queue bound of QueueBytes bytes,
// which also bounds the bytes of one batched write.
template <std::size_t QueueBytes = 0>
class PodsThroughput {
 public:
  explicit PodsThroughput(Sink& sink)
      : pair_([](pods::NodeId, std::vector<std::byte>) {},
              [&sink](pods::NodeId, std::vector<std::byte> m) { sink.on_message(m); }, options()) {}
  void send(const std::vector<std::byte>& payload) { pair_.send(payload); }

 private:
  static pods::net::TcpOptions options() {
    pods::net::TcpOptions o;
    if (QueueBytes > 0) {
      o.max_queue_bytes = QueueBytes;
      o.max_frame_bytes = 64 * 1024;  // a queue must hold one frame of the maximum
    }
    return o;
  }
  PodsPair pair_;
};

class PodsEcho {
 public:
  explicit PodsEcho(Replies& replies)
      : pair_([&replies](pods::NodeId, std::vector<std::byte> m) { replies.on_reply(m); },
              [this](pods::NodeId from, std::vector<std::byte> m) {
                (void)pair_.b.send(from, std::move(m));
              }) {}
  void send(const std::vector<std::byte>& payload) { pair_.send(payload); }

 private:
  PodsPair pair_;
};

// ---------------------------------------------------------------------------------------------
// ZeroMQ

#if PODS_HAVE_ZMQ

// PUSH on the benchmark thread, PULL on a receiving thread; an empty message stops it.
class ZmqThroughput {
 public:
  explicit ZmqThroughput(Sink& sink)
      : push_(push_context_, zmq::socket_type::push), pull_(pull_context_, zmq::socket_type::pull) {
    push_.bind("tcp://127.0.0.1:*");
    pull_.connect(push_.get(zmq::sockopt::last_endpoint));
    receiver_ = std::thread([this, &sink] {
      zmq::message_t m;
      while (pull_.recv(m, zmq::recv_flags::none) && m.size() != 0)
        sink.on_message(Bytes(static_cast<const std::byte*>(m.data()), m.size()));
    });
  }
  ~ZmqThroughput() {
    push_.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::none);
    receiver_.join();
  }
  void send(const std::vector<std::byte>& payload) {
    push_.send(zmq::const_buffer(payload.data(), payload.size()), zmq::send_flags::none);
  }

 private:
  zmq::context_t push_context_{1};
  zmq::context_t pull_context_{1};
  zmq::socket_t push_;
  zmq::socket_t pull_;
  std::thread receiver_;
};

// DEALER on the benchmark thread, ROUTER echoing on its own thread; an empty message stops it.
class ZmqEcho {
 public:
  explicit ZmqEcho(Replies& replies)
      : replies_(replies),
        dealer_(dealer_context_, zmq::socket_type::dealer),
        router_(router_context_, zmq::socket_type::router) {
    router_.bind("tcp://127.0.0.1:*");
    dealer_.connect(router_.get(zmq::sockopt::last_endpoint));
    echo_ = std::thread([this] {
      zmq::message_t identity, m;
      for (;;) {
        if (!router_.recv(identity, zmq::recv_flags::none)) return;
        if (!router_.recv(m, zmq::recv_flags::none)) return;
        const bool last = m.size() == 0;
        router_.send(identity, zmq::send_flags::sndmore);
        router_.send(m, zmq::send_flags::none);
        if (last) return;
      }
    });
  }
  ~ZmqEcho() {
    dealer_.send(zmq::const_buffer(nullptr, 0), zmq::send_flags::none);
    echo_.join();
  }
  // Sends and receives the echo on the calling thread (ZeroMQ sockets belong to one thread).
  void send(const std::vector<std::byte>& payload) {
    dealer_.send(zmq::const_buffer(payload.data(), payload.size()), zmq::send_flags::none);
    zmq::message_t reply;
    if (!dealer_.recv(reply, zmq::recv_flags::none)) return;
    replies_.on_reply(Bytes(static_cast<const std::byte*>(reply.data()), reply.size()));
  }

 private:
  Replies& replies_;
  zmq::context_t dealer_context_{1};
  zmq::context_t router_context_{1};
  zmq::socket_t dealer_;
  zmq::socket_t router_;
  std::thread echo_;
};

#endif

// ---------------------------------------------------------------------------------------------
// The scenarios

template <class Impl>
void throughput(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  const std::uint64_t batch = batch_for(size);
  Sink sink;
  sink.size = size;
  std::uint64_t seq = 0;
  std::vector<std::byte> payload = make_payload(size);
  {
    Impl impl(sink);
    auto one_batch = [&] {
      sink.expect(batch);
      for (std::uint64_t i = 0; i < batch; ++i) {
        stamp(payload, seq++);
        impl.send(payload);
      }
      sink.wait();
    };
    one_batch();  // warm-up: the connection is up and the buffers have grown
    for (auto _ : state)
      one_batch();
  }
  if (sink.broken.load()) state.SkipWithError("a message arrived out of order or resized");
  const auto messages = static_cast<std::int64_t>(state.iterations() * batch);
  state.SetItemsProcessed(messages);
  state.SetBytesProcessed(messages * static_cast<std::int64_t>(size));
}

template <class Impl>
void round_trip(benchmark::State& state, double quantile) {
  const auto size = static_cast<std::size_t>(state.range(0));
  Replies replies;
  std::vector<std::byte> payload = make_payload(size);
  std::vector<double> seconds(kRoundTrips);
  std::uint32_t sent = 0;
  {
    Impl impl(replies);
    auto one = [&] {
      stamp(payload, replies.expected_seq);
      impl.send(payload);
      wait_for(replies.count, ++sent);
      ++replies.expected_seq;
    };
    for (int i = 0; i < kWarmupRoundTrips; ++i)
      one();
    for (auto _ : state) {
      for (double& s : seconds) {
        const auto start = Clock::now();
        one();
        s = std::chrono::duration<double>(Clock::now() - start).count();
      }
      const auto k = static_cast<std::ptrdiff_t>(quantile * (kRoundTrips - 1));
      std::nth_element(seconds.begin(), seconds.begin() + k, seconds.end());
      state.SetIterationTime(seconds[static_cast<std::size_t>(k)]);
    }
  }
  if (replies.broken.load()) state.SkipWithError("a reply did not echo the request");
}

const bool registered = [] {
  auto add = [](const std::string& impl, auto throughput_fn, auto round_trip_fn) {
    benchmark::RegisterBenchmark(("throughput/" + impl).c_str(), throughput_fn)
        ->Arg(64)
        ->Arg(4096)
        ->UseRealTime()
        ->MinTime(0.3);
    for (const auto& [name, quantile] :
         {std::pair{"round_trip_p50/", 0.50}, {"round_trip_p99/", 0.99}})
      benchmark::RegisterBenchmark((name + impl).c_str(), round_trip_fn, quantile)
          ->Arg(64)
          ->Arg(4096)
          ->UseManualTime()
          ->Iterations(4);
  };
  add("pods_tcp", throughput<PodsThroughput<>>, round_trip<PodsEcho>);
  // The same transport with max_queue_bytes = 1 MiB (the default is 64 MiB): a write batch
  // stays within the L2 cache.
  benchmark::RegisterBenchmark("throughput/pods_tcp_queue_1mib",
                               throughput<PodsThroughput<1 << 20>>)
      ->Arg(64)
      ->Arg(4096)
      ->UseRealTime()
      ->MinTime(0.3);
  add("raw_asio", throughput<RawThroughput>, round_trip<RawEcho>);
#if PODS_HAVE_ZMQ
  add("zmq", throughput<ZmqThroughput>, round_trip<ZmqEcho>);
#else
  pods::bench::skip("ZeroMQ not installed (apt-get install libzmq3-dev cppzmq-dev)");
#endif

  using pods::bench::compare;
  for (const char* size : {"64", "4096"}) {
    const std::string b = std::string(" (") + size + " B)";
    const std::string tp = std::string("/") + size + "/min_time:0.300/real_time";
    const std::string rt = std::string("/") + size + "/iterations:4/manual_time";
    const bool small = size[1] == '4';
    compare("throughput, pods_tcp vs zmq PUSH/PULL" + b, "throughput/pods_tcp" + tp,
            "throughput/zmq" + tp, small ? ">= 1.0x" : "(informational)");
    compare("throughput, pods_tcp vs raw asio" + b, "throughput/pods_tcp" + tp,
            "throughput/raw_asio" + tp, "(baseline)");
    compare("throughput, pods_tcp max_queue_bytes 1 MiB vs zmq" + b,
            "throughput/pods_tcp_queue_1mib" + tp, "throughput/zmq" + tp, "(informational)");
    compare("throughput, pods_tcp max_queue_bytes 1 MiB vs raw asio" + b,
            "throughput/pods_tcp_queue_1mib" + tp, "throughput/raw_asio" + tp, "(baseline)");
    compare("round trip p50, pods_tcp vs raw asio" + b, "round_trip_p50/pods_tcp" + rt,
            "round_trip_p50/raw_asio" + rt, ">= 0.83x (within 1.2x)");
    compare("round trip p99, pods_tcp vs raw asio" + b, "round_trip_p99/pods_tcp" + rt,
            "round_trip_p99/raw_asio" + rt, "(informational)");
    compare("round trip p50, pods_tcp vs zmq DEALER/ROUTER" + b, "round_trip_p50/pods_tcp" + rt,
            "round_trip_p50/zmq" + rt, "(informational)");
    compare("round trip p99, pods_tcp vs zmq DEALER/ROUTER" + b, "round_trip_p99/pods_tcp" + rt,
            "round_trip_p99/zmq" + rt, "(informational)");
  }
  return true;
}();

}  // namespace

// Interleaves the repetitions of all scenarios in a random order unless the command line says
// otherwise: on a shared machine the load drifts within seconds, and five repetitions of one
// scenario in a row would all see the same load.
int main(int argc, char** argv) {
  std::vector<char*> args(argv, argv + argc);
  static char interleave[] = "--benchmark_enable_random_interleaving=true";
  bool told = false;
  for (int i = 1; i < argc; ++i)
    told = told || std::string_view(argv[i]).starts_with("--benchmark_enable_random_interleaving");
  if (!told) args.push_back(interleave);
  return pods::bench::run(static_cast<int>(args.size()), args.data());
}

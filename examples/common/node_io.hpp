// The node's side of the multi-process examples (replicated_kv, consistent_core): the pieces
// of a server process whose one thread owns a ReplicatedLog and polls sockets.
//
// - Wakeup: a non-blocking pipe; other threads write a byte to it, so the owner's poll()
//   returns when a peer message or a control line arrived.
// - NodeInbox: what the other threads hand the owner: peer messages (from the TcpTransport's
//   I/O thread) and control lines (from a thread reading stdin; "stop" at its end).
// - LogTransport: the log's Transport over the TcpTransport handle; a refused send (queue
//   full, no address yet) is a lost message, which the log's retries cover.
// - listen_loopback: a listening socket on 127.0.0.1 at a port the OS chooses.
#pragma once

#include <pods/net/tcp_transport.hpp>
#include <pods/replication/replicated_log.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace pods_examples {

using PeerTransport =
    pods::net::TcpTransport<pods::ReplicatedLogMessage, pods::ReplicatedLogMessageCodec>;

struct LogTransport {
  PeerTransport peers;
  void send(pods::NodeId to, pods::ReplicatedLogMessage m) { (void)peers.send(to, std::move(m)); }
};

// A self-pipe: notify() from any thread makes read_fd() readable until drain().
class Wakeup {
 public:
  Wakeup() {
    if (::pipe(fds_) != 0) throw std::runtime_error("pipe failed");
    ::fcntl(fds_[0], F_SETFL, O_NONBLOCK);
    ::fcntl(fds_[1], F_SETFL, O_NONBLOCK);
  }
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;
  // The pipe stays open for the life of the process: a detached stdin reader may still
  // notify after the owner returned.
  int read_fd() const noexcept { return fds_[0]; }
  void notify() const noexcept {
    const char c = 1;
    (void)::write(fds_[1], &c, 1);
  }
  void drain() const noexcept {
    char buf[256];
    while (::read(fds_[0], buf, sizeof buf) > 0) {
    }
  }

 private:
  int fds_[2];
};

// Peer messages and control lines for the owner thread. Thread-safe.
class NodeInbox {
 public:
  using Message = std::pair<pods::NodeId, pods::ReplicatedLogMessage>;

  NodeInbox() : shared_(std::make_shared<Shared>()) {}

  int wake_fd() const noexcept { return shared_->wake.read_fd(); }

  // Makes the transport's received messages arrive here (call before transport.start()).
  void receive_from(PeerTransport& transport) {
    transport.on_receive([s = shared_](pods::NodeId from, pods::ReplicatedLogMessage m) {
      std::lock_guard lock(s->mu);
      s->messages.emplace_back(from, std::move(m));
      s->wake.notify();
    });
  }

  // Starts a detached thread that hands each stdin line over, then "stop" at its end.
  void read_stdin() {
    std::thread([s = shared_] {
      std::string line;
      while (std::getline(std::cin, line))
        s->push_line(std::move(line));
      s->push_line("stop");
    }).detach();
  }

  // Drains the wake-up pipe and moves out what arrived.
  void take(std::vector<Message>& messages, std::vector<std::string>& lines) {
    shared_->wake.drain();
    std::lock_guard lock(shared_->mu);
    messages.swap(shared_->messages);
    lines.swap(shared_->lines);
  }

 private:
  struct Shared {
    Wakeup wake;
    std::mutex mu;
    std::vector<Message> messages;
    std::vector<std::string> lines;
    void push_line(std::string line) {
      std::lock_guard lock(mu);
      lines.push_back(std::move(line));
      wake.notify();
    }
  };
  std::shared_ptr<Shared> shared_;  // shared with the detached reader and the transport
};

// Returns a socket listening on 127.0.0.1 at a port the OS chose, and sets `port` to it.
// Throws std::runtime_error when bind or listen fails.
inline int listen_loopback(std::uint16_t& port, int backlog = 128) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(fd, backlog) != 0) {
    ::close(fd);
    throw std::runtime_error("client port: bind or listen failed");
  }
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  port = ntohs(addr.sin_port);
  return fd;
}

}  // namespace pods_examples

namespace pods_examples {

// Returns the poll() timeout in milliseconds until `deadline` (rounded up), from 0 to 50: the
// owner wakes at the deadline or at least every 50 ms.
template <class TimePoint>
int poll_timeout_ms(TimePoint deadline, TimePoint now) {
  const auto d = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
  return static_cast<int>(std::clamp<long long>(d + 1, 0, 50));
}

}  // namespace pods_examples

// `replicated_kv node`: one server process. ReplicatedLog over FileStorage in its data
// directory and net::TcpTransport to its peers; clients speak a line protocol on a second
// port. One thread owns the log: it polls the client sockets and a wake-up pipe that the
// transport's I/O thread writes to when a peer message arrives, handles everything that is
// ready, then ticks the log once, so a burst of client puts is synced once.
//
// Startup: prints "ports <peer port> <client port>" (both chosen by the OS), then reads
// "peer I P" lines and "go" on stdin; end of stdin stops the node.
// Client lines: "P <id> <key> <value>" and "G <id> <key>"; answers "OK <id> <value or ->",
// "NL <id> <leader id or 0>" (not the leader), "ERR <id>" (another entry won the index) and
// "UNK <id>" (a snapshot from the leader covered the index before it applied here: the
// outcome is unknown). Every node_snapshot_every applied entries the node snapshots its map.
#pragma once

#include "../common/node_io.hpp"
#include "kv.hpp"

#include <pods/net/tcp_transport.hpp>
#include <pods/replication/replicated_log.hpp>
#include <pods/storage/file_storage.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace replicated_kv {

using pods_examples::LogTransport;
using pods_examples::PeerTransport;

// Every node snapshots its map after this many applied entries (§7), so that the log is
// compacted and a node that was down long enough catches up by InstallSnapshot.
inline constexpr std::uint64_t node_snapshot_every = 1000;

// stale_reads: a get is answered at once from this node's own state, leader or not, bypassing
// the log (a deliberately broken mode: histories must then fail the checker).
inline int run_node(pods::NodeId self, const std::string& dir, bool stale_reads = false) {
  PeerTransport transport(self, {.seed = self});
  pods_examples::NodeInbox inbox;
  inbox.receive_from(transport);
  std::uint16_t client_port = 0;
  const int listener = pods_examples::listen_loopback(client_port);
  int one = 1;
  std::cout << "ports " << transport.local_port() << ' ' << client_port << std::endl;
  inbox.read_stdin();

  struct Conn {
    int fd;
    std::string in, out;
  };
  std::map<std::uint64_t, Conn> conns;  // by connection number
  std::uint64_t next_conn = 1;
  struct Waiting {
    std::uint64_t conn, tag;
    std::string id;
  };
  std::map<std::uint64_t, Waiting> waiting;  // log index -> the client waiting for it
  std::uint64_t next_tag = (static_cast<std::uint64_t>(::getpid()) << 32) ^ (self << 56);

  Machine machine;
  machine.on_apply = [&](std::uint64_t index, const Command& c, const pods::sim::KvOutput& out) {
    auto w = waiting.find(index);
    if (w == waiting.end()) return;
    auto conn = conns.find(w->second.conn);
    if (conn != conns.end()) {
      if (c.tag == w->second.tag) {
        conn->second.out += "OK " + w->second.id + ' ' + out.value.value_or("-") + '\n';
      } else {
        conn->second.out += "ERR " + w->second.id + '\n';
      }
    }
    waiting.erase(w);
  };
  // A snapshot from the leader replaced the state: the commands it covers were applied
  // elsewhere, and whether this node's won their index is unknown here.
  machine.on_restore = [&](std::uint64_t covered) {
    for (auto w = waiting.begin(); w != waiting.end() && w->first <= covered;) {
      if (auto conn = conns.find(w->second.conn); conn != conns.end()) {
        conn->second.out += "UNK " + w->second.id + '\n';
      }
      w = waiting.erase(w);
    }
  };
  pods::ReplicatedLog log(pods::FileStorage(dir), LogTransport{transport}, pods::SteadyClock{},
                          machine,
                          {.self = self,
                           .voters = {1, 2, 3},
                           .seed = self * 31 + 7,
                           .snapshot_every = node_snapshot_every});
  bool started = false;
  for (;;) {
    std::vector<pollfd> fds{{listener, POLLIN, 0}, {inbox.wake_fd(), POLLIN, 0}};
    std::vector<std::uint64_t> ids;
    for (auto& [id, c] : conns) {
      fds.push_back({c.fd, POLLIN, 0});
      ids.push_back(id);
    }
    int timeout = 50;
    if (started)
      timeout = pods_examples::poll_timeout_ms(log.next_deadline(), pods::SteadyClock::now());
    ::poll(fds.data(), fds.size(), timeout);
    std::vector<pods_examples::NodeInbox::Message> msgs;
    std::vector<std::string> lines;
    inbox.take(msgs, lines);
    for (const std::string& line : lines) {
      std::istringstream in(line);
      std::string word;
      in >> word;
      if (word == "peer") {
        pods::NodeId id = 0;
        unsigned port = 0;
        in >> id >> port;
        transport.set_peer(id, "127.0.0.1", static_cast<std::uint16_t>(port));
      } else if (word == "go" && !started) {
        transport.start();
        started = true;
      } else if (word == "stop") {
        transport.stop();
        return 0;
      }
    }
    for (auto& [from, m] : msgs)
      log.receive(from, std::move(m));
    if (fds[0].revents & POLLIN) {
      const int fd = ::accept(listener, nullptr, nullptr);
      if (fd >= 0) {
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conns[next_conn++] = Conn{fd, {}, {}};
      }
    }
    for (std::size_t k = 2; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      Conn& c = conns.at(ids[k - 2]);
      char buf[65536];
      const ssize_t n = ::read(c.fd, buf, sizeof buf);
      if (n <= 0) {
        ::close(c.fd);
        conns.erase(ids[k - 2]);
        continue;
      }
      c.in.append(buf, static_cast<std::size_t>(n));
      for (auto nl = c.in.find('\n'); nl != std::string::npos; nl = c.in.find('\n')) {
        std::istringstream in(c.in.substr(0, nl));
        c.in.erase(0, nl + 1);
        std::string op, id, key, value;
        in >> op >> id >> key >> value;
        if (stale_reads && op == "G") {
          const auto it = machine.data.find(key);
          c.out += "OK " + id + ' ' + (it == machine.data.end() ? "-" : it->second) + '\n';
          continue;
        }
        Command cmd{next_tag++,
                    op == "P" ? pods::sim::KvModel::put(key, value) : pods::sim::KvModel::get(key)};
        const pods::Buffer bytes = encode(cmd);
        if (auto index = started ? log.propose(bytes)
                                 : pods::Outcome<std::uint64_t>(pods::Errc::not_leader)) {
          waiting[*index] = Waiting{ids[k - 2], cmd.tag, id};
        } else {
          c.out += "NL " + id + ' ' + std::to_string(log.leader().value_or(0)) + '\n';
        }
      }
    }
    if (started) log.tick();
    for (auto& [id, c] : conns) {
      if (c.out.empty()) continue;
      const ssize_t n = ::write(c.fd, c.out.data(), c.out.size());
      if (n > 0) c.out.erase(0, static_cast<std::size_t>(n));
    }
  }
}

}  // namespace replicated_kv

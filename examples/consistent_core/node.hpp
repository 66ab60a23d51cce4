// `consistent_core node`: one server process. ConsistentCore over FileStorage in its data
// directory and net::TcpTransport to its peers; Redis clients speak RESP on a second port.
// One thread owns the core: it polls the client sockets and a wake-up pipe that the
// transport's I/O thread writes to when a peer message arrives, handles everything that is
// ready (peer messages, new clients, every complete command of every client), then ticks the
// core once, so the writes of many clients between two ticks share one fdatasync of the log
// (group commit). A write is answered only when its callback runs, after the entry synced on
// a majority and applied here.
//
// Startup: prints "ports <peer port> <client port>" (both chosen by the OS, 127.0.0.1), then
// reads "peer I PEERPORT CLIENTPORT" lines (also later, when a peer restarted on new ports)
// and "go" on stdin; the voters are this node and the peers named before "go". End of stdin
// stops the node. Restarting on the same directory recovers the log.
//
// Connections: replies go out in request order (a reply slot per command, filled when the
// core answers, written once the slots before it are filled), so pipelining works; a read
// (GET, GETREV, KEYS) waits until the writes sent before it on its connection are answered,
// so a connection's commands take effect in the order sent. A client
// that closes with commands pending is forgotten: its slots go with it and the core's later
// callbacks find no connection and drop their reply. A connection whose output passes
// output_limit bytes is no longer read (backpressure) and, when it watches, no more events are
// taken from its watch: the StateWatch then buffers at most max_buffered events and closes the
// watch with Errc::full, and the server queues `*3 watch closed full` (what was buffered is
// dropped), stops reading and closes the connection once its output drained, or after 5 s. Framing
// errors are answered with "-ERR Protocol error: ..." and close the connection once the replies
// before it are written.
#pragma once

#include "../common/node_io.hpp"
#include "commands.hpp"
#include "resp.hpp"

#include <pods/messaging/state_watch.hpp>
#include <pods/policy/clock.hpp>
#include <pods/replication/consistent_core.hpp>
#include <pods/storage/file_storage.hpp>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <deque>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace consistent_core {

// One client connection's state. The socket is the server's business; this holds the rest.
struct Client {
  int fd = -1;
  resp::RequestParser parser;
  Session session;
  std::string out;                               // bytes to write, in order
  std::deque<std::optional<std::string>> slots;  // replies not yet written, in request order
  std::uint64_t first_slot = 0;                  // the sequence number of slots.front()
  std::optional<resp::Command> held;             // a read waiting for this connection's writes
  std::size_t writes_in_flight = 0;              // commands sent to the core that are not reads
  bool closing = false;  // no more input: close once slots and out are empty
  // Closing after a watch closed full: the output may still drain until then, so a client
  // that starts reading again sees the closed push; past it the connection is cut.
  std::optional<std::chrono::steady_clock::time_point> close_by;

  explicit Client(int f, resp::ParserLimits limits) : fd(f), parser(limits) {}
};

// The connections of a server, by number, and the reply slots of their commands.
// Thread-confined.
class ClientTable {
 public:
  explicit ClientTable(resp::ParserLimits limits = {}) : limits_(limits) {}

  // Adds a connection for `fd` and returns its number.
  std::uint64_t open(int fd) {
    const std::uint64_t id = next_++;
    clients_.emplace(id, std::make_unique<Client>(fd, limits_));
    return id;
  }
  // Returns the connection `id`, or nullptr when it closed.
  Client* find(std::uint64_t id) {
    const auto it = clients_.find(id);
    return it == clients_.end() ? nullptr : it->second.get();
  }
  // Forgets connection `id` (its pending replies are dropped when they come).
  void close(std::uint64_t id) { clients_.erase(id); }

  // Reserves the next reply slot of connection `id` and returns the callback that fills it;
  // the slots filled from the front move to the connection's output. The callback retains
  // this table, which must outlive it; it does nothing when the connection closed.
  // A `write` slot counts in writes_in_flight until filled.
  ReplyDone slot(std::uint64_t id, bool write = false) {
    Client* c = find(id);
    if (c == nullptr) return [](std::string) {};
    const std::uint64_t seq = c->first_slot + c->slots.size();
    c->slots.emplace_back();
    if (write) ++c->writes_in_flight;
    return [this, id, seq, write](std::string reply) {
      Client* c = find(id);
      if (c == nullptr || seq < c->first_slot) return;
      if (write) --c->writes_in_flight;
      c->slots[static_cast<std::size_t>(seq - c->first_slot)] = std::move(reply);
      while (!c->slots.empty() && c->slots.front()) {
        c->out += *c->slots.front();
        c->slots.pop_front();
        ++c->first_slot;
      }
    };
  }

  std::map<std::uint64_t, std::unique_ptr<Client>>& all() noexcept { return clients_; }

 private:
  resp::ParserLimits limits_;
  std::map<std::uint64_t, std::unique_ptr<Client>> clients_;
  std::uint64_t next_ = 1;
};

struct NodeOptions {
  pods::NodeId self = 0;
  std::string dir;
  std::size_t output_limit = std::size_t{1} << 20;  // bytes of output before backpressure
  std::size_t watch_buffer = 4096;                  // StateWatchOptions::max_buffered
  // The log snapshots the core after this many applied entries (0: never), dropping the
  // segments it covers; a node that fell behind gets the snapshot (in chunks). etcd's
  // --snapshot-count has the same default.
  std::uint64_t snapshot_every = 100000;
  resp::ParserLimits limits;
};

using Core =
    pods::ConsistentCore<pods::FileStorage, pods_examples::LogTransport, pods::SteadyClock>;

// Runs one server until its stdin ends; returns the exit status.
inline int run_node(const NodeOptions& o) {
  pods_examples::PeerTransport transport(o.self, {.seed = o.self});
  pods_examples::NodeInbox inbox;
  inbox.receive_from(transport);
  std::uint16_t client_port = 0;
  const int listener = pods_examples::listen_loopback(client_port);
  ::fcntl(listener, F_SETFL, O_NONBLOCK);
  std::cout << "ports " << transport.local_port() << ' ' << client_port << std::endl;
  inbox.read_stdin();

  std::map<pods::NodeId, std::uint16_t> client_ports{{o.self, client_port}};
  std::set<pods::NodeId> voters{o.self};
  ClientTable clients(o.limits);  // before the core: the core's callbacks point into it
  std::set<pods::WatchId> ready;  // watches with events or a close to deliver
  std::map<pods::WatchId, std::uint64_t> watcher;  // watch -> its connection
  std::unique_ptr<Core> core;
  std::unique_ptr<Commands<Core>> commands;

  auto close_client = [&](std::uint64_t id) {
    Client* c = clients.find(id);
    if (c == nullptr) return;
    if (c->session.watch) {
      watcher.erase(*c->session.watch);
      ready.erase(*c->session.watch);
      core->watches().cancel(*c->session.watch);
    }
    ::close(c->fd);
    clients.close(id);
  };

  auto run_command = [&](std::uint64_t id, Client& c, const resp::Command& words) {
    if (!core) {
      std::string out;
      resp::error(out, "TRYAGAIN not started");
      clients.slot(id)(std::move(out));
      return;
    }
    const std::optional<pods::WatchId> before = c.session.watch;
    commands->execute(words, c.session, clients.slot(id, !reads_keys(words)));
    if (before != c.session.watch) {
      if (before) {
        watcher.erase(*before);
        ready.erase(*before);
      }
      if (c.session.watch) {
        watcher[*c.session.watch] = id;
        ready.insert(*c.session.watch);  // it may start with history events
      }
    }
    if (c.session.quit) c.closing = true;
  };

  // Runs the complete commands of connection `id` in order, until its input is used up or a
  // read must wait for the connection's writes (it is then held, and input is not read).
  auto run_commands = [&](std::uint64_t id, Client& c) {
    while (!c.closing) {
      if (!c.held) {
        try {
          c.held = c.parser.next();
        } catch (const resp::ProtocolError& e) {
          std::string out;
          resp::error(out, std::string("ERR ") + e.what());
          clients.slot(id)(std::move(out));
          c.closing = true;
          return;
        }
        if (!c.held) return;
      }
      if (c.writes_in_flight > 0 && reads_keys(*c.held)) return;
      const resp::Command words = std::move(*c.held);
      c.held.reset();
      run_command(id, c, words);
    }
  };

  // Moves events of ready watches to their connections' output while it is under the limit.
  auto deliver_watches = [&] {
    for (auto it = ready.begin(); it != ready.end();) {
      const pods::WatchId w = *it;
      const auto owner = watcher.find(w);
      Client* c = owner == watcher.end() ? nullptr : clients.find(owner->second);
      if (c == nullptr) {
        it = ready.erase(it);
        continue;
      }
      if (!c->slots.empty()) {  // replies first: the pushes follow them
        ++it;
        continue;
      }
      pods::StateWatch& watches = core->watches();
      const std::optional<pods::Errc> why = watches.closed(w);
      if (why == pods::Errc::full) {
        // A consumer too slow for its buffer: what is buffered is dropped with the connection.
        watch_closed(c->out, *why);
        c->closing = true;
        c->close_by = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      } else {
        while (c->out.size() < o.output_limit) {
          const std::vector<pods::WatchEvent> events = watches.take(w, 64);
          if (events.empty()) break;
          for (const pods::WatchEvent& e : events)
            watch_event(c->out, e);
        }
        if (watches.buffered(w) > 0) {
          ++it;
          continue;
        }
        if (!why) {
          it = ready.erase(it);
          continue;
        }
        watch_closed(c->out, *why);
      }
      c->session.watch.reset();
      watcher.erase(w);
      it = ready.erase(it);
      watches.cancel(w);
    }
  };

  int one = 1;
  for (;;) {
    std::vector<pollfd> fds{{listener, POLLIN, 0}, {inbox.wake_fd(), POLLIN, 0}};
    std::vector<std::uint64_t> ids;
    for (auto& [id, c] : clients.all()) {
      short events = 0;
      if (!c->closing && !c->held && c->out.size() < o.output_limit) events |= POLLIN;
      if (!c->out.empty()) events |= POLLOUT;
      fds.push_back({c->fd, events, 0});
      ids.push_back(id);
    }
    int timeout = 50;
    if (core)
      timeout = pods_examples::poll_timeout_ms(core->next_deadline(), pods::SteadyClock::now());
    ::poll(fds.data(), fds.size(), timeout);

    std::vector<pods_examples::NodeInbox::Message> messages;
    std::vector<std::string> lines;
    inbox.take(messages, lines);
    for (const std::string& line : lines) {
      std::istringstream in(line);
      std::string word;
      in >> word;
      if (word == "peer") {
        pods::NodeId id = 0;
        unsigned peer_port = 0, port = 0;
        in >> id >> peer_port >> port;
        if (id == 0 || id == o.self || peer_port == 0 || peer_port > 65535 || port > 65535) {
          std::cerr << "consistent_core node: bad line '" << line << "'\n";
          continue;
        }
        transport.set_peer(id, "127.0.0.1", static_cast<std::uint16_t>(peer_port));
        client_ports[id] = static_cast<std::uint16_t>(port);
        if (!core) voters.insert(id);
      } else if (word == "go" && !core) {
        pods::ConsistentCoreOptions options{
            .log = {.self = o.self,
                    .voters = std::vector<pods::NodeId>(voters.begin(), voters.end()),
                    .seed = o.self * 31 + 7,
                    .snapshot_every = o.snapshot_every}};
        options.watch.max_buffered = o.watch_buffer;
        core =
            std::make_unique<Core>(pods::FileStorage(o.dir), pods_examples::LogTransport{transport},
                                   pods::SteadyClock{}, std::move(options));
        commands = std::make_unique<Commands<Core>>(
            *core, [&client_ports](pods::NodeId id) -> std::optional<std::uint16_t> {
              const auto it = client_ports.find(id);
              if (it == client_ports.end() || it->second == 0) return std::nullopt;
              return it->second;
            });
        core->watches().on_ready([&ready](pods::WatchId id) { ready.insert(id); });
        transport.start();
      } else if (word == "stop") {
        std::vector<std::uint64_t> open;
        for (auto& [id, c] : clients.all())
          open.push_back(id);
        for (const std::uint64_t id : open)
          close_client(id);
        transport.stop();
        ::close(listener);
        return 0;
      }
    }
    if (core) {
      for (auto& [from, m] : messages)
        core->receive(from, std::move(m));
    }

    if (fds[0].revents & POLLIN) {
      for (;;) {
        const int fd = ::accept(listener, nullptr, nullptr);
        if (fd < 0) break;
        ::fcntl(fd, F_SETFL, O_NONBLOCK);
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        clients.open(fd);
      }
    }
    for (std::size_t k = 2; k < fds.size(); ++k) {
      if (!(fds[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      const std::uint64_t id = ids[k - 2];
      Client* c = clients.find(id);
      if (c == nullptr || c->closing) continue;
      char buf[65536];
      const ssize_t n = ::read(c->fd, buf, sizeof buf);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) {
        close_client(id);
        continue;
      }
      c->parser.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      run_commands(id, *c);
    }

    if (core) {
      core->tick();  // syncs what the commands appended: one fdatasync for all of them
      for (auto& [id, c] : clients.all()) {
        if (c->held && c->writes_in_flight == 0) run_commands(id, *c);
      }
      deliver_watches();
    }

    std::vector<std::uint64_t> done;
    for (auto& [id, c] : clients.all()) {
      if (!c->out.empty()) {
        const ssize_t n = ::send(c->fd, c->out.data(), c->out.size(), MSG_NOSIGNAL);
        if (n > 0) {
          c->out.erase(0, static_cast<std::size_t>(n));
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
          done.push_back(id);
          continue;
        }
      }
      if ((c->closing && c->slots.empty() && c->out.empty()) ||
          (c->close_by && std::chrono::steady_clock::now() > *c->close_by)) {
        done.push_back(id);
      }
    }
    for (const std::uint64_t id : done)
      close_client(id);
  }
}

}  // namespace consistent_core

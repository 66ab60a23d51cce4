// `consistent_core cluster` and the supervisor under `consistent_core demo`: three
// `consistent_core node` processes (this same binary), each on its own data directory, on
// 127.0.0.1 with ports the OS chooses; a RESP client connection with timeouts built on
// resp::ReplyReader; finding the leader by asking every node for INFO.
//
// Startup: each node prints "ports <peer port> <client port>"; once all three have, each is
// told "peer J <peer port> <client port>" for the two others and "go". A node restarted after
// a kill gets the same lines on its new process, and the two others get its new ports.
//
//   consistent_core cluster --dir D
//       Starts the three nodes on D/1, D/2 and D/3 (created when missing; a directory left by
//       an earlier run is recovered), prints "node I client port P" for each, waits for a
//       leader and prints "leader I client port P", then runs until its stdin ends or it gets
//       SIGINT or SIGTERM, and stops the nodes (end of their stdin, then SIGKILL after 5 s).
#pragma once

#include "../common/node_process.hpp"
#include "resp.hpp"

#include <array>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

namespace consistent_core::cluster {

using pods_examples::NodeProcess;
using SteadyClock = std::chrono::steady_clock;

// One client connection to a node's client port. Thread-compatible.
class RespClient {
 public:
  RespClient() = default;
  RespClient(const RespClient&) = delete;
  RespClient& operator=(const RespClient&) = delete;
  ~RespClient() { close(); }

  // Connects to 127.0.0.1:port (closing any previous connection); false when refused.
  bool connect(unsigned port) {
    close();
    fd_ = pods_examples::connect_to(port);
    return fd_ >= 0;
  }
  void close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    reader_ = resp::ReplyReader{};
  }
  bool connected() const noexcept { return fd_ >= 0; }

  // Sends `command`; false (and the connection closed) when the write fails.
  bool send(const resp::Command& command) {
    if (fd_ < 0) return false;
    const std::string bytes = resp::encode_command(command);
    std::size_t done = 0;
    while (done < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + done, bytes.size() - done, MSG_NOSIGNAL);
      if (n <= 0) {
        close();
        return false;
      }
      done += static_cast<std::size_t>(n);
    }
    return true;
  }

  // Returns the next reply (or push message), or nullopt when none came within `timeout_ms`.
  // A broken connection or bytes that are not RESP close the connection (nullopt); a
  // timeout leaves it open.
  std::optional<resp::Reply> read(int timeout_ms) {
    const auto deadline = SteadyClock::now() + std::chrono::milliseconds(timeout_ms);
    for (;;) {
      if (fd_ < 0) return std::nullopt;
      try {
        if (auto r = reader_.next()) return r;
      } catch (const resp::ProtocolError&) {
        close();
        return std::nullopt;
      }
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) return std::nullopt;
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[16384];
      const ssize_t n = ::read(fd_, buf, sizeof buf);
      if (n <= 0) {
        close();
        return std::nullopt;
      }
      reader_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    }
  }

  // Sends `command` and returns its reply; nullopt when it could not be sent or no reply
  // came within `timeout_ms` (the connection is then closed: a late reply would be taken
  // for the next command's).
  std::optional<resp::Reply> call(const resp::Command& command, int timeout_ms) {
    if (!send(command)) return std::nullopt;
    auto r = read(timeout_ms);
    if (!r) close();
    return r;
  }

 private:
  int fd_ = -1;
  resp::ReplyReader reader_;
};

// Returns the "name:value" lines of an INFO reply's text.
inline std::map<std::string, std::string> parse_info(std::string_view text) {
  std::map<std::string, std::string> fields;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos || line.empty() || line[0] == '#') continue;
    fields.emplace(std::string(line.substr(0, colon)), std::string(line.substr(colon + 1)));
  }
  return fields;
}

// Returns the unsigned number a reply carries (an integer, or a bulk or simple string of
// digits), or nullopt.
inline std::optional<std::uint64_t> reply_number(const resp::Reply& r) {
  if (r.type == resp::Reply::Type::integer) {
    if (r.integer < 0) return std::nullopt;
    return static_cast<std::uint64_t>(r.integer);
  }
  if (r.type != resp::Reply::Type::bulk && r.type != resp::Reply::Type::simple) return std::nullopt;
  if (r.text.empty() || r.text.size() > 19) return std::nullopt;
  std::uint64_t v = 0;
  for (char c : r.text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return v;
}

// The three node processes: their ports (behind a lock: a restart changes them) and the
// processes themselves, killed in the destructor whatever the exit path. The nodes die with
// the thread that started them (see ../common/node_process.hpp): construct, kill and restart
// on one thread that lives until the end.
class Nodes {
 public:
  static constexpr unsigned count = 3;

  // Starts nodes 1-3 on root/1, root/2, root/3 (created when missing) with
  // `self_exe node --id I --dir root/I [flags...]` and introduces them to each other. Throws
  // std::runtime_error when one does not start (those started are killed).
  Nodes(const char* self_exe, std::filesystem::path root, std::vector<std::string> flags = {})
      : exe_(self_exe), root_(std::move(root)), flags_(std::move(flags)) {
    try {
      for (unsigned id = 1; id <= count; ++id) {
        std::filesystem::create_directories(dir(id));
        procs_[id - 1] = start(id);
      }
      for (unsigned id = 1; id <= count; ++id)
        introduce(id);
    } catch (...) {
      kill_all();
      throw;
    }
  }
  Nodes(const Nodes&) = delete;
  Nodes& operator=(const Nodes&) = delete;
  ~Nodes() { kill_all(); }

  // Returns node id's client port (ids 1-3); 0 while it is down.
  unsigned client_port(unsigned id) const {
    std::lock_guard lock(mu_);
    return procs_[id - 1].pid > 0 ? procs_[id - 1].client_port : 0;
  }
  bool running(unsigned id) const {
    std::lock_guard lock(mu_);
    return procs_[id - 1].pid > 0;
  }
  std::filesystem::path dir(unsigned id) const { return root_ / std::to_string(id); }

  // SIGKILLs node id and reaps it; it stays down until restart(id).
  void kill(unsigned id) {
    NodeProcess p;
    {
      std::lock_guard lock(mu_);
      p = std::exchange(procs_[id - 1], NodeProcess{});
    }
    pods_examples::kill_node(p);
  }
  // Starts node id again on its data directory and tells every node the new ports. Throws
  // std::runtime_error when it does not start.
  void restart(unsigned id) {
    NodeProcess fresh = start(id);
    {
      std::lock_guard lock(mu_);
      procs_[id - 1] = fresh;
    }
    introduce(id);
    for (unsigned j = 1; j <= count; ++j) {
      if (j != id && running(j)) pods_examples::tell(procs_[j - 1], peer_line(id));
    }
  }
  // Sends `sig` (SIGSTOP, SIGCONT) to node id when it runs.
  void signal(unsigned id, int sig) {
    std::lock_guard lock(mu_);
    if (procs_[id - 1].pid > 0) ::kill(procs_[id - 1].pid, sig);
  }
  // Stops every node the polite way (end of its stdin) and waits up to `grace` for each;
  // SIGKILLs one that is still running then. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) {
    for (unsigned id = 1; id <= count; ++id) {
      NodeProcess p;
      {
        std::lock_guard lock(mu_);
        p = std::exchange(procs_[id - 1], NodeProcess{});
      }
      if (p.pid <= 0) continue;
      ::kill(p.pid, SIGCONT);  // a paused node cannot read the end of its stdin
      ::close(p.to);
      const auto until = SteadyClock::now() + grace;
      while (::waitpid(p.pid, nullptr, WNOHANG) == 0) {
        if (SteadyClock::now() >= until) {
          ::kill(p.pid, SIGKILL);
          ::waitpid(p.pid, nullptr, 0);
          break;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      ::close(p.from);
    }
  }
  // SIGKILLs every node that runs. Idempotent.
  void kill_all() {
    for (unsigned id = 1; id <= count; ++id)
      kill(id);
  }

 private:
  NodeProcess start(unsigned id) const {
    std::vector<std::string> args{"consistent_core",  "node",  "--id",
                                  std::to_string(id), "--dir", dir(id).string()};
    args.insert(args.end(), flags_.begin(), flags_.end());
    return pods_examples::start_node_process(exe_, args, "node " + std::to_string(id));
  }
  std::string peer_line(unsigned id) const {
    std::lock_guard lock(mu_);
    const NodeProcess& p = procs_[id - 1];
    return "peer " + std::to_string(id) + " " + std::to_string(p.peer_port) + " " +
           std::to_string(p.client_port);
  }
  // Tells node id the ports of every other running node, then "go".
  void introduce(unsigned id) {
    for (unsigned j = 1; j <= count; ++j) {
      if (j != id && running(j)) pods_examples::tell(procs_[id - 1], peer_line(j));
    }
    pods_examples::tell(procs_[id - 1], "go");
  }

  const char* exe_;
  std::filesystem::path root_;
  std::vector<std::string> flags_;  // passed to every node, restarts included
  mutable std::mutex mu_;
  std::array<NodeProcess, count> procs_{};
};

// What a node says of itself in INFO.
struct NodeInfo {
  bool leader = false;
  std::uint64_t term = 0, commit_index = 0, applied_index = 0, revision = 0;
  std::uint64_t snapshot_index = 0, snapshots_taken = 0, snapshots_installed = 0;
  unsigned leader_hint = 0;
};

// Asks node id for INFO over a fresh connection; nullopt when it does not answer in
// `timeout_ms` (down, paused).
inline std::optional<NodeInfo> node_info(const Nodes& nodes, unsigned id, int timeout_ms) {
  const unsigned port = nodes.client_port(id);
  if (port == 0) return std::nullopt;
  RespClient c;
  if (!c.connect(port)) return std::nullopt;
  auto r = c.call({"INFO"}, timeout_ms);
  if (!r || r->type != resp::Reply::Type::bulk) return std::nullopt;
  const auto f = parse_info(r->text);
  auto number = [&](const char* name) -> std::uint64_t {
    auto it = f.find(name);
    return it == f.end() ? 0 : std::strtoull(it->second.c_str(), nullptr, 10);
  };
  NodeInfo info;
  auto role = f.find("role");
  info.leader = role != f.end() && role->second == "leader";
  info.term = number("term");
  info.commit_index = number("commit_index");
  info.applied_index = number("applied_index");
  info.revision = number("revision");
  info.snapshot_index = number("snapshot_index");
  info.snapshots_taken = number("snapshots_taken");
  info.snapshots_installed = number("snapshots_installed");
  info.leader_hint = static_cast<unsigned>(number("leader"));
  return info;
}

// Returns the node that reports itself leader in the highest term, polling every node until
// one does or `timeout` passes (then 0).
inline unsigned find_leader(const Nodes& nodes, std::chrono::milliseconds timeout,
                            std::uint64_t* term = nullptr) {
  const auto until = SteadyClock::now() + timeout;
  for (;;) {
    unsigned best = 0;
    std::uint64_t best_term = 0;
    for (unsigned id = 1; id <= Nodes::count; ++id) {
      auto info = node_info(nodes, id, 300);
      if (info && info->leader && info->term >= best_term) {
        best = id;
        best_term = info->term;
      }
    }
    if (best != 0 || SteadyClock::now() >= until) {
      if (term) *term = best_term;
      return best;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// Runs the `cluster` subcommand: see the top of this file. Returns 0 once stopped, 1 when no
// leader was elected within 30 s.
inline int run(const char* self_exe, const std::filesystem::path& dir) {
  // SIGINT and SIGTERM are read from a signalfd, so every way out goes through stop().
  sigset_t stops;
  sigemptyset(&stops);
  sigaddset(&stops, SIGINT);
  sigaddset(&stops, SIGTERM);
  sigaddset(&stops, SIGHUP);
  ::sigprocmask(SIG_BLOCK, &stops, nullptr);
  const int sfd = ::signalfd(-1, &stops, SFD_CLOEXEC);
  if (sfd < 0) throw std::runtime_error("signalfd failed");
  Nodes nodes(self_exe, dir);
  for (unsigned id = 1; id <= Nodes::count; ++id)
    std::printf("node %u client port %u\n", id, nodes.client_port(id));
  std::fflush(stdout);
  std::uint64_t term = 0;
  const unsigned leader = find_leader(nodes, std::chrono::seconds(30), &term);
  if (leader == 0) {
    std::printf("FAILED: no leader within 30 s\n");
    nodes.stop();
    ::close(sfd);
    return 1;
  }
  std::printf("leader %u client port %u (term %llu)\n", leader, nodes.client_port(leader),
              static_cast<unsigned long long>(term));
  std::fflush(stdout);
  pollfd fds[2] = {{0, POLLIN, 0}, {sfd, POLLIN, 0}};
  for (;;) {
    if (::poll(fds, 2, -1) < 0) continue;
    if (fds[1].revents) break;
    if (fds[0].revents) {
      char buf[256];
      if (::read(0, buf, sizeof buf) <= 0) break;  // the end of stdin
    }
  }
  nodes.stop();
  ::close(sfd);
  std::printf("stopped\n");
  return 0;
}

}  // namespace consistent_core::cluster

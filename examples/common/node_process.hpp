// The supervisor's side of the multi-process examples (replicated_kv, consistent_core): start a
// node process (this same binary with a subcommand) with a pipe on its stdin and one on its
// stdout, read the "ports <peer port> <client port>" line it prints, send it lines, kill it
// whatever the exit path, and connect to a port on 127.0.0.1.
//
// A node started here is killed by the kernel when the thread that started it exits
// (PR_SET_DEATHSIG), so a supervisor that dies leaves no node behind, not even a stopped one.
#pragma once

#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

namespace pods_examples {

struct NodeProcess {
  pid_t pid = -1;
  int to = -1, from = -1;  // the node's stdin and stdout
  unsigned peer_port = 0, client_port = 0;
};

// Kills the node with SIGKILL, reaps it and closes its pipes. Does nothing for a node that is
// not running (pid <= 0).
inline void kill_node(NodeProcess& p) {
  if (p.pid <= 0) return;
  ::kill(p.pid, SIGKILL);
  ::waitpid(p.pid, nullptr, 0);
  ::close(p.to);
  ::close(p.from);
  p.pid = -1;
}

// Stops the node the polite way: closes its stdin (a node stops at the end of its stdin),
// waits for it to exit and closes its stdout. Does nothing for a node that is not running.
inline void stop_node(NodeProcess& p) {
  if (p.pid <= 0) return;
  ::close(p.to);
  ::waitpid(p.pid, nullptr, 0);
  ::close(p.from);
  p.pid = -1;
}

// Starts `exe` with the arguments `args` (args[0] becomes argv[0]) and reads the "ports"
// line it prints first. `what` names the node in the error. Throws std::runtime_error when
// the process cannot start or prints something else (the process is then killed).
inline NodeProcess start_node_process(const char* exe, const std::vector<std::string>& args,
                                      const std::string& what) {
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) throw std::runtime_error("pipe failed");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    throw std::runtime_error("pipe failed");
  }
  std::vector<char*> argv;
  for (const std::string& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    sigset_t none;  // a supervisor may block signals (to read them from a signalfd)
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::execv(exe, argv.data());
    std::_Exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  NodeProcess p{pid, in[1], out[0]};
  std::string line;
  char ch = 0;
  while (::read(p.from, &ch, 1) == 1 && ch != '\n')
    line += ch;
  if (std::sscanf(line.c_str(), "ports %u %u", &p.peer_port, &p.client_port) != 2) {
    kill_node(p);
    throw std::runtime_error(what + " did not report its ports");
  }
  return p;
}

// Sends `line` and a newline to the node's stdin. Throws std::runtime_error when the write
// fails (the node is gone).
inline void tell(const NodeProcess& p, const std::string& line) {
  const std::string l = line + "\n";
  if (::write(p.to, l.data(), l.size()) != static_cast<ssize_t>(l.size())) {
    throw std::runtime_error("writing to a node failed");
  }
}

// Returns a connected TCP socket to 127.0.0.1:port with TCP_NODELAY, or -1.
inline int connect_to(unsigned port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

}  // namespace pods_examples

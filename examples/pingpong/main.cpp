// pingpong: N processes on 127.0.0.1 exchange numbered messages through net::TcpTransport,
// and a supervisor kills one with SIGKILL mid-run and starts it again.
//
//   pingpong [--nodes N] [--duration S] [--down S] [--send-duplicate]
//                                                      the supervisor (the default mode)
//   pingpong node --id I                               one node, driven over stdin/stdout
//
// The supervisor starts nodes 1..N as child processes of this same program. Each node listens
// on a port the OS chooses and prints "port P"; the supervisor tells every node the others'
// ports ("peer I P" lines on its stdin), then "go". Every 2 ms a node sends each peer the
// message "<pid> <seq>", seq counting 1, 2, 3, ... per peer, and every 50 ms it prints what it
// has heard ("heard I=count ..."). A receiver checks that, per sender process (its pid), the
// numbers only grow: order per peer and no duplicate, across every connection that process
// had. A third of the way through, the supervisor kills the middle node with SIGKILL, checks
// while it is down that every pair of survivors keeps hearing each other (the survivors
// never stall on the dead peer), starts it again on a new port, tells the others
// ("peer I P"), and checks that messages flow both ways again. At the end it sends "stop",
// reads each node's "summary" line and prints a verdict; it exits 0 when every check held.
// --send-duplicate makes every node send one old number again, to each peer, once: the run
// must then report the duplicates and fail (the checker's own test).
#include <pods/net/tcp_transport.hpp>
#include <pods/policy/codec.hpp>

#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

using Transport = pods::net::TcpTransport<std::string, pods::StringCodec>;

// ---- one node ----

int run_node(pods::NodeId self, bool send_duplicate) {
  Transport transport(self, {.seed = self});
  std::mutex mu;
  std::map<pods::NodeId, std::pair<std::uint64_t, std::uint64_t>> last;  // from -> (pid, seq)
  std::map<pods::NodeId, std::uint64_t> heard;
  std::uint64_t violations = 0;
  transport.on_receive([&](pods::NodeId from, std::string m) {
    std::uint64_t pid = 0, seq = 0;
    std::istringstream in(m);
    std::lock_guard lock(mu);
    if (!(in >> pid >> seq)) {
      ++violations;
      std::cerr << "node " << self << ": malformed message from " << from << "\n";
      return;
    }
    auto& [sender, seen] = last[from];
    if (sender == pid && seq <= seen) {
      ++violations;
      std::cerr << "node " << self << ": from " << from << " seq " << seq << " after " << seen
                << "\n";
    }
    sender = pid;
    seen = seq;
    ++heard[from];
  });
  std::cout << "port " << transport.local_port() << std::endl;

  // Control lines from the supervisor, read on their own thread.
  std::mutex control_mu;
  std::vector<std::string> control;
  std::thread reader([&] {
    std::string line;
    while (std::getline(std::cin, line)) {
      std::lock_guard lock(control_mu);
      control.push_back(line);
    }
    std::lock_guard lock(control_mu);
    control.push_back("stop");  // the supervisor is gone
  });
  reader.detach();

  std::vector<pods::NodeId> peers;
  std::map<pods::NodeId, std::uint64_t> next_seq;
  const std::uint64_t pid = static_cast<std::uint64_t>(::getpid());
  bool started = false;
  auto last_report = Clock::now();
  for (;;) {
    std::vector<std::string> lines;
    {
      std::lock_guard lock(control_mu);
      lines.swap(control);
    }
    for (const std::string& line : lines) {
      std::istringstream in(line);
      std::string word;
      in >> word;
      if (word == "peer") {
        pods::NodeId id = 0;
        unsigned port = 0;
        in >> id >> port;
        transport.set_peer(id, "127.0.0.1", static_cast<std::uint16_t>(port));
        if (!next_seq.count(id)) {
          peers.push_back(id);
          next_seq[id] = 1;
        }
      } else if (word == "go" && !started) {
        transport.start();
        started = true;
      } else if (word == "stop") {
        transport.stop();
        std::lock_guard lock(mu);
        std::uint64_t total = 0;
        for (const auto& [from, n] : heard)
          total += n;
        std::cout << "summary received=" << total << " violations=" << violations << std::endl;
        return violations == 0 ? 0 : 1;
      }
    }
    if (started) {
      for (pods::NodeId to : peers) {
        std::string m = std::to_string(pid);
        m += ' ';
        m += std::to_string(next_seq[to]);
        if (transport.send(to, std::move(m))) ++next_seq[to];  // refused (full): not numbered
        if (send_duplicate && next_seq[to] == 100) {
          (void)transport.send(to, std::to_string(pid) + " 50");  // the checker's own test
        }
      }
      if (Clock::now() - last_report >= 50ms) {
        last_report = Clock::now();
        std::ostringstream out;
        out << "heard";
        std::lock_guard lock(mu);
        for (const auto& [from, n] : heard)
          out << ' ' << from << '=' << n;
        std::cout << out.str() << std::endl;
      }
    }
    std::this_thread::sleep_for(2ms);  // the workload's pace, not a synchronisation
  }
}

// ---- the supervisor ----

struct Child {
  pods::NodeId id = 0;
  pid_t pid = -1;
  int to_child = -1;    // its stdin
  int from_child = -1;  // its stdout
  std::string partial;  // an unfinished line read from it
  unsigned port = 0;
  std::map<pods::NodeId, std::uint64_t> heard;  // from its latest "heard" line
  std::string summary;
};

[[noreturn]] void die(const std::string& what) {
  std::cerr << "pingpong: " << what << "\n";
  std::exit(2);
}

void start_child(Child& c, const char* self_exe, bool send_duplicate) {
  int in[2], out[2];
  if (::pipe(in) != 0 || ::pipe(out) != 0) die("pipe failed");
  const pid_t pid = ::fork();
  if (pid < 0) die("fork failed");
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::close(in[0]);
    ::close(in[1]);
    ::close(out[0]);
    ::close(out[1]);
    const std::string id = std::to_string(c.id);
    ::execl(self_exe, "pingpong", "node", "--id", id.c_str(),
            send_duplicate ? "--send-duplicate" : static_cast<char*>(nullptr),
            static_cast<char*>(nullptr));
    std::_Exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  c.pid = pid;
  c.to_child = in[1];
  c.from_child = out[0];
  c.partial.clear();
  c.port = 0;
  c.heard.clear();
  c.summary.clear();
}

void tell(const Child& c, const std::string& line) {
  const std::string l = line + "\n";
  if (::write(c.to_child, l.data(), l.size()) != static_cast<ssize_t>(l.size())) {
    die("writing to node " + std::to_string(c.id) + " failed");
  }
}

void handle_line(Child& c, const std::string& line) {
  std::istringstream in(line);
  std::string word;
  in >> word;
  if (word == "port") {
    in >> c.port;
  } else if (word == "heard") {
    std::string pair;
    while (in >> pair) {
      const auto eq = pair.find('=');
      c.heard[std::stoull(pair.substr(0, eq))] = std::stoull(pair.substr(eq + 1));
    }
  } else if (word == "summary") {
    c.summary = line;
  }
}

// Reads whatever the children printed, for up to `wait`.
void pump(std::vector<Child>& children, std::chrono::milliseconds wait) {
  std::vector<pollfd> fds;
  for (const Child& c : children) {
    if (c.from_child >= 0) fds.push_back({c.from_child, POLLIN, 0});
  }
  if (::poll(fds.data(), fds.size(), static_cast<int>(wait.count())) <= 0) return;
  for (Child& c : children) {
    if (c.from_child < 0) continue;
    for (const pollfd& p : fds) {
      if (p.fd != c.from_child || !(p.revents & (POLLIN | POLLHUP))) continue;
      char buf[4096];
      const ssize_t n = ::read(c.from_child, buf, sizeof buf);
      if (n <= 0) {
        ::close(c.from_child);
        c.from_child = -1;
        break;
      }
      c.partial.append(buf, static_cast<std::size_t>(n));
      for (auto nl = c.partial.find('\n'); nl != std::string::npos; nl = c.partial.find('\n')) {
        handle_line(c, c.partial.substr(0, nl));
        c.partial.erase(0, nl + 1);
      }
    }
  }
}

// Pumps until `done()` or `limit`; returns done().
template <class Pred>
bool pump_until(std::vector<Child>& children, Pred done, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() >= end) return false;
    pump(children, 20ms);
  }
  return true;
}

// (receiver, sender) -> messages the receiver reported hearing from the sender.
using Heard = std::map<std::pair<pods::NodeId, pods::NodeId>, std::uint64_t>;

// Returns a snapshot of who heard how much from whom.
Heard heard(const std::vector<Child>& children) {
  Heard out;
  for (const Child& c : children) {
    for (const auto& [from, n] : c.heard)
      out[{c.id, from}] = n;
  }
  return out;
}

int supervise(const char* self_exe, int n, double duration_s, double down_s, bool dup) {
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<Child> children(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    children[static_cast<std::size_t>(i)].id = static_cast<pods::NodeId>(i + 1);
    start_child(children[static_cast<std::size_t>(i)], self_exe, dup);
  }
  auto all_ports = [&] {
    for (const Child& c : children)
      if (c.port == 0) return false;
    return true;
  };
  if (!pump_until(children, all_ports, 10s)) die("a node did not report its port");
  for (const Child& c : children) {
    for (const Child& o : children) {
      if (o.id != c.id) tell(c, "peer " + std::to_string(o.id) + " " + std::to_string(o.port));
    }
    tell(c, "go");
  }
  const auto run = std::chrono::milliseconds(static_cast<long long>(duration_s * 1000));
  const auto down = std::chrono::milliseconds(static_cast<long long>(down_s * 1000));
  Child& victim = children[static_cast<std::size_t>(n / 2)];  // the middle node: it dials some
                                                              // peers and accepts others
  bool ok = true;
  auto fail = [&](const std::string& what) {
    std::cout << "FAILED: " << what << "\n";
    ok = false;
  };

  // Phase 1: everyone hears everyone.
  const auto start = Clock::now();
  // Every pair of nodes other than `skip` heard at least 10 more messages than in `before`.
  auto everyone_heard = [&children](const Heard& before, const Child* skip) {
    const Heard now = heard(children);
    for (const Child& a : children) {
      for (const Child& b : children) {
        if (a.id == b.id || &a == skip || &b == skip) continue;
        auto it = before.find({a.id, b.id});
        const std::uint64_t was = it == before.end() ? 0 : it->second;
        auto jt = now.find({a.id, b.id});
        if (jt == now.end() || jt->second < was + 10) return false;
      }
    }
    return true;
  };
  const Heard none;
  if (!pump_until(
          children, [&] { return everyone_heard(none, nullptr); }, 10s)) {
    fail("the nodes did not all hear each other at the start");
  }
  pump_until(
      children, [] { return false; },
      std::chrono::duration_cast<std::chrono::milliseconds>(run / 3 - (Clock::now() - start)));

  // Phase 2: kill the victim; the survivors keep hearing each other while it is down.
  ::kill(victim.pid, SIGKILL);
  ::waitpid(victim.pid, nullptr, 0);
  ::close(victim.to_child);
  if (victim.from_child >= 0) ::close(victim.from_child);
  victim.from_child = -1;
  std::cout << "killed node " << victim.id << " (SIGKILL)\n";
  const auto at_kill = heard(children);
  pump_until(
      children, [] { return false; }, down);
  if (!everyone_heard(at_kill, &victim)) {
    fail("a survivor stalled while node " + std::to_string(victim.id) + " was down");
  } else {
    std::cout << "survivors kept exchanging while node " << victim.id << " was down\n";
  }

  // Phase 3: restart it on a new port; messages flow both ways again.
  start_child(victim, self_exe, dup);
  if (!pump_until(
          children, [&] { return victim.port != 0; }, 10s))
    die("no port on restart");
  for (const Child& o : children) {
    if (o.id == victim.id) continue;
    tell(victim, "peer " + std::to_string(o.id) + " " + std::to_string(o.port));
    tell(o, "peer " + std::to_string(victim.id) + " " + std::to_string(victim.port));
  }
  tell(victim, "go");
  std::cout << "restarted node " << victim.id << "\n";
  const auto at_restart = heard(children);
  // The restarted node's counters start from zero: compare it against none.
  auto rejoined = [&] {
    const auto now = heard(children);
    for (const Child& o : children) {
      if (o.id == victim.id) continue;
      const auto to_victim = now.find({victim.id, o.id});
      const auto from_victim = now.find({o.id, victim.id});
      const auto before = at_restart.find({o.id, victim.id});
      if (to_victim == now.end() || to_victim->second < 10) return false;
      if (from_victim == now.end() || from_victim->second < before->second + 10) return false;
    }
    return true;
  };
  if (!pump_until(children, rejoined, 15s)) {
    fail("node " + std::to_string(victim.id) + " did not rejoin");
  } else {
    std::cout << "node " << victim.id << " exchanges with everyone again\n";
  }
  pump_until(
      children, [] { return false; },
      std::chrono::duration_cast<std::chrono::milliseconds>(run - (Clock::now() - start)));

  // Stop and collect the verdicts.
  for (const Child& c : children)
    tell(c, "stop");
  auto all_summaries = [&] {
    for (const Child& c : children)
      if (c.summary.empty()) return false;
    return true;
  };
  if (!pump_until(children, all_summaries, 10s)) fail("a node did not report its summary");
  std::uint64_t received = 0, violations = 0;
  for (Child& c : children) {
    int status = 0;
    ::waitpid(c.pid, &status, 0);
    std::cout << "node " << c.id << ": " << c.summary << "\n";
    std::uint64_t r = 0, v = 0;
    if (std::sscanf(c.summary.c_str(), "summary received=%lu violations=%lu", &r, &v) == 2) {
      received += r;
      violations += v;
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      fail("node " + std::to_string(c.id) + " exited with status " + std::to_string(status));
    }
  }
  std::cout << "verdict: " << received << " messages received, " << violations
            << " out of order or duplicated, " << (ok ? "no stall" : "FAILED") << "\n";
  return ok && violations == 0 ? 0 : 1;
}

double number(const char* flag, const char* text) {
  char* end = nullptr;
  const double v = std::strtod(text, &end);
  if (end == text || *end != '\0' || !(v > 0) || v > 3600) {
    die(std::string(flag) + ": not a positive number of seconds: " + text);
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    if (argc >= 4 && std::strcmp(argv[1], "node") == 0 && std::strcmp(argv[2], "--id") == 0) {
      return run_node(std::strtoull(argv[3], nullptr, 10),
                      argc >= 5 && std::strcmp(argv[4], "--send-duplicate") == 0);
    }
    int n = 3;
    double duration = 6, down = 1;
    bool send_duplicate = false;
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--send-duplicate") {
        send_duplicate = true;
      } else if ((a == "--nodes" || a == "--duration" || a == "--down") && i + 1 < argc) {
        const char* v = argv[++i];
        if (a == "--nodes") {
          n = std::atoi(v);
          if (n < 3 || n > 16) die("--nodes: 3 to 16, got " + std::string(v));
        } else if (a == "--duration") {
          duration = number("--duration", v);
        } else {
          down = number("--down", v);
        }
      } else {
        std::cerr << "usage: pingpong [--nodes N] [--duration S] [--down S] [--send-duplicate]\n";
        return a == "--help" || a == "-h" ? 0 : 2;
      }
    }
    if (duration < 3 * down) die("--duration must be at least 3 times --down");
    return supervise("/proc/self/exe", n, duration, down, send_duplicate);
  } catch (const std::exception& e) {
    std::cerr << "pingpong: " << e.what() << "\n";
    return 2;
  }
}

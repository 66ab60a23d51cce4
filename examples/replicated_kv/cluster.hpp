// `replicated_kv cluster`: a supervisor that starts 3 node processes (each on its own data
// directory under a temporary directory), runs concurrent clients doing puts and gets on a few
// keys while recording a pods::sim::History on a steady clock, and with faults SIGKILLs a
// random node (the leader included) at seeded random moments and restarts it on its data
// directory (telling the others its new port), or SIGSTOPs one for a while and SIGCONTs it.
// After the faults a final read of every key must succeed; then the whole history is checked
// with check_linearizable(KvModel). Every exit path kills the node processes.
//
// A client's request that gets no answer within the operation timeout, whose connection
// breaks after it was sent, or that is answered "UNK" (a snapshot covered it), is recorded
// as unknown (it may or may not have taken effect) and
// the client continues under a new client id. A request refused by "NL" (not the leader) or
// "ERR" (another entry won its index) did not take effect: it is retried at the hinted node
// until the timeout, and left out of the history if every attempt was refused.
#pragma once

#include "load.hpp"

#include <pods/policy/random.hpp>
#include <pods/sim/history.hpp>
#include <pods/sim/linearizability.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

namespace replicated_kv {

struct ClusterRun {
  double seconds = 8;         // how long clients run (and faults are injected)
  bool faults = false;        // SIGKILL/restart and SIGSTOP/SIGCONT random nodes
  std::uint64_t seed = 1;     // the fault schedule's seed
  unsigned clients = 4;       // concurrent closed-loop clients
  int op_timeout_ms = 3000;   // an operation without an answer by then is unknown
  double check_seconds = 60;  // the linearizability checker's time budget
  bool stale_reads = false;   // nodes answer gets locally; gets go to a random node (broken)
};

namespace detail {

using Clock = std::chrono::steady_clock;
using KvHistory = pods::sim::History<pods::sim::KvInput, pods::sim::KvOutput>;

// The node processes: the ports clients connect to (behind a lock: a restart changes them),
// and the processes themselves, killed in the destructor whatever the exit path.
class Nodes {
 public:
  Nodes(const char* self_exe, std::filesystem::path root, bool stale_reads)
      : exe_(self_exe),
        root_(std::move(root)),
        stale_(stale_reads),
        procs_(start_nodes(exe_, root_, stale_)) {}
  Nodes(const Nodes&) = delete;
  Nodes& operator=(const Nodes&) = delete;
  ~Nodes() { stop(); }

  // Returns node id's client port (ids 1-3).
  unsigned client_port(unsigned id) {
    std::lock_guard lock(mu_);
    return procs_[id - 1].client_port;
  }
  // SIGKILLs node id, restarts it on its data directory and tells every node the new port.
  void kill_and_restart(unsigned id) {
    NodeProcess& p = procs_[id - 1];
    kill_node(p);
    NodeProcess fresh = start_node(exe_, id, (root_ / std::to_string(id)).string(), stale_);
    {
      std::lock_guard lock(mu_);
      p = fresh;
    }
    for (unsigned j = 0; j < procs_.size(); ++j) {
      if (j != id - 1)
        tell(procs_[j], "peer " + std::to_string(id) + " " + std::to_string(p.peer_port));
    }
    introduce(procs_, id - 1);
  }
  void signal(unsigned id, int sig) { ::kill(procs_[id - 1].pid, sig); }
  // Kills every node and removes the data directories. Idempotent.
  void stop() {
    for (NodeProcess& p : procs_)
      kill_node(p);
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

 private:
  const char* exe_;
  std::filesystem::path root_;
  bool stale_;
  std::mutex mu_;
  std::vector<NodeProcess> procs_;
};

// One client: a connection to the node it believes leads, and a client id for the history.
struct Client {
  Nodes& nodes;
  KvHistory& history;
  std::atomic<unsigned>& leader;
  std::atomic<std::uint64_t>& next_process;
  std::atomic<std::uint64_t>& leader_changes;
  int timeout_ms;
  std::uint64_t process;
  std::uint64_t seq = 0;
  unsigned at = 0;
  int fd = -1;
  std::string buffer;

  Client(Nodes& n, KvHistory& h, std::atomic<unsigned>& l, std::atomic<std::uint64_t>& next,
         std::atomic<std::uint64_t>& changes, int timeout)
      : nodes(n),
        history(h),
        leader(l),
        next_process(next),
        leader_changes(changes),
        timeout_ms(timeout),
        process(next++) {}
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;
  ~Client() { disconnect(); }
  void disconnect() {
    if (fd >= 0) ::close(fd);
    fd = -1;
    buffer.clear();
  }
  void redirect(unsigned hint) {
    unsigned expected = leader.load();
    if (hint >= 1 && hint <= 3 && hint != expected &&
        leader.compare_exchange_strong(expected, hint))
      ++leader_changes;
  }

  // Runs one operation; returns "ok", "unknown" or "refused" (never took effect).
  // stray: send a get to a random node first (for the stale-reads mode).
  std::string run(const pods::sim::KvInput& input, pods::Random* stray = nullptr) {
    const auto id = history.invoke(process, input);
    const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
    const std::string tag = std::to_string(++seq);
    const std::string request =
        (input.op == pods::sim::KvOp::get ? "G " + tag + " " + input.key
                                          : "P " + tag + " " + input.key + " " + input.value) +
        "\n";
    unsigned target = leader.load();
    if (stray && input.op == pods::sim::KvOp::get)
      target = static_cast<unsigned>(stray->below(3) + 1);
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      if (left.count() <= 0) {
        history.fail(id);  // every attempt was refused or never sent
        return "refused";
      }
      if (fd < 0 || at != target) {
        disconnect();
        at = target;
        fd = connect_to(nodes.client_port(at));
        if (fd < 0) {
          target = target % 3 + 1;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
      }
      const std::string answer = call(fd, request, buffer, static_cast<int>(left.count()));
      if (answer.rfind("OK " + tag + " ", 0) == 0) {
        const std::string v = answer.substr(4 + tag.size());
        pods::sim::KvOutput out;
        if (input.op == pods::sim::KvOp::get && v != "-") out.value = v;
        history.ok(id, out);
        return "ok";
      }
      if (answer.rfind("NL " + tag + " ", 0) == 0) {
        const unsigned hint = static_cast<unsigned>(std::atoi(answer.c_str() + 4 + tag.size()));
        redirect(hint);
        if (hint >= 1 && hint <= 3 && hint != at) {
          target = hint;
        } else {
          target = at % 3 + 1;
          std::this_thread::sleep_for(std::chrono::milliseconds(20));  // no leader yet
        }
        continue;
      }
      if (answer.rfind("ERR " + tag, 0) == 0) continue;  // another entry won: not applied
      // No answer, or the connection broke after the request went out: it may have been
      // applied. Later operations come from a new client id.
      history.unknown(id);
      disconnect();
      process = next_process++;
      return "unknown";
    }
  }
};

}  // namespace detail

// Runs the cluster; prints a summary and "verdict: linearizable ..." or "FAILED: ...".
// Returns 0 when the history checked linearizable and every final read succeeded.
inline int run_cluster(const char* self_exe, const ClusterRun& o) {
  using detail::Clock;
  char tmpl[] = "/tmp/replicated_kv_cluster.XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  detail::Nodes nodes(self_exe, tmpl, o.stale_reads);
  const auto t0 = Clock::now();
  detail::KvHistory history([t0] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
  });
  std::atomic<unsigned> leader{1};
  std::atomic<std::uint64_t> next_process{1}, leader_changes{0}, ops{0}, ok{0}, unknown{0},
      refused{0};
  std::atomic<bool> done{false};
  const std::vector<std::string> keys{"a", "b", "c"};
  auto count = [&](const std::string& r) {
    ++ops;
    (r == "ok" ? ok : r == "unknown" ? unknown : refused)++;
  };

  std::vector<std::thread> threads;
  for (unsigned k = 0; k < o.clients; ++k) {
    threads.emplace_back([&, k] {
      detail::Client c(nodes, history, leader, next_process, leader_changes, o.op_timeout_ms);
      pods::Random draws(o.seed * 1000 + k + 1);
      std::uint64_t n = 0;
      while (!done) {
        const std::string& key = keys[draws.below(keys.size())];
        count(c.run(draws.chance(0.5) ? pods::sim::KvModel::get(key)
                                      : pods::sim::KvModel::put(key, "v" + std::to_string(k) + "." +
                                                                         std::to_string(++n)),
                    o.stale_reads ? &draws : nullptr));
      }
    });
  }
  auto join = [&] {
    done = true;
    for (std::thread& t : threads)
      if (t.joinable()) t.join();
  };

  std::uint64_t kills = 0, pauses = 0;
  std::string failure;
  try {
    // The faults run on this thread: the node processes die with the thread that started
    // them, which lives until the end.
    pods::Random rng(o.seed);
    const auto end =
        t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
    auto ms = [](std::uint64_t lo, std::uint64_t hi, pods::Random& r) {
      return std::chrono::milliseconds(lo + r.below(hi - lo + 1));
    };
    while (Clock::now() < end) {
      std::this_thread::sleep_until(
          std::min<Clock::time_point>(end, Clock::now() + ms(300, 1200, rng)));
      if (!o.faults || Clock::now() >= end) continue;
      const unsigned victim =
          rng.chance(0.5) ? leader.load() : static_cast<unsigned>(rng.below(3) + 1);
      if (rng.chance(0.5)) {
        nodes.kill_and_restart(victim);
        ++kills;
      } else {
        nodes.signal(victim, SIGSTOP);
        std::this_thread::sleep_for(ms(200, 1500, rng));
        nodes.signal(victim, SIGCONT);
        ++pauses;
      }
    }
    join();
    // The quiet period: a final read of every key must succeed.
    detail::Client c(nodes, history, leader, next_process, leader_changes, o.op_timeout_ms);
    const auto quiet_end = Clock::now() + std::chrono::milliseconds(10 * o.op_timeout_ms);
    for (const std::string& key : keys) {
      std::string r;
      while (r != "ok" && Clock::now() < quiet_end) {
        r = c.run(pods::sim::KvModel::get(key));
        count(r);
      }
      if (r != "ok" && failure.empty())
        failure = "the final read of key " + key + " did not succeed";
    }
  } catch (const std::exception& e) {  // a node did not restart, a pipe broke
    join();
    nodes.stop();
    std::printf("FAILED: %s\n", e.what());
    return 1;
  }
  nodes.stop();

  const auto operations = history.operations();
  const auto c0 = Clock::now();
  const auto check =
      pods::sim::check_linearizable(pods::sim::KvModel{}, std::span(operations),
                                    std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::duration<double>(o.check_seconds)));
  const double check_s = std::chrono::duration<double>(Clock::now() - c0).count();
  std::printf(
      "replicated_kv cluster: 3 processes, %u clients, %.0f s%s, seed %llu: %llu operations, "
      "%llu ok, %llu unknown, %llu refused (not applied), %llu kills, %llu pauses, %llu leader "
      "changes seen by clients\n",
      o.clients, o.seconds, o.faults ? " with faults" : "", static_cast<unsigned long long>(o.seed),
      static_cast<unsigned long long>(ops.load()), static_cast<unsigned long long>(ok.load()),
      static_cast<unsigned long long>(unknown.load()),
      static_cast<unsigned long long>(refused.load()), static_cast<unsigned long long>(kills),
      static_cast<unsigned long long>(pauses),
      static_cast<unsigned long long>(leader_changes.load()));
  if (failure.empty() && check.verdict == pods::sim::Verdict::illegal)
    failure = "the history is NOT linearizable";
  if (failure.empty() && check.verdict == pods::sim::Verdict::unknown)
    failure = "the checker ran out of its " + std::to_string(o.check_seconds) +
              " s budget (verdict unknown)";
  if (!failure.empty()) {
    std::printf("FAILED: %s\n", failure.c_str());
    return 1;
  }
  std::printf("verdict: linearizable (%zu operations checked in %.1f s)\n", operations.size(),
              check_s);
  return 0;
}

}  // namespace replicated_kv

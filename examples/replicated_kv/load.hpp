// `replicated_kv load`: starts 3 node processes (each with its own data directory under a
// temporary directory, fdatasync on every node), runs C closed-loop clients doing puts of B
// bytes against the leader for S seconds, prints one line of throughput and latency, and
// stops the nodes.
#pragma once

#include "../common/node_process.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

namespace replicated_kv {

using pods_examples::connect_to;
using pods_examples::kill_node;
using pods_examples::NodeProcess;
using pods_examples::tell;

// Starts `self_exe node --id id --data dir` and reads its "ports" line (see
// ../common/node_process.hpp). stale_reads passes --stale-reads. Throws std::runtime_error
// when it cannot start.
inline NodeProcess start_node(const char* self_exe, unsigned id, const std::string& dir,
                              bool stale_reads = false) {
  std::vector<std::string> args{"replicated_kv", "node", "--id", std::to_string(id), "--data", dir};
  if (stale_reads) args.emplace_back("--stale-reads");
  return pods_examples::start_node_process(self_exe, args, "node " + std::to_string(id));
}

// Tells node `i` of `nodes` (ids 1-3) the peer port of every other node, then "go".
inline void introduce(const std::vector<NodeProcess>& nodes, unsigned i) {
  for (unsigned j = 0; j < nodes.size(); ++j) {
    if (i != j)
      tell(nodes[i], "peer " + std::to_string(j + 1) + " " + std::to_string(nodes[j].peer_port));
  }
  tell(nodes[i], "go");
}

// Starts nodes 1-3, each on its data directory root/<id>, and introduces them to each other.
// Creates the directories. Throws std::runtime_error when a node does not start (the nodes
// started so far are then stopped).
inline std::vector<NodeProcess> start_nodes(const char* self_exe, const std::filesystem::path& root,
                                            bool stale_reads = false) {
  std::vector<NodeProcess> nodes;
  try {
    for (unsigned id = 1; id <= 3; ++id) {
      std::filesystem::create_directories(root / std::to_string(id));
      nodes.push_back(start_node(self_exe, id, (root / std::to_string(id)).string(), stale_reads));
    }
  } catch (...) {
    for (NodeProcess& p : nodes)
      kill_node(p);
    throw;
  }
  for (unsigned i = 0; i < 3; ++i)
    introduce(nodes, i);
  return nodes;
}

// Sends one request line and reads one answer line; "" on a failure or after `timeout_ms`.
inline std::string call(int fd, const std::string& request, std::string& buffer, int timeout_ms) {
  if (::write(fd, request.data(), request.size()) != static_cast<ssize_t>(request.size()))
    return "";
  for (;;) {
    if (auto nl = buffer.find('\n'); nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      return line;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, timeout_ms) <= 0) return "";
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) return "";
    buffer.append(buf, static_cast<std::size_t>(n));
  }
}

inline int run_load(const char* self_exe, unsigned clients, double seconds, std::size_t bytes) {
  char tmpl[] = "/tmp/replicated_kv.XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  const std::filesystem::path root = tmpl;
  std::vector<NodeProcess> nodes = start_nodes(self_exe, root);
  using Clock = std::chrono::steady_clock;
  std::atomic<bool> measuring{false}, done{false};
  std::atomic<unsigned> leader{1};
  std::mutex mu;
  std::vector<double> latencies_us;
  std::vector<std::thread> threads;
  const std::string value(bytes, 'v');
  for (unsigned k = 0; k < clients; ++k) {
    threads.emplace_back([&, k] {
      std::vector<double> mine;
      int fd = -1;
      unsigned at = 0;
      std::string buffer;
      std::uint64_t seq = 0;
      while (!done) {
        if (fd < 0 || at != leader) {
          if (fd >= 0) ::close(fd);
          at = leader;
          fd = connect_to(nodes[at - 1].client_port);
          buffer.clear();
          if (fd < 0) continue;
        }
        const std::string req =
            "P " + std::to_string(++seq) + " k" + std::to_string(k) + " " + value + "\n";
        const auto t0 = Clock::now();
        const std::string answer = call(fd, req, buffer, 2000);
        const auto t1 = Clock::now();
        if (answer.rfind("OK ", 0) == 0) {
          if (measuring) mine.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
        } else if (answer.rfind("NL ", 0) == 0) {
          const unsigned hint =
              static_cast<unsigned>(std::atoi(answer.c_str() + answer.rfind(' ') + 1));
          leader = hint >= 1 && hint <= 3 ? hint : at % 3 + 1;
          if (hint == 0)
            std::this_thread::sleep_for(std::chrono::milliseconds(20));  // no leader yet
        } else {
          ::close(fd);
          fd = -1;
        }
      }
      if (fd >= 0) ::close(fd);
      std::lock_guard lock(mu);
      latencies_us.insert(latencies_us.end(), mine.begin(), mine.end());
    });
  }
  std::this_thread::sleep_for(std::chrono::seconds(2));  // warm-up: an election, connections
  measuring = true;
  const auto start = Clock::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  measuring = false;
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  done = true;
  for (std::thread& t : threads)
    t.join();
  for (NodeProcess& p : nodes)
    pods_examples::stop_node(p);
  std::filesystem::remove_all(root);
  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double q) {
    return latencies_us.empty()
               ? 0.0
               : latencies_us[std::min(latencies_us.size() - 1,
                                       static_cast<std::size_t>(q * latencies_us.size()))];
  };
  std::printf(
      "replicated_kv load: clients=%u ops=%zu seconds=%.1f ops_per_s=%.0f p50_us=%.0f "
      "p99_us=%.0f\n",
      clients, latencies_us.size(), elapsed, latencies_us.size() / elapsed, pct(0.5), pct(0.99));
  return latencies_us.empty() ? 1 : 0;
}

}  // namespace replicated_kv

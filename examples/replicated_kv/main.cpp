// replicated_kv: a key-value store whose commands go through ReplicatedLog.
//
//   replicated_kv sim [--seeds N] [--nodes 3|5] [--stale-reads]
//       Runs the store on the simulator under a Nemesis with every fault (crashes with torn
//       unsynced writes, partitions including one-way ones, pauses, loss, duplication, clock
//       steps and drift). At every step it checks that at most one server leads a term, that
//       no two servers apply different commands at one index, that a committed entry is never
//       lost and that no high-water mark goes back; after the heal a leader must commit; each
//       seed's client history must pass check_linearizable. Prints a summary and a verdict.
//       --stale-reads answers gets from a random server's local state, bypassing the log:
//       the run must then fail (the checker's own test).
//
//   replicated_kv node --id I --data DIR [--stale-reads]
//       One server of three (ids 1-3): see node.hpp for its startup lines and client protocol.
//
//   replicated_kv load --clients C --seconds S --value-size B
//       Starts 3 nodes, each with its own data directory under a temporary directory, runs C
//       closed-loop clients doing puts of B bytes for S seconds after a 2 s warm-up, prints
//       "replicated_kv load: clients=C ops=N seconds=S ops_per_s=X p50_us=Y p99_us=Z" and
//       stops the nodes.
//
//   replicated_kv cluster --duration S [--faults] [--seed N] [--clients C] [--op-timeout-ms T]
//       Starts 3 nodes and runs C clients (default 4) doing puts and gets on 3 keys for S
//       seconds, recording a history; with --faults, SIGKILLs a random node (the leader too) at
//       seeded random moments and restarts it on its data directory, or SIGSTOPs one for a
//       while. Then a final read of every key must succeed and the history must pass
//       check_linearizable. Prints a summary and "verdict: linearizable ..." or "FAILED: ...".
//       --stale-reads: the nodes answer gets from their own state and clients send gets to a
//       random node; the run must then fail (the checker's own test at the process level).
#include "../common/cli.hpp"
#include "cluster.hpp"
#include "load.hpp"
#include "node.hpp"
#include "sim.hpp"

#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <string>

namespace {

unsigned long long number(const std::string& flag, const char* text, unsigned long long max) {
  return pods_examples::number("replicated_kv", flag, text, max);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc >= 2 ? argv[1] : "";
    if (mode == "sim") {
      unsigned long long seeds = 5, nodes = 3;
      if (const char* env = std::getenv("PODS_SEEDS")) seeds = number("PODS_SEEDS", env, 1000000);
      bool stale = false;
      for (int i = 2; i < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--stale-reads") {
          stale = true;
          --i;
        } else if (i + 1 >= argc) {
          std::cerr << "replicated_kv sim: " << a << " needs a value\n";
          return 2;
        } else if (a == "--seeds") {
          seeds = number(a, argv[i + 1], 1000000);
        } else if (a == "--nodes") {
          nodes = number(a, argv[i + 1], 5);
          if (nodes != 3 && nodes != 5) number(a, "0", 5);
        } else {
          std::cerr << "replicated_kv sim: unknown flag " << a << "\n";
          return 2;
        }
      }
      return replicated_kv::run_sim(seeds, nodes, stale);
    }
    if (mode == "node" && (argc == 6 || (argc == 7 && std::string(argv[6]) == "--stale-reads")) &&
        std::string(argv[2]) == "--id" && std::string(argv[4]) == "--data") {
      return replicated_kv::run_node(number("--id", argv[3], 3), argv[5], argc == 7);
    }
    if (mode == "load") {
      unsigned long long clients = 1, seconds = 5, bytes = 100;
      for (int i = 2; i + 1 < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--clients") {
          clients = number(a, argv[i + 1], 1024);
        } else if (a == "--seconds") {
          seconds = number(a, argv[i + 1], 3600);
        } else if (a == "--value-size") {
          bytes = number(a, argv[i + 1], 1 << 20);
        } else {
          std::cerr << "replicated_kv load: unknown flag " << a << "\n";
          return 2;
        }
      }
      std::signal(SIGPIPE, SIG_IGN);
      return replicated_kv::run_load("/proc/self/exe", static_cast<unsigned>(clients),
                                     static_cast<double>(seconds), bytes);
    }
    if (mode == "cluster") {
      replicated_kv::ClusterRun run;
      for (int i = 2; i < argc; i += 2) {
        const std::string a = argv[i];
        if (a == "--faults") {
          run.faults = true;
          --i;
        } else if (a == "--stale-reads") {
          run.stale_reads = true;
          --i;
        } else if (i + 1 >= argc) {
          std::cerr << "replicated_kv cluster: " << a << " needs a value\n";
          return 2;
        } else if (a == "--duration") {
          run.seconds = static_cast<double>(number(a, argv[i + 1], 3600));
        } else if (a == "--seed") {
          run.seed = number(a, argv[i + 1], ~0ull);
        } else if (a == "--clients") {
          run.clients = static_cast<unsigned>(number(a, argv[i + 1], 64));
        } else if (a == "--op-timeout-ms") {
          run.op_timeout_ms = static_cast<int>(number(a, argv[i + 1], 600000));
        } else {
          std::cerr << "replicated_kv cluster: unknown flag " << a << "\n";
          return 2;
        }
      }
      std::signal(SIGPIPE, SIG_IGN);
      return replicated_kv::run_cluster("/proc/self/exe", run);
    }
    std::cerr << "usage: replicated_kv sim [--seeds N] [--nodes 3|5] [--stale-reads]\n"
                 "       replicated_kv node --id I --data DIR [--stale-reads]\n"
                 "       replicated_kv load --clients C --seconds S --value-size B\n"
                 "       replicated_kv cluster --duration S [--faults] [--seed N] [--clients C]"
                 " [--op-timeout-ms T] [--stale-reads]\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "replicated_kv: " << e.what() << "\n";
    return 2;
  }
}

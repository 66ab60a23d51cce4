// consistent_core: a coordination service (Consistent Core with leases and watches) that
// Redis clients drive: redis-cli, redis-benchmark, any RESP2 client library.
//
//   consistent_core node --id I --dir D [--output-limit BYTES] [--watch-buffer EVENTS]
//                        [--snapshot-every ENTRIES]
//       One server: see node.hpp for its startup lines, commands.hpp for its commands.
//       --snapshot-every: entries between snapshots of the core (default 100000, 0: never).
//
//   consistent_core cluster --dir D
//       Three nodes on 127.0.0.1 (see cluster.hpp).
//
//   consistent_core demo [...]
//       The demonstration: three nodes under faults, a checked history (see demo.hpp).
//
//   consistent_core check --port P
//       Drives a running node (a leader) over RESP the way misbehaving clients do: clients
//       that close with commands in flight, and a watcher that never reads; prints
//       "check: ok" when the node survived them and still answers (see check.hpp).
//
//   consistent_core ask --port P WORD...
//       Sends one command to a node and prints the reply (for scripts without redis-cli).
#include "../common/cli.hpp"
#include "check.hpp"
#include "demo.hpp"
#include "node.hpp"

#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>

namespace {

unsigned long long number(const std::string& flag, const char* text, unsigned long long max) {
  return pods_examples::number("consistent_core", flag, text, max);
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc >= 2 ? argv[1] : "";
    if (mode == "node") {
      consistent_core::NodeOptions o;
      for (int i = 2; i < argc; i += 2) {
        const std::string a = argv[i];
        if (i + 1 >= argc) {
          std::cerr << "consistent_core node: " << a << " needs a value\n";
          return 2;
        }
        if (a == "--id") {
          o.self = number(a, argv[i + 1], 1u << 30);
        } else if (a == "--dir") {
          o.dir = argv[i + 1];
        } else if (a == "--output-limit") {
          o.output_limit = number(a, argv[i + 1], 1ull << 32);
        } else if (a == "--watch-buffer") {
          o.watch_buffer = number(a, argv[i + 1], 1u << 24);
        } else if (a == "--snapshot-every") {
          o.snapshot_every = number(a, argv[i + 1], 1ull << 40);
        } else {
          std::cerr << "consistent_core node: unknown flag " << a << "\n";
          return 2;
        }
      }
      if (o.self == 0 || o.dir.empty()) {
        std::cerr << "usage: consistent_core node --id I --dir D [--output-limit BYTES] "
                     "[--watch-buffer EVENTS] [--snapshot-every ENTRIES]\n";
        return 2;
      }
      std::signal(SIGPIPE, SIG_IGN);
      return consistent_core::run_node(o);
    }
    if (mode == "cluster") return consistent_core::cluster_main("/proc/self/exe", argc, argv);
    if (mode == "demo") return consistent_core::demo_main("/proc/self/exe", argc, argv);
    if (mode == "check" && argc == 4 && std::string(argv[2]) == "--port") {
      std::signal(SIGPIPE, SIG_IGN);
      return consistent_core::run_check(static_cast<unsigned>(number("--port", argv[3], 65535)));
    }
    if (mode == "ask" && argc >= 5 && std::string(argv[2]) == "--port") {
      return consistent_core::run_ask(static_cast<unsigned>(number("--port", argv[3], 65535)),
                                      consistent_core::resp::Command(argv + 4, argv + argc));
    }
    std::cerr << "usage: consistent_core node --id I --dir D [--output-limit BYTES] "
                 "[--watch-buffer EVENTS] [--snapshot-every ENTRIES]\n"
                 "       consistent_core cluster --dir D\n"
                 "       consistent_core demo [flags: see demo.hpp]\n"
                 "       consistent_core check --port P\n"
                 "       consistent_core ask --port P WORD...\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "consistent_core: " << e.what() << "\n";
    return 2;
  }
}

// durable_kv — a crash-proof key-value server composed from pods blocks, and the crash test
// that proves it.
//
// The program forks a server process (this same binary with --serve), drives it from
// several client threads over a Unix socket, SIGKILLs the server at random moments,
// restarts it on the same directory, and at the end checks the server against the clients'
// own record: every acknowledged put is present with its value and timestamp, no retried
// put was applied twice, and every read at a past timestamp answers as it did before.
// Exit status: 0 when nothing was lost, 1 otherwise, 2 for bad flags or a data directory it
// refuses (one that is not empty and was not made by durable_kv).
//
//   durable_kv [--clients N] [--duration S] [--crash-interval S] [--dir PATH]
//              [--value-size BYTES] [--seed N] [--keep] [--help]
#include "kv_server.hpp"
#include "workload.hpp"

#include <pods/storage/file_storage.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

// ---- framing: a u32 length, then the bytes ------------------------------------------------

bool write_all(int fd, const void* data, std::size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

bool read_all(int fd, void* data, std::size_t n) {
  char* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::recv(fd, p, n, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool send_frame(int fd, const std::vector<std::byte>& bytes) {
  const auto n = static_cast<std::uint32_t>(bytes.size());
  return write_all(fd, &n, sizeof n) && write_all(fd, bytes.data(), bytes.size());
}

bool recv_frame(int fd, std::vector<std::byte>& bytes) {
  std::uint32_t n = 0;
  if (!read_all(fd, &n, sizeof n)) return false;
  bytes.resize(n);
  return read_all(fd, bytes.data(), n);
}

sockaddr_un socket_address(const fs::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string s = path.string();
  if (s.size() >= sizeof addr.sun_path)
    throw std::invalid_argument("--dir: path too long for a socket");
  std::memcpy(addr.sun_path, s.c_str(), s.size() + 1);
  return addr;
}

// ---- the server process -------------------------------------------------------------------

[[noreturn]] void serve_on(const fs::path& dir, int ready_fd);

// Runs the server on `dir` until it is killed. It exits with status 3 when it cannot start
// (recovery refused the data, the socket failed) and 4 when a storage operation failed while
// serving: after a failed fdatasync it answers nothing more, so that no put whose bytes may
// be lost is ever acknowledged.
[[noreturn]] void serve(const fs::path& dir, int ready_fd) {
  try {
    serve_on(dir, ready_fd);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "durable_kv server: cannot start on %s: %s\n", dir.c_str(), e.what());
    std::_Exit(3);
  }
}

[[noreturn]] void serve_on(const fs::path& dir, int ready_fd) {
  const auto started = Clock::now();
  kv::ServerOptions options;
  options.on_failure = [](const std::string& what) {
    std::fprintf(stderr,
                 "durable_kv server: stopping after a storage failure: %s\n"
                 "durable_kv server: writes that were not acknowledged may be lost; nothing "
                 "more is acknowledged\n",
                 what.c_str());
    std::_Exit(4);
  };
  kv::Server<pods::FileStorage> server(pods::FileStorage(dir / "log"),
                                       pods::FileStorage(dir / "snapshots"), options);
  const auto recovery_us =
      std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - started).count();
  server.set_recovery_time(std::chrono::microseconds(recovery_us));

  const fs::path socket_path = dir / "kv.sock";
  fs::remove(socket_path);
  const int listener = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  const sockaddr_un addr = socket_address(socket_path);
  if (listener < 0 ||
      ::bind(listener, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 64) != 0) {
    std::perror("durable_kv server: listen");
    std::_Exit(3);
  }
  const kv::ServerStats stats = server.stats();
  const std::string ready =
      std::to_string(stats.recovery_us) + " " + std::to_string(stats.recovered_entries) + "\n";
  if (::write(ready_fd, ready.data(), ready.size()) != static_cast<ssize_t>(ready.size()))
    std::_Exit(3);
  ::close(ready_fd);

  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    // One thread per connection reads requests; the answer is written by whichever server
    // thread completes the request (the update queue's worker, after the fsync for puts).
    std::thread([&server, fd] {
      auto write_lock = std::make_shared<std::mutex>();
      std::vector<std::byte> in;
      while (recv_frame(fd, in)) {
        kv::Request request;
        try {
          request = kv::decode_request(in);
        } catch (const pods::CorruptionError&) {
          break;
        }
        server.submit(std::move(request), [fd, write_lock](kv::Response response) {
          std::vector<std::byte> out;
          kv::encode(response, out);
          std::lock_guard lock(*write_lock);
          send_frame(fd, out);
        });
      }
      ::shutdown(fd, SHUT_RDWR);
    }).detach();
  }
}

// ---- the parent: server lifecycle, clients, crashes ---------------------------------------

struct Options {
  int clients = 4;
  double duration_s = 20;
  double crash_interval_s = 3;
  fs::path dir;
  std::size_t value_size = 64;
  std::uint64_t seed = 1;
  bool keep = false;
};

// The running server process as the clients see it: its generation (bumped at every
// restart) lets a client that lost its connection wait for the next server.
class ServerHandle {
 public:
  explicit ServerHandle(fs::path dir) : dir_(std::move(dir)) {}

  // Starts a server process on the directory and waits until it has recovered and listens.
  // Returns the recovery time and the number of log entries it replayed.
  std::pair<double, std::uint64_t> start() {
    int ready[2];
    if (::pipe(ready) != 0) throw std::runtime_error("pipe failed");
    const pid_t pid = ::fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
      ::close(ready[0]);
      const std::string fd = std::to_string(ready[1]);
      const std::string dir = dir_.string();
      ::execl("/proc/self/exe", "durable_kv", "--serve", dir.c_str(), fd.c_str(), nullptr);
      std::_Exit(127);
    }
    ::close(ready[1]);
    std::string line;
    char c;
    while (::read(ready[0], &c, 1) == 1 && c != '\n')
      line += c;
    ::close(ready[0]);
    if (line.empty())
      throw std::runtime_error("the server process failed to start; see its error above");
    std::uint64_t us = 0, entries = 0;
    const char* p = line.c_str();
    p = std::from_chars(p, p + line.size(), us).ptr;
    std::from_chars(p + 1, line.c_str() + line.size(), entries);
    {
      std::lock_guard lock(m_);
      pid_ = pid;
      ++generation_;
    }
    cv_.notify_all();
    return {static_cast<double>(us) / 1000.0, entries};
  }

  ServerHandle(const ServerHandle&) = delete;
  ServerHandle& operator=(const ServerHandle&) = delete;
  ~ServerHandle() { kill(); }

  // Kills the server process with SIGKILL (no chance to flush anything) and reaps it.
  // Returns how it ended when that was not this SIGKILL ("exited with status 4"), else "".
  std::string kill() {
    pid_t pid;
    {
      std::lock_guard lock(m_);
      pid = pid_;
      pid_ = -1;
    }
    if (pid <= 0) return {};
    int status = 0;
    pid_t reaped = ::waitpid(pid, &status, WNOHANG);  // did it end on its own?
    if (reaped == 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return {};
    }
    if (reaped < 0) return {};
    if (WIFEXITED(status)) return "exited with status " + std::to_string(WEXITSTATUS(status));
    return "was killed by signal " + std::to_string(WTERMSIG(status));
  }

  // Ends the run: clients waiting for a server give up.
  void finish() {
    {
      std::lock_guard lock(m_);
      finished_ = true;
    }
    cv_.notify_all();
  }

  std::uint64_t generation() const {
    std::lock_guard lock(m_);
    return generation_;
  }

  // Blocks until a server newer than `seen` runs; false when the run is over.
  bool wait_newer(std::uint64_t seen) {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return finished_ || generation_ > seen; });
    return !finished_;
  }

  fs::path socket_path() const { return dir_ / "kv.sock"; }

 private:
  fs::path dir_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  pid_t pid_ = -1;
  std::uint64_t generation_ = 0;
  bool finished_ = false;
};

// A client's connection to whichever server process is running.
class SocketConnection {
 public:
  explicit SocketConnection(ServerHandle& server) : server_(server) { connect(); }
  ~SocketConnection() {
    if (fd_ >= 0) ::close(fd_);
  }
  SocketConnection(const SocketConnection&) = delete;
  SocketConnection& operator=(const SocketConnection&) = delete;

  std::optional<kv::Response> call(const kv::Request& request) {
    if (fd_ < 0) return std::nullopt;
    out_.clear();
    kv::encode(request, out_);
    if (send_frame(fd_, out_) && recv_frame(fd_, in_)) return kv::decode_response(in_);
    ::close(fd_);
    fd_ = -1;
    return std::nullopt;
  }

  bool reconnect() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!server_.wait_newer(generation_)) return false;
    connect();
    return true;
  }

 private:
  void connect() {
    generation_ = server_.generation();
    fd_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    const sockaddr_un addr = socket_address(server_.socket_path());
    if (::connect(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd_);
      fd_ = -1;
    }
  }

  ServerHandle& server_;
  int fd_ = -1;
  std::uint64_t generation_ = 0;
  std::vector<std::byte> out_, in_;
};
static_assert(kv::Connection<SocketConnection>);

// Asks the running server for the statistics of its life (nullopt if it does not answer).
std::optional<kv::ServerStats> life_stats(ServerHandle& server) {
  SocketConnection conn(server);
  kv::Request r;
  r.op = kv::Op::stats;
  if (auto response = conn.call(r)) return response->stats;
  return std::nullopt;
}

// What the server did over all its lives.
struct Totals {
  std::uint64_t puts = 0, fsyncs = 0, snapshots = 0, segments_removed = 0;
  std::uint64_t peak_log_bytes = 0, cleaned_log_bytes = 0;
  void add(const kv::ServerStats& s) {
    puts += s.puts;
    fsyncs += s.fsyncs;
    snapshots += s.snapshots;
    segments_removed += s.segments_removed;
    peak_log_bytes = std::max(peak_log_bytes, s.peak_log_bytes);
    if (s.snapshots > 0) cleaned_log_bytes = s.cleaned_log_bytes;
  }
};

// Returns `v` in the shortest form ("0.1", "604800").
std::string decimal(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%g", v);
  return buffer;
}

constexpr const char* kUsage =
    "usage: durable_kv [--clients N] [--duration SECONDS] [--crash-interval SECONDS]\n"
    "                  [--dir PATH] [--value-size BYTES] [--seed N] [--keep] [--help]\n";

// The limits of the flags. A crash and restart takes tens of milliseconds (the restart
// replays the log); below kMinCrashInterval a server would spend its life recovering.
constexpr int kMaxClients = 256;
constexpr std::uint64_t kMaxValueSize = 1 << 20;
constexpr double kMaxDuration = 7 * 24 * 3600.0;
constexpr double kMinCrashInterval = 0.1;

// The file that marks a data directory as one durable_kv made: only such a directory (or an
// empty one) is used, because a run deletes what it wrote there.
constexpr const char* kMarker = ".durable_kv";

[[noreturn]] void usage(const std::string& error) {
  std::fprintf(stderr, "durable_kv: %s\n%s", error.c_str(), kUsage);
  std::exit(2);
}

[[noreturn]] void help() {
  std::printf(
      "durable_kv: a crash-proof key-value server and its SIGKILL crash test.\n%s\n"
      "  --clients N            client threads, 1 to %d (default 4)\n"
      "  --duration SECONDS     how long the clients run, more than 0 (default 20)\n"
      "  --crash-interval SECONDS  mean time between SIGKILLs, at least %.1f (default 3)\n"
      "  --dir PATH             data directory: new, empty, or made by an earlier run\n"
      "                         (default: a fresh one under the temporary directory)\n"
      "  --value-size BYTES     bytes per value, 0 to %llu (default 64)\n"
      "  --seed N               seed of the workload and the crash schedule (default 1)\n"
      "  --keep                 keep the data directory's contents at the end\n"
      "exit status: 0 nothing lost, 1 a violation or a failure, 2 bad flags or directory\n",
      kUsage, kMaxClients, kMinCrashInterval, static_cast<unsigned long long>(kMaxValueSize));
  std::exit(0);
}

Options parse(int argc, char** argv) {
  Options o;
  auto value = [&](int& i, const char* name) -> std::string {
    if (i + 1 >= argc) usage(std::string(name) + " needs a value");
    return argv[++i];
  };
  // Parses a decimal integer in [lo, hi]; anything else (a sign, a fraction, trailing
  // characters, a value out of range) is refused before any conversion.
  auto integer = [&](int& i, const char* name, std::uint64_t lo, std::uint64_t hi) {
    const std::string text = value(i, name);
    std::uint64_t v = 0;
    const char* end = text.data() + text.size();
    const auto [p, ec] = std::from_chars(text.data(), end, v);
    if (ec == std::errc::result_out_of_range ||
        (ec == std::errc{} && p == end && (v < lo || v > hi)))
      usage(std::string(name) + ": " + text + " is out of range [" + std::to_string(lo) + ", " +
            std::to_string(hi) + "]");
    if (ec != std::errc{} || p != end || text.empty())
      usage(std::string(name) + ": not a non-negative integer: " + text);
    return v;
  };
  // Parses a finite number of seconds in [lo, hi].
  auto seconds = [&](int& i, const char* name, double lo, double hi) {
    const std::string text = value(i, name);
    char* end = nullptr;
    const double v = std::strtod(text.c_str(), &end);
    if (text.empty() || *end != '\0' || !std::isfinite(v))
      usage(std::string(name) + ": not a number of seconds: " + text);
    if (v < lo || v > hi) {
      usage(std::string(name) + ": " + text + " s is out of range [" + decimal(lo) + ", " +
            decimal(hi) + "]");
    }
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h")
      help();
    else if (a == "--clients")
      o.clients = static_cast<int>(integer(i, "--clients", 1, kMaxClients));
    else if (a == "--duration") {
      o.duration_s = seconds(i, "--duration", 0, kMaxDuration);
      if (o.duration_s <= 0) usage("--duration must be more than 0 s: a run of 0 s tests nothing");
    } else if (a == "--crash-interval") {
      o.crash_interval_s = seconds(i, "--crash-interval", 0, kMaxDuration);
      if (o.crash_interval_s < kMinCrashInterval) {
        usage("--crash-interval must be at least " + decimal(kMinCrashInterval) +
              " s: a crash and restart take tens of milliseconds, so a server would spend its "
              "life recovering");
      }
    } else if (a == "--value-size")
      o.value_size = static_cast<std::size_t>(integer(i, "--value-size", 0, kMaxValueSize));
    else if (a == "--seed")
      o.seed = integer(i, "--seed", 0, UINT64_MAX);
    else if (a == "--keep")
      o.keep = true;
    else if (a == "--dir") {
      o.dir = value(i, "--dir");
      if (o.dir.empty()) usage("--dir needs a non-empty path");
    } else
      usage("unknown argument " + a);
  }
  if (o.dir.empty())
    o.dir = fs::temp_directory_path() / ("pods-durable-kv-" + std::to_string(::getpid()));
  if ((o.dir / "kv.sock").string().size() >= sizeof(sockaddr_un{}.sun_path))
    usage("--dir " + o.dir.string() + ": the path is too long for the server's socket");
  return o;
}

// Removes what a run writes into the data directory (the marker stays).
void remove_run_files(const fs::path& dir) {
  fs::remove_all(dir / "log");
  fs::remove_all(dir / "snapshots");
  fs::remove(dir / "kv.sock");
}

// Makes `dir` ready for a run: creates it when missing, adopts it when empty, clears what an
// earlier run left when it holds the marker, and refuses any other directory (exit 2), so
// that a mistyped --dir never loses a user's files. Writes the marker. Returns true when it
// created the directory.
bool prepare_dir(const fs::path& dir) {
  bool created = false;
  try {
    const fs::file_status st = fs::status(dir);
    if (!fs::exists(st)) {
      fs::create_directories(dir);
      created = true;
    } else if (!fs::is_directory(st)) {
      usage("--dir " + dir.string() + " exists and is not a directory");
    } else if (fs::exists(dir / kMarker)) {
      remove_run_files(dir);
    } else if (!fs::is_empty(dir)) {
      usage("--dir " + dir.string() + " is not empty and was not made by durable_kv (it has no " +
            kMarker +
            " file); refusing to use it, because a run deletes the data directory's contents. "
            "Give a new or an empty directory.");
    }
    std::FILE* marker = std::fopen((dir / kMarker).c_str(), "w");
    if (marker == nullptr || std::fputs("a durable_kv data directory\n", marker) < 0 ||
        std::fclose(marker) != 0) {
      throw fs::filesystem_error("cannot write the marker file", dir / kMarker,
                                 std::error_code(errno, std::generic_category()));
    }
  } catch (const fs::filesystem_error& e) {
    usage("--dir " + dir.string() + ": " + e.what());
  }
  return created;
}

// Removes what the run wrote (and the directory itself when the run created it).
void clean_dir(const fs::path& dir, bool created) {
  std::error_code ec;
  fs::remove_all(dir / "log", ec);
  fs::remove_all(dir / "snapshots", ec);
  fs::remove(dir / "kv.sock", ec);
  fs::remove(dir / kMarker, ec);
  if (created) fs::remove(dir, ec);  // only when empty
}

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 4 && std::string(argv[1]) == "--serve") serve(argv[2], std::atoi(argv[3]));
  const Options o = parse(argc, argv);
  const bool created_dir = prepare_dir(o.dir);

  std::printf(
      "durable_kv: %d clients, %g s, a SIGKILL every ~%g s, values of %zu bytes, seed %llu\n",
      o.clients, o.duration_s, o.crash_interval_s, o.value_size,
      static_cast<unsigned long long>(o.seed));
  std::printf("data directory: %s\n\n", o.dir.c_str());

  ServerHandle server(o.dir);
  std::vector<double> recoveries;
  double first_ms = 0;
  try {
    first_ms = server.start().first;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "durable_kv: %s\n", e.what());
    if (!o.keep) clean_dir(o.dir, created_dir);
    return 1;
  }
  std::printf("[%5.1f s] server started (empty directory, ready in %.1f ms)\n", 0.0, first_ms);
  // The shortest gap between two crashes (half the interval) must leave room for at least
  // two starts on this machine, or the server would spend its lives recovering.
  if (0.5 * o.crash_interval_s < 2 * first_ms / 1000) {
    server.kill();
    if (!o.keep) clean_dir(o.dir, created_dir);
    usage("--crash-interval " + decimal(o.crash_interval_s) + ": a server start took " +
          decimal(first_ms) + " ms on this machine; the interval must be at least " +
          decimal(4 * first_ms / 1000) + " s");
  }

  kv::WorkloadOptions workload;
  workload.value_size = o.value_size;
  workload.seed = o.seed;
  std::atomic<bool> stop{false};
  std::vector<kv::ClientLedger> ledgers(static_cast<std::size_t>(o.clients));
  std::vector<std::thread> clients;
  const auto begin = Clock::now();
  for (int c = 0; c < o.clients; ++c) {
    clients.emplace_back([&, c] {
      SocketConnection conn(server);
      kv::run_client(static_cast<std::uint64_t>(c + 1), conn, workload, stop,
                     ledgers[static_cast<std::size_t>(c)]);
    });
  }

  // Crash the server at random moments until the time is up.
  std::mt19937_64 rng(o.seed);
  std::uniform_real_distribution<double> interval(0.5 * o.crash_interval_s,
                                                  1.5 * o.crash_interval_s);
  int crashes = 0;
  Totals totals;
  std::string failure;  // why the run stopped early (a server that failed or did not restart)
  // Collects the life's statistics, kills the server, restarts it and reports the recovery.
  // Returns false (and sets `failure`) when the server had exited on its own or does not
  // start again.
  auto crash = [&](const char* label) {
    if (auto s = life_stats(server)) totals.add(*s);
    if (const std::string exit = server.kill(); !exit.empty()) {
      failure = "the server process " + exit + " before it was killed (see its message above)";
      return false;
    }
    ++crashes;
    try {
      auto [ms, entries] = server.start();
      recoveries.push_back(ms);
      std::printf(
          "[%5.1f s] %s %d: server SIGKILLed; restarted, replayed %llu log entries, ready "
          "in %.1f ms\n",
          seconds_since(begin), label, crashes, static_cast<unsigned long long>(entries), ms);
    } catch (const std::exception& e) {
      failure = e.what();
      return false;
    }
    std::fflush(stdout);
    return true;
  };
  bool running = true;
  for (double next = interval(rng); running && next < o.duration_s; next += interval(rng)) {
    std::this_thread::sleep_until(begin + std::chrono::duration<double>(next));  // a schedule
    running = crash("crash");
  }
  if (running) std::this_thread::sleep_until(begin + std::chrono::duration<double>(o.duration_s));
  stop = true;
  if (!running) server.finish();  // clients waiting for a restart give up
  for (auto& t : clients)
    t.join();
  const double elapsed = seconds_since(begin);

  // One more crash and recovery before verifying, so the verdict is about what survived on
  // disk.
  if (running) running = crash("final crash");
  if (!running) {
    server.finish();
    server.kill();
    std::printf("\nverdict: FAILED: %s\n", failure.c_str());
    if (!o.keep) clean_dir(o.dir, created_dir);
    return 1;
  }

  std::printf("\nverifying against the clients' own record...\n");
  SocketConnection verifier(server);
  const kv::Verdict verdict = kv::verify(verifier, ledgers, workload);
  kv::Request stats_request;
  stats_request.op = kv::Op::stats;
  const auto after = verifier.call(stats_request);
  server.finish();
  server.kill();

  std::uint64_t ops = 0, deliberate = 0, crash_retries = 0;
  std::vector<std::uint64_t> latencies;
  for (auto& l : ledgers) {
    ops += l.ops;
    deliberate += l.deliberate_retries;
    crash_retries += l.crash_retries;
    latencies.insert(latencies.end(), l.put_latency_ns.begin(), l.put_latency_ns.end());
  }
  const double p50 = static_cast<double>(kv::quantile(latencies, 0.50)) / 1000.0;
  const double p99 = static_cast<double>(kv::quantile(latencies, 0.99)) / 1000.0;
  double recovery_sum = 0, recovery_max = 0;
  for (double r : recoveries) {
    recovery_sum += r;
    recovery_max = std::max(recovery_max, r);
  }

  std::printf("\nsummary\n");
  std::printf("  operations          %llu in %.1f s: %.0f ops/s (%d clients)\n",
              static_cast<unsigned long long>(ops), elapsed, static_cast<double>(ops) / elapsed,
              o.clients);
  std::printf(
      "  durable put latency p50 %.0f us, p99 %.0f us (%zu puts not interrupted by a crash)\n", p50,
      p99, latencies.size());
  std::printf("  crashes             %d (SIGKILL), recovery %.1f ms mean, %.1f ms max\n", crashes,
              recovery_sum / static_cast<double>(recoveries.size()), recovery_max);
  std::printf("  retries             %llu deliberate, %llu after a crash\n",
              static_cast<unsigned long long>(deliberate),
              static_cast<unsigned long long>(crash_retries));
  std::printf(
      "  group commit        %llu puts, %llu fsyncs (%.1f puts per fsync), %llu snapshots\n",
      static_cast<unsigned long long>(totals.puts), static_cast<unsigned long long>(totals.fsyncs),
      totals.fsyncs ? static_cast<double>(totals.puts) / static_cast<double>(totals.fsyncs) : 0.0,
      static_cast<unsigned long long>(totals.snapshots));
  std::printf(
      "  log size            %.2f MiB at most before a cleaning, %.2f MiB after the last one, "
      "%.2f MiB at the end (%llu segments removed)\n",
      static_cast<double>(totals.peak_log_bytes) / (1 << 20),
      static_cast<double>(totals.cleaned_log_bytes) / (1 << 20),
      static_cast<double>(after ? after->stats.log_bytes : 0) / (1 << 20),
      static_cast<unsigned long long>(totals.segments_removed));
  std::printf("  historical reads    %llu re-read, %llu changed\n",
              static_cast<unsigned long long>(verdict.past_reads),
              static_cast<unsigned long long>(verdict.changed_reads));
  for (const std::string& d : verdict.details)
    std::printf("  ! %s\n", d.c_str());
  // A run in which no put was acknowledged tested nothing: it does not pass.
  const bool passed = verdict.ok() && verdict.acknowledged > 0;
  std::printf("\nverdict: %llu acknowledged writes, %llu lost, %llu duplicated%s\n",
              static_cast<unsigned long long>(verdict.acknowledged),
              static_cast<unsigned long long>(verdict.lost),
              static_cast<unsigned long long>(verdict.duplicated),
              passed                      ? ""
              : verdict.acknowledged == 0 ? "  -- FAILED: nothing was acknowledged, nothing tested"
                                          : "  -- FAILED");
  if (!o.keep) clean_dir(o.dir, created_dir);
  return passed ? 0 : 1;
}

// examples/wal_kv — a key-value map rebuilt from a write-ahead log after a restart.
//
// Every change is appended to a WriteAheadLog and synced BEFORE it is applied to the map, so
// a change the program has acknowledged is on disk. On start the store replays the log and
// re-applies every command in order, which rebuilds exactly the map it had. The program runs
// two lives of the store in one process (the "restart" is destroying the store and opening
// the same directory again), checks that the second life sees the first life's map, and
// prints "wal_kv: PASS".
//
// Usage: wal_kv [--help] [DIRECTORY]   (default: a fresh temporary directory, removed at the
// end; a given directory is kept). Exit status: 0 PASS, 1 FAIL or an error, 2 bad arguments.
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/storage/file_storage.hpp>
#include <pods/storage/write_ahead_log.hpp>

#include <unistd.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <optional>
#include <random>
#include <span>
#include <string>

namespace {

// One change to the map.
struct Command {
  enum class Op : std::uint8_t { set = 1, erase = 2 };
  Op op;
  std::string key;
  std::string value;  // empty for erase
};

// Encodes a Command as: op (1 byte) | key length (4 bytes, little-endian) | key | value.
struct CommandCodec {
  void encode(const Command& c, pods::Buffer& out) const {
    out.push_back(static_cast<std::byte>(c.op));
    const auto n = static_cast<std::uint32_t>(c.key.size());
    for (int i = 0; i < 4; ++i)
      out.push_back(static_cast<std::byte>(n >> (8 * i)));
    for (char ch : c.key)
      out.push_back(static_cast<std::byte>(ch));
    for (char ch : c.value)
      out.push_back(static_cast<std::byte>(ch));
  }
  Command decode(std::span<const std::byte> b) const {
    if (b.size() < 5) throw pods::CorruptionError("command", 0, "shorter than its header");
    const auto op = static_cast<Command::Op>(b[0]);
    if (op != Command::Op::set && op != Command::Op::erase) {
      throw pods::CorruptionError("command", 0, "unknown operation");
    }
    std::uint32_t n = 0;
    for (int i = 3; i >= 0; --i)
      n = n << 8 | std::to_integer<std::uint32_t>(b[1 + i]);
    if (n > b.size() - 5) throw pods::CorruptionError("command", 1, "key runs past the end");
    const auto* p = reinterpret_cast<const char*>(b.data()) + 5;
    return {op, std::string(p, n), std::string(p + n, b.size() - 5 - n)};
  }
};

class KvStore {
 public:
  // Opens the log in `dir` and rebuilds the map by replaying it.
  explicit KvStore(const std::filesystem::path& dir)
      : wal_(pods::FileStorage(dir), {.segment_bytes = 1024}) {
    for (const auto& [index, command] : wal_.replay())
      apply(command);
  }

  // Logs the change durably, then applies it (write-ahead).
  void set(const std::string& key, const std::string& value) {
    log_and_apply({Command::Op::set, key, value});
  }
  void erase(const std::string& key) { log_and_apply({Command::Op::erase, key, {}}); }

  std::optional<std::string> get(const std::string& key) const {
    auto it = map_.find(key);
    return it == map_.end() ? std::nullopt : std::optional(it->second);
  }
  const std::map<std::string, std::string>& map() const { return map_; }
  std::uint64_t log_entries() const { return wal_.last_index() - wal_.first_index() + 1; }
  std::size_t segments() const { return wal_.segment_count(); }

 private:
  void log_and_apply(const Command& c) {
    wal_.append(c);
    wal_.sync();  // durable before it is visible
    apply(c);
  }
  void apply(const Command& c) {
    if (c.op == Command::Op::set) map_[c.key] = c.value;
    if (c.op == Command::Op::erase) map_.erase(c.key);
  }

  pods::WriteAheadLog<Command, CommandCodec> wal_;
  std::map<std::string, std::string> map_;
};

void print(const char* title, const KvStore& kv) {
  std::printf("%s (%zu keys, %llu log entries in %zu segments):\n", title, kv.map().size(),
              static_cast<unsigned long long>(kv.log_entries()), kv.segments());
  for (const auto& [k, v] : kv.map())
    std::printf("  %s = %s\n", k.c_str(), v.c_str());
}

[[noreturn]] void usage(const std::string& error) {
  std::fprintf(stderr, "wal_kv: %s\nusage: wal_kv [--help] [DIRECTORY]\n", error.c_str());
  std::exit(2);
}

// Runs the two lives of the store on `dir`; returns whether the second saw the first's map.
bool run(const std::filesystem::path& dir) {
  std::map<std::string, std::string> before;
  {
    KvStore kv(dir);
    print("life 1, after replay", kv);
    kv.set("alice", "1");
    kv.set("bob", "2");
    kv.set("carol", "3");
    kv.erase("bob");
    kv.set("alice", "10");
    for (int i = 0; i < 100; ++i)
      kv.set("counter", std::to_string(i));  // rolls segments
    print("life 1, after 105 changes", kv);
    before = kv.map();
  }  // the store is gone: a restart
  std::printf("wal_kv: restarting\n");
  KvStore kv(dir);
  print("life 2, after replay", kv);
  return kv.map() == before && kv.get("alice") == "10" && !kv.get("bob");
}

}  // namespace

int main(int argc, char** argv) {
  std::optional<std::filesystem::path> given;
  bool options_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (!options_done && (a == "--help" || a == "-h")) {
      std::printf(
          "wal_kv: a key-value map rebuilt from its write-ahead log after a restart.\n"
          "usage: wal_kv [--help] [DIRECTORY]\n"
          "  DIRECTORY  the log directory, kept afterwards (default: a fresh temporary one,\n"
          "             removed at the end); \"--\" before it when it starts with -\n");
      return 0;
    }
    if (!options_done && a == "--") {
      options_done = true;
    } else if (!options_done && a.size() > 1 && a[0] == '-') {
      usage("unknown option " + a);
    } else if (given) {
      usage("at most one directory, got " + given->string() + " and " + a);
    } else if (a.empty()) {
      usage("the directory must not be an empty path");
    } else {
      given = a;
    }
  }
  const bool own_dir = !given;
  const std::filesystem::path dir = own_dir ? std::filesystem::temp_directory_path() /
                                                  ("pods_wal_kv_" + std::to_string(::getpid()) +
                                                   "_" + std::to_string(std::random_device{}()))
                                            : *given;
  std::printf("wal_kv: log directory %s\n", dir.c_str());
  bool ok = false;
  try {
    ok = run(dir);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wal_kv: %s\n", e.what());
    if (own_dir) std::filesystem::remove_all(dir);
    return 1;
  }
  if (own_dir) std::filesystem::remove_all(dir);
  std::printf(ok ? "wal_kv: PASS: the map was rebuilt from the log\n"
                 : "wal_kv: FAIL: the replayed map differs\n");
  return ok ? 0 : 1;
}

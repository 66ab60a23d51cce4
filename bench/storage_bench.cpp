// bench/storage_bench.cpp — SegmentedLog, GroupCommitLog and recovery against a raw write()
// loop, RocksDB and LevelDB, in one binary.
//
// Every scenario writes into a fresh directory under /tmp/pods_storage_bench_<pid>/ and removes
// it afterwards (the 512 MiB recovery log is written once and removed at exit). Item counts
// are entries (records) except for the recovery scans, where an item is one byte.
#include "bench_support.hpp"

#include <pods/storage/file_storage.hpp>
#include <pods/storage/group_commit_log.hpp>
#include <pods/storage/segmented_log.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#if PODS_HAVE_ROCKSDB
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>
#endif
#if PODS_HAVE_LEVELDB
#include <leveldb/db.h>
#include <leveldb/options.h>
#include <leveldb/write_batch.h>
#endif

namespace {

namespace fs = std::filesystem;

const fs::path& bench_root() {
  static const fs::path root = [] {
    fs::path p = fs::temp_directory_path() / ("pods_storage_bench_" + std::to_string(::getpid()));
    fs::create_directories(p);
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(
          fs::temp_directory_path() / ("pods_storage_bench_" + std::to_string(::getpid())), ec);
    });
    return p;
  }();
  return root;
}

// A fresh directory for one benchmark run, removed with its contents at the end of the run.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name) {
    static std::atomic<int> counter{0};
    path_ = bench_root() / (name + "_" + std::to_string(counter++));
    fs::create_directories(path_);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

std::vector<std::byte> make_payload(std::size_t size) {
  std::vector<std::byte> p(size);
  for (std::size_t i = 0; i < size; ++i)
    p[i] = static_cast<std::byte>(i * 131 + 7);
  return p;
}

// The baseline: the same payload bytes through a 64 KiB user-space buffer and write(2), with
// an optional fdatasync every `sync_every` records. No framing, no checksum, no index.
class RawWriter {
 public:
  explicit RawWriter(const fs::path& file)
      : fd_(::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)),
        buffer_(std::make_unique<std::byte[]>(capacity)) {
    if (fd_ < 0) throw std::system_error(errno, std::generic_category(), "open " + file.string());
  }
  RawWriter(const RawWriter&) = delete;
  RawWriter& operator=(const RawWriter&) = delete;
  ~RawWriter() {
    flush();
    ::close(fd_);
  }
  void write(std::span<const std::byte> p) {
    if (p.size() > capacity - used_) flush();
    std::memcpy(buffer_.get() + used_, p.data(), p.size());
    used_ += p.size();
  }
  void flush() {
    std::size_t done = 0;
    while (done < used_) {
      const ssize_t n = ::write(fd_, buffer_.get() + done, used_ - done);
      if (n < 0) throw std::system_error(errno, std::generic_category(), "write");
      done += static_cast<std::size_t>(n);
    }
    used_ = 0;
  }
  void sync() {
    flush();
    if (::fdatasync(fd_) != 0) throw std::system_error(errno, std::generic_category(), "fdatasync");
  }

 private:
  static constexpr std::size_t capacity = 64 << 10;
  int fd_;
  std::unique_ptr<std::byte[]> buffer_;
  std::size_t used_ = 0;
};

void set_items(benchmark::State& state, std::int64_t items, std::size_t payload) {
  state.SetItemsProcessed(items);
  state.SetBytesProcessed(items * static_cast<std::int64_t>(payload));
}

// --- unsynced appends -------------------------------------------------------------------------

// SegmentedLog<FileStorage>::append of one payload, never synced, within one segment (a
// 4 GiB segment_bytes, so the run never rolls): the append path itself.
void append_unsynced_pods(benchmark::State& state) {
  const auto payload = make_payload(static_cast<std::size_t>(state.range(0)));
  ScratchDir dir("pods_append");
  {
    pods::SegmentedLog<> log(pods::FileStorage(dir.path()),
                             {.segment_bytes = std::size_t{4} << 30});
    for (auto _ : state)
      benchmark::DoNotOptimize(log.append(payload));
  }
  set_items(state, state.iterations(), payload.size());
}
BENCHMARK(append_unsynced_pods)
    ->Name("storage/append_unsynced/pods")
    ->Arg(100)
    ->Arg(1024)
    ->Iterations(1'000'000)
    ->UseRealTime();

// The same with the default 64 MiB segments: every roll syncs the full segment first (the
// contract), so this pays one fdatasync of 64 MiB per 64 MiB appended.
void append_unsynced_pods_rolling(benchmark::State& state) {
  const auto payload = make_payload(static_cast<std::size_t>(state.range(0)));
  ScratchDir dir("pods_append_rolling");
  {
    pods::SegmentedLog<> log(pods::FileStorage(dir.path()));
    for (auto _ : state)
      benchmark::DoNotOptimize(log.append(payload));
  }
  set_items(state, state.iterations(), payload.size());
}
BENCHMARK(append_unsynced_pods_rolling)
    ->Name("storage/append_unsynced_rolling_64MiB/pods")
    ->Arg(100)
    ->Arg(1024)
    ->Iterations(1'000'000)
    ->UseRealTime();

// The same payload bytes into a 64 KiB buffer, write(2) when it fills.
void append_unsynced_raw(benchmark::State& state) {
  const auto payload = make_payload(static_cast<std::size_t>(state.range(0)));
  ScratchDir dir("raw_append");
  {
    RawWriter raw(dir.path() / "raw.log");
    for (auto _ : state)
      raw.write(payload);
  }
  set_items(state, state.iterations(), payload.size());
}
BENCHMARK(append_unsynced_raw)
    ->Name("storage/append_unsynced/raw_write")
    ->Arg(100)
    ->Arg(1024)
    ->Iterations(1'000'000)
    ->UseRealTime();

std::string key_of(std::uint64_t i) {
  std::string k(8, '\0');
  for (int b = 0; b < 8; ++b)
    k[static_cast<std::size_t>(b)] = static_cast<char>(i >> (56 - 8 * b));
  return k;
}

#if PODS_HAVE_ROCKSDB
std::unique_ptr<rocksdb::DB> open_rocksdb(const fs::path& dir) {
  rocksdb::Options options;
  options.create_if_missing = true;
  rocksdb::DB* db = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(options, dir.string(), &db);
  if (!s.ok()) throw std::runtime_error("rocksdb open: " + s.ToString());
  return std::unique_ptr<rocksdb::DB>(db);
}

// RocksDB Put (8-byte key, the payload as value) with WriteOptions::sync = false (WAL on).
void append_unsynced_rocksdb(benchmark::State& state) {
  const auto payload = make_payload(static_cast<std::size_t>(state.range(0)));
  const rocksdb::Slice value(reinterpret_cast<const char*>(payload.data()), payload.size());
  ScratchDir dir("rocksdb_append");
  {
    auto db = open_rocksdb(dir.path());
    rocksdb::WriteOptions wo;
    wo.sync = false;
    std::uint64_t i = 0;
    for (auto _ : state) {
      if (!db->Put(wo, key_of(++i), value).ok()) state.SkipWithError("rocksdb put failed");
    }
  }
  set_items(state, state.iterations(), payload.size());
}
BENCHMARK(append_unsynced_rocksdb)
    ->Name("storage/append_unsynced/rocksdb")
    ->Arg(100)
    ->Arg(1024)
    ->Iterations(200'000)
    ->UseRealTime();
#else
[[maybe_unused]] const bool rocksdb_skipped =
    (pods::bench::skip("RocksDB not installed (apt-get install librocksdb-dev)"), true);
#endif

#if PODS_HAVE_LEVELDB
std::unique_ptr<leveldb::DB> open_leveldb(const fs::path& dir) {
  leveldb::Options options;
  options.create_if_missing = true;
  leveldb::DB* db = nullptr;
  const leveldb::Status s = leveldb::DB::Open(options, dir.string(), &db);
  if (!s.ok()) throw std::runtime_error("leveldb open: " + s.ToString());
  return std::unique_ptr<leveldb::DB>(db);
}

// LevelDB Put (8-byte key, the payload as value) with WriteOptions::sync = false.
void append_unsynced_leveldb(benchmark::State& state) {
  const auto payload = make_payload(static_cast<std::size_t>(state.range(0)));
  const leveldb::Slice value(reinterpret_cast<const char*>(payload.data()), payload.size());
  ScratchDir dir("leveldb_append");
  {
    auto db = open_leveldb(dir.path());
    leveldb::WriteOptions wo;
    wo.sync = false;
    std::uint64_t i = 0;
    for (auto _ : state) {
      if (!db->Put(wo, key_of(++i), value).ok()) state.SkipWithError("leveldb put failed");
    }
  }
  set_items(state, state.iterations(), payload.size());
}
BENCHMARK(append_unsynced_leveldb)
    ->Name("storage/append_unsynced/leveldb")
    ->Arg(100)
    ->Arg(1024)
    ->Iterations(200'000)
    ->UseRealTime();
#else
[[maybe_unused]] const bool leveldb_skipped =
    (pods::bench::skip("LevelDB not installed (apt-get install libleveldb-dev)"), true);
#endif

// --- durable appends: a sync every 64 records ------------------------------------------------

constexpr int batch = 64;

// 64 SegmentedLog appends of 100 B, then sync() (write + fdatasync). One iteration = 64 records.
void sync64_pods(benchmark::State& state) {
  const auto payload = make_payload(100);
  ScratchDir dir("pods_sync64");
  {
    pods::SegmentedLog<> log(pods::FileStorage(dir.path()));
    for (auto _ : state) {
      for (int k = 0; k < batch; ++k)
        log.append(payload);
      log.sync();
    }
  }
  set_items(state, state.iterations() * batch, payload.size());
}
BENCHMARK(sync64_pods)->Name("storage/sync_every_64/pods")->MinTime(0.5)->UseRealTime();

// 64 buffered write()s of the same 100 B, then write + fdatasync.
void sync64_raw(benchmark::State& state) {
  const auto payload = make_payload(100);
  ScratchDir dir("raw_sync64");
  {
    RawWriter raw(dir.path() / "raw.log");
    for (auto _ : state) {
      for (int k = 0; k < batch; ++k)
        raw.write(payload);
      raw.sync();
    }
  }
  set_items(state, state.iterations() * batch, payload.size());
}
BENCHMARK(sync64_raw)
    ->Name("storage/sync_every_64/raw_write_fdatasync")
    ->MinTime(0.5)
    ->UseRealTime();

#if PODS_HAVE_ROCKSDB
// A RocksDB WriteBatch of 64 Puts of 100 B written with sync = true.
void sync64_rocksdb(benchmark::State& state) {
  const auto payload = make_payload(100);
  const rocksdb::Slice value(reinterpret_cast<const char*>(payload.data()), payload.size());
  ScratchDir dir("rocksdb_sync64");
  {
    auto db = open_rocksdb(dir.path());
    rocksdb::WriteOptions wo;
    wo.sync = true;
    std::uint64_t i = 0;
    for (auto _ : state) {
      rocksdb::WriteBatch wb;
      for (int k = 0; k < batch; ++k)
        wb.Put(key_of(++i), value);
      if (!db->Write(wo, &wb).ok()) state.SkipWithError("rocksdb write failed");
    }
  }
  set_items(state, state.iterations() * batch, payload.size());
}
BENCHMARK(sync64_rocksdb)->Name("storage/sync_every_64/rocksdb_batch")->MinTime(0.5)->UseRealTime();
#endif

// --- group commit: N writers each waiting for its own entry to be durable --------------------

std::unique_ptr<ScratchDir> group_dir;
std::unique_ptr<pods::GroupCommitLog<>> group_log;

// GroupCommitLog::append_durable of 100 B from each of N threads.
void group_commit_pods(benchmark::State& state) {
  const auto payload = make_payload(100);
  if (state.thread_index() == 0) {
    group_dir = std::make_unique<ScratchDir>("pods_group");
    group_log = std::make_unique<pods::GroupCommitLog<>>(pods::FileStorage(group_dir->path()));
  }
  for (auto _ : state)
    benchmark::DoNotOptimize(group_log->append_durable(payload));
  if (state.thread_index() == 0) {
    state.counters["entries_per_sync"] = static_cast<double>(group_log->durable_index()) /
                                         static_cast<double>(group_log->sync_count());
    group_log.reset();
    group_dir.reset();
  }
  set_items(state, state.iterations(), payload.size());
}
BENCHMARK(group_commit_pods)
    ->Name("storage/group_commit/pods")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime()
    ->MinTime(0.5);

#if PODS_HAVE_ROCKSDB
std::unique_ptr<rocksdb::DB> group_rocksdb;
std::atomic<std::uint64_t> group_key{0};

// RocksDB Put of 100 B with sync = true from each of N threads (RocksDB groups them itself).
void group_commit_rocksdb(benchmark::State& state) {
  const auto payload = make_payload(100);
  const rocksdb::Slice value(reinterpret_cast<const char*>(payload.data()), payload.size());
  if (state.thread_index() == 0) {
    group_dir = std::make_unique<ScratchDir>("rocksdb_group");
    group_rocksdb = open_rocksdb(group_dir->path());
  }
  rocksdb::WriteOptions wo;
  wo.sync = true;
  for (auto _ : state) {
    if (!group_rocksdb->Put(wo, key_of(++group_key), value).ok()) state.SkipWithError("put failed");
  }
  if (state.thread_index() == 0) {
    group_rocksdb.reset();
    group_dir.reset();
  }
  set_items(state, state.iterations(), payload.size());
}
BENCHMARK(group_commit_rocksdb)
    ->Name("storage/group_commit/rocksdb_sync")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime()
    ->MinTime(0.5);
#endif

// --- recovery: opening a 512 MiB log scans and verifies every record -------------------------

constexpr std::uint64_t recovery_bytes = 512ull << 20;

// Writes the 512 MiB log (1 KiB payloads, 64 MiB segments) once; returns its directory.
const fs::path& recovery_log() {
  static const fs::path dir = [] {
    fs::path p = bench_root() / "recovery";
    pods::SegmentedLog<> log(pods::FileStorage(p), {.segment_bytes = 64 << 20});
    const auto payload = make_payload(1024);
    std::uint64_t bytes = 0;
    while (bytes < recovery_bytes) {
      log.append(payload);
      bytes += pods::detail::kRecordHeaderBytes + payload.size();
    }
    log.sync();
    return p;
  }();
  return dir;
}

std::uint64_t directory_bytes(const fs::path& dir) {
  std::uint64_t total = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() == ".log") total += e.file_size();
  }
  return total;
}

// Opening SegmentedLog<FileStorage> on the 512 MiB log (warm page cache): reads every segment
// and checks every record's CRC32C. One item = one byte.
void recovery_pods(benchmark::State& state) {
  const fs::path& dir = recovery_log();
  const std::uint64_t bytes = directory_bytes(dir);
  for (auto _ : state) {
    pods::SegmentedLog<> log(pods::FileStorage(dir), {.segment_bytes = 64 << 20});
    benchmark::DoNotOptimize(log.last_index());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
}
BENCHMARK(recovery_pods)
    ->Name("storage/recovery_scan_512MiB/pods")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

// read(2) of the same files in 1 MiB chunks, no parsing: the ceiling for a scan.
void recovery_raw(benchmark::State& state) {
  const fs::path& dir = recovery_log();
  const std::uint64_t bytes = directory_bytes(dir);
  std::vector<char> buffer(1 << 20);
  for (auto _ : state) {
    for (const auto& e : fs::directory_iterator(dir)) {
      if (e.path().extension() != ".log") continue;
      const int fd = ::open(e.path().c_str(), O_RDONLY | O_CLOEXEC);
      while (::read(fd, buffer.data(), buffer.size()) > 0)
        benchmark::ClobberMemory();
      ::close(fd);
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(bytes));
}
BENCHMARK(recovery_raw)
    ->Name("storage/recovery_scan_512MiB/raw_read")
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3)
    ->UseRealTime();

[[maybe_unused]] const bool comparisons = [] {
  using pods::bench::compare;
  compare("unsynced append 100 B vs raw buffered write()",
          "storage/append_unsynced/pods/100/iterations:1000000/real_time",
          "storage/append_unsynced/raw_write/100/iterations:1000000/real_time", ">= 0.5x");
  compare("unsynced append 1 KiB vs raw buffered write()",
          "storage/append_unsynced/pods/1024/iterations:1000000/real_time",
          "storage/append_unsynced/raw_write/1024/iterations:1000000/real_time", ">= 0.5x");
  compare("unsynced append 100 B vs RocksDB Put sync=false",
          "storage/append_unsynced/pods/100/iterations:1000000/real_time",
          "storage/append_unsynced/rocksdb/100/iterations:200000/real_time", ">= 20x");
  compare("unsynced append 100 B, 64 MiB rolls, vs raw write()",
          "storage/append_unsynced_rolling_64MiB/pods/100/iterations:1000000/real_time",
          "storage/append_unsynced/raw_write/100/iterations:1000000/real_time", "");
  compare("unsynced append 1 KiB vs RocksDB Put sync=false",
          "storage/append_unsynced/pods/1024/iterations:1000000/real_time",
          "storage/append_unsynced/rocksdb/1024/iterations:200000/real_time", "");
  compare("unsynced append 100 B vs LevelDB Put sync=false",
          "storage/append_unsynced/pods/100/iterations:1000000/real_time",
          "storage/append_unsynced/leveldb/100/iterations:200000/real_time", "");
  compare("unsynced append 1 KiB vs LevelDB Put sync=false",
          "storage/append_unsynced/pods/1024/iterations:1000000/real_time",
          "storage/append_unsynced/leveldb/1024/iterations:200000/real_time", "");
  compare("sync every 64 (100 B) vs raw write + fdatasync",
          "storage/sync_every_64/pods/min_time:0.500/real_time",
          "storage/sync_every_64/raw_write_fdatasync/min_time:0.500/real_time", ">= 0.9x");
  compare("sync every 64 (100 B) vs RocksDB WriteBatch(64) sync",
          "storage/sync_every_64/pods/min_time:0.500/real_time",
          "storage/sync_every_64/rocksdb_batch/min_time:0.500/real_time", ">= 10x");
  for (int t : {1, 2, 8}) {
    const std::string suffix = "/min_time:0.500/real_time/threads:" + std::to_string(t);
    compare("group commit, " + std::to_string(t) + " writers, vs RocksDB Put sync=true",
            "storage/group_commit/pods" + suffix, "storage/group_commit/rocksdb_sync" + suffix, "");
  }
  compare("recovery scan of 512 MiB (items = bytes) vs raw read()",
          "storage/recovery_scan_512MiB/pods/iterations:3/real_time",
          "storage/recovery_scan_512MiB/raw_read/iterations:3/real_time", ">= 1e9 items/s");
  return true;
}();

}  // namespace

PODS_BENCH_MAIN()

// bench/kv_bench.cpp — durable puts through the durable_kv server beside RocksDB with sync=true.
//
// Both sides get the same workload: 4 client threads, each putting a 64-byte value under one
// of 1024 keys and waiting until the put is durable before sending the next. durable_kv
// answers after its group-commit fsync; RocksDB's Put with WriteOptions::sync = true returns
// after its own (also group-committed) WAL fsync. Items are acknowledged puts.
#include "bench_support.hpp"

#include <durable_kv/kv_server.hpp>
#include <pods/storage/file_storage.hpp>

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <future>
#include <memory>
#include <string>

#if PODS_HAVE_ROCKSDB
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#endif

namespace {

namespace fs = std::filesystem;
constexpr int kClients = 4;
constexpr std::size_t kValueBytes = 64;

fs::path scratch(const char* name) {
  static std::atomic<int> counter{0};
  fs::path p = fs::temp_directory_path() / ("pods_kv_bench_" + std::to_string(::getpid()) + "_" +
                                            name + "_" + std::to_string(counter++));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

// durable_kv: each client thread puts and waits for the durable acknowledgement.
std::unique_ptr<kv::Server<pods::FileStorage>> server;
fs::path server_dir;

void BM_DurableKvPut(benchmark::State& state) {
  if (state.thread_index() == 0) {
    server_dir = scratch("durable_kv");
    server = std::make_unique<kv::Server<pods::FileStorage>>(
        pods::FileStorage(server_dir / "log"), pods::FileStorage(server_dir / "snapshots"));
  }
  const auto client = static_cast<std::uint64_t>(state.thread_index() + 1);
  auto call = [&](kv::Request r) {
    std::promise<kv::Response> promise;
    auto future = promise.get_future();
    server->submit(std::move(r),
                   [&promise](kv::Response response) { promise.set_value(std::move(response)); });
    return future.get();
  };
  std::uint64_t seq = 0;
  for (auto _ : state) {
    if (seq == 0) {  // inside the loop: the server exists once every thread has entered it
      kv::Request hello;
      hello.op = kv::Op::hello;
      hello.client = client;
      call(hello);
    }
    kv::Request put;
    put.op = kv::Op::put;
    put.client = client;
    put.seq = ++seq;
    put.acked_below = seq;
    put.key = "k" + std::to_string(seq % 1024);
    put.value.assign(kValueBytes, 'v');
    if (!call(std::move(put)).ok) state.SkipWithError("put refused");
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    server.reset();
    fs::remove_all(server_dir);
  }
}
BENCHMARK(BM_DurableKvPut)
    ->Name("kv/durable_put/durable_kv")
    ->Threads(kClients)
    ->UseRealTime()
    ->MinTime(2.0);

#if PODS_HAVE_ROCKSDB
// RocksDB: each client thread calls Put with sync=true (RocksDB groups concurrent writers
// into one WAL write and fsync).
std::unique_ptr<rocksdb::DB> rocks;
fs::path rocks_dir;

void BM_RocksDbPut(benchmark::State& state) {
  if (state.thread_index() == 0) {
    rocks_dir = scratch("rocksdb");
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* db = nullptr;
    if (!rocksdb::DB::Open(options, rocks_dir.string(), &db).ok()) {
      state.SkipWithError("RocksDB open failed");
      return;
    }
    rocks.reset(db);
  }
  rocksdb::WriteOptions write_options;
  write_options.sync = true;
  const std::string value(kValueBytes, 'v');
  std::uint64_t seq = 0;
  const std::string prefix = "c" + std::to_string(state.thread_index()) + "k";
  for (auto _ : state) {
    if (!rocks->Put(write_options, prefix + std::to_string(++seq % 1024), value).ok()) {
      state.SkipWithError("RocksDB Put failed");
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    rocks.reset();
    fs::remove_all(rocks_dir);
  }
}
BENCHMARK(BM_RocksDbPut)
    ->Name("kv/durable_put/rocksdb_sync")
    ->Threads(kClients)
    ->UseRealTime()
    ->MinTime(2.0);
#endif

const bool registered = [] {
#if !PODS_HAVE_ROCKSDB
  pods::bench::skip("RocksDB not installed (apt-get install librocksdb-dev): no durable put peer");
#endif
  pods::bench::compare("durable put, 4 clients: durable_kv vs RocksDB Put sync=true",
                       "kv/durable_put/durable_kv/min_time:2.000/real_time/threads:4",
                       "kv/durable_put/rocksdb_sync/min_time:2.000/real_time/threads:4",
                       "(report)");
  return true;
}();

}  // namespace

PODS_BENCH_MAIN()

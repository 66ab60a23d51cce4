// A program outside the pods tree that uses pods the way a user would: one include of
// everything, and a block from each family. Built with PODS_CONSUMER_WITHOUT_RANGE_V3 (the
// install_without_dependencies test) it includes only the headers it uses, none of which
// needs range-v3.
#if defined(PODS_CONSUMER_WITHOUT_RANGE_V3)
#include <pods/messaging/singular_update_queue.hpp>
#include <pods/storage/memory_storage.hpp>
#include <pods/storage/segmented_log.hpp>
#include <pods/time/hybrid_clock.hpp>
#else
#include <pods/pods.hpp>
#endif

#include <chrono>
#include <cstdio>
#include <span>
#include <string>

int main() {
  pods::ManualClock clock(std::chrono::seconds(1));
  pods::HybridClock<pods::ManualClock> hlc(clock);
  const pods::HybridTimestamp a = hlc.now();
  const pods::HybridTimestamp b = hlc.now();

  pods::MemoryStorage storage;
  pods::SegmentedLog<pods::MemoryStorage> log(storage);
  const std::string payload = "hello";
  log.append(std::as_bytes(std::span(payload)));
  log.sync();

  auto queue = pods::make_singular_update_queue<int>([](int x) { return x * 2; });
  const int doubled = queue.submit(21).get();
  queue.stop();

  const bool ok = a < b && a.wall_ns == 1'000'000'000 && log.last_index() == 1 && doubled == 42;
  std::puts(ok ? "consumer ok" : "consumer FAILED");
  return ok ? 0 : 1;
}

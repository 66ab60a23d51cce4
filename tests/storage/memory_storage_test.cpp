#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "storage_fixtures.hpp"

using pods_test::bytes;
using pods_test::text;

TEST_CASE("MemoryStorage: crash keeps exactly the synced bytes", "[memory_storage]") {
  pods::MemoryStorage storage;
  storage.create(1);
  storage.create(2);
  storage.append(1, bytes("synced"));
  storage.sync(1);
  storage.append(1, bytes("-lost"));
  storage.append(2, bytes("never synced"));
  CHECK(storage.synced_size(1) == 6);
  storage.crash();
  CHECK(text(storage.contents(1)) == "synced");
  CHECK(storage.size(2) == 0);
  CHECK(storage.list() == std::vector<std::uint64_t>{1, 2});  // creation is durable
}

TEST_CASE("MemoryStorage: a torn crash keeps the synced bytes and a seeded prefix of the rest",
          "[memory_storage]") {
  const std::string unsynced = "0123456789abcdefghijklmnopqrstuvwxyz";
  auto kept_lengths = [&](std::uint64_t seed) {
    std::vector<std::size_t> lengths;
    pods::MemoryStorage storage(seed);
    for (int round = 0; round < 40; ++round) {
      storage.create(static_cast<std::uint64_t>(round + 1));
      storage.append(static_cast<std::uint64_t>(round + 1), bytes("base"));
      storage.sync(static_cast<std::uint64_t>(round + 1));
      storage.append(static_cast<std::uint64_t>(round + 1), bytes(unsynced));
    }
    storage.crash(true);
    for (int round = 0; round < 40; ++round) {
      const std::string kept = text(storage.contents(static_cast<std::uint64_t>(round + 1)));
      REQUIRE(kept.size() >= 4);
      CHECK(kept == ("base" + unsynced).substr(0, kept.size()));  // a prefix, synced part intact
      lengths.push_back(kept.size());
    }
    return lengths;
  };
  const auto a = kept_lengths(11);
  CHECK(a == kept_lengths(11));  // the same seed replays the same tear
  CHECK(a != kept_lengths(12));
  bool some_torn_inside = false;
  for (std::size_t n : a)
    some_torn_inside |= n > 4 && n < 4 + unsynced.size();
  CHECK(some_torn_inside);
}

TEST_CASE("MemoryStorage: after a crash the survivors are synced", "[memory_storage]") {
  pods::MemoryStorage storage(3);
  storage.create(1);
  storage.append(1, bytes("abcdefgh"));
  storage.crash(true);
  const auto kept = storage.size(1);
  CHECK(storage.synced_size(1) == kept);
  storage.crash(true);
  CHECK(storage.size(1) == kept);
}

TEST_CASE("MemoryStorage: truncate lowers the synced mark; put, corrupt and sync_count",
          "[memory_storage]") {
  pods::MemoryStorage storage;
  storage.create(1);
  storage.append(1, bytes("abcdef"));
  storage.sync(1);
  storage.truncate(1, 2);
  CHECK(storage.synced_size(1) == 2);
  storage.append(1, bytes("Z"));
  storage.crash();
  CHECK(text(storage.contents(1)) == "ab");
  CHECK(storage.sync_count() == 1);

  storage.put(5, bytes("raw bytes"));
  CHECK(storage.synced_size(5) == 9);
  storage.corrupt(5, 0, std::byte{0x20});
  CHECK(text(storage.contents(5)) == "Raw bytes");
  CHECK_THROWS_AS(storage.corrupt(5, 9), std::invalid_argument);
  CHECK_THROWS_WITH(storage.corrupt(5, 9), Catch::Contains("offset"));
  CHECK_THROWS_WITH(storage.contents(6), Catch::Contains("00000000000000000006.log"));
}

TEST_CASE("MemoryStorage: copies share one store, from several threads",
          "[memory_storage][threads]") {
  pods::MemoryStorage storage;
  for (std::uint64_t id = 1; id <= 4; ++id)
    storage.create(id);
  std::vector<std::thread> threads;
  for (std::uint64_t id = 1; id <= 4; ++id) {
    threads.emplace_back([copy = storage, id]() mutable {
      for (int i = 0; i < 500; ++i) {
        copy.append(id, bytes("x"));
        if (i % 50 == 0) copy.sync(id);
      }
    });
  }
  for (auto& t : threads)
    t.join();
  for (std::uint64_t id = 1; id <= 4; ++id)
    CHECK(storage.size(id) == 500);
  CHECK(storage.sync_count() == 40);
}

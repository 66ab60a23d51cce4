#include <pods/policy/storage.hpp>
#include <pods/storage/file_storage.hpp>
#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "../storage/storage_fixtures.hpp"

using pods_test::bytes;
using pods_test::text;

namespace {
// Everything but remove: not a SegmentStorage.
struct NoRemove {
  std::vector<std::uint64_t> list() const { return {}; }
  void create(std::uint64_t) {}
  void append(std::uint64_t, std::span<const std::byte>) {}
  std::size_t read(std::uint64_t, std::uint64_t, std::span<std::byte>) const { return 0; }
  std::uint64_t size(std::uint64_t) const { return 0; }
  void sync(std::uint64_t) {}
  void truncate(std::uint64_t, std::uint64_t) {}
  std::string name(std::uint64_t) const { return {}; }
};
// Complete, but list returns the wrong type.
struct WrongList : NoRemove {
  std::vector<int> list() const { return {}; }
  void remove(std::uint64_t) {}
};
struct Complete : NoRemove {
  void remove(std::uint64_t) {}
};

std::string read_all(const auto& storage, std::uint64_t id) {
  std::vector<std::byte> out(static_cast<std::size_t>(storage.size(id)));
  const std::size_t n = storage.read(id, 0, out);
  out.resize(n);
  return text(out);
}
}  // namespace

TEST_CASE("SegmentStorage: the models and the does-not-models", "[storage]") {
  STATIC_REQUIRE(pods::SegmentStorage<pods::FileStorage>);
  STATIC_REQUIRE(pods::SegmentStorage<pods::MemoryStorage>);
  STATIC_REQUIRE(pods::SegmentStorage<Complete>);
  STATIC_REQUIRE_FALSE(pods::SegmentStorage<NoRemove>);
  STATIC_REQUIRE_FALSE(pods::SegmentStorage<WrongList>);
  STATIC_REQUIRE_FALSE(pods::SegmentStorage<int>);
}

TEST_CASE("segment_file_name: 20 zero-padded digits and .log, and back", "[storage]") {
  CHECK(pods::segment_file_name(1) == "00000000000000000001.log");
  CHECK(pods::segment_file_name(18446744073709551615ull) == "18446744073709551615.log");
  CHECK(pods::parse_segment_file_name("00000000000000000042.log") == 42u);
  CHECK(pods::parse_segment_file_name("18446744073709551615.log") == 18446744073709551615ull);
  CHECK_FALSE(pods::parse_segment_file_name("18446744073709551616.log"));  // past 2^64 - 1
  CHECK_FALSE(pods::parse_segment_file_name("42.log"));
  CHECK_FALSE(pods::parse_segment_file_name("0000000000000000004x.log"));
  CHECK_FALSE(pods::parse_segment_file_name("00000000000000000042.tmp"));
  CHECK_FALSE(pods::parse_segment_file_name("LOCK"));
  // A directory listing sorts as the ids do.
  CHECK(pods::segment_file_name(9) < pods::segment_file_name(10));
}

TEMPLATE_TEST_CASE("SegmentStorage contract", "[storage]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  auto storage = fixture.open();

  SECTION("a new storage lists nothing; create lists the id, in ascending order") {
    CHECK(storage.list().empty());
    storage.create(20);
    storage.create(3);
    storage.create(7);
    CHECK(storage.list() == std::vector<std::uint64_t>{3, 7, 20});
    CHECK(storage.size(7) == 0);
  }
  SECTION("creating an existing segment throws system_error naming it") {
    storage.create(5);
    CHECK_THROWS_AS(storage.create(5), std::system_error);
    CHECK_THROWS_WITH(storage.create(5), Catch::Contains("00000000000000000005.log"));
  }
  SECTION("appended bytes are readable at once, synced or not") {
    storage.create(1);
    storage.append(1, bytes("hello "));
    storage.append(1, bytes("world"));
    CHECK(storage.size(1) == 11);
    CHECK(read_all(storage, 1) == "hello world");
    std::vector<std::byte> out(5);
    CHECK(storage.read(1, 6, out) == 5);
    CHECK(text(out) == "world");
    SECTION("a read past the end copies what there is") {
      std::vector<std::byte> big(100);
      CHECK(storage.read(1, 8, big) == 3);
      CHECK(storage.read(1, 11, big) == 0);
      CHECK(storage.read(1, 500, big) == 0);
    }
    SECTION("sync keeps the bytes and they stay readable") {
      storage.sync(1);
      storage.append(1, bytes("!"));
      CHECK(read_all(storage, 1) == "hello world!");
    }
  }
  SECTION("appends larger than any buffer, and to alternating segments, keep their bytes") {
    storage.create(1);
    storage.create(2);
    std::string big(200 * 1024, 'x');
    for (std::size_t i = 0; i < big.size(); ++i)
      big[i] = static_cast<char>('a' + i % 26);
    storage.append(1, bytes("head:"));
    storage.append(1, bytes(big));
    for (int i = 0; i < 100; ++i) {
      storage.append(2, bytes(std::to_string(i) + ","));
      storage.append(1, bytes("+"));
    }
    std::string expected2;
    for (int i = 0; i < 100; ++i)
      expected2 += std::to_string(i) + ",";
    CHECK(read_all(storage, 1) == "head:" + big + std::string(100, '+'));
    CHECK(read_all(storage, 2) == expected2);
  }
  SECTION("truncate cuts the segment; past the end throws invalid_argument naming new_size") {
    storage.create(1);
    storage.append(1, bytes("0123456789"));
    storage.sync(1);
    storage.append(1, bytes("abc"));
    storage.truncate(1, 12);
    CHECK(read_all(storage, 1) == "0123456789ab");
    storage.truncate(1, 4);
    CHECK(read_all(storage, 1) == "0123");
    storage.append(1, bytes("XY"));
    CHECK(read_all(storage, 1) == "0123XY");
    CHECK_THROWS_AS(storage.truncate(1, 7), std::invalid_argument);
    CHECK_THROWS_WITH(storage.truncate(1, 7), Catch::Contains("new_size"));
  }
  SECTION("remove deletes the segment; later use of it throws system_error naming it") {
    storage.create(1);
    storage.create(2);
    storage.append(2, bytes("bye"));
    storage.remove(2);
    CHECK(storage.list() == std::vector<std::uint64_t>{1});
    std::vector<std::byte> out(3);
    CHECK_THROWS_AS(storage.read(2, 0, out), std::system_error);
    CHECK_THROWS_WITH(storage.size(2), Catch::Contains("00000000000000000002.log"));
    CHECK_THROWS_AS(storage.append(9, bytes("x")), std::system_error);
    CHECK_THROWS_AS(storage.remove(9), std::system_error);
  }
  SECTION("name is the segment file name") {
    CHECK(storage.name(42) == "00000000000000000042.log");
  }
  SECTION("copies are handles on the same segments") {
    auto copy = storage;
    copy.create(1);
    copy.append(1, bytes("shared"));
    CHECK(read_all(storage, 1) == "shared");
  }
}

TEMPLATE_TEST_CASE("SegmentStorage: synced, created, truncated and removed state survives a reopen",
                   "[storage]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  {
    auto storage = fixture.open();
    storage.create(1);
    storage.create(2);
    storage.create(3);
    storage.append(1, bytes("one"));
    storage.sync(1);
    storage.append(2, bytes("two-long"));
    storage.sync(2);
    storage.truncate(2, 3);
    storage.remove(3);
  }
  if constexpr (std::is_same_v<TestType, pods::MemoryStorage>) fixture.store.crash();
  auto storage = fixture.open();
  CHECK(storage.list() == std::vector<std::uint64_t>{1, 2});
  CHECK(read_all(storage, 1) == "one");
  CHECK(read_all(storage, 2) == "two");
}

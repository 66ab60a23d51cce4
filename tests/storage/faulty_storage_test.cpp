#include <pods/storage/faulty_storage.hpp>

#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "storage_fixtures.hpp"

using pods_test::bytes;
using pods_test::text;

namespace {

using Faulty = pods::FaultyStorage<pods::MemoryStorage>;
using Op = Faulty::Op;
using Fault = Faulty::Fault;

int error_of(auto&& f) {
  try {
    f();
  } catch (const std::system_error& e) {
    return e.code().value();
  }
  return 0;
}

}  // namespace

TEST_CASE("FaultyStorage: forwards every call until a fault is armed", "[faulty_storage]") {
  pods::MemoryStorage memory;
  Faulty faulty(memory);
  faulty.create(1);
  faulty.append(1, bytes("hello"));
  faulty.sync(1);
  CHECK(faulty.list() == std::vector<std::uint64_t>{1});
  CHECK(faulty.size(1) == 5);
  CHECK(memory.synced_size(1) == 5);
  std::vector<std::byte> out(5);
  CHECK(faulty.read(1, 0, out) == 5);
  CHECK(text(out) == "hello");
  CHECK(faulty.name(1) == "00000000000000000001.log");
  CHECK(faulty.calls(Op::append) == 1);
  CHECK(faulty.faults_fired() == 0);
  CHECK(faulty.largest_read() == 5);
}

TEST_CASE("FaultyStorage: a fault fires once, on the Nth coming call of its operation",
          "[faulty_storage]") {
  pods::MemoryStorage memory;
  Faulty faulty(memory);
  faulty.create(1);
  Faulty copy = faulty;  // copies share the armed faults
  copy.fail_at(Op::append, 3);
  faulty.append(1, bytes("a"));
  faulty.append(1, bytes("b"));
  CHECK(error_of([&] { faulty.append(1, bytes("c")); }) == EIO);
  faulty.append(1, bytes("d"));
  CHECK(text(memory.contents(1)) == "abd");  // EIO before the call: no effect
  CHECK(faulty.faults_fired() == 1);
  CHECK(faulty.calls(Op::append) == 4);
  CHECK_THROWS_WITH(faulty.fail_at(Op::sync, 0), Catch::Contains("nth"));

  SECTION("heal disarms") {
    faulty.fail_at(Op::sync, 1);
    faulty.heal();
    faulty.sync(1);
    CHECK(memory.synced_size(1) == 3);
  }
}

TEST_CASE("FaultyStorage: ENOSPC, EIO after the effect, short writes and an oversized size",
          "[faulty_storage]") {
  pods::MemoryStorage memory;
  Faulty faulty(memory);
  faulty.create(1);
  SECTION("ENOSPC has no effect") {
    faulty.fail_at(Op::append, 1, Fault::enospc);
    CHECK(error_of([&] { faulty.append(1, bytes("abcd")); }) == ENOSPC);
    CHECK(memory.size(1) == 0);
  }
  SECTION("EIO after the effect: the call took effect") {
    faulty.fail_at(Op::remove, 1, Fault::eio_after);
    CHECK(error_of([&] { faulty.remove(1); }) == EIO);
    CHECK(memory.list().empty());
  }
  SECTION("a short write lands the first half, then ENOSPC") {
    faulty.fail_at(Op::append, 1, Fault::short_write);
    CHECK(error_of([&] { faulty.append(1, bytes("abcdef")); }) == ENOSPC);
    CHECK(text(memory.contents(1)) == "abc");
  }
  SECTION("an oversized size reports 8 bytes that reads never return") {
    faulty.append(1, bytes("abcd"));
    faulty.fail_at(Op::size, 1, Fault::oversize);
    CHECK(faulty.size(1) == 12);
    CHECK(faulty.size(1) == 4);
  }
  SECTION("the message names the operation and the segment") {
    faulty.fail_at(Op::sync, 1);
    CHECK_THROWS_WITH(faulty.sync(1), Catch::Contains("injected EIO") && Catch::Contains("sync") &&
                                          Catch::Contains("00000000000000000001.log"));
  }
}

TEST_CASE(
    "FaultyStorage: with dropped pages, bytes a failed sync covered stay readable, a later sync "
    "succeeds, and a crash zeroes them",
    "[faulty_storage]") {
  pods::MemoryStorage memory;
  Faulty faulty(memory);
  faulty.drop_pages_on_failed_sync(true);
  faulty.create(1);
  faulty.append(1, bytes("durable|"));
  faulty.sync(1);
  faulty.append(1, bytes("dropped|"));
  faulty.fail_at(Op::sync, 1);
  CHECK(error_of([&] { faulty.sync(1); }) == EIO);
  CHECK(text(memory.contents(1)) == "durable|dropped|");  // still in the "page cache"
  faulty.append(1, bytes("later"));
  faulty.sync(1);  // succeeds, but the dropped pages are not written
  faulty.crash();
  const std::vector<std::byte> after = memory.contents(1);
  REQUIRE(after.size() == 21);
  CHECK(text(std::span(after).first(8)) == "durable|");
  CHECK(after[8] == std::byte{0});
  CHECK(after[15] == std::byte{0});
  CHECK(text(std::span(after).subspan(16)) == "later");

  SECTION("a truncate below the dropped bytes forgets them") {
    faulty.append(1, bytes("x"));
    faulty.fail_at(Op::sync, 1);
    CHECK(error_of([&] { faulty.sync(1); }) == EIO);
    faulty.truncate(1, 21);
    faulty.append(1, bytes("y"));
    faulty.sync(1);
    faulty.crash();
    const std::vector<std::byte> now = memory.contents(1);
    CHECK(text(std::span(now).subspan(16)) == "latery");
  }
}

#include <pods/storage/segmented_log.hpp>

#include <pods/storage/faulty_storage.hpp>
#include <pods/storage/file_storage.hpp>
#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <ranges>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "storage_fixtures.hpp"

using pods_test::bytes;
using pods_test::text;

namespace {

template <class S>
using Log = pods::SegmentedLog<S>;

// A payload that names its index and varies in length (0 to 40 filler bytes).
std::string payload(std::uint64_t i) {
  return "entry " + std::to_string(i) + std::string(i * 7 % 41, static_cast<char>('a' + i % 26));
}

template <class S>
void append_n(Log<S>& log, std::uint64_t n) {
  for (std::uint64_t k = 0; k < n; ++k)
    log.append(bytes(payload(log.last_index() + 1)));
}

template <class S>
std::vector<std::string> all_payloads(const Log<S>& log) {
  std::vector<std::string> out;
  for (const pods::LogEntry& e : log.entries(1))
    out.push_back(text(e.payload));
  return out;
}

template <class S>
void check_contents(const Log<S>& log, std::uint64_t first, std::uint64_t last) {
  REQUIRE(log.first_index() == first);
  REQUIRE(log.last_index() == last);
  std::uint64_t expected = first;
  for (const pods::LogEntry& e : log.entries(1)) {
    REQUIRE(e.index == expected);
    REQUIRE(text(e.payload) == payload(expected));
    ++expected;
  }
  REQUIRE(expected == last + 1);
}

std::vector<std::vector<std::byte>> golden_entries() {
  std::vector<std::vector<std::byte>> entries;
  for (int i = 1; i <= 5; ++i)
    entries.push_back(bytes("golden entry " + std::to_string(i)));
  entries.emplace_back();  // an empty payload
  std::vector<std::byte> binary(300);
  for (std::size_t i = 0; i < binary.size(); ++i)
    binary[i] = static_cast<std::byte>(i * 37 % 256);
  entries.push_back(binary);
  return entries;
}

const char* const golden_path =
    PODS_TEST_DATA_DIR "/segmented_log/format1/00000000000000000001.log";

std::vector<std::byte> read_file(const std::filesystem::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const auto* b = reinterpret_cast<const std::byte*>(c.data());
  return {b, b + c.size()};
}

void write_file(const std::filesystem::path& p, std::span<const std::byte> b) {
  std::filesystem::create_directories(p.parent_path());
  std::ofstream f(p, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

}  // namespace

TEMPLATE_TEST_CASE("SegmentedLog: a new log is empty, first_index 1, last_index 0",
                   "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  Log<TestType> log(fixture.open());
  CHECK(log.first_index() == 1);
  CHECK(log.last_index() == 0);
  CHECK(log.segment_count() == 1);
  CHECK_FALSE(log.read(1));
  CHECK(log.entries(1).begin() == std::default_sentinel);
  CHECK(log.storage().list() == std::vector<std::uint64_t>{1});
  CHECK(log.segments() == std::vector<pods::SegmentInfo>{{1, 0, 16}});
}

TEMPLATE_TEST_CASE(
    "SegmentedLog: append returns consecutive indices; read and entries return the "
    "bytes",
    "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  STATIC_REQUIRE(std::ranges::input_range<typename Log<TestType>::EntryRange>);
  STATIC_REQUIRE(std::input_iterator<typename Log<TestType>::Iterator>);
  pods_test::StorageFixture<TestType> fixture;
  Log<TestType> log(fixture.open(), {.segment_bytes = 1024});
  for (std::uint64_t i = 1; i <= 300; ++i)
    REQUIRE(log.append(bytes(payload(i))) == i);
  CHECK(log.segment_count() > 5);
  check_contents(log, 1, 300);
  for (std::uint64_t i : {1u, 2u, 63u, 64u, 65u, 128u, 299u, 300u}) {
    auto e = log.read(i);
    REQUIRE(e);
    CHECK(e->index == i);
    CHECK(text(e->payload) == payload(i));
  }
  CHECK_FALSE(log.read(301));

  SECTION("entries(from) starts at from; past the end it is empty") {
    auto it = log.entries(77).begin();
    CHECK(it->index == 77);
    ++it;
    CHECK((*it).index == 78);
    CHECK(log.entries(300).begin()->index == 300);
    CHECK(log.entries(301).begin() == std::default_sentinel);
    CHECK(std::ranges::distance(log.entries(250)) == 51);
    CHECK(std::ranges::distance(log.entries()) == 300);
  }
  SECTION("entries appended while iterating are visited") {
    std::uint64_t seen = 0;
    for (const pods::LogEntry& e : log.entries(295)) {
      if (e.index == 300) log.append(bytes(payload(301)));
      CHECK(text(e.payload) == payload(e.index));
      seen = e.index;
    }
    CHECK(seen == 301);
  }
  SECTION("an empty payload is an entry") {
    const std::uint64_t i = log.append({});
    CHECK(log.read(i)->payload.empty());
    CHECK(log.last_index() == i);
  }
}

TEMPLATE_TEST_CASE("SegmentedLog: bad input throws invalid_argument naming the argument",
                   "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  SECTION("segment_bytes of 0") {
    CHECK_THROWS_AS(Log<TestType>(fixture.open(), {.segment_bytes = 0}), std::invalid_argument);
    CHECK_THROWS_WITH(Log<TestType>(fixture.open(), {.segment_bytes = 0}),
                      Catch::Contains("segment_bytes"));
  }
  SECTION("an oversized payload, truncating removed entries") {
    Log<TestType> log(fixture.open(), {.segment_bytes = 100});
    append_n(log, 10);
    const std::byte one{1};
    const std::span<const std::byte> huge(&one, Log<TestType>::max_payload_bytes + 1);
    CHECK_THROWS_WITH(log.append(huge), Catch::Contains("payload"));
    CHECK(log.last_index() == 10);
    REQUIRE(log.remove_before(5) > 0);
    CHECK_THROWS_AS(log.truncate_after(log.first_index() - 2), std::invalid_argument);
    CHECK_THROWS_WITH(log.truncate_after(log.first_index() - 2), Catch::Contains("index"));
  }
}

TEMPLATE_TEST_CASE("SegmentedLog: reopening recovers every entry and segment", "[segmented_log]",
                   pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  std::vector<pods::SegmentInfo> before;
  {
    Log<TestType> log(fixture.open(), {.segment_bytes = 512});
    append_n(log, 100);
    log.sync();
    before = log.segments();
  }
  Log<TestType> log(fixture.open(), {.segment_bytes = 512});
  CHECK(log.segments() == before);
  CHECK(log.tail_bytes_cut() == 0);
  check_contents(log, 1, 100);
  CHECK(log.append(bytes(payload(101))) == 101);
  check_contents(log, 1, 101);
}

TEMPLATE_TEST_CASE("SegmentedLog: rolls past segment_bytes; segments are named by first index",
                   "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  Log<TestType> log(fixture.open(), {.segment_bytes = 256});
  const std::string payload52(52, 'x');  // a 60-byte record: four fit in 16 + 4 * 60 = 256 bytes
  for (int i = 0; i < 50; ++i)
    log.append(bytes(payload52));
  const auto segments = log.segments();
  CHECK(segments.size() == 13);
  std::vector<std::uint64_t> ids;
  for (std::size_t k = 0; k < segments.size(); ++k) {
    ids.push_back(segments[k].first_index);
    CHECK(segments[k].bytes <= 256);
    CHECK(log.storage().size(segments[k].first_index) == segments[k].bytes);
    if (k > 0) CHECK(segments[k].first_index == segments[k - 1].last_index + 1);
    if (k + 1 < segments.size()) CHECK(segments[k].last_index - segments[k].first_index + 1 == 4);
  }
  CHECK(log.storage().list() == ids);
  CHECK(ids[1] == 5);
  SECTION("an entry larger than segment_bytes gets a segment of its own") {
    const std::uint64_t big = log.append(bytes(std::string(1000, 'B')));
    const std::uint64_t after = log.append(bytes("small"));
    auto s = log.segments();
    CHECK(s[s.size() - 2].first_index == big);
    CHECK(s[s.size() - 2].last_index == big);
    CHECK(s.back().first_index == after);
    CHECK(log.read(big)->payload.size() == 1000);
  }
}

TEST_CASE("SegmentedLog: a segment is synced before the log rolls", "[segmented_log]") {
  pods::MemoryStorage storage(5);
  std::uint64_t last_segment_start = 0;
  {
    Log<pods::MemoryStorage> log(storage, {.segment_bytes = 300});
    append_n(log, 40);  // never synced explicitly
    REQUIRE(log.segment_count() > 3);
    last_segment_start = log.segments().back().first_index;
    for (const auto& s : log.segments()) {
      if (s.first_index != last_segment_start) CHECK(storage.synced_size(s.first_index) == s.bytes);
    }
  }
  storage.crash(true);
  Log<pods::MemoryStorage> log(storage, {.segment_bytes = 300});
  CHECK(log.last_index() >= last_segment_start - 1);
  check_contents(log, 1, log.last_index());
}

TEST_CASE("SegmentedLog: sync makes entries durable; unsynced ones may be lost in a crash",
          "[segmented_log]") {
  pods::MemoryStorage storage;
  SECTION("manual") {
    {
      Log<pods::MemoryStorage> log(storage);
      append_n(log, 10);
      log.sync();
      append_n(log, 5);
    }
    storage.crash();
    Log<pods::MemoryStorage> log(storage);
    check_contents(log, 1, 10);
  }
  SECTION("every_append") {
    {
      Log<pods::MemoryStorage> log(storage, {.sync = pods::LogOptions::Sync::every_append});
      append_n(log, 7);
    }
    storage.crash();
    Log<pods::MemoryStorage> log(storage);
    check_contents(log, 1, 7);
  }
  SECTION("sync with nothing new to sync does not call the storage") {
    Log<pods::MemoryStorage> log(storage);
    append_n(log, 3);
    log.sync();
    const auto syncs = storage.sync_count();
    log.sync();
    CHECK(storage.sync_count() == syncs);
  }
}

TEMPLATE_TEST_CASE("SegmentedLog: truncate_after drops every later entry, durably",
                   "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  Log<TestType> log(fixture.open(), {.segment_bytes = 400});
  append_n(log, 100);
  log.sync();
  const std::size_t segments = log.segment_count();

  SECTION("at or past last_index it changes nothing") {
    log.truncate_after(100);
    log.truncate_after(1000);
    CHECK(log.segment_count() == segments);
    check_contents(log, 1, 100);
  }
  SECTION("inside the last segment") {
    log.truncate_after(99);
    check_contents(log, 1, 99);
    CHECK(log.append(bytes(payload(100))) == 100);
  }
  SECTION("across segments: later segments are removed, the one holding index is cut") {
    log.truncate_after(10);
    check_contents(log, 1, 10);
    CHECK(log.segment_count() < segments);
    CHECK(log.storage().list().back() <= 10);
    CHECK(log.append(bytes(payload(11))) == 11);
    CHECK(text(log.read(11)->payload) == payload(11));
  }
  SECTION("to first_index() - 1: the log is empty, indices go on") {
    log.truncate_after(0);
    CHECK(log.first_index() == 1);
    CHECK(log.last_index() == 0);
    CHECK(log.segment_count() == 1);
    CHECK(log.append(bytes(payload(1))) == 1);
  }
  SECTION("the cut survives a reopen") {
    log.truncate_after(42);
    {
      Log<TestType> moved = std::move(log);  // the log is movable; close it here
    }
    if constexpr (std::is_same_v<TestType, pods::MemoryStorage>) fixture.store.crash(true);
    Log<TestType> reopened(fixture.open(), {.segment_bytes = 400});
    check_contents(reopened, 1, 42);
  }
}

TEMPLATE_TEST_CASE(
    "SegmentedLog: remove_before deletes whole segments below the index, never the "
    "last",
    "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  Log<TestType> log(fixture.open(), {.segment_bytes = 256});
  const std::string payload52(52, 'r');  // four entries per segment: 1-4, 5-8, 9-12, ...
  for (int i = 0; i < 30; ++i)
    log.append(bytes(payload52));

  CHECK(log.remove_before(0) == 0);
  CHECK(log.remove_before(4) == 0);  // segment 1-4 still holds index 4
  CHECK(log.first_index() == 1);
  CHECK(log.remove_before(5) == 1);
  CHECK(log.first_index() == 5);
  CHECK(log.remove_before(11) == 1);  // 5-8 goes, 9-12 holds 11 and stays
  CHECK(log.first_index() == 9);
  CHECK_FALSE(log.read(8));
  CHECK(log.read(9));
  CHECK(log.entries(1).begin()->index == 9);
  CHECK(log.storage().list().front() == 9);

  SECTION("never the last segment, however high the index") {
    const std::size_t before = log.segment_count();
    CHECK(log.remove_before(1000) == before - 1);
    CHECK(log.segment_count() == 1);
    CHECK(log.last_index() == 30);
    CHECK(log.first_index() == 29);
    CHECK(log.append(bytes(payload52)) == 31);
  }
  SECTION("the removal survives a reopen") {
    log.sync();
    { Log<TestType> moved = std::move(log); }
    Log<TestType> reopened(fixture.open(), {.segment_bytes = 256});
    CHECK(reopened.first_index() == 9);
    CHECK(reopened.last_index() == 30);
  }
}

TEMPLATE_TEST_CASE("SegmentedLog: recovery cuts a torn or checksum-failing tail", "[segmented_log]",
                   pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  std::uint64_t last_segment = 0;
  std::uint64_t last_offset = 0;
  std::uint64_t last_bytes = 0;
  {
    Log<TestType> log(fixture.open(), {.segment_bytes = 512});
    append_n(log, 40);
    log.sync();
    last_segment = log.segments().back().first_index;
    last_offset = log.locate(40)->offset;
    last_bytes = log.segments().back().bytes;
  }
  const std::uint64_t last_record = last_bytes - last_offset;

  SECTION("the last record fails its checksum") {
    fixture.corrupt(last_segment, last_bytes - 1);
  }
  SECTION("the last record is cut short") {
    auto storage = fixture.open();
    storage.truncate(last_segment, last_bytes - 3);
  }
  SECTION("the last record's header is cut short") {
    auto storage = fixture.open();
    storage.truncate(last_segment, last_offset + 5);
  }
  SECTION("a zero-filled region follows the last good record") {
    fixture.corrupt(last_segment, last_offset + 2);  // the bad record...
    auto storage = fixture.open();                   // ...is followed by zeros only
    storage.append(last_segment, std::vector<std::byte>(100));
    storage.sync(last_segment);
  }
  Log<TestType> log(fixture.open(), {.segment_bytes = 512});
  check_contents(log, 1, 39);
  CHECK(log.tail_bytes_cut() > 0);
  CHECK(log.tail_bytes_cut() <= last_record + 100);
  CHECK(log.segments().back().bytes == last_offset);
  CHECK(log.append(bytes(payload(40))) == 40);
  check_contents(log, 1, 40);
}

TEMPLATE_TEST_CASE("SegmentedLog: a torn segment header of the last segment is rewritten",
                   "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  {
    Log<TestType> log(fixture.open());
    append_n(log, 5);
    log.sync();
  }
  {
    auto storage = fixture.open();  // a crash while the next segment was being started
    storage.create(6);
    storage.append(6, bytes("pods"));
    storage.sync(6);
  }
  Log<TestType> log(fixture.open());
  CHECK(log.segment_count() == 2);
  CHECK(log.tail_bytes_cut() == 4);
  check_contents(log, 1, 5);
  CHECK(log.append(bytes(payload(6))) == 6);
  check_contents(log, 1, 6);
}

TEMPLATE_TEST_CASE(
    "SegmentedLog: bad bytes before the tail throw CorruptionError naming the file "
    "and offset",
    "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  std::vector<pods::SegmentInfo> segments;
  pods::EntryLocation second{};
  pods::EntryLocation last_but_one{};
  pods::EntryLocation first_segment_last{};
  {
    Log<TestType> log(fixture.open(), {.segment_bytes = 512});
    append_n(log, 40);
    log.sync();
    segments = log.segments();
    second = *log.locate(2);
    last_but_one = *log.locate(39);
    first_segment_last = *log.locate(segments[0].last_index);
  }
  REQUIRE(segments.size() >= 3);
  std::string file;
  std::uint64_t offset = 0;
  SECTION("a payload byte in the first segment") {
    fixture.corrupt(1, second.offset + 20);
    file = fixture.location(1);
    offset = second.offset;
  }
  SECTION("a length field in the first segment") {
    fixture.corrupt(1, second.offset + 5, std::byte{0x40});
    file = fixture.location(1);
    offset = second.offset;
  }
  SECTION("a record of the last segment followed by a good one") {
    fixture.corrupt(last_but_one.segment, last_but_one.offset + 17);
    file = fixture.location(last_but_one.segment);
    offset = last_but_one.offset;
  }
  SECTION("a length of the last segment that runs past its end, with records after it") {
    fixture.corrupt(last_but_one.segment, last_but_one.offset + 6, std::byte{0x10});
    file = fixture.location(last_but_one.segment);
    offset = last_but_one.offset;
  }
  SECTION("the magic of a segment") {
    fixture.corrupt(segments[1].first_index, 0);
    file = fixture.location(segments[1].first_index);
    offset = 0;
  }
  SECTION("a missing segment in the middle") {
    fixture.open().remove(segments[1].first_index);
    file = fixture.location(segments[2].first_index);
    offset = 0;
  }
  SECTION("the tail of a segment that is not the last") {
    auto storage = fixture.open();
    storage.truncate(1, segments[0].bytes - 2);
    file = fixture.location(1);
    offset = first_segment_last.offset;
  }
  try {
    Log<TestType> log(fixture.open(), {.segment_bytes = 512});
    FAIL("opening must throw CorruptionError");
  } catch (const pods::CorruptionError& e) {
    CHECK(e.file() == file);
    CHECK_THAT(e.what(), Catch::Contains(file) && Catch::Contains("offset"));
    if (offset != 0) CHECK(e.offset() == offset);
  }
}

TEMPLATE_TEST_CASE("SegmentedLog: read and entries verify checksums after open", "[segmented_log]",
                   pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  Log<TestType> log(fixture.open());
  append_n(log, 10);
  log.sync();
  const auto at = *log.locate(4);
  fixture.corrupt(at.segment, at.offset + 18);
  CHECK_THROWS_AS(log.read(4), pods::CorruptionError);
  CHECK_THROWS_WITH(log.read(4), Catch::Contains(fixture.location(1)) &&
                                     Catch::Contains("offset " + std::to_string(at.offset)));
  CHECK(text(log.read(3)->payload) == payload(3));
  auto it = log.entries(1).begin();
  CHECK_THROWS_AS(std::ranges::advance(it, 5, std::default_sentinel), pods::CorruptionError);
}

TEST_CASE("SegmentedLog: crash loop over many lives keeps every synced entry and always reopens",
          "[segmented_log]") {
  for (std::uint64_t seed = 1; seed <= 6; ++seed) {
    INFO("seed " << seed);
    pods::MemoryStorage storage(seed);
    std::mt19937_64 random(seed * 7919);
    std::deque<std::string> model;  // payloads of model_first, model_first + 1, ...
    std::uint64_t model_first = 1;
    std::uint64_t durable = 0;  // every index up to here must survive
    for (int life = 0; life < 150; ++life) {
      INFO("life " << life);
      const std::size_t sizes[] = {64, 200, 1000, 4096};
      pods::LogOptions options{.segment_bytes = sizes[random() % 4]};
      if (random() % 10 == 0) options.sync = pods::LogOptions::Sync::every_append;
      Log<pods::MemoryStorage> log(storage, options);  // never throws
      const std::uint64_t model_last = model_first + model.size() - 1;
      REQUIRE(log.first_index() == model_first);
      REQUIRE(log.last_index() >= durable);
      REQUIRE(log.last_index() <= model_last);
      model.resize(static_cast<std::size_t>(log.last_index() + 1 - model_first));
      std::uint64_t expected = model_first;
      for (const pods::LogEntry& e : log.entries(1)) {
        REQUIRE(e.index == expected);
        REQUIRE(text(e.payload) == model[static_cast<std::size_t>(expected - model_first)]);
        ++expected;
      }
      REQUIRE(expected == log.last_index() + 1);

      const int ops = static_cast<int>(random() % 40);
      for (int op = 0; op < ops; ++op) {
        const auto dice = random() % 100;
        if (dice < 70) {
          std::string p(random() % 150, '\0');
          for (char& c : p)
            c = static_cast<char>(random());
          REQUIRE(log.append(bytes(p)) == model_first + model.size());
          model.push_back(p);
          if (options.sync == pods::LogOptions::Sync::every_append) durable = log.last_index();
        } else if (dice < 85) {
          log.sync();
          durable = log.last_index();
        } else if (dice < 90) {
          const std::uint64_t span = log.last_index() - log.first_index() + 2;
          const std::uint64_t i = log.first_index() - 1 + random() % span;
          log.truncate_after(i);
          model.resize(static_cast<std::size_t>(log.last_index() + 1 - model_first));
          durable = std::min(durable, i);
        } else if (dice < 95) {
          log.remove_before(model_first + random() % (model.size() + 2));
          while (model_first < log.first_index()) {
            model.pop_front();
            ++model_first;
          }
        } else if (!model.empty()) {
          const std::uint64_t i = model_first + random() % model.size();
          REQUIRE(text(log.read(i)->payload) == model[static_cast<std::size_t>(i - model_first)]);
        }
      }
      // Segments the log rolled past were synced when it rolled.
      durable = std::max(durable, log.segments().back().first_index - 1);
      storage.crash(random() % 2 == 0);
    }
  }
}

TEST_CASE("SegmentedLog: reads the checked-in format 1 golden segment", "[segmented_log]") {
  const std::vector<std::byte> golden = read_file(golden_path);
  REQUIRE(!golden.empty());
  const auto expected = golden_entries();
  auto check = [&](const auto& log) {
    CHECK(log.tail_bytes_cut() == 0);
    REQUIRE(log.last_index() == expected.size());
    std::size_t k = 0;
    for (const pods::LogEntry& e : log.entries(1))
      CHECK(e.payload == expected[k++]);
    CHECK(k == expected.size());
  };
  pods::MemoryStorage memory;
  memory.put(1, golden);
  check(Log<pods::MemoryStorage>(memory));

  pods_test::TempDir tmp;
  std::filesystem::copy_file(golden_path, tmp.path() / "00000000000000000001.log");
  check(Log<pods::FileStorage>(pods::FileStorage(tmp.path())));

  // Writing the same entries today gives the same bytes: a format change must be deliberate
  // (a new format byte, this file kept and still read).
  pods::MemoryStorage fresh;
  {
    Log<pods::MemoryStorage> log(fresh);
    for (const auto& e : expected)
      log.append(e);
  }
  CHECK(fresh.contents(1) == golden);
}

// Encodes segment files as one fuzz input for tests/fuzz/segmented_log_fuzz.cpp: a byte holding
// the segment count - 1, a 2-byte little-endian length for each segment but the last, then
// the segments' bytes.
static std::vector<std::byte> fuzz_input(const std::vector<std::vector<std::byte>>& segments) {
  std::vector<std::byte> out{static_cast<std::byte>(segments.size() - 1)};
  for (std::size_t k = 0; k + 1 < segments.size(); ++k) {
    out.push_back(static_cast<std::byte>(segments[k].size() & 0xFF));
    out.push_back(static_cast<std::byte>(segments[k].size() >> 8));
  }
  for (const auto& s : segments)
    out.insert(out.end(), s.begin(), s.end());
  return out;
}

// Run by hand (`storage_segmented_log_test "[.generate]"`) to rewrite the golden segment and
// the fuzz seed corpus after a deliberate format change.
TEST_CASE("generate the golden segment and the fuzz seed corpus", "[.generate]") {
  pods::MemoryStorage memory;
  {
    Log<pods::MemoryStorage> log(memory);
    for (const auto& e : golden_entries())
      log.append(e);
  }
  write_file(golden_path, memory.contents(1));

  const std::filesystem::path corpus = PODS_TEST_DATA_DIR "/../fuzz/corpus/segmented_log";
  pods::MemoryStorage two(1);
  {
    Log<pods::MemoryStorage> log(two, {.segment_bytes = 120});
    for (int i = 1; i <= 6; ++i)
      log.append(bytes(payload(static_cast<std::uint64_t>(i))));
  }
  std::vector<std::vector<std::byte>> segs;
  for (std::uint64_t id : two.list())
    segs.push_back(two.contents(id));
  write_file(corpus / "one_segment", fuzz_input({memory.contents(1)}));
  write_file(corpus / "several_segments", fuzz_input(segs));
  auto torn = segs;
  torn.back().resize(torn.back().size() - 3);
  write_file(corpus / "torn_tail", fuzz_input(torn));
  auto flipped = segs;
  flipped.front()[20] ^= std::byte{0x10};
  write_file(corpus / "corrupt_first_segment", fuzz_input(flipped));
  const auto header = pods::detail::segment_header(1);
  write_file(corpus / "header_only", fuzz_input({{header.begin(), header.end()}}));
}

// ---- Hardening: damage, faults and misuse ------------------------------------------------

namespace {

using Faulty = pods::FaultyStorage<pods::MemoryStorage>;
using Op = Faulty::Op;
using Fault = Faulty::Fault;

// Copies every segment of `from` into a fresh MemoryStorage (all bytes synced).
pods::MemoryStorage copy_of(const pods::MemoryStorage& from) {
  pods::MemoryStorage out;
  for (std::uint64_t id : from.list())
    out.put(id, from.contents(id));
  return out;
}

}  // namespace

TEST_CASE(
    "SegmentedLog: every single-bit flip in a synced two-segment log is recovered or "
    "reported, never a silent loss",
    "[segmented_log]") {
  pods::MemoryStorage original;
  std::vector<pods::SegmentInfo> segments;
  std::uint64_t final_offset = 0;
  std::uint64_t n = 0;
  {
    Log<pods::MemoryStorage> log(original, {.segment_bytes = 128});
    while (log.segment_count() < 2 || log.last_index() + 1 - log.segments().back().first_index < 3)
      append_n(log, 1);
    n = log.last_index();
    log.sync();
    segments = log.segments();
    final_offset = log.locate(n)->offset;
  }
  REQUIRE(segments.size() == 2);
  const std::uint64_t last_segment = segments.back().first_index;
  std::size_t reported = 0;
  std::size_t recovered = 0;
  std::size_t final_record_cut = 0;
  for (const pods::SegmentInfo& s : segments) {
    for (std::uint64_t byte = 0; byte < s.bytes; ++byte) {
      for (int bit = 0; bit < 8; ++bit) {
        INFO("segment " << s.first_index << " byte " << byte << " bit " << bit);
        pods::MemoryStorage storage = copy_of(original);
        storage.corrupt(s.first_index, byte, static_cast<std::byte>(1u << bit));
        try {
          Log<pods::MemoryStorage> log(storage, {.segment_bytes = 128});
          const bool in_final_record = s.first_index == last_segment && byte >= final_offset;
          // The stated limit: damage to the final record of the last segment is cut as a
          // torn tail, and only that record; the log says a whole record was cut.
          const std::uint64_t keep = in_final_record ? n - 1 : n;
          REQUIRE(log.last_index() >= keep);
          check_contents(log, 1, log.last_index());
          if (log.last_index() < n) {
            REQUIRE(in_final_record);
            CHECK(log.tail_cut().offset == final_offset);
            CHECK(log.tail_cut().segment == last_segment);
            ++final_record_cut;
          }
          ++recovered;
        } catch (const pods::CorruptionError& e) {
          CHECK_FALSE(e.file().empty());
          CHECK(e.offset() < s.bytes);
          ++reported;
        }
      }
    }
  }
  CHECK(reported > 0);
  CHECK(final_record_cut > 0);
  CHECK(reported + recovered == 8 * (segments[0].bytes + segments[1].bytes));
}

TEMPLATE_TEST_CASE(
    "SegmentedLog: a length in the last segment that runs past its end while later bytes "
    "hold a valid record throws, naming the file with its directory and the offset",
    "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  pods::EntryLocation third{};
  {
    Log<TestType> log(fixture.open());
    append_n(log, 5);
    log.sync();
    third = *log.locate(3);
  }
  fixture.corrupt(third.segment, third.offset + 7, std::byte{0x01});  // length += 16 MiB
  try {
    Log<TestType> log(fixture.open());
    FAIL("opening must throw CorruptionError");
  } catch (const pods::CorruptionError& e) {
    CHECK(e.file() == fixture.location(third.segment));
    CHECK(e.offset() == third.offset);
    CHECK_THAT(e.what(), Catch::Contains("valid record of index 4"));
  }
}

TEST_CASE("SegmentedLog: a length no append can write throws, even in the final record",
          "[segmented_log]") {
  pods::MemoryStorage storage;
  pods::EntryLocation last{};
  {
    Log<pods::MemoryStorage> log(storage);
    append_n(log, 3);
    log.sync();
    last = *log.locate(3);
  }
  storage.corrupt(last.segment, last.offset + 7, std::byte{0x80});  // length >= 2 GiB
  try {
    Log<pods::MemoryStorage> log(storage);
    FAIL("opening must throw CorruptionError");
  } catch (const pods::CorruptionError& e) {
    CHECK(e.offset() == last.offset);
    CHECK_THAT(e.what(), Catch::Contains("exceeds the largest payload"));
  }
}

TEST_CASE("SegmentedLog: tail_cut says what recovery cut and whether it was a whole record",
          "[segmented_log]") {
  pods::MemoryStorage storage;
  pods::EntryLocation last{};
  std::uint64_t bytes = 0;
  {
    Log<pods::MemoryStorage> log(storage);
    append_n(log, 6);
    log.sync();
    last = *log.locate(6);
    bytes = log.segments().back().bytes;
  }
  SECTION("a damaged final record") {
    storage.corrupt(last.segment, bytes - 1);
    Log<pods::MemoryStorage> log(storage);
    CHECK(log.last_index() == 5);
    CHECK(log.tail_cut() == pods::TailCut{last.segment, last.offset, bytes - last.offset, true});
  }
  SECTION("a torn final record") {
    storage.truncate(last.segment, bytes - 2);
    Log<pods::MemoryStorage> log(storage);
    CHECK(log.last_index() == 5);
    CHECK(log.tail_cut() ==
          pods::TailCut{last.segment, last.offset, bytes - 2 - last.offset, false});
  }
  SECTION("nothing to cut") {
    Log<pods::MemoryStorage> log(storage);
    CHECK(log.tail_cut() == pods::TailCut{});
    CHECK(log.synced_index() == 6);
  }
}

TEST_CASE("SegmentedLog: a last segment of zero bytes only (extended, never written) is restarted",
          "[segmented_log]") {
  pods::MemoryStorage storage;
  {
    Log<pods::MemoryStorage> log(storage);
    append_n(log, 5);
    log.sync();
  }
  storage.put(6, std::vector<std::byte>(4096));
  Log<pods::MemoryStorage> log(storage);
  CHECK(log.segment_count() == 2);
  CHECK(log.tail_bytes_cut() == 4096);
  check_contents(log, 1, 5);
  CHECK(log.append(bytes(payload(6))) == 6);
  check_contents(log, 1, 6);

  SECTION("but zero bytes before non-zero ones are not a header that was never written") {
    std::vector<std::byte> b(64);
    b[40] = std::byte{1};
    storage.put(log.segments().back().first_index + 1, b);
    CHECK_THROWS_AS(Log<pods::MemoryStorage>(storage), pods::CorruptionError);
  }
}

TEST_CASE("SegmentedLog: a segment shorter than the size its storage reports throws, not crashes",
          "[segmented_log]") {
  Faulty faulty;
  {
    Log<Faulty> log(faulty);
    append_n(log, 5);
    log.sync();
  }
  faulty.fail_at(Op::size, 1, Fault::oversize);
  try {
    Log<Faulty> log(faulty);
    FAIL("opening must throw CorruptionError");
  } catch (const pods::CorruptionError& e) {
    CHECK_THAT(e.what(), Catch::Contains("shorter than the size"));
  }
}

TEST_CASE(
    "SegmentedLog: a length damaged after open is reported at its record, without reading "
    "past the segment",
    "[segmented_log]") {
  Faulty faulty;
  Log<Faulty> log(faulty);
  append_n(log, 10);
  log.sync();
  const pods::EntryLocation five = *log.locate(5);
  faulty.inner().corrupt(five.segment, five.offset + 7, std::byte{0x40});  // length += 1 GiB
  auto offset_of = [](auto&& f) -> std::uint64_t {
    try {
      f();
    } catch (const pods::CorruptionError& e) {
      return e.offset();
    }
    return 0;
  };
  CHECK(offset_of([&] { (void)log.read(5); }) == five.offset);
  CHECK(offset_of([&] { (void)log.read(6); }) == five.offset);  // read(6) walks past entry 5
  CHECK(offset_of([&] { (void)log.locate(7); }) == five.offset);
  CHECK(offset_of([&] {
          for (const pods::LogEntry& e : log.entries(1))
            (void)e;
        }) == five.offset);
  CHECK(text(log.read(4)->payload) == payload(4));
  CHECK(faulty.largest_read() <= (std::size_t{1} << 20));
}

TEMPLATE_TEST_CASE(
    "SegmentedLog: read(0) is nothing and entries(0) starts at first_index, as for any index "
    "below it",
    "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  Log<TestType> log(fixture.open(), {.segment_bytes = 100});
  CHECK_FALSE(log.read(0));
  CHECK_FALSE(log.read(log.last_index()));  // an empty log: last_index() is 0
  CHECK(log.entries(0).begin() == std::default_sentinel);
  CHECK_FALSE(log.locate(0));
  append_n(log, 10);
  CHECK_FALSE(log.read(0));
  CHECK(std::ranges::distance(log.entries(0)) == 10);
  CHECK(log.entries(0).begin()->index == 1);
  REQUIRE(log.remove_before(5) > 0);
  CHECK(log.entries(0).begin()->index == log.first_index());
}

TEST_CASE(
    "SegmentedLog: after a failed sync whose pages the kernel dropped, a reopen in the same "
    "process does not report them as durable",
    "[segmented_log]") {
  pods::MemoryStorage memory;
  Faulty faulty(memory);
  faulty.drop_pages_on_failed_sync(true);
  {
    Log<Faulty> log(faulty);
    append_n(log, 5);
    log.sync();
    append_n(log, 3);
    faulty.fail_at(Op::sync, 1);
    CHECK_THROWS_AS(log.sync(), std::system_error);
    CHECK(log.failed());
    CHECK(log.last_index() == 5);  // cut back to what the last sync covered
    CHECK(log.synced_index() == 5);
    CHECK_THROWS_AS(log.append(bytes("x")), pods::Error);
  }
  Log<Faulty> reopened(faulty);  // the same process: the page cache still holds entries 6-8
  CHECK(reopened.last_index() == 5);
  CHECK(reopened.append(bytes(payload(6))) == 6);
  reopened.sync();  // "succeeds"; the dropped pages would not have been written
  faulty.crash();
  Log<Faulty> after_crash(faulty);
  check_contents(after_crash, 1, 6);
  CHECK_FALSE(after_crash.cut_back_failed());

  SECTION("when the cut fails too, the log says so") {
    after_crash.append(bytes(payload(7)));
    faulty.fail_at(Op::sync, 1);
    faulty.fail_at(Op::truncate, 1);
    CHECK_THROWS_AS(after_crash.sync(), std::system_error);
    CHECK(after_crash.failed());
    CHECK(after_crash.cut_back_failed());
  }
}

TEST_CASE(
    "SegmentedLog: an I/O fault at any call keeps every synced entry and leaves a prefix of "
    "the appended ones",
    "[segmented_log]") {
  const Op ops[] = {Op::append, Op::sync, Op::create, Op::truncate, Op::remove};
  const Fault faults[] = {Fault::eio, Fault::enospc, Fault::eio_after, Fault::short_write};
  for (Op op : ops) {
    for (Fault fault : faults) {
      if (fault == Fault::short_write && op != Op::append) continue;
      for (std::uint64_t nth = 1; nth <= 40; ++nth) {
        INFO("op " << static_cast<int>(op) << " fault " << static_cast<int>(fault) << " call "
                   << nth);
        pods::MemoryStorage memory;
        Faulty faulty(memory);
        faulty.drop_pages_on_failed_sync(true);
        faulty.fail_at(op, nth, fault);
        std::uint64_t synced = 0;    // every entry up to here was acknowledged durable
        std::uint64_t appended = 0;  // entries 1..appended were appended (by their payload)
        bool thrown = false;
        try {
          Log<Faulty> log(faulty, {.segment_bytes = 200});
          for (int round = 0; round < 12; ++round) {
            appended = log.last_index() + 3;
            append_n(log, 3);
            if (round % 2 == 1) {
              log.sync();
              synced = log.last_index();
            }
            if (round == 5) {  // the entries after `keep` are no longer promised
              const std::uint64_t keep = log.last_index() - 1;
              synced = std::min(synced, keep);
              log.truncate_after(keep);
              appended = keep;
            }
            if (round == 8) log.remove_before(log.last_index() / 2);
          }
          log.sync();
          synced = log.last_index();
        } catch (const std::system_error&) {
          thrown = true;
        }
        CHECK(faulty.faults_fired() <= 1);
        if (!thrown) continue;
        for (bool crash : {false, true}) {
          if (crash) faulty.crash();
          Log<Faulty> log(faulty, {.segment_bytes = 200});
          REQUIRE(log.last_index() >= synced);
          REQUIRE(log.last_index() <= appended);
          for (const pods::LogEntry& e : log.entries())
            REQUIRE(text(e.payload) == payload(e.index));
        }
      }
    }
  }
}

TEST_CASE(
    "SegmentedLog: remove_before whose directory sync fails after the unlink drops the "
    "segment and fails the log",
    "[segmented_log]") {
  Faulty faulty;
  Log<Faulty> log(faulty, {.segment_bytes = 256});
  const std::string payload52(52, 'r');  // four entries per segment
  for (int i = 0; i < 12; ++i)
    log.append(bytes(payload52));
  log.sync();
  faulty.fail_at(Op::remove, 1, Fault::eio_after);
  CHECK_THROWS_AS(log.remove_before(9), std::system_error);
  CHECK(log.first_index() == 5);  // segment 1-4 is gone from the storage and from the log
  CHECK(faulty.list().front() == 5);
  CHECK(log.read(5));  // the segments the log lists exist
  CHECK(log.failed());
  CHECK_THROWS_AS(log.append(bytes("x")), pods::Error);
  CHECK_THROWS_AS(log.remove_before(9), pods::Error);
}

TEST_CASE("SegmentedLog: a second log on a copy of one FileStorage is refused", "[segmented_log]") {
  pods_test::TempDir dir;
  pods::FileStorage storage(dir.path());
  {
    Log<pods::FileStorage> first(storage);
    first.append(bytes("a"));
    first.sync();
    CHECK_THROWS_AS(Log<pods::FileStorage>(storage), std::system_error);
    CHECK_THROWS_WITH(Log<pods::FileStorage>(storage), Catch::Contains(dir.path().string()));
    Log<pods::FileStorage> moved = std::move(first);  // the claim moves with the log
    CHECK_THROWS_AS(Log<pods::FileStorage>(storage), std::system_error);
    { Log<pods::FileStorage> gone = std::move(moved); }
    Log<pods::FileStorage> again(storage);  // released when the log holding it went
    CHECK(again.last_index() == 1);
  }
  Log<pods::FileStorage> last(storage);
  CHECK(last.read(1)->payload == bytes("a"));
}

TEMPLATE_TEST_CASE("SegmentedLog: a moved-from log is empty and refuses mutations",
                   "[segmented_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  Log<TestType> log(fixture.open(), {.segment_bytes = 100});
  append_n(log, 20);
  auto range = log.entries(1);  // a range over the log object that is moved from below
  Log<TestType> moved = std::move(log);
  CHECK(log.first_index() == 1);
  CHECK(log.last_index() == 0);
  CHECK_FALSE(log.read(1));
  CHECK(log.entries().begin() == std::default_sentinel);
  CHECK(range.begin() == std::default_sentinel);
  CHECK_THROWS_AS(log.append(bytes("x")), pods::Error);
  CHECK_THROWS_AS(log.sync(), pods::Error);
  CHECK_THROWS_AS(log.remove_before(10), pods::Error);
  check_contents(moved, 1, 20);
  log = std::move(moved);  // assigning a log makes it usable again
  CHECK(log.append(bytes(payload(21))) == 21);
  check_contents(log, 1, 21);
}

TEST_CASE(
    "SegmentedLog: a flipped length bit is caught even when the next record lies more than "
    "1 MiB after it",
    "[segmented_log]") {
  pods::MemoryStorage storage;
  pods::EntryLocation second{};
  {
    Log<pods::MemoryStorage> log(storage);
    log.append(bytes("first"));
    log.append(std::vector<std::byte>(3 << 20, std::byte{0x5A}));  // 3 MiB
    log.append(bytes("third"));
    log.sync();
    second = *log.locate(2);
  }
  storage.corrupt(second.segment, second.offset + 6, std::byte{0x40});  // length += 4 MiB
  try {
    Log<pods::MemoryStorage> log(storage);
    FAIL("opening must throw CorruptionError");
  } catch (const pods::CorruptionError& e) {
    CHECK(e.offset() == second.offset);
    CHECK_THAT(e.what(), Catch::Contains("valid record of index 3"));
  }
}

TEST_CASE("SegmentedLog: a torn record of several MiB is cut as a torn tail", "[segmented_log]") {
  pods::MemoryStorage storage;
  std::uint64_t big_offset = 0;
  {
    Log<pods::MemoryStorage> log(storage);
    log.append(bytes("first"));
    log.sync();
    std::vector<std::byte> big(4 << 20);
    std::mt19937_64 random(3);
    for (auto& b : big)
      b = static_cast<std::byte>(random());
    log.append(big);
    big_offset = log.locate(2)->offset;
  }
  storage.truncate(1, big_offset + (3 << 20));  // a crash wrote 3 MiB of it
  Log<pods::MemoryStorage> log(storage);
  CHECK(log.last_index() == 1);
  CHECK(log.tail_cut() == pods::TailCut{1, big_offset, 3 << 20, false});
}

TEST_CASE(
    "SegmentedLog: a torn record whose payload holds the image of the next record is still a "
    "torn tail",
    "[segmented_log]") {
  // The image of the record entry 2 would have, inside entry 1's payload (a log of log
  // records, say), and the crash tears entry 1 after the image but before its end.
  const std::vector<std::byte> inner = bytes("an inner record");
  std::vector<std::byte> image(pods::detail::kRecordHeaderBytes);
  pods::detail::store_le32(
      image.data(),
      pods::detail::record_crc(2, static_cast<std::uint32_t>(inner.size()), inner.data()));
  pods::detail::store_le32(image.data() + 4, static_cast<std::uint32_t>(inner.size()));
  image.insert(image.end(), inner.begin(), inner.end());
  std::vector<std::byte> outer = bytes("prefix:");
  outer.insert(outer.end(), image.begin(), image.end());
  outer.resize(outer.size() + 100, std::byte{'s'});

  pods::MemoryStorage storage;
  {
    Log<pods::MemoryStorage> log(storage);
    log.append(outer);
  }
  const std::uint64_t record = pods::detail::kSegmentHeaderBytes;
  storage.truncate(1, record + pods::detail::kRecordHeaderBytes + 7 + image.size() + 30);
  Log<pods::MemoryStorage> log(storage);
  CHECK(log.last_index() == 0);
  CHECK(log.tail_cut().offset == record);
}

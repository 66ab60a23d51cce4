#include <pods/storage/low_water_mark.hpp>

#include <pods/policy/clock.hpp>
#include <pods/storage/memory_storage.hpp>
#include <pods/storage/segmented_log.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <stdexcept>
#include <string>

#include "storage_fixtures.hpp"

using namespace std::chrono_literals;

namespace {
using Log = pods::SegmentedLog<pods::MemoryStorage>;

// Appends `n` 52-byte entries (60-byte records): with segment_bytes 256 each segment holds
// four (1-4, 5-8, 9-12, ...).
void append_n(Log& log, int n) {
  for (int i = 0; i < n; ++i)
    log.append(pods_test::bytes(std::string(52, 'e')));
}
}  // namespace

TEST_CASE("SnapshotLowWaterMark: removes the segments a snapshot covers, never moves back",
          "[low_water_mark]") {
  pods::MemoryStorage storage;
  Log log(storage, {.segment_bytes = 256});
  append_n(log, 30);
  pods::SnapshotLowWaterMark lwm;
  CHECK(lwm.mark() == 0);
  CHECK(lwm.clean(log) == 0);  // nothing covered yet

  CHECK(lwm.snapshot_taken(7));
  CHECK(lwm.clean(log) == 1);  // 1-4 is covered; 5-8 still holds 8
  CHECK(log.first_index() == 5);
  CHECK(lwm.snapshot_taken(12));
  CHECK(lwm.clean(log) == 2);  // 5-8 and 9-12
  CHECK(log.first_index() == 13);
  CHECK_FALSE(lwm.snapshot_taken(3));  // ignored: the mark never moves back
  CHECK(lwm.mark() == 12);
  CHECK(lwm.clean(log) == 0);

  SECTION("never the last segment, even when the snapshot covers everything") {
    lwm.snapshot_taken(1000);
    lwm.clean(log);
    CHECK(log.segment_count() == 1);
    CHECK(log.last_index() == 30);
  }
}

TEST_CASE("TimeLowWaterMark: removes segments whose last append is at least the retention old",
          "[low_water_mark]") {
  pods::ManualClock clock(1000s);
  pods::MemoryStorage storage;
  Log log(storage, {.segment_bytes = 256});
  pods::TimeLowWaterMark<pods::ManualClock> retention(10s, clock);
  CHECK(retention.retention() == 10s);

  append_n(log, 8);  // segments 1-4, 5-8 (full), at t = 1000 s
  retention.observe(log);
  CHECK(retention.last_append_time(1) == pods::ManualClock::time_point(1000s));
  clock.advance(5s);
  append_n(log, 8);  // 9-12, 13-16 at t = 1005 s
  retention.observe(log);
  CHECK(retention.last_append_time(1) == pods::ManualClock::time_point(1000s));  // unchanged
  CHECK(retention.last_append_time(9) == pods::ManualClock::time_point(1005s));
  clock.advance(4s);
  append_n(log, 1);  // 17 opens the last segment at t = 1009 s
  CHECK(log.segment_count() == 5);

  CHECK(retention.clean(log) == 0);  // at 1009 s the oldest is 9 s old
  clock.advance(1s);                 // 1010 s: 1-4 and 5-8 are 10 s old
  CHECK(retention.clean(log) == 2);
  CHECK(log.first_index() == 9);
  CHECK_FALSE(retention.last_append_time(1));  // forgotten with its segment
  clock.advance(100s);
  CHECK(retention.clean(log) == 2);  // 9-12, 13-16; never the last segment
  CHECK(log.segment_count() == 1);
  CHECK(log.first_index() == 17);
}

TEST_CASE("TimeLowWaterMark: a segment that grows is stamped again; a restart stamps afresh",
          "[low_water_mark]") {
  pods::ManualClock clock;
  pods::MemoryStorage storage;
  Log log(storage, {.segment_bytes = 256});
  pods::TimeLowWaterMark<pods::ManualClock> retention(10s, clock);
  append_n(log, 2);
  retention.observe(log);
  clock.advance(8s);
  append_n(log, 2);  // 1-4 grows at 8 s
  retention.observe(log);
  CHECK(retention.last_append_time(1) == pods::ManualClock::time_point(8s));
  append_n(log, 1);   // 5 rolls into a new segment
  clock.advance(9s);  // 17 s: 1-4 last grew 9 s ago
  CHECK(retention.clean(log) == 0);

  pods::TimeLowWaterMark<pods::ManualClock> after_restart(10s, clock);
  clock.advance(5s);  // 22 s: 1-4 is 14 s old, but the new cleaner first sees it now
  CHECK(after_restart.clean(log) == 0);
  clock.advance(10s);
  CHECK(after_restart.clean(log) == 1);
  CHECK(retention.clean(log) == 0);  // the old cleaner sees the removal and forgets it
  CHECK(log.first_index() == 5);
}

TEST_CASE("TimeLowWaterMark: entries re-appended after truncate_after get fresh stamps",
          "[low_water_mark]") {
  pods::ManualClock clock(1000s);
  pods::MemoryStorage storage;
  Log log(storage, {.segment_bytes = 256});
  pods::TimeLowWaterMark<pods::ManualClock> retention(10s, clock);
  append_n(log, 9);  // 1-4, 5-8, 9 at t = 1000 s
  retention.observe(log);
  clock.advance(6s);
  // At 1006 s the log is rewound to 2 and refilled to 9 with other entries: the same
  // segments (1-4, 5-8, 9) by index, but 3-9 are new. No observation in between.
  log.truncate_after(2);
  for (int i = 0; i < 7; ++i)
    log.append(pods_test::bytes(std::string(52, 'f')));
  REQUIRE(log.segments().size() == 3);
  REQUIRE(log.segments()[0].last_index == 4);
  REQUIRE(log.segments()[1].last_index == 8);

  SECTION("observed right after the rewrite") {
    retention.observe(log);
    CHECK(retention.last_append_time(1) == pods::ManualClock::time_point(1006s));
    CHECK(retention.last_append_time(5) == pods::ManualClock::time_point(1006s));
    clock.advance(4s);                 // 1010 s: 1-2 are 10 s old, 3-8 only 4 s
    CHECK(retention.clean(log) == 0);  // 3-8 are younger than the retention
    clock.advance(6s);                 // 1016 s: 3-8 are 10 s old
    CHECK(retention.clean(log) == 2);
    CHECK(log.first_index() == 9);
  }
  SECTION("first seen by clean, later than the rewrite") {
    clock.advance(4s);                 // 1010 s: the rewrite is seen now and stamped 1010 s
    CHECK(retention.clean(log) == 0);  // 3-8 are younger than the retention
    CHECK(retention.last_append_time(1) == pods::ManualClock::time_point(1010s));
    clock.advance(6s);  // 1016 s: stamped 6 s ago (never early, possibly late)
    CHECK(retention.clean(log) == 0);
    clock.advance(4s);
    CHECK(retention.clean(log) == 2);
    CHECK(log.first_index() == 9);
  }
}

TEST_CASE("TimeLowWaterMark: a rewrite of the last segment only restamps that segment",
          "[low_water_mark]") {
  pods::ManualClock clock(1000s);
  pods::MemoryStorage storage;
  Log log(storage, {.segment_bytes = 256});
  pods::TimeLowWaterMark<pods::ManualClock> retention(10s, clock);
  append_n(log, 6);  // 1-4, 5-6 at t = 1000 s
  retention.observe(log);
  clock.advance(3s);
  log.truncate_after(5);
  log.append(pods_test::bytes(std::string(52, 'g')));  // a new 6 at 1003 s
  retention.observe(log);
  CHECK(retention.last_append_time(1) == pods::ManualClock::time_point(1000s));  // untouched
  CHECK(retention.last_append_time(5) == pods::ManualClock::time_point(1003s));
}

TEST_CASE("TimeLowWaterMark: a negative retention is refused, naming retention",
          "[low_water_mark]") {
  CHECK_THROWS_AS(pods::TimeLowWaterMark<pods::ManualClock>(-1s, pods::ManualClock{}),
                  std::invalid_argument);
  CHECK_THROWS_WITH(pods::TimeLowWaterMark<>(-1ns), Catch::Contains("retention"));
}

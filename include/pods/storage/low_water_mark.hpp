// pods/storage/low_water_mark.hpp — Low-Water Mark: which part of the log can be discarded
//
// Problem:       A write-ahead log grows forever unless something decides which entries are
//                no longer needed; deleting an entry that is still needed for recovery loses
//                data, keeping everything exhausts the disk.
// Solution:      A low-water mark is the index below which the log may be discarded; the log
//                then deletes whole segments below it (SegmentedLog::remove_before), never
//                rewriting a file. Two ways to set it:
//                - SnapshotLowWaterMark: the owner reports "every entry up to index i is in a
//                  durable snapshot"; segments whose entries are all <= i are removed.
//                - TimeLowWaterMark: a retention period (as Kafka keeps messages for a time);
//                  segments whose last entry was appended at least `retention` ago are removed.
//                  The log does not store times, so the cleaner stamps each segment with its
//                  clock's reading when it observes the segment's last entry change (observe(),
//                  called after appends or on a timer; clean() observes first). A segment's
//                  last entry is identified by its index and a checksum of its payload, so
//                  entries rewritten by truncate_after and appended again are stamped afresh
//                  even when the segment spans the same indices as before. A stamp is
//                  therefore never earlier than the real append, so a segment is never removed
//                  early; it may be kept up to one observation interval longer. After a
//                  restart the stamps start afresh (existing segments are stamped at their
//                  first observation): retention restarts rather than deleting early.
// Guarantees:    Neither removes an entry above its mark (snapshot) or younger than the
//                retention (time), nor the log's last segment. The snapshot mark never moves
//                back. Removal is durable when clean() returns.
// Not provided:  Taking snapshots; entries inside a segment are kept until the whole segment
//                qualifies (cleaning granularity is the segment). A rewrite that appends
//                entries byte for byte equal to the ones it replaced, at the same indices, is
//                indistinguishable from no rewrite and keeps the old stamps.
// Thread safety: thread-compatible (the log they clean is, too; with GroupCommitLog call
//                clean inside with_log).
// Errors:        TimeLowWaterMark throws std::invalid_argument naming retention when it is
//                negative; its observe() and clean() throw what SegmentedLog::read throws.
//                clean() throws what SegmentedLog::remove_before throws.
// Cost:          SnapshotLowWaterMark::clean: O(segments removed). TimeLowWaterMark::observe:
//                one read of the last observed entry; when the log changed, O(segments), one
//                allocation and one read per segment stamped (per segment after a rewrite).
// Example:
//   pods::SnapshotLowWaterMark lwm;
//   lwm.snapshot_taken(snapshot_index);          // after the snapshot is durable
//   lwm.clean(log);                               // deletes segments wholly <= snapshot_index
//   pods::TimeLowWaterMark<> retention(std::chrono::hours(24 * 7));
//   retention.clean(log);                         // deletes segments older than a week
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: std::uint64_t snapshot_index = 0;
// Example context: pods::SegmentedLog<pods::MemoryStorage> log{pods::MemoryStorage()};
#pragma once

#include <pods/policy/clock.hpp>
#include <pods/policy/storage.hpp>
#include <pods/storage/crc32c.hpp>
#include <pods/storage/segmented_log.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods {

// The snapshot-based low-water mark.
class SnapshotLowWaterMark {
 public:
  // Records that every entry up to `index` is covered by a durable snapshot. The mark never
  // moves back: a lower index is ignored. Returns true when the mark moved.
  bool snapshot_taken(std::uint64_t index) noexcept {
    if (index <= mark_) return false;
    mark_ = index;
    return true;
  }

  // Returns the highest index reported covered (0: nothing is).
  std::uint64_t mark() const noexcept { return mark_; }

  // Deletes, durably, every segment of `log` whose entries are all <= mark() (never the last
  // segment); returns how many. Throws what SegmentedLog::remove_before throws.
  template <SegmentStorage S>
  std::size_t clean(SegmentedLog<S>& log) const {
    return log.remove_before(mark_ + 1);
  }

 private:
  std::uint64_t mark_ = 0;
};

// The time-based low-water mark (retention).
template <PhysicalClock Clock = SteadyClock>
class TimeLowWaterMark {
 public:
  // Keeps segments whose last entry is younger than `retention` by `clock` (a copy is kept).
  // Throws std::invalid_argument naming retention when it is negative.
  explicit TimeLowWaterMark(std::chrono::nanoseconds retention, Clock clock = {})
      : retention_(retention), clock_(std::move(clock)) {
    if (retention.count() < 0) {
      throw std::invalid_argument("TimeLowWaterMark: retention must not be negative, got " +
                                  std::to_string(retention.count()) + " ns");
    }
  }

  // Stamps with clock.now() every segment of `log` seen for the first time, whose last index
  // changed, or whose last entry was rewritten (truncate_after and appended again) since the
  // last observation, and forgets removed segments. A rewrite is recognised by a checksum of
  // the entry that was last at the previous observation: one read of that entry per call.
  // When the log changed: O(segments), allocates, and reads the last entry of each segment
  // it stamps (of every segment after a rewrite).
  template <SegmentStorage S>
  void observe(const SegmentedLog<S>& log) {
    // Entries at or below the last observed index were replaced when the log now ends below
    // it, or when the entry there is no longer the one observed.
    bool rewritten = false;
    if (seen_last_ != kNever) {
      rewritten = log.last_index() < seen_last_ || fingerprint(log, seen_last_) != seen_print_;
    }
    if (!rewritten && log.last_index() == seen_last_ && log.first_index() == seen_first_ &&
        log.segment_count() == seen_count_) {
      return;
    }
    const auto now = clock_.now();
    std::map<std::uint64_t, Stamp> next;
    for (const SegmentInfo& s : log.segments()) {
      auto it = stamps_.find(s.first_index);
      if (it != stamps_.end() && it->second.last_index == s.last_index &&
          (!rewritten || fingerprint(log, s.last_index) == it->second.print)) {
        next.emplace(s.first_index, it->second);
      } else {
        next.emplace(s.first_index, Stamp{s.last_index, fingerprint(log, s.last_index), now});
      }
    }
    stamps_.swap(next);
    seen_last_ = log.last_index();
    seen_first_ = log.first_index();
    seen_count_ = log.segment_count();
    const Stamp& newest = stamps_.rbegin()->second;
    seen_print_ = newest.last_index == seen_last_ ? newest.print : fingerprint(log, seen_last_);
  }

  // Observes `log`, then deletes, durably and oldest first, every segment (never the last)
  // whose last append was stamped at least retention() ago, stopping at the first younger
  // one; returns how many it deleted. Throws what SegmentedLog::remove_before throws.
  template <SegmentStorage S>
  std::size_t clean(SegmentedLog<S>& log) {
    observe(log);
    const auto now = clock_.now();
    std::optional<std::uint64_t> keep_from;
    std::size_t seen = 0;
    for (const auto& [first, stamp] : stamps_) {
      if (++seen == stamps_.size() || now - stamp.time < retention_) {
        keep_from = first;
        break;
      }
    }
    if (!keep_from) return 0;
    const std::size_t removed = log.remove_before(*keep_from);
    if (removed > 0) observe(log);
    return removed;
  }

  // Returns the time `clean` considers the last append to the segment whose first index is
  // `first_index`, or nullopt when that segment has not been observed.
  std::optional<typename Clock::time_point> last_append_time(std::uint64_t first_index) const {
    auto it = stamps_.find(first_index);
    if (it == stamps_.end()) return std::nullopt;
    return it->second.time;
  }

  // Returns the retention period.
  std::chrono::nanoseconds retention() const noexcept { return retention_; }

 private:
  // What identifies an entry beyond its index: a CRC32C of its index and payload (nullopt
  // when the index is not in the log, e.g. an empty segment's last index).
  using Print = std::optional<std::uint32_t>;
  struct Stamp {
    std::uint64_t last_index;
    Print print;  // of the entry at last_index when the stamp was taken
    typename Clock::time_point time;
  };
  static constexpr std::uint64_t kNever = UINT64_MAX;

  // Returns the fingerprint of entry `index` of `log`. Reads and copies the entry.
  template <SegmentStorage S>
  static Print fingerprint(const SegmentedLog<S>& log, std::uint64_t index) {
    if (index == 0 || index < log.first_index() || index > log.last_index()) return std::nullopt;
    const std::optional<LogEntry> entry = log.read(index);
    if (!entry) return std::nullopt;
    std::byte prefix[8];
    for (int i = 0; i < 8; ++i)
      prefix[i] = static_cast<std::byte>(index >> (8 * i));
    return crc32c(entry->payload.data(), entry->payload.size(), crc32c(prefix, sizeof prefix));
  }

  std::chrono::nanoseconds retention_;
  Clock clock_;
  std::map<std::uint64_t, Stamp> stamps_;  // segment first index -> its last entry and time
  std::uint64_t seen_last_ = kNever;
  std::uint64_t seen_first_ = kNever;
  std::size_t seen_count_ = 0;
  Print seen_print_;  // of the entry at seen_last_
};

}  // namespace pods

// pods/storage/segmented_log.hpp — Segmented Log
//
// Problem:       A single ever-growing log file cannot be cleaned (old entries cannot be
//                dropped without rewriting it), takes ever longer to scan, and a crash in the
//                middle of an append leaves a half-written record that must not be mistaken
//                for data.
// Solution:      The log is a sequence of segments (SegmentStorage), each named by the index of
//                its first entry. Appends go to the last segment; past `segment_bytes` the log
//                syncs it and rolls to a new one, so only the last segment can hold unsynced
//                bytes. Every record carries a CRC32C over its length, index and payload. On
//                open the log scans every segment: a torn or checksum-failing record at the end
//                of the last segment was never acknowledged as durable and is cut off; a bad
//                record anywhere else is corruption and is reported, never skipped. Cleaning is
//                deleting whole segments (remove_before); rewinding is truncate_after.
// Record format (version 1; docs/patterns/segmented-log.md): a segment starts with a 16-byte
//                header: the 7 bytes "podslog", a format byte (1), the first index (u64 LE).
//                Each record is crc32c (u32 LE) | payload length (u32 LE) | payload. The CRC
//                covers the record's index (u64 LE; implied by its position, not stored), the
//                length and the payload, so a record out of place fails its checksum.
// Guarantees:    Indices are consecutive from 1 (a new log: first_index() 1, last_index() 0).
//                After sync() returns every appended entry survives a crash with its bytes.
//                Reopening after a crash yields a prefix of the appended entries that contains
//                every synced one. entries() and read() verify each record's checksum.
// Not provided:  Durability before sync() (or with Sync::every_append); concurrent appends
//                (use GroupCommitLog); repairing corruption before the tail.
// Thread safety: thread-compatible: one writer; const members (read, entries, first_index,
//                last_index, segments) may run concurrently with each other, not with a
//                mutation. Iterators of entries() are invalidated by truncate_after and
//                remove_before, and must not outlive the log.
// Errors:        options.segment_bytes == 0, read(0) or entries(0), a payload over
//                max_payload_bytes and truncate_after below first_index() - 1 throw
//                std::invalid_argument naming the argument; an append past max_index throws
//                std::length_error. Bad bytes before the tail (on open or on read) throw
//                pods::CorruptionError naming the segment file and the byte offset of the
//                record. Storage I/O failures throw std::system_error; after one,
//                appends and syncs throw pods::Error until the log is reopened.
// Cost:          append: one CRC32C pass over the payload and two storage appends (FileStorage:
//                memcpys into its buffer); no allocation except one small vector slot per 64
//                entries. Rolling (once per segment_bytes): a sync of the full segment, then
//                the next segment's creation (file and directory fsync) and header sync.
//                read(i): one storage read of up to 16 KiB from the nearest of every 64th
//                entry's offset. Open: reads every segment once in 1 MiB chunks. Memory: 8
//                bytes per 64 entries.
// Example:
//   pods::SegmentedLog log(pods::FileStorage("/var/lib/app/log"));
//   std::uint64_t i = log.append(std::as_bytes(std::span(std::string_view("put x 1"))));
//   log.sync();                                  // entry i is durable
//   for (const pods::LogEntry& e : log.entries(1)) apply(e.index, e.payload);
//   log.remove_before(snapshot_index + 1);       // drop segments a snapshot covers
#pragma once

#include <pods/policy/errors.hpp>
#include <pods/policy/storage.hpp>
#include <pods/storage/crc32c.hpp>
#include <pods/storage/file_storage.hpp>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <deque>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods {

// Options of a SegmentedLog.
struct LogOptions {
  std::size_t segment_bytes = 64 << 20;  // roll to a new segment past this size
  enum class Sync { manual, every_append } sync = Sync::manual;
};

// One entry of the log: its index and its payload bytes.
struct LogEntry {
  std::uint64_t index;
  std::vector<std::byte> payload;
  friend bool operator==(const LogEntry&, const LogEntry&) = default;
};

// Where one segment sits in the log (last_index < first_index when it is empty).
struct SegmentInfo {
  std::uint64_t first_index;  // also the segment's id in the storage
  std::uint64_t last_index;
  std::uint64_t bytes;  // the segment's size, header included
  friend bool operator==(const SegmentInfo&, const SegmentInfo&) = default;
};

// Where one entry's record sits: the segment's id and the record's byte offset in it.
struct EntryLocation {
  std::uint64_t segment;
  std::uint64_t offset;
};

namespace detail {

inline constexpr std::size_t kSegmentHeaderBytes = 16;
inline constexpr std::size_t kRecordHeaderBytes = 8;
inline constexpr std::uint8_t kSegmentFormat = 1;
inline constexpr std::array<unsigned char, 7> kSegmentMagic = {'p', 'o', 'd', 's', 'l', 'o', 'g'};
inline constexpr std::uint64_t kSparseStride = 64;   // an offset is kept for every 64th entry
inline constexpr std::size_t kScanChunk = 1 << 20;   // read size of open and entries()
inline constexpr std::size_t kReadChunk = 16 << 10;  // read size of read(i)

inline void store_le32(std::byte* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline void store_le64(std::byte* p, std::uint64_t v) noexcept {
  for (int i = 0; i < 8; ++i)
    p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline std::uint32_t read_le32(const std::byte* p) noexcept {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i)
    v = v << 8 | static_cast<std::uint32_t>(p[i]);
  return v;
}
inline std::uint64_t read_le64(const std::byte* p) noexcept {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i)
    v = v << 8 | static_cast<std::uint64_t>(p[i]);
  return v;
}

// Returns the 16-byte header that starts a segment whose first index is `first_index`.
inline std::array<std::byte, kSegmentHeaderBytes> segment_header(std::uint64_t first_index) {
  std::array<std::byte, kSegmentHeaderBytes> h{};
  for (std::size_t i = 0; i < kSegmentMagic.size(); ++i)
    h[i] = std::byte{kSegmentMagic[i]};
  h[7] = std::byte{kSegmentFormat};
  store_le64(h.data() + 8, first_index);
  return h;
}

// Returns the CRC32C of a record: over its index (u64 LE, implied by its position and not
// stored), its length field (u32 LE) and its payload.
inline std::uint32_t record_crc(std::uint64_t index, std::uint32_t length,
                                const std::byte* payload) noexcept {
  std::byte prefix[12];
  store_le64(prefix, index);
  store_le32(prefix + 8, length);
  return crc32c(payload, length, crc32c(prefix, sizeof prefix));
}

// A window over one segment's bytes, refilled from the storage on demand.
template <class Storage>
class SegmentReader {
 public:
  SegmentReader(const Storage& storage, std::uint64_t id, std::size_t chunk)
      : storage_(&storage), id_(id), chunk_(chunk) {}

  // Returns a pointer to bytes [pos, pos + n) of the segment, or nullptr when the segment
  // ends before pos + n. The pointer is valid until the next call.
  const std::byte* fetch(std::uint64_t pos, std::size_t n) {
    if (pos >= pos_ && pos + n <= pos_ + len_) return data_.get() + (pos - pos_);
    const std::size_t want = std::max(chunk_, n);
    if (capacity_ < want) {
      data_ = std::make_unique_for_overwrite<std::byte[]>(want);
      capacity_ = want;
    }
    pos_ = pos;
    len_ = storage_->read(id_, pos, std::span<std::byte>(data_.get(), capacity_));
    return len_ >= n ? data_.get() : nullptr;
  }

  std::uint64_t id() const noexcept { return id_; }

 private:
  const Storage* storage_;
  std::uint64_t id_;
  std::size_t chunk_;
  std::unique_ptr<std::byte[]> data_;
  std::size_t capacity_ = 0;
  std::uint64_t pos_ = 0;
  std::size_t len_ = 0;
};

}  // namespace detail

template <SegmentStorage Storage = FileStorage>
class SegmentedLog {
  struct Segment {
    std::uint64_t base;                 // first index, and the id in the storage
    std::uint64_t count;                // entries in it
    std::uint64_t bytes;                // size, header included
    std::vector<std::uint64_t> sparse;  // offset of entry base + 64 k at [k]
  };

 public:
  // The largest payload one entry may carry.
  static constexpr std::size_t max_payload_bytes = (std::size_t{1} << 31) - 1;
  // The largest index an entry may have (so that last_index() + 1 never wraps).
  static constexpr std::uint64_t max_index = UINT64_MAX - 1;

  class Iterator;
  class EntryRange;

  // Opens the log held by `storage` (a copy is kept) and recovers it: scans every segment,
  // cuts a torn or checksum-failing tail of the last one (durably), and creates the first
  // segment of a new log. Allocates. Throws std::invalid_argument naming segment_bytes when
  // it is 0, pods::CorruptionError naming the segment file and offset for bad bytes before
  // the tail, std::system_error on I/O failure.
  explicit SegmentedLog(Storage storage, LogOptions options = {})
      : storage_(std::move(storage)), options_(options) {
    if (options_.segment_bytes == 0) {
      throw std::invalid_argument("SegmentedLog: options.segment_bytes must be greater than 0");
    }
    recover();
  }

  SegmentedLog(const SegmentedLog&) = delete;
  SegmentedLog& operator=(const SegmentedLog&) = delete;
  SegmentedLog(SegmentedLog&&) = default;
  SegmentedLog& operator=(SegmentedLog&&) = default;

  // Appends one entry holding a copy of `payload` and returns its index (last_index() + 1).
  // Rolls to a new segment first (syncing the current one) when the record would take the
  // segment past segment_bytes; a segment always holds at least one entry. Durable only after
  // sync() (or at once with Sync::every_append). Allocates only when rolling and one slot per
  // 64 entries. Throws std::invalid_argument naming payload when it exceeds max_payload_bytes,
  // std::length_error past max_index, std::system_error on I/O failure, pods::Error after an
  // earlier I/O failure.
  std::uint64_t append(std::span<const std::byte> payload) {
    if (payload.size() > max_payload_bytes) [[unlikely]] {
      throw std::invalid_argument("SegmentedLog::append: payload of " +
                                  std::to_string(payload.size()) + " bytes exceeds " +
                                  std::to_string(max_payload_bytes));
    }
    check_usable();
    if (last_index() >= max_index) [[unlikely]] {
      throw std::length_error("SegmentedLog::append: the log is full (index " +
                              std::to_string(max_index) + " reached)");
    }
    const std::uint64_t record = detail::kRecordHeaderBytes + payload.size();
    if (segments_.back().count > 0 && segments_.back().bytes + record > options_.segment_bytes) {
      roll();
    }
    Segment& seg = segments_.back();
    const std::uint64_t index = seg.base + seg.count;
    const auto length = static_cast<std::uint32_t>(payload.size());
    std::array<std::byte, detail::kRecordHeaderBytes> header;
    detail::store_le32(header.data(), detail::record_crc(index, length, payload.data()));
    detail::store_le32(header.data() + 4, length);
    try {
      storage_.append(seg.base, header);
      storage_.append(seg.base, payload);
    } catch (...) {
      failed_ = true;
      throw;
    }
    if (seg.count % detail::kSparseStride == 0) seg.sparse.push_back(seg.bytes);
    seg.bytes += record;
    ++seg.count;
    dirty_ = true;
    if (options_.sync == LogOptions::Sync::every_append) sync();
    return index;
  }

  // Makes every appended entry durable (one storage sync of the last segment; nothing when
  // nothing was appended since the last sync). Throws std::system_error on I/O failure,
  // pods::Error after an earlier I/O failure.
  void sync() {
    check_usable();
    if (!dirty_) return;
    try {
      storage_.sync(segments_.back().base);
    } catch (...) {
      failed_ = true;
      throw;
    }
    dirty_ = false;
  }

  // Returns the entry at `index` (its payload copied: allocates), or nullopt when the index is
  // outside [first_index(), last_index()]. Throws std::invalid_argument naming index when it
  // is 0, pods::CorruptionError naming segment file and offset when the record is bad.
  std::optional<LogEntry> read(std::uint64_t index) const {
    if (index == 0) {
      throw std::invalid_argument("SegmentedLog::read: index must be at least 1, got 0");
    }
    if (index < first_index() || index > last_index()) return std::nullopt;
    const std::size_t s = segment_position(index);
    detail::SegmentReader<Storage> reader(storage_, segments_[s].base, detail::kReadChunk);
    const std::uint64_t offset = seek(segments_[s], reader, index);
    LogEntry entry{index, {}};
    load(reader, offset, index, entry.payload);
    return entry;
  }

  // Returns a lazy input range of the entries from max(from, first_index()) to last_index()
  // (checked at each step, so entries appended while iterating are visited). It reads segment
  // by segment in 1 MiB chunks; each dereference yields a LogEntry valid until the next
  // increment. Does not allocate until iterated. Throws std::invalid_argument naming from when
  // it is 0; iterating throws pods::CorruptionError for a bad record.
  EntryRange entries(std::uint64_t from) const {
    if (from == 0) {
      throw std::invalid_argument("SegmentedLog::entries: from must be at least 1, got 0");
    }
    return EntryRange(this, from);
  }
  // Returns entries(first_index()).
  EntryRange entries() const { return EntryRange(this, first_index()); }

  // Returns the index of the first entry still in the log (a new log: 1).
  std::uint64_t first_index() const noexcept { return segments_.front().base; }
  // Returns the index of the last entry (a new log: 0; the log is empty when last < first).
  std::uint64_t last_index() const noexcept {
    return segments_.back().base + segments_.back().count - 1;
  }

  // Drops every entry after `index`, durably (removes whole segments, then truncates the
  // one holding `index`). Does nothing when index >= last_index(). Invalidates iterators.
  // Throws std::invalid_argument naming index when index < first_index() - 1 (those entries
  // were removed), std::system_error on I/O failure.
  void truncate_after(std::uint64_t index) {
    if (index >= last_index()) return;
    if (index + 1 < first_index()) {
      throw std::invalid_argument(
          "SegmentedLog::truncate_after: index " + std::to_string(index) +
          " is below first_index() - 1 = " + std::to_string(first_index() - 1) +
          "; the entries after it were already removed");
    }
    check_usable();
    try {
      while (segments_.size() > 1 && segments_.back().base > index) {
        storage_.remove(segments_.back().base);
        segments_.pop_back();
        dirty_ = true;  // the new last segment was synced when the log rolled past it
      }
      Segment& seg = segments_.back();
      if (index + 1 < seg.base + seg.count) {
        detail::SegmentReader<Storage> reader(storage_, seg.base, detail::kReadChunk);
        const std::uint64_t offset = seek(seg, reader, index + 1);
        storage_.truncate(seg.base, offset);
        seg.count = index + 1 - seg.base;
        seg.bytes = offset;
        seg.sparse.resize((seg.count + detail::kSparseStride - 1) / detail::kSparseStride);
      }
    } catch (const CorruptionError&) {
      throw;
    } catch (...) {
      failed_ = true;
      throw;
    }
  }

  // Deletes, durably, every segment whose entries are all below `index`, oldest first, never
  // the last segment; returns how many it deleted. first_index() becomes the first index of
  // the oldest remaining segment. Invalidates iterators. Throws std::system_error on I/O
  // failure.
  std::size_t remove_before(std::uint64_t index) {
    std::size_t removed = 0;
    while (segments_.size() > 1 && segments_[1].base <= index) {
      storage_.remove(segments_.front().base);
      segments_.pop_front();
      ++removed;
    }
    return removed;
  }

  // Returns the number of segments (at least 1).
  std::size_t segment_count() const noexcept { return segments_.size(); }

  // Returns each segment's first index, last index and size, oldest first. Allocates.
  std::vector<SegmentInfo> segments() const {
    std::vector<SegmentInfo> out;
    out.reserve(segments_.size());
    for (const Segment& s : segments_)
      out.push_back({s.base, s.base + s.count - 1, s.bytes});
    return out;
  }

  // Returns the segment id and byte offset of the record of entry `index`, or nullopt when
  // it is not in the log (for error messages about an entry). Throws as read().
  std::optional<EntryLocation> locate(std::uint64_t index) const {
    if (index == 0 || index < first_index() || index > last_index()) return std::nullopt;
    const Segment& seg = segments_[segment_position(index)];
    detail::SegmentReader<Storage> reader(storage_, seg.base, detail::kReadChunk);
    return EntryLocation{seg.base, seek(seg, reader, index)};
  }

  // Returns how many bytes recovery cut from the tail of the last segment when it opened.
  std::uint64_t tail_bytes_cut() const noexcept { return tail_bytes_cut_; }

  // Returns the storage (a handle sharing the log's segments).
  const Storage& storage() const noexcept { return storage_; }
  // Returns the options the log was opened with.
  const LogOptions& options() const noexcept { return options_; }

  // The input iterator of EntryRange: move-only, compared with std::default_sentinel.
  class Iterator {
   public:
    using value_type = LogEntry;
    using difference_type = std::ptrdiff_t;
    using reference = const LogEntry&;
    using iterator_concept = std::input_iterator_tag;

    Iterator() = default;
    Iterator(Iterator&&) noexcept = default;
    Iterator& operator=(Iterator&&) noexcept = default;

    const LogEntry& operator*() const noexcept { return entry_; }
    const LogEntry* operator->() const noexcept { return &entry_; }
    Iterator& operator++() {
      advance();
      return *this;
    }
    void operator++(int) { advance(); }
    friend bool operator==(const Iterator& it, std::default_sentinel_t) noexcept {
      return it.done_;
    }

   private:
    friend class EntryRange;
    Iterator(const SegmentedLog* log, std::uint64_t from) : log_(log) {
      if (log_ == nullptr) return;
      next_ = std::max(from, log_->first_index());
      if (next_ > log_->last_index()) return;
      done_ = false;
      segment_ = log_->segment_position(next_);
      reader_.emplace(log_->storage_, log_->segments_[segment_].base, detail::kScanChunk);
      pos_ = log_->seek(log_->segments_[segment_], *reader_, next_);
      advance();
    }

    void advance() {
      if (log_ == nullptr || next_ > log_->last_index()) {
        done_ = true;
        return;
      }
      while (pos_ >= log_->segments_[segment_].bytes) {
        ++segment_;
        reader_.emplace(log_->storage_, log_->segments_[segment_].base, detail::kScanChunk);
        pos_ = detail::kSegmentHeaderBytes;
      }
      entry_.index = next_;
      pos_ = log_->load(*reader_, pos_, next_, entry_.payload);
      ++next_;
    }

    const SegmentedLog* log_ = nullptr;
    std::uint64_t next_ = 0;  // the index the next increment loads
    std::size_t segment_ = 0;
    std::optional<detail::SegmentReader<Storage>> reader_;
    std::uint64_t pos_ = 0;
    LogEntry entry_{0, {}};
    bool done_ = true;
  };

  // A lazy input range over entries; see entries().
  class EntryRange {
   public:
    EntryRange() = default;
    // Returns an iterator positioned on the first entry (reading it).
    Iterator begin() const { return Iterator(log_, from_); }
    std::default_sentinel_t end() const noexcept { return {}; }

   private:
    friend class SegmentedLog;
    EntryRange(const SegmentedLog* log, std::uint64_t from) : log_(log), from_(from) {}
    const SegmentedLog* log_ = nullptr;
    std::uint64_t from_ = 1;
  };

 private:
  void check_usable() const {
    if (failed_) [[unlikely]] {
      throw Error(
          "SegmentedLog: an earlier I/O failure left the log in an unknown state; "
          "reopen it");
    }
  }

  // Returns the position in segments_ of the segment holding `index` (first <= index).
  std::size_t segment_position(std::uint64_t index) const {
    auto it = std::upper_bound(segments_.begin(), segments_.end(), index,
                               [](std::uint64_t i, const Segment& s) { return i < s.base; });
    return static_cast<std::size_t>(it - segments_.begin()) - 1;
  }

  [[noreturn]] void corrupt(std::uint64_t id, std::uint64_t offset,
                            const std::string& detail) const {
    throw CorruptionError(storage_.name(id), offset, detail);
  }

  // Returns the offset of entry `index` (in `seg`, or one past its last entry for the end),
  // walking record headers from the nearest sparse offset.
  std::uint64_t seek(const Segment& seg, detail::SegmentReader<Storage>& reader,
                     std::uint64_t index) const {
    const std::uint64_t k = index - seg.base;
    if (k >= seg.count) return seg.bytes;
    std::uint64_t pos = seg.sparse[k / detail::kSparseStride];
    for (std::uint64_t skip = k % detail::kSparseStride; skip > 0; --skip) {
      const std::byte* h = reader.fetch(pos, detail::kRecordHeaderBytes);
      if (h == nullptr) corrupt(seg.base, pos, "record header runs past the end of the segment");
      pos += detail::kRecordHeaderBytes + detail::read_le32(h + 4);
    }
    return pos;
  }

  // Reads and verifies the record of entry `index` at `pos` into `payload`; returns the offset
  // after it. Throws CorruptionError naming the segment and pos when it is bad.
  std::uint64_t load(detail::SegmentReader<Storage>& reader, std::uint64_t pos, std::uint64_t index,
                     std::vector<std::byte>& payload) const {
    const std::byte* h = reader.fetch(pos, detail::kRecordHeaderBytes);
    if (h == nullptr) corrupt(reader.id(), pos, "record header runs past the end of the segment");
    const std::uint32_t length = detail::read_le32(h + 4);
    const std::byte* r = reader.fetch(pos, detail::kRecordHeaderBytes + length);
    if (r == nullptr) corrupt(reader.id(), pos, "record runs past the end of the segment");
    if (detail::record_crc(index, length, r + detail::kRecordHeaderBytes) != detail::read_le32(r)) {
      corrupt(reader.id(), pos,
              "checksum mismatch for the record of index " + std::to_string(index));
    }
    payload.assign(r + detail::kRecordHeaderBytes, r + detail::kRecordHeaderBytes + length);
    return pos + detail::kRecordHeaderBytes + length;
  }

  // Creates segment `base` with its header, durably, and makes it the last segment.
  void start_segment(std::uint64_t base) {
    storage_.create(base);
    storage_.append(base, detail::segment_header(base));
    storage_.sync(base);
    segments_.push_back(Segment{base, 0, detail::kSegmentHeaderBytes, {}});
    dirty_ = false;
  }

  void roll() {
    try {
      const Segment& last = segments_.back();
      if (dirty_) storage_.sync(last.base);
      dirty_ = false;
      start_segment(last.base + last.count);
    } catch (...) {
      failed_ = true;
      throw;
    }
  }

  void recover() {
    const std::vector<std::uint64_t> ids = storage_.list();
    if (ids.empty()) {
      start_segment(1);
      return;
    }
    for (std::size_t k = 0; k < ids.size(); ++k) {
      const std::uint64_t id = ids[k];
      if (id == 0 || id > max_index) {
        corrupt(id, 0,
                "segment named for index " + std::to_string(id) + ", outside [1, " +
                    std::to_string(max_index) + "]");
      }
      if (k > 0) {
        const Segment& prev = segments_.back();
        if (id != prev.base + prev.count) {
          corrupt(id, 0,
                  "segment starts at index " + std::to_string(id) +
                      " but the previous segment ends at index " +
                      std::to_string(prev.base + prev.count - 1));
        }
      }
      scan(id, k + 1 == ids.size());
    }
    dirty_ = true;  // recovered bytes may not be durable yet (a clean exit without sync)
  }

  // Returns true when bytes [pos, size) of the segment are all zero (none when pos == size): a
  // region a file system extended but never wrote.
  bool zeros_from(detail::SegmentReader<Storage>& reader, std::uint64_t pos,
                  std::uint64_t size) const {
    while (pos < size) {
      const std::size_t n = static_cast<std::size_t>(std::min<std::uint64_t>(size - pos, 4096));
      const std::byte* p = reader.fetch(pos, n);
      if (p == nullptr) return false;
      for (std::size_t i = 0; i < n; ++i) {
        if (p[i] != std::byte{0}) return false;
      }
      pos += n;
    }
    return true;
  }

  // Scans segment `id`, verifying every record, and appends it to segments_. In the last
  // segment a bad record that reaches the end of the segment, or is followed only by zero
  // bytes, is the torn tail and is cut; any other bad record throws CorruptionError.
  void scan(std::uint64_t id, bool last) {
    const std::uint64_t size = storage_.size(id);
    detail::SegmentReader<Storage> reader(storage_, id, detail::kScanChunk);
    if (size < detail::kSegmentHeaderBytes) {
      if (!last) corrupt(id, 0, "segment header is truncated (" + std::to_string(size) + " bytes)");
      // A crash while the segment was being started: its header never became durable.
      storage_.truncate(id, 0);
      storage_.append(id, detail::segment_header(id));
      storage_.sync(id);
      tail_bytes_cut_ = size;
      segments_.push_back(Segment{id, 0, detail::kSegmentHeaderBytes, {}});
      return;
    }
    const std::byte* h = reader.fetch(0, detail::kSegmentHeaderBytes);
    if (h == nullptr) corrupt(id, 0, "segment header could not be read");
    for (std::size_t i = 0; i < detail::kSegmentMagic.size(); ++i) {
      if (h[i] != std::byte{detail::kSegmentMagic[i]}) {
        corrupt(id, 0, "not a pods log segment (bad magic)");
      }
    }
    if (h[7] != std::byte{detail::kSegmentFormat}) {
      corrupt(id, 7,
              "unsupported segment format " + std::to_string(static_cast<unsigned>(h[7])) +
                  " (this build reads format " + std::to_string(detail::kSegmentFormat) + ")");
    }
    if (detail::read_le64(h + 8) != id) {
      corrupt(id, 8,
              "segment header says first index " + std::to_string(detail::read_le64(h + 8)) +
                  " but the segment is named for " + std::to_string(id));
    }
    Segment seg{id, 0, detail::kSegmentHeaderBytes, {}};
    std::uint64_t pos = detail::kSegmentHeaderBytes;
    while (pos < size) {
      const std::uint64_t left = size - pos;
      std::string problem;
      std::uint64_t end = size;
      if (left < detail::kRecordHeaderBytes) {
        problem = "record header runs past the end of the segment";
      } else {
        const std::byte* r = reader.fetch(pos, detail::kRecordHeaderBytes);
        const std::uint32_t length = detail::read_le32(r + 4);
        if (length > left - detail::kRecordHeaderBytes) {
          problem = "record length " + std::to_string(length) + " runs past the end of the segment";
        } else {
          end = pos + detail::kRecordHeaderBytes + length;
          r = reader.fetch(pos, detail::kRecordHeaderBytes + length);
          const std::uint64_t index = seg.base + seg.count;
          if (index > max_index) {
            problem = "record index beyond the largest index " + std::to_string(max_index);
          } else if (detail::record_crc(index, length, r + detail::kRecordHeaderBytes) !=
                     detail::read_le32(r)) {
            problem = "checksum mismatch for the record of index " + std::to_string(index);
          }
        }
      }
      if (!problem.empty()) {
        if (last && zeros_from(reader, end, size)) {
          storage_.truncate(id, pos);
          tail_bytes_cut_ = size - pos;
          break;
        }
        corrupt(id, pos, problem);
      }
      if (seg.count % detail::kSparseStride == 0) seg.sparse.push_back(pos);
      ++seg.count;
      pos = end;
    }
    seg.bytes = pos;
    segments_.push_back(std::move(seg));
  }

  Storage storage_;
  LogOptions options_;
  std::deque<Segment> segments_;
  std::uint64_t tail_bytes_cut_ = 0;
  bool dirty_ = false;   // appended (or recovered) bytes not yet synced
  bool failed_ = false;  // an I/O failure left the storage in an unknown state
};

}  // namespace pods

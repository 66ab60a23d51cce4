// pods/storage/segmented_log_core.hpp — Segmented Log (the log itself, without FileStorage)
//
// Include <pods/storage/segmented_log.hpp> for SegmentedLog<> with its default FileStorage.
// This header names FileStorage only by a declaration, so a program that uses the log over
// MemoryStorage or its own storage does not compile <filesystem> and the POSIX file code:
// it includes this header and its storage's header, and names the storage
// (SegmentedLog<MemoryStorage>). Naming SegmentedLog<> needs file_storage.hpp included.
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
//                of the last segment is taken for an interrupted write and cut off (see the
//                limit under Guarantees); a bad record anywhere else is corruption and is
//                reported, never skipped. A bad record of the last segment after which the
//                rest of the log resumes (valid records of the next indices running to the
//                end) is corruption too: a damaged length, not a torn write. Recovery looks
//                where one flipped bit of the length would have put the next record, and at
//                every position of a tail up to 1 MiB. Cleaning is deleting whole segments
//                (remove_before); rewinding is truncate_after.
// Record format (version 1; docs/patterns/segmented-log.md): a segment starts with a 16-byte
//                header: the 7 bytes "podslog", a format byte (1), the first index (u64 LE).
//                Each record is crc32c (u32 LE) | payload length (u32 LE) | payload. The CRC
//                covers the record's index (u64 LE; implied by its position, not stored), the
//                length and the payload, so a record out of place fails its checksum.
// Guarantees:    Indices are consecutive from 1 (a new log: first_index() 1, last_index() 0).
//                After sync() returns every appended entry survives a crash with its bytes.
//                Reopening after a crash yields a prefix of the appended entries that contains
//                every synced one, except in one case: damage to the LAST record of the last
//                segment (a flipped bit in it after it was synced) cannot be told from a torn
//                write, so recovery cuts it; tail_cut() reports what was cut, and
//                tail_cut().whole_record says a complete record was cut (a torn write leaves
//                an incomplete one). entries() and read() verify each record's checksum.
//                After a failed append or sync the last segment is cut back to what the last
//                successful sync covered, so a reopen in the same process never reports
//                bytes a kernel may have dropped as durable.
// Not provided:  Durability before sync() (or with Sync::every_append); concurrent appends
//                (use GroupCommitLog); repairing corruption before the tail; detecting
//                damage to the last record (above).
// Thread safety: thread-compatible: one writer; const members (read, entries, first_index,
//                last_index, segments) may run concurrently with each other, not with a
//                mutation. Iterators of entries() are invalidated by truncate_after and
//                remove_before, and must not outlive the log. A moved-from log is empty
//                (first_index() 1, last_index() 0, read() nullopt, entries() empty) and its
//                mutations throw pods::Error; assigning a log to it makes it usable again.
//                A storage that offers acquire_writer() (FileStorage) refuses a second log
//                on it (or on a copy of it) while the first is alive.
// Errors:        options.segment_bytes == 0, a payload over max_payload_bytes and
//                truncate_after below first_index() - 1 throw std::invalid_argument naming the
//                argument; an append past max_index throws std::length_error. read(0) returns
//                nullopt and entries(0) starts at first_index(), as for any index below it.
//                Bad bytes before the tail (on open or on read) throw pods::CorruptionError
//                naming the segment file (with its directory, for FileStorage) and the byte
//                offset of the record. Storage I/O failures throw std::system_error; after
//                one, appends, syncs, truncate_after and remove_before throw pods::Error until
//                the log is reopened.
// Cost:          append: one CRC32C pass over the payload and two storage appends (FileStorage:
//                memcpys into its buffer); no allocation except one small vector slot per 64
//                entries. Rolling (once per segment_bytes): a sync of the full segment, then
//                the next segment's creation (file and directory fsync) and header sync.
//                read(i): one storage read of up to 16 KiB from the nearest of every 64th
//                entry's offset. Open: reads every segment once in 1 MiB chunks; before it
//                cuts a tail it checks the 32 positions a flipped length bit points at, and
//                every position of a tail up to 1 MiB, for a valid record. Memory: 8 bytes
//                per 64 entries.
// Example:
//   pods::MemoryStorage storage;                 // or FileStorage, from segmented_log.hpp
//   pods::SegmentedLog log(storage);
//   std::uint64_t i = log.append(std::as_bytes(std::span(std::string_view("put x 1"))));
//   log.sync();                                  // entry i is durable
//   for (const pods::LogEntry& e : log.entries(1)) apply(e.index, e.payload);
//   log.remove_before(snapshot_index + 1);       // drop segments a snapshot covers
// Example context: #include <pods/storage/memory_storage.hpp>
// Example context: void apply(std::uint64_t, const std::vector<std::byte>&) {}
// Example context: std::uint64_t snapshot_index = 0;
#pragma once

#include <pods/policy/errors.hpp>
#include <pods/policy/storage.hpp>
#include <pods/storage/crc32c.hpp>

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

class FileStorage;  // <pods/storage/file_storage.hpp>; needed only where SegmentedLog<> is named

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

// What recovery cut from the tail of the last segment when the log opened (all zero when it
// cut nothing).
struct TailCut {
  std::uint64_t segment = 0;  // the segment's id (its first index)
  std::uint64_t offset = 0;   // where the cut starts: the new end of the segment
  std::uint64_t bytes = 0;    // how many bytes were cut
  // True when the cut started with a complete record that failed its checksum: a torn write
  // leaves an incomplete record, so this one may have been damaged after it was synced.
  bool whole_record = false;
  friend bool operator==(const TailCut&, const TailCut&) = default;
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

// Returns the name CorruptionError gives segment `id`: the storage's path for it when the
// storage has paths (FileStorage: directory and file), else its name().
template <class Storage>
std::string segment_location(const Storage& storage, std::uint64_t id) {
  if constexpr (requires { storage.path(id).string(); }) {
    return storage.path(id).string();
  } else {
    return std::string(storage.name(id));
  }
}

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
  // segment of a new log. Claims the storage's single writer when it has one. Allocates.
  // Throws std::invalid_argument naming segment_bytes when it is 0, pods::CorruptionError
  // naming the segment file and offset for bad bytes before the tail, std::system_error on
  // I/O failure or when another log holds the storage's writer claim.
  explicit SegmentedLog(Storage storage, LogOptions options = {})
      : storage_(std::move(storage)), options_(options) {
    if (options_.segment_bytes == 0) {
      throw std::invalid_argument("SegmentedLog: options.segment_bytes must be greater than 0");
    }
    if constexpr (claimable) {
      storage_.acquire_writer();
      writer_ = true;
    }
    try {
      recover();
    } catch (...) {
      release();
      throw;
    }
  }

  SegmentedLog(const SegmentedLog&) = delete;
  SegmentedLog& operator=(const SegmentedLog&) = delete;

  // Takes over `other`'s storage, segments and writer claim; `other` is left empty (see the
  // thread-safety note at the top). Allocates (the moved-from log's placeholder segment).
  SegmentedLog(SegmentedLog&& other)
      : storage_(std::move(other.storage_)),
        options_(other.options_),
        segments_(std::move(other.segments_)),
        tail_cut_(other.tail_cut_),
        synced_bytes_(other.synced_bytes_),
        synced_count_(other.synced_count_),
        dirty_(other.dirty_),
        failed_(other.failed_),
        cut_failed_(other.cut_failed_),
        moved_from_(other.moved_from_),
        writer_(std::exchange(other.writer_, false)) {
    other.become_moved_from();
  }

  // Releases this log's writer claim, then takes over `other` as the move constructor does.
  SegmentedLog& operator=(SegmentedLog&& other) {
    if (this == &other) return *this;
    release();
    storage_ = std::move(other.storage_);
    options_ = other.options_;
    segments_ = std::move(other.segments_);
    tail_cut_ = other.tail_cut_;
    synced_bytes_ = other.synced_bytes_;
    synced_count_ = other.synced_count_;
    dirty_ = other.dirty_;
    failed_ = other.failed_;
    cut_failed_ = other.cut_failed_;
    moved_from_ = other.moved_from_;
    writer_ = std::exchange(other.writer_, false);
    other.become_moved_from();
    return *this;
  }

  // Releases the storage's writer claim. Unsynced entries stay in the storage (not durable).
  ~SegmentedLog() { release(); }

  // Appends one entry holding a copy of `payload` and returns its index (last_index() + 1).
  // Rolls to a new segment first (syncing the current one) when the record would take the
  // segment past segment_bytes; a segment always holds at least one entry. Durable only after
  // sync() (or at once with Sync::every_append). Allocates only when rolling and one slot per
  // 64 entries. Throws std::invalid_argument naming payload when it exceeds max_payload_bytes,
  // std::length_error past max_index, std::system_error on I/O failure (the last segment is
  // then cut back to what the last sync covered), pods::Error after an earlier I/O failure.
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
      fail_unsynced();
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
  // nothing was appended since the last sync). Throws std::system_error on I/O failure, after
  // cutting the last segment back to what the previous successful sync covered (the entries
  // after it were never acknowledged, and a kernel may have dropped their pages);
  // pods::Error after an earlier I/O failure.
  void sync() {
    check_usable();
    if (!dirty_) return;
    try {
      storage_.sync(segments_.back().base);
    } catch (...) {
      fail_unsynced();
      throw;
    }
    dirty_ = false;
    mark_synced();
  }

  // Returns the entry at `index` (its payload copied: allocates), or nullopt when the index is
  // outside [first_index(), last_index()] (0 included). Throws pods::CorruptionError naming
  // segment file and offset when the record is bad.
  std::optional<LogEntry> read(std::uint64_t index) const {
    if (index < first_index() || index > last_index()) return std::nullopt;
    const std::size_t s = segment_position(index);
    detail::SegmentReader<Storage> reader(storage_, segments_[s].base, detail::kReadChunk);
    const std::uint64_t offset = seek(segments_[s], reader, index);
    LogEntry entry{index, {}};
    load(reader, segments_[s].bytes, offset, index, entry.payload);
    return entry;
  }

  // Returns a lazy input range of the entries from max(from, first_index()) to last_index()
  // (checked at each step, so entries appended while iterating are visited). It reads segment
  // by segment in 1 MiB chunks; each dereference yields a LogEntry valid until the next
  // increment. Does not allocate until iterated. Iterating throws pods::CorruptionError for a
  // bad record.
  EntryRange entries(std::uint64_t from) const { return EntryRange(this, from); }
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
  // were removed), std::system_error on I/O failure, pods::Error after an earlier one.
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
        remove_segment(segments_.size() - 1);
        dirty_ = true;  // the new last segment was synced when the log rolled past it
        mark_synced();
      }
      Segment& seg = segments_.back();
      if (index + 1 < seg.base + seg.count) {
        detail::SegmentReader<Storage> reader(storage_, seg.base, detail::kReadChunk);
        const std::uint64_t offset = seek(seg, reader, index + 1);
        storage_.truncate(seg.base, offset);
        seg.count = index + 1 - seg.base;
        seg.bytes = offset;
        seg.sparse.resize((seg.count + detail::kSparseStride - 1) / detail::kSparseStride);
        synced_bytes_ = std::min(synced_bytes_, seg.bytes);
        synced_count_ = std::min(synced_count_, seg.count);
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
  // failure (the log then no longer lists a segment the storage no longer has, and is failed
  // as after any I/O error), pods::Error after an earlier I/O failure.
  std::size_t remove_before(std::uint64_t index) {
    check_usable();
    std::size_t removed = 0;
    try {
      while (segments_.size() > 1 && segments_[1].base <= index) {
        remove_segment(0);
        ++removed;
      }
    } catch (...) {
      failed_ = true;
      throw;
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
    if (index < first_index() || index > last_index()) return std::nullopt;
    const Segment& seg = segments_[segment_position(index)];
    detail::SegmentReader<Storage> reader(storage_, seg.base, detail::kReadChunk);
    return EntryLocation{seg.base, seek(seg, reader, index)};
  }

  // Returns what recovery cut from the tail of the last segment when the log opened.
  const TailCut& tail_cut() const noexcept { return tail_cut_; }
  // Returns how many bytes recovery cut from the tail of the last segment (tail_cut().bytes).
  std::uint64_t tail_bytes_cut() const noexcept { return tail_cut_.bytes; }

  // Returns the index of the last entry a successful sync covered, as far as this log object
  // knows (entries recovered on open count as synced; every segment before the last is).
  std::uint64_t synced_index() const noexcept { return segments_.back().base + synced_count_ - 1; }

  // Returns true after an I/O failure (mutations throw pods::Error until the log is reopened).
  bool failed() const noexcept { return failed_; }
  // Returns true when, after a failure, cutting the last segment back to the synced bytes
  // failed as well: the storage may still show entries that were never durable, so restart
  // the process before reopening the log.
  bool cut_back_failed() const noexcept { return cut_failed_; }

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
      if (log_ == nullptr || next_ > log_->last_index() || next_ < log_->first_index()) {
        done_ = true;
        return;
      }
      while (pos_ >= log_->segments_[segment_].bytes) {
        if (segment_ + 1 >= log_->segments_.size()) {  // the log changed under the iterator
          done_ = true;
          return;
        }
        ++segment_;
        reader_.emplace(log_->storage_, log_->segments_[segment_].base, detail::kScanChunk);
        pos_ = detail::kSegmentHeaderBytes;
      }
      entry_.index = next_;
      pos_ = log_->load(*reader_, log_->segments_[segment_].bytes, pos_, next_, entry_.payload);
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
  // The longest span after a bad record that recovery searches byte by byte for a valid one.
  static constexpr std::uint64_t kFullSearchBytes = 1 << 20;

  static constexpr bool claimable = requires(Storage & s) {
    s.acquire_writer();
    s.release_writer();
  };

  void check_usable() const {
    if (failed_ || moved_from_) [[unlikely]] {
      throw Error(moved_from_ ? "SegmentedLog: use of a moved-from log"
                              : "SegmentedLog: an earlier I/O failure left the log in an unknown "
                                "state; reopen it");
    }
  }

  // Releases the storage's writer claim if this log holds it.
  void release() noexcept {
    if constexpr (claimable) {
      if (writer_) storage_.release_writer();
    }
    writer_ = false;
  }

  // Leaves this log empty and unusable after its state was moved out.
  void become_moved_from() {
    segments_.clear();
    segments_.push_back(Segment{1, 0, detail::kSegmentHeaderBytes, {}});
    tail_cut_ = {};
    synced_bytes_ = detail::kSegmentHeaderBytes;
    synced_count_ = 0;
    dirty_ = false;
    failed_ = false;
    cut_failed_ = false;
    moved_from_ = true;
    writer_ = false;
  }

  // Records that the last segment is durable as it stands.
  void mark_synced() noexcept {
    synced_bytes_ = segments_.back().bytes;
    synced_count_ = segments_.back().count;
  }

  // After a failed append or sync: marks the log failed and cuts the last segment back to the
  // bytes the last successful sync covered (best effort: if the cut fails too, the storage
  // may still show the unsynced bytes, and only a restart of the process clears them).
  void fail_unsynced() noexcept {
    failed_ = true;
    Segment& seg = segments_.back();
    try {
      storage_.truncate(seg.base, synced_bytes_);
      seg.bytes = synced_bytes_;
      seg.count = synced_count_;
      seg.sparse.resize((seg.count + detail::kSparseStride - 1) / detail::kSparseStride);
      dirty_ = false;
    } catch (...) {
      cut_failed_ = true;
    }
  }

  // Removes segment segments_[k] (the first or the last) from the storage and the list. When
  // the storage throws after the segment is gone (an unlink whose directory fsync failed),
  // the list drops it as well before the error propagates.
  void remove_segment(std::size_t k) {
    const std::uint64_t id = segments_[k].base;
    auto drop = [&] {
      if (k == 0) {
        segments_.pop_front();
      } else {
        segments_.pop_back();
      }
    };
    try {
      storage_.remove(id);
    } catch (...) {
      bool gone = false;
      try {
        const std::vector<std::uint64_t> ids = storage_.list();
        gone = !std::binary_search(ids.begin(), ids.end(), id);
      } catch (...) {
      }
      if (gone) drop();
      throw;
    }
    drop();
  }

  // Returns the position in segments_ of the segment holding `index` (first <= index).
  std::size_t segment_position(std::uint64_t index) const {
    auto it = std::upper_bound(segments_.begin(), segments_.end(), index,
                               [](std::uint64_t i, const Segment& s) { return i < s.base; });
    return static_cast<std::size_t>(it - segments_.begin()) - 1;
  }

  [[noreturn]] void corrupt(std::uint64_t id, std::uint64_t offset,
                            const std::string& detail) const {
    throw CorruptionError(detail::segment_location(storage_, id), offset, detail);
  }

  // Returns the offset of entry `index` (in `seg`, or one past its last entry for the end),
  // walking record headers from the nearest sparse offset. Throws CorruptionError at a record
  // whose length runs past the end of the segment.
  std::uint64_t seek(const Segment& seg, detail::SegmentReader<Storage>& reader,
                     std::uint64_t index) const {
    const std::uint64_t k = index - seg.base;
    if (k >= seg.count) return seg.bytes;
    std::uint64_t pos = seg.sparse[k / detail::kSparseStride];
    for (std::uint64_t skip = k % detail::kSparseStride; skip > 0; --skip) {
      const std::byte* h = pos + detail::kRecordHeaderBytes <= seg.bytes
                               ? reader.fetch(pos, detail::kRecordHeaderBytes)
                               : nullptr;
      if (h == nullptr) corrupt(seg.base, pos, "record header runs past the end of the segment");
      const std::uint32_t length = detail::read_le32(h + 4);
      if (length > seg.bytes - pos - detail::kRecordHeaderBytes) {
        corrupt(seg.base, pos,
                "record length " + std::to_string(length) + " runs past the end of the segment (" +
                    std::to_string(seg.bytes) + " bytes)");
      }
      pos += detail::kRecordHeaderBytes + length;
    }
    return pos;
  }

  // Reads and verifies the record of entry `index` at `pos` into `payload`; returns the offset
  // after it. `end` is the segment's size as the log knows it: a length that runs past it is
  // corruption, reported without reading it. Throws CorruptionError naming the segment and
  // pos when the record is bad.
  std::uint64_t load(detail::SegmentReader<Storage>& reader, std::uint64_t end, std::uint64_t pos,
                     std::uint64_t index, std::vector<std::byte>& payload) const {
    const std::byte* h = pos + detail::kRecordHeaderBytes <= end
                             ? reader.fetch(pos, detail::kRecordHeaderBytes)
                             : nullptr;
    if (h == nullptr) corrupt(reader.id(), pos, "record header runs past the end of the segment");
    const std::uint32_t length = detail::read_le32(h + 4);
    if (length > end - pos - detail::kRecordHeaderBytes) {
      corrupt(reader.id(), pos,
              "record length " + std::to_string(length) + " runs past the end of the segment (" +
                  std::to_string(end) + " bytes)");
    }
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
    mark_synced();
  }

  void roll() {
    try {
      const Segment& last = segments_.back();
      if (dirty_) storage_.sync(last.base);
    } catch (...) {
      fail_unsynced();
      throw;
    }
    dirty_ = false;
    mark_synced();
    try {
      const Segment& last = segments_.back();
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
    mark_synced();  // ... but they are what this log object starts from
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

  // Returns true when a valid record of entry `index` starts at `q` (length within `size`,
  // checksum over the implied index).
  bool valid_record_at(detail::SegmentReader<Storage>& reader, std::uint64_t q, std::uint64_t size,
                       std::uint64_t index) const {
    if (index > max_index || q + detail::kRecordHeaderBytes > size) return false;
    const std::byte* h = reader.fetch(q, detail::kRecordHeaderBytes);
    if (h == nullptr) return false;
    const std::uint32_t length = detail::read_le32(h + 4);
    if (length > size - q - detail::kRecordHeaderBytes) return false;
    const std::byte* r = reader.fetch(q, detail::kRecordHeaderBytes + length);
    return r != nullptr && detail::record_crc(index, length, r + detail::kRecordHeaderBytes) ==
                               detail::read_le32(r);
  }

  // Returns true when valid records of entries index, index + 1, ... run from `q` to the end
  // of the segment (or to a run of zero bytes that ends it): the rest of a log, not a stray
  // record image inside a torn payload.
  bool valid_chain_at(detail::SegmentReader<Storage>& reader, std::uint64_t q, std::uint64_t size,
                      std::uint64_t index) const {
    if (!valid_record_at(reader, q, size, index)) return false;
    while (true) {
      const std::byte* h = reader.fetch(q, detail::kRecordHeaderBytes);
      q += detail::kRecordHeaderBytes + detail::read_le32(h + 4);
      ++index;
      if (q == size || zeros_from(reader, q, size)) return true;
      if (!valid_record_at(reader, q, size, index)) return false;
    }
  }

  // Returns the offset where the rest of the log (valid_chain_at, from entry `index`)
  // resumes after the bad record at `from`, or 0 when it does not. A torn write is the last
  // thing written, so a valid chain after the bad record means the bad one was damaged, not
  // torn. Where it looks: at each position a single flipped bit of the bad record's length
  // field would have moved its end from (32 positions), and at every position in
  // (from, limit) when that span is at most kFullSearchBytes (past `limit` the caller has
  // seen only zero bytes). A longer span is not searched byte by byte: its cost would grow
  // with the cube of its size for random payload bytes.
  std::uint64_t valid_record_after(detail::SegmentReader<Storage>& reader, std::uint64_t from,
                                   std::uint64_t limit, std::uint64_t size,
                                   std::uint64_t index) const {
    if (index > max_index) return 0;
    if (from + detail::kRecordHeaderBytes <= size) {
      const std::byte* h = reader.fetch(from, detail::kRecordHeaderBytes);
      const std::uint32_t claimed = h == nullptr ? 0 : detail::read_le32(h + 4);
      for (int bit = 0; h != nullptr && bit < 32; ++bit) {
        const std::uint64_t q =
            from + detail::kRecordHeaderBytes + (claimed ^ (std::uint32_t{1} << bit));
        if (q > from && valid_chain_at(reader, q, size, index)) return q;
      }
    }
    if (limit - from <= kFullSearchBytes) {
      for (std::uint64_t q = from + 1; q < limit && q + detail::kRecordHeaderBytes <= size; ++q) {
        if (valid_chain_at(reader, q, size, index)) return q;
      }
    }
    return 0;
  }

  // Makes segment `id` a fresh, durable, empty segment (its header never became durable) and
  // records `size` bytes as cut.
  void restart_segment(std::uint64_t id, std::uint64_t size) {
    storage_.truncate(id, 0);
    storage_.append(id, detail::segment_header(id));
    storage_.sync(id);
    tail_cut_ = TailCut{id, 0, size, false};
    segments_.push_back(Segment{id, 0, detail::kSegmentHeaderBytes, {}});
  }

  // Scans segment `id`, verifying every record, and appends it to segments_. In the last
  // segment a bad record that reaches the end of the segment, or is followed only by zero
  // bytes, is the torn tail and is cut, unless a valid record of the next index follows it;
  // any other bad record throws CorruptionError.
  void scan(std::uint64_t id, bool last) {
    const std::uint64_t size = storage_.size(id);
    detail::SegmentReader<Storage> reader(storage_, id, detail::kScanChunk);
    if (size < detail::kSegmentHeaderBytes) {
      if (!last) corrupt(id, 0, "segment header is truncated (" + std::to_string(size) + " bytes)");
      // A crash while the segment was being started: its header never became durable.
      restart_segment(id, size);
      return;
    }
    const std::byte* h = reader.fetch(0, detail::kSegmentHeaderBytes);
    if (h == nullptr) corrupt(id, 0, "segment is shorter than the size the storage reported");
    if (last &&
        std::all_of(h, h + detail::kSegmentHeaderBytes,
                    [](std::byte b) { return b == std::byte{0}; }) &&
        zeros_from(reader, 0, size)) {
      // A crash after the file was extended but before its header was written.
      restart_segment(id, size);
      return;
    }
    h = reader.fetch(0, detail::kSegmentHeaderBytes);
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
      const std::uint64_t index = seg.base + seg.count;
      std::string problem;
      std::uint64_t end = size;
      bool whole = false;
      if (left < detail::kRecordHeaderBytes) {
        problem = "record header runs past the end of the segment";
      } else {
        const std::byte* r = reader.fetch(pos, detail::kRecordHeaderBytes);
        if (r == nullptr) corrupt(id, pos, "segment is shorter than the size the storage reported");
        const std::uint32_t length = detail::read_le32(r + 4);
        if (length > max_payload_bytes) {  // no append writes it, and a torn write is a prefix
          corrupt(id, pos,
                  "record length " + std::to_string(length) + " exceeds the largest payload " +
                      std::to_string(max_payload_bytes));
        }
        if (length > left - detail::kRecordHeaderBytes) {
          problem = "record length " + std::to_string(length) + " runs past the end of the segment";
        } else {
          end = pos + detail::kRecordHeaderBytes + length;
          whole = true;
          r = reader.fetch(pos, detail::kRecordHeaderBytes + length);
          if (r == nullptr) {
            corrupt(id, pos, "segment is shorter than the size the storage reported");
          }
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
          if (const std::uint64_t q = valid_record_after(reader, pos, end, size, index + 1);
              q != 0) {
            corrupt(id, pos,
                    problem + ", and a valid record of index " + std::to_string(index + 1) +
                        " follows at offset " + std::to_string(q) +
                        " (a damaged record, not a torn write)");
          }
          storage_.truncate(id, pos);
          tail_cut_ = TailCut{id, pos, size - pos, whole};
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
  TailCut tail_cut_;
  std::uint64_t synced_bytes_ = 0;  // bytes of the last segment the last successful sync covered
  std::uint64_t synced_count_ = 0;  // entries of the last segment within synced_bytes_
  bool dirty_ = false;              // appended (or recovered) bytes not yet synced
  bool failed_ = false;             // an I/O failure left the storage in an unknown state
  bool cut_failed_ = false;         // after a failure, cutting back to the synced bytes failed too
  bool moved_from_ = false;         // the state was moved to another log
  bool writer_ = false;             // this log holds the storage's writer claim
};

}  // namespace pods

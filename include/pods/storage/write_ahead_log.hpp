// pods/storage/write_ahead_log.hpp — Write-Ahead Log
//
// Problem:       A server that changes its in-memory state and then crashes loses the change;
//                one that writes its whole state to disk on every change is far too slow.
// Solution:      Before applying a command to its state, the server appends the command to a
//                log and (for the commands it acknowledges) syncs it. After a restart it
//                replays the log from the start (or from its last snapshot) and re-applies
//                every command, rebuilding exactly the state it had. WriteAheadLog is typed:
//                a Codec turns each Entry into the payload of one SegmentedLog entry and back.
// Guarantees:    Those of SegmentedLog: indices consecutive from 1; after sync() every
//                appended entry survives a crash; replay yields entries in index order, each
//                decoded from bytes whose checksum was verified.
// Not provided:  Snapshots (the owner takes them and calls remove_before, or uses
//                LowWaterMark); concurrent appends (use GroupCommitLog over the encoded bytes).
// Thread safety: thread-compatible (one writer; const members concurrently).
// Errors:        As SegmentedLog. An entry whose bytes the codec rejects makes read/replay
//                throw pods::CorruptionError naming the segment file and the record's offset.
// Cost:          append: the codec's encode into a reused buffer (no allocation once it has
//                grown) plus SegmentedLog::append. replay: one decode per entry.
// Example:
//   pods::WriteAheadLog<std::string, pods::StringCodec> wal(pods::FileStorage("/var/lib/kv"));
//   for (const auto& [index, command] : wal.replay()) apply(command);   // after a restart
//   wal.append("set x 1"); wal.sync(); apply("set x 1");
// Example context: void apply(const std::string&) {}
#pragma once

#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/storage.hpp>
#include <pods/storage/file_storage.hpp>
#include <pods/storage/segmented_log.hpp>

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>

namespace pods {

// One replayed entry: its index in the log and the decoded Entry.
template <class Entry>
struct WalEntry {
  std::uint64_t index;
  Entry entry;
};

template <class Entry, Codec<Entry> C, SegmentStorage Storage = FileStorage>
class WriteAheadLog {
 public:
  class Iterator;
  class ReplayRange;

  // Opens (and recovers) the log on `storage` with `options`; `codec` is kept. Throws what
  // SegmentedLog's constructor throws.
  explicit WriteAheadLog(Storage storage, LogOptions options = {}, C codec = {})
      : log_(std::move(storage), options), codec_(std::move(codec)) {}

  // Wraps an open SegmentedLog (taking ownership).
  explicit WriteAheadLog(SegmentedLog<Storage> log, C codec = {})
      : log_(std::move(log)), codec_(std::move(codec)) {}

  // Encodes `entry` and appends it; returns its index. Not durable until sync(). Reuses an
  // internal buffer (allocates only while it grows). Throws what the codec and
  // SegmentedLog::append throw.
  std::uint64_t append(const Entry& entry) {
    buffer_.clear();
    codec_.encode(entry, buffer_);
    return log_.append(buffer_);
  }

  // Makes every appended entry durable. Throws what SegmentedLog::sync throws.
  void sync() { log_.sync(); }

  // Returns the decoded entry at `index`, or nullopt outside [first_index(), last_index()]
  // (0 included). Throws pods::CorruptionError when its record is bad or does not decode.
  std::optional<Entry> read(std::uint64_t index) const {
    std::optional<LogEntry> raw = log_.read(index);
    if (!raw) return std::nullopt;
    return decode(raw->index, raw->payload);
  }

  // Returns a lazy input range of WalEntry<Entry> from max(from, first_index()) to
  // last_index() (replay(0) is replay from first_index(), as for any from below it), decoding
  // one entry per step. Iterating throws pods::CorruptionError for a bad or undecodable
  // record.
  ReplayRange replay(std::uint64_t from = 1) const { return ReplayRange(this, from); }

  // Returns the index of the first entry (a new log: 1).
  std::uint64_t first_index() const noexcept { return log_.first_index(); }
  // Returns the index of the last entry (a new log: 0).
  std::uint64_t last_index() const noexcept { return log_.last_index(); }
  // Drops every entry after `index`, durably; see SegmentedLog::truncate_after.
  void truncate_after(std::uint64_t index) { log_.truncate_after(index); }
  // Deletes segments whose entries are all below `index`; see SegmentedLog::remove_before.
  std::size_t remove_before(std::uint64_t index) { return log_.remove_before(index); }
  // Returns the number of segments.
  std::size_t segment_count() const noexcept { return log_.segment_count(); }

  // Returns the underlying SegmentedLog (for LowWaterMark and inspection).
  SegmentedLog<Storage>& log() noexcept { return log_; }
  const SegmentedLog<Storage>& log() const noexcept { return log_; }
  // Returns the codec.
  const C& codec() const noexcept { return codec_; }

  // The input iterator of ReplayRange: move-only, compared with std::default_sentinel.
  class Iterator {
   public:
    using value_type = WalEntry<Entry>;
    using difference_type = std::ptrdiff_t;
    using reference = const WalEntry<Entry>&;
    using iterator_concept = std::input_iterator_tag;

    Iterator() = default;
    Iterator(Iterator&&) noexcept = default;
    Iterator& operator=(Iterator&&) noexcept = default;

    const WalEntry<Entry>& operator*() const noexcept { return *current_; }
    const WalEntry<Entry>* operator->() const noexcept { return &*current_; }
    Iterator& operator++() {
      ++raw_;
      load();
      return *this;
    }
    void operator++(int) { ++*this; }
    friend bool operator==(const Iterator& it, std::default_sentinel_t) noexcept {
      return it.raw_ == std::default_sentinel;
    }

   private:
    friend class ReplayRange;
    Iterator(const WriteAheadLog* wal, std::uint64_t from)
        : wal_(wal), raw_(wal->log_.entries(from).begin()) {
      load();
    }
    void load() {
      current_.reset();
      if (raw_ == std::default_sentinel) return;
      current_.emplace(WalEntry<Entry>{raw_->index, wal_->decode(raw_->index, raw_->payload)});
    }

    const WriteAheadLog* wal_ = nullptr;
    typename SegmentedLog<Storage>::Iterator raw_;
    std::optional<WalEntry<Entry>> current_;
  };

  // A lazy input range over decoded entries; see replay().
  class ReplayRange {
   public:
    ReplayRange() = default;
    // Returns an iterator positioned on the first entry (reading and decoding it).
    Iterator begin() const { return Iterator(wal_, from_); }
    std::default_sentinel_t end() const noexcept { return {}; }

   private:
    friend class WriteAheadLog;
    ReplayRange(const WriteAheadLog* wal, std::uint64_t from) : wal_(wal), from_(from) {}
    const WriteAheadLog* wal_ = nullptr;
    std::uint64_t from_ = 1;
  };

 private:
  Entry decode(std::uint64_t index, std::span<const std::byte> bytes) const {
    try {
      return codec_.decode(bytes);
    } catch (const CorruptionError& e) {
      const std::optional<EntryLocation> at = log_.locate(index);
      throw CorruptionError(
          at ? detail::segment_location(log_.storage(), at->segment) : std::string("log"),
          at ? at->offset : 0, "entry " + std::to_string(index) + " does not decode: " + e.what());
    }
  }

  SegmentedLog<Storage> log_;
  C codec_;
  Buffer buffer_;
};

}  // namespace pods

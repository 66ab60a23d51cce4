// pods/storage/memory_storage.hpp — MemoryStorage, the SegmentStorage test double
//
// Problem:       Crash safety is the property a log exists for, and the hardest to test: a
//                real crash cannot be scheduled between two system calls, and a disk that
//                wrote half a record cannot be summoned on demand.
// Solution:      Segments live in memory, each with a "synced" mark. crash() keeps exactly
//                the synced bytes of every segment, as a power cut would; crash(true) also
//                keeps a random-length prefix of each segment's unsynced bytes, as a disk that
//                wrote part of them would. The random lengths come from a seeded pods::Random,
//                so a failing case replays with the same seed on every platform. Tests can also
//                install raw segment bytes and flip bits to simulate corruption.
// Guarantees:    As the SegmentStorage concept. Copies share one store (a test keeps one copy,
//                the log another). create, truncate and remove are durable at once.
// Not provided:  Persistence across processes; the cost model of a disk.
// Thread safety: thread-safe: every call locks the shared store.
// Errors:        Operations on a missing segment, and create of an existing one, throw
//                std::system_error (no_such_file_or_directory / file_exists) naming the
//                segment; truncate beyond the end and offsets past the end of a segment throw
//                std::invalid_argument naming the argument.
// Cost:          append: amortised O(n) copy into a std::vector; crash: O(segments).
// Example:
//   pods::MemoryStorage storage(/*seed=*/42);
//   pods::SegmentedLog log(storage);                 // the log holds a copy
//   log.append(bytes); log.sync(); log.append(more);
//   storage.crash(/*tear=*/true);                    // more may be cut anywhere, bytes survive
//   pods::SegmentedLog reopened(storage);            // recovery cuts the torn tail
// Example context: #include <pods/storage/segmented_log_core.hpp>
// Example context: std::vector<std::byte> bytes(8), more(8);
#pragma once

#include <pods/policy/random.hpp>
#include <pods/policy/storage.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

namespace pods {

class MemoryStorage {
 public:
  // Creates an empty store whose torn crashes draw from a generator seeded with `seed`.
  // Allocates the shared store.
  explicit MemoryStorage(std::uint64_t seed = 0) : store_(std::make_shared<Store>(seed)) {}

  // Returns the ids of the segments, ascending. Allocates.
  std::vector<std::uint64_t> list() const {
    std::lock_guard lock(store_->mutex);
    std::vector<std::uint64_t> ids;
    ids.reserve(store_->segments.size());
    for (const auto& [id, seg] : store_->segments)
      ids.push_back(id);
    return ids;
  }

  // Creates the empty segment `id` (durable at once). Throws std::system_error (file_exists)
  // naming the segment if it exists.
  void create(std::uint64_t id) {
    std::lock_guard lock(store_->mutex);
    if (store_->segments.count(id) != 0) fail(std::errc::file_exists, "create", id);
    store_->segments[id];
  }

  // Appends `bytes` (copied; not retained) to segment `id`; not durable until sync(id).
  // Allocates as the segment grows. Throws std::system_error naming a missing segment.
  void append(std::uint64_t id, std::span<const std::byte> bytes) {
    std::lock_guard lock(store_->mutex);
    Segment& seg = find(id, "append");
    seg.data.insert(seg.data.end(), bytes.begin(), bytes.end());
  }

  // Copies up to out.size() bytes of segment `id` from `offset` into `out` and returns how many
  // it copied. Throws std::system_error naming a missing segment.
  std::size_t read(std::uint64_t id, std::uint64_t offset, std::span<std::byte> out) const {
    std::lock_guard lock(store_->mutex);
    const Segment& seg = find(id, "read");
    if (offset >= seg.data.size()) return 0;
    const std::size_t n = std::min<std::size_t>(out.size(), seg.data.size() - offset);
    std::copy_n(seg.data.begin() + static_cast<std::ptrdiff_t>(offset), n, out.begin());
    return n;
  }

  // Returns the length of segment `id`, unsynced bytes included.
  std::uint64_t size(std::uint64_t id) const {
    std::lock_guard lock(store_->mutex);
    return find(id, "size").data.size();
  }

  // Marks every byte of segment `id` durable and counts one sync.
  void sync(std::uint64_t id) {
    std::lock_guard lock(store_->mutex);
    Segment& seg = find(id, "sync");
    seg.synced = seg.data.size();
    ++store_->syncs;
  }

  // Cuts segment `id` to `new_size` bytes (durable at once). Throws std::invalid_argument
  // naming new_size when it exceeds the segment's size.
  void truncate(std::uint64_t id, std::uint64_t new_size) {
    std::lock_guard lock(store_->mutex);
    Segment& seg = find(id, "truncate");
    if (new_size > seg.data.size()) {
      throw std::invalid_argument("MemoryStorage::truncate: new_size " + std::to_string(new_size) +
                                  " exceeds the size of segment " + segment_file_name(id));
    }
    seg.data.resize(static_cast<std::size_t>(new_size));
    seg.synced = std::min<std::size_t>(seg.synced, seg.data.size());
  }

  // Deletes segment `id` (durable at once).
  void remove(std::uint64_t id) {
    std::lock_guard lock(store_->mutex);
    find(id, "remove");
    store_->segments.erase(id);
  }

  // Returns the segment's file name, as FileStorage would name it. Allocates.
  std::string name(std::uint64_t id) const { return segment_file_name(id); }

  // Simulates a crash: every segment keeps exactly its synced bytes and, when `tear`, also a
  // prefix of its unsynced bytes whose length is drawn from the seeded generator. Any log open
  // on this storage must be discarded afterwards and reopened.
  void crash(bool tear = false) {
    std::lock_guard lock(store_->mutex);
    for (auto& [id, seg] : store_->segments) {
      std::size_t keep = seg.synced;
      if (tear && seg.data.size() > seg.synced) {
        keep += static_cast<std::size_t>(store_->random.below(seg.data.size() - seg.synced + 1));
      }
      seg.data.resize(keep);
      seg.synced = keep;
    }
  }

  // Returns how many times sync() has been called on any copy of this storage.
  std::uint64_t sync_count() const {
    std::lock_guard lock(store_->mutex);
    return store_->syncs;
  }

  // Returns how many bytes of segment `id` are synced (would survive crash()).
  std::uint64_t synced_size(std::uint64_t id) const {
    std::lock_guard lock(store_->mutex);
    return find(id, "synced_size").synced;
  }

  // Returns a copy of the bytes of segment `id`, unsynced ones included. Allocates.
  std::vector<std::byte> contents(std::uint64_t id) const {
    std::lock_guard lock(store_->mutex);
    return find(id, "contents").data;
  }

  // Installs segment `id` with exactly `bytes`, all of them synced, replacing any segment with
  // that id (for tests and fuzzers that feed raw segment files). Copies `bytes`.
  void put(std::uint64_t id, std::span<const std::byte> bytes) {
    std::lock_guard lock(store_->mutex);
    Segment& seg = store_->segments[id];
    seg.data.assign(bytes.begin(), bytes.end());
    seg.synced = seg.data.size();
  }

  // XORs the byte at `offset` of segment `id` with `mask` (a bit flip on the medium). Throws
  // std::invalid_argument naming offset when it is past the end of the segment.
  void corrupt(std::uint64_t id, std::uint64_t offset, std::byte mask = std::byte{0xFF}) {
    std::lock_guard lock(store_->mutex);
    Segment& seg = find(id, "corrupt");
    if (offset >= seg.data.size()) {
      throw std::invalid_argument("MemoryStorage::corrupt: offset " + std::to_string(offset) +
                                  " is past the end of segment " + segment_file_name(id));
    }
    seg.data[static_cast<std::size_t>(offset)] ^= mask;
  }

 private:
  struct Segment {
    std::vector<std::byte> data;
    std::size_t synced = 0;
  };
  struct Store {
    explicit Store(std::uint64_t seed) : random(seed) {}
    mutable std::mutex mutex;
    std::map<std::uint64_t, Segment> segments;
    Random random;  // pods::Random: the same draws on every standard library
    std::uint64_t syncs = 0;
  };

  [[noreturn]] static void fail(std::errc e, const char* operation, std::uint64_t id) {
    throw std::system_error(std::make_error_code(e), std::string("MemoryStorage: ") + operation +
                                                         " " + segment_file_name(id));
  }

  Segment& find(std::uint64_t id, const char* operation) const {
    auto it = store_->segments.find(id);
    if (it == store_->segments.end()) fail(std::errc::no_such_file_or_directory, operation, id);
    return it->second;
  }

  std::shared_ptr<Store> store_;
};
static_assert(SegmentStorage<MemoryStorage>);

}  // namespace pods

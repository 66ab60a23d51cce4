// Fuzzes SegmentedLog recovery: arbitrary bytes become one to four segment files of a
// MemoryStorage, and the log opens them. Opening must either succeed (cutting a torn tail) or
// throw pods::CorruptionError; any other exception, crash or sanitizer report is a bug. A log
// that opened must read back every entry, take an append, and reopen to the same state.
//
// Input: byte 0 holds the segment count - 1 (mod 4); then a 2-byte little-endian length for
// each segment but the last; then the segments' bytes (the last takes the rest). A segment is
// named for the first index in its header (bytes 8-15) when it has one, else for the next id.
#include <pods/policy/errors.hpp>
#include <pods/storage/memory_storage.hpp>
#include <pods/storage/segmented_log.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <span>
#include <stdexcept>
#include <vector>

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "segmented_log_fuzz: %s\n", what);
  std::abort();
}

using Log = pods::SegmentedLog<pods::MemoryStorage>;
constexpr pods::LogOptions options{.segment_bytes = 256};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto* bytes = reinterpret_cast<const std::byte*>(data);
  std::size_t count = 1 + data[0] % 4;
  std::size_t at = 1;
  std::vector<std::size_t> lengths;
  for (std::size_t k = 0; k + 1 < count; ++k) {
    if (at + 2 > size) {
      count = k + 1;
      break;
    }
    lengths.push_back(static_cast<std::size_t>(data[at]) | static_cast<std::size_t>(data[at + 1])
                                                               << 8);
    at += 2;
  }

  pods::MemoryStorage storage;
  std::set<std::uint64_t> ids;
  std::uint64_t next_id = 1;
  for (std::size_t k = 0; k < count; ++k) {
    const std::size_t left = size - at;
    const std::size_t length = k < lengths.size() && lengths[k] < left ? lengths[k] : left;
    const std::span<const std::byte> segment(bytes + at, length);
    at += length;
    std::uint64_t id = length >= 16 ? pods::detail::read_le64(segment.data() + 8) : next_id;
    if (ids.count(id) != 0) id = *ids.rbegin() + 1;
    ids.insert(id);
    storage.put(id, segment);
    next_id = id + 1;
  }

  std::uint64_t first = 0;
  std::uint64_t last = 0;
  try {
    Log log(storage, options);
    first = log.first_index();
    last = log.last_index();
  } catch (const pods::CorruptionError&) {
    return 0;  // reported, not crashed: the expected outcome for bad bytes before the tail
  }

  Log log(storage, options);  // what opened once opens again, to the same entries
  if (log.first_index() != first || log.last_index() != last) bug("reopen changed the log");
  if (log.tail_bytes_cut() != 0) bug("a second open cut a tail again");
  std::uint64_t expected = first;
  for (const pods::LogEntry& e : log.entries()) {
    if (e.index != expected) bug("entries() skipped an index");
    if (log.read(e.index)->payload != e.payload) bug("read() and entries() disagree");
    ++expected;
  }
  if (expected != last + 1) bug("entries() did not reach last_index()");

  if (last < Log::max_index) {
    const std::byte payload[3] = {std::byte{1}, std::byte{2}, std::byte{3}};
    if (log.append(payload) != last + 1) bug("append did not return last_index() + 1");
    log.sync();
    Log again(storage, options);
    if (again.last_index() != last + 1) bug("an appended, synced entry was lost on reopen");
    if (again.read(last + 1)->payload.size() != 3) bug("the appended entry came back changed");
  }
  return 0;
}

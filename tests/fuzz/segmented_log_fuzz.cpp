// Fuzzes SegmentedLog recovery in two modes, chosen by bit 7 of byte 0.
//
// Raw segments (bit 7 clear): arbitrary bytes become one to four segment files of a
// MemoryStorage, and the log opens them. Opening must either succeed (cutting a torn tail) or
// throw pods::CorruptionError; any other exception, crash or sanitizer report is a bug. A log
// that opened must read back every entry, take an append, and reopen to the same state.
// Input: byte 0 holds the segment count - 1 (mod 4); then a 2-byte little-endian length for
// each segment but the last; then the segments' bytes (the last takes the rest). A segment is
// named for the first index in its header (bytes 8-15) when it has one, else for the next id.
//
// Operations (bit 7 set): the rest of the input is a program of appends, syncs, torn crashes
// and truncations run against a model, followed by one bit flip anywhere in the stored log.
// Every reopen must keep every entry a sync covered, with its bytes, and hold only a prefix of
// what was appended. After the flip the log must throw CorruptionError or keep every synced
// entry, except for the stated limit: a flip inside the final record of the last segment may
// cut that record (and only it).
#include <pods/policy/errors.hpp>
#include <pods/storage/memory_storage.hpp>
#include <pods/storage/segmented_log_core.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <set>
#include <span>
#include <stdexcept>
#include <utility>
#include <vector>

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "segmented_log_fuzz: %s\n", what);
  std::abort();
}

using Log = pods::SegmentedLog<pods::MemoryStorage>;
constexpr pods::LogOptions options{.segment_bytes = 256};

void raw_segments(const std::uint8_t* data, std::size_t size) {
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
    return;  // reported, not crashed: the expected outcome for bad bytes before the tail
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
}

// Checks that `log` holds model[0..] as a prefix (index k + 1 holds model[k]) of at least
// `keep` entries.
void check_prefix(const Log& log, const std::vector<std::vector<std::byte>>& model,
                  std::uint64_t keep) {
  if (log.first_index() != 1) bug("the log lost its first entries");
  if (log.last_index() < keep) bug("a synced entry was lost");
  if (log.last_index() > model.size()) bug("the log holds entries never appended");
  std::uint64_t expected = 1;
  for (const pods::LogEntry& e : log.entries()) {
    if (e.index != expected || e.payload != model[e.index - 1]) bug("an entry came back changed");
    ++expected;
  }
  if (expected != log.last_index() + 1) bug("entries() did not reach last_index()");
}

void operations(const std::uint8_t* data, std::size_t size) {
  pods::MemoryStorage storage(data[0]);
  std::vector<std::vector<std::byte>> model;  // payload of index k + 1 at [k]
  std::uint64_t synced = 0;
  std::size_t at = 1;
  auto next = [&]() -> std::uint8_t { return at < size ? data[at++] : 0; };
  {
    auto log = std::make_unique<Log>(storage, options);
    while (at + 3 < size) {
      const std::uint8_t op = next();
      switch (op % 8) {
        case 0:
        case 1:
        case 2:
        case 3: {
          std::vector<std::byte> p(next() % 60);
          for (auto& b : p)
            b = static_cast<std::byte>(next());
          log->append(p);
          model.push_back(std::move(p));
          break;
        }
        case 4:
        case 5:
          log->sync();
          synced = log->last_index();
          break;
        case 6: {  // a crash, torn or not, and a reopen
          log.reset();
          storage.crash(op & 8);
          log = std::make_unique<Log>(storage, options);
          check_prefix(*log, model, synced);
          model.resize(log->last_index());
          synced = log->last_index();  // every entry still there survived a crash
          break;
        }
        default: {  // truncate_after
          const std::uint64_t keep = log->last_index() == 0 ? 0 : next() % (log->last_index() + 1);
          log->truncate_after(keep);
          model.resize(log->last_index());
          if (synced > keep) synced = keep;
          break;
        }
      }
    }
    log->sync();
    synced = log->last_index();
  }
  if (model.empty()) return;

  // One bit flip anywhere in the stored log.
  const std::vector<std::uint64_t> ids = storage.list();
  const std::uint64_t id = ids[next() % ids.size()];
  const std::uint64_t segment_size = storage.size(id);
  std::uint64_t final_offset = 0;
  {
    Log log(storage, options);
    check_prefix(log, model, synced);
    final_offset = log.locate(log.last_index()) ? log.locate(log.last_index())->offset : 0;
  }
  if (segment_size == 0) return;
  const std::uint64_t offset = (static_cast<std::uint64_t>(next()) << 8 | next()) % segment_size;
  storage.corrupt(id, offset, static_cast<std::byte>(1u << (next() % 8)));
  const bool in_final_record = id == ids.back() && final_offset != 0 && offset >= final_offset;
  try {
    Log log(storage, options);
    check_prefix(log, model, in_final_record ? synced - 1 : synced);
  } catch (const pods::CorruptionError&) {
    // reported: allowed for any damage
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  if (data[0] & 0x80) {
    operations(data, size);
  } else {
    raw_segments(data, size);
  }
  return 0;
}

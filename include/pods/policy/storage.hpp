// pods/policy/storage.hpp — the SegmentStorage policy
//
// Problem:       A log that writes files directly can only be tested for crash safety by
//                killing processes and pulling plugs; a log that hides its I/O behind a
//                virtual interface pays for an indirect call on every append.
// Solution:      The log takes its storage as a policy: a cheap value handle over a set of
//                append-only segments, each named by a 64-bit id (SegmentedLog uses the
//                segment's first index). FileStorage keeps them as files in a directory;
//                MemoryStorage keeps them in memory and can simulate a crash that loses
//                every byte not yet synced (and, torn, part of them).
// Guarantees:    See the semantic requirements above the concept.
// Not provided:  Any structure inside a segment: it is a byte string; records, checksums and
//                recovery belong to the log.
// Thread safety: depends on the model (FileStorage: thread-compatible, MemoryStorage:
//                thread-safe); copies of one storage are one object for this purpose.
// Errors:        I/O failures throw std::system_error naming the path (or segment) and the
//                operation.
// Cost:          as the model.
// Example:
//   template <pods::SegmentStorage S> void dump(const S& s) {
//     for (std::uint64_t id : s.list()) std::cout << s.name(id) << " " << s.size(id) << "\n";
//   }
// Example scope: namespace
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pods {

// A SegmentStorage holds append-only byte strings ("segments") identified by a 64-bit id.
// Semantic requirements the compiler cannot check:
//   - it is a cheap, copyable handle: copies refer to the same segments (a test keeps one copy,
//     the log another);
//   - `list()` returns the ids of the existing segments in ascending order;
//   - `create(id)` makes a new empty segment; it throws std::system_error if `id` exists. When
//     it returns, the segment's existence is durable (survives a crash);
//   - `append(id, bytes)` adds bytes at the end of the segment; they are NOT durable until
//     `sync(id)` returns, and a crash may keep any prefix of them;
//   - `read(id, offset, out)` copies up to out.size() bytes starting at `offset` into `out`
//     and returns how many it copied (fewer only at the end of the segment); it sees every
//     appended byte, synced or not; const reads may run concurrently with each other;
//   - `size(id)` returns the segment's length, appended bytes included;
//   - `sync(id)` makes every byte appended to the segment so far durable;
//   - `truncate(id, size)` cuts the segment to `size` bytes (size <= size(id)); durable on
//     return: a crash never brings the cut bytes back;
//   - `remove(id)` deletes the segment; durable on return;
//   - `name(id)` returns the name used in error messages (the file name).
// Operations on an id that does not exist throw std::system_error.
// Optional members, used by SegmentedLog when present:
//   - `path(id)` returning something with `.string()` (FileStorage: the file's full path):
//     CorruptionError names the segment by it, so the message says which directory;
//   - `acquire_writer()` / `release_writer() noexcept`: the log claims the storage for its
//     lifetime; acquire_writer throws when a writer already holds it (a second log on a copy
//     of the same storage would append the same indices and lose synced entries).
// clang-format off
template <class S>
concept SegmentStorage = std::copy_constructible<S> &&
  requires(S& s, const S& cs, std::uint64_t id, std::uint64_t n,
           std::span<const std::byte> in, std::span<std::byte> out) {
    { cs.list() } -> std::same_as<std::vector<std::uint64_t>>;
    s.create(id);
    s.append(id, in);
    { cs.read(id, n, out) } -> std::same_as<std::size_t>;
    { cs.size(id) } -> std::same_as<std::uint64_t>;
    s.sync(id);
    s.truncate(id, n);
    s.remove(id);
    { cs.name(id) } -> std::convertible_to<std::string>;
  };
// clang-format on

// Returns the file name of the segment with id `id`: the id zero-padded to 20 digits followed
// by ".log" (e.g. "00000000000000000001.log"), so a directory listing is the log's order.
// Allocates the string.
inline std::string segment_file_name(std::uint64_t id) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%020llu.log", static_cast<unsigned long long>(id));
  return buffer;
}

// Returns the id named by a segment file name ("00000000000000000042.log" -> 42), or nullopt
// when `name` is not exactly 20 decimal digits followed by ".log". Never allocates.
inline std::optional<std::uint64_t> parse_segment_file_name(std::string_view name) noexcept {
  if (name.size() != 24 || name.substr(20) != ".log") return std::nullopt;
  std::uint64_t id = 0;
  for (std::size_t i = 0; i < 20; ++i) {
    const char c = name[i];
    if (c < '0' || c > '9') return std::nullopt;
    const std::uint64_t digit = static_cast<std::uint64_t>(c - '0');
    if (id > (UINT64_MAX - digit) / 10) return std::nullopt;  // more than 2^64 - 1
    id = id * 10 + digit;
  }
  return id;
}

}  // namespace pods

// pods/partitioning/key_range_partitions.hpp — Key-Range Partitions: sorted ranges of keys
//
// Problem:       Hash partitioning scatters neighbouring keys, so a range query ("every order
//                of customer 42", "the keys from a to f") asks every partition. And a fixed
//                cut of the key space cannot follow the data: one busy range outgrows its
//                node while others stay empty.
// Solution:      The key space (std::string keys compared as bytes, from "" to +infinity) is
//                cut into contiguous ranges [start, end), kept sorted by start; the first
//                starts at "" and the last is unbounded. A key's range is the last one whose
//                start is not after it: a binary search over the sorted starts. A range query
//                [a, b) is the run of ranges from a's range to the one holding the last key
//                before b. A range that grows is split in two, at a key chosen by the caller
//                or at the key that best balances a sample of its keys (each weighing one, or
//                what the caller's size callback says); two neighbours merge into one.
//                Every range has a RangeId that stays with it (the left part of a split and
//                the result of a merge keep the left id; the right part of a split gets a new
//                one), so a caller can keep per-range state such as its owner.
// Guarantees:    The ranges never overlap and never leave a gap: ranges()[0] starts at "",
//                each ends where the next starts, the last is unbounded (invariants_hold()
//                checks it, and a randomised test checks it after every operation). route(key)
//                returns the one range containing key. route_range(a, b) returns exactly the
//                ranges that intersect [a, b), in key order. Ids are never reused.
// Not provided:  Moving the data or assigning ranges to nodes (keep the assignment beside the
//                ids, e.g. in a consistent core); splitting by load or time; agreement on the
//                layout between nodes.
// Thread safety: thread-compatible: a value type; const members may be called concurrently.
// Errors:        Split points that are empty, unsorted or repeated; a split key outside its
//                range or at its start; an unknown range id; merging ranges that are not
//                neighbours; a range query whose begin is after its end; a sample key outside
//                the range: std::invalid_argument naming the argument and the rule.
// Cost:          route: O(log n) comparisons of 8-byte key prefixes held in a dense array
//                (a string comparison only when two prefixes are equal), no allocation.
//                route_range: O(log n + k) for k ranges, allocates the result. split and merge:
//                O(n) (the sorted arrays shift; n = 10 000 moves microseconds), allocate.
//                split_by_size: sorts the sample, O(s log s).
// Example:
//   pods::KeyRangePartitions ranges;                   // one range: ["", +infinity)
//   const auto [left, right] = ranges.split(ranges.route("m"), "m");
//   assert(ranges.route("apple") == left && ranges.route("zebra") == right);
//   const std::vector<pods::RangeId> hit = ranges.route_range("k", "p");
//   assert((hit == std::vector<pods::RangeId>{left, right}));
//   assert(ranges.merge(left, right) == left && ranges.size() == 1);
// Example context: #include <cassert>
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pods {

using RangeId = std::uint64_t;

// A range of keys [start, end); no end: unbounded above.
struct KeyRange {
  std::string start;
  std::optional<std::string> end;

  // Returns true when `key` is in the range. No allocation; never throws.
  bool contains(std::string_view key) const noexcept {
    return key >= start && (!end || key < std::string_view(*end));
  }

  friend bool operator==(const KeyRange&, const KeyRange&) = default;
};

// What split_by_size did: the two ranges, the split key and the sizes on each side.
struct SizeSplit {
  RangeId left = 0, right = 0;
  std::string key;
  std::uint64_t left_size = 0, right_size = 0;
};

class KeyRangePartitions {
 public:
  // Creates one range covering every key, with id 0. Allocates.
  KeyRangePartitions() : starts_{std::string()}, prefixes_{0}, ids_{0}, next_id_(1) {}

  // Creates the ranges ["", p0), [p0, p1), ..., [pn, +infinity) with ids 0, 1, ... in order.
  // Copies the points. Allocates. Throws std::invalid_argument naming split points when one is
  // empty or they are not strictly ascending.
  explicit KeyRangePartitions(std::span<const std::string> split_points) : KeyRangePartitions() {
    for (std::size_t i = 0; i < split_points.size(); ++i) {
      if (split_points[i].empty())
        throw std::invalid_argument("KeyRangePartitions: split points must not be empty strings");
      if (i > 0 && !(split_points[i - 1] < split_points[i]))
        throw std::invalid_argument(
            "KeyRangePartitions: split points must be strictly ascending (\"" + split_points[i] +
            "\" after \"" + split_points[i - 1] + "\")");
      starts_.push_back(split_points[i]);
      prefixes_.push_back(prefix(split_points[i]));
      ids_.push_back(next_id_++);
    }
  }

  // Returns the number of ranges (at least 1).
  std::size_t size() const noexcept { return ids_.size(); }

  // Returns the id of the range containing `key`. O(log n), no allocation; never throws.
  RangeId route(std::string_view key) const noexcept { return ids_[index_of(key)]; }

  // Returns the ids of the ranges that intersect [begin, end), in key order (no end: up to
  // +infinity); empty when begin == end. Allocates the result. Throws std::invalid_argument
  // naming begin when it is after end.
  std::vector<RangeId> route_range(std::string_view begin,
                                   std::optional<std::string_view> end = std::nullopt) const {
    if (end && begin > *end)
      throw std::invalid_argument("KeyRangePartitions: route_range: begin \"" + std::string(begin) +
                                  "\" must not be after end \"" + std::string(*end) + "\"");
    if (end && begin == *end) return {};
    const std::size_t first = index_of(begin);
    // The last range that starts before `end`: [start, ...) meets [begin, end) iff start < end.
    const std::size_t last = end ? first_start(*end, false) - 1 : ids_.size() - 1;
    return std::vector<RangeId>(ids_.begin() + static_cast<std::ptrdiff_t>(first),
                                ids_.begin() + static_cast<std::ptrdiff_t>(last) + 1);
  }

  // Returns the range `id` covers. Allocates (copies the bounds). Throws std::invalid_argument
  // naming the id when there is no such range.
  KeyRange range(RangeId id) const { return range_at(position(id)); }

  // Returns every range in key order with its id. Allocates.
  std::vector<std::pair<RangeId, KeyRange>> ranges() const {
    std::vector<std::pair<RangeId, KeyRange>> all;
    all.reserve(ids_.size());
    for (std::size_t i = 0; i < ids_.size(); ++i)
      all.emplace_back(ids_[i], range_at(i));
    return all;
  }

  // Splits range `id` at `key`: it keeps [start, key) and a new range [key, end) is returned as
  // the second id. Allocates. Throws std::invalid_argument naming the id when unknown, and the
  // split key when it is outside the range or is its start (which would leave an empty range).
  std::pair<RangeId, RangeId> split(RangeId id, std::string_view key) {
    const std::size_t i = position(id);
    if (key == starts_[i])
      throw std::invalid_argument("KeyRangePartitions: split key \"" + std::string(key) +
                                  "\" is the start of range " + std::to_string(id));
    if (!range_at(i).contains(key))
      throw std::invalid_argument("KeyRangePartitions: split key \"" + std::string(key) +
                                  "\" is outside range " + std::to_string(id) + " " +
                                  describe(range_at(i)));
    starts_.insert(starts_.begin() + static_cast<std::ptrdiff_t>(i) + 1, std::string(key));
    prefixes_.insert(prefixes_.begin() + static_cast<std::ptrdiff_t>(i) + 1, prefix(key));
    ids_.insert(ids_.begin() + static_cast<std::ptrdiff_t>(i) + 1, next_id_);
    return {id, next_id_++};
  }

  // Splits range `id` when the sample's total size is above `threshold`, at the sample key
  // that makes the two sides' sizes closest (ties: the smaller key), and returns what it did;
  // returns nullopt and changes nothing when the total is at most the threshold or no sample
  // key other than the range's start exists. `sample` holds keys of the range (each counted
  // once per occurrence); `size_of(key)` gives each key's size (default: 1). Allocates.
  // Throws std::invalid_argument naming the id when unknown and the sample when a key lies
  // outside the range; rethrows what size_of throws.
  std::optional<SizeSplit> split_by_size(
      RangeId id, std::uint64_t threshold, std::span<const std::string> sample,
      const std::function<std::uint64_t(std::string_view)>& size_of = {}) {
    const std::size_t i = position(id);
    const KeyRange r = range_at(i);
    std::vector<std::pair<std::string_view, std::uint64_t>> keys;
    std::uint64_t total = 0;
    for (const std::string& k : sample) {
      if (!r.contains(k))
        throw std::invalid_argument("KeyRangePartitions: sample key \"" + k +
                                    "\" is outside range " + std::to_string(id) + " " +
                                    describe(r));
      const std::uint64_t w = size_of ? size_of(k) : 1;
      keys.emplace_back(k, w);
      total += w;
    }
    if (total <= threshold) return std::nullopt;
    std::sort(keys.begin(), keys.end());
    // Candidate split keys are the distinct sample keys after the start; left = sizes before.
    std::optional<SizeSplit> best;
    std::uint64_t left = 0;
    for (std::size_t k = 0; k < keys.size(); ++k) {
      if ((k == 0 || keys[k].first != keys[k - 1].first) && keys[k].first != r.start) {
        const std::uint64_t right = total - left;
        const std::uint64_t gap = left > right ? left - right : right - left;
        const std::uint64_t best_gap =
            best ? (best->left_size > best->right_size ? best->left_size - best->right_size
                                                       : best->right_size - best->left_size)
                 : UINT64_MAX;
        if (gap < best_gap) best = SizeSplit{id, 0, std::string(keys[k].first), left, right};
      }
      left += keys[k].second;
    }
    if (!best) return std::nullopt;
    best->right = split(id, best->key).second;
    return best;
  }

  // Merges range `left` with `right`, the range that starts where it ends; the result keeps
  // the id `left` and is returned. Allocates nothing. Throws std::invalid_argument naming the
  // ids when one is unknown or right is not left's right-hand neighbour.
  RangeId merge(RangeId left, RangeId right) {
    const std::size_t i = position(left);
    const std::size_t j = position(right);
    if (j != i + 1)
      throw std::invalid_argument("KeyRangePartitions: range " + std::to_string(right) +
                                  " is not the right-hand neighbour of range " +
                                  std::to_string(left));
    starts_.erase(starts_.begin() + static_cast<std::ptrdiff_t>(j));
    prefixes_.erase(prefixes_.begin() + static_cast<std::ptrdiff_t>(j));
    ids_.erase(ids_.begin() + static_cast<std::ptrdiff_t>(j));
    return left;
  }

  // Returns true when the ranges cover the key space exactly once: the first starts at "",
  // the starts ascend strictly (each range ends where the next starts, so no overlap and no
  // gap), and the ids are distinct. O(n log n); allocates.
  bool invariants_hold() const {
    if (starts_.empty() || starts_.size() != ids_.size() || starts_.size() != prefixes_.size() ||
        !starts_[0].empty())
      return false;
    for (std::size_t i = 0; i < starts_.size(); ++i)
      if (prefixes_[i] != prefix(starts_[i]) || (i > 0 && !(starts_[i - 1] < starts_[i])))
        return false;
    std::vector<RangeId> ids = ids_;
    std::sort(ids.begin(), ids.end());
    return std::adjacent_find(ids.begin(), ids.end()) == ids.end();
  }

 private:
  // Returns the first 8 bytes of `key` as a big-endian number, zero-padded: comparing two
  // prefixes orders the keys whenever the prefixes differ.
  static std::uint64_t prefix(std::string_view key) noexcept {
    std::uint64_t p = 0;
    for (std::size_t i = 0; i < 8; ++i)
      p = (p << 8) | (i < key.size() ? static_cast<unsigned char>(key[i]) : 0u);
    return p;
  }

  // Returns the index of the first start after `key` (`after`) or not before it (otherwise);
  // starts_.size() when none. A binary search that compares the 8-byte prefixes (one integer
  // comparison in a dense array) and reads the strings only when the prefixes are equal.
  std::size_t first_start(std::string_view key, bool after) const noexcept {
    const std::uint64_t kp = prefix(key);
    std::size_t lo = 0, n = starts_.size();
    while (n > 0) {
      const std::size_t half = n / 2;
      const std::size_t mid = lo + half;
      const int c = prefixes_[mid] != kp ? (prefixes_[mid] < kp ? -1 : 1)
                                         : std::string_view(starts_[mid]).compare(key);
      if (c < 0 || (after && c == 0)) {
        lo = mid + 1;
        n -= half + 1;
      } else {
        n = half;
      }
    }
    return lo;
  }

  std::size_t index_of(std::string_view key) const noexcept {
    // The last start not after key; starts_[0] == "" is never after any key.
    return first_start(key, true) - 1;
  }

  std::size_t position(RangeId id) const {
    const auto it = std::find(ids_.begin(), ids_.end(), id);
    if (it == ids_.end())
      throw std::invalid_argument("KeyRangePartitions: range " + std::to_string(id) +
                                  " does not exist");
    return static_cast<std::size_t>(it - ids_.begin());
  }

  KeyRange range_at(std::size_t i) const {
    KeyRange r{starts_[i], std::nullopt};
    if (i + 1 < starts_.size()) r.end = starts_[i + 1];
    return r;
  }

  static std::string describe(const KeyRange& r) {
    return "[\"" + r.start + "\", " + (r.end ? "\"" + *r.end + "\"" : std::string("+infinity")) +
           ")";
  }

  std::vector<std::string> starts_;      // ascending; starts_[0] == ""
  std::vector<std::uint64_t> prefixes_;  // prefixes_[i] == prefix(starts_[i])
  std::vector<RangeId> ids_;             // ids_[i] covers [starts_[i], starts_[i + 1])
  RangeId next_id_ = 0;
};

}  // namespace pods

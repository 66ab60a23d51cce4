// pods/time/version_vector.hpp — Version Vector
//
// Problem:       When several servers accept writes to the same key, a single number
//                (Lamport or hybrid timestamp) orders every pair of updates, even two that
//                were made without either server knowing of the other: one of them is then
//                silently lost by last-writer-wins.
// Solution:      Each update carries a vector with one counter per node: the node increments
//                its own entry on each update and merges (pointwise maximum) the vectors it
//                receives. A vector that is >= another in every entry descends from it (saw
//                it); if each is ahead of the other somewhere, the updates are concurrent and
//                both must be kept or reconciled.
// Guarantees:    a <=> b is less (a happened before b), greater, equivalent (equal) or
//                unordered (concurrent), exactly by the pointwise comparison, with an absent
//                node read as 0. merge() is the pointwise maximum (commutative, associative,
//                idempotent). entries() lists only non-zero counters, ordered by node.
// Not provided:  Pruning of nodes that left the cluster (vectors grow with the number of
//                writers). Conflict resolution: concurrent() tells you there is a conflict,
//                not which value wins.
// Thread safety: thread-compatible (a value type).
// Errors:        increment() throws std::overflow_error when the node's counter is at the
//                maximum of Counter (never, in practice, for std::uint64_t); it and merge()
//                may throw std::bad_alloc.
// Cost:          A sorted flat vector of (node, counter) pairs: get/increment O(log n) plus an
//                insertion for a new node; merge, descends, ==, <=> one linear pass; merge of
//                vectors over the same nodes allocates nothing.
// Example:
//   pods::VersionVector<> a{{"n1", 2}}, b{{"n1", 1}, {"n2", 1}};
//   assert(pods::concurrent(a, b));     // n1 saw more of n1, n2 saw an n2 update
//   a.merge(b).increment("n1");         // reconcile on n1: {n1: 3, n2: 1}
//   assert(a > b);
#pragma once

#include <compare>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods {

// VersionVector: one counter per node, compared pointwise.
template <std::totally_ordered NodeId = std::string, std::unsigned_integral Counter = std::uint64_t>
class VersionVector {
 public:
  using node_type = NodeId;
  using counter_type = Counter;
  using entry_type = std::pair<NodeId, Counter>;

  // Creates an empty vector (every counter 0).
  VersionVector() = default;

  // Creates a vector from (node, counter) pairs in any order; a node listed twice keeps the
  // larger counter, zero counters are dropped. Allocates.
  VersionVector(std::initializer_list<std::pair<const NodeId, Counter>> entries) {
    entries_.reserve(entries.size());
    for (const auto& [node, counter] : entries) {
      if (counter == 0) continue;
      auto it = find(node);
      if (it != entries_.end() && it->first == node) {
        if (it->second < counter) it->second = counter;
      } else {
        entries_.insert(it, entry_type(node, counter));
      }
    }
  }

  // Records an update made by `node`: increments its counter and returns the new value.
  // Allocates when the node is new. Throws std::overflow_error at Counter's maximum.
  Counter increment(const NodeId& node) {
    auto it = find(node);
    if (it != entries_.end() && it->first == node) {
      if (it->second == std::numeric_limits<Counter>::max()) {
        throw std::overflow_error("VersionVector::increment: the node's counter is at its maximum");
      }
      return ++it->second;
    }
    entries_.insert(it, entry_type(node, Counter{1}));
    return Counter{1};
  }

  // Returns the counter of `node`, 0 where absent. Never allocates.
  Counter get(const NodeId& node) const {
    auto it = find(node);
    return it != entries_.end() && it->first == node ? it->second : Counter{0};
  }

  // Merges `other` into this vector (pointwise maximum) and returns *this. Allocates only
  // when `other` has nodes this vector lacks.
  VersionVector& merge(const VersionVector& other) {
    // Fast path: every node of `other` is already here, so the maxima go in place.
    auto mine = entries_.begin();
    bool missing = false;
    for (const auto& [node, counter] : other.entries_) {
      while (mine != entries_.end() && mine->first < node)
        ++mine;
      if (mine == entries_.end() || node < mine->first) {
        missing = true;
        break;
      }
      if (mine->second < counter) mine->second = counter;
      ++mine;
    }
    if (!missing) return *this;
    std::vector<entry_type> merged;
    merged.reserve(entries_.size() + other.entries_.size());
    auto a = entries_.begin();
    auto b = other.entries_.begin();
    while (a != entries_.end() || b != other.entries_.end()) {
      if (b == other.entries_.end() || (a != entries_.end() && a->first < b->first)) {
        merged.push_back(std::move(*a++));
      } else if (a == entries_.end() || b->first < a->first) {
        merged.push_back(*b++);
      } else {
        merged.emplace_back(std::move(a->first), a->second < b->second ? b->second : a->second);
        ++a;
        ++b;
      }
    }
    entries_ = std::move(merged);
    return *this;
  }

  // Returns true when every counter here is >= the other's (this vector has seen every
  // update the other has). Never allocates.
  bool descends(const VersionVector& other) const {
    const auto order = compare(*this, other);
    return order == std::partial_ordering::greater || order == std::partial_ordering::equivalent;
  }

  // Returns the number of nodes with a non-zero counter.
  std::size_t size() const noexcept { return entries_.size(); }

  // Returns the (node, counter) pairs with a non-zero counter, ordered by node. The span is
  // invalidated by the next increment or merge.
  std::span<const entry_type> entries() const noexcept { return entries_; }

  // Returns true when every counter is equal (an absent node counts as 0).
  friend bool operator==(const VersionVector& a, const VersionVector& b) {
    return a.entries_ == b.entries_;  // zeros are never stored, so the lists are canonical
  }

  // Returns less (a happened before b), greater (after), equivalent (equal) or unordered
  // (concurrent).
  friend std::partial_ordering operator<=>(const VersionVector& a, const VersionVector& b) {
    return compare(a, b);
  }

 private:
  // Returns the first entry whose node is not less than `node` (a binary search; written out
  // so this header does not pay for compiling <algorithm>).
  template <class Iterator>
  static Iterator lower_bound(Iterator first, std::size_t count, const NodeId& node) {
    while (count > 0) {
      const std::size_t half = count / 2;
      if (first[half].first < node) {
        first += half + 1;
        count -= half + 1;
      } else {
        count = half;
      }
    }
    return first;
  }
  auto find(const NodeId& node) { return lower_bound(entries_.begin(), entries_.size(), node); }
  auto find(const NodeId& node) const {
    return lower_bound(entries_.begin(), entries_.size(), node);
  }

  static std::partial_ordering compare(const VersionVector& a, const VersionVector& b) {
    bool a_ahead = false;  // some counter of a is larger
    bool b_ahead = false;
    auto x = a.entries_.begin();
    auto y = b.entries_.begin();
    while (x != a.entries_.end() && y != b.entries_.end()) {
      if (x->first < y->first) {
        a_ahead = true;
        ++x;
      } else if (y->first < x->first) {
        b_ahead = true;
        ++y;
      } else {
        if (x->second > y->second) a_ahead = true;
        if (y->second > x->second) b_ahead = true;
        ++x;
        ++y;
      }
      if (a_ahead && b_ahead) return std::partial_ordering::unordered;
    }
    if (x != a.entries_.end()) a_ahead = true;
    if (y != b.entries_.end()) b_ahead = true;
    if (a_ahead && b_ahead) return std::partial_ordering::unordered;
    if (a_ahead) return std::partial_ordering::greater;
    if (b_ahead) return std::partial_ordering::less;
    return std::partial_ordering::equivalent;
  }

  std::vector<entry_type> entries_;  // sorted by node; counters are never 0
};

// Returns true when neither vector descends from the other: the updates they stamp were made
// concurrently.
template <class N, class C>
bool concurrent(const VersionVector<N, C>& a, const VersionVector<N, C>& b) {
  return (a <=> b) == std::partial_ordering::unordered;
}

}  // namespace pods

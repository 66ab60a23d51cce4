// pods/storage/versioned_value.hpp — Versioned Value
//
// Problem:       A store that overwrites a key in place cannot answer "what was the value at
//                version v?", which snapshot reads, multi-version concurrency control and
//                follower reads at a safe timestamp all need; and a delete that just removes
//                the key lets an older, delayed write resurrect it.
// Solution:      Keep every version of a key, ordered by version (a Lamport timestamp, a
//                HybridTimestamp, any totally ordered type). A read at version v returns the
//                newest version <= v. A delete writes a tombstone version. Compaction drops
//                the versions no read at or after a given version can see.
// Guarantees:    get(key, at) returns the newest stored version <= at, or nothing when that
//                version is a tombstone or none exists; get(key) reads the newest. Writes may
//                arrive in any version order; put or erase of an existing (key, version)
//                replaces it. history(key) lists the live versions, oldest first. After
//                compact(before), every read at a version >= before returns what it returned
//                before the compaction.
// Not provided:  Durability (put it behind a WriteAheadLog) and thread safety (run it on a
//                SingularUpdateQueue or lock it). Reads at a version < before after
//                compact(before) may see less than they did.
// Thread safety: thread-compatible. history() returns a view into the store: iterate it
//                before the next mutation.
// Errors:        put/erase may throw std::bad_alloc (and whatever copying Key or Value throws);
//                reads never throw except when copying Value throws.
// Cost:          std::map of keys, each with a vector of versions sorted by version: get at a
//                version O(log keys + log versions); put/erase O(log keys) for the newest
//                version (an append), plus a vector insertion for an older one; history O(1)
//                to create; compact O(total versions); size O(1).
// Example:
//   pods::VersionedStore<std::string, std::string> store;
//   store.put("colour", "red", 1);
//   store.put("colour", "blue", 5);
//   store.get("colour", 3)->value;          // "red": the newest version <= 3
//   store.erase("colour", 7);               // tombstone: reads at >= 7 see nothing
//   store.compact(6);                       // drops version 1; version 5 stays for reads at 6
#pragma once

#include <range/v3/view/filter.hpp>
#include <range/v3/view/subrange.hpp>
#include <range/v3/view/transform.hpp>

#include <algorithm>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <utility>
#include <vector>

namespace pods {

// VersionedValue: a value together with the version that wrote it.
template <class Value, class Version = std::uint64_t>
struct VersionedValue {
  Value value;
  Version version;
  friend bool operator==(const VersionedValue&, const VersionedValue&) = default;
};

// VersionedStore: every version of every key, readable at any version.
template <class Key, class Value, std::totally_ordered Version = std::uint64_t>
class VersionedStore {
  struct Entry {
    Version version;
    std::optional<Value> value;  // nullopt: a tombstone
  };

 public:
  using key_type = Key;
  using value_type = Value;
  using version_type = Version;

  // Stores `value` as `key` at `version`; the same (key, version) again replaces the value
  // (or the tombstone). Retains the key and value. Allocates.
  void put(Key key, Value value, Version version) {
    write(std::move(key), std::move(version), std::optional<Value>(std::move(value)));
  }

  // Writes a tombstone for `key` at `version`: reads at >= version (until a newer put) see
  // nothing. Recorded even when the key has no older version, so a delayed older put cannot
  // become the newest. Allocates.
  void erase(Key key, Version version) { write(std::move(key), std::move(version), std::nullopt); }

  // Returns the newest value of `key`, or nothing when the key is absent or its newest version
  // is a tombstone. Copies the value.
  std::optional<Value> get(const Key& key) const {
    auto it = keys_.find(key);
    if (it == keys_.end()) return std::nullopt;
    return it->second.back().value;
  }

  // Returns the newest version of `key` with version <= at (value and version), or nothing
  // when there is none or it is a tombstone. Copies the value.
  std::optional<VersionedValue<Value, Version>> get(const Key& key, const Version& at) const {
    auto it = keys_.find(key);
    if (it == keys_.end()) return std::nullopt;
    const std::vector<Entry>& versions = it->second;
    auto after = std::upper_bound(versions.begin(), versions.end(), at,
                                  [](const Version& v, const Entry& e) { return v < e.version; });
    if (after == versions.begin()) return std::nullopt;
    const Entry& found = *(after - 1);
    if (!found.value) return std::nullopt;
    return VersionedValue<Value, Version>{*found.value, found.version};
  }

  // Returns the live versions of `key` (tombstones skipped), oldest first, as a view of
  // VersionedValue (each copied as it is read). Empty for an absent key. The view refers to the
  // store: iterate it before the next put, erase or compact. Never allocates to create.
  auto history(const Key& key) const {
    const Entry* first = nullptr;
    const Entry* last = nullptr;
    if (auto it = keys_.find(key); it != keys_.end()) {
      first = it->second.data();
      last = first + it->second.size();
    }
    return ranges::subrange<const Entry*>(first, last) |
           ranges::views::filter([](const Entry& e) { return e.value.has_value(); }) |
           ranges::views::transform([](const Entry& e) {
             return VersionedValue<Value, Version>{*e.value, e.version};
           });
  }

  // Drops every version that no read at a version >= before can see: for each key, all
  // versions older than the newest version <= before, and that one too when it is a
  // tombstone. Returns how many versions were dropped (tombstones count). Keys left with no
  // version are removed. Never allocates.
  std::size_t compact(const Version& before) {
    std::size_t dropped = 0;
    for (auto it = keys_.begin(); it != keys_.end();) {
      std::vector<Entry>& versions = it->second;
      auto after = std::upper_bound(versions.begin(), versions.end(), before,
                                    [](const Version& v, const Entry& e) { return v < e.version; });
      if (after == versions.begin()) {
        ++it;
        continue;
      }
      auto keep = after - 1;     // the newest version <= before: what a read at `before` sees
      if (!keep->value) ++keep;  // a tombstone hides nothing once the older versions are gone
      dropped += static_cast<std::size_t>(keep - versions.begin());
      versions.erase(versions.begin(), keep);
      if (versions.empty()) {
        it = keys_.erase(it);
      } else {
        ++it;
      }
    }
    return dropped;
  }

  // Returns the number of keys whose newest version is live (not a tombstone).
  std::size_t size() const noexcept { return live_; }

  // Returns the number of stored versions of `key`, tombstones included.
  std::size_t version_count(const Key& key) const {
    auto it = keys_.find(key);
    return it == keys_.end() ? 0 : it->second.size();
  }

 private:
  void write(Key key, Version version, std::optional<Value> value) {
    auto it = keys_.find(key);
    if (it == keys_.end()) {
      if (value) ++live_;
      std::vector<Entry> versions;
      versions.push_back(Entry{std::move(version), std::move(value)});
      keys_.emplace(std::move(key), std::move(versions));
      return;
    }
    std::vector<Entry>& versions = it->second;
    const bool was_live = versions.back().value.has_value();
    if (versions.back().version < version) {
      versions.push_back(Entry{std::move(version), std::move(value)});  // the common case
    } else {
      auto pos = std::lower_bound(versions.begin(), versions.end(), version,
                                  [](const Entry& e, const Version& v) { return e.version < v; });
      if (pos != versions.end() && !(version < pos->version)) {
        pos->value = std::move(value);  // same version: replace
      } else {
        versions.insert(pos, Entry{std::move(version), std::move(value)});
      }
    }
    const bool is_live = versions.back().value.has_value();
    if (is_live != was_live) {
      if (is_live) {
        ++live_;
      } else {
        --live_;
      }
    }
  }

  std::map<Key, std::vector<Entry>, std::less<>> keys_;
  std::size_t live_ = 0;
};

}  // namespace pods

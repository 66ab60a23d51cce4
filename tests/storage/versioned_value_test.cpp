#include <pods/storage/versioned_value.hpp>

#include <pods/time/hybrid_clock.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <tuple>
#include <vector>

using pods::HybridTimestamp;

namespace {
template <class V>
concept store_accepts = requires {
  typename pods::VersionedStore<std::string, int, V>;
};
struct NoOrder {};

template <class Store>
std::vector<std::pair<std::string, typename Store::version_type>> history_of(
    const Store& store, const std::string& key) {
  std::vector<std::pair<std::string, typename Store::version_type>> out;
  for (const auto& v : store.history(key))
    out.emplace_back(v.value, v.version);
  return out;
}

// Versions as uint64 or as hybrid timestamps, from a small integer.
template <class V>
V version(std::uint64_t n) {
  if constexpr (std::is_same_v<V, HybridTimestamp>) {
    return HybridTimestamp{static_cast<std::int64_t>(n / 4), static_cast<std::uint32_t>(n % 4)};
  } else {
    return n;
  }
}
}  // namespace

TEST_CASE("VersionedStore: the Version type must be totally ordered", "[versioned_value]") {
  STATIC_REQUIRE(store_accepts<std::uint64_t>);
  STATIC_REQUIRE(store_accepts<HybridTimestamp>);
  STATIC_REQUIRE_FALSE(store_accepts<NoOrder>);
}

TEMPLATE_TEST_CASE("VersionedStore: reads at a version, tombstones, history, compaction",
                   "[versioned_value]", std::uint64_t, HybridTimestamp) {
  using V = TestType;
  const auto v = [](std::uint64_t n) { return version<V>(n); };
  pods::VersionedStore<std::string, std::string, V> store;
  store.put("k", "a", v(10));
  store.put("k", "b", v(20));
  store.put("k", "c", v(30));

  SECTION("get(key) reads the newest version") {
    CHECK(store.get("k") == std::optional<std::string>("c"));
    CHECK_FALSE(store.get("absent").has_value());
  }
  SECTION("get(key, at) reads the newest version <= at (table)") {
    struct Case {
      std::uint64_t at;
      std::optional<std::string> value;
      std::uint64_t version;
    };
    const Case cases[] = {{9, std::nullopt, 0}, {10, "a", 10}, {15, "a", 10},  {20, "b", 20},
                          {29, "b", 20},        {30, "c", 30}, {1000, "c", 30}};
    for (const Case& c : cases) {
      INFO("at " << c.at);
      const auto got = store.get("k", v(c.at));
      REQUIRE(got.has_value() == c.value.has_value());
      if (got) {
        CHECK(got->value == *c.value);
        CHECK(got->version == v(c.version));
      }
    }
    CHECK_FALSE(store.get("absent", v(100)).has_value());
  }
  SECTION("writes may arrive out of order; the same version replaces") {
    store.put("k", "between", v(25));
    store.put("k", "b2", v(20));
    CHECK(store.get("k", v(22))->value == "b2");
    CHECK(store.get("k", v(26))->value == "between");
    CHECK(store.get("k") == std::optional<std::string>("c"));
    CHECK(store.version_count("k") == 4);
  }
  SECTION("a tombstone hides the key from reads at or after it, not before") {
    store.erase("k", v(40));
    CHECK_FALSE(store.get("k").has_value());
    CHECK_FALSE(store.get("k", v(40)).has_value());
    CHECK(store.get("k", v(39))->value == "c");
    CHECK(store.size() == 0);
    store.put("k", "again", v(50));
    CHECK(store.get("k") == std::optional<std::string>("again"));
    CHECK(store.size() == 1);
  }
  SECTION("a tombstone on an absent key stops a delayed older write from becoming newest") {
    store.erase("late", v(40));
    store.put("late", "old", v(35));
    CHECK_FALSE(store.get("late").has_value());
    CHECK(store.get("late", v(36))->value == "old");
    CHECK(store.size() == 1);
  }
  SECTION("history lists live versions oldest first, skipping tombstones") {
    store.erase("k", v(25));
    using Entries = std::vector<std::pair<std::string, V>>;
    CHECK(history_of(store, "k") == Entries{{"a", v(10)}, {"b", v(20)}, {"c", v(30)}});
    CHECK(history_of(store, "absent").empty());
  }
  SECTION("size counts keys whose newest version is live") {
    store.put("x", "1", v(1));
    store.put("y", "1", v(1));
    CHECK(store.size() == 3);
    store.erase("y", v(2));
    CHECK(store.size() == 2);
    store.erase("y", v(0));  // an older tombstone does not change the newest
    CHECK(store.size() == 2);
    store.put("y", "back", v(2));  // replaces the tombstone at version 2
    CHECK(store.size() == 3);
  }
  SECTION("compact drops what no read at >= before can see, and says how many") {
    store.erase("k", v(35));
    store.put("k", "d", v(40));
    // versions of k: a@10 b@20 c@30 tombstone@35 d@40
    SECTION("before between versions keeps the newest version <= before") {
      CHECK(store.compact(v(25)) == 1);  // a@10 goes; b@20 is what a read at 25 sees
      CHECK(store.get("k", v(25))->value == "b");
      CHECK_FALSE(store.get("k", v(15)).has_value());
      CHECK(store.version_count("k") == 4);
    }
    SECTION("a tombstone that is the newest <= before goes too (it counts)") {
      CHECK(store.compact(v(37)) == 4);  // a, b, c and the tombstone
      CHECK_FALSE(store.get("k", v(37)).has_value());
      CHECK(store.get("k", v(40))->value == "d");
      CHECK(store.version_count("k") == 1);
    }
    SECTION("a key whose versions are all compacted away disappears") {
      store.erase("k", v(50));
      CHECK(store.compact(v(60)) == 6);
      CHECK(store.version_count("k") == 0);
      CHECK(store.size() == 0);
      CHECK(history_of(store, "k").empty());
    }
    SECTION("compact before the oldest version drops nothing") {
      CHECK(store.compact(v(5)) == 0);
      CHECK(store.version_count("k") == 5);
    }
  }
}

namespace {
// The model: a flat list of (key, version, value-or-tombstone) scanned by brute force.
struct ListModel {
  std::vector<std::tuple<int, std::uint64_t, std::optional<int>>> rows;

  void write(int key, std::uint64_t version, std::optional<int> value) {
    for (auto& [k, ver, val] : rows) {
      if (k == key && ver == version) {
        val = value;
        return;
      }
    }
    rows.emplace_back(key, version, value);
  }
  // The newest row of `key` with version <= at, if any.
  const std::tuple<int, std::uint64_t, std::optional<int>>* newest(int key,
                                                                   std::uint64_t at) const {
    const std::tuple<int, std::uint64_t, std::optional<int>>* best = nullptr;
    for (const auto& row : rows) {
      if (std::get<0>(row) == key && std::get<1>(row) <= at &&
          (!best || std::get<1>(row) > std::get<1>(*best))) {
        best = &row;
      }
    }
    return best;
  }
  std::optional<std::pair<int, std::uint64_t>> get(int key, std::uint64_t at) const {
    const auto* row = newest(key, at);
    if (!row || !std::get<2>(*row)) return std::nullopt;
    return std::pair{*std::get<2>(*row), std::get<1>(*row)};
  }
  std::size_t compact(std::uint64_t before) {
    std::vector<std::tuple<int, std::uint64_t, std::optional<int>>> kept;
    for (const auto& row : rows) {
      const auto* seen = newest(std::get<0>(row), before);
      const bool older =
          std::get<1>(row) <= before && seen && std::get<1>(row) < std::get<1>(*seen);
      const bool dead_tombstone = seen == &row && !std::get<2>(row);
      if (!older && !dead_tombstone) kept.push_back(row);
    }
    const std::size_t dropped = rows.size() - kept.size();
    rows = kept;
    return dropped;
  }
  std::size_t size() const {
    std::size_t live = 0;
    for (int key = 0; key < 8; ++key) {
      if (get(key, UINT64_MAX)) ++live;
    }
    return live;
  }
};
}  // namespace

TEST_CASE("VersionedStore: differential test against a list model", "[versioned_value]") {
  for (std::uint64_t seed : {3u, 17u, 256u, 9001u}) {
    std::mt19937_64 rng(seed);
    pods::VersionedStore<int, int> store;
    ListModel model;
    std::uint64_t compacted_before = 0;
    for (int step = 0; step < 4000; ++step) {
      const int key = static_cast<int>(rng() % 8);
      const std::uint64_t ver = compacted_before + rng() % 100;
      switch (rng() % 10) {
        case 0:
        case 1:
          store.erase(key, ver);
          model.write(key, ver, std::nullopt);
          break;
        case 2: {
          const std::uint64_t before = compacted_before + rng() % 20;
          // Every read at >= before must answer the same after the compaction.
          std::vector<std::optional<std::pair<int, std::uint64_t>>> answers;
          for (std::uint64_t at = before; at < before + 120; ++at)
            answers.push_back(model.get(key, at));
          INFO("seed " << seed << " step " << step << " compact " << before);
          REQUIRE(store.compact(before) == model.compact(before));
          for (std::uint64_t at = before; at < before + 120; ++at) {
            const auto got = store.get(key, at);
            const auto& want = answers[at - before];
            REQUIRE(got.has_value() == want.has_value());
            if (got) REQUIRE(std::pair{got->value, got->version} == *want);
          }
          compacted_before = before;
          break;
        }
        default: {
          const int value = static_cast<int>(rng() % 1000);
          store.put(key, value, ver);
          model.write(key, ver, value);
          break;
        }
      }
      INFO("seed " << seed << " step " << step);
      const std::uint64_t at = compacted_before + rng() % 120;
      const auto got = store.get(key, at);
      const auto want = model.get(key, at);
      REQUIRE(got.has_value() == want.has_value());
      if (got) REQUIRE(std::pair{got->value, got->version} == *want);
      const auto newest = store.get(key);
      const auto newest_model = model.get(key, UINT64_MAX);
      REQUIRE(newest.has_value() == newest_model.has_value());
      if (newest) REQUIRE(*newest == newest_model->first);
      REQUIRE(store.size() == model.size());
      // history: the model's live rows of the key, oldest first
      std::vector<std::pair<int, std::uint64_t>> expected_history;
      for (const auto& [k, ver2, val] : model.rows) {
        if (k == key && val) expected_history.emplace_back(*val, ver2);
      }
      std::sort(expected_history.begin(), expected_history.end(),
                [](auto& a, auto& b) { return a.second < b.second; });
      std::vector<std::pair<int, std::uint64_t>> history;
      for (const auto& vv : store.history(key))
        history.emplace_back(vv.value, vv.version);
      REQUIRE(history == expected_history);
    }
  }
}

// Tests of pods/partitioning/key_range_partitions.hpp: routing, range queries, splits and
// merges from tables; splits by size with and without a size callback; every error message;
// and a seeded differential test against a simple model (a list of starts searched linearly)
// with the coverage checked independently after every operation. A deliberately broken
// model (a range query that stops one range short, a split whose right range starts one key late)
// is caught by the same comparison, which shows the comparison can fail.
//
// Seeds: PODS_SEEDS (default 3) runs that many random sequences of 2000 operations.
#include <pods/partitioning/key_range_partitions.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstdlib>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <pods/policy/random.hpp>

using pods::KeyRange;
using pods::KeyRangePartitions;
using pods::RangeId;

namespace {

std::uint64_t seeds() {
  if (const char* s = std::getenv("PODS_SEEDS")) return std::strtoull(s, nullptr, 10);
  return 3;
}

const std::vector<std::string> points{"d", "k", "p"};  // ["", d) [d, k) [k, p) [p, +inf)

// Returns an empty string when `ranges` covers the key space exactly once, read only through
// the public ranges() listing; a description otherwise.
std::string coverage_error(const KeyRangePartitions& parts) {
  const auto all = parts.ranges();
  if (all.empty()) return "no range";
  if (all.front().second.start != "") return "the first range does not start at \"\"";
  if (all.back().second.end) return "the last range is bounded";
  for (std::size_t i = 0; i + 1 < all.size(); ++i) {
    if (!all[i].second.end) return "an inner range is unbounded";
    if (*all[i].second.end != all[i + 1].second.start) return "a gap or an overlap";
    if (!(all[i].second.start < *all[i].second.end)) return "an empty range";
  }
  if (!parts.invariants_hold()) return "invariants_hold() disagrees";
  return {};
}

// The simple model: (start, id) pairs in key order, searched linearly.
struct Rules {
  bool range_query_one_short = false;  // broken: drops the last covering range
  bool split_one_past = false;         // broken: the right range starts one key past the split
};

struct Model {
  std::vector<std::pair<std::string, RangeId>> ranges{{"", 0}};
  RangeId next = 1;
  Rules rules;

  std::size_t index(std::string_view key) const {
    std::size_t i = 0;
    for (std::size_t j = 0; j < ranges.size(); ++j)
      if (ranges[j].first <= key) i = j;
    return i;
  }
  RangeId route(std::string_view key) const { return ranges[index(key)].second; }
  std::vector<RangeId> route_range(const std::string& a,
                                   const std::optional<std::string>& b) const {
    std::vector<RangeId> out;
    for (std::size_t j = 0; j < ranges.size(); ++j) {
      const std::string& start = ranges[j].first;
      const bool ends_after_a = j + 1 == ranges.size() || ranges[j + 1].first > a;
      const bool starts_before_b = !b || start < *b;
      if (ends_after_a && starts_before_b && (!b || a < *b)) out.push_back(ranges[j].second);
    }
    if (rules.range_query_one_short && out.size() > 1) out.pop_back();
    return out;
  }
  RangeId split(std::size_t j, const std::string& key) {
    ranges.insert(ranges.begin() + static_cast<std::ptrdiff_t>(j) + 1,
                  {rules.split_one_past ? key + '\x01' : key, next});
    return next++;
  }
  void merge(std::size_t j) { ranges.erase(ranges.begin() + static_cast<std::ptrdiff_t>(j) + 1); }
};

// Short keys over a small alphabet (so splits, routes and queries collide often), with NUL
// bytes, and a third of them behind one shared 8-byte prefix so that the prefix comparison
// ties and the full comparison decides.
std::string random_key(pods::Random& random) {
  std::string k = random.chance(0.3) ? "commonpf" : "";
  const std::size_t n = random.below(4);
  for (std::size_t i = 0; i < n; ++i)
    k.push_back(random.chance(0.1) ? '\0' : static_cast<char>('a' + random.below(6)));
  return k;
}

// Runs `ops` random operations on both and returns the first disagreement (empty if none).
std::string differential(std::uint64_t seed, int ops, Rules rules) {
  pods::Random random(seed);
  KeyRangePartitions parts;
  Model model;
  model.rules = rules;
  for (int op = 0; op < ops; ++op) {
    const std::string where = "seed " + std::to_string(seed) + " op " + std::to_string(op) + ": ";
    const std::string key = random_key(random);
    switch (random.below(5)) {
      case 0:
      case 1: {  // split the range of a random key at that key, when that is legal
        const std::size_t j = model.index(key);
        if (model.ranges[j].first == key) break;
        const RangeId id = model.ranges[j].second;
        if (parts.split(id, key).second != model.split(j, key)) return where + "split id";
        break;
      }
      case 2: {  // merge a random range with its right neighbour
        if (model.ranges.size() < 2) break;
        const std::size_t j = random.below(model.ranges.size() - 1);
        if (parts.merge(model.ranges[j].second, model.ranges[j + 1].second) !=
            model.ranges[j].second)
          return where + "merge id";
        model.merge(j);
        break;
      }
      default: {  // route a key and a range
        if (parts.route(key) != model.route(key)) return where + "route \"" + key + "\"";
        std::string other = random_key(random);
        std::optional<std::string> end = other;
        if (random.chance(0.2)) end.reset();
        std::string begin = key;
        if (end && *end < begin) std::swap(begin, *end);
        if (parts.route_range(begin, end ? std::optional<std::string_view>(*end) : std::nullopt) !=
            model.route_range(begin, end))
          return where + "route_range [\"" + begin + "\", " + (end ? *end : "+inf") + ")";
      }
    }
    if (auto e = coverage_error(parts); !e.empty()) return where + e;
    // The whole layout agrees with the model.
    const auto all = parts.ranges();
    if (all.size() != model.ranges.size()) return where + "range count";
    for (std::size_t i = 0; i < all.size(); ++i)
      if (all[i].first != model.ranges[i].second || all[i].second.start != model.ranges[i].first)
        return where + "layout";
  }
  return {};
}

}  // namespace

TEST_CASE("one range covers every key at first") {
  const KeyRangePartitions parts;
  CHECK(parts.size() == 1);
  CHECK(parts.route("") == 0);
  CHECK(parts.route(std::string(100, '\xff')) == 0);
  CHECK(parts.range(0) == KeyRange{"", std::nullopt});
  CHECK(coverage_error(parts) == "");
}

TEST_CASE("keys route to the range containing them") {
  const KeyRangePartitions parts(points);
  struct Row {
    std::string key;
    RangeId id;
  };
  const std::vector<Row> rows{
      {"", 0},  {"a", 0},    {"czzz", 0}, {"d", 1}, {"d\x01", 1}, {"jz", 1},
      {"k", 2}, {"oooo", 2}, {"p", 3},    {"q", 3}, {"\xff", 3},
  };
  for (const Row& r : rows) {
    CAPTURE(r.key);
    CHECK(parts.route(r.key) == r.id);
    CHECK(parts.range(r.id).contains(r.key));
  }
  CHECK(parts.range(1) == KeyRange{"d", "k"});
  CHECK(parts.range(3) == KeyRange{"p", std::nullopt});
  CHECK(coverage_error(parts) == "");
}

TEST_CASE("keys that share their first eight bytes route by the rest") {
  const std::vector<std::string> long_points{"abcdefgh", std::string("abcdefgh\0", 9), "abcdefghb",
                                             "abcdefgi"};
  const KeyRangePartitions parts(long_points);
  CHECK(parts.route("abcdefg") == 0);
  CHECK(parts.route("abcdefgh") == 1);
  CHECK(parts.route(std::string("abcdefgh\0", 9)) == 2);
  CHECK(parts.route("abcdefgha") == 2);
  CHECK(parts.route("abcdefghb") == 3);
  CHECK(parts.route("abcdefghzzzz") == 3);
  CHECK(parts.route("abcdefgi") == 4);
  CHECK(parts.route_range("abcdefgh", std::string_view("abcdefghb")) == std::vector<RangeId>{1, 2});
  CHECK(parts.route_range("abcdefg", std::string_view("abcdefgh")) == std::vector<RangeId>{0});
}

TEST_CASE("range queries return exactly the covering ranges in order") {
  const KeyRangePartitions parts(points);
  struct Row {
    std::string begin;
    std::optional<std::string> end;
    std::vector<RangeId> ids;
  };
  const std::vector<Row> rows{
      {"", std::nullopt, {0, 1, 2, 3}},
      {"a", "b", {0}},
      {"a", "d", {0}},                       // end is exclusive: "d" itself is not asked for
      {"a", std::string("d\0", 2), {0, 1}},  // the smallest key after "d" is
      {"d", "k", {1}},
      {"c", "l", {0, 1, 2}},
      {"k", std::nullopt, {2, 3}},
      {"z", std::nullopt, {3}},
      {"e", "e", {}},  // an empty query touches nothing
      {"", "", {}},
  };
  for (const Row& r : rows) {
    CAPTURE(r.begin, r.end);
    const auto end = r.end ? std::optional<std::string_view>(*r.end) : std::nullopt;
    CHECK(parts.route_range(r.begin, end) == r.ids);
  }
}

TEST_CASE("splits and merges from a table") {
  struct Row {
    std::string op;  // "split" or "merge"
    RangeId a;
    std::string key;  // split key
    RangeId b;        // merge's right range
    std::vector<std::string> starts;
    std::vector<RangeId> ids;
  };
  const std::vector<Row> rows{
      {"split", 0, "m", 0, {"", "m"}, {0, 1}},
      {"split", 0, "f", 0, {"", "f", "m"}, {0, 2, 1}},
      {"split", 1, "t", 0, {"", "f", "m", "t"}, {0, 2, 1, 3}},
      {"merge", 2, "", 1, {"", "f", "t"}, {0, 2, 3}},
      {"merge", 0, "", 2, {"", "t"}, {0, 3}},
      {"split", 0, "a", 0, {"", "a", "t"}, {0, 4, 3}},
      {"merge", 4, "", 3, {"", "a"}, {0, 4}},
      {"merge", 0, "", 4, {""}, {0}},
  };
  KeyRangePartitions parts;
  for (const Row& r : rows) {
    CAPTURE(r.op, r.a, r.key, r.b);
    if (r.op == "split") {
      const auto [left, right] = parts.split(r.a, r.key);
      CHECK(left == r.a);
      CHECK(parts.range(right).start == r.key);
    } else {
      CHECK(parts.merge(r.a, r.b) == r.a);
    }
    std::vector<std::string> starts;
    std::vector<RangeId> ids;
    for (const auto& [id, range] : parts.ranges()) {
      ids.push_back(id);
      starts.push_back(range.start);
    }
    CHECK(starts == r.starts);
    CHECK(ids == r.ids);
    CHECK(coverage_error(parts) == "");
  }
}

TEST_CASE("split_by_size splits past the threshold at the key that balances the sizes") {
  KeyRangePartitions parts;
  const std::vector<std::string> sample{"a", "b", "c", "d", "e", "f", "g", "h"};
  CHECK_FALSE(parts.split_by_size(0, 8, sample).has_value());  // 8 is not above 8
  CHECK(parts.size() == 1);
  const auto s = parts.split_by_size(0, 7, sample);
  REQUIRE(s);
  CHECK(s->key == "e");  // 4 on each side
  CHECK(s->left_size == 4);
  CHECK(s->right_size == 4);
  CHECK(s->left == 0);
  CHECK(parts.range(s->right) == KeyRange{"e", std::nullopt});

  // With a size callback the split follows the bytes, not the count: "a" weighs 10.
  KeyRangePartitions sized;
  const std::vector<std::string> keys{"a", "b", "c", "d"};
  const auto weights = [](std::string_view k) -> std::uint64_t { return k == "a" ? 10 : 1; };
  const auto t = sized.split_by_size(0, 5, keys, weights);
  REQUIRE(t);
  CHECK(t->key == "b");  // 10 | 3 beats 11 | 2
  CHECK(t->left_size == 10);
  CHECK(t->right_size == 3);

  // Repeated keys count once each; a key equal to the range's start cannot be the split key.
  KeyRangePartitions starts(std::vector<std::string>{"m"});
  const std::vector<std::string> heavy{"m", "m", "m", "m", "n"};
  const auto u = starts.split_by_size(1, 1, heavy);
  REQUIRE(u);
  CHECK(u->key == "n");
  CHECK(u->left_size == 4);
  CHECK(u->right_size == 1);
  const std::vector<std::string> only_start{"m", "m"};
  CHECK_FALSE(starts.split_by_size(1, 0, only_start).has_value());
  CHECK(coverage_error(starts) == "");
}

TEST_CASE("random operations agree with the simple model, coverage checked at every step") {
  for (std::uint64_t seed = 1; seed <= seeds(); ++seed)
    CHECK(differential(seed, 2000, {}) == "");
}

TEST_CASE("the differential test catches a broken rule") {
  bool caught_range = false, caught_split = false;
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    caught_range |= !differential(seed, 2000, {.range_query_one_short = true}).empty();
    caught_split |= !differential(seed, 2000, {.split_one_past = true}).empty();
  }
  CHECK(caught_range);
  CHECK(caught_split);
}

TEST_CASE("bad arguments throw std::invalid_argument naming them") {
  CHECK_THROWS_AS(KeyRangePartitions(std::vector<std::string>{"b", "a"}), std::invalid_argument);
  CHECK_THROWS_WITH(
      KeyRangePartitions(std::vector<std::string>{"b", "a"}),
      "KeyRangePartitions: split points must be strictly ascending (\"a\" after \"b\")");
  CHECK_THROWS_WITH(
      KeyRangePartitions(std::vector<std::string>{"a", "a"}),
      "KeyRangePartitions: split points must be strictly ascending (\"a\" after \"a\")");
  CHECK_THROWS_WITH(KeyRangePartitions(std::vector<std::string>{""}),
                    "KeyRangePartitions: split points must not be empty strings");
  KeyRangePartitions parts(points);
  CHECK_THROWS_WITH(parts.split(1, "a"),
                    "KeyRangePartitions: split key \"a\" is outside range 1 [\"d\", \"k\")");
  CHECK_THROWS_WITH(parts.split(3, "a"),
                    "KeyRangePartitions: split key \"a\" is outside range 3 [\"p\", +infinity)");
  CHECK_THROWS_WITH(parts.split(1, "d"),
                    "KeyRangePartitions: split key \"d\" is the start of range 1");
  CHECK_THROWS_WITH(parts.split(0, ""),
                    "KeyRangePartitions: split key \"\" is the start of range 0");
  CHECK_THROWS_WITH(parts.split(9, "x"), "KeyRangePartitions: range 9 does not exist");
  CHECK_THROWS_WITH(parts.range(9), "KeyRangePartitions: range 9 does not exist");
  CHECK_THROWS_WITH(parts.merge(0, 2),
                    "KeyRangePartitions: range 2 is not the right-hand neighbour of range 0");
  CHECK_THROWS_WITH(parts.merge(1, 0),
                    "KeyRangePartitions: range 0 is not the right-hand neighbour of range 1");
  CHECK_THROWS_WITH(parts.merge(0, 7), "KeyRangePartitions: range 7 does not exist");
  CHECK_THROWS_WITH(parts.route_range("b", std::string_view("a")),
                    "KeyRangePartitions: route_range: begin \"b\" must not be after end \"a\"");
  const std::vector<std::string> outside{"e", "z"};
  CHECK_THROWS_WITH(parts.split_by_size(1, 0, outside),
                    "KeyRangePartitions: sample key \"z\" is outside range 1 [\"d\", \"k\")");
  CHECK(parts.size() == 4);  // nothing refused changed anything
  CHECK(coverage_error(parts) == "");
}

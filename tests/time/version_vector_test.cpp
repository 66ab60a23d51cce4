#include <pods/time/version_vector.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

using VV = pods::VersionVector<>;
using std::partial_ordering;

namespace {
template <class N, class C = std::uint64_t>
concept vv_accepts = requires {
  typename pods::VersionVector<N, C>;
};
struct Unordered {};

// The model: a std::map from node to counter, compared by brute force over every node.
using Model = std::map<std::string, std::uint64_t>;

partial_ordering model_compare(const Model& a, const Model& b) {
  bool a_ahead = false, b_ahead = false;
  auto at = [](const Model& m, const std::string& n) {
    auto it = m.find(n);
    return it == m.end() ? 0 : it->second;
  };
  Model nodes = a;
  nodes.insert(b.begin(), b.end());
  for (const auto& [node, unused] : nodes) {
    (void)unused;
    if (at(a, node) > at(b, node)) a_ahead = true;
    if (at(b, node) > at(a, node)) b_ahead = true;
  }
  if (a_ahead && b_ahead) return partial_ordering::unordered;
  if (a_ahead) return partial_ordering::greater;
  if (b_ahead) return partial_ordering::less;
  return partial_ordering::equivalent;
}

const char* name(partial_ordering o) {
  if (o == partial_ordering::less) return "less";
  if (o == partial_ordering::greater) return "greater";
  if (o == partial_ordering::equivalent) return "equivalent";
  return "unordered";
}
}  // namespace

TEST_CASE("VersionVector: node and counter types", "[version_vector]") {
  STATIC_REQUIRE(vv_accepts<std::string>);
  STATIC_REQUIRE(vv_accepts<int, std::uint32_t>);
  STATIC_REQUIRE_FALSE(vv_accepts<Unordered>);
  STATIC_REQUIRE_FALSE(vv_accepts<std::string, int>);  // counters are unsigned
  STATIC_REQUIRE_FALSE(vv_accepts<std::string, double>);
}

TEST_CASE("VersionVector: increment, get, size and entries", "[version_vector]") {
  VV v;
  CHECK(v.size() == 0);
  CHECK(v.get("a") == 0);
  CHECK(v.increment("b") == 1);
  CHECK(v.increment("a") == 1);
  CHECK(v.increment("b") == 2);
  CHECK(v.get("b") == 2);
  CHECK(v.get("c") == 0);
  CHECK(v.size() == 2);
  SECTION("entries are ordered by node") {
    std::vector<std::pair<std::string, std::uint64_t>> listed(v.entries().begin(),
                                                              v.entries().end());
    CHECK(listed == std::vector<std::pair<std::string, std::uint64_t>>{{"a", 1}, {"b", 2}});
  }
  SECTION("the initializer list drops zeros and keeps the larger of duplicates") {
    VV w{{"z", 3}, {"x", 0}, {"y", 1}, {"z", 2}};
    CHECK(w.size() == 2);
    CHECK(w.get("z") == 3);
    CHECK(w.get("x") == 0);
    CHECK(w.entries().front().first == "y");
  }
  SECTION("increment past the counter's maximum throws overflow_error") {
    pods::VersionVector<std::string, std::uint8_t> small{{"a", 254}};
    CHECK(small.increment("a") == 255);
    CHECK_THROWS_AS(small.increment("a"), std::overflow_error);
    CHECK(small.get("a") == 255);
  }
}

TEST_CASE("VersionVector: comparison is pointwise, absent reads as 0 (table)", "[version_vector]") {
  struct Case {
    VV a, b;
    partial_ordering expected;
  };
  const std::vector<Case> cases = {
      {{}, {}, partial_ordering::equivalent},
      {{{"a", 0}}, {}, partial_ordering::equivalent},
      {{{"a", 1}}, {}, partial_ordering::greater},
      {{}, {{"a", 1}}, partial_ordering::less},
      {{{"a", 1}, {"b", 2}}, {{"a", 1}, {"b", 2}}, partial_ordering::equivalent},
      {{{"a", 1}, {"b", 2}}, {{"a", 2}, {"b", 2}}, partial_ordering::less},
      {{{"a", 2}, {"b", 2}}, {{"a", 1}, {"b", 2}}, partial_ordering::greater},
      {{{"a", 2}}, {{"a", 1}, {"b", 1}}, partial_ordering::unordered},
      {{{"a", 1}}, {{"b", 1}}, partial_ordering::unordered},
      {{{"a", 1}, {"c", 1}}, {{"a", 1}, {"b", 1}, {"c", 1}}, partial_ordering::less},
  };
  for (const Case& c : cases) {
    const partial_ordering got = c.a <=> c.b;
    INFO("expected " << name(c.expected) << ", got " << name(got));
    CHECK(got == c.expected);
    CHECK((c.a == c.b) == (c.expected == partial_ordering::equivalent));
    CHECK(pods::concurrent(c.a, c.b) == (c.expected == partial_ordering::unordered));
    CHECK(c.a.descends(c.b) ==
          (c.expected == partial_ordering::greater || c.expected == partial_ordering::equivalent));
    CHECK(c.b.descends(c.a) ==
          (c.expected == partial_ordering::less || c.expected == partial_ordering::equivalent));
  }
}

TEST_CASE("VersionVector: merge is the pointwise maximum", "[version_vector]") {
  VV a{{"a", 3}, {"c", 1}};
  const VV b{{"a", 1}, {"b", 4}, {"c", 2}};
  CHECK(&a.merge(b) == &a);
  CHECK(a == VV{{"a", 3}, {"b", 4}, {"c", 2}});
  CHECK(a.descends(b));
  SECTION("merging a vector over the same nodes updates in place") {
    VV c{{"a", 9}, {"b", 0}, {"c", 0}};
    a.merge(c);
    CHECK(a == VV{{"a", 9}, {"b", 4}, {"c", 2}});
  }
  SECTION("merge with itself or with an empty vector changes nothing") {
    const VV before = a;
    a.merge(VV{});
    CHECK(a == before);
    a.merge(before);
    CHECK(a == before);
  }
}

TEST_CASE("VersionVector: concurrent updates are detected, and reconciled by merge",
          "[version_vector]") {
  VV base{{"n1", 1}};
  VV on_n1 = base, on_n2 = base;
  on_n1.increment("n1");  // two nodes update without seeing each other
  on_n2.increment("n2");
  CHECK(pods::concurrent(on_n1, on_n2));
  VV reconciled = on_n1;
  reconciled.merge(on_n2).increment("n1");
  CHECK(reconciled > on_n1);
  CHECK(reconciled > on_n2);
  CHECK(base < on_n1);
}

TEST_CASE("VersionVector: differential test against a std::map model", "[version_vector]") {
  const std::vector<std::string> nodes = {"n0", "n1", "n2", "n3", "n4", "n5"};
  for (std::uint64_t seed : {1u, 7u, 99u, 12345u}) {
    std::mt19937_64 rng(seed);
    std::vector<VV> vectors(5);
    std::vector<Model> models(5);
    for (int step = 0; step < 3000; ++step) {
      const std::size_t i = rng() % vectors.size();
      const std::size_t j = rng() % vectors.size();
      switch (rng() % 3) {
        case 0: {
          const std::string& node = nodes[rng() % nodes.size()];
          CHECK(vectors[i].increment(node) == ++models[i][node]);
          break;
        }
        case 1: {
          vectors[i].merge(vectors[j]);
          for (const auto& [node, counter] : Model(models[j])) {
            models[i][node] = std::max(models[i][node], counter);
          }
          break;
        }
        default:
          break;
      }
      INFO("seed " << seed << " step " << step);
      REQUIRE((vectors[i] <=> vectors[j]) == model_compare(models[i], models[j]));
      REQUIRE((vectors[i] == vectors[j]) ==
              (model_compare(models[i], models[j]) == partial_ordering::equivalent));
      for (const std::string& node : nodes) {
        const auto it = models[i].find(node);
        REQUIRE(vectors[i].get(node) == (it == models[i].end() ? 0 : it->second));
      }
      REQUIRE(vectors[i].size() == models[i].size());
    }
  }
}

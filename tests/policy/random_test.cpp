#include <pods/policy/random.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <vector>

using namespace std::chrono_literals;

TEST_CASE("Random: SplitMix64 and xoshiro256** match their published reference outputs",
          "[random]") {
  // SplitMix64 from 0 (Vigna's splitmix64.c): the first three outputs.
  std::uint64_t s = 0;
  CHECK(pods::detail::splitmix64(s) == 0xE220A8397B1DCDAFULL);
  CHECK(pods::detail::splitmix64(s) == 0x6E789E6AA1B965F4ULL);
  CHECK(pods::detail::splitmix64(s) == 0x06C45D188009454FULL);
  // The seed fills the state with the SplitMix64 sequence.
  const pods::Random seeded(0);
  CHECK(seeded.state() == pods::Random::State{0xE220A8397B1DCDAFULL, 0x6E789E6AA1B965F4ULL,
                                              0x06C45D188009454FULL, 0xF88BB8A8724C81ECULL});
  // xoshiro256** (Blackman and Vigna's xoshiro256starstar.c) from the state {1, 2, 3, 4}.
  auto r = pods::Random::from_state({1, 2, 3, 4});
  CHECK(r.next() == 11520u);
  CHECK(r.next() == 0u);
  CHECK(r.next() == 1509978240u);
  CHECK(r.next() == 1215971899390074240u);
}

TEST_CASE("Random: pinned outputs, so a change of any draw breaks replay loudly", "[random]") {
  // Computed once with this implementation and pinned: g++ and clang++ builds both must
  // produce exactly these (this is the portability promise of the header).
  pods::Random r(0);
  CHECK(r.next() == 0x99EC5F36CB75F2B4ULL);
  CHECK(r.next() == 0xBF6E1F784956452AULL);
  CHECK(r.next() == 0x1A5F849D4933E6E0ULL);
  CHECK(r.next() == 0x6AA594F1262D2D2CULL);

  pods::Random a(42);
  std::vector<std::uint64_t> below;
  for (int i = 0; i < 6; ++i)
    below.push_back(a.below(1000));
  CHECK(below == std::vector<std::uint64_t>{83, 378, 680, 924, 991, 769});
  std::vector<std::int64_t> between;
  for (int i = 0; i < 4; ++i)
    between.push_back(a.between<std::int64_t>(-5, 5));
  CHECK(between == std::vector<std::int64_t>{2, 4, 3, 1});
  CHECK(a.uniform() == 0.68245286961251928);
  CHECK(a.uniform() == 0.29067776176424165);
  CHECK(a.uniform() == 0.80102429752880777);
  CHECK(a.exponential(1.0) == Approx(0.38774056989028466).epsilon(1e-15));
  CHECK(a.exponential(1.0) == Approx(1.2418475660394726).epsilon(1e-15));
  CHECK(a.exponential(1.0) == Approx(2.1018280981577444).epsilon(1e-15));
  std::vector<int> v{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  a.shuffle(v);
  CHECK(v == std::vector<int>{2, 9, 3, 1, 8, 0, 4, 5, 7, 6});
  CHECK(a.fork(7).next() == 0xEE78C98239B4CA8CULL);
  CHECK(a.fork().next() == 0x386755DD22C0CA38ULL);
}

TEST_CASE("Random: the same seed replays, different seeds differ, state round-trips", "[random]") {
  pods::Random a(7), b(7), c(8);
  std::vector<std::uint64_t> xs, ys, zs;
  for (int i = 0; i < 100; ++i) {
    xs.push_back(a.next());
    ys.push_back(b.next());
    zs.push_back(c.next());
  }
  CHECK(xs == ys);
  CHECK(xs != zs);

  const auto saved = a.state();
  const std::uint64_t after = a.next();
  auto restored = pods::Random::from_state(saved);
  CHECK(restored.next() == after);
  CHECK(restored == a);
}

TEST_CASE("Random: below and between are uniform and stay in range", "[random]") {
  pods::Random r(1);
  SECTION("below(n) covers [0, n) evenly (chi-squared over 10 buckets)") {
    constexpr int buckets = 10, draws = 100'000;
    std::array<int, buckets> counts{};
    for (int i = 0; i < draws; ++i) {
      const auto x = r.below(buckets);
      REQUIRE(x < buckets);
      ++counts[x];
    }
    double chi2 = 0;
    for (int c : counts) {
      const double expected = draws / double(buckets);
      chi2 += (c - expected) * (c - expected) / expected;
    }
    CHECK(chi2 < 27.9);  // the 99.9th percentile of chi-squared with 9 degrees of freedom
  }
  SECTION("below(n) for an n just above 2^63 is not biased to the low half") {
    // With modulo reduction, values below 2^64 - n would be twice as likely.
    const std::uint64_t n = (1ULL << 63) + (1ULL << 62);
    int low = 0;
    for (int i = 0; i < 20'000; ++i) {
      const auto x = r.below(n);
      REQUIRE(x < n);
      if (x < (0 - n)) ++low;  // 2^64 - n = 2^62: a third of [0, n)
    }
    CHECK(low == Approx(20'000 / 3.0).margin(400));  // > 6 sigma under the truth, far from 1/2
  }
  SECTION("between includes both ends, for signed, unsigned and full ranges") {
    std::set<int> seen;
    for (int i = 0; i < 2000; ++i) {
      const int x = r.between(-3, 3);
      REQUIRE(x >= -3);
      REQUIRE(x <= 3);
      seen.insert(x);
    }
    CHECK(seen == std::set<int>{-3, -2, -1, 0, 1, 2, 3});
    CHECK(r.between(5u, 5u) == 5u);
    const auto any = r.between(std::numeric_limits<std::int64_t>::min(),
                               std::numeric_limits<std::int64_t>::max());
    (void)any;  // the full range must not throw or loop
    const auto d = r.between(10ms, 20ms);
    CHECK(d >= 10ms);
    CHECK(d <= 20ms);
  }
}

TEST_CASE("Random: uniform, chance and exponential have the right distributions", "[random]") {
  pods::Random r(2);
  constexpr int draws = 100'000;
  SECTION("uniform is in [0, 1) with mean 1/2") {
    double sum = 0;
    for (int i = 0; i < draws; ++i) {
      const double u = r.uniform();
      REQUIRE(u >= 0.0);
      REQUIRE(u < 1.0);
      sum += u;
    }
    CHECK(sum / draws == Approx(0.5).margin(0.005));  // sigma = 0.0009
  }
  SECTION("chance(p) is true with frequency p; 0 never, 1 always") {
    int hits = 0;
    for (int i = 0; i < draws; ++i)
      hits += r.chance(0.3) ? 1 : 0;
    CHECK(hits == Approx(0.3 * draws).margin(750));  // sigma = 145
    for (int i = 0; i < 1000; ++i) {
      REQUIRE_FALSE(r.chance(0.0));
      REQUIRE(r.chance(1.0));
    }
  }
  SECTION("chance consumes one draw whatever p is") {
    pods::Random a(9), b(9);
    (void)a.chance(0.0);
    (void)b.chance(1.0);
    CHECK(a == b);
  }
  SECTION("exponential has the requested mean and is never negative") {
    double sum = 0;
    for (int i = 0; i < draws; ++i) {
      const double x = r.exponential(2.0);
      REQUIRE(x >= 0.0);
      sum += x;
    }
    CHECK(sum / draws == Approx(2.0).margin(0.04));  // sigma = 0.0063
    const auto d = r.exponential(std::chrono::nanoseconds(1'000'000));
    CHECK(d >= 0ns);
  }
}

TEST_CASE("Random: shuffle gives every permutation", "[random]") {
  pods::Random r(3);
  std::map<std::vector<int>, int> seen;
  for (int i = 0; i < 6000; ++i) {
    std::vector<int> v{1, 2, 3};
    r.shuffle(v);
    ++seen[v];
  }
  REQUIRE(seen.size() == 6);
  for (const auto& [perm, count] : seen)
    CHECK(count == Approx(1000).margin(150));  // sigma = 29
  std::vector<int> empty;
  r.shuffle(empty);
  CHECK(empty.empty());
  std::array<int, 1> one{4};
  r.shuffle(one);
  CHECK(one[0] == 4);
}

TEST_CASE("Random: forks are independent streams", "[random]") {
  pods::Random parent(11);
  SECTION("fork(stream) does not advance the parent and is a function of (state, stream)") {
    const pods::Random before = parent;
    const auto a = parent.fork(1), again = parent.fork(1), b = parent.fork(2);
    CHECK(parent == before);
    CHECK(a == again);
    CHECK(a != b);
    CHECK(a != parent);
  }
  SECTION("adding a stream does not shift the draws of the others") {
    // Nodes 1..3 forked by id see the same numbers whether or not node 4 exists.
    std::vector<std::uint64_t> three, four;
    for (std::uint64_t id = 1; id <= 3; ++id)
      three.push_back(parent.fork(id).next());
    for (std::uint64_t id = 1; id <= 4; ++id)
      four.push_back(parent.fork(id).next());
    four.pop_back();
    CHECK(three == four);
  }
  SECTION("fork() advances the parent by one draw and the child differs from it") {
    pods::Random copy = parent;
    auto child = parent.fork();
    (void)copy.next();
    CHECK(parent == copy);
    CHECK(child.next() != parent.next());
  }
  SECTION("children are not correlated with each other (bit agreement about one half)") {
    auto a = parent.fork(100), b = parent.fork(101);
    int agree = 0;
    for (int i = 0; i < 1000; ++i)
      agree += 64 - std::popcount(a.next() ^ b.next());
    CHECK(agree == Approx(32'000).margin(800));  // sigma = 253
  }
}

TEST_CASE("Random: bad arguments throw std::invalid_argument naming them", "[random]") {
  pods::Random r(0);
  CHECK_THROWS_AS(r.below(0), std::invalid_argument);
  CHECK_THROWS_WITH(r.below(0), Catch::Contains("n must be positive"));
  CHECK_THROWS_WITH(r.between(3, 2), Catch::Contains("lo 3") && Catch::Contains("hi 2"));
  CHECK_THROWS_AS(r.between(3, 2), std::invalid_argument);
  CHECK_THROWS_WITH(r.chance(1.5), Catch::Contains("p must be in [0, 1]"));
  CHECK_THROWS_WITH(r.chance(-0.1), Catch::Contains("p must be in [0, 1]"));
  CHECK_THROWS_WITH(r.chance(std::nan("")), Catch::Contains("p must be in [0, 1]"));
  CHECK_THROWS_WITH(r.exponential(-1.0), Catch::Contains("mean"));
  CHECK_THROWS_WITH(pods::Random::from_state({0, 0, 0, 0}), Catch::Contains("state"));
  CHECK_THROWS_AS(pods::Random::from_state({0, 0, 0, 0}), std::invalid_argument);
}

TEST_CASE("Random: is a UniformRandomBitGenerator", "[random]") {
  STATIC_REQUIRE(std::uniform_random_bit_generator<pods::Random>);
  pods::Random r(5);
  std::vector<int> v(20);
  std::iota(v.begin(), v.end(), 0);
  std::ranges::shuffle(v, r);  // usable by std algorithms; the permutation is still a permutation
  std::ranges::sort(v);
  CHECK(v[19] == 19);
}

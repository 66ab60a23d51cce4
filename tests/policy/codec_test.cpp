#include <pods/policy/codec.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace {
struct NoDecode {
  void encode(const int&, pods::Buffer&) const {}
};
struct WrongDecode {
  void encode(const int&, pods::Buffer&) const {}
  long decode(std::span<const std::byte>) const { return 0; }
};
struct Point {
  std::int32_t x;
  std::int32_t y;
  friend bool operator==(const Point&, const Point&) = default;
};
}  // namespace

TEST_CASE("Codec: the models and the does-not-models", "[codec]") {
  STATIC_REQUIRE(pods::Codec<pods::StringCodec, std::string>);
  STATIC_REQUIRE(pods::Codec<pods::BytesCodec, std::vector<std::byte>>);
  STATIC_REQUIRE(pods::Codec<pods::TrivialCodec<Point>, Point>);
  STATIC_REQUIRE_FALSE(pods::Codec<pods::StringCodec, int>);
  STATIC_REQUIRE_FALSE(pods::Codec<NoDecode, int>);
  STATIC_REQUIRE_FALSE(pods::Codec<WrongDecode, int>);
}

TEST_CASE("Codec: encode appends, decode gives back the value", "[codec]") {
  pods::Buffer out{std::byte{0xAA}};
  pods::StringCodec{}.encode("hi", out);
  REQUIRE(out.size() == 3);
  CHECK(out[0] == std::byte{0xAA});  // appended, not overwritten
  CHECK(pods::StringCodec{}.decode(std::span(out).subspan(1)) == "hi");
  CHECK(pods::StringCodec{}.decode({}) == "");

  pods::Buffer raw;
  const std::vector<std::byte> b{std::byte{1}, std::byte{0}, std::byte{255}};
  pods::BytesCodec{}.encode(b, raw);
  CHECK(pods::BytesCodec{}.decode(raw) == b);

  pods::Buffer point;
  pods::TrivialCodec<Point>{}.encode(Point{-3, 7}, point);
  CHECK(point.size() == sizeof(Point));
  CHECK(pods::TrivialCodec<Point>{}.decode(point) == Point{-3, 7});
}

TEST_CASE("Codec: TrivialCodec rejects a wrong size with CorruptionError", "[codec]") {
  pods::Buffer bytes(5);
  CHECK_THROWS_AS(pods::TrivialCodec<std::uint64_t>{}.decode(bytes), pods::CorruptionError);
  CHECK_THROWS_WITH(pods::TrivialCodec<std::uint64_t>{}.decode(bytes),
                    Catch::Contains("8 bytes") && Catch::Contains("got 5"));
}

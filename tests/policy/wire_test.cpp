#include <pods/policy/wire.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

namespace {
pods::Buffer bytes_of(std::initializer_list<int> v) {
  pods::Buffer out;
  for (int b : v)
    out.push_back(static_cast<std::byte>(b));
  return out;
}
}  // namespace

TEST_CASE("wire: integers are little-endian and fixed width, pinned bytes", "[wire]") {
  pods::Buffer out;
  pods::wire::Writer w(out);
  w.u8(0x01);
  w.u16(0x0203);
  w.u32(0x04050607);
  w.u64(0x08090A0B0C0D0E0FULL);
  w.i64(-2);
  w.boolean(true);
  CHECK(out == bytes_of({0x01, 0x03, 0x02, 0x07, 0x06, 0x05, 0x04, 0x0F, 0x0E, 0x0D, 0x0C, 0x0B,
                         0x0A, 0x09, 0x08, 0xFE, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01}));
  pods::wire::Reader r(out, "pinned");
  CHECK(r.u8() == 0x01);
  CHECK(r.u16() == 0x0203);
  CHECK(r.u32() == 0x04050607);
  CHECK(r.u64() == 0x08090A0B0C0D0E0FULL);
  CHECK(r.i64() == -2);
  CHECK(r.boolean());
  CHECK(r.remaining() == 0);
  r.expect_end();
}

TEST_CASE("wire: round trip of every field kind, with extremes", "[wire]") {
  pods::Buffer out{std::byte{0x77}};  // the writer appends
  pods::wire::Writer w(out);
  w.u64(std::numeric_limits<std::uint64_t>::max());
  w.i64(std::numeric_limits<std::int64_t>::min());
  w.f64(-0.25);
  w.string("");
  w.string("key");
  const std::vector<std::byte> payload = bytes_of({0, 255, 7});
  w.bytes(payload);
  w.count(2);
  w.u8(9);
  w.u8(8);
  w.boolean(false);
  REQUIRE(out[0] == std::byte{0x77});
  const std::span<const std::byte> body = std::span<const std::byte>(out).subspan(1);
  pods::wire::Reader r(body, "round trip");
  CHECK(r.u64() == std::numeric_limits<std::uint64_t>::max());
  CHECK(r.i64() == std::numeric_limits<std::int64_t>::min());
  CHECK(r.f64() == -0.25);
  CHECK(r.string().empty());
  CHECK(r.string() == "key");
  CHECK(r.bytes() == payload);
  REQUIRE(r.count() == 2);
  CHECK(r.u8() == 9);
  CHECK(r.u8() == 8);
  CHECK_FALSE(r.boolean());
  CHECK_NOTHROW(r.expect_end());
}

TEST_CASE("wire: a truncated field throws CorruptionError naming the input, offset and field",
          "[wire]") {
  const pods::Buffer three = bytes_of({1, 2, 3});
  pods::wire::Reader r(three, "ping message");
  CHECK(r.u8() == 1);
  try {
    (void)r.u32();
    FAIL("no throw");
  } catch (const pods::CorruptionError& e) {
    CHECK(e.file() == "ping message");
    CHECK(e.offset() == 1);
    CHECK(std::string(e.what()) ==
          "corrupt data in ping message at offset 1: truncated: a u32 needs 4 bytes, 2 remain");
  }
  CHECK(r.offset() == 1);  // a failed read consumes nothing
}

TEST_CASE("wire: a byte string longer than the input is refused before any allocation", "[wire]") {
  pods::Buffer out;
  pods::wire::Writer w(out);
  w.u32(0xFFFFFFFFu);  // claims 4 GiB
  out.push_back(std::byte{1});
  pods::wire::Reader r(out, "frame");
  CHECK_THROWS_WITH(r.bytes(),
                    "corrupt data in frame at offset 0: a byte string claims "
                    "4294967295 bytes, 1 remain");
}

TEST_CASE("wire: a hostile count is bounded by the bytes that remain", "[wire]") {
  pods::Buffer out;
  pods::wire::Writer w(out);
  w.count(3);
  w.u64(1);
  w.u64(2);  // room for two 8-byte elements, not three
  {
    pods::wire::Reader r(out, "digest");
    CHECK_THROWS_WITH(r.count(8),
                      "corrupt data in digest at offset 0: a count of 3 elements "
                      "cannot fit in the 16 bytes that remain");
  }
  {
    pods::wire::Reader r(out, "digest");
    CHECK(r.count(1) == 3);  // with 1-byte elements 3 fit in 16 bytes
    CHECK(r.count(0) == 1);  // 0 is treated as 1: reads the low word of u64(1)
  }
}

TEST_CASE("wire: a bool byte other than 0 or 1, and trailing bytes, are corruption", "[wire]") {
  const pods::Buffer two = bytes_of({2, 0});
  pods::wire::Reader r(two, "vote");
  CHECK_THROWS_WITH(r.boolean(), "corrupt data in vote at offset 0: a bool byte is 2");
  pods::wire::Reader tail(two, "vote");
  (void)tail.u8();
  CHECK_THROWS_WITH(tail.expect_end(),
                    "corrupt data in vote at offset 1: 1 unexpected trailing bytes");
}

TEST_CASE("wire: header writes the version byte then the kind byte, pinned bytes", "[wire]") {
  pods::Buffer out;
  pods::wire::Writer w(out);
  w.header(3, 0);
  w.header(1, 255);
  CHECK(out == bytes_of({0x03, 0x00, 0x01, 0xFF}));
  pods::wire::Reader r(out, "pinned");
  CHECK(r.header(3, 1) == 0);
  CHECK(r.header(1, 256) == 255);
  r.expect_end();
  CHECK_THROWS_MATCHES(
      w.header(1, 256), std::invalid_argument,
      Catch::Message("pods::wire::Writer::header: kind must fit in a byte, got 256"));
  CHECK(out.size() == 4);  // a refused header writes nothing
}

TEST_CASE("wire: header refuses an unknown version or a kind past the last, at its offset",
          "[wire]") {
  const pods::Buffer good = bytes_of({0x07, 0x01, 0x02, 0x02});
  pods::wire::Reader ok(good, "m");
  CHECK(ok.u8() == 0x07);  // a header need not open the input: offsets are the reader's own
  CHECK(ok.header(1, 3) == 2);
  CHECK(ok.offset() == 3);

  pods::wire::Reader bad_version(good, "m");
  bad_version.u8();
  CHECK_THROWS_MATCHES(bad_version.header(2, 3), pods::CorruptionError,
                       Catch::Message("corrupt data in m at offset 1: unknown version 1"));
  pods::wire::Reader bad_kind(good, "m");
  bad_kind.u8();
  CHECK_THROWS_MATCHES(bad_kind.header(1, 2), pods::CorruptionError,
                       Catch::Message("corrupt data in m at offset 2: unknown message kind 2"));
  pods::wire::Reader named(good, "m");
  named.u8();
  CHECK_THROWS_MATCHES(named.header(1, 2, {.version = "format version", .kind = "tag"}),
                       pods::CorruptionError,
                       Catch::Message("corrupt data in m at offset 2: unknown tag 2"));
  pods::wire::Reader named_version(good, "m");
  CHECK_THROWS_MATCHES(named_version.header(1, 2, {.version = "format version", .kind = "tag"}),
                       pods::CorruptionError,
                       Catch::Message("corrupt data in m at offset 0: unknown format version 7"));

  // A header cut short is a truncated u8, as any other field.
  const pods::Buffer empty;
  pods::wire::Reader none(empty, "m");
  CHECK_THROWS_MATCHES(
      none.header(1, 1), pods::CorruptionError,
      Catch::Message("corrupt data in m at offset 0: truncated: a u8 needs 1 bytes, 0 remain"));
  const pods::Buffer one = bytes_of({0x01});
  pods::wire::Reader half(one, "m");
  CHECK_THROWS_MATCHES(
      half.header(1, 1), pods::CorruptionError,
      Catch::Message("corrupt data in m at offset 1: truncated: a u8 needs 1 bytes, 0 remain"));
}

TEST_CASE("wire: expect_version alone, and kind with a first kind number other than 0", "[wire]") {
  const pods::Buffer in = bytes_of({0x01, 0x00, 0x01, 0x02, 0x03});
  pods::wire::Reader r(in, "m");
  r.expect_version(1);
  CHECK_THROWS_MATCHES(r.kind(2, "kind", 1), pods::CorruptionError,
                       Catch::Message("corrupt data in m at offset 1: unknown kind 0"));
  pods::wire::Reader s(in, "m");
  s.expect_version(1, "lease message version");
  s.u8();
  CHECK(s.kind(2, "kind", 1) == 0);
  CHECK(s.kind(2, "kind", 1) == 1);
  CHECK_THROWS_MATCHES(s.kind(2, "kind", 1), pods::CorruptionError,
                       Catch::Message("corrupt data in m at offset 4: unknown kind 3"));
  pods::wire::Reader t(in, "m");
  CHECK_THROWS_MATCHES(
      t.expect_version(2, "lease message version"), pods::CorruptionError,
      Catch::Message("corrupt data in m at offset 0: unknown lease message version 1"));
}

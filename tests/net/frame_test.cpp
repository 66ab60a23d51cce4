#include <pods/net/frame.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

pods::Buffer bytes_of(std::initializer_list<int> v) {
  pods::Buffer out;
  for (int b : v)
    out.push_back(static_cast<std::byte>(b));
  return out;
}

std::span<const std::byte> text(std::string_view s) {
  return std::as_bytes(std::span(s));
}

std::string as_string(std::span<const std::byte> b) {
  return {reinterpret_cast<const char*>(b.data()), b.size()};
}

// Feeds `wire` to a fresh decoder in chunks cut at `cuts` (ascending offsets) and returns the
// frames it handed out.
std::vector<std::string> decode_in_chunks(const pods::Buffer& wire,
                                          const std::vector<std::size_t>& cuts) {
  pods::net::FrameDecoder decoder("node 1");
  std::vector<std::string> frames;
  std::size_t at = 0;
  auto on_frame = [&](std::span<const std::byte> f) { frames.push_back(as_string(f)); };
  for (std::size_t cut : cuts) {
    decoder.feed(std::span(wire).subspan(at, cut - at), on_frame);
    at = cut;
  }
  decoder.feed(std::span(wire).subspan(at), on_frame);
  CHECK(decoder.buffered() == 0);
  CHECK(decoder.offset() == wire.size());
  return frames;
}

}  // namespace

TEST_CASE("frame: length, CRC32C, bytes, little-endian (pinned)", "[frame]") {
  pods::Buffer wire;
  pods::net::append_frame(text("123456789"), wire);
  // 9 = 0x09; CRC32C("123456789") is the standard check value 0xE3069283.
  const pods::Buffer expected = bytes_of(
      {0x09, 0, 0, 0, 0x83, 0x92, 0x06, 0xE3, '1', '2', '3', '4', '5', '6', '7', '8', '9'});
  CHECK(wire == expected);

  SECTION("begin_frame/end_frame frame a payload encoded in place, the same bytes") {
    pods::Buffer in_place;
    const std::size_t start = pods::net::begin_frame(in_place);
    pods::StringCodec{}.encode("123456789", in_place);
    pods::net::end_frame(in_place, start);
    CHECK(in_place == expected);
  }
  SECTION("an empty payload is a frame of its own") {
    pods::Buffer empty;
    pods::net::append_frame({}, empty);
    CHECK(empty == bytes_of({0, 0, 0, 0, 0, 0, 0, 0}));  // CRC32C of nothing is 0
  }
}

TEST_CASE("frame: whole frames out of any chunking of the stream", "[frame]") {
  pods::Buffer wire;
  const std::vector<std::string> sent = {"alpha", "", "a somewhat longer third payload", "z"};
  for (const auto& s : sent)
    pods::net::append_frame(text(s), wire);

  SECTION("all at once") {
    CHECK(decode_in_chunks(wire, {}) == sent);
  }
  SECTION("one byte at a time") {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < wire.size(); ++i)
      cuts.push_back(i);
    CHECK(decode_in_chunks(wire, cuts) == sent);
  }
  SECTION("every single cut and every pair of cuts") {
    for (std::size_t i = 0; i <= wire.size(); ++i) {
      REQUIRE(decode_in_chunks(wire, {i}) == sent);
      for (std::size_t j = i; j <= wire.size(); j += 3)
        REQUIRE(decode_in_chunks(wire, {i, j}) == sent);
    }
  }
  SECTION("prepare and commit: a socket reading straight into the decoder") {
    pods::net::FrameDecoder decoder("node 1");
    std::vector<std::string> frames;
    std::size_t at = 0;
    while (at < wire.size()) {
      std::span<std::byte> space = decoder.prepare(7);
      REQUIRE(space.size() >= 7);
      const std::size_t n = std::min<std::size_t>(7, wire.size() - at);
      std::copy_n(wire.begin() + static_cast<std::ptrdiff_t>(at), n, space.begin());
      decoder.commit(n, [&](std::span<const std::byte> f) { frames.push_back(as_string(f)); });
      at += n;
    }
    CHECK(frames == sent);
  }
}

TEST_CASE("frame: a truncated frame is held, not handed out", "[frame]") {
  pods::Buffer wire;
  pods::net::append_frame(text("complete"), wire);
  pods::net::append_frame(text("cut short"), wire);
  wire.resize(wire.size() - 3);
  pods::net::FrameDecoder decoder("node 4");
  std::vector<std::string> frames;
  decoder.feed(wire, [&](std::span<const std::byte> f) { frames.push_back(as_string(f)); });
  CHECK(frames == std::vector<std::string>{"complete"});
  CHECK(decoder.buffered() == 8 + 9 - 3);
  CHECK(decoder.offset() == 8 + 8);
  CHECK_FALSE(decoder.failed());
}

TEST_CASE("frame: a length over the maximum is refused from its header alone", "[frame]") {
  pods::net::FrameDecoder decoder("node 3", 16);
  pods::Buffer wire;
  pods::net::append_frame(text("ok"), wire);                     // 10 bytes
  const pods::Buffer huge = bytes_of({0xFF, 0xFF, 0xFF, 0xFF});  // claims 4 GiB - 1
  wire.insert(wire.end(), huge.begin(), huge.end());
  wire.insert(wire.end(), 4, std::byte{0});  // a CRC; no payload follows
  int frames = 0;
  auto on_frame = [&](std::span<const std::byte>) { ++frames; };
  // The header is all it needs: it does not wait for (or allocate) the 4 GiB.
  CHECK_THROWS_MATCHES(decoder.feed(wire, on_frame), pods::CorruptionError,
                       Catch::Message("corrupt data in frame from node 3 at offset 10: a frame "
                                      "claims 4294967295 bytes, the maximum is 16"));
  CHECK(frames == 1);
  CHECK(decoder.failed());
  SECTION("and keeps refusing: the stream lost its framing") {
    pods::Buffer good;
    pods::net::append_frame(text("x"), good);
    CHECK_THROWS_AS(decoder.feed(good, on_frame), pods::CorruptionError);
    CHECK_THROWS_AS(decoder.prepare(1), pods::CorruptionError);
    CHECK(frames == 1);
  }
  SECTION("a frame of exactly the maximum passes") {
    pods::net::FrameDecoder exact("node 3", 16);
    pods::Buffer sixteen;
    pods::net::append_frame(text("0123456789abcdef"), sixteen);
    exact.feed(sixteen, on_frame);
    CHECK(frames == 2);
  }
}

TEST_CASE("frame: a flipped byte fails the checksum, named with its offset", "[frame]") {
  pods::Buffer wire;
  pods::net::append_frame(text("first"), wire);   // bytes 0..12
  pods::net::append_frame(text("second"), wire);  // bytes 13..26
  const std::uint32_t crc = pods::crc32c(text("second"));
  wire[13 + 8 + 2] ^= std::byte{0x10};  // "second" -> "sesond"
  const std::uint32_t flipped = pods::crc32c(text("sesond"));
  pods::net::FrameDecoder decoder("node 9");
  std::vector<std::string> frames;
  std::string expected =
      "corrupt data in frame from node 9 at offset 13: checksum mismatch: the "
      "frame says ";
  expected += std::to_string(crc);
  expected += ", its 6 bytes give ";
  expected += std::to_string(flipped);
  CHECK_THROWS_MATCHES(
      decoder.feed(wire, [&](std::span<const std::byte> f) { frames.push_back(as_string(f)); }),
      pods::CorruptionError, Catch::Message(expected));
  CHECK(frames == std::vector<std::string>{"first"});  // the bad one never reaches the handler
}

TEST_CASE("frame: set_source renames the stream in later errors", "[frame]") {
  pods::net::FrameDecoder decoder;
  decoder.set_source("node 12 (127.0.0.1:4000)");
  const pods::Buffer bad = bytes_of({1, 0, 0, 0, 0, 0, 0, 0, 'x'});
  try {
    decoder.feed(bad, [](std::span<const std::byte>) {});
    FAIL("no error");
  } catch (const pods::CorruptionError& e) {
    CHECK(e.file() == "frame from node 12 (127.0.0.1:4000)");
    CHECK(e.offset() == 0);
  }
}

TEST_CASE("frame: bad configuration throws std::invalid_argument naming it", "[frame]") {
  CHECK_THROWS_MATCHES(
      pods::net::FrameDecoder("x", 0), std::invalid_argument,
      Catch::Message("FrameDecoder: max_frame_bytes must be between 1 and 4294967295"));
  pods::net::FrameDecoder decoder;
  decoder.prepare(4);
  CHECK_THROWS_MATCHES(decoder.commit(1 << 20, [](std::span<const std::byte>) {}),
                       std::invalid_argument,
                       Catch::Message("FrameDecoder::commit: n exceeds the space prepare() gave"));
}

TEST_CASE("handshake: 28 bytes, pinned, and round trip", "[frame][handshake]") {
  const pods::net::Handshake h{.version = 1, .application = 0x01020304, .from = 5, .to = 0x1122};
  pods::Buffer out;
  pods::net::encode_handshake(h, out);
  const pods::Buffer expected = bytes_of({'P', 'O', 'D', 'S', 1, 0, 0,    0,    4, 3, 2, 1, 5, 0,
                                          0,   0,   0,   0,   0, 0, 0x22, 0x11, 0, 0, 0, 0, 0, 0});
  CHECK(out == expected);
  CHECK(out.size() == pods::net::handshake_bytes);
  CHECK(pods::net::decode_handshake(out) == h);
}

TEST_CASE("handshake: bad bytes throw CorruptionError naming the reason", "[frame][handshake]") {
  pods::Buffer good;
  pods::net::encode_handshake({.from = 1, .to = 2}, good);
  SECTION("wrong size") {
    pods::Buffer short_one(good.begin(), good.end() - 1);
    CHECK_THROWS_MATCHES(
        pods::net::decode_handshake(short_one, "handshake from 127.0.0.1:9"), pods::CorruptionError,
        Catch::Message("corrupt data in handshake from 127.0.0.1:9 at offset 0: a handshake is "
                       "28 bytes, got 27"));
  }
  SECTION("wrong magic") {
    good[0] = std::byte{'G'};
    CHECK_THROWS_MATCHES(pods::net::decode_handshake(good), pods::CorruptionError,
                         Catch::Message("corrupt data in handshake at offset 0: not a pods "
                                        "handshake (bad magic)"));
  }
  SECTION("a reserved field that is not zero") {
    good[6] = std::byte{1};
    CHECK_THROWS_MATCHES(pods::net::decode_handshake(good), pods::CorruptionError,
                         Catch::Message("corrupt data in handshake at offset 6: the reserved "
                                        "field is not zero"));
  }
}

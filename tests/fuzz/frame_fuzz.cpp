// Fuzzes the frame decoder and the handshake decoder of <pods/net/frame.hpp>.
//
// Input: byte 0 sets the decoder's maximum frame length (1 + 4 * byte), byte 1 seeds the
// chunking, the rest is the stream. The stream is decoded twice: whole, and cut into chunks of
// 1 to 64 bytes drawn from pods::Random (through prepare/commit and through feed, alternately).
// Both must hand out the same frames and end the same way: no error, or a CorruptionError with
// the same message. Every frame handed out must fit the maximum, and the frames re-encoded
// with append_frame must give back exactly the bytes consumed (the format is canonical). Any
// other exception, crash or sanitizer report is a bug.
// The first 28 bytes of the stream are also decoded as a handshake: when that succeeds,
// encoding the result must give the same 28 bytes.
#include <pods/net/frame.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/random.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "frame_fuzz: %s\n", what);
  std::abort();
}

struct Decoded {
  std::vector<pods::Buffer> frames;
  std::optional<std::string> error;
  std::uint64_t offset = 0;
};

template <class Feed>
Decoded decode(std::size_t max, Feed&& feed) {
  Decoded out;
  pods::net::FrameDecoder decoder("fuzz", max);
  auto on_frame = [&](std::span<const std::byte> f) {
    if (f.size() > max) bug("a frame over the maximum was handed out");
    out.frames.emplace_back(f.begin(), f.end());
  };
  try {
    feed(decoder, on_frame);
  } catch (const pods::CorruptionError& e) {
    out.error = e.what();
    if (!decoder.failed()) bug("the decoder threw but does not say it failed");
    try {
      decoder.feed(std::span<const std::byte>(), on_frame);
      bug("a failed decoder accepted more input");
    } catch (const pods::CorruptionError& again) {
      if (std::string(again.what()) != *out.error) bug("a failed decoder changed its error");
    }
  }
  out.offset = decoder.offset();
  return out;
}

void frames(std::size_t max, std::uint8_t seed, std::span<const std::byte> stream) {
  const Decoded whole =
      decode(max, [&](pods::net::FrameDecoder& d, auto& on_frame) { d.feed(stream, on_frame); });
  const Decoded chunked = decode(max, [&](pods::net::FrameDecoder& d, auto& on_frame) {
    pods::Random random(seed);
    std::size_t at = 0;
    bool use_prepare = false;
    while (at < stream.size()) {
      const std::size_t n = std::min<std::size_t>(1 + random.below(64), stream.size() - at);
      if (use_prepare) {
        std::span<std::byte> space = d.prepare(n);
        std::memcpy(space.data(), stream.data() + at, n);
        d.commit(n, on_frame);
      } else {
        d.feed(stream.subspan(at, n), on_frame);
      }
      use_prepare = !use_prepare;
      at += n;
    }
  });
  if (whole.frames != chunked.frames) bug("chunking changed the frames");
  if (whole.error != chunked.error) bug("chunking changed the error");
  if (whole.offset != chunked.offset) bug("chunking changed the offset");

  pods::Buffer again;
  for (const auto& f : whole.frames)
    pods::net::append_frame(f, again);
  if (again.size() != whole.offset) bug("the offset is not the bytes of the frames handed out");
  if (!std::equal(again.begin(), again.end(), stream.begin())) {
    bug("re-encoding the frames did not give the bytes consumed");
  }
}

void handshake(std::span<const std::byte> stream) {
  if (stream.size() < pods::net::handshake_bytes) return;
  const auto bytes = stream.first(pods::net::handshake_bytes);
  pods::net::Handshake h;
  try {
    h = pods::net::decode_handshake(bytes);
  } catch (const pods::CorruptionError&) {
    return;
  }
  pods::Buffer out;
  pods::net::encode_handshake(h, out);
  if (!std::equal(out.begin(), out.end(), bytes.begin(), bytes.end())) {
    bug("a decoded handshake does not encode to its bytes");
  }
  if (pods::net::decode_handshake(out) != h) bug("handshake round trip changed it");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t max = 1 + 4 * static_cast<std::size_t>(data[0]);
  const std::span<const std::byte> stream(reinterpret_cast<const std::byte*>(data + 2), size - 2);
  frames(max, data[1], stream);
  handshake(stream);
  return 0;
}

// pods/net/frame.hpp — the frame format and handshake of the Single-Socket Channel
//
// Problem:       TCP delivers a byte stream, not messages: a read returns half a message or
//                three and a half. A receiver that trusts a length read off the wire allocates
//                4 GiB for a hostile or corrupted peer, and one that does not check the bytes
//                hands a flipped bit to the application as a message.
// Solution:      Every message travels as a frame: a u32 length, the u32 CRC32C of the bytes,
//                then the bytes (little-endian). FrameDecoder is fed whatever chunks the socket
//                returns and calls back once per whole frame; it checks a frame's length
//                against the configured maximum as soon as the 8-byte header is in, before it
//                grows its buffer for it, and the checksum before it hands the bytes out. A
//                connection opens with a fixed 28-byte handshake: the magic "PODS", the frame
//                protocol version, the application's protocol version, the sender's NodeId and
//                the NodeId it means to reach. This header needs no networking library: the
//                transport (<pods/net/tcp_transport.hpp>) uses it, and a fuzzer tests it alone.
// Guarantees:    A frame handed out has exactly the bytes and the checksum its sender wrote,
//                whatever the chunking of the stream. The decoder never holds more than one
//                partial frame (at most max_frame_bytes + 8 bytes) plus the space asked for by
//                prepare(). After one error every later call throws the same error: a stream
//                that lost its framing never resynchronises on garbage.
// Not provided:  Protection against deliberate tampering (CRC32C is no MAC: stack an
//                AuthenticatedLink for that). A corrupted length field at or below the maximum
//                makes the decoder wait for bytes that may never come; the connection's owner
//                bounds that wait (the peer closes, or the transport gives up).
// Thread safety: thread-compatible: one decoder per stream, used by one thread at a time.
// Errors:        FrameDecoder throws pods::CorruptionError("frame from <source>", stream offset
//                of the frame, reason) for a length over the maximum and a checksum mismatch;
//                decode_handshake throws CorruptionError for a wrong size, magic or reserved
//                field; append_frame and end_frame throw std::length_error past 4 GiB - 1.
//                The constructor throws std::invalid_argument for max_frame_bytes of 0 or more
//                than 4 GiB - 1.
// Cost:          Encoding: one CRC32C pass (about 8 bytes per 3 cycles with SSE4.2), one copy.
//                Decoding: one CRC32C pass per frame; a frame that arrives whole inside one
//                read is handed out in place, with no copy; only a frame split across reads
//                is moved to the front of the buffer once.
// Example:
//   pods::Buffer wire;
//   pods::net::append_frame(std::as_bytes(std::span(std::string_view("hello"))), wire);
//   pods::net::FrameDecoder decoder("node 2");               // names the peer in errors
//   std::size_t frames = 0;
//   auto on_frame = [&](std::span<const std::byte> payload) { frames += payload.size() == 5; };
//   decoder.feed(std::span(wire).first(3), on_frame);        // half a header: nothing yet
//   decoder.feed(std::span(wire).subspan(3), on_frame);      // the rest: one frame
//   assert(frames == 1);
#pragma once

#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>
#include <pods/storage/crc32c.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pods::net {

// The bytes of a frame header: the u32 length and the u32 CRC32C.
inline constexpr std::size_t frame_header_bytes = 8;
// The largest frame payload a decoder accepts unless configured otherwise (16 MiB).
inline constexpr std::size_t default_max_frame_bytes = std::size_t{16} << 20;
// The largest payload the format can carry: the length is a u32.
inline constexpr std::size_t max_frame_format_bytes = std::numeric_limits<std::uint32_t>::max();

namespace detail {
inline void store_le32(std::byte* p, std::uint32_t v) noexcept {
  for (int i = 0; i < 4; ++i)
    p[i] = static_cast<std::byte>(v >> (8 * i));
}
inline std::uint32_t frame_length_of(std::size_t n) {
  if (n > max_frame_format_bytes) {
    throw std::length_error("pods::net frame: a payload of " + std::to_string(n) +
                            " bytes does not fit a 32-bit length");
  }
  return static_cast<std::uint32_t>(n);
}
}  // namespace detail

// Appends to `out` the frame header of the payload that follows it in place: reserves the 8
// header bytes and returns the offset of the frame's start, to pass to end_frame once the
// payload has been appended (a codec encodes straight into the frame this way). Allocates as
// `out` grows.
inline std::size_t begin_frame(Buffer& out) {
  const std::size_t start = out.size();
  out.resize(start + frame_header_bytes);
  return start;
}

// Completes the frame begun at `start` by begin_frame: writes the length and the CRC32C of
// every byte appended after the header. Throws std::length_error past 4 GiB - 1.
inline void end_frame(Buffer& out, std::size_t start) {
  const std::size_t payload = out.size() - start - frame_header_bytes;
  const std::uint32_t length = detail::frame_length_of(payload);
  std::byte* header = out.data() + start;
  detail::store_le32(header, length);
  detail::store_le32(header + 4, crc32c(header + frame_header_bytes, payload));
}

// Appends one frame holding a copy of `payload` to `out`. Allocates as `out` grows. Throws
// std::length_error past 4 GiB - 1.
inline void append_frame(std::span<const std::byte> payload, Buffer& out) {
  wire::Writer w(out);
  w.u32(detail::frame_length_of(payload.size()));
  w.u32(crc32c(payload));
  out.insert(out.end(), payload.begin(), payload.end());
}

// FrameDecoder: whole frames out of a byte stream fed in arbitrary chunks.
//
// Two ways to feed it: feed(bytes, on_frame) copies the bytes in; prepare(n) and commit(n,
// on_frame) let a socket read straight into the decoder's buffer (no copy). on_frame is called
// with each whole frame's payload, a span valid only during the call; it must not call back
// into the decoder. An exception thrown by on_frame propagates to the caller of commit/feed,
// with that frame consumed.
class FrameDecoder {
 public:
  // Creates a decoder for the stream from `source` (named in errors as "frame from <source>")
  // that refuses frames longer than `max_frame_bytes`. Allocates nothing until fed. Throws
  // std::invalid_argument when max_frame_bytes is 0 or above 4 GiB - 1.
  explicit FrameDecoder(std::string source = "stream",
                        std::size_t max_frame_bytes = default_max_frame_bytes)
      : what_(describe(source)), max_(max_frame_bytes) {
    if (max_frame_bytes == 0 || max_frame_bytes > max_frame_format_bytes) {
      throw std::invalid_argument("FrameDecoder: max_frame_bytes must be between 1 and 4294967295");
    }
  }

  // Renames the stream's source in later errors (once a handshake names the peer).
  void set_source(const std::string& source) { what_ = describe(source); }

  // Returns a writable span of at least `at_least` bytes at the end of the buffered data, to
  // read into and then pass the count read to commit(). Moves a partial frame to the front or
  // grows the buffer when needed (allocates then). Throws the stored error after a failure.
  std::span<std::byte> prepare(std::size_t at_least) {
    rethrow_if_failed();
    if (buf_.size() - tail_ < at_least) {
      if (head_ != 0) {
        std::memmove(buf_.data(), buf_.data() + head_, tail_ - head_);
        tail_ -= head_;
        head_ = 0;
      }
      if (buf_.size() - tail_ < at_least) buf_.resize(tail_ + at_least);
    }
    return {buf_.data() + tail_, buf_.size() - tail_};
  }

  // Takes the first `n` bytes of the span prepare() returned as received, and calls
  // on_frame(std::span<const std::byte>) for each frame now whole, in stream order. Throws
  // pods::CorruptionError for a frame longer than the maximum (as soon as its header is in) or
  // with a bad checksum, and keeps throwing it on every later call.
  template <class OnFrame>
  void commit(std::size_t n, OnFrame&& on_frame) {
    rethrow_if_failed();
    if (n > buf_.size() - tail_) {
      throw std::invalid_argument("FrameDecoder::commit: n exceeds the space prepare() gave");
    }
    tail_ += n;
    while (tail_ - head_ >= frame_header_bytes) {
      const auto* header = reinterpret_cast<const unsigned char*>(buf_.data() + head_);
      const std::uint32_t length = pods::detail::load_le32(header);
      if (length > max_) {
        fail("a frame claims " + std::to_string(length) + " bytes, the maximum is " +
             std::to_string(max_));
      }
      if (tail_ - head_ < frame_header_bytes + length) break;
      const std::byte* payload = buf_.data() + head_ + frame_header_bytes;
      const std::uint32_t stored = pods::detail::load_le32(header + 4);
      const std::uint32_t computed = crc32c(payload, length);
      if (stored != computed) {
        fail("checksum mismatch: the frame says " + std::to_string(stored) + ", its " +
             std::to_string(length) + " bytes give " + std::to_string(computed));
      }
      head_ += frame_header_bytes + length;
      offset_ += frame_header_bytes + length;
      on_frame(std::span<const std::byte>(payload, length));
    }
    if (head_ == tail_) head_ = tail_ = 0;
  }

  // Copies `bytes` in and calls on_frame for each frame now whole (see commit).
  template <class OnFrame>
  void feed(std::span<const std::byte> bytes, OnFrame&& on_frame) {
    if (bytes.empty()) {
      rethrow_if_failed();
      return;
    }
    std::span<std::byte> space = prepare(bytes.size());
    std::memcpy(space.data(), bytes.data(), bytes.size());
    commit(bytes.size(), on_frame);
  }

  // Returns the stream offset of the first byte not yet handed out in a frame.
  std::uint64_t offset() const noexcept { return offset_; }
  // Returns how many bytes of an incomplete frame are buffered (non-zero when a stream that
  // ends now ends inside a frame: a truncated frame).
  std::size_t buffered() const noexcept { return tail_ - head_; }
  // Returns true once the decoder has thrown: the stream is unusable.
  bool failed() const noexcept { return error_.has_value(); }
  // Returns the maximum frame length this decoder accepts.
  std::size_t max_frame_bytes() const noexcept { return max_; }

 private:
  static std::string describe(const std::string& source) {
    std::string what = "frame from ";
    what += source;
    return what;
  }
  [[noreturn]] void fail(const std::string& reason) {
    error_.emplace(what_, offset_, reason);
    throw *error_;
  }
  void rethrow_if_failed() const {
    if (error_) throw *error_;
  }

  std::string what_;
  std::size_t max_;
  std::vector<std::byte> buf_;
  std::size_t head_ = 0;  // first unconsumed byte
  std::size_t tail_ = 0;  // end of the received bytes
  std::uint64_t offset_ = 0;
  std::optional<CorruptionError> error_;
};

// The magic number a handshake opens with: the bytes "PODS".
inline constexpr std::uint32_t handshake_magic = 0x53444F50;
// The version of the frame and handshake format this header speaks.
inline constexpr std::uint16_t frame_protocol_version = 1;
// The size of an encoded handshake: magic u32, version u16, reserved u16 (zero), application
// version u32, sender u64, intended receiver u64.
inline constexpr std::size_t handshake_bytes = 28;

// The first bytes each side of a connection sends: who it is and whom it means to reach.
struct Handshake {
  std::uint16_t version = frame_protocol_version;  // the frame format's version
  std::uint32_t application = 0;                   // the user's protocol version (options)
  NodeId from = 0;                                 // the sender
  NodeId to = 0;                                   // the node the sender means to reach

  friend bool operator==(const Handshake&, const Handshake&) = default;
};

// Appends the 28 bytes of `h` to `out`.
inline void encode_handshake(const Handshake& h, Buffer& out) {
  wire::Writer w(out);
  w.u32(handshake_magic);
  w.u16(h.version);
  w.u16(0);
  w.u32(h.application);
  w.u64(h.from);
  w.u64(h.to);
}

// Returns the handshake in `bytes`. Throws pods::CorruptionError(what, offset, reason) unless
// they are exactly 28 bytes with the magic and a zero reserved field; `what` must outlive the
// call. The versions are returned as they are: comparing them is the caller's.
inline Handshake decode_handshake(std::span<const std::byte> bytes,
                                  std::string_view what = "handshake") {
  wire::Reader r(bytes, what);
  if (bytes.size() != handshake_bytes) {
    r.fail(0, "a handshake is 28 bytes, got " + std::to_string(bytes.size()));
  }
  if (r.u32() != handshake_magic) r.fail(0, "not a pods handshake (bad magic)");
  Handshake h;
  h.version = r.u16();
  if (r.u16() != 0) r.fail(6, "the reserved field is not zero");
  h.application = r.u32();
  h.from = r.u64();
  h.to = r.u64();
  r.expect_end();
  return h;
}

}  // namespace pods::net

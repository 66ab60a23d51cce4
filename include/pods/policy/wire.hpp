// pods/policy/wire.hpp — little-endian, bounds-checked writing and reading of message fields
//
// Problem:       Every protocol ships a MessageCodec, and each one hand-rolling its integer
//                encoding and its length checks is where a malformed frame turns into an
//                out-of-bounds read or a 4 GiB allocation.
// Solution:      wire::Writer appends fixed-width little-endian integers, length-prefixed byte
//                strings and sequence counts to a Buffer; wire::Reader reads them back from a
//                span, checking every read against the bytes that remain and throwing
//                CorruptionError at the offset where the bytes went wrong. A sequence count is
//                checked against the bytes left (each element needs at least one), so a
//                hostile count cannot make the decoder allocate more than the frame's size.
//                Every codec opens with the same header, a version byte and a kind byte (the
//                variant index of the message): Writer::header writes it and Reader::header
//                reads it back, refusing an unknown version or a kind past the last one, so
//                no codec repeats that check.
// Guarantees:    The same values give the same bytes on every platform (little-endian, fixed
//                widths). Reader never reads outside its span; every failure is a
//                CorruptionError naming `what`, the offset and the field.
// Not provided:  Schema evolution: a codec writes its own version byte first (Writer::header,
//                or Writer::u8 when it has one kind) and refuses versions it does not know.
// Thread safety: thread-compatible values; a Writer or Reader is used by one thread.
// Errors:        Reader throws pods::CorruptionError(what, offset, reason); Writer throws
//                std::length_error when a byte string or a count does not fit in 32 bits.
//                Reader::expect_version, kind and header throw CorruptionError at the
//                offending byte with "unknown version N" / "unknown message kind N" (the
//                nouns are the codec's HeaderNames); Writer::header throws
//                std::invalid_argument("pods::wire::Writer::header: kind must fit in a
//                byte, got N").
// Cost:          O(1) per integer; byte strings copy once. Writer may grow its buffer.
// Example:
//   pods::Buffer out;
//   pods::wire::Writer w(out);
//   w.header(1, 0);          // version 1, kind 0 (the message's variant index)
//   w.u64(42);
//   w.string("key");
//   pods::wire::Reader r(out, "example message");
//   std::size_t kind = r.header(1, 2);  // version 1, kinds 0 and 1; throws on others
//   std::uint64_t n = r.u64();
//   std::string key = r.string();
//   r.expect_end();          // trailing bytes are corruption too
#pragma once

#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace pods::wire {

// The nouns a codec's header errors use: "unknown <version> N" and "unknown <kind> N".
struct HeaderNames {
  std::string_view version = "version";
  std::string_view kind = "message kind";
};

// Appends fields to a Buffer it does not own.
class Writer {
 public:
  // Writes into `out` (retained by reference; it must outlive the writer). Appends only.
  explicit Writer(Buffer& out) noexcept : out_(&out) {}

  void u8(std::uint8_t v) { out_->push_back(static_cast<std::byte>(v)); }
  void u16(std::uint16_t v) { put(v, 2); }
  void u32(std::uint32_t v) { put(v, 4); }
  void u64(std::uint64_t v) { put(v, 8); }
  // Writes a signed 64-bit integer as its two's-complement bits.
  void i64(std::int64_t v) { put(static_cast<std::uint64_t>(v), 8); }
  void boolean(bool v) { u8(v ? 1 : 0); }
  // Writes the IEEE-754 bits of `v`.
  void f64(double v) {
    std::uint64_t bits = 0;
    static_assert(sizeof bits == sizeof v);
    std::memcpy(&bits, &v, sizeof v);
    u64(bits);
  }
  // Writes a u32 length and then the bytes. Throws std::length_error past 4 GiB - 1.
  void bytes(std::span<const std::byte> b) {
    count(b.size());
    out_->insert(out_->end(), b.begin(), b.end());
  }
  // Writes a u32 length and then the characters.
  void string(std::string_view s) {
    bytes({reinterpret_cast<const std::byte*>(s.data()), s.size()});
  }
  // Writes a codec's header: the `version` byte, then the `kind` byte (the variant index of the
  // message). Throws std::invalid_argument when `kind` does not fit in a byte.
  void header(std::uint8_t version, std::size_t kind) {
    if (kind > std::numeric_limits<std::uint8_t>::max()) {
      std::string m = "pods::wire::Writer::header: kind must fit in a byte, got ";
      m += std::to_string(kind);
      throw std::invalid_argument(m);
    }
    u8(version);
    u8(static_cast<std::uint8_t>(kind));
  }
  // Writes the number of elements of a sequence that follows, as a u32.
  void count(std::size_t n) {
    if (n > std::numeric_limits<std::uint32_t>::max()) {
      throw std::length_error("pods::wire::Writer: " + std::to_string(n) +
                              " does not fit a 32-bit length");
    }
    u32(static_cast<std::uint32_t>(n));
  }

 private:
  void put(std::uint64_t v, int width) {
    for (int i = 0; i < width; ++i) {
      out_->push_back(static_cast<std::byte>(v >> (8 * i)));
    }
  }
  Buffer* out_;
};

// Reads fields from a span it does not own, checking every read.
class Reader {
 public:
  // Reads `bytes` (retained: they must outlive the reader); `what` names the input in errors
  // (a string literal or other storage that outlives the reader).
  Reader(std::span<const std::byte> bytes, std::string_view what) noexcept
      : bytes_(bytes), what_(what) {}

  std::uint8_t u8() { return static_cast<std::uint8_t>(get(1, "u8")); }
  std::uint16_t u16() { return static_cast<std::uint16_t>(get(2, "u16")); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(get(4, "u32")); }
  std::uint64_t u64() { return get(8, "u64"); }
  std::int64_t i64() { return static_cast<std::int64_t>(get(8, "i64")); }
  // Reads a bool; any byte other than 0 or 1 is corruption.
  bool boolean() {
    const std::size_t at = pos_;
    const std::uint8_t v = u8();
    if (v > 1) fail(at, "a bool byte is " + std::to_string(v));
    return v == 1;
  }
  double f64() {
    const std::uint64_t bits = u64();
    double v = 0;
    std::memcpy(&v, &bits, sizeof v);
    return v;
  }
  // Reads a u32 length and that many bytes. Allocates the result.
  std::vector<std::byte> bytes() {
    const auto view = bytes_view();
    return {view.begin(), view.end()};
  }
  // Reads a u32 length and returns a view of that many bytes inside the input.
  std::span<const std::byte> bytes_view() {
    const std::size_t at = pos_;
    const std::uint32_t n = u32();
    if (n > remaining()) {
      fail(at, "a byte string claims " + std::to_string(n) + " bytes, " +
                   std::to_string(remaining()) + " remain");
    }
    auto view = bytes_.subspan(pos_, n);
    pos_ += n;
    return view;
  }
  std::string string() {
    const auto view = bytes_view();
    return {reinterpret_cast<const char*>(view.data()), view.size()};
  }
  // Reads a sequence count whose elements take at least `min_element_bytes` each (>= 1), and
  // throws when the remaining bytes cannot hold that many: a count from a hostile peer never
  // sizes an allocation larger than its frame.
  std::size_t count(std::size_t min_element_bytes = 1) {
    const std::size_t at = pos_;
    const std::uint32_t n = u32();
    const std::size_t each = min_element_bytes == 0 ? 1 : min_element_bytes;
    if (n > remaining() / each) {
      fail(at, "a count of " + std::to_string(n) + " elements cannot fit in the " +
                   std::to_string(remaining()) + " bytes that remain");
    }
    return n;
  }
  // Reads a version byte and throws "unknown <name> N" at its offset unless it is `version`.
  void expect_version(std::uint8_t version, std::string_view name = HeaderNames{}.version) {
    const std::size_t at = pos_;
    const std::uint8_t v = u8();
    if (v != version) fail(at, unknown(name, v));
  }
  // Reads a kind byte, accepts first .. first + kinds - 1 and returns it less `first` (the
  // variant index); throws "unknown <name> N" at its offset for any other byte.
  std::size_t kind(std::size_t kinds, std::string_view name = HeaderNames{}.kind,
                   std::size_t first = 0) {
    const std::size_t at = pos_;
    const std::uint8_t k = u8();
    if (k < first || k - first >= kinds) fail(at, unknown(name, k));
    return k - first;
  }
  // Reads the header Writer::header writes: checks the version byte is `version` and returns
  // the kind byte, which must be below `kinds`. Throws as expect_version and kind do.
  std::size_t header(std::uint8_t version, std::size_t kinds, HeaderNames names = {}) {
    expect_version(version, names.version);
    return kind(kinds, names.kind);
  }
  // Throws unless every byte has been read.
  void expect_end() const {
    if (pos_ != bytes_.size()) {
      fail(pos_, std::to_string(bytes_.size() - pos_) + " unexpected trailing bytes");
    }
  }
  // Throws a CorruptionError at the current offset with `reason`.
  [[noreturn]] void fail(const std::string& reason) const { fail(pos_, reason); }
  // Throws a CorruptionError at `offset` with `reason`.
  [[noreturn]] void fail(std::size_t offset, const std::string& reason) const {
    throw CorruptionError(std::string(what_), offset, reason);
  }

  std::size_t offset() const noexcept { return pos_; }
  std::size_t remaining() const noexcept { return bytes_.size() - pos_; }

 private:
  static std::string unknown(std::string_view name, std::uint8_t value) {
    std::string reason = "unknown ";
    reason += name;
    reason += ' ';
    reason += std::to_string(value);
    return reason;
  }

  std::uint64_t get(std::size_t width, const char* field) {
    if (width > remaining()) {
      std::string reason = "truncated: a ";
      reason += field;
      reason += " needs ";
      reason += std::to_string(width);
      reason += " bytes, ";
      reason += std::to_string(remaining());
      reason += " remain";
      fail(pos_, reason);
    }
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < width; ++i) {
      v |= static_cast<std::uint64_t>(bytes_[pos_ + i]) << (8 * i);
    }
    pos_ += width;
    return v;
  }

  std::span<const std::byte> bytes_;
  std::string_view what_;
  std::size_t pos_ = 0;
};

}  // namespace pods::wire

// pods/policy/codec.hpp — the Codec policy: a message type to bytes and back
//
// Problem:       A log or a transport moves bytes, but its users think in entries and
//                messages; each one hand-rolling its serialisation spreads format decisions
//                (and unchecked reads of untrusted bytes) across the code.
// Solution:      A Codec<M> is a cheap value with encode(const M&, Buffer&) appending M's bytes
//                to a buffer and decode(bytes) -> M rebuilding it, throwing CorruptionError
//                when the bytes are not an encoding of an M. Blocks that store or send typed
//                values (WriteAheadLog, transports) take one as a policy. A few codecs for
//                common types ship here: StringCodec, BytesCodec, TrivialCodec<T>.
// Guarantees:    For the codecs here: decode(encode(m)) == m, and decode never reads outside
//                the bytes it is given.
// Not provided:  Schema evolution or versioning: a codec that changes its format must be able
//                to read the old one itself.
// Thread safety: the codecs here are stateless: thread-safe.
// Errors:        decode throws pods::CorruptionError ("codec input" at the byte offset where
//                the bytes went wrong); callers that know the file rethrow with it.
// Cost:          encode appends size() bytes (the buffer may grow); decode allocates the value.
// Example:
//   pods::Buffer out;
//   pods::StringCodec{}.encode("hello", out);
//   std::string back = pods::StringCodec{}.decode(out);   // "hello"
#pragma once

#include <pods/policy/errors.hpp>

#include <concepts>
#include <cstddef>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

namespace pods {

// The byte buffer codecs append to.
using Buffer = std::vector<std::byte>;

// A Codec<M> turns an M into bytes and back.
// Semantic requirements the compiler cannot check:
//   - encode(m, out) APPENDS the encoding of m to out (it never clears or rewrites out);
//   - decode(bytes) returns an M equal to the one encoded, given exactly the bytes encode
//     appended; on bytes that are not such an encoding it throws pods::CorruptionError (or
//     returns some M, where every byte string is a valid encoding), never reads outside them;
//   - it is a cheap copyable value; decode and encode may be called from several threads.
// Write it as `template <class Entry, pods::Codec<Entry> C>`.
// clang-format off
template <class C, class M>
concept Codec = std::copy_constructible<C> &&
  requires(const C& c, const M& m, Buffer& out, std::span<const std::byte> bytes) {
    c.encode(m, out);
    { c.decode(bytes) } -> std::same_as<M>;
  };
// clang-format on

// StringCodec: a std::string as its raw bytes. Every byte string decodes.
struct StringCodec {
  // Appends the string's bytes to `out`.
  void encode(const std::string& s, Buffer& out) const {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
  }
  // Returns the bytes as a string. Allocates.
  std::string decode(std::span<const std::byte> bytes) const {
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
};
static_assert(Codec<StringCodec, std::string>);

// BytesCodec: a byte vector as itself. Every byte string decodes.
struct BytesCodec {
  // Appends the bytes to `out`.
  void encode(const std::vector<std::byte>& b, Buffer& out) const {
    out.insert(out.end(), b.begin(), b.end());
  }
  // Returns a copy of the bytes. Allocates.
  std::vector<std::byte> decode(std::span<const std::byte> bytes) const {
    return {bytes.begin(), bytes.end()};
  }
};
static_assert(Codec<BytesCodec, std::vector<std::byte>>);

// TrivialCodec<T>: a trivially copyable T as its object representation (host byte order, so
// only for data read back by the same kind of machine). decode throws CorruptionError unless
// it gets exactly sizeof(T) bytes.
template <class T>
requires std::is_trivially_copyable_v<T> && std::is_default_constructible_v<T>
struct TrivialCodec {
  // Appends the sizeof(T) bytes of `value` to `out`.
  void encode(const T& value, Buffer& out) const {
    const auto* p = reinterpret_cast<const std::byte*>(&value);
    out.insert(out.end(), p, p + sizeof(T));
  }
  // Returns the T whose bytes these are. Throws pods::CorruptionError when bytes.size() is not
  // sizeof(T).
  T decode(std::span<const std::byte> bytes) const {
    if (bytes.size() != sizeof(T)) {
      throw CorruptionError("codec input", bytes.size() < sizeof(T) ? bytes.size() : sizeof(T),
                            "TrivialCodec expects " + std::to_string(sizeof(T)) + " bytes, got " +
                                std::to_string(bytes.size()));
    }
    T value;
    std::memcpy(&value, bytes.data(), sizeof(T));
    return value;
  }
};
static_assert(Codec<TrivialCodec<int>, int>);

}  // namespace pods

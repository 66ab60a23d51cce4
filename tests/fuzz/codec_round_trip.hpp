// Shared by the MessageCodec fuzzers: the checks every codec must pass on arbitrary bytes.
//
// decode either returns a message or throws pods::CorruptionError; any other exception,
// crash or sanitizer report is a bug. A message that decoded must encode to bytes that decode
// to an equal message and, for a canonical codec (fixed-width fields, checked tags: one
// encoding per message), to exactly the bytes it came from.
#pragma once

#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <span>
#include <utility>

namespace pods::fuzz {

// Prints "<fuzzer>: <what>" and aborts, so libFuzzer records the input.
[[noreturn]] inline void bug(const char* fuzzer, const char* what) {
  std::fprintf(stderr, "%s: %s\n", fuzzer, what);
  std::abort();
}

enum class Canonical { yes, no };

// Decodes `bytes` with `codec` and checks the round trip; returns the message, or nullopt when
// the codec refused the bytes with CorruptionError.
template <class Codec>
auto decode_round_trip(const Codec& codec, std::span<const std::byte> bytes, const char* fuzzer,
                       Canonical canonical = Canonical::yes)
    -> std::optional<decltype(codec.decode(bytes))> {
  using Message = decltype(codec.decode(bytes));
  std::optional<Message> message;
  try {
    message.emplace(codec.decode(bytes));
  } catch (const CorruptionError&) {
    return std::nullopt;
  }
  Buffer again;
  codec.encode(*message, again);
  if (canonical == Canonical::yes &&
      !std::equal(again.begin(), again.end(), bytes.begin(), bytes.end())) {
    bug(fuzzer, "a decoded message does not encode back to its bytes");
  }
  if (!(codec.decode(again) == *message)) bug(fuzzer, "decode(encode(m)) != m");
  return message;
}

// The fuzzer's input as bytes.
inline std::span<const std::byte> as_bytes(const std::uint8_t* data, std::size_t size) noexcept {
  return {reinterpret_cast<const std::byte*>(data), size};
}

}  // namespace pods::fuzz

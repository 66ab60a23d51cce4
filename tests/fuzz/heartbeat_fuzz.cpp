// Fuzzes HeartBeatMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug), and a message
// that decoded must encode back to exactly the input bytes and decode to itself.
#include <pods/cluster/heartbeat.hpp>
#include <pods/policy/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "heartbeat_fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const pods::HeartBeatMessageCodec codec;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  pods::HeartBeatMessage message;
  try {
    message = codec.decode(input);
  } catch (const pods::CorruptionError&) {
    return 0;
  }
  pods::Buffer again;
  codec.encode(message, again);
  if (again.size() != size || !std::equal(again.begin(), again.end(), input.begin())) {
    bug("a decoded message does not encode back to its bytes");
  }
  if (!(codec.decode(again) == message)) bug("decode(encode(m)) != m");
  return 0;
}

// Fuzzes HeartBeatMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug), and a message
// that decoded must encode back to exactly the input bytes and decode to itself.
#include "codec_round_trip.hpp"

#include <pods/cluster/heartbeat.hpp>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  (void)pods::fuzz::decode_round_trip(pods::HeartBeatMessageCodec{},
                                      pods::fuzz::as_bytes(data, size), "heartbeat_fuzz");
  return 0;
}

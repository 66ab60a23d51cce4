// Fuzzes RpcCodec: arbitrary bytes are decoded as an RPC message twice, once with string bodies
// (every byte string is a valid body) and once with 4-byte integer bodies (most are not).
// Decoding must either succeed or throw pods::CorruptionError; any other exception, crash or
// sanitizer report is a bug. A message that decoded must encode to the same bytes (the format
// has one encoding per message) and decode back to itself.
#include "codec_round_trip.hpp"

#include <pods/net/rpc.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <span>
#include <string>

namespace {

template <class Codec>
void check(std::span<const std::byte> bytes) {
  (void)pods::fuzz::decode_round_trip(Codec{}, bytes, "rpc_fuzz");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  check<pods::net::RpcCodec<std::string, std::string, pods::StringCodec, pods::StringCodec>>(bytes);
  using U32 = pods::TrivialCodec<std::uint32_t>;
  check<pods::net::RpcCodec<std::uint32_t, std::uint32_t, U32, U32>>(bytes);
  return 0;
}

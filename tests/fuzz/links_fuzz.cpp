// Fuzzes the wire codecs of the link decorators, chosen by byte 0: even, the
// ReliableLinkMessage codec (over a string payload codec, and over a fixed 8-byte one whose
// decoder rejects other sizes); odd, the AuthenticatedLinkMessage codec. The rest of the input
// is decoded. Decoding must either succeed or throw pods::CorruptionError; any other
// exception, crash or sanitizer report is a bug. A message that decoded must encode to bytes
// that decode to an equal message, and (both codecs being canonical) to the input itself.
#include "codec_round_trip.hpp"

#include <pods/net/authenticated_link.hpp>
#include <pods/net/reliable_link.hpp>
#include <pods/policy/codec.hpp>
#include <pods/policy/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string>

namespace {

template <class Codec>
void round_trip(const Codec& codec, std::span<const std::byte> bytes) {
  (void)pods::fuzz::decode_round_trip(codec, bytes, "links_fuzz");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    round_trip(pods::net::ReliableLinkCodec<std::string, pods::StringCodec>{}, bytes);
    round_trip(pods::net::ReliableLinkCodec<std::uint64_t, pods::TrivialCodec<std::uint64_t>>{},
               bytes);
  } else {
    round_trip(pods::net::AuthenticatedLinkCodec{}, bytes);
  }
  return 0;
}

// Fuzzes gossip::MessageCodec and GossipDissemination's handling of what it decodes.
//
// Arbitrary bytes are decoded; decoding must either succeed or throw pods::CorruptionError.
// A message that decodes must encode to bytes that decode to an equal message, and must be
// handled by a node (receive, then a tick) without a crash or a sanitizer report: whatever a
// peer sends, a malformed message is dropped and counted, never trusted.
#include "codec_round_trip.hpp"

#include <pods/cluster/gossip_dissemination.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto decoded =
      pods::fuzz::decode_round_trip(pods::gossip::MessageCodec{}, pods::fuzz::as_bytes(data, size),
                                    "gossip_fuzz", pods::fuzz::Canonical::no);
  if (!decoded) return 0;
  const pods::gossip::Message& message = *decoded;

  pods::Outbox<pods::gossip::Message> out;
  pods::ManualClock clock;
  pods::GossipOptions options;
  options.seeds = {2, 3};
  options.max_delta_bytes = 256;
  pods::GossipDissemination<pods::Outbox<pods::gossip::Message>, pods::ManualClock> node(
      1, out, clock, options);
  node.put("k", {});
  node.receive(2, message);
  clock.advance(std::chrono::seconds(2));
  node.tick();
  if (node.member(1)->status != pods::MemberStatus::alive)
    pods::fuzz::bug("gossip_fuzz", "a node holds itself not alive");
  return 0;
}

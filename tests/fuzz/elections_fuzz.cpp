// Fuzzes the MessageCodecs of the three election blocks (bully, ring, emergent leader).
//
// Byte 0 picks the codec (mod 3) and the sender (byte 0 / 3, mod 8); the rest is decoded.
// Decoding must either succeed or throw pods::CorruptionError; any other exception, crash or
// sanitizer report is a bug. A decoded message must re-encode to bytes that decode to an
// equal message, and a node of that protocol must take it (with the clock moved on and a
// tick) without crashing: a hostile frame is dropped or handled, never fatal.
#include "codec_round_trip.hpp"

#include <pods/cluster/bully_election.hpp>
#include <pods/cluster/emergent_leader.hpp>
#include <pods/cluster/ring_election.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <vector>

namespace {

using namespace std::chrono_literals;

template <class Codec, class Node>
void run(std::span<const std::byte> bytes, pods::NodeId from, Node& node,
         pods::ManualClock& clock) {
  const auto m =
      pods::fuzz::decode_round_trip(Codec{}, bytes, "elections_fuzz", pods::fuzz::Canonical::no);
  if (!m) return;
  clock.advance(2s);
  node.tick();
  node.receive(from, *m);
  clock.advance(2s);
  node.tick();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const auto bytes = std::span(reinterpret_cast<const std::byte*>(data) + 1, size - 1);
  const pods::NodeId from = (data[0] / 3) % 8;
  pods::ManualClock clock;
  switch (data[0] % 3) {
    case 0: {
      pods::Outbox<pods::bully::Message> out;
      pods::BullyElection node(3, {1, 2, 3, 4, 5}, out, clock);
      run<pods::bully::MessageCodec>(bytes, from, node, clock);
      break;
    }
    case 1: {
      pods::Outbox<pods::ring::Message> out;
      pods::RingElection node(3, {1, 2, 3, 4, 5}, out, clock);
      run<pods::ring::MessageCodec>(bytes, from, node, clock);
      break;
    }
    default: {
      pods::Outbox<pods::emergent::Message> out;
      pods::EmergentLeader node(3, out, clock, {.seeds = {1, 2}, .bootstrap = from % 2 == 0});
      run<pods::emergent::MessageCodec>(bytes, from, node, clock);
      break;
    }
  }
  return 0;
}

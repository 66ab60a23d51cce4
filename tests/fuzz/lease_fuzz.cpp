// Fuzzes LeaseMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug). The encoding
// is canonical (fixed-width fields, length-prefixed names, checked tags and reasons), so a
// message that decoded must encode back to exactly the input bytes and decode to itself.
// Bytes that decode are also handed to a LeaseServer and to a LeaseHolder (a reply made to
// answer the holder's pending acquire), which must drop or apply them without crashing,
// whatever their fields say.
#include "codec_round_trip.hpp"

#include <pods/cluster/lease.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto decoded = pods::fuzz::decode_round_trip(pods::LeaseMessageCodec{},
                                               pods::fuzz::as_bytes(data, size), "lease_fuzz");
  if (!decoded) return 0;
  pods::LeaseMessage& message = *decoded;

  pods::ManualClock clock;
  pods::Outbox<pods::LeaseMessage> out;
  pods::LeaseServer server(out, clock, pods::MemoryStorage{});
  server.receive(2, message);
  server.tick();
  pods::LeaseHolder holder(out, clock,
                           {.server = 1, .name = "fuzz", .ttl = std::chrono::seconds(1)});
  holder.acquire([](auto) {});
  // Answer the holder's own request, so a grant or refusal reaches its state machine.
  const auto request = std::get<pods::LeaseAcquire>(out.sent().back().message).request;
  if (auto* g = std::get_if<pods::LeaseGranted>(&message)) g->request = request;
  if (auto* r = std::get_if<pods::LeaseRefused>(&message)) r->request = request;
  holder.receive(1, message);
  holder.tick();
  return 0;
}

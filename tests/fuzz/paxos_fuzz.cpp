// Fuzzes PaxosMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug). The encoding
// is canonical, so a message that decoded must encode back to exactly the input bytes and
// decode to itself. What decodes is then handed, from each member, to a Paxos node that is
// proposing, which must drop or handle it without crashing and keep its promise durable.
#include "codec_round_trip.hpp"

#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/replication/paxos.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto decoded = pods::fuzz::decode_round_trip(pods::PaxosMessageCodec{},
                                               pods::fuzz::as_bytes(data, size), "paxos_fuzz");
  if (!decoded) return 0;
  const pods::PaxosMessage& message = *decoded;

  pods::Outbox<pods::PaxosMessage> out;
  pods::ManualClock clock;
  pods::MemoryStorage storage;
  pods::Paxos node(out, clock, storage, pods::PaxosOptions{.id = 1, .members = {1, 2, 3}});
  node.propose(pods::PaxosValue{std::byte{1}}, [](const pods::Outcome<pods::PaxosValue>&) {});
  for (pods::NodeId from = 1; from <= 4; ++from)
    node.receive(from, message);
  clock.advance(std::chrono::seconds(1));
  node.tick();
  const pods::Ballot promised = node.promised();
  storage.crash();
  pods::Paxos rebuilt(out, clock, storage, pods::PaxosOptions{.id = 1, .members = {1, 2, 3}});
  if (!(rebuilt.promised() == promised))
    pods::fuzz::bug("paxos_fuzz", "the promise did not survive a crash");
  return 0;
}

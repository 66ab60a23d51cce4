// Fuzzes PaxosLogMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug). The encoding
// is canonical, so a message that decoded must encode back to exactly the input bytes and
// decode to itself. What decodes is then handed, from each member, to a PaxosLog node that
// leads a three-node log, which must drop or handle it without crashing and then still
// rebuild from its storage.
#include "codec_round_trip.hpp"

#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/replication/paxos_log.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>

namespace {

struct Sink {
  void apply(std::uint64_t, std::span<const std::byte>) {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto decoded = pods::fuzz::decode_round_trip(pods::PaxosLogMessageCodec{},
                                               pods::fuzz::as_bytes(data, size), "paxos_log_fuzz");
  if (!decoded) return 0;
  const pods::PaxosLogMessage& message = *decoded;

  using Log = pods::PaxosLog<pods::Outbox<pods::PaxosLogMessage>, pods::ManualClock,
                             pods::MemoryStorage, Sink>;
  pods::Outbox<pods::PaxosLogMessage> out;
  pods::ManualClock clock;
  pods::MemoryStorage storage;
  const pods::PaxosLogOptions options{.id = 1, .members = {1, 2, 3}};
  Log node(out, clock, storage, Sink{}, options);
  clock.advance(std::chrono::seconds(1));
  node.tick();
  node.receive(2, pods::LogPromise{node.ballot(), 1, {}});
  (void)node.propose(pods::PaxosValue{std::byte{1}});
  for (pods::NodeId from = 1; from <= 4; ++from)
    node.receive(from, message);
  clock.advance(std::chrono::seconds(1));
  node.tick();
  const pods::Ballot promised = node.promised();
  storage.crash();
  Log rebuilt(out, clock, storage, Sink{}, options);
  if (!(rebuilt.promised() == promised))
    pods::fuzz::bug("paxos_log_fuzz", "the promise did not survive a crash");
  return 0;
}

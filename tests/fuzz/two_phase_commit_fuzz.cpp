// Fuzzes TwoPhaseMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug). The encoding
// is canonical, so a message that decoded must encode back to exactly the input bytes and
// decode to itself. What decodes is then handed, from several nodes, to a coordinator with a
// transaction open and to a participant with one prepared; neither may crash, and after a
// crash of their storage both must rebuild: the participant keeps its durable vote and the
// coordinator every commit it logged.
#include "codec_round_trip.hpp"

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/replication/two_phase_commit.hpp>
#include <pods/storage/memory_storage.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto decoded = pods::fuzz::decode_round_trip(
      pods::TwoPhaseMessageCodec{}, pods::fuzz::as_bytes(data, size), "two_phase_commit_fuzz");
  if (!decoded) return 0;
  const pods::TwoPhaseMessage& message = *decoded;

  pods::Outbox<pods::TwoPhaseMessage> out;
  pods::ManualClock clock;
  pods::MemoryStorage coordinator_disk(1), participant_disk(2);
  const pods::TwoPhaseCoordinatorOptions co{.id = 1, .participants = {2, 3}};
  const pods::TwoPhaseParticipantOptions po{.id = 2};
  pods::TxnId txn = 0;
  std::size_t committing = 0;
  {
    pods::TwoPhaseCoordinator coordinator(out, clock, coordinator_disk, co);
    txn = coordinator.begin({{2, {{"a"}, {}}}, {3, {{"b"}, {}}}}, {});
    pods::TwoPhaseParticipant participant(out, clock, participant_disk, po);
    participant.receive(1, pods::TwoPhasePrepare{txn, {{"a"}, {}}});
    for (pods::NodeId from = 1; from <= 4; ++from) {
      coordinator.receive(from, message);
      participant.receive(from, message);
    }
    clock.advance(std::chrono::seconds(1));
    coordinator.tick();
    participant.tick();
    committing = coordinator.committing();
  }
  coordinator_disk.crash(true);
  participant_disk.crash(true);
  pods::TwoPhaseCoordinator coordinator(out, clock, coordinator_disk, co);
  pods::TwoPhaseParticipant participant(out, clock, participant_disk, po);
  if (coordinator.committing() != committing)
    pods::fuzz::bug("two_phase_commit_fuzz", "a logged commit did not survive a crash");
  if (participant.state(txn) == pods::TwoPhaseState::unknown)
    pods::fuzz::bug("two_phase_commit_fuzz", "a durable vote did not survive a crash");
  return 0;
}

// Fuzzes ReplicatedLogMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug). The encoding
// is canonical (fixed-width fields, checked booleans and tag, length-prefixed commands), so a
// message that decoded must encode back to exactly the input bytes and decode to itself.
// What decodes is also delivered to a follower and to a leader of a three-server cluster,
// which must refuse, drop or apply it without crashing, whatever its fields say; an
// AppendEntries is delivered a second time with every entry turned into a configuration entry,
// so that arbitrary bytes reach the configuration decoder, which must drop the message or
// adopt a configuration that has a voter and lies within the log. The leader
// snapshots after every applied entry, so a refusal sends it InstallSnapshot (§7) in chunks of
// 16 of its 40 bytes (so a reply's progress moves the transfer), and it is handing leadership
// to server 3 (§3.10), so a reply can make it send TimeoutNow. The machine refuses a
// snapshot that is not its own, so a fuzzed one reaches the drop path too.
#include "codec_round_trip.hpp"

#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/replication/replicated_log.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <variant>
#include <vector>

namespace {

struct Sink {
  void apply(std::uint64_t, std::span<const std::byte>) {}
  std::vector<std::byte> snapshot() const { return std::vector<std::byte>(40, std::byte{7}); }
  // Refuses what is not its own snapshot, as a real machine refuses bytes it cannot decode:
  // a fuzzed InstallSnapshot is then dropped, not installed.
  void restore(std::span<const std::byte> bytes) {
    if (bytes.size() != 40 ||
        std::any_of(bytes.begin(), bytes.end(), [](std::byte b) { return b != std::byte{7}; })) {
      throw pods::CorruptionError("Sink snapshot", 0, "not the 40 bytes of 7 it writes");
    }
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto decoded = pods::fuzz::decode_round_trip(
      pods::ReplicatedLogMessageCodec{}, pods::fuzz::as_bytes(data, size), "replicated_log_fuzz");
  if (!decoded) return 0;
  const pods::ReplicatedLogMessage& message = *decoded;

  pods::ManualClock clock;
  pods::Outbox<pods::ReplicatedLogMessage> out;
  Sink sink;
  const pods::ReplicatedLogOptions follower_options{.self = 1, .voters = {1, 2, 3}};
  pods::ReplicatedLog follower(pods::MemoryStorage{}, out, clock, sink, follower_options);
  follower.receive(2, message);
  follower.tick();
  auto check_configuration = [](const auto& log) {
    if (log.configuration().voters.empty())
      pods::fuzz::bug("replicated_log_fuzz", "a configuration without a voter");
    if (log.configuration_index() > log.last_index())
      pods::fuzz::bug("replicated_log_fuzz", "a configuration beyond the log");
  };
  check_configuration(follower);
  if (const auto* append = std::get_if<pods::AppendEntries>(&message)) {
    pods::AppendEntries as_configurations = *append;
    for (pods::RaftEntry& e : as_configurations.entries)
      e.kind = pods::RaftEntryKind::configuration;
    pods::ReplicatedLog member(pods::MemoryStorage{}, out, clock, sink, follower_options);
    member.receive(2, as_configurations);
    member.tick();
    check_configuration(member);
  }

  // A leader of term 1 (elected by hand), holding its no-op and one command.
  pods::ReplicatedLogOptions leader_options{
      .self = 1, .voters = {1, 2, 3}, .pre_vote = false, .snapshot_every = 1};
  leader_options.snapshot_chunk_bytes = 16;
  pods::ReplicatedLog leader(pods::MemoryStorage{}, out, clock, sink, leader_options);
  clock.advance(std::chrono::seconds(1));
  leader.tick();
  leader.receive(2, pods::VoteReply{1, true, false});
  if (!leader.is_leader()) pods::fuzz::bug("replicated_log_fuzz", "the hand-made election failed");
  (void)leader.propose(std::vector<std::byte>{std::byte{1}});
  leader.tick();
  leader.receive(2, pods::AppendReply{1, true, leader.last_index(), 0, 0});
  if (!leader.transfer_leadership(3))
    pods::fuzz::bug("replicated_log_fuzz", "the transfer was refused");
  leader.receive(3, message);
  leader.tick();
  if (leader.commit_index() > leader.last_index())
    pods::fuzz::bug("replicated_log_fuzz", "commit index beyond the log");
  return 0;
}

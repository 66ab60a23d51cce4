// Fuzzes FollowerReadMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug). The encoding
// is canonical (fixed-width fields, checked boolean and tag, a refusal's index 0), so a message
// that decoded must encode back to exactly the input bytes and decode to itself. What decodes
// is then delivered to a FollowerRead on a follower (which has asked its leader for one read)
// and on a leader of a three-server cluster: each must drop, refuse or answer it without
// crashing, and a read it completes must never complete before the applied index reaches the
// index the leader granted.
#include "codec_round_trip.hpp"

#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>
#include <pods/policy/transport.hpp>
#include <pods/replication/follower_reads.hpp>
#include <pods/replication/replicated_log.hpp>
#include <pods/storage/memory_storage.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <variant>
#include <vector>

namespace {

struct Sink {
  void apply(std::uint64_t, std::span<const std::byte>) {}
  std::vector<std::byte> snapshot() const { return {}; }
  void restore(std::span<const std::byte>) {}
};

using Log = pods::ReplicatedLog<pods::MemoryStorage, pods::Outbox<pods::ReplicatedLogMessage>,
                                pods::ManualClock, Sink>;
using Reads = pods::FollowerRead<Log, pods::ManualClock, pods::Outbox<pods::FollowerReadMessage>>;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  auto decoded = pods::fuzz::decode_round_trip(
      pods::FollowerReadMessageCodec{}, pods::fuzz::as_bytes(data, size), "follower_reads_fuzz");
  if (!decoded) return 0;
  const pods::FollowerReadMessage& message = *decoded;

  pods::ManualClock clock;
  pods::Outbox<pods::ReplicatedLogMessage> out;
  pods::Outbox<pods::FollowerReadMessage> read_out;
  Sink sink;

  // A follower of server 2 in term 1 that applied index 1 and asked for read 1.
  Log follower(pods::MemoryStorage{}, out, clock, sink, {.self = 1, .voters = {1, 2, 3}});
  follower.receive(
      2, pods::AppendEntries{1, 0, 0, 1, {pods::RaftEntry{1, pods::RaftEntryKind::noop, {}}}, 1});
  Reads on_follower(follower, clock, read_out);
  bool done = false;
  on_follower.read([&](pods::Outcome<std::uint64_t> at) {
    if (done) pods::fuzz::bug("follower_reads_fuzz", "a read completed twice");
    done = true;
    if (at && *at < 1) pods::fuzz::bug("follower_reads_fuzz", "a read ran below its index");
  });
  const auto* reply = std::get_if<pods::ReadIndexReply>(&message);
  on_follower.receive(2, message);
  on_follower.poll();
  if (reply && reply->read_id == 1 && reply->granted && reply->index > follower.applied_index() &&
      done) {
    pods::fuzz::bug("follower_reads_fuzz", "a read ran before applying the granted index");
  }

  // A leader of term 1 (elected by hand) that committed its no-op.
  Log leader(pods::MemoryStorage{}, out, clock, sink,
             {.self = 1, .voters = {1, 2, 3}, .pre_vote = false});
  clock.advance(std::chrono::seconds(1));
  leader.tick();
  leader.receive(2, pods::VoteReply{1, true, false});
  if (!leader.is_leader()) pods::fuzz::bug("follower_reads_fuzz", "the hand-made election failed");
  leader.tick();
  leader.receive(2, pods::AppendReply{1, true, leader.last_index(), 0, 0, 0});
  Reads on_leader(leader, clock, read_out);
  on_leader.receive(3, message);
  on_leader.poll();
  leader.receive(2, pods::AppendReply{1, true, leader.last_index(), 0, 0, leader.current_round()});
  on_leader.poll();
  return 0;
}

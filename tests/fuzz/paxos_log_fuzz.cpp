// Fuzzes PaxosLogMessageCodec: arbitrary bytes must decode to a message or throw
// pods::CorruptionError (any other exception, crash or sanitizer report is a bug). The encoding
// is canonical, so a message that decoded must encode back to exactly the input bytes and
// decode to itself. What decodes is then handed, from each member, to a PaxosLog node that
// leads a three-node log, which must drop or handle it without crashing and then still
// rebuild from its storage.
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

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "paxos_log_fuzz: %s\n", what);
  std::abort();
}

struct Sink {
  void apply(std::uint64_t, std::span<const std::byte>) {}
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const pods::PaxosLogMessageCodec codec;
  const std::span<const std::byte> input(reinterpret_cast<const std::byte*>(data), size);
  pods::PaxosLogMessage message;
  try {
    message = codec.decode(input);
  } catch (const pods::CorruptionError&) {
    return 0;
  }
  pods::Buffer again;
  codec.encode(message, again);
  if (!std::equal(again.begin(), again.end(), input.begin(), input.end())) {
    bug("encode(decode(bytes)) differs from bytes");
  }
  if (!(codec.decode(again) == message)) bug("decode(encode(m)) != m");

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
  if (!(rebuilt.promised() == promised)) bug("the promise did not survive a crash");
  return 0;
}

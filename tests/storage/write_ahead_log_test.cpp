#include <pods/storage/write_ahead_log.hpp>

#include <pods/policy/codec.hpp>
#include <pods/storage/file_storage.hpp>
#include <pods/storage/memory_storage.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <iterator>
#include <map>
#include <ranges>
#include <stdexcept>
#include <string>
#include <vector>

#include "storage_fixtures.hpp"

namespace {

// A key-value command with its own codec: op byte, key length (1 byte), key, value.
struct Command {
  char op;  // 's' set, 'e' erase
  std::string key;
  std::string value;
  friend bool operator==(const Command&, const Command&) = default;
};

struct CommandCodec {
  void encode(const Command& c, pods::Buffer& out) const {
    out.push_back(static_cast<std::byte>(c.op));
    out.push_back(static_cast<std::byte>(c.key.size()));
    for (char ch : c.key + c.value)
      out.push_back(static_cast<std::byte>(ch));
  }
  Command decode(std::span<const std::byte> b) const {
    if (b.size() < 2) throw pods::CorruptionError("codec input", b.size(), "command too short");
    const auto key_size = std::to_integer<std::size_t>(b[1]);
    if (b.size() < 2 + key_size) throw pods::CorruptionError("codec input", 1, "key runs past end");
    const char op = static_cast<char>(b[0]);
    if (op != 's' && op != 'e') throw pods::CorruptionError("codec input", 0, "unknown op");
    const std::string rest = pods_test::text(b.subspan(2));
    return {op, rest.substr(0, key_size), rest.substr(key_size)};
  }
};
static_assert(pods::Codec<CommandCodec, Command>);

template <class S>
using Wal = pods::WriteAheadLog<Command, CommandCodec, S>;

}  // namespace

TEMPLATE_TEST_CASE("WriteAheadLog: append, then replay rebuilds the state after a restart",
                   "[write_ahead_log]", pods::MemoryStorage, pods::FileStorage) {
  STATIC_REQUIRE(std::ranges::input_range<typename Wal<TestType>::ReplayRange>);
  pods_test::StorageFixture<TestType> fixture;
  const std::vector<Command> commands = {{'s', "x", "1"},
                                         {'s', "y", "2"},
                                         {'e', "x", ""},
                                         {'s', "z", std::string(300, 'z')},
                                         {'s', "y", "3"}};
  {
    Wal<TestType> wal(fixture.open(), {.segment_bytes = 128});
    std::uint64_t expected = 1;
    for (const Command& c : commands)
      CHECK(wal.append(c) == expected++);
    wal.sync();
    CHECK(wal.segment_count() > 1);
  }
  if constexpr (std::is_same_v<TestType, pods::MemoryStorage>) fixture.store.crash(true);
  Wal<TestType> wal(fixture.open(), {.segment_bytes = 128});
  CHECK(wal.first_index() == 1);
  CHECK(wal.last_index() == commands.size());
  std::map<std::string, std::string> state;
  std::uint64_t expected = 1;
  for (const auto& [index, command] : wal.replay()) {
    CHECK(index == expected);
    CHECK(command == commands[static_cast<std::size_t>(index - 1)]);
    if (command.op == 's') state[command.key] = command.value;
    if (command.op == 'e') state.erase(command.key);
    ++expected;
  }
  CHECK(state == std::map<std::string, std::string>{{"y", "3"}, {"z", std::string(300, 'z')}});

  SECTION("replay(from) starts at from; read returns one entry") {
    CHECK(wal.replay(4).begin()->index == 4);
    CHECK(std::ranges::distance(wal.replay(3)) == 3);
    CHECK(wal.read(2) == Command{'s', "y", "2"});
    CHECK_FALSE(wal.read(99));
    CHECK(wal.replay(0).begin()->index == wal.first_index());  // as for any from below it
    CHECK(std::ranges::distance(wal.replay(0)) == std::ranges::distance(wal.replay(1)));
    CHECK_FALSE(wal.read(0));
  }
  SECTION("truncate_after and remove_before pass through") {
    wal.truncate_after(3);
    CHECK(wal.last_index() == 3);
    CHECK(wal.append({'s', "w", "9"}) == 4);
    std::size_t below = 0;  // segments wholly below 4, never the last
    for (const auto& s : wal.log().segments())
      below += s.last_index < 4 && s.first_index < 4;
    CHECK(wal.remove_before(4) == below);
    CHECK(wal.first_index() == wal.log().first_index());
    CHECK(wal.first_index() <= 4);
    CHECK(wal.read(4) == Command{'s', "w", "9"});
  }
}

TEMPLATE_TEST_CASE(
    "WriteAheadLog: bytes the codec rejects throw CorruptionError naming the "
    "segment and offset",
    "[write_ahead_log]", pods::MemoryStorage, pods::FileStorage) {
  pods_test::StorageFixture<TestType> fixture;
  Wal<TestType> wal(fixture.open());
  wal.append({'s', "a", "1"});
  const std::uint64_t bad =
      wal.log().append(pods_test::bytes(std::string("?\0", 2)));  // an unknown op
  wal.append({'s', "b", "2"});
  const auto at = *wal.log().locate(bad);
  CHECK_THROWS_AS(wal.read(bad), pods::CorruptionError);
  CHECK_THROWS_WITH(wal.read(bad), Catch::Contains("00000000000000000001.log") &&
                                       Catch::Contains("offset " + std::to_string(at.offset)) &&
                                       Catch::Contains("unknown op"));
  auto it = wal.replay().begin();
  CHECK(it->entry.key == "a");
  CHECK_THROWS_AS(++it, pods::CorruptionError);
}

TEST_CASE("WriteAheadLog: with the shipped codecs", "[write_ahead_log]") {
  pods::MemoryStorage storage;
  pods::WriteAheadLog<std::string, pods::StringCodec, pods::MemoryStorage> strings(storage);
  strings.append("hello");
  strings.append("");
  CHECK(strings.read(1) == "hello");
  CHECK(strings.read(2) == "");

  pods::MemoryStorage other;
  pods::WriteAheadLog<std::uint64_t, pods::TrivialCodec<std::uint64_t>, pods::MemoryStorage>
      numbers(other);
  for (std::uint64_t v = 10; v < 20; ++v)
    numbers.append(v * v);
  std::uint64_t sum = 0;
  for (const auto& e : numbers.replay(5))
    sum += e.entry;
  std::uint64_t expected = 0;
  for (std::uint64_t v = 14; v < 20; ++v)
    expected += v * v;
  CHECK(sum == expected);
}

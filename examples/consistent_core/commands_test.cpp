// Tests of examples/consistent_core/commands.hpp: every bad command with its exact Redis-style
// error, the typed requests, and each command run against a real ConsistentCore (a single
// voter on MemoryStorage and a ManualClock), answered in Redis's conventions, writes only
// once the log applied them; a follower's redirects; watch pushes and the watching mode.
#include "commands.hpp"

#include <catch2/catch.hpp>

#include <pods/policy/clock.hpp>
#include <pods/policy/transport.hpp>
#include <pods/storage/memory_storage.hpp>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace resp = consistent_core::resp;
using consistent_core::CommandError;
using consistent_core::parse_request;
using consistent_core::Request;
using consistent_core::Session;
using namespace std::chrono_literals;
using Msg = pods::ReplicatedLogMessage;
using Core = pods::ConsistentCore<pods::MemoryStorage, pods::Outbox<Msg>, pods::ManualClock>;

namespace {

std::string error_of(const resp::Command& c) {
  try {
    (void)parse_request(c);
  } catch (const CommandError& e) {
    return e.what();
  }
  return "no error";
}

// A server: its core and the commands over it, one connection's session.
struct Server {
  pods::ManualClock clock;
  pods::Outbox<Msg> out;
  Core core;
  std::map<pods::NodeId, std::uint16_t> ports{{1, 7001}, {2, 7002}, {3, 7003}};
  consistent_core::Commands<Core> commands{core,
                                           [this](pods::NodeId id) -> std::optional<std::uint16_t> {
                                             const auto it = ports.find(id);
                                             if (it == ports.end()) return std::nullopt;
                                             return it->second;
                                           }};
  Session session;

  explicit Server(std::vector<pods::NodeId> voters = {1})
      : core(pods::MemoryStorage{}, out, clock,
             pods::ConsistentCoreOptions{
                 .log = {.self = 1, .voters = std::move(voters), .seed = 1}}) {}

  void elect() {
    clock.advance(2s);
    core.tick();
    core.tick();
    REQUIRE(core.is_leader());
  }

  // Sends `c`; returns its reply (nullopt: not answered yet).
  std::shared_ptr<std::optional<std::string>> send(const resp::Command& c) {
    auto reply = std::make_shared<std::optional<std::string>>();
    commands.execute(c, session, [reply](std::string r) {
      REQUIRE_FALSE(reply->has_value());  // exactly once
      *reply = std::move(r);
    });
    return reply;
  }
  // Sends `c`, ticks until answered (at most 10 ticks of 10 ms), returns the reply.
  std::string run(const resp::Command& c) {
    auto reply = send(c);
    for (int i = 0; i < 10 && !reply->has_value(); ++i) {
      clock.advance(10ms);
      core.tick();
    }
    REQUIRE(reply->has_value());
    return **reply;
  }
};

}  // namespace

// ---- parse_request: the errors, one Redis-style message each ----

TEST_CASE("an unknown command names itself and its first arguments") {
  CHECK(error_of({"FLUSHALL"}) == "ERR unknown command 'FLUSHALL', with args beginning with: ");
  CHECK(error_of({"hset", "h", "f", "v", "w"}) ==
        "ERR unknown command 'hset', with args beginning with: 'h' 'f' 'v' ");
}

TEST_CASE("wrong arity: each command's own message") {
  CHECK(error_of({"GET"}) == "ERR wrong number of arguments for 'get' command");
  CHECK(error_of({"get", "a", "b"}) == "ERR wrong number of arguments for 'get' command");
  CHECK(error_of({"SET", "k"}) == "ERR wrong number of arguments for 'set' command");
  CHECK(error_of({"DEL"}) == "ERR wrong number of arguments for 'del' command");
  CHECK(error_of({"INCR"}) == "ERR wrong number of arguments for 'incr' command");
  CHECK(error_of({"INCRBY", "k"}) == "ERR wrong number of arguments for 'incrby' command");
  CHECK(error_of({"CAS", "k", "0"}) == "ERR wrong number of arguments for 'cas' command");
  CHECK(error_of({"GETREV"}) == "ERR wrong number of arguments for 'getrev' command");
  CHECK(error_of({"KEYS"}) == "ERR wrong number of arguments for 'keys' command");
  CHECK(error_of({"PING", "a", "b"}) == "ERR wrong number of arguments for 'ping' command");
  CHECK(error_of({"ECHO"}) == "ERR wrong number of arguments for 'echo' command");
  CHECK(error_of({"WATCH"}) == "ERR wrong number of arguments for 'watch' command");
  CHECK(error_of({"WATCH", "a", "FROM"}) == "ERR wrong number of arguments for 'watch' command");
  CHECK(error_of({"UNWATCH", "a"}) == "ERR wrong number of arguments for 'unwatch' command");
  CHECK(error_of({"LEASE"}) == "ERR wrong number of arguments for 'lease' command");
  CHECK(error_of({"LEASE", "GRANT"}) == "ERR wrong number of arguments for 'lease|grant' command");
  CHECK(error_of({"LEASE", "revoke", "1", "2"}) ==
        "ERR wrong number of arguments for 'lease|revoke' command");
  CHECK(error_of({"CONFIG"}) == "ERR wrong number of arguments for 'config' command");
  CHECK(error_of({"CONFIG", "GET"}) == "ERR wrong number of arguments for 'config|get' command");
  CHECK(error_of({"READMODE"}) == "ERR wrong number of arguments for 'readmode' command");
  CHECK(error_of({"INFO", "a", "b"}) == "ERR wrong number of arguments for 'info' command");
}

TEST_CASE("bad numbers: Redis's message") {
  const std::string msg = "ERR value is not an integer or out of range";
  CHECK(error_of({"INCRBY", "k", "x"}) == msg);
  CHECK(error_of({"INCRBY", "k", "1.5"}) == msg);
  CHECK(error_of({"INCRBY", "k", "01"}) == msg);
  CHECK(error_of({"INCRBY", "k", "-0"}) == msg);
  CHECK(error_of({"INCRBY", "k", " 1"}) == msg);
  CHECK(error_of({"INCRBY", "k", "9223372036854775808"}) == msg);
  CHECK(error_of({"CAS", "k", "-1", "v"}) == msg);
  CHECK(error_of({"LEASE", "KEEPALIVE", "x"}) == msg);
  CHECK(error_of({"SET", "k", "v", "PX", "ten"}) == msg);
  CHECK(error_of({"WATCH", "k", "FROM", "x"}) == msg);
}

TEST_CASE("SET's options: unknown, repeated or contradictory ones are a syntax error") {
  CHECK(error_of({"SET", "k", "v", "NOPE"}) == "ERR syntax error");
  CHECK(error_of({"SET", "k", "v", "NX", "XX"}) == "ERR syntax error");
  CHECK(error_of({"SET", "k", "v", "PX"}) == "ERR syntax error");
  CHECK(error_of({"SET", "k", "v", "PX", "100", "EX", "1"}) == "ERR syntax error");
  CHECK(error_of({"SET", "k", "v", "PX", "100", "LEASE", "1"}) == "ERR syntax error");
  CHECK(error_of({"SET", "k", "v", "PX", "0"}) == "ERR invalid expire time in 'set' command");
  CHECK(error_of({"SET", "k", "v", "EX", "-1"}) == "ERR invalid expire time in 'set' command");
  CHECK(error_of({"SET", "k", "v", "LEASE", "0"}) == "ERR invalid lease id 0");
}

TEST_CASE("patterns: only a literal prefix followed by one '*'") {
  CHECK(error_of({"KEYS", "a*b"}) ==
        "ERR KEYS takes a literal prefix followed by one '*' (no other pattern), got 'a*b'");
  CHECK(error_of({"KEYS", "abc"}) ==
        "ERR KEYS takes a literal prefix followed by one '*' (no other pattern), got 'abc'");
  CHECK(error_of({"KEYS", "**"}) ==
        "ERR KEYS takes a literal prefix followed by one '*' (no other pattern), got '**'");
  CHECK(error_of({"WATCH", "*a"}) ==
        "ERR WATCH takes a literal prefix followed by one '*' (no other pattern), got '*a'");
  CHECK(error_of({"WATCH", "k", "SINCE", "1"}) == "ERR syntax error");
}

TEST_CASE("unknown subcommands and modes") {
  CHECK(error_of({"LEASE", "RENEW", "1"}) ==
        "ERR unknown subcommand 'RENEW'. Try LEASE GRANT ttl_ms, LEASE KEEPALIVE id, LEASE REVOKE "
        "id.");
  CHECK(error_of({"CONFIG", "SET", "a", "b"}) ==
        "ERR unknown subcommand 'SET'. Only CONFIG GET is served.");
  CHECK(error_of({"READMODE", "stale"}) ==
        "ERR READMODE takes linearizable, lease or local, got 'stale'");
  CHECK(error_of({"LEASE", "GRANT", "0"}) == "ERR invalid ttl in 'lease|grant' command");
  CHECK(error_of({"LEASE", "REVOKE", "0"}) == "ERR invalid lease id 0");
}

TEST_CASE("empty keys are refused") {
  CHECK(error_of({"GET", ""}) == "ERR empty keys are not supported");
  CHECK(error_of({"SET", "", "v"}) == "ERR empty keys are not supported");
  CHECK(error_of({"DEL", "a", ""}) == "ERR empty keys are not supported");
  CHECK(error_of({"WATCH", ""}) == "ERR empty keys are not supported");
}

TEST_CASE("well-formed commands become typed requests, names case-insensitive") {
  using namespace consistent_core::request;
  const Request set = parse_request({"set", "k", "v", "nx", "px", "1500"});
  REQUIRE(std::holds_alternative<Set>(set));
  CHECK(std::get<Set>(set).nx);
  CHECK_FALSE(std::get<Set>(set).xx);
  CHECK(std::get<Set>(set).ttl == 1500ms);
  CHECK(std::get<Set>(parse_request({"SET", "k", "v", "EX", "2"})).ttl == 2000ms);
  CHECK(std::get<Set>(parse_request({"SET", "k", "v", "XX", "LEASE", "9"})).lease == 9);
  CHECK(std::get<Incr>(parse_request({"INCRBY", "n", "-9223372036854775808"})).delta ==
        std::numeric_limits<std::int64_t>::min());
  CHECK(std::get<Cas>(parse_request({"CAS", "k", "0", "v"})).expected == 0);
  CHECK(std::get<Keys>(parse_request({"KEYS", "*"})).prefix.empty());
  const Watch w = std::get<Watch>(parse_request({"watch", "cfg/*", "from", "12"}));
  CHECK((w.key == "cfg/" && w.prefix && w.from == 12));
  CHECK_FALSE(std::get<Watch>(parse_request({"WATCH", "k"})).prefix);
  CHECK(std::get<ReadMode>(parse_request({"READMODE", "LOCAL"})).mode == pods::CoreRead::local);
  CHECK(std::get<Del>(parse_request({"DEL", "a", "b"})).keys == std::vector<std::string>{"a", "b"});
  CHECK(std::holds_alternative<Empty>(parse_request({"COMMAND", "DOCS"})));
  CHECK(std::holds_alternative<Empty>(parse_request({"CONFIG", "get", "save"})));
}

// ---- Commands::execute on a single-voter core ----

TEST_CASE("PING, ECHO, COMMAND, CONFIG GET, QUIT answer at once") {
  Server s;
  CHECK(**s.send({"PING"}) == "+PONG\r\n");
  CHECK(**s.send({"PING", "hi"}) == "$2\r\nhi\r\n");
  CHECK(**s.send({"ECHO", "x y"}) == "$3\r\nx y\r\n");
  CHECK(**s.send({"COMMAND", "DOCS"}) == "*0\r\n");
  CHECK(**s.send({"CONFIG", "GET", "save"}) == "*0\r\n");
  CHECK(**s.send({"NOPE"}) == "-ERR unknown command 'NOPE', with args beginning with: \r\n");
  CHECK_FALSE(s.session.quit);
  CHECK(**s.send({"QUIT"}) == "+OK\r\n");
  CHECK(s.session.quit);
}

TEST_CASE("a write is answered only once the log applied it") {
  Server s;
  s.elect();
  auto reply = s.send({"SET", "k", "v"});
  CHECK_FALSE(reply->has_value());  // proposed, not yet synced and applied
  s.core.tick();                    // the tick syncs, commits (one voter) and applies
  REQUIRE(reply->has_value());
  CHECK(**reply == "+OK\r\n");
  CHECK(s.core.applied_index() == s.core.commit_index());
}

TEST_CASE("SET, GET, NX, XX, DEL, INCR in Redis's conventions") {
  Server s;
  s.elect();
  CHECK(s.run({"GET", "k"}) == "$-1\r\n");
  CHECK(s.run({"SET", "k", "v1"}) == "+OK\r\n");
  CHECK(s.run({"GET", "k"}) == "$2\r\nv1\r\n");
  CHECK(s.run({"SET", "k", "v2", "NX"}) == "$-1\r\n");
  CHECK(s.run({"SET", "other", "v", "XX"}) == "$-1\r\n");
  CHECK(s.run({"SET", "k", "v3", "XX"}) == "+OK\r\n");
  CHECK(s.run({"GET", "k"}) == "$2\r\nv3\r\n");
  CHECK(s.run({"INCR", "n"}) == ":1\r\n");
  CHECK(s.run({"INCRBY", "n", "41"}) == ":42\r\n");
  CHECK(s.run({"INCR", "k"}) == "-ERR value is not an integer or out of range\r\n");
  CHECK(s.run({"SET", "big", "9223372036854775807"}) == "+OK\r\n");
  CHECK(s.run({"INCR", "big"}) == "-ERR value is not an integer or out of range\r\n");
  CHECK(s.run({"DEL", "k", "n", "absent"}) == ":2\r\n");
  CHECK(s.run({"GET", "k"}) == "$-1\r\n");
  CHECK(s.run({"DEL", "k"}) == ":0\r\n");
}

TEST_CASE("CAS on the mod revision; GETREV shows it; KEYS by prefix") {
  Server s;
  s.elect();
  CHECK(s.run({"CAS", "k", "0", "a"}) == ":1\r\n");  // 0: only when absent
  CHECK(s.run({"CAS", "k", "0", "b"}) == ":0\r\n");
  CHECK(s.run({"GETREV", "k"}) == "*4\r\n$1\r\na\r\n:1\r\n:1\r\n:0\r\n");
  CHECK(s.run({"CAS", "k", "7", "b"}) == ":0\r\n");
  CHECK(s.run({"CAS", "k", "1", "b"}) == ":1\r\n");
  CHECK(s.run({"GETREV", "k"}) == "*4\r\n$1\r\nb\r\n:2\r\n:2\r\n:0\r\n");
  CHECK(s.run({"GETREV", "absent"}) == "*-1\r\n");
  CHECK(s.run({"SET", "cfg/a", "1"}) == "+OK\r\n");
  CHECK(s.run({"SET", "cfg/b", "2"}) == "+OK\r\n");
  CHECK(s.run({"KEYS", "cfg/*"}) == "*2\r\n$5\r\ncfg/a\r\n$5\r\ncfg/b\r\n");
  CHECK(s.run({"KEYS", "*"}) == "*3\r\n$5\r\ncfg/a\r\n$5\r\ncfg/b\r\n$1\r\nk\r\n");
  CHECK(s.run({"KEYS", "zz*"}) == "*0\r\n");
}

TEST_CASE("leases: grant, keep-alive, revoke; SET PX and SET LEASE keys vanish with theirs") {
  Server s;
  s.elect();
  const std::string grant = s.run({"LEASE", "GRANT", "1000"});
  REQUIRE(grant.front() == ':');
  const std::string id = grant.substr(1, grant.size() - 3);
  CHECK(s.run({"SET", "lock", "me", "LEASE", id}) == "+OK\r\n");
  CHECK(s.run({"LEASE", "KEEPALIVE", id}) == ":1000\r\n");
  CHECK(s.run({"SET", "x", "v", "LEASE", "999"}) == "-ERR no such lease\r\n");
  CHECK(s.run({"SET", "x", "v", "NX", "LEASE", "999"}) == "$-1\r\n");
  CHECK(s.run({"LEASE", "REVOKE", id}) == ":1\r\n");
  CHECK(s.run({"GET", "lock"}) == "$-1\r\n");
  CHECK(s.run({"LEASE", "REVOKE", id}) == ":0\r\n");
  CHECK(s.run({"LEASE", "KEEPALIVE", id}) ==
        "-ERR no such lease (unknown, revoked or expired)\r\n");
  CHECK(s.run({"LEASE", "GRANT", "1"}) == "-ERR ttl must be within [100, 600000] ms\r\n");
  CHECK(s.run({"SET", "t", "v", "PX", "50"}) ==
        "-ERR expire time must be within [100, 600000] ms\r\n");

  CHECK(s.run({"SET", "t", "v", "PX", "200"}) == "+OK\r\n");
  CHECK(s.run({"GET", "t"}) == "$1\r\nv\r\n");
  CHECK(s.run({"SET", "t", "w", "NX", "PX", "200"}) == "$-1\r\n");
  for (int i = 0; i < 30; ++i) {  // past the ttl: the leader expires the lease and its key
    s.clock.advance(10ms);
    s.core.tick();
  }
  CHECK(s.run({"GET", "t"}) == "$-1\r\n");
}

TEST_CASE("INFO reports the role, term, leader and marks") {
  Server s;
  s.elect();
  CHECK(s.run({"SET", "k", "v"}) == "+OK\r\n");
  resp::ReplyReader reader;
  reader.feed(s.run({"INFO"}));
  const auto r = reader.next();
  REQUIRE(r);
  REQUIRE(r->type == resp::Reply::Type::bulk);
  CHECK_THAT(r->text, Catch::Contains("role:leader\r\n"));
  CHECK_THAT(r->text, Catch::Contains("id:1\r\n"));
  CHECK_THAT(r->text, Catch::Contains("leader:1\r\n"));
  CHECK_THAT(r->text, Catch::Contains("leader_port:7001\r\n"));
  CHECK_THAT(r->text, Catch::Contains("revision:1\r\n"));
  CHECK_THAT(r->text,
             Catch::Contains("commit_index:" + std::to_string(s.core.commit_index()) + "\r\n"));
  CHECK_THAT(r->text, Catch::Contains("term:" + std::to_string(s.core.term()) + "\r\n"));
}

TEST_CASE("READMODE: local reads on any server; lease reads on the leader") {
  Server s;
  s.elect();
  CHECK(s.run({"SET", "k", "v"}) == "+OK\r\n");
  CHECK(s.run({"READMODE", "local"}) == "+OK\r\n");
  CHECK(s.session.read_mode == pods::CoreRead::local);
  CHECK(**s.send({"GET", "k"}) == "$1\r\nv\r\n");  // answered within the call
  CHECK(s.run({"READMODE", "lease"}) == "+OK\r\n");
  const std::string first = s.run({"GET", "k"});
  if (first != "$1\r\nv\r\n") {  // outside the lease the leader says so, never MOVED to itself
    CHECK(first == "-TRYAGAIN leader lease not held: retry, or READMODE linearizable\r\n");
  }
  for (int i = 0; i < 20; ++i) {  // heartbeat rounds confirm the lease
    s.clock.advance(50ms);
    s.core.tick();
  }
  CHECK(s.run({"GET", "k"}) == "$1\r\nv\r\n");
}

TEST_CASE(
    "a follower redirects writes and linearizable reads: MOVED to the leader, TRYAGAIN without "
    "one") {
  Server s({1, 2, 3});
  CHECK(s.run({"SET", "k", "v"}) == "-TRYAGAIN no leader\r\n");
  CHECK(s.run({"GET", "k"}) == "-TRYAGAIN no leader\r\n");
  // Node 2 leads term 1: its AppendEntries makes it the known leader.
  pods::AppendEntries heartbeat;
  heartbeat.term = 1;
  s.core.receive(2, heartbeat);
  REQUIRE(s.core.leader() == 2);
  CHECK(s.run({"SET", "k", "v"}) == "-MOVED 2 127.0.0.1:7002\r\n");
  CHECK(s.run({"GET", "k"}) == "-MOVED 2 127.0.0.1:7002\r\n");
  CHECK(s.run({"DEL", "a", "b"}) == "-MOVED 2 127.0.0.1:7002\r\n");
  CHECK(s.run({"LEASE", "KEEPALIVE", "5"}) == "-MOVED 2 127.0.0.1:7002\r\n");
  // A leader whose client port is not known yet: TRYAGAIN.
  s.ports.erase(2);
  CHECK(s.run({"INCR", "n"}) == "-TRYAGAIN no leader\r\n");
  // Local reads are served by the follower itself.
  CHECK(s.run({"READMODE", "local"}) == "+OK\r\n");
  CHECK(s.run({"GET", "k"}) == "$-1\r\n");
}

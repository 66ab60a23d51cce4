// Tests of examples/consistent_core/resp.hpp: every framing error with its exact message,
// that a failed parser stays failed, that feeding byte by byte equals feeding whole, pipelined
// and inline commands, the limits, reply round trips through ReplyReader, and a seeded
// differential test (random commands, encoded, cut at random points, parsed back).
#include "resp.hpp"

#include <catch2/catch.hpp>

#include <pods/policy/random.hpp>

#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace resp = consistent_core::resp;
using resp::Command;

namespace {

struct Parsed {
  std::vector<Command> commands;
  std::optional<std::string> error;
};

// Feeds `bytes` in pieces of `chunk` bytes (0: whole), taking commands after each piece.
Parsed parse(std::string_view bytes, std::size_t chunk = 0, resp::ParserLimits limits = {}) {
  resp::RequestParser p(limits);
  Parsed out;
  const std::size_t step = chunk == 0 ? std::max<std::size_t>(bytes.size(), 1) : chunk;
  try {
    for (std::size_t at = 0; at < bytes.size(); at += step) {
      p.feed(bytes.substr(at, step));
      while (auto c = p.next())
        out.commands.push_back(std::move(*c));
    }
  } catch (const resp::ProtocolError& e) {
    out.error = e.what();
  }
  return out;
}

// The error that `bytes` gives, whole and byte at a time (both must agree).
std::string error_of(std::string_view bytes, resp::ParserLimits limits = {}) {
  const Parsed whole = parse(bytes, 0, limits);
  const Parsed bytewise = parse(bytes, 1, limits);
  REQUIRE(whole.error.has_value());
  CHECK(whole.error == bytewise.error);
  CHECK(whole.commands == bytewise.commands);
  return *whole.error;
}

int seeds() {
  if (const char* env = std::getenv("PODS_SEEDS")) return std::max(1, std::atoi(env));
  return 3;
}

}  // namespace

TEST_CASE("an array of bulk strings is one command") {
  const Parsed p = parse("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
  REQUIRE_FALSE(p.error);
  REQUIRE(p.commands == std::vector<Command>{{"GET", "k"}});
}

TEST_CASE("bulk strings carry any bytes, CRLF and NUL included") {
  const std::string value("a\r\nb\0c", 6);
  const Parsed p = parse(resp::encode_command({"SET", "k", value}));
  REQUIRE(p.commands == std::vector<Command>{{"SET", "k", value}});
  REQUIRE(parse("*1\r\n$0\r\n\r\n").commands == std::vector<Command>{{""}});
}

TEST_CASE("inline commands: words split on spaces and tabs, LF or CRLF ended") {
  REQUIRE(parse("PING\r\n").commands == std::vector<Command>{{"PING"}});
  REQUIRE(parse("SET  k\tv\n").commands == std::vector<Command>{{"SET", "k", "v"}});
  REQUIRE(parse("  GET k  \r\n").commands == std::vector<Command>{{"GET", "k"}});
  // No quoting: quotes are ordinary bytes.
  REQUIRE(parse("SET \"a b\"\r\n").commands == std::vector<Command>{{"SET", "\"a", "b\""}});
}

TEST_CASE("empty inline lines and empty arrays are skipped") {
  const Parsed p = parse("\r\n\n   \r\n*0\r\nPING\r\n");
  REQUIRE_FALSE(p.error);
  REQUIRE(p.commands == std::vector<Command>{{"PING"}});
}

TEST_CASE("pipelined commands come out in order, arrays and inline mixed") {
  std::string bytes;
  for (int i = 0; i < 100; ++i) {
    bytes +=
        i % 3 == 0 ? "INCR n\r\n" : resp::encode_command({"SET", "k" + std::to_string(i), "v"});
  }
  const Parsed p = parse(bytes);
  REQUIRE(p.commands.size() == 100);
  for (int i = 0; i < 100; ++i) {
    const Command want =
        i % 3 == 0 ? Command{"INCR", "n"} : Command{"SET", "k" + std::to_string(i), "v"};
    REQUIRE(p.commands[static_cast<std::size_t>(i)] == want);
  }
}

TEST_CASE("a partial command waits for its bytes; buffered() counts the unparsed ones") {
  resp::RequestParser p;
  p.feed("*2\r\n$3\r\nGET\r\n$1\r");
  REQUIRE_FALSE(p.next());
  REQUIRE(p.buffered() == 3);  // "$1\r": the headers before it are parsed
  p.feed("\nk\r\n*1\r\n$4\r\nPI");
  REQUIRE(p.next() == Command{"GET", "k"});
  REQUIRE_FALSE(p.next());
  p.feed("NG\r\n");
  REQUIRE(p.next() == Command{"PING"});
  REQUIRE_FALSE(p.next());
  REQUIRE(p.buffered() == 0);
}

TEST_CASE("byte-at-a-time feeding gives what whole feeding gives") {
  std::string bytes = "PING\r\n" + resp::encode_command({"SET", "key", std::string(300, 'x')}) +
                      "*0\r\n\r\nGET key\n" + resp::encode_command({"DEL", "a", "b", ""});
  const Parsed whole = parse(bytes);
  for (std::size_t chunk : {1, 2, 3, 7, 64}) {
    const Parsed split = parse(bytes, chunk);
    REQUIRE_FALSE(split.error);
    REQUIRE(split.commands == whole.commands);
  }
  REQUIRE(whole.commands.size() == 4);
}

// ---- Framing errors: one case each, with the exact message ----

TEST_CASE("bad input: a reply type byte where a request starts") {
  CHECK(error_of("$3\r\nGET\r\n") == "Protocol error: expected '*' or an inline command, got '$'");
  CHECK(error_of("+OK\r\n") == "Protocol error: expected '*' or an inline command, got '+'");
  CHECK(error_of(":1\r\n") == "Protocol error: expected '*' or an inline command, got ':'");
  CHECK(error_of("-ERR\r\n") == "Protocol error: expected '*' or an inline command, got '-'");
}

TEST_CASE("bad input: an array element that is not a bulk string") {
  CHECK(error_of("*1\r\n:1\r\n") == "Protocol error: expected '$', got ':'");
  CHECK(error_of("*2\r\n$1\r\na\r\nPING\r\n") == "Protocol error: expected '$', got 'P'");
  CHECK(error_of("*1\r\n\x01") == "Protocol error: expected '$', got \\x01");
}

TEST_CASE("bad input: an array length that is not a canonical number") {
  CHECK(error_of("*x\r\n") == "Protocol error: invalid array length 'x'");
  CHECK(error_of("*\r\n") == "Protocol error: invalid array length ''");
  CHECK(error_of("*-1\r\n") == "Protocol error: invalid array length '-1'");
  CHECK(error_of("*+1\r\n") == "Protocol error: invalid array length '+1'");
  CHECK(error_of("*01\r\n") == "Protocol error: invalid array length '01'");
  CHECK(error_of("*1 \r\n") == "Protocol error: invalid array length '1 '");
  CHECK(error_of("*99999999999999999999\r\n") ==
        "Protocol error: invalid array length '99999999999999999999'");
}

TEST_CASE("bad input: an array length line that never ends") {
  CHECK(error_of("*" + std::string(30, '1')) ==
        "Protocol error: invalid array length '111111111111111111111'");
}

TEST_CASE("bad input: a bulk length that is not a canonical number") {
  CHECK(error_of("*1\r\n$x\r\n") == "Protocol error: invalid bulk length 'x'");
  CHECK(error_of("*1\r\n$-1\r\n") == "Protocol error: invalid bulk length '-1'");
  CHECK(error_of("*1\r\n$03\r\nabc\r\n") == "Protocol error: invalid bulk length '03'");
  CHECK(error_of("*1\r\n$\r\n") == "Protocol error: invalid bulk length ''");
  CHECK(error_of("*1\r\n$" + std::string(25, '9')) ==
        "Protocol error: invalid bulk length '999999999999999999999'");
}

TEST_CASE("bad input: a header line ended by LF alone or CR alone") {
  CHECK(error_of("*1\n$4\r\nPING\r\n") == "Protocol error: expected CRLF after the array length");
  CHECK(error_of("*1\rx") == "Protocol error: expected CRLF after the array length");
  CHECK(error_of("*1\r\n$4\nPING\r\n") == "Protocol error: expected CRLF after the bulk length");
  CHECK(error_of("*1\r\n$4\r PING\r\n") == "Protocol error: expected CRLF after the bulk length");
}

TEST_CASE("bad input: a bulk string not followed by CRLF") {
  CHECK(error_of("*1\r\n$4\r\nPINGG\r\n") == "Protocol error: expected CRLF after the bulk string");
  CHECK(error_of("*1\r\n$4\r\nPING\rx") == "Protocol error: expected CRLF after the bulk string");
  CHECK(error_of("*1\r\n$4\r\nPING\n\n") == "Protocol error: expected CRLF after the bulk string");
}

TEST_CASE("bad input: over the limits") {
  resp::ParserLimits small{
      .max_bulk_bytes = 8, .max_arguments = 3, .max_inline_bytes = 10, .max_command_bytes = 12};
  CHECK(error_of("*4\r\n", small) == "Protocol error: array of 4 elements over the limit of 3");
  CHECK(error_of("*1\r\n$9\r\n", small) == "Protocol error: bulk length 9 over the limit of 8");
  CHECK(error_of("*2\r\n$8\r\n12345678\r\n$5\r\n", small) ==
        "Protocol error: command over the limit of 12 bytes");
  CHECK(error_of("SET k 123456", small) ==
        "Protocol error: inline command over the limit of 10 bytes");
  CHECK(error_of("SET k 1234567\r\n", small) ==
        "Protocol error: inline command over the limit of 10 bytes");
  CHECK(error_of("a b c d\r\n", small) ==
        "Protocol error: inline command of more than 3 words over the limit");
  // At the limits: accepted.
  REQUIRE(parse("*3\r\n$8\r\n12345678\r\n$4\r\n1234\r\n$0\r\n\r\n", 1, small).commands.size() == 1);
  REQUIRE(parse("SET k 1234\r\n", 1, small).commands == std::vector<Command>{{"SET", "k", "1234"}});
  REQUIRE(parse("SET k 1234\n", 1, small).commands.size() == 1);
}

TEST_CASE("a huge claimed length is refused before anything is allocated") {
  CHECK(error_of("*1\r\n$4294967296\r\n") ==
        "Protocol error: bulk length 4294967296 over the limit of 1048576");
  CHECK(error_of("*2000000000\r\n") ==
        "Protocol error: array of 2000000000 elements over the limit of 65536");
}

TEST_CASE(
    "commands before a framing error are still handed out; after it the parser stays failed") {
  resp::RequestParser p;
  p.feed("PING\r\n*1\r\n:1\r\n");
  REQUIRE(p.next() == Command{"PING"});
  REQUIRE_THROWS_WITH(p.next(), "Protocol error: expected '$', got ':'");
  REQUIRE(p.failed());
  p.feed("PING\r\n");
  REQUIRE_THROWS_WITH(p.next(), "Protocol error: expected '$', got ':'");
}

TEST_CASE("zero limits are refused, naming the option") {
  REQUIRE_THROWS_WITH(resp::RequestParser(resp::ParserLimits{.max_bulk_bytes = 0}),
                      "ParserLimits: max_bulk_bytes must be positive");
  REQUIRE_THROWS_WITH(resp::RequestParser(resp::ParserLimits{.max_arguments = 0}),
                      "ParserLimits: max_arguments must be positive");
  REQUIRE_THROWS_WITH(resp::RequestParser(resp::ParserLimits{.max_inline_bytes = 0}),
                      "ParserLimits: max_inline_bytes must be positive");
  REQUIRE_THROWS_WITH(resp::RequestParser(resp::ParserLimits{.max_command_bytes = 0}),
                      "ParserLimits: max_command_bytes must be positive");
  REQUIRE_THROWS_WITH(resp::ReplyReader(resp::ReaderLimits{.max_depth = 0}),
                      "ReaderLimits: max_depth must be positive");
}

// ---- Replies ----

TEST_CASE("the reply writer's bytes") {
  std::string out;
  resp::simple(out, "OK");
  resp::error(out, "ERR bad\r\nthing");
  resp::integer(out, -42);
  resp::bulk(out, "hi");
  resp::null(out);
  resp::null_array(out);
  resp::array(out, 2);
  resp::bulk(out, "");
  resp::integer(out, 0);
  REQUIRE(out ==
          "+OK\r\n-ERR bad  thing\r\n:-42\r\n$2\r\nhi\r\n$-1\r\n*-1\r\n*2\r\n$0\r\n\r\n:0\r\n");
}

TEST_CASE("replies read back: every type, nested, byte at a time") {
  using R = resp::Reply;
  const std::vector<R> replies{
      R::simple_of("OK"),
      R::error_of("MOVED 2 127.0.0.1:7000"),
      R::integer_of(std::numeric_limits<std::int64_t>::min()),
      R::integer_of(std::numeric_limits<std::int64_t>::max()),
      R::bulk_of(std::string("a\r\n\0", 4)),
      R::null_bulk(),
      R::null_array_reply(),
      R::array_of({}),
      R::array_of({R::bulk_of("watch"), R::array_of({R::integer_of(7)})}),
  };
  std::string bytes;
  for (const auto& r : replies)
    resp::encode_reply(bytes, r);
  for (std::size_t chunk : {std::size_t{1}, std::size_t{5}, bytes.size()}) {
    resp::ReplyReader reader;
    std::vector<resp::Reply> got;
    for (std::size_t at = 0; at < bytes.size(); at += chunk) {
      reader.feed(std::string_view(bytes).substr(at, chunk));
      while (auto r = reader.next())
        got.push_back(std::move(*r));
    }
    REQUIRE(got == replies);
    REQUIRE(reader.buffered() == 0);
  }
}

TEST_CASE("bad replies: each with its message") {
  auto bad = [](std::string_view bytes) {
    resp::ReplyReader reader;
    reader.feed(bytes);
    try {
      while (reader.next()) {
      }
    } catch (const resp::ProtocolError& e) {
      REQUIRE(reader.failed());
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(bad("!x\r\n") ==
        "Protocol error: expected a reply type byte ('+', '-', ':', '$' or '*'), got '!'");
  CHECK(bad("+OK\n") == "Protocol error: expected CRLF at the end of a reply line");
  CHECK(bad(":12a\r\n") == "Protocol error: invalid integer '12a'");
  CHECK(bad(":-0\r\n") == "Protocol error: invalid integer '-0'");
  CHECK(bad(":9223372036854775808\r\n") == "Protocol error: invalid integer '9223372036854775808'");
  CHECK(bad("$-2\r\n") == "Protocol error: invalid bulk length '-2'");
  CHECK(bad("$2\r\nabc") == "Protocol error: expected CRLF after the bulk string");
  CHECK(bad("*x\r\n") == "Protocol error: invalid array length 'x'");
  std::string deep;
  for (int i = 0; i < 70; ++i)
    deep += "*1\r\n";
  CHECK(bad(deep) == "Protocol error: arrays nested deeper than 64");
  resp::ReplyReader small(
      resp::ReaderLimits{.max_bulk_bytes = 4, .max_elements = 2, .max_line_bytes = 3});
  small.feed("$5\r\n");
  REQUIRE_THROWS_WITH(small.next(), "Protocol error: bulk length 5 over the limit of 4");
  resp::ReplyReader lines(resp::ReaderLimits{.max_line_bytes = 3});
  lines.feed("+abcd");
  REQUIRE_THROWS_WITH(lines.next(), "Protocol error: reply line over the limit of 3 bytes");
  resp::ReplyReader arrays(resp::ReaderLimits{.max_elements = 2});
  arrays.feed("*3\r\n");
  REQUIRE_THROWS_WITH(arrays.next(), "Protocol error: array length 3 over the limit of 2");
}

// ---- Differential: random commands, encoded, cut at random points ----

TEST_CASE("seeded differential: random pipelines cut at random points parse back [sim]") {
  for (int seed = 1; seed <= seeds(); ++seed) {
    pods::Random random(static_cast<std::uint64_t>(seed));
    std::vector<Command> sent;
    std::string bytes;
    for (int i = 0; i < 300; ++i) {
      Command c;
      const std::size_t words = 1 + random.below(6);
      const bool as_inline = random.below(4) == 0;
      for (std::size_t w = 0; w < words; ++w) {
        std::string word;
        const std::size_t len =
            (as_inline ? 1 : 0) + random.below(random.below(8) == 0 ? 2000 : 12);
        for (std::size_t k = 0; k < len; ++k) {
          if (as_inline) {
            word += static_cast<char>('!' + random.below(94));  // printable, no space
          } else {
            word += static_cast<char>(random.below(256));
          }
        }
        c.push_back(std::move(word));
      }
      if (as_inline) {
        // A '*', '$', '+', '-' or ':' first would read as a frame: lead with a letter.
        c[0][0] = static_cast<char>('A' + random.below(26));
        for (std::size_t w = 0; w < c.size(); ++w)
          bytes += (w == 0 ? "" : " ") + c[w];
        bytes += random.below(2) == 0 ? "\r\n" : "\n";
      } else {
        resp::encode_command(bytes, c);
      }
      sent.push_back(std::move(c));
    }
    resp::RequestParser parser;
    std::vector<Command> got;
    std::size_t at = 0;
    while (at < bytes.size()) {
      const std::size_t n = std::min<std::size_t>(bytes.size() - at, 1 + random.below(600));
      parser.feed(std::string_view(bytes).substr(at, n));
      at += n;
      while (auto c = parser.next())
        got.push_back(std::move(*c));
    }
    INFO("seed " << seed);
    REQUIRE(got == sent);
    REQUIRE(parser.buffered() == 0);
  }
}

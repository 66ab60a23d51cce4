// consistent_core/resp.hpp — RESP2, the Redis protocol: requests in, replies out, replies back
//
// Problem:       A server that real Redis clients (redis-cli, redis-benchmark, any client
//                library) can drive must read their requests as they trickle in from a socket,
//                split at any byte, several pipelined in one read, and must never trust a
//                length it is sent: a client that claims a 4 GiB string or a million
//                arguments must not make the server allocate them. The demo's own clients
//                need the other direction: replies read back incrementally into values.
// Solution:      RequestParser is a resumable state machine over an input buffer. feed()
//                appends bytes; next() returns each complete command (a vector of byte
//                strings) in order. A request is an array of bulk strings, as clients send
//                it ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"), or an inline command, one line of
//                space-separated words as telnet and `redis-cli` in inline mode send it.
//                Lengths are canonical decimals (no sign, no leading zero) checked against
//                the limits before anything is allocated. The reply writer appends RESP2
//                replies to a string; ReplyReader parses a server's replies into a Reply tree.
// Guarantees:    Feeding the same bytes in any split gives the same commands and the same
//                error. Every framing error (a bad type byte, a bad length, a missing CRLF, a
//                value over a limit) throws ProtocolError whose what() is the exact text to
//                send back after "-ERR " ("Protocol error: ..."); afterwards the parser is
//                failed and every next() throws the same error, so a caller cannot go on
//                reading a stream whose framing is lost. No command is larger than
//                max_command_bytes, no bulk than max_bulk_bytes, no array than
//                max_arguments, no inline line than max_inline_bytes; the input buffer holds
//                at most one partial command beyond the commands not yet taken.
//                encode_command(c) parsed back gives c.
// Not provided:  RESP3 (HELLO 3, maps, sets, doubles); inline quoting ("a b" is two words
//                '"a' and 'b"'); the meaning of a command (commands.hpp checks it).
// Thread safety: thread-compatible: one parser or reader per connection.
// Errors:        ProtocolError (a std::runtime_error) for framing errors, as above;
//                std::invalid_argument naming the option for a zero limit.
// Cost:          Each byte is examined a constant number of times by RequestParser; bulk
//                payloads are copied once into the command. ReplyReader re-parses a partial
//                reply from its start at each next() (replies in the demo are small).
// Example:
//   resp::RequestParser parser;
//   parser.feed("*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\nPING\r\n");
//   while (auto command = parser.next()) std::printf("%zu words\n", command->size());
//   std::string out;
//   resp::bulk(out, "hi");
//   resp::ReplyReader reader;
//   reader.feed(out);
//   if (auto reply = reader.next()) std::printf("%s\n", reply->text.c_str());
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace consistent_core::resp {

// A framing error: what() is the whole message a server replies with after "-ERR ".
class ProtocolError : public std::runtime_error {
 public:
  explicit ProtocolError(const std::string& detail)
      : std::runtime_error("Protocol error: " + detail) {}
};

// One request: its words, the command name first, as raw bytes.
using Command = std::vector<std::string>;

// The bounds a RequestParser enforces before allocating (each must be positive).
struct ParserLimits {
  std::size_t max_bulk_bytes = std::size_t{1} << 20;     // one argument
  std::size_t max_arguments = std::size_t{1} << 16;      // words of one command
  std::size_t max_inline_bytes = std::size_t{64} << 10;  // one inline line, CRLF excluded
  std::size_t max_command_bytes = std::size_t{4} << 20;  // the arguments of one command together
};

namespace detail {

// Returns `c` as text for an error message: 'x' when printable, else \xNN.
inline std::string show_byte(char c) {
  const auto u = static_cast<unsigned char>(c);
  if (u >= 0x21 && u <= 0x7e) return std::string("'") + c + "'";
  static constexpr char hex[] = "0123456789abcdef";
  return std::string("\\x") + hex[u >> 4] + hex[u & 15];
}

// Returns `text` quoted for an error message, unprintable bytes as \xNN, cut at 32 bytes.
inline std::string show(std::string_view text) {
  std::string s = "'";
  for (std::size_t i = 0; i < text.size() && i < 32; ++i) {
    const auto u = static_cast<unsigned char>(text[i]);
    if (u >= 0x20 && u <= 0x7e && text[i] != '\'') {
      s += text[i];
    } else {
      std::string b = show_byte(text[i]);
      s += b.front() == '\'' ? "\\x27" : b;
    }
  }
  if (text.size() > 32) s += "...";
  return s + "'";
}

// Parses a canonical non-negative decimal (digits only, no leading zero unless "0") that
// fits in `max`; nullopt otherwise.
inline std::optional<std::uint64_t> canonical(std::string_view digits, std::uint64_t max) {
  if (digits.empty() || digits.size() > 19 || (digits.size() > 1 && digits[0] == '0')) {
    return std::nullopt;
  }
  std::uint64_t v = 0;
  for (char c : digits) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(c - '0');
  }
  if (v > max) return std::nullopt;
  return v;
}

// Longest header line "*<19 digits>\r\n" a length can take; past it the line is refused.
inline constexpr std::size_t max_header_line = 1 + 19 + 2;

// Throws std::invalid_argument("<what> must be positive") when v is 0.
inline void positive(std::size_t v, const char* what) {
  if (v == 0) throw std::invalid_argument(std::string(what) + " must be positive");
}

// The input of a parser: the bytes fed, how far they are parsed, and the framing error that
// failed it (kept, so every later call throws it again).
struct Input {
  std::string bytes;
  std::size_t pos = 0;
  std::optional<std::string> error;

  // Runs parse() unless failed; records the ProtocolError it throws; drops the bytes parsed
  // once they dominate the buffer.
  template <class F>
  auto guarded(F parse) {
    if (error) throw ProtocolError(*error);
    try {
      auto result = parse();
      if (pos == bytes.size()) {
        bytes.clear();
        pos = 0;
      } else if (pos > 4096 && pos * 2 > bytes.size()) {
        bytes.erase(0, pos);
        pos = 0;
      }
      return result;
    } catch (const ProtocolError& e) {
      error = std::string(e.what()).substr(std::string_view("Protocol error: ").size());
      throw;
    }
  }
};

}  // namespace detail

// Reads requests from a byte stream. Thread-compatible.
class RequestParser {
 public:
  // Throws std::invalid_argument naming a zero limit.
  explicit RequestParser(ParserLimits limits = {}) : limits_(limits) {
    detail::positive(limits.max_bulk_bytes, "ParserLimits: max_bulk_bytes");
    detail::positive(limits.max_arguments, "ParserLimits: max_arguments");
    detail::positive(limits.max_inline_bytes, "ParserLimits: max_inline_bytes");
    detail::positive(limits.max_command_bytes, "ParserLimits: max_command_bytes");
  }

  // Appends `bytes` (copied) to the input. Allocates as the buffer grows.
  void feed(std::string_view bytes) { input_.bytes.append(bytes); }

  // Returns the next complete command, or nullopt when the input holds none yet. Empty
  // inline lines and "*0" arrays are skipped. Throws ProtocolError on a framing error, and
  // again (the same message) at every later call.
  std::optional<Command> next() {
    return input_.guarded([this] { return step(); });
  }

  // True once a framing error was thrown.
  bool failed() const noexcept { return input_.error.has_value(); }
  // Bytes fed and not yet parsed (the parsed part of a partial command is held apart).
  std::size_t buffered() const noexcept { return input_.bytes.size() - input_.pos; }
  const ParserLimits& limits() const noexcept { return limits_; }

 private:
  enum class State { start, element, payload };

  [[noreturn]] static void fail(const std::string& detail) { throw ProtocolError(detail); }

  std::optional<Command> step() {
    for (;;) {
      if (input_.pos >= input_.bytes.size()) return std::nullopt;
      if (state_ == State::start) {
        const char c = input_.bytes[input_.pos];
        if (c == '*') {
          std::optional<std::string_view> line = header_line("array length");
          if (!line) return std::nullopt;
          const auto n = detail::canonical(*line, std::numeric_limits<std::uint64_t>::max());
          if (!n) fail("invalid array length " + detail::show(*line));
          if (*n > limits_.max_arguments) {
            fail("array of " + std::to_string(*n) + " elements over the limit of " +
                 std::to_string(limits_.max_arguments));
          }
          if (*n == 0) continue;
          remaining_ = static_cast<std::size_t>(*n);
          command_bytes_ = 0;
          args_.clear();
          args_.reserve(std::min<std::size_t>(remaining_, 64));
          state_ = State::element;
        } else if (c == '$' || c == '+' || c == '-' || c == ':') {
          fail("expected '*' or an inline command, got " + detail::show_byte(c));
        } else {
          std::optional<Command> cmd = inline_command();
          if (!cmd) return std::nullopt;
          if (cmd->empty()) continue;
          return cmd;
        }
      } else if (state_ == State::element) {
        const char c = input_.bytes[input_.pos];
        if (c != '$') fail("expected '$', got " + detail::show_byte(c));
        std::optional<std::string_view> line = header_line("bulk length");
        if (!line) return std::nullopt;
        const auto n = detail::canonical(*line, std::numeric_limits<std::uint64_t>::max());
        if (!n) fail("invalid bulk length " + detail::show(*line));
        if (*n > limits_.max_bulk_bytes) {
          fail("bulk length " + std::to_string(*n) + " over the limit of " +
               std::to_string(limits_.max_bulk_bytes));
        }
        if (*n > limits_.max_command_bytes - command_bytes_) {
          fail("command over the limit of " + std::to_string(limits_.max_command_bytes) + " bytes");
        }
        bulk_ = static_cast<std::size_t>(*n);
        command_bytes_ += bulk_;
        state_ = State::payload;
      } else {
        if (input_.bytes.size() - input_.pos < bulk_ + 2) {
          // The CRLF's place may already be visible: refuse early what can never be right.
          const std::size_t have = input_.bytes.size() - input_.pos;
          if (have > bulk_ && input_.bytes[input_.pos + bulk_] != '\r')
            fail("expected CRLF after the bulk string");
          return std::nullopt;
        }
        if (input_.bytes[input_.pos + bulk_] != '\r' ||
            input_.bytes[input_.pos + bulk_ + 1] != '\n') {
          fail("expected CRLF after the bulk string");
        }
        args_.emplace_back(input_.bytes, input_.pos, bulk_);
        input_.pos += bulk_ + 2;
        state_ = State::element;
        if (--remaining_ == 0) {
          state_ = State::start;
          return std::exchange(args_, {});
        }
      }
    }
  }

  // Returns the digits of the header line at input_.pos ("*12\r\n" or "$3\r\n") and moves past it,
  // or nullopt (nothing consumed) when its end has not arrived.
  std::optional<std::string_view> header_line(const char* what) {
    const std::size_t limit = std::min(input_.bytes.size(), input_.pos + detail::max_header_line);
    for (std::size_t i = input_.pos + 1; i < limit; ++i) {
      if (input_.bytes[i] == '\r') {
        if (i + 1 >= input_.bytes.size()) return std::nullopt;
        if (input_.bytes[i + 1] != '\n') fail(std::string("expected CRLF after the ") + what);
        std::string_view digits(input_.bytes.data() + input_.pos + 1, i - input_.pos - 1);
        input_.pos = i + 2;
        return digits;
      }
      if (input_.bytes[i] == '\n') fail(std::string("expected CRLF after the ") + what);
    }
    if (input_.bytes.size() - input_.pos >= detail::max_header_line) {
      fail(std::string("invalid ") + what + " " +
           detail::show(std::string_view(input_.bytes.data() + input_.pos + 1,
                                         detail::max_header_line - 1)));
    }
    return std::nullopt;
  }

  // Returns the words of the inline line at input_.pos (LF or CRLF ended) and moves past it, or
  // nullopt when its end has not arrived.
  std::optional<Command> inline_command() {
    const std::size_t limit = limits_.max_inline_bytes + 2;  // the line and its CRLF
    const std::size_t scan_end = std::min(input_.bytes.size(), input_.pos + limit);
    const std::size_t nl = input_.bytes.find('\n', input_.pos);
    if (nl == std::string::npos || nl >= scan_end) {
      if (input_.bytes.size() - input_.pos >= limit) {
        fail("inline command over the limit of " + std::to_string(limits_.max_inline_bytes) +
             " bytes");
      }
      return std::nullopt;
    }
    std::size_t end = nl;
    if (end > input_.pos && input_.bytes[end - 1] == '\r') --end;
    if (end - input_.pos > limits_.max_inline_bytes) {
      fail("inline command over the limit of " + std::to_string(limits_.max_inline_bytes) +
           " bytes");
    }
    Command words;
    std::size_t i = input_.pos;
    while (i < end) {
      while (i < end && (input_.bytes[i] == ' ' || input_.bytes[i] == '\t'))
        ++i;
      const std::size_t start = i;
      while (i < end && input_.bytes[i] != ' ' && input_.bytes[i] != '\t')
        ++i;
      if (i > start) {
        if (words.size() == limits_.max_arguments) {
          fail("inline command of more than " + std::to_string(limits_.max_arguments) +
               " words over the limit");
        }
        words.emplace_back(input_.bytes, start, i - start);
      }
    }
    input_.pos = nl + 1;
    return words;
  }

  ParserLimits limits_;
  detail::Input input_;
  State state_ = State::start;
  std::size_t remaining_ = 0;      // elements still to come in the current array
  std::size_t bulk_ = 0;           // the current bulk string's length
  std::size_t command_bytes_ = 0;  // argument bytes of the current array so far
  Command args_;
};

// ---- Writing: each function appends one RESP2 value to `out` (allocates as it grows) ----

// Appends the request encoding of `args`: an array of bulk strings.
inline void encode_command(std::string& out, const Command& args) {
  out += '*';
  out += std::to_string(args.size());
  out += "\r\n";
  for (const std::string& a : args) {
    out += '$';
    out += std::to_string(a.size());
    out += "\r\n";
    out += a;
    out += "\r\n";
  }
}
inline std::string encode_command(const Command& args) {
  std::string out;
  encode_command(out, args);
  return out;
}

// "+text": `text` must hold no CR or LF (a caller's bug: CR and LF are replaced by spaces).
inline void simple(std::string& out, std::string_view text) {
  out += '+';
  for (char c : text)
    out += (c == '\r' || c == '\n') ? ' ' : c;
  out += "\r\n";
}
// "-text", e.g. error(out, "ERR unknown command 'FOO'"); CR and LF become spaces.
inline void error(std::string& out, std::string_view text) {
  out += '-';
  for (char c : text)
    out += (c == '\r' || c == '\n') ? ' ' : c;
  out += "\r\n";
}
inline void integer(std::string& out, std::int64_t v) {
  out += ':';
  out += std::to_string(v);
  out += "\r\n";
}
inline void bulk(std::string& out, std::string_view bytes) {
  out += '$';
  out += std::to_string(bytes.size());
  out += "\r\n";
  out += bytes;
  out += "\r\n";
}
// The null bulk string "$-1" (GET of an absent key).
inline void null(std::string& out) {
  out += "$-1\r\n";
}
// The null array "*-1".
inline void null_array(std::string& out) {
  out += "*-1\r\n";
}
// The header of an array of `n` elements; the caller appends the n elements.
inline void array(std::string& out, std::size_t n) {
  out += '*';
  out += std::to_string(n);
  out += "\r\n";
}
// The header of a push message of `n` elements (a watch event). RESP2 has no push type: it is
// an array, as Redis sends pub/sub messages to RESP2 clients.
inline void push(std::string& out, std::size_t n) {
  array(out, n);
}

// ---- Reading replies ----

// One reply. For simple and error: text; integer: integer; bulk: text; array: elements; null
// (a null bulk "$-1" or a null array "*-1", told apart by null_array).
struct Reply {
  enum class Type : std::uint8_t { simple, error, integer, bulk, null, array };
  Type type = Type::null;
  std::string text;
  std::int64_t integer = 0;
  std::vector<Reply> elements;
  bool null_array = false;

  bool is_error() const noexcept { return type == Type::error; }
  bool is_null() const noexcept { return type == Type::null; }

  // Builders (they allocate for the text or elements they keep).
  static Reply simple_of(std::string text) { return with(Type::simple, std::move(text)); }
  static Reply error_of(std::string text) { return with(Type::error, std::move(text)); }
  static Reply bulk_of(std::string bytes) { return with(Type::bulk, std::move(bytes)); }
  static Reply integer_of(std::int64_t v) {
    Reply r;
    r.type = Type::integer;
    r.integer = v;
    return r;
  }
  static Reply null_bulk() { return Reply{}; }
  static Reply null_array_reply() {
    Reply r;
    r.null_array = true;
    return r;
  }
  static Reply array_of(std::vector<Reply> elements) {
    Reply r;
    r.type = Type::array;
    r.elements = std::move(elements);
    return r;
  }

 private:
  static Reply with(Type t, std::string text) {
    Reply r;
    r.type = t;
    r.text = std::move(text);
    return r;
  }

 public:
  friend bool operator==(const Reply&, const Reply&) = default;
};

// The bounds a ReplyReader enforces (each must be positive).
struct ReaderLimits {
  std::size_t max_bulk_bytes = std::size_t{512} << 20;
  std::size_t max_elements = std::size_t{1} << 24;  // of one array
  std::size_t max_depth = 64;                       // arrays nested in arrays
  std::size_t max_line_bytes = std::size_t{64} << 10;
};

// Appends the encoding of `r` (canonical: what a server following this header sends).
inline void encode_reply(std::string& out, const Reply& r) {
  switch (r.type) {
    case Reply::Type::simple:
      simple(out, r.text);
      break;
    case Reply::Type::error:
      error(out, r.text);
      break;
    case Reply::Type::integer:
      integer(out, r.integer);
      break;
    case Reply::Type::bulk:
      bulk(out, r.text);
      break;
    case Reply::Type::null:
      if (r.null_array) {
        null_array(out);
      } else {
        null(out);
      }
      break;
    case Reply::Type::array:
      array(out, r.elements.size());
      for (const Reply& e : r.elements)
        encode_reply(out, e);
      break;
  }
}

// Reads a server's replies from a byte stream. Thread-compatible.
class ReplyReader {
 public:
  // Throws std::invalid_argument naming a zero limit.
  explicit ReplyReader(ReaderLimits limits = {}) : limits_(limits) {
    detail::positive(limits.max_bulk_bytes, "ReaderLimits: max_bulk_bytes");
    detail::positive(limits.max_elements, "ReaderLimits: max_elements");
    detail::positive(limits.max_depth, "ReaderLimits: max_depth");
    detail::positive(limits.max_line_bytes, "ReaderLimits: max_line_bytes");
  }

  // Appends `bytes` (copied) to the input.
  void feed(std::string_view bytes) { input_.bytes.append(bytes); }

  // Returns the next complete reply, or nullopt when more bytes are needed. Throws
  // ProtocolError on bytes that are not RESP2, and again (the same message) at every later
  // call.
  std::optional<Reply> next() {
    return input_.guarded([this] {
      std::size_t at = input_.pos;
      std::optional<Reply> r = parse(at, 0);
      if (r) input_.pos = at;
      return r;
    });
  }

  bool failed() const noexcept { return input_.error.has_value(); }
  std::size_t buffered() const noexcept { return input_.bytes.size() - input_.pos; }

 private:
  [[noreturn]] static void fail(const std::string& detail) { throw ProtocolError(detail); }

  // The line at `at` without its CRLF, moving `at` past it; nullopt when incomplete.
  std::optional<std::string_view> line(std::size_t& at) {
    const std::size_t limit = std::min(input_.bytes.size(), at + limits_.max_line_bytes + 2);
    for (std::size_t i = at + 1; i < limit; ++i) {
      if (input_.bytes[i] == '\n') fail("expected CRLF at the end of a reply line");
      if (input_.bytes[i] == '\r') {
        if (i + 1 >= input_.bytes.size()) return std::nullopt;
        if (input_.bytes[i + 1] != '\n') fail("expected CRLF at the end of a reply line");
        std::string_view v(input_.bytes.data() + at + 1, i - at - 1);
        at = i + 2;
        return v;
      }
    }
    if (input_.bytes.size() - at >= limits_.max_line_bytes + 2) {
      fail("reply line over the limit of " + std::to_string(limits_.max_line_bytes) + " bytes");
    }
    return std::nullopt;
  }

  // A length: "-1" (null) or a canonical decimal up to `max`.
  std::optional<std::int64_t> length(std::string_view text, std::size_t max, const char* what) {
    if (text == "-1") return -1;
    const auto n = detail::canonical(text, std::numeric_limits<std::int64_t>::max());
    if (!n) fail(std::string("invalid ") + what + " " + detail::show(text));
    if (*n > max) {
      fail(std::string(what) + " " + std::to_string(*n) + " over the limit of " +
           std::to_string(max));
    }
    return static_cast<std::int64_t>(*n);
  }

  std::optional<Reply> parse(std::size_t& at, std::size_t depth) {
    if (at >= input_.bytes.size()) return std::nullopt;
    const char type = input_.bytes[at];
    Reply r;
    if (type == '+' || type == '-') {
      auto l = line(at);
      if (!l) return std::nullopt;
      r.type = type == '+' ? Reply::Type::simple : Reply::Type::error;
      r.text = std::string(*l);
      return r;
    }
    if (type == ':') {
      auto l = line(at);
      if (!l) return std::nullopt;
      std::string_view t = *l;
      const bool negative = !t.empty() && t[0] == '-';
      if (negative) t.remove_prefix(1);
      const auto n =
          detail::canonical(t, negative ? std::uint64_t{1} << 63
                                        : std::uint64_t{std::numeric_limits<std::int64_t>::max()});
      if (!n || (negative && *n == 0)) fail("invalid integer " + detail::show(*l));
      r.type = Reply::Type::integer;
      r.integer = negative ? static_cast<std::int64_t>(0 - *n) : static_cast<std::int64_t>(*n);
      return r;
    }
    if (type == '$') {
      auto l = line(at);
      if (!l) return std::nullopt;
      const auto n = length(*l, limits_.max_bulk_bytes, "bulk length");
      if (*n < 0) {
        r.type = Reply::Type::null;
        return r;
      }
      const auto size = static_cast<std::size_t>(*n);
      if (input_.bytes.size() - at < size + 2) {
        if (input_.bytes.size() - at > size && input_.bytes[at + size] != '\r')
          fail("expected CRLF after the bulk string");
        return std::nullopt;
      }
      if (input_.bytes[at + size] != '\r' || input_.bytes[at + size + 1] != '\n') {
        fail("expected CRLF after the bulk string");
      }
      r.type = Reply::Type::bulk;
      r.text.assign(input_.bytes, at, size);
      at += size + 2;
      return r;
    }
    if (type == '*') {
      if (depth >= limits_.max_depth) {
        fail("arrays nested deeper than " + std::to_string(limits_.max_depth));
      }
      auto l = line(at);
      if (!l) return std::nullopt;
      const auto n = length(*l, limits_.max_elements, "array length");
      if (*n < 0) {
        r.type = Reply::Type::null;
        r.null_array = true;
        return r;
      }
      r.type = Reply::Type::array;
      for (std::int64_t i = 0; i < *n; ++i) {
        auto e = parse(at, depth + 1);
        if (!e) return std::nullopt;
        r.elements.push_back(std::move(*e));
      }
      return r;
    }
    fail("expected a reply type byte ('+', '-', ':', '$' or '*'), got " + detail::show_byte(type));
  }

  ReaderLimits limits_;
  detail::Input input_;
};

}  // namespace consistent_core::resp

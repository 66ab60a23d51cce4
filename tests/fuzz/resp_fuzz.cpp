// Fuzzes the RESP2 request parser and reply reader of examples/consistent_core/resp.hpp.
//
// Input: byte 0 picks the parser's limits (small ones, so the fuzzer reaches them), byte 1
// seeds the chunking, the rest is the stream. The stream is parsed as requests twice: whole,
// and cut into chunks of 1 to 64 bytes drawn from pods::Random. Both must give the same
// commands and end the same way (no error, or a ProtocolError with the same message, which a
// failed parser repeats). Every command must be within the limits and non-empty, and its
// re-encoding must parse back to the same commands. The stream is also read as replies, whole
// and chunked: the same replies and the same error, and the replies re-encoded must give
// back exactly the bytes consumed (the reader accepts only canonical RESP2). Any other
// exception, crash or sanitizer report is a bug.
#include "../../examples/consistent_core/resp.hpp"

#include <pods/policy/random.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace resp = consistent_core::resp;

namespace {

[[noreturn]] void bug(const char* what) {
  std::fprintf(stderr, "resp_fuzz: %s\n", what);
  std::abort();
}

template <class Value>
struct Outcome {
  std::vector<Value> values;
  std::optional<std::string> error;
  std::size_t left = 0;  // bytes fed and not parsed at the end
};

template <class Value, class Parser>
Outcome<Value> run(Parser parser, std::string_view stream, std::optional<std::uint8_t> seed) {
  Outcome<Value> out;
  pods::Random random(seed.value_or(0));
  std::size_t at = 0;
  try {
    while (at < stream.size()) {
      const std::size_t n =
          seed ? std::min<std::size_t>(1 + random.below(64), stream.size() - at) : stream.size();
      parser.feed(stream.substr(at, n));
      at += n;
      while (auto v = parser.next())
        out.values.push_back(std::move(*v));
    }
  } catch (const resp::ProtocolError& e) {
    out.error = e.what();
    if (!parser.failed()) bug("the parser threw but does not say it failed");
    try {
      (void)parser.next();
      bug("a failed parser returned");
    } catch (const resp::ProtocolError& again) {
      if (std::string(again.what()) != *out.error) bug("a failed parser changed its error");
    }
  }
  out.left = parser.buffered();
  return out;
}

void requests(const resp::ParserLimits& limits, std::uint8_t seed, std::string_view stream) {
  const auto whole = run<resp::Command>(resp::RequestParser(limits), stream, std::nullopt);
  const auto chunked = run<resp::Command>(resp::RequestParser(limits), stream, seed);
  if (whole.values != chunked.values) bug("chunking changed the commands");
  if (whole.error != chunked.error) bug("chunking changed the error");
  std::string again;
  for (const resp::Command& c : whole.values) {
    if (c.empty()) bug("an empty command was handed out");
    if (c.size() > limits.max_arguments) bug("a command over max_arguments was handed out");
    std::size_t bytes = 0;
    for (const std::string& a : c) {
      if (a.size() > limits.max_bulk_bytes) bug("an argument over max_bulk_bytes was handed out");
      bytes += a.size();
    }
    // An array is bounded by max_command_bytes, an inline line by max_inline_bytes.
    if (bytes > std::max(limits.max_command_bytes, limits.max_inline_bytes)) {
      bug("a command over its byte limit was handed out");
    }
    resp::encode_command(again, c);
  }
  resp::ParserLimits wide;  // the re-encoding may exceed small inline limits: parse it wide
  const auto back = run<resp::Command>(resp::RequestParser(wide), again, std::nullopt);
  if (back.error) bug("the re-encoding of accepted commands failed to parse");
  if (back.values != whole.values) bug("the re-encoding parsed to other commands");
  if (back.left != 0) bug("the re-encoding left bytes unparsed");
}

void replies(std::uint8_t seed, std::string_view stream) {
  const resp::ReaderLimits limits{
      .max_bulk_bytes = 1 << 16, .max_elements = 1 << 12, .max_depth = 16, .max_line_bytes = 256};
  const auto whole = run<resp::Reply>(resp::ReplyReader(limits), stream, std::nullopt);
  const auto chunked = run<resp::Reply>(resp::ReplyReader(limits), stream, seed);
  if (whole.values != chunked.values) bug("chunking changed the replies");
  if (whole.error != chunked.error) bug("chunking changed the reply error");
  std::string again;
  for (const resp::Reply& r : whole.values)
    resp::encode_reply(again, r);
  if (!whole.error) {
    if (again.size() + whole.left != stream.size()) bug("replies re-encoded to another length");
    if (stream.substr(0, again.size()) != again) bug("replies re-encoded to other bytes");
  } else if (stream.substr(0, again.size()) != again) {
    bug("replies before the error re-encoded to other bytes");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::size_t scale = 1 + (data[0] & 31u);
  const resp::ParserLimits limits{.max_bulk_bytes = 4 * scale,
                                  .max_arguments = 1 + std::size_t{data[0]} / 32,
                                  .max_inline_bytes = 3 * scale,
                                  .max_command_bytes = 6 * scale};
  const std::string_view stream(reinterpret_cast<const char*>(data + 2), size - 2);
  requests(limits, data[1], stream);
  replies(data[1], stream);
  return 0;
}

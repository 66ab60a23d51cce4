// `consistent_core check --port P`: drives a running node that leads (a single voter in the
// ctest) the way misbehaving clients do, and checks that it survives them and keeps answering:
//   - pipelined commands are answered in order;
//   - a bad command gets -ERR and the connection stays usable; a framing error gets
//     "-ERR Protocol error: ..." and the connection is closed;
//   - clients that close with writes in flight (their replies come after they left);
//   - a watcher that never reads: the node must close its watch with "closed full" and the
//     connection, rather than buffer without bound, while other clients are answered.
// Prints "check: ok" or "check: FAILED: <what>" and returns 0 or 1.
#pragma once

#include "cluster.hpp"
#include "resp.hpp"

#include <pods/policy/random.hpp>

#include <cstdint>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include <sys/socket.h>
#include <unistd.h>

namespace consistent_core {

namespace check_detail {

struct Failed {
  std::string what;
};

inline void expect(bool ok, const std::string& what) {
  if (!ok) throw Failed{what};
}

inline std::string show(const std::optional<resp::Reply>& r) {
  if (!r) return "(no reply)";
  std::string s;
  resp::encode_reply(s, *r);
  if (s.size() > 120) s = s.substr(0, 120) + "...";
  return s;
}

inline resp::Reply call(cluster::RespClient& c, const resp::Command& command) {
  auto r = c.call(command, 5000);
  expect(r.has_value(), "no reply to " + command[0]);
  return *r;
}

inline void expect_reply(cluster::RespClient& c, const resp::Command& command,
                         const resp::Reply& want) {
  const auto got = c.call(command, 5000);
  expect(got == want, command[0] + " answered " + show(got) + ", expected " + show(want));
}

// Sends raw bytes on a fresh connection and returns everything read until the node closes it
// (or 5 s pass).
inline std::string raw_exchange(unsigned port, const std::string& bytes) {
  const int fd = pods_examples::connect_to(port);
  expect(fd >= 0, "cannot connect");
  (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  std::string got;
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    char buf[4096];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) {
      ::close(fd);
      return got;
    }
    got.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  throw Failed{"the node did not close the connection; it sent: " + got};
}

inline std::uint64_t info_field(cluster::RespClient& c, const std::string& name) {
  const resp::Reply r = call(c, {"INFO"});
  const auto fields = cluster::parse_info(r.text);
  const auto it = fields.find(name);
  expect(it != fields.end(), "INFO has no " + name);
  return std::stoull(it->second);
}

}  // namespace check_detail

inline int run_check(unsigned port) {
  using namespace check_detail;
  using R = resp::Reply;
  try {
    cluster::RespClient a;
    expect(a.connect(port), "cannot connect to port " + std::to_string(port));
    expect_reply(a, {"PING"}, R::simple_of("PONG"));
    expect_reply(a, {"SET", "check:k", "v"}, R::simple_of("OK"));
    expect_reply(a, {"GET", "check:k"}, R::bulk_of("v"));

    // Pipelining: 200 commands in one write, the replies in order.
    {
      std::string bytes;
      for (int i = 0; i < 200; ++i) {
        bytes += i % 2 == 0 ? resp::encode_command({"INCR", "check:pipe"})
                            : resp::encode_command({"GET", "check:pipe"});
      }
      const int fd = pods_examples::connect_to(port);
      expect(fd >= 0, "cannot connect");
      (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      resp::ReplyReader reader;
      int seen = 0;
      while (seen < 200) {
        pollfd p{fd, POLLIN, 0};
        expect(::poll(&p, 1, 5000) > 0, "pipelined replies stopped at " + std::to_string(seen));
        char buf[4096];
        const ssize_t n = ::read(fd, buf, sizeof buf);
        expect(n > 0, "the pipelined connection closed");
        reader.feed(std::string_view(buf, static_cast<std::size_t>(n)));
        while (auto r = reader.next()) {
          const std::int64_t want = seen / 2 + 1;
          const R expected = seen % 2 == 0 ? R::integer_of(want) : R::bulk_of(std::to_string(want));
          expect(*r == expected, "pipelined reply " + std::to_string(seen) + " is " + show(*r) +
                                     ", expected " + show(expected));
          ++seen;
        }
      }
      ::close(fd);
    }

    // A bad command: -ERR, and the connection stays usable.
    expect_reply(a, {"GET"}, R::error_of("ERR wrong number of arguments for 'get' command"));
    expect_reply(a, {"SET", "check:k", "v", "BOGUS"}, R::error_of("ERR syntax error"));
    expect_reply(a, {"PING"}, R::simple_of("PONG"));

    // A framing error: the commands before it answered, then the error, then the close.
    {
      const std::string got = raw_exchange(port, "PING\r\n*1\r\n$x\r\nPING\r\n");
      const std::string want = "+PONG\r\n-ERR Protocol error: invalid bulk length 'x'\r\n";
      expect(got == want, "a framing error gave " + got);
    }

    // Clients that leave with writes in flight.
    for (int i = 0; i < 40; ++i) {
      const int fd = pods_examples::connect_to(port);
      expect(fd >= 0, "cannot connect");
      std::string bytes;
      for (int k = 0; k < 25; ++k)
        bytes += resp::encode_command({"INCR", "check:gone"});
      bytes += resp::encode_command({"SET", "check:gone:" + std::to_string(i), "x"});
      (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (i % 2 == 0) ::shutdown(fd, SHUT_RDWR);
      ::close(fd);
    }
    expect_reply(a, {"PING"}, R::simple_of("PONG"));
    {
      const R n = call(a, {"INCR", "check:gone"});
      expect(n.type == R::Type::integer && n.integer >= 1 && n.integer <= 40 * 25 + 1,
             "INCR after the clients left answered " + show(n));
    }

    // A watcher that never reads.
    {
      const std::uint64_t watches_before = info_field(a, "watches");
      cluster::RespClient w;
      expect(w.connect(port), "cannot connect the watcher");
      expect_reply(w, {"WATCH", "check:w/*"}, R::simple_of("OK"));
      expect(info_field(a, "watches") == watches_before + 1, "INFO does not count the watch");
      const std::string value(4096, 'w');
      bool closed = false;
      std::uint64_t writes = 0;
      for (int round = 0; round < 200 && !closed; ++round) {
        std::string bytes;
        for (int k = 0; k < 100; ++k) {
          bytes += resp::encode_command({"SET", "check:w/" + std::to_string(k), value});
        }
        // One pipelined batch on a's connection; read its 100 replies.
        const int fd = pods_examples::connect_to(port);
        expect(fd >= 0, "cannot connect the writer");
        (void)::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
        resp::ReplyReader reader;
        int seen = 0;
        while (seen < 100) {
          pollfd p{fd, POLLIN, 0};
          expect(::poll(&p, 1, 10000) > 0, "the writer's replies stopped while a watcher stalls");
          char buf[16384];
          const ssize_t n = ::read(fd, buf, sizeof buf);
          expect(n > 0, "the writer's connection closed");
          reader.feed(std::string_view(buf, static_cast<std::size_t>(n)));
          while (auto r = reader.next()) {
            expect(*r == R::simple_of("OK"), "a write answered " + show(*r));
            ++seen;
          }
        }
        ::close(fd);
        writes += 100;
        closed = info_field(a, "watches") == watches_before;
      }
      expect(closed, "the stalled watch was still open after " + std::to_string(writes) +
                         " writes of 4 KiB (the node buffers without bound)");
      // Now read what the watcher was sent: events in revision order, then the closed push,
      // then the end of the connection.
      std::uint64_t last = 0, events = 0;
      std::optional<resp::Reply> r;
      for (;;) {
        r = w.read(5000);
        if (!r) break;
        if (r->elements.size() == 3) break;
        expect(r->type == R::Type::array && r->elements.size() == 5 &&
                   r->elements[0] == R::bulk_of("watch") && r->elements[1] == R::bulk_of("put"),
               "the watcher got " + show(r));
        const auto rev = static_cast<std::uint64_t>(r->elements[4].integer);
        expect(rev > last, "watch events out of revision order");
        last = rev;
        ++events;
      }
      expect(r == R::array_of({R::bulk_of("watch"), R::bulk_of("closed"), R::bulk_of("full")}),
             "the stalled watcher's last message was " + show(r));
      expect(!w.read(5000) && !w.connected(), "the stalled watcher's connection stayed open");
      std::cout << "check: a watcher that never read was closed (full) after " << writes
                << " writes; it had been sent " << events << " events\n";
    }
    expect_reply(a, {"GET", "check:k"}, R::bulk_of("v"));
    std::cout << "check: ok\n";
    return 0;
  } catch (const Failed& f) {
    std::cout << "check: FAILED: " << f.what << "\n";
    return 1;
  }
}

// `consistent_core ask --port P WORD...`: sends one command and prints its reply (text, number
// or error, arrays one element a line); returns 1 when no reply came within 5 s.
inline int run_ask(unsigned port, const resp::Command& words) {
  cluster::RespClient c;
  if (!c.connect(port)) return 1;
  const auto r = c.call(words, 5000);
  if (!r) return 1;
  auto print = [](const resp::Reply& e) {
    if (e.type == resp::Reply::Type::integer) {
      std::cout << e.integer << "\n";
    } else {
      std::cout << e.text << "\n";
    }
  };
  if (r->type == resp::Reply::Type::array) {
    for (const resp::Reply& e : r->elements)
      print(e);
  } else {
    print(*r);
  }
  return 0;
}

}  // namespace consistent_core

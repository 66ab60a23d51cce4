// consistent_core/commands.hpp — the Redis commands of the coordination server, over
// ConsistentCore
//
// Problem:       A well-framed request can still be wrong (an unknown command, a missing
//                argument, "abc" where a number goes), and Redis clients expect Redis's
//                conventions in the replies (SET answers +OK or a null bulk, DEL an integer,
//                errors start with a code word). A follower cannot serve writes or
//                linearizable reads; a client must learn where the leader is.
// Solution:      parse_request checks a command's words (arity, numbers, options) and builds
//                a typed Request, or throws CommandError with the exact reply text (-ERR ...;
//                the connection stays usable). Commands::execute dispatches a Request to the
//                core and turns its outcome into the encoded reply, which it hands to a
//                callback exactly once (at once, or when the core completes the operation).
//                Errc::not_leader becomes "-MOVED <leader id> 127.0.0.1:<leader client port>"
//                (Redis Cluster's redirect, with the leader's id where Cluster has a slot;
//                the server does not forward), or "-TRYAGAIN no leader" while none is known.
// Guarantees:    Each execute calls `done` exactly once; a write's +OK (or integer) comes
//                only from the core's callback, that is after the entry committed (synced on
//                a majority) and applied here. An outcome that is not known (Errc::cancelled,
//                Errc::timeout on a write) is "-UNCERTAIN ...", never a success or a plain
//                failure. The callbacks hold nothing but `done` and values: a connection that
//                closed is the caller's concern (its `done` must then drop the reply).
// Not provided:  Forwarding to the leader; MULTI/EXEC, SELECT, AUTH; RESP3; glob patterns
//                other than a literal prefix followed by one '*'.
// Thread safety: thread-confined, as the core: the core's thread calls everything; `done`
//                runs on it.
// Errors:        CommandError (parse_request) carries the reply text; Commands never throws
//                for a client's input (it replies -ERR), only what the core throws for its
//                own failures (storage).
// Cost:          One core call per command (DEL: one per key), allocation of the reply.
// Example:
//   const Request r = parse_request({"SET", "k", "v", "NX"});   // a Set with nx = true
//   commands.execute({"GET", "k"}, session, [&](std::string reply) { out += reply; });
#pragma once

#include "resp.hpp"

#include <pods/messaging/state_watch.hpp>
#include <pods/policy/errors.hpp>
#include <pods/replication/consistent_core.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace consistent_core {

// A well-framed command that cannot run: what() is the reply text after '-' ("ERR ...").
class CommandError : public std::runtime_error {
 public:
  explicit CommandError(const std::string& reply) : std::runtime_error(reply) {}
};

// The commands, checked and typed.
namespace request {
struct Ping {
  std::optional<std::string> message;
};
struct Echo {
  std::string message;
};
struct Get {
  std::string key;
};
struct Set {
  std::string key, value;
  bool nx = false, xx = false;
  std::optional<std::chrono::milliseconds> ttl;  // PX / EX: a lease of this ttl
  std::uint64_t lease = 0;                       // LEASE id
};
struct Del {
  std::vector<std::string> keys;
};
struct Incr {
  std::string key;
  std::int64_t delta = 1;
};
struct Cas {
  std::string key;
  std::uint64_t expected = 0;  // the key's mod_revision (0: absent)
  std::string value;
};
struct GetRev {
  std::string key;
};
struct Keys {
  std::string prefix;
};
struct LeaseGrant {
  std::chrono::milliseconds ttl{0};
};
struct LeaseKeepAlive {
  std::uint64_t id = 0;
};
struct LeaseRevoke {
  std::uint64_t id = 0;
};
struct Watch {
  std::string key;  // the key, or the prefix
  bool prefix = false;
  std::uint64_t from = 0;
};
struct Unwatch {};
struct Info {};
struct Empty {};  // COMMAND, COMMAND DOCS, CONFIG GET: an empty array, so clients start
struct ReadMode {
  pods::CoreRead mode = pods::CoreRead::linearizable;
};
struct Quit {};
}  // namespace request

using Request =
    std::variant<request::Ping, request::Echo, request::Get, request::Set, request::Del,
                 request::Incr, request::Cas, request::GetRev, request::Keys, request::LeaseGrant,
                 request::LeaseKeepAlive, request::LeaseRevoke, request::Watch, request::Unwatch,
                 request::Info, request::Empty, request::ReadMode, request::Quit>;

namespace detail {

inline std::string upper(std::string_view s) {
  std::string u(s);
  for (char& c : u)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return u;
}
inline std::string lower(std::string_view s) {
  std::string u(s);
  for (char& c : u)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return u;
}

[[noreturn]] inline void arity(const resp::Command& c) {
  throw CommandError("ERR wrong number of arguments for '" + lower(c[0]) + "' command");
}
[[noreturn]] inline void not_integer() {
  throw CommandError("ERR value is not an integer or out of range");
}

// Parses a decimal int64 as Redis does: an optional '-', digits, no leading zero, no spaces.
inline std::int64_t int64(std::string_view s) {
  if (s.empty() || s.size() > 20 || (s[0] == '0' && s.size() > 1) ||
      (s[0] == '-' && (s.size() == 1 || s[1] == '0'))) {
    not_integer();
  }
  std::int64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) not_integer();
  return v;
}
inline std::uint64_t uint64(std::string_view s) {
  if (s.empty() || s.size() > 20 || (s[0] == '0' && s.size() > 1) || s[0] < '0' || s[0] > '9') {
    not_integer();
  }
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size()) not_integer();
  return v;
}

inline std::string key(std::string_view k) {
  if (k.empty()) throw CommandError("ERR empty keys are not supported");
  return std::string(k);
}

// A KEYS / WATCH pattern: a literal prefix then one '*' (prefix), or a key without '*'.
inline std::pair<std::string, bool> pattern(const std::string& command, std::string_view p) {
  const std::size_t star = p.find('*');
  if (star == std::string_view::npos) return {std::string(p), false};
  if (star + 1 != p.size()) {
    throw CommandError("ERR " + command +
                       " takes a literal prefix followed by one '*' (no other pattern), got '" +
                       std::string(p) + "'");
  }
  return {std::string(p.substr(0, star)), true};
}

}  // namespace detail

// Checks the words of a command and returns it typed. Throws CommandError whose what() is
// the reply ("ERR unknown command 'x'", "ERR wrong number of arguments for 'get' command",
// "ERR value is not an integer or out of range", "ERR syntax error ..."). Allocates.
inline Request parse_request(const resp::Command& c) {
  using namespace request;
  if (c.empty()) throw CommandError("ERR empty command");
  const std::string name = detail::upper(c[0]);
  const std::size_t n = c.size();
  if (name == "PING") {
    if (n > 2) detail::arity(c);
    return Ping{n == 2 ? std::optional<std::string>(c[1]) : std::nullopt};
  }
  if (name == "ECHO") {
    if (n != 2) detail::arity(c);
    return Echo{c[1]};
  }
  if (name == "GET") {
    if (n != 2) detail::arity(c);
    return Get{detail::key(c[1])};
  }
  if (name == "SET") {
    if (n < 3) detail::arity(c);
    Set s;
    s.key = detail::key(c[1]);
    s.value = c[2];
    for (std::size_t i = 3; i < n; ++i) {
      const std::string opt = detail::upper(c[i]);
      if (opt == "NX" && !s.xx) {
        s.nx = true;
      } else if (opt == "XX" && !s.nx) {
        s.xx = true;
      } else if ((opt == "PX" || opt == "EX") && !s.ttl && s.lease == 0 && i + 1 < n) {
        const std::int64_t v = detail::int64(c[++i]);
        if (v <= 0 || (opt == "EX" && v > std::numeric_limits<std::int64_t>::max() / 1000)) {
          throw CommandError("ERR invalid expire time in 'set' command");
        }
        s.ttl = std::chrono::milliseconds(opt == "EX" ? v * 1000 : v);
      } else if (opt == "LEASE" && !s.ttl && s.lease == 0 && i + 1 < n) {
        s.lease = detail::uint64(c[++i]);
        if (s.lease == 0) throw CommandError("ERR invalid lease id 0");
      } else {
        throw CommandError("ERR syntax error");
      }
    }
    return s;
  }
  if (name == "DEL") {
    if (n < 2) detail::arity(c);
    Del d;
    for (std::size_t i = 1; i < n; ++i)
      d.keys.push_back(detail::key(c[i]));
    return d;
  }
  if (name == "INCR") {
    if (n != 2) detail::arity(c);
    return Incr{detail::key(c[1]), 1};
  }
  if (name == "INCRBY") {
    if (n != 3) detail::arity(c);
    return Incr{detail::key(c[1]), detail::int64(c[2])};
  }
  if (name == "CAS") {
    if (n != 4) detail::arity(c);
    return Cas{detail::key(c[1]), detail::uint64(c[2]), c[3]};
  }
  if (name == "GETREV") {
    if (n != 2) detail::arity(c);
    return GetRev{detail::key(c[1])};
  }
  if (name == "KEYS") {
    if (n != 2) detail::arity(c);
    auto [prefix, is_prefix] = detail::pattern("KEYS", c[1]);
    if (!is_prefix) {
      throw CommandError(
          "ERR KEYS takes a literal prefix followed by one '*' (no other "
          "pattern), got '" +
          c[1] + "'");
    }
    return Keys{std::move(prefix)};
  }
  if (name == "LEASE") {
    if (n < 2) detail::arity(c);
    const std::string sub = detail::upper(c[1]);
    if (sub != "GRANT" && sub != "KEEPALIVE" && sub != "REVOKE") {
      throw CommandError("ERR unknown subcommand '" + c[1] +
                         "'. Try LEASE GRANT ttl_ms, LEASE KEEPALIVE id, LEASE REVOKE id.");
    }
    if (n != 3) {
      throw CommandError("ERR wrong number of arguments for 'lease|" + detail::lower(sub) +
                         "' command");
    }
    if (sub == "GRANT") {
      const std::int64_t ttl = detail::int64(c[2]);
      if (ttl <= 0) throw CommandError("ERR invalid ttl in 'lease|grant' command");
      return LeaseGrant{std::chrono::milliseconds(ttl)};
    }
    const std::uint64_t id = detail::uint64(c[2]);
    if (id == 0) throw CommandError("ERR invalid lease id 0");
    if (sub == "KEEPALIVE") return LeaseKeepAlive{id};
    return LeaseRevoke{id};
  }
  if (name == "WATCH" || name == "SUBSCRIBE") {  // SUBSCRIBE: so redis-cli streams the pushes
    if (n != 2 && n != 4) detail::arity(c);
    auto [key, prefix] = detail::pattern(name, c[1]);
    if (!prefix) key = detail::key(key);
    Watch w{std::move(key), prefix, 0};
    if (n == 4) {
      if (detail::upper(c[2]) != "FROM") throw CommandError("ERR syntax error");
      w.from = detail::uint64(c[3]);
    }
    return w;
  }
  if (name == "UNWATCH") {
    if (n != 1) detail::arity(c);
    return Unwatch{};
  }
  if (name == "INFO") {
    if (n > 2) detail::arity(c);
    return Info{};
  }
  if (name == "COMMAND") return Empty{};
  if (name == "CONFIG") {
    if (n < 2) detail::arity(c);
    if (detail::upper(c[1]) != "GET") {
      throw CommandError("ERR unknown subcommand '" + c[1] + "'. Only CONFIG GET is served.");
    }
    if (n < 3) throw CommandError("ERR wrong number of arguments for 'config|get' command");
    return Empty{};
  }
  if (name == "READMODE") {
    if (n != 2) detail::arity(c);
    const std::string m = detail::lower(c[1]);
    if (m == "linearizable") return ReadMode{pods::CoreRead::linearizable};
    if (m == "lease") return ReadMode{pods::CoreRead::lease};
    if (m == "local") return ReadMode{pods::CoreRead::local};
    throw CommandError("ERR READMODE takes linearizable, lease or local, got '" + c[1] + "'");
  }
  if (name == "QUIT") return Quit{};
  std::string e = "ERR unknown command '" + c[0] + "', with args beginning with: ";
  for (std::size_t i = 1; i < n && i <= 3; ++i)
    e += "'" + c[i].substr(0, 64) + "' ";
  throw CommandError(e);
}

// Returns true for the commands that read keys (GET, GETREV, KEYS): a server holds one back
// while the same connection has writes in flight, so a pipelined read sees the writes sent
// before it (Redis clients expect a connection's commands to take effect in order; ReadIndex
// alone would let the read pass a write not yet committed).
inline bool reads_keys(const resp::Command& c) {
  if (c.empty()) return false;
  const std::string name = detail::upper(c[0]);
  return name == "GET" || name == "GETREV" || name == "KEYS";
}

// What a connection carries between its commands.
struct Session {
  pods::CoreRead read_mode = pods::CoreRead::linearizable;
  std::optional<pods::WatchId> watch;  // open while the connection watches
  bool quit = false;                   // QUIT was answered: close after writing
};

// Appends the push message of one watch event: *5 "watch" "put"|"del" key value revision.
inline void watch_event(std::string& out, const pods::WatchEvent& e) {
  resp::push(out, 5);
  resp::bulk(out, "watch");
  resp::bulk(out, e.kind == pods::WatchEventKind::put ? "put" : "del");
  resp::bulk(out, e.key);
  resp::bulk(out, std::string_view(reinterpret_cast<const char*>(e.value.data()), e.value.size()));
  resp::integer(out, static_cast<std::int64_t>(e.revision));
}

// Appends the push message of a closed watch: *3 "watch" "closed" reason (the Errc's name:
// "full", "compacted", "cancelled").
inline void watch_closed(std::string& out, pods::Errc why) {
  resp::push(out, 3);
  resp::bulk(out, "watch");
  resp::bulk(out, "closed");
  resp::bulk(out, pods::to_string(why));
}

// Receives the encoded reply of one command, exactly once.
using ReplyDone = pods::detail::MoveOnlyFunction<void(std::string)>;

// Runs commands against a ConsistentCore (or anything with its members). Thread-confined.
template <class Core>
class Commands {
 public:
  using Done = ReplyDone;
  // Returns the client port of a server (nullopt: not known yet).
  using ClientPort = std::function<std::optional<std::uint16_t>(pods::NodeId)>;

  // Retains `core` and `client_port`: both must outlive this.
  Commands(Core& core, ClientPort client_port)
      : core_(core), client_port_(std::move(client_port)) {}

  // Checks and runs `words` for the connection whose state is `session`; `done` gets the
  // reply (also for bad commands). Only `done` is retained. Allocates.
  void execute(const resp::Command& words, Session& session, Done done) {
    Request r;
    try {
      r = parse_request(words);
    } catch (const CommandError& e) {
      return fail(done, e.what());
    }
    if (session.watch && !std::holds_alternative<request::Ping>(r) &&
        !std::holds_alternative<request::Unwatch>(r) && !std::holds_alternative<request::Quit>(r)) {
      return fail(done, "ERR Can't execute '" + detail::lower(words[0]) +
                            "': only PING, UNWATCH and QUIT are allowed while watching");
    }
    std::visit([&](auto& req) { run(req, session, done); }, r);
  }

  // Returns the reply for a command this server cannot serve: -MOVED to the leader, or
  // -TRYAGAIN while no leader (or its client port) is known, or when this server leads but
  // refused (a lease read outside its lease).
  std::string redirect() const {
    std::string out;
    const pods::NodeId leader = core_.leader();
    if (leader != 0 && leader == core_.log().options().self) {
      // The leader itself refused: a lease read outside its lease (or a transfer under way).
      resp::error(out, "TRYAGAIN leader lease not held: retry, or READMODE linearizable");
      return out;
    }
    const auto port = leader != 0 ? client_port_(leader) : std::nullopt;
    if (!port) {
      resp::error(out, "TRYAGAIN no leader");
    } else {
      resp::error(out, "MOVED " + std::to_string(leader) + " 127.0.0.1:" + std::to_string(*port));
    }
    return out;
  }

  // Returns the INFO text: one "name:value" line each, CRLF ended.
  std::string info() const {
    const pods::NodeId leader = core_.leader();
    const auto port = leader != 0 ? client_port_(leader) : std::nullopt;
    std::string s = "# Replication\r\n";
    auto line = [&](const char* name, const std::string& v) {
      s += std::string(name) + ':' + v + "\r\n";
    };
    line("role", core_.is_leader() ? "leader" : "follower");
    line("id", std::to_string(core_.log().options().self));
    line("term", std::to_string(core_.term()));
    line("leader", std::to_string(leader));
    line("leader_port", port ? std::to_string(*port) : "0");
    line("commit_index", std::to_string(core_.commit_index()));
    line("applied_index", std::to_string(core_.applied_index()));
    line("snapshot_index", std::to_string(core_.log().snapshot_index()));
    line("snapshots_taken", std::to_string(core_.log().snapshots_taken()));
    line("snapshots_installed", std::to_string(core_.log().snapshots_installed()));
    line("revision", std::to_string(core_.revision()));
    line("leases", std::to_string(core_.lease_count()));
    line("watches", std::to_string(core_.watches().open_watches()));
    return s;
  }

 private:
  template <class V>
  using Outcome = pods::Outcome<V>;

  static void fail(Done& done, std::string_view text) {
    std::string out;
    resp::error(out, text);
    done(std::move(out));
  }

  static std::vector<std::byte> bytes(std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    return {p, p + s.size()};
  }
  static std::string text(const std::vector<std::byte>& b) {
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  static std::string integer(std::int64_t v) {
    std::string out;
    resp::integer(out, v);
    return out;
  }

  // The reply for an Errc from the core. `write`: the outcome of cancelled / timeout is unknown.
  std::string error_reply(pods::Errc e, bool write) const {
    std::string out;
    switch (e) {
      case pods::Errc::not_leader:
        return redirect();
      case pods::Errc::full:
        resp::error(out, "TRYAGAIN busy: too many pending requests");
        break;
      case pods::Errc::cancelled:
      case pods::Errc::timeout:
        if (write) {
          resp::error(out, "UNCERTAIN " + std::string(pods::to_string(e)) +
                               ": the write may or may not have applied");
        } else {
          resp::error(out, "TRYAGAIN " + std::string(pods::to_string(e)));
        }
        break;
      case pods::Errc::session_expired:
        resp::error(out, "ERR no such lease (unknown, revoked or expired)");
        break;
      default:
        resp::error(out, "ERR " + std::string(pods::to_string(e)));
    }
    return out;
  }

  // Wraps `done` into the core's callback for a V, `reply` making the success's bytes.
  template <class V, class F>
  auto answer(Done& done, bool write, F reply) {
    return [this, done = std::move(done), write, reply = std::move(reply)](Outcome<V> o) mutable {
      if (!o) return done(error_reply(o.error(), write));
      done(reply(std::move(*o)));
    };
  }

  void run(request::Ping& r, Session&, Done& done) {
    std::string out;
    if (r.message) {
      resp::bulk(out, *r.message);
    } else {
      resp::simple(out, "PONG");
    }
    done(std::move(out));
  }
  void run(request::Echo& r, Session&, Done& done) {
    std::string out;
    resp::bulk(out, r.message);
    done(std::move(out));
  }
  void run(request::Get& r, Session& s, Done& done) {
    core_.get(std::move(r.key), s.read_mode,
              answer<std::optional<pods::CoreKeyValue>>(done, false, [](auto kv) {
                std::string out;
                if (kv) {
                  resp::bulk(out, text(kv->value));
                } else {
                  resp::null(out);
                }
                return out;
              }));
  }
  void run(request::GetRev& r, Session& s, Done& done) {
    core_.get(std::move(r.key), s.read_mode,
              answer<std::optional<pods::CoreKeyValue>>(done, false, [](auto kv) {
                std::string out;
                if (!kv) {
                  resp::null_array(out);
                  return out;
                }
                resp::array(out, 4);
                resp::bulk(out, text(kv->value));
                resp::integer(out, static_cast<std::int64_t>(kv->mod_revision));
                resp::integer(out, static_cast<std::int64_t>(kv->version));
                resp::integer(out, static_cast<std::int64_t>(kv->lease));
                return out;
              }));
  }
  void run(request::Keys& r, Session& s, Done& done) {
    core_.range(std::move(r.prefix), max_keys, s.read_mode,
                answer<std::vector<pods::CoreKeyValue>>(done, false, [](auto kvs) {
                  std::string out;
                  resp::array(out, kvs.size());
                  for (const auto& kv : kvs)
                    resp::bulk(out, kv.key);
                  return out;
                }));
  }

  void run(request::Set& r, Session&, Done& done) {
    const pods::CorePut condition{
        .if_mod_revision = std::nullopt, .if_absent = r.nx, .if_present = r.xx, .lease = r.lease};
    const bool lease_only = r.lease != 0 && !r.nx && !r.xx;
    auto on_put = [lease_only](pods::CoreWrite w) {
      std::string out;
      if (w.ok) {
        resp::simple(out, "OK");
      } else if (lease_only) {
        resp::error(out, "ERR no such lease");
      } else {
        resp::null(out);
      }
      return out;
    };
    if (!r.ttl) {
      core_.put(std::move(r.key), bytes(r.value), condition,
                answer<pods::CoreWrite>(done, true, std::move(on_put)));
      return;
    }
    // PX / EX: a lease of that ttl first, then the put attached to it.
    const auto& o = core_.options();
    if (*r.ttl < o.min_ttl || *r.ttl > o.max_ttl) {
      return fail(done, "ERR expire time must be within [" + std::to_string(o.min_ttl.count()) +
                            ", " + std::to_string(o.max_ttl.count()) + "] ms");
    }
    core_.grant(*r.ttl,
                [this, done = std::move(done), key = std::move(r.key), value = bytes(r.value),
                 condition, on_put](Outcome<pods::CoreLease> l) mutable {
                  if (!l) return done(error_reply(l.error(), true));
                  pods::CorePut c = condition;
                  c.lease = l->id;
                  core_.put(std::move(key), std::move(value), c,
                            answer<pods::CoreWrite>(done, true, [on_put](pods::CoreWrite w) {
                              // The lease was just granted: a failure here is the NX / XX
                              // condition's.
                              if (!w.ok) {
                                std::string out;
                                resp::null(out);
                                return out;
                              }
                              return on_put(w);
                            }));
                });
  }
  void run(request::Cas& r, Session&, Done& done) {
    core_.put(std::move(r.key), bytes(r.value), pods::CorePut{.if_mod_revision = r.expected},
              answer<pods::CoreWrite>(done, true,
                                      [](pods::CoreWrite w) { return integer(w.ok ? 1 : 0); }));
  }
  void run(request::Del& r, Session&, Done& done) {
    struct Pending {
      std::size_t left = 0;
      std::int64_t removed = 0;
      std::optional<std::string> error;
      Done done;
    };
    auto p = std::make_shared<Pending>(Pending{r.keys.size(), 0, std::nullopt, std::move(done)});
    for (std::string& k : r.keys) {
      core_.erase(std::move(k), [this, p](Outcome<pods::CoreWrite> w) {
        if (!w) {
          if (!p->error) p->error = error_reply(w.error(), true);
        } else if (w->ok) {
          ++p->removed;
        }
        if (--p->left == 0) p->done(p->error ? *p->error : integer(p->removed));
      });
    }
  }
  void run(request::Incr& r, Session&, Done& done) {
    core_.increment(std::move(r.key), r.delta,
                    answer<pods::CoreWrite>(done, true, [](pods::CoreWrite w) {
                      if (w.ok) return integer(w.number);
                      std::string out;
                      resp::error(out, "ERR value is not an integer or out of range");
                      return out;
                    }));
  }
  void run(request::LeaseGrant& r, Session&, Done& done) {
    const auto& o = core_.options();
    if (r.ttl < o.min_ttl || r.ttl > o.max_ttl) {
      return fail(done, "ERR ttl must be within [" + std::to_string(o.min_ttl.count()) + ", " +
                            std::to_string(o.max_ttl.count()) + "] ms");
    }
    core_.grant(r.ttl, answer<pods::CoreLease>(done, true, [](pods::CoreLease l) {
                  return integer(static_cast<std::int64_t>(l.id));
                }));
  }
  void run(request::LeaseKeepAlive& r, Session&, Done& done) {
    core_.keep_alive(r.id, answer<pods::CoreLease>(done, false, [](pods::CoreLease l) {
                       return integer(static_cast<std::int64_t>(l.ttl.count()));
                     }));
  }
  void run(request::LeaseRevoke& r, Session&, Done& done) {
    core_.revoke(r.id, answer<pods::CoreWrite>(
                           done, true, [](pods::CoreWrite w) { return integer(w.ok ? 1 : 0); }));
  }
  void run(request::Watch& r, Session& s, Done& done) {
    if (s.watch) return fail(done, "ERR this connection already watches: UNWATCH first");
    auto id = core_.watches().watch(
        {.key = std::move(r.key), .prefix = r.prefix, .from_revision = r.from});
    if (!id) {
      if (id.error() == pods::Errc::compacted) {
        return fail(done, "ERR compacted: revision " + std::to_string(r.from) +
                              " is at or below the compaction point " +
                              std::to_string(core_.watches().compacted_revision()));
      }
      return fail(done, "ERR " + std::string(pods::to_string(id.error())) + ": too many watches");
    }
    s.watch = *id;
    std::string out;
    resp::simple(out, "OK");
    done(std::move(out));
  }
  void run(request::Unwatch&, Session& s, Done& done) {
    if (s.watch) {
      const pods::WatchId id = *s.watch;
      s.watch.reset();
      core_.watches().cancel(id);
    }
    std::string out;
    resp::simple(out, "OK");
    done(std::move(out));
  }
  void run(request::Info&, Session&, Done& done) {
    std::string out;
    resp::bulk(out, info());
    done(std::move(out));
  }
  void run(request::Empty&, Session&, Done& done) {
    std::string out;
    resp::array(out, 0);
    done(std::move(out));
  }
  void run(request::ReadMode& r, Session& s, Done& done) {
    if (r.mode == pods::CoreRead::lease && !core_.options().log.check_quorum) {
      return fail(done, "ERR READMODE lease needs check_quorum on");
    }
    s.read_mode = r.mode;
    std::string out;
    resp::simple(out, "OK");
    done(std::move(out));
  }
  void run(request::Quit&, Session& s, Done& done) {
    s.quit = true;
    std::string out;
    resp::simple(out, "OK");
    done(std::move(out));
  }

  static constexpr std::size_t max_keys = 65536;  // KEYS answers at most this many

  Core& core_;
  ClientPort client_port_;
};

}  // namespace consistent_core

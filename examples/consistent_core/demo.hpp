// `consistent_core demo`: the main demonstration. Three node processes (cluster.hpp), clients
// of its own driving them over RESP while it kills, restarts and pauses nodes, then checks
// what the clients saw:
//
//   * linearizability: C clients send GET, GETREV, SET, SET NX, CAS, DEL and INCR on five
//     keys under demo/ to the leader (following -MOVED, waiting out -TRYAGAIN), recording a
//     pods::sim::History on a steady clock; along the way the leader is SIGKILLed and
//     restarted on its data directory (new ports: the others are told), later a follower,
//     and one node is paused (SIGSTOP, SIGCONT); at the end every key is read once more and
//     the history is checked with check_linearizable against CoreModel (demo_model.hpp);
//   * leases: a lease kept alive through every fault keeps its keys; a lease refreshed for a
//     while and then left alone loses its keys after its ttl plus a bound, and not before its
//     ttl; a key written with PX goes the same way; a revoked lease's keys are gone at once
//     (all checked with linearizable GETs);
//   * watches: a WATCH on demo/* on a node that is never killed or paused, and a second one
//     that disconnects half way and resumes with WATCH ... FROM <next revision>; each must see
//     events in strictly increasing revision order (so none twice), every acknowledged write
//     with the value written, no value nobody wrote, counters stepping by one, and the two
//     must see the same events.
//
// A request with no answer within the operation timeout, or whose connection broke after it
// was sent, is unknown (it may or may not have taken effect; the client continues under a
// new client id). A write refused with -MOVED or -TRYAGAIN did not take effect: it is sent
// to the hinted node until the timeout, and left out of the history if never accepted. A read
// has no effect, so one that got no answer is simply left out.
//
//   consistent_core demo [--seconds S] [--seed N] [--clients C] [--op-timeout-ms T]
//                        [--snapshot-every ENTRIES] [--stale-reads] [--keep]
// --snapshot-every: the nodes snapshot the core every ENTRIES applied entries (default 2000,
// so that restarted nodes recover from a snapshot and the summary counts them).
// --stale-reads: clients send GETs to a random node with READMODE local (its own state,
// bypassing ReadIndex); the checker must then find the history NOT linearizable.
// Exit status 0 when every check passed, 1 otherwise, 2 for bad flags.
#pragma once

#include "cluster.hpp"
#include "demo_model.hpp"

#include <pods/policy/random.hpp>
#include <pods/sim/linearizability.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

namespace consistent_core::demo {

using cluster::find_leader;
using cluster::Nodes;
using cluster::reply_number;
using cluster::RespClient;
using cluster::SteadyClock;

struct DemoOptions {
  double seconds = 20;                  // how long clients run while faults are injected
  std::uint64_t seed = 1;               // the fault schedule's and the clients' seed
  unsigned clients = 4;                 // concurrent closed-loop clients
  int op_timeout_ms = 3000;             // an operation without an answer by then is unknown
  double check_seconds = 60;            // the linearizability checker's time budget
  bool stale_reads = false;             // GETs answered from a random node's own state (broken)
  bool keep = false;                    // keep the data directories
  std::uint64_t snapshot_every = 2000;  // the nodes' --snapshot-every: restarts recover from one
};

using Ms = std::chrono::milliseconds;

inline double seconds_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// What happened to a command sent with redirects followed.
enum class Fate : std::uint8_t {
  reply,    // a reply other than -MOVED / -TRYAGAIN came back
  refused,  // never accepted (refused, or never sent) before the timeout: no effect
  unknown,  // sent, and no reply came: it may or may not have taken effect
};
struct Attempt {
  Fate fate = Fate::refused;
  resp::Reply reply;
};

struct AckedWrite {
  std::string key;
  bool erase = false;
  std::string value;
};

struct LatencyLog {
  std::mutex mu;
  std::map<std::string, std::vector<double>> us;  // per command, answered operations
  void add(const std::string& command, double v) {
    std::lock_guard lock(mu);
    us[command].push_back(v);
  }
};

// Everything the client threads share.
struct Shared {
  Nodes& nodes;
  const DemoOptions& options;
  SteadyClock::time_point t0;
  CoreHistory history;
  std::atomic<unsigned> leader{1};
  std::atomic<std::uint64_t> next_process{1}, leader_changes{0};
  std::atomic<std::uint64_t> ok{0}, unknown{0}, refused{0}, errors{0};
  LatencyLog latency;
  std::mutex mu;                                          // guards what follows
  std::vector<AckedWrite> acked;                          // acknowledged writes under demo/
  std::set<std::pair<std::string, std::string>> written;  // (key, value) sent by SET/NX/CAS
  std::vector<std::tuple<std::string, std::string, std::uint64_t>> revisions;  // from GETREV
  std::map<std::string, std::uint64_t> error_texts;  // -ERR replies to writes, by text
  std::vector<std::string> failures;                 // replies the demo cannot make sense of

  Shared(Nodes& n, const DemoOptions& o)
      : nodes(n), options(o), t0(SteadyClock::now()), history([t0 = t0] {
          return std::chrono::duration_cast<std::chrono::nanoseconds>(SteadyClock::now() - t0)
              .count();
        }) {}
  double now_s() const { return seconds_between(t0, SteadyClock::now()); }
  void fail(std::string what) {
    std::lock_guard lock(mu);
    failures.push_back(std::move(what));
  }
};

inline unsigned next_node(unsigned id) {
  return id % Nodes::count + 1;
}

// A connection that follows the leader: -MOVED sends the command to the node named,
// -TRYAGAIN and a refused connection to the next node after a short wait. local: a
// connection in READMODE local (the broken stale-reads mode).
class Connection {
 public:
  Connection(Shared& s, bool local = false) : s_(s), local_(local) {}

  // Sends `command` until it gets a reply or `timeout_ms` passes. first: the node to try
  // first (0: the one believed to lead). retry: a command without effect (a read), sent
  // again after a timeout rather than reported unknown.
  Attempt run(const resp::Command& command, int timeout_ms, bool retry, unsigned first = 0) {
    const auto deadline = SteadyClock::now() + Ms(timeout_ms);
    unsigned target = first != 0 ? first : s_.leader.load();
    for (;;) {
      const auto left = std::chrono::duration_cast<Ms>(deadline - SteadyClock::now());
      if (left.count() <= 0) return {};
      if (!conn_.connected() || at_ != target) {
        at_ = target;
        const unsigned port = s_.nodes.client_port(at_);
        if (port == 0 || !conn_.connect(port) ||
            (local_ && !conn_.call({"READMODE", "local"}, static_cast<int>(left.count())))) {
          conn_.close();
          target = next_node(at_);
          std::this_thread::sleep_for(Ms(20));
          continue;
        }
      }
      if (!conn_.send(command)) {  // not sent: no effect
        target = next_node(at_);
        continue;
      }
      auto reply = conn_.read(static_cast<int>(left.count()));
      if (!reply) {
        conn_.close();
        if (!retry) return {Fate::unknown, {}};
        target = next_node(at_);
        continue;
      }
      if (reply->is_error() && reply->text.rfind("MOVED ", 0) == 0) {
        const unsigned hint =
            static_cast<unsigned>(std::strtoul(reply->text.c_str() + 6, nullptr, 10));
        if (hint >= 1 && hint <= Nodes::count && hint != at_) {
          unsigned believed = s_.leader.load();
          if (believed != hint && s_.leader.compare_exchange_strong(believed, hint))
            ++s_.leader_changes;
          target = hint;
        } else {
          target = next_node(at_);
          std::this_thread::sleep_for(Ms(20));
        }
        continue;
      }
      if (reply->is_error() && reply->text.rfind("TRYAGAIN", 0) == 0) {
        target = next_node(at_);
        std::this_thread::sleep_for(Ms(30));
        continue;
      }
      return {Fate::reply, std::move(*reply)};
    }
  }

 private:
  Shared& s_;
  bool local_;
  RespClient conn_;
  unsigned at_ = 0;
};

// The keys the clients write: registers (GET, GETREV, SET, SET NX, CAS, DEL) and counters
// (INCR, GET, DEL).
inline const std::vector<std::string>& register_keys() {
  static const std::vector<std::string> k{"demo/r1", "demo/r2", "demo/r3"};
  return k;
}
inline const std::vector<std::string>& counter_keys() {
  static const std::vector<std::string> k{"demo/n1", "demo/n2"};
  return k;
}
inline bool is_counter(const std::string& key) {
  return key.rfind("demo/n", 0) == 0;
}

// One closed-loop client. Records every operation in the history.
class Client {
 public:
  Client(Shared& s, unsigned number)
      : s_(s),
        number_(number),
        rng_(s.options.seed * 1000 + number),
        leader_(s),
        reads_(s, true),
        process_(s.next_process++) {}

  // Runs one randomly chosen operation (two for a CAS: its GETREV first).
  void step() {
    if (rng_.chance(0.7)) {
      const std::string& key = register_keys()[rng_.below(register_keys().size())];
      const auto r = rng_.below(100);
      if (r < 30) {
        get(key);
      } else if (r < 45) {
        write(CoreInput{CoreOp::set, key, fresh_value(), std::nullopt});
      } else if (r < 55) {
        write(CoreInput{CoreOp::set_nx, key, fresh_value(), std::nullopt});
      } else if (r < 80) {
        if (auto seen = getrev(key)) write(CoreInput{CoreOp::cas, key, fresh_value(), seen->first});
      } else if (r < 90) {
        write(CoreInput{CoreOp::del, key, {}, std::nullopt});
      } else {
        getrev(key);
      }
    } else {
      const std::string& key = counter_keys()[rng_.below(counter_keys().size())];
      const auto r = rng_.below(100);
      if (r < 55) {
        write(CoreInput{CoreOp::incr, key, {}, std::nullopt});
      } else if (r < 90) {
        get(key);
      } else {
        write(CoreInput{CoreOp::del, key, {}, std::nullopt});
      }
    }
  }

  // Reads `key` with a GET until it gets an answer or `timeout_ms` passes; true when answered.
  bool get(const std::string& key, int timeout_ms = 0) {
    return read(key, false, timeout_ms).has_value();
  }
  // Reads `key` with GETREV: the (value, mod_revision) seen, (nullopt, 0) when absent;
  // nullopt without an answer.
  std::optional<std::pair<std::optional<std::string>, std::uint64_t>> getrev(
      const std::string& key) {
    return read(key, true, 0);
  }

  // Sends a write (set, set_nx, cas, del, incr) and records it; true when it was answered.
  bool write(CoreInput in) {
    resp::Command command;
    const char* name = "";
    switch (in.op) {
      case CoreOp::set:
        command = {"SET", in.key, in.value};
        name = "SET";
        break;
      case CoreOp::set_nx:
        command = {"SET", in.key, in.value, "NX"};
        name = "SET NX";
        break;
      case CoreOp::cas:
        command = {"CAS", in.key, std::to_string(expected_revision_), in.value};
        name = "CAS";
        break;
      case CoreOp::del:
        command = {"DEL", in.key};
        name = "DEL";
        break;
      case CoreOp::incr:
        command = {"INCR", in.key};
        name = "INCR";
        break;
      case CoreOp::get:
        return false;
    }
    if (in.op == CoreOp::set || in.op == CoreOp::set_nx || in.op == CoreOp::cas) {
      std::lock_guard lock(s_.mu);
      s_.written.emplace(in.key, in.value);
    }
    const std::string key = in.key, value = in.value;
    const CoreOp op = in.op;
    const auto id = s_.history.invoke(process_, std::move(in));
    const auto t = SteadyClock::now();
    Attempt a = leader_.run(command, s_.options.op_timeout_ms, false);
    if (a.fate == Fate::refused) {
      s_.history.fail(id);
      ++s_.refused;
      return false;
    }
    if (a.fate == Fate::unknown || a.reply.is_error()) {
      if (a.fate == Fate::reply) {
        ++s_.errors;
        std::lock_guard lock(s_.mu);
        ++s_.error_texts[a.reply.text];
      }
      unknown(id);
      return false;
    }
    CoreOutput out;
    const resp::Reply& r = a.reply;
    bool understood = true;
    std::optional<AckedWrite> acked;
    switch (op) {
      case CoreOp::set:
        understood = r.type == resp::Reply::Type::simple && r.text == "OK";
        acked = AckedWrite{key, false, value};
        break;
      case CoreOp::set_nx:
        understood = (r.type == resp::Reply::Type::simple && r.text == "OK") || r.is_null();
        out.ok = !r.is_null();
        if (out.ok) acked = AckedWrite{key, false, value};
        break;
      case CoreOp::cas:
        understood = r.type == resp::Reply::Type::integer && (r.integer == 0 || r.integer == 1);
        out.ok = r.integer == 1;
        if (out.ok) acked = AckedWrite{key, false, value};
        break;
      case CoreOp::del:
        understood = r.type == resp::Reply::Type::integer && (r.integer == 0 || r.integer == 1);
        out.number = r.integer;
        if (out.number == 1) acked = AckedWrite{key, true, {}};
        break;
      case CoreOp::incr:
        understood = r.type == resp::Reply::Type::integer;
        out.number = r.integer;
        acked = AckedWrite{key, false, std::to_string(r.integer)};
        break;
      case CoreOp::get:
        break;
    }
    if (!understood) {
      s_.fail(std::string("unexpected reply to ") + name + ": " + describe(r));
      unknown(id);
      return false;
    }
    s_.history.ok(id, out);
    ++s_.ok;
    s_.latency.add(name, std::chrono::duration<double, std::micro>(SteadyClock::now() - t).count());
    if (acked) {
      std::lock_guard lock(s_.mu);
      s_.acked.push_back(std::move(*acked));
    }
    return true;
  }

  // Sends `command` to the leader with redirects followed (for the lease checks).
  Attempt command(const resp::Command& c, int timeout_ms, bool retry) {
    return leader_.run(c, timeout_ms, retry);
  }

  static std::string describe(const resp::Reply& r) {
    std::string out;
    resp::encode_reply(out, r);
    if (out.size() > 80) out = out.substr(0, 80) + "...";
    for (char& c : out)
      if (c == '\r' || c == '\n') c = ' ';
    return out;
  }

 private:
  std::string fresh_value() {
    return "c" + std::to_string(number_) + "." + std::to_string(++sequence_);
  }
  void unknown(CoreHistory::Id id) {
    s_.history.unknown(id);
    ++s_.unknown;
    process_ = s_.next_process++;  // later operations may overlap this one
  }

  std::optional<std::pair<std::optional<std::string>, std::uint64_t>> read(const std::string& key,
                                                                           bool with_revision,
                                                                           int timeout_ms) {
    const auto id = s_.history.invoke(process_, CoreInput{CoreOp::get, key, {}, std::nullopt});
    const auto t = SteadyClock::now();
    const resp::Command c{with_revision ? "GETREV" : "GET", key};
    const int timeout = timeout_ms > 0 ? timeout_ms : s_.options.op_timeout_ms;
    Attempt a = s_.options.stale_reads
                    ? reads_.run(c, timeout, true, static_cast<unsigned>(rng_.below(3) + 1))
                    : leader_.run(c, timeout, true);
    if (a.fate != Fate::reply || a.reply.is_error()) {  // a read without an answer: no effect
      s_.history.fail(id);
      ++s_.refused;
      return std::nullopt;
    }
    const resp::Reply& r = a.reply;
    std::optional<std::string> value;
    std::uint64_t revision = 0;
    bool understood = r.is_null();
    if (!with_revision && r.type == resp::Reply::Type::bulk) {
      value = r.text;
      understood = true;
    }
    if (with_revision && r.type == resp::Reply::Type::array && r.elements.size() >= 2 &&
        r.elements[0].type == resp::Reply::Type::bulk) {
      const auto rev = reply_number(r.elements[1]);
      understood = rev.has_value() && *rev > 0;
      value = r.elements[0].text;
      revision = rev.value_or(0);
    }
    if (!understood) {
      s_.fail(std::string("unexpected reply to ") + c[0] + ": " + describe(r));
      s_.history.fail(id);
      return std::nullopt;
    }
    s_.history.ok(id, CoreOutput{value, true, 0});
    ++s_.ok;
    s_.latency.add(c[0], std::chrono::duration<double, std::micro>(SteadyClock::now() - t).count());
    if (with_revision && value) {
      std::lock_guard lock(s_.mu);
      s_.revisions.emplace_back(key, *value, revision);
    }
    expected_revision_ = revision;
    return std::pair{value, revision};
  }

  Shared& s_;
  unsigned number_;
  pods::Random rng_;
  Connection leader_, reads_;
  std::uint64_t process_;
  std::uint64_t sequence_ = 0;
  std::uint64_t expected_revision_ = 0;  // the last GETREV's revision, for the CAS after it
};

// One watch event as a watcher received it.
struct SeenEvent {
  std::uint64_t revision = 0;
  bool erase = false;
  std::string key, value;
  friend bool operator==(const SeenEvent&, const SeenEvent&) = default;
};

struct WatchLog {
  std::vector<SeenEvent> events;
  std::string failure;
  unsigned connections = 0;
  std::uint64_t resumed_from = 0;     // the FROM of the deliberate reconnect (0: none)
  bool saw_end = false;               // saw the end marker's event
  std::atomic<bool> finished{false};  // the watcher returned (read the rest only then)
};

inline const char* end_key = "demo/end";

// Watches demo/* on node `node` from revision 1 until it has seen the end marker and `stop`
// is set, or `give_up` is set. Reconnects after a broken connection with FROM the revision
// after the last event; `resume_at` (when set) is a deliberate disconnect and resume.
inline void watch(Shared& s, unsigned node, const std::atomic<bool>& stop,
                  const std::atomic<bool>& give_up,
                  std::optional<SteadyClock::time_point> resume_at, WatchLog& log) {
  RespClient c;
  std::uint64_t next = 1;
  while (!give_up && !(stop && log.saw_end) && log.failure.empty()) {
    if (!c.connected()) {
      if (!c.connect(s.nodes.client_port(node))) {
        std::this_thread::sleep_for(Ms(50));
        continue;
      }
      ++log.connections;
      if (!c.send({"WATCH", "demo/*", "FROM", std::to_string(next)})) continue;
    }
    if (resume_at && SteadyClock::now() >= *resume_at) {
      c.close();
      log.resumed_from = next;
      resume_at.reset();
      continue;
    }
    auto r = c.read(100);
    if (!r) continue;  // a quiet moment, or a broken connection (reconnects above)
    if (r->is_error()) {
      log.failure = "WATCH on node " + std::to_string(node) + " refused: " + r->text;
      break;
    }
    if (r->type != resp::Reply::Type::array || r->elements.size() < 3 ||
        r->elements[0].text != "watch")
      continue;  // the WATCH's own acknowledgement
    const std::string& kind = r->elements[1].text;
    if (kind == "closed") {
      log.failure =
          "the watch on node " + std::to_string(node) + " was closed: " + r->elements[2].text;
      break;
    }
    const auto revision = r->elements.size() == 5 ? reply_number(r->elements[4]) : std::nullopt;
    if ((kind != "put" && kind != "del") || !revision) {
      log.failure = "an unexpected watch message: " + Client::describe(*r);
      break;
    }
    log.events.push_back(
        SeenEvent{*revision, kind == "del", r->elements[2].text, r->elements[3].text});
    next = *revision + 1;
    if (r->elements[2].text == end_key) log.saw_end = true;
  }
  log.finished = true;
}

// Checks one watcher's events against the acknowledged writes; returns what is wrong ("" when
// nothing). `name` names the watcher in the message.
inline std::string check_watch(const WatchLog& log, const std::string& name,
                               const std::vector<AckedWrite>& acked,
                               const std::set<std::pair<std::string, std::string>>& written) {
  if (!log.failure.empty()) return log.failure;
  if (!log.saw_end) return name + " did not see the last write (the end marker) in time";
  for (std::size_t i = 1; i < log.events.size(); ++i) {
    if (log.events[i].revision <= log.events[i - 1].revision) {
      return name + ": event revision " + std::to_string(log.events[i].revision) + " after " +
             std::to_string(log.events[i - 1].revision) + " (not strictly increasing)";
    }
  }
  std::map<std::tuple<std::string, bool, std::string>, std::int64_t> balance;
  for (const SeenEvent& e : log.events)
    ++balance[{e.key, e.erase, e.value}];
  for (const AckedWrite& w : acked) {
    if (--balance[{w.key, w.erase, w.value}] < 0) {
      return name + " missed an acknowledged " +
             (w.erase ? "DEL of " + w.key : "write of " + w.key + " = " + w.value);
    }
  }
  std::map<std::string, std::int64_t> counters;
  for (const SeenEvent& e : log.events) {
    if (e.erase) {
      counters.erase(e.key);
    } else if (is_counter(e.key)) {
      if (e.value != std::to_string(counters[e.key] + 1)) {
        return name + ": counter " + e.key + " went from " + std::to_string(counters[e.key]) +
               " to " + e.value + " at revision " + std::to_string(e.revision);
      }
      ++counters[e.key];
    } else if (e.key != end_key && !written.count({e.key, e.value})) {
      return name + ": " + e.key + " = " + e.value + " at revision " + std::to_string(e.revision) +
             ", a value no client wrote";
    }
  }
  return "";
}

// Returns the p-quantile of `v` (sorted here).
inline double quantile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// Runs the demonstration; see the top of this file. Prints what happens, a summary and
// "verdict: ..." (with "FAILED" when a check failed). Returns 0 when every check passed.
inline int run_demo(const char* self_exe, const DemoOptions& o) {
  char tmpl[] = "/tmp/consistent_core_demo.XXXXXX";
  if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
  const std::filesystem::path root = tmpl;
  std::printf(
      "consistent_core demo: 3 node processes on 127.0.0.1, %u clients, %g s of faults, seed "
      "%llu%s\n",
      o.clients, o.seconds, static_cast<unsigned long long>(o.seed),
      o.stale_reads ? ", STALE READS (GETs answered from a random node's own state)" : "");
  std::printf("data directories: %s/{1,2,3}\n\n", tmpl);
  std::fflush(stdout);

  std::vector<std::string> failures;
  std::vector<std::thread> threads;  // the watchers, the keeper, the clients
  std::thread keeper_thread;
  std::vector<std::thread> client_threads;
  std::atomic<bool> done{false}, stop_watch{false}, give_up{false}, stop_keeper{false};
  auto join = [&] {
    done = stop_watch = give_up = stop_keeper = true;
    for (auto* group : {&client_threads, &threads})
      for (std::thread& t : *group)
        if (t.joinable()) t.join();
    if (keeper_thread.joinable()) keeper_thread.join();
  };
  auto remove_data = [&] {
    std::error_code ec;
    if (!o.keep) std::filesystem::remove_all(root, ec);
  };

  std::unique_ptr<Nodes> nodes_ptr;
  try {
    nodes_ptr = std::make_unique<Nodes>(
        self_exe, root,
        std::vector<std::string>{"--snapshot-every", std::to_string(o.snapshot_every)});
  } catch (const std::exception& e) {
    std::printf("verdict: FAILED: %s\n", e.what());
    remove_data();
    return 1;
  }
  Nodes& nodes = *nodes_ptr;
  Shared s(nodes, o);
  auto log_line = [&](const std::string& text) {
    std::printf("[%5.1f s] %s\n", s.now_s(), text.c_str());
    std::fflush(stdout);
  };

  std::uint64_t term = 0;
  const unsigned first_leader = find_leader(nodes, std::chrono::seconds(30), &term);
  if (first_leader == 0) {
    std::printf("verdict: FAILED: no leader within 30 s\n");
    nodes.kill_all();
    remove_data();
    return 1;
  }
  s.leader = first_leader;
  // The watched node is never killed or paused.
  const unsigned watched = next_node(first_leader);
  log_line("node " + std::to_string(first_leader) + " leads (term " + std::to_string(term) +
           "); watches on node " + std::to_string(watched));

  // Watchers first, from revision 1: they see every change.
  WatchLog watch_log, resumed_log;
  const auto clients_start = SteadyClock::now();
  const auto clients_end = clients_start + std::chrono::duration_cast<SteadyClock::duration>(
                                               std::chrono::duration<double>(o.seconds));
  threads.emplace_back([&] { watch(s, watched, stop_watch, give_up, std::nullopt, watch_log); });
  threads.emplace_back([&] {
    watch(s, watched, stop_watch, give_up, clients_start + (clients_end - clients_start) / 2,
          resumed_log);
  });

  // The kept lease: granted now, refreshed every 500 ms through every fault.
  const std::int64_t kept_ttl_ms = 5000;
  std::uint64_t kept_lease = 0, keepalives = 0;
  std::string kept_failure;
  double kept_longest_gap = 0;
  Client lease_client(s, 0);
  for (int tries = 0; tries < 5 && kept_lease == 0; ++tries) {
    Attempt a = lease_client.command({"LEASE", "GRANT", std::to_string(kept_ttl_ms)}, 3000, false);
    if (a.fate == Fate::reply && a.reply.type == resp::Reply::Type::integer && a.reply.integer > 0)
      kept_lease = static_cast<std::uint64_t>(a.reply.integer);
    else if (a.fate == Fate::reply)
      kept_failure = "LEASE GRANT: " + Client::describe(a.reply);
  }
  const std::vector<std::string> kept_keys{"lease/kept/1", "lease/kept/2"};
  if (kept_lease != 0) {
    kept_failure.clear();
    for (const std::string& k : kept_keys) {
      Attempt a = lease_client.command({"SET", k, "kept", "LEASE", std::to_string(kept_lease)},
                                       3000, false);
      if (a.fate != Fate::reply || a.reply.type != resp::Reply::Type::simple)
        kept_failure = "SET " + k + " LEASE " + std::to_string(kept_lease) + ": " +
                       (a.fate == Fate::reply ? Client::describe(a.reply) : "no answer");
    }
    keeper_thread = std::thread([&] {
      Client keeper(s, 999);
      auto last = SteadyClock::now();
      while (!stop_keeper) {
        std::this_thread::sleep_for(Ms(500));
        Attempt a = keeper.command({"LEASE", "KEEPALIVE", std::to_string(kept_lease)}, 1500, false);
        if (a.fate != Fate::reply) continue;
        if (a.reply.is_error()) {
          kept_failure =
              "LEASE KEEPALIVE " + std::to_string(kept_lease) + " refused: " + a.reply.text;
          return;
        }
        ++keepalives;
        const auto now = SteadyClock::now();
        kept_longest_gap = std::max(kept_longest_gap, seconds_between(last, now));
        last = now;
      }
    });
  } else if (kept_failure.empty()) {
    kept_failure = "LEASE GRANT got no answer";
  }
  log_line("lease " + std::to_string(kept_lease) + " granted (ttl " + std::to_string(kept_ttl_ms) +
           " ms) with " + std::to_string(kept_keys.size()) +
           " keys, refreshed every 500 ms from now on");

  for (unsigned k = 1; k <= o.clients; ++k) {
    client_threads.emplace_back([&, k] {
      Client c(s, k);
      while (!done)
        c.step();
    });
  }

  // The faults, on this thread (the nodes die with the thread that started them).
  unsigned kills = 0, pauses = 0;
  std::string failure;
  try {
    pods::Random rng(o.seed);
    const unsigned slots = std::max(3u, static_cast<unsigned>(o.seconds / 3.5));
    for (unsigned i = 0; i < slots; ++i) {
      const double at = o.seconds * (i + 1) / (slots + 1) + (rng.below(600) / 1000.0 - 0.3);
      std::this_thread::sleep_until(clients_start +
                                    std::chrono::duration_cast<SteadyClock::duration>(
                                        std::chrono::duration<double>(std::max(0.0, at))));
      unsigned leader = find_leader(nodes, Ms(2000));
      if (leader == 0) leader = s.leader.load();
      // The node that is neither the watched one nor the leader (or, when the watched one
      // leads, one of the two others).
      unsigned other = 0;
      for (unsigned id = 1; id <= Nodes::count; ++id)
        if (id != watched && id != leader) other = id;
      if (leader == watched)
        other = rng.chance(0.5) ? next_node(watched) : next_node(next_node(watched));
      const auto down = Ms(200 + rng.below(600));
      if (i % 3 == 1) {
        const unsigned victim = leader != watched ? leader : other;
        const auto length = Ms(500 + rng.below(1000));
        nodes.signal(victim, SIGSTOP);
        log_line("SIGSTOP node " + std::to_string(victim) +
                 (victim == leader ? " (the leader)" : " (a follower)") + " for " +
                 std::to_string(length.count()) + " ms");
        std::this_thread::sleep_for(length);
        nodes.signal(victim, SIGCONT);
        log_line("SIGCONT node " + std::to_string(victim));
        ++pauses;
      } else {
        const bool want_leader = i % 3 == 0;
        const unsigned victim = want_leader && leader != watched ? leader : other;
        nodes.kill(victim);
        log_line("SIGKILL node " + std::to_string(victim) +
                 (victim == leader ? " (the leader)"
                  : want_leader    ? " (a follower: the leader is the watched node)"
                                   : " (a follower)"));
        std::this_thread::sleep_for(down);
        nodes.restart(victim);
        ++kills;
        log_line("node " + std::to_string(victim) +
                 " restarted on its data directory, client port " +
                 std::to_string(nodes.client_port(victim)) + " (the others were told)");
      }
    }
    std::this_thread::sleep_until(clients_end);
  } catch (const std::exception& e) {
    failure = e.what();
  }
  done = true;
  for (std::thread& t : client_threads)
    t.join();
  client_threads.clear();
  log_line("clients stopped");

  Client checker(s, 1000);
  // A final read of every key, and the end marker the watchers wait for.
  for (const auto* keys : {&register_keys(), &counter_keys()}) {
    for (const std::string& key : *keys) {
      if (!checker.get(key, 10000) && failure.empty())
        failure = "the final read of " + key + " got no answer in 10 s";
    }
  }
  for (int tries = 0; tries < 5; ++tries)
    if (checker.write(CoreInput{CoreOp::set, end_key, "end", std::nullopt})) break;
  stop_watch = true;

  // Leases: one refreshed for 2 s and then left alone, a key with PX, the kept one.
  struct Released {
    std::string what;
    std::vector<std::string> keys;
    SteadyClock::time_point sent, acked;  // the last refresh (or the SET PX) sent, answered
    std::int64_t ttl_ms = 0;
    double gone_after_ttl_s = -1;  // when every key was read absent, after sent + ttl
    bool early = false;            // a key read absent before sent + ttl
  };
  const double bound_s = 2.0;
  std::vector<Released> released;
  std::string lease_failure;
  auto must = [&](const resp::Command& c) -> std::optional<resp::Reply> {
    Attempt a = checker.command(c, 5000, false);
    if (a.fate != Fate::reply || a.reply.is_error()) {
      if (lease_failure.empty())
        lease_failure = c[0] + " " + c[1] + ": " +
                        (a.fate == Fate::reply ? a.reply.text : std::string("no answer"));
      return std::nullopt;
    }
    return a.reply;
  };
  auto present = [&](const std::string& key) -> std::optional<bool> {
    Attempt a = checker.command({"GET", key}, 5000, true);
    if (a.fate != Fate::reply || a.reply.is_error()) return std::nullopt;
    return !a.reply.is_null();
  };
  if (failure.empty()) {
    Released e{"lease", {"lease/exp/1", "lease/exp/2", "lease/exp/3"}, {}, {}, 1000};
    if (auto g = must({"LEASE", "GRANT", std::to_string(e.ttl_ms)});
        g && g->type == resp::Reply::Type::integer) {
      const std::string id = std::to_string(g->integer);
      e.what = "lease " + id;
      for (const std::string& k : e.keys)
        must({"SET", k, "x", "LEASE", id});
      const auto refresh_until = SteadyClock::now() + Ms(2000);
      while (SteadyClock::now() < refresh_until) {
        e.sent = SteadyClock::now();
        if (!must({"LEASE", "KEEPALIVE", id})) break;
        e.acked = SteadyClock::now();
        std::this_thread::sleep_for(Ms(250));
      }
      for (const std::string& k : e.keys) {
        if (present(k) != true && lease_failure.empty())
          lease_failure = k + " was gone while its lease was refreshed";
      }
      released.push_back(e);
    }
    Released px{"SET PX 800", {"lease/px/1"}, SteadyClock::now(), {}, 800};
    if (must({"SET", "lease/px/1", "y", "PX", "800"})) {
      px.acked = SteadyClock::now();
      released.push_back(px);
    }
    // Reads every key until all are gone; a read that returns before sent + ttl must find it.
    const auto poll_until =
        SteadyClock::now() + Ms(static_cast<std::int64_t>(1000 * (bound_s + 3)));
    for (bool pending = true; pending && SteadyClock::now() < poll_until;) {
      pending = false;
      for (Released& r : released) {
        if (r.gone_after_ttl_s >= 0) continue;
        bool all_gone = true;
        for (const std::string& k : r.keys) {
          const auto p = present(k);
          const auto read_at = SteadyClock::now();
          if (!p || *p) all_gone = false;
          if (p == false && read_at < r.sent + Ms(r.ttl_ms)) r.early = true;
        }
        if (all_gone)
          r.gone_after_ttl_s = seconds_between(r.sent + Ms(r.ttl_ms), SteadyClock::now());
        else
          pending = true;
      }
      std::this_thread::sleep_for(Ms(50));
    }
  }
  // The kept lease's keys are still there; then it is revoked and they are gone at once.
  stop_keeper = true;
  if (keeper_thread.joinable()) keeper_thread.join();
  bool revoked_gone = false;
  if (kept_lease != 0 && failure.empty()) {
    for (const std::string& k : kept_keys) {
      if (present(k) != true && kept_failure.empty())
        kept_failure = k + " of the refreshed lease " + std::to_string(kept_lease) + " is gone";
    }
    if (must({"LEASE", "REVOKE", std::to_string(kept_lease)})) {
      revoked_gone = true;
      for (const std::string& k : kept_keys)
        if (present(k) != false) revoked_gone = false;
    }
  }

  // The watchers: until they saw the end marker, 10 s at most.
  const auto watch_deadline = SteadyClock::now() + std::chrono::seconds(10);
  while (SteadyClock::now() < watch_deadline && !(watch_log.finished && resumed_log.finished))
    std::this_thread::sleep_for(Ms(20));
  join();
  // What the nodes compacted (counts since each node's last start).
  std::string snapshots;
  for (unsigned id = 1; id <= Nodes::count; ++id) {
    const auto info = cluster::node_info(nodes, id, 2000);
    snapshots += (id > 1 ? "; " : "") + std::string("node ") + std::to_string(id) + ": ";
    snapshots += info ? "at index " + std::to_string(info->snapshot_index) + ", " +
                            std::to_string(info->snapshots_taken) + " taken, " +
                            std::to_string(info->snapshots_installed) + " installed"
                      : "no answer";
  }
  nodes.stop();
  const double run_s = s.now_s();

  // ---- checks ----
  if (!failure.empty()) failures.push_back(failure);
  {
    std::lock_guard lock(s.mu);
    for (const std::string& f : s.failures)
      failures.push_back(f);
  }
  if (!kept_failure.empty()) failures.push_back(kept_failure);
  if (!lease_failure.empty()) failures.push_back(lease_failure);
  for (const Released& r : released) {
    if (r.early)
      failures.push_back(r.what + "'s keys were gone before its ttl since the last refresh");
    if (r.gone_after_ttl_s < 0 || r.gone_after_ttl_s > bound_s)
      failures.push_back(r.what + "'s keys were still there " + std::to_string(bound_s) +
                         " s after its ttl");
  }
  if (kept_lease != 0 && !revoked_gone && failures.empty())
    failures.push_back("the revoked lease's keys were still readable");
  // GETREV: one value, one revision.
  {
    std::map<std::pair<std::string, std::string>, std::uint64_t> rev_of;
    std::map<std::pair<std::string, std::uint64_t>, std::string> value_of;
    for (const auto& [key, value, rev] : s.revisions) {
      auto [a, fresh_a] = rev_of.try_emplace({key, value}, rev);
      auto [b, fresh_b] = value_of.try_emplace({key, rev}, value);
      if (a->second != rev || b->second != value) {
        failures.push_back("GETREV " + key + ": value " + value + " with revisions " +
                           std::to_string(a->second) + " and " + std::to_string(rev));
        break;
      }
    }
  }
  std::vector<AckedWrite> acked;
  std::set<std::pair<std::string, std::string>> written;
  {
    std::lock_guard lock(s.mu);
    acked = s.acked;
    written = s.written;
  }
  written.emplace(end_key, "end");
  const std::string w1 = check_watch(watch_log, "the watch", acked, written);
  const std::string w2 = check_watch(resumed_log, "the resumed watch", acked, written);
  if (!w1.empty()) failures.push_back(w1);
  if (!w2.empty()) failures.push_back(w2);
  if (w1.empty() && w2.empty() && watch_log.events != resumed_log.events)
    failures.push_back("the resumed watch saw other events than the watch");
  if (w2.empty() && resumed_log.resumed_from == 0)
    failures.push_back("the resumed watch never reconnected");

  const auto operations = s.history.operations();
  const auto c0 = SteadyClock::now();
  pods::sim::CheckStats stats;
  const auto check =
      pods::sim::check_linearizable(CoreModel{}, std::span(operations),
                                    std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::duration<double>(o.check_seconds)),
                                    stats);
  const double check_s = seconds_between(c0, SteadyClock::now());
  if (check.verdict == pods::sim::Verdict::illegal)
    failures.insert(failures.begin(), "the history is NOT linearizable");
  if (check.verdict == pods::sim::Verdict::unknown)
    failures.push_back("the checker ran out of its budget (verdict unknown)");
  if (s.ok == 0) failures.push_back("no operation was answered: nothing was tested");

  // ---- summary ----
  std::printf("\nsummary\n");
  std::printf(
      "  operations      %zu recorded in %.1f s: %llu answered, %llu unknown (no answer), "
      "%llu not applied (refused or unanswered reads)\n",
      s.history.invoked(), seconds_between(clients_start, clients_end),
      static_cast<unsigned long long>(s.ok.load()),
      static_cast<unsigned long long>(s.unknown.load()),
      static_cast<unsigned long long>(s.refused.load()));
  if (s.errors > 0) {
    std::string texts;
    for (const auto& [t, n] : s.error_texts)
      texts += (texts.empty() ? "" : ", ") + std::to_string(n) + " x '" + t + "'";
    std::printf("  write errors    %llu (counted unknown): %s\n",
                static_cast<unsigned long long>(s.errors.load()), texts.c_str());
  }
  std::printf("  latency (us)   ");
  for (auto& [name, v] : s.latency.us) {
    const double p50 = quantile(v, 0.5), p99 = quantile(v, 0.99);
    std::printf(" %s %.0f/%.0f", name.c_str(), p50, p99);
  }
  std::printf("  (p50/p99)\n");
  std::printf(
      "  faults          %u SIGKILL + restart, %u SIGSTOP/SIGCONT; %llu leader changes "
      "seen by clients\n",
      kills, pauses, static_cast<unsigned long long>(s.leader_changes.load()));
  std::printf(
      "  leases          lease %llu (ttl %lld ms): %llu refreshes, longest gap %.2f s, "
      "kept its %zu keys; revoked: keys %s\n",
      static_cast<unsigned long long>(kept_lease), static_cast<long long>(kept_ttl_ms),
      static_cast<unsigned long long>(keepalives), kept_longest_gap, kept_keys.size(),
      revoked_gone ? "gone at once" : "NOT gone");
  for (const Released& r : released) {
    std::printf(
        "                  %s (ttl %lld ms) left alone: %zu key%s gone %.2f s after the "
        "ttl (bound %.1f s)%s\n",
        r.what.c_str(), static_cast<long long>(r.ttl_ms), r.keys.size(),
        r.keys.size() == 1 ? "" : "s", r.gone_after_ttl_s, bound_s,
        r.early ? ", SOME BEFORE IT" : "");
  }
  std::printf(
      "  watches         node %u: %zu events; resumed watch: %zu events over %u "
      "connections (resumed FROM %llu); %zu acknowledged writes to demo/ checked\n",
      watched, watch_log.events.size(), resumed_log.events.size(), resumed_log.connections,
      static_cast<unsigned long long>(resumed_log.resumed_from), acked.size());
  std::printf(
      "  linearizability %zu operations on %zu keys checked in %.2f s (%llu "
      "configurations): %s\n",
      operations.size(), stats.partitions, check_s,
      static_cast<unsigned long long>(stats.configurations),
      check.verdict == pods::sim::Verdict::ok        ? "linearizable"
      : check.verdict == pods::sim::Verdict::illegal ? "NOT linearizable"
                                                     : "unknown (budget)");
  std::printf("  snapshots       every %llu entries; %s\n",
              static_cast<unsigned long long>(o.snapshot_every), snapshots.c_str());
  std::printf("  run             %.1f s in all\n", run_s);
  remove_data();
  if (!failures.empty()) {
    std::printf("\nverdict: FAILED:");
    for (std::size_t i = 0; i < failures.size(); ++i)
      std::printf("%s %s", i ? ";" : "", failures[i].c_str());
    std::printf("\n");
    return 1;
  }
  std::printf(
      "\nverdict: linearizable (%zu operations, %u faults); leases released their keys "
      "and kept them; watches saw every change in order, once\n",
      operations.size(), kills + pauses);
  return 0;
}

}  // namespace consistent_core::demo

namespace consistent_core {

// The `demo` subcommand's flags (argv[2] on); see the top of this file.
inline int demo_main(const char* self_exe, int argc, char** argv) {
  demo::DemoOptions o;
  auto number = [](const std::string& flag, const char* text, double max) {
    char* end = nullptr;
    const double v = std::strtod(text, &end);
    if (end == text || *end != '\0' || !(v > 0) || v > max) {
      std::fprintf(stderr, "consistent_core demo: %s: a number above 0 and at most %g, got %s\n",
                   flag.c_str(), max, text);
      std::exit(2);
    }
    return v;
  };
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--stale-reads") {
      o.stale_reads = true;
    } else if (a == "--keep") {
      o.keep = true;
    } else if (i + 1 >= argc) {
      std::fprintf(stderr, "consistent_core demo: unknown flag or missing value: %s\n", a.c_str());
      return 2;
    } else if (a == "--seconds") {
      o.seconds = number(a, argv[++i], 3600);
    } else if (a == "--seed") {
      o.seed = static_cast<std::uint64_t>(number(a, argv[++i], 1e18));
    } else if (a == "--clients") {
      o.clients = static_cast<unsigned>(number(a, argv[++i], 64));
    } else if (a == "--op-timeout-ms") {
      o.op_timeout_ms = static_cast<int>(number(a, argv[++i], 600000));
    } else if (a == "--snapshot-every") {
      o.snapshot_every = static_cast<std::uint64_t>(number(a, argv[++i], 1e12));
    } else {
      std::fprintf(stderr, "consistent_core demo: unknown flag %s\n", a.c_str());
      return 2;
    }
  }
  std::signal(SIGPIPE, SIG_IGN);
  return demo::run_demo(self_exe, o);
}

// The `cluster` subcommand's flags (argv[2] on): --dir D.
inline int cluster_main(const char* self_exe, int argc, char** argv) {
  if (argc != 4 || std::string(argv[2]) != "--dir") {
    std::fprintf(stderr, "usage: consistent_core cluster --dir DIR\n");
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  return cluster::run(self_exe, argv[3]);
}

}  // namespace consistent_core

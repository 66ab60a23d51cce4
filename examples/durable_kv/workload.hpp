// durable_kv/workload.hpp — the clients of the durable key-value example and their own record.
//
// Each client keeps a ledger of what the server told it: every acknowledged put with its
// timestamp, and every read at a past timestamp with what it returned. The verifier checks
// the server against the ledgers after the last restart: every acknowledged put is there
// with its value and timestamp, no put was applied twice (each put writes a unique value),
// and every historical read returns what it returned before. The workload runs against any
// `Connection`: a socket to a server process (main.cpp) or an in-process server on
// MemoryStorage (power_loss_test.cpp).
#pragma once

#include "wire.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace kv {

// A Connection sends one request and waits for its response. call() returns nullopt when
// the server went away (crashed, killed, halted) before answering; reconnect() blocks until
// a server is up again and returns false when the run is over.
// clang-format off
template <class C>
concept Connection = requires(C& c, const Request& r) {
  { c.call(r) } -> std::same_as<std::optional<Response>>;
  { c.reconnect() } -> std::same_as<bool>;
};
// clang-format on

struct WorkloadOptions {
  std::size_t value_size = 64;  // bytes per value
  int keys = 64;                // key space: k0 .. k{keys-1}
  std::uint64_t seed = 1;
};

struct Ack {  // an acknowledged put
  std::string key;
  std::string value;
  HybridTimestamp ts;
};

struct PastRead {  // a read at a past timestamp and what it returned
  std::string key;
  HybridTimestamp at;
  std::optional<Version> result;
};

struct ClientLedger {
  std::vector<Ack> acks;
  std::vector<PastRead> past_reads;
  std::vector<std::uint64_t> put_latency_ns;  // puts answered without a crash in between
  std::uint64_t ops = 0;                      // requests answered
  std::uint64_t deliberate_retries = 0;       // acknowledged puts sent again on purpose
  std::uint64_t crash_retries = 0;            // puts resent because the server died
  std::vector<std::string> violations;        // answers that contradict the ledger
};

inline std::string key_name(int k) {
  return "k" + std::to_string(k);
}

// Runs one client until `stop` is set: puts, reads of the latest value, reads at past
// timestamps, and deliberate retries of acknowledged puts; a put in flight when the server
// dies is sent again, unchanged, to the next server.
template <Connection Conn>
void run_client(std::uint64_t client, Conn& conn, const WorkloadOptions& options,
                const std::atomic<bool>& stop, ClientLedger& ledger) {
  std::mt19937_64 rng(options.seed * 1'000'003 + client);
  auto pick = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };

  // Sends `request` until some server answers it (reconnecting across crashes).
  // Returns nullopt only when the run ends first.
  auto call = [&](const Request& request, bool* crashed = nullptr) -> std::optional<Response> {
    for (;;) {
      if (auto response = conn.call(request)) return response;
      if (crashed) *crashed = true;
      if (!conn.reconnect()) return std::nullopt;
      Request hello;
      hello.op = Op::hello;
      hello.client = client;
      if (!conn.call(hello)) continue;
    }
  };

  Request hello;
  hello.op = Op::hello;
  hello.client = client;
  if (!call(hello)) return;

  std::uint64_t seq = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    const std::size_t dice = pick(100);
    Request r;
    r.client = client;
    if (dice < 55 || ledger.acks.empty()) {
      // A new put. Its value names the client and the sequence number, so a put applied
      // twice shows up as the same value twice in the key's history.
      r.op = Op::put;
      r.seq = ++seq;
      r.acked_below = r.seq;  // every earlier response has been seen
      r.key = key_name(static_cast<int>(pick(static_cast<std::size_t>(options.keys))));
      r.value = "c" + std::to_string(client) + "-s" + std::to_string(r.seq) + "-";
      r.value.resize(std::max(options.value_size, r.value.size()), 'v');
      bool crashed = false;
      const auto start = std::chrono::steady_clock::now();
      auto response = call(r, &crashed);
      if (!response) return;
      const auto elapsed = std::chrono::steady_clock::now() - start;
      if (!response->ok) {
        ledger.violations.push_back("put " + r.value +
                                    " refused: " + std::string(pods::to_string(response->error)));
        continue;
      }
      if (crashed) {
        ++ledger.crash_retries;
      } else {
        ledger.put_latency_ns.push_back(static_cast<std::uint64_t>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(elapsed).count()));
      }
      ledger.acks.push_back({r.key, r.value, response->ts});
    } else if (dice < 65) {
      // The same put again, as a client that missed the answer would send it: the server
      // must answer with the original timestamp and must not apply it again.
      const Ack& last = ledger.acks.back();
      r.op = Op::put;
      r.seq = seq;
      r.acked_below = seq;
      r.key = last.key;
      r.value = last.value;
      auto response = call(r);
      if (!response) return;
      ++ledger.deliberate_retries;
      if (!response->ok || response->ts != last.ts) {
        ledger.violations.push_back("retry of " + last.value + " answered " +
                                    (response->ok ? pods::to_string(response->ts)
                                                  : std::string(pods::to_string(response->error))) +
                                    ", the original was " + pods::to_string(last.ts));
      }
    } else if (dice < 80) {
      r.op = Op::get;
      r.key = key_name(static_cast<int>(pick(static_cast<std::size_t>(options.keys))));
      if (!call(r)) return;
    } else {
      // A read as of a timestamp this client has seen: its answer may never change.
      r.op = Op::get_at;
      r.key = key_name(static_cast<int>(pick(static_cast<std::size_t>(options.keys))));
      r.at = ledger.acks[pick(ledger.acks.size())].ts;
      auto response = call(r);
      if (!response) return;
      ledger.past_reads.push_back({r.key, r.at, response->value});
    }
    ++ledger.ops;
  }
}

struct Verdict {
  std::uint64_t acknowledged = 0;
  std::uint64_t lost = 0;        // acknowledged puts missing or changed
  std::uint64_t duplicated = 0;  // puts applied more than once
  std::uint64_t past_reads = 0;
  std::uint64_t changed_reads = 0;  // historical reads that now answer differently
  std::uint64_t violations = 0;     // answers the clients saw contradict their ledgers
  std::vector<std::string> details;
  bool ok() const { return lost == 0 && duplicated == 0 && changed_reads == 0 && violations == 0; }
};

// Checks the server behind `conn` against the clients' ledgers. Throws std::runtime_error when
// the server goes away and the connection cannot reconnect.
template <Connection Conn>
Verdict verify(Conn& conn, const std::vector<ClientLedger>& ledgers,
               const WorkloadOptions& options) {
  Verdict v;
  auto ask = [&](Request r) {
    for (;;) {
      if (auto response = conn.call(r)) return *response;
      if (!conn.reconnect()) throw std::runtime_error("the server went away during verification");
    }
  };
  auto note = [&](std::string s) {
    if (v.details.size() < 10) v.details.push_back(std::move(s));
  };
  // Returns what the server now answers to a read of `key` as of `at`.
  auto read_at = [&](const std::string& key, const HybridTimestamp& at) {
    Request r;
    r.op = Op::get_at;
    r.key = key;
    r.at = at;
    return ask(std::move(r)).value;
  };
  for (const ClientLedger& ledger : ledgers) {
    v.violations += ledger.violations.size();
    for (const std::string& s : ledger.violations)
      note(s);
    for (const Ack& ack : ledger.acks) {
      ++v.acknowledged;
      if (read_at(ack.key, ack.ts) != Version{ack.value, ack.ts}) {
        ++v.lost;
        note("lost: " + ack.key + " = " + ack.value.substr(0, 24) + " @ " +
             pods::to_string(ack.ts));
      }
    }
    for (const PastRead& read : ledger.past_reads) {
      ++v.past_reads;
      if (read_at(read.key, read.at) != read.result) {
        ++v.changed_reads;
        note("read of " + read.key + " @ " + pods::to_string(read.at) + " changed");
      }
    }
  }
  for (int k = 0; k < options.keys; ++k) {
    Request r;
    r.op = Op::history;
    r.key = key_name(k);
    Response response = ask(r);
    std::map<std::string, int> seen;
    for (const Version& version : response.history) {
      if (++seen[version.value] == 2) {
        ++v.duplicated;
        note("applied twice: " + version.value.substr(0, 24));
      }
    }
  }
  return v;
}

// Returns the q-quantile (0..1) of `samples` in ns (sorts them).
inline std::uint64_t quantile(std::vector<std::uint64_t>& samples, double q) {
  if (samples.empty()) return 0;
  std::sort(samples.begin(), samples.end());
  const auto i = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1));
  return samples[i];
}

}  // namespace kv

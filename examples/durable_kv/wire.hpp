// durable_kv/wire.hpp — the messages of the durable key-value example and their byte format.
//
// One format serves three purposes: requests and responses between clients and the server,
// the entries of the write-ahead log, and the snapshots. Integers are little-endian fixed
// width, strings are a u32 length and the bytes. A reader that runs past the end of its
// bytes throws pods::CorruptionError, which the log and snapshot readers report with their
// file and offset.
#pragma once

#include <pods/policy/errors.hpp>
#include <pods/time/hybrid_clock.hpp>

#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace kv {

using pods::HybridTimestamp;

// Appends values to a byte buffer.
class Writer {
 public:
  explicit Writer(std::vector<std::byte>& out) : out_(out) {}
  void u8(std::uint8_t v) { raw(&v, 1); }
  void u32(std::uint32_t v) { raw(&v, 4); }
  void u64(std::uint64_t v) { raw(&v, 8); }
  void i64(std::int64_t v) { raw(&v, 8); }
  void str(const std::string& s) {
    u32(static_cast<std::uint32_t>(s.size()));
    raw(s.data(), s.size());
  }
  void ts(const HybridTimestamp& t) {
    i64(t.wall_ns);
    u32(t.logical);
  }

 private:
  void raw(const void* p, std::size_t n) {
    const auto* b = static_cast<const std::byte*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  std::vector<std::byte>& out_;
};

// Reads values back; throws pods::CorruptionError(what, offset, ...) past the end.
class Reader {
 public:
  Reader(std::span<const std::byte> in, std::string what) : in_(in), what_(std::move(what)) {}
  std::uint8_t u8() { return get<std::uint8_t>(); }
  std::uint32_t u32() { return get<std::uint32_t>(); }
  std::uint64_t u64() { return get<std::uint64_t>(); }
  std::int64_t i64() { return get<std::int64_t>(); }
  std::string str() {
    const std::uint32_t n = u32();
    need(n);
    std::string s(reinterpret_cast<const char*>(in_.data() + pos_), n);
    pos_ += n;
    return s;
  }
  HybridTimestamp ts() {
    HybridTimestamp t;
    t.wall_ns = i64();
    t.logical = u32();
    return t;
  }
  bool done() const { return pos_ == in_.size(); }

 private:
  template <class T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  void need(std::size_t n) const {
    if (in_.size() - pos_ < n) {
      throw pods::CorruptionError(what_, pos_,
                                  "truncated: needs " + std::to_string(n) + " more bytes");
    }
  }
  std::span<const std::byte> in_;
  std::string what_;
  std::size_t pos_ = 0;
};

enum class Op : std::uint8_t { hello = 1, put, get, get_at, history, stats };

// A client's request. `seq` numbers a client's puts (1, 2, ...); `acked_below` tells the
// server the client has seen the responses of every put below it, so the idempotent receiver
// may forget them.
struct Request {
  Op op = Op::get;
  std::uint64_t client = 0;
  std::uint64_t seq = 0;
  std::uint64_t acked_below = 0;
  std::string key;
  std::string value;
  HybridTimestamp at;  // get_at: read as of this timestamp
};

struct Version {
  std::string value;
  HybridTimestamp ts;
  friend bool operator==(const Version&, const Version&) = default;
};

struct ServerStats {
  std::uint64_t log_bytes = 0;          // bytes of log segments now
  std::uint64_t peak_log_bytes = 0;     // largest log size seen before a cleaning
  std::uint64_t cleaned_log_bytes = 0;  // log size right after the latest cleaning
  std::uint64_t segments_removed = 0;   // by the low-water mark, this life
  std::uint64_t snapshots = 0;          // taken this life
  std::uint64_t recovered_entries = 0;  // log entries replayed at start
  std::uint64_t recovery_us = 0;        // time from start to ready
  std::uint64_t fsyncs = 0;             // log syncs this life
  std::uint64_t puts = 0;               // puts applied this life
};

struct Response {
  pods::Errc error{};  // meaningful when !ok
  bool ok = true;
  HybridTimestamp ts;            // put: the write's timestamp
  std::optional<Version> value;  // get, get_at
  std::vector<Version> history;  // history, oldest first
  ServerStats stats;             // stats
};

inline void encode(const Request& r, std::vector<std::byte>& out) {
  Writer w(out);
  w.u8(static_cast<std::uint8_t>(r.op));
  w.u64(r.client);
  w.u64(r.seq);
  w.u64(r.acked_below);
  w.str(r.key);
  w.str(r.value);
  w.ts(r.at);
}

inline Request decode_request(std::span<const std::byte> in) {
  Reader rd(in, "request");
  Request r;
  r.op = static_cast<Op>(rd.u8());
  r.client = rd.u64();
  r.seq = rd.u64();
  r.acked_below = rd.u64();
  r.key = rd.str();
  r.value = rd.str();
  r.at = rd.ts();
  return r;
}

inline void encode(const Response& r, std::vector<std::byte>& out) {
  Writer w(out);
  w.u8(r.ok ? 1 : 0);
  w.u8(static_cast<std::uint8_t>(r.error));
  w.ts(r.ts);
  w.u8(r.value ? 1 : 0);
  if (r.value) {
    w.str(r.value->value);
    w.ts(r.value->ts);
  }
  w.u32(static_cast<std::uint32_t>(r.history.size()));
  for (const Version& v : r.history) {
    w.str(v.value);
    w.ts(v.ts);
  }
  const ServerStats& s = r.stats;
  for (std::uint64_t v : {s.log_bytes, s.peak_log_bytes, s.cleaned_log_bytes, s.segments_removed,
                          s.snapshots, s.recovered_entries, s.recovery_us, s.fsyncs, s.puts}) {
    w.u64(v);
  }
}

inline Response decode_response(std::span<const std::byte> in) {
  Reader rd(in, "response");
  Response r;
  r.ok = rd.u8() != 0;
  r.error = static_cast<pods::Errc>(rd.u8());
  r.ts = rd.ts();
  if (rd.u8() != 0) {
    Version v;
    v.value = rd.str();
    v.ts = rd.ts();
    r.value = std::move(v);
  }
  const std::uint32_t n = rd.u32();
  for (std::uint32_t i = 0; i < n; ++i) {
    Version v;
    v.value = rd.str();
    v.ts = rd.ts();
    r.history.push_back(std::move(v));
  }
  ServerStats& s = r.stats;
  for (std::uint64_t* v :
       {&s.log_bytes, &s.peak_log_bytes, &s.cleaned_log_bytes, &s.segments_removed, &s.snapshots,
        &s.recovered_entries, &s.recovery_us, &s.fsyncs, &s.puts}) {
    *v = rd.u64();
  }
  return r;
}

}  // namespace kv

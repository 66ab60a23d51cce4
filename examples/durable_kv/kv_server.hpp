// durable_kv/kv_server.hpp — a single-node key-value server composed from pods blocks.
//
// How the blocks meet (one request's path):
//
//   client ──put──▶ SingularUpdateQueue ──▶ IdempotentReceiver ──(first time)──▶ HybridClock
//                   (one worker thread       (a retried (client, seq)            stamps the write
//                    owns all state)          gets the first answer)                  │
//                                                                                     ▼
//                   RequestWaitingList ◀── RequestBatch ◀── WriteAheadLog.append (not yet synced)
//                   (the put's answer        (writes since
//                    waits for its index)     the last fsync)
//                          │
//   a Sync command, queued behind the requests already waiting, runs one fsync for all of
//   them (group commit), applies the batch to the VersionedStore and completes the waiting
//   list up to the synced index: only then does a client hear "ok".
//
//   Every snapshot_every entries the worker writes the store and the idempotency table as one
//   entry of a second log (the snapshot log), syncs it, and the SnapshotLowWaterMark deletes
//   the write-ahead log segments the snapshot covers. On start: the latest snapshot, then the
//   log entries after it.
//
// A storage failure while serving (a failed fdatasync above all) stops the server: every
// request waiting for an fsync and every later one is refused (Errc::failed), and
// options.on_failure is told. After a failed fdatasync the kernel may have dropped the
// unsynced pages while still showing them, so answering a retried put from them could
// acknowledge a write that is not on disk. (SegmentedLog cuts its last segment back to the
// last synced size on such a failure, so a server restarted on the storage does not see them
// either.)
//
// Reads go through the same queue. A read that arrives while writes wait for their fsync
// waits with them, so nothing a client reads can vanish in a crash, and a read at a past
// timestamp never changes its answer.
#pragma once

#include "wire.hpp"

#include <pods/messaging/idempotent_receiver.hpp>
#include <pods/messaging/request_batch.hpp>
#include <pods/messaging/request_waiting_list.hpp>
#include <pods/messaging/singular_update_queue.hpp>
#include <pods/policy/clock.hpp>
#include <pods/policy/storage.hpp>
#include <pods/storage/low_water_mark.hpp>
#include <pods/storage/segmented_log.hpp>
#include <pods/storage/versioned_value.hpp>
#include <pods/storage/write_ahead_log.hpp>
#include <pods/time/hybrid_clock.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace kv {

struct ServerOptions {
  std::size_t segment_bytes = 1 << 20;        // write-ahead log segment size
  std::uint64_t snapshot_every = 20'000;      // log entries between snapshots
  std::size_t max_batch = 1024;               // writes per fsync at most
  std::chrono::seconds session_timeout{600};  // idempotent receiver: forget idle clients
  // Called once, on the server's worker, when a storage operation failed while serving (an
  // fdatasync, an append, a snapshot, a cleaning), after every waiting request was refused;
  // the argument says what failed. The server then refuses every request: after a failed
  // fdatasync the kernel may have dropped the unsynced pages, so acknowledging anything more
  // (a retried put included) could acknowledge a write that is not on disk.
  std::function<void(const std::string&)> on_failure;
};

// One write-ahead log entry: a put, with the client's (client, seq) so that recovery also
// restores what the idempotent receiver knew.
struct LogRecord {
  std::uint64_t client = 0;
  std::uint64_t seq = 0;
  std::string key;
  std::string value;
  HybridTimestamp ts;
};

struct LogRecordCodec {
  void encode(const LogRecord& r, pods::Buffer& out) const {
    Writer w(out);
    w.u64(r.client);
    w.u64(r.seq);
    w.str(r.key);
    w.str(r.value);
    w.ts(r.ts);
  }
  LogRecord decode(std::span<const std::byte> bytes) const {
    Reader rd(bytes, "log record");
    LogRecord r;
    r.client = rd.u64();
    r.seq = rd.u64();
    r.key = rd.str();
    r.value = rd.str();
    r.ts = rd.ts();
    if (!rd.done()) throw pods::CorruptionError("log record", bytes.size(), "trailing bytes");
    return r;
  }
};

template <pods::SegmentStorage Storage>
class Server {
 public:
  using Done = std::function<void(Response)>;

  // Opens the data held by the two storages and recovers: the latest snapshot, then the log.
  Server(Storage log_storage, Storage snapshot_storage, ServerOptions options = {})
      : options_(options),
        wal_(std::move(log_storage), pods::LogOptions{options.segment_bytes}),
        snapshots_(std::move(snapshot_storage), pods::LogOptions{1 << 20}),
        receiver_(options.session_timeout, 16),
        waiting_(std::chrono::hours(24)),
        pending_(
            pods::BatchLimits{options.max_batch, std::size_t{1} << 30, std::chrono::hours(24)}),
        queue_(Handler{this}) {
    recover();
  }

  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server() { queue_.stop(); }

  // Queues a client request; `done` is called exactly once, on a server thread, with the
  // answer (a put's answer only after its entry is durable).
  void submit(Request request, Done done) {
    Done on_refusal = done;
    queue_.submit(Command{Command::client, std::move(request), std::move(done)},
                  [on_refusal = std::move(on_refusal)](pods::Outcome<void> handled) {
                    if (!handled) on_refusal(refused(handled.error()));
                  });
  }

  // Cuts the power: from now on nothing is synced or answered; requests waiting for an fsync
  // are answered Errc::closed, and the worker stops. What reached storage stays there.
  void halt() {
    halted_.store(true);
    queue_.submit(Command{Command::halt, {}, {}}, [](pods::Outcome<void>) {});
    queue_.stop();
  }

  // Returns the statistics of this life (call when no request is running).
  ServerStats stats() const { return stats_; }
  void set_recovery_time(std::chrono::microseconds us) {
    stats_.recovery_us = static_cast<std::uint64_t>(us.count());
  }

 private:
  struct Command {
    enum Kind { client, sync, halt } kind;
    Request request;
    Done done;
  };
  struct Handler {
    Server* server;
    void operator()(Command&& command) { server->handle(std::move(command)); }
  };
  struct Written {  // what the idempotent receiver remembers of a put
    HybridTimestamp ts;
    std::uint64_t index = 0;
  };
  struct Pending {  // an appended, not yet durable write
    LogRecord record;
    std::uint64_t index;
  };
  using Ticket = std::pair<std::uint64_t, std::uint64_t>;  // (log index, arrival)
  static constexpr HybridTimestamp kLatest{std::numeric_limits<std::int64_t>::max(),
                                           std::numeric_limits<std::uint32_t>::max()};

  static Response refused(pods::Errc e) {
    Response r;
    r.ok = false;
    r.error = e;
    return r;
  }
  static Response written(HybridTimestamp ts) {
    Response r;
    r.ts = ts;
    return r;
  }

  // ---- the worker: every function below runs on the update queue's one thread ----------

  void handle(Command&& c) {
    if (c.kind == Command::halt) {
      // Fail everything that waits for an fsync that will never come.
      waiting_.complete_up_to({UINT64_MAX, UINT64_MAX}, [](const Ticket&) { return false; });
      return;
    }
    if (halted_.load()) {
      if (c.done) c.done(refused(pods::Errc::closed));
      return;
    }
    if (failed_) {
      if (c.done) c.done(refused(pods::Errc::failed));
      return;
    }
    try {
      dispatch(c);
    } catch (const std::exception& e) {
      fail(e.what());
      if (c.done) c.done(refused(pods::Errc::failed));  // not yet handed on
    }
  }

  // Runs one command. A `done` handed on (answered, or waiting for an fsync) is left empty in
  // the command.
  void dispatch(Command& c) {
    if (c.kind == Command::sync) {
      sync_scheduled_ = false;
      sync();
      return;
    }
    Request& r = c.request;
    switch (r.op) {
      case Op::hello:
        // A known client keeps its session: a reconnect after a crash must not forget the
        // answers the receiver holds for it.
        if (!clients_.contains(r.client))
          clients_.emplace(r.client, receiver_.register_client(r.client));
        std::exchange(c.done, nullptr)(Response{});
        return;
      case Op::put:
        put(r, c.done);
        return;
      case Op::stats:
        std::exchange(c.done, nullptr)(stats_response());
        return;
      case Op::get:
      case Op::get_at:
      case Op::history:
        read(std::move(r), c.done);
        return;
    }
    std::exchange(c.done, nullptr)(refused(pods::Errc::failed));
  }

  // Stops serving after a storage failure: refuses everything waiting for an fsync, drops
  // the unsynced batch and tells the owner. Every later request is refused.
  void fail(const std::string& what) {
    failed_ = true;
    (void)pending_.take();
    waiting_.complete_up_to({UINT64_MAX, UINT64_MAX}, [](const Ticket&) { return false; });
    if (options_.on_failure) options_.on_failure(what);
  }

  void put(Request& r, Done& done) {
    const auto session = clients_.find(r.client);
    if (session == clients_.end()) {
      std::exchange(done, nullptr)(refused(pods::Errc::unknown_client));
      return;
    }
    auto outcome = receiver_.execute(session->second, r.seq, r.acked_below, [&] {
      // First time this (client, seq) is seen: stamp it and append it to the log.
      LogRecord record{r.client, r.seq, std::move(r.key), std::move(r.value), clock_.now()};
      const std::uint64_t index = wal_.append(record);
      const HybridTimestamp ts = record.ts;
      last_put_[record.client] = {record.seq, Written{ts, index}};
      if (pending_.add(Pending{std::move(record), index})) {
        sync();  // the batch is full: do not wait for the queued Sync
      } else {
        schedule_sync();
      }
      return Written{ts, index};
    });
    if (!outcome) {
      // An expired session is gone from the receiver: the client's next hello registers it
      // afresh.
      if (outcome.error() == pods::Errc::unknown_client ||
          outcome.error() == pods::Errc::session_expired) {
        clients_.erase(r.client);
      }
      std::exchange(done, nullptr)(refused(outcome.error()));
      return;
    }
    // New or retried, the answer waits until the entry is durable.
    const Written w = *outcome;
    if (w.index <= durable_index_) {
      std::exchange(done, nullptr)(written(w.ts));
      return;
    }
    waiting_.add({w.index, ++arrivals_},
                 [this, done = std::exchange(done, nullptr), ts = w.ts](pods::Outcome<bool> r) {
                   done(r && *r ? written(ts) : refused(refusal()));
                 });
  }

  void read(Request r, Done& done) {
    if (wal_.last_index() == durable_index_) {
      std::exchange(done, nullptr)(answer(r));
      return;
    }
    // Writes are waiting for their fsync: answer after them, so the read sees them.
    waiting_.add({wal_.last_index(), ++arrivals_},
                 [this, r = std::move(r), done = std::exchange(done, nullptr)](
                     pods::Outcome<bool> ok) { done(ok && *ok ? answer(r) : refused(refusal())); });
  }

  // Returns why a waiting request was not served: the storage failed, or the power was cut.
  pods::Errc refusal() const { return failed_ ? pods::Errc::failed : pods::Errc::closed; }

  Response answer(const Request& r) const {
    Response response;
    if (r.op == Op::history) {
      for (const auto& v : store_.history(r.key))
        response.history.push_back({v.value, v.version});
      return response;
    }
    if (auto v = store_.get(r.key, r.op == Op::get ? kLatest : r.at)) {
      response.value = Version{v->value, v->version};
    }
    return response;
  }

  // Queues one Sync behind the requests already waiting, so one fsync serves all of them.
  void schedule_sync() {
    if (sync_scheduled_) return;
    sync_scheduled_ = true;
    queue_.submit(Command{Command::sync, {}, {}}, [](pods::Outcome<void>) {});
  }

  // Group commit: one fsync makes every appended entry durable; then the batch is applied
  // and everyone waiting up to the synced index is answered.
  void sync() {
    if (wal_.last_index() == durable_index_) return;
    wal_.sync();
    ++stats_.fsyncs;
    durable_index_ = wal_.last_index();
    for (Pending& p : pending_.take()) {
      store_.put(p.record.key, std::move(p.record.value), p.record.ts);
      keys_.insert(std::move(p.record.key));
      ++stats_.puts;
    }
    waiting_.complete_up_to({durable_index_, UINT64_MAX}, [](const Ticket&) { return true; });
    if (durable_index_ - snapshot_index_ >= options_.snapshot_every) snapshot();
  }

  // Writes the store and the idempotency table as one durable entry of the snapshot log,
  // then lets the low-water mark delete the log segments it covers.
  void snapshot() {
    std::vector<std::byte> bytes;
    Writer w(bytes);
    w.u64(durable_index_);
    w.ts(clock_.last());
    w.u32(static_cast<std::uint32_t>(keys_.size()));
    for (const std::string& key : keys_) {
      w.str(key);
      std::vector<pods::VersionedValue<std::string, HybridTimestamp>> versions;
      for (auto&& v : store_.history(key))
        versions.push_back(std::move(v));
      w.u32(static_cast<std::uint32_t>(versions.size()));
      for (const auto& v : versions) {
        w.str(v.value);
        w.ts(v.version);
      }
    }
    w.u32(static_cast<std::uint32_t>(last_put_.size()));
    for (const auto& [client, last] : last_put_) {
      w.u64(client);
      w.u64(last.first);
      w.ts(last.second.ts);
      w.u64(last.second.index);
    }
    snapshots_.append(bytes);
    snapshots_.sync();
    snapshots_.remove_before(snapshots_.last_index());
    snapshot_index_ = durable_index_;
    ++stats_.snapshots;

    stats_.peak_log_bytes = std::max(stats_.peak_log_bytes, log_bytes());
    low_water_mark_.snapshot_taken(snapshot_index_);
    stats_.segments_removed += low_water_mark_.clean(wal_.log());
    stats_.cleaned_log_bytes = log_bytes();
  }

  void load_snapshot(std::span<const std::byte> bytes) {
    Reader rd(bytes, "snapshot");
    snapshot_index_ = rd.u64();
    clock_.update(rd.ts());
    const std::uint32_t keys = rd.u32();
    for (std::uint32_t k = 0; k < keys; ++k) {
      std::string key = rd.str();
      const std::uint32_t versions = rd.u32();
      for (std::uint32_t v = 0; v < versions; ++v) {
        std::string value = rd.str();
        store_.put(key, std::move(value), rd.ts());
      }
      keys_.insert(std::move(key));
    }
    const std::uint32_t clients = rd.u32();
    for (std::uint32_t c = 0; c < clients; ++c) {
      const std::uint64_t client = rd.u64();
      const std::uint64_t seq = rd.u64();
      Written written{rd.ts(), rd.u64()};
      last_put_[client] = {seq, written};
    }
  }

  // Rebuilds the state: the latest snapshot, then every log entry after it; restores the
  // idempotent receiver's answers and moves the clock past every recovered timestamp.
  void recover() {
    if (snapshots_.last_index() >= snapshots_.first_index()) {
      load_snapshot(snapshots_.read(snapshots_.last_index())->payload);
    }
    check_log_meets_snapshot();
    for (const auto& [index, record] :
         wal_.replay(std::max(snapshot_index_ + 1, wal_.first_index()))) {
      clock_.update(record.ts);
      store_.put(record.key, record.value, record.ts);
      keys_.insert(record.key);
      last_put_[record.client] = {record.seq, Written{record.ts, index}};
      ++stats_.recovered_entries;
    }
    // The recovered tail may be only in the page cache (the process died, the machine did
    // not): make it durable before any of it is served as acknowledged.
    wal_.sync();
    durable_index_ = wal_.last_index();
    for (const auto& [client, last] : last_put_) {
      const auto session = receiver_.register_client(client);
      clients_.insert_or_assign(client, session);
      const Written w = last.second;
      (void)receiver_.execute(session, last.first, last.first, [w] { return w; });
    }
    stats_.log_bytes = log_bytes();
    low_water_mark_.snapshot_taken(snapshot_index_);
  }

  // Throws CorruptionError unless the log holds every entry after the snapshot: it must
  // start at or before snapshot_index_ + 1 (else entries between were deleted, and the
  // snapshot that covered them is gone) and reach snapshot_index_ (else the next appends would
  // take indices the snapshot already covers, and a later recovery would skip them).
  void check_log_meets_snapshot() const {
    const std::uint64_t first = wal_.first_index();
    const std::uint64_t last = wal_.last_index();
    const std::string snapshot =
        snapshots_.last_index() >= snapshots_.first_index()
            ? "the newest snapshot (entry " + std::to_string(snapshots_.last_index()) +
                  " of the snapshot log, " +
                  snapshots_.storage().name(snapshots_.locate(snapshots_.last_index())->segment) +
                  ")"
            : "no snapshot";
    const std::string file = wal_.log().storage().name(wal_.log().segments().front().first_index);
    if (first > snapshot_index_ + 1) {
      throw pods::CorruptionError(
          file, 0,
          "the write-ahead log starts at index " + std::to_string(first) + " but " + snapshot +
              " covers entries up to index " + std::to_string(snapshot_index_) + ": log entries " +
              std::to_string(snapshot_index_ + 1) + " to " + std::to_string(first - 1) +
              " are missing (a newer snapshot was lost); refusing to start");
    }
    if (last < snapshot_index_) {
      throw pods::CorruptionError(
          file, 0,
          "the write-ahead log ends at index " + std::to_string(last) + " but " + snapshot +
              " covers entries up to index " + std::to_string(snapshot_index_) + ": log entries " +
              std::to_string(last + 1) + " to " + std::to_string(snapshot_index_) +
              " are missing; refusing to start");
    }
  }

  std::uint64_t log_bytes() const {
    std::uint64_t total = 0;
    for (const auto& s : wal_.log().segments())
      total += s.bytes;
    return total;
  }

  Response stats_response() {
    stats_.log_bytes = log_bytes();
    Response r;
    r.stats = stats_;
    return r;
  }

  ServerOptions options_;
  pods::WriteAheadLog<LogRecord, LogRecordCodec, Storage> wal_;
  pods::SegmentedLog<Storage> snapshots_;
  pods::HybridClock<pods::SystemClock, pods::SingleThreaded> clock_;
  pods::VersionedStore<std::string, std::string, HybridTimestamp> store_;
  std::set<std::string> keys_;
  pods::IdempotentReceiver<std::uint64_t, std::uint64_t, Written> receiver_;
  std::map<std::uint64_t, typename decltype(receiver_)::Session> clients_;  // client -> session
  std::map<std::uint64_t, std::pair<std::uint64_t, Written>> last_put_;  // client -> (seq, answer)
  pods::RequestWaitingList<Ticket, bool> waiting_;
  pods::RequestBatch<Pending> pending_;
  pods::SnapshotLowWaterMark low_water_mark_;
  std::uint64_t durable_index_ = 0;
  std::uint64_t snapshot_index_ = 0;
  std::uint64_t arrivals_ = 0;
  bool sync_scheduled_ = false;
  bool failed_ = false;  // a storage operation failed: nothing more is served
  std::atomic<bool> halted_{false};
  ServerStats stats_;
  pods::SingularUpdateQueue<Command, Handler> queue_;  // last: its worker stops first
};

}  // namespace kv

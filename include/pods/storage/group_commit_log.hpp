// pods/storage/group_commit_log.hpp — Group commit over a SegmentedLog
//
// Problem:       A writer that needs its entry durable before it answers must wait for an
//                fdatasync, which takes from tens of microseconds to milliseconds. If every
//                writer syncs for itself, the disk does one sync per entry and throughput is
//                one entry per sync, however many writers there are.
// Solution:      Writers queue their entries; the writer at the head of the queue becomes the
//                leader: it takes every entry queued so far as one batch, appends them all,
//                syncs ONCE, marks the whole batch durable and wakes it, then wakes the next
//                head, which leads the next batch. While a leader syncs, arriving writers
//                queue up behind it and form the next batch, so under load each sync covers
//                many entries. A lone writer leads its own batch in its own thread: no thread
//                hand-off, so its latency is one append and one sync.
// Guarantees:    append_durable returns only after its entry is synced, with its index.
//                Entries are appended in queue order; each caller's entries keep that caller's
//                order. stop() refuses new work and waits until every accepted append is
//                appended and synced and every caller of append_durable and with_log has
//                left the object; it is idempotent, and the destructor calls it, so a
//                caller still inside never touches a destroyed log.
// Not provided:  Bounded waiting (a writer waits as long as the syncs ahead of it take); a
//                batch size limit (a batch is everything queued); reads that bypass the
//                appends: use with_log, which runs between batches.
// Thread safety: thread-safe: append_durable, with_log, stop and the accessors may be called
//                from any thread concurrently.
// Errors:        append_durable after stop() throws pods::ClosedError. If an append or sync
//                fails, every caller of that batch gets the std::system_error, and the log is
//                failed: every later append_durable rethrows that error (a failed fdatasync
//                cannot be retried safely: the kernel may have dropped the dirty pages).
//                The constructor throws what SegmentedLog's throws.
// Cost:          Per entry: a queue slot and a condition variable on the caller's stack (the
//                payload is NOT copied: the leader reads the caller's span while it waits),
//                one append, a share of one sync, one wake-up. No thread of its own.
// Example:
//   pods::GroupCommitLog<> log(pods::FileStorage("/var/lib/app/wal"));
//   // from any number of threads:
//   std::uint64_t index = log.append_durable(bytes);   // durable when it returns
//   log.with_log([](auto& l) { l.remove_before(snapshot_index + 1); });
// Example context: std::vector<std::byte> bytes(8);
// Example context: std::uint64_t snapshot_index = 0;
#pragma once

#include <pods/policy/errors.hpp>
#include <pods/policy/storage.hpp>
#include <pods/storage/segmented_log.hpp>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace pods {

template <SegmentStorage Storage = FileStorage>
class GroupCommitLog {
 public:
  // Takes ownership of `log`.
  explicit GroupCommitLog(SegmentedLog<Storage> log) : log_(std::move(log)) {}

  // Opens (and recovers) a SegmentedLog on `storage` with `options`. Throws what
  // SegmentedLog's constructor throws.
  explicit GroupCommitLog(Storage storage, LogOptions options = {})
      : log_(std::move(storage), options) {}

  GroupCommitLog(const GroupCommitLog&) = delete;
  GroupCommitLog& operator=(const GroupCommitLog&) = delete;

  // Calls stop(): waits for every accepted append to be durable.
  ~GroupCommitLog() { stop(); }

  // Appends `payload` and blocks until it is durable; returns its index. `payload` is read by
  // whichever caller leads its batch while this call waits (not copied, not retained after
  // return). Throws pods::ClosedError after stop(), std::invalid_argument naming payload when
  // it exceeds SegmentedLog::max_payload_bytes, std::system_error (the same one for the whole
  // batch, and then for every later call) when the append or the sync failed.
  std::uint64_t append_durable(std::span<const std::byte> payload) {
    if (payload.size() > SegmentedLog<Storage>::max_payload_bytes) {
      throw std::invalid_argument("GroupCommitLog::append_durable: payload of " +
                                  std::to_string(payload.size()) + " bytes exceeds " +
                                  std::to_string(SegmentedLog<Storage>::max_payload_bytes));
    }
    Request request;
    request.payload = payload;
    std::unique_lock lock(mutex_);
    if (stopping_) throw ClosedError("GroupCommitLog: append_durable after stop()");
    if (failure_) std::rethrow_exception(failure_);
    Inside inside(*this);
    queue_.push_back(&request);
    request.wake.wait(lock, [&] { return request.done || queue_.front() == &request; });
    if (!request.done) lead(lock);  // at the head of the queue: commit a batch
    if (request.error) std::rethrow_exception(request.error);
    return request.index;
  }

  // Runs `f(log)` on the SegmentedLog between batches (for reads, entries(), remove_before,
  // truncate_after) and returns what it returns. Entries returned by append_durable are
  // visible. f must not call append_durable (deadlock).
  template <class F>
  decltype(auto) with_log(F&& f) {
    struct Visit {  // counts this call as inside the object, as append_durable does
      GroupCommitLog& g;
      explicit Visit(GroupCommitLog& o) : g(o) {
        std::lock_guard lock(g.mutex_);
        ++g.inside_;
      }
      ~Visit() {
        std::lock_guard lock(g.mutex_);
        if (--g.inside_ == 0) g.drained_.notify_all();
      }
    } visit(*this);
    std::lock_guard lock(log_mutex_);
    return std::forward<F>(f)(log_);
  }

  // Refuses new appends (they throw ClosedError) and waits until every accepted append has
  // been appended and synced (or failed) and every caller has left append_durable and
  // with_log. Idempotent; safe to call from several threads, not from inside with_log.
  void stop() {
    std::unique_lock lock(mutex_);
    stopping_ = true;
    drained_.wait(lock, [&] { return queue_.empty() && inside_ == 0; });
  }

  // Returns true once stop() has been called (appends are refused from then on).
  bool stopping() const {
    std::lock_guard lock(mutex_);
    return stopping_;
  }

  // Returns the highest index this GroupCommitLog has synced (0 before its first batch).
  std::uint64_t durable_index() const {
    std::lock_guard lock(mutex_);
    return durable_index_;
  }

  // Returns how many syncs have been done (one per batch).
  std::uint64_t sync_count() const {
    std::lock_guard lock(mutex_);
    return syncs_;
  }

  // Returns how many appends are queued and not yet taken into a batch (racy by design).
  std::size_t queued_approx() const {
    std::lock_guard lock(mutex_);
    return queue_.size() - in_batch_;
  }

 private:
  // Counts a caller of append_durable inside the object while mutex_ is held (constructed and
  // destroyed with the lock held), and wakes stop() when the last one leaves.
  struct Inside {
    GroupCommitLog& g;
    explicit Inside(GroupCommitLog& o) noexcept : g(o) { ++g.inside_; }
    ~Inside() {
      if (--g.inside_ == 0) g.drained_.notify_all();
    }
    Inside(const Inside&) = delete;
    Inside& operator=(const Inside&) = delete;
  };

  struct Request {
    std::span<const std::byte> payload;
    std::uint64_t index = 0;
    std::exception_ptr error;
    bool done = false;
    std::condition_variable wake;  // signalled when done, or when it becomes the head
  };

  // Commits every queued request as one batch; called by the caller at the head of the
  // queue, with `lock` held (released during the appends and the sync).
  void lead(std::unique_lock<std::mutex>& lock) {
    const std::size_t n = queue_.size();
    in_batch_ = n;
    batch_.assign(queue_.begin(), queue_.end());  // the deque may grow while unlocked
    std::exception_ptr error = failure_;          // a failure after this caller queued
    std::uint64_t last = 0;
    if (!error) {
      lock.unlock();
      {
        std::lock_guard log_lock(log_mutex_);
        for (std::size_t k = 0; k < n && !error; ++k) {
          Request* r = batch_[k];
          try {
            r->index = log_.append(r->payload);
            last = r->index;
          } catch (...) {
            error = std::current_exception();
          }
        }
        if (!error) {
          try {
            log_.sync();
          } catch (...) {
            error = std::current_exception();
          }
        }
      }
      lock.lock();
    }
    if (error) {
      failure_ = error;
    } else {
      ++syncs_;
      if (last > durable_index_) durable_index_ = last;
    }
    for (std::size_t k = 0; k < n; ++k) {
      Request* r = queue_.front();
      queue_.pop_front();
      if (error) r->error = error;
      r->done = true;
      r->wake.notify_one();  // the leader's own notify is harmless
    }
    in_batch_ = 0;
    if (!queue_.empty()) {
      queue_.front()->wake.notify_one();  // the next head leads the next batch
    } else {
      drained_.notify_all();
    }
  }

  SegmentedLog<Storage> log_;
  std::mutex log_mutex_;             // held by a leader for its batch, and by with_log
  mutable std::mutex mutex_;         // guards everything below (the queue and the counters)
  std::condition_variable drained_;  // stop() waits for an empty queue and no caller inside
  std::deque<Request*> queue_;
  std::vector<Request*> batch_;  // the leader's copy of its batch
  std::size_t in_batch_ = 0;     // the first in_batch_ requests are being committed
  std::size_t inside_ = 0;       // callers inside append_durable or with_log
  std::exception_ptr failure_;
  std::uint64_t durable_index_ = 0;
  std::uint64_t syncs_ = 0;
  bool stopping_ = false;
};

}  // namespace pods

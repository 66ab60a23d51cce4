// pods/storage/group_commit_log.hpp — Group commit over a SegmentedLog
//
// Problem:       A writer that needs its entry durable before it answers must wait for an
//                fdatasync, which takes from tens of microseconds to milliseconds. If every
//                writer syncs for itself, the disk does one sync per entry and throughput is
//                one entry per sync, however many writers there are.
// Solution:      Writers hand their payloads to one writer thread and wait. The thread takes
//                every payload queued so far as one batch, appends them all, syncs ONCE, and
//                wakes the whole batch. While it syncs, newly arriving writers queue up and
//                form the next batch, so under load each sync covers many entries and the
//                sync rate, not the entry rate, is what the disk sees.
// Guarantees:    append_durable returns only after its entry is synced, with its index.
//                Entries are appended in the order their callers were queued; each caller's
//                entries keep that caller's order. stop() refuses new work, finishes (appends
//                and syncs) everything already accepted, and joins the thread; it is
//                idempotent, and the destructor calls it.
// Not provided:  Bounded waiting (a writer waits as long as the sync takes); a batch size
//                limit (a batch is everything queued); reads that bypass the writer: use
//                with_log, which waits for the batch in progress.
// Thread safety: thread-safe: append_durable, with_log, stop and the accessors may be called
//                from any thread concurrently.
// Errors:        append_durable after stop() throws pods::ClosedError. If an append or sync
//                fails, every caller of that batch gets the std::system_error, and the log is
//                failed: every later append_durable rethrows that error (a failed fdatasync
//                cannot be retried safely: the kernel may have dropped the dirty pages).
//                The constructor throws what SegmentedLog's throws.
// Cost:          Per entry: a queue slot (the payload is NOT copied: the caller's span is read
//                by the writer thread while the caller waits), one append, and a share of one
//                sync; two thread hand-offs (wake the writer, wake the caller). One thread.
// Example:
//   pods::GroupCommitLog<> log(pods::FileStorage("/var/lib/app/wal"));
//   // from any number of threads:
//   std::uint64_t index = log.append_durable(bytes);   // durable when it returns
//   log.with_log([](auto& l) { l.remove_before(snapshot_index + 1); });
#pragma once

#include <pods/policy/errors.hpp>
#include <pods/policy/storage.hpp>
#include <pods/storage/file_storage.hpp>
#include <pods/storage/segmented_log.hpp>

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace pods {

template <SegmentStorage Storage = FileStorage>
class GroupCommitLog {
 public:
  // Takes ownership of `log` and starts the writer thread.
  explicit GroupCommitLog(SegmentedLog<Storage> log) : log_(std::move(log)) { start(); }

  // Opens (and recovers) a SegmentedLog on `storage` with `options` and starts the writer
  // thread. Throws what SegmentedLog's constructor throws.
  explicit GroupCommitLog(Storage storage, LogOptions options = {})
      : log_(std::move(storage), options) {
    start();
  }

  GroupCommitLog(const GroupCommitLog&) = delete;
  GroupCommitLog& operator=(const GroupCommitLog&) = delete;

  // Stops (see stop()) and joins the writer thread.
  ~GroupCommitLog() { stop(); }

  // Appends `payload` and blocks until it is durable; returns its index. `payload` is read by
  // the writer thread while this call waits (not copied, not retained after return). Throws
  // pods::ClosedError after stop(), std::invalid_argument for a payload over
  // SegmentedLog::max_payload_bytes, std::system_error (the same one for the whole batch, and
  // then for every later call) when the append or the sync failed.
  std::uint64_t append_durable(std::span<const std::byte> payload) {
    if (payload.size() > SegmentedLog<Storage>::max_payload_bytes) {
      throw std::invalid_argument("GroupCommitLog::append_durable: payload of " +
                                  std::to_string(payload.size()) + " bytes exceeds " +
                                  std::to_string(SegmentedLog<Storage>::max_payload_bytes));
    }
    Request request;
    request.payload = payload;
    {
      std::unique_lock lock(mutex_);
      if (stopping_) throw ClosedError("GroupCommitLog: append_durable after stop()");
      if (failure_) std::rethrow_exception(failure_);
      queue_.push_back(&request);
      if (writer_idle_) work_.notify_one();
      done_.wait(lock, [&] { return request.done; });
    }
    if (request.error) std::rethrow_exception(request.error);
    return request.index;
  }

  // Runs `f(log)` on the SegmentedLog while the writer thread is paused between batches (for
  // reads, entries(), remove_before, truncate_after) and returns what it returns. Entries
  // returned by append_durable are visible. f must not call append_durable (deadlock).
  template <class F>
  decltype(auto) with_log(F&& f) {
    std::lock_guard lock(log_mutex_);
    return std::forward<F>(f)(log_);
  }

  // Refuses new appends (they throw ClosedError), appends and syncs every accepted one, and
  // joins the writer thread. Idempotent; safe to call from several threads.
  void stop() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    work_.notify_one();
    std::lock_guard join_lock(join_mutex_);
    if (writer_.joinable()) writer_.join();
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

  // Returns how many syncs the writer thread has done (one per batch).
  std::uint64_t sync_count() const {
    std::lock_guard lock(mutex_);
    return syncs_;
  }

  // Returns how many appends are queued and not yet taken by the writer (racy by design).
  std::size_t queued_approx() const {
    std::lock_guard lock(mutex_);
    return queue_.size();
  }

 private:
  struct Request {
    std::span<const std::byte> payload;
    std::uint64_t index = 0;
    std::exception_ptr error;
    bool done = false;
  };

  void start() {
    writer_ = std::thread([this] { run(); });
  }

  void run() {
    std::vector<Request*> batch;
    for (;;) {
      {
        std::unique_lock lock(mutex_);
        writer_idle_ = true;
        work_.wait(lock, [&] { return !queue_.empty() || stopping_; });
        writer_idle_ = false;
        if (queue_.empty()) return;  // stopping, and everything accepted is done
        batch.swap(queue_);
      }
      std::exception_ptr error;
      std::uint64_t last = 0;
      {
        std::lock_guard log_lock(log_mutex_);
        for (Request* r : batch) {
          try {
            r->index = log_.append(r->payload);
            last = r->index;
          } catch (const std::invalid_argument&) {
            r->error = std::current_exception();  // this caller's bad payload; others go on
          } catch (...) {
            error = std::current_exception();
            break;
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
      {
        std::lock_guard lock(mutex_);
        if (error) {
          failure_ = error;
        } else {
          ++syncs_;
          if (last > durable_index_) durable_index_ = last;
        }
        for (Request* r : batch) {
          if (error) r->error = error;
          r->done = true;
        }
      }
      done_.notify_all();
      batch.clear();
    }
  }

  SegmentedLog<Storage> log_;
  std::mutex log_mutex_;          // held by the writer for a whole batch, and by with_log
  mutable std::mutex mutex_;      // guards everything below
  std::condition_variable work_;  // the writer waits for requests
  std::condition_variable done_;  // callers wait for their batch
  std::vector<Request*> queue_;
  std::exception_ptr failure_;
  std::uint64_t durable_index_ = 0;
  std::uint64_t syncs_ = 0;
  bool stopping_ = false;
  bool writer_idle_ = false;
  std::mutex join_mutex_;
  std::thread writer_;
};

}  // namespace pods

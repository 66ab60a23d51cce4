// pods/storage/faulty_storage.hpp — FaultyStorage, a SegmentStorage test double that fails on cue
//
// Problem:       A log's failure paths run when a disk is full, a device returns EIO, a write
//                lands only in part or an fsync fails, and a real disk does none of these on
//                demand. Worse, after a failed fsync a kernel may mark the dirty pages clean
//                without writing them: the bytes stay readable in the page cache, the next
//                fsync succeeds, and they are lost at the next power cut. Code that retries
//                (or reopens and syncs again) then believes never-durable bytes are durable.
// Solution:      A decorator over another SegmentStorage (MemoryStorage by default). A test
//                arms a fault for the Nth coming call of one operation (fail_at): EIO or
//                ENOSPC before the call takes effect, EIO after it took effect (an unlink that
//                succeeded before the directory fsync failed), a short write (a prefix of the
//                bytes lands, then ENOSPC), or a size() that reports more bytes than reads
//                return. With drop_pages_on_failed_sync(true), a failed sync models the
//                kernel: the bytes that sync should have made durable stay readable, a later
//                sync "succeeds", and crash() turns them into zeros, as a disk that never got
//                those pages would show them.
// Guarantees:    Calls that are not failed are forwarded unchanged; a fault fires exactly once,
//                on the Nth matching call counted from when it was armed. Copies share the
//                armed faults and the counters (a test keeps one copy, the log another).
// Not provided:  Realistic timing; faults in the middle of a call other than short writes.
// Thread safety: thread-safe when the inner storage is: the fault table is locked per call.
// Errors:        An injected fault throws std::system_error (EIO or ENOSPC) whose message
//                names the operation and the segment and says it was injected. fail_at with
//                nth == 0 throws std::invalid_argument naming nth.
// Cost:          A mutex lock and a scan of the armed faults per call: a test double only.
// Example:
//   pods::MemoryStorage memory;
//   pods::FaultyStorage faulty(memory);
//   faulty.drop_pages_on_failed_sync(true);
//   pods::SegmentedLog log(faulty);
//   log.append(a); log.sync();                                 // durable
//   faulty.fail_at(pods::FaultyStorage<>::Op::sync, 1);        // the next sync fails with EIO
//   log.append(b); // log.sync() throws std::system_error; entry b was never durable
// Example context: #include <pods/storage/segmented_log_core.hpp>
// Example context: std::vector<std::byte> a(8), b(8);
#pragma once

#include <pods/policy/storage.hpp>
#include <pods/storage/memory_storage.hpp>

#include <algorithm>
#include <cerrno>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace pods {

template <SegmentStorage Inner = MemoryStorage>
class FaultyStorage {
 public:
  // The operations a fault can be armed for.
  enum class Op { list, create, append, read, size, sync, truncate, remove };
  // What an armed fault does to the call it fires on.
  enum class Fault {
    eio,          // throws EIO; the call has no effect
    enospc,       // throws ENOSPC; the call has no effect
    eio_after,    // the call takes effect, then throws EIO
    short_write,  // append only: the first half of the bytes land, then ENOSPC
    oversize,     // size only: reports 8 bytes more than reads can return
  };

  // Wraps `inner` (a handle: the test may keep another copy of it).
  explicit FaultyStorage(Inner inner = Inner())
      : state_(std::make_shared<State>(std::move(inner))) {}

  // Arms `fault` for the `nth` coming call of `op` (1: the next one). Several faults may be
  // armed at once. Throws std::invalid_argument naming nth when it is 0.
  void fail_at(Op op, std::uint64_t nth, Fault fault = Fault::eio) {
    if (nth == 0) throw std::invalid_argument("FaultyStorage::fail_at: nth must be at least 1");
    std::lock_guard lock(state_->mutex);
    state_->armed.push_back({op, nth, fault});
  }

  // Disarms every fault not yet fired.
  void heal() {
    std::lock_guard lock(state_->mutex);
    state_->armed.clear();
  }

  // Turns the kernel model on or off: after a sync that fails by injection, the segment's
  // unsynced bytes stay readable but are never made durable (crash() zeroes them).
  void drop_pages_on_failed_sync(bool on) requires requires(const Inner& i, std::uint64_t id) {
    { i.synced_size(id) } -> std::convertible_to<std::uint64_t>;
  }
  {
    std::lock_guard lock(state_->mutex);
    state_->drop_pages = on;
  }

  // Returns how many calls of `op` were made (failed ones included).
  std::uint64_t calls(Op op) const {
    std::lock_guard lock(state_->mutex);
    return state_->calls[static_cast<std::size_t>(op)];
  }

  // Returns how many faults have fired.
  std::uint64_t faults_fired() const {
    std::lock_guard lock(state_->mutex);
    return state_->fired;
  }

  // Returns the largest out.size() any read asked for (a reader that trusts a damaged length
  // asks for gigabytes).
  std::size_t largest_read() const {
    std::lock_guard lock(state_->mutex);
    return state_->largest_read;
  }

  // Returns the wrapped storage.
  Inner& inner() noexcept { return state_->inner; }
  const Inner& inner() const noexcept { return state_->inner; }

  // Simulates a crash of the inner storage (its own crash(tear)), then zeroes every range of
  // bytes whose pages a failed sync dropped, where they survived. Disarms nothing.
  void crash(bool tear = false) requires
      requires(Inner& i, std::uint64_t id, std::span<const std::byte> b) {
    i.crash(tear);
    i.contents(id);
    i.put(id, b);
  }
  {
    std::lock_guard lock(state_->mutex);
    Inner& in = state_->inner;
    in.crash(tear);
    for (const auto& [id, ranges] : state_->dropped) {
      std::vector<std::byte> bytes = in.contents(id);
      for (const auto& [from, to] : ranges) {
        for (std::uint64_t k = from; k < to && k < bytes.size(); ++k)
          bytes[static_cast<std::size_t>(k)] = std::byte{0};
      }
      in.put(id, bytes);
    }
    state_->dropped.clear();
  }

  // SegmentStorage operations, forwarded to the inner storage unless a fault fires.
  std::vector<std::uint64_t> list() const {
    Fault f{};
    const bool hit = fire(Op::list, f);
    if (hit && f != Fault::eio_after) raise(f, "list", 0);
    auto ids = state_->inner.list();
    if (hit) raise(Fault::eio, "list", 0);
    return ids;
  }

  void create(std::uint64_t id) {
    Fault f{};
    const bool hit = fire(Op::create, f);
    if (hit && f != Fault::eio_after) raise(f, "create", id);
    state_->inner.create(id);
    if (hit) raise(Fault::eio, "create", id);
  }

  void append(std::uint64_t id, std::span<const std::byte> bytes) {
    Fault f{};
    const bool hit = fire(Op::append, f);
    if (hit && f == Fault::short_write) {
      state_->inner.append(id, bytes.first(bytes.size() / 2));
      raise(Fault::enospc, "append", id);
    }
    if (hit && f != Fault::eio_after) raise(f, "append", id);
    state_->inner.append(id, bytes);
    if (hit) raise(Fault::eio, "append", id);
  }

  std::size_t read(std::uint64_t id, std::uint64_t offset, std::span<std::byte> out) const {
    {
      std::lock_guard lock(state_->mutex);
      state_->largest_read = std::max(state_->largest_read, out.size());
    }
    Fault f{};
    const bool hit = fire(Op::read, f);
    if (hit && f != Fault::eio_after) raise(f, "read", id);
    const std::size_t n = state_->inner.read(id, offset, out);
    if (hit) raise(Fault::eio, "read", id);
    return n;
  }

  std::uint64_t size(std::uint64_t id) const {
    Fault f{};
    const bool hit = fire(Op::size, f);
    if (hit && f == Fault::oversize) return state_->inner.size(id) + 8;
    if (hit && f != Fault::eio_after) raise(f, "size", id);
    const std::uint64_t n = state_->inner.size(id);
    if (hit) raise(Fault::eio, "size", id);
    return n;
  }

  void sync(std::uint64_t id) {
    Fault f{};
    const bool hit = fire(Op::sync, f);
    if (hit && f != Fault::eio_after) {
      drop_unsynced(id);
      raise(f, "sync", id);
    }
    state_->inner.sync(id);
    if (hit) raise(Fault::eio, "sync", id);
  }

  void truncate(std::uint64_t id, std::uint64_t new_size) {
    Fault f{};
    const bool hit = fire(Op::truncate, f);
    if (hit && f != Fault::eio_after) raise(f, "truncate", id);
    state_->inner.truncate(id, new_size);
    {
      std::lock_guard lock(state_->mutex);
      auto it = state_->dropped.find(id);
      if (it != state_->dropped.end()) {
        for (auto& [from, to] : it->second)
          to = std::min(to, new_size);
      }
    }
    if (hit) raise(Fault::eio, "truncate", id);
  }

  void remove(std::uint64_t id) {
    Fault f{};
    const bool hit = fire(Op::remove, f);
    if (hit && f != Fault::eio_after) raise(f, "remove", id);
    state_->inner.remove(id);
    {
      std::lock_guard lock(state_->mutex);
      state_->dropped.erase(id);
    }
    if (hit) raise(Fault::eio, "remove", id);
  }

  std::string name(std::uint64_t id) const { return state_->inner.name(id); }

  // Forwarded when the inner storage has them (FileStorage): the path named in errors and
  // the single-writer claim.
  auto path(std::uint64_t id) const requires requires(const Inner& i) { i.path(id); }
  { return state_->inner.path(id); }
  void acquire_writer() requires requires(Inner& i) { i.acquire_writer(); }
  { state_->inner.acquire_writer(); }
  void release_writer() noexcept requires requires(Inner& i) { i.release_writer(); }
  { state_->inner.release_writer(); }

 private:
  struct Armed {
    Op op;
    std::uint64_t countdown;
    Fault fault;
  };
  struct State {
    explicit State(Inner i) : inner(std::move(i)) {}
    Inner inner;
    mutable std::mutex mutex;
    std::vector<Armed> armed;
    std::uint64_t calls[8] = {};
    std::uint64_t fired = 0;
    std::size_t largest_read = 0;
    bool drop_pages = false;
    std::map<std::uint64_t, std::vector<std::pair<std::uint64_t, std::uint64_t>>> dropped;
  };

  // Counts a call of `op` and returns true (with the fault) when an armed fault fires on it.
  bool fire(Op op, Fault& fault) const {
    std::lock_guard lock(state_->mutex);
    ++state_->calls[static_cast<std::size_t>(op)];
    auto& armed = state_->armed;
    bool hit = false;
    for (auto it = armed.begin(); it != armed.end();) {
      if (it->op == op && --it->countdown == 0) {
        if (!hit) {
          hit = true;
          fault = it->fault;
          ++state_->fired;
        }
        it = armed.erase(it);
      } else {
        ++it;
      }
    }
    return hit;
  }

  // Records, in the kernel model, the unsynced bytes of segment `id` as dropped pages.
  void drop_unsynced(std::uint64_t id) {
    if constexpr (requires(const Inner& i) { i.synced_size(id); }) {
      std::lock_guard lock(state_->mutex);
      if (!state_->drop_pages) return;
      const std::uint64_t from = state_->inner.synced_size(id);
      const std::uint64_t to = state_->inner.size(id);
      if (from < to) state_->dropped[id].push_back({from, to});
    }
  }

  [[noreturn]] void raise(Fault f, const char* operation, std::uint64_t id) const {
    const int err = f == Fault::enospc ? ENOSPC : EIO;
    throw std::system_error(err, std::generic_category(),
                            std::string("FaultyStorage: injected ") +
                                (err == ENOSPC ? "ENOSPC" : "EIO") + " in " + operation + " " +
                                (id != 0 ? state_->inner.name(id) : std::string("(all)")));
  }

  std::shared_ptr<State> state_;
};
static_assert(SegmentStorage<FaultyStorage<>>);

}  // namespace pods

// pods/storage/file_storage.hpp — FileStorage, the default SegmentStorage: one file per segment
//
// Problem:       A log must survive a crash: bytes it acknowledged as durable must be on the
//                medium, a segment it created or removed must stay created or removed, and two
//                processes appending to the same directory would interleave their records.
// Solution:      Each segment is a file in one directory, named by its id zero-padded to 20
//                digits plus ".log". Appends go into a 64 KiB user-space buffer and reach the
//                kernel with write(2) when it fills (or on sync/read/truncate), so a 100-byte
//                append is a memcpy. sync() writes the buffer and calls fdatasync. create()
//                and remove() fsync the directory, truncate() fdatasyncs the file, so each is
//                durable when it returns. A lock file ("LOCK", flock(2)) held for the
//                storage's lifetime stops a second FileStorage opening the same directory.
// Guarantees:    As the SegmentStorage concept: bytes appended to a segment are durable when
//                sync(id) returns; create, truncate and remove are durable on return. Bytes
//                appended but not synced reach the kernel at the latest when the last copy of
//                the storage is destroyed (so a clean exit keeps them; a power cut may not).
//                A relative directory is made absolute when the storage is constructed, so a
//                later chdir() does not move it. acquire_writer() lets one SegmentedLog claim
//                the storage: a second log on a copy of it is refused.
// Not provided:  Durability without sync(); sharing a directory between processes (the second
//                one fails to open); protection against other programs editing the files.
// Thread safety: thread-compatible. FileStorage is a cheap handle: copies share the open
//                files, the buffer and the lock, and count as ONE object, so mutation through
//                any copy needs external synchronisation; const calls (list, read, size, name)
//                may run concurrently with each other. A moved-from FileStorage holds nothing:
//                name() still works, directory() is empty, every other call throws
//                std::logic_error; assigning a storage to it makes it usable again.
// Errors:        An empty directory path throws std::invalid_argument naming `dir`. A directory
//                locked by another FileStorage throws std::system_error (EBUSY) naming the
//                directory. Every failed system call throws std::system_error naming the
//                operation and the path ("FileStorage: fdatasync /data/log/000…1.log: ...").
//                A write(2) that makes no progress throws EIO. After an I/O error the
//                segment's state is unknown: reopen the storage. Errors the destructor of
//                the last copy meets (writing out unsynced appends, close(2)) cannot be
//                thrown: each is counted (deferred_errors(), process-wide) and passed to the
//                handler set with set_error_handler (by default a line on stderr).
// Cost:          append: a memcpy, plus one write(2) per 64 KiB. sync: write(2) + fdatasync.
//                create/remove: one fsync of the file and one of the directory. One open file
//                descriptor per segment touched; one 64 KiB buffer per storage.
// Example:
//   pods::FileStorage storage("/var/lib/app/log");        // creates the directory, takes the lock
//   storage.create(1);
//   storage.append(1, std::as_bytes(std::span(std::string_view("hello"))));
//   storage.sync(1);                                       // now durable
#pragma once

#include <pods/policy/storage.hpp>

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
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

class FileStorage {
 public:
  // The size of the user-space append buffer.
  static constexpr std::size_t buffer_bytes = 64 << 10;

  // Receives an error the storage could not throw (from the destructor of its last copy).
  using ErrorHandler = void (*)(const std::system_error& error) noexcept;

  // Opens (creating it if missing) the directory `dir` and takes its lock file. Allocates the
  // shared state and the 64 KiB buffer. Throws std::invalid_argument naming `dir` when it is
  // empty, std::system_error naming the directory when it cannot be created or opened or when
  // another FileStorage holds its lock.
  explicit FileStorage(std::filesystem::path dir) : state_(std::make_shared<State>()) {
    if (dir.empty()) throw std::invalid_argument("FileStorage: dir must not be an empty path");
    State& s = state();
    std::error_code ec;
    s.dir = std::filesystem::absolute(dir, ec);
    if (ec) throw std::system_error(ec, "FileStorage: resolve directory " + dir.string());
    const bool created = std::filesystem::create_directories(s.dir, ec);
    if (ec) throw std::system_error(ec, "FileStorage: create directory " + s.dir.string());
    s.dir_fd = ::open(s.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s.dir_fd < 0) fail(errno, "open directory", s.dir);
    if (created) {
      sync_directory(s.dir_fd, s.dir);
      const std::filesystem::path parent = s.dir.parent_path();
      const int parent_fd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      if (parent_fd >= 0) {  // best effort: the new directory's entry in its parent
        ::fsync(parent_fd);
        ::close(parent_fd);
      }
    }
    const std::filesystem::path lock = s.dir / "LOCK";
    s.lock_fd = ::open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s.lock_fd < 0) fail(errno, "open lock file", lock);
    if (::flock(s.lock_fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      if (err == EWOULDBLOCK) {
        throw std::system_error(std::make_error_code(std::errc::device_or_resource_busy),
                                "FileStorage: directory " + s.dir.string() +
                                    " is in use by another FileStorage (its lock file " +
                                    lock.string() + " is held)");
      }
      fail(err, "lock", lock);
    }
    s.buffer = std::make_unique<std::byte[]>(buffer_bytes);
  }

  // Returns the directory holding the segments, as an absolute path (empty when moved from).
  const std::filesystem::path& directory() const noexcept {
    static const std::filesystem::path none;
    return state_ ? state_->dir : none;
  }

  // Returns the path of the segment file with id `id`. Allocates.
  std::filesystem::path path(std::uint64_t id) const { return state().dir / segment_file_name(id); }

  // Claims the storage for one writer (SegmentedLog calls this on open). Throws
  // std::system_error (EBUSY) naming the directory when a writer already holds the claim, for
  // example a second log opened on a copy of this storage.
  void acquire_writer() {
    State& s = state();
    std::lock_guard lock(s.mutex);
    if (s.writer) {
      throw std::system_error(std::make_error_code(std::errc::device_or_resource_busy),
                              "FileStorage: directory " + s.dir.string() +
                                  " already has a log writing to it (a second log on a copy of "
                                  "the same FileStorage would lose synced entries)");
    }
    s.writer = true;
  }

  // Ends the claim of acquire_writer.
  void release_writer() noexcept {
    if (!state_) return;
    std::lock_guard lock(state_->mutex);
    state_->writer = false;
  }

  // Sets the handler of errors the destructor of the last copy meets (nullptr: the default,
  // a line on stderr). Copies share it.
  void set_error_handler(ErrorHandler handler) { state().on_error = handler; }

  // Returns how many errors FileStorage destructors met and could not throw, process-wide.
  static std::uint64_t deferred_errors() noexcept {
    return deferred_error_count().load(std::memory_order_relaxed);
  }

  // Returns the segment file name of `id` (for error messages). Allocates.
  std::string name(std::uint64_t id) const { return segment_file_name(id); }

  // Returns the ids of the segment files in the directory, ascending; other files are ignored.
  // Allocates. Throws std::system_error naming the directory when it cannot be listed.
  std::vector<std::uint64_t> list() const {
    std::vector<std::uint64_t> ids;
    std::error_code ec;
    const State& s = state();
    for (std::filesystem::directory_iterator it(s.dir, ec), end; !ec && it != end;
         it.increment(ec)) {
      if (auto id = parse_segment_file_name(it->path().filename().native())) ids.push_back(*id);
    }
    if (ec) throw std::system_error(ec, "FileStorage: list directory " + s.dir.string());
    std::sort(ids.begin(), ids.end());
    return ids;
  }

  // Creates the empty segment file `id` and fsyncs it and the directory, so it exists after a
  // crash. Throws std::system_error naming the path if it exists or cannot be created.
  void create(std::uint64_t id) {
    State& s = state();
    const std::filesystem::path p = path(id);
    const int fd = ::open(p.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) fail(errno, "create", p);
    {
      std::lock_guard lock(s.mutex);
      s.segments[id] = Segment{fd, 0, p};
    }
    if (::fsync(fd) != 0) fail(errno, "fsync", p);
    sync_directory(s.dir_fd, s.dir);
  }

  // Appends `bytes` to segment `id` through the user-space buffer (write(2) when it fills).
  // Does not retain `bytes`. Not durable until sync(id). Throws std::system_error naming the
  // path on a failed write or when the segment does not exist.
  void append(std::uint64_t id, std::span<const std::byte> bytes) {
    State& s = state();
    if (s.active == nullptr || s.active_id != id) [[unlikely]]
      activate(id);
    if (bytes.size() <= buffer_bytes - s.used) [[likely]] {
      if (!bytes.empty()) std::memcpy(s.buffer.get() + s.used, bytes.data(), bytes.size());
      s.used += bytes.size();
      return;
    }
    append_slow(bytes);
  }

  // Copies up to out.size() bytes of segment `id` from `offset` into `out`, buffered bytes
  // included, and returns how many it copied. Never allocates after the segment's first use.
  // Throws std::system_error naming the path on a failed open or read.
  std::size_t read(std::uint64_t id, std::uint64_t offset, std::span<std::byte> out) const {
    State& s = state();
    Segment& seg = open_segment(id);
    std::size_t done = 0;
    if (offset < seg.written) {
      const std::size_t want =
          static_cast<std::size_t>(std::min<std::uint64_t>(out.size(), seg.written - offset));
      while (done < want) {
        const ssize_t n =
            ::pread(seg.fd, out.data() + done, want - done, static_cast<off_t>(offset + done));
        if (n < 0) {
          if (errno == EINTR) continue;
          fail(errno, "read", seg.path);
        }
        if (n == 0) break;
        done += static_cast<std::size_t>(n);
      }
      if (done < want) return done;
    }
    if (s.active == &seg && done < out.size()) {
      const std::uint64_t at = offset + done;
      if (at < seg.written + s.used) {
        const std::size_t from = static_cast<std::size_t>(at - seg.written);
        const std::size_t n = std::min(out.size() - done, s.used - from);
        std::memcpy(out.data() + done, s.buffer.get() + from, n);
        done += n;
      }
    }
    return done;
  }

  // Returns the length of segment `id`, buffered bytes included. Throws std::system_error
  // naming the path when the segment does not exist.
  std::uint64_t size(std::uint64_t id) const {
    const State& s = state();
    if (s.active != nullptr && s.active_id == id) return s.active->written + s.used;
    return open_segment(id).written;
  }

  // Writes the buffered bytes of segment `id` and fdatasyncs its file: every byte appended so
  // far is durable on return. Throws std::system_error naming the path on failure.
  void sync(std::uint64_t id) {
    State& s = state();
    Segment* seg = (s.active != nullptr && s.active_id == id) ? s.active : &open_segment(id);
    if (seg == s.active) flush_buffer();
    if (::fdatasync(seg->fd) != 0) fail(errno, "fdatasync", seg->path);
  }

  // Hands the buffered bytes to the kernel with write(2) (not durable: use sync for that).
  // Throws std::system_error naming the path on a failed write.
  void flush() {
    if (state().active != nullptr) flush_buffer();
  }

  // Cuts segment `id` to `new_size` bytes; durable on return (ftruncate + fdatasync; no system
  // call when only buffered bytes are cut). Throws std::invalid_argument naming new_size when
  // it exceeds the segment's size, std::system_error naming the path on failure.
  void truncate(std::uint64_t id, std::uint64_t new_size) {
    State& s = state();
    const std::uint64_t current = size(id);
    if (new_size > current) {
      throw std::invalid_argument("FileStorage::truncate: new_size " + std::to_string(new_size) +
                                  " exceeds the size " + std::to_string(current) + " of " +
                                  path(id).string());
    }
    Segment& seg = open_segment(id);
    if (s.active == &seg) {
      if (new_size >= seg.written) {
        s.used = static_cast<std::size_t>(new_size - seg.written);
        return;
      }
      s.used = 0;
    }
    if (::ftruncate(seg.fd, static_cast<off_t>(new_size)) != 0) fail(errno, "truncate", seg.path);
    seg.written = new_size;
    if (::fdatasync(seg.fd) != 0) fail(errno, "fdatasync", seg.path);
  }

  // Deletes segment `id` (its buffered bytes are discarded) and fsyncs the directory; durable
  // on return. Throws std::system_error naming the path on failure.
  void remove(std::uint64_t id) {
    State& s = state();
    const std::filesystem::path p = path(id);
    {
      std::lock_guard lock(s.mutex);
      auto it = s.segments.find(id);
      if (it != s.segments.end()) {
        if (s.active == &it->second) {
          s.active = nullptr;
          s.used = 0;
        }
        const int closed = ::close(it->second.fd);
        const int err = errno;
        s.segments.erase(it);
        if (closed != 0 && err != EINTR) fail(err, "close", p);
      }
    }
    if (::unlink(p.c_str()) != 0) fail(errno, "remove", p);
    sync_directory(s.dir_fd, s.dir);
  }

 private:
  struct Segment {
    int fd = -1;
    std::uint64_t written = 0;  // bytes handed to the kernel: the file's size
    std::filesystem::path path;
  };

  struct State {
    std::filesystem::path dir;
    int dir_fd = -1;
    int lock_fd = -1;
    std::mutex mutex;  // guards `segments` (opening and closing files)
    std::map<std::uint64_t, Segment> segments;
    std::uint64_t active_id = 0;  // the segment whose appends sit in `buffer`
    Segment* active = nullptr;
    std::unique_ptr<std::byte[]> buffer;
    std::size_t used = 0;
    bool writer = false;  // a log holds the writer claim
    ErrorHandler on_error = nullptr;

    State() = default;
    State(const State&) = delete;
    State& operator=(const State&) = delete;
    ~State() {
      if (active != nullptr && used > 0) {  // a clean shutdown keeps unsynced appends
        const std::byte* p = buffer.get();
        std::size_t left = used;
        while (left > 0) {
          const ssize_t n = ::pwrite(active->fd, p, left, static_cast<off_t>(active->written));
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            report(n < 0 ? errno : EIO, "write (closing)", active->path);
            break;
          }
          p += n;
          left -= static_cast<std::size_t>(n);
          active->written += static_cast<std::uint64_t>(n);
        }
      }
      for (auto& [id, seg] : segments) {
        if (::close(seg.fd) != 0 && errno != EINTR) report(errno, "close", seg.path);
      }
      if (dir_fd >= 0) ::close(dir_fd);
      if (lock_fd >= 0) ::close(lock_fd);  // releases the flock
    }

    // Counts an error met in the destructor and hands it to the handler.
    void report(int err, const char* operation, const std::filesystem::path& p) noexcept {
      deferred_error_count().fetch_add(1, std::memory_order_relaxed);
      try {
        const std::system_error e(err, std::generic_category(),
                                  std::string("FileStorage: ") + operation + " " + p.string());
        if (on_error != nullptr) {
          on_error(e);
        } else {
          std::fprintf(stderr, "pods: %s (unsynced appends may be lost)\n", e.what());
        }
      } catch (...) {  // building the message ran out of memory: the count still says it
      }
    }
  };

  static std::atomic<std::uint64_t>& deferred_error_count() noexcept {
    static std::atomic<std::uint64_t> count{0};
    return count;
  }

  // Returns the shared state. Throws std::logic_error for a moved-from storage.
  State& state() const {
    if (!state_) [[unlikely]] {
      throw std::logic_error("FileStorage: use of a moved-from FileStorage");
    }
    return *state_;
  }

  [[noreturn]] static void fail(int err, const char* operation, const std::filesystem::path& p) {
    throw std::system_error(err, std::generic_category(),
                            std::string("FileStorage: ") + operation + " " + p.string());
  }

  static void sync_directory(int dir_fd, const std::filesystem::path& dir) {
    if (::fsync(dir_fd) != 0) fail(errno, "fsync directory", dir);
  }

  // Returns the open segment `id`, opening its file on first use.
  Segment& open_segment(std::uint64_t id) const {
    State& s = state();
    std::lock_guard lock(s.mutex);
    auto it = s.segments.find(id);
    if (it != s.segments.end()) return it->second;
    std::filesystem::path p = path(id);
    const int fd = ::open(p.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) fail(errno, "open", p);
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      const int err = errno;
      ::close(fd);
      fail(err, "stat", p);
    }
    return s.segments.emplace(id, Segment{fd, static_cast<std::uint64_t>(st.st_size), std::move(p)})
        .first->second;
  }

  void activate(std::uint64_t id) {
    State& s = state();
    if (s.active != nullptr) flush_buffer();
    Segment& seg = open_segment(id);
    s.active = &seg;
    s.active_id = id;
  }

  void write_all(Segment& seg, const std::byte* p, std::size_t n) {
    while (n > 0) {
      const ssize_t w = ::pwrite(seg.fd, p, n, static_cast<off_t>(seg.written));
      if (w < 0) {
        if (errno == EINTR) continue;
        fail(errno, "write", seg.path);
      }
      if (w == 0) fail(EIO, "write (no progress)", seg.path);
      p += w;
      n -= static_cast<std::size_t>(w);
      seg.written += static_cast<std::uint64_t>(w);
    }
  }

  void flush_buffer() {
    State& s = state();
    if (s.used == 0) return;
    const std::size_t n = s.used;
    s.used = 0;  // on failure the buffered bytes are dropped: the caller must reopen
    write_all(*s.active, s.buffer.get(), n);
  }

  void append_slow(std::span<const std::byte> bytes) {
    State& s = state();
    flush_buffer();
    if (bytes.size() >= buffer_bytes) {
      write_all(*s.active, bytes.data(), bytes.size());
    } else {
      std::memcpy(s.buffer.get(), bytes.data(), bytes.size());
      s.used = bytes.size();
    }
  }

  std::shared_ptr<State> state_;
};
static_assert(SegmentStorage<FileStorage>);

}  // namespace pods

#include <pods/storage/file_storage.hpp>

#include <catch2/catch.hpp>

#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "storage_fixtures.hpp"

using pods_test::bytes;
using pods_test::text;

// The test program interposes pwrite(2) and close(2): FileStorage's calls reach these
// definitions, which pass through to the kernel unless a test set a failure.
namespace {
std::atomic<int> pwrite_result{1};    // 1: real call; 0: return 0 (no progress); -1: fail EIO
std::atomic<int> close_fails_fd{-1};  // this descriptor's close(2) reports EIO (after closing)
std::atomic<int> handled_errors{0};

void count_error(const std::system_error&) noexcept {
  ++handled_errors;
}

// Returns the descriptor this process has open on `file`, or -1.
int fd_of(const std::filesystem::path& file) {
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    if (std::filesystem::read_symlink(e.path(), ec) == file) return std::stoi(e.path().filename());
  }
  return -1;
}
}  // namespace

extern "C" ssize_t pwrite(int fd, const void* buf, size_t n, off_t offset) {
  const int mode = pwrite_result.load();
  if (mode == 0) return 0;
  if (mode < 0) {
    errno = EIO;
    return -1;
  }
  return static_cast<ssize_t>(::syscall(SYS_pwrite64, fd, buf, n, offset));
}

extern "C" int close(int fd) {
  const int r = static_cast<int>(::syscall(SYS_close, fd));
  if (r == 0 && fd == close_fails_fd.load()) {
    close_fails_fd = -1;
    errno = EIO;
    return -1;
  }
  return r;
}

TEST_CASE("FileStorage: an empty directory path is refused, naming dir", "[file_storage]") {
  CHECK_THROWS_AS(pods::FileStorage(""), std::invalid_argument);
  CHECK_THROWS_WITH(pods::FileStorage(""), Catch::Contains("dir"));
}

TEST_CASE("FileStorage: creates the directory, nested, when missing", "[file_storage]") {
  pods_test::TempDir tmp;
  const auto dir = tmp.path() / "a" / "b" / "log";
  pods::FileStorage storage(dir);
  CHECK(std::filesystem::is_directory(dir));
  CHECK(storage.directory() == dir);
  storage.create(1);
  CHECK(std::filesystem::exists(dir / "00000000000000000001.log"));
  CHECK(storage.path(1) == dir / "00000000000000000001.log");
}

TEST_CASE("FileStorage: a second opener of the directory gets an error naming it",
          "[file_storage]") {
  pods_test::TempDir tmp;
  const auto dir = tmp.path() / "log";
  {
    pods::FileStorage first(dir);
    CHECK(std::filesystem::exists(dir / "LOCK"));
    CHECK_THROWS_AS(pods::FileStorage(dir), std::system_error);
    CHECK_THROWS_WITH(pods::FileStorage(dir),
                      Catch::Contains(dir.string()) && Catch::Contains("in use"));
    pods::FileStorage copy = first;  // a copy is the same handle, not a second opener
    copy.create(1);
    CHECK(first.list() == std::vector<std::uint64_t>{1});
  }
  pods::FileStorage again(dir);  // the lock went with the last copy
  CHECK(again.list() == std::vector<std::uint64_t>{1});
}

TEST_CASE("FileStorage: list ignores files that are not segments", "[file_storage]") {
  pods_test::TempDir tmp;
  pods::FileStorage storage(tmp.path());
  std::ofstream(tmp.path() / "notes.txt") << "x";
  std::ofstream(tmp.path() / "123.log") << "x";
  storage.create(12);
  CHECK(storage.list() == std::vector<std::uint64_t>{12});
}

TEST_CASE(
    "FileStorage: buffered appends reach the file by sync, by a read's flush-free view, "
    "and when the last copy goes",
    "[file_storage]") {
  pods_test::TempDir tmp;
  const auto file = tmp.path() / "00000000000000000001.log";
  {
    pods::FileStorage storage(tmp.path());
    storage.create(1);
    storage.append(1, bytes("abc"));
    CHECK(std::filesystem::file_size(file) == 0);  // still in the user-space buffer
    CHECK(storage.size(1) == 3);
    storage.sync(1);
    CHECK(std::filesystem::file_size(file) == 3);
    storage.append(1, bytes("def"));
    storage.flush();
    CHECK(std::filesystem::file_size(file) == 6);
    storage.append(1, bytes("ghi"));
    CHECK(std::filesystem::file_size(file) == 6);
  }
  CHECK(std::filesystem::file_size(file) == 9);  // written when the storage closed
  pods::FileStorage storage(tmp.path());
  std::vector<std::byte> out(9);
  CHECK(storage.read(1, 0, out) == 9);
  CHECK(text(out) == "abcdefghi");
}

TEST_CASE("FileStorage: truncate within the buffer and within the file", "[file_storage]") {
  pods_test::TempDir tmp;
  const auto file = tmp.path() / "00000000000000000001.log";
  pods::FileStorage storage(tmp.path());
  storage.create(1);
  storage.append(1, bytes("0123456789"));
  storage.sync(1);
  storage.append(1, bytes("abcdef"));
  storage.truncate(1, 13);  // only buffered bytes go: the file is untouched
  CHECK(std::filesystem::file_size(file) == 10);
  CHECK(storage.size(1) == 13);
  storage.truncate(1, 5);  // into the file
  CHECK(std::filesystem::file_size(file) == 5);
  storage.sync(1);
  CHECK(std::filesystem::file_size(file) == 5);
  storage.append(1, bytes("Z"));
  storage.sync(1);
  std::vector<std::byte> out(6);
  CHECK(storage.read(1, 0, out) == 6);
  CHECK(text(out) == "01234Z");
}

TEST_CASE("FileStorage: I/O errors throw system_error naming the operation and the path",
          "[file_storage]") {
  pods_test::TempDir tmp;
  SECTION("the directory path is a regular file") {
    const auto not_dir = tmp.path() / "plain";
    std::ofstream(not_dir) << "x";
    CHECK_THROWS_AS(pods::FileStorage(not_dir / "log"), std::system_error);
    CHECK_THROWS_WITH(pods::FileStorage(not_dir / "log"), Catch::Contains(not_dir.string()));
  }
  SECTION("a segment that does not exist") {
    pods::FileStorage storage(tmp.path());
    std::vector<std::byte> out(1);
    const std::string path = (tmp.path() / "00000000000000000007.log").string();
    CHECK_THROWS_AS(storage.read(7, 0, out), std::system_error);
    CHECK_THROWS_WITH(storage.read(7, 0, out), Catch::Contains("open") && Catch::Contains(path));
    CHECK_THROWS_WITH(storage.remove(7), Catch::Contains("remove") && Catch::Contains(path));
    try {
      storage.sync(7);
      FAIL("sync of a missing segment must throw");
    } catch (const std::system_error& e) {
      CHECK(e.code() == std::errc::no_such_file_or_directory);
    }
  }
  SECTION("creating a segment that exists") {
    pods::FileStorage storage(tmp.path());
    storage.create(3);
    CHECK_THROWS_WITH(storage.create(3),
                      Catch::Contains("create") && Catch::Contains("00000000000000000003.log"));
  }
}

TEST_CASE("FileStorage: a write(2) that makes no progress throws instead of looping",
          "[file_storage]") {
  pods_test::TempDir tmp;
  pods::FileStorage storage(tmp.path());
  storage.create(1);
  const std::vector<std::byte> big(pods::FileStorage::buffer_bytes + 1, std::byte{7});
  pwrite_result = 0;
  CHECK_THROWS_AS(storage.append(1, big), std::system_error);
  pwrite_result = 1;
  CHECK_THROWS_WITH(
      [&] {
        pwrite_result = 0;
        try {
          storage.append(1, big);
        } catch (...) {
          pwrite_result = 1;
          throw;
        }
        pwrite_result = 1;
      }(),
      Catch::Contains("write") && Catch::Contains("00000000000000000001.log"));
}

TEST_CASE("FileStorage: errors of the last copy's destructor are counted and handed to a handler",
          "[file_storage]") {
  pods_test::TempDir tmp;
  const std::uint64_t before = pods::FileStorage::deferred_errors();
  handled_errors = 0;
  SECTION("writing out unsynced appends") {
    {
      pods::FileStorage storage(tmp.path());
      storage.set_error_handler(&count_error);
      storage.create(1);
      storage.append(1, bytes("unsynced"));
      pwrite_result = -1;
    }
    pwrite_result = 1;
  }
  SECTION("closing a segment file") {
    {
      pods::FileStorage storage(tmp.path());
      storage.set_error_handler(&count_error);
      storage.create(1);
      close_fails_fd = fd_of(storage.path(1));
      REQUIRE(close_fails_fd >= 0);
    }
  }
  CHECK(handled_errors == 1);
  CHECK(pods::FileStorage::deferred_errors() == before + 1);
}

TEST_CASE("FileStorage: remove reports a failed close(2) naming the path", "[file_storage]") {
  pods_test::TempDir tmp;
  pods::FileStorage storage(tmp.path());
  storage.create(1);
  close_fails_fd = fd_of(storage.path(1));
  REQUIRE(close_fails_fd >= 0);
  CHECK_THROWS_WITH(storage.remove(1),
                    Catch::Contains("close") && Catch::Contains(storage.path(1).string()));
}

TEST_CASE("FileStorage: a relative directory keeps naming the same place after chdir",
          "[file_storage]") {
  pods_test::TempDir tmp;
  std::filesystem::create_directories(tmp.path() / "a");
  std::filesystem::create_directories(tmp.path() / "b");
  const std::filesystem::path cwd = std::filesystem::current_path();
  std::filesystem::current_path(tmp.path() / "a");
  pods::FileStorage storage("log");
  std::filesystem::current_path(tmp.path() / "b");
  storage.create(1);
  storage.append(1, bytes("here"));
  storage.sync(1);
  std::filesystem::current_path(cwd);
  CHECK(storage.directory().is_absolute());
  CHECK(storage.directory() == tmp.path() / "a" / "log");
  CHECK(std::filesystem::file_size(tmp.path() / "a" / "log" / "00000000000000000001.log") == 4);
  CHECK_FALSE(std::filesystem::exists(tmp.path() / "b" / "log"));
  CHECK(storage.list() == std::vector<std::uint64_t>{1});
}

TEST_CASE("FileStorage: a moved-from storage names segments and refuses every other call",
          "[file_storage]") {
  pods_test::TempDir tmp;
  pods::FileStorage storage(tmp.path());
  storage.create(1);
  pods::FileStorage moved = std::move(storage);
  CHECK(storage.name(1) == "00000000000000000001.log");
  CHECK(storage.directory().empty());
  CHECK_THROWS_AS(storage.list(), std::logic_error);
  CHECK_THROWS_WITH(storage.size(1), Catch::Contains("moved-from"));
  CHECK_THROWS_AS(storage.append(1, bytes("x")), std::logic_error);
  storage.release_writer();  // harmless
  CHECK(moved.list() == std::vector<std::uint64_t>{1});
  storage = moved;  // assigning makes it usable again
  CHECK(storage.list() == std::vector<std::uint64_t>{1});
}

TEST_CASE("FileStorage: one writer claim; a second is refused naming the directory",
          "[file_storage]") {
  pods_test::TempDir tmp;
  pods::FileStorage storage(tmp.path());
  pods::FileStorage copy = storage;
  storage.acquire_writer();
  CHECK_THROWS_AS(copy.acquire_writer(), std::system_error);
  CHECK_THROWS_WITH(copy.acquire_writer(), Catch::Contains(tmp.path().string()));
  storage.release_writer();
  copy.acquire_writer();
  copy.release_writer();
}

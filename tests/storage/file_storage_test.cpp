#include <pods/storage/file_storage.hpp>

#include <catch2/catch.hpp>

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

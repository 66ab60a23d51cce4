// Test helpers shared by the storage tests: byte conversions, a temporary directory, and a
// fixture per SegmentStorage model that opens (and reopens) a storage and edits its segments
// behind the log's back (corruption, raw bytes).
#pragma once

#include <pods/storage/file_storage.hpp>
#include <pods/storage/memory_storage.hpp>

#include <unistd.h>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace pods_test {

inline std::vector<std::byte> bytes(std::string_view s) {
  const auto* p = reinterpret_cast<const std::byte*>(s.data());
  return {p, p + s.size()};
}

inline std::string text(std::span<const std::byte> b) {
  return std::string(reinterpret_cast<const char*>(b.data()), b.size());
}

// A fresh directory under the system temp directory, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("pods_storage_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++) +
             "_" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

template <class Storage>
struct StorageFixture;

// MemoryStorage: every open() returns a copy sharing one store.
template <>
struct StorageFixture<pods::MemoryStorage> {
  pods::MemoryStorage store{7};
  pods::MemoryStorage open() { return store; }
  void corrupt(std::uint64_t id, std::uint64_t offset, std::byte mask = std::byte{0x01}) {
    store.corrupt(id, offset, mask);
  }
  void put(std::uint64_t id, std::span<const std::byte> b) { store.put(id, b); }
  std::vector<std::byte> contents(std::uint64_t id) { return store.contents(id); }
  // Returns the name CorruptionError gives segment `id`.
  std::string location(std::uint64_t id) { return pods::segment_file_name(id); }
};

// FileStorage: every open() opens the same directory again (the previous storage and all its
// copies must be gone); edits go straight to the files.
template <>
struct StorageFixture<pods::FileStorage> {
  TempDir dir;
  pods::FileStorage open() { return pods::FileStorage(dir.path() / "log"); }
  std::filesystem::path file(std::uint64_t id) {
    return dir.path() / "log" / pods::segment_file_name(id);
  }
  // Returns the name CorruptionError gives segment `id`: the file with its directory.
  std::string location(std::uint64_t id) { return file(id).string(); }
  void corrupt(std::uint64_t id, std::uint64_t offset, std::byte mask = std::byte{0x01}) {
    std::fstream f(file(id), std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    c = static_cast<char>(static_cast<unsigned char>(c) ^ std::to_integer<unsigned char>(mask));
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(c);
  }
  void put(std::uint64_t id, std::span<const std::byte> b) {
    std::filesystem::create_directories(dir.path() / "log");
    std::ofstream f(file(id), std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
  }
  std::vector<std::byte> contents(std::uint64_t id) {
    std::ifstream f(file(id), std::ios::binary);
    std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    const auto* p = reinterpret_cast<const std::byte*>(c.data());
    return {p, p + c.size()};
  }
};

}  // namespace pods_test

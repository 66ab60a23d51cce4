#include <pods/storage/crc32c.hpp>

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string_view>
#include <vector>

TEST_CASE("crc32c: the standard check value, with the table and with the instruction", "[crc32c]") {
  const std::string_view check = "123456789";
  CHECK(pods::crc32c(check.data(), check.size()) == 0xE3069283u);
  CHECK(pods::crc32c_portable(check.data(), check.size()) == 0xE3069283u);
  CHECK(pods::crc32c_hardware(check.data(), check.size()) == 0xE3069283u);
  CHECK(pods::crc32c(nullptr, 0) == 0u);
}

TEST_CASE("crc32c: the RFC 3720 (iSCSI) test vectors", "[crc32c]") {
  std::vector<unsigned char> zeros(32, 0x00), ones(32, 0xFF), up(32), down(32);
  for (int i = 0; i < 32; ++i) {
    up[static_cast<std::size_t>(i)] = static_cast<unsigned char>(i);
    down[static_cast<std::size_t>(i)] = static_cast<unsigned char>(31 - i);
  }
  for (auto f : {&pods::crc32c_portable, &pods::crc32c_hardware}) {
    CHECK(f(zeros.data(), 32, 0) == 0x8A9136AAu);
    CHECK(f(ones.data(), 32, 0) == 0x62A8AB43u);
    CHECK(f(up.data(), 32, 0) == 0x46DD794Eu);
    CHECK(f(down.data(), 32, 0) == 0x113FDB5Cu);
  }
}

TEST_CASE("crc32c: the instruction and the table agree on random data, lengths and alignments",
          "[crc32c]") {
  INFO("hardware CRC32 available: " << pods::crc32c_hardware_available());
  std::mt19937_64 random(20240601);
  std::vector<unsigned char> data(5000);
  for (auto& b : data)
    b = static_cast<unsigned char>(random());
  for (int trial = 0; trial < 2000; ++trial) {
    const std::size_t offset = random() % 16;
    const std::size_t length = random() % (data.size() - offset);
    const std::uint32_t seed = trial % 3 == 0 ? 0u : static_cast<std::uint32_t>(random());
    const std::uint32_t hw = pods::crc32c_hardware(data.data() + offset, length, seed);
    const std::uint32_t sw = pods::crc32c_portable(data.data() + offset, length, seed);
    REQUIRE(hw == sw);
    REQUIRE(pods::crc32c(data.data() + offset, length, seed) == sw);
  }
}

TEST_CASE("crc32c: extending a checksum equals checksumming the concatenation", "[crc32c]") {
  std::mt19937_64 random(7);
  std::vector<std::byte> data(777);
  for (auto& b : data)
    b = static_cast<std::byte>(random());
  const std::uint32_t whole = pods::crc32c(data);
  for (std::size_t cut :
       {std::size_t{0}, std::size_t{1}, std::size_t{8}, std::size_t{300}, data.size()}) {
    const std::span<const std::byte> all(data);
    CHECK(pods::crc32c(all.subspan(cut), pods::crc32c(all.first(cut))) == whole);
    CHECK(pods::crc32c_portable(data.data() + cut, data.size() - cut,
                                pods::crc32c_portable(data.data(), cut)) == whole);
  }
  // A single flipped bit changes the checksum.
  data[100] ^= std::byte{0x08};
  CHECK(pods::crc32c(data) != whole);
}

TEST_CASE("crc32c: the interleaved lanes give the table's value around every lane boundary",
          "[crc32c]") {
  INFO("hardware CRC32 available: " << pods::crc32c_hardware_available());
  std::mt19937_64 random(99);
  std::vector<unsigned char> data(64 * 1024 + 64);
  for (auto& b : data)
    b = static_cast<unsigned char>(random());
  constexpr std::size_t block = 3 * 256;  // three lanes of 256 bytes
  std::vector<std::size_t> lengths = {data.size() - 64, 4096, 4096 + 8};
  for (std::size_t k = 1; k <= 6; ++k) {
    for (std::size_t delta = 0; delta < 17; ++delta) {
      lengths.push_back(k * block + delta);
      lengths.push_back(k * block - delta);
    }
  }
  for (const std::size_t length : lengths) {
    for (std::size_t offset = 0; offset < 9; ++offset) {
      const std::uint32_t seed = static_cast<std::uint32_t>(random());
      INFO("length " << length << " offset " << offset);
      REQUIRE(pods::crc32c_hardware(data.data() + offset, length, seed) ==
              pods::crc32c_portable(data.data() + offset, length, seed));
    }
  }
  // A flipped bit in each lane of a block changes the checksum.
  const std::uint32_t whole = pods::crc32c(data.data(), block);
  for (const std::size_t at : {std::size_t{5}, std::size_t{300}, std::size_t{700}}) {
    data[at] ^= 0x10;
    CHECK(pods::crc32c(data.data(), block) != whole);
    data[at] ^= 0x10;
  }
}

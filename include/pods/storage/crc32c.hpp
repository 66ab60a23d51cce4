// pods/storage/crc32c.hpp — CRC32C (Castagnoli) checksums for stored records
//
// Problem:       A record read back from disk may be torn (a crash wrote part of it) or rotted
//                (a bit flipped on the medium); without a checksum the log would hand those
//                bytes to the application as if they were what it wrote.
// Solution:      Each record carries the CRC32C of its bytes. On x86-64 CPUs with SSE4.2 the
//                CRC32 instruction computes it eight bytes per instruction; it is detected
//                at run time, so one binary runs everywhere. From 768 bytes on, three lanes
//                of 256 bytes run side by side (each CRC32 waits for the one before it in
//                its lane, not for the other lanes) and are joined by a table that advances
//                a state past 256 zero bytes (CRC is linear, so this is exact). Elsewhere a
//                portable slicing-by-8 table computes the same value eight bytes per step.
// Guarantees:    crc32c("123456789") == 0xE3069283 (the standard check value); the hardware
//                and the table give bit-identical results for every input and alignment;
//                crc32c(b, crc32c(a)) == crc32c(a + b) (checksums can be extended).
// Not provided:  Protection against deliberate tampering (it is not a cryptographic hash).
// Thread safety: thread-safe (pure functions; the CPU check runs once).
// Errors:        none; nothing here throws.
// Cost:          O(n): with SSE4.2 about 8 bytes per 3 cycles below 768 bytes, up to three
//                times that above (two table look-ups of 4 loads per 768 bytes join the
//                lanes); the table about 1 byte per cycle. No allocation.
// Example:
//   std::string_view s = "123456789";
//   std::uint32_t c = pods::crc32c(s.data(), s.size());   // 0xE3069283
//   c = pods::crc32c(more.data(), more.size(), c);         // the CRC of s + more
// Example context: std::string_view more = "more";
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#if defined(__x86_64__) || defined(__i386__)
#include <nmmintrin.h>
#define PODS_CRC32C_X86 1
#else
#define PODS_CRC32C_X86 0
#endif

namespace pods {
namespace detail {

inline constexpr std::uint32_t kCrc32cPolynomial = 0x82F63B78u;  // reflected Castagnoli

// Builds the eight 256-entry tables of slicing-by-8: table[0] is the byte-at-a-time table,
// table[k][b] is the CRC state after byte b followed by k zero bytes.
constexpr std::array<std::array<std::uint32_t, 256>, 8> make_crc32c_tables() {
  std::array<std::array<std::uint32_t, 256>, 8> t{};
  for (std::uint32_t i = 0; i < 256; ++i) {
    std::uint32_t c = i;
    for (int bit = 0; bit < 8; ++bit)
      c = (c & 1u) ? (c >> 1) ^ kCrc32cPolynomial : c >> 1;
    t[0][i] = c;
  }
  for (std::size_t k = 1; k < 8; ++k) {
    for (std::size_t i = 0; i < 256; ++i)
      t[k][i] = (t[k - 1][i] >> 8) ^ t[0][t[k - 1][i] & 0xFFu];
  }
  return t;
}

inline constexpr auto kCrc32cTables = make_crc32c_tables();

inline std::uint32_t load_le32(const unsigned char* p) noexcept {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

// Advances the raw (not inverted) CRC state over n bytes with the slicing-by-8 table.
inline std::uint32_t crc32c_update_portable(std::uint32_t state, const unsigned char* p,
                                            std::size_t n) noexcept {
  const auto& t = kCrc32cTables;
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0) {
    state = t[0][(state ^ *p++) & 0xFFu] ^ (state >> 8);
    --n;
  }
  while (n >= 8) {
    const std::uint32_t lo = state ^ load_le32(p);
    const std::uint32_t hi = load_le32(p + 4);
    state = t[7][lo & 0xFFu] ^ t[6][(lo >> 8) & 0xFFu] ^ t[5][(lo >> 16) & 0xFFu] ^ t[4][lo >> 24] ^
            t[3][hi & 0xFFu] ^ t[2][(hi >> 8) & 0xFFu] ^ t[1][(hi >> 16) & 0xFFu] ^ t[0][hi >> 24];
    p += 8;
    n -= 8;
  }
  while (n > 0) {
    state = t[0][(state ^ *p++) & 0xFFu] ^ (state >> 8);
    --n;
  }
  return state;
}

// Returns a * b modulo the Castagnoli polynomial, both in the reflected bit order of the CRC
// state (bit 31 is the coefficient of x^0).
constexpr std::uint32_t crc32c_multiply(std::uint32_t a, std::uint32_t b) noexcept {
  std::uint32_t product = 0;
  for (int i = 0; i < 32; ++i) {
    if ((a >> (31 - i)) & 1u) product ^= b;
    b = (b & 1u) ? (b >> 1) ^ kCrc32cPolynomial : b >> 1;  // b * x
  }
  return product;
}

inline constexpr std::size_t crc32c_lane_bytes = 256;  // one lane of the interleaved hardware CRC

// Builds the byte tables of "advance a raw state past crc32c_lane_bytes zero bytes", which is
// multiplying it by x^(8 * crc32c_lane_bytes): table[k][b] is the product for b << 8k.
constexpr std::array<std::array<std::uint32_t, 256>, 4> make_crc32c_lane_shift() {
  std::uint32_t power = 0x80000000u;  // x^0
  for (std::size_t bit = 0; bit < 8 * crc32c_lane_bytes; ++bit)
    power = (power & 1u) ? (power >> 1) ^ kCrc32cPolynomial : power >> 1;
  std::array<std::array<std::uint32_t, 256>, 4> t{};
  for (std::size_t k = 0; k < 4; ++k) {
    for (std::uint32_t b = 0; b < 256; ++b)
      t[k][b] = crc32c_multiply(b << (8 * k), power);
  }
  return t;
}
inline constexpr auto kCrc32cLaneShift = make_crc32c_lane_shift();

// Returns the raw state `state` advanced past crc32c_lane_bytes zero bytes.
constexpr std::uint32_t crc32c_shift_lane(std::uint32_t state) noexcept {
  const auto& t = kCrc32cLaneShift;
  return t[0][state & 0xFFu] ^ t[1][(state >> 8) & 0xFFu] ^ t[2][(state >> 16) & 0xFFu] ^
         t[3][state >> 24];
}

#if PODS_CRC32C_X86
// Advances the raw CRC state with the SSE4.2 CRC32 instruction. Call only when
// crc32c_hardware_available() is true.
__attribute__((target("sse4.2"))) inline std::uint32_t crc32c_update_sse42(std::uint32_t state,
                                                                           const unsigned char* p,
                                                                           std::size_t n) noexcept {
  while (n > 0 && (reinterpret_cast<std::uintptr_t>(p) & 7u) != 0) {
    state = _mm_crc32_u8(state, *p++);
    --n;
  }
#if defined(__x86_64__)
  // Three lanes of crc32c_lane_bytes each run side by side (the instruction's latency is three
  // times its issue interval); the lanes are joined by shifting the earlier states past the
  // later lanes' bytes.
  constexpr std::size_t lane = crc32c_lane_bytes;
  while (n >= 3 * lane) {
    std::uint64_t a = state, b = 0, c = 0;
    for (std::size_t i = 0; i < lane; i += 8) {
      std::uint64_t va, vb, vc;
      std::memcpy(&va, p + i, 8);
      std::memcpy(&vb, p + lane + i, 8);
      std::memcpy(&vc, p + 2 * lane + i, 8);
      a = _mm_crc32_u64(a, va);
      b = _mm_crc32_u64(b, vb);
      c = _mm_crc32_u64(c, vc);
    }
    const auto joined =
        crc32c_shift_lane(static_cast<std::uint32_t>(a)) ^ static_cast<std::uint32_t>(b);
    state = crc32c_shift_lane(joined) ^ static_cast<std::uint32_t>(c);
    p += 3 * lane;
    n -= 3 * lane;
  }
  std::uint64_t wide = state;
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    wide = _mm_crc32_u64(wide, v);
    p += 8;
    n -= 8;
  }
  state = static_cast<std::uint32_t>(wide);
#endif
  while (n >= 4) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    state = _mm_crc32_u32(state, v);
    p += 4;
    n -= 4;
  }
  while (n > 0) {
    state = _mm_crc32_u8(state, *p++);
    --n;
  }
  return state;
}
#endif

}  // namespace detail

// Returns true when this CPU has the SSE4.2 CRC32 instruction (checked once per process).
inline bool crc32c_hardware_available() noexcept {
#if PODS_CRC32C_X86
  static const bool available = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return available;
#else
  return false;
#endif
}

// Returns the CRC32C of `size` bytes at `data`, extending `crc` (the CRC32C of the bytes before
// them; 0 for none). Uses the CRC32 instruction when the CPU has it. Never allocates.
inline std::uint32_t crc32c(const void* data, std::size_t size, std::uint32_t crc = 0) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
#if PODS_CRC32C_X86
  if (crc32c_hardware_available()) return ~detail::crc32c_update_sse42(~crc, p, size);
#endif
  return ~detail::crc32c_update_portable(~crc, p, size);
}

// Returns the CRC32C of `data`, extending `crc`. Never allocates.
inline std::uint32_t crc32c(std::span<const std::byte> data, std::uint32_t crc = 0) noexcept {
  return crc32c(data.data(), data.size(), crc);
}

// Returns the CRC32C of `size` bytes computed with the portable table, whatever the CPU.
inline std::uint32_t crc32c_portable(const void* data, std::size_t size,
                                     std::uint32_t crc = 0) noexcept {
  return ~detail::crc32c_update_portable(~crc, static_cast<const unsigned char*>(data), size);
}

// Returns the CRC32C of `size` bytes computed with the CRC32 instruction. Call only when
// crc32c_hardware_available(); elsewhere it falls back to the table.
inline std::uint32_t crc32c_hardware(const void* data, std::size_t size,
                                     std::uint32_t crc = 0) noexcept {
#if PODS_CRC32C_X86
  if (crc32c_hardware_available()) {
    return ~detail::crc32c_update_sse42(~crc, static_cast<const unsigned char*>(data), size);
  }
#endif
  return crc32c_portable(data, size, crc);
}

}  // namespace pods

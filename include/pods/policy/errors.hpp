// pods/policy/errors.hpp — the error vocabulary of pods
//
// Problem:       Distributed code fails in two very different ways: expected outcomes that
//                the caller must handle on the normal path (a timeout, a stale generation,
//                a duplicate request) and real errors (corrupt bytes on disk, use after
//                close). Mixing them makes callers either ignore timeouts or catch everything.
// Solution:      Expected outcomes are values: `Errc` codes carried in `Outcome<T>`, which
//                mirrors std::expected<T, Errc>. Real errors are exceptions derived from
//                `pods::Error` (a std::runtime_error): CorruptionError names the file and
//                byte offset, ClosedError says the component was stopped, ClockOffsetError
//                carries the offending offset.
// Guarantees:    Every Errc has a stable name (to_string) and an std::error_code mapping.
//                Outcome<T> holds exactly one of a T or an Errc.
// Not provided:  Outcome does not throw on construction; value() on an error throws
//                BadOutcomeAccess.
// Thread safety: thread-compatible value types.
// Errors:        Outcome::value() throws BadOutcomeAccess when it holds an error.
// Cost:          Outcome<T> is a std::variant<T, Errc>: no allocation beyond T's own.
// Example:
//   pods::Outcome<int> r = pods::Errc::timeout;
//   if (!r) std::cerr << pods::to_string(r.error());   // "timeout"
//   throw pods::CorruptionError("00000000000000000001.log", 4096, "checksum mismatch");
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

namespace pods {

// Expected outcomes of an operation that can time out, be refused or lose a race.
enum class Errc : int {
  timeout = 1,       // no answer within the allowed time
  cancelled,         // the caller or the owner gave up on the request
  closed,            // the component was stopped before or while handling the request
  failed,            // the handler threw, or the peer answered with a failure
  stale_generation,  // the message carries an older generation (term, epoch) than ours
  not_leader,        // this node cannot serve the request; ask the leader
  duplicate,         // the request was seen before (idempotency)
  full,              // a bounded resource is at capacity; retry later
  no_quorum,         // too many responders failed for a quorum to be reached
  unknown_client,    // the client has no session (never registered, or expired)
  session_expired,   // the client's session expired for inactivity
  compacted,         // the history asked for was compacted away (a watch from an old revision)
};

// Returns the stable lower-case name of an Errc, e.g. "stale_generation".
constexpr std::string_view to_string(Errc e) noexcept {
  switch (e) {
    case Errc::timeout:
      return "timeout";
    case Errc::cancelled:
      return "cancelled";
    case Errc::closed:
      return "closed";
    case Errc::failed:
      return "failed";
    case Errc::stale_generation:
      return "stale_generation";
    case Errc::not_leader:
      return "not_leader";
    case Errc::duplicate:
      return "duplicate";
    case Errc::full:
      return "full";
    case Errc::no_quorum:
      return "no_quorum";
    case Errc::unknown_client:
      return "unknown_client";
    case Errc::session_expired:
      return "session_expired";
    case Errc::compacted:
      return "compacted";
  }
  return "unknown";
}

namespace detail {
class ErrcCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "pods"; }
  std::string message(int value) const override {
    return std::string(to_string(static_cast<Errc>(value)));
  }
};
}  // namespace detail

// Returns the std::error_category of pods::Errc (one instance per program).
inline const std::error_category& errc_category() noexcept {
  static const detail::ErrcCategory category;
  return category;
}

// Makes an std::error_code from an Errc (found by ADL, so `std::error_code ec = Errc::timeout`).
inline std::error_code make_error_code(Errc e) noexcept {
  return {static_cast<int>(e), errc_category()};
}

// The base of every exception pods throws itself (std::invalid_argument and std::system_error
// are used as they are).
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Stored data is corrupt: a checksum mismatch, an impossible length, bytes a codec rejects.
// The message names the file and the byte offset so an operator can look at it.
class CorruptionError : public Error {
 public:
  // Builds "corrupt data in <file> at offset <offset>: <detail>".
  CorruptionError(std::string file, std::uint64_t offset, const std::string& detail)
      : Error("corrupt data in " + file + " at offset " + std::to_string(offset) + ": " + detail),
        file_(std::move(file)),
        offset_(offset) {}

  // Returns the file (or segment name) holding the corrupt bytes.
  const std::string& file() const noexcept { return file_; }
  // Returns the byte offset of the corrupt record in that file.
  std::uint64_t offset() const noexcept { return offset_; }

 private:
  std::string file_;
  std::uint64_t offset_;
};

// The component was stopped or closed; the request was not accepted.
class ClosedError : public Error {
 public:
  explicit ClosedError(const std::string& what) : Error(what) {}
};

// A timestamp from another node is further ahead of the local physical clock than the
// configured maximum offset: one of the two clocks is broken, and accepting it would drag
// this node's time forward without bound.
class ClockOffsetError : public Error {
 public:
  // Builds "clock offset <offset> ns exceeds the maximum <max_offset> ns".
  ClockOffsetError(std::int64_t offset_ns, std::int64_t max_offset_ns)
      : Error("clock offset " + std::to_string(offset_ns) + " ns exceeds the maximum " +
              std::to_string(max_offset_ns) + " ns"),
        offset_ns_(offset_ns),
        max_offset_ns_(max_offset_ns) {}

  // Returns how far (ns) the received timestamp was ahead of the local physical clock.
  std::int64_t offset_ns() const noexcept { return offset_ns_; }
  // Returns the configured maximum offset (ns).
  std::int64_t max_offset_ns() const noexcept { return max_offset_ns_; }

 private:
  std::int64_t offset_ns_;
  std::int64_t max_offset_ns_;
};

// Outcome::value() was called on an Outcome holding an error.
class BadOutcomeAccess : public Error {
 public:
  explicit BadOutcomeAccess(Errc e)
      : Error("pods::Outcome holds the error " + std::string(to_string(e)) + ", not a value"),
        error_(e) {}
  Errc error() const noexcept { return error_; }

 private:
  Errc error_;
};

// Outcome<T>: a T or an Errc. Mirrors std::expected<T, Errc> (has_value, operator bool,
// value, operator*, operator->, error, value_or), so it can become an alias under C++23.
template <class T>
class [[nodiscard]] Outcome {
  static_assert(!std::is_same_v<std::remove_cv_t<T>, Errc>, "Outcome<Errc> is ambiguous");
  static_assert(!std::is_reference_v<T>, "Outcome<T&> is not supported");

 public:
  using value_type = T;
  using error_type = Errc;

  // Holds a value-initialised T.
  Outcome() requires std::is_default_constructible_v<T> : v_(std::in_place_index<0>) {}
  // Holds `value`.
  Outcome(T value) : v_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  // Holds the error `e`.
  Outcome(Errc e) noexcept : v_(std::in_place_index<1>, e) {}  // NOLINT: implicit

  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  // Returns the value; throws BadOutcomeAccess when this holds an error.
  T& value() & {
    check();
    return *std::get_if<0>(&v_);
  }
  const T& value() const& {
    check();
    return *std::get_if<0>(&v_);
  }
  T&& value() && {
    check();
    return std::move(*std::get_if<0>(&v_));
  }
  // Returns the value, or `fallback` when this holds an error.
  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? *std::get_if<0>(&v_) : static_cast<T>(std::forward<U>(fallback));
  }

  // Returns the value without checking (undefined when this holds an error).
  T& operator*() & noexcept { return *std::get_if<0>(&v_); }
  const T& operator*() const& noexcept { return *std::get_if<0>(&v_); }
  T&& operator*() && noexcept { return std::move(*std::get_if<0>(&v_)); }
  T* operator->() noexcept { return std::get_if<0>(&v_); }
  const T* operator->() const noexcept { return std::get_if<0>(&v_); }

  // Returns the error (undefined when this holds a value).
  Errc error() const noexcept { return *std::get_if<1>(&v_); }

  friend bool operator==(const Outcome& a, const Outcome& b) requires std::equality_comparable<T> {
    return a.v_ == b.v_;
  }
  friend bool operator==(const Outcome& a, Errc e) noexcept {
    return !a.has_value() && a.error() == e;
  }

 private:
  void check() const {
    if (!has_value()) throw BadOutcomeAccess(error());
  }
  std::variant<T, Errc> v_;
};

// Outcome<void>: success or an Errc.
template <>
class [[nodiscard]] Outcome<void> {
 public:
  using value_type = void;
  using error_type = Errc;

  // Holds success.
  Outcome() noexcept = default;
  // Holds the error `e`.
  Outcome(Errc e) noexcept : error_(e), ok_(false) {}  // NOLINT: implicit

  bool has_value() const noexcept { return ok_; }
  explicit operator bool() const noexcept { return ok_; }
  // Throws BadOutcomeAccess when this holds an error; does nothing otherwise.
  void value() const {
    if (!ok_) throw BadOutcomeAccess(error_);
  }
  void operator*() const noexcept {}
  // Returns the error (undefined when this holds success).
  Errc error() const noexcept { return error_; }

  friend bool operator==(const Outcome& a, const Outcome& b) noexcept {
    return a.ok_ == b.ok_ && (a.ok_ || a.error_ == b.error_);
  }
  friend bool operator==(const Outcome& a, Errc e) noexcept { return !a.ok_ && a.error_ == e; }

 private:
  Errc error_{};
  bool ok_ = true;
};

}  // namespace pods

template <>
struct std::is_error_code_enum<pods::Errc> : std::true_type {};

#include <pods/policy/errors.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <string>
#include <system_error>

TEST_CASE("Errc: every code has a stable name and an error_code", "[errors]") {
  CHECK(pods::to_string(pods::Errc::timeout) == "timeout");
  CHECK(pods::to_string(pods::Errc::stale_generation) == "stale_generation");
  CHECK(pods::to_string(pods::Errc::not_leader) == "not_leader");
  CHECK(pods::to_string(pods::Errc::compacted) == "compacted");
  CHECK(std::error_code(pods::Errc::compacted).message() == "compacted");
  std::error_code ec = pods::Errc::duplicate;
  CHECK(ec.category().name() == std::string("pods"));
  CHECK(ec.message() == "duplicate");
  CHECK(ec == pods::Errc::duplicate);
  CHECK(ec != pods::Errc::timeout);
}

TEST_CASE("Outcome holds a value or an error", "[errors]") {
  SECTION("a value") {
    pods::Outcome<std::string> r = std::string("hello");
    REQUIRE(r.has_value());
    CHECK(static_cast<bool>(r));
    CHECK(*r == "hello");
    CHECK(r->size() == 5);
    CHECK(r.value() == "hello");
    CHECK(r.value_or("x") == "hello");
  }
  SECTION("an error") {
    pods::Outcome<std::string> r = pods::Errc::timeout;
    CHECK_FALSE(r.has_value());
    CHECK_FALSE(static_cast<bool>(r));
    CHECK(r.error() == pods::Errc::timeout);
    CHECK(r == pods::Errc::timeout);
    CHECK(r.value_or("fallback") == "fallback");
    CHECK_THROWS_AS(r.value(), pods::BadOutcomeAccess);
    CHECK_THROWS_WITH(r.value(), Catch::Contains("timeout"));
  }
  SECTION("move-only values") {
    pods::Outcome<std::unique_ptr<int>> r = std::make_unique<int>(7);
    std::unique_ptr<int> p = std::move(r).value();
    CHECK(*p == 7);
  }
  SECTION("void") {
    pods::Outcome<void> ok;
    pods::Outcome<void> bad = pods::Errc::closed;
    CHECK(ok.has_value());
    CHECK_NOTHROW(ok.value());
    CHECK_FALSE(bad);
    CHECK(bad.error() == pods::Errc::closed);
    CHECK_THROWS_AS(bad.value(), pods::BadOutcomeAccess);
    CHECK(ok == pods::Outcome<void>{});
    CHECK_FALSE(ok == bad);
  }
  SECTION("equality") {
    CHECK(pods::Outcome<int>(1) == pods::Outcome<int>(1));
    CHECK_FALSE(pods::Outcome<int>(1) == pods::Outcome<int>(pods::Errc::failed));
  }
}

TEST_CASE("Exceptions: the hierarchy and the messages", "[errors]") {
  SECTION("CorruptionError names the file and the offset") {
    pods::CorruptionError e("00000000000000000001.log", 4096, "checksum mismatch");
    CHECK(std::string(e.what()) ==
          "corrupt data in 00000000000000000001.log at offset 4096: checksum mismatch");
    CHECK(e.file() == "00000000000000000001.log");
    CHECK(e.offset() == 4096);
    const pods::Error& base = e;
    CHECK(dynamic_cast<const std::runtime_error*>(&base) != nullptr);
  }
  SECTION("ClockOffsetError carries both offsets") {
    pods::ClockOffsetError e(750, 500);
    CHECK(std::string(e.what()) == "clock offset 750 ns exceeds the maximum 500 ns");
    CHECK(e.offset_ns() == 750);
    CHECK(e.max_offset_ns() == 500);
  }
  SECTION("ClosedError is a pods::Error") {
    CHECK_THROWS_AS(throw pods::ClosedError("queue stopped"), pods::Error);
  }
}

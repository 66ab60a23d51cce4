#include <pods/messaging/move_only_function.hpp>

#include <catch2/catch.hpp>

#include <array>
#include <functional>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

using pods::detail::MoveOnlyFunction;

namespace {
int twice(int x) {
  return 2 * x;
}

// Counts live instances, to check that every stored callable is destroyed exactly once.
struct Tracked {
  static inline int live = 0;
  std::array<void*, 8> big{};  // too large for the inline buffer when `Large`
  Tracked() { ++live; }
  Tracked(const Tracked&) { ++live; }
  Tracked(Tracked&&) noexcept { ++live; }
  ~Tracked() { --live; }
};
}  // namespace

TEST_CASE("MoveOnlyFunction: holds a lambda owning a std::promise", "[move_only_function]") {
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<MoveOnlyFunction<void(int)>>);
  STATIC_REQUIRE(std::is_nothrow_move_constructible_v<MoveOnlyFunction<void(int)>>);
  std::promise<int> promise;
  std::future<int> answer = promise.get_future();
  MoveOnlyFunction<void(int)> done = [p = std::move(promise)](int v) mutable { p.set_value(v); };
  REQUIRE(done);
  MoveOnlyFunction<void(int)> moved = std::move(done);
  CHECK_FALSE(done);  // NOLINT: a moved-from MoveOnlyFunction is empty, by contract
  moved(42);
  CHECK(answer.get() == 42);
}

TEST_CASE("MoveOnlyFunction: empty from nothing, nullptr, a null pointer or an empty std::function",
          "[move_only_function]") {
  CHECK_FALSE(MoveOnlyFunction<int(int)>());
  CHECK_FALSE(MoveOnlyFunction<int(int)>(nullptr));
  int (*null_fn)(int) = nullptr;
  CHECK_FALSE(MoveOnlyFunction<int(int)>(null_fn));
  CHECK_FALSE(MoveOnlyFunction<int(int)>(std::function<int(int)>()));
  MoveOnlyFunction<int(int)> empty;
  CHECK_THROWS_AS(empty(1), std::bad_function_call);

  MoveOnlyFunction<int(int)> from_pointer = &twice;
  CHECK(from_pointer(4) == 8);
  MoveOnlyFunction<int(int)> from_function = twice;  // a function, not a pointer: never null
  CHECK(from_function(3) == 6);
  MoveOnlyFunction<int(int)> from_std_function = std::function<int(int)>(twice);
  CHECK(from_std_function(5) == 10);
  from_std_function = nullptr;
  CHECK_FALSE(from_std_function);
}

TEMPLATE_TEST_CASE_SIG("MoveOnlyFunction: destroys every callable once, inline or on the heap",
                       "[move_only_function]", ((int Large), Large), 0, 1) {
  REQUIRE(Tracked::live == 0);
  {
    Tracked t;
    auto small = [p = std::make_unique<int>(7)](int x) { return *p + x; };
    auto large = [t](int x) { return x + static_cast<int>(t.big.size()); };
    MoveOnlyFunction<int(int)> f;
    if constexpr (Large == 1) {
      f = large;
      CHECK(f(1) == 9);
    } else {
      f = std::move(small);
      CHECK(f(1) == 8);
    }
    MoveOnlyFunction<int(int)> g = std::move(f);
    MoveOnlyFunction<int(int)> h;
    h = std::move(g);
    MoveOnlyFunction<int(int)>& alias = h;
    h = std::move(alias);  // self-move keeps the callable
    CHECK(h);
    CHECK(h(0) == (Large == 1 ? 8 : 7));
  }
  CHECK(Tracked::live == 0);
}

TEST_CASE("MoveOnlyFunction: a callable's exception propagates, the callable stays",
          "[move_only_function]") {
  int calls = 0;
  MoveOnlyFunction<void()> f = [&calls] {
    if (++calls == 1) throw std::runtime_error("first call");
  };
  CHECK_THROWS_WITH(f(), "first call");
  CHECK_NOTHROW(f());
  CHECK(calls == 2);
}

TEST_CASE("MoveOnlyFunction: passes arguments by the signature's types", "[move_only_function]") {
  MoveOnlyFunction<std::string(std::unique_ptr<std::string>, const std::string&)> join =
      [](std::unique_ptr<std::string> a, const std::string& b) { return *a + b; };
  CHECK(join(std::make_unique<std::string>("ab"), "cd") == "abcd");
}

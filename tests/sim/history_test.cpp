#include <pods/sim/history.hpp>

#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <future>
#include <latch>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using pods::sim::History;
using pods::sim::never;
using pods::sim::Operation;

namespace {
std::string error_of(auto&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "no exception";
}
}  // namespace

TEST_CASE("History: ok, unknown and fail record what the checker needs", "[history]") {
  History<std::string, int> h;
  const auto a = h.invoke(7, "write 1");
  const auto b = h.invoke(8, "read");
  const auto c = h.invoke(9, "write 2");
  h.ok(b, 1);
  h.unknown(a);
  h.fail(c);
  const auto ops = h.operations();
  REQUIRE(ops.size() == 2);  // the failed one is dropped
  CHECK(h.invoked() == 3);
  CHECK(ops[0] == Operation<std::string, int>{7, "write 1", std::nullopt, 0, never});
  CHECK(ops[1] == Operation<std::string, int>{8, "read", 1, 1, 3});
}

TEST_CASE("History: the logical clock gives every event a distinct, increasing time", "[history]") {
  History<int, int> h;
  std::vector<std::uint64_t> ids;
  for (int i = 0; i < 5; ++i)
    ids.push_back(h.invoke(1, i));
  for (int i = 4; i >= 0; --i)
    h.ok(ids[std::size_t(i)], i);
  const auto ops = h.operations();
  std::set<std::int64_t> times;
  for (const auto& op : ops) {
    CHECK(op.call < op.ret);
    times.insert(op.call);
    times.insert(op.ret);
  }
  CHECK(times.size() == 10);
  CHECK(ops[0].call == 0);
  CHECK(ops[4].call == 4);
  CHECK(ops[4].ret == 5);  // returned first
  CHECK(ops[0].ret == 9);
}

TEST_CASE("History: a pending operation is reported as unknown", "[history]") {
  History<int, int> h;
  h.invoke(3, 42);
  const auto ops = h.operations();
  REQUIRE(ops.size() == 1);
  CHECK_FALSE(ops[0].output);
  CHECK(ops[0].ret == never);
  CHECK(ops[0].client == 3);
}

TEST_CASE("History: a time source is used, made monotone; equal readings tie", "[history]") {
  std::int64_t now = 100;
  History<int, int> h([&] { return now; });
  const auto a = h.invoke(1, 1);
  const auto b = h.invoke(2, 2);
  now = 150;
  h.ok(a, 1);
  now = 120;  // a clock stepping back
  h.ok(b, 2);
  const auto ops = h.operations();
  CHECK(ops[0].call == 100);
  CHECK(ops[1].call == 100);
  CHECK(ops[0].ret == 150);
  CHECK(ops[1].ret == 150);
  CHECK(error_of([] { History<int, int> bad{std::function<std::int64_t()>{}}; }) ==
        "History: the time source `now` is empty");
}

TEST_CASE("History: misuse throws std::invalid_argument naming the id", "[history]") {
  History<int, int> h;
  const auto a = h.invoke(1, 1);
  h.ok(a, 1);
  CHECK(error_of([&] { h.ok(a, 2); }) == "History::ok: id 0 already has its outcome recorded");
  CHECK(error_of([&] { h.fail(a); }) == "History::fail: id 0 already has its outcome recorded");
  CHECK(error_of([&] { h.unknown(5); }) == "History::unknown: id 5 was never returned by invoke");
  CHECK(error_of([&] { h.ok(1, 0); }) == "History::ok: id 1 was never returned by invoke");
  CHECK(h.operations().size() == 1);
}

TEST_CASE("History: concurrent clients; a return seen by another thread precedes its next call",
          "[history][threads]") {
  History<int, int> h;
  constexpr int kThreads = 4, kOps = 500;
  std::latch start(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      start.arrive_and_wait();
      for (int i = 0; i < kOps; ++i) {
        const auto id = h.invoke(std::uint64_t(t), i);
        if (i % 7 == 0) {
          h.unknown(id);
        } else if (i % 11 == 0) {
          h.fail(id);
        } else {
          h.ok(id, i);
        }
      }
    });
  }
  for (auto& th : threads)
    th.join();
  const auto ops = h.operations();
  std::set<std::int64_t> times;
  std::size_t failed = 0;
  for (int i = 0; i < kOps; ++i)
    failed += (i % 7 != 0 && i % 11 == 0) ? 1 : 0;
  CHECK(ops.size() == kThreads * (kOps - failed));
  for (const auto& op : ops) {
    CHECK(times.insert(op.call).second);
    if (op.ret != never) {
      CHECK(op.ret > op.call);
      CHECK(times.insert(op.ret).second);
    }
  }
  // Causality across threads: B invokes after it learns that A's operation returned.
  std::promise<void> returned;
  std::uint64_t second = 0;
  std::thread a([&] {
    h.ok(h.invoke(100, 1), 1);
    returned.set_value();
  });
  std::thread b([&] {
    returned.get_future().wait();
    second = h.invoke(101, 2);
    h.ok(second, 2);
  });
  a.join();
  b.join();
  const auto all = h.operations();
  const auto& first_op = all[all.size() - 2];
  const auto& second_op = all[all.size() - 1];
  CHECK(first_op.client == 100);
  CHECK(second_op.client == 101);
  CHECK(first_op.ret < second_op.call);
}

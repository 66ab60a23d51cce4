#include <pods/messaging/request_batch.hpp>

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;

namespace {
struct Sized {
  std::size_t n;
  std::size_t size() const { return n; }
};
struct Plain {
  std::uint32_t a, b, c;
};
struct DoubleSize {
  std::size_t operator()(const std::string& s) const { return 2 * s.size(); }
};
}  // namespace

TEST_CASE("DefaultSize: .size() where the request has one, else sizeof", "[request_batch]") {
  pods::DefaultSize size;
  CHECK(size(std::string("hello")) == 5);
  CHECK(size(Sized{42}) == 42);
  CHECK(size(Plain{}) == sizeof(Plain));
  CHECK(size(std::uint64_t{7}) == 8);
}

TEST_CASE("RequestBatch: full by request count", "[request_batch]") {
  pods::ManualClock clock;
  pods::RequestBatch<std::uint64_t, pods::ManualClock> batch({.max_requests = 3}, clock);
  CHECK(batch.empty());
  CHECK_FALSE(batch.add(1));
  CHECK_FALSE(batch.add(2));
  CHECK_FALSE(batch.full());
  CHECK(batch.add(3));
  CHECK(batch.full());
  CHECK(batch.size() == 3);
  CHECK(batch.bytes() == 24);
  CHECK(batch.take() == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(batch.empty());
  CHECK(batch.bytes() == 0);
  CHECK_FALSE(batch.full());
}

TEST_CASE("RequestBatch: full by bytes, and an oversized request forms a batch alone",
          "[request_batch]") {
  pods::RequestBatch<std::string> batch({.max_requests = 100, .max_bytes = 10});
  CHECK_FALSE(batch.add("abcd"));
  CHECK(batch.add("efghij"));  // 10 bytes: full
  CHECK(batch.take().size() == 2);
  CHECK(batch.add(std::string(50, 'x')));  // never refused
  CHECK(batch.size() == 1);
  CHECK(batch.bytes() == 50);
}

TEST_CASE("RequestBatch: a custom Size measures requests", "[request_batch]") {
  pods::RequestBatch<std::string, pods::SteadyClock, DoubleSize> batch({.max_bytes = 10});
  CHECK_FALSE(batch.add("ab"));
  CHECK(batch.bytes() == 4);
  CHECK(batch.add("abc"));
}

TEST_CASE("RequestBatch: due and deadline follow the oldest request", "[request_batch]") {
  pods::ManualClock clock(100s);
  pods::RequestBatch<int, pods::ManualClock> batch({.max_wait = 5ms}, clock);
  CHECK_FALSE(batch.due());
  CHECK_FALSE(batch.deadline().has_value());
  batch.add(1);
  REQUIRE(batch.deadline().has_value());
  CHECK(*batch.deadline() == pods::ManualClock::time_point(100s + 5ms));
  clock.advance(3ms);
  batch.add(2);  // does not move the deadline
  CHECK(*batch.deadline() == pods::ManualClock::time_point(100s + 5ms));
  CHECK_FALSE(batch.due());
  clock.advance(2ms);
  CHECK(batch.due());
  CHECK(batch.take() == std::vector<int>{1, 2});
  CHECK_FALSE(batch.due());
  clock.advance(1s);
  batch.add(3);
  CHECK_FALSE(batch.due());
  CHECK(*batch.deadline() == clock.now() + 5ms);
}

TEST_CASE("RequestBatch: bad limits name the field", "[request_batch]") {
  using Batch = pods::RequestBatch<int>;
  CHECK_THROWS_WITH(Batch({.max_requests = 0}), Catch::Contains("max_requests"));
  CHECK_THROWS_WITH(Batch({.max_bytes = 0}), Catch::Contains("max_bytes"));
  CHECK_THROWS_WITH(Batch({.max_wait = -1ms}), Catch::Contains("max_wait"));
  CHECK_THROWS_AS(Batch({.max_requests = 0}), std::invalid_argument);
}

TEST_CASE("BatchingSender: flushes when full, when due, and on flush()", "[request_batch]") {
  pods::ManualClock clock;
  std::vector<std::vector<int>> sent;
  auto sink = [&](std::vector<int> b) { sent.push_back(std::move(b)); };
  pods::BatchingSender<int, decltype(sink), pods::ManualClock> sender(
      sink, {.max_requests = 3, .max_wait = 10ms}, clock);

  CHECK_FALSE(sender.send(1));
  CHECK_FALSE(sender.send(2));
  CHECK(sent.empty());
  CHECK(sender.send(3));  // full
  REQUIRE(sent.size() == 1);
  CHECK(sent[0] == std::vector<int>{1, 2, 3});
  CHECK_FALSE(sender.deadline().has_value());

  sender.send(4);
  CHECK(*sender.deadline() == clock.now() + 10ms);
  clock.advance(9ms);
  CHECK_FALSE(sender.tick());
  clock.advance(1ms);
  CHECK(sender.tick());  // due
  REQUIRE(sent.size() == 2);
  CHECK(sent[1] == std::vector<int>{4});
  CHECK_FALSE(sender.tick());  // nothing waits

  sender.send(5);
  sender.send(6);
  CHECK(sender.flush() == 2);
  CHECK(sent[2] == std::vector<int>{5, 6});
  CHECK(sender.flush() == 0);
  CHECK(sent.size() == 3);
  CHECK(sender.batch().empty());
}

namespace {
std::vector<std::vector<std::string>> written;  // what the header example's "socket" got
struct Socket {
  void write(const std::vector<std::string>& batch) { written.push_back(batch); }
};
void write_batch(std::vector<std::string> batch) {
  written.push_back(std::move(batch));
}
}  // namespace

TEST_CASE("BatchingSender: the header example compiles; Request is deduced from the sink",
          "[request_batch]") {
  written.clear();
  Socket socket;
  // The example of the header comment, as written there.
  pods::BatchingSender sender([&](std::vector<std::string> batch) { socket.write(batch); },
                              pods::BatchLimits{.max_requests = 32});
  sender.send("put a 1");  // flushes by itself when 32 are waiting
  STATIC_REQUIRE(std::is_same_v<decltype(sender.batch()),
                                const pods::RequestBatch<std::string, pods::SteadyClock>&>);
  CHECK(sender.deadline().has_value());
  CHECK(sender.flush() == 1);
  REQUIRE(written.size() == 1);
  CHECK(written[0] == std::vector<std::string>{"put a 1"});

  // A sink taking the batch by rvalue or const reference, a mutable lambda, a function
  // pointer, and an explicit clock all deduce too.
  pods::BatchingSender by_rvalue([](std::vector<int>&&) {});
  STATIC_REQUIRE(std::is_same_v<decltype(by_rvalue.batch()), const pods::RequestBatch<int>&>);
  pods::BatchingSender by_const_ref([](const std::vector<double>&) noexcept {});
  STATIC_REQUIRE(std::is_same_v<decltype(by_const_ref.batch()), const pods::RequestBatch<double>&>);
  int calls = 0;
  pods::BatchingSender by_mutable([calls](std::vector<int>) mutable { ++calls; });
  STATIC_REQUIRE(std::is_same_v<decltype(by_mutable.batch()), const pods::RequestBatch<int>&>);
  pods::BatchingSender by_pointer(&write_batch, pods::BatchLimits{.max_requests = 1});
  CHECK(by_pointer.send("x"));
  CHECK(written.back() == std::vector<std::string>{"x"});
  pods::ManualClock clock;
  pods::BatchingSender with_clock([](std::vector<int>) {}, pods::BatchLimits{}, clock);
  STATIC_REQUIRE(std::is_same_v<decltype(with_clock.batch()),
                                const pods::RequestBatch<int, pods::ManualClock>&>);
}

TEST_CASE("RequestBatch: differential test against a simple model", "[request_batch]") {
  std::uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return state >> 33;
  };
  pods::ManualClock clock;
  const pods::BatchLimits limits{.max_requests = 5, .max_bytes = 40, .max_wait = 7ms};
  pods::RequestBatch<std::string, pods::ManualClock> batch(limits, clock);
  std::vector<std::string> model;
  std::size_t model_bytes = 0;
  auto model_oldest = clock.now();
  for (int step = 0; step < 2000; ++step) {
    switch (next() % 3) {
      case 0: {
        std::string r(next() % 20, 'r');
        if (model.empty()) model_oldest = clock.now();
        model_bytes += r.size();
        model.push_back(r);
        const bool full = model.size() >= 5 || model_bytes >= 40;
        CHECK(batch.add(r) == full);
        break;
      }
      case 1:
        clock.advance(std::chrono::milliseconds(next() % 4));
        break;
      default:
        if (next() % 2 == 0) {
          CHECK(batch.take() == model);
          model.clear();
          model_bytes = 0;
        }
    }
    CHECK(batch.size() == model.size());
    CHECK(batch.bytes() == model_bytes);
    CHECK(batch.due() == (!model.empty() && clock.now() - model_oldest >= 7ms));
  }
}

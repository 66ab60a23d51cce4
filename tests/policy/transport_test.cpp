#include <pods/policy/transport.hpp>

#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

namespace {
struct NoSend {};
struct WrongArgs {
  void send(std::string to, int m);
};
struct NotCopyable {
  NotCopyable() = default;
  NotCopyable(const NotCopyable&) = delete;
  void send(pods::NodeId, int) {}
};

// A block written against the concept, as a protocol would be.
template <pods::Transport<std::string> T>
struct Echo {
  T transport;
  void receive(pods::NodeId from, std::string m) { transport.send(from, "echo " + m); }
};
}  // namespace

TEST_CASE("Transport: the models and the does-not-models", "[transport]") {
  STATIC_REQUIRE(pods::Transport<pods::Outbox<int>, int>);
  STATIC_REQUIRE(pods::Transport<pods::Outbox<std::string>, std::string>);
  STATIC_REQUIRE_FALSE(pods::Transport<pods::Outbox<std::string>, std::vector<int>>);
  STATIC_REQUIRE_FALSE(pods::Transport<NoSend, int>);
  STATIC_REQUIRE_FALSE(pods::Transport<WrongArgs, int>);
  STATIC_REQUIRE_FALSE(pods::Transport<NotCopyable, int>);
  STATIC_REQUIRE(std::is_same_v<pods::NodeId, std::uint64_t>);
}

TEST_CASE("Outbox: records sends in order and take() returns and clears them", "[transport]") {
  pods::Outbox<std::string> out;
  CHECK(out.empty());
  out.send(2, "a");
  out.send(1, "b");
  out.send(2, "c");
  CHECK(out.size() == 3);
  CHECK_FALSE(out.empty());
  CHECK(out.sent().front().message == "a");
  using Sent = pods::Outbox<std::string>::Sent;
  const auto taken = out.take();
  CHECK(taken == std::vector<Sent>{{2, "a"}, {1, "b"}, {2, "c"}});
  CHECK(out.empty());
  CHECK(out.take().empty());
  out.send(3, "d");
  out.clear();
  CHECK(out.size() == 0);
}

TEST_CASE("Outbox: copies share one record", "[transport]") {
  pods::Outbox<std::string> test_copy;
  Echo<pods::Outbox<std::string>> block{test_copy};  // the block holds its own copy
  block.receive(7, "hi");
  REQUIRE(test_copy.size() == 1);
  auto sent = test_copy.take();
  CHECK(sent[0].to == 7);
  CHECK(sent[0].message == "echo hi");
  CHECK(block.transport.empty());  // take() on one copy cleared the shared record
}

TEST_CASE("Outbox: move-only messages are moved, not copied", "[transport]") {
  pods::Outbox<std::unique_ptr<int>> out;
  out.send(1, std::make_unique<int>(5));
  auto sent = out.take();
  REQUIRE(sent.size() == 1);
  CHECK(*sent[0].message == 5);
}

// Tests of pods/messaging/state_watch.hpp: one test case per guarantee of the header comment
// (order and exactly-once, key and prefix matching, resume from history, Errc::compacted, the
// automatic compaction of history_limit, the bounded slow watcher, the hook's firing rule and
// its re-entrant use, reset, cancel, max_watches, every std::invalid_argument message), then a
// seeded differential test against a model that keeps every event in a vector and filters on
// demand. Faults injected by the test's own adapter (never by the header) show that the
// differential check notices a dropped, reordered or shifted event and a wrong close reason.
// Without a sanitizer, a counting operator new checks what allocates and fails chosen
// allocations to check that no watch silently skips an event.
#include <pods/messaging/state_watch.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <new>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define PODS_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PODS_TEST_SANITIZED 1
#endif
#endif

#ifndef PODS_TEST_SANITIZED
// Counts the allocations made while `counting` is set; fails the one `fail_at` names (1: the
// next). The sanitizers bring their own operator new, so this is left out under them.
namespace {
std::atomic<bool> counting{false};
std::atomic<std::size_t> allocations{0};
std::atomic<std::size_t> fail_at{0};
}  // namespace

void* operator new(std::size_t n) {
  if (counting.load(std::memory_order_relaxed)) {
    const std::size_t count = allocations.fetch_add(1) + 1;
    if (count == fail_at.load()) throw std::bad_alloc();
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept {
  std::free(p);
}
void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
#endif

using pods::Errc;
using pods::StateWatch;
using pods::WatchEvent;
using pods::WatchEventKind;
using pods::WatchId;
using pods::WatchSpec;

namespace {

std::vector<std::byte> bytes(const std::string& s) {
  std::vector<std::byte> out;
  for (char c : s)
    out.push_back(static_cast<std::byte>(c));
  return out;
}

WatchEvent put(std::uint64_t revision, std::string key, const std::string& value = "v") {
  return {revision, WatchEventKind::put, std::move(key), bytes(value)};
}

WatchEvent erase(std::uint64_t revision, std::string key) {
  return {revision, WatchEventKind::erase, std::move(key), {}};
}

std::vector<std::uint64_t> revisions(const std::vector<WatchEvent>& events) {
  std::vector<std::uint64_t> out;
  for (const auto& e : events)
    out.push_back(e.revision);
  return out;
}

WatchId open(StateWatch& w, WatchSpec spec) {
  auto id = w.watch(std::move(spec));
  REQUIRE(id.has_value());
  return *id;
}

// Records the hook's calls.
struct Calls {
  std::vector<WatchId> ids;
  std::function<void(WatchId)> hook() {
    return [this](WatchId id) { ids.push_back(id); };
  }
  std::vector<WatchId> take() { return std::exchange(ids, {}); }
};

std::uint64_t seeds(std::uint64_t fallback) {
  if (const char* env = std::getenv("PODS_SEEDS")) {
    const auto n = std::strtoull(env, nullptr, 10);
    if (n > 0) return n;
  }
  return fallback;
}

}  // namespace

TEST_CASE("StateWatch: a watch gets every matching event once, in revision order",
          "[state_watch]") {
  StateWatch w;
  const WatchId a = open(w, {.key = "a"});
  const WatchId all = open(w, {.key = "", .prefix = true});
  std::vector<WatchEvent> seen_a, seen_all;
  std::uint64_t r = 0;
  for (int round = 0; round < 20; ++round) {
    w.publish(put(++r, "a", std::to_string(round)));
    w.publish(put(++r, "b"));
    if (round % 3 == 0) w.publish(erase(++r, "a"));
    auto got = w.take(a, static_cast<std::size_t>(round % 4));  // 0, 1, 2, 3 at a time
    seen_a.insert(seen_a.end(), got.begin(), got.end());
    got = w.take(all, 2);
    seen_all.insert(seen_all.end(), got.begin(), got.end());
  }
  auto rest = w.take(a);
  seen_a.insert(seen_a.end(), rest.begin(), rest.end());
  rest = w.take(all);
  seen_all.insert(seen_all.end(), rest.begin(), rest.end());
  CHECK(w.take(a).empty());
  CHECK(w.buffered(a) == 0);
  CHECK(seen_all.size() == r);
  for (std::size_t i = 0; i < seen_all.size(); ++i)
    CHECK(seen_all[i].revision == i + 1);
  REQUIRE(seen_a.size() == 20 + 7);
  CHECK(std::is_sorted(seen_a.begin(), seen_a.end(),
                       [](const auto& x, const auto& y) { return x.revision <= y.revision; }));
  for (const auto& e : seen_a)
    CHECK(e.key == "a");
  CHECK(seen_a[0] == put(1, "a", "0"));
  CHECK(seen_a[1] == erase(3, "a"));
  CHECK(seen_a.back() == put(seen_a.back().revision, "a", "19"));
}

TEST_CASE("StateWatch: a key watch sees its key only, a prefix watch every key it starts",
          "[state_watch]") {
  StateWatch w;
  const WatchId exact_a = open(w, {.key = "a"});
  const WatchId exact_empty = open(w, {.key = ""});
  const WatchId prefix_a = open(w, {.key = "a", .prefix = true});
  const WatchId prefix_ab = open(w, {.key = "ab", .prefix = true});
  const WatchId everything = open(w, {.key = "", .prefix = true});
  const WatchId exact_a_again = open(w, {.key = "a"});
  const std::vector<std::string> keys = {"a", "ab", "abc", "b", "", "ba", "Ab"};
  std::uint64_t r = 0;
  for (const auto& k : keys)
    w.publish(put(++r, k));
  CHECK(revisions(w.take(exact_a)) == std::vector<std::uint64_t>{1});  // not "ab"
  CHECK(revisions(w.take(exact_a_again)) == std::vector<std::uint64_t>{1});
  CHECK(revisions(w.take(exact_empty)) == std::vector<std::uint64_t>{5});
  CHECK(revisions(w.take(prefix_a)) == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(revisions(w.take(prefix_ab)) == std::vector<std::uint64_t>{2, 3});
  CHECK(revisions(w.take(everything)) == std::vector<std::uint64_t>{1, 2, 3, 4, 5, 6, 7});
  // A cancelled prefix watch leaves the others of its length matching.
  const WatchId prefix_b = open(w, {.key = "b", .prefix = true});
  w.cancel(prefix_a);
  w.publish(put(++r, "abz"));
  w.publish(put(++r, "bz"));
  CHECK(revisions(w.take(prefix_ab)) == std::vector<std::uint64_t>{8});
  CHECK(revisions(w.take(prefix_b)) == std::vector<std::uint64_t>{9});
  CHECK(w.take(exact_a).empty());
}

TEST_CASE("StateWatch: a watch from an old revision gets exactly what it missed, then more",
          "[state_watch]") {
  StateWatch w;
  for (std::uint64_t r = 1; r <= 10; ++r)
    w.publish(put(r, r % 2 ? "odd" : "even"));
  const WatchId odd = open(w, {.key = "odd", .from_revision = 4});
  const WatchId all = open(w, {.key = "", .prefix = true, .from_revision = 1});
  const WatchId now = open(w, {.key = "", .prefix = true});                        // 0: after 10
  const WatchId next = open(w, {.key = "", .prefix = true, .from_revision = 11});  // the same
  const WatchId later = open(w, {.key = "", .prefix = true, .from_revision = 13});
  CHECK(revisions(w.take(odd)) == std::vector<std::uint64_t>{5, 7, 9});
  CHECK(w.buffered(all) == 10);
  CHECK(revisions(w.take(all, 3)) == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(w.buffered(now) == 0);
  CHECK(w.buffered(later) == 0);
  for (std::uint64_t r = 11; r <= 14; ++r)
    w.publish(put(r, r % 2 ? "odd" : "even"));
  CHECK(revisions(w.take(odd)) == std::vector<std::uint64_t>{11, 13});
  CHECK(w.take(all).size() == 11);  // 4..14
  CHECK(revisions(w.take(now)) == std::vector<std::uint64_t>{11, 12, 13, 14});
  CHECK(revisions(w.take(next)) == std::vector<std::uint64_t>{11, 12, 13, 14});
  CHECK(revisions(w.take(later)) == std::vector<std::uint64_t>{13, 14});

  // Resuming after a close: from the revision after the last one taken.
  StateWatch small({.max_buffered = 2});
  const WatchId slow = open(small, {.key = "k"});
  for (std::uint64_t r = 1; r <= 5; ++r)
    small.publish(put(r, "k"));
  CHECK(small.closed(slow) == Errc::full);
  const auto first = small.take(slow);
  REQUIRE(revisions(first) == std::vector<std::uint64_t>{1, 2});
  small.cancel(slow);
  const WatchId resumed = open(small, {.key = "k", .from_revision = first.back().revision + 1});
  CHECK(revisions(small.take(resumed)) == std::vector<std::uint64_t>{3, 4});
  CHECK(small.closed(resumed) == Errc::full);  // the history held 3 matches, more than 2
}

TEST_CASE("StateWatch: a revision at or below compacted_revision() gives Errc::compacted",
          "[state_watch]") {
  StateWatch w;
  for (std::uint64_t r = 1; r <= 10; ++r)
    w.publish(put(r, "k"));
  const WatchId before = open(w, {.key = "k", .from_revision = 2});
  w.compact(5);
  CHECK(w.compacted_revision() == 5);
  CHECK(w.history_size() == 5);
  CHECK(w.watch({.key = "k", .from_revision = 1}).error() == Errc::compacted);
  CHECK(w.watch({.key = "k", .from_revision = 5}).error() == Errc::compacted);
  CHECK(w.watch({.key = "other", .prefix = true, .from_revision = 5}).error() == Errc::compacted);
  CHECK(revisions(w.take(open(w, {.key = "k", .from_revision = 6}))) ==
        std::vector<std::uint64_t>{6, 7, 8, 9, 10});
  CHECK(w.take(open(w, {.key = "k"})).empty());  // 0 is never compacted
  CHECK(w.take(before).size() == 9);             // an open watch keeps what it buffered
  w.compact(3);                                  // below: nothing changes
  CHECK(w.compacted_revision() == 5);
  CHECK(w.history_size() == 5);
  w.compact(10);
  CHECK(w.history_size() == 0);
  CHECK(w.watch({.key = "k", .from_revision = 10}).error() == Errc::compacted);
  CHECK(w.watch({.key = "k", .from_revision = 11}).has_value());
}

TEST_CASE("StateWatch: history_limit compacts the oldest events by itself", "[state_watch]") {
  StateWatch w({.history_limit = 3});
  for (std::uint64_t r : {10, 20, 30, 40, 50})
    w.publish(put(r, "k"));
  CHECK(w.history_size() == 3);
  CHECK(w.compacted_revision() == 20);
  CHECK(w.watch({.key = "k", .from_revision = 20}).error() == Errc::compacted);
  CHECK(revisions(w.take(open(w, {.key = "k", .from_revision = 21}))) ==
        std::vector<std::uint64_t>{30, 40, 50});
  w.publish(put(60, "k"));
  CHECK(w.compacted_revision() == 30);
  CHECK(w.history_size() == 3);
}

TEST_CASE("StateWatch: a watcher that never takes closes with Errc::full at max_buffered",
          "[state_watch]") {
  StateWatch w({.history_limit = 16, .max_buffered = 3});
  Calls calls;
  w.on_ready(calls.hook());
  const WatchId slow = open(w, {.key = "k"});
  const WatchId fast = open(w, {.key = "k"});
  const WatchId other = open(w, {.key = "", .prefix = true});
  std::vector<std::uint64_t> fast_seen;
  for (std::uint64_t r = 1; r <= 1000; ++r) {
    w.publish(put(r, "k"));
    for (const auto& e : w.take(fast))
      fast_seen.push_back(e.revision);
    w.take(other);
    if (r == 3) CHECK_FALSE(w.closed(slow));
    if (r == 4) {
      CHECK(w.closed(slow) == Errc::full);
      CHECK(w.open_watches() == 2);
    }
    CHECK(w.buffered(slow) <= 3);
    CHECK(w.history_size() <= 16);
  }
  CHECK(w.closed(slow) == Errc::full);
  CHECK(w.buffered(slow) == 3);
  CHECK_FALSE(w.closed(fast));
  CHECK_FALSE(w.closed(other));
  CHECK(fast_seen.size() == 1000);
  CHECK(fast_seen.back() == 1000);
  // The slow watch was notified once when it got its first event and once when it closed.
  CHECK(std::count(calls.ids.begin(), calls.ids.end(), slow) == 2);
  // What it buffered before the close is still there, then nothing more.
  CHECK(revisions(w.take(slow)) == std::vector<std::uint64_t>{1, 2, 3});
  w.publish(put(1001, "k"));
  CHECK(w.take(slow).empty());
  CHECK(w.closed(slow) == Errc::full);
  CHECK(w.held_watches() == 3);

  // A resume whose history holds more than max_buffered matches opens closed, holding the
  // first max_buffered.
  const WatchId resume = open(w, {.key = "k", .from_revision = 990});
  CHECK(w.closed(resume) == Errc::full);
  CHECK(revisions(w.take(resume)) == std::vector<std::uint64_t>{990, 991, 992});
}

TEST_CASE("StateWatch: the hook fires when a watch gets its first buffered event or closes",
          "[state_watch]") {
  StateWatch w({.max_buffered = 2});
  Calls calls;
  w.on_ready(calls.hook());
  const WatchId p = open(w, {.key = "a", .prefix = true});  // 1
  const WatchId k = open(w, {.key = "ab"});                 // 2
  const WatchId e = open(w, {.key = "", .prefix = true});   // 3
  const WatchId b = open(w, {.key = "b"});                  // 4
  CHECK(calls.take().empty());                              // watch() never calls it

  w.publish(put(1, "ab"));  // p, k, e: empty -> 1; in increasing id order
  CHECK(calls.take() == std::vector<WatchId>{p, k, e});
  w.publish(put(2, "ab"));  // buffers not empty: no call
  CHECK(calls.take().empty());
  w.publish(put(3, "zz"));  // matches e only, which is full: it closes
  CHECK(calls.take() == std::vector<WatchId>{e});
  CHECK(w.closed(e) == Errc::full);
  w.take(k);
  CHECK(calls.take().empty());  // take() never calls it
  w.publish(put(4, "ab"));      // k: empty -> 1 again; p: full -> closes
  CHECK(calls.take() == std::vector<WatchId>{p, k});
  CHECK(w.closed(p) == Errc::full);
  w.publish(put(5, "c"));  // nothing matches
  CHECK(calls.take().empty());
  w.compact(3);  // compact() never calls it
  CHECK(calls.take().empty());

  // A watch opened with history buffered: no call at watch(), nor at the next event.
  const WatchId h = open(w, {.key = "ab", .from_revision = 4});
  CHECK(w.buffered(h) == 1);
  w.publish(put(6, "ab"));
  CHECK(calls.take() == std::vector<WatchId>{});  // k holds 4, h holds 4: neither was empty

  // cancel: a call for an open watch (it reads cancelled, nothing buffered), none for a
  // closed or an unknown one.
  std::optional<Errc> seen;
  std::size_t seen_buffered = 99;
  w.on_ready([&](WatchId id) {
    calls.ids.push_back(id);
    seen = w.closed(id);
    seen_buffered = w.buffered(id);
  });
  w.cancel(b);
  CHECK(calls.take() == std::vector<WatchId>{b});
  CHECK(seen == Errc::cancelled);
  CHECK(seen_buffered == 0);
  w.cancel(p);  // closed (full) already
  w.cancel(b);  // gone
  w.cancel(999);
  CHECK(calls.take().empty());

  // reset: a call for each watch it closes.
  w.reset(10);
  CHECK(calls.take() == std::vector<WatchId>{k, h});
  CHECK(w.closed(k) == Errc::compacted);

  // Replacing the hook, and removing it.
  Calls second;
  w.on_ready(second.hook());
  const WatchId n = open(w, {.key = "n"});
  w.publish(put(11, "n"));
  CHECK(second.take() == std::vector<WatchId>{n});
  w.on_ready(nullptr);
  w.take(n);
  w.publish(put(12, "n"));
  CHECK(second.take().empty());
  CHECK(calls.take().empty());
}

TEST_CASE("StateWatch: the hook may call take, watch, cancel, publish and on_ready",
          "[state_watch]") {
  SECTION("take inside the hook: the next event fires it again") {
    StateWatch w;
    const WatchId id = open(w, {.key = "k"});
    std::vector<std::uint64_t> delivered;
    int calls = 0;
    w.on_ready([&](WatchId ready) {
      ++calls;
      for (const auto& e : w.take(ready))
        delivered.push_back(e.revision);
    });
    for (std::uint64_t r = 1; r <= 5; ++r)
      w.publish(put(r, "k"));
    CHECK(calls == 5);
    CHECK(delivered == std::vector<std::uint64_t>{1, 2, 3, 4, 5});
    CHECK(w.buffered(id) == 0);
  }
  SECTION("cancel of a watch later in the same call: one call for it, from the cancel") {
    StateWatch w;
    const WatchId first = open(w, {.key = "k"});
    const WatchId second = open(w, {.key = "k"});
    const WatchId third = open(w, {.key = "k"});
    std::vector<std::pair<WatchId, std::optional<Errc>>> calls;
    w.on_ready([&](WatchId id) {
      calls.emplace_back(id, w.closed(id));
      if (id == first) w.cancel(second);
    });
    w.publish(put(1, "k"));
    REQUIRE(calls.size() == 3);
    CHECK(calls[0] == std::pair<WatchId, std::optional<Errc>>{first, std::nullopt});
    CHECK(calls[1] == std::pair<WatchId, std::optional<Errc>>{second, Errc::cancelled});
    CHECK(calls[2] == std::pair<WatchId, std::optional<Errc>>{third, std::nullopt});
    CHECK(w.open_watches() == 2);
  }
  SECTION("watch and publish inside the hook") {
    StateWatch w;
    const WatchId trigger = open(w, {.key = "trigger"});
    std::optional<WatchId> opened;
    std::vector<WatchId> calls;
    w.on_ready([&](WatchId id) {
      calls.push_back(id);
      if (id == trigger && !opened) {
        opened = *w.watch({.key = "", .prefix = true, .from_revision = w.revision()});
        w.publish(put(w.revision() + 1, "follow-up"));  // nested: its own calls, then ours go on
      }
    });
    w.publish(put(1, "trigger"));
    REQUIRE(opened);
    CHECK(calls == std::vector<WatchId>{trigger});  // opened held 1 already: not empty -> some
    CHECK(revisions(w.take(*opened)) == std::vector<std::uint64_t>{1, 2});
    CHECK(revisions(w.take(trigger)) == std::vector<std::uint64_t>{1});
    CHECK(w.revision() == 2);
  }
  SECTION("on_ready inside the hook replaces it for the rest of the call") {
    StateWatch w;
    const WatchId a = open(w, {.key = "k"});
    const WatchId b = open(w, {.key = "k"});
    std::vector<std::pair<int, WatchId>> calls;
    w.on_ready([&](WatchId id) {
      calls.emplace_back(1, id);
      w.on_ready([&](WatchId later) { calls.emplace_back(2, later); });  // destroys this one
      calls.emplace_back(1, id);  // still alive while it runs
    });
    w.publish(put(1, "k"));
    CHECK(calls == std::vector<std::pair<int, WatchId>>{{1, a}, {1, a}, {2, b}});
  }
  SECTION("an exception from the hook propagates; the state is consistent") {
    StateWatch w;
    const WatchId a = open(w, {.key = "k"});
    const WatchId b = open(w, {.key = "k"});
    w.on_ready([&](WatchId id) {
      if (id == a) throw std::runtime_error("hook");
    });
    CHECK_THROWS_AS(w.publish(put(1, "k")), std::runtime_error);
    CHECK(w.revision() == 1);
    CHECK(w.buffered(a) == 1);
    CHECK(w.buffered(b) == 1);
  }
}

TEST_CASE("StateWatch: reset closes exactly the watches that may have missed events",
          "[state_watch]") {
  StateWatch w;
  Calls calls;
  w.on_ready(calls.hook());
  for (std::uint64_t r = 1; r <= 5; ++r)
    w.publish(put(r, "k"));
  const WatchId current = open(w, {.key = "k"});                       // wants 6 on
  const WatchId resumed = open(w, {.key = "k", .from_revision = 3});   // holds 3..5
  const WatchId future = open(w, {.key = "k", .from_revision = 100});  // wants 100 on
  const WatchId future2 = open(w, {.key = "k", .from_revision = 51});  // wants 51 on
  const WatchId unrelated = open(w, {.key = "x", .prefix = true});     // wants 6 on
  calls.take();

  w.reset(5);  // the same revision: nobody missed anything
  CHECK(calls.take().empty());
  CHECK(w.open_watches() == 5);
  CHECK(w.history_size() == 0);
  CHECK(w.compacted_revision() == 5);
  CHECK(w.watch({.key = "k", .from_revision = 5}).error() == Errc::compacted);

  w.reset(50);  // 6..50 skipped: current, resumed and unrelated may have missed some
  CHECK(calls.take() == std::vector<WatchId>{current, resumed, unrelated});
  CHECK(w.closed(current) == Errc::compacted);
  CHECK(w.closed(resumed) == Errc::compacted);
  CHECK(w.closed(unrelated) == Errc::compacted);
  CHECK_FALSE(w.closed(future));
  CHECK_FALSE(w.closed(future2));
  CHECK(w.revision() == 50);
  CHECK(w.compacted_revision() == 50);
  CHECK(revisions(w.take(resumed)) == std::vector<std::uint64_t>{3, 4, 5});  // still taken

  w.reset(51);  // future2 wanted 51
  CHECK(calls.take() == std::vector<WatchId>{future2});
  w.publish(put(100, "k"));
  CHECK(revisions(w.take(future)) == std::vector<std::uint64_t>{100});
  CHECK(revisions(w.take(open(w, {.key = "k", .from_revision = 52}))) ==
        std::vector<std::uint64_t>{100});
}

TEST_CASE("StateWatch: cancel closes and forgets a watch", "[state_watch]") {
  StateWatch w;
  const WatchId a = open(w, {.key = "k"});
  const WatchId b = open(w, {.key = "k", .prefix = true});
  w.publish(put(1, "k"));
  CHECK(w.open_watches() == 2);
  w.cancel(a);
  CHECK(w.closed(a) == Errc::cancelled);
  CHECK(w.buffered(a) == 0);
  CHECK(w.take(a).empty());
  CHECK(w.open_watches() == 1);
  CHECK(w.held_watches() == 1);
  w.cancel(b);
  CHECK(w.open_watches() == 0);
  w.publish(put(2, "k"));  // delivered to nobody, and nothing left indexed
  CHECK(w.take(b).empty());
  CHECK(w.closed(12345) == Errc::cancelled);  // an unknown id reads cancelled
  CHECK(w.buffered(12345) == 0);
  const WatchId c = open(w, {.key = "k"});
  CHECK(c > b);  // ids are never reused
}

TEST_CASE("StateWatch: max_watches bounds the watches held", "[state_watch]") {
  StateWatch w({.max_buffered = 1, .max_watches = 2});
  const WatchId a = open(w, {.key = "k"});
  const WatchId b = open(w, {.key = "j"});
  CHECK(w.watch({.key = "x"}).error() == Errc::full);
  w.publish(put(1, "k"));
  w.publish(put(2, "k"));  // a closes (full) but is still held
  CHECK(w.closed(a) == Errc::full);
  CHECK(w.open_watches() == 1);
  CHECK(w.held_watches() == 2);
  CHECK(w.watch({.key = "x"}).error() == Errc::full);
  w.cancel(a);
  CHECK(w.held_watches() == 1);
  const WatchId c = open(w, {.key = "x"});
  CHECK(w.watch({.key = "y"}).error() == Errc::full);
  w.cancel(b);
  w.cancel(c);
  CHECK(w.watch({.key = "y"}).has_value());
  // compacted is decided before full
  w.compact(2);
  CHECK(w.watch({.key = "z"}).has_value());
  CHECK(w.watch({.key = "z", .from_revision = 1}).error() == Errc::compacted);
}

TEST_CASE("StateWatch: bad options and arguments throw std::invalid_argument naming them",
          "[state_watch]") {
  using Catch::Message;
  CHECK_THROWS_MATCHES(StateWatch({.history_limit = 0}), std::invalid_argument,
                       Message("StateWatch: options.history_limit must be at least 1"));
  CHECK_THROWS_MATCHES(StateWatch({.max_buffered = 0}), std::invalid_argument,
                       Message("StateWatch: options.max_buffered must be at least 1"));
  CHECK_THROWS_MATCHES(StateWatch({.max_watches = 0}), std::invalid_argument,
                       Message("StateWatch: options.max_watches must be at least 1"));
  StateWatch w;
  const WatchId id = open(w, {.key = "k"});
  CHECK_THROWS_MATCHES(
      w.publish(put(0, "k")), std::invalid_argument,
      Message("StateWatch::publish: e.revision must be greater than revision() (0), got 0"));
  w.publish(put(7, "k"));
  CHECK_THROWS_MATCHES(
      w.publish(put(7, "k")), std::invalid_argument,
      Message("StateWatch::publish: e.revision must be greater than revision() (7), got 7"));
  CHECK_THROWS_MATCHES(
      w.publish(put(3, "k")), std::invalid_argument,
      Message("StateWatch::publish: e.revision must be greater than revision() (7), got 3"));
  CHECK_THROWS_MATCHES(w.publish({8, static_cast<WatchEventKind>(0), "k", {}}),
                       std::invalid_argument,
                       Message("StateWatch::publish: e.kind must be put or erase"));
  CHECK_THROWS_MATCHES(w.publish({8, WatchEventKind::erase, "k", bytes("x")}),
                       std::invalid_argument,
                       Message("StateWatch::publish: e.value must be empty for an erase"));
  CHECK_THROWS_MATCHES(
      w.compact(8), std::invalid_argument,
      Message("StateWatch::compact: revision must be at most revision() (7), got 8"));
  CHECK_THROWS_MATCHES(
      w.reset(6), std::invalid_argument,
      Message("StateWatch::reset: revision must be at least revision() (7), got 6"));
  // A refused call changes nothing.
  CHECK(w.revision() == 7);
  CHECK(w.compacted_revision() == 0);
  CHECK(w.history_size() == 1);
  CHECK(revisions(w.take(id)) == std::vector<std::uint64_t>{7});
}

TEST_CASE("StateWatch: const members may be read from several threads at once",
          "[state_watch][threads]") {
  StateWatch w({.max_buffered = 8});
  const WatchId open_one = open(w, {.key = "k1"});  // the odd revisions
  const WatchId full_one = open(w, {.key = "", .prefix = true});
  for (std::uint64_t r = 1; r <= 9; ++r)
    w.publish(put(r, "k" + std::to_string(r % 2)));
  const StateWatch& reader = w;
  std::atomic<std::size_t> wrong{0};
  auto read = [&] {
    for (int i = 0; i < 20000; ++i) {
      if (reader.closed(open_one) || reader.closed(full_one) != Errc::full ||
          reader.buffered(open_one) != 5 || reader.buffered(full_one) != 8 ||
          reader.revision() != 9 || reader.open_watches() != 1 || reader.history_size() != 9)
        wrong.fetch_add(1);
    }
  };
  std::thread a(read), b(read);
  a.join();
  b.join();
  CHECK(wrong.load() == 0);
}

#ifndef PODS_TEST_SANITIZED
namespace {
// Counts the allocations `fn` makes.
template <class Fn>
std::size_t allocations_of(Fn fn) {
  allocations = 0;
  fail_at = 0;
  counting = true;
  fn();
  counting = false;
  return allocations.load();
}
}  // namespace

TEST_CASE("StateWatch: what allocates, as the header says", "[state_watch]") {
  StateWatch w;
  const WatchId id = open(w, {.key = "k"});
  std::vector<WatchEvent> events;
  for (std::uint64_t r = 1; r <= 2000; ++r)
    events.push_back(put(r, "k"));
  for (std::size_t i = 0; i < 1000; ++i)  // warm up the scratch and the deques
    w.publish(std::move(events[i]));
  w.take(id);
  // One shared node per event; the history's and the buffer's deques add a block of slots
  // now and then (libstdc++: 32 shared pointers per block).
  const std::size_t published = allocations_of([&] {
    for (std::size_t i = 1000; i < 2000; ++i)
      w.publish(std::move(events[i]));
  });
  CHECK(published >= 1000);
  CHECK(published <= 1000 + 2 * 1000 / 32 + 4);
  CHECK(allocations_of([&] {
          (void)w.closed(id);
          (void)w.buffered(id);
          (void)w.revision();
          (void)w.compacted_revision();
          (void)w.open_watches();
        }) == 0);
}

TEST_CASE("StateWatch: a failed allocation never makes a watch skip an event", "[state_watch]") {
  // Fails the 1st, 2nd, ... allocation of a publish until one succeeds without failing; each
  // time, every watch either has the event or closed with Errc::full, or the publish threw
  // and changed nothing.
  for (std::size_t nth = 1;; ++nth) {
    StateWatch w({.max_buffered = 100});
    std::vector<WatchId> ids;
    for (int i = 0; i < 3; ++i)
      ids.push_back(open(w, {.key = "k"}));
    ids.push_back(open(w, {.key = "", .prefix = true}));
    for (std::uint64_t r = 1; r <= 31; ++r)  // fills the first block of each deque but one slot
      w.publish(put(r, "k"));
    WatchEvent e = put(32, "k");
    allocations = 0;
    fail_at = nth;
    counting = true;
    bool threw = false;
    try {
      w.publish(std::move(e));
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    counting = false;
    const std::size_t made = allocations.load();
    INFO("failing allocation " << nth << " of " << made);
    if (threw) {
      CHECK(w.revision() == 31);
      for (const WatchId id : ids) {
        CHECK(w.buffered(id) == 31);
        CHECK_FALSE(w.closed(id));
      }
    } else {
      CHECK(w.revision() == 32);
      for (const WatchId id : ids) {
        const auto got = w.take(id);
        const bool has_it = !got.empty() && got.back().revision == 32;
        CHECK((has_it || w.closed(id) == Errc::full));
        CHECK(got.size() == (has_it ? 32u : 31u));
      }
    }
    if (made < nth) break;  // this publish made fewer allocations than the one failed
  }
}
#endif

// ---- differential test ----------------------------------------------------------------------

namespace {

// The model: every event ever published in one vector; a watch's events are computed by
// filtering it on demand; a watch is a start, how many of its events were buffered and how
// many taken.
class Model {
 public:
  explicit Model(pods::StateWatchOptions o) : o_(o) {}

  struct Watch {
    WatchSpec spec;
    std::uint64_t start = 0;
    std::size_t delivered = 0;  // its first `delivered` events were buffered
    std::size_t taken = 0;
    std::optional<Errc> closed;
  };

  std::vector<WatchEvent> events_of(const Watch& w) const {
    std::vector<WatchEvent> out;
    for (const auto& e : events_) {
      const bool match = w.spec.prefix ? e.key.starts_with(w.spec.key) : e.key == w.spec.key;
      if (match && e.revision >= w.start) out.push_back(e);
    }
    return out;
  }

  // Each returns the ids the hook should be called with.
  std::vector<WatchId> publish(const WatchEvent& e) {
    events_.push_back(e);
    revision_ = e.revision;
    std::size_t history = 0;
    for (const auto& h : events_)
      history += h.revision > compacted_;
    if (history > o_.history_limit) {
      for (const auto& h : events_) {
        if (h.revision > compacted_) {
          compacted_ = h.revision;
          break;
        }
      }
    }
    std::vector<WatchId> ready;
    for (auto& [id, w] : watches_) {
      if (w.closed) continue;
      const bool match = w.spec.prefix ? e.key.starts_with(w.spec.key) : e.key == w.spec.key;
      if (!match || e.revision < w.start) continue;
      const std::size_t buffered = w.delivered - w.taken;
      if (buffered == o_.max_buffered) {
        w.closed = Errc::full;
        ready.push_back(id);
      } else {
        ++w.delivered;
        if (buffered == 0) ready.push_back(id);
      }
    }
    return ready;
  }

  pods::Outcome<WatchId> watch(const WatchSpec& spec) {
    if (spec.from_revision != 0 && spec.from_revision <= compacted_) return Errc::compacted;
    if (watches_.size() >= o_.max_watches) return Errc::full;
    Watch w;
    w.spec = spec;
    w.start = spec.from_revision == 0 ? revision_ + 1 : spec.from_revision;
    const std::size_t n = events_of(w).size();
    w.delivered = std::min(n, o_.max_buffered);
    if (n > o_.max_buffered) w.closed = Errc::full;
    watches_.emplace(next_, w);
    return next_++;
  }

  std::vector<WatchEvent> take(WatchId id, std::size_t max) {
    auto it = watches_.find(id);
    if (it == watches_.end()) return {};
    Watch& w = it->second;
    const auto all = events_of(w);
    const std::size_t n = std::min(max, w.delivered - w.taken);
    std::vector<WatchEvent> out(all.begin() + static_cast<std::ptrdiff_t>(w.taken),
                                all.begin() + static_cast<std::ptrdiff_t>(w.taken + n));
    w.taken += n;
    return out;
  }

  std::vector<WatchId> cancel(WatchId id) {
    auto it = watches_.find(id);
    if (it == watches_.end()) return {};
    const bool was_open = !it->second.closed;
    watches_.erase(it);
    if (was_open) return {id};
    return {};
  }

  void compact(std::uint64_t r) { compacted_ = std::max(compacted_, r); }

  std::vector<WatchId> reset(std::uint64_t r) {
    std::vector<WatchId> ready;
    for (auto& [id, w] : watches_) {
      if (!w.closed && std::max(w.start, revision_ + 1) <= r) {
        w.closed = Errc::compacted;
        ready.push_back(id);
      }
    }
    revision_ = compacted_ = r;
    return ready;
  }

  std::size_t open() const {
    return static_cast<std::size_t>(std::count_if(watches_.begin(), watches_.end(),
                                                  [](const auto& w) { return !w.second.closed; }));
  }
  std::size_t history() const {
    return static_cast<std::size_t>(std::count_if(
        events_.begin(), events_.end(), [this](const auto& e) { return e.revision > compacted_; }));
  }

  std::uint64_t revision_ = 0;
  std::uint64_t compacted_ = 0;
  std::map<WatchId, Watch> watches_;
  WatchId next_ = 1;

 private:
  pods::StateWatchOptions o_;
  std::vector<WatchEvent> events_;
};

// A fault the adapter injects between the StateWatch and the check, to show it is noticed.
enum class Fault { none, drop_event, reorder_events, shift_resume, wrong_reason };

// The StateWatch as the differential check sees it, with an optional fault.
class Subject {
 public:
  Subject(pods::StateWatchOptions o, Fault f) : w(o), fault_(f) {}
  std::vector<WatchEvent> take(WatchId id, std::size_t max) {
    auto out = w.take(id, max);
    if (!out.empty() && ++takes_ % 50 == 0) {
      if (fault_ == Fault::drop_event) out.pop_back();
      if (fault_ == Fault::reorder_events && out.size() >= 2) std::swap(out[0], out[1]);
    }
    return out;
  }
  pods::Outcome<WatchId> watch(WatchSpec spec) {
    if (fault_ == Fault::shift_resume && spec.from_revision != 0) ++spec.from_revision;
    return w.watch(std::move(spec));
  }
  std::optional<Errc> closed(WatchId id) const {
    auto why = w.closed(id);
    if (fault_ == Fault::wrong_reason && why == Errc::compacted) return Errc::full;
    return why;
  }
  StateWatch w;

 private:
  Fault fault_;
  std::size_t takes_ = 0;
};

std::string describe(const std::vector<WatchEvent>& events) {
  std::ostringstream s;
  for (const auto& e : events)
    s << e.revision << ':' << e.key << ' ';
  return s.str();
}

// What a run exercised, so the test can require that every outcome was reached.
struct Coverage {
  std::size_t events_taken = 0;
  std::size_t closed_full = 0;
  std::size_t closed_compacted = 0;
  std::size_t cancelled_open = 0;
  std::size_t refused_compacted = 0;
  std::size_t refused_full = 0;
  std::size_t resumed = 0;  // watches opened with history events buffered
  std::size_t hook_calls = 0;
};

// Runs `steps` random operations on a StateWatch and the model; returns the first difference.
std::optional<std::string> differential(std::uint64_t seed, int steps, Fault fault,
                                        Coverage& seen) {
  std::mt19937_64 rng(seed);
  auto pick = [&](std::uint64_t lo, std::uint64_t hi) {  // inclusive
    return std::uniform_int_distribution<std::uint64_t>(lo, hi)(rng);
  };
  const pods::StateWatchOptions o{
      .history_limit = pick(1, 40), .max_buffered = pick(1, 8), .max_watches = pick(2, 16)};
  Subject s(o, fault);
  Model m(o);
  std::vector<WatchId> hooked;
  s.w.on_ready([&](WatchId id) { hooked.push_back(id); });
  auto key = [&] {
    std::string k;
    const auto n = pick(0, 3);
    for (std::uint64_t i = 0; i < n; ++i)
      k += static_cast<char>('a' + pick(0, 1));
    return k;
  };
  auto some_id = [&]() -> WatchId {
    if (m.watches_.empty() || pick(0, 9) == 0) return m.next_ + pick(0, 2);  // unknown too
    auto it = m.watches_.begin();
    std::advance(it, static_cast<std::ptrdiff_t>(pick(0, m.watches_.size() - 1)));
    return it->first;
  };
  std::uint64_t published = 0;
  for (int step = 0; step < steps; ++step) {
    std::ostringstream where;
    where << "seed " << seed << " step " << step << ": ";
    std::vector<WatchId> expected_hook;
    hooked.clear();
    const auto op = pick(0, 99);
    if (op < 40) {
      WatchEvent e{m.revision_ + pick(1, 3),
                   pick(0, 3) == 0 ? WatchEventKind::erase : WatchEventKind::put,
                   key(),
                   {}};
      if (e.kind == WatchEventKind::put) e.value = bytes(std::to_string(++published));
      expected_hook = m.publish(e);
      s.w.publish(e);
    } else if (op < 52) {
      WatchSpec spec{key(), pick(0, 1) == 1, 0};
      if (pick(0, 2) != 0)
        spec.from_revision = pick(m.compacted_ > 3 ? m.compacted_ - 3 : 1, m.revision_ + 3);
      const auto want = m.watch(spec);
      const auto got = s.watch(spec);
      if (want.has_value() != got.has_value() ||
          (want ? *want != *got : want.error() != got.error()))
        return where.str() + "watch() returned another outcome";
      if (!want) (want.error() == Errc::compacted ? seen.refused_compacted : seen.refused_full)++;
      if (want && m.watches_.at(*want).delivered > 0) ++seen.resumed;
    } else if (op < 84) {
      const WatchId id = some_id();
      const std::size_t max = pick(0, 4) == 0 ? SIZE_MAX : pick(0, 10);
      const auto want = m.take(id, max);
      const auto got = s.take(id, max);
      if (want != got)
        return where.str() + "take(" + std::to_string(id) + ") gave " + describe(got) +
               "instead of " + describe(want);
      seen.events_taken += got.size();
    } else if (op < 91) {
      // A consumer mostly cancels the watches that closed; sometimes an open one.
      WatchId id = some_id();
      for (const auto& [candidate, w] : m.watches_) {
        if (w.closed && pick(0, 1) == 0) {
          id = candidate;
          break;
        }
      }
      expected_hook = m.cancel(id);
      s.w.cancel(id);
    } else if (op < 96) {
      if (pick(0, 5) == 0) {
        const auto r = m.revision_ + 1;
        bool threw = false;
        try {
          s.w.compact(r);
        } catch (const std::invalid_argument&) {
          threw = true;
        }
        if (!threw) return where.str() + "compact above revision() did not throw";
      } else {
        const auto r = pick(0, m.revision_);
        m.compact(r);
        s.w.compact(r);
      }
    } else if (op < 97 && pick(0, 1) == 0) {
      const auto r = m.revision_ + pick(0, 6);
      expected_hook = m.reset(r);
      s.w.reset(r);
    } else {
      // A refused publish: nothing changes.
      bool threw = false;
      try {
        s.w.publish(put(m.revision_, "a"));
      } catch (const std::invalid_argument&) {
        threw = true;
      }
      if (!threw) return where.str() + "a publish at revision() did not throw";
    }
    if (hooked != expected_hook) return where.str() + "the hook was called for other watches";
    seen.hook_calls += hooked.size();
    for (const WatchId id : hooked) {
      const auto why = s.w.closed(id);
      if (why == Errc::full) ++seen.closed_full;
      if (why == Errc::compacted) ++seen.closed_compacted;
      if (why == Errc::cancelled) ++seen.cancelled_open;
    }
    if (s.w.revision() != m.revision_ || s.w.compacted_revision() != m.compacted_)
      return where.str() + "revision() or compacted_revision() differs";
    if (s.w.history_size() != m.history() || s.w.history_size() > o.history_limit)
      return where.str() + "history_size() differs";
    if (s.w.open_watches() != m.open() || s.w.held_watches() != m.watches_.size())
      return where.str() + "open_watches() or held_watches() differs";
    for (const auto& [id, w] : m.watches_) {
      if (s.closed(id) != w.closed)
        return where.str() + "closed(" + std::to_string(id) + ") differs";
      if (s.w.buffered(id) != w.delivered - w.taken || s.w.buffered(id) > o.max_buffered)
        return where.str() + "buffered(" + std::to_string(id) + ") differs";
    }
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("StateWatch: matches a model that filters every event on demand", "[state_watch][sim]") {
  const std::uint64_t n = seeds(20);
  Coverage seen;
  for (std::uint64_t seed = 1; seed <= n; ++seed) {
    const auto difference = differential(seed, 3000, Fault::none, seen);
    INFO(difference.value_or(""));
    REQUIRE_FALSE(difference);
  }
  // Every outcome was reached, so the comparison covered each of them.
  CHECK(seen.events_taken > 200 * n);
  CHECK(seen.closed_full > 0);
  CHECK(seen.closed_compacted > 0);
  CHECK(seen.cancelled_open > 0);
  CHECK(seen.refused_compacted > 0);
  CHECK(seen.refused_full > 0);
  CHECK(seen.resumed > 0);
  WARN(n << " seeds x 3000 operations: " << seen.events_taken << " events taken, "
         << seen.hook_calls << " hook calls, closes " << seen.closed_full << " full / "
         << seen.closed_compacted << " compacted / " << seen.cancelled_open << " cancelled, "
         << seen.refused_compacted << " + " << seen.refused_full << " refused (compacted + full), "
         << seen.resumed << " resumes from history");
}

TEST_CASE("StateWatch: the differential check notices a broken watch", "[state_watch][sim]") {
  for (Fault f :
       {Fault::drop_event, Fault::reorder_events, Fault::shift_resume, Fault::wrong_reason}) {
    bool caught = false;
    Coverage ignored;
    for (std::uint64_t seed = 1; seed <= 20 && !caught; ++seed)
      caught = differential(seed, 3000, f, ignored).has_value();
    INFO("fault " << static_cast<int>(f));
    CHECK(caught);
  }
}

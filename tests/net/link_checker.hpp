// Shared by the link tests: a record of what each node sent and delivered, and the check of
// the perfect-link rules at every delivery.
#pragma once

#include <pods/policy/codec.hpp>
#include <pods/policy/transport.hpp>
#include <pods/policy/wire.hpp>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <span>
#include <string>
#include <tuple>
#include <vector>

namespace links_test {

// A numbered message: the n-th message of one incarnation of a sender to one peer.
struct Numbered {
  std::uint64_t incarnation = 0;
  std::uint64_t n = 0;
  friend bool operator==(const Numbered&, const Numbered&) = default;
};

// Numbered as two little-endian u64s.
struct NumberedCodec {
  void encode(const Numbered& m, pods::Buffer& out) const {
    pods::wire::Writer w(out);
    w.u64(m.incarnation);
    w.u64(m.n);
  }
  Numbered decode(std::span<const std::byte> bytes) const {
    pods::wire::Reader r(bytes, "numbered message");
    Numbered m;
    m.incarnation = r.u64();
    m.n = r.u64();
    r.expect_end();
    return m;
  }
};

// Returns the number of seeds to run: PODS_SEEDS from the environment, or `fallback`.
inline std::uint64_t seeds(std::uint64_t fallback) {
  if (const char* v = std::getenv("PODS_SEEDS")) {
    const long long n = std::atoll(v);
    if (n > 0) return static_cast<std::uint64_t>(n);
  }
  return fallback;
}

// Checks, at each delivery, that between one sender incarnation and one receiver incarnation
// messages arrive at most once, in send order, never invented, and that a number passed over
// was sent before the receiver's incarnation started (so an earlier incarnation may have taken
// it). At the end, every message sent after its receiver started must have arrived.
class LinkChecker {
 public:
  void started(pods::NodeId node, std::uint64_t incarnation, std::int64_t now) {
    starts_[{node, incarnation}] = now;
  }

  void sent(pods::NodeId from, std::uint64_t incarnation, pods::NodeId to, std::uint64_t n,
            std::int64_t now) {
    auto& times = sends_[{from, incarnation, to}];
    if (n != times.size() + 1) violation("test bug: sends not numbered 1, 2, ...");
    times.push_back(now);
  }

  void delivered(pods::NodeId to, std::uint64_t to_incarnation, pods::NodeId from,
                 const Numbered& m) {
    ++deliveries_;
    const auto& times = sends_[{from, m.incarnation, to}];
    if (m.n == 0 || m.n > times.size()) {
      violation("invented: " + describe(from, m, to) + " was never sent");
      return;
    }
    std::uint64_t& last = last_[{from, m.incarnation, to, to_incarnation}];
    if (m.n <= last) {
      violation("duplicate or reordered: " + describe(from, m, to) + " after #" +
                std::to_string(last));
      return;
    }
    const std::int64_t start = starts_.at({to, to_incarnation});
    for (std::uint64_t k = last + 1; k < m.n; ++k) {
      if (times[k - 1] >= start) {
        violation("lost: #" + std::to_string(k) + " was sent after the receiver started and " +
                  describe(from, m, to) + " came first");
        break;
      }
    }
    last = m.n;
  }

  // Returns the messages from `from` (at `incarnation`) to `to` (at `to_incarnation`) sent
  // after that receiver started that have not arrived.
  std::uint64_t missing(pods::NodeId from, std::uint64_t incarnation, pods::NodeId to,
                        std::uint64_t to_incarnation) const {
    auto s = sends_.find({from, incarnation, to});
    if (s == sends_.end()) return 0;
    const std::int64_t start = starts_.at({to, to_incarnation});
    auto l = last_.find({from, incarnation, to, to_incarnation});
    const std::uint64_t last = l == last_.end() ? 0 : l->second;
    std::uint64_t count = 0;
    for (std::uint64_t k = last + 1; k <= s->second.size(); ++k)
      if (s->second[k - 1] >= start) ++count;
    return count;
  }

  std::uint64_t sent_count(pods::NodeId from, std::uint64_t incarnation, pods::NodeId to) const {
    auto s = sends_.find({from, incarnation, to});
    return s == sends_.end() ? 0 : s->second.size();
  }

  const std::vector<std::string>& violations() const noexcept { return violations_; }
  std::uint64_t deliveries() const noexcept { return deliveries_; }

 private:
  static std::string describe(pods::NodeId from, const Numbered& m, pods::NodeId to) {
    return "#" + std::to_string(m.n) + " of node " + std::to_string(from) + " (incarnation " +
           std::to_string(m.incarnation) + ") to node " + std::to_string(to);
  }
  void violation(std::string what) {
    if (violations_.size() < 20) violations_.push_back(std::move(what));
  }

  std::map<std::tuple<pods::NodeId, std::uint64_t>, std::int64_t> starts_;
  std::map<std::tuple<pods::NodeId, std::uint64_t, pods::NodeId>, std::vector<std::int64_t>> sends_;
  std::map<std::tuple<pods::NodeId, std::uint64_t, pods::NodeId, std::uint64_t>, std::uint64_t>
      last_;
  std::vector<std::string> violations_;
  std::uint64_t deliveries_ = 0;
};

// Sends, through `link`, up to three more numbered messages to each peer until `quota` were
// sent, recording each accepted one in `checker`; a full link is tried again next time.
template <class Link>
void send_numbered(Link& link, LinkChecker& checker, pods::NodeId self, std::uint64_t incarnation,
                   const std::vector<pods::NodeId>& peers,
                   std::map<pods::NodeId, std::uint64_t>& count, std::uint64_t quota,
                   std::int64_t now) {
  for (pods::NodeId p : peers) {
    if (p == self) continue;
    for (int i = 0; i < 3 && count[p] < quota; ++i) {
      if (!link.try_send(p, Numbered{incarnation, count[p] + 1})) break;
      checker.sent(self, incarnation, p, ++count[p], now);
    }
  }
}

}  // namespace links_test

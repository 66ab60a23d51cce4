// The bank: accounts spread over partitions, transfers as two-phase commits, and snapshot
// reads of every balance at a hybrid-clock timestamp, on the simulator (Jepsen's bank test).
//
// Nine accounts live on three partition nodes: account a's key "account/a" falls in one of 12
// FixedPartitions, whose primary holds it. Node 1 is the bank's front end: a TwoPhaseCoordinator
// that runs transfers of 1 between accounts on different partitions. A transfer is stamped at begin
// with the front end's HybridClock, and its client is acknowledged only after the commit is durable
// and the Clock-Bound Wait has passed (now - ε > the stamp), so by then every clock in the cluster
// is past it. Each partition is a TwoPhaseParticipant whose Apply records the committed delta with
// its stamp; its Admit refuses a transfer stamped at or below the highest snapshot it has served
// (so a served snapshot never changes), and after a restart it takes that to be its clock plus ε
// (it served nothing its clock could not be ε behind). Node 5 reads: it stamps a snapshot with its
// own HybridClock, asks every partition for its balances as of that stamp (a partition with a
// locked account answers "retry": a prepared transfer may yet commit below the stamp) and sums
// them.
//
// Checked: every snapshot's total is the opening total (no transfer is seen half-applied);
// a snapshot begun after a transfer was acknowledged includes it (its stamp is above the
// transfer's); after the faults stop, nothing is locked or in doubt. With a reader whose
// clock lags by more than ε, the second check fails: the anomaly the wait exists to prevent.
#pragma once

#include <pods/partitioning/fixed_partitions.hpp>
#include <pods/policy/wire.hpp>
#include <pods/replication/two_phase_commit.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/nemesis.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>
#include <pods/time/clock_bound_wait.hpp>
#include <pods/time/hybrid_clock.hpp>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace bank {

using namespace std::chrono_literals;
using pods::HybridTimestamp;
using pods::NodeId;

constexpr NodeId kFrontEnd = 1;
constexpr NodeId kReader = 5;
const std::vector<NodeId> kPartitions{2, 3, 4};
constexpr std::uint64_t kAccounts = 9;
constexpr std::int64_t kOpening = 100;
constexpr std::int64_t kTotal = static_cast<std::int64_t>(kAccounts) * kOpening;

inline NodeId partition_of(std::uint64_t account) {
  return 2 + account % 3;
}

// Reader -> partition: your balances as of `at`. Partition -> reader: them, or retry.
struct ReadRequest {
  std::uint64_t read = 0;
  HybridTimestamp at;
};
struct ReadReply {
  std::uint64_t read = 0;
  bool retry = false;
  std::int64_t sum = 0;
};

using Message = std::variant<pods::TwoPhaseMessage, ReadRequest, ReadReply>;
using Net = pods::sim::Network<Message>;

// Carries the two-phase commit's messages on the bank's network.
struct TwoPhaseLink {
  Net::Endpoint endpoint;
  void send(NodeId to, pods::TwoPhaseMessage m) { endpoint.send(to, Message{std::move(m)}); }
};

using Coordinator =
    pods::TwoPhaseCoordinator<TwoPhaseLink, pods::sim::NodeClock, pods::MemoryStorage>;
using Participant =
    pods::TwoPhaseParticipant<TwoPhaseLink, pods::sim::NodeClock, pods::MemoryStorage>;
using Hlc = pods::HybridClock<pods::sim::NodeClock, pods::SingleThreaded>;

// One branch of a transfer: the account, its delta and the transfer's stamp.
struct Part {
  std::uint64_t account = 0;
  std::int64_t delta = 0;
  HybridTimestamp stamp;
};

inline pods::TwoPhaseBranch encode(const Part& p) {
  pods::TwoPhaseBranch b;
  b.participant = partition_of(p.account);
  b.work.keys = {"account/" + std::to_string(p.account)};
  pods::wire::Writer w(b.work.payload);
  w.u64(p.account);
  w.i64(p.delta);
  w.i64(p.stamp.wall_ns);
  w.u32(p.stamp.logical);
  return b;
}

inline Part decode(const pods::TwoPhaseWork& work) {
  pods::wire::Reader r(work.payload, "bank transfer");
  Part p;
  p.account = r.u64();
  p.delta = r.i64();
  p.stamp.wall_ns = r.i64();
  p.stamp.logical = r.u32();
  r.expect_end();
  return p;
}

struct Options {
  std::chrono::nanoseconds epsilon = 20ms;    // the promised bound on clock skew
  std::chrono::nanoseconds reader_lag = 0ms;  // the reader's clock offset below the others
  bool commit_wait = true;                    // acknowledge only once now - ε > the stamp
  bool refuse_stale = true;  // a partition refuses a transfer stamped below a served snapshot
};

// What the checks see.
struct World {
  Options options;
  bool open = true;
  // Acknowledged transfers: their stamp, in acknowledgement order.
  std::vector<HybridTimestamp> acknowledged;
  std::uint64_t snapshots = 0, retries = 0, transfers = 0, missed = 0;
  std::string violation;
  void fail(const std::string& what) {
    if (violation.empty()) violation = what;
  }
};

class Node {
 public:
  Node(const pods::sim::NodeContext<Message>& ctx, World& world)
      : world_(&world),
        id_(ctx.id),
        endpoint_(ctx.endpoint),
        clock_(ctx.clock),
        random_(ctx.random),
        hlc_(ctx.clock, 0ns),
        bound_(ctx.clock, world.options.epsilon) {
    reads_ = ctx.incarnation << 32;  // read ids never repeat across restarts: a reply to an
                                     // earlier incarnation's read may still be in flight
    if (id_ == kFrontEnd) {
      coordinator_ = std::make_unique<Coordinator>(
          TwoPhaseLink{ctx.endpoint}, ctx.clock, ctx.storage,
          pods::TwoPhaseCoordinatorOptions{.id = id_,
                                           .participants = kPartitions,
                                           .prepare_timeout = 100ms,
                                           .retry_interval = 30ms});
    } else if (id_ != kReader) {
      for (std::uint64_t a = 0; a < kAccounts; ++a)
        if (partition_of(a) == id_) balance_[a] = kOpening;
      // Nothing it served before a crash was stamped above its clock plus ε.
      served_ =
          HybridTimestamp{(clock_.now() + world.options.epsilon).time_since_epoch().count(), 0};
      participant_ = std::make_unique<Participant>(
          TwoPhaseLink{ctx.endpoint}, ctx.clock, ctx.storage,
          pods::TwoPhaseParticipantOptions{.id = id_, .query_interval = 50ms},
          [this](pods::TxnId, const pods::TwoPhaseWork& w) {
            const Part p = decode(w);
            history_.push_back(p);
          },
          [this](pods::TxnId, const pods::TwoPhaseWork& w) {
            return !world_->options.refuse_stale || decode(w).stamp > served_;
          });
    }
  }

  void receive(NodeId from, Message m) {
    if (auto* t = std::get_if<pods::TwoPhaseMessage>(&m)) {
      if (coordinator_) coordinator_->receive(from, std::move(*t));
      if (participant_) participant_->receive(from, std::move(*t));
    } else if (auto* q = std::get_if<ReadRequest>(&m)) {
      if (participant_) serve(from, *q);
    } else if (auto* r = std::get_if<ReadReply>(&m)) {
      if (id_ == kReader) collect(from, *r);
    }
  }

  void tick() {
    const auto now = clock_.now();
    if (coordinator_) {
      coordinator_->tick();
      if (world_->open && now >= next_) {
        next_ =
            now + random_.between(std::chrono::nanoseconds(5ms), std::chrono::nanoseconds(20ms));
        begin_transfer();
      }
      // The Clock-Bound Wait: acknowledge a committed transfer once every clock is past it.
      for (auto it = waiting_.begin(); it != waiting_.end();) {
        if (!world_->options.commit_wait || bound_.is_safe(*it)) {
          world_->acknowledged.push_back(*it);
          it = waiting_.erase(it);
        } else {
          ++it;
        }
      }
    }
    if (participant_) participant_->tick();
    if (id_ == kReader && now >= next_) {
      next_ = now + 30ms;  // a new snapshot, or the rest of this one again
      if (!read_ || read_->replies.size() == kPartitions.size()) start_read();
      for (NodeId p : kPartitions)
        if (!read_->replies.count(p)) endpoint_.send(p, Message{ReadRequest{read_->id, read_->at}});
    }
  }

  std::optional<pods::sim::NodeClock::time_point> next_deadline() const {
    std::optional<pods::sim::NodeClock::time_point> d;
    if (coordinator_) d = coordinator_->next_deadline();
    if (participant_) d = participant_->next_deadline();
    if ((id_ == kFrontEnd && world_->open) || id_ == kReader)
      if (!d || next_ < *d) d = next_;
    return d;
  }

  Participant* participant() { return participant_.get(); }
  Coordinator* coordinator() { return coordinator_.get(); }

 private:
  struct Read {
    std::uint64_t id = 0;
    HybridTimestamp at;
    std::size_t acknowledged_before = 0;  // transfers acknowledged when it began
    std::map<NodeId, std::int64_t> replies;
  };

  void begin_transfer() {
    const std::uint64_t from = random_.below(kAccounts);
    std::uint64_t to = random_.below(kAccounts);
    while (partition_of(to) == partition_of(from))
      to = random_.below(kAccounts);
    const HybridTimestamp stamp = hlc_.now();
    ++world_->transfers;
    coordinator_->begin({encode({from, -1, stamp}), encode({to, +1, stamp})},
                        [this, stamp](pods::TxnId, pods::TwoPhaseOutcome o) {
                          if (o == pods::TwoPhaseOutcome::committed) waiting_.push_back(stamp);
                        });
  }

  void serve(NodeId from, const ReadRequest& q) {
    if (q.at > served_) served_ = q.at;  // refuse, from now on, transfers stamped below it
    if (participant_->locked() != 0) {
      endpoint_.send(from, Message{ReadReply{q.read, true, 0}});
      return;
    }
    std::int64_t sum = 0;
    for (const auto& [account, opening] : balance_)
      sum += opening;
    for (const Part& p : history_)
      if (p.stamp < q.at) sum += p.delta;
    endpoint_.send(from, Message{ReadReply{q.read, false, sum}});
  }

  void start_read() {
    Read r;
    r.id = ++reads_;
    r.at = hlc_.now();
    r.acknowledged_before = world_->acknowledged.size();
    read_ = std::move(r);
  }

  void collect(NodeId from, const ReadReply& r) {
    if (!read_ || r.read != read_->id || read_->replies.count(from)) return;
    if (r.retry) {
      ++world_->retries;
      return;
    }
    read_->replies[from] = r.sum;
    if (read_->replies.size() != kPartitions.size()) return;
    ++world_->snapshots;
    std::int64_t total = 0;
    for (const auto& [p, s] : read_->replies)
      total += s;
    if (total != kTotal) {
      world_->fail("snapshot at " + pods::to_string(read_->at) + " totals " +
                   std::to_string(total));
    }
    for (std::size_t i = 0; i < read_->acknowledged_before; ++i)
      if (!(world_->acknowledged[i] < read_->at)) ++world_->missed;
  }

  World* world_;
  NodeId id_;
  Net::Endpoint endpoint_;
  pods::sim::NodeClock clock_;
  pods::Random random_;
  Hlc hlc_;
  pods::ClockBoundWait<pods::sim::NodeClock> bound_;
  std::unique_ptr<Coordinator> coordinator_;
  std::unique_ptr<Participant> participant_;
  std::map<std::uint64_t, std::int64_t> balance_;  // opening balances
  std::vector<Part> history_;                      // committed parts, in commit order
  HybridTimestamp served_;
  std::vector<HybridTimestamp> waiting_;  // committed, waiting out ε
  pods::sim::NodeClock::time_point next_{};
  std::uint64_t reads_ = 0;
  std::optional<Read> read_;
};

using Cluster = pods::sim::Cluster<Node, Message>;

struct Result {
  std::string violation;
  std::uint64_t snapshots = 0, retries = 0, transfers = 0, acknowledged = 0, missed = 0,
                crashes = 0;
};

// Runs the bank for one seed: 6 s of faults (crashes with torn writes, partitions, pauses,
// loss, duplication, delays; the clocks keep fixed offsets within ε/2 of true time, the
// reader's lowered by options.reader_lag), then 2 s quiet.
inline Result run(std::uint64_t seed, Options options) {
  pods::sim::Simulation sim(seed);
  Net net(sim, {.loss = 0.02, .duplicate = 0.02, .min_delay = 1ms, .max_delay = 5ms});
  World world;
  world.options = options;
  Cluster cluster(net,
                  [&](const Cluster::Context& ctx) { return std::make_unique<Node>(ctx, world); });
  pods::Random offsets(seed ^ 0x5eed);
  const auto half = options.epsilon / 2;
  for (NodeId id = 1; id <= 5; ++id) {
    cluster.add(id);
    auto offset = offsets.between(-half, half);
    if (id == kReader) offset -= options.reader_lag;
    cluster.clock(id).set_offset(offset);
  }
  pods::sim::NemesisOptions faults{.duration = 8s,
                                   .quiet = 2s,
                                   .max_gap = 400ms,
                                   .max_fault = 800ms,
                                   .clock_steps = false,
                                   .clock_drift = false};
  pods::sim::Nemesis nemesis(cluster, faults);
  sim.schedule(nemesis.heal_at() - sim.now(), [&] { world.open = false; });
  while (sim.now() < nemesis.end_at() && sim.step() && world.violation.empty()) {
  }
  if (world.violation.empty()) {
    for (NodeId p : kPartitions) {
      Node* n = cluster.node(p);
      if (!n) {
        world.fail("partition " + std::to_string(p) + " is down after the heal");
      } else if (n->participant()->locked() != 0 || n->participant()->in_doubt() != 0) {
        world.fail("partition " + std::to_string(p) + " holds a lock after the quiet period");
      }
    }
  }
  Result r;
  r.violation = world.violation;
  if (!r.violation.empty()) r.violation += "\n" + nemesis.describe();
  r.snapshots = world.snapshots;
  r.retries = world.retries;
  r.transfers = world.transfers;
  r.acknowledged = world.acknowledged.size();
  r.missed = world.missed;
  for (const auto& e : nemesis.log())
    if (e.what.rfind("crash ", 0) == 0) ++r.crashes;
  return r;
}

}  // namespace bank

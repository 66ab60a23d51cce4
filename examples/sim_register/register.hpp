// examples/sim_register/register.hpp — two replicated registers, one of them wrong
//
// A register replicated on n nodes, read and written by clients over a fair-loss network.
// Two client protocols share the same replicas:
//   - Abd: Attiya, Bar-Noy and Dolev's algorithm (1995). A write asks a majority for the
//     highest tag (version, writer), then stores (version + 1, self) on a majority. A read
//     asks a majority for the highest tag and writes it back to a majority before it
//     answers, so no later read can return anything older. Linearizable while a majority
//     of replicas is reachable (and only unknown outcomes otherwise).
//   - SingleReplicaRead: the same writes, but a read asks one replica and answers with what
//     it has. Cheaper by two round trips, and not linearizable: that replica may not be in
//     the majority the last write reached.
//   - AbdWithoutWriteBack: ABD with one rule broken: a read answers with the highest tag of
//     a majority but skips the write-back. Subtler: a read concurrent with a write can see
//     the new value from the one replica that has it, and a later read can still see the
//     old one from a majority that does not (a new-old inversion).
// Replicas keep their tag and value in a SegmentedLog over the node's MemoryStorage and
// acknowledge a write only after it is synced, so a replica rebuilt after a crash knows
// every tag it ever acknowledged.
#pragma once

#include <pods/policy/transport.hpp>
#include <pods/sim/cluster.hpp>
#include <pods/sim/history.hpp>
#include <pods/sim/linearizability.hpp>
#include <pods/sim/network.hpp>
#include <pods/sim/simulation.hpp>
#include <pods/storage/memory_storage.hpp>
#include <pods/storage/segmented_log.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

namespace sim_register {

using pods::NodeId;
using namespace std::chrono_literals;

// A version of the register: ordered by version number, then by the writer's id, so two
// writers that picked the same number never tie.
struct Tag {
  std::uint64_t version = 0;  // 0: never written
  std::uint64_t writer = 0;
  friend auto operator<=>(const Tag&, const Tag&) = default;
};

struct Stored {
  Tag tag;
  std::int64_t value = 0;  // meaningful when tag.version > 0
  friend bool operator==(const Stored&, const Stored&) = default;
};

// The messages between clients and replicas. `op` is the client's operation number, so a
// client ignores late answers to an operation it has finished.
struct Query {
  std::uint64_t op = 0;
  friend bool operator==(const Query&, const Query&) = default;
};
struct QueryReply {
  std::uint64_t op = 0;
  Stored stored;
  friend bool operator==(const QueryReply&, const QueryReply&) = default;
};
struct Store {
  std::uint64_t op = 0;
  Stored stored;
  friend bool operator==(const Store&, const Store&) = default;
};
struct StoreAck {
  std::uint64_t op = 0;
  friend bool operator==(const StoreAck&, const StoreAck&) = default;
};
using Message = std::variant<Query, QueryReply, Store, StoreAck>;

// One replica: answers queries with its stored tag and value, adopts a larger tag from a
// Store, and acknowledges only once what it holds is synced.
class Replica {
 public:
  Replica(pods::sim::Network<Message>::Endpoint endpoint, pods::MemoryStorage storage)
      : endpoint_(endpoint), log_(std::move(storage)) {
    // Recovery: the last synced record is the newest tag this replica ever acknowledged.
    if (log_.last_index() >= log_.first_index()) {
      const auto entry = log_.read(log_.last_index());
      if (!entry || entry->payload.size() != sizeof(Stored)) {
        throw std::runtime_error("Replica: unexpected record in the register log");
      }
      std::memcpy(&stored_, entry->payload.data(), sizeof(Stored));
    }
  }

  void receive(NodeId from, Message message) {
    if (const auto* q = std::get_if<Query>(&message)) {
      endpoint_.send(from, QueryReply{q->op, stored_});
    } else if (const auto* s = std::get_if<Store>(&message)) {
      if (stored_.tag < s->stored.tag) {
        stored_ = s->stored;
        const auto* bytes = reinterpret_cast<const std::byte*>(&stored_);
        log_.append(std::span<const std::byte>(bytes, sizeof(Stored)));
        log_.sync();  // durable before it is acknowledged
        if (log_.last_index() > 64) log_.remove_before(log_.last_index());
      }
      endpoint_.send(from, StoreAck{s->op});
    }
  }
  void tick() {}

  const Stored& stored() const noexcept { return stored_; }

 private:
  pods::sim::Network<Message>::Endpoint endpoint_;
  pods::SegmentedLog<pods::MemoryStorage> log_;
  Stored stored_;
};

using Model = pods::sim::RegisterModel<std::int64_t>;
using Op = pods::sim::Operation<Model::Input, Model::Output>;
using Recorder = pods::sim::History<Model::Input, Model::Output>;

enum class Protocol { abd, single_replica_read, abd_without_write_back };

struct ClientOptions {
  Protocol protocol = Protocol::abd;
  std::chrono::nanoseconds retry = 20ms;     // resend to replicas that have not answered
  std::chrono::nanoseconds give_up = 500ms;  // then the outcome is unknown
  std::chrono::nanoseconds think = 10ms;     // mean pause between operations
  int operations = 30;                       // per client
  double write_share = 0.5;
};

// One client: runs `operations` operations one after another, each through the two phases
// of its protocol, retransmitting over the fair-loss network and giving up (outcome unknown)
// after give_up. Every operation is recorded in the shared history.
class Client {
 public:
  Client(pods::sim::Simulation& sim, pods::sim::Network<Message>& net, NodeId id,
         std::vector<NodeId> replicas, Recorder& history, ClientOptions options)
      : sim_(sim),
        endpoint_(net.endpoint(id)),
        id_(id),
        replicas_(std::move(replicas)),
        history_(history),
        options_(options),
        random_(sim.random().fork(id)) {
    net.on_deliver(id, [this](NodeId from, Message m) { receive(from, std::move(m)); });
  }

  void start() { schedule_next(); }
  bool done() const noexcept { return remaining_ == 0 && !busy_; }

 private:
  enum class Phase { query, store };

  std::size_t majority() const noexcept { return replicas_.size() / 2 + 1; }

  void schedule_next() {
    if (remaining_ == 0) return;
    const auto pause = random_.exponential(options_.think);
    sim_.schedule(pause, [this] { begin(); });
  }

  void begin() {
    --remaining_;
    busy_ = true;
    ++op_;
    is_write_ = random_.chance(options_.write_share);
    // Values are unique per (client, operation), so a read names the write it saw.
    value_ = static_cast<std::int64_t>(id_ * 1000 + op_);
    recorded_ = history_.invoke(id_, is_write_ ? Model::write(value_) : Model::read());
    best_ = Stored{};
    started_ = sim_.now();
    if (!is_write_ && options_.protocol == Protocol::single_replica_read) {
      target_ = {replicas_[random_.below(replicas_.size())]};
    } else {
      target_ = replicas_;
    }
    enter(Phase::query);
  }

  void enter(Phase phase) {
    phase_ = phase;
    answered_.clear();
    send_missing();
  }

  void send_missing() {
    for (NodeId r : target_) {
      if (answered_.count(r)) continue;
      if (phase_ == Phase::query) {
        endpoint_.send(r, Query{op_});
      } else {
        endpoint_.send(r, Store{op_, chosen_});
      }
    }
    const std::uint64_t op = op_;
    const Phase phase = phase_;
    sim_.schedule(options_.retry, [this, op, phase] {
      if (!busy_ || op != op_ || phase != phase_) return;
      if (sim_.now() - started_ >= options_.give_up) {
        history_.unknown(recorded_);  // it may or may not have taken effect
        finish();
      } else {
        send_missing();
      }
    });
  }

  std::size_t needed() const noexcept { return target_.size() == 1 ? 1 : majority(); }

  void receive(NodeId from, Message message) {
    if (const auto* r = std::get_if<QueryReply>(&message)) {
      if (!busy_ || r->op != op_ || phase_ != Phase::query) return;
      if (!answered_.insert(from).second) return;
      if (best_.tag < r->stored.tag) best_ = r->stored;
      if (answered_.size() < needed()) return;
      if (is_write_) {
        chosen_ = Stored{Tag{best_.tag.version + 1, id_}, value_};
        enter(Phase::store);
      } else if (options_.protocol != Protocol::abd) {
        complete();  // the flaw: no write-back (and, single_replica_read, no majority)
      } else {
        chosen_ = best_;  // write back what will be returned
        enter(Phase::store);
      }
    } else if (const auto* a = std::get_if<StoreAck>(&message)) {
      if (!busy_ || a->op != op_ || phase_ != Phase::store) return;
      if (!answered_.insert(from).second) return;
      if (answered_.size() >= majority()) complete();
    }
  }

  void complete() {
    if (is_write_) {
      history_.ok(recorded_, Model::Output{});
    } else {
      const auto& seen = options_.protocol == Protocol::abd ? chosen_ : best_;
      Model::Output out;
      if (seen.tag.version > 0) out.value = seen.value;
      history_.ok(recorded_, out);
    }
    finish();
  }

  void finish() {
    busy_ = false;
    schedule_next();
  }

  pods::sim::Simulation& sim_;
  pods::sim::Network<Message>::Endpoint endpoint_;
  NodeId id_;
  std::vector<NodeId> replicas_;
  Recorder& history_;
  ClientOptions options_;
  pods::Random random_;
  int remaining_ = options_.operations;
  bool busy_ = false;
  std::uint64_t op_ = 0;
  bool is_write_ = false;
  std::int64_t value_ = 0;
  Recorder::Id recorded_{};
  Stored best_;
  Stored chosen_;
  Phase phase_ = Phase::query;
  std::vector<NodeId> target_;
  std::set<NodeId> answered_;
  pods::sim::Simulation::time_point started_{};
};

}  // namespace sim_register

// pods/partitioning/fixed_partitions.hpp — Fixed Partitions: many more partitions than nodes
//
// Problem:       Hashing a key straight to one of n nodes (hash mod n) moves almost every key
//                when n changes, and a hash that differs between platforms, versions or runs
//                (std::hash, a seeded hash) sends the same key to different places on
//                different machines.
// Solution:      The key space is cut into a partition count fixed when the cluster is created,
//                much larger than the node count. A key's partition is a stable hash of its
//                bytes modulo that count, so it never changes. Nodes own whole partitions:
//                when nodes join or leave, only the assignment partition -> nodes changes, and
//                the move plan moves only the partition replicas it must.
//                The hash, exactly: h = FNV-1a 64 over the key's bytes (offset basis
//                0xcbf29ce484222325, prime 0x100000001b3: h = (h ^ byte) * prime for each
//                byte), then the 64-bit finaliser of MurmurHash3 (h ^= h >> 33;
//                h *= 0xff51afd7ed558ccd; h ^= h >> 33; h *= 0xc4ceb93fe53a87eb; h ^= h >> 33),
//                which spreads FNV's weak low bits over the whole word; partition = h mod count.
//                Each partition has `replication_factor` replicas on distinct nodes; replica 0
//                is the primary. The first assignment puts replica i of partition p on node
//                (p * factor + i) mod n of the sorted node list.
// Guarantees:    partition_of(key) depends only on the key's bytes and the partition count:
//                the same on every platform, compiler and version (pinned by a test).
//                Every node holds floor(P * f / n) or ceil(P * f / n) replicas (P partitions,
//                f the replication factor, n nodes): balanced within one. The replicas of a
//                partition are on distinct nodes. set_nodes / add_node / remove_node move
//                every replica on a departed node and, from each remaining node, its excess
//                over its new share (the larger shares going to the nodes that hold the most):
//                the counting bound, which no plan can beat. A maximum flow picks which
//                replicas go where, so the plan meets the bound whenever direct moves can
//                (always with one replica per partition). When the distinct-replica rule
//                blocks that (every node with room already holds the partition), each blocked
//                replica costs one more move, through a node that passes another replica on.
//                A replica keeps its slot, so a primary stays a primary unless its node
//                leaves or sheds it.
// Not provided:  Moving the data (the plan says what to move; the caller copies it and then
//                applies the plan); agreement on the assignment (keep it in a consistent core
//                or have one leader compute it); weights per node; balancing primaries
//                separately from replicas; changing the partition count.
// Thread safety: thread-compatible: a value type; const members may be called concurrently.
// Errors:        A zero partition count, an empty or repeating node list, a replication factor
//                of 0 or above the node count, an unknown partition or node, and adding a
//                member or removing a non-member throw std::invalid_argument naming the
//                argument and the rule.
// Cost:          partition_of: one pass over the key's bytes, no allocation. replicas(p): O(1).
//                Construction: O(P * f). A move plan: a maximum flow (Edmonds-Karp) over
//                O(P * f * n) edges, O(M * P * f * n) time for M moves; allocates.
// Example:
//   pods::FixedPartitions parts(64, std::vector<pods::NodeId>{1, 2, 3}, {.replication_factor = 2});
//   const pods::PartitionId p = parts.partition_of("user:42");
//   assert(parts.replicas(p).size() == 2);
//   const std::vector<pods::PartitionMove> moves = parts.add_node(4);
//   assert(moves.size() == 32);  // 128 replicas: 32 each, and node 4 receives 32
// Example context: #include <cassert>
#pragma once

#include <pods/policy/assert.hpp>
#include <pods/policy/transport.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace pods {

using PartitionId = std::uint32_t;

// Returns the stable 64-bit hash of `bytes`: FNV-1a 64 followed by MurmurHash3's fmix64
// finaliser (see the header comment). No allocation; never throws.
constexpr std::uint64_t stable_hash(std::string_view bytes) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (const char c : bytes)
    h = (h ^ static_cast<unsigned char>(c)) * 0x100000001b3ULL;
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb93fe53a87ebULL;
  h ^= h >> 33;
  return h;
}

namespace detail {

// A small maximum-flow solver (Edmonds-Karp: shortest augmenting paths by breadth-first
// search) over integer capacities, for move plans.
class Flow {
 public:
  // Adds a vertex and returns its index. Allocates.
  std::size_t add() {
    adj_.emplace_back();
    return adj_.size() - 1;
  }
  // Adds an edge of capacity `cap` and returns its index. Allocates.
  std::size_t edge(std::size_t from, std::size_t to, std::size_t cap) {
    adj_[from].push_back(edges_.size());
    edges_.push_back({to, cap, cap});
    adj_[to].push_back(edges_.size());
    edges_.push_back({from, 0, 0});
    return edges_.size() - 2;
  }
  // Returns true when the edge carries flow.
  bool used(std::size_t e) const noexcept { return edges_[e].cap < edges_[e].initial; }
  // Returns true when some edge from `from` to `to` carries flow.
  bool used_between(std::size_t from, std::size_t to) const noexcept {
    for (std::size_t e : adj_[from])
      if (edges_[e].to == to && used(e)) return true;
    return false;
  }
  // Pushes the maximum flow from `source` to `sink`; returns its value. Allocates.
  std::size_t run(std::size_t source, std::size_t sink) {
    std::size_t total = 0;
    std::vector<std::size_t> via(adj_.size());
    for (;;) {
      std::fill(via.begin(), via.end(), SIZE_MAX);
      std::vector<std::size_t> queue{source};
      via[source] = edges_.size();
      for (std::size_t head = 0; head < queue.size() && via[sink] == SIZE_MAX; ++head)
        for (std::size_t e : adj_[queue[head]])
          if (edges_[e].cap > 0 && via[edges_[e].to] == SIZE_MAX) {
            via[edges_[e].to] = e;
            queue.push_back(edges_[e].to);
          }
      if (via[sink] == SIZE_MAX) return total;
      std::size_t push = SIZE_MAX;
      for (std::size_t v = sink; v != source; v = edges_[via[v] ^ 1].to)
        push = std::min(push, edges_[via[v]].cap);
      for (std::size_t v = sink; v != source; v = edges_[via[v] ^ 1].to) {
        edges_[via[v]].cap -= push;
        edges_[via[v] ^ 1].cap += push;
      }
      total += push;
    }
  }

 private:
  struct Edge {
    std::size_t to, cap, initial;
  };
  std::vector<std::vector<std::size_t>> adj_;
  std::vector<Edge> edges_;
};

}  // namespace detail

// One replica moving: replica `slot` of `partition` goes from node `from` to node `to`.
struct PartitionMove {
  PartitionId partition = 0;
  std::size_t slot = 0;  // 0: the primary
  NodeId from = 0;
  NodeId to = 0;

  friend bool operator==(const PartitionMove&, const PartitionMove&) = default;
};

// The options of FixedPartitions (FixedPartitions::Options).
struct FixedPartitionsOptions {
  std::size_t replication_factor = 1;  // replicas per partition, each on a distinct node
};

class FixedPartitions {
 public:
  using Options = FixedPartitionsOptions;

  // Creates `partition_count` partitions over `nodes` (copied, any order) with the first
  // assignment described above. Allocates. Throws std::invalid_argument naming partition
  // count, nodes or replication factor when one breaks its rule.
  FixedPartitions(std::size_t partition_count, std::span<const NodeId> nodes, Options options = {})
      : count_(checked_count(partition_count)),
        factor_(options.replication_factor),
        nodes_(checked_nodes(nodes, options.replication_factor)) {
    replicas_.resize(count_ * factor_);
    for (std::size_t k = 0; k < replicas_.size(); ++k)
      replicas_[k] = nodes_[k % nodes_.size()];
  }

  // Same, from a braced list of nodes.
  FixedPartitions(std::size_t partition_count, std::initializer_list<NodeId> nodes,
                  Options options = {})
      : FixedPartitions(partition_count, std::span<const NodeId>(nodes.begin(), nodes.size()),
                        options) {}

  // Returns the partition of `key` among `partition_count` partitions: stable_hash mod count.
  // No allocation. Throws std::invalid_argument naming partition count when it is zero.
  static PartitionId partition_of(std::string_view key, std::size_t partition_count) {
    return static_cast<PartitionId>(stable_hash(key) % checked_count(partition_count));
  }

  // Returns the partition of `key`. No allocation; never throws.
  PartitionId partition_of(std::string_view key) const noexcept {
    return static_cast<PartitionId>(stable_hash(key) % count_);
  }

  std::size_t partition_count() const noexcept { return count_; }
  std::size_t replication_factor() const noexcept { return factor_; }

  // Returns the nodes in ascending order.
  std::span<const NodeId> nodes() const noexcept { return nodes_; }

  // Returns the nodes holding `partition`, the primary first. The span is valid until the next
  // change of nodes. Throws std::invalid_argument naming partition when out of range.
  std::span<const NodeId> replicas(PartitionId partition) const {
    check_partition(partition);
    return std::span<const NodeId>(replicas_).subspan(std::size_t{partition} * factor_, factor_);
  }

  // Returns the primary of `partition`. Throws as replicas() does.
  NodeId primary(PartitionId partition) const { return replicas(partition)[0]; }

  // Returns how many replicas `node` holds (0 for a non-member). No allocation.
  std::size_t load(NodeId node) const noexcept {
    return static_cast<std::size_t>(std::count(replicas_.begin(), replicas_.end(), node));
  }

  // Returns the moves that would take the assignment to `new_nodes` (any order), in order of
  // partition; does not change anything. Allocates. Throws std::invalid_argument naming nodes
  // when `new_nodes` is empty, repeats a node or has fewer nodes than the replication factor.
  std::vector<PartitionMove> plan(std::span<const NodeId> new_nodes) const {
    std::vector<NodeId> next = checked_nodes(new_nodes, factor_);
    std::vector<NodeId> work = replicas_;
    return plan_into(next, work);
  }

  // Same, from a braced list of nodes.
  std::vector<PartitionMove> plan(std::initializer_list<NodeId> new_nodes) const {
    return plan(std::span<const NodeId>(new_nodes.begin(), new_nodes.size()));
  }

  // Moves the assignment to `new_nodes` and returns the moves, as plan() computes them.
  // Allocates; throws as plan() does, and then changes nothing.
  std::vector<PartitionMove> set_nodes(std::span<const NodeId> new_nodes) {
    std::vector<NodeId> next = checked_nodes(new_nodes, factor_);
    std::vector<NodeId> work = replicas_;
    std::vector<PartitionMove> moves = plan_into(next, work);
    nodes_ = std::move(next);
    replicas_ = std::move(work);
    return moves;
  }

  // Same, from a braced list of nodes.
  std::vector<PartitionMove> set_nodes(std::initializer_list<NodeId> new_nodes) {
    return set_nodes(std::span<const NodeId>(new_nodes.begin(), new_nodes.size()));
  }

  // Adds `node` and returns the moves that rebalance onto it. Throws std::invalid_argument
  // naming node when it is already a member.
  std::vector<PartitionMove> add_node(NodeId node) {
    if (member(node))
      throw std::invalid_argument("FixedPartitions: add_node: node " + std::to_string(node) +
                                  " is already a member");
    std::vector<NodeId> next = nodes_;
    next.push_back(node);
    return set_nodes(next);
  }

  // Removes `node` and returns the moves of its replicas (and any rebalancing). Throws
  // std::invalid_argument naming node when it is not a member, and naming nodes when too few
  // would remain for the replication factor.
  std::vector<PartitionMove> remove_node(NodeId node) {
    if (!member(node))
      throw std::invalid_argument("FixedPartitions: remove_node: node " + std::to_string(node) +
                                  " is not a member");
    std::vector<NodeId> next;
    for (NodeId n : nodes_)
      if (n != node) next.push_back(n);
    return set_nodes(next);
  }

  // Returns true when `node` is one of nodes(). No allocation.
  bool member(NodeId node) const noexcept {
    return std::binary_search(nodes_.begin(), nodes_.end(), node);
  }

 private:
  static std::size_t checked_count(std::size_t count) {
    if (count == 0)
      throw std::invalid_argument("FixedPartitions: partition count must be at least 1");
    if (count > std::size_t{UINT32_MAX})
      throw std::invalid_argument("FixedPartitions: partition count must fit a PartitionId");
    return count;
  }

  static std::vector<NodeId> checked_nodes(std::span<const NodeId> nodes, std::size_t factor) {
    if (nodes.empty()) throw std::invalid_argument("FixedPartitions: nodes must not be empty");
    std::vector<NodeId> sorted(nodes.begin(), nodes.end());
    std::sort(sorted.begin(), sorted.end());
    if (auto it = std::adjacent_find(sorted.begin(), sorted.end()); it != sorted.end())
      throw std::invalid_argument("FixedPartitions: nodes must not repeat a node (node " +
                                  std::to_string(*it) + " appears twice)");
    if (factor == 0)
      throw std::invalid_argument("FixedPartitions: replication factor must be at least 1");
    if (factor > sorted.size())
      throw std::invalid_argument("FixedPartitions: replication factor (" + std::to_string(factor) +
                                  ") must not exceed the node count (" +
                                  std::to_string(sorted.size()) + ")");
    return sorted;
  }

  void check_partition(PartitionId partition) const {
    if (partition >= count_)
      throw std::invalid_argument("FixedPartitions: partition " + std::to_string(partition) +
                                  " is out of range (" + std::to_string(count_) + " partitions)");
  }

  bool holds(const std::vector<NodeId>& work, std::size_t partition, NodeId node) const {
    const auto first = work.begin() + static_cast<std::ptrdiff_t>(partition * factor_);
    return std::find(first, first + static_cast<std::ptrdiff_t>(factor_), node) !=
           first + static_cast<std::ptrdiff_t>(factor_);
  }

  // Computes the moves to `next` (sorted) and applies them to `work`.
  std::vector<PartitionMove> plan_into(const std::vector<NodeId>& next,
                                       std::vector<NodeId>& work) const {
    const std::size_t n = next.size();
    auto index_of = [&](NodeId id) -> std::size_t {
      auto it = std::lower_bound(next.begin(), next.end(), id);
      return it != next.end() && *it == id ? static_cast<std::size_t>(it - next.begin()) : n;
    };
    // Each new node's share: the larger shares go to the nodes holding the most already, which
    // makes the sum of the excesses (the replicas that must move) the smallest possible.
    std::vector<std::size_t> load(n, 0);
    for (NodeId id : work)
      if (std::size_t i = index_of(id); i < n) ++load[i];
    std::vector<std::size_t> order(n);
    for (std::size_t i = 0; i < n; ++i)
      order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t a, std::size_t b) { return load[a] > load[b]; });
    const std::size_t total = work.size();
    std::vector<std::size_t> share(n, total / n);
    for (std::size_t k = 0; k < total % n; ++k)
      ++share[order[k]];

    // Which replicas move where is a flow problem: every replica on a departed node, and
    // `excess` replicas of each node above its share, must each reach a node below its share
    // that does not hold that partition yet. A maximum flow over
    //   source -> departed replica (1), source -> node with excess (its excess),
    //   node with excess -> each of its replicas (1), replica -> (partition, receiver) (1),
    //   (partition, receiver) -> receiver (1), receiver -> sink (its deficit)
    // moves exactly the bound whenever direct moves can reach it.
    std::vector<std::size_t> excess(n, 0), deficit(n, 0);
    for (std::size_t i = 0; i < n; ++i)
      (load[i] > share[i] ? excess[i] : deficit[i]) =
          load[i] > share[i] ? load[i] - share[i] : share[i] - load[i];
    detail::Flow flow;
    const std::size_t source = flow.add(), sink = flow.add();
    std::vector<std::size_t> donor(n), receiver(n);
    for (std::size_t i = 0; i < n; ++i) {
      donor[i] = flow.add();
      if (excess[i]) flow.edge(source, donor[i], excess[i]);
      receiver[i] = flow.add();
      if (deficit[i]) flow.edge(receiver[i], sink, deficit[i]);
    }
    std::vector<std::size_t> pair(count_ * n, 0);  // (partition, receiver) -> flow node, 0: none
    std::vector<std::size_t> slot_edge(total, 0);  // a candidate slot's edge into its node
    struct Candidate {
      std::size_t slot, node, edge;  // the flow node and its incoming edge
    };
    std::vector<Candidate> candidates;
    for (std::size_t k = 0; k < total; ++k) {
      const std::size_t i = index_of(work[k]);
      if (i < n && excess[i] == 0) continue;
      const std::size_t node = flow.add();
      const std::size_t e = flow.edge(i < n ? donor[i] : source, node, 1);
      candidates.push_back({k, node, e});
      const std::size_t p = k / factor_;
      for (std::size_t r = 0; r < n; ++r) {
        if (deficit[r] == 0 || holds(work, p, next[r])) continue;
        std::size_t& pr = pair[p * n + r];
        if (pr == 0) {
          pr = flow.add();
          flow.edge(pr, receiver[r], 1);
        }
        flow.edge(node, pr, 1);
      }
    }
    flow.run(source, sink);

    std::vector<std::size_t> kept = load;  // replicas per node once the movers have left
    std::vector<bool> is_leaving(total, false);
    std::vector<std::pair<std::size_t, std::size_t>> direct;  // slot, receiver
    std::vector<std::size_t> blocked;                         // slots with no direct move
    for (const Candidate& c : candidates) {
      const std::size_t i = index_of(work[c.slot]);
      if (flow.used(c.edge)) {
        for (std::size_t r = 0; r < n; ++r)
          if (const std::size_t pr = pair[c.slot / factor_ * n + r];
              pr && flow.used_between(c.node, pr))
            direct.emplace_back(c.slot, r);
      } else if (i < n) {
        continue;  // stays, unless its node still has excess (below)
      } else {
        blocked.push_back(c.slot);
      }
      is_leaving[c.slot] = true;
      if (i < n) --kept[i];
    }
    for (const Candidate& c : candidates) {  // excess the flow could not place
      const std::size_t i = index_of(work[c.slot]);
      if (i < n && kept[i] > share[i] && !is_leaving[c.slot]) {
        is_leaving[c.slot] = true;
        --kept[i];
        blocked.push_back(c.slot);
      }
    }

    std::vector<PartitionMove> moves;
    auto move = [&](std::size_t k, std::size_t to) {
      moves.push_back(
          PartitionMove{static_cast<PartitionId>(k / factor_), k % factor_, work[k], next[to]});
      work[k] = next[to];
      ++kept[to];
    };
    for (auto [k, r] : direct)
      move(k, r);
    for (const std::size_t k : blocked) {
      const std::size_t p = k / factor_;
      // Every node with room already holds this partition: hand the replica to a node c that
      // does not, and have c pass one of its other replicas on to a node with room: one move
      // more than the bound, needed only when more than one replica blocks the direct move.
      bool done = false;
      for (std::size_t c = 0; c < n && !done; ++c) {
        if (holds(work, p, next[c])) continue;
        if (kept[c] < share[c]) {
          move(k, c);
          done = true;
          break;
        }
        for (std::size_t q = 0; q < total && !done; ++q) {
          if (work[q] != next[c] || q / factor_ == p || is_leaving[q]) continue;
          for (std::size_t b = 0; b < n && !done; ++b) {
            if (kept[b] >= share[b] || holds(work, q / factor_, next[b])) continue;
            move(k, c);
            --kept[c];
            move(q, b);
            done = true;
          }
        }
      }
      PODS_ASSERT(done, "FixedPartitions: no node can take a replica");
    }
    std::stable_sort(
        moves.begin(), moves.end(), [](const PartitionMove& a, const PartitionMove& b) {
          return a.partition < b.partition || (a.partition == b.partition && a.slot < b.slot);
        });
    return moves;
  }

  std::size_t count_;
  std::size_t factor_;
  std::vector<NodeId> nodes_;
  std::vector<NodeId> replicas_;  // partition p's replicas at [p * factor_, (p + 1) * factor_)
};

}  // namespace pods

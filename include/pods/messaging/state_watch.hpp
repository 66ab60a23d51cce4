// pods/messaging/state_watch.hpp — State Watch
//
// Problem:       Clients of a coordination service wait for changes (a new leader, a moved
//                partition, a released lock). Polling costs a read per client per interval
//                and still misses changes between two polls; a notification that is sent once
//                and lost (the client was reconnecting) leaves the client acting on old state.
//                A client that reads slower than changes arrive makes the server buffer
//                without bound.
// Solution:      The server publishes every change as an event with its revision (one
//                counter, strictly increasing). A watch names a key, or a prefix, and the
//                revision it wants events from; the StateWatch keeps the recent events
//                (history_limit of them) so a watch opened from an old revision (a client
//                resuming after a reconnect with the revision after the last event it saw)
//                first receives what it missed from that history, then every new matching
//                event, each exactly once, in revision order. When the revision asked for is
//                no longer in the history the watch is refused with Errc::compacted (the
//                client re-reads the state and watches from there), as etcd does. (ZooKeeper's
//                classic watches fire once and the client re-reads to set the next; a client
//                that reconnects learns that a node changed, not each change.)
//                Each watch buffers its events until the consumer takes them; a watch whose
//                buffer would pass max_buffered closes with Errc::full instead of growing,
//                and the consumer resumes from the revision after the last event it took.
//                A hook tells the driver which watch has something to deliver.
//                Matching costs no scan of the watches: exact keys are looked up in a hash
//                index, and prefix watches are looked up by the publishing key's own prefixes
//                (only at the lengths some prefix watch has).
// Guarantees:    - Per watch: the events taken are exactly the published events matching it
//                  with revision >= its start (spec.from_revision, or revision() + 1 when 0),
//                  each once, in increasing revision order, with nothing skipped; a watch that
//                  cannot keep this promise closes (Errc::full: its buffer is full or could not
//                  grow; Errc::compacted: a reset skipped revisions it wanted) and then
//                  receives nothing more (what it buffered before can still be taken).
//                - A key watch sees only that key ("a" does not see "ab"); a prefix watch sees
//                  every key starting with the prefix; the empty prefix sees every key.
//                - watch() with from_revision in (compacted_revision(), revision()] returns
//                  the history events matching it first; at or below compacted_revision() it
//                  returns Errc::compacted.
//                - Memory is bounded: at most history_limit events of history, at most
//                  max_buffered events per watch, at most max_watches watches held. Events are
//                  shared (one copy of each, however many watches buffer it).
//                - on_ready(id) is called, after the call's changes are all made, once for each
//                  watch that during a publish went from no buffered event to some, or that
//                  closed in a publish (Errc::full), a reset (Errc::compacted) or a cancel
//                  (Errc::cancelled, for an open watch only): in increasing id order within one
//                  call; a watch cancelled by an earlier hook call before its turn is skipped.
//                  watch(), take() and compact() never call it (after watch() the caller
//                  checks buffered() and closed() itself: the hook could not name an id the
//                  caller has not yet been given).
// Not provided:  Delivery: the StateWatch does no I/O; the driver takes events and sends them.
//                Durability: history lives in memory (a restarted server starts empty, or
//                reset() at its snapshot's revision). Progress notifications (etcd's
//                "progress" events telling an idle watch the current revision) and filters on
//                the event kind. Range watches other than prefixes.
// Thread safety: thread-compatible: driven by one thread (the consistent core's); const
//                members may be read concurrently. The hook runs on the thread calling
//                publish, reset or cancel, with no invariant broken: it may call any member,
//                also publish, watch, take, cancel and on_ready (a replaced hook stays alive
//                until its running call returns).
// Errors:        Bad options and arguments throw std::invalid_argument naming them:
//                a zero option, a publish whose revision is not greater than revision(), whose
//                kind is not put or erase, or an erase carrying a value, a compact above
//                revision(), a reset below revision(). watch() returns Errc::compacted or
//                Errc::full as values; closed() gives a closed watch's reason. An exception
//                from the hook propagates out of the call that called it (the state is
//                consistent; watches after it in that call are not notified). std::bad_alloc
//                from publish or watch leaves no half-made change.
// Cost:          Expected, with k matching watches, W watches held, H history events, L
//                distinct lengths of the prefixes watched (independent of the others' count):
//                  publish  O((L + 1) |key| + k): a hash lookup of the key and of its prefix at
//                           each watched length, then a buffer slot per matching watch;
//                           allocates the shared event (one node) and, now and then, a block of
//                           history or buffer slots (the key and value are moved, not copied;
//                           the list of watches to notify is kept from call to call);
//                  watch    O(|key| + log H + the history scanned from its start), allocates
//                           its entry, an index slot and buffer slots;
//                  take     O(n) for n events, allocates the returned vector and copies each
//                           event (moves it instead when no history or other watch holds it);
//                  cancel   O(|key| + watches on the same key); compact O(events dropped);
//                  reset    O(W + H); closed, buffered, revision: O(1), never allocate.
// Example:
//   pods::StateWatch watches({.history_limit = 1024, .max_buffered = 256});
//   watches.on_ready([&](pods::WatchId id) { ready.push_back(id); });  // deliver after the call
//   auto id = watches.watch({.key = "config/", .prefix = true});
//   watches.publish({.revision = 1, .key = "config/port", .value = {std::byte{80}}});
//   for (const pods::WatchEvent& e : watches.take(*id, 64))
//     std::printf("%s at %llu\n", e.key.c_str(), static_cast<unsigned long long>(e.revision));
//   if (watches.closed(*id)) watches.cancel(*id);  // closed: resume from the last taken + 1
// Example context: #include <pods/policy/errors.hpp>
// Example context: #include <vector>
// Example context: std::vector<pods::WatchId> ready;
#pragma once

#include <pods/policy/errors.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace pods {

enum class WatchEventKind : std::uint8_t { put = 1, erase = 2 };

// One change of one key.
struct WatchEvent {
  std::uint64_t revision = 0;  // unique per event, strictly increasing across events
  WatchEventKind kind = WatchEventKind::put;
  std::string key;
  std::vector<std::byte> value;  // empty for erase
  friend bool operator==(const WatchEvent&, const WatchEvent&) = default;
};

using WatchId = std::uint64_t;

// What a watch wants: a key or a prefix, from a revision.
struct WatchSpec {
  std::string key;  // the key, or the prefix when prefix == true ("" with prefix: every key)
  bool prefix = false;
  std::uint64_t from_revision =
      0;  // 0: changes after revision(); r: every event with revision >= r
};

struct StateWatchOptions {
  std::size_t history_limit = 65536;  // events kept for resumes; older ones are compacted away
  std::size_t max_buffered = 4096;    // events waiting in one watch; past it the watch closes
  std::size_t max_watches = 65536;    // watches held (open, or closed and not cancelled)
};

// StateWatch: watches on keys and prefixes over a stream of revisioned events.
class StateWatch {
 public:
  // Creates an empty StateWatch at revision 0. Throws std::invalid_argument naming an option
  // that is zero.
  explicit StateWatch(StateWatchOptions options = {}) : options_(options) {
    auto check = [](std::size_t value, const char* name) {
      if (value == 0)
        throw std::invalid_argument(std::string("StateWatch: options.") + name +
                                    " must be at least 1");
    };
    check(options.history_limit, "history_limit");
    check(options.max_buffered, "max_buffered");
    check(options.max_watches, "max_watches");
  }

  // Records a change (retained in the history, shared with the watches), buffers it for every
  // open watch it matches and calls the hook as the header comment says. Throws
  // std::invalid_argument, changing nothing, when e.revision <= revision(), e.kind is neither
  // put nor erase, or an erase carries a value. Allocates (see Cost); std::bad_alloc before
  // the event is recorded changes nothing, and a watch whose buffer cannot grow closes with
  // Errc::full (it never skips the event silently).
  void publish(WatchEvent e) {
    if (e.revision <= revision_)
      throw std::invalid_argument(
          "StateWatch::publish: e.revision must be greater than revision() (" +
          std::to_string(revision_) + "), got " + std::to_string(e.revision));
    if (e.kind != WatchEventKind::put && e.kind != WatchEventKind::erase)
      throw std::invalid_argument("StateWatch::publish: e.kind must be put or erase");
    if (e.kind == WatchEventKind::erase && !e.value.empty())
      throw std::invalid_argument("StateWatch::publish: e.value must be empty for an erase");
    auto event = std::make_shared<WatchEvent>(std::move(e));
    matching(event->key, matched_);
    // Room for every id to notify, so nothing below but a buffer slot allocates; the scratch
    // is moved out because a hook may publish again.
    std::vector<WatchId> ready = std::move(ready_);
    ready.clear();
    ready.reserve(matched_.size());
    history_.push_back(event);
    revision_ = event->revision;
    if (history_.size() > options_.history_limit) {
      compacted_ = history_.front()->revision;
      history_.pop_front();
    }
    for (const auto& [id, watch] : matched_) {
      Watch& w = *watch;
      if (event->revision < w.from) continue;  // a watch from a later revision
      bool full = w.buffer.size() >= options_.max_buffered;
      if (!full) {
        try {
          w.buffer.push_back(event);
        } catch (const std::bad_alloc&) {
          full = true;
        }
      }
      if (full) {
        close(id, w, Errc::full);
        ready.push_back(id);
      } else if (w.buffer.size() == 1) {
        ready.push_back(id);
      }
    }
    std::sort(ready.begin(), ready.end());
    notify(ready);
    ready_ = std::move(ready);
  }

  // Opens a watch and returns its id (ids start at 1 and are never reused). Its buffer starts
  // with the history events it matches (revision >= its start); when they are more than
  // max_buffered it holds the first max_buffered and is already closed with Errc::full.
  // Returns Errc::compacted when spec.from_revision != 0 and spec.from_revision <=
  // compacted_revision(), else Errc::full when max_watches watches are held. Retains the
  // spec's key. Allocates. Never calls the hook.
  Outcome<WatchId> watch(WatchSpec spec) {
    if (spec.from_revision != 0 && spec.from_revision <= compacted_) return Errc::compacted;
    if (watches_.size() >= options_.max_watches) return Errc::full;
    Watch w;
    w.key = std::move(spec.key);
    w.prefix = spec.prefix;
    w.from = spec.from_revision == 0 ? revision_ + 1 : spec.from_revision;
    auto it = std::lower_bound(history_.begin(), history_.end(), w.from,
                               [](const Shared& e, std::uint64_t r) { return e->revision < r; });
    for (; it != history_.end(); ++it) {
      if (!matches(w, (*it)->key)) continue;
      if (w.buffer.size() == options_.max_buffered) {
        w.closed = Errc::full;
        break;
      }
      w.buffer.push_back(*it);
    }
    const WatchId id = next_id_;
    const auto slot = watches_.emplace(id, std::move(w)).first;
    Watch& stored = slot->second;
    if (!stored.closed) {
      try {
        index(id, stored);
      } catch (...) {  // std::bad_alloc: no watch half made
        watches_.erase(slot);
        throw;
      }
    }
    ++next_id_;
    return id;
  }

  // Removes and returns up to `max` buffered events of `id`, in revision order; empty for an
  // unknown id. Allocates the vector and copies of the events. Never calls the hook.
  std::vector<WatchEvent> take(WatchId id, std::size_t max = SIZE_MAX) {
    std::vector<WatchEvent> out;
    auto it = watches_.find(id);
    if (it == watches_.end()) return out;
    auto& buffer = it->second.buffer;
    const std::size_t n = std::min(max, buffer.size());
    out.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      Shared& e = buffer.front();
      // Nobody else holds it (history and other watches let go): move instead of copying.
      if (e.use_count() == 1)
        out.push_back(std::move(*e));
      else
        out.push_back(*e);
      buffer.pop_front();
    }
    return out;
  }

  // Returns nullopt while `id` is open; once closed, why: Errc::full (its buffer overflowed:
  // resume from the revision after the last event taken), Errc::compacted (a reset skipped
  // events it had not seen), Errc::cancelled (an unknown or cancelled id). A closed watch
  // keeps its reason and its buffered events until cancel(id).
  std::optional<Errc> closed(WatchId id) const {
    auto it = watches_.find(id);
    if (it == watches_.end()) return Errc::cancelled;
    return it->second.closed;
  }

  // Returns how many events `id` has buffered (0 for an unknown id).
  std::size_t buffered(WatchId id) const {
    auto it = watches_.find(id);
    return it == watches_.end() ? 0 : it->second.buffer.size();
  }

  // Closes `id` (Errc::cancelled), forgets it and its buffered events, and, when it was open,
  // calls the hook with it. Does nothing for an unknown id.
  void cancel(WatchId id) {
    auto it = watches_.find(id);
    if (it == watches_.end()) return;
    const bool was_open = !it->second.closed;
    if (was_open) unindex(id, it->second);
    watches_.erase(it);
    if (was_open) {
      if (auto hook = hook_) (*hook)(id);
    }
  }

  // Sets the hook called with a watch that became ready or closed (see the header comment);
  // replaces the previous one; an empty function removes it. Retains `hook`.
  void on_ready(std::function<void(WatchId)> hook) {
    hook_ = hook ? std::make_shared<std::function<void(WatchId)>>(std::move(hook)) : nullptr;
  }

  // Drops the history at or below `revision` (watch() from there on returns Errc::compacted);
  // open watches keep what they buffered. A revision at or below compacted_revision() does
  // nothing. Throws std::invalid_argument when revision > revision().
  void compact(std::uint64_t revision) {
    if (revision > revision_)
      throw std::invalid_argument("StateWatch::compact: revision must be at most revision() (" +
                                  std::to_string(revision_) + "), got " + std::to_string(revision));
    if (revision <= compacted_) return;
    compacted_ = revision;
    while (!history_.empty() && history_.front()->revision <= revision)
      history_.pop_front();
  }

  // Restarts the history at `revision` (after the state machine restored a snapshot): the
  // history is empty and revision() == compacted_revision() == revision. Each open watch that
  // may have missed events (the next revision it wants, max(start, revision() + 1), is <=
  // `revision`) closes with Errc::compacted; the hook is called for those. Throws
  // std::invalid_argument when revision < revision() (revisions never go back: a watch would
  // see two different events under one revision).
  void reset(std::uint64_t revision) {
    if (revision < revision_)
      throw std::invalid_argument("StateWatch::reset: revision must be at least revision() (" +
                                  std::to_string(revision_) + "), got " + std::to_string(revision));
    std::vector<WatchId> ready;
    ready.reserve(open_);  // before any change: nothing below allocates
    for (auto& [id, w] : watches_) {
      if (!w.closed && std::max(w.from, revision_ + 1) <= revision) {
        close(id, w, Errc::compacted);
        ready.push_back(id);
      }
    }
    history_.clear();
    revision_ = compacted_ = revision;
    std::sort(ready.begin(), ready.end());
    notify(ready);
  }

  // Returns the last event's (or reset's) revision; 0 at first.
  std::uint64_t revision() const noexcept { return revision_; }
  // Returns the revision at or below which the history is gone (watch() refuses it).
  std::uint64_t compacted_revision() const noexcept { return compacted_; }
  // Returns how many watches are open (not closed).
  std::size_t open_watches() const noexcept { return open_; }
  // Returns how many watches are held: open, or closed and not yet cancelled (max_watches
  // bounds this number).
  std::size_t held_watches() const noexcept { return watches_.size(); }
  // Returns how many events the history holds (at most options.history_limit).
  std::size_t history_size() const noexcept { return history_.size(); }
  const StateWatchOptions& options() const noexcept { return options_; }

 private:
  using Shared = std::shared_ptr<WatchEvent>;  // never modified while shared
  struct Watch {
    std::string key;
    bool prefix = false;
    std::uint64_t from = 0;  // its start: the first revision it wants
    std::deque<Shared> buffer;
    std::optional<Errc> closed;
  };
  // An open watch in an index (watches_ is node-based: the pointer stays valid).
  struct Entry {
    WatchId id;
    Watch* watch;
  };
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept {
      return std::hash<std::string_view>{}(s);
    }
  };
  // Key (or prefix) -> the open watches on it, in increasing id order.
  using Index = std::unordered_map<std::string, std::vector<Entry>, Hash, std::equal_to<>>;

  static bool matches(const Watch& w, std::string_view key) {
    return w.prefix ? key.starts_with(w.key) : key == w.key;
  }

  Index& index_of(const Watch& w) { return w.prefix ? prefixes_ : exact_; }

  // Fills `out` with the open watches matching `key`: its exact watches, then the prefix
  // watches on each of its prefixes of a length some prefix watch has.
  void matching(std::string_view key, std::vector<Entry>& out) const {
    out.clear();
    if (auto it = exact_.find(key); it != exact_.end())
      out.insert(out.end(), it->second.begin(), it->second.end());
    for (const auto& [length, count] : prefix_lengths_) {
      if (length > key.size()) break;
      if (auto it = prefixes_.find(key.substr(0, length)); it != prefixes_.end())
        out.insert(out.end(), it->second.begin(), it->second.end());
    }
  }

  // Adds an open watch to its index; on an exception nothing changed.
  void index(WatchId id, Watch& w) {
    Index& index = index_of(w);
    const auto it = index.try_emplace(w.key).first;
    try {
      it->second.push_back({id, &w});  // ids only grow: the list stays sorted
      if (w.prefix) ++prefix_lengths_[w.key.size()];
    } catch (...) {
      if (!it->second.empty() && it->second.back().id == id) it->second.pop_back();
      if (it->second.empty()) index.erase(it);
      throw;
    }
    ++open_;
  }

  void unindex(WatchId id, const Watch& w) {
    Index& index = index_of(w);
    auto it = index.find(w.key);
    auto& ids = it->second;
    ids.erase(std::lower_bound(ids.begin(), ids.end(), id,
                               [](const Entry& e, WatchId i) { return e.id < i; }));
    if (ids.empty()) index.erase(it);
    if (w.prefix) {
      auto length = prefix_lengths_.find(w.key.size());
      if (--length->second == 0) prefix_lengths_.erase(length);
    }
    --open_;
  }

  void close(WatchId id, Watch& w, Errc why) {
    unindex(id, w);
    w.closed = why;
  }

  // Calls the hook for each id, skipping those a previous call cancelled. The hook is looked
  // up for every call (a hook may replace it) and kept alive while it runs.
  void notify(const std::vector<WatchId>& ids) {
    for (const WatchId id : ids) {
      auto hook = hook_;
      if (!hook) return;
      if (watches_.contains(id)) (*hook)(id);
    }
  }

  StateWatchOptions options_;
  std::unordered_map<WatchId, Watch> watches_;
  Index exact_;
  Index prefixes_;
  std::map<std::size_t, std::size_t> prefix_lengths_;  // length -> open prefix watches of it
  std::deque<Shared> history_;
  std::vector<Entry> matched_;  // scratch of publish (no hook runs while it is in use)
  std::vector<WatchId> ready_;  // scratch of publish, moved out while in use
  std::shared_ptr<std::function<void(WatchId)>> hook_;
  std::uint64_t revision_ = 0;
  std::uint64_t compacted_ = 0;
  WatchId next_id_ = 1;
  std::size_t open_ = 0;
};

}  // namespace pods

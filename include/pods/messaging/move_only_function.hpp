// pods/messaging/move_only_function.hpp — MoveOnlyFunction, the callback type of the messaging
// family
//
// Problem:       A callback that answers a request often owns something that cannot be
//                copied: a std::promise, a unique_ptr to a connection, a moved-in buffer.
//                std::function requires a copyable callable, so such a lambda does not
//                compile, and wrapping its state in a shared_ptr only to satisfy the type
//                costs an allocation and hides who owns what. std::move_only_function would
//                do, but it is C++23.
// Solution:      A small type-erased, move-only callable: the callable is stored in place
//                when it is at most three pointers large and nothrow-movable, on the heap
//                otherwise. It converts from any callable with the signature, copyable or
//                not (a std::function too), and moving it never throws.
// Guarantees:    Holds exactly one callable or nothing. Constructing it from a null function
//                pointer or an empty std::function gives an empty MoveOnlyFunction, so
//                "empty callback" checks keep working. Moving leaves the source empty.
// Not provided:  Copying; const invocation (operator() is non-const, as for
//                std::move_only_function); a target() query.
// Thread safety: thread-compatible.
// Errors:        Calling an empty MoveOnlyFunction throws std::bad_function_call. Storing a
//                large or throwing-move callable may throw std::bad_alloc. Whatever the
//                callable throws propagates.
// Cost:          one indirect call per invocation; no allocation for callables of up to 24
//                bytes that are nothrow-movable (a lambda capturing up to three pointers, a
//                std::promise).
// Example:
//   std::promise<int> promise;
//   std::future<int> answer = promise.get_future();
//   pods::detail::MoveOnlyFunction<void(int)> done = [p = std::move(promise)](int v) mutable {
//     p.set_value(v);                        // a lambda owning a promise: not a std::function
//   };
//   done(42);                                // answer.get() == 42
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>

namespace pods::detail {

template <class Signature>
class MoveOnlyFunction;

template <class T>
inline constexpr bool is_std_function = false;
template <class Signature>
inline constexpr bool is_std_function<std::function<Signature>> = true;

// MoveOnlyFunction<R(Args...)>: owns one callable invocable as R(Args...), copyable or not.
template <class R, class... Args>
class MoveOnlyFunction<R(Args...)> {
 public:
  static constexpr std::size_t inline_size = 3 * sizeof(void*);

  // Holds nothing.
  MoveOnlyFunction() noexcept = default;
  MoveOnlyFunction(std::nullptr_t) noexcept {}  // NOLINT: implicit, as std::function's

  // Holds `f` (moved or copied in); empty when `f` is a null function pointer or an empty
  // std::function. Allocates when `f` is larger than 24 bytes or may throw on move.
  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, MoveOnlyFunction>) &&
      std::is_invocable_r_v<R, std::decay_t<F>&, Args...> MoveOnlyFunction(
          F&& f) {  // NOLINT: implicit, as std::function's
    using Fn = std::decay_t<F>;
    using Given = std::remove_cvref_t<F>;  // a function (not a pointer) is never null
    if constexpr (std::is_pointer_v<Given> || std::is_member_pointer_v<Given> ||
                  is_std_function<Given>) {
      if (!f) return;
    }
    if constexpr (fits_inline<Fn>) {
      ::new (static_cast<void*>(buffer_)) Fn(std::forward<F>(f));
      ops_ = &inline_ops<Fn>;
    } else {
      Fn* heap = new Fn(std::forward<F>(f));
      ::new (static_cast<void*>(buffer_)) Fn*(heap);
      ops_ = &heap_ops<Fn>;
    }
  }

  // Takes `other`'s callable, leaving `other` empty. Never throws.
  MoveOnlyFunction(MoveOnlyFunction&& other) noexcept : ops_(other.ops_) {
    if (ops_ != nullptr) ops_->relocate(other.buffer_, buffer_);
    other.ops_ = nullptr;
  }
  MoveOnlyFunction& operator=(MoveOnlyFunction&& other) noexcept {
    if (this != &other) {
      reset();
      ops_ = other.ops_;
      if (ops_ != nullptr) ops_->relocate(other.buffer_, buffer_);
      other.ops_ = nullptr;
    }
    return *this;
  }
  MoveOnlyFunction& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  MoveOnlyFunction(const MoveOnlyFunction&) = delete;
  MoveOnlyFunction& operator=(const MoveOnlyFunction&) = delete;
  ~MoveOnlyFunction() { reset(); }

  // Returns true when a callable is held.
  explicit operator bool() const noexcept { return ops_ != nullptr; }

  // Calls the callable; throws std::bad_function_call when empty.
  R operator()(Args... args) {
    if (ops_ == nullptr) throw std::bad_function_call();
    return ops_->invoke(buffer_, std::forward<Args>(args)...);
  }

 private:
  template <class Fn>
  static constexpr bool fits_inline =
      sizeof(Fn) <= inline_size &&
      alignof(Fn) <= alignof(void*) && std::is_nothrow_move_constructible_v<Fn>;

  struct Ops {
    R (*invoke)(void*, Args&&...);
    void (*relocate)(void* from, void* to) noexcept;  // move-constructs into `to`, ends `from`
    void (*destroy)(void*) noexcept;
  };

  template <class Fn>
  static Fn& inline_self(void* p) noexcept {
    return *std::launder(static_cast<Fn*>(p));
  }
  template <class Fn>
  static Fn*& heap_self(void* p) noexcept {
    return *std::launder(static_cast<Fn**>(p));
  }

  template <class Fn>
  static constexpr Ops inline_ops = {
      [](void* p, Args&&... args) -> R {
        return std::invoke(inline_self<Fn>(p), std::forward<Args>(args)...);
      },
      [](void* from, void* to) noexcept {
        Fn& src = inline_self<Fn>(from);
        ::new (to) Fn(std::move(src));
        src.~Fn();
      },
      [](void* p) noexcept { inline_self<Fn>(p).~Fn(); },
  };
  template <class Fn>
  static constexpr Ops heap_ops = {
      [](void* p, Args&&... args) -> R {
        return std::invoke(*heap_self<Fn>(p), std::forward<Args>(args)...);
      },
      [](void* from, void* to) noexcept { ::new (to) Fn*(heap_self<Fn>(from)); },
      [](void* p) noexcept { delete heap_self<Fn>(p); },
  };

  void reset() noexcept {
    if (ops_ != nullptr) std::exchange(ops_, nullptr)->destroy(buffer_);
  }

  const Ops* ops_ = nullptr;
  alignas(void*) unsigned char buffer_[inline_size];
};

}  // namespace pods::detail

// A program outside the pods tree that uses pods the way a user would.
#include <pods/policy/clock.hpp>
#include <pods/policy/errors.hpp>

#include <chrono>
#include <cstdio>

int main() {
  pods::ManualClock clock;
  clock.advance(std::chrono::seconds(1));
  pods::Outcome<int> outcome = pods::Errc::timeout;
  const bool ok = clock.now().time_since_epoch() == std::chrono::seconds(1) && !outcome;
  std::puts(ok ? "consumer ok" : "consumer FAILED");
  return ok ? 0 : 1;
}

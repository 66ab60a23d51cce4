// The one Catch2 main of the suite, compiled once and linked into every test program.
//
// Besides Catch2's own options it takes `--seeds N`: the number of seeded simulations each
// simulator test runs (it sets PODS_SEEDS, which the tests read; without it they run their
// few CI seeds). Example: `replication_replicated_log_test --seeds 1000 "[sim]"`.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdlib>
#include <string>

int main(int argc, char* argv[]) {
  Catch::Session session;
  std::string seeds;
  using namespace Catch::clara;
  auto cli = session.cli() |
             Opt(seeds, "N")["--seeds"]("seeded simulations per simulator test (PODS_SEEDS)");
  session.cli(cli);
  if (const int rc = session.applyCommandLine(argc, argv); rc != 0) return rc;
  if (!seeds.empty()) {
    char* end = nullptr;
    const unsigned long long n = std::strtoull(seeds.c_str(), &end, 10);
    if (end == seeds.c_str() || *end != '\0' || n == 0) {
      Catch::cerr() << "--seeds: expected a positive number of seeds, got '" << seeds << "'\n";
      return 2;
    }
    setenv("PODS_SEEDS", seeds.c_str(), 1);
  }
  return session.run();
}

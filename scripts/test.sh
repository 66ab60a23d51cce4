#!/usr/bin/env bash
# Builds and runs every test: formatting, the g++ debug build, clang++ AddressSanitizer +
# UndefinedBehaviorSanitizer, clang++ ThreadSanitizer (the [threads] cases) and the fuzzers
# (PODS_FUZZ_SECONDS each, default 20). Prints one closing line "N passed, N failed".
# Usage: scripts/test.sh [preset...]   (default: dev asan tsan fuzz)
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh || exit 1

presets=("$@")
((${#presets[@]})) || presets=(dev asan tsan fuzz)
passed=0
failed=0
log=$(mktemp)
trap 'rm -f "$log"' EXIT

step() {  # step NAME COMMAND...: runs a step that counts as one test
  echo "== $1"
  if "${@:2}"; then passed=$((passed + 1)); else echo "FAILED: $1"; failed=$((failed + 1)); fi
}

check_format() {
  local bad
  bad=$(git ls-files '*.hpp' '*.cpp' | xargs clang-format --dry-run --Werror 2>&1 | grep -c "error:")
  [[ $bad -eq 0 ]] || { git ls-files '*.hpp' '*.cpp' | xargs clang-format --dry-run --Werror 2>&1 | head -20; return 1; }
}

run_fuzzers() {
  cmake --preset fuzz >/dev/null && cmake --build --preset fuzz || return 1
  local ok=0 corpus out rc
  out=$(mktemp)
  for fuzzer in build/fuzz/tests/fuzz/*_fuzz; do
    [[ -x $fuzzer ]] || continue
    name=$(basename "$fuzzer")
    corpus=$(mktemp -d)
    cp -r "tests/fuzz/corpus/${name%_fuzz}/." "$corpus/" 2>/dev/null || true
    echo "-- $name for ${PODS_FUZZ_SECONDS:-20} s"
    "$fuzzer" -max_total_time="${PODS_FUZZ_SECONDS:-20}" -print_final_stats=1 "$corpus" >"$out" 2>&1
    rc=$?
    if [[ $rc -eq 0 ]]; then
      grep -E "number_of_executed_units|new_units_added" "$out"
    else
      echo "FAILED: $name exited with $rc"
      grep -A40 -E "ERROR|runtime error|deadly signal" "$out" | head -60
      ok=1
    fi
    rm -rf "$corpus"
  done
  rm -f "$out"
  return $ok
}

step "clang-format" check_format
for preset in "${presets[@]}"; do
  if [[ $preset == fuzz ]]; then
    step "fuzz" run_fuzzers
    continue
  fi
  echo "== build $preset"
  if cmake --preset "$preset" >/dev/null && cmake --build --preset "$preset"; then
    ctest --preset "$preset" 2>&1 | tee "$log"
    summary=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -1)
    total=$(sed -E 's/.* out of ([0-9]+).*/\1/' <<<"$summary")
    bad=$(sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/' <<<"$summary")
    if [[ -z $summary ]]; then
      echo "FAILED: ctest $preset printed no summary"
      failed=$((failed + 1))
    else
      passed=$((passed + total - bad))
      failed=$((failed + bad))
    fi
  else
    echo "FAILED: build $preset"
    failed=$((failed + 1))
  fi
done

echo
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]

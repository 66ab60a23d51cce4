#!/usr/bin/env bash
# Measures what including each pods header costs a user: the compiler's CPU time (user +
# system) for an otherwise empty translation unit that includes it, built the way a user's
# release build would (-std=c++20 -O2 -c), the number of files the include pulls in and the
# lines the compiler reads after preprocessing (a count that a busy machine cannot inflate).
# Prints one row per header: every single-block header, each family's aggregate header and
# pods/pods.hpp, with the median of RUNS compilations (CPU time, so a busy machine inflates
# it less than wall time would).
# Usage: scripts/compile_time.sh [-r RUNS] [-c COMPILER] [-l LIMIT] [header-glob...]
#   RUNS (default 5), COMPILER (default g++), LIMIT: exit 1 when a single-block header's
#   median exceeds LIMIT seconds (default: report only). Globs are relative to include/,
#   e.g. 'pods/time/*.hpp'; an argument in angle brackets, e.g. '<chrono>', measures that
#   header of the compiler's library instead, for comparison.
set -euo pipefail
cd "$(dirname "$0")/.."

runs=5
cxx=g++
limit=""
while getopts "r:c:l:h" opt; do
  case $opt in
    r) runs=$OPTARG ;;
    c) cxx=$OPTARG ;;
    l) limit=$OPTARG ;;
    h | *)
      sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
      [[ $opt == h ]] && exit 0 || exit 2
      ;;
  esac
done
shift $((OPTIND - 1))
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "compile_time.sh: -r wants a positive integer, got '$runs'" >&2; exit 2; }

cd include
if (($#)); then
  headers=()
  for arg in "$@"; do
    if [[ $arg == \<*\> ]]; then
      headers+=("$arg")
    else
      # shellcheck disable=SC2206 # the globs are meant to expand here
      headers+=($arg)
    fi
  done
else
  headers=(pods/*/*.hpp pods/*.hpp)
fi
cd ..

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flags=(-std=c++20 -O2 -Iinclude -c -o "$work/tu.o")

# Prints the median of the numbers given as arguments.
median() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

printf '%-44s %9s %7s %8s\n' "header ($cxx ${flags[*]:0:2}, median of $runs)" "seconds" "files" "lines"
over=0
for header in "${headers[@]}"; do
  if [[ $header == \<*\> ]]; then
    printf '#include %s\n' "$header" >"$work/tu.cpp"
  else
    [[ -f include/$header ]] || { echo "compile_time.sh: no such header include/$header" >&2; exit 2; }
    printf '#include <%s>\n' "$header" >"$work/tu.cpp"
  fi
  files=$("$cxx" -std=c++20 -Iinclude -H -fsyntax-only "$work/tu.cpp" 2>&1 >/dev/null | grep -c '^\.' || true)
  lines=$("$cxx" -std=c++20 -O2 -Iinclude -E -P "$work/tu.cpp" | wc -l)
  samples=()
  for ((i = 0; i < runs; ++i)); do
    cpu=$( { /usr/bin/time -f '%U %S' "$cxx" "${flags[@]}" "$work/tu.cpp" 2>&1 >/dev/null; } | tail -n 1)
    samples+=("$(awk '{ printf "%.3f", $1 + $2 }' <<<"$cpu")")
  done
  m=$(median "${samples[@]}")
  mark=""
  if [[ -n $limit && $header == pods/*/* ]] && awk -v m="$m" -v l="$limit" 'BEGIN { exit !(m > l) }'; then
    mark="  over ${limit} s"
    over=1
  fi
  printf '%-44s %9.2f %7d %8d%s\n' "$header" "$m" "$files" "$lines" "$mark"
done
exit $over

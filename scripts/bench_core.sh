#!/usr/bin/env bash
# Durable writes and linearizable reads at C = 1, 16, 64 clients, values of 100 bytes:
#   redis: redis-server (appendonly yes, appendfsync always) driven by
#          redis-benchmark -t set,get -n N -c C -d 100 -r 100000 --csv.
#   etcd:  3 members on 127.0.0.1, wrk on the leader's HTTP gateway: /v3/kv/put (distinct
#          keys, fsync by default) and /v3/kv/range (linearizable) for SECONDS per run.
#   pods:  examples/consistent_core, 3 nodes on 127.0.0.1 (`consistent_core cluster`, Release
#          build, fdatasync before each acknowledgement), the same redis-benchmark command
#          against the leader; GET is a linearizable read (ReadIndex).
# Prints ops/s, p50 and p99 per side and the ratios pods/etcd and pods/redis.
# Needs (Debian): redis-server redis-tools etcd-server etcd-client wrk python3. A side whose
# tools are missing is skipped with a note. Every server started listens on 127.0.0.1 only
# and is stopped (and its data removed) at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench/servers.sh
SECS="${SECONDS_PER_RUN:-${1:-10}}"
N="${REQUESTS:-20000}"
CLIENTS=(${CLIENTS:-1 16 64})
bench_init
FSYNC_LINE="$(bench_fsync_latency)"
declare -A R

BUILD="${PODS_RELEASE_BUILD:-build/release}"

# Runs redis-benchmark SET and GET at C clients against 127.0.0.1:PORT and stores
# "ops_per_s p50_us p99_us" in R[SIDE_SET_C] and R[SIDE_GET_C].
redis_benchmark_into() {
  local side="$1" port="$2" c="$3" test rps avg min p50 p95 p99 max
  while IFS=, read -r test rps avg min p50 p95 p99 max; do
    test="${test//\"/}"
    [[ "$test" == SET || "$test" == GET ]] || continue
    R[${side}_${test}_$c]="$(python3 -c 'import sys; r, a, b = map(float, sys.argv[1:]); print("%.0f %.0f %.0f" % (r, a * 1000, b * 1000))' "${rps//\"/}" "${p50//\"/}" "${p99//\"/}")"
  done < <(redis-benchmark -h 127.0.0.1 -p "$port" -t set,get -n "$N" -c "$c" -d 100 -r 100000 --csv)
}

# Prints the client port of the consistent_core node whose INFO says role:leader.
core_leader_port() {
  local port
  for port in $(sed -nE 's/^node [0-9]+ client port ([0-9]+)$/\1/p' "$BENCH_TMP/core.out"); do
    if redis-cli -h 127.0.0.1 -p "$port" INFO 2>/dev/null | grep -q '^role:leader'; then
      echo "$port"
      return 0
    fi
  done
  return 1
}

# Starts the 3-node consistent_core cluster (`consistent_core cluster`, fdatasync before each
# acknowledgement, data in $BENCH_TMP/core), runs redis-benchmark against its leader (GET is a
# linearizable read: ReadIndex), and stops it.
pods_core_side() {
  if [[ ! -f examples/consistent_core/main.cpp ]]; then
    echo "note: pods side skipped: examples/consistent_core (RESP server) is not in this tree" >&2
    return 0
  fi
  if ! bench_have redis-benchmark || ! bench_have redis-cli; then
    echo "note: pods side skipped: install redis-tools (redis-benchmark, redis-cli)" >&2
    return 0
  fi
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release \
    -DPODS_BUILD_TESTS=OFF >/dev/null
  cmake --build "$BUILD" -j2 --target consistent_core >/dev/null
  mkfifo "$BENCH_TMP/core.stdin"
  "$BUILD/examples/consistent_core/consistent_core" cluster --dir "$BENCH_TMP/core" \
    <"$BENCH_TMP/core.stdin" >"$BENCH_TMP/core.out" 2>"$BENCH_TMP/core.err" &
  local pid=$! c port
  BENCH_PIDS+=($pid)
  exec {core_stdin}>"$BENCH_TMP/core.stdin"  # the cluster runs while this stays open
  bench_wait_for 60 "consistent_core leader" grep -q '^leader ' "$BENCH_TMP/core.out"
  for c in "${CLIENTS[@]}"; do
    bench_wait_for 30 "a consistent_core leader" core_leader_port
    port="$(core_leader_port)"
    echo "pods: consistent_core leader on port $port, $c clients" >&2
    redis_benchmark_into pods "$port" "$c"
  done
  exec {core_stdin}>&-  # the end of its stdin stops the cluster
  wait "$pid" || true
}

redis_side() {
  if ! bench_have redis-server || ! bench_have redis-benchmark; then
    echo "note: redis side skipped: install redis-server redis-tools" >&2
    return 0
  fi
  redis_start
  local c
  for c in "${CLIENTS[@]}"; do
    redis_benchmark_into redis "$REDIS_PORT" "$c"
  done
}

etcd_side() {
  local tool
  for tool in etcd etcdctl wrk; do
    bench_have "$tool" || { echo "note: etcd side skipped: $tool not installed" >&2; return 0; }
  done
  etcd_start
  local c ops p50 p99 n errors
  for c in "${CLIENTS[@]}"; do
    read -r ops p50 p99 n errors <<<"$(etcd_wrk put "core-c$c/" "$c" "$SECS" 100)"
    ((errors == 0)) || { echo "bench: etcd put errors: $errors" >&2; exit 1; }
    R[etcd_SET_$c]="$ops $p50 $p99"
  done
  # Reads of 20 keys that exist, written first.
  for ((i = 0; i < 20; i++)); do etcdctl --endpoints="$ETCD_ENDPOINTS" put "read/$i" "$(printf 'v%.0s' {1..100})" >/dev/null; done
  for c in "${CLIENTS[@]}"; do
    read -r ops p50 p99 n errors <<<"$(PODS_BENCH_KEYS=20 etcd_wrk get "read/" "$c" "$SECS" 100)"
    ((errors == 0)) || { echo "bench: etcd get errors: $errors" >&2; exit 1; }
    R[etcd_GET_$c]="$ops $p50 $p99"
  done
}

ratio() { python3 -c "import sys; a,b=sys.argv[1:]; print('%.2f' % (float(a)/float(b)) if a!='-' and b!='-' and float(b)>0 else '-')" "$1" "$2"; }

pods_core_side
redis_side
etcd_side
printf '\n%-4s %-8s %22s %22s %22s %10s %11s\n' op clients "pods ops/s p50/p99" "etcd ops/s p50/p99" "redis ops/s p50/p99" pods/etcd pods/redis
for op in SET GET; do
  for c in "${CLIENTS[@]}"; do
    read -r po _ _ <<<"${R[pods_${op}_$c]:--}"
    read -r eo _ _ <<<"${R[etcd_${op}_$c]:--}"
    read -r ro _ _ <<<"${R[redis_${op}_$c]:--}"
    printf '%-4s %-8s %22s %22s %22s %10s %11s\n' "$op" "$c" "$(tr ' ' / <<<"${R[pods_${op}_$c]:--}")" \
      "$(tr ' ' / <<<"${R[etcd_${op}_$c]:--}")" "$(tr ' ' / <<<"${R[redis_${op}_$c]:--}")" \
      "$(ratio "$po" "$eo")" "$(ratio "$po" "$ro")"
  done
done
echo "(ops/s / p50 us / p99 us; pods and etcd: 3 members, fsync before acknowledging, GET a"
echo " linearizable read; redis: one server, appendfsync always; ratios are of ops/s)"
echo "$FSYNC_LINE"

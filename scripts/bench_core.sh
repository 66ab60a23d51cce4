#!/usr/bin/env bash
# Durable writes and linearizable reads at C = 1, 16, 64 clients, values of 100 bytes:
#   redis: redis-server (appendonly yes, appendfsync always) driven by
#          redis-benchmark -t set,get -n N -c C -d 100 -r 100000 --csv.
#   etcd:  3 members on 127.0.0.1, wrk on the leader's HTTP gateway: /v3/kv/put (distinct
#          keys, fsync by default) and /v3/kv/range (linearizable) for SECONDS per run.
#   pods:  the consistent_core RESP server under redis-benchmark (pods_core_side).
# Needs (Debian): redis-server redis-tools etcd-server etcd-client wrk python3.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench/servers.sh
SECS="${SECONDS_PER_RUN:-${1:-10}}"
N="${REQUESTS:-20000}"
CLIENTS=(${CLIENTS:-1 16 64})
bench_init
declare -A R

# Runs the 3-node consistent_core RESP cluster under redis-benchmark; skipped until the
# examples/consistent_core server exists.
pods_core_side() {
  if [[ ! -f examples/consistent_core/main.cpp ]]; then
    echo "note: pods side skipped: examples/consistent_core (RESP server) is not in this tree" >&2
  fi
}

redis_side() {
  if ! bench_have redis-server || ! bench_have redis-benchmark; then
    echo "note: redis side skipped: install redis-server redis-tools" >&2
    return 0
  fi
  redis_start
  local c line
  for c in "${CLIENTS[@]}"; do
    while IFS=, read -r test rps avg min p50 p95 p99 max; do
      test="${test//\"/}"
      [[ "$test" == SET || "$test" == GET ]] || continue
      R[redis_${test}_$c]="$(printf '%.0f %.0f %.0f' "${rps//\"/}" "$(python3 -c "print(float(${p50//\"/})*1000)")" "$(python3 -c "print(float(${p99//\"/})*1000)")")"
    done < <(redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -t set,get -n "$N" -c "$c" -d 100 -r 100000 --csv)
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

pods_core_side
redis_side
etcd_side
printf '\n%-4s %-8s %16s %16s %16s\n' op clients "pods ops p50/p99" "etcd ops p50/p99" "redis ops p50/p99"
for op in SET GET; do
  for c in "${CLIENTS[@]}"; do
    printf '%-4s %-8s %16s %16s %16s\n' "$op" "$c" "${R[pods_${op}_$c]:--}" \
      "$(tr ' ' / <<<"${R[etcd_${op}_$c]:--}")" "$(tr ' ' / <<<"${R[redis_${op}_$c]:--}")"
  done
done
echo "(ops/s / p50 us / p99 us; etcd GET is a linearizable range read)"

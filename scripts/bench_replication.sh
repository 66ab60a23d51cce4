#!/usr/bin/env bash
# Durable replicated puts, pods beside etcd 3.4: 3 members each on 127.0.0.1, closed-loop
# clients C = 1, 16, 64, values of 100 bytes, SECONDS per run (default 10).
#   pods: replicated_kv load (3 processes, fdatasync on every node), built in Release.
#   etcd: 3 members (fsync by default), wrk POSTing /v3/kv/put to the leader's HTTP gateway,
#         distinct keys; the keys are counted afterwards with etcdctl.
# Needs (Debian): etcd-server etcd-client wrk python3. A side whose tools are missing is
# skipped with a note. Every server started is stopped and its data removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench/servers.sh
SECS="${SECONDS_PER_RUN:-${1:-10}}"
CLIENTS=(${CLIENTS:-1 16 64})
VSIZE=100
BUILD="${PODS_RELEASE_BUILD:-build/release}"
bench_init
FSYNC_LINE="$(bench_fsync_latency)"
declare -A POD ETC

pods_side() {
  if [[ ! -f examples/replicated_kv/main.cpp ]]; then
    echo "note: pods side skipped: examples/replicated_kv is not in this tree" >&2
    return 0
  fi
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Release \
    -DPODS_BUILD_TESTS=OFF >/dev/null
  cmake --build "$BUILD" -j2 --target replicated_kv >/dev/null
  local bin="$BUILD/examples/replicated_kv/replicated_kv" c line
  for c in "${CLIENTS[@]}"; do
    line="$(TMPDIR="$BENCH_TMP" "$bin" load --clients "$c" --seconds "$SECS" --value-size "$VSIZE" |
      grep '^replicated_kv load:')"
    echo "$line" >&2
    POD[$c]="$(sed -E 's/.*ops_per_s=([0-9.]+) p50_us=([0-9.]+) p99_us=([0-9.]+).*/\1 \2 \3/' <<<"$line")"
  done
}

etcd_side() {
  local tool
  for tool in etcd etcdctl wrk; do
    if ! bench_have "$tool"; then
      echo "note: etcd side skipped: $tool not installed (Debian: etcd-server etcd-client wrk)" >&2
      return 0
    fi
  done
  etcd_start
  echo "etcd: 3 members, leader $ETCD_LEADER, data in $BENCH_TMP/etcd" >&2
  local c r ops p50 p99 n errors keys
  for c in "${CLIENTS[@]}"; do
    read -r ops p50 p99 n errors <<<"$(etcd_wrk put "put-c$c/" "$c" "$SECS" "$VSIZE")"
    keys="$(etcd_count_keys "put-c$c/")"
    echo "etcd put: clients=$c requests=$n non2xx=$errors keys_stored=$keys ops_per_s=$ops p50_us=$p50 p99_us=$p99" >&2
    if ((errors != 0 || keys < n - errors)); then
      echo "bench: etcd acknowledged puts missing: $keys keys for $n requests" >&2
      exit 1
    fi
    ETC[$c]="$ops $p50 $p99"
  done
}

ratio() { python3 -c "import sys; a,b=sys.argv[1:]; print('%.2f' % (float(a)/float(b)) if a!='-' and b!='-' and float(b)>0 else '-')" "$1" "$2"; }

pods_side
etcd_side
printf '\n%-8s %12s %12s %8s %18s %18s\n' clients pods_ops/s etcd_ops/s ratio "pods p50/p99 us" "etcd p50/p99 us"
for c in "${CLIENTS[@]}"; do
  read -r po pp50 pp99 <<<"${POD[$c]:-- - -}"
  read -r eo ep50 ep99 <<<"${ETC[$c]:-- - -}"
  printf '%-8s %12s %12s %8s %18s %18s\n' "$c" "$po" "$eo" "$(ratio "$po" "$eo")" "$pp50/$pp99" "$ep50/$ep99"
  if [[ "$c" == 1 ]]; then p50_ratio="$(ratio "$pp50" "$ep50")"; fi
done
echo "p50 at 1 client, pods/etcd: ${p50_ratio:--} (below 1 means pods is faster)"
echo "$FSYNC_LINE"

# Shared by the benchmark scripts (sourced, not run): free ports, an etcd 3.4 cluster of 3
# members on 127.0.0.1, a durable redis-server, wrk drivers for etcd's HTTP gateway, and
# cleanup of everything started. Every server listens on 127.0.0.1 only, keeps its data in
# $BENCH_TMP, and is stopped by bench_cleanup (installed as an EXIT trap by bench_init).

BENCH_PIDS=()
BENCH_TMP=""
BENCH_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# Creates the temp dir (under $BENCH_DIR when set, so the data can sit on a chosen disk)
# and installs the cleanup trap.
bench_init() {
  BENCH_TMP="$(mktemp -d "${BENCH_DIR:-${TMPDIR:-/tmp}}/pods-bench.XXXXXX")"
  trap bench_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Stops every server started here (by its pid) and removes the temp dir.
bench_cleanup() {
  local pid
  for pid in "${BENCH_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${BENCH_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  BENCH_PIDS=()
  [[ -n "$BENCH_TMP" && -d "$BENCH_TMP" ]] && rm -rf "$BENCH_TMP"
  BENCH_TMP=""
}

# Prints N ports the OS reports free on 127.0.0.1 (all bound at once, so they differ).
bench_free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = []
for _ in range(int(sys.argv[1])):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    socks.append(s)
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
PY
}

# Polls CMD (a command string) every 0.1 s until it succeeds; fails after TIMEOUT seconds.
bench_wait_for() {
  local timeout="$1" what="$2"; shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      echo "bench: $what not ready after ${timeout}s" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Prints the latency of this disk's fdatasync (4 KiB appends to one file in $BENCH_TMP, 200
# samples): the figure that sets every durable side's write latency, so that runs on different
# days or machines can be compared.
bench_fsync_latency() {
  python3 - "$BENCH_TMP/fsync-probe" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
block, samples = b"x" * 4096, []
for _ in range(200):
    os.write(fd, block)
    t = time.perf_counter()
    os.fdatasync(fd)
    samples.append((time.perf_counter() - t) * 1e6)
os.close(fd)
os.remove(sys.argv[1])
samples.sort()
print("disk: fdatasync after a 4 KiB append: p50 %.0f us, p99 %.0f us (200 samples)"
      % (samples[100], samples[198]))
PY
}

bench_have() { command -v "$1" >/dev/null 2>&1; }

# --- etcd -----------------------------------------------------------------------------
ETCD_ENDPOINTS=""
ETCD_LEADER=""

# Starts 3 etcd members (default durability: fsync of the WAL before each acknowledgement),
# waits until every member reports healthy, and sets ETCD_ENDPOINTS and ETCD_LEADER.
etcd_start() {
  local ports client=() peer=() cluster="" i
  read -r -a ports <<<"$(bench_free_ports 6)"
  for i in 0 1 2; do
    client[i]="http://127.0.0.1:${ports[i]}"
    peer[i]="http://127.0.0.1:${ports[i + 3]}"
    cluster+="${cluster:+,}m$i=${peer[i]}"
  done
  for i in 0 1 2; do
    mkdir -p "$BENCH_TMP/etcd/m$i"
    etcd --name "m$i" --data-dir "$BENCH_TMP/etcd/m$i" \
      --listen-client-urls "${client[i]}" --advertise-client-urls "${client[i]}" \
      --listen-peer-urls "${peer[i]}" --initial-advertise-peer-urls "${peer[i]}" \
      --initial-cluster "$cluster" --initial-cluster-state new \
      --initial-cluster-token pods-bench --logger zap --log-level error \
      >"$BENCH_TMP/etcd/m$i.log" 2>&1 &
    BENCH_PIDS+=($!)
  done
  ETCD_ENDPOINTS="${client[0]},${client[1]},${client[2]}"
  bench_wait_for 30 "etcd cluster health" etcdctl --endpoints="$ETCD_ENDPOINTS" endpoint health
  bench_wait_for 30 "etcd leader" etcd_find_leader
  ETCD_LEADER="$(etcd_find_leader)"
}

# Prints the client URL of the member that reports itself leader (fails if none does).
etcd_find_leader() {
  etcdctl --endpoints="$ETCD_ENDPOINTS" endpoint status -w json | python3 -c '
import json, sys
for s in json.load(sys.stdin):
    st = s["Status"]
    if st["leader"] != 0 and st["leader"] == st["header"]["member_id"]:
        print(s["Endpoint"]); sys.exit(0)
sys.exit(1)'
}

# Prints the number of keys under PREFIX.
etcd_count_keys() {
  etcdctl --endpoints="$ETCD_ENDPOINTS" get --prefix "$1" --keys-only --limit 1 -w json |
    python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", 0))'
}

# Runs wrk against the leader's HTTP gateway: MODE put (distinct keys under PREFIX) or
# get (linearizable range reads of keys under PREFIX), C closed-loop connections for S
# seconds, values of VSIZE bytes. Prints "ops_per_s p50_us p99_us requests non2xx".
etcd_wrk() {
  local mode="$1" prefix="$2" c="$3" s="$4" vsize="$5" t out
  t=$((c < 2 ? c : 2))
  out="$(PODS_BENCH_MODE="$mode" PODS_BENCH_PREFIX="$prefix" PODS_BENCH_VSIZE="$vsize" \
    PODS_BENCH_KEYS="${PODS_BENCH_KEYS:-1000}" \
    wrk -c "$c" -t "$t" -d "${s}s" --latency -s "$BENCH_LIB_DIR/etcd_kv.lua" "$ETCD_LEADER")"
  echo "$out" >>"$BENCH_TMP/wrk.log"
  python3 "$BENCH_LIB_DIR/parse_wrk.py" <<<"$out"
}

# --- redis ----------------------------------------------------------------------------
REDIS_PORT=""

# Starts redis-server on 127.0.0.1 with appendonly yes, appendfsync always (fsync before
# each write is acknowledged), no RDB snapshots; waits until it answers PING.
redis_start() {
  REDIS_PORT="$(bench_free_ports 1)"
  mkdir -p "$BENCH_TMP/redis"
  redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$BENCH_TMP/redis" \
    --appendonly yes --appendfsync always --save "" --daemonize no \
    --logfile "$BENCH_TMP/redis/redis.log" &
  BENCH_PIDS+=($!)
  bench_wait_for 30 "redis-server" redis_ping
}

redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping)" == PONG ]]; }

#!/usr/bin/env bash
# Starts one `consistent_core node` as a single voter (no peer lines), then drives it:
#   one_node_test.sh BINARY check            misbehaving clients (consistent_core check)
#   one_node_test.sh BINARY redis-cli        redis-cli commands and their replies
#   one_node_test.sh BINARY bench N C D      redis-benchmark -t set,get -n N -c C -d D
#   one_node_test.sh BINARY shell            prints the port and waits (for trying it by hand)
# Extra node flags come from NODE_FLAGS. The node and its data directory are removed at exit.
set -euo pipefail
bin=$1
mode=$2
dir=$(mktemp -d)
mkfifo "$dir/in"
"$bin" node --id 1 --dir "$dir/data" ${NODE_FLAGS:-} <"$dir/in" >"$dir/out" 2>"$dir/err" &
node=$!
exec 9>"$dir/in"  # the node stops when this end closes
cleanup() {
  exec 9>&- || true
  for _ in $(seq 50); do kill -0 "$node" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$node" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -s "$dir/out" ] && break; sleep 0.05; done
read -r _ _ port <"$dir/out"
echo go >&9
ask() { "$bin" ask --port "$port" "$@"; }
# Wait until the single voter leads (it elects itself after one election timeout).
for _ in $(seq 100); do
  if [ "$("$bin" ask --port "$port" INFO 2>/dev/null | grep -c '^role:leader')" = 1 ]; then break; fi
  sleep 0.05
done
case "$mode" in
  check) "$bin" check --port "$port" ;;
  redis-cli)
    if ! command -v redis-cli >/dev/null; then
      echo "redis-cli not installed: skipped (Debian: redis-tools)"
      exit 0
    fi
    r() { redis-cli -p "$port" "$@"; }
    fail() { echo "FAILED: $*"; exit 1; }
    [ "$(r PING)" = PONG ] || fail PING
    [ "$(r SET k v1)" = OK ] || fail SET
    [ "$(r GET k)" = v1 ] || fail GET
    [ "$(r SET k v2 NX)" = "" ] || fail "SET NX on a present key"
    [ "$(r INCR n)" = 1 ] || fail INCR
    [ "$(r INCRBY n 41)" = 42 ] || fail INCRBY
    [ "$(r INCR k)" = "ERR value is not an integer or out of range" ] || fail "INCR of a string"
    [ "$(r CAS k 0 x)" = 0 ] || fail "CAS on a present key with 0"
    [ "$(r DEL k n nothing)" = 2 ] || fail DEL
    [ "$(r GET k)" = "" ] || fail "GET after DEL"
    [ "$(r SET cfg/a 1)" = OK ] && [ "$(r SET cfg/b 2)" = OK ] || fail SET
    [ "$(r KEYS 'cfg/*' | tr '\n' ' ')" = "cfg/a cfg/b " ] || fail KEYS
    [ "$(r KEYS 'c*g')" = "ERR KEYS takes a literal prefix followed by one '*' (no other pattern), got 'c*g'" ] || fail "KEYS pattern"
    r INFO | grep -q '^role:leader' || fail INFO
    [ "$(r FOO bar)" = "ERR unknown command 'FOO', with args beginning with: 'bar' " ] || fail "unknown command"
    lease=$(r LEASE GRANT 5000)
    [ "$(r SET lock me LEASE "$lease")" = OK ] || fail "SET LEASE"
    [ "$(r LEASE KEEPALIVE "$lease")" = 5000 ] || fail KEEPALIVE
    [ "$(r LEASE REVOKE "$lease")" = 1 ] || fail REVOKE
    [ "$(r GET lock)" = "" ] || fail "a revoked lease's key"
    # A watch stream: redis-cli prints pushes as they come after a SUBSCRIBE (WATCH's alias:
    # redis-cli reads one reply per command otherwise); two writes, then the watcher ends.
    timeout 3 redis-cli -p "$port" SUBSCRIBE 'w/*' >"$dir/watch" 2>&1 &
    watcher=$!
    for _ in $(seq 100); do [ -s "$dir/watch" ] && break; sleep 0.05; done
    r SET w/1 a >/dev/null
    r DEL w/1 >/dev/null
    wait "$watcher" || true
    tr '\n' ' ' <"$dir/watch" | grep -q 'OK watch put w/1 a [0-9]* watch del w/1  [0-9]*' ||
      fail "the watch stream: $(cat "$dir/watch")"
    echo "redis-cli: ok"
    ;;
  bench)
    if ! command -v redis-benchmark >/dev/null; then
      echo "redis-benchmark not installed: skipped (Debian: redis-tools)"
      exit 0
    fi
    redis-benchmark -p "$port" -t set,get -n "${3:-20000}" -c "${4:-16}" -d "${5:-100}" ${BENCH_FLAGS:-}
    ;;
  shell)
    echo "port $port (Ctrl-C to stop)"
    while :; do sleep 3600; done
    ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac

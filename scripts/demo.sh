#!/usr/bin/env bash
# Builds (release) and runs the main demonstration: `consistent_core demo`, three node
# processes of a coordination service on 127.0.0.1 driven by clients of its own while nodes
# are killed, restarted and paused; the clients' history is checked for linearizability, the
# leases and the watches against what they promise (docs/examples/consistent-core.md).
# Extra arguments go to the program (--seconds S, --seed N, --clients C, --stale-reads).
# PODS_DEMO=durable_kv runs the crash-proof single-server demonstration instead
# (docs/examples/durable-kv.md), with the arguments going to it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
demo="${PODS_DEMO:-consistent_core}"
case "$demo" in
  consistent_core) args=(demo "$@") ;;
  durable_kv) args=("$@") ;;
  *) echo "demo.sh: PODS_DEMO is consistent_core or durable_kv, got '$demo'" >&2; exit 2 ;;
esac
cmake --preset release >/dev/null
cmake --build --preset release --target "$demo"
exec "./build/release/examples/$demo/$demo" "${args[@]}"

#!/usr/bin/env bash
# Builds (release) and runs the main demonstration. Extra arguments go to the program.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
demo=durable_kv
cmake --preset release >/dev/null
cmake --build --preset release --target "$demo"
exec "./build/release/examples/$demo/$demo" "$@"

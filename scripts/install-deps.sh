#!/usr/bin/env bash
# Installs, through apt-get, whatever pods needs to build, test and benchmark that this
# Debian 12 machine does not have yet. Safe to run again: it installs only what is missing.
set -euo pipefail

packages=(
  # toolchain
  g++ clang libclang-rt-14-dev cmake ninja-build clang-format git
  # dependencies of pods itself and of its tests and benchmarks
  librange-v3-dev catch2 libbenchmark-dev
  # the network family: standalone Asio (<pods/net/tcp_transport.hpp>) and libsodium
  # (<pods/net/authenticated_link.hpp>); the rest of pods needs neither
  libasio-dev libsodium-dev pkg-config
  # headless browser the history page test (tests/sim/history_html_test.cpp) renders with
  chromium
  # peers the benchmarks compare against (optional for the build; installed so they run)
  libconcurrentqueue-dev libatomic-queue-dev libtbb-dev libboost-dev librocksdb-dev libleveldb-dev
  libzmq3-dev cppzmq-dev
  # servers and load tools the multi-process benchmark scripts (scripts/bench_*.sh) start and
  # drive on 127.0.0.1; the build and the tests never need them
  etcd-server etcd-client wrk redis-server redis-tools
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  echo "pods: installing ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "pods: run as root (or with sudo) to install packages: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  # The server packages must not start their daemons: the benchmark scripts start their own
  # on 127.0.0.1 and stop them. Without a policy-rc.d, one that refuses is in place meanwhile.
  policy=/usr/sbin/policy-rc.d
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy"
    trap 'rm -f "$policy"' EXIT
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

#!/usr/bin/env bash
# Load benchmark of the build service (loopback only, bounded): one build followed by
# CLIENTS WebSocket clients while the REST API gets RPS requests a second for SECS seconds.
# The build is the fake backend's (osimager-fake-serve): it streams RATE log lines a second
# for SECS seconds, so the numbers are the server's own (no guest competing for the CPUs).
#
#   bench/serve.sh [CLIENTS=200] [RPS=50] [SECS=60] [RATE=100]
#
# Prints the load generator's JSON line plus the server's peak RSS (VmHWM) and the load
# average, and fails when a client missed a record, got one out of order, or a request failed.
set -euo pipefail
cd "$(dirname "$0")/.."
CLIENTS=${1:-200}; RPS=${2:-50}; SECS=${3:-60}; RATE=${4:-100}
cargo build --release -q -p osimager-server --bin osimager-fake-serve --example serve_load
T=${CARGO_TARGET_DIR:-target}/release
WORK="$(mktemp -d)"
trap 'rc=$?; kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null; rm -rf "$WORK"; exit $rc' EXIT
"$T/osimager-fake-serve" --state-dir "$WORK/state" --images "$WORK/images" --jobs 1 >"$WORK/out" 2>"$WORK/err" &
SERVER=$!
for _ in $(seq 1 100); do grep -q "listening on" "$WORK/out" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/out")
[ -n "$ADDR" ] || { cat "$WORK/err"; exit 1; }
echo "bench/serve.sh: server $ADDR (pid $SERVER), $CLIENTS clients, $RPS req/s, $SECS s, build streams $RATE lines/s"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
set +e
"$T/examples/serve_load" --base "http://$ADDR" --clients "$CLIENTS" --rps "$RPS" --secs "$SECS" --rate "$RATE"
RC=$?
set -e
echo "server peak RSS: $(awk '/VmHWM/ {printf "%.1f MiB", $2/1024}' /proc/$SERVER/status)"
echo "load average before / after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg) ($(nproc) CPUs)"
exit $RC

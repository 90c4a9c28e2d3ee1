#!/usr/bin/env bash
# Job-store claim benchmark: claims per second and claim latency with 1, 4 and 16 claimers
# on SQLite, PostgreSQL (a server started from Debian's package on loopback by the bench
# itself) and two stores ("two API servers") on one PostgreSQL database.
# Usage: bench/workers.sh [JOBS per round, default 2000] [cargo profile flag, default --release]
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${1:-2000}"
PROFILE="${2:---release}"
cargo run $PROFILE -p osimager-server --features testing --example claim_bench -- "$JOBS"

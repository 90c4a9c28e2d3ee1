#!/usr/bin/env bash
# Fuzz the boot-command parser, the E> evaluator, the marker expander, the JSON/TOML loaders
# and the answer-file HTTP server with libFuzzer (cargo-fuzz), issue 15.
#   scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]     default: 300 s each, all five targets
#   FUZZ_MINIMIZE=1 scripts/fuzz.sh ...                  also merge what was found into the
#                                                        committed corpus (fuzz/corpus/<target>)
# Needs a nightly toolchain (rustup) and cargo-fuzz (installed from crates.io when missing).
# New inputs go to fuzz/corpus-work/ (not committed). A crash is copied to
# fuzz/regressions/<target>/ (commit it: tests/fuzz_corpus.rs replays it on stable in CI) and
# the script exits 1. Per-target executions and crashes are printed and written to
# fuzz/last-run.tsv.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-300}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(bootcmd expr markers loaders http)

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz.sh: no nightly toolchain (rustup toolchain install nightly); the corpora are still" >&2
  echo "replayed on stable by: cargo test --test fuzz_corpus" >&2
  exit 2
fi
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-${CARGO_TARGET_DIR:-target}-fuzz}
# -s none: the code is safe Rust (a sanitizer finds little and halves the speed);
# -a: debug assertions, so integer overflow is a crash.
for t in "${targets[@]}"; do cargo +nightly fuzz build -s none -a -O "$t"; done

printf 'target\tseconds\texecutions\tcrashes\tcorpus\n' > fuzz/last-run.tsv
failed=0
for t in "${targets[@]}"; do
  work=fuzz/corpus-work/$t art=fuzz/artifacts/$t
  mkdir -p "$work" "$art" "fuzz/corpus/$t"
  log=$(mktemp)
  set +e
  cargo +nightly fuzz run -s none -a -O "$t" "$work" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "$art" -type f | wc -l)
  corpus=$(find "$work" "fuzz/corpus/$t" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\n' "$t" "$secs" "${execs:-0}" "$crashes" "$corpus" | tee -a fuzz/last-run.tsv
  if [ "$rc" -ne 0 ] || [ "$crashes" -gt 0 ]; then
    failed=1
    mkdir -p "fuzz/regressions/$t"
    find "$art" -type f -exec cp {} "fuzz/regressions/$t/" \;
    echo "== $t: libFuzzer exit $rc; last lines:" >&2
    tail -30 "$log" >&2
  fi
  if [ "${FUZZ_MINIMIZE:-0}" = "1" ]; then
    cargo +nightly fuzz cmin -s none -a -O "$t" "fuzz/corpus/$t" >/dev/null 2>&1 || true
    merged=$(mktemp -d)
    cargo +nightly fuzz run -s none -a -O "$t" "$merged" "fuzz/corpus/$t" "$work" -- -merge=1 >/dev/null 2>&1 || true
    rm -rf "fuzz/corpus/$t" && mv "$merged" "fuzz/corpus/$t"
  fi
  rm -f "$log"
done
exit $failed

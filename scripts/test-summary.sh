#!/usr/bin/env bash
# Summarise a `cargo test` run: the reports the tests wrote (differential, validators), then
# how many tests passed, failed, were skipped at run time (and why), and were not run by design
# (#[ignore]). Child-process helpers (#[ignore = "helper: …"]) are not tests and are not counted.
#
#   scripts/test-summary.sh LOG REPORTS_DIR
#
# LOG is cargo test's combined output; REPORTS_DIR holds skips.log (one "<binary>::<test>\t<why>"
# line per skip, written by tests/support) and the *.txt reports. Exit status: 1 if a test failed
# or, in CI (CI=true or OSIMAGER_E2E=1), if anything was skipped; else 0.
set -uo pipefail

log=$1
reports=$2

for r in oracle-diff.txt oracle-merge-tree.txt bundled-validators.txt; do
  if [ -f "$reports/$r" ]; then
    echo "== $r"
    cat "$reports/$r"
  fi
done

passed=0 failed=0 ignored=0
while read -r p f i; do
  passed=$((passed + p)); failed=$((failed + f)); ignored=$((ignored + i))
done < <(sed -n 's/^test result: [a-zA-Z]*\. \([0-9]*\) passed; \([0-9]*\) failed; \([0-9]*\) ignored;.*/\1 \2 \3/p' "$log")

helpers=$(grep -c '^test .* \.\.\. ignored, helper:' "$log" || true)
by_design=$((ignored - helpers))
skips=0
if [ -f "$reports/skips.log" ]; then
  skips=$(wc -l < "$reports/skips.log")
fi

echo "== tests"
echo "passed: $passed (of which skipped at run time: $skips)"
echo "failed: $failed"
echo "skipped at run time: $skips"
if [ "$skips" -gt 0 ]; then
  sed 's/\t/: /; s/^/  /' "$reports/skips.log"
fi
echo "not run by design (#[ignore], benchmarks and slow measurements): $by_design"
grep '^test .* \.\.\. ignored, ' "$log" | grep -v ' ignored, helper:' | sed 's/^test /  /' || true
echo "child-process helpers (not tests, run by their parent tests): $helpers"

status=0
if [ "$failed" -gt 0 ] || grep -q '^error: test failed\|^error: [0-9]* targets failed' "$log"; then
  status=1
fi
ci=0
if [ "${CI:-}" = true ] || [ "${CI:-}" = 1 ] || [ "${OSIMAGER_E2E:-}" = 1 ]; then ci=1; fi
if [ "$ci" = 1 ] && [ "$skips" -gt 0 ]; then
  echo "FAIL: $skips test(s) skipped in CI (CI=true or OSIMAGER_E2E=1 runs everything)"
  status=1
fi
exit "$status"

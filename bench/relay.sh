#!/usr/bin/env bash
# Benchmark: the ansible provisioner through the SSH relay (`use_proxy: true`: Ansible rides the
# engine's own SSH session) against the direct connection (`use_proxy: false`: Ansible's OpenSSH
# logs in to the guest by itself, password through sshpass), on the same cached test-OS install.
# One full native build through the relay fills the install cache (and shows a full build passes
# through it; run with ANSIBLE_VERBOSITY=3 so that an ssh exit 255 retried by Ansible would show
# as `ssh_retry` in its log; -vvv also shows the relay's key in its ssh commands), then RUNS rounds of relay, direct rebuilds with `--cache use`
# (alternating, same target, name and playbook). Prints the provisioning phase of each run (the
# build.log's `==> provision` to `==> shutdown`) and a Markdown table for docs/BENCHMARKS.md.
#   flock /tmp/osimager-guest.lock bench/relay.sh [RUNS]     (default 3)
# BENCH_INSTALL_CACHE=DIR BENCH_NAME=NAME: skip the full build, reuse the install cache a kept run
# (BENCH_KEEP=1) filled for NAME. OSIMAGER_BIN=PATH: use that release binary (no cargo build).
# Needs what bench/build.sh needs (testos media, qemu, ansible-playbook, sshpass).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-3}
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "usage: bench/relay.sh [RUNS]" >&2; exit 2; }
VENV=${OSIMAGER_TOOLS_VENV:-/opt/osimager-venv}
export PATH=$PATH:$VENV/bin
export OSIMAGER_TESTOS_CACHE=${OSIMAGER_TESTOS_CACHE:-$HOME/.cache/osimager-testos}
CACHE=$OSIMAGER_TESTOS_CACHE
TARGET=qemu/hermetic/testos-1-x86_64
H=bench/buildbench.py
die() { echo "bench/relay.sh: $*" >&2; exit 1; }
[[ -f $CACHE/current/testos.iso ]] || die "testos media missing: run tests/testos/build-media.sh"
command -v ansible-playbook >/dev/null || die "ansible-playbook not found (expected in $VENV/bin)"
command -v sshpass >/dev/null || die "sshpass not found (the direct connection logs in with the password)"

RUNID=$(date +%H%M%S)
NAME=${BENCH_NAME:-benchr-$RUNID}  # BENCH_NAME: the name of the run whose install cache is reused
W=$(mktemp -d /tmp/osimager-bench-relay.XXXXXX)
cleanup() {
  local rc=$?
  for pid in $(pgrep -f "qemu-system-x86_64.*$NAME" || true); do kill "$pid" 2>/dev/null || true; done
  rm -rf "${CACHE:?}/vms/$NAME"* 
  if [[ ${BENCH_KEEP:-0} == 1 ]]; then echo "work dir kept: $W" >&2; else rm -rf "$W"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The test configuration; its location replaces the default ansible provisioner with the same
# one plus `use_proxy: >>ansible_use_proxy<<`, so that `-D ansible_use_proxy=…` chooses the
# path (the provisioners are not part of the install cache key: both modes hit the same entry).
cp -rL tests/testos/config "$W/config"
python3 - "$W/config/osimager/locations/hermetic.json" <<'PY'
import json, sys
path = sys.argv[1]
loc = json.load(open(path))
loc["defs"]["ansible_use_proxy"] = "false"
loc["platform_specific"] = [{"platform": "qemu", "method": "replace", "provisioners": [{
    "type": "ansible",
    "playbook_file": ">>ansible_playbook<<",
    "use_proxy": ">>ansible_use_proxy<<",
    "extra_arguments": [
        "[>ansible_extra_args<]",
        "--extra-vars",
        "platform={{user `platform-name`}} location_name={{user `location-name`}} spec_name={{user `spec-name`}} spec_config={{user `spec-config`}} install_dir=\">>install_path<<\" {{user `ansible-opts`}} >>ansible_extra_vars<<"]}]}]
json.dump(loc, open(path, "w"), indent=2)
PY
touch -d '-1 min' "$W/config/osimager/locations/hermetic.json"
export XDG_CONFIG_HOME=$W/config

if [[ -n ${OSIMAGER_BIN:-} ]]; then
  BIN=$OSIMAGER_BIN  # a release binary built beforehand
else
  echo "==> building (release)"
  cargo build --release --quiet
  BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/osimager
fi
for mode in true false; do
  "$BIN" dump "$TARGET" "$NAME" -D "ansible_use_proxy=$mode" | grep -q "\"use_proxy\": \"$mode\"" ||
    die "the test configuration does not set use_proxy=$mode (see the location written above)"
done
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)

# $1 = label, $2 = use_proxy, $3 = --cache mode, $4 = marker
run() {
  local label=$1 out=$CACHE/vms/$NAME-$1 t0 t1 rc=0
  rm -rf "$out" "$out.build"
  echo "==> $label (use_proxy=$2, --cache $3)"
  t0=$(date +%s.%N)
  "$BIN" build "$TARGET" "$NAME" --force --output-dir "$out" --cache "$3" --cache-dir "$W/install-cache" \
    -D "ansible_use_proxy=$2" -D "ansible_extra_vars=osimager_marker=$4" > "$W/$label.out" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  cp "$out.build/build.log" "$W/$label.build.log" 2>/dev/null || true
  [[ $rc == 0 ]] || { tail -40 "$W/$label.out" >&2; die "$label failed (rc $rc); BENCH_KEEP=1 keeps $W"; }
  if [[ $3 == use ]]; then
    grep -q "install cache: hit " "$W/$label.build.log" || die "$label did not hit the install cache"
  fi
  # At -vvv Ansible's ssh command lines show the relay's key (the dump check above covers the
  # other runs: same binary, same configuration, the -D decides).
  if [[ ${ANSIBLE_VERBOSITY:-0} -ge 3 && $2 == true ]]; then
    grep -q "relay-key-" "$W/$label.build.log" || die "$label did not use the relay"
  fi
  if grep -q "ssh_retry" "$W/$label.build.log"; then die "$label: Ansible retried an ssh command (exit 255): $W/$label.build.log"; fi
  python3 $H native-phases "$W/$label.build.log" "$t0" "$t1" |
    python3 -c 'import json,sys; p=json.load(sys.stdin)["phases"]; print(sys.argv[1], sys.argv[2], p["provision"], p["total"])' "$label" "$2" |
    tee -a "$W/results.txt"
  rm -rf "$out" "$out.build"
}

if [[ -n ${BENCH_INSTALL_CACHE:-} ]]; then
  # An install cache filled by an earlier run of this script (BENCH_KEEP=1 keeps its work dir).
  cp -a "$BENCH_INSTALL_CACHE" "$W/install-cache"
  echo "full-relay true - - (skipped: install cache from $BENCH_INSTALL_CACHE)" >> "$W/results.txt"
else
  ANSIBLE_VERBOSITY=3 run full-relay true refresh full
fi
for i in $(seq 1 "$RUNS"); do
  run "relay-$i" true use "r$i"
  run "direct-$i" false use "d$i"
done

python3 - "$W/results.txt" "$RUNS" "$LOAD" <<'PY'
import datetime, statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
full = [r for r in rows if r[0] == "full-relay"][0]
def col(mode):
    return [float(r[2]) for r in rows if r[0] != "full-relay" and r[1] == mode]
relay, direct = col("true"), col("false")
now = datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC")
print(f"\nCommand: `flock /tmp/osimager-guest.lock bench/relay.sh {sys.argv[2]}` — measured {now}, "
      f"load average at start {sys.argv[3]}. Full build through the relay (`--cache refresh`, "
      f"ANSIBLE_VERBOSITY=3, no `ssh_retry`): provisioning {full[2]} s, total {full[3]} s.\n")
print("| run | Ansible path | provisioning (s) | build total (s) |")
print("|---|---|---|---|")
for r in rows:
    if r[0] != "full-relay":
        print(f"| {r[0]} | {'relay (use_proxy: true)' if r[1] == 'true' else 'direct (use_proxy: false)'} | {r[2]} | {r[3]} |")
print(f"\nMedian provisioning: relay {statistics.median(relay):.1f} s, direct {statistics.median(direct):.1f} s "
      f"(relay/direct {statistics.median(relay)/statistics.median(direct):.2f}).")
PY

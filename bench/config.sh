#!/usr/bin/env bash
# Benchmark: configuration resolution, osimager vs the original OSImager 1.11.1, same data, same
# run. Times `list` and `dump` (Packer JSON of one target) with hyperfine and measures peak RSS
# with GNU time. Writes the table to docs/BENCHMARKS.md (section "Configuration") and prints it.
#   bench/config.sh                       (needs scripts/setup-deps.sh done; builds release)
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${OSIMAGER_TOOLS_VENV:-/opt/osimager-venv}
ORACLE_DATA=$("$VENV/bin/python" -c 'import osimager,os;print(os.path.join(os.path.dirname(osimager.__file__),"data"))')
cargo build --release --quiet
BIN=${CARGO_TARGET_DIR:-$PWD/target}/release/osimager

S=$(mktemp -d); trap 'rm -rf "$S"' EXIT
mkdir -p "$S/xdg/osimager/locations" "$S/home"
cat > "$S/xdg/osimager/locations/bench.json" <<'JSON'
{ "platforms": ["qemu", "vmware", "virtualbox"],
  "defs": { "domain": "bench.test", "cidr": "10.9.0.0/24",
            "dns": { "search": ["bench.test"], "servers": ["127.0.0.1"] },
            "ntp": { "servers": ["127.0.0.1"] }, "vms_path": "/vms" } }
JSON
cat > "$S/xdg/osimager/config.json" <<'JSON'
{ "credential_source": "config" }
JSON
printf 'images/linux username=root password=bench-pass\nimages/windows username=Administrator password=bench-pass\n' > "$S/xdg/osimager/secrets"
export HOME=$S/home XDG_CONFIG_HOME=$S/xdg XDG_DATA_HOME=$S/data XDG_CACHE_HOME=$S/cache
unset VAULT_ADDR VAULT_TOKEN

TARGET=${BENCH_TARGET:-qemu/bench/$("$BIN" --data-dir "$ORACLE_DATA" list | awk '/^ *rhel-9/{print $1; exit}')}
# A fixed IP keeps DNS out of the measurement (and off the network).
NAME=bench1; IP=10.9.0.10
echo "target: $TARGET"
"$BIN" --data-dir "$ORACLE_DATA" list > "$S/ours.list"
"$VENV/bin/mkosimage" --list > "$S/theirs.list" 2>/dev/null || true
cmp -s "$S/ours.list" "$S/theirs.list" && echo "list output identical" || echo "NOTE: list output differs (see tests/oracle_diff.rs)"

JSON_OUT=$S/hf.json
hyperfine --warmup 2 --runs ${RUNS:-15} --export-json "$JSON_OUT" --style basic \
  -n "osimager list" "$BIN --data-dir $ORACLE_DATA list" \
  -n "mkosimage --list" "$VENV/bin/mkosimage --list" \
  -n "osimager dump" "$BIN --data-dir $ORACLE_DATA dump $TARGET $NAME $IP" \
  -n "mkosimage -u" "$VENV/bin/mkosimage -u $TARGET $NAME $IP" >/dev/null

rss() { /usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1; }
RSS_LIST=$(rss "$BIN" --data-dir "$ORACLE_DATA" list)
RSS_DUMP=$(rss "$BIN" --data-dir "$ORACLE_DATA" dump "$TARGET" "$NAME" "$IP")
RSS_PL=$(rss "$VENV/bin/mkosimage" --list)
RSS_PD=$(rss "$VENV/bin/mkosimage" -u "$TARGET" "$NAME" "$IP")

TABLE=$(python3 - "$JSON_OUT" "$RSS_LIST" "$RSS_DUMP" "$RSS_PL" "$RSS_PD" <<'PY'
import json,sys
r={x["command"]:x for x in json.load(open(sys.argv[1]))["results"]}
rl,rd,pl,pd=(int(v) for v in sys.argv[2:6])
def row(ours,theirs,ro,rt):
    o=r[ours]["mean"];t=r[theirs]["mean"]
    return f"| {ours} vs {theirs} | {o*1000:.1f} ms | {t*1000:.1f} ms | {t/o:.0f}x faster | {ro/1024:.1f} MiB | {rt/1024:.1f} MiB |"
print("| command | osimager (mean) | OSImager 1.11.1 (mean) | ratio | osimager peak RSS | OSImager peak RSS |")
print("|---|---|---|---|---|---|")
print(row("osimager list","mkosimage --list",rl,pl))
print(row("osimager dump","mkosimage -u",rd,pd))
PY
)
echo "$TABLE"
python3 - "$TABLE" "$TARGET" <<'PY'
import sys,re,datetime,pathlib,platform,os
table,target=sys.argv[1],sys.argv[2]
p=pathlib.Path("docs/BENCHMARKS.md")
text=p.read_text() if p.exists() else "# Benchmarks\n"
sec=(f"## Configuration\n\nCommand: `bench/config.sh` (release build, hyperfine, GNU time). "
     f"Data: OSImager 1.11.1's bundled tree; dump target `{target}` with a fixed name and IP. "
     f"Measured {datetime.date.today()} on {os.cpu_count()} cores.\n\n{table}\n\n")
if "## Configuration" in text:
    text=re.sub(r"## Configuration\n.*?(?=\n## |\Z)",sec.rstrip()+"\n",text,flags=re.S)
else:
    text=text.rstrip()+"\n\n"+sec
p.write_text(text)
PY

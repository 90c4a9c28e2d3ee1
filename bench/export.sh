#!/usr/bin/env bash
# Benchmark: exporting the test OS's disk with `qemu-img convert`, today's command vs the
# options the native engine uses now (parallel conversion) and zstd compression, on one
# installed testos disk. Writes the "## Export" section of docs/BENCHMARKS.md and prints it.
#   bench/export.sh [DISK]    DISK: an installed testos qcow2 (default: the newest entry of the
#                             install cache, ~/.cache/osimager/install or $OSIMAGER_CACHE_DIR —
#                             make one with `osimager build … --cache use` or bench/build.sh)
# Env: RUNS (default 5). Needs qemu-img (QEMU ≥ 5.1 for zstd) and hyperfine. No guest runs.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-5}
DISK=${1:-}
if [[ -z $DISK ]]; then
  DIR=${OSIMAGER_CACHE_DIR:-$HOME/.cache/osimager/install}
  DISK=$(ls -t "$DIR"/entries/*/disk0.qcow2 2>/dev/null | head -1 || true)
fi
[[ -n $DISK && -f $DISK ]] || {
  echo "bench/export.sh: no disk given and none in the install cache; build one with --cache use" >&2
  exit 2
}
command -v hyperfine >/dev/null || { echo "bench/export.sh: hyperfine not found (apt-get install hyperfine)" >&2; exit 2; }
W=$(mktemp -d /tmp/osimager-bench-export.XXXXXX)
trap 'rm -rf "$W"' EXIT
# The cached-rebuild case too: an overlay on the disk, converted through the backing chain.
qemu-img create -q -f qcow2 -b "$(realpath "$DISK")" -F qcow2 "$W/overlay.qcow2"
INFO=$(qemu-img info --output=json "$DISK")
VSIZE=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["virtual-size"])' "$INFO")
ASIZE=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["actual-size"])' "$INFO")
declare -a NAMES CMDS
add() { NAMES+=("$1"); CMDS+=("$2"); }
add "uncompressed, before (convert -f qcow2 -O qcow2)" "qemu-img convert -f qcow2 -O qcow2 $DISK $W/out"
add "uncompressed, now (-m 16 -W)" "qemu-img convert -f qcow2 -O qcow2 -m 16 -W $DISK $W/out"
add "uncompressed, now, cached rebuild (overlay + backing)" "qemu-img convert -f qcow2 -O qcow2 -m 16 -W $W/overlay.qcow2 $W/out"
add "zlib, before (-c; Packer's disk_compression)" "qemu-img convert -f qcow2 -O qcow2 -c $DISK $W/out"
add "zlib, now (-c -m 16)" "qemu-img convert -f qcow2 -O qcow2 -c -m 16 $DISK $W/out"
add "zstd (-c -o compression_type=zstd)" "qemu-img convert -f qcow2 -O qcow2 -c -o compression_type=zstd $DISK $W/out"
add "zstd, now (-c -o compression_type=zstd -m 16)" "qemu-img convert -f qcow2 -O qcow2 -c -o compression_type=zstd -m 16 $DISK $W/out"
ARGS=()
for i in "${!NAMES[@]}"; do ARGS+=(-n "${NAMES[$i]}" "${CMDS[$i]}"); done
hyperfine --warmup 1 --runs "$RUNS" --prepare "rm -f $W/out" --export-json "$W/hf.json" --style basic "${ARGS[@]}" >/dev/null
SIZES=()
for c in "${CMDS[@]}"; do rm -f "$W/out"; eval "$c"; SIZES+=("$(stat -c %s "$W/out")"); done
TABLE=$(python3 - "$W/hf.json" "${SIZES[@]}" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
sizes = [int(x) for x in sys.argv[2:]]
# Each row against the command of the same kind the engine ran before: uncompressed rows
# against the first row, compressed rows against zlib before.
base = {"u": r[0]["median"], "c": r[3]["median"]}
print("| command | median (s) | min–max (s) | vs before (same kind) | output (MiB) |")
print("|---|---|---|---|---|")
for i, (x, size) in enumerate(zip(r, sizes)):
    b = base["u" if i < 3 else "c"]
    print(f"| {x['command']} | {x['median']:.2f} | {x['min']:.2f}–{x['max']:.2f} | "
          f"{x['median'] / b:.2f}× | {size / 2**20:.0f} |")
PY
)
echo "$TABLE"
python3 - "$TABLE" "$RUNS" "$VSIZE" "$ASIZE" "$(qemu-img --version | head -1)" <<'PY'
import datetime, os, pathlib, re, sys
table, runs, vsize, asize, ver = sys.argv[1:6]
p = pathlib.Path("docs/BENCHMARKS.md")
text = p.read_text() if p.exists() else "# Benchmarks\n"
sec = (f"## Export\n\nCommand: `bench/export.sh` ({ver}, hyperfine {runs} runs each, on "
       f"{os.cpu_count()} cores; measured {datetime.date.today()}). Disk: an installed testos qcow2 "
       f"from the install cache ({int(vsize) / 2**20:.0f} MiB virtual, {int(asize) / 2**20:.0f} MiB "
       "allocated). `before` is the command the native engine ran until now (Packer 1.6.6 runs "
       "the same, with `-c` for `disk_compression`); `now` is what it runs now: `-m 16` (16 "
       "coroutines) and, when not compressing, `-W` (out-of-order writes; QEMU refuses it with "
       "`-c`); with `disk_compression` it compresses with zstd where qemu-img has it (QEMU ≥ 5.1, "
       "which is also the oldest QEMU that reads such an image; "
       "`qemu_img_args.convert: [\"-o\", \"compression_type=zlib\"]` keeps zlib).\n\n"
       + table + "\n\n")
if re.search(r"^## Export\n", text, re.M):
    text = re.sub(r"^## Export\n.*?(?=^## |\Z)", sec, text, flags=re.S | re.M)
else:
    text = text.rstrip() + "\n\n" + sec
p.write_text(text.rstrip() + "\n")
PY

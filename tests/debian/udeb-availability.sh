#!/bin/bash
# Which of the installer components (udebs) the bundled debian spec's install needs does the
# Debian mirror of /etc/apt/sources.list serve, and, for those it does not, is their source?
# The evidence behind "the whole install cannot run here" (tests/debian/README.md).
#
# Usage: tests/debian/udeb-availability.sh [--cache DIR]      (after tests/debian/build-media.sh)
#
# The set checked is what debian-installer's first "Download installer components" step (anna,
# net-retriever) asks for: from Debian's signed udeb index of the media's release, every udeb of
# priority standard or higher for the installer kernel's ABI that the netboot initrd does not
# already hold, plus their dependencies. Each is asked for with one HTTP HEAD of its pool file;
# for each one not served, the files of its source package (from the signed Sources index).
# Prints one line per udeb and a summary; writes the same to DIR/current/udeb-availability.txt.
# Exit status 0 whatever the answer (it is a report); 1 if it cannot run.
# Needs: curl python3 xorriso cpio gzip xz-utils gpgv debian-archive-keyring.
set -euo pipefail
CACHE="${OSIMAGER_DEBIAN_CACHE:-$HOME/.cache/osimager-debian}"
if [ "${1:-}" = --cache ]; then CACHE="$2"; fi
CUR="$CACHE/current"
fail() { echo "udeb-availability: ERROR: $*" >&2; exit 1; }
[ -f "$CUR/build-info.txt" ] || fail "no media in $CUR: run tests/debian/build-media.sh first"
UPSTREAM="$(sed -n 's/^upstream: \([^ ]*\) .*/\1/p' "$CUR/build-info.txt")"
SUITE="$(sed -n 's/^upstream: [^ ]* \(.*\)/\1/p' "$CUR/build-info.txt")"
KABI="$(sed -n 's/^kernel: //p' "$CUR/build-info.txt")"
D="$CUR/mirror/debian/dists/$SUITE"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

# the netboot initrd's installed udebs
xorriso -osirrox on -indev "$CUR/debian-12-netboot-amd64.iso" -extract /install.amd/initrd.gz \
	"$WORK/initrd.gz" >/dev/null 2>&1 || fail "cannot read the initrd from the ISO"
(mkdir "$WORK/initrd" && cd "$WORK/initrd" && zcat ../initrd.gz | cpio -id --quiet var/lib/dpkg/status) ||
	fail "cannot unpack the initrd's dpkg status"
# the signed Sources index (not part of the mirror: only needed here)
curl -fsS -o "$WORK/Sources.xz" "$UPSTREAM/dists/$SUITE/main/source/Sources.xz" || fail "cannot fetch Sources.xz"
want="$(sed -n 's/^ \([0-9a-f]\{64\}\) *[0-9]* main\/source\/Sources.xz$/\1/p' "$D/Release")"
have="$(sha256sum "$WORK/Sources.xz" | cut -d' ' -f1)"
[ -n "$want" ] && [ "$want" = "$have" ] || fail "Sources.xz does not match the signed Release"

python3 - "$D/main/debian-installer/binary-amd64/Packages.xz" "$WORK/initrd/var/lib/dpkg/status" \
	"$WORK/Sources.xz" "$KABI" >"$WORK/plan" <<'EOF'
import lzma, sys
def stanzas(text):
    for block in text.split("\n\n"):
        f = {}
        for line in block.splitlines():
            if line[:1] not in (" ", "\t", "") and ":" in line:
                k, v = line.split(":", 1)
                f[k] = v.strip()
            elif line[:1] == " " and f.get("_last") == "Files":
                f.setdefault("_files", []).append(line.split()[-1])
            if line[:1] not in (" ", "\t", "") and ":" in line:
                f["_last"] = line.split(":", 1)[0]
        if "Package" in f:
            yield f
idx = {f["Package"]: f for f in stanzas(lzma.open(sys.argv[1], "rt").read())}
inst = set()
for f in stanzas(open(sys.argv[2]).read()):
    inst.add(f["Package"])
    inst.update(p.strip().split(" ")[0] for p in f.get("Provides", "").split(",") if p.strip())
srcs = {f["Package"]: f for f in stanzas(lzma.open(sys.argv[3], "rt").read())}
kabi = sys.argv[4]
prio = {"required": 4, "important": 3, "standard": 2}
def fits(f):
    kv = f.get("Kernel-Version")
    return not kv or kv == kabi
provides = {}
for n, f in idx.items():
    for p in f.get("Provides", "").split(","):
        if p.strip():
            provides.setdefault(p.strip().split(" ")[0], []).append(n)
want = {n for n, f in idx.items() if fits(f) and prio.get(f.get("Priority"), 0) >= 2 and n not in inst}
todo = list(want)
while todo:
    f = idx[todo.pop()]
    for dep in f.get("Depends", "").split(","):
        alts = [a.strip().split(" ")[0] for a in dep.split("|") if a.strip()]
        if not alts or any(a in inst for a in alts):
            continue
        for a in alts:
            c = [a] if a in idx else provides.get(a, [])
            c = [x for x in c if fits(idx[x])]
            if c:
                if c[0] not in want:
                    want.add(c[0]); todo.append(c[0])
                break
for n in sorted(want):
    f = idx[n]
    src = f.get("Source", n).split(" ")[0]
    s = srcs.get(src, {})
    files = " ".join(s.get("Directory", "?") + "/" + x for x in s.get("_files", []) if not x.endswith((".dsc", ".asc")))
    print(n, f["Version"], f["Filename"], src, files)
EOF

served=0 missing=0 nosrc=0
: >"$WORK/report"
while read -r name ver file src srcfiles; do
	code="$(curl -sI -o /dev/null -w '%{http_code}' "$UPSTREAM/$file")"
	if [ "$code" = 200 ]; then
		served=$((served + 1))
		echo "served      $name $ver" >>"$WORK/report"
		continue
	fi
	missing=$((missing + 1))
	s=""
	ok=1
	for sf in $srcfiles; do
		c="$(curl -sI -o /dev/null -w '%{http_code}' "$UPSTREAM/$sf")"
		s="$s ${sf##*/}:$c"
		[ "$c" = 200 ] || ok=0
	done
	[ "$ok" = 1 ] || nosrc=$((nosrc + 1))
	echo "NOT-SERVED  $name $ver ($code) source $src:${s:- none}" >>"$WORK/report"
done <"$WORK/plan"
{
	echo "# udebs of the installer's first component download, $(sed -n 's/^release: //p' "$CUR/build-info.txt"), kernel $KABI, from $UPSTREAM"
	sort "$WORK/report"
	echo "summary: $((served + missing)) udebs: $served served, $missing not served; of those, $nosrc without a complete source package"
} | tee "$CUR/udeb-availability.txt"

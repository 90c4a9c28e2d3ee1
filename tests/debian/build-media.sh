#!/bin/bash
# Build the Debian 12 installer media and the local mirror the bundled debian spec installs from,
# from Debian packages only. See tests/debian/README.md.
#
# Usage: tests/debian/build-media.sh [--cache DIR] [--force]
#
# Cache: DIR (default ${OSIMAGER_DEBIAN_CACHE:-$HOME/.cache/osimager-debian}). Outputs go to
# DIR/<key>/ (key = hash of this script and mirror.list); DIR/current points at the newest.
# A build happens in a temporary directory renamed into place only when complete.
#
# Outputs (DIR/current/):
#   debian-12-netboot-amd64.iso  BIOS ISO laid out like the netinst CD (isolinux menu, <esc>
#                                gives the boot: prompt, /install.amd/vmlinuz and initrd.gz) with
#                                the kernel and initrd of debian-installer-12-netboot-amd64
#   SHA256SUMS                   for iso_checksum "file:"
#   mirror/debian/               dists/bookworm with Debian's own signed InRelease/Release.gpg
#                                and its indexes (plus by-hash copies, as apt asks for them), and
#                                pool/ holding exactly the packages and udebs of mirror.list
#   build-info.txt               installer build, kernel ABI, mirror, package versions
#
# Needs: curl gpgv debian-archive-keyring xorriso isolinux syslinux-common python3 xz-utils.
# Network: only the Debian mirror of /etc/apt/sources.list (override: DEBIAN_MIRROR_URL).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${OSIMAGER_DEBIAN_CACHE:-$HOME/.cache/osimager-debian}"
FORCE=0
SUITE=bookworm
ARCH=amd64
NETBOOT=debian-installer-12-netboot-amd64
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
# index files served (each verified against the signed Release; apt and the installer fetch these)
INDEXES=(
	main/binary-amd64/Release main/binary-amd64/Packages.xz main/binary-amd64/Packages.gz
	main/debian-installer/binary-amd64/Release
	main/debian-installer/binary-amd64/Packages.xz main/debian-installer/binary-amd64/Packages.gz
	non-free-firmware/binary-amd64/Release
	non-free-firmware/binary-amd64/Packages.xz non-free-firmware/binary-amd64/Packages.gz
	main/i18n/Translation-en.xz non-free-firmware/i18n/Translation-en.xz
)

while [ $# -gt 0 ]; do
	case "$1" in
	--cache) CACHE="$2"; shift 2 ;;
	--cache=*) CACHE="${1#--cache=}"; shift ;;
	--force) FORCE=1; shift ;;
	-h | --help) sed -n '2,22p' "$0"; exit 0 ;;
	*) echo "build-media.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done

say() { echo "debian-media: $*"; }
fail() { echo "debian-media: ERROR: $*" >&2; exit 1; }
need() { # need COMMAND-OR-PATH DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 || [ -e "$1" ] ||
		fail "'$1' not found: install the Debian package '$2' (apt-get install -y --no-install-recommends $2)"
}
need curl curl
need gpgv gpgv
need "$KEYRING" debian-archive-keyring
need xorriso xorriso
need python3 python3
need file file
need xz xz-utils
need flock util-linux
need /usr/lib/ISOLINUX/isolinux.bin isolinux
need /usr/lib/syslinux/modules/bios/vesamenu.c32 syslinux-common

KEY="$( (for f in build-media.sh mirror.list; do echo "$f"; cat "$HERE/$f"; done) | sha256sum | cut -c1-16)"
OUT="$CACHE/$KEY"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9 || fail "cannot lock $CACHE/.lock"
if [ -f "$OUT/SHA256SUMS" ] && [ "$FORCE" = 0 ]; then
	ln -sfn "$KEY" "$CACHE/.current.$$" && mv -Tf "$CACHE/.current.$$" "$CACHE/current"
	say "cache hit: $OUT (key $KEY)"
	exit 0
fi
say "cache miss: building $OUT (key $KEY)"
WORK="$(mktemp -d "$CACHE/.build-$KEY.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

UPSTREAM="${DEBIAN_MIRROR_URL:-}"
if [ -z "$UPSTREAM" ]; then
	UPSTREAM="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n -e 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/\?$/\1/p' \
			-e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(http[^[:space:]]*\/debian\)\/\?[[:space:]]\+'"$SUITE"'[[:space:]].*/\2/p' |
		head -n1 || true)"
fi
UPSTREAM="${UPSTREAM:-http://deb.debian.org/debian}"
say "upstream: $UPSTREAM (suite $SUITE)"
fetch() { # fetch REL-PATH DEST
	mkdir -p "$(dirname "$2")"
	curl -fsS --retry 3 -o "$2" "$UPSTREAM/$1" || fail "cannot fetch $UPSTREAM/$1"
}

# ------------------------------------------------------------------ signed indexes
M="$WORK/out/mirror/debian"
D="$M/dists/$SUITE"
for f in InRelease Release Release.gpg; do fetch "dists/$SUITE/$f" "$D/$f"; done
gpgv --keyring "$KEYRING" "$D/InRelease" >/dev/null 2>&1 || fail "InRelease does not verify against $KEYRING"
gpgv --keyring "$KEYRING" "$D/Release.gpg" "$D/Release" >/dev/null 2>&1 || fail "Release.gpg does not verify"
say "Release verified: $(sed -n 's/^Version: //p' "$D/Release") ($(sed -n 's/^Date: //p' "$D/Release"))"
for f in "${INDEXES[@]}"; do
	fetch "dists/$SUITE/$f" "$D/$f"
done
# check every index against the signed Release and add the by-hash copies apt fetches
python3 - "$D" "${INDEXES[@]}" <<'EOF' || fail "an index does not match the signed Release"
import hashlib, os, sys
d, files = sys.argv[1], sys.argv[2:]
sums, section = {}, None
for line in open(os.path.join(d, "Release")):
    if not line.startswith(" "):
        section = line.split(":")[0]
        continue
    if section == "SHA256":
        h, size, name = line.split()
        sums[name] = h
for name in files:
    p = os.path.join(d, name)
    h = hashlib.sha256(open(p, "rb").read()).hexdigest()
    if sums.get(name) != h:
        sys.exit(f"{name}: sha256 {h} is not the Release's {sums.get(name)}")
    bh = os.path.join(os.path.dirname(p), "by-hash", "SHA256")
    os.makedirs(bh, exist_ok=True)
    if not os.path.exists(os.path.join(bh, h)):
        os.link(p, os.path.join(bh, h))
EOF

# ------------------------------------------------------------------ resolve and fetch packages
# resolve KIND NAME... -> "filename sha256" lines, from the verified indexes
resolve() {
	python3 - "$D" "$@" <<'EOF'
import lzma, os, sys
d, kind, names = sys.argv[1], sys.argv[2], sys.argv[3:]
idx = {"deb": ["main/binary-amd64/Packages.xz", "non-free-firmware/binary-amd64/Packages.xz"],
       "udeb": ["main/debian-installer/binary-amd64/Packages.xz"]}[kind]
found = {}
for i in idx:
    for stanza in lzma.open(os.path.join(d, i), "rt").read().split("\n\n"):
        f = {}
        for line in stanza.splitlines():
            if line[:1] not in (" ", "") and ":" in line:
                k, v = line.split(":", 1)
                f[k] = v.strip()
        if f.get("Package") in names:
            found[f["Package"]] = (f["Filename"], f["SHA256"], f["Version"])
missing = [n for n in names if n not in found]
if missing:
    sys.exit(f"not in the {kind} indexes of this release: {' '.join(missing)}")
for n in names:
    print(n, *found[n])
EOF
}
getpool() { # getpool < "name filename sha256 version" lines
	local n fn sum ver
	while read -r n fn sum ver; do
		fetch "$fn" "$M/$fn"
		echo "$sum  $M/$fn" | sha256sum -c --quiet - || fail "$fn: checksum differs from the signed index"
		echo "  $n $ver" >>"$WORK/versions"
	done
}

: >"$WORK/versions"
resolve deb "$NETBOOT" >"$WORK/netboot.res" || fail "cannot find $NETBOOT in the index"
read -r _ NBFILE NBSUM NBVER <"$WORK/netboot.res"
say "installer: $NETBOOT $NBVER"
curl -fsS --retry 3 -o "$WORK/netboot.deb" "$UPSTREAM/$NBFILE" || fail "cannot fetch $NBFILE"
echo "$NBSUM  $WORK/netboot.deb" | sha256sum -c --quiet - || fail "$NBFILE: checksum differs"
dpkg-deb -x "$WORK/netboot.deb" "$WORK/nb"
NB="$WORK/nb/usr/lib/debian-installer/images/12/amd64/text/debian-installer/amd64"
KABI="$(file -b "$NB/linux" | sed -n 's/.*version \([^ ]*\) .*/\1/p')"
[ -n "$KABI" ] || fail "cannot read the kernel version of $NB/linux"
say "installer kernel: $KABI"

# the bundled preseed's package selection must exist in this release (pkgsel/include, and the
# task-<name> package of each tasksel task but "standard", which is a priority, not a package)
PRESEED="$HERE/../../files/debian/preseed.cfg"
mapfile -t wanted < <(
	sed -n 's/^d-i pkgsel\/include string //p' "$PRESEED" | tr ' ' '\n'
	sed -n 's/^tasksel tasksel\/first multiselect //p' "$PRESEED" | tr -d ' ' | tr ',' '\n' |
		grep -vx standard | sed 's/^/task-/'
)
resolve deb "${wanted[@]}" >/dev/null || fail "files/debian/preseed.cfg asks for packages this release lacks (above)"
say "preseed package selection found in the index: ${wanted[*]}"

# mirror.list: "deb NAME" / "udeb NAME" lines; @KABI@ stands for the installer's kernel ABI
for kind in udeb deb; do
	mapfile -t names < <(sed -n "s/^$kind[[:space:]]\+\([^[:space:]#]\+\).*/\1/p" "$HERE/mirror.list" | sed "s/@KABI@/$KABI/g")
	[ "${#names[@]}" -gt 0 ] || continue
	say "fetching ${#names[@]} ${kind}s"
	resolve "$kind" "${names[@]}" | getpool
done
ln -sfn "$SUITE" "$M/dists/oldstable"

# ------------------------------------------------------------------ ISO (netinst layout)
say "building the ISO"
ISO="$WORK/iso"
mkdir -p "$ISO/isolinux" "$ISO/install.amd"
cp "$NB/linux" "$ISO/install.amd/vmlinuz"
cp "$NB/initrd.gz" "$ISO/install.amd/initrd.gz"
for f in "$NB"/boot-screens/*.cfg "$NB"/boot-screens/*.txt "$NB"/boot-screens/splash.png; do
	cp "$f" "$ISO/isolinux/"
done
sed -i -e 's|debian-installer/amd64/boot-screens/|/isolinux/|g' \
	-e 's|debian-installer/amd64/linux|/install.amd/vmlinuz|g' \
	-e 's|debian-installer/amd64/initrd.gz|/install.amd/initrd.gz|g' "$ISO"/isolinux/*.cfg "$ISO"/isolinux/*.txt
mv "$ISO/isolinux/syslinux.cfg" "$ISO/isolinux/isolinux.cfg"
# boot loader and its modules from the host's syslinux (one version: isolinux.bin must match them)
cp /usr/lib/ISOLINUX/isolinux.bin "$ISO/isolinux/"
for c in ldlinux vesamenu libcom32 libutil; do cp "/usr/lib/syslinux/modules/bios/$c.c32" "$ISO/isolinux/"; done
cp "$WORK/nb/usr/lib/debian-installer/images/12/amd64/text/version.info" "$ISO/.disk-version.info"
xorriso -as mkisofs -quiet -o "$WORK/out/debian-12-netboot-amd64.iso" -V "Debian 12 netboot" -J -R \
	-b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot -boot-load-size 4 -boot-info-table \
	"$ISO" || fail "xorriso failed"
(cd "$WORK/out" && sha256sum debian-12-netboot-amd64.iso >SHA256SUMS)
{
	echo "key: $KEY"
	echo "upstream: $UPSTREAM $SUITE"
	echo "release: $(sed -n 's/^Version: //p' "$D/Release") $(sed -n 's/^Date: //p' "$D/Release")"
	echo "installer: $NETBOOT $NBVER"
	echo "kernel: $KABI"
	echo "pool_mib: $(du -sm "$M/pool" 2>/dev/null | cut -f1)"
	echo "packages:"
	sort "$WORK/versions"
} >"$WORK/out/build-info.txt"

rm -rf "$OUT"
mv "$WORK/out" "$OUT"
ln -sfn "$KEY" "$CACHE/.current.$$" && mv -Tf "$CACHE/.current.$$" "$CACHE/current"
for old in "$CACHE"/*/; do
	old="${old%/}"
	[ -L "$old" ] || [ "$(basename "$old")" = "$KEY" ] || [ ! -f "$old/SHA256SUMS" ] || { say "pruning $old"; rm -rf "$old"; }
done
say "done: $OUT ($(du -sh "$OUT" | cut -f1))"

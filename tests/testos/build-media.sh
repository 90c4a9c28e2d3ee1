#!/bin/bash
# Build the hermetic test OS media (installer ISO + root filesystem tarball).
#
# Usage: tests/testos/build-media.sh [--cache DIR] [--force]
#
# Cache: DIR (default ${OSIMAGER_TESTOS_CACHE:-$HOME/.cache/osimager-testos}).
# Outputs go to DIR/<key>/ where <key> hashes this script, initrd/, rootfs/,
# isolinux.cfg and the package/module lists; DIR/current points at the newest
# build. A build happens in a temporary directory that is renamed into place
# only when complete, so an interrupted run never leaves a half cache entry.
#
# Outputs (DIR/current/):
#   testos.iso       installer ISO (ISOLINUX waits at its prompt; serial console)
#   rootfs.tar.lzo   the root filesystem the installer unpacks (also on the ISO;
#                    lzop: decompresses ~4x faster than gzip under QEMU TCG)
#   vmlinuz, initrd.gz  the kernel and initrd (installer and installed system)
#   SHA256SUMS       sha256 of the files above (iso_checksum "file:" form)
#   build-info.txt   kernel version, package versions, sizes
#
# Runs on Debian 12 (bookworm); a cache miss needs root (as root, or through sudo: the cache is
# handed back to the calling user). Debian packages it needs (CI installs them):
#   debootstrap xorriso isolinux syslinux-common extlinux busybox-static
#   e2fsprogs fdisk cpio gzip apt dpkg coreutils util-linux
# Network: only the Debian mirror of /etc/apt/sources.list (override: TESTOS_MIRROR).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${OSIMAGER_TESTOS_CACHE:-$HOME/.cache/osimager-testos}"
FORCE=0
SUITE=bookworm

while [ $# -gt 0 ]; do
	case "$1" in
	--cache) CACHE="$2"; shift 2 ;;
	--cache=*) CACHE="${1#--cache=}"; shift ;;
	--force) FORCE=1; shift ;;
	-h | --help) sed -n '2,23p' "$0"; exit 0 ;;
	*) echo "build-media.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
	esac
done

say() { echo "build-media: $*"; }
fail() { echo "build-media: ERROR: $*" >&2; exit 1; }

# ------------------------------------------------------------------ tools
need_cmd() { # need_cmd COMMAND DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 ||
		fail "'$1' not found: install the Debian package '$2' (apt-get install -y --no-install-recommends $2)"
}
need_file() { # need_file PATH DEBIAN-PACKAGE
	[ -e "$1" ] ||
		fail "'$1' not found: install the Debian package '$2' (apt-get install -y --no-install-recommends $2)"
}
need_cmd debootstrap debootstrap
need_cmd xorriso xorriso
need_cmd cpio cpio
need_cmd gzip gzip
need_cmd apt-get apt
need_cmd dpkg-deb dpkg
need_cmd sha256sum coreutils
need_cmd extlinux extlinux
need_cmd sfdisk fdisk
need_cmd mkfs.ext4 e2fsprogs
need_cmd ldd libc-bin
need_cmd flock util-linux
need_file /usr/lib/ISOLINUX/isolinux.bin isolinux
need_file /usr/lib/syslinux/modules/bios/ldlinux.c32 syslinux-common
need_file /usr/lib/syslinux/mbr/mbr.bin syslinux-common
need_file /bin/busybox busybox-static
/bin/busybox --list | grep -qx udhcpc ||
	fail "/bin/busybox lacks udhcpc: install the Debian package 'busybox-static'"
# ------------------------------------------------------------------ cache key
INPUTS=(
	"$HERE/build-media.sh" "$HERE/packages.list" "$HERE/modules.list" "$HERE/isolinux.cfg"
	$(cd "$HERE" && find initrd rootfs -type f | LC_ALL=C sort | sed "s|^|$HERE/|")
)
KEY="$( (for f in "${INPUTS[@]}"; do echo "${f#$HERE/}"; cat "$f"; done) | sha256sum | cut -c1-16)"
OUT="$CACHE/$KEY"
mkdir -p "$CACHE"
# one build at a time per cache (a concurrent run waits, then hits the cache)
exec 9>"$CACHE/.lock"
flock 9 || fail "cannot lock $CACHE/.lock"
if [ -f "$OUT/SHA256SUMS" ] && [ "$FORCE" = 0 ]; then
	ln -sfn "$KEY" "$CACHE/.current.$$" && mv -Tf "$CACHE/.current.$$" "$CACHE/current"
	say "cache hit: $OUT (key $KEY)"
	say "media: $CACHE/current/testos.iso"
	exit 0
fi
# Building needs root (debootstrap, chroot, device nodes): without it, run the build through
# sudo and give the cache back to the caller afterwards.
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || fail "building the media needs root (debootstrap, chroot): run as root or install sudo"
	flock -u 9
	say "cache miss: building as root through sudo"
	args=(--cache "$CACHE")
	[ "$FORCE" = 1 ] && args+=(--force)
	sudo env ${TESTOS_MIRROR:+TESTOS_MIRROR="$TESTOS_MIRROR"} "$0" "${args[@]}"
	sudo chown -R "$(id -u):$(id -g)" "$CACHE"
	exit 0
fi
say "cache miss: building $OUT (key $KEY)"
WORK="$(mktemp -d "$CACHE/.build-$KEY.XXXXXX")"
cleanup() {
	# never leave a half-built tree; unmount anything left in the chroot first
	for m in proc dev sys; do umount "$WORK/rootfs/$m" 2>/dev/null || true; done
	rm -rf "$WORK"
}
trap cleanup EXIT
STAGE="$WORK/out"
mkdir -p "$STAGE"

MIRROR="${TESTOS_MIRROR:-}"
if [ -z "$MIRROR" ]; then
	MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -n -e 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/\?$/\1/p' \
			-e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(http[^[:space:]]*\/debian\)\/\?[[:space:]]\+'"$SUITE"'[[:space:]].*/\2/p' |
		head -n1 || true)"
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
say "mirror: $MIRROR (suite $SUITE)"

# ------------------------------------------------------------------ kernel
say "downloading the Debian kernel package"
mkdir -p "$WORK/kernel"
(cd "$WORK/kernel" && apt-get download -q linux-image-amd64 >/dev/null 2>&1) ||
	fail "apt-get download linux-image-amd64 failed (run 'apt-get update' first)"
KPKG="$(dpkg-deb -f "$WORK"/kernel/linux-image-amd64_*.deb Depends | sed -n 's/^\(linux-image-[^ ,]*\).*/\1/p')"
[ -n "$KPKG" ] || fail "cannot find the kernel package that linux-image-amd64 depends on"
(cd "$WORK/kernel" && apt-get download -q "$KPKG" >/dev/null 2>&1) || fail "apt-get download $KPKG failed"
dpkg-deb -x "$WORK"/kernel/"$KPKG"_*.deb "$WORK/kernel/x"
KVER="${KPKG#linux-image-}"
KMOD="$WORK/kernel/x/lib/modules/$KVER"
[ -d "$KMOD" ] || fail "kernel modules for $KVER not found in $KPKG"
cp "$WORK/kernel/x/boot/vmlinuz-$KVER" "$STAGE/vmlinuz"
say "kernel: $KPKG"

# ------------------------------------------------------------------ initrd
say "building the initrd"
IRD="$WORK/initrd"
mkdir -p "$IRD"/{bin,sbin,usr/bin,usr/sbin,usr/local/sbin,etc/testos,proc,sys,dev,tmp,run,lib/modules/"$KVER"}
cp /bin/busybox "$IRD/bin/busybox"
for applet in $(/bin/busybox --list-full); do
	[ -e "$IRD/$applet" ] || ln -s /bin/busybox "$IRD/$applet"
done
install -m 0755 "$HERE/initrd/init" "$IRD/init"
install -m 0755 "$HERE/initrd/udhcpc.script" "$IRD/etc/testos/udhcpc.script"
grep -v '^[[:space:]]*\(#\|$\)' "$HERE/modules.list" >"$IRD/etc/testos/modules.list"
echo "$KVER" >"$IRD/etc/testos/kernel-version"

copy_with_libs() { # copy_with_libs BINARY DESTDIR-IN-INITRD
	local bin="$1" lib
	install -m 0755 "$(readlink -f "$bin")" "$IRD/$2/$(basename "$bin")"
	for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
		[ -e "$IRD$lib" ] && continue
		mkdir -p "$IRD$(dirname "$lib")"
		cp -L "$lib" "$IRD$lib"
	done
}
copy_with_libs "$(command -v sfdisk)" usr/local/sbin
copy_with_libs "$(command -v mkfs.ext4)" usr/local/sbin
copy_with_libs "$(command -v extlinux)" usr/local/sbin
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$IRD/etc/"
mkdir -p "$IRD/usr/lib/syslinux/mbr"
cp /usr/lib/syslinux/mbr/mbr.bin "$IRD/usr/lib/syslinux/mbr/"

# kernel modules: the autoload list plus the CD-ROM stack, with dependencies
modpath() { find "$KMOD/kernel" -name "$1.ko" -o -name "$(echo "$1" | tr _ -).ko" | head -n1; }
declare -A SEEN=()
add_module() {
	local name="$1" f dep
	[ -n "${SEEN[$name]:-}" ] && return 0
	SEEN[$name]=1
	f="$(modpath "$name")"
	if [ -z "$f" ]; then
		grep -q "/$name.ko\$" "$KMOD/modules.builtin" && return 0
		fail "kernel module '$name' not found in $KPKG"
	fi
	mkdir -p "$IRD/lib/modules/$KVER/$(dirname "${f#$KMOD/}")"
	cp "$f" "$IRD/lib/modules/$KVER/${f#$KMOD/}"
	for dep in $(tr '\0' '\n' <"$f" | sed -n 's/^depends=//p' | tr ',' ' '); do
		add_module "$dep"
	done
}
for m in $(cat "$IRD/etc/testos/modules.list") ata_piix ahci sr_mod isofs crc32c_intel; do
	add_module "$m"
done
cp "$KMOD/modules.builtin" "$KMOD/modules.order" "$IRD/lib/modules/$KVER/"
/bin/busybox depmod -b "$IRD" "$KVER"
(cd "$IRD" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) | gzip -9 >"$STAGE/initrd.gz"
say "initrd: $(du -h "$STAGE/initrd.gz" | cut -f1) (${#SEEN[@]} modules)"

# ------------------------------------------------------------------ rootfs
PKGS="$(grep -v '^[[:space:]]*\(#\|$\)' "$HERE/packages.list" | tr '\n' ',' | sed 's/,$//')"
say "debootstrap --variant=minbase $SUITE (+ $PKGS); this takes a few minutes"
R="$WORK/rootfs"
debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$R" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
	{ tail -n 30 "$WORK/debootstrap.log" >&2; fail "debootstrap failed (log above)"; }

say "configuring and stripping the root filesystem"
cat >"$R/etc/dpkg/dpkg.cfg.d/01-testos-nodoc" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
EOF
rm -rf "$R"/usr/share/man/* "$R"/usr/share/info/* "$R"/usr/share/locale/* \
	"$R"/usr/share/lintian "$R"/var/cache/apt/*.bin "$R"/var/cache/apt/archives/*.deb \
	"$R"/var/lib/apt/lists/* "$R"/var/log/*.log "$R"/var/cache/debconf/*-old
find "$R/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
find "$R/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
rm -f "$R"/etc/ssh/ssh_host_* "$R/etc/hostname" "$R/etc/resolv.conf"
echo testos >"$R/etc/hostname"
: >"$R/etc/resolv.conf"
: >"$R/etc/fstab"

cat >"$R/etc/network/interfaces" <<'EOF'
auto lo
iface lo inet loopback

auto eth0
iface eth0 inet dhcp
EOF
# overlay: fast rc.sysinit/rc.shutdown and an inittab using them (getty on ttyS0 + tty1)
cp -R --no-preserve=ownership "$HERE/rootfs/." "$R/"
mkdir -p "$R/etc/ssh/sshd_config.d"
cat >"$R/etc/ssh/sshd_config.d/testos.conf" <<'EOF'
PasswordAuthentication yes
KbdInteractiveAuthentication yes
UseDNS no
HostKey /etc/ssh/ssh_host_ed25519_key
HostKey /etc/ssh/ssh_host_ecdsa_key
EOF
cp "$STAGE/vmlinuz" "$R/boot/vmlinuz"
cp "$STAGE/initrd.gz" "$R/boot/initrd.gz"
# glibc iconv modules: keep the configuration and the Unicode/Latin-1 converters only
find "$R/usr/lib/x86_64-linux-gnu/gconv" -maxdepth 1 -type f -name '*.so' \
	! -name 'UTF-*' ! -name 'UNICODE.so' ! -name 'ISO8859-1.so' -delete
# (no kernel modules in the rootfs: the initrd loads what the system needs and
# minbase has no kmod/modprobe)

say "packing rootfs.tar.lzo ($(du -sh "$R" | cut -f1) unpacked)"
tar -C "$R" --numeric-owner -cf - . | /bin/busybox lzop -c >"$STAGE/rootfs.tar.lzo"
ROOTFS_MIB="$(du -sm "$R" | cut -f1)"
{
	echo "key: $KEY"
	echo "kernel: $KPKG"
	echo "mirror: $MIRROR $SUITE"
	echo "rootfs_unpacked_mib: $ROOTFS_MIB"
	echo "packages:"
	chroot "$R" dpkg-query -W -f '  ${Package} ${Version}\n'
} >"$STAGE/build-info.txt"

# ------------------------------------------------------------------ ISO
say "building testos.iso"
ISO="$WORK/iso"
mkdir -p "$ISO/isolinux" "$ISO/boot"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$ISO/isolinux/"
cp "$HERE/isolinux.cfg" "$ISO/isolinux/isolinux.cfg"
cp "$STAGE/vmlinuz" "$STAGE/initrd.gz" "$ISO/boot/"
cp "$STAGE/rootfs.tar.lzo" "$ISO/rootfs.tar.lzo"
xorriso -as mkisofs -quiet -o "$STAGE/testos.iso" -V TESTOS -J -R \
	-b isolinux/isolinux.bin -c isolinux/boot.cat \
	-no-emul-boot -boot-load-size 4 -boot-info-table "$ISO" ||
	fail "xorriso failed"

(cd "$STAGE" && sha256sum testos.iso rootfs.tar.lzo vmlinuz initrd.gz >SHA256SUMS)
ls -l "$STAGE" | sed 's/^/build-media:   /'

# ------------------------------------------------------------------ publish
umount "$R/proc" "$R/dev" "$R/sys" 2>/dev/null || true
rm -rf "$OUT"
mv "$STAGE" "$OUT"
ln -sfn "$KEY" "$CACHE/.current.$$" && mv -Tf "$CACHE/.current.$$" "$CACHE/current"
# keep only the newest build: older keys are ~170 MiB each
for old in "$CACHE"/*/; do
	old="${old%/}"
	[ -L "$old" ] || [ "$(basename "$old")" = "$KEY" ] || [ ! -f "$old/SHA256SUMS" ] || { say "pruning old build $old"; rm -rf "$old"; }
done
say "done: $OUT"
say "media: $CACHE/current/testos.iso"

#!/usr/bin/env bash
# Builds the root filesystem of a systemd-based Debian guest for the service test
# (tests/serve_systemd.rs): debootstrap bookworm minbase + systemd, systemd-networkd (DHCP),
# OpenSSH. The guest boots the test OS's kernel and initrd (tests/testos), whose boot mode
# mounts root=LABEL=testos-root and switch_roots to /sbin/init — systemd here.
#
#   tests/systemd/build-image.sh [--cache DIR]
#
# Output: DIR/current/rootfs.tar (DIR: $OSIMAGER_SYSTEMD_CACHE, default
# ~/.cache/osimager-systemd). Cached by the sha256 of this script; runs serialised by a lock;
# built in a temp dir and renamed into place when complete. Root, Debian 12, debootstrap.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${OSIMAGER_SYSTEMD_CACHE:-$HOME/.cache/osimager-systemd}"
SUITE=bookworm
while [ $# -gt 0 ]; do
  case "$1" in
    --cache) CACHE="$2"; shift 2 ;;
    *) echo "build-image.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
say() { echo "systemd-image: $*"; }
fail() { echo "systemd-image: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root (debootstrap)"
command -v debootstrap >/dev/null || fail "debootstrap is missing (apt-get install debootstrap)"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9
KEY="$(sha256sum "$HERE/build-image.sh" | cut -c1-16)"
OUT="$CACHE/$KEY"
if [ -f "$OUT/rootfs.tar" ]; then
  ln -sfn "$KEY" "$CACHE/.current.$$" && mv -Tf "$CACHE/.current.$$" "$CACHE/current"
  say "cache hit: $OUT/rootfs.tar"
  exit 0
fi
WORK="$(mktemp -d "$CACHE/.build-$KEY.XXXXXX")"
cleanup() {
  for m in proc dev sys; do umount "$WORK/rootfs/$m" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT
MIRROR="${TESTOS_MIRROR:-}"
if [ -z "$MIRROR" ]; then
  MIRROR="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
    sed -n -e 's/^URIs:[[:space:]]*\(http[^[:space:]]*\/debian\)\/\?$/\1/p' \
      -e 's/^deb[[:space:]]\+\(\[[^]]*\][[:space:]]\+\)\?\(http[^[:space:]]*\/debian\)\/\?[[:space:]]\+'"$SUITE"'[[:space:]].*/\2/p' |
    head -n1 || true)"
fi
MIRROR="${MIRROR:-http://deb.debian.org/debian}"
say "debootstrap $SUITE from $MIRROR"
R="$WORK/rootfs"
debootstrap --variant=minbase \
  --include=systemd,systemd-sysv,udev,dbus,openssh-server,iproute2,procps,kmod \
  "$SUITE" "$R" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 || { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
# Network: DHCP on the first NIC (QEMU user networking), no predictable names.
mkdir -p "$R/etc/systemd/network"
cat >"$R/etc/systemd/network/20-wired.network" <<NET
[Match]
Name=eth0
[Network]
DHCP=yes
NET
ln -sf /lib/systemd/system/systemd-networkd.service "$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
# The test OS initrd checks /sbin/init before switch_root, from outside the new root: an
# absolute link (/lib/systemd/systemd) would point into the initrd. Make it relative.
ln -sfn ../lib/systemd/systemd "$R/usr/sbin/init"
[ -x "$R/usr/lib/systemd/systemd" ] || fail "no systemd in the root file system"
echo "osimager-systemd" >"$R/etc/hostname"
printf 'LABEL=testos-root\t/\text4\tdefaults,noatime\t0\t1\n' >"$R/etc/fstab"
# Nothing waits for a network that the guest has at once anyway; no getty on tty1 (headless).
ln -sf /dev/null "$R/etc/systemd/system/systemd-networkd-wait-online.service"
ln -sf /dev/null "$R/etc/systemd/system/getty@tty1.service"
: >"$R/etc/machine-id"
rm -rf "$R/var/cache/apt/archives"/*.deb "$R/var/lib/apt/lists"/* "$R/usr/share/doc" "$R/usr/share/man" "$R/usr/share/locale"
mkdir -p "$R/root/.ssh" && chmod 700 "$R/root/.ssh"
tar -C "$R" -cf "$WORK/rootfs.tar" .
mkdir -p "$OUT"
mv "$WORK/rootfs.tar" "$OUT/rootfs.tar"
ln -sfn "$KEY" "$CACHE/.current.$$" && mv -Tf "$CACHE/.current.$$" "$CACHE/current"
# Older keys are of older versions of this script.
for d in "$CACHE"/*; do
  [ -L "$d" ] || [ ! -d "$d" ] || [ "$(basename "$d")" = "$KEY" ] || rm -rf "$d"
done
say "built $OUT/rootfs.tar ($(du -h "$OUT/rootfs.tar" | cut -f1))"

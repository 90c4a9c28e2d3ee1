#!/usr/bin/env bash
# Builds the web UI into web/dist, which cargo embeds into osimager (server/src/ui.rs); a
# binary built without it serves a page saying the UI was not built. Needs Node.js >= 20.19
# and npm: the system's, else the one scripts/setup-deps.sh put into the tools venv.
#   scripts/build-web.sh        npm ci (when package-lock.json changed) + typecheck + vite build
set -euo pipefail
cd "$(dirname "$0")/../web"
VENV=${OSIMAGER_TOOLS_VENV:-/opt/osimager-venv}
node_ok() { "$1" -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' 2>/dev/null; }
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 && node_ok node; then
  NPM=npm
elif [ -x "$VENV/bin/node" ] && node_ok "$VENV/bin/node"; then
  export PATH="$VENV/bin:$PATH"
  NPM="$VENV/bin/npm"
else
  echo "build-web: no Node.js >= 20.19 with npm (run scripts/setup-deps.sh)" >&2
  exit 1
fi
# npm ci only when the lock file is newer than the installed tree.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  "$NPM" ci --no-audit --no-fund
fi
"$NPM" run build

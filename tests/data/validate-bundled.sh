#!/bin/sh
# Validate the bundled data tree (platforms/ specs/ files/ tasks/ at the repository root) with the
# original OSImager, osimager 1.11.1, as oracle.
#
#   tests/data/validate-bundled.sh [--only REGEX] [--no-packer]
#
# Environment: OSIMAGER_VENV (default $OSIMAGER_TOOLS_VENV, else /opt/osimager-venv: a venv with osimager==1.11.1),
# PACKER (default packer; Packer 1.6.6 is what the CI machines have), KEEP=1 keeps the scratch dir.
#
# The oracle only reads its bundled data from <package>/data, so this script copies the oracle's
# Python modules into a scratch package whose data/ is a symlink to this repository. User-level
# configuration comes from a scratch XDG_CONFIG_HOME holding a location that every platform
# accepts, config.json with credential_source=config, and a secrets file with dummy values, so
# neither Vault nor the network is needed (IPs are always passed, so no DNS lookup happens).
#
# Steps: 1. `mkosimage --list` lists every target (and `--list-platforms` every platform);
#        2. for every target x platform the spec allows, with DHCP and with a static IP:
#           the template resolves and the answer files generate cleanly (validate_bundled.py);
#        3. `packer validate` on the qemu templates of a few targets (skipped with --no-packer or
#           when packer is missing). Exit status is non-zero if any step fails.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=${OSIMAGER_VENV:-${OSIMAGER_TOOLS_VENV:-/opt/osimager-venv}}
packer=${PACKER:-packer}
only='.*'
use_packer=1
while [ $# -gt 0 ]; do
    case "$1" in
        --only) only=$2; shift 2 ;;
        --no-packer) use_packer=0; shift ;;
        *) echo "usage: $0 [--only REGEX] [--no-packer]" >&2; exit 2 ;;
    esac
done

pkg=$(ls -d "$venv"/lib/python3*/site-packages/osimager 2>/dev/null | head -n1)
if [ -z "$pkg" ] || [ ! -f "$pkg/core.py" ]; then
    echo "error: osimager 1.11.1 not found under $venv (set OSIMAGER_VENV)" >&2
    exit 2
fi

scratch=$(mktemp -d "${TMPDIR:-/tmp}/osimager-validate.XXXXXX")
cleanup() { if [ "${KEEP:-0}" = 1 ]; then echo "kept $scratch"; else rm -rf "$scratch"; fi; }
trap cleanup EXIT INT TERM

mkdir -p "$scratch/pkg/osimager" "$scratch/cfg/osimager/locations" "$scratch/home" "$scratch/out"
cp "$pkg"/*.py "$scratch/pkg/osimager/"
ln -s "$root" "$scratch/pkg/osimager/data"

cat > "$scratch/cfg/osimager/config.json" <<EOF
{"credential_source": "config", "iso_path": "$scratch/iso", "packer_cache_dir": "$scratch/cache"}
EOF
# A location with every def the bundled platforms and specs read (see docs/DATA.md).
# A location with every def the bundled platforms and specs read, and a dummy value for every
# secret (tests/data/bundled/, shared with tests/bundled_data.rs).
sed "s|@SCRATCH@|$scratch|" "$here/bundled/lab.json" > "$scratch/cfg/osimager/locations/lab.json"
# The same location with UEFI firmware, to exercise every firmware_specific path.
sed 's/"defs": {/"defs": {\n    "firmware": "efi",/' "$scratch/cfg/osimager/locations/lab.json" \
    > "$scratch/cfg/osimager/locations/lab-efi.json"
cp "$here/bundled/secrets" "$scratch/cfg/osimager/secrets"

export HOME="$scratch/home" XDG_CONFIG_HOME="$scratch/cfg" XDG_DATA_HOME="$scratch/data"
export XDG_CACHE_HOME="$scratch/cache" PYTHONPATH="$scratch/pkg" PATH="$venv/bin:$PATH"
py="$venv/bin/python3"
mk() { (cd "$scratch" && "$py" -c 'import sys; from osimager.cli import main_mkosimage; sys.exit(main_mkosimage())' "$@"); }

status=0

echo "== mkosimage --list-platforms"
mk --list-platforms > "$scratch/platforms.txt"
for p in qemu virtualbox vmware vsphere proxmox hyperv xenserver aws azure gcp none; do
    grep -q "^  $p " "$scratch/platforms.txt" || { echo "FAIL: platform $p not listed"; status=1; }
done
echo "== mkosimage --list"
mk --list > "$scratch/list.txt"
targets=$(grep -c '^  ' "$scratch/list.txt" || true)
echo "$targets targets"
for t in debian-12.12-x86_64 debian-13.2-x86_64 ubuntu-22.04-x86_64 ubuntu-24.04-x86_64 \
         rhel-8.10-x86_64 rhel-9.6-x86_64 rhel-10.0-x86_64 rocky-9.6-x86_64 alma-10.0-x86_64 \
         fedora-43-x86_64 opensuse-15.6-x86_64 opensuse-16.0-x86_64 sles-15.7-x86_64 \
         sles-16.0-x86_64 windows-server-2022-x86_64 windows-server-2025-x86_64; do
    grep -q "^  $t\$" "$scratch/list.txt" || { echo "FAIL: target $t not listed"; status=1; }
done

echo "== every target x platform (mkosimage -u equivalent + generated files)"
"$py" "$here/validate_bundled.py" lab:dhcp,lab:10.9.8.21,lab-efi:dhcp "$scratch/out" --only "$only" \
    || status=1

echo "== mkosimage -u (the CLI itself) agrees with the in-process resolution"
for pt in qemu/lab vsphere/lab aws/lab none/lab; do
    for t in debian-13.2-x86_64 rocky-9.6-x86_64; do
        echo "$t" | grep -Eq "$only" || continue
        mine="$scratch/out/$(echo "$pt" | tr / _)_${t}_dhcp.json"
        if ! mk -u "$pt/$t" "" dhcp > "$scratch/cli.out" 2>&1; then
            echo "FAIL: mkosimage -u $pt/$t:"; sed 's/^/    /' "$scratch/cli.out"; status=1; continue
        fi
        # The temp directory differs per run; compare everything else.
        if "$py" - "$scratch/cli.out" "$mine" <<'EOF'
import json, re, sys
def norm(text):
    text = text[text.index("{"):]
    return re.sub(r'"/tmp[^"]*"|"[^"]*/(files-|tmp)[a-z0-9_]+[^"]*"', '"TEMP"', json.dumps(json.loads(text), sort_keys=True))
a, b = (norm(open(p).read()) for p in sys.argv[1:3])
sys.exit(0 if a == b else 1)
EOF
        then echo "ok   mkosimage -u $pt/$t"
        else echo "FAIL: mkosimage -u $pt/$t differs from the in-process template"; status=1
        fi
    done
done

if [ "$use_packer" = 1 ] && command -v "$packer" >/dev/null 2>&1; then
    echo "== $packer validate (builders built into Packer 1.6.6; proxmox-iso, xenserver-iso and the"
    echo "   cloud builders are plugins or need their APIs, so they are not validated here)"
    for pt in qemu/lab qemu/lab-efi virtualbox/lab virtualbox/lab-efi vmware/lab vsphere/lab hyperv/lab none/lab; do
    for t in debian-12.12-x86_64 ubuntu-24.04-x86_64 rocky-9.6-x86_64 rhel-10.0-x86_64 fedora-43-x86_64 \
             opensuse-15.6-x86_64 sles-16.0-x86_64 windows-server-2022-x86_64; do
        echo "$t" | grep -Eq "$only" || continue
        tmpl="$scratch/out/$(echo "$pt" | tr / _)_${t}_dhcp.json"
        [ -f "$tmpl" ] || { echo "FAIL: no template for $pt/$t"; status=1; continue; }
        # Keep packer off the network: validate fetches a file: checksum, so use "none" and a
        # local ISO path; the http_directory must exist.
        "$py" - "$tmpl" "$scratch" <<'EOF'
import json, sys
path, scratch = sys.argv[1], sys.argv[2]
t = json.load(open(path))
b = t["builders"][0]
if "http_directory" in b:
    b["http_directory"] = scratch
if "iso_url" in b:
    b["iso_checksum"] = "none"
    b["iso_url"] = scratch + "/iso/" + b["iso_url"].rsplit("/", 1)[-1]
json.dump(t, open(path, "w"), indent=2)
EOF
        if out=$(cd "$root" && "$packer" validate "$tmpl" 2>&1); then
            echo "ok   packer validate $pt/$t"
        else
            echo "FAIL packer validate $pt/$t:"; echo "$out" | sed 's/^/    /'; status=1
        fi
    done
    done
else
    echo "== packer validate skipped"
fi

if [ "$status" = 0 ]; then echo "validate-bundled: OK"; else echo "validate-bundled: FAILED"; fi
exit "$status"

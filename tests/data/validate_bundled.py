"""Validate the bundled data tree against the original OSImager (osimager 1.11.1).

Run by tests/data/validate-bundled.sh, which prepares a scratch copy of the oracle package whose
data/ points at this repository, a scratch XDG config (location + secrets file) and PYTHONPATH.
For every index target and every platform the spec allows, it resolves the Packer template the
way `mkosimage -u` does, generates the answer files the way a build does (gen_files), and checks:

  * the build resolves without error and has one builder of the platform's type;
  * no OSImager marker, Python error text or "None" survives in the template or the files;
  * installer platforms have iso_url and a boot_command (cloud/null platforms have none);
  * generated files parse: XML (AutoYaST, autounattend), JSON (Agama), YAML (cloud-init).

Usage: python3 validate_bundled.py LOCATION:IP[,LOCATION:IP...] OUTDIR [--only REGEX]
(IP "dhcp" means no static address.)
Prints one line per failure and a summary; exits 1 if anything failed.
"""

import contextlib
import io
import json
import os
import re
import sys
import tempfile
import xml.dom.minidom

import yaml

from osimager.core import OSImager

# A marker is an opening token and its closing token on one line (as OSImager scans them).
MARKER_PAIRS = [("%>", "<%"), (">>", "<<"), ("+>", "<+"), ("*>", "<*"), ("|>", "<|"), ("#>", "<#"),
                ("$>", "<$"), ("1>", "<1"), ("5>", "<5"), ("6>", "<6"), ("E>", "<E"), ("[>", "<]")]
LEFTOVER = re.compile("|".join(re.escape(a) + r"[^\n]*?" + re.escape(b) for a, b in MARKER_PAIRS)
                      + r"|<MISSING:|<eval-error|Traceback")
INSTALLER_TYPES = {"qemu", "virtualbox-iso", "vmware-iso", "vsphere-iso", "proxmox-iso",
                   "hyperv-iso", "xenserver-iso"}


def quiet_call(fn, *args, **kwargs):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            return fn(*args, **kwargs), out.getvalue()
        except SystemExit as exc:
            return exc, out.getvalue()


def leftovers(text):
    # Packer's own template syntax ({{ ... }}) and boot-command keys (<enter>, <wait5>) are fine.
    cleaned = re.sub(r"\{\{[^}]*\}\}", "", text)
    cleaned = re.sub(r"<(wait[0-9a-z]*|[a-zA-Z][a-zA-Z0-9]*(On|Off)?)>", "", cleaned)
    return sorted(set(m.group(0)[:20] for m in LEFTOVER.finditer(cleaned)))


def check_file(path):
    name = os.path.basename(path)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    problems = [f"{name}: leftover marker {tok!r}" for tok in leftovers(text)]
    if re.search(r"\bNone\b", text):
        problems.append(f"{name}: contains None")
    try:
        if name.endswith(".xml"):
            xml.dom.minidom.parseString(text.encode("utf-8"))
        elif name.endswith(".json"):
            json.loads(text)
        elif name == "user-data":
            doc = yaml.safe_load(text)
            if not text.startswith("#cloud-config") or "autoinstall" not in doc:
                problems.append(f"{name}: not an autoinstall cloud-config")
        elif name == "meta-data":
            yaml.safe_load(text)
    except Exception as exc:  # any parse error is a failure of the template
        problems.append(f"{name}: does not parse: {exc}")
    return problems


def check_build(platform, location, target, ip, outdir):
    tmp = tempfile.mkdtemp(prefix="files-", dir=outdir)
    full = f"{platform}/{location}/{target}"
    o, log = quiet_call(OSImager, argv=["-m", tmp, full, "", ip], which="full")
    if isinstance(o, SystemExit):
        return [f"init failed: {log.strip()}"], None
    build, log = quiet_call(o.make_build, full, name=None, ip=ip)
    if isinstance(build, SystemExit) or not isinstance(build, dict):
        return [f"make_build failed: {log.strip()[-300:]}"], None
    problems = []
    text = json.dumps(build, indent=2)
    for tok in leftovers(text):
        problems.append(f"template: leftover marker {tok!r}")
    if re.search(r'"None"|: null', text):
        problems.append("template: contains None/null")
    builders = build.get("builders", [])
    if len(builders) != 1:
        return problems + [f"template: {len(builders)} builders"], build
    b = builders[0]
    want = o.platform.get("config", {}).get("type")
    if b.get("type") != want:
        problems.append(f"template: builder type {b.get('type')!r}, platform says {want!r}")
    if b.get("type") in INSTALLER_TYPES:
        iso = b.get("iso_url") or (b.get("boot_iso") or {}).get("iso_url")
        if not iso:
            problems.append("template: installer platform without iso_url")
        if not b.get("boot_command"):
            problems.append("template: installer platform without boot_command")
        if not b.get("communicator"):
            problems.append("template: no communicator")
    elif "boot_command" in b:
        problems.append("template: boot_command on a platform that does not boot an installer")
    _, log = quiet_call(o.gen_files)
    produced = sorted(os.listdir(tmp))
    if b.get("type") in INSTALLER_TYPES and not produced:
        problems.append("files: no answer file generated")
    for name in produced:
        problems.extend(check_file(os.path.join(tmp, name)))
    with open(os.path.join(outdir, full.replace("/", "_") + "_" + ip + ".json"), "w") as f:
        f.write(text)
    return problems, build


def main():
    runs = [tuple(item.split(":", 1)) for item in sys.argv[1].split(",")]
    outdir = sys.argv[2]
    only = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--only" else ".*"
    probe, _ = quiet_call(OSImager, argv=["--list"], which="full")
    index = probe.get_index()
    platforms = {p["name"]: p for p in probe.get_platforms()}
    checked = failed = 0
    for target, entry in index.items():
        if not re.search(only, target):
            continue
        with open(entry["path"]) as f:
            spec = json.load(f)
        arch = entry["provides"]["arch"]
        for pname in spec.get("platforms", sorted(platforms)):
            plat = platforms.get(pname)
            if plat is None:
                print(f"FAIL {target}: spec lists unknown platform {pname}")
                failed += 1
                continue
            arches = plat.get("arches", [])
            if arch not in arches and not (arch == "amd64" and "x86_64" in arches):
                continue
            for location, ip in runs:
                checked += 1
                problems, _ = check_build(pname, location, target, ip, outdir)
                if problems:
                    failed += 1
                    for p in problems:
                        print(f"FAIL {pname}/{location}/{target} ip={ip}: {p}")
    print(f"checked {checked} builds over {len(index)} targets: {failed} failed")
    return 1 if failed or not checked else 0


if __name__ == "__main__":
    sys.exit(main())

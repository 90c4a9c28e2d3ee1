"""Structure checks of generated answer files for which no official validator can be installed
on the CI machines (run by tests/bundled_data.rs with the tools venv's python, one process for
all files). Kickstart (pykickstart's ksvalidator), Debian preseed (debconf-set-selections
--checkonly) and XML well-formedness (xmllint) are checked by the Rust test with those tools.

  python3 validate_answers.py JOB.json RESULT.json

JOB is a list of {"kind", "path", "arch"}; RESULT the same list with "errors" (a list of
strings; empty = valid). Kinds:

  cloud-config   Ubuntu autoinstall user-data: "#cloud-config" header, YAML, validated against
                 cloud-init's own JSON schema (schema-cloud-config-v1.json from Debian's
                 cloud-init package, path in $CLOUD_INIT_SCHEMA; its cc_ubuntu_autoinstall part
                 requires autoinstall.version) and the autoinstall keys of the Ubuntu autoinstall
                 reference that the bundled file uses, with their types.
  nocloud-meta   NoCloud meta-data: YAML mapping with a non-empty instance-id.
  autounattend   Windows Setup answer file: the unattend namespace, valid configuration passes,
                 component attributes (processorArchitecture matching the target), the
                 settings Windows Setup needs to run unattended.
  autoyast       AutoYaST profile: the yast2ns/configns namespaces, config:type values and
                 typed contents, the sections an unattended install needs.
  agama          Agama profile (JSON): the keys and types of the Agama profile reference used.
  json           Any JSON document (e.g. winrm-vars.json): parses, is an object, no empty values.
  testos         tests/testos answer file: key=value lines, the keys its installer requires.
"""

import json
import os
import re
import sys
import xml.etree.ElementTree as ET

import yaml


def check_cloud_config(path, text, arch, schema):
    errs = []
    if not text.startswith("#cloud-config\n"):
        errs.append("first line is not #cloud-config")
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        return errs + ["not a YAML mapping"]
    import jsonschema

    v = jsonschema.Draft4Validator(schema)
    for e in sorted(v.iter_errors(doc), key=lambda e: list(e.path)):
        errs.append("cloud-init schema: %s: %s" % ("/".join(map(str, e.path)), e.message))
    ai = doc.get("autoinstall")
    if not isinstance(ai, dict):
        return errs + ["no autoinstall mapping"]
    def typed(obj, key, typ, where):
        if key not in obj:
            errs.append("autoinstall: %s%s missing" % (where, key))
            return None
        if not isinstance(obj[key], typ):
            errs.append("autoinstall: %s%s is %s" % (where, key, type(obj[key]).__name__))
            return None
        return obj[key]
    if ai.get("version") != 1:
        errs.append("autoinstall: version must be 1")
    typed(ai, "locale", str, "")
    kb = typed(ai, "keyboard", dict, "")
    if kb is not None:
        typed(kb, "layout", str, "keyboard.")
    ident = typed(ai, "identity", dict, "")
    if ident is not None:
        for k in ("hostname", "username", "password"):
            if typed(ident, k, str, "identity.") == "":
                errs.append("autoinstall: identity.%s is empty" % k)
        pw = ident.get("password", "")
        if isinstance(pw, str) and not re.match(r"^\$6\$[./0-9A-Za-z]{1,16}\$[./0-9A-Za-z]{86}$", pw):
            errs.append("autoinstall: identity.password is not a SHA-512 crypt hash")
        host = ident.get("hostname", "")
        if isinstance(host, str) and not re.match(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$", host):
            errs.append("autoinstall: identity.hostname %r is not a valid host name" % host)
    ssh = typed(ai, "ssh", dict, "")
    if ssh is not None:
        typed(ssh, "install-server", bool, "ssh.")
        typed(ssh, "allow-pw", bool, "ssh.")
    storage = typed(ai, "storage", dict, "")
    if storage is not None:
        layout = typed(storage, "layout", dict, "storage.")
        if layout is not None and layout.get("name") not in ("lvm", "direct", "zfs"):
            errs.append("autoinstall: storage.layout.name must be lvm, direct or zfs")
    net = ai.get("network")
    if net is not None:
        if not isinstance(net, dict) or net.get("version") != 2:
            errs.append("autoinstall: network must be a netplan version 2 mapping")
        else:
            for name, eth in (net.get("ethernets") or {}).items():
                if not isinstance(eth.get("dhcp4"), bool):
                    errs.append("autoinstall: network.ethernets.%s.dhcp4 is not a boolean" % name)
                for a in eth.get("addresses") or []:
                    if not re.match(r"^\d+\.\d+\.\d+\.\d+/\d+$", str(a)):
                        errs.append("autoinstall: address %r is not ADDRESS/PREFIX" % a)
    for key in ("packages", "late-commands", "early-commands"):
        if key in ai and not (isinstance(ai[key], list) and all(isinstance(x, str) for x in ai[key])):
            errs.append("autoinstall: %s must be a list of strings" % key)
    if ai.get("shutdown", "reboot") not in ("reboot", "poweroff"):
        errs.append("autoinstall: shutdown must be reboot or poweroff")
    return errs


def check_meta(path, text, arch, _):
    doc = yaml.safe_load(text)
    if not isinstance(doc, dict):
        return ["not a YAML mapping"]
    if not isinstance(doc.get("instance-id"), str) or not doc["instance-id"]:
        return ["instance-id missing or empty"]
    return []


UNATTEND = "{urn:schemas-microsoft-com:unattend}"
WCM = "{http://schemas.microsoft.com/WMIConfig/2002/State}"
PASSES = {"windowsPE", "offlineServicing", "generalize", "specialize", "auditSystem",
          "auditUser", "oobeSystem"}
WIN_ARCH = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}


def check_autounattend(path, text, arch, _):
    errs = []
    root = ET.fromstring(text.encode("utf-8"))
    if root.tag != UNATTEND + "unattend":
        return ["root element is %s, not unattend in urn:schemas-microsoft-com:unattend" % root.tag]
    comps = {}
    for s in root.findall(UNATTEND + "settings"):
        p = s.get("pass")
        if p not in PASSES:
            errs.append("settings pass %r is not a Windows Setup configuration pass" % p)
        for c in s.findall(UNATTEND + "component"):
            name = c.get("name", "")
            comps[(p, name)] = c
            want = WIN_ARCH.get(arch)
            if c.get("processorArchitecture") != want:
                errs.append("%s/%s: processorArchitecture %r, target needs %r"
                            % (p, name, c.get("processorArchitecture"), want))
            for attr, val in (("publicKeyToken", "31bf3856ad364e35"), ("language", "neutral"),
                              ("versionScope", "nonSxS")):
                if c.get(attr) != val:
                    errs.append("%s/%s: %s=%r, must be %r" % (p, name, attr, c.get(attr), val))
    for el in root.iter():
        act = el.get(WCM + "action")
        if act is not None and act not in ("add", "modify", "remove"):
            errs.append("wcm:action %r on %s" % (act, el.tag))
    def need(p, comp, *path):
        c = comps.get((p, comp))
        if c is None:
            errs.append("pass %s has no component %s" % (p, comp))
            return None
        el = c
        for part in path:
            el = el.find(UNATTEND + part)
            if el is None:
                errs.append("%s/%s: %s missing" % (p, comp, "/".join(path)))
                return None
        return el
    eula = need("windowsPE", "Microsoft-Windows-Setup", "UserData", "AcceptEula")
    if eula is not None and (eula.text or "").strip() != "true":
        errs.append("windowsPE: AcceptEula is not true")
    need("windowsPE", "Microsoft-Windows-Setup", "DiskConfiguration")
    img = need("windowsPE", "Microsoft-Windows-Setup", "ImageInstall", "OSImage")
    if img is not None and img.find(UNATTEND + "InstallTo") is None \
            and img.find(UNATTEND + "InstallToAvailablePartition") is None:
        errs.append("windowsPE: ImageInstall/OSImage has no InstallTo")
    need("windowsPE", "Microsoft-Windows-International-Core-WinPE", "SetupUILanguage", "UILanguage")
    pw = need("oobeSystem", "Microsoft-Windows-Shell-Setup", "UserAccounts",
              "AdministratorPassword", "Value")
    if pw is not None and not (pw.text or "").strip():
        errs.append("oobeSystem: AdministratorPassword is empty")
    return errs


YAST = "{http://www.suse.com/1.0/yast2ns}"
CONFIG = "{http://www.suse.com/1.0/configns}"


def check_autoyast(path, text, arch, _):
    errs = []
    root = ET.fromstring(text.encode("utf-8"))
    if root.tag != YAST + "profile":
        return ["root element is %s, not profile in the yast2ns namespace" % root.tag]
    for el in root.iter():
        if not el.tag.startswith(YAST):
            errs.append("element %s outside the yast2ns namespace" % el.tag)
        t = el.get(CONFIG + "type")
        if t is None:
            continue
        v = (el.text or "").strip()
        if t == "boolean" and v not in ("true", "false"):
            errs.append("%s: boolean %r" % (el.tag, v))
        elif t == "integer" and not re.match(r"^-?\d+$", v):
            errs.append("%s: integer %r" % (el.tag, v))
        elif t == "list" and v:
            errs.append("%s: list with text %r" % (el.tag, v))
        elif t not in ("boolean", "integer", "list", "symbol"):
            errs.append("%s: unknown config:type %r" % (el.tag, t))
    for sec in ("general", "partitioning", "software", "users"):
        if root.find(YAST + sec) is None:
            errs.append("no <%s> section" % sec)
    for user in root.iter(YAST + "user"):
        name = user.find(YAST + "username")
        pw = user.find(YAST + "user_password")
        if name is None or not (name.text or "").strip():
            errs.append("a user without username")
        if pw is None or not re.match(r"^\$6\$", (pw.text or "").strip()):
            errs.append("user %s: user_password is not a SHA-512 crypt hash"
                        % (name.text if name is not None else "?"))
        enc = user.find(YAST + "encrypted")
        if enc is None or (enc.text or "").strip() != "true":
            errs.append("a hashed user_password needs <encrypted>true</encrypted>")
    return errs


def check_agama(path, text, arch, _):
    errs = []
    doc = json.loads(text)
    def typed(obj, key, typ, where, required=True):
        if key not in obj:
            if required:
                errs.append("%s%s missing" % (where, key))
            return None
        if not isinstance(obj[key], typ) or obj[key] in ("", [], {}):
            errs.append("%s%s is %r" % (where, key, obj[key]))
            return None
        return obj[key]
    known = {"product", "localization", "hostname", "root", "user", "storage", "software",
             "scripts", "network", "bootloader", "security", "questions", "files",
             "legacyAutoyastStorage"}
    for k in doc:
        if k not in known:
            errs.append("unknown top-level key %r" % k)
    prod = typed(doc, "product", dict, "")
    if prod is not None:
        typed(prod, "id", str, "product.")
    loc = typed(doc, "localization", dict, "")
    if loc is not None:
        for k in ("language", "keyboard", "timezone"):
            typed(loc, k, str, "localization.")
    host = typed(doc, "hostname", dict, "", required=False)
    if host is not None:
        typed(host, "static", str, "hostname.")
    root = typed(doc, "root", dict, "")
    for who in ("root", "user"):
        acct = doc.get(who)
        if acct is None:
            continue
        if who == "user":
            typed(acct, "userName", str, "user.")
            typed(acct, "fullName", str, "user.")
        pw = typed(acct, "password", str, who + ".")
        if acct.get("hashedPassword") is not True or not re.match(r"^\$6\$", pw or ""):
            errs.append("%s: password must be a SHA-512 hash with hashedPassword: true" % who)
    if root is None and "user" not in doc:
        errs.append("neither root nor user")
    typed(doc, "storage", dict, "")
    sw = typed(doc, "software", dict, "")
    if sw is not None:
        for k in ("patterns", "packages"):
            v = sw.get(k, [])
            if not (isinstance(v, list) and all(isinstance(x, str) and x for x in v)):
                errs.append("software.%s must be a list of names" % k)
    for kind, scripts in (doc.get("scripts") or {}).items():
        if kind not in ("pre", "post", "init", "postPartitioning"):
            errs.append("scripts.%s is not a script kind" % kind)
        for s in scripts:
            if not isinstance(s.get("name"), str) or not isinstance(s.get("content"), str):
                errs.append("scripts.%s: each script needs name and content" % kind)
            if "chroot" in s and not isinstance(s["chroot"], bool):
                errs.append("scripts.%s: chroot must be a boolean" % kind)
    return errs


def check_json(path, text, arch, _):
    doc = json.loads(text)
    if not isinstance(doc, dict) or not doc:
        return ["not a non-empty JSON object"]
    return ["%s is empty" % k for k, v in doc.items() if v in ("", None)]


def check_testos(path, text, arch, _):
    keys = {}
    errs = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if "=" not in line:
            errs.append("line %d is not key=value" % n)
            continue
        k, v = line.split("=", 1)
        keys[k] = v
    for k in ("hostname", "username", "rootfs", "disk"):
        if not keys.get(k):
            errs.append("%s missing" % k)
    if not (keys.get("password") or keys.get("password_hash")):
        errs.append("password or password_hash missing")
    return errs


CHECKS = {"cloud-config": check_cloud_config, "nocloud-meta": check_meta,
          "autounattend": check_autounattend, "autoyast": check_autoyast,
          "agama": check_agama, "json": check_json, "testos": check_testos}


def main():
    job = json.load(open(sys.argv[1]))
    schema = None
    if any(j["kind"] == "cloud-config" for j in job):
        schema = json.load(open(os.environ["CLOUD_INIT_SCHEMA"]))
    out = []
    for j in job:
        with open(j["path"], encoding="utf-8") as f:
            text = f.read()
        try:
            errs = CHECKS[j["kind"]](j["path"], text, j.get("arch", ""), schema)
        except Exception as e:  # a parse error is a finding, not a crash
            errs = ["does not parse: %s: %s" % (type(e).__name__, e)]
        out.append(dict(j, errors=errs))
    json.dump(out, open(sys.argv[2], "w"), indent=1)


if __name__ == "__main__":
    main()

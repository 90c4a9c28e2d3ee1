#!/usr/bin/env python3
"""Helpers for bench/build.sh (stdlib only).

  tslines OUT                 copy stdin to stdout and to OUT, each line prefixed "EPOCH "
  tail FILE OUT               follow FILE (waits for it to appear), write "EPOCH line" to OUT
                              until killed (polls every 10 ms)
  procmon OUTJSON -- CMD...   run CMD, sample VmHWM (peak RSS) of CMD and of every descendant
                              every 100 ms; write {"root": KiB, "by_comm": {comm: KiB}} and
                              exit with CMD's status
  variant DUMP OUT ...        Packer template for the benchmark from `osimager dump` (see --help)
  native-phases LOG T0 T1     phases of a native build from its timestamped build.log
  packer-phases LOG T0 T1     phases of a Packer build from tslines output
  sshlat SERIAL_TS CONNECTED  seconds from the sshd start line to the CONNECTED epoch
  report RESULTS.json MD      write the "## Build" section of MD (keeps other sections)
"""
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import time


def tslines(out):
    with open(out, "w", buffering=1) as f:
        for line in sys.stdin:
            now = time.time()
            sys.stdout.write(line)
            sys.stdout.flush()
            f.write(f"{now:.3f} {line}")


def tail(path, out):
    while not os.path.exists(path):
        time.sleep(0.01)
    pos, buf = 0, b""
    with open(out, "w", buffering=1) as f:
        while True:
            try:
                size = os.path.getsize(path)
            except OSError:
                size = pos
            if size < pos:
                pos, buf = 0, b""
            if size > pos:
                with open(path, "rb") as s:
                    s.seek(pos)
                    data = s.read()
                pos += len(data)
                now = time.time()
                buf += data
                *lines, buf = buf.split(b"\n")
                for ln in lines:
                    text = ln.decode("utf-8", "replace").replace("\r", "")
                    f.write(f"{now:.3f} {text}\n")
            time.sleep(0.01)


def _children():
    kids = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    st = f.read()
                ppid = int(st[st.rindex(")") + 2 :].split()[1])
                kids.setdefault(ppid, []).append(int(d))
            except (OSError, ValueError):
                pass
    return kids


def _hwm(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            text = f.read()
    except OSError:
        return None, None
    name = re.search(r"^Name:\s*(\S+)", text, re.M)
    hwm = re.search(r"^VmHWM:\s*(\d+)", text, re.M)
    return (name.group(1) if name else "?"), (int(hwm.group(1)) if hwm else None)


def procmon(out, cmd):
    p = subprocess.Popen(cmd)
    root, by_pid = 0, {}
    while p.poll() is None:
        _, h = _hwm(p.pid)
        if h:
            root = max(root, h)
        kids, todo = _children(), list(_children().get(p.pid, []))
        while todo:
            pid = todo.pop()
            todo.extend(kids.get(pid, []))
            name, h = _hwm(pid)
            if h:
                key = (pid, name)
                by_pid[key] = max(by_pid.get(key, 0), h)
        time.sleep(0.1)
    by_comm, sum_comm = {}, {}
    for (pid, name), h in by_pid.items():
        by_comm[name] = max(by_comm.get(name, 0), h)
        sum_comm[name] = sum_comm.get(name, 0) + h
    with open(out, "w") as f:
        json.dump({"root": root, "by_comm": by_comm, "sum_by_comm": sum_comm}, f)
    sys.exit(p.returncode)


def variant(dump, out, output_dir, http_dir, data_dir, ansible_playbook, serial):
    """The `osimager dump` template of the same target and name, patched only where Packer
    1.6.6 needs it: a real http_directory (dump names a temp dir it deletes), absolute playbook
    path, the ansible-playbook to use, Packer's SSH proxy quirks (user, ssh-rsa), the serial
    console in a file (as the native engine does) and the (empty) ansible-opts variable."""
    text = open(dump).read()
    t = json.loads(text[text.index("{") :])
    t["variables"].setdefault("ansible-opts", "")
    b = t["builders"][0]
    b["output_directory"] = output_dir
    b["http_directory"] = http_dir
    b.setdefault("qemuargs", []).append(["-serial", f"file:{serial}"])
    for p in t.get("provisioners", []):
        if p.get("type") == "ansible":
            pb = p.get("playbook_file", "config.yml")
            p["playbook_file"] = pb if os.path.isabs(pb) else os.path.join(data_dir, pb)
            p["command"] = ansible_playbook
            p["user"] = b.get("ssh_username", "")
            p.setdefault("extra_arguments", []).extend(
                [
                    "--ssh-extra-args",
                    "-o HostKeyAlgorithms=+ssh-rsa -o PubkeyAcceptedKeyTypes=+ssh-rsa",
                ]
            )
            # The same Ansible settings the native engine sets (src/provision/ansible.rs).
            p.setdefault("ansible_env_vars", []).extend(
                [
                    "ANSIBLE_RETRY_FILES_ENABLED=False",
                    "ANSIBLE_WARNINGS=False",
                    "ANSIBLE_NOCOWS=1",
                    "ANSIBLE_DISPLAY_SKIPPED_HOSTS=False",
                    "ANSIBLE_STDOUT_CALLBACK=minimal",
                    "ANSIBLE_HOST_KEY_CHECKING=False",
                ]
            )
    with open(out, "w") as f:
        json.dump(t, f, indent=2)


def _stamp(ts):
    """A build.log time: RFC 3339 (`2026-12-07T07:29:00.123Z`), or epoch seconds (older logs)."""
    try:
        return float(ts)
    except ValueError:
        return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def _lines(log):
    for line in open(log, errors="replace"):
        ts, _, rest = line.partition(" ")
        try:
            yield _stamp(ts), rest.rstrip("\n")
        except ValueError:
            continue


def _first(log, pattern):
    rx = re.compile(pattern)
    for ts, text in _lines(log):
        if rx.search(text):
            return ts
    raise SystemExit(f"{log}: no line matches {pattern!r}")


def _phases(marks, t0, t1):
    names = [m[0] for m in marks] + ["end"]
    times = [t0] + [m[1] for m in marks[1:]] + [t1]
    return {n: round(b - a, 2) for n, a, b in zip(names, times, times[1:])} | {
        "total": round(t1 - t0, 2)
    }


def native_phases(log, t0, t1):
    m = lambda p: _first(log, p)
    marks = [
        ("prepare", t0),
        ("boot+typing", m(r"^==> launch")),
        ("install+reboot to SSH", m(r"^==> wait for ssh")),
        ("provision", m(r"^==> provision")),
        ("shutdown", m(r"^==> shutdown")),
        ("export", m(r"^==> export")),
        ("cleanup", m(r"^==> cleanup")),
    ]
    answered = m(r"^SSH server answered on ")
    # "(1.20 s after this connection was opened)": the guest's time to send the banner.
    waited = next(float(x.group(1)) for ts, text in _lines(log) if ts == answered
                  for x in [re.search(r"\(([0-9.]+) s after this connection was opened\)", text)] if x)
    ssh = {"reached": answered - waited, "answered": answered, "connected": m(r"^connected to ")}
    return _phases(marks, t0, t1), ssh


def packer_phases(log, t0, t1):
    m = lambda p: _first(log, p)
    marks = [
        ("prepare", t0),
        ("boot+typing", m(r"Starting VM, booting")),
        ("install+reboot to SSH", m(r"Waiting for SSH to become available")),
        ("provision", m(r"Connected to SSH!")),
        ("shutdown", m(r"Gracefully halting")),
        ("export", m(r"Converting hard drive|Build '.*' finished")),
    ]
    return _phases(marks, t0, t1), {"connected": m(r"Connected to SSH!")}


def sshlat(serial_ts, ssh):
    """Seconds from sshd's own "Server listening on" line (testos sshd logs to the console) to
    the engine's marks: `reached` (native: it opened the connection that got the banner),
    `answered` (the banner arrived), `connected` (logged in)."""
    t = _first(serial_ts, r"Server listening on ")
    out = {k: round(float(v) - t, 3) for k, v in json.loads(ssh).items()}
    # Connections that reached sshd and were closed before the banner was read: probes the
    # engine gave up on, which QEMU's user network delivered anyway (each one an sshd process).
    out["strays"] = sum(1 for _, text in _lines(serial_ts) if "kex_exchange_identification" in text)
    return out


PHASES = ["prepare", "boot+typing", "install+reboot to SSH", "provision", "shutdown", "export", "cleanup", "total"]


def _fmt(v):
    return "–" if v is None else f"{v:.1f}"


def report(results, md):
    r = json.load(open(results))
    runs = r["runs"]
    out = [
        "## Build",
        "",
        f"Command: `{r['command']}` — measured {r['date']} on {r['host']} "
        f"(load average at start {r['load']}). Target `{r['target']}`, QEMU 7.2 TCG, 1 vCPU, "
        "512 MiB, 2048 MiB qcow2 disk, testos installed from its ISO, same playbook.",
        "",
        "### Native engine vs Packer 1.6.6 (seconds)",
        "",
        "Runs alternate native, Packer, native, Packer… on the same machine in the same "
        "invocation. Phase boundaries: native — the timestamped `==> step` lines of its "
        "build.log; Packer — its UI lines timestamped by bench/buildbench.py (`Starting VM`, "
        "`Waiting for SSH`, `Connected to SSH!`, `Gracefully halting`, `Converting hard drive`). "
        "`prepare` = process start to VM launch (ISO checksum, HTTP server, disk); `export` = "
        "native export + manifest (SHA256SUMS of the image) / Packer's qcow2 conversion; "
        "`cleanup` = native cleanup step (Packer's is inside its export row).",
        "",
    ]
    head = "| run | engine | " + " | ".join(PHASES) + " |"
    out += [head, "|" + "---|" * (len(PHASES) + 2)]
    for i, run in enumerate(runs, 1):
        ph = run["phases"]
        out.append(
            f"| {i} | {run['engine']} | " + " | ".join(_fmt(ph.get(p)) for p in PHASES) + " |"
        )
    med = {}
    for eng in ("native", "packer"):
        sel = [x["phases"] for x in runs if x["engine"] == eng]
        med[eng] = {
            p: statistics.median([s[p] for s in sel if p in s]) if any(p in s for s in sel) else None
            for p in PHASES
        }
        out.append(
            f"| median | {eng} | " + " | ".join(_fmt(med[eng][p]) for p in PHASES) + " |"
        )
    out.append(
        "| Δ median | native − Packer | "
        + " | ".join(
            "–" if med["native"][p] is None or med["packer"][p] is None
            else f"{med['native'][p] - med['packer'][p]:+.1f}"
            for p in PHASES
        )
        + " |"
    )
    ratio = med["native"]["total"] / med["packer"]["total"]
    guest = lambda m: m["install+reboot to SSH"] + m["provision"]
    share = lambda m: round(100 * (m["install+reboot to SSH"] + m["provision"]) / m["total"])
    out += [
        "",
        f"**Total wall time, median: native {med['native']['total']:.1f} s, Packer "
        f"{med['packer']['total']:.1f} s, ratio native/Packer = {ratio:.2f}** (target ≤ 0.75: "
        f"{'met' if ratio <= 0.75 else 'NOT met'}). Per-run ratios (native run i / Packer run i): "
        + ", ".join(
            f"{a['phases']['total'] / b['phases']['total']:.2f}"
            for a, b in zip(
                [x for x in runs if x["engine"] == "native"],
                [x for x in runs if x["engine"] == "packer"],
            )
        )
        + ".",
        "",
        "Where the engines differ by design — `prepare` (checksum, HTTP server, disk), "
        "`boot+typing` (boot_wait 3 s, then the driver's QMP typing vs Packer's VNC typing at 100 ms "
        "per key), SSH detection, `shutdown` and `export` — see the Δ row. The "
        "guest-bound phases (install + reboot to SSH, Ansible provisioning) run the same guest "
        f"code in both engines, are {share(med['native'])} % (native) and {share(med['packer'])} % "
        "(Packer) of the median wall time under TCG, and vary by up to tens of seconds between "
        "runs of the same engine on this host (the serial logs show every guest step slower in "
        "such a run: kernel boot, unpacking, reboot), so the whole-build ratio is bounded by the "
        "guest: the native median's guest-bound phases alone take "
        f"{guest(med['native']):.0f} s, {guest(med['native']) / med['packer']['total']:.2f} "
        "of the Packer median total. The rest — the time the engines spend themselves (preparing, "
        "boot wait and typing, shutdown, export, cleanup) — is "
        f"{med['native']['total'] - guest(med['native']):.1f} s native vs "
        f"{med['packer']['total'] - guest(med['packer']):.1f} s Packer (ratio "
        f"{(med['native']['total'] - guest(med['native'])) / (med['packer']['total'] - guest(med['packer'])):.2f}); "
        "SSH detection, inside the guest-bound install phase, is below. Compare rows of the same "
        "invocation only.",
    ]
    if med["native"]["provision"] > 1.1 * med["packer"]["provision"]:
        out += [
            "",
            f"Provisioning was slower with the native engine ({med['native']['provision']:.0f} s vs "
            f"{med['packer']['provision']:.0f} s median) although both run the same playbook, tasks "
            "and results: compare the task lines of the two logs (BENCH_KEEP=1 keeps them).",
        ]
    out += [
        "",
        "### SSH-ready detection latency",
        "",
        "Reference point: sshd's own `Server listening on 0.0.0.0 port 22.` line — testos runs "
        "sshd with `-E /dev/console` (tests/testos/rootfs/etc/default/ssh), so the serial log shows "
        "the moment sshd is ready; bench/buildbench.py `tail` follows the serial log and "
        "timestamps its lines every 10 ms. Three marks, seconds after that line: `reached` = the "
        "native engine opened the connection that got sshd's banner (its build.log line `SSH "
        "server answered … (X s after this connection was opened)`, minus X): detection, the "
        "engine's part; `banner` = that banner arrived (sshd forks and re-executes itself for "
        "each connection, on the TCG vCPU of a guest still booting: the guest's part); `logged "
        "in` = its `connected to` line / Packer's `Connected to SSH!`, after the key exchange and "
        "password login, also computed by the guest. Packer logs no earlier mark. The native "
        "engine polls the forwarded port every 100 ms once the guest's network answers "
        "(src/comm/config.rs `poll_interval`); Packer 1.6.6 retries every 5 s. `strays` = "
        "connections that reached sshd and were closed before its banner (`kex_exchange_"
        "identification` lines): probes an engine gave up on, which QEMU's user network still "
        "delivers (src/comm/probe.rs). Target ≤ 0.5 s (native).",
        "",
        "| run | engine | reached (s) | banner (s) | logged in (s) | strays |",
        "|---|---|---|---|---|---|",
    ]
    keys = ("reached", "answered", "connected", "strays")
    lat = lambda x, k: (x.get("ssh_latency") or {}).get(k)
    for i, run in enumerate(runs, 1):
        out.append(f"| {i} | {run['engine']} | " + " | ".join(
            _fmt3(lat(run, k)) if k != "strays" else _int(lat(run, k)) for k in keys) + " |")
    medians = {}
    for eng in ("native", "packer"):
        for k in keys:
            v = [lat(x, k) for x in runs if x["engine"] == eng and lat(x, k) is not None]
            medians[(eng, k)] = statistics.median(v) if v else None
        out.append(f"| median | {eng} | " + " | ".join(
            _fmt3(medians[(eng, k)]) if k != "strays" else _int(medians[(eng, k)]) for k in keys) + " |")
    rch, a, c = (medians[("native", k)] for k in ("reached", "answered", "connected"))
    if None not in (rch, a, c):
        out += ["", f"Native median: its connection reached sshd {rch:.2f} s after sshd listened, "
                f"the banner came {a:.2f} s after, the login finished {c:.2f} s after. Detection "
                f"target ≤ 0.5 s **{'met' if rch <= 0.5 else 'NOT met'}** for the engine's part "
                f"(`reached`); {'also' if a <= 0.5 else 'NOT'} within 0.5 s counting the guest's "
                "banner, " + ("and" if c <= 0.5 else "NOT") + " counting the login."]
    out += [
        "",
        "### Peak RSS",
        "",
        "`own` = VmHWM of the engine's own process(es), sampled from /proc every 100 ms until it "
        "exits (native: the osimager process; Packer: the sum over its `packer` processes — the "
        "main process and its plugin processes). `GNU time` = `/usr/bin/time -v` \"Maximum "
        "resident set size\" of the whole run, which on Linux is the largest of the process and "
        "its waited-for descendants — it is QEMU's (512 MiB guest RAM plus the TCG translation "
        "cache), not the engine's. Target: "
        "osimager own ≤ 30 MiB.",
        "",
        "| run | engine | own peak RSS (MiB) | largest child (MiB) | GNU time max RSS (MiB) |",
        "|---|---|---|---|---|",
    ]
    for i, run in enumerate(runs, 1):
        rss = run.get("rss", {})
        out.append(
            f"| {i} | {run['engine']} | {_mib(rss.get('own'))} | {rss.get('largest_child', '–')} "
            f"| {_mib(run.get('gnu_time_kib'))} |"
        )
    own = [x["rss"]["own"] for x in runs if x["engine"] == "native" and x.get("rss", {}).get("own")]
    if own:
        out += ["", f"osimager peak RSS, worst run: {max(own) / 1024:.1f} MiB — target ≤ 30 MiB "
                f"**{'met' if max(own) <= 30 * 1024 else 'NOT met'}**."]
    t = r.get("typing")
    out += ["", "### Boot typing rate (zero dropped characters)", ""]
    if t:
        out += [
            f"Command: `{t['command']}` (drivers/tests/typing_accuracy.rs `typing_interval_sweep` "
            f"at the driver's default key interval, {t['interval_us']} µs). The text cycles "
            "through all 95 printable ASCII characters in a scrambled order (every shifted symbol); "
            "what the guest received is read back from its serial echo and compared character by "
            "character. `isolinux` = the testos ISO's `boot:` prompt (240 characters, the test's "
            "length for ISOLINUX's command line); `bootsector` = the 512-byte BIOS int 16h echo "
            "guest (300 characters). Target ≥ 50 keys/s with 0 dropped.",
            "",
            "| media | run | characters | exact | dropped/garbled | keys/s |",
            "|---|---|---|---|---|---|",
        ]
        for x in t["runs"]:
            out.append(
                f"| {x['media']} | {x['run']} | {x['chars']} | {x['ok']} | {x['bad']} | {x['kps']} |"
            )
        for media in sorted({x["media"] for x in t["runs"]}):
            v = [x["kps"] for x in t["runs"] if x["media"] == media]
            bad = sum(x["bad"] for x in t["runs"] if x["media"] == media)
            out.append(f"| {media} | median | | | {bad} total | {statistics.median(v):.0f} |")
        iso = [x for x in t["runs"] if x["media"] == "isolinux"]
        m = statistics.median([x["kps"] for x in iso])
        bad = sum(x["bad"] for x in t["runs"])
        out += ["", f"ISOLINUX median {m:.0f} keys/s, {bad} dropped/garbled in all runs: target "
                f"**{'met' if m >= 50 and bad == 0 else 'NOT met'}**. " + t.get("note", "")]
    out += ["", r.get("notes", "")]
    section = "\n".join(out).rstrip() + "\n"
    text = open(md).read() if os.path.exists(md) else "# Benchmarks\n"
    if re.search(r"^## Build\n", text, re.M):
        text = re.sub(r"^## Build\n.*?(?=^## |\Z)", section + "\n", text, flags=re.S | re.M)
    else:
        text = text.rstrip() + "\n\n" + section
    open(md, "w").write(text.rstrip() + "\n")


def _int(v):
    return "–" if v is None else f"{v:g}"


def _fmt3(v):
    return "–" if v is None else f"{v:.3f}"


def _mib(kib):
    return "–" if kib is None else f"{kib / 1024:.1f}"


def main(a):
    cmd = a[1] if len(a) > 1 else "--help"
    if cmd == "tslines":
        tslines(a[2])
    elif cmd == "tail":
        tail(a[2], a[3])
    elif cmd == "procmon":
        procmon(a[2], a[a.index("--") + 1 :])
    elif cmd == "variant":
        variant(*a[2:9])
    elif cmd in ("native-phases", "packer-phases"):
        f = native_phases if cmd == "native-phases" else packer_phases
        ph, ssh = f(a[2], float(a[3]), float(a[4]))
        print(json.dumps({"phases": ph, "ssh": ssh}))
    elif cmd == "sshlat":
        print(json.dumps(sshlat(a[2], a[3])))
    elif cmd == "report":
        report(a[2], a[3])
    else:
        print(__doc__)
        sys.exit(0 if cmd in ("-h", "--help") else 2)


if __name__ == "__main__":
    main(sys.argv)

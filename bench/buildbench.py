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


def _maybe(log, pattern):
    rx = re.compile(pattern)
    return next((ts for ts, text in _lines(log) if rx.search(text)), None)


def native_phases(log, t0, t1):
    """Phases of a native build (full or cached rebuild). `to SSH` = installing and rebooting
    (full) or booting the cached install (rebuild); `guest sync` = the guest flushing its
    caches for the install cache (`sync` over SSH), `cache save` = the rest of the `save install`
    step (pausing, freezing the disks, writing the memory); both 0 without the install cache."""
    m = lambda p: _first(log, p)
    save = _maybe(log, r"^==> save install")
    synced = _maybe(log, r"^install cache: the guest flushed its caches")
    prov = m(r"^==> provision")
    marks = [
        ("prepare", t0),
        ("boot+typing", m(r"^==> launch")),
        ("to SSH", m(r"^==> wait for ssh")),
        ("guest sync", save if save else prov),
        ("cache save", synced if synced else save if save else prov),
        ("provision", prov),
        ("shutdown", m(r"^==> shutdown")),
        ("export", m(r"^==> export")),
        ("cleanup", m(r"^==> cleanup")),
    ]
    answered = m(r"^SSH server answered on ")
    # "(1.20 s after this connection was opened)": the guest's time to send the banner.
    waited = next(float(x.group(1)) for ts, text in _lines(log) if ts == answered
                  for x in [re.search(r"\(([0-9.]+) s after this connection was opened\)", text)] if x)
    ssh = {"reached": answered - waited, "answered": answered, "connected": m(r"^connected to ")}
    ph = _phases(marks, t0, t1)
    ph["cached"] = _maybe(log, r"install cache: hit ") is not None
    return ph, ssh


def packer_phases(log, t0, t1):
    m = lambda p: _first(log, p)
    marks = [
        ("prepare", t0),
        ("boot+typing", m(r"Starting VM, booting")),
        ("to SSH", m(r"Waiting for SSH to become available")),
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


from buildreport import report  # noqa: E402  (the report lives in its own file)


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

#!/usr/bin/env python3
"""End-to-end smoke test of the hermetic test OS with raw QEMU (no osimager, no Packer).

Starts QEMU (TCG) with the installer ISO, a blank qcow2 disk, restricted user networking
(guestfwd to a loopback HTTP server, hostfwd for SSH), a QMP socket and the serial console
in a file; serves the answer file and rootfs with `python3 -m http.server`; types the boot
command through QMP send-key; waits for the install, the reboot and sshd; logs in with the
password over SSH (OpenSSH + SSH_ASKPASS, no extra package), runs checks and `sudo poweroff`
and waits for QEMU to exit. Prints the wall time of every phase.

Usage: tests/testos/smoke.py [--cache DIR] [--keep] [--rootfs http|cdrom] [--reboot]
Stdlib only. Exit status 0 = success.
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
USER = "testos"
PASSWORD = "testos-Pass1"
HOSTNAME = "smoke"

# US-layout QKeyCode for each printable character (shifted ones get "shift").
_PLAIN = {" ": "spc", "-": "minus", "=": "equal", "[": "bracket_left", "]": "bracket_right",
          "\\": "backslash", ";": "semicolon", "'": "apostrophe", "`": "grave_accent",
          ",": "comma", ".": "dot", "/": "slash"}
_SHIFTED = {"!": "1", "@": "2", "#": "3", "$": "4", "%": "5", "^": "6", "&": "7", "*": "8",
            "(": "9", ")": "0", "_": "minus", "+": "equal", "{": "bracket_left",
            "}": "bracket_right", "|": "backslash", ":": "semicolon", '"': "apostrophe",
            "~": "grave_accent", "<": "comma", ">": "dot", "?": "slash"}


def qcodes(ch):
    if ch.isascii() and (ch.islower() or ch.isdigit()):
        return [ch]
    if ch.isascii() and ch.isupper():
        return ["shift", ch.lower()]
    if ch in _PLAIN:
        return [_PLAIN[ch]]
    if ch in _SHIFTED:
        return ["shift", _SHIFTED[ch]]
    if ch == "\n":
        return ["ret"]
    raise ValueError(f"no key for {ch!r}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Qmp:
    def __init__(self, path, deadline):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                if time.time() > deadline:
                    raise
                time.sleep(0.1)
        self.f = self.sock.makefile("rw")
        self.events = []
        json.loads(self.f.readline())  # greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.f.write(json.dumps({"execute": name, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            msg = json.loads(self.f.readline())
            if "event" in msg:
                self.events.append(msg)
                continue
            if "error" in msg:
                raise RuntimeError(f"QMP {name}: {msg['error']}")
            return msg.get("return")

    def type_text(self, text, interval=0.05):
        for ch in text:
            keys = [{"type": "qcode", "data": k} for k in qcodes(ch)]
            self.cmd("send-key", keys=keys)
            time.sleep(interval)


def wait_serial(path, needle, timeout, proc, start=0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path, "rb") as f:
                f.seek(start)
                if needle.encode() in f.read():
                    return True
        except FileNotFoundError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"QEMU exited early (status {proc.returncode})")
        time.sleep(0.5)
    raise TimeoutError(f"'{needle}' not seen on the serial console within {timeout}s")


def timestamp_serial(path, out_path, t0, stop):
    """Copy the serial log to out_path, each line prefixed with seconds since t0."""
    pos, buf = 0, b""
    with open(out_path, "w") as out:
        while not stop.is_set():
            try:
                with open(path, "rb") as f:
                    f.seek(pos)
                    data = f.read()
            except FileNotFoundError:
                data = b""
            pos += len(data)
            buf += data
            *lines, buf = buf.split(b"\n")
            for line in lines:
                out.write(f"{time.time() - t0:7.1f} {line.decode(errors='replace').rstrip()}\n")
            out.flush()
            time.sleep(0.2)


def ssh_banner(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=3) as s:
            return s.recv(64).startswith(b"SSH-")
    except OSError:
        return False


def ssh(port, askpass, command):
    env = dict(os.environ, SSH_ASKPASS=askpass, SSH_ASKPASS_REQUIRE="force", DISPLAY=":0")
    args = ["ssh", "-p", str(port), "-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
            "-o", "PubkeyAuthentication=no", "-o", "ConnectTimeout=20",
            "-o", "PreferredAuthentications=password,keyboard-interactive",
            f"{USER}@127.0.0.1", command]
    return subprocess.run(args, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=120, start_new_session=True)


def render_answers(template, defs):
    out = template
    for k, v in defs.items():
        out = out.replace(f">>{k}<<", v)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", default=os.environ.get(
        "OSIMAGER_TESTOS_CACHE", os.path.expanduser("~/.cache/osimager-testos")))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--rootfs", choices=["http", "cdrom"], default="http")
    ap.add_argument("--reboot", action="store_true",
                    help="also test `sudo reboot` of the installed system")
    ap.add_argument("--cpus", default="1")
    ap.add_argument("--memory", default="512")
    args = ap.parse_args()

    media = os.path.join(args.cache, "current")
    iso = os.path.join(media, "testos.iso")
    if not os.path.exists(iso):
        sys.exit(f"smoke: {iso} missing: run tests/testos/build-media.sh --cache {args.cache}")
    work = tempfile.mkdtemp(prefix="testos-smoke.")
    httpdir = os.path.join(work, "http")
    os.mkdir(httpdir)
    os.symlink(os.path.join(os.path.realpath(media), "rootfs.tar.lzo"),
               os.path.join(httpdir, "rootfs.tar.lzo"))
    with open(os.path.join(REPO, "files", "testos", "testos.cfg")) as f:
        template = f.read()
    answers = render_answers(template, {
        "name": HOSTNAME, "testos_username": USER, "testos_password": PASSWORD,
        "testos_rootfs": "rootfs.tar.lzo" if args.rootfs == "http" else "cdrom",
        "testos_disk": "/dev/vda"})
    with open(os.path.join(httpdir, "testos.cfg"), "w") as f:
        f.write(answers)
    askpass = os.path.join(work, "askpass.sh")
    with open(askpass, "w") as f:
        f.write(f"#!/bin/sh\necho '{PASSWORD}'\n")
    os.chmod(askpass, 0o700)

    http_port, ssh_port = free_port(), free_port()
    disk = os.path.join(work, "disk.qcow2")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", disk, "2048M"], check=True)
    serial = os.path.join(work, "serial.log")
    qmp_path = os.path.join(work, "qmp.sock")
    netdev = (f"user,id=user.0,restrict=on,host=10.0.2.254,"
              f"hostfwd=tcp:127.0.0.1:{ssh_port}-:22,"
              f"guestfwd=tcp:10.0.2.2:{http_port}-cmd:socat STDIO TCP:127.0.0.1:{http_port}")
    qemu_cmd = ["qemu-system-x86_64", "-accel", "tcg", "-machine", "pc", "-m", args.memory,
                "-smp", args.cpus, "-display", "none", "-vga", "std",
                "-serial", f"file:{serial}", "-qmp", f"unix:{qmp_path},server=on,wait=off",
                "-drive", f"file={disk},if=virtio,format=qcow2,cache=unsafe",
                "-cdrom", iso, "-boot", "once=d",
                "-netdev", netdev, "-device", "virtio-net,netdev=user.0"]
    boot_command = f"install url=http://10.0.2.2:{http_port}/testos.cfg\n"

    times = {}
    t0 = time.time()
    mark = [t0]

    def phase(name):
        now = time.time()
        times[name] = now - mark[0]
        mark[0] = now
        print(f"smoke: {name}: {times[name]:.1f}s", flush=True)

    http = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1",
                             "--directory", httpdir, str(http_port)],
                            stdout=open(os.path.join(work, "http.log"), "w"),
                            stderr=subprocess.STDOUT)
    qemu = subprocess.Popen(qemu_cmd, stdout=open(os.path.join(work, "qemu.log"), "w"),
                            stderr=subprocess.STDOUT)
    ok = False
    stop = threading.Event()
    threading.Thread(target=timestamp_serial, daemon=True,
                     args=(serial, os.path.join(work, "serial-timed.log"), t0, stop)).start()
    try:
        print(f"smoke: work dir {work}; http :{http_port} ssh :{ssh_port}", flush=True)
        qmp = Qmp(qmp_path, time.time() + 10)
        wait_serial(serial, "boot:", 120, qemu)
        phase("bootloader prompt")
        qmp.type_text(boot_command)
        wait_serial(serial, boot_command.strip(), 30, qemu)
        phase("boot command typed (echoed on serial)")
        wait_serial(serial, "testos: installation complete", 600, qemu)
        phase("install")
        size = os.path.getsize(serial)
        while not ssh_banner(ssh_port):
            if qemu.poll() is not None:
                raise RuntimeError("QEMU exited before sshd came up")
            if time.time() - mark[0] > 300:
                raise TimeoutError("sshd not up within 300s after the install")
            time.sleep(1)
        phase("reboot until sshd answers")
        r = ssh(ssh_port, askpass, "hostname; id -un; sudo -n id -un; python3 -c 'print(6*7)';"
                " df -m / | tail -1; cat /proc/cmdline")
        print(r.stdout, r.stderr, sep="")
        lines = r.stdout.split()
        if r.returncode != 0 or lines[:4] != [HOSTNAME, USER, "root", "42"]:
            raise RuntimeError(f"ssh checks failed (status {r.returncode})")
        phase("ssh password login + sudo + python3")
        # restrict=on: only the guestfwd port (HTTP) is reachable; the host alias and
        # other ports on 10.0.2.2 are not (only QEMU-internal addresses are probed).
        probe = ("import socket,sys\n"
                 "def ok(h,p):\n"
                 "    try: socket.create_connection((h,p),3).close(); return 'open'\n"
                 "    except OSError: return 'blocked'\n"
                 f"print(ok('10.0.2.2',{http_port}), ok('10.0.2.2',{ssh_port}),"
                 f" ok('10.0.2.254',{http_port}), ok('10.0.2.254',22))\n")
        r = ssh(ssh_port, askpass, f"python3 -c \"{probe}\"")
        print(f"smoke: guest network probe (guestfwd, 10.0.2.2:ssh, host alias x2): "
              f"{r.stdout.strip()}", flush=True)
        if r.stdout.split() != ["open", "blocked", "blocked", "blocked"]:
            raise RuntimeError(f"guest network is not restricted as expected: {r.stdout!r} {r.stderr!r}")
        phase("network restriction probe")
        if args.reboot:
            ssh(ssh_port, askpass, "sudo reboot")
            wait_serial(serial, "testos: shutting down (reboot)", 120, qemu)
            size = os.path.getsize(serial)
            wait_serial(serial, "Starting OpenBSD Secure Shell server", 300, qemu, size)
            while not ssh_banner(ssh_port):
                if time.time() - mark[0] > 300:
                    raise TimeoutError("sshd not up within 300s after sudo reboot")
                time.sleep(1)
            r = ssh(ssh_port, askpass, "cat /etc/hostname")
            if r.stdout.strip() != HOSTNAME:
                raise RuntimeError(f"ssh after reboot failed: {r.stdout!r} {r.stderr!r}")
            phase("sudo reboot until sshd answers again")
        ssh(ssh_port, askpass, "sudo poweroff")
        qemu.wait(timeout=120)
        phase("sudo poweroff until QEMU exits")
        ok = True
    except Exception as e:  # report and clean up
        print(f"smoke: FAILED: {e}", file=sys.stderr)
        print(f"smoke: serial console tail ({serial}):", file=sys.stderr)
        try:
            with open(serial, "rb") as f:
                sys.stderr.write(f.read()[-3000:].decode(errors="replace") + "\n")
        except OSError:
            pass
    finally:
        stop.set()
        for p in (qemu, http):
            if p.poll() is None:
                p.kill()
                p.wait()
    total = time.time() - t0
    print(f"smoke: total {total:.1f}s; " + json.dumps({k: round(v, 1) for k, v in times.items()}))
    if ok and not args.keep:
        shutil.rmtree(work)
    elif not ok or args.keep:
        print(f"smoke: kept {work}")
    print("smoke: PASS" if ok else "smoke: FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

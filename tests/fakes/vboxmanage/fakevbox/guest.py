"""What runs while a fake VM is "running".

guest "none" (default): a small background process stands for the VM. It holds the NAT
forwards' host ports (so a taken port really fails, as with VirtualBox, which then only notes
`NAT: Failed to redirect TCP …` in VBox.log), powers off on the ACPI button (unless the fault
`acpi` is "ignore") and exits when powered off.

guest "qemu": the VM is a real QEMU (TCG) guest built from the VM's settings: disks and DVDs on
QEMU's matching controllers (hard disks on virtio-blk with `qemu.disk_bus: "virtio"`, for test
guests whose initrd only has virtio drivers), the NIC model, NAT as user networking restricted
to the host's loopback (rules become `hostfwd`; the host's loopback at 10.0.2.2 is reachable on
`qemu.loopback_ports` — on 7.x only with `--nat-localhostreachable1 on`, as in VirtualBox),
COM1 in file mode as `-serial file:`, and control through QMP.
"""
import json
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import time
import zlib

SELF = os.path.join(os.path.dirname(os.path.dirname(os.path.realpath(__file__))), "VBoxManage")


def log_line(vm, text):
    """Append a line to the VM's VBox.log with VirtualBox's relative timestamp format."""
    path = os.path.join(vm["dir"], "Logs", "VBox.log")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    t0 = vm.get("started_at", time.time())
    dt = max(0.0, time.time() - t0)
    h, rem = divmod(dt, 3600)
    m, s = divmod(rem, 60)
    with open(path, "a") as f:
        f.write(f"{int(h):02d}:{int(m):02d}:{s:09.6f} {text}\n")


def tcp_rules(vm, nic=1):
    """NAT rules of NIC `nic` as (name, host_ip, host_port, guest_port) for TCP."""
    out = []
    for r in vm["settings"].get(f"natpf{nic}", []):
        name, proto, hip, hport, _gip, gport = r.split(",")
        if proto.lower() == "tcp":
            out.append((name, hip or "127.0.0.1", int(hport), int(gport)))
    return out


def bindable(ip, port):
    s = socket.socket()
    try:
        s.bind((ip, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def spawn(args):
    """Start a detached helper (this script in a hidden mode)."""
    return subprocess.Popen(
        [sys.executable, SELF] + args,
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True, close_fds=True,
    ).pid


def wait_file(path, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if os.path.exists(path):
            return True
        time.sleep(0.02)
    return False


# -- the paper VM (guest "none") ------------------------------------------------------------
def paper_vm_main(home, uuid):
    """`VBoxManage --fake-vm-process HOME UUID`: the stand-in VM process."""
    flags = {"acpi": False, "reload": True, "stop": False}
    signal.signal(signal.SIGTERM, lambda *_: flags.__setitem__("stop", True))
    signal.signal(signal.SIGUSR1, lambda *_: flags.__setitem__("acpi", True))
    signal.signal(signal.SIGHUP, lambda *_: flags.__setitem__("reload", True))
    listeners = {}
    ready = None
    deadline = time.time() + 3600
    # Gone with its home (a test's scratch directory removed): nothing to stand for any more.
    while not flags["stop"] and time.time() < deadline and os.path.isdir(home):
        if flags["reload"]:
            flags["reload"] = False
            try:
                with open(os.path.join(home, "fake-state.json")) as f:
                    vm = json.load(f)["vms"][uuid]
            except (OSError, KeyError, ValueError):
                break
            want = {(ip, hp): gp for _n, ip, hp, gp in tcp_rules(vm)}
            for key in list(listeners):
                if key not in want:
                    listeners.pop(key).close()
            for (ip, hp), gp in want.items():
                if (ip, hp) in listeners:
                    continue
                s = socket.socket()
                try:
                    s.bind((ip, hp))
                    s.listen(8)
                    listeners[(ip, hp)] = s
                except OSError as e:
                    s.close()
                    log_line(vm, f"NAT: Failed to redirect TCP {ip}:{hp} -> 0.0.0.0:{gp} ({e.strerror})")
            if ready is None:
                ready = os.path.join(vm["dir"], "Logs", ".fake-ready")
                open(ready, "w").close()
        if flags["acpi"]:
            flags["acpi"] = False
            try:
                with open(os.path.join(home, "fake.json")) as f:
                    mode = json.load(f).get("faults", {}).get("acpi", "poweroff")
            except (OSError, ValueError):
                mode = "poweroff"
            if mode != "ignore":
                time.sleep(0.3)
                break
        socks = list(listeners.values())
        r, _, _ = select.select(socks, [], [], 0.1) if socks else ([], [], time.sleep(0.1))
        for s in r or []:
            try:
                c, _ = s.accept()
                c.close()
            except OSError:
                pass
    for s in listeners.values():
        s.close()


def squatter_main(port, home):
    """`VBoxManage --fake-squatter PORT UUID`: another program holding a port (the race)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(8)
    end = time.time() + 600
    while time.time() < end and os.path.isdir(home):
        r, _, _ = select.select([s], [], [], 0.5)
        if r:
            c, _ = s.accept()
            c.close()


def tiny_png(path):
    """A valid 1x1 PNG (what a screenshot of a paper VM looks like)."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(b"\x00\x00")) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


# -- QMP ------------------------------------------------------------------------------------
class Qmp:
    def __init__(self, path, timeout=30):
        end = time.time() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.time() > end:
                    raise
                time.sleep(0.05)
        self.buf = b""
        self._read()  # greeting
        self.execute("qmp_capabilities")

    def _read(self):
        while b"\n" not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise OSError("QMP closed")
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def execute(self, cmd, args=None):
        msg = {"execute": cmd}
        if args is not None:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            r = self._read()
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise OSError(r["error"].get("desc", "QMP error"))

    def hmp(self, line):
        return self.execute("human-monitor-command", {"command-line": line})

    def close(self):
        self.sock.close()


def vcpu_stats(pid):
    """schedstat files of QEMU's vCPU threads (named `CPU n/TCG` with debug-threads=on)."""
    out = []
    try:
        for t in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{t}/comm") as f:
                    if f.read().startswith("CPU "):
                        out.append(f"/proc/{pid}/task/{t}/schedstat")
            except OSError:
                pass
    except OSError:
        pass
    return out


def run_time(paths):
    vals = []
    for p in paths:
        try:
            with open(p) as f:
                vals.append(int(f.read().split()[0]))
        except (OSError, ValueError, IndexError):
            vals.append(None)
    return vals


def deliver_scancodes(vm, codes):
    """Type set-1 scancodes into the QEMU guest, one key event at a time, each followed by a
    wait until the guest's vCPU has run (its PS/2 queue holds only 16 bytes)."""
    q = Qmp(vm["qmp"])
    stats = vcpu_stats(vm["pid"])
    try:
        ext = False
        for c in codes:
            if c == 0xE0:
                ext = True
                continue
            key = (c & 0x7F) | (0x80 if ext else 0)
            ext = False
            before = run_time(stats)
            q.execute("input-send-event", {"events": [{"type": "key", "data": {
                "down": not (c & 0x80), "key": {"type": "number", "data": key}}}]})
            end = time.time() + 2
            while stats and time.time() < end:
                now = run_time(stats)
                if any(n is not None and b is not None and n > b for n, b in zip(now, before)):
                    break
                time.sleep(0.001)
            time.sleep(0.005)
    finally:
        q.close()

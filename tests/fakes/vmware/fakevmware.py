#!/usr/bin/env python3
"""FAKE VMware Workstation for osimager's tests. THIS IS NOT VMWARE.

VMware Workstation cannot be installed on the test machines, so this stand-in plays its
parts that osimager's VMware driver talks to: the VM process (`vmware-vmx`), the host's
vmnet networking files, and — through the `vmrest` and `vmrun` executables next to this
file — VMware's REST API and command-line tool. A VM powered on here runs as a real QEMU
guest (TCG) built from its .vmx, with QEMU's real VNC server where VMware's would be, so the
driver's .vmx, VNC typing, networking and disks meet something real. What follows published
VMware behaviour and what is this stand-in's own choice is listed in README.md here.

Standard library only (Python 3.9+). Environment:
  FAKE_VMWARE_STATE        required: directory for running VMs and DHCP state
  FAKE_VMWARE_ETC          VMware's network configuration tree (default STATE/etc); point the
                           driver's OSIMAGER_VMWARE_CONFIG_DIR at the same directory
  FAKE_VMWARE_HOST_PORTS   host loopback ports the guest may reach at 10.0.2.2, "8100-8109,9000"
  FAKE_VMWARE_GUEST_PORTS  guest ports published at the guest's address, "22" or "2222:22"
                           (HOSTPORT:GUESTPORT; binding port 22 needs root)
  FAKE_VMWARE_TOOLS=1      pretend VMware Tools run in the guest (guest IP queries answer)
  FAKE_VMWARE_QEMU         QEMU binary (qemu-system-x86_64)
"""

import fcntl
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
QEMU = os.environ.get("FAKE_VMWARE_QEMU", "qemu-system-x86_64")
# The NAT network's host side is the host's loopback (QEMU user networking): its device in
# netmap.conf is therefore `lo`, and guests see the host at 10.0.2.2.
NAT_DEVICE = "lo"
GUEST_SIDE_HOST_IP = "10.0.2.2"


class VmError(Exception):
    """An operation failed; `kind` tells vmrest which status and Code to answer."""

    def __init__(self, kind, message):
        super().__init__(message)
        self.kind = kind
        self.message = message


def state_dir():
    d = os.environ.get("FAKE_VMWARE_STATE")
    if not d:
        sys.stderr.write("FAKE VMware: set FAKE_VMWARE_STATE to a directory\n")
        sys.exit(2)
    os.makedirs(os.path.join(d, "running"), exist_ok=True)
    return d


def etc_dir():
    return os.environ.get("FAKE_VMWARE_ETC") or os.path.join(state_dir(), "etc")


def subnet():
    """127.A.B.0/24, A.B from the state directory, so parallel fakes do not collide."""
    h = hashlib.sha1(os.path.abspath(state_dir()).encode()).digest()
    return "127.%d.%d" % (100 + h[0] % 100, h[1] % 250 + 1)


def ensure_etc():
    """The installation's network files (netmap.conf, NAT DHCP configuration)."""
    etc = etc_dir()
    dhcp = os.path.join(etc, NAT_DEVICE, "dhcpd")
    os.makedirs(dhcp, exist_ok=True)
    netmap = os.path.join(etc, "netmap.conf")
    if not os.path.exists(netmap):
        with open(netmap, "w") as f:
            f.write(
                "# FAKE VMware (osimager tests): the NAT network is QEMU user networking,\n"
                "# whose host side is the host's loopback.\n"
                'network0.name = "Bridged"\nnetwork0.device = "vmnet0"\n'
                'network1.name = "HostOnly"\nnetwork1.device = "vmnet1"\n'
                'network8.name = "NAT"\nnetwork8.device = "%s"\n' % NAT_DEVICE
            )
    conf = os.path.join(dhcp, "dhcpd.conf")
    if not os.path.exists(conf):
        net = subnet()
        with open(conf, "w") as f:
            f.write(
                "# FAKE VMware (osimager tests). Guests get %s.x addresses (loopback\n"
                "# addresses on this host, where the guest's published ports are); they reach\n"
                "# the host at %s (QEMU user networking), the host-side interface is lo.\n"
                "allow unknown-clients;\ndefault-lease-time 1800;\nmax-lease-time 7200;\n"
                "subnet %s.0 netmask 255.255.255.0 {\n"
                "\trange %s.10 %s.250;\n\toption routers %s;\n}\n"
                "host %s {\n\thardware ethernet 00:50:56:C0:00:08;\n"
                "\tfixed-address %s;\n\toption domain-name \"localdomain\";\n}\n"
                % (net, GUEST_SIDE_HOST_IP, net, net, net, GUEST_SIDE_HOST_IP, NAT_DEVICE,
                   GUEST_SIDE_HOST_IP)
            )
    leases = os.path.join(dhcp, "dhcpd.leases")
    if not os.path.exists(leases):
        open(leases, "w").close()
    return etc


# --- .vmx ---------------------------------------------------------------------------------

LINE = re.compile(r'^\s*([^#=\s][^=]*?)\s*=\s*"?(.*?)"?\s*$')


def read_vmx(path):
    """key (lower case) -> value."""
    out = {}
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            m = LINE.match(line)
            if m:
                out[m.group(1).lower()] = m.group(2)
    return out


def update_vmx(path, updates):
    """Set keys in place (VMware rewrites the .vmx at power-on, e.g. the generated MAC)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        lines = f.read().splitlines()
    done = set()
    for i, line in enumerate(lines):
        m = LINE.match(line)
        if m and m.group(1).lower() in updates:
            k = m.group(1)
            lines[i] = '%s = "%s"' % (k, updates[k.lower()])
            done.add(k.lower())
    for k, v in updates.items():
        if k not in done:
            lines.append('%s = "%s"' % (k, v))
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def vm_id(vmx):
    """A vmrest-style id: 32 characters of base32 derived from the path."""
    import base64

    h = hashlib.sha1(os.path.abspath(vmx).encode()).digest()
    return base64.b32encode(h).decode()[:32]


def mac_for(vmx):
    h = hashlib.sha1(("mac:" + os.path.abspath(vmx)).encode()).digest()
    return "00:0c:29:%02x:%02x:%02x" % (h[0], h[1], h[2])


def truthy(v):
    return str(v).strip().lower() in ("true", "1", "yes")


# --- running VMs ----------------------------------------------------------------------------

def record_path(vmx):
    return os.path.join(state_dir(), "running", vm_id(vmx) + ".json")


def alive(pid):
    """A running process (an exited child nobody has reaped yet — a zombie — is not)."""
    try:
        os.kill(pid, 0)
    except (OSError, TypeError):
        return False
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def running_record(vmx):
    try:
        with open(record_path(vmx)) as f:
            rec = json.load(f)
    except (OSError, ValueError):
        return None
    return rec if alive(rec.get("runner_pid")) else None


def running_vms():
    out = []
    d = os.path.join(state_dir(), "running")
    for n in sorted(os.listdir(d)):
        try:
            with open(os.path.join(d, n)) as f:
                rec = json.load(f)
        except (OSError, ValueError):
            continue
        if alive(rec.get("runner_pid")):
            out.append(rec)
    return out


def lock_dir(vmx):
    return os.path.abspath(vmx) + ".lck"


def check_vmx(vmx):
    if not vmx.lower().endswith(".vmx") or not os.path.isfile(vmx):
        raise VmError("notfound", "Cannot open VM: %s, The virtual machine cannot be found" % vmx)


def power_on(vmx, headless=True):
    check_vmx(vmx)
    vmx = os.path.abspath(vmx)
    if running_record(vmx):
        raise VmError("state", "The virtual machine is already powered on: %s" % vmx)
    if os.path.exists(lock_dir(vmx)):
        raise VmError(
            "locked",
            "The virtual machine is locked: %s is in use by another process (lock %s)"
            % (vmx, lock_dir(vmx)),
        )
    log = os.path.join(os.path.dirname(vmx), "vmware.log")
    with open(log, "ab") as out:
        p = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "fakevmware.py"), "run", vmx],
            stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True,
        )
    # Reap the VM process when it ends (a long-lived vmrest would collect zombies otherwise).
    import threading
    threading.Thread(target=p.wait, daemon=True).start()
    end = time.time() + 60
    while time.time() < end:
        if running_record(vmx):
            return
        if p.returncode is not None or not alive(p.pid):
            tail = open(log, errors="replace").read().splitlines()[-5:]
            raise VmError("failed", "Failed to power on %s: %s" % (vmx, " | ".join(tail)))
        time.sleep(0.1)
    raise VmError("failed", "Failed to power on %s: timed out" % vmx)


def qmp(path, *commands):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    f = s.makefile("rw")
    f.readline()
    answers = []
    for cmd in (("qmp_capabilities", None),) + commands:
        name, args = cmd
        msg = {"execute": name}
        if args is not None:
            msg["arguments"] = args
        f.write(json.dumps(msg) + "\n")
        f.flush()
        while True:
            line = f.readline()
            if not line:
                raise OSError("QMP closed")
            r = json.loads(line)
            if "return" in r or "error" in r:
                answers.append(r)
                break
    s.close()
    return answers[1:]


def power_off(vmx, hard):
    vmx = os.path.abspath(vmx)
    rec = running_record(vmx)
    if not rec:
        raise VmError("state", "The virtual machine is not powered on: %s" % vmx)
    try:
        qmp(rec["qmp"], ("quit" if hard else "system_powerdown", None))
    except OSError:
        pass
    if hard:
        end = time.time() + 30
        while time.time() < end and running_record(vmx):
            time.sleep(0.1)


def guest_ip(vmx):
    vmx = os.path.abspath(vmx)
    rec = running_record(vmx)
    if not rec:
        raise VmError("state", "The virtual machine is not powered on: %s" % vmx)
    if os.environ.get("FAKE_VMWARE_TOOLS") != "1":
        raise VmError("tools", "The VMware Tools are not running in the virtual machine: %s" % vmx)
    return rec["ip"]


def delete_files(vmx):
    """What deleting a VM removes: its .vmx, disks (and extents), nvram, vmxf, vmsd, logs."""
    vmx = os.path.abspath(vmx)
    d = os.path.dirname(vmx)
    v = read_vmx(vmx)
    names = {os.path.basename(vmx)}
    for k, val in v.items():
        if k.endswith(".filename") and val.lower().endswith(".vmdk"):
            names.add(os.path.basename(val))
    for k in ("nvram", "extendedconfigfile"):
        if v.get(k):
            names.add(os.path.basename(v[k]))
    stems = [n[:-5] for n in names if n.lower().endswith(".vmdk")]
    for n in os.listdir(d):
        p = os.path.join(d, n)
        extent = any(re.fullmatch(re.escape(s) + r"-(s\d{3}|f\d{3}|flat)\.vmdk", n) for s in stems)
        if n in names or extent or n.startswith("vmware") and n.endswith(".log") \
                or n.endswith(".vmsd"):
            os.remove(p)


# --- DHCP -------------------------------------------------------------------------------------

def allocate_ip(mac):
    path = os.path.join(state_dir(), "dhcp.json")
    with open(path + ".lock", "w") as lk:
        fcntl.flock(lk, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                table = json.load(f)
        except (OSError, ValueError):
            table = {}
        if mac not in table:
            used = set(table.values())
            net = subnet()
            table[mac] = next("%s.%d" % (net, n) for n in range(10, 251)
                              if "%s.%d" % (net, n) not in used)
            with open(path, "w") as f:
                json.dump(table, f)
        return table[mac]


def write_lease(ip, mac):
    """An ISC dhcpd lease, as vmnet-dhcpd writes one (times in UTC)."""
    leases = os.path.join(ensure_etc(), NAT_DEVICE, "dhcpd", "dhcpd.leases")
    fmt = lambda t: time.strftime("%w %Y/%m/%d %H:%M:%S", time.gmtime(t))
    now = time.time()
    with open(leases, "a") as f:
        f.write(
            "lease %s {\n\tstarts %s;\n\tends %s;\n\thardware ethernet %s;\n"
            "\tclient-hostname \"fake-guest\";\n}\n" % (ip, fmt(now), fmt(now + 1800), mac)
        )


def port_list(spec):
    out = []
    for part in (spec or "").split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            a, b = part.split("-", 1)
            out.extend(range(int(a), int(b) + 1))
        else:
            out.append(part)
    return out


# --- the VM process ---------------------------------------------------------------------------

NIC_MODELS = {"vmxnet3": "vmxnet3", "e1000": "e1000", "e1000e": "e1000e"}
DEV = re.compile(r"^(ide|scsi|sata|nvme)(\d+):(\d+)\.present$")


def qemu_argv(vmx, v, qmp_path, ip, mac):
    d = os.path.dirname(vmx)
    absolute = lambda p: p if os.path.isabs(p) else os.path.join(d, p)
    argv = [QEMU, "-accel", "tcg", "-machine", "pc", "-name", v.get("displayname", "vm"),
            "-m", v.get("memsize") or "512", "-smp", v.get("numvcpus") or "1",
            "-display", "none", "-no-user-config", "-nodefaults", "-vga", "std",
            "-qmp", "unix:%s,server=on,wait=off" % qmp_path]
    if v.get("firmware", "bios").lower() == "efi":
        argv += ["-bios", "/usr/share/ovmf/OVMF.fd"]
    if truthy(v.get("remotedisplay.vnc.enabled", "FALSE")):
        port = int(v.get("remotedisplay.vnc.port", "5900"))
        if port < 5900:
            raise VmError("failed", "RemoteDisplay.vnc.port %d is below 5900" % port)
        opt = "%s:%d" % (v.get("remotedisplay.vnc.ip", "127.0.0.1"), port - 5900)
        if v.get("remotedisplay.vnc.password"):
            opt += ",password=on"
        argv += ["-vnc", opt]
    disks, cdroms = [], []
    for k in sorted(v):
        m = DEV.match(k)
        if not m or not truthy(v[k]):
            continue
        dev = k[: -len(".present")]
        name = v.get(dev + ".filename", "")
        kind = v.get(dev + ".devicetype", "")
        if kind.startswith("cdrom"):
            if kind == "cdrom-image" and name:
                cdroms.append(absolute(name))
        elif name:
            disks.append(absolute(name))
    order = [c.strip() for c in v.get("bios.bootorder", "hdd,cdrom").lower().split(",")]
    boot = {c: i + 1 for i, c in enumerate(order)}
    # Every disk becomes virtio-blk whatever its VMware bus (see README.md: the test OS only
    # has virtio disk drivers); CD-ROMs are IDE.
    for i, path in enumerate(disks):
        argv += ["-drive", "file=%s,format=vmdk,if=none,id=disk%d,cache=writeback" % (path, i)]
        dev = "virtio-blk-pci,drive=disk%d" % i
        if i == 0 and "hdd" in boot:
            dev += ",bootindex=%d" % boot["hdd"]
        argv += ["-device", dev]
    for i, path in enumerate(cdroms):
        argv += ["-drive", "file=%s,format=raw,if=none,id=cd%d,media=cdrom,readonly=on" % (path, i)]
        dev = "ide-cd,drive=cd%d,bus=ide.%d,unit=0" % (i, i % 2)
        if i == 0 and "cdrom" in boot:
            dev += ",bootindex=%d" % boot["cdrom"]
        argv += ["-device", dev]
    if truthy(v.get("ethernet0.present", "FALSE")):
        netdev = "user,id=net0,restrict=on,host=10.0.2.254"
        for spec in port_list(os.environ.get("FAKE_VMWARE_GUEST_PORTS", "22")):
            hp, _, gp = str(spec).partition(":")
            netdev += ",hostfwd=tcp:%s:%s-:%s" % (ip, hp, gp or hp)
        for p in port_list(os.environ.get("FAKE_VMWARE_HOST_PORTS", "")):
            netdev += ",guestfwd=tcp:%s:%s-cmd:socat STDIO TCP:127.0.0.1:%s" % (
                GUEST_SIDE_HOST_IP, p, p)
        model = NIC_MODELS.get(v.get("ethernet0.virtualdev", "e1000").lower(), "e1000")
        argv += ["-netdev", netdev, "-device", "%s,netdev=net0,mac=%s" % (model, mac)]
    if truthy(v.get("serial0.present", "FALSE")) and v.get("serial0.filetype") == "file" \
            and v.get("serial0.filename"):
        argv += ["-chardev", "file,id=ser0,path=%s" % absolute(v["serial0.filename"]),
                 "-serial", "chardev:ser0"]
    return argv


def run_vm(vmx):
    """The VM process (VMware's vmware-vmx): hold the locks, run QEMU, clean up after it."""
    vmx = os.path.abspath(vmx)
    ensure_etc()
    v = read_vmx(vmx)
    lck = lock_dir(vmx)
    os.mkdir(lck)
    open(os.path.join(lck, "M%d.lck" % os.getpid()), "w").close()
    mac = v.get("ethernet0.address") or mac_for(vmx)
    if v.get("ethernet0.addresstype", "generated") == "generated":
        update_vmx(vmx, {"ethernet0.generatedaddress": mac, "ethernet0.generatedaddressoffset": "0"})
    ip = allocate_ip(mac)
    disk_locks = []
    for k, name in read_vmx(vmx).items():
        if k.endswith(".filename") and name.lower().endswith(".vmdk"):
            p = name if os.path.isabs(name) else os.path.join(os.path.dirname(vmx), name)
            os.makedirs(p + ".lck", exist_ok=True)
            disk_locks.append(p + ".lck")
    qmp_path = os.path.join(state_dir(), "running", vm_id(vmx) + ".qmp")
    child = None

    def cleanup(*_):
        if child and child.poll() is None:
            try:
                qmp(qmp_path, ("quit", None))
            except OSError:
                child.kill()
            child.wait()
        for p in (record_path(vmx), qmp_path):
            if os.path.exists(p):
                os.remove(p)
        for p in disk_locks:
            subprocess.call(["rm", "-rf", p])
        # VMware drops the disk locks before the .vmx lock.
        time.sleep(0.5)
        subprocess.call(["rm", "-rf", lck])
        sys.exit(0)

    signal.signal(signal.SIGTERM, cleanup)
    try:
        argv = qemu_argv(vmx, v, qmp_path, ip, mac)
        print("FAKE vmware-vmx: %s" % " ".join(argv), flush=True)
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL)
        end = time.time() + 30
        while not os.path.exists(qmp_path):
            if child.poll() is not None or time.time() > end:
                raise VmError("failed", "QEMU did not start (exit %s)" % child.poll())
            time.sleep(0.05)
        password = v.get("remotedisplay.vnc.password")
        if truthy(v.get("remotedisplay.vnc.enabled", "FALSE")) and password:
            qmp(qmp_path, ("set_password", {"protocol": "vnc", "password": password}))
        if truthy(v.get("ethernet0.present", "FALSE")):
            write_lease(ip, mac)
        rec = {"vmx": vmx, "id": vm_id(vmx), "runner_pid": os.getpid(), "qemu_pid": child.pid,
               "qmp": qmp_path, "ip": ip, "mac": mac}
        tmp = record_path(vmx) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(rec, f)
        os.rename(tmp, record_path(vmx))
        child.wait()
    except Exception as e:  # noqa: BLE001 - the runner reports every failure in vmware.log
        print("FAKE vmware-vmx: %s" % e, flush=True)
    cleanup()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run":
        run_vm(sys.argv[2])
    elif len(sys.argv) == 2 and sys.argv[1] == "install":
        print(ensure_etc())
    else:
        sys.stderr.write("usage: fakevmware.py run VMX | install\n")
        sys.exit(2)

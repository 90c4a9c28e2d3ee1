"""The QEMU command line of a fake VM run as a real guest (guest "qemu")."""
import os
import subprocess

from .errors import VBoxError

NIC_MODELS = {
    "82540EM": "e1000", "82543GC": "e1000", "82545EM": "e1000", "virtio": "virtio-net-pci",
    "Am79C970A": "pcnet", "Am79C973": "pcnet", "Am79C960": "pcnet",
}


def loopback_ports(cfg):
    """`qemu.loopback_ports`: a list of ports or "MIN-MAX"."""
    v = cfg.get("loopback_ports", [])
    if isinstance(v, str):
        lo, hi = v.split("-")
        return list(range(int(lo), int(hi) + 1))
    return [int(p) for p in v]


def argv(fake, vm, forwards):
    """QEMU's argv; `forwards` = [(host_ip, host_port, guest_port)] that could be bound."""
    qcfg = fake.config.get("qemu", {})
    s = vm["settings"]
    vmdir = vm["dir"]
    a = [
        qcfg.get("binary", "qemu-system-x86_64"),
        "-name", f"{vm['name']},debug-threads=on",
        "-uuid", vm["uuid"],
        "-machine", f"type={'q35' if s.get('chipset') == 'ich9' else 'pc'},accel={qcfg.get('accel', 'tcg')}",
        "-m", f"{s.get('memory', '128')}M",
        "-smp", str(s.get("cpus", "1")),
        "-display", "none",
        "-no-user-config",
        "-qmp", f"unix:{vm['qmp']},server=on,wait=off",
        "-daemonize", "-pidfile", os.path.join(vmdir, "qemu.pid"),
        "-net", "none",
    ]
    if s.get("firmware", "bios").lower().startswith("efi"):
        a += ["-bios", qcfg.get("ovmf", "/usr/share/ovmf/OVMF.fd")]
    uart = s.get("uart1", "off")
    mode = s.get("uartmode1")
    if uart != "off" and isinstance(mode, list) and mode[0] == "file":
        a += ["-serial", f"file:{mode[1]}"]
    else:
        a += ["-serial", "null"]
    # Boot order: VirtualBox's boot1..4 as bootindex per device class.
    order = [s.get(f"boot{i}", "none") for i in range(1, 5)]
    prio = {"disk": order.index("disk") + 1 if "disk" in order else None,
            "dvd": order.index("dvd") + 1 if "dvd" in order else None}
    added = set()
    for c in vm["controllers"]:
        for slot, att in sorted(vm["attachments"].items()):
            ctl, port, dev = slot.rsplit("-", 2)
            if ctl != c["name"] or att["medium"] == "emptydrive":
                continue
            port, dev = int(port), int(dev)
            did = f"d{len(added)}"
            added.add(did)
            hdd = att["type"] == "hdd"
            fmt = "vdi" if att["medium"].endswith(".vdi") else "raw"
            if hdd:
                a += ["-drive", f"file={att['medium']},format={fmt},if=none,id={did},cache=unsafe"]
            else:
                a += ["-drive", f"file={att['medium']},format=raw,if=none,id={did},media=cdrom,readonly=on"]
            boot = prio["disk" if hdd else "dvd"]
            bi = f",bootindex={boot}" if boot else ""
            if hdd and qcfg.get("disk_bus") == "virtio":
                a += ["-device", f"virtio-blk-pci,drive={did}{bi}"]
                continue
            a += device(c, port, dev, did, hdd, bi, added)
    nic = s.get("nic1", "nat")
    if nic == "nat":
        reach = not fake.is_7x() or s.get("natlocalhostreachable1") == "on"
        net = "user,id=n1,restrict=on,host=10.0.2.254"
        for hip, hport, gport in forwards:
            net += f",hostfwd=tcp:{hip}:{hport}-:{gport}"
        if reach:
            for p in loopback_ports(qcfg):
                net += f",guestfwd=tcp:10.0.2.2:{p}-cmd:socat STDIO TCP:127.0.0.1:{p}"
        mac = vm.get("macaddress1", "080027000001")
        mac = ":".join(mac[i:i + 2] for i in range(0, 12, 2)).lower()
        model = NIC_MODELS.get(s.get("nictype1", "Am79C973"), "e1000")
        a += ["-netdev", net, "-device", f"{model},netdev=n1,mac={mac}"]
    return a


def device(c, port, dev, did, hdd, bi, added):
    """The QEMU device for a drive on VirtualBox controller `c`."""
    kind = c["type"].lower()
    if kind in ("piix3", "piix4", "ich6"):
        return ["-device", f"{'ide-hd' if hdd else 'ide-cd'},drive={did},bus=ide.{port},unit={dev}{bi}"]
    if kind == "intelahci":
        out = []
        if "ahci0" not in added:
            added.add("ahci0")
            out += ["-device", "ahci,id=ahci0"]
        return out + ["-device", f"{'ide-hd' if hdd else 'ide-cd'},drive={did},bus=ahci0.{port}{bi}"]
    if kind == "nvme":
        return ["-device", f"nvme,drive={did},serial=vbox{port}{bi}"]
    bus = "scsi0"
    out = []
    if bus not in added:
        added.add(bus)
        out += ["-device", "virtio-scsi-pci,id=scsi0" if kind == "virtio" else "lsi53c895a,id=scsi0"]
    return out + ["-device", f"{'scsi-hd' if hdd else 'scsi-cd'},drive={did},bus=scsi0.0,scsi-id={port}{bi}"]


def launch(fake, vm, forwards):
    """Start QEMU daemonized; returns its pid."""
    vm["qmp"] = os.path.join(vm["dir"], "qmp.sock")
    pidfile = os.path.join(vm["dir"], "qemu.pid")
    for p in (vm["qmp"], pidfile):
        if os.path.exists(p):
            os.remove(p)
    cmd = argv(fake, vm, forwards)
    with open(os.path.join(vm["dir"], "Logs", "qemu-argv.txt"), "w") as f:
        f.write("\n".join(cmd) + "\n")
    r = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if r.returncode != 0:
        raise VBoxError([
            f"The virtual machine '{vm['name']}' has terminated unexpectedly during startup with "
            f"exit code {r.returncode} ({r.returncode:#x})",
            f"(FAKE: QEMU said: {r.stderr.strip()})",
            "Details: code NS_ERROR_FAILURE (0x80004005), component MachineWrap, interface IMachine",
        ])
    with open(pidfile) as f:
        return int(f.read().strip())

"""`export NAME --output FILE.ovf|FILE.ova`: an OVF descriptor, the hard disks as
stream-optimized VMDKs (`qemu-img convert -O vmdk -o subformat=streamOptimized`, VirtualBox's
export format), a manifest when asked (`--manifest` or `--options manifest`; SHA-1 for OVF 1.0,
SHA-256 for `--ovf20`), and for `.ova` a tar of them in the order OVF requires (descriptor,
manifest, disks)."""
import hashlib
import os
import subprocess
import sys
import tarfile
from xml.sax.saxutils import escape

from .errors import VBoxError, com_error, syntax
from .machine import PROGRESS, opts, require_writable

CONTROLLER_RASD = {
    "PIIX4": (5, "PIIX4"), "PIIX3": (5, "PIIX3"), "ICH6": (5, "ICH6"),
    "IntelAhci": (20, "AHCI"), "LsiLogic": (6, "lsilogic"), "LSILogicSAS": (6, "lsilogicsas"),
    "NVMe": (20, "NVMe"), "VirtIO": (6, "VirtioSCSI"),
}


def qemu_img_virtual_size(path):
    import json

    r = subprocess.run(["qemu-img", "info", "--output=json", path], capture_output=True, text=True)
    return json.loads(r.stdout)["virtual-size"] if r.returncode == 0 else 0


def descriptor(vm, disks, ovf20):
    """The OVF XML. `disks`: [(file name, capacity bytes, controller, port)]."""
    ns = "http://schemas.dmtf.org/ovf/envelope/2" if ovf20 else "http://schemas.dmtf.org/ovf/envelope/1"
    s = vm["settings"]
    out = ['<?xml version="1.0"?>',
           f'<Envelope ovf:version="{"2.0" if ovf20 else "1.0"}" xml:lang="en-US" xmlns="{ns}" '
           f'xmlns:ovf="{ns}" '
           'xmlns:rasd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_ResourceAllocationSettingData" '
           'xmlns:vssd="http://schemas.dmtf.org/wbem/wscim/1/cim-schema/2/CIM_VirtualSystemSettingData" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           'xmlns:vbox="http://www.virtualbox.org/ovf/machine">',
           "  <References>"]
    for i, (name, _cap, _c, _p, size) in enumerate(disks, 1):
        out.append(f'    <File ovf:id="file{i}" ovf:href="{escape(name)}" ovf:size="{size}"/>')
    out += ["  </References>", "  <DiskSection>",
            "    <Info>List of the virtual disks used in the package</Info>"]
    for i, (_n, cap, _c, _p, _s) in enumerate(disks, 1):
        out.append(f'    <Disk ovf:capacity="{cap}" ovf:diskId="vmdisk{i}" ovf:fileRef="file{i}" '
                   'ovf:format="http://www.vmware.com/interfaces/specifications/vmdk.html#streamOptimized"/>')
    out += ["  </DiskSection>", "  <NetworkSection>",
            "    <Info>Logical networks used in the package</Info>",
            '    <Network ovf:name="NAT">', "      <Description>Logical network used by this appliance.</Description>",
            "    </Network>", "  </NetworkSection>",
            f'  <VirtualSystem ovf:id="{escape(vm["name"])}">',
            "    <Info>A virtual machine</Info>",
            '    <OperatingSystemSection ovf:id="1">',
            "      <Info>The kind of installed guest operating system</Info>",
            f'      <vbox:OSType ovf:required="false">{escape(vm["ostype"])}</vbox:OSType>',
            "    </OperatingSystemSection>",
            "    <VirtualHardwareSection>",
            "      <Info>Virtual hardware requirements for a virtual machine</Info>",
            "      <System>", "        <vssd:ElementName>Virtual Hardware Family</vssd:ElementName>",
            "        <vssd:InstanceID>0</vssd:InstanceID>",
            f"        <vssd:VirtualSystemIdentifier>{escape(vm['name'])}</vssd:VirtualSystemIdentifier>",
            "        <vssd:VirtualSystemType>virtualbox-2.2</vssd:VirtualSystemType>", "      </System>"]

    def item(rtype, name, extra):
        nonlocal instance
        instance += 1
        out.append("      <Item>")
        out.append(f"        <rasd:ElementName>{escape(name)}</rasd:ElementName>")
        out.append(f"        <rasd:InstanceID>{instance}</rasd:InstanceID>")
        out.append(f"        <rasd:ResourceType>{rtype}</rasd:ResourceType>")
        out.extend(f"        {e}" for e in extra)
        out.append("      </Item>")
        return instance

    instance = 0
    item(3, f"{s.get('cpus', '1')} virtual CPU", [f"<rasd:VirtualQuantity>{s.get('cpus', '1')}</rasd:VirtualQuantity>"])
    item(4, f"{s.get('memory', '128')} MB of memory",
         ["<rasd:AllocationUnits>MegaBytes</rasd:AllocationUnits>",
          f"<rasd:VirtualQuantity>{s.get('memory', '128')}</rasd:VirtualQuantity>"])
    ctl_ids = {}
    for c in vm["controllers"]:
        rtype, sub = CONTROLLER_RASD.get(c["type"], (20, c["type"]))
        ctl_ids[c["name"]] = item(rtype, c["name"], [f"<rasd:ResourceSubType>{sub}</rasd:ResourceSubType>"])
    for i, (_n, _cap, ctl, port, _s) in enumerate(disks, 1):
        item(17, f"disk{i}", [f"<rasd:AddressOnParent>{port}</rasd:AddressOnParent>",
                              f"<rasd:HostResource>/disk/vmdisk{i}</rasd:HostResource>",
                              f"<rasd:Parent>{ctl_ids.get(ctl, 0)}</rasd:Parent>"])
    if s.get("nic1", "nat") != "none":
        item(10, "Ethernet adapter on 'NAT'",
             ["<rasd:AutomaticAllocation>true</rasd:AutomaticAllocation>",
              "<rasd:Connection>NAT</rasd:Connection>",
              "<rasd:ResourceSubType>E1000</rasd:ResourceSubType>"])
    out += ["    </VirtualHardwareSection>", "  </VirtualSystem>", "</Envelope>", ""]
    return "\n".join(out)


def digest(path, algo):
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cmd_export(fake, args):
    if not args:
        raise syntax("Not enough parameters")
    vm = fake.vm(args[0])
    o, _ = opts(args[1:], {"--output": 1, "-o": 1, "--legacy09": 0, "--ovf09": 0, "--ovf10": 0,
                           "--ovf20": 0, "--opc10": 0, "--manifest": 0, "--iso": 0,
                           "--options": 1, "--vsys": 1, "--vmname": 1, "--product": 1,
                           "--producturl": 1, "--vendor": 1, "--vendorurl": 1, "--version": 1,
                           "--description": 1, "--eula": 1, "--eulafile": 1, "--cloud": 1})
    out = o.get("--output") or o.get("-o")
    if not out:
        raise syntax("Output file not specified")
    out = os.path.abspath(out)
    if not (out.endswith(".ovf") or out.endswith(".ova")):
        raise VBoxError([f"Appliance file must have .ovf or .ova extension: '{out}'"])
    require_writable(fake, vm, "Export(...)", "VBoxManageAppliance.cpp")
    if os.path.exists(out):
        raise com_error(f"Appliance file '{out}' already exists", "VBOX_E_FILE_ERROR",
                        "ApplianceWrap", "IAppliance", "Write(...)", 1600, "VBoxManageAppliance.cpp")
    manifest = "--manifest" in o or "manifest" in o.get("--options", "").split(",")
    ovf20 = "--ovf20" in o
    algo = "sha256" if ovf20 else "sha1"
    stem = os.path.splitext(os.path.basename(out))[0]
    outdir = os.path.dirname(out)
    staging = out + ".fake-staging" if out.endswith(".ova") else outdir
    os.makedirs(staging, exist_ok=True)
    disks = []
    n = 0
    for c in vm["controllers"]:
        for slot, a in sorted(vm["attachments"].items()):
            ctl, port, _dev = slot.rsplit("-", 2)
            if ctl != c["name"] or a["type"] != "hdd":
                continue
            n += 1
            name = f"{stem}-disk{n:03d}.vmdk"
            dst = os.path.join(staging, name)
            r = subprocess.run(["qemu-img", "convert", "-O", "vmdk", "-o", "subformat=streamOptimized",
                                a["medium"], dst], capture_output=True, text=True)
            if r.returncode != 0:
                raise VBoxError([f"Could not create the exported medium '{dst}'.", r.stderr.strip()])
            disks.append((name, qemu_img_virtual_size(a["medium"]), ctl, int(port), os.path.getsize(dst)))
    ovf_name = stem + ".ovf"
    ovf_path = os.path.join(staging, ovf_name)
    with open(ovf_path, "w") as f:
        f.write(descriptor(vm, disks, ovf20))
    members = [ovf_name]
    if manifest:
        mf_name = stem + ".mf"
        with open(os.path.join(staging, mf_name), "w") as f:
            for name in [ovf_name] + [d[0] for d in disks]:
                f.write(f"{algo.upper()} ({name}) = {digest(os.path.join(staging, name), algo)}\n")
        members.append(mf_name)
    members += [d[0] for d in disks]
    if out.endswith(".ova"):
        with tarfile.open(out, "w", format=tarfile.USTAR_FORMAT) as t:
            for m in members:
                t.add(os.path.join(staging, m), arcname=m)
        for m in members:
            os.remove(os.path.join(staging, m))
        os.rmdir(staging)
    print(PROGRESS, file=sys.stderr)
    print("Successfully exported 1 machine(s).")

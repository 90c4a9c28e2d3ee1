"""Registration and configuration: createvm, modifyvm, storagectl, storageattach,
createmedium, closemedium, unregistervm, movevm, list, extradata, guestproperty."""
import os
import shutil
import subprocess

from . import options
from .errors import VBoxError, com_error, locked, syntax
from .vminfo import show_vm_info

PROGRESS = "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%"

CONTROLLER_TYPES = {
    "ide": ("PIIX4", 2, 2),
    "sata": ("IntelAhci", 30, 1),
    "scsi": ("LsiLogic", 16, 1),
    "sas": ("LSILogicSAS", 255, 1),
    "pcie": ("NVMe", 255, 1),
    "virtio": ("VirtIO", 255, 1),
    "floppy": ("I82078", 1, 2),
    "usb": ("USB", 8, 1),
}


def opts(args, spec):
    """Parse `--key value` (and `--key=value`) options; `spec` maps known keys to the number
    of values (0 = flag). Returns (dict, positional)."""
    out, pos = {}, []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("--") or (a.startswith("-") and len(a) == 2):
            k, inline = (a.split("=", 1) + [None])[:2] if "=" in a else (a, None)
            if k not in spec:
                raise syntax(f"Unknown option: {k}")
            n = spec[k]
            if n == 0:
                out[k] = True
            elif inline is not None:
                out[k] = inline
            else:
                if i + 1 >= len(args):
                    raise syntax(f"Missing argument to '{k}'")
                out[k] = args[i + 1]
                i += 1
        else:
            pos.append(a)
        i += 1
    return out, pos


def require_writable(fake, vm, context="LockMachine(a->session, LockType_Write)",
                     file="VBoxManageModifyVM.cpp"):
    """Commands that need the machine's write lock fail while it runs or its session has not
    been released yet."""
    from .control import is_up

    if is_up(vm) or vm.get("lock_remaining", 0) > 0:
        raise locked(vm["name"], context, file)


def cmd_createvm(fake, args):
    o, _ = opts(args, {"--name": 1, "--ostype": 1, "--register": 0, "--basefolder": 1,
                       "--default": 0, "--uuid": 1, "--groups": 1, "--platform-architecture": 1})
    if "--name" not in o:
        raise syntax("Parameter --name is required")
    name = o["--name"]
    base = o.get("--basefolder") or fake.machine_folder()
    vmdir = os.path.join(base, name)
    cfg = os.path.join(vmdir, name + ".vbox")
    if os.path.exists(cfg):
        raise com_error(f"Machine settings file '{cfg}' already exists", "VBOX_E_FILE_ERROR",
                        "MachineWrap", "IMachine", "CreateMachine(...)", 316, "VBoxManageMisc.cpp")
    os.makedirs(os.path.join(vmdir, "Logs"), exist_ok=True)
    uuid = o.get("--uuid") or fake.new_uuid()
    with open(cfg, "w") as f:
        f.write(f'<?xml version="1.0"?>\n<!-- FAKE VBoxManage settings stand-in -->\n'
                f'<VirtualBox><Machine uuid="{{{uuid}}}" name="{name}" '
                f'OSType="{o.get("--ostype", "Other")}"/></VirtualBox>\n')
    vm = {
        "name": name, "uuid": uuid, "ostype": o.get("--ostype", "Other"), "dir": vmdir,
        "cfgfile": cfg, "registered": "--register" in o, "state": "poweroff",
        "settings": {"memory": "128", "cpus": "1", "firmware": "bios", "nic1": "nat",
                     "nictype1": "Am79C973", "boot1": "floppy", "boot2": "dvd", "boot3": "disk",
                     "boot4": "none", "ioapic": "on", "vram": "8", "usb": "off",
                     "graphicscontroller": "vboxvga", "chipset": "piix3", "rtcuseutc": "off",
                     "audio": "default", "vrde": "off", "natpf1": [], "uart1": "off"},
        "controllers": [], "attachments": {}, "extradata": {}, "lock_remaining": 0,
        "macaddress1": "080027" + uuid.replace("-", "")[:6].upper(),
    }
    if vm["registered"]:
        fake.state["vms"][uuid] = vm
        fake.touch(vm)
    print(f"Virtual machine '{name}' is created{' and registered' if vm['registered'] else ''}.")
    print(f"UUID: {uuid}")
    print(f"Settings file: '{cfg}'")


def cmd_modifyvm(fake, args):
    if not args:
        raise syntax("Not enough parameters", options.USAGE)
    vm = fake.vm(args[0])
    parsed = options.parse(args[1:], fake.is_7x())
    require_writable(fake, vm)
    s = vm["settings"]
    for opt, values in parsed:
        key = options.canonical(opt)
        if key in ("natpf1", "natpf2", "natpf3", "natpf4", "natpf5", "natpf6", "natpf7", "natpf8"):
            rules = s.setdefault(key, [])
            if values[0] == "delete":
                names = [r.split(",")[0] for r in rules]
                if values[1] not in names:
                    raise com_error(f"Could not find a NAT rule named '{values[1]}'",
                                    "NS_ERROR_INVALID_ARG", "NATEngineWrap", "INATEngine",
                                    "RemoveRedirect(Bstr(ValueUnion.psz).raw())", 1900)
                s[key] = [r for r in rules if r.split(",")[0] != values[1]]
            else:
                rule = values[0]
                parts = rule.split(",")
                if len(parts) != 6 or parts[1].lower() not in ("tcp", "udp"):
                    raise syntax(f"Invalid NAT rule '{rule}'")
                if parts[0] in [r.split(",")[0] for r in rules]:
                    raise com_error("A NAT rule of this name already exists",
                                    "NS_ERROR_INVALID_ARG", "NATEngineWrap", "INATEngine",
                                    "AddRedirect(...)", 1887)
                rules.append(rule)
        elif key == "name":
            vm["name"] = values[0]
        elif key == "ostype":
            vm["ostype"] = values[0]
        else:
            s[key] = values[0] if len(values) == 1 else values


def cmd_showvminfo(fake, args):
    o, pos = opts(args, {"--machinereadable": 0, "--details": 0, "--log": 1,
                         "--password-id": 1, "--password": 1})
    if not pos:
        raise syntax("Not enough parameters")
    vm = fake.vm(pos[0])
    if "--log" in o:
        with open(os.path.join(vm["dir"], "Logs", "VBox.log")) as f:
            print(f.read(), end="")
        return
    text = show_vm_info(fake, vm, machine_readable="--machinereadable" in o)
    if fake.config.get("crlf"):
        text = text.replace("\n", "\r\n")
    print(text, end="")


def cmd_storagectl(fake, args):
    if not args:
        raise syntax("Not enough parameters")
    vm = fake.vm(args[0])
    o, _ = opts(args[1:], {"--name": 1, "--add": 1, "--controller": 1, "--portcount": 1,
                           "--hostiocache": 1, "--bootable": 1, "--rename": 1, "--remove": 0})
    require_writable(fake, vm, "LockMachine(a->session, LockType_Write)", "VBoxManageStorageController.cpp")
    name = o.get("--name")
    if not name:
        raise syntax("Storage controller name not specified")
    ctls = vm["controllers"]
    if "--remove" in o:
        vm["controllers"] = [c for c in ctls if c["name"] != name]
        return
    if "--add" in o:
        bus = o["--add"].lower()
        if bus not in CONTROLLER_TYPES:
            raise syntax(f"Invalid --add argument '{o['--add']}'")
        if any(c["name"] == name for c in ctls):
            raise com_error(f"Storage controller named '{name}' already exists",
                            "VBOX_E_OBJECT_IN_USE", "SessionMachine", "IMachine",
                            "AddStorageController(...)", 1090, "VBoxManageStorageController.cpp")
        ctype, ports, devices = CONTROLLER_TYPES[bus]
        ctls.append({"name": name, "bus": bus, "type": o.get("--controller", ctype),
                     "portcount": min(int(o.get("--portcount", ports)), ports),
                     "maxportcount": ports, "devices": devices})
    else:
        c = next((c for c in ctls if c["name"] == name), None)
        if c is None:
            raise com_error(f"Could not find a storage controller named '{name}'",
                            "VBOX_E_OBJECT_NOT_FOUND", "SessionMachine", "IMachine",
                            "GetStorageControllerByName(...)", 1100, "VBoxManageStorageController.cpp")
        if "--portcount" in o:
            c["portcount"] = int(o["--portcount"])
        if "--controller" in o:
            c["type"] = o["--controller"]


def cmd_storageattach(fake, args):
    if not args:
        raise syntax("Not enough parameters")
    vm = fake.vm(args[0])
    o, _ = opts(args[1:], {"--storagectl": 1, "--port": 1, "--device": 1, "--type": 1,
                           "--medium": 1, "--nonrotational": 1, "--discard": 1, "--mtype": 1,
                           "--comment": 1, "--hotpluggable": 1, "--tempeject": 1,
                           "--passthrough": 1, "--setuuid": 1, "--forceunmount": 0})
    ctl = next((c for c in vm["controllers"] if c["name"] == o.get("--storagectl")), None)
    if ctl is None:
        raise com_error(f"Could not find a controller named '{o.get('--storagectl')}'",
                        "VBOX_E_OBJECT_NOT_FOUND", "SessionMachine", "IMachine",
                        "GetStorageControllerByName(...)", 460, "VBoxManageStorageController.cpp")
    port, device = int(o.get("--port", 0)), int(o.get("--device", 0))
    maxports = ctl.get("maxportcount", ctl["portcount"])
    if ctl["portcount"] <= port < maxports:
        # VBoxManage raises the port count to fit (VBoxManageStorageController.cpp).
        ctl["portcount"] = port + 1
    if port >= ctl["portcount"] or device >= ctl["devices"]:
        raise com_error(
            f"The port and/or device parameter are out of range: port={port} (must be in range "
            f"[0, {ctl['portcount'] - 1}]), device={device} (must be in range [0, {ctl['devices'] - 1}])",
            "NS_ERROR_INVALID_ARG", "SessionMachine", "IMachine", "AttachDevice(...)", 776,
            "VBoxManageStorageController.cpp")
    kind = o.get("--type", "hdd")
    medium = o.get("--medium")
    slot = f"{ctl['name']}-{port}-{device}"
    from .control import is_up
    # DVDs may change while the VM runs; everything else needs the write lock.
    if not (kind == "dvddrive" and is_up(vm) and vm.get("lock_remaining", 0) == 0):
        require_writable(fake, vm, "LockMachine(a->session, LockType_Write)", "VBoxManageStorageController.cpp")
    if medium in (None, "none"):
        vm["attachments"].pop(slot, None)
        return
    if medium in ("emptydrive", ""):
        vm["attachments"][slot] = {"type": "dvddrive", "medium": "emptydrive"}
        return
    path = os.path.abspath(medium)
    if not os.path.exists(path):
        raise com_error(f"Could not find file for the medium '{path}' (VERR_FILE_NOT_FOUND)",
                        "VBOX_E_FILE_ERROR", "MediumWrap", "IMedium", "OpenMedium(...)", 201,
                        "VBoxManageDisk.cpp")
    m = fake.state["media"].setdefault(path, {"uuid": fake.new_uuid(), "type": kind})
    vm["attachments"][slot] = {"type": kind, "medium": path, "uuid": m["uuid"],
                               "nonrotational": o.get("--nonrotational", "off"),
                               "discard": o.get("--discard", "off")}


def cmd_createmedium(fake, args):
    if args and args[0] in ("disk", "dvd", "floppy"):
        args = args[1:]
    o, _ = opts(args, {"--filename": 1, "--size": 1, "--sizebyte": 1, "--format": 1,
                       "--variant": 1, "--diffparent": 1, "--property": 1})
    path = os.path.abspath(o.get("--filename", ""))
    fmt = o.get("--format", "VDI").upper()
    if os.path.exists(path):
        raise VBoxError([
            "Failed to create medium",
            f"Could not create the medium storage unit '{path}'.",
            f"VDI: cannot create image '{path}' (VERR_ALREADY_EXISTS)",
            "Details: code VBOX_E_FILE_ERROR (0x80bb0004), component MediumWrap, interface IMedium",
        ])
    size = f"{int(o.get('--size', 0))}M" if "--size" in o else o.get("--sizebyte", "0")
    qfmt = {"VDI": "vdi", "VMDK": "vmdk", "VHD": "vpc"}.get(fmt, "vdi")
    r = subprocess.run(["qemu-img", "create", "-q", "-f", qfmt, path, size],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise VBoxError(["Failed to create medium", r.stderr.strip()])
    uuid = fake.new_uuid()
    fake.state["media"][path] = {"uuid": uuid, "type": "hdd", "format": fmt}
    print(PROGRESS, file=__import__("sys").stderr)
    print(f"Medium created. UUID: {uuid}")


def attached_to(fake, path):
    return [vm for vm in fake.state["vms"].values()
            if any(a.get("medium") == path for a in vm["attachments"].values())]


def cmd_closemedium(fake, args):
    if args and args[0] in ("disk", "dvd", "floppy"):
        args = args[1:]
    o, pos = opts(args, {"--delete": 0})
    if not pos:
        raise syntax("Not enough parameters")
    path = os.path.abspath(pos[0])
    if path not in fake.state["media"]:
        raise com_error(f"Could not find file for the medium '{path}' (VERR_FILE_NOT_FOUND)",
                        "VBOX_E_FILE_ERROR", "MediumWrap", "IMedium", "OpenMedium(...)", 1750,
                        "VBoxManageDisk.cpp")
    users = attached_to(fake, path)
    if users:
        raise com_error(f"Cannot close medium '{path}' because it is still attached to 1 virtual "
                        "machines", "VBOX_E_OBJECT_IN_USE", "MediumWrap", "IMedium", "Close()",
                        1790, "VBoxManageDisk.cpp")
    del fake.state["media"][path]
    if "--delete" in o and os.path.exists(path):
        os.remove(path)


def cmd_unregistervm(fake, args):
    o, pos = opts(args, {"--delete": 0, "--delete-all": 0})
    if not pos:
        raise syntax("Not enough parameters")
    if "--delete-all" in o and not fake.is_7x():
        raise syntax("Unknown option: --delete-all")
    vm = fake.vm(pos[0])
    from .control import is_up
    if is_up(vm) or vm.get("lock_remaining", 0) > 0:
        raise com_error(f"Cannot unregister the machine '{vm['name']}' while it is locked",
                        "VBOX_E_INVALID_OBJECT_STATE", "MachineWrap", "IMachine",
                        "Unregister(CleanupMode_DetachAllReturnHardDisksOnly, "
                        "ComSafeArrayAsOutParam(aMedia))", 194)
    del fake.state["vms"][vm["uuid"]]
    if "--delete" in o or "--delete-all" in o:
        for a in vm["attachments"].values():
            p = a.get("medium", "")
            removable = a["type"] != "hdd"
            if not p.startswith("/") or (removable and "--delete-all" not in o):
                continue
            fake.state["media"].pop(p, None)
            if os.path.exists(p):
                os.remove(p)
        for p in (vm["cfgfile"], vm["cfgfile"] + "-prev"):
            if os.path.exists(p):
                os.remove(p)
        shutil.rmtree(os.path.join(vm["dir"], "Logs"), ignore_errors=True)
        try:
            os.rmdir(vm["dir"])
        except OSError:
            pass
        print(PROGRESS, file=__import__("sys").stderr)


def cmd_movevm(fake, args):
    o, pos = opts(args, {"--folder": 1, "--type": 1})
    vm = fake.vm(pos[0])
    require_writable(fake, vm)
    dest = os.path.join(os.path.abspath(o["--folder"]), os.path.basename(vm["dir"]))
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    shutil.move(vm["dir"], dest)
    old = vm["dir"]
    vm["dir"] = dest
    vm["cfgfile"] = vm["cfgfile"].replace(old, dest, 1)
    for a in vm["attachments"].values():
        if a.get("medium", "").startswith(old + "/"):
            new = dest + a["medium"][len(old):]
            fake.state["media"][new] = fake.state["media"].pop(a["medium"], {})
            a["medium"] = new
    print(PROGRESS, file=__import__("sys").stderr)
    print(f"Machine has been successfully moved into {o['--folder']}")


def cmd_list(fake, args):
    what = args[0] if args else ""
    if what in ("vms", "runningvms"):
        from .control import is_up
        for vm in fake.state["vms"].values():
            if what == "runningvms" and not is_up(vm):
                continue
            print(f'"{vm["name"]}" {{{vm["uuid"]}}}')
    elif what == "systemproperties":
        major, minor, _ = fake.version()
        print(f"API version:                     {major}_{minor}")
        print(f"Default machine folder:          {fake.machine_folder()}")
        iso = fake.config.get("additions_iso", os.path.join(fake.home, "VBoxGuestAdditions.iso"))
        print(f"Default Guest Additions ISO:     {iso}")
    elif what == "hdds":
        for p, m in fake.state["media"].items():
            if m.get("type") == "hdd":
                print(f"UUID:           {m['uuid']}\nLocation:       {p}\n")
    elif what == "ostypes":
        for t in ("Other", "Other_64", "Debian_64", "Ubuntu_64", "RedHat_64", "Linux26_64"):
            print(f"ID:          {t}\nDescription: {t}\n")
    else:
        raise syntax(f"Invalid parameter '{what}'")


def cmd_setextradata(fake, args):
    if len(args) < 2:
        raise syntax("Not enough parameters")
    target = fake.state.setdefault("global_extradata", {}) if args[0] == "global" \
        else fake.vm(args[0])["extradata"]
    if len(args) > 2:
        target[args[1]] = args[2]
    else:
        target.pop(args[1], None)


def cmd_getextradata(fake, args):
    target = fake.state.get("global_extradata", {}) if args[0] == "global" \
        else fake.vm(args[0])["extradata"]
    v = target.get(args[1])
    print(f"Value: {v}" if v is not None else "No value set!")


def cmd_guestproperty(fake, args):
    if args and args[0] == "get":
        fake.vm(args[1])
        print("No value set!")
    elif args and args[0] == "wait":
        fake.vm(args[1])
        # The documented trap: a timeout is an error message with exit status 0.
        raise VBoxError(["Time out or interruption while waiting for a notification."], status=0)
    else:
        raise syntax("Invalid parameter")

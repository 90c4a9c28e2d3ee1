"""Running VMs: startvm, controlvm, and noticing VMs that stopped by themselves."""
import os
import signal
import sys
import time

from . import guest, qemu
from .errors import VBoxError, com_error, syntax
from .machine import PROGRESS, opts

UP_STATES = ("running", "paused")


def pid_alive(pid, marker):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z" and marker in cmd


def is_up(vm):
    return bool(vm.get("pid")) and pid_alive(vm["pid"], vm["uuid"])


def vm_state(vm):
    if is_up(vm):
        return vm.get("state", "running") if vm.get("state") in UP_STATES else "running"
    return vm["state"] if vm["state"] not in UP_STATES else "poweroff"


def stopped(fake, vm):
    """Bookkeeping when a VM's process is gone."""
    vm["state"] = "poweroff"
    vm["pid"] = None
    vm["lock_remaining"] = int(fake.faults.get("lock_after_poweroff", 0))
    for p in vm.pop("squatters", []):
        try:
            os.kill(p, signal.SIGTERM)
        except OSError:
            pass
    guest.log_line(vm, "Changing the VM state from 'RUNNING' to 'POWERING_OFF'")


def refresh(fake):
    """VMs whose process exited (the guest powered off) are now powered off."""
    for vm in fake.state["vms"].values():
        if vm.get("state") in UP_STATES and not is_up(vm):
            stopped(fake, vm)


def cmd_startvm(fake, args):
    o, pos = opts(args, {"--type": 1, "--putenv": 1, "-E": 1})
    if not pos:
        raise syntax("Not enough parameters")
    vm = fake.vm(pos[0])
    if is_up(vm) or vm.get("lock_remaining", 0) > 0:
        raise com_error(f"The machine '{vm['name']}' is already locked by a session (or being "
                        "locked or unlocked)", "VBOX_E_INVALID_OBJECT_STATE", "MachineWrap",
                        "IMachine", "LaunchVMProcess(a->session, sessionType.raw(), "
                        "ComSafeArrayAsInParam(aBstrEnv), progress.asOutParam())", 881,
                        "VBoxManageMisc.cpp")
    kind = o.get("--type", "gui")
    if kind not in ("gui", "headless", "sdl", "separate"):
        raise syntax(f"Invalid session type '{kind}'")
    if kind != "headless" and not os.environ.get("DISPLAY"):
        raise VBoxError([
            f"The virtual machine '{vm['name']}' has terminated unexpectedly during startup with "
            "exit code 1 (0x1)",
            "Details: code NS_ERROR_FAILURE (0x80004005), component MachineWrap, interface IMachine",
        ])
    print(f'Waiting for VM "{vm["name"]}" to power on...')
    sys.stdout.flush()
    logs = os.path.join(vm["dir"], "Logs")
    os.makedirs(logs, exist_ok=True)
    with open(os.path.join(logs, "VBox.log"), "w"):
        pass
    vm["started_at"] = time.time()
    major, minor, patch = fake.version()
    guest.log_line(vm, f"VirtualBox VM {major}.{minor}.{patch} (FAKE VBoxManage stand-in, "
                       f"guest {fake.config.get('guest', 'none')})")
    guest.log_line(vm, "NAT: Guest address guess set to 10.0.2.15 by initialization")
    rules = guest.tcp_rules(vm)
    squatters = []
    if rules and fake.fault_once("steal_forward_port"):
        # Another program takes the port between the caller's check and our bind.
        squatters.append(guest.spawn(["--fake-squatter", str(rules[0][2]), vm["uuid"], fake.home]))
        end = time.time() + 5
        while guest.bindable("127.0.0.1", rules[0][2]) and time.time() < end:
            time.sleep(0.02)
    vm["squatters"] = squatters
    if fake.config.get("guest", "none") == "qemu":
        forwards = []
        for _n, hip, hport, gport in rules:
            if guest.bindable(hip, hport):
                forwards.append((hip, hport, gport))
            else:
                guest.log_line(vm, f"NAT: Failed to redirect TCP {hip}:{hport} -> 0.0.0.0:{gport} "
                                   "(Address already in use)")
        vm["pid"] = qemu.launch(fake, vm, forwards)
    else:
        ready = os.path.join(logs, ".fake-ready")
        if os.path.exists(ready):
            os.remove(ready)
        fake.save()  # the VM process reads its rules from the state file
        vm["pid"] = guest.spawn(["--fake-vm-process", fake.home, vm["uuid"]])
        guest.wait_file(ready, 10)
    vm["state"] = "running"
    print(f'VM "{vm["name"]}" has been successfully started.')


def require_running(vm):
    if not is_up(vm):
        raise VBoxError([f"Machine '{vm['name']}' is not currently running"])


def cmd_controlvm(fake, args):
    if len(args) < 2:
        raise syntax("Not enough parameters")
    vm = fake.vm(args[0])
    sub, rest = args[1], args[2:]
    require_running(vm)
    qemu_guest = fake.config.get("guest", "none") == "qemu"
    if sub == "keyboardputscancode":
        return keyboard(fake, vm, rest)
    if sub == "poweroff":
        if qemu_guest:
            try:
                q = guest.Qmp(vm["qmp"], timeout=5)
                q.execute("quit")
                q.close()
            except OSError:
                os.kill(vm["pid"], signal.SIGTERM)
        else:
            os.kill(vm["pid"], signal.SIGTERM)
        end = time.time() + 20
        while is_up(vm) and time.time() < end:
            time.sleep(0.05)
        stopped(fake, vm)
        print(PROGRESS, file=sys.stderr)
    elif sub == "acpipowerbutton":
        if qemu_guest:
            q = guest.Qmp(vm["qmp"])
            q.execute("system_powerdown")
            q.close()
        else:
            os.kill(vm["pid"], signal.SIGUSR1)
    elif sub == "screenshotpng":
        if not rest:
            raise syntax("Missing argument to 'screenshotpng'")
        if qemu_guest:
            q = guest.Qmp(vm["qmp"])
            q.execute("screendump", {"filename": os.path.abspath(rest[0]), "format": "png"})
            q.close()
        else:
            guest.tiny_png(rest[0])
    elif sub in ("pause", "resume"):
        vm["state"] = "paused" if sub == "pause" else "running"
    elif sub.startswith("natpf") or sub.startswith("nat-pf"):
        natpf(fake, vm, sub, rest, qemu_guest)
    else:
        raise syntax(f"Invalid parameter '{sub}'")


def natpf(fake, vm, sub, rest, qemu_guest):
    """Change a forward of the running VM (`controlvm NAME natpf1 RULE|delete NAME`)."""
    key = "natpf" + sub[-1]
    rules = vm["settings"].setdefault(key, [])
    if not rest:
        raise syntax(f"Missing argument to '{sub}'")
    if rest[0] == "delete":
        gone = [r for r in rules if r.split(",")[0] == rest[1]]
        if not gone:
            raise com_error(f"Could not find a NAT rule named '{rest[1]}'", "NS_ERROR_INVALID_ARG",
                            "NATEngineWrap", "INATEngine", "RemoveRedirect(Bstr(a->argv[3]).raw())",
                            1040, "VBoxManageControlVM.cpp")
        vm["settings"][key] = [r for r in rules if r not in gone]
        if qemu_guest:
            _n, proto, hip, hport, _g, _gp = gone[0].split(",")
            q = guest.Qmp(vm["qmp"])
            q.hmp(f"hostfwd_remove n1 tcp:{hip or '127.0.0.1'}:{hport}")
            q.close()
    else:
        name, proto, hip, hport, _gip, gport = rest[0].split(",")
        if name in [r.split(",")[0] for r in rules]:
            raise com_error("A NAT rule of this name already exists", "NS_ERROR_INVALID_ARG",
                            "NATEngineWrap", "INATEngine", "AddRedirect(...)", 1070,
                            "VBoxManageControlVM.cpp")
        rules.append(rest[0])
        if qemu_guest:
            hip = hip or "127.0.0.1"
            q = guest.Qmp(vm["qmp"])
            out = q.hmp(f"hostfwd_add n1 tcp:{hip}:{hport}-:{gport}")
            q.close()
            if "Could not" in out:
                guest.log_line(vm, f"NAT: Failed to redirect TCP {hip}:{hport} -> 0.0.0.0:{gport} "
                                   "(Address already in use)")
    if not qemu_guest:
        fake.save()
        os.kill(vm["pid"], signal.SIGHUP)


def keyboard(fake, vm, rest):
    """keyboardputscancode: every argument two hex digits; at most `keyboard_queue` codes fit
    (the rest is lost with VERR_PDM_NO_QUEUE_ITEMS)."""
    if not rest:
        raise VBoxError(["Missing argument to 'keyboardputscancode'. Expected IBM PC AT set 2 "
                         "keyboard scancode(s) as hex byte(s)."])
    codes = []
    for a in rest:
        if len(a) != 2 or any(c not in "0123456789abcdefABCDEF" for c in a):
            raise VBoxError([f"Error: '{a}' is not a hex byte!"])
        codes.append(int(a, 16))
    limit = int(fake.faults.get("keyboard_queue", 25))
    stored = codes[:limit]
    fake.log_keys(vm["name"], stored)
    if fake.config.get("guest", "none") == "qemu":
        guest.deliver_scancodes(vm, stored)
    if len(codes) > limit:
        raise com_error("Could not send all scan codes to the virtual keyboard "
                        "(VERR_PDM_NO_QUEUE_ITEMS)", "VBOX_E_IPRT_ERROR", "KeyboardWrap",
                        "IKeyboard", "PutScancodes(ComSafeArrayAsInParam(saScancodes), &codesStored)",
                        386, "VBoxManageControlVM.cpp")

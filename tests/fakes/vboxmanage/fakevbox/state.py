"""The fake's on-disk state under $VBOX_USER_HOME:

  fake.json        configuration written by tests: version, guest mode, injected faults
  fake-state.json  registered VMs and media (guarded by fake.lock)
  fake-calls.log   one JSON line per invocation: argv and exit status
  fake-keys.log    scancodes delivered to the VMs' keyboards (hex, one call per line)
"""
import contextlib
import fcntl
import json
import os
import time
import uuid as uuidlib

from .errors import not_found

DEFAULT_VERSION = "7.1.4r165100"


class Fake:
    def __init__(self, home):
        self.home = home
        os.makedirs(home, exist_ok=True)
        self.config = {}
        cfg = os.path.join(home, "fake.json")
        if os.path.exists(cfg):
            with open(cfg) as f:
                self.config = json.load(f)
        if os.environ.get("FAKE_VBOX_VERSION"):
            self.config["version"] = os.environ["FAKE_VBOX_VERSION"]
        if os.environ.get("FAKE_VBOX_GUEST"):
            self.config["guest"] = os.environ["FAKE_VBOX_GUEST"]
        self.faults = self.config.get("faults", {})
        self.state = {"vms": {}, "media": {}, "fault_uses": {}}
        self._touched = set()

    # -- version ---------------------------------------------------------------------------
    def version_string(self):
        return self.config.get("version", DEFAULT_VERSION)

    def version(self):
        """(major, minor, patch) of the configured version."""
        s = self.version_string()
        digits = ""
        for c in s:
            if c.isdigit() or c == ".":
                digits += c
            else:
                break
        parts = [int(p) for p in digits.split(".") if p]
        while len(parts) < 3:
            parts.append(0)
        return tuple(parts[:3])

    def is_7x(self):
        return self.version()[0] >= 7

    # -- state -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def locked(self):
        fd = os.open(os.path.join(self.home, "fake.lock"), os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.load()
            self._touched = set()
            try:
                yield self
            finally:
                self.end_command()
                self.save()
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def load(self):
        p = os.path.join(self.home, "fake-state.json")
        if os.path.exists(p):
            with open(p) as f:
                self.state = json.load(f)
        self.state.setdefault("vms", {})
        self.state.setdefault("media", {})
        self.state.setdefault("fault_uses", {})

    def save(self):
        p = os.path.join(self.home, "fake-state.json")
        tmp = p + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=1)
        os.replace(tmp, p)

    def machine_folder(self):
        return os.path.join(self.home, "VirtualBox VMs")

    def find_vm(self, name):
        """The VM called `name` (or with that UUID)."""
        for vm in self.state["vms"].values():
            if vm["name"] == name or vm["uuid"] == name:
                return vm
        raise not_found(name)

    def vm(self, name):
        """`find_vm`, counting this invocation against the VM's lingering session lock."""
        vm = self.find_vm(name)
        self.touch(vm)
        return vm

    def touch(self, vm):
        self._touched.add(vm["uuid"])

    def end_command(self):
        """A session lock left after power-off lasts `lock_after_poweroff` invocations."""
        for uuid in self._touched:
            vm = self.state["vms"].get(uuid)
            if vm and vm.get("lock_remaining", 0) > 0:
                vm["lock_remaining"] -= 1

    def new_uuid(self):
        return str(uuidlib.uuid4())

    def fault_once(self, key):
        """Count one use of a limited fault; True while uses remain."""
        limit = self.faults.get(key, 0)
        used = self.state["fault_uses"].get(key, 0)
        if used < limit:
            self.state["fault_uses"][key] = used + 1
            return True
        return False

    def exit0_error(self, command):
        """An `error_exit0` fault for this command, if one is left."""
        for i, f in enumerate(self.faults.get("error_exit0", [])):
            if f.get("command") != command:
                continue
            key = f"error_exit0.{i}"
            used = self.state["fault_uses"].get(key, 0)
            if used < f.get("times", 1):
                self.state["fault_uses"][key] = used + 1
                return f.get("message", "Failed")
        return None

    # -- logs ------------------------------------------------------------------------------
    def log_call(self, argv, status):
        with open(os.path.join(self.home, "fake-calls.log"), "a") as f:
            f.write(json.dumps({"argv": argv, "status": status, "time": time.time()}) + "\n")

    def log_keys(self, vm, codes):
        with open(os.path.join(self.home, "fake-keys.log"), "a") as f:
            f.write(vm + " " + " ".join(f"{c:02x}" for c in codes) + "\n")

"""Entry point: dispatch a VBoxManage command line."""
import os
import sys

from .errors import VBoxError, syntax
from .state import Fake

# command -> (module, function); modules are imported on use (each call is a new process).
COMMANDS = {
    "list": ("machine", "cmd_list"),
    "createvm": ("machine", "cmd_createvm"),
    "modifyvm": ("machine", "cmd_modifyvm"),
    "showvminfo": ("machine", "cmd_showvminfo"),
    "storagectl": ("machine", "cmd_storagectl"),
    "storageattach": ("machine", "cmd_storageattach"),
    "createmedium": ("machine", "cmd_createmedium"),
    "createhd": ("machine", "cmd_createmedium"),
    "closemedium": ("machine", "cmd_closemedium"),
    "unregistervm": ("machine", "cmd_unregistervm"),
    "movevm": ("machine", "cmd_movevm"),
    "setextradata": ("machine", "cmd_setextradata"),
    "getextradata": ("machine", "cmd_getextradata"),
    "guestproperty": ("machine", "cmd_guestproperty"),
    "startvm": ("control", "cmd_startvm"),
    "controlvm": ("control", "cmd_controlvm"),
    "export": ("export", "cmd_export"),
}


def version(fake):
    if fake.config.get("version_warning"):
        print("WARNING: The vboxdrv kernel module is not loaded. Either there is no module\n"
              "         available for the current kernel or it failed to\n"
              "         load. Please recompile the kernel module and install it by\n\n"
              "           sudo /sbin/vboxconfig\n\n"
              "         You will not be able to start VMs until this problem is fixed.")
    print(fake.version_string())


def main(argv):
    args = argv[1:]
    if args[:1] == ["--fake-vm-process"]:
        from .guest import paper_vm_main
        paper_vm_main(args[1], args[2])
        return 0
    if args[:1] == ["--fake-squatter"]:
        from .guest import squatter_main
        squatter_main(int(args[1]), args[3])
        return 0
    prog = os.path.basename(argv[0])
    home = os.environ.get("VBOX_USER_HOME")
    if not home:
        print(f"{prog}: error: FAKE VBoxManage (a test stand-in): set VBOX_USER_HOME to its "
              "state directory", file=sys.stderr)
        return 1
    fake = Fake(home)
    while args and args[0] in ("-q", "--nologo", "--settingspw", "--settingspwfile"):
        args = args[1 + (args[0] in ("--settingspw", "--settingspwfile")):]
    status = 0
    try:
        if not args:
            raise syntax("No command given")
        if args[0] in ("--version", "-v", "-V", "--Version"):
            version(fake)
        else:
            entry = COMMANDS.get(args[0])
            if entry is None:
                raise syntax(f"Invalid command '{args[0]}'")
            import importlib

            handler = getattr(importlib.import_module(f"fakevbox.{entry[0]}"), entry[1])
            from . import control

            with fake.locked():
                control.refresh(fake)
                sub = args[1] if args[0] == "controlvm" and len(args) > 1 else ""
                message = fake.exit0_error(f"{args[0]} {sub}".strip()) or (
                    fake.exit0_error(args[0]) if sub else None)
                if message:
                    # The documented lie: an error on stderr and exit status 0, nothing done.
                    raise VBoxError([message, "Details: code NS_ERROR_FAILURE (0x80004005), "
                                     "component ConsoleWrap, interface IConsole"], status=0)
                handler(fake, args[1:])
    except VBoxError as e:
        sys.stdout.flush()
        if e.stdout:
            sys.stdout.write(e.stdout)
        for line in e.lines:
            print(f"{prog}: error: {line}", file=sys.stderr)
        status = e.status
    sys.stdout.flush()
    fake.log_call(args, status)
    return status

"""`modifyvm` options: which exist in which VirtualBox version, and how they are read.

VirtualBox 7.0 renamed many options (`--nictype1` -> `--nic-type1`, `--natpf1` -> `--nat-pf1`,
`--audio` -> `--audio-driver`, ...) and still accepts the old names; it added options 6.x does
not know (`--nat-localhostreachable<N>`, `--audio-enabled`, `--tpm-type`, `--iommu`, ...).
6.x rejects every 7.x spelling with `Unknown option` and exit status 2.
"""
import re

from .errors import syntax

# Options both 6.1 and 7.x accept (pre-7.0 spellings). `N` = NIC/UART number suffix.
COMMON = {
    "--name", "--groups", "--description", "--ostype", "--iconfile", "--memory", "--pagefusion",
    "--vram", "--acpi", "--ioapic", "--hpet", "--triplefaultreset", "--apic", "--x2apic",
    "--paravirtprovider", "--paravirtdebug", "--hwvirtex", "--nestedpaging", "--largepages",
    "--vtxvpid", "--vtxux", "--pae", "--longmode", "--ibpb-on-vm-exit", "--ibpb-on-vm-entry",
    "--spec-ctrl", "--l1d-flush-on-sched", "--l1d-flush-on-vm-entry", "--mds-clear-on-sched",
    "--mds-clear-on-vm-entry", "--nested-hw-virt", "--cpu-profile", "--cpuid-portability-level",
    "--cpuidset", "--cpuidremove", "--cpuidremoveall", "--hardwareuuid", "--cpus",
    "--cpuhotplug", "--plugcpu", "--unplugcpu", "--cpuexecutioncap", "--rtcuseutc",
    "--graphicscontroller", "--monitorcount", "--accelerate3d", "--accelerate2dvideo",
    "--firmware", "--chipset", "--bioslogofadein", "--bioslogofadeout", "--bioslogodisplaytime",
    "--bioslogoimagepath", "--biosbootmenu", "--biosapic", "--biossystemtimeoffset",
    "--biospxedebug", "--system-uuid-le", "--boot1", "--boot2", "--boot3", "--boot4",
    "--nicN", "--nictypeN", "--cableconnectedN", "--nictraceN", "--nictracefileN",
    "--nicpropertyN", "--nicspeedN", "--nicbootprioN", "--nicpromiscN", "--nicbandwidthgroupN",
    "--bridgeadapterN", "--hostonlyadapterN", "--intnetN", "--nat-networkN", "--nicgenericdrvN",
    "--natnetN", "--natsettingsN", "--natpfN", "--nataliasmodeN", "--natbindipN",
    "--natdnspassdomainN", "--natdnsproxyN", "--natdnshostresolverN", "--macaddressN",
    "--mouse", "--keyboard", "--uartN", "--uartmodeN", "--uarttypeN", "--lptN", "--lptmodeN",
    "--guestmemoryballoon", "--audio", "--audiocontroller", "--audiocodec", "--audioin",
    "--audioout", "--clipboard-mode", "--draganddrop", "--vrde", "--vrdeextpack",
    "--vrdeproperty", "--vrdeport", "--vrdeaddress", "--vrdeauthtype", "--vrdeauthlibrary",
    "--vrdemulticon", "--vrdereusecon", "--vrdevideochannel", "--vrdevideochannelquality",
    "--usb", "--usbehci", "--usbxhci", "--usbohci", "--usbrename", "--snapshotfolder",
    "--teleporter", "--autostart-enabled", "--autostart-delay", "--defaultfrontend",
    "--vm-process-priority", "--recording", "--videocap",
}

# Spellings and options only VirtualBox 7.x knows.
NEW_IN_7 = {
    "--nic-typeN", "--nat-pfN", "--nat-localhostreachableN", "--cable-connectedN",
    "--mac-addressN", "--uart-modeN", "--uart-typeN", "--audio-driver", "--audio-enabled",
    "--audio-controller", "--audio-codec", "--audio-in", "--audio-out", "--tpm-type",
    "--tpm-location", "--iommu", "--bios-boot-menu", "--bios-apic", "--usb-ohci", "--usb-ehci",
    "--usb-xhci", "--rtc-use-utc", "--accelerate-3d", "--vrde-port", "--vrde-address",
    "--vrde-auth-type", "--vrde-property", "--graphics-controller", "--monitor-count",
    "--secure-boot", "--clipboard", "--drag-and-drop", "--cpu-execution-cap",
}

# Options that take two values.
TWO_VALUES = {"--uartN", "--uartmodeN", "--uart-modeN", "--lptN", "--lptmodeN"}


def shape(opt):
    """`--natpf1` -> `--natpfN` (NIC/UART numbers 1-8)."""
    m = re.fullmatch(r"(--[a-z0-9-]*?[a-z-])([1-8])", opt)
    if m and (m.group(1) + "N") in COMMON | NEW_IN_7:
        return m.group(1) + "N", m.group(2)
    return opt, ""


def canonical(opt):
    """The settings key for an option: dashes dropped, 7.x renames mapped to the old key."""
    key = opt.lstrip("-").replace("-", "")
    aliases = {"audiodriver": "audio", "graphicscontroller": "graphicscontroller"}
    return aliases.get(key, key)


USAGE = "Usage:\n\nVBoxManage modifyvm         <uuid|vmname>\n                            [--name <name>]\n                            [...]\n"


def parse(args, is_7x):
    """Parse `--opt value` / `--opt=value` pairs; returns [(option, values)]."""
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        if not a.startswith("--"):
            raise syntax(f"Invalid parameter '{a}'", USAGE)
        opt, inline = (a.split("=", 1) + [None])[:2] if "=" in a else (a, None)
        form, _n = shape(opt)
        known = form in COMMON or (is_7x and form in NEW_IN_7)
        if not known:
            raise syntax(f"Unknown option: {opt}", USAGE)
        values = []
        if inline is not None:
            values.append(inline)
        else:
            i += 1
            if i >= len(args):
                raise syntax(f"Missing argument to '{opt}'", USAGE)
            values.append(args[i])
        # Two-value options (`--uart1 0x3F8 4`, `--uartmode1 file PATH`), except their
        # one-value forms (`--uart1 off`, `--uartmode1 disconnected`).
        if form in TWO_VALUES and values[0] not in ("off", "disconnected"):
            i += 1
            if i >= len(args):
                raise syntax(f"Missing argument to '{opt}'", USAGE)
            values.append(args[i])
        # `--natpf1 delete NAME` takes two.
        if form in ("--natpfN", "--nat-pfN") and values[0] == "delete":
            i += 1
            if i >= len(args):
                raise syntax(f"Missing argument to '{opt}'", USAGE)
            values.append(args[i])
        out.append((opt, values))
        i += 1
    return out

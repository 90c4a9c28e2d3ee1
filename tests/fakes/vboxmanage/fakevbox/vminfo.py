"""`showvminfo NAME --machinereadable`, in VBoxManage's format with its traps: quoted keys for
attachments, unquoted keys with spaces, a description spanning lines (raw newlines on 6.x,
`\\n` escapes on 7.x, `\\"` for quotes on both), `VideoMode="…"@0,0 1`, an empty unquoted
`videocapopts=`, optional CRLF line ends, and 7.0.0 leaving out the `Forwarding(n)` lines of a
NIC with more than one rule."""

DESCRIPTION = 'Built by a FAKE VBoxManage.\nSecond line with a "quoted" word and C:\\temp.'


def q(s):
    """A quoted value as VBoxManage prints it."""
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def q_multiline(s, escape_newlines):
    v = q(s)
    return v.replace("\n", "\\n") if escape_newlines else v


def show_vm_info(fake, vm, machine_readable=True):
    from .control import is_up, vm_state

    s = vm["settings"]
    state = vm_state(vm)
    up = is_up(vm)
    lines = []
    add = lines.append
    if not machine_readable:
        add(f"Name:                        {vm['name']}")
        add(f"UUID:                        {vm['uuid']}")
        add(f"State:                       {state} (since 2024-01-01T00:00:00.000000000)")
        return "\n".join(lines) + "\n"
    add(f"name={q(vm['name'])}")
    add("Encryption:     disabled")
    add('groups="/"')
    add(f"ostype={q(vm['ostype'])}")
    add(f"UUID={q(vm['uuid'])}")
    add(f"CfgFile={q(vm['cfgfile'])}")
    add(f"SnapFldr={q(vm['dir'] + '/Snapshots')}")
    add(f"LogFldr={q(vm['dir'] + '/Logs')}")
    if fake.config.get("traps", True):
        add("description=" + q_multiline(s.get("description", DESCRIPTION), fake.is_7x()))
    elif "description" in s:
        add("description=" + q_multiline(s["description"], fake.is_7x()))
    add(f"memory={s.get('memory', '128')}")
    add(f"vram={s.get('vram', '8')}")
    add(f"cpus={s.get('cpus', '1')}")
    add(f"chipset={q(s.get('chipset', 'piix3'))}")
    add(f"firmware={q(s.get('firmware', 'bios').upper())}")
    for i in range(1, 5):
        add(f"boot{i}={q(s.get(f'boot{i}', 'none'))}")
    add(f"ioapic={q(s.get('ioapic', 'on'))}")
    add(f"rtcuseutc={q(s.get('rtcuseutc', 'off'))}")
    add(f"VMState={q(state)}")
    add('VMStateChangeTime="2024-01-01T00:00:00.000000000"')
    add(f"graphicscontroller={q(s.get('graphicscontroller', 'vboxvga'))}")
    add(f"accelerate3d={q(s.get('accelerate3d', 'off'))}")
    add(f"vrde={q(s.get('vrde', 'off'))}")
    add(f"vrdeport={s.get('vrdeport', '-1') if s.get('vrde') == 'on' else '-1'}")
    add(f"vrdeaddress={q(s.get('vrdeaddress', ''))}")
    add(f"usb={q(s.get('usb', 'off'))}")
    for n, c in enumerate(vm["controllers"]):
        add(f"storagecontrollername{n}={q(c['name'])}")
        add(f"storagecontrollertype{n}={q(c['type'])}")
        add(f'storagecontrollerinstance{n}="0"')
        add(f'storagecontrollermaxportcount{n}="{c.get("maxportcount", c["portcount"])}"')
        add(f'storagecontrollerportcount{n}="{c["portcount"]}"')
        add(f'storagecontrollerbootable{n}="on"')
    for c in vm["controllers"]:
        for port in range(min(c["portcount"], 4)):
            for dev in range(c["devices"]):
                slot = f"{c['name']}-{port}-{dev}"
                a = vm["attachments"].get(slot)
                if a is None:
                    add(f'"{slot}"="none"')
                    continue
                add(f'"{slot}"={q(a["medium"])}')
                if a.get("uuid"):
                    add(f'"{c["name"]}-ImageUUID-{port}-{dev}"={q(a["uuid"])}')
    omit_forwarding = fake.version() == (7, 0, 0)
    for n in range(1, 9):
        nic = s.get(f"nic{n}", "nat" if n == 1 else "none")
        if nic == "none":
            add(f'nic{n}="none"')
            continue
        add(f'natnet{n}="nat"')
        add(f"macaddress{n}={q(vm.get(f'macaddress{n}', '080027000000'))}")
        add(f'cableconnected{n}="on"')
        add(f"nic{n}={q(nic)}")
        add(f"nictype{n}={q(s.get(f'nictype{n}', 'Am79C973'))}")
        add(f'nicspeed{n}="0"')
        if fake.is_7x():
            add(f"nat-localhostreachable{n}={q(s.get(f'natlocalhostreachable{n}', 'off'))}")
        rules = s.get(f"natpf{n}", [])
        if omit_forwarding and len(rules) > 1:
            continue
        for i, r in enumerate(rules):
            add(f"Forwarding({i})={q(r)}")
    add(f"hidpointing={q(s.get('mouse', 'ps2') + 'mouse')}")
    add(f"hidkeyboard={q(s.get('keyboard', 'ps2') + 'kbd')}")
    uart = s.get("uart1", "off")
    add(f"uart1={q('off' if uart == 'off' else ','.join(uart) if isinstance(uart, list) else uart)}")
    mode = s.get("uartmode1")
    if uart != "off" and mode:
        add(f"uartmode1={q(','.join(mode) if isinstance(mode, list) else mode)}")
    add(f"audio={q(s.get('audio', 'default'))}")
    add('clipboard="disabled"')
    add('draganddrop="disabled"')
    if up:
        add('SessionName="headless"')
    add(f'SessionState="{"Locked" if up or vm.get("lock_remaining", 0) > 0 else "Unlocked"}"')
    if up:
        add('VideoMode="720,400,0"@0,0 1')
        add('VRDEActiveConnection="off"')
        add("VRDEClients=0")
    add('videocap="off"')
    add("videocapopts=")
    add('videocapfile="' + vm["dir"] + '/' + vm["name"] + '.webm"')
    add("GuestMemoryBalloon=0")
    if up:
        add('GuestOSType="Linux26_64"')
        add("GuestAdditionsRunLevel=0")
        add("GuestAdditionsFacility_VirtualBox Base Driver=50,1692620000000")
        add("GuestAdditionsFacility_Seamless Mode=0,1692620000000")
    return "\n".join(lines) + "\n"

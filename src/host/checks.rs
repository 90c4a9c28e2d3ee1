//! The individual host checks of [`super::inspect`].

use super::tools::{count_isos, free_bytes, human_bytes, version_line, which, writable};
use super::{Accelerator, Buildable, Check, Status};
use crate::config::Config;
use std::ffi::OsStr;
use std::path::Path;

/// Below this much free space in the ISO cache a download may not fit (install media are
/// 0.5–12 GiB).
const LOW_SPACE: u64 = 8 * 1024 * 1024 * 1024;

fn qemu_package(arch: &str) -> &'static str {
    if arch == "aarch64" {
        "qemu-system-arm"
    } else {
        "qemu-system-x86"
    }
}

pub(super) fn qemu(arch: &str, path: Option<&OsStr>) -> Check {
    let bin = format!("qemu-system-{arch}");
    match which(&bin, path) {
        Some(p) => {
            let v = version_line(&p, &["--version"]);
            Check::new(
                "qemu",
                Status::Ok,
                format!(
                    "QEMU found: {} ({})",
                    p.display(),
                    v.as_deref().unwrap_or("version unknown")
                ),
            )
            .path(p)
            .version(v)
        }
        None => Check::new(
            "qemu",
            Status::Missing,
            format!("QEMU not found ({bin} is not on PATH): qemu/… targets cannot be built"),
        )
        .fix(format!(
            "install QEMU, e.g. `sudo apt-get install {} qemu-utils` on Debian/Ubuntu",
            qemu_package(arch)
        )),
    }
}

/// Which accelerator QEMU builds get: KVM only when a probe guest actually ran under it.
pub(super) fn accelerator(qemu: Option<&Path>, probe: bool) -> Accelerator {
    let kvm_present = Path::new("/dev/kvm").exists();
    let tcg = |reason: String| Accelerator {
        kvm_present,
        kvm_usable: false,
        name: "tcg".into(),
        reason,
    };
    if !kvm_present {
        return tcg("/dev/kvm does not exist".into());
    }
    let Some(qemu) = qemu else {
        return tcg("not probed: QEMU is not installed".into());
    };
    if !probe {
        return tcg("not probed".into());
    }
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return tcg(format!("not probed: cannot start a runtime: {e}")),
    };
    let check = rt.block_on(osimager_drivers::qemu::kvm_usable(&qemu.to_string_lossy()));
    Accelerator {
        kvm_present,
        kvm_usable: check.usable,
        name: if check.usable { "kvm" } else { "tcg" }.into(),
        reason: check.reason,
    }
}

pub(super) fn kvm_check(a: &Accelerator) -> Check {
    const TCG: &str = "QEMU builds run under TCG (software emulation, several times slower)";
    const FOR_KVM: &str = "enable hardware virtualization (VT-x/AMD-V) in the firmware, or \
                           nested virtualization on the machine hosting this VM";
    if a.kvm_usable {
        return Check::new(
            "kvm",
            Status::Ok,
            format!("KVM usable ({}): QEMU builds use KVM", a.reason),
        )
        .path("/dev/kvm");
    }
    if !a.kvm_present {
        return Check::new(
            "kvm",
            Status::Warn,
            format!("KVM not available (/dev/kvm does not exist): {TCG}"),
        )
        .fix(format!(
            "nothing is needed for TCG builds; for KVM: {FOR_KVM}, and load the kvm_intel or \
             kvm_amd module"
        ));
    }
    if a.reason.starts_with("not probed") {
        return Check::new(
            "kvm",
            Status::Warn,
            format!("KVM present (/dev/kvm) but {}", a.reason),
        )
        .path("/dev/kvm");
    }
    Check::new(
        "kvm",
        Status::Warn,
        format!("KVM present but unusable: {}; {TCG}", a.reason),
    )
    .path("/dev/kvm")
    .fix(format!(
        "nothing is needed for TCG builds (`osimager init` writes qemu_accelerator=tcg into the \
         location); for KVM: {FOR_KVM}, and check that this user can open /dev/kvm (group kvm)"
    ))
}

pub(super) fn qemu_img(path: Option<&OsStr>) -> Check {
    match which("qemu-img", path) {
        Some(p) => {
            let v = version_line(&p, &["--version"]);
            Check::new(
                "qemu-img",
                Status::Ok,
                format!("qemu-img found: {}", p.display()),
            )
            .path(p)
            .version(v)
        }
        None => Check::new(
            "qemu-img",
            Status::Missing,
            "qemu-img not found on PATH: QEMU builds cannot create or export disks",
        )
        .fix("install it, e.g. `sudo apt-get install qemu-utils` on Debian/Ubuntu"),
    }
}

pub(super) fn socat(path: Option<&OsStr>) -> Check {
    match which("socat", path) {
        Some(p) => Check::new("socat", Status::Ok, format!("socat found: {}", p.display())).path(p),
        None => Check::new(
            "socat",
            Status::Missing,
            "socat not found on PATH: only locations whose QEMU guests may reach nothing but \
             this host need it (`osimager init --isolated-network`)",
        )
        .fix("install it, e.g. `sudo apt-get install socat`"),
    }
}

pub(super) fn ansible(path: Option<&OsStr>) -> Check {
    match which("ansible-playbook", path) {
        Some(p) => {
            let v = version_line(&p, &["--version"]);
            Check::new(
                "ansible-playbook",
                Status::Ok,
                format!(
                    "ansible-playbook found: {} ({})",
                    p.display(),
                    v.as_deref().unwrap_or("version unknown")
                ),
            )
            .path(p)
            .version(v)
        }
        None => Check::new(
            "ansible-playbook",
            Status::Missing,
            "ansible-playbook not found on PATH: builds stop at the provisioning step (the \
             default playbook configures every image), unless run with --skip",
        )
        .fix(
            "install Ansible into a venv and put its bin/ on PATH: `python3 -m venv ~/ansible && \
             ~/ansible/bin/pip install ansible-core && export PATH=$PATH:~/ansible/bin` (or \
             `pipx install ansible-core`); `osimager venv VERSION` creates the venvs specs ask \
             for",
        ),
    }
}

pub(super) fn packer(packer_cmd: &str, path: Option<&OsStr>) -> Check {
    use crate::engine::packer::detect::{detect, PackerVersion};
    let cmd = if packer_cmd.is_empty() {
        "packer"
    } else {
        packer_cmd
    };
    match detect(cmd, path) {
        Ok(info) => {
            let v = info.version.map(|v| v.to_string());
            let old = info.version.is_some_and(|v| {
                v < PackerVersion {
                    major: 1,
                    minor: 7,
                    patch: 0,
                }
            });
            let detail = format!(
                "Packer {} found: {} (for --engine packer, and VMware builds)",
                v.as_deref().unwrap_or("(version unknown)"),
                info.path.display()
            );
            let c = Check::new(
                "packer",
                if old { Status::Warn } else { Status::Ok },
                detail,
            )
            .path(info.path)
            .version(v);
            if old {
                c.fix(
                    "Packer before 1.7 has no qemu plugin and rejects newer qemu keys (firmware, \
                     cpu_model, …): qemu builds are better served by the native engine \
                     (`--engine native`, the default for qemu); install a current Packer for \
                     the others",
                )
            } else {
                c
            }
        }
        Err(_) => Check::new(
            "packer",
            Status::Missing,
            format!(
                "Packer not found ('{cmd}' is not on PATH; setting packer_cmd): qemu and \
                 VirtualBox builds use the native engine and do not need it; VMware builds do"
            ),
        )
        .fix(
            "install Packer (https://developer.hashicorp.com/packer/install, or `sudo apt-get \
             install packer`), or point `osimager config set packer_cmd=/path/to/packer` at it",
        ),
    }
}

pub(super) fn virtualbox(path: Option<&OsStr>) -> Check {
    let found = which("VBoxManage", path).or_else(|| which("vboxmanage", path));
    match found {
        Some(p) => {
            let v = version_line(&p, &["--version"]);
            Check::new(
                "virtualbox",
                Status::Ok,
                format!(
                    "VirtualBox found: {} ({}); virtualbox/… targets build natively with \
                     VBoxManage (6.1 or later; --engine packer also works)",
                    p.display(),
                    v.as_deref().unwrap_or("version unknown")
                ),
            )
            .path(p)
            .version(v)
        }
        None => Check::new(
            "virtualbox",
            Status::Missing,
            "VirtualBox not found (no VBoxManage on PATH): virtualbox/… targets cannot be built \
             here",
        )
        .fix("install VirtualBox 6.1 or later (https://www.virtualbox.org) to build them"),
    }
}

pub(super) fn vmware(path: Option<&OsStr>) -> Check {
    let found = which("vmrun", path).or_else(|| which("vmrest", path));
    match found {
        Some(p) => Check::new(
            "vmware",
            Status::Ok,
            format!(
                "VMware found: {}; vmware/… targets build natively (vmrest, else vmrun) or \
                 through Packer",
                p.display()
            ),
        )
        .path(p),
        None => Check::new(
            "vmware",
            Status::Missing,
            "VMware not found (no vmrun or vmrest on PATH): vmware/… targets cannot be built here",
        )
        .fix("install VMware Workstation (it provides vmrest and vmrun) to build them"),
    }
}

pub(super) fn iso_cache(cfg: &Config) -> Check {
    let dir = cfg.iso_cache_dir();
    let local = cfg.settings.get_str("iso_path");
    let local_note = if local.is_empty() {
        String::new()
    } else if Path::new(&local).is_dir() {
        format!(
            "; local ISO directory {local} (setting iso_path): {} ISO(s)",
            count_isos(Path::new(&local))
        )
    } else {
        format!(
            "; local ISO directory {local} (setting iso_path) does not exist: only media you \
             download yourself (RHEL, SLES, Windows) go there"
        )
    };
    if !writable(&dir) {
        return Check::new(
            "iso-cache",
            Status::Error,
            format!("ISO cache {} is not writable{local_note}", dir.display()),
        )
        .path(&dir)
        .fix(
            "make it writable, or choose another directory: `osimager config set \
             packer_cache_dir=DIR` (ISOs go to DIR/iso)",
        );
    }
    let free = free_bytes(&dir);
    let space = free
        .map(|f| format!("{} free", human_bytes(f)))
        .unwrap_or_else(|| "free space unknown".into());
    let what = if dir.is_dir() {
        format!("{} ISO(s), {space}", count_isos(&dir))
    } else {
        format!("created on the first download, {space}")
    };
    let low = free.is_some_and(|f| f < LOW_SPACE);
    let c = Check::new(
        "iso-cache",
        if low { Status::Warn } else { Status::Ok },
        format!("ISO cache {}: {what}{local_note}", dir.display()),
    )
    .path(&dir);
    if low {
        c.fix(
            "install media take 0.5–12 GiB each: free some space, or move the cache with \
             `osimager config set packer_cache_dir=DIR`",
        )
    } else {
        c
    }
}

pub(super) fn locations(cfg: &Config) -> Check {
    let dir = cfg.layers.user.join("locations");
    match cfg.locations() {
        Ok(l) if !l.is_empty() => {
            let names: Vec<&str> = l.iter().map(|(n, _)| n.as_str()).collect();
            Check::new(
                "locations",
                Status::Ok,
                format!("locations in {}: {}", dir.display(), names.join(", ")),
            )
            .path(dir)
        }
        Ok(_) => Check::new(
            "locations",
            Status::Missing,
            format!(
                "no locations in {}: a target is PLATFORM/LOCATION/SPEC",
                dir.display()
            ),
        )
        .path(dir)
        .fix("run `osimager init` (writes one for this host's hypervisors), or see docs/DATA.md"),
        Err(e) => Check::new("locations", Status::Error, format!("{e}"))
            .path(dir)
            .fix("fix the file named above"),
    }
}

pub(super) fn data_tree(cfg: &Config) -> Check {
    let tree = &cfg.layers.system;
    match cfg.index() {
        Ok(index) if tree.join("platforms").is_dir() => Check::new(
            "data",
            Status::Ok,
            format!(
                "data tree {}: {} targets",
                tree.display(),
                index.keys().count()
            ),
        )
        .path(tree),
        Ok(_) => Check::new(
            "data",
            Status::Error,
            format!("data tree {} has no platforms/ directory", tree.display()),
        )
        .path(tree)
        .fix("point --data-dir or OSIMAGER_DATA_DIR at osimager's data tree (share/osimager)"),
        Err(e) => Check::new(
            "data",
            Status::Error,
            format!("data tree {}: {e}", tree.display()),
        )
        .path(tree)
        .fix("fix the file named above"),
    }
}

/// The local platforms that can build now, and with which engine.
pub(super) fn buildable(checks: &[Check], accel: &Accelerator) -> Vec<Buildable> {
    let ok = |id: &str| {
        checks
            .iter()
            .any(|c| c.id == id && matches!(c.status, Status::Ok | Status::Warn))
    };
    let mut out = Vec::new();
    let b = |platform: &str, engine: &str, accelerator: &str| Buildable {
        platform: platform.into(),
        engine: engine.into(),
        accelerator: accelerator.into(),
    };
    if ok("qemu") && ok("qemu-img") {
        out.push(b("qemu", "native", &accel.name));
        if ok("packer") {
            out.push(b("qemu", "packer", &accel.name));
        }
    }
    if ok("virtualbox") {
        out.push(b("virtualbox", "native", ""));
        if ok("packer") {
            out.push(b("virtualbox", "packer", ""));
        }
    }
    if ok("vmware") {
        out.push(b("vmware", "native", ""));
        if ok("packer") {
            out.push(b("vmware", "packer", ""));
        }
    }
    out
}

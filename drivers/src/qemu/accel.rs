//! Is KVM usable? `/dev/kvm` existing is not enough: on some hosts (nested or sandboxed
//! virtualization) KVM accepts a VM but a stock kernel never gets going, or crawls. We boot a
//! 512-byte probe (`kvm_probe.S`: real mode → long mode with paging → touch 128 MiB → write
//! to QEMU's isa-debug-exit port) under `-accel kvm` with a short deadline. A working KVM runs
//! it in well under a second; anything slower than the deadline is no better than TCG.

use std::path::Path;
use std::time::Duration;
use tokio::sync::OnceCell;

/// The probe boot sector; rebuild with
/// `as --32 -o p.o kvm_probe.S && ld -m elf_i386 -Ttext 0 --oformat binary -o kvm_probe.bin p.o`.
const PROBE: &[u8; 512] = include_bytes!("kvm_probe.bin");
/// isa-debug-exit turns the probe's `out 0x2a` into exit status (0x2a << 1) | 1.
const PROBE_OK_STATUS: i32 = 85;
const PROBE_DEADLINE: Duration = Duration::from_secs(5);

/// Outcome of the KVM check, with the reason for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmCheck {
    /// KVM can really run a guest (the probe boot sector exited as expected).
    pub usable: bool,
    /// Why (or why not), for logs and the TCG fall-back warning.
    pub reason: String,
}

static KVM: OnceCell<KvmCheck> = OnceCell::const_new();

/// Check once per process (the answer does not change while we run).
pub async fn kvm_usable(qemu_binary: &str) -> KvmCheck {
    KVM.get_or_init(|| probe(qemu_binary.to_string()))
        .await
        .clone()
}

async fn probe(qemu_binary: String) -> KvmCheck {
    let no = |reason: String| KvmCheck {
        usable: false,
        reason,
    };
    let dev = Path::new("/dev/kvm");
    if let Err(e) = std::fs::OpenOptions::new().read(true).write(true).open(dev) {
        return no(format!("/dev/kvm cannot be opened ({e})"));
    }
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            return no(format!(
                "cannot create a temporary directory for the KVM probe: {e}"
            ))
        }
    };
    let img = dir.path().join("probe.img");
    if let Err(e) = std::fs::write(&img, PROBE) {
        return no(format!("cannot write the KVM probe: {e}"));
    }
    let mut cmd = tokio::process::Command::new(&qemu_binary);
    cmd.args([
        "-accel",
        "kvm",
        "-machine",
        "pc",
        // The CPU model a KVM build uses: on some hosts KVM runs a guest with the default model
        // but aborts at vCPU set-up with `-cpu host` ("failed to set MSR 0x10a").
        "-cpu",
        "host",
        "-nodefaults",
        "-display",
        "none",
    ])
    .args([
        "-m",
        "192",
        "-no-reboot",
        "-device",
        "isa-debug-exit,iobase=0xf4,iosize=0x04",
    ])
    .arg("-drive")
    .arg(format!("file={},format=raw,if=ide", img.display()))
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::null())
    .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return no(format!("cannot run {qemu_binary}: {e}")),
    };
    match tokio::time::timeout(PROBE_DEADLINE, child.wait()).await {
        Ok(Ok(status)) if status.code() == Some(PROBE_OK_STATUS) => KvmCheck {
            usable: true,
            reason: "a KVM probe guest ran to completion".into(),
        },
        Ok(Ok(status)) => no(format!("the KVM probe guest failed ({status})")),
        Ok(Err(e)) => no(format!("waiting for the KVM probe failed: {e}")),
        Err(_) => {
            let _ = child.start_kill();
            let _ = child.wait().await;
            no(format!(
                "the KVM probe guest did not finish within {PROBE_DEADLINE:?} (KVM present but \
                 unable to run guests at useful speed)"
            ))
        }
    }
}

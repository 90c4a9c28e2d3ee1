//! What the detected Packer needs so that a bundled target builds out of the box, without the
//! user knowing Packer's quirks. Applied to the template written for `packer build` (never to
//! `osimager dump`, which stays OSImager 1.11.1's template) and, through
//! [`command`](super::command), to Packer's environment. Every change is listed in
//! docs/COMPAT.md ("Packer engine") and reported to the caller as a note.
//!
//! * **Ansible's user behind Packer's SSH proxy.** Packer's `ansible` provisioner (1.6.6 and every
//!   later release, bundled or plugin) runs Ansible against a local SSH proxy and writes
//!   `ansible_user=<user>` into the inventory, where `user` defaults to the user running Packer,
//!   not the communicator's user the proxy really logs in as. Run as root with a non-root
//!   communicator user, Ansible then believes it is root: it skips `become` (same user) and puts
//!   its remote temp files in /root/.ansible/tmp, which the real login user cannot write. The
//!   proxy only admits the login name `user`, so `ansible_user` cannot be fixed in extra vars.
//!   When the provisioner has no `user` (and no `inventory_file` of its own) and the
//!   communicator's `ssh_username` is not the local user, the provisioner gets
//!   `"user": <ssh_username as written>` (Packer renders `{{ user `…` }}` there as well). Ansible
//!   then knows the real remote user: `become`, `~` and the remote temp dir behave as over a
//!   direct SSH connection, whether osimager runs as root or not.
//! * **The proxy's `ssh-rsa` host key.** Packer before 1.10 gives the proxy an RSA key that
//!   only speaks `ssh-rsa` (SHA-1), which OpenSSH 8.8+ refuses ("no matching host key type
//!   found. Their offer: ssh-rsa"): `ANSIBLE_SSH_COMMON_ARGS` gets the options that accept it
//!   for this one connection ([`command::SSH_RSA_OPTIONS`](super::command::SSH_RSA_OPTIONS)).
//! * **KVM that exists but cannot run guests.** With no `accelerator`, Packer's qemu builder picks
//!   KVM whenever /dev/kvm can be opened; on hosts where KVM cannot run a stock kernel (nested or
//!   sandboxed virtualization) the guest stops with "KVM internal error" and Packer waits until
//!   `ssh_timeout`. The native engine confirms KVM with a tiny probe guest; here the same probe
//!   decides, and a failed probe writes `"accelerator": "tcg"`. An explicit `kvm` is left as
//!   asked, with a warning. Dry runs start no probe guest.

use super::detect::{proxy_offers_only_ssh_rsa, PackerVersion};
use crate::plan::BuildPlan;
use crate::provision::template::{render, TemplateEnv};
use serde_json::{Map, Value};

/// What [`adapt`] changed or found, for the environment and the caller.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Adapted {
    /// Give Packer's environment the OpenSSH options for an `ssh-rsa`-only proxy.
    pub proxy_ssh_rsa: bool,
    /// One line per change or warning, for the user.
    pub notes: Vec<String>,
}

/// Facts about the machine [`adapt`] needs (so tests can state them).
#[derive(Debug, Clone, Default)]
pub struct Host {
    /// The user Packer runs as (what its ansible provisioner uses when `user` is unset).
    pub local_user: Option<String>,
    /// Whether KVM can run guests, with the reason; `None` = do not probe (dry run).
    pub kvm: Option<KvmState>,
}

/// KVM on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmState {
    /// /dev/kvm can be opened read-write (what Packer checks to pick KVM by default).
    pub device_opens: bool,
    pub usable: bool,
    pub reason: String,
}

impl Host {
    /// This machine: the local user, and (unless `probe_kvm` is false) the KVM probe when the
    /// plan's qemu builder would leave the choice to Packer or ask for KVM.
    pub fn detect(plan: &BuildPlan, probe_kvm: bool) -> Host {
        Host {
            local_user: local_user_name(),
            kvm: (probe_kvm && kvm_choice(&plan.builder).is_some())
                .then(|| probe_kvm_state(&plan.builder)),
        }
    }
}

/// Adapt `plan` (the one whose template is written for Packer) to Packer `version` on `host`.
pub fn adapt(plan: &mut BuildPlan, version: Option<PackerVersion>, host: &Host) -> Adapted {
    let mut out = Adapted::default();
    let proxied = plan.provisioners.iter().any(uses_ansible_proxy);
    if proxied {
        if let Some(note) = set_ansible_user(plan, host.local_user.as_deref()) {
            out.notes.push(note);
        }
        if proxy_offers_only_ssh_rsa(version) {
            out.proxy_ssh_rsa = true;
            let v = version.map_or_else(|| "this Packer".to_string(), |v| format!("Packer {v}"));
            out.notes.push(format!(
                "note: {v}'s ansible SSH proxy offers only an ssh-rsa host key: ansible-playbook gets \
                 ANSIBLE_SSH_COMMON_ARGS=\"{}\"",
                super::command::SSH_RSA_OPTIONS
            ));
        }
    }
    if let (Some(kvm), Some(choice)) = (&host.kvm, kvm_choice(&plan.builder)) {
        if let Some(note) = kvm_fallback(&mut plan.builder, choice, kvm) {
            out.notes.push(note);
        }
    }
    out
}

/// Does this provisioner entry run Ansible through Packer's local SSH proxy (`type: ansible`
/// with `use_proxy` not false)?
pub fn uses_ansible_proxy(prov: &Value) -> bool {
    let Some(p) = prov.as_object() else {
        return false;
    };
    p.get("type").and_then(Value::as_str) == Some("ansible") && !is_false(p.get("use_proxy"))
}

/// Packer decodes booleans weakly: `false`, `"false"`, `"0"`, `"f"` (any case) are false.
fn is_false(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) => matches!(s.to_ascii_lowercase().as_str(), "false" | "0" | "f"),
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// The communicator's SSH user as written in the builder (`None` for another communicator).
fn ssh_username(builder: &Map<String, Value>) -> Option<&str> {
    let comm = builder
        .get("communicator")
        .and_then(Value::as_str)
        .unwrap_or("ssh");
    if comm != "ssh" {
        return None;
    }
    builder
        .get("ssh_username")
        .and_then(Value::as_str)
        .filter(|u| !u.trim().is_empty())
}

/// `text` with the plan's user variables (and `{{env}}`) rendered as Packer would, or `None`
/// when it uses anything else.
fn rendered(text: &str, variables: &Map<String, Value>) -> Option<String> {
    let env = TemplateEnv {
        user_vars: Some(variables),
        ..Default::default()
    };
    let once = render(text, &env).ok()?;
    let twice = if once.contains("{{") {
        render(&once, &env).ok()?
    } else {
        once
    };
    (!twice.contains("{{")).then_some(twice)
}

/// Give every proxied ansible provisioner without `user` the communicator's user, unless that
/// is the local user anyway. Returns the note, if anything changed.
fn set_ansible_user(plan: &mut BuildPlan, local_user: Option<&str>) -> Option<String> {
    let raw = ssh_username(&plan.builder)?.to_string();
    let actual = rendered(&raw, &plan.variables);
    if actual.as_deref().is_some_and(str::is_empty) {
        return None;
    }
    if actual.is_some() && actual.as_deref() == local_user {
        return None;
    }
    let mut changed = 0;
    for prov in plan.provisioners.iter_mut() {
        if !uses_ansible_proxy(prov) {
            continue;
        }
        let Some(p) = prov.as_object_mut() else {
            continue;
        };
        let has = |k: &str| {
            p.get(k)
                .and_then(Value::as_str)
                .is_some_and(|s| !s.trim().is_empty())
        };
        if has("user") || has("inventory_file") {
            continue;
        }
        p.insert("user".into(), Value::String(raw.clone()));
        changed += 1;
    }
    (changed > 0).then(|| {
        let who = actual.unwrap_or(raw);
        let local = local_user.unwrap_or("unknown");
        format!(
            "note: the ansible provisioner runs as the communicator user {who:?} (\"user\" added to the \
             template: Packer's default is the local user, {local})"
        )
    })
}

/// What the qemu builder leaves to KVM: `None` (not qemu, or `tcg`/`none` chosen), else
/// `Some(explicit)` where `explicit` is true for `accelerator: kvm`.
fn kvm_choice(builder: &Map<String, Value>) -> Option<bool> {
    if builder.get("type").and_then(Value::as_str) != Some("qemu") {
        return None;
    }
    // The probe boots an x86 guest; other emulators are left to Packer.
    let binary = builder
        .get("qemu_binary")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !(binary.is_empty() || binary.ends_with("x86_64")) {
        return None;
    }
    match builder.get("accelerator").and_then(Value::as_str) {
        None | Some("") => Some(false),
        Some(a) if a.eq_ignore_ascii_case("kvm") => Some(true),
        Some(_) => None,
    }
}

fn kvm_fallback(
    builder: &mut Map<String, Value>,
    explicit: bool,
    kvm: &KvmState,
) -> Option<String> {
    if kvm.usable {
        return None;
    }
    if explicit {
        return Some(format!(
            "warning: the qemu builder asks for accelerator kvm, but KVM is not usable here \
             ({}): Packer's guest will not boot. Set qemu_accelerator=tcg in the location, or \
             use --engine native (it falls back to TCG itself)",
            kvm.reason
        ));
    }
    if !kvm.device_opens {
        // Packer picks TCG itself when /dev/kvm cannot be opened.
        return None;
    }
    builder.insert("accelerator".into(), Value::String("tcg".into()));
    Some(format!(
        "note: KVM is not usable here ({}): the template for Packer gets \"accelerator\": \"tcg\" \
         (Packer would pick KVM because /dev/kvm opens); set qemu_accelerator in the location \
         to choose",
        kvm.reason
    ))
}

/// Run the native engine's KVM probe (a tiny guest under `-accel kvm`, a few seconds at most)
/// on a thread of its own, so this works inside or outside an async runtime.
fn probe_kvm_state(builder: &Map<String, Value>) -> KvmState {
    let device_opens = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
        .is_ok();
    let binary = builder
        .get("qemu_binary")
        .and_then(Value::as_str)
        .filter(|b| !b.is_empty())
        .unwrap_or("qemu-system-x86_64")
        .to_string();
    let check = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        Some(rt.block_on(osimager_drivers::qemu::kvm_usable(&binary)))
    })
    .join()
    .ok()
    .flatten();
    match check {
        Some(c) => KvmState {
            device_opens,
            usable: c.usable,
            reason: c.reason,
        },
        None => KvmState {
            device_opens,
            usable: false,
            reason: "the KVM probe could not run".into(),
        },
    }
}

/// The name of the user this process runs as (Go's `user.Current()`, which Packer uses:
/// the password entry of the real uid).
pub fn local_user_name() -> Option<String> {
    // SAFETY: getuid cannot fail; getpwuid_r writes into `pwd` and `buf`, which outlive the
    // call, and `result` points into them (or is null) afterwards.
    unsafe {
        let uid = libc::getuid();
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pwd.pw_name.is_null() {
            return None;
        }
        std::ffi::CStr::from_ptr(pwd.pw_name)
            .to_str()
            .ok()
            .map(str::to_string)
    }
}

#[cfg(test)]
#[path = "quirks_tests.rs"]
mod tests;

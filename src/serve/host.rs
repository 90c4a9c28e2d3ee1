//! What the host offers builds: the accelerator QEMU would really get (the KVM probe boots a
//! tiny guest), the hypervisors and the tools found on PATH with their versions.

use osimager_server::backend::{Accelerator, HostFacts, Tool};
use std::time::Duration;

const TOOLS: [(&str, &str); 7] = [
    ("qemu-system-x86_64", "--version"),
    ("qemu-system-aarch64", "--version"),
    ("qemu-img", "--version"),
    ("packer", "version"),
    ("ansible-playbook", "--version"),
    ("VBoxManage", "--version"),
    ("vmrun", "-v"),
];

async fn version(path: &str, arg: &str) -> Option<String> {
    let out = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::process::Command::new(path)
            .arg(arg)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .ok()?
    .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string())
}

/// Accelerator, hypervisors, tools.
pub async fn facts() -> HostFacts {
    let mut tools = Vec::new();
    for (name, arg) in TOOLS {
        let path = osimager_server::host::which(name);
        let version = match &path {
            Some(p) => version(p, arg).await,
            None => None,
        };
        tools.push(Tool {
            name: name.to_string(),
            path,
            version,
        });
    }
    let found = |n: &str| tools.iter().any(|t| t.name == n && t.path.is_some());
    let mut hypervisors = Vec::new();
    if found("qemu-system-x86_64") || found("qemu-system-aarch64") {
        hypervisors.push("qemu".to_string());
    }
    if found("VBoxManage") {
        hypervisors.push("virtualbox".into());
    }
    if found("vmrun") {
        hypervisors.push("vmware".into());
    }
    let accelerator = if found("qemu-system-x86_64") {
        let k = osimager_drivers::qemu::kvm_usable("qemu-system-x86_64").await;
        Accelerator {
            name: if k.usable { "kvm" } else { "tcg" }.into(),
            hardware: k.usable,
            detail: k.reason,
        }
    } else {
        Accelerator {
            name: "none".into(),
            hardware: false,
            detail: "qemu-system-x86_64 is not on PATH".into(),
        }
    };
    HostFacts {
        accelerator,
        hypervisors,
        tools,
    }
}

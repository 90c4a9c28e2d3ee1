//! The cache key: a digest of everything that can change the installed system, kept as one
//! digest per input so that a miss can say which input changed.
//!
//! Inputs (the name each has in the build log):
//!
//! | input | what is hashed |
//! |---|---|
//! | `osimager version` | this program's version and the cache format |
//! | `builder type` | `qemu`, … |
//! | `ISO` | the ISO's expected checksum (resolved from `iso_checksum`, also `file:` lists); without a checksum its URL, and for a local file its size and modification time |
//! | `boot command` | `boot_command`/`boot_steps` as typed, `{{ .Name }}` filled in; `{{ .HTTPIP }}` and `{{ .HTTPPort }}` stay as written (they change every build and only say where the answer file is served) |
//! | `builder key K` | every other builder key (hardware, disks, firmware, `qemuargs`, `http_content`, …) except those that cannot change the installed system (below) |
//! | `generated file F` | the rendered content of each of the spec's `files` (answer files) |
//! | `data-tree file files/S` | each source file those were rendered from, with the layer it came from |
//! | `http_directory file F` | each file served from `http_directory` (when it is not the build's temp dir, which holds only the generated files) |
//! | `user variable V`, `environment variable V` | what `{{user `V`}}` / `{{env `V`}}` in the hashed keys refer to |
//!
//! Builder keys left out, because they only say how the build talks to the guest, where the
//! result goes or how it is exported: `communicator`, `ssh_*`, `winrm_*`, `shutdown_*`,
//! `boot_wait`, `boot_key_interval`, `boot_keygroup_interval`, `headless`, `display`,
//! `vnc_*`, `http_bind_address`, `http_port_*`, `host_port_*`, `output_directory`, `vm_name`,
//! `name`, `accelerator`, `disk_compression`, `skip_compaction`, `qemu_img_args`,
//! `pause_before_connecting`, `iso_*` (the `ISO` input), `http_directory` (its files are).
//! Provisioners are never part of the key: that is the point of the cache.
//!
//! Every input is hashed with a salt private to the cache directory, so the recorded digests
//! of inputs that hold secrets (an answer file with a password) cannot be tested against
//! guesses by someone who can read the cache but not the salt.

use crate::plan::BuildPlan;
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

/// Bumped when the layout of a cache entry or the meaning of an input changes.
pub const FORMAT: u32 = 1;

/// Builder keys that do not change the installed system (see the module docs).
const NOT_INSTALL_KEYS: &[&str] = &[
    "type",
    "name",
    "vm_name",
    "output_directory",
    "communicator",
    "shutdown_command",
    "shutdown_timeout",
    "boot_wait",
    "boot_command",
    "boot_steps",
    "boot_key_interval",
    "boot_keygroup_interval",
    "headless",
    "display",
    "use_default_display",
    "http_bind_address",
    "http_port_min",
    "http_port_max",
    "http_directory",
    "host_port_min",
    "host_port_max",
    "accelerator",
    "disk_compression",
    "skip_compaction",
    "qemu_img_args",
    "pause_before_connecting",
    "iso_url",
    "iso_urls",
    "iso_checksum",
    "iso_target_path",
    "iso_target_extension",
];

const NOT_INSTALL_PREFIXES: &[&str] = &["ssh_", "winrm_", "vnc_"];

fn install_key(k: &str) -> bool {
    !NOT_INSTALL_KEYS.contains(&k) && !NOT_INSTALL_PREFIXES.iter().any(|p| k.starts_with(p))
}

/// The inputs of one build's key: input name → salted digest (hex).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct KeyInputs {
    pub items: BTreeMap<String, String>,
}

/// How two builds' inputs differ.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Changed(String),
    Added(String),
    Removed(String),
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Changed(n) => write!(f, "{n} changed"),
            Change::Added(n) => write!(f, "{n} is new"),
            Change::Removed(n) => write!(f, "{n} is gone"),
        }
    }
}

impl KeyInputs {
    /// The cache key: a digest over every input.
    pub fn key(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("osimager install cache {FORMAT}\n"));
        for (k, v) in &self.items {
            h.update(k.as_bytes());
            h.update(b"\t");
            h.update(v.as_bytes());
            h.update(b"\n");
        }
        hex::encode(h.finalize())
    }

    /// What changed from `previous` to `self`, in input order.
    pub fn diff(&self, previous: &KeyInputs) -> Vec<Change> {
        let mut out = Vec::new();
        for (k, v) in &self.items {
            match previous.items.get(k) {
                Some(p) if p == v => {}
                Some(_) => out.push(Change::Changed(k.clone())),
                None => out.push(Change::Added(k.clone())),
            }
        }
        for k in previous.items.keys() {
            if !self.items.contains_key(k) {
                out.push(Change::Removed(k.clone()));
            }
        }
        out
    }
}

/// Collects inputs, hashing each with the salt.
struct Hasher<'a> {
    salt: &'a [u8],
    items: BTreeMap<String, String>,
}

impl Hasher<'_> {
    fn add(&mut self, name: impl Into<String>, bytes: &[u8]) {
        let name = name.into();
        let mut h = Sha256::new();
        h.update(self.salt);
        h.update(name.as_bytes());
        h.update([0]);
        h.update(bytes);
        self.items.insert(name, hex::encode(h.finalize()));
    }
}

/// What the key needs beyond the plan.
pub struct KeyContext<'a> {
    /// The ISO's identity (see [`crate::iso::identity`]); "" for a build without an ISO.
    pub iso: &'a str,
    /// The build's temp dir (an `http_directory` equal to it holds only generated files).
    pub temp_dir: &'a Path,
    /// `http_directory`, absolute.
    pub http_directory: Option<&'a Path>,
    /// The build's environment, for `{{env `X`}}`.
    pub env: &'a BTreeMap<String, String>,
    /// The cache directory's salt.
    pub salt: &'a [u8],
}

/// The key inputs of `plan` (see the module docs).
pub fn inputs(plan: &BuildPlan, boot_command: &str, cx: &KeyContext<'_>) -> KeyInputs {
    let mut h = Hasher {
        salt: cx.salt,
        items: BTreeMap::new(),
    };
    h.add(
        "osimager version",
        format!("{} format {FORMAT}", env!("CARGO_PKG_VERSION")).as_bytes(),
    );
    h.add("builder type", plan.builder_type().as_bytes());
    if !cx.iso.is_empty() {
        h.add("ISO", cx.iso.as_bytes());
    }
    if !boot_command.is_empty() {
        h.add("boot command", boot_command.as_bytes());
    }
    let mut templated = String::new();
    for (k, v) in &plan.builder {
        if !install_key(k) {
            continue;
        }
        let text = v.to_string();
        if text.contains("{{") {
            templated.push_str(&text);
        }
        h.add(format!("builder key {k}"), text.as_bytes());
    }
    templated.push_str(boot_command);
    for (kind, name) in template_refs(&templated) {
        match kind {
            "user" => {
                let v = plan.variables.get(&name).cloned().unwrap_or(Value::Null);
                h.add(format!("user variable {name}"), v.to_string().as_bytes());
            }
            _ => {
                let v = cx.env.get(&name).map(String::as_str).unwrap_or("");
                h.add(format!("environment variable {name}"), v.as_bytes());
            }
        }
    }
    for f in &plan.inputs.files {
        h.add(format!("generated file {}", f.dest), f.content.as_bytes());
    }
    for f in &plan.files {
        for src in &f.sources {
            let name = src.to_string_lossy();
            if name.contains(">>") || name.contains("<<") || name.contains('>') {
                continue; // names built from defs: the rendered content covers them
            }
            let rel = format!("files/{name}");
            if let Some(path) = plan.inputs.resolve_data_path(&rel) {
                let layer = if path.starts_with(&plan.inputs.user_dir)
                    && !plan.inputs.user_dir.as_os_str().is_empty()
                {
                    "user layer"
                } else {
                    "bundled tree"
                };
                let mut bytes = layer.as_bytes().to_vec();
                bytes.push(0);
                bytes.extend(std::fs::read(&path).unwrap_or_default());
                h.add(format!("data-tree file {rel}"), &bytes);
            }
        }
    }
    if let Some(dir) = cx.http_directory {
        if !same_dir(dir, cx.temp_dir) {
            for (rel, bytes) in walk(dir) {
                h.add(format!("http_directory file {rel}"), &bytes);
            }
        }
    }
    KeyInputs { items: h.items }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (std::fs::canonicalize(a), std::fs::canonicalize(b)) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    }
}

/// Every file under `dir` (relative path, content), sorted.
fn walk(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let rel = p
                    .strip_prefix(dir)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned();
                out.push((rel, bytes));
            }
        }
    }
    out.sort();
    out
}

/// `{{user `x`}}` and `{{env `X`}}` references in builder values.
fn template_refs(text: &str) -> Vec<(&'static str, String)> {
    let re = regex::Regex::new(r"\{\{\s*(user|env)\s+`([^`]*)`\s*\}\}").expect("valid regex");
    let mut out: Vec<(&'static str, String)> = re
        .captures_iter(text)
        .map(|c| {
            (
                if &c[1] == "user" { "user" } else { "env" },
                c[2].to_string(),
            )
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::RenderedFile;
    use serde_json::json;

    fn plan() -> BuildPlan {
        let mut p = BuildPlan {
            target: "qemu/lab/os-1-x86_64".into(),
            builder: json!({"type": "qemu", "memory": 512, "disk_size": "2048M",
                "ssh_password": "pw", "output_directory": "/out/a", "boot_wait": "3s",
                "qemuargs": [["-netdev", "user,hostfwd=tcp::{{ .SSHHostPort }}-:22"]]})
            .as_object()
            .unwrap()
            .clone(),
            ..Default::default()
        };
        p.inputs.files = vec![RenderedFile {
            dest: "ks.cfg".into(),
            content: "rootpw secret\n".into(),
        }];
        p
    }

    fn key_of(p: &BuildPlan, boot: &str, iso: &str) -> KeyInputs {
        let env = BTreeMap::new();
        inputs(
            p,
            boot,
            &KeyContext {
                iso,
                temp_dir: Path::new("/nonexistent/tmp"),
                http_directory: None,
                env: &env,
                salt: b"salt",
            },
        )
    }

    #[test]
    fn each_class_of_input_changes_the_key_and_is_named() {
        let p = plan();
        let base = key_of(&p, "<esc>linux ks={{ .HTTPIP }}<enter>", "sha256:aa");
        let same = key_of(&p, "<esc>linux ks={{ .HTTPIP }}<enter>", "sha256:aa");
        assert_eq!(base.key(), same.key());
        let iso = key_of(&p, "<esc>linux ks={{ .HTTPIP }}<enter>", "sha256:bb");
        assert_eq!(iso.diff(&base), [Change::Changed("ISO".into())]);
        let boot = key_of(&p, "<esc>linux text ks={{ .HTTPIP }}<enter>", "sha256:aa");
        assert_eq!(boot.diff(&base), [Change::Changed("boot command".into())]);
        let mut m = p.clone();
        m.builder.insert("memory".into(), json!(1024));
        let mem = key_of(&m, "<esc>linux ks={{ .HTTPIP }}<enter>", "sha256:aa");
        assert_eq!(
            mem.diff(&base),
            [Change::Changed("builder key memory".into())]
        );
        let mut f = p.clone();
        f.inputs.files[0].content = "rootpw other\n".into();
        let file = key_of(&f, "<esc>linux ks={{ .HTTPIP }}<enter>", "sha256:aa");
        assert_eq!(
            file.diff(&base),
            [Change::Changed("generated file ks.cfg".into())]
        );
        for k in [&iso, &boot, &mem, &file] {
            assert_ne!(k.key(), base.key());
        }
    }

    #[test]
    fn keys_that_do_not_change_the_install_are_left_out() {
        let p = plan();
        let base = key_of(&p, "", "");
        let mut q = p.clone();
        for (k, v) in [
            ("ssh_password", json!("other")),
            ("output_directory", json!("/out/b")),
            ("boot_wait", json!("10s")),
            ("vm_name", json!("x")),
            ("disk_compression", json!(true)),
            ("accelerator", json!("kvm")),
        ] {
            q.builder.insert(k.into(), v);
        }
        assert_eq!(key_of(&q, "", "").key(), base.key());
        assert!(!base.items.keys().any(|k| k.contains("ssh_")));
    }

    #[test]
    fn digests_are_salted_and_hold_no_secret() {
        let p = plan();
        let env = BTreeMap::new();
        let cx = |salt: &'static [u8]| KeyContext {
            iso: "",
            temp_dir: Path::new("/t"),
            http_directory: None,
            env: &env,
            salt,
        };
        let a = inputs(&p, "", &cx(b"one"));
        let b = inputs(&p, "", &cx(b"two"));
        assert_ne!(a.key(), b.key());
        let text = serde_json::to_string(&a).unwrap();
        assert!(!text.contains("secret"), "{text}");
    }

    #[test]
    fn template_references_are_part_of_the_key() {
        let mut p = plan();
        p.builder.insert("memory".into(), json!("{{user `mem`}}"));
        p.variables.insert("mem".into(), json!("1024"));
        let a = key_of(&p, "", "");
        p.variables.insert("mem".into(), json!("2048"));
        let b = key_of(&p, "", "");
        assert_eq!(b.diff(&a), [Change::Changed("user variable mem".into())]);
    }
}

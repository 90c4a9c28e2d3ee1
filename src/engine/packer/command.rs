//! The `packer build` command line and the environment it runs with, as OSImager's `run_packer`
//! builds them.

use crate::engine::{BuildOptions, OnError};
use crate::plan::BuildPlan;
use crate::secret::{redact, Secret};
use serde_json::Value;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// The Ansible settings OSImager exports for every build (spec `evars` may override them).
pub const ANSIBLE_DEFAULTS: &[(&str, &str)] = &[
    ("ANSIBLE_RETRY_FILES_ENABLED", "False"),
    ("ANSIBLE_WARNINGS", "False"),
    ("ANSIBLE_NOCOWS", "1"),
    ("ANSIBLE_DISPLAY_SKIPPED_HOSTS", "False"),
    ("ANSIBLE_STDOUT_CALLBACK", "minimal"),
];

/// OpenSSH options that let OpenSSH 8.8+ (which refuses RSA with SHA-1) log in to an SSH server
/// whose only host key algorithm and user-key signature are `ssh-rsa`: the SSH proxy of Packer's
/// `ansible` provisioner before 1.10 (see [`super::detect::proxy_offers_only_ssh_rsa`]).
/// `PubkeyAcceptedKeyTypes` is the spelling every OpenSSH since 7.0 reads (8.5 renamed it
/// `PubkeyAcceptedAlgorithms` and keeps the old name as an alias).
pub const SSH_RSA_OPTIONS: &str =
    "-o HostKeyAlgorithms=+ssh-rsa -o PubkeyAcceptedKeyTypes=+ssh-rsa";

/// Where the OpenSSH options for Packer's ansible proxy go: Ansible's `ssh_common_args`, which is
/// passed to ssh, scp and sftp alike. Packer 1.6.6 itself passes `--ssh-extra-args` (which
/// overrides `ANSIBLE_SSH_EXTRA_ARGS`), and `ANSIBLE_SSH_ARGS` would replace the `ssh_args` of
/// the data tree's ansible.cfg (ControlMaster/ControlPersist); nothing sets
/// `--ssh-common-args` unless the spec does, so this survives in the ansible-playbook child.
pub const SSH_COMMON_ARGS_VAR: &str = "ANSIBLE_SSH_COMMON_ARGS";

/// One environment variable set for Packer.
#[derive(Debug, Clone)]
pub enum EnvValue {
    Plain(String),
    Secret(Secret),
}

impl EnvValue {
    pub fn expose(&self) -> &str {
        match self {
            EnvValue::Plain(s) => s,
            EnvValue::Secret(s) => s.expose(),
        }
    }
    /// What may be shown: secrets as `***`, everything else through the redactor.
    pub fn shown(&self) -> String {
        match self {
            EnvValue::Plain(s) => redact(s),
            EnvValue::Secret(_) => "***".into(),
        }
    }
}

/// `packer build` arguments: OSImager's order (`-timestamp-ui`, `-on-error=`, `-force`,
/// `-debug`, template). `-k` without an explicit on-error means `-on-error=abort`.
pub fn build_args(opts: &BuildOptions, template: &Path) -> Vec<String> {
    let mut args = vec!["build".to_string()];
    if opts.timestamp_ui {
        args.push("-timestamp-ui".into());
    }
    match opts.on_error {
        OnError::Abort => args.push("-on-error=abort".into()),
        OnError::Ask => args.push("-on-error=ask".into()),
        OnError::Cleanup if opts.keep => args.push("-on-error=abort".into()),
        OnError::Cleanup => {}
    }
    if opts.force {
        args.push("-force".into());
    }
    if opts.debug {
        args.push("-debug".into());
    }
    args.push(template.display().to_string());
    args
}

/// The environment Packer gets on top of ours, in OSImager's order, and what to unset.
#[derive(Debug, Clone, Default)]
pub struct PackerEnv {
    pub set: Vec<(String, EnvValue)>,
    pub remove: Vec<String>,
}

impl PackerEnv {
    fn put(&mut self, key: &str, value: EnvValue) {
        if let Some(slot) = self.set.iter_mut().find(|(k, _)| k == key) {
            slot.1 = value;
        } else {
            self.set.push((key.to_string(), value));
        }
    }
    pub fn get(&self, key: &str) -> Option<&str> {
        self.set
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.expose())
    }
    /// Apply to a command.
    pub fn apply(&self, cmd: &mut std::process::Command) {
        for k in &self.remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.set {
            cmd.env(k, v.expose());
        }
    }
    /// `KEY=value` lines for `-n`, secrets hidden.
    pub fn shown_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .set
            .iter()
            .map(|(k, v)| format!("{k}={}", v.shown()))
            .collect();
        lines.extend(self.remove.iter().map(|k| format!("unset {k}")));
        lines
    }
}

/// Inputs to the environment that do not come from the plan.
#[derive(Debug, Clone, Default)]
pub struct EnvInputs {
    /// The Ansible venv to activate (`<venv_dir>/<ansible_version>`), already checked to exist.
    pub venv: Option<PathBuf>,
    pub vault_addr: String,
    pub vault_token: Option<Secret>,
    /// The PATH we inherit (OSImager prefixes the venv's bin to the PATH it started with).
    pub inherited_path: Option<OsString>,
    /// An ansible provisioner goes through a Packer SSH proxy that offers only `ssh-rsa`: add
    /// [`SSH_RSA_OPTIONS`] to `ANSIBLE_SSH_COMMON_ARGS`.
    pub proxy_ssh_rsa: bool,
    /// `ANSIBLE_SSH_COMMON_ARGS` of our own environment (kept, ours appended).
    pub inherited_ssh_common_args: Option<String>,
    /// Our environment already sets `CHECKPOINT_DISABLE` (then it decides, not us).
    pub inherited_checkpoint_setting: bool,
}

fn env_string(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Build Packer's environment: Ansible defaults, spec `evars` (which carry `RES_OPTIONS` and the
/// spec's own variables), the venv (what `bin/activate` does: VIRTUAL_ENV, PATH, no PYTHONHOME),
/// VAULT_TOKEN/VAULT_ADDR when a token is configured, PACKER_LOG (-L), PACKER_LOG_PATH (-N).
/// CHECKPOINT_DISABLE=1 keeps Packer from calling HashiCorp's update check (unless the caller's
/// environment already decides it). With `proxy_ssh_rsa`, the OpenSSH options an ssh-rsa-only
/// proxy needs go into ANSIBLE_SSH_COMMON_ARGS (not in OSImager 1.11.1: docs/COMPAT.md).
pub fn packer_env(plan: &BuildPlan, opts: &BuildOptions, inputs: &EnvInputs) -> PackerEnv {
    let mut env = PackerEnv::default();
    for (k, v) in ANSIBLE_DEFAULTS {
        env.put(k, EnvValue::Plain((*v).to_string()));
    }
    for (k, v) in &plan.evars {
        env.put(k, EnvValue::Plain(env_string(v)));
    }
    if inputs.proxy_ssh_rsa {
        let given = env
            .get(SSH_COMMON_ARGS_VAR)
            .map(str::to_string)
            .or_else(|| inputs.inherited_ssh_common_args.clone())
            .unwrap_or_default();
        if let Some(value) = with_ssh_rsa(&given) {
            env.put(SSH_COMMON_ARGS_VAR, EnvValue::Plain(value));
        }
    }
    if let Some(venv) = &inputs.venv {
        let bin = venv.join("bin");
        let bin_s = bin.display().to_string();
        let base = env
            .get("PATH")
            .map(str::to_string)
            .or_else(|| {
                inputs
                    .inherited_path
                    .as_ref()
                    .map(|p| p.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        let already = base.split(':').next() == Some(bin_s.as_str());
        let path = if already || base.is_empty() {
            if base.is_empty() {
                bin_s.clone()
            } else {
                base
            }
        } else {
            format!("{bin_s}:{base}")
        };
        env.put("VIRTUAL_ENV", EnvValue::Plain(venv.display().to_string()));
        env.put("PATH", EnvValue::Plain(path));
        env.remove.push("PYTHONHOME".into());
    }
    if let Some(token) = &inputs.vault_token {
        if !token.expose().is_empty() {
            env.put("VAULT_TOKEN", EnvValue::Secret(token.clone()));
            env.put("VAULT_ADDR", EnvValue::Plain(inputs.vault_addr.clone()));
        }
    }
    if opts.log {
        env.put("PACKER_LOG", EnvValue::Plain("1".into()));
    }
    if let Some(f) = &opts.logfile {
        env.put("PACKER_LOG_PATH", EnvValue::Plain(f.display().to_string()));
    }
    if !inputs.inherited_checkpoint_setting {
        env.put("CHECKPOINT_DISABLE", EnvValue::Plain("1".into()));
    }
    env
}

/// `args` with [`SSH_RSA_OPTIONS`] appended, or `None` when `args` already chooses the host key
/// algorithms itself (the caller's choice stands).
fn with_ssh_rsa(args: &str) -> Option<String> {
    if args.to_ascii_lowercase().contains("hostkeyalgorithms") {
        None
    } else if args.trim().is_empty() {
        Some(SSH_RSA_OPTIONS.to_string())
    } else {
        Some(format!("{} {SSH_RSA_OPTIONS}", args.trim_end()))
    }
}

/// Quote for display the way a shell would need it (plain words stay plain, so the line reads
/// exactly like OSImager's `' '.join(cmd)` for ordinary paths).
pub fn shell_quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

/// The printed command line.
pub fn command_line(program: &str, args: &[String]) -> String {
    std::iter::once(program)
        .chain(args.iter().map(String::as_str))
        .map(shell_quote)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flag_mapping() {
        let t = Path::new("/tmp/x/n.json");
        let mut o = BuildOptions::default();
        assert_eq!(build_args(&o, t), vec!["build", "/tmp/x/n.json"]);
        o.keep = true;
        o.force = true;
        o.debug = true;
        o.timestamp_ui = true;
        assert_eq!(
            build_args(&o, t),
            vec![
                "build",
                "-timestamp-ui",
                "-on-error=abort",
                "-force",
                "-debug",
                "/tmp/x/n.json"
            ]
        );
        o.on_error = OnError::Ask;
        assert_eq!(build_args(&o, t)[2], "-on-error=ask");
    }

    #[test]
    fn env_order_venv_and_secret() {
        let mut plan = BuildPlan::default();
        plan.evars.insert("ANSIBLE_NOCOWS".into(), json!("0"));
        plan.evars
            .insert("RES_OPTIONS".into(), json!("nameserver 10.0.0.1"));
        let opts = BuildOptions {
            log: true,
            ..Default::default()
        };
        let inputs = EnvInputs {
            venv: Some(PathBuf::from("/v/2.18")),
            vault_addr: "http://127.0.0.1:8200".into(),
            vault_token: Some(Secret::new("s.tok-very-secret")),
            inherited_path: Some("/usr/bin:/bin".into()),
            ..Default::default()
        };
        let env = packer_env(&plan, &opts, &inputs);
        assert_eq!(env.get("ANSIBLE_NOCOWS"), Some("0"));
        assert_eq!(env.get("PATH"), Some("/v/2.18/bin:/usr/bin:/bin"));
        assert_eq!(env.get("VIRTUAL_ENV"), Some("/v/2.18"));
        assert_eq!(env.get("PACKER_LOG"), Some("1"));
        let shown = env.shown_lines().join("\n");
        assert!(shown.contains("VAULT_TOKEN=***"));
        assert!(!shown.contains("very-secret"));
        assert!(shown.contains("unset PYTHONHOME"));
    }

    #[test]
    fn ssh_rsa_options_for_the_proxy() {
        let mut plan = BuildPlan::default();
        let opts = BuildOptions::default();
        let mut inputs = EnvInputs::default();
        assert_eq!(
            packer_env(&plan, &opts, &inputs).get(SSH_COMMON_ARGS_VAR),
            None
        );
        inputs.proxy_ssh_rsa = true;
        assert_eq!(
            packer_env(&plan, &opts, &inputs).get(SSH_COMMON_ARGS_VAR),
            Some(SSH_RSA_OPTIONS)
        );
        // Ours are appended to what the caller's environment or the spec's evars give.
        inputs.inherited_ssh_common_args = Some("-o ProxyJump=bastion".into());
        assert_eq!(
            packer_env(&plan, &opts, &inputs).get(SSH_COMMON_ARGS_VAR),
            Some(format!("-o ProxyJump=bastion {SSH_RSA_OPTIONS}").as_str())
        );
        plan.evars
            .insert(SSH_COMMON_ARGS_VAR.into(), json!("-o ConnectTimeout=30"));
        assert_eq!(
            packer_env(&plan, &opts, &inputs).get(SSH_COMMON_ARGS_VAR),
            Some(format!("-o ConnectTimeout=30 {SSH_RSA_OPTIONS}").as_str())
        );
        // A spec that chooses the host key algorithms itself is left alone.
        plan.evars.insert(
            SSH_COMMON_ARGS_VAR.into(),
            json!("-o HostKeyAlgorithms=ssh-ed25519"),
        );
        assert_eq!(
            packer_env(&plan, &opts, &inputs).get(SSH_COMMON_ARGS_VAR),
            Some("-o HostKeyAlgorithms=ssh-ed25519")
        );
    }

    #[test]
    fn quoting() {
        assert_eq!(
            command_line("packer", &["build".into(), "/a b/c.json".into()]),
            "packer build '/a b/c.json'"
        );
    }
}

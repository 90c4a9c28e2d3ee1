//! Provisioners: run the Packer-shaped entries of [`BuildPlan::provisioners`] against a guest
//! reachable over SSH, the way Packer would (ansible with `use_proxy=false` semantics, shell,
//! shell-local, file).
//!
//! Every entry is checked before the first one runs (type, keys, templates), so a typo in the
//! last provisioner does not cost a whole Ansible run. Common Packer keys work on every type:
//! `only` / `except` (build names), `override` (per-build keys), `pause_before`, `timeout`,
//! `max_retries`.
//!
//! [`BuildPlan::provisioners`]: crate::plan::BuildPlan::provisioners

mod ansible;
mod entry;
mod file;
mod local;
mod shell;
pub mod template;

pub use entry::ProvisionError;

use crate::comm::{parse_duration, wait_ready, CommError, Session, SshConfig};
use entry::Entry;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use template::TemplateEnv;
use tokio::sync::{MappedMutexGuard, Mutex, MutexGuard};

/// Callback receiving every provisioner output line (already redacted).
pub type OutputFn = Arc<dyn Fn(&str) + Send + Sync>;

/// Everything provisioners need to know about the build and the guest.
pub struct ProvisionContext {
    /// Address of the guest's SSH server as seen from this host (usually 127.0.0.1 and the
    /// forwarded port).
    pub host: String,
    pub port: u16,
    /// Credentials and communicator settings (`ssh_username`, `ssh_password`, …).
    pub ssh: SshConfig,
    /// Packer build name (`packer_build_name`, `PACKER_BUILD_NAME`, `only`/`except`).
    pub build_name: String,
    /// Builder type (`packer_builder_type`, `PACKER_BUILDER_TYPE`).
    pub builder_type: String,
    /// Working directory of local commands (ansible-playbook, shell-local); relative paths in
    /// provisioner entries resolve against it. OSImager runs from its data directory.
    pub work_dir: PathBuf,
    /// Private directory for generated files (inventory, vars file with the password, scripts).
    pub temp_dir: PathBuf,
    /// Extra environment for local commands (the spec's `evars`, ANSIBLE_* defaults, PATH).
    pub env: BTreeMap<String, String>,
    /// Packer user variables, for `{{user `x`}}`.
    pub user_vars: Map<String, Value>,
    /// Extra template fields (`HTTPIP`, `HTTPPort`, `Name`, …) for `{{ .Field }}`.
    pub template_fields: BTreeMap<String, String>,
    /// `host:port` of the build's HTTP server, if any (`packer_http_addr`, `PACKER_HTTP_ADDR`).
    pub http_addr: Option<String>,
    /// ansible-playbook to run when an entry has no `command`. Default: `ansible-playbook` from
    /// `venv_bin`, else from PATH (the PATH in `env` if set there).
    pub ansible_playbook_cmd: Option<PathBuf>,
    /// `bin` directory of the Ansible venv the spec asks for (OSImager `ansible_version`).
    pub venv_bin: Option<PathBuf>,
    /// Output lines go to `tracing` and, when set, here.
    pub on_output: Option<OutputFn>,
    /// The environment local commands start from (the build's); `None`: this process's.
    pub process_env: Option<BTreeMap<String, String>>,
    /// Values redacted from every output line.
    pub secrets: crate::secret::Registry,
    session: Mutex<Option<Session>>,
}

impl ProvisionContext {
    pub fn new(
        host: impl Into<String>,
        port: u16,
        ssh: SshConfig,
        build_name: impl Into<String>,
        builder_type: impl Into<String>,
        work_dir: impl Into<PathBuf>,
        temp_dir: impl Into<PathBuf>,
    ) -> Self {
        ProvisionContext {
            host: host.into(),
            port,
            ssh,
            build_name: build_name.into(),
            builder_type: builder_type.into(),
            work_dir: work_dir.into(),
            temp_dir: temp_dir.into(),
            env: BTreeMap::new(),
            user_vars: Map::new(),
            template_fields: BTreeMap::new(),
            http_addr: None,
            ansible_playbook_cmd: None,
            venv_bin: None,
            on_output: None,
            process_env: None,
            secrets: crate::secret::Registry::current(),
            session: Mutex::new(None),
        }
    }

    /// Run local commands in the build's environment `vars` (not this process's) and redact
    /// their output with the build's `secrets`.
    pub fn with_environment(
        mut self,
        vars: BTreeMap<String, String>,
        secrets: crate::secret::Registry,
    ) -> Self {
        self.process_env = Some(vars);
        self.secrets = secrets;
        self
    }

    /// A context for `plan`'s guest at `host:port`: communicator settings from the builder
    /// block, build name = the builder's `name` (OSImager sets the spec name) or its type, the
    /// spec's `evars` as environment, the Packer user variables, and the plan's data directory
    /// as working directory (OSImager runs Packer and Ansible there).
    pub fn from_plan(
        plan: &crate::plan::BuildPlan,
        host: impl Into<String>,
        port: u16,
        temp_dir: impl Into<PathBuf>,
    ) -> Result<Self, CommError> {
        let ssh = SshConfig::from_builder(&plan.builder)?;
        let build_name = plan
            .builder
            .get("name")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or(plan.builder_type())
            .to_string();
        let mut ctx = ProvisionContext::new(
            host,
            port,
            ssh,
            build_name,
            plan.builder_type(),
            plan.data_dir.clone(),
            temp_dir,
        );
        ctx.env = plan
            .evars
            .iter()
            .map(|(k, v)| (k.clone(), template::value_text(v)))
            .collect();
        ctx.user_vars = plan.variables.clone();
        ctx.venv_bin = plan
            .venv
            .as_ref()
            .map(|v| plan.inputs.venv_dir.join(v).join("bin"))
            .filter(|b| b.is_dir());
        Ok(ctx)
    }

    /// Reuse a session the engine already has (otherwise the first remote provisioner connects).
    pub fn with_session(self, session: Session) -> Self {
        ProvisionContext {
            session: Mutex::new(Some(session)),
            ..self
        }
    }

    /// Take the session back (e.g. for the shutdown command).
    pub fn into_session(self) -> Option<Session> {
        self.session.into_inner()
    }

    /// The SSH session, (re)connecting when there is none or it dropped (after a reboot).
    pub async fn session(&self) -> Result<MappedMutexGuard<'_, Session>, CommError> {
        let mut guard = self.session.lock().await;
        if guard.as_ref().is_none_or(Session::is_closed) {
            *guard = Some(wait_ready(&self.host, self.port, &self.ssh).await?);
        }
        Ok(MutexGuard::map(guard, |s| {
            s.as_mut().expect("session set above")
        }))
    }

    /// Forget the current session (the next remote provisioner reconnects).
    pub async fn drop_session(&self) {
        if let Some(s) = self.session.lock().await.take() {
            s.close().await;
        }
    }

    pub(crate) fn output(&self, prefix: &str, line: &str) {
        tracing::info!(target: "osimager::provision", "{prefix}{line}");
        if let Some(f) = &self.on_output {
            f(&format!("{prefix}{line}"));
        }
    }

    pub(crate) fn template_env(&self) -> TemplateEnv<'_> {
        TemplateEnv {
            user_vars: Some(&self.user_vars),
            env: Some(&self.env),
            fields: self.template_fields.clone(),
            build_name: &self.build_name,
            build_type: &self.builder_type,
            pwd: self.work_dir.to_str().unwrap_or(""),
            timestamp: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
        }
    }

    /// Resolve a local path from an entry against `work_dir`.
    pub(crate) fn local_path(&self, p: &str) -> PathBuf {
        let p = PathBuf::from(p);
        if p.is_absolute() {
            p
        } else {
            self.work_dir.join(p)
        }
    }
}

const COMMON_KEYS: &[&str] = &[
    "type",
    "name",
    "only",
    "except",
    "override",
    "pause_before",
    "timeout",
    "max_retries",
];

/// Run the provisioners in order. All entries are validated first; the first failure stops the
/// run with an error naming the entry (`provisioners[i]`, its type) and what to do.
pub async fn run_all(provisioners: &[Value], ctx: &ProvisionContext) -> Result<(), ProvisionError> {
    let mut prepared = Vec::new();
    for (index, raw) in provisioners.iter().enumerate() {
        if let Some(e) = prepare(index, raw, ctx)? {
            prepared.push(e);
        }
    }
    for entry in &prepared {
        run_one(entry, ctx).await?;
    }
    Ok(())
}

/// Check one entry: type, keys, only/except/override, templates. `None` = skipped for this build.
fn prepare(
    index: usize,
    raw: &Value,
    ctx: &ProvisionContext,
) -> Result<Option<Entry>, ProvisionError> {
    let obj = raw.as_object().ok_or_else(|| ProvisionError::Invalid {
        index,
        kind: String::new(),
        message: format!("expected an object, got {raw}"),
    })?;
    let kind = obj
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let keys: &[&str] = match kind.as_str() {
        "ansible" => ansible::KEYS,
        "shell" => shell::REMOTE_KEYS,
        "shell-local" => shell::LOCAL_KEYS,
        "file" => file::KEYS,
        _ => return Err(ProvisionError::UnknownType { index, kind }),
    };
    let mut e = Entry::new(index, kind, obj.clone());
    for name in ["only", "except"] {
        let list = e.strings(name)?;
        if !list.is_empty() {
            let listed = list.contains(&ctx.build_name);
            if (name == "only") != listed {
                tracing::info!(
                    "provisioners[{index}] ({}) skipped for build {:?} ({name})",
                    e.kind,
                    ctx.build_name
                );
                return Ok(None);
            }
        }
    }
    if let Some(ov) = obj.get("override") {
        let ov = ov
            .as_object()
            .ok_or_else(|| e.invalid("override must be an object keyed by build name"))?;
        if let Some(mine) = ov.get(&ctx.build_name) {
            let mine = mine
                .as_object()
                .ok_or_else(|| e.invalid("override entries must be objects"))?;
            for (k, v) in mine {
                e.map.insert(k.clone(), v.clone());
            }
        }
    }
    for k in e.map.keys() {
        if !keys.contains(&k.as_str()) && !COMMON_KEYS.contains(&k.as_str()) {
            return Err(e.invalid(format!(
                "key {k:?} is not supported by the native engine's {} provisioner (supported: {}); remove it or use --engine packer",
                e.kind,
                keys.join(", ")
            )));
        }
    }
    let rendered = template::render_value(
        &Value::Object(e.map.clone()),
        &ctx.template_env(),
        &["execute_command"],
    )
    .map_err(|m| e.invalid(m))?;
    if let Value::Object(m) = rendered {
        e.map = m;
    }
    match e.kind.as_str() {
        "ansible" => ansible::check(&e)?,
        "shell" => shell::check_remote(&e)?,
        "shell-local" => shell::check_local(&e)?,
        _ => file::check(&e)?,
    }
    Ok(Some(e))
}

async fn run_one(e: &Entry, ctx: &ProvisionContext) -> Result<(), ProvisionError> {
    if let Some(p) = e.duration("pause_before")? {
        tracing::info!(
            "provisioners[{}] ({}): pausing {:?} before running",
            e.index,
            e.kind,
            p
        );
        tokio::time::sleep(p).await;
    }
    let timeout = e.duration("timeout")?.filter(|d| !d.is_zero());
    let retries = e.uint("max_retries")?.unwrap_or(0);
    let mut attempt = 0;
    loop {
        tracing::info!("provisioners[{}]: running {} provisioner", e.index, e.kind);
        let fut = dispatch(e, ctx);
        let r = match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.unwrap_or_else(|_| {
                Err(e.failed(format!(
                    "did not finish within timeout {} and was stopped: raise the provisioner's \
                     `timeout`, or find what it waits for in its output",
                    crate::comm::fmt_duration(t)
                )))
            }),
            None => fut.await,
        };
        match r {
            Err(err) if attempt < retries => {
                attempt += 1;
                tracing::warn!("{err}; retrying ({attempt} of {retries})");
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            other => return other,
        }
    }
}

async fn dispatch(e: &Entry, ctx: &ProvisionContext) -> Result<(), ProvisionError> {
    match e.kind.as_str() {
        "ansible" => ansible::run(e, ctx).await,
        "shell" => shell::run_remote(e, ctx).await,
        "shell-local" => shell::run_local(e, ctx).await,
        _ => file::run(e, ctx).await,
    }
}

pub(crate) fn parse_dur(e: &Entry, key: &str, v: &str) -> Result<Duration, ProvisionError> {
    parse_duration(v).map_err(|m| e.invalid(format!("{key}: {m}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn plan() -> crate::plan::BuildPlan {
        let obj = |v: Value| v.as_object().unwrap().clone();
        crate::plan::BuildPlan {
            builder: obj(
                json!({"type": "qemu", "name": "debian-12", "ssh_username": "root",
                "ssh_password": "plan-secret-pw", "ssh_timeout": "30m"}),
            ),
            variables: obj(json!({"platform-name": "kvm"})),
            evars: obj(json!({"ANSIBLE_NOCOWS": "1", "N": 2})),
            data_dir: PathBuf::from("/data"),
            ..Default::default()
        }
    }

    #[test]
    fn context_from_plan() {
        let ctx = ProvisionContext::from_plan(&plan(), "127.0.0.1", 2222, "/tmp/x").unwrap();
        assert_eq!(ctx.build_name, "debian-12");
        assert_eq!(ctx.builder_type, "qemu");
        assert_eq!(ctx.ssh.timeout, Duration::from_secs(1800));
        assert_eq!(ctx.env["N"], "2");
        assert_eq!(ctx.work_dir, PathBuf::from("/data"));
        assert_eq!(ctx.user_vars["platform-name"], "kvm");
    }

    #[test]
    fn only_except_override_and_templates() {
        let ctx = ProvisionContext::from_plan(&plan(), "127.0.0.1", 2222, "/tmp/x").unwrap();
        let skip = json!({"type": "shell", "inline": "poweroff", "only": ["other"]});
        assert!(prepare(0, &skip, &ctx).unwrap().is_none());
        let skip = json!({"type": "shell", "inline": "poweroff", "except": ["debian-12"]});
        assert!(prepare(0, &skip, &ctx).unwrap().is_none());
        let e = json!({"type": "shell", "inline": ["echo {{user `platform-name`}}"],
            "execute_command": "{{ .Vars }} sh {{ .Path }}",
            "override": {"debian-12": {"expect_disconnect": true}}});
        let e = prepare(3, &e, &ctx).unwrap().unwrap();
        assert_eq!(e.map["inline"][0], "echo kvm");
        assert_eq!(e.map["execute_command"], "{{ .Vars }} sh {{ .Path }}");
        assert_eq!(e.map["expect_disconnect"], true);
        let bad = json!({"type": "shell", "inline": ["{{vault `a` `b`}}"]});
        let err = prepare(4, &bad, &ctx).unwrap_err().to_string();
        assert!(
            err.contains("provisioners[4] (shell)") && err.contains("vault"),
            "{err}"
        );
        let none = json!({"type": "shell"});
        assert!(prepare(0, &none, &ctx)
            .unwrap_err()
            .to_string()
            .contains("inline, script or scripts"));
        let file = json!({"type": "file", "source": "a"});
        assert!(prepare(0, &file, &ctx)
            .unwrap_err()
            .to_string()
            .contains("destination"));
        let ans = json!({"type": "ansible"});
        assert!(prepare(0, &ans, &ctx)
            .unwrap_err()
            .to_string()
            .contains("playbook_file"));
    }
}

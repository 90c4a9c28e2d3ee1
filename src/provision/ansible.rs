//! `ansible` provisioner with Packer's `use_proxy` choices (the default differs, see below):
//!
//! * `use_proxy: true`: Ansible connects to a local SSH server on
//!   127.0.0.1 that carries its channels over the engine's own session to the guest
//!   ([`crate::comm::relay`]): no second login to the guest, no password on this host's disk,
//!   no `sshpass`; the inventory names the relay and a key made for this run.
//! * `use_proxy` unset or `false`: Ansible connects straight to the guest's (forwarded) SSH port with the
//!   communicator's credentials. A password then never appears in argv: it goes into a 0600
//!   YAML vars file (`!unsafe`, so it is never templated) passed as `-e @file` and removed
//!   afterwards (Ansible then needs `sshpass`, as with any password SSH login).
//!
//! Command line, in Packer's order:
//! `ansible-playbook -e packer_build_name="NAME" -e packer_builder_type=TYPE
//! [-e packer_http_addr=ADDR] [--ssh-extra-args '-o IdentitiesOnly=yes'] [extra_arguments]
//! [-e ansible_ssh_private_key_file=KEY] [-e @VARS -e ansible_host_key_checking=False]
//! -i INVENTORY PLAYBOOK`.

use super::entry::{Entry, ProvisionError};
use super::local::{self, search_path, which};
use super::shell::write_private;
use super::ProvisionContext;
use std::path::{Path, PathBuf};

pub(crate) const KEYS: &[&str] = &[
    "playbook_file",
    "command",
    "extra_arguments",
    "ansible_env_vars",
    "inventory_file",
    "inventory_directory",
    "host_alias",
    "groups",
    "empty_groups",
    "user",
    "galaxy_file",
    "galaxy_command",
    "galaxy_force_install",
    "roles_path",
    "collections_path",
    "keep_inventory_file",
    "ansible_ssh_extra_args",
    "skip_version_check",
    // Packer's local SSH proxy: `use_proxy` chooses the relay or a direct (the default)
    // connection; the other keys configure Packer's own proxy and are accepted.
    "use_proxy",
    "local_port",
    "ssh_host_key_file",
    "ssh_authorized_key_file",
    "sftp_command",
    "use_sftp",
];

/// Environment OSImager exports for every Ansible run (its `evars` defaults), plus Packer's
/// `ANSIBLE_HOST_KEY_CHECKING=False`. `ctx.env` and `ansible_env_vars` override them.
const DEFAULT_ENV: &[(&str, &str)] = &[
    ("ANSIBLE_RETRY_FILES_ENABLED", "False"),
    ("ANSIBLE_WARNINGS", "False"),
    ("ANSIBLE_NOCOWS", "1"),
    ("ANSIBLE_DISPLAY_SKIPPED_HOSTS", "False"),
    ("ANSIBLE_STDOUT_CALLBACK", "minimal"),
    ("ANSIBLE_HOST_KEY_CHECKING", "False"),
    // Each build's guest gets a new host key on the same forwarded port: never let a stale
    // ~/.ssh/known_hosts entry disable password authentication or abort the run.
    ("ANSIBLE_SSH_COMMON_ARGS", "-o UserKnownHostsFile=/dev/null"),
];

pub(crate) fn check(e: &Entry) -> Result<(), ProvisionError> {
    if e.str("playbook_file")?.unwrap_or_default().is_empty() {
        return Err(e.invalid("playbook_file is required"));
    }
    e.strings("extra_arguments")?;
    e.strings("groups")?;
    e.strings("empty_groups")?;
    e.strings("ansible_ssh_extra_args")?;
    for kv in e.strings("ansible_env_vars")? {
        if !kv.contains('=') {
            return Err(e.invalid(format!("ansible_env_vars entry {kv:?} is not KEY=VALUE")));
        }
    }
    for k in [
        "galaxy_force_install",
        "keep_inventory_file",
        "skip_version_check",
        "use_sftp",
    ] {
        e.bool(k)?;
    }
    Ok(())
}

/// `use_proxy: true`: Ansible through the relay over the engine's session. Unset means a
/// direct connection (Packer's default is the proxy; docs/COMPAT.md says why ours is not).
fn use_relay(e: &Entry) -> Result<bool, ProvisionError> {
    Ok(e.has("use_proxy") && e.bool("use_proxy")?)
}

/// Files removed when the run ends, however it ends.
struct Cleanup(Vec<PathBuf>);
impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

pub(crate) async fn run(e: &Entry, ctx: &ProvisionContext) -> Result<(), ProvisionError> {
    let playbook = ctx.local_path(&e.str("playbook_file")?.unwrap_or_default());
    if !playbook.is_file() {
        return Err(e.failed(format!(
            "playbook {} does not exist (relative paths resolve against {})",
            playbook.display(),
            ctx.work_dir.display()
        )));
    }
    let path = search_path(ctx);
    let wanted = e
        .str("command")?
        .map(PathBuf::from)
        .or_else(|| ctx.ansible_playbook_cmd.clone())
        .unwrap_or_else(|| PathBuf::from("ansible-playbook"));
    let program = which(&wanted.to_string_lossy(), &path, &ctx.work_dir).ok_or_else(|| {
        e.failed(format!(
            "{} not found (searched {}). Install Ansible (e.g. `pip install ansible-core` in a venv) and put its bin/ on PATH, or create the venv the spec asks for with `osimager venv VERSION`, or set the provisioner entry's `command`; `osimager doctor` checks this",
            wanted.display(),
            std::env::join_paths(std::env::split_paths(&path)).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default()
        ))
    })?;
    std::fs::create_dir_all(&ctx.temp_dir)
        .map_err(|err| e.failed(format!("creating {}: {err}", ctx.temp_dir.display())))?;
    let mut cleanup = Cleanup(Vec::new());

    if let Some(galaxy) = e.str("galaxy_file")?.filter(|g| !g.is_empty()) {
        run_galaxy(e, ctx, &program, &path, &ctx.local_path(&galaxy)).await?;
    }

    let relay = match use_relay(e)? {
        true => Some(
            crate::comm::relay::Relay::bind(&ctx.temp_dir)
                .await
                .map_err(|err| e.failed(format!("starting the Ansible relay: {err}")))?,
        ),
        false => None,
    };
    let (host, port) = match &relay {
        Some(r) => ("127.0.0.1".to_string(), r.port),
        None => (ctx.host.clone(), ctx.port),
    };
    let key = match &relay {
        Some(r) => Some(r.key_file.clone()),
        None => ctx
            .ssh
            .private_key_file
            .as_ref()
            .map(|k| ctx.local_path(&k.to_string_lossy())),
    };
    let extra = e.strings("extra_arguments")?;
    let mentions = |needle: &str| extra.iter().any(|a| a.contains(needle));
    let use_password =
        relay.is_none() && ctx.ssh.password.is_some() && !mentions("ansible_password");
    if use_password && key.is_none() && which("sshpass", &path, &ctx.work_dir).is_none() {
        return Err(e.failed(
            "Ansible password login needs sshpass on this host (Debian/Ubuntu: apt-get install sshpass); or set ssh_private_key_file",
        ));
    }

    let inventory = match e.str("inventory_file")?.filter(|s| !s.is_empty()) {
        Some(inv) => ctx.local_path(&inv),
        None => {
            let dir = e
                .str("inventory_directory")?
                .map(|d| ctx.local_path(&d))
                .unwrap_or_else(|| ctx.temp_dir.clone());
            let p = dir.join(format!(
                "packer-provisioner-ansible-{}-{:08x}",
                e.index,
                rand::random::<u32>()
            ));
            let text = inventory_text(e, ctx, &host, port)?;
            write_private(&p, text.as_bytes(), 0o600)
                .map_err(|err| e.failed(format!("writing inventory {}: {err}", p.display())))?;
            if !e.bool("keep_inventory_file")? {
                cleanup.0.push(p.clone());
            }
            p
        }
    };

    let mut args = vec![
        "-e".to_string(),
        format!("packer_build_name={}", go_quote(&ctx.build_name)),
        "-e".into(),
        format!("packer_builder_type={}", ctx.builder_type),
    ];
    if let Some(a) = &ctx.http_addr {
        args.extend(["-e".into(), format!("packer_http_addr={a}")]);
    }
    if key.is_some() {
        let ssh_extra = e.strings("ansible_ssh_extra_args")?;
        let joined = if ssh_extra.is_empty() {
            "-o IdentitiesOnly=yes".to_string()
        } else {
            ssh_extra.concat()
        };
        args.extend(["--ssh-extra-args".into(), format!("'{joined}'")]);
    }
    args.extend(extra.iter().cloned());
    if let (Some(k), false) = (&key, mentions("ansible_password")) {
        args.extend([
            "-e".into(),
            format!("ansible_ssh_private_key_file={}", k.display()),
        ]);
    }
    if use_password {
        let pw = ctx
            .ssh
            .password
            .as_ref()
            .map(|p| p.expose())
            .unwrap_or_default();
        let vars = ctx.temp_dir.join(format!(
            "ansible-login-{}-{:08x}.yml",
            e.index,
            rand::random::<u32>()
        ));
        // `!unsafe`: Ansible must not template a password that happens to contain `{{`. A JSON
        // string is a valid YAML double-quoted scalar, so any character survives.
        let body = format!(
            "ansible_password: !unsafe {}\n",
            serde_json::Value::String(pw.to_string())
        );
        write_private(&vars, body.as_bytes(), 0o600)
            .map_err(|err| e.failed(format!("writing {}: {err}", vars.display())))?;
        cleanup.0.push(vars.clone());
        args.extend(["-e".into(), format!("@{}", vars.display())]);
        if !mentions("ansible_host_key_checking") {
            args.extend(["-e".into(), "ansible_host_key_checking=False".into()]);
        }
    }
    args.extend([
        "-i".into(),
        inventory.display().to_string(),
        playbook.display().to_string(),
    ]);

    let mut cmd = local::command(&program, ctx);
    for (k, v) in DEFAULT_ENV {
        if !ctx.env.contains_key(*k) {
            cmd.env(k, v);
        }
    }
    for kv in e.strings("ansible_env_vars")? {
        if let Some((k, v)) = kv.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.args(&args);
    let shown = local::display_cmd(&program, &args);
    tracing::info!("provisioners[{}]: executing Ansible: {shown}", e.index);
    let prefix = format!("    {}: ", ctx.build_name);
    let status = match &relay {
        Some(r) => {
            let sess = ctx.session().await.map_err(|err| {
                e.failed(format!(
                    "connecting to the guest for the Ansible relay: {err}"
                ))
            })?;
            tracing::info!(
                "provisioners[{}]: Ansible reaches {} through the relay on 127.0.0.1:{}",
                e.index,
                sess.addr(),
                r.port
            );
            tokio::select! {
                st = local::run(cmd, ctx, &prefix) => st,
                () = r.serve(&sess) => Err(std::io::Error::other("the Ansible relay stopped")),
            }
        }
        None => local::run(cmd, ctx, &prefix).await,
    }
    .map_err(|err| e.failed(format!("cannot run {shown}: {err}")))?;
    if !status.success() {
        return Err(e.failed(format!(
            "ansible-playbook ended with {status}: what failed is in its output (the \
             provisioner lines before this one); command: {shown}"
        )));
    }
    Ok(())
}

fn inventory_text(
    e: &Entry,
    ctx: &ProvisionContext,
    host: &str,
    port: u16,
) -> Result<String, ProvisionError> {
    let alias = e
        .str("host_alias")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "default".into());
    let user = e
        .str("user")?
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| ctx.ssh.username.clone());
    let mut s = format!("{alias} ansible_host={host} ansible_user={user} ansible_port={port}\n");
    for g in e.strings("groups")? {
        s.push_str(&format!("[{g}]\n{alias}\n"));
    }
    for g in e.strings("empty_groups")? {
        s.push_str(&format!("[{g}]\n"));
    }
    Ok(s)
}

async fn run_galaxy(
    e: &Entry,
    ctx: &ProvisionContext,
    playbook_cmd: &Path,
    path: &std::ffi::OsString,
    file: &Path,
) -> Result<(), ProvisionError> {
    if !file.is_file() {
        return Err(e.failed(format!("galaxy_file {} does not exist", file.display())));
    }
    let galaxy = match e.str("galaxy_command")?.filter(|s| !s.is_empty()) {
        Some(c) => which(&c, path, &ctx.work_dir),
        None => {
            let sibling = playbook_cmd.with_file_name("ansible-galaxy");
            if sibling.is_file() {
                Some(sibling)
            } else {
                which("ansible-galaxy", path, &ctx.work_dir)
            }
        }
    }
    .ok_or_else(|| {
        e.failed(
            "ansible-galaxy not found next to ansible-playbook nor on PATH (set galaxy_command)",
        )
    })?;
    let mut runs = vec![{
        let mut a = vec![
            "install".to_string(),
            "-r".into(),
            file.display().to_string(),
        ];
        if let Some(r) = e.str("roles_path")?.filter(|s| !s.is_empty()) {
            a.extend(["-p".into(), r]);
        }
        a
    }];
    if let Some(c) = e.str("collections_path")?.filter(|s| !s.is_empty()) {
        runs.push(vec![
            "collection".into(),
            "install".into(),
            "-r".into(),
            file.display().to_string(),
            "-p".into(),
            c,
        ]);
    }
    for mut args in runs {
        if e.bool("galaxy_force_install")? {
            args.push("--force".into());
        }
        let shown = local::display_cmd(&galaxy, &args);
        tracing::info!("provisioners[{}]: {shown}", e.index);
        let mut cmd = local::command(&galaxy, ctx);
        cmd.args(&args);
        let status = local::run(cmd, ctx, "    galaxy: ")
            .await
            .map_err(|err| e.failed(format!("cannot run {shown}: {err}")))?;
        if !status.success() {
            return Err(e.failed(format!("{shown} ended with {status}")));
        }
    }
    Ok(())
}

/// Go's `%q` for the build name (Packer passes `packer_build_name="qemu"`).
fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

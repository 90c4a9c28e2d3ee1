//! `shell` (runs in the guest over SSH) and `shell-local` (runs here) provisioners, with
//! Packer's defaults: scripts are uploaded to `/tmp/script_NNNN.sh`, run through
//! `execute_command` (`chmod +x {{.Path}}; {{.Vars}} {{.Path}}`), `{{.Vars}}` being
//! `PACKER_BUILD_NAME='…' PACKER_BUILDER_TYPE='…' K='V' ` sorted by name.

use super::entry::{Entry, ProvisionError};
use super::template::render;
use super::{local, ProvisionContext};
use crate::comm::{CommError, ExitStatus, OutputStream};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub(crate) const REMOTE_KEYS: &[&str] = &[
    "inline",
    "script",
    "scripts",
    "environment_vars",
    "env",
    "execute_command",
    "remote_folder",
    "remote_file",
    "remote_path",
    "inline_shebang",
    "skip_clean",
    "expect_disconnect",
    "valid_exit_codes",
    "binary",
    "start_retry_timeout",
    "pause_after",
    "env_var_format",
];

pub(crate) const LOCAL_KEYS: &[&str] = &[
    "inline",
    "script",
    "scripts",
    "environment_vars",
    "env",
    "execute_command",
    "inline_shebang",
    "tempfile_extension",
    "valid_exit_codes",
    "only_on",
    "use_linux_pathing",
];

const DEFAULT_REMOTE_EXEC: &str = "chmod +x {{.Path}}; {{.Vars}} {{.Path}}";
const DEFAULT_SHEBANG: &str = "/bin/sh -e";

fn check_sources(e: &Entry, ctx: Option<&ProvisionContext>) -> Result<(), ProvisionError> {
    let given = [e.has("inline"), e.has("script"), e.has("scripts")]
        .iter()
        .filter(|b| **b)
        .count();
    if given == 0 {
        return Err(e.invalid("one of inline, script or scripts is required"));
    }
    if given > 1 {
        return Err(e.invalid("only one of inline, script or scripts can be given"));
    }
    e.strings("inline")?;
    e.env_vars()?;
    e.exit_codes()?;
    e.duration("pause_after")?;
    e.duration("start_retry_timeout")?;
    for k in [
        "skip_clean",
        "expect_disconnect",
        "binary",
        "use_linux_pathing",
    ] {
        e.bool(k)?;
    }
    if let Some(ctx) = ctx {
        for s in script_files(e)? {
            let p = ctx.local_path(&s);
            if !p.is_file() {
                return Err(e.invalid(format!(
                    "script {} does not exist (relative paths resolve against {})",
                    p.display(),
                    ctx.work_dir.display()
                )));
            }
        }
    }
    Ok(())
}

fn script_files(e: &Entry) -> Result<Vec<String>, ProvisionError> {
    let mut v = e.str("script")?.into_iter().collect::<Vec<_>>();
    v.extend(e.strings("scripts")?);
    Ok(v)
}

pub(crate) fn check_remote(e: &Entry) -> Result<(), ProvisionError> {
    check_sources(e, None)?;
    if let Some(f) = e.str("env_var_format")? {
        if f.matches("%s").count() != 2 {
            return Err(e.invalid("env_var_format must contain two %s (name, value)"));
        }
    }
    Ok(())
}

pub(crate) fn check_local(e: &Entry) -> Result<(), ProvisionError> {
    check_sources(e, None)
}

/// Script bodies to run: the inline lines as one script, or each script file's content.
fn scripts(e: &Entry, ctx: &ProvisionContext) -> Result<Vec<(String, Vec<u8>)>, ProvisionError> {
    check_sources(e, Some(ctx))?;
    let inline = e.strings("inline")?;
    if !inline.is_empty() {
        let shebang = e
            .str("inline_shebang")?
            .unwrap_or_else(|| DEFAULT_SHEBANG.into());
        let mut body = format!("#!{shebang}\n");
        for line in inline {
            body.push_str(&line);
            body.push('\n');
        }
        return Ok(vec![("inline script".into(), body.into_bytes())]);
    }
    script_files(e)?
        .into_iter()
        .map(|s| {
            let p = ctx.local_path(&s);
            std::fs::read(&p)
                .map(|b| (p.display().to_string(), b))
                .map_err(|err| e.failed(format!("reading script {}: {err}", p.display())))
        })
        .collect()
}

/// Packer's environment for scripts, sorted by name.
fn env_map(e: &Entry, ctx: &ProvisionContext) -> Result<BTreeMap<String, String>, ProvisionError> {
    let mut env = BTreeMap::new();
    env.insert("PACKER_BUILD_NAME".to_string(), ctx.build_name.clone());
    env.insert("PACKER_BUILDER_TYPE".to_string(), ctx.builder_type.clone());
    if let Some(a) = &ctx.http_addr {
        env.insert("PACKER_HTTP_ADDR".to_string(), a.clone());
        if let Some((ip, port)) = a.rsplit_once(':') {
            env.insert("PACKER_HTTP_IP".to_string(), ip.to_string());
            env.insert("PACKER_HTTP_PORT".to_string(), port.to_string());
        }
    }
    env.extend(e.env_vars()?);
    Ok(env)
}

fn flatten(env: &BTreeMap<String, String>, format: &str) -> String {
    let mut out = String::new();
    for (k, v) in env {
        let v = v.replace('\'', "'\"'\"'");
        out.push_str(&format.replacen("%s", k, 1).replacen("%s", &v, 1));
    }
    out
}

pub(crate) async fn run_remote(e: &Entry, ctx: &ProvisionContext) -> Result<(), ProvisionError> {
    let scripts = scripts(e, ctx)?;
    let env = env_map(e, ctx)?;
    let vars = flatten(
        &env,
        &e.str("env_var_format")?
            .unwrap_or_else(|| "%s='%s' ".into()),
    );
    let exec_tpl = e
        .str("execute_command")?
        .unwrap_or_else(|| DEFAULT_REMOTE_EXEC.into());
    let valid = e.exit_codes()?;
    let expect_disconnect = e.bool("expect_disconnect")?;
    let skip_clean = e.bool("skip_clean")?;
    let binary = e.bool("binary")?;
    let folder = e.str("remote_folder")?.unwrap_or_else(|| "/tmp".into());
    for (name, mut body) in scripts {
        let remote = match e.str("remote_path")? {
            Some(p) => p,
            None => {
                let file = e
                    .str("remote_file")?
                    .unwrap_or_else(|| format!("script_{}.sh", rand::random::<u16>() % 10000));
                format!("{}/{file}", folder.trim_end_matches('/'))
            }
        };
        if !binary {
            body = String::from_utf8_lossy(&body)
                .replace("\r\n", "\n")
                .into_bytes();
        }
        let mut tenv = ctx.template_env();
        tenv.fields.insert("Vars".into(), vars.clone());
        tenv.fields.insert("Path".into(), remote.clone());
        let cmd =
            render(&exec_tpl, &tenv).map_err(|m| e.invalid(format!("execute_command: {m}")))?;
        let session = ctx.session().await.map_err(|c| e.comm(c))?;
        tracing::info!(
            "provisioners[{}]: running {name} in the guest as {remote}",
            e.index
        );
        session
            .upload_bytes(&body, &remote, Some(0o755))
            .await
            .map_err(|c| e.comm(c))?;
        let prefix = format!("    {}: ", ctx.build_name);
        let mut sink = |_: OutputStream, line: &str| ctx.output(&prefix, line);
        let status = match session.exec_with(&cmd, None, &mut sink).await {
            Ok(s) => s,
            Err(CommError::Ssh { .. }) if session.is_closed() => ExitStatus::Disconnected,
            Err(c) => return Err(e.comm(c)),
        };
        if status == ExitStatus::Disconnected {
            if expect_disconnect || valid.contains(&status.packer_code()) {
                tracing::info!(
                    "provisioners[{}]: the guest disconnected, as expected",
                    e.index
                );
                continue;
            }
            return Err(e.failed(format!(
                "{name} disconnected unexpectedly. If it reboots or powers off the guest, add \"expect_disconnect\": true to this provisioner"
            )));
        }
        if !valid.contains(&status.packer_code()) {
            return Err(e.failed(format!(
                "{name} ended with {status} (valid exit codes: {valid:?})"
            )));
        }
        if !skip_clean {
            let rm = format!("rm -f {}", crate::comm::shell_quote(&remote));
            if let Ok(s) = session.exec(&rm).await {
                if !s.success() {
                    tracing::warn!("could not remove {remote} from the guest ({s})");
                }
            }
        }
    }
    if let Some(p) = e.duration("pause_after")? {
        tokio::time::sleep(p).await;
    }
    Ok(())
}

pub(crate) async fn run_local(e: &Entry, ctx: &ProvisionContext) -> Result<(), ProvisionError> {
    let only_on = e.strings("only_on")?;
    if !only_on.is_empty() && !only_on.iter().any(|o| o == std::env::consts::OS) {
        tracing::info!(
            "provisioners[{}] (shell-local) skipped: only_on {only_on:?}",
            e.index
        );
        return Ok(());
    }
    let env = env_map(e, ctx)?;
    let vars = flatten(&env, "%s='%s' ");
    let valid = e.exit_codes()?;
    let exec_tpl: Vec<String> = match e.map.get("execute_command") {
        None => vec![
            "/bin/sh".into(),
            "-c".into(),
            "{{.Vars}} {{.Script}}".into(),
        ],
        Some(serde_json::Value::String(s)) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
        Some(_) => e.strings("execute_command")?,
    };
    if exec_tpl.is_empty() {
        return Err(e.invalid("execute_command is empty"));
    }
    std::fs::create_dir_all(&ctx.temp_dir)
        .map_err(|err| e.failed(format!("creating {}: {err}", ctx.temp_dir.display())))?;
    let inline = !e.strings("inline")?.is_empty();
    let ext = e.str("tempfile_extension")?.unwrap_or_default();
    let mut temp_files = Vec::new();
    let mut result = Ok(());
    for (i, (name, body)) in scripts(e, ctx)?.into_iter().enumerate() {
        let path: PathBuf = if inline {
            let p = ctx
                .temp_dir
                .join(format!("shell-local-{}-{i}{ext}", e.index));
            write_private(&p, &body, 0o700)
                .map_err(|err| e.failed(format!("writing {}: {err}", p.display())))?;
            temp_files.push(p.clone());
            p
        } else {
            ctx.local_path(&name)
        };
        let mut tenv = ctx.template_env();
        tenv.fields.insert("Vars".into(), vars.clone());
        tenv.fields
            .insert("Script".into(), path.display().to_string());
        tenv.fields
            .insert("Command".into(), path.display().to_string());
        let argv = exec_tpl
            .iter()
            .map(|a| render(a, &tenv))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|m| e.invalid(format!("execute_command: {m}")))?;
        let program = PathBuf::from(&argv[0]);
        let mut cmd = local::command(&program, ctx);
        cmd.args(&argv[1..]);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        tracing::info!("provisioners[{}]: running {name} locally", e.index);
        let prefix = format!("    {} (local): ", ctx.build_name);
        let status = local::run(cmd, ctx, &prefix).await.map_err(|err| {
            e.failed(format!(
                "cannot run {}: {err}",
                local::display_cmd(&program, &argv[1..])
            ))
        })?;
        let code = status.code().map(i64::from).unwrap_or(-1);
        if !valid.contains(&code) {
            result = Err(e.failed(format!(
                "{name} ended with {status} (valid exit codes: {valid:?})"
            )));
            break;
        }
    }
    for p in temp_files {
        let _ = std::fs::remove_file(p);
    }
    result
}

/// Write a file only its owner can read (it may contain secrets).
pub(crate) fn write_private(path: &std::path::Path, data: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let _ = std::fs::remove_file(path);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    f.write_all(data)
}

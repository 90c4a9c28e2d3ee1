//! Ansible through the relay (`use_proxy: true`) under load: many file transfers of
//! awkward sizes (0 B, 1 B, around the 64 KiB channel window and sftp/dd block sizes, 300 KB),
//! `copy` (content: and src:) and `template`, with `become`, in several runs, with the SSH
//! settings the OSImager data tree uses (ControlMaster/ControlPersist multiplexing, pipelining
//! on) and with pipelining off (every module transferred too). Every file's content is checked.
//! The "guest" is a real OpenSSH server on 127.0.0.1 (tests/ssh_common).

mod ssh_common;
mod support;

use osimager::comm::SshConfig;
use osimager::provision::{run_all, ProvisionContext};
use serde_json::json;
use ssh_common::{ansible_playbook, prepare, Sshd};
use std::fmt::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::free_port;

const SIZES: &[usize] = &[0, 1, 4096, 32768, 65535, 65536, 65537, 131072, 300_000];

/// Bytes that differ per file and per offset (a misplaced chunk shows).
fn payload(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed * 7) % 251) as u8)
        .collect()
}

/// Text content for `copy: content:` and templates (valid UTF-8, no Jinja delimiters).
fn text(seed: usize, len: usize) -> String {
    (0..len)
        .map(|i| (b'a' + ((i * 7 + seed) % 26) as u8) as char)
        .collect()
}

/// Run one playbook of many transfers through the relay and check every file.
async fn transfers(pipelining: bool, rounds: usize) {
    let files = prepare(false);
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, None);
    sshd.wait_listening();
    let work = tempfile::tempdir().unwrap();
    let guest = tempfile::tempdir().unwrap();
    let w = work.path();
    let g = guest.path();
    std::fs::create_dir_all(w.join("src")).unwrap();
    std::fs::create_dir_all(w.join("templates")).unwrap();

    let mut tasks = String::new();
    let mut expected: Vec<(std::path::PathBuf, Vec<u8>)> = Vec::new();
    for round in 0..rounds {
        for (k, &size) in SIZES.iter().enumerate() {
            let seed = round * 100 + k;
            // copy src: (binary)
            let src = w.join(format!("src/f-{seed}.bin"));
            let data = payload(seed, size);
            std::fs::write(&src, &data).unwrap();
            let dest = g.join(format!("src-{seed}.bin"));
            writeln!(
                tasks,
                "    - copy:\n        src: {}\n        dest: {}\n        mode: '0644'",
                src.display(),
                dest.display()
            )
            .unwrap();
            expected.push((dest, data));
            // copy content: (a JSON string is a valid YAML double-quoted scalar)
            let body = text(seed, size.min(70_000));
            let dest = g.join(format!("content-{seed}.txt"));
            writeln!(
                tasks,
                "    - copy:\n        content: {}\n        dest: {}",
                serde_json::Value::String(body.clone()),
                dest.display()
            )
            .unwrap();
            expected.push((dest, body.into_bytes()));
            // template
            let tpl = w.join(format!("templates/t-{seed}.j2"));
            let body = text(seed + 1, size);
            std::fs::write(&tpl, format!("{{{{ marker }}}}{body}")).unwrap();
            let dest = g.join(format!("template-{seed}.txt"));
            writeln!(
                tasks,
                "    - template:\n        src: {}\n        dest: {}",
                tpl.display(),
                dest.display()
            )
            .unwrap();
            expected.push((dest, format!("M{seed}-{body}").into_bytes()));
            let _ = writeln!(tasks, "      vars:\n        marker: M{seed}-");
        }
    }
    std::fs::write(
        w.join("stress.yml"),
        format!("- hosts: all\n  gather_facts: false\n  become: true\n  become_method: su\n  tasks:\n{tasks}"),
    )
    .unwrap();

    let ssh = SshConfig {
        username: "root".into(),
        private_key_file: Some(files.client_key.clone()),
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let mut ctx = ProvisionContext::new("127.0.0.1", port, ssh, "stress", "qemu", w, w.join("tmp"));
    ctx.ansible_playbook_cmd = Some(ansible_playbook());
    // The data tree's ansible.cfg: one multiplexing master for the whole play (its socket in
    // this test's temp dir; it ends with the relay's connection), pipelining as asked.
    ctx.env.insert(
        "ANSIBLE_SSH_ARGS".into(),
        "-o ControlMaster=auto -o ControlPersist=60s".into(),
    );
    ctx.env.insert(
        "ANSIBLE_SSH_CONTROL_PATH_DIR".into(),
        w.join("cp").display().to_string(),
    );
    ctx.env.insert(
        "ANSIBLE_PIPELINING".into(),
        if pipelining { "True" } else { "False" }.into(),
    );
    let (result, out) = run_through_relay(&mut ctx, "stress.yml").await;
    result.unwrap_or_else(|e| panic!("{e}\n{out}\nsshd:\n{}", sshd.log.lock().unwrap().join("\n")));
    for (path, want) in &expected {
        let got = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            got == *want,
            "{}: {} bytes, expected {}",
            path.display(),
            got.len(),
            want.len()
        );
    }
    check_dir_is_clean(g, expected.len());
}

/// Run `playbook` (in the context's work dir) through the relay; its result and the lines
/// the run printed.
async fn run_through_relay(
    ctx: &mut ProvisionContext,
    playbook: &str,
) -> (Result<(), osimager::provision::ProvisionError>, String) {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = lines.clone();
    ctx.on_output = Some(Arc::new(move |s: &str| {
        l.lock().unwrap().push(s.to_string())
    }));
    let provisioners = [json!({
        "type": "ansible",
        "playbook_file": playbook,
        "use_proxy": true,
        "extra_arguments": ["-e", "ansible_python_interpreter=/usr/bin/python3"],
    })];
    let result = run_all(&provisioners, ctx).await;
    let out = lines.lock().unwrap().join("\n");
    (result, out)
}

fn check_dir_is_clean(g: &Path, n: usize) {
    assert_eq!(std::fs::read_dir(g).unwrap().count(), n);
}

#[tokio::test]
async fn relay_transfers_with_pipelining_and_multiplexing() {
    transfers(true, 1).await;
}

#[tokio::test]
async fn relay_transfers_without_pipelining() {
    transfers(false, 1).await;
}

/// What `ssh` through the relay reports for `command` (stdin empty, so the client sends EOF at
/// once): its exit code and stderr. `mux`: through an OpenSSH ControlMaster, as Ansible runs it.
async fn ssh_through_relay(command: &str, mux: bool) -> (i32, String) {
    let files = prepare(false);
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, None);
    sshd.wait_listening();
    let ssh = SshConfig {
        username: "root".into(),
        private_key_file: Some(files.client_key.clone()),
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let guest = osimager::comm::wait_ready("127.0.0.1", port, &ssh)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let relay = osimager::comm::relay::Relay::bind(dir.path())
        .await
        .unwrap();
    let mut cmd = tokio::process::Command::new("ssh");
    cmd.args([
        "-F",
        "/dev/null",
        "-o",
        "BatchMode=yes",
        "-o",
        "IdentitiesOnly=yes",
    ])
    .args([
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
    ])
    .args(["-o", "LogLevel=ERROR", "-i"])
    .arg(&relay.key_file)
    .args(["-p", &relay.port.to_string()]);
    if mux {
        cmd.args(["-o", "ControlMaster=auto", "-o", "ControlPersist=60s", "-o"])
            .arg(format!("ControlPath={}/cp-%C", dir.path().display()));
    }
    cmd.args(["root@127.0.0.1", command])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::select! {
        out = cmd.output() => out.unwrap(),
        () = relay.serve(&guest) => unreachable!("the relay stopped"),
    };
    if mux {
        // The master this test started ends with it.
        let _ = std::process::Command::new("ssh")
            .args(["-F", "/dev/null", "-O", "exit", "-o"])
            .arg(format!("ControlPath={}/cp-%C", dir.path().display()))
            .args(["-p", &relay.port.to_string(), "root@127.0.0.1"])
            .stderr(std::process::Stdio::null())
            .status();
    }
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A guest command that closes its output some time before it exits (on a slow guest, any
/// command: sshd sends EOF when the output closes, the exit status when it has reaped the
/// process). OpenSSH's client closes the channel as soon as EOF went both ways; the exit status
/// must still reach it, or ssh exits 255 and Ansible re-runs a module that already ran
/// (`copy`: "Source …/.source not found").
const EXITS_AFTER_EOF: &str = "exec >/dev/null 2>&1; sleep 1; exit 3";

#[tokio::test]
async fn relay_passes_the_exit_status_of_a_command_that_closes_its_output_first() {
    let (code, stderr) = ssh_through_relay(EXITS_AFTER_EOF, false).await;
    assert_eq!(code, 3, "ssh through the relay: {stderr}");
}

#[tokio::test]
async fn relay_passes_the_exit_status_through_a_control_master() {
    let (code, stderr) = ssh_through_relay(EXITS_AFTER_EOF, true).await;
    assert_eq!(code, 3, "ssh -o ControlMaster through the relay: {stderr}");
}

/// The build's failure, reproduced: Ansible's `copy` through the relay on a guest that reports
/// a module's exit some time after its output ended (a slow guest under TCG), with the data
/// tree's SSH settings (ControlMaster, pipelining) and `become` by sudo. The become program is
/// a stand-in for sudo (this host has none, and root needs none) that runs the command and —
/// when a `copy` upload waits in the remote temp dir, i.e. for the `copy` module itself —
/// closes its output and exits 0.5 s later. Before the relay held the guest's EOF back until
/// the exit status, ssh exited 255, Ansible retried the module, and the retry failed with
/// "Source …/.source not found".
#[tokio::test]
async fn relay_copy_on_a_guest_that_exits_after_its_output_ends() {
    let files = prepare(false);
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, None);
    sshd.wait_listening();
    let work = tempfile::tempdir().unwrap();
    let guest = tempfile::tempdir().unwrap();
    let (w, g) = (work.path(), guest.path());
    let remote_tmp = w.join("remote-tmp");
    let slow_sudo = w.join("slow-sudo");
    std::fs::write(
        &slow_sudo,
        format!(
            "#!/bin/sh
slow=
ls {}/ansible-tmp-*/.source >/dev/null 2>&1 && slow=1
             while [ $# -gt 0 ]; do case \"$1\" in -u) shift 2; break;; -*) shift;; *) break;; esac; done
             \"$@\"
rc=$?
[ -n \"$slow\" ] && {{ exec >/dev/null 2>&1; sleep 0.5; }}
exit $rc
",
            remote_tmp.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&slow_sudo, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut tasks = String::new();
    for i in 0..3 {
        writeln!(
            tasks,
            "    - copy:\n        content: \"copy {i}\\n\"\n        dest: {}/copy-{i}.txt",
            g.display()
        )
        .unwrap();
    }
    std::fs::write(
        w.join("copy.yml"),
        format!(
            "- hosts: all\n  gather_facts: false\n  become: true\n  become_method: sudo\n  \
             vars:\n    ansible_become_exe: {}\n  tasks:\n{tasks}",
            slow_sudo.display()
        ),
    )
    .unwrap();
    let ssh = SshConfig {
        username: "root".into(),
        private_key_file: Some(files.client_key.clone()),
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let mut ctx = ProvisionContext::new("127.0.0.1", port, ssh, "copy", "qemu", w, w.join("tmp"));
    ctx.ansible_playbook_cmd = Some(ansible_playbook());
    for (k, v) in [
        (
            "ANSIBLE_SSH_ARGS",
            "-o ControlMaster=auto -o ControlPersist=60s".to_string(),
        ),
        (
            "ANSIBLE_SSH_CONTROL_PATH_DIR",
            w.join("cp").display().to_string(),
        ),
        ("ANSIBLE_PIPELINING", "True".into()),
        // The data tree's ansible.cfg: `retries = 3`.
        ("ANSIBLE_SSH_RETRIES", "3".into()),
        ("ANSIBLE_REMOTE_TMP", remote_tmp.display().to_string()),
        // `ssh_retry` lines (a 255 from ssh) are shown from -vv on.
        ("ANSIBLE_VERBOSITY", "2".into()),
    ] {
        ctx.env.insert(k.into(), v);
    }
    let (result, out) = run_through_relay(&mut ctx, "copy.yml").await;
    result.unwrap_or_else(|e| panic!("{e}\n{out}"));
    assert!(
        !out.contains("ssh_retry"),
        "ssh exited 255 through the relay (Ansible retried):\n{out}"
    );
    for i in 0..3 {
        let got = std::fs::read_to_string(g.join(format!("copy-{i}.txt"))).unwrap();
        assert_eq!(got, format!("copy {i}\n"));
    }
}

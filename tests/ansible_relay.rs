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
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let l = lines.clone();
    ctx.on_output = Some(Arc::new(move |s: &str| {
        l.lock().unwrap().push(s.to_string())
    }));
    let provisioners = [json!({
        "type": "ansible",
        "playbook_file": "stress.yml",
        "use_proxy": true,
        "extra_arguments": ["-e", "ansible_python_interpreter=/usr/bin/python3"],
    })];
    run_all(&provisioners, &ctx).await.unwrap_or_else(|e| {
        panic!(
            "{e}\n{}\nsshd:\n{}",
            lines.lock().unwrap().join("\n"),
            sshd.log.lock().unwrap().join("\n")
        )
    });
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

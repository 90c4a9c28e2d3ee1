//! The fixture of tests/provision_run.rs: a real OpenSSH server on loopback as the "guest",
//! the provisioning context that reaches it, and recorders of what ansible-playbook was given.

use crate::ssh_common::{ansible_playbook, prepare, Sshd, SshdFiles};
use crate::support::free_port;
use osimager::comm::SshConfig;
use osimager::provision::ProvisionContext;
use osimager::secret::Secret;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Fixture {
    pub files: SshdFiles,
    pub sshd: Sshd,
    pub work: tempfile::TempDir,
    pub guest: tempfile::TempDir,
}

pub fn fixture(password: Option<&str>) -> Fixture {
    let files = prepare(password.is_some());
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, password);
    sshd.wait_listening();
    Fixture {
        files,
        sshd,
        work: tempfile::tempdir().unwrap(),
        guest: tempfile::tempdir().unwrap(),
    }
}

pub fn context(f: &Fixture, password: Option<&str>) -> ProvisionContext {
    let ssh = SshConfig {
        username: "root".into(),
        private_key_file: if password.is_some() {
            None
        } else {
            Some(f.files.client_key.clone())
        },
        password: password.map(Secret::new),
        timeout: Duration::from_secs(30),
        ..Default::default()
    };
    let mut ctx = ProvisionContext::new(
        "127.0.0.1",
        f.sshd.port,
        ssh,
        "testbuild",
        "qemu",
        f.work.path(),
        f.work.path().join("tmp"),
    );
    ctx.ansible_playbook_cmd = Some(ansible_playbook());
    // Keep test runs from leaving ssh ControlPersist masters behind.
    ctx.env
        .insert("ANSIBLE_SSH_ARGS".into(), "-o ControlMaster=no".into());
    ctx
}

pub fn capture(ctx: &mut ProvisionContext) -> Arc<Mutex<Vec<String>>> {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let l = lines.clone();
    ctx.on_output = Some(Arc::new(move |s: &str| {
        l.lock().unwrap().push(s.to_string())
    }));
    lines
}

/// An `ansible-playbook` stand-in that records its real argv (NUL-separated, into
/// `<dir>/argv`) and the password vars file it is given, then execs the real one with the same
/// arguments: what is recorded is exactly what the real program receives.
pub fn argv_recorder(dir: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let w = dir.join("ansible-playbook");
    std::fs::write(
        &w,
        format!(
            "#!/bin/sh\n\
             for a in \"$0\" \"$@\"; do printf '%s\\0' \"$a\"; done > '{dir}/argv'\n\
             for a in \"$@\"; do case \"$a\" in @*) cp \"${{a#@}}\" '{dir}/vars-file';; esac; done\n\
             exec '{real}' \"$@\"\n",
            dir = dir.display(),
            real = ansible_playbook().display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&w, std::fs::Permissions::from_mode(0o755)).unwrap();
    w
}

/// What the recorder saw: the real argv of ansible-playbook and the vars file it was given.
pub fn recorded(rec: &Path) -> (Vec<String>, Option<String>) {
    let argv: Vec<String> = std::fs::read(rec.join("argv"))
        .expect("ansible-playbook ran through the recorder")
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    (argv, std::fs::read_to_string(rec.join("vars-file")).ok())
}

/// sshd's "Accepted password/publickey for …" lines: one per login.
pub fn accepted(f: &Fixture) -> Vec<String> {
    f.sshd
        .log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains("Accepted password for") || l.contains("Accepted publickey for"))
        .cloned()
        .collect()
}

//! Test harness: a real OpenSSH server (Debian `openssh-server`) on 127.0.0.1, started by the
//! test with its own host key, config and authorized_keys; and helpers to find ansible-playbook.
//!
//! Runs as root (sshd needs it to switch users). Key authentication logs in as root with a
//! generated key. Password authentication must not touch the machine's real accounts: sshd is
//! started inside a private mount namespace (`unshare -m`) in which a copy of /etc/shadow,
//! whose root entry carries the test password's SHA-512 crypt hash, is bind-mounted over
//! /etc/shadow. The real file is never modified and the bind mount disappears with sshd.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const SSHD: &str = "/usr/sbin/sshd";

pub fn require_sshd() {
    assert!(
        Path::new(SSHD).is_file(),
        "{SSHD} not found: these tests need a real OpenSSH server. Install it with \
         `apt-get install -y --no-install-recommends openssh-server`"
    );
}

/// Key material and config for one sshd.
pub struct SshdFiles {
    pub dir: tempfile::TempDir,
    pub client_key: PathBuf,
    pub config: PathBuf,
}

pub fn prepare(password_auth: bool) -> SshdFiles {
    require_sshd();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let keygen = |path: &Path| {
        let st = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(path)
            .status()
            .expect("ssh-keygen (openssh-client) must be installed");
        assert!(st.success());
    };
    keygen(&d.join("host_key"));
    keygen(&d.join("client_key"));
    std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).unwrap();
    // sshd refuses to start without its privilege separation directory.
    std::fs::create_dir_all("/run/sshd").unwrap();
    let config = d.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile none\n\
             AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
             PermitRootLogin yes\nPubkeyAuthentication yes\nPasswordAuthentication {pw}\n\
             KbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\nMaxStartups 100\n\
             LogLevel VERBOSE\n",
            d = d.display(),
            pw = if password_auth { "yes" } else { "no" }
        ),
    )
    .unwrap();
    SshdFiles {
        client_key: d.join("client_key"),
        config,
        dir,
    }
}

/// A running sshd; killed on drop.
pub struct Sshd {
    child: Child,
    pub port: u16,
    /// When sshd logged "Server listening".
    pub listening_at: Arc<Mutex<Option<Instant>>>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Sshd {
    /// Start sshd on `port`. With `root_password`, root's password inside sshd's private mount
    /// namespace is that password (see the module comment).
    pub fn start(files: &SshdFiles, port: u16, root_password: Option<&str>) -> Sshd {
        let mut cmd = match root_password {
            None => {
                let mut c = Command::new(SSHD);
                c.arg("-D")
                    .arg("-e")
                    .arg("-f")
                    .arg(&files.config)
                    .arg("-p")
                    .arg(port.to_string());
                c
            }
            Some(pw) => {
                let shadow = files.dir.path().join("shadow");
                let hash = pwhash::sha512_crypt::hash(pw).unwrap();
                let real = std::fs::read_to_string("/etc/shadow").unwrap();
                let fake: String = real
                    .lines()
                    .map(|l| match l.strip_prefix("root:") {
                        Some(rest) => {
                            let tail = rest.split_once(':').map(|x| x.1).unwrap_or("");
                            format!("root:{hash}:{tail}\n")
                        }
                        None => format!("{l}\n"),
                    })
                    .collect();
                std::fs::write(&shadow, fake).unwrap();
                let script = format!(
                    "mount --bind {} /etc/shadow && exec {SSHD} -D -e -f {} -p {port}",
                    shadow.display(),
                    files.config.display()
                );
                let mut c = Command::new("unshare");
                c.args(["-m", "--propagation", "private", "sh", "-c", &script]);
                c
            }
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cannot start sshd");
        let stderr = child.stderr.take().unwrap();
        let listening_at = Arc::new(Mutex::new(None));
        let log = Arc::new(Mutex::new(Vec::new()));
        {
            let (l, log) = (listening_at.clone(), log.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if line.contains("Server listening") {
                        l.lock().unwrap().get_or_insert(Instant::now());
                    }
                    log.lock().unwrap().push(line);
                }
            });
        }
        Sshd {
            child,
            port,
            listening_at,
            log,
        }
    }

    /// Block until sshd listens (or panic with its log).
    pub fn wait_listening(&mut self) {
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if self.listening_at.lock().unwrap().is_some() {
                return;
            }
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("sshd exited with {st}: {:?}", self.log.lock().unwrap());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!(
            "sshd did not listen within 10 s: {:?}",
            self.log.lock().unwrap()
        );
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// ansible-playbook: $OSIMAGER_ANSIBLE_PLAYBOOK, else the one on PATH, else the tools venv's
/// (`$OSIMAGER_TOOLS_VENV/bin`). Panics with an install hint.
pub fn ansible_playbook() -> PathBuf {
    if let Some(p) = std::env::var_os("OSIMAGER_ANSIBLE_PLAYBOOK") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "OSIMAGER_ANSIBLE_PLAYBOOK={} does not exist",
            p.display()
        );
        return p;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("ansible-playbook"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| super::support::tool("ansible-playbook"))
}

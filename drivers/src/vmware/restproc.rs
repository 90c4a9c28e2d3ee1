//! A private vmrest for one build, configured without the interactive `vmrest -C`: vmrest
//! reads its credentials from `$HOME/.vmrestCfg` (CRLF lines `port=`, `username=`,
//! `password=` — bcrypt of salt + password — and `salt=`; the format Vagrant's VMware utility
//! writes), so we run it with `HOME` set to a private directory holding such a file, on a free
//! loopback port, with credentials generated for this build. The registrations it keeps live
//! in that directory too, so the build never touches the user's own VMware library.

use super::rest::Vmrest;
use crate::driver::DriverEnv;
use crate::DriverError;
use rand::Rng;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// A running private vmrest.
pub struct VmrestProcess {
    child: tokio::process::Child,
    home: Option<tempfile::TempDir>,
    pub api: Vmrest,
}

fn random_string(len: usize, sets: &[&[u8]]) -> String {
    let mut rng = rand::thread_rng();
    (0..len)
        .map(|i| {
            let set = sets[i % sets.len()];
            set[rng.gen_range(0..set.len())] as char
        })
        .collect()
}

/// vmrest -C insists on upper, lower, digit and special characters; a generated password
/// meets that.
fn credentials() -> (String, String, String) {
    const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"0123456789";
    const SYMBOL: &[u8] = b"!#%+-.:=?@^_~";
    let user = format!("osimager-{}", random_string(8, &[LOWER, DIGIT]));
    let password = random_string(16, &[LOWER, UPPER, DIGIT, SYMBOL]);
    let salt = random_string(16, &[LOWER, UPPER, DIGIT, SYMBOL]);
    (user, password, salt)
}

/// The `.vmrestCfg` text for these credentials.
pub fn config_text(
    port: u16,
    user: &str,
    password: &str,
    salt: &str,
) -> Result<String, DriverError> {
    let setup = pwhash::bcrypt::BcryptSetup {
        variant: Some(pwhash::bcrypt::BcryptVariant::V2a),
        cost: Some(10),
        ..Default::default()
    };
    let hash = pwhash::bcrypt::hash_with(setup, format!("{salt}{password}"))
        .map_err(|e| DriverError::Msg(format!("hashing the vmrest password: {e}")))?;
    Ok(format!(
        "port={port}\r\nusername={user}\r\npassword={hash}\r\nsalt={salt}\r\n"
    ))
}

fn free_port() -> Result<u16, DriverError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|source| DriverError::Io {
            context: "finding a free port for vmrest on 127.0.0.1".into(),
            source,
        })
}

fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

impl VmrestProcess {
    /// Start `program` (vmrest) and wait until it answers with the generated credentials.
    pub async fn spawn(
        env: &DriverEnv,
        program: &Path,
        log: PathBuf,
    ) -> Result<VmrestProcess, DriverError> {
        let home = tempfile::Builder::new()
            .prefix("osimager-vmrest-")
            .tempdir()
            .map_err(|source| DriverError::Io {
                context: "creating a private HOME for vmrest".into(),
                source,
            })?;
        let (user, password, salt) = credentials();
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_port()?;
            let cfg = home.path().join(".vmrestCfg");
            // 0600 from the start: the file holds the password's hash.
            {
                use std::io::Write;
                use std::os::unix::fs::OpenOptionsExt;
                let text = config_text(port, &user, &password, &salt)?;
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&cfg)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
                    .map_err(|source| DriverError::Io {
                        context: format!("writing {}", cfg.display()),
                        source,
                    })?;
            }
            let out = std::fs::File::create(&log).map_err(|source| DriverError::Io {
                context: format!("creating {}", log.display()),
                source,
            })?;
            let err = out.try_clone().map_err(|source| DriverError::Io {
                context: format!("opening {}", log.display()),
                source,
            })?;
            let mut cmd = tokio::process::Command::new(program);
            env.apply(&mut cmd);
            cmd.env("HOME", home.path())
                .args(["-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .kill_on_drop(true)
                // Its own process group: a Ctrl-C in the terminal must not stop it before the
                // build has powered the VM off through it.
                .process_group(0);
            let child = cmd.spawn().map_err(|source| DriverError::Io {
                context: format!("starting {}", program.display()),
                source,
            })?;
            let api = Vmrest::new(&format!("http://127.0.0.1:{port}/api"), &user, &password);
            let mut p = VmrestProcess {
                child,
                home: None,
                api,
            };
            match p.wait_ready(Duration::from_secs(20)).await {
                Ok(()) => {
                    p.home = Some(home);
                    return Ok(p);
                }
                Err(e) => {
                    last = e.to_string();
                    p.stop().await;
                }
            }
        }
        Err(DriverError::Msg(format!(
            "vmrest ({}) did not come up: {last}; its output ({}):\n{}",
            program.display(),
            log.display(),
            tail(&log)
        )))
    }

    async fn wait_ready(&mut self, timeout: Duration) -> Result<(), DriverError> {
        let end = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Err(DriverError::Msg(format!("vmrest exited ({st})")));
            }
            match self.api.list_vms().await {
                Ok(_) => return Ok(()),
                Err(e @ super::rest::RestError::Unauthorized { .. }) => {
                    return Err(DriverError::Msg(format!(
                        "vmrest did not accept the credentials written to its .vmrestCfg: {e}"
                    )))
                }
                Err(e) if Instant::now() > end => return Err(DriverError::Msg(e.to_string())),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Kill vmrest now without waiting (`leave_running`, which cannot wait).
    pub fn kill_now(&mut self) {
        let _ = self.child.start_kill();
        self.home = None;
    }

    /// Stop vmrest (the VMs it powered on keep running: they are VMware's processes).
    pub async fn stop(&mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM first so it can shut down cleanly; then kill.
            // SAFETY: kill(2) on the pid of our own child, which has not been reaped yet.
            unsafe {
                libc::kill(pid as i32, libc::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
                .await
                .is_err()
            {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
            }
        }
        self.home = None;
    }
}

//! SSH communicator against a real OpenSSH server (see tests/ssh_common).

mod ssh_common;
mod support;

use osimager::comm::{wait_ready, CommError, ExitStatus, SshConfig, WaitStage};
use osimager::secret::Secret;
use ssh_common::{prepare, Sshd};
use std::time::{Duration, Instant};
use support::{closed_port, free_port};

fn key_cfg(files: &ssh_common::SshdFiles) -> SshConfig {
    SshConfig {
        username: "root".into(),
        private_key_file: Some(files.client_key.clone()),
        timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

#[tokio::test]
async fn detects_sshd_started_after_polling_began() {
    let files = prepare(false);
    let port = free_port();
    let mut cfg = key_cfg(&files);
    cfg.known_hosts_file = Some(files.dir.path().join("known_hosts"));
    let waiter = {
        let cfg = cfg.clone();
        tokio::spawn(async move {
            let s = wait_ready("127.0.0.1", port, &cfg).await;
            (s, Instant::now())
        })
    };
    // The port is closed for a while: the waiter must keep polling, not fail.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(!waiter.is_finished());
    let mut sshd = Sshd::start(&files, port, None);
    sshd.wait_listening();
    let (session, ready_at) = waiter.await.unwrap();
    let session = session.expect("SSH should become ready");
    let listening = sshd.listening_at.lock().unwrap().unwrap();
    eprintln!(
        "SSH-ready detection latency after sshd listened: {:?} (includes key exchange and authentication)",
        ready_at.saturating_duration_since(listening)
    );
    assert!(session.host_key_fingerprint().starts_with("SHA256:"));
    let recorded = std::fs::read_to_string(files.dir.path().join("known_hosts")).unwrap();
    let host_pub = std::fs::read_to_string(files.dir.path().join("host_key.pub")).unwrap();
    let host_pub: Vec<&str> = host_pub.split_whitespace().take(2).collect();
    assert!(
        recorded.starts_with(&format!(
            "[127.0.0.1]:{port} {} {}",
            host_pub[0], host_pub[1]
        )),
        "{recorded}"
    );
    let (st, out, _) = session.exec_capture("echo ready").await.unwrap();
    assert_eq!((st, out.as_str()), (ExitStatus::Code(0), "ready\n"));
}

#[tokio::test]
async fn closed_port_times_out_with_clear_error() {
    let (_held, port) = closed_port();
    let cfg = SshConfig {
        username: "root".into(),
        password: Some(Secret::new("unused-pw-1")),
        timeout: Duration::from_millis(600),
        ..Default::default()
    };
    let err = wait_ready("127.0.0.1", port, &cfg).await.unwrap_err();
    match &err {
        CommError::Timeout {
            stage, last_error, ..
        } => {
            assert_eq!(*stage, WaitStage::NeverConnected);
            assert!(last_error.contains("refused"), "{last_error}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(err.to_string().contains(&format!("127.0.0.1:{port}")));
}

#[tokio::test]
async fn port_that_closes_before_banner_is_not_ssh() {
    // Like QEMU's hostfwd before the guest's sshd is up: TCP accepted, then closed.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            drop(s);
        }
    });
    let cfg = SshConfig {
        username: "root".into(),
        password: Some(Secret::new("unused-pw-2")),
        timeout: Duration::from_millis(800),
        ..Default::default()
    };
    match wait_ready("127.0.0.1", port, &cfg).await.unwrap_err() {
        CommError::Timeout { stage, .. } => assert_eq!(stage, WaitStage::NoBanner),
        other => panic!("expected a timeout, got {other}"),
    }
}

#[tokio::test]
async fn wrong_password_is_an_authentication_error() {
    let files = prepare(true);
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, Some("right-password-42"));
    sshd.wait_listening();
    let cfg = SshConfig {
        username: "root".into(),
        password: Some(Secret::new("wrong-password-17")),
        timeout: Duration::from_secs(60),
        handshake_attempts: 2,
        auth_retry_delay: Duration::from_millis(200),
        ..Default::default()
    };
    let t = Instant::now();
    let err = wait_ready("127.0.0.1", port, &cfg).await.unwrap_err();
    assert!(t.elapsed() < cfg.timeout);
    let text = err.to_string();
    assert!(
        matches!(err, CommError::AuthRejected { attempts: 2, .. }),
        "{text}"
    );
    assert!(
        text.contains("password") && text.contains("ssh_password"),
        "{text}"
    );
    assert!(!text.contains("wrong-password-17"));

    // The right password logs in.
    let ok = SshConfig {
        password: Some(Secret::new("right-password-42")),
        ..cfg
    };
    let s = wait_ready("127.0.0.1", port, &ok).await.unwrap();
    let (st, out, _) = s.exec_capture("id -un").await.unwrap();
    assert_eq!((st, out.trim()), (ExitStatus::Code(0), "root"));
}

#[tokio::test]
async fn exec_reports_exit_codes_output_and_signals() {
    let files = prepare(false);
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, None);
    sshd.wait_listening();
    let s = wait_ready("127.0.0.1", port, &key_cfg(&files))
        .await
        .unwrap();

    assert_eq!(s.exec("exit 3").await.unwrap(), ExitStatus::Code(3));
    let (st, out, err) = s
        .exec_capture("echo out1; echo err1 >&2; printf 'no-newline'")
        .await
        .unwrap();
    assert_eq!(st, ExitStatus::Code(0));
    assert_eq!(out, "out1\nno-newline\n");
    // Exactly our line on stderr; other lines may come from the login shell's rc files of this
    // machine (root's .bashrc runs `pyenv init`, which complains when shells race on its lock).
    assert!(err.lines().any(|l| l == "err1"), "{err}");
    // Large output arrives complete and in order.
    let (_, out, _) = s.exec_capture("seq 1 20000").await.unwrap();
    assert_eq!(out.lines().count(), 20000);
    assert_eq!(out.lines().last(), Some("20000"));
    // Secrets are redacted in output lines.
    let _pw = Secret::new("very-secret-value-99");
    let (_, out, _) = s
        .exec_capture("echo token=very-secret-value-99")
        .await
        .unwrap();
    assert_eq!(out, "token=***\n");
    assert!(matches!(
        s.exec("kill -KILL $$").await.unwrap(),
        ExitStatus::Signal(_)
    ));
    // The session stays usable after all that.
    assert!(s.exec("true").await.unwrap().success());
}

#[tokio::test]
async fn upload_and_download_files() {
    let files = prepare(false);
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, None);
    sshd.wait_listening();
    let s = wait_ready("127.0.0.1", port, &key_cfg(&files))
        .await
        .unwrap();
    let guest = tempfile::tempdir().unwrap();

    // A 3 MiB binary file with its mode preserved (the "guest" is this machine).
    let local = files.dir.path().join("blob.bin");
    let data: Vec<u8> = (0..3 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&local, &data).unwrap();
    std::fs::set_permissions(&local, std::os::unix::fs::PermissionsExt::from_mode(0o750)).unwrap();
    let remote = guest.path().join("dir with space/blob.bin");
    std::fs::create_dir_all(remote.parent().unwrap()).unwrap();
    s.upload(&local, remote.to_str().unwrap()).await.unwrap();
    assert_eq!(std::fs::read(&remote).unwrap(), data);
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&remote).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o750);
    assert_eq!(s.download(remote.to_str().unwrap()).await.unwrap(), data);

    s.upload_bytes(
        b"it's\n",
        &format!("{}/q'uote", guest.path().display()),
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(guest.path().join("q'uote")).unwrap(),
        "it's\n"
    );

    // A failing upload larger than the SSH window must fail, not hang.
    let err = s.upload(&local, "/nonexistent-dir/x").await.unwrap_err();
    assert!(err.to_string().contains("/nonexistent-dir/x"), "{err}");
    let err = s
        .upload_bytes(b"x", "/nonexistent-dir/x", None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("/nonexistent-dir/x"), "{err}");
}

#[tokio::test]
async fn shutdown_treats_a_dropped_connection_as_success() {
    let files = prepare(false);
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, None);
    sshd.wait_listening();
    let s = wait_ready("127.0.0.1", port, &key_cfg(&files))
        .await
        .unwrap();
    // Kill this connection's sshd session process: the channel ends without an exit status,
    // as when a guest powers off under us.
    let st = s.shutdown("kill -KILL $PPID; sleep 5").await.unwrap();
    assert_eq!(st, ExitStatus::Code(0));
    assert!(
        support::process::eventually_async(Duration::from_secs(10), || s.is_closed()).await,
        "the session never noticed the dropped connection"
    );

    let s2 = wait_ready("127.0.0.1", port, &key_cfg(&files))
        .await
        .unwrap();
    assert_eq!(
        s2.exec("kill -KILL $PPID; sleep 5").await.unwrap(),
        ExitStatus::Disconnected
    );
}

#[tokio::test]
async fn unreadable_private_key_fails_at_once() {
    let cfg = SshConfig {
        username: "root".into(),
        private_key_file: Some("/nonexistent/id_ed25519".into()),
        ..Default::default()
    };
    let (_held, port) = closed_port();
    let err = wait_ready("127.0.0.1", port, &cfg).await.unwrap_err();
    assert!(matches!(err, CommError::Key { .. }), "{err}");
    assert!(err.to_string().contains("/nonexistent/id_ed25519"));
}

/// Collects log output for assertions.
#[derive(Clone, Default)]
struct LogBuf(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn long_waits_report_progress_with_the_last_error() {
    let buf = LogBuf::default();
    let w = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || w.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let cfg = SshConfig {
        username: "root".into(),
        password: Some(Secret::new("unused-pw-3")),
        timeout: Duration::from_millis(900),
        progress_interval: Duration::from_millis(200),
        ..Default::default()
    };
    let (_held, port) = closed_port();
    wait_ready("127.0.0.1", port, &cfg).await.unwrap_err();
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    let progress: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("still waiting for SSH"))
        .collect();
    assert!(!progress.is_empty(), "{log}");
    assert!(
        progress[0].contains("elapsed") && progress[0].contains("connection refused"),
        "{log}"
    );
    assert!(!log.contains("unused-pw-3"));
}

/// A stand-in for QEMU's user-network forward of a booting guest's port 22, in one of three
/// modes: `SILENT` (the guest's network is down: TCP accepted, then nothing, held open),
/// `RESET` (network up, sshd not listening: closed at once) and `SSHD` (forwarded to sshd).
struct Forward {
    port: u16,
    mode: std::sync::Arc<std::sync::atomic::AtomicU8>,
    resets: std::sync::Arc<std::sync::atomic::AtomicU32>,
    held: std::sync::Arc<tokio::sync::Mutex<Vec<tokio::net::TcpStream>>>,
}

impl Forward {
    const SILENT: u8 = 0;
    const RESET: u8 = 1;
    const SSHD: u8 = 2;

    async fn start(sshd_port: u16) -> Forward {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let f = Forward {
            port: listener.local_addr().unwrap().port(),
            mode: Default::default(),
            resets: Default::default(),
            held: Default::default(),
        };
        let (mode, resets, held) = (f.mode.clone(), f.resets.clone(), f.held.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                match mode.load(Ordering::SeqCst) {
                    Forward::SILENT => held.lock().await.push(s),
                    Forward::RESET => {
                        resets.fetch_add(1, Ordering::SeqCst);
                        drop(s);
                    }
                    _ => {
                        tokio::spawn(async move {
                            let mut t = tokio::net::TcpStream::connect(("127.0.0.1", sshd_port))
                                .await
                                .unwrap();
                            let _ = tokio::io::copy_bidirectional(&mut s, &mut t).await;
                        });
                    }
                }
            }
        });
        f
    }

    fn set(&self, mode: u8) {
        self.mode.store(mode, std::sync::atomic::Ordering::SeqCst);
    }

    fn resets(&self) -> u32 {
        self.resets.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A real sshd behind a [`Forward`] (in `SILENT` mode), and communicator settings for it.
async fn forwarded_sshd() -> (ssh_common::SshdFiles, Sshd, Forward, SshConfig) {
    let files = prepare(false);
    let sshd_port = free_port();
    let mut sshd = Sshd::start(&files, sshd_port, None);
    sshd.wait_listening();
    let cfg = key_cfg(&files);
    (files, sshd, Forward::start(sshd_port).await, cfg)
}

#[tokio::test]
async fn silent_forward_does_not_delay_detection() {
    // The guest's network comes up with sshd already listening; connections held silent stay
    // silent forever (the worst case).
    let (_files, _sshd, fwd, cfg) = forwarded_sshd().await;
    let port = fwd.port;
    let waiter = tokio::spawn(async move {
        let r = wait_ready("127.0.0.1", port, &cfg).await;
        (r, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(!waiter.is_finished());
    let guest_up = Instant::now();
    fwd.set(Forward::SSHD);
    let (r, ready_at) = waiter.await.unwrap();
    let s = r.expect("SSH through the forward");
    eprintln!(
        "SSH-ready detection latency after a silent forward started answering: {:?} (banner_probe_interval {:?}, banner_timeout {:?})",
        ready_at - guest_up,
        SshConfig::default().banner_probe_interval,
        SshConfig::default().banner_timeout
    );
    assert!(s.exec("true").await.unwrap().success());
}

#[tokio::test]
async fn resets_drop_silent_probes_and_poll_at_the_poll_cadence() {
    // First silent, then every connection reset, then sshd. Once resets come back the silent
    // probes are stale (QEMU would deliver their SYNs to sshd later, each costing the booting
    // guest an sshd process): they must be closed, and from the first reset on the engine must
    // probe at `poll_interval`, not at the silent-probe cadence.
    use tokio::io::AsyncReadExt;
    let (_files, _sshd, fwd, cfg) = forwarded_sshd().await;
    let port = fwd.port;
    let (poll, slow) = (cfg.poll_interval, cfg.banner_probe_interval);
    let waiter = tokio::spawn(async move { wait_ready("127.0.0.1", port, &cfg).await });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fwd.set(Forward::RESET);
    // The next fresh probe (silent ones are spaced out) meets the first reset; count from there.
    let first = Instant::now();
    while fwd.resets() == 0 {
        assert!(
            first.elapsed() < Duration::from_secs(10),
            "no probe within 10 s of resets"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let window = Duration::from_millis(2000);
    tokio::time::sleep(window).await;
    let seen = fwd.resets() - 1;
    let mut silent = std::mem::take(&mut *fwd.held.lock().await);
    assert!(
        !silent.is_empty(),
        "the silent phase should have held probes"
    );
    for (i, s) in silent.iter_mut().enumerate() {
        let mut b = [0u8; 1];
        let r = tokio::time::timeout(Duration::from_millis(200), s.read(&mut b)).await;
        assert!(
            matches!(r, Ok(Ok(0)) | Ok(Err(_))),
            "silent probe {i} still open after resets: {r:?}"
        );
    }
    fwd.set(Forward::SSHD);
    let s = waiter.await.unwrap().expect("SSH once sshd answers");
    assert!(s.exec("true").await.unwrap().success());
    // At the silent-probe cadence the window holds about window/slow probes; at the poll
    // cadence about window/poll. Require well over the former.
    let at_slow = (window.as_millis() / slow.as_millis()) as u32;
    assert!(
        seen > 2 * at_slow + 1,
        "{seen} probes in {window:?} of resets (poll_interval {poll:?}, silent-probe interval {slow:?})"
    );
}

#[tokio::test]
async fn ssh_pty_gives_commands_a_terminal() {
    let files = prepare(false);
    let port = free_port();
    let mut sshd = Sshd::start(&files, port, None);
    sshd.wait_listening();
    let b = serde_json::json!({"ssh_username": "root", "ssh_pty": true,
        "ssh_private_key_file": files.client_key.to_str().unwrap()});
    let cfg = SshConfig::from_builder(b.as_object().unwrap()).unwrap();
    let s = wait_ready("127.0.0.1", port, &cfg).await.unwrap();
    let (st, out, _) = s.exec_capture("tty").await.unwrap();
    assert_eq!(st, ExitStatus::Code(0));
    assert!(out.lines().any(|l| l.starts_with("/dev/pts/")), "{out}");
    let plain = wait_ready("127.0.0.1", port, &key_cfg(&files))
        .await
        .unwrap();
    let (st, _, _) = plain.exec_capture("tty").await.unwrap();
    assert_eq!(st, ExitStatus::Code(1), "no pty unless ssh_pty");
}

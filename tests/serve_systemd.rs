//! The service under a real systemd: a Debian guest with systemd as PID 1 (QEMU, TCG; root
//! file system from tests/systemd/build-image.sh, kernel and initrd of the test OS). In it,
//! scripts/install.sh installs osimager; the test checks that the unit verifies, starts,
//! answers /api/v1/health (from the host, through QEMU's port forwarding), runs as the
//! `osimager` user in group `kvm`, needs a token off loopback, is restarted by systemd after
//! `kill -9`, and that `install.sh --uninstall` removes it.
//!
//! Slow (a guest boot): runs with OSIMAGER_E2E=1, as root, with the test OS media built. Run
//! it alone: `flock /tmp/osimager-guest.lock cargo test --test serve_systemd`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;

use support::{free_port, repo};

fn testos() -> PathBuf {
    support::media_cache().join("current")
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

struct Guest {
    qemu: Child,
    ssh_port: u16,
    api_port: u16,
    key: PathBuf,
    serial: PathBuf,
}

impl Guest {
    fn ssh(&self, command: &str) -> Output {
        Command::new("ssh")
            .args(["-i"])
            .arg(&self.key)
            .args([
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-o",
                "ConnectTimeout=10",
                "-o",
                "BatchMode=yes",
                "-p",
            ])
            .arg(self.ssh_port.to_string())
            .arg("root@127.0.0.1")
            .arg(command)
            .output()
            .unwrap()
    }

    fn ssh_ok(&self, command: &str) -> String {
        let out = self.ssh(command);
        assert!(
            out.status.success(),
            "guest: {command}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn wait_ssh(&self, within: Duration) {
        let end = Instant::now() + within;
        while !self.ssh("true").status.success() {
            assert!(
                Instant::now() < end,
                "no SSH into the guest; serial console:\n{}",
                std::fs::read_to_string(&self.serial).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_secs(2));
        }
    }

    fn health(&self) -> Option<u16> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap()
                .get(format!("http://127.0.0.1:{}/api/v1/health", self.api_port))
                .send()
                .await
                .ok()
                .map(|r| r.status().as_u16())
        })
    }

    fn status(&self, path: &str, token: Option<&str>) -> u16 {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut r = reqwest::Client::new()
                .get(format!("http://127.0.0.1:{}/api/v1{path}", self.api_port));
            if let Some(t) = token {
                r = r.bearer_auth(t);
            }
            r.send().await.unwrap().status().as_u16()
        })
    }

    fn wait_health(&self, within: Duration) {
        let end = Instant::now() + within;
        while self.health() != Some(200) {
            assert!(
                Instant::now() < end,
                "no /api/v1/health; journal:\n{}",
                self.ssh_ok("journalctl -u osimager --no-pager | tail -30")
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    fn main_pid(&self) -> u32 {
        self.ssh_ok("systemctl show -p MainPID --value osimager")
            .parse()
            .unwrap()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
    }
}

/// The guest's disk: the cached root file system, the SSH key, and the install bundle
/// (stripped binary, scripts, unit template, bundled data, docs) in /root/osimager.
fn disk(dir: &Path, pubkey: &str) -> PathBuf {
    let tree = dir.join("tree");
    std::fs::create_dir_all(&tree).unwrap();
    let rootfs = std::env::var_os("OSIMAGER_SYSTEMD_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/osimager-systemd")
        })
        .join("current/rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&tree)
        .arg("-xf")
        .arg(&rootfs));
    std::fs::write(tree.join("root/.ssh/authorized_keys"), pubkey).unwrap();
    let bundle = tree.join("root/osimager");
    std::fs::create_dir_all(bundle.join("bin")).unwrap();
    run(Command::new("objcopy")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_osimager"))
        .arg(bundle.join("bin/osimager")));
    for d in [
        "scripts",
        "packaging",
        "platforms",
        "specs",
        "files",
        "tasks",
        "docs",
    ] {
        run(Command::new("cp")
            .arg("-R")
            .arg(repo().join(d))
            .arg(&bundle));
    }
    for f in ["config.yml", "ansible.cfg", "ansible.json", "README.md"] {
        std::fs::copy(repo().join(f), bundle.join(f)).unwrap();
    }
    let img = dir.join("disk.img");
    run(Command::new("mkfs.ext4")
        .args([
            "-q",
            "-F",
            "-L",
            "testos-root",
            "-O",
            "^64bit,^metadata_csum,^orphan_file",
            "-d",
        ])
        .arg(&tree)
        .arg(&img)
        .arg("3G"));
    std::fs::remove_dir_all(&tree).unwrap();
    img
}

#[test]
fn systemd_installs_starts_and_restarts_the_service() {
    // OSIMAGER_E2E=1 and the test OS media (a counted skip otherwise, a failure in CI); root
    // and debootstrap for the image.
    if !support::e2e_enabled() {
        return;
    }
    assert!(
        testos().join("vmlinuz").is_file(),
        "no test OS kernel in {}: run tests/testos/build-media.sh",
        testos().display()
    );
    run(&mut Command::new(
        repo().join("tests/systemd/build-image.sh"),
    ));
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("id_ed25519");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key));
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let img = disk(dir.path(), &pubkey);
    let (ssh_port, api_port) = (free_port(), free_port());
    let serial = dir.path().join("serial.log");
    let qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none", "-no-reboot", "-kernel"])
        .arg(testos().join("vmlinuz"))
        .arg("-initrd")
        .arg(testos().join("initrd.gz"))
        .args(["-append", "root=LABEL=testos-root rw console=ttyS0,115200 net.ifnames=0 systemd.show_status=1"])
        .arg("-drive")
        .arg(format!("file={},format=raw,if=virtio", img.display()))
        .args(["-netdev"])
        .arg(format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{ssh_port}-:22,hostfwd=tcp:127.0.0.1:{api_port}-:8000"
        ))
        .args(["-device", "virtio-net-pci,netdev=n0", "-serial"])
        .arg(format!("file:{}", serial.display()))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let g = Guest {
        qemu,
        ssh_port,
        api_port,
        key,
        serial,
    };
    g.wait_ssh(Duration::from_secs(600));
    assert_eq!(
        g.ssh_ok("ps -p 1 -o comm="),
        "systemd",
        "PID 1 is a real systemd"
    );

    let out = g.ssh_ok("/root/osimager/scripts/install.sh --binary /root/osimager/bin/osimager --listen 0.0.0.0:8000");
    assert!(out.contains("enabled and started"), "{out}");
    g.ssh_ok("systemd-analyze verify /etc/systemd/system/osimager.service");
    g.wait_health(Duration::from_secs(180));
    let pid = g.main_pid();
    assert!(pid > 0);
    assert_eq!(g.ssh_ok(&format!("ps -o user= -p {pid}")), "osimager");
    assert!(g
        .ssh_ok("id -nG osimager")
        .split_whitespace()
        .any(|x| x == "kvm"));
    assert_eq!(
        g.ssh_ok("systemctl show -p NoNewPrivileges --value osimager"),
        "yes"
    );
    assert_eq!(
        g.ssh_ok("systemctl show -p ProtectSystem --value osimager"),
        "strict"
    );
    // Off loopback: tokens, made by the CLI as the service user.
    assert_eq!(g.status("/builds", None), 401);
    let token = g.ssh_ok(
        "runuser -u osimager -- /usr/local/bin/osimager serve token create ci --state-dir /var/lib/osimager/state 2>/dev/null",
    );
    assert_eq!(g.status("/builds", Some(&token)), 200);
    assert_eq!(
        g.status("/targets?dist=debian", Some(&token)),
        200,
        "the installed data is found"
    );

    // kill -9: systemd starts it again.
    let restarts: u32 = g
        .ssh_ok("systemctl show -p NRestarts --value osimager")
        .parse()
        .unwrap();
    g.ssh_ok(&format!("kill -9 {pid}"));
    let end = Instant::now() + Duration::from_secs(120);
    loop {
        let now = g.main_pid();
        if now != 0 && now != pid && g.health() == Some(200) {
            break;
        }
        assert!(
            Instant::now() < end,
            "not restarted: {}",
            g.ssh_ok("systemctl status osimager --no-pager | head -20")
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let after: u32 = g
        .ssh_ok("systemctl show -p NRestarts --value osimager")
        .parse()
        .unwrap();
    assert_eq!(after, restarts + 1);
    assert_eq!(
        g.status("/builds", Some(&token)),
        200,
        "the token survived: it is in the store"
    );

    let out = g.ssh_ok("/root/osimager/scripts/install.sh --uninstall");
    assert!(out.contains("kept /etc/osimager"), "{out}");
    assert_eq!(
        g.ssh_ok("test -e /etc/systemd/system/osimager.service && echo yes || echo no"),
        "no"
    );
    assert_eq!(g.ssh_ok("systemctl is-active osimager || true"), "inactive");
    assert_ne!(g.health(), Some(200));
    let _ = g.ssh("systemctl poweroff");
}

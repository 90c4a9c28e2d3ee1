//! The bundled `debian` spec against the real debian-installer (tests/debian/README.md): the
//! netboot installer of Debian 12 boots from media built by `tests/debian/build-media.sh` (laid
//! out as the netinst CD), is typed the spec's own boot command by the engine, reads the bundled
//! preseed from the build's HTTP server and installs from a local mirror (Debian's signed indexes
//! plus the packages the install needs) served on the host's loopback. Through
//! `osimager build --engine native` and `--engine packer` (Packer 1.6.6), one after the other.
//!
//! Both tests are opt-in (`#[ignore]`, so `cargo test` counts them as not run by design):
//! `tests/debian/run-e2e.sh` builds the media and runs one under the guest lock with
//! `--ignored`. `installer_boots_and_reads_the_bundled_preseed` (OSIMAGER_E2E_DEBIAN=1): the
//! installer runs until it asks the mirror for its first component (a .udeb; the package
//! registry reachable from this project's machines serves only some udebs and not the
//! installer's own components, see tests/debian/README.md), then the build is interrupted and
//! must clean up. `debian_installs_natively_and_through_packer` (OSIMAGER_E2E_DEBIAN=full): the
//! whole install, Ansible with the bundled playbook and export; the exported image is booted
//! again and checked over SSH as the spec's user (host name, the preseed's packages, the
//! playbook's marker). OSIMAGER_E2E_DEBIAN_ENGINES=native or =packer runs one engine only.

mod support;

use osimager::comm::{wait_ready, SshConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::process::{processes_mentioning, Spawned};
use support::{osimager_bin, path_with_tools, repo};

const TARGET: &str = "qemu/hermetic-debian/debian-12.12-x86_64";
/// What files/debian/preseed.cfg asks for: pkgsel/include and the ssh-server task.
const PACKAGES: [&str; 5] = [
    "openssh-server",
    "sudo",
    "python3",
    "ca-certificates",
    "task-ssh-server",
];

fn cache() -> PathBuf {
    std::env::var_os("OSIMAGER_DEBIAN_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/osimager-debian")
        })
}

/// images/linux from the test config's secrets file (the account the preseed creates).
fn linux_account() -> (String, String) {
    let text =
        std::fs::read_to_string(repo().join("tests/testos/config/osimager/secrets")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("images/linux "))
        .expect("images/linux in the test secrets");
    let field = |k: &str| {
        line.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .unwrap()
            .to_string()
    };
    (field("username"), field("password"))
}

/// The local mirror: tests/debian/mirror-server.py on 127.0.0.1, logging every request.
struct Mirror {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl Mirror {
    fn start(scratch: &Path) -> Mirror {
        let log = scratch.join("mirror-requests.log");
        let mut child = Command::new("python3")
            .arg(repo().join("tests/debian/mirror-server.py"))
            .arg(cache().join("current/mirror"))
            .arg("--log")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the mirror server");
        let mut first = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().unwrap()),
            &mut first,
        )
        .unwrap();
        let port = first
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("mirror server did not start: {first:?}"));
        Mirror { child, port, log }
    }

    /// Requests the server could not answer. Every pool file the installer asked for must be
    /// there (the mirror holds exactly what the install needs); a missing optional index (apt
    /// tries several compressions) is only reported.
    fn check(&self, engine: &str) {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let fetched = text.lines().filter(|l| l.contains("/pool/")).count();
        let failed: Vec<&str> = text.lines().filter(|l| !l.starts_with("200 ")).collect();
        eprintln!(
            "{engine}: the installer fetched {fetched} pool files; requests not served: {failed:#?}"
        );
        assert!(fetched > 100, "{engine}: hardly anything fetched:\n{text}");
        let pool_missing: Vec<&&str> = failed.iter().filter(|l| l.contains("/pool/")).collect();
        assert!(
            pool_missing.is_empty(),
            "{engine}: packages missing from the local mirror (refresh tests/debian/mirror.list): {pool_missing:#?}"
        );
    }
}

impl Drop for Mirror {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `osimager build TARGET NAME 10.0.2.15 --engine ENGINE`, as a user runs it (its output is
/// echoed on stderr by the harness).
fn spawn_build(scratch: &Path, engine: &str, name: &str, mirror: &Mirror) -> Spawned {
    let tmp = scratch.join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut c = Command::new(osimager_bin());
    // A static address: with restrict=on QEMU's DHCP offers no router and no name server, and
    // debian-installer stops to ask for one (tests/debian/README.md).
    c.args(["build", TARGET, name, "10.0.2.15", "--engine", engine])
        .args(["-D", &format!("debian_mirror=10.0.2.2:{}", mirror.port)])
        .args([
            "-D",
            &format!("ansible_extra_vars=osimager_marker=built-{name}"),
        ])
        .arg("--events")
        .arg(scratch.join(format!("{name}.events.ndjson")))
        .env("XDG_CONFIG_HOME", repo().join("tests/testos/config"))
        .env("XDG_DATA_HOME", scratch.join("data"))
        .env("XDG_CACHE_HOME", scratch.join("cache"))
        .env("OSIMAGER_DEBIAN_CACHE", cache())
        .env("OSIMAGER_DEBIAN_MIRROR_PORT", mirror.port.to_string())
        .env("CHECKPOINT_DISABLE", "1")
        .env("TMPDIR", &tmp)
        .env("PATH", path_with_tools());
    if engine == "native" {
        c.arg("--output-dir").arg(scratch.join("out").join(name));
    }
    Spawned::start(c)
}

/// The serial lines of a native build's event stream.
fn serial_lines(scratch: &Path, name: &str) -> Vec<String> {
    use osimager_events::{BuildEvent, EventRecord, LogSource};
    let text = std::fs::read_to_string(scratch.join(format!("{name}.events.ndjson"))).unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<EventRecord>(l).ok())
        .filter_map(|r| match r.event {
            BuildEvent::Log {
                source: LogSource::Serial,
                line,
                ..
            } => Some(line),
            _ => None,
        })
        .collect()
}

fn assert_serial_shows(scratch: &Path, name: &str, steps: &[&str]) {
    let serial = serial_lines(scratch, name);
    let all = serial.join("\n");
    for step in steps {
        assert!(
            all.contains(step),
            "the serial console never showed the installer's '{step}' ({} serial lines)",
            serial.len()
        );
    }
}

/// Boot the exported image (snapshot: it stays unchanged) and check it over SSH.
fn check_image(image: &Path, name: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut qemu = Command::new("qemu-system-x86_64")
        .args(["-accel", "tcg", "-cpu", "qemu64", "-m", "1024"])
        .args(["-display", "none", "-no-user-config"])
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=qcow2,snapshot=on",
            image.display()
        ))
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22"
        ))
        .args(["-device", "virtio-net,netdev=n0", "-serial", "null"])
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let (user, password) = linux_account();
    let cmd = format!(
        "hostname; cat /etc/osimager-marker; sudo -n id -u; dpkg-query -W -f '${{Package}} ${{Status}}\\n' {}",
        PACKAGES.join(" ")
    );
    let out = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let cfg = SshConfig {
            username: user.clone(),
            password: Some(osimager::secret::Secret::new(password)),
            timeout: Duration::from_secs(900),
            ..SshConfig::default()
        };
        let sess = wait_ready("127.0.0.1", port, &cfg).await?;
        let (_st, out, _err) = sess.exec_capture(&cmd).await?;
        sess.close().await;
        Ok::<_, osimager::comm::CommError>(out)
    });
    let _ = qemu.kill();
    let _ = qemu.wait();
    let out = out.expect("SSH into the exported image as the spec's user");
    eprintln!("{name}: the exported image says:\n{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first().copied(), Some(name), "host name: {out}");
    assert_eq!(
        lines.get(1).copied(),
        Some(format!("built-{name}").as_str()),
        "marker: {out}"
    );
    assert_eq!(lines.get(2).copied(), Some("0"), "passwordless sudo: {out}");
    for p in PACKAGES {
        assert!(
            lines.contains(&format!("{p} install ok installed").as_str()),
            "{p} is not installed: {out}"
        );
    }
}

/// The disk image in an output directory (the file named after the VM).
fn image_in(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    assert!(p.is_file(), "no image {}", p.display());
    p
}

fn engines() -> Vec<String> {
    std::env::var("OSIMAGER_E2E_DEBIAN_ENGINES")
        .unwrap_or_else(|_| "native,packer".into())
        .split(',')
        .map(str::to_string)
        .collect()
}

fn media_ready() {
    assert!(
        cache().join("current/SHA256SUMS").is_file(),
        "no Debian media in {}: run tests/debian/build-media.sh first",
        cache().display()
    );
}

/// What runs here: the real installer boots from the netinst-layout media with the spec's boot
/// command typed by the engine, configures the network from the boot line, reads the bundled
/// preseed (the mirror host and directory come only from it), checks Debian's signed Release
/// on the local mirror and reads the installer-components index — up to its first component
/// download (a .udeb: the package registry this machine reaches answers 404 for every .udeb, so
/// no install can go further here; see tests/debian/README.md). The build is then interrupted
/// with SIGINT and must leave nothing behind.
#[test]
#[ignore = "opt-in: the real debian-installer under TCG, ~6 min (tests/debian/run-e2e.sh)"]
fn installer_boots_and_reads_the_bundled_preseed() {
    media_ready();
    let scratch = tempfile::Builder::new()
        .prefix("debian-e2e-")
        .tempdir()
        .unwrap();
    let mut times = Vec::new();
    for engine in engines() {
        let name = format!("deb-{engine}");
        let dir = scratch.path().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let mirror = Mirror::start(&dir);
        let t = Instant::now();
        let mut build = spawn_build(&dir, &engine, &name, &mirror);
        // the installer's first component request
        let reached = loop {
            let log = std::fs::read_to_string(&mirror.log).unwrap_or_default();
            if log.lines().any(|l| l.ends_with(".udeb")) {
                break t.elapsed();
            }
            if let Some(st) = build.child.try_wait().unwrap() {
                panic!("{engine}: build ended ({st}) before the installer asked for a component; mirror log:\n{log}");
            }
            assert!(
                t.elapsed() < Duration::from_secs(1800),
                "{engine}: no component request within 30 min; mirror log:\n{log}"
            );
            std::thread::sleep(Duration::from_secs(1));
        };
        eprintln!(
            "{engine}: the installer asked for its first component after {:.0}s",
            reached.as_secs_f64()
        );
        times.push((engine.clone(), reached));
        build.signal(libc::SIGINT);
        let code = build.wait_exit(Duration::from_secs(300));
        assert_ne!(code, 0, "{engine}: an interrupted build must fail");
        let log = std::fs::read_to_string(&mirror.log).unwrap();
        for want in [
            "200 GET /debian/dists/bookworm/Release",
            "200 GET /debian/dists/bookworm/Release.gpg",
            "200 GET /debian/dists/bookworm/main/binary-amd64/Release",
            "200 GET /debian/dists/bookworm/main/debian-installer/binary-amd64/Packages.xz",
        ] {
            let (status, path) = want.split_once(' ').unwrap();
            assert!(
                log.lines()
                    .any(|l| l.starts_with(status) && l.ends_with(path)),
                "{engine}: the installer never fetched {path}:\n{log}"
            );
        }
        if engine == "native" {
            assert_serial_shows(
                &dir,
                &name,
                &[
                    "Detecting network hardware",
                    "Checking the Debian archive mirror",
                    "Loading additional components",
                ],
            );
            let serial = serial_lines(&dir, &name).join("\n");
            assert!(
                !serial.contains("[!!] Configure the network"),
                "the installer asked about the network: the boot line's static address was not taken"
            );
        }
        drop(mirror);
        let out = cache().join("vms").join(&name);
        let mut left = processes_mentioning(&dir.display().to_string(), &[]);
        left.extend(processes_mentioning(&out.display().to_string(), &[]));
        assert!(left.is_empty(), "{engine}: processes left: {left:?}");
        assert!(!out.exists(), "{engine}: output left in {}", out.display());
        // nothing holds the build's output pipes any more: join the readers
        build.finish();
    }
    for (engine, took) in times {
        eprintln!(
            "TIMING {engine}: build start to the installer's first component request {:.0}s",
            took.as_secs_f64()
        );
    }
}

/// The whole install, where the installer's components can be had (never completed on this
/// project's machines: their package registry serves no .udeb). Runs with
/// OSIMAGER_E2E_DEBIAN=full and a mirror that holds the udebs of mirror.list.
#[test]
#[ignore = "blocked here: the registry serves neither the udebs nor the sources of the installer's partman, grub-installer, finish-install (tests/debian/README.md; run-e2e.sh --full)"]
fn debian_installs_natively_and_through_packer() {
    media_ready();
    let scratch = tempfile::Builder::new()
        .prefix("debian-e2e-")
        .tempdir()
        .unwrap();
    let mut times = Vec::new();
    for engine in engines() {
        let name = format!("deb-{engine}");
        let dir = scratch.path().join(&name);
        std::fs::create_dir_all(&dir).unwrap();
        let mirror = Mirror::start(&dir);
        let t = Instant::now();
        let mut build = spawn_build(&dir, &engine, &name, &mirror);
        let code = build.wait_exit(Duration::from_secs(4 * 3600));
        build.finish();
        let took = t.elapsed();
        eprintln!(
            "{engine}: build exited {code} after {:.0}s",
            took.as_secs_f64()
        );
        mirror.check(&engine);
        assert_eq!(code, 0, "{engine} build failed (log above)");
        times.push((engine.clone(), took));
        let out = if engine == "native" {
            assert_serial_shows(
                &dir,
                &name,
                &[
                    "Installing the base system",
                    "Select and install software",
                    "Installing GRUB",
                ],
            );
            dir.join("out").join(&name)
        } else {
            cache().join("vms").join(&name)
        };
        check_image(&image_in(&out, &name), &name);
        if engine != "native" {
            let _ = std::fs::remove_dir_all(&out);
        }
    }
    for (engine, took) in times {
        eprintln!("TIMING {engine}: {:.0}s", took.as_secs_f64());
    }
}

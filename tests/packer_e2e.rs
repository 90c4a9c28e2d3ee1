//! End to end through real Packer 1.6.6: `osimager build --engine packer` of the hermetic test
//! OS (tests/testos), from the bundled data plus the test location, under QEMU TCG with the guest
//! network restricted to loopback. Slow (an OS install): runs only with OSIMAGER_E2E=1 and the
//! media built (`tests/testos/build-media.sh`, cache in OSIMAGER_TESTOS_CACHE, default
//! ~/.cache/osimager-testos).

mod packer_support;
use packer_support::build_with_config;

use osimager::config::{Config, ConfigOptions, ResolveRequest};
use osimager::engine::BuildOptions;
use std::path::PathBuf;

#[test]
fn testos_builds_through_packer() {
    if std::env::var("OSIMAGER_E2E").as_deref() != Ok("1") {
        eprintln!("skipped: set OSIMAGER_E2E=1 (and build tests/testos media) to run");
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let cache = std::env::var_os("OSIMAGER_TESTOS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/osimager-testos")
        });
    assert!(
        cache.join("current/testos.iso").is_file(),
        "no test OS media in {}: run tests/testos/build-media.sh first",
        cache.display()
    );
    let scratch = tempfile::Builder::new()
        .prefix("pk-e2e-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    // One test in this binary: process-wide environment is fine.
    std::env::set_var("OSIMAGER_TESTOS_CACHE", &cache);
    std::env::set_var("XDG_CONFIG_HOME", repo.join("tests/testos/config"));
    std::env::set_var("XDG_DATA_HOME", s.join("data"));
    std::env::set_var("XDG_CACHE_HOME", s.join("cache"));
    std::env::set_var("CHECKPOINT_DISABLE", "1");
    // ansible-playbook for the default provisioner.
    let path = format!(
        "/opt/osimager-venv/bin:{}",
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);

    let config = Config::load(&ConfigOptions {
        data_dir: Some(repo.clone()),
        ..Default::default()
    })
    .expect("config loads");
    let temp = s.join("tmp");
    let plan = config
        .resolve(&ResolveRequest {
            target: "qemu/hermetic/testos-1-x86_64".into(),
            name: Some("pk-e2e".into()),
            ip: Some(String::new()),
            // root as the communicator user: Packer 1.6.6 runs Ansible as the local user through its
            // proxy, so a non-root user would skip `become` (see tests/testos/rootfs/etc/ssh).
            defines: vec![
                format!("vms_path={}", s.join("vms").display()),
                "testos_username=root".into(),
            ],
            temp_dir: temp.clone(),
            ..Default::default()
        })
        .expect("testos resolves");
    let opts = BuildOptions {
        force: true,
        temp_dir: None,
        ..Default::default()
    };
    let report = build_with_config(&config, &plan, &opts, false)
        .unwrap_or_else(|e| panic!("packer build of testos failed: {e}"));
    assert!(!report.dry_run);
    // The hermetic location puts builds in $OSIMAGER_TESTOS_CACHE/vms/<name>.
    let out = cache.join("vms/pk-e2e");
    let disk = out.join("pk-e2e");
    assert!(
        disk.is_file(),
        "no disk image in {}: {:?}",
        out.display(),
        std::fs::read_dir(&out).map(|d| d.count())
    );
    assert!(!temp.exists(), "temp dir removed after the build");

    // Retrofit through Packer (null builder + ansible provisioner, as OSImager's rfosimage)
    // against the image just built, booted again; then check the marker it wrote.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut qemu = std::process::Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-m",
            "512",
            "-display",
            "none",
            "-no-user-config",
        ])
        .arg("-drive")
        .arg(format!(
            "file={},if=virtio,format=qcow2,snapshot=on",
            disk.display()
        ))
        .arg("-netdev")
        .arg(format!(
            "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:{port}-:22"
        ))
        .args(["-device", "virtio-net,netdev=n0", "-serial", "null"])
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let rplan = config
        .resolve(&ResolveRequest {
            target: "qemu/hermetic/testos-1-x86_64".into(),
            name: Some("pk-e2e".into()),
            ip: Some("127.0.0.1".into()),
            defines: vec![
                "testos_username=root".into(),
                format!("ssh_port={port}"),
                "ansible_extra_vars=osimager_marker=pk-retrofitted".into(),
            ],
            temp_dir: s.join("tmp-retro"),
            ..Default::default()
        })
        .expect("testos resolves for retrofit");
    let ropts = BuildOptions {
        engine: osimager::engine::EngineKind::Packer,
        temp_dir: None,
        ..Default::default()
    };
    let retro = build_with_config(&config, &rplan, &ropts, true);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let marker = rt.block_on(async {
        let cfg = osimager::comm::SshConfig {
            username: "root".into(),
            password: Some(osimager::secret::Secret::new(
                rplan.defs["testos_password"].as_str().unwrap(),
            )),
            timeout: std::time::Duration::from_secs(120),
            ..Default::default()
        };
        let sess = osimager::comm::wait_ready("127.0.0.1", port, &cfg).await?;
        let (_st, out, _err) = sess.exec_capture("cat /etc/osimager-marker").await?;
        sess.close().await;
        Ok::<_, osimager::comm::CommError>(out)
    });
    let _ = qemu.kill();
    let _ = qemu.wait();
    let _ = std::fs::remove_dir_all(&out);
    retro.expect("rfosimage-style retrofit through Packer");
    assert_eq!(marker.expect("SSH after retrofit").trim(), "pk-retrofitted");
}

//! End to end through real Packer 1.6.6: `osimager build --engine packer` of the hermetic test
//! OS (tests/testos), from the bundled data plus the test location, under QEMU TCG with the guest
//! network restricted to loopback. Slow (an OS install): runs only with OSIMAGER_E2E=1 and the
//! media built (`tests/testos/build-media.sh`, cache in OSIMAGER_TESTOS_CACHE, default
//! ~/.cache/osimager-testos); otherwise skipped visibly (and a failure in CI).

mod support;

use osimager::config::{Config, ConfigOptions, ResolveRequest};
use osimager::engine::packer::{build_with, PackerFlags};
use osimager::engine::BuildOptions;

#[test]
fn testos_builds_through_packer() {
    if !support::e2e_enabled() {
        return;
    }
    let repo = support::repo();
    let cache = support::media_cache();
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
    std::env::set_var("PATH", support::path_with_tools());

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
    let report = build_with(&config, &plan, &opts, PackerFlags::default())
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
    let port = support::free_port();
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
    let retro = osimager::engine::retrofit(&config, &rplan, &ropts);
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

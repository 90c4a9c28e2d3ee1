//! End to end through real Packer 1.6.6, out of the box: `osimager build --engine packer` of the
//! hermetic test OS (tests/testos), from the bundled data plus the test location, under QEMU TCG
//! with the guest network restricted to loopback. The location carries no Packer-specific
//! workaround (no ssh extra args, the spec's ordinary non-root communicator user `testos`): the
//! engine adapts to the Packer it finds (src/engine/packer/quirks.rs), whether it runs as root
//! (as CI does) or not. The playbook's marker is read back over SSH from the exported image, then
//! `osimager retrofit --engine packer` (Packer's null builder) writes a new one into the running
//! machine. The guest's password is a secret canary (tests/support/canary): the argv and
//! environment of every process of the build (Packer, QEMU, ansible-playbook …) are sampled
//! from /proc while it runs, and afterwards the event stream, the output, the temp and per-user
//! dirs are searched for it: no hit. Slow (an OS install): runs only with OSIMAGER_E2E=1 and the media built
//! (`tests/testos/build-media.sh`, cache in OSIMAGER_TESTOS_CACHE, default ~/.cache/osimager-testos);
//! otherwise skipped visibly (and a failure in CI).

mod support;

mod packer_support;
use packer_support::{build_with_config, build_with_sink};
use support::canary::{Canary, Sampler, Scan};

use osimager::config::{Config, ConfigOptions, ResolveRequest};
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
    // The guest's password (answer file, SSH): set in-process, never on an argv.
    let canary = Canary::new();
    let password = format!("testos_password={}", canary.tagged("packer"));
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
            defines: vec![
                format!("vms_path={}", s.join("vms").display()),
                "ansible_extra_vars=osimager_marker=pk-built".into(),
                password.clone(),
            ],
            temp_dir: temp.clone(),
            ..Default::default()
        })
        .expect("testos resolves");
    // What a new user gets: no Packer workaround in the resolved build.
    assert_eq!(plan.builder["ssh_username"], "testos");
    let asked = plan.packer_template().to_string();
    assert!(
        !asked.contains("ssh-rsa") && !asked.contains("ssh-extra-args"),
        "the test location must not carry Packer workarounds: {asked}"
    );
    eprintln!(
        "building as local user {:?}",
        osimager::engine::packer::quirks::local_user_name()
    );
    let opts = BuildOptions {
        force: true,
        temp_dir: None,
        ..Default::default()
    };
    let sampler = Sampler::start(&canary, std::process::id(), false);
    let events = std::sync::Arc::new(osimager_events::MemorySink::default());
    let report = build_with_sink(&config, &plan, &opts, false, Some(events.clone()))
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

    // Boot the exported image; read the marker the build's playbook wrote; retrofit it through
    // Packer (null builder + ansible provisioner, as OSImager's rfosimage) while it runs; read the
    // new marker.
    let port = support::free_port();
    let mut qemu = support::boot_image(&disk, port);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ssh = osimager::comm::SshConfig {
        username: "testos".into(),
        password: Some(osimager::secret::Secret::new(
            plan.defs["testos_password"].as_str().unwrap(),
        )),
        timeout: std::time::Duration::from_secs(300),
        ..Default::default()
    };
    let read_marker = || {
        rt.block_on(async {
            let sess = osimager::comm::wait_ready("127.0.0.1", port, &ssh).await?;
            let (_st, out, _err) = sess.exec_capture("cat /etc/osimager-marker").await?;
            sess.close().await;
            Ok::<_, osimager::comm::CommError>(out.trim().to_string())
        })
    };
    let built = read_marker();
    let rplan = config
        .resolve(&ResolveRequest {
            target: "qemu/hermetic/testos-1-x86_64".into(),
            name: Some("pk-e2e".into()),
            ip: Some("127.0.0.1".into()),
            defines: vec![
                format!("ssh_port={port}"),
                "ansible_extra_vars=osimager_marker=pk-retrofitted".into(),
                password.clone(),
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
    let retrofitted = read_marker();
    let _ = qemu.kill();
    let _ = qemu.wait();
    // The canary: processes sampled during the build and the retrofit, the build's events,
    // the output (the disk image is the guest's own data), the temp and per-user dirs.
    let samples = sampler.finish();
    assert!(
        samples.cmdlines.iter().any(|(_, c)| c.contains("packer")),
        "the sampler never saw Packer: {:?}",
        samples.cmdlines
    );
    let mut scan = Scan::new(&canary);
    scan.samples(&samples);
    scan.text(
        "event stream",
        "build events",
        serde_json::to_string(&events.records()).unwrap(),
    );
    scan.tree_with(&out, &|p: &std::path::Path| p == disk.as_path());
    scan.tree(s);
    let _ = std::fs::remove_dir_all(&out);
    scan.assert_clean("secret-canary-packer.txt");
    assert_eq!(
        built.expect("SSH to the exported image"),
        "pk-built",
        "the build's playbook wrote its marker as root (become worked)"
    );
    retro.expect("rfosimage-style retrofit through Packer");
    assert_eq!(retrofitted.expect("SSH after retrofit"), "pk-retrofitted");
}

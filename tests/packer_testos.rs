//! The hermetic test OS spec (specs/testos + tests/testos/config) through the Packer engine:
//! the template it writes passes real Packer 1.6.6's `packer validate` (the bundled qemu platform
//! keeps to keys 1.6.6 reads, so the engine's version check lets it through; the test location
//! adds nothing Packer-specific).

mod packer_support;
use packer_support::build_with_config;

mod support;

use osimager::config::{Config, ConfigOptions, ResolveRequest};
use osimager::engine::BuildOptions;
use std::process::Command;

#[test]
fn testos_template_passes_packer_validate() {
    let repo = support::repo();
    let scratch = tempfile::Builder::new()
        .prefix("pk-testos-")
        .tempdir()
        .unwrap();
    let s = scratch.path();
    // Stand-in media (validate does not read the ISO).
    let media = s.join("cache/current");
    std::fs::create_dir_all(&media).unwrap();
    std::fs::write(media.join("testos.iso"), "iso").unwrap();
    std::fs::write(
        media.join("SHA256SUMS"),
        "0000000000000000000000000000000000000000000000000000000000000000  testos.iso\n",
    )
    .unwrap();
    // One test in this binary: process-wide environment is fine.
    std::env::set_var("OSIMAGER_TESTOS_CACHE", s.join("cache"));
    std::env::set_var("XDG_CONFIG_HOME", repo.join("tests/testos/config"));
    std::env::set_var("XDG_DATA_HOME", s.join("data"));
    std::env::set_var("XDG_CACHE_HOME", s.join("xdg-cache"));
    std::env::set_var("CHECKPOINT_DISABLE", "1");

    let config = Config::load(&ConfigOptions {
        data_dir: Some(repo.clone()),
        ..Default::default()
    })
    .expect("config loads");
    let temp = s.join("tmp");
    let plan = config
        .resolve(&ResolveRequest {
            target: "qemu/hermetic/testos-1-x86_64".into(),
            name: Some("pk-testos".into()),
            ip: Some(String::new()),
            defines: vec![format!("vms_path={}", s.join("vms").display())],
            temp_dir: temp.clone(),
            ..Default::default()
        })
        .expect("testos resolves");
    let opts = BuildOptions {
        dry_run: true,
        keep: true,
        ..Default::default()
    };
    let report = build_with_config(&config, &plan, &opts, false)
        .unwrap_or_else(|e| panic!("dry run of testos: {e}"));
    assert!(report.template.is_file());
    assert!(temp.join("testos.cfg").is_file(), "answer file generated");
    let out = Command::new("packer")
        .arg("validate")
        .arg(&report.template)
        .current_dir(&plan.data_dir)
        .env("PATH", support::path_with_tools())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "packer validate:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        std::fs::read_to_string(&report.template).unwrap()
    );
}
